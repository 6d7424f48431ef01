"""Positional encodings: how a model that sees a *set* of vectors learns their order.

Attention is permutation-invariant: shuffle the tokens and each output is shuffled the same
way. To know where a token stands, its position is added to its embedding.

Fixed sinusoids (Vaswani et al. 2017, section 3.5): for position pos and dimension pair i,

    PE(pos, 2i)   = sin(pos / 10000^(2i/d_model))
    PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model))

Each pair of dimensions is a rotation at its own frequency, from one turn per 2π positions to
one per 10000·2π; PE(pos + k) is a linear function of PE(pos), which makes relative offsets
easy to attend to. Nothing is learned, and the table extends to any length.

Learned positions (GPT-2, BERT): a trainable table `wpe` of shape (block_size, d_model),
looked up like a token embedding — more flexible, but limited to the lengths seen in training.
"""

from __future__ import annotations

import numpy as np

from tinyllm import ops
from tinyllm.dtypes import DEFAULT_DTYPE
from tinyllm.engine import Tensor
from tinyllm.nn.layers import Embedding
from tinyllm.nn.module import Module


def sinusoidal_table(max_len: int, d_model: int, dtype=DEFAULT_DTYPE) -> np.ndarray:
    """The (max_len, d_model) table PE above (d_model may be odd: the last cos is dropped)."""
    pos = np.arange(max_len, dtype=np.float64)[:, None]  # (T, 1)
    i2 = np.arange(0, d_model, 2, dtype=np.float64)[None, :]  # (1, ⌈d/2⌉) = 2i
    angle = pos / np.power(10000.0, i2 / d_model)  # (T, ⌈d/2⌉)
    table = np.zeros((max_len, d_model), dtype=np.float64)
    table[:, 0::2] = np.sin(angle)
    table[:, 1::2] = np.cos(angle[:, : d_model // 2])
    return table.astype(dtype)


class SinusoidalPositionalEncoding(Module):
    """Adds the fixed table to x (B, T, d_model), starting at position `offset`."""

    def __init__(self, d_model: int, max_len: int = 4096, dtype=DEFAULT_DTYPE):
        super().__init__()
        self.register_buffer("pe", sinusoidal_table(max_len, d_model, dtype))

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        t = x.shape[-2]
        if offset + t > self.pe.shape[0]:
            raise ValueError(
                f"SinusoidalPositionalEncoding: positions up to {offset + t} exceed "
                f"max_len {self.pe.shape[0]}"
            )
        return ops.add(x, self.pe[offset : offset + t])


class LearnedPositionalEmbedding(Embedding):
    """A trainable (max_len, d_model) table; forward(t, offset) returns rows offset..offset+t."""

    def forward(self, t: int, offset: int = 0) -> Tensor:
        if offset + t > self.num_embeddings:
            raise ValueError(
                f"LearnedPositionalEmbedding: positions up to {offset + t} exceed "
                f"the table's {self.num_embeddings} rows"
            )
        return ops.embedding(np.arange(offset, offset + t), self.weight)
