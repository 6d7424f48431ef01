"""Train a small GPT with 3D parallelism — data × tensor × pipeline — on simulated GPUs.

    mpirun -n 8 python examples/train_3d.py --dp 2 --tp 2 --pp 2        # the 3D grid, 2×2×2
    mpirun -n 4 python examples/train_3d.py --tp 4                      # Megatron tensor parallel
    mpirun -n 4 python examples/train_3d.py --pp 4 --schedule gpipe --micro-batches 8
    mpirun -n 2 python examples/train_3d.py --pp 2 --checkpoint-activations
    python examples/train_3d.py                                         # one process works too

The ranks form a dp × tp × pp grid (sim/topology.py; tp varies fastest, as in Megatron-LM).
Every rank builds the same GPT from the same seed and keeps its part: its heads and MLP columns
(tensor parallelism, sim/tensor_parallel.py), its stage's blocks (pipeline, sim/pipeline.py).
Each data-parallel replica trains on batch/dp sequences cut into --micro-batches, scheduled by
GPipe or 1F1B; the losses are those of one process with the same global batch.

Printed at the end: the grid, per-rank memory by category beside its formula, bytes sent per
rank along each axis (dp / tp / pp / embedding) beside the formulas, the pipeline bubble of each
stage measured on the simulated timeline beside (p − 1)/(m + p − 1) — once on the profile's
links and once with free links (the formula's assumption) — and a generated sample.

MFU (PaLM appendix B) is taken on the simulated GPUs, per rank: the model FLOPs of one step
(global batch × tokens × 6N + 12·L·H·Q·T of the whole model) shared by the world's ranks,
over the simulated step time (the slowest rank's) and the profile's peak for the model's dtype:

    MFU per rank = step model FLOPs / world / simulated step seconds / profile peak FLOP/s
"""

from __future__ import annotations

import sim  # first: it sets the BLAS/numba thread counts before NumPy loads

# isort: split

import sys
import time

import common
import flags
import numpy as np
from mpi4py import MPI

import tinyllm
from sim.cost import PROFILES
from sim.parallel3d import Parallel3D
from sim.topology import Grid
from tinyllm.data import get_batch
from tinyllm.models import GPT


def build_parser():
    p = flags.parser(__doc__)
    common.add_common_args(p, steps=60, batch_size=16, lr=3e-3)
    common.add_model_args(p, n_layer=4, n_head=4, n_embd=128, block_size=64, vocab_size=512)
    p.set_defaults(data_bytes=1_000_000, eval_interval=30, log_interval=10)
    g = p.add_argument_group("parallelism")
    g.add_argument(
        "--dp",
        type=flags.positive_int,
        default=None,
        help="data-parallel replicas (default: the ranks left over by tp × pp)",
    )
    g.add_argument(
        "--tp", type=flags.positive_int, default=1, help="tensor-parallel ranks per layer"
    )
    g.add_argument("--pp", type=flags.positive_int, default=1, help="pipeline stages")
    g.add_argument(
        "--schedule", choices=("gpipe", "1f1b"), default="1f1b", help="pipeline schedule"
    )
    g.add_argument(
        "--micro-batches",
        type=flags.positive_int,
        default=None,
        help="micro-batches per replica and step (default: 2 × pp)",
    )
    g.add_argument(
        "--checkpoint-activations",
        action="store_true",
        help="recompute each block's forward in backward (tinyllm/recompute.py)",
    )
    g.add_argument(
        "--profile", choices=sorted(PROFILES), default="A100-80GB", help="cost-model GPU"
    )
    g.add_argument(
        "--device-memory",
        type=flags.byte_count,
        default=None,
        help="simulated device capacity, e.g. 12MB (default: the profile's)",
    )
    g.add_argument("--float64", action="store_true", help="train in float64 (equivalence checks)")
    g.add_argument(
        "--sample-tokens",
        type=flags.nonnegative_int,
        default=80,
        help="tokens of the sample printed at the end (0: none)",
    )
    p.add_check(grid_problem)
    return p


