"""The row kernels (softmax, cross-entropy, layer norm, gelu, embedding) agree with the
plain-NumPy references written beside them; the dispatchers pick the right one.

The reference is the specification a reader studies; the kernel is the same equation in one
pass over memory. Hypothesis draws the shapes (down to one row or one column), both float
dtypes, large-magnitude logits (where a softmax without the max-shift would overflow) and
targets equal to ignore_index. Tolerances scale with the dtype's machine epsilon and the
values' magnitude, since the kernels accumulate in float64 and the references in the input's
dtype.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyllm import kernels
from tinyllm.kernels import cross_entropy as ce
from tinyllm.kernels import embedding as emb
from tinyllm.kernels import gelu
from tinyllm.kernels import layernorm as ln
from tinyllm.kernels import softmax as sm

DTYPES = (np.float32, np.float64)


def matrices(dtype, lo=-5.0, hi=5.0, max_rows=6, max_cols=9):
    """(rows, cols) arrays; rows and cols may be 1."""
    shape = st.tuples(st.integers(1, max_rows), st.integers(1, max_cols))
    width = 32 if dtype == np.float32 else 64
    return hnp.arrays(dtype, shape, elements=st.floats(lo, hi, width=width))


def tol(dtype, magnitude=1.0):
    """(rtol, atol) for comparing a float64-accumulating kernel with a reference."""
    eps = np.finfo(dtype).eps
    return dict(rtol=200 * eps, atol=200 * eps * max(1.0, magnitude))


def check(got, want, dtype, magnitude=1.0):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype == dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, **tol(dtype, magnitude))


# ---- softmax and log-softmax -------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), scale=st.sampled_from([1.0, 1e3, 1e4]))
def test_softmax_kernels(dtype, data, scale):
    x = data.draw(matrices(dtype)) * dtype(scale)  # 1e4: e^x overflows without the shift
    g = data.draw(hnp.arrays(dtype, x.shape, elements=st.floats(-2, 2, width=32)))
    y = sm.softmax_forward_numba(x)
    check(y, sm.softmax_forward_reference(x), dtype)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    check(sm.softmax_backward_numba(y, g), sm.softmax_backward_reference(y, g), dtype)
    logp = sm.log_softmax_forward_numba(x)
    check(logp, sm.log_softmax_forward_reference(x), dtype, magnitude=scale * 10)
    assert np.isfinite(logp).all()
    check(sm.log_softmax_backward_numba(logp, g), sm.log_softmax_backward_reference(logp, g), dtype)


# ---- fused cross-entropy ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@given(
    data=st.data(),
    scale=st.sampled_from([1.0, 1e3, 1e4]),
    ignore_index=st.sampled_from([-100, 0, 1]),
)
def test_cross_entropy_kernels(dtype, data, scale, ignore_index):
    logits = data.draw(matrices(dtype)) * dtype(scale)
    n, c = logits.shape
    targets = np.array(
        data.draw(
            st.lists(
                st.one_of(st.integers(0, c - 1), st.just(ignore_index)), min_size=n, max_size=n
            )
        ),
        dtype=np.int64,
    )
    loss, lse = ce.cross_entropy_forward_numba(logits, targets, ignore_index)
    loss_ref, lse_ref = ce.cross_entropy_forward_reference(logits, targets, ignore_index)
    check(lse, lse_ref, dtype, magnitude=scale * 10)
    check(loss, loss_ref, dtype, magnitude=scale * 10)
    assert np.all(loss[targets == ignore_index] == 0)
    grad_rows = data.draw(hnp.arrays(dtype, (n,), elements=st.floats(-2, 2, width=32)))
    d = ce.cross_entropy_backward_numba(logits, lse, targets, grad_rows, ignore_index)
    check(
        d,
        ce.cross_entropy_backward_reference(logits, lse_ref, targets, grad_rows, ignore_index),
        dtype,
    )
    assert np.all(d[targets == ignore_index] == 0)


# ---- layer norm ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), affine=st.booleans(), eps=st.sampled_from([1e-5, 1e-1]))
def test_layer_norm_kernels(dtype, data, affine, eps):
    x = data.draw(matrices(dtype, max_cols=12))
    d = x.shape[1]
    vec = hnp.arrays(dtype, (d,), elements=st.floats(-2, 2, width=32))
    w = data.draw(vec) if affine else None
    b = data.draw(vec) if affine else None
    y, mean, rstd = ln.layer_norm_forward_numba(x, w, b, eps)
    y_ref, mean_ref, rstd_ref = ln.layer_norm_forward_reference(x, w, b, eps)
    # rstd can reach 1/√ε ≈ 316, which amplifies the rounding of x − μ
    amp = float(np.max(rstd_ref)) * 10
    check(mean, mean_ref, dtype, magnitude=10)
    check(rstd, rstd_ref, dtype, magnitude=amp)
    check(y, y_ref, dtype, magnitude=amp * 2)
    g = data.draw(hnp.arrays(dtype, x.shape, elements=st.floats(-2, 2, width=32)))
    for got, want in zip(
        ln.layer_norm_backward_numba(x, w, mean_ref, rstd_ref, g),
        ln.layer_norm_backward_reference(x, w, mean_ref, rstd_ref, g),
    ):
        check(got, want, dtype, magnitude=amp * x.shape[0] * 10)


# ---- gelu -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@given(
    data=st.data(),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=5),
    transposed=st.booleans(),
)
def test_gelu_kernels(dtype, approximate, data, shape, transposed):
    width = 32 if dtype == np.float32 else 64
    elems = st.floats(-12, 12, width=width)
    x = data.draw(hnp.arrays(dtype, shape, elements=elems))
    g = data.draw(hnp.arrays(dtype, shape, elements=elems))
    if transposed:  # the kernels must accept any memory layout
        x, g = x.T, g.T
    check(
        gelu.gelu_forward_numba(x, approximate),
        gelu.gelu_forward_reference(x, approximate),
        dtype,
        magnitude=12,
    )
    check(
        gelu.gelu_backward_numba(x, g, approximate),
        gelu.gelu_backward_reference(x, g, approximate),
        dtype,
        magnitude=12,
    )


# ---- embedding backward ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), vocab=st.integers(1, 6), n=st.integers(1, 20), dim=st.integers(1, 17))
def test_embedding_backward_kernel(dtype, data, vocab, n, dim):
    ids = np.array(
        data.draw(st.lists(st.integers(0, vocab - 1), min_size=n, max_size=n)), dtype=np.int64
    )  # n > vocab forces repeated ids
    g = data.draw(hnp.arrays(dtype, (n, dim), elements=st.floats(-3, 3, width=32)))
    check(
        emb.embedding_backward_numba(ids, g, vocab),
        emb.embedding_backward_reference(ids, g, vocab),
        dtype,
        magnitude=3 * n,
    )


# ---- dispatch -------------------------------------------------------------------------------


def test_dispatch_follows_the_backend_and_accepts_views():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 5)).astype(np.float32).T  # a non-contiguous (5, 7)
    with kernels.use_backend("numba"):
        fast = kernels.softmax_forward(x)
        ln_fast = kernels.layer_norm_forward(x, None, None, 1e-5)[0]
    with kernels.use_backend("numpy"):
        slow = kernels.softmax_forward(x)
        ln_slow = kernels.layer_norm_forward(x, None, None, 1e-5)[0]
    check(fast, slow, np.float32)
    check(ln_fast, ln_slow, np.float32, magnitude=10)
    with pytest.raises(ValueError, match="backend"):
        with kernels.use_backend("cuda"):
            pass


def test_float16_falls_back_to_the_reference():
    x = np.linspace(-3, 3, 12, dtype=np.float16).reshape(3, 4)
    with kernels.use_backend("numba"):
        y = kernels.softmax_forward(x)
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, sm.softmax_forward_reference(x))
