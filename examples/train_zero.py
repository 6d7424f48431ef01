"""The main job: train a small GPT with ZeRO on simulated GPUs (one MPI rank = one GPU).

    mpirun -n 4 python examples/train_zero.py                    # ZeRO-3 on 4 ranks, ~3 min
    mpirun -n 4 python examples/train_zero.py --stage 2 --offload optimizer
    mpirun -n 4 python examples/train_zero.py --compare           # every strategy, one table
    mpirun -n 4 python examples/train_zero.py --stage 0 --device-memory 12MB   # DDP: OOM
    python examples/train_zero.py                                  # world size 1 works too

Every rank builds the same model from the same seed and draws the same global batch; rank r
trains on its 1/N of it. The strategy (sim/ddp.py, sim/zero.py, sim/offload.py) decides where
parameters, gradients and optimizer states live and which collectives move them. While it
trains, rank 0 prints the loss, tokens/s and the simulated step time on a real GPU profile
(sim/cost.py); at the end, each rank's memory by category next to the ZeRO paper's formula, the
bytes each rank sent per step next to the paper's communication volume, a generated sample, and
a sharded checkpoint (sim/checkpoint.py) that any number of ranks can load (`--resume`).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time

import common
import numpy as np

import sim  # noqa: I001 — first: it sets the BLAS/numba thread counts before NumPy loads
import tinyllm
from sim.checkpoint import load_sharded, save_sharded
from sim.device import OutOfMemoryError, format_bytes_per_parameter
from tinyllm.data import get_batch
from tinyllm.models import GPT, GPTConfig

STAGE_NAMES = {0: "DDP", 1: "ZeRO-1", 2: "ZeRO-2", 3: "ZeRO-3"}


def parse_bytes(text: str) -> int:
    """'64MB' → 64e6, '1GiB' → 2³⁰, '1000' → 1000."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?)(i?)B?\s*", str(text), re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"not a byte count: {text!r} (e.g. 64MB, 1GiB, 1000)")
    value, unit, binary = float(m.group(1)), m.group(2).upper(), m.group(3)
    power = "KMGT".index(unit) + 1 if unit else 0
    return int(value * (1024 if binary else 1000) ** power)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_common_args(p, steps=300, batch_size=16, lr=3e-3)
    common.add_model_args(p, n_layer=4, n_head=4, n_embd=128, block_size=64, vocab_size=512)
    p.set_defaults(data_bytes=1_000_000, eval_interval=100, log_interval=20)
    g = p.add_argument_group("parallelism")
    g.add_argument("--stage", type=int, choices=(0, 1, 2, 3), default=3, help="0 = DDP")
    g.add_argument("--offload", choices=("none", "optimizer", "params"), default="none")
    g.add_argument("--sharding-factor", type=int, default=None,
                   help="shard within groups of F ranks, replicate across groups (default: all)")
    g.add_argument("--reshard-after-forward", action=argparse.BooleanOptionalAction, default=True)
    g.add_argument("--prefetch", action="store_true", help="ZeRO-3: gather the next unit early")
    g.add_argument("--naive-ddp", action="store_true", help="stage 0: one all-reduce per parameter")
    g.add_argument("--bucket-mb", type=float, default=25.0, help="DDP bucket size")
    g.add_argument("--accum-steps", type=int, default=1, help="gradient accumulation micro-steps")
    g.add_argument("--device-memory", type=parse_bytes, default=None,
                   help="simulated device capacity (e.g. 12MB); default: the profile's")
    g.add_argument("--profile", default="A100-80GB", help="cost-model GPU (sim/cost.py)")
    g.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                   help="model precision: half formats train with fp32 master weights in the "
                        "optimizer (ZeRO's K = 12 layout); float16 adds dynamic loss scaling")
    g.add_argument("--backend", choices=("explicit", "mpi"), default=None,
                   help="collectives: explicit point-to-point (default) or MPI's built-in")
    g.add_argument("--compare", action="store_true",
                   help="run DDP and every stage/offload for a few steps; print one table")
    g.add_argument("--compare-steps", type=int, default=3)
    g.add_argument("--checkpoint-dir", default=os.path.join("runs", "zero-ckpt"))
    g.add_argument("--resume", action="store_true", help="continue from --checkpoint-dir")
    g.add_argument("--stop-at", type=int, default=None, help="stop early (and checkpoint) here")
    g.add_argument("--sample-tokens", type=int, default=120)
    return p


