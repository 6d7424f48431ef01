"""tinyllm — an LLM framework written by hand in NumPy, to be read like a textbook.

Start with tinyllm/tensor.py (the Tensor and the backward pass), then tinyllm/ops/ (every op's
forward and backward side by side), tinyllm/kernels/ (the same math as fast numba loops),
tinyllm/nn/ (layers), tinyllm/models/ (GPT, BERT, T5), tinyllm/optim/, tinyllm/data/ and
tinyllm/generate.py. The package mirrors PyTorch's names so what you learn here transfers.
"""
from tinyllm import allocator as _allocator

_allocator.configure()   # keep freed arrays' pages for the next step (tinyllm/allocator.py)

from tinyllm.tensor import (Function, Tensor, enable_grad, is_grad_enabled, no_grad, observe,
                            tensor)
from tinyllm.random import manual_seed
from tinyllm.ops import (abs, cat, chunk, clamp, concatenate, cross_entropy, exp, gelu, log,
                         log_softmax, matmul, maximum, mean, minimum, relu, sigmoid, softmax, split,
                         sqrt, stack, sum, tanh, where)
from tinyllm.factory import (arange, empty, full, ones, ones_like, rand, randint, randn, zeros,
                             zeros_like)

float16 = __import__("numpy").float16
float32 = __import__("numpy").float32
float64 = __import__("numpy").float64

__version__ = "0.1.0"

from tinyllm import nn, optim  # noqa: E402  (torch-style: tinyllm.nn, tinyllm.optim)
from tinyllm.precision.half import bfloat16  # noqa: E402  (bf16 is emulated: see that module)
