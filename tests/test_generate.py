"""tinyllm.generate: decoding strategies, logits processing, KV cache, batching.

The logits processors are checked on hand examples written from their definitions (Hugging
Face's semantics: repetition penalty → temperature → top-k → top-p, the last three only when
sampling); the decoding loop against an independent argmax loop over full forward passes.
"""

import numpy as np
import pytest

from tinyllm.generate import (
    apply_repetition_penalty,
    apply_top_k,
    apply_top_p,
    choose_next,
    decode_loop,
    process_scores,
)
from tinyllm.models import GPT, GPTConfig

V = 29


@pytest.fixture(scope="module")
def model():
    """A random GPT with *sharp*, varied next-token distributions.

    GPT-2's init (std 0.02) makes every distribution nearly uniform and greedy decoding then
    repeats one token; larger weights give distinct continuations for distinct prompts, so
    the comparisons below can tell a wrong context from a right one."""
    m = GPT(
        GPTConfig(vocab_size=V, block_size=16, n_layer=2, n_head=2, n_embd=32),
        generator=np.random.default_rng(0),
    )
    r = np.random.default_rng(1)
    for name, p in m.named_parameters():
        if p.ndim == 2:
            p.data[...] = r.normal(0, 1.0 if "wte" in name or "wpe" in name else 0.3, p.shape)
    return m.eval()


def greedy_by_hand(model, prompt, n):
    """The definition: append argmax of the last position's logits, re-running the model on the
    whole (cropped to block_size) sequence every step."""
    out = np.asarray(prompt)
    for _ in range(n):
        logits, _ = model(out[:, -model.config.block_size :])
        out = np.concatenate([out, logits.data[:, -1].argmax(-1)[:, None]], axis=1)
    return out


def test_greedy_is_argmax_step_by_step(model):
    prompt = np.array([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]])
    expected = greedy_by_hand(model, prompt, 8)
    for use_cache in (True, False):
        np.testing.assert_array_equal(model.generate(prompt, 8, use_cache=use_cache), expected)
    assert len(np.unique(expected[:, 5:])) > 4  # the model does not repeat one token


def test_greedy_beyond_block_size_crops_the_context(model):
    prompt = np.array([[1, 2, 3, 4, 5, 6, 7]])
    n = 20  # 27 tokens > block_size 16
    expected = greedy_by_hand(model, prompt, n)
    for use_cache in (True, False):
        np.testing.assert_array_equal(model.generate(prompt, n, use_cache=use_cache), expected)


@pytest.mark.parametrize(
    "opts", [dict(), dict(temperature=0.7, top_k=10), dict(top_p=0.9, repetition_penalty=1.3)]
)
def test_kv_cache_gives_the_same_samples(model, opts):
    prompt = np.array([[3, 1, 4], [2, 7, 1], [8, 2, 8]])
    for n in (6, 25):  # 25: past block_size
        a = model.generate(prompt, n, do_sample=True, seed=5, use_cache=True, **opts)
        b = model.generate(prompt, n, do_sample=True, seed=5, use_cache=False, **opts)
        np.testing.assert_array_equal(a, b)
        assert a.shape == (3, 3 + n)


def test_seeded_sampling_is_reproducible(model):
    prompt = np.array([[1, 2, 3]])
    a = model.generate(prompt, 12, do_sample=True, seed=123)
    b = model.generate(prompt, 12, do_sample=True, seed=123)
    c = model.generate(prompt, 12, do_sample=True, seed=124)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
    np.testing.assert_array_equal(
        model.generate(prompt, 5, do_sample=True, generator=g1),
        model.generate(prompt, 5, do_sample=True, generator=g2),
    )


