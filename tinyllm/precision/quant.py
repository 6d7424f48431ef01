"""int8 quantization: scale and zero point, quantize / dequantize, and observers.

Affine (uniform) quantization maps a real number x to an integer q in [q_min, q_max]
(int8: [−128, 127]) with a *scale* s > 0 and an integer *zero point* z:

    quantize:    q = clamp(round(x / s) + z,  q_min, q_max)        round: half to even
    dequantize:  x̂ = (q − z) · s

Inside the representable range [(q_min − z)·s, (q_max − z)·s] the error |x − x̂| is at most
s/2 (half a step); outside it, values are clipped to the ends. As PyTorch (and fbgemm) do, the
division is computed as a multiplication by the float32 reciprocal 1/s, so the integers agree
with torch.quantize_per_tensor bit for bit.

Choosing s and z from the observed range [min, max] (PyTorch's MinMaxObserver,
torch.ao.quantization.observer) — first the range is widened to include 0,

    min⁻ = min(min, 0),   max⁺ = max(max, 0),

so that x = 0 (padding, ReLU zeros, masked values) is represented *exactly* by q = z. Then

    symmetric:  s = max(−min⁻, max⁺) / ((q_max − q_min)/2),   z = 0
    affine:     s = (max⁺ − min⁻) / (q_max − q_min),          z = clamp(q_min − round(min⁻/s))

with s floored at float32's machine epsilon (an all-zero tensor would otherwise give s = 0).
Symmetric uses the int8 grid evenly around 0 (the matmul needs no zero-point corrections);
affine spends all 256 levels on [min⁻, max⁺], which helps for one-sided data such as the
output of a ReLU. (For int8 symmetric, the divisor is 127.5: the largest |x| lands on ±127.5,
which rounds to −128 or, clamped, 127 — still within s/2.)

*Per-tensor* quantization uses one (s, z) for a whole tensor; *per-channel* uses one per slice
along an axis — for a Linear weight W (out, in), one per output row (axis 0), so a row of small
weights is not forced onto the coarse grid of a row of large ones.

Observers watch tensors go by and keep the running range:
- `MinMaxObserver`: running min and max over everything seen;
- `MovingAverageMinMaxObserver`: an exponential moving average of each batch's min and max,
  min ← min + c·(min_batch − min) with averaging_constant c = 0.01 (PyTorch's default), which
  ignores a rare extreme batch — what quantization-aware training uses for activations.
Both take `qscheme` in PyTorch's spelling: "per_tensor_affine", "per_tensor_symmetric",
"per_channel_affine", "per_channel_symmetric".
"""

from __future__ import annotations

import numpy as np

FP32_EPS = np.float32(np.finfo(np.float32).eps)
QSCHEMES = (
    "per_tensor_affine",
    "per_tensor_symmetric",
    "per_channel_affine",
    "per_channel_symmetric",
)


def _array(x) -> np.ndarray:
    """The NumPy array behind `x` (a tinyllm Tensor or anything array-like)."""
    return np.asarray(getattr(x, "data", x))


def storage_dtype(quant_min: int, quant_max: int) -> np.dtype:
    """The smallest integer dtype that holds [quant_min, quant_max] (int8 for int8)."""
    for dt in (np.int8, np.uint8, np.int16, np.uint16, np.int32):
        info = np.iinfo(dt)
        if info.min <= quant_min and quant_max <= info.max:
            return np.dtype(dt)
    raise ValueError(f"quantization range [{quant_min}, {quant_max}] does not fit in int32")


def _check_range(quant_min, quant_max):
    if not quant_min < quant_max:
        raise ValueError(f"quant_min ({quant_min}) must be below quant_max ({quant_max})")


def _per_axis(p: np.ndarray, ndim: int, axis) -> np.ndarray:
    """Shape a per-channel parameter (C,) so it broadcasts along `axis` of an ndim-array."""
    if axis is None or p.ndim == 0:
        return p
    shape = [1] * ndim
    shape[axis] = p.shape[0]
    return p.reshape(shape)


