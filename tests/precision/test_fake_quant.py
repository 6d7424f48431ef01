"""Fake quantization: forward = quantize∘dequantize; backward = the straight-through estimator.

The STE is not the derivative of the forward (a staircase, derivative 0 almost everywhere); it
is the derivative of the surrogate clamp(x, lo, hi) with lo = (q_min − z − ½)s and
hi = (q_max − z + ½)s. So: gradcheck that surrogate against finite differences, and check that
FakeQuantize's backward is exactly its derivative (the mask) times the incoming gradient.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyllm import Tensor, clamp
from tinyllm.precision import FakeQuant, MinMaxObserver, dequantize, fake_quantize, quantize
from tinyllm.testing import gradcheck

QMIN, QMAX = -128, 127


def _surrogate_bounds(scale, zp):
    return (QMIN - zp - 0.5) * scale, (QMAX - zp + 0.5) * scale


def _points_away_from_bounds(rng, n, scale, zp):
    """x spread over and beyond the range, none within 1e-3·s of the surrogate's kinks."""
    lo, hi = _surrogate_bounds(scale, zp)
    x = rng.uniform(lo - 20 * scale, hi + 20 * scale, size=n)
    near = np.minimum(np.abs(x - lo), np.abs(x - hi)) < 1e-3 * scale
    return x[~near]


@settings(max_examples=20)
@given(
    x=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=10),
        elements=st.floats(-50, 50, width=32),
    ),
    per_channel=st.booleans(),
)
def test_forward_is_quantize_then_dequantize(x, per_channel):
    obs = MinMaxObserver(qscheme="per_channel_affine" if per_channel else "per_tensor_affine")
    obs(x * 0.5)  # a range narrower than x, so some values clip
    s, z = obs.calculate_qparams()
    y = fake_quantize(Tensor(x), s, z, axis=obs.axis)
    expected = dequantize(quantize(x, s, z, axis=obs.axis), s, z, axis=obs.axis)
    np.testing.assert_array_equal(y.data, expected)
    assert y.dtype == np.float32


def test_clamp_surrogate_gradcheck():
    rng = np.random.default_rng(0)
    scale, zp = 0.05, 7
    lo, hi = _surrogate_bounds(scale, zp)
    x = Tensor(_points_away_from_bounds(rng, 60, scale, zp), requires_grad=True)
    assert gradcheck(lambda t: clamp(t, lo, hi), [x])


def test_backward_is_the_surrogate_derivative_times_the_gradient():
    rng = np.random.default_rng(1)
    scale, zp = 0.05, 7
    lo, hi = _surrogate_bounds(scale, zp)
    x_np = _points_away_from_bounds(rng, 200, scale, zp)
    assert (x_np < lo).any() and (x_np > hi).any() and ((x_np > lo) & (x_np < hi)).any()
    # The surrogate's derivative by central differences, in plain NumPy.
    h = 1e-6
    mask = (np.clip(x_np + h, lo, hi) - np.clip(x_np - h, lo, hi)) / (2 * h)
    np.testing.assert_allclose(mask, (x_np > lo) & (x_np < hi), atol=1e-6)
    g = rng.standard_normal(x_np.shape)
    x = Tensor(x_np, requires_grad=True)
    fake_quantize(x, scale, zp).backward(g)
    np.testing.assert_array_equal(x.grad, g * np.round(mask))  # exactly mask · ȳ
    # Same for the tinyllm clamp surrogate (whose gradient gradcheck verified above).
    xc = Tensor(x_np, requires_grad=True)
    clamp(xc, lo, hi).backward(g)
    np.testing.assert_array_equal(x.grad, xc.grad)


def test_per_channel_backward_mask_uses_each_channels_range():
    scale = np.float32([0.01, 1.0])
    zp = np.int32([0, 0])
    x = Tensor(np.array([[1.0, 2.0], [1.0, 2.0]]), requires_grad=True)  # axis 0 = channels
    fake_quantize(x, scale, zp, axis=0).backward(np.ones((2, 2)))
    # channel 0: 1/0.01 = 100 fits, 200 > 127 clips; channel 1: both fit
    np.testing.assert_array_equal(x.grad, [[1, 0], [1, 1]])


