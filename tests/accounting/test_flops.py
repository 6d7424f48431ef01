"""FLOP counting: the counter against formulas derived by hand, and the formulas themselves.

The main check builds a small GPT by hand from tinyllm.ops (embeddings, LayerNorm, fused QKV
linear, causal attention over heads, GELU MLP, tied lm_head, cross-entropy), runs a training
step under a FlopCounter, and compares the counted matrix-product FLOPs with this derivation
(B batch, T sequence, H hidden, V vocabulary, n layers; 2 FLOPs per multiply-add):

    forward, per layer     linears  2·B·T·(3H² + H² + 4H² + 4H²) = 2·B·T·12H²
                           attention QKᵀ and PV over all heads:    2·2·B·T²·H
    forward, lm_head       2·B·T·H·V
    backward               linears and lm_head: 2 × forward (input and weight gradients —
                           every linear's input needs a gradient here);
                           attention: 2·B·T²·H·(3 + 2) = 10·B·T²·H, because the kernel
                           recomputes QKᵀ before the four gradient products.

Print the counted-vs-formula tables with `pytest tests/accounting/test_flops.py -s -k table`.
"""

from types import SimpleNamespace

import numpy as np
import pytest

import tinyllm
from tinyllm import ops
from tinyllm.accounting import (
    FlopCounter,
    compare_with_formulas,
    comparison_table,
    kaplan_flops_per_token,
    layer_forward_flops,
    notes_layer_macs,
    palm_flops_per_token,
    palm_flops_per_token_for,
    pf_days,
    training_flops,
)
from tinyllm.engine import Function, Tensor
from tinyllm.engine.flops import FlopRule


def make_gpt(cfg, seed=0):
    """Random weights with nanoGPT's names and shapes (Linear weights are (out, in))."""
    rng = np.random.default_rng(seed)
    h, v = cfg.n_embd, cfg.vocab_size

    def p(*shape):
        return Tensor(rng.standard_normal(shape).astype(np.float32) * 0.05, requires_grad=True)

    w = {"wte": p(v, h), "wpe": p(cfg.block_size, h), "ln_f.w": p(h), "ln_f.b": p(h)}
    for i in range(cfg.n_layer):
        for name, shape in (
            ("ln_1.w", (h,)),
            ("ln_1.b", (h,)),
            ("ln_2.w", (h,)),
            ("ln_2.b", (h,)),
            ("attn.c_attn.w", (3 * h, h)),
            ("attn.c_attn.b", (3 * h,)),
            ("attn.c_proj.w", (h, h)),
            ("attn.c_proj.b", (h,)),
            ("mlp.c_fc.w", (4 * h, h)),
            ("mlp.c_fc.b", (4 * h,)),
            ("mlp.c_proj.w", (h, 4 * h)),
            ("mlp.c_proj.b", (h,)),
        ):
            w[f"h.{i}.{name}"] = p(*shape)
    return w


def gpt_loss(w, cfg, idx, targets):
    b, t = idx.shape
    h, nh = cfg.n_embd, cfg.n_head
    x = ops.embedding(idx, w["wte"]) + ops.embedding(np.arange(t), w["wpe"])  # (B, T, H)
    for i in range(cfg.n_layer):
        g = lambda name, i=i: w[f"h.{i}.{name}"]  # noqa: E731
        a = ops.layer_norm(x, h, g("ln_1.w"), g("ln_1.b"))
        q, k, v = ops.split(ops.linear(a, g("attn.c_attn.w"), g("attn.c_attn.b")), h, axis=2)
        q, k, v = (
            z.reshape(b, t, nh, h // nh).transpose(1, 2) for z in (q, k, v)
        )  # (B, nh, T, hd)
        y = ops.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).reshape(b, t, h)
        x = x + ops.linear(y, g("attn.c_proj.w"), g("attn.c_proj.b"))
        m = ops.layer_norm(x, h, g("ln_2.w"), g("ln_2.b"))
        x = x + ops.linear(
            ops.gelu(ops.linear(m, g("mlp.c_fc.w"), g("mlp.c_fc.b"))),
            g("mlp.c_proj.w"),
            g("mlp.c_proj.b"),
        )
    x = ops.layer_norm(x, h, w["ln_f.w"], w["ln_f.b"])
    logits = ops.linear(x, w["wte"])  # tied lm_head
    return ops.cross_entropy(logits.reshape(b * t, cfg.vocab_size), targets.reshape(-1))


