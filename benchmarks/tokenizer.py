"""Byte-level BPE: training speed, encoding speed and compression on the stdlib corpus.

    python benchmarks/tokenizer.py
    python benchmarks/tokenizer.py --sizes-mb 2 5 --vocab-sizes 512 2048 8192

Times are CPU seconds of this (single-threaded) process, so that other load on a shared
machine does not inflate them; wall time on an idle machine is about the same.

For each corpus size (the first N MB of tinyllm's stdlib corpus, in its fixed file order) and
vocabulary size it prints:
- train s:    wall time of ByteLevelBPE.train (pre-split + counting + merges), and its parts;
- train MB/s: corpus megabytes per training second;
- enc MB/s:   encoding throughput on the training text with an empty chunk cache (a first pass);
- bytes/tok:  compression, UTF-8 bytes per token, on the training text and on held-out text
              (the validation tail of a 10 MB corpus read, which the training slice never sees).

Then, side by side in one run, the readable references against the fast versions: the
per-character pre-split scanner against the `re` pattern, and the recount-everything trainer
against the incremental one (on a slice small enough for the reference to finish).

Numbers depend on the Python version (the corpus is its stdlib) and on the machine.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from tinyllm.data.bpe import ByteLevelBPE, standard_special_tokens
from tinyllm.data.bpe_train import learn_merges, learn_merges_reference
from tinyllm.data.corpus import load_corpus, stdlib_text
from tinyllm.data.pretokenize import gpt2_pattern, pre_split, pre_split_reference

MB = 1_000_000


REPEATS = 1


def timed(fn, *args, **kwargs):
    """(result, seconds), the fastest of REPEATS runs. CPU seconds of this process, not wall
    time: the machine may be shared, and the work is single-threaded, so CPU time is what the
    code itself costs."""
    best = float("inf")
    for _ in range(REPEATS):
        t0 = time.process_time()
        out = fn(*args, **kwargs)
        best = min(best, time.process_time() - t0)
    return out, best


def word_counts(text: str) -> dict[bytes, int]:
    counts = Counter(pre_split(text))
    return {c.encode("utf-8", "surrogatepass"): f for c, f in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[2, 5])
    parser.add_argument("--vocab-sizes", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="run each measurement this many times and keep the fastest",
    )
    parser.add_argument(
        "--reference-kb", type=int, default=30, help="corpus slice for the slow reference trainer"
    )
    args = parser.parse_args()
    from tinyllm.runtime import allocator

    allocator.configure()  # a benchmark is a program: reuse freed pages (runtime/allocator.py)

    _, build = timed(gpt2_pattern)  # cached after the first call: time it before repeating
    print(f"pre-split pattern built in {build:.2f} s (once per process)")
    global REPEATS
    REPEATS = args.repeats
    held_out = load_corpus(max_bytes=10 * MB, val_fraction=0.1).val
    held_bytes = len(held_out.encode("utf-8"))
    specials = standard_special_tokens(100)
    print(
        f"held-out text: {held_bytes / MB:.2f} MB; {len(specials)} special tokens in every "
        "vocabulary\n"
    )
    print(
        f"{'corpus':>8} {'vocab':>6} {'train s':>8} {'(split':>7} {'merges)':>8} "
        f"{'train MB/s':>10} {'enc MB/s':>9} {'bytes/tok':>9} {'held-out':>9}"
    )
    for size_mb in args.sizes_mb:
        text = stdlib_text(int(size_mb * MB))
        n_bytes = len(text.encode("utf-8"))
        counts, t_count = timed(word_counts, text)
        for vocab_size in args.vocab_sizes:
            n_new = vocab_size - 256 - len(specials)
            _, t_merges = timed(learn_merges, counts, n_new)
            tok, t_train = timed(lambda: ByteLevelBPE().train(text, vocab_size, specials))
            ids, t_enc = timed(lambda: ByteLevelBPE(tok.merges, specials).encode(text))
            held_ids = tok.encode(held_out, disallowed_special=())
            assert tok.decode(ids) == text
            print(
                f"{n_bytes / MB:6.2f}MB {vocab_size:6d} {t_train:8.2f} {t_count:7.2f} "
                f"{t_merges:8.2f} {n_bytes / MB / t_train:10.2f} {n_bytes / MB / t_enc:9.2f} "
                f"{n_bytes / len(ids):9.2f} {held_bytes / len(held_ids):9.2f}"
            )

    print("\nreadable reference vs fast version, same input, one run:")
    text = stdlib_text(300_000)
    slow, t_slow = timed(pre_split_reference, text)
    fast, t_fast = timed(pre_split, text)
    assert slow == fast
    print(
        f"  pre-split 0.30 MB:  scanner {t_slow:.2f} s, re pattern {t_fast:.3f} s "
        f"-> {t_slow / t_fast:.0f}x"
    )
    counts = word_counts(stdlib_text(args.reference_kb * 1000))
    slow, t_slow = timed(learn_merges_reference, counts, 256)
    fast, t_fast = timed(learn_merges, counts, 256)
    assert slow == fast
    print(
        f"  BPE training {args.reference_kb} KB -> 256 new tokens:  reference {t_slow:.2f} s, "
        f"incremental {t_fast:.3f} s -> {t_slow / t_fast:.0f}x"
    )


if __name__ == "__main__":
    main()
