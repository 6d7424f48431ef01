"""The PyTorch-shaped ops against PyTorch itself, forward and backward (skipped without it).

Each case runs the same call written the PyTorch way on a tinyllm tensor and on a torch
tensor — `x.max(1)`, `x.topk(2, dim=0)`, `x.std(unbiased=False)`, `a // b` — and compares values,
indices and, for the differentiable ones, the gradient of a random cotangent. Ties are
included on purpose: where the index found matters (max(dim), argmax), tinyllm must pick the
index PyTorch picks.
"""

import numpy as np
import pytest

import tinyllm as tl
from tinyllm import Tensor

torch = pytest.importorskip("torch")

close = np.testing.assert_allclose
TIES = np.array([[1.0, 3.0, 3.0, -2.0], [2.0, 2.0, 0.5, 2.0], [-1.0, 4.0, 4.0, 4.0]])
DISTINCT = np.random.default_rng(0).permutation(24).reshape(2, 3, 4) / 7.0 - 1.0


GATHER_INDEX = np.array([[[0, 2, 1, 1], [1, 1, 0, 2]]] * 2)  # repeats: gradients accumulate


def _lib(t):
    """The library a tensor belongs to, so one lambda can build an index tensor for both."""
    return torch if isinstance(t, torch.Tensor) else tl


def _pair(x):
    return Tensor(x.copy(), requires_grad=True), torch.tensor(x.copy(), requires_grad=True)


def _check(fn, x, differentiable=True, seed=0):
    """fn(t) on both libraries: outputs (a tensor or (values, indices)) and gradients agree."""
    a, b = _pair(x)
    out_a, out_b = fn(a), fn(b)
    if isinstance(out_b, tuple):  # torch.return_types: (values, indices)
        np.testing.assert_array_equal(out_a.indices.data, out_b.indices.numpy())
        assert out_a.indices.dtype == np.int64
        out_a, out_b = out_a.values, out_b.values
    if out_b.dtype in (torch.int64, torch.bool):
        np.testing.assert_array_equal(out_a.data, out_b.numpy())
        return
    close(out_a.data, out_b.detach().numpy(), rtol=1e-12, atol=1e-12)
    if differentiable:
        u = np.random.default_rng(seed).standard_normal(out_a.shape)
        out_a.backward(u)
        out_b.backward(torch.tensor(u))
        close(a.grad, b.grad.numpy(), rtol=1e-12, atol=1e-12)


