"""In-place ops and the version counter.

Values: each in-place op must leave in x exactly what the out-of-place expression (NumPy,
written here) gives. Gradients: a differentiable in-place chain is checked by gradcheck and,
when installed, against PyTorch running the same chain. Versions: modifying a tensor that a
node saved makes backward raise PyTorch's error; modifying one that nothing saved does not.
"""

import numpy as np
import pytest
from engine_strategies import arrays, broadcastable, positive
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinyllm as tl
from tinyllm import Tensor
from tinyllm.testing import gradcheck

close = np.testing.assert_allclose
MODIFIED = "modified by an inplace operation"


def _x(shape=(2, 3), seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---- values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, call, ref",
    [
        ("add_", lambda t: t.add_(2.0), lambda a: a + 2.0),
        ("add_alpha", lambda t: t.add_(Tensor(np.ones(3)), alpha=0.5), lambda a: a + 0.5),
        ("sub_", lambda t: t.sub_(Tensor(np.arange(3.0))), lambda a: a - np.arange(3.0)),
        ("mul_", lambda t: t.mul_(3.0), lambda a: a * 3.0),
        ("div_", lambda t: t.div_(4.0), lambda a: a / 4.0),
        ("zero_", lambda t: t.zero_(), lambda a: np.zeros_like(a)),
        ("fill_", lambda t: t.fill_(1.5), lambda a: np.full_like(a, 1.5)),
        (
            "copy_",
            lambda t: t.copy_(Tensor(np.arange(3.0))),
            lambda a: np.broadcast_to(np.arange(3.0), a.shape),
        ),
        ("clamp_", lambda t: t.clamp_(-0.5, 0.5), lambda a: np.clip(a, -0.5, 0.5)),
        ("masked_fill_", lambda t: t.masked_fill_(t > 0, -1.0), lambda a: np.where(a > 0, -1.0, a)),
        ("iadd", lambda t: t.__iadd__(1.0), lambda a: a + 1.0),
        ("imul", lambda t: t.__imul__(Tensor(np.full((2, 1), 2.0))), lambda a: a * 2.0),
    ],
)
def test_inplace_values(name, call, ref):
    a = _x()
    t = Tensor(a.copy())
    data = t.data
    assert call(t) is t
    close(t.data, ref(a))
    assert t.data is data  # written into the same array: views see it
    assert t._version == 1


def test_augmented_assignment_is_in_place():
    t = Tensor(np.zeros(3))
    alias = t
    t += 1.0
    t *= 3.0
    assert alias is t and t._version == 2
    close(alias.data, [3.0, 3.0, 3.0])


def test_setitem_basic_integer_and_boolean_mask():
    a = _x((4, 3))
    t = Tensor(a.copy())
    t[0] = 5.0
    t[1:3, 1] = Tensor(np.array([7.0, 8.0]))
    t[np.array([3, 3]), np.array([0, 2])] = -1.0
    mask = Tensor(a) > 1.0
    t[mask] = 0.0
    want = a.copy()
    want[0] = 5.0
    want[1:3, 1] = [7.0, 8.0]
    want[[3, 3], [0, 2]] = -1.0
    want[a > 1.0] = 0.0
    close(t.data, want)
    assert t._version == 4


def test_setitem_on_an_int_tensor_and_bad_values():
    t = tl.zeros(5, dtype=tl.long)
    t[t == 0] = 3
    np.testing.assert_array_equal(t.data, [3] * 5)
    with pytest.raises(ValueError, match=r"x\[index\] = v: a value of shape \(3,\)"):
        t[0:2] = Tensor(np.ones(3))
    with pytest.raises(IndexError, match=r"x\[index\] = v: indexing a tensor of shape \(5,\)"):
        t[9] = 1
    with pytest.raises(RuntimeError, match="add_: the result type float32 cannot be written"):
        t.add_(1.5)
    with pytest.raises(RuntimeError, match=r"mul_: the result has shape \(2, 5\)"):
        t.mul_(Tensor(np.ones((2, 5), dtype=np.int64)))


def test_a_view_writes_through_to_its_base_and_shares_the_version():
    base = Tensor(np.zeros((2, 3)))
    view = base.view(6)
    view[4] = 1.0
    base[0].fill_(2.0)
    close(base.data, [[2, 2, 2], [0, 1, 0]])
    assert base._version == view._version == 2
    d = base.detach()
    d.add_(1.0)
    assert base._version == 3
    close(base.data, [[3, 3, 3], [1, 2, 1]])


