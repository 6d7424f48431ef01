"""Thread hygiene: how many threads BLAS uses, and when to ask for fewer.

NumPy hands matrix products to a BLAS library (OpenBLAS in NumPy's wheels), which splits each
product across threads. That pays for big products. For a *batch* of small ones — attention's
QKᵀ per (batch, head), 64 products of 128×64×128 — NumPy calls BLAS once per product, and every
call wakes, synchronizes and parks the worker threads. On a busy machine (other processes, or
several MPI ranks per core) a parked worker may wait a whole scheduler time slice to run again:
measured here with 2 threads and a loaded 2-core machine, a (16, 4, 128, 32) @ (16, 4, 32, 128)
batched matmul took ~1 s instead of ~3 ms with one thread.

So tinyllm runs batched small products under `blas_threads(1)`, and leaves the big 2-D
products of the linear layers to BLAS's own threading. `set_blas_threads(n)` changes the count
of NumPy's bundled OpenBLAS at run time through its C API (what threadpoolctl does); where that
library cannot be found the functions do nothing and report False.

numba's parallel kernels have the same problem at a smaller scale: every call starts and joins
its thread team. Measured on this 2-core machine under load: a layer norm of (1024, 256) takes
0.12 ms on one thread and 5–16 ms with two (the second thread waits for a time slice), while
on an idle machine two threads save ~0.05 ms. So tinyllm's kernels run serially unless a call
has enough work to repay the team (tinyllm/kernels/jit.py).

Neither count ever goes *above* what the process was given: `sim.init()` gives each MPI rank
cores // (ranks on this machine) threads for both; `blas_threads` here only lowers it.
"""
from __future__ import annotations

import ctypes
import glob
import os
from contextlib import contextmanager

import numpy as np

_lib = None
_set = _get = None


def _load():
    global _lib, _set, _get
    if _lib is not None:
        return _set is not None
    _lib = False
    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in glob.glob(os.path.join(libs, "*openblas*")):
        try:
            lib = ctypes.CDLL(path)  # already loaded by NumPy: the same library
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                s, g = f"{prefix}_set_num_threads{suffix}", f"{prefix}_get_num_threads{suffix}"
                if hasattr(lib, s) and hasattr(lib, g):
                    _lib, _set, _get = lib, getattr(lib, s), getattr(lib, g)
                    _get.restype = ctypes.c_int
                    return True
    return False


def set_blas_threads(n: int) -> bool:
    """Set the BLAS thread count; True if NumPy's OpenBLAS was found and set."""
    if not _load():
        return False
    _set(ctypes.c_int(max(1, int(n))))
    return True


def get_blas_threads() -> int | None:
    return int(_get()) if _load() else None


@contextmanager
def blas_threads(n: int):
    """Run the block with `n` BLAS threads, then restore the previous count."""
    prev = get_blas_threads()
    if prev is None or prev == n:
        yield
        return
    set_blas_threads(n)
    try:
        yield
    finally:
        set_blas_threads(prev)

