"""Reduced precision: number formats, int8 quantization, fake quantization, loss scaling.

A number format trades bytes for range and precision. This package makes the trade concrete
and testable. The half-precision *tensors* themselves — the dtype `tinyllm.bfloat16`, storage,
rounding and type promotion — are core, in tinyllm/dtypes.py; this package builds on them:

- formats.py     fp64, fp32, fp16, bf16, int8: a table of range and precision computed from
                 each format's exponent and fraction bits.
- quant.py       affine int8 quantization: scale and zero point as PyTorch's observers compute
                 them, quantize / dequantize, MinMax and moving-average observers, per tensor
                 or per channel.
- int8_matmul.py int8 × int8 → int32 matrix product (NumPy reference + numba kernel) and its
                 dequantization.
- qlinear.py     quantized Linear layers: weight-only, weight + activation, and LLM.int8()'s
                 outlier decomposition.
- fake_quant.py  fake quantization with the straight-through estimator, for QAT.
- loss_scale.py  dynamic loss scaling for fp16 training (PyTorch's GradScaler).
- mixed.py       mixed-precision training: fp32 master weights around an optimizer
                 (MixedPrecisionOptimizer) and the pure master ↔ half conversions ZeRO uses.
- model_quant.py whole models: quantize_model (PTQ), prepare_qat / convert_qat (QAT),
                 model_nbytes.

Half-precision values here are *emulated*: arithmetic runs in fp32 and results are rounded to
the storage format, which reproduces what the format can represent, not half-precision speed.
"""

from tinyllm.dtypes import (
    bf16_bits_to_fp32,
    bfloat16,
    float16,
    fp32_to_bf16_bits,
    round_to_bf16,
    round_to_fp16,
    to_float32,
    to_storage,
)
from tinyllm.precision.fake_quant import FakeQuant, FakeQuantize, fake_quantize
from tinyllm.precision.formats import (
    BF16,
    FLOAT_FORMATS,
    FP16,
    FP32,
    FP64,
    INT8,
    FloatFormat,
    IntFormat,
    format_table,
)
from tinyllm.precision.int8_matmul import int8_matmul, quantized_matmul
from tinyllm.precision.loss_scale import GradScaler, unscale_grads_, update_scale
from tinyllm.precision.mixed import MixedPrecisionOptimizer, master_copy, write_model_params_
from tinyllm.precision.model_quant import (
    QATLinear,
    QuantizedLinearModule,
    convert_qat,
    model_nbytes,
    prepare_qat,
    quantize_model,
)
from tinyllm.precision.qlinear import (
    QuantizedLinear,
    llm_int8_linear,
    outlier_columns,
    quantize_weight,
    vectorwise_quantize,
)
from tinyllm.precision.quant import (
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    dequantize,
    qparams_from_minmax,
    quantize,
)

__all__ = [
    "BF16",
    "FLOAT_FORMATS",
    "FP16",
    "FP32",
    "FP64",
    "INT8",
    "FloatFormat",
    "IntFormat",
    "bf16_bits_to_fp32",
    "format_table",
    "fp32_to_bf16_bits",
    "round_to_bf16",
    "round_to_fp16",
    "MinMaxObserver",
    "MovingAverageMinMaxObserver",
    "dequantize",
    "qparams_from_minmax",
    "quantize",
    "int8_matmul",
    "quantized_matmul",
    "QuantizedLinear",
    "llm_int8_linear",
    "outlier_columns",
    "quantize_weight",
    "vectorwise_quantize",
    "FakeQuant",
    "FakeQuantize",
    "fake_quantize",
    "GradScaler",
    "unscale_grads_",
    "update_scale",
    "bfloat16",
    "float16",
    "to_float32",
    "to_storage",
    "MixedPrecisionOptimizer",
    "master_copy",
    "write_model_params_",
    "QATLinear",
    "QuantizedLinearModule",
    "convert_qat",
    "model_nbytes",
    "prepare_qat",
    "quantize_model",
]
