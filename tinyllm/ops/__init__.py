"""Every differentiable primitive of tinyllm, one family per file.

Each file defines, per op, a `Function` subclass with `forward` and `backward` side by side and
the FLOPs it declares (`flops`, tinyllm/engine/flops.py), followed by the lowercase function
users call. Read them in this order:

    arithmetic.py     + − × ÷ pow, neg, exp, log, sqrt, abs
    selection.py      maximum, minimum, clamp, where
    activation.py     relu, gelu, tanh, sigmoid
    reduce.py         sum, mean, max, min, var
    shape.py          reshape, transpose, permute, expand, concatenate, stack, split,
                      indexing, masked_fill
    linalg.py         matmul, linear
    probability.py    softmax, log_softmax, cross_entropy, nll_loss
    norm.py           layer_norm
    lookup.py         embedding
    regularization.py dropout
    attention.py      scaled_dot_product_attention
    conversion.py     cast between dtypes (fp16/bf16 included), clone
    compare.py        < <= > >= and eq, as boolean tensors (not differentiable)
    creation.py       tensor, zeros, ones, full, arange, rand, randn, randint (leaves)
    methods.py        the Tensor's operators and methods, each naming the op it calls

A new op is its file (or a class in its family's file), its tests, and a line below.
"""

from tinyllm.ops.activation import gelu, relu, sigmoid, tanh
from tinyllm.ops.arithmetic import (
    abs,
    add,
    div,
    exp,
    log,
    mul,
    neg,
    pow,
    sqrt,
    sub,
)
from tinyllm.ops.attention import scaled_dot_product_attention
from tinyllm.ops.compare import eq, ge, gt, le, lt
from tinyllm.ops.conversion import cast, clone
from tinyllm.ops.creation import (
    arange,
    empty,
    full,
    ones,
    ones_like,
    rand,
    randint,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from tinyllm.ops.linalg import linear, matmul
from tinyllm.ops.lookup import embedding
from tinyllm.ops.norm import layer_norm
from tinyllm.ops.probability import cross_entropy, log_softmax, nll_loss, softmax
from tinyllm.ops.reduce import max, mean, min, sum, var
from tinyllm.ops.regularization import dropout
from tinyllm.ops.selection import clamp, maximum, minimum, where
from tinyllm.ops.shape import (
    cat,
    chunk,
    concatenate,
    contiguous,
    expand,
    flatten,
    getitem,
    masked_fill,
    permute,
    reshape,
    split,
    squeeze,
    stack,
    transpose,
    unsqueeze,
)

# isort: split
from tinyllm.ops import methods  # noqa: F401  (attaches the Tensor's operators and methods)

__all__ = [
    "abs",
    "add",
    "clamp",
    "div",
    "exp",
    "log",
    "maximum",
    "minimum",
    "mul",
    "neg",
    "pow",
    "sqrt",
    "sub",
    "where",
    "gelu",
    "relu",
    "sigmoid",
    "tanh",
    "max",
    "mean",
    "min",
    "sum",
    "var",
    "cat",
    "chunk",
    "concatenate",
    "contiguous",
    "expand",
    "flatten",
    "getitem",
    "masked_fill",
    "permute",
    "reshape",
    "split",
    "squeeze",
    "stack",
    "transpose",
    "unsqueeze",
    "linear",
    "matmul",
    "cross_entropy",
    "nll_loss",
    "log_softmax",
    "softmax",
    "layer_norm",
    "embedding",
    "dropout",
    "scaled_dot_product_attention",
    "cast",
    "clone",
    "eq",
    "ge",
    "gt",
    "le",
    "lt",
    "arange",
    "empty",
    "full",
    "ones",
    "ones_like",
    "rand",
    "randint",
    "randn",
    "tensor",
    "zeros",
    "zeros_like",
]
