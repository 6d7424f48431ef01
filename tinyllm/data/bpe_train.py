"""Learning byte-pair merges (Sennrich et al. 2016; byte-level as in GPT-2, Radford et al. 2019).

Start from the 256 single bytes. Repeatedly find the adjacent pair of tokens that occurs most
often in the training text, make it a new token, and replace every occurrence of the pair by the
new token. After k merges the vocabulary has 256 + k tokens and frequent strings ("def", " self",
"    ") have become single tokens. The ordered list of merges *is* the tokenizer: encoding new
text replays the merges in the same order (see bpe.py).

Merges never cross a pre-split boundary (pretokenize.py), so the text can be summarised as a
table of distinct chunks ("words") with their frequencies: " return" appearing 20,000 times is
stored once with count 20,000. A pair's count is

    count(a, b) = sum over words w of  freq(w) * (number of times a, b are adjacent in w)

Tokens are represented by their bytes (b"de", b"f"), so merging a and b creates the token a + b.
Should two different pairs ever spell the same bytes (b"ab" + b"c" and b"a" + b"bc"), the second
adds a merge but no new token (Hugging Face `tokenizers` does the same); training therefore
counts *new tokens*, not merges, against the requested vocabulary size. (With left-to-right
merging this seems not to arise from real training -- randomized searches found no case -- but
a merge list read from a file may contain it, and the tokenizer accepts it.)

Tie-breaking is deterministic: the highest count wins, then the smallest pair compared
lexicographically as (bytes of a, bytes of b). Same corpus -> same merges, on any machine.

Two trainers, the readable one first:

* `learn_merges_reference` recounts every pair of every word after each merge:
  O(merges x corpus). Fine for a few kilobytes; hopeless for megabytes.
* `learn_merges` is the standard incremental algorithm. It keeps the pair counts and an index
  pair -> words containing it; a merge visits only the words that contain the pair and updates
  the counts of just the pairs those words lose and gain. The best pair comes from a max-heap
  with lazy deletion: a changed count is pushed as a new entry, and an entry popped whose count
  no longer matches the table is stale and skipped. Tests assert both trainers give identical
  merges.

Speed (benchmarks/tokenizer.py; docs/04-tokenization-and-embeddings.md has its numbers):
training on a few megabytes of stdlib source takes seconds of CPU, most of them in the merge
loop above and the rest in pre-splitting (`re`, in C). That loop is dict and set work on bytes
keys, which numba cannot speed up without rewriting words as integer arrays; at seconds per
run it is not worth the loss of clarity, so the trainer stays plain Python.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from typing import Mapping

Pair = tuple[bytes, bytes]


def merge_pair(tokens: list[bytes], a: bytes, b: bytes) -> list[bytes]:
    """Replace each occurrence of the adjacent pair (a, b) by a + b, scanning left to right.

    Occurrences do not overlap: [x, x, x] with (x, x) becomes [xx, x].
    """
    out, i, n = [], 0, len(tokens)
    while i < n:
        if i + 1 < n and tokens[i] == a and tokens[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(tokens[i])
            i += 1
    return out


def _split_bytes(word: bytes) -> list[bytes]:
    return [word[i : i + 1] for i in range(len(word))]


def _check_counts(word_counts: Mapping[bytes, int], n_new_tokens: int) -> None:
    if n_new_tokens < 0:
        raise ValueError(f"BPE training: cannot learn a negative number of tokens ({n_new_tokens})")
    for word, freq in word_counts.items():
        if not isinstance(word, bytes) or not isinstance(freq, int) or freq <= 0:
            raise ValueError(
                f"BPE training: word counts must map bytes -> positive int, got {word!r}: {freq!r}"
            )


def learn_merges_reference(word_counts: Mapping[bytes, int], n_new_tokens: int) -> list[Pair]:
    """The definition of BPE training, recounting all pairs after every merge (slow, readable).

    word_counts: distinct pre-split chunks as bytes -> frequency. Stops after `n_new_tokens`
    new tokens or when no word has two tokens left. Returns the merges in order.
    """
    _check_counts(word_counts, n_new_tokens)
    words = [(_split_bytes(w), f) for w, f in word_counts.items()]
    vocab = {bytes([i]) for i in range(256)}
    merges: list[Pair] = []
    while len(vocab) < 256 + n_new_tokens:
        counts: Counter = Counter()
        for tokens, freq in words:
            for pair in zip(tokens, tokens[1:]):
                counts[pair] += freq
        if not counts:
            break  # every word is a single token: nothing left to merge
        a, b = min(counts, key=lambda p: (-counts[p], p))  # highest count, then smallest pair
        merges.append((a, b))
        vocab.add(a + b)
        words = [(merge_pair(tokens, a, b), freq) for tokens, freq in words]
    return merges


def learn_merges(word_counts: Mapping[bytes, int], n_new_tokens: int, progress=None) -> list[Pair]:
    """Incremental BPE training; the same merges as `learn_merges_reference`, much faster.

    progress: optional callable(n_merges_done, n_new_tokens_done) called every 1000 merges.
    """
    _check_counts(word_counts, n_new_tokens)
    words = [_split_bytes(w) for w in word_counts]
    freqs = list(word_counts.values())

    pair_counts: dict[Pair, int] = defaultdict(int)
    where: dict[Pair, set[int]] = defaultdict(set)  # pair -> indices of words that contain it
    for wi, tokens in enumerate(words):
        for pair in zip(tokens, tokens[1:]):
            pair_counts[pair] += freqs[wi]
            where[pair].add(wi)
    # max-heap by count via negated counts; ties resolved by the smallest (a, b)
    heap = [(-count, a, b) for (a, b), count in pair_counts.items()]
    heapq.heapify(heap)

    vocab = {bytes([i]) for i in range(256)}
    merges: list[Pair] = []
    while len(vocab) < 256 + n_new_tokens and heap:
        neg_count, a, b = heapq.heappop(heap)
        if pair_counts.get((a, b), 0) != -neg_count:
            continue  # stale entry: this pair's count changed after the entry was pushed
        merges.append((a, b))
        vocab.add(a + b)
        if progress is not None and len(merges) % 1000 == 0:
            progress(len(merges), len(vocab) - 256)

        delta: dict[Pair, int] = defaultdict(int)  # net change of each pair's count
        for wi in where.pop((a, b)):
            old = words[wi]
            new = merge_pair(old, a, b)
            if len(new) == len(old):
                continue  # stale index entry: an earlier merge already removed the pair here
            freq = freqs[wi]
            for pair in zip(old, old[1:]):
                delta[pair] -= freq
            for pair in zip(new, new[1:]):
                delta[pair] += freq
                where[pair].add(wi)
            words[wi] = new
        for pair, change in delta.items():
            if change == 0:
                continue
            count = pair_counts[pair] + change
            if count > 0:
                pair_counts[pair] = count
                heapq.heappush(heap, (-count, *pair))
            else:  # count == 0: the pair is gone from every word
                del pair_counts[pair]
                where.pop(pair, None)
    return merges
