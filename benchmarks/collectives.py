"""Bandwidth of sim's explicit collectives against MPI's built-in ones, nccl-tests style.

    mpirun -n 4 python benchmarks/collectives.py [--max-bytes 64MiB] [--json out.json]

For each collective and buffer size S (bytes; 1 KiB … 64 MiB in powers of 4), each backend runs
a few warm-up iterations and then timed ones; an iteration's time is the slowest rank's
(ranks start together after a barrier) and the table shows the median. Definitions as in
nccl-tests (doc/PERFORMANCE.md):

    algbw = S / t
    busbw = algbw · 2(n−1)/n   all-reduce  (each rank moves 2(n−1)/n · S: the ring's volume)
            algbw · (n−1)/n    all-gather, reduce-scatter  (S = the full, gathered buffer)
            algbw              broadcast

busbw is comparable across collectives and rank counts: it is the speed of the busiest link.
The ratio column is explicit time / MPI time (> 1: the explicit ring is slower). The checked
mode's signature exchange is off here (`checked=False`), so both backends time only their
algorithm; the last line measures what checked mode adds to a small all-reduce.
"""

import sim  # first: thread variables before NumPy loads BLAS

# isort: split

import argparse
import json
import time

import numpy as np
from mpi4py import MPI

from sim.collectives import chunk_sizes

OPS = ("all_reduce", "all_gather", "reduce_scatter", "broadcast")


def bus_factor(op, n):
    return {
        "all_reduce": 2 * (n - 1) / n,
        "all_gather": (n - 1) / n,
        "reduce_scatter": (n - 1) / n,
        "broadcast": 1.0,
    }[op]


def make_call(world, op, count, dtype):
    """A zero-argument function running one `op` over a buffer of `count` elements."""
    rng = np.random.default_rng(world.rank)
    full = rng.standard_normal(count).astype(dtype)
    mine = np.empty(chunk_sizes(count, world.size)[world.rank], dtype)
    if op == "all_reduce":
        return lambda: world.all_reduce(full)
    if op == "all_gather":
        return lambda: world.all_gather(mine, full)
    if op == "reduce_scatter":
        return lambda: world.reduce_scatter(full, mine)
    return lambda: world.broadcast(full, root=0)


def time_call(world, call, warmup, iters):
    """Median over iterations of the slowest rank's time."""
    for _ in range(warmup):
        call()
    times = np.empty(iters)
    for i in range(iters):
        world.mpi.Barrier()
        t0 = time.perf_counter()
        call()
        times[i] = time.perf_counter() - t0
    world.mpi.Allreduce(MPI.IN_PLACE, times, op=MPI.MAX)
    return float(np.median(times))


def parse_bytes(text):
    units = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def human(nbytes):
    for unit, factor in (("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= factor:
            return f"{nbytes / factor:g} {unit}"
    return f"{nbytes} B"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--min-bytes", default="1KiB")
    parser.add_argument("--max-bytes", default="64MiB")
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=20, help="timed iterations (5 above 1 MiB)")
    parser.add_argument("--ops", default=",".join(OPS))
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()
    from tinyllm.runtime import allocator

    allocator.configure()  # a benchmark is a program: reuse freed pages (runtime/allocator.py)

    world = sim.init(checked=False, warmup=False)
    n = world.size
    itemsize = np.dtype(args.dtype).itemsize
    sizes = []
    s = parse_bytes(args.min_bytes)
    while s <= parse_bytes(args.max_bytes):
        sizes.append(s)
        s *= args.factor
    world.print0(
        f"# {n} ranks, {args.dtype}, median of the slowest rank; times in µs, "
        f"bandwidths in GB/s (1e9 B/s)"
    )
    rows = []
    for op in args.ops.split(","):
        world.print0(f"\n{op}")
        world.print0(
            f"{'size':>10} | {'explicit µs':>12} {'algbw':>7} {'busbw':>7} | "
            f"{'MPI µs':>10} {'algbw':>7} {'busbw':>7} | {'explicit/MPI':>12}"
        )
        for nbytes in sizes:
            iters = args.iters if nbytes <= 2**20 else min(args.iters, 5)
            row = {"op": op, "bytes": nbytes, "ranks": n}
            for backend in ("explicit", "mpi"):
                world.backend = backend
                t = time_call(
                    world, make_call(world, op, nbytes // itemsize, args.dtype), args.warmup, iters
                )
                algbw = nbytes / t / 1e9
                row[backend] = {"seconds": t, "algbw": algbw, "busbw": algbw * bus_factor(op, n)}
            e, m = row["explicit"], row["mpi"]
            row["ratio"] = e["seconds"] / m["seconds"]
            rows.append(row)
            world.print0(
                f"{human(nbytes):>10} | {e['seconds'] * 1e6:12.1f} {e['algbw']:7.3f} "
                f"{e['busbw']:7.3f} | {m['seconds'] * 1e6:10.1f} {m['algbw']:7.3f} "
                f"{m['busbw']:7.3f} | {row['ratio']:12.2f}"
            )
    # What checked mode (the signature exchange before every collective) costs.
    world.backend = "explicit"
    small = make_call(world, "all_reduce", 1024 // itemsize, args.dtype)
    plain = time_call(world, small, args.warmup, args.iters)
    world.checked = True
    checked = time_call(world, small, args.warmup, args.iters)
    world.print0(
        f"\nchecked mode, 1 KiB explicit all-reduce: {checked * 1e6:.1f} µs vs "
        f"{plain * 1e6:.1f} µs unchecked"
    )
    if args.json and world.rank == 0:
        with open(args.json, "w") as f:
            json.dump(
                {"rows": rows, "checked_1KiB_seconds": checked, "unchecked_1KiB_seconds": plain},
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
