"""Train a small GPT on the Python standard library's source code, in one process.

    python examples/train_gpt.py                      # a few minutes on 2 cores
    python examples/train_gpt.py --steps 50 --report runs/gpt.json

What it shows: next-token prediction (tinyllm/models/gpt.py) trained with AdamW, warmup +
cosine learning rate, gradient clipping; the validation loss falling; MFU against this machine's
measured matmul peak; and at the end a sample that looks like Python. A checkpoint is saved
(tinyllm/checkpoint.py) and `--resume` continues from it with the same losses as an
uninterrupted run.
"""

from __future__ import annotations

import os
import time

import common
import flags
import numpy as np

import tinyllm
from tinyllm.data import get_batch
from tinyllm.models import GPT
from tinyllm.optim import AdamW, clip_grad_norm_, param_groups_for_weight_decay


def build_parser():
    p = flags.parser(__doc__)
    common.add_common_args(p, steps=400, batch_size=16, lr=3e-3)
    common.add_model_args(p, n_layer=4, n_head=4, n_embd=128, block_size=128, vocab_size=1024)
    p.add_argument(
        "--checkpoint",
        type=flags.writable_file,
        default=os.path.join("runs", "gpt.ckpt.npz"),
        help="where to save the final checkpoint (and, with --resume, the one to continue)",
    )
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument(
        "--stop-at",
        type=flags.positive_int,
        default=None,
        help="stop (and checkpoint) after this many steps of the --steps schedule "
        "(default: run all --steps)",
    )
    p.add_argument(
        "--sample-tokens",
        type=flags.nonnegative_int,
        default=200,
        help="tokens of the sample printed at the end (0: none)",
    )
    p.add_check(common.resume_needs_checkpoint)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    tinyllm.manual_seed(args.seed)
    tok, train_ids, val_ids = common.prepare_text_data(
        args.data, args.vocab_size, args.data_bytes, args.cache_dir
    )
    cfg = common.gpt_config(args, tok.vocab_size)
    model = GPT(cfg)
    opt = AdamW(
        param_groups_for_weight_decay(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.95)
    )
    data_rng = np.random.default_rng(args.seed)
    eval_rng_seed = args.seed + 1
    start = 0
    report = {
        "losses": [],
        "val_losses": [],
        "params": model.num_parameters(),
        "config": cfg.to_dict(),
    }
    if args.resume:
        start, report = common.resume_run(args.checkpoint, model, opt, data_rng, tok)

    from tinyllm.accounting import measure_matmul_peak, palm_flops_per_token_for

    peak = measure_matmul_peak(np.float32, n=512, repeats=3)
    flops_per_token = palm_flops_per_token_for(cfg, args.block_size)
    print(
        f"GPT {cfg.n_layer}L {cfg.n_head}H {cfg.n_embd}E block {cfg.block_size} vocab "
        f"{cfg.vocab_size}: {model.num_parameters():,} parameters; measured fp32 matmul "
        f"peak {peak / 1e9:.1f} GFLOP/s"
    )
    meter = common.Throughput(flops_per_token, peak)
    end = args.steps if args.stop_at is None else min(args.steps, args.stop_at)
    t_start = time.perf_counter()
    tokens_total = 0
    for step in range(start, end):
        lr = common.lr_at(step, args)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = get_batch(train_ids, args.batch_size, args.block_size, data_rng)
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        report["losses"].append(loss.item())
        meter.add(x.size)
        tokens_total += x.size
        if step % args.log_interval == 0 or step == end - 1:
            tps, mfu = meter.read()
            print(
                f"step {step:5d} | loss {loss.item():.4f} | lr {lr:.2e} | {tps:8.0f} tok/s"
                f" | MFU {100 * mfu:5.1f}%",
                flush=True,
            )
        if (step + 1) % args.eval_interval == 0 or step == args.steps - 1:
            model.eval()
            val = common.estimate_loss(
                model,
                val_ids,
                args.batch_size,
                args.block_size,
                args.eval_iters,
                np.random.default_rng(eval_rng_seed),
            )
            model.train()
            report["val_losses"].append([step + 1, val])
            print(f"step {step + 1:5d} | val loss {val:.4f}", flush=True)
    elapsed = time.perf_counter() - t_start
    report["tokens_per_second"] = tokens_total / max(elapsed, 1e-9)
    report["mfu"] = report["tokens_per_second"] * flops_per_token / peak
    common.save_run(args.checkpoint, model, opt, end, cfg.to_dict(), data_rng, report, tok)
    if end == args.steps and args.sample_tokens > 0:
        prompt = np.array([tok.encode("def ")], dtype=np.int64)
        out = model.generate(
            prompt, args.sample_tokens, do_sample=True, temperature=0.8, top_k=50, seed=args.seed
        )
        report["sample"] = tok.decode(out[0].tolist())
        print("---- sample ----")
        print(report["sample"])
    common.write_report(args.report, report)
    return report


if __name__ == "__main__":
    main()
