"""Pre-train a small T5-style encoder-decoder by span corruption, then fine-tune it on a
text-to-text task, both on the Python standard library.

    python examples/train_t5.py                       # a few minutes on 2 cores
    python examples/train_t5.py --steps 50 --report runs/t5.json

Part 1, pre-training (tinyllm/models/t5.py). A random window of `--block-size` tokens loses 15%
of its tokens in spans of mean length 3 (tinyllm.data.get_span_corruption_batch); the encoder
reads what is left, each span replaced by one sentinel, and the decoder must write the sentinels
followed by the tokens they hid:

    input   def f(x):\\n    return <extra_id_0> + 1\\n\\nclass <extra_id_1>
    target  <extra_id_0> x * 2 <extra_id_1> Point:\\n <extra_id_2>

The loss is the decoder's cross-entropy on the target (teacher forcing: the decoder input is
the target shifted right, starting from [PAD]). A checkpoint is saved and `--resume` continues
with the same losses as an uninterrupted run. At the end the model fills in a validation
window's spans with `T5.generate`.

Part 2, fine-tuning on a task made from the corpus (examples/t5_signature_task.py): *list a
function's parameters* — input a one-line `def`, target the names of its parameters in order as
Python's parser reads them — decoded greedily with the KV cache and scored by exact match.
"""

from __future__ import annotations

import os
import time

import common
import flags
import numpy as np
from t5_signature_task import signature_task

import tinyllm
from tinyllm.accounting import measure_matmul_peak
from tinyllm.data import (
    ENDOFTEXT,
    PAD,
    get_span_corruption_batch,
    sentinel,
    standard_special_tokens,
)
from tinyllm.engine import no_grad
from tinyllm.models import T5, T5Config
from tinyllm.optim import AdamW, clip_grad_norm_, param_groups_for_weight_decay

N_SENTINELS = 100


def build_parser():
    p = flags.parser(__doc__)
    common.add_common_args(p, steps=300, batch_size=16, lr=2e-3)
    common.add_model_args(
        p,
        n_layer=2,
        n_head=4,
        n_embd=128,
        block_size=64,
        vocab_size=1024,
        n_special=len(standard_special_tokens(N_SENTINELS)),
    )
    p.add_argument(
        "--n-decoder-layer",
        type=flags.positive_int,
        default=None,
        help="decoder blocks (default: --n-layer)",
    )
    p.add_argument(
        "--noise-density",
        type=flags.float_in(0.0, 1.0, low_open=True, high_open=True),
        default=0.15,
        help="fraction of the tokens corrupted",
    )
    p.add_argument(
        "--mean-span",
        type=flags.finite_positive_float,
        default=3.0,
        help="mean noise span length in tokens",
    )
    p.add_argument(
        "--checkpoint",
        type=flags.writable_file,
        default=os.path.join("runs", "t5.ckpt.npz"),
        help="where to save the pre-trained checkpoint (with --resume: and read)",
    )
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument(
        "--stop-at",
        type=flags.positive_int,
        default=None,
        help="stop pre-training (and checkpoint) after this many steps of --steps; "
        "the fine-tuning part then does not run (default: run all --steps)",
    )
    g = p.add_argument_group("fine-tuning: list a function's parameters")
    g.add_argument(
        "--ft-steps", type=flags.nonnegative_int, default=150, help="fine-tuning steps (0: skip)"
    )
    g.add_argument("--ft-batch-size", type=flags.positive_int, default=32, help="fine-tuning batch")
    g.add_argument(
        "--ft-lr", type=flags.finite_positive_float, default=1e-3, help="fine-tuning learning rate"
    )
    g.add_argument(
        "--ft-input-len",
        type=flags.positive_int,
        default=48,
        help="longest def line in tokens (longer ones are left out)",
    )
    g.add_argument(
        "--ft-target-len",
        type=flags.positive_int,
        default=24,
        help="longest target in tokens, <|endoftext|> included",
    )
    g.add_argument(
        "--ft-eval-examples", type=flags.positive_int, default=200, help="test lines to decode"
    )
    p.add_check(common.resume_needs_checkpoint)

    @p.add_check
    def lengths_fit(args):
        if args.ft_input_len > args.block_size:
            return (
                f"--ft-input-len {args.ft_input_len} must not exceed --block-size {args.block_size}"
            )
        if args.ft_target_len >= args.block_size:  # decoding adds the start token
            return (
                f"--ft-target-len {args.ft_target_len} must be below --block-size "
                f"{args.block_size} (the decoder also holds its start token)"
            )
        return None

    return p


# ---- part 1: span corruption ----------------------------------------------------------------


def t5_flops_per_step(model, batch: int, src_len: int, tgt_len: int) -> float:
    """Model FLOPs of one training step, PaLM's accounting per side: 6 FLOPs per weight per
    token, plus 12·L·E·(keys attended) per token for attention. Encoder tokens meet the encoder
    weights and S keys; decoder tokens meet the decoder weights, the tied output layer (V·E),
    T self-attention keys and S cross-attention keys. Embedding lookups cost nothing."""
    c = model.config
    n_enc = sum(p.numel() for p in model.encoder.parameters())
    n_dec = sum(p.numel() for p in model.decoder.parameters()) + model.shared.weight.numel()
    enc = 6 * n_enc + 12 * c.n_layer * c.n_embd * src_len
    dec = 6 * n_dec + 12 * c.n_decoder_layer * c.n_embd * (tgt_len + src_len)
    return batch * (src_len * enc + tgt_len * dec)


