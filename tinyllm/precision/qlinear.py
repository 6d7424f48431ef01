"""Quantized Linear layers: weight-only, weight + activation, and LLM.int8() outliers.

A Linear layer y = x Wᵀ + b with W (out, in) can use int8 in three ways:

1. **weight-only** ("weight_only"): store W as int8 plus scales (and zero points if affine);
   before each product, dequantize it, Ŵ = s_w (q_w − z_w), and multiply in float:
   y = x Ŵᵀ + b. This saves memory (1 byte per weight instead of 4) but no arithmetic.

2. **weight + activation** ("dynamic"): also quantize the input, per tensor, from its own
   min/max at every call (PyTorch's "dynamic quantization"), and run the int8 × int8 → int32
   product:  y = s_x · s_w · Σ_k (q_x − z_x)(q_w − z_w) + b   (see int8_matmul.py).

3. **LLM.int8()** ("llm_int8"; Dettmers et al. 2022, "LLM.int8(): 8-bit Matrix Multiplication
   for Transformers at Scale"). In large transformers a few *feature dimensions* (columns of X)
   carry activations far larger than the rest. One such column inflates the absmax of every
   row it appears in, and all the ordinary values of that row collapse onto a few int8 levels.
   LLM.int8() splits the product by columns. With O the set of columns k whose largest
   |X[:, k]| is ≥ a threshold α (6.0 in the paper; the comparison is ≥, as in bitsandbytes):

       Y = X[:, O] W[:, O]ᵀ                       in higher precision (here float32)
         + s_x s_wᵀ ⊙ (Q_x[:, Ō] Q_w[:, Ō]ᵀ)       in int8, vector-wise

   *Vector-wise* absmax quantization gives each row of X and each row (output channel) of W
   its own scale, s = max|row| / 127 and q = round(row / s) ∈ [−127, 127], computed after
   the outlier columns are set aside — so the outliers no longer set the scale.
   `llm_int8_linear` takes a float W, as in the paper's figure (the outlier columns of W in
   higher precision). `QuantizedLinear(mode="llm_int8")` stores only the int8 W, as
   bitsandbytes does at inference, and dequantizes the outlier columns of W on the fly; the
   error that matters — the activations' — is removed either way.

`QuantizedLinear.from_float(weight, bias, mode=...)` builds any of the three; `forward` maps a
float array (..., in) to (..., out). `nbytes` counts what it stores: int8 weights, float32
scales, int32 zero points (affine only) and the float32 bias.
"""

from __future__ import annotations

import numpy as np

from tinyllm.precision.int8_matmul import quantized_matmul
from tinyllm.precision.quant import FP32_EPS, _array, dequantize, qparams_from_minmax, quantize

LLM_INT8_THRESHOLD = 6.0


def quantize_weight(
    weight,
    per_channel: bool = True,
    symmetric: bool = True,
    quant_min: int = -128,
    quant_max: int = 127,
):
    """int8 weight, scale, zero point for W (out, in): per output channel (axis 0) or per tensor.

    The scales are those of PyTorch's MinMaxObserver / PerChannelMinMaxObserver on W. A
    narrower [quant_min, quant_max] (e.g. [−8, 7], 4-bit levels) is stored in int8 all the same.
    """
    w = _array(weight).astype(np.float32, copy=False)
    if w.ndim != 2:
        raise ValueError(f"quantize_weight: expected a 2-D weight (out, in), got shape {w.shape}")
    if per_channel:
        scale, zp = qparams_from_minmax(
            w.min(axis=1), w.max(axis=1), quant_min, quant_max, symmetric=symmetric
        )
        return quantize(w, scale, zp, quant_min, quant_max, axis=0), scale, zp
    scale, zp = qparams_from_minmax(w.min(), w.max(), quant_min, quant_max, symmetric=symmetric)
    return quantize(w, scale, zp, quant_min, quant_max), scale, zp


def vectorwise_quantize(a):
    """Absmax int8 per row: s = max|row| / 127, q = round(row / s) ∈ [−127, 127].

    a (R, K) float → q (R, K) int8, s (R,) float32. An all-zero row gets s = eps (q = 0).
    """
    a = np.asarray(a, np.float32)
    scale = np.maximum(np.abs(a).max(axis=1) / np.float32(127), FP32_EPS)  # (R,)
    scale = scale.astype(np.float32)
    q = quantize(a, scale, np.zeros(scale.shape, np.int32), quant_min=-127, quant_max=127, axis=0)
    return q, scale


def outlier_columns(x2d, threshold: float = LLM_INT8_THRESHOLD) -> np.ndarray:
    """Boolean (K,) mask of the feature columns of x2d (M, K) with some |value| ≥ threshold."""
    return (np.abs(x2d) >= threshold).any(axis=0)


def _llm_int8_2d(x2d, w_q, w_scale, threshold, w_float=None):
    """Y (M, N) = outlier columns in float + the rest in vector-wise int8 (see module doc)."""
    cols = outlier_columns(x2d, threshold)  # (K,)
    x_regular = np.where(cols, np.float32(0), x2d)  # outliers set aside
    x_q, x_scale = vectorwise_quantize(x_regular)  # (M, K) int8, (M,)
    w_regular = np.where(cols, np.int8(0), w_q)  # their weights too
    y = quantized_matmul(x_q, x_scale, 0, w_regular, w_scale, 0)
    if cols.any():
        if w_float is not None:
            w_hi = w_float[:, cols]  # (N, |O|) float weights
        else:  # dequantized columns of W
            w_hi = w_q[:, cols].astype(np.float32) * w_scale[:, None]
        y += x2d[:, cols] @ w_hi.T
    return y


