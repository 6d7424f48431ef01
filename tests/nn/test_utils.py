"""nn.utils: gradient clipping and parameter vectors, against NumPy and torch.nn.utils."""

import math

import numpy as np
import pytest

from tinyllm import nn
from tinyllm.engine import Tensor
from tinyllm.nn.utils import (
    clip_grad_norm_,
    clip_grad_value_,
    parameters_to_vector,
    vector_to_parameters,
)


def params_with_grads(rng, shapes=((3, 4), (5,), (2, 2, 2))):
    ps = []
    for s in shapes:
        p = nn.Parameter(rng.standard_normal(s).astype(np.float32))
        p.grad = rng.standard_normal(s).astype(np.float32) * 3
        ps.append(p)
    return ps


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_scales_to_max_norm(rng, norm_type):
    ps = params_with_grads(rng)
    g = np.concatenate([p.grad.ravel().astype(np.float64) for p in ps])
    norm = (
        np.abs(g).max()
        if math.isinf(norm_type)
        else (np.abs(g) ** norm_type).sum() ** (1 / norm_type)
    )
    out = clip_grad_norm_(ps, 1.0, norm_type=norm_type)
    assert isinstance(out, Tensor) and out.shape == ()
    assert out.item() == pytest.approx(norm, rel=1e-6)
    clipped = np.concatenate([p.grad.ravel().astype(np.float64) for p in ps])
    np.testing.assert_allclose(clipped, g / (norm + 1e-6), rtol=1e-6)  # direction kept


def test_clip_grad_norm_leaves_small_gradients_and_handles_nonfinite(rng):
    ps = params_with_grads(rng)
    before = [p.grad.copy() for p in ps]
    clip_grad_norm_(ps, 1e6)
    for p, b in zip(ps, before):
        np.testing.assert_array_equal(p.grad, b)
    ps[0].grad[0, 0] = np.inf
    assert math.isinf(clip_grad_norm_(ps, 1.0).item())
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    single = params_with_grads(rng, ((4,),))[0]  # a single Tensor is accepted, as in torch
    expected = np.linalg.norm(single.grad.astype(np.float64))
    assert clip_grad_norm_(single, 0.5).item() == pytest.approx(expected, rel=1e-6)


def test_clip_grad_value_and_vectors(rng):
    ps = params_with_grads(rng)
    expected = [np.clip(p.grad, -0.5, 0.5) for p in ps]
    clip_grad_value_(ps, 0.5)
    for p, e in zip(ps, expected):
        np.testing.assert_array_equal(p.grad, e)
    vec = parameters_to_vector(ps)
    np.testing.assert_array_equal(vec.data, np.concatenate([p.data.ravel() for p in ps]))
    vector_to_parameters(Tensor(np.arange(vec.shape[0], dtype=np.float32)), ps)
    np.testing.assert_array_equal(ps[1].data, np.arange(12, 17))
    with pytest.raises(ValueError, match="20 elements, the parameters 25"):
        vector_to_parameters(np.zeros(20, np.float32), ps)


def test_equal_to_torch(rng):
    torch = pytest.importorskip("torch")
    for norm_type in (2.0, 1.5, math.inf):
        ps = params_with_grads(rng)
        tp = [torch.tensor(p.data, requires_grad=True) for p in ps]
        for t, p in zip(tp, ps):
            t.grad = torch.tensor(p.grad)
        ours = clip_grad_norm_(ps, 2.0, norm_type=norm_type).item()
        theirs = torch.nn.utils.clip_grad_norm_(tp, 2.0, norm_type=norm_type).item()
        assert ours == pytest.approx(theirs, rel=1e-5)
        for t, p in zip(tp, ps):
            np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(
        parameters_to_vector(ps).data, torch.nn.utils.parameters_to_vector(tp).detach().numpy()
    )
