"""The basic layers: Linear, Embedding, LayerNorm, Dropout and activations.

    Linear:     y = x Wᵀ + b,  W (out_features, in_features) — PyTorch's layout, so a state
                dict transfers. Initialized as PyTorch does: W, b ~ U(−1/√in, 1/√in).
    Embedding:  y = W[ids], W (num_embeddings, embedding_dim), W ~ N(0, 1).
    LayerNorm:  y = (x − μ)/√(σ² + ε) · γ + β over the last dims, γ = 1, β = 0.
    Dropout:    zero with probability p during training, scale by 1/(1−p); identity in eval.
    Activations as modules: GELU, ReLU, Tanh, Sigmoid, SiLU (x·σ(x)), Softmax, LogSoftmax.

Random initialization draws from tinyllm.runtime.random's default generator (seed it with
`tinyllm.manual_seed`) unless a `generator` is passed.
"""

from __future__ import annotations

import math

import numpy as np

from tinyllm import ops
from tinyllm.dtypes import DEFAULT_DTYPE
from tinyllm.engine import Tensor, policy
from tinyllm.nn.module import Module, Parameter, check_device
from tinyllm.runtime.random import generator_or_default


class Linear(Module):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        dtype=DEFAULT_DTYPE,
        generator=None,
        device=None,
    ):
        super().__init__()
        check_device(device, "Linear")
        dtype = DEFAULT_DTYPE if dtype is None else dtype
        self.in_features, self.out_features = in_features, out_features
        g = generator_or_default(generator)
        bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
        self.weight = Parameter(g.uniform(-bound, bound, (out_features, in_features)).astype(dtype))
        if bias:
            self.bias = Parameter(g.uniform(-bound, bound, out_features).astype(dtype))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        return ops.linear(x, self.weight, self.bias)

    def extra_repr(self):
        bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={bias}"


class Embedding(Module):
    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        dtype=DEFAULT_DTYPE,
        generator=None,
        device=None,
    ):
        super().__init__()
        check_device(device, "Embedding")
        dtype = DEFAULT_DTYPE if dtype is None else dtype
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        g = generator_or_default(generator)
        w = g.standard_normal((num_embeddings, embedding_dim)).astype(dtype)
        if padding_idx is not None:
            w[padding_idx] = 0
        self.weight = Parameter(w)

    def forward(self, ids) -> Tensor:
        return ops.embedding(ids, self.weight, padding_idx=self.padding_idx)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"


class LayerNorm(Module):
    def __init__(
        self,
        normalized_shape,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        dtype=DEFAULT_DTYPE,
        device=None,
    ):
        super().__init__()
        check_device(device, "LayerNorm")
        dtype = DEFAULT_DTYPE if dtype is None else dtype
        shape = (
            (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        )
        self.normalized_shape, self.eps = shape, eps
        if elementwise_affine:
            self.weight = Parameter(np.ones(shape, dtype=dtype))
            if bias:
                self.bias = Parameter(np.zeros(shape, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        return ops.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


class Dropout(Module):
    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = policy.probability("Dropout", p)  # a float in [0, 1]; NaN is refused

    def forward(self, x: Tensor) -> Tensor:
        return ops.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class GELU(Module):
    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return ops.gelu(x, self.approximate)


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return ops.relu(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return ops.tanh(x)


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return ops.sigmoid(x)


class SiLU(Module):
    """x·σ(x) (the "swish" of LLaMA's feed-forward), composed of two ops."""

    def forward(self, x: Tensor) -> Tensor:
        return x * ops.sigmoid(x)


class Softmax(Module):
    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return ops.softmax(x, -1 if self.dim is None else self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x: Tensor) -> Tensor:
        return ops.log_softmax(x, -1 if self.dim is None else self.dim)


class Identity(Module):
    def forward(self, x):
        return x
