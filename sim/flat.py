"""Flat buffers: the data layout that data parallelism and ZeRO communicate.

Collectives move contiguous memory. A model's parameters are dozens of separate arrays, so
data-parallel systems lay a group of them end to end in one flat 1-D buffer and make each
parameter a *view* into it: writing to the view writes the buffer, and one collective on the
buffer serves every parameter at once.

ZeRO then cuts such a buffer into n equal *shards*, one per rank. Ψ is rarely a multiple of n,
so the buffer is padded with zeros up to the next multiple (the padding never changes: its
gradient is zero and Adam leaves a zero parameter with zero gradient at zero):

    Ψ' = n · ⌈Ψ / n⌉,      shard r = buffer[r·Ψ'/n : (r+1)·Ψ'/n]

A shard boundary may fall in the middle of a parameter. `FlatLayout.segments(r)` lists the
pieces of parameters inside shard r, so per-parameter choices (weight decay on matrices only)
still apply element by element.

*Units* are the groups that get their own flat buffer. ZeRO-3 gathers one unit's parameters
just before it runs; PyTorch FSDP calls them wrapping units. `split_units(model)` makes every
child of every `ModuleList` (each transformer block) a unit, plus one "root" unit with all
remaining parameters (embeddings, final LayerNorm, heads).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyllm.nn.module import ModuleList


@dataclass
class Segment:
    """Elements [lo, hi) of shard r hold elements [param_lo, param_lo + hi − lo) of param i."""

    index: int
    lo: int
    hi: int
    param_lo: int


class FlatLayout:
    """Where each of a list of parameters lives in one flat buffer cut into n shards."""

    def __init__(self, names, shapes, n_shards: int):
        if n_shards < 1:
            raise ValueError(f"FlatLayout: n_shards must be ≥ 1, got {n_shards}")
        self.names = list(names)
        self.shapes = [tuple(s) for s in shapes]
        self.sizes = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.numel = int(self.offsets[-1])
        self.n_shards = n_shards
        self.shard_size = -(-self.numel // n_shards) if self.numel else 0
        self.padded = self.shard_size * n_shards

    def shard_range(self, r: int) -> tuple[int, int]:
        return r * self.shard_size, (r + 1) * self.shard_size

    def views(self, buffer: np.ndarray) -> list[np.ndarray]:
        """Parameter-shaped views into `buffer` (length `padded` or at least `numel`)."""
        return [
            buffer[self.offsets[i] : self.offsets[i + 1]].reshape(self.shapes[i])
            for i in range(len(self.names))
        ]

    def pack(self, arrays, out: np.ndarray) -> np.ndarray:
        """Copy arrays (None = zeros) into `out` in layout order; the padding is zeroed."""
        for i, a in enumerate(arrays):
            lo, hi = self.offsets[i], self.offsets[i + 1]
            if a is None:
                out[lo:hi] = 0
            else:
                out[lo:hi] = a.reshape(-1)
        out[self.numel :] = 0
        return out

    def segments(self, r: int) -> list[Segment]:
        """The pieces of parameters that fall inside shard r (padding excluded)."""
        s_lo, s_hi = self.shard_range(r)
        out = []
        for i in range(len(self.names)):
            p_lo, p_hi = int(self.offsets[i]), int(self.offsets[i + 1])
            lo, hi = max(s_lo, p_lo), min(s_hi, p_hi)
            if lo < hi:
                out.append(Segment(i, lo - s_lo, hi - s_lo, lo - p_lo))
        return out

    def describe(self) -> dict:
        return {
            "names": self.names,
            "shapes": [list(s) for s in self.shapes],
            "numel": self.numel,
            "padded": self.padded,
            "n_shards": self.n_shards,
        }


@dataclass
class Unit:
    """A group of parameters with one flat buffer: a transformer block, or the root."""

    name: str
    module: object  # the Module whose forward uses these parameters
    names: list  # parameter names (as in model.named_parameters())
    params: list  # the Parameter objects, same order


def split_units(model) -> list[Unit]:
    """Root unit (every parameter not inside a ModuleList child) first, then one unit per
    ModuleList child, in forward order. Tied parameters appear once (named_parameters dedups)."""

    blocks = []
    for prefix, module in model.named_modules():
        if isinstance(module, ModuleList):
            for i, child in enumerate(module):
                blocks.append((f"{prefix}.{i}" if prefix else str(i), child))
    owner = {}
    for bname, child in blocks:
        for _, p in child.named_parameters(prefix=bname):
            owner.setdefault(id(p), bname)
    root_names, root_params = [], []
    by_block = {bname: ([], []) for bname, _ in blocks}
    for name, p in model.named_parameters():
        b = owner.get(id(p))
        if b is None:
            root_names.append(name)
            root_params.append(p)
        else:
            by_block[b][0].append(name)
            by_block[b][1].append(p)
    units = [Unit("root", model, root_names, root_params)]
    for bname, child in blocks:
        names, params = by_block[bname]
        if params:
            units.append(Unit(bname, child, names, params))
    return units
