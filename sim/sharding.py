"""Shard groups: which ranks split a flat buffer between them — and hybrid sharding.

ZeRO cuts each flat buffer (sim/flat.py) into F equal shards, one per rank of a *shard group*,
and moves them with two collectives of that group (Ψ elements in the buffer):

    reduce-scatter   rank r receives shard r of the average over the group   Ψ(F−1)/F sent
    all-gather       every rank receives all F shards                        Ψ(F−1)/F sent

By default the shard group is the whole world, F = N. *Hybrid sharding* (the sharding factor
of PyTorch FSDP, Zhao et al. 2023) takes F < N: the N ranks form R = N/F shard groups of F
consecutive ranks (one node, on its fast links) that shard the model states among themselves,
and the R groups replicate each other. Rank r has

    shard index  r mod F      its position in its shard group: which shard it owns
    replica      r div F      which of the R copies of the sharded state it belongs to

A gradient is still averaged over all N ranks: reduce-scatter inside the shard group, then
all-reduce the shard across the *replica group* — the R ranks with the same shard index.
Elements sent per rank and step, with `reductions` reduce-scatters and `gathers` all-gathers:

    reductions · (Ψ(F−1)/F + 2(Ψ/F)(R−1)/R) + gathers · Ψ(F−1)/F

Every stage's memory formula holds with N → F. F = N is plain ZeRO (R = 1: no all-reduce);
F = 1 keeps the whole state on every rank — DDP's memory, with DDP's all-reduce of Ψ.
"""

from __future__ import annotations

import numpy as np


class ShardGroup:
    """This rank's shard group and replica group, and the collectives ZeRO runs over them.

    `place(record, label, wait=False)` puts a finished collective on the strategy's simulated
    timeline (`Strategy._comm`); this object only moves and counts the data.
    """

    def __init__(self, world, factor: int | None = None, place=None):
        f = world.size if factor is None else int(factor)
        if f < 1 or world.size % f:
            raise ValueError(f"sharding_factor {f} must divide the world size {world.size}")
        self.factor = f
        self.replicas = world.size // f
        # Every rank is in exactly one group of each kind (both splits are collective).
        self.shard_comm = world.split(world.rank // f, world.rank)
        self.replica_comm = world.split(world.rank % f, world.rank)
        self.index = self.shard_comm.rank  # the shard this rank owns
        self.place = place

    @property
    def first_replica(self) -> bool:
        """True on the ranks of replica 0: between them they hold every shard exactly once."""
        return self.replica_comm.rank == 0

    def reduce_scatter_avg(self, send: np.ndarray, recv: np.ndarray, label: str) -> None:
        """recv ← this rank's shard of the average, over all N ranks, of the flat `send`."""
        if self.shard_comm.size > 1:
            self.place(self.shard_comm.reduce_scatter(send, recv, "avg"), f"reduce-scatter {label}")
        else:
            recv[...] = send
        if self.replica_comm.size > 1:
            self.place(self.replica_comm.all_reduce(recv, "avg"), f"all-reduce {label} (replicas)")

    def all_gather(self, shard: np.ndarray, full: np.ndarray, label: str, wait: bool) -> None:
        """full ← every rank's shard in rank order. `shard` must not be a view into `full`."""
        if self.shard_comm.size == 1:
            full[...] = shard
            return
        self.place(self.shard_comm.all_gather(shard, full), f"all-gather {label}", wait=wait)

    def elements_sent(self, psi: int, reductions: float, gathers: float) -> float:
        """The module docstring's volume: elements one rank sends for Ψ-element buffers."""
        f, r = self.factor, self.replicas
        rs = psi * (f - 1) / f  # one reduce-scatter in the shard group
        ag = psi * (f - 1) / f  # one all-gather in the shard group
        ar = 2 * (psi / f) * (r - 1) / r  # all-reduce of a shard across the replicas
        return reductions * (rs + ar) + gathers * ag
