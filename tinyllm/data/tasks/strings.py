"""String transformations: tasks whose answer is a function of the input string alone.

Each task applies one transformation f to a random string x and asks for y = f(x):

    reverse       y = x_n … x_2 x_1
    sort          y = the letters of x in alphabetical order
    uppercase     y = x with every letter capitalised
    caesar k      y_i = letter(index(x_i) + k mod 26)   (every letter shifted k places)
    every_second  y = x_1 x_3 x_5 …                     (keep the characters at odd positions)
    rotate        y = x_2 … x_n x_1                     (the first character moved to the end)

The difficulty knob is the length n of x: a longer string is more characters to get right,
and exact match needs every one of them.

A prompt is a header line naming the task, then k solved demonstrations, one per line, then the
query — the few-shot layout of GPT-3 (Brown et al. 2020), with the transformation's name as the
instruction:

    reverse          ← header
    abc>cba          ← demonstration 1 … k
    bde>edb
    fab>             ← query; the target is "baf\\n"

k = 0 is a zero-shot prompt: the header alone says what to do, so a model that learned the task
in pre-training can answer it; the demonstrations are what a model needs when the header names
nothing it knows (tinyllm/data/tasks/induction.py). `shots` is an int or an inclusive range
(lo, hi) drawn uniformly per prompt, as pre-training on prompts with 0..8 demonstrations does.
"""

from __future__ import annotations

import string

import numpy as np

from tinyllm.data.tasks.base import Example, Task

# the separators of the few-shot layout: input SEP output NEWLINE
SEP = ">"
NEWLINE = "\n"


def _shift(s: str, k: int) -> str:
    out = []
    for c in s:
        if c.islower():
            out.append(chr((ord(c) - 97 + k) % 26 + 97))
        else:
            raise ValueError(f"caesar: can only shift lowercase letters a-z, got {c!r}")
    return "".join(out)


TRANSFORMS = {
    "reverse": lambda s: s[::-1],
    "sort": lambda s: "".join(sorted(s)),
    "uppercase": lambda s: s.upper(),
    "every_second": lambda s: s[::2],
    "rotate": lambda s: s[1:] + s[:1],
}


def transform(name: str, s: str) -> str:
    """Apply the named transformation to `s`: one of TRANSFORMS, or "caesarK" (shift by K)."""
    if name.startswith("caesar"):
        k = name[len("caesar") :]
        if not k.isdigit():
            raise ValueError(f"transform: caesar needs a shift, e.g. 'caesar3', got {name!r}")
        return _shift(s, int(k))
    if name not in TRANSFORMS:
        raise ValueError(
            f"transform: unknown transformation {name!r}; known: {sorted(TRANSFORMS)} "
            "and caesarK (K a shift)"
        )
    return TRANSFORMS[name](s)


def int_range(value, what: str, low: int) -> tuple[int, int]:
    """An int or an inclusive (lo, hi) range as (lo, hi), checked to satisfy low ≤ lo ≤ hi."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        lo = hi = int(value)
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    ):
        lo, hi = int(value[0]), int(value[1])
    else:
        raise ValueError(f"{what} must be an int or an inclusive range (lo, hi), got {value!r}")
    if not low <= lo <= hi:
        raise ValueError(f"{what} must satisfy {low} <= lo <= hi, got {value!r}")
    return lo, hi


def draw(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    lo, hi = bounds
    return lo if lo == hi else int(rng.integers(lo, hi + 1))


def few_shot_prompt(header: str, demos, query: str) -> str:
    """The few-shot layout: the header line, one "x>y" line per demonstration, then "query>"."""
    lines = [header] + [f"{x}{SEP}{y}" for x, y in demos]
    return NEWLINE.join(lines) + NEWLINE + query + SEP


def random_string(rng: np.random.Generator, alphabet: str, length: int) -> str:
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), size=length))


class StringTask(Task):
    """y = f(x) for one transformation f, with `shots` demonstrations in the prompt.

    transform: a name of TRANSFORMS or "caesarK"; length: the length of x (int or (lo, hi));
    alphabet: the letters x is drawn from (lowercase, so every transformation applies);
    shots: demonstrations per prompt (int or (lo, hi)); header: the instruction line
    (default: the transformation's name)."""

    def __init__(
        self,
        transform_name: str,
        length=5,
        alphabet: str = string.ascii_lowercase,
        shots=0,
        header: str | None = None,
    ):
        transform(transform_name, "a")  # an unknown name fails here, not at the first sample
        if not alphabet or any(c not in string.ascii_lowercase for c in alphabet):
            raise ValueError(f"StringTask: alphabet must be lowercase letters, got {alphabet!r}")
        if len(set(alphabet)) != len(alphabet):
            raise ValueError(f"StringTask: alphabet has a repeated letter: {alphabet!r}")
        self.transform_name = transform_name
        self.length = int_range(length, "StringTask: length", 1)
        self.shots = int_range(shots, "StringTask: shots", 0)
        self.alphabet = alphabet
        self.header = transform_name if header is None else header
        if NEWLINE in self.header:
            raise ValueError(f"StringTask: the header must be one line, got {self.header!r}")
        self.name = transform_name

    def solve(self, x: str) -> str:
        return transform(self.transform_name, x)

    def sample(self, rng: np.random.Generator) -> Example:
        k = draw(rng, self.shots)
        pairs = []
        for _ in range(k + 1):
            x = random_string(rng, self.alphabet, draw(rng, self.length))
            pairs.append((x, self.solve(x)))
        (query, answer), demos = pairs[-1], pairs[:-1]
        prompt = few_shot_prompt(self.header, demos, query)
        return self._example(prompt, answer + NEWLINE, answer, shots=k, query=query)
