"""tinyllm.models: GPT (nanoGPT layout), BERT-style encoder, T5-style encoder-decoder.

GPT is checked against nanoGPT's architecture re-written here in PyTorch (when installed) and
loaded with tinyllm's state dict: same logits, loss and gradients. Invariances (causality,
padding) are checked by changing inputs and comparing outputs; gradients by finite
differences in float64.
"""

import math

import numpy as np
import pytest
from torch_nanogpt import nanogpt_torch

from tinyllm.models import (
    GPT,
    T5,
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    GPTConfig,
    T5Config,
    shift_right,
)
from tinyllm.optim import AdamW
from tinyllm.testing import gradcheck


def to64(module):
    for p in module.parameters():
        p.data = p.data.astype(np.float64)
    return module


def log_softmax_np(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def small_gpt(seed=0, **kw):
    cfg = dict(vocab_size=23, block_size=12, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    cfg.update(kw)
    return GPT(GPTConfig(**cfg), generator=np.random.default_rng(seed))


# ---- GPT: names, init, counts, errors ------------------------------------------------------


def test_gpt_parameter_names_are_nanogpts():
    m = small_gpt()
    per_layer = [
        "ln_1.weight",
        "ln_1.bias",
        "attn.c_attn.weight",
        "attn.c_attn.bias",
        "attn.c_proj.weight",
        "attn.c_proj.bias",
        "ln_2.weight",
        "ln_2.bias",
        "mlp.c_fc.weight",
        "mlp.c_fc.bias",
        "mlp.c_proj.weight",
        "mlp.c_proj.bias",
    ]
    expected = (
        ["transformer.wte.weight", "transformer.wpe.weight"]
        + [f"transformer.h.{i}.{n}" for i in range(2) for n in per_layer]
        + ["transformer.ln_f.weight", "transformer.ln_f.bias", "lm_head.weight"]
    )
    assert list(m.state_dict()) == expected
    # the tied head is the same Parameter, so parameters() lists it once
    assert m.lm_head.weight is m.transformer.wte.weight
    assert "lm_head.weight" not in dict(m.named_parameters())
    sd = m.state_dict()
    assert sd["transformer.h.0.attn.c_attn.weight"].shape == (48, 16)
    assert sd["transformer.h.1.mlp.c_fc.weight"].shape == (64, 16)
    assert sd["transformer.h.1.mlp.c_proj.weight"].shape == (16, 64)


def test_gpt_parameter_count_formula():
    V, T, L, E = 23, 12, 3, 16
    m = small_gpt(n_layer=L)
    # per block: ln_1, ln_2 (2E each) + c_attn (3E² + 3E) + c_proj (E² + E) + c_fc (4E² + 4E)
    #            + mlp.c_proj (4E² + E) = 12E² + 13E; plus wte, wpe, ln_f; lm_head is tied
    total = V * E + T * E + L * (12 * E * E + 13 * E) + 2 * E
    assert m.get_num_params(non_embedding=False) == total
    assert m.get_num_params() == total - T * E
    # without biases: 12E² + 2E (two LayerNorm weights) per block, E for ln_f (L = 2 here)
    assert (
        small_gpt(bias=False).get_num_params(False) == V * E + T * E + 2 * (12 * E * E + 2 * E) + E
    )


def test_gpt_init_statistics():
    L = 4
    m = GPT(
        GPTConfig(vocab_size=512, block_size=64, n_layer=L, n_head=4, n_embd=256),
        generator=np.random.default_rng(0),
    )
    resid = 0.02 / math.sqrt(2 * L)
    for name, p in m.named_parameters():
        w = p.data
        if ".ln_" in name or "ln_f" in name:
            np.testing.assert_array_equal(w, np.ones_like(w) if name.endswith("weight") else 0)
        elif name.endswith(".bias"):
            np.testing.assert_array_equal(w, 0)
        else:
            std = resid if name.endswith("c_proj.weight") else 0.02
            # ≥ 16k samples per matrix: the sample std is within ~1% of the true std
            assert abs(w.std() / std - 1) < 0.04, (name, w.std(), std)
            assert abs(w.mean()) < 4 * std / math.sqrt(w.size)


def test_gpt_init_is_reproducible_from_the_generator():
    a, b = small_gpt(seed=7), small_gpt(seed=7)
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v, b.state_dict()[k])
    assert not np.array_equal(
        small_gpt(seed=8).transformer.wte.weight.data, a.transformer.wte.weight.data
    )


def test_gpt_clear_errors():
    m = small_gpt()
    with pytest.raises(ValueError, match="block_size"):
        m(np.zeros((1, 13), dtype=np.int64))
    with pytest.raises(ValueError, match="23"):
        m(np.array([[1, 23]]))
    with pytest.raises(ValueError, match="-1"):
        m(np.array([[1, -1]]))
    with pytest.raises(TypeError, match="integer"):
        m(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(n_embd=10, n_head=3)


def test_gpt_loss_is_mean_next_token_cross_entropy(rng):
    m = small_gpt()
    idx = rng.integers(0, 23, (2, 7))
    tg = rng.integers(0, 23, (2, 7))
    tg[0, 3] = -100
    logits, loss = m(idx, tg)
    assert logits.shape == (2, 7, 23)
    lp = log_softmax_np(logits.data.astype(np.float64))
    keep = tg != -100
    expected = -lp[keep, tg[keep]].mean()
    assert abs(loss.item() - expected) < 1e-5
    assert m(idx)[1] is None


def test_gpt_is_causal(rng):
    m = small_gpt()
    idx = rng.integers(0, 23, (1, 10))
    before = m(idx)[0].data
    idx2 = idx.copy()
    idx2[0, 6] = (idx[0, 6] + 1) % 23
    after = m(idx2)[0].data
    np.testing.assert_array_equal(after[:, :6], before[:, :6])
    assert np.abs(after[:, 6:] - before[:, 6:]).max() > 1e-4


def test_gpt_gradcheck_float64_fast(rng):
    m = to64(small_gpt(n_layer=1, vocab_size=11, n_embd=8))
    idx, tg = rng.integers(0, 11, (2, 5)), rng.integers(0, 11, (2, 5))
    for seed in range(2):
        gradcheck(lambda *ps: m(idx, tg)[1], list(m.parameters()), fast=True, seed=seed, atol=1e-8)


# ---- GPT vs nanoGPT re-written in PyTorch (tests/torch_nanogpt.py) --------------------------


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_gpt_matches_nanogpt_in_pytorch(rng, dtype, tol):
    torch = pytest.importorskip("torch")
    m = small_gpt(seed=3, n_layer=2, n_embd=32, n_head=4, block_size=16, vocab_size=50)
    if dtype == np.float64:
        to64(m)
    ref = nanogpt_torch(m.config).to(torch.float64 if dtype == np.float64 else torch.float32)
    ref.load_state_dict({k: torch.tensor(v) for k, v in m.state_dict().items()}, strict=True)
    idx, tg = rng.integers(0, 50, (3, 16)), rng.integers(0, 50, (3, 16))
    logits, loss = m(idx, tg)
    loss.backward()
    tl, tloss = ref(torch.tensor(idx), torch.tensor(tg))
    tloss.backward()
    np.testing.assert_allclose(logits.data, tl.detach().numpy(), atol=tol, rtol=tol)
    assert abs(loss.item() - tloss.item()) < tol
    tgrads = {n: p.grad.numpy() for n, p in ref.named_parameters()}
    for name, p in m.named_parameters():
        # both list the tied matrix once, under transformer.wte.weight (registered first)
        scale = max(1.0, np.abs(tgrads[name]).max())
        np.testing.assert_allclose(p.grad, tgrads[name], atol=tol * scale, rtol=tol, err_msg=name)
    assert set(tgrads) == {n for n, _ in m.named_parameters()}


# ---- BERT ------------------------------------------------------------------------------------


def bert_config(**kw):
    c = dict(
        vocab_size=30, block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.0, num_labels=3
    )
    c.update(kw)
    return BertConfig(**c)


def test_bert_mlm_loss_only_counts_labelled_positions(rng):
    m = BertForMaskedLM(bert_config(), generator=np.random.default_rng(0))
    ids = rng.integers(0, 30, (2, 9))
    labels = np.full((2, 9), -100)
    labels[0, [1, 4]] = [7, 8]
    labels[1, 6] = 29
    logits, loss = m(ids, labels=labels)
    assert logits.shape == (2, 9, 30)
    lp = log_softmax_np(logits.data.astype(np.float64))
    rows = [(0, 1, 7), (0, 4, 8), (1, 6, 29)]
    expected = -np.mean([lp[b, t, y] for b, t, y in rows])
    assert abs(loss.item() - expected) < 1e-5
    # the logits at the ignored positions receive no gradient through the loss
    loss.backward()
    assert m.mlm_bias.grad is not None
    g = np.zeros(30)
    for b, t, y in rows:  # ∂L/∂bias = mean over rows of (softmax − onehot)
        g += np.exp(lp[b, t])
        g[y] -= 1
    np.testing.assert_allclose(m.mlm_bias.grad, g / 3, atol=1e-5)


def test_bert_padding_does_not_change_real_positions(rng):
    m = BertForMaskedLM(bert_config(), generator=np.random.default_rng(1)).eval()
    ids = rng.integers(1, 30, (1, 6))
    alone = m(ids, attention_mask=np.ones((1, 6)))[0].data
    padded_ids = np.concatenate([ids, np.array([[0, 5, 9]])], axis=1)  # junk after the end
    mask = np.array([[1] * 6 + [0] * 3])
    padded = m(padded_ids, attention_mask=mask)[0].data
    np.testing.assert_allclose(padded[:, :6], alone, atol=1e-5)
    unmasked = m(padded_ids)[0].data  # without the mask the junk is seen
    assert np.abs(unmasked[:, :6] - alone).max() > 1e-3


def test_bert_classification_head(rng):
    m = BertForSequenceClassification(bert_config(), generator=np.random.default_rng(0))
    ids = rng.integers(0, 30, (4, 7))
    labels = np.array([0, 2, 1, 2])
    logits, loss = m(ids, labels=labels)
    assert logits.shape == (4, 3)
    lp = log_softmax_np(logits.data.astype(np.float64))
    assert abs(loss.item() - (-lp[np.arange(4), labels].mean())) < 1e-5
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert missing == [], missing  # the loss reaches every parameter


def test_bert_classifier_from_pretrained_mlm_copies_the_encoder():
    mlm = BertForMaskedLM(bert_config(), generator=np.random.default_rng(4))
    clf = BertForSequenceClassification.from_pretrained_mlm(
        mlm, num_labels=5, generator=np.random.default_rng(9)
    )
    assert clf.config.num_labels == 5 and clf.classifier.weight.shape == (5, 16)
    src = mlm.bert.state_dict()
    dst = clf.bert.state_dict()
    assert list(src) == list(dst)
    for k in src:
        np.testing.assert_array_equal(dst[k], src[k])
        assert dst[k] is not src[k]  # copied, not shared


# ---- T5 --------------------------------------------------------------------------------------


def t5_config(**kw):
    c = dict(
        vocab_size=20,
        block_size=16,
        n_layer=2,
        n_decoder_layer=2,
        n_head=2,
        n_embd=16,
        dropout=0.0,
        pad_token_id=0,
        decoder_start_token_id=1,
    )
    c.update(kw)
    return T5Config(**c)


def test_shift_right():
    labels = np.array([[5, 6, 7, -100], [8, -100, -100, -100]])
    np.testing.assert_array_equal(
        shift_right(labels, start_id=1, pad_id=0), [[1, 5, 6, 7], [1, 8, 0, 0]]
    )


def test_t5_loss_is_cross_entropy_of_shifted_teacher_forcing(rng):
    m = T5(t5_config(), generator=np.random.default_rng(0))
    src, labels = rng.integers(2, 20, (2, 5)), rng.integers(2, 20, (2, 4))
    labels[1, 3] = -100
    logits, loss = m(src, labels=labels)
    same, _ = m(src, decoder_input_ids=shift_right(labels, 1, 0))
    np.testing.assert_array_equal(logits.data, same.data)
    lp = log_softmax_np(logits.data.astype(np.float64))
    keep = labels != -100
    assert abs(loss.item() - (-lp[keep, labels[keep]].mean())) < 1e-5


def test_t5_encoder_padding_invariance(rng):
    m = T5(t5_config(), generator=np.random.default_rng(0))
    src = rng.integers(2, 20, (1, 5))
    dec = rng.integers(2, 20, (1, 4))
    alone = m(src, decoder_input_ids=dec, attention_mask=np.ones((1, 5)))[0].data
    padded = np.concatenate([src, [[0, 0, 7]]], axis=1)
    mask = np.array([[1, 1, 1, 1, 1, 0, 0, 0]])
    with_pad = m(padded, decoder_input_ids=dec, attention_mask=mask)[0].data
    np.testing.assert_allclose(with_pad, alone, atol=1e-5)
    mem_alone, _ = m.encode(src)
    mem_pad, _ = m.encode(padded, mask)
    np.testing.assert_allclose(mem_pad.data[:, :5], mem_alone.data, atol=1e-5)


def test_t5_decoder_is_causal_and_reads_the_encoder(rng):
    m = T5(t5_config(), generator=np.random.default_rng(0))
    src = rng.integers(2, 20, (1, 5))
    dec = rng.integers(2, 20, (1, 6))
    base = m(src, decoder_input_ids=dec)[0].data
    dec2 = dec.copy()
    dec2[0, 4] = 1 + dec[0, 4] % 19
    changed = m(src, decoder_input_ids=dec2)[0].data
    np.testing.assert_array_equal(changed[:, :4], base[:, :4])
    assert np.abs(changed[:, 4:] - base[:, 4:]).max() > 1e-4
    src2 = src.copy()
    src2[0, 2] = 1 + src[0, 2] % 19
    other = m(src2, decoder_input_ids=dec)[0].data
    assert np.abs(other[:, 0] - base[:, 0]).max() > 1e-5  # even the first position reads it


def test_t5_gradcheck_float64_fast(rng):
    m = to64(
        T5(t5_config(n_layer=1, n_decoder_layer=1, n_embd=8), generator=np.random.default_rng(0))
    )
    src, labels = rng.integers(2, 20, (2, 4)), rng.integers(2, 20, (2, 3))
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]])
    gradcheck(
        lambda *ps: m(src, labels=labels, attention_mask=mask)[1],
        list(m.parameters()),
        fast=True,
        atol=1e-8,
    )


