"""Adjoints: how the contributions to one gradient are added up.

A tensor consumed by several ops receives one contribution from each: its adjoint is their sum
(x̄ = Σ over consumers c of (∂c/∂x)ᵀ c̄). Three pieces make that sum cheap:

* `add_adjoint` adds in place where the backward pass owns the buffer, so a tensor used k
  times costs one array, not k − 1 temporary sums;
* `ScatterGrad` is the gradient of indexing — zeros except for a slice — kept sparse until it
  is added, so that q, k, v = qkv[0], qkv[1], qkv[2] write into one buffer;
* `unbroadcast` is the adjoint of broadcasting: broadcasting copies values along new or size-1
  axes, and the adjoint of a copy is a sum.
"""

from __future__ import annotations

import numpy as np


class ScatterGrad:
    """The gradient of indexing, x[index]: zero except for `values` at `index`.

    Taking three slices q, k, v = x[0], x[1], x[2] would otherwise give x three full-size,
    mostly-zero gradients and two full-size sums; the engine instead writes each slice into one
    buffer (`add_to`). `accumulate=True` (integer-array indices, which may repeat an element)
    adds with np.add.at, so repeated indices receive every contribution.
    """

    __slots__ = ("shape", "dtype", "index", "values", "accumulate")

    def __init__(self, shape, dtype, index, values, accumulate=False):
        self.shape, self.dtype = tuple(shape), dtype
        self.index, self.values, self.accumulate = index, values, accumulate

    def add_to(self, buf: np.ndarray) -> None:
        if self.accumulate:
            np.add.at(buf, self.index, self.values)
        else:
            buf[self.index] += self.values

    def dense(self) -> np.ndarray:
        buf = np.zeros(self.shape, dtype=self.dtype)
        self.add_to(buf)
        return buf


def add_adjoint(adjoints: dict, owned: set, key: int, contribution) -> None:
    """adjoints[key] += contribution, in place where the pass owns the buffer.

    `owned` holds the keys whose buffer this backward pass allocated itself; only those are
    safe to add into, because any other array may be shared (an add's backward hands the same
    gradient to both of its inputs). The first sum makes a new, owned array.
    """
    prev = adjoints.get(key)
    if isinstance(contribution, ScatterGrad):
        if prev is None:
            buf = np.zeros(contribution.shape, dtype=contribution.dtype)
        elif key in owned:
            buf = prev
        else:  # someone else's array (e.g. passed through by an add)
            buf = np.array(prev, dtype=np.result_type(prev, contribution.dtype), copy=True)
        contribution.add_to(buf)
        adjoints[key] = buf
        owned.add(key)
    elif prev is None:
        adjoints[key] = contribution
    elif (
        key in owned
        and np.can_cast(contribution.dtype, prev.dtype, "same_kind")
        and np.result_type(prev, contribution) == prev.dtype
    ):
        prev += contribution
    else:
        adjoints[key] = prev + contribution
        owned.add(key)


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `grad` down to `shape`: the adjoint of broadcasting `shape` up to `grad.shape`.

    Broadcasting prepends axes and stretches size-1 axes; both copy values, and the adjoint of
    a copy is a sum. So: sum over the prepended leading axes, then over every axis where the
    input had size 1 (keeping it).
    """
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)
