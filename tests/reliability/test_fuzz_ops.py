"""Fuzzed op and model calls: each is a correct result or a clear error that names the op.

The cases and their classification live in fuzz_harness.py (next to this file; run it as a
script for the tally). Here hypothesis drives them: it picks the op and the seed that draws
the arguments (every dtype, zero-size and mismatched shapes, bad dims, None, ragged lists,
NaN and inf), and each outcome must be `correct` (equal to PyTorch) or `clear error`. Then the
dtype policy of tinyllm/engine/policy.py is checked rule by rule against PyTorch, and the
examples the reliability issue named are pinned one by one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
import fuzz_harness as fh  # noqa: E402
import torch.nn.functional as TF  # noqa: E402

import tinyllm  # noqa: E402
import tinyllm.nn.functional as F  # noqa: E402
from tinyllm import Tensor  # noqa: E402

GOOD = ("correct", "clear error")


def _explain(name, args, kwargs, out):
    return f"{name}{args} {kwargs}: {out.kind} — {out.detail}"


# ---- the fuzz: every public op, every kind of bad argument ----------------------------------


@settings(max_examples=2500, deadline=None)
@given(spec=st.sampled_from(fh.SPECS), seed=st.integers(0, 2**32 - 1))
def test_fuzzed_op_call_is_correct_or_a_clear_error(spec, seed):
    spec, args, kwargs = fh.draw_case(np.random.default_rng(seed), spec)
    out = fh.classify(spec, args, kwargs)
    assert out.kind in GOOD, _explain(spec.name, args, kwargs, out)


@pytest.fixture(scope="module")
def gpt():
    return fh.tiny_gpt()


@settings(max_examples=500, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_fuzzed_model_call_is_correct_or_a_clear_error(gpt, seed):
    case = fh.draw_model_case(np.random.default_rng(seed))
    out = fh.classify_model(gpt, case)
    assert out.kind in GOOD, f"{case!r}: {out.kind} — {out.detail}"


def test_the_harness_tells_wrong_from_right():
    """The classifier itself catches a wrong value, a wrong dtype, an accepted bad input and
    an anonymous NumPy error (so a passing fuzz means something)."""
    x = fh.Arr(np.array([1.0, 2.0, 4.0], np.float32))

    def case(ours):
        return fh.Spec("exp", None, ours, lambda a, k: torch.exp(a[0]))

    assert fh.classify(case(lambda a, k: tinyllm.exp(a[0])), [x], {}).kind == "correct"
    assert fh.classify(case(lambda a, k: a[0] + 1), [x], {}).kind == "silent wrong"
    as_float64 = case(lambda a, k: Tensor(np.exp(a[0].data.astype(np.float64))))
    assert fh.classify(as_float64, [x], {}).kind == "silent wrong"
    anonymous = case(lambda a, k: np.sum(a[0].data, axis=7))
    assert fh.classify(anonymous, [x], {}).kind == "unclear error"
    took_complex = case(lambda a, k: tinyllm.exp(a[0]))
    assert fh.classify(took_complex, [x, fh.Py(2j)], {}).kind == "silent wrong"


# ---- the dtype policy, rule by rule, against PyTorch ----------------------------------------

INT_DTYPES = ["bool", "int8", "int32", "int64", "uint8"]

PROMOTE = {
    "exp": (tinyllm.exp, torch.exp),
    "log": (tinyllm.log, torch.log),
    "sqrt": (tinyllm.sqrt, torch.sqrt),
    "tanh": (F.tanh, torch.tanh),
    "sigmoid": (F.sigmoid, torch.sigmoid),
    "div": (lambda x: x / 2, lambda x: x / 2),
}
FLOAT_ONLY = {
    "mean": lambda x: x.mean(),
    "var": lambda x: x.var(),
    "std": lambda x: x.std(),
    "softmax": lambda x: F.softmax(x, -1),
    "log_softmax": lambda x: F.log_softmax(x, -1),
    "gelu": F.gelu,
    "layer_norm": lambda x: F.layer_norm(x, (3,)),
    "cross_entropy": lambda x: F.cross_entropy(x, np.array([0, 2])),
    "dropout": lambda x: F.dropout(x, 0.5),
    "scaled_dot_product_attention": lambda x: F.scaled_dot_product_attention(x, x, x),
    "mse_loss": lambda x: F.mse_loss(x, x),
}


def _ints(dtype):
    return np.array([[1, 0, 3], [4, 5, 1]]).astype(dtype)


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("name", sorted(PROMOTE))
def test_promoting_ops_give_pytorchs_float32(name, dtype):
    ours, theirs = PROMOTE[name]
    a = _ints(dtype)
    with np.errstate(divide="ignore"):
        got = ours(Tensor(a))
    want = theirs(torch.from_numpy(a))
    assert str(want.dtype) == "torch.float32" and got.dtype == np.float32
    np.testing.assert_allclose(got.data, want.numpy(), rtol=1e-6)


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("name", sorted(FLOAT_ONLY))
def test_float_only_ops_refuse_integers_naming_op_and_dtype(name, dtype):
    with pytest.raises(TypeError) as info:
        FLOAT_ONLY[name](Tensor(_ints(dtype)))
    assert name in str(info.value) and dtype in str(info.value)


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "uint8"])
def test_integer_ops_keep_working(dtype):
    a = _ints(dtype)
    x, tx = Tensor(a), torch.from_numpy(a)
    for ours, theirs in [
        (x + x, tx + tx),
        (x * 3, tx * 3),
        (x // 2, tx // 2),
        (x.sum(), tx.sum()),
        (x.argmax(1), tx.argmax(1)),
        (x.topk(2).values, tx.topk(2).values),
        (x @ x.T, tx @ tx.T),
        (x > 1, tx > 1),
        (x[:, 1], tx[:, 1]),
        (-x if dtype != "uint8" else x, -tx if dtype != "uint8" else tx),
    ]:
        assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch."), (ours, theirs)
        np.testing.assert_array_equal(ours.data, theirs.numpy())
    w = Tensor(np.arange(12, dtype=np.float32).reshape(6, 2))
    np.testing.assert_array_equal(F.embedding(a, w).data, w.data[a])
    logits = Tensor(np.zeros((2, 6), np.float32))
    loss = F.cross_entropy(logits, a[:, 0].astype(np.int64)).item()
    assert math.isclose(loss, math.log(6), rel_tol=1e-6)


def test_mixing_int_and_float_follows_pytorch():
    i, f = Tensor(np.array([1, 2], np.int32)), Tensor(np.array([0.5, 1.5], np.float32))
    assert (i + f).dtype == np.float32 and (f + i).dtype == np.float32  # not NumPy's float64
    assert (i * 2.5).dtype == np.float32
    assert (f + Tensor(np.float64(2.0))).dtype == np.float32  # a 0-d tensor acts as a scalar
    assert tinyllm.cat([f, i]).dtype == np.float32
    with pytest.raises(TypeError, match="matmul.*int32.*float32"):
        i @ f
    with pytest.raises(TypeError, match="neg.*bool"):
        -Tensor(np.array([True]))


# ---- construction: what a tensor may not hold -----------------------------------------------


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda: Tensor(None), TypeError),
        (lambda: Tensor([1, None, 3]), TypeError),
        (lambda: Tensor([[1.0, 2.0], [3.0]]), ValueError),
        (lambda: Tensor(np.array([1j])), TypeError),
        (lambda: Tensor(np.array([1.0], dtype=object)), TypeError),
        (lambda: Tensor("abc"), TypeError),
        (lambda: tinyllm.tensor([1, None]), TypeError),
    ],
)
def test_bad_data_is_refused_at_construction(make, error):
    with pytest.raises(error, match="^(Tensor|tensor):"):
        make()


@pytest.mark.parametrize("operand", [None, 2j, [1.0, None], "a", np.array([1j])])
def test_bad_operands_are_refused_naming_the_op(operand):
    x = Tensor(np.ones(2, np.float32))
    with pytest.raises((TypeError, ValueError), match="^add:"):
        x + operand
    with pytest.raises((TypeError, ValueError), match="^mul:"):
        x * operand


# ---- dims ------------------------------------------------------------------------------------

DIM_OPS = {
    "flatten": (lambda x, d: x.flatten(d), lambda x, d: x.flatten(d)),
    "permute": (lambda x, d: x.permute(0, d), lambda x, d: x.permute(0, d)),
    "transpose": (lambda x, d: x.transpose(0, d), lambda x, d: x.transpose(0, d)),
    "softmax": (lambda x, d: F.softmax(x, d), lambda x, d: torch.softmax(x, d)),
    "sum": (lambda x, d: x.sum(d), lambda x, d: x.sum(d)),
    "mean": (lambda x, d: x.mean(d), lambda x, d: x.mean(d)),
    "concatenate": (lambda x, d: tinyllm.cat([x, x], d), lambda x, d: torch.cat([x, x], d)),
    "stack": (lambda x, d: tinyllm.stack([x, x], d), lambda x, d: torch.stack([x, x], d)),
    "unsqueeze": (lambda x, d: x.unsqueeze(d), lambda x, d: x.unsqueeze(d)),
    "squeeze": (lambda x, d: x.squeeze(d), lambda x, d: x.squeeze(d)),
    "argmax": (lambda x, d: x.argmax(d), lambda x, d: x.argmax(d)),
}


@pytest.mark.parametrize("d", [5, -4, 2, -3])
@pytest.mark.parametrize("name", sorted(DIM_OPS))
def test_dims_out_of_range_raise_pytorchs_index_error(name, d):
    ours, theirs = DIM_OPS[name]
    a = np.ones((2, 3), np.float32)
    try:
        want = theirs(torch.from_numpy(a), d)
    except IndexError as e:
        with pytest.raises(IndexError) as info:
            ours(Tensor(a), d)
        message = str(info.value)
        assert message.startswith(f"{name}:")
        assert str(e).split(" (expected")[0].split(": ")[-1] in message  # "Dimension out of range"
        assert str(e)[str(e).index("(expected") :] in message  # PyTorch's range and value
    else:
        np.testing.assert_array_equal(ours(Tensor(a), d).data, want.numpy())


def test_repeated_dims_are_refused():
    x = Tensor(np.ones((2, 3)))
    for call in (lambda: x.permute(1, 1), lambda: x.sum((0, 0)), lambda: x.var((1, -1))):
        with pytest.raises(RuntimeError, match="permute|sum|var"):
            call()


# ---- probabilities ---------------------------------------------------------------------------


@pytest.mark.parametrize("p", [1.5, -0.5, float("nan"), float("inf")])
def test_bad_probabilities_raise(p):
    x = Tensor(np.ones((1, 2, 3), np.float32))
    with pytest.raises(ValueError, match="^dropout:"):
        F.dropout(x, p)
    with pytest.raises(ValueError, match="^scaled_dot_product_attention:.*dropout_p"):
        F.scaled_dot_product_attention(x, x, x, dropout_p=p)


def test_dropout_p_one_gives_zeros_and_zero_gradients():
    rng = np.random.default_rng(0)
    q, k, v = (
        Tensor(rng.standard_normal((1, 2, 3, 4)).astype(np.float32), requires_grad=True)
        for _ in range(3)
    )
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=1.0)
    want = TF.scaled_dot_product_attention(
        *(torch.from_numpy(t.data) for t in (q, k, v)), dropout_p=1.0
    )
    np.testing.assert_array_equal(out.data, want.numpy())
    out.sum().backward()
    for t in (q, k, v):
        np.testing.assert_array_equal(t.grad, 0)
    x = Tensor(rng.standard_normal(5).astype(np.float32))
    np.testing.assert_array_equal(F.dropout(x, 1.0).data, 0)


# ---- zero-size tensors, against PyTorch ------------------------------------------------------

ZERO_SIZE = {
    "layer_norm, 0 features": (lambda lib, f, z: f.layer_norm(z(3, 0), (0,)),),
    "linear, 0 in-features": (lambda lib, f, z: f.linear(z(3, 0), z(2, 0), z(2) + 1),),
    "attention, 0 keys": (
        lambda lib, f, z: f.scaled_dot_product_attention(z(1, 2, 4) + 1, z(1, 0, 4), z(1, 0, 5)),
    ),
    "attention, head size 0": (
        lambda lib, f, z: f.scaled_dot_product_attention(z(1, 2, 0), z(1, 3, 0), z(1, 3, 2) + 1),
    ),
    "softmax over an empty axis": (lambda lib, f, z: f.softmax(z(0, 3), -1),),
    "softmax, 0 columns": (lambda lib, f, z: f.softmax(z(2, 0), -1),),
    "cross_entropy, 0 rows (sum)": (
        lambda lib, f, z: f.cross_entropy(z(0, 3), lib.zeros(0, dtype=lib.int64), reduction="sum"),
    ),
    "cross_entropy, 0 rows (mean)": (
        lambda lib, f, z: f.cross_entropy(z(0, 3), lib.zeros(0, dtype=lib.int64)),
    ),
    "mean of nothing": (lambda lib, f, z: z(0).mean(),),
    "sum over an empty axis": (lambda lib, f, z: z(0, 3).sum(0),),
}


@pytest.mark.parametrize("case", sorted(ZERO_SIZE))
def test_zero_size_inputs_work_as_in_pytorch(case):
    (call,) = ZERO_SIZE[case]
    got = call(tinyllm, F, lambda *s: tinyllm.zeros(*s))
    want = call(torch, TF, lambda *s: torch.zeros(*s))
    assert got.shape == tuple(want.shape)
    np.testing.assert_allclose(got.numpy(), want.numpy(), equal_nan=True)
