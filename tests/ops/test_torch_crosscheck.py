"""Forward and backward of each op against PyTorch, op by op (skipped without PyTorch).

One helper, in the style of tinygrad's `helper_test_op`: it draws float64 inputs, runs the
tinyllm function and the PyTorch function on copies of them, compares the outputs, sends the
same random cotangent back through both, and compares every input's gradient. PyTorch is an
independent implementation of the same API contract (names, broadcasting, reductions,
conventions such as ties in max or ignore_index in cross-entropy), so agreement here means
tinyllm means what PyTorch means.
"""

import numpy as np
import pytest

from tinyllm import Tensor, kernels, ops

torch = pytest.importorskip("torch")
F = torch.nn.functional

BACKENDS = ("numpy", "numba")


def helper_test_op(
    shapes, tl_fn, torch_fn, low=-2.0, high=2.0, seed=0, values=None, atol=1e-10, rtol=1e-8
):
    """Compare tl_fn(*tensors) with torch_fn(*tensors), forward and backward, in float64.

    `shapes` gives one input per shape (uniform in [low, high]); `values` may give the arrays
    instead. Integer arrays are passed through unchanged (targets, ids) and not differentiated.
    """
    rng = np.random.default_rng(seed)
    arrays = values if values is not None else [rng.uniform(low, high, s) for s in shapes]
    tl_in = [Tensor(a.copy(), requires_grad=True) if a.dtype.kind == "f" else a for a in arrays]
    th_in = [torch.tensor(a.copy(), requires_grad=a.dtype.kind == "f") for a in arrays]
    out_tl = tl_fn(*tl_in)
    out_th = torch_fn(*th_in)
    np.testing.assert_allclose(
        out_tl.data, out_th.detach().numpy(), atol=atol, rtol=rtol, err_msg="forward"
    )
    u = rng.standard_normal(out_tl.shape)
    out_tl.backward(u)
    out_th.backward(torch.tensor(u))
    for i, (a, b) in enumerate(zip(tl_in, th_in)):
        if isinstance(a, Tensor):
            got = np.zeros(a.shape) if a.grad is None else a.grad
            want = np.zeros(a.shape) if b.grad is None else b.grad.numpy()
            np.testing.assert_allclose(
                got, want, atol=atol, rtol=rtol, err_msg=f"gradient of input {i}"
            )


# ---- element-wise ---------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "pow", "maximum", "minimum"])
@pytest.mark.parametrize(
    "shapes", [((3, 4), (3, 4)), ((2, 1, 4), (3, 1)), ((4,), (2, 3, 4)), ((), (2, 3))]
)
def test_binary(op, shapes):
    tl_op = {
        "add": lambda a, b: a + b,
        "sub": lambda a, b: a - b,
        "mul": lambda a, b: a * b,
        "div": lambda a, b: a / b,
        "pow": lambda a, b: a**b,
        "maximum": ops.maximum,
        "minimum": ops.minimum,
    }[op]
    th_op = {"maximum": torch.maximum, "minimum": torch.minimum}.get(op, tl_op)
    low = 0.5 if op in ("div", "pow") else -2.0  # positive bases and denominators
    helper_test_op(shapes, tl_op, th_op, low=low)


@pytest.mark.parametrize("scalar", [2.5, -1.5, 3])
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "pow"])
def test_binary_with_scalar_on_both_sides(op, scalar):
    fn = {
        "add": lambda a, b: a + b,
        "sub": lambda a, b: a - b,
        "mul": lambda a, b: a * b,
        "div": lambda a, b: a / b,
        "pow": lambda a, b: a**b,
    }[op]
    helper_test_op([(3, 4)], lambda x: fn(x, scalar), lambda x: fn(x, scalar), low=0.5)
    s = abs(scalar) if op == "pow" else scalar  # a positive base for scalar ** tensor
    helper_test_op([(3, 4)], lambda x: fn(s, x), lambda x: fn(s, x), low=0.5)


