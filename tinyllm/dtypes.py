"""dtypes: what a tensor's numbers are stored in — fp32, fp64, and the half formats fp16, bf16.

A tinyllm Tensor's dtype can be any NumPy dtype, plus `tinyllm.bfloat16`. float32 is the
default (`DEFAULT_DTYPE`). This module is below the engine: it knows arrays, not tensors, and
every function here is a pure function of arrays and dtypes.

Storage. fp16 tensors hold NumPy float16 arrays. NumPy has no bf16, so a bf16 tensor holds the
16-bit patterns (tinyllm/kernels/bf16.py) in a uint16 array whose dtype carries a tag,
`bfloat16.storage` (a uint16 dtype with metadata pointing back to `tinyllm.bfloat16`). The tag
travels with views and copies, which is how `Tensor.dtype` reports bfloat16 and how the engine
tells bit patterns from integers. Two bytes per value, as on a GPU.

Arithmetic is *emulated*. Every op that receives a half tensor

    1. decodes its half inputs to float32 (exact: every fp16 and bf16 value is a float32 value),
    2. runs its ordinary float32 forward (the same code, the same numba kernels),
    3. rounds the result to nearest (ties to even) in the output's format and stores it:

           y = round_fmt( f_fp32(x₁, …, xₖ) )

This reproduces what the format can *represent* — every activation, weight and gradient passes
through the 8 (bf16) or 11 (fp16) significant bits and the format's range, so overflow,
underflow and lost updates happen as they would — but it is not half-precision hardware: no
speed-up (the decode and the rounding cost extra passes), no rounding *inside* an op (a real
kernel's reductions may round partial sums; tensor cores, like this emulation, accumulate
matmuls in fp32), and the arrays an op saves for backward are its float32 inputs, so measured
activation memory is that of float32.

Type promotion (`promote_inputs`) follows PyTorch for tensors of the same kind:

    half ∘ the same half  → that half            bf16 ∘ bf16 → bf16,  fp16 ∘ fp16 → fp16
    half ∘ float32        → float32               (the wider format wins; no rounding)
    fp16 ∘ bf16           → float32               (neither holds the other)
    anything ∘ float64    → float64
    half ∘ Python scalar / NumPy array → half     (constants do not promote a tensor)

Backward. A gradient flowing into a half tensor is rounded to that tensor's format as soon as
it is complete (PyTorch's gradient of a bf16 tensor is bf16) — this is where fp16's small
gradients underflow to zero and why loss scaling exists. A half leaf (a parameter) stores its
`.grad` in its own format, two bytes per value.

NumPy and `np.dtype(tinyllm.bfloat16)`: where NumPy asks for a dtype for bf16 values (ops make
constants with `np.asarray(c, dtype=x.dtype)`), it gets float32, the dtype bf16 values are
computed in. The storage dtype is `tinyllm.bfloat16.storage`. So `np.zeros(n, tinyllm.bfloat16)`
is a float32 array; allocate bf16 buffers with `np.zeros(n, bfloat16.storage)` (zero bits are
+0.0) or `to_storage(values, bfloat16)`. One trap follows: `np.dtype('float32') == bfloat16`
is True (NumPy converts its right operand); `bfloat16 == np.dtype('float32')` is False. Compare
tensor dtypes with `same_dtype(a, b)` or `is`.

A float32-only program should not pay for any of this, so the engine applies these rules only
after the first half array exists: `to_storage` and `bfloat16.encode` announce it through
`on_first_half(callback)` (tinyllm/engine/hooks.py listens).
"""

from __future__ import annotations

import numpy as np

from tinyllm import kernels

DEFAULT_DTYPE = np.float32  # what Python lists and scalars become

# The key, in a storage dtype's metadata, of the dtype object it stands for.
METADATA_KEY = "tinyllm.dtype"


# ---- the first half array: the engine switches its rules on ---------------------------------

_half_seen = False
_on_first_half: list = []


def on_first_half(callback) -> None:
    """Call `callback()` once the first fp16/bf16 array is made (at once if one already was)."""
    _on_first_half.append(callback)
    if _half_seen:
        callback()


def half_seen() -> None:
    """Announce that a half array exists (idempotent; the callbacks run once)."""
    global _half_seen
    if not _half_seen:
        _half_seen = True
        for callback in _on_first_half:
            callback()


# ---- bf16 bit patterns ---------------------------------------------------------------------


