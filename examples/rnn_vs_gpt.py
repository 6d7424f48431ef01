"""An LSTM and a GPT of equal size on the same characters: loss, speed, and the serial loop.

    python examples/rnn_vs_gpt.py                    # about three minutes on two cores
    python examples/rnn_vs_gpt.py --steps 100 --report runs/rnn_vs_gpt.json

1. Character-level language models (bytes of the standard library's source, 256 symbols): an
   LSTM (embedding → nn.LSTM → linear) and a GPT with the same number of parameters (±10%),
   trained on the same batches for the same number of tokens with AdamW. Reported: validation
   loss in nats per byte, tokens per second, parameters. Then the GPT goes on for
   --gpt-steps (3× as many by default: what its higher throughput buys in a similar time).
2. The cost of one training step (forward + backward, batch 8) as the sequence grows: the
   LSTM runs T dependent steps, one after another; the GPT runs its n_layer blocks, each one
   parallel pass over all T positions (attention's T² term grows too, but inside one
   matrix product). Timings are interleaved, median of --repeats.
3. Exploding gradients: a vanilla tanh RNN trained with plain SGD at a large learning rate,
   without and with `nn.utils.clip_grad_norm_` — the gradient norm of every step and the final
   loss, over --seeds seeds.

Report keys: `models` (per model: `val_loss`, `tokens_per_second`, `parameters`; the GPT's
`longer` run: `steps`, `val_loss`, `train_seconds`),
`step_ms_by_length` (per model: T → milliseconds), `clipping` (per setting and seed: final loss,
median and largest gradient norm).
"""

from __future__ import annotations

import time

import flags
import numpy as np
from common import write_report

import tinyllm
import tinyllm.nn.functional as F
from tinyllm import nn
from tinyllm.accounting.params import gpt_param_formula
from tinyllm.data.corpus import stdlib_text
from tinyllm.models import GPT, GPTConfig
from tinyllm.optim import SGD, AdamW

VOCAB = 256  # bytes


class CharRNN(nn.Module):
    """Embedding → recurrent layers → a linear read-out at every step."""

    def __init__(self, kind: str, embed: int, hidden: int, layers: int = 1):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, embed)
        self.rnn = getattr(nn, kind)(embed, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, VOCAB)

    def forward(self, idx, targets=None):
        out, _ = self.rnn(self.embed(idx))
        logits = self.head(out)
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))


def build_parser():
    p = flags.parser(__doc__)
    p.add_argument("--steps", type=flags.positive_int, default=300, help="training steps (part 1)")
    p.add_argument("--batch-size", type=flags.positive_int, default=16, help="sequences per step")
    p.add_argument("--seq-len", type=flags.positive_int, default=64, help="T in part 1")
    p.add_argument("--lr", type=flags.finite_positive_float, default=3e-3, help="AdamW (part 1)")
    p.add_argument(
        "--gpt-steps",
        type=flags.positive_int,
        default=None,
        help="the GPT goes on to this many steps (default: 3 × --steps)",
    )
    p.add_argument("--hidden", type=flags.positive_int, default=192, help="the LSTM's H")
    p.add_argument(
        "--data-bytes", type=flags.byte_count, default="600KB", help="stdlib source to read"
    )
    p.add_argument(
        "--lengths",
        type=flags.comma_list(flags.positive_int),
        default=[32, 64, 128, 256],
        help="sequence lengths timed in part 2",
    )
    p.add_argument("--repeats", type=flags.positive_int, default=3, help="timings per length")
    p.add_argument("--clip-steps", type=flags.positive_int, default=120, help="steps of part 3")
    p.add_argument(
        "--clip-lr", type=flags.finite_positive_float, default=2.0, help="SGD's rate (part 3)"
    )
    p.add_argument(
        "--max-norm", type=flags.finite_positive_float, default=1.0, help="the clip (part 3)"
    )
    p.add_argument("--seeds", type=flags.positive_int, default=3, help="seeds of part 3")
    p.add_argument("--seed", type=flags.nonnegative_int, default=0, help="the first seed")
    flags.add_report(p)
    return p


