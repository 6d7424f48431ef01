"""Collectives written out as point-to-point messages, each beside MPI's built-in version.

n ranks each hold a buffer of S bytes. A *collective* is a communication pattern in which all n
take part. The five that data parallelism and ZeRO need, with x_r the buffer of rank r:

    broadcast(root)   every rank ends with x_root
    reduce(root)      the root ends with  Σ_r x_r
    reduce-scatter    the buffer is cut into n chunks; rank r ends with chunk r of Σ_r x_r
    all-gather        rank r contributes chunk r; every rank ends with all n chunks
    all-reduce        every rank ends with Σ_r x_r   (= reduce-scatter, then all-gather)

Ring algorithms (Patarasuk & Yuan 2009; the scheme NCCL and Horovod use for large buffers).
Arrange the ranks in a ring: rank r sends to r+1 and receives from r−1 (mod n).

* Reduce-scatter, n−1 steps. At step s rank r sends the partial sum of chunk (r−s−1) to the
  right, receives a partial sum of chunk (r−s−2) from the left and adds its own copy of that
  chunk. After n−1 steps the partial sum that arrives at rank r holds the contributions of all n
  ranks — and it is chunk r. Every rank sends n−1 chunks: (n−1)/n · S bytes.
* All-gather, n−1 steps. Rank r starts with chunk r; at step s it forwards chunk (r−s) to the
  right and receives chunk (r−s−1) from the left. Again (n−1)/n · S bytes sent per rank.
* All-reduce = reduce-scatter + all-gather: 2(n−1) steps and 2(n−1)/n · S bytes per rank, which
  is the lower bound for any all-reduce algorithm (Patarasuk & Yuan): optimal in bandwidth, and
  almost independent of n. Its weakness is latency: 2(n−1) messages in sequence.

Tree algorithms (binomial tree, as in MPICH) for the rooted collectives. Number the ranks
relative to the root, v = (rank − root) mod n. Rank v's parent is v with its lowest set bit
cleared; its children are v + 2^k for every 2^k below that bit. ⌈log₂ n⌉ rounds; every rank
except the root receives S once (broadcast) or sends S once (reduce); a rank with c children
sends (broadcast) or receives (reduce) c·S. Summed over ranks: (n−1)·S, the minimum.

Sizes not divisible by n: chunks are uneven, as `numpy.array_split` cuts them — the first
S mod n chunks have one element more (`chunk_sizes`). The ring then sends slightly different
byte counts per rank (`ring_volume`). ZeRO pads its flat buffers to a multiple of n, so its
chunks — its shards — are equal and each rank sends exactly (n−1)/n · S.

Ops: "sum", and "avg" (the sum divided by n after the reduction, how data parallelism averages
gradients), on float16/32/64 and on tinyllm's bf16 (uint16 bit patterns tagged as bfloat16,
added in float32 and rounded back); each partial sum is rounded to the buffer's format at every
step, as NCCL does. Collectives that only move data take integer dtypes too. The explicit functions
take a `sim.comm.Communicator` and move data only through its `_sendrecv` / `_send` / `_recv`, which
count every byte; the `mpi_*` functions beside them call MPI's built-in collective, which is faster
but hides its algorithm. Both only ever wait with a deadline (sim/deadline.py).
"""

from __future__ import annotations

import numpy as np
from mpi4py import MPI

from tinyllm.dtypes import METADATA_KEY, to_float32, to_storage

REDUCE_OPS = ("sum", "avg")


# ---- adding in a buffer's own format ----------------------------------------------------------


def is_bf16(dtype) -> bool:
    """tinyllm's bf16 storage: uint16 bit patterns whose dtype carries a tinyllm tag."""
    meta = np.dtype(dtype).metadata
    return bool(meta) and METADATA_KEY in meta


def add_into(acc: np.ndarray, x: np.ndarray) -> None:
    """acc += x, rounded to acc's format (bf16: decode, add in float32, round to nearest)."""
    if is_bf16(acc.dtype):
        to_storage(to_float32(acc) + to_float32(x), "bfloat16", out=acc)
    else:
        acc += x


def divide(buf: np.ndarray, n: int) -> None:
    """buf /= n in buf's format (the "avg" of a reduction)."""
    if is_bf16(buf.dtype):
        to_storage(to_float32(buf) / n, "bfloat16", out=buf)
    else:
        buf /= n


# ---- how a buffer is cut and how the ranks are wired ------------------------------------------


def chunk_sizes(count: int, n: int) -> list[int]:
    """Elements in each of the n chunks of a `count`-element buffer (numpy.array_split's rule)."""
    base, extra = divmod(count, n)
    return [base + 1 if c < extra else base for c in range(n)]


def chunk_offsets(count: int, n: int) -> list[int]:
    """The n+1 boundaries of the chunks: chunk c is elements [offsets[c], offsets[c+1])."""
    offsets = [0]
    for size in chunk_sizes(count, n):
        offsets.append(offsets[-1] + size)
    return offsets