def fp32_to_bf16_bits(x) -> np.ndarray:
    """bf16 bit patterns (uint16) of `x`, rounded to nearest, ties to even; NaN stays NaN.

    `x` is converted to float32 first: a float64 input is rounded twice (to float32, then to
    bf16), as PyTorch also does; in rare ties that differs from one direct rounding, which no
    hardware bf16 avoids either. The rounding is tinyllm/kernels/bf16.py's bit trick.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"fp32_to_bf16_bits: expected a floating-point array, got dtype {x.dtype}")
    return kernels.fp32_to_bf16_bits(x.astype(np.float32, copy=False))


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


# ---- the dtype objects ---------------------------------------------------------------------


class BFloat16:
    """The dtype object `tinyllm.bfloat16` (one instance). bf16 = fp32's upper 16 bits.

    `storage`: the uint16 NumPy dtype (tagged) of a bf16 tensor's `.data`;
    `dtype`:   float32, what `np.dtype(tinyllm.bfloat16)` gives (see the module docstring);
    `encode(values)` → storage (rounded to nearest even); `decode(storage)` → float32 values.
    """

    name = "bfloat16"
    itemsize = 2
    kind = "f"
    dtype = np.dtype(np.float32)

    def __init__(self):
        self.storage = np.dtype(np.uint16, metadata={METADATA_KEY: self})

    def encode(self, values) -> np.ndarray:
        half_seen()
        return fp32_to_bf16_bits(values).view(self.storage)

    def decode(self, bits) -> np.ndarray:
        return bf16_bits_to_fp32(bits)

    # One object: equal only to itself (or the name), kept by copy/deepcopy.
    def __eq__(self, other):
        if isinstance(other, str):
            return other == self.name
        return other is self

    def __hash__(self):
        return hash(self.name)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __repr__(self):
        return "tinyllm.bfloat16"

    def __str__(self):
        return self.name


bfloat16 = BFloat16()
float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)


# ---- dtypes --------------------------------------------------------------------------------


def as_dtype(dtype):
    """`tinyllm.bfloat16` for bf16 (the object, its storage, or the string "bfloat16"/"bf16");
    otherwise np.dtype(dtype)."""
    if dtype is bfloat16 or (isinstance(dtype, str) and dtype in ("bfloat16", "bf16")):
        return bfloat16
    dtype = np.dtype(dtype)
    return logical_dtype(dtype)


def logical_dtype(array_dtype: np.dtype):
    """The dtype a tensor with this array dtype reports (bfloat16 for tagged storage)."""
    meta = array_dtype.metadata
    return array_dtype if meta is None else meta.get(METADATA_KEY, array_dtype)


def is_half(dtype) -> bool:
    """True for float16 and bfloat16 (given as tensor dtypes, storage dtypes or NumPy types)."""
    if dtype is bfloat16:
        return True
    if isinstance(dtype, str) and dtype in ("bfloat16", "bf16"):
        return True
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return False
    return dt.char == "e" or logical_dtype(dt) is bfloat16


def is_float_storage(array_dtype: np.dtype) -> bool:
    """True for the array dtype of a floating tensor (float16/32/64 or bf16 storage)."""
    return array_dtype.kind == "f" or is_half_storage(array_dtype)


def is_half_storage(array_dtype: np.dtype) -> bool:
    return (
        array_dtype.char == "e"
        or array_dtype.metadata is not None
        and array_dtype.metadata.get(METADATA_KEY) is bfloat16
    )


def storage_dtype(dtype) -> np.dtype:
    """The NumPy dtype of a tensor's `.data` for `dtype` (bf16 → tagged uint16)."""
    dtype = as_dtype(dtype)
    return bfloat16.storage if dtype is bfloat16 else dtype


def compute_dtype(dtype) -> np.dtype:
    """The NumPy dtype arithmetic on `dtype` runs in: float32 for half types."""
    dtype = as_dtype(dtype)
    return float32 if dtype is bfloat16 or dtype == float16 else dtype


# ---- converting arrays (pure functions; also what ZeRO's flat shards use) --------------------


def to_float32(storage, out=None) -> np.ndarray:
    """float32 values of a half storage array (exact), or of any float array.

    `out` (float32, same shape) receives them in place — e.g. an fp32 master or gradient shard.
    A float32 input is returned as is (not copied) when `out` is None.
    """
    storage = np.asarray(storage)
    if storage.dtype.metadata is not None and logical_dtype(storage.dtype) is bfloat16:
        values = bf16_bits_to_fp32(storage)
    elif storage.dtype.kind == "f":
        values = storage.astype(np.float32, copy=False)
    else:
        raise TypeError(
            f"to_float32: expected a float or bf16 storage array, got dtype {storage.dtype}"
        )
    if out is None:
        return values
    if out.dtype != np.float32 or out.shape != values.shape:
        raise ValueError(
            f"to_float32: out must be float32 of shape {values.shape}, got {out.dtype} {out.shape}"
        )
    out[...] = values
    return out


