"""Table lookup: the embedding of token ids.

embedding(ids, W): row selection, y[…] = W[ids[…]] — a table of learned vectors, one per token
id. It is the product of a one-hot matrix with W, computed without the one-hot:

    y = onehot(ids) W           W̄ = onehot(ids)ᵀ ȳ    (a scatter-add of ȳ's rows into W's)

The backward is tinyllm/kernels/embedding.py; a row looked up twice receives both gradients.
The lookup itself is free (data movement); the scatter-add costs one FLOP per element moved.
"""

from __future__ import annotations

import numpy as np

from tinyllm import kernels
from tinyllm.engine import Function, Tensor
from tinyllm.engine.flops import FlopRule, free, same_as_forward


class Embedding(Function):
    flops = FlopRule("embedding", free, same_as_forward)

    @staticmethod
    def forward(ctx, weight, ids=None, padding_idx=None):
        flat = ids.reshape(-1)
        ctx.save_for_backward(flat)
        ctx.weight_shape, ctx.padding_idx = weight.shape, padding_idx
        return weight[flat].reshape(ids.shape + (weight.shape[1],))

    @staticmethod
    def backward(ctx, grad):
        (flat,) = ctx.saved_tensors
        (v, d), padding_idx = ctx.weight_shape, ctx.padding_idx
        gw = kernels.embedding_backward(flat, grad.reshape(-1, d), v)
        if padding_idx is not None:
            gw[padding_idx] = 0
        return gw


def embedding(ids, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """F.embedding(input, weight): look up rows of `weight` (num_embeddings, dim)."""
    ids = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"embedding: ids must be integers, got dtype {ids.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, dim), got {weight.shape}")
    v = weight.shape[0]
    if ids.size and (ids.min() < 0 or ids.max() >= v):
        bad = ids[(ids < 0) | (ids >= v)].flat[0]
        raise IndexError(f"embedding: id {int(bad)} is out of range for a table of {v} rows")
    return Embedding.apply(weight, ids=ids, padding_idx=padding_idx)
