"""Reductions: sum, mean, max/min, var — and why their gradients spread back out.

A reduction collapses axes. Each input element contributed to exactly one output element, so
its adjoint is that output's adjoint times the local derivative, *broadcast back* over the
reduced axes (the adjoint of a sum is a copy — the mirror image of `unbroadcast`):

    sum:   y = Σᵢ xᵢ              x̄ᵢ = ȳ
    mean:  y = (1/n) Σᵢ xᵢ        x̄ᵢ = ȳ / n
    max:   y = maxᵢ xᵢ            x̄ᵢ = ȳ · [xᵢ = y] / #{j : xⱼ = y}   (ties share evenly)
    var:   y = Σᵢ (xᵢ − x̄)² / (n − c)
                                  x̄ᵢ = ȳ · 2(xᵢ − x̄) / (n − c)      (c = correction, 1 = unbiased)

`axis` may be None (all axes), an int or a tuple; `keepdims` keeps reduced axes with size 1.
A reduction costs one FLOP per element it reads, in each pass.
"""

from __future__ import annotations

import numpy as np

from tinyllm.engine import Function, Tensor
from tinyllm.engine.flops import FlopRule, prod


def _reads_input(ctx, *_):
    return 0, prod(ctx.in_shape)  # one FLOP per element read


READS_INPUT = FlopRule("reduction", _reads_input, _reads_input)


def _normalize_axes(axis, ndim, op):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < (ndim or 1):  # (`max` is shadowed by the op below)
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dims")
        out.append(a % ndim if ndim else 0)
    return tuple(sorted(set(out)))


def _expand_back(grad, in_shape, axes, keepdims):
    """Reinsert the reduced axes (size 1) so `grad` broadcasts against the input."""
    if not keepdims and axes:
        shape = list(grad.shape)
        for a in axes:
            shape.insert(a, 1)
        grad = grad.reshape(shape)
    return grad


class Sum(Function):
    flops = READS_INPUT

    @staticmethod
    def forward(ctx, x, axes=(), keepdims=False):
        ctx.in_shape, ctx.axes, ctx.keepdims = x.shape, axes, keepdims
        return np.asarray(x.sum(axis=axes, keepdims=keepdims))

    @staticmethod
    def backward(ctx, grad):
        shape = ctx.in_shape
        return np.broadcast_to(_expand_back(grad, shape, ctx.axes, ctx.keepdims), shape)


def sum(x: Tensor, axis=None, keepdims=False) -> Tensor:  # noqa: A001 - PyTorch's name
    return Sum.apply(x, axes=_normalize_axes(axis, x.ndim, "sum"), keepdims=keepdims)


def mean(x: Tensor, axis=None, keepdims=False) -> Tensor:
    axes = _normalize_axes(axis, x.ndim, "mean")
    n = int(np.prod([x.shape[a] for a in axes])) if axes else 1
    if n == 0:
        raise ValueError(f"mean: reducing over an empty axis of a tensor of shape {x.shape}")
    return sum(x, axes, keepdims) * (1.0 / n)


class Max(Function):
    flops = READS_INPUT

    @staticmethod
    def forward(ctx, x, axes=(), keepdims=False):
        if x.size == 0:
            raise ValueError(f"max/min: empty tensor of shape {x.shape}")
        out = np.asarray(x.max(axis=axes, keepdims=True))
        ctx.save_for_backward(x, out)
        ctx.in_shape, ctx.axes, ctx.keepdims = x.shape, axes, keepdims
        return out if keepdims else np.asarray(out.squeeze(axis=axes))

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        winners = x == out
        count = winners.sum(axis=ctx.axes, keepdims=True)
        g = _expand_back(grad, x.shape, ctx.axes, ctx.keepdims)
        return (winners * (g / count)).astype(x.dtype, copy=False)


def max(x: Tensor, axis=None, keepdims=False) -> Tensor:  # noqa: A001 - PyTorch's name
    return Max.apply(x, axes=_normalize_axes(axis, x.ndim, "max"), keepdims=keepdims)


def min(x: Tensor, axis=None, keepdims=False) -> Tensor:  # noqa: A001 - PyTorch's name
    """min x = −max(−x)."""
    return -max(-x, axis, keepdims)


class Var(Function):
    flops = READS_INPUT

    @staticmethod
    def forward(ctx, x, axes=(), keepdims=False, correction=1):
        n = int(np.prod([x.shape[a] for a in axes])) if axes else 1
        denom = n - correction
        if denom <= 0:
            raise ValueError(
                f"var: {n} elements with correction={correction} leaves no degrees "
                f"of freedom (shape {x.shape}, axes {axes})"
            )
        centered = x - x.mean(axis=axes, keepdims=True)
        ctx.save_for_backward(centered)
        ctx.in_shape, ctx.axes, ctx.keepdims, ctx.denom = x.shape, axes, keepdims, denom
        return np.asarray(
            (centered * centered).sum(axis=axes, keepdims=keepdims) / denom, dtype=x.dtype
        )

    @staticmethod
    def backward(ctx, grad):
        (centered,) = ctx.saved_tensors
        g = _expand_back(grad, centered.shape, ctx.axes, ctx.keepdims)
        return (g * centered * (2.0 / ctx.denom)).astype(centered.dtype, copy=False)


def var(x: Tensor, axis=None, keepdims=False, correction=1) -> Tensor:
    return Var.apply(
        x, axes=_normalize_axes(axis, x.ndim, "var"), keepdims=keepdims, correction=correction
    )
