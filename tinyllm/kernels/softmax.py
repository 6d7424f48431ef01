"""Softmax and log-softmax over the last axis of a 2-D array: reference, then numba kernel.

    softmax(x)ᵢ     = e^(xᵢ − m) / Σⱼ e^(xⱼ − m),           m = maxⱼ xⱼ
    log_softmax(x)ᵢ = xᵢ − m − log Σⱼ e^(xⱼ − m)

Subtracting the row maximum m changes nothing mathematically (it cancels) but keeps every
exponent ≤ 0, so e^(·) never overflows.

Backward, with y the forward output and g the adjoint of y (the Jacobian of softmax is
diag(y) − y yᵀ):

    softmax:      x̄ = y ⊙ (g − Σⱼ gⱼ yⱼ)
    log_softmax:  x̄ = g − e^y · Σⱼ gⱼ

The NumPy reference makes several passes over memory (max, subtract, exp, sum, divide); the
numba kernel does one row at a time while it sits in cache.
"""

import numpy as np

from tinyllm.kernels.jit import jit, over_range
from tinyllm.kernels.vecmath import vexp

# ---- reference (plain NumPy) ----------------------------------------------------------------


def softmax_forward_reference(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward_reference(y, g):
    return y * (g - (g * y).sum(axis=-1, keepdims=True))


def log_softmax_forward_reference(x):
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def log_softmax_backward_reference(y, g):
    return g - np.exp(y) * g.sum(axis=-1, keepdims=True)


# ---- numba kernels (same signatures) --------------------------------------------------------
# In the input's dtype, with the vectorizable exp of tinyllm/kernels/vecmath.py. Each loop
# kernel does rows lo … hi − 1; `over_range` (tinyllm/kernels/jit.py) decides how many threads.


@jit(inline="always")
def row_logsumexp(xi):
    """log Σⱼ e^(xⱼ) of one row, as m + log Σⱼ e^(xⱼ − m) with m its maximum (shared with the
    fused cross-entropy, tinyllm/kernels/cross_entropy.py)."""
    m = xi[0]
    for j in range(1, xi.size):
        m = max(m, xi[j])
    s = xi.dtype.type(0)
    for j in range(xi.size):
        s += vexp(xi[j] - m)
    return m + np.log(s)


@jit
def _softmax_forward(x, out, lo, hi):
    t = x.dtype.type
    for i in range(lo, hi):
        xi, oi = x[i], out[i]
        m = xi[0]
        for j in range(1, xi.size):
            m = max(m, xi[j])
        s = t(0)
        for j in range(xi.size):
            e = vexp(xi[j] - m)
            oi[j] = e
            s += e
        inv = t(1) / s
        for j in range(xi.size):
            oi[j] *= inv


@jit
def _softmax_backward(y, g, out, lo, hi):
    t = y.dtype.type
    for i in range(lo, hi):
        yi, gi, oi = y[i], g[i], out[i]
        dot = t(0)
        for j in range(yi.size):
            dot += gi[j] * yi[j]
        for j in range(yi.size):
            oi[j] = yi[j] * (gi[j] - dot)


@jit
def _log_softmax_forward(x, out, lo, hi):
    for i in range(lo, hi):
        xi, oi = x[i], out[i]
        lse = row_logsumexp(xi)
        for j in range(xi.size):
            oi[j] = xi[j] - lse


@jit
def _log_softmax_backward(y, g, out, lo, hi):
    t = y.dtype.type
    for i in range(lo, hi):
        yi, gi, oi = y[i], g[i], out[i]
        s = t(0)
        for j in range(yi.size):
            s += gi[j]
        for j in range(yi.size):
            oi[j] = gi[j] - vexp(yi[j]) * s


def softmax_forward_numba(x):
    out = np.empty_like(x)
    over_range(_softmax_forward, x.shape[0], x, out, work=x.size)
    return out


def softmax_backward_numba(y, g):
    out = np.empty_like(y)
    over_range(_softmax_backward, y.shape[0], y, g, out, work=y.size)
    return out


def log_softmax_forward_numba(x):
    out = np.empty_like(x)
    over_range(_log_softmax_forward, x.shape[0], x, out, work=x.size)
    return out


def log_softmax_backward_numba(y, g):
    out = np.empty_like(y)
    over_range(_log_softmax_backward, y.shape[0], y, g, out, work=y.size)
    return out