def expected_matmul_flops(cfg, b, t):
    n, h, v = cfg.n_layer, cfg.n_embd, cfg.vocab_size
    linear_fwd = n * 2 * b * t * 12 * h * h + 2 * b * t * h * v
    attn_fwd = n * 2 * 2 * b * t * t * h
    attn_bwd = n * 10 * b * t * t * h
    return linear_fwd + attn_fwd, 2 * linear_fwd + attn_bwd


def run_step(cfg, b, t, seed=0):
    w = make_gpt(cfg, seed)
    rng = np.random.default_rng(seed + 1)
    idx = rng.integers(0, cfg.vocab_size, size=(b, t))
    targets = rng.integers(0, cfg.vocab_size, size=(b, t))
    with FlopCounter() as fc:
        loss = gpt_loss(w, cfg, idx, targets)
        loss.backward()
    return fc


SHAPES = [  # (config, batch, seq_len)
    (SimpleNamespace(vocab_size=37, block_size=16, n_layer=1, n_head=2, n_embd=16), 2, 8),
    (SimpleNamespace(vocab_size=50, block_size=16, n_layer=2, n_head=4, n_embd=32), 3, 16),
    (SimpleNamespace(vocab_size=11, block_size=8, n_layer=2, n_head=1, n_embd=8), 1, 5),
]


@pytest.mark.parametrize("cfg,b,t", SHAPES)
def test_counted_matmul_flops_equal_the_derivation(cfg, b, t):
    fc = run_step(cfg, b, t)
    fwd, bwd = expected_matmul_flops(cfg, b, t)
    assert fc.gemm("forward") == fwd
    assert fc.gemm("backward") == bwd
    assert not fc.unregistered and fc.backward_without_forward == 0
    # per family: linears and lm_head are the "linear" family, attention its own
    n, h = cfg.n_layer, cfg.n_embd
    assert fc.gemm("forward", {"attention"}) == n * 4 * b * t * t * h
    assert fc.gemm("forward", {"linear"}) == fwd - n * 4 * b * t * t * h
    # the notes' per-layer multiply-adds, in FLOPs, are exactly the counted layer forward
    assert fc.gemm("forward") - 2 * b * t * h * cfg.vocab_size == n * b * 2 * notes_layer_macs(t, h)
    # non-matmul work is counted, but separately
    assert fc.other("forward") > 0 and fc.other("backward") > 0


