"""Mixed-precision training of a small GPT: fp32 vs bf16 vs fp16, same seed, same batches.

    python examples/mixed_precision.py                          # fp32, bf16, fp16: a few minutes
    python examples/mixed_precision.py --formats fp32,bf16,bf16-nomaster --steps 200
    python examples/mixed_precision.py --seeds 3                # is a gap more than noise?
    python examples/mixed_precision.py --steps 20 --report runs/mixed.json

Each format trains the same GPT (same initialization, same batches, same learning-rate
schedule) and is evaluated on the same validation batches:

    fp32            plain AdamW on float32 weights
    bf16 / fp16     the model's weights, activations and gradients in bf16 / fp16 (emulated:
                    every op computes in fp32 and rounds, tinyllm/dtypes.py); AdamW
                    updates fp32 master weights (MixedPrecisionOptimizer); fp16 adds dynamic
                    loss scaling (GradScaler: 2^16, halve and skip on overflow, ×2 after 2000
                    clean steps); the loss is computed on float32 logits
    bf16-nomaster   the ablation: bf16 without master weights (updates applied to the bf16
    fp16-nomaster   weights and rounded straight back)

It prints the validation-loss gap of each format to fp32 and the bytes per parameter of each
layout, measured by registering the arrays that live between steps in a memory ledger
(sim.device.MemoryLedger): the model's weights (parameters), their gradients (gradients), and
the fp32 masters with Adam's m and v (optimizer_states). The ZeRO paper's mixed-precision Adam
layout is 2 + 2 + K with K = 12; fp32 training is 4 + 4 + 8. The same 16 bytes: with Adam,
mixed precision does not shrink the model states — it shrinks activations (here emulated,
so not measured: the engine saves fp32 copies for backward) and communication.

Progress lines and the table carry MFU: tokens/s × PaLM's model FLOPs per token / this
machine's fp32 matmul peak (tinyllm/accounting/mfu.py). For the half formats it measures the
emulation against an fp32 peak — how much the rounding costs here, not half-precision hardware.
"""

from __future__ import annotations

import time

import common
import flags
import numpy as np

import tinyllm
from tinyllm import ops
from tinyllm.accounting import measure_matmul_peak, palm_flops_per_token_for
from tinyllm.data import get_batch
from tinyllm.models import GPT
from tinyllm.optim import AdamW, clip_grad_norm_, param_groups_for_weight_decay
from tinyllm.precision import GradScaler, MixedPrecisionOptimizer
from tinyllm.precision.mixed import state_arrays

FORMATS = {  # name → (dtype, master weights, loss scaling)
    "fp32": (None, True, False),
    "bf16": (tinyllm.bfloat16, True, False),
    "fp16": (tinyllm.float16, True, True),
    "bf16-nomaster": (tinyllm.bfloat16, False, False),
    "fp16-nomaster": (tinyllm.float16, False, True),
}
THEORY = {"fp32": (4, 4, 8), "mixed": (2, 2, 12), "nomaster": (2, 2, 8)}  # params, grads, opt


def build_parser():
    p = flags.parser(__doc__)
    common.add_common_args(p, steps=300, batch_size=8, lr=3e-3)
    common.add_model_args(p, n_layer=2, n_head=4, n_embd=64, block_size=64, vocab_size=1024)
    p.add_argument(
        "--formats",
        type=flags.comma_list(str, choices=tuple(FORMATS)),
        default="fp32,bf16,fp16",
        help=f"comma-separated, from {', '.join(FORMATS)}",
    )
    p.add_argument(
        "--init-scale",
        type=flags.finite_positive_float,
        default=2.0**16,
        help="fp16 loss scaler's initial scale",
    )
    p.add_argument(
        "--seeds",
        type=flags.positive_int,
        default=1,
        help="repeat every format with seeds seed, seed+1, …: the gap to fp32 per "
        "seed shows how much of it is run-to-run noise",
    )
    p.set_defaults(eval_interval=100, eval_iters=8, log_interval=50)
    return p


