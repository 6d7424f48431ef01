"""What an op costs in FLOPs, declared by the op itself.

A `Function` (tinyllm/engine/autograd.py) may set a class attribute

    flops = FlopRule(family, forward, backward)

    family                          a name that groups ops in tables: "matmul", "attention",
                                    "elementwise", "activation", "reduction", "data movement" …
    forward(ctx, out)               → (gemm, other), from what the op's forward left on ctx
    backward(ctx, out_size)         → (gemm, other); out_size = elements the forward produced

The functions read the context by attribute name (`ctx.flops`, `ctx.dropout_p`, `ctx.in_shape`),
so an op and its cost are written — and changed — in one file. tinyllm/accounting/counter.py
watches the ops that run and adds up these numbers. Two kinds of count, kept apart:

* gemm — matrix-product FLOPs, exact: 2 per multiply-add, for every product the code runs;
* other — everything else, by a convention, not an exact count: one FLOP per element an op
  produces (a reduction: per element it reads), the backward charged what its forward was.
  Pure data movement — reshape, permute, indexing, casts — costs 0.

`per_element(family)` is the convention as a rule; `MOVES_DATA` is the rule of an op that only
moves data. An op that declares nothing is still counted, one FLOP per output element, and
named by the counter as undeclared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


def per_output(ctx, out):
    """One FLOP per element the forward produced."""
    return 0, np.size(out)


def same_as_forward(ctx, out_size):
    """The backward charged what the forward was, by the same convention."""
    return 0, out_size


def free(ctx, *_):
    return 0, 0


@dataclass(frozen=True)
class FlopRule:
    """How to cost one Function: its family and the count of each pass (see the module)."""

    family: str
    forward: Callable = per_output
    backward: Callable = same_as_forward


def per_element(family: str) -> FlopRule:
    """One FLOP per output element, forward and backward alike."""
    return FlopRule(family, per_output, same_as_forward)


MOVES_DATA = FlopRule("data movement", free, free)
UNDECLARED = FlopRule("unregistered", per_output, same_as_forward)


def prod(shape) -> int:
    """Number of elements of `shape` (1 for a scalar), as a Python int."""
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
