"""Quantized Linear: weight-only, dynamic (weight + activation), LLM.int8() outliers.

Truth: a float64 x Wᵀ + b, the error bound that follows from |W − Ŵ| ≤ s/2, and measured
accuracy ratios stated as inequalities with margin (the measured values are in the comments).
"""

import numpy as np
import pytest

from tinyllm.precision import (
    QuantizedLinear,
    dequantize,
    llm_int8_linear,
    outlier_columns,
    qparams_from_minmax,
    quantize,
    quantize_weight,
    vectorwise_quantize,
)
from tinyllm.precision.int8_matmul import quantized_matmul


def _rms(a, b):
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - b) ** 2)))


def _linear_problem(seed, m=32, k=128, n=64, outlier_cols=0, outlier_gain=30.0):
    """x (m, k) ~ N(0, 1) with a few columns scaled up; W rows of geometrically varying size."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k)).astype(np.float32)
    if outlier_cols:
        x[:, rng.choice(k, outlier_cols, replace=False)] *= outlier_gain
    w = (rng.standard_normal((n, k)) * np.geomspace(0.01, 1, n)[:, None]).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    exact = x.astype(np.float64) @ w.T.astype(np.float64) + b
    return x, w, b, exact


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("symmetric", [True, False])
def test_weight_only_is_float_matmul_with_dequantized_weight(per_channel, symmetric):
    x, w, b, exact = _linear_problem(0)
    ql = QuantizedLinear.from_float(
        w, b, mode="weight_only", per_channel=per_channel, symmetric=symmetric
    )
    y = ql(x)
    w_hat = ql.dequantized_weight().astype(np.float64)
    np.testing.assert_allclose(y, x.astype(np.float64) @ w_hat.T + b, rtol=1e-5, atol=1e-5)
    # |W − Ŵ| ≤ s/2 elementwise, so |y − y_exact| ≤ Σ_k |x_k| · s_n / 2.
    s = np.broadcast_to(np.asarray(ql.weight_scale, np.float64), (w.shape[0],))
    bound = np.abs(x).astype(np.float64).sum(axis=1, keepdims=True) * s / 2
    assert np.all(np.abs(y - exact) <= bound * (1 + 1e-4) + 1e-5)


def test_per_channel_beats_per_tensor_on_rows_of_varying_scale():
    # Measured rms-error ratios per-tensor / per-channel: 2.9–3.3 over seeds 0–4.
    for seed in range(3):
        x, w, b, exact = _linear_problem(seed)
        per_ch = QuantizedLinear.from_float(w, b, per_channel=True)
        per_t = QuantizedLinear.from_float(w, b, per_channel=False)
        assert _rms(per_t(x), exact) >= 2.0 * _rms(per_ch(x), exact)
        # And row by row the weight itself is never reconstructed worse.
        err_ch = np.abs(per_ch.dequantized_weight() - w).max(axis=1)
        err_t = np.abs(per_t.dequantized_weight() - w).max(axis=1)
        assert np.all(err_ch <= err_t + 1e-7)


def test_dynamic_mode_is_int8_product_of_quantized_activations():
    x, w, b, exact = _linear_problem(1)
    ql = QuantizedLinear.from_float(w, b, mode="dynamic", per_channel=True)
    # Independently: quantize x per tensor from its own range, dequantize both, multiply in float.
    sx, zx = qparams_from_minmax(x.min(), x.max())
    x_hat = dequantize(quantize(x, sx, zx), sx, zx).astype(np.float64)
    expected = x_hat @ ql.dequantized_weight().astype(np.float64).T + b
    np.testing.assert_allclose(ql(x), expected, rtol=1e-5, atol=1e-4)
    # Quantizing the activations too costs accuracy, but it is still an approximation.
    assert _rms(ql(x), exact) < 0.05 * np.sqrt(np.mean(exact**2))


def test_vectorwise_quantize_rows():
    a = np.float32([[1.0, -2.54, 0.5], [0.0, 0.0, 0.0], [3.0, 1.5, -0.75]])
    q, s = vectorwise_quantize(a)
    np.testing.assert_array_equal(s, np.float32([2.54 / 127, np.finfo(np.float32).eps, 3 / 127]))
    np.testing.assert_array_equal(q, [[50, -127, 25], [0, 0, 0], [127, 64, -32]])  # 63.5 → 64


def test_outlier_columns_threshold_is_inclusive():
    x = np.float32([[0.1, 6.0, -5.9, 0.0], [0.2, 0.0, 1.0, -7.5]])
    np.testing.assert_array_equal(outlier_columns(x), [False, True, False, True])
    np.testing.assert_array_equal(outlier_columns(x, threshold=8.0), [False] * 4)


def test_llm_int8_without_outliers_is_plain_vectorwise_int8():
    x, w, b, _ = _linear_problem(2)
    assert not outlier_columns(x * 0.5).any()
    xs = x * np.float32(0.5)
    xq, sx = vectorwise_quantize(xs)
    wq, sw = vectorwise_quantize(w)
    plain = quantized_matmul(xq, sx, 0, wq, sw, 0, bias=b)
    np.testing.assert_array_equal(llm_int8_linear(xs, w, b), plain)


def test_llm_int8_all_columns_outliers_is_the_float_product():
    x, w, b, exact = _linear_problem(3)
    np.testing.assert_allclose(llm_int8_linear(x, w, b, threshold=0.0), exact, rtol=1e-5, atol=1e-4)


def test_llm_int8_outlier_decomposition_much_more_accurate():
    # Three feature columns 30× larger than the rest. Measured rms-error ratios plain int8 /
    # LLM.int8(): 10.1–12.5 with float outlier weights (seeds 0–4); 3.2–3.8 for
    # QuantizedLinear, which keeps only int8 W and dequantizes its outlier columns.
    for seed in range(3):
        x, w, b, exact = _linear_problem(seed, outlier_cols=3)
        assert outlier_columns(x).sum() == 3
        plain = _rms(llm_int8_linear(x, w, b, threshold=np.inf), exact)
        assert plain >= 5.0 * _rms(llm_int8_linear(x, w, b), exact)
        stored = QuantizedLinear.from_float(w, b, mode="llm_int8")
        assert plain >= 2.0 * _rms(stored(x), exact)


def test_quantized_linear_shapes_bytes_and_errors():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((48, 32)).astype(np.float32)
    b = rng.standard_normal(48).astype(np.float32)
    x = rng.standard_normal((2, 5, 32)).astype(np.float32)
    for mode in QuantizedLinear.MODES:
        ql = QuantizedLinear.from_float(w, b, mode=mode)
        y = ql(x)
        assert y.shape == (2, 5, 48) and y.dtype == np.float32
        np.testing.assert_allclose(y.reshape(10, 48), ql(x.reshape(10, 32)), rtol=1e-6)
    # int8 weights + one float32 scale per row (+ int32 zero points if affine) + float32 bias
    assert QuantizedLinear.from_float(w, b).nbytes == 48 * 32 + 48 * 4 + 48 * 4
    assert QuantizedLinear.from_float(w, b, symmetric=False).nbytes == 48 * 32 + 3 * 48 * 4
    assert QuantizedLinear.from_float(w, None, per_channel=False).nbytes == 48 * 32 + 4
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 32\)"):
        QuantizedLinear.from_float(w, b)(np.ones((3, 31), np.float32))
    with pytest.raises(ValueError, match="unknown mode"):
        QuantizedLinear.from_float(w, b, mode="int4")
    with pytest.raises(ValueError, match="bias"):
        QuantizedLinear.from_float(w, b[:5])
    with pytest.raises(ValueError, match="2-D"):
        quantize_weight(np.ones(4, np.float32))
