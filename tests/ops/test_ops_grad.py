"""Every differentiable op, proven two ways on hypothesis-drawn inputs.

Forward: compared with a plain-NumPy expression written here, independently of tinyllm/ops.
Backward: tinyllm.testing.gradcheck in float64 — central differences of ⟨u, f(x)⟩ against the
gradient backward() produced, with a random cotangent u.

Inputs are drawn by the strategies in engine_strategies.py: broadcastable shape pairs,
non-contiguous layouts, values kept off kinks and ties. Ops that run on kernels
(tinyllm/kernels) are checked under both backends, the NumPy references and numba.
"""

import math
import operator

import numpy as np
import pytest
from engine_strategies import (
    arrays,
    axes,
    broadcastable,
    even_grid,
    leaf,
    odd_grid,
    positive,
    shapes,
    smooth,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinyllm as tl
from tinyllm import Function, Tensor, kernels, ops
from tinyllm.testing import gradcheck

BACKENDS = ("numpy", "numba")
close = np.testing.assert_allclose
erf = np.vectorize(math.erf, otypes=[np.float64])


# ============================================================================================
# gradcheck itself: it must catch a wrong backward
# ============================================================================================


class WrongSquare(Function):
    """y = x², with a deliberately wrong derivative 3x (the truth is 2x)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 3 * x


class RightSquare(WrongSquare):
    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 2 * x


class SlightlyWrongExp(Function):
    """eˣ with a derivative off by 1%: above gradcheck's rtol=1e-3, so it must be caught."""

    @staticmethod
    def forward(ctx, x):
        return np.exp(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * 1.01 * np.exp(ctx.parents[0].data)


def test_gradcheck_fails_on_a_wrong_backward():
    x = leaf(np.array([0.5, -1.5, 2.0]))
    assert gradcheck(RightSquare.apply, [x])
    with pytest.raises(AssertionError, match="disagree"):
        gradcheck(WrongSquare.apply, [x])
    assert gradcheck(WrongSquare.apply, [x], raise_exception=False) is False
    with pytest.raises(AssertionError, match="directional"):
        gradcheck(WrongSquare.apply, [x], fast=True)
    with pytest.raises(AssertionError):
        gradcheck(SlightlyWrongExp.apply, [x])


def test_gradcheck_refuses_float32():
    x = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda t: t * 2.0, [x])


def test_gradcheck_fast_mode_agrees_on_a_correct_op():
    rng = np.random.default_rng(0)
    x = leaf(rng.standard_normal((40, 30)))
    assert gradcheck(lambda t: (t.tanh() * t).sum(1), [x], fast=True)


# ============================================================================================
# element-wise binary ops: tensor ∘ tensor with broadcasting, tensor ∘ scalar, scalar ∘ tensor
# ============================================================================================

# name: (tinyllm op, NumPy reference, values of a, values of b)
BINARY = {
    "add": (operator.add, np.add, smooth(), smooth()),
    "sub": (operator.sub, np.subtract, smooth(), smooth()),
    "mul": (operator.mul, np.multiply, smooth(), smooth()),
    "div": (operator.truediv, np.divide, smooth(), st.one_of(smooth(-2, -0.5), smooth(0.5, 2))),
    "pow": (operator.pow, np.power, positive(0.5, 2.0), smooth(-2, 2)),
    "maximum": (ops.maximum, np.maximum, odd_grid(), even_grid()),
    "minimum": (ops.minimum, np.minimum, odd_grid(), even_grid()),
}


@pytest.mark.parametrize("name", BINARY)
@given(data=st.data(), bshapes=broadcastable())
def test_binary_broadcast(name, data, bshapes):
    op, ref, va, vb = BINARY[name]
    sa, sb = bshapes.input_shapes
    a = data.draw(arrays(sa, va), label="a")
    b = data.draw(arrays(sb, vb), label="b")
    out = op(Tensor(a), Tensor(b))
    assert out.shape == bshapes.result_shape
    close(out.data, ref(a, b), rtol=1e-12, atol=1e-12)
    gradcheck(op, [leaf(a), leaf(b)])


@pytest.mark.parametrize("name", BINARY)
@given(data=st.data(), shape=shapes())
def test_binary_with_python_scalar(name, data, shape):
    op, ref, va, vb = BINARY[name]
    a = data.draw(arrays(shape, va), label="a")
    b = data.draw(vb, label="scalar b")
    close(op(Tensor(a), b).data, ref(a, b), rtol=1e-12)
    gradcheck(lambda t: op(t, b), [leaf(a)])
    # scalar on the left: its values come from a's strategy, the tensor's from b's
    s = data.draw(va, label="scalar a")
    y = data.draw(arrays(shape, vb), label="b array")
    close(op(s, Tensor(y)).data, ref(s, y), rtol=1e-12)
    gradcheck(lambda t: op(s, t), [leaf(y)])


def test_ndarray_operand_on_the_left_defers_to_tensor():
    a = np.array([1.0, 2.0])
    x = leaf(np.array([3.0, 4.0]))
    out = a * x  # ndarray.__mul__ must hand over to Tensor.__rmul__
    assert isinstance(out, Tensor)
    out.sum().backward()
    close(x.grad, a)


@given(data=st.data(), bshapes=broadcastable(num_shapes=3))
def test_where(data, bshapes):
    sc, sa, sb = bshapes.input_shapes
    cond = data.draw(arrays(sc, smooth()), label="cond") > 0
    a = data.draw(arrays(sa), label="a")
    b = data.draw(arrays(sb), label="b")
    close(ops.where(cond, Tensor(a), Tensor(b)).data, np.where(cond, a, b))
    gradcheck(lambda x, y: ops.where(cond, x, y), [leaf(a), leaf(b)])
    gradcheck(lambda x: ops.where(cond, x, 0.5), [leaf(a)])


@given(
    data=st.data(),
    shape=shapes(),
    lo=st.one_of(st.none(), even_grid()),
    width=st.one_of(st.none(), st.integers(1, 16)),
)
def test_clamp(data, shape, lo, width):
    hi = None if width is None else (lo if lo is not None else -1.0) + width / 8
    assume(lo is not None or hi is not None)  # neither bound: an error, as in PyTorch
    x = data.draw(arrays(shape, odd_grid()))
    close(ops.clamp(Tensor(x), min=lo, max=hi).data, np.clip(x, lo, hi))
    gradcheck(lambda t: ops.clamp(t, min=lo, max=hi), [leaf(x)])


# ============================================================================================
# element-wise unary ops
# ============================================================================================

SQRT_2_OVER_PI = math.sqrt(2 / math.pi)

# name: (tinyllm op, NumPy reference, values)
UNARY = {
    "neg": (lambda t: -t, np.negative, smooth()),
    "exp": (lambda t: t.exp(), np.exp, smooth(-3, 3)),
    "log": (lambda t: t.log(), np.log, positive(0.1, 3)),
    "sqrt": (lambda t: t.sqrt(), np.sqrt, positive(0.1, 3)),
    "tanh": (lambda t: t.tanh(), np.tanh, smooth(-3, 3)),
    "sigmoid": (lambda t: t.sigmoid(), lambda x: 1 / (1 + np.exp(-x)), smooth(-6, 6)),
    "relu": (lambda t: t.relu(), lambda x: x * (x > 0), odd_grid()),
    "abs": (lambda t: abs(t), np.abs, odd_grid()),
    "gelu": (ops.gelu, lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2))), smooth(-4, 4)),
    "gelu_tanh": (
        lambda t: ops.gelu(t, approximate="tanh"),
        lambda x: 0.5 * x * (1 + np.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x**3))),
        smooth(-4, 4),
    ),
}
KERNEL_UNARY = ("gelu", "gelu_tanh")


