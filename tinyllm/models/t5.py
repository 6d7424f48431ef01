"""T5-style encoder-decoder (Raffel et al. 2020): span corruption, any text-to-text task.

The original transformer (Vaswani et al. 2017) is an encoder-decoder: the encoder reads the
source with bidirectional attention into a "memory" (B, S, E); the decoder generates the
target left to right with causal self-attention, and at every layer *cross-attends* to the
memory (queries from the decoder, keys and values from the encoder). T5 casts every task —
translation, summarization, classification — as text in, text out, and pre-trains by span
corruption: random spans of the input (15% of tokens, mean length 3) are each replaced by one
sentinel token, and the target is the sentinels followed by the spans they hid:

    input:  Thank you <X> me to your party <Y> week.
    target: <X> for inviting <Y> last <Z>

The loss is the decoder's next-token cross-entropy on the target; the decoder input is the
target shifted right by one, starting with `decoder_start_token_id` ("teacher forcing").

Layout (tinyllm's names):  shared (V, E) embedding for both sides, tied to lm_head;
encoder.h.i EncoderBlock; encoder.ln_f; decoder.h.i DecoderBlock (self_attn, cross_attn, mlp);
decoder.ln_f.

Initialization is T5's own: the shared embedding N(0, 1), every weight matrix N(0, 1/fan_in).
With std-1 embeddings in the residual stream, blocks started at GPT-2's N(0, 0.02) would add
almost nothing to it — a small model then cannot even learn to reverse a sequence — while
fan-in scaling makes each block's output as large as its input from the first step.

Simplifications vs T5, stated plainly: positions come from the original paper's fixed
sinusoidal table instead of T5's learned relative-position buckets; LayerNorm with bias
instead of RMSNorm; GELU instead of ReLU. The tied output layer scales the decoder output by
E^(−1/2) as T5 does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from tinyllm import ops
from tinyllm.engine import Tensor, no_grad
from tinyllm.generate import _check_options, decode_loop
from tinyllm.nn.attention import KVCache
from tinyllm.nn.layers import Dropout, Embedding, LayerNorm
from tinyllm.nn.module import Module
from tinyllm.nn.positional import SinusoidalPositionalEncoding
from tinyllm.nn.transformer import Decoder, Encoder
from tinyllm.runtime.random import generator_or_default


@dataclass
class T5Config:
    vocab_size: int = 32128
    block_size: int = 512
    n_layer: int = 6  # encoder blocks
    n_decoder_layer: int = 6
    n_head: int = 8
    n_embd: int = 512
    dropout: float = 0.1
    bias: bool = True
    pad_token_id: int = 0
    decoder_start_token_id: int = 0

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(
                f"T5Config: n_embd {self.n_embd} is not divisible by n_head {self.n_head}"
            )

    def to_dict(self):
        return asdict(self)


def shift_right(labels: np.ndarray, start_id: int, pad_id: int) -> np.ndarray:
    """Decoder inputs for teacher forcing: [start, y₁, …, y_{T−1}], with −100 → pad."""
    out = np.empty_like(labels)
    out[:, 0] = start_id
    out[:, 1:] = labels[:, :-1]
    return np.where(out == -100, pad_id, out)


class T5(Module):
    def __init__(self, config: T5Config, generator=None):
        super().__init__()
        c = self.config = config
        self.shared = Embedding(c.vocab_size, c.n_embd)
        self.pos = SinusoidalPositionalEncoding(c.n_embd, max_len=c.block_size)
        self.drop = Dropout(c.dropout)
        self.encoder = Encoder(c.n_layer, c.n_embd, c.n_head, c.dropout, c.bias)
        self.decoder = Decoder(c.n_decoder_layer, c.n_embd, c.n_head, c.dropout, c.bias)
        g = generator_or_default(generator)
        norm = {id(p) for m in self.modules() if isinstance(m, LayerNorm) for p in m.parameters()}
        for name, p in self.named_parameters():
            if id(p) in norm:
                p.data[...] = 1 if name.endswith("weight") else 0
            elif name.endswith("bias"):
                p.data[...] = 0
            else:  # T5's initialization: N(0, 1) embeddings, N(0, 1/fan_in) weights
                std = 1.0 if name == "shared.weight" else p.shape[1] ** -0.5
                p.data[...] = g.normal(0.0, std, p.shape)

    def _embed(self, ids, offset=0):
        ids = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
        c = self.config
        if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(
                f"T5: token ids must be an integer (batch, time) array, got {ids.shape} {ids.dtype}"
            )
        if offset + ids.shape[1] > c.block_size:
            raise ValueError(
                f"T5: sequence length {offset + ids.shape[1]} exceeds block_size {c.block_size}"
            )
        if ids.size and (ids.min() < 0 or ids.max() >= c.vocab_size):
            raise ValueError(f"T5: token id outside the vocabulary [0, {c.vocab_size})")
        return self.drop(self.pos(self.shared(ids), offset))  # (B, T, E)

    def encode(self, input_ids, attention_mask=None) -> tuple[Tensor, np.ndarray | None]:
        pad = None if attention_mask is None else np.asarray(attention_mask) == 0
        return self.encoder(self._embed(input_ids), key_padding_mask=pad), pad

    def _logits(self, h: Tensor) -> Tensor:
        # tied output layer, scaled by E^(−1/2) as T5 does
        return ops.linear(h * (1.0 / math.sqrt(self.config.n_embd)), self.shared.weight)

    def forward(self, input_ids, decoder_input_ids=None, labels=None, attention_mask=None):
        """→ (logits (B, T_dec, V), mean cross-entropy over labels ≠ −100, or None)."""
        c = self.config
        if decoder_input_ids is None:
            if labels is None:
                raise ValueError("T5.forward: give decoder_input_ids or labels")
            decoder_input_ids = shift_right(
                np.asarray(labels), c.decoder_start_token_id, c.pad_token_id
            )
        memory, pad = self.encode(input_ids, attention_mask)  # (B, S, E)
        h = self.decoder(self._embed(decoder_input_ids), memory, memory_padding_mask=pad)
        logits = self._logits(h)  # (B, T, V)
        loss = None
        if labels is not None:
            lb = np.asarray(labels)
            b, t, v = logits.shape
            loss = ops.cross_entropy(logits.reshape(b * t, v), lb.reshape(-1), ignore_index=-100)
        return logits, loss

    def generate(
        self,
        input_ids,
        max_new_tokens: int,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k=None,
        top_p=None,
        repetition_penalty: float = 1.0,
        eos_token_id=None,
        pad_token_id=None,
        use_cache: bool = True,
        seed=None,
        attention_mask=None,
        generator=None,
    ) -> np.ndarray:
        """Encode once, then decode from decoder_start_token_id. Returns the decoder tokens
        (B, 1 + new), starting with the start token, as Hugging Face does."""
        _check_options(max_new_tokens, do_sample, temperature, top_k, top_p, repetition_penalty)
        c = self.config
        ids = np.asarray(input_ids)
        rng = np.random.default_rng(seed) if seed is not None else generator_or_default(generator)
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                memory, pad = self.encode(ids, attention_mask)
            b = ids.shape[0]
            hd = c.n_embd // c.n_head
            state = {}

            def next_scores(tokens, m, n_new):
                with no_grad():
                    if tokens.shape[1] > c.block_size:
                        raise ValueError(
                            f"T5.generate: output longer than block_size {c.block_size}"
                        )
                    if not use_cache:
                        h = self.decoder(self._embed(tokens), memory, memory_padding_mask=pad)
                        return self._logits(h).data[:, -1]
                    if "caches" not in state:
                        state["caches"] = [
                            (
                                KVCache(b, c.n_head, c.block_size, hd, dtype=memory.dtype),
                                KVCache(b, c.n_head, memory.shape[1], hd, dtype=memory.dtype),
                            )
                            for _ in range(c.n_decoder_layer)
                        ]
                    caches = state["caches"]
                    offset = caches[0][0].length
                    h = self.decoder(
                        self._embed(tokens[:, -n_new:], offset),
                        memory,
                        memory_padding_mask=pad,
                        caches=caches,
                    )
                    return self._logits(h).data[:, -1]

            start = np.full((b, 1), c.decoder_start_token_id, dtype=np.int64)
            return decode_loop(
                next_scores,
                start,
                np.ones_like(start),
                max_new_tokens,
                do_sample,
                temperature,
                top_k,
                top_p,
                repetition_penalty,
                eos_token_id,
                eos_token_id if pad_token_id is None else pad_token_id,
                rng,
            )
        finally:
            self.train(was_training)
