"""Domain adaptation: continue a trained GPT on new text, and compare with training from scratch.

    python examples/train_gpt.py                      # first: the pre-trained checkpoint
    python examples/finetune.py                       # then: adapt it to the new domain
    python examples/finetune.py --domain email,json --steps 60 --report runs/finetune.json

A model pre-trained on one kind of text already knows much of what another kind needs — here
the tokens, the syntax and the habits of Python. Fine-tuning continues its training on the new
text; it should reach a low loss there in far fewer steps than the same network starting from
random weights. This script measures that: it trains two copies of the same GPT for the same
steps, with the same batches, learning-rate schedule and seed (the default peak rate, 3e-3, is
the one train_gpt.py trains from scratch with, so the baseline is not handicapped) —

    fine-tuned     weights from --checkpoint (written by train_gpt.py)
    from scratch   weights from GPT-2's random initialization

— evaluates both on the new domain's held-out text as it goes, and prints the two validation
curves side by side with their gap (scratch minus fine-tuned). It also reports the fine-tuned
model's loss on the *old* domain before and after, to show how much of it was forgotten.

The new domain (default: the stdlib's `pydoc_data` package — the reference manual's prose,
stored as Python string literals, which the default pre-training text does not contain):
`--domain` names stdlib packages or files (comma-separated); any of their files whose text also
appears in the pre-training text is left out, so the domain is really new. `--data FILE` uses a
text file instead. Its last 10% is the validation part.

The tokenizer must be the pre-trained model's: the one the checkpoint stores (as in
examples/generate.py; only a checkpoint that stores none has it rebuilt from the pre-training
flags `--pretrain-data`, `--pretrain-data-bytes`). The pre-training flags still name the text of
the old-domain loss. The fine-tuned checkpoint is saved to --out-checkpoint with the same
tokenizer and records those flags, so `python examples/generate.py --checkpoint <it>` needs no
tokenizer flag.
"""

from __future__ import annotations

import os
import time

import common
import flags
import numpy as np
from generate import load_tokenizer  # examples/generate.py: the checkpoint's tokenizer

import tinyllm
from tinyllm.checkpoint import load_checkpoint, save_checkpoint
from tinyllm.data import get_batch, load_corpus
from tinyllm.data.corpus import read_python_source, split_train_val, stdlib_dir, stdlib_files
from tinyllm.models import GPT, GPTConfig
from tinyllm.optim import AdamW, clip_grad_norm_, param_groups_for_weight_decay


def build_parser():
    p = flags.parser(__doc__)
    common.add_common_args(p, steps=60, batch_size=16, lr=3e-3)
    p.set_defaults(eval_interval=10)
    p.add_argument(
        "--domain",
        type=flags.comma_list(str),
        default="pydoc_data",
        help="stdlib packages/files of the new domain, comma-separated (ignored with --data)",
    )
    p.add_argument(
        "--checkpoint",
        type=flags.readable_file,
        default=os.path.join("runs", "gpt.ckpt.npz"),
        help="the pre-trained GPT (from examples/train_gpt.py)",
    )
    p.add_argument(
        "--out-checkpoint",
        type=flags.writable_file,
        default=os.path.join("runs", "gpt-finetuned.ckpt.npz"),
        help="where to save the fine-tuned GPT",
    )
    p.add_argument(
        "--sample-tokens",
        type=flags.nonnegative_int,
        default=120,
        help="tokens of the sample printed at the end (0: none)",
    )
    g = p.add_argument_group("the pre-training text (for the tokenizer and the old-domain loss)")
    g.add_argument(
        "--pretrain-data",
        type=flags.readable_text_file,
        default=None,
        help="the pre-training text file (default: the stdlib)",
    )
    g.add_argument(
        "--pretrain-data-bytes",
        type=flags.positive_int,
        default=None,
        help="default: as recorded in the checkpoint, else 2 MB (train_gpt's default)",
    )
    g.add_argument(
        "--tokenizer",
        type=flags.readable_text_file,
        default=None,
        help="a saved tokenizer file instead (default: rebuild it from the pre-training text)",
    )

    @p.add_check
    def domain_exists(args):
        if args.data is not None:
            return None
        root = stdlib_dir()
        for name in args.domain:
            path = root / name
            if not (path.is_dir() or path.is_file() or path.with_suffix(".py").is_file()):
                return f"--domain {name!r}: the stdlib ({root}) has no package or file {name}"
        return None

    return p


