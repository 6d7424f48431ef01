"""Bad input gets an error that names the op and the shapes (or the value) at fault.

Each case lists the exception type and the fragments its message must contain: the name of
the op, and enough of the shapes or values that a reader can find the mistake without a
debugger.
"""

import numpy as np
import pytest

from tinyllm import Function, Tensor, ops


def t(*shape, dtype=np.float32, requires_grad=False):
    return Tensor(np.ones(shape, dtype=dtype), requires_grad=requires_grad)


CASES = {
    "matmul": (lambda: t(2, 3) @ t(4, 5), ValueError, ["matmul", "(2, 3)", "(4, 5)"]),
    "matmul_batch": (
        lambda: t(2, 3, 4) @ t(3, 4, 5),
        ValueError,
        ["matmul", "(2, 3, 4)", "(3, 4, 5)"],
    ),
    "matmul_vector": (lambda: t(3) @ t(4), ValueError, ["matmul", "(3,)", "(4,)"]),
    "add_broadcast": (lambda: t(2, 3) + t(4), ValueError, ["add", "(2, 3)", "(4,)", "broadcast"]),
    "mul_broadcast": (lambda: t(3, 1) * t(2, 2), ValueError, ["mul", "(3, 1)", "(2, 2)"]),
    "where_broadcast": (
        lambda: ops.where(np.ones((2,), bool), t(3), t(3)),
        ValueError,
        ["where", "(2,)", "(3,)"],
    ),
    "where_condition": (
        lambda: ops.where(np.ones(3), t(3), t(3)),
        TypeError,
        ["where", "boolean", "float64"],
    ),
    "reshape": (lambda: t(2, 3).reshape(4, 2), ValueError, ["reshape", "(2, 3)", "6", "(4, 2)"]),
    "reshape_two_minus_ones": (lambda: t(2, 3).reshape(-1, -1), ValueError, ["reshape", "(2, 3)"]),
    "transpose": (lambda: t(2, 3).transpose(0, 2), ValueError, ["transpose", "2", "(2, 3)"]),
    "permute": (lambda: t(2, 3, 4).permute(0, 0, 1), RuntimeError, ["permute", "(2, 3, 4)"]),
    "expand": (lambda: t(2, 3).expand(4, 3), ValueError, ["expand", "(2, 3)", "(4, 3)"]),
    "concatenate": (
        lambda: ops.concatenate([t(2, 3), t(2, 4)], axis=0),
        ValueError,
        ["concatenate", "(2, 3)", "(2, 4)"],
    ),
    "stack": (lambda: ops.stack([t(2, 3), t(3, 2)]), ValueError, ["stack", "(2, 3)", "(3, 2)"]),
    "split_axis": (
        lambda: ops.split(t(2, 3), 1, axis=5),
        ValueError,
        ["split", "got 5", "(2, 3)"],
    ),
    "chunk_zero": (lambda: ops.chunk(t(2, 3), 0), ValueError, ["chunk", "0"]),
    "squeeze_axis": (lambda: t(2, 1).squeeze(4), ValueError, ["squeeze", "got 4", "(2, 1)"]),
    "unsqueeze_axis": (lambda: t(2, 1).unsqueeze(3), ValueError, ["unsqueeze", "got 3", "(2, 1)"]),
    "stack_axis": (
        lambda: ops.stack([t(2), t(2)], axis=2),
        ValueError,
        ["stack", "got 2", "(2,)"],
    ),
    "split_sections": (lambda: ops.split(t(5, 2), [2, 2]), ValueError, ["split", "[2, 2]", "5"]),
    "getitem": (lambda: t(2, 3)[5], IndexError, ["(2, 3)", "5"]),
    "masked_fill_shape": (
        lambda: t(2, 3).masked_fill(np.ones((3, 2), bool), 0.0),
        ValueError,
        ["masked_fill", "(3, 2)", "(2, 3)"],
    ),
    "masked_fill_dtype": (
        lambda: t(2, 3).masked_fill(np.ones((2, 3)), 0.0),
        TypeError,
        ["masked_fill", "boolean"],
    ),
    "sum_axis": (lambda: t(2, 3).sum(axis=2), ValueError, ["sum", "got 2", "[-2, 1]"]),
    "var_dim": (lambda: t(1, 3).var(axis=(0, 0)), RuntimeError, ["var", "more than once"]),
    "softmax_axis": (lambda: t(2, 3).softmax(axis=3), ValueError, ["softmax", "3", "(2, 3)"]),
    "linear": (lambda: ops.linear(t(4, 3), t(5, 2)), ValueError, ["linear", "(4, 3)", "(5, 2)"]),
    "linear_bias": (
        lambda: ops.linear(t(4, 3), t(5, 3), t(4)),
        ValueError,
        ["linear", "bias", "(4,)", "(5, 3)"],
    ),
    "cross_entropy_target": (
        lambda: ops.cross_entropy(t(3, 5), np.array([0, 7, 1])),
        IndexError,
        ["cross_entropy", "target 7", "5 classes"],
    ),
    "cross_entropy_negative": (
        lambda: ops.cross_entropy(t(2, 5), np.array([0, -1])),
        IndexError,
        ["cross_entropy", "-1", "5 classes"],
    ),
    "cross_entropy_shape": (
        lambda: ops.cross_entropy(t(3, 5), np.array([0, 1])),
        ValueError,
        ["cross_entropy", "(3, 5)", "(3,)", "(2,)"],
    ),
    "cross_entropy_dtype": (
        lambda: ops.cross_entropy(t(3, 5), np.zeros(3)),
        TypeError,
        ["cross_entropy", "integer", "float64"],
    ),
    "cross_entropy_reduction": (
        lambda: ops.cross_entropy(t(3, 5), np.zeros(3, int), reduction="avg"),
        ValueError,
        ["cross_entropy", "avg"],
    ),
    "embedding_id": (
        lambda: ops.embedding(np.array([[1, 12]]), t(10, 4)),
        IndexError,
        ["embedding", "id 12", "10 rows"],
    ),
    "embedding_negative": (
        lambda: ops.embedding(np.array([-1]), t(10, 4)),
        IndexError,
        ["embedding", "-1", "10 rows"],
    ),
    "embedding_dtype": (
        lambda: ops.embedding(np.array([1.0]), t(10, 4)),
        TypeError,
        ["embedding", "integer", "float64"],
    ),
    "layer_norm_shape": (
        lambda: ops.layer_norm(t(2, 3), (4,)),
        ValueError,
        ["layer_norm", "(4,)", "(2, 3)"],
    ),
    "layer_norm_weight": (
        lambda: ops.layer_norm(t(2, 3), 3, t(4)),
        ValueError,
        ["layer_norm", "weight", "(4,)", "(3,)"],
    ),
    "sdpa_head_dim": (
        lambda: ops.scaled_dot_product_attention(t(2, 3, 4), t(2, 5, 3), t(2, 5, 4)),
        ValueError,
        ["scaled_dot_product_attention", "(2, 3, 4)", "(2, 5, 3)"],
    ),
    "sdpa_kv_length": (
        lambda: ops.scaled_dot_product_attention(t(3, 4), t(5, 4), t(6, 4)),
        ValueError,
        ["scaled_dot_product_attention", "(5, 4)", "(6, 4)"],
    ),
    "sdpa_batch": (
        lambda: ops.scaled_dot_product_attention(t(2, 3, 4), t(3, 5, 4), t(3, 5, 4)),
        ValueError,
        ["scaled_dot_product_attention", "(2, 3, 4)", "(3, 5, 4)"],
    ),
    "sdpa_mask": (
        lambda: ops.scaled_dot_product_attention(
            t(3, 4), t(5, 4), t(5, 4), attn_mask=np.ones((3, 4), bool)
        ),
        ValueError,
        ["scaled_dot_product_attention", "(3, 4)", "3, 5"],
    ),
    "gelu_approximate": (lambda: ops.gelu(t(2), approximate="fast"), ValueError, ["gelu", "fast"]),
    "dropout_p": (lambda: ops.dropout(t(2), 1.5), ValueError, ["dropout", "1.5"]),
    "backward_non_scalar": (
        lambda: (t(2, 3, requires_grad=True) * 2.0).backward(),
        RuntimeError,
        ["backward", "non-scalar", "(2, 3)"],
    ),
    "backward_no_grad": (
        lambda: t(2).sum().backward(),
        RuntimeError,
        ["backward", "does not require grad"],
    ),
    "requires_grad_int": (
        lambda: Tensor(np.arange(3), requires_grad=True),
        TypeError,
        ["floating", "int64", "(3,)"],
    ),
    "item": (lambda: t(2, 2).item(), ValueError, ["item", "(2, 2)"]),
}


@pytest.mark.parametrize("name", CASES)
def test_error_names_op_and_shapes(name):
    fn, exc, fragments = CASES[name]
    with pytest.raises(exc) as info:
        fn()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from: {message}"


class WrongShapeGrad(Function):
    """A broken op whose backward forgets to sum the gradient back to its input's shape."""

    @staticmethod
    def forward(ctx, x):
        return np.broadcast_to(x, (4,) + x.shape).copy()

    @staticmethod
    def backward(ctx, grad):
        return grad


def test_backward_with_a_wrong_gradient_shape_names_the_function():
    x = t(3, requires_grad=True)
    y = WrongShapeGrad.apply(x)
    with pytest.raises(RuntimeError) as info:
        y.sum().backward()
    message = str(info.value)
    for fragment in ("WrongShapeGrad", "(4, 3)", "(3,)"):
        assert fragment in message, message
