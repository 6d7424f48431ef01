"""One training step of a small GPT: tinyllm beside PyTorch eager, on the same threads.

    python benchmarks/step.py [--workloads R1 R2] [--repeats 7] [--steps 3] [--threads 2]
                              [--no-torch] [--no-profile] [--start-up] [--baseline DIR]

A training step is forward, backward, AdamW step and zero_grad, on a fixed random batch, float32,
dropout 0. The two reference workloads of issue 8:

    R1   n_layer 4, n_embd 256, n_head 4, block_size 128, batch 8, vocab 512
    R2   n_layer 6, n_embd 384, n_head 6, block_size 256, batch 4, vocab 512

How it is measured, and why this way:

* Each framework runs in its own worker process (this file with --worker), started with the
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
  because freed arrays were given back to it — tinyllm/runtime/allocator.py explains why tinyllm keeps
  them (TINYLLM_MALLOC=system in the environment turns that off, to see the difference).

The machine is shared: the load average is printed at the start and the end of every run.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

# tests/torch_nanogpt.py: nanoGPT in PyTorch, the same reference the tests use
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests"))

WORKLOADS = {
    "R1": dict(n_layer=4, n_embd=256, n_head=4, block_size=128, batch=8, vocab_size=512),
    "R2": dict(n_layer=6, n_embd=384, n_head=6, block_size=256, batch=4, vocab_size=512),
}
LR, WEIGHT_DECAY, BETAS = 6e-4, 0.1, (0.9, 0.95)

# Function classes → the family the profile charges them to (anything else: "other ops").
FAMILIES = {
    "MatMul": "matmul", "Linear": "matmul",
    "ScaledDotProductAttention": "attention",
    "LayerNorm": "layer norm",
    "GELU": "GELU",
    "Softmax": "softmax / cross-entropy", "LogSoftmax": "softmax / cross-entropy",
    "CrossEntropy": "softmax / cross-entropy",
    "Embedding": "embedding",
}


def batch(w, seed):
    rng = np.random.default_rng(seed + 1)
    shape = (w["batch"], w["block_size"])
    return rng.integers(0, w["vocab_size"], shape), rng.integers(0, w["vocab_size"], shape)


def rss_now_kib() -> int:
    """The current resident set (VmRSS) in KiB, from /proc (Linux); 0 elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# ---- the two step functions -------------------------------------------------------------------


def gpt_config(w):
    """The workload's GPTConfig (float32, dropout 0)."""
    from tinyllm.models import GPTConfig

    return GPTConfig(n_layer=w["n_layer"], n_embd=w["n_embd"], n_head=w["n_head"],
                     block_size=w["block_size"], vocab_size=w["vocab_size"], dropout=0.0)


def training_step(model, opt, x, y):
    """step() → loss: forward, backward, optimizer step, zero_grad — the same four calls in
    either framework (tinyllm's API is PyTorch's)."""
    def step():
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.item())

    return step


def tinyllm_step(w, seed):
    """(step() → loss, model, optimizer) for tinyllm's GPT and AdamW."""
    from tinyllm.models import GPT

    cfg = gpt_config(w)
    model = GPT(cfg, generator=np.random.default_rng(seed))
    opt = model.configure_optimizers(WEIGHT_DECAY, LR, betas=BETAS)
    x, y = batch(w, seed)
    return training_step(model, opt, x, y), model, opt


def torch_step(w, seed):
    """The same model in PyTorch eager — nanoGPT's model.py (tests/torch_nanogpt.py, the
    reference the tests use) — loaded with tinyllm's initial weights."""
    import torch
    from torch_nanogpt import nanogpt_torch

    from tinyllm.models import GPT

    cfg = gpt_config(w)
    model = nanogpt_torch(cfg)
    reference = GPT(cfg, generator=np.random.default_rng(seed))
    model.load_state_dict({k: torch.from_numpy(v.copy())
                           for k, v in reference.state_dict().items()})
    del reference
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}], lr=LR, betas=BETAS)
    x, y = (torch.from_numpy(a) for a in batch(w, seed))
    return training_step(model, opt, x, y), model, opt


# ---- the tinyllm profile ----------------------------------------------------------------------


