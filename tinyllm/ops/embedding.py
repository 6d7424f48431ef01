"""Embedding lookup and dropout.

embedding(ids, W): row selection, y[…] = W[ids[…]] — a table of learned vectors, one per token
id. Its backward is a scatter-add into W's rows (tinyllm/kernels/embedding.py).

dropout(x, p): during training, zero each element with probability p and scale the survivors
by 1/(1−p), so the expected value is unchanged (Srivastava et al. 2014, "inverted" dropout):

    y = x ⊙ m / (1 − p),   mᵢ ~ Bernoulli(1 − p);     x̄ = ȳ ⊙ m / (1 − p)

The mask comes from an explicit NumPy Generator (tinyllm.random), so it is reproducible.
"""
from __future__ import annotations

import numpy as np

from tinyllm import kernels
from tinyllm.random import generator_or_default
from tinyllm.tensor import Function, Tensor


class Embedding(Function):
    @staticmethod
    def forward(ctx, weight, ids=None, padding_idx=None):
        flat = ids.reshape(-1)
        ctx.save_for_backward(flat)
        ctx.meta = (weight.shape, padding_idx)
        return weight[flat].reshape(ids.shape + (weight.shape[1],))

    @staticmethod
    def backward(ctx, grad):
        (flat,) = ctx.saved_tensors
        (v, d), padding_idx = ctx.meta
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


class Dropout(Function):
    @staticmethod
    def forward(ctx, x, p=0.5, generator=None):
        keep = generator.random(x.shape, dtype=np.float32 if x.dtype != np.float64 else np.float64) >= p
        scale = np.asarray(1.0 / (1.0 - p), dtype=x.dtype)
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return x * keep * scale

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return grad * keep * ctx.scale


def dropout(x: Tensor, p: float = 0.5, training: bool = True, generator=None) -> Tensor:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return Dropout.apply(x, p=p, generator=generator_or_default(generator))
