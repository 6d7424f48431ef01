"""Tensor parallelism (Megatron-LM, Shoeybi et al. 2019): each layer's matrices split across ranks.

A transformer block is two matrix-product pairs — attention (c_attn: E → 3E, c_proj: E → E) and
the MLP (c_fc: E → 4E, c_proj: 4E → E). Megatron splits each *pair* across the n ranks of a
tensor-parallel group so that the nonlinearity in between needs no communication:

* the first matrix is split by its **outputs** (column-parallel, A = [A₁ | … | Aₙ]): every rank
  computes its own slice Yᵣ = X·Aᵣ of the hidden features from the full input X, and GeLU
  (or, in attention, softmax over each head) acts on each slice independently;
* the second is split by its **inputs** (row-parallel, B = [B₁; …; Bₙ]): rank r multiplies its
  slice, Yᵣ·Bᵣ, and the output is the *sum* over ranks, Z = Σᵣ Yᵣ·Bᵣ — one all-reduce.

Two conjugate operations carry the communication, each an autograd Function:

    f  (copy to the group)      forward: identity          backward: all-reduce (Σ over ranks)
    g  (reduce from the group)  forward: all-reduce (Σ)    backward: identity

f sits where a replicated tensor X enters the parallel region: every rank uses X, so ∂L/∂X is
the sum of every rank's contribution — the backward all-reduce. g sits where the partial outputs
leave it: the forward sums them, and the gradient of a sum with respect to each term is the
output gradient itself — identity. The data flow of one MLP on n = 2 ranks:

              X (B, T, E) — the same on both ranks
              │ f          fwd: pass X on        bwd: ∂L/∂X = Σᵣ (∂L/∂X)ᵣ   [all-reduce, B·T·E]
        ┌─────┴─────┐
     X·A₁ + a₁   X·A₂ + a₂  c_fc, column-parallel: (B, T, 4E/n) per rank, bias sliced too
     GeLU        GeLU       elementwise: no communication
     Y₁·B₁       Y₂·B₂      c_proj, row-parallel: (B, T, E) partial sums
        └─────┬─────┘
              │ g          fwd: Z = Σᵣ Yᵣ·Bᵣ      bwd: pass ∂L/∂Z on        [all-reduce, B·T·E]
              Z + b        the bias is added once, after the sum

Attention is the same with heads as the unit: c_attn is column-parallel *by heads* — rank r
holds the rows of W_q, W_k and W_v that produce its own H/n heads (the fused (3E, E) weight is
[W_q; W_k; W_v], so its shard is three row blocks, one from each) — and attention runs on those
heads alone; c_proj is row-parallel over the concatenated heads. Per block this gives

    forward: 2 all-reduces of B·T·E values (g after attention, g after the MLP)
    backward: 2 all-reduces of B·T·E values (f before attention, f before the MLP)

and, with a ring all-reduce, 2·(n−1)/n · 4·B·T·E bytes sent per rank for each (fp32).
Everything outside the blocks (embeddings, LayerNorms, the tied head) is replicated: it sees
identical inputs and identical gradients on every rank, so it stays identical without any
communication. Memory per rank: the blocks' weights and their optimizer states are divided by n;
activations inside the parallel regions too, those outside (LayerNorm inputs, residuals) not.

`parallelize_gpt(model, group)` turns a single-process GPT into its tensor-parallel shard in
place, keeping nanoGPT's parameter names (only the shapes change); `shard_state_dict` /
`merge_state_dicts` / `gather_state_dict` convert state dicts between the two forms.

Dropout. Every rank starts from the same seed, so the dropouts outside the parallel regions
(embeddings, after each g) draw the same masks on every rank — as they must: those activations
are replicated. Attention dropout acts inside the region, on each rank's own heads. Megatron
gives every tensor-parallel rank a *different* seed there (its "model-parallel" RNG tracker):
valid, but a different random stream from one process. Here `AllHeadsDropoutGenerator` makes
each rank draw the mask of *all* H heads from the shared generator and keep its own H/n — n
times the random numbers of one rank, but the masks, the generator's state afterwards and hence
every later mask are those of the one-process model, so training with dropout is the same run.

Simplifications: the vocabulary (embedding and cross-entropy) is not split; no KV-cache
generation (gather the state dict into a GPT for that).
"""

