"""Loss functions: how far a prediction is from its target, as one number to minimise.

Each loss has PyTorch's two faces: a function (`F.mse_loss`, tinyllm.nn.functional) and a
module that stores its options (`nn.MSELoss()`), with PyTorch's arguments. For N elements with
prediction x and target y (broadcast to one shape):

    mse_loss:   ℓᵢ = (xᵢ − yᵢ)²                   the Gaussian negative log-likelihood, up to
                                                  constants; its gradient 2(x − y) is linear
    l1_loss:    ℓᵢ = |xᵢ − yᵢ|                    the Laplace one; robust to outliers
    binary_cross_entropy_with_logits, for a logit x and a target probability y:
                ℓᵢ = −wᵢ [pw·yᵢ log σ(xᵢ) + (1 − yᵢ) log(1 − σ(xᵢ))]
                   = wᵢ [(1 − yᵢ)·xᵢ + (1 + (pw − 1)·yᵢ)·softplus(−xᵢ)]
                softplus(−x) = log(1 + e^(−x)) = max(−x, 0) + log(1 + e^(−|x|)): the last form
                never exponentiates a positive number, so it cannot overflow (and it is why
                the loss takes logits rather than probabilities).

`reduction` then gives the mean of ℓ (the default), its sum, or ℓ itself ('none').
cross_entropy and nll_loss, the losses over C classes, are in tinyllm/ops/probability.py;
CrossEntropyLoss and NLLLoss below are their module forms.

These functions are compositions of differentiable ops (subtraction, products, abs, exp, log),
so autograd derives their gradients; tests check them by finite differences.
"""

from __future__ import annotations

import warnings

import numpy as np

from tinyllm import dtypes, ops
from tinyllm.engine import Tensor, policy
from tinyllm.nn.module import Module

_REDUCTIONS = ("mean", "sum", "none")


def _check(op, reduction, size_average=None, reduce=None):
    if size_average is not None or reduce is not None:
        raise TypeError(
            f"{op}: size_average and reduce are PyTorch's deprecated arguments; "
            "use reduction='mean' | 'sum' | 'none'"
        )
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _shape(x):
    return x.shape if isinstance(x, Tensor) else np.shape(x)


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _target(op, input: Tensor, target):
    """The target ready to meet the input: a floating target tensor must have the input's
    dtype (PyTorch's losses disagree on what a mixed pair gives, so tinyllm asks for one
    dtype); integer and bool targets become the input's dtype."""
    if isinstance(target, Tensor) and target.is_floating_point():
        if str(target.dtype) != str(input.dtype):
            raise TypeError(
                f"{op}: input ({input.dtype}) and target ({target.dtype}) must have the same "
                "floating dtype; cast one of them"
            )
        return target
    if isinstance(target, (Tensor, np.ndarray)) and not dtypes.is_float_storage(
        target.data.dtype if isinstance(target, Tensor) else target.dtype
    ):
        values = target.data if isinstance(target, Tensor) else target
        return Tensor(values.astype(np.float32)).to(input.dtype)
    return target


def _difference(op, input: Tensor, target):
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    policy.admit(op, policy.FLOAT, [input.data])
    target = _target(op, input, target)
    try:
        np.broadcast_shapes(input.shape, _shape(target))
    except ValueError:
        raise ValueError(
            f"{op}: input of shape {input.shape} and target of shape {_shape(target)} do not "
            "broadcast"
        ) from None
    if _shape(target) != input.shape:
        # PyTorch broadcasts, with this warning: it is almost always a bug, e.g. (N,) vs (N, 1)
        warnings.warn(
            f"{op}: target size {_shape(target)} is different to the input size "
            f"{input.shape}; they are broadcast, which is likely not what you want",
            stacklevel=3,
        )
    return input - target


def mse_loss(input: Tensor, target, size_average=None, reduce=None, reduction="mean") -> Tensor:
    """Mean squared error: reduction over (x − y)²."""
    _check("mse_loss", reduction, size_average, reduce)
    d = _difference("mse_loss", input, target)
    return _reduce(d * d, reduction)


def l1_loss(input: Tensor, target, size_average=None, reduce=None, reduction="mean") -> Tensor:
    """Mean absolute error: reduction over |x − y|."""
    _check("l1_loss", reduction, size_average, reduce)
    return _reduce(ops.abs(_difference("l1_loss", input, target)), reduction)


def binary_cross_entropy_with_logits(
    input: Tensor,
    target,
    weight=None,
    size_average=None,
    reduce=None,
    reduction="mean",
    pos_weight=None,
) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable expression (see the module docstring).

    `weight` rescales each element (broadcast to the input); `pos_weight` rescales the
    positive term, per class along the last axis (pw > 1 raises recall).
    """
    _check("binary_cross_entropy_with_logits", reduction, size_average, reduce)
    if not isinstance(input, Tensor):
        raise TypeError(
            f"binary_cross_entropy_with_logits: input must be a Tensor, got {type(input).__name__}"
        )
    policy.admit("binary_cross_entropy_with_logits", policy.FLOAT, [input.data])
    target = _target("binary_cross_entropy_with_logits", input, target)
    if _shape(target) != input.shape:
        raise ValueError(
            f"binary_cross_entropy_with_logits: target size {_shape(target)} must be the same "
            f"as input size {input.shape}"
        )
    x = input
    softplus_neg = ops.relu(-x) + ops.log(ops.exp(-ops.abs(x)) + 1.0)  # log(1 + e^(−x))
    if pos_weight is None:
        loss = (1.0 - target) * x + softplus_neg
    else:
        loss = (1.0 - target) * x + (1.0 + (pos_weight - 1.0) * target) * softplus_neg
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


# ---- the module forms ---------------------------------------------------------------------


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        _check(type(self).__name__, reduction, size_average, reduce)
        self.reduction = reduction

    def extra_repr(self):
        return f"reduction={self.reduction!r}" if self.reduction != "mean" else ""


class MSELoss(_Loss):
    def forward(self, input, target):
        return mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    def forward(self, input, target):
        return l1_loss(input, target, reduction=self.reduction)


def _buffer(value):
    return None if value is None else value if isinstance(value, Tensor) else Tensor(value)


class CrossEntropyLoss(_Loss):
    """nn.CrossEntropyLoss: F.cross_entropy with its options stored (`weight` a buffer)."""

    def __init__(
        self,
        weight=None,
        size_average=None,
        ignore_index: int = -100,
        reduce=None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ):
        super().__init__(size_average, reduce, reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(
                f"CrossEntropyLoss: label_smoothing must be between 0.0 and 1.0, "
                f"got {label_smoothing}"
            )
        self.register_buffer("weight", _buffer(weight))
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        return ops.cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class NLLLoss(_Loss):
    """nn.NLLLoss: F.nll_loss on log-probabilities (`weight` a buffer)."""

    def __init__(
        self,
        weight=None,
        size_average=None,
        ignore_index: int = -100,
        reduce=None,
        reduction: str = "mean",
    ):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _buffer(weight))
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return ops.nll_loss(
            input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction
        )


class BCEWithLogitsLoss(_Loss):
    """nn.BCEWithLogitsLoss (`weight` and `pos_weight` are buffers)."""

    def __init__(
        self, weight=None, size_average=None, reduce=None, reduction: str = "mean", pos_weight=None
    ):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _buffer(weight))
        self.register_buffer("pos_weight", _buffer(pos_weight))

    def forward(self, input, target):
        return binary_cross_entropy_with_logits(
            input, target, self.weight, reduction=self.reduction, pos_weight=self.pos_weight
        )
