"""Autograd mechanics of tinyllm.Tensor: what backward() promises, independent of any one op.

Each test states an expected value worked out by hand (the chain rule on a tiny expression),
not copied from the code: gradients accumulate, a long chain does not recurse, a spent graph
refuses a second backward, no_grad records nothing, and float32 stays float32 everywhere.
"""

import gc
import sys
import weakref

import numpy as np
import pytest

import tinyllm as tl
from tinyllm import ops
from tinyllm.engine import GraphObserver, Tensor, enable_grad, no_grad, observe, topological_sort


def f64(values, requires_grad=True):
    return Tensor(np.asarray(values, dtype=np.float64), requires_grad=requires_grad)


# ---- accumulation -------------------------------------------------------------------------


def test_grad_accumulates_over_two_backward_calls():
    x = f64([1.0, -2.0, 3.0])
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    # d/dx (3x) = 3, then d/dx x² = 2x adds on top.
    np.testing.assert_allclose(x.grad, 3.0 + 2 * x.data)


def test_tensor_used_twice_receives_both_contributions():
    x = f64([0.5, 2.0])
    y = x * x + x  # dy/dx = 2x + 1 — x is used three times
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 1)


def test_diamond_graph():
    # a = 2x feeds two branches that meet again: L = Σ a² + Σ exp(a)
    x = f64([0.1, -0.3])
    a = x * 2.0
    loss = (a * a).sum() + a.exp().sum()
    loss.backward()
    np.testing.assert_allclose(x.grad, 2 * (2 * a.data + np.exp(a.data)))


def test_zero_grad_resets():
    x = f64([1.0])
    (x * 5.0).sum().backward()
    x.zero_grad()
    assert x.grad is None
    (x * 2.0).sum().backward()
    np.testing.assert_allclose(x.grad, [2.0])


def test_chain_of_100k_ops_has_no_recursion_error():
    limit = sys.getrecursionlimit()
    c = 1.00001
    x = f64([1.0])
    y = x
    for _ in range(100_000):
        y = y * c
    y.sum().backward()
    # dy/dx = c^100000 = e^(100000·ln c) ≈ e
    np.testing.assert_allclose(x.grad, [c**100_000], rtol=1e-9)
    assert sys.getrecursionlimit() == limit  # no cheating by raising the limit
    assert len(topological_sort(x * 2.0)) == 2


# ---- freed graphs -----------------------------------------------------------------------------


def test_backward_twice_through_freed_graph_raises():
    x = f64([1.0, 2.0])
    loss = (x.exp() * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        loss.backward()


def test_retain_graph_allows_second_backward():
    x = f64([1.0, 2.0])
    loss = (x.exp() * x).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    # d/dx (x eˣ) = (1 + x) eˣ, accumulated twice
    np.testing.assert_allclose(x.grad, 2 * (1 + x.data) * np.exp(x.data))
    with pytest.raises(RuntimeError, match="freed"):
        loss.backward()


class SaveCounter(GraphObserver):
    """Counts saved arrays and keeps weak references to them."""

    def __init__(self):
        self.saved = 0
        self.released = 0
        self.refs = []

    def on_save(self, ctx, arrays):
        if arrays:
            self.saved += 1
            self.refs += [weakref.ref(a) for a in arrays if isinstance(a, np.ndarray)]

    def on_release(self, ctx):
        self.released += 1


def test_saved_arrays_are_released_after_backward():
    x = f64(np.linspace(-1, 1, 8))
    with observe(SaveCounter()) as counter:
        loss = (x.exp().tanh() * x.sigmoid()).sum()
        assert counter.saved == 4 and counter.released == 0  # exp, tanh, sigmoid, mul
        loss.backward()
    assert counter.released == counter.saved
    assert loss._ctx.saved_tensors == ()
    gc.collect()
    # Every saved intermediate is gone; only x's own array (kept alive by x) may survive.
    alive = [r() for r in counter.refs if r() is not None]
    assert all(a is x.data for a in alive)


def test_retained_graph_is_released_by_the_last_backward():
    x = f64([0.3, 0.7])
    with observe(SaveCounter()) as counter:
        loss = (x.tanh() * x).sum()
        loss.backward(retain_graph=True)
        assert counter.released == 0
        loss.backward()
    assert counter.released == counter.saved == 2


def test_no_grad_saves_nothing_that_outlives_the_op():
    x = f64([0.3, 0.7])
    with observe(SaveCounter()) as counter, no_grad():
        y = x.tanh().exp()
    assert counter.released == counter.saved
    assert y._ctx is None


# ---- recording switches -----------------------------------------------------------------------


def test_no_grad_context_manager():
    x = f64([1.0, 2.0])
    with no_grad():
        y = x * 2.0
        assert not tl.is_grad_enabled()
    assert tl.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_no_grad_restores_state_after_exception_and_nests():
    with pytest.raises(ValueError):
        with no_grad():
            raise ValueError("boom")
    assert tl.is_grad_enabled()
    x = f64([1.0])
    with no_grad():
        with enable_grad():
            y = x * 2.0
        z = x * 2.0
    assert y.requires_grad and not z.requires_grad


def test_no_grad_as_decorator():
    @no_grad()
    def double(t):
        assert not tl.is_grad_enabled()
        return t * 2.0

    x = f64([1.0])
    y = double(x)
    assert not y.requires_grad
    assert tl.is_grad_enabled()
    np.testing.assert_allclose(y.data, [2.0])


def test_detach_shares_data_and_stops_gradient():
    x = f64([1.5, -2.0])
    d = x.detach()
    assert np.shares_memory(d.data, x.data)
    assert not d.requires_grad and d.is_leaf
    (x * d).sum().backward()  # d is a constant: d/dx (x·c) = c
    np.testing.assert_allclose(x.grad, x.data)


def test_requires_grad_propagation():
    x = f64([1.0, 2.0])
    c = f64([3.0, 4.0], requires_grad=False)
    assert (x + c).requires_grad
    assert not (c * c).requires_grad
    assert not (c + 1.0).requires_grad
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_allclose(x.grad, c.data)


def test_retain_grad_on_intermediate():
    x = f64([1.0, -3.0])
    h = x * 2.0
    h.retain_grad()
    g = h * 1.0  # not retained
    (g * g).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * h.data)  # d/dh Σh² = 2h
    assert g.grad is None
    np.testing.assert_allclose(x.grad, 2 * 2 * h.data)


