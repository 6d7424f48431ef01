"""Key-value lookup: read a small table in the prompt and return the value of one key.

The prompt lists n pairs `key=value` (distinct one-letter keys, random two-digit values) and asks
for one of the keys:

    table: g=41 q=07 c=93 x=58
    value of c?                  →  93

The answer is nowhere but in the prompt, so the task cannot be memorized: a model must find the
asked key among the listed ones and copy what follows it. In a transformer that is one
attention lookup (query: the asked key; match: the same key in the table; copy: the next
tokens), the same induction-style retrieval that in-context learning rests on. Difficulty is
the number of keys n: more distractors to attend past, and a longer prompt.

Scoring is exact: the first line of the completion, stripped, must equal the value.
"""

from __future__ import annotations

import string

import numpy as np

from tinyllm.data.tasks.base import Example, Task


class KeyValueLookup(Task):
    """`n_keys` pairs key=value, then a question for one key; the answer is its value."""

    name = "lookup"

    def __init__(self, n_keys: int = 4, value_digits: int = 2):
        if isinstance(n_keys, bool) or not isinstance(n_keys, int) or not 1 <= n_keys <= 26:
            raise ValueError(f"KeyValueLookup: n_keys must be an int in [1, 26], got {n_keys!r}")
        if isinstance(value_digits, bool) or not isinstance(value_digits, int) or value_digits < 1:
            raise ValueError(
                f"KeyValueLookup: value_digits must be a positive int, got {value_digits!r}"
            )
        self.n_keys, self.value_digits = n_keys, value_digits
        self.name = f"lookup{n_keys}"

    def sample(self, rng: np.random.Generator) -> Example:
        keys = rng.choice(list(string.ascii_lowercase), size=self.n_keys, replace=False)
        values = ["".join(rng.choice(list(string.digits), self.value_digits)) for _ in keys]
        ask = int(rng.integers(self.n_keys))
        table = "".join(f" {k}={v}" for k, v in zip(keys, values))  # " c" as in the question
        prompt = f"table:{table}\nvalue of {keys[ask]}?"
        pairs = {str(k): v for k, v in zip(keys, values)}
        return self._example(prompt, values[ask], values[ask], key=str(keys[ask]), pairs=pairs)
