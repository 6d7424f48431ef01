"""Probabilities from logits: softmax, log_softmax, and the cross-entropy loss that scores them.

    softmax(x)ᵢ = e^xᵢ / Σⱼ e^xⱼ              log_softmax(x)ᵢ = xᵢ − log Σⱼ e^xⱼ
    cross_entropy(z, t) = −log softmax(z)ₜ    averaged over the rows whose target is not
                                              `ignore_index` (reduction="mean"), or summed

The equations, their derivatives and the numerics (subtract the row max) are in
tinyllm/kernels/softmax.py and tinyllm/kernels/cross_entropy.py; these ops move the chosen axis
last, fold the rest into rows, and call the kernel. Each costs one FLOP per logit in each pass.
"""

from __future__ import annotations

import numpy as np

from tinyllm import kernels
from tinyllm.engine import Function, Tensor
from tinyllm.engine.flops import FlopRule, per_element, prod
from tinyllm.ops.dims import numpy_aliases

SOFTMAX = per_element("softmax/cross-entropy")


def _rows(x, axis):
    """View x as (rows, size of `axis`) with that axis last; return the way back."""
    moved = np.moveaxis(x, axis, -1)
    shape = moved.shape
    return moved.reshape(-1, shape[-1]), shape


class Softmax(Function):
    flops = SOFTMAX

    @staticmethod
    def forward(ctx, x, axis=-1):
        rows, shape = _rows(x, axis)
        y = kernels.softmax_forward(rows)
        ctx.save_for_backward(y)
        ctx.axis, ctx.shape = axis, shape
        return np.moveaxis(y.reshape(shape), -1, axis)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        axis, shape = ctx.axis, ctx.shape
        g, _ = _rows(grad, axis)
        return np.moveaxis(kernels.softmax_backward(y, g).reshape(shape), -1, axis)


class LogSoftmax(Function):
    flops = SOFTMAX

    @staticmethod
    def forward(ctx, x, axis=-1):
        rows, shape = _rows(x, axis)
        y = kernels.log_softmax_forward(rows)
        ctx.save_for_backward(y)
        ctx.axis, ctx.shape = axis, shape
        return np.moveaxis(y.reshape(shape), -1, axis)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        axis, shape = ctx.axis, ctx.shape
        g, _ = _rows(grad, axis)
        return np.moveaxis(kernels.log_softmax_backward(y, g).reshape(shape), -1, axis)


def _check_axis(x, axis, op):
    if not -x.ndim <= axis < max(x.ndim, 1):
        raise ValueError(f"{op}: axis {axis} out of range for shape {x.shape}")


@numpy_aliases
def softmax(x: Tensor, dim: int = -1) -> Tensor:
    _check_axis(x, dim, "softmax")
    return Softmax.apply(x, axis=dim)


@numpy_aliases
def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    _check_axis(x, dim, "log_softmax")
    return LogSoftmax.apply(x, axis=dim)


def _per_logit(ctx, *_):
    return 0, prod(ctx.logits_shape)  # forward: log-softmax per logit; backward: softmax − one-hot


class CrossEntropy(Function):
    flops = FlopRule("softmax/cross-entropy", _per_logit, _per_logit)

    @staticmethod
    def forward(ctx, logits, targets, ignore_index=-100, reduction="mean"):
        loss_rows, lse = kernels.cross_entropy_forward(logits, targets, ignore_index)
        count = int((targets != ignore_index).sum())
        ctx.save_for_backward(logits, lse, targets)
        ctx.logits_shape = logits.shape
        ctx.ignore_index, ctx.reduction, ctx.count = ignore_index, reduction, count
        if reduction == "none":
            return loss_rows
        total = loss_rows.sum(dtype=np.float64)
        if reduction == "sum":
            return np.asarray(total, dtype=logits.dtype)
        # mean over the targets that count; no target left gives NaN, as in PyTorch
        return np.asarray(total / count if count else np.nan, dtype=logits.dtype)

    @staticmethod
    def backward(ctx, grad):
        logits, lse, targets = ctx.saved_tensors
        ignore_index, reduction, count = ctx.ignore_index, ctx.reduction, ctx.count
        n = logits.shape[0]
        if reduction == "none":
            grad_rows = grad
        elif reduction == "sum":
            grad_rows = np.full(n, grad, dtype=logits.dtype)
        else:
            grad_rows = np.full(n, grad / max(count, 1), dtype=logits.dtype)
        return kernels.cross_entropy_backward(logits, lse, targets, grad_rows, ignore_index), None


def cross_entropy(
    logits: Tensor, targets, ignore_index: int = -100, reduction: str = "mean"
) -> Tensor:
    """PyTorch's F.cross_entropy on class indices.

    logits (N, C) with targets (N,); or (N, C, d₁, …) with targets (N, d₁, …) — the class axis
    is axis 1, as in PyTorch; or (C,) with a scalar target.
    """
    t = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
    if not np.issubdtype(t.dtype, np.integer):
        raise TypeError(
            f"cross_entropy: targets must be integer class indices, got dtype {t.dtype}"
        )
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(
            f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}"
        )
    if logits.ndim == 1:
        logits, t, squeeze = logits.reshape(1, -1), t.reshape(1), True
    else:
        squeeze = False
    if logits.ndim < 2 or t.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(
            f"cross_entropy: logits of shape {logits.shape} need targets of shape "
            f"{logits.shape[:1] + logits.shape[2:]}, got {t.shape}"
        )
    c = logits.shape[1]
    bad = (t != ignore_index) & ((t < 0) | (t >= c))
    if bad.any():
        raise IndexError(
            f"cross_entropy: target {int(t[bad].flat[0])} is out of range for "
            f"{c} classes (ignore_index={ignore_index})"
        )
    rest_shape = t.shape
    if logits.ndim > 2:  # move the class axis last and fold the rest into rows
        logits = logits.permute(0, *range(2, logits.ndim), 1).reshape(-1, c)
    rows = CrossEntropy.apply(
        logits,
        t.reshape(-1).astype(np.int64, copy=False),
        ignore_index=ignore_index,
        reduction=reduction,
    )
    if reduction == "none":
        rows = rows.reshape(rest_shape) if not squeeze else rows.reshape(())
    return rows
