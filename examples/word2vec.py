"""word2vec: skip-gram and CBOW with negative sampling, scored on a language with known answers.

    python examples/word2vec.py                       # about a minute on two cores
    python examples/word2vec.py --sentences 20000 --vector-size 32 --report runs/w2v.json

1. The synthetic language of tinyllm/data/word_grammar.py (word classes that fill the same
   slots; countries × roles and genders × identities whose contexts are sums of attributes) is
   written out, and skip-gram and CBOW are trained on it. Each is scored by
   `analogy_accuracy` (3CosAdd, top-1, over every question of both relation families) and by
   `neighbour_class_precision` (of each classed word's 5 nearest neighbours, the fraction of its
   class), beside the same scores of the untrained vectors; then, on a sixteenth of the text,
   with two of the paper's choices switched off (no subsampling; uniform instead of
   unigram^0.75 noise); and as the text grows (a learning curve).
2. A projection: the first two principal components of the country and capital vectors, as a
   text scatter — the country → capital offset is one direction for every country.
3. The default corpus's identifiers (Python's standard library, one source line a sentence):
   nearest neighbours of a few names, and the class precision of hand-made groups (builtin
   types, exceptions, constants, statement keywords) beside that of untrained vectors.

The report's `analogy_accuracy` and `neighbour_class_precision` are skip-gram's on the full
synthetic corpus; `models` holds every run.
"""

from __future__ import annotations

import re
import time

import flags
import numpy as np
from common import write_report

from tinyllm.data.corpus import stdlib_text
from tinyllm.data.word_grammar import COUNTRIES, WordGrammar
from tinyllm.models.word2vec import Word2Vec, analogy_accuracy, neighbour_class_precision

IDENTIFIER_GROUPS = {
    "type": "int str float bytes list dict tuple set bool frozenset bytearray complex".split(),
    "exception": (
        "ValueError TypeError KeyError IndexError AttributeError OSError RuntimeError "
        "ImportError NotImplementedError StopIteration"
    ).split(),
    "constant": "True False None".split(),
    "statement": "if elif else for while try except finally with return".split(),
}
PROBES = ("True", "int", "ValueError", "encode", "os", "append", "i")


def build_parser():
    p = flags.parser(__doc__)
    p.add_argument(
        "--sentences",
        type=flags.positive_int,
        default=60_000,
        help="sentences of the synthetic language to train on",
    )
    p.add_argument("--vector-size", type=flags.positive_int, default=50, help="D")
    p.add_argument("--window", type=flags.positive_int, default=5, help="largest window b")
    p.add_argument("--negative", type=flags.positive_int, default=5, help="noise words K")
    p.add_argument("--epochs", type=flags.positive_int, default=5, help="passes over the text")
    p.add_argument(
        "--alpha",
        type=flags.finite_positive_float,
        default=None,
        help="initial learning rate, decaying linearly to 1e-4 "
        "(default: 0.025 for skip-gram, 0.05 for CBOW)",
    )
    p.add_argument(
        "--sample",
        type=flags.finite_nonnegative_float,
        default=1e-3,
        help="subsampling threshold s (0: off)",
    )
    p.add_argument(
        "--stdlib-bytes",
        type=flags.byte_count,
        default="4MB",
        help="bytes of standard-library source for part 3",
    )
    p.add_argument("--no-stdlib", action="store_true", help="skip part 3")
    p.add_argument(
        "--curve",
        type=flags.comma_list(flags.positive_int),
        default=None,
        help="sentence counts of the learning curve (default: 1/64, 1/16, 1/4 of --sentences)",
    )
    p.add_argument(
        "--seed", type=flags.nonnegative_int, default=0, help="grammar, text and training seed"
    )
    flags.add_report(p)
    return p


def score(model, grammar) -> dict:
    return {
        "analogy_accuracy": analogy_accuracy(model, grammar.analogies),
        "neighbour_class_precision": neighbour_class_precision(model, grammar.word_class),
    }


def train(args, sentences, **overrides) -> tuple[Word2Vec, list, float]:
    options = dict(
        vector_size=args.vector_size,
        window=args.window,
        negative=args.negative,
        epochs=args.epochs,
        alpha=args.alpha,
        sample=args.sample,
        seed=args.seed,
    )
    options.update(overrides)
    t0 = time.perf_counter()
    model = Word2Vec(**options)
    losses = model.train(sentences)
    return model, losses, time.perf_counter() - t0


def text_scatter(points: dict, width: int = 64, height: int = 20) -> str:
    """Words at their 2-D positions; a word is drawn from its first letter onward."""
    xy = np.array(list(points.values()))
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    grid = [[" "] * (width + 10) for _ in range(height + 1)]
    for word, (x, y) in points.items():
        col = int(round((x - lo[0]) / max(hi[0] - lo[0], 1e-12) * width))
        row = height - int(round((y - lo[1]) / max(hi[1] - lo[1], 1e-12) * height))
        while row < height and any(c != " " for c in grid[row][col : col + len(word) + 1]):
            row += 1  # keep words apart: move down to the next free row
        for j, ch in enumerate(word[:10]):
            if col + j < len(grid[row]):
                grid[row][col + j] = ch
    return "\n".join("".join(r).rstrip() for r in grid)


def projection(model, grammar) -> str:
    words = [w for row in COUNTRIES for w in row[:2]]
    u = model.unit_vectors()[[model.key_to_index[w] for w in words]]
    centred = u - u.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    return text_scatter({w: p for w, p in zip(words, xy)})


