"""Gradient checking: is backward really the derivative of forward?

For a function y = f(x₁, …, xₖ) and a random cotangent u (same shape as y), reverse mode gives
the gradient of the scalar φ(x) = ⟨u, f(x)⟩ with respect to each input. A central difference
estimates the same number independently, element by element:

    ∂φ/∂xᵢ ≈ (φ(x + ε eᵢ) − φ(x − ε eᵢ)) / 2ε            error O(ε²)

Using a random u (not all ones) checks every output's contribution, not just their sum.
In float64 with ε = 1e-6 the two agree to about 1e-9 for smooth functions.

For large inputs, `fast=True` checks one random direction d per input instead of every element:

    ⟨∇ₓφ, d⟩ ≈ (φ(x + ε d) − φ(x − ε d)) / 2ε

— a single pair of forward passes, which still catches almost every wrong backward.
"""

from __future__ import annotations

import numpy as np

from tinyllm.engine import Tensor, no_grad


def _phi(fn, inputs, u):
    with no_grad():
        out = fn(*inputs)
    return float(np.sum(out.data.astype(np.float64) * u))


def gradcheck(
    fn,
    inputs,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    fast: bool = False,
    seed: int = 0,
    raise_exception: bool = True,
) -> bool:
    """Compare `fn`'s backward with central differences (PyTorch's torch.autograd.gradcheck).

    `inputs` is a list of Tensors; those with requires_grad=True are checked and must be
    float64. Returns True, or raises AssertionError naming the input and the worst element.
    """
    rng = np.random.default_rng(seed)
    inputs = list(inputs)
    for i, t in enumerate(inputs):
        if isinstance(t, Tensor) and t.requires_grad and t.dtype != np.float64:
            raise TypeError(
                f"gradcheck: input {i} has dtype {t.dtype}; use float64 "
                f"(finite differences are meaningless in float32)"
            )
    for t in inputs:
        if isinstance(t, Tensor):
            t.grad = None
    out = fn(*inputs)
    u = rng.standard_normal(out.shape)
    out.backward(u.astype(out.dtype))

    for i, t in enumerate(inputs):
        if not (isinstance(t, Tensor) and t.requires_grad):
            continue
        analytic = np.zeros(t.shape) if t.grad is None else t.grad.astype(np.float64)
        x = t.data  # perturbed in place, restored after each probe
        if fast:
            d = rng.standard_normal(t.shape)
            orig = x.copy()
            x[...] = orig + eps * d
            plus = _phi(fn, inputs, u)
            x[...] = orig - eps * d
            minus = _phi(fn, inputs, u)
            x[...] = orig
            numeric = (plus - minus) / (2 * eps)
            expected = float(np.sum(analytic * d))
            if not abs(numeric - expected) <= atol + rtol * abs(numeric):
                msg = (
                    f"gradcheck (fast): input {i} of shape {t.shape}: directional derivative "
                    f"numeric {numeric:.8g} vs analytic {expected:.8g}"
                )
                if raise_exception:
                    raise AssertionError(msg)
                return False
            continue
        numeric = np.zeros(t.shape)
        for idx in np.ndindex(*t.shape):  # works for any memory layout, views included
            orig = x[idx]
            x[idx] = orig + eps
            plus = _phi(fn, inputs, u)
            x[idx] = orig - eps
            minus = _phi(fn, inputs, u)
            x[idx] = orig
            numeric[idx] = (plus - minus) / (2 * eps)
        err = np.abs(numeric - analytic)
        bad = err > atol + rtol * np.abs(numeric)
        if bad.any():
            j = int(np.argmax(err - (atol + rtol * np.abs(numeric))))
            idx = np.unravel_index(j, t.shape)
            msg = (
                f"gradcheck: input {i} of shape {t.shape}: {int(bad.sum())} of {t.numel()} "
                f"elements disagree; worst at {idx}: numeric {numeric[idx]:.8g} vs analytic "
                f"{analytic[idx]:.8g}"
            )
            if raise_exception:
                raise AssertionError(msg)
            return False
    return True
