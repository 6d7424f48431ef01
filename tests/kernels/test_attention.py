"""tinyllm/kernels/attention.py: the tiled flash kernel against the NumPy reference — forward
(out, lse) and backward (dq, dk, dv) — for causal and full attention, with shapes drawn by
hypothesis: query and key lengths that are not multiples of the 32-row tile, L ≠ S, one row,
2- to 5-D batches; the tile products against `@`; the op gives the same numbers on both
backends (`TINYLLM_KERNELS=numpy` vs numba).
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyllm import kernels
from tinyllm.kernels import attention as attn

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
    attn._axpy_rows(t, True, nb, na, a, 3, acc, 0)  # acc = tᵀ A
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
    q, k, v = qkv[0], qkv[1], qkv[2]  # (2, 2, 40, 8), not contiguous
    out_r, lse_r = attn.attention_forward_reference(q, k, v, None, 0.3, True)
    out_n, lse_n = attn.attention_forward_numba(q, k, v, None, 0.3, True)
    np.testing.assert_allclose(out_n, out_r, rtol=2e-5, atol=2e-5)
    g = rng.standard_normal(out_r.shape).astype(np.float32).transpose(0, 2, 1, 3)
    g = np.ascontiguousarray(g).transpose(0, 2, 1, 3)  # a transposed gradient
    for got, want in zip(
        attn.attention_backward_numba(q, k, v, None, 0.3, True, out_r, lse_r, g),
        attn.attention_backward_reference(q, k, v, None, 0.3, True, out_r, lse_r, g)[:3],
    ):
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
