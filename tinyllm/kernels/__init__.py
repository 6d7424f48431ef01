"""Kernels: the hot loops, each written twice — a plain-NumPy reference and a numba kernel.

The reference is what a reader should study first: a few NumPy lines per equation. The numba
kernel computes the same thing in one pass over memory, which NumPy cannot express without
temporaries (rows are shared out over threads when the array is big). Tests assert the two
agree (tests/kernels/: one test file per kernel family).

Ops in tinyllm/ops call the functions below, which pick the implementation:

* `TINYLLM_KERNELS=numpy` in the environment (or `use_backend("numpy")`) runs every op on the
  references — the whole framework then reads as plain NumPy;
* otherwise the numba kernels run for float32/float64 arrays, and the references for any other
  dtype (float16 storage computes in NumPy).

numba compiles a kernel the first time it is called with a given signature and caches the
machine code on disk (`cache=True`), so the cost is paid once per machine, not per process.
`warmup()` compiles (or loads) every kernel up front; sim's launcher runs it on one rank before
the others so that several ranks never compile the same kernel at once. (numba's cache of a
kernel is invalidated when *its* file changes, not when a helper it calls from another file —
tinyllm/kernels/vecmath.py — does: after editing a helper, clear the cache, e.g.
`find tinyllm -name "*.nbi" -delete`.)

Threads. A call uses several threads only when its work repays starting them, about 1 ms of
one-thread work: the row and element kernels of a small GPT (R1, R2 of benchmarks/step.py) run
on the calling thread; attention — O(T²) work per row — and the linear layers' products
(`matmul`) share their rows out with tinyllm.runtime.threads.parallel_for, which a busy machine
cannot stall (tinyllm/kernels/jit.py, tinyllm/runtime/threads.py).
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import numpy as np

from tinyllm.kernels import adam as _adam
from tinyllm.kernels import attention as _attn
from tinyllm.kernels import bf16 as _bf16
from tinyllm.kernels import cross_entropy as _ce
from tinyllm.kernels import embedding as _emb
from tinyllm.kernels import gelu as _gelu
from tinyllm.kernels import layernorm as _ln
from tinyllm.kernels import softmax as _sm
from tinyllm.kernels import word2vec as _w2v
from tinyllm.runtime.threads import blas_threads, num_threads, parallel_for

BACKENDS = ("numba", "numpy")
_backend = os.environ.get("TINYLLM_KERNELS", "numba")
if _backend not in BACKENDS:
    raise ValueError(f"TINYLLM_KERNELS={_backend!r}: expected one of {BACKENDS}")

_FAST_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def backend() -> str:
    return _backend


@contextmanager
def use_backend(name: str):
    """Run the block with the given kernel backend ("numba" or "numpy")."""
    global _backend
    if name not in BACKENDS:
        raise ValueError(f"unknown kernel backend {name!r}; expected one of {BACKENDS}")
    prev, _backend = _backend, name
    try:
        yield
    finally:
        _backend = prev


def _fast(x) -> bool:
    return _backend == "numba" and x.dtype in _FAST_DTYPES


def _c(x):
    return np.ascontiguousarray(x)


# ---- dispatchers ----------------------------------------------------------------------------


def softmax_forward(x):
    if _fast(x):
        return _sm.softmax_forward_numba(_c(x))
    return _sm.softmax_forward_reference(x)


def softmax_backward(y, g):
    if _fast(y):
        return _sm.softmax_backward_numba(_c(y), _c(g.astype(y.dtype, copy=False)))
    return _sm.softmax_backward_reference(y, g)


def log_softmax_forward(x):
    if _fast(x):
        return _sm.log_softmax_forward_numba(_c(x))
    return _sm.log_softmax_forward_reference(x)


def log_softmax_backward(y, g):
    if _fast(y):
        return _sm.log_softmax_backward_numba(_c(y), _c(g.astype(y.dtype, copy=False)))
    return _sm.log_softmax_backward_reference(y, g)


def cross_entropy_forward(logits, targets, ignore_index):
    if _fast(logits):
        return _ce.cross_entropy_forward_numba(_c(logits), _c(targets), ignore_index)
    return _ce.cross_entropy_forward_reference(logits, targets, ignore_index)


def cross_entropy_backward(logits, lse, targets, grad_rows, ignore_index):
    if _fast(logits):
        return _ce.cross_entropy_backward_numba(
            _c(logits),
            _c(lse),
            _c(targets),
            _c(grad_rows.astype(logits.dtype, copy=False)),
            ignore_index,
        )
    return _ce.cross_entropy_backward_reference(logits, lse, targets, grad_rows, ignore_index)


def layer_norm_forward(x, weight, bias, eps):
    if _fast(x):
        return _ln.layer_norm_forward_numba(_c(x), weight, bias, eps)
    return _ln.layer_norm_forward_reference(x, weight, bias, eps)


def layer_norm_backward(x, weight, mean, rstd, g):
    if _fast(x):
        return _ln.layer_norm_backward_numba(
            _c(x), weight, mean, rstd, _c(g.astype(x.dtype, copy=False))
        )
    return _ln.layer_norm_backward_reference(x, weight, mean, rstd, g)


def gelu_forward(x, approximate):
    if _fast(x):
        return _gelu.gelu_forward_numba(x, approximate)
    return _gelu.gelu_forward_reference(x, approximate)


def gelu_backward(x, g, approximate):
    if _fast(x):
        return _gelu.gelu_backward_numba(x, g, approximate)
    return _gelu.gelu_backward_reference(x, g, approximate)


def fp32_to_bf16_bits(x):
    """bf16 bit patterns of a float32 array (tinyllm/kernels/bf16.py)."""
    if _backend == "numba":
        return _bf16.fp32_to_bf16_bits_numba(x)
    return _bf16.fp32_to_bf16_bits_reference(x)


def embedding_backward(ids, g, num_embeddings):
    if _fast(g):
        return _emb.embedding_backward_numba(ids, g, num_embeddings)
    return _emb.embedding_backward_reference(ids, g, num_embeddings)


# ---- 2-D matrix products on tinyllm's threads ----------------------------------------------------

GEMM_PARALLEL_MIN_FLOPS = 1 << 25  # well under a millisecond on one core: one BLAS call there
GEMM_MIN_ROWS = 64  # rows per block, so that each block is still a good GEMM


def matmul(a, b):
    """a @ b for 2-D arrays (the linear layers' products).

    With the numba backend and more than one thread, a big product is split into row blocks of
    `a` run by `tinyllm.runtime.threads.parallel_for` — each block one single-threaded BLAS call —
    so a busy machine cannot stall it (tinyllm/runtime/threads.py); twice as many blocks as threads
    let the fast threads take more. Small products, and the NumPy backend, make one BLAS call.
    """
    if _backend != "numba":
        return a @ b
    rows = a.shape[0]
    big = 2 * rows * a.shape[1] * b.shape[1] >= GEMM_PARALLEL_MIN_FLOPS
    threads = num_threads() if big else 1
    blocks = min(2 * threads, rows // GEMM_MIN_ROWS)
    if threads <= 1 or blocks <= 1:
        with blas_threads(1):
            return a @ b
    out = np.empty((rows, b.shape[1]), dtype=np.result_type(a, b))
    bounds = [rows * i // blocks for i in range(blocks + 1)]

    def block(i):
        lo, hi = bounds[i], bounds[i + 1]
        np.matmul(a[lo:hi], b, out=out[lo:hi])

    with blas_threads(1):
        parallel_for(blocks, block, threads)
    return out


def matmul_pair(a1, b1, a2, b2):
    """(a1 @ b1, a2 @ b2) for two independent 2-D products — a linear layer's backward, X̄ = Ȳ W
    and W̄ = Ȳᵀ X, which cost the same. With two or more threads and big products, the two run
    side by side as two whole single-threaded BLAS calls (help-first: a thread that does not
    come in time leaves both to the caller), so neither is cut into row blocks; otherwise each
    is `matmul`. Each product is always computed by the same kind of call, so the result does
    not depend on which thread ran it."""
    if _backend != "numba":
        return a1 @ b1, a2 @ b2
    flops = 2 * a1.shape[0] * a1.shape[1] * b1.shape[1]
    if num_threads() < 2 or flops < GEMM_PARALLEL_MIN_FLOPS:
        return matmul(a1, b1), matmul(a2, b2)
    out = [None, None]

    def one(i):
        out[i] = a1 @ b1 if i == 0 else a2 @ b2

    with blas_threads(1):
        parallel_for(2, one, 2)
    return out[0], out[1]


def sgns_train(w_in, w_out, inputs, offsets, targets, noise, lr) -> float:
    """word2vec's negative-sampling SGD over a batch of examples, in place (kernels/word2vec.py)."""
    if _fast(w_in) and w_out.dtype == w_in.dtype:
        return _w2v.sgns_train_numba(w_in, w_out, inputs, offsets, targets, noise, lr)
    return _w2v.sgns_train_reference(w_in, w_out, inputs, offsets, targets, noise, lr)


def warmup(dtypes=(np.float32,)) -> None:
    """Compile (or load from the on-disk cache) every kernel for the given dtypes (the serial
    versions: the parallel ones compile when a call first needs them, tinyllm/kernels/jit.py)."""
    if _backend != "numba":
        return
    for dt in dtypes:
        x = np.linspace(-1, 1, 12, dtype=dt).reshape(3, 4)
        g = np.ones_like(x)
        softmax_backward(softmax_forward(x), g)
        log_softmax_backward(log_softmax_forward(x), g)
        t = np.array([0, 3, -100], dtype=np.int64)
        loss, lse = cross_entropy_forward(x, t, -100)
        cross_entropy_backward(x, lse, t, np.ones(3, dtype=dt), -100)
        y, mu, r = layer_norm_forward(x, np.ones(4, dt), np.zeros(4, dt), 1e-5)
        layer_norm_backward(x, np.ones(4, dt), mu, r, g)
        for approx in ("none", "tanh"):
            gelu_backward(x, g, approx)
            gelu_forward(x, approx)
        embedding_backward(np.array([0, 1, 1], dtype=np.int64), x, 5)
        q = np.linspace(-1, 1, 24, dtype=dt).reshape(1, 2, 3, 4)
        out, lse = attention_forward(q, q, q, None, 0.5, True)
        attention_backward(q, q, q, None, 0.5, True, out, lse, q)
        p = np.ones(4, dtype=dt)
        adam_step(
            p, p.copy(), np.zeros_like(p), np.zeros_like(p), 1, 1e-3, 0.9, 0.999, 1e-8, 0.1, True
        )


def attention_forward(q, k, v, bias, scale, causal=False):
    """Tiled numba kernel when there is no mask beyond `causal`; otherwise the reference, its
    batched small matmuls on one BLAS thread (see tinyllm/runtime/threads.py)."""
    if _fast(q) and bias is None:
        return _attn.attention_forward_numba(q, k, v, None, scale, causal)
    with blas_threads(1):
        return _attn.attention_forward_reference(q, k, v, bias, scale, causal)


def attention_backward(q, k, v, bias, scale, causal, out, lse, dout):
    if _fast(q) and bias is None:
        return _attn.attention_backward_numba(q, k, v, None, scale, causal, out, lse, dout)
    with blas_threads(1):
        return _attn.attention_backward_reference(q, k, v, bias, scale, causal, out, lse, dout)


def adam_step(
    param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, decoupled
):
    """In-place Adam/AdamW update (tinyllm/kernels/adam.py)."""
    if _fast(param) and param.flags.c_contiguous:
        return _adam.adam_step_numba(
            param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, decoupled
        )
    return _adam.adam_step_reference(
        param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, decoupled
    )
