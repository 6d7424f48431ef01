"""One training step of a small GPT: tinyllm beside PyTorch eager, on the same threads.

    python benchmarks/step.py [--workloads R1 R2] [--repeats 7] [--steps 3] [--threads 2]
                              [--no-torch] [--no-profile] [--start-up] [--baseline DIR]

A training step is forward, backward, AdamW step and zero_grad, on a fixed random batch, float32,
dropout 0. The two reference workloads (docs/03-kernels.md reports them):

    R1   n_layer 4, n_embd 256, n_head 4, block_size 128, batch 8, vocab 512
    R2   n_layer 6, n_embd 384, n_head 6, block_size 256, batch 4, vocab 512

How it is measured, and why this way:

* Each framework runs in its own worker process (benchmarks/step_worker.py), started with the
  same thread count (numba + OpenBLAS for tinyllm, torch.set_num_threads for PyTorch). Separate
  processes keep the thread pools apart (PyTorch ships its own OpenMP runtime) and let each one
  report its own peak memory: `ru_maxrss`, the high-water mark of the resident set.
* The parent asks the workers in turn for `--steps` steps, alternating who goes first, for
  `--repeats` rounds: both frameworks see the same machine load, and the table reports the
  median step time of all the steps. Both start from the same weights (PyTorch's model is
  nanoGPT's, tests/torch_nanogpt.py, loaded with tinyllm's state dict — the parameter names
  are the same), so their first losses must agree.
* MFU (PaLM, appendix B) = tokens/s × model FLOPs per token / peak, with 6N + 12·L·H·Q·T model
  FLOPs per token and the peak measured here: the best 1024³ sgemm on the same thread count,
  through OpenBLAS's own threads or split by tinyllm.kernels.matmul, sampled between rounds
  (the machine's load changes during a run).
* Profile: a few more tinyllm steps under a GraphObserver that times every op's forward and
  backward; ops are grouped into families, the optimizer is timed on its own, and what is left
  of the wall time is Python and graph overhead (Module calls, Function.apply, the backward
  loop). The observer's own timing calls inflate that last row slightly.

* `--baseline DIR` adds a third worker running the tinyllm package found in DIR — an older
  commit, `git archive REV tinyllm | tar -x -C DIR` — interleaved with the others: before and
  after a change, measured under the same load.

* faults/step: minor page faults per step (getrusage), memory the kernel had to map and zero
  because freed arrays were given back to it — tinyllm/runtime/allocator.py explains why tinyllm
  keeps them (TINYLLM_MALLOC=system in the environment turns that off, to see the difference).

The machine is shared: the load average is printed at the start and the end of every run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import step_worker  # the worker process: benchmarks/step_worker.py, beside this file
from step_worker import WORKLOADS


class Worker:
    def __init__(self, framework, workload, threads, seed, name=None, pythonpath=None):
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
        if pythonpath:  # another tinyllm (e.g. an older commit) ahead of this one
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
        self.name = name or framework
        self.proc = subprocess.Popen(
            [sys.executable, step_worker.__file__, framework, workload, str(threads), str(seed)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.hello = self.read()

    def read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} worker exited (see its error above)")
        return json.loads(line)

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        self.proc.wait()


# ---- the parent: interleave, measure the peak, print ------------------------------------------


def sgemm_peak(threads, n=1024):
    """The best 1024³ float32 product on `threads` threads: OpenBLAS's own threads or split in
    row blocks by tinyllm.kernels.matmul, whichever the machine's load lets go faster right now
    (tinyllm.accounting.mfu.measure_matmul_peak tries both)."""
    import numba

    from tinyllm.accounting.mfu import measure_matmul_peak
    from tinyllm.runtime.threads import blas_threads

    prev = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        with blas_threads(threads):
            return measure_matmul_peak(np.float32, n=n, repeats=3)
    finally:
        numba.set_num_threads(prev)


def run_workload(name, args, have_torch):
    from tinyllm.accounting.flops import palm_flops_per_token
    from tinyllm.models import GPT

    w = WORKLOADS[name]
    cfg = step_worker.gpt_config(w)
    n_params = GPT(cfg).get_num_params()  # non-embedding: the position table left out
    flops_per_token = palm_flops_per_token(
        n_params, w["n_layer"], w["n_head"], w["n_embd"] // w["n_head"], w["block_size"]
    )
    tokens = w["batch"] * w["block_size"]
    print(
        f"\n{name}: n_layer {w['n_layer']}, n_embd {w['n_embd']}, n_head {w['n_head']}, "
        f"block_size {w['block_size']}, batch {w['batch']}, vocab {w['vocab_size']} — "
        f"{n_params / 1e6:.2f} M params, {tokens} tokens/step, "
        f"{flops_per_token * tokens / 1e9:.2f} GFLOP/step (6N + 12·L·H·Q·T)"
    )
    workers = [Worker("tinyllm", name, args.threads, args.seed)]
    if args.baseline:
        workers.append(
            Worker(
                "tinyllm", name, args.threads, args.seed, name="baseline", pythonpath=args.baseline
            )
        )
    if have_torch:
        workers.append(Worker("torch", name, args.threads, args.seed))
    losses = ", ".join(f"{wk.name} {wk.hello['first_loss']:.6f}" for wk in workers)
    print(f"  first-step loss (same weights): {losses}")
    times = {wk.name: [] for wk in workers}
    faults = {wk.name: [] for wk in workers}
    peaks = [sgemm_peak(args.threads)]
    for r in range(args.repeats):
        for wk in workers if r % 2 == 0 else workers[::-1]:
            # A pause between turns: OpenMP (PyTorch) and BLAS worker threads keep spinning for
            # a while after their last parallel region; the next worker should not pay for it.
            time.sleep(args.pause)
            answer = wk.ask(f"time {args.steps}")
            times[wk.name] += answer["seconds"]
            faults[wk.name].append(answer["faults_per_step"])
        peaks.append(sgemm_peak(args.threads))
    peak = max(peaks)
    rss = {wk.name: (wk.ask("rss")["peak_kib"], wk.hello["rss_before_kib"]) for wk in workers}
    profiles = (
        {}
        if args.no_profile
        else {wk.name: wk.ask(f"profile {args.steps}") for wk in workers if wk.name != "torch"}
    )
    for wk in workers:
        wk.close()

    print(f"  sgemm peak ({args.threads} threads, best 1024³ of the run): {peak / 1e9:.1f} GFLOP/s")
    head = (
        f"  {'':<8} {'s/step':>8} {'(min':>7} {'max)':>6} {'tok/s':>8} {'MFU':>6} "
        f"{'peak RSS':>9} {'RSS before':>11} {'faults/step':>11} {'ratio':>6}"
    )
    print(head)
    med = {k: statistics.median(v) for k, v in times.items()}
    for wk in workers:
        t = times[wk.name]
        m = med[wk.name]
        mfu = flops_per_token * tokens / m / peak
        ratio = f"{m / med['torch']:6.2f}" if "torch" in med and wk.name != "torch" else ""
        peak_rss, before = rss[wk.name]
        print(
            f"  {wk.name:<8} {m:8.3f} {min(t):7.3f} {max(t):6.3f} {tokens / m:8.0f} "
            f"{mfu:6.1%} {peak_rss / 1024:7.0f}MB {before / 1024:9.0f}MB "
            f"{statistics.median(faults[wk.name]):11.0f} {ratio}"
        )
    if "torch" in med:
        (ours, ours0), (theirs, theirs0) = rss["tinyllm"], rss["torch"]
        print(
            f"  ratio tinyllm / torch (median step time): {med['tinyllm'] / med['torch']:.2f}; "
            f"peak RSS ratio {ours / theirs:.2f}; step's own RSS (peak − before first step) "
            f"ratio {(ours - ours0) / max(1, theirs - theirs0):.2f}"
        )
    for label, profile in profiles.items():
        ops = profile["forward_ops"] + profile["backward_ops"]
        print(
            f"  {label} profile ({args.steps} steps under a timing observer, "
            f"{profile['wall']:.3f} s/step; {profile['forward_ops']} forward ops + "
            f"{profile['backward_ops']} backward nodes per step):"
        )
        for fam, sec in sorted(profile["seconds"].items(), key=lambda kv: -kv[1]):
            print(f"    {fam:<32} {sec * 1e3:8.1f} ms  {sec / profile['wall']:6.1%}")
        over = profile["seconds"]["Python / graph overhead"]
        print(f"    overhead per op (forward op or backward node): {over / ops * 1e6:.0f} µs")
    return med


def start_up(args):
    """Seconds from launch until the main job prints its first training step (`step    0 |`),
    with an empty numba cache (NUMBA_CACHE_DIR pointing at a fresh directory: every kernel
    compiles) and then with the cache that run left behind."""
    import re
    import tempfile

    script = os.path.join(
        os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples", "train_zero.py"
    )
    cmd = ["mpirun", "-n", "4", sys.executable, script, "--steps", "1"]
    print(
        "\nstart-up: mpirun -n 4 python examples/train_zero.py --steps 1, until 'step 0' is printed"
    )
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        for label in ("fresh numba cache", "warm numba cache"):
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            t0 = time.perf_counter()
            first = None
            with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) as proc:
                for line in proc.stdout:
                    if first is None and re.match(r"\s*step\s+0\s*\|", line):
                        first = time.perf_counter() - t0
                total = time.perf_counter() - t0
            if proc.returncode:
                raise RuntimeError(f"the main job failed (exit status {proc.returncode})")
            shown = f"{first:6.1f} s" if first is not None else "   n/a"
            print(
                f"  {label:<18} first step at {shown}; whole run {total:6.1f} s  "
                f"(load average {os.getloadavg()[0]:.2f})"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=3, help="steps per framework per round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--pause", type=float, default=0.5, help="seconds of idle time before each worker's turn"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-torch", action="store_true", help="tinyllm only")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also time the tinyllm package found in DIR (e.g. an older commit: "
        "git archive REV tinyllm | tar -x -C DIR), as 'baseline'",
    )
    parser.add_argument(
        "--start-up",
        action="store_true",
        help="also time the main job's start (mpirun -n 4), cold and warm",
    )
    args = parser.parse_args()

    have_torch = False
    if not args.no_torch:
        try:
            import torch

            have_torch = True
            version = torch.__version__
        except ImportError:
            version = "not installed"
    import numba

    print(
        f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on "
        f"{os.cpu_count()} cores; {args.threads} threads each; NumPy {np.__version__}, numba "
        f"{numba.__version__}, PyTorch {version if not args.no_torch else 'skipped'}; "
        f"median of {args.repeats} rounds × {args.steps} steps"
    )
    for name in args.workloads:
        run_workload(name, args, have_torch)
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.start_up:
        start_up(args)


if __name__ == "__main__":
    main()