def test_backward_on_non_scalar_needs_a_gradient():
    x = f64([[1.0, 2.0]])
    y = x * 3.0
    with pytest.raises(RuntimeError, match=r"non-scalar.*\(1, 2\)"):
        y.backward()
    y.backward(np.array([[1.0, 10.0]]))
    np.testing.assert_allclose(x.grad, [[3.0, 30.0]])


def test_backward_gradient_of_wrong_shape_raises():
    y = f64([1.0, 2.0]) * 2.0
    with pytest.raises(RuntimeError, match=r"\(3,\).*\(2,\)"):
        y.backward(np.ones(3))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_integer_tensors_cannot_require_grad(dtype):
    with pytest.raises(TypeError, match=str(np.dtype(dtype))):
        Tensor(np.zeros(3, dtype=dtype), requires_grad=True)
    t = Tensor(np.zeros(3, dtype=dtype))
    with pytest.raises(TypeError, match="floating"):
        t.requires_grad_()


# ---- dtype rules ----------------------------------------------------------------------------


def test_default_dtypes():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor([[1, 2]]).dtype == np.float32
    assert Tensor(3.0).dtype == np.float32
    assert tl.tensor([1.0]).dtype == np.float32
    assert Tensor(np.zeros(2)).dtype == np.float64
    assert Tensor(np.zeros(2, dtype=np.float32)).dtype == np.float32
    assert Tensor(np.arange(3)).dtype == np.int64


SCALARS = [2.5, 3, np.float64(2.5), np.float32(2.5), np.int64(3)]
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
    "maximum": ops.maximum,
    "minimum": ops.minimum,
    "where": lambda a, b: ops.where(np.array([True, False, True]), a, b),
}


def _backward_dtypes(out):
    """dtype of every gradient each node's backward returns, given a float32 adjoint."""
    dtypes = []
    for node in topological_sort(out):
        if node._ctx is None:
            continue
        grads = node._ctx.function.backward(node._ctx, np.ones(node.shape, dtype=node.dtype))
        grads = grads if isinstance(grads, tuple) else (grads,)
        dtypes += [g.dtype for g in grads if g is not None]
    return dtypes


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("scalar", SCALARS, ids=lambda s: type(s).__name__)
def test_scalars_never_upcast_float32(name, scalar):
    op = BINARY[name]
    x = Tensor(np.array([0.5, 1.5, 2.0], dtype=np.float32), requires_grad=True)
    for out in (op(x, scalar), op(scalar, x)):
        assert out.dtype == np.float32, f"{name} with {type(scalar).__name__}: {out.dtype}"
        assert all(d == np.float32 for d in _backward_dtypes(out)), name
        out.sum().backward()
        assert x.grad.dtype == np.float32


