"""Scaled dot-product attention, forward and backward: NumPy reference, then a tiled numba kernel.

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

`causal=True` forbids key j to query i when j > i (top-left aligned, PyTorch's is_causal): the
reference adds −∞ there to B. A query row whose keys are all masked has no distribution to
take. We define its output as zero (and its gradients as zero) by setting its lse to +∞, so
e^(S − lse) = 0 everywhere.

Signatures (leading batch axes already broadcast to the same shape):
    attention_forward(q, k, v, bias, scale, causal) -> (out, lse)
    attention_backward(q, k, v, bias, scale, causal, out, lse, dout) -> (dq, dk, dv, dbias_full)
`bias` is None or an array broadcastable to (…, L, S_) with −inf where attention is forbidden.

The numba kernel (FlashAttention's algorithm, Dao et al. 2022; backward as in FlashAttention-2,
Dao 2023) never forms the (L × S_) matrices. Each (batch, head) pair — the pairs are shared out
among threads — walks tiles of 32 queries × 32 keys:

    forward, per query tile: for each key tile, Sₜ = Qₜ Kₜᵀ·s, then the *online softmax*:
        m' = max(m, rowmax Sₜ);   ℓ ← ℓ·e^(m − m') + rowsum e^(Sₜ − m');
        acc ← acc·e^(m − m') + e^(Sₜ − m') Vₜ;   m ← m'
    and at the end O = acc / ℓ, lse = m + log ℓ — exact, as if the whole row had been seen at
    once (rescaling by e^(m − m') corrects the partial sums each time the running max grows).
    backward, per key tile: for each query tile, rebuild P from lse, then accumulate V̄ₜ, K̄ₜ of
    the key tile and Q̄ of the query tile with the equations above.

With causal masking a key tile entirely to the right of the diagonal is skipped, which halves
the work. The tile products are written so that LLVM vectorizes them (2 rows × 4 columns per
step, each a dot product or a row update along the contiguous axis), close to OpenBLAS on the
same small products — and half of the products are not done at all, so the kernel beats the
reference's batched BLAS calls (docs/03-kernels.md has the numbers, beside PyTorch's flash
kernel).

The kernel covers bias=None, with or without `causal`; any other mask goes to the reference.
Its tiles are 32 × 32: larger tiles waste more work on the diagonal, and were slower
(docs/03-kernels.md).
"""

import numpy as np

from tinyllm.kernels.jit import jit, over_range
from tinyllm.kernels.vecmath import vexp

# ---- reference (plain NumPy) ----------------------------------------------------------------


def _with_causal(bias, causal, l, s, dtype):
    if not causal:
        return bias
    tri = np.where(np.tri(l, s, dtype=bool), 0, -np.inf).astype(dtype)
    return tri if bias is None else bias + tri


def attention_forward_reference(q, k, v, bias, scale, causal=False):
    bias = _with_causal(bias, causal, q.shape[-2], k.shape[-2], q.dtype)
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * np.asarray(scale, dtype=q.dtype)  # (…, L, S_)
    if bias is not None:
        s = s + bias
    m = s.max(axis=-1, keepdims=True)  # (…, L, 1)
    dead = ~np.isfinite(m)  # all masked
    m = np.where(dead, 0, m)
    with np.errstate(divide="ignore"):
        lse = m + np.log(np.exp(s - m).sum(axis=-1, keepdims=True))
    lse = np.where(dead, np.inf, lse).astype(q.dtype)
    p = np.exp(s - lse)
    out = np.matmul(p, v)  # (…, L, Ev)
    return out, lse[..., 0]


def attention_backward_reference(q, k, v, bias, scale, causal, out, lse, dout):
    bias = _with_causal(bias, causal, q.shape[-2], k.shape[-2], q.dtype)
    sc = np.asarray(scale, dtype=q.dtype)
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * sc
    if bias is not None:
        s = s + bias
    p = np.exp(s - lse[..., None])  # (…, L, S_)
    dv = np.matmul(np.swapaxes(p, -1, -2), dout)  # (…, S_, Ev)
    dp = np.matmul(dout, np.swapaxes(v, -1, -2))  # (…, L, S_)
    delta = (dout * out).sum(axis=-1, keepdims=True)  # (…, L, 1)
    ds = p * (dp - delta)
    dq = np.matmul(ds, k) * sc
    dk = np.matmul(np.swapaxes(ds, -1, -2), q) * sc
    return dq, dk, dv, ds


