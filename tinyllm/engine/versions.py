"""Version counters: how backward notices that an in-place op overwrote what it needed.

An op's backward often reads arrays its forward saved — Mul saves both factors, Exp its own
output. If an in-place op (`x.mul_(2)`, `x[mask] = 0`, `w.add_(…)` in an optimizer) later
overwrites such an array, backward would compute with the new values: a wrong gradient and no
error. PyTorch's answer, followed here, is a counter per storage:

    every in-place op on a tensor does                 version += 1
    when an op saves an array of tensor t, it records  (t's counter, t's version now)
    before that op's backward runs, it checks          version now == version recorded

and raises RuntimeError when they differ. A view (reshape, transpose, basic indexing, detach)
shares its base's memory, so it shares its base's counter: writing through the view is writing
to the base. Which tensors a saved array belongs to is found by memory overlap
(`np.may_share_memory`), once, when the op is recorded.

Two simplifications, stated plainly. Half-precision ops save float32 *copies* of their inputs
(tinyllm/dtypes.py), so overwriting a half tensor never invalidates a saved array and needs no
check. And a differentiable in-place op on a tensor that a recorded op has already consumed is
refused (tinyllm/ops/inplace.py): tinyllm's graph links ops through tensor objects, so it could
not send that consumer's gradient to the value before the overwrite, as PyTorch does.
"""

from __future__ import annotations

import numpy as np


class VersionCounter:
    """How many times a storage was modified in place; shared by a tensor and its views."""

    __slots__ = ("value",)

    def __init__(self):
        self.value = 0


def record(ctx, inputs, out) -> None:
    """Remember the version of every tensor whose memory the op's saved arrays overlap, and
    mark the input tensors as consumed by a recorded op. Called by Function.apply when it
    records; `inputs` are the op's tensor arguments, `out` its result."""
    for t in inputs:
        t._used = True
    saved = [s for s in ctx.saved_tensors if isinstance(s, np.ndarray)]
    if not saved:
        return
    entries = []
    for t in (*inputs, out):
        if any(np.may_share_memory(s, t.data) for s in saved):
            entries.append((t._vc, t._vc.value, t.shape, t.data.dtype))
    if entries:
        ctx.saved_versions = entries


def check(ctx, fn) -> None:
    """Raise PyTorch's RuntimeError if a tensor saved by this node was modified in place."""
    for counter, version, shape, dtype in ctx.saved_versions:
        if counter.value != version:
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: a {dtype} tensor of shape {tuple(shape)} saved by "
                f"{fn.__name__} is at version {counter.value}; expected version {version} "
                "instead. Use the out-of-place op (x = x.add(1), not x.add_(1)) or clone() "
                "the tensor before modifying it."
            )


def share_if_view(x, out) -> None:
    """`out` shares `x`'s memory (a reshape, a basic slice, a transpose): one counter, and
    `out._base` names the tensor that owns the memory, as in PyTorch."""
    if np.may_share_memory(out.data, x.data):
        out._vc = x._vc
        out._base = x if x._base is None else x._base
