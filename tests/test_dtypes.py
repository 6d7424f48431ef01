"""Half-precision tensors (tinyllm/dtypes.py, applied by tinyllm/engine/hooks.py): storage,
rounding, promotion, gradients.

The truth used here, independent of the code under test:
- bf16 rounding by *distance*: the two bf16 neighbours of an fp32 value (its upper half, and
  that plus one ulp) compared in float64, ties to the even pattern — not the carry trick that
  tinyllm/kernels/bf16.py uses;
- fp16 rounding: NumPy's own float32 → float16 cast;
- "compute in fp32, then round": the same computation written in NumPy float32;
- PyTorch's promote_types for the promotion table, when PyTorch is installed.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyllm
from tinyllm import Tensor, dtypes, no_grad
from tinyllm.engine import hooks
from tinyllm.kernels import bf16
from tinyllm.nn import functional as F
from tinyllm.precision import GradScaler

BF16, FP16, FP32 = tinyllm.bfloat16, np.dtype(np.float16), np.dtype(np.float32)


def ref_round_bf16(x):
    """Nearest bf16 value of each float32 (finite, below bf16's max), ties to even — by distance."""
    x = np.asarray(x, np.float32)
    bits = x.view(np.uint32)
    lo_bits = bits & np.uint32(0xFFFF0000)  # toward zero
    hi_bits = lo_bits + np.uint32(0x10000)  # one bf16 ulp away from zero
    lo = lo_bits.view(np.float32).astype(np.float64)
    hi = hi_bits.view(np.float32).astype(np.float64)
    d_lo, d_hi = np.abs(x - lo), np.abs(hi - x)
    odd = (lo_bits >> 16) & 1
    take_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (odd == 1))
    return np.where(take_hi, hi, lo).astype(np.float32)


def ref_round(x, dtype):
    x = np.asarray(x, np.float32)
    return ref_round_bf16(x) if dtype is BF16 else x.astype(np.float16).astype(np.float32)


def half_tensor(rng, shape, dtype, requires_grad=False, scale=1.0):
    """A half tensor and its exact float32 values."""
    t = Tensor((rng.standard_normal(shape) * scale).astype(np.float32)).to(dtype)
    if requires_grad:
        t = t.detach().requires_grad_()
    return t, t.numpy().astype(np.float32)


# ---- storage -------------------------------------------------------------------------------


def test_bf16_storage_holds_the_bit_patterns():
    # 1 = 0x3F80_0000; −2 = 0xC000_0000; π = 0x4049_0FDB (dropped half < 0x8000: down);
    # 0.1 = 0x3DCC_CCCD (dropped half > 0x8000: up to 0x3DCD); 1 + 2⁻⁸ = 0x3F80_8000 is a tie
    # between 0x3F80 (even) and 0x3F81: to even; 1 + 3·2⁻⁸ = 0x3F81_8000 ties to 0x3F82.
    x = Tensor(np.array([1.0, -2.0, np.pi, 0.1, 1 + 2**-8, 1 + 3 * 2**-8], np.float32))
    y = x.to(tinyllm.bfloat16)
    assert y.dtype is tinyllm.bfloat16 and y.dtype == "bfloat16"
    assert y.data.dtype == np.uint16 and y.data.nbytes == 2 * 6
    assert [hex(b) for b in y.data.tolist()] == [
        "0x3f80",
        "0xc000",
        "0x4049",
        "0x3dcd",
        "0x3f80",
        "0x3f82",
    ]
    assert y.numpy().dtype == np.float32 and y.tolist()[0] == 1.0
    assert y[2].item() == pytest.approx(3.140625)
    assert "bfloat16" in repr(y) and "3.1406" in repr(y)


def test_fp16_storage_is_numpys_float16():
    y = Tensor(np.array([1.0, 65504.0, 70000.0, 1e-8], np.float32)).to(tinyllm.float16)
    assert y.dtype == np.float16 and y.data.dtype == np.float16
    assert y.tolist() == [1.0, 65504.0, np.inf, 0.0]  # overflow → inf, underflow → 0


def test_module_to_converts_parameters_in_place_and_back_exactly(rng):
    from tinyllm.models import GPT, GPTConfig

    tinyllm.manual_seed(0)
    model = GPT(GPTConfig(block_size=8, vocab_size=32, n_layer=1, n_head=2, n_embd=8))
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    ids = {n: id(p) for n, p in model.named_parameters()}
    model.to(tinyllm.bfloat16)
    assert model.lm_head.weight is model.transformer.wte.weight  # still tied
    for n, p in model.named_parameters():
        assert id(p) == ids[n] and p.dtype is tinyllm.bfloat16 and p.requires_grad
        np.testing.assert_array_equal(p.numpy(), ref_round_bf16(before[n]))
    rounded = {n: p.numpy().copy() for n, p in model.named_parameters()}
    model.to(np.float32)
    for n, p in model.named_parameters():
        assert p.dtype == np.float32
        np.testing.assert_array_equal(p.data, rounded[n])  # widening is exact


