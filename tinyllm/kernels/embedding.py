"""Embedding backward: scatter-add rows of the output gradient into the weight gradient.

An embedding lookup is row selection, y[n] = W[idₙ]. Its adjoint adds each output row's gradient
into the row it came from:

    W̄[v] = Σ_{n : idₙ = v} ȳ[n]

A token that appears many times in a batch collects all of its contributions — which is why
this is a scatter-*add*, not an assignment (`W̄[ids] = ȳ` would keep only the last one).

Signature: embedding_backward(ids (N,) int, g (N, D), num_embeddings) -> W̄ (num_embeddings, D)
"""
import numpy as np
from numba import prange

from tinyllm.kernels.jit import kernel

# ---- reference (plain NumPy) ----------------------------------------------------------------


def embedding_backward_reference(ids, g, num_embeddings):
    out = np.zeros((num_embeddings, g.shape[1]), dtype=g.dtype)
    np.add.at(out, ids, g)
    return out


# ---- numba kernel ---------------------------------------------------------------------------


@kernel(work=lambda ids, g, num_embeddings: g.size)
def _embedding_backward(ids, g, num_embeddings):
    n, d = g.shape
    out = np.zeros((num_embeddings, d), dtype=g.dtype)
    # Parallel over feature columns: each thread owns a slice of columns of every row, so two
    # threads never add into the same element (no races, deterministic order).
    nchunks = min(d, 8)
    for c in prange(nchunks):
        lo = c * d // nchunks
        hi = (c + 1) * d // nchunks
        for i in range(n):
            dst, src = out[ids[i]], g[i]
            for j in range(lo, hi):
                dst[j] += src[j]
    return out


def embedding_backward_numba(ids, g, num_embeddings):
    return _embedding_backward(np.ascontiguousarray(ids), np.ascontiguousarray(g), num_embeddings)
