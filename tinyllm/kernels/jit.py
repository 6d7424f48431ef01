"""How tinyllm's kernels are compiled: numba's options, and each loop nest compiled twice.

Options (every kernel and helper):

* fastmath=FASTMATH — the LLVM fast-math flags that let sums vectorize (reassociation), fuse
  multiply-adds, use reciprocals and approximate functions; *not* "no NaNs" / "no infinities",
  so −∞ masks and NaN inputs keep their IEEE meaning.
* error_model="numpy" — a division by zero gives ±∞ or NaN, as in NumPy. numba's default
  (Python's) checks every division and raises ZeroDivisionError; that branch also stops LLVM
  from vectorizing the loop (a layer norm of (1024, 256): 0.6 ms → 0.15 ms without it).
* cache=True — the machine code is kept on disk, so a process pays the compile only once per
  machine (`tinyllm.kernels.warmup`).
* nogil=True — a running kernel releases Python's GIL, so several Python threads can run
  kernels at the same time (tinyllm.threads.parallel_for).

`jit(fn)` compiles a helper that kernels call (a tile product, exp): serial, inlined into its
callers by LLVM.

`kernel(work=…, min_work=…)` compiles a top-level kernel whose outer loop is a `prange`, twice:

* serial — prange runs as range. This is the version small calls use, and the only one
  compiled up front: it compiles ~3× faster than the parallel one (measured: layer-norm
  backward 1.4 s against 4.1 s), which is most of a cold start.
* parallel — the outer loop split across numba's threads. Compiled the first time a call has
  at least `min_work` units of work (`work(*args)`, by default the first argument's size) and
  the process has more than one numba thread. Below that, starting and joining a thread team
  costs more than it saves: tens of µs on an idle machine, whole scheduler time slices on a
  busy one (tinyllm/threads.py has the measurements).

The two versions are compiled from copies of the function under different names, because
numba's on-disk cache tells functions apart by name and bytecode, not by compile options.
"""
from __future__ import annotations

import functools
import types

import numba

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
OPTIONS = dict(fastmath=FASTMATH, error_model="numpy", cache=True, nogil=True)

PARALLEL_MIN_WORK = 1 << 21   # elements: ~1 ms of one-thread work for a row or element kernel


def jit(fn):
    """A serial, cached numba function with tinyllm's options (for helpers)."""
    return numba.njit(**OPTIONS)(fn)


def _renamed(fn, suffix):
    """A copy of `fn` under another name: its own entry in numba's cache."""
    copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix,
                              fn.__defaults__, fn.__closure__)
    copy.__qualname__ = fn.__qualname__ + suffix
    copy.__module__, copy.__doc__ = fn.__module__, fn.__doc__
    return copy


def _size_of_first(x, *rest):
    return x.size


class ParallelKernel:
    """A serial and a parallel compilation of one function; calls pick by work (see above)."""

    def __init__(self, fn, work=_size_of_first, min_work=None, **options):
        functools.update_wrapper(self, fn)
        self.py_func = fn
        options = {**OPTIONS, **options}
        self.serial = numba.njit(**options)(_renamed(fn, "__serial"))
        self.parallel = numba.njit(parallel=True, **options)(_renamed(fn, "__parallel"))
        self.work = work
        self.min_work = min_work      # None: PARALLEL_MIN_WORK, read at call time

    def use_parallel(self, *args) -> bool:
        threshold = PARALLEL_MIN_WORK if self.min_work is None else self.min_work
        return self.work(*args) >= threshold and numba.get_num_threads() > 1

    def __call__(self, *args):
        return (self.parallel if self.use_parallel(*args) else self.serial)(*args)


def kernel(work=_size_of_first, min_work=None, **options):
    """Decorator: `@kernel()` over a function whose outer loop is `prange` (see above);
    `options` override numba options (e.g. fastmath=False)."""
    return lambda fn: ParallelKernel(fn, work, min_work, **options)