@pytest.mark.parametrize("name", UNARY)
@given(data=st.data(), shape=shapes(min_dims=0))
def test_unary(name, data, shape):
    op, ref, values = UNARY[name]
    x = data.draw(arrays(shape, values))
    for backend in BACKENDS if name in KERNEL_UNARY else ("numpy",):
        with kernels.use_backend(backend):
            close(op(Tensor(x)).data, ref(x), rtol=1e-10, atol=1e-12)
            gradcheck(op, [leaf(x)])


def test_sigmoid_saturates_without_overflow():
    x = np.array([-800.0, -30.0, 0.0, 30.0, 800.0])
    with np.errstate(over="raise"):
        y = tl.Tensor(x).sigmoid().data
    close(y, [0.0, 1 / (1 + math.exp(30)), 0.5, 1 / (1 + math.exp(-30)), 1.0])


# ============================================================================================
# reductions
# ============================================================================================


def _axis_tuple(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    return tuple(a % ndim for a in ((axis,) if isinstance(axis, int) else axis))


REDUCTIONS = {
    "sum": (lambda t, ax, k: t.sum(ax, k), lambda x, ax, k: np.sum(x, ax, keepdims=k)),
    "mean": (lambda t, ax, k: t.mean(ax, k), lambda x, ax, k: np.mean(x, ax, keepdims=k)),
    "amax": (lambda t, ax, k: t.amax(ax, k), lambda x, ax, k: np.max(x, ax, keepdims=k)),
    "amin": (lambda t, ax, k: t.amin(ax, k), lambda x, ax, k: np.min(x, ax, keepdims=k)),
    "var": (
        lambda t, ax, k: t.var(ax, keepdim=k),
        lambda x, ax, k: np.var(x, ax, keepdims=k, ddof=1),
    ),
    "std": (
        lambda t, ax, k: t.std(ax, keepdim=k),
        lambda x, ax, k: np.std(x, ax, keepdims=k, ddof=1),
    ),
    "var_biased": (
        lambda t, ax, k: t.var(ax, keepdim=k, correction=0),
        lambda x, ax, k: np.var(x, ax, keepdims=k),
    ),
}


@pytest.mark.parametrize("name", REDUCTIONS)
@given(data=st.data(), shape=shapes(), keepdims=st.booleans())
def test_reduction(name, data, shape, keepdims):
    op, ref = REDUCTIONS[name]
    axis = data.draw(axes(len(shape)), label="axis")
    if name in ("var", "std"):
        assume(np.prod([shape[a] for a in _axis_tuple(axis, len(shape))]) > 1)
    # max/min: distinct values on a 1/8 grid, so there is no tie within ±ε (256 values: enough
    # for the largest array drawn, 4·4·8 elements before a strided view)
    x = data.draw(arrays(shape, odd_grid(16), unique=name in ("amax", "amin")), label="x")
    out = op(Tensor(x), axis, keepdims)
    close(out.data, ref(x, axis, keepdims), rtol=1e-12, atol=1e-12)
    gradcheck(lambda t: op(t, axis, keepdims), [leaf(x)])


def test_amax_ties_share_the_gradient():
    x = leaf(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]]))
    x.amax(axis=1).sum().backward()
    close(x.grad, [[0, 0.5, 0.5], [1, 0, 0]])  # PyTorch's amax convention: ties share evenly


