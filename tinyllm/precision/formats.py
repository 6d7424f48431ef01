"""Number formats: what fp64, fp32, fp16, bf16 and int8 can hold, and how bf16 is emulated.

A binary floating-point number with e exponent bits and f fraction bits is stored as

    sign (1 bit) | exponent E (e bits) | fraction F (f bits)

and, for 0 < E < 2ᵉ − 1 (a *normal* number), means

    x = (−1)^sign · (1 + F/2ᶠ) · 2^(E − bias),        bias = 2^(e−1) − 1.

E = 0 holds zero and the *subnormals*, x = (−1)^sign · (F/2ᶠ) · 2^(1 − bias), which fill the gap
between 0 and the smallest normal number with evenly spaced values (losing precision as they
go). E = 2ᵉ − 1 holds ±inf (F = 0) and NaN (F ≠ 0). Everything about a format's range and
precision therefore follows from (e, f) alone:

    largest finite   (2 − 2^−f) · 2^bias          all fraction bits set, largest normal exponent
    smallest normal  2^(1 − bias)
    smallest subnorm 2^(1 − bias − f)             one fraction bit, the smallest exponent
    machine epsilon  2^−f                         gap between 1 and the next number
    decimal digits   log10(2^(f+1))               the significand has p = f + 1 bits

`FloatFormat` computes these from the bit layout; tests check them against `np.finfo` (fp16,
fp32, fp64) and `torch.finfo(torch.bfloat16)`.

bf16 (bfloat16, "brain float") is the upper half of an fp32: the same 8 exponent bits — so the
same range — but only 7 of fp32's 23 fraction bits. NumPy has no bfloat16 dtype, so tinyllm
stores bf16 values as their 16-bit patterns in a uint16 array. Converting fp32 → bf16 keeps the
upper 16 bits *after rounding to nearest, ties to even* on the 16 bits thrown away:

    upper  = (bits + 0x7FFF + lsb) >> 16,         lsb = (bits >> 16) & 1

Adding 0x7FFF carries into the kept half exactly when the dropped half is above 0x8000 (more
than half an ulp); at exactly 0x8000 (a tie) it carries only when the kept half is odd (lsb = 1),
which rounds the tie to the even neighbour. The same rule handles subnormals (their bits are
ordered like their values) and overflow: a value that rounds past the largest bf16 carries into
the exponent field and becomes 0x7F80 = inf. NaN is treated apart — the addition could carry a
NaN into inf — and stays a quiet NaN with its sign (bit 6 of the pattern, the top fraction bit,
set). Back from bf16 to fp32 is exact: shift the pattern left by 16. This is the conversion
PyTorch uses (c10/util/BFloat16.h, `round_to_nearest_even`), so the bit patterns agree (PyTorch
writes NaN as 0x7FC0 or 0xFFFF depending on the code path; any NaN pattern is NaN).

A float64 input is first rounded to float32 and then to bf16 — two roundings, as PyTorch also
does; in rare ties that can differ from one direct rounding, which no hardware bf16 avoids
either.

fp16 is IEEE half precision, which NumPy has (`np.float16`); NumPy's casts round to nearest
even, so fp16 needs no bit tricks here.

This emulates *storage and rounding*, not half-precision hardware: arithmetic on these values
in tinyllm happens in fp32 and the result is rounded back, which is what matters for what a
half-precision format can represent, not for how fast a GPU computes with it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tinyllm import kernels
from tinyllm.kernels.jit import jit, over_range

# ---- bf16 as uint16 bit patterns -----------------------------------------------------------

BF16_QUIET_BIT = 0x0040  # the top fraction bit of a bf16 pattern: set = quiet NaN


def fp32_to_bf16_bits_reference(x: np.ndarray) -> np.ndarray:
    """bf16 patterns of a float32 array, in NumPy (the definition; the kernel below agrees)."""
    # uint64 so that the rounding carry can never wrap around (it could, for negative NaNs).
    bits = x.view(np.uint32).astype(np.uint64)
    lsb = (bits >> 16) & 1
    rounded = (bits + 0x7FFF + lsb) >> 16
    quiet_nan = (bits >> 16) | BF16_QUIET_BIT  # keeps the sign and the top of the payload
    return np.where(np.isnan(x), quiet_nan, rounded).astype(np.uint16)


@jit
def _fp32_bits_to_bf16_bits(bits, out, lo, hi):
    # bits (n,) uint32 patterns of float32 values → out (n,) uint16, elements [lo, hi).
    for i in range(lo, hi):
        b = np.int64(bits[i])  # int64: the carry below cannot wrap
        if (b & 0x7FFFFFFF) > 0x7F800000:          # NaN: keep sign and payload top, quiet
            out[i] = (b >> 16) | BF16_QUIET_BIT
        else:
            out[i] = (b + 0x7FFF + ((b >> 16) & 1)) >> 16


def fp32_to_bf16_bits_numba(x: np.ndarray) -> np.ndarray:
    """The same patterns from a numba kernel: one pass instead of NumPy's eight (split over
    threads only for big arrays, tinyllm/kernels/jit.py)."""
    out = np.empty(x.shape, np.uint16)
    bits = np.ascontiguousarray(x).view(np.uint32).reshape(-1)  # (a 0-d x becomes (1,) here)
    over_range(_fp32_bits_to_bf16_bits, bits.size, bits, out.reshape(-1))
    return out


def fp32_to_bf16_bits(x) -> np.ndarray:
    """bf16 bit patterns (uint16) of `x`, rounded to nearest, ties to even; NaN stays NaN.

    `x` is converted to float32 first (see the module docstring about float64 inputs).
    Dispatches on tinyllm.kernels' backend (TINYLLM_KERNELS=numpy selects the reference).
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"fp32_to_bf16_bits: expected a floating-point array, got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if kernels.backend() == "numba":
        return fp32_to_bf16_bits_numba(x)
    return fp32_to_bf16_bits_reference(x)


