"""The PyTorch-shaped ops, against plain NumPy written here and finite differences.

argmax/argmin, max/min along a dim, sort, argsort, topk, gather, tril/triu, std/var with
PyTorch's correction arguments, floor_divide and remainder, comparisons, multinomial, and the
dim=/keepdim= names with NumPy's aliases. Forward values come from NumPy expressions (never
from tinyllm's output); gradients from tinyllm.testing.gradcheck in float64.
"""

import numpy as np
import pytest
from engine_strategies import arrays, leaf, odd_grid, shapes
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyllm as tl
from tinyllm import Tensor
from tinyllm.testing import gradcheck

close = np.testing.assert_allclose


def _dim(data, ndim):
    return data.draw(st.integers(-ndim, ndim - 1), label="dim")


# ---- dim= / keepdim= and their NumPy aliases ------------------------------------------------


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin", "var", "std"])
def test_reductions_take_dim_and_axis_alike(name):
    x = np.random.default_rng(0).permutation(24).reshape(2, 3, 4) / 5.0
    ref = {
        "sum": np.sum,
        "mean": np.mean,
        "amax": np.max,
        "amin": np.min,
        "var": lambda a, axis, keepdims: np.var(a, axis=axis, keepdims=keepdims, ddof=1),
        "std": lambda a, axis, keepdims: np.std(a, axis=axis, keepdims=keepdims, ddof=1),
    }[name]
    want = ref(x, axis=1, keepdims=True)
    t = Tensor(x)
    close(getattr(t, name)(dim=1, keepdim=True).data, want)
    close(getattr(t, name)(axis=1, keepdims=True).data, want)
    close(getattr(tl, name)(t, dim=1, keepdim=True).data, want)
    with pytest.raises(TypeError, match=f"{name}: got both dim= and its NumPy alias axis="):
        getattr(t, name)(dim=1, axis=1)


def test_shape_ops_take_dim():
    a, b = Tensor(np.ones((2, 3))), Tensor(np.zeros((2, 3)))
    assert tl.cat([a, b], dim=1).shape == (2, 6)
    assert tl.cat([a, b], axis=1).shape == (2, 6)
    assert tl.stack([a, b], dim=2).shape == (2, 3, 2)
    assert [p.shape for p in a.split(2, dim=1)] == [(2, 2), (2, 1)]
    assert [p.shape for p in a.chunk(3, dim=1)] == [(2, 1)] * 3
    assert a.unsqueeze(dim=0).shape == (1, 2, 3)
    assert a.unsqueeze(0).squeeze(dim=0).shape == (2, 3)
    assert a.squeeze(0).shape == (2, 3)  # a dim whose size is not 1 is kept, as in PyTorch
    x = np.random.default_rng(1).standard_normal((2, 5))
    e = np.exp(x - x.max(axis=0, keepdims=True))
    close(Tensor(x).softmax(dim=0).data, e / e.sum(axis=0, keepdims=True))
    close(tl.log_softmax(Tensor(x), dim=0).data, np.log(e / e.sum(axis=0, keepdims=True)))


# ---- argmax, argmin, max(dim), min(dim) ----------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(data=st.data(), shape=shapes(max_dims=3))
def test_argmax_argmin_match_numpy(data, shape):
    x = data.draw(arrays(shape, odd_grid(3)), label="x")  # a coarse grid: ties happen
    dim = _dim(data, len(shape))
    t = Tensor(x)
    assert t.argmax().item() == np.argmax(x)
    assert t.argmin().item() == np.argmin(x)
    np.testing.assert_array_equal(t.argmax(dim).data, np.argmax(x, axis=dim))
    np.testing.assert_array_equal(
        t.argmin(dim=dim, keepdim=True).data, np.argmin(x, dim, None, keepdims=True)
    )
    assert t.argmax(dim).dtype == np.int64


@settings(max_examples=40, deadline=None)
@given(data=st.data(), shape=shapes(max_dims=3), keepdim=st.booleans())
def test_max_along_dim_returns_values_and_first_index(data, shape, keepdim):
    x = data.draw(arrays(shape, odd_grid(3)), label="x")
    dim = _dim(data, len(shape))
    for op, npf, arg in ((tl.max, np.max, np.argmax), (tl.min, np.min, np.argmin)):
        values, indices = op(Tensor(x), dim, keepdim=keepdim)
        close(values.data, npf(x, axis=dim, keepdims=keepdim))
        np.testing.assert_array_equal(indices.data, arg(x, axis=dim, keepdims=keepdim))
        result = op(Tensor(x), dim=dim)
        assert result.values is not None and result.indices is not None


