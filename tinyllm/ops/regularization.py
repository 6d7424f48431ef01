"""Regularization by noise: dropout.

dropout(x, p): during training, zero each element with probability p and scale the survivors
by 1/(1−p), so the expected value is unchanged (Srivastava et al. 2014, "inverted" dropout):

    y = x ⊙ m / (1 − p),   mᵢ ~ Bernoulli(1 − p);     x̄ = ȳ ⊙ m / (1 − p)

The mask comes from an explicit NumPy Generator (tinyllm/runtime/random.py), so it is
reproducible. In evaluation (`training=False`) dropout is the identity.
"""

from __future__ import annotations

import numpy as np

from tinyllm.engine import Function, Tensor, policy
from tinyllm.engine.flops import per_element
from tinyllm.runtime.random import generator_or_default


class Dropout(Function):
    inputs, name = policy.FLOAT, "dropout"
    flops = per_element("elementwise")

    @staticmethod
    def forward(ctx, x, p=0.5, generator=None):
        keep = (
            generator.random(x.shape, dtype=np.float32 if x.dtype != np.float64 else np.float64)
            >= p
        )
        scale = np.asarray(1.0 / (1.0 - p), dtype=x.dtype)
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return x * keep * scale

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return grad * keep * ctx.scale


def dropout(x: Tensor, p: float = 0.5, training: bool = True, generator=None) -> Tensor:
    p = policy.probability("dropout", p)
    policy.admit("dropout", policy.FLOAT, [x.data])
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return Dropout.apply(x, p=p, generator=generator_or_default(generator))
