"""Chain of thought and test-time scaling: a scratchpad against a direct answer, then N samples.

    python examples/test_time_scaling.py                       # about 5 minutes on 2 cores
    python examples/test_time_scaling.py --seed 1 --report runs/tts.json

Two GPTs of the same size are trained from scratch, from the same initial weights and the
same stream of questions, on addition of 1 to 5 digits (tinyllm/data/tasks/arithmetic.py). One
is taught to work the columns out first, least significant first, and then answer
("345+912=5+2+0=07 4+1+0=05 3+9+0=12 answer: 1257"); the other to answer directly
("345+912=1257"). A direct example is about a quarter as long, so by default the direct model
takes more steps, until it has processed as many tokens as the scratchpad model — the same
training compute, 6·N·tokens FLOPs (`--direct-budget steps` gives it the same steps instead).
The tokenizer is byte-level with no merges — one token per character — so both see digits the
same way and the chain of thought costs one forward pass per character it writes. Only the
answer tokens (and the working, for the scratchpad model) are targets; the question's are not.

Part 1 decodes greedily and reports the exact-match accuracy per digit count for each model
(`cot_accuracy_by_digits`, `direct_accuracy_by_digits`). The direct model must carry through
every column inside the forward pass that writes the answer's leading digit; the scratchpad
model spreads that work over one pass per written step, and should lose less as digits grow.

Part 2 spends test-time compute: for `--questions` held-out questions of `--scaling-digits`
digits it samples `--samples` completions each at `--temperature` (one batched generate per
chunk, the KV cache serving all samples at once — tinyllm/evaluation.py), and reports for
N = 1, 2, 4, … `pass_at_k` (unbiased, Chen et al. 2021: solved if any of N samples is right) and
`majority_at_k` (self-consistency, Wang et al. 2022: the most frequent of N answers), for the
scratchpad model and (`direct_pass_at_k`, `direct_majority_at_k`) for the direct one. The
default temperature is 2: the trained scratchpad model is almost never wrong at temperature 1,
which leaves votes nothing to correct; at 2 a single sample often goes wrong somewhere in its
working, in a different place each time, which is the situation majority voting is for.

`--checkpoint PATH` saves the scratchpad model with its tokenizer (and the direct model beside
it, as PATH with `-direct` before the extension).
"""

from __future__ import annotations

import math
import os
import time

import common
import flags
import numpy as np

import tinyllm
from tinyllm.checkpoint import save_checkpoint
from tinyllm.data import ByteLevelBPE
from tinyllm.data.tasks import Arithmetic, Task
from tinyllm.evaluation import majority_at_k, mean_pass_at_k, sample_completions
from tinyllm.models import GPT, GPTConfig
from tinyllm.optim import AdamW, clip_grad_norm_, param_groups_for_weight_decay, warmup_cosine

IGNORE_INDEX = -100
EVAL_SEED_OFFSET = 1000  # held-out questions come from other seeds than the training stream


