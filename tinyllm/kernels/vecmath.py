"""exp and erf as plain arithmetic, so that a numba loop calling them runs in SIMD registers.

A numba loop that calls `math.exp` or `math.erf` calls the C math library once per element. The
compiler cannot turn such a call into vector instructions, so a loop that could otherwise
process 8 float32 values per instruction (AVX2) processes one, a function call an element.
NumPy's `np.exp` is vectorized, but calling it from a kernel means one more pass over memory.
Written as additions, multiplications and a division, the same functions inline into the fused
loop and LLVM vectorizes them with it: several times faster per element (docs/03-kernels.md).

exp — range reduction (Cody & Waite 1980). Write x = k·ln 2 + r with k = round(x / ln 2), so
|r| ≤ ln 2 / 2; then

    eˣ = 2ᵏ · eʳ

Multiplying by 2ᵏ is exact and needs no multiplication: a float32 is 2^(E − 127) · 1.m with E
its 8-bit exponent field (IEEE 754), so adding k to E scales by 2ᵏ. eʳ on the short interval is a
polynomial 1 + r + c₂r² + … + c₆r⁶ whose coefficients were fitted (weighted least squares
towards minimax) for a relative error of 3·10⁻⁹ — below float32's rounding. ln 2 is split into
a short high part, so that k·ln2_hi is exact, and the small rest; r = (x − k·ln2_hi) − k·ln2_lo
then keeps its precision. Results below the smallest normal float32 are flushed to 0; above
the largest they are +∞.

erf — an odd function that reaches ±1 in float32 at |x| ≈ 3.92. On [−4, 4] (arguments are
clamped there) a rational function in x²,

    erf(x) ≈ x · P(x²) / Q(x²),     P and Q of degree 5,

fitted the same way, is within 2·10⁻⁸ of erf; evaluated in float32 it is within 4·10⁻⁷ (a few
units in the last place of 1).

These approximations are for float32. `vexp(x)` / `verf(x)` pick them for float32 arguments
and call libm (`math.exp` / `math.erf`) for float64 ones; with NUMBA_DISABLE_JIT=1 they run as
plain Python. The references are `np.exp` and `math.erf` in float64 (tests/kernels/test_vecmath.py).

They compile with tinyllm's kernel options (tinyllm/kernels/jit.py).
"""

import math

import numpy as np
from numba import types
from numba.extending import intrinsic, overload

from tinyllm.kernels.jit import jit

# ---- reinterpreting bits: the one thing plain arithmetic cannot do --------------------------


def float32_from_bits(bits):
    """The float32 whose IEEE 754 bit pattern is the 32-bit integer `bits` (C's memcpy)."""
    return np.int32(bits).view(np.float32)


def float32_to_bits(x):
    """The IEEE 754 bit pattern of the float32 `x`, as an int32."""
    return np.float32(x).view(np.int32)


@intrinsic
def _bitcast_to_float32(typingctx, bits):
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        from llvmlite import ir

        value = args[0]
        if bits.bitwidth != 32:
            value = builder.trunc(value, ir.IntType(32))
        return builder.bitcast(value, ir.FloatType())

    return types.float32(bits), codegen


@intrinsic
def _bitcast_to_int32(typingctx, x):
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        from llvmlite import ir

        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(x), codegen


@overload(float32_from_bits)
def _float32_from_bits_numba(bits):
    return lambda bits: _bitcast_to_float32(bits)


@overload(float32_to_bits)
def _float32_to_bits_numba(x):
    return lambda x: _bitcast_to_int32(x)


# ---- exp ------------------------------------------------------------------------------------

_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)  # 355/512: k·LN2_HI is exact for |k| < 2¹⁵
_LN2_LO = np.float32(-2.12194440e-4)  # ln 2 − LN2_HI
_EXP_C = tuple(
    np.float32(c)
    for c in (0.4999999345, 0.1666652068, 0.04166838744, 0.008368710323, 0.001381461023)
)
_EXP_MIN = np.float32(-87.33)  # e^x < FLT_MIN (1.18e-38) below: flushed to 0
_EXP_MAX = np.float32(88.72283)  # ln FLT_MAX: e^x is +∞ above


@jit
def exp_f32(x):
    """eˣ for a float32 x, from 2ᵏ·eʳ (see the module docstring)."""
    c2, c3, c4, c5, c6 = _EXP_C
    xc = min(max(x, _EXP_MIN), _EXP_MAX) if x == x else np.float32(0.0)
    k = np.floor(xc * _LOG2E + np.float32(0.5))
    r = (xc - k * _LN2_HI) - k * _LN2_LO
    p = ((((c6 * r + c5) * r + c4) * r + c3) * r + c2) * (r * r) + r + np.float32(1.0)
    # p is a normal float in [0.7, 1.42], so its exponent field is 126 or 127: multiplying by
    # 2ᵏ is adding k to that field; x in [−87.33, 88.72] keeps the field in [1, 254].
    y = float32_from_bits(float32_to_bits(p) + (np.int32(k) << np.int32(23)))
    y = np.float32(0.0) if x < _EXP_MIN else y
    y = np.float32(np.inf) if x > _EXP_MAX else y
    return y if x == x else x  # NaN in, NaN out


# ---- erf ------------------------------------------------------------------------------------

_ERF_P = tuple(
    np.float32(c)
    for c in (
        1.1283789768,
        0.19625047569,
        0.053467546814,
        0.004003659213,
        0.0002880333344,
        1.9747200846e-06,
    )
)
_ERF_Q = tuple(
    np.float32(c)
    for c in (1.0, 0.50725361755, 0.11647692273, 0.015444475893, 0.0012163461816, 3.7479272447e-05)
)


@jit
def erf_f32(x):
    """erf(x) for a float32 x: x·P(x²)/Q(x²) on [−4, 4] (see the module docstring)."""
    p0, p1, p2, p3, p4, p5 = _ERF_P
    q0, q1, q2, q3, q4, q5 = _ERF_Q
    xc = min(max(x, np.float32(-4.0)), np.float32(4.0)) if x == x else np.float32(0.0)
    z = xc * xc
    p = ((((p5 * z + p4) * z + p3) * z + p2) * z + p1) * z + p0
    q = ((((q5 * z + q4) * z + q3) * z + q2) * z + q1) * z + q0
    y = xc * p / q
    return y if x == x else x


# ---- the functions kernels call: float32 → the above, anything else → libm ------------------


def vexp(x):
    """eˣ: the vectorizable float32 version for float32, math.exp otherwise."""
    return exp_f32(x) if isinstance(x, np.float32) else type(x)(math.exp(x))


def verf(x):
    """erf(x): the vectorizable float32 version for float32, math.erf otherwise."""
    return erf_f32(x) if isinstance(x, np.float32) else type(x)(math.erf(x))


@overload(vexp)
def _vexp_numba(x):
    if x == types.float32:
        return lambda x: exp_f32(x)
    return lambda x: math.exp(x)


@overload(verf)
def _verf_numba(x):
    if x == types.float32:
        return lambda x: erf_f32(x)
    return lambda x: math.erf(x)
