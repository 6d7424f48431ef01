"""Worker: a rank killed (SIGKILL) in the middle of a sharded save, then the run resumed.

    mpirun -n N python ckpt_worker.py train DIR KILL    steps 1-2, save, steps 3-4 (printing
                                                        "LOSS <step> <loss>"), save again with
                                                        one rank killed at the point KILL
    mpirun -n N python ckpt_worker.py resume DIR        load DIR, steps 3-4, save; RESULTS line

KILL says where the save dies:
  shard     rank 1 has written half of its shard file (to its temporary name) when it is killed
  before    rank 0 has everything written, index included, and dies before the switch
  between   rank 0 dies between the two renames of the switch (the old directory moved aside,
            the new one not yet in place)

The batches depend only on the step number, the model has no dropout, so the resumed steps
3-4 must give exactly the losses the first run printed before it was killed.
"""

import sim  # noqa: I001 — before NumPy (thread settings)

import io
import json
import os
import signal
import sys

import numpy as np

import sim.checkpoint as sharded
import tinyllm
import tinyllm.checkpoint
from sim.checkpoint import load_sharded, read_index, save_sharded
from sim.zero3 import ZeRO3
from tinyllm.checkpoint import CheckpointError
from tinyllm.data import ByteLevelBPE
from tinyllm.models import GPT, GPTConfig

world = sim.init(warmup=False)
B, T, V = 8, 8, 40
CFG = GPTConfig(block_size=T, vocab_size=V, n_layer=2, n_head=2, n_embd=12)
TOKENIZER = ByteLevelBPE().train("aab aab abab " * 30, vocab_size=258)
OTHER_TOKENIZER = ByteLevelBPE().train("xxy xxy xyxy " * 30, vocab_size=258)


def make_strategy():
    tinyllm.manual_seed(0)
    model = GPT(CFG)
    return ZeRO3(model, world, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)


def train_step(strategy, step: int) -> float:
    """One step on the global batch of `step`; → the global mean loss."""
    x = np.random.default_rng(1000 + step).integers(0, V, (B, T))
    y = np.roll(x, -1, axis=1)
    b = B // world.size
    strategy.zero_grad()
    _, loss = strategy(
        x[world.rank * b : (world.rank + 1) * b], y[world.rank * b : (world.rank + 1) * b]
    )
    strategy.backward(loss)
    strategy.step()
    return float(np.mean(world.allgather_json(loss.item())))


def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(kill: str) -> None:
    """Make this rank die at the chosen point of the next save (see the module docstring)."""
    if kill == "shard" and world.rank == 1:
        real = tinyllm.checkpoint.atomic_write

        def half_then_die(path, write):
            def partial(f):
                buf = io.BytesIO()
                write(buf)
                f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
                f.flush()
                die()

            real(path, partial)

        tinyllm.checkpoint.atomic_write = half_then_die
    if kill in ("before", "between") and world.rank == 0:
        real_rename = os.rename

        def switch(staging, directory, save_id):
            if kill == "between":
                real_rename(directory, f"{directory}.old-{save_id}")
            die()

        sharded._switch = switch


def main():
    mode, directory = sys.argv[1], sys.argv[2]
    strategy = make_strategy()
    if mode == "train":
        for step in (1, 2):
            train_step(strategy, step)
        save_sharded(strategy, directory, 2, tokenizer=TOKENIZER, config=CFG.to_dict())
        for step in (3, 4):
            loss = train_step(strategy, step)
            world.print0(f"LOSS {step} {loss!r}")
        arm(sys.argv[3])
        save_sharded(strategy, directory, 4, tokenizer=TOKENIZER, config=CFG.to_dict())
        world.print0("the save was not interrupted")
        return
    out = {"step_before": read_index(directory)["step"]}
    try:
        load_sharded(strategy, directory, tokenizer=OTHER_TOKENIZER)
        out["other_tokenizer"] = "loaded"
    except CheckpointError as e:
        out["other_tokenizer"] = str(e)
    index = load_sharded(strategy, directory, tokenizer=TOKENIZER)
    out["loaded_step"] = index["step"]
    out["config"] = index["config"]
    out["losses"] = [train_step(strategy, step) for step in (3, 4)]
    save_sharded(strategy, directory, 4, tokenizer=TOKENIZER, config=CFG.to_dict())
    parent = os.path.dirname(os.path.abspath(directory))
    out["after_save"] = sorted(os.listdir(parent))
    out["step_after"] = read_index(directory)["step"]
    world.print0("RESULTS " + json.dumps(out))


if __name__ == "__main__":
    main()
