"""Every differentiable primitive of tinyllm, grouped by family.

Each module defines, per op, a `Function` subclass with `forward` and `backward` side by side,
followed by the lowercase function users call. Read them in this order:

    elementwise.py   + − × ÷ pow, exp, log, sqrt, tanh, sigmoid, relu, gelu, abs, maximum, where
    reduce.py        sum, mean, max, min, var
    shape.py         reshape, transpose, permute, expand, concatenate, stack, split, indexing,
                     masked_fill
    linalg.py        matmul, linear
    softmax.py       softmax, log_softmax, cross_entropy
    norm.py          layer_norm
    embedding.py     embedding, dropout
    attention.py     scaled_dot_product_attention
"""
from tinyllm.ops.elementwise import (abs, add, cast, clamp, clone, div, exp, gelu, log, maximum,
                                     minimum, mul, neg, pow, relu, sigmoid, sqrt, sub, tanh, where)
from tinyllm.ops.reduce import max, mean, min, sum, var
from tinyllm.ops.shape import (cat, chunk, concatenate, contiguous, expand, flatten, getitem,
                               masked_fill, permute, reshape, split, squeeze, stack, transpose,
                               unsqueeze)
from tinyllm.ops.linalg import linear, matmul
from tinyllm.ops.softmax import cross_entropy, log_softmax, softmax
from tinyllm.ops.norm import layer_norm
from tinyllm.ops.embedding import dropout, embedding
from tinyllm.ops.attention import scaled_dot_product_attention

__all__ = [
    "abs", "add", "cast", "clamp", "clone", "div", "exp", "gelu", "log", "maximum", "minimum",
    "mul", "neg", "pow", "relu", "sigmoid", "sqrt", "sub", "tanh", "where",
    "max", "mean", "min", "sum", "var",
    "cat", "chunk", "concatenate", "contiguous", "expand", "flatten", "getitem", "masked_fill",
    "permute", "reshape", "split", "squeeze", "stack", "transpose", "unsqueeze",
    "linear", "matmul", "cross_entropy", "log_softmax", "softmax", "layer_norm", "dropout",
    "embedding", "scaled_dot_product_attention",
]