from __future__ import annotations

import numpy as np

from tinyllm import ops
from tinyllm.engine import Function, Tensor
from tinyllm.engine.flops import MOVES_DATA
from tinyllm.nn.attention import merge_heads
from tinyllm.nn.module import Module, Parameter
from tinyllm.runtime.random import default_generator


class TPGroup:
    """The ranks of one tensor-parallel group (`comm`, None for a single rank).

    `all_reduce` is the only communication tensor parallelism needs. Each call is handed to
    `on_comm(record, label)` when set — a strategy puts it on its simulated timeline there —
    and kept in `records` as (label, record) for per-layer accounting.
    """

    def __init__(self, comm=None):
        self.comm = comm
        self.size = 1 if comm is None else comm.size
        self.rank = 0 if comm is None else comm.rank
        self.on_comm = None
        self.records: list = []

    def all_reduce(self, buf: np.ndarray, label: str) -> None:
        if self.size == 1:
            return
        rec = self.comm.all_reduce(buf, "sum")
        self.records.append((label, rec))
        if self.on_comm is not None:
            self.on_comm(rec, label)


# ---- f and g --------------------------------------------------------------------------------


class CopyToTensorParallel(Function):
    """f: identity forward; backward all-reduces the gradient (every rank used the input)."""

    flops = MOVES_DATA  # the all-reduce's time is on the communication stream

    @staticmethod
    def forward(ctx, x, group=None, label="f"):
        ctx.group, ctx.label = group, label
        return x

    @staticmethod
    def backward(ctx, grad):
        g = np.array(grad, order="C", copy=True)  # (B, T, E): summed in place over the group
        ctx.group.all_reduce(g, f"{ctx.label} f backward")
        return g


class ReduceFromTensorParallel(Function):
    """g: forward all-reduces the partial sums; backward passes the gradient on unchanged."""

    flops = MOVES_DATA

    @staticmethod
    def forward(ctx, x, group=None, label="g"):
        out = np.array(x, order="C", copy=True)  # (B, T, E) partial → full sum
        group.all_reduce(out, f"{label} g forward")
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad


def copy_to_tensor_parallel(x: Tensor, group: TPGroup, label: str = "f") -> Tensor:
    return x if group.size == 1 else CopyToTensorParallel.apply(x, group=group, label=label)


def reduce_from_tensor_parallel(x: Tensor, group: TPGroup, label: str = "g") -> Tensor:
    return x if group.size == 1 else ReduceFromTensorParallel.apply(x, group=group, label=label)


# ---- which rows / columns a rank holds -------------------------------------------------------


def block_slice(n: int, rank: int, size: int, what: str = "dimension") -> slice:
    """The rank-th of `size` equal consecutive blocks of range(n)."""
    if n % size:
        raise ValueError(f"tensor parallelism: {what} {n} is not divisible by {size} ranks")
    step = n // size
    return slice(rank * step, (rank + 1) * step)


def qkv_rows(n_embd: int, n_head: int, rank: int, size: int) -> np.ndarray:
    """Rows of the fused c_attn weight (3E, E) = [W_q; W_k; W_v] that produce q, k and v of this
    rank's heads: heads [r·H/n, (r+1)·H/n) are rows [r·E/n, (r+1)·E/n) of each of the three."""
    if n_head % size:
        raise ValueError(
            f"tensor parallelism: n_head {n_head} is not divisible by {size} ranks "
            f"(heads are the unit of the attention split)"
        )
    own = block_slice(n_embd, rank, size, "n_embd")
    return np.concatenate(
        [np.arange(part * n_embd + own.start, part * n_embd + own.stop) for part in range(3)]
    )


# ---- layers ---------------------------------------------------------------------------------


