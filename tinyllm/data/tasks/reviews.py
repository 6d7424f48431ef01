"""Review classification by a hidden rule: label a short synthetic review positive or negative.

A review is a few clauses, each an opinion of one aspect:

    the plot was dull, the cast was superb, the music was lovely.   →  positive

The rule that makes the label is not written in the prompt — a model must learn it from labeled
examples, as a sentiment classifier learns from data. Here it is the majority vote: with g
praising words and b criticizing ones among the clauses' n opinion words (n odd, so there are no
ties), the label is

    positive  if g > b,   negative  if b > g.

Each clause's word comes from a fixed list of good words and bad words, its aspect from a list
of aspects; aspect and word are drawn independently, so no aspect tells the label by itself.
Difficulty is n, the number of opinions: one clause is a word lookup, three need a count.

Scoring is exact: the first line of the completion, stripped, must be "positive" or "negative"
and equal the label.
"""

from __future__ import annotations

import numpy as np

from tinyllm.data.tasks.base import Example, Task

GOOD_WORDS = ("great", "superb", "lovely", "brilliant", "fine", "charming")
BAD_WORDS = ("awful", "dull", "poor", "boring", "weak", "clumsy")
ASPECTS = ("plot", "cast", "music", "ending", "pacing", "dialogue", "camera", "script")
LABELS = ("negative", "positive")


def majority_label(words) -> str:
    """The hidden rule: 'positive' if good words outnumber bad ones, else 'negative'."""
    good = sum(w in GOOD_WORDS for w in words)
    bad = sum(w in BAD_WORDS for w in words)
    if good + bad != len(words):
        unknown = [w for w in words if w not in GOOD_WORDS + BAD_WORDS]
        raise ValueError(f"majority_label: not opinion words: {unknown}")
    return LABELS[int(good > bad)]


class ReviewSentiment(Task):
    """Reviews of `n_opinions` clauses (odd), labeled by the majority of their opinion words."""

    name = "reviews"

    def __init__(self, n_opinions: int = 3):
        if (
            isinstance(n_opinions, bool)
            or not isinstance(n_opinions, int)
            or n_opinions < 1
            or n_opinions % 2 == 0
            or n_opinions > len(ASPECTS)
        ):
            raise ValueError(
                f"ReviewSentiment: n_opinions must be an odd int in [1, {len(ASPECTS)}], "
                f"got {n_opinions!r}"
            )
        self.n_opinions = n_opinions
        self.name = f"reviews{n_opinions}"

    def sample(self, rng: np.random.Generator) -> Example:
        n = self.n_opinions
        aspects = rng.choice(ASPECTS, size=n, replace=False)
        words = [str(rng.choice(GOOD_WORDS if rng.random() < 0.5 else BAD_WORDS)) for _ in range(n)]
        review = ", ".join(f"the {a} was {w}" for a, w in zip(aspects, words)) + "."
        label = majority_label(words)
        prompt = f"review: {review}\npositive or negative?"
        return self._example(prompt, label, label, words=words)
