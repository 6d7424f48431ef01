"""scaled_dot_product_attention: Attention(Q, K, V) = softmax(QKᵀ/√d_k + mask) V.

(Vaswani et al. 2017, eq. 1.) PyTorch semantics:

* q (…, L, E), k (…, S, E), v (…, S, Ev) → (…, L, Ev); leading axes broadcast.
* `attn_mask`: boolean (True = may attend, False = masked out) or a float mask added to the
  scores; it broadcasts to (…, L, S).
* `is_causal=True`: query i may attend to keys j ≤ i (the lower triangle, aligned at the top
  left as in PyTorch — for a KV cache, where the L queries are the *last* L positions, pass an
  explicit mask instead).
* `scale` defaults to 1/√E. `dropout_p` drops attention probabilities (training only).

Query rows with every key masked produce zeros (PyTorch's math path would produce NaN).
The math and its backward live in tinyllm/kernels/attention.py.
"""

from __future__ import annotations

import math

import numpy as np

from tinyllm import kernels
from tinyllm.engine import Function, Tensor, policy, unbroadcast
from tinyllm.engine.flops import FlopRule, prod
from tinyllm.kernels import attention as _attn
from tinyllm.runtime.random import generator_or_default


def causal_mask(l: int, s: int) -> np.ndarray:
    """Boolean (L, S) mask, True on and below the diagonal (top-left aligned)."""
    return np.tril(np.ones((l, s), dtype=bool))


def _broadcast(x, batch):
    """x with its batch axes broadcast to `batch` (a read-only view); x in C order if they
    already are. Heads split from a fused projection arrive as strided views; the kernels read
    C order, and this copy is what backward keeps, so backward copies nothing again."""
    if x.shape[:-2] == batch:
        return np.ascontiguousarray(x)
    return np.broadcast_to(x, batch + x.shape[-2:])


def _sdpa_dims(ctx):
    batch = prod(np.broadcast_shapes(ctx.q_shape[:-2], ctx.k_shape[:-2], ctx.v_shape[:-2]))
    return batch, ctx.q_shape[-2], ctx.k_shape[-2], ctx.q_shape[-1], ctx.v_shape[-1]


def _sdpa_forward_flops(ctx, out):
    """S = QKᵀ: 2·L·S·E per batch·head; O = PV: 2·L·S·Ev. With dropout the op runs the
    reference forward and then recomputes S and PV to apply the mask: twice the products."""
    batch, l, s, e, ev = _sdpa_dims(ctx)
    gemm = 2 * batch * l * s * (e + ev)
    if ctx.dropout_p > 0.0:
        gemm *= 2
    return gemm, batch * l * s  # other: the softmax over the L×S scores, 1 per score


def _sdpa_backward_flops(ctx, out_size):
    """Without dropout the kernel rebuilds P from the saved log-sum-exp, which recomputes
    S = QKᵀ (2LSE), then V̄ = PᵀŌ (2SLEv), P̄ = ŌVᵀ (2LEvS), Q̄ = S̄K (2LSE), K̄ = S̄ᵀQ (2SLE):
    2·L·S·(3E + 2Ev). With dropout P was saved, so no recomputation: 2·L·S·(2E + 2Ev).
    All products run whatever `needs_input_grad` says (the kernel computes every gradient)."""
    batch, l, s, e, ev = _sdpa_dims(ctx)
    recompute = 0 if ctx.dropout_p > 0.0 else e
    return 2 * batch * l * s * (recompute + 2 * e + 2 * ev), batch * l * s


def _inverse_keep(dropout_p, dtype):
    """1/(1 − p), the rescaling of the kept probabilities (p < 1; p = 1 is handled apart)."""
    return np.asarray(1 / (1 - dropout_p), dtype=dtype)


