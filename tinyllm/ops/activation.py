"""Activation functions: the non-linearities between a network's linear maps.

Each is element-wise, so its vector-Jacobian product is an element-wise product:
x̄ = f'(x) · ȳ. Where the derivative is cheaper from the output than from the input, forward
saves the output.

| op        | y                   | dy/dx                                  |
|-----------|---------------------|----------------------------------------|
| relu      | max(x, 0)           | [x > 0]                                |
| tanh      | tanh x              | 1 − tanh²x                             |
| sigmoid   | σ(x) = 1/(1+e^−x)   | σ(1−σ)                                 |
| gelu      | x·Φ(x)              | Φ(x) + x·φ(x)   (Φ, φ: normal CDF, PDF) |

Each costs one FLOP per output element in both passes (family "activation").
"""

from __future__ import annotations

import numpy as np

from tinyllm import kernels
from tinyllm.engine import Function, Tensor, policy
from tinyllm.engine.flops import per_element

ACTIVATION = per_element("activation")


class Tanh(Function):
    inputs, name = policy.PROMOTE, "tanh"
    flops = ACTIVATION

    @staticmethod
    def forward(ctx, x):
        out = np.tanh(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * (1 - out * out)


def tanh(x: Tensor) -> Tensor:
    return Tanh.apply(x)


class Sigmoid(Function):
    inputs, name = policy.PROMOTE, "sigmoid"
    flops = ACTIVATION

    @staticmethod
    def forward(ctx, x):
        # σ(x) = 1/(1+e^−x) for x ≥ 0 and e^x/(1+e^x) for x < 0: never exponentiates a large
        # positive number.
        e = np.exp(-np.abs(x))
        out = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * out * (1 - out)


def sigmoid(x: Tensor) -> Tensor:
    return Sigmoid.apply(x)


class ReLU(Function):
    inputs, name = policy.NUMERIC, "relu"
    flops = ACTIVATION

    @staticmethod
    def forward(ctx, x):
        out = np.maximum(x, 0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * (out > 0)


def relu(x: Tensor) -> Tensor:
    return ReLU.apply(x)


class GELU(Function):
    """GELU(x) = x·Φ(x), Φ the standard normal CDF (Hendrycks & Gimpel 2016).

    exact:  Φ(x) = ½(1 + erf(x/√2));           d/dx = Φ(x) + x·φ(x),  φ(x) = e^(−x²/2)/√(2π)
    tanh:   ½x(1 + tanh(u)), u = √(2/π)(x + 0.044715x³);
            d/dx = ½(1 + tanh u) + ½x(1 − tanh²u)·√(2/π)(1 + 3·0.044715x²)
    The work is done by tinyllm.kernels.gelu (numba, with a NumPy reference beside it).
    """

    inputs, name = policy.FLOAT, "gelu"
    flops = ACTIVATION

    @staticmethod
    def forward(ctx, x, approximate="none"):
        ctx.approximate = approximate
        ctx.save_for_backward(x)
        return kernels.gelu_forward(x, approximate)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return kernels.gelu_backward(x, grad, ctx.approximate)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(x, approximate=approximate)
