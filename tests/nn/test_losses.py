"""Losses: against formulas typed here in NumPy, finite differences, and torch.nn.functional.

The NumPy references are the textbook definitions (PyTorch's documentation of each loss); the
gradients are checked by tinyllm.testing.gradcheck in float64.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyllm.nn.functional as F
from tinyllm import nn
from tinyllm.engine import Tensor
from tinyllm.testing import gradcheck


def t64(a, requires_grad=True):
    return Tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


def np_log_softmax(z, axis=1):
    m = z.max(axis=axis, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=axis, keepdims=True))


def np_cross_entropy(z, t, w=None, eps=0.0, ignore_index=-100, reduction="mean"):
    """PyTorch's documented formula, rows (N, C), class-index targets."""
    n, c = z.shape
    w = np.ones(c) if w is None else w
    logp = np_log_softmax(z)
    loss, weights = np.zeros(n), np.zeros(n)
    for i in range(n):
        if t[i] == ignore_index:
            continue
        nll = -w[t[i]] * logp[i, t[i]]
        smooth = -(w * logp[i]).sum()
        loss[i] = (1 - eps) * nll + eps / c * smooth
        weights[i] = w[t[i]]
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / weights.sum() if weights.sum() else np.nan  # nothing counted: NaN


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_weights_smoothing_ignore_index(rng, reduction, eps, weighted):
    z = rng.standard_normal((6, 4))
    t = np.array([0, 3, -100, 1, 2, 3])
    w = rng.uniform(0.5, 2.0, 4) if weighted else None
    out = F.cross_entropy(t64(z), t, weight=w, label_smoothing=eps, reduction=reduction)
    np.testing.assert_allclose(out.data, np_cross_entropy(z, t, w, eps, -100, reduction), 1e-10)
    gradcheck(
        lambda x: F.cross_entropy(x, t, weight=w, label_smoothing=eps, reduction=reduction),
        [t64(z)],
    )


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_probability_targets(rng, eps):
    z = rng.standard_normal((5, 3))
    q = rng.dirichlet(np.ones(3), size=5)
    w = np.array([1.0, 2.0, 0.5])
    qs = (1 - eps) * q + eps / 3
    expected = -(w * qs * np_log_softmax(z)).sum(1).mean()
    out = F.cross_entropy(t64(z), q, weight=w, label_smoothing=eps)
    np.testing.assert_allclose(out.data, expected, rtol=1e-10)
    # differentiable in the logits and in the target probabilities
    gradcheck(lambda x, p: F.cross_entropy(x, p, weight=w, label_smoothing=eps), [t64(z), t64(q)])


def test_cross_entropy_spatial_class_axis_is_axis_1(rng):
    z = rng.standard_normal((2, 4, 3))  # (N, C, d)
    t = np.array([[0, 3, 1], [2, 2, -100]])
    rows = np.moveaxis(z, 1, -1).reshape(-1, 4)
    expected = np_cross_entropy(rows, t.reshape(-1), eps=0.1, reduction="none").reshape(2, 3)
    out = F.cross_entropy(t64(z), t, label_smoothing=0.1, reduction="none")
    np.testing.assert_allclose(out.data, expected, rtol=1e-10)
    q = rng.dirichlet(np.ones(4), size=(2, 3)).transpose(0, 2, 1)  # probabilities along axis 1
    expected = -(np.moveaxis(q, 1, -1) * np.moveaxis(np_log_softmax(z), 1, -1)).sum(-1)
    np.testing.assert_allclose(F.cross_entropy(t64(z), q, reduction="none").data, expected, 1e-10)


