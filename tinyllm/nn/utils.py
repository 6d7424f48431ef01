"""Gradient clipping and flat parameter vectors (torch.nn.utils).

Global-norm clipping (Pascanu et al. 2013). All gradients are treated as one long vector g. If
its p-norm exceeds `max_norm`, the whole vector is scaled down — direction kept, length capped:

    ‖g‖ₚ = (Σ_params Σ_elements |g|ᵖ)^(1/p)   (p = inf: max |g|)
    g ← g · min(1, max_norm / (‖g‖ₚ + 10⁻⁶))

The norm is *global*: one number for the whole model. Under ZeRO each rank holds only a shard
of g, so the sum of squares is computed per shard and all-reduced first (sim/ calls
`clip_coefficient` with that global norm). A non-finite norm (an fp16 overflow) leaves the
gradients untouched — the loss scaler skips that step — where PyTorch would multiply them by
NaN; error_if_nonfinite=True raises instead, as in PyTorch.

clip_grad_value_ clamps each element to [−v, v] instead. parameters_to_vector and
vector_to_parameters flatten the parameters into one vector and back, in order.
"""

from __future__ import annotations

import math

import numpy as np

from tinyllm.dtypes import assign_, to_float32
from tinyllm.engine import Tensor, no_grad

__all__ = [
    "total_norm",
    "clip_coefficient",
    "clip_grad_norm",
    "clip_grad_norm_",
    "clip_grad_value_",
    "parameters_to_vector",
    "vector_to_parameters",
]


def _as_list(parameters) -> list:
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def _norm_type(norm_type) -> float:
    p = float(norm_type)  # accepts 2, 2.0, "inf", float("inf")
    if not p > 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be positive or inf, got {norm_type}")
    return p


def _values64(g) -> np.ndarray:
    """A gradient's values as flat float64 (bf16 storage decoded first)."""
    g = np.asarray(g)
    if g.dtype.metadata is not None:
        g = to_float32(g)
    return g.reshape(-1).astype(np.float64, copy=False)


def total_norm(grads, norm_type: float = 2.0) -> float:
    """‖g‖ₚ over a list of arrays taken as one vector, accumulated in float64."""
    p = _norm_type(norm_type)
    flat = [_values64(g) for g in grads]
    if not flat:
        return 0.0
    if math.isinf(p):
        return max((float(np.abs(g).max()) if g.size else 0.0) for g in flat)
    if p == 2.0:
        return math.sqrt(sum(float(np.dot(g, g)) for g in flat))
    return sum(float(np.sum(np.abs(g) ** p)) for g in flat) ** (1.0 / p)


def clip_coefficient(norm: float, max_norm: float) -> float:
    """min(1, max_norm / (norm + 10⁻⁶)): the factor every gradient is multiplied by."""
    return min(1.0, max_norm / (norm + 1e-6))


def clip_grad_norm(parameters, max_norm: float, norm_type=2.0, error_if_nonfinite=False) -> float:
    """Scale the .grad of `parameters` in place; returns the norm before clipping (a float)."""
    grads = [p.grad for p in _as_list(parameters) if p.grad is not None]
    norm = total_norm(grads, norm_type)
    if not math.isfinite(norm):
        if error_if_nonfinite:
            raise RuntimeError(
                f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
                f"non-finite ({norm}), so it cannot be clipped; set error_if_nonfinite=False "
                "to leave them as they are"
            )
        return norm  # leave non-finite gradients for the loss scaler / caller to detect
    coef = clip_coefficient(norm, float(max_norm))
    if coef < 1.0:
        for g in grads:
            if g.dtype.metadata is not None:  # bf16 storage: scale the values, round back
                assign_(g, to_float32(g) * coef)
            else:
                g *= coef
    return norm


def clip_grad_norm_(
    parameters, max_norm: float, norm_type=2.0, error_if_nonfinite: bool = False, foreach=None
) -> Tensor:
    """torch.nn.utils.clip_grad_norm_: clip in place; returns the total norm as a 0-d Tensor.
    (`foreach` selects a PyTorch kernel and changes nothing here.)"""
    return Tensor(np.float32(clip_grad_norm(parameters, max_norm, norm_type, error_if_nonfinite)))


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp every gradient element to [−clip_value, clip_value], in place."""
    v = float(clip_value)
    if v < 0:
        raise ValueError(f"clip_grad_value_: clip_value must be non-negative, got {clip_value}")
    for p in _as_list(parameters):
        if p.grad is None:
            continue
        if p.grad.dtype.metadata is not None:  # bf16 storage
            assign_(p.grad, np.clip(to_float32(p.grad), -v, v))
        else:
            np.clip(p.grad, -v, v, out=p.grad)


def parameters_to_vector(parameters) -> Tensor:
    """One 1-D Tensor: every parameter's values flattened, concatenated in order (a copy)."""
    params = _as_list(parameters)
    if not params:
        raise ValueError("parameters_to_vector: got no parameters")
    return Tensor(np.concatenate([p.data.reshape(-1) for p in params]))


def vector_to_parameters(vec, parameters) -> None:
    """Copy consecutive slices of the 1-D `vec` into each parameter, in place."""
    v = vec.data if isinstance(vec, Tensor) else np.asarray(vec)
    params = _as_list(parameters)
    if v.ndim != 1:
        raise TypeError(f"vector_to_parameters: expected a 1-D vector, got shape {v.shape}")
    n = sum(p.data.size for p in params)
    if v.size != n:
        raise ValueError(
            f"vector_to_parameters: the vector has {v.size} elements, the parameters {n}"
        )
    offset = 0
    with no_grad():
        for p in params:
            p.data[...] = v[offset : offset + p.data.size].reshape(p.shape)
            offset += p.data.size