# ---- numba: the two tile products --------------------------------------------------------------

BLOCK = 32  # queries and keys per tile


@jit(inline="always")
def _dot_rows(a, a0, na, b, b0, nb, out):
    """out[i, j] = Σₑ a[a0 + i, e] · b[b0 + j, e]  for i < na, j < nb   (out = A Bᵀ on a tile).

    Two rows of A against four rows of B at a time: eight dot products share each load.
    """
    zero = a.dtype.type(0)
    width = a.shape[1]
    i = 0
    while i + 2 <= na:
        x0, x1 = a[a0 + i], a[a0 + i + 1]
        j = 0
        while j + 4 <= nb:
            y0, y1, y2, y3 = b[b0 + j], b[b0 + j + 1], b[b0 + j + 2], b[b0 + j + 3]
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
            for e in range(width):
                u, w = x0[e], x1[e]
                s00 += u * y0[e]
                s01 += u * y1[e]
                s02 += u * y2[e]
                s03 += u * y3[e]
                s10 += w * y0[e]
                s11 += w * y1[e]
                s12 += w * y2[e]
                s13 += w * y3[e]
            out[i, j], out[i, j + 1], out[i, j + 2], out[i, j + 3] = s00, s01, s02, s03
            out[i + 1, j], out[i + 1, j + 1] = s10, s11
            out[i + 1, j + 2], out[i + 1, j + 3] = s12, s13
            j += 4
        while j < nb:
            y = b[b0 + j]
            s0 = s1 = zero
            for e in range(width):
                s0 += x0[e] * y[e]
                s1 += x1[e] * y[e]
            out[i, j], out[i + 1, j] = s0, s1
            j += 1
        i += 2
    if i < na:
        x = a[a0 + i]
        for j in range(nb):
            y = b[b0 + j]
            s0 = zero
            for e in range(width):
                s0 += x[e] * y[e]
            out[i, j] = s0


@jit(inline="always")
def _axpy_rows(t, transposed, nt, nk, b, b0, acc, a0):
    """acc[a0 + i, :] += Σⱼ T[i, j] · b[b0 + j, :]  for i < nt, j < nk   (acc += T B on a tile),

    with T = t, or T = tᵀ when `transposed` (only the scalar coefficients are read across, so
    the transposed product costs the same). Row updates along the contiguous axis; two rows
    of acc take four rows of B per pass.
    """
    width = b.shape[1]
    i = 0
    while i + 2 <= nt:
        r0, r1 = acc[a0 + i], acc[a0 + i + 1]
        j = 0
        while j + 4 <= nk:
            y0, y1, y2, y3 = b[b0 + j], b[b0 + j + 1], b[b0 + j + 2], b[b0 + j + 3]
            if transposed:
                c00, c01, c02, c03 = t[j, i], t[j + 1, i], t[j + 2, i], t[j + 3, i]
                c10, c11, c12, c13 = t[j, i + 1], t[j + 1, i + 1], t[j + 2, i + 1], t[j + 3, i + 1]
            else:
                c00, c01, c02, c03 = t[i, j], t[i, j + 1], t[i, j + 2], t[i, j + 3]
                c10, c11, c12, c13 = t[i + 1, j], t[i + 1, j + 1], t[i + 1, j + 2], t[i + 1, j + 3]
            for e in range(width):
                u0, u1, u2, u3 = y0[e], y1[e], y2[e], y3[e]
                r0[e] += c00 * u0 + c01 * u1 + c02 * u2 + c03 * u3
                r1[e] += c10 * u0 + c11 * u1 + c12 * u2 + c13 * u3
            j += 4
        while j < nk:
            y = b[b0 + j]
            c0, c1 = (t[j, i], t[j, i + 1]) if transposed else (t[i, j], t[i + 1, j])
            for e in range(width):
                r0[e] += c0 * y[e]
                r1[e] += c1 * y[e]
            j += 1
        i += 2
    if i < nt:
        r = acc[a0 + i]
        for j in range(nk):
            y = b[b0 + j]
            c = t[j, i] if transposed else t[i, j]
            for e in range(width):
                r[e] += c * y[e]


@jit(inline="always")
def _visible(causal, row, j0, nc):
    """How many keys of the tile starting at key j0 (nc wide) query `row` may attend to."""
    if not causal:
        return nc
    return max(0, min(nc, row + 1 - j0))