@pytest.mark.parametrize("do_sample", [False, True])
def test_t5_generate_cache_equals_no_cache(rng, do_sample):
    m = T5(t5_config(), generator=np.random.default_rng(2))
    src = rng.integers(2, 20, (3, 6))
    mask = np.ones((3, 6))
    mask[2, 4:] = 0
    kw = dict(do_sample=do_sample, seed=11, attention_mask=mask, top_k=8 if do_sample else None)
    with_cache = m.generate(src, 8, use_cache=True, **kw)
    without = m.generate(src, 8, use_cache=False, **kw)
    np.testing.assert_array_equal(with_cache, without)
    assert with_cache.shape == (3, 9) and (with_cache[:, 0] == 1).all()
    # greedy decoding is argmax of the full (uncached) forward, step by step
    if not do_sample:
        out = np.ones((3, 1), dtype=np.int64)
        for _ in range(8):
            logits, _ = m(src, decoder_input_ids=out, attention_mask=mask)
            out = np.concatenate([out, logits.data[:, -1].argmax(-1)[:, None]], axis=1)
        np.testing.assert_array_equal(with_cache, out)


def test_t5_generate_cache_keeps_the_model_dtype(rng, monkeypatch):
    """A float64 model's cached keys/values stay float64 (they were once stored in float32)."""
    import tinyllm.models.t5 as t5_module

    made = []

    class RecordingCache(t5_module.KVCache):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(t5_module, "KVCache", RecordingCache)
    m = to64(T5(t5_config(), generator=np.random.default_rng(2)))
    m.generate(rng.integers(2, 20, (2, 5)), 3)
    assert made and all(c.k.dtype == c.v.dtype == np.float64 for c in made)


