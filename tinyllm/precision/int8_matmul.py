"""The int8 × int8 → int32 matrix product, and dequantizing its result.

A Linear layer computes Y = X Wᵀ with X (M, K) and W (N, K). With both operands quantized,
X ≈ s_x (q_x − z_x) and W ≈ s_w (q_w − z_w) (per row m of X and per output channel n of W, or
one value for the whole tensor), each output is

    Y[m, n] ≈ s_x[m] · s_w[n] · A[m, n],   A[m, n] = Σ_k (q_x[m, k] − z_x[m]) (q_w[n, k] − z_w[n])

so the whole inner sum runs on small integers, and the floats enter only once per output.
The accumulator A must be wider than int8: each product is at most 255 · 255 in magnitude, so
an int32 sum is exact for K up to 2³¹ / (max|q_x − z_x| · max|q_w − z_w|) — 33,025 terms in the
worst (affine × affine) case, 131,072 for symmetric int8 × int8. `int8_matmul` checks this bound
and refuses a K that could overflow rather than return a wrapped-around result.

Because A is exact, the quantized product equals the float product of the *dequantized*
operands up to the rounding of the final scaling — the property the tests check.

Two implementations with the same signature:
- `int8_matmul_reference`: widen to int32 and use NumPy's matmul (NumPy has no BLAS for
  integers, so this is slow; it is the definition);
- `int8_matmul_numba`: for each row, a loop over k adds a scaled row of the (K, N) transposed
  weight into an int32 accumulator row — an inner loop over n that the compiler vectorizes,
  reading memory contiguously. Big products share their rows out over threads
  (tinyllm/kernels/jit.py's `over_range`); small ones run on the calling thread.
`int8_matmul` validates, then dispatches on tinyllm.kernels' backend (TINYLLM_KERNELS=numpy
selects the reference). No int8 hardware instructions are used: this shows the arithmetic
(exact integer accumulation, one scaling at the end), not the speed of int8 tensor cores.
"""

from __future__ import annotations

import numpy as np

from tinyllm import kernels
from tinyllm.kernels.jit import jit, over_range

# ---- reference (plain NumPy) ----------------------------------------------------------------


def int8_matmul_reference(x_q, w_q, x_zp, w_zp):
    """A = (q_x − z_x) (q_w − z_w)ᵀ in int32.  x_q (M, K), w_q (N, K), x_zp (M,), w_zp (N,)."""
    xi = x_q.astype(np.int32) - x_zp[:, None]  # (M, K)
    wi = w_q.astype(np.int32) - w_zp[:, None]  # (N, K)
    return xi @ wi.T  # (M, N) int32


# ---- numba kernel (same signature) -----------------------------------------------------------


@jit
def _int8_matmul_rows(x_q, w_t, x_zp, w_zp, out, lo, hi):
    # x_q (M, K) int8, w_t (K, N) int8 (the weight transposed), x_zp (M,), w_zp (N,) int32;
    # fills rows [lo, hi) of out (M, N) int32, zeros on entry.
    K = x_q.shape[1]
    N = w_t.shape[1]
    for m in range(lo, hi):
        acc = out[m]  # (N,) int32, this row's accumulators
        for k in range(K):
            a = np.int32(x_q[m, k]) - x_zp[m]
            if a == 0:
                continue
            for n in range(N):  # contiguous in w_t and acc: vectorized
                acc[n] += a * (np.int32(w_t[k, n]) - w_zp[n])


def int8_matmul_numba(x_q, w_q, x_zp, w_zp):
    w_t = np.ascontiguousarray(w_q.T)  # (K, N): row k of w_t is what row m of x multiplies
    (M, K), N = x_q.shape, w_q.shape[0]
    out = np.zeros((M, N), dtype=np.int32)
    # Rows split over threads only when the product is big enough (tinyllm/kernels/jit.py).
    over_range(
        _int8_matmul_rows, M, np.ascontiguousarray(x_q), w_t, x_zp, w_zp, out, work=M * K * N
    )
    return out


