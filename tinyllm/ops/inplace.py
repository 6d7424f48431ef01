"""In-place ops: `x.add_(y)`, `x.zero_()`, `x[mask] = v` — the same values, written into x.

PyTorch's trailing underscore means "modify this tensor instead of making a new one". The new
values are those of the out-of-place op (`x.add_(y)` holds what `x + y` would), written into
`x.data` itself, so that every view of the same memory sees them; then x's version counter is
bumped (tinyllm/engine/versions.py), so that a backward which saved the old values refuses to
run instead of computing with the new ones. The result must fit x: broadcasting may stretch y,
never x, and a float result cannot be written into an integer tensor.

When the graph is not being recorded — under `no_grad` (optimizers, initialisation), or when
neither x nor the other operand requires grad (masks, buffers, caches) — that is all. Otherwise
the op is differentiable, as in PyTorch:

    x_old  = x's value so far, with x's history               (a copy: the write overwrites x)
    x_new  = op(x_old, y)                                     (recorded like any op)
    x     ← x_new's values, and x now stands for x_new in the graph

so the gradient of x flows through op's backward to x_old's history and to y. Two cases are
refused with a RuntimeError, as in PyTorch: a leaf that requires grad (a parameter — its
gradient would be the gradient of a value that no longer exists; do it under `no_grad`), and a
view of one. tinyllm also refuses, where PyTorch would not, a differentiable in-place op on a
tensor that a recorded op has already used, or on a view of a tensor that requires grad: its
graph links ops through tensor objects, so it cannot re-route those gradients (see versions.py).

`x[index] = v` is `index_put`: the out-of-place form copies x and writes v at `index` (basic,
integer-array or boolean-mask index, as NumPy and PyTorch read it); its adjoint gives x the
gradient everywhere except at `index`, and v the gradient at `index` (summed back to v's
shape). These ops move or copy data: their cost is declared as data movement.
"""

from __future__ import annotations

import numpy as np

from tinyllm import dtypes
from tinyllm.engine import Function, Tensor, is_grad_enabled, no_grad, unbroadcast
from tinyllm.engine.flops import MOVES_DATA
from tinyllm.ops.activation import relu, sigmoid, tanh
from tinyllm.ops.arithmetic import abs, add, div, exp, log, mul, neg, pow, sqrt, sub
from tinyllm.ops.conversion import cast
from tinyllm.ops.selection import clamp, where
from tinyllm.ops.shape import _unwrap_index, expand, masked_fill
from tinyllm.runtime.random import generator_or_default


def _records(x: Tensor, others) -> bool:
    """Whether the in-place op must be recorded for differentiation."""
    if not is_grad_enabled():
        return False
    return x.requires_grad or any(isinstance(o, Tensor) and o.requires_grad for o in others)


def _check_recordable(x: Tensor, op: str) -> None:
    if x.requires_grad and x._ctx is None:
        raise RuntimeError(
            f"{op}: a leaf tensor that requires grad (shape {x.shape}) is being used in an "
            "in-place operation; modify it under `with tinyllm.no_grad():` (as optimizers and "
            "nn.init do), or use the out-of-place op"
        )
    base = x._base
    if base is not None and base.requires_grad:
        kind = "a leaf tensor that requires grad" if base._ctx is None else "a tensor in the graph"
        raise RuntimeError(
            f"{op}: this tensor (shape {x.shape}) is a view of {kind} (shape {base.shape}); "
            "an in-place operation on it is not supported: use the out-of-place op"
        )
    if x._used:
        raise RuntimeError(
            f"{op}: this tensor (shape {x.shape}) was already used by an op of the graph, and "
            "tinyllm cannot re-route that op's gradient around an in-place change (PyTorch "
            "can): use the out-of-place op, e.g. x = x.add(y) instead of x.add_(y)"
        )


def _value_dtype(x: Tensor) -> np.dtype:
    """The dtype of a constant written into x: x's own, or float32 for half storage (whose
    uint16 bit patterns must be encoded from float values, never cast to)."""
    return np.dtype(np.float32) if dtypes.is_half_storage(x.data.dtype) else x.data.dtype


