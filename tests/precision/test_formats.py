"""bf16 / fp16 rounding and the format table.

Truth comes from hand-computed IEEE bit patterns, from the half-ulp property of correct
rounding, from np.finfo, and (when installed) from PyTorch's own bf16 conversion and finfo.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyllm.precision import (
    BF16,
    FP16,
    FP32,
    FP64,
    INT8,
    bf16_bits_to_fp32,
    format_table,
    fp32_to_bf16_bits,
    round_to_bf16,
    round_to_fp16,
)


def _f32(bits):
    return np.array(bits, dtype=np.uint32).view(np.float32)


# ---- bf16 against hand-computed bit patterns ------------------------------------------------

# (fp32 bits, expected bf16 bits, what it shows)
HAND_CASES = [
    (0x3F800000, 0x3F80, "1.0 is exact"),
    (0x3F807FFF, 0x3F80, "just below half an ulp rounds down"),
    (0x3F808000, 0x3F80, "tie, kept half even (0x3F80): stays (ties to even, down)"),
    (0x3F808001, 0x3F81, "just above half an ulp rounds up"),
    (0x3F818000, 0x3F82, "tie, kept half odd (0x3F81): rounds up to even 0x3F82"),
    (0xBF808000, 0xBF80, "negative tie rounds the magnitude to even"),
    (0xBF818000, 0xBF82, "negative tie, odd: magnitude up"),
    (0xBFC00000, 0xBFC0, "-1.5 exact"),
    (0x80000000, 0x8000, "-0.0 keeps its sign"),
    (0x00000000, 0x0000, "+0.0"),
    (0x7F800000, 0x7F80, "+inf"),
    (0xFF800000, 0xFF80, "-inf"),
    (0x7F7F0000, 0x7F7F, "largest bf16 (3.3895e38) is exact"),
    (0x7F7F7FFF, 0x7F7F, "below the midpoint to 2^128 stays finite"),
    (0x7F7F8000, 0x7F80, "midpoint above the largest bf16 (odd): ties to even = inf"),
    (0x7F7FFFFF, 0x7F80, "fp32 max overflows to +inf"),
    (0xFF7FFFFF, 0xFF80, "-fp32 max overflows to -inf"),
    (0x00800000, 0x0080, "smallest normal 2^-126 is exact"),
    (0x007FFFFF, 0x0080, "largest fp32 subnormal rounds up into the smallest normal"),
    (0x007F0000, 0x007F, "largest bf16 subnormal is exact"),
    (0x00010000, 0x0001, "smallest bf16 subnormal 2^-133 is exact"),
    (0x00000001, 0x0000, "smallest fp32 subnormal underflows to +0"),
    (0x00008000, 0x0000, "subnormal tie, even: down to 0"),
    (0x00008001, 0x0001, "subnormal above the tie: up"),
    (0x00018000, 0x0002, "subnormal tie, odd: up to even"),
    (0x40490FDB, 0x4049, "pi (3.14159274) -> 3.140625"),
]


@pytest.mark.parametrize("src,expected,why", HAND_CASES, ids=[c[2] for c in HAND_CASES])
def test_bf16_hand_bit_patterns(src, expected, why):
    got = fp32_to_bf16_bits(_f32([src]))
    assert got.dtype == np.uint16
    assert int(got[0]) == expected, (
        f"{why}: 0x{src:08X} -> 0x{int(got[0]):04X}, expected 0x{expected:04X}"
    )


@pytest.mark.parametrize(
    "src,expected",
    [
        (0x7FC00000, 0x7FC0),  # quiet NaN
        (0xFFC00000, 0xFFC0),  # negative quiet NaN keeps its sign
        (0x7F800001, 0x7FC0),  # signalling NaN with its payload only in the dropped half: must not
        # become 0x7F80 (inf); the quiet bit is set
        (0xFF812345, 0xFFC1),  # payload's top bits kept, quiet bit set
    ],
)
def test_bf16_nan_stays_quiet_nan_with_sign(src, expected):
    got = fp32_to_bf16_bits(_f32([src]))
    assert int(got[0]) == expected
    assert np.isnan(bf16_bits_to_fp32(got))[0]


def test_bf16_back_to_fp32_is_a_shift():
    bits = np.array([0x3F80, 0xC049, 0x0001, 0x7F7F, 0xFF80], dtype=np.uint16)
    expected = _f32([0x3F800000, 0xC0490000, 0x00010000, 0x7F7F0000, 0xFF800000])
    np.testing.assert_array_equal(bf16_bits_to_fp32(bits).view(np.uint32), expected.view(np.uint32))


def test_bf16_bad_input_names_the_problem():
    with pytest.raises(TypeError, match="floating-point"):
        fp32_to_bf16_bits(np.arange(3))
    with pytest.raises(TypeError, match="uint16"):
        bf16_bits_to_fp32(np.arange(3, dtype=np.int32))


# ---- properties of correct rounding ---------------------------------------------------------

finite_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


def _bf16_ulp(x):
    """Spacing of bf16 numbers at |x|: 2^(e − 7) with e the exponent (at least −126)."""
    e = np.maximum(np.floor(np.log2(np.maximum(np.abs(x), 2.0**-140))), -126)
    return 2.0 ** (e - 7)


@given(hnp.arrays(np.float32, st.integers(1, 64), elements=finite_f32))
def test_bf16_round_trip_within_half_ulp_and_ties_to_even(x):
    x = x[np.abs(x.astype(np.float64)) < 3.3961776e38]  # below the overflow midpoint
    r = round_to_bf16(x).astype(np.float64)
    bits = fp32_to_bf16_bits(x)
    assert np.all((r.astype(np.float32).view(np.uint32) & 0xFFFF) == 0)  # representable
    err = np.abs(r - x.astype(np.float64))
    half = _bf16_ulp(x.astype(np.float64)) / 2
    assert np.all(err <= half)
    tie = err == half
    assert np.all(bits[tie] % 2 == 0), "exact ties must round to the even pattern"
    assert np.all(np.signbit(r) == np.signbit(x))


@given(hnp.arrays(np.float32, st.integers(1, 64), elements=finite_f32))
def test_bf16_rounding_is_monotone(x):
    x = np.sort(x)
    r = round_to_bf16(x)
    assert np.all(r[1:] >= r[:-1])  # (not np.diff: two values past bf16's max both round to inf)


# ---- PyTorch's conversion -----------------------------------------------------------------


def _torch_bf16_bits(torch, x):
    return torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)


def _assert_same_as_torch(torch, x):
    ours, theirs = fp32_to_bf16_bits(x), _torch_bf16_bits(torch, x)
    nan = np.isnan(x)
    # PyTorch writes NaN as 0x7FC0 or 0xFFFF depending on the code path: compare NaN-ness.
    assert np.all(np.isnan(bf16_bits_to_fp32(theirs[nan])))
    assert np.all(np.isnan(bf16_bits_to_fp32(ours[nan])))
    bad = np.flatnonzero(ours[~nan] != theirs[~nan])
    assert bad.size == 0, (
        f"{bad.size} patterns differ, e.g. 0x{x[~nan].view(np.uint32)[bad[0]]:08X}: "
        f"0x{ours[~nan][bad[0]]:04X} vs torch 0x{theirs[~nan][bad[0]]:04X}"
    )


@given(
    hnp.arrays(
        np.float32,
        st.integers(1, 100),
        elements=st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True),
    )
)
def test_bf16_matches_pytorch_on_drawn_floats(x):
    torch = pytest.importorskip("torch")
    _assert_same_as_torch(torch, x)


def test_bf16_matches_pytorch_on_random_bit_patterns():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32)
    # Every hand case and every tie pattern (low half exactly 0x8000) of some upper halves too.
    ties = (rng.integers(0, 2**16, size=20_000, dtype=np.uint32) << 16) | 0x8000
    specials = np.array([c[0] for c in HAND_CASES], dtype=np.uint32)
    _assert_same_as_torch(torch, np.concatenate([bits, ties, specials]).view(np.float32))


# ---- fp16 -----------------------------------------------------------------------------------


def test_round_to_fp16_overflow_underflow_and_ties():
    x = np.array(
        [
            65504,
            65519,
            65520,
            -70000,
            2.0**-24,
            2.0**-25,
            1.5 * 2.0**-25,
            1 + 2.0**-11,
            1 + 3 * 2.0**-11,
            np.pi,
        ],
        dtype=np.float32,
    )
    expected = np.array(
        [65504, 65504, np.inf, -np.inf, 2.0**-24, 0.0, 2.0**-24, 1.0, 1 + 2 * 2.0**-10, 3.140625],
        dtype=np.float32,
    )
    got = round_to_fp16(x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


# ---- the format table -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt,dtype", [(FP16, np.float16), (FP32, np.float32), (FP64, np.float64)])
def test_format_table_matches_numpy_finfo(fmt, dtype):
    fi = np.finfo(dtype)
    assert fmt.bits == fi.bits
    assert fmt.exponent_bits == fi.nexp
    assert fmt.fraction_bits == fi.nmant
    assert fmt.max == float(fi.max)
    assert fmt.smallest_normal == float(fi.smallest_normal)
    assert fmt.smallest_subnormal == float(fi.smallest_subnormal)
    assert fmt.eps == float(fi.eps)
    # finfo's "precision" is floor(−log10 eps) = floor(f·log10 2); ours counts the implicit bit.
    assert int(-np.log10(fmt.eps)) == fi.precision
    assert fmt.decimal_digits == pytest.approx((fi.nmant + 1) * np.log10(2))


def test_bf16_table_hand_values_and_bit_layout():
    assert BF16.max == pytest.approx(3.3895e38, rel=1e-4)
    assert BF16.eps == 0.0078125 == 2.0**-7
    assert BF16.smallest_normal == 2.0**-126
    assert BF16.smallest_subnormal == 2.0**-133
    assert BF16.max_exact_integer == 256
    # The same numbers read off the bit patterns: 0x7F7F (largest), 0x0080, 0x0001, 0x3C00.
    vals = bf16_bits_to_fp32(np.array([0x7F7F, 0x0080, 0x0001, 0x3C00], dtype=np.uint16))
    assert vals.tolist() == [BF16.max, BF16.smallest_normal, BF16.smallest_subnormal, BF16.eps]
    assert round_to_bf16(np.float32(257.0)) == 256.0  # 257 is the first integer bf16 loses


def test_bf16_table_matches_torch_finfo():
    torch = pytest.importorskip("torch")
    fi = torch.finfo(torch.bfloat16)
    assert fi.bits == BF16.bits
    assert fi.max == BF16.max
    assert fi.eps == BF16.eps
    assert fi.smallest_normal == BF16.smallest_normal
    assert fi.resolution == 10.0 ** -int(-np.log10(BF16.eps))


def test_format_table_rows():
    rows = {r["name"]: r for r in format_table()}
    assert [rows[n]["bytes"] for n in ("fp64", "fp32", "fp16", "bf16", "int8")] == [8, 4, 2, 2, 1]
    assert (rows["int8"]["min"], rows["int8"]["max"]) == (-128, 127) == (INT8.min, INT8.max)
    # bf16 keeps fp32's exponent (normal range) but has fewer fraction bits than fp16.
    assert rows["bf16"]["smallest_normal"] == rows["fp32"]["smallest_normal"]
    assert rows["bf16"]["eps"] > rows["fp16"]["eps"] > rows["fp32"]["eps"]
    assert rows["fp16"]["max"] == 65504.0