class _ParallelLinear(Module):
    """A Linear's slice on one rank: `weight`, `bias` (or None), the group, a label for traces."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, group: TPGroup, label: str):
        super().__init__()
        self.weight = Parameter(weight)
        if bias is not None:
            self.bias = Parameter(bias)
        else:
            self.register_parameter("bias", None)
        self.group, self.label = group, label


class ColumnParallelLinear(_ParallelLinear):
    """y_r = f(x) W_rᵀ + b_r: this rank's slice of the output features. W_r (out/n, in)."""

    @classmethod
    def from_dense(cls, linear, rows, group: TPGroup, label: str) -> "ColumnParallelLinear":
        w = np.ascontiguousarray(linear.weight.data[rows])
        b = None if linear.bias is None else np.ascontiguousarray(linear.bias.data[rows])
        return cls(w, b, group, label)

    def forward(self, x: Tensor) -> Tensor:
        x = copy_to_tensor_parallel(x, self.group, self.label)
        return ops.linear(x, self.weight, self.bias)


class RowParallelLinear(_ParallelLinear):
    """y = g(x_r W_rᵀ) + b: partial products summed over the group, the bias added once.
    W_r (out, in/n) takes this rank's slice of the input features; b (out,) is replicated."""

    @classmethod
    def from_dense(cls, linear, cols, group: TPGroup, label: str) -> "RowParallelLinear":
        w = np.ascontiguousarray(linear.weight.data[:, cols])
        b = None if linear.bias is None else linear.bias.data.copy()
        return cls(w, b, group, label)

    def forward(self, x: Tensor) -> Tensor:
        y = reduce_from_tensor_parallel(ops.linear(x, self.weight), self.group, self.label)
        return y if self.bias is None else y + self.bias


class AllHeadsDropoutGenerator:
    """Draws attention-dropout masks for all heads from the default generator; keeps this rank's.

    ops.scaled_dot_product_attention draws its mask as `generator.random(shape, dtype)` with
    shape (B, H/n, T, S): the heads on axis −3. This draws (B, H, T, S) — exactly what the
    one-process model draws, advancing the generator by as much — and returns heads
    [r·H/n, (r+1)·H/n), the rows this rank's c_attn shard produces (see `qkv_rows`).
    """

    def __init__(self, rank: int, size: int):
        self.rank, self.size = rank, size

    def random(self, shape, dtype=np.float64):
        *batch, heads, t, s = shape  # heads = H/n on this rank
        full = default_generator().random((*batch, heads * self.size, t, s), dtype=dtype)
        return full[..., self.rank * heads : (self.rank + 1) * heads, :, :]


class ParallelSelfAttention(Module):
    """Causal self-attention on this rank's H/n heads (same attribute names as GPT's)."""

    def __init__(self, dense, group: TPGroup, label: str = "attn"):
        super().__init__()
        e = dense.c_attn.in_features
        rows = qkv_rows(e, dense.n_head, group.rank, group.size)  # checks H divides by n
        self.n_head = dense.n_head // group.size  # heads on this rank
        self.rank, self.tp_size = group.rank, group.size
        self.head_dim = e // dense.n_head
        self.c_attn = ColumnParallelLinear.from_dense(dense.c_attn, rows, group, label)
        self.c_proj = RowParallelLinear.from_dense(
            dense.c_proj, block_slice(e, group.rank, group.size, "n_embd"), group, label
        )
        self.dropout = dense.dropout
        self.resid_dropout = dense.resid_dropout

    def forward(self, x: Tensor, cache=None, keep=None) -> Tensor:
        if cache is not None or keep is not None:
            raise NotImplementedError(
                "tensor-parallel attention: KV caches and padding masks are "
                "not supported; gather_state_dict() into a GPT to generate"
            )
        b, t, _ = x.shape
        qkv = self.c_attn(x).reshape(b, t, 3, self.n_head, self.head_dim)  # (B, T, 3, H/n, hs)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, B, H/n, T, hs)
        q, k, v = qkv[0], qkv[1], qkv[2]
        p = self.dropout if self.training else 0.0
        # dropout: this rank's heads of the one-process mask (see AllHeadsDropoutGenerator)
        gen = AllHeadsDropoutGenerator(self.rank, self.tp_size) if p > 0 else None
        y = ops.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p, generator=gen)
        return self.resid_dropout(self.c_proj(merge_heads(y)))  # (B, T, E)


