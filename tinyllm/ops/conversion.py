"""Conversions: the same values in another dtype (a cast), or in a new array (a clone).

A cast y = x in another format is the identity on values that both formats hold, so its adjoint
is a cast back: x̄ = cast(ȳ, dtype of x). Narrowing (float32 → fp16/bf16) rounds the values to
nearest, ties to even (tinyllm/dtypes.py); the gradient flowing back into a half tensor is
rounded the same way, since it belongs to that tensor's format.

`clone` copies; its adjoint passes the gradient through. Neither op does arithmetic worth
counting, except the rounding of a cast into a half format (one FLOP per element).
"""

from __future__ import annotations

import numpy as np

from tinyllm import dtypes
from tinyllm.engine import Function, Tensor
from tinyllm.engine.flops import MOVES_DATA, per_element


class Cast(Function):
    """y = x.astype(dtype) between NumPy dtypes (float32, float64, integers)."""

    flops = MOVES_DATA

    @staticmethod
    def forward(ctx, x, dtype=None):
        ctx.in_dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad.astype(ctx.in_dtype)


class HalfCast(Function):
    """y = x in another format, one side fp16 or bf16. Forward rounds when narrowing; backward
    casts the gradient back to x's dtype (adjoints of half tensors are float32 arrays holding
    half values)."""

    flops = per_element("elementwise")  # the rounding into or out of a half format
    handles_half = True  # receives and returns storage arrays (tinyllm/engine/hooks.py)

    @staticmethod
    def forward(ctx, x, dtype=None):
        ctx.src = dtypes.logical_dtype(x.dtype)
        return dtypes.convert_array(x, dtype)

    @staticmethod
    def backward(ctx, grad):
        src = ctx.src
        if dtypes.is_half(src):
            return dtypes.round_to(grad.astype(np.float32, copy=False), src)
        return grad.astype(src, copy=False)


def cast(x: Tensor, dtype) -> Tensor:
    """`x.to(dtype)`: the same tensor when the dtype is already x's, else a differentiable cast."""
    if dtypes.is_half(dtype) or dtypes.is_half(x.dtype):  # fp16/bf16 storage and rounding
        dtype = dtypes.as_dtype(dtype)
        if dtypes.same_dtype(x.dtype, dtype):
            return x
        if x.requires_grad and not (dtype is dtypes.bfloat16 or np.issubdtype(dtype, np.floating)):
            raise TypeError(f"cast: cannot cast a tensor that requires grad to non-float {dtype}")
        return HalfCast.apply(x, dtype=dtype)
    dtype = np.dtype(dtype)
    if dtype == x.dtype:
        return x
    if x.requires_grad and not np.issubdtype(dtype, np.floating):
        raise TypeError(f"cast: cannot cast a tensor that requires grad to non-float {dtype}")
    return Cast.apply(x, dtype=dtype)


class Clone(Function):
    flops = MOVES_DATA

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, grad):
        return grad


def clone(x: Tensor) -> Tensor:
    return Clone.apply(x)