def grid_problem(args, world_size: int | None = None) -> str | None:
    """What is wrong with the dp × tp × pp grid for this many ranks (mpirun has started them
    all, and MPI knows how many without a collective), or None."""
    world_size = MPI.COMM_WORLD.Get_size() if world_size is None else world_size
    tp, pp = args.tp, args.pp
    dp = args.dp if args.dp is not None else max(1, world_size // (tp * pp))
    if dp * tp * pp != world_size:
        return (
            f"--dp {dp} --tp {tp} --pp {pp} needs {dp * tp * pp} ranks; this run has "
            f"{world_size} (mpirun -n {dp * tp * pp})"
        )
    if args.batch_size % dp:
        return f"--batch-size {args.batch_size} must divide by dp = {dp}"
    m = args.micro_batches or 2 * pp
    if (args.batch_size // dp) % m:
        return (
            f"--batch-size {args.batch_size} / dp {dp} = {args.batch_size // dp} sequences per "
            f"replica must split into --micro-batches {m}"
        )
    if args.n_head % tp or (4 * args.n_embd) % tp:
        return (
            f"--tp {tp} must divide --n-head {args.n_head} and the MLP width 4 × --n-embd "
            f"= {4 * args.n_embd} (heads and MLP columns are split across tp ranks)"
        )
    if pp > args.n_layer:
        return f"--pp {pp} stages need at least as many blocks, got --n-layer {args.n_layer}"
    return None


def grid_from_args(args, world_size: int) -> Grid:
    problem = grid_problem(args, world_size)
    if problem:
        raise SystemExit(problem)
    tp, pp = args.tp, args.pp
    return Grid(dp=args.dp if args.dp is not None else world_size // (tp * pp), tp=tp, pp=pp)


def build_model(args, vocab_size):
    tinyllm.manual_seed(args.seed)
    cfg = common.gpt_config(args, vocab_size)
    model = GPT(cfg)
    if args.float64:
        for p in model.parameters():
            p.data = p.data.astype(np.float64)
    return model, cfg


def replica_rows(x, grid: Grid, dp_index: int):
    b = x.shape[0] // grid.dp
    return x[dp_index * b : (dp_index + 1) * b]


def bubble_table(bubbles, free) -> str:
    head = bubbles[0]
    lines = [
        f"pipeline bubble per stage (p = {head['stages']}, m = {head['micro_batches']}): "
        f"formula (p−1)/(m+p−1) = {head['formula']:.4f}",
        f"  {'stage':<7}{'measured':>10}{'free links':>12}{'compute µs':>12}{'pipeline µs':>13}",
    ]
    for b, f in zip(bubbles, free):
        lines.append(
            f"  {b['stage']:<7}{b['measured']:>10.4f}{f['measured']:>12.4f}"
            f"{1e6 * b['compute_seconds']:>12.3f}{1e6 * b['pipeline_seconds']:>13.3f}"
        )
    return "\n".join(lines)


def main(argv=None):
    args = build_parser().parse_args(argv)
    world = sim.init()
    log = world.print0
    grid = grid_from_args(args, world.size)
    m = args.micro_batches or 2 * grid.pp
    t0 = time.perf_counter()
    tok, train_ids, val_ids = common.share_text_data(world, args, log)
    model, cfg = build_model(args, tok.vocab_size)
    n_params = model.num_parameters()
    strategy = Parallel3D(
        model,
        world,
        dp=grid.dp,
        tp=grid.tp,
        pp=grid.pp,
        micro_batches=m,
        schedule=args.schedule,
        checkpoint_activations=args.checkpoint_activations,
        lr=args.lr,
        betas=(0.9, 0.95),
        weight_decay=args.weight_decay,
        device_memory=args.device_memory,
        profile=args.profile,
    )
    coord = strategy.topo.coord
    from sim.cost import dtype_name
    from tinyllm.accounting import palm_flops_per_token_for

    flops_per_token = palm_flops_per_token_for(cfg, args.block_size)  # the whole model
    step_flops = args.batch_size * args.block_size * flops_per_token
    gpu_peak = strategy.profile.peak_flops[dtype_name(strategy.precision.compute_dtype)]
    log(grid.table())
    log(
        f"{strategy.name} on {world.size} rank(s): GPT {cfg.n_layer}L/{cfg.n_embd}E/{cfg.n_head}H, "
        f"{n_params:,} parameters; global batch {args.batch_size} × {args.block_size} tokens, "
        f"{args.batch_size // grid.dp} per replica in {m} micro-batches; simulated "
        f"{args.profile}; first step after {time.perf_counter() - t0:.1f} s"
    )
    report = {
        "world_size": world.size,
        "strategy": strategy.name,
        "params": n_params,
        "grid": {"dp": grid.dp, "tp": grid.tp, "pp": grid.pp},
        "schedule": args.schedule,
        "micro_batches": m,
        "checkpoint_activations": args.checkpoint_activations,
        "config": cfg.to_dict(),
        "losses": [],
        "val_losses": [],
    }
    data_rng = np.random.default_rng(args.seed)
    meter = common.Throughput()
    stats = {}
    t_train = time.perf_counter()
    for step in range(args.steps):
        strategy.set_lr(common.lr_at(step, args))
        x, y = get_batch(train_ids, args.batch_size, args.block_size, data_rng)  # global batch
        strategy.zero_grad()
        _, loss = strategy(replica_rows(x, grid, coord.dp), replica_rows(y, grid, coord.dp))
        strategy.backward(loss)
        strategy.clip_grad_norm_(args.grad_clip)
        strategy.step()
        stats = strategy.step_stats()
        # Ranks of one replica agree on its loss, so the mean over all ranks is the mean over
        # replicas: the global batch's loss (host-side bookkeeping, not simulated traffic).
        global_loss = float(np.mean(world.allgather_json(loss.item())))
        report["losses"].append(global_loss)
        meter.add(args.batch_size * args.block_size)
        if step % args.log_interval == 0 or step == args.steps - 1:
            tps, _ = meter.read()
            slowest = max(world.allgather_json(stats["simulated_seconds"]))
            log(
                f"step {step:4d} | loss {global_loss:.4f} | {tps:7.0f} tok/s | simulated "
                f"{1e3 * slowest:.3f} ms/step (MFU "
                f"{100 * step_flops / world.size / max(slowest, 1e-30) / gpu_peak:.1f}% per "
                f"rank) | sent {stats['bytes_sent'] / 1e6:.3f} MB"
            )
        if (step + 1) % args.eval_interval == 0 or step == args.steps - 1:
            vx, vy = get_batch(
                val_ids, args.batch_size, args.block_size, np.random.default_rng(args.seed + 1)
            )
            with tinyllm.no_grad():
                val = strategy.evaluate(
                    replica_rows(vx, grid, coord.dp), replica_rows(vy, grid, coord.dp)
                )
            val = float(np.mean(world.allgather_json(val)))
            report["val_losses"].append([step + 1, val])
            log(f"step {step + 1:4d} | val loss {val:.4f}")
    elapsed = time.perf_counter() - t_train

    # ---- the measurements beside their formulas -------------------------------------------
    per_rank = world.allgather_json(strategy.memory_report())
    theory = world.allgather_json(strategy.theory())
    b_local = args.batch_size // grid.dp
    axes = world.allgather_json(stats["bytes_by_axis"])
    theory_axes = world.allgather_json(strategy.theory_comm_bytes_by_axis(b_local, args.block_size))
    sent = world.allgather_json(stats["bytes_sent"])
    bubbles = world.allgather_json(stats["bubble"])
    bx, by = get_batch(train_ids, args.batch_size, args.block_size, np.random.default_rng(0))
    free = world.allgather_json(
        strategy.measure_bubble(replica_rows(bx, grid, coord.dp), replica_rows(by, grid, coord.dp))
    )
    step_seconds = max(world.allgather_json(stats["simulated_seconds"]))
    log("memory per rank at peak, MB (theory: fp32 Adam, 4 + 4 + 8 bytes per parameter held)")
    keys = ("parameters", "gradients", "optimizer_states", "activations", "peak")
    log(f"  {'rank':<5}{'(dp,pp,tp)':<12}" + "".join(f"{k:>18}" for k in keys))
    for r, (mem, th) in enumerate(zip(per_rank, theory)):
        c = grid.coords(r)
        cells = "".join(
            f"{mem[k] / 1e6:>9.4f} [{th[k] / 1e6:.4f}]" if k in th else f"{mem[k] / 1e6:>18.4f}"
            for k in keys
        )
        log(f"  {r:<5}{str((c.dp, c.pp, c.tp)):<12}{cells}")
    log("bytes sent per rank in the last step, by axis (formula in brackets)")
    for r, (a, t) in enumerate(zip(axes, theory_axes)):
        cells = "  ".join(
            f"{k} {a[k]:>9,} [{t[k]:>11,.0f}]" for k in ("dp", "tp", "pp", "embedding")
        )
        log(f"  rank {r}: {cells}  norm {a['model_parallel']} | total {sent[r]:,}")
    if grid.pp > 1:
        first_of_stage = [grid.rank_of(0, s, 0) for s in range(grid.pp)]
        log(bubble_table([bubbles[r] for r in first_of_stage], [free[r] for r in first_of_stage]))
    log(
        f"simulated step on {args.profile}: {1e3 * step_seconds:.3f} ms (slowest rank); this "
        f"machine: {elapsed / args.steps:.3f} s/step wall"
    )
    rank_tps = args.batch_size * args.block_size / world.size / max(step_seconds, 1e-30)
    sim_mfu = rank_tps * flops_per_token / gpu_peak
    log(
        f"MFU per rank = model FLOPs of the step / world / step time / peak = "
        f"{step_flops:,.0f} / {world.size} / {1e3 * step_seconds:.3f} ms / "
        f"{gpu_peak / 1e12:g} TFLOP/s "
        f"({args.profile} {dtype_name(strategy.precision.compute_dtype)}) = "
        f"{100 * sim_mfu:.2f}% ({flops_per_token:,.0f} model FLOPs per token, 6N + 12·L·H·Q·T)"
    )
    report.update(
        {
            "tokens_per_second": args.steps
            * args.batch_size
            * args.block_size
            / max(elapsed, 1e-9),
            "memory": {"per_rank": per_rank, "theory": theory[0], "theory_per_rank": theory},
            "comm": {
                "bytes_per_step": sent,
                "theory_bytes_per_step": [sum(t.values()) for t in theory_axes],
                "bytes_by_axis": axes,
                "theory_bytes_by_axis": theory_axes,
            },
            "flops_per_token": flops_per_token,
            "simulated": {
                "step_seconds": step_seconds,
                "profile": args.profile,
                "timeline": stats["timeline"],
                "peak_flops": gpu_peak,
                "tokens_per_second_per_rank": rank_tps,
                "mfu": sim_mfu,
            },
            "bubble": {"per_rank": bubbles, "free_links_per_rank": free},
        }
    )
    full = strategy.full_state_dict()
    if world.rank == 0 and args.sample_tokens > 0:
        single, _ = build_model(args, tok.vocab_size)
        single.load_state_dict(full)
        prompt = np.array([tok.encode("def ")], dtype=np.int64)
        out = single.generate(
            prompt, args.sample_tokens, do_sample=True, temperature=0.8, top_k=40, seed=args.seed
        )
        report["sample"] = tok.decode(out[0].tolist())
        log("---- sample (the gathered single-process GPT) ----\n" + report["sample"])
    if world.rank == 0:
        common.write_report(args.report, report)
    strategy.close()
    return report


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
