"""In-context learning: a GPT that reads a new rule off the demonstrations in its prompt.

    python examples/icl.py                          # two model sizes, one seed
    python examples/icl.py --seed 2 --report runs/icl.json

Pre-training data is a mixture of prompted tasks (tinyllm/data/tasks): letter substitutions
whose rule — a random permutation of the six letters a…f — is drawn afresh for every prompt,
from the *training* rules only, beside named string transformations (rev, sort, upper, …) on
other letters. Every substitution prompt holds k ∈ 0..8 demonstrations "input>output", then a
query:

    subst
    c>f
    a>e
    d>              the model writes "f" and a newline only if a demonstration showed d

The loss is the cross-entropy of the answer tokens (the demonstrations' inputs are random
letters: their loss would only add noise). Then, for each model size, the script measures exact
match (greedy decoding) on *held-out* rules — rules that no training prompt used, so nothing
about them can have been memorized — at k = 0 … 8 demonstrations. k = 0 can only be a guess
(1 in 6); a model that reads the prompt climbs with k, up to the ceiling of a perfect reader
(printed beside it: a query whose letter no demonstration shows can only be guessed among the
letters not yet used).

It also shows

- the attention of the head that does the reading (from the query to the demonstration of the
  same letter: the lookup an induction head performs) as a text heat-map;
- k beyond the context: prompts with 12 or 16 demonstrations do not fit the block, so the
  oldest ones are dropped, and accuracy stops rising where the context is full;
- prompting against fine-tuning: each model, fine-tuned briefly on zero-shot prompts of one
  held-out rule, against its few-shot accuracy on that rule — and what fine-tuning on one rule
  does to its in-context reading of the others.

Two choices make the effect appear in minutes on two cores (`--tokens chars` and `--init gpt2`
undo them; docs/16 shows those runs). The tokenizer is one token per character except that a
demonstration "x>y" and a query "x>" over a…f are one token each — the merges a BPE tokenizer
trained on such prompts makes first — so a demonstration's input and output sit in one position
and one attention layer can look the rule up; with one token per character the lookup needs a
two-layer induction circuit (a previous-token head feeding the lookup head), which this budget
does not train. And the weights start at PyTorch's scales (Linear N(0, 1/fan_in), embeddings
N(0, 0.3²)) instead of GPT-2's N(0, 0.02²), which at width 32 leaves every attention logit near
zero and the model on a long plateau.
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
SIZES = {"tiny": (2, 2, 16), "small": (2, 2, 32), "medium": (2, 4, 64), "large": (2, 4, 96)}
RULE_LETTERS = "abcdef"  # the substitution alphabet
STRING_LETTERS = "ghijkl"  # the named string tasks use other letters (no pair tokens)
# the named string tasks and their headers
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
REACH = 0.75  # "needs fewer shots": the shots at which accuracy first reaches this
PAD = "\0"
IGNORE = -100
SHADES = " .:-=+*#%@"


class PairTokenizer:
    """Characters, plus one token for each demonstration "x>y" and each query "x>" with x, y in
    RULE_LETTERS; text is split by greedy longest match (at most 3 characters a token)."""

    def __init__(self, pairs: bool = True):
        chars = PAD + NEWLINE + SEP + string.ascii_lowercase + string.ascii_uppercase
        chars += string.digits + "_"
        self.tokens = list(chars)
        if pairs:  # (pairs=False: one token per character, the ablation)
            self.tokens += [x + SEP + y for x in RULE_LETTERS for y in RULE_LETTERS]
            self.tokens += [x + SEP for x in RULE_LETTERS]
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.vocab_size = len(self.tokens)

    def encode(self, text: str) -> list[int]:
        out, i = [], 0
        while i < len(text):
            for n in (3, 2, 1):
                piece = text[i : i + n]
                if len(piece) == n and piece in self.ids:
                    out.append(self.ids[piece])
                    i += n
                    break
            else:
                raise ValueError(f"PairTokenizer: no token for character {text[i]!r}")
        return out

    def decode(self, ids) -> str:
        return "".join(self.tokens[int(i)] for i in ids)


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
        default=0.8,
        help="share of substitution prompts in the mixture (the rest: string tasks)",
    )
    p.add_argument(
        "--tokens",
        choices=["pairs", "chars"],
        default="pairs",
        help="pairs: a demonstration 'x>y' is one token; chars: one token per character",
    )
    p.add_argument(
        "--init",
        choices=["torch", "gpt2"],
        default="torch",
        help="initial weight scales: PyTorch-like (Linear 1/fan_in, embeddings 0.3²) or "
        "GPT-2's N(0, 0.02²)",
    )
    p.add_argument(
        "--block-size",
        type=flags.int_in(16, 512),
        default=None,
        help="context length in tokens (default: what an 8-shot substitution prompt and its "
        "answer need, 24 with pair tokens, 42 with characters)",
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
    flags.add_report(p)
    return p


# ---- data: prompts → padded (x, y) batches -------------------------------------------------


def string_task(name: str, shots) -> StringTask:
    return StringTask(
        name, length=2, alphabet=STRING_LETTERS, shots=shots, header=STRING_TASKS[name]
    )


def pretraining_mixture(subst_weight: float) -> Mixture:
    """Substitutions on training rules (0..8 shots) plus the named string tasks (0..2 shots)."""
    tasks = [SubstitutionTask(RULE_LETTERS, length=1, shots=(0, 8), split="train")]
    tasks += [string_task(n, shots=(0, 2)) for n in STRING_TASKS]
    rest = (1.0 - subst_weight) / len(STRING_TASKS)
    return Mixture(tasks, [subst_weight] + [rest] * len(STRING_TASKS))


def heldout_task(shots, rules=None) -> SubstitutionTask:
    return SubstitutionTask(RULE_LETTERS, length=1, shots=shots, split="heldout", rules=rules)


def fit_prompt(tok, example, block_size: int) -> list[int]:
    """The prompt's token ids, its oldest demonstrations dropped (the header line kept) until
    prompt and answer fit the block: what a fixed context does to a long few-shot prompt."""
    lines = example.prompt.split(NEWLINE)
    header, demos, query = lines[0], lines[1:-1], lines[-1]
    room = block_size + 1 - len(tok.encode(example.target))
    while True:
        ids = tok.encode(NEWLINE.join([header] + demos + [query]))
        if not demos or len(ids) <= room:
            return ids
        demos = demos[1:]


def encode_batch(tok, examples, block_size: int):
    """x (B, T) ids and y (B, T) targets: prompt and answer encoded apart (so the query token
    never merges with its answer), the loss on the answer's tokens only, right-padded."""
    x = np.zeros((len(examples), block_size), dtype=np.int64)
    y = np.full((len(examples), block_size), IGNORE, dtype=np.int64)
    for i, e in enumerate(examples):
        p = fit_prompt(tok, e, block_size)
        ids = p + tok.encode(e.target)
        if len(ids) > block_size + 1:
            raise ValueError(f"a prompt of {len(ids)} tokens exceeds the block {block_size}")
        x[i, : len(ids) - 1] = ids[:-1]
        y[i, len(p) - 1 : len(ids) - 1] = ids[len(p) :]
    return x, y


