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
from numba import njit, prange

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


@njit(parallel=True, cache=True)
def softmax_forward_numba(x):
    n, d = x.shape
    out = np.empty_like(x)
    for i in prange(n):
        m = x[i, 0]
        for j in range(1, d):
            if x[i, j] > m:
                m = x[i, j]
        s = 0.0
        for j in range(d):
            e = np.exp(x[i, j] - m)
            out[i, j] = e
            s += e
        inv = 1.0 / s
        for j in range(d):
            out[i, j] *= inv
    return out


@njit(parallel=True, cache=True)
def softmax_backward_numba(y, g):
    n, d = y.shape
    out = np.empty_like(y)
    for i in prange(n):
        dot = 0.0
        for j in range(d):
            dot += g[i, j] * y[i, j]
        for j in range(d):
            out[i, j] = y[i, j] * (g[i, j] - dot)
    return out


@njit(parallel=True, cache=True)
def log_softmax_forward_numba(x):
    n, d = x.shape
    out = np.empty_like(x)
    for i in prange(n):
        m = x[i, 0]
        for j in range(1, d):
            if x[i, j] > m:
                m = x[i, j]
        s = 0.0
        for j in range(d):
            s += np.exp(x[i, j] - m)
        lse = m + np.log(s)
        for j in range(d):
            out[i, j] = x[i, j] - lse
    return out


@njit(parallel=True, cache=True)
def log_softmax_backward_numba(y, g):
    n, d = y.shape
    out = np.empty_like(y)
    for i in prange(n):
        s = 0.0
        for j in range(d):
            s += g[i, j]
        for j in range(d):
            out[i, j] = g[i, j] - np.exp(y[i, j]) * s
    return out