def test_normal_and_uniform_fill_from_the_seeded_generator():
    g1, g2 = np.random.default_rng(7), np.random.default_rng(7)
    t = Tensor(np.zeros((3, 4)))
    t.normal_(1.0, 2.0, generator=g1)
    close(t.data, 1.0 + 2.0 * g2.standard_normal((3, 4)))
    t.uniform_(-1.0, 3.0, generator=g1)
    close(t.data, -1.0 + 4.0 * g2.random((3, 4)))
    tl.manual_seed(0)
    a = tl.zeros(5).normal_().data.copy()
    tl.manual_seed(0)
    close(tl.zeros(5).normal_().data, a)
    with pytest.raises(TypeError, match="normal_: needs a floating-point tensor"):
        tl.zeros(2, dtype=tl.long).normal_()


def test_inplace_keeps_half_formats():
    t = tl.zeros(3, dtype=tl.bfloat16)
    t.add_(1.0 / 3.0)
    assert t.dtype is tl.bfloat16
    close(t.numpy(), tl.dtypes.round_to_bf16(np.full(3, 1 / 3, np.float32)))
    t[1] = 2.0
    close(t.numpy()[1], 2.0)
    h = tl.ones(2, dtype=tl.half)
    h.mul_(3.0)
    assert h.dtype == np.float16
    close(h.data, [3.0, 3.0])


# ---- autograd rules ----------------------------------------------------------------------------


def test_inplace_on_a_leaf_that_requires_grad_is_an_error_but_not_under_no_grad():
    w = Tensor(_x(), requires_grad=True)
    with pytest.raises(RuntimeError, match="add_: a leaf tensor that requires grad"):
        w.add_(1.0)
    with pytest.raises(RuntimeError, match="a view of a leaf tensor that requires grad"):
        w.view(6)[0] = 1.0
    with tl.no_grad():
        w.add_(1.0)  # what an optimizer does
        w[0] = 0.0
        w.zero_()
    assert w._version == 3 and w.is_leaf and w.requires_grad
    close(w.data, 0.0)


def test_modified_saved_tensor_makes_backward_raise():
    x = Tensor(_x(), requires_grad=True)
    y = Tensor(_x(seed=1))
    out = (x * y).sum()  # Mul saves y's array
    y.mul_(2.0)
    with pytest.raises(
        RuntimeError, match=MODIFIED + ".*saved by Mul is at version 1; expected version 0"
    ):
        out.backward()


def test_modified_saved_output_makes_backward_raise():
    x = Tensor(_x(), requires_grad=True)
    e = x.exp()  # Exp saves its output
    e.add_(1.0)
    with pytest.raises(RuntimeError, match=MODIFIED):
        e.sum().backward()


def test_modified_parameter_under_no_grad_makes_backward_raise():
    w = Tensor(_x(), requires_grad=True)
    loss = (w * w).sum()
    with tl.no_grad():
        w.sub_(0.1)
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


def test_modifying_a_view_of_a_saved_tensor_raises():
    x = Tensor(_x(), requires_grad=True)
    y = Tensor(_x(seed=2))
    out = (x * y).sum()
    y.view(6)[0] = 0.0
    with pytest.raises(RuntimeError, match=MODIFIED):
        out.backward()


def test_modifying_an_unsaved_tensor_is_fine():
    x = Tensor(_x(), requires_grad=True)
    y = Tensor(_x(seed=1))
    out = (x + y).sum()  # Add saves nothing
    y.mul_(2.0)
    out.backward()
    close(x.grad, np.ones((2, 3)))
    z = Tensor(_x(seed=3))
    loss = (x * z).sum()
    z2 = z.clone()
    z2.zero_()  # a clone is a copy: the saved array is untouched
    x.grad = None
    loss.backward()
    close(x.grad, z.data)


def test_differentiable_inplace_chain_gradcheck():
    def fn(a, b):
        h = a * 1.0
        h.add_(b, alpha=2.0)
        h.mul_(b)
        h.clamp_(-1.5, 1.5)
        h[0, 1] = 0.25
        h.masked_fill_(b > 1.0, 0.0)
        return h

    a, b = _x(seed=4), _x(seed=5)
    a[np.abs(np.abs((a + 2 * b) * b) - 1.5) < 0.05] += 0.2  # off the clamp's kinks
    gradcheck(fn, [Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)])


def test_differentiable_inplace_matches_torch():
    torch = pytest.importorskip("torch")
    a, b = _x(seed=6), _x(seed=7)
    mask = a > 0.5

    def run(lib, make):
        x, y = make(a.copy()), make(b.copy())
        h = x * 2.0
        h.add_(y)
        h.mul_(y)
        h[lib.tensor(mask)] = 0.0
        h.div_(y + 3.0)
        h.sum().backward()
        return h, x.grad, y.grad

    h1, gx1, gy1 = run(tl, lambda v: Tensor(v, requires_grad=True))
    h2, gx2, gy2 = run(torch, lambda v: torch.tensor(v, requires_grad=True))
    close(h1.data, h2.detach().numpy())
    close(gx1, gx2.numpy())
    close(gy1, gy2.numpy())


