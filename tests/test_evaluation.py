"""pass@k against brute-force enumeration, majority vote and its tie rule, exact match, and the
batched sampler against one-prompt-at-a-time generation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyllm.data import ByteLevelBPE
from tinyllm.evaluation import (
    exact_match,
    majority_at_k,
    majority_vote,
    mean_pass_at_k,
    pass_at_k,
    sample_completions,
)
from tinyllm.generate import generate
from tinyllm.models import GPT, GPTConfig


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """The fraction of all k-subsets of n samples (the first c correct) holding a correct one."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_equals_enumeration_of_every_k_subset(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k), abs=1e-12)


@given(st.integers(1, 300), st.data())
def test_pass_at_k_equals_the_binomial_ratio(n, data):
    c = data.draw(st.integers(0, n))
    k = data.draw(st.integers(1, n))
    exact = 1 - math.comb(n - c, k) / math.comb(n, k)  # Python's exact integers
    assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-9, abs=1e-12)


def test_pass_at_k_edge_cases():
    assert pass_at_k(10, 0, 1) == 0.0 and pass_at_k(10, 0, 10) == 0.0  # never right
    assert pass_at_k(10, 10, 1) == 1.0 and pass_at_k(10, 10, 10) == 1.0  # always right
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is the fraction right
    assert pass_at_k(10, 1, 10) == 1.0  # all samples drawn: the right one is among them
    assert pass_at_k(2000, 1000, 1000) == pytest.approx(1.0)  # binomials far beyond floats


@pytest.mark.parametrize(
    "n,c,k,problem",
    [(5, 2, 6, "k must be in"), (5, 2, 0, "k must be in"), (5, 6, 1, "c must be in"),
     (5, -1, 1, "c must be in"), (0, 0, 1, "n must be")],
)  # fmt: skip
def test_pass_at_k_refuses_impossible_counts(n, c, k, problem):
    with pytest.raises(ValueError, match=problem):
        pass_at_k(n, c, k)
    with pytest.raises(TypeError, match="integer"):
        pass_at_k(5, 2.0, 1)


def test_plug_in_estimate_is_biased_low_and_the_estimator_is_not():
    """Averaged over every outcome of n Bernoulli(p) samples, the estimator gives exactly
    1 − (1 − p)^k; plugging c/n into that formula gives less (Jensen)."""
    n, k, p = 6, 3, 0.3
    weights = [math.comb(n, c) * p**c * (1 - p) ** (n - c) for c in range(n + 1)]
    unbiased = sum(w * pass_at_k(n, c, k) for c, w in enumerate(weights))
    plug_in = sum(w * (1 - (1 - c / n) ** k) for c, w in enumerate(weights))
    truth = 1 - (1 - p) ** k
    assert unbiased == pytest.approx(truth, abs=1e-12)
    assert plug_in < truth - 0.01


def test_mean_pass_at_k_averages_questions():
    correct = np.array([[1, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=bool)
    assert mean_pass_at_k(correct, 1) == pytest.approx((0.25 + 1 + 0) / 3)
    assert mean_pass_at_k(correct, 4) == pytest.approx(2 / 3)


def test_majority_vote_counts_and_breaks_ties_by_first_appearance():
    assert majority_vote(["3", "5", "5"]) == "5"
    assert majority_vote(["3", "5", "5", "3"]) == "3"  # tie: "3" came first
    assert majority_vote(["5", "3", "3", "5"]) == "5"
    assert majority_vote(["7", "3", "5"]) == "7"  # all tied at one vote
    assert majority_vote(["", "", "4"]) == "4"  # empty answers abstain
    assert majority_vote(["", ""]) is None and majority_vote([]) is None


@given(st.lists(st.sampled_from(["", "1", "2", "3"]), min_size=1, max_size=12))
def test_majority_vote_matches_a_plain_count(answers):
    counts = {a: answers.count(a) for a in answers if a}
    vote = majority_vote(answers)
    if not counts:
        assert vote is None
        return
    best = max(counts.values())
    tied = [a for a in answers if counts.get(a) == best]
    assert vote == tied[0]


def test_majority_at_k_splits_samples_into_disjoint_groups():
    answers = [["1", "2", "2", "1", "1", "1"], ["9", "9", "9", "2", "2", "2"]]
    refs = ["1", "2"]
    # k = 1: the fraction of right samples; k = 2: (1,2)→1 (2,1)→2 (1,1)→1 | (9,9) (9,2)→9 (2,2)
    assert majority_at_k(answers, refs, 1) == pytest.approx((4 + 3) / 12)
    assert majority_at_k(answers, refs, 2) == pytest.approx((2 + 1) / 6)
    assert majority_at_k(answers, refs, 3) == pytest.approx((1 + 1) / 4)  # (1,2,2)→2 (1,1,1)→1
    assert majority_at_k(answers, refs, 6) == pytest.approx((1 + 0) / 2)  # 4 ones; 9 first
    with pytest.raises(ValueError, match="k must be in"):
        majority_at_k(answers, refs, 7)
    with pytest.raises(ValueError, match="same number"):
        majority_at_k([["1"], ["1", "2"]], refs, 1)


def test_exact_match():
    assert exact_match(["1", "2", None], ["1", "3", "4"]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="predictions"):
        exact_match(["1"], ["1", "2"])


@pytest.fixture(scope="module")
def tiny_model():
    cfg = GPTConfig(block_size=24, vocab_size=257, n_layer=1, n_head=2, n_embd=16)
    return GPT(cfg, generator=np.random.default_rng(0)), ByteLevelBPE([], ["<|endoftext|>"])


def test_batched_sampling_equals_generating_each_prompt_alone(tiny_model):
    """Greedy decoding of N copies of left-padded prompts in one batch gives, for each prompt,
    what generate gives it alone (padding changes nothing)."""
    model, tok = tiny_model
    prompts = ["12+34=", "7+8=", "123+456="]
    nl = tok.encode("\n")[0]
    out = sample_completions(
        model, tok, prompts, 3, 6, eos_token_id=nl, do_sample=False, max_batch=4
    )
    assert [len(row) for row in out] == [3, 3, 3]
    for prompt, row in zip(prompts, out):
        ids = np.array([tok.encode(prompt)])
        new = generate(model, ids, 6, eos_token_id=nl)[0, ids.shape[1] :].tolist()
        if nl in new:
            new = new[: new.index(nl)]
        assert row == [tok.decode(new)] * 3


def test_sampling_is_reproducible_and_varies_across_samples(tiny_model):
    model, tok = tiny_model
    kw = dict(eos_token_id=0, temperature=2.0, seed=5)
    a = sample_completions(model, tok, ["1+1="], 8, 5, **kw)
    assert a == sample_completions(model, tok, ["1+1="], 8, 5, **kw)
    assert len(set(a[0])) > 1  # a random model at T = 2 does not repeat itself 8 times
