"""sim.init(): threads limited to cores // local ranks, kernels warmed up by local rank 0 first."""

import os

import pytest
from mpi_helpers import run_mpi

from sim.launch import available_cores


@pytest.mark.mpi
def test_threads_and_warmup_order_under_mpirun():
    n = 2
    ranks = run_mpi("launch_worker.py", n, timeout=60).results()
    expected = str(max(1, available_cores() // n))
    # MPICH yields the CPU while waiting only when ranks outnumber cores (user's value kept).
    yield_flag = os.environ.get(
        "MPIR_CVAR_ENABLE_HEAVY_YIELD", "1" if n > available_cores() else None
    )
    for r in ranks:
        assert r["local_size"] == n
        assert r["numba_threads"] == int(expected)
        assert r["env"] == {
            "OMP_NUM_THREADS": expected,
            "OPENBLAS_NUM_THREADS": expected,
            "NUMBA_NUM_THREADS": expected,
            "MPIR_CVAR_ENABLE_HEAVY_YIELD": yield_flag,
        }
        assert len(r["warmups"]) == 1  # once, even though init() was called twice
    first = ranks[0]["warmups"][0]
    for r in ranks[1:]:
        assert r["warmups"][0][0] >= first[1], "a rank warmed up before local rank 0 finished"


def test_plain_python_keeps_the_environment():
    """Without a launcher (world size 1) nothing is shared: all cores, variables untouched."""
    (only,) = run_mpi("launch_worker.py", None, timeout=60).results()
    assert only["local_size"] == 1 and len(only["warmups"]) == 1
    cores = available_cores()
    assert only["numba_threads"] == min(cores, int(os.environ.get("NUMBA_NUM_THREADS", cores)))
    for name, value in only["env"].items():
        assert value == os.environ.get(name), name