# ---- evaluation ---------------------------------------------------------------------------


def exact_match(model, tok, examples, block_size: int, batch: int = 200) -> float:
    """Mean exact-match score of greedy completions.

    One forward pass per batch suffices: with the answer fed in (teacher forcing), the arg-max
    at the answer's positions is the greedy decoder's output for as long as the decoder has
    been right so far, so the completion equals the answer exactly when greedy decoding would
    have produced it. The completion is then scored by the task's own `score`."""
    scores = []
    for s in range(0, len(examples), batch):
        chunk = examples[s : s + batch]
        x, y = encode_batch(tok, chunk, block_size)
        with no_grad():
            logits, _ = model(x)
        pred = logits.data.argmax(-1)  # (B, T)
        for i, e in enumerate(chunk):
            where = y[i] != IGNORE
            scores.append(e.score(tok.decode(pred[i][where])))
    return float(np.mean(scores))


def heldout_examples(shots: int, n: int, seed: int):
    return heldout_task(shots).examples(n, seed)


def ceiling(tok, examples, block_size: int) -> float:
    """The accuracy of a perfect reader of the prompt: 1 when a demonstration that fits the
    context shows the query's letter, else a guess among the letters no demonstration used."""
    m = len(RULE_LETTERS)
    acc = []
    for e in examples:
        text = tok.decode(fit_prompt(tok, e, block_size))
        demos = [line.split(SEP) for line in text.split(NEWLINE)[1:-1]]
        shown = {x: y for x, y in demos}
        query = e.meta["query"]
        acc.append(1.0 if query in shown else 1.0 / (m - len(shown)))
    return float(np.mean(acc))


