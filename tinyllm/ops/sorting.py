"""Ranking: argmax/argmin, max/min along a dim, sort, argsort, topk — and gather, their gradient.

These ops answer *where* as well as *what*. Each returns an index tensor (int64, not
differentiable) and, where PyTorch does, the values found at those indices. The values are
always a gather of the input at the indices,

    values = gather(x, dim, idx):   values[…, j, …] = x[…, idx[…, j, …], …]   (along `dim`)

so their gradient is the adjoint of a gather, a scatter-add: each output's adjoint goes back to
the one input element it was read from, and every other element gets zero,

    x̄[…, i, …] = Σ_{j : idx[…, j, …] = i} v̄[…, j, …]

This is why `x.max(dim)` differs from `x.amax(dim)` on ties: max(dim) picked one index (the
first largest, as PyTorch does), so that element receives the whole gradient; amax
(tinyllm/ops/reduce.py) has no index and shares it between the tied elements.

    max(x)              the largest element (no dim: a 0-d tensor; ties share the gradient)
    max(x, dim)         (values, indices) along dim — a named tuple, as torch.return_types
    max(x, other)       the element-wise maximum (PyTorch's third overload)
    sort(x, dim, descending, stable)   (values, indices); equal elements keep their order
    argsort(…)          sort's indices
    topk(x, k, dim, largest, sorted)   the k largest (or smallest) and their indices

Sorting is stable here always (a stable sort is also a valid unstable one). NaN sorts as the
largest value, as in PyTorch. Gather moves data: 0 FLOPs; its backward adds (one per element).
"""

from __future__ import annotations

import builtins
from typing import NamedTuple

import numpy as np

from tinyllm.engine import Function, Tensor, policy
from tinyllm.engine.flops import MOVES_DATA
from tinyllm.ops.dims import numpy_aliases
from tinyllm.ops.reduce import amax, amin
from tinyllm.ops.selection import maximum, minimum


class ValuesIndices(NamedTuple):
    """What max(dim), min(dim), sort and topk return: `values` and their int64 `indices`."""

    values: Tensor
    indices: Tensor


def _dim(x: Tensor, dim: int, op: str) -> int:
    return policy.dim(op, dim, x.ndim, x.shape)


def _along(index: np.ndarray, dim: int) -> tuple:
    """The fancy index that reads x[…, index[…, j, …], …] along `dim` for every position."""
    grid = list(np.ogrid[tuple(slice(n) for n in index.shape)])
    grid[dim] = index
    return tuple(grid)


class Gather(Function):
    """y = x gathered along `dim` at `index`; x̄ = zeros with ȳ scatter-added at `index`."""

    flops = MOVES_DATA

    @staticmethod
    def forward(ctx, x, index=None, dim=0):
        ctx.in_shape, ctx.index, ctx.dim = x.shape, index, dim
        return x[_along(index, dim)]

    @staticmethod
    def backward(ctx, grad):
        out = np.zeros(ctx.in_shape, dtype=grad.dtype)
        np.add.at(out, _along(ctx.index, ctx.dim), grad)  # add: an index may repeat
        return out


def gather(x: Tensor, dim: int, index) -> Tensor:
    """PyTorch's torch.gather: out[i][j][k] = x[index[i][j][k]][j][k] for dim=0, and so on."""
    idx = index.data if isinstance(index, Tensor) else np.asarray(index)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"gather: index must be an integer tensor, got dtype {idx.dtype}")
    dim = _dim(x, dim, "gather")
    if idx.ndim != x.ndim or any(
        i > s for d, (i, s) in enumerate(zip(idx.shape, x.shape)) if d != dim
    ):
        raise ValueError(
            f"gather: index of shape {idx.shape} does not fit input of shape {x.shape} "
            f"outside dim {dim}"
        )
    if idx.size and (idx.min() < -x.shape[dim] or idx.max() >= x.shape[dim]):
        raise IndexError(
            f"gather: index out of range for dim {dim} of size {x.shape[dim]} "
            f"(got values in [{idx.min()}, {idx.max()}])"
        )
    return Gather.apply(x, index=idx % builtins.max(x.shape[dim], 1), dim=dim)


# ---- argmax, argmin, max(dim), min(dim) ----------------------------------------------------


def _arg_extreme(x: Tensor, dim, keepdim, find, op) -> Tensor:
    if x.data.size == 0 and (dim is None or x.ndim == 0 or x.shape[_dim(x, dim, op)] == 0):
        raise ValueError(
            f"{op}: cannot take {op} over an empty axis of a tensor of shape {x.shape}"
        )
    values = x.numpy()
    if dim is None:
        flat = find(values.reshape(-1))
        return Tensor(np.asarray(flat, dtype=np.int64).reshape((1,) * x.ndim if keepdim else ()))
    d = _dim(x, dim, op)
    out = find(values.reshape(1) if x.ndim == 0 else values, axis=d)
    if keepdim or x.ndim == 0:
        out = np.expand_dims(out, d) if x.ndim else out.reshape(())
    return Tensor(np.asarray(out, dtype=np.int64))


def _first_max(a, axis=None):
    """Index of the first largest element; a row holding NaN gives its first NaN (PyTorch)."""
    nan = np.isnan(a) if a.dtype.kind == "f" else None
    if nan is not None and nan.any():
        return np.where(nan.any(axis=axis), np.argmax(nan, axis=axis), np.argmax(a, axis=axis))
    return np.argmax(a, axis=axis)


