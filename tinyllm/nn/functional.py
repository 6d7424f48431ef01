"""tinyllm.nn.functional — the functional ops under PyTorch's names (torch.nn.functional).

Nothing is implemented here; each name points at the op in tinyllm/ops where its forward and
backward are written out, or at the loss in tinyllm/nn/loss.py that composes such ops.
"""

from tinyllm.nn.loss import binary_cross_entropy_with_logits, l1_loss, mse_loss
from tinyllm.ops import (
    cross_entropy,
    dropout,
    embedding,
    gelu,
    layer_norm,
    linear,
    log_softmax,
    nll_loss,
    relu,
    scaled_dot_product_attention,
    sigmoid,
    softmax,
    tanh,
)

__all__ = [
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "dropout",
    "embedding",
    "gelu",
    "l1_loss",
    "layer_norm",
    "linear",
    "log_softmax",
    "mse_loss",
    "nll_loss",
    "relu",
    "scaled_dot_product_attention",
    "sigmoid",
    "softmax",
    "tanh",
]
