"""Shape ops: they move or select elements without changing their values.

Each of these ops is a linear map that only relocates elements, so its adjoint relocates the
gradient back:

    reshape / view        ↔  reshape the gradient to the input's shape
    transpose / permute   ↔  apply the inverse permutation
    expand (broadcast)    ↔  unbroadcast: sum over the stretched axes
    concatenate / stack   ↔  split the gradient into the inputs' pieces
    indexing x[i]         ↔  scatter-add the gradient into zeros of x's shape
                             (add, not assign: an index that appears twice receives both)
    masked_fill           ↔  zero the gradient where the value was replaced

Reshape, transpose and permute return NumPy views where they can: no data is copied. None of
these ops does arithmetic (they cost 0 FLOPs), except expand's backward, which sums.
"""

from __future__ import annotations

import numpy as np

from tinyllm.engine import Function, ScatterGrad, Tensor, unbroadcast
from tinyllm.engine.flops import MOVES_DATA, FlopRule, free, prod
from tinyllm.ops.dims import numpy_aliases


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


class Reshape(Function):
    flops = MOVES_DATA
    returns_view = True  # a NumPy view where it can be: it shares x's version counter

    @staticmethod
    def forward(ctx, x, shape=()):
        ctx.in_shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.in_shape)


def reshape(x: Tensor, *shape) -> Tensor:
    shape = _shape_arg(shape)
    try:
        target = _resolve_shape(x.shape, shape)
    except ValueError:
        raise ValueError(
            f"reshape: cannot reshape a tensor of shape {x.shape} ({x.numel()} elements) "
            f"into {shape}"
        ) from None
    return Reshape.apply(x, shape=target)


def _resolve_shape(in_shape, shape):
    size = int(np.prod(in_shape))
    shape = list(shape)
    if shape.count(-1) > 1:
        raise ValueError
    if -1 in shape:
        known = int(np.prod([s for s in shape if s != -1]))
        if known == 0 or size % known:
            raise ValueError
        shape[shape.index(-1)] = size // known
    if int(np.prod(shape)) != size or any(s < 0 for s in shape):
        raise ValueError
    return tuple(shape)


def flatten(x: Tensor, start_dim=0, end_dim=-1) -> Tensor:
    nd = x.ndim
    if nd == 0:
        return reshape(x, 1)
    s, e = start_dim % nd, end_dim % nd
    shape = x.shape[:s] + (int(np.prod(x.shape[s : e + 1])),) + x.shape[e + 1 :]
    return reshape(x, shape)


class Permute(Function):
    flops = MOVES_DATA
    returns_view = True  # a NumPy view where it can be: it shares x's version counter

    @staticmethod
    def forward(ctx, x, dims=()):
        ctx.dims = dims
        return x.transpose(dims)

    @staticmethod
    def backward(ctx, grad):
        return grad.transpose(np.argsort(ctx.dims))


def permute(x: Tensor, *dims) -> Tensor:
    dims = _shape_arg(dims)
    if sorted(d % max(x.ndim, 1) for d in dims) != list(range(x.ndim)):
        raise ValueError(
            f"permute: dims {dims} are not a permutation of the {x.ndim} axes of "
            f"a tensor of shape {x.shape}"
        )
    return Permute.apply(x, dims=tuple(d % x.ndim for d in dims))


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    nd = x.ndim
    for d in (dim0, dim1):
        if not -nd <= d < nd:
            raise ValueError(f"transpose: dim {d} out of range for shape {x.shape}")
    dims = list(range(nd))
    dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return Permute.apply(x, dims=tuple(dims))


def _expand_backward_flops(ctx, out_size):
    return 0, out_size - prod(ctx.in_shape)  # unbroadcast: the stretched copies are summed


class Expand(Function):
    flops = FlopRule("data movement", free, _expand_backward_flops)
    returns_view = True  # a NumPy view where it can be: it shares x's version counter

    @staticmethod
    def forward(ctx, x, shape=()):
        ctx.in_shape = x.shape
        return np.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, grad):
        return unbroadcast(grad, ctx.in_shape)


def expand(x: Tensor, *shape) -> Tensor:
    """Broadcast to `shape` without copying (-1 keeps an axis's size, as in PyTorch)."""
    shape = _shape_arg(shape)
    lead = len(shape) - x.ndim
    target = tuple(x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(shape))
    try:
        np.broadcast_shapes(x.shape, target)
        if lead < 0 or np.broadcast_shapes(x.shape, target) != target:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"expand: a tensor of shape {x.shape} cannot be broadcast to {shape}"
        ) from None
    return Expand.apply(x, shape=target)


