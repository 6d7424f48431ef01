"""Transformer blocks: feed-forward, pre-LayerNorm residual blocks, encoder and decoder stacks.

A block alternates two sub-layers — attention (tokens exchange information) and a position-wise
feed-forward network (each token is transformed on its own) — each wrapped in a residual
connection. tinyllm uses the *pre-LayerNorm* arrangement of GPT-2 and T5 (Xiong et al. 2020
explain why it trains stably without warmup tricks):

    x = x + Attention(LN(x))
    x = x + FFN(LN(x)),            FFN(x) = W₂ GELU(W₁ x + b₁) + b₂,   W₁: E → 4E, W₂: 4E → E

(The original paper put LayerNorm after the addition: x = LN(x + Sublayer(x)).)

An encoder stack uses bidirectional self-attention (every token sees every other); a decoder
stack uses causal self-attention, and in an encoder-decoder model also a cross-attention
sub-layer that reads the encoder's output:

    x = x + SelfAttn_causal(LN(x));  x = x + CrossAttn(LN(x), memory);  x = x + FFN(LN(x))

Residual dropout (Vaswani et al. 2017, §5.4) is applied to each sub-layer's output before it is
added: the blocks apply it after attention (MultiHeadAttention's own `dropout` is on the
attention weights, as in PyTorch), FeedForward applies it to its own output.
"""

from __future__ import annotations

from tinyllm.dtypes import DEFAULT_DTYPE
from tinyllm.engine import Tensor
from tinyllm.nn.attention import KVCache, MultiHeadAttention
from tinyllm.nn.layers import GELU, Dropout, LayerNorm, Linear
from tinyllm.nn.module import Module, ModuleList


class FeedForward(Module):
    """Position-wise MLP E → hidden → E with GELU (names follow nanoGPT: c_fc, c_proj)."""

    def __init__(
        self,
        n_embd: int,
        hidden: int | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        dtype=DEFAULT_DTYPE,
    ):
        super().__init__()
        hidden = 4 * n_embd if hidden is None else hidden
        self.c_fc = Linear(n_embd, hidden, bias=bias, dtype=dtype)
        self.gelu = GELU()
        self.c_proj = Linear(hidden, n_embd, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class EncoderBlock(Module):
    """Pre-LN block with bidirectional self-attention (BERT, T5 encoder)."""

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True, dtype=DEFAULT_DTYPE):
        super().__init__()
        self.ln_1 = LayerNorm(n_embd, bias=bias, dtype=dtype)
        self.attn = MultiHeadAttention(n_embd, n_head, dropout, bias, dtype=dtype)
        self.resid_dropout = Dropout(dropout)
        self.ln_2 = LayerNorm(n_embd, bias=bias, dtype=dtype)
        self.mlp = FeedForward(n_embd, dropout=dropout, bias=bias, dtype=dtype)

    def forward(self, x: Tensor, key_padding_mask=None) -> Tensor:
        h = self.ln_1(x)
        x = x + self.resid_dropout(self.attn(h, key_padding_mask=key_padding_mask))
        return x + self.mlp(self.ln_2(x))


class DecoderBlock(Module):
    """Pre-LN block: causal self-attention, cross-attention to `memory`, feed-forward."""

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True, dtype=DEFAULT_DTYPE):
        super().__init__()
        self.ln_1 = LayerNorm(n_embd, bias=bias, dtype=dtype)
        self.self_attn = MultiHeadAttention(n_embd, n_head, dropout, bias, dtype=dtype)
        self.ln_2 = LayerNorm(n_embd, bias=bias, dtype=dtype)
        self.cross_attn = MultiHeadAttention(n_embd, n_head, dropout, bias, dtype=dtype)
        self.ln_3 = LayerNorm(n_embd, bias=bias, dtype=dtype)
        self.mlp = FeedForward(n_embd, dropout=dropout, bias=bias, dtype=dtype)
        self.resid_dropout = Dropout(dropout)  # on both attention outputs (no parameters)

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        memory_padding_mask=None,
        self_cache: KVCache | None = None,
        cross_cache: KVCache | None = None,
        self_padding_mask=None,
    ) -> Tensor:
        h = self.ln_1(x)
        x = x + self.resid_dropout(
            self.self_attn(h, is_causal=True, cache=self_cache, key_padding_mask=self_padding_mask)
        )
        h = self.ln_2(x)
        x = x + self.resid_dropout(
            self.cross_attn(
                h,
                memory,
                key_padding_mask=memory_padding_mask,
                cache=cross_cache,
                static_kv=cross_cache is not None,
            )
        )
        return x + self.mlp(self.ln_3(x))


class Encoder(Module):
    def __init__(self, n_layer, n_embd, n_head, dropout=0.0, bias=True, dtype=DEFAULT_DTYPE):
        super().__init__()
        self.h = ModuleList(
            [EncoderBlock(n_embd, n_head, dropout, bias, dtype) for _ in range(n_layer)]
        )
        self.ln_f = LayerNorm(n_embd, bias=bias, dtype=dtype)

    def forward(self, x: Tensor, key_padding_mask=None) -> Tensor:
        for block in self.h:
            x = block(x, key_padding_mask=key_padding_mask)
        return self.ln_f(x)


class Decoder(Module):
    def __init__(self, n_layer, n_embd, n_head, dropout=0.0, bias=True, dtype=DEFAULT_DTYPE):
        super().__init__()
        self.h = ModuleList(
            [DecoderBlock(n_embd, n_head, dropout, bias, dtype) for _ in range(n_layer)]
        )
        self.ln_f = LayerNorm(n_embd, bias=bias, dtype=dtype)

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        memory_padding_mask=None,
        caches=None,
        self_padding_mask=None,
    ) -> Tensor:
        for i, block in enumerate(self.h):
            sc, cc = (None, None) if caches is None else caches[i]
            x = block(x, memory, memory_padding_mask, sc, cc, self_padding_mask)
        return self.ln_f(x)
