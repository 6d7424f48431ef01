"""Multi-head attention, and the key/value cache that makes generation fast.

One attention head (Vaswani et al. 2017, eq. 1) lets every query position read a weighted
average of the value vectors, weighted by how well its query matches each key:

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V

Multi-head attention (eq. 2) runs h heads side by side on h slices of the model width E,
d_k = E/h each, and mixes their outputs with one more projection:

    MultiHead(X_q, X_kv) = Concat(head₁, …, head_h) W_O,
    headᵢ = Attention(X_q W_Qⁱ, X_kv W_Kⁱ, X_kv W_Vⁱ)

All heads' projections are computed as one (E × E) matrix product and then *split*: the width
E is reshaped into (h, d_k) and the head axis moved next to the batch axis, so every head is an
independent batch entry of one batched matmul. Merging is the reverse.

The three flavours differ only in where queries and keys come from and what is masked:
* self-attention:         X_q = X_kv = x;
* causal self-attention:  the same, but position i may only read positions ≤ i (decoders);
* cross-attention:        X_q from the decoder, X_kv from the encoder's output (T5, the
                          original encoder-decoder).
Masks follow PyTorch's nn.MultiheadAttention: `key_padding_mask` (B, S) is True at PADDING
keys (ignored); a boolean `attn_mask` (L, S) is True where attention is NOT allowed; a float
`attn_mask` is added to the scores.

KV cache. When generating one token at a time, the keys and values of the earlier positions do
not change, so they are kept in a preallocated (B, h, max_len, d_k) buffer and each step only
computes the new position's q, k, v: O(T) work per new token instead of O(T²).
"""

from __future__ import annotations

import numpy as np

from tinyllm import ops
from tinyllm.dtypes import DEFAULT_DTYPE
from tinyllm.engine import Tensor
from tinyllm.nn.layers import Linear
from tinyllm.nn.module import Module


class KVCache:
    """Keys and values of the positions seen so far, for one attention layer."""

    def __init__(self, batch: int, n_head: int, max_len: int, head_dim: int, dtype=DEFAULT_DTYPE):
        dtype = getattr(dtype, "storage", dtype)  # bf16: hold bit patterns, as its tensors do
        self.k = np.zeros((batch, n_head, max_len, head_dim), dtype=dtype)
        self.v = np.zeros((batch, n_head, max_len, head_dim), dtype=dtype)
        self.length = 0

    @property
    def max_len(self) -> int:
        return self.k.shape[2]

    def append(self, k_new: np.ndarray, v_new: np.ndarray):
        """Store (B, h, T_new, d) keys/values; return views of all (B, h, length, d) so far."""
        t = k_new.shape[2]
        if self.length + t > self.max_len:
            raise ValueError(
                f"KVCache: {self.length} cached + {t} new positions exceed max_len {self.max_len}"
            )
        self.k[:, :, self.length : self.length + t] = k_new
        self.v[:, :, self.length : self.length + t] = v_new
        self.length += t
        return self.k[:, :, : self.length], self.v[:, :, : self.length]

    def reset(self) -> None:
        self.length = 0


def split_heads(x: Tensor, n_head: int) -> Tensor:
    """(B, T, E) → (B, h, T, E/h)."""
    b, t, e = x.shape
    return x.reshape(b, t, n_head, e // n_head).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """(B, h, T, d) → (B, T, h·d)."""
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


def cached_causal_mask(t_new: int, s: int) -> np.ndarray:
    """Boolean (T_new, S): the new queries are the LAST T_new of S positions (bottom-right
    aligned), so query i may attend keys j ≤ S − T_new + i."""
    return np.tril(np.ones((t_new, s), dtype=bool), k=s - t_new)


def _to_allowed(mask: np.ndarray) -> np.ndarray:
    """PyTorch nn.MultiheadAttention masks (True = blocked) → SDPA masks (True = allowed)."""
    return ~mask if mask.dtype == np.bool_ else mask


class MultiHeadAttention(Module):
    """Self-, causal or cross-attention with separate q/k/v/out projections.

    forward(query, key=None, value=None, key_padding_mask=None, attn_mask=None,
            is_causal=False, cache=None) → (B, L, E)
    `key`/`value` default to `query` (self-attention). Unlike torch.nn.MultiheadAttention this
    is batch-first and returns only the output (weights are never materialized). As in
    PyTorch, `dropout` applies to the attention weights only; the residual dropout on the
    sub-layer's output belongs to the block that adds it (tinyllm.nn.transformer).
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        kdim: int | None = None,
        dtype=DEFAULT_DTYPE,
    ):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(
                f"MultiHeadAttention: embed_dim {embed_dim} is not divisible by "
                f"num_heads {num_heads}"
            )
        kdim = embed_dim if kdim is None else kdim
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.q_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        self.k_proj = Linear(kdim, embed_dim, bias=bias, dtype=dtype)
        self.v_proj = Linear(kdim, embed_dim, bias=bias, dtype=dtype)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        key_padding_mask=None,
        attn_mask=None,
        is_causal: bool = False,
        cache: KVCache | None = None,
        static_kv: bool = False,
    ) -> Tensor:
        key = query if key is None else key
        value = key if value is None else value
        b, L, _ = query.shape
        h = self.num_heads
        q = split_heads(self.q_proj(query), h)  # (B, h, L, d)
        if cache is not None and static_kv and cache.length:
            # cross-attention during generation: the encoder's keys/values never change
            k = Tensor(cache.k[:, :, : cache.length])
            v = Tensor(cache.v[:, :, : cache.length])
        else:
            k = split_heads(self.k_proj(key), h)  # (B, h, S, d)
            v = split_heads(self.v_proj(value), h)  # (B, h, S, d)
            if cache is not None:
                k_all, v_all = cache.append(k.data, v.data)
                k, v = Tensor(k_all), Tensor(v_all)
        S = k.shape[2]
        mask = None
        if is_causal:
            mask = cached_causal_mask(L, S)  # (L, S), True = allowed
            is_causal = False
        if attn_mask is not None:
            am = _to_allowed(
                np.asarray(attn_mask.data if isinstance(attn_mask, Tensor) else attn_mask)
            )
            if mask is None:
                mask = am
            elif am.dtype == np.bool_:
                mask = mask & am
            else:
                mask = np.where(mask, am, -np.inf).astype(query.dtype)
        if key_padding_mask is not None:
            kp = np.asarray(
                key_padding_mask.data if isinstance(key_padding_mask, Tensor) else key_padding_mask
            )
            if kp.shape != (b, S):
                raise ValueError(
                    f"MultiHeadAttention: key_padding_mask of shape {kp.shape}, "
                    f"expected (batch, keys) = {(b, S)}"
                )
            kp_allowed = ~kp[:, None, None, :]  # (B, 1, 1, S)
            if mask is None:
                mask = kp_allowed
            elif mask.dtype == np.bool_:
                mask = mask & kp_allowed
            else:
                mask = np.where(kp_allowed, mask, -np.inf).astype(query.dtype)
        y = ops.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(merge_heads(y))  # (B, L, E)
