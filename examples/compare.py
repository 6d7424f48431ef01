"""`examples/train_zero.py --compare`: every strategy on the same model and batches, one table.

`compare` trains DDP, each ZeRO stage, ZeRO-3's variants (no reshard, prefetch), offload and
hybrid sharding for a few steps each, then — beside them — the same model split by tensor
parallelism over all ranks (tp = N) and by pipeline stages (pp = N) with sim/parallel3d.py
(`compare_rows`), and prints memory, bytes per step and simulated time side by side with the
formulas. Not a script of its own: train_zero.py (and tests/mpi_workers/tp_worker.py) import it.
"""

from __future__ import annotations

import common
import numpy as np
import zero_loop

from sim.device import OutOfMemoryError
from sim.parallel3d import Parallel3D
from tinyllm.data import get_batch


def compare_rows(
    world,
    make_model,
    get_batch,
    *,
    steps: int = 3,
    lr=1e-3,
    micro_batches: int | None = None,
    schedule: str = "1f1b",
    grad_clip: float = 1.0,
    **strategy_kwargs,
) -> list[dict]:
    """A tensor-parallel row (tp = world size) and a pipeline row (pp = world size), trained for
    `steps` steps on the same batches, in the row format of examples/train_zero.py --compare:
    strategy, loss, memory (rank 0's memory_report), max_peak, theory, bytes_per_step (rank 0),
    theory_bytes, simulated_seconds — plus bytes_by_axis and bubble.

    make_model(): a fresh GPT, the same every call (seeded). get_batch(step) -> the *global*
    (x, y) of that step (with dp = 1 every rank trains on all of it). lr: a number or a function
    of the step. micro_batches: default = world size (the pipeline's stages). Other keywords go
    to the strategy (weight_decay, betas, profile, device_memory, ...). A configuration the model
    cannot take (heads or layers not divisible) gives {"strategy", "skipped": reason}; one whose
    model states exceed `device_memory` gives {"strategy", "oom": message}, as train_zero.py's
    rows do. (Activations overflowing during a step end the job instead: the out-of-memory error
    may strike one pipeline stage while the others wait for its message, and sim's excepthook
    then aborts every rank.)
    Collective: every rank calls it and gets the same rows.
    """
    n = world.size
    m = micro_batches or n
    rows = []
    for dims in ({"tp": n}, {"pp": n, "micro_batches": m, "schedule": schedule}):
        model = make_model()
        tp, pp = dims.get("tp", 1), dims.get("pp", 1)
        label = Parallel3D.describe(1, tp, pp, schedule, m)
        problem = infeasible(model.config, tp, pp)
        if problem:
            rows.append({"strategy": label, "skipped": problem})
            continue
        strategy, error = None, None
        try:
            strategy = Parallel3D(
                model, world, lr=lr if not callable(lr) else lr(0), **dims, **strategy_kwargs
            )
        except OutOfMemoryError as e:  # the parameters, gradients or Adam states do not fit
            error = str(e).splitlines()[0]
        errors = [e for e in world.allgather_json(error) if e]  # agree before communicating
        if errors:
            rows.append({"strategy": label, "oom": errors[0]})
            if strategy is not None:
                strategy.close()
            continue
        losses = []
        for step in range(steps):
            if callable(lr):
                strategy.set_lr(lr(step))
            x, y = get_batch(step)
            strategy.zero_grad()
            _, loss = strategy(x, y)
            strategy.backward(loss)
            strategy.clip_grad_norm_(grad_clip)
            strategy.step()
            losses.append(loss.item())
        stats = strategy.step_stats()
        mem = world.allgather_json(strategy.memory_report())
        theory_axes = world.allgather_json(
            strategy.theory_comm_bytes_by_axis(x.shape[0], x.shape[1])
        )
        rows.append(
            {
                "strategy": label,
                "loss": losses[-1],
                "memory": mem[0],
                "max_peak": max(r["peak"] for r in mem),
                "theory": world.bcast_json(strategy.theory()),
                "bytes_per_step": world.bcast_json(stats["bytes_sent"]),
                "theory_bytes": sum(theory_axes[0].values()),
                "simulated_seconds": max(world.allgather_json(stats["simulated_seconds"])),
                "bytes_by_axis": world.bcast_json(stats["bytes_by_axis"]),
                "bubble": world.bcast_json(stats["bubble"]),
            }
        )
        strategy.close()
        world.barrier()
    return rows


def infeasible(config, tp: int, pp: int) -> str | None:
    """Why a GPT config cannot be split tp × pp ways (None: it can)."""
    if config.n_head % tp or (4 * config.n_embd) % tp:
        return f"n_head {config.n_head} does not divide by tp = {tp}"
    if config.n_layer < pp:
        return f"{config.n_layer} layers cannot fill {pp} pipeline stages"
    return None


