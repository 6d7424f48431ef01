"""The worker process of benchmarks/step.py: one framework, one workload, steps on request.

    python benchmarks/step_worker.py {tinyllm,torch} WORKLOAD THREADS SEED

It builds the GPT of WORKLOAD (R1, R2) in tinyllm or — the same weights, nanoGPT's layout — in
PyTorch eager (tests/torch_nanogpt.py), runs two warm-up steps, says `ready` with the first loss,
then answers one JSON line per command read from stdin: `time N` (N steps, their seconds and
minor page faults per step), `rss` (peak resident memory), `profile N` (tinyllm only: seconds per
op family from a GraphObserver), `quit`. benchmarks/step.py starts one per framework and
interleaves them.
"""

from __future__ import annotations

import json
import os
import resource
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
    "MatMul": "matmul",
    "Linear": "matmul",
    "ScaledDotProductAttention": "attention",
    "LayerNorm": "layer norm",
    "GELU": "GELU",
    "Softmax": "softmax / cross-entropy",
    "LogSoftmax": "softmax / cross-entropy",
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

    return GPTConfig(
        n_layer=w["n_layer"],
        n_embd=w["n_embd"],
        n_head=w["n_head"],
        block_size=w["block_size"],
        vocab_size=w["vocab_size"],
        dropout=0.0,
    )


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
    model.load_state_dict(
        {k: torch.from_numpy(v.copy()) for k, v in reference.state_dict().items()}
    )
    del reference
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": WEIGHT_DECAY},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=LR,
        betas=BETAS,
    )
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
    return dict(
        seconds=per,
        wall=wall / steps,
        forward_ops=timer.forward_ops // steps,
        backward_ops=timer.backward_ops // steps,
    )


# ---- worker process: one framework, commands on stdin, JSON answers on stdout ------------------


def worker(framework, workload, threads, seed):
    try:
        from tinyllm.runtime import allocator
        from tinyllm.runtime import threads as blas
    except ImportError:  # an older tinyllm (--baseline DIR): it tuned malloc when imported
        import tinyllm.allocator as allocator
        import tinyllm.threads as blas

    allocator.configure()  # both workers: freed pages reused (tinyllm/runtime/allocator.py)
    if framework == "tinyllm":
        import numba

        set_blas_threads = blas.set_blas_threads

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        set_blas_threads(threads)
        step, model, opt = tinyllm_step(WORKLOADS[workload], seed)
    else:
        import torch

        torch.set_num_threads(threads)
        step, model, opt = torch_step(WORKLOADS[workload], seed)
    rss_before = rss_now_kib()
    first_loss = step()  # first step: compiles / loads kernels, allocates state
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


if __name__ == "__main__":
    framework, workload, threads, seed = (
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        int(sys.argv[4]),
    )
    worker(framework, workload, threads, seed)
