"""MPI worker for tests/sim/test_pipeline.py: a pipeline of N stages (one per rank).

Usage: mpirun -n N python pp_worker.py [--bubble]

Every rank: GPipe and 1F1B trained three steps (float64) against the single-process run of the
same seed — losses, this rank's parameters, the gathered state dict, bytes per axis. With
--bubble: for m = 1, 2, 4, 8 micro-batches and both schedules, one step of a GPT whose stages
are nearly equal (two blocks each, a small vocabulary), measuring on the simulated timeline
the bubble of each stage with the A100 profile's links and with free links, and the peak
activation bytes the ledger saw.
"""

import sim  # first, so the thread variables are set before NumPy loads

# isort: split

import json
import sys

import numpy as np
from parallel_common import (
    batches,
    local_param_error,
    make_model,
    parallel_run,
    reference_run,
    relative_errors,
)

from sim.parallel3d import Parallel3D
from tinyllm.models import GPTConfig

CONFIG = GPTConfig(block_size=8, vocab_size=32, n_layer=4, n_head=2, n_embd=16)
BATCH, MICRO = 8, 4


def equivalence(world, out):
    data = batches(CONFIG, BATCH, 3)
    ref_losses, ref_final = reference_run(CONFIG, data)
    for schedule in ("gpipe", "1f1b"):
        strategy = Parallel3D(
            make_model(CONFIG),
            world,
            pp=world.size,
            micro_batches=MICRO,
            schedule=schedule,
            lr=1e-2,
            weight_decay=0.1,
        )
        losses = parallel_run(strategy, world, data)
        stats = strategy.step_stats()
        full = strategy.full_state_dict()
        out[schedule] = {
            "loss_rel_err": max(relative_errors(losses, ref_losses)),
            "param_err": local_param_error(strategy, ref_final, CONFIG.n_head),
            "gathered_err": None
            if full is None
            else max(float(np.max(np.abs(full[k] - ref_final[k]))) for k in ref_final),
            "gathered_names": None if full is None else sorted(full) == sorted(ref_final),
            "layers": list(strategy.model.layers),
            "bytes_by_axis": stats["bytes_by_axis"],
            "memory": strategy.memory_report(),
            "theory": strategy.theory(),
        }
        strategy.close()


def bubbles(world, out):
    p = world.size
    cfg = GPTConfig(block_size=16, vocab_size=16, n_layer=2 * p, n_head=4, n_embd=64)
    rows = []
    for schedule in ("gpipe", "1f1b"):
        for m in (1, 2, 4, 8):
            x, y = batches(cfg, 2 * m, 1)[0]  # micro-batches of 2 sequences
            strategy = Parallel3D(
                make_model(cfg, np.float32), world, pp=p, micro_batches=m, schedule=schedule
            )
            strategy.zero_grad()
            _, loss = strategy(x, y)
            strategy.backward(loss)
            strategy.step()
            real = strategy.last_bubble
            free = strategy.measure_bubble(x, y)
            rows.append(
                {
                    "schedule": schedule,
                    "m": m,
                    "formula": real["formula"],
                    "real_links": real["measured"],
                    "free_links": free["measured"],
                    "compute_seconds": free["compute_seconds"],
                    "pipeline_seconds": free["pipeline_seconds"],
                    "real_pipeline_seconds": real["pipeline_seconds"],
                    "activation_peak": strategy.device.peak["activations"],
                }
            )
            strategy.close()
    out["bubbles"] = rows


def main():
    world = sim.init()
    out = {
        "rank": world.rank,
        "itemsize": 8,
        "batch": BATCH,
        "micro_batches": MICRO,
        **CONFIG.to_dict(),
    }
    equivalence(world, out)
    if "--bubble" in sys.argv:
        bubbles(world, out)
    everyone = world.gather_json(out)
    if world.rank == 0:
        print("RESULTS " + json.dumps(everyone), flush=True)


if __name__ == "__main__":
    main()
