"""In-context learning: a GPT that reads a new rule off the demonstrations in its prompt.

    python examples/icl.py                          # two model sizes, one seed
    python examples/icl.py --seed 2 --report runs/icl.json

Pre-training data is a mixture of prompted tasks (tinyllm/data/tasks): letter substitutions
whose rule — a random permutation of six letters — is drawn afresh for every prompt, from the
*training* rules only, beside named string transformations (reverse, sort, …). Every prompt
holds k ∈ 0..8 demonstrations "input>output" and then a query:

    subst
    cab>fed
    bdd>dcc
    dab>            the model writes "ced" and a newline

Loss is the next-character cross-entropy over the whole prompt and answer. Then, for each model
size, the script measures exact match (greedy decoding) on *held-out* rules — rules that no
training prompt used, so nothing about them can have been memorized — at k = 0 … 8
demonstrations. k = 0 can only be a guess; a model that learned to read the prompt climbs with
k, up to the coverage ceiling (the fraction of queries whose letters the demonstrations show
at all, printed beside it).

It also shows

- the attention of the head that does the reading (the *induction head*: from the query's
  letter to the demonstration output that followed the same letter) as a text heat-map;
- k beyond the context: prompts with 12 or 16 demonstrations do not fit the block, so the
  oldest ones are dropped, and accuracy stops rising where the context is full;
- prompting against fine-tuning: each model, fine-tuned briefly on zero-shot prompts of one
  held-out rule, against its few-shot accuracy on that rule — and what fine-tuning on one rule
  does to its in-context reading of the others.

The tokenizer is one token per character (the tasks use ~40 characters), so a demonstration's
characters sit at fixed offsets and the effect is not blurred by BPE merges.
"""

from __future__ import annotations

import string
import time

import common
import flags
import numpy as np

from tinyllm.data.tasks import Mixture
from tinyllm.data.tasks.induction import SubstitutionTask
from tinyllm.data.tasks.strings import NEWLINE, SEP, StringTask
from tinyllm.engine import no_grad
from tinyllm.models import GPT, GPTConfig
from tinyllm.optim import AdamW, clip_grad_norm_, param_groups_for_weight_decay, warmup_cosine

# model sizes: name → (n_layer, n_head, n_embd)
SIZES = {"tiny": (2, 2, 16), "small": (2, 2, 32), "medium": (2, 4, 64), "large": (3, 4, 96)}
# the named string tasks and their headers (short, so that an 8-shot prompt fits the block)
STRING_TASKS = {
    "reverse": "rev",
    "sort": "sort",
    "uppercase": "upper",
    "caesar1": "shift",
    "every_second": "skip",
    "rotate": "rot",
}
EVAL_SHOTS = [0, 1, 2, 3, 4, 6, 8]
REPORT_SHOTS = ["0", "1", "2", "4", "8"]
BEYOND_SHOTS = [12, 16]
PAD = "\0"
IGNORE = -100
SHADES = " .:-=+*#%@"


class CharTokenizer:
    """One id per character: padding (id 0), the two separators, letters and digits."""

    def __init__(self):
        self.chars = PAD + NEWLINE + SEP + string.ascii_lowercase + string.ascii_uppercase
        self.chars += string.digits + "_"
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        self.vocab_size = len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError as e:
            raise ValueError(f"CharTokenizer: no id for character {e.args[0]!r}") from None

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def build_parser():
    p = flags.parser(__doc__)
    p.add_argument(
        "--sizes",
        type=flags.comma_list(str, choices=sorted(SIZES)),
        default="small,medium",
        help=f"model sizes to train, comma-separated (n_layer, n_head, n_embd): {SIZES}",
    )
    p.add_argument("--steps", type=flags.positive_int, default=1500, help="pre-training steps")
    p.add_argument("--batch-size", type=flags.positive_int, default=32, help="prompts per step")
    p.add_argument("--lr", type=flags.finite_positive_float, default=3e-3, help="peak lr")
    p.add_argument(
        "--seed", type=flags.nonnegative_int, default=0, help="seed of the models and batches"
    )
    p.add_argument(
        "--subst-weight",
        type=flags.float_in(0.0, 1.0, low_open=True),
        default=0.7,
        help="share of substitution prompts in the mixture (the rest: string tasks)",
    )
    p.add_argument(
        "--block-size",
        type=flags.int_in(40, 512),
        default=80,
        help="context length (an 8-shot prompt is 78 characters)",
    )
    p.add_argument(
        "--eval-examples",
        type=flags.positive_int,
        default=400,
        help="held-out prompts per shot count",
    )
    p.add_argument(
        "--finetune-steps",
        type=flags.nonnegative_int,
        default=64,
        help="steps of fine-tuning on one held-out rule (0: skip the comparison)",
    )
    p.add_argument(
        "--finetune-batch-size",
        type=flags.positive_int,
        default=8,
        help="zero-shot prompts per fine-tuning step",
    )
    p.add_argument(
        "--finetune-lr", type=flags.finite_positive_float, default=1e-3, help="fine-tuning lr"
    )
    p.add_argument(
        "--log-interval", type=flags.positive_int, default=100, help="steps between progress lines"
    )
    p.add_argument(
        "--report",
        type=flags.writable_file,
        default=None,
        metavar="PATH",
        help="write a JSON report here (default: none)",
    )
    return p


