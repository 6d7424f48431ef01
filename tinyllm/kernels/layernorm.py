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

from tinyllm.kernels.jit import jit, over_range

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
    dx = rstd[:, None] * (
        gw - gw.mean(axis=1, keepdims=True) - xhat * (gw * xhat).mean(axis=1, keepdims=True)
    )
    dweight = (g * xhat).sum(axis=0)
    dbias = g.sum(axis=0)
    return dx.astype(x.dtype, copy=False), dweight.astype(x.dtype), dbias.astype(x.dtype)


# ---- numba kernels (same signatures; the None-able weight/bias handled in a wrapper) ---------
#
# Sums accumulate in the input's dtype (float32 for a float32 model, as PyTorch's CPU kernel
# does): with fast-math reassociation each sum becomes 8 partial sums in one SIMD register,
# several times faster than float64 accumulators with Python's division checks.


@jit
def _layer_norm_forward(x, weight, bias, eps, y, mean, rstd, lo, hi):
    d = x.shape[1]
    t = x.dtype.type
    inv_d, eps_ = t(1.0 / d), t(eps)
    for i in range(lo, hi):
        xi, yi = x[i], y[i]
        s = t(0)
        for j in range(d):
            s += xi[j]
        mu = s * inv_d
        v = t(0)
        for j in range(d):
            c = xi[j] - mu
            v += c * c
        r = t(1) / np.sqrt(v * inv_d + eps_)
        mean[i] = mu
        rstd[i] = r
        for j in range(d):
            yi[j] = (xi[j] - mu) * r * weight[j] + bias[j]


# γ̄ and β̄ are sums over rows. Rows are split into a fixed number of chunks, each summing into
# its own row of partial sums (no two threads add to the same element), then the chunks are
# added: the same order — the same numbers — whatever the thread count.
_CHUNKS = 16


@jit
def _layer_norm_backward(x, weight, mean, rstd, g, dx, dw_part, db_part, c_lo, c_hi):
    """Chunks c_lo … c_hi − 1 of the rows: dx, and each chunk's row of partial γ̄, β̄."""
    n, d = x.shape
    nchunks = dw_part.shape[0]
    t = x.dtype.type
    inv_d = t(1.0 / d)
    for c in range(c_lo, c_hi):
        dw_c, db_c = dw_part[c], db_part[c]
        for i in range(c * n // nchunks, (c + 1) * n // nchunks):
            xi, gi, dxi = x[i], g[i], dx[i]
            mu, r = mean[i], rstd[i]
            s1 = t(0)
            s2 = t(0)
            for j in range(d):
                xh = (xi[j] - mu) * r
                gw = gi[j] * weight[j]
                s1 += gw
                s2 += gw * xh
                dw_c[j] += gi[j] * xh
                db_c[j] += gi[j]
            s1 *= inv_d
            s2 *= inv_d
            for j in range(d):
                xh = (xi[j] - mu) * r
                dxi[j] = r * (gi[j] * weight[j] - s1 - xh * s2)


def layer_norm_forward_numba(x, weight, bias, eps):
    n, d = x.shape
    w = weight if weight is not None else np.ones(d, dtype=x.dtype)
    b = bias if bias is not None else np.zeros(d, dtype=x.dtype)
    y = np.empty_like(x)
    mean, rstd = np.empty(n, dtype=x.dtype), np.empty(n, dtype=x.dtype)
    over_range(
        _layer_norm_forward,
        n,
        x,
        w.astype(x.dtype, copy=False),
        b.astype(x.dtype, copy=False),
        float(eps),
        y,
        mean,
        rstd,
        work=x.size,
    )
    return y, mean, rstd


def layer_norm_backward_numba(x, weight, mean, rstd, g):
    n, d = x.shape
    w = weight if weight is not None else np.ones(d, dtype=x.dtype)
    dx = np.empty_like(x)
    nchunks = min(n, _CHUNKS)
    dw_part = np.zeros((nchunks, d), dtype=x.dtype)
    db_part = np.zeros((nchunks, d), dtype=x.dtype)
    over_range(
        _layer_norm_backward,
        nchunks,
        x,
        w.astype(x.dtype, copy=False),
        mean,
        rstd,
        g,
        dx,
        dw_part,
        db_part,
        work=x.size,
    )
    return dx, dw_part.sum(axis=0), db_part.sum(axis=0)