# ---- validated entry point -------------------------------------------------------------------

_INT_TYPES = (np.dtype(np.int8), np.dtype(np.uint8))


def _zero_points(zp, n: int, name: str) -> np.ndarray:
    zp = np.asarray(zp)
    if not np.issubdtype(zp.dtype, np.integer):
        raise TypeError(f"int8_matmul: {name} must be integer, got dtype {zp.dtype}")
    if zp.ndim == 0:
        zp = np.full(n, zp)
    if zp.shape != (n,):
        raise ValueError(f"int8_matmul: {name} must be a scalar or of shape ({n},), got {zp.shape}")
    return np.ascontiguousarray(zp, dtype=np.int32)


def int8_matmul(x_q, w_q, x_zero_point=0, w_zero_point=0) -> np.ndarray:
    """Σ_k (q_x[m,k] − z_x[m]) (q_w[n,k] − z_w[n]) as int32 (M, N), exactly.

    x_q: (M, K) int8 or uint8; w_q: (N, K) (a Linear weight's layout); zero points are scalars
    or per-row (M,) / per-output-channel (N,) integer arrays.
    """
    x_q, w_q = np.asarray(x_q), np.asarray(w_q)
    if x_q.dtype not in _INT_TYPES or w_q.dtype not in _INT_TYPES:
        raise TypeError(
            f"int8_matmul: expected int8/uint8 operands, got {x_q.dtype} and {w_q.dtype}"
        )
    if x_q.ndim != 2 or w_q.ndim != 2 or x_q.shape[1] != w_q.shape[1]:
        raise ValueError(
            f"int8_matmul: shapes {x_q.shape} and {w_q.shape} do not match "
            f"(expected (M, K) and (N, K))"
        )
    x_zp = _zero_points(x_zero_point, x_q.shape[0], "x_zero_point")
    w_zp = _zero_points(w_zero_point, w_q.shape[0], "w_zero_point")
    K = x_q.shape[1]
    # The largest |q − z| either operand can produce, from the dtype's range and the zero points.
    x_span = _max_offset(x_q.dtype, x_zp)
    w_span = _max_offset(w_q.dtype, w_zp)
    if K * x_span * w_span >= 2**31:
        raise ValueError(
            f"int8_matmul: K = {K} terms of up to {x_span}·{w_span} could overflow "
            f"the int32 accumulator; split K into chunks of at most "
            f"{(2**31 - 1) // (x_span * w_span)}"
        )
    if kernels.backend() == "numba":
        return int8_matmul_numba(x_q, w_q, x_zp, w_zp)
    return int8_matmul_reference(x_q, w_q, x_zp, w_zp)


def _max_offset(dtype, zp) -> int:
    info = np.iinfo(dtype)
    if zp.size == 0:
        return max(abs(info.min), abs(info.max))
    return int(
        max(
            np.max(np.abs(info.min - zp.astype(np.int64))),
            np.max(np.abs(info.max - zp.astype(np.int64))),
        )
    )


def quantized_matmul(
    x_q, x_scale, x_zero_point, w_q, w_scale, w_zero_point, bias=None
) -> np.ndarray:
    """Y = s_x · s_w · A (+ bias) in float32: the dequantized result of int8_matmul.

    Scales are scalars or per-row (M,) for x and per-output-channel (N,) for w.
    """
    acc = int8_matmul(x_q, w_q, x_zero_point, w_zero_point)  # (M, N) int32
    sx = np.asarray(x_scale, np.float32)
    sw = np.asarray(w_scale, np.float32)
    sx = sx[:, None] if sx.ndim == 1 else sx  # (M, 1): one scale per row of x
    y = acc.astype(np.float32) * (sx * sw)  # sw (N,) broadcasts along the columns
    if bias is not None:
        y = y + np.asarray(bias, np.float32)
    return y.astype(np.float32, copy=False)
