"""fp32 → bf16 rounding: the bit trick, as a NumPy reference and a numba kernel.

bf16 (bfloat16, "brain float") is the upper half of an fp32: the same sign and 8 exponent bits
— so the same range — but only 7 of fp32's 23 fraction bits. NumPy has no bfloat16 dtype, so
tinyllm stores bf16 values as their 16-bit patterns in a uint16 array (tinyllm/dtypes.py).
Converting fp32 → bf16 keeps the upper 16 bits *after rounding to nearest, ties to even* on the
16 bits thrown away:

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

The reference needs eight NumPy passes over the array (view, widen, shift, add, …); the kernel
does it in one.
"""

from __future__ import annotations

import numpy as np

from tinyllm.kernels.jit import jit, over_range

BF16_QUIET_BIT = 0x0040  # the top fraction bit of a bf16 pattern: set = quiet NaN


def fp32_to_bf16_bits_reference(x: np.ndarray) -> np.ndarray:
    """bf16 patterns of a float32 array, in NumPy (the definition; the kernel below agrees)."""
    if x.dtype != np.float32:
        raise TypeError(f"fp32_to_bf16_bits_reference: expected float32, got dtype {x.dtype}")
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
        if (b & 0x7FFFFFFF) > 0x7F800000:  # NaN: keep sign and payload top, quiet
            out[i] = (b >> 16) | BF16_QUIET_BIT
        else:
            out[i] = (b + 0x7FFF + ((b >> 16) & 1)) >> 16


def fp32_to_bf16_bits_numba(x: np.ndarray) -> np.ndarray:
    """The same patterns from a numba kernel: one pass instead of NumPy's eight (split over
    threads only for big arrays, tinyllm/kernels/jit.py)."""
    if x.dtype != np.float32:  # the kernel reads 4-byte patterns: anything else overruns `out`
        raise TypeError(f"fp32_to_bf16_bits_numba: expected float32, got dtype {x.dtype}")
    out = np.empty(x.shape, np.uint16)
    bits = np.ascontiguousarray(x).view(np.uint32).reshape(-1)  # (a 0-d x becomes (1,) here)
    over_range(_fp32_bits_to_bf16_bits, bits.size, bits, out.reshape(-1))
    return out
