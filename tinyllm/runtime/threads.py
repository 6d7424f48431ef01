"""Thread hygiene: how many threads BLAS uses, and when to ask for fewer.

NumPy hands matrix products to a BLAS library (OpenBLAS in NumPy's wheels), which splits each
product across threads. That pays for big products. For a *batch* of small ones — attention's
QKᵀ per (batch, head), 64 products of 128×64×128 — NumPy calls BLAS once per product, and every
call wakes, synchronizes and parks the worker threads. On a busy machine (other processes, or
several MPI ranks per core) a parked worker may wait a whole scheduler time slice to run again,
once per product — so the batch can take hundreds of times longer with two threads than with
one (docs/03-kernels.md has the measurements).

So tinyllm runs batched small products under `blas_threads(1)`, and leaves the big 2-D
products of the linear layers to BLAS's own threading. `set_blas_threads(n)` changes the count
of NumPy's bundled OpenBLAS at run time through its C API (what threadpoolctl does); where that
library cannot be found the functions do nothing and report False.

numba's parallel kernels have the same problem at a smaller scale: every call starts and joins
its thread team. On a busy machine the second thread may wait a time slice, which costs far more
than a small kernel's whole work; on an idle one two threads save little. So tinyllm's kernels
run serially unless a call has enough work to repay the team (tinyllm/kernels/jit.py).

Help-first parallel loops. Even a big product suffers on a busy machine: a fork-join team (an
OpenBLAS call, a numba prange) splits the work evenly and then waits for *every* thread, so one
thread that the scheduler has not yet run stalls the whole call. `parallel_for(n, task)`
instead puts n tasks behind a shared counter; helper threads and the calling thread take them
one at a time, and at the end the caller waits only for tasks a helper is actually running — a
helper that never woke up simply gets no task: on a busy machine the call runs about as fast as
on one thread, and when a second core is free it is faster, where OpenBLAS's own two threads
can be slower than one (docs/03-kernels.md has the measurements). tinyllm runs its linear
layers' products and its attention kernel this way (tinyllm/kernels); the tasks are numba
kernels compiled with nogil=True or BLAS calls, which release Python's GIL, so the threads
really run at the same time.

No count ever goes *above* what the process was given: `sim.init()` gives each MPI rank
cores // (ranks on the machine) threads for numba and BLAS, and `parallel_for` uses numba's
thread count (numba.get_num_threads(), NUMBA_NUM_THREADS by default) as its budget.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
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


# ---- help-first parallel loops ----------------------------------------------------------------


def num_threads() -> int:
    """The threads tinyllm may use: numba's count (set per MPI rank by sim.init)."""
    import numba

    return numba.get_num_threads()


class _Job:
    """n tasks behind a counter; `take` hands out the next index, `finish` counts them back."""

    def __init__(self, task, n):
        self.task, self.n = task, n
        self.lock = threading.Lock()
        self.next = 0
        self.finished = 0
        self.error = None
        self.done = threading.Event()

    def work(self):
        while True:
            with self.lock:
                i = self.next
                if i >= self.n:
                    return
                self.next = i + 1
            try:
                self.task(i)
            except BaseException as e:  # re-raised in the caller
                self.error = self.error or e
            with self.lock:
                self.finished += 1
                if self.finished == self.n:
                    self.done.set()


class _Pool:
    """Helper threads that join whatever job is posted; the caller works on it too."""

    def __init__(self):
        self.helpers = 0
        self.job = None  # (generation, job) while a job is open
        self.generation = 0
        self.posted = threading.Condition()
        self.busy = threading.Lock()  # one job at a time; a second caller runs serially
        self.local = threading.local()  # marks helper threads (a task calling parallel_for)

    def _helper(self, seen=0):
        self.local.helper = True
        while True:
            with self.posted:
                while self.job is None or self.job[0] == seen:
                    self.posted.wait()
                seen, job = self.job
            job.work()

    def run(self, task, n, threads):
        if (
            threads <= 1
            or n <= 1
            or getattr(self.local, "helper", False)
            or not self.busy.acquire(blocking=False)
        ):
            for i in range(n):
                task(i)
            return
        try:
            while self.helpers < threads - 1:
                threading.Thread(target=self._helper, name="tinyllm-helper", daemon=True).start()
                self.helpers += 1
            job = _Job(task, n)
            with self.posted:
                self.generation += 1
                self.job = (self.generation, job)
                self.posted.notify(threads - 1)
            job.work()  # take tasks until none is left …
            job.done.wait()  # … then wait only for the ones helpers are still running
            with self.posted:
                self.job = None
        finally:
            self.busy.release()
        if job.error is not None:
            raise job.error


_pool = _Pool()


def parallel_for(n: int, task, threads: int | None = None) -> None:
    """Call task(0), …, task(n − 1) on up to `threads` threads (default `num_threads()`),
    help-first (see the module docstring). Returns when every task has returned; re-raises the
    first exception a task raised."""
    _pool.run(task, n, num_threads() if threads is None else threads)