CASES = {
    "max_dim": (lambda t: t.max(1), TIES),
    "max_dim_keepdim": (lambda t: t.max(dim=0, keepdim=True), TIES),
    "min_dim": (lambda t: t.min(1), TIES),
    "max_all": (lambda t: t.max(), TIES),
    "min_all": (lambda t: t.min(), TIES),
    "argmax": (lambda t: t.argmax(), TIES),
    "argmax_dim": (lambda t: t.argmax(dim=1), TIES),
    "argmin_dim_keepdim": (lambda t: t.argmin(0, keepdim=True), TIES),
    "sort": (lambda t: t.sort(dim=-1, stable=True), TIES),
    "sort_descending": (lambda t: t.sort(dim=1, descending=True, stable=True), TIES),
    "sort_dim0": (lambda t: t.sort(0), DISTINCT),
    "argsort": (lambda t: t.argsort(dim=1, descending=True), DISTINCT),
    "topk": (lambda t: t.topk(2), DISTINCT),
    "topk_smallest": (lambda t: t.topk(2, dim=1, largest=False), DISTINCT),
    "gather": (lambda t: t.gather(1, _lib(t).tensor(GATHER_INDEX, dtype=_lib(t).long)), DISTINCT),
    "tril": (lambda t: t.tril(), DISTINCT),
    "tril_offset": (lambda t: t.tril(-1), DISTINCT),
    "triu_offset": (lambda t: t.triu(diagonal=1), DISTINCT),
    "std": (lambda t: t.std(), DISTINCT),
    "std_dim": (lambda t: t.std(dim=1, keepdim=True), DISTINCT),
    "std_biased": (lambda t: t.std(1, unbiased=False), DISTINCT),
    "var_correction": (lambda t: t.var(dim=(0, 2), correction=0), DISTINCT),
    "sum_dim_tuple": (lambda t: t.sum(dim=(0, 2), keepdim=True), DISTINCT),
    "mean_dim": (lambda t: t.mean(dim=-1), DISTINCT),
    "amax_ties": (lambda t: t.amax(dim=1), TIES),
    "softmax_dim": (lambda t: t.softmax(dim=0), DISTINCT),
    "log_softmax_dim": (lambda t: t.log_softmax(dim=1), DISTINCT),
    "floor_divide": (lambda t: t // 0.3, DISTINCT),
    "remainder": (lambda t: t % 0.3, DISTINCT),
    "rremainder": (lambda t: 1.7 % (t + 2.0), DISTINCT),
    "pow_tensor": (lambda t: (t + 2.0) ** (t * 0.5), DISTINCT),
    "eq": (lambda t: t == 2.0, TIES),
    "ne": (lambda t: t != 2.0, TIES),
    "lt": (lambda t: t < 2.0, TIES),
    "t": (lambda t: t.t(), TIES),
    "mT": (lambda t: t.mT, DISTINCT),
    "split_dim": (lambda t: t.split(2, dim=2)[1], DISTINCT),
    "chunk_dim": (lambda t: t.chunk(2, dim=-1)[0], DISTINCT),
    "unsqueeze_squeeze": (lambda t: t.unsqueeze(dim=1).squeeze(dim=1), DISTINCT),
}


@pytest.mark.parametrize("name", CASES)
def test_against_torch(name):
    fn, x = CASES[name]
    # torch has no derivative of floor_divide, nor of remainder for its divisor (tinyllm's:
    # 0 and −⌊a/b⌋, gradchecked in test_surface_ops.py)
    _check(fn, x, differentiable=name not in ("floor_divide", "rremainder"))


def test_floor_divide_has_a_zero_gradient_where_torch_has_none():
    # PyTorch raises "derivative for aten::floor_divide is not implemented"; the step function
    # ⌊a/b⌋ has derivative 0 wherever it has one, which tinyllm returns (and gradcheck agrees
    # with away from the jumps, tests/ops/test_surface_ops.py).
    b = torch.tensor(DISTINCT, requires_grad=True)
    with pytest.raises(RuntimeError, match="floor_divide"):
        (b // 0.3).sum().backward()
    a = Tensor(DISTINCT.copy(), requires_grad=True)
    (a // 0.3).sum().backward()
    close(a.grad, np.zeros_like(DISTINCT))


def test_integer_floor_divide_and_remainder_like_torch():
    a = np.array([7, -7, 7, -7, 5, -5], dtype=np.int64)
    b = np.array([2, 2, -2, -2, 3, 3], dtype=np.int64)
    np.testing.assert_array_equal(
        (Tensor(a) // Tensor(b)).data, (torch.tensor(a) // torch.tensor(b)).numpy()
    )
    np.testing.assert_array_equal(
        (Tensor(a) % Tensor(b)).data, (torch.tensor(a) % torch.tensor(b)).numpy()
    )
    np.testing.assert_array_equal((Tensor(a) % -3).data, (torch.tensor(a) % -3).numpy())


def test_cat_stack_with_dim_like_torch():
    xs = [DISTINCT, DISTINCT * 2]
    close(
        tl.cat([Tensor(x) for x in xs], dim=1).data,
        torch.cat([torch.tensor(x) for x in xs], dim=1).numpy(),
    )
    close(
        tl.stack([Tensor(x) for x in xs], dim=-1).data,
        torch.stack([torch.tensor(x) for x in xs], dim=-1).numpy(),
    )


def test_dtype_names_match_torch():
    pairs = {
        "long": torch.long,
        "int64": torch.int64,
        "int32": torch.int32,
        "int": torch.int,
        "bool": torch.bool,
        "float": torch.float,
        "float32": torch.float32,
        "double": torch.double,
        "float64": torch.float64,
        "half": torch.half,
        "float16": torch.float16,
        "int16": torch.int16,
        "short": torch.short,
        "int8": torch.int8,
        "uint8": torch.uint8,
    }
    for name, th in pairs.items():
        t = tl.zeros(2, dtype=getattr(tl, name))
        assert t.dtype == getattr(tl, name)
        assert t.element_size() == torch.zeros(2, dtype=th).element_size(), name
        assert str(torch.zeros(2, dtype=th).numpy().dtype) == str(t.dtype), name
    x = Tensor([1.5, -2.5])
    for method in ("long", "int", "bool", "float", "double", "half", "short"):
        got = getattr(x, method)()
        want = getattr(torch.tensor([1.5, -2.5]), method)()
        np.testing.assert_array_equal(got.data, want.numpy())


def test_size_numel_dim_like_torch():
    x, y = Tensor(DISTINCT), torch.tensor(DISTINCT)
    assert x.size() == y.size() and tuple(x.size()) == tuple(y.size())
    assert x.size(1) == y.size(1) and x.size(-1) == y.size(-1)
    assert x.numel() == y.numel() and x.dim() == y.dim() and x.ndim == y.ndim
    assert x.size().numel() == y.size().numel()


def test_arange_and_full_dtypes_like_torch():
    for args in [(5,), (1, 7, 2), (0, 1, 0.25), (2.0,)]:
        a, b = tl.arange(*args), torch.arange(*args)
        assert str(a.dtype) == str(b.numpy().dtype), args
        close(a.data, b.numpy())
    for v in (3, 2.5, True):
        assert str(tl.full((2,), v).dtype) == str(torch.full((2,), v).numpy().dtype)