def compare(world, args, tok, train_ids):
    """Every strategy on the same model and batches for a few steps: one side-by-side table."""
    rows = []
    # (stage, offload, reshard_after_forward, prefetch, sharding factor)
    configs = [
        (0, "none", True, False),
        (1, "none", True, False),
        (2, "none", True, False),
        (3, "none", True, False),
        (3, "none", False, False),
        (3, "none", True, True),
        (1, "optimizer", True, False),
        (2, "optimizer", True, False),
        (3, "optimizer", True, False),
        (3, "params", True, False),
    ]
    configs = [c + (args.sharding_factor,) for c in configs]
    if args.sharding_factor is None and world.size >= 4 and world.size % 2 == 0:
        # hybrid sharding: shard in groups of half the world, replicate across the two groups
        configs.append((3, "none", True, False, world.size // 2))
    steps = max(1, args.compare_steps)
    for stage, offload, reshard, prefetch, factor in configs:
        label = zero_loop.strategy_label(stage, offload, reshard, prefetch, factor, world)
        model, cfg = zero_loop.build_model(args, tok.vocab_size)
        try:
            strategy = zero_loop.make_strategy(
                model, world, args, stage, offload, reshard, prefetch, factor
            )
            losses, stats = zero_loop.train_steps(
                strategy, world, args, train_ids, np.random.default_rng(args.seed), 0, steps
            )
            mem = world.allgather_json(strategy.memory_report())
            theory = strategy.theory()
            rows.append(
                {
                    "strategy": label,
                    "loss": losses[-1],
                    "memory": mem[0],
                    "max_peak": max(m["peak"] for m in mem),
                    "theory": theory,
                    "bytes_per_step": stats[-1]["bytes_sent"],
                    "theory_bytes": strategy.theory_comm_bytes(args.accum_steps),
                    "simulated_seconds": stats[-1]["simulated_seconds"],
                }
            )
            strategy.close()
        except OutOfMemoryError as e:
            rows.append({"strategy": label, "oom": str(e).splitlines()[0]})
        world.barrier()
    if world.size > 1 and args.accum_steps == 1 and args.dtype != "float32":
        # Parallel3D has no fp32 master weights or loss scaling: a half model diverges (NaN).
        rows.append(
            {
                "strategy": "tp / pp rows",
                "skipped": f"sim/parallel3d.py trains float32 models only, not {args.dtype}",
            }
        )
    elif world.size > 1 and args.accum_steps == 1:
        # Beyond data parallelism (sim/parallel3d.py): the same model split by tensor
        # parallelism (tp = N) and by pipeline stages (pp = N), on the same batches.
        rng = np.random.default_rng(args.seed)
        batches = [
            get_batch(train_ids, args.batch_size, args.block_size, rng) for _ in range(steps)
        ]
        rows += compare_rows(
            world,
            lambda: zero_loop.build_model(args, tok.vocab_size)[0],
            lambda step: batches[step],
            steps=steps,
            lr=lambda step: common.lr_at(step, args),
            grad_clip=args.grad_clip,
            betas=(0.9, 0.95),
            weight_decay=args.weight_decay,
            device_memory=args.device_memory,
            profile=args.profile,
        )
    mb = 1e6
    head = (
        f"{'strategy':<32}{'params':>9}{'grads':>9}{'optim':>9}{'activ':>9}{'peak':>9}"
        f"{'host':>9}  {'sent/step':>10} {'theory':>10}  {'sim step':>10}  loss"
    )
    lines = [
        f"--compare on {world.size} ranks, {args.compare_steps} steps each; memory of rank 0 in "
        f"MB (measured peak per category, the formula on the line below), bytes sent per "
        f"rank per step",
        head,
        "-" * len(head),
    ]
    for r in rows:
        if "oom" in r:
            lines.append(f"{r['strategy']:<32}  OUT OF MEMORY: {r['oom']}")
            continue
        if "skipped" in r:
            lines.append(f"{r['strategy']:<32}  skipped: {r['skipped']}")
            continue
        m, t = r["memory"], r["theory"]
        lines.append(
            f"{r['strategy']:<32}{m['parameters'] / mb:>9.3f}{m['gradients'] / mb:>9.3f}"
            f"{m['optimizer_states'] / mb:>9.3f}{m['activations'] / mb:>9.3f}{m['peak'] / mb:>9.3f}"
            f"{m['host'] / mb:>9.3f}  {r['bytes_per_step'] / mb:>8.3f}MB "
            f"{r['theory_bytes'] / mb:>8.3f}MB"
            f"  {1e3 * r['simulated_seconds']:>8.3f}ms  {r['loss']:.4f}"
        )
        lines.append(
            f"{'  (theory)':<32}{t['parameters'] / mb:>9.3f}{t['gradients'] / mb:>9.3f}"
            f"{t['optimizer_states'] / mb:>9.3f}"
        )
    lines.append(zero_loop.memory_bars(rows))
    return rows, "\n".join(lines)
