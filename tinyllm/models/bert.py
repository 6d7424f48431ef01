"""BERT-style encoder-only model (Devlin et al. 2019): masked-LM pre-training, classification.

An encoder reads the whole sequence with *bidirectional* self-attention: every token sees the
tokens on both sides. That rules out next-token prediction (the answer would be visible), so
BERT is pre-trained as a cloze test — masked language modelling (MLM): 15% of the tokens are
chosen; of those 80% are replaced by [MASK], 10% by a random token and 10% left unchanged
(so the model cannot learn that only [MASK] positions matter), and the model must recover the
originals. The loss is the cross-entropy at the chosen positions only (labels −100 elsewhere;
the batch builder is tinyllm.data's MLM collator):

    L = −(1/|M|) Σ_{i∈M} log p(xᵢ | x̃)         x̃ the corrupted sequence, M the chosen positions

Fine-tuning for classification reads the final hidden state of the first token ([CLS]) through
a "pooler" (dense + tanh) and a linear classifier.

Layout (tinyllm's names; pre-LayerNorm blocks from tinyllm.nn.transformer):

    transformer.wte (V, E) tokens   transformer.wpe (T, E) positions
    transformer.wtt (2, E) segments
    transformer.h.i  EncoderBlock: ln_1, attn (q/k/v/out_proj), ln_2, mlp (c_fc, c_proj)
    transformer.ln_f
    MLM head: dense E→E, GELU, ln, then scores against wte (tied) + a bias (V,)

Simplification vs the paper: pre-LN instead of post-LN blocks, no next-sentence prediction
(RoBERTa showed it is not needed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tinyllm import ops
from tinyllm.engine import Tensor
from tinyllm.nn.layers import GELU, Dropout, Embedding, LayerNorm, Linear
from tinyllm.nn.module import Module, ModuleDict, Parameter
from tinyllm.nn.transformer import Encoder
from tinyllm.runtime.random import generator_or_default


@dataclass
class BertConfig:
    vocab_size: int = 30522
    block_size: int = 512
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.1
    bias: bool = True
    type_vocab_size: int = 2
    num_labels: int = 2

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(
                f"BertConfig: n_embd {self.n_embd} is not divisible by n_head {self.n_head}"
            )

    def to_dict(self):
        return asdict(self)


def _as_ids(x, name):
    a = np.asarray(x.data if isinstance(x, Tensor) else x)
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(
            f"{name} must be an integer array (batch, time), got shape {a.shape} dtype {a.dtype}"
        )
    return a


class BertModel(Module):
    """The encoder: embeddings + bidirectional blocks → hidden states (B, T, E)."""

    def __init__(self, config: BertConfig, generator=None):
        super().__init__()
        self.config = config
        c = config
        self.transformer = ModuleDict(
            dict(
                wte=Embedding(c.vocab_size, c.n_embd),
                wpe=Embedding(c.block_size, c.n_embd),
                wtt=Embedding(c.type_vocab_size, c.n_embd),
                drop=Dropout(c.dropout),
            )
        )
        self.encoder = Encoder(c.n_layer, c.n_embd, c.n_head, c.dropout, c.bias)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> Tensor:
        ids = _as_ids(input_ids, "BertModel.forward: input_ids")
        b, t = ids.shape
        c = self.config
        if t > c.block_size:
            raise ValueError(
                f"BertModel.forward: sequence length {t} exceeds block_size {c.block_size}"
            )
        if ids.min() < 0 or ids.max() >= c.vocab_size:
            raise ValueError(
                f"BertModel.forward: token id outside the vocabulary [0, {c.vocab_size})"
            )
        tt = (
            np.zeros_like(ids)
            if token_type_ids is None
            else _as_ids(token_type_ids, "token_type_ids")
        )
        tr = self.transformer
        x = tr.drop(tr.wte(ids) + tr.wpe(np.arange(t)) + tr.wtt(tt))  # (B, T, E)
        pad = None
        if attention_mask is not None:
            am = np.asarray(
                attention_mask.data if isinstance(attention_mask, Tensor) else attention_mask
            )
            if am.shape != (b, t):
                raise ValueError(f"BertModel.forward: attention_mask {am.shape}, expected {(b, t)}")
            pad = am == 0  # True = padding
        return self.encoder(x, key_padding_mask=pad)


def _init_normal(module: Module, generator, std=0.02):
    """BERT's initialization: Linear/Embedding weights N(0, 0.02), biases 0, LayerNorm 1/0."""
    g = generator_or_default(generator)
    norm = {id(p) for m in module.modules() if isinstance(m, LayerNorm) for p in m.parameters()}
    for name, p in module.named_parameters():
        if id(p) in norm:
            p.data[...] = 1 if name.endswith("weight") else 0
        elif name.endswith("bias"):
            p.data[...] = 0
        else:
            p.data[...] = g.normal(0.0, std, p.shape)


class BertForMaskedLM(Module):
    def __init__(self, config: BertConfig, generator=None):
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.mlm_dense = Linear(config.n_embd, config.n_embd)
        self.mlm_act = GELU()
        self.mlm_ln = LayerNorm(config.n_embd)
        self.mlm_bias = Parameter(np.zeros(config.vocab_size, dtype=np.float32))
        _init_normal(self, generator)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        """→ (logits (B, T, V), loss over positions whose label is not −100, or None)."""
        h = self.bert(input_ids, attention_mask, token_type_ids)  # (B, T, E)
        h = self.mlm_ln(self.mlm_act(self.mlm_dense(h)))
        logits = ops.linear(h, self.bert.transformer.wte.weight, self.mlm_bias)  # tied (B, T, V)
        loss = None
        if labels is not None:
            lb = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
            b, t, v = logits.shape
            loss = ops.cross_entropy(logits.reshape(b * t, v), lb.reshape(-1), ignore_index=-100)
        return logits, loss


class BertForSequenceClassification(Module):
    def __init__(self, config: BertConfig, generator=None):
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.pooler = Linear(config.n_embd, config.n_embd)
        self.drop = Dropout(config.dropout)
        self.classifier = Linear(config.n_embd, config.num_labels)
        _init_normal(self, generator)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        """→ (logits (B, num_labels), mean cross-entropy against `labels` (B,) or None)."""
        h = self.bert(input_ids, attention_mask, token_type_ids)  # (B, T, E)
        cls = h[:, 0]  # (B, E) the [CLS] token
        pooled = ops.tanh(self.pooler(cls))
        logits = self.classifier(self.drop(pooled))  # (B, num_labels)
        loss = None
        if labels is not None:
            loss = ops.cross_entropy(logits, np.asarray(labels))
        return logits, loss

    @classmethod
    def from_pretrained_mlm(cls, mlm: BertForMaskedLM, num_labels: int, generator=None):
        """A classifier whose encoder starts from a masked-LM pre-trained one (fine-tuning)."""
        from dataclasses import replace

        model = cls(replace(mlm.config, num_labels=num_labels), generator)
        model.bert.load_state_dict(mlm.bert.state_dict())
        return model
