"""Evaluating a model by what it answers: exact match, pass@k, and majority vote over samples.

A task with exact answers (tinyllm/data/tasks) turns a completion into a score of 0 or 1. With
one greedy completion per question, accuracy is the mean score — **exact match**. Test-time
scaling spends more compute per question instead: sample N completions at a temperature
(one batched `generate` call, N copies of every prompt side by side, so the KV cache serves all
of them at once) and combine them in one of two ways.

**pass@k** (Chen et al. 2021, "Evaluating Large Language Models Trained on Code"): the question
counts as solved if *any* of k samples is right — the measure when a verifier (unit tests, an
exact checker) can pick the right sample out. If a question's samples are right with probability
p, pass@k = 1 − (1 − p)^k. Estimating it by plugging in p̂ = c/n from n samples with c right is
biased low: 1 − (1 − p)^k is concave in p, so by Jensen's inequality E[1 − (1 − p̂)^k] ≤
1 − (1 − p)^k. The unbiased estimator draws k of the n samples without replacement and asks
whether at least one is right:

    pass@k = 1 − C(n − c, k) / C(n, k)           (0 ≤ c ≤ n, 1 ≤ k ≤ n)

averaged over questions. The binomials themselves outgrow floats (C(2000, 1000) ≈ 10⁶⁰⁰, the
largest float64 is about 10³⁰⁸); their ratio is a product of c factors, each in [0, 1], which
never does:

    C(n − c, k) / C(n, k) = Π_{i = n−c+1}^{n} (1 − k / i)        (= 0 when n − c < k)

**majority@k** (self-consistency, Wang et al. 2022): with no verifier, the k samples vote and
the most frequent final answer is the model's answer. Ties are broken by first appearance: of
the answers with the most votes, the one sampled first wins (deterministic, and unbiased among
the tied answers since the samples are exchangeable). An empty answer (the completion gave
none) abstains; if every sample abstains the vote has no answer and the question is wrong.
From n samples, majority@k is estimated by splitting them into ⌊n/k⌋ disjoint groups of k in
sample order and averaging the groups' votes — every group is an independent draw of k samples.

The two curves tell different things. pass@k grows toward the fraction of questions the model
*can* answer at all (any sample right); majority@k rises toward the accuracy of the model's
*modal* answer, then stops: when the most likely answer is wrong, more votes make the wrong
answer surer.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from tinyllm.generate import generate


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 − C(n−c, k)/C(n, k)."""
    for name, value in (("n", n), ("c", c), ("k", k)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise TypeError(f"pass_at_k: {name} must be an integer, got {value!r}")
    if n < 1:
        raise ValueError(f"pass_at_k: n must be >= 1 sample, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: c must be in [0, n={n}], got {c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: k must be in [1, n={n}] (k samples drawn from n), got {k}")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    i = np.arange(n - c + 1, n + 1, dtype=np.float64)
    return float(1.0 - np.prod(1.0 - k / i))


def majority_vote(answers: Sequence[str]) -> str | None:
    """The most frequent non-empty answer; ties go to the one that appears first; None if all
    answers are empty."""
    votes = Counter(a for a in answers if a)
    if not votes:
        return None
    top = max(votes.values())
    return next(a for a in answers if a and votes[a] == top)  # first appearance among the tied


def exact_match(predictions: Sequence[str | None], references: Sequence[str]) -> float:
    """The fraction of predictions equal to their reference (None never matches)."""
    if len(predictions) != len(references):
        raise ValueError(
            f"exact_match: {len(predictions)} predictions for {len(references)} references"
        )
    if not references:
        raise ValueError("exact_match: no references")
    return float(np.mean([p is not None and p == r for p, r in zip(predictions, references)]))


def mean_pass_at_k(correct: np.ndarray, k: int) -> float:
    """pass@k averaged over questions; `correct` (Q, n) booleans, one row of samples each."""
    correct = np.asarray(correct, dtype=bool)
    if correct.ndim != 2:
        raise ValueError(
            f"mean_pass_at_k: correct must be (questions, samples), got shape {correct.shape}"
        )
    n = correct.shape[1]
    return float(np.mean([pass_at_k(n, int(c), k) for c in correct.sum(axis=1)]))


def majority_at_k(answers: Sequence[Sequence[str]], references: Sequence[str], k: int) -> float:
    """majority@k: each question's n answers split into ⌊n/k⌋ groups of k (in order), each
    group votes; the mean over groups and questions of (vote == reference)."""
    if not answers:
        raise ValueError("majority_at_k: no questions")
    if len(answers) != len(references):
        raise ValueError(
            f"majority_at_k: {len(answers)} rows of answers for {len(references)} references"
        )
    n = len(answers[0])
    if any(len(row) != n for row in answers):
        raise ValueError("majority_at_k: every question needs the same number of samples")
    if not 1 <= k <= n:
        raise ValueError(f"majority_at_k: k must be in [1, n={n}], got {k}")
    groups = n // k
    hits = [
        majority_vote(row[g * k : (g + 1) * k]) == ref
        for row, ref in zip(answers, references)
        for g in range(groups)
    ]
    return float(np.mean(hits))


def sample_completions(
    model,
    tokenizer,
    prompts: Sequence[str],
    num_samples: int,
    max_new_tokens: int,
    *,
    eos_token_id: int,
    do_sample: bool = True,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
    max_batch: int = 1024,
) -> list[list[str]]:
    """`num_samples` completions of every prompt → a list (per prompt) of decoded strings.

    The prompts are encoded, repeated `num_samples` times, left-padded to a common length and
    decoded together: one `generate` call per chunk of at most `max_batch` sequences, so the
    KV cache and every matrix product serve many samples at once. A completion is the text of
    its new tokens up to (not including) the first `eos_token_id`. Chunk c samples with seed
    `seed + c`, so the same arguments give the same completions."""
    if num_samples < 1:
        raise ValueError(f"sample_completions: num_samples must be >= 1, got {num_samples}")
    if max_batch < 1:
        raise ValueError(f"sample_completions: max_batch must be >= 1, got {max_batch}")
    if not prompts:
        return []
    encoded = [tokenizer.encode(p) for p in prompts]
    if any(len(ids) == 0 for ids in encoded):
        raise ValueError("sample_completions: a prompt encodes to no tokens")
    rows = [ids for ids in encoded for _ in range(num_samples)]  # (Q·N) prompts, grouped
    texts: list[str] = []
    for c, start in enumerate(range(0, len(rows), max_batch)):
        chunk = rows[start : start + max_batch]
        width = max(len(ids) for ids in chunk)
        idx = np.zeros((len(chunk), width), dtype=np.int64)
        mask = np.zeros((len(chunk), width), dtype=np.int64)
        for i, ids in enumerate(chunk):  # left padding: every prompt ends at the last column
            idx[i, width - len(ids) :] = ids
            mask[i, width - len(ids) :] = 1
        out = generate(
            model,
            idx,
            max_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            eos_token_id=eos_token_id,
            attention_mask=mask if (mask == 0).any() else None,
            seed=seed + c,
        )
        for new in out[:, width:].tolist():
            if eos_token_id in new:
                new = new[: new.index(eos_token_id)]
            texts.append(tokenizer.decode(new))
    return [texts[q * num_samples : (q + 1) * num_samples] for q in range(len(prompts))]
