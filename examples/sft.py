"""Instruction fine-tuning: a base GPT becomes a chat model; loss-mask ablation; LoRA beside it.

    python examples/sft.py                          # base → SFT, writes runs/sft.ckpt.npz
    python examples/chat.py                         # then talk to it
    python examples/sft.py --seed 1 --report runs/sft-1.json

Four stages, one program, the same data for every fine-tuning run:

(a) **pre-training**: a small GPT learns plain text — synthetic reviews, each under a
    reference line and followed by the question, written one after another as ordinary
    documents, with no chat template and *no labels* — and is saved to runs/base.ckpt.npz. It
    knows the language of the task, but neither its hidden rule nor the chat format.
(b) **SFT** (supervised fine-tuning): the base model, with the four chat tokens added to its
    tokenizer and embedding, trains on conversations — a user turn holding the question and an
    assistant turn holding the answer — with the loss on the assistant's tokens only.
(c) **the ablation**: the same run with the loss on every token, user turns included.
(d) **LoRA**: the same run again, the base frozen, rank-r adapters on chosen Linear layers
    (and the chat tokens' embedding rows, which the base never had).

The user turns are noisy on purpose: each starts with a reference code of random letters, as
real prompts carry pasted ids, logs and boilerplate. Nothing can predict those letters (nor
which opinion words a review happens to use), so a loss on every token spends most of its
gradient on noise, while the assistant-only loss puts all of it on the answer. Every stage is
evaluated on held-out questions (never in the fine-tuning pool) by exact match: greedy decoding
from the chat prompt, stopped at <|end|>; the reply must be the answer and nothing else.

Report keys: `exact_match_before` (the base given the chat prompt), `exact_match_after` (SFT),
`exact_match_all_tokens_loss`, `lora` {`trainable_parameters`, `exact_match`,
`optimizer_state_bytes`, …} and `full` {the same ledger for full fine-tuning}; optimizer-state
bytes are the memory ledger's (tinyllm.accounting.memory: 8 bytes of fp32 Adam moments per
trainable parameter), checked against the arrays the optimizer really holds.
"""

from __future__ import annotations

import os
import time

import common
import flags
import numpy as np

from tinyllm.accounting.memory import FP32_ADAM, zero_memory
from tinyllm.checkpoint import save_checkpoint
from tinyllm.data import ByteLevelBPE, get_batch
from tinyllm.data.chat import IGNORE_INDEX, ChatFormat
from tinyllm.data.tasks import Mixture
from tinyllm.data.tasks.lookup import KeyValueLookup
from tinyllm.data.tasks.reviews import ReviewSentiment
from tinyllm.engine import no_grad
from tinyllm.models import GPT
from tinyllm.nn.lora import apply_lora, merge_lora, train_new_token_rows, trainable_parameters
from tinyllm.optim import AdamW, clip_grad_norm_, warmup_cosine

LINEARS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


