"""What does half-precision support cost the engine's float32 path, and what does emulation cost?

    python benchmarks/half_overhead.py [--repeats 15] [--n 2000]

The half-precision rules (tinyllm/dtypes.py) enter the engine through its one extension point,
tinyllm/engine/hooks.py: around Function.apply (upcast fp16/bf16 inputs, round the output) and
in the backward pass (round adjoints to the tensor's format). They are switched on only when
the first half array is made; until then each op pays one test of `hooks.active`. This script
times, side by side in one process,

    inactive   float32 ops with the rules off (a float32-only program)
    active     the same float32 ops with the rules on (after some half tensor was made, every
               op first looks for half inputs)
    bf16/fp16  the same ops on half tensors (decode, compute in float32, round and store)

for ops small enough that the engine's bookkeeping, not the arithmetic, dominates: an add and a
matmul of two (8, 8) tensors, and a forward+backward chain of five ops (time per op). The
columns are measured in turns (inactive, active, bf16, fp16, inactive, …) and each reports the
fastest of --repeats turns of --n calls, in µs of this thread's CPU time per op: CPU time leaves
out the waits for a core, and the minimum is the turn least disturbed by other processes.

To see the cost of a change to the engine itself, run the same script against the tree before
the change, e.g.
`git archive <commit> tinyllm | tar -x -C /tmp/before` and `PYTHONPATH=/tmp/before python
benchmarks/half_overhead.py`, alternating with a run on the current tree.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import tinyllm
from tinyllm import Tensor
from tinyllm.engine import hooks


def workloads(dtype):
    rng = np.random.default_rng(0)
    a = Tensor(rng.standard_normal((8, 8)).astype(np.float32))
    b = Tensor(rng.standard_normal((8, 8)).astype(np.float32))
    w = Tensor(rng.standard_normal((8, 8)).astype(np.float32), requires_grad=True)
    if dtype is not None:
        a, b = a.to(dtype), b.to(dtype)
        w = w.detach().to(dtype).requires_grad_()

    def chain():  # 5 recorded ops forward, 5 backward
        y = ((a @ w).tanh() * b + a).sum()
        y.backward()
        w.grad = None

    return {
        "add (8,8)": (a.__add__, b),
        "matmul (8,8)": (a.__matmul__, b),
        "fwd+bwd chain (per op)": (chain,),
    }


def turn_us(call, n):
    """µs per call, in CPU time of this thread: time spent waiting for a core while other
    processes run is not counted (wall-clock time on a shared machine mostly measures them)."""
    fn, *args = call
    t0 = time.thread_time()
    for _ in range(n):
        fn(*args)
    return (time.thread_time() - t0) / n * 1e6


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--n", type=int, default=2000)
    args = p.parse_args(argv)
    from tinyllm.runtime import allocator

    allocator.configure()  # a benchmark is a program: reuse freed pages (runtime/allocator.py)
    assert not hooks.half, "the half-precision rules must start off"
    inactive = workloads(None)
    configs = {
        "inactive": inactive,
        "active": inactive,
        "bf16": workloads(tinyllm.bfloat16),  # making these switches the rules on
        "fp16": workloads(tinyllm.float16),
    }
    best = {c: {} for c in configs}
    for _ in range(args.repeats):
        for c, loads in configs.items():
            hooks.enable_half(c != "inactive")
            for k, call in loads.items():
                call[0](*call[1:])  # warm-up
                t = turn_us(call, args.n) / (5 if "chain" in k else 1)
                best[c][k] = min(best[c].get(k, np.inf), t)
    hooks.enable_half(True)
    names = list(configs)
    print(
        f"{'µs per op (min of turns)':26s}"
        + "".join(f"{n:>11s}" for n in names)
        + "   active/inactive"
    )
    for k in best["inactive"]:
        row = f"{k:26s}" + "".join(f"{best[n][k]:11.2f}" for n in names)
        row += f"   {best['active'][k] / best['inactive'][k]:8.3f}"
        print(row)


if __name__ == "__main__":
    main()
