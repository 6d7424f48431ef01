"""Every differentiable primitive of tinyllm, one family per file.

Each file defines, per op, a `Function` subclass with `forward` and `backward` side by side and
the FLOPs it declares (`flops`, tinyllm/engine/flops.py), followed by the lowercase function
users call. Read them in this order:

    dims.py           PyTorch's dim=/keepdim= and NumPy's axis=/keepdims= (one decorator)
    arithmetic.py     + − × ÷ pow, // and %, neg, exp, log, sqrt, abs
    selection.py      maximum, minimum, clamp, where, tril, triu
    activation.py     relu, gelu, tanh, sigmoid
    reduce.py         sum, mean, amax, amin, var, std
    sorting.py        argmax, argmin, max/min (values, indices), sort, argsort, topk, gather
    shape.py          reshape, transpose, permute, expand, concatenate, stack, split,
                      indexing, masked_fill
    linalg.py         matmul, linear
    probability.py    softmax, log_softmax, cross_entropy, nll_loss
    norm.py           layer_norm
    lookup.py         embedding
    regularization.py dropout
    attention.py      scaled_dot_product_attention
    conversion.py     cast between dtypes (fp16/bf16 included), .to(device, dtype), clone
    compare.py        == != < <= > >=, & | ^ ~, any, all: boolean tensors (not differentiable)
    creation.py       tensor, zeros, ones, full, arange, rand, randn, randint (leaves)
    sampling.py       multinomial
    inplace.py        add_, mul_, zero_, copy_, masked_fill_, normal_, …, x[index] = v
    methods.py        the Tensor's operators and methods, each naming the op it calls

A new op is its file (or a class in its family's file), its tests, and a line below.
"""

from tinyllm.ops.activation import gelu, relu, sigmoid, tanh
from tinyllm.ops.arithmetic import (
    abs,
    add,
    div,
    exp,
    floor_divide,
    log,
    mul,
    neg,
    pow,
    remainder,
    sqrt,
    sub,
)
from tinyllm.ops.attention import scaled_dot_product_attention
from tinyllm.ops.compare import (
    all,
    any,
    bitwise_and,
    bitwise_not,
    bitwise_or,
    bitwise_xor,
    eq,
    equal,
    ge,
    gt,
    le,
    logical_not,
    lt,
    ne,
)
from tinyllm.ops.conversion import cast, clone, to
from tinyllm.ops.creation import (
    arange,
    empty,
    empty_like,
    full,
    full_like,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    tensor,
    zeros,
    zeros_like,
)
from tinyllm.ops.inplace import (
    add_,
    clamp_,
    copy_,
    div_,
    fill_,
    index_put,
    masked_fill_,
    mul_,
    normal_,
    sub_,
    uniform_,
    zero_,
)
from tinyllm.ops.linalg import linear, matmul
from tinyllm.ops.lookup import embedding
from tinyllm.ops.norm import layer_norm
from tinyllm.ops.probability import cross_entropy, log_softmax, nll_loss, softmax
from tinyllm.ops.reduce import amax, amin, mean, std, sum, var
from tinyllm.ops.regularization import dropout
from tinyllm.ops.sampling import multinomial
from tinyllm.ops.selection import clamp, maximum, minimum, tril, triu, where
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
from tinyllm.ops.sorting import (
    ValuesIndices,
    argmax,
    argmin,
    argsort,
    gather,
    max,
    min,
    sort,
    topk,
)

# isort: split
from tinyllm.ops import methods  # noqa: F401  (attaches the Tensor's operators and methods)

__all__ = [
    "abs",
    "add",
    "clamp",
    "div",
    "floor_divide",
    "remainder",
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
    "tril",
    "triu",
    "gelu",
    "relu",
    "sigmoid",
    "tanh",
    "amax",
    "amin",
    "mean",
    "sum",
    "var",
    "std",
    "ValuesIndices",
    "argmax",
    "argmin",
    "argsort",
    "gather",
    "max",
    "min",
    "sort",
    "topk",
    "multinomial",
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
    "to",
    "all",
    "any",
    "bitwise_and",
    "bitwise_not",
    "bitwise_or",
    "bitwise_xor",
    "eq",
    "equal",
    "ge",
    "gt",
    "le",
    "logical_not",
    "lt",
    "ne",
    "arange",
    "empty",
    "empty_like",
    "full",
    "full_like",
    "ones",
    "ones_like",
    "rand",
    "rand_like",
    "randint",
    "randn",
    "randn_like",
    "tensor",
    "zeros",
    "zeros_like",
    "add_",
    "clamp_",
    "copy_",
    "div_",
    "fill_",
    "index_put",
    "masked_fill_",
    "mul_",
    "normal_",
    "sub_",
    "uniform_",
    "zero_",
]