# ---- data: prompts → padded (x, y) batches -------------------------------------------------


def pretraining_mixture(subst_weight: float) -> Mixture:
    """Substitutions on training rules plus the named string tasks, each with 0..8 shots."""
    tasks = [SubstitutionTask(shots=(0, 8), split="train")]
    tasks += [string_task(n, shots=(0, 8)) for n in STRING_TASKS]
    rest = (1.0 - subst_weight) / len(STRING_TASKS)
    return Mixture(tasks, [subst_weight] + [rest] * len(STRING_TASKS))


def string_task(name: str, shots) -> StringTask:
    return StringTask(name, length=3, alphabet="abcdef", shots=shots, header=STRING_TASKS[name])


def fit_prompt(example, block_size: int) -> str:
    """The example's prompt, its oldest demonstrations dropped until prompt + target fit the
    block (the header line is kept): what a fixed context does to a long few-shot prompt."""
    lines = example.prompt.split(NEWLINE)
    header, demos, query = lines[0], lines[1:-1], lines[-1]
    while True:
        text = NEWLINE.join([header] + demos + [query])
        if not demos or len(text) + len(example.target) <= block_size + 1:
            return text
        demos = demos[1:]


def encode_batch(tok: CharTokenizer, texts: list[str], block_size: int):
    """x (B, T) ids and y (B, T) next-character targets, right-padded (targets IGNORE there)."""
    x = np.zeros((len(texts), block_size), dtype=np.int64)
    y = np.full((len(texts), block_size), IGNORE, dtype=np.int64)
    for i, text in enumerate(texts):
        ids = tok.encode(text)
        if len(ids) > block_size + 1:
            raise ValueError(f"a prompt of {len(ids)} characters exceeds the block {block_size}")
        x[i, : len(ids) - 1] = ids[:-1]
        y[i, : len(ids) - 1] = ids[1:]
    return x, y


# ---- evaluation ---------------------------------------------------------------------------


def exact_match(model, tok, examples, block_size: int, batch: int = 200) -> float:
    """Mean exact-match score of greedy completions.

    One forward pass per batch suffices: with the target fed in (teacher forcing), the arg-max
    at the target's positions is the greedy decoder's output for as long as the decoder has
    been right so far, so the completion equals the target exactly when greedy decoding would
    have produced it. The completion is then scored by the task's own `score`."""
    scores = []
    for s in range(0, len(examples), batch):
        chunk = examples[s : s + batch]
        prompts = [fit_prompt(e, block_size) for e in chunk]
        x, _ = encode_batch(tok, [p + e.target for p, e in zip(prompts, chunk)], block_size)
        with no_grad():
            logits, _ = model(x)
        pred = logits.data.argmax(-1)  # (B, T)
        for i, (p, e) in enumerate(zip(prompts, chunk)):
            start = len(p) - 1  # the position that reads the last prompt character
            completion = tok.decode(pred[i, start : start + len(e.target)])
            scores.append(e.score(completion))
    return float(np.mean(scores))


def heldout_examples(shots: int, n: int, seed: int):
    return SubstitutionTask(shots=shots, split="heldout").examples(n, seed)


def coverage(examples, block_size: int) -> float:
    """The fraction of prompts whose query letters all appear in the demonstrations that fit
    the context: the accuracy of a perfect reader of the prompt."""
    hits = []
    for e in examples:
        lines = fit_prompt(e, block_size).split(NEWLINE)
        shown = {c for line in lines[1:-1] for c in line.split(SEP)[0]}
        hits.append(set(lines[-1][:-1]) <= shown)
    return float(np.mean(hits))


# ---- the induction head ---------------------------------------------------------------------


