"""Embedding backward: scatter-add rows of the output gradient into the weight gradient.

An embedding lookup is row selection, y[n] = W[idₙ]. Its adjoint adds each output row's gradient
into the row it came from:

    W̄[v] = Σ_{n : idₙ = v} ȳ[n]

A token that appears many times in a batch collects all of its contributions — which is why
this is a scatter-*add*, not an assignment (`W̄[ids] = ȳ` would keep only the last one).

Signature: embedding_backward(ids (N,) int, g (N, D), num_embeddings) -> W̄ (num_embeddings, D)
"""

import numpy as np

from tinyllm.kernels.jit import jit, over_range

# ---- reference (plain NumPy) ----------------------------------------------------------------


def embedding_backward_reference(ids, g, num_embeddings):
    out = np.zeros((num_embeddings, g.shape[1]), dtype=g.dtype)
    np.add.at(out, ids, g)
    return out


# ---- numba kernel ---------------------------------------------------------------------------


@jit
def _embedding_backward(ids, g, out, nchunks, c_lo, c_hi):
    """Column chunks c_lo … c_hi − 1: each owns a slice of the columns of every row, so two
    threads never add into the same element (no races, deterministic order)."""
    n, d = g.shape
    for c in range(c_lo, c_hi):
        lo, hi = c * d // nchunks, (c + 1) * d // nchunks
        for i in range(n):
            dst, src = out[ids[i]], g[i]
            for j in range(lo, hi):
                dst[j] += src[j]


def embedding_backward_numba(ids, g, num_embeddings):
    ids, g = np.ascontiguousarray(ids), np.ascontiguousarray(g)
    out = np.zeros((num_embeddings, g.shape[1]), dtype=g.dtype)
    nchunks = min(g.shape[1], 8)
    over_range(_embedding_backward, nchunks, ids, g, out, nchunks, work=g.size)
    return out