# ============================================================================================
# shape ops
# ============================================================================================


@given(data=st.data(), shape=shapes(max_dims=4))
def test_reshape(data, shape):
    x = data.draw(arrays(shape))
    size = x.size
    target = data.draw(
        st.sampled_from(
            [(size,), (-1,), shape[::-1], (1, size, 1), (-1, shape[-1]), (shape[0], -1)]
        ),
        label="target",
    )
    close(Tensor(x).reshape(target).data, np.reshape(x, target))
    gradcheck(lambda t: t.reshape(*target), [leaf(x)])


@given(data=st.data(), shape=shapes(min_dims=2, max_dims=4))
def test_transpose_and_permute(data, shape):
    nd = len(shape)
    x = data.draw(arrays(shape))
    d0, d1 = data.draw(st.integers(-nd, nd - 1)), data.draw(st.integers(-nd, nd - 1))
    close(Tensor(x).transpose(d0, d1).data, np.swapaxes(x, d0, d1))
    gradcheck(lambda t: t.transpose(d0, d1), [leaf(x)])
    perm = data.draw(st.permutations(range(nd)), label="perm")
    close(Tensor(x).permute(*perm).data, np.transpose(x, perm))
    gradcheck(lambda t: t.permute(*perm), [leaf(x)])
    close(Tensor(x).T.data, x.T)


@given(data=st.data(), bshapes=broadcastable(num_shapes=2, max_dims=3))
def test_expand(data, bshapes):
    small, other = bshapes.input_shapes
    target = bshapes.result_shape
    assume(len(small) <= len(target))
    x = data.draw(arrays(small))
    close(Tensor(x).expand(*target).data, np.broadcast_to(x, target))
    gradcheck(lambda t: t.expand(*target), [leaf(x)])
    gradcheck(lambda t: t.broadcast_to(target) * 1.0, [leaf(x)])


@given(data=st.data(), shape=shapes(max_dims=3), n=st.integers(1, 3))
def test_concatenate_and_stack(data, shape, n):
    nd = len(shape)
    axis = data.draw(st.integers(-nd, nd - 1), label="axis")
    parts = []
    for i in range(n):
        s = list(shape)
        s[axis] = data.draw(st.integers(1, 3), label=f"size {i}")
        parts.append(data.draw(arrays(tuple(s)), label=f"part {i}"))
    close(
        ops.concatenate([Tensor(p) for p in parts], axis=axis).data,
        np.concatenate(parts, axis=axis),
    )
    gradcheck(lambda *ts: ops.concatenate(ts, axis=axis), [leaf(p) for p in parts])
    same = [data.draw(arrays(shape), label=f"stack {i}") for i in range(n)]
    sax = data.draw(st.integers(-nd - 1, nd), label="stack axis")
    close(ops.stack([Tensor(p) for p in same], axis=sax).data, np.stack(same, axis=sax))
    gradcheck(lambda *ts: ops.stack(ts, axis=sax), [leaf(p) for p in same])