def bf16_bits_to_fp32(bits) -> np.ndarray:
    """The float32 values of bf16 bit patterns (exact: bf16 is the upper half of fp32)."""
    bits = np.asarray(bits)
    if bits.dtype != np.uint16:
        raise TypeError(f"bf16_bits_to_fp32: expected uint16 bit patterns, got dtype {bits.dtype}")
    return (bits.astype(np.uint32) << 16).view(np.float32)


def round_to_bf16(x) -> np.ndarray:
    """`x` rounded to the nearest bf16 value, returned as float32 (exactly representable)."""
    return bf16_bits_to_fp32(fp32_to_bf16_bits(x))


def round_to_fp16(x) -> np.ndarray:
    """`x` rounded to the nearest fp16 value (NumPy's cast, ties to even), returned as float32.

    Values beyond the fp16 range become ±inf and values below half the smallest subnormal
    become ±0 — the overflow and underflow that loss scaling exists to avoid.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"round_to_fp16: expected a floating-point array, got dtype {x.dtype}")
    with np.errstate(over="ignore"):  # overflow to inf is the point, not an accident
        return x.astype(np.float16).astype(np.float32)


# ---- the format table, computed from bit layouts -------------------------------------------


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format given by its exponent and fraction bit counts."""

    name: str
    exponent_bits: int
    fraction_bits: int

    @property
    def bits(self) -> int:
        return 1 + self.exponent_bits + self.fraction_bits

    @property
    def bytes(self) -> int:
        return self.bits // 8

    @property
    def bias(self) -> int:
        return 2 ** (self.exponent_bits - 1) - 1

    @property
    def max(self) -> float:
        """Largest finite value: (2 − 2^−f) · 2^bias."""
        return (2.0 - 2.0 ** -self.fraction_bits) * 2.0 ** self.bias

    @property
    def smallest_normal(self) -> float:
        return 2.0 ** (1 - self.bias)

    @property
    def smallest_subnormal(self) -> float:
        return 2.0 ** (1 - self.bias - self.fraction_bits)

    @property
    def eps(self) -> float:
        """Machine epsilon: the gap between 1.0 and the next representable number."""
        return 2.0 ** -self.fraction_bits

    @property
    def decimal_digits(self) -> float:
        """Significant decimal digits: log10(2^p) with p = f + 1 significand bits."""
        return (self.fraction_bits + 1) * math.log10(2.0)

    @property
    def max_exact_integer(self) -> int:
        """Every integer up to 2^p is exact; 2^p + 1 is the first that is not."""
        return 2 ** (self.fraction_bits + 1)


@dataclass(frozen=True)
class IntFormat:
    """A two's-complement (signed) or unsigned integer format."""

    name: str
    bits: int
    signed: bool = True

    @property
    def bytes(self) -> int:
        return self.bits // 8

    @property
    def min(self) -> int:
        return -(2 ** (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.signed else 2 ** self.bits - 1


FP64 = FloatFormat("fp64", exponent_bits=11, fraction_bits=52)
FP32 = FloatFormat("fp32", exponent_bits=8, fraction_bits=23)
FP16 = FloatFormat("fp16", exponent_bits=5, fraction_bits=10)
BF16 = FloatFormat("bf16", exponent_bits=8, fraction_bits=7)
INT8 = IntFormat("int8", bits=8, signed=True)

FLOAT_FORMATS = {f.name: f for f in (FP64, FP32, FP16, BF16)}


def format_table() -> list[dict]:
    """One row per format: bits, bytes per value, range and precision (None where not defined)."""
    rows = []
    for f in FLOAT_FORMATS.values():
        rows.append(dict(name=f.name, bits=f.bits, bytes=f.bytes, exponent_bits=f.exponent_bits,
                         fraction_bits=f.fraction_bits, max=f.max, min=-f.max,
                         smallest_normal=f.smallest_normal,
                         smallest_subnormal=f.smallest_subnormal, eps=f.eps,
                         decimal_digits=f.decimal_digits,
                         max_exact_integer=f.max_exact_integer))
    rows.append(dict(name=INT8.name, bits=INT8.bits, bytes=INT8.bytes, exponent_bits=None,
                     fraction_bits=None, max=INT8.max, min=INT8.min, smallest_normal=None,
                     smallest_subnormal=None, eps=None, decimal_digits=None,
                     max_exact_integer=INT8.max))
    return rows
