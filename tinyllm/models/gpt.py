"""GPT: a decoder-only transformer trained to predict the next token (Radford et al. 2018/2019).

Given tokens x₁…x_T, the model outputs, at every position t, a distribution over the next
token, and is trained to minimize the average cross-entropy

    L = −(1/T) Σₜ log p(x_{t+1} | x₁ … x_t)

Causal self-attention is what makes this honest: position t can only read positions ≤ t, so
all T predictions of a sequence are trained in one parallel pass without peeking ahead.

The architecture and parameter names are nanoGPT's (Karpathy), which are GPT-2's:

    transformer.wte   (V, E)  token embedding      transformer.wpe  (T, E)  learned positions
    transformer.h.i   blocks: ln_1 → attn (c_attn E→3E, c_proj E→E) → ln_2 → mlp (c_fc, c_proj)
    transformer.ln_f  final LayerNorm              lm_head (E → V), tied to wte

    x = wte[idx] + wpe[0..T−1]                        (B, T, E)
    x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))      × n_layer
    logits = ln_f(x) wteᵀ                             (B, T, V)

Weight tying (Press & Wolf 2017) uses the same (V, E) matrix to read tokens in and to score
them out, saving V·E parameters. Initialization follows GPT-2: every weight N(0, 0.02), biases
zero, and the two projections that write into the residual stream (attn.c_proj, mlp.c_proj)
N(0, 0.02/√(2·n_layer)), so the residual stream's variance does not grow with depth.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from tinyllm import ops
from tinyllm.engine import Tensor
from tinyllm.generate import generate
from tinyllm.nn.attention import KVCache, cached_causal_mask, merge_heads
from tinyllm.nn.layers import Dropout, Embedding, LayerNorm, Linear
from tinyllm.nn.module import Module, ModuleDict, ModuleList
from tinyllm.nn.transformer import FeedForward
from tinyllm.optim import AdamW, param_groups_for_weight_decay
from tinyllm.recompute import checkpoint
from tinyllm.runtime.random import generator_or_default


@dataclass
class GPTConfig:
    """nanoGPT's configuration fields (defaults: GPT-2 small with a padded vocabulary)."""

    block_size: int = 1024
    vocab_size: int = 50304
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True

    def __post_init__(self):
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"GPTConfig: {name} must be positive, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"GPTConfig: n_embd {self.n_embd} is not divisible by n_head {self.n_head}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig: dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)