def make_strategy(model, world, args, stage, offload="none", reshard=True, prefetch=False,
                  factor=None):
    """The flags' strategy: DDP for stage 0, else the ZeRO rung of sim/zero.py and
    sim/offload.py (options only where the stage has them: ZeRO-3's reshard and prefetch)."""
    from sim.ddp import DDP, NaiveDDP
    from sim.offload import zero_class

    common = dict(lr=args.lr, betas=(0.9, 0.95), weight_decay=args.weight_decay,
                  device_memory=args.device_memory, profile=args.profile)
    if args.dtype == "float16":
        from tinyllm.precision import GradScaler
        common["loss_scaler"] = GradScaler()
    if stage == 0:
        if offload != "none":
            raise SystemExit("--offload needs a ZeRO stage (1-3)")
        if args.naive_ddp:
            return NaiveDDP(model, world, **common)
        return DDP(model, world, bucket_cap_mb=args.bucket_mb, **common)
    try:
        cls = zero_class(stage, offload)
    except ValueError as e:
        raise SystemExit(f"--offload {offload} --stage {stage}: {e}") from None
    if stage == 3:
        common.update(reshard_after_forward=reshard, prefetch=prefetch)
    elif prefetch or not reshard:
        raise SystemExit("--prefetch and --no-reshard-after-forward need --stage 3: only ZeRO-3 "
                         "gathers and frees parameters")
    return cls(model, world, sharding_factor=factor, **common)


def strategy_label(stage, offload="none", reshard=True, prefetch=False, factor=None, world=None,
                   naive=False):
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
    return x[world.rank * b:(world.rank + 1) * b]


def train_steps(strategy, world, args, train_ids, data_rng, start, end, log=None, report=None):
    """The training loop — the same for every strategy."""
    if args.batch_size % (world.size * args.accum_steps):
        raise SystemExit(f"--batch-size {args.batch_size} must divide by world size × "
                         f"accum steps = {world.size * args.accum_steps}")
    losses, all_stats = [], []
    from tinyllm.accounting import palm_flops_per_token_for
    flops_per_token = palm_flops_per_token_for(strategy.model.config, args.block_size)
    meter = common.Throughput(flops_per_token, getattr(args, "machine_peak", None))
    from sim.cost import dtype_name
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
                _, loss = strategy(x[a * mb:(a + 1) * mb], y[a * mb:(a + 1) * mb])
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
        stats["simulated_mfu"] = (tokens_per_rank * flops_per_token
                                  / max(stats["simulated_seconds"], 1e-30) / gpu_peak)
        if log and (step % args.log_interval == 0 or step == end - 1):
            tps, mfu = meter.read()
            mfu_text = f"MFU {100 * mfu:4.1f}% | " if mfu is not None else ""
            log(f"step {step:4d} | loss {global_loss:.4f} | lr {lr:.2e} | {tps:7.0f} tok/s | "
                f"{mfu_text}simulated {1e3 * stats['simulated_seconds']:.3f} ms/step on "
                f"{args.profile} (MFU {100 * stats['simulated_mfu']:.1f}%) | "
                f"sent {stats['bytes_sent'] / 1e6:.2f} MB")
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
    lines.append(f"  {'theory':<6}" + "".join(
        f"{theory[k] / mb:>15.3f} MB" if k in theory else f"{'—':>18}" for k in keys))
    return "\n".join(lines)


