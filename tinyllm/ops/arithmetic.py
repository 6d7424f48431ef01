"""Arithmetic: element-wise ops and their derivatives.

An element-wise op applies a scalar function to every element (unary: y = f(x)) or to pairs of
broadcast elements (binary: y = f(a, b)). Its Jacobian is diagonal, so the vector-Jacobian
product is an element-wise product too:

    unary:   x̄ = f'(x) · ȳ
    binary:  ā = unbroadcast(∂f/∂a · ȳ),   b̄ = unbroadcast(∂f/∂b · ȳ)

`unbroadcast` sums the gradient back to each input's shape (the adjoint of broadcasting).

| op        | y                   | ∂y/∂a              | ∂y/∂b             |
|-----------|---------------------|--------------------|-------------------|
| add       | a + b               | 1                  | 1                 |
| sub       | a − b               | 1                  | −1                |
| mul       | a · b               | b                  | a                 |
| div       | a / b               | 1/b                | −a/b²             |
| pow       | a^b                 | b·a^(b−1)          | a^b · ln a        |
| floor_div | ⌊a / b⌋             | 0                  | 0                 |
| remainder | a − b·⌊a / b⌋       | 1                  | −⌊a / b⌋          |
| exp       | eˣ                  | eˣ                 |                   |
| log       | ln x                | 1/x                |                   |
| sqrt      | √x                  | 1/(2√x)            |                   |
| abs       | |x|                 | sign x             |                   |

`remainder` (Python's `%`) takes the sign of the divisor, as Python and PyTorch do; the step
function ⌊a/b⌋ has derivative zero wherever it has one, which is the gradient both report.

A Python scalar operand (`x * 2`) is converted to the tensor's dtype, so it never upcasts
float32 to float64. The activation functions (relu, gelu, tanh, sigmoid) and the ops that choose
between values (maximum, minimum, clamp, where) are element-wise too; they have their own files,
activation.py and selection.py. Each op costs one FLOP per output element in both
passes (tinyllm/engine/flops.py).
"""

from __future__ import annotations

import numbers

import numpy as np

from tinyllm import dtypes
from tinyllm.engine import Function, Tensor, policy, unbroadcast
from tinyllm.engine.flops import per_element
from tinyllm.ops.conversion import cast

ELEMENTWISE = per_element("elementwise")


