"""tinyllm/kernels/vecmath.py: the vectorizable float32 exp and erf against NumPy's float64 exp
and the standard library's erf, over the whole float32 range (including ±∞, NaN, the underflow
and overflow edges); float64 arguments must give libm's values exactly.
"""

import math

import numba
import numpy as np

from tinyllm.kernels import jit, vecmath


@numba.njit(fastmath=jit.FASTMATH, error_model="numpy")
def _map_exp_erf(x, e, f):
    for i in range(x.size):
        e[i] = vecmath.vexp(x[i])
        f[i] = vecmath.verf(x[i])


def _exp_erf(x):
    e, f = np.empty_like(x), np.empty_like(x)
    _map_exp_erf(x, e, f)
    return e, f


def test_float32_exp_within_a_few_ulp_of_numpy_float64():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            rng.uniform(-87.3, 88.7, 200_000),
            np.linspace(-1, 1, 10_001),
            [0.0, -0.0, 1e-30, -1e-30, 88.72, -87.33],
        ]
    ).astype(np.float32)
    got, _ = _exp_erf(x)
    want = np.exp(x.astype(np.float64))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=4 * np.finfo(np.float32).eps, atol=0)


def test_float32_exp_edges():
    x = np.array([np.nan, np.inf, -np.inf, 88.73, 1e30, -87.34, -200.0, -1e30], dtype=np.float32)
    got, _ = _exp_erf(x)
    assert np.isnan(got[0])
    assert got[1] == got[3] == got[4] == np.inf
    assert np.all(got[5:] <= np.finfo(np.float32).tiny) and np.all(got[2:3] == 0)
    assert np.all(got[6:] == 0)


def test_float32_erf_within_4e7_of_libm():
    x = np.concatenate([np.linspace(-6, 6, 200_001), [np.inf, -np.inf, 0.0, 1e-30]])
    x32 = x.astype(np.float32)
    _, got = _exp_erf(x32)
    want = np.array([math.erf(v) for v in x32.astype(np.float64)])
    np.testing.assert_allclose(got, want, rtol=0, atol=4e-7)
    assert np.isnan(_exp_erf(np.array([np.nan], np.float32))[1][0])


def test_float64_arguments_use_libm_exactly():
    x = np.linspace(-30, 30, 1001)
    e, f = _exp_erf(x)
    np.testing.assert_array_equal(e, [math.exp(v) for v in x])
    np.testing.assert_array_equal(f, [math.erf(v) for v in x])


def test_bit_reinterpretation_round_trips():
    for v in (1.0, -2.5, 3.4e38, 1.2e-38, 0.0):
        bits = vecmath.float32_to_bits(np.float32(v))
        assert vecmath.float32_from_bits(bits) == np.float32(v)
    assert vecmath.float32_to_bits(np.float32(1.0)) == 127 << 23  # IEEE 754: 2^(127−127)