class ScaledDotProductAttention(Function):
    inputs, name = policy.FLOAT, "scaled_dot_product_attention"
    flops = FlopRule("attention", _sdpa_forward_flops, _sdpa_backward_flops)

    @staticmethod
    def forward(
        ctx, q, k, v, mask_bias=None, scale=1.0, causal=False, dropout_p=0.0, generator=None
    ):
        batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
        qb, kb, vb = _broadcast(q, batch), _broadcast(k, batch), _broadcast(v, batch)
        ctx.q_shape, ctx.k_shape, ctx.v_shape = q.shape, k.shape, v.shape
        ctx.mask_shape = None if mask_bias is None else mask_bias.shape
        ctx.scale, ctx.dropout_p = scale, dropout_p
        if dropout_p == 1.0 or k.shape[-2] == 0:
            # Every probability dropped, or no key to attend to: the output is zeros, as in
            # PyTorch, and does not depend on the inputs.
            ctx.constant = True
            return np.zeros(batch + (q.shape[-2], v.shape[-1]), dtype=np.result_type(q, v))
        ctx.constant = False
        if dropout_p > 0.0:
            # With dropout the probabilities themselves are perturbed: keep P and the mask.
            mask_bias = _attn._with_causal(mask_bias, causal, q.shape[-2], k.shape[-2], q.dtype)
            out, lse = _attn.attention_forward_reference(qb, kb, vb, mask_bias, scale)
            s = np.matmul(qb, np.swapaxes(kb, -1, -2)) * np.asarray(scale, dtype=q.dtype)
            if mask_bias is not None:
                s = s + mask_bias
            p = np.exp(s - lse[..., None])
            keep = generator.random(p.shape, dtype=np.float32) >= dropout_p
            pd = p * keep * _inverse_keep(dropout_p, q.dtype)
            out = np.matmul(pd, vb)
            ctx.save_for_backward(qb, kb, vb, p, keep)
            ctx.causal = False
            return out
        out, lse = kernels.attention_forward(qb, kb, vb, mask_bias, scale, causal)
        ctx.save_for_backward(qb, kb, vb, mask_bias, out, lse)
        ctx.causal = causal
        return out

    @staticmethod
    def backward(ctx, grad):
        q_shape, k_shape, v_shape, m_shape = ctx.q_shape, ctx.k_shape, ctx.v_shape, ctx.mask_shape
        scale, dropout_p = ctx.scale, ctx.dropout_p
        if ctx.constant:
            dq, dk, dv = (np.zeros(s, grad.dtype) for s in (q_shape, k_shape, v_shape))
            ds = None if m_shape is None else np.zeros(m_shape, grad.dtype)
        elif dropout_p > 0.0:
            qb, kb, vb, p, keep = ctx.saved_tensors
            sc = np.asarray(scale, dtype=qb.dtype)
            inv = _inverse_keep(dropout_p, qb.dtype)
            pd = p * keep * inv
            dv = np.matmul(np.swapaxes(pd, -1, -2), grad)
            dpd = np.matmul(grad, np.swapaxes(vb, -1, -2))
            dp = dpd * keep * inv
            ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
            dq = np.matmul(ds, kb) * sc
            dk = np.matmul(np.swapaxes(ds, -1, -2), qb) * sc
        else:
            qb, kb, vb, bias, out, lse = ctx.saved_tensors
            dq, dk, dv, ds = kernels.attention_backward(
                qb, kb, vb, bias, scale, ctx.causal, out, lse, grad
            )
        nq, nk, nv, nm = ctx.needs_input_grad
        return (
            unbroadcast(dq, q_shape) if nq else None,
            unbroadcast(dk, k_shape) if nk else None,
            unbroadcast(dv, v_shape) if nv else None,
            unbroadcast(ds, m_shape) if nm and m_shape is not None else None,
        )


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask=None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    generator=None,
) -> Tensor:
    dropout_p = policy.probability("scaled_dot_product_attention", dropout_p, "dropout_p")
    if not (str(q.dtype) == str(k.dtype) == str(v.dtype)):  # as PyTorch demands
        raise TypeError(
            f"scaled_dot_product_attention: query, key and value must have one dtype, got "
            f"{q.dtype}, {k.dtype} and {v.dtype}"
        )
    if (
        q.ndim < 2
        or k.ndim < 2
        or v.ndim < 2
        or q.shape[-1] != k.shape[-1]
        or k.shape[-2] != v.shape[-2]
    ):
        raise ValueError(
            f"scaled_dot_product_attention: q {q.shape}, k {k.shape}, v {v.shape} "
            f"do not fit (need q (…, L, E), k (…, S, E), v (…, S, Ev))"
        )
    try:
        np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except ValueError:
        raise ValueError(
            f"scaled_dot_product_attention: batch axes of q {q.shape}, k {k.shape} "
            f"and v {v.shape} do not broadcast"
        ) from None
    L, S = q.shape[-2], k.shape[-2]
    bias = None
    causal = is_causal and attn_mask is None  # the kernel masks by itself: no (L, S) array
    if is_causal and attn_mask is not None:
        bias = np.where(causal_mask(L, S), 0, -np.inf).astype(q.dtype)
    if attn_mask is not None:
        m = attn_mask.data if isinstance(attn_mask, Tensor) else np.asarray(attn_mask)
        try:
            np.broadcast_shapes(m.shape, (L, S))
            if np.broadcast_shapes(m.shape, (L, S))[-2:] != (L, S):
                raise ValueError
        except ValueError:
            raise ValueError(
                f"scaled_dot_product_attention: attn_mask of shape {m.shape} does "
                f"not broadcast to (…, {L}, {S})"
            ) from None
        if m.dtype == np.bool_:
            add = np.where(m, 0, -np.inf).astype(q.dtype)
        else:
            add = m.astype(q.dtype, copy=False)
        if isinstance(attn_mask, Tensor) and attn_mask.requires_grad:
            # a learned additive bias: keep it in the graph (plus the causal −∞, if any)
            bias = attn_mask if bias is None else attn_mask + bias
        else:
            bias = add if bias is None else bias + add
    if scale is None:  # (head size 0: every score is 0 whatever the scale)
        scale = 1.0 / math.sqrt(q.shape[-1]) if q.shape[-1] else 1.0
    gen = generator_or_default(generator) if dropout_p > 0 else None
    return ScaledDotProductAttention.apply(
        q, k, v, bias, scale=scale, causal=causal, dropout_p=dropout_p, generator=gen
    )