def test_max_along_dim_sends_the_gradient_to_one_index():
    x = leaf(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]))
    x.max(1).values.sum().backward()
    close(x.grad, [[0, 1, 0], [1, 0, 0]])  # the first maximum takes it all
    y = leaf(np.array([[1.0, 3.0, 3.0]]))
    y.max().backward()  # no dim: like amax, tied maxima share
    close(y.grad, [[0, 0.5, 0.5]])
    z = leaf(np.array([4.0, 1.0, 1.0]))
    z.min(0).values.backward()
    close(z.grad, [0, 1, 0])


def test_max_with_a_tensor_is_maximum():
    a, b = Tensor([1.0, 5.0]), Tensor([3.0, 2.0])
    close(tl.max(a, b).data, [3, 5])
    close(a.min(b).data, [1, 2])


@settings(max_examples=25, deadline=None)
@given(data=st.data(), shape=shapes(max_dims=3))
def test_max_dim_gradcheck(data, shape):
    x = data.draw(arrays(shape, odd_grid(16), unique=True), label="x")
    dim = _dim(data, len(shape))
    gradcheck(lambda t: t.max(dim).values * 1.5, [leaf(x)])
    gradcheck(lambda t: t.min(dim, keepdim=True).values, [leaf(x)])


# ---- sort, argsort, topk, gather -------------------------------------------------------------


def _stable_descending(x, dim):
    """A reference written independently: sort (−position) keys lexicographically."""
    moved = np.moveaxis(x, dim, -1)
    out = np.empty(moved.shape, dtype=np.int64)
    for idx in np.ndindex(moved.shape[:-1]):
        row = moved[idx]
        out[idx] = sorted(range(len(row)), key=lambda i: (-row[i], i))
    return np.moveaxis(out, -1, dim)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), shape=shapes(max_dims=3))
def test_sort_is_stable_both_ways(data, shape):
    x = data.draw(arrays(shape, odd_grid(2)), label="x")  # many ties
    dim = _dim(data, len(shape))
    values, indices = Tensor(x).sort(dim)
    want = np.argsort(x, axis=dim, kind="stable")
    np.testing.assert_array_equal(indices.data, want)
    close(values.data, np.take_along_axis(x, want, axis=dim))
    values, indices = tl.sort(Tensor(x), dim=dim, descending=True)
    want = _stable_descending(x, dim)
    np.testing.assert_array_equal(indices.data, want)
    close(values.data, np.take_along_axis(x, want, axis=dim))
    np.testing.assert_array_equal(Tensor(x).argsort(dim, descending=True).data, want)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), shape=shapes(max_dims=3), largest=st.booleans())
def test_topk_matches_numpy(data, shape, largest):
    x = data.draw(arrays(shape, odd_grid(16), unique=True), label="x")
    dim = _dim(data, len(shape))
    k = data.draw(st.integers(0, shape[dim]), label="k")
    values, indices = Tensor(x).topk(k, dim=dim, largest=largest)
    order = np.argsort(-x if largest else x, axis=dim)
    want = np.take(order, np.arange(k), axis=dim)
    np.testing.assert_array_equal(indices.data, want)
    close(values.data, np.take_along_axis(x, want, axis=dim))
    if k:
        gradcheck(lambda t: t.topk(k, dim, largest).values * 2.0, [leaf(x)])


def test_sort_and_gather_gradients():
    x = np.random.default_rng(3).permutation(12).reshape(3, 4) / 3.0
    gradcheck(lambda t: t.sort(1).values * np.arange(4.0), [leaf(x)])
    idx = np.array([[0, 0, 2], [1, 3, 3]])
    gradcheck(lambda t: tl.gather(t, 1, idx), [leaf(x[:2])])  # repeated indices accumulate
    got = tl.gather(Tensor(x), 1, idx).data
    close(got, np.take_along_axis(x[:2], idx, axis=1))


def test_nan_sorts_as_largest():
    x = Tensor([1.0, float("nan"), 3.0])
    assert x.argmax().item() == 1
    np.testing.assert_array_equal(x.sort(descending=True).indices.data, [1, 2, 0])
    np.testing.assert_array_equal(x.sort().indices.data, [0, 2, 1])


