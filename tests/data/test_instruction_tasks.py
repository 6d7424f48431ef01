"""The lookup and review tasks: answers re-derived from the prompt text alone, exact scoring,
the difficulty knobs, and bad arguments."""

import re

import numpy as np
import pytest

from tinyllm.data.tasks.lookup import KeyValueLookup
from tinyllm.data.tasks.reviews import BAD_WORDS, GOOD_WORDS, ReviewSentiment, majority_label


@pytest.mark.parametrize("n_keys", [1, 4, 9])
def test_lookup_answer_is_the_asked_keys_value_in_the_prompt(n_keys):
    for e in KeyValueLookup(n_keys).examples(50, seed=n_keys):
        table, question = e.prompt.split("\n")
        assert table.startswith("table: ")
        pairs = dict(p.split("=") for p in table[len("table: ") :].split(" "))
        assert len(pairs) == n_keys  # distinct keys: the difficulty knob
        (asked,) = re.fullmatch(r"value of (\w)\?", question).groups()
        assert e.answer == e.target == pairs[asked]
        assert e.score(pairs[asked]) == 1.0
        assert e.score(f" {pairs[asked]} \nmore text") == 1.0  # the first line, stripped
        wrong = str((int(pairs[asked]) + 1) % 100).zfill(2)
        assert e.score(wrong) == 0.0 and e.score("") == 0.0


def test_reviews_label_is_the_majority_of_the_words_in_the_prompt():
    labels = []
    for e in ReviewSentiment(5).examples(200, seed=0):
        review = e.prompt.split("\n")[0]
        words = re.findall(r"was (\w+)", review)
        assert len(words) == 5
        good = sum(w in GOOD_WORDS for w in words)
        bad = sum(w in BAD_WORDS for w in words)
        assert good + bad == 5
        truth = "positive" if good > bad else "negative"
        assert e.answer == truth
        assert e.score(truth) == 1.0
        assert e.score("Positive" if truth == "positive" else "Negative") == 0.0  # exact
        assert e.score({"positive": "negative", "negative": "positive"}[truth]) == 0.0
        labels.append(truth)
    assert 0.3 < np.mean([lab == "positive" for lab in labels]) < 0.7  # both labels occur


def test_majority_label_refuses_other_words():
    assert majority_label(["great", "dull", "fine"]) == "positive"
    with pytest.raises(ValueError, match="not opinion words"):
        majority_label(["great", "purple"])


@pytest.mark.parametrize(
    "make,word",
    [
        (lambda: KeyValueLookup(0), "n_keys"),
        (lambda: KeyValueLookup(27), "n_keys"),
        (lambda: KeyValueLookup(3, value_digits=0), "value_digits"),
        (lambda: ReviewSentiment(2), "n_opinions"),
        (lambda: ReviewSentiment(0), "n_opinions"),
    ],
)
def test_bad_difficulty_is_named(make, word):
    with pytest.raises(ValueError, match=word):
        make()


def test_same_seed_same_examples():
    for task in (KeyValueLookup(4), ReviewSentiment(3)):
        a, b = task.examples(10, seed=7), task.examples(10, seed=7)
        assert [e.prompt for e in a] == [e.prompt for e in b]