def _first_min(a, axis=None):
    """Index of the first smallest element; a row holding NaN gives its first NaN (PyTorch)."""
    nan = np.isnan(a) if a.dtype.kind == "f" else None
    if nan is not None and nan.any():
        return np.where(nan.any(axis=axis), np.argmax(nan, axis=axis), np.argmin(a, axis=axis))
    return np.argmin(a, axis=axis)


@numpy_aliases
def argmax(x: Tensor, dim=None, keepdim=False) -> Tensor:
    """Index of the first largest element: of the flattened tensor (dim=None) or along dim."""
    policy.admit("argmax", policy.NUMERIC, [x.data])  # (PyTorch: not for bool)
    return _arg_extreme(x, dim, keepdim, _first_max, "argmax")


@numpy_aliases
def argmin(x: Tensor, dim=None, keepdim=False) -> Tensor:
    """Index of the first smallest element: of the flattened tensor (dim=None) or along dim."""
    policy.admit("argmin", policy.NUMERIC, [x.data])
    return _arg_extreme(x, dim, keepdim, _first_min, "argmin")


def _extreme_along(x: Tensor, dim, keepdim, find, op) -> ValuesIndices:
    """max(x, dim) / min(x, dim): values and indices (bool included, as in PyTorch, which
    refuses argmax of bool but not max)."""
    d = _dim(x, dim, op)
    if x.ndim == 0:
        return ValuesIndices(x * 1, Tensor(np.zeros((), dtype=np.int64)))
    idx = _arg_extreme(x, d, True, find, op)
    values = gather(x, d, idx)
    if not keepdim:
        values = values.reshape(values.shape[:d] + values.shape[d + 1 :])
        idx = Tensor(np.squeeze(idx.data, axis=d))
    return ValuesIndices(values, idx)


def max(x: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001
    """PyTorch's torch.max, all three forms: max(x), max(x, dim, keepdim), max(x, other)."""
    dim, keepdim = _max_args("max", dim, keepdim, axis, keepdims)
    if isinstance(dim, Tensor):
        return maximum(x, dim)
    if dim is None:
        return amax(x)
    return _extreme_along(x, dim, keepdim, _first_max, "max")


def min(x: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001
    """PyTorch's torch.min, all three forms: min(x), min(x, dim, keepdim), min(x, other)."""
    dim, keepdim = _max_args("min", dim, keepdim, axis, keepdims)
    if isinstance(dim, Tensor):
        return minimum(x, dim)
    if dim is None:
        return amin(x)
    return _extreme_along(x, dim, keepdim, _first_min, "min")


def _max_args(op, dim, keepdim, axis, keepdims):
    """dim/keepdim or their NumPy aliases (max and min take a tensor as `dim` too)."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: got both dim= and its NumPy alias axis=; pass one of them")
        dim = axis
    if keepdims is not None:
        keepdim = keepdims
    if isinstance(dim, (tuple, list)):
        raise TypeError(
            f"{op}: dim must be one int (it returns values and indices); use amax/amin "
            f"to reduce over several dims {tuple(dim)}"
        )
    return dim, keepdim


# ---- sort, argsort, topk --------------------------------------------------------------------


def _sort_indices(a: np.ndarray, dim: int, descending: bool) -> np.ndarray:
    """Stable sort order along `dim`; descending keeps equal elements in their order too."""
    if not descending:
        return np.argsort(a, axis=dim, kind="stable")
    # Sort the reversed array ascending (stable), reverse the result, and map positions back:
    # equal elements then come out in their original order, and NaN (sorted last) comes first.
    n = a.shape[dim]
    order = np.argsort(np.flip(a, axis=dim), axis=dim, kind="stable")
    return (n - 1) - np.flip(order, axis=dim)


def sort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False):
    """(values, indices) sorted along `dim` (PyTorch's torch.sort; always stable here)."""
    d = _dim(x, dim, "sort")
    if x.ndim == 0:
        return ValuesIndices(x * 1, Tensor(np.zeros((), dtype=np.int64)))
    idx = _sort_indices(x.numpy(), d, bool(descending)).astype(np.int64)
    return ValuesIndices(gather(x, d, idx), Tensor(idx))


def argsort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """The indices that sort `x` along `dim` (torch.argsort)."""
    return sort(x, dim, descending, stable).indices


def topk(x: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):  # noqa: A002
    """(values, indices) of the k largest (largest=False: smallest) elements along `dim`.

    Always returned in sorted order (largest first, or smallest first), which is also a valid
    answer when `sorted=False`.
    """
    policy.admit("topk", policy.NUMERIC, [x.data])  # (PyTorch: not for bool)
    d = _dim(x, dim, "topk")
    n = x.shape[d] if x.ndim else 1
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 0 <= k <= n:
        raise ValueError(f"topk: k={k!r} must be an int in [0, {n}] for dim {d} of shape {x.shape}")
    if x.ndim == 0:
        return sort(x)
    idx = _sort_indices(x.numpy(), d, descending=bool(largest))
    idx = np.take(idx, np.arange(k), axis=d).astype(np.int64)
    return ValuesIndices(gather(x, d, idx), Tensor(idx))