def stdlib_domain_text(names: list[str], max_bytes: int, exclude_text: str | None):
    """The text of the named stdlib packages/files, in corpus order, cut to max_bytes at a line;
    files whose opening (2000 chars) occurs in `exclude_text` are left out. → (text, skipped)."""
    root, parts, skipped, used = stdlib_dir(), [], [], 0
    for name in names:
        path = root / name
        if path.is_dir():
            files = stdlib_files(path)
        elif path.is_file() or path.with_suffix(".py").is_file():
            files = [path if path.is_file() else path.with_suffix(".py")]
        else:
            raise SystemExit(f"finetune: --domain {name!r}: no package or file {path}")
        for f in files:
            text = read_python_source(f).rstrip("\n") + "\n\n"
            if exclude_text is not None and text[:2000] in exclude_text:
                skipped.append(f.relative_to(root).as_posix())
                continue
            parts.append(text)
            used += len(text.encode("utf-8"))
            if used >= max_bytes:
                break
        if used >= max_bytes:
            break
    text = "".join(parts).encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")
    return text[: text.rfind("\n") + 1], skipped


def train_on_domain(
    model, train_ids, val_ids, args, label, old_val_ids=None, flops_per_token=None, peak=None
):
    """args.steps of AdamW on the new domain; → {losses, val_losses, tokens, seconds, ...}.
    With the model FLOPs per token and a peak FLOP/s, the progress lines show MFU."""
    opt = AdamW(
        param_groups_for_weight_decay(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.95)
    )
    data_rng = np.random.default_rng(args.seed)  # same batches for both models
    bs, t = args.batch_size, model.config.block_size

    def val_loss(ids):
        model.eval()
        v = common.estimate_loss(
            model, ids, bs, t, args.eval_iters, np.random.default_rng(args.seed + 1)
        )
        model.train()
        return v

    out = {"losses": [], "val_losses": [[0, val_loss(val_ids)]]}
    if old_val_ids is not None:
        out["old_domain_val_before"] = val_loss(old_val_ids)
    print(f"[{label}] step     0 | val loss {out['val_losses'][0][1]:.4f}", flush=True)
    meter, t0, tokens = common.Throughput(flops_per_token, peak), time.perf_counter(), 0
    for step in range(args.steps):
        lr = common.lr_at(step, args)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = get_batch(train_ids, bs, t, data_rng)
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        out["losses"].append(loss.item())
        meter.add(x.size)
        tokens += x.size
        if step % args.log_interval == 0 or step == args.steps - 1:
            tps, mfu = meter.read()
            print(
                f"[{label}] step {step:5d} | loss {loss.item():.4f} | lr {lr:.2e} | "
                f"{tps:8.0f} tok/s" + (f" | MFU {100 * mfu:5.1f}%" if mfu is not None else ""),
                flush=True,
            )
        if (step + 1) % args.eval_interval == 0 or step == args.steps - 1:
            out["val_losses"].append([step + 1, val_loss(val_ids)])
            print(
                f"[{label}] step {step + 1:5d} | val loss {out['val_losses'][-1][1]:.4f}",
                flush=True,
            )
    out["tokens"], out["seconds"] = tokens, time.perf_counter() - t0
    if old_val_ids is not None:
        out["old_domain_val_after"] = val_loss(old_val_ids)
    return out