@given(
    n=st.integers(1, 4),
    c=st.integers(1, 5),
    extra=st.lists(st.integers(1, 3), max_size=2),
    eps=st.sampled_from([0.0, 0.05, 0.5, 1.0]),
    weighted=st.booleans(),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    seed=st.integers(0, 2**16),
)
def test_cross_entropy_on_drawn_shapes(n, c, extra, eps, weighted, reduction, seed):
    """(N, C, d₁, …) logits with some ignored targets, against the NumPy rows formula."""
    g = np.random.default_rng(seed)
    z = g.standard_normal((n, c, *extra))
    t = g.integers(0, c, (n, *extra))
    t[g.random(t.shape) < 0.2] = -100
    w = g.uniform(0.5, 2.0, c) if weighted else None
    rows_z = np.moveaxis(z, 1, -1).reshape(-1, c)
    ref = np_cross_entropy(rows_z, t.reshape(-1), w, eps, -100, reduction)
    if reduction == "none":
        ref = ref.reshape(t.shape)
    fn = lambda x: F.cross_entropy(x, t, w, reduction=reduction, label_smoothing=eps)  # noqa
    np.testing.assert_allclose(fn(t64(z)).data, ref, rtol=1e-10, atol=1e-12)
    if not (t == -100).all():
        gradcheck(fn, [t64(z)], fast=True, seed=seed)


def test_nll_loss_is_cross_entropy_of_log_probabilities(rng):
    z = rng.standard_normal((5, 4))
    t = np.array([1, -100, 3, 0, 0])
    w = np.array([0.2, 1.0, 3.0, 1.5])
    logp = np_log_softmax(z)
    valid = t != -100
    expected = -(w[t[valid]] * logp[valid, t[valid]]).sum() / w[t[valid]].sum()
    out = F.nll_loss(F.log_softmax(t64(z), 1), t, weight=w)
    np.testing.assert_allclose(out.data, expected, rtol=1e-10)
    gradcheck(lambda x: F.nll_loss(x, t, weight=w, reduction="sum"), [t64(logp)])
    assert nn.NLLLoss(weight=w)(F.log_softmax(t64(z), 1), t).data == pytest.approx(expected)


def test_regression_losses_and_their_gradients(rng):
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    np.testing.assert_allclose(F.mse_loss(t64(x), y).data, ((x - y) ** 2).mean(), rtol=1e-12)
    np.testing.assert_allclose(F.l1_loss(t64(x), y, reduction="sum").data, np.abs(x - y).sum())
    np.testing.assert_allclose(nn.MSELoss(reduction="none")(t64(x), y).data, (x - y) ** 2)
    np.testing.assert_allclose(nn.L1Loss()(t64(x), y).data, np.abs(x - y).mean())
    gradcheck(lambda a, b: F.mse_loss(a, b), [t64(x), t64(y)])  # both sides get gradients
    gradcheck(lambda a, b: F.l1_loss(a, b, reduction="none"), [t64(x), t64(y)])


def test_bce_with_logits_is_stable_and_matches_its_definition(rng):
    x = rng.standard_normal((4, 3)) * 3
    y = rng.uniform(0, 1, (4, 3))
    w, pw = rng.uniform(0.5, 2, (4, 3)), np.array([1.0, 2.0, 0.5])
    s = 1 / (1 + np.exp(-x))
    expected = -w * (pw * y * np.log(s) + (1 - y) * np.log(1 - s))
    out = F.binary_cross_entropy_with_logits(t64(x), y, weight=w, pos_weight=pw, reduction="none")
    np.testing.assert_allclose(out.data, expected, rtol=1e-10)
    gradcheck(
        lambda a, b: F.binary_cross_entropy_with_logits(a, b, weight=w, pos_weight=pw),
        [t64(x), t64(y)],
    )
    # a logit of ±1000 would overflow exp in the naive form; here it is exact
    big = F.binary_cross_entropy_with_logits(t64([1000.0, -1000.0]), np.array([0.0, 1.0]), None)
    np.testing.assert_allclose(big.data, 1000.0)
    loss = nn.BCEWithLogitsLoss(pos_weight=pw)
    assert "pos_weight" in loss.state_dict() and "weight" not in loss.state_dict()


