"""tinyllm.nn: the Module tree, the layers, attention and transformer blocks.

Every expectation is computed independently of the code under test: a plain-NumPy formula
typed here, the equation of the paper, finite differences (tinyllm.testing.gradcheck in
float64), and — when PyTorch is installed — the torch.nn module loaded with the same weights.
"""

import math

import numpy as np
import pytest

import tinyllm
from tinyllm import nn
from tinyllm.engine import Tensor
from tinyllm.nn.attention import KVCache
from tinyllm.testing import gradcheck


def to64(module):
    """Convert every parameter of `module` to float64 in place (for gradcheck)."""
    for p in module.parameters():
        p.data = p.data.astype(np.float64)
    return module


def t64(a, requires_grad=True):
    return Tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


# ---- Module: the tree of parameters ---------------------------------------------------------


class Tied(nn.Module):
    """Two Linear layers that share one weight (like GPT's wte / lm_head)."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(3, 3)
        self.dec = nn.Linear(3, 3, bias=False)
        self.dec.weight = self.enc.weight
        self.register_buffer("scale", np.full(3, 2.0, dtype=np.float32))

    def forward(self, x):
        return self.dec(self.enc(x))


def test_tied_weight_counted_once_but_named_twice():
    m = Tied()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["enc.weight", "enc.bias"]
    assert len(list(m.parameters())) == 2
    assert m.num_parameters() == 9 + 3
    sd = m.state_dict()
    # PyTorch's order: a module's own parameters and buffers, then its children's
    assert list(sd) == ["scale", "enc.weight", "enc.bias", "dec.weight"]
    assert sd["dec.weight"] is sd["enc.weight"]  # the same array under both names


def test_state_dict_round_trip_and_buffers():
    a, b = Tied(), Tied()
    b.enc.bias.data[...] = 7.0
    b.register_buffer("scale", np.array([1.0, 2.0, 3.0], dtype=np.float32))
    a.load_state_dict(b.state_dict())
    for k in b.state_dict():
        np.testing.assert_array_equal(a.state_dict()[k], b.state_dict()[k])
    np.testing.assert_array_equal(a.scale, [1.0, 2.0, 3.0])  # a buffer is loaded too
    assert "scale" not in dict(a.named_parameters())
    # loading copies: changing the source afterwards does not reach the target
    b.enc.weight.data[...] = 0
    assert np.abs(a.enc.weight.data).sum() > 0


def test_load_state_dict_lists_every_problem_at_once():
    m = Tied()
    sd = dict(m.state_dict())
    del sd["enc.bias"]  # missing
    sd["enc.extra"] = np.zeros(1)  # unexpected
    sd["enc.weight"] = np.zeros((3, 4))  # wrong shape
    sd["dec.weight"] = np.zeros((3, 3))  # fine, but must not be loaded either
    before = m.enc.weight.data.copy()
    with pytest.raises(RuntimeError) as info:  # PyTorch's exception type
        m.load_state_dict(sd)
    msg = str(info.value)
    for needle in (
        "enc.bias",
        "enc.extra",
        "enc.weight",
        "(3, 4)",
        "(3, 3)",
        "missing",
        "unexpected",
    ):
        assert needle in msg, (needle, msg)
    # nothing was half-loaded
    np.testing.assert_array_equal(m.enc.weight.data, before)


def test_load_state_dict_non_strict_reports_keys():
    m = Tied()
    sd = {"enc.weight": np.ones((3, 3)), "other": np.ones(2)}
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert set(missing) == {"enc.bias", "dec.weight", "scale"}
    assert unexpected == ["other"]
    np.testing.assert_array_equal(m.enc.weight.data, np.ones((3, 3)))
    assert m.enc.weight.dtype == np.float32  # cast to the parameter's dtype


def test_train_eval_propagate_to_every_submodule():
    m = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5), nn.GELU()))
    assert all(x.training for x in m.modules())
    assert m.eval() is m
    assert not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())


def test_zero_grad_none_and_zeros():
    m = nn.Linear(2, 3)
    m(Tensor(np.ones((4, 2), np.float32))).sum().backward()
    assert m.weight.grad is not None
    m.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(m.weight.grad, np.zeros((3, 2)))
    m.zero_grad()
    assert m.weight.grad is None and m.bias.grad is None


def test_apply_visits_children_before_parent():
    inner = nn.Sequential(nn.Linear(1, 1), nn.GELU())
    outer = nn.Sequential(inner, nn.Dropout(0.1))
    order = []
    outer.apply(lambda mod: order.append(mod))
    expected = [inner[0], inner[1], inner, outer[1], outer]
    assert [id(x) for x in order] == [id(x) for x in expected]


def test_module_list_indexing():
    ml = nn.ModuleList([nn.Linear(1, 1) for _ in range(3)])
    assert ml[-1] is list(ml)[2] and ml[0] is list(ml)[0]
    assert len(ml[1:]) == 2 and ml[1:][0] is ml[1]
    for bad in (3, -4):
        with pytest.raises(IndexError, match="out of range"):
            ml[bad]
    names = [n for n, _ in nn.Sequential(ml).named_parameters()]
    assert names[:2] == ["0.0.weight", "0.0.bias"]


def test_module_dict_names():
    md = nn.ModuleDict({"a": nn.Linear(1, 2), "b": nn.LayerNorm(2)})
    assert "a" in md and "c" not in md
    assert [n for n, _ in md.named_parameters()] == ["a.weight", "a.bias", "b.weight", "b.bias"]


def test_assignment_before_super_init_is_a_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Linear(1, 1)

    with pytest.raises(RuntimeError, match="super"):
        Bad()


# ---- Layers vs their formulas -----------------------------------------------------------------


def test_linear_formula_and_pytorch_init_bounds(rng):
    lin = nn.Linear(5, 4, generator=np.random.default_rng(0))
    assert lin.weight.shape == (4, 5) and lin.bias.shape == (4,)
    bound = 1 / math.sqrt(5)
    assert np.abs(lin.weight.data).max() <= bound and np.abs(lin.bias.data).max() <= bound
    x = rng.standard_normal((2, 3, 5)).astype(np.float32)
    y = lin(Tensor(x)).data
    np.testing.assert_allclose(y, x @ lin.weight.data.T + lin.bias.data, rtol=1e-5, atol=1e-6)


def test_embedding_lookup_and_scatter_add_gradient(rng):
    emb = nn.Embedding(6, 3)
    ids = np.array([[0, 2, 2], [5, 0, 2]])
    out = emb(ids)
    np.testing.assert_array_equal(out.data, emb.weight.data[ids])
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(g)
    expected = np.zeros((6, 3), np.float32)
    np.add.at(expected, ids.reshape(-1), g.reshape(-1, 3))  # repeated ids accumulate
    np.testing.assert_allclose(emb.weight.grad, expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(IndexError, match="6"):
        emb(np.array([[6]]))


def test_layer_norm_formula_and_gradcheck(rng):
    ln = nn.LayerNorm(7, eps=1e-5)
    ln.weight.data[...] = rng.standard_normal(7)
    ln.bias.data[...] = rng.standard_normal(7)
    x = rng.standard_normal((3, 4, 7)).astype(np.float32) * 3 + 1
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)  # biased variance, as the paper
    expected = (x - mu) / np.sqrt(var + 1e-5) * ln.weight.data + ln.bias.data
    np.testing.assert_allclose(ln(Tensor(x)).data, expected, rtol=1e-5, atol=1e-5)
    to64(ln)
    gradcheck(lambda x, w, b: ln(x), [t64(x), ln.weight, ln.bias])


def test_gelu_is_the_erf_form():
    x = np.linspace(-4, 4, 41)
    expected = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
    np.testing.assert_allclose(nn.GELU()(Tensor(x)).data, expected, rtol=1e-12, atol=1e-12)


def test_dropout_train_and_eval():
    tinyllm.manual_seed(3)
    d = nn.Dropout(0.25)
    x = Tensor(np.ones((200, 200), np.float32))
    y = d(x).data
    zero_frac = (y == 0).mean()
    assert abs(zero_frac - 0.25) < 0.01  # 40k Bernoulli draws: σ ≈ 0.002
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.75], rtol=1e-6)
    d.eval()
    assert d(x) is x
    with pytest.raises(ValueError, match="probability"):
        nn.Dropout(1.5)


# ---- Positional encodings -------------------------------------------------------------------


@pytest.mark.parametrize("d_model", [8, 7])
def test_sinusoidal_table_is_the_paper_formula(d_model):
    # Vaswani et al. 2017, §3.5: PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(…)
    table = nn.sinusoidal_table(50, d_model, dtype=np.float64)
    expected = np.zeros((50, d_model))
    for pos in range(50):
        for i in range((d_model + 1) // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            expected[pos, 2 * i] = math.sin(angle)
            if 2 * i + 1 < d_model:
                expected[pos, 2 * i + 1] = math.cos(angle)
    np.testing.assert_allclose(table, expected, rtol=0, atol=1e-12)


def test_sinusoidal_module_adds_the_table_from_an_offset():
    pe = nn.SinusoidalPositionalEncoding(6, max_len=20)
    x = np.zeros((2, 5, 6), np.float32)
    np.testing.assert_allclose(pe(Tensor(x), offset=3).data[1], nn.sinusoidal_table(20, 6)[3:8])
    assert "pe" in pe.state_dict() and not list(pe.parameters())
    with pytest.raises(ValueError, match="max_len"):
        pe(Tensor(x), offset=16)


def test_learned_positions_rows_and_limit():
    lp = nn.LearnedPositionalEmbedding(10, 4)
    np.testing.assert_array_equal(lp(3, offset=2).data, lp.weight.data[2:5])
    with pytest.raises(ValueError, match="10"):
        lp(4, offset=7)


# ---- Multi-head attention vs a plain-NumPy transcription of the equations -------------------


def mha_numpy(m, xq, xkv, blocked=None):
    """MultiHead(Xq, Xkv) = Concat(head₁..head_h) W_Oᵀ + b_O, written head by head.
    `blocked` (B, L, S) True where attention is not allowed."""
    E, h = m.embed_dim, m.num_heads
    d = E // h
    lin = lambda layer, x: x @ layer.weight.data.T + layer.bias.data  # noqa: E731
    q, k, v = lin(m.q_proj, xq), lin(m.k_proj, xkv), lin(m.v_proj, xkv)
    B, L = xq.shape[0], xq.shape[1]
    out = np.zeros((B, L, E))
    for b in range(B):
        for i in range(h):
            sl = slice(i * d, (i + 1) * d)
            scores = q[b, :, sl] @ k[b, :, sl].T / math.sqrt(d)  # (L, S)
            if blocked is not None:
                scores = np.where(blocked[b], -np.inf, scores)
            w = np.exp(scores - scores.max(-1, keepdims=True))
            w /= w.sum(-1, keepdims=True)
            out[b, :, sl] = w @ v[b, :, sl]
    return lin(m.out_proj, out)


@pytest.fixture
def mha():
    tinyllm.manual_seed(5)
    return to64(nn.MultiHeadAttention(8, 2))


def test_mha_self_causal_cross_padding_vs_numpy(mha, rng):
    x = rng.standard_normal((2, 5, 8))
    mem = rng.standard_normal((2, 3, 8))
    np.testing.assert_allclose(mha(t64(x)).data, mha_numpy(mha, x, x), atol=1e-12)
    causal = np.triu(np.ones((5, 5), bool), k=1)
    np.testing.assert_allclose(
        mha(t64(x), is_causal=True).data,
        mha_numpy(mha, x, x, np.broadcast_to(causal, (2, 5, 5))),
        atol=1e-12,
    )
    np.testing.assert_allclose(
        mha(t64(x), attn_mask=causal).data,
        mha_numpy(mha, x, x, np.broadcast_to(causal, (2, 5, 5))),
        atol=1e-12,
    )
    pad = np.array([[False, False, True], [False, True, True]])  # True = padding key
    np.testing.assert_allclose(
        mha(t64(x), t64(mem), key_padding_mask=pad).data,
        mha_numpy(mha, x, mem, np.broadcast_to(pad[:, None], (2, 5, 3))),
        atol=1e-12,
    )


def test_mha_padding_keys_do_not_matter(mha, rng):
    x = rng.standard_normal((1, 4, 8))
    mem = rng.standard_normal((1, 3, 8))
    pad = np.array([[False, False, True]])
    y1 = mha(t64(x), t64(mem), key_padding_mask=pad).data
    mem[0, 2] = 100.0  # change the padded key's content
    y2 = mha(t64(x), t64(mem), key_padding_mask=pad).data
    np.testing.assert_allclose(y1, y2, atol=1e-12)
    with pytest.raises(ValueError, match="key_padding_mask"):
        mha(t64(x), t64(mem), key_padding_mask=np.zeros((1, 4), bool))


def test_mha_kv_cache_matches_full_causal(mha, rng):
    x = rng.standard_normal((2, 6, 8))
    full = mha(t64(x), is_causal=True).data
    cache = KVCache(2, 2, 10, 4, dtype=np.float64)
    parts = [mha(t64(x[:, :3]), is_causal=True, cache=cache).data]  # prefill 3
    for t in range(3, 6):  # then one at a time
        parts.append(mha(t64(x[:, t : t + 1]), is_causal=True, cache=cache).data)
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, atol=1e-12)
    assert cache.length == 6
    with pytest.raises(ValueError, match="max_len"):
        cache.append(np.zeros((2, 2, 5, 4)), np.zeros((2, 2, 5, 4)))


def test_mha_dropout_is_on_attention_weights_only_and_blocks_add_residual_dropout(rng):
    """torch.nn.MultiheadAttention's `dropout` drops attention weights, never the output.
    With zero values (v_proj = 0) every row of weights, dropped or not, averages zeros, so the
    output is exactly out_proj's bias; a dropout on the output would zero some of it."""
    tinyllm.manual_seed(3)
    m = to64(nn.MultiHeadAttention(8, 2, dropout=0.5))
    m.v_proj.weight.data[...] = 0.0
    m.v_proj.bias.data[...] = 0.0
    m.out_proj.bias.data[...] = 1.0
    m.train()
    y = m(t64(rng.standard_normal((2, 6, 8)))).data
    np.testing.assert_array_equal(y, np.ones((2, 6, 8)))
    # The encoder block drops the attention sub-layer's output before the residual add
    # (Vaswani et al. §5.4): with the MLP silenced, x_out − x is 0 or 1/(1 − p), both seen.
    block = to64(nn.EncoderBlock(8, 2, dropout=0.5))
    block.attn.v_proj.weight.data[...] = 0.0
    block.attn.v_proj.bias.data[...] = 0.0
    block.attn.out_proj.bias.data[...] = 1.0
    block.mlp.c_proj.weight.data[...] = 0.0
    block.mlp.c_proj.bias.data[...] = 0.0
    block.train()
    x = rng.standard_normal((2, 6, 8))
    delta = block(t64(x)).data - x
    assert set(np.round(np.unique(delta), 12)) == {0.0, 2.0}
    block.eval()
    np.testing.assert_allclose(block(t64(x)).data - x, 1.0, atol=1e-12)