UNARY = {
    "neg": (lambda x: -x, lambda x: -x, -2),
    "exp": (lambda x: x.exp(), torch.exp, -2),
    "log": (lambda x: x.log(), torch.log, 0.1),
    "sqrt": (lambda x: x.sqrt(), torch.sqrt, 0.1),
    "tanh": (lambda x: x.tanh(), torch.tanh, -2),
    "sigmoid": (lambda x: x.sigmoid(), torch.sigmoid, -5),
    "relu": (lambda x: x.relu(), torch.relu, -2),
    "abs": (lambda x: abs(x), torch.abs, -2),
    "gelu": (ops.gelu, F.gelu, -4),
    "gelu_tanh": (
        lambda x: ops.gelu(x, approximate="tanh"),
        lambda x: F.gelu(x, approximate="tanh"),
        -4,
    ),
    "clamp": (lambda x: ops.clamp(x, -0.5, 0.7), lambda x: torch.clamp(x, -0.5, 0.7), -2),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", UNARY)
def test_unary(name, backend):
    tl_fn, th_fn, low = UNARY[name]
    with kernels.use_backend(backend):
        helper_test_op([(4, 5)], tl_fn, th_fn, low=low, high=abs(low) if low < 0 else 3.0)


def test_where():
    cond = np.random.default_rng(1).random((3, 1)) > 0.5
    helper_test_op(
        [(3, 4), (4,)],
        lambda a, b: ops.where(cond, a, b),
        lambda a, b: torch.where(torch.tensor(cond), a, b),
    )


# ---- reductions -------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin", "var", "std"])
def test_reductions(name, axis, keepdims):
    # distinct values (a permutation of a grid) so max/min have no ties
    x = np.random.default_rng(2).permutation(24).reshape(2, 3, 4) / 7.0
    dim = tuple(range(3)) if axis is None else axis
    th = {
        "sum": lambda t: t.sum(dim=dim, keepdim=keepdims),
        "mean": lambda t: t.mean(dim=dim, keepdim=keepdims),
        "amax": lambda t: torch.amax(t, dim=dim, keepdim=keepdims),
        "amin": lambda t: torch.amin(t, dim=dim, keepdim=keepdims),
        "var": lambda t: torch.var(t, dim=dim, keepdim=keepdims),
        "std": lambda t: torch.std(t, dim=dim, keepdim=keepdims),
    }[name]
    helper_test_op(None, lambda t: getattr(t, name)(axis, keepdim=keepdims), th, values=[x])


def test_amax_with_ties_matches_torch():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    helper_test_op(None, lambda t: t.amax(1), lambda t: torch.amax(t, 1), values=[x])


# ---- shape ops --------------------------------------------------------------------------------


SHAPE_OPS = {
    "reshape": ((2, 3, 4), lambda t: t.reshape(4, -1), lambda t: t.reshape(4, -1)),
    "transpose": ((2, 3, 4), lambda t: t.transpose(0, 2), lambda t: t.transpose(0, 2)),
    "permute": ((2, 3, 4), lambda t: t.permute(1, 2, 0), lambda t: t.permute(1, 2, 0)),
    "expand": ((3, 1), lambda t: t.expand(2, 3, 4), lambda t: t.expand(2, 3, 4)),
    "getitem_slices": ((4, 5), lambda t: t[1:, ::-2], lambda t: t[1:].flip(1)[:, ::2]),
    "getitem_repeats": (
        (4, 5),
        lambda t: t[np.array([0, 3, 0, 0])],
        lambda t: t[torch.tensor([0, 3, 0, 0])],
    ),
    "getitem_pairs": (
        (4, 5),
        lambda t: t[np.array([1, 1, 2]), np.array([0, 0, 4])],
        lambda t: t[torch.tensor([1, 1, 2]), torch.tensor([0, 0, 4])],
    ),
    "getitem_mixed": (
        (3, 4, 5),
        lambda t: t[:, np.array([2, 2]), 1:3],
        lambda t: t[:, torch.tensor([2, 2]), 1:3],
    ),
    "masked_fill": (
        (3, 4),
        lambda t: t.masked_fill(np.eye(4, dtype=bool)[:3], -1.5),
        lambda t: t.masked_fill(torch.eye(4, dtype=torch.bool)[:3], -1.5),
    ),
    "split": (
        (5, 3),
        lambda t: ops.concatenate([p * (i + 1.0) for i, p in enumerate(t.split(2))]),
        lambda t: torch.cat([p * (i + 1.0) for i, p in enumerate(t.split(2))]),
    ),
    "chunk": ((3, 7), lambda t: t.chunk(3, 1)[1], lambda t: t.chunk(3, 1)[1]),
}


@pytest.mark.parametrize("name", SHAPE_OPS)
def test_shape_ops(name):
    shape, tl_fn, th_fn = SHAPE_OPS[name]
    helper_test_op([shape], tl_fn, th_fn)


def test_concatenate_and_stack():
    helper_test_op(
        [(2, 3), (2, 1), (2, 2)],
        lambda *t: ops.concatenate(t, axis=1),
        lambda *t: torch.cat(t, dim=1),
    )
    helper_test_op(
        [(2, 3), (2, 3)], lambda *t: ops.stack(t, axis=-1), lambda *t: torch.stack(t, dim=-1)
    )


# ---- matmul and linear ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shapes",
    [
        ((3, 4), (4, 5)),
        ((2, 3, 4), (4, 5)),
        ((2, 1, 3, 4), (5, 4, 2)),
        ((4,), (4, 5)),
        ((3, 4), (4,)),
        ((4,), (4,)),
        ((4,), (2, 4, 3)),
        ((2, 3, 4), (4,)),
    ],
)
def test_matmul(shapes):
    helper_test_op(shapes, lambda a, b: a @ b, lambda a, b: a @ b)


