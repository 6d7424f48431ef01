"""Selection: element-wise ops that choose between values — maximum, minimum, clamp, where,
and the triangles tril / triu.

Each output element is one of its inputs, chosen by a comparison, so the gradient flows to the
input that was chosen and is zero for the others:

| op        | y                   | ∂y/∂a                  | ∂y/∂b               |
|-----------|---------------------|------------------------|---------------------|
| maximum   | max(a, b)           | [a > b] (+½ on a tie)  | [b > a] (+½ on a tie) |
| minimum   | min(a, b) = −max(−a, −b)                                             |
| clamp     | min(max(x, lo), hi) | [lo ≤ x ≤ hi]          |                     |
| where     | c ? a : b           | [c]                    | [not c]             |
| tril      | x where j − i ≤ k, else 0   | [j − i ≤ k]    |                     |
| triu      | x where j − i ≥ k, else 0   | [j − i ≥ k]    |                     |

(tril and triu choose between x and 0 by position: row i, column j of the last two axes, with
k the `diagonal` offset — the causal mask of attention is tril of ones.)

Ties split the gradient evenly (PyTorch's convention for maximum). Each costs one FLOP per
output element in both passes.
"""

from __future__ import annotations

import numbers

import numpy as np

from tinyllm.engine import Function, Tensor, unbroadcast
from tinyllm.ops.arithmetic import ELEMENTWISE, binary_operands, check_broadcast


class Maximum(Function):
    flops = ELEMENTWISE

    @staticmethod
    def forward(ctx, a, b, smallest=False):
        ctx.save_for_backward(a, b)
        ctx.smallest = smallest
        return np.minimum(a, b) if smallest else np.maximum(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        # Ties split the gradient evenly between the two inputs (PyTorch's convention).
        wa = ((a < b) if ctx.smallest else (a > b)) + 0.5 * (a == b)
        ga = unbroadcast((grad * wa).astype(grad.dtype), a.shape) if na else None
        gb = unbroadcast((grad * (1 - wa)).astype(grad.dtype), b.shape) if nb else None
        return ga, gb


def maximum(a, b) -> Tensor:
    a, b = binary_operands(a, b, "maximum")
    check_broadcast("maximum", a, b)
    return Maximum.apply(a, b)


def minimum(a, b) -> Tensor:
    """min(a, b), the mirror image of maximum (not −max(−a, −b): negation wraps unsigned
    integers and is not defined for bool)."""
    a, b = binary_operands(a, b, "minimum")
    check_broadcast("minimum", a, b)
    return Maximum.apply(a, b, smallest=True)


class Where(Function):
    flops = ELEMENTWISE

    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        ctx.shapes = (np.shape(a), np.shape(b))
        return np.where(cond, a, b)

    @staticmethod
    def backward(ctx, grad):
        (cond,) = ctx.saved_tensors
        _, na, nb = ctx.needs_input_grad
        zero = np.zeros((), dtype=grad.dtype)
        ga = unbroadcast(np.where(cond, grad, zero), ctx.shapes[0]) if na else None
        gb = unbroadcast(np.where(cond, zero, grad), ctx.shapes[1]) if nb else None
        return None, ga, gb


def where(condition, a, b) -> Tensor:
    """Elements of `a` where `condition` is true, else of `b` (all three broadcast)."""
    cond = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    if cond.dtype != np.bool_:
        raise TypeError(f"where: condition must be boolean, got dtype {cond.dtype}")
    a, b = binary_operands(a, b, "where")
    try:
        np.broadcast_shapes(cond.shape, np.shape(a), np.shape(b))
    except ValueError:
        raise ValueError(
            f"where: shapes {cond.shape}, {tuple(np.shape(a))} and "
            f"{tuple(np.shape(b))} cannot be broadcast together"
        ) from None
    return Where.apply(cond, a, b)


class Clamp(Function):
    flops = ELEMENTWISE

    @staticmethod
    def forward(ctx, x, lo=None, hi=None):
        # Bounds take x's dtype: a NumPy float64 bound must not upcast a float32 tensor.
        dt = x.dtype  # (clamp made an integer x float32 if a bound is a float)
        lo = None if lo is None else np.asarray(lo).astype(dt)
        hi = None if hi is None else np.asarray(hi).astype(dt)
        ctx.save_for_backward(x)
        ctx.bounds = (lo, hi)
        return np.clip(x, lo, hi)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        lo, hi = ctx.bounds
        inside = np.ones(x.shape, dtype=bool)
        if lo is not None:
            inside &= x >= lo
        if hi is not None:
            inside &= x <= hi
        return grad * inside


def clamp(x: Tensor, min=None, max=None) -> Tensor:  # noqa: A002 - PyTorch's names
    """x limited to [min, max] (either may be None, not both). Bounds are numbers; an integer
    tensor with a float bound is clamped as float32, as in PyTorch."""
    if min is None and max is None:
        raise RuntimeError("clamp: at least one of min and max must be given")
    for name, bound in (("min", min), ("max", max)):
        if bound is not None and (
            isinstance(bound, (bool, np.bool_)) or not isinstance(bound, numbers.Real)
        ):
            raise TypeError(f"clamp: {name} must be a number or None, got {bound!r}")
    if not x.is_floating_point() and any(isinstance(b, (float, np.floating)) for b in (min, max)):
        x = Tensor(x.data.astype(np.float32))
    elif x.dtype == np.bool_:
        x = Tensor(x.data.astype(np.int64))
    return Clamp.apply(x, lo=min, hi=max)


class Triangle(Function):
    """x kept on one side of a diagonal of its last two axes, zero elsewhere."""

    flops = ELEMENTWISE

    @staticmethod
    def forward(ctx, x, diagonal=0, upper=False):
        n, m = x.shape[-2:]
        keep = ~np.tri(n, m, diagonal - 1, dtype=bool) if upper else np.tri(n, m, diagonal, bool)
        ctx.keep = keep
        return np.where(keep, x, np.zeros((), dtype=x.dtype))

    @staticmethod
    def backward(ctx, grad):
        return np.where(ctx.keep, grad, np.zeros((), dtype=grad.dtype))


def _triangle(x: Tensor, diagonal, upper: bool, op: str) -> Tensor:
    if x.ndim < 2:
        raise ValueError(f"{op}: needs a tensor with at least 2 dims, got shape {x.shape}")
    if not isinstance(diagonal, (int, np.integer)) or isinstance(diagonal, bool):
        raise TypeError(f"{op}: diagonal must be an int, got {diagonal!r}")
    return Triangle.apply(x, diagonal=int(diagonal), upper=upper)


def tril(x: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle: x[..., i, j] where j − i ≤ diagonal, else 0 (torch.tril)."""
    return _triangle(x, diagonal, False, "tril")


def triu(x: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle: x[..., i, j] where j − i ≥ diagonal, else 0 (torch.triu)."""
    return _triangle(x, diagonal, True, "triu")
