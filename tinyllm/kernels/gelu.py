"""GELU, exact and tanh-approximated, forward and backward: reference, then numba.

    exact:  GELU(x) = x·Φ(x) = ½x(1 + erf(x/√2))
            GELU'(x) = Φ(x) + x·φ(x),            φ(x) = e^(−x²/2)/√(2π)
    tanh:   GELU(x) ≈ ½x(1 + tanh u),           u = √(2/π)(x + 0.044715x³)
            GELU'(x) ≈ ½(1 + tanh u) + ½x(1 − tanh²u)·√(2/π)(1 + 3·0.044715x²)

NumPy has no vectorized erf, so the reference maps the standard library's `math.erf` over the
array — exact, readable and slow. The numba kernel computes in the input's dtype with the
vectorizable erf and exp of tinyllm/kernels/vecmath.py (libm's for float64).
Signatures (any shape; `approximate` is "none" or "tanh"):
    gelu_forward(x, approximate) -> y
    gelu_backward(x, g, approximate) -> x̄
"""

import math

import numpy as np

from tinyllm.kernels.jit import jit, over_range
from tinyllm.kernels.vecmath import verf, vexp

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
INV_SQRT_2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
COEF = 0.044715

# ---- reference (plain NumPy) ----------------------------------------------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu_forward_reference(x, approximate):
    if approximate == "tanh":
        u = SQRT_2_OVER_PI * (x + COEF * x**3)
        return (0.5 * x * (1 + np.tanh(u))).astype(x.dtype, copy=False)
    return (0.5 * x * (1 + _erf(x * INV_SQRT_2))).astype(x.dtype, copy=False)


def gelu_backward_reference(x, g, approximate):
    if approximate == "tanh":
        t = np.tanh(SQRT_2_OVER_PI * (x + COEF * x**3))
        d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * COEF * x * x)
    else:
        cdf = 0.5 * (1 + _erf(x * INV_SQRT_2))
        d = cdf + x * INV_SQRT_2PI * np.exp(-0.5 * x * x)
    return (g * d).astype(x.dtype, copy=False)


# ---- numba kernels (same signatures; they work on the flattened array) ----------------------
#
# One pass, element by element, in the input's dtype: for float32, erf and exp are the
# vectorizable versions of tinyllm/kernels/vecmath.py, so the loop runs 8 elements per
# instruction instead of one call into libm per element. tanh u is written as
# 1 − 2/(e^(2u) + 1) for the same reason (exact at ±∞: e^(2u) → ∞ gives 1, → 0 gives −1).


@jit
def _gelu_forward(x, tanh_form, out, lo, hi):
    t = x.dtype.type
    half, one = t(0.5), t(1.0)
    c, k, inv_sqrt2 = t(SQRT_2_OVER_PI), t(COEF), t(INV_SQRT_2)
    xs, ys = x[lo:hi], out[lo:hi]  # (a loop from 0 over views vectorizes; one over lo…hi did not)
    for i in range(xs.size):
        v = xs[i]
        if tanh_form:
            u = c * (v + k * v * v * v)
            ys[i] = half * v * (one + (one - (one + one) / (vexp(u + u) + one)))  # 1 + tanh u
        else:
            ys[i] = half * v * (one + verf(v * inv_sqrt2))


@jit
def _gelu_backward(x, g, tanh_form, out, lo, hi):
    t = x.dtype.type
    half, one = t(0.5), t(1.0)
    c, k, inv_sqrt2, inv_sqrt2pi = t(SQRT_2_OVER_PI), t(COEF), t(INV_SQRT_2), t(INV_SQRT_2PI)
    xs, gs, ys = x[lo:hi], g[lo:hi], out[lo:hi]
    for i in range(xs.size):
        v = xs[i]
        if tanh_form:
            u = c * (v + k * v * v * v)
            th = one - (one + one) / (vexp(u + u) + one)  # tanh u
            d = half * (one + th) + half * v * (one - th * th) * c * (one + t(3.0) * k * v * v)
        else:
            d = half * (one + verf(v * inv_sqrt2)) + v * inv_sqrt2pi * vexp(-half * v * v)
        ys[i] = gs[i] * d


def gelu_forward_numba(x, approximate):
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    over_range(_gelu_forward, flat.size, flat, approximate == "tanh", out)
    return out.reshape(x.shape)


def gelu_backward_numba(x, g, approximate):
    flat_x = np.ascontiguousarray(x).reshape(-1)
    flat_g = np.ascontiguousarray(g, dtype=x.dtype).reshape(-1)
    out = np.empty_like(flat_x)
    over_range(_gelu_backward, flat_x.size, flat_x, flat_g, approximate == "tanh", out)
    return out.reshape(x.shape)
