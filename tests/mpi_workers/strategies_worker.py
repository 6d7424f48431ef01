"""Worker: DDP and every ZeRO configuration against one process with the same global batch.

Every rank also computes the single-process reference itself (plain tinyllm.optim.AdamW on the
whole global batch), so the comparison needs no files. Rank 0 prints one RESULTS line with,
per configuration: losses, the largest parameter difference from the reference, measured
memory per tag and the theory, bytes sent in the last step and the theory.

    mpirun -n 4 python strategies_worker.py [float32|float64]
"""

import sim  # noqa: I001 — before NumPy (thread settings)

import json
import sys

import numpy as np

import tinyllm
from sim.ddp import DDP, NaiveDDP
from sim.device import OutOfMemoryError
from sim.offload import ZeRO1Offload, ZeRO2Offload, ZeRO3Offload, ZeRO3OffloadParams
from sim.zero import ZeRO1, ZeRO2
from sim.zero3 import ZeRO3
from tinyllm.models import GPT, GPTConfig
from tinyllm.optim import AdamW, clip_grad_norm_, param_groups_for_weight_decay

world = sim.init()
DTYPE = np.dtype(sys.argv[1] if len(sys.argv) > 1 else "float32")
B, T, V, STEPS, LR, WD = 8, 8, 48, 3, 3e-2, 0.1
CLIP = 0.4  # below the global gradient norm of every step (1.04, 0.62, 0.57 in one process):
#             clipping, computed across shards, acts each step
# Width 15: a block has 2,895 parameters and the root unit (embeddings, final norm) 870, so the
# flat buffers need padding on 2 ranks (blocks) and on 4 (blocks and root).
CFG = GPTConfig(block_size=T, vocab_size=V, n_layer=2, n_head=3, n_embd=15)


def make_model():
    tinyllm.manual_seed(0)
    model = GPT(CFG)
    for p in model.parameters():
        p.data = p.data.astype(DTYPE)
    return model


def batches():
    rng = np.random.default_rng(1)
    for _ in range(STEPS):
        x = rng.integers(0, V, (B, T))
        yield x, np.roll(x, -1, axis=1)


def reference():
    model = make_model()
    opt = AdamW(param_groups_for_weight_decay(model, WD), lr=LR, betas=(0.9, 0.95))
    losses = []
    for x, y in batches():
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        losses.append(loss.item())
    return losses, {k: np.array(v) for k, v in model.state_dict().items()}


def run(make, accum, capacity=None):
    model = make_model()
    if world.rank != 0:
        # Every strategy starts from rank 0's parameters (broadcast in its constructor): the
        # other ranks' initial values must not matter.
        for p in model.parameters():
            p.data += 0.5
    strategy = make(model, capacity)
    try:
        return _train(strategy, accum)
    finally:
        strategy.close()


def _train(strategy, accum):
    b = B // world.size
    losses = []
    for x, y in batches():
        xs, ys = x[world.rank * b : (world.rank + 1) * b], y[world.rank * b : (world.rank + 1) * b]
        mb = b // accum
        strategy.zero_grad()
        local = 0.0
        for a in range(accum):
            with strategy.no_sync(a < accum - 1):
                _, loss = strategy(xs[a * mb : (a + 1) * mb], ys[a * mb : (a + 1) * mb])
                strategy.backward(loss * (1.0 / accum))
            local += loss.item() / accum
        strategy.clip_grad_norm_(CLIP)
        strategy.step()
        losses.append(float(np.mean(world.allgather_json(local))))
    stats = strategy.step_stats()
    memory = strategy.memory_report()
    out = {
        "losses": losses,
        "memory": memory,
        "theory": strategy.theory(),
        "bytes_sent": stats["bytes_sent"],
        "theory_bytes": strategy.theory_comm_bytes(accum),
        "simulated_seconds": stats["simulated_seconds"],
        "compute_seconds": stats["timeline"]["compute_seconds"],
        "comm_seconds": stats["timeline"]["comm_seconds"],
        "exposed_comm_seconds": stats["timeline"]["exposed_comm_seconds"],
        "copy_seconds": stats["timeline"]["copy_seconds"],
        "host_transfer_bytes": stats["host_transfer_bytes"],
        "step_flops": stats["flops"],
    }
    if strategy.stage == 0:  # DDP: the bucket order and the last step's timeline
        out["bucket_names"] = [b.names for b in getattr(strategy, "buckets", [])]
        out["events"] = [
            (e["stream"], e["label"], e["start"], e["end"]) for e in strategy.timeline.as_dicts()
        ]
    return out, strategy.full_state_dict()


