"""Encoding one chunk: replay the learned merges on its bytes, lowest rank first.

Training (bpe_train.py) learned merges in order: rank 0 first. To encode a chunk, start from one
token per byte and repeat: find the adjacent pair with the lowest rank, merge every occurrence of
it, left to right; stop when no adjacent pair is a learned merge. That replays exactly what
training did to the chunk, because training applied the merges to every word in the same order.

`bpe_merge_reference` is that rule written out (O(n²): a scan per merge); `bpe_merge` computes
the same tokens in O(n log n) with a heap of candidate pairs over a linked list of tokens.
"""

from __future__ import annotations

import heapq
from typing import Sequence


def bpe_merge_reference(ids: Sequence[int], ranks: dict) -> list[int]:
    """Apply learned merges to one chunk's byte ids (readable, O(n^2)).

    ranks: (id_a, id_b) -> (rank, id_merged). Repeat: take the adjacent pair of lowest rank,
    merge all its occurrences left to right; stop when no adjacent pair has a rank.
    """
    ids = list(ids)
    while len(ids) >= 2:
        best = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, (float("inf"),))[0])
        if best not in ranks:
            break
        merged, out, i = ranks[best][1], [], 0
        while i < len(ids):
            if i + 1 < len(ids) and (ids[i], ids[i + 1]) == best:
                out.append(merged)
                i += 2
            else:
                out.append(ids[i])
                i += 1
        ids = out
    return ids


def bpe_merge(ids: Sequence[int], ranks: dict) -> list[int]:
    """The same result as `bpe_merge_reference` in O(n log n), for arbitrarily long chunks.

    Tokens sit in a doubly linked list (nxt/prv index arrays); a heap holds (rank, position) of
    every mergeable adjacent pair, so the lowest rank -- and among equal ranks the leftmost --
    comes out first. After a merge at position i only the pairs (prev, i) and (i, next) are new;
    heap entries made stale by a merge are recognised on pop (dead position or rank mismatch).
    """
    n = len(ids)
    if n < 2:
        return list(ids)
    tok = list(ids)
    nxt = list(range(1, n + 1))  # nxt[i] == n: i is the last token
    prv = list(range(-1, n - 1))  # prv[i] == -1: i is the first token
    alive = [True] * n
    heap = [(ranks[p][0], i) for i, p in enumerate(zip(tok, tok[1:])) if p in ranks]
    heapq.heapify(heap)
    while heap:
        rank, i = heapq.heappop(heap)
        j = nxt[i]
        if not alive[i] or j == n:
            continue
        entry = ranks.get((tok[i], tok[j]))
        if entry is None or entry[0] != rank:
            continue  # stale: the pair at i changed since this entry was pushed
        tok[i], alive[j] = entry[1], False  # merge j into i and unlink j
        nxt[i] = nxt[j]
        if nxt[j] < n:
            prv[nxt[j]] = i
        if prv[i] >= 0 and (left := ranks.get((tok[prv[i]], tok[i]))) is not None:
            heapq.heappush(heap, (left[0], prv[i]))
        if nxt[i] < n and (right := ranks.get((tok[i], tok[nxt[i]]))) is not None:
            heapq.heappush(heap, (right[0], i))
    out, i = [], 0
    while i < n:
        out.append(tok[i])
        i = nxt[i]
    return out
