"""The speed-oriented kernels agree with their references.

* tinyllm/kernels/vecmath.py: the vectorizable float32 exp and erf against NumPy's float64 exp
  and the standard library's erf, over the whole float32 range (including ±∞, NaN, the
  underflow and overflow edges); float64 arguments must give libm's values exactly.
* tinyllm/kernels/attention.py: the tiled flash kernel against the NumPy reference — forward
  (out, lse) and backward (dq, dk, dv) — for causal and full attention, shapes drawn by
  hypothesis: query and key lengths that are not multiples of the 32-row tile, L ≠ S, one
  row, 2- to 5-D batches; the tile products against `@`.
* The dispatchers: the numba path and the reference path give the same numbers through the
  op (`TINYLLM_KERNELS=numpy` vs numba); kernels, products and attention split across
  threads (tinyllm.runtime.threads.parallel_for) give the numbers one call gives.
* With NUMBA_DISABLE_JIT=1 the same Python source runs as plain Python and gives the same
  numbers (a subprocess, small shapes).
* The engine's cheaper gradient sums (tinyllm/engine/adjoints.py: ScatterGrad for indexing, in-place
  accumulation into buffers the backward pass owns) give the gradients a plain sum gives and
  never let two tensors share one gradient array.
"""
import json
import math
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinyllm import kernels
from tinyllm.kernels import attention as attn
from tinyllm.kernels import jit, vecmath

# ---- vecmath --------------------------------------------------------------------------------


@numba.njit(fastmath=jit.FASTMATH, error_model="numpy")
def _map_exp_erf(x, e, f):
    for i in range(x.size):
        e[i] = vecmath.vexp(x[i])
        f[i] = vecmath.verf(x[i])


def _exp_erf(x):
    e, f = np.empty_like(x), np.empty_like(x)
    _map_exp_erf(x, e, f)
    return e, f


def test_float32_exp_within_a_few_ulp_of_numpy_float64():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-87.3, 88.7, 200_000), np.linspace(-1, 1, 10_001),
                        [0.0, -0.0, 1e-30, -1e-30, 88.72, -87.33]]).astype(np.float32)
    got, _ = _exp_erf(x)
    want = np.exp(x.astype(np.float64))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=4 * np.finfo(np.float32).eps, atol=0)


def test_float32_exp_edges():
    x = np.array([np.nan, np.inf, -np.inf, 88.73, 1e30, -87.34, -200.0, -1e30],
                 dtype=np.float32)
    got, _ = _exp_erf(x)
    assert np.isnan(got[0])
    assert got[1] == got[3] == got[4] == np.inf
    assert np.all(got[5:] <= np.finfo(np.float32).tiny) and np.all(got[2:3] == 0)
    assert np.all(got[6:] == 0)


def test_float32_erf_within_4e7_of_libm():
    x = np.concatenate([np.linspace(-6, 6, 200_001), [np.inf, -np.inf, 0.0, 1e-30]])
    x32 = x.astype(np.float32)
    _, got = _exp_erf(x32)
    want = np.array([math.erf(v) for v in x32.astype(np.float64)])
    np.testing.assert_allclose(got, want, rtol=0, atol=4e-7)
    assert np.isnan(_exp_erf(np.array([np.nan], np.float32))[1][0])


def test_float64_arguments_use_libm_exactly():
    x = np.linspace(-30, 30, 1001)
    e, f = _exp_erf(x)
    np.testing.assert_array_equal(e, [math.exp(v) for v in x])
    np.testing.assert_array_equal(f, [math.erf(v) for v in x])


def test_bit_reinterpretation_round_trips():
    for v in (1.0, -2.5, 3.4e38, 1.2e-38, 0.0):
        bits = vecmath.float32_to_bits(np.float32(v))
        assert vecmath.float32_from_bits(bits) == np.float32(v)
    assert vecmath.float32_to_bits(np.float32(1.0)) == 127 << 23     # IEEE 754: 2^(127−127)


# ---- tile products ----------------------------------------------------------------------------