@pytest.mark.parametrize("use_cache", [True, False])
def test_left_padded_batch_equals_each_prompt_alone(model, use_cache):
    prompts = [[5, 9, 2], [7, 1, 3, 8, 4], [2, 6, 1, 1, 9, 3, 7]]
    n = 12  # 7 + 12 > block_size 16: cropping too
    width = max(map(len, prompts))
    pad = 0
    batch = np.array([[pad] * (width - len(p)) + p for p in prompts])
    mask = np.array([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    out = model.generate(batch, n, attention_mask=mask, use_cache=use_cache)
    news = []
    for p, row in zip(prompts, out):
        alone = model.generate(np.array([p]), n, use_cache=use_cache)
        np.testing.assert_array_equal(row[width:], alone[0, len(p) :])
        news.append(tuple(alone[0, len(p) :]))
    assert len(set(news)) == 3  # three distinct continuations
    # without the mask the padding is read as tokens and the short prompts change
    unmasked = model.generate(batch, n, use_cache=use_cache)
    assert not np.array_equal(unmasked[0, width:], out[0, width:])


def test_attention_mask_shape_is_checked(model):
    with pytest.raises(ValueError, match="attention_mask"):
        model.generate(np.array([[1, 2, 3]]), 2, attention_mask=np.ones((1, 2)))


# ---- EOS -------------------------------------------------------------------------------------


def scripted(rows):
    """A fake model for decode_loop: at step s, row b's logits pick rows[b][s]."""
    calls = []

    def next_scores(tokens, mask, n_new):
        s = len(calls)
        calls.append(tokens.shape)
        z = np.zeros((len(rows), V))
        for b, seq in enumerate(rows):
            z[b, seq[min(s, len(seq) - 1)]] = 10.0
        return z

    return next_scores, calls


def run_loop(next_scores, prompt, n, eos, pad, **kw):
    opts = dict(do_sample=False, temperature=1.0, top_k=None, top_p=None, repetition_penalty=1.0)
    opts.update(kw)
    return decode_loop(
        next_scores,
        prompt,
        np.ones_like(prompt),
        n,
        opts["do_sample"],
        opts["temperature"],
        opts["top_k"],
        opts["top_p"],
        opts["repetition_penalty"],
        eos,
        pad,
        np.random.default_rng(0),
    )


def test_eos_stops_and_pads():
    fn, calls = scripted([[4, 2, 5, 6, 7, 8], [4, 5, 6, 2, 9, 9]])  # EOS = 2
    out = run_loop(fn, np.array([[1], [1]]), 10, eos=2, pad=0)
    np.testing.assert_array_equal(out, [[1, 4, 2, 0, 0], [1, 4, 5, 6, 2]])
    assert len(calls) == 4  # stopped when both had finished
    fn, _ = scripted([[4, 2, 5], [4, 5, 6]])
    out = run_loop(fn, np.array([[1], [1]]), 4, eos=2, pad=0)
    np.testing.assert_array_equal(out, [[1, 4, 2, 0, 0], [1, 4, 5, 6, 6]])  # max_new_tokens


def test_eos_through_gpt_generate(model):
    prompt = np.array([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]])
    free = model.generate(prompt, 8)
    eos = int(free[0, 7])  # row 0's third new token
    out = model.generate(prompt, 8, eos_token_id=eos, pad_token_id=V - 1)
    first = {
        b: next((t for t in range(5, free.shape[1]) if free[b, t] == eos), None) for b in range(2)
    }
    for b in range(2):
        end = free.shape[1] if first[b] is None else first[b] + 1
        np.testing.assert_array_equal(out[b, :end], free[b, :end])
        assert (out[b, end:] == V - 1).all()
    # a batch of one stops right after its EOS
    alone = model.generate(prompt[:1], 8, eos_token_id=eos)
    np.testing.assert_array_equal(alone[0], free[0, : first[0] + 1])


# ---- logits processors on hand examples -------------------------------------------------------


def kept(scores):
    return set(np.flatnonzero(np.isfinite(scores[0])))


def test_top_k_keeps_exactly_k():
    r = np.random.default_rng(0)
    z = r.standard_normal((4, 50))
    out = apply_top_k(z, 7)
    for row, orig in zip(out, z):
        assert set(np.flatnonzero(np.isfinite(row))) == set(np.argsort(orig)[-7:])
        np.testing.assert_array_equal(row[np.isfinite(row)], orig[np.isfinite(row)])
    assert np.isfinite(apply_top_k(z, 100)).all()  # k ≥ V keeps everything


def test_top_k_ties_at_the_kth_score_are_all_kept():
    # Hugging Face's TopKLogitsWarper removes scores *below* the k-th largest, so tokens tied
    # with the k-th are kept too: here k=2 keeps 3 tokens.
    z = np.array([[1.0, 2.0, 2.0, 3.0]])
    assert kept(apply_top_k(z, 2)) == {1, 2, 3}


# probabilities out of order, so the test also checks that indices are mapped back
PROBS = np.array([[0.15, 0.5, 0.05, 0.3]])


@pytest.mark.parametrize(
    "p, expected",
    [
        (0.3, {1}),  # 0.5 alone already reaches 0.3
        (0.5, {1}),  # … and reaches 0.5 exactly
        (0.7, {1, 3}),  # 0.5 < 0.7 ≤ 0.5 + 0.3: the crossing token (0.3) is kept
        (0.79, {1, 3}),
        (0.81, {1, 3, 0}),  # 0.8 < 0.81: needs 0.15 as well
        (0.96, {1, 3, 0, 2}),
        (1.0, {1, 3, 0, 2}),
    ],
)
def test_top_p_keeps_the_smallest_set_reaching_p(p, expected):
    assert kept(apply_top_p(np.log(PROBS), p)) == expected


def test_top_p_exact_boundary():
    """When the top tokens' mass equals p exactly, they already reach p: nothing more is kept.
    (Dyadic probabilities, so 0.5 + 0.25 = 0.75 holds exactly in floating point; decimal ties
    are the next test.)"""
    z = np.log(np.array([[0.125, 0.5, 0.125, 0.25]]))
    assert kept(apply_top_p(z, 0.75)) == {1, 3}
    assert kept(apply_top_p(z, 0.5)) == {1}
    # 0.5 + 0.25 + 0.125 = 0.875: one of the two tied 0.125 tokens — the first by index
    assert kept(apply_top_p(z, 0.875)) == {1, 3, 0}


@pytest.mark.parametrize(
    "probs, p, expected",
    [
        ([0.15, 0.5, 0.05, 0.3], 0.8, {1, 3}),  # 0.5 + 0.3 = 0.8 reaches 0.8
        ([0.1, 0.2, 0.3, 0.4], 0.9, {3, 2, 1}),  # 0.4 + 0.3 + 0.2 → 0.8999999999999999
        ([0.1, 0.2, 0.3, 0.4], 0.7, {3, 2}),
        ([0.6, 0.3, 0.1], 0.9, {0, 1}),
        ([0.7, 0.1, 0.2], 0.9, {0, 2}),
    ],
)
def test_top_p_decimal_ties_reach_p_despite_rounding(probs, p, expected):
    """Decimal probabilities whose partial sum equals p on paper: the set reaches p, so the
    next token is removed, whichever way the floating-point sum happens to round."""
    assert kept(apply_top_p(np.log(np.array([probs])), p)) == expected


def test_top_p_always_keeps_the_most_likely():
    z = np.log(np.array([[0.9, 0.05, 0.05]]))
    assert kept(apply_top_p(z, 1e-9)) == {0}


def test_repetition_penalty_ctrl_rule():
    # CTRL / Hugging Face: a seen token's positive score is divided by θ, a negative one
    # multiplied by θ; each seen token once, however often it occurred.
    z = np.array([[2.0, -1.0, 0.5, 3.0, -4.0]])
    seen = np.array([[0, 1, 1, 4]])
    out = apply_repetition_penalty(z, seen, 2.0)
    np.testing.assert_array_equal(out, [[1.0, -2.0, 0.5, 3.0, -8.0]])
    # padding positions (mask 0) are not "seen"
    out = apply_repetition_penalty(z, seen, 2.0, mask=np.array([[1, 1, 1, 0]]))
    np.testing.assert_array_equal(out, [[1.0, -2.0, 0.5, 3.0, -4.0]])
    np.testing.assert_array_equal(apply_repetition_penalty(z, seen, 1.0), z)


def test_greedy_with_repetition_penalty_by_hand(model):
    prompt = np.array([[4, 4, 7]])
    out = prompt
    for _ in range(6):
        z = model(out)[0].data[:, -1].astype(np.float64)
        for t in set(out[0].tolist()):
            z[0, t] = z[0, t] / 1.5 if z[0, t] > 0 else z[0, t] * 1.5
        out = np.concatenate([out, z.argmax(-1)[:, None]], axis=1)
    np.testing.assert_array_equal(model.generate(prompt, 6, repetition_penalty=1.5), out)


def test_order_temperature_then_top_k_then_top_p():
    z = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    common = dict(
        tokens=np.zeros((1, 0), np.int64), mask=None, do_sample=True, repetition_penalty=1.0
    )
    # temperature 1 → scores unchanged; T = 2 → z / 2
    np.testing.assert_allclose(
        process_scores(z, temperature=2.0, top_k=None, top_p=None, **common), z / 2
    )
    # temperature before top-p: at T = 2 the probabilities flatten to ∝ √p =
    # [0.379, 0.293, 0.208, 0.120], so p = 0.7 needs three tokens (it needs two at T = 1)
    assert kept(process_scores(z, temperature=2.0, top_k=None, top_p=0.7, **common)) == {0, 1, 2}
    assert kept(process_scores(z, temperature=1.0, top_k=None, top_p=0.7, **common)) == {0, 1}
    # top-k before top-p: after top-k = 2 the survivors renormalize to [0.625, 0.375], so
    # p = 0.6 keeps one token (top-p first would have kept two)
    assert kept(process_scores(z, temperature=1.0, top_k=2, top_p=0.6, **common)) == {0}
    # greedy ignores temperature / top-k / top-p (as Hugging Face does)
    g = process_scores(
        z,
        temperature=0.5,
        top_k=1,
        top_p=0.1,
        tokens=common["tokens"],
        mask=None,
        do_sample=False,
        repetition_penalty=1.0,
    )
    np.testing.assert_array_equal(g, z)


# ---- sampling statistics ---------------------------------------------------------------------


def test_sampling_frequencies_match_softmax():
    z = np.array([1.0, 0.0, -1.0, 2.0, 0.5])
    p = np.exp(z) / np.exp(z).sum()
    n = 40000
    draws = choose_next(np.tile(z, (n, 1)), True, np.random.default_rng(1))
    # the definition, inverse-CDF sampling, on the same uniforms: identical draws
    u = np.random.default_rng(1).random(n)
    np.testing.assert_array_equal(draws, np.searchsorted(np.cumsum(p), u, side="right"))
    counts = np.bincount(draws, minlength=5)
    chi2 = ((counts - n * p) ** 2 / (n * p)).sum()
    # χ²(4 dof) 99.9% quantile is 18.47. (χ² is itself random: with seed 0 these uniforms
    # give 23.4 — and so does np.random.Generator.choice, draw for draw.)
    assert chi2 < 18.5


def test_sampling_after_top_k_and_temperature_frequencies():
    z = np.array([[1.0, 0.0, -1.0, 2.0, 0.5]])
    proc = process_scores(z, np.zeros((1, 0), np.int64), None, True, 0.5, 3, None, 1.0)
    q = np.exp(z[0] / 0.5)
    q[[1, 2]] = 0  # outside the top 3
    q /= q.sum()
    n = 40000
    draws = choose_next(np.tile(proc, (n, 1)), True, np.random.default_rng(1))
    counts = np.bincount(draws, minlength=5)
    assert counts[1] == counts[2] == 0
    live = q > 0
    chi2 = ((counts[live] - n * q[live]) ** 2 / (n * q[live])).sum()
    assert chi2 < 13.9  # χ²(2 dof) 99.9% quantile: 13.8


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(do_sample=True, temperature=0.0), "temperature"),
        (dict(top_k=0), "top_k"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(repetition_penalty=0.0), "repetition_penalty"),
    ],
)
def test_bad_options_are_rejected(model, kw, match):
    with pytest.raises(ValueError, match=match):
        model.generate(np.array([[1, 2]]), 3, **kw)


