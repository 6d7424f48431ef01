"""layer_norm as a differentiable op (equations in tinyllm/kernels/layernorm.py).

`layer_norm(x, normalized_shape, weight, bias, eps)` normalizes over the trailing axes named by
`normalized_shape` (PyTorch semantics): they are folded into one feature axis of size D, the
leading axes into rows. It costs one FLOP per output element in each pass.
"""

from __future__ import annotations

import numpy as np

from tinyllm import dtypes, kernels
from tinyllm.engine import Function, Tensor, policy
from tinyllm.engine.flops import per_element
from tinyllm.ops.conversion import cast


class LayerNorm(Function):
    inputs, name = policy.FLOAT, "layer_norm"
    flops = per_element("layer norm")

    @staticmethod
    def forward(ctx, x, weight=None, bias=None, eps=1e-5, d=1):
        # (rows, D); with D = 0 there is nothing to normalize and the result is empty
        x2 = x.reshape(x.size // d if d else 0, d)
        w = None if weight is None else weight.reshape(d)
        b = None if bias is None else bias.reshape(d)
        if x2.size == 0:
            y = np.empty(x2.shape, x.dtype)
            mean = rstd = np.empty(x2.shape[0], x.dtype)
        else:
            y, mean, rstd = kernels.layer_norm_forward(x2, w, b, eps)
        ctx.save_for_backward(x2, w, mean, rstd)
        ctx.shapes = (
            x.shape,
            None if weight is None else weight.shape,
            None if bias is None else bias.shape,
        )
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        x2, w, mean, rstd = ctx.saved_tensors
        x_shape, w_shape, b_shape = ctx.shapes
        g2 = grad.reshape(x2.shape)
        if x2.size == 0:  # no rows or no features: every gradient is empty or zero
            dx, dw = np.zeros(x2.shape, grad.dtype), np.zeros(x2.shape[1], grad.dtype)
            db = dw
        else:
            dx, dw, db = kernels.layer_norm_backward(x2, w, mean, rstd, g2)
        nx, nw, nb = ctx.needs_input_grad
        return (
            dx.reshape(x_shape) if nx else None,
            dw.reshape(w_shape) if nw else None,
            db.reshape(b_shape) if nb else None,
        )


def layer_norm(
    x: Tensor,
    normalized_shape,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if x.shape[x.ndim - len(shape) :] != shape:
        raise ValueError(
            f"layer_norm: normalized_shape {shape} does not match the trailing axes "
            f"of an input of shape {x.shape}"
        )
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.shape != shape:
            raise ValueError(f"layer_norm: {name} of shape {p.shape}, expected {shape}")
    d = int(np.prod(shape))
    out = LayerNorm.apply(x, weight, bias, eps=eps, d=d)
    if dtypes.is_half(x.dtype) and not dtypes.same_dtype(out.dtype, x.dtype):
        out = cast(out, x.dtype)  # half x, float32 weights: PyTorch keeps the input's dtype
    return out