class CausalSelfAttention(Module):
    """Multi-head causal self-attention with the q, k, v projections fused into one c_attn."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        e = config.n_embd
        self.n_head = config.n_head
        self.c_attn = Linear(e, 3 * e, bias=config.bias)  # q, k, v for all heads at once
        self.c_proj = Linear(e, e, bias=config.bias)
        self.dropout = config.dropout
        self.resid_dropout = Dropout(config.dropout)

    def forward(self, x: Tensor, cache: KVCache | None = None, keep=None) -> Tensor:
        """x (B, T, E); `cache` holds earlier positions' keys/values; `keep` (B, S) marks the
        real (non-padding) tokens among all S = past + T positions."""
        b, t, e = x.shape
        h = self.n_head
        qkv = self.c_attn(x).reshape(b, t, 3, h, e // h)  # (B, T, 3, h, hs)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, B, h, T, hs)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, h, T, hs) each
        p = self.dropout if self.training else 0.0
        if cache is not None:
            k_all, v_all = cache.append(k.data, v.data)  # (B, h, S, hs), S = past + T
            k, v = Tensor(k_all), Tensor(v_all)
        s = k.shape[2]
        if keep is None and s == t:
            y = ops.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        else:
            mask = cached_causal_mask(t, s)  # (T, S): the new queries are last
            if keep is not None:
                mask = mask & keep[:, None, None, :]  # (B, 1, T, S)
            y = ops.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.resid_dropout(self.c_proj(merge_heads(y)))  # (B, T, E)


class Block(Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = FeedForward(config.n_embd, dropout=config.dropout, bias=config.bias)

    def forward(self, x: Tensor, cache: KVCache | None = None, keep=None) -> Tensor:
        x = x + self.attn(self.ln_1(x), cache, keep)
        return x + self.mlp(self.ln_2(x))


class GPT(Module):
    def __init__(self, config: GPTConfig, generator=None):
        super().__init__()
        self.config = config
        self.transformer = ModuleDict(
            dict(
                wte=Embedding(config.vocab_size, config.n_embd),
                wpe=Embedding(config.block_size, config.n_embd),
                drop=Dropout(config.dropout),
                h=ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied: one Parameter, two names
        # Activation checkpointing (tinyllm/recompute.py): keep only each block's input for
        # backward and recompute the block then. A plain attribute (Hugging Face's name), so
        # neither GPTConfig nor the state dict change.
        self.gradient_checkpointing = False
        self.init_weights(generator)

    def init_weights(self, generator=None) -> None:
        """GPT-2 initialization (see the module docstring), drawn in named_parameters() order."""
        g = generator_or_default(generator)
        resid_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        norm_params = {
            id(p) for m in self.modules() if isinstance(m, LayerNorm) for p in m.parameters()
        }
        for name, p in self.named_parameters():
            if id(p) in norm_params:
                p.data[...] = 1 if name.endswith("weight") else 0
            elif name.endswith(".bias"):
                p.data[...] = 0
            else:
                std = resid_std if name.endswith("c_proj.weight") else 0.02
                p.data[...] = g.normal(0.0, std, p.shape)

    def get_num_params(self, non_embedding: bool = True) -> int:
        """Parameters counted once (the tied head is the embedding); nanoGPT subtracts the
        position table for the 'non-embedding' count."""
        n = self.num_parameters()
        if non_embedding:
            n -= self.transformer.wpe.weight.numel()
        return n

    def make_cache(self, batch: int) -> list[KVCache]:
        c = self.config
        return [
            KVCache(
                batch,
                c.n_head,
                c.block_size,
                c.n_embd // c.n_head,
                dtype=self.transformer.wte.weight.dtype,
            )
            for _ in range(c.n_layer)
        ]

    def forward(self, idx, targets=None, caches: list[KVCache] | None = None, attention_mask=None):
        """idx (B, T) integer token ids → (logits (B, T, V), loss or None).

        `targets` (B, T) gives the mean cross-entropy (positions with target −100 ignored).
        `caches` (from make_cache) runs incremental decoding: positions continue after the
        tokens already cached. `attention_mask` (B, past + T), 1 for real tokens and 0 for
        (left) padding: padding is never attended to and positions count real tokens only.
        """
        idx = np.asarray(idx.data if isinstance(idx, Tensor) else idx)
        if idx.ndim != 2 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(
                f"GPT.forward: idx must be an integer array (batch, time), got "
                f"shape {idx.shape} dtype {idx.dtype}"
            )
        b, t = idx.shape
        past = 0 if caches is None else caches[0].length
        if past + t > self.config.block_size:
            raise ValueError(
                f"GPT.forward: sequence of length {past + t} exceeds block_size "
                f"{self.config.block_size}"
            )
        if idx.size and (idx.min() < 0 or idx.max() >= self.config.vocab_size):
            bad = idx[(idx < 0) | (idx >= self.config.vocab_size)].flat[0]
            raise ValueError(
                f"GPT.forward: token id {int(bad)} is outside the vocabulary "
                f"[0, {self.config.vocab_size})"
            )
        tr = self.transformer
        keep = None
        if attention_mask is None:
            pos = np.arange(past, past + t)  # (T,)
        else:
            am = np.asarray(
                attention_mask.data if isinstance(attention_mask, Tensor) else attention_mask
            )
            if am.shape != (b, past + t):
                raise ValueError(
                    f"GPT.forward: attention_mask of shape {am.shape}, expected "
                    f"{(b, past + t)} (cached + new positions)"
                )
            keep = am.astype(bool)  # (B, S)
            pos = np.maximum(np.cumsum(keep, axis=1) - 1, 0)[:, past:]  # (B, T)
        x = tr.drop(tr.wte(idx) + tr.wpe(pos))  # (B, T, E)
        for i, block in enumerate(tr.h):
            if self.gradient_checkpointing and caches is None:
                x = checkpoint(block, x, None, keep)
            else:
                x = block(x, None if caches is None else caches[i], keep)
        x = tr.ln_f(x)
        logits = self.lm_head(x)  # (B, T, V)
        loss = None
        if targets is not None:
            tg = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
            if tg.shape != (b, t):
                raise ValueError(f"GPT.forward: targets of shape {tg.shape}, expected {(b, t)}")
            loss = ops.cross_entropy(logits.reshape(b * t, -1), tg.reshape(-1))
        return logits, loss

    def generate(self, idx, max_new_tokens: int, **kwargs):
        """Autoregressive decoding; see tinyllm.generate.generate for the options."""

        return generate(self, idx, max_new_tokens, **kwargs)

    def configure_optimizers(
        self, weight_decay: float, learning_rate: float, betas=(0.9, 0.95), eps: float = 1e-8
    ):
        """AdamW with weight decay on matrices (dim ≥ 2) only, as nanoGPT does."""

        return AdamW(
            param_groups_for_weight_decay(self, weight_decay),
            lr=learning_rate,
            betas=betas,
            eps=eps,
        )