def build_parser():
    p = flags.parser(__doc__)
    p.add_argument("--seed", type=flags.nonnegative_int, default=0, help="seed of everything")
    p.add_argument(
        "--report", type=flags.writable_file, default=None, metavar="PATH",
        help="write a JSON report here (default: none)",
    )  # fmt: skip
    common.add_model_args(
        p, n_layer=2, n_head=4, n_embd=64, block_size=96, vocab_size=512, n_special=4
    )
    g = p.add_argument_group("tasks")
    g.add_argument(
        "--tasks",
        type=flags.comma_list(str, choices=("reviews", "lookup")),
        default="reviews",
        help="instruction tasks, comma-separated (lookup needs more steps than the default)",
    )
    g.add_argument("--keys", type=flags.int_in(1, 26), default=2, help="pairs per lookup table")
    g.add_argument(
        "--opinions", type=flags.int_in(1, 7), default=3, help="opinions per review (odd)"
    )
    g.add_argument(
        "--noise-chars",
        type=flags.nonnegative_int,
        default=32,
        help="random letters that open each user turn (0: clean prompts)",
    )
    g.add_argument(
        "--train-examples", type=flags.positive_int, default=2000, help="fine-tuning pool"
    )
    g.add_argument(
        "--eval-examples", type=flags.positive_int, default=256, help="held-out questions"
    )
    g = p.add_argument_group("pre-training (a)")
    g.add_argument("--pretrain-steps", type=flags.positive_int, default=300, help="steps")
    g.add_argument("--pretrain-lr", type=flags.finite_positive_float, default=3e-3, help="peak lr")
    g.add_argument(
        "--pretrain-examples",
        type=flags.positive_int,
        default=6000,
        help="task examples written as plain text",
    )
    g.add_argument(
        "--pretrain-labels",
        action="store_true",
        help="write each answer under its question in the pre-training text: the base then "
        "knows the rule, and fine-tuning only has to teach the format",
    )
    g = p.add_argument_group("fine-tuning (b, c, d)")
    g.add_argument("--steps", type=flags.positive_int, default=150, help="steps of each run")
    g.add_argument("--batch-size", type=flags.positive_int, default=32, help="sequences per step")
    g.add_argument("--lr", type=flags.finite_positive_float, default=1e-3, help="full SFT peak lr")
    g.add_argument(
        "--grad-clip", type=flags.grad_clip, default=1.0, help="global gradient-norm limit"
    )
    g.add_argument("--log-interval", type=flags.positive_int, default=20, help="steps per line")
    g = p.add_argument_group("LoRA (d)")
    g.add_argument("--lora-rank", type=flags.positive_int, default=4, help="rank r")
    g.add_argument(
        "--lora-alpha", type=flags.finite_positive_float, default=8.0, help="alpha (scale α/r)"
    )
    g.add_argument(
        "--lora-dropout",
        type=flags.float_in(0.0, 1.0, high_open=True),
        default=0.0,
        help="dropout on the adapter input",
    )
    g.add_argument("--lora-lr", type=flags.finite_positive_float, default=1e-2, help="LoRA peak lr")
    g.add_argument(
        "--lora-targets",
        type=flags.comma_list(str, choices=LINEARS),
        default=",".join(LINEARS),
        help="Linear layers that get adapters",
    )
    g.add_argument(
        "--lora-freeze-embedding",
        action="store_true",
        help="freeze the tied token embedding in the LoRA run except the chat tokens' rows "
        "(by default it trains, PEFT's modules_to_save: a base pre-trained without labels "
        "has not learned which words the hidden rule counts)",
    )
    g = p.add_argument_group("files")
    g.add_argument(
        "--base-checkpoint",
        type=flags.writable_file,
        default=os.path.join("runs", "base.ckpt.npz"),
        help="where the pre-trained base is saved",
    )
    g.add_argument(
        "--checkpoint",
        type=flags.writable_file,
        default=os.path.join("runs", "sft.ckpt.npz"),
        help="where the SFT chat model is saved (examples/chat.py's default)",
    )
    g.add_argument(
        "--lora-checkpoint",
        type=flags.writable_file,
        default=os.path.join("runs", "sft-lora.ckpt.npz"),
        help="where the LoRA model, adapters merged, is saved",
    )

    @p.add_check
    def odd_opinions(args):
        if args.opinions % 2 == 0:
            return f"--opinions must be odd (a majority needs no ties), got {args.opinions}"
        return None

    return p


# ---- data ------------------------------------------------------------------------------------


def plain_text(examples, rng, noise_chars: int, labels: bool = False) -> str:
    """Pre-training documents: each question with its reference line (and, with `labels`, its
    answer on the next line), then a blank line — the tasks' text as a web page might hold
    it, with no chat template."""
    return "".join(
        f"{user_turn(e, rng, noise_chars)}\n{e.target + chr(10) if labels else ''}\n"
        for e in examples
    )


