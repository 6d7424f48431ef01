"""MPI worker for the failure tests: one rank misbehaves, the whole job must end promptly.

Usage: mpirun -n N python failure_worker.py MODE
  raise    rank 1 raises while the other ranks wait in an all-reduce: the excepthook prints
           rank 1's traceback and aborts the job.
  absent   rank 1 never enters the all-reduce (it finishes instead): the others give up within
           SIM_TIMEOUT seconds, name rank 1 and abort the job (sim/deadline.py).
"""

import sim

# isort: split

import sys

import numpy as np


def main():
    world = sim.init(warmup=False)
    mode = sys.argv[1]
    if world.rank == 1:
        if mode == "raise":
            raise ValueError("deliberate failure on rank 1")
        print("rank 1 leaves without entering the all-reduce", flush=True)
        return
    world.all_reduce(np.ones(4))
    print(f"rank {world.rank} should never get here", flush=True)


if __name__ == "__main__":
    main()
