"""Rule induction: tasks whose rule is nowhere but in the prompt's demonstrations.

A *substitution rule* is a permutation π of a small alphabet Σ (|Σ| = m, so m! rules); it maps
a string letter by letter, y_i = π(x_i). Each prompt draws a fresh rule, so no single answer
is right for an input on its own: the only way to answer the query is to read π off the k
demonstrations above it —

    subst
    cab>fed          π(c)=f  π(a)=e  π(b)=d
    bdd>dcc          π(d)=c
    dab>             → "ced": every letter of the query was shown, so the answer is determined

— which is what an *induction head* does (Olsson et al. 2022): from the query letter, attend
to where that letter stood in an earlier input and copy what followed it in the output. A
letter that no demonstration shows cannot be known, so even a perfect reader of the prompt is
capped by coverage: if the query's n letters are drawn uniformly, one letter is shown by k
demonstrations of n letters with probability 1 − (1 − 1/m)^(kn), and the answer is right only
if all of the query's distinct letters are. Accuracy must rise with k, from ≈ 0 at k = 0 (a
1/m! guess) towards 1.

Held-out rules. The m! rules are split once, by a hash of the rule that does not depend on any
seed or library version: a rule is *held out* when sha256("Σ:π(Σ)") mod `heldout_every` is 0
(about 1 in `heldout_every`). Training prompts only use the other rules, so an evaluation on
held-out rules measures reading the rule from the prompt, not remembering it.
"""

from __future__ import annotations

import hashlib
import itertools

import numpy as np

from tinyllm.data.tasks.base import Example, Task
from tinyllm.data.tasks.strings import NEWLINE, draw, few_shot_prompt, int_range, random_string

SPLITS = ("train", "heldout")


def rule_split(alphabet: str, image: str, heldout_every: int = 5) -> str:
    """The split ("train" or "heldout") of the rule that maps alphabet[i] to image[i]."""
    digest = hashlib.sha256(f"{alphabet}:{image}".encode()).digest()
    return "heldout" if int.from_bytes(digest[:8], "big") % heldout_every == 0 else "train"


class SubstitutionTask(Task):
    """A random letter substitution per prompt, from one split of the rules.

    alphabet: Σ (distinct characters, no separator); length: letters per string (int or
    (lo, hi)); shots: demonstrations per prompt (int or (lo, hi)); split: "train" or
    "heldout"; heldout_every: about one rule in this many is held out; rules: optional fixed
    list of images π(Σ) to draw from instead (each must be in `split`), e.g. one held-out rule
    to fine-tune on."""

    def __init__(
        self,
        alphabet: str = "abcdef",
        length=3,
        shots=(0, 8),
        split: str = "train",
        heldout_every: int = 5,
        rules=None,
        header: str = "subst",
    ):
        if len(alphabet) < 2 or len(set(alphabet)) != len(alphabet):
            raise ValueError(
                f"SubstitutionTask: alphabet needs >= 2 distinct characters, got {alphabet!r}"
            )
        if any(c in alphabet for c in "> \n"):
            raise ValueError("SubstitutionTask: the alphabet cannot hold '>', ' ' or a newline")
        if split not in SPLITS:
            raise ValueError(f"SubstitutionTask: split must be one of {SPLITS}, got {split!r}")
        if not isinstance(heldout_every, int) or heldout_every < 2:
            raise ValueError(
                f"SubstitutionTask: heldout_every must be an int >= 2, got {heldout_every!r}"
            )
        self.alphabet = alphabet
        self.length = int_range(length, "SubstitutionTask: length", 1)
        self.shots = int_range(shots, "SubstitutionTask: shots", 0)
        self.split = split
        self.heldout_every = heldout_every
        self.header = header
        self.rules = None
        if rules is not None:
            rules = list(rules)
            for r in rules:
                if sorted(r) != sorted(alphabet):
                    raise ValueError(
                        f"SubstitutionTask: rule {r!r} is not a permutation of {alphabet!r}"
                    )
                if self.split_of(r) != split:
                    raise ValueError(
                        f"SubstitutionTask: rule {r!r} is a {self.split_of(r)} rule, not {split}"
                    )
            if not rules:
                raise ValueError("SubstitutionTask: rules, when given, must not be empty")
            self.rules = rules
        self.name = f"subst-{split}"

    def split_of(self, image: str) -> str:
        return rule_split(self.alphabet, image, self.heldout_every)

    def all_rules(self) -> list[str]:
        """Every rule of this task's split, as images π(Σ) (m! permutations: keep m small)."""
        if self.rules is not None:
            return list(self.rules)
        every = ("".join(p) for p in itertools.permutations(self.alphabet))
        return [r for r in every if self.split_of(r) == self.split]

    def draw_rule(self, rng: np.random.Generator) -> str:
        """A uniformly random rule of the split (rejection sampling over all permutations)."""
        if self.rules is not None:
            return self.rules[int(rng.integers(len(self.rules)))]
        while True:
            image = "".join(self.alphabet[i] for i in rng.permutation(len(self.alphabet)))
            if self.split_of(image) == self.split:
                return image

    @staticmethod
    def apply(alphabet: str, image: str, x: str) -> str:
        table = dict(zip(alphabet, image))
        return "".join(table[c] for c in x)

    def sample(self, rng: np.random.Generator) -> Example:
        image = self.draw_rule(rng)
        k = draw(rng, self.shots)
        pairs = []
        for _ in range(k + 1):
            x = random_string(rng, self.alphabet, draw(rng, self.length))
            pairs.append((x, self.apply(self.alphabet, image, x)))
        (query, answer), demos = pairs[-1], pairs[:-1]
        shown = {c for x, _ in demos for c in x}
        prompt = few_shot_prompt(self.header, demos, query)
        return self._example(
            prompt,
            answer + NEWLINE,
            answer,
            rule=image,
            shots=k,
            query=query,
            covered=set(query) <= shown,  # could a perfect reader of the prompt answer it?
        )