def llm_int8_linear(x, weight, bias=None, threshold: float = LLM_INT8_THRESHOLD) -> np.ndarray:
    """LLM.int8() y = x Wᵀ + b for x (..., K), float W (N, K): outlier columns of x in float32."""
    x = _array(x).astype(np.float32, copy=False)
    w = _array(weight).astype(np.float32, copy=False)
    _check_linear("llm_int8_linear", x, w)
    w_q, w_scale = vectorwise_quantize(w)
    y = _llm_int8_2d(x.reshape(-1, w.shape[1]), w_q, w_scale, threshold, w_float=w)
    if bias is not None:
        y += np.asarray(bias, np.float32)
    return y.reshape(*x.shape[:-1], w.shape[0])


def _check_linear(op, x, w):
    if x.ndim < 1 or x.shape[-1] != w.shape[1]:
        raise ValueError(
            f"{op}: input of shape {x.shape} does not match a weight of shape "
            f"{w.shape} (expected (..., {w.shape[1]}))"
        )


class QuantizedLinear:
    """y = x Wᵀ + b with an int8 W. Build with `QuantizedLinear.from_float(weight, bias, ...)`.

    mode: "weight_only" | "dynamic" (weight + activation, int8 × int8) | "llm_int8".
    """

    MODES = ("weight_only", "dynamic", "llm_int8")

    def __init__(
        self,
        weight_q,
        weight_scale,
        weight_zero_point,
        bias=None,
        mode: str = "weight_only",
        per_channel: bool = True,
        threshold: float = LLM_INT8_THRESHOLD,
        symmetric: bool | None = None,
    ):
        if mode not in self.MODES:
            raise ValueError(
                f"QuantizedLinear: unknown mode {mode!r}; expected one of {self.MODES}"
            )
        self.weight_q = weight_q  # (out, in) int8
        self.weight_scale = weight_scale  # (out,) per channel, or () per tensor
        self.weight_zero_point = weight_zero_point
        self.bias = None if bias is None else np.asarray(bias, np.float32)
        self.mode = mode
        self.per_channel = per_channel
        self.threshold = threshold
        # Affine storage keeps its zero points even when they happen to be 0; without the
        # flag, all-zero zero points mean symmetric.
        self.symmetric = not np.any(weight_zero_point) if symmetric is None else bool(symmetric)

    @classmethod
    def from_float(
        cls,
        weight,
        bias=None,
        mode: str = "weight_only",
        per_channel: bool = True,
        symmetric: bool = True,
        threshold: float = LLM_INT8_THRESHOLD,
        quant_min: int = -128,
        quant_max: int = 127,
    ):
        """Quantize a float Linear weight (out, in). "llm_int8" always uses vector-wise absmax
        over [−127, 127]; the other modes use [quant_min, quant_max] (int8 by default)."""
        w = _array(weight).astype(np.float32, copy=False)
        if mode == "llm_int8":
            w_q, scale = vectorwise_quantize(w)
            zp = np.zeros(scale.shape, np.int32)
            per_channel = True
        else:
            w_q, scale, zp = quantize_weight(w, per_channel, symmetric, quant_min, quant_max)
        if bias is not None and np.shape(_array(bias)) != (w.shape[0],):
            raise ValueError(
                f"QuantizedLinear: bias of shape {np.shape(_array(bias))} does not "
                f"match {w.shape[0]} output features"
            )
        return cls(
            w_q,
            scale,
            zp,
            None if bias is None else _array(bias),
            mode,
            per_channel,
            threshold,
            symmetric=symmetric or mode == "llm_int8",
        )

    @property
    def in_features(self) -> int:
        return self.weight_q.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight_q.shape[0]

    def dequantized_weight(self) -> np.ndarray:
        """Ŵ = s_w (q_w − z_w) as float32 (out, in)."""
        return dequantize(
            self.weight_q,
            self.weight_scale,
            self.weight_zero_point,
            axis=0 if self.per_channel else None,
        )

    @property
    def nbytes(self) -> int:
        """Bytes stored: int8 weights + float32 scales (+ int32 zero points if affine) + bias."""
        n = self.weight_q.nbytes + np.asarray(self.weight_scale).nbytes
        if not self.symmetric:
            n += np.asarray(self.weight_zero_point).nbytes
        if self.bias is not None:
            n += self.bias.nbytes
        return int(n)

    def forward(self, x) -> np.ndarray:
        x = _array(x).astype(np.float32, copy=False)
        _check_linear(f"QuantizedLinear({self.mode})", x, self.weight_q)
        x2d = x.reshape(-1, self.in_features)  # (M, in)
        if self.mode == "weight_only":
            y = x2d @ self.dequantized_weight().T
        elif self.mode == "dynamic":
            # Activations: per-tensor affine int8 from this input's own range.
            x_scale, x_zp = qparams_from_minmax(x2d.min(), x2d.max())
            x_q = quantize(x2d, x_scale, x_zp)
            y = quantized_matmul(
                x_q, x_scale, x_zp, self.weight_q, self.weight_scale, self.weight_zero_point
            )
        else:
            y = _llm_int8_2d(x2d, self.weight_q, self.weight_scale, self.threshold)
        if self.bias is not None:
            y = y + self.bias
        return y.astype(np.float32, copy=False).reshape(*x.shape[:-1], self.out_features)

    __call__ = forward

    def __repr__(self):
        return (
            f"QuantizedLinear(in_features={self.in_features}, "
            f"out_features={self.out_features}, mode={self.mode!r}, "
            f"per_channel={self.per_channel}, nbytes={self.nbytes})"
        )