def user_turn(example, rng, noise_chars: int) -> str:
    """The question, opened by a reference code of `noise_chars` random letters."""
    if not noise_chars:
        return example.prompt
    code = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), noise_chars))
    return f"ref {code}\n{example.prompt}"


def conversations(examples, rng, noise_chars: int) -> list[list[dict]]:
    return [
        [
            {"role": "user", "content": user_turn(e, rng, noise_chars)},
            {"role": "assistant", "content": e.target},
        ]
        for e in examples
    ]


def batch(fmt: ChatFormat, convs, all_tokens: bool) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) padded to the longest conversation; y is −100 off the assistant's tokens, or —
    the ablation — only on the padding."""
    rows = [fmt.render(c) for c in convs]
    t = max(len(ids) for ids, _ in rows) - 1
    x = np.full((len(rows), t), fmt.end_of_turn_id, dtype=np.int64)
    y = np.full((len(rows), t), IGNORE_INDEX, dtype=np.int64)
    for b, (ids, mask) in enumerate(rows):
        xi, yi = fmt.targets(ids, np.ones_like(mask) if all_tokens else mask)
        x[b, : len(xi)], y[b, : len(yi)] = xi, yi
    return x, y


# ---- training --------------------------------------------------------------------------------


def adamw(params, lr, lr_of: dict | None = None):
    """AdamW over `params`: decay on matrices only (nanoGPT's grouping), none on vectors; each
    group remembers its peak lr (`lr_of[id(p)]` where given, else `lr`)."""
    groups = {}
    for p in params:
        peak = (lr_of or {}).get(id(p), lr)
        decay = 0.1 if p.ndim >= 2 else 0.0
        groups.setdefault((peak, decay), []).append(p)
    return AdamW(
        [
            {"params": ps, "lr": peak, "peak": peak, "weight_decay": d}
            for (peak, d), ps in groups.items()
        ],
        lr=lr,
        betas=(0.9, 0.95),
    )


def pretrain(model, ids: np.ndarray, args) -> list[float]:
    opt = adamw(list(model.parameters()), args.pretrain_lr)
    rng, losses, t0 = np.random.default_rng(args.seed), [], time.perf_counter()
    warm = max(1, args.pretrain_steps // 20)
    for step in range(args.pretrain_steps):
        lr = warmup_cosine(step, args.pretrain_lr, warm, args.pretrain_steps, args.pretrain_lr / 10)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = get_batch(ids, args.batch_size, args.block_size, rng)
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        losses.append(loss.item())
        if (step + 1) % args.log_interval == 0 or step + 1 == args.pretrain_steps:
            print(
                f"  pretrain step {step + 1:4d}/{args.pretrain_steps}  loss {losses[-1]:.3f}  "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    return losses


def finetune(model, fmt, pool, args, *, lr, all_tokens=False, label="sft", lr_of=None):
    """`args.steps` of AdamW on the trainable parameters, batches drawn from `pool` by a
    generator seeded alike for every run, so the runs see the same conversations in the same
    order. → (losses, optimizer)."""
    params = trainable_parameters(model)
    opt = adamw(params, lr, lr_of)
    rng, losses, t0 = np.random.default_rng(args.seed + 1), [], time.perf_counter()
    warm = max(1, args.steps // 20)
    model.train()
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = warmup_cosine(step, g["peak"], warm, args.steps, g["peak"] / 10)
        pick = rng.integers(len(pool), size=args.batch_size)
        x, y = batch(fmt, [pool[i] for i in pick], all_tokens)
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(params, args.grad_clip)
        opt.step()
        losses.append(loss.item())
        if (step + 1) % args.log_interval == 0 or step + 1 == args.steps:
            print(
                f"  {label:>16} step {step + 1:4d}/{args.steps}  loss {losses[-1]:.3f}  "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    model.eval()
    return losses, opt


def optimizer_state_bytes(opt) -> int:
    """Bytes of the arrays the optimizer holds (Adam: exp_avg and exp_avg_sq per parameter)."""
    return sum(v.nbytes for s in opt.state.values() for v in s.values() if hasattr(v, "nbytes"))


# ---- evaluation ------------------------------------------------------------------------------


def left_padded(prompts, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """(idx, attention_mask) with every prompt ending at the last column."""
    width = max(len(p) for p in prompts)
    idx = np.full((len(prompts), width), pad, dtype=np.int64)
    mask = np.zeros_like(idx)
    for b, p in enumerate(prompts):
        idx[b, width - len(p) :], mask[b, width - len(p) :] = p, 1
    return idx, mask


def greedy(model, prompts, max_new_tokens: int, pad: int, eos=None, batch_size: int = 64):
    """The greedy continuation (new ids) of each prompt, in batches of left-padded prompts."""
    model.eval()
    out = []
    with no_grad():
        for i in range(0, len(prompts), batch_size):
            idx, mask = left_padded(prompts[i : i + batch_size], pad)
            ids = model.generate(idx, max_new_tokens, attention_mask=mask, eos_token_id=eos)
            out.extend(row[idx.shape[1] :].tolist() for row in ids)
    return out


def exact_match(model, fmt, prompts, examples, max_new_tokens: int) -> tuple[float, dict]:
    """Greedy replies to chat `prompts` (each ending in an open assistant header), stopped at
    <|end|>. A reply counts if it ended with <|end|> and its text, stripped, is the answer:
    a model that answers and then keeps writing has not followed the chat format.
    → (accuracy, accuracy per task)."""
    eos = fmt.end_of_turn_id
    hits = [
        eos in new and fmt.reply(new).strip() == e.answer
        for new, e in zip(greedy(model, prompts, max_new_tokens, eos, eos), examples)
    ]
    return float(np.mean(hits)), by_task(hits, examples)


def plain_accuracy(model, tok, texts, examples, max_new_tokens: int) -> tuple[float, dict]:
    """The base model's own format: `text` + newline, greedy, scored on the first line (the
    task's `score`). What the base knows, before any chat template."""
    prompts = [np.asarray(tok.encode_ordinary(t + "\n")) for t in texts]
    pad = tok.encode_ordinary("\n")[0]
    hits = [
        e.score(tok.decode(new)) == 1.0
        for new, e in zip(greedy(model, prompts, max_new_tokens, pad), examples)
    ]
    return float(np.mean(hits)), by_task(hits, examples)


def by_task(hits, examples) -> dict:
    names = sorted({e.task.name for e in examples})
    return {
        n: float(np.mean([h for h, e in zip(hits, examples) if e.task.name == n])) for n in names
    }


def copy_model(base: GPT, fmt: ChatFormat, seed: int) -> GPT:
    """A fresh copy of `base` with rows for the chat tokens (Hugging Face's mean resizing: the
    old rows' mean plus N(0, 0.02²) noise, drawn from `seed`), so every fine-tuning run starts
    from the very same weights."""
    model = GPT(base.config)
    model.load_state_dict(base.state_dict())
    model.resize_token_embeddings(fmt.tokenizer.vocab_size, generator=np.random.default_rng(seed))
    return model


def main(argv=None):
    args = build_parser().parse_args(argv)
    t_start = time.perf_counter()
    make = {
        "reviews": lambda: ReviewSentiment(args.opinions),
        "lookup": lambda: KeyValueLookup(args.keys),
    }
    task = Mixture([make[name]() for name in dict.fromkeys(args.tasks)])
    rng = np.random.default_rng(args.seed)

    # data: pre-training text, the fine-tuning pool, held-out questions none of them has seen
    pre = task.examples(args.pretrain_examples, seed=args.seed * 1000 + 1)
    pool_ex = task.examples(args.train_examples, seed=args.seed * 1000 + 2)
    seen = {e.prompt for e in pre} | {e.prompt for e in pool_ex}
    held_out, draw = [], np.random.default_rng(args.seed * 1000 + 3)
    while len(held_out) < args.eval_examples:
        e = task.sample(draw)
        if e.prompt not in seen:
            held_out.append(e)
            seen.add(e.prompt)
    text = plain_text(pre, rng, args.noise_chars, args.pretrain_labels)
    tok = ByteLevelBPE().train(text, vocab_size=args.vocab_size)
    ids = np.asarray(tok.encode_ordinary(text), dtype=np.int64)
    print(
        f"tasks: {task.name}; pre-training text {len(text):,} chars = {len(ids):,} tokens "
        f"(BPE vocabulary {tok.vocab_size}); fine-tuning pool {len(pool_ex)}, "
        f"held out {len(held_out)}; user turns open with {args.noise_chars} random letters"
    )

    # (a) pre-training on plain text
    cfg = common.gpt_config(args, tok.vocab_size)
    base = GPT(cfg, generator=np.random.default_rng(args.seed))
    print(f"(a) pre-training a base GPT: {base.num_parameters():,} parameters")
    pretrain_losses = pretrain(base, ids, args)
    save_checkpoint(
        args.base_checkpoint, base, step=args.pretrain_steps, config=cfg.to_dict(), tokenizer=tok
    )
    print(f"  saved {args.base_checkpoint}")

    fmt = ChatFormat(tok)  # adds the chat tokens after every existing id
    pool = conversations(pool_ex, rng, args.noise_chars)
    tests = conversations(held_out, rng, args.noise_chars)
    prompts = [fmt.render_prompt(c[:1]) for c in tests]
    answers = [e.answer for e in held_out]
    longest = max(max(len(fmt.render(c)[0]) for c in pool + tests) - 1, 0)
    if longest > args.block_size:
        raise SystemExit(
            f"sft: a conversation is {longest} tokens, more than --block-size {args.block_size}"
        )
    max_new = max(len(tok.encode_ordinary(a)) for a in answers) + 2
    evaluate = lambda m: exact_match(m, fmt, prompts, held_out, max_new)  # noqa: E731
    results, per_task = {}, {}

    plain, per_task["base_plain_text"] = plain_accuracy(
        base, tok, [c[0]["content"] for c in tests], held_out, max_new
    )
    print(f"    base model on plain-text prompts (first line scored): accuracy {plain:.3f}")
    before = copy_model(base, fmt, args.seed)
    results["before"], per_task["before"] = evaluate(before)
    print(f"    base model on the chat prompt: exact match {results['before']:.3f}")

    # (b) SFT, loss on the assistant's tokens; (c) the same, loss on every token
    runs = {}
    for name, all_tokens in (("assistant-only", False), ("all-tokens", True)):
        print(f"({'b' if not all_tokens else 'c'}) full SFT, loss on {name} tokens")
        model = copy_model(base, fmt, args.seed)
        losses, opt = finetune(model, fmt, pool, args, lr=args.lr, all_tokens=all_tokens,
                               label=name)  # fmt: skip
        acc, per_task[name] = evaluate(model)
        runs[name] = {"model": model, "losses": losses, "opt": opt, "acc": acc}
        print(f"    exact match {acc:.3f}  {per_task[name]}")
    sft = runs["assistant-only"]
    full_trainable = sum(p.numel() for p in trainable_parameters(sft["model"]))
    save_checkpoint(
        args.checkpoint,
        sft["model"],
        step=args.steps,
        config=sft["model"].config.to_dict(),
        tokenizer=tok,
        extra={"base": args.base_checkpoint, "stage": "sft"},
    )
    print(f"  saved {args.checkpoint} (python examples/chat.py --checkpoint {args.checkpoint})")

    # (d) LoRA on the same data, base frozen
    print(
        f"(d) LoRA SFT: r={args.lora_rank}, alpha={args.lora_alpha:g} on "
        f"{', '.join(args.lora_targets)}"
    )
    lora_model = copy_model(base, fmt, args.seed)
    wrapped = apply_lora(
        lora_model,
        args.lora_targets,
        r=args.lora_rank,
        alpha=args.lora_alpha,
        dropout=args.lora_dropout,
        generator=np.random.default_rng(args.seed + 2),
    )
    # the chat tokens are new: under a frozen embedding their rows would stay the mean-resizing
    # guess, so their rows train too (PEFT's trainable_token_indices)
    rows = train_new_token_rows(
        lora_model, len(fmt.special_ids), train_old=not args.lora_freeze_embedding
    )
    lora_trainable = sum(p.numel() for p in trainable_parameters(lora_model))
    # the adapters at LoRA's rate; the token rows are ordinary weights, at full SFT's rate
    lora_losses, lora_opt = finetune(
        lora_model,
        fmt,
        pool,
        args,
        lr=args.lora_lr,
        label="lora",
        lr_of={id(rows.new_rows): args.lr, id(rows.base.weight): args.lr},
    )
    lora_acc, per_task["lora"] = evaluate(lora_model)
    merge_lora(lora_model)
    merged_acc, _ = evaluate(lora_model)
    print(f"    exact match {lora_acc:.3f} (merged: {merged_acc:.3f})  {per_task['lora']}")
    save_checkpoint(
        args.lora_checkpoint,
        lora_model,
        step=args.steps,
        config=lora_model.config.to_dict(),
        tokenizer=tok,
        extra={"base": args.base_checkpoint, "stage": "sft-lora"},
    )

    ledger = {
        name: {
            "trainable_parameters": n,
            "optimizer_state_bytes": zero_memory(n, 1, 0, FP32_ADAM).optimizer_states,
            "optimizer_state_bytes_measured": optimizer_state_bytes(opt),
        }
        for name, n, opt in (
            ("full", full_trainable, sft["opt"]),
            ("lora", lora_trainable, lora_opt),
        )
    }
    for name, row in ledger.items():
        if row["optimizer_state_bytes"] != row["optimizer_state_bytes_measured"]:
            raise SystemExit(f"sft: {name}: the ledger and the optimizer's arrays disagree: {row}")
    seconds = time.perf_counter() - t_start

    print()
    print(f"{'model':<28} {'exact match':>11} {'trainable':>10} {'Adam state':>11}")
    print(f"{'base (chat prompt)':<28} {results['before']:>11.3f} {'':>10} {'':>11}")
    for label, acc, row in (
        ("SFT, assistant-only loss", sft["acc"], ledger["full"]),
        ("SFT, all-tokens loss", runs["all-tokens"]["acc"], ledger["full"]),
        (f"LoRA r={args.lora_rank}", lora_acc, ledger["lora"]),
    ):
        print(
            f"{label:<28} {acc:>11.3f} {row['trainable_parameters']:>10,} "
            f"{row['optimizer_state_bytes'] / 1024:>9.1f} KiB"
        )
    frac = lora_trainable / full_trainable
    print(
        f"LoRA trains {frac:.1%} of the parameters; gap to full SFT "
        f"{sft['acc'] - lora_acc:+.3f}; {seconds:.0f} s in all"
    )

    common.write_report(
        args.report,
        {
            "exact_match_before": results["before"],
            "exact_match_after": sft["acc"],
            "exact_match_all_tokens_loss": runs["all-tokens"]["acc"],
            "lora": {
                **ledger["lora"],
                "exact_match": lora_acc,
                "exact_match_merged": merged_acc,
                "trainable_fraction": frac,
                "rank": args.lora_rank,
                "alpha": args.lora_alpha,
                "targets": list(args.lora_targets),
                "train_embedding": not args.lora_freeze_embedding,
                "wrapped_layers": wrapped,
            },
            "full": ledger["full"],
            "base_plain_text_accuracy": plain,
            "by_task": per_task,
            "params": base.num_parameters(),
            "seed": args.seed,
            "pretrain_losses": pretrain_losses,
            "losses": sft["losses"],
            "losses_all_tokens": runs["all-tokens"]["losses"],
            "losses_lora": lora_losses,
            "seconds": seconds,
        },
    )
    return results


if __name__ == "__main__":
    main()
