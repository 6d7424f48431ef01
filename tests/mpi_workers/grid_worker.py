"""MPI worker for tests/sim/test_parallel3d.py: a GPT on a dp × tp × pp grid (default 2 × 2 × 2).

Usage: mpirun -n 8 python grid_worker.py [DP TP PP]

Every rank reports its coordinates, the world ranks of each communicator the topology derived,
and, for two runs — 1F1B, and GPipe with activation checkpointing — the losses of three steps
against the one-process run of the same seed and global batch (float64), its parameters, the
bytes it sent along each axis in the last step, and its memory ledger.
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

CONFIG = GPTConfig(block_size=8, vocab_size=32, n_layer=4, n_head=4, n_embd=16)
BATCH, MICRO = 8, 2


def main():
    world = sim.init()
    dp, tp, pp = map(int, sys.argv[1:4]) if len(sys.argv) >= 4 else (2, 2, 2)
    data = batches(CONFIG, BATCH, 3)
    ref_losses, ref_final = reference_run(CONFIG, data)
    out = {
        "rank": world.rank,
        "itemsize": 8,
        "batch": BATCH,
        "micro_batches": MICRO,
        "grid": [dp, tp, pp],
        **CONFIG.to_dict(),
    }
    for name, schedule, ckpt in (("1f1b", "1f1b", False), ("gpipe_ckpt", "gpipe", True)):
        strategy = Parallel3D(
            make_model(CONFIG),
            world,
            dp=dp,
            tp=tp,
            pp=pp,
            micro_batches=MICRO,
            schedule=schedule,
            checkpoint_activations=ckpt,
            lr=1e-2,
            weight_decay=0.1,
        )
        topo = strategy.topo
        out["coord"] = [topo.coord.dp, topo.coord.pp, topo.coord.tp]
        out["groups"] = {
            axis: (None if comm is None else list(comm.world_ranks))
            for axis, comm in topo.axis_comms.items()
        }
        losses = parallel_run(strategy, world, data)
        stats = strategy.step_stats()
        full = strategy.full_state_dict()
        out[name] = {
            "losses": losses,
            "ref_losses": ref_losses,
            "loss_rel_err": max(relative_errors(losses, ref_losses)),
            "param_err": local_param_error(strategy, ref_final, CONFIG.n_head),
            "gathered_err": None
            if full is None
            else max(float(np.max(np.abs(full[k] - ref_final[k]))) for k in ref_final),
            "layers": list(strategy.model.layers),
            "bytes_by_axis": stats["bytes_by_axis"],
            "bytes_sent": stats["bytes_sent"],
            "memory": strategy.memory_report(),
            "theory_bytes_by_axis": strategy.theory_comm_bytes_by_axis(
                BATCH // dp, CONFIG.block_size
            ),
            "simulated_seconds": stats["simulated_seconds"],
        }
        strategy.close()
    everyone = world.gather_json(out)
    if world.rank == 0:
        print("RESULTS " + json.dumps(everyone), flush=True)


if __name__ == "__main__":
    main()