# ---- numba: one (batch, head) pair, then a range of pairs ------------------------------------


@jit(inline="always")
def _scaled_copy(x, scale):
    out = np.empty_like(x)
    c = x.dtype.type(scale)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = x[i, j] * c
    return out


@jit(inline="always")
def _flash_forward_head(q, k, v, scale, causal, out, lse):
    """One head: q (L, E), k (S, E), v (S, Ev) → out (L, Ev), lse (L,), written in place."""
    L, E = q.shape
    S, Ev = v.shape
    dt = q.dtype
    qs = _scaled_copy(q, scale)  # the scale folded into Q
    s = np.empty((BLOCK, BLOCK), dt)  # scores, then probabilities, of a tile
    acc = np.empty((BLOCK, Ev), dt)  # Σ P V of the query tile so far
    m = np.empty(BLOCK, dt)  # running row max
    ell = np.empty(BLOCK, dt)  # running Σ e^(S − m)
    for i0 in range(0, L, BLOCK):
        nr = min(BLOCK, L - i0)
        m[:] = -np.inf
        ell[:] = 0
        acc[:] = 0
        j_end = min(S, i0 + nr) if causal else S  # key tiles right of the diagonal: skipped
        for j0 in range(0, j_end, BLOCK):
            nc = min(BLOCK, j_end - j0)
            _dot_rows(qs, i0, nr, k, j0, nc, s)  # S = Q Kᵀ·s on the tile
            for i in range(nr):
                n = _visible(causal, i0 + i, j0, nc)
                if n == 0:  # no visible key in this tile
                    s[i, :nc] = 0
                    continue
                m_new = m[i]
                for j in range(n):
                    m_new = max(m_new, s[i, j])
                alpha = vexp(m[i] - m_new)  # rescales the old sums
                total = dt.type(0)
                for j in range(n):
                    p = vexp(s[i, j] - m_new)
                    s[i, j] = p
                    total += p
                for j in range(n, nc):
                    s[i, j] = 0
                ell[i] = ell[i] * alpha + total
                m[i] = m_new
                for e in range(Ev):
                    acc[i, e] *= alpha
            _axpy_rows(s, False, nr, nc, v, j0, acc, 0)  # acc += P V on the tile
        for i in range(nr):
            inv = dt.type(1) / ell[i]
            for e in range(Ev):
                out[i0 + i, e] = acc[i, e] * inv
            lse[i0 + i] = m[i] + np.log(ell[i])


@jit(inline="always")
def _flash_backward_head(q, k, v, scale, causal, out, lse, dout, dq, dk, dv):
    """One head: the gradients dq (L, E), dk (S, E), dv (S, Ev), written in place."""
    L, E = q.shape
    S, Ev = v.shape
    dt = q.dtype
    sc = dt.type(scale)
    qs = _scaled_copy(q, scale)
    delta = np.empty(L, dt)  # Δ = rowsum(Ō ⊙ O)
    for r in range(L):
        acc = dt.type(0)
        for e in range(Ev):
            acc += dout[r, e] * out[r, e]
        delta[r] = acc
    dqs = np.zeros((L, E), dt)
    dk_tile = np.empty((BLOCK, E), dt)
    dv_tile = np.empty((BLOCK, Ev), dt)
    p = np.empty((BLOCK, BLOCK), dt)
    dp = np.empty((BLOCK, BLOCK), dt)
    for j0 in range(0, S, BLOCK):
        nc = min(BLOCK, S - j0)
        dk_tile[:] = 0
        dv_tile[:] = 0
        i_start = j0 if causal else 0  # earlier queries see none of these keys
        for i0 in range(i_start, L, BLOCK):
            nr = min(BLOCK, L - i0)
            _dot_rows(qs, i0, nr, k, j0, nc, p)
            for i in range(nr):  # P = e^(S − lse)
                n = _visible(causal, i0 + i, j0, nc)
                row_lse = lse[i0 + i]
                for j in range(n):
                    p[i, j] = vexp(p[i, j] - row_lse)
                for j in range(n, nc):
                    p[i, j] = 0
            _axpy_rows(p, True, nc, nr, dout, i0, dv_tile, 0)  # V̄ += Pᵀ Ō
            _dot_rows(dout, i0, nr, v, j0, nc, dp)  # P̄ = Ō Vᵀ
            for i in range(nr):  # S̄ = P ⊙ (P̄ − Δ), into p
                d = delta[i0 + i]
                for j in range(nc):
                    p[i, j] = p[i, j] * (dp[i, j] - d)
            _axpy_rows(p, False, nr, nc, k, j0, dqs, i0)  # Q̄ += S̄ K   (·s below)
            _axpy_rows(p, True, nc, nr, qs, i0, dk_tile, 0)  # K̄ += S̄ᵀ (Q·s)
        for j in range(nc):
            for e in range(E):
                dk[j0 + j, e] = dk_tile[j, e]
            for e in range(Ev):
                dv[j0 + j, e] = dv_tile[j, e]
    for r in range(L):
        for e in range(E):
            dq[r, e] = dqs[r, e] * sc


