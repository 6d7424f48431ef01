"""FLOP formulas for a transformer: per layer, per token, per training run.

Units first, because the sources mix them. A matrix product of (m × k) by (k × n) performs
m·k·n *multiply-adds* (MACs). Hardware peaks and MFU count *FLOPs*, and one multiply-add is two
FLOPs (a multiply and an add). Every function below says which of the two it returns; all
return FLOPs except `notes_layer_macs`.

Per layer, sequence length L, hidden size H (the course notes' derivation):

    Q, K, V projections      3·L·H²       MACs
    QKᵀ (all heads)          L²·H
    P·V (all heads)          L²·H
    output projection        L·H²
    MLP H→4H→H               8·L·H²
                             ───────────────────
                             2L²H + 12LH²  MACs   =  4L²H + 24LH² FLOPs

Per token, whole model (N = parameters that multiply every token, n_layer layers, context T,
attention width d = n_head·head_dim):

* forward ≈ 2N FLOPs (each weight: one multiply-add per token), backward ≈ 4N (one product
  for the input's gradient, one for the weight's), so training ≈ 6N per token. Over D tokens,
  C = 6·N·D — the budget the scaling laws are written in.
* Kaplan et al. 2020 (Table 1): C_forward ≈ 2N + 2·n_layer·n_ctx·d_attn, with N the
  non-embedding parameters; training ≈ 3·C_forward. Their context term is half of the dense
  QKᵀ + PV cost (4·n_ctx·d per layer): as if each query attended to n_ctx/2 keys on average,
  which is what a causal mask allows.
* PaLM (Chowdhery et al. 2022, appendix B): model FLOPs per token = 6N + 12·L·H·Q·T (L layers,
  H heads, Q head dim, T sequence length). 12·L·H·Q·T = 3 × (4·T·H·Q per layer): the dense QKᵀ
  and PV products, forward + backward, with no recomputation — "model FLOPs" count what the
  model needs, not what an implementation happens to redo.

A petaflop/s-day is 10¹⁵ FLOP/s sustained for a day: 10¹⁵ × 86,400 = 8.64·10¹⁹ FLOPs. GPT-3 175B
on 300B tokens: 6 · 175e9 · 300e9 = 3.15e23 FLOPs ≈ 3,650 PF-days.
"""

from __future__ import annotations

from tinyllm.accounting.params import gpt_param_formula

PETAFLOP_S_DAY = 1e15 * 86_400  # FLOPs in one petaflop/s-day


def _positive(name, value):
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return value


def notes_layer_macs(seq_len: int, n_embd: int) -> int:
    """Multiply-adds (MACs, not FLOPs) of one layer's forward for one sequence: 2L²H + 12LH²."""
    l, h = _positive("seq_len", seq_len), _positive("n_embd", n_embd)
    return 2 * l * l * h + 12 * l * h * h


def layer_forward_flops(seq_len: int, n_embd: int) -> int:
    """FLOPs of one layer's forward matmuls for one sequence: 2·(2L²H + 12LH²)."""
    return 2 * notes_layer_macs(seq_len, n_embd)


def training_flops(n_params: float, n_tokens: float) -> float:
    """C = 6·N·D FLOPs to train N parameters on D tokens (forward 2N + backward 4N per token)."""
    return 6.0 * _positive("n_params", n_params) * _positive("n_tokens", n_tokens)


def pf_days(flops: float) -> float:
    """FLOPs → petaflop/s-days (1 PF-day = 10¹⁵ · 86,400 FLOPs)."""
    return flops / PETAFLOP_S_DAY


def kaplan_flops_per_token(
    n_params_non_embedding: float, n_layer: int, n_ctx: int, d_attn: int, training: bool = True
) -> float:
    """Kaplan et al. 2020: FLOPs per token, forward 2N + 2·n_layer·n_ctx·d_attn, training 3×.

    N is the non-embedding parameter count (Kaplan leaves embeddings and the de-embedding
    matmul out of both N and C).
    """
    forward = 2.0 * n_params_non_embedding + 2.0 * n_layer * n_ctx * d_attn
    return 3.0 * forward if training else forward


def palm_flops_per_token(
    n_params: float, n_layer: int, n_head: int, head_dim: int, seq_len: int
) -> float:
    """PaLM appendix B: model FLOPs per token of training, 6N + 12·L·H·Q·T.

    N: the parameters that multiply each token (nanoGPT passes its non-embedding count: all
    weights but the position table — the tied token table counts once, as the output layer).
    """
    return 6.0 * n_params + 12.0 * n_layer * n_head * head_dim * seq_len


def palm_flops_per_token_for(config, seq_len: int | None = None, n_params: float | None = None):
    """`palm_flops_per_token` for a GPTConfig-like object (seq_len defaults to block_size).

    `n_params` defaults to the formula's non-embedding count (nanoGPT's `get_num_params()`);
    pass `count_parameters(model).non_embedding` to use the model's own count.
    """

    if config.n_embd % config.n_head:
        raise ValueError(f"n_embd={config.n_embd} is not divisible by n_head={config.n_head}")
    t = config.block_size if seq_len is None else seq_len
    n = gpt_param_formula(config).non_embedding if n_params is None else n_params
    return palm_flops_per_token(n, config.n_layer, config.n_head, config.n_embd // config.n_head, t)