@given(data=st.data(), shape=shapes(max_dims=3, max_side=5))
def test_split_and_chunk(data, shape):
    nd = len(shape)
    axis = data.draw(st.integers(0, nd - 1), label="axis")
    n = shape[axis]
    x = data.draw(arrays(shape))
    size = data.draw(st.integers(1, n), label="split size")
    pieces = Tensor(x).split(size, axis)
    expected = np.split(x, list(range(size, n, size)), axis=axis)
    assert len(pieces) == len(expected)
    for p, e in zip(pieces, expected):
        close(p.data, e)
    # sum the pieces with different weights, so each piece's gradient is distinguishable
    gradcheck(
        lambda t: ops.concatenate([p * (i + 1.0) for i, p in enumerate(t.split(size, axis))], axis),
        [leaf(x)],
    )
    chunks = data.draw(st.integers(1, n), label="chunks")
    got = Tensor(x).chunk(chunks, axis)
    step = -(-n // chunks)  # PyTorch: every chunk has ceil(n / chunks) elements but the last
    for c, e in zip(got, np.split(x, list(range(step, n, step)), axis=axis)):
        close(c.data, e)
    gradcheck(lambda t: t.chunk(chunks, axis)[-1] * 2.0, [leaf(x)])
    sections = data.draw(st.lists(st.integers(0, n), min_size=1, max_size=3), label="cuts")
    cuts = sorted(sections)
    sizes = [b - a for a, b in zip([0] + cuts, cuts + [n])]
    gradcheck(
        lambda t: ops.stack([p.sum() * (i + 1.0) for i, p in enumerate(ops.split(t, sizes, axis))]),
        [leaf(x)],
    )


@st.composite
def basic_index(draw, shape):
    """A tuple of ints and slices (negative steps too), possibly with an Ellipsis."""
    index = []
    for n in shape:
        kind = draw(st.sampled_from(["slice", "int", "all"]))
        if kind == "int":
            index.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            start = draw(st.one_of(st.none(), st.integers(-n, n)))
            stop = draw(st.one_of(st.none(), st.integers(-n, n)))
            step = draw(st.sampled_from([None, 1, 2, -1, -2]))
            index.append(slice(start, stop, step))
        else:
            index.append(slice(None))
    if draw(st.booleans()) and len(index) > 1:
        index = [Ellipsis] + index[1:]
    return tuple(index)


@given(data=st.data(), shape=shapes())
def test_getitem_basic(data, shape):
    x = data.draw(arrays(shape))
    index = data.draw(basic_index(shape), label="index")
    expected = x[index]
    assume(expected.size > 0)
    close(Tensor(x)[index].data, expected)
    gradcheck(lambda t: t[index] * 1.0, [leaf(x)])


@given(data=st.data(), shape=shapes(max_dims=3))
def test_getitem_integer_arrays_with_repeats(data, shape):
    x = data.draw(arrays(shape))
    n0 = shape[0]
    # few distinct values, many draws: repeated indices are the rule, negative ones too
    idx = np.array(data.draw(st.lists(st.integers(-n0, n0 - 1), min_size=1, max_size=6)))
    close(Tensor(x)[idx].data, x[idx])
    gradcheck(lambda t: t[idx], [leaf(x)])
    if len(shape) >= 2:
        # two integer arrays broadcast against each other, then a slice
        n1 = shape[1]
        idx1 = np.array(data.draw(st.lists(st.integers(0, n1 - 1), min_size=1, max_size=3)))
        pair = (idx[:, None], idx1[None, :])
        close(Tensor(x)[pair].data, x[pair])
        gradcheck(lambda t: t[pair], [leaf(x)])
        mixed = (slice(None), idx1)
        gradcheck(lambda t: t[mixed], [leaf(x)])
        close(Tensor(x)[mixed].data, x[mixed])


@given(data=st.data(), shape=shapes(max_dims=3))
def test_getitem_boolean_mask(data, shape):
    x = data.draw(arrays(shape))
    mask = data.draw(arrays(shape[:1]), label="mask") > 0
    close(Tensor(x)[mask].data, x[mask])
    gradcheck(lambda t: t[mask] * 1.0, [leaf(x)])


def test_repeated_index_accumulates_by_hand():
    x = leaf(np.array([10.0, 20.0, 30.0]))
    x[np.array([0, 2, 0, 0])].sum().backward()
    close(x.grad, [3.0, 0.0, 1.0])
    y = leaf(np.zeros((2, 2)))
    y[[1, 1], [0, 0]].sum().backward()  # Python lists work as integer arrays
    close(y.grad, [[0, 0], [2, 0]])


@given(
    data=st.data(),
    bshapes=broadcastable(num_shapes=2, min_dims=1),
    value=st.sampled_from([0.0, -1e9, 2.5, -np.inf]),
)
def test_masked_fill(data, bshapes, value):
    sx, sm = bshapes.input_shapes
    assume(np.broadcast_shapes(sx, sm) == tuple(sx))
    x = data.draw(arrays(sx))
    mask = data.draw(arrays(sm), label="mask") > 0
    close(Tensor(x).masked_fill(mask, value).data, np.where(mask, value, x))
    if abs(value) < 10:
        gradcheck(lambda t: t.masked_fill(mask, value), [leaf(x)])
    else:  # −1e9 or −inf in ⟨u, y⟩ would swamp the finite differences: check e^y instead
        gradcheck(lambda t: t.masked_fill(mask, value).exp(), [leaf(x)])


# ============================================================================================
# matmul and linear
# ============================================================================================


@given(
    data=st.data(),
    batch=broadcastable(num_shapes=2, max_dims=2),
    mkn=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
    a_vec=st.booleans(),
    b_vec=st.booleans(),
)
def test_matmul(data, batch, mkn, a_vec, b_vec):
    m, k, n = mkn
    ba, bb = batch.input_shapes
    sa = (k,) if a_vec else ba + (m, k)
    sb = (k,) if b_vec else bb + (k, n)
    a = data.draw(arrays(sa), label="a")
    b = data.draw(arrays(sb), label="b")
    # Independent reference: promote 1-D operands, broadcast the batch, contract with einsum.
    a2 = a[None, :] if a_vec else a
    b2 = b[:, None] if b_vec else b
    lead = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    ref = np.einsum(
        "...ik,...kj->...ij",
        np.broadcast_to(a2, lead + a2.shape[-2:]),
        np.broadcast_to(b2, lead + b2.shape[-2:]),
    )
    if b_vec:
        ref = ref[..., 0]
    if a_vec:
        ref = ref[..., 0, :] if not b_vec else ref[..., 0]
    out = Tensor(a) @ Tensor(b)
    assert out.shape == ref.shape
    close(out.data, ref, rtol=1e-12, atol=1e-12)
    gradcheck(operator.matmul, [leaf(a), leaf(b)])


@given(
    data=st.data(),
    lead=shapes(min_dims=0, max_dims=2, max_side=3),
    n_in=st.integers(1, 4),
    n_out=st.integers(1, 4),
    bias=st.booleans(),
)
def test_linear(data, lead, n_in, n_out, bias):
    x = data.draw(arrays(lead + (n_in,)), label="x")  # 1-D, 2-D or 3-D input
    w = data.draw(arrays((n_out, n_in)), label="weight")
    b = data.draw(arrays((n_out,)), label="bias") if bias else None
    ref = np.einsum("...i,oi->...o", x, w) + (b if bias else 0)
    out = ops.linear(Tensor(x), Tensor(w), Tensor(b) if bias else None)
    close(out.data, ref, rtol=1e-12, atol=1e-12)
    if bias:
        gradcheck(ops.linear, [leaf(x), leaf(w), leaf(b)])
    else:
        gradcheck(ops.linear, [leaf(x), leaf(w)])


# ============================================================================================
# softmax family, layer_norm
# ============================================================================================


def np_log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data(), shape=shapes(max_dims=3), shift=st.sampled_from([0.0, 500.0, -500.0]))
def test_softmax_and_log_softmax(backend, data, shape, shift):
    nd = len(shape)
    axis = data.draw(st.integers(-nd, nd - 1), label="axis")
    x = data.draw(arrays(shape, smooth(-3, 3))) + shift  # large offsets must not overflow
    with kernels.use_backend(backend):
        close(Tensor(x).softmax(axis).data, np.exp(np_log_softmax(x, axis)), atol=1e-12)
        close(Tensor(x).log_softmax(axis).data, np_log_softmax(x, axis), atol=1e-9)
        gradcheck(lambda t: t.softmax(axis), [leaf(x)])
        gradcheck(lambda t: t.log_softmax(axis), [leaf(x)])


