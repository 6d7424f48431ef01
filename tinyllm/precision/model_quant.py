"""Quantizing a whole model: post-training int8 (PTQ) and quantization-aware training (QAT).

Post-training quantization takes a trained float model and swaps every Linear layer for a
`QuantizedLinear` (qlinear.py): int8 weights with their scales, and — depending on the mode —
float, int8 × int8 or LLM.int8() arithmetic. `quantize_model` does that swap on a copy of the
model (PyTorch's torch.ao.quantization.quantize_dynamic does the same for nn.Linear):

    model_q = quantize_model(model, mode="dynamic", per_channel=True)

What stays in float, and why:
- **Embeddings and LayerNorms.** An embedding is a table lookup (no matmul to speed up), and
  LayerNorm's few parameters set the scale of every activation; both are kept in float by
  PyTorch's and bitsandbytes' recipes too.
- **The tied lm_head.** GPT's output projection *is* its token embedding (one (V, E) matrix,
  weight tying). Quantizing the head alone would add an int8 copy beside the float embedding
  — 5 bytes per value instead of 4 — so by default a Linear whose weight is an Embedding's
  weight is left in float, as bitsandbytes / Hugging Face leave `lm_head` out of int8.
  `include_tied=True` quantizes a separate copy for the head (the embedding stays float).

A quantized model is for inference: its Linear layers have no parameters and no backward, so
calling it on inputs that need gradients raises (evaluate under `no_grad()`).

Quantization-aware training instead keeps the float weights trainable and puts a fake
quantizer (fake_quant.py: quantize then dequantize in the forward, straight-through gradient in
the backward) on each Linear's weight, so fine-tuning learns weights that survive rounding:

    model_qat = prepare_qat(model, quant_min=-8, quant_max=7)     # then train as usual
    model_q = convert_qat(model_qat)                              # int8 storage, same scales

`convert_qat` quantizes each weight with the scale and zero point its fake quantizer last used,
so the converted model computes what the fake-quantized model computed (up to float
rounding in the matmul). `model_nbytes` counts what a model stores.
"""

from __future__ import annotations

import copy

import numpy as np

from tinyllm import ops
from tinyllm.engine import Tensor, is_grad_enabled
from tinyllm.nn.layers import Embedding, Linear
from tinyllm.nn.module import Module
from tinyllm.precision.fake_quant import FakeQuant
from tinyllm.precision.qlinear import LLM_INT8_THRESHOLD, QuantizedLinear
from tinyllm.precision.quant import quantize


class QuantizedLinearModule(Module):
    """A Module around a QuantizedLinear: y = x Wᵀ + b with int8 W, inference only."""

    def __init__(self, qlinear: QuantizedLinear):
        super().__init__()
        self.qlinear = qlinear
        self.in_features, self.out_features = qlinear.in_features, qlinear.out_features

    def forward(self, x: Tensor) -> Tensor:
        if is_grad_enabled() and isinstance(x, Tensor) and x.requires_grad:
            raise RuntimeError(
                f"{self.qlinear!r} is inference-only (no backward): call the "
                f"quantized model under tinyllm.no_grad(), or train with QAT"
            )
        x = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
        return Tensor(self.qlinear(x))

    @property
    def nbytes(self) -> int:
        return self.qlinear.nbytes

    def extra_repr(self):
        q = self.qlinear
        return (
            f"in_features={q.in_features}, out_features={q.out_features}, mode={q.mode!r}, "
            f"per_channel={q.per_channel}"
        )


class QATLinear(Module):
    """A Linear whose weight passes through a FakeQuant: y = x · fq(W)ᵀ + b.

    It holds the *same* Parameter objects as the Linear it replaces (names unchanged), so an
    optimizer, a state dict and tied weights see no difference.
    """

    def __init__(self, linear: Linear, weight_fake_quant: FakeQuant):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = linear.weight
        if linear.bias is None:
            self.register_parameter("bias", None)
        else:
            self.bias = linear.bias
        self.weight_fake_quant = weight_fake_quant

    def forward(self, x: Tensor) -> Tensor:
        return ops.linear(x, self.weight_fake_quant(self.weight), self.bias)

    def extra_repr(self):
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"{self.weight_fake_quant!r}"
        )


def _tied_weights(model: Module) -> set[int]:
    return {id(m.weight) for m in model.modules() if isinstance(m, Embedding)}