@pytest.mark.parametrize("na, nb, width", [(1, 1, 1), (2, 4, 8), (5, 7, 3), (32, 32, 64)])
def test_tile_products_match_matmul(na, nb, width):
    rng = np.random.default_rng(na * 100 + nb)
    a = rng.standard_normal((na + 3, width))
    b = rng.standard_normal((nb + 2, width))
    out = np.full((na, nb), np.nan)
    attn._dot_rows(a, 3, na, b, 2, nb, out)
    np.testing.assert_allclose(out, a[3:] @ b[2:].T, rtol=1e-12, atol=1e-12)
    t = rng.standard_normal((na, nb))
    acc = rng.standard_normal((na + 1, width))
    want = acc.copy()
    want[1:] += t @ b[2:]
    attn._axpy_rows(t, False, na, nb, b, 2, acc, 1)
    np.testing.assert_allclose(acc, want, rtol=1e-12, atol=1e-12)
    acc = np.zeros((nb, width))
    attn._axpy_rows(t, True, nb, na, a, 3, acc, 0)          # acc = tᵀ A
    np.testing.assert_allclose(acc, t.T @ a[3:], rtol=1e-12, atol=1e-12)


# ---- flash attention against the reference ------------------------------------------------------


@st.composite
def attention_case(draw):
    batch = draw(st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple))
    length_q = draw(st.sampled_from([1, 2, 31, 32, 33, 70]))
    length_k = draw(st.sampled_from([length_q, 1, 5, 40, 65]))
    e = draw(st.integers(1, 9))
    ev = draw(st.integers(1, 7))
    causal = draw(st.booleans())
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**16))
    return batch, length_q, length_k, e, ev, causal, dtype, seed


@settings(max_examples=25, deadline=None)
@given(case=attention_case())
def test_flash_attention_matches_reference(case):
    batch, lq, lk, e, ev, causal, dtype, seed = case
    rng = np.random.default_rng(seed)
    q = (rng.standard_normal(batch + (lq, e)) * 2).astype(dtype)
    k = (rng.standard_normal(batch + (lk, e)) * 2).astype(dtype)
    v = rng.standard_normal(batch + (lk, ev)).astype(dtype)
    dout = rng.standard_normal(batch + (lq, ev)).astype(dtype)
    scale = 1 / math.sqrt(e)
    out_r, lse_r = attn.attention_forward_reference(q, k, v, None, scale, causal)
    out_n, lse_n = attn.attention_forward_numba(q, k, v, None, scale, causal)
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    assert out_n.shape == out_r.shape and lse_n.shape == lse_r.shape
    assert out_n.dtype == lse_n.dtype == dtype
    np.testing.assert_allclose(out_n, out_r, **tol)
    np.testing.assert_allclose(lse_n, lse_r, **tol)
    grads_r = attn.attention_backward_reference(q, k, v, None, scale, causal, out_r, lse_r, dout)
    grads_n = attn.attention_backward_numba(q, k, v, None, scale, causal, out_r, lse_r, dout)
    for name, got, want in zip(("dq", "dk", "dv"), grads_n[:3], grads_r[:3]):
        assert got.shape == want.shape and got.dtype == dtype, name
        np.testing.assert_allclose(got, want, err_msg=name, **tol)


def test_flash_attention_accepts_strided_views():
    """q, k, v as the model makes them: views into one (B, T, 3, h, d) projection."""
    rng = np.random.default_rng(1)
    qkv = rng.standard_normal((2, 40, 3, 2, 8)).astype(np.float32).transpose(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]                          # (2, 2, 40, 8), not contiguous
    out_r, lse_r = attn.attention_forward_reference(q, k, v, None, 0.3, True)
    out_n, lse_n = attn.attention_forward_numba(q, k, v, None, 0.3, True)
    np.testing.assert_allclose(out_n, out_r, rtol=2e-5, atol=2e-5)
    g = rng.standard_normal(out_r.shape).astype(np.float32).transpose(0, 2, 1, 3)
    g = np.ascontiguousarray(g).transpose(0, 2, 1, 3)         # a transposed gradient
    for got, want in zip(attn.attention_backward_numba(q, k, v, None, 0.3, True, out_r, lse_r, g),
                         attn.attention_backward_reference(q, k, v, None, 0.3, True, out_r,
                                                           lse_r, g)[:3]):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