def test_load_state_dict_rounds_floats_into_a_bf16_model(rng):
    lin = tinyllm.nn.Linear(4, 3)
    lin.to(tinyllm.bfloat16)
    w = rng.standard_normal((3, 4)).astype(np.float32)
    lin.load_state_dict({"weight": w, "bias": np.zeros(3, np.float32)})
    np.testing.assert_array_equal(lin.weight.numpy(), ref_round_bf16(w))


@settings(max_examples=20)
@given(bits=hnp.arrays(np.uint32, st.integers(1, 300)))
def test_bf16_rounding_kernel_agrees_with_the_reference(bits):
    """The numba kernel (and its plain-Python body, what NUMBA_DISABLE_JIT runs) against the
    NumPy reference, on arbitrary bit patterns: NaNs, infs, subnormals, ties included."""
    specials = np.array(
        [
            0x7F7FFFFF,
            0xFF7FFFFF,
            0x7F800000,
            0xFF800000,
            0x7F800001,
            0xFFFFFFFF,
            0x7FC00000,
            0x00008000,
            0x00018000,
            0x80008000,
            0,
            0x80000000,
            0x3F808000,
            0x3F818000,
        ],
        np.uint32,
    )
    x = np.concatenate([bits, specials]).view(np.float32)
    want = bf16.fp32_to_bf16_bits_reference(x)
    np.testing.assert_array_equal(bf16.fp32_to_bf16_bits_numba(x), want)
    out = np.empty(x.size, np.uint16)
    bf16._fp32_bits_to_bf16_bits.py_func(x.view(np.uint32), out, 0, x.size)
    np.testing.assert_array_equal(out, want)


# ---- forward: compute in fp32, round the result ---------------------------------------------

ELEMENTWISE = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "div": (lambda a, b: a / b, lambda a, b: a / b),
    "tanh": (lambda a, b: a.tanh(), lambda a, b: np.tanh(a)),
    "exp": (lambda a, b: a.exp(), lambda a, b: np.exp(a)),
    "scalar-mul": (lambda a, b: a * 3, lambda a, b: a * np.float32(3)),
    "scalar-sub": (lambda a, b: 0.25 - a, lambda a, b: np.float32(0.25) - a),
}  # one op each: in a chain, every intermediate result is rounded too


@pytest.mark.parametrize("dtype", [BF16, FP16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("op", list(ELEMENTWISE))
def test_elementwise_forward_is_fp32_then_rounding(op, dtype, rng):
    a, a32 = half_tensor(rng, (5, 7), dtype)
    b, b32 = half_tensor(rng, (5, 7), dtype)
    f, ref = ELEMENTWISE[op]
    y = f(a, b)
    assert y.dtype is dtype or y.dtype == dtype
    np.testing.assert_array_equal(y.numpy(), ref_round(ref(a32, b32), dtype))


LAYERS = {
    "matmul": lambda a, b: a @ b.transpose(0, 1),
    "gelu": lambda a, b: F.gelu(a),
    "softmax": lambda a, b: F.softmax(a, axis=-1),
    "layer_norm": lambda a, b: F.layer_norm(a, (7,), b[0], b[1]),
    "sum": lambda a, b: a.sum(axis=0),
    "getitem": lambda a, b: a[1:3, ::2],
}


@pytest.mark.parametrize("dtype", [BF16, FP16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("op", list(LAYERS))
def test_op_forward_equals_its_float32_result_rounded(op, dtype, rng):
    """The half op's bits are the float32 op (on the same, exactly decoded values) rounded."""
    a, a32 = half_tensor(rng, (5, 7), dtype)
    b, b32 = half_tensor(rng, (5, 7), dtype)
    y = LAYERS[op](a, b)
    y32 = LAYERS[op](Tensor(a32), Tensor(b32))
    assert y32.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), ref_round(y32.data, dtype))


def test_matmul_float32_compute_matches_numpy(rng):
    a, a32 = half_tensor(rng, (6, 9), BF16)
    b, b32 = half_tensor(rng, (9, 4), BF16)
    got = (a @ b).numpy()
    want = ref_round_bf16(a32 @ b32)
    # Both products are float32 BLAS results; rounding to bf16 may only differ where the two
    # float32 sums straddle a rounding boundary — by at most one bf16 ulp.
    ulp = np.abs(want) * 2.0**-7 + 1e-30
    assert np.all(np.abs(got - want) <= ulp)


def test_gpt_forward_in_bf16_is_close_to_fp32():
    from tinyllm.models import GPT, GPTConfig

    tinyllm.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=64, n_layer=2, n_head=2, n_embd=16))
    x = np.random.default_rng(0).integers(0, 64, (2, 16))
    with no_grad():
        l32, _ = model(x)
        model.to(tinyllm.bfloat16)
        l16, _ = model(x)
    assert l16.dtype is tinyllm.bfloat16
    # bf16 keeps 8 significant bits: relative error per op ~ 2^-9; a few dozen ops deep.
    assert np.max(np.abs(l16.numpy() - l32.data)) < 0.05 * np.max(np.abs(l32.data)) + 1e-3