# ---- tril / triu -----------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(data=st.data(), shape=shapes(min_dims=2, max_dims=4), k=st.integers(-3, 3))
def test_tril_triu_match_numpy(data, shape, k):
    x = data.draw(arrays(shape), label="x")
    close(tl.tril(Tensor(x), k).data, np.tril(x, k))
    close(Tensor(x).triu(diagonal=k).data, np.triu(x, k))
    gradcheck(lambda t: tl.tril(t, k), [leaf(x)])
    gradcheck(lambda t: t.triu(k), [leaf(x)])


def test_tril_of_a_bool_mask():
    m = tl.tril(tl.ones(3, 3, dtype=tl.bool))
    np.testing.assert_array_equal(m.data, np.tri(3, dtype=bool))


# ---- std and var: PyTorch's correction ------------------------------------------------------


@pytest.mark.parametrize(
    "kw, ddof",
    [
        ({}, 1),
        ({"unbiased": False}, 0),
        ({"correction": 0}, 0),
        ({"correction": 2}, 2),
        ({"unbiased": True}, 1),
    ],
)
def test_std_var_correction(kw, ddof):
    x = np.random.default_rng(4).standard_normal((4, 6))
    close(Tensor(x).var(1, **kw).data, np.var(x, axis=1, ddof=ddof))
    close(Tensor(x).std(dim=1, **kw).data, np.std(x, axis=1, ddof=ddof))
    close(tl.std(Tensor(x), **kw).data, np.std(x, ddof=ddof))
    gradcheck(lambda t: t.std(1, **kw), [leaf(x)])


def test_std_rejects_both_spellings():
    with pytest.raises(TypeError, match="std: pass either unbiased= or correction="):
        Tensor(np.ones(3)).std(unbiased=True, correction=1)


# ---- floor_divide, remainder, pow with a tensor exponent -----------------------------------


