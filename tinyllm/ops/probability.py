"""Probabilities from logits: softmax, log_softmax, and the cross-entropy loss that scores them.

    softmax(x)ᵢ = e^xᵢ / Σⱼ e^xⱼ              log_softmax(x)ᵢ = xᵢ − log Σⱼ e^xⱼ
    cross_entropy(z, t) = −log softmax(z)ₜ    averaged over the rows whose target is not
                                              `ignore_index` (reduction="mean"), or summed

PyTorch's extensions of cross_entropy, with class weights w and label smoothing ε (C classes):

    class index t:       loss = (1 − ε)·(−w_t log pₜ) + (ε/C)·Σ_c (−w_c log p_c)
                         mean = Σ_rows loss / Σ_rows w_t   (ignored rows count for nothing)
    probabilities q:     loss = −Σ_c w_c q̃_c log p_c,   q̃ = (1 − ε)·q + ε/C
                         mean = Σ_rows loss / number of rows
    nll_loss(log p, t):  loss = −w_t log pₜ            (cross_entropy = nll_loss ∘ log_softmax)

The plain case (class indices, no weights, no smoothing) runs the fused kernel below; the
extensions are composed from log_softmax, products and sums, so autograd differentiates them.

The equations, their derivatives and the numerics (subtract the row max) are in
tinyllm/kernels/softmax.py and tinyllm/kernels/cross_entropy.py; these ops move the chosen axis
last, fold the rest into rows, and call the kernel. Each costs one FLOP per logit in each pass.
"""

from __future__ import annotations

import math

import numpy as np

from tinyllm import kernels
from tinyllm.engine import Function, Tensor, policy
from tinyllm.engine.flops import FlopRule, per_element, prod
from tinyllm.ops.dims import numpy_aliases
from tinyllm.ops.selection import where
from tinyllm.ops.sorting import gather

SOFTMAX = per_element("softmax/cross-entropy")


def _rows(x, axis):
    """View x as (rows, size of `axis`) with that axis last; return the way back."""
    moved = np.moveaxis(x, axis, -1)
    shape = moved.shape
    return moved.reshape(math.prod(shape[:-1]), shape[-1]), shape  # (0 rows or 0 columns too)


class Softmax(Function):
    inputs, name = policy.FLOAT, "softmax"
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
    inputs, name = policy.FLOAT, "log_softmax"
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


@numpy_aliases
def softmax(x: Tensor, dim: int = -1) -> Tensor:
    axis = policy.dim("softmax", dim, x.ndim, x.shape)
    if x.ndim == 0:  # one element: softmax over it is 1
        return softmax(x.reshape(1), 0).reshape(())
    return Softmax.apply(x, axis=axis)


@numpy_aliases
def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    axis = policy.dim("log_softmax", dim, x.ndim, x.shape)
    if x.ndim == 0:
        return log_softmax(x.reshape(1), 0).reshape(())
    return LogSoftmax.apply(x, axis=axis)


def _per_logit(ctx, *_):
    return 0, prod(ctx.logits_shape)  # forward: log-softmax per logit; backward: softmax − one-hot


class CrossEntropy(Function):
    inputs, name = policy.FLOAT, "cross_entropy"
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


def _class_rows(x, c):
    """(N, C, d₁, …) → (N·d₁·…, C): move the class axis (1) last and fold the rest into rows."""
    if x.ndim <= 2:
        return x
    if isinstance(x, Tensor):
        return x.permute(0, *range(2, x.ndim), 1).reshape(-1, c)
    return np.moveaxis(x, 1, -1).reshape(-1, c)


def _check_reduction(op, reduction):
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _class_weight(op, weight, c, dtype):
    """The class weights as an array of shape (C,), or ones."""
    if weight is None:
        return np.ones(c, dtype=dtype)
    w = weight.data if isinstance(weight, Tensor) else np.asarray(weight)
    if w.shape != (c,) or not np.issubdtype(w.dtype, np.floating):
        raise ValueError(
            f"{op}: weight must be a float array of shape ({c},) (one per class), got "
            f"{w.dtype} {w.shape}"
        )
    return w.astype(dtype)


def _index_targets(op, input, t, ignore_index):
    """Check integer class targets against input (N, C, d₁, …) or (C,); return them flat."""
    if not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"{op}: targets must be integer class indices, got dtype {t.dtype}")
    expected = () if input.ndim == 1 else input.shape[:1] + input.shape[2:]
    if input.ndim < 1 or t.shape != expected:
        raise ValueError(
            f"{op}: input of shape {input.shape} needs targets of shape {expected}, got {t.shape}"
        )
    c = input.shape[0] if input.ndim == 1 else input.shape[1]
    bad = (t != ignore_index) & ((t < 0) | (t >= c))
    if bad.any():
        raise IndexError(
            f"{op}: target {int(t[bad].flat[0])} is out of range for "
            f"{c} classes (ignore_index={ignore_index})"
        )
    return t.reshape(-1).astype(np.int64, copy=False)


def _reduce_rows(rows, reduction, denominator, shape):
    """Apply `reduction` to per-row losses; 'mean' divides the sum by `denominator`."""
    if reduction == "none":
        return rows.reshape(shape)
    total = rows.sum()
    if reduction == "sum":
        return total
    with np.errstate(divide="ignore", invalid="ignore"):  # nothing to average: NaN, as PyTorch
        return total * np.asarray(1.0 / denominator if denominator else np.nan, total.dtype)


