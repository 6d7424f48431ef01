"""Checked mode: every rank must enter the same collective with the same arguments.

A collective is a promise that all ranks of a communicator make the same call. When one rank
calls `all_reduce` on 1,000 elements and another `all_gather` on 999, the explicit ring would
exchange mismatched messages — corrupting data or deadlocking halfway. So, before each
collective, every rank encodes its call as a signature of seven integers

    (call number, collective, element count, dtype, root, reduction op, "my buffers are valid")

and one MPI all-reduce of (sig, −sig) with MAX yields the element-wise max and −min: equal
means everyone agrees. Otherwise the ranks gather all signatures and raise
`CollectiveMismatchError` with `mismatch_table`, which names what each rank called.

The cost is one extra small-message exchange per collective, not counted in the stats (a
simulated GPU would not pay it): about the time of a tiny collective itself, negligible for large
buffers (benchmarks/collectives.py measures both modes). The exchange waits with a deadline,
like every other call (sim/deadline.py): a rank that never arrives (it left the loop early, or
is stuck) is named and the job ends instead of hanging. What cannot be detected here:
mismatched point-to-point `send`/`recv` pairs (the deadline reports those as a deadlock), and
everything with checks off.

Before that, each rank checks its own arguments (`flat_buffer`, `chunk_problem`,
`root_problem`); a problem found there is part of the signature, so every rank raises — not
only the one with the bad buffer, which would leave the others waiting.
"""

from __future__ import annotations

import numpy as np

from sim.collectives import REDUCE_OPS, chunk_sizes, is_bf16

# Dtypes a collective can move: floats, and integers for token ids, int8 weights and the
# uint16 bit patterns tinyllm uses for bf16 (NumPy has no bfloat16). Only floats are reduced.
DTYPE_CODES = {
    np.dtype(t): code
    for code, t in enumerate(
        (np.float16, np.float32, np.float64, np.int8, np.uint8, np.uint16, np.int32, np.int64),
        start=1,
    )
}
REDUCIBLE = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
OP_CODES = {
    name: code
    for code, name in enumerate(
        ("broadcast", "reduce", "reduce_scatter", "all_gather", "all_reduce"), start=1
    )
}
REDUCE_OP_CODES = {"": 0, "sum": 1, "avg": 2}


class CollectiveMismatchError(RuntimeError):
    """The ranks called different collectives, or the same one with different sizes."""


def mismatch_table(everyone: list[dict], world_ranks) -> str:
    """The error message of a mismatch: what each rank called (from the signatures)."""
    names = {code: name for name, code in OP_CODES.items()}
    dtypes = {code: str(dt) for dt, code in DTYPE_CODES.items()}
    ops = {code: name for name, code in REDUCE_OP_CODES.items()}
    lines = [
        f"ranks {list(world_ranks)} (world ranks) did not enter the same collective "
        f"with the same arguments:"
    ]
    for r, entry in enumerate(everyone):
        seq, op, count, dt, root, rop, ok = entry["sig"]
        line = (
            f"  rank {r}: call #{seq} {names[op]}(count={count}, dtype={dtypes[dt]}"
            + (f", root={root}" if root >= 0 else "")
            + (f", op={ops[rop]}" if rop else "")
            + ")"
        )
        if entry["problem"]:
            line += f" — invalid here: {entry['problem']}"
        lines.append(line)
    return "\n".join(lines)


def flat_buffer(arr, what: str, writeable: bool = False, reduce_op: str | None = None):
    """Check a buffer argument and return it as a flat view (collectives work on flat data)."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(
            f"{what}: expected a NumPy array, got {type(arr).__name__} "
            f"(pass tensor.data for a Tensor)"
        )
    if not arr.flags.c_contiguous:
        raise ValueError(
            f"{what}: the buffer of shape {arr.shape} is not C-contiguous; "
            f"collectives send memory as it is (np.ascontiguousarray first)"
        )
    if writeable and not arr.flags.writeable:
        raise ValueError(f"{what}: the buffer of shape {arr.shape} is read-only")
    if arr.dtype not in DTYPE_CODES:
        raise TypeError(
            f"{what}: dtype {arr.dtype} is not supported "
            f"(supported: {', '.join(str(d) for d in DTYPE_CODES)})"
        )
    if reduce_op is not None:
        if reduce_op not in REDUCE_OPS:
            raise ValueError(
                f"{what}: unknown reduction op {reduce_op!r}; expected one of {REDUCE_OPS}"
            )
        if arr.dtype not in REDUCIBLE and not is_bf16(arr.dtype):
            raise TypeError(
                f"{what}: reductions need float16, float32, float64 or tinyllm's "
                f"bfloat16, got {arr.dtype} (untagged uint16 bit patterns cannot "
                f"be summed as integers)"
            )
    return arr.reshape(-1)


def chunk_problem(
    which: str, chunk: np.ndarray, full: np.ndarray, rank: int, size: int
) -> str | None:
    """None if `chunk` is this rank's share of the flat `full` buffer, else what is wrong."""
    want = chunk_sizes(full.size, size)
    if chunk.size == want[rank] and chunk.dtype == full.dtype:
        return None
    return (
        f"{which} buffer has {chunk.size} × {chunk.dtype} but rank {rank}'s chunk of "
        f"{full.size} × {full.dtype} over {size} ranks has {want[rank]} "
        f"elements (chunk sizes {want})"
    )


def root_problem(root: int, size: int) -> str | None:
    """None if `root` is a rank of a communicator of `size` ranks, else what is wrong."""
    if not 0 <= root < size:
        return f"root {root} is not a rank of this communicator of {size} ranks"
    return None


def signature(seq, op, count, dtype, root=-1, reduce_op="", valid=True) -> np.ndarray:
    """The seven integers one rank contributes for one collective call."""
    codes = [
        seq,
        OP_CODES[op],
        count,
        DTYPE_CODES[np.dtype(dtype)],
        root,
        REDUCE_OP_CODES[reduce_op],
    ]
    return np.array(codes + [valid], dtype=np.int64)


def everyone_agrees(both: np.ndarray) -> bool:
    """After the MAX all-reduce of (sig, −sig): max == min everywhere, and every buffer valid."""
    n = both.size // 2
    return bool(np.array_equal(both[:n], -both[n:]) and both[n - 1])