def build_model(args, vocab_size):
    tinyllm.manual_seed(args.seed)
    cfg = GPTConfig(block_size=args.block_size, vocab_size=vocab_size, n_layer=args.n_layer,
                    n_head=args.n_head, n_embd=args.n_embd, dropout=args.dropout)
    model = GPT(cfg)
    if args.dtype != "float32":
        model.to(getattr(tinyllm, args.dtype))
    return model, cfg


def compare(world, args, tok, train_ids):
    """Every strategy on the same model and batches for a few steps: one side-by-side table."""
    rows = []
    # (stage, offload, reshard_after_forward, prefetch, sharding factor)
    configs = [(0, "none", True, False), (1, "none", True, False), (2, "none", True, False),
               (3, "none", True, False), (3, "none", False, False), (3, "none", True, True),
               (1, "optimizer", True, False), (2, "optimizer", True, False),
               (3, "optimizer", True, False), (3, "params", True, False)]
    configs = [c + (args.sharding_factor,) for c in configs]
    if args.sharding_factor is None and world.size >= 4 and world.size % 2 == 0:
        # hybrid sharding: shard in groups of half the world, replicate across the two groups
        configs.append((3, "none", True, False, world.size // 2))
    steps = max(1, args.compare_steps)
    for stage, offload, reshard, prefetch, factor in configs:
        label = strategy_label(stage, offload, reshard, prefetch, factor, world)
        model, cfg = build_model(args, tok.vocab_size)
        try:
            strategy = make_strategy(model, world, args, stage, offload, reshard, prefetch,
                                     factor)
            losses, stats = train_steps(strategy, world, args, train_ids,
                                        np.random.default_rng(args.seed), 0, steps)
            mem = world.allgather_json(strategy.memory_report())
            theory = strategy.theory()
            rows.append({"strategy": label, "loss": losses[-1], "memory": mem[0],
                         "max_peak": max(m["peak"] for m in mem), "theory": theory,
                         "bytes_per_step": stats[-1]["bytes_sent"],
                         "theory_bytes": strategy.theory_comm_bytes(args.accum_steps),
                         "simulated_seconds": stats[-1]["simulated_seconds"]})
            strategy.close()
        except OutOfMemoryError as e:
            rows.append({"strategy": label, "oom": str(e).splitlines()[0]})
        world.barrier()
    if world.size > 1 and args.accum_steps == 1 and args.dtype != "float32":
        # Parallel3D has no fp32 master weights or loss scaling: a half model diverges (NaN).
        rows.append({"strategy": "tp / pp rows", "skipped": f"sim/parallel3d.py trains "
                     f"float32 models only, not {args.dtype}"})
    elif world.size > 1 and args.accum_steps == 1:
        # Beyond data parallelism (sim/parallel3d.py): the same model split by tensor
        # parallelism (tp = N) and by pipeline stages (pp = N), on the same batches.
        from compare_3d import compare_rows  # examples/compare_3d.py, beside this script
        rng = np.random.default_rng(args.seed)
        batches = [get_batch(train_ids, args.batch_size, args.block_size, rng) for _ in range(steps)]
        rows += compare_rows(world, lambda: build_model(args, tok.vocab_size)[0],
                             lambda step: batches[step], steps=steps,
                             lr=lambda step: common.lr_at(step, args),
                             grad_clip=args.grad_clip, betas=(0.9, 0.95),
                             weight_decay=args.weight_decay, device_memory=args.device_memory,
                             profile=args.profile)
    mb = 1e6
    head = (f"{'strategy':<32}{'params':>9}{'grads':>9}{'optim':>9}{'activ':>9}{'peak':>9}"
            f"{'host':>9}  {'sent/step':>10} {'theory':>10}  {'sim step':>10}  loss")
    lines = [f"--compare on {world.size} ranks, {args.compare_steps} steps each; memory of rank 0 in "
             f"MB (measured peak per category, the formula on the line below), bytes sent per "
             f"rank per step",
             head, "-" * len(head)]
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
            f"{m['host'] / mb:>9.3f}  {r['bytes_per_step'] / mb:>8.3f}MB {r['theory_bytes'] / mb:>8.3f}MB"
            f"  {1e3 * r['simulated_seconds']:>8.3f}ms  {r['loss']:.4f}")
        lines.append(f"{'  (theory)':<32}{t['parameters'] / mb:>9.3f}{t['gradients'] / mb:>9.3f}"
                     f"{t['optimizer_states'] / mb:>9.3f}")
    lines.append(memory_bars(rows))
    return rows, "\n".join(lines)


def memory_bars(rows, width=50):
    """A text chart of each strategy's peak device memory split by category."""
    ok = [r for r in rows if "oom" not in r and "skipped" not in r]
    if not ok:
        return ""
    top = max(r["memory"]["peak"] for r in ok) or 1
    marks = {"parameters": "P", "gradients": "G", "optimizer_states": "O", "activations": "A",
             "buffers": "b"}
    lines = ["peak device memory per rank (P params, G grads, O optimizer, A activations, "
             "b buffers):"]
    for r in ok:
        m = r["memory"]
        bar = "".join(ch * int(round(width * m[k] / top)) for k, ch in marks.items())
        lines.append(f"  {r['strategy']:<32}|{bar:<{width}}| {m['peak'] / 1e6:.2f} MB")
    return "\n".join(lines)


def main(argv=None, **defaults):
    parser = build_parser()
    parser.set_defaults(**defaults)
    args = parser.parse_args(argv)
    common.check_args(args)
    world = sim.init(backend=args.backend)
    log = world.print0
    t0 = time.perf_counter()
    # Data: rank 0 trains the tokenizer and encodes the corpus (or finds them in its cache) and
    # sends the result to the others over MPI — no files shared between ranks.
    tok, train_ids, val_ids = common.share_text_data(world, args, log)
    # This machine's matmul peak: one core's, measured by rank 0 (the others wait in a yielding
    # barrier), times the cores — the ranks share the machine's cores.
    if world.rank == 0:
        from sim.launch import available_cores
        from tinyllm.accounting import measure_matmul_peak
        from tinyllm.runtime.threads import blas_threads
        with blas_threads(1):
            peak = measure_matmul_peak(np.float32, n=512, repeats=5) * available_cores()
    args.machine_peak = world.bcast_json(peak if world.rank == 0 else None)
    if args.compare:
        rows, table = compare(world, args, tok, train_ids)
        log(table)
        if world.rank == 0:
            common.write_report(args.report, {"world_size": world.size, "compare": rows})
        return rows

    model, cfg = build_model(args, tok.vocab_size)
    strategy = make_strategy(model, world, args, args.stage, args.offload,
                             args.reshard_after_forward, args.prefetch, args.sharding_factor)
    label = strategy_label(args.stage, args.offload, args.reshard_after_forward, args.prefetch,
                           args.sharding_factor, world, naive=args.naive_ddp)
    if args.dtype != "float32":
        label += f" ({args.dtype})"
    data_rng = np.random.default_rng(args.seed)
    start = 0
    report = {"world_size": world.size, "strategy": label, "params": strategy.n_params,
              "config": cfg.to_dict(), "losses": [], "val_losses": []}
    if args.resume:
        index = load_sharded(strategy, args.checkpoint_dir)
        start = index["step"]
        data_rng.bit_generator.state = index["extra"]["data_rng"]
        report = index["extra"]["report"]
        log(f"resumed from {args.checkpoint_dir} at step {start} (saved by "
            f"{index['world_size']} ranks, {index['strategy']})")
    log(f"{label} on {world.size} rank(s): GPT {cfg.n_layer}L/{cfg.n_embd}E, "
        f"Ψ = {strategy.n_params:,} parameters; global batch {args.batch_size} × "
        f"{args.block_size} tokens; simulated {args.profile}; first step after "
        f"{time.perf_counter() - t0:.1f} s")
    end = args.steps if args.stop_at is None else min(args.steps, args.stop_at)
    t_train = time.perf_counter()
    step = start
    stats = {}
    while step < end:
        chunk_end = min(end, (step // args.eval_interval + 1) * args.eval_interval)
        losses, chunk_stats = train_steps(strategy, world, args, train_ids, data_rng, step,
                                          chunk_end, log=log)
        report["losses"] += losses
        stats = chunk_stats[-1] if chunk_stats else stats   # the last *training* step
        step = chunk_end
        if step % args.eval_interval == 0 or step == args.steps:
            val = evaluate(strategy, world, args, val_ids, args.seed + 1)
            report["val_losses"].append([step, val])
            log(f"step {step:4d} | val loss {val:.4f}")
    elapsed = time.perf_counter() - t_train
    trained = end - start

    # ---- the report: memory and communication beside the formulas ---------------------------
    per_rank = world.allgather_json(strategy.memory_report())
    sent_per_rank = world.allgather_json(stats.get("bytes_sent", 0))
    theory = strategy.theory()
    theory_bytes = strategy.theory_comm_bytes(args.accum_steps)
    layout = (f"{args.dtype} model + fp32 masters: K = 12" if strategy.precision.mixed
              else "fp32 Adam: K = 8")
    log(memory_table(per_rank, theory, f"memory per rank at peak ({label}, Ψ = "
                                       f"{strategy.n_params:,}, {layout})"))
    log("bytes per parameter on rank 0 beside the course notes' rule of thumb:\n"
        + format_bytes_per_parameter(strategy.device, strategy.n_params))
    log(f"bytes sent per rank in the last step: "
        f"{[f'{b / 1e6:.3f} MB' for b in sent_per_rank]}; the paper's volume: "
        f"{theory_bytes / 1e6:.3f} MB")
    if trained:
        log(f"simulated step on {args.profile}: {1e3 * stats['simulated_seconds']:.3f} ms "
            f"(compute {1e3 * stats['timeline']['compute_seconds']:.3f} ms, communication "
            f"{1e3 * stats['timeline']['comm_seconds']:.3f} ms of which exposed "
            f"{1e3 * stats['timeline']['exposed_comm_seconds']:.3f} ms); this machine: "
            f"{elapsed / trained:.3f} s/step wall")
    from tinyllm.accounting import palm_flops_per_token_for
    tokens_per_second = trained * args.batch_size * args.block_size / max(elapsed, 1e-9)
    report.update({
        "params": strategy.n_params,
        "tokens_per_second": tokens_per_second,
        "mfu": tokens_per_second * palm_flops_per_token_for(cfg, args.block_size) / args.machine_peak,
        "machine_peak_flops": args.machine_peak,
        "memory": {"per_rank": per_rank, "theory": theory},
        "comm": {"bytes_per_step": sent_per_rank, "theory_bytes_per_step": theory_bytes},
        "simulated": {"step_seconds": stats.get("simulated_seconds"), "profile": args.profile,
                      "mfu": stats.get("simulated_mfu"), "timeline": stats.get("timeline")},
    })
    save_sharded(strategy, args.checkpoint_dir, end,
                 extra={"data_rng": data_rng.bit_generator.state, "report": report})
    log(f"sharded checkpoint saved to {args.checkpoint_dir}")
    if end == args.steps and args.sample_tokens > 0:
        prompt = np.array([tok.encode("def ")], dtype=np.int64)
        out = model.generate(prompt, args.sample_tokens, do_sample=True, temperature=0.8,
                             top_k=40, seed=args.seed)
        report["sample"] = tok.decode(out[0].tolist())
        log("---- sample ----\n" + report["sample"])
    if world.rank == 0:
        common.write_report(args.report, report)
    strategy.close()
    return report


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