# ---- the lookup head --------------------------------------------------------------------------


def attention_maps(model, ids) -> list[np.ndarray]:
    """softmax(q kᵀ/√d + causal mask) of every layer for one sequence: (n_head, T, T) each."""
    tr = model.transformer
    ids = np.asarray(ids)
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


def lookup_targets(tok, ids: list[int], query: str) -> list[int]:
    """Positions of the demonstration tokens "x>y" whose input x is the query's letter: where a
    head that reads the rule should look from the query."""
    return [i for i, t in enumerate(ids) if len(tok.tokens[t]) == 3 and tok.tokens[t][0] == query]


def lookup_scores(model, tok, examples, block_size: int) -> np.ndarray:
    """(n_layer, n_head, letters): mean attention from the query token on the demonstrations of
    the query's letter, per query letter (prompts that show it at least once). Heads may share
    the work, each reading some of the letters."""
    c = model.config
    m = len(RULE_LETTERS)
    total, count = np.zeros((c.n_layer, c.n_head, m)), np.zeros(m)
    for e in examples:
        ids = fit_prompt(tok, e, block_size)
        where = lookup_targets(tok, ids, e.meta["query"])
        if where:
            j = RULE_LETTERS.index(e.meta["query"])
            for layer, a in enumerate(attention_maps(model, ids)):
                total[layer, :, j] += a[:, -1, where].sum(-1)
            count[j] += 1
    return total / np.maximum(count, 1)


def heat_map(model, tok, example, block_size: int, layer: int, head: int) -> list[str]:
    """Text heat-map of one head's attention from the query token: a column per prompt token
    (its text above), the shade its weight relative to the largest."""
    ids = fit_prompt(tok, example, block_size)
    a = attention_maps(model, ids)[layer][head][-1]
    a = a / a.max()
    names = [tok.tokens[t].replace(NEWLINE, "|") for t in ids]
    width = max(len(n) for n in names)
    cells = [SHADES[min(len(SHADES) - 1, int(v * len(SHADES)))] * width for v in a]
    return [
        "  token     " + " ".join(n.ljust(width) for n in names),
        "  attention " + " ".join(cells),
    ]


# ---- training -------------------------------------------------------------------------------


def torch_scale_init(model: GPT, rng: np.random.Generator, embedding_std: float = 0.3) -> None:
    """Re-draw the weights at PyTorch-like scales: every Linear N(0, 1/fan_in), the token and
    position tables N(0, embedding_std²); biases and LayerNorms stay as GPT-2 set them."""
    for name, p in model.named_parameters():
        if name.endswith(("wte.weight", "wpe.weight")):
            p.data[...] = rng.normal(0.0, embedding_std, p.shape)
        elif p.data.ndim == 2:
            p.data[...] = rng.normal(0.0, 1.0 / np.sqrt(p.shape[1]), p.shape)