def padded_count(count: int, n: int) -> int:
    """The smallest multiple of n that holds `count` elements: ZeRO's flat, padded buffer,
    whose n chunks (shards) are then equal: padded_count(count, n) // n elements each."""
    return -(-count // n) * n


def chunk_views(buf: np.ndarray, n: int) -> list[np.ndarray]:
    """The n chunks of a flat buffer as views (writing to a chunk writes to `buf`)."""
    bounds = chunk_offsets(buf.size, n)
    return [buf[bounds[c] : bounds[c + 1]] for c in range(n)]


def binomial_tree(v: int, n: int) -> tuple[int | None, list[int]]:
    """(parent, children) of relative rank v in a binomial tree over n ranks rooted at 0.

    The parent of v clears v's lowest set bit; the children add each smaller power of two.
    Children are listed largest subtree first (the order a broadcast should serve them).
    For n = 4: 0 → [2, 1], 2 → [3]; for n = 5: 0 → [4, 2, 1], 2 → [3].
    """
    mask = 1
    parent = None
    while mask < n:
        if v & mask:
            parent = v - mask
            break
        mask <<= 1
    children = []
    m = mask >> 1
    while m > 0:
        if v + m < n:
            children.append(v + m)
        m >>= 1
    return parent, children


# ---- ring reduce-scatter, all-gather, all-reduce ----------------------------------------------


def ring_reduce_scatter(comm, chunks: list[np.ndarray], out: np.ndarray, op: str) -> None:
    """Reduce the n `chunks` (this rank's contribution) around the ring; chunk `rank` → `out`.

    `chunks` are not modified. Two scratch buffers of one chunk each hold the partial sum being
    sent and the one being received; they swap roles every step.
    """
    n, r = comm.size, comm.rank
    right, left = (r + 1) % n, (r - 1) % n
    if n == 1:
        out[...] = chunks[0]
        return
    largest = max(c.size for c in chunks)
    scratch = [np.empty(largest, chunks[0].dtype), np.empty(largest, chunks[0].dtype)]
    outgoing = chunks[(r - 1) % n]  # step 0: our own copy of chunk r−1 starts its journey
    for step in range(n - 1):
        c = (r - step - 2) % n  # the chunk whose partial sum arrives from the left now
        incoming = scratch[step % 2][: chunks[c].size]
        comm._sendrecv(outgoing, right, incoming, left, f"step {step + 1}/{n - 1}")
        add_into(incoming, chunks[c])  # add this rank's contribution
        outgoing = incoming  # ...and pass it on next step
    out[...] = outgoing  # after n−1 steps the arriving chunk is chunk r, summed over all ranks
    if op == "avg":
        divide(out, n)


def ring_all_gather(comm, chunks: list[np.ndarray]) -> None:
    """Fill every chunk of `chunks` (views of one buffer) from chunk `rank`, around the ring."""
    n, r = comm.size, comm.rank
    right, left = (r + 1) % n, (r - 1) % n
    for step in range(n - 1):
        comm._sendrecv(
            chunks[(r - step) % n],
            right,
            chunks[(r - step - 1) % n],
            left,
            f"step {step + 1}/{n - 1}",
        )


def ring_all_reduce(comm, buf: np.ndarray, op: str) -> None:
    """All-reduce `buf` in place: ring reduce-scatter, then ring all-gather (2(n−1) steps)."""
    chunks = chunk_views(buf, comm.size)
    ring_reduce_scatter(comm, chunks, chunks[comm.rank], op)  # own chunk is read before written
    ring_all_gather(comm, chunks)


def explicit_reduce_scatter(comm, send: np.ndarray, recv: np.ndarray, op: str) -> None:
    ring_reduce_scatter(comm, chunk_views(send, comm.size), recv, op)


def explicit_all_gather(comm, send: np.ndarray, recv: np.ndarray) -> None:
    chunks = chunk_views(recv, comm.size)
    chunks[comm.rank][...] = send
    ring_all_gather(comm, chunks)


# ---- binomial-tree broadcast and reduce -------------------------------------------------------


def tree_broadcast(comm, buf: np.ndarray, root: int) -> None:
    """Broadcast `buf` from `root`: receive from the parent, then forward to each child."""
    n, r = comm.size, comm.rank
    parent, children = binomial_tree((r - root) % n, n)
    if parent is not None:
        comm._recv(buf, (parent + root) % n, "from parent")
    for child in children:
        comm._send(buf, (child + root) % n, "to child")


def tree_reduce(comm, buf: np.ndarray, root: int, op: str) -> None:
    """Reduce into `buf` on `root` (other ranks' `buf` is left unchanged).

    Children are heard smallest subtree first (they finish first), their sums added to ours,
    and the total goes to the parent.
    """
    n, r = comm.size, comm.rank
    parent, children = binomial_tree((r - root) % n, n)
    # The root sums into buf; an inner node sums into a copy, so its buf stays unchanged.
    total = buf.copy() if parent is not None and children else buf
    incoming = np.empty_like(buf) if children else None
    for child in reversed(children):
        comm._recv(incoming, (child + root) % n, "from child")
        add_into(total, incoming)
    if parent is not None:
        comm._send(total, (parent + root) % n, "to parent")
    elif op == "avg":
        divide(buf, n)


# ---- the same collectives by MPI's built-in implementations -----------------------------------


def _through_float32(fn):
    """MPI has no bf16: reduce bf16 buffers as float32 values and round the result back."""

    def wrapper(comm, *args):
        arrays = [a for a in args if isinstance(a, np.ndarray)]
        if not is_bf16(arrays[-1].dtype):
            return fn(comm, *args)
        wide = [to_float32(a).copy() if isinstance(a, np.ndarray) else a for a in args]
        fn(comm, *wide)
        result = [w for w in wide if isinstance(w, np.ndarray)][-1]  # the output buffer
        to_storage(result, "bfloat16", out=arrays[-1])

    return wrapper


# Each built-in collective is started non-blocking (MPI-3's I-variants) and waited for by
# `comm._wait_all`, so that a rank that never arrives ends the job (sim/deadline.py) instead of
# hanging it. `comm._coll` is the MPI communicator the collectives run on.
@_through_float32
def mpi_all_reduce(comm, buf, op):
    comm._wait_all([comm._coll.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM)], "all_reduce")
    if op == "avg":
        buf /= comm.size


