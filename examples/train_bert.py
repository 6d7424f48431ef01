"""Pre-train a small BERT-style encoder by masked LM on the stdlib, then fine-tune a classifier.

    python examples/train_bert.py                     # a few minutes on 2 cores
    python examples/train_bert.py --steps 50 --report runs/bert.json

Part 1, pre-training (tinyllm/models/bert.py). Random windows of the corpus become
`[CLS] window [SEP]` rows. Of the ordinary tokens 15% are chosen (special tokens never are);
of the chosen 80% become [MASK], 10% a random token, 10% stay as they were; the loss is the
cross-entropy at the chosen positions only (tinyllm.data.get_mlm_batch builds all of this).
Validation reports that loss and the masked-token accuracy — how often the argmax at a chosen
position is the original token — beside the accuracy of always guessing the corpus's most
frequent token. A checkpoint is saved, and `--resume` continues with the same losses as an
uninterrupted run.

Part 2, fine-tuning (BertForSequenceClassification.from_pretrained_mlm), on a task made from the
corpus itself (examples/bert_keyword_task.py): *name the keyword* (def, class, return, if, for,
raise, import) hidden by [MASK] at the start of a line of code, scored by balanced accuracy
(chance 1/7). The same fine-tuning from a random initialization runs beside it
(`--no-baseline` skips it) and shows what pre-training contributed.
"""

from __future__ import annotations

import os
import time

import common
import flags
import numpy as np
from bert_keyword_task import keyword_task

import tinyllm
from tinyllm.accounting import measure_matmul_peak
from tinyllm.accounting.flops import palm_flops_per_token
from tinyllm.data import (
    CLS,
    MASK,
    PAD,
    SEP,
    get_mlm_batch,
    mask_tokens,
    standard_special_tokens,
)
from tinyllm.engine import no_grad
from tinyllm.models import BertConfig, BertForMaskedLM
from tinyllm.optim import AdamW, clip_grad_norm_, param_groups_for_weight_decay


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
        n_special=len(standard_special_tokens()),
    )
    p.add_argument(
        "--checkpoint",
        type=flags.writable_file,
        default=os.path.join("runs", "bert.ckpt.npz"),
        help="where to save the pre-trained (masked-LM) checkpoint (with --resume: and read)",
    )
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument(
        "--stop-at",
        type=flags.positive_int,
        default=None,
        help="stop pre-training (and checkpoint) after this many steps of --steps; "
        "the fine-tuning part then does not run (default: run all --steps)",
    )
    g = p.add_argument_group("fine-tuning: name the hidden keyword")
    g.add_argument(
        "--cls-steps", type=flags.nonnegative_int, default=100, help="fine-tuning steps (0: skip)"
    )
    g.add_argument(
        "--cls-batch-size", type=flags.positive_int, default=32, help="fine-tuning batch"
    )
    g.add_argument(
        "--cls-lr",
        type=flags.finite_positive_float,
        default=1e-3,
        help="fine-tuning learning rate",
    )
    g.add_argument(
        "--cls-len",
        type=flags.positive_int,
        default=32,
        help="most tokens per example, [CLS] and [SEP] included (longer lines are cut)",
    )
    g.add_argument(
        "--cls-eval-per-class",
        type=flags.positive_int,
        default=60,
        help="test lines per keyword (fewer where the validation text has fewer)",
    )
    g.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip fine-tuning a randomly initialized encoder for comparison",
    )
    p.add_check(common.resume_needs_checkpoint)

    @p.add_check
    def cls_len_fits(args):
        if not 4 <= args.cls_len <= args.block_size:
            return f"--cls-len must be in [4, --block-size {args.block_size}], got {args.cls_len}"
        return None

    return p


# ---- part 1: masked LM ----------------------------------------------------------------------


def special_ids(tok) -> dict:
    """The keyword arguments get_mlm_batch needs: [CLS]/[SEP]/[PAD]/[MASK] ids, vocab size and
    every special id (none of them may be chosen or drawn as a random replacement)."""
    return dict(
        cls_id=tok.token_to_id(CLS),
        sep_id=tok.token_to_id(SEP),
        pad_id=tok.token_to_id(PAD),
        mask_id=tok.token_to_id(MASK),
        vocab_size=tok.vocab_size,
        special_ids=sorted(tok.special_tokens.values()),
    )


def evaluate_mlm(model, ids, batch_size, block_size, iters, rng, special) -> tuple[float, float]:
    """(mean masked-LM loss, accuracy of the argmax at the chosen positions), no grad."""
    losses, correct, chosen_total = [], 0, 0
    was_training = model.training
    model.eval()
    with no_grad():
        for _ in range(iters):
            x, labels, am = get_mlm_batch(ids, batch_size, block_size, rng, **special)
            logits, loss = model(x, am, labels=labels)  # logits (B, T, V)
            chosen = labels != -100
            correct += int((logits.data.argmax(-1)[chosen] == labels[chosen]).sum())
            chosen_total += int(chosen.sum())
            losses.append(loss.item())
    model.train(was_training)
    return float(np.mean(losses)), correct / max(chosen_total, 1)


