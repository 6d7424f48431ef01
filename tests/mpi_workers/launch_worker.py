"""MPI worker for tests/sim/test_launch.py: what `sim.init()` did to threads and warm-up order.

The kernels' warm-up is replaced by a stand-in that records when it ran (0.3 s long), so the
test can check that local rank 0 finished before any other rank started.
"""

import sim  # first: the thread variables must be set before NumPy loads BLAS

# isort: split

import json
import os
import time

import tinyllm.kernels

ran = []


def recording_warmup():
    start = time.time()
    time.sleep(0.3)
    ran.append([start, time.time()])


def main():
    tinyllm.kernels.warmup = recording_warmup
    world = sim.init()
    sim.init()  # a second call must not warm up again
    mine = {
        "rank": world.rank,
        "warmups": ran,
        **sim.launch.threads_report,
        "env": {
            v: os.environ.get(v)
            for v in (
                "OMP_NUM_THREADS",
                "OPENBLAS_NUM_THREADS",
                "NUMBA_NUM_THREADS",
                "MPIR_CVAR_ENABLE_HEAVY_YIELD",
            )
        },
    }
    everyone = world.gather_json(mine)
    if world.rank == 0:
        print("RESULTS " + json.dumps(everyone), flush=True)


if __name__ == "__main__":
    main()
