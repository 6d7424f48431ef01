"""The communicator: how one simulated GPU (one MPI rank) talks to the others.

A `Communicator` is a group of n ranks, numbered 0 … n−1, over an MPI communicator. It offers

* point-to-point messages of NumPy arrays: `send`, `recv`, `sendrecv` (MPI's buffer interface —
  the bytes of the array go on the wire as they are; nothing is pickled);
* the collectives of sim/collectives.py — `broadcast`, `reduce`, `reduce_scatter`,
  `all_gather`, `all_reduce` — run either by the explicit point-to-point algorithms
  (backend "explicit", the default) or by MPI's built-in ones (backend "mpi");
* `split(color, key)`: sub-groups, e.g. the sharding groups and replica groups of hybrid
  sharding (ranks with the same color form a new communicator, ordered by key);
* `barrier`, `print0` (print on rank 0 only), and `gather_json` / `bcast_json` for reports.

Counting (sim/traffic.py): every collective returns a `CommRecord` of what this rank sent and
received, and `comm.stats` accumulates them until `stats.reset()`; with the "mpi" backend the
traffic is counted as the explicit algorithm would send it, so both report the textbook volumes.

Safety. In checked mode (the default; `SIM_CHECKED=0` turns it off) every collective first
makes sure all ranks entered the same call (sim/agreement.py). And no call blocks without a
deadline (sim/deadline.py): every message, collective and barrier is started non-blocking and
waited for at most `timeout` seconds (`SIM_TIMEOUT`, default 30); past it the ranks name the
one that failed or stalled, in one line, and abort the job.

Verbose mode (`SIM_VERBOSE=1` or `verbose=True`) prints every message to stderr:

    [sim 1 | 1/4] all_reduce#3 step 2/3: send 1024 B → 2, recv 1024 B ← 0
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from mpi4py import MPI

from sim import collectives as algo
from sim import deadline
from sim.agreement import (
    CollectiveMismatchError,
    chunk_problem,
    everyone_agrees,
    flat_buffer,
    mismatch_table,
    root_problem,
    signature,
)
from sim.deadline import CollectiveTimeoutError, Wait  # noqa: F401  (re-exported)
from sim.traffic import CommRecord, CommStats, Traffic  # noqa: F401  (re-exported)

BACKENDS = ("explicit", "mpi")


def _env_flag(name: str, default: bool) -> bool:
    return os.environ.get(name, "1" if default else "0").lower() not in ("0", "", "false", "no")


# ---- the communicator -------------------------------------------------------------------------


class Communicator:
    """A group of ranks over an mpi4py communicator (default: all ranks, MPI.COMM_WORLD)."""

    def __init__(
        self,
        mpi_comm=None,
        *,
        backend: str | None = None,
        checked: bool | None = None,
        verbose: bool | None = None,
        timeout: float | None = None,
        parent_stats: CommStats | None = None,
    ):
        self.mpi = MPI.COMM_WORLD if mpi_comm is None else mpi_comm
        if self.mpi == MPI.COMM_WORLD:
            deadline.open_channel()  # collective, like the Dup below
        # Collectives run on a duplicate, so their messages never match a user's send/recv.
        self._coll = self.mpi.Dup()
        self.rank = self.mpi.Get_rank()
        self.size = self.mpi.Get_size()
        self.world_rank = MPI.COMM_WORLD.Get_rank()
        self.world_ranks = tuple(
            int(r)
            for r in self.mpi.Get_group().Translate_ranks(
                list(range(self.size)), MPI.COMM_WORLD.Get_group()
            )
        )
        self.backend = backend or os.environ.get("SIM_BACKEND", "explicit")
        self.checked = _env_flag("SIM_CHECKED", True) if checked is None else checked
        self.verbose = _env_flag("SIM_VERBOSE", False) if verbose is None else verbose
        self.timeout = deadline.timeout_from_env() if timeout is None else float(timeout)
        self.stats = CommStats(parent_stats)
        self._seq = 0
        self._record: CommRecord | None = None

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, name: str) -> None:
        if name not in BACKENDS:
            raise ValueError(f"unknown collective backend {name!r}; expected one of {BACKENDS}")
        self._backend = name

    def __repr__(self):
        return (
            f"Communicator(rank={self.rank}, size={self.size}, world_ranks={self.world_ranks},"
            f" backend={self.backend!r}, checked={self.checked})"
        )

    # ---- groups, printing, barrier ------------------------------------------------------------
    def split(self, color: int | None, key: int | None = None) -> "Communicator | None":
        """Ranks passing the same `color` form a new communicator, ranked by `key` (then rank).

        Every rank of this communicator must call it. `color=None` opts out (returns None).
        Example (hybrid sharding, F ranks per shard group): shard = comm.split(rank // F),
        replicas = comm.split(rank % F).
        """
        sub = self.mpi.Split(
            MPI.UNDEFINED if color is None else color, self.rank if key is None else key
        )
        if sub == MPI.COMM_NULL:
            return None
        return Communicator(
            sub,
            backend=self.backend,
            checked=self.checked,
            verbose=self.verbose,
            timeout=self.timeout,
            parent_stats=self.stats,
        )

    def print0(self, *args, **kwargs) -> None:
        """print() on rank 0 only (flushed, so lines from ranks do not interleave mid-line)."""
        if self.rank == 0:
            print(*args, **kwargs, flush=True)

    def barrier(self) -> None:
        self._wait_all([self._coll.Ibarrier()], "barrier")

    def _wait_all(self, requests, op, peer: int | None = None, statuses=None) -> None:
        """Complete non-blocking MPI requests within `self.timeout` (sim/deadline.py).

        `op` names the operation in the message of a timeout (a string, or a function returning
        one, so that the common path builds no text); `peer` is the rank of this communicator
        the requests wait for (None for a collective request).
        """

        def describe():
            who = None if peer is None else self.world_ranks[peer]
            return Wait(op() if callable(op) else op, who, self.world_ranks)

        deadline.wait(requests, self.timeout, describe, statuses)

    # ---- point-to-point ---------------------------------------------------------------------
    def send(self, array: np.ndarray, dest: int, tag: int = 0) -> CommRecord:
        """Send a contiguous array to `dest` (blocking; pair it with a `recv` there)."""
        array = flat_buffer(array, "send")
        rec = self._begin("send", array.size, array.dtype)
        self._send(array, dest, f"tag {tag}", tag, self.mpi)
        return self._end(rec)

    def recv(self, out: np.ndarray, source: int, tag: int = 0) -> CommRecord:
        """Receive into the preallocated `out`; the message must have exactly out.nbytes bytes."""
        out = flat_buffer(out, "recv", writeable=True)
        rec = self._begin("recv", out.size, out.dtype)
        self._recv(out, source, f"tag {tag}", tag, self.mpi)
        return self._end(rec)

    def sendrecv(
        self, array: np.ndarray, dest: int, out: np.ndarray, source: int, tag: int = 0
    ) -> CommRecord:
        """Send `array` to `dest` while receiving `out` from `source` (no deadlock in a ring)."""
        array = flat_buffer(array, "sendrecv")
        out = flat_buffer(out, "sendrecv", writeable=True)
        rec = self._begin("sendrecv", array.size, array.dtype)
        self._sendrecv(array, dest, out, source, f"tag {tag}", tag, self.mpi)
        return self._end(rec)

    # The three primitives every explicit collective is made of. They count and trace.
    # Each starts non-blocking requests and waits for them with the deadline (`_wait_all`).
    def _send(self, array, dest, note="", tag=0, mpi_comm=None):
        if self.verbose:
            self._trace(f"{note}: send {array.nbytes} B → {dest}")
        request = (mpi_comm or self._coll).Isend(array, dest=dest, tag=tag)
        self._wait_all([request], lambda: self._what(f"send to rank {dest}", note), dest)
        self._record.bytes_sent += array.nbytes
        self._record.messages_sent += 1

    def _recv(self, out, source, note="", tag=0, mpi_comm=None):
        status = MPI.Status()
        request = (mpi_comm or self._coll).Irecv(out, source=source, tag=tag)
        what = lambda: self._what(f"recv from rank {source}", note)  # noqa: E731
        self._wait_all([request], what, source, [status])
        got = status.Get_count(MPI.BYTE)
        if got != out.nbytes:
            raise ValueError(
                f"rank {self.rank}: recv from rank {source} expected {out.nbytes} "
                f"bytes ({out.size} × {out.dtype}) but the message had {got} bytes"
            )
        if self.verbose:
            self._trace(f"{note}: recv {out.nbytes} B ← {source}")
        self._record.bytes_recv += out.nbytes
        self._record.messages_recv += 1

    def _sendrecv(self, array, dest, out, source, note="", tag=0, mpi_comm=None):
        if self.verbose:
            self._trace(f"{note}: send {array.nbytes} B → {dest}, recv {out.nbytes} B ← {source}")
        mpi_comm = mpi_comm or self._coll
        requests = [
            mpi_comm.Irecv(out, source=source, tag=tag),
            mpi_comm.Isend(array, dest=dest, tag=tag),
        ]
        # Waiting for the receive first: that is the peer whose silence matters (a send to a
        # stalled rank completes as soon as MPI has buffered it, which small messages are).
        self._wait_all(requests[:1], lambda: self._what(f"recv from rank {source}", note), source)
        self._wait_all(requests[1:], lambda: self._what(f"send to rank {dest}", note), dest)
        rec = self._record
        rec.bytes_sent += array.nbytes
        rec.bytes_recv += out.nbytes
        rec.messages_sent += 1
        rec.messages_recv += 1

    def _what(self, message: str, note: str) -> str:
        """How a timeout names the operation: "all_reduce#5 (step 2/3: recv from rank 1)",
        or for a user's message "recv from rank 1 (tag 0)" (ranks of this communicator)."""
        rec = self._record
        if rec.op in ("send", "recv", "sendrecv"):
            return f"{message} ({note})"
        detail = f"{note}: {message}" if note else message
        return f"{rec.op}#{rec.seq} ({detail})"

    def _trace(self, text: str) -> None:
        rec = self._record
        print(
            f"[sim {self.world_rank} | {self.rank}/{self.size}] {rec.op}#{rec.seq} {text}",
            file=sys.stderr,
            flush=True,
        )

    # ---- collectives ------------------------------------------------------------------------
    def all_reduce(self, buf: np.ndarray, op: str = "sum") -> CommRecord:
        """In place: every rank's `buf` becomes the sum (or average, op="avg") over ranks."""
        buf = flat_buffer(buf, "all_reduce", writeable=True, reduce_op=op)
        self._agree("all_reduce", buf.size, buf.dtype, reduce_op=op)
        rec = self._begin("all_reduce", buf.size, buf.dtype)
        if self.backend == "explicit":
            algo.ring_all_reduce(self, buf, op)
        else:
            algo.mpi_all_reduce(self, buf, op)
            self._count_as(
                rec, algo.ring_volume("all_reduce", buf.size, buf.itemsize, self.rank, self.size)
            )
        return self._end(rec)

    def reduce_scatter(self, send: np.ndarray, recv: np.ndarray, op: str = "sum") -> CommRecord:
        """`recv` ← this rank's chunk of the sum (or average) over ranks of the flat `send`.

        Chunk sizes follow `collectives.chunk_sizes(send.size, n)`; when send.size is a
        multiple of n (ZeRO's padded flat buffers) every recv has send.size / n elements.
        """
        send = flat_buffer(send, "reduce_scatter", reduce_op=op)
        recv = flat_buffer(recv, "reduce_scatter", writeable=True, reduce_op=op)
        self._agree(
            "reduce_scatter",
            send.size,
            send.dtype,
            reduce_op=op,
            problem=chunk_problem("recv", recv, send, self.rank, self.size),
        )
        rec = self._begin("reduce_scatter", send.size, send.dtype)
        if self.backend == "explicit":
            algo.explicit_reduce_scatter(self, send, recv, op)
        else:
            algo.mpi_reduce_scatter(self, send, recv, op)
            self._count_as(
                rec,
                algo.ring_volume("reduce_scatter", send.size, send.itemsize, self.rank, self.size),
            )
        return self._end(rec)

    def all_gather(self, send: np.ndarray, recv: np.ndarray) -> CommRecord:
        """Every rank's flat `recv` ← the concatenation of all ranks' `send` chunks, in rank order.

        Rank r's `send` must have `collectives.chunk_sizes(recv.size, n)[r]` elements.
        """
        send = flat_buffer(send, "all_gather")
        recv = flat_buffer(recv, "all_gather", writeable=True)
        self._agree(
            "all_gather",
            recv.size,
            recv.dtype,
            problem=chunk_problem("send", send, recv, self.rank, self.size),
        )
        rec = self._begin("all_gather", recv.size, recv.dtype)
        if self.backend == "explicit":
            algo.explicit_all_gather(self, send, recv)
        else:
            algo.mpi_all_gather(self, send, recv)
            self._count_as(
                rec, algo.ring_volume("all_gather", recv.size, recv.itemsize, self.rank, self.size)
            )
        return self._end(rec)

    def broadcast(self, buf: np.ndarray, root: int = 0) -> CommRecord:
        """In place: every rank's `buf` becomes root's (binomial tree, ⌈log₂ n⌉ rounds)."""
        buf = flat_buffer(buf, "broadcast", writeable=True)
        self._agree(
            "broadcast", buf.size, buf.dtype, root=root, problem=root_problem(root, self.size)
        )
        rec = self._begin("broadcast", buf.size, buf.dtype)
        if self.backend == "explicit":
            algo.tree_broadcast(self, buf, root)
        else:
            algo.mpi_broadcast(self, buf, root)
            self._count_as(
                rec, algo.tree_volume("broadcast", buf.nbytes, self.rank, root, self.size)
            )
        return self._end(rec)

    def reduce(self, buf: np.ndarray, root: int = 0, op: str = "sum") -> CommRecord:
        """In place on `root` only: its `buf` becomes the sum (or average) over the ranks."""
        buf = flat_buffer(buf, "reduce", writeable=True, reduce_op=op)
        self._agree(
            "reduce",
            buf.size,
            buf.dtype,
            root=root,
            reduce_op=op,
            problem=root_problem(root, self.size),
        )
        rec = self._begin("reduce", buf.size, buf.dtype)
        if self.backend == "explicit":
            algo.tree_reduce(self, buf, root, op)
        else:
            algo.mpi_reduce(self, buf, root, op)
            self._count_as(rec, algo.tree_volume("reduce", buf.nbytes, self.rank, root, self.size))
        return self._end(rec)

    # ---- JSON exchange for reports (host-side bookkeeping, not simulated GPU traffic) ---------
    def gather_json(self, obj, root: int = 0) -> list | None:
        """Gather one JSON-serializable object per rank to `root` (a list there, None elsewhere)."""
        data = np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)
        sizes = np.empty(self.size, np.int64) if self.rank == root else None
        mine = np.array([data.size], np.int64)
        self._wait_all([self._coll.Igather(mine, sizes, root=root)], "gather_json (sizes)")
        if self.rank != root:
            self._wait_all([self._coll.Igatherv(data, None, root=root)], "gather_json")
            return None
        out = np.empty(int(sizes.sum()), np.uint8)
        request = self._coll.Igatherv(data, [out, sizes.tolist()], root=root)
        self._wait_all([request], "gather_json")
        return _split_json(out, sizes)

    def bcast_json(self, obj, root: int = 0):
        """Root's JSON-serializable object, on every rank."""
        data = json.dumps(obj).encode() if self.rank == root else b""
        size = np.array([len(data)], np.int64)
        self._wait_all([self._coll.Ibcast(size, root=root)], "bcast_json (size)")
        buf = (
            np.frombuffer(data, np.uint8).copy()
            if self.rank == root
            else np.empty(size[0], np.uint8)
        )
        self._wait_all([self._coll.Ibcast(buf, root=root)], "bcast_json")
        return json.loads(buf.tobytes())

    # ---- bookkeeping shared by the collectives ----------------------------------------------
    def _agree(
        self,
        op: str,
        count: int,
        dtype,
        root: int = -1,
        reduce_op: str = "",
        problem: str | None = None,
    ) -> None:
        """Checked mode: raise on every rank unless every rank entered this same collective."""
        self._seq += 1
        if not self.checked:
            if problem:
                raise ValueError(f"{op}: {problem}")
            return
        sig = signature(self._seq, op, count, dtype, root, reduce_op, problem is None)
        both = np.concatenate([sig, -sig])  # one MAX-reduction gives max and −min
        request = self._coll.Iallreduce(MPI.IN_PLACE, both, op=MPI.MAX)
        self._wait_all([request], f"{op}#{self._seq} (checking that every rank entered it)")
        if everyone_agrees(both):
            return
        everyone = self.allgather_json({"sig": sig.tolist(), "problem": problem})
        raise CollectiveMismatchError(mismatch_table(everyone, self.world_ranks))

    def allgather_json(self, obj) -> list:
        """One JSON-serializable object per rank, on every rank (host-side, not counted)."""
        data = np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)
        sizes = np.empty(self.size, np.int64)
        mine = np.array([data.size], np.int64)
        self._wait_all([self._coll.Iallgather(mine, sizes)], "allgather_json (sizes)")
        out = np.empty(int(sizes.sum()), np.uint8)
        request = self._coll.Iallgatherv(data, [out, sizes.tolist()])
        self._wait_all([request], "allgather_json")
        return _split_json(out, sizes)

    def _begin(self, op: str, count: int, dtype) -> CommRecord:
        self._record = CommRecord(
            op=op,
            count=int(count),
            itemsize=np.dtype(dtype).itemsize,
            backend=self.backend,
            group=self.world_ranks,
            seq=self._seq,
        )
        self._record.seconds = time.perf_counter()
        return self._record

    def _end(self, rec: CommRecord) -> CommRecord:
        rec.seconds = time.perf_counter() - rec.seconds
        self._record = None
        self.stats.add(rec)
        return rec

    def _count_as(self, rec: CommRecord, volume: dict) -> None:
        """MPI backend: count the traffic the explicit algorithm would have had."""
        for name, value in volume.items():
            setattr(rec, name, value)
        if self.verbose:
            self._trace(f"MPI built-in; counted as the explicit algorithm: {volume}")


def _split_json(data: np.ndarray, sizes) -> list:
    """Cut the concatenated UTF-8 JSON texts of each rank apart and parse them."""
    bounds = np.cumsum([0] + [int(s) for s in sizes])
    return [json.loads(data[bounds[i] : bounds[i + 1]].tobytes()) for i in range(len(sizes))]
