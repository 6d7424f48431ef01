"""How tinyllm compiles its kernels (numba options) and splits a kernel's rows over threads.

Options (every kernel and helper):

* fastmath=FASTMATH — the LLVM fast-math flags that let sums vectorize (reassociation), fuse
  multiply-adds, use reciprocals and approximate functions; *not* "no NaNs" / "no infinities",
  so −∞ masks and NaN inputs keep their IEEE meaning.
* error_model="numpy" — a division by zero gives ±∞ or NaN, as in NumPy. numba's default
  (Python's) checks every division and raises ZeroDivisionError; that branch also stops LLVM
  from vectorizing the loop, which costs a row kernel several times its speed.
* cache=True — the machine code is kept on disk, so a process pays the compile only once per
  machine (`tinyllm.kernels.warmup`).
* nogil=True — a running kernel releases Python's GIL, so several Python threads can run
  kernels at the same time (below).

`jit(fn)` compiles a function with these options. Every kernel is compiled this way, once, as
serial code that works on a *range* of its rows (or elements): `kernel(*args, lo, hi)`.

`over_range(kernel, n, *args, work=…)` runs such a kernel over rows 0 … n − 1: in one call
when the work is small, and split into blocks shared out by tinyllm.runtime.threads.parallel_for
when it has at least PARALLEL_MIN_WORK units (about a millisecond of one-thread work). Below that,
starting threads costs more than it saves: a little on an idle machine, whole scheduler time slices
on a busy one (tinyllm/runtime/threads.py). parallel_for is help-first, so a busy machine cannot
stall a call the way it stalls a fork-join team — numba's own `prange` is not used for that reason,
and because a `parallel=True` compilation takes several times longer, which would be most of a cold
start (docs/03-kernels.md has the measurements).
"""

from __future__ import annotations

import numba

from tinyllm.runtime.threads import num_threads, parallel_for

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
OPTIONS = dict(fastmath=FASTMATH, error_model="numpy", cache=True, nogil=True)

PARALLEL_MIN_WORK = 1 << 21  # elements: about a millisecond of one-thread row/element work


def jit(fn=None, **options):
    """A serial, cached numba function with tinyllm's options (`@jit`), or with some of them
    overridden (`@jit(fastmath=False)`)."""
    if fn is None:
        return lambda f: jit(f, **options)
    return numba.njit(**{**OPTIONS, **options})(fn)


def over_range(kernel, n, *args, work=None, min_work=None):
    """kernel(*args, lo, hi) for consecutive blocks [lo, hi) covering 0 … n − 1.

    One block (one call) unless `work` (default n) reaches `min_work` (default
    PARALLEL_MIN_WORK) and this process has more than one thread; then twice as many blocks as
    threads, so that a fast thread can take more of them.
    """
    threshold = PARALLEL_MIN_WORK if min_work is None else min_work
    threads = num_threads() if (n if work is None else work) >= threshold else 1
    blocks = max(1, min(n, 2 * threads if threads > 1 else 1))
    if blocks == 1:
        kernel(*args, 0, n)
        return
    bounds = [n * i // blocks for i in range(blocks + 1)]
    parallel_for(blocks, lambda i: kernel(*args, bounds[i], bounds[i + 1]), threads)
