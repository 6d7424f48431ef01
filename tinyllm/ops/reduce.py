"""Reductions: sum, mean, amax/amin, var, std — and why their gradients spread back out.

A reduction collapses axes. Each input element contributed to exactly one output element, so
its adjoint is that output's adjoint times the local derivative, *broadcast back* over the
reduced axes (the adjoint of a sum is a copy — the mirror image of `unbroadcast`):

    sum:   y = Σᵢ xᵢ              x̄ᵢ = ȳ
    mean:  y = (1/n) Σᵢ xᵢ        x̄ᵢ = ȳ / n
    amax:  y = maxᵢ xᵢ            x̄ᵢ = ȳ · [xᵢ = y] / #{j : xⱼ = y}   (ties share evenly)
    var:   y = Σᵢ (xᵢ − x̄)² / (n − c)
                                  x̄ᵢ = ȳ · 2(xᵢ − x̄) / (n − c)      (c = correction, 1 = unbiased)

    std:   y = √var                x̄ᵢ = ȳ · (xᵢ − x̄) / ((n − c) · y)

`dim` may be None (all axes), an int or a tuple; `keepdim` keeps reduced axes with size 1
(NumPy's `axis` / `keepdims` are accepted as aliases, tinyllm/ops/dims.py). `max(dim)` and
`min(dim)`, which also return *where* the extreme is and send the whole gradient to that one
index, are PyTorch's other kind of max: they live with the ranking ops in sorting.py.
A reduction costs one FLOP per element it reads, in each pass.
"""

from __future__ import annotations

import builtins

import numpy as np

from tinyllm.engine import Function, Tensor, policy
from tinyllm.engine.flops import FlopRule, prod
from tinyllm.ops.arithmetic import sqrt
from tinyllm.ops.dims import numpy_aliases


def _reads_input(ctx, *_):
    return 0, prod(ctx.in_shape)  # one FLOP per element read


READS_INPUT = FlopRule("reduction", _reads_input, _reads_input)


def _normalize_axes(axis, ndim, op, shape=None):
    if axis is None:
        return tuple(range(ndim))
    axes = policy.dims(op, axis, ndim, shape)  # range-checked, no repeats
    return axes if ndim else ()


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
        # integers and bools sum in int64, as in PyTorch (NumPy would give uint64 for uint8)
        acc = None if x.dtype.kind == "f" or x.dtype.metadata is not None else np.int64
        return np.asarray(x.sum(axis=axes, keepdims=keepdims, dtype=acc))

    @staticmethod
    def backward(ctx, grad):
        shape = ctx.in_shape
        return np.broadcast_to(_expand_back(grad, shape, ctx.axes, ctx.keepdims), shape)


@numpy_aliases
def sum(x: Tensor, dim=None, keepdim=False) -> Tensor:  # noqa: A001 - PyTorch's name
    return Sum.apply(x, axes=_normalize_axes(dim, x.ndim, "sum", x.shape), keepdims=keepdim)


@numpy_aliases
def mean(x: Tensor, dim=None, keepdim=False) -> Tensor:
    """Σ x / n over `dim`; the mean of nothing is NaN, as in PyTorch."""
    policy.admit("mean", policy.FLOAT, [x.data])
    axes = _normalize_axes(dim, x.ndim, "mean", x.shape)
    n = int(np.prod([x.shape[a] for a in axes])) if axes else 1
    return sum(x, axes, keepdim) * (1.0 / n if n else float("nan"))


class Max(Function):
    flops = READS_INPUT

    @staticmethod
    def forward(ctx, x, axes=(), keepdims=False, smallest=False):
        if x.size == 0 and (not axes or builtins.min(x.shape[a] for a in axes) == 0):
            raise ValueError(
                f"amax/amin: reducing over an empty axis of a tensor of shape {x.shape} "
                "(the maximum of nothing is undefined)"
            )
        out = np.asarray((x.min if smallest else x.max)(axis=axes, keepdims=True))
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


@numpy_aliases
def amax(x: Tensor, dim=None, keepdim=False) -> Tensor:
    """The largest value over `dim`; tied maxima share the gradient evenly (torch.amax)."""
    return Max.apply(x, axes=_normalize_axes(dim, x.ndim, "amax", x.shape), keepdims=keepdim)


@numpy_aliases
def amin(x: Tensor, dim=None, keepdim=False) -> Tensor:
    """The smallest value over `dim`, amax's mirror image (torch.amin)."""
    axes = _normalize_axes(dim, x.ndim, "amin", x.shape)
    return Max.apply(x, axes=axes, keepdims=keepdim, smallest=True)


class Var(Function):
    inputs, name = policy.FLOAT, "var"
    flops = READS_INPUT

    @staticmethod
    def forward(ctx, x, axes=(), keepdims=False, correction=1):
        n = int(np.prod([x.shape[a] for a in axes])) if axes else 1
        # No degrees of freedom left (n ≤ correction): 0/0 = NaN, as in PyTorch.
        denom = np.asarray(max(n - correction, 0), dtype=x.dtype)
        with np.errstate(invalid="ignore", divide="ignore"):
            centered = x - (x.sum(axis=axes, keepdims=True) / np.asarray(n, x.dtype))
            ctx.save_for_backward(centered)
            ctx.in_shape, ctx.axes, ctx.keepdims, ctx.denom = x.shape, axes, keepdims, denom
            return np.asarray(
                (centered * centered).sum(axis=axes, keepdims=keepdims) / denom, dtype=x.dtype
            )

    @staticmethod
    def backward(ctx, grad):
        (centered,) = ctx.saved_tensors
        g = _expand_back(grad, centered.shape, ctx.axes, ctx.keepdims)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (g * centered * (2.0 / ctx.denom)).astype(centered.dtype, copy=False)


def _correction(op, unbiased, correction):
    """PyTorch's two spellings of Bessel's correction: `unbiased=True` is `correction=1`."""
    if unbiased is not None and correction is not None:
        raise TypeError(f"{op}: pass either unbiased= or correction=, not both")
    if unbiased is not None:
        if not isinstance(unbiased, (bool, np.bool_)):
            raise TypeError(f"{op}: unbiased must be a bool, got {unbiased!r}")
        return int(unbiased)
    return 1 if correction is None else correction


@numpy_aliases
def var(x: Tensor, dim=None, unbiased=None, keepdim=False, *, correction=None) -> Tensor:
    """Σ (x − mean)² / (n − correction) over `dim` (PyTorch's torch.var; correction=1 default)."""
    return _var(x, dim, keepdim, _correction("var", unbiased, correction), "var")


def _var(x, dim, keepdim, correction, op):
    return Var.apply(
        x, axes=_normalize_axes(dim, x.ndim, op, x.shape), keepdims=keepdim, correction=correction
    )


@numpy_aliases
def std(x: Tensor, dim=None, unbiased=None, keepdim=False, *, correction=None) -> Tensor:
    """√var over `dim` (PyTorch's torch.std), differentiated through var and sqrt."""
    policy.admit("std", policy.FLOAT, [x.data])
    return sqrt(_var(x, dim, keepdim, _correction("std", unbiased, correction), "std"))