def fp32_loss(model, x, y):
    """(logits, mean cross-entropy computed on float32 logits) — reductions in fp32."""
    logits, _ = model(x)
    b, t, v = logits.shape
    return logits, ops.cross_entropy(logits.float().reshape(b * t, v), y.reshape(-1))


def ledger_bytes(arrays_by_tag: dict, n_params: int) -> dict:
    """Register the arrays in a fresh memory ledger; bytes per parameter per tag."""
    from sim.device import MemoryLedger

    ledger = MemoryLedger()
    for tag, arrays in arrays_by_tag.items():
        for i, a in enumerate(arrays):
            ledger.register(a, tag, f"{tag}[{i}]")
    per = {tag: ledger.current[tag] / n_params for tag in arrays_by_tag}
    per["total"] = sum(per.values())
    return per


def train_one(name, args, cfg, train_ids, val_ids, seed, flops_per_token, peak):
    dtype, masters, loss_scaling = FORMATS[name]
    tinyllm.manual_seed(seed)
    model = GPT(cfg)
    opt = AdamW(
        param_groups_for_weight_decay(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.95)
    )
    if dtype is not None:  # masters from the fp32 initialization, then the model goes half
        opt = MixedPrecisionOptimizer(
            opt,
            scaler=GradScaler(init_scale=args.init_scale) if loss_scaling else None,
            max_grad_norm=args.grad_clip,
            master_weights=masters,
        )
        model.to(dtype)
    data_rng = np.random.default_rng(seed)
    run = {"seed": seed, "losses": [], "val_losses": []}
    t0, cpu0 = time.perf_counter(), time.process_time()
    tokens = 0
    meter = common.Throughput(flops_per_token, peak)
    for step in range(args.steps):
        lr = common.lr_at(step, args)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = get_batch(train_ids, args.batch_size, args.block_size, data_rng)
        opt.zero_grad()
        _, loss = fp32_loss(model, x, y)
        if dtype is None:
            loss.backward()
            clip_grad_norm_(model.parameters(), args.grad_clip)
            opt.step()
        else:
            opt.backward(loss)
            opt.step()
        run["losses"].append(loss.item())
        tokens += x.size
        meter.add(x.size)
        if step % args.log_interval == 0 or step == args.steps - 1:
            tps, mfu = meter.read()
            extra = f" | {tps:6.0f} tok/s | MFU {100 * mfu:5.1f}%"
            if loss_scaling:
                extra += f" | scale {opt.scaler.get_scale():.0f} | skipped {opt.skipped_steps}"
            print(f"{name:>13s} step {step:4d} | loss {loss.item():.4f}{extra}", flush=True)
        if (step + 1) % args.eval_interval == 0 or step == args.steps - 1:
            model.eval()
            val = common.estimate_loss(
                lambda a, b: fp32_loss(model, a, b),
                val_ids,
                args.batch_size,
                args.block_size,
                args.eval_iters,
                np.random.default_rng(seed + 1),
            )
            model.train()
            run["val_losses"].append([step + 1, val])
    run["seconds"] = time.perf_counter() - t0
    run["tokens_per_second"] = tokens / run["seconds"]
    # CPU time of all this process's threads: on a shared machine, wall time mostly measures
    # the other processes; CPU time compares the formats' work (evaluations included).
    run["tokens_per_cpu_second"] = tokens / (time.process_time() - cpu0)
    run["mfu"] = run["tokens_per_second"] * flops_per_token / peak
    # Between steps (gradients still present after the last step): the persistent layout.
    run["bytes_per_param"] = ledger_bytes(
        state_arrays(model.parameters(), opt), model.num_parameters()
    )
    run["final_val_loss"] = run["val_losses"][-1][1]
    if loss_scaling:
        run["skipped_steps"] = opt.skipped_steps
        run["final_loss_scale"] = opt.scaler.get_scale()
    return run


