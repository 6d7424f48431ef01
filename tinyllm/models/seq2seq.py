"""Sequence to sequence with recurrent networks: an encoder LSTM, a decoder LSTM, and attention.

Neural machine translation before transformers (Sutskever et al. 2014; Cho et al. 2014) read
the source x₁ … x_S with an encoder RNN and handed the decoder RNN one thing: the encoder's
last state. The decoder starts from it and writes y₁, y₂, … each from its own state and the
word before:

    h_j = LSTM_enc(x_j, h_{j−1})            s_0 = h_S            s_t = LSTM_dec(y_{t−1}, s_{t−1})
    p(y_t | y_<t, x) = softmax(W_o s_t)

Everything the decoder will ever know about the source must fit into h_S, a vector of fixed
size however long the sentence: the *bottleneck*. Translation quality then falls with length.

Attention (Bahdanau, Cho & Bengio 2015) lets every decoder step look back at all encoder
states and choose. With the decoder's previous state s_{t−1}, an additive score per source
position, normalised over the source:

    e_tj = vᵀ tanh(W s_{t−1} + U h_j)        α_tj = softmax_j(e_tj)        c_t = Σ_j α_tj h_j

and the context c_t joins the decoder's input and its read-out:

    s_t = LSTM_dec([y_{t−1}; c_t], s_{t−1})        p(y_t | …) = softmax(W_o [s_t; c_t])

α_t is a soft *alignment*: which source words the t-th target word was written from. It is
learned from translations alone, and printing it shows the reordering the model found.

Simplifications, stated plainly: the encoder is one unidirectional LSTM layer for both models
(Bahdanau's was bidirectional), so the two differ only by attention; sources are left-padded,
so the encoder's last step is every sentence's last word, and attention never looks at padding.
Training is teacher-forced (the decoder reads the reference's previous word); `generate`
decodes greedily.
"""

from __future__ import annotations

import numpy as np

from tinyllm import nn, ops
from tinyllm.engine import no_grad


class Seq2Seq(nn.Module):
    """An LSTM encoder–decoder, with (`attention=True`) or without Bahdanau attention."""

    def __init__(
        self,
        source_vocab: int,
        target_vocab: int,
        embed: int = 64,
        hidden: int = 128,
        attention: bool = True,
        attention_size: int | None = None,
        pad_id: int = 0,
    ):
        super().__init__()
        for name, v in (("source_vocab", source_vocab), ("target_vocab", target_vocab),
                        ("embed", embed), ("hidden", hidden)):  # fmt: skip
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Seq2Seq: {name} must be a positive int, got {v!r}")
        self.attention, self.hidden, self.pad_id = attention, hidden, pad_id
        self.source_embed = nn.Embedding(source_vocab, embed)
        self.target_embed = nn.Embedding(target_vocab, embed)
        self.encoder = nn.LSTM(embed, hidden, batch_first=True)
        context = hidden if attention else 0
        self.decoder = nn.LSTMCell(embed + context, hidden)
        if attention:
            a = attention_size or hidden
            self.W = nn.Linear(hidden, a, bias=False)  # the decoder state's part of e_tj
            self.U = nn.Linear(hidden, a)  # the encoder states' part, computed once
            self.v = nn.Linear(a, 1, bias=False)
        self.out = nn.Linear(hidden + context, target_vocab)

    def encode(self, src):
        """Encoder states (B, S, H) and the final (h, c) that starts the decoder (sources are
        left-padded, so the last step is every sentence's last word)."""
        src = np.asarray(src)
        if src.ndim != 2 or src.dtype.kind not in "iu":
            raise ValueError(f"Seq2Seq: src must be (batch, time) integer ids, got {src.shape}")
        states, (h, c) = self.encoder(self.source_embed(src))
        return states, (h[0], c[0])

    def attend(self, s, keys, states, pad):
        """α (B, S) and the context c (B, H) for decoder state s (B, H)."""
        e = ops.squeeze(self.v(ops.tanh(ops.unsqueeze(self.W(s), 1) + keys)), -1)  # (B, S)
        if pad is not None:
            e = ops.masked_fill(e, pad, float("-inf"))
        alpha = ops.softmax(e, dim=-1)
        return alpha, ops.squeeze(ops.matmul(ops.unsqueeze(alpha, 1), states), 1)

    def step(self, y_prev, state, memory):
        """One decoder step: (logits (B, V), new state, α or None)."""
        states, keys, pad = memory
        x = self.target_embed(y_prev)
        alpha = None
        if self.attention:
            alpha, context = self.attend(state[0], keys, states, pad)
            x = ops.cat([x, context], dim=-1)
        h, c = self.decoder(x, state)
        read = ops.cat([h, context], dim=-1) if self.attention else h
        return self.out(read), (h, c), alpha

    def _memory(self, src, src_mask):
        states, state = self.encode(src)
        pad = None if src_mask is None else np.asarray(src_mask) == 0
        keys = self.U(states) if self.attention else None
        return (states, keys, pad), state

    def forward(self, src, tgt_in, labels=None, src_mask=None):
        """Teacher-forced logits (B, T, V) and the mean cross-entropy over labels ≠ −100."""
        tgt_in = np.asarray(tgt_in)
        memory, state = self._memory(src, src_mask)
        logits = []
        for t in range(tgt_in.shape[1]):
            out, state, _ = self.step(tgt_in[:, t], state, memory)
            logits.append(out)
        logits = ops.stack(logits, dim=1)
        loss = None
        if labels is not None:
            b, t, v = logits.shape
            loss = ops.cross_entropy(logits.reshape(b * t, v), np.asarray(labels).reshape(-1))
        return logits, loss

    def generate(self, src, max_new_tokens: int, bos_id: int, eos_id: int, src_mask=None):
        """Greedy decoding → (ids (B, ≤ max_new_tokens), attention (B, T, S) or None)."""
        if max_new_tokens < 1:
            raise ValueError(f"Seq2Seq.generate: max_new_tokens must be >= 1, got {max_new_tokens}")
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                memory, state = self._memory(src, src_mask)
                b = np.asarray(src).shape[0]
                y = np.full(b, bos_id, dtype=np.int64)
                done = np.zeros(b, dtype=bool)
                ids, alphas = [], []
                for _ in range(max_new_tokens):
                    out, state, alpha = self.step(y, state, memory)
                    y = np.where(done, eos_id, out.data.argmax(-1)).astype(np.int64)
                    ids.append(y)
                    if alpha is not None:
                        alphas.append(alpha.data)
                    done |= y == eos_id
                    if done.all():
                        break
        finally:
            self.train(was_training)
        attention = np.stack(alphas, axis=1) if alphas else None
        return np.stack(ids, axis=1), attention


def alignment_text(alpha: np.ndarray, source: list[str], target: list[str]) -> str:
    """A text heat map of one sentence's α (rows: target words, columns: source words)."""
    shades = " .:-=+*#%@"
    width = max(len(w) for w in target) + 1
    lines = [
        " " * width + " ".join(w[:1] for w in source) + "   (source: " + " ".join(source) + ")"
    ]
    for i, w in enumerate(target):
        row = alpha[i, -len(source) :]
        cells = " ".join(shades[min(len(shades) - 1, int(a * len(shades)))] for a in row)
        lines.append(f"{w:<{width}}{cells}")
    return "\n".join(lines)