def test_integer_tensors_meet_floats_in_float32():
    i = Tensor(np.arange(3))
    for out in (
        i * 0.5,
        0.5 - i,
        i + np.float64(0.5),
        i / 2,
        2 / (i + 1),
        i / i[np.array([2])],
        i + Tensor(np.ones(3, dtype=np.float32)),
        ops.where(i.data > 0, i, 0.5),
    ):
        assert out.dtype == np.float32, out.dtype  # PyTorch's rule; NumPy would give float64
    close = np.testing.assert_allclose
    close((i / 2).data, [0, 0.5, 1.0])
    assert (i * 2).dtype == np.int64


def _f32(*shape, seed=0, positive=False):
    a = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return Tensor(np.abs(a) + 0.1 if positive else a, requires_grad=True)


FLOAT32_OPS = {
    "neg": lambda: -_f32(2, 3),
    "exp": lambda: _f32(2, 3).exp(),
    "log": lambda: _f32(2, 3, positive=True).log(),
    "sqrt": lambda: _f32(2, 3, positive=True).sqrt(),
    "tanh": lambda: _f32(2, 3).tanh(),
    "sigmoid": lambda: _f32(2, 3).sigmoid(),
    "relu": lambda: _f32(2, 3).relu(),
    "gelu": lambda: ops.gelu(_f32(2, 3)),
    "gelu_tanh": lambda: ops.gelu(_f32(2, 3), approximate="tanh"),
    "abs": lambda: _f32(2, 3).abs(),
    "clamp": lambda: ops.clamp(_f32(2, 3), min=np.float64(-0.5), max=0.5),
    "sum": lambda: _f32(2, 3).sum(1),
    "mean": lambda: _f32(2, 3).mean(0, keepdims=True),
    "mean_all": lambda: _f32(2, 3).mean(),
    "max": lambda: _f32(2, 3).max(1).values,
    "amax": lambda: _f32(2, 3).amax(1),
    "min": lambda: _f32(2, 3).min(),
    "var": lambda: _f32(2, 3).var(1),
    "reshape": lambda: _f32(2, 3).reshape(3, 2),
    "transpose": lambda: _f32(2, 3).transpose(0, 1),
    "permute": lambda: _f32(2, 3, 4).permute(2, 0, 1),
    "expand": lambda: _f32(1, 3).expand(4, 3),
    "concatenate": lambda: ops.concatenate([_f32(2, 3), _f32(1, 3)]),
    "stack": lambda: ops.stack([_f32(2, 3), _f32(2, 3)], axis=1),
    "split": lambda: ops.split(_f32(4, 3), 3)[1],
    "getitem": lambda: _f32(4, 3)[np.array([0, 0, 2]), 1:],
    "masked_fill": lambda: _f32(2, 3).masked_fill(np.eye(2, 3, dtype=bool), np.float64(-1e9)),
    "matmul": lambda: _f32(2, 3) @ _f32(3, 4),
    "softmax": lambda: _f32(2, 3).softmax(-1),
    "log_softmax": lambda: _f32(2, 3).log_softmax(0),
    "layer_norm": lambda: ops.layer_norm(_f32(2, 3), 3, _f32(3), _f32(3)),
    "linear": lambda: ops.linear(_f32(2, 3), _f32(4, 3), _f32(4)),
    "embedding": lambda: ops.embedding(np.array([[1, 1, 0]]), _f32(3, 4)),
    "dropout": lambda: ops.dropout(_f32(2, 3), 0.5, generator=np.random.default_rng(0)),
    "cross_entropy": lambda: ops.cross_entropy(_f32(4, 5), np.array([0, 4, -100, 2])),
    "sdpa": lambda: ops.scaled_dot_product_attention(
        _f32(2, 3, 4), _f32(2, 5, 4), _f32(2, 5, 2), is_causal=True
    ),
    "sdpa_dropout": lambda: ops.scaled_dot_product_attention(
        _f32(3, 4),
        _f32(3, 4),
        _f32(3, 4),
        attn_mask=np.tril(np.ones((3, 3), bool)),
        dropout_p=0.3,
        generator=np.random.default_rng(0),
    ),
}


@pytest.mark.parametrize("name", FLOAT32_OPS)
def test_every_op_keeps_float32(name):
    out = FLOAT32_OPS[name]()
    assert out.dtype == np.float32
    assert all(d == np.float32 for d in _backward_dtypes(out)), name


def test_float64_is_preserved():
    x = Tensor(np.linspace(0.1, 1, 6).reshape(2, 3), requires_grad=True)
    out = (ops.gelu(x) * 2.0).softmax(-1).log().mean()
    assert out.dtype == np.float64
    out.backward()
    assert x.grad.dtype == np.float64
