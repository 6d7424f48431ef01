"""Fake quantization and the straight-through estimator, for quantization-aware training.

Quantization-aware training (QAT) lets a model learn weights that survive int8 rounding by
*simulating* the rounding during training, in float:

    forward:   y = (clamp(round(x/s) + z, q_min, q_max) − z) · s        quantize, then dequantize

y takes only the values the int8 model will see, so the loss reflects the quantization error.
But round() is a staircase: its derivative is 0 almost everywhere, so the true gradient would
stop all learning. The *straight-through estimator* (STE; Bengio et al. 2013, used for QAT by
Jacob et al. 2018) replaces the staircase by the identity in the backward pass, except where
clamp cut the value off — there the output does not move when x moves, so the gradient is 0:

    backward:  x̄ = ȳ · 1[q_min ≤ round(x/s) + z ≤ q_max]

i.e. the derivative of the *surrogate* clamp(x, (q_min − z − ½)s, (q_max − z + ½)s): one inside
the range, zero outside. As in PyTorch (fake_quantize_per_tensor_affine), the test is made on
the rounded level before clamping, so a value that rounds onto q_max still passes its gradient.

`FakeQuantize` is that op (a tinyllm Function, forward and backward side by side);
`fake_quantize(x, scale, zero_point, ...)` is the function users call. `FakeQuant` is the module
QAT inserts after a weight or an activation (PyTorch's torch.ao.quantization.FakeQuantize): an
observer (a moving-average min/max by default) updates the range from every batch and sets
(s, z), then `fake_quantize` applies them. Its switches, as in PyTorch:
`enable_observer()/disable_observer()` freeze or resume the range (freezing is common for the
last epochs of QAT), and `enable_fake_quant()/disable_fake_quant()` turn the rounding on or off
(off, the module is the identity).
"""

from __future__ import annotations

import numpy as np

from tinyllm.engine import Function, Tensor
from tinyllm.engine.flops import per_element
from tinyllm.precision.quant import (
    MovingAverageMinMaxObserver,
    _check_params,
    _per_axis,
    rounded_levels,
)


class FakeQuantize(Function):
    flops = per_element("elementwise")  # round, clamp, rescale: one pass over the elements

    @staticmethod
    def forward(ctx, x, scale=None, zero_point=None, quant_min=-128, quant_max=127, axis=None):
        levels = rounded_levels(x, scale, zero_point, axis)  # round(x/s) + z, unclamped
        inside = (levels >= quant_min) & (levels <= quant_max)  # the STE mask
        s = _per_axis(np.asarray(scale, x.dtype), x.ndim, axis)
        z = _per_axis(np.asarray(zero_point, x.dtype), x.ndim, axis)
        ctx.save_for_backward(inside)
        return ((np.clip(levels, quant_min, quant_max) - z) * s).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside


def fake_quantize(
    x: Tensor, scale, zero_point, quant_min: int = -128, quant_max: int = 127, axis=None
) -> Tensor:
    """Quantize-dequantize `x` in the forward; straight-through gradient in the backward.

    Per-tensor: scalar `scale`, `zero_point`. Per-channel: (x.shape[axis],) arrays and `axis`.
    """
    if not isinstance(x, Tensor):
        x = Tensor(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"fake_quantize: expected a floating-point tensor, got dtype {x.dtype}")
    if not quant_min < quant_max:
        raise ValueError(
            f"fake_quantize: quant_min ({quant_min}) must be below quant_max ({quant_max})"
        )
    _check_params("fake_quantize", x.data, scale, zero_point, axis)
    return FakeQuantize.apply(
        x, scale=scale, zero_point=zero_point, quant_min=quant_min, quant_max=quant_max, axis=axis
    )


class FakeQuant:
    """Observer + fake quantization, with PyTorch's enable/disable switches.

    `FakeQuant(observer=None, qscheme="per_tensor_affine", quant_min=-128, quant_max=127,
    ch_axis=0, averaging_constant=0.01)`; by default the observer is a
    MovingAverageMinMaxObserver with these settings. Call it on a Tensor: returns a Tensor.
    """

    def __init__(
        self,
        observer=None,
        qscheme: str = "per_tensor_affine",
        quant_min: int = -128,
        quant_max: int = 127,
        ch_axis: int = 0,
        averaging_constant: float = 0.01,
    ):
        if observer is None:
            observer = MovingAverageMinMaxObserver(
                averaging_constant=averaging_constant,
                qscheme=qscheme,
                quant_min=quant_min,
                quant_max=quant_max,
                ch_axis=ch_axis,
            )
        self.observer = observer
        self.fake_quant_enabled = True
        self.observer_enabled = True
        self.scale = np.float32(1.0)  # PyTorch's initial values, used until something is observed
        self.zero_point = np.int32(0)

    @property
    def quant_min(self) -> int:
        return self.observer.quant_min

    @property
    def quant_max(self) -> int:
        return self.observer.quant_max

    def enable_fake_quant(self, enabled: bool = True) -> None:
        self.fake_quant_enabled = bool(enabled)

    def disable_fake_quant(self) -> None:
        self.enable_fake_quant(False)

    def enable_observer(self, enabled: bool = True) -> None:
        self.observer_enabled = bool(enabled)

    def disable_observer(self) -> None:
        self.enable_observer(False)

    def calculate_qparams(self):
        return self.observer.calculate_qparams()

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            x = Tensor(x)
        if self.observer_enabled:
            self.observer(x.data)
            self.scale, self.zero_point = self.calculate_qparams()
        if not self.fake_quant_enabled:
            return x
        return fake_quantize(
            x, self.scale, self.zero_point, self.quant_min, self.quant_max, axis=self.observer.axis
        )

    __call__ = forward

    def __repr__(self):
        return (
            f"FakeQuant(fake_quant_enabled={self.fake_quant_enabled}, observer_enabled="
            f"{self.observer_enabled}, scale={self.scale}, zero_point={self.zero_point})"
        )
