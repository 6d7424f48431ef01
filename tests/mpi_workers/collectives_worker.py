"""MPI worker for tests/sim/test_collectives.py.

Usage: mpirun -n N python collectives_worker.py CASES.json [--misc]

Every rank runs every case on both backends ("explicit" and "mpi") and records its result's
error against a plain-NumPy reference (every rank can regenerate every other rank's input from
the case's seed), a digest of the result (to compare ranks), whether the input was left
unchanged, and the traffic record. --misc adds: sub-communicators, mismatch errors,
point-to-point, JSON exchange, verbose tracing. Rank 0 prints `RESULTS <json>` with the list of
every rank's results; the test checks them against the textbook formulas.
"""

import sim  # first, so the thread variables are set before NumPy loads

# isort: split

import hashlib
import json
import sys

import numpy as np

from sim.collectives import chunk_sizes


def rank_input(case, rank):
    rng = np.random.default_rng([case["seed"], rank])
    if case["dtype"] == "uint16":  # e.g. bf16 bit patterns: moved, never summed
        return rng.integers(0, 2**16, case["count"]).astype(np.uint16)
    return rng.standard_normal(case["count"]).astype(case["dtype"])


def piece(case, rank, n):
    """Rank's contribution to an all-gather: its chunk of its own input."""
    lo = sum(chunk_sizes(case["count"], n)[:rank])
    return rank_input(case, rank)[lo : lo + chunk_sizes(case["count"], n)[rank]]


def reference(case, rank, n):
    """What this rank should hold afterwards, computed in float64 with plain NumPy."""
    inputs = [rank_input(case, r).astype(np.float64) for r in range(n)]
    total = np.sum(inputs, axis=0) if n else None
    if case["reduce"] == "avg":
        total = total / n
    op = case["op"]
    if op == "all_reduce":
        return total
    if op == "reduce_scatter":
        lo = sum(chunk_sizes(case["count"], n)[:rank])
        return total[lo : lo + chunk_sizes(case["count"], n)[rank]]
    if op == "all_gather":
        return np.concatenate([piece(case, r, n) for r in range(n)]).astype(np.float64)
    if op == "broadcast":
        return inputs[case["root"] % n]
    if op == "reduce":
        return total if rank == case["root"] % n else inputs[rank]


def run_case(world, case):
    n, rank = world.size, world.rank
    root = case["root"] % n
    mine = rank_input(case, rank)
    keep = mine.copy()
    op = case["op"]
    if op == "all_reduce":
        rec = world.all_reduce(mine, op=case["reduce"])
        result, unchanged = mine, True
    elif op == "reduce_scatter":
        result = np.empty(chunk_sizes(case["count"], n)[rank], mine.dtype)
        rec = world.reduce_scatter(mine, result, op=case["reduce"])
        unchanged = np.array_equal(mine, keep)
    elif op == "all_gather":
        send = piece(case, rank, n)
        result = np.empty(case["count"], mine.dtype)
        rec = world.all_gather(send, result)
        unchanged = np.array_equal(send, piece(case, rank, n))
    elif op == "broadcast":
        rec = world.broadcast(mine, root=root)
        result, unchanged = mine, True
    elif op == "reduce":
        rec = world.reduce(mine, root=root, op=case["reduce"])
        result = mine
        unchanged = True if rank == root else np.array_equal(mine, keep)
    expect = reference(case, rank, n)
    scale = float(
        np.sum([np.abs(rank_input(case, r)).astype(np.float64) for r in range(n)], axis=0).max(
            initial=0.0
        )
    )
    return {
        "err": float(np.abs(result.astype(np.float64) - expect).max(initial=0.0)),
        "scale": scale,
        "digest": hashlib.sha256(result.tobytes()).hexdigest(),
        "unchanged": bool(unchanged),
        "traffic": {
            k: getattr(rec, k)
            for k in ("bytes_sent", "bytes_recv", "messages_sent", "messages_recv")
        },
        "record_op": rec.op,
        "record_count": rec.count,
    }


def expect_error(fn, error_type):
    try:
        fn()
    except error_type as e:
        return str(e)
    return None


def misc_checks(world):
    n, rank = world.size, world.rank
    out = {}
    # Sub-communicators: color = rank parity, ranked by descending world rank.
    world.stats.reset()
    sub = world.split(rank % 2, key=-rank)
    value = np.array([float(rank)])
    rec = sub.all_reduce(value)
    out["split"] = {
        "sub_rank": sub.rank,
        "sub_size": sub.size,
        "world_ranks": list(sub.world_ranks),
        "sum": float(value[0]),
        "sub_bytes": sub.stats.total.bytes_sent,
        "world_bytes": world.stats.total.bytes_sent,
        "rec_group": list(rec.group),
    }
    none = world.split(None if rank == 0 else 1)
    out["split_none"] = none is None
    # Mismatched sizes: every rank must raise the same clear error, and the communicator must
    # still work afterwards.
    out["mismatch_count"] = expect_error(
        lambda: world.all_reduce(np.zeros(10 + rank, np.float32)), sim.CollectiveMismatchError
    )
    send = np.ones(12, np.float64)
    bad = np.empty(chunk_sizes(12, n)[rank] + (1 if rank == n - 1 else 0), np.float64)
    out["mismatch_recv"] = expect_error(
        lambda: world.reduce_scatter(send, bad), sim.CollectiveMismatchError
    )
    if rank == 0:
        wrong_op = lambda: world.broadcast(np.zeros(4))  # noqa: E731
    else:
        wrong_op = lambda: world.all_reduce(np.zeros(4))  # noqa: E731
    out["mismatch_op"] = expect_error(wrong_op, sim.CollectiveMismatchError)
    after = np.ones(3)
    world.all_reduce(after)
    out["usable_after"] = after.tolist()
    # Point-to-point around the ring, and a receive of the wrong size.
    got = np.empty(3)
    world.sendrecv(np.full(3, float(rank)), (rank + 1) % n, got, (rank - 1) % n)
    out["ring_p2p"] = got.tolist()
    if n > 1 and rank == 0:
        world.send(np.arange(3.0), dest=1, tag=7)
    if n > 1 and rank == 1:
        out["recv_size_error"] = expect_error(lambda: world.recv(np.empty(4), 0, tag=7), ValueError)
    out["gathered"] = world.gather_json({"rank": rank})
    out["bcast"] = world.bcast_json({"from": rank} if rank == 0 else None)
    out["p2p_ops"] = sorted(world.stats.by_op)
    world.stats.reset()
    out["after_reset"] = world.stats.total.bytes_sent + world.stats.total.calls
    # Verbose: trace one small all-reduce (the test reads stderr).
    world.verbose = True
    world.all_reduce(np.ones(8, np.float32))
    world.verbose = False
    return out


def main():
    world = sim.init(warmup=False)
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    mine = {"rank": world.rank, "size": world.size, "cases": []}
    for case in cases:
        row = {}
        for backend in ("explicit", "mpi"):
            world.backend = backend
            row[backend] = run_case(world, case)
        mine["cases"].append(row)
    world.backend = "explicit"
    if "--misc" in sys.argv:
        mine["misc"] = misc_checks(world)
    everyone = world.gather_json(mine)
    if world.rank == 0:
        print("RESULTS " + json.dumps(everyone), flush=True)


if __name__ == "__main__":
    main()
