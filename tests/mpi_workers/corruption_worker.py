"""Worker: two sharded checkpoints of one ZeRO-3 run, for the corruption suite to damage.

    mpirun -n N python corruption_worker.py OUT

writes OUT/n<N>-s1 (after step 1) and OUT/n<N>-s2 (after step 2) — the same run, two saves —
with only the arguments every version of save_sharded accepts.
"""

import sim  # noqa: I001 — before NumPy (thread settings)

import os
import sys

import numpy as np

import tinyllm
from sim.checkpoint import save_sharded
from sim.zero3 import ZeRO3
from tinyllm.models import GPT, GPTConfig

world = sim.init(warmup=False)
B, T, V = 8, 8, 32
CFG = GPTConfig(block_size=T, vocab_size=V, n_layer=2, n_head=2, n_embd=8)


def main():
    out = sys.argv[1]
    tinyllm.manual_seed(0)
    strategy = ZeRO3(GPT(CFG), world, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)
    b = B // world.size
    for step in (1, 2):
        x = np.random.default_rng(step).integers(0, V, (B, T))
        y = np.roll(x, -1, axis=1)
        strategy.zero_grad()
        _, loss = strategy(
            x[world.rank * b : (world.rank + 1) * b], y[world.rank * b : (world.rank + 1) * b]
        )
        strategy.backward(loss)
        strategy.step()
        directory = os.path.join(out, f"n{world.size}-s{step}")
        save_sharded(strategy, directory, step, extra={"config": CFG.to_dict(), "saved": step})
    world.print0("saved")


if __name__ == "__main__":
    main()