# ---- type promotion --------------------------------------------------------------------------

PROMOTION = [  # (left, right, result); "scalar" / "array" are a Python float / NumPy array
    (BF16, BF16, BF16),
    (FP16, FP16, FP16),
    (BF16, FP32, FP32),
    (FP32, FP16, FP32),
    (BF16, FP16, FP32),
    (FP16, np.dtype(np.float64), np.dtype(np.float64)),
    (BF16, "scalar", BF16),
    (FP16, "int", FP16),
    (BF16, "array", BF16),
    ("scalar", FP16, FP16),
]


def _operand(kind, rng):
    if kind == "scalar":
        return 0.75
    if kind == "int":
        return 3
    if kind == "array":
        return rng.standard_normal((3,)).astype(np.float32)
    return Tensor(rng.standard_normal((3,)).astype(np.float32)).to(kind)


@pytest.mark.parametrize("left,right,result", PROMOTION, ids=[f"{l}*{r}" for l, r, _ in PROMOTION])
def test_promotion_table(left, right, result, rng):
    y = _operand(left, rng) * _operand(right, rng)
    assert dtypes.same_dtype(y.dtype, result), (y.dtype, result)


def test_promotion_table_agrees_with_pytorch():
    torch = pytest.importorskip("torch")
    names = {
        BF16: torch.bfloat16,
        FP16: torch.float16,
        FP32: torch.float32,
        np.dtype(np.float64): torch.float64,
    }
    for left, right, result in PROMOTION:
        if left in names and right in names:
            assert torch.promote_types(names[left], names[right]) == names[result]
        elif left == BF16 and right == "scalar":
            assert (torch.ones(2, dtype=torch.bfloat16) * 0.75).dtype == torch.bfloat16


# ---- gradients -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [BF16, FP16], ids=["bf16", "fp16"])
def test_cast_gradient_is_cast_back_to_the_input_dtype(dtype, rng):
    x = Tensor(rng.standard_normal(6).astype(np.float32), requires_grad=True)
    c = rng.standard_normal(6).astype(np.float32)
    (x.to(dtype) * c).float().sum().backward()
    # d/dx = c, carried as the gradient of a half tensor (so rounded), then cast to float32.
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, ref_round(c, dtype))


def test_half_to_float_cast_gradient_lands_in_half_storage(rng):
    w, w32 = half_tensor(rng, (4,), BF16, requires_grad=True)
    c = rng.standard_normal(4).astype(np.float32)
    (w.float() * c).sum().backward()
    assert w.grad.dtype == np.uint16 and w.grad.nbytes == 8  # 2 bytes per gradient
    np.testing.assert_array_equal(dtypes.to_float32(w.grad), ref_round_bf16(c))


@pytest.mark.parametrize("dtype", [BF16, FP16], ids=["bf16", "fp16"])
def test_linear_weight_gradient_is_the_rounded_fp32_gradient(dtype, rng):
    x, x32 = half_tensor(rng, (5, 3), dtype)
    w, w32 = half_tensor(rng, (4, 3), dtype, requires_grad=True)
    y = F.linear(x, w)  # (5, 4) half
    assert y.dtype is dtype or y.dtype == dtype
    y.sum().backward()  # seed 1 (exact in both formats)
    # ∂(Σ x Wᵀ)/∂W = 1ᵀ x: each row of W receives the column sums of x, computed in fp32.
    want = ref_round(np.broadcast_to(x32.sum(axis=0), (4, 3)), dtype)
    np.testing.assert_array_equal(dtypes.to_float32(w.grad), want)


def test_a_half_leaf_used_twice_accumulates_and_rounds(rng):
    w, w32 = half_tensor(rng, (3,), BF16, requires_grad=True)
    a = np.float32(1 / 3)
    b = np.float32(2**-9)
    (w * a).sum().backward()
    (w * b).sum().backward()
    # The first gradient is stored rounded; the second adds to it and rounds again.
    want = ref_round_bf16(ref_round_bf16(np.full(3, a)) + ref_round_bf16(np.full(3, b)))
    np.testing.assert_array_equal(dtypes.to_float32(w.grad), want)


