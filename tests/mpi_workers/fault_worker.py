"""MPI worker for the fault-injection suite: one rank fails in one way, the job must end.

Usage: mpirun -n N python fault_worker.py FAULT PATTERN
  FAULT    what rank 2 (the victim) does at step 3 ("none": nothing, a clean run):
           kill   os.kill(getpid(), SIGKILL): gone at once, without a word
           stop   SIGSTOP: alive but frozen (the others must time out)
           raise  an uncaught exception
           exit   sys.exit(0) before the next collective (a clean, early exit)
  PATTERN  what every rank does each step:
           all_reduce   one ring all-reduce of 1 MiB (the explicit algorithm)
           mpi          one all-reduce by MPI's built-in algorithm
           pipeline     a forward pass down the ranks (recv from r−1, send to r+1) and a
                        backward pass up (recv from r+1, send to r−1), 256 KiB activations

Rank 0 prints `FILES <json>` (the job's MPICH/hydra temporary files, sim.watchdog.job_files),
and the victim prints `FAULT <unix time>` just before failing, so that the test can time the
job's end from the fault and check that the files are gone.
"""

import sim

# isort: split

import json
import os
import signal
import sys
import time

import numpy as np

from sim import watchdog

VICTIM, FAULT_STEP, STEPS = 2, 3, 50


def fail(fault: str) -> None:
    print(f"FAULT {time.time():.3f}", flush=True)
    if fault == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif fault == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
    elif fault == "raise":
        raise RuntimeError(f"deliberate failure on rank {VICTIM}")
    elif fault == "exit":
        sys.exit(0)
    else:
        raise ValueError(f"unknown fault {fault!r}")


def pipeline_step(world, act: np.ndarray) -> None:
    r, n = world.rank, world.size
    if r > 0:
        world.recv(act, r - 1)
    if r < n - 1:
        world.send(act, r + 1)
        world.recv(act, r + 1)
    if r > 0:
        world.send(act, r - 1)


def main():
    fault, pattern = sys.argv[1], sys.argv[2]
    world = sim.init(warmup=False, backend="mpi" if pattern == "mpi" else "explicit")
    if world.rank == 0:
        print("FILES " + json.dumps(watchdog.job_files()), flush=True)
    world.barrier()
    buf = np.ones(1 << 18, np.float32)  # 1 MiB
    act = np.ones(1 << 16, np.float32)  # 256 KiB
    for step in range(STEPS):
        if fault != "none" and world.rank == VICTIM and step == FAULT_STEP:
            fail(fault)
        if pattern == "pipeline":
            pipeline_step(world, act)
        else:
            world.all_reduce(buf)
        time.sleep(0.05)
    print(f"rank {world.rank} finished all {STEPS} steps", flush=True)


if __name__ == "__main__":
    main()