def load_bytes(n_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    data = np.frombuffer(stdlib_text(n_bytes).encode("utf-8"), dtype=np.uint8).astype(np.int64)
    cut = int(len(data) * 0.9)
    return data[:cut], data[cut:]


def batch(rng, data, b: int, t: int):
    start = rng.integers(0, len(data) - t - 1, size=b)
    rows = start[:, None] + np.arange(t + 1)
    return data[rows[:, :-1]], data[rows[:, 1:]]


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def matched_gpt(target: int, block: int, seed: int) -> GPT:
    """The GPT (4 heads, 2 layers) whose width gives the parameter count nearest `target`."""
    best = None
    for width in range(16, 513, 4):
        config = GPTConfig(
            vocab_size=VOCAB, block_size=block, n_layer=2, n_head=4, n_embd=width, dropout=0.0
        )
        n = gpt_param_formula(config).total
        if best is None or abs(n - target) < abs(best[0] - target):
            best = (n, config)
    return GPT(best[1], generator=np.random.default_rng(seed))


def evaluate(model, data, t: int, batches: int = 20) -> float:
    rng = np.random.default_rng(12345)  # the same validation batches for every model
    with tinyllm.no_grad():
        return float(np.mean([float(model(*batch(rng, data, 16, t))[1]) for _ in range(batches)]))


def train_lm(name, model, train, val, args, steps: int) -> dict:
    """AdamW for `steps` steps; validation loss after args.steps (equal tokens) and at the end.
    Only the training steps are timed, not the evaluations."""
    rng = np.random.default_rng(args.seed)
    opt = AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    seconds, losses, out = 0.0, [], {"parameters": count(model)}
    for step in range(1, steps + 1):
        t0 = time.perf_counter()
        x, y = batch(rng, train, args.batch_size, args.seq_len)
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss))
        seconds += time.perf_counter() - t0
        if step % max(1, steps // 5) == 0 or step == steps:
            print(f"   {name:<5} step {step:>4}/{steps}  loss {np.mean(losses[-20:]):.3f}")
        if step == args.steps:
            out["val_loss"] = evaluate(model, val, args.seq_len)
            out["train_seconds"] = seconds
            out["tokens_per_second"] = step * args.batch_size * args.seq_len / seconds
    if steps > args.steps:
        out["longer"] = {
            "steps": steps,
            "val_loss": evaluate(model, val, args.seq_len),
            "train_seconds": seconds,
        }
    return out


def step_ms(models: dict, train, lengths, repeats: int) -> dict:
    """Median ms of one forward + backward at batch 8, lengths and models interleaved."""
    rng = np.random.default_rng(0)
    times = {name: {t: [] for t in lengths} for name in models}
    for _ in range(repeats + 1):  # the first round warms up (kernels, caches) and is dropped
        for t in lengths:
            x, y = batch(rng, train, 8, t)
            for name, model in models.items():
                t0 = time.perf_counter()
                _, loss = model(x, y)
                loss.backward()
                times[name][t].append(1e3 * (time.perf_counter() - t0))
                model.zero_grad()
    return {n: {str(t): float(np.median(v[1:])) for t, v in d.items()} for n, d in times.items()}


def clipping_run(train, args, seed: int, max_norm: float | None) -> dict:
    tinyllm.manual_seed(seed)
    model = CharRNN("RNN", embed=32, hidden=128)
    rng = np.random.default_rng(seed)
    opt = SGD(model.parameters(), lr=args.clip_lr)
    norms, losses = [], []
    for _ in range(args.clip_steps):
        x, y = batch(rng, train, 16, 128)
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm or float("inf"))
        norms.append(float(norm))
        losses.append(float(loss))
        opt.step()
    final = float(np.mean(losses[-20:]))
    return {
        "final_loss": final if np.isfinite(final) else None,
        "median_grad_norm": float(np.median(norms)),
        "max_grad_norm": float(np.max(norms)),
        "first_loss": losses[0],
    }


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.gpt_steps = max(args.steps, args.gpt_steps or 3 * args.steps)
    if max(args.lengths) < args.seq_len:
        args.lengths = sorted(set(args.lengths) | {args.seq_len})
    train, val = load_bytes(args.data_bytes)
    print(f"1. character-level LMs on {len(train):,} bytes of stdlib source, {args.steps} steps "
          f"of {args.batch_size}×{args.seq_len} tokens")  # fmt: skip
    tinyllm.manual_seed(args.seed)
    lstm = CharRNN("LSTM", embed=64, hidden=args.hidden)
    gpt = matched_gpt(count(lstm), max(args.lengths), args.seed)
    print(f"   LSTM {count(lstm):,} parameters (H = {args.hidden}); "
          f"GPT {count(gpt):,} (2 layers, n_embd = {gpt.config.n_embd})")  # fmt: skip
    report: dict = {"seed": args.seed, "models": {}}
    report["models"]["LSTM"] = train_lm("LSTM", lstm, train, val, args, args.steps)
    report["models"]["GPT"] = train_lm("GPT", gpt, train, val, args, args.gpt_steps)
    print(f"\n{'':<6}{'parameters':>12}{'val loss (nats/byte)':>22}{'tokens/s':>12}"
          f"{'train s':>10}   after {args.steps} steps")  # fmt: skip
    for name, r in report["models"].items():
        print(f"{name:<6}{r['parameters']:>12,}{r['val_loss']:>22.3f}"
              f"{r['tokens_per_second']:>12,.0f}{r['train_seconds']:>10.1f}")  # fmt: skip
    longer = report["models"]["GPT"].get("longer")
    if longer:
        print(f"GPT   after {longer['steps']} steps: val loss {longer['val_loss']:.3f} in "
              f"{longer['train_seconds']:.1f} s of training")  # fmt: skip

    print("\n2. one training step (forward + backward, batch 8), milliseconds, by sequence length")
    ms = step_ms({"LSTM": lstm, "GPT": gpt}, train, args.lengths, args.repeats)
    report["step_ms_by_length"] = ms
    print(f"{'T':>6}{'LSTM ms':>10}{'GPT ms':>10}{'LSTM / GPT':>12}   serial steps: LSTM T, GPT 2")
    for t in map(str, args.lengths):
        lstm_ms, gpt_ms = ms["LSTM"][t], ms["GPT"][t]
        print(f"{t:>6}{lstm_ms:>10.1f}{gpt_ms:>10.1f}{lstm_ms / gpt_ms:>12.2f}")

    print(f"\n3. a tanh RNN, SGD at lr {args.clip_lr}, T = 128: without and with clipping "
          f"the gradient norm to {args.max_norm}")  # fmt: skip
    report["clipping"] = {"none": {}, "clipped": {}}
    for seed in range(args.seed, args.seed + args.seeds):
        for key, max_norm in (("none", None), ("clipped", args.max_norm)):
            r = clipping_run(train, args, seed, max_norm)
            report["clipping"][key][str(seed)] = r
            final = "diverged (nan)" if r["final_loss"] is None else f"{r['final_loss']:.3f}"
            norms = f"median {r['median_grad_norm']:.2f}, largest {r['max_grad_norm']:.1f}"
            print(f"   seed {seed}  {key:<8} loss {r['first_loss']:.3f} → {final:<8}  "
                  f"gradient norm {norms}")  # fmt: skip
    write_report(args.report, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
