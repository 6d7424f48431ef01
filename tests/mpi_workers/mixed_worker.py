"""Worker: DDP and ZeRO with a half-precision model (mixed precision) against one process.

The reference is single-process mixed-precision training with tinyllm.precision's
MixedPrecisionOptimizer (fp32 masters over AdamW; a GradScaler for fp16). Rank 0 prints one
RESULTS line with, per format and strategy: losses, skipped steps, measured memory per tag, and
the parameter count.

    mpirun -n 4 python mixed_worker.py
"""

import sim  # noqa: I001 — before NumPy (thread settings)

import json

import numpy as np

import tinyllm
from sim.ddp import DDP
from sim.offload import ZeRO2Offload, ZeRO3OffloadParams
from sim.zero import ZeRO1, ZeRO2
from sim.zero3 import ZeRO3
from tinyllm.models import GPT, GPTConfig
from tinyllm.optim import AdamW, param_groups_for_weight_decay
from tinyllm.precision import GradScaler
from tinyllm.precision.mixed import MixedPrecisionOptimizer

world = sim.init()
B, T, V, STEPS, LR, WD = 8, 8, 48, 4, 1e-2, 0.1
CFG = GPTConfig(block_size=T, vocab_size=V, n_layer=2, n_head=2, n_embd=16)
FORMATS = {"bf16": tinyllm.bfloat16, "fp16": tinyllm.float16}


def make_model(fmt):
    tinyllm.manual_seed(0)
    return GPT(CFG).to(FORMATS[fmt])


def batches():
    rng = np.random.default_rng(1)
    for _ in range(STEPS):
        x = rng.integers(0, V, (B, T))
        yield x, np.roll(x, -1, axis=1)


def scaler(fmt):
    # a small initial scale so that fp16 overflows are not the story here; growth off
    return GradScaler(init_scale=2.0**8, growth_interval=10**6) if fmt == "fp16" else None


def reference(fmt):
    model = make_model(fmt)
    opt = MixedPrecisionOptimizer(
        AdamW(param_groups_for_weight_decay(model, WD), lr=LR, betas=(0.9, 0.95)),
        scaler=scaler(fmt),
        max_grad_norm=1.0,
    )
    losses = []
    for x, y in batches():
        _, loss = model(x, y)
        opt.zero_grad()
        opt.backward(loss)
        opt.step()
        losses.append(float(loss.item()))
    return losses


def run(fmt, make):
    model = make_model(fmt)
    strategy = make(model, scaler(fmt))
    try:
        b = B // world.size
        losses = []
        for x, y in batches():
            strategy.zero_grad()
            _, loss = strategy(
                x[world.rank * b : (world.rank + 1) * b], y[world.rank * b : (world.rank + 1) * b]
            )
            strategy.backward(loss)
            strategy.clip_grad_norm_(1.0)
            strategy.step()
            losses.append(float(np.mean(world.allgather_json(float(loss.item())))))
        return {
            "losses": losses,
            "memory": strategy.memory_report(),
            "theory": strategy.theory(),
            "skipped": strategy.skipped_steps,
            "bytes_sent": strategy.step_stats()["bytes_sent"],
            "theory_bytes": strategy.theory_comm_bytes(1),
        }
    finally:
        strategy.close()


def main():
    kw = dict(lr=LR, betas=(0.9, 0.95), weight_decay=WD)
    configs = {
        "ddp": lambda m, s: DDP(m, world, loss_scaler=s, **kw),
        "zero1": lambda m, s: ZeRO1(m, world, loss_scaler=s, **kw),
        "zero2": lambda m, s: ZeRO2(m, world, loss_scaler=s, **kw),
        "zero3": lambda m, s: ZeRO3(m, world, loss_scaler=s, **kw),
        "zero2-offload": lambda m, s: ZeRO2Offload(m, world, loss_scaler=s, **kw),
        "zero3-offload-params": lambda m, s: ZeRO3OffloadParams(m, world, loss_scaler=s, **kw),
    }
    named = list(make_model("bf16").named_parameters())
    blocks = [
        sum(p.numel() for n, p in named if n.startswith(f"transformer.h.{i}."))
        for i in range(CFG.n_layer)
    ]
    results = {
        "world_size": world.size,
        "n_params": sum(p.numel() for _, p in named),
        "block_sizes": blocks,
        "root_size": sum(p.numel() for _, p in named) - sum(blocks),
        "formats": {},
    }
    for fmt in FORMATS:
        out = {"reference": reference(fmt)}
        for name, make in configs.items():
            out[name] = run(fmt, make)
        results["formats"][fmt] = out
    if world.rank == 0:
        print("RESULTS " + json.dumps(results))


main()
