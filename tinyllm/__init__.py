"""tinyllm — an LLM framework written by hand in NumPy, to be read like a textbook.

The package mirrors PyTorch's names, so what you learn here transfers. Read it in this order;
each room uses only the rooms listed before it (import-linter checks it: pyproject.toml):

    runtime/        plumbing: the seeded random generator, threads, the allocator, atomic writes
    kernels/        the hot loops as numba kernels, each beside its plain-NumPy reference
    dtypes.py       fp32, fp16 and bf16 storage, rounding and type promotion
    engine/         autograd.py (Function, topological_sort, backpropagate), tensor.py (Tensor),
                    adjoints.py, hooks.py (the one extension point), flops.py
    ops/            every differentiable op, one family per file, forward beside backward;
                    creation ops (zeros, randn, tensor) and the Tensor's operators (methods.py)
    testing.py      gradcheck: every backward against finite differences
    recompute.py    activation checkpointing: drop a block's activations, recompute them
    nn/             Module and Parameter, layers, positional encodings, attention, transformer
                    blocks; nn.functional
    optim/          SGD, Adam, AdamW, learning-rate schedules, gradient clipping
    data/           byte-level BPE (pre-splitting, training, encoding), corpora, batches for
                    causal LM, masked LM and span corruption, the chat format, tasks with
                    exact answers, a synthetic language with known word classes
    generate.py     decoding: greedy, temperature, top-k, top-p, KV cache
    models/         GPT (decoder-only), BERT (encoder-only), T5 (encoder-decoder); word2vec
    checkpoint.py   saving and loading models and optimizers without pickle
    serialization.py  tinyllm.save / tinyllm.load: tensors in dicts and lists, without pickle
    precision/      number formats, int8 quantization, fake quantization (QAT), loss scaling,
                    mixed precision
    accounting/     parameters, FLOPs (formulas and a counter), MFU, ZeRO memory, Chinchilla
    evaluation.py   exact match, pass@k (unbiased), majority vote over sampled answers

Simulated multi-GPU training (DDP, ZeRO, tensor / pipeline / 3D parallelism) is the separate
package `sim`, built on this one; tinyllm never imports it.
"""

import numpy as _np

from tinyllm import nn, optim  # torch-style: tinyllm.nn, tinyllm.optim
from tinyllm.dtypes import bfloat16
from tinyllm.engine import Function, Tensor, enable_grad, is_grad_enabled, no_grad, observe
from tinyllm.engine.device import device
from tinyllm.engine.tensor import Size
from tinyllm.ops import (
    abs,
    add,
    all,
    amax,
    amin,
    any,
    arange,
    argmax,
    argmin,
    argsort,
    bitwise_and,
    bitwise_not,
    bitwise_or,
    bitwise_xor,
    cat,
    chunk,
    clamp,
    clone,
    concatenate,
    cross_entropy,
    div,
    empty,
    empty_like,
    eq,
    equal,
    exp,
    expand,
    flatten,
    floor_divide,
    full,
    full_like,
    gather,
    ge,
    gelu,
    gt,
    index_put,
    le,
    log,
    log_softmax,
    logical_not,
    lt,
    masked_fill,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mul,
    multinomial,
    ne,
    neg,
    ones,
    ones_like,
    permute,
    pow,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    relu,
    remainder,
    reshape,
    sigmoid,
    softmax,
    sort,
    split,
    sqrt,
    squeeze,
    stack,
    std,
    sub,
    sum,
    tanh,
    tensor,
    topk,
    transpose,
    tril,
    triu,
    unsqueeze,
    var,
    where,
    zeros,
    zeros_like,
)
from tinyllm.runtime import allocator as _allocator
from tinyllm.runtime.random import manual_seed
from tinyllm.serialization import load, save

# isort: split
from tinyllm import models  # last: the models stand on everything above (tinyllm.models.GPT)

# dtypes by PyTorch's names (x.dtype == tinyllm.long works: NumPy compares a dtype with a type)
float16 = half = _np.float16
float32 = float = _np.float32  # noqa: A001 - torch.float
float64 = double = _np.float64
int64 = long = _np.int64
int32 = int = _np.int32  # noqa: A001 - torch.int
int16 = short = _np.int16
int8 = _np.int8
uint8 = _np.uint8
bool = _np.bool_  # noqa: A001 - torch.bool

__version__ = "0.1.0"

if _allocator.choice() == "tuned":  # asked for in the environment (tinyllm/runtime/allocator.py)
    _allocator.configure()