def main(argv=None):
    args = build_parser().parse_args(argv)
    t0, cpu0 = time.perf_counter(), time.process_time()
    tinyllm.manual_seed(args.seed)
    meta = load_checkpoint(args.checkpoint, None, restore_rng=False)
    if not meta.get("config") or "n_layer" not in meta["config"]:
        raise SystemExit(f"finetune: {args.checkpoint} holds no GPT config")
    cfg = GPTConfig(**meta["config"])
    recorded = meta.get("extra", {}).get("data") or {}  # a checkpoint of this script
    if args.pretrain_data is None:
        args.pretrain_data = recorded.get("data")
    args.pretrain_data_bytes = args.pretrain_data_bytes or recorded.get("data_bytes") or 2_000_000
    tok = load_tokenizer(
        args.checkpoint,
        meta,
        args.tokenizer,
        args.pretrain_data,
        args.pretrain_data_bytes,
        args.cache_dir,
    )
    old = load_corpus(args.pretrain_data, max_bytes=args.pretrain_data_bytes)

    if args.data is not None:
        domain = load_corpus(args.data, max_bytes=args.data_bytes)
        name, train_text, val_text, skipped = domain.name, domain.train, domain.val, []
    else:
        names = args.domain
        text, skipped = stdlib_domain_text(
            names, args.data_bytes, old.train + old.val if args.pretrain_data is None else None
        )
        if not text:
            raise SystemExit(
                f"finetune: the domain {names} has no text left (all of it is "
                "in the pre-training text?)"
            )
        name, (train_text, val_text) = f"stdlib:{','.join(names)}", split_train_val(text)
    if skipped:
        print(f"left out {len(skipped)} domain files that the pre-training text contains")

    def encode(text):
        return np.array(tok.encode(text, disallowed_special=()), dtype=np.int64)

    train_ids, val_ids = encode(train_text), encode(val_text)
    old_val_ids = encode(old.val)
    print(
        f"new domain {name}: {len(train_text):,} + {len(val_text):,} chars → "
        f"{len(train_ids):,} + {len(val_ids):,} tokens "
        f"({len(train_text.encode()) / max(1, len(train_ids)):.2f} bytes/token with the "
        "pre-trained tokenizer)"
    )
    if len(val_ids) <= cfg.block_size or len(train_ids) <= cfg.block_size:
        raise SystemExit(
            f"finetune: the domain's train/val parts ({len(train_ids)}/"
            f"{len(val_ids)} tokens) must each exceed block_size {cfg.block_size}"
        )

    pretrained = GPT(cfg)
    load_checkpoint(args.checkpoint, pretrained, restore_rng=False)
    print(
        f"GPT {cfg.n_layer}L {cfg.n_head}H {cfg.n_embd}E, {pretrained.num_parameters():,} "
        f"parameters, pre-trained for {meta['step']} steps ({args.checkpoint})"
    )
    # MFU (PaLM appendix B): tokens/s × model FLOPs per token (6N + 12·L·H·Q·T) / the peak
    # FLOP/s of this machine's fp32 matmul (tinyllm/accounting/mfu.py)
    from tinyllm.accounting import measure_matmul_peak, palm_flops_per_token_for

    peak = measure_matmul_peak(np.float32, n=512, repeats=3)
    flops_per_token = palm_flops_per_token_for(cfg, cfg.block_size)
    print(
        f"model FLOPs per token {flops_per_token:,.0f} (6N + 12·L·H·Q·T); measured fp32 "
        f"matmul peak {peak / 1e9:.1f} GFLOP/s"
    )
    tuned = train_on_domain(
        pretrained, train_ids, val_ids, args, "fine-tuned", old_val_ids, flops_per_token, peak
    )
    scratch_model = GPT(cfg, generator=np.random.default_rng(args.seed))
    scratch = train_on_domain(
        scratch_model,
        train_ids,
        val_ids,
        args,
        "scratch",
        flops_per_token=flops_per_token,
        peak=peak,
    )

    print("\nvalidation loss on the new domain")
    print(f"{'step':>6} {'fine-tuned':>11} {'scratch':>9} {'gap':>7}")
    gap = []
    for (s, a), (_, b) in zip(tuned["val_losses"], scratch["val_losses"]):
        gap.append([s, b - a])
        print(f"{s:6d} {a:11.4f} {b:9.4f} {b - a:7.4f}")
    start_val = tuned["val_losses"][0][1]
    catch_up = next((s for s, v in scratch["val_losses"] if v <= start_val), None)
    print(
        f"the pre-trained model starts at {start_val:.4f} before any fine-tuning; from scratch "
        + (
            f"reaches that at step {catch_up}"
            if catch_up is not None
            else f"does not reach it in {args.steps} steps"
        )
    )
    print(
        f"old-domain val loss of the fine-tuned model: {tuned['old_domain_val_before']:.4f} "
        f"before → {tuned['old_domain_val_after']:.4f} after"
    )

    save_checkpoint(
        args.out_checkpoint,
        pretrained,
        step=meta["step"] + args.steps,
        config=cfg.to_dict(),
        extra={
            "data": {"data": args.pretrain_data, "data_bytes": args.pretrain_data_bytes},
            "finetuned_on": name,
            "finetune_steps": args.steps,
        },
        tokenizer=tok,
    )
    print(f"fine-tuned checkpoint saved to {args.out_checkpoint}")
    report = {
        "losses": tuned["losses"],
        "val_losses": tuned["val_losses"],
        "scratch": {"losses": scratch["losses"], "val_losses": scratch["val_losses"]},
        "gap": gap,
        "scratch_reaches_start_at": catch_up,
        "old_domain_val": {
            "before": tuned["old_domain_val_before"],
            "after": tuned["old_domain_val_after"],
        },
        "params": pretrained.num_parameters(),
        "config": cfg.to_dict(),
        "domain": {
            "name": name,
            "train_tokens": len(train_ids),
            "val_tokens": len(val_ids),
            "skipped_files": skipped,
        },
        "tokens_per_second": (tuned["tokens"] + scratch["tokens"])
        / max(tuned["seconds"] + scratch["seconds"], 1e-9),
        "flops_per_token": flops_per_token,
        "peak_flops": peak,
    }
    report["mfu"] = report["tokens_per_second"] * flops_per_token / peak
    print(
        f"both runs: {report['tokens_per_second']:.0f} tok/s, MFU {100 * report['mfu']:.1f}% "
        f"of the measured peak"
    )
    if args.sample_tokens > 0:
        prompt = val_ids[None, :16]
        out = pretrained.generate(
            prompt, args.sample_tokens, do_sample=True, temperature=0.8, top_k=50, seed=args.seed
        )
        report["sample"] = tok.decode(out[0].tolist())
        print("---- sample (fine-tuned; the prompt is the first 16 validation tokens) ----")
        print(report["sample"])
    report["time"] = {
        "wall_seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - cpu0,
    }
    common.write_report(args.report, report)
    return report


if __name__ == "__main__":
    main()