def build_parser():
    p = flags.parser(__doc__)
    g = p.add_argument_group("training (both models)")
    g.add_argument("--steps", type=flags.positive_int, default=2000, help="optimizer steps")
    g.add_argument("--batch-size", type=flags.positive_int, default=32, help="questions per step")
    g.add_argument(
        "--lr", type=flags.finite_positive_float, default=5e-3, help="peak learning rate"
    )
    g.add_argument("--warmup", type=flags.nonnegative_int, default=50, help="linear warmup steps")
    g.add_argument(
        "--weight-decay",
        type=flags.finite_nonnegative_float,
        default=0.1,
        help="AdamW's decoupled weight decay (0: none)",
    )
    g.add_argument(
        "--grad-clip",
        type=flags.grad_clip,
        default=1.0,
        help="clip the global gradient norm to this (0 or off: no clipping)",
    )
    g.add_argument(
        "--seed", type=flags.nonnegative_int, default=0, help="seed of the models and questions"
    )
    g.add_argument(
        "--log-interval", type=flags.positive_int, default=100, help="steps between progress lines"
    )
    g.add_argument(
        "--direct-budget",
        choices=("tokens", "steps"),
        default="tokens",
        help="train the direct model on as many tokens as the scratchpad model (the same "
        "training compute) or for as many steps (the same questions)",
    )
    g.add_argument(
        "--max-digits",
        type=flags.int_in(1, 9),
        default=5,
        help="train and evaluate on 1 to this many digits",
    )
    m = p.add_argument_group("model size (both models)")
    m.add_argument("--n-layer", type=flags.positive_int, default=2, help="blocks")
    m.add_argument("--n-head", type=flags.positive_int, default=4, help="attention heads")
    m.add_argument(
        "--n-embd",
        type=flags.positive_int,
        default=64,
        help="embedding width (a multiple of --n-head)",
    )
    e = p.add_argument_group("evaluation")
    e.add_argument(
        "--eval-per-digit",
        type=flags.positive_int,
        default=100,
        help="held-out questions per digit count (greedy decoding)",
    )
    e.add_argument(
        "--questions",
        type=flags.positive_int,
        default=40,
        help="held-out questions sampled for test-time scaling",
    )
    e.add_argument(
        "--scaling-digits",
        type=flags.positive_int,
        default=None,
        help="digits of the test-time scaling questions (default: --max-digits)",
    )
    e.add_argument(
        "--samples",
        type=flags.positive_int,
        default=64,
        help="samples per question, a power of 2 (N = 1, 2, 4, ..., this)",
    )
    e.add_argument(
        "--temperature",
        type=flags.finite_positive_float,
        default=2.0,
        help="sampling temperature of test-time scaling",
    )
    e.add_argument(
        "--max-batch",
        type=flags.positive_int,
        default=1024,
        help="sequences decoded together by one generate call",
    )
    p.add_argument(
        "--checkpoint",
        type=flags.writable_file,
        default=None,
        metavar="PATH",
        help="save the scratchpad model here (and the direct one beside it; default: none)",
    )
    flags.add_report(p)

    @p.add_check
    def consistent(args):
        if args.n_embd % args.n_head:
            return f"--n-embd {args.n_embd} must divide by --n-head {args.n_head}"
        if args.samples & (args.samples - 1):
            return f"--samples must be a power of 2 (1, 2, 4, ...), got {args.samples}"
        if args.scaling_digits is not None and args.scaling_digits > args.max_digits:
            return (
                f"--scaling-digits {args.scaling_digits} is more than the model is trained on "
                f"(--max-digits {args.max_digits})"
            )
        return None

    return p


def block_size_for(max_digits: int) -> int:
    """The longest scratchpad sequence: the prompt 'a+b=' (2d + 2), d steps of 8 characters
    and their spaces, ' answer: ' and d + 1 digits and the newline, rounded up to 8."""
    d = max_digits
    longest = (2 * d + 2) + (9 * d - 1) + len(" answer: ") + (d + 1) + 1
    return 8 * math.ceil(longest / 8)


