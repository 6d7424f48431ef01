"""The training loop every data-parallel example shares, and the tables it prints.

examples/train_zero.py (the main job), its --compare table (examples/compare.py) and
examples/train_ddp.py train the same way: every rank builds the same GPT from the same seed
(`build_model`), wraps it in the strategy the flags name (`make_strategy`: DDP, or the ZeRO rung
of sim/zero.py, sim/zero3.py, sim/offload.py), draws the same global batch and trains on its
1/N of it (`local_batch`, `train_steps`). The loop is the one sim/strategy.py documents — the
same for every strategy. Not a script of its own; the scripts beside it import it.
"""

from __future__ import annotations

import common
import numpy as np

import tinyllm
from sim.cost import dtype_name
from sim.ddp import DDP, NaiveDDP
from sim.offload import zero_class
from tinyllm.accounting import palm_flops_per_token_for
from tinyllm.data import get_batch
from tinyllm.models import GPT
from tinyllm.precision import GradScaler

STAGE_NAMES = {0: "DDP", 1: "ZeRO-1", 2: "ZeRO-2", 3: "ZeRO-3"}


def make_strategy(
    model, world, args, stage, offload="none", reshard=True, prefetch=False, factor=None
):
    """The flags' strategy: DDP for stage 0, else the ZeRO rung of sim/zero.py and
    sim/offload.py (options only where the stage has them: ZeRO-3's reshard and prefetch)."""
    options = dict(
        lr=args.lr,
        betas=(0.9, 0.95),
        weight_decay=args.weight_decay,
        device_memory=args.device_memory,
        profile=args.profile,
    )
    if args.dtype == "float16":
        options["loss_scaler"] = GradScaler()
    if stage == 0:
        if offload != "none":
            raise SystemExit("--offload needs a ZeRO stage (1-3)")
        if args.naive_ddp:
            return NaiveDDP(model, world, **options)
        return DDP(model, world, bucket_cap_mb=args.bucket_mb, **options)
    try:
        cls = zero_class(stage, offload)
    except ValueError as e:
        raise SystemExit(f"--offload {offload} --stage {stage}: {e}") from None
    if stage == 3:
        options.update(reshard_after_forward=reshard, prefetch=prefetch)
    elif prefetch or not reshard:
        raise SystemExit(
            "--prefetch and --no-reshard-after-forward need --stage 3: only ZeRO-3 "
            "gathers and frees parameters"
        )
    return cls(model, world, sharding_factor=factor, **options)


def strategy_label(
    stage, offload="none", reshard=True, prefetch=False, factor=None, world=None, naive=False
):
    label = "naive DDP" if stage == 0 and naive else STAGE_NAMES[stage]
    if offload != "none":
        label += f" + offload {offload}"
    if stage == 3 and not reshard:
        label += " (no reshard)"
    if prefetch:
        label += " + prefetch"
    if factor is not None and world is not None and factor != world.size:
        label += f" (F={factor})"
    return label


def local_batch(x, world):
    """Rank r's rows of the global batch (the global batch must divide by the world size)."""
    b = x.shape[0] // world.size
    return x[world.rank * b : (world.rank + 1) * b]