def test_max_new_tokens_zero_and_training_mode_restored(model):
    prompt = np.array([[1, 2]])
    np.testing.assert_array_equal(model.generate(prompt, 0), prompt)
    model.train()
    model.generate(prompt, 2)
    assert model.training
    model.eval()


# ---- Hugging Face's own warpers, when installed ----------------------------------------------


def test_processors_match_hugging_face():
    torch = pytest.importorskip("torch")
    tr = pytest.importorskip("transformers")
    r = np.random.default_rng(0)
    z = r.standard_normal((3, 40))
    ids = r.integers(0, 40, (3, 6))
    hf = tr.RepetitionPenaltyLogitsProcessor(1.4)(torch.tensor(ids), torch.tensor(z))
    np.testing.assert_allclose(apply_repetition_penalty(z, ids, 1.4), hf.numpy())
    hf = tr.TopKLogitsWarper(5)(torch.tensor(ids), torch.tensor(z))
    np.testing.assert_array_equal(np.isfinite(apply_top_k(z, 5)), np.isfinite(hf.numpy()))
    hf = tr.TopPLogitsWarper(0.63)(torch.tensor(ids), torch.tensor(z))
    np.testing.assert_array_equal(np.isfinite(apply_top_p(z, 0.63)), np.isfinite(hf.numpy()))