def _replace_linears(model: Module, make, include_tied: bool, kinds=(Linear,)) -> int:
    """Replace every child module of type `kinds` by make(child); returns how many."""
    tied = _tied_weights(model)
    count = 0
    for module in list(model.modules()):
        for name, child in list(module._modules.items()):
            if isinstance(child, kinds) and (include_tied or id(child.weight) not in tied):
                module._modules[name] = make(child)
                count += 1
    return count


def quantize_model(
    model: Module,
    mode: str = "weight_only",
    per_channel: bool = True,
    symmetric: bool = True,
    threshold: float = LLM_INT8_THRESHOLD,
    quant_min: int = -128,
    quant_max: int = 127,
    include_tied: bool = False,
    inplace: bool = False,
) -> Module:
    """Post-training quantization: every Linear → QuantizedLinearModule (see module docstring).

    mode: "weight_only" | "dynamic" (int8 weights and per-call int8 activations) | "llm_int8".
    The float model is left untouched unless `inplace=True`.
    """
    if mode not in QuantizedLinear.MODES:
        raise ValueError(
            f"quantize_model: unknown mode {mode!r}; expected one of {QuantizedLinear.MODES}"
        )
    model = model if inplace else copy.deepcopy(model)

    def make(linear):
        return QuantizedLinearModule(
            QuantizedLinear.from_float(
                linear.weight.numpy(),
                None if linear.bias is None else linear.bias.numpy(),
                mode=mode,
                per_channel=per_channel,
                symmetric=symmetric,
                threshold=threshold,
                quant_min=quant_min,
                quant_max=quant_max,
            )
        )

    _replace_linears(model, make, include_tied)
    return model


def prepare_qat(
    model: Module,
    quant_min: int = -128,
    quant_max: int = 127,
    qscheme: str = "per_tensor_symmetric",
    averaging_constant: float = 0.01,
    include_tied: bool = False,
    inplace: bool = False,
) -> Module:
    """Quantization-aware training: every Linear → QATLinear with a FakeQuant on its weight
    (a moving-average min/max observer with `qscheme`, PyTorch's default for QAT weights)."""
    model = model if inplace else copy.deepcopy(model)

    def make(linear):
        return QATLinear(
            linear,
            FakeQuant(
                qscheme=qscheme,
                quant_min=quant_min,
                quant_max=quant_max,
                ch_axis=0,
                averaging_constant=averaging_constant,
            ),
        )

    _replace_linears(model, make, include_tied)
    return model


def qat_modules(model: Module) -> list[QATLinear]:
    return [m for m in model.modules() if isinstance(m, QATLinear)]


def convert_qat(model: Module, mode: str = "weight_only", inplace: bool = False) -> Module:
    """QATLinear → QuantizedLinearModule, quantizing each weight with its fake quantizer's own
    scale and zero point (so the int8 weights dequantize to exactly the fake-quantized ones)."""
    if mode == "llm_int8":
        raise ValueError(
            "convert_qat: LLM.int8() chooses its own vector-wise scales; use "
            "mode 'weight_only' or 'dynamic'"
        )
    model = model if inplace else copy.deepcopy(model)

    def make(qat):
        fq = qat.weight_fake_quant
        if fq.observer.min_val is None:
            raise RuntimeError(
                "convert_qat: a fake quantizer has observed nothing yet (run "
                "at least one forward pass before converting)"
            )
        axis = fq.observer.axis
        w_q = quantize(
            qat.weight.numpy(), fq.scale, fq.zero_point, fq.quant_min, fq.quant_max, axis=axis
        )
        bias = None if qat.bias is None else qat.bias.numpy()
        return QuantizedLinearModule(
            QuantizedLinear(
                w_q,
                fq.scale,
                fq.zero_point,
                bias,
                mode=mode,
                per_channel=axis is not None,
                symmetric=fq.observer.symmetric,
            )
        )

    _replace_linears(model, make, include_tied=True, kinds=(QATLinear,))
    return model


def model_nbytes(model: Module) -> int:
    """Bytes a model stores: each distinct parameter (at its dtype: 2 for fp16/bf16), its
    buffers, and each quantized layer's int8 weights, scales, zero points and bias."""
    n = sum(p.data.nbytes for p in model.parameters())
    n += sum(b.nbytes for _, b in model.named_buffers())
    n += sum(m.nbytes for m in model.modules() if isinstance(m, QuantizedLinearModule))
    return int(n)