def test_sdpa_op_gives_the_same_numbers_on_both_backends():
    """Through the op (is_causal without a mask takes the flash kernel), forward and every
    gradient equal the NumPy path's."""
    import tinyllm as tl
    from tinyllm import ops

    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal((2, 3, 37, 8)) for _ in range(3)]
    results = {}
    for backend in ("numba", "numpy"):
        with kernels.use_backend(backend):
            q, k, v = (tl.Tensor(a, requires_grad=True) for a in arrays)
            y = ops.scaled_dot_product_attention(q, k, v, is_causal=True)
            (y * tl.Tensor(arrays[0][..., :8])).sum().backward()
            results[backend] = [y.data, q.grad, k.grad, v.grad]
    for got, want in zip(results["numba"], results["numpy"]):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)


# ---- the engine's gradient sums ----------------------------------------------------------------


def test_slices_of_one_tensor_share_one_gradient_buffer():
    import tinyllm as tl

    rng = np.random.default_rng(3)
    x = tl.Tensor(rng.standard_normal((3, 2, 4)), requires_grad=True)
    a, b, c = (rng.standard_normal((2, 4)) for _ in range(3))
    q, k, v = x[0], x[1], x[2]
    loss = (q * tl.Tensor(a)).sum() + (k * tl.Tensor(b)).sum() + (v * tl.Tensor(c)).sum() \
        + (x[0] * tl.Tensor(c)).sum()                       # the first slice taken twice
    loss.backward()
    np.testing.assert_allclose(x.grad, np.stack([a + c, b, c]), rtol=1e-14)


def test_repeated_integer_indices_and_slices_accumulate():
    import tinyllm as tl

    x = tl.Tensor(np.arange(5.0), requires_grad=True)
    y = x[np.array([0, 0, 3])].sum() + x[1:3].sum() * 2 + x[::2].sum() + (x * 1.0).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad, [2 + 1 + 1, 2 + 1, 2 + 1 + 1, 1 + 1, 1 + 1])


def test_gradients_never_share_memory():
    """z = x + y hands the same adjoint to x and y; summed adjoints are added into in place.
    After two backward passes (accumulation), each leaf has its own, correct gradient."""
    import tinyllm as tl

    x = tl.Tensor(np.ones(3), requires_grad=True)
    y = tl.Tensor(np.ones(3), requires_grad=True)
    for _ in range(2):
        ((x + y) * 2.0 + x * 3.0 + x * 4.0 + x[np.array([0, 0])].sum()).sum().backward()
    assert not np.shares_memory(x.grad, y.grad)
    # per pass: 2 + 3 + 4 everywhere, and x[0] twice in a scalar broadcast over 3 elements
    np.testing.assert_array_equal(x.grad, 2 * np.array([2 + 3 + 4 + 2 * 3, 9, 9]))
    np.testing.assert_array_equal(y.grad, [4, 4, 4])


# ---- threads ----------------------------------------------------------------------------------