@pytest.mark.parametrize("x_shape", [(3,), (2, 3), (2, 4, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(x_shape, bias):
    shapes = [x_shape, (5, 3)] + ([(5,)] if bias else [])
    helper_test_op(shapes, ops.linear, F.linear)


# ---- softmax, layer_norm, embedding, cross-entropy -------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_family(backend, axis):
    with kernels.use_backend(backend):
        helper_test_op([(3, 4, 5)], lambda t: t.softmax(axis), lambda t: t.softmax(axis))
        helper_test_op(
            [(3, 4, 5)],
            lambda t: t.log_softmax(axis),
            lambda t: t.log_softmax(axis),
            low=-300,
            high=300,
            atol=1e-8,
        )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("normalized", [(5,), (4, 5)])
@pytest.mark.parametrize("affine", ["none", "weight", "both"])
def test_layer_norm(backend, normalized, affine):
    shapes = [(2, 4, 5)] + [normalized] * {"none": 0, "weight": 1, "both": 2}[affine]
    with kernels.use_backend(backend):
        helper_test_op(
            shapes,
            lambda x, *p: ops.layer_norm(x, normalized, *p),
            lambda x, *p: F.layer_norm(x, normalized, *p),
            atol=1e-9,
        )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding(backend, padding_idx):
    ids = np.array([[2, 0, 2], [5, 2, 1]])
    w = np.random.default_rng(3).standard_normal((6, 4))
    with kernels.use_backend(backend):
        helper_test_op(
            None,
            lambda w: ops.embedding(ids, w, padding_idx=padding_idx),
            lambda w: F.embedding(torch.tensor(ids), w, padding_idx=padding_idx),
            values=[w],
        )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("logits_shape", [(6, 5), (2, 5, 3), (2, 5, 2, 2), (5,)])
def test_cross_entropy(backend, reduction, logits_shape):
    rng = np.random.default_rng(4)
    t_shape = () if len(logits_shape) == 1 else logits_shape[:1] + logits_shape[2:]
    targets = rng.integers(0, 5, size=t_shape)
    if targets.ndim:
        targets.flat[0] = -100  # one ignored position
    with kernels.use_backend(backend):
        helper_test_op(
            [logits_shape],
            lambda z: ops.cross_entropy(z, targets, reduction=reduction),
            lambda z: F.cross_entropy(z, torch.tensor(targets), reduction=reduction),
            low=-5,
            high=5,
        )


# ---- attention --------------------------------------------------------------------------------


SDPA = {
    "plain": dict(),
    "causal": dict(is_causal=True),
    "bool_mask": dict(attn_mask=np.array([[1, 0, 1, 1], [1, 1, 0, 0], [0, 0, 0, 1]], bool)),
    "additive_mask": dict(attn_mask=np.random.default_rng(5).standard_normal((3, 4))),
    "scale": dict(scale=0.3),
}


@pytest.mark.parametrize("name", SDPA)
@pytest.mark.parametrize(
    "shapes",
    [
        ((2, 3, 4), (2, 4, 4), (2, 4, 2)),  # L ≠ S
        ((2, 2, 3, 4), (2, 1, 4, 4), (1, 2, 4, 5)),
    ],
)  # batch bcast
def test_scaled_dot_product_attention(name, shapes):
    kw = SDPA[name]
    th_kw = dict(kw)
    if "attn_mask" in kw:
        th_kw["attn_mask"] = torch.tensor(kw["attn_mask"])
    # PyTorch's math path requires the batch axes to match: broadcast them explicitly there
    lead = np.broadcast_shapes(*(s[:-2] for s in shapes))

    def th_fn(q, k, v):
        q, k, v = (t.expand(*lead, *t.shape[-2:]) for t in (q, k, v))
        return F.scaled_dot_product_attention(q, k, v, **th_kw)

    helper_test_op(shapes, lambda q, k, v: ops.scaled_dot_product_attention(q, k, v, **kw), th_fn)
