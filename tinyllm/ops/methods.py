"""The Tensor's operators and methods: each one a line naming the op it runs.

`x + y` is `add(x, y)`, `x @ w` is `matmul(x, w)`, `x.sum(axis)` is `sum(x, axis)`: the Tensor
class (tinyllm/engine/tensor.py) holds data and gradients only, and the table below attaches
the ops of this package to it, so that the engine does not depend on the ops built on top of
it. A reflected operator (`2 * x`, Python's `__rmul__`) runs the op with its operands in their
written order.
"""

from __future__ import annotations

import numpy as np

from tinyllm.engine import Tensor
from tinyllm.ops.activation import relu, sigmoid, tanh
from tinyllm.ops.arithmetic import abs, add, div, exp, log, mul, neg, pow, sqrt, sub
from tinyllm.ops.compare import eq, ge, gt, le, lt
from tinyllm.ops.conversion import cast, clone
from tinyllm.ops.linalg import matmul
from tinyllm.ops.probability import log_softmax, softmax
from tinyllm.ops.reduce import max, mean, min, sum, var
from tinyllm.ops.shape import (
    chunk,
    contiguous,
    expand,
    flatten,
    getitem,
    masked_fill,
    permute,
    reshape,
    split,
    squeeze,
    transpose,
    unsqueeze,
)


def _reflected(op):
    """The method for Python's reflected operator: `other ∘ self` runs op(other, self)."""

    def method(self, other):
        return op(other, self)

    method.__name__ = f"r{op.__name__}"
    method.__doc__ = f"other {op.__name__} self (the reflected operator)."
    return method


def _transposed(x: Tensor) -> Tensor:
    return permute(x, *reversed(range(x.ndim)))


def _broadcast_to(x: Tensor, shape) -> Tensor:
    return expand(x, shape)


def _float(x: Tensor) -> Tensor:
    return cast(x, np.float32)


def _double(x: Tensor) -> Tensor:
    return cast(x, np.float64)


METHODS = {
    # operators
    "__add__": add,
    "__radd__": _reflected(add),
    "__sub__": sub,
    "__rsub__": _reflected(sub),
    "__mul__": mul,
    "__rmul__": _reflected(mul),
    "__truediv__": div,
    "__rtruediv__": _reflected(div),
    "__pow__": pow,
    "__rpow__": _reflected(pow),
    "__matmul__": matmul,
    "__rmatmul__": _reflected(matmul),
    "__neg__": neg,
    "__abs__": abs,
    "__getitem__": getitem,
    # comparisons give boolean tensors (not differentiable), like PyTorch
    "__lt__": lt,
    "__le__": le,
    "__gt__": gt,
    "__ge__": ge,
    "eq": eq,
    # element-wise
    "exp": exp,
    "log": log,
    "sqrt": sqrt,
    "abs": abs,
    "tanh": tanh,
    "sigmoid": sigmoid,
    "relu": relu,
    # reductions
    "sum": sum,
    "mean": mean,
    "max": max,
    "min": min,
    "var": var,
    # shapes
    "reshape": reshape,
    "view": reshape,
    "flatten": flatten,
    "transpose": transpose,
    "T": property(_transposed),
    "permute": permute,
    "expand": expand,
    "broadcast_to": _broadcast_to,
    "squeeze": squeeze,
    "unsqueeze": unsqueeze,
    "split": split,
    "chunk": chunk,
    "masked_fill": masked_fill,
    "contiguous": contiguous,
    # probabilities
    "softmax": softmax,
    "log_softmax": log_softmax,
    # dtypes and copies
    "to": cast,
    "astype": cast,
    "float": _float,
    "double": _double,
    "clone": clone,
}

for _name, _method in METHODS.items():
    setattr(Tensor, _name, _method)
