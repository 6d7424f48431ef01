"""Starting the simulated GPUs: one process per rank, sharing a machine politely.

`mpirun -n 4 python script.py` starts four copies of the script. `sim.init()` turns each copy
into a well-behaved rank:

1. Failure ends the job. An uncaught exception on one rank would otherwise leave the other
   ranks waiting forever in their next collective. `init` installs a `sys.excepthook` that
   prints the traceback prefixed with the rank and calls `MPI.COMM_WORLD.Abort(1)`, which makes
   mpirun kill every rank within a moment.

2. Threads. Four ranks on a 4-core laptop, each running a numba kernel with 4 threads and a
   BLAS matmul with 4 threads, oversubscribe the cores 4× and run slower than one thread each.
   Each rank is given  max(1, cores // ranks on this machine)  threads:
   - BLAS (OpenBLAS/MKL via OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS) reads its
     variables once, when NumPy loads it. `import sim` sets them (unless the user already did)
     from the launcher's local-rank variables (MPICH's MPI_LOCALNRANKS, Open MPI's
     OMPI_COMM_WORLD_LOCAL_SIZE) — so this only works if `sim` is imported before NumPy, or
     the variables are exported to mpirun (`mpirun -genv OMP_NUM_THREADS 1 ...`). If NumPy came
     first, `init` tries to set the count of NumPy's bundled OpenBLAS through its C API
     (`scipy_openblas_set_num_threads64_`, what threadpoolctl does) and reports whether it could.
   - numba: `numba.set_num_threads`, which works at any time (NUMBA_NUM_THREADS, the pool's
     size, is also set early when possible).
   - More ranks than cores (4 ranks on a 2-core laptop): MPICH is asked to yield the CPU while
     it waits for a message instead of spinning (see `set_thread_env_defaults`).

3. A watchdog (sim/watchdog.py). Under MPICH's mpirun, local rank 0 starts a small watcher
   process that every local rank connects to. A rank killed outright (kill -9, a segfault)
   is named by it — mpirun alone names only a PID — and when the job is over, however it
   ended, it deletes the job's shared-memory and hwloc files that MPICH and hydra leave
   behind after an abort.

4. Cold start. numba compiles each kernel on first use and caches the machine code on disk.
   Four ranks compiling at once would do the work four times and race on the cache files.
   `init` runs `tinyllm.kernels.warmup()` on local rank 0, then a barrier, then on the other
   local ranks, which only load what rank 0 wrote.
"""

from __future__ import annotations

import atexit
import os
import sys

_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)
_LOCAL_SIZE_VARIABLES = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE")


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no sched_getaffinity
        return os.cpu_count() or 1


