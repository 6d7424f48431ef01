"""Initialization: the random values a network's weights start from (torch.nn.init).

Why it matters: a layer y = Wx with n inputs multiplies the variance of its input by
n·Var(W). Start every layer with Var(W) = 1/n and a signal keeps its scale through any depth;
start with much more or much less and activations (and gradients) explode or vanish
exponentially in the depth. The classic rules choose Var(W) from the *fans* of W — for a
weight of shape (out, in, k₁, …), fan_in = in·k₁·…, fan_out = out·k₁·… — and a *gain* g that
undoes the activation's change of scale (calculate_gain):

    xavier (Glorot & Bengio 2010):   std = g·√(2 / (fan_in + fan_out))
    kaiming (He et al. 2015):        std = g / √fan,  fan = fan_in (or fan_out), g = √2 for ReLU
    uniform forms:                   U(−a, a) with a = √3·std   (Var U(−a, a) = a²/3)
    trunc_normal_:                   N(mean, std²) redrawn until it lands in [a, b]

    gains: linear, conv, sigmoid → 1;  tanh → 5/3;  relu → √2;  leaky_relu(s) → √(2/(1+s²));
           selu → 3/4

GPT-2 and nanoGPT use plain normal_(std=0.02) for every matrix and zeros_ for biases.

Every function fills its tensor in place, under no_grad (initialization is not part of any
graph), draws from tinyllm's seeded generator (tinyllm.manual_seed) unless a `generator` is
passed, and returns the tensor — PyTorch's names and arguments. Draws are made in float64 and
rounded to the tensor's dtype (bf16 and fp16 included).
"""

from __future__ import annotations

import math

import numpy as np

from tinyllm.dtypes import assign_
from tinyllm.engine import Tensor, no_grad
from tinyllm.runtime.random import generator_or_default

__all__ = [
    "calculate_gain",
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "zeros_",
    "ones_",
    "eye_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
]

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d")


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The factor by which to scale a std so that `nonlinearity` keeps the signal's scale."""
    if nonlinearity in _LINEAR + ("conv_transpose3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor) -> tuple[int, int]:
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError(
            f"fan in and fan out can not be computed for a tensor with fewer than 2 "
            f"dimensions (shape {shape})"
        )
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fan(tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode {mode!r} not supported, please use one of 'fan_in', 'fan_out'")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill(tensor, values) -> Tensor:
    """tensor.data[...] = values (rounded to its dtype), in place, outside any graph."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"nn.init: expected a Tensor, got {type(tensor).__name__}")
    with no_grad():
        assign_(tensor.data, values)
    return tensor


def uniform_(tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    """Fill with U(a, b)."""
    if not a <= b:
        raise ValueError(f"uniform_: need a <= b, got a={a}, b={b}")
    return _fill(tensor, generator_or_default(generator).uniform(a, b, tensor.shape))


def normal_(tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    """Fill with N(mean, std²)."""
    if std < 0:
        raise ValueError(f"normal_: std must be non-negative, got {std}")
    return _fill(tensor, generator_or_default(generator).normal(mean, std, tensor.shape))


def trunc_normal_(
    tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, generator=None
) -> Tensor:
    """Fill with N(mean, std²) truncated to [a, b] (absolute bounds, as PyTorch): every
    value outside is redrawn, which samples exactly the truncated distribution."""
    if not a < b or std <= 0:
        raise ValueError(f"trunc_normal_: need a < b and std > 0, got a={a}, b={b}, std={std}")
    cdf = lambda z: 0.5 * (1 + math.erf((z - mean) / (std * math.sqrt(2))))  # noqa: E731
    if cdf(b) - cdf(a) < 1e-4:
        raise ValueError(
            f"trunc_normal_: [a, b] = [{a}, {b}] holds almost none of N({mean}, {std}²); "
            "the mean is too far from the interval"
        )
    g = generator_or_default(generator)
    values = g.normal(mean, std, tensor.shape)
    outside = (values < a) | (values > b)
    while outside.any():
        values[outside] = g.normal(mean, std, int(outside.sum()))
        outside = (values < a) | (values > b)
    return _fill(tensor, values)


def constant_(tensor, val: float) -> Tensor:
    return _fill(tensor, np.full(tensor.shape, val))


def zeros_(tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor) -> Tensor:
    return constant_(tensor, 1.0)


def eye_(tensor) -> Tensor:
    """Fill a 2-D tensor with the identity matrix (ones on the diagonal)."""
    if tensor.ndim != 2:
        raise ValueError(f"eye_: only 2-D tensors are supported, got shape {tensor.shape}")
    return _fill(tensor, np.eye(*tensor.shape))


def xavier_uniform_(tensor, gain: float = 1.0, generator=None) -> Tensor:
    """U(−a, a), a = gain·√(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    a = math.sqrt(3.0) * gain * math.sqrt(2.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor, gain: float = 1.0, generator=None) -> Tensor:
    """N(0, std²), std = gain·√(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(
    tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None
) -> Tensor:
    """U(−bound, bound), bound = √3·gain/√fan (He et al. 2015); `a` is leaky_relu's slope."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None
) -> Tensor:
    """N(0, std²), std = gain/√fan (He et al. 2015)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std, generator)