def bert_flops_per_token(model, seq_len: int) -> float:
    """PaLM's 6N + 12·L·H·Q·T with N = the weights that multiply each token: everything but the
    position and segment tables (the tied token table counts once, as the output layer)."""
    c, tr = model.config, model.bert.transformer
    n = model.num_parameters() - tr.wpe.weight.numel() - tr.wtt.weight.numel()
    return palm_flops_per_token(n, c.n_layer, c.n_head, c.n_embd // c.n_head, seq_len)


def fill_in_sample(model, tok, ids, block_size, rng, special) -> dict:
    """One validation window, masked as in training, and the model's guesses written in."""
    start = int(rng.integers(0, len(ids) - block_size))
    window = ids[start : start + block_size - 2]
    row = np.concatenate([[special["cls_id"]], window, [special["sep_id"]]])[None]
    x, labels = mask_tokens(
        row,
        rng,
        mask_id=special["mask_id"],
        vocab_size=special["vocab_size"],
        special_ids=special["special_ids"],
    )
    with no_grad():
        model.eval()
        logits, _ = model(x)
        model.train()
    chosen = labels[0] != -100
    filled = np.where(chosen, logits.data[0].argmax(-1), x[0])
    return {
        "original": tok.decode(row[0, 1:-1].tolist()),
        "masked": tok.decode(x[0, 1:-1].tolist()),
        "filled": tok.decode(filled[1:-1].tolist()),
        "correct": int((filled[chosen] == labels[0][chosen]).sum()),
        "chosen": int(chosen.sum()),
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
        special_tokens=standard_special_tokens(),
    )
    special = special_ids(tok)
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        block_size=args.block_size,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
        dropout=args.dropout,
    )
    model = BertForMaskedLM(cfg)
    opt = AdamW(
        param_groups_for_weight_decay(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.98)
    )
    data_rng = np.random.default_rng(args.seed)
    eval_seed = args.seed + 1
    start = 0
    # guessing the most frequent ordinary token: the accuracy to beat at masked positions
    counts = np.bincount(train_ids, minlength=tok.vocab_size)
    report = {
        "losses": [],
        "val_losses": [],
        "val_mlm_accuracy": [],
        "params": model.num_parameters(),
        "config": cfg.to_dict(),
        "mlm_unigram_baseline": float(counts.max() / counts.sum()),
    }
    if args.resume:
        start, report = common.resume_run(args.checkpoint, model, opt, data_rng, tok)

    peak = measure_matmul_peak(np.float32, n=512, repeats=3)
    flops_per_token = bert_flops_per_token(model, args.block_size)
    print(
        f"BERT {cfg.n_layer}L {cfg.n_head}H {cfg.n_embd}E block {cfg.block_size} vocab "
        f"{cfg.vocab_size}: {model.num_parameters():,} parameters; measured fp32 matmul "
        f"peak {peak / 1e9:.1f} GFLOP/s"
    )
    meter = common.Throughput(flops_per_token, peak)
    end = args.steps if args.stop_at is None else min(args.steps, args.stop_at)
    t_train, tokens_total = time.perf_counter(), 0
    for step in range(start, end):
        lr = common.lr_at(step, args)
        for g in opt.param_groups:
            g["lr"] = lr
        x, labels, am = get_mlm_batch(
            train_ids, args.batch_size, args.block_size, data_rng, **special
        )
        _, loss = model(x, am, labels=labels)
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
            val, acc = evaluate_mlm(
                model,
                val_ids,
                args.batch_size,
                args.block_size,
                args.eval_iters,
                np.random.default_rng(eval_seed),
                special,
            )
            report["val_losses"].append([step + 1, val])
            report["val_mlm_accuracy"].append([step + 1, acc])
            print(
                f"step {step + 1:5d} | val loss {val:.4f} | masked-token accuracy "
                f"{100 * acc:.1f}% (most frequent token: "
                f"{100 * report['mlm_unigram_baseline']:.1f}%)",
                flush=True,
            )
    elapsed = time.perf_counter() - t_train
    if end > start:  # a resumed run that had nothing left to do keeps the earlier figures
        report["tokens_per_second"] = tokens_total / max(elapsed, 1e-9)
        report["mfu"] = report["tokens_per_second"] * flops_per_token / peak
    common.save_run(args.checkpoint, model, opt, end, cfg.to_dict(), data_rng, report, tok)
    if end == args.steps:
        if report["val_mlm_accuracy"]:
            report["mlm_accuracy"] = report["val_mlm_accuracy"][-1][1]
        sample = fill_in_sample(
            model,
            tok,
            val_ids,
            min(args.block_size, 48),
            np.random.default_rng(args.seed + 4),
            special,
        )
        report["sample"] = sample
        print("---- fill in the masks ----")
        print(
            f"masked: {sample['masked']!r}\nfilled: {sample['filled']!r}\n"
            f"truth:  {sample['original']!r}\n({sample['correct']}/{sample['chosen']} "
            "chosen tokens right)"
        )
        if args.cls_steps > 0:
            report["classification"] = keyword_task(args, tok, special, model, args.seed + 5)
            report["cls_accuracy"] = report["classification"]["accuracy"]
    report["time"] = {
        "wall_seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - cpu0,
    }
    common.write_report(args.report, report)
    return report


if __name__ == "__main__":
    main()