def test_bad_arguments_are_named(rng):
    z = t64(rng.standard_normal((2, 3)))
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(z, np.array([0, 1]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(z, np.array([0, 1]), weight=np.ones(3), reduction="avg")
    with pytest.raises(ValueError, match=r"weight must be a float array of shape \(3,\)"):
        F.cross_entropy(z, np.array([0, 1]), weight=np.ones(4))
    with pytest.raises(ValueError, match="probability targets"):
        F.cross_entropy(z, np.ones((2, 4)) / 4)
    with pytest.raises(IndexError, match="out of range for 3 classes"):
        F.cross_entropy(z, np.array([0, 3]), label_smoothing=0.1)
    with pytest.raises(ValueError, match="same as input size"):
        F.binary_cross_entropy_with_logits(z, np.ones(3))
    with pytest.raises(TypeError, match="deprecated"):
        F.mse_loss(z, np.zeros((2, 3)), size_average=True)
    with pytest.warns(UserWarning, match="broadcast"):
        F.mse_loss(z, np.zeros((2, 1)))


# ---- against torch.nn.functional ------------------------------------------------------------


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses_equal_torch(torch, rng, reduction):
    tF = torch.nn.functional
    T = lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True)  # noqa: E731
    z, w = rng.standard_normal((6, 5)), rng.uniform(0.5, 2, 5)
    t = np.array([0, 4, -100, 1, 2, 4])
    q = rng.dirichlet(np.ones(5), size=6)
    y = rng.uniform(0, 1, (6, 5))
    cases = [
        (
            lambda x: F.cross_entropy(x, t, w, reduction=reduction, label_smoothing=0.15),
            lambda x: tF.cross_entropy(
                x, torch.tensor(t), torch.tensor(w), reduction=reduction, label_smoothing=0.15
            ),
        ),
        (
            lambda x: F.cross_entropy(x, t, reduction=reduction, label_smoothing=0.3),
            lambda x: tF.cross_entropy(
                x, torch.tensor(t), reduction=reduction, label_smoothing=0.3
            ),
        ),
        (
            lambda x: F.cross_entropy(x, q, w, reduction=reduction, label_smoothing=0.1),
            lambda x: tF.cross_entropy(
                x, torch.tensor(q), torch.tensor(w), reduction=reduction, label_smoothing=0.1
            ),
        ),
        (
            lambda x: F.nll_loss(x, t, w, reduction=reduction),
            lambda x: tF.nll_loss(x, torch.tensor(t), torch.tensor(w), reduction=reduction),
        ),
        (
            lambda x: F.mse_loss(x, y, reduction=reduction),
            lambda x: tF.mse_loss(x, torch.tensor(y), reduction=reduction),
        ),
        (
            lambda x: F.l1_loss(x, y, reduction=reduction),
            lambda x: tF.l1_loss(x, torch.tensor(y), reduction=reduction),
        ),
        (
            lambda x: F.binary_cross_entropy_with_logits(
                x, y, weight=w, reduction=reduction, pos_weight=w[::-1].copy()
            ),
            lambda x: tF.binary_cross_entropy_with_logits(
                x,
                torch.tensor(y),
                torch.tensor(w),
                reduction=reduction,
                pos_weight=torch.tensor(w[::-1].copy()),
            ),
        ),
    ]
    for ours, theirs in cases:
        a, b = t64(z), T(z)
        out_a, out_b = ours(a), theirs(b)
        np.testing.assert_allclose(out_a.data, out_b.detach().numpy(), rtol=1e-10, atol=1e-12)
        g = rng.standard_normal(out_a.shape)
        out_a.backward(g)
        out_b.backward(torch.tensor(g))
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_loss_modules_equal_torch(torch, rng):
    z, t = rng.standard_normal((4, 3)), np.array([2, 0, 1, 1])
    ours = nn.CrossEntropyLoss(weight=np.array([1.0, 2.0, 3.0]), label_smoothing=0.1)
    theirs = torch.nn.CrossEntropyLoss(
        weight=torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), label_smoothing=0.1
    )
    got = ours(t64(z), t).data
    want = theirs(torch.tensor(z), torch.tensor(t)).item()
    assert got == pytest.approx(want, rel=1e-10)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]
