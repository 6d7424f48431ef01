"""int8 quantization: scale/zero point, quantize/dequantize, observers, int8 matmul.

Truth: hand-computed scale/zero points from the formulas in PyTorch's observers, the s/2 error
bound, exact integer arithmetic (float64 holds every int32 sum exactly), and — when
installed — torch.ao.quantization's observers and torch.quantize_per_tensor/_per_channel.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyllm import kernels
from tinyllm.precision import (
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    dequantize,
    int8_matmul,
    qparams_from_minmax,
    quantize,
    quantized_matmul,
)
from tinyllm.precision.int8_matmul import int8_matmul_numba, int8_matmul_reference

F32_EPS = float(np.finfo(np.float32).eps)

# ---- scale and zero point -------------------------------------------------------------------


def test_qparams_hand_values():
    # affine on [-1, 3]: s = 4/255, z = -128 - round(-1/s) = -128 - round(-63.75) = -64
    s, z = qparams_from_minmax(-1.0, 3.0)
    assert s == np.float32(4 / 255) and z == -64
    # symmetric on [-1, 3]: s = 3 / 127.5, z = 0
    s, z = qparams_from_minmax(-1.0, 3.0, symmetric=True)
    assert s == np.float32(3 / 127.5) and z == 0
    # a positive-only range is widened to include 0: [0, 5] → z = q_min
    s, z = qparams_from_minmax(2.0, 5.0)
    assert s == np.float32(5 / 255) and z == -128
    # uint8 affine on [-1, 3]: z = 0 - round(-63.75) = 64
    s, z = qparams_from_minmax(-1.0, 3.0, quant_min=0, quant_max=255)
    assert z == 64
    # an all-zero tensor: the scale is floored at float32's eps instead of 0
    s, z = qparams_from_minmax(0.0, 0.0)
    assert s == np.float32(F32_EPS) and z == -128
    # per-channel: one (s, z) per entry
    s, z = qparams_from_minmax(np.array([-0.5, 0.0]), np.array([1.5, 2.55]))
    np.testing.assert_array_equal(s, np.float32([2 / 255, 2.55 / 255]))
    np.testing.assert_array_equal(z, [-64, -128])  # -128 - round(-63.75) = -64


def test_qparams_bad_input():
    with pytest.raises(ValueError, match="above max"):
        qparams_from_minmax(1.0, -1.0)
    with pytest.raises(ValueError, match="finite"):
        qparams_from_minmax(np.inf, -np.inf)
    with pytest.raises(ValueError, match="signed range"):
        qparams_from_minmax(-1.0, 1.0, quant_min=0, quant_max=255, symmetric=True)


# ---- quantize / dequantize --------------------------------------------------------------------


def test_quantize_rounds_half_to_even_and_clamps():
    s = 0.125  # a power of two: x/s is exact, so these are true ties
    x = np.float32([0.0625, 0.1875, 0.3125, -0.0625, -0.1875, 100.0, -100.0])
    # levels 0.5, 1.5, 2.5, -0.5, -1.5 → 0, 2, 2, 0, -2; ±800 → clamped to 127 / -128
    np.testing.assert_array_equal(quantize(x, s, 0), [0, 2, 2, 0, -2, 127, -128])
    np.testing.assert_array_equal(quantize(x, s, 10), [10, 12, 12, 10, 8, 127, -128])
    assert quantize(x, s, 0).dtype == np.int8
    assert quantize(x, s, 0, quant_min=0, quant_max=255).dtype == np.uint8


scheme = st.sampled_from(
    ["per_tensor_affine", "per_tensor_symmetric", "per_channel_affine", "per_channel_symmetric"]
)


@given(
    x=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=12),
        elements=st.floats(-1e4, 1e4, width=32),
    ),
    qscheme=scheme,
)
def test_quantize_error_at_most_half_a_step_and_zero_exact(x, qscheme):
    obs = MinMaxObserver(qscheme=qscheme, ch_axis=0)
    obs(x)
    s, z = obs.calculate_qparams()
    q = quantize(x, s, z, axis=obs.axis)
    xhat = dequantize(q, s, z, axis=obs.axis).astype(np.float64)
    s_b = s[:, None] if obs.per_channel else s
    z_b = z[:, None] if obs.per_channel else z
    lo, hi = (-128 - z_b) * s_b.astype(np.float64), (127 - z_b) * s_b.astype(np.float64)
    inside = (x >= lo) & (x <= hi)
    err = np.abs(x.astype(np.float64) - xhat)
    # s/2, plus float32 rounding of x·(1/s) and of (q − z)·s
    bound = s_b / 2 + 4 * F32_EPS * np.maximum(np.abs(x), s_b)
    assert np.all(err[inside] <= np.broadcast_to(bound, x.shape)[inside])
    # The observed range is covered up to half a step (symmetric int8 maps +max to 127.5).
    assert np.all(err <= np.broadcast_to(bound, x.shape))
    # Zero is exactly representable: 0 → z → 0.
    zeros = np.zeros_like(x)
    np.testing.assert_array_equal(
        dequantize(quantize(zeros, s, z, axis=obs.axis), s, z, axis=obs.axis), zeros
    )


def test_quantize_bad_input_names_the_problem():
    x = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        quantize(x, np.ones(4, np.float32), np.zeros(4, np.int32), axis=0)
    with pytest.raises(ValueError, match="pass `axis`"):
        quantize(x, np.ones(3, np.float32), np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="positive"):
        quantize(x, 0.0, 0)
    with pytest.raises(TypeError, match="integer"):
        dequantize(x, 1.0, 0)
    with pytest.raises(ValueError, match="NaN"):
        quantize(np.float32([1.0, np.nan]), 1.0, 0)
    np.testing.assert_array_equal(quantize(np.float32([np.inf, -np.inf]), 1.0, 0), [127, -128])


# ---- observers -----------------------------------------------------------------------------


def test_minmax_observer_running_range():
    obs = MinMaxObserver()
    obs(np.float32([-1, 0.5, 2]))
    obs(np.float32([-0.5, 3]))
    assert (obs.min_val, obs.max_val) == (-1.0, 3.0)
    assert obs.calculate_qparams() == qparams_from_minmax(-1.0, 3.0)


def test_moving_average_observer_hand_sequence():
    obs = MovingAverageMinMaxObserver()  # averaging_constant = 0.01
    obs(np.float32([-1, 2]))  # first batch: its own range
    assert (obs.min_val, obs.max_val) == (-1.0, 2.0)
    obs(np.float32([-3, 4]))  # -1 + 0.01·(-3 + 1), 2 + 0.01·(4 − 2)
    assert obs.min_val == pytest.approx(-1.02) and obs.max_val == pytest.approx(2.02)
    per_ch = MovingAverageMinMaxObserver(averaging_constant=0.5, qscheme="per_channel_affine")
    per_ch(np.float32([[0, 1], [-2, 2]]))
    per_ch(np.float32([[-4, 5], [0, 0]]))
    np.testing.assert_allclose(per_ch.min_val, [-2, -1])
    np.testing.assert_allclose(per_ch.max_val, [3, 1])


def test_observer_errors():
    with pytest.raises(RuntimeError, match="no data"):
        MinMaxObserver().calculate_qparams()
    with pytest.raises(ValueError, match="qscheme"):
        MinMaxObserver(qscheme="per_row")
    with pytest.raises(ValueError, match="inf or NaN"):
        MinMaxObserver()(np.float32([1, np.nan]))
    obs = MinMaxObserver(qscheme="per_channel_affine")
    obs(np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="channels"):
        obs(np.ones((4, 2), np.float32))


TORCH_SCHEMES = {
    "per_tensor_affine": ("MinMaxObserver", "MovingAverageMinMaxObserver"),
    "per_tensor_symmetric": ("MinMaxObserver", "MovingAverageMinMaxObserver"),
    "per_channel_affine": ("PerChannelMinMaxObserver", "MovingAveragePerChannelMinMaxObserver"),
    "per_channel_symmetric": ("PerChannelMinMaxObserver", "MovingAveragePerChannelMinMaxObserver"),
}


@pytest.mark.parametrize("qscheme", list(TORCH_SCHEMES))
@pytest.mark.parametrize("moving", [False, True])
def test_observers_and_quantize_match_pytorch(qscheme, moving):
    torch = pytest.importorskip("torch")
    tq = torch.ao.quantization
    ours_cls = MovingAverageMinMaxObserver if moving else MinMaxObserver
    theirs_cls = getattr(tq, TORCH_SCHEMES[qscheme][moving])
    kw = {"ch_axis": 0} if qscheme.startswith("per_channel") else {}
    ours = ours_cls(qscheme=qscheme, **kw)
    theirs = theirs_cls(dtype=torch.qint8, qscheme=getattr(torch, qscheme), **kw)
    rng = np.random.default_rng(7)
    row_scale = rng.uniform(0.01, 5.0, size=(16, 1))  # rows of very different magnitude
    for _ in range(4):
        x = (rng.standard_normal((16, 40)) * row_scale + rng.uniform(-1, 1)).astype(np.float32)
        ours(x)
        theirs(torch.from_numpy(x))
    np.testing.assert_array_equal(ours.min_val, theirs.min_val.numpy().reshape(ours.min_val.shape))
    np.testing.assert_array_equal(ours.max_val, theirs.max_val.numpy().reshape(ours.max_val.shape))
    s, z = ours.calculate_qparams()
    ts, tz = theirs.calculate_qparams()
    np.testing.assert_array_equal(s.reshape(-1), ts.numpy())
    np.testing.assert_array_equal(z.reshape(-1), tz.numpy())
    # Quantized integers, bit for bit, including the rows whose values lie outside the range.
    x = (rng.standard_normal((16, 40)) * row_scale * 1.5).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's quantized tensors warn of their deprecation
        if ours.per_channel:
            tqx = torch.quantize_per_channel(torch.from_numpy(x), ts.double(), tz, 0, torch.qint8)
        else:
            tqx = torch.quantize_per_tensor(torch.from_numpy(x), float(ts), int(tz), torch.qint8)
    q = quantize(x, s, z, axis=ours.axis)
    np.testing.assert_array_equal(q, tqx.int_repr().numpy())
    np.testing.assert_array_equal(dequantize(q, s, z, axis=ours.axis), tqx.dequantize().numpy())


# ---- int8 × int8 → int32 ---------------------------------------------------------------------


@st.composite
def int8_operands(draw):
    m, k, n = (draw(st.integers(1, 24)) for _ in range(3))
    dt = draw(st.sampled_from([np.int8, np.uint8]))
    lo, hi = np.iinfo(dt).min, np.iinfo(dt).max
    x = draw(hnp.arrays(dt, (m, k)))
    w = draw(hnp.arrays(np.int8, (n, k)))
    per_row = draw(st.booleans())
    zx = (
        draw(hnp.arrays(np.int32, (m,), elements=st.integers(lo, hi)))
        if per_row
        else draw(st.integers(lo, hi))
    )
    zw = draw(hnp.arrays(np.int32, (n,), elements=st.integers(-128, 127)))
    return x, w, zx, zw


@given(int8_operands())
def test_int8_matmul_exact_and_kernels_agree(ops):
    x, w, zx, zw = ops
    acc = int8_matmul(x, w, zx, zw)
    assert acc.dtype == np.int32
    # Exact: every partial sum is an integer below 2^31, which float64 represents exactly.
    exact = (x.astype(np.float64) - np.reshape(zx, (-1, 1))) @ (
        w.astype(np.float64) - zw[:, None]
    ).T
    np.testing.assert_array_equal(acc, exact)
    with kernels.use_backend("numpy"):
        np.testing.assert_array_equal(int8_matmul(x, w, zx, zw), acc)
    zx_rows = np.broadcast_to(np.asarray(zx, np.int32), (x.shape[0],)).copy()
    np.testing.assert_array_equal(
        int8_matmul_numba(x, w, zx_rows, zw), int8_matmul_reference(x, w, zx_rows, zw)
    )


@settings(max_examples=15)
@given(
    m=st.integers(1, 16),
    k=st.integers(1, 40),
    n=st.integers(1, 16),
    per_channel=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_quantized_matmul_equals_float_matmul_of_dequantized(m, k, n, per_channel, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = (rng.standard_normal((n, k)) * rng.uniform(0.01, 1, (n, 1))).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    sx, zx = qparams_from_minmax(x.min(), x.max())
    if per_channel:
        sw, zw = qparams_from_minmax(w.min(axis=1), w.max(axis=1))
        axis = 0
    else:
        sw, zw = qparams_from_minmax(w.min(), w.max())
        axis = None
    xq, wq = quantize(x, sx, zx), quantize(w, sw, zw, axis=axis)
    y = quantized_matmul(xq, sx, zx, wq, sw, zw, bias=b)
    expected = (
        dequantize(xq, sx, zx).astype(np.float64)
        @ dequantize(wq, sw, zw, axis=axis).astype(np.float64).T
        + b
    )
    # Equal up to the float32 rounding of the final scaling (a few ulps of the terms' size).
    scale_of_terms = np.abs(dequantize(xq, sx, zx)).astype(np.float64) @ np.abs(
        dequantize(wq, sw, zw, axis=axis)
    ).astype(np.float64).T + np.abs(b)
    assert np.all(np.abs(y - expected) <= 8 * F32_EPS * scale_of_terms + 1e-30)


def test_int8_kernel_runs_as_plain_python():
    # What NUMBA_DISABLE_JIT=1 runs: the kernel's Python source, loop by loop.
    from tinyllm.precision.int8_matmul import _int8_matmul_rows

    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (3, 5), dtype=np.int8)
    w = rng.integers(-128, 128, (4, 5), dtype=np.int8)
    zx, zw = np.int32([1, -3, 0]), np.int32([0, 2, -128, 127])
    out = np.zeros((3, 4), np.int32)
    _int8_matmul_rows.py_func(x, np.ascontiguousarray(w.T), zx, zw, out, 0, 3)
    np.testing.assert_array_equal(out, int8_matmul_reference(x, w, zx, zw))


def test_int8_matmul_refuses_what_could_overflow_int32():
    k = 33_026  # affine × affine: 255 · 255 · 33026 ≥ 2^31
    x = np.zeros((1, k), np.int8)
    w = np.zeros((1, k), np.int8)
    with pytest.raises(ValueError, match="overflow"):
        int8_matmul(x, w, -128, 127)
    assert int8_matmul(x, w, 0, 0).shape == (1, 1)  # symmetric: 128·128·33026 < 2^31


def test_int8_matmul_bad_input():
    with pytest.raises(TypeError, match="int8"):
        int8_matmul(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.int8))
    with pytest.raises(ValueError, match="do not match"):
        int8_matmul(np.zeros((2, 3), np.int8), np.zeros((2, 4), np.int8))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        int8_matmul(np.zeros((2, 3), np.int8), np.zeros((5, 3), np.int8), np.zeros(3, np.int32))