def main(argv=None):
    args = build_parser().parse_args(argv)
    names = args.formats
    tok, train_ids, val_ids = common.prepare_text_data(
        args.data, args.vocab_size, args.data_bytes, args.cache_dir
    )
    cfg = common.gpt_config(args, tok.vocab_size)
    n_params = GPT(cfg).num_parameters()
    peak = measure_matmul_peak(np.float32, n=512, repeats=3)
    flops_per_token = palm_flops_per_token_for(cfg, args.block_size)
    print(
        f"GPT {cfg.n_layer}L {cfg.n_head}H {cfg.n_embd}E block {cfg.block_size} vocab "
        f"{cfg.vocab_size}: {n_params:,} parameters; {args.steps} steps of "
        f"{args.batch_size}×{args.block_size} tokens per format; measured fp32 matmul peak "
        f"{peak / 1e9:.1f} GFLOP/s"
    )
    seeds = [args.seed + i for i in range(args.seeds)]
    all_runs = {
        name: [
            train_one(name, args, cfg, train_ids, val_ids, s, flops_per_token, peak) for s in seeds
        ]
        for name in names
    }
    runs = {name: rs[0] for name, rs in all_runs.items()}  # the table: the first seed

    base = runs.get("fp32")
    print(
        f"\n{'format':>13s} {'val loss':>9s} {'Δ vs fp32':>10s} {'train loss':>11s} "
        f"{'tok/s':>7s} {'tok/CPU-s':>9s} {'MFU':>6s} | bytes/param: {'params':>6s} "
        f"{'grads':>6s} {'optim':>6s} "
        f"{'total':>6s}   theory"
    )
    tail = max(1, min(50, args.steps // 5))
    for name, run in runs.items():
        gap = "" if base is None else f"{run['final_val_loss'] - base['final_val_loss']:+10.4f}"
        run["val_gap_vs_fp32"] = (
            None if base is None else run["final_val_loss"] - base["final_val_loss"]
        )
        b = run["bytes_per_param"]
        kind = "fp32" if FORMATS[name][0] is None else ("mixed" if FORMATS[name][1] else "nomaster")
        th = THEORY[kind]
        print(
            f"{name:>13s} {run['final_val_loss']:9.4f} {gap:>10s} "
            f"{np.mean(run['losses'][-tail:]):11.4f} {run['tokens_per_second']:7.0f} "
            f"{run['tokens_per_cpu_second']:9.0f} {100 * run['mfu']:5.1f}% | "
            f"{'':13s}{b['parameters']:6.2f} {b['gradients']:6.2f} "
            f"{b['optimizer_states']:6.2f} {b['total']:6.2f}   "
            f"{th[0]}+{th[1]}+{th[2]}={sum(th)}"
        )
    print(
        f"(train loss: mean of the last {tail} steps. tok/CPU-s: tokens per second of this "
        f"process's CPU time, comparable across rows on a shared machine. Half formats are "
        f"emulated — fp32 compute + rounding — so their speed measures the emulation, not "
        f"hardware.)"
    )
    if len(seeds) > 1 and "fp32" in all_runs:
        print(f"\nvalidation-loss gap to fp32, per seed ({', '.join(map(str, seeds))}):")
        for name, rs in all_runs.items():
            gaps = [r["final_val_loss"] - b["final_val_loss"] for r, b in zip(rs, all_runs["fp32"])]
            for r, g in zip(rs, gaps):
                r["val_gap_vs_fp32"] = g
            print(
                f"{name:>13s}  "
                + "  ".join(f"{g:+.4f}" for g in gaps)
                + f"   mean {np.mean(gaps):+.4f}"
            )
    first = runs[names[0]]
    report = {
        "params": n_params,
        "config": cfg.to_dict(),
        "formats": runs,
        "peak_flops": peak,
        "flops_per_token": flops_per_token,
        "mfu": first["mfu"],
        "seeds": {name: rs for name, rs in all_runs.items()} if len(seeds) > 1 else None,
        "losses": first["losses"],
        "val_losses": first["val_losses"],
        "tokens_per_second": first["tokens_per_second"],
    }
    common.write_report(args.report, report)
    return report


if __name__ == "__main__":
    main()
