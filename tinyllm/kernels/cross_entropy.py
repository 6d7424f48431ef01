"""Fused log-softmax + negative log-likelihood (cross-entropy) over rows of logits.

For one row of logits z (C classes) and its target class t:

    loss = −log softmax(z)ₜ = logsumexp(z) − zₜ,    logsumexp(z) = m + log Σⱼ e^(zⱼ − m)

and its gradient with respect to the logits is the famous "probabilities minus one-hot":

    ∂loss/∂zⱼ = softmax(z)ⱼ − [j = t]

Fusing the two steps means the (N, C) log-probabilities are never stored: forward keeps only
one number per row (the logsumexp), and backward recomputes softmax from the logits. Rows whose
target equals `ignore_index` contribute zero loss and zero gradient.

Signatures (N rows, C classes):
    cross_entropy_forward(logits (N, C), targets (N,) int, ignore_index) -> (loss (N,), lse (N,))
    cross_entropy_backward(logits, lse, targets, grad_rows (N,), ignore_index) -> (N, C)
`grad_rows[n]` is the adjoint of row n's loss (e.g. 1/count for a mean).
"""

import numpy as np

from tinyllm.kernels.jit import jit, over_range
from tinyllm.kernels.softmax import row_logsumexp
from tinyllm.kernels.vecmath import vexp

# ---- reference (plain NumPy) ----------------------------------------------------------------


def cross_entropy_forward_reference(logits, targets, ignore_index):
    m = logits.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True)))[:, 0]
    valid = targets != ignore_index
    safe = np.where(valid, targets, 0)
    picked = logits[np.arange(len(targets)), safe]
    loss = np.where(valid, lse - picked, 0).astype(logits.dtype)
    return loss, lse.astype(logits.dtype)


def cross_entropy_backward_reference(logits, lse, targets, grad_rows, ignore_index):
    probs = np.exp(logits - lse[:, None])
    valid = targets != ignore_index
    rows = np.nonzero(valid)[0]
    probs[rows, targets[rows]] -= 1
    return (probs * np.where(valid, grad_rows, 0)[:, None]).astype(logits.dtype)


# ---- numba kernels (same signatures) --------------------------------------------------------
# In the logits' dtype, with the vectorizable exp of tinyllm/kernels/vecmath.py; rows lo … hi − 1
# per call, `over_range` (tinyllm/kernels/jit.py) decides how many threads.


@jit
def _cross_entropy_forward(logits, targets, ignore_index, loss, lse, lo, hi):
    for i in range(lo, hi):
        zi = logits[i]
        row_lse = row_logsumexp(zi)
        lse[i] = row_lse
        t = targets[i]
        loss[i] = row_lse - zi[t] if t != ignore_index else 0


@jit
def _cross_entropy_backward(logits, lse, targets, grad_rows, ignore_index, out, lo, hi):
    for i in range(lo, hi):
        zi, oi = logits[i], out[i]
        t = targets[i]
        if t == ignore_index:
            oi[:] = 0
            continue
        g = grad_rows[i]
        row_lse = lse[i]
        for j in range(zi.size):
            oi[j] = vexp(zi[j] - row_lse) * g
        oi[t] -= g


def cross_entropy_forward_numba(logits, targets, ignore_index):
    n = logits.shape[0]
    loss = np.empty(n, dtype=logits.dtype)
    lse = np.empty(n, dtype=logits.dtype)
    over_range(
        _cross_entropy_forward, n, logits, targets, ignore_index, loss, lse, work=logits.size
    )
    return loss, lse


def cross_entropy_backward_numba(logits, lse, targets, grad_rows, ignore_index):
    out = np.empty_like(logits)
    over_range(
        _cross_entropy_backward,
        logits.shape[0],
        logits,
        lse,
        targets,
        grad_rows,
        ignore_index,
        out,
        work=logits.size,
    )
    return out