@pytest.mark.parametrize("per_channel", [False, True])
def test_matches_pytorch_fake_quantize_forward_and_grad(per_channel):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x_np = (rng.standard_normal((6, 50)) * 4).astype(np.float32)
    g = rng.standard_normal(x_np.shape).astype(np.float32)
    if per_channel:
        s = rng.uniform(0.01, 0.05, 6).astype(np.float32)
        z = rng.integers(-20, 20, 6).astype(np.int32)
        tx = torch.tensor(x_np, requires_grad=True)
        ty = torch.fake_quantize_per_channel_affine(
            tx, torch.from_numpy(s), torch.from_numpy(z), 0, QMIN, QMAX
        )
        axis = 0
    else:
        s, z, axis = np.float32(0.03), np.int32(5), None
        tx = torch.tensor(x_np, requires_grad=True)
        ty = torch.fake_quantize_per_tensor_affine(tx, float(s), int(z), QMIN, QMAX)
    ty.backward(torch.from_numpy(g))
    x = Tensor(x_np, requires_grad=True)
    y = fake_quantize(x, s, z, axis=axis)
    y.backward(g)
    np.testing.assert_array_equal(y.data, ty.detach().numpy())
    np.testing.assert_array_equal(x.grad, tx.grad.numpy())
    assert 0 < (x.grad == 0).sum() < x.grad.size  # some clipped, some passed


def test_fake_quant_switches():
    rng = np.random.default_rng(3)
    fq = FakeQuant()  # moving-average observer, per-tensor affine int8
    x1 = Tensor(rng.standard_normal(100).astype(np.float32))
    y1 = fq(x1)
    s1 = fq.scale
    assert len(np.unique(y1.data)) <= 256 and not np.array_equal(y1.data, x1.data)
    fq.disable_observer()
    fq(Tensor(x1.data * 10))  # not observed: the range stays
    assert fq.scale == s1
    fq.enable_observer()
    fq(Tensor(x1.data * 10))  # observed: the range moves 1% of the way
    assert fq.scale > s1
    fq.disable_fake_quant()
    x = Tensor(x1.data, requires_grad=True)
    y = fq(x)
    assert y is x  # identity when fake quantization is off
    fq.enable_fake_quant()
    assert not np.array_equal(fq(x).data, x.data)


def test_fake_quant_matches_pytorch_module():
    torch = pytest.importorskip("torch")
    tq = torch.ao.quantization
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = tq.FakeQuantize(
            observer=tq.MovingAverageMinMaxObserver,
            quant_min=QMIN,
            quant_max=QMAX,
            dtype=torch.qint8,
            qscheme=torch.per_tensor_affine,
        )
    ours = FakeQuant(quant_min=QMIN, quant_max=QMAX, qscheme="per_tensor_affine")
    rng = np.random.default_rng(4)
    for step in range(6):
        if step == 3:
            ours.disable_observer()
            theirs.disable_observer()
        x = (rng.standard_normal(64) * (step + 1) + 0.5).astype(np.float32)
        y = ours(Tensor(x))
        ty = theirs(torch.from_numpy(x))
        np.testing.assert_array_equal(y.data, ty.numpy())
        assert ours.scale == theirs.scale.item() and ours.zero_point == theirs.zero_point.item()


def test_fake_quantize_bad_input():
    with pytest.raises(TypeError, match="floating-point"):
        fake_quantize(Tensor(np.arange(3)), 0.1, 0)
    with pytest.raises(ValueError, match="per-channel along axis 0"):
        fake_quantize(
            Tensor(np.ones((2, 3), np.float32)),
            np.ones(3, np.float32),
            np.zeros(3, np.int32),
            axis=0,
        )
