"""Global-norm gradient clipping (Pascanu et al. 2013), torch.nn.utils.clip_grad_norm_.

All gradients are treated as one long vector g. If its Euclidean norm exceeds `max_norm`, the
whole vector is scaled down — direction kept, length capped:

    ‖g‖ = √(Σ_params Σ_elements g²);    g ← g · min(1, max_norm / (‖g‖ + 10⁻⁶))

The norm is *global*: one number for the whole model. Under ZeRO each rank holds only a shard
of g, so the sum of squares is computed per shard and all-reduced first (sim/zero.py calls
`clip_coefficient` with that global norm).
"""

from __future__ import annotations

import math

import numpy as np


def total_norm(grads) -> float:
    """√(Σ g²) over a list of arrays, accumulated in float64."""
    return math.sqrt(
        sum(
            float(
                np.dot(
                    g.reshape(-1).astype(np.float64, copy=False),
                    g.reshape(-1).astype(np.float64, copy=False),
                )
            )
            for g in grads
        )
    )


def clip_coefficient(norm: float, max_norm: float) -> float:
    return min(1.0, max_norm / (norm + 1e-6))


def clip_grad_norm_(parameters, max_norm: float) -> float:
    """Scale the .grad of `parameters` in place; returns the norm before clipping."""
    grads = [p.grad for p in parameters if p.grad is not None]
    norm = total_norm(grads)
    if not math.isfinite(norm):
        return norm  # leave non-finite gradients for the loss scaler / caller to detect
    coef = clip_coefficient(norm, max_norm)
    if coef < 1.0:
        for g in grads:
            g *= coef
    return norm
