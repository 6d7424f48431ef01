"""nn.init: each initializer's distribution against its paper's formula, statistically.

With n draws, the sample variance of a distribution with variance σ² has standard error about
σ²·√(2/n) (normal) — the tolerances below are several standard errors, so a wrong formula
(a missing √3, fan_in for fan_out, a wrong gain) fails while sampling noise does not.
"""

import math

import numpy as np
import pytest

import tinyllm
from tinyllm import nn
from tinyllm.nn import init


def param(*shape, dtype=np.float32):
    return nn.Parameter(np.zeros(shape, dtype=dtype))


def phi(z):
    return math.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def Phi(z):
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def test_calculate_gain_values():
    assert init.calculate_gain("linear") == 1 and init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("selu") == pytest.approx(0.75)
    with pytest.raises(ValueError, match="'swish'"):
        init.calculate_gain("swish")


# (initializer, expected mean, expected variance) for a (out=400, in=300, k=3) weight:
FAN_IN, FAN_OUT = 300 * 3, 400 * 3
CASES = {
    "normal": (lambda w: init.normal_(w, 0.5, 0.02), 0.5, 0.02**2),
    "uniform": (lambda w: init.uniform_(w, -1.0, 3.0), 1.0, 4.0**2 / 12),
    "xavier_uniform": (lambda w: init.xavier_uniform_(w, gain=2.0), 0.0, 8 / (FAN_IN + FAN_OUT)),
    "xavier_normal": (lambda w: init.xavier_normal_(w), 0.0, 2 / (FAN_IN + FAN_OUT)),
    "kaiming_uniform": (
        lambda w: init.kaiming_uniform_(w, nonlinearity="relu"),
        0.0,
        2 / FAN_IN,
    ),
    "kaiming_normal_fan_out": (
        lambda w: init.kaiming_normal_(w, a=0.1, mode="fan_out"),
        0.0,
        2 / (1 + 0.01) / FAN_OUT,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_moments_match_the_formula(name):
    fill, mean, var = CASES[name]
    w = param(400, 300, 3)
    assert fill(w) is w
    x = w.data.astype(np.float64)
    n = x.size
    assert abs(x.mean() - mean) < 5 * math.sqrt(var / n)
    assert abs(x.var() / var - 1) < 5 * math.sqrt(2 / n) + 1e-3  # (uniform's is smaller)
    if "uniform" in name and name != "uniform":
        a = math.sqrt(3 * var)  # U(−a, a) has variance a²/3
        assert np.abs(x).max() <= a * (1 + 1e-6) and np.abs(x).max() > 0.99 * a


def test_trunc_normal_matches_the_truncated_moments():
    mean, std, a, b = 0.3, 1.0, -1.0, 2.0
    w = init.trunc_normal_(param(200_000), mean, std, a, b)
    x = w.data.astype(np.float64)
    assert x.min() >= a and x.max() <= b
    al, be = (a - mean) / std, (b - mean) / std
    Z = Phi(be) - Phi(al)
    mu = mean + std * (phi(al) - phi(be)) / Z
    var = std**2 * (1 + (al * phi(al) - be * phi(be)) / Z - ((phi(al) - phi(be)) / Z) ** 2)
    assert abs(x.mean() - mu) < 5 * math.sqrt(var / x.size)
    assert abs(x.var() / var - 1) < 5 * math.sqrt(2 / x.size)
    with pytest.raises(ValueError, match="too far"):
        init.trunc_normal_(param(3), mean=0.0, std=1.0, a=10.0, b=11.0)


def test_constants_seeding_and_no_graph():
    w = param(3, 4)
    np.testing.assert_array_equal(init.ones_(w).data, np.ones((3, 4)))
    np.testing.assert_array_equal(init.zeros_(w).data, np.zeros((3, 4)))
    np.testing.assert_array_equal(init.constant_(w, 0.25).data, np.full((3, 4), 0.25))
    np.testing.assert_array_equal(init.eye_(w).data, np.eye(3, 4))
    assert w.grad is None and w.is_leaf and w.requires_grad
    tinyllm.manual_seed(7)
    a = init.normal_(param(5)).data.copy()
    tinyllm.manual_seed(7)
    np.testing.assert_array_equal(init.normal_(param(5)).data, a)  # the seeded generator
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    np.testing.assert_array_equal(
        init.xavier_uniform_(param(4, 4), generator=g1).data,
        init.xavier_uniform_(param(4, 4), generator=g2).data,
    )


def test_half_dtypes_are_rounded_and_errors_are_named():
    b = nn.Linear(64, 64, bias=False).to(tinyllm.bfloat16).weight
    init.normal_(b, std=0.02)
    assert b.dtype is tinyllm.bfloat16
    assert abs(b.numpy().std() - 0.02) < 0.002
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(param(5))
    with pytest.raises(ValueError, match="'fan_avg'"):
        init.kaiming_normal_(param(2, 2), mode="fan_avg")


def test_same_bounds_as_torch():
    torch = pytest.importorskip("torch")
    tinit = torch.nn.init
    shape = (50, 40, 2)
    # uniform initializers: the largest |value| approaches the bound; compare the bounds via
    # PyTorch's own fan computation and gain
    fan_in, fan_out = tinit._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert (fan_in, fan_out) == init._calculate_fan_in_and_fan_out(param(*shape))
    for nl, a in [("relu", 0), ("leaky_relu", 0.3), ("tanh", None), ("selu", None)]:
        assert init.calculate_gain(nl, a) == pytest.approx(tinit.calculate_gain(nl, a))
    big = (300, 300)
    for ours, theirs in [
        (init.xavier_uniform_, tinit.xavier_uniform_),
        (init.kaiming_uniform_, tinit.kaiming_uniform_),
    ]:
        x = ours(param(*big)).data
        y = theirs(torch.empty(big)).numpy()
        assert abs(np.abs(x).max() / np.abs(y).max() - 1) < 1e-3
        assert abs(x.std() / y.std() - 1) < 0.02
    for ours, theirs in [
        (init.xavier_normal_, tinit.xavier_normal_),
        (init.kaiming_normal_, tinit.kaiming_normal_),
    ]:
        assert abs(ours(param(*big)).data.std() / theirs(torch.empty(big)).std().item() - 1) < 0.02
