"""Comparisons: element-wise == != < <= > >=, as boolean tensors.

A comparison is a step function of its inputs — its derivative is zero wherever it exists — so
it is not differentiable and records nothing: the result is a new leaf holding a bool array,
as in PyTorch. Masks made this way feed `where` and `masked_fill`, whose gradients do flow.

`x == y` is element-wise too (PyTorch's meaning), so a Tensor keeps hashing by identity
(tinyllm/engine/tensor.py): a tensor can still be a dict key or a set member, and `x in list`
is found by identity first. `equal(a, b)` is the one comparison that answers with a Python
bool: same shape and every element equal (torch.equal).

The logical ops that combine masks — `a & b`, `a | b`, `a ^ b`, `~a` — and the reductions
`any` / `all` are here too, for the same reason: their values are booleans (or, on integer
tensors, bits), with no gradient.
"""

from __future__ import annotations

import numbers

import numpy as np

from tinyllm.engine import Tensor, policy
from tinyllm.ops.dims import numpy_aliases


def _operand(b):
    if isinstance(b, Tensor):
        return b.numpy()
    if isinstance(b, (numbers.Number, np.generic, np.ndarray, list, tuple)):
        return b
    return None


def _compare(a: Tensor, b, op, name) -> Tensor:
    other = _operand(b)
    if other is None or isinstance(other, (complex, np.complexfloating)):
        raise TypeError(f"{name}: cannot compare a Tensor with {type(b).__name__}")
    if isinstance(other, (list, tuple)):
        other = policy.as_real_array(name, other)
    elif isinstance(other, np.ndarray):
        policy.check_real(name, other)
    try:
        return Tensor(op(a.numpy(), other))
    except ValueError:
        shape = np.shape(other)
        raise ValueError(
            f"{name}: shapes {a.shape} and {shape} cannot be broadcast together"
        ) from None


def lt(a: Tensor, b) -> Tensor:
    return _compare(a, b, np.less, "lt")


def le(a: Tensor, b) -> Tensor:
    return _compare(a, b, np.less_equal, "le")


def gt(a: Tensor, b) -> Tensor:
    return _compare(a, b, np.greater, "gt")


def ge(a: Tensor, b) -> Tensor:
    return _compare(a, b, np.greater_equal, "ge")


def eq(a: Tensor, b) -> Tensor:
    return _compare(a, b, np.equal, "eq")


def ne(a: Tensor, b) -> Tensor:
    return _compare(a, b, np.not_equal, "ne")


def equal(a: Tensor, b: Tensor) -> bool:
    """True when a and b have the same shape and equal elements (torch.equal)."""
    return a.shape == b.shape and bool(np.array_equal(a.numpy(), b.numpy()))


def tensor_eq(a: Tensor, b):
    """`a == b`: element-wise; anything that is not a number or array (None, a string, a
    module) is simply not equal, as in PyTorch — Python then compares identities."""
    return NotImplemented if _operand(b) is None else eq(a, b)


def tensor_ne(a: Tensor, b):
    return NotImplemented if _operand(b) is None else ne(a, b)


def _bitwise(a: Tensor, b, op, name) -> Tensor:
    if a.is_floating_point() or (isinstance(b, Tensor) and b.is_floating_point()):
        raise TypeError(f"{name}: needs bool or integer tensors, got dtype {a.dtype}")
    return _compare(a, b, op, name)


def bitwise_and(a: Tensor, b) -> Tensor:
    return _bitwise(a, b, np.bitwise_and, "bitwise_and")


def bitwise_or(a: Tensor, b) -> Tensor:
    return _bitwise(a, b, np.bitwise_or, "bitwise_or")


def bitwise_xor(a: Tensor, b) -> Tensor:
    return _bitwise(a, b, np.bitwise_xor, "bitwise_xor")


def bitwise_not(a: Tensor) -> Tensor:
    """`~a`: logical not of a bool tensor, bitwise not of an integer one."""
    if a.is_floating_point():
        raise TypeError(f"bitwise_not: needs a bool or integer tensor, got dtype {a.dtype}")
    return Tensor(np.invert(a.data))


def logical_not(a: Tensor) -> Tensor:
    return Tensor(np.logical_not(a.numpy()))


def _reduce_bool(a: Tensor, dim, keepdim, op) -> Tensor:
    axis = None if dim is None else policy.dims(op.__name__, dim, a.ndim, a.shape)
    if a.ndim == 0:
        axis = None
    out = np.asarray(op(a.numpy(), axis=axis, keepdims=keepdim))
    # PyTorch's one exception: any/all of a uint8 tensor is uint8 (0/1), not bool
    return Tensor(out.astype(np.uint8) if a.dtype == np.uint8 else out)


@numpy_aliases
def any(a: Tensor, dim=None, keepdim=False) -> Tensor:  # noqa: A001 - PyTorch's name
    """True where any element along `dim` (or of the whole tensor) is nonzero."""
    return _reduce_bool(a, dim, keepdim, np.any)


@numpy_aliases
def all(a: Tensor, dim=None, keepdim=False) -> Tensor:  # noqa: A001 - PyTorch's name
    """True where every element along `dim` (or of the whole tensor) is nonzero."""
    return _reduce_bool(a, dim, keepdim, np.all)