def make_batch(examples, tok) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) (B, T): prompt + target right-padded; only target tokens are targets."""
    pairs = [(tok.encode(e.prompt), tok.encode(e.target)) for e in examples]
    t = max(len(p) + len(q) for p, q in pairs) - 1
    x = np.zeros((len(pairs), t), dtype=np.int64)
    y = np.full((len(pairs), t), IGNORE_INDEX, dtype=np.int64)
    for i, (p, q) in enumerate(pairs):
        ids = p + q
        x[i, : len(ids) - 1] = ids[:-1]
        y[i, len(p) - 1 : len(ids) - 1] = q  # the token after position j is ids[j + 1]
    return x, y


def direct_steps_for_tokens(tokens: int, task: Task, tok, args) -> int:
    """Steps of `--batch-size` direct questions that process `tokens` tokens, the mean batch
    length measured on 200 batches of another seed."""
    rng = np.random.default_rng(args.seed + 3 * EVAL_SEED_OFFSET)
    sizes = [
        make_batch([task.sample(rng) for _ in range(args.batch_size)], tok)[0].size
        for _ in range(200)
    ]
    return max(1, round(tokens / float(np.mean(sizes))))


def train(label: str, task: Task, cfg: GPTConfig, tok, args, steps: int) -> tuple[GPT, dict]:
    """`steps` of AdamW on questions drawn from `task`; → (model, {losses, tokens, seconds})."""
    tinyllm.manual_seed(args.seed)  # both models start from the same weights
    model = GPT(cfg)
    opt = AdamW(
        param_groups_for_weight_decay(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.95)
    )
    rng = np.random.default_rng(args.seed)  # both models see the same questions
    losses, tokens, t0 = [], 0, time.perf_counter()
    for step in range(steps):
        lr = warmup_cosine(step, args.lr, args.warmup, steps, args.lr * 0.1)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = make_batch([task.sample(rng) for _ in range(args.batch_size)], tok)
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        losses.append(loss.item())
        tokens += x.size
        if step % args.log_interval == 0 or step == steps - 1:
            print(
                f"{label:6s} step {step:5d} | loss {loss.item():.4f} | lr {lr:.2e} | "
                f"{time.perf_counter() - t0:6.1f} s",
                flush=True,
            )
    return model, {
        "steps": steps,
        "losses": losses,
        "tokens": tokens,
        "seconds": time.perf_counter() - t0,
    }


def max_new_tokens(task: Arithmetic, digits: int) -> int:
    """Room for the longest target of `digits`-digit questions, plus a few tokens."""
    return len(task.make(10**digits - 1, 10**digits - 1).target) + 4


def accuracy_by_digits(model, task_of, tok, args, newline: int) -> dict[str, float]:
    """Greedy exact match on `--eval-per-digit` held-out questions of each digit count."""
    out = {}
    for d in range(1, args.max_digits + 1):
        task = task_of(d)
        examples = task.examples(args.eval_per_digit, seed=args.seed + EVAL_SEED_OFFSET + d)
        completions = sample_completions(
            model,
            tok,
            [e.prompt for e in examples],
            1,
            max_new_tokens(task, d),
            eos_token_id=newline,
            do_sample=False,
            max_batch=args.max_batch,
        )
        out[str(d)] = float(np.mean([e.score(c[0]) for e, c in zip(examples, completions)]))
    return out


def scaling_curves(model, task: Arithmetic, tok, args, newline: int, digits: int) -> dict:
    """pass@N and majority@N for N = 1, 2, 4, …, --samples on held-out `digits`-digit questions."""
    examples = task.examples(args.questions, seed=args.seed + 2 * EVAL_SEED_OFFSET)
    completions = sample_completions(
        model,
        tok,
        [e.prompt for e in examples],
        args.samples,
        max_new_tokens(task, digits),
        eos_token_id=newline,
        temperature=args.temperature,
        seed=args.seed,
        max_batch=args.max_batch,
    )
    answers = [[task.extract(c) for c in row] for row in completions]
    correct = np.array([[a == e.answer for a in row] for e, row in zip(examples, answers)])
    refs = [e.answer for e in examples]
    ns = [2**i for i in range(int(math.log2(args.samples)) + 1)]
    return {
        "pass_at_k": {str(n): mean_pass_at_k(correct, n) for n in ns},
        "majority_at_k": {str(n): majority_at_k(answers, refs, n) for n in ns},
        "any_correct": float(correct.any(axis=1).mean()),
    }


def main(argv=None):
    args = build_parser().parse_args(argv)
    scaling_digits = args.scaling_digits or args.max_digits
    tok = ByteLevelBPE([], ["<|endoftext|>"])  # bytes only: one token per character
    newline = tok.encode("\n")[0]  # a completion ends at its newline
    cfg = GPTConfig(
        block_size=block_size_for(args.max_digits),
        vocab_size=tok.vocab_size,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
        dropout=0.0,
    )
    variants = {"cot": True, "direct": False}
    print(
        f"GPT {cfg.n_layer}L {cfg.n_head}H {cfg.n_embd}E block {cfg.block_size}, "
        f"{GPT(cfg).num_parameters():,} parameters; addition of 1-{args.max_digits} digits, "
        f"{args.steps} steps of {args.batch_size} questions (scratchpad), seed {args.seed}",
        flush=True,
    )
    report = {"config": cfg.to_dict(), "seed": args.seed, "steps": args.steps}
    models = {}
    task = Arithmetic((1, args.max_digits), scratchpad=True)
    models["cot"], report["cot_training"] = train("cot", task, cfg, tok, args, args.steps)
    task = Arithmetic((1, args.max_digits), scratchpad=False)
    steps = args.steps
    if args.direct_budget == "tokens":  # the same training compute: 6·N·tokens FLOPs
        steps = direct_steps_for_tokens(report["cot_training"]["tokens"], task, tok, args)
    print(
        f"direct model: {steps} steps ({args.direct_budget}: the scratchpad model's "
        f"{report['cot_training']['tokens']:,} tokens in {args.steps} steps)",
        flush=True,
    )
    models["direct"], report["direct_training"] = train("direct", task, cfg, tok, args, steps)
    t0 = time.perf_counter()
    for label, cot in variants.items():
        acc = accuracy_by_digits(
            models[label], lambda d, cot=cot: Arithmetic(d, scratchpad=cot), tok, args, newline
        )
        report[f"{label}_accuracy_by_digits"] = acc
        print(
            f"{label:6s} greedy accuracy by digits: "
            + "  ".join(f"{d}: {a:.2f}" for d, a in acc.items()),
            flush=True,
        )
    for label, cot in variants.items():
        curves = scaling_curves(
            models[label],
            Arithmetic(scaling_digits, scratchpad=cot),
            tok,
            args,
            newline,
            scaling_digits,
        )
        prefix = "" if cot else "direct_"
        for key, value in curves.items():
            report[prefix + key] = value
        print(
            f"{label:6s} {args.samples} samples x {args.questions} questions of "
            f"{scaling_digits} digits at T={args.temperature:g}: pass@1 "
            f"{curves['pass_at_k']['1']:.2f}, majority@{args.samples} "
            f"{curves['majority_at_k'][str(args.samples)]:.2f}",
            flush=True,
        )
    report["evaluation_seconds"] = time.perf_counter() - t0
    print_tables(report, args, scaling_digits)
    if args.checkpoint:
        root, ext = os.path.splitext(args.checkpoint)
        if root.endswith(".ckpt"):
            root, ext = root[: -len(".ckpt")], ".ckpt" + ext
        for label, path in (("cot", args.checkpoint), ("direct", f"{root}-direct{ext}")):
            save_checkpoint(
                path,
                models[label],
                step=report[f"{label}_training"]["steps"],
                config=cfg.to_dict(),
                tokenizer=tok,
            )
            print(f"{label} model saved to {path}")
    common.write_report(args.report, report)
    return report


def print_tables(report: dict, args, scaling_digits: int) -> None:
    print(f"\ngreedy exact match by digit count ({args.eval_per_digit} questions each)")
    print(f"{'digits':>6} | {'direct':>6} | {'CoT':>6}")
    for d in report["cot_accuracy_by_digits"]:
        print(
            f"{d:>6} | {report['direct_accuracy_by_digits'][d]:6.2f} | "
            f"{report['cot_accuracy_by_digits'][d]:6.2f}"
        )
    print(
        f"\ntest-time scaling: {args.questions} questions of {scaling_digits} digits, "
        f"T={args.temperature:g}"
    )
    print(
        f"{'N':>4} | {'CoT pass@N':>10} | {'CoT maj@N':>9} | {'dir pass@N':>10} | {'dir maj@N':>9}"
    )
    for n in report["pass_at_k"]:
        print(
            f"{n:>4} | {report['pass_at_k'][n]:10.3f} | {report['majority_at_k'][n]:9.3f} | "
            f"{report['direct_pass_at_k'][n]:10.3f} | {report['direct_majority_at_k'][n]:9.3f}"
        )


if __name__ == "__main__":
    main()
