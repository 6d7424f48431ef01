"""The engine: a tensor that records what was done to it, and the backward pass over that record.

Read it in this order:

    autograd.py   grad mode (`no_grad`), `Context`, `Function` (forward and backward side by
                  side), `topological_sort` and `backpropagate` — the whole of reverse mode
    tensor.py     the `Tensor` class: data, gradient, `backward()`
    adjoints.py   summing the contributions to one gradient: `add_adjoint`, `ScatterGrad`
                  (the sparse gradient of indexing), `unbroadcast`
    hooks.py      the one extension point: graph observers and the half-precision rules
    flops.py      how an op declares its FLOPs (`FlopRule`), for the FLOP counter

Every op of tinyllm/ops is a `Function` subclass; the operators and methods of a Tensor
(`+`, `@`, `.sum()`) are attached to it by tinyllm/ops/methods.py.
"""

from tinyllm.engine.adjoints import ScatterGrad, unbroadcast
from tinyllm.engine.autograd import (
    Context,
    Function,
    backpropagate,
    enable_grad,
    is_grad_enabled,
    no_grad,
    topological_sort,
)
from tinyllm.engine.hooks import GraphObserver, observe
from tinyllm.engine.tensor import Tensor

__all__ = [
    "Context",
    "Function",
    "backpropagate",
    "enable_grad",
    "is_grad_enabled",
    "no_grad",
    "topological_sort",
    "ScatterGrad",
    "unbroadcast",
    "GraphObserver",
    "observe",
    "Tensor",
]