@pytest.mark.parametrize("backend", BACKENDS)
@given(
    data=st.data(),
    lead=shapes(min_dims=0, max_dims=2, max_side=3),
    norm=shapes(min_dims=1, max_dims=2, min_side=2, max_side=4),
    affine=st.sampled_from(["none", "weight", "both"]),
    eps=st.sampled_from([1e-5, 1e-2]),
)
def test_layer_norm(backend, data, lead, norm, affine, eps):
    # distinct grid values: every normalized group has a clearly nonzero variance
    x = data.draw(arrays(lead + norm, odd_grid(20), unique=True), label="x")
    w = data.draw(arrays(norm), label="weight") if affine != "none" else None
    b = data.draw(arrays(norm), label="bias") if affine == "both" else None
    ax = tuple(range(x.ndim - len(norm), x.ndim))
    mu = x.mean(axis=ax, keepdims=True)
    ref = (x - mu) / np.sqrt(((x - mu) ** 2).mean(axis=ax, keepdims=True) + eps)
    ref = ref * (w if w is not None else 1) + (b if b is not None else 0)
    leaves = [leaf(x)] + [leaf(p) for p in (w, b) if p is not None]

    def fn(t, *params):
        weight = params[0] if params else None
        bias = params[1] if len(params) > 1 else None
        return ops.layer_norm(t, norm, weight, bias, eps=eps)

    with kernels.use_backend(backend):
        close(fn(*[Tensor(p.data) for p in leaves]).data, ref, rtol=1e-9, atol=1e-10)
        gradcheck(fn, leaves)


# ============================================================================================
# embedding, dropout
# ============================================================================================


@pytest.mark.parametrize("backend", BACKENDS)
@given(
    data=st.data(),
    vocab=st.integers(1, 5),
    dim=st.integers(1, 4),
    ids_shape=shapes(min_dims=1, max_dims=2, max_side=4),
)
def test_embedding(backend, data, vocab, dim, ids_shape):
    ids = data.draw(arrays(ids_shape, st.integers(0, vocab - 1).map(float)), label="ids").astype(
        np.int64
    )  # repeats are frequent
    w = data.draw(arrays((vocab, dim)), label="weight")
    with kernels.use_backend(backend):
        close(ops.embedding(ids, Tensor(w)).data, w[ids])
        gradcheck(lambda t: ops.embedding(ids, t), [leaf(w)])
        # padding_idx: same forward, that row's gradient is zero, the others unchanged
        pad = data.draw(st.integers(0, vocab - 1), label="padding_idx")
        u = np.random.default_rng(0).standard_normal(ids.shape + (dim,))
        full, padded = leaf(w), leaf(w)
        ops.embedding(ids, full).backward(u)
        out = ops.embedding(ids, padded, padding_idx=pad)
        close(out.data, w[ids])
        out.backward(u)
        expected = full.grad.copy()
        expected[pad] = 0
        close(padded.grad, expected)


def test_embedding_repeated_ids_by_hand():
    w = leaf(np.zeros((3, 2)))
    ops.embedding(np.array([[2, 0, 2], [2, 1, 0]]), w).sum().backward()
    close(w.grad, [[2, 2], [1, 1], [3, 3]])


@given(
    data=st.data(),
    shape=shapes(max_side=5),
    p=st.sampled_from([0.1, 0.5, 0.8]),
    seed=st.integers(0, 2**32 - 1),
)
def test_dropout_seeded(data, shape, p, seed):
    x = data.draw(arrays(shape, odd_grid()), label="x")  # nonzero: a zero output ⇔ dropped
    out = ops.dropout(Tensor(x), p, generator=np.random.default_rng(seed))
    keep = out.data != 0
    close(out.data, np.where(keep, x / (1 - p), 0.0))
    # the same seed gives the same mask
    again = ops.dropout(Tensor(x), p, generator=np.random.default_rng(seed))
    close(again.data, out.data)
    # backward: ȳ ⊙ mask / (1 − p), with the mask of *this* forward
    t = leaf(x)
    y = ops.dropout(t, p, generator=np.random.default_rng(seed))
    u = np.random.default_rng(1).standard_normal(shape)
    y.backward(u)
    close(t.grad, np.where(keep, u / (1 - p), 0.0))
    gradcheck(lambda t: ops.dropout(t, p, generator=np.random.default_rng(seed)), [leaf(x)])