@pytest.mark.slow
def test_t5_learns_to_copy():
    """A 2+2-layer T5 learns to copy 4 tokens over 6 symbols in 350 steps.

    Copying needs the decoder's cross-attention to line up output position t with input
    position t; the loss starts near log 6 ≈ 1.8 (the symbol frequencies only) and must fall
    far below it, and greedy decoding with the KV cache must then copy."""
    V, L = 8, 4
    m = T5(t5_config(vocab_size=V, n_embd=32, block_size=8), generator=np.random.default_rng(0))
    opt = AdamW(m.parameters(), lr=3e-3, weight_decay=0.0)
    data = np.random.default_rng(0)
    losses = []
    for _ in range(350):
        src = data.integers(2, V, (32, L))
        _, loss = m(src, labels=src)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[:5]) > 1.4  # about log 6: nothing learned yet
    assert np.mean(losses[-10:]) < 0.25, np.round(losses[::25], 3)
    test = data.integers(2, V, (64, L))
    out = m.generate(test, L)  # greedy, with the KV cache
    assert (out[:, 1:] == test).mean() > 0.9


def test_t5_learns_to_reverse_where_gpt2_init_cannot():
    """Reversal needs position-to-position cross-attention. With T5's initialization (N(0, 1)
    embeddings, N(0, 1/fan_in) weights) a 2+2-layer T5 learns it in 150 steps; with the same
    model's weights re-drawn at GPT-2's N(0, 0.02), the blocks add almost nothing to the
    std-1 residual stream and the loss stays at log 17, the symbol frequencies."""

    def train(gpt2_init: bool) -> float:
        cfg = t5_config(vocab_size=20, n_embd=32, block_size=16)
        m = T5(cfg, generator=np.random.default_rng(0))
        if gpt2_init:
            g = np.random.default_rng(1)
            for name, p in m.named_parameters():
                if p.ndim == 2 and name != "shared.weight":
                    p.data[...] = g.normal(0.0, 0.02, p.shape)
        opt = AdamW(m.parameters(), lr=3e-3, weight_decay=0.0)
        data, losses = np.random.default_rng(0), []
        for _ in range(150):
            x = data.integers(3, 20, (32, 8))
            _, loss = m(x, labels=x[:, ::-1].copy())
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return float(np.mean(losses[-10:]))

    assert train(gpt2_init=False) < 0.5
    assert train(gpt2_init=True) > 2.5  # log 17 = 2.83