def test_setitem_gradient_to_value_and_target():
    x = Tensor(_x((3, 4)), requires_grad=True)
    v = Tensor(_x((4,), seed=8), requires_grad=True)
    h = x * 1.0
    h[1] = v
    (h * Tensor(np.arange(12.0).reshape(3, 4))).sum().backward()
    want_x = np.arange(12.0).reshape(3, 4)
    want_x[1] = 0.0
    close(x.grad, want_x)
    close(v.grad, np.arange(4.0, 8.0))


def test_inplace_on_a_tensor_already_used_is_refused_not_wrong():
    x = Tensor(_x(), requires_grad=True)
    h = x * 2.0
    _ = h.sum()  # h consumed by a recorded op
    with pytest.raises(RuntimeError, match="already used by an op of the graph"):
        h.add_(1.0)


def test_zero_and_fill_give_the_old_value_no_gradient():
    x = Tensor(_x(), requires_grad=True)
    h = x * 3.0
    h.fill_(2.0)
    (h * x).sum().backward()  # d/dx of (2 · x) = 2: nothing flows through the filled h
    close(x.grad, np.full((2, 3), 2.0))


# ---- the same scenarios in PyTorch: it raises where tinyllm raises -----------------------------

SCENARIOS = {
    # name: (steps, does torch raise on backward?)
    "saved_input_modified": (lambda lib, x, y: ((x * y).sum(), y.mul_(2.0)), True),
    "saved_output_modified": (lambda lib, x, y: (_exp_then_add(x),), True),
    "unsaved_input_modified": (lambda lib, x, y: ((x + y).sum(), y.mul_(2.0)), False),
}


def _exp_then_add(x):
    e = x.exp()
    e.add_(1.0)
    return e.sum()


@pytest.mark.parametrize("name", SCENARIOS)
def test_version_errors_agree_with_torch(name):
    torch = pytest.importorskip("torch")
    steps, raises = SCENARIOS[name]
    for lib, make in ((tl, Tensor), (torch, torch.tensor)):
        x = make(_x(), requires_grad=True)
        y = make(_x(seed=1))
        loss = steps(lib, x, y)[0]
        if raises:
            with pytest.raises(RuntimeError, match=MODIFIED):
                loss.backward()
        else:
            loss.backward()


@settings(max_examples=25, deadline=None)
@given(data=st.data(), shapes=broadcastable(num_shapes=2, min_dims=1, max_dims=3))
def test_inplace_arithmetic_matches_numpy_with_broadcasting(data, shapes):
    a_shape, b_shape = shapes.input_shapes
    target = np.broadcast_shapes(a_shape, b_shape)
    assume(target == tuple(a_shape))  # in place: the other operand broadcasts, x does not
    a = data.draw(arrays(a_shape), label="a")
    b = data.draw(arrays(b_shape, positive()), label="b")
    for name, ref in (
        ("add_", np.add),
        ("sub_", np.subtract),
        ("mul_", np.multiply),
        ("div_", np.divide),
    ):
        t = Tensor(a.copy())
        getattr(t, name)(Tensor(b))
        close(t.data, ref(a, b), err_msg=name)


@pytest.mark.parametrize(
    "name, ref",
    [
        ("relu_", lambda a: np.maximum(a, 0)),
        ("sigmoid_", lambda a: 1 / (1 + np.exp(-a))),
        ("tanh_", np.tanh),
        ("exp_", np.exp),
        ("neg_", np.negative),
        ("abs_", np.abs),
    ],
)
def test_unary_inplace_values_and_gradients(name, ref):
    a = _x(seed=9)
    a[np.abs(a) < 0.05] = 0.3  # off the kinks of relu and abs
    t = Tensor(a.copy())
    getattr(t, name)()
    close(t.data, ref(a))
    assert t._version == 1

    def fn(x):
        h = x * 1.0
        getattr(h, name)()
        return h

    gradcheck(fn, [Tensor(a, requires_grad=True)])


def test_log_sqrt_pow_inplace():
    a = np.abs(_x(seed=10)) + 0.5
    for name, ref, args in (
        ("log_", np.log, ()),
        ("sqrt_", np.sqrt, ()),
        ("pow_", np.square, (2.0,)),
    ):
        t = Tensor(a.copy())
        getattr(t, name)(*args)
        close(t.data, ref(a), err_msg=name)


def test_new_tensors_take_the_dtype():
    x = Tensor(np.ones(2, dtype=np.float64))
    assert x.new_zeros(3, 2).dtype == np.float64 and x.new_zeros((3, 2)).shape == (3, 2)
    assert x.new_ones(2).dtype == np.float64
    np.testing.assert_array_equal(x.new_full((2,), 4).data, [4.0, 4.0])
    assert x.new_tensor([1, 2]).dtype == np.float64
    assert x.new_zeros(2, dtype=tl.long).dtype == tl.long