def test_dropout_rate_and_modes():
    x = Tensor(np.ones(20_000))
    kept = (ops.dropout(x, 0.3, generator=np.random.default_rng(7)).data != 0).mean()
    assert abs(kept - 0.7) < 4 * math.sqrt(0.7 * 0.3 / 20_000)  # a 4σ band, fixed seed
    a = ops.dropout(x, 0.3, generator=np.random.default_rng(1)).data
    b = ops.dropout(x, 0.3, generator=np.random.default_rng(2)).data
    assert not np.array_equal(a, b)
    assert ops.dropout(x, 0.3, training=False) is x
    assert ops.dropout(x, 0.0) is x
    close(ops.dropout(x, 1.0).data, 0.0)
    tl.manual_seed(5)
    c = ops.dropout(x, 0.3).data
    tl.manual_seed(5)
    close(ops.dropout(x, 0.3).data, c)  # default generator is seeded


# ============================================================================================
# cross_entropy
# ============================================================================================


def np_cross_entropy(logits, targets, ignore_index, reduction):
    """logits (N, C, d…) or (N, C), class axis 1, as in PyTorch."""
    logp = np_log_softmax(logits, 1)
    valid = targets != ignore_index
    safe = np.where(valid, targets, 0)
    picked = np.take_along_axis(logp, np.expand_dims(safe, 1), axis=1)[:, 0]
    loss = np.where(valid, -picked, 0.0)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / valid.sum()


@pytest.mark.parametrize("backend", BACKENDS)
@given(
    data=st.data(),
    n=st.integers(1, 4),
    c=st.integers(1, 5),
    extra=shapes(min_dims=0, max_dims=2, max_side=3),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    ignore_index=st.sampled_from([-100, 0, 2]),
    shift=st.sampled_from([0.0, 1e3]),
)
def test_cross_entropy(backend, data, n, c, extra, reduction, ignore_index, shift):
    logits = data.draw(arrays((n, c) + extra, smooth(-4, 4)), label="logits") + shift
    choices = st.one_of(st.integers(0, c - 1), st.just(ignore_index))
    targets = data.draw(arrays((n,) + extra, choices.map(float)), label="targets").astype(np.int64)
    valid = targets != ignore_index
    assume(reduction != "mean" or valid.any())
    ref = np_cross_entropy(logits, targets, ignore_index, reduction)
    with kernels.use_backend(backend):
        out = ops.cross_entropy(
            Tensor(logits), targets, ignore_index=ignore_index, reduction=reduction
        )
        assert out.shape == ref.shape
        close(out.data, ref, rtol=1e-10, atol=1e-10)
        gradcheck(
            lambda t: ops.cross_entropy(t, targets, ignore_index=ignore_index, reduction=reduction),
            [leaf(logits)],
        )


def test_cross_entropy_single_row_and_all_ignored():
    z = np.array([1.0, 2.0, 0.5])
    close(ops.cross_entropy(Tensor(z), np.array(1)).data, -np_log_softmax(z, 0)[1])
    gradcheck(lambda t: ops.cross_entropy(t, np.array(1)), [leaf(z)])
    # mean over zero targets is NaN, as in PyTorch
    out = ops.cross_entropy(Tensor(z[None]), np.array([-100]))
    assert np.isnan(out.item())


# ============================================================================================
# scaled_dot_product_attention
# ============================================================================================


def np_attention(q, k, v, bias, scale):
    s = np.einsum("...le,...se->...ls", q, k) * scale
    if bias is not None:
        s = s + bias
    m = s.max(axis=-1, keepdims=True)
    dead = np.isneginf(m)  # every key masked: the row's output is zero
    e = np.exp(s - np.where(dead, 0, m))
    p = np.where(dead, 0, e / np.where(dead, 1, e.sum(axis=-1, keepdims=True)))
    return np.einsum("...ls,...sv->...lv", p, v)


@pytest.mark.parametrize("backend", BACKENDS)
@given(
    data=st.data(),
    batch=broadcastable(num_shapes=3, max_dims=2, max_side=2),
    l=st.integers(1, 4),
    s=st.integers(1, 4),
    e=st.integers(1, 3),
    ev=st.integers(1, 3),
    mask_kind=st.sampled_from(["none", "causal", "bool", "additive", "causal+bool"]),
    scale=st.sampled_from([None, 0.7]),
)
def test_scaled_dot_product_attention(backend, data, batch, l, s, e, ev, mask_kind, scale):
    bq, bk, bv = batch.input_shapes
    q = data.draw(arrays(bq + (l, e)), label="q")
    k = data.draw(arrays(bk + (s, e)), label="k")
    v = data.draw(arrays(bv + (s, ev)), label="v")
    causal = mask_kind.startswith("causal")
    mask = None
    bias = np.where(np.tril(np.ones((l, s), bool)), 0.0, -np.inf) if causal else None
    if "bool" in mask_kind:
        mask = data.draw(arrays((l, s), smooth()), label="mask") > -0.5  # some rows fully masked
        add = np.where(mask, 0.0, -np.inf)
        bias = add if bias is None else bias + add
    elif mask_kind == "additive":
        mask = data.draw(arrays((l, s), smooth(-3, 3)), label="additive mask")
        bias = mask
    sc = 1 / math.sqrt(e) if scale is None else scale

    def fn(q, k, v):
        return ops.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal, scale=scale
        )

    with kernels.use_backend(backend):
        out = fn(Tensor(q), Tensor(k), Tensor(v))
        close(out.data, np_attention(q, k, v, bias, sc), rtol=1e-10, atol=1e-12)
        gradcheck(fn, [leaf(q), leaf(k), leaf(v)])


