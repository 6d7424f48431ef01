"""word2vec's negative-sampling kernel: the numba loop equals its NumPy reference, and one
example's update is exactly −η times the gradient of its loss, taken by tinyllm's autograd."""

import numpy as np
import pytest

import tinyllm
from tinyllm import kernels
from tinyllm.kernels.word2vec import sgns_train_numba, sgns_train_reference


def _batch(rng, v=12, d=6, n=40, k=4, cbow=False):
    w_in = rng.normal(0, 0.5, (v, d))
    w_out = rng.normal(0, 0.5, (v, d))
    sizes = rng.integers(0, 5, n) if cbow else np.ones(n, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    inputs = rng.integers(0, v, offsets[-1])  # repeated words in one context included
    targets = rng.integers(0, v, n)
    noise = rng.integers(0, v, (n, k))
    noise[::5, 0] = targets[::5]  # a noise word equal to the target is skipped
    lr = np.linspace(0.05, 0.01, n)
    return w_in, w_out, inputs, offsets, targets, noise, lr


@pytest.mark.parametrize("cbow", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_equals_reference(cbow, dtype):
    w_in, w_out, *rest = _batch(np.random.default_rng(3), cbow=cbow)
    a_in, a_out = w_in.astype(dtype), w_out.astype(dtype)
    b_in, b_out = a_in.copy(), a_out.copy()
    loss_ref = sgns_train_reference(a_in, a_out, *rest)
    loss_jit = sgns_train_numba(b_in, b_out, *rest)
    tol = 1e-10 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(b_in, a_in, rtol=tol, atol=tol)
    np.testing.assert_allclose(b_out, a_out, rtol=tol, atol=tol)
    assert loss_jit == pytest.approx(loss_ref, rel=tol)
    assert not np.allclose(a_in, w_in)  # the inputs moved


def _loss_by_autograd(w_in, w_out, inputs, target, noise):
    """L = −log σ(h·u_t) − Σ log σ(−h·u_n), h the mean input vector, by tinyllm's ops."""
    a = tinyllm.tensor(w_in, requires_grad=True)
    b = tinyllm.tensor(w_out, requires_grad=True)
    h = a[inputs].mean(dim=0)
    words = np.concatenate([[target], noise])
    scores = b[words] @ h
    sign = tinyllm.tensor(np.concatenate([[1.0], -np.ones(len(noise))]))
    loss = -(tinyllm.sigmoid(scores * sign)).log().sum()
    loss.backward()
    return loss.item(), np.asarray(a.grad), np.asarray(b.grad)


@pytest.mark.parametrize("inputs", [[4], [1, 7, 7, 2]])
def test_one_step_is_minus_lr_times_the_gradient(inputs):
    rng = np.random.default_rng(0)
    w_in, w_out = rng.normal(0, 0.5, (10, 5)), rng.normal(0, 0.5, (10, 5))
    target, noise, lr = 3, np.array([0, 5, 8]), 0.1
    loss, g_in, g_out = _loss_by_autograd(w_in, w_out, np.array(inputs), target, noise)
    for train in (sgns_train_numba, sgns_train_reference):
        a, b = w_in.copy(), w_out.copy()
        got = train(
            a,
            b,
            np.array(inputs),
            np.array([0, len(inputs)]),
            np.array([target]),
            noise[None],
            np.array([lr]),
        )
        assert got == pytest.approx(loss, rel=1e-12)
        np.testing.assert_allclose(a - w_in, -lr * g_in, atol=1e-12)
        np.testing.assert_allclose(b - w_out, -lr * g_out, atol=1e-12)


def test_loss_by_finite_differences():
    """The autograd loss above is the loss: its gradient matches central differences."""
    rng = np.random.default_rng(1)
    w_in, w_out = rng.normal(0, 0.5, (6, 3)), rng.normal(0, 0.5, (6, 3))
    args = (np.array([1, 2]), 0, np.array([3, 4]))
    _, g_in, _ = _loss_by_autograd(w_in, w_out, *args)
    eps = 1e-6
    for idx in [(1, 0), (2, 2), (0, 1)]:
        up, down = w_in.copy(), w_in.copy()
        up[idx] += eps
        down[idx] -= eps
        fd = _loss_by_autograd(up, w_out, *args)[0] - _loss_by_autograd(down, w_out, *args)[0]
        assert fd / (2 * eps) == pytest.approx(g_in[idx], abs=1e-7)


def test_dispatch_follows_the_backend():
    w_in, w_out, *rest = _batch(np.random.default_rng(5), cbow=True)
    a, b = w_in.astype(np.float32), w_out.astype(np.float32)
    c, d = a.copy(), b.copy()
    kernels.sgns_train(a, b, *rest)
    with kernels.use_backend("numpy"):
        kernels.sgns_train(c, d, *rest)
    np.testing.assert_allclose(a, c, atol=2e-5)


def test_kernel_refuses_a_read_only_table():
    w_in, w_out, *rest = _batch(np.random.default_rng(0))
    w_in.flags.writeable = False
    with pytest.raises(ValueError, match="sgns_train: w_in"):
        sgns_train_numba(w_in, w_out, *rest)
