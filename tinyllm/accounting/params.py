"""Counting parameters: the 12H² rule, and what a real model holds.

A GPT block (hidden size H) owns four weight matrices:

    attention   c_attn  H → 3H   (the Q, K and V projections side by side)   3H²
                c_proj  H → H    (mixes the heads back together)              H²
    MLP         c_fc    H → 4H                                               4H²
                c_proj  4H → H                                               4H²
                                                                             ────
                                                                             12H²

so a layer holds 12H² weights — attention a third, the MLP two thirds. GPT-2 style layers
(nanoGPT's `bias=True`) add a bias to each of those four matrices, 3H + H + 4H + H = 9H, and
two LayerNorms with a weight and a bias each, 4H: 12H² + 13H per layer. Without biases
(`bias=False`) the LayerNorms keep only their weights: 12H² + 2H.

Outside the layers: the token embedding V·H, the learned positions T·H (T = block_size), a
final LayerNorm (2H, or H without bias) and the output projection `lm_head`. GPT-2 ties
lm_head to the token embedding — the same V×H matrix reads tokens in and scores them out —
so it is counted once. For GPT-2 small (V=50257, T=1024, 12 layers, H=768) this gives
124,439,808 parameters, the number every GPT-2 checkpoint reports.

The encoder-only and encoder-decoder models reuse the same blocks:

* BERT (tinyllm.models.bert): each encoder layer is a GPT block without the causal mask,
  12H² + 13H. Embeddings: tokens V·H, positions T·H and segments (token types) S·H. Its
  heads: the masked-LM head (a dense H → H with bias, a LayerNorm, and a bias of V logits;
  the scores themselves are a product with the tied token table) H² + 3H + V, or the
  classifier's pooler H² + H and output K·H + K for K labels.
* T5 (tinyllm.models.t5): an encoder layer is 12H² + 13H again; a decoder layer adds a
  cross-attention (queries from the decoder, keys and values from the encoder: four more H×H
  matrices with their biases) and a third LayerNorm, 16H² + 19H. One token table (`shared`)
  serves both sides and the tied output; positions are a fixed sinusoid (no parameters);
  each stack ends in a LayerNorm.

Two kinds of functions, meant to be printed side by side:

* `gpt_param_formula(config)`, `bert_param_formula(config, head)`, `t5_param_formula(config)`
  — the count from the formulas above, for objects with the models' config fields
  (vocab_size, block_size, n_layer, n_embd, bias, ...);
* `count_parameters(model)` — what a model actually holds, grouped by component from the
  parameter names of `model.named_parameters()` (nanoGPT's, and tinyllm's encoder/decoder
  names). Components: embeddings, attention, mlp, norms, heads, and "other" for any name no
  pattern knows (nothing of GPT, BERT or T5 falls there; the tests check it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from tinyllm.models.bert import BertForSequenceClassification, BertModel

COMPONENTS = ("embeddings", "attention", "mlp", "norms", "heads", "other")


@dataclass
class ParamCount:
    """Parameters per component, and a few parts of them kept apart.

    The components (`COMPONENTS`) add up to `total`. The fields after them are parts:
    token/position tables of `embeddings`, the decoder's `cross_attention` within
    `attention`, a separate vocabulary output weight `lm_head` within `heads` (0 when the
    output is tied to the token table), and the 2-D weight matrices of attention, MLP and
    heads (what takes part in matrix products).
    """

    embeddings: int = 0
    attention: int = 0
    mlp: int = 0
    norms: int = 0
    heads: int = 0
    other: int = 0
    token_embeddings: int = 0  # wte / shared alone (part of `embeddings`)
    position_embeddings: int = 0  # wpe alone (part of `embeddings`)
    cross_attention: int = 0  # the decoder's cross-attention (part of `attention`)
    lm_head: int = 0  # a separate vocabulary output weight (part of `heads`)
    attention_weights: int = 0  # the 2-D matrices of `attention` (no biases)
    mlp_weights: int = 0  # the 2-D matrices of `mlp` (no biases)
    head_weights: int = 0  # the 2-D matrices of `heads`
    tied: bool = False  # the vocabulary scores are a product with the token table
    names: dict = field(default_factory=dict, repr=False)  # component -> parameter names

    @property
    def total(self) -> int:
        return sum(getattr(self, name) for name in COMPONENTS)

    @property
    def non_embedding(self) -> int:
        """nanoGPT's `get_num_params(non_embedding=True)`: the total minus the position table.

        The token table stays in because, tied, it is also the output projection: every
        token's logits cost a matmul with it.
        """
        return self.total - self.position_embeddings

    @property
    def matmul(self) -> int:
        """Weights that take part in a matrix product: the N of "6N".

        The blocks' and the heads' weight matrices, plus the token table when the output is
        tied to it. Biases, norms and the position table are left out: they cost O(1) FLOPs
        per parameter per token, not two per multiply-add. For a decoder-only LM every token
        meets each of these once; in T5 a source token meets only the encoder's, and BERT's
        classification head runs once per sequence, so there "per token" is approximate.
        """
        return (
            self.attention_weights
            + self.mlp_weights
            + self.head_weights
            + (self.token_embeddings if self.tied else 0)
        )

    def __add__(self, other: "ParamCount") -> "ParamCount":
        sums = {f: getattr(self, f) + getattr(other, f) for f in _INT_FIELDS}
        return ParamCount(**sums, tied=self.tied or other.tied)

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in COMPONENTS} | {"total": self.total}


_INT_FIELDS = tuple(f for f in ParamCount.__dataclass_fields__ if f not in ("tied", "names"))


def _check_config(where: str, config, names) -> None:
    for name in names:
        value = getattr(config, name, None)
        if not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{where}: config.{name} must be a positive integer, got {value!r}")


def blocks_formula(
    n_blocks: int, n_embd: int, bias: bool = True, cross_attention: bool = False
) -> ParamCount:
    """`n_blocks` pre-LN transformer blocks of width H = n_embd, by formula.

    Self-attention 4H² (+4H biases), MLP 8H² (+4H + H biases), two LayerNorms (weight, and
    bias when `bias`). A decoder block with `cross_attention` has a second attention, 4H²
    (+4H), and a third LayerNorm.
    """
    h, n = n_embd, n_blocks
    n_attn = 2 if cross_attention else 1
    attn_w, attn_b = 4 * h * h, (4 * h if bias else 0)
    mlp_w, mlp_b = 8 * h * h, (5 * h if bias else 0)
    ln = 2 * h if bias else h  # one LayerNorm: weight (+ bias)
    return ParamCount(
        attention=n * n_attn * (attn_w + attn_b),
        cross_attention=n * (attn_w + attn_b) if cross_attention else 0,
        mlp=n * (mlp_w + mlp_b),
        norms=n * (n_attn + 1) * ln,
        attention_weights=n * n_attn * attn_w,
        mlp_weights=n * mlp_w,
    )


def layer_params(n_embd: int, bias: bool = True, cross_attention: bool = False) -> int:
    """Parameters of one block: 12H² + 13H with biases, 12H² + 2H without; a decoder block
    with cross-attention 16H² + 19H, or 16H² + 3H without biases."""
    return blocks_formula(1, n_embd, bias, cross_attention).total


def gpt_param_formula(config) -> ParamCount:
    """The formula count for a GPTConfig-like object (nanoGPT field names).

    Needs `vocab_size, block_size, n_layer, n_embd` and optionally `bias` (default True).
    lm_head is tied to the token embedding (as in GPT-2 and nanoGPT), so it adds nothing.
    """
    _check_config("gpt_param_formula", config, ("vocab_size", "block_size", "n_layer", "n_embd"))
    v, t, h = config.vocab_size, config.block_size, config.n_embd
    bias = bool(getattr(config, "bias", True))
    ln_f = ParamCount(norms=2 * h if bias else h)
    tables = ParamCount(
        token_embeddings=v * h, position_embeddings=t * h, embeddings=(v + t) * h, tied=True
    )
    return tables + blocks_formula(config.n_layer, h, bias) + ln_f


BERT_HEADS = ("mlm", "classification", None)


def bert_param_formula(config, head: str | None = "mlm") -> ParamCount:
    """The formula count for a BertConfig-like object; `head` is "mlm" (BertForMaskedLM),
    "classification" (BertForSequenceClassification, `num_labels` outputs) or None
    (BertModel, the encoder alone).

    The blocks follow `config.bias`; the heads' dense layers and LayerNorm always have biases
    (as tinyllm.models.bert builds them). Only the masked-LM head scores the vocabulary, by a
    product with the tied token table.
    """
    if head not in BERT_HEADS:
        raise ValueError(f"bert_param_formula: head must be one of {BERT_HEADS}, got {head!r}")
    _check_config(
        "bert_param_formula",
        config,
        ("vocab_size", "block_size", "n_layer", "n_embd", "type_vocab_size")
        + (("num_labels",) if head == "classification" else ()),
    )
    v, t, h, s = config.vocab_size, config.block_size, config.n_embd, config.type_vocab_size
    bias = bool(getattr(config, "bias", True))
    tables = ParamCount(
        token_embeddings=v * h, position_embeddings=t * h, embeddings=(v + t + s) * h
    )
    count = (
        tables + blocks_formula(config.n_layer, h, bias) + ParamCount(norms=2 * h if bias else h)
    )  # encoder.ln_f
    if head == "mlm":  # dense H→H + bias, LayerNorm (weight, bias), V output biases
        count += ParamCount(heads=h * h + h + 2 * h + v, head_weights=h * h, tied=True)
    elif head == "classification":  # pooler H→H + bias, classifier H→K + bias
        k = config.num_labels
        count += ParamCount(heads=h * h + h + k * h + k, head_weights=h * h + k * h)
    return count


def t5_param_formula(config) -> ParamCount:
    """The formula count for a T5Config-like object: one shared token table (tied to the
    output), `n_layer` encoder blocks, `n_decoder_layer` decoder blocks with cross-attention,
    a final LayerNorm per stack; sinusoidal positions hold no parameters."""
    _check_config(
        "t5_param_formula", config, ("vocab_size", "n_layer", "n_decoder_layer", "n_embd")
    )
    v, h = config.vocab_size, config.n_embd
    bias = bool(getattr(config, "bias", True))
    ln = 2 * h if bias else h
    return (
        ParamCount(token_embeddings=v * h, embeddings=v * h, norms=2 * ln, tied=True)
        + blocks_formula(config.n_layer, h, bias)
        + blocks_formula(config.n_decoder_layer, h, bias, cross_attention=True)
    )


# Parameter names → component: nanoGPT's (GPT) and tinyllm's encoder/decoder names (BERT, T5).
# The first pattern that matches wins; anything unmatched is counted under "other" (never
# dropped), so a new kind of parameter shows up in the table. Groups that are parts of a
# component (PART_OF) count in both.
PARAMETER_PATTERNS = (
    ("token_embeddings", re.compile(r"(^|\.)(wte|shared)\.")),
    ("position_embeddings", re.compile(r"(^|\.)wpe\.")),
    ("embeddings", re.compile(r"(^|\.)wtt\.")),  # BERT's segment table
    ("cross_attention", re.compile(r"(^|\.)cross_attn\.")),
    ("attention", re.compile(r"(^|\.)(attn|self_attn)\.")),
    ("mlp", re.compile(r"(^|\.)mlp\.")),
    ("norms", re.compile(r"(^|\.)ln_[^.]*\.")),
    ("lm_head", re.compile(r"(^|\.)lm_head\.")),
    ("heads", re.compile(r"^(mlm_\w+|pooler|classifier)(\.|$)")),  # BERT's task heads
)
PART_OF = {
    "token_embeddings": "embeddings",
    "position_embeddings": "embeddings",
    "cross_attention": "attention",
    "lm_head": "heads",
}
WEIGHTS_OF = {"attention": "attention_weights", "mlp": "mlp_weights", "heads": "head_weights"}


def _numel(p) -> int:
    if hasattr(p, "numel"):
        return int(p.numel())
    return int(np.size(getattr(p, "data", p)))


def _scores_the_vocabulary(model) -> bool:
    """Whether the model's output is vocabulary scores. BERT's encoder alone and its
    classifier have none; GPT, BERT's masked LM, T5 and unknown (nanoGPT-like) models do."""

    return not isinstance(model, (BertModel, BertForSequenceClassification))