@pytest.mark.parametrize("cfg,b,t", SHAPES[:2])
def test_palm_and_kaplan_against_the_count(cfg, b, t):
    """PaLM's model FLOPs = counted minus the attention recomputation (2·B·T²·H per layer);
    Kaplan's = counted minus lm_head, minus 8 of the 14 B·T²·H per layer of attention."""
    fc = run_step(cfg, b, t)
    n, h, v = cfg.n_layer, cfg.n_embd, cfg.vocab_size
    n_matmul = 12 * n * h * h + v * h
    palm = palm_flops_per_token(n_matmul, n, cfg.n_head, h // cfg.n_head, t) * b * t
    assert fc.gemm() - palm == n * 2 * b * t * t * h
    kaplan = kaplan_flops_per_token(12 * n * h * h, n, t, h) * b * t
    assert fc.gemm() - kaplan == 6 * b * t * h * v + n * 8 * b * t * t * h
    rows = {name: value for name, value, _ in compare_with_formulas(fc, cfg, b, t)}
    assert rows["counted matmul, forward + backward"] == fc.gemm()
    assert rows["PaLM (6N + 12·L·H·Q·T)·tokens"] == palm


@pytest.mark.parametrize("cfg,b,t", SHAPES[:2])
def test_print_counted_vs_formula_table(cfg, b, t):
    fc = run_step(cfg, b, t)
    print(
        f"\nB={b} T={t} n_layer={cfg.n_layer} n_head={cfg.n_head} H={cfg.n_embd} "
        f"V={cfg.vocab_size}\n"
        + fc.table()
        + "\n\n"
        + comparison_table(compare_with_formulas(fc, cfg, b, t))
    )


# ---- single ops -------------------------------------------------------------------------------


def _t(rng, *shape, grad=True):
    return Tensor(rng.standard_normal(shape), requires_grad=grad)


def test_matmul_backward_counts_only_the_gradients_needed():
    rng = np.random.default_rng(0)
    for need_a, need_b in ((True, True), (True, False), (False, True)):
        a, b = _t(rng, 4, 5, grad=need_a), _t(rng, 5, 3, grad=need_b)
        with FlopCounter() as fc:
            (a @ b).sum().backward()
        assert fc.gemm("forward") == 2 * 4 * 5 * 3
        assert fc.gemm("backward") == 2 * 4 * 5 * 3 * (need_a + need_b)


def test_batched_matmul_with_a_broadcast_weight():
    rng = np.random.default_rng(1)
    x, w = _t(rng, 6, 4, 5), _t(rng, 5, 3)
    with FlopCounter() as fc:
        (x @ w).sum().backward()
    assert fc.gemm("forward") == 2 * 6 * 4 * 5 * 3
    assert fc.gemm("backward") == 2 * 2 * 6 * 4 * 5 * 3
    assert fc.by_op[("MatMul", "backward")].other == (6 - 1) * 5 * 3  # unbroadcast sums W̄


def test_linear_counts_input_weight_and_bias_gradients_separately():
    rng = np.random.default_rng(2)
    x = _t(rng, 2, 7, 5, grad=False)
    w, bias = _t(rng, 3, 5), _t(rng, 3)
    with FlopCounter() as fc:
        ops.linear(x, w, bias).sum().backward()
    tally_f, tally_b = fc.by_op[("Linear", "forward")], fc.by_op[("Linear", "backward")]
    assert (tally_f.gemm, tally_f.other) == (2 * 14 * 5 * 3, 14 * 3)  # x Wᵀ, + b
    assert (tally_b.gemm, tally_b.other) == (2 * 14 * 5 * 3, 14 * 3)  # W̄ only; Σ rows for b̄
    with FlopCounter() as fc, tinyllm.no_grad():
        ops.linear(x, w)
    assert fc.by_op[("Linear", "forward")].other == 0  # no bias: no add
    assert fc.total("backward") == 0


def test_attention_counts_follow_the_kernel_including_dropout():
    rng = np.random.default_rng(3)
    bh, l, s, e, ev = (2, 3), 4, 6, 5, 7
    q, k, v = _t(rng, *bh, l, e), _t(rng, *bh, s, e), _t(rng, *bh, s, ev)
    with FlopCounter() as fc:
        ops.scaled_dot_product_attention(q, k, v).sum().backward()
    assert fc.gemm("forward") == 6 * 2 * l * s * (e + ev)
    assert fc.gemm("backward") == 6 * 2 * l * s * (3 * e + 2 * ev)
    with FlopCounter() as fc:
        ops.scaled_dot_product_attention(
            q, k, v, dropout_p=0.5, generator=np.random.default_rng(0)
        ).sum().backward()
    assert fc.gemm("forward") == 2 * 6 * 2 * l * s * (e + ev)  # reference + recomputation
    assert fc.gemm("backward") == 6 * 2 * l * s * (2 * e + 2 * ev)  # P saved: no recompute


def test_other_ops_one_flop_per_element_and_data_movement_free():
    rng = np.random.default_rng(4)
    x = _t(rng, 3, 4)
    with FlopCounter() as fc:
        y = ops.gelu(x.reshape(4, 3).transpose(0, 1))
        y.sum().backward()
    assert fc.by_op[("GELU", "forward")].other == 12 == fc.by_op[("GELU", "backward")].other
    assert fc.by_op[("Sum", "forward")].other == 12
    assert fc.total(families={"data movement"}) == 0
    assert fc.gemm() == 0


def test_every_tinyllm_op_declares_its_flops_and_undeclared_ops_are_reported():
    import tinyllm.precision  # noqa: F401  (FakeQuantize)
    import tinyllm.recompute  # noqa: F401  (CheckpointFunction)

    def subclasses(c):
        for s in c.__subclasses__():
            yield s
            yield from subclasses(s)

    ops_seen = [c for c in subclasses(Function) if c.__module__.startswith("tinyllm.")]
    assert len(ops_seen) >= 40  # every op of tinyllm.ops, the cast, recompute, fake quant
    missing = [c.__name__ for c in ops_seen if not isinstance(c.flops, FlopRule)]
    assert missing == []

    class Twice(Function):
        @staticmethod
        def forward(ctx, x):
            return 2 * x

        @staticmethod
        def backward(ctx, grad):
            return 2 * grad

    x = Tensor(np.ones((2, 5)), requires_grad=True)
    with FlopCounter() as fc:
        Twice.apply(x).sum().backward()
    assert fc.unregistered == {"Twice"}
    assert fc.by_family[("unregistered", "forward")].other == 10


def test_counter_is_removed_after_the_block():
    rng = np.random.default_rng(5)
    fc = FlopCounter()
    with fc:
        pass
    _ = _t(rng, 2, 2) @ _t(rng, 2, 2)
    assert fc.total() == 0
    with pytest.raises(ValueError, match="phase"):
        fc.gemm("sideways")


# ---- formulas ----------------------------------------------------------------------------------


def test_notes_formula_and_units():
    # 2L²H + 12LH² multiply-adds; FLOPs are twice that
    assert notes_layer_macs(3, 5) == 2 * 9 * 5 + 12 * 3 * 25
    assert layer_forward_flops(3, 5) == 2 * notes_layer_macs(3, 5)
    with pytest.raises(ValueError):
        notes_layer_macs(0, 5)


def test_gpt3_training_compute_in_pf_days():
    """GPT-3 paper (Brown et al. 2020), Table D.1: 175B on 300B tokens ≈ 3.14e23 FLOPs,
    3.64e3 petaflop/s-days (their count adds attention; 6ND alone gives 3.15e23)."""
    c = training_flops(175e9, 300e9)
    assert c == pytest.approx(3.15e23)
    assert pf_days(c) == pytest.approx(3.64e3, rel=0.01)
    assert pf_days(8.64e19) == pytest.approx(1.0)


def test_palm_formula_for_gpt2_config_matches_nanogpt():
    """nanoGPT's estimate_mfu for GPT-2 small: N = get_num_params() = 123.65M (no wpe),
    L, H, Q, T = 12, 12, 64, 1024."""
    cfg = SimpleNamespace(
        vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768, bias=True
    )
    n = 124_439_808 - 1024 * 768
    assert palm_flops_per_token_for(cfg) == 6 * n + 12 * 12 * 12 * 64 * 1024
    with pytest.raises(ValueError, match="divisible"):
        palm_flops_per_token_for(SimpleNamespace(**{**vars(cfg), "n_head": 5}))


@pytest.mark.parametrize("cfg,b,t", SHAPES[:2])
def test_tinyllm_gpt_training_step_matches_the_derivation(cfg, b, t):
    """The same count for tinyllm.models.GPT (fused qkv split by permute + indexing)."""
    from tinyllm.models import GPT, GPTConfig

    model = GPT(
        GPTConfig(
            vocab_size=cfg.vocab_size,
            block_size=cfg.block_size,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            n_embd=cfg.n_embd,
        ),
        generator=np.random.default_rng(0),
    )
    rng = np.random.default_rng(1)
    idx, targets = (rng.integers(0, cfg.vocab_size, size=(b, t)) for _ in range(2))
    with FlopCounter() as fc:
        _, loss = model(idx, targets)
        loss.backward()
    fwd, bwd = expected_matmul_flops(cfg, b, t)
    assert (fc.gemm("forward"), fc.gemm("backward")) == (fwd, bwd)
    assert not fc.unregistered