def _weighted_nll_rows(logp, t, w, ignore_index):
    """Rows of −w_t log pₜ (0 where t = ignore_index), and the weights w_t that count."""
    valid = t != ignore_index
    safe = np.where(valid, t, 0)
    w_row = np.where(valid, w[safe], 0).astype(w.dtype)  # (N,)
    # Read log p at each row's target (a product with a one-hot matrix would turn another
    # class's −inf into 0·(−inf) = NaN); ignored rows are exactly 0.
    picked = gather(logp, 1, safe[:, None]).reshape(-1)  # (N,): log p[n, tₙ]
    return where(valid, -(picked * w_row), 0.0), w_row, valid


def nll_loss(
    input: Tensor,
    target,
    weight=None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    """PyTorch's F.nll_loss: −w_t · input[t] per row, from log-probabilities `input`.

    input (N, C) with targets (N,), (N, C, d₁, …) with targets (N, d₁, …), or (C,) with a
    scalar target. 'mean' divides by Σ w_t over the rows that are not ignored.
    """
    _legacy_reduction("nll_loss", size_average, reduce)
    _check_reduction("nll_loss", reduction)
    policy.admit("nll_loss", policy.FLOAT, [input.data])
    t = _index_targets("nll_loss", input, _as_array(target), ignore_index)
    c = input.shape[0] if input.ndim == 1 else input.shape[1]
    w = _class_weight("nll_loss", weight, c, _compute_dtype(input))
    x = input.reshape(1, -1) if input.ndim == 1 else input
    rows, w_row, _ = _weighted_nll_rows(_class_rows(x, c), t, w, ignore_index)
    shape = () if input.ndim == 1 else input.shape[:1] + input.shape[2:]
    return _reduce_rows(rows, reduction, float(w_row.sum(dtype=np.float64)), shape)


def _as_array(x):
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def _compute_dtype(x: Tensor):
    dt = np.dtype(np.float32) if x.data.dtype.metadata is not None else x.data.dtype
    return np.float32 if dt == np.float16 else dt


def _legacy_reduction(op, size_average, reduce):
    if size_average is not None or reduce is not None:
        raise TypeError(
            f"{op}: size_average and reduce are PyTorch's deprecated arguments; "
            "use reduction='mean' | 'sum' | 'none'"
        )


def cross_entropy(
    input: Tensor,
    target,
    weight=None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """PyTorch's F.cross_entropy: class indices or class probabilities as targets.

    input (N, C) with targets (N,); or (N, C, d₁, …) with targets (N, d₁, …) — the class axis
    is axis 1, as in PyTorch; or (C,) with a scalar target. A float `target` of the input's
    shape holds class probabilities instead (ignore_index does not apply to them). `weight`
    (C,) rescales each class; `label_smoothing` ε mixes the target with the uniform
    distribution over the C classes.
    """
    _legacy_reduction("cross_entropy", size_average, reduce)
    _check_reduction("cross_entropy", reduction)
    policy.admit("cross_entropy", policy.FLOAT, [input.data])
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(
            f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}"
        )
    t = _as_array(target)
    if np.issubdtype(t.dtype, np.floating) or t.dtype.metadata is not None:
        return _cross_entropy_probabilities(input, target, weight, reduction, label_smoothing)
    if weight is not None or label_smoothing > 0:
        return _cross_entropy_extended(input, t, weight, ignore_index, reduction, label_smoothing)
    logits = input
    if not np.issubdtype(t.dtype, np.integer):
        raise TypeError(
            f"cross_entropy: targets must be integer class indices, got dtype {t.dtype}"
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


def _cross_entropy_extended(input, t, weight, ignore_index, reduction, eps):
    """Class-index targets with class weights and/or label smoothing (composed ops)."""
    flat_t = _index_targets("cross_entropy", input, t, ignore_index)
    x = input.reshape(1, -1) if input.ndim == 1 else input
    c = x.shape[1]
    w = _class_weight("cross_entropy", weight, c, _compute_dtype(input))
    logp = log_softmax(_class_rows(x, c), -1)  # (rows, C)
    rows, w_row, valid = _weighted_nll_rows(logp, flat_t, w, ignore_index)
    if eps > 0:
        uniform = (w[None, :] * valid[:, None]).astype(w.dtype)  # Σ_c w_c, zero on ignored rows
        smooth = -(logp * uniform).sum(axis=-1)
        rows = rows * (1.0 - eps) + smooth * (eps / c)
    shape = () if input.ndim == 1 else input.shape[:1] + input.shape[2:]
    return _reduce_rows(rows, reduction, float(w_row.sum(dtype=np.float64)), shape)


def _cross_entropy_probabilities(input, target, weight, reduction, eps):
    """Soft targets: −Σ_c w_c q̃_c log p_c per row, q̃ = (1 − ε)q + ε/C (composed ops)."""
    t = _as_array(target)
    if t.shape != input.shape:
        index_shape = () if input.ndim == 1 else input.shape[:1] + input.shape[2:]
        error = TypeError if t.shape == index_shape else ValueError
        raise error(
            f"cross_entropy: targets must be integer class indices of shape {index_shape}, or "
            f"probability targets of the input's shape {input.shape}; got dtype {t.dtype} "
            f"of shape {t.shape}"
        )
    x = input.reshape(1, -1) if input.ndim == 1 else input
    q = target.reshape(1, -1) if input.ndim == 1 else target
    c = x.shape[1]
    w = _class_weight("cross_entropy", weight, c, _compute_dtype(input))
    q = _class_rows(q, c)
    if eps > 0:
        q = q * (1.0 - eps) + eps / c
    if not isinstance(q, Tensor):
        q = np.asarray(q, dtype=w.dtype)
    rows = -(log_softmax(_class_rows(x, c), -1) * q * w).sum(axis=-1)
    shape = () if input.ndim == 1 else input.shape[:1] + input.shape[2:]
    return _reduce_rows(rows, reduction, rows.shape[0], shape)