def test_mha_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiHeadAttention(10, 3)


# ---- Gradients of whole blocks (finite differences, float64) --------------------------------


def test_mha_gradcheck_cross_with_padding(mha, rng):
    x, mem = t64(rng.standard_normal((2, 3, 8))), t64(rng.standard_normal((2, 4, 8)))
    pad = np.array([[False, False, False, True], [False, True, True, True]])
    gradcheck(
        lambda x, mem, *ps: mha(x, mem, key_padding_mask=pad),
        [x, mem] + list(mha.parameters()),
        atol=1e-6,
    )


def test_encoder_block_gradcheck(rng):
    tinyllm.manual_seed(1)
    block = to64(nn.EncoderBlock(8, 2))
    x = t64(rng.standard_normal((2, 4, 8)))
    pad = np.array([[False, False, False, False], [False, False, True, True]])
    gradcheck(
        lambda x, *ps: block(x, key_padding_mask=pad), [x] + list(block.parameters()), atol=1e-6
    )


def test_decoder_stack_gradcheck_fast(rng):
    tinyllm.manual_seed(2)
    dec = to64(nn.Decoder(2, 8, 2))
    x, mem = t64(rng.standard_normal((2, 4, 8))), t64(rng.standard_normal((2, 3, 8)))
    for seed in range(3):  # three random directions per input
        gradcheck(
            lambda x, mem, *ps: dec(x, mem),
            [x, mem] + list(dec.parameters()),
            fast=True,
            seed=seed,
            atol=1e-7,
        )


