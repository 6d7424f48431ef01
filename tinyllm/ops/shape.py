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

import numbers

import numpy as np

from tinyllm import dtypes
from tinyllm.engine import Function, ScatterGrad, Tensor, policy, unbroadcast
from tinyllm.engine.flops import MOVES_DATA, FlopRule, free, prod
from tinyllm.ops.conversion import cast
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
    s, e = _axis(start_dim, nd, "flatten", x.shape), _axis(end_dim, nd, "flatten", x.shape)
    if nd == 0:
        return reshape(x, 1)
    if s > e:
        raise RuntimeError(
            f"flatten: start_dim {start_dim} comes after end_dim {end_dim} "
            f"for a tensor of shape {x.shape}"
        )
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
    if len(dims) != x.ndim:
        raise RuntimeError(
            f"permute: dims {dims} name {len(dims)} axes, but the tensor of shape {x.shape} "
            f"has {x.ndim}"
        )
    axes = tuple(policy.dim("permute", d, x.ndim, x.shape) for d in dims)
    if len(set(axes)) != len(axes):
        raise RuntimeError(f"permute: dims {dims} repeat an axis of a tensor of shape {x.shape}")
    return Permute.apply(x, dims=axes)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    nd = x.ndim
    dim0, dim1 = _axis(dim0, nd, "transpose", x.shape), _axis(dim1, nd, "transpose", x.shape)
    if nd == 0:
        return x
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
    """`axis` in [−ndim, ndim) as a non-negative index, or PyTorch's IndexError naming the op."""
    return policy.dim(op, axis, ndim, shape)


@numpy_aliases
def squeeze(x: Tensor, dim=None) -> Tensor:
    """Drop axes of size 1: all of them, or those of `dim` (PyTorch keeps a `dim` whose size
    is not 1; NumPy raises — tinyllm follows PyTorch)."""
    if dim is None:
        shape = tuple(s for s in x.shape if s != 1)
    else:
        axes = set(policy.dims("squeeze", dim, x.ndim, x.shape))
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
    if isinstance(xs, Tensor) or not isinstance(xs, (list, tuple)):
        raise TypeError(f"{op}: expected a list or tuple of tensors, got {type(xs).__name__}")
    xs = list(xs)
    if not xs:
        raise ValueError(f"{op}: expected a non-empty sequence of tensors")
    first = xs[0].dtype if isinstance(xs[0], Tensor) else None
    xs = [x if isinstance(x, Tensor) else Tensor(x, dtype=first) for x in xs]
    if len({str(x.dtype) for x in xs}) > 1:  # PyTorch's promotion, not NumPy's
        target = _common_dtype([x.dtype for x in xs])
        xs = [x if dtypes.same_dtype(x.dtype, target) else cast(x, target) for x in xs]
    return xs


def _common_dtype(dts):
    """The dtype torch.cat gives tensors of these dtypes: the floats decide when there are
    any (float32 ∘ int64 is float32; two different halves give float32), else NumPy's rule."""
    floats = [d for d in dts if dtypes.is_half(d) or np.dtype(d).kind == "f"]
    if not floats:
        return np.result_type(*dts)
    full = [np.dtype(d) for d in floats if not dtypes.is_half(d)]
    if full:
        return np.result_type(*full)
    return floats[0] if all(dtypes.same_dtype(d, floats[0]) for d in floats) else np.float32


@numpy_aliases
def concatenate(tensors, dim: int = 0) -> Tensor:
    tensors = _as_tensors(tensors, "concatenate")
    ref = tensors[0].shape
    nd = len(ref)
    if nd == 0:
        raise ValueError("concatenate: zero-dimensional tensors cannot be concatenated")
    axis = policy.dim("concatenate", dim, nd, ref)
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
    if isinstance(value, Tensor) and value.data.size == 1:
        value = value.item()
    if not isinstance(value, (numbers.Real, np.bool_)):
        raise TypeError(f"masked_fill: value must be a real number, got {value!r}")
    if not x.is_floating_point() and not np.isfinite(value):
        raise ValueError(f"masked_fill: {value} cannot be stored in a {x.dtype} tensor")
    try:
        if np.broadcast_shapes(mask.shape, x.shape) != x.shape:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"masked_fill: mask of shape {mask.shape} does not broadcast to the "
            f"tensor's shape {x.shape}"
        ) from None
    return MaskedFill.apply(x, mask=mask, value=value)
