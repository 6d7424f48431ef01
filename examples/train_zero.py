"""The main job: train a small GPT with ZeRO on simulated GPUs (one MPI rank = one GPU).

    mpirun -n 4 python examples/train_zero.py                    # ZeRO-3 on 4 ranks, a few minutes
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

import sim  # first: it sets the BLAS/numba thread counts before NumPy loads

# isort: split

import argparse
import os
import sys
import time

import common
import compare
import flags
import numpy as np
import zero_loop
from mpi4py import MPI

from sim.checkpoint import load_sharded, save_sharded
from sim.cost import PROFILES
from sim.device import format_bytes_per_parameter
from tinyllm.checkpoint import new_run_id


def build_parser():
    p = flags.parser(__doc__)
    common.add_common_args(p, steps=300, batch_size=16, lr=3e-3)
    common.add_model_args(p, n_layer=4, n_head=4, n_embd=128, block_size=64, vocab_size=512)
    p.set_defaults(data_bytes=1_000_000, eval_interval=100, log_interval=20)
    g = p.add_argument_group("parallelism")
    g.add_argument(
        "--stage", type=int, choices=(0, 1, 2, 3), default=3, help="ZeRO stage (0 = DDP)"
    )
    g.add_argument(
        "--offload",
        choices=("none", "optimizer", "params"),
        default="none",
        help="ZeRO-Offload: keep the optimizer states (and the parameters) on the host",
    )
    g.add_argument(
        "--sharding-factor",
        type=flags.positive_int,
        default=None,
        help="shard within groups of F ranks, replicate across groups (default: all ranks)",
    )
    g.add_argument(
        "--reshard-after-forward",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ZeRO-3: free gathered parameters after forward, gather again in backward",
    )
    g.add_argument("--prefetch", action="store_true", help="ZeRO-3: gather the next unit early")
    g.add_argument("--naive-ddp", action="store_true", help="stage 0: one all-reduce per parameter")
    g.add_argument(
        "--bucket-mb", type=flags.finite_positive_float, default=25.0, help="DDP bucket size, MB"
    )
    g.add_argument(
        "--accum-steps",
        type=flags.positive_int,
        default=1,
        help="gradient accumulation micro-steps",
    )
    g.add_argument(
        "--device-memory",
        type=flags.byte_count,
        default=None,
        help="simulated device capacity (e.g. 12MB; default: the profile's)",
    )
    g.add_argument(
        "--profile", choices=sorted(PROFILES), default="A100-80GB", help="cost-model GPU"
    )
    g.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        default="float32",
        help="model precision: half formats train with fp32 master weights in the "
        "optimizer (ZeRO's K = 12 layout); float16 adds dynamic loss scaling",
    )
    g.add_argument(
        "--backend",
        choices=("explicit", "mpi"),
        default=None,
        help="collectives: explicit point-to-point (the default) or MPI's built-in",
    )
    g.add_argument(
        "--compare",
        action="store_true",
        help="run DDP and every stage/offload for a few steps; print one table",
    )
    g.add_argument(
        "--compare-steps",
        type=flags.positive_int,
        default=3,
        help="--compare: steps per strategy",
    )
    g.add_argument(
        "--checkpoint-dir",
        type=flags.writable_dir,
        default=os.path.join("runs", "zero-ckpt"),
        help="where the sharded checkpoint is saved (and, with --resume, read)",
    )
    g.add_argument("--resume", action="store_true", help="continue from --checkpoint-dir")
    g.add_argument(
        "--stop-at",
        type=flags.positive_int,
        default=None,
        help="stop early (and checkpoint) here (default: run all --steps)",
    )
    g.add_argument(
        "--sample-tokens",
        type=flags.nonnegative_int,
        default=120,
        help="tokens of the sample printed at the end (0: none)",
    )
    p.add_check(parallel_flags)
    return p


def parallel_flags(args) -> str | None:
    """The cross-flag checks of parallelism, which need the world size: mpirun has started
    every rank and MPI knows how many there are without any collective."""
    world_size = MPI.COMM_WORLD.Get_size()
    split = world_size * args.accum_steps
    if args.batch_size % split:
        return (
            f"--batch-size {args.batch_size} must divide by world size {world_size} × "
            f"--accum-steps {args.accum_steps} = {split}"
        )
    if args.sharding_factor is not None and world_size % args.sharding_factor:
        return f"--sharding-factor {args.sharding_factor} must divide the world size {world_size}"
    if args.resume and not os.path.isfile(os.path.join(args.checkpoint_dir, "index.json")):
        return f"--resume: --checkpoint-dir {args.checkpoint_dir} holds no index.json"
    if args.compare:
        return None
    if args.stage == 0 and args.offload != "none":
        return f"--offload {args.offload} needs a ZeRO stage (--stage 1, 2 or 3)"
    if args.stage != 3 and (args.prefetch or not args.reshard_after_forward):
        return (
            "--prefetch and --no-reshard-after-forward need --stage 3: only ZeRO-3 "
            "gathers and frees parameters"
        )
    if args.naive_ddp and args.stage != 0:
        return "--naive-ddp needs --stage 0 (DDP)"
    return None


def main(argv=None, **defaults):
    parser = build_parser()
    parser.set_defaults(**defaults)
    args = parser.parse_args(argv)
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
        rows, table = compare.compare(world, args, tok, train_ids)
        log(table)
        if world.rank == 0:
            common.write_report(args.report, {"world_size": world.size, "compare": rows})
        return rows

    model, cfg = zero_loop.build_model(args, tok.vocab_size)
    strategy = zero_loop.make_strategy(
        model,
        world,
        args,
        args.stage,
        args.offload,
        args.reshard_after_forward,
        args.prefetch,
        args.sharding_factor,
    )
    label = zero_loop.strategy_label(
        args.stage,
        args.offload,
        args.reshard_after_forward,
        args.prefetch,
        args.sharding_factor,
        world,
        naive=args.naive_ddp,
    )
    if args.dtype != "float32":
        label += f" ({args.dtype})"
    data_rng = np.random.default_rng(args.seed)
    start = 0
    report = {
        "world_size": world.size,
        "strategy": label,
        "params": strategy.n_params,
        "config": cfg.to_dict(),
        "losses": [],
        "val_losses": [],
    }
    if args.resume:
        index = load_sharded(strategy, args.checkpoint_dir, tokenizer=tok)
        start = index["step"]
        data_rng.bit_generator.state = index["extra"]["data_rng"]
        report = index["extra"]["report"]
        log(
            f"resumed from {args.checkpoint_dir} at step {start} (saved by "
            f"{index['world_size']} ranks, {index['strategy']})"
        )
    log(
        f"{label} on {world.size} rank(s): GPT {cfg.n_layer}L/{cfg.n_embd}E, "
        f"Ψ = {strategy.n_params:,} parameters; global batch {args.batch_size} × "
        f"{args.block_size} tokens; simulated {args.profile}; first step after "
        f"{time.perf_counter() - t0:.1f} s"
    )
    end = args.steps if args.stop_at is None else min(args.steps, args.stop_at)
    t_train = time.perf_counter()
    step = start
    stats = {}
    while step < end:
        chunk_end = min(end, (step // args.eval_interval + 1) * args.eval_interval)
        losses, chunk_stats = zero_loop.train_steps(
            strategy, world, args, train_ids, data_rng, step, chunk_end, log=log
        )
        report["losses"] += losses
        stats = chunk_stats[-1] if chunk_stats else stats  # the last *training* step
        step = chunk_end
        if step % args.eval_interval == 0 or step == args.steps:
            val = zero_loop.evaluate(strategy, world, args, val_ids, args.seed + 1)
            report["val_losses"].append([step, val])
            log(f"step {step:4d} | val loss {val:.4f}")
    elapsed = time.perf_counter() - t_train
    trained = end - start

    # ---- the report: memory and communication beside the formulas ---------------------------
    per_rank = world.allgather_json(strategy.memory_report())
    sent_per_rank = world.allgather_json(stats.get("bytes_sent", 0))
    theory = strategy.theory()
    theory_bytes = strategy.theory_comm_bytes(args.accum_steps)
    layout = (
        f"{args.dtype} model + fp32 masters: K = 12"
        if strategy.precision.mixed
        else "fp32 Adam: K = 8"
    )
    log(
        zero_loop.memory_table(
            per_rank,
            theory,
            f"memory per rank at peak ({label}, Ψ = {strategy.n_params:,}, {layout})",
        )
    )
    log(
        "bytes per parameter on rank 0 beside the course notes' rule of thumb:\n"
        + format_bytes_per_parameter(strategy.device, strategy.n_params)
    )
    log(
        f"bytes sent per rank in the last step: "
        f"{[f'{b / 1e6:.3f} MB' for b in sent_per_rank]}; the paper's volume: "
        f"{theory_bytes / 1e6:.3f} MB"
    )
    if trained:
        log(
            f"simulated step on {args.profile}: {1e3 * stats['simulated_seconds']:.3f} ms "
            f"(compute {1e3 * stats['timeline']['compute_seconds']:.3f} ms, communication "
            f"{1e3 * stats['timeline']['comm_seconds']:.3f} ms of which exposed "
            f"{1e3 * stats['timeline']['exposed_comm_seconds']:.3f} ms); this machine: "
            f"{elapsed / trained:.3f} s/step wall"
        )
    from tinyllm.accounting import palm_flops_per_token_for

    tokens_per_second = trained * args.batch_size * args.block_size / max(elapsed, 1e-9)
    report.update(
        {
            "params": strategy.n_params,
            "tokens_per_second": tokens_per_second,
            "mfu": tokens_per_second
            * palm_flops_per_token_for(cfg, args.block_size)
            / args.machine_peak,
            "machine_peak_flops": args.machine_peak,
            "memory": {"per_rank": per_rank, "theory": theory},
            "comm": {"bytes_per_step": sent_per_rank, "theory_bytes_per_step": theory_bytes},
            "simulated": {
                "step_seconds": stats.get("simulated_seconds"),
                "profile": args.profile,
                "mfu": stats.get("simulated_mfu"),
                "timeline": stats.get("timeline"),
            },
        }
    )
    save_sharded(
        strategy,
        args.checkpoint_dir,
        end,
        extra={"data_rng": data_rng.bit_generator.state, "report": report},
        tokenizer=tok,  # the checkpoint carries its tokenizer and config: self-contained
        config=cfg.to_dict(),
        run_id=report.setdefault("run_id", new_run_id()),
    )
    log(f"sharded checkpoint saved to {args.checkpoint_dir}")
    if end == args.steps and args.sample_tokens > 0:
        prompt = np.array([tok.encode("def ")], dtype=np.int64)
        out = model.generate(
            prompt, args.sample_tokens, do_sample=True, temperature=0.8, top_k=40, seed=args.seed
        )
        report["sample"] = tok.decode(out[0].tolist())
        log("---- sample ----\n" + report["sample"])
    if world.rank == 0:
        common.write_report(args.report, report)
    strategy.close()
    return report


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
