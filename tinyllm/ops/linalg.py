"""Matrix products: matmul (with batch broadcasting) and the fused linear layer.

For C = A B with A (m, k) and B (k, n), each C[i, j] = Σₚ A[i, p] B[p, j], so

    Ā = C̄ Bᵀ        (m, n)(n, k) → (m, k)
    B̄ = Aᵀ C̄        (k, m)(m, n) → (k, n)

With leading batch axes the same holds per batch element, and where a batch axis was
broadcast (A is (1, m, k) or (m, k) while B is (8, k, n)) the per-batch gradients are summed
back (`unbroadcast`). A 1-D operand is treated as a row (left) or a column (right) vector and
that axis is removed again afterwards, as in NumPy and PyTorch.

A forward matmul costs 2·m·k·n FLOPs (a multiply and an add per term); its backward runs one
product of the same size per input that needs a gradient (Ā = C̄Bᵀ, B̄ = AᵀC̄). Each op below
declares these counts (`flops`, read by tinyllm.accounting's FLOP counter) from `ctx.flops`.

`linear(x, W, b) = x Wᵀ + b` with W (out, in) is written as one op so that any number of
leading axes of x is folded into a single 2-D matrix product — the shape BLAS is fastest at:

    X (N, in) = x.reshape(-1, in);  Y = X Wᵀ + b;  W̄ = Ȳᵀ X;  X̄ = Ȳ W;  b̄ = Σₙ Ȳₙ
"""

from __future__ import annotations

import math

import numpy as np

from tinyllm import kernels
from tinyllm.engine import Function, Tensor, policy, unbroadcast
from tinyllm.engine.flops import FlopRule, prod


def _gemm_flops(a_shape, b_shape):
    m, k = a_shape[-2], a_shape[-1]
    n = b_shape[-1]
    batch = np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    return 2 * int(np.prod(batch, dtype=np.int64)) * m * k * n


def _matmul_forward_flops(ctx, out):
    return ctx.flops, 0


def _matmul_backward_flops(ctx, out_size):
    """One product per input needing a gradient; plus the sum `unbroadcast` does when an
    input's batch axes were broadcast (e.g. a shared weight (k, n) against a batch (B, m, k))."""
    a2, b2 = ctx.saved_tensors
    batch = prod(np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]))
    gemm = other = 0
    for needed, operand in zip(ctx.needs_input_grad, (a2, b2)):
        if needed:
            gemm += ctx.flops
            own = prod(operand.shape[:-2])
            other += (batch - own) * operand.shape[-2] * operand.shape[-1]
    return gemm, other


class MatMul(Function):
    inputs, name = policy.SAME, "matmul"
    flops = FlopRule("matmul", _matmul_forward_flops, _matmul_backward_flops)

    @staticmethod
    def forward(ctx, a, b):
        # Promote 1-D operands to matrices; remember to drop the added axes afterwards.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        ctx.save_for_backward(a2, b2)
        ctx.a_shape, ctx.b_shape = a.shape, b.shape
        out = np.matmul(a2, b2)
        ctx.flops = _gemm_flops(a2.shape, b2.shape)
        if b.ndim == 1:
            out = out[..., 0]
        if a.ndim == 1:
            out = out[..., 0, :] if b.ndim > 1 else out[..., 0]
        return out

    @staticmethod
    def backward(ctx, grad):
        a2, b2 = ctx.saved_tensors
        a_shape, b_shape = ctx.a_shape, ctx.b_shape
        # Give the gradient the shape of the promoted product.
        g = grad
        if len(a_shape) == 1 and len(b_shape) == 1:
            g = grad.reshape(1, 1)
        elif len(a_shape) == 1:
            g = np.expand_dims(grad, -2)
        elif len(b_shape) == 1:
            g = np.expand_dims(grad, -1)
        na, nb = ctx.needs_input_grad
        ga = gb = None
        if na:
            ga = unbroadcast(np.matmul(g, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a_shape)
        if nb:
            gb = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g), b2.shape).reshape(b_shape)
        return ga, gb


def matmul(a, b) -> Tensor:
    if not isinstance(a, Tensor):
        a = Tensor(np.asarray(a, dtype=b.dtype))
    if not isinstance(b, Tensor):
        b = Tensor(np.asarray(b, dtype=a.dtype))
    sa, sb = a.shape, b.shape
    bad = a.ndim == 0 or b.ndim == 0
    if not bad:
        k_a = sa[-1]
        k_b = sb[0] if b.ndim == 1 else sb[-2]
        bad = k_a != k_b
        if not bad and (a.ndim > 2 or b.ndim > 2):
            try:
                np.broadcast_shapes(sa[:-2] if a.ndim > 1 else (), sb[:-2] if b.ndim > 1 else ())
            except ValueError:
                bad = True
    if bad:
        raise ValueError(
            f"matmul: shapes {sa} and {sb} are not aligned (inner dimensions must "
            f"match and batch dimensions must broadcast)"
        )
    return MatMul.apply(a, b)


def _linear_forward_flops(ctx, out):
    return ctx.flops, np.size(out) if ctx.has_bias else 0  # X Wᵀ, and the bias add (N·out)


def _linear_backward_flops(ctx, out_size):
    nx, nw, nb = ctx.needs_input_grad
    return ctx.flops * (int(nx) + int(nw)), out_size if nb else 0  # X̄, W̄; Σ rows for b̄


class Linear(Function):
    inputs, name = policy.SAME, "linear"
    flops = FlopRule("linear", _linear_forward_flops, _linear_backward_flops)

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        x2 = x.reshape(math.prod(x.shape[:-1]), x.shape[-1])  # (N, in): leading axes folded
        out = kernels.matmul(x2, weight.T)  # (N, out), on tinyllm's threads
        if bias is not None:
            out += bias
        ctx.save_for_backward(x2, weight)
        ctx.x_shape = x.shape
        ctx.flops = 2 * x2.shape[0] * weight.shape[0] * weight.shape[1]
        ctx.has_bias = bias is not None
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    @staticmethod
    def backward(ctx, grad):
        x2, weight = ctx.saved_tensors
        g2 = grad.reshape(-1, weight.shape[0])  # (N, out)
        nx, nw, nb = ctx.needs_input_grad
        if nx and nw:  # two products of equal cost: side by side
            gx, gw = kernels.matmul_pair(g2, weight, g2.T, x2)  # (N, in), (out, in)
            gx = gx.reshape(ctx.x_shape)
        else:
            gx = kernels.matmul(g2, weight).reshape(ctx.x_shape) if nx else None  # (N, in)
            gw = kernels.matmul(g2.T, x2) if nw else None  # (out, in)
        gb = g2.sum(axis=0) if nb else None  # (out,)
        return gx, gw, gb


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x Wᵀ + b, with W of shape (out_features, in_features) as in PyTorch."""
    if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input of shape {x.shape} does not match weight of shape "
            f"{weight.shape} (expected input [..., {weight.shape[-1] if weight.ndim else '?'}])"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(
            f"linear: bias of shape {bias.shape} does not match weight of shape {weight.shape}"
        )
    return Linear.apply(x, weight, bias)