def _axis(axis: int, ndim: int, op: str, shape) -> int:
    """`axis` in [−ndim, ndim) as a non-negative index, or a ValueError naming the op."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} out of range for a tensor of shape {shape}")
    return axis % ndim


@numpy_aliases
def squeeze(x: Tensor, dim=None) -> Tensor:
    """Drop axes of size 1: all of them, or those of `dim` (PyTorch keeps a `dim` whose size
    is not 1; NumPy raises — tinyllm follows PyTorch)."""
    if dim is None:
        shape = tuple(s for s in x.shape if s != 1)
    else:
        axes = {
            _axis(a, max(x.ndim, 1), "squeeze", x.shape)
            for a in ((dim,) if isinstance(dim, (int, np.integer)) else dim)
        }
        shape = tuple(s for i, s in enumerate(x.shape) if not (i in axes and s == 1))
    return reshape(x, shape)


@numpy_aliases
def unsqueeze(x: Tensor, dim: int) -> Tensor:
    axis = _axis(dim, x.ndim + 1, "unsqueeze", x.shape)
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


class Contiguous(Function):
    flops = MOVES_DATA

    @staticmethod
    def forward(ctx, x):
        return np.ascontiguousarray(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


def contiguous(x: Tensor) -> Tensor:
    if x.data.flags.c_contiguous:
        return x
    return Contiguous.apply(x)


class Concatenate(Function):
    flops = MOVES_DATA

    @staticmethod
    def forward(ctx, *xs, axis=0):
        ctx.axis = axis
        ctx.sizes = [x.shape[axis] for x in xs]
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        bounds = np.cumsum(ctx.sizes)[:-1]
        pieces = np.split(grad, bounds, axis=ctx.axis)
        return tuple(p if need else None for p, need in zip(pieces, ctx.needs_input_grad))


def _as_tensors(xs, op):
    xs = list(xs)
    if not xs:
        raise ValueError(f"{op}: expected a non-empty sequence of tensors")
    return [x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=xs[0].dtype)) for x in xs]


@numpy_aliases
def concatenate(tensors, dim: int = 0) -> Tensor:
    axis = dim
    tensors = _as_tensors(tensors, "concatenate")
    ref = tensors[0].shape
    nd = len(ref)
    if not -nd <= axis < nd:
        raise ValueError(f"concatenate: axis {axis} out of range for shape {ref}")
    axis %= nd
    for t in tensors[1:]:
        if t.ndim != nd or any(a != b for i, (a, b) in enumerate(zip(t.shape, ref)) if i != axis):
            raise ValueError(
                f"concatenate: shapes {[tuple(t.shape) for t in tensors]} differ "
                f"outside axis {axis}"
            )
    return Concatenate.apply(*tensors, axis=axis)


cat = concatenate


@numpy_aliases
def stack(tensors, dim: int = 0) -> Tensor:
    axis = dim
    tensors = _as_tensors(tensors, "stack")
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack: all tensors must have the same shape, got {sorted(shapes)}")
    axis = _axis(axis, tensors[0].ndim + 1, "stack", tensors[0].shape)
    return concatenate([unsqueeze(t, axis) for t in tensors], axis=axis)


@numpy_aliases
def split(x: Tensor, split_size_or_sections, dim: int = 0) -> tuple[Tensor, ...]:
    """PyTorch's split: an int gives pieces of that size (the last may be smaller); a list
    gives the size of each piece. A tuple of views, as in PyTorch."""
    axis = _axis(dim, x.ndim, "split", x.shape)
    n = x.shape[axis]
    if isinstance(split_size_or_sections, (int, np.integer)):
        step = int(split_size_or_sections)
        if step <= 0:
            raise ValueError(f"split: split size must be positive, got {step}")
        sizes = [min(step, n - i) for i in range(0, n, step)]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n:
            raise ValueError(
                f"split: sections {sizes} do not add up to size {n} of axis {axis} "
                f"(shape {x.shape})"
            )
    out, start = [], 0
    index = [slice(None)] * x.ndim
    for s in sizes:
        index[axis] = slice(start, start + s)
        out.append(getitem(x, tuple(index)))
        start += s
    return tuple(out)


@numpy_aliases
def chunk(x: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    if chunks <= 0:
        raise ValueError(f"chunk: number of chunks must be positive, got {chunks}")
    n = x.shape[_axis(dim, x.ndim, "chunk", x.shape)]
    return split(x, -(-n // chunks), dim)


def _unwrap_index(index):
    def one(i):
        if isinstance(i, Tensor):
            return i.data
        if isinstance(i, list):
            return np.asarray(i)
        return i

    return tuple(one(i) for i in index) if isinstance(index, tuple) else one(index)


def _has_integer_array(index):
    """Integer-array ("advanced") indexing can pick an element twice; slices and masks cannot."""
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, np.ndarray) and i.dtype.kind in "iu" for i in items)


class GetItem(Function):
    flops = MOVES_DATA
    returns_view = True  # a NumPy view where it can be: it shares x's version counter

    @staticmethod
    def forward(ctx, x, index=None):
        ctx.in_shape, ctx.in_dtype, ctx.index = x.shape, x.dtype, index
        return x[index]

    @staticmethod
    def backward(ctx, grad):
        # Zeros of x's shape with grad scattered in at `index` — handed to the engine as a
        # ScatterGrad, which writes it straight into x's adjoint instead of allocating a zero
        # array per slice (q, k, v = qkv[0], qkv[1], qkv[2] share one buffer).
        return ScatterGrad(
            ctx.in_shape, ctx.in_dtype, ctx.index, grad, accumulate=_has_integer_array(ctx.index)
        )  # repeated ones accumulate


def getitem(x: Tensor, index) -> Tensor:
    index = _unwrap_index(index)
    try:
        return GetItem.apply(x, index=index)
    except IndexError as e:
        raise IndexError(f"indexing a tensor of shape {x.shape} with {index!r}: {e}") from None


class MaskedFill(Function):
    flops = MOVES_DATA

    @staticmethod
    def forward(ctx, x, mask=None, value=0.0):
        ctx.save_for_backward(mask)
        return np.where(mask, np.asarray(value, dtype=x.dtype), x)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return np.where(mask, np.zeros((), dtype=grad.dtype), grad)


def masked_fill(x: Tensor, mask, value) -> Tensor:
    """Replace the elements of `x` where `mask` (boolean, broadcastable to x) is true."""
    mask = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"masked_fill: mask must be boolean, got dtype {mask.dtype}")
    try:
        if np.broadcast_shapes(mask.shape, x.shape) != x.shape:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"masked_fill: mask of shape {mask.shape} does not broadcast to the "
            f"tensor's shape {x.shape}"
        ) from None
    return MaskedFill.apply(x, mask=mask, value=value)
