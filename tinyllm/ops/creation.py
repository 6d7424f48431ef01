"""Creation ops: new tensors, with PyTorch's names — tensor, zeros, ones, empty, full, arange,
rand, randn, randint, and their `_like` forms.

They make leaves: nothing is recorded, so they have no backward. Random constructors draw from
an explicit NumPy Generator (`generator=`) or the default one set by `tinyllm.manual_seed`
(tinyllm/runtime/random.py). The default dtype is float32 (tinyllm/dtypes.py). Every one takes
PyTorch's `device=` keyword, which can only name the CPU (tinyllm/engine/device.py).

`arange` infers its dtype as PyTorch does: int64 when start, end and step are all integers,
else the default float dtype.
"""

from __future__ import annotations

import numbers

import numpy as np

from tinyllm import dtypes
from tinyllm.dtypes import DEFAULT_DTYPE
from tinyllm.engine import Tensor, policy
from tinyllm.engine.device import check_device
from tinyllm.runtime.random import generator_or_default


def _made(values: np.ndarray, dtype, requires_grad, device, op) -> Tensor:
    """A leaf of `values` in `dtype` (storage for fp16/bf16), on the CPU."""
    check_device(device, op)
    if dtype is not None and dtypes.is_half(dtype):
        values = dtypes.to_storage(values, dtype)
    elif dtype is not None:
        values = values.astype(dtype, copy=False)
    return Tensor(values, requires_grad=requires_grad)


def tensor(data, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    """`tinyllm.tensor(data)`: a new tensor holding a copy of `data`.

    Its dtype, when not given, is torch.tensor's: arrays and tensors keep theirs; Python ints
    become int64, bools bool and floats the default float32 (`Tensor(data)`, like
    `torch.Tensor(data)`, always makes floats)."""
    check_device(device, "tensor")
    copy_dtype = dtype
    if not isinstance(data, (np.ndarray, Tensor)):
        policy.as_real_array("tensor", data)  # None, ragged lists, complex: a clear error
    if dtype is None and not isinstance(data, (np.ndarray, Tensor)):
        copy_dtype = _python_dtype(data)
    if dtypes.is_half(dtype) or (isinstance(data, Tensor) and dtypes.is_half(data.dtype)):
        copy_dtype = None
    arr = np.array(data.numpy() if isinstance(data, Tensor) else data, dtype=copy_dtype)
    return Tensor(arr, requires_grad=requires_grad, dtype=dtype)


def _python_dtype(data):
    """torch's inference for lists and scalars: int → int64, bool → bool, else float32."""
    try:
        kind = np.asarray(data).dtype.kind
    except (ValueError, TypeError):  # ragged or odd input: the constructor names the problem
        return DEFAULT_DTYPE
    return {"i": np.int64, "u": np.int64, "b": np.bool_}.get(kind, DEFAULT_DTYPE)


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def zeros(*shape, dtype=DEFAULT_DTYPE, device=None, requires_grad=False) -> Tensor:
    return _made(np.zeros(_shape(shape)), dtype, requires_grad, device, "zeros")


def ones(*shape, dtype=DEFAULT_DTYPE, device=None, requires_grad=False) -> Tensor:
    return _made(np.ones(_shape(shape)), dtype, requires_grad, device, "ones")


def empty(*shape, dtype=DEFAULT_DTYPE, device=None, requires_grad=False) -> Tensor:
    return _made(np.zeros(_shape(shape)), dtype, requires_grad, device, "empty")


def full(shape, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of `shape` filled with `fill_value`; its dtype, unless given, is PyTorch's
    choice: bool for a bool, int64 for an int, the default float for a float."""
    if dtype is None:
        if isinstance(fill_value, (bool, np.bool_)):
            dtype = np.bool_
        elif isinstance(fill_value, numbers.Integral):
            dtype = np.int64
        else:
            dtype = DEFAULT_DTYPE
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    return _made(np.full(shape, fill_value), dtype, requires_grad, device, "full")


def _like(t: Tensor, values, dtype, requires_grad, device, op) -> Tensor:
    return _made(values, t.dtype if dtype is None else dtype, requires_grad, device, op)


def zeros_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(t, np.zeros(t.shape), dtype, requires_grad, device, "zeros_like")


def ones_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(t, np.ones(t.shape), dtype, requires_grad, device, "ones_like")


def empty_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(t, np.zeros(t.shape), dtype, requires_grad, device, "empty_like")


def full_like(t: Tensor, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(t, np.full(t.shape, fill_value), dtype, requires_grad, device, "full_like")


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    if end is None:
        start, end = 0, start
    if dtype is None:
        whole = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = np.int64 if whole else DEFAULT_DTYPE
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    values = np.arange(start, end, step, dtype=np.float64 if dtypes.is_half(dtype) else dtype)
    return _made(values, dtype, requires_grad, device, "arange")


def rand(*shape, generator=None, dtype=DEFAULT_DTYPE, device=None, requires_grad=False) -> Tensor:
    g = generator_or_default(generator)
    return _made(g.random(_shape(shape), dtype=np.float64), dtype, requires_grad, device, "rand")


def randn(*shape, generator=None, dtype=DEFAULT_DTYPE, device=None, requires_grad=False) -> Tensor:
    g = generator_or_default(generator)
    return _made(g.standard_normal(_shape(shape)), dtype, requires_grad, device, "randn")


def rand_like(t: Tensor, dtype=None, device=None, requires_grad=False, generator=None) -> Tensor:
    values = generator_or_default(generator).random(t.shape)
    return _like(t, values, dtype, requires_grad, device, "rand_like")


def randn_like(t: Tensor, dtype=None, device=None, requires_grad=False, generator=None) -> Tensor:
    values = generator_or_default(generator).standard_normal(t.shape)
    return _like(t, values, dtype, requires_grad, device, "randn_like")


def randint(low, high=None, size=None, generator=None, dtype=np.int64, device=None) -> Tensor:
    """Integers uniform in [low, high): `randint(low, high, size)` or `randint(high, size)`."""
    if size is None and isinstance(high, (tuple, list)):
        low, high, size = 0, low, high  # randint(high, size), PyTorch's short form
    if high is None or size is None:
        raise TypeError("randint: expected randint(low, high, size) or randint(high, size)")
    if low >= high:
        raise ValueError(f"randint: needs low < high, got low={low}, high={high}")
    check_device(device, "randint")
    g = generator_or_default(generator)
    size = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
    return Tensor(g.integers(low, high, size=size, dtype=dtype))


# ---- x.new_zeros(...) and friends: a new tensor with x's dtype (PyTorch's Tensor.new_*) -----


def new_zeros(x: Tensor, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
    dtype = x.dtype if dtype is None else dtype
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def new_ones(x: Tensor, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
    dtype = x.dtype if dtype is None else dtype
    return ones(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def new_full(x: Tensor, size, fill_value, dtype=None, device=None, requires_grad=False):
    dtype = x.dtype if dtype is None else dtype
    return full(size, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def new_tensor(x: Tensor, data, dtype=None, device=None, requires_grad=False) -> Tensor:
    dtype = x.dtype if dtype is None else dtype
    return tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)
