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
same range — but only 7 of fp32's 23 fraction bits. NumPy has no bfloat16 dtype; tinyllm stores
bf16 values as their 16-bit patterns (tinyllm/dtypes.py) and rounds fp32 into them with the bit
trick of tinyllm/kernels/bf16.py, the one PyTorch uses.

fp16 is IEEE half precision, which NumPy has (`np.float16`); NumPy's casts round to nearest
even, so fp16 needs no bit tricks here.

This emulates *storage and rounding*, not half-precision hardware: arithmetic on these values
in tinyllm happens in fp32 and the result is rounded back, which is what matters for what a
half-precision format can represent, not for how fast a GPU computes with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
        return (2.0 - 2.0**-self.fraction_bits) * 2.0**self.bias

    @property
    def smallest_normal(self) -> float:
        return 2.0 ** (1 - self.bias)

    @property
    def smallest_subnormal(self) -> float:
        return 2.0 ** (1 - self.bias - self.fraction_bits)

    @property
    def eps(self) -> float:
        """Machine epsilon: the gap between 1.0 and the next representable number."""
        return 2.0**-self.fraction_bits

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
        return 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1


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
        rows.append(
            dict(
                name=f.name,
                bits=f.bits,
                bytes=f.bytes,
                exponent_bits=f.exponent_bits,
                fraction_bits=f.fraction_bits,
                max=f.max,
                min=-f.max,
                smallest_normal=f.smallest_normal,
                smallest_subnormal=f.smallest_subnormal,
                eps=f.eps,
                decimal_digits=f.decimal_digits,
                max_exact_integer=f.max_exact_integer,
            )
        )
    rows.append(
        dict(
            name=INT8.name,
            bits=INT8.bits,
            bytes=INT8.bytes,
            exponent_bits=None,
            fraction_bits=None,
            max=INT8.max,
            min=INT8.min,
            smallest_normal=None,
            smallest_subnormal=None,
            eps=None,
            decimal_digits=None,
            max_exact_integer=INT8.max,
        )
    )
    return rows
