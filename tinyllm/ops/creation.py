"""Creation ops: new tensors, with PyTorch's names — tensor, zeros, ones, full, arange, rand,
randn, randint.

They make leaves: nothing is recorded, so they have no backward. Random constructors draw from
an explicit NumPy Generator (`generator=`) or the default one set by `tinyllm.manual_seed`
(tinyllm/runtime/random.py). The default dtype is float32 (tinyllm/dtypes.py).
"""

from __future__ import annotations

import numpy as np

from tinyllm.dtypes import DEFAULT_DTYPE
from tinyllm.engine import Tensor
from tinyllm.runtime.random import generator_or_default


def tensor(data, requires_grad=False, dtype=None) -> Tensor:
    """`tinyllm.tensor(data)`: the same as `Tensor(data)` but always copies the data."""
    copy_dtype = dtype
    if dtype is None and not isinstance(data, (np.ndarray, Tensor)):
        copy_dtype = DEFAULT_DTYPE  # lists and scalars; arrays keep their own dtype
    arr = np.array(data.data if isinstance(data, Tensor) else data, dtype=copy_dtype)
    return Tensor(arr, requires_grad=requires_grad, dtype=dtype)


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def zeros(*shape, dtype=DEFAULT_DTYPE, requires_grad=False) -> Tensor:
    return Tensor(np.zeros(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def ones(*shape, dtype=DEFAULT_DTYPE, requires_grad=False) -> Tensor:
    return Tensor(np.ones(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def empty(*shape, dtype=DEFAULT_DTYPE) -> Tensor:
    return Tensor(np.empty(_shape(shape), dtype=dtype))


def full(shape, value, dtype=DEFAULT_DTYPE, requires_grad=False) -> Tensor:
    return Tensor(np.full(shape, value, dtype=dtype), requires_grad=requires_grad)


def zeros_like(t: Tensor, requires_grad=False) -> Tensor:
    return Tensor(np.zeros_like(t.data), requires_grad=requires_grad)


def ones_like(t: Tensor, requires_grad=False) -> Tensor:
    return Tensor(np.ones_like(t.data), requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=np.int64) -> Tensor:
    return Tensor(
        np.arange(start, end, step, dtype=dtype)
        if end is not None
        else np.arange(start, dtype=dtype)
    )


def rand(*shape, generator=None, dtype=DEFAULT_DTYPE, requires_grad=False) -> Tensor:
    g = generator_or_default(generator)
    return Tensor(
        g.random(_shape(shape), dtype=np.float64).astype(dtype), requires_grad=requires_grad
    )


def randn(*shape, generator=None, dtype=DEFAULT_DTYPE, requires_grad=False) -> Tensor:
    g = generator_or_default(generator)
    return Tensor(g.standard_normal(_shape(shape)).astype(dtype), requires_grad=requires_grad)


def randint(low, high, shape, generator=None, dtype=np.int64) -> Tensor:
    g = generator_or_default(generator)
    return Tensor(g.integers(low, high, size=shape, dtype=dtype))
