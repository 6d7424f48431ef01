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
numba kernel does one row at a time while it sits in cache, rows in parallel.
"""
import numpy as np
from numba import prange

from tinyllm.kernels.jit import kernel
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
# In the input's dtype, with the vectorizable exp of tinyllm/kernels/vecmath.py.


@kernel()
def softmax_forward_numba(x):
    n, d = x.shape
    t = x.dtype.type
    out = np.empty_like(x)
    for i in prange(n):
        xi, oi = x[i], out[i]
        m = xi[0]
        for j in range(1, d):
            m = max(m, xi[j])
        s = t(0)
        for j in range(d):
            e = vexp(xi[j] - m)
            oi[j] = e
            s += e
        inv = t(1) / s
        for j in range(d):
            oi[j] *= inv
    return out


@kernel()
def softmax_backward_numba(y, g):
    n, d = y.shape
    t = y.dtype.type
    out = np.empty_like(y)
    for i in prange(n):
        yi, gi, oi = y[i], g[i], out[i]
        dot = t(0)
        for j in range(d):
            dot += gi[j] * yi[j]
        for j in range(d):
            oi[j] = yi[j] * (gi[j] - dot)
    return out


@kernel()
def log_softmax_forward_numba(x):
    n, d = x.shape
    t = x.dtype.type
    out = np.empty_like(x)
    for i in prange(n):
        xi, oi = x[i], out[i]
        m = xi[0]
        for j in range(1, d):
            m = max(m, xi[j])
        s = t(0)
        for j in range(d):
            s += vexp(xi[j] - m)
        lse = m + np.log(s)
        for j in range(d):
            oi[j] = xi[j] - lse
    return out


@kernel()
def log_softmax_backward_numba(y, g):
    n, d = y.shape
    t = y.dtype.type
    out = np.empty_like(y)
    for i in prange(n):
        yi, gi, oi = y[i], g[i], out[i]
        s = t(0)
        for j in range(d):
            s += gi[j]
        for j in range(d):
            oi[j] = gi[j] - vexp(yi[j]) * s
    return out