def threads_per_rank(local_size: int) -> int:
    return max(1, available_cores() // max(1, local_size))


def set_thread_env_defaults() -> int | None:
    """Before NumPy and MPI load: default the thread variables from the local rank count.

    Returns the thread count chosen, or None when not started by a known launcher (plain
    `python`: nothing is changed). Variables the user set are kept. When there are more ranks
    than cores, MPICH is also told to yield the CPU while it waits
    (MPIR_CVAR_ENABLE_HEAVY_YIELD=1; other MPIs ignore it): its default busy-polling makes a
    waiting rank steal the core from the rank it is waiting for. Not set otherwise: when every
    rank has a core of its own, yielding only adds latency to each message.
    """
    for name in _LOCAL_SIZE_VARIABLES:
        if os.environ.get(name, "").isdigit():
            local_size = int(os.environ[name])
            threads = threads_per_rank(local_size)
            for var in _THREAD_VARIABLES:
                os.environ.setdefault(var, str(threads))
            if local_size > available_cores():
                os.environ.setdefault("MPIR_CVAR_ENABLE_HEAVY_YIELD", "1")
            return threads
    return None


def _set_openblas_threads(threads: int) -> bool:
    """Set the thread count of NumPy's bundled OpenBLAS if it is loaded; True on success."""
    import ctypes
    import glob

    import numpy as np

    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in glob.glob(os.path.join(libs, "*openblas*")):
        lib = ctypes.CDLL(path)  # already loaded by NumPy: this returns the same library
        for symbol in (
            "scipy_openblas_set_num_threads64_",
            "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_",
            "openblas_set_num_threads",
        ):
            if hasattr(lib, symbol):
                getattr(lib, symbol)(ctypes.c_int(threads))
                return True
    return False


def _excepthook(exc_type, exc, tb):
    """Print the traceback with the rank, then abort every rank of the job."""
    import traceback

    from mpi4py import MPI

    from sim import watchdog

    watchdog.tell("abort")  # a deliberate end: the watchdog need not speak
    rank, size = MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    sys.stderr.write(f"[sim] uncaught exception on rank {rank} of {size}:\n{text}")
    sys.stderr.flush()
    sys.stdout.flush()
    if size > 1:
        # mpirun forwards each rank's output through its own pipes; an abort tears those down
        # at once, and on a busy machine the traceback just written could be lost on the way.
        # A moment's pause lets the launcher pass it on first.
        import time

        time.sleep(1.0)
        MPI.COMM_WORLD.Abort(1)  # with one rank, Python simply exits with status 1


def install_excepthook() -> None:
    sys.excepthook = _excepthook


_world = None
_warmed_up = False
_watched = False
threads_report: dict = {}


def init(
    *,
    backend: str | None = None,
    checked: bool | None = None,
    verbose: bool | None = None,
    timeout: float | None = None,
    limit_threads: bool = True,
    warmup: bool = True,
    excepthook: bool = True,
    watch: bool = True,
):
    """Set up this rank and return the world `Communicator` (the same object on every call).

    backend/checked/verbose/timeout: see sim.comm.Communicator (defaults from SIM_BACKEND,
    SIM_CHECKED, SIM_VERBOSE, SIM_TIMEOUT). limit_threads: give numba and BLAS
    cores // local ranks threads. warmup: compile the numba kernels, local rank 0 first.
    excepthook: abort the whole job on an uncaught exception. watch: start the watchdog
    (under MPICH's mpirun only).
    """
    global _world, _warmed_up, _watched
    from mpi4py import MPI

    from sim import deadline, watchdog
    from sim.comm import Communicator

    if excepthook:
        install_excepthook()
    if _world is None:
        _world = Communicator(backend=backend, checked=checked, verbose=verbose, timeout=timeout)
    else:
        for name, value in (
            ("backend", backend),
            ("checked", checked),
            ("verbose", verbose),
            ("timeout", timeout),
        ):
            if value is not None:
                setattr(_world, name, value)
    node = MPI.COMM_WORLD.Split_type(MPI.COMM_TYPE_SHARED)  # the ranks on this machine
    local_rank, local_size = node.Get_rank(), node.Get_size()

    def node_barrier(what: str, timeout: float) -> None:
        def describe():
            world_group = MPI.COMM_WORLD.Get_group()
            ranks = node.Get_group().Translate_ranks(list(range(local_size)), world_group)
            return deadline.Wait(what, None, [int(r) for r in ranks])

        deadline.wait([node.Ibarrier()], timeout, describe)

    if watch and not _watched and watchdog.under_hydra():
        if local_rank == 0:
            watchdog.start(local_size)
        node_barrier("sim.init (starting the watchdog)", _world.timeout)
        if watchdog.connect(MPI.COMM_WORLD.Get_rank()):
            atexit.register(watchdog.tell, "bye")
            deadline.on_abort(lambda: watchdog.tell("abort"))
        _watched = True
    if limit_threads:
        import numba

        threads = min(threads_per_rank(local_size), numba.config.NUMBA_NUM_THREADS)
        numba.set_num_threads(threads)
        threads_report.update(
            local_rank=local_rank,
            local_size=local_size,
            numba_threads=numba.get_num_threads(),
            blas_env=os.environ.get("OPENBLAS_NUM_THREADS"),
            blas_set=_set_openblas_threads(threads),
        )
    if warmup and not _warmed_up:
        # Imported here, not at the top: loading this module must not load NumPy, because
        # sim/__init__.py sets the thread variables from it before anything else.
        from tinyllm import kernels

        if local_rank == 0:
            kernels.warmup()  # compiles and writes numba's cache, once per machine
        # Compiling can take minutes on a cold cache: this one wait gets a longer deadline.
        node_barrier("sim.init (waiting for local rank 0 to compile the kernels)", 600.0)
        if local_rank != 0:
            kernels.warmup()  # only loads the cached machine code
        _warmed_up = True
    node.Free()
    return _world


def world():
    """The world communicator; `init()` with its defaults minus the warmup if not yet called."""
    return _world if _world is not None else init(warmup=False)
