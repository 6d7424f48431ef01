"""Comparisons: element-wise <, <=, >, >= and equality, as boolean tensors.

A comparison is a step function of its inputs — its derivative is zero wherever it exists — so
it is not differentiable and records nothing: the result is a new leaf holding a bool array,
as in PyTorch. Masks made this way feed `where` and `masked_fill`, whose gradients do flow.
"""

from __future__ import annotations

import numpy as np

from tinyllm.engine import Tensor


def _compare(a: Tensor, b, op) -> Tensor:
    b = b.numpy() if isinstance(b, Tensor) else b
    return Tensor(op(a.numpy(), b))


def lt(a: Tensor, b) -> Tensor:
    return _compare(a, b, np.less)


def le(a: Tensor, b) -> Tensor:
    return _compare(a, b, np.less_equal)


def gt(a: Tensor, b) -> Tensor:
    return _compare(a, b, np.greater)


def ge(a: Tensor, b) -> Tensor:
    return _compare(a, b, np.greater_equal)


def eq(a: Tensor, b) -> Tensor:
    return _compare(a, b, np.equal)
