"""Quantize a trained GPT: bytes, loss and speed per format; then PTQ vs QAT at 4-bit levels.

    python examples/quantize.py                                # trains a small GPT first
    python examples/quantize.py --checkpoint runs/gpt.ckpt.npz # a model from train_gpt.py
    python examples/quantize.py --steps 50 --qat-steps 20 --report runs/quantize.json

Part 1 — one trained model, stored and run eight ways, each evaluated on the same validation
batches (no gradients):

    fp32 / bf16 / fp16      the model's parameters in that format (`model.to(dtype)`); half
                            formats are emulated (fp32 compute, rounded results), so their
                            tokens/s measure the emulation, not half-precision hardware
    int8 weight-only        Linear weights int8 (per tensor / per output channel), dequantized
                            before a float matmul: saves bytes, not arithmetic
    int8 dynamic            weights and each call's activations int8, int8 × int8 → int32
    LLM.int8()              vector-wise int8, activation columns with |x| ≥ 6 kept in float

(tinyllm/precision/model_quant.py: embeddings, LayerNorms and the tied lm_head stay float.)
Columns: bytes the model stores, bytes per parameter, validation loss, perplexity e^loss, the
loss change against fp32, and forward tokens per second — of wall time, and of this process's
CPU time (comparable across rows when other processes share the machine).

Part 2 — quantization-aware common. First a sweep: post-training quantization of the Linear
weights to 8, 4, 3 and 2 bits' worth of levels, per tensor, shows where PTQ starts to cost loss
(a small model trained briefly shrugs off int8 and even 4 bits). Then, at --qat-bits (default 2:
levels [−2, 1], aggressive on purpose so that the loss is visible), PTQ is compared with QAT:
the float model fine-tuned for --qat-steps with fake-quantized weights (straight-through
gradients), then converted to the same integer weights. A control fine-tunes the fp32 model for
the same steps, so that QAT's gain is not mistaken for extra training:

    recovered = 1 − (QAT − control) / (PTQ − fp32)

Both fine-tunings print tokens/s and MFU (tokens/s × the float model's 6N + 12·L·H·Q·T FLOPs
per token / this machine's measured fp32 matmul peak) as they go, and report them.
"""

from __future__ import annotations

import copy
import math
import os
import time

import common
import flags
import numpy as np

import tinyllm
from tinyllm import no_grad
from tinyllm.checkpoint import load_checkpoint
from tinyllm.data import ByteLevelBPE, get_batch, load_corpus, tokenize_corpus
from tinyllm.models import GPT, GPTConfig
from tinyllm.optim import AdamW, clip_grad_norm_
from tinyllm.precision import convert_qat, model_nbytes, prepare_qat, quantize_model
from tinyllm.precision.model_quant import QuantizedLinearModule
from tinyllm.precision.qlinear import outlier_columns


def build_parser():
    p = flags.parser(__doc__)
    common.add_common_args(p, steps=300, batch_size=16, lr=3e-3)
    common.add_model_args(p, n_layer=2, n_head=4, n_embd=128, block_size=128, vocab_size=1024)
    p.add_argument(
        "--checkpoint",
        type=flags.readable_file,
        default=None,
        help="load this checkpoint (from examples/train_gpt.py) instead of training; the "
        "model-size flags then come from it (default: train one here)",
    )
    p.add_argument(
        "--save",
        type=flags.writable_file,
        default=os.path.join("runs", "quantize-base.ckpt.npz"),
        help="where the model trained here is saved",
    )
    p.add_argument(
        "--eval-batches",
        type=flags.positive_int,
        default=8,
        help="validation batches per format",
    )
    p.add_argument(
        "--threshold",
        type=flags.finite_positive_float,
        default=6.0,
        help="LLM.int8() outlier threshold",
    )
    p.add_argument(
        "--qat-bits",
        type=flags.int_in(2, 8),
        default=2,
        help="weight levels 2^bits (stored in int8) for PTQ vs QAT",
    )
    p.add_argument(
        "--qat-steps",
        type=flags.positive_int,
        default=100,
        help="quantization-aware training steps",
    )
    p.add_argument(
        "--qat-lr",
        type=flags.finite_positive_float,
        default=1e-3,
        help="quantization-aware training learning rate",
    )
    return p


