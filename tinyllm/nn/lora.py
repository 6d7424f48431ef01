"""LoRA: fine-tune a frozen Linear layer through a low-rank correction (Hu et al. 2021).

Full fine-tuning changes every entry of a weight W (out × in). LoRA's bet is that the change a
new task needs has low rank, so it learns the change as a product of two thin matrices and
leaves W itself frozen:

    h = W x + (α / r) · B A dropout(x)        A (r × in),  B (out × r),  r ≪ min(in, out)

A is drawn at random (Kaiming-uniform, as PyTorch initializes a Linear's weight) and B starts
at zero, so B A = 0: at step 0 the adapted model *is* the base model, and training starts from
what the base already knows. The scale α / r keeps the update's size roughly independent of
the rank, so a learning rate tuned at one r still works at another. Dropout acts on the
adapter's input only; the frozen path sees x unchanged.

What it saves is optimizer memory, not activation memory. Only A and B have gradients and Adam
moments: r·(in + out) trainable numbers per layer instead of in·out (for a square 768 × 768
layer at r = 8, 12 288 instead of 589 824, 2%). The frozen weights still take part in every
forward and backward pass.

Merging: after training, W' = W + (α / r)·B A is an ordinary Linear weight, so the adapter
costs nothing at inference. `merge()` folds the update into W (and the layer then skips the
adapter path); `unmerge()` subtracts it again, restoring W up to float rounding, so one base
can carry several adapters in turn. `merge_lora(model)` merges every adapter and puts the plain
Linear back in its place — a model with the base's exact structure and state-dict names,
which any code that loads the base can load.

New tokens. A chat format adds tokens the base never saw; their embedding rows start as a guess
(the mean of the old rows). With the embedding frozen those rows stay a guess, and the model
can hardly tell <|user|> from <|end|>. `train_new_token_rows(model, n_new)` makes only the last
n_new rows of a (tied) embedding trainable — PEFT's `trainable_token_indices` — at a cost of
n_new·E more trainable numbers: the embedding becomes [W_old (frozen); W_new (trained)], read by
both the input lookup and the tied output head.

`apply_lora(model, target_names, r, alpha, dropout)` wraps the Linear layers whose dotted names
end with one of `target_names` (e.g. "attn.c_attn" matches every block's) and freezes every
other parameter; `lora_state_dict(model)` is the adapters alone — what one saves to ship an
adapter (a few kilobytes) instead of a model. The names follow Hugging Face PEFT's `LoraLayer`
(`lora_A`, `lora_B`, `scaling`, `merge`/`unmerge`, `merge_and_unload`); the code is tinyllm's.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from tinyllm import ops
from tinyllm.engine import Tensor
from tinyllm.nn.layers import Linear
from tinyllm.nn.module import Module, Parameter
from tinyllm.runtime.random import generator_or_default


class LoRALinear(Module):
    """A frozen Linear `base` plus the trainable low-rank path (α / r)·B A dropout(x)."""

    def __init__(
        self,
        base: Linear,
        r: int = 8,
        alpha: float = 16.0,
        dropout: float = 0.0,
        generator=None,
    ):
        super().__init__()
        if not isinstance(base, Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1:
            raise ValueError(f"LoRALinear: rank r must be a positive int, got {r!r}")
        if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"LoRALinear: alpha must be a finite number > 0, got {alpha!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"LoRALinear: dropout must be in [0, 1), got {dropout!r}")
        self.base = base
        base.requires_grad_(False)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.r, self.alpha, self.dropout_p = int(r), float(alpha), float(dropout)
        self.scaling = self.alpha / self.r
        dtype = base.weight.dtype
        g = generator_or_default(generator)
        # Kaiming-uniform with a = √5, PyTorch's Linear init: U(−1/√in, 1/√in)
        bound = 1.0 / math.sqrt(self.in_features)
        self.lora_A = Parameter(g.uniform(-bound, bound, (self.r, self.in_features)).astype(dtype))
        self.lora_B = Parameter(np.zeros((self.out_features, self.r), dtype=dtype))
        self.merged = False

    def delta_weight(self) -> np.ndarray:
        """(α / r)·B A, the (out, in) update this adapter adds to the base weight."""
        return (self.scaling * (self.lora_B.data @ self.lora_A.data)).astype(self.base.weight.dtype)

    def forward(self, x: Tensor) -> Tensor:
        y = self.base(x)  # W x + b, W frozen
        if self.merged:
            return y  # W already holds W + (α/r) B A
        h = ops.dropout(x, self.dropout_p, self.training) if self.dropout_p else x
        h = ops.linear(ops.linear(h, self.lora_A), self.lora_B)  # B A x: (…, r) then (…, out)
        return y + h * self.scaling

    def merge(self) -> None:
        """W ← W + (α / r)·B A; the layer then computes the same function without the adapter."""
        if self.merged:
            raise RuntimeError("LoRALinear.merge: the adapter is already merged")
        self.base.weight.data += self.delta_weight()
        self.merged = True

    def unmerge(self) -> None:
        """W ← W − (α / r)·B A: the base weight back (up to float rounding), adapter separate."""
        if not self.merged:
            raise RuntimeError("LoRALinear.unmerge: the adapter is not merged")
        self.base.weight.data -= self.delta_weight()
        self.merged = False

    def extra_repr(self):
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, r={self.r}, "
            f"alpha={self.alpha:g}, dropout={self.dropout_p:g}, merged={self.merged}"
        )


class NewTokenRows(Module):
    """An Embedding whose first rows are frozen and whose last `n_new` rows train.

    `table()` is the full (V, E) matrix [frozen; new] as a Tensor, so the gradient reaches the
    new rows only; the tied head (`TiedHead`) multiplies by the same table."""

    def __init__(self, embedding, n_new: int, train_old: bool = False):
        super().__init__()
        v = embedding.weight.shape[0]
        if isinstance(n_new, bool) or not isinstance(n_new, int) or not 0 < n_new <= v:
            raise ValueError(f"NewTokenRows: n_new must be an int in [1, {v}], got {n_new!r}")
        self.base = embedding
        self.train_old = bool(train_old)  # PEFT's modules_to_save for the embedding: all rows
        embedding.requires_grad_(self.train_old)
        self.n_old = v - n_new
        self.new_rows = Parameter(embedding.weight.data[self.n_old :].copy())

    @property
    def weight(self):  # the dtype and shape of the table, as code that reads wte.weight expects
        return self.base.weight

    def table(self) -> Tensor:
        if self.train_old:  # the old rows train too, through the same table
            old = self.base.weight[: self.n_old]
        else:
            old = Tensor(self.base.weight.data[: self.n_old])  # a constant: no gradient
        return ops.concatenate([old, self.new_rows], dim=0)  # (V, E)

    def forward(self, ids) -> Tensor:
        return ops.embedding(ids, self.table())

    def write_back(self) -> None:
        self.base.weight.data[self.n_old :] = self.new_rows.data


class TiedHead(Module):
    """logits = x · tableᵀ with the table of a NewTokenRows (which it reads, not owns)."""

    def __init__(self, rows: NewTokenRows):
        super().__init__()
        object.__setattr__(self, "rows", rows)  # not a child: the rows belong to the embedding

    def forward(self, x: Tensor) -> Tensor:
        return ops.linear(x, self.rows.table())


def train_new_token_rows(
    model: Module,
    n_new: int,
    embedding: str = "transformer.wte",
    head: str = "lm_head",
    train_old: bool = False,
) -> NewTokenRows:
    """Make the last `n_new` rows of the model's tied embedding trainable (everything else of
    it frozen, unless `train_old`), for the input lookup and the output head alike."""
    old = model.get_submodule(embedding)
    if getattr(model.get_submodule(head), "weight", None) is not old.weight:
        raise ValueError(f"train_new_token_rows: {head} is not tied to {embedding}")
    rows = NewTokenRows(old, n_new, train_old=train_old)
    original_head = model.get_submodule(head)
    _replace(model, embedding, rows)
    _replace(model, head, TiedHead(rows))
    object.__setattr__(rows, "restore_head", (head, original_head))  # for merge_lora
    return rows


def _replace(model: Module, name: str, module: Module) -> None:
    """Put `module` where the child at dotted `name` is, keeping its place in the tree's order
    (so state-dict names keep their order too)."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    if child not in parent._modules:
        raise AttributeError(f"{type(parent).__name__} has no submodule {child!r}")
    parent._modules[child] = module


