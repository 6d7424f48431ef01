"""The engine's one extension point: what may watch the graph, or change how ops store numbers.

The autograd core (tinyllm/engine/autograd.py) is the lesson — an op's forward, its backward,
and the walk between them — and it should read as one. Two features nevertheless have to take
part in every op, and both come in through this module only:

* observers: a `GraphObserver` installed with `with observe(obs): ...` sees every op run — the
  FLOP counter (tinyllm/accounting/counter.py), sim's memory ledger and timeline;
* half precision: ops on fp16/bf16 inputs compute in float32 and round their outputs, the
  adjoint of a half tensor is rounded to its format, and a half leaf keeps its `.grad` in it
  (the rules are the pure functions of tinyllm/dtypes.py; here they are applied).

The core tests one flag, `active`, once per op, per backward node and per leaf gradient. While
no observer is installed and no half array was ever made it is False, and the core runs exactly
as written. Otherwise the core hands that step to this module:

    forward(fn, ctx, arrays, from_tensor, kwargs) → out     an op's forward, wrapped
    backward(fn, ctx, grad)                        → grads   a node's backward, wrapped
    adjoint(grad, tensor)                          → grad    a completed adjoint
    accumulate_grad(tensor, grad)                  → bool    stores a leaf's gradient (True)
    saved(ctx, arrays) / released(ctx)                       a node's saved arrays come and go

A Function whose forward handles half storage itself (the cast between formats) sets
`handles_half = True` and is given its arrays untouched.
"""

from __future__ import annotations

import time

import numpy as np

from tinyllm import dtypes

active = False  # anything installed: the one flag the core tests
half = False  # the half-precision rules apply (from the first half array on)
observers: list = []


def _refresh() -> None:
    global active
    active = half or bool(observers)


# ---- observers ------------------------------------------------------------------------------


class GraphObserver:
    """Something that wants to see the graph being built and run.

    Subclasses override any of these; `observe(observer)` installs one for a `with` block.
    - `on_forward(fn, ctx, out, seconds)` after each recorded or unrecorded op's forward;
    - `on_backward(fn, ctx, seconds)` after each node's backward;
    - `on_save(ctx, arrays)` when a node saves arrays for backward;
    - `on_release(ctx)` when a node's saved arrays are freed.
    """

    def on_forward(self, fn, ctx, out, seconds):  # pragma: no cover - default no-op
        pass

    def on_backward(self, fn, ctx, seconds):  # pragma: no cover - default no-op
        pass

    def on_save(self, ctx, arrays):  # pragma: no cover - default no-op
        pass

    def on_release(self, ctx):  # pragma: no cover - default no-op
        pass


class observe:
    """`with observe(obs): ...` — install a GraphObserver for the duration of the block."""

    def __init__(self, observer: GraphObserver):
        self.observer = observer

    def __enter__(self):
        observers.append(self.observer)
        _refresh()
        return self.observer

    def __exit__(self, *exc):
        observers.remove(self.observer)
        _refresh()
        return False


# ---- half precision -------------------------------------------------------------------------


def enable_half(flag: bool = True) -> bool:
    """Apply (or stop applying) the half-precision rules; returns the previous setting.

    Called once by tinyllm/dtypes.py when the first half array is made. Turning the rules off
    again is for tests and benchmarks that compare the float32 path with and without them.
    """
    global half
    previous, half = half, bool(flag)
    _refresh()
    return previous


dtypes.on_first_half(enable_half)


# ---- what the core calls while `active` -----------------------------------------------------


def forward(fn, ctx, arrays, from_tensor, kwargs):
    """Run `fn.forward` with half inputs decoded (and the output rounded), timed for observers."""
    out_dtype = None
    if half and not getattr(fn, "handles_half", False):
        arrays, out_dtype = dtypes.promote_inputs(arrays, from_tensor)
    if observers:
        t0 = time.perf_counter()
        out = fn.forward(ctx, *arrays, **kwargs)
        seconds = time.perf_counter() - t0
    else:
        out = fn.forward(ctx, *arrays, **kwargs)
    if out_dtype is not None:
        out = dtypes.store_output(out, out_dtype)
    if observers:
        for obs in observers:
            obs.on_forward(fn, ctx, out, seconds)
        if getattr(ctx, "function", None) is None and ctx.saved_tensors:
            # Nothing will ever run backward through this node: tell the ledger it is gone.
            for obs in observers:
                obs.on_release(ctx)
            ctx.saved_tensors = ()
    return out


def backward(fn, ctx, grad):
    """Run `fn.backward`, timed for observers."""
    if not observers:
        return fn.backward(ctx, grad)
    t0 = time.perf_counter()
    grads = fn.backward(ctx, grad)
    seconds = time.perf_counter() - t0
    for obs in observers:
        obs.on_backward(fn, ctx, seconds)
    return grads


def adjoint(grad: np.ndarray, tensor) -> np.ndarray:
    """A completed adjoint of `tensor`, rounded to its format if it is half (as float32)."""
    return dtypes.round_like(grad, tensor.data.dtype) if half else grad


def accumulate_grad(tensor, grad: np.ndarray) -> bool:
    """Add `grad` into a half leaf's `.grad`, kept in the leaf's format; False if not half."""
    dt = tensor.data.dtype
    if not (half and dtypes.is_half_storage(dt)):
        return False
    fmt = dtypes.logical_dtype(dt)
    if tensor.grad is None:
        tensor.grad = dtypes.to_storage(np.asarray(grad, np.float32), fmt)
    else:  # half + half: add in float32, round once (what a half-precision add does)
        tensor.grad[...] = dtypes.to_storage(dtypes.to_float32(tensor.grad) + grad, fmt)
    return True


def saved(ctx, arrays) -> None:
    for obs in observers:
        obs.on_save(ctx, arrays)


def released(ctx) -> None:
    if ctx.saved_tensors:
        for obs in observers:
            obs.on_release(ctx)
