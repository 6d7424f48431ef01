"""Translation on a synthetic language pair: the bottleneck of seq2seq, attention, transformers.

    python examples/translate.py                      # about four minutes on two cores
    python examples/translate.py --steps 300 --report runs/translate.json

The pair (tinyllm/data/language_pair.py) reorders every phrase, moves the verb to the end and
makes adjectives, articles and the verb agree with nouns far away. Three models learn it from
the same stream of sentence pairs, for the same number of steps:

* `seq2seq` — an LSTM encoder whose last state is all an LSTM decoder gets (Sutskever et al.
  2014): the bottleneck;
* `seq2seq_attention` — the same two LSTMs with Bahdanau's additive attention over every
  encoder state (tinyllm/models/seq2seq.py);
* `transformer` — a T5-style encoder–decoder (tinyllm/models/t5.py), attention everywhere.

Each is scored by greedy decoding of held-out sentences: exact match and token accuracy by
source length. Then the alignment α that the attention model learned for one sentence, as a
text heat map (rows: target words, columns: source words).

Report keys: `accuracy_by_length` and `token_accuracy_by_length` (per model: source-length
range → accuracy in [0, 1]), `parameters`, `final_loss` and `seconds` per model.
"""

from __future__ import annotations

import time

import flags
import numpy as np
from common import write_report

import tinyllm
from tinyllm import nn
from tinyllm.data.language_pair import BOS, EOS, LanguagePair
from tinyllm.models import T5, T5Config
from tinyllm.models.seq2seq import Seq2Seq, alignment_text
from tinyllm.optim import AdamW

BUCKETS = ((5, 7), (8, 10), (11, 13), (14, 17))
MODELS = ("seq2seq", "seq2seq_attention", "transformer")


def build_parser():
    p = flags.parser(__doc__)
    p.add_argument("--steps", type=flags.positive_int, default=600, help="training steps per model")
    p.add_argument(
        "--batch-size", type=flags.positive_int, default=64, help="sentence pairs per step"
    )
    p.add_argument("--lr", type=flags.finite_positive_float, default=3e-3, help="AdamW")
    p.add_argument("--hidden", type=flags.positive_int, default=128, help="the LSTMs' H")
    p.add_argument("--n-embd", type=flags.positive_int, default=80, help="the transformer's width")
    p.add_argument(
        "--eval-sentences",
        type=flags.positive_int,
        default=600,
        help="held-out sentences scored",
    )
    p.add_argument(
        "--models",
        type=flags.comma_list(str, choices=MODELS),
        default=list(MODELS),
        help="which models to train",
    )
    p.add_argument(
        "--seed", type=flags.nonnegative_int, default=0, help="language, data and model seed"
    )
    flags.add_report(p)
    p.add_check(lambda a: "--n-embd must be divisible by 4 (heads)" if a.n_embd % 4 else None)
    return p


class T5Translator:
    """T5 on the pair: one shared vocabulary (source ids, then target ids shifted past them)."""

    def __init__(self, pair: LanguagePair, n_embd: int, seed: int):
        self.pair, self.shift = pair, len(pair.source_vocab)
        config = T5Config(
            vocab_size=self.shift + len(pair.target_vocab),
            block_size=32,
            n_layer=2,
            n_decoder_layer=2,
            n_head=4,
            n_embd=n_embd,
            dropout=0.0,
            pad_token_id=0,
            decoder_start_token_id=self.shift + pair.target_index[BOS],
        )
        self.model = T5(config, generator=np.random.default_rng(seed))

    def loss(self, pairs):
        src, mask, _, labels = self.pair.batch(pairs, pad_side="right")
        labels = np.where(labels >= 0, labels + self.shift, labels)
        return self.model(src, labels=labels, attention_mask=mask)[1]

    def translate(self, pairs, max_new: int):
        src, mask, _, _ = self.pair.batch(pairs, pad_side="right")
        eos = self.shift + self.pair.target_index[EOS]
        out = self.model.generate(src, max_new, eos_token_id=eos, attention_mask=mask)
        return np.maximum(out[:, 1:] - self.shift, 0)  # drop the start token; pads stay 0