def test_floor_divide_and_remainder_follow_python():
    a = np.array([7, -7, 7, -7, 0], dtype=np.int64)
    b = np.array([2, 2, -2, -2, 3], dtype=np.int64)
    np.testing.assert_array_equal((Tensor(a) // Tensor(b)).data, [x // y for x, y in zip(a, b)])
    np.testing.assert_array_equal((Tensor(a) % Tensor(b)).data, [x % y for x, y in zip(a, b)])
    assert (Tensor(a) % 3).dtype == np.int64
    np.testing.assert_array_equal((10 // Tensor(b)).data, [10 // y for y in b])
    with pytest.raises(ZeroDivisionError, match="remainder: integer division by zero"):
        Tensor(a) % 0


@settings(max_examples=30, deadline=None)
@given(data=st.data(), shape=shapes(max_dims=3))
def test_remainder_values_and_gradient(data, shape):
    a = data.draw(arrays(shape, st.floats(-5, 5)), label="a")
    b = data.draw(arrays(shape, st.sampled_from([-2.5, -1.25, 0.75, 1.5, 3.0])), label="b")
    # stay off the jumps of the remainder (a/b an integer)
    q = a / b
    a = np.where(np.abs(q - np.round(q)) < 0.05, a + 0.1 * np.abs(b), a)
    close(
        (Tensor(a) % Tensor(b)).data,
        np.array([x % y for x, y in zip(a.ravel(), b.ravel())]).reshape(shape),
    )
    close((Tensor(a) // Tensor(b)).data, np.floor(a / b))
    gradcheck(lambda x, y: x % y, [leaf(a), leaf(b)])


def test_pow_with_tensor_exponent():
    a = np.array([0.5, 1.5, 2.0])
    b = np.array([2.0, -1.0, 0.5])
    close(tl.pow(Tensor(a), Tensor(b)).data, a**b)
    close((Tensor(a) ** Tensor(b)).data, a**b)
    close((2.0 ** Tensor(b)).data, 2.0**b)
    gradcheck(lambda x, y: x.pow(y), [leaf(a), leaf(b)])


# ---- comparisons ----------------------------------------------------------------------------


def test_comparisons_are_element_wise_bool_tensors():
    a = np.array([[1.0, 2.0, 3.0]])
    b = np.array([[3.0], [2.0]])
    for got, want in [
        (Tensor(a) == Tensor(b), a == b),
        (Tensor(a) != Tensor(b), a != b),
        (Tensor(a) < 2, a < 2),
        (Tensor(a) <= Tensor(b), a <= b),
        (2 > Tensor(a), 2 > a),
        (Tensor(a) >= 2, a >= 2),
        (Tensor(a).eq(2), a == 2),
        (Tensor(a).ne(2), a != 2),
    ]:
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got.data, want)
    m = Tensor(a) > 1
    np.testing.assert_array_equal((~m).data, ~(a > 1))
    np.testing.assert_array_equal((m & (Tensor(a) < 3)).data, (a > 1) & (a < 3))
    np.testing.assert_array_equal((m | (Tensor(a) < 2)).data, (a > 1) | (a < 2))
    assert m.any().item() and not m.all().item()
    np.testing.assert_array_equal(m.any(dim=0).data, (a > 1).any(axis=0))
    assert tl.equal(Tensor(a), Tensor(a.copy())) is True
    assert tl.equal(Tensor(a), Tensor(b)) is False
    x = Tensor(a, requires_grad=True)
    assert not (x == 2).requires_grad
    assert (x == None) is False  # noqa: E711 - PyTorch: a tensor is not None
    with pytest.raises(TypeError, match="bitwise_not"):
        ~Tensor(a)


# ---- multinomial ------------------------------------------------------------------------------


def test_multinomial_with_replacement_frequencies():
    w = np.array([1.0, 0.0, 3.0, 4.0])
    g = np.random.default_rng(5)
    n = 40_000
    draws = tl.multinomial(Tensor(w), n, replacement=True, generator=g).data
    assert draws.shape == (n,) and draws.dtype == np.int64
    freq = np.bincount(draws, minlength=4) / n
    p = w / w.sum()
    # 5 standard errors of a binomial proportion: a wrong sampler fails, a right one passes
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-12), (freq, p)


def test_multinomial_without_replacement_is_sequential_sampling():
    w = np.array([1.0, 2.0, 3.0])
    g = np.random.default_rng(6)
    n = 30_000
    draws = tl.multinomial(Tensor(np.tile(w, (n, 1))), 2, generator=g).data
    assert draws.shape == (n, 2)
    assert np.all(draws[:, 0] != draws[:, 1])
    # P(first = i, second = j) = wᵢ/W · wⱼ/(W − wᵢ): the formula of drawing twice, removing
    W = w.sum()
    for i in range(3):
        for j in range(3):
            if i == j:
                continue
            p = w[i] / W * w[j] / (W - w[i])
            freq = np.mean((draws[:, 0] == i) & (draws[:, 1] == j))
            assert abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n), (i, j, freq, p)


def test_multinomial_is_seeded_and_checks_its_input():
    w = Tensor([0.2, 0.3, 0.5])
    a = tl.multinomial(w, 10, True, generator=np.random.default_rng(1)).data
    b = tl.multinomial(w, 10, True, generator=np.random.default_rng(1)).data
    np.testing.assert_array_equal(a, b)
    tl.manual_seed(3)
    c = w.multinomial(3).data
    tl.manual_seed(3)
    np.testing.assert_array_equal(c, w.multinomial(3).data)
    assert sorted(c) == [0, 1, 2]
    with pytest.raises(ValueError, match="multinomial: cannot draw 4 samples without replacement"):
        tl.multinomial(w, 4)
    with pytest.raises(ValueError, match="multinomial: weights must be finite and non-negative"):
        tl.multinomial(Tensor([1.0, -1.0]), 1)
    with pytest.raises(ValueError, match="multinomial: a row has fewer than 2 categories"):
        tl.multinomial(Tensor([1.0, 0.0, 0.0]), 2)


# ---- errors that name the op -------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: Tensor(np.ones((2, 3))).argmax(2), IndexError, ["argmax", "got 2", "(2, 3)"]),
        (lambda: Tensor(np.ones((2, 3))).topk(4), ValueError, ["topk", "k=4"]),
        (lambda: Tensor(np.ones(3)).tril(), ValueError, ["tril", "(3,)"]),
        (lambda: Tensor(np.ones(3)).max(dim=(0,)), TypeError, ["max", "amax"]),
        (lambda: tl.gather(Tensor(np.ones((2, 3))), 1, np.array([[5]])), IndexError, ["gather"]),
        (lambda: Tensor(np.ones(0)).argmax(), ValueError, ["argmax", "empty"]),
    ],
)
def test_errors_name_the_op(call, error, words):
    with pytest.raises(error) as info:
        call()
    for w in words:
        assert w in str(info.value)