def identifiers(args, report: dict) -> None:
    text = stdlib_text(args.stdlib_bytes)
    sentences = [re.findall(r"[A-Za-z_][A-Za-z0-9_]*", line) for line in text.splitlines()]
    sentences = [s for s in sentences if len(s) > 1]
    tokens = sum(map(len, sentences))
    print(f"\n3. standard-library identifiers: {tokens:,} tokens in {len(sentences):,} lines")
    model, losses, seconds = train(args, sentences, min_count=5, epochs=3, vector_size=64)
    groups = {w: c for c, ws in IDENTIFIER_GROUPS.items() for w in ws}
    untrained = Word2Vec(vector_size=64, min_count=5, seed=args.seed).build_vocab(sentences)
    ncp, ncp0 = (neighbour_class_precision(m, groups) for m in (model, untrained))
    print(
        f"   skip-gram, {len(model.index_to_key):,} words, {seconds:.1f} s, "
        f"loss {losses[0]:.3f} → {losses[-1]:.3f}"
    )
    neighbours = {}
    for w in PROBES:
        if w in model:
            neighbours[w] = [n for n, _ in model.most_similar(w, 6)]
            print(f"   {w:>12}: {', '.join(neighbours[w])}")
    print(f"   class precision of the groups: {ncp:.3f} (untrained vectors {ncp0:.3f})")
    report["stdlib"] = {
        "tokens": tokens,
        "vocabulary": len(model.index_to_key),
        "losses": losses,
        "neighbours": neighbours,
        "neighbour_class_precision": ncp,
        "neighbour_class_precision_untrained": ncp0,
    }


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    grammar = WordGrammar(seed=args.seed)
    sentences = grammar.sentences(args.sentences, seed=args.seed)
    tokens = sum(map(len, sentences))
    print(
        f"1. synthetic language: {args.sentences:,} sentences, {tokens:,} tokens, "
        f"{len(grammar.analogies)} analogy questions, {len(grammar.word_class)} classed words"
    )
    report: dict = {"seed": args.seed, "tokens": tokens, "models": {}}
    untrained = Word2Vec(vector_size=args.vector_size, seed=args.seed).build_vocab(sentences)
    rows = [("untrained vectors", score(untrained, grammar), None, None)]
    report["models"]["untrained"] = rows[0][1]
    for label, key, overrides in (("skip-gram", "skipgram", {}), ("CBOW", "cbow", {"sg": False})):
        model, losses, seconds = train(args, sentences, **overrides)
        s = score(model, grammar)
        rows.append((label, s, losses, seconds))
        report["models"][key] = {**s, "losses": losses, "seconds": seconds}
        print(
            f"   {label:<10} loss {losses[0]:.3f} → {losses[-1]:.3f}  {seconds:5.1f} s  "
            f"analogy {s['analogy_accuracy']:.3f}  neighbours {s['neighbour_class_precision']:.3f}"
        )
        if key == "skipgram":
            best = model
            by_class = neighbour_class_precision(model, grammar.word_class, by_class=True)
            report["models"][key]["neighbour_class_precision_by_class"] = by_class
            print("     by class: " + ", ".join(f"{c} {v:.2f}" for c, v in by_class.items()))
    report.update({k: report["models"]["skipgram"][k] for k in rows[1][1]})

    small = max(1, args.sentences // 16)
    print(f"   the paper's choices, switched off one at a time ({small:,} sentences, skip-gram):")
    report["ablations"] = {"sentences": small}
    for label, key, overrides in (
        ("as in the paper", "paper", {}),
        ("no subsampling", "no_subsampling", {"sample": 0.0}),
        ("uniform noise", "uniform_noise", {"ns_exponent": 0.0}),
    ):
        model, losses, seconds = train(args, sentences[:small], **overrides)
        s = score(model, grammar)
        report["ablations"][key] = {**s, "seconds": seconds}
        print(
            f"     {label:<16} {seconds:5.1f} s  analogy {s['analogy_accuracy']:.3f}  "
            f"neighbours {s['neighbour_class_precision']:.3f}"
        )

    curve = args.curve or sorted({max(1, args.sentences // d) for d in (64, 16, 4)})
    print("   learning curve (skip-gram):")
    report["learning_curve"] = {}
    for n in curve:
        model, _, _ = train(args, sentences[:n])
        s = score(model, grammar)
        report["learning_curve"][str(n)] = s
        print(
            f"     {n:>8,} sentences  analogy {s['analogy_accuracy']:.3f}  "
            f"neighbours {s['neighbour_class_precision']:.3f}"
        )

    print(f"\n{'':<28}{'analogy accuracy':>18}{'neighbour class precision':>28}")
    for label, s, _, _ in rows:
        print(f"{label:<28}{s['analogy_accuracy']:>18.3f}{s['neighbour_class_precision']:>28.3f}")
    for a, b, c in (
        ("france", "paris", "japan"),
        ("king", "queen", "man"),
        ("rome", "italian", "tokyo"),
    ):
        print(f"   {a} : {b} :: {c} : {best.analogy(a, b, c)[0][0]}")

    print("\n2. countries and capitals, first two principal components of skip-gram's vectors:")
    print(projection(best, grammar))

    if not args.no_stdlib:
        identifiers(args, report)
    write_report(args.report, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