def train(model, tok, task, steps, batch_size, lr, block_size, rng, log, log_interval, name):
    """AdamW (β = 0.9, 0.95; decay 0.1 on matrices), warmup then cosine; → losses per step."""
    opt = AdamW(param_groups_for_weight_decay(model, 0.1), lr=lr, betas=(0.9, 0.95))
    losses, t0 = [], time.perf_counter()
    warmup = max(1, steps // 20)
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = warmup_cosine(step, lr, warmup, steps, lr * 0.1)
        x, y = encode_batch(tok, [task.sample(rng) for _ in range(batch_size)], block_size)
        t = int((x != 0).sum(0).nonzero()[0].max()) + 1  # drop all-padding columns
        _, loss = model(x[:, :t], y[:, :t])
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if log and (step % log_interval == 0 or step == steps - 1):
            log(
                f"[{name}] step {step:5d}  answer loss {np.mean(losses[-log_interval:]):.3f}  "
                f"{time.perf_counter() - t0:6.1f} s"
            )
    return losses


def finetune_vs_prompting(model, tok, args, rule, eval_seed, log):
    """Fine-tune a copy of `model` on zero-shot prompts of one held-out rule; → its accuracy
    on that rule (k = 0) after 8, 16, 32, … examples, beside few-shot prompting of the base
    model on the same rule, and both models' 8-shot accuracy on the other held-out rules."""
    n = args.eval_examples
    one = {k: heldout_task(k, rules=[rule]) for k in (0, 1, 2, 4, 8)}
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
    zero_shot = one[0].examples(n, eval_seed + 1000)
    curve = {}
    for step in range(1, args.finetune_steps + 1):
        batch = [one[0].sample(rng) for _ in range(args.finetune_batch_size)]
        x, y = encode_batch(tok, batch, args.block_size)
        t = int((x != 0).sum(0).nonzero()[0].max()) + 1
        _, loss = tuned(x[:, :t], y[:, :t])
        opt.zero_grad()
        loss.backward()
        opt.step()
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
    model = GPT(cfg, generator=np.random.default_rng(seed))  # GPT-2's scales
    if args.init == "torch":
        torch_scale_init(model, np.random.default_rng(seed))
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
    acc, top = {}, {}
    for k in EVAL_SHOTS + BEYOND_SHOTS:
        exs = heldout_examples(k, n, eval_seed + k)
        acc[str(k)] = exact_match(model, tok, exs, args.block_size)
        top[str(k)] = ceiling(tok, exs, args.block_size)
    seen = {
        str(k): exact_match(
            model,
            tok,
            SubstitutionTask(RULE_LETTERS, 1, k, "train").examples(n, eval_seed + 50 + k),
            args.block_size,
        )
        for k in (0, 8)
    }
    named = {
        t: exact_match(
            model, tok, string_task(t, shots=0).examples(n // 4, eval_seed + 60), args.block_size
        )
        for t in STRING_TASKS
    }
    line = "  ".join(f"{k}-shot {acc[k]:.2f}" for k in map(str, EVAL_SHOTS))
    log(f"[{name}] held-out rules: {line}")
    by_letter = lookup_scores(model, tok, heldout_examples(4, 300, eval_seed + 77), args.block_size)
    scores = by_letter.mean(-1)  # (n_layer, n_head)
    layer, head, letter = np.unravel_index(int(np.argmax(by_letter)), by_letter.shape)
    out = {
        "n_layer": n_layer,
        "n_head": n_head,
        "n_embd": n_embd,
        "params": n_params,
        "train_seconds": train_seconds,
        "final_loss": float(np.mean(losses[-50:])),
        "losses": losses,
        "accuracy_by_shots": {k: acc[k] for k in REPORT_SHOTS},
        "accuracy_by_shots_all": acc,
        "ceiling_by_shots": top,
        "accuracy_seen_rules_by_shots": seen,
        "zero_shot_named_tasks": named,
        "shots_to_75": shots_to_reach(acc, REACH),
        "lookup_attention": scores.tolist(),
        "lookup_attention_by_letter": by_letter.tolist(),
        "lookup_head": [int(layer), int(head)],
        "lookup_letter": RULE_LETTERS[int(letter)],
    }
    return model, out


def shots_to_reach(acc: dict, level: float) -> float | None:
    """The shot count where accuracy first reaches `level`, interpolated linearly between the
    evaluated shot counts; None if it never does."""
    ks = EVAL_SHOTS
    if acc[str(ks[0])] >= level:
        return float(ks[0])
    for a, b in zip(ks, ks[1:]):
        lo, hi = acc[str(a)], acc[str(b)]
        if hi >= level:
            return a + (b - a) * (level - lo) / (hi - lo)
    return None


def main(argv=None):
    args = build_parser().parse_args(argv)
    tok = PairTokenizer(pairs=args.tokens == "pairs")
    if args.block_size is None:
        args.block_size = 24 if args.tokens == "pairs" else 42
    report = {"config": vars(args).copy(), "sizes": {}}
    n_train = len(SubstitutionTask(RULE_LETTERS, split="train").all_rules())
    n_held = len(SubstitutionTask(RULE_LETTERS, split="heldout").all_rules())
    print(
        f"in-context learning: {n_train} training rules, {n_held} held-out rules; sizes "
        f"{','.join(args.sizes)}; {args.steps} steps of {args.batch_size} prompts; "
        f"seed {args.seed}"
    )
    models = {}
    for name in args.sizes:
        models[name], report["sizes"][name] = run_size(name, args, tok, print)
    held_rule = SubstitutionTask(RULE_LETTERS, split="heldout").all_rules()[0]
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
    first = next(iter(sizes.values()))
    ks = [str(k) for k in EVAL_SHOTS + BEYOND_SHOTS]
    print("\nexact match on held-out rules by shots (ceiling: a perfect reader of the prompt)")
    print(f"{'shots':>18} " + " ".join(f"{k:>5}" for k in ks))
    print(f"{'ceiling':>18} " + " ".join(f"{first['ceiling_by_shots'][k]:5.2f}" for k in ks))
    for name, r in sizes.items():
        label = f"{name} ({r['params']:,})"
        print(f"{label:>18} " + " ".join(f"{r['accuracy_by_shots_all'][k]:5.2f}" for k in ks))
    print(
        f"(k = {', '.join(map(str, BEYOND_SHOTS))}: the oldest demonstrations are dropped to fit "
        f"the {args.block_size}-token context)"
    )
    print(
        f"\nshots to reach {REACH:.0%} on held-out rules; rules seen in training; named tasks "
        "at k=0"
    )
    for name, r in sizes.items():
        s = r["shots_to_75"]
        named = np.mean(list(r["zero_shot_named_tasks"].values()))
        seen = r["accuracy_seen_rules_by_shots"]
        print(
            f"{name:>18} {('never' if s is None else f'{s:.1f}'):>6}   seen rules 0-shot "
            f"{seen['0']:.2f} 8-shot {seen['8']:.2f}   named tasks 0-shot {named:.2f}"
        )
    name = list(sizes)[-1]
    layer, head = sizes[name]["lookup_head"]
    letter = sizes[name]["lookup_letter"]
    by_letter = np.array(sizes[name]["lookup_attention_by_letter"])
    print(
        f"\n[{name}] attention from the query token on the demonstrations of its letter "
        f"(mean over held-out 4-shot prompts), per head and query letter {RULE_LETTERS}:"
    )
    for i, heads in enumerate(by_letter):
        for j, row in enumerate(heads):
            print(f"  layer {i} head {j}: " + " ".join(f"{v:.2f}" for v in row))
    print(
        f"layer {layer} head {head} on three held-out 6-shot prompts whose query is {letter}> "
        "('|' is a newline):"
    )
    shown = [
        e
        for e in heldout_examples(6, 200, 30_000)
        if e.meta["query"] == letter and lookup_targets(tok, fit_prompt(tok, e, 10**6), letter)
    ]
    for ex in shown[:3]:
        for line in heat_map(models[name], tok, ex, args.block_size, layer, head):
            print(line)
    if "finetune" in first:
        print("\nprompting vs fine-tuning on one held-out rule (exact match on that rule)")
        for name, r in sizes.items():
            f = r["finetune"]
            p = "  ".join(f"{k}-shot {v:.2f}" for k, v in f["prompting_accuracy_by_shots"].items())
            c = "  ".join(f"{k}: {v:.2f}" for k, v in f["finetuned_accuracy_by_examples"].items())
            print(f"{name:>18} prompted: {p}")
            print(f"{'':>18} fine-tuned, 0-shot, by examples seen: {c}")
            print(
                f"{'':>18} 8-shot on the other held-out rules: before "
                f"{f['other_rules_8_shot_before']:.2f}, after {f['other_rules_8_shot_after']:.2f}"
            )


if __name__ == "__main__":
    main()