# Equal chunks use MPI's "block" variants (Allgather, Reduce_scatter_block): MPI libraries tune
# them far better than the general v-variants, whose chunks may differ in size.
@_through_float32
def mpi_reduce_scatter(comm, send, recv, op):
    mpi_comm = comm._coll
    if send.size % comm.size == 0:
        request = mpi_comm.Ireduce_scatter_block(send, recv, op=MPI.SUM)
    else:
        counts = chunk_sizes(send.size, comm.size)
        request = mpi_comm.Ireduce_scatter(send, recv, recvcounts=counts, op=MPI.SUM)
    comm._wait_all([request], "reduce_scatter")
    if op == "avg":
        recv /= comm.size


def mpi_all_gather(comm, send, recv):
    if recv.size % comm.size == 0:
        request = comm._coll.Iallgather(send, recv)
    else:
        request = comm._coll.Iallgatherv(send, [recv, chunk_sizes(recv.size, comm.size)])
    comm._wait_all([request], "all_gather")


def mpi_broadcast(comm, buf, root):
    comm._wait_all([comm._coll.Ibcast(buf, root=root)], "broadcast")


@_through_float32
def mpi_reduce(comm, buf, root, op):
    if comm.rank == root:
        comm._wait_all([comm._coll.Ireduce(MPI.IN_PLACE, buf, op=MPI.SUM, root=root)], "reduce")
        if op == "avg":
            buf /= comm.size
    else:
        comm._wait_all([comm._coll.Ireduce(buf, None, op=MPI.SUM, root=root)], "reduce")


# ---- what each algorithm sends: used to count the MPI backend's traffic -----------------------


def ring_volume(op: str, count: int, itemsize: int, rank: int, n: int) -> dict:
    """Bytes and messages that rank `rank` sends and receives in the ring version of `op`.

    Reduce-scatter sends every chunk but its own (r) and receives every chunk but r−1's;
    all-gather sends every chunk but r+1's and receives every chunk but its own. With equal
    chunks that is (n−1)/n · S each way, per phase.
    """
    sizes = chunk_sizes(count, n)
    phases = {
        "reduce_scatter": [(rank, rank - 1)],
        "all_gather": [(rank + 1, rank)],
        "all_reduce": [(rank, rank - 1), (rank + 1, rank)],
    }[op]
    sent = recv = 0
    for skip_sent, skip_recv in phases:
        sent += count - sizes[skip_sent % n]
        recv += count - sizes[skip_recv % n]
    messages = len(phases) * (n - 1)
    return {
        "bytes_sent": sent * itemsize,
        "bytes_recv": recv * itemsize,
        "messages_sent": messages,
        "messages_recv": messages,
    }


def tree_volume(op: str, nbytes: int, rank: int, root: int, n: int) -> dict:
    """Bytes and messages of rank `rank` in the binomial-tree broadcast or reduce."""
    parent, children = binomial_tree((rank - root) % n, n)
    to_parent = 0 if parent is None else 1
    if op == "broadcast":  # down the tree: one message in, one out per child
        msgs_in, msgs_out = to_parent, len(children)
    else:  # reduce: up the tree
        msgs_in, msgs_out = len(children), to_parent
    return {
        "bytes_sent": msgs_out * nbytes,
        "bytes_recv": msgs_in * nbytes,
        "messages_sent": msgs_out,
        "messages_recv": msgs_in,
    }
