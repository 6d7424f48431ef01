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

Two functions, meant to be printed side by side:

* `gpt_param_formula(config)` — the count from the formulas above, for any object with
  nanoGPT's GPTConfig fields (vocab_size, block_size, n_layer, n_embd, bias);
* `count_parameters(model)` — what a model actually holds, grouped by component from the
  nanoGPT parameter names of `model.named_parameters()`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

COMPONENTS = ("embeddings", "attention", "mlp", "norms", "lm_head", "other")


@dataclass
class ParamCount:
    """Parameters per component. `embeddings` = wte + wpe; `lm_head` is 0 when tied to wte."""

    embeddings: int = 0
    attention: int = 0
    mlp: int = 0
    norms: int = 0
    lm_head: int = 0
    other: int = 0
    token_embeddings: int = 0      # wte alone (part of `embeddings`)
    position_embeddings: int = 0   # wpe alone (part of `embeddings`)
    attention_weights: int = 0     # the 2-D matrices of `attention` (no biases)
    mlp_weights: int = 0           # the 2-D matrices of `mlp` (no biases)
    names: dict = field(default_factory=dict, repr=False)  # component -> parameter names

    @property
    def total(self) -> int:
        return self.embeddings + self.attention + self.mlp + self.norms + self.lm_head + self.other

    @property
    def tied(self) -> bool:
        """True when no separate lm_head weight exists: the token table does both jobs."""
        return self.lm_head == 0 and self.token_embeddings > 0

    @property
    def non_embedding(self) -> int:
        """nanoGPT's `get_num_params(non_embedding=True)`: the total minus the position table.

        The token table stays in because, tied, it is also the output projection: every
        token's logits cost a matmul with it.
        """
        return self.total - self.position_embeddings

    @property
    def matmul(self) -> int:
        """Weights that take part in a matrix product for every token: the N of "6N".

        The blocks' weight matrices plus the output projection (wte when tied). Biases, norms
        and the position table are left out: they cost O(1) FLOPs per parameter per token, not
        two per multiply-add.
        """
        return self.attention_weights + self.mlp_weights + (self.lm_head or self.token_embeddings)

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in COMPONENTS} | {"total": self.total}


def layer_params(n_embd: int, bias: bool = True) -> int:
    """Parameters of one transformer block: 12H² + 13H with biases, 12H² + 2H without."""
    h = n_embd
    return 12 * h * h + (13 * h if bias else 2 * h)


def gpt_param_formula(config) -> ParamCount:
    """The formula count for a GPTConfig-like object (nanoGPT field names).

    Needs `vocab_size, block_size, n_layer, n_embd` and optionally `bias` (default True).
    lm_head is tied to the token embedding (as in GPT-2 and nanoGPT), so it adds nothing.
    """
    for name in ("vocab_size", "block_size", "n_layer", "n_embd"):
        value = getattr(config, name, None)
        if not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"gpt_param_formula: config.{name} must be a positive integer, "
                             f"got {value!r}")
    v, t, n_layer, h = config.vocab_size, config.block_size, config.n_layer, config.n_embd
    bias = bool(getattr(config, "bias", True))
    ln = 2 * h if bias else h                      # one LayerNorm: weight (+ bias)
    attn_w, mlp_w = 4 * h * h, 8 * h * h
    attn_b, mlp_b = (4 * h, 5 * h) if bias else (0, 0)
    return ParamCount(
        token_embeddings=v * h,
        position_embeddings=t * h,
        embeddings=v * h + t * h,
        attention=n_layer * (attn_w + attn_b),
        mlp=n_layer * (mlp_w + mlp_b),
        norms=n_layer * 2 * ln + ln,               # ln_1, ln_2 per layer, and ln_f
        lm_head=0,
        attention_weights=n_layer * attn_w,
        mlp_weights=n_layer * mlp_w,
    )


# nanoGPT names → component. The first pattern that matches wins; anything unmatched is
# counted under "other" (never dropped), so a new kind of parameter shows up in the table.
NANOGPT_PATTERNS = (
    ("token_embeddings", re.compile(r"(^|\.)wte\.")),
    ("position_embeddings", re.compile(r"(^|\.)wpe\.")),
    ("attention", re.compile(r"(^|\.)attn\.")),
    ("mlp", re.compile(r"(^|\.)mlp\.")),
    ("norms", re.compile(r"(^|\.)ln_[^.]*\.")),
    ("lm_head", re.compile(r"(^|\.)lm_head\.")),
)


def _numel(p) -> int:
    if hasattr(p, "numel"):
        return int(p.numel())
    return int(np.size(getattr(p, "data", p)))


def count_parameters(model, patterns=NANOGPT_PATTERNS) -> ParamCount:
    """Count `model.named_parameters()` per component, each distinct array once.

    `model` is anything with `named_parameters()` yielding (name, tensor-or-array) pairs —
    tinyllm's nn.Module, a PyTorch module, or a stand-in. A tied weight (lm_head sharing
    wte's array) is counted once, under the name met first, so a tied lm_head adds 0. The
    weight/bias split of attention and MLP (`attention_weights`, `mlp_weights`) goes by the
    number of dimensions: 2-D tensors are matmul weights.
    """
    if not hasattr(model, "named_parameters"):
        raise TypeError(f"count_parameters: {type(model).__name__} has no named_parameters()")
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
        if group in ("token_embeddings", "position_embeddings"):
            count.embeddings += n
        setattr(count, group, getattr(count, group) + n)
        if group in ("attention", "mlp") and np.ndim(array) == 2:
            setattr(count, f"{group}_weights", getattr(count, f"{group}_weights") + n)
    return count


def param_table(counted: ParamCount, formula: ParamCount) -> str:
    """Counted vs formula, one row per component, as printable text."""
    rows = [f"{'component':<12} {'model':>14} {'formula':>14}"]
    for name in COMPONENTS + ("total",):
        a = counted.total if name == "total" else getattr(counted, name)
        b = formula.total if name == "total" else getattr(formula, name)
        mark = "" if a == b else "   <- differs"
        rows.append(f"{name:<12} {a:>14,} {b:>14,}{mark}")
    return "\n".join(rows)