def test_fp16_gradients_underflow_without_loss_scaling_and_survive_with_it():
    x = Tensor(np.ones(4, np.float32), requires_grad=True)
    tiny = np.float32(1e-8)  # below fp16's smallest subnormal, 2^-24 ≈ 6e-8
    (x.to(tinyllm.float16) * 1.0).float().sum().backward(np.float32(tiny))
    assert np.all(x.grad == 0)  # the fp16 adjoint rounded to zero
    x.grad = None
    scaler = GradScaler()  # S = 2^16 lifts it to 6.6e-4, well inside fp16
    loss = (x.to(tinyllm.float16) * 1.0).float().sum() * float(tiny)
    scaler.scale(loss).backward()
    np.testing.assert_allclose(x.grad / scaler.get_scale(), tiny, rtol=1e-3)


def test_backward_seed_of_a_half_root(rng):
    w, _ = half_tensor(rng, (3,), BF16, requires_grad=True)
    w.sum().backward()  # the implicit seed is 1.0, not the bit pattern 1
    np.testing.assert_array_equal(dtypes.to_float32(w.grad), np.ones(3, np.float32))
    w.grad = None
    (w * 1.0).backward(np.array([0.5, 2.0, -1.0], np.float32))
    np.testing.assert_array_equal(dtypes.to_float32(w.grad), [0.5, 2.0, -1.0])


def test_grad_scaler_refuses_bf16_bit_patterns(rng):
    w, _ = half_tensor(rng, (3,), BF16, requires_grad=True)
    w.sum().backward()
    with pytest.raises(ValueError, match="bf16"):
        GradScaler().unscale_([w])


# ---- the float32 path is untouched ----------------------------------------------------------


def test_float32_results_are_identical_with_the_half_rules_on(rng):
    Tensor(np.ones(1, np.float32)).to(BF16)  # a half array exists: the rules are on
    assert hooks.half and hooks.active
    x0 = rng.standard_normal((4, 6)).astype(np.float32)
    w0 = rng.standard_normal((3, 6)).astype(np.float32)

    def run():
        x, w = Tensor(x0), Tensor(w0, requires_grad=True)
        y = F.layer_norm(F.gelu(F.linear(x, w)), (3,)).softmax(-1)
        (y * y).sum().backward()
        return y.data, w.grad

    with_rules = run()
    hooks.enable_half(False)
    try:
        assert not hooks.active
        without = run()
    finally:
        hooks.enable_half(True)
    for a, b in zip(with_rules, without):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)


def test_half_conversion_functions_write_into_views():
    flat = np.zeros(10, BF16.storage)  # a flat bf16 buffer, +0.0 everywhere
    master = np.array([1.0, np.pi, -0.1, 3.4e38], np.float32)
    dtypes.to_storage(master, BF16, out=flat[3:7])
    np.testing.assert_array_equal(
        dtypes.to_float32(flat[3:7]), ref_round_bf16(master[:3]).tolist() + [np.inf]
    )  # 3.4e38 rounds past bf16 max 3.39e38: inf
    assert not flat[:3].any() and not flat[7:].any()
    out = np.empty(4, np.float32)
    assert dtypes.to_float32(flat[3:7], out=out) is out
    with pytest.raises(ValueError, match="storage"):
        dtypes.to_storage(master, BF16, out=np.zeros(4, np.float16))


def test_dtype_helpers():
    assert dtypes.is_half(BF16) and dtypes.is_half("bfloat16") and dtypes.is_half(np.float16)
    assert dtypes.is_half(BF16.storage) and not dtypes.is_half(np.float32)
    assert not dtypes.is_half(np.uint16)  # an untagged uint16 is an integer
    assert dtypes.storage_dtype(BF16) is BF16.storage and dtypes.compute_dtype(BF16) == np.float32
    assert np.dtype(BF16) == np.float32  # what NumPy computes bf16 values in
    assert not (BF16 == np.dtype(np.float32)) and not dtypes.same_dtype(BF16, np.float32)
    import copy

    assert copy.deepcopy(BF16) is BF16
    t = Tensor([1.5, 2.5], dtype=BF16)
    assert t.dtype is BF16 and t.tolist() == [1.5, 2.5]
    assert tinyllm.tensor([1.0], dtype=BF16).dtype is BF16


def test_bf16_gpt_generates_the_same_with_and_without_the_kv_cache():
    """The KV cache of a bf16 model must hold bit patterns (a float32 cache would read them
    as integers)."""
    from tinyllm.models import GPT, GPTConfig

    tinyllm.manual_seed(0)
    model = GPT(GPTConfig(block_size=32, vocab_size=64, n_layer=2, n_head=2, n_embd=16))
    model.to(tinyllm.bfloat16)
    prompt = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(
        model.generate(prompt, 10, use_cache=True), model.generate(prompt, 10, use_cache=False)
    )