def main():
    ref_losses, ref_state = reference()
    kw = dict(lr=LR, betas=(0.9, 0.95), weight_decay=WD)
    configs = {
        "naive": lambda m, c: NaiveDDP(m, world, device_memory=c, **kw),
        "ddp": lambda m, c: DDP(m, world, bucket_cap_mb=0.004, device_memory=c, **kw),
        "zero1": lambda m, c: ZeRO1(m, world, device_memory=c, **kw),
        "zero2": lambda m, c: ZeRO2(m, world, device_memory=c, **kw),
        "zero3": lambda m, c: ZeRO3(m, world, device_memory=c, **kw),
        "zero3-keep": lambda m, c: ZeRO3(
            m, world, reshard_after_forward=False, device_memory=c, **kw
        ),
        "zero3-prefetch": lambda m, c: ZeRO3(m, world, prefetch=True, device_memory=c, **kw),
        "zero1-offload": lambda m, c: ZeRO1Offload(m, world, device_memory=c, **kw),
        "zero2-offload": lambda m, c: ZeRO2Offload(m, world, device_memory=c, **kw),
        "zero3-offload": lambda m, c: ZeRO3Offload(m, world, device_memory=c, **kw),
        "zero3-offload-params": lambda m, c: ZeRO3OffloadParams(m, world, device_memory=c, **kw),
    }
    # Hybrid sharding: every sharding factor F below the world size (F = world is the above).
    for f in (f for f in range(1, world.size) if world.size % f == 0):
        for stage, cls in ((1, ZeRO1), (2, ZeRO2), (3, ZeRO3)):
            configs[f"zero{stage}-F{f}"] = lambda m, c, cls=cls, f=f: cls(
                m, world, sharding_factor=f, device_memory=c, **kw
            )
        # … and with the optimizer offloaded: the host then holds a 1/F shard
        for stage, cls in ((2, ZeRO2Offload), (3, ZeRO3Offload)):
            configs[f"zero{stage}-offload-F{f}"] = lambda m, c, cls=cls, f=f: cls(
                m, world, sharding_factor=f, device_memory=c, **kw
            )
    named = list(make_model().named_parameters())
    blocks = [
        sum(p.numel() for n, p in named if n.startswith(f"transformer.h.{i}."))
        for i in range(CFG.n_layer)
    ]
    root = sum(p.numel() for _, p in named) - sum(blocks)
    assert root % 4 and blocks[0] % 2, "the test model must need padding on 2 and 4 ranks"
    results = {
        "reference_losses": ref_losses,
        "world_size": world.size,
        "n_params": sum(p.numel() for _, p in named),
        "block_sizes": blocks,
        "root_size": root,
        "param_names": [n for n, _ in named],
        "runs": {},
    }
    for name, make in configs.items():
        for accum in (1, 2):
            out, state = run(make, accum)
            out["max_param_diff"] = max(
                float(np.max(np.abs(state[k] - ref_state[k]))) for k in ref_state
            )
            out["max_param"] = max(float(np.max(np.abs(v))) for v in ref_state.values())
            # relative, over the whole model as one vector: ‖θ − θ_ref‖ / ‖θ_ref‖. (Per tensor,
            # the key bias would dominate: its true gradient is exactly zero — a constant added
            # to a row of scores leaves the softmax unchanged — so it sees only rounding noise,
            # which Adam's g/√v turns into ±lr steps in float32.)
            out["rel_param_diff"] = float(
                np.sqrt(sum(np.sum((state[k] - ref_state[k]) ** 2) for k in ref_state))
                / np.sqrt(sum(np.sum(v**2) for v in ref_state.values()))
            )
            results["runs"][f"{name}/accum{accum}"] = out
    # Out of memory: a capacity between ZeRO-3's peak and DDP's (only sharding makes a gap).
    if world.size == 1:
        results["oom"] = None
        if world.rank == 0:
            print("RESULTS " + json.dumps(results))
        return
    z3 = results["runs"]["zero3/accum1"]["memory"]["peak"]
    ddp = results["runs"]["ddp/accum1"]["memory"]["peak"]
    capacity = (z3 + ddp) // 2
    oom = {}
    for name in ("ddp", "zero3"):
        try:
            out, _ = run(configs[name], 1, capacity)
            oom[name] = {"trained": True, "losses": out["losses"]}
        except OutOfMemoryError as e:
            oom[name] = {"trained": False, "message": str(e)}
    results["oom"] = {"capacity": capacity, **oom}
    if world.rank == 0:
        print("RESULTS " + json.dumps(results))


main()
