"""Conversions: the same values in another dtype (a cast), or in a new array (a clone).

A cast y = x in another format is the identity on values that both formats hold, so its adjoint
is a cast back: x̄ = cast(ȳ, dtype of x). Narrowing (float32 → fp16/bf16) rounds the values to
nearest, ties to even (tinyllm/dtypes.py); the gradient flowing back into a half tensor is
rounded the same way, since it belongs to that tensor's format.

`x.to(...)` is PyTorch's one door to both: it takes a dtype, a device, another tensor (its dtype
and device), or a device and a dtype, by position or by keyword. The only device is the CPU
(tinyllm/engine/device.py), so `.to("cpu")` and `.cpu()` return the tensor itself, and a cast is
the only thing `.to` can do. `x.long()`, `x.float()`, `x.half()`, … are its shorthands.

`clone` copies; its adjoint passes the gradient through. Neither op does arithmetic worth
counting, except the rounding of a cast into a half format (one FLOP per element).
"""

from __future__ import annotations

import numpy as np

from tinyllm import dtypes
from tinyllm.engine import Function, Tensor
from tinyllm.engine.device import check_device, device
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
        if not (dtype is dtypes.bfloat16 or np.issubdtype(dtype, np.floating)):
            return Tensor(dtypes.convert_array(x.data, dtype))  # integers: no gradient
        return HalfCast.apply(x, dtype=dtype)
    dtype = np.dtype(dtype)
    if dtype == x.dtype:
        return x
    if not np.issubdtype(dtype, np.floating):
        # An integer or bool result has no gradient (PyTorch: it does not require grad).
        return Tensor(x.data.astype(dtype))
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


def _is_device(arg) -> bool:
    return isinstance(arg, (str, device))


def to(x: Tensor, *args, dtype=None, device=None, non_blocking=False, copy=False) -> Tensor:  # noqa: A002
    """PyTorch's Tensor.to: `to(dtype)`, `to(device)`, `to(device, dtype)`, `to(other)`, or
    the same by keyword. Returns `x` itself when nothing changes (unless copy=True)."""
    if len(args) > 2:
        raise TypeError(f"to: expected at most a device and a dtype, got {len(args)} arguments")
    for arg in args:
        if isinstance(arg, Tensor):
            if dtype is not None:
                raise TypeError("to: got a tensor and a dtype; pass one of them")
            dtype = arg.dtype
        elif _is_device(arg):
            if device is not None:
                raise TypeError(f"to: got two devices, {device!r} and {arg!r}")
            device = arg
        elif dtype is None:
            dtype = arg
        else:
            raise TypeError(f"to: got two dtypes, {dtype!r} and {arg!r}")
    check_device(device, "to")
    out = x if dtype is None else cast(x, dtype)
    return clone(out) if copy and out is x else out


def cpu(x: Tensor) -> Tensor:
    """The tensor itself: it already is on the CPU, tinyllm's only device."""
    return x


def type_as(x: Tensor, other: Tensor) -> Tensor:
    return cast(x, other.dtype)


def _caster(dtype, name):
    def method(x: Tensor) -> Tensor:
        return cast(x, dtype)

    method.__name__ = name
    method.__doc__ = f"x.to({dtype}) (PyTorch's Tensor.{name}())."
    return method


# The shorthands of x.to(dtype), with PyTorch's names: x.long() is x.to(int64), and so on.
SHORTHANDS = {
    "long": _caster(np.int64, "long"),
    "int": _caster(np.int32, "int"),
    "short": _caster(np.int16, "short"),
    "bool": _caster(np.bool_, "bool"),
    "float": _caster(np.float32, "float"),
    "double": _caster(np.float64, "double"),
    "half": _caster(np.float16, "half"),
    "bfloat16": _caster(dtypes.bfloat16, "bfloat16"),
}