def profile_tinyllm(step, opt, steps):
    """Seconds per step by op family, optimizer, and the Python/graph overhead left over."""
    from tinyllm.engine import GraphObserver, observe

    class Timer(GraphObserver):
        def __init__(self):
            self.seconds, self.forward_ops, self.backward_ops = {}, 0, 0

        def add(self, fn, seconds):
            family = FAMILIES.get(fn.__name__, "other ops (elementwise, shape)")
            self.seconds[family] = self.seconds.get(family, 0.0) + seconds

        def on_forward(self, fn, ctx, out, seconds):
            self.forward_ops += 1
            self.add(fn, seconds)

        def on_backward(self, fn, ctx, seconds):
            self.backward_ops += 1
            self.add(fn, seconds)

    timer = Timer()
    inner_step = opt.step
    opt_seconds = [0.0]

    def timed_opt_step():
        t0 = time.perf_counter()
        inner_step()
        opt_seconds[0] += time.perf_counter() - t0

    opt.step = timed_opt_step
    try:
        with observe(timer):
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            wall = time.perf_counter() - t0
    finally:
        del opt.step
    per = {k: v / steps for k, v in timer.seconds.items()}
    per["optimizer (AdamW)"] = opt_seconds[0] / steps
    per["Python / graph overhead"] = wall / steps - sum(per.values())
    return dict(seconds=per, wall=wall / steps, forward_ops=timer.forward_ops // steps,
                backward_ops=timer.backward_ops // steps)


# ---- worker process: one framework, commands on stdin, JSON answers on stdout ------------------


def worker(framework, workload, threads, seed):
    from tinyllm.runtime import allocator

    allocator.configure()   # both workers: freed pages reused (tinyllm/runtime/allocator.py)
    if framework == "tinyllm":
        import numba

        from tinyllm.runtime.threads import set_blas_threads

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        set_blas_threads(threads)
        step, model, opt = tinyllm_step(WORKLOADS[workload], seed)
    else:
        import torch

        torch.set_num_threads(threads)
        step, model, opt = torch_step(WORKLOADS[workload], seed)
    rss_before = rss_now_kib()
    first_loss = step()          # first step: compiles / loads kernels, allocates state
    step()
    reply = lambda obj: print(json.dumps(obj), flush=True)  # noqa: E731
    reply(dict(ready=True, first_loss=first_loss, rss_before_kib=rss_before))
    for line in sys.stdin:
        cmd, *arg = line.split()
        if cmd == "time":
            times = []
            faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(int(arg[0])):
                t0 = time.perf_counter()
                step()
                times.append(time.perf_counter() - t0)
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
            reply(dict(seconds=times, faults_per_step=faults / int(arg[0])))
        elif cmd == "rss":
            reply(dict(peak_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
        elif cmd == "profile":
            reply(profile_tinyllm(step, opt, int(arg[0])))
        elif cmd == "quit":
            return


class Worker:
    def __init__(self, framework, workload, threads, seed, name=None, pythonpath=None):
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
        if pythonpath:           # another tinyllm (e.g. an older commit) ahead of this one
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath,
                                                              env.get("PYTHONPATH")]))
        self.name = name or framework
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", framework, "--workloads", workload,
             "--threads", str(threads), "--seed", str(seed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
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
    cfg = gpt_config(w)
    n_params = GPT(cfg).get_num_params()         # non-embedding: the position table left out
    flops_per_token = palm_flops_per_token(n_params, w["n_layer"], w["n_head"],
                                           w["n_embd"] // w["n_head"], w["block_size"])
    tokens = w["batch"] * w["block_size"]
    print(f"\n{name}: n_layer {w['n_layer']}, n_embd {w['n_embd']}, n_head {w['n_head']}, "
          f"block_size {w['block_size']}, batch {w['batch']}, vocab {w['vocab_size']} — "
          f"{n_params / 1e6:.2f} M params, {tokens} tokens/step, "
          f"{flops_per_token * tokens / 1e9:.2f} GFLOP/step (6N + 12·L·H·Q·T)")
    workers = [Worker("tinyllm", name, args.threads, args.seed)]
    if args.baseline:
        workers.append(Worker("tinyllm", name, args.threads, args.seed, name="baseline",
                              pythonpath=args.baseline))
    if have_torch:
        workers.append(Worker("torch", name, args.threads, args.seed))
    losses = ", ".join(f"{wk.name} {wk.hello['first_loss']:.6f}" for wk in workers)
    print(f"  first-step loss (same weights): {losses}")
    times = {wk.name: [] for wk in workers}
    faults = {wk.name: [] for wk in workers}
    peaks = [sgemm_peak(args.threads)]
    for r in range(args.repeats):
        for wk in (workers if r % 2 == 0 else workers[::-1]):
            # A pause between turns: OpenMP (PyTorch) and BLAS worker threads keep spinning for
            # a while after their last parallel region; the next worker should not pay for it.
            time.sleep(args.pause)
            answer = wk.ask(f"time {args.steps}")
            times[wk.name] += answer["seconds"]
            faults[wk.name].append(answer["faults_per_step"])
        peaks.append(sgemm_peak(args.threads))
    peak = max(peaks)
    rss = {wk.name: (wk.ask("rss")["peak_kib"], wk.hello["rss_before_kib"]) for wk in workers}
    profiles = {} if args.no_profile else {wk.name: wk.ask(f"profile {args.steps}")
                                           for wk in workers if wk.name != "torch"}
    for wk in workers:
        wk.close()

    print(f"  sgemm peak ({args.threads} threads, best 1024³ of the run): {peak / 1e9:.1f} GFLOP/s")
    head = (f"  {'':<8} {'s/step':>8} {'(min':>7} {'max)':>6} {'tok/s':>8} {'MFU':>6} "
            f"{'peak RSS':>9} {'RSS before':>11} {'faults/step':>11} {'ratio':>6}")
    print(head)
    med = {k: statistics.median(v) for k, v in times.items()}
    for wk in workers:
        t = times[wk.name]
        m = med[wk.name]
        mfu = flops_per_token * tokens / m / peak
        ratio = f"{m / med['torch']:6.2f}" if "torch" in med and wk.name != "torch" else ""
        peak_rss, before = rss[wk.name]
        print(f"  {wk.name:<8} {m:8.3f} {min(t):7.3f} {max(t):6.3f} {tokens / m:8.0f} "
              f"{mfu:6.1%} {peak_rss / 1024:7.0f}MB {before / 1024:9.0f}MB "
              f"{statistics.median(faults[wk.name]):11.0f} {ratio}")
    if "torch" in med:
        (ours, ours0), (theirs, theirs0) = rss["tinyllm"], rss["torch"]
        print(f"  ratio tinyllm / torch (median step time): {med['tinyllm'] / med['torch']:.2f}; "
              f"peak RSS ratio {ours / theirs:.2f}; step's own RSS (peak − before first step) "
              f"ratio {(ours - ours0) / max(1, theirs - theirs0):.2f}")
    for label, profile in profiles.items():
        ops = profile["forward_ops"] + profile["backward_ops"]
        print(f"  {label} profile ({args.steps} steps under a timing observer, "
              f"{profile['wall']:.3f} s/step; {profile['forward_ops']} forward ops + "
              f"{profile['backward_ops']} backward nodes per step):")
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

    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples",
                          "train_zero.py")
    cmd = ["mpirun", "-n", "4", sys.executable, script, "--steps", "1"]
    print("\nstart-up: mpirun -n 4 python examples/train_zero.py --steps 1, until 'step 0' "
          "is printed")
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
            print(f"  {label:<18} first step at {shown}; whole run {total:6.1f} s  "
                  f"(load average {os.getloadavg()[0]:.2f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=3, help="steps per framework per round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pause", type=float, default=0.5,
                        help="seconds of idle time before each worker's turn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-torch", action="store_true", help="tinyllm only")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--baseline", metavar="DIR",
                        help="also time the tinyllm package found in DIR (e.g. an older commit: "
                             "git archive REV tinyllm | tar -x -C DIR), as 'baseline'")
    parser.add_argument("--start-up", action="store_true",
                        help="also time the main job's start (mpirun -n 4), cold and warm")
    parser.add_argument("--worker", choices=["tinyllm", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.workloads[0], args.threads, args.seed)

    have_torch = False
    if not args.no_torch:
        try:
            import torch
            have_torch = True
            version = torch.__version__
        except ImportError:
            version = "not installed"
    import numba

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on "
          f"{os.cpu_count()} cores; {args.threads} threads each; NumPy {np.__version__}, numba "
          f"{numba.__version__}, PyTorch {version if not args.no_torch else 'skipped'}; "
          f"median of {args.repeats} rounds × {args.steps} steps")
    for name in args.workloads:
        run_workload(name, args, have_torch)
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.start_up:
        start_up(args)


if __name__ == "__main__":
    main()
