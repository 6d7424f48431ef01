"""The Tensor's operators and methods: each one a line naming the op it runs.

`x + y` is `add(x, y)`, `x @ w` is `matmul(x, w)`, `x.sum(dim)` is `sum(x, dim)`: the Tensor
class (tinyllm/engine/tensor.py) holds data and gradients only, and the table below attaches
the ops of this package to it, so that the engine does not depend on the ops built on top of
it. A reflected operator (`2 * x`, Python's `__rmul__`) runs the op with its operands in their
written order. Names ending in `_` modify the tensor in place (tinyllm/ops/inplace.py), and so
do the augmented assignments `x += y`, `x -= y`, `x *= y`, `x /= y`, as in PyTorch.
"""

from __future__ import annotations

from tinyllm.engine import Tensor
from tinyllm.ops.activation import relu, sigmoid, tanh
from tinyllm.ops.arithmetic import (
    abs,
    add,
    div,
    exp,
    floor_divide,
    log,
    mul,
    neg,
    pow,
    remainder,
    sqrt,
    sub,
)
from tinyllm.ops.compare import (
    all,
    any,
    bitwise_and,
    bitwise_not,
    bitwise_or,
    bitwise_xor,
    eq,
    equal,
    ge,
    gt,
    le,
    logical_not,
    lt,
    ne,
    tensor_eq,
    tensor_ne,
)
from tinyllm.ops.conversion import SHORTHANDS, cast, clone, cpu, to, type_as
from tinyllm.ops.creation import new_full, new_ones, new_tensor, new_zeros
from tinyllm.ops.inplace import (
    abs_,
    add_,
    clamp_,
    copy_,
    div_,
    exp_,
    fill_,
    log_,
    masked_fill_,
    mul_,
    neg_,
    normal_,
    pow_,
    relu_,
    setitem,
    sigmoid_,
    sqrt_,
    sub_,
    tanh_,
    uniform_,
    zero_,
)
from tinyllm.ops.linalg import matmul
from tinyllm.ops.probability import log_softmax, softmax
from tinyllm.ops.reduce import amax, amin, mean, std, sum, var
from tinyllm.ops.sampling import multinomial
from tinyllm.ops.selection import clamp, maximum, minimum, tril, triu, where
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
from tinyllm.ops.sorting import argmax, argmin, argsort, gather, max, min, sort, topk


def _reflected(op):
    """The method for Python's reflected operator: `other ∘ self` runs op(other, self)."""

    def method(self, other):
        return op(other, self)

    method.__name__ = f"r{op.__name__}"
    method.__doc__ = f"other {op.__name__} self (the reflected operator)."
    return method


def _reversed_dims(x: Tensor) -> Tensor:
    """x.T: all axes in reverse order."""
    return permute(x, *reversed(range(x.ndim)))


def _matrix_transpose(x: Tensor) -> Tensor:
    """x.mT: the last two axes swapped (a batch of matrices, each transposed)."""
    if x.ndim < 2:
        raise ValueError(f"mT: needs a tensor with at least 2 dims, got shape {x.shape}")
    return transpose(x, -2, -1)


def _t(x: Tensor) -> Tensor:
    """x.t(): the transpose of a matrix (a 0-d or 1-d tensor is returned as is)."""
    if x.ndim > 2:
        raise ValueError(f"t: expects a tensor with at most 2 dims, got shape {x.shape}")
    return x if x.ndim < 2 else transpose(x, 0, 1)


def _broadcast_to(x: Tensor, shape) -> Tensor:
    return expand(x, shape)


def _expand_as(x: Tensor, other: Tensor) -> Tensor:
    return expand(x, other.shape)


def _view_as(x: Tensor, other: Tensor) -> Tensor:
    return reshape(x, other.shape)


def _where(x: Tensor, condition, other) -> Tensor:
    """x.where(condition, other): torch.where(condition, x, other)."""
    return where(condition, x, other)


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
    "__floordiv__": floor_divide,
    "__rfloordiv__": _reflected(floor_divide),
    "__mod__": remainder,
    "__rmod__": _reflected(remainder),
    "__pow__": pow,
    "__rpow__": _reflected(pow),
    "__matmul__": matmul,
    "__rmatmul__": _reflected(matmul),
    "__neg__": neg,
    "__abs__": abs,
    "__getitem__": getitem,
    "__setitem__": setitem,
    "__iadd__": add_,
    "__isub__": sub_,
    "__imul__": mul_,
    "__itruediv__": div_,
    # comparisons give boolean tensors (not differentiable), like PyTorch; hashing stays by
    # identity (Tensor.__hash__)
    "__eq__": tensor_eq,
    "__ne__": tensor_ne,
    "__lt__": lt,
    "__le__": le,
    "__gt__": gt,
    "__ge__": ge,
    "__and__": bitwise_and,
    "__or__": bitwise_or,
    "__xor__": bitwise_xor,
    "__invert__": bitwise_not,
    "eq": eq,
    "ne": ne,
    "lt": lt,
    "le": le,
    "gt": gt,
    "ge": ge,
    "equal": equal,
    "logical_not": logical_not,
    "any": any,
    "all": all,
    # element-wise
    "add": add,
    "sub": sub,
    "mul": mul,
    "div": div,
    "pow": pow,
    "floor_divide": floor_divide,
    "remainder": remainder,
    "neg": neg,
    "exp": exp,
    "log": log,
    "sqrt": sqrt,
    "abs": abs,
    "tanh": tanh,
    "sigmoid": sigmoid,
    "relu": relu,
    "maximum": maximum,
    "minimum": minimum,
    "clamp": clamp,
    "clip": clamp,
    "where": _where,
    "tril": tril,
    "triu": triu,
    # reductions
    "sum": sum,
    "mean": mean,
    "amax": amax,
    "amin": amin,
    "var": var,
    "std": std,
    # ranking: values and indices
    "max": max,
    "min": min,
    "argmax": argmax,
    "argmin": argmin,
    "sort": sort,
    "argsort": argsort,
    "topk": topk,
    "gather": gather,
    "multinomial": multinomial,
    # shapes
    "reshape": reshape,
    "view": reshape,
    "view_as": _view_as,
    "flatten": flatten,
    "transpose": transpose,
    "T": property(_reversed_dims),
    "mT": property(_matrix_transpose),
    "t": _t,
    "permute": permute,
    "expand": expand,
    "expand_as": _expand_as,
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
    # in place
    "add_": add_,
    "sub_": sub_,
    "mul_": mul_,
    "div_": div_,
    "zero_": zero_,
    "fill_": fill_,
    "copy_": copy_,
    "masked_fill_": masked_fill_,
    "clamp_": clamp_,
    "clip_": clamp_,
    "normal_": normal_,
    "uniform_": uniform_,
    "pow_": pow_,
    "relu_": relu_,
    "sigmoid_": sigmoid_,
    "tanh_": tanh_,
    "exp_": exp_,
    "log_": log_,
    "sqrt_": sqrt_,
    "neg_": neg_,
    "abs_": abs_,
    "new_zeros": new_zeros,
    "new_ones": new_ones,
    "new_full": new_full,
    "new_tensor": new_tensor,
    # dtypes, devices and copies
    "to": to,
    "cpu": cpu,
    "type_as": type_as,
    "astype": cast,
    **SHORTHANDS,  # long, int, short, bool, float, double, half, bfloat16
    "clone": clone,
}

for _name, _method in METHODS.items():
    setattr(Tensor, _name, _method)