def test_kernels_split_over_threads_give_the_serial_numbers(monkeypatch):
    """Every row/element kernel, forced to split its range over 3 threads (thresholds at 0),
    gives what one call over the whole range gives."""
    from tinyllm.kernels import adam, cross_entropy, embedding, gelu, layernorm, softmax

    rng = np.random.default_rng(4)
    x = rng.standard_normal((37, 19)).astype(np.float32)
    g = rng.standard_normal((37, 19)).astype(np.float32)
    w = rng.standard_normal(19).astype(np.float32)
    t = rng.integers(0, 19, 37)
    ids = rng.integers(0, 5, 37)
    rows = rng.standard_normal(37).astype(np.float32)
    p, m, v = x.ravel().copy(), np.zeros(x.size, np.float32), np.zeros(x.size, np.float32)
    cases = [lambda: softmax.softmax_forward_numba(x),
             lambda: softmax.softmax_backward_numba(x, g),
             lambda: softmax.log_softmax_forward_numba(x),
             lambda: softmax.log_softmax_backward_numba(x, g),
             lambda: cross_entropy.cross_entropy_forward_numba(x, t, 3),
             lambda: cross_entropy.cross_entropy_backward_numba(x, rows + 3, t, rows, 3),
             lambda: layernorm.layer_norm_forward_numba(x, w, w, 1e-5),
             lambda: layernorm.layer_norm_backward_numba(x, w, rows, np.abs(rows), g),
             lambda: gelu.gelu_forward_numba(x, "none"),
             lambda: gelu.gelu_backward_numba(x, g, "tanh"),
             lambda: embedding.embedding_backward_numba(ids, x, 5)]

    def run_all():
        results = [c() for c in cases]
        p2, m2, v2 = p.copy(), m.copy(), v.copy()
        adam.adam_step_numba(p2, g.ravel(), m2, v2, 1, 1e-2, 0.9, 0.99, 1e-8, 0.1, True)
        return results + [(p2, m2, v2)]

    serial = run_all()
    monkeypatch.setattr(jit, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(jit, "num_threads", lambda: 3)
    for one, split in zip(serial, run_all()):
        for a, b in zip(one if isinstance(one, tuple) else (one,),
                        split if isinstance(split, tuple) else (split,)):
            np.testing.assert_array_equal(b, a)     # same arithmetic, rows in other blocks


def test_parallel_for_runs_every_task_once_and_reraises():
    from tinyllm.runtime.threads import parallel_for

    seen = []
    parallel_for(50, seen.append, threads=3)
    assert sorted(seen) == list(range(50))
    inner = []
    parallel_for(4, lambda i: parallel_for(3, lambda j: inner.append((i, j)), threads=3),
                 threads=3)                               # a task's own loop runs serially
    assert sorted(inner) == [(i, j) for i in range(4) for j in range(3)]

    def fail(i):
        if i == 7:
            raise KeyError(i)
    with pytest.raises(KeyError):
        parallel_for(10, fail, threads=2)
    parallel_for(5, seen.append, threads=2)               # the pool still works afterwards


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
    np.testing.assert_array_equal(out2, out)          # the same arithmetic, pair by pair
    np.testing.assert_array_equal(lse2, lse)
    for got, want in zip(attn.attention_backward_numba(q, k, v, None, 0.4, True, out, lse, g),
                         grads):
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
    serial = kernels.matmul_pair(g2, w, g2.T, x2)           # small: one product after the other
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


# ---- the same numbers without the JIT ------------------------------------------------------------

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from tinyllm.kernels import attention, vecmath
    rng = np.random.default_rng(0)
    q, k, v, g = (rng.standard_normal((1, 2, 35, 4)).astype(np.float32) for _ in range(4))
    out, lse = attention.attention_forward_numba(q, k, v, None, 0.5, True)
    dq, dk, dv, _ = attention.attention_backward_numba(q, k, v, None, 0.5, True, out, lse, g)
    x = np.linspace(-5, 5, 11, dtype=np.float32)
    e = [float(vecmath.vexp(np.float32(t))) for t in x]
    f = [float(vecmath.verf(np.float32(t))) for t in x]
    json.dump({name: np.asarray(a, dtype=np.float64).ravel().tolist() for name, a in
               [("out", out), ("lse", lse), ("dq", dq), ("dk", dk), ("dv", dv), ("exp", e),
                ("erf", f)]}, sys.stdout)
""")


def test_flash_attention_and_vecmath_without_the_jit():
    def run(extra):
        env = dict(os.environ, **extra)
        env.pop("TINYLLM_KERNELS", None)
        proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    jit, nojit = run({}), run({"NUMBA_DISABLE_JIT": "1"})
    for key in jit:     # float32 arithmetic, summed in another order: a few ulp apart
        np.testing.assert_allclose(nojit[key], jit[key], rtol=1e-5, atol=1e-6, err_msg=key)