class ParallelMLP(Module):
    """c_fc column-parallel (4E/n hidden features per rank), GeLU, c_proj row-parallel."""

    def __init__(self, dense, group: TPGroup, label: str = "mlp"):
        super().__init__()
        hidden = dense.c_fc.out_features
        own = block_slice(hidden, group.rank, group.size, "MLP hidden size")
        self.c_fc = ColumnParallelLinear.from_dense(dense.c_fc, own, group, label)
        self.gelu = dense.gelu
        self.c_proj = RowParallelLinear.from_dense(dense.c_proj, own, group, label)
        self.dropout = dense.dropout

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


def parallelize_gpt(model, group: TPGroup):
    """Replace every block's attention and MLP of a GPT by this rank's tensor-parallel shard, in
    place (the model's forward is unchanged; parameter names stay nanoGPT's). Every rank must
    start from the same full model — e.g. built from the same seed."""
    model.tp_group = group
    if group.size == 1:
        return model
    for i, block in enumerate(model.transformer.h):
        # Assigned into the table in place, so the state dict keeps nanoGPT's order too
        # (ln_1, attn, ln_2, mlp); attribute assignment would move them to the end.
        block._modules["attn"] = ParallelSelfAttention(block.attn, group, f"h.{i}.attn")
        block._modules["mlp"] = ParallelMLP(block.mlp, group, f"h.{i}.mlp")
    return model


# ---- state dicts: full ↔ shards --------------------------------------------------------------
# How each block parameter is split: "qkv" (rows by heads), or an axis cut into n equal blocks.
# Everything not listed is replicated.
SPLITS = {
    "attn.c_attn.weight": "qkv",
    "attn.c_attn.bias": "qkv",
    "attn.c_proj.weight": 1,
    "mlp.c_fc.weight": 0,
    "mlp.c_fc.bias": 0,
    "mlp.c_proj.weight": 1,
}


def split_rule(name: str):
    """How a parameter is split across the tensor-parallel ranks: "qkv", an axis, or None
    (replicated)."""
    return next((rule for suffix, rule in SPLITS.items() if name.endswith(suffix)), None)


def shard_state_dict(state: dict, n_head: int, rank: int, size: int) -> dict:
    """Rank `rank`'s part of a full (single-process) GPT state dict."""
    out = {}
    for name, a in state.items():
        rule = split_rule(name)
        if rule is None:
            out[name] = np.array(a)
        elif rule == "qkv":
            out[name] = np.array(a[qkv_rows(a.shape[0] // 3, n_head, rank, size)])
        else:
            index = [slice(None)] * a.ndim
            index[rule] = block_slice(a.shape[rule], rank, size, name)
            out[name] = np.array(a[tuple(index)])
    return out


def merge_state_dicts(shards: list, n_head: int) -> dict:
    """The full state dict from every rank's shard (in rank order); the inverse of sharding."""
    out = {}
    for name in shards[0]:
        rule = split_rule(name)
        parts = [s[name] for s in shards]
        if rule is None:
            out[name] = np.array(parts[0])
        elif rule == "qkv":
            # Each shard is [q_r; k_r; v_r]: regroup as [q_0 … q_n; k_0 … k_n; v_0 … v_n].
            thirds = [np.split(p, 3, axis=0) for p in parts]
            out[name] = np.concatenate([t[i] for i in range(3) for t in thirds], axis=0)
        else:
            out[name] = np.concatenate(parts, axis=rule)
    return out


def gather_state_dict(model, group: TPGroup, n_head: int) -> dict:
    """The full state dict on every rank of the group (one all-gather per split parameter)."""
    local = model.state_dict()
    if group.size == 1:
        return {k: np.array(v) for k, v in local.items()}
    shards = [dict() for _ in range(group.size)]
    for name, a in local.items():
        if split_rule(name) is None:
            for s in shards:
                s[name] = a
            continue
        flat = np.ascontiguousarray(a).reshape(-1)
        everyone = np.empty(flat.size * group.size, dtype=a.dtype)
        group.comm.all_gather(flat, everyone)
        for r, piece in enumerate(np.split(everyone, group.size)):
            shards[r][name] = piece.reshape(a.shape)
    return merge_state_dicts(shards, n_head)