@pytest.mark.parametrize("backend", BACKENDS)
def test_attention_fully_masked_rows_are_zero_with_zero_gradient(backend):
    rng = np.random.default_rng(0)
    q, k, v = (leaf(rng.standard_normal(s)) for s in ((3, 2), (4, 2), (4, 5)))
    mask = np.ones((3, 4), bool)
    mask[1] = False  # query 1 may attend to nothing
    with kernels.use_backend(backend):
        out = ops.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        close(out.data[1], 0.0)
        assert np.isfinite(out.data).all()
        out.backward(rng.standard_normal(out.shape))
    close(q.grad[1], 0.0)
    assert np.isfinite(k.grad).all() and np.isfinite(v.grad).all()


@given(data=st.data(), l=st.integers(1, 3), s=st.integers(1, 3), causal=st.booleans())
def test_attention_learned_additive_mask_gets_a_gradient(data, l, s, causal):
    q = data.draw(arrays((2, l, 2)))
    k = data.draw(arrays((2, s, 2)))
    v = data.draw(arrays((2, s, 3)))
    m = data.draw(arrays((l, s)))

    def fn(q, k, v, m):
        return ops.scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=causal)

    gradcheck(fn, [leaf(q), leaf(k), leaf(v), leaf(m)])
    mask = leaf(m)
    fn(Tensor(q), Tensor(k), Tensor(v), mask).sum().backward()
    assert mask.grad is not None and mask.grad.shape == (l, s)  # never silently dropped


@settings(max_examples=15)
@given(
    data=st.data(),
    l=st.integers(1, 4),
    s=st.integers(1, 4),
    p=st.sampled_from([0.2, 0.5]),
    seed=st.integers(0, 1000),
    causal=st.booleans(),
)
def test_attention_dropout_seeded(data, l, s, p, seed, causal):
    q = data.draw(arrays((2, l, 3)))
    k = data.draw(arrays((2, s, 3)))
    v = data.draw(arrays((2, s, 2)))

    def fn(q, k, v, seed=seed):
        return ops.scaled_dot_product_attention(
            q, k, v, dropout_p=p, is_causal=causal, generator=np.random.default_rng(seed)
        )

    a = fn(Tensor(q), Tensor(k), Tensor(v)).data
    close(fn(Tensor(q), Tensor(k), Tensor(v)).data, a)  # same seed, same output
    gradcheck(fn, [leaf(q), leaf(k), leaf(v)])  # fixed mask: a smooth map
    # Each output row is a combination of v rows with weights P ⊙ keep / (1 − p); with v = I
    # (S×S) the output *is* that weight matrix, so its entries are 0 or P/(1 − p).
    eye = np.broadcast_to(np.eye(s), (2, s, s))
    w = fn(Tensor(q), Tensor(k), Tensor(eye)).data
    p_full = np_attention(
        q,
        k,
        eye,
        np.where(np.tril(np.ones((l, s), bool)), 0, -np.inf) if causal else None,
        1 / math.sqrt(3),
    )
    dropped = np.isclose(w, 0)
    close(w[~dropped], p_full[~dropped] / (1 - p), rtol=1e-12)


# ============================================================================================
# float32: the kernels' float32 paths, through the ops, against the same ops in float64
# ============================================================================================