def _write(x: Tensor, new: Tensor, op: str) -> None:
    """x.data[...] = new's values, checked to fit x's shape and dtype; bumps the version."""
    if new.shape != x.shape:
        raise RuntimeError(
            f"{op}: the result has shape {new.shape}, which cannot be written into the tensor "
            f"of shape {x.shape} (in-place ops broadcast the other operand, never the tensor)"
        )
    if new.is_floating_point() and not x.is_floating_point():
        raise RuntimeError(
            f"{op}: the result type {new.dtype} cannot be written into a tensor of dtype "
            f"{x.dtype} (PyTorch refuses it too); cast first, e.g. x = x.float()"
        )
    if not x.data.flags.writeable:
        raise RuntimeError(
            f"{op}: the tensor of shape {x.shape} is a read-only view (an expand or broadcast, "
            "where several elements share one memory location); clone() it first"
        )
    if dtypes.same_dtype(dtypes.logical_dtype(new.data.dtype), dtypes.logical_dtype(x.data.dtype)):
        x.data[...] = new.data
    else:
        dtypes.assign_(x.data, new.numpy())
    x._vc.value += 1


def _apply_inplace(x: Tensor, op: str, fn, *others) -> Tensor:
    """Run x ← fn(x, *others) in place: see the module docstring for the two paths."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    if not _records(x, others):
        with no_grad():
            new = fn(x, *others)
        _write(x, new, op)
        return x
    _check_recordable(x, op)
    old = Tensor._result(x.data.copy(), x._ctx)  # x's value so far, and its history
    old.requires_grad = x.requires_grad
    new = fn(old, *others)
    _write(x, new, op)
    x._ctx, x.requires_grad = new._ctx, new.requires_grad
    return x


# ---- arithmetic --------------------------------------------------------------------------


def add_(x: Tensor, other, alpha=1) -> Tensor:
    """x ← x + alpha · other."""
    return _apply_inplace(x, "add_", lambda a, b: add(a, b if alpha == 1 else mul(b, alpha)), other)


def sub_(x: Tensor, other, alpha=1) -> Tensor:
    """x ← x − alpha · other."""
    return _apply_inplace(x, "sub_", lambda a, b: sub(a, b if alpha == 1 else mul(b, alpha)), other)


def mul_(x: Tensor, other) -> Tensor:
    return _apply_inplace(x, "mul_", mul, other)


def div_(x: Tensor, other) -> Tensor:
    return _apply_inplace(x, "div_", div, other)


def pow_(x: Tensor, exponent) -> Tensor:
    return _apply_inplace(x, "pow_", pow, exponent)


def _unary_inplace(op):
    """`x.exp_()` for `exp`, and so on: x ← op(x)."""

    def method(x: Tensor) -> Tensor:
        return _apply_inplace(x, f"{op.__name__}_", op)

    method.__name__ = f"{op.__name__}_"
    method.__doc__ = f"x ← {op.__name__}(x), in place."
    return method


relu_, sigmoid_, tanh_ = _unary_inplace(relu), _unary_inplace(sigmoid), _unary_inplace(tanh)
exp_, log_, sqrt_ = _unary_inplace(exp), _unary_inplace(log), _unary_inplace(sqrt)
neg_, abs_ = _unary_inplace(neg), _unary_inplace(abs)


def clamp_(x: Tensor, min=None, max=None) -> Tensor:  # noqa: A002 - PyTorch's names
    return _apply_inplace(x, "clamp_", lambda a: clamp(a, min, max))


def masked_fill_(x: Tensor, mask, value) -> Tensor:
    return _apply_inplace(x, "masked_fill_", lambda a: masked_fill(a, mask, value))


# ---- filling: the new values do not depend on the old ones (their gradient is zero) ------


def _fill_with(x: Tensor, op: str, values) -> Tensor:
    """x ← values (an array broadcastable to x, in x's dtype); x's old value gets no gradient."""
    everywhere = np.ones(x.shape, dtype=bool)
    values = np.asarray(values)
    return _apply_inplace(x, op, lambda a: where(everywhere, values.astype(_value_dtype(a)), a))


def zero_(x: Tensor) -> Tensor:
    return fill_(x, 0)


def fill_(x: Tensor, value) -> Tensor:
    if isinstance(value, Tensor):
        if value.data.size != 1:
            raise RuntimeError(
                f"fill_: value must be a number or a one-element tensor, got shape {value.shape}"
            )
        value = value.item()
    return _apply_inplace(x, "fill_", lambda a: masked_fill(a, np.ones(a.shape, bool), value))


def copy_(x: Tensor, src, non_blocking=False) -> Tensor:
    """x ← src, broadcast to x's shape and cast to x's dtype; the gradient flows to src."""
    if not isinstance(src, Tensor):
        src = Tensor(np.asarray(src))

    def copied(a, s):
        s = cast(s, a.dtype)
        try:
            return expand(s, a.shape) if s.shape != a.shape else s * 1
        except ValueError:
            raise RuntimeError(
                f"copy_: source of shape {s.shape} cannot be broadcast to the tensor's "
                f"shape {a.shape}"
            ) from None

    return _apply_inplace(x, "copy_", copied, src)


def normal_(x: Tensor, mean=0.0, std=1.0, generator=None) -> Tensor:
    """x ← draws from N(mean, std²), from `generator` or tinyllm's seeded default."""
    if not x.is_floating_point():
        raise TypeError(f"normal_: needs a floating-point tensor, got dtype {x.dtype}")
    if std < 0:
        raise ValueError(f"normal_: std must be non-negative, got {std}")
    g = generator_or_default(generator)
    return _fill_with(x, "normal_", mean + std * g.standard_normal(x.shape))


def uniform_(x: Tensor, a=0.0, b=1.0, generator=None) -> Tensor:
    """x ← draws from U[a, b), from `generator` or tinyllm's seeded default."""
    if not x.is_floating_point():
        raise TypeError(f"uniform_: needs a floating-point tensor, got dtype {x.dtype}")
    if a > b:
        raise ValueError(f"uniform_: needs a <= b, got a={a}, b={b}")
    g = generator_or_default(generator)
    return _fill_with(x, "uniform_", a + (b - a) * g.random(x.shape))


# ---- x[index] = v --------------------------------------------------------------------------


class IndexPut(Function):
    """y = x with v written at `index`; x̄ = ȳ with zeros at `index`, v̄ = ȳ[index] (summed to
    v's shape)."""

    flops = MOVES_DATA

    @staticmethod
    def forward(ctx, x, v, index=None):
        ctx.index, ctx.v_shape = index, np.shape(v)
        out = x.copy()
        out[index] = v
        return out

    @staticmethod
    def backward(ctx, grad):
        nx, nv = ctx.needs_input_grad
        gx = gv = None
        if nx:
            gx = grad.copy()
            gx[ctx.index] = 0
        if nv:
            gv = unbroadcast(np.asarray(grad[ctx.index]), ctx.v_shape)
        return gx, gv


def index_put(x: Tensor, index, value) -> Tensor:
    """A copy of x with `value` written at `index` (x[index] = value, out of place)."""
    index = _unwrap_index(index)
    v = value if isinstance(value, Tensor) else np.asarray(value, dtype=_value_dtype(x))
    if isinstance(v, Tensor) and not dtypes.same_dtype(v.dtype, x.dtype):
        v = cast(v, x.dtype)
    try:
        target = np.broadcast_shapes(np.shape(x.data[index]), v.shape)
        if target != np.shape(x.data[index]):
            raise ValueError
    except IndexError as e:
        raise IndexError(
            f"x[index] = v: indexing a tensor of shape {x.shape} with {index!r}: {e}"
        ) from None
    except ValueError:
        raise ValueError(
            f"x[index] = v: a value of shape {tuple(v.shape)} cannot be written into the "
            f"{np.shape(x.data[index])} elements that index selects of a tensor of shape "
            f"{x.shape}"
        ) from None
    return IndexPut.apply(x, v, index=index)


def setitem(x: Tensor, index, value) -> None:
    """`x[index] = value` (Python's __setitem__): index_put, in place."""
    _apply_inplace(x, "x[index] = v", lambda a, v: index_put(a, index, v), value)