def test_feed_forward_is_w2_gelu_w1():
    tinyllm.manual_seed(0)
    ff = to64(nn.FeedForward(4))
    x = np.random.default_rng(0).standard_normal((3, 4))
    h = x @ ff.c_fc.weight.data.T + ff.c_fc.bias.data
    h = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in h.ravel()]).reshape(h.shape)
    expected = h @ ff.c_proj.weight.data.T + ff.c_proj.bias.data
    np.testing.assert_allclose(ff(t64(x)).data, expected, atol=1e-12)
    assert ff.c_fc.weight.shape == (16, 4)


# ---- the same layers vs torch.nn, loaded with the same weights ------------------------------


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def test_linear_embedding_layernorm_vs_torch(torch, rng):
    T = lambda a: torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=True)  # noqa
    lin = to64(nn.Linear(5, 3))
    tl = torch.nn.Linear(5, 3, dtype=torch.float64)
    tl.load_state_dict({k: torch.tensor(v) for k, v in lin.state_dict().items()})
    x = rng.standard_normal((4, 5))
    g = rng.standard_normal((4, 3))
    xt, xs = T(x), t64(x)
    tl(xt).backward(torch.tensor(g))
    lin(xs).backward(g)
    np.testing.assert_allclose(xs.grad, xt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(lin.weight.grad, tl.weight.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(lin.bias.grad, tl.bias.grad.numpy(), atol=1e-12)

    ln = to64(nn.LayerNorm(5))
    ln.weight.data[...] = rng.standard_normal(5)
    tln = torch.nn.LayerNorm(5, dtype=torch.float64)
    tln.load_state_dict({k: torch.tensor(v) for k, v in ln.state_dict().items()})
    xt, xs = T(x), t64(x)
    g = rng.standard_normal((4, 5))
    tln(xt).backward(torch.tensor(g))
    out = ln(xs)
    out.backward(g)
    np.testing.assert_allclose(out.data, tln(T(x)).detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(xs.grad, xt.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(ln.weight.grad, tln.weight.grad.numpy(), atol=1e-10)

    emb = to64(nn.Embedding(7, 3))
    temb = torch.nn.Embedding(7, 3, dtype=torch.float64)
    temb.load_state_dict({"weight": torch.tensor(emb.weight.data)})
    ids = np.array([[1, 1, 6], [0, 1, 3]])
    g = rng.standard_normal((2, 3, 3))
    temb(torch.tensor(ids)).backward(torch.tensor(g))
    emb(ids).backward(g)
    np.testing.assert_allclose(emb.weight.grad, temb.weight.grad.numpy(), atol=1e-12)


def _torch_mha_like(torch, m, kdim_same=True):
    """torch.nn.MultiheadAttention(batch_first=True) holding the weights of tinyllm's `m`:
    in_proj_weight is [W_q; W_k; W_v] stacked along the output axis."""
    tm = torch.nn.MultiheadAttention(
        m.embed_dim, m.num_heads, batch_first=True, dtype=torch.float64
    )
    with torch.no_grad():
        tm.in_proj_weight.copy_(
            torch.tensor(
                np.concatenate([m.q_proj.weight.data, m.k_proj.weight.data, m.v_proj.weight.data])
            )
        )
        tm.in_proj_bias.copy_(
            torch.tensor(
                np.concatenate([m.q_proj.bias.data, m.k_proj.bias.data, m.v_proj.bias.data])
            )
        )
        tm.out_proj.weight.copy_(torch.tensor(m.out_proj.weight.data))
        tm.out_proj.bias.copy_(torch.tensor(m.out_proj.bias.data))
    return tm


@pytest.mark.parametrize("case", ["self", "causal", "cross_padding", "float_mask"])
def test_mha_vs_torch_multihead_attention(torch, mha, rng, case):
    tm = _torch_mha_like(torch, mha)
    B, L, S, E = 2, 5, 3, 8
    x = rng.standard_normal((B, L, E))
    mem = rng.standard_normal((B, S, E)) if case == "cross_padding" else x
    kw_t, kw_s = {}, {}
    if case == "causal":
        blocked = np.triu(np.ones((L, L), bool), k=1)  # True = not allowed (PyTorch)
        kw_t["attn_mask"] = torch.tensor(blocked)
        kw_s["attn_mask"] = blocked
    if case == "float_mask":
        add = rng.standard_normal((L, L))
        kw_t["attn_mask"], kw_s["attn_mask"] = torch.tensor(add), add
    if case == "cross_padding":
        pad = np.array([[False, False, True], [False, True, True]])
        kw_t["key_padding_mask"] = torch.tensor(pad)
        kw_s["key_padding_mask"] = pad
    xt = torch.tensor(x, requires_grad=True)
    mt = xt if mem is x else torch.tensor(mem, requires_grad=True)
    yt, _ = tm(xt, mt, mt, need_weights=False, **kw_t)
    xs = t64(x)
    ms = xs if mem is x else t64(mem)
    ys = mha(xs, ms, **kw_s)
    np.testing.assert_allclose(ys.data, yt.detach().numpy(), atol=1e-12)
    g = rng.standard_normal(ys.shape)
    yt.backward(torch.tensor(g))
    ys.backward(g)
    np.testing.assert_allclose(xs.grad, xt.grad.numpy(), atol=1e-12)
    if mem is not x:
        np.testing.assert_allclose(ms.grad, mt.grad.numpy(), atol=1e-12)
    w_grad = np.concatenate(
        [mha.q_proj.weight.grad, mha.k_proj.weight.grad, mha.v_proj.weight.grad]
    )
    np.testing.assert_allclose(w_grad, tm.in_proj_weight.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(
        mha.out_proj.weight.grad, tm.out_proj.weight.grad.numpy(), atol=1e-12
    )