def to_storage(values, dtype, out=None) -> np.ndarray:
    """`values` rounded to nearest (ties to even) in `dtype`, as that dtype's storage array.

    fp16 beyond ±65504 becomes ±inf, as the hardware conversion does. `out` (a storage array of
    the same shape, e.g. a view into a flat half-precision parameter buffer) is written in place.
    """
    dtype = as_dtype(dtype)
    values = np.asarray(values)
    if dtype is bfloat16:
        half_seen()
        result = fp32_to_bf16_bits(values).view(bfloat16.storage)
    elif dtype == float16:
        half_seen()
        with np.errstate(over="ignore"):  # overflow to inf is what fp16 does
            result = values.astype(np.float16)
    else:
        result = values.astype(dtype, copy=False)
    if out is None:
        return result
    if (
        not same_dtype(logical_dtype(out.dtype), logical_dtype(result.dtype))
        or out.shape != result.shape
    ):
        raise ValueError(
            f"to_storage: out must be {dtype} storage of shape {result.shape}, got "
            f"{out.dtype} {out.shape}"
        )
    out[...] = result
    return out


def round_to(values: np.ndarray, dtype) -> np.ndarray:
    """float32 values rounded to `dtype`'s nearest representable values (still float32)."""
    dtype = as_dtype(dtype)
    if dtype is bfloat16:
        return round_to_bf16(values)
    if dtype == float16:
        with np.errstate(over="ignore"):
            return values.astype(np.float16).astype(np.float32)
    return values


def same_dtype(a, b) -> bool:
    """a == b for tensor dtypes. (NumPy's `np.dtype('float32') == tinyllm.bfloat16` is True,
    because NumPy converts the right side with np.dtype(); never compare that way round.)"""
    if a is bfloat16 or b is bfloat16:
        return a is b
    return np.dtype(a) == np.dtype(b)


def convert_array(array: np.ndarray, dtype) -> np.ndarray:
    """A storage array converted to `dtype`'s storage (half → float via exact decoding)."""
    dtype = as_dtype(dtype)
    src = logical_dtype(array.dtype)
    if same_dtype(src, dtype):
        return array
    values = to_float32(array) if is_half(src) else array
    return to_storage(values, dtype)


def assign_(dst: np.ndarray, values) -> None:
    """dst[...] = values, encoding float values into dst's half storage when dst is half
    (a bf16 array receiving floats must round, not truncate them to integers)."""
    values = np.asarray(values)
    if (
        is_half_storage(dst.dtype)
        and not is_half_storage(values.dtype)
        and values.dtype.kind == "f"
    ):
        dst[...] = to_storage(values, logical_dtype(dst.dtype))
    else:
        dst[...] = np.asarray(values, dtype=dst.dtype)


# ---- promotion: what an op on half inputs computes in, and what it stores -------------------


def promote_inputs(arrays, from_tensor):
    """(arrays with half ones decoded to float32, the output's dtype if it must be rounded).

    `from_tensor[i]` says whether arrays[i] is a tensor's data: only tensors vote on the
    output's dtype (constants do not promote, see the module docstring). The output dtype is a
    half type when every floating tensor input has that same half type, and None (no
    rounding) otherwise.
    """
    for a in arrays:  # the common case first: no half array at all
        if isinstance(a, np.ndarray) and (a.dtype.char == "e" or a.dtype.metadata is not None):
            break
    else:
        return arrays, None
    upcast = None
    vote = None  # the half dtype all floating tensor inputs share so far
    full = False  # a float32/float64 tensor input (or two different half types)
    for i, a in enumerate(arrays):
        if not isinstance(a, np.ndarray):
            continue
        dt = a.dtype
        half = is_half_storage(dt)
        if half:
            if upcast is None:
                upcast = list(arrays)
            upcast[i] = to_float32(a)
        if from_tensor[i] and (half or dt.kind == "f"):
            if not half:
                full = True
            else:
                logical = logical_dtype(dt)
                if vote is None:
                    vote = logical
                elif not same_dtype(vote, logical):
                    full = True
    if upcast is None:
        return arrays, None
    return upcast, (None if full else vote)


def store_output(out, dtype):
    """An op's float32 result rounded into `dtype`'s storage (non-float results kept)."""
    if isinstance(out, np.generic):  # NumPy returns scalars from ops on 0-d arrays
        out = np.asarray(out)
    if not isinstance(out, np.ndarray) or out.dtype.kind != "f":
        return out
    return to_storage(out, dtype)


def round_like(grad: np.ndarray, array_dtype: np.dtype) -> np.ndarray:
    """A gradient for an array of `array_dtype`, rounded to its format if it is half (as
    float32 values); unchanged otherwise."""
    if not is_half_storage(array_dtype):
        return grad
    return round_to(grad.astype(np.float32, copy=False), logical_dtype(array_dtype))