def qparams_from_minmax(
    min_val,
    max_val,
    quant_min: int = -128,
    quant_max: int = 127,
    symmetric: bool = False,
    eps=FP32_EPS,
):
    """(scale float32, zero_point int32) from a range, as PyTorch's observers compute them.

    `min_val`, `max_val`: scalars (per-tensor) or arrays of shape (C,) (per-channel).
    """
    _check_range(quant_min, quant_max)
    min_val = np.asarray(min_val, dtype=np.float32)
    max_val = np.asarray(max_val, dtype=np.float32)
    if not (np.all(np.isfinite(min_val)) and np.all(np.isfinite(max_val))):
        raise ValueError(
            f"qparams_from_minmax: the range must be finite, got min {min_val}, "
            f"max {max_val} (has the observer seen any data?)"
        )
    if np.any(min_val > max_val):
        raise ValueError(f"qparams_from_minmax: min {min_val} is above max {max_val}")
    min_neg = np.minimum(min_val, np.float32(0))  # widen the range to contain 0
    max_pos = np.maximum(max_val, np.float32(0))
    if symmetric:
        if not quant_min < 0 < quant_max:
            raise ValueError(
                f"symmetric quantization needs a signed range, got [{quant_min}, {quant_max}]"
            )
        amax = np.maximum(-min_neg, max_pos)
        scale = np.maximum(amax / np.float32((quant_max - quant_min) / 2), eps)
        zero_point = np.zeros(scale.shape, dtype=np.int32)
    else:
        scale = np.maximum((max_pos - min_neg) / np.float32(quant_max - quant_min), eps)
        zero_point = quant_min - np.round(min_neg / scale).astype(np.int32)
        zero_point = np.clip(zero_point, quant_min, quant_max).astype(np.int32)
    return scale.astype(np.float32), zero_point


def rounded_levels(x: np.ndarray, scale, zero_point, axis=None) -> np.ndarray:
    """round(x · (1/s)) + z before clamping, in x's float dtype (shared with fake quantization).

    Computed with the reciprocal 1/s, as PyTorch and fbgemm do, so ties fall the same way.
    """
    ftype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
    inv_scale = _per_axis(np.asarray(1.0 / np.asarray(scale, ftype), ftype), x.ndim, axis)
    zp = _per_axis(np.asarray(zero_point, ftype), x.ndim, axis)
    return np.rint(x.astype(ftype, copy=False) * inv_scale) + zp


def quantize(
    x, scale, zero_point, quant_min: int = -128, quant_max: int = 127, axis=None
) -> np.ndarray:
    """q = clamp(round(x/s) + z, q_min, q_max) as int8 (or the smallest dtype that fits).

    `scale`, `zero_point`: scalars for per-tensor; arrays of shape (x.shape[axis],) with `axis`
    for per-channel.
    """
    _check_range(quant_min, quant_max)
    x = _array(x)
    _check_params("quantize", x, scale, zero_point, axis)
    if np.issubdtype(x.dtype, np.floating) and np.isnan(x).any():
        raise ValueError(
            f"quantize: the input of shape {x.shape} contains NaN (±inf clip to "
            f"the range ends; NaN has no integer)"
        )
    q = np.clip(rounded_levels(x, scale, zero_point, axis), quant_min, quant_max)
    return q.astype(storage_dtype(quant_min, quant_max))


def dequantize(q, scale, zero_point, axis=None) -> np.ndarray:
    """x̂ = (q − z) · s in float32."""
    q = np.asarray(q)
    if not np.issubdtype(q.dtype, np.integer):
        raise TypeError(f"dequantize: expected an integer array, got dtype {q.dtype}")
    _check_params("dequantize", q, scale, zero_point, axis)
    s = _per_axis(np.asarray(scale, np.float32), q.ndim, axis)
    z = _per_axis(np.asarray(zero_point, np.int32), q.ndim, axis)
    return ((q.astype(np.int32) - z) * s).astype(np.float32)


def _check_params(op, x, scale, zero_point, axis):
    scale = np.asarray(scale)
    if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
        raise ValueError(f"{op}: scale must be positive and finite, got {scale}")
    if axis is None:
        if scale.ndim != 0 or np.ndim(zero_point) != 0:
            raise ValueError(
                f"{op}: per-tensor quantization takes scalar scale and zero_point, "
                f"got shapes {scale.shape} and {np.shape(zero_point)}; pass `axis` "
                f"for per-channel"
            )
        return
    n = x.shape[axis]
    if scale.shape != (n,) or np.shape(zero_point) != (n,):
        raise ValueError(
            f"{op}: per-channel along axis {axis} of shape {x.shape} needs scale "
            f"and zero_point of shape ({n},), got {scale.shape} and "
            f"{np.shape(zero_point)}"
        )


