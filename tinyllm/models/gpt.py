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
from dataclasses import asdict, dataclass, replace

import numpy as np

from tinyllm import ops
from tinyllm.engine import Tensor, policy
from tinyllm.generate import generate
from tinyllm.nn.attention import KVCache, cached_causal_mask, merge_heads
from tinyllm.nn.layers import GELU, Dropout, Embedding, LayerNorm, Linear
from tinyllm.nn.module import Module, ModuleDict, ModuleList
from tinyllm.nn.transformer import FeedForward
from tinyllm.optim import AdamW, param_groups_for_weight_decay
from tinyllm.recompute import checkpoint
from tinyllm.runtime.random import generator_or_default

# GPTConfig.activation -> the `approximate` argument of GELU (tinyllm.ops.gelu):
#   exact  GELU(x) = x·Φ(x)
#   tanh   GELU(x) ≈ ½x(1 + tanh(√(2/π)(x + 0.044715x³)))   (GPT-2's "gelu_new")
ACTIVATIONS = {"gelu": "none", "gelu_tanh": "tanh"}


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
    activation: str = "gelu"  # the MLP's GELU: "gelu" (exact, erf) or "gelu_tanh" (GPT-2's)
    layer_norm_eps: float = 1e-5  # ε of every LayerNorm: x̂ = (x − μ)/√(σ² + ε)

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
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"GPTConfig: activation {self.activation!r} is not one of {sorted(ACTIVATIONS)}"
            )
        if not self.layer_norm_eps > 0:
            raise ValueError(
                f"GPTConfig: layer_norm_eps must be positive, got {self.layer_norm_eps}"
            )

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
        eps = config.layer_norm_eps
        self.ln_1 = LayerNorm(config.n_embd, eps=eps, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, eps=eps, bias=config.bias)
        self.mlp = FeedForward(config.n_embd, dropout=config.dropout, bias=config.bias)
        # the config's GELU form; GELU has no parameters, so the state dict does not change
        self.mlp.gelu = GELU(approximate=ACTIVATIONS[config.activation])

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
                ln_f=LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias),
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

    def forward(
        self,
        idx,
        targets=None,
        caches: list[KVCache] | None = None,
        attention_mask=None,
        ignore_index: int = -100,
    ):
        """idx (B, T) integer token ids → (logits (B, T, V), loss or None).

        `targets` (B, T) gives the mean cross-entropy over the positions whose target is not
        `ignore_index`; any other target outside [0, V) is an error that names it.
        `caches` (from make_cache) runs incremental decoding: positions continue after the
        tokens already cached. `attention_mask` (B, past + T), 1 for real tokens and 0 for
        (left) padding: padding is never attended to and positions count real tokens only.

        Two choices differ from nanoGPT, on purpose:

        * `ignore_index` defaults to −100, PyTorch's `cross_entropy` default, which tinyllm's
          batch builders (tinyllm.data.batches.IGNORE_INDEX), BERT, T5 and Hugging Face's
          labels all use. nanoGPT's loss ignores −1; pass `ignore_index=-1` for that.
        * Without targets the logits of every position are returned, not only the last
          one as nanoGPT's inference shortcut does: KV-cache prefill, scoring a prompt's
          log-likelihood and Hugging Face's `GPT2LMHeadModel` all need every position, and
          `logits[:, -1]` is the last one. (tinyllm.generate takes the last row itself.)
        """
        idx = policy.integer_ids("GPT.forward", idx)
        if idx.ndim != 2 or idx.shape[1] == 0:
            raise ValueError(
                f"GPT.forward: idx must be a non-empty integer array (batch, time), got "
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
            if not np.issubdtype(tg.dtype, np.integer):
                raise ValueError(f"GPT.forward: targets must be integer ids, got dtype {tg.dtype}")
            v = self.config.vocab_size
            bad = (tg != ignore_index) & ((tg < 0) | (tg >= v))
            if bad.any():
                raise ValueError(
                    f"GPT.forward: target {int(tg[bad].flat[0])} is neither a token id in "
                    f"[0, {v}) nor ignore_index={ignore_index} (nanoGPT ignores -1: pass "
                    "ignore_index=-1)"
                )
            loss = ops.cross_entropy(
                logits.reshape(b * t, -1), tg.reshape(-1), ignore_index=ignore_index
            )
        return logits, loss

    def generate(self, idx, max_new_tokens: int, **kwargs):
        """Autoregressive decoding; see tinyllm.generate.generate for the options."""

        return generate(self, idx, max_new_tokens, **kwargs)

    def configure_optimizers(
        self,
        weight_decay: float,
        learning_rate: float,
        betas=(0.9, 0.95),
        device_type: str = "cpu",
        *,
        eps: float = 1e-8,
    ):
        """AdamW with weight decay on matrices (dim ≥ 2) only, as nanoGPT does.

        The arguments are nanoGPT's, in its order. `device_type` ("cpu" or "cuda") only
        chose PyTorch's fused AdamW kernel there; tinyllm has one AdamW, so it is checked
        and otherwise changes nothing. `eps` is keyword-only.
        """
        if device_type not in ("cpu", "cuda"):
            raise ValueError(
                f"configure_optimizers: device_type must be 'cpu' or 'cuda', got {device_type!r}"
            )
        return AdamW(
            param_groups_for_weight_decay(self, weight_decay),
            lr=learning_rate,
            betas=betas,
            eps=eps,
        )

    def crop_block_size(self, block_size: int) -> None:
        """Shrink the context to `block_size` ≤ config.block_size, as nanoGPT's model surgery:
        the position table keeps its first `block_size` rows (e.g. GPT-2's 1024 → a smaller
        context for a smaller run). Attention has no stored mask, so nothing else changes."""
        if not 0 < block_size <= self.config.block_size:
            raise ValueError(
                f"crop_block_size: block_size {block_size} must be in "
                f"[1, {self.config.block_size}] (the current block_size)"
            )
        self.config = replace(self.config, block_size=block_size)  # the old one may be shared
        wpe = self.transformer.wpe.weight
        wpe.data = np.ascontiguousarray(wpe.data[:block_size])

    def resize_token_embeddings(self, new_num_tokens: int, generator=None) -> Embedding:
        """Grow (or shrink) the vocabulary to `new_num_tokens` rows, as Hugging Face's method
        of the same name: what a chat format needs after adding its special tokens to a base
        model's tokenizer. Old rows keep their ids and values; the tied head follows. New rows
        start at the mean of the old ones plus N(0, 0.02²) noise (HF's mean resizing: a new
        token's logit then starts near the average token's, not at an arbitrary value).
        Returns the embedding module."""
        if not isinstance(new_num_tokens, int) or new_num_tokens <= 0:
            raise ValueError(
                f"resize_token_embeddings: new_num_tokens must be a positive int, "
                f"got {new_num_tokens!r}"
            )
        wte = self.transformer.wte
        old = wte.weight.data
        n_old = old.shape[0]
        if new_num_tokens == n_old:
            return wte
        g = generator_or_default(generator)
        if new_num_tokens > n_old:
            extra = old.mean(axis=0) + g.normal(0.0, 0.02, (new_num_tokens - n_old, old.shape[1]))
            data = np.concatenate([old, extra.astype(old.dtype)], axis=0)
        else:
            data = old[:new_num_tokens].copy()
        wte.weight.data = np.ascontiguousarray(data)
        wte.num_embeddings = new_num_tokens
        self.lm_head.weight = wte.weight  # still one Parameter
        self.lm_head.out_features = new_num_tokens
        self.config = replace(self.config, vocab_size=new_num_tokens)
        return wte

    # nanoGPT's default peak: an A100's dense bf16 tensor-core FLOP/s
    A100_BF16_PEAK_FLOPS = 312e12

    def estimate_mfu(self, fwdbwd_per_iter: int, dt: float, peak_flops: float | None = None):
        """Model FLOPs utilization of a training iteration that ran `fwdbwd_per_iter`
        sequences of block_size tokens forward and backward in `dt` seconds (nanoGPT's).

        FLOPs per token, PaLM (Chowdhery et al. 2022, appendix B): 6N + 12·L·H·Q·T, with
        N = get_num_params() (without the position table), L layers, H heads of size Q and
        T = block_size; MFU = (FLOPs per token · T · fwdbwd_per_iter / dt) / peak.

        `peak_flops` defaults to nanoGPT's A100 bf16 peak, so the number is "what fraction of
        an A100 this throughput is"; for this machine's own MFU pass a measured peak, e.g.
        tinyllm.accounting.mfu.measure_matmul_peak().
        """
        if not dt > 0:
            raise ValueError(f"estimate_mfu: dt must be positive seconds, got {dt!r}")
        if fwdbwd_per_iter < 0:
            raise ValueError(f"estimate_mfu: fwdbwd_per_iter must be ≥ 0, got {fwdbwd_per_iter}")
        peak = self.A100_BF16_PEAK_FLOPS if peak_flops is None else peak_flops
        if not peak > 0:
            raise ValueError(f"estimate_mfu: peak_flops must be positive, got {peak!r}")
        c = self.config
        n_params = self.get_num_params()
        flops_per_token = 6 * n_params + 12 * c.n_layer * c.n_head * (c.n_embd // c.n_head) * (
            c.block_size
        )
        flops_per_iter = flops_per_token * c.block_size * fwdbwd_per_iter
        return flops_per_iter / dt / peak

    # -- Hugging Face GPT-2 files (tinyllm/models/hf_gpt2.py) --

    @classmethod
    def from_pretrained(cls, path, dropout: float = 0.0) -> "GPT":
        """Load a local directory in Hugging Face's GPT-2 layout (config.json +
        model.safetensors); see tinyllm.models.hf_gpt2. No download: `path` is a directory.

        GPT-2's files carry three dropout rates (resid/embd/attn_pdrop, 0.1 in GPT-2); tinyllm
        has one, and, like nanoGPT's from_pretrained, loads with `dropout` (0.0 unless given).
        Its tokenizer files in the same directory load with
        `tinyllm.data.ByteLevelBPE.from_gpt2_files(path)`."""
        from tinyllm.models.hf_gpt2 import load_gpt2_pretrained

        return load_gpt2_pretrained(cls, path, dropout=dropout)

    def save_pretrained(self, path) -> None:
        """Write this model as a Hugging Face GPT-2 directory, atomically (hf_gpt2.py), so
        `transformers.GPT2LMHeadModel.from_pretrained(path)` loads it."""
        from tinyllm.models.hf_gpt2 import save_gpt2_pretrained

        save_gpt2_pretrained(self, path)