def evaluate_span(model, ids, args, rng, sentinels) -> float:
    losses = []
    model.eval()
    with no_grad():
        for _ in range(args.eval_iters):
            x, y = span_batch(ids, args.batch_size, args, rng, sentinels)
            losses.append(model(x, labels=y)[1].item())
    model.train()
    return float(np.mean(losses))


def span_batch(ids, batch_size, args, rng, sentinels):
    return get_span_corruption_batch(
        ids,
        batch_size,
        args.block_size,
        rng,
        sentinel_ids=sentinels,
        noise_density=args.noise_density,
        mean_noise_span_length=args.mean_span,
    )


def span_sample(model, tok, ids, args, rng, sentinels) -> dict:
    """Corrupt one validation window and let the model write the missing spans (greedy)."""
    x, y = span_batch(ids, 1, args, rng, sentinels)
    out = model.generate(x, y.shape[1])  # (1, 1 + target length)
    pred = out[0, 1:]
    return {
        "input": tok.decode(x[0].tolist()),
        "target": tok.decode(y[0].tolist()),
        "generated": tok.decode(pred.tolist()),
        "token_accuracy": float(np.mean(pred == y[0])),
    }


# ---- the script ----------------------------------------------------------------------------


def main(argv=None):
    args = build_parser().parse_args(argv)
    t0, cpu0 = time.perf_counter(), time.process_time()
    tinyllm.manual_seed(args.seed)
    tok, train_ids, val_ids = common.prepare_text_data(
        args.data,
        args.vocab_size,
        args.data_bytes,
        args.cache_dir,
        special_tokens=standard_special_tokens(N_SENTINELS),
    )
    pad_id, eos_id = tok.token_to_id(PAD), tok.token_to_id(ENDOFTEXT)
    sentinels = [tok.token_to_id(sentinel(i)) for i in range(N_SENTINELS)]
    cfg = T5Config(
        vocab_size=tok.vocab_size,
        block_size=args.block_size,
        n_layer=args.n_layer,
        n_decoder_layer=args.n_decoder_layer or args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
        dropout=args.dropout,
        pad_token_id=pad_id,
        decoder_start_token_id=pad_id,
    )
    model = T5(cfg)
    opt = AdamW(
        param_groups_for_weight_decay(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.98)
    )
    data_rng = np.random.default_rng(args.seed)
    eval_seed = args.seed + 1
    start = 0
    report = {
        "losses": [],
        "val_losses": [],
        "params": model.num_parameters(),
        "config": cfg.to_dict(),
    }
    if args.resume:
        start, report = common.resume_run(args.checkpoint, model, opt, data_rng, tok)

    # every batch has the same shapes (see tinyllm.data.span_corruption_lengths)
    x0, y0 = span_batch(train_ids, 1, args, np.random.default_rng(0), sentinels)
    src_len, tgt_len = x0.shape[1], y0.shape[1]
    peak = measure_matmul_peak(np.float32, n=512, repeats=3)
    flops_per_step = t5_flops_per_step(model, args.batch_size, src_len, tgt_len)
    tokens_per_step = args.batch_size * (src_len + tgt_len)
    print(
        f"T5 {cfg.n_layer}+{cfg.n_decoder_layer}L {cfg.n_head}H {cfg.n_embd}E vocab "
        f"{cfg.vocab_size}: {model.num_parameters():,} parameters; windows of "
        f"{args.block_size} → inputs {src_len}, targets {tgt_len} tokens; measured fp32 "
        f"matmul peak {peak / 1e9:.1f} GFLOP/s"
    )
    meter = common.Throughput(flops_per_step / tokens_per_step, peak)
    end = args.steps if args.stop_at is None else min(args.steps, args.stop_at)
    t_train, tokens_total = time.perf_counter(), 0
    for step in range(start, end):
        lr = common.lr_at(step, args)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = span_batch(train_ids, args.batch_size, args, data_rng, sentinels)
        _, loss = model(x, labels=y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        report["losses"].append(loss.item())
        meter.add(tokens_per_step)
        tokens_total += tokens_per_step
        if step % args.log_interval == 0 or step == end - 1:
            tps, mfu = meter.read()
            print(
                f"step {step:5d} | loss {loss.item():.4f} | lr {lr:.2e} | {tps:8.0f} tok/s"
                f" | MFU {100 * mfu:5.1f}%",
                flush=True,
            )
        if (step + 1) % args.eval_interval == 0 or step == args.steps - 1:
            val = evaluate_span(model, val_ids, args, np.random.default_rng(eval_seed), sentinels)
            report["val_losses"].append([step + 1, val])
            print(f"step {step + 1:5d} | val loss {val:.4f}", flush=True)
    elapsed = time.perf_counter() - t_train
    if end > start:  # a resumed run that had nothing left to do keeps the earlier figures
        report["tokens_per_second"] = tokens_total / max(elapsed, 1e-9)
        report["mfu"] = report["tokens_per_second"] * flops_per_step / tokens_per_step / peak
    common.save_run(args.checkpoint, model, opt, end, cfg.to_dict(), data_rng, report, tok)
    if end == args.steps:
        sample = span_sample(
            model, tok, val_ids, args, np.random.default_rng(args.seed + 4), sentinels
        )
        report["sample"] = sample
        print("---- fill in the spans (greedy) ----")
        print(
            f"input:     {sample['input']!r}\ntarget:    {sample['target']!r}\n"
            f"generated: {sample['generated']!r}"
        )
        if args.ft_steps > 0:
            report["seq2seq"] = signature_task(args, tok, model, pad_id, eos_id)
            report["exact_match"] = report["seq2seq"]["exact_match"]
    report["time"] = {
        "wall_seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - cpu0,
    }
    common.write_report(args.report, report)
    return report


if __name__ == "__main__":
    main()