# ---- observers ------------------------------------------------------------------------------


class MinMaxObserver:
    """Records the running min and max of what it sees; `calculate_qparams()` → (scale, zp).

    `qscheme` picks per-tensor or per-channel (along `ch_axis`) and symmetric or affine.
    Calling the observer on an array (or Tensor) updates the range and returns the input.
    """

    def __init__(
        self,
        qscheme: str = "per_tensor_affine",
        quant_min: int = -128,
        quant_max: int = 127,
        ch_axis: int = 0,
        eps: float = FP32_EPS,
    ):
        if qscheme not in QSCHEMES:
            raise ValueError(f"unknown qscheme {qscheme!r}; expected one of {QSCHEMES}")
        _check_range(quant_min, quant_max)
        self.qscheme = qscheme
        self.quant_min, self.quant_max = quant_min, quant_max
        self.ch_axis = ch_axis
        self.eps = np.float32(eps)
        self.min_val = None  # float32 scalar array (per-tensor) or (C,) (per-channel)
        self.max_val = None

    @property
    def per_channel(self) -> bool:
        return self.qscheme.startswith("per_channel")

    @property
    def symmetric(self) -> bool:
        return self.qscheme.endswith("symmetric")

    @property
    def axis(self):
        """The axis quantize() needs: `ch_axis` per-channel, None per-tensor."""
        return self.ch_axis if self.per_channel else None

    def _batch_minmax(self, x: np.ndarray):
        if not self.per_channel:
            return x.min(), x.max()
        if not -x.ndim <= self.ch_axis < x.ndim:
            raise ValueError(
                f"{type(self).__name__}: ch_axis {self.ch_axis} is out of range "
                f"for an input of shape {x.shape}"
            )
        rows = np.moveaxis(x, self.ch_axis, 0).reshape(x.shape[self.ch_axis], -1)  # (C, rest)
        return rows.min(axis=1), rows.max(axis=1)

    def _combine(self, batch_min, batch_max):
        """How a batch's range updates the running one: the running min and max."""
        return np.minimum(self.min_val, batch_min), np.maximum(self.max_val, batch_max)

    def forward(self, x):
        arr = _array(x)
        if arr.size == 0:
            return x
        if not np.all(np.isfinite(arr)):
            raise ValueError(
                f"{type(self).__name__}: the observed tensor of shape {arr.shape} "
                f"contains inf or NaN"
            )
        batch_min, batch_max = self._batch_minmax(arr.astype(np.float32, copy=False))
        if self.min_val is None:
            new_min, new_max = batch_min, batch_max
        else:
            if np.shape(batch_min) != np.shape(self.min_val):
                raise ValueError(
                    f"{type(self).__name__}: {np.shape(batch_min)} channels now, "
                    f"{np.shape(self.min_val)} before"
                )
            new_min, new_max = self._combine(batch_min, batch_max)
        self.min_val = np.asarray(new_min, np.float32)
        self.max_val = np.asarray(new_max, np.float32)
        return x

    __call__ = forward

    def calculate_qparams(self):
        if self.min_val is None:
            raise RuntimeError(f"{type(self).__name__}.calculate_qparams: no data observed yet")
        return qparams_from_minmax(
            self.min_val, self.max_val, self.quant_min, self.quant_max, self.symmetric, self.eps
        )

    def reset_min_max_vals(self) -> None:
        self.min_val = self.max_val = None


class MovingAverageMinMaxObserver(MinMaxObserver):
    """Like MinMaxObserver, but the range is a moving average of each batch's min and max:

        min ← min + c · (min_batch − min),    max ← max + c · (max_batch − max)

    starting from the first batch's range (PyTorch's MovingAverage[PerChannel]MinMaxObserver).
    """

    def __init__(self, averaging_constant: float = 0.01, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < averaging_constant <= 1.0:
            raise ValueError(f"averaging_constant must be in (0, 1], got {averaging_constant}")
        self.averaging_constant = np.float32(averaging_constant)

    def _combine(self, batch_min, batch_max):
        c = self.averaging_constant
        return self.min_val + c * (batch_min - self.min_val), self.max_val + c * (
            batch_max - self.max_val
        )