def trained_model(args):
    """(model, tokenizer's vocab size, train ids, val ids, training report or None)."""
    if args.checkpoint:
        meta = load_checkpoint(args.checkpoint, restore_rng=False)
        cfg = GPTConfig(**meta["config"])
        model = GPT(cfg)
        load_checkpoint(args.checkpoint, model, restore_rng=False)
        for name in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size"):
            setattr(args, name, getattr(cfg, name))  # batches follow the model, not the flags
        if meta.get("tokenizer") is not None:  # the text is encoded as the model was trained
            tok = ByteLevelBPE.from_bytes(meta["tokenizer"], source=args.checkpoint)
            corpus = load_corpus(args.data, max_bytes=args.data_bytes)
            train_ids, val_ids = tokenize_corpus(corpus, tok)
        else:
            _, train_ids, val_ids = common.prepare_text_data(
                args.data, cfg.vocab_size, args.data_bytes, args.cache_dir
            )
        print(f"loaded {args.checkpoint} (step {meta['step']})")
        return model, train_ids, val_ids, None
    import train_gpt  # examples/train_gpt.py: the same training loop, flags and checkpoint

    argv = [
        f"--{k.replace('_', '-')}={getattr(args, k)}"
        for k in (
            "steps",
            "batch_size",
            "lr",
            "seed",
            "data_bytes",
            "cache_dir",
            "eval_interval",
            "eval_iters",
            "log_interval",
            "weight_decay",
            "grad_clip",
            "n_layer",
            "n_head",
            "n_embd",
            "block_size",
            "vocab_size",
            "dropout",
        )
    ]
    argv += [f"--checkpoint={args.save}", "--sample-tokens=0"]
    if args.data:
        argv.append(f"--data={args.data}")
    report = train_gpt.main(argv)
    args.checkpoint = args.save
    model, train_ids, val_ids, _ = trained_model(args)
    return model, train_ids, val_ids, report


def evaluate(model, batches):
    """(mean validation loss, forward tokens per second, tokens per CPU-second) over fixed
    batches, no gradients. CPU time (all of this process's threads) compares formats fairly on
    a shared machine, where wall time mostly measures the other processes."""
    model.eval()
    losses, tokens = [], 0
    with no_grad():
        model(batches[0][0][:1, :8])  # warm-up: numba compiles (or loads) its kernels here
    t0, cpu0 = time.perf_counter(), time.process_time()
    with no_grad():
        for x, y in batches:
            _, loss = model(x, y)
            losses.append(loss.item())
            tokens += x.size
    return (
        float(np.mean(losses)),
        tokens / (time.perf_counter() - t0),
        tokens / (time.process_time() - cpu0),
    )


def outlier_fraction(model_q, x, threshold):
    """Fraction of input feature columns that LLM.int8() keeps in float, averaged over the
    quantized layers, for one batch (each layer's input is looked at as it runs)."""
    seen = []
    layers = [m for m in model_q.modules() if isinstance(m, QuantizedLinearModule)]
    for m in layers:

        def probe(inp, m=m):
            seen.append(outlier_columns(inp.numpy().reshape(-1, m.in_features), threshold).mean())
            return QuantizedLinearModule.forward(m, inp)

        m.forward = probe  # an instance attribute shadows the method
    try:
        with no_grad():
            model_q(x)
    finally:
        for m in layers:
            del m.forward
    return float(np.mean(seen)) if seen else 0.0


def fine_tune(model, train_ids, steps, lr, args, seed, label, flops_per_token, peak):
    """AdamW on `model` for `steps` batches (fixed seed), constant lr, with a progress line
    every --log-interval steps; → (losses, tokens per second).

    Its MFU counts the model FLOPs of the float GPT (6N + 12·L·H·Q·T per token): the fake
    quantization QAT adds is work the hardware does, not model FLOPs (PaLM appendix B)."""
    opt = AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    rng = np.random.default_rng(seed)
    model.train()
    losses, meter, t0 = [], common.Throughput(flops_per_token, peak), time.perf_counter()
    for step in range(steps):
        x, y = get_batch(train_ids, args.batch_size, args.block_size, rng)
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        losses.append(loss.item())
        meter.add(x.size)
        if step % args.log_interval == 0 or step == steps - 1:
            tps, mfu = meter.read()
            print(
                f"  [{label}] step {step:4d} | loss {losses[-1]:.4f} | {tps:7.0f} tok/s | "
                f"MFU {100 * mfu:5.1f}%",
                flush=True,
            )
    return losses, steps * args.batch_size * args.block_size / max(time.perf_counter() - t0, 1e-9)


