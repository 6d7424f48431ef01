"""Kernels, products and attention split across threads (tinyllm/runtime/threads.py's
`parallel_for`, tinyllm/kernels/jit.py's `over_range`) give the numbers one call gives.
"""

import numpy as np
import pytest

from tinyllm import kernels
from tinyllm.kernels import attention as attn
from tinyllm.kernels import gelu, jit


def test_kernels_split_over_threads_give_the_serial_numbers(monkeypatch):
    """Every row/element kernel, forced to split its range over 3 threads (thresholds at 0),
    gives what one call over the whole range gives."""
    from tinyllm.kernels import adam, cross_entropy, embedding, layernorm, softmax

    rng = np.random.default_rng(4)
    x = rng.standard_normal((37, 19)).astype(np.float32)
    g = rng.standard_normal((37, 19)).astype(np.float32)
    w = rng.standard_normal(19).astype(np.float32)
    t = rng.integers(0, 19, 37)
    ids = rng.integers(0, 5, 37)
    rows = rng.standard_normal(37).astype(np.float32)
    p, m, v = x.ravel().copy(), np.zeros(x.size, np.float32), np.zeros(x.size, np.float32)
    cases = [
        lambda: softmax.softmax_forward_numba(x),
        lambda: softmax.softmax_backward_numba(x, g),
        lambda: softmax.log_softmax_forward_numba(x),
        lambda: softmax.log_softmax_backward_numba(x, g),
        lambda: cross_entropy.cross_entropy_forward_numba(x, t, 3),
        lambda: cross_entropy.cross_entropy_backward_numba(x, rows + 3, t, rows, 3),
        lambda: layernorm.layer_norm_forward_numba(x, w, w, 1e-5),
        lambda: layernorm.layer_norm_backward_numba(x, w, rows, np.abs(rows), g),
        lambda: gelu.gelu_forward_numba(x, "none"),
        lambda: gelu.gelu_backward_numba(x, g, "tanh"),
        lambda: embedding.embedding_backward_numba(ids, x, 5),
    ]

    def run_all():
        results = [c() for c in cases]
        p2, m2, v2 = p.copy(), m.copy(), v.copy()
        adam.adam_step_numba(p2, g.ravel(), m2, v2, 1, 1e-2, 0.9, 0.99, 1e-8, 0.1, True)
        return results + [(p2, m2, v2)]

    serial = run_all()
    monkeypatch.setattr(jit, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(jit, "num_threads", lambda: 3)
    for one, split in zip(serial, run_all()):
        for a, b in zip(
            one if isinstance(one, tuple) else (one,),
            split if isinstance(split, tuple) else (split,),
        ):
            np.testing.assert_array_equal(b, a)  # same arithmetic, rows in other blocks


def test_parallel_for_runs_every_task_once_and_reraises():
    from tinyllm.runtime.threads import parallel_for

    seen = []
    parallel_for(50, seen.append, threads=3)
    assert sorted(seen) == list(range(50))
    inner = []
    parallel_for(
        4, lambda i: parallel_for(3, lambda j: inner.append((i, j)), threads=3), threads=3
    )  # a task's own loop runs serially
    assert sorted(inner) == [(i, j) for i in range(4) for j in range(3)]

    def fail(i):
        if i == 7:
            raise KeyError(i)

    with pytest.raises(KeyError):
        parallel_for(10, fail, threads=2)
    parallel_for(5, seen.append, threads=2)  # the pool still works afterwards


def test_matmul_and_attention_split_across_threads_give_the_same_numbers(monkeypatch):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((301, 70)).astype(np.float32)
    b = rng.standard_normal((70, 90)).astype(np.float32)
    q, k, v, g = (rng.standard_normal((3, 2, 45, 8)) for _ in range(4))
    serial_mm = kernels.matmul(a, b)
    out, lse = attn.attention_forward_numba(q, k, v, None, 0.4, True)
    grads = attn.attention_backward_numba(q, k, v, None, 0.4, True, out, lse, g)
    monkeypatch.setattr(kernels, "num_threads", lambda: 3)
    monkeypatch.setattr(kernels, "GEMM_PARALLEL_MIN_FLOPS", 0)
    monkeypatch.setattr(kernels, "GEMM_MIN_ROWS", 16)
    monkeypatch.setattr(jit, "num_threads", lambda: 3)
    monkeypatch.setattr(attn, "ATTENTION_MIN_WORK", 0)
    np.testing.assert_allclose(kernels.matmul(a, b), a @ b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(kernels.matmul(b.T, a.T), serial_mm.T, rtol=1e-5, atol=1e-5)
    out2, lse2 = attn.attention_forward_numba(q, k, v, None, 0.4, True)
    np.testing.assert_array_equal(out2, out)  # the same arithmetic, pair by pair
    np.testing.assert_array_equal(lse2, lse)
    for got, want in zip(
        attn.attention_backward_numba(q, k, v, None, 0.4, True, out, lse, g), grads
    ):
        np.testing.assert_array_equal(got, want)


def test_linear_backward_products_side_by_side(monkeypatch):
    """The linear layer's X̄ = Ȳ W and W̄ = Ȳᵀ X run as two whole products on two threads
    (kernels.matmul_pair); both equal NumPy's products, with and without the pairing, and the
    op's gradients equal the formulas."""
    from tinyllm import Tensor, ops

    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 40, 24)).astype(np.float32)
    w = rng.standard_normal((33, 24)).astype(np.float32)
    g = rng.standard_normal((3, 40, 33)).astype(np.float32)
    g2, x2 = g.reshape(-1, 33), x.reshape(-1, 24)
    serial = kernels.matmul_pair(g2, w, g2.T, x2)  # small: one product after the other
    monkeypatch.setattr(kernels, "num_threads", lambda: 2)
    monkeypatch.setattr(kernels, "GEMM_PARALLEL_MIN_FLOPS", 0)
    paired = kernels.matmul_pair(g2, w, g2.T, x2)
    for got, want in zip(paired, serial):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(paired[0], g2 @ w, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(paired[1], g2.T @ x2, rtol=1e-5, atol=1e-5)
    xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    ops.linear(xt, wt).backward(g)
    np.testing.assert_allclose(xt.grad, np.einsum("bto,oi->bti", g, w), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(wt.grad, np.einsum("bto,bti->oi", g, x), rtol=1e-4, atol=1e-4)
