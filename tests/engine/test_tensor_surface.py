"""The Tensor's PyTorch-shaped surface: size(), dim(), t(), hashing beside element-wise ==,
devices, dtype names and `.to`.

The expected values are PyTorch's documented behaviour, written out here (the same calls are
compared with PyTorch itself in tests/ops/test_surface_torch.py).
"""

import numpy as np
import pytest

import tinyllm as tl
from tinyllm import Tensor


def test_size_is_the_shape_and_numel_the_count():
    x = Tensor(np.zeros((2, 3, 4)))
    assert x.size() == (2, 3, 4) and isinstance(x.size(), tuple)
    assert isinstance(x.size(), tl.Size) and repr(x.size()) == "tinyllm.Size([2, 3, 4])"
    assert x.size(0) == 2 and x.size(-1) == 4
    assert x.numel() == 24 and x.nelement() == 24 and x.size().numel() == 24
    assert x.dim() == 3 == x.ndim and x.shape == (2, 3, 4)
    b, t, c = x.size()
    assert (b, t, c) == (2, 3, 4)
    with pytest.raises(
        IndexError, match=r"size: dim 3 is out of range for a tensor of shape \(2, 3, 4\)"
    ):
        x.size(3)


def test_transposes():
    a = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(Tensor(a).t().data, a.T)
    np.testing.assert_array_equal(Tensor(a).T.data, a.T)
    v = Tensor(np.arange(3.0))
    assert v.t().shape == (3,)
    b = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(Tensor(b).mT.data, np.swapaxes(b, -1, -2))
    with pytest.raises(ValueError, match="t: expects a tensor with at most 2 dims"):
        Tensor(b).t()


def test_hashing_stays_by_identity_while_eq_is_element_wise():
    a, b = Tensor([1.0, 2.0]), Tensor([1.0, 2.0])
    assert hash(a) == id(a) and hash(a) != hash(b)
    table = {a: "a", b: "b"}
    assert table[a] == "a" and table[b] == "b"
    assert len({a, b, a}) == 2
    items = [a, b]
    assert a in items and items.index(a) == 0  # found by identity first
    with pytest.raises(RuntimeError, match="ambiguous"):  # then by ==, as in PyTorch
        items.index(b)
    assert (a == b).data.tolist() == [True, True]
    with pytest.raises(RuntimeError, match="Boolean value of a tensor with 2 values"):
        bool(a == b)
    assert bool(Tensor(3.0) == 3.0)
    assert (a == "a") is False and (a != None) is True  # noqa: E711


def test_params_and_optimizer_still_find_tensors():
    model = tl.nn.Linear(3, 2)
    params = list(model.parameters())
    opt = tl.optim.SGD(params, lr=0.1)
    x = Tensor(np.ones((4, 3)))
    model(x).sum().backward()
    before = [p.data.copy() for p in params]
    opt.step()
    for p, b in zip(params, before):
        assert not np.allclose(p.data, b)


def test_devices():
    assert tl.device("cpu") == tl.device("cpu:0".split(":")[0])
    assert str(tl.device("cpu")) == "cpu" and tl.device("cpu").type == "cpu"
    x = tl.zeros(2, 3, device="cpu")
    assert x.device == tl.device("cpu") and not x.is_cuda
    assert x.to("cpu") is x and x.cpu() is x and x.to(tl.device("cpu")) is x
    for spec in ("cuda", "cuda:0", "mps"):
        with pytest.raises(RuntimeError, match=f"device '{spec}' is not available"):
            x.to(spec)
        with pytest.raises(RuntimeError, match=f"zeros: device '{spec}' is not available"):
            tl.zeros(2, device=spec)
    for make in (
        lambda d: tl.tensor([1.0], device=d),
        lambda d: tl.ones(2, device=d),
        lambda d: tl.randn(2, device=d),
        lambda d: tl.arange(3, device=d),
        lambda d: tl.full((2,), 1.0, device=d),
        lambda d: tl.zeros_like(x, device=d),
        lambda d: tl.randint(0, 5, (2,), device=d),
    ):
        assert make("cpu").device == tl.device("cpu")
        with pytest.raises(RuntimeError, match="'cuda' is not available"):
            make("cuda")


def test_to_takes_dtype_device_tensor_and_keywords():
    x = Tensor(np.array([1.7, -2.2], dtype=np.float32))
    assert x.to(tl.float64).dtype == np.float64
    assert x.to("cpu", tl.long).dtype == tl.long
    assert x.to(device="cpu", dtype=tl.half).dtype == tl.float16
    assert x.to(Tensor(np.zeros(1, dtype=np.int32))).dtype == tl.int32
    assert x.to(tl.float32) is x and x.to(tl.float32, copy=True) is not x
    np.testing.assert_array_equal(x.long().data, [1, -2])  # truncation toward zero, as torch
    assert x.bool().dtype == tl.bool and x.double().dtype == tl.double
    assert x.bfloat16().dtype is tl.bfloat16
    assert x.type_as(Tensor(np.zeros(1, dtype=np.float16))).dtype == tl.half
    with pytest.raises(TypeError, match="to: got two dtypes"):
        x.to(tl.float64, tl.long)


def test_integer_casts_of_a_tensor_that_requires_grad_have_no_gradient():
    w = Tensor(np.array([0.5, 1.5]), requires_grad=True)
    ids = w.long()
    assert ids.dtype == tl.long and not ids.requires_grad
    y = w.float()
    assert y.requires_grad  # a float cast is differentiable


def test_dtype_names_compare_with_tensor_dtypes():
    assert tl.zeros(1, dtype=tl.long).dtype == tl.long == tl.int64
    assert tl.zeros(1, dtype=tl.int).dtype == tl.int32
    assert tl.zeros(1, dtype=tl.float).dtype == tl.float32
    assert tl.zeros(1, dtype=tl.double).dtype == tl.float64
    assert tl.zeros(1, dtype=tl.half).dtype == tl.float16
    assert tl.zeros(1, dtype=tl.bool).dtype == tl.bool
    assert tl.zeros(1, dtype=tl.bfloat16).dtype is tl.bfloat16
    assert Tensor([1.0]).dtype == tl.float and Tensor([1.0]).is_floating_point()
    assert not tl.arange(3).is_floating_point() and tl.arange(3).dtype == tl.long


def test_creation_like_and_randint_forms():
    x = Tensor(np.ones((2, 2), dtype=np.float64))
    assert tl.zeros_like(x).dtype == np.float64  # keeps the dtype, as torch
    assert tl.ones_like(x, dtype=tl.float32).dtype == np.float32
    np.testing.assert_array_equal(tl.full_like(x, 7).data, np.full((2, 2), 7.0))
    assert tl.randn_like(x).shape == (2, 2)
    r = tl.randint(10, (3, 2), generator=np.random.default_rng(0))
    assert r.shape == (3, 2) and r.dtype == tl.long and 0 <= r.data.min() and r.data.max() < 10
    with pytest.raises(ValueError, match="randint: needs low < high"):
        tl.randint(5, 5, (2,))