def main(argv=None):
    args = build_parser().parse_args(argv)
    tinyllm.manual_seed(args.seed)
    model, train_ids, val_ids, train_report = trained_model(args)
    cfg = model.config
    n_params = model.num_parameters()
    rng = np.random.default_rng(args.seed + 1)
    batches = [
        get_batch(val_ids, args.batch_size, cfg.block_size, rng) for _ in range(args.eval_batches)
    ]

    # ---- part 1: the table ----------------------------------------------------------------
    t = args.threshold
    formats = {
        "fp32": lambda: model,
        "bf16": lambda: copy.deepcopy(model).to(tinyllm.bfloat16),
        "fp16": lambda: copy.deepcopy(model).to(tinyllm.float16),
        "int8 weight-only, per-tensor": lambda: quantize_model(
            model, "weight_only", per_channel=False
        ),
        "int8 weight-only, per-channel": lambda: quantize_model(model, "weight_only"),
        "int8 dynamic, per-tensor": lambda: quantize_model(model, "dynamic", per_channel=False),
        "int8 dynamic, per-channel": lambda: quantize_model(model, "dynamic"),
        f"LLM.int8() (threshold {t:g})": lambda: quantize_model(model, "llm_int8", threshold=t),
    }
    rows = []
    print(
        f"\nGPT {cfg.n_layer}L {cfg.n_head}H {cfg.n_embd}E block {cfg.block_size} vocab "
        f"{cfg.vocab_size}: {n_params:,} parameters; {args.eval_batches} validation batches "
        f"of {args.batch_size}×{cfg.block_size} tokens"
    )
    print(
        f"{'format':32s} {'bytes':>10s} {'B/param':>8s} {'val loss':>9s} {'ppl':>8s} "
        f"{'Δ loss':>8s} {'tok/s':>8s} {'tok/CPU-s':>9s}"
    )
    for name, make in formats.items():
        m = make()
        loss, tps, tpc = evaluate(m, batches)
        row = {
            "format": name,
            "bytes": model_nbytes(m),
            "bytes_per_param": model_nbytes(m) / n_params,
            "val_loss": loss,
            "perplexity": math.exp(loss),
            "tokens_per_second": tps,
            "tokens_per_cpu_second": tpc,
        }
        row["delta_loss"] = loss - rows[0]["val_loss"] if rows else 0.0
        if name.startswith("LLM.int8"):
            row["outlier_column_fraction"] = outlier_fraction(m, batches[0][0], t)
        rows.append(row)
        print(
            f"{name:32s} {row['bytes']:10,d} {row['bytes_per_param']:8.2f} {loss:9.4f} "
            f"{row['perplexity']:8.2f} {row['delta_loss']:+8.4f} {tps:8.0f} {tpc:9.0f}",
            flush=True,
        )
    frac = rows[-1].get("outlier_column_fraction", 0.0)
    print(
        f"(LLM.int8(): {100 * frac:.2f}% of input feature columns had |x| ≥ {t:g} and ran in "
        f"float. Embeddings, LayerNorms and the tied lm_head stay fp32 in the int8 rows.)"
    )

    # ---- part 2: PTQ sweep, then PTQ vs QAT ---------------------------------------------------
    base_loss = rows[0]["val_loss"]
    print("\nPTQ of the Linear weights to fewer levels (per-tensor symmetric, weight-only):")
    sweep = {}
    for bits in sorted({8, 4, 3, 2, args.qat_bits}, reverse=True):
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        sweep[bits], _, _ = evaluate(
            quantize_model(model, "weight_only", per_channel=False, quant_min=lo, quant_max=hi),
            batches,
        )
        print(
            f"  {bits}-bit levels [{lo}, {hi}]: val loss {sweep[bits]:.4f}   Δ vs fp32 "
            f"{sweep[bits] - base_loss:+.4f}"
        )
    qmax = 2 ** (args.qat_bits - 1) - 1
    qmin = -qmax - 1
    scheme = f"{args.qat_bits}-bit levels [{qmin}, {qmax}], per-tensor symmetric weights"
    print(f"\nPTQ vs QAT, {scheme}, {args.qat_steps} fine-tuning steps at lr {args.qat_lr:g}:")
    ptq_loss = sweep[args.qat_bits]
    # MFU of the fine-tuning: tokens/s × model FLOPs per token / this machine's fp32 peak
    from tinyllm.accounting import measure_matmul_peak, palm_flops_per_token_for

    peak = measure_matmul_peak(np.float32, n=512, repeats=3)
    flops_per_token = palm_flops_per_token_for(cfg, args.block_size)
    print(
        f"  model FLOPs per token {flops_per_token:,.0f} (6N + 12·L·H·Q·T); measured fp32 "
        f"matmul peak {peak / 1e9:.1f} GFLOP/s"
    )
    qat = prepare_qat(model, quant_min=qmin, quant_max=qmax)
    qat_train, qat_tps = fine_tune(
        qat,
        train_ids,
        args.qat_steps,
        args.qat_lr,
        args,
        args.seed + 2,
        "QAT",
        flops_per_token,
        peak,
    )
    qat_loss, _, _ = evaluate(convert_qat(qat), batches)
    control = copy.deepcopy(model)
    control_train, control_tps = fine_tune(
        control,
        train_ids,
        args.qat_steps,
        args.qat_lr,
        args,
        args.seed + 2,
        "control",
        flops_per_token,
        peak,
    )
    qat_mfu, control_mfu = (qat_tps * flops_per_token / peak, control_tps * flops_per_token / peak)
    control_loss, _, _ = evaluate(control, batches)
    control_ptq_loss, _, _ = evaluate(
        quantize_model(control, "weight_only", per_channel=False, quant_min=qmin, quant_max=qmax),
        batches,
    )
    # PTQ's gap is measured from the trained model; QAT's from the float model trained as
    # long (the control), so that the fine-tuning itself is not counted as recovery.
    ptq_gap, qat_gap = ptq_loss - base_loss, qat_loss - control_loss
    recovered = 1 - qat_gap / ptq_gap if ptq_gap > 0 else float("nan")
    qat_rows = [
        ("fp32 (trained)", base_loss),
        (f"PTQ {args.qat_bits}-bit", ptq_loss),
        (f"QAT {args.qat_bits}-bit (converted)", qat_loss),
        ("control: fp32 fine-tuned as long", control_loss),
        (f"control: its PTQ {args.qat_bits}-bit", control_ptq_loss),
    ]
    for name, loss in qat_rows:
        print(f"  {name:36s} val loss {loss:.4f}   Δ vs fp32 {loss - base_loss:+.4f}")
    print(
        f"  PTQ loses {ptq_gap:+.4f} against the trained fp32 model; QAT {qat_gap:+.4f} "
        f"against the fp32 model fine-tuned as long: QAT recovers {100 * recovered:.0f}% "
        f"of PTQ's loss"
    )
    print(
        f"  fine-tuning speed: QAT {qat_tps:.0f} tok/s, MFU {100 * qat_mfu:.1f}%; control "
        f"{control_tps:.0f} tok/s, MFU {100 * control_mfu:.1f}% (fake quantization is not "
        f"model FLOPs)"
    )

    report = {
        "params": n_params,
        "config": cfg.to_dict(),
        "table": rows,
        "ptq_sweep": {str(b): v for b, v in sweep.items()},
        "qat": {
            "scheme": scheme,
            "steps": args.qat_steps,
            "lr": args.qat_lr,
            "fp32_loss": base_loss,
            "ptq_loss": ptq_loss,
            "qat_loss": qat_loss,
            "ptq_gap": ptq_gap,
            "qat_gap": qat_gap,
            "control_fp32_loss": control_loss,
            "control_ptq_loss": control_ptq_loss,
            "recovered_fraction": recovered,
            "qat_train_losses": qat_train,
            "control_train_losses": control_train,
            "flops_per_token": flops_per_token,
            "peak_flops": peak,
            "tokens_per_second": qat_tps,
            "mfu": qat_mfu,
            "control_tokens_per_second": control_tps,
            "control_mfu": control_mfu,
        },
        "losses": [] if train_report is None else train_report["losses"],
        "val_losses": [] if train_report is None else train_report["val_losses"],
        "tokens_per_second": rows[0]["tokens_per_second"],
    }
    common.write_report(args.report, report)
    return report


if __name__ == "__main__":
    main()
