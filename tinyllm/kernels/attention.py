"""Scaled dot-product attention, forward and backward (reference in NumPy).

    S = Q Kᵀ · s + B        (…, L, S_)   scores; s = 1/√d by default, B the additive mask
    P = softmax(S)          row-wise over the keys
    O = P V                 (…, L, Ev)

Forward returns O and, per query row, the log-sum-exp of its scores, lse = log Σⱼ e^(Sⱼ). That
one number per row is all backward needs to rebuild P = e^(S − lse) exactly, instead of keeping
the (L × S_) matrix alive between forward and backward — the idea FlashAttention (Dao et al.
2022) builds on. Backward, with Ō the adjoint of O:

    P  = e^(S − lse)
    V̄  = Pᵀ Ō
    P̄  = Ō Vᵀ
    S̄  = P ⊙ (P̄ − Δ),        Δ = rowsum(Ō ⊙ O)   (= rowsum(P ⊙ P̄))
    Q̄  = S̄ K · s,            K̄ = S̄ᵀ Q · s

A query row whose keys are all masked has no distribution to take. We define its output as
zero (and its gradients as zero) by setting its lse to +∞, so e^(S − lse) = 0 everywhere.

Signatures (leading batch axes already broadcast to the same shape):
    attention_forward(q, k, v, bias, scale) -> (out, lse)
    attention_backward(q, k, v, bias, scale, out, lse, dout) -> (dq, dk, dv, dbias_full)
`bias` is None or an array broadcastable to (…, L, S_) with −inf where attention is forbidden.
"""
import numpy as np


def attention_forward_reference(q, k, v, bias, scale):
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * np.asarray(scale, dtype=q.dtype)  # (…, L, S_)
    if bias is not None:
        s = s + bias
    m = s.max(axis=-1, keepdims=True)                                            # (…, L, 1)
    dead = ~np.isfinite(m)                                                       # all masked
    m = np.where(dead, 0, m)
    with np.errstate(divide="ignore"):
        lse = m + np.log(np.exp(s - m).sum(axis=-1, keepdims=True))
    lse = np.where(dead, np.inf, lse).astype(q.dtype)
    p = np.exp(s - lse)
    out = np.matmul(p, v)                                                        # (…, L, Ev)
    return out, lse[..., 0]


def attention_backward_reference(q, k, v, bias, scale, out, lse, dout):
    sc = np.asarray(scale, dtype=q.dtype)
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * sc
    if bias is not None:
        s = s + bias
    p = np.exp(s - lse[..., None])                                               # (…, L, S_)
    dv = np.matmul(np.swapaxes(p, -1, -2), dout)                                 # (…, S_, Ev)
    dp = np.matmul(dout, np.swapaxes(v, -1, -2))                                 # (…, L, S_)
    delta = (dout * out).sum(axis=-1, keepdims=True)                             # (…, L, 1)
    ds = p * (dp - delta)
    dq = np.matmul(ds, k) * sc
    dk = np.matmul(np.swapaxes(ds, -1, -2), q) * sc
    return dq, dk, dv, ds