@jit
def _flash_forward(q, k, v, scale, causal, out, lse, lo, hi):
    """q, k, v, out (B, H, ·, ·) and lse (B, H, L): the (batch, head) pairs lo … hi − 1."""
    nh = q.shape[1]
    for bh in range(lo, hi):
        b, h = bh // nh, bh % nh
        _flash_forward_head(q[b, h], k[b, h], v[b, h], scale, causal, out[b, h], lse[b, h])


@jit
def _flash_backward(q, k, v, scale, causal, out, lse, dout, dq, dk, dv, lo, hi):
    nh = q.shape[1]
    for bh in range(lo, hi):
        b, h = bh // nh, bh % nh
        _flash_backward_head(
            q[b, h],
            k[b, h],
            v[b, h],
            scale,
            causal,
            out[b, h],
            lse[b, h],
            dout[b, h],
            dq[b, h],
            dk[b, h],
            dv[b, h],
        )


# The (batch, head) pairs are split over threads (over_range, tinyllm/kernels/jit.py) once QKᵀ
# has ATTENTION_MIN_WORK multiply-adds (about a millisecond of one-thread work).
ATTENTION_MIN_WORK = 1 << 24


def _over_pairs(kernel, q, k, *args):
    over_range(
        kernel,
        q.shape[0] * q.shape[1],
        q,
        k,
        *args,
        work=q.size * k.shape[2],
        min_work=ATTENTION_MIN_WORK,
    )


# ---- numba wrappers with the reference signatures -------------------------------------------


def _as_4d(x):
    """(…, T, d) as a C-contiguous, writable (B, H, T, d) array — one array type per dtype, so
    numba compiles each kernel once (a strided or read-only view would be another type)."""
    if x.ndim < 4:
        x = x.reshape((1,) * (4 - x.ndim) + x.shape)
    elif x.ndim > 4:
        x = x.reshape((-1,) + x.shape[-3:])
    return np.require(x, requirements=("C", "W"))


def attention_forward_numba(q, k, v, bias, scale, causal=False):
    if bias is not None or k.shape[-2] == 0:
        return attention_forward_reference(q, k, v, bias, scale, causal)
    q4, k4, v4 = _as_4d(q), _as_4d(k), _as_4d(v)
    out = np.empty(q4.shape[:3] + (v4.shape[3],), dtype=q.dtype)
    lse = np.empty(q4.shape[:3], dtype=q.dtype)
    _over_pairs(_flash_forward, q4, k4, v4, float(scale), bool(causal), out, lse)
    return out.reshape(q.shape[:-1] + (v.shape[-1],)), lse.reshape(q.shape[:-1])


def attention_backward_numba(q, k, v, bias, scale, causal, out, lse, dout):
    if bias is not None or k.shape[-2] == 0:
        return attention_backward_reference(q, k, v, bias, scale, causal, out, lse, dout)
    q4, k4, v4 = _as_4d(q), _as_4d(k), _as_4d(v)
    out4, dout4 = _as_4d(out), _as_4d(dout.astype(q.dtype, copy=False))
    lse3 = np.require(lse.reshape(q4.shape[:3]), requirements=("C", "W"))
    dq, dk, dv = np.empty_like(q4), np.empty_like(k4), np.empty_like(v4)
    _over_pairs(
        _flash_backward, q4, k4, v4, float(scale), bool(causal), out4, lse3, dout4, dq, dk, dv
    )
    return dq.reshape(q.shape), dk.reshape(k.shape), dv.reshape(v.shape), None
