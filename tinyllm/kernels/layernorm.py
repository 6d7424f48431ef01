"""Layer normalization over the last axis (Ba, Kiros & Hinton 2016): reference, then numba.

For one row x of D features:

    μ = (1/D) Σᵢ xᵢ,   σ² = (1/D) Σᵢ (xᵢ − μ)²,   r = 1/√(σ² + ε)
    x̂ᵢ = (xᵢ − μ)·r,   yᵢ = γᵢ x̂ᵢ + βᵢ

(the biased variance, as in PyTorch). Backward, with g the adjoint of y and ĝᵢ = gᵢγᵢ:

    β̄ = Σ_rows g,   γ̄ = Σ_rows g ⊙ x̂
    x̄ᵢ = r · (ĝᵢ − mean(ĝ) − x̂ᵢ · mean(ĝ ⊙ x̂))

Forward saves μ and r (one number each per row); backward recomputes x̂ from x.

Signatures (N rows, D features; weight and bias may be None → γ = 1, β = 0):
    layer_norm_forward(x, weight, bias, eps) -> (y, mean (N,), rstd (N,))
    layer_norm_backward(x, weight, mean, rstd, g) -> (dx, dweight, dbias)
"""
import numpy as np
from numba import njit, prange

# ---- reference (plain NumPy) ----------------------------------------------------------------


def layer_norm_forward_reference(x, weight, bias, eps):
    mean = x.mean(axis=1)
    centered = x - mean[:, None]
    rstd = 1.0 / np.sqrt((centered * centered).mean(axis=1) + eps)
    y = centered * rstd[:, None]
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y.astype(x.dtype, copy=False), mean.astype(x.dtype), rstd.astype(x.dtype)


def layer_norm_backward_reference(x, weight, mean, rstd, g):
    xhat = (x - mean[:, None]) * rstd[:, None]
    gw = g * weight if weight is not None else g
    dx = rstd[:, None] * (gw - gw.mean(axis=1, keepdims=True)
                          - xhat * (gw * xhat).mean(axis=1, keepdims=True))
    dweight = (g * xhat).sum(axis=0)
    dbias = g.sum(axis=0)
    return dx.astype(x.dtype, copy=False), dweight.astype(x.dtype), dbias.astype(x.dtype)


# ---- numba kernels (same signatures; the None-able weight/bias handled in a wrapper) ---------


@njit(parallel=True, cache=True)
def _layer_norm_forward(x, weight, bias, eps):
    n, d = x.shape
    y = np.empty_like(x)
    mean = np.empty(n, dtype=x.dtype)
    rstd = np.empty(n, dtype=x.dtype)
    for i in prange(n):
        s = 0.0
        for j in range(d):
            s += x[i, j]
        mu = s / d
        v = 0.0
        for j in range(d):
            c = x[i, j] - mu
            v += c * c
        r = 1.0 / np.sqrt(v / d + eps)
        mean[i] = mu
        rstd[i] = r
        for j in range(d):
            y[i, j] = (x[i, j] - mu) * r * weight[j] + bias[j]
    return y, mean, rstd


@njit(parallel=True, cache=True)
def _layer_norm_backward(x, weight, mean, rstd, g):
    n, d = x.shape
    dx = np.empty_like(x)
    # Per-row work is independent; the column sums for γ̄ and β̄ are accumulated per thread
    # chunk to avoid races, then added up.
    nchunks = min(n, 64)
    dw_part = np.zeros((nchunks, d), dtype=np.float64)
    db_part = np.zeros((nchunks, d), dtype=np.float64)
    for c in prange(nchunks):
        lo = c * n // nchunks
        hi = (c + 1) * n // nchunks
        for i in range(lo, hi):
            mu = mean[i]
            r = rstd[i]
            s1 = 0.0
            s2 = 0.0
            for j in range(d):
                xh = (x[i, j] - mu) * r
                gw = g[i, j] * weight[j]
                s1 += gw
                s2 += gw * xh
                dw_part[c, j] += g[i, j] * xh
                db_part[c, j] += g[i, j]
            s1 /= d
            s2 /= d
            for j in range(d):
                xh = (x[i, j] - mu) * r
                dx[i, j] = r * (g[i, j] * weight[j] - s1 - xh * s2)
    dweight = dw_part.sum(axis=0).astype(x.dtype)
    dbias = db_part.sum(axis=0).astype(x.dtype)
    return dx, dweight, dbias


def layer_norm_forward_numba(x, weight, bias, eps):
    d = x.shape[1]
    w = weight if weight is not None else np.ones(d, dtype=x.dtype)
    b = bias if bias is not None else np.zeros(d, dtype=x.dtype)
    return _layer_norm_forward(x, w, b, eps)


def layer_norm_backward_numba(x, weight, mean, rstd, g):
    w = weight if weight is not None else np.ones(x.shape[1], dtype=x.dtype)
    return _layer_norm_backward(x, w, mean, rstd, g)