class RNNTranslator:
    def __init__(self, pair: LanguagePair, hidden: int, attention: bool, seed: int):
        tinyllm.manual_seed(seed)
        self.pair = pair
        self.model = Seq2Seq(
            len(pair.source_vocab), len(pair.target_vocab), 64, hidden, attention=attention
        )

    def loss(self, pairs):
        src, mask, tgt_in, labels = self.pair.batch(pairs)
        return self.model(src, tgt_in, labels, src_mask=mask)[1]

    def translate(self, pairs, max_new: int, with_attention: bool = False):
        src, mask, _, _ = self.pair.batch(pairs)
        bos, eos = self.pair.target_index[BOS], self.pair.target_index[EOS]
        ids, alpha = self.model.generate(src, max_new, bos, eos, src_mask=mask)
        return (ids, alpha) if with_attention else ids


def train(name, translator, pair, args) -> dict:
    rng = np.random.default_rng(args.seed)  # the same sentence stream for every model
    model = translator.model
    opt = AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    t0, losses = time.perf_counter(), []
    for step in range(1, args.steps + 1):
        loss = translator.loss([pair.sample(rng) for _ in range(args.batch_size)])
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss))
        if step % max(1, args.steps // 4) == 0 or step == args.steps:
            print(f"   {name:<18} step {step:>4}/{args.steps}  loss {np.mean(losses[-20:]):.3f}")
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "final_loss": float(np.mean(losses[-20:])),
        "seconds": time.perf_counter() - t0,
    }


def score(translator, pair, held_out) -> tuple[dict, dict]:
    exact, tokens = {}, {}
    for lo, hi in BUCKETS:
        pairs = [p for p in held_out if lo <= len(p[0]) <= hi]
        if not pairs:
            continue
        out = translator.translate(pairs, max_new=max(len(b) for _, b in pairs) + 2)
        hits, right, total = 0, 0, 0
        for (_, target), row in zip(pairs, out):
            guess = pair.decode(row)
            hits += guess == target
            right += sum(g == t for g, t in zip(guess, target))
            total += max(len(target), len(guess))
        exact[f"{lo}-{hi}"] = hits / len(pairs)
        tokens[f"{lo}-{hi}"] = right / total
    return exact, tokens


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    pair = LanguagePair(seed=args.seed)
    held = np.random.default_rng(10_000 + args.seed)
    held_out = [pair.sample(held) for _ in range(args.eval_sentences)]
    print(f"language pair: {len(pair.source_vocab)} source and {len(pair.target_vocab)} target "
          f"words; {args.steps} steps of {args.batch_size} sentence pairs per model")  # fmt: skip
    src, tgt = held_out[0]
    print(f"   e.g. {' '.join(src)}\n     →  {' '.join(tgt)}")
    builders = {
        "seq2seq": lambda: RNNTranslator(pair, args.hidden, False, args.seed),
        "seq2seq_attention": lambda: RNNTranslator(pair, args.hidden, True, args.seed),
        "transformer": lambda: T5Translator(pair, args.n_embd, args.seed),
    }
    report: dict = {"seed": args.seed, "accuracy_by_length": {}, "token_accuracy_by_length": {}}
    translators = {}
    for name in args.models:
        translators[name] = builders[name]()
        report[name] = train(name, translators[name], pair, args)
        exact, tokens = score(translators[name], pair, held_out)
        report["accuracy_by_length"][name] = exact
        report["token_accuracy_by_length"][name] = tokens

    counts = {f"{lo}-{hi}": sum(lo <= len(s) <= hi for s, _ in held_out) for lo, hi in BUCKETS}
    header = "".join(f"{k + ' (' + str(n) + ')':>14}" for k, n in counts.items())
    print(f"\nexact match by source length (sentences){'':<2}\n{'':<20}{header}"
          f"{'parameters':>12}{'seconds':>9}")  # fmt: skip
    for name in args.models:
        cells = "".join(f"{report['accuracy_by_length'][name].get(k, float('nan')):>14.3f}"
                        for k in counts)  # fmt: skip
        print(f"{name:<20}{cells}{report[name]['parameters']:>12,}{report[name]['seconds']:>9.0f}")
    print("token accuracy")
    for name in args.models:
        cells = "".join(f"{report['token_accuracy_by_length'][name].get(k, float('nan')):>14.3f}"
                        for k in counts)  # fmt: skip
        print(f"{name:<20}{cells}")

    if "seq2seq_attention" in translators:
        longest = max(held_out, key=lambda p: len(p[0]))
        ids, alpha = translators["seq2seq_attention"].translate([longest], 24, with_attention=True)
        guess = pair.decode(ids[0])
        print("\nthe attention model's alignment α of the longest held-out sentence "
              f"({'correct' if guess == longest[1] else 'wrong'} translation):")  # fmt: skip
        print(alignment_text(alpha[0], longest[0], guess))
    write_report(args.report, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