def _matches(name: str, targets: Sequence[str]) -> bool:
    return any(name == t or name.endswith("." + t) for t in targets)


def apply_lora(
    model: Module,
    target_names: Sequence[str] = ("attn.c_attn", "attn.c_proj"),
    r: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    generator=None,
) -> list[str]:
    """Wrap, in place, every Linear whose dotted name ends with one of `target_names` in a
    LoRALinear, and freeze every other parameter. → the wrapped layers' names.

    A target that matches no Linear is an error (a typo would otherwise fine-tune nothing).
    """
    if isinstance(target_names, str):
        target_names = (target_names,)
    targets = tuple(target_names)
    if not targets:
        raise ValueError("apply_lora: target_names is empty")
    chosen = [
        name
        for name, m in model.named_modules()
        if isinstance(m, Linear) and name and _matches(name, targets)
    ]
    for t in targets:
        if not any(_matches(name, (t,)) for name in chosen):
            linears = sorted({n for n, m in model.named_modules() if isinstance(m, Linear) and n})
            raise ValueError(
                f"apply_lora: no Linear layer is named {t!r} (or ends with .{t}); "
                f"the Linear layers are {', '.join(linears) or 'none'}"
            )
    model.requires_grad_(False)
    g = generator_or_default(generator)
    for name in chosen:
        _replace(model, name, LoRALinear(model.get_submodule(name), r, alpha, dropout, g))
    return chosen


def lora_layers(model: Module) -> list[tuple[str, LoRALinear]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]


def lora_state_dict(model: Module) -> dict[str, np.ndarray]:
    """Only the adapters' A and B, by their names in `model` (what an adapter file holds)."""
    return {k: v for k, v in model.state_dict().items() if k.endswith(("lora_A", "lora_B"))}


def trainable_parameters(model: Module) -> list[Parameter]:
    """The parameters that receive gradients (each shared parameter once)."""
    seen, out = set(), []
    for p in model.parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def merge_lora(model: Module) -> Module:
    """Merge every adapter into its base weight and put the plain Linear back (PEFT's
    `merge_and_unload`), and write trained token rows back into their embedding: the result
    has the base model's structure and state-dict names. The restored parameters stay
    frozen; call `model.requires_grad_(True)` to train them."""
    for name, layer in lora_layers(model):
        if not layer.merged:
            layer.merge()
        _replace(model, name, layer.base)
    for name, rows in [(n, m) for n, m in model.named_modules() if isinstance(m, NewTokenRows)]:
        rows.write_back()
        _replace(model, name, rows.base)
        head_name, original_head = rows.restore_head  # still tied to rows.base.weight
        _replace(model, head_name, original_head)
    return model