def train_steps(strategy, world, args, train_ids, data_rng, start, end, log=None, report=None):
    """The training loop — the same for every strategy."""
    if args.batch_size % (world.size * args.accum_steps):
        raise SystemExit(
            f"--batch-size {args.batch_size} must divide by world size × "
            f"accum steps = {world.size * args.accum_steps}"
        )
    losses, all_stats = [], []
    flops_per_token = palm_flops_per_token_for(strategy.model.config, args.block_size)
    meter = common.Throughput(flops_per_token, getattr(args, "machine_peak", None))
    gpu_peak = strategy.profile.peak_flops[dtype_name(strategy.precision.compute_dtype)]
    tokens_per_rank = args.batch_size * args.block_size / world.size
    for step in range(start, end):
        lr = common.lr_at(step, args)
        strategy.set_lr(lr)
        x, y = get_batch(train_ids, args.batch_size, args.block_size, data_rng)  # global batch
        x, y = local_batch(x, world), local_batch(y, world)
        mb = x.shape[0] // args.accum_steps
        strategy.zero_grad()
        local = 0.0
        for a in range(args.accum_steps):
            with strategy.no_sync(a < args.accum_steps - 1):
                _, loss = strategy(x[a * mb : (a + 1) * mb], y[a * mb : (a + 1) * mb])
                strategy.backward(loss * (1.0 / args.accum_steps))
            local += loss.item() / args.accum_steps
        strategy.clip_grad_norm_(args.grad_clip)
        strategy.step()
        stats = strategy.step_stats()
        # the global loss: bookkeeping on the host, not counted as simulated GPU traffic
        global_loss = float(np.mean(world.allgather_json(local)))
        losses.append(global_loss)
        all_stats.append(stats)
        meter.add(args.batch_size * args.block_size)
        # MFU (PaLM appendix B): model FLOPs / time / peak — here on this machine (all ranks
        # share its cores) and in simulation (one rank's FLOPs on one simulated GPU).
        stats["simulated_mfu"] = (
            tokens_per_rank * flops_per_token / max(stats["simulated_seconds"], 1e-30) / gpu_peak
        )
        if log and (step % args.log_interval == 0 or step == end - 1):
            tps, mfu = meter.read()
            mfu_text = f"MFU {100 * mfu:4.1f}% | " if mfu is not None else ""
            log(
                f"step {step:4d} | loss {global_loss:.4f} | lr {lr:.2e} | {tps:7.0f} tok/s | "
                f"{mfu_text}simulated {1e3 * stats['simulated_seconds']:.3f} ms/step on "
                f"{args.profile} (MFU {100 * stats['simulated_mfu']:.1f}%) | "
                f"sent {stats['bytes_sent'] / 1e6:.2f} MB"
            )
    return losses, all_stats


def evaluate(strategy, world, args, val_ids, seed):
    rng = np.random.default_rng(seed)
    losses = []
    strategy.model.eval()
    with tinyllm.no_grad():
        for _ in range(args.eval_iters):
            x, y = get_batch(val_ids, args.batch_size, args.block_size, rng)
            _, loss = strategy(local_batch(x, world), local_batch(y, world))
            losses.append(loss.item())
    strategy.model.train()
    return float(np.mean(world.allgather_json(float(np.mean(losses)))))


def memory_table(per_rank, theory, title):
    keys = ("parameters", "gradients", "optimizer_states", "activations", "buffers", "peak", "host")
    mb = 1e6
    lines = [title, f"  {'rank':<6}" + "".join(f"{k:>18}" for k in keys)]
    for r, m in enumerate(per_rank):
        lines.append(f"  {r:<6}" + "".join(f"{m[k] / mb:>15.3f} MB" for k in keys))
    lines.append(
        f"  {'theory':<6}"
        + "".join(f"{theory[k] / mb:>15.3f} MB" if k in theory else f"{'—':>18}" for k in keys)
    )
    return "\n".join(lines)


def build_model(args, vocab_size):
    tinyllm.manual_seed(args.seed)
    cfg = common.gpt_config(args, vocab_size)
    model = GPT(cfg)
    if args.dtype != "float32":
        model.to(getattr(tinyllm, args.dtype))
    return model, cfg


def memory_bars(rows, width=50):
    """A text chart of each strategy's peak device memory split by category."""
    ok = [r for r in rows if "oom" not in r and "skipped" not in r]
    if not ok:
        return ""
    top = max(r["memory"]["peak"] for r in ok) or 1
    marks = {
        "parameters": "P",
        "gradients": "G",
        "optimizer_states": "O",
        "activations": "A",
        "buffers": "b",
    }
    lines = [
        "peak device memory per rank (P params, G grads, O optimizer, A activations, b buffers):"
    ]
    for r in ok:
        m = r["memory"]
        bar = "".join(ch * int(round(width * m[k] / top)) for k, ch in marks.items())
        lines.append(f"  {r['strategy']:<32}|{bar:<{width}}| {m['peak'] / 1e6:.2f} MB")
    return "\n".join(lines)