def attention_maps(model, ids: np.ndarray) -> list[np.ndarray]:
    """softmax(q kᵀ/√d + causal mask) of every layer for one sequence: (n_head, T, T) each."""
    tr = model.transformer
    t = len(ids)
    maps = []
    with no_grad():
        x = tr.wte(ids[None]) + tr.wpe(np.arange(t))
        for block in tr.h:
            e, h = x.shape[-1], block.attn.n_head
            qkv = block.attn.c_attn(block.ln_1(x)).data.reshape(t, 3, h, e // h)
            q, k = qkv[:, 0].transpose(1, 0, 2), qkv[:, 1].transpose(1, 0, 2)  # (h, T, hs)
            s = q @ k.transpose(0, 2, 1) / np.sqrt(e // h)
            s = np.where(np.tril(np.ones((t, t), bool)), s, -np.inf)
            a = np.exp(s - s.max(-1, keepdims=True))
            maps.append(a / a.sum(-1, keepdims=True))
            x = block(x)
    return maps


def induction_targets(example, prompt: str) -> list[list[int]]:
    """For each answer letter j, the prompt positions of the demonstration outputs that show
    π(query_j): the characters an induction head should copy from."""
    lines = prompt.split(NEWLINE)
    query = lines[-1][:-1]
    pos, targets = len(lines[0]) + 1, [[] for _ in query]
    for line in lines[1:-1]:
        x, _ = line.split(SEP)
        for i, c in enumerate(x):
            for j, qc in enumerate(query):
                if c == qc:
                    targets[j].append(pos + len(x) + 1 + i)
        pos += len(line) + 1
    return targets


def induction_scores(model, tok, examples, block_size: int) -> np.ndarray:
    """(n_layer, n_head): mean attention, from the position that writes answer letter j, on
    the demonstration outputs that show the right letter (Olsson et al.'s copying pattern)."""
    c = model.config
    total = np.zeros((c.n_layer, c.n_head))
    count = 0
    for e in examples:
        prompt = fit_prompt(e, block_size)
        ids = np.array(tok.encode(prompt + e.target[:-1]))
        maps = attention_maps(model, ids)
        for j, where in enumerate(induction_targets(e, prompt)):
            if where:
                row = len(prompt) - 1 + j  # reads ">" (j = 0) or answer letter j − 1
                for layer, a in enumerate(maps):
                    total[layer] += a[:, row, where].sum(-1)
                count += 1
    return total / max(count, 1)


def heat_map(model, tok, example, block_size: int, layer: int, head: int) -> list[str]:
    """Text heat-map of one head: a row per answer letter, a column per prompt character, the
    shade of each cell its attention weight relative to the row's largest."""
    prompt = fit_prompt(example, block_size)
    ids = np.array(tok.encode(prompt + example.target[:-1]))
    a = attention_maps(model, ids)[layer][head]
    shown = prompt.replace(NEWLINE, "|")
    lines = [f"{'':>10} {shown}"]
    for j, letter in enumerate(example.answer):
        row = a[len(prompt) - 1 + j, : len(prompt)]
        row = row / row.max()
        cells = "".join(SHADES[min(len(SHADES) - 1, int(v * len(SHADES)))] for v in row)
        lines.append(f"{'writes ' + letter:>10} {cells}")
    return lines


# ---- training -------------------------------------------------------------------------------


def train(model, tok, task, steps, batch_size, lr, block_size, rng, log, log_interval, name):
    """AdamW (β = 0.9, 0.95; decay 0.1 on matrices), warmup then cosine; → losses per step."""
    opt = AdamW(param_groups_for_weight_decay(model, 0.1), lr=lr, betas=(0.9, 0.95))
    losses, t0 = [], time.perf_counter()
    warmup = max(1, steps // 20)
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = warmup_cosine(step, lr, warmup, steps, lr * 0.1)
        texts = [e.prompt + e.target for e in (task.sample(rng) for _ in range(batch_size))]
        x, y = encode_batch(tok, texts, block_size)
        t = int((y != IGNORE).sum(0).nonzero()[0].max()) + 1  # drop all-padding columns
        _, loss = model(x[:, :t], y[:, :t])
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if log and (step % log_interval == 0 or step == steps - 1):
            log(
                f"[{name}] step {step:5d}  loss {np.mean(losses[-log_interval:]):.3f}  "
                f"{time.perf_counter() - t0:6.1f} s"
            )
    return losses


def finetune_vs_prompting(model, tok, args, rule, eval_seed, log):
    """Fine-tune a copy of `model` on zero-shot prompts of one held-out rule; → its accuracy
    on that rule (k = 0) after 1, 2, 4, … steps, beside few-shot prompting of the base model
    on the same rule, and both models' 8-shot accuracy on the other held-out rules."""
    n = args.eval_examples
    one = {k: SubstitutionTask(shots=k, split="heldout", rules=[rule]) for k in (0, 2, 4, 8)}
    prompted = {
        str(k): exact_match(model, tok, t.examples(n, eval_seed + k), args.block_size)
        for k, t in one.items()
    }
    others = [e for e in heldout_examples(8, n * 2, eval_seed + 99) if e.meta["rule"] != rule]
    before_others = exact_match(model, tok, others, args.block_size)
    tuned = GPT(model.config)
    tuned.load_state_dict(model.state_dict())
    opt = AdamW(param_groups_for_weight_decay(tuned, 0.0), lr=args.finetune_lr, betas=(0.9, 0.95))
    rng = np.random.default_rng(eval_seed + 7)
    zero_shot = one[0].examples(n, eval_seed + 1000)  # other queries than the training ones
    curve, step = {}, 0
    while step < args.finetune_steps:
        texts = [
            e.prompt + e.target
            for e in (one[0].sample(rng) for _ in range(args.finetune_batch_size))
        ]
        x, y = encode_batch(tok, texts, args.block_size)
        t = int((y != IGNORE).sum(0).nonzero()[0].max()) + 1
        _, loss = tuned(x[:, :t], y[:, :t])
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step & (step - 1) == 0 or step == args.finetune_steps:  # 1, 2, 4, 8, …
            curve[str(step * args.finetune_batch_size)] = exact_match(
                tuned, tok, zero_shot, args.block_size
            )
    after_others = exact_match(tuned, tok, others, args.block_size)
    log(f"    fine-tuned on rule {rule}: zero-shot accuracy by examples seen {curve}")
    return {
        "rule": rule,
        "prompting_accuracy_by_shots": prompted,
        "finetuned_accuracy_by_examples": curve,
        "other_rules_8_shot_before": before_others,
        "other_rules_8_shot_after": after_others,
    }


# ---- the experiment -------------------------------------------------------------------------


def run_size(name, args, tok, log):
    n_layer, n_head, n_embd = SIZES[name]
    cfg = GPTConfig(
        block_size=args.block_size,
        vocab_size=tok.vocab_size,
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
    )
    seed = args.seed * 1000 + sorted(SIZES).index(name)
    model = GPT(cfg, generator=np.random.default_rng(seed))
    n_params = model.get_num_params()
    log(f"[{name}] {n_layer} layers, {n_head} heads, width {n_embd}: {n_params:,} params")
    t0 = time.perf_counter()
    losses = train(
        model,
        tok,
        pretraining_mixture(args.subst_weight),
        args.steps,
        args.batch_size,
        args.lr,
        args.block_size,
        np.random.default_rng(seed + 1),
        log,
        args.log_interval,
        name,
    )
    train_seconds = time.perf_counter() - t0
    model.eval()
    eval_seed = 10_000  # the same held-out prompts for every size and seed
    n = args.eval_examples
    acc, ceiling = {}, {}
    for k in EVAL_SHOTS + BEYOND_SHOTS:
        exs = heldout_examples(k, n, eval_seed + k)
        acc[str(k)] = exact_match(model, tok, exs, args.block_size)
        ceiling[str(k)] = coverage(exs, args.block_size)
    seen = {
        str(k): exact_match(
            model,
            tok,
            SubstitutionTask(shots=k, split="train").examples(n, eval_seed + 50 + k),
            args.block_size,
        )
        for k in (0, 8)
    }
    named = {
        t: exact_match(
            model,
            tok,
            string_task(t, shots=0).examples(n // 4, eval_seed + 60),
            args.block_size,
        )
        for t in STRING_TASKS
    }
    line = "  ".join(f"{k}-shot {acc[k]:.2f}" for k in map(str, EVAL_SHOTS))
    log(f"[{name}] held-out rules: {line}")
    scores = induction_scores(model, tok, heldout_examples(4, 40, eval_seed + 77), args.block_size)
    layer, head = np.unravel_index(int(np.argmax(scores)), scores.shape)
    out = {
        "n_layer": n_layer,
        "n_head": n_head,
        "n_embd": n_embd,
        "params": model.get_num_params(),
        "train_seconds": train_seconds,
        "final_loss": float(np.mean(losses[-50:])),
        "losses": losses,
        "accuracy_by_shots": {k: acc[k] for k in REPORT_SHOTS},
        "accuracy_by_shots_all": acc,
        "coverage_ceiling_by_shots": ceiling,
        "accuracy_seen_rules_by_shots": seen,
        "zero_shot_named_tasks": named,
        "shots_to_half": shots_to_reach(acc, 0.5),
        "induction_scores": scores.tolist(),
        "induction_head": [int(layer), int(head)],
    }
    return model, out


def shots_to_reach(acc: dict, level: float) -> float | None:
    """The shot count where accuracy first reaches `level`, interpolated linearly between the
    evaluated shot counts; None if it never does."""
    ks = EVAL_SHOTS
    for a, b in zip(ks, ks[1:]):
        lo, hi = acc[str(a)], acc[str(b)]
        if lo >= level:
            return float(a)
        if hi >= level:
            return a + (b - a) * (level - lo) / (hi - lo)
    return None


def main(argv=None):
    args = build_parser().parse_args(argv)
    tok = CharTokenizer()
    report = {"config": vars(args).copy(), "sizes": {}}
    print(
        f"in-context learning: {len(SubstitutionTask(split='train').all_rules())} training "
        f"rules, {len(SubstitutionTask(split='heldout').all_rules())} held-out rules; "
        f"sizes {','.join(args.sizes)}; {args.steps} steps of {args.batch_size} prompts; "
        f"seed {args.seed}"
    )
    models = {}
    for name in args.sizes:
        models[name], report["sizes"][name] = run_size(name, args, tok, print)
    held_rule = SubstitutionTask(split="heldout").all_rules()[0]
    if args.finetune_steps:
        for name in args.sizes:
            print(f"[{name}] prompting vs fine-tuning on held-out rule {held_rule}")
            report["sizes"][name]["finetune"] = finetune_vs_prompting(
                models[name], tok, args, held_rule, 20_000, print
            )
    print_tables(report, models, tok, args)
    common.write_report(args.report, report)
    return report


def print_tables(report, models, tok, args):
    sizes = report["sizes"]
    print("\nexact match on held-out rules (coverage ceiling: the queries the demos cover)")
    ks = [str(k) for k in EVAL_SHOTS + BEYOND_SHOTS]
    print(f"{'shots':>16} " + " ".join(f"{k:>5}" for k in ks))
    first = next(iter(sizes.values()))
    print(
        f"{'ceiling':>16} " + " ".join(f"{first['coverage_ceiling_by_shots'][k]:5.2f}" for k in ks)
    )
    for name, r in sizes.items():
        print(
            f"{name + ' (' + format(r['params'], ',') + ')':>16} "
            + " ".join(f"{r['accuracy_by_shots_all'][k]:5.2f}" for k in ks)
        )
    print(
        f"(k = {', '.join(map(str, BEYOND_SHOTS))}: the oldest demonstrations are dropped "
        f"to fit the {args.block_size}-character context)"
    )
    print("\nshots to reach 50% on held-out rules; rules seen in training; named tasks at k=0")
    for name, r in sizes.items():
        s = r["shots_to_half"]
        named = np.mean(list(r["zero_shot_named_tasks"].values()))
        print(
            f"{name:>16} {('never' if s is None else f'{s:.1f}'):>6}   seen rules 0-shot "
            f"{r['accuracy_seen_rules_by_shots']['0']:.2f} 8-shot "
            f"{r['accuracy_seen_rules_by_shots']['8']:.2f}   named tasks 0-shot {named:.2f}"
        )
    name = list(sizes)[-1]
    layer, head = sizes[name]["induction_head"]
    ex = heldout_examples(4, 1, 30_000)[0]
    print(
        f"\n[{name}] attention of layer {layer} head {head} (its induction score "
        f"{sizes[name]['induction_scores'][layer][head]:.2f}; '|' is a newline)"
    )
    for line in heat_map(models[name], tok, ex, args.block_size, layer, head):
        print(line)
    if "finetune" in first:
        print("\nprompting vs fine-tuning on one held-out rule (exact match on that rule)")
        for name, r in sizes.items():
            f = r["finetune"]
            p = "  ".join(f"{k}-shot {v:.2f}" for k, v in f["prompting_accuracy_by_shots"].items())
            c = "  ".join(f"{k}: {v:.2f}" for k, v in f["finetuned_accuracy_by_examples"].items())
            print(f"{name:>16} prompted: {p}")
            print(f"{'':>16} fine-tuned, 0-shot, by examples seen: {c}")
            print(
                f"{'':>16} 8-shot on the other held-out rules: before "
                f"{f['other_rules_8_shot_before']:.2f}, after {f['other_rules_8_shot_after']:.2f}"
            )


if __name__ == "__main__":
    main()