def count_parameters(
    model, patterns=PARAMETER_PATTERNS, scores_vocabulary: bool | None = None
) -> ParamCount:
    """Count `model.named_parameters()` per component, each distinct array once.

    `model` is anything with `named_parameters()` yielding (name, tensor-or-array) pairs —
    tinyllm's nn.Module, a PyTorch module, or a stand-in. A tied weight (lm_head sharing
    wte's array) is counted once, under the name met first, so a tied lm_head adds 0. The
    weight/bias split (`attention_weights`, `mlp_weights`, `head_weights`) goes by the number
    of dimensions: 2-D tensors are matmul weights. `tied` is set when the model scores the
    vocabulary (`scores_vocabulary`; by default decided from its class) and holds no separate
    lm_head weight: the scores are then a product with the token table.
    """
    if not hasattr(model, "named_parameters"):
        raise TypeError(f"count_parameters: {type(model).__name__} has no named_parameters()")
    if scores_vocabulary is None:
        scores_vocabulary = _scores_the_vocabulary(model)
    count = ParamCount()
    seen: set[int] = set()
    for name, p in model.named_parameters():
        array = getattr(p, "data", p)
        # A tie may share the Parameter or only its NumPy array. (Only NumPy arrays are keyed
        # by id: PyTorch's `.data` is a fresh object on every access.)
        keys = {id(p)} | ({id(array)} if isinstance(array, np.ndarray) else set())
        if keys & seen:
            continue  # the same weight under a second name (lm_head tied to wte)
        seen |= keys
        n = _numel(p)
        group = next((g for g, pat in patterns if pat.search(name)), "other")
        count.names.setdefault(group, []).append(name)
        component = PART_OF.get(group, group)
        if component != group:
            setattr(count, group, getattr(count, group) + n)
        setattr(count, component, getattr(count, component) + n)
        if component in WEIGHTS_OF and np.ndim(array) == 2:
            setattr(count, WEIGHTS_OF[component], getattr(count, WEIGHTS_OF[component]) + n)
    count.tied = bool(scores_vocabulary and count.lm_head == 0 and count.token_embeddings > 0)
    return count


def param_table(counted: ParamCount, formula: ParamCount) -> str:
    """Counted vs formula, one row per component, as printable text.

    When a model's only head is its vocabulary output (GPT, T5), the heads row is labelled
    `lm_head`; a decoder's cross-attention gets a row of its own (part of attention).
    """
    only_output = all(c.heads == c.lm_head and (c.tied or c.lm_head) for c in (counted, formula))
    rows = [f"{'component':<12} {'model':>14} {'formula':>14}"]
    names = list(COMPONENTS)
    if counted.cross_attention or formula.cross_attention:
        names.insert(names.index("attention") + 1, "cross_attention")
    for name in names + ["total"]:
        a = counted.total if name == "total" else getattr(counted, name)
        b = formula.total if name == "total" else getattr(formula, name)
        mark = "" if a == b else "   <- differs"
        label = {"heads": "lm_head" if only_output else "heads", "cross_attention": "  cross"}.get(
            name, name
        )
        rows.append(f"{label:<12} {a:>14,} {b:>14,}{mark}")
    return "\n".join(rows)