def _operand(x, like: Tensor, op: str):
    """A non-Tensor operand as an array: scalars take the dtype of the tensor they meet.

    A float scalar meeting an integer or bool tensor is float32 (PyTorch's default float); an
    int scalar meeting a bool tensor is int64. None, complex numbers, strings and ragged lists
    are refused (tinyllm/engine/policy.py)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return policy.check_real(op, x)
    if isinstance(x, (numbers.Number, np.generic)) and not isinstance(
        x, (complex, np.complexfloating)
    ):
        dtype = like.dtype
        floating = like.is_floating_point()
        if not floating and isinstance(x, (float, np.floating)):
            dtype = np.float32
        elif dtype == np.bool_ and not isinstance(x, (bool, np.bool_)):
            dtype = np.int64
        elif not floating and dtype != np.bool_ and not _fits(x, dtype):
            dtype = np.int64  # an int constant too large for the tensor's integer dtype
        return np.asarray(x, dtype=dtype)
    return policy.check_real(op, policy.as_real_array(op, x, np.float32))


def _fits(x, dtype) -> bool:
    info = np.iinfo(dtype)
    return info.min <= x <= info.max


def _float_like(t: Tensor, other):
    """An integer or bool tensor meeting a float operand becomes that float dtype first, so
    that int64 ∘ float32 gives float32 (as in PyTorch), not NumPy's float64. (A half tensor
    operand passes its storage dtype, which the half rules of tinyllm/dtypes.py decode.)"""
    if t.is_floating_point():
        return t
    other_dtype = other.data.dtype if isinstance(other, Tensor) else np.asarray(other).dtype
    if dtypes.is_half_storage(other_dtype):  # the int values rounded into that half format
        return Tensor(
            dtypes.to_storage(t.data.astype(np.float32), dtypes.logical_dtype(other_dtype))
        )
    if other_dtype.kind == "f":
        return Tensor(t.data.astype(other_dtype))
    return t


def _category(t: Tensor) -> int:
    return 2 if t.is_floating_point() else 0 if t.dtype == np.bool_ else 1


def _zero_dim_follows(t: Tensor, other: Tensor) -> Tensor:
    """PyTorch's rule for a 0-d tensor meeting a tensor with axes: like a Python scalar, it
    takes the other's dtype when its category (bool < integer < float) is not higher, so
    float32[3] ∘ float64[] is float32 and float16[3] ∘ float32[] is float16. (A
    differentiable cast: the 0-d tensor still receives its gradient.)"""
    if t.ndim or not other.ndim or dtypes.same_dtype(t.dtype, other.dtype):
        return t
    if _category(t) > _category(other):
        return t
    return cast(t, other.dtype)


def binary_operands(a, b, op: str = "binary op"):
    """(a, b) ready for a binary op: at least one is a Tensor; constants take its dtype, an
    integer tensor meeting a float becomes that float (see above)."""
    if isinstance(a, Tensor):
        b = _operand(b, a, op)
        if isinstance(b, Tensor):
            a, b = _zero_dim_follows(a, b), _zero_dim_follows(b, a)
            return _float_like(a, b), _float_like(b, a)
        return _float_like(a, b), b
    if isinstance(b, Tensor):
        a = _operand(a, b, op)
        return a, _float_like(b, a)
    raise TypeError(
        f"{op}: expected at least one Tensor, got {type(a).__name__} and {type(b).__name__}"
    )


def _shape(x):
    return x.shape


def check_broadcast(op, a, b):
    try:
        return np.broadcast_shapes(_shape(a), _shape(b))
    except ValueError:
        raise ValueError(
            f"{op}: shapes {tuple(_shape(a))} and {tuple(_shape(b))} cannot be broadcast together"
        ) from None


# ---------------------------------------------------------------------------------------------
# Binary ops
# ---------------------------------------------------------------------------------------------


class Add(Function):
    flops = ELEMENTWISE

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return a + b

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        na, nb = ctx.needs_input_grad
        return (unbroadcast(grad, sa) if na else None, unbroadcast(grad, sb) if nb else None)


def add(a, b) -> Tensor:
    a, b = binary_operands(a, b, "add")
    check_broadcast("add", a, b)
    return Add.apply(a, b)


class Sub(Function):
    flops = ELEMENTWISE

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return a - b

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        na, nb = ctx.needs_input_grad
        return (unbroadcast(grad, sa) if na else None, unbroadcast(-grad, sb) if nb else None)


def sub(a, b) -> Tensor:
    # PyTorch refuses a bool tensor on either side of − (it suggests ~ for masks)
    policy.admit("sub", policy.NUMERIC, [x.data for x in (a, b) if isinstance(x, Tensor)])
    a, b = binary_operands(a, b, "sub")
    check_broadcast("sub", a, b)
    return Sub.apply(a, b)


class Mul(Function):
    flops = ELEMENTWISE

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        return (
            unbroadcast(grad * b, a.shape) if na else None,
            unbroadcast(grad * a, b.shape) if nb else None,
        )


def mul(a, b) -> Tensor:
    a, b = binary_operands(a, b, "mul")
    check_broadcast("mul", a, b)
    return Mul.apply(a, b)


class Div(Function):
    flops = ELEMENTWISE

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        ga = unbroadcast(grad / b, a.shape) if na else None
        gb = unbroadcast(-grad * a / (b * b), b.shape) if nb else None
        return ga, gb


def div(a, b) -> Tensor:
    a, b = binary_operands(a, b, "div")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(b.dtype, np.floating)):
        # true division of integers gives the default float dtype (float32), as in PyTorch
        a, b = (
            Tensor(np.asarray(x.data if isinstance(x, Tensor) else x, dtype=np.float32))
            for x in (a, b)
        )
    check_broadcast("div", a, b)
    return Div.apply(a, b)


class Pow(Function):
    flops = ELEMENTWISE

    @staticmethod
    def forward(ctx, a, b):
        out = a**b
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b, out = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        ga = gb = None
        if na:
            ga = unbroadcast(grad * b * a ** (b - 1), a.shape)
        if nb:
            # d(a^b)/db = a^b ln a; where a == 0 the limit is 0 (for b > 0).
            with np.errstate(divide="ignore", invalid="ignore"):
                log_a = np.where(a > 0, np.log(np.where(a > 0, a, 1)), 0).astype(out.dtype)
            gb = unbroadcast(grad * out * log_a, b.shape)
        return ga, gb


def pow(a, b) -> Tensor:  # noqa: A001 - PyTorch's name
    a, b = binary_operands(a, b, "pow")
    if not any(
        dtypes.is_float_storage(np.asarray(x.data if isinstance(x, Tensor) else x).dtype)
        for x in (a, b)
    ):
        exponent = b.data if isinstance(b, Tensor) else np.asarray(b)
        if np.any(exponent < 0):
            raise ValueError("pow: integers to negative integer powers are not allowed")
    check_broadcast("pow", a, b)
    return Pow.apply(a, b)


def _integer_zero_divisor(op, a, b):
    """Integer division by zero has no value (NumPy would give 0 silently): raise, as torch."""
    if all(not np.issubdtype(np.result_type(x), np.floating) for x in (a, b)):
        divisor = b.data if isinstance(b, Tensor) else np.asarray(b)
        if np.any(divisor == 0):
            raise ZeroDivisionError(f"{op}: integer division by zero")


class FloorDivide(Function):
    flops = ELEMENTWISE

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return np.floor_divide(a, b)

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        na, nb = ctx.needs_input_grad
        zero = np.zeros(grad.shape, dtype=grad.dtype)
        return (unbroadcast(zero, sa) if na else None, unbroadcast(zero, sb) if nb else None)


def floor_divide(a, b) -> Tensor:
    """⌊a / b⌋ element-wise (Python's `//`, torch.floor_divide)."""
    a, b = binary_operands(a, b, "floor_divide")
    check_broadcast("floor_divide", a, b)
    _integer_zero_divisor("floor_divide", a, b)
    return FloorDivide.apply(a, b)


class Remainder(Function):
    flops = ELEMENTWISE

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.remainder(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        ga = unbroadcast(grad, a.shape) if na else None
        gb = unbroadcast(-grad * np.floor_divide(a, b), b.shape) if nb else None
        return ga, gb


def remainder(a, b) -> Tensor:
    """a − b·⌊a / b⌋ element-wise: the sign of the divisor (Python's `%`, torch.remainder)."""
    a, b = binary_operands(a, b, "remainder")
    check_broadcast("remainder", a, b)
    _integer_zero_divisor("remainder", a, b)
    return Remainder.apply(a, b)


# ---------------------------------------------------------------------------------------------
# Unary ops
# ---------------------------------------------------------------------------------------------


class Neg(Function):
    inputs, name = policy.NUMERIC, "neg"
    flops = ELEMENTWISE

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, grad):
        return -grad


def neg(x: Tensor) -> Tensor:
    return Neg.apply(x)


class Exp(Function):
    inputs, name = policy.PROMOTE, "exp"
    flops = ELEMENTWISE

    @staticmethod
    def forward(ctx, x):
        out = np.exp(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * out


def exp(x: Tensor) -> Tensor:
    return Exp.apply(x)


class Log(Function):
    inputs, name = policy.PROMOTE, "log"
    flops = ELEMENTWISE

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / x


def log(x: Tensor) -> Tensor:
    return Log.apply(x)


class Sqrt(Function):
    inputs, name = policy.PROMOTE, "sqrt"
    flops = ELEMENTWISE

    @staticmethod
    def forward(ctx, x):
        out = np.sqrt(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad / (2 * out)


def sqrt(x: Tensor) -> Tensor:
    return Sqrt.apply(x)


class Abs(Function):
    inputs, name = policy.NUMERIC, "abs"
    flops = ELEMENTWISE

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.abs(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * np.sign(x)


def abs(x: Tensor) -> Tensor:  # noqa: A001 - PyTorch's name
    return Abs.apply(x)