KERNEL_OPS = {
    "gelu": lambda x, w: ops.gelu(x) * w,
    "gelu_tanh": lambda x, w: ops.gelu(x, approximate="tanh") * w,
    "softmax": lambda x, w: x.softmax(0) * w,
    "log_softmax": lambda x, w: x.log_softmax(-1) * w,
    "layer_norm": lambda x, w: ops.layer_norm(x, x.shape[-1], w, w * 0.5),
    "cross_entropy": lambda x, w: ops.cross_entropy(
        x * w, np.arange(x.shape[0]) % x.shape[1], reduction="sum"
    ),
    "embedding": lambda x, w: ops.embedding(np.array([[0, 2], [2, 2]]), x * w),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", KERNEL_OPS)
@settings(max_examples=10)
@given(data=st.data(), rows=st.integers(3, 6), cols=st.integers(1, 7))
def test_float32_matches_float64(backend, name, data, rows, cols):
    x = data.draw(arrays((rows, cols), smooth(-3, 3)), label="x")  # possibly non-contiguous
    w = data.draw(arrays((cols,), smooth(0.5, 2)), label="w")
    results = {}
    with kernels.use_backend(backend):
        for dt in (np.float32, np.float64):
            xt, wt = (
                Tensor(x.astype(dt), requires_grad=True),
                Tensor(w.astype(dt), requires_grad=True),
            )
            out = KERNEL_OPS[name](xt, wt)
            out.backward(np.ones(out.shape, dtype=dt))
            assert out.dtype == xt.grad.dtype == wt.grad.dtype == dt
            results[dt] = (out.data, xt.grad, wt.grad)
    for got, want in zip(results[np.float32], results[np.float64]):
        close(got, want, rtol=2e-4, atol=2e-4 * max(1.0, np.abs(want).max()))


# ============================================================================================
# composition: random chains of ops, checked end to end
# ============================================================================================

# Each link maps a (2, 3) tensor to a (2, 3) tensor: (name, tinyllm fn, NumPy fn).
# `W` (3, 3), `w` (3,) and `b` (2, 1) are extra leaves of the chain.
ROW_MASK = np.array([[True, False, True], [False, False, True]])
LINKS = [
    ("tanh", lambda x, P: x.tanh(), lambda x, P: np.tanh(x)),
    ("sigmoid", lambda x, P: x.sigmoid(), lambda x, P: 1 / (1 + np.exp(-x))),
    ("gelu", lambda x, P: ops.gelu(x), lambda x, P: 0.5 * x * (1 + erf(x / math.sqrt(2)))),
    ("softmax0", lambda x, P: x.softmax(0), lambda x, P: np.exp(np_log_softmax(x, 0))),
    ("log_softmax1", lambda x, P: x.log_softmax(1), lambda x, P: np_log_softmax(x, 1)),
    (
        "layer_norm",
        lambda x, P: ops.layer_norm(x, 3, eps=0.1),
        lambda x, P: (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 0.1),
    ),
    ("scale_w", lambda x, P: x * P["w"], lambda x, P: x * P["w"]),
    ("shift_b", lambda x, P: x + P["b"], lambda x, P: x + P["b"]),
    ("matmul_W", lambda x, P: x @ P["W"], lambda x, P: x @ P["W"]),
    ("linear", lambda x, P: ops.linear(x, P["W"], P["w"]), lambda x, P: x @ P["W"].T + P["w"]),
    (
        "center",
        lambda x, P: x - x.mean(1, keepdims=True),
        lambda x, P: x - x.mean(1, keepdims=True),
    ),
    ("rational", lambda x, P: x / (x * x + 1.0), lambda x, P: x / (x * x + 1)),
    ("softplus", lambda x, P: (x.exp() + 1.0).log(), lambda x, P: np.log1p(np.exp(x))),
    ("sqrt", lambda x, P: (x * x + 0.5).sqrt(), lambda x, P: np.sqrt(x * x + 0.5)),
    ("square", lambda x, P: 0.5 * x**2, lambda x, P: 0.5 * x**2),
    ("rows_swapped", lambda x, P: x[np.array([1, 0])], lambda x, P: x[[1, 0]]),
    ("T_reshape", lambda x, P: x.T.reshape(2, 3), lambda x, P: x.T.reshape(2, 3)),
    (
        "cat_halves",
        lambda x, P: ops.concatenate([x[:, 2:], x[:, :2]], 1),
        lambda x, P: np.concatenate([x[:, 2:], x[:, :2]], 1),
    ),
    (
        "masked",
        lambda x, P: x.masked_fill(ROW_MASK, 0.25),
        lambda x, P: np.where(ROW_MASK, 0.25, x),
    ),
    (
        "where",
        lambda x, P: ops.where(ROW_MASK, x, x * P["w"]),
        lambda x, P: np.where(ROW_MASK, x, x * P["w"]),
    ),
    ("stack_sum", lambda x, P: ops.stack([x, x.tanh()], 0).sum(0), lambda x, P: x + np.tanh(x)),
    (
        "sum_back",
        lambda x, P: x.sum(0, keepdims=True) * x,
        lambda x, P: x.sum(0, keepdims=True) * x,
    ),
    (
        "attention",
        lambda x, P: ops.scaled_dot_product_attention(x, x, x, is_causal=True),
        lambda x, P: np_attention(
            x, x, x, np.where(np.tril(np.ones((2, 2), bool)), 0, -np.inf), 1 / math.sqrt(3)
        ),
    ),
]


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=25)
@given(data=st.data(), chain=st.lists(st.sampled_from(LINKS), min_size=2, max_size=6))
def test_random_chain_of_ops(backend, data, chain):
    x = data.draw(arrays((2, 3), smooth(-1.5, 1.5)), label="x")
    params = {
        "W": data.draw(arrays((3, 3), smooth(-1, 1)), label="W"),
        "w": data.draw(arrays((3,), smooth(-1.5, 1.5)), label="w"),
        "b": data.draw(arrays((2, 1)), label="b"),
    }
    names = list(params)

    def fn(t, *ps):
        P = dict(zip(names, ps))
        for _, link, _ in chain:
            t = link(t, P)
        return t

    ref = x
    for _, _, np_link in chain:
        ref = np_link(ref, params)
    with kernels.use_backend(backend):
        close(fn(Tensor(x), *[Tensor(p) for p in params.values()]).data, ref, rtol=1e-9, atol=1e-10)
        gradcheck(fn, [leaf(x)] + [leaf(p) for p in params.values()], atol=1e-5, rtol=1e-3)
