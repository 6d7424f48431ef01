"""How much do the numba kernels buy over their NumPy references (and how far from PyTorch)?

    python benchmarks/kernels.py [--quick] [--repeats 7] [--threads 2] [--skip-startup]

For each kernel of tinyllm/kernels and two or three sizes typical of a small GPT (rows = batch ×
sequence positions, 1024 … 8192; width = n_embd, 4·n_embd, a sequence length or a vocabulary,
256 … 8192), every implementation runs once to warm up (numba compiles or loads its cache;
PyTorch allocates) and then `--repeats` times; the table shows the median wall time of

    numba   what the ops call: tinyllm.kernels' dispatcher with the numba backend
            (the *_numba kernel, with the dispatcher's choice of threads for that size)
    numpy   the reference written beside it             (tinyllm/kernels/*_reference)
    torch   PyTorch's CPU op, if PyTorch is installed   (forward op; backward via autograd.grad)

and the ratios numpy/numba (> 1: the kernel is faster) and torch/numba (< 1: PyTorch is
faster), all measured in this run, on float32, with the same number of threads for numba and
PyTorch. The PyTorch backward timings include autograd's small bookkeeping; the fused
cross-entropy is compared with F.cross_entropy (log-softmax + NLL).

The last lines measure the compile cost: `import tinyllm; tinyllm.kernels.warmup()` in a fresh
process with an empty numba cache (cold: every kernel compiles) and again with the cache it
left behind (warm: every kernel loads from disk).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from tinyllm import kernels as K
from tinyllm.kernels import cross_entropy as ce
from tinyllm.kernels import embedding as emb
from tinyllm.kernels import gelu
from tinyllm.kernels import layernorm as ln
from tinyllm.kernels import softmax as sm

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # PyTorch is optional: the torch column then shows "-"
    torch = None


def median_seconds(fn, repeats):
    fn()  # warm-up: compile / load, first allocation
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def torch_grad(out_fn, inputs, grad):
    """A zero-argument function timing only PyTorch's backward of out_fn(*inputs)."""
    out = out_fn(*inputs)
    g = torch.from_numpy(grad) if grad is not None else None
    wrt = [t for t in inputs if t.requires_grad]
    return lambda: torch.autograd.grad(out, wrt, g, retain_graph=True)


def T(a, requires_grad=False):
    return torch.from_numpy(a).requires_grad_(requires_grad)


# ---- the cases: (kernel, size label, numba fn, numpy fn, torch fn or None) -------------------


def cases(quick):
    rng = np.random.default_rng(0)
    f32 = np.float32

    def randn(*shape):
        return rng.standard_normal(shape, dtype=f32)

    # rows × width for softmax (width = a sequence length), cross-entropy (width = vocabulary),
    # layer norm (width = n_embd), gelu (width = 4·n_embd), embedding (rows, vocab, n_embd)
    soft = [(1024, 256), (4096, 1024)] + ([] if quick else [(8192, 1024)])
    vocab = [(1024, 512), (4096, 2048)] + ([] if quick else [(8192, 8192)])
    norm = [(1024, 256), (4096, 512)] + ([] if quick else [(8192, 1024)])
    act = [(1024, 1024), (4096, 2048)] + ([] if quick else [(8192, 4096)])
    emb_sizes = [(1024, 512, 256), (4096, 2048, 512)] + ([] if quick else [(8192, 8192, 768)])

    for n, d in soft:
        x, g = randn(n, d), randn(n, d)
        y = sm.softmax_forward_reference(x)
        lp = sm.log_softmax_forward_reference(x)
        label = f"{n}x{d}"
        yield (
            "softmax fwd",
            label,
            lambda x=x: K.softmax_forward(x),
            lambda x=x: sm.softmax_forward_reference(x),
            torch and (lambda t=T(x): torch.softmax(t, -1)),
        )
        yield (
            "softmax bwd",
            label,
            lambda y=y, g=g: K.softmax_backward(y, g),
            lambda y=y, g=g: sm.softmax_backward_reference(y, g),
            torch and torch_grad(lambda t: torch.softmax(t, -1), [T(x, True)], g),
        )
        yield (
            "log_softmax fwd",
            label,
            lambda x=x: K.log_softmax_forward(x),
            lambda x=x: sm.log_softmax_forward_reference(x),
            torch and (lambda t=T(x): F.log_softmax(t, -1)),
        )
        yield (
            "log_softmax bwd",
            label,
            lambda y=lp, g=g: K.log_softmax_backward(y, g),
            lambda y=lp, g=g: sm.log_softmax_backward_reference(y, g),
            torch and torch_grad(lambda t: F.log_softmax(t, -1), [T(x, True)], g),
        )

    for n, v in vocab:
        z = randn(n, v)
        t = rng.integers(0, v, n)
        t[::10] = -100  # some ignored positions (padding)
        _, lse = ce.cross_entropy_forward_reference(z, t, -100)
        rows = np.full(n, 1.0 / n, dtype=f32)
        label = f"{n}x{v}"
        yield (
            "cross_entropy fwd",
            label,
            lambda z=z, t=t: K.cross_entropy_forward(z, t, -100),
            lambda z=z, t=t: ce.cross_entropy_forward_reference(z, t, -100),
            torch and (lambda z=T(z), t=torch.from_numpy(t): F.cross_entropy(z, t)),
        )
        yield (
            "cross_entropy bwd",
            label,
            lambda z=z, l=lse, t=t, r=rows: K.cross_entropy_backward(z, l, t, r, -100),
            lambda z=z, l=lse, t=t, r=rows: ce.cross_entropy_backward_reference(z, l, t, r, -100),
            torch
            and torch_grad(
                lambda z, t=torch.from_numpy(t): F.cross_entropy(z, t), [T(z, True)], None
            ),
        )

    for n, d in norm:
        x, g = randn(n, d), randn(n, d)
        w, b = randn(d), randn(d)
        _, mu, rs = ln.layer_norm_forward_reference(x, w, b, 1e-5)
        label = f"{n}x{d}"
        yield (
            "layer_norm fwd",
            label,
            lambda x=x, w=w, b=b: K.layer_norm_forward(x, w, b, 1e-5),
            lambda x=x, w=w, b=b: ln.layer_norm_forward_reference(x, w, b, 1e-5),
            torch and (lambda x=T(x), w=T(w), b=T(b): F.layer_norm(x, (d,), w, b)),
        )
        yield (
            "layer_norm bwd",
            label,
            lambda x=x, w=w, m=mu, r=rs, g=g: K.layer_norm_backward(x, w, m, r, g),
            lambda x=x, w=w, m=mu, r=rs, g=g: ln.layer_norm_backward_reference(x, w, m, r, g),
            torch
            and torch_grad(
                lambda x, w, b, d=d: F.layer_norm(x, (d,), w, b),
                [T(x, True), T(w, True), T(b, True)],
                g,
            ),
        )

    for n, d in act:
        x, g = randn(n, d), randn(n, d)
        label = f"{n}x{d}"
        yield (
            "gelu fwd",
            label,
            lambda x=x: K.gelu_forward(x, "none"),
            lambda x=x: gelu.gelu_forward_reference(x, "none"),
            torch and (lambda x=T(x): F.gelu(x)),
        )
        yield (
            "gelu bwd",
            label,
            lambda x=x, g=g: K.gelu_backward(x, g, "none"),
            lambda x=x, g=g: gelu.gelu_backward_reference(x, g, "none"),
            torch and torch_grad(F.gelu, [T(x, True)], g),
        )
        yield (
            "gelu_tanh fwd",
            label,
            lambda x=x: K.gelu_forward(x, "tanh"),
            lambda x=x: gelu.gelu_forward_reference(x, "tanh"),
            torch and (lambda x=T(x): F.gelu(x, approximate="tanh")),
        )

    for n, v, d in emb_sizes:
        ids = rng.integers(0, v, n)
        g = randn(n, d)
        label = f"{n} ids, {v}x{d}"
        yield (
            "embedding bwd",
            label,
            lambda i=ids, g=g, v=v: K.embedding_backward(i, g, v),
            lambda i=ids, g=g, v=v: emb.embedding_backward_reference(i, g, v),
            torch
            and torch_grad(
                lambda w, i=torch.from_numpy(ids): F.embedding(i, w), [T(randn(v, d), True)], g
            ),
        )


# ---- cold and warm start ----------------------------------------------------------------------

STARTUP = (
    "import time; t0 = time.perf_counter(); import tinyllm, tinyllm.kernels; "
    "t1 = time.perf_counter(); tinyllm.kernels.warmup(); t2 = time.perf_counter(); "
    "print(t1 - t0, t2 - t1)"
)


def startup_seconds(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    env.pop("TINYLLM_KERNELS", None)
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", STARTUP], env=env, check=True, capture_output=True, text=True
    ).stdout.split()
    return float(out[0]), float(out[1]), time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the two smaller sizes")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="threads for numba and PyTorch")
    parser.add_argument(
        "--skip-startup",
        action="store_true",
        help="leave out the cold/warm start-up measurement (~1 min)",
    )
    args = parser.parse_args()
    from tinyllm.runtime import allocator

    allocator.configure()  # a benchmark is a program: reuse freed pages (runtime/allocator.py)

    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    if torch is not None:
        torch.set_num_threads(args.threads)
    print(
        f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
        f"(other processes distort every column)"
    )
    print(
        f"float32, median of {args.repeats}; numba {numba.__version__} with "
        f"{numba.get_num_threads()} threads; "
        f"NumPy {np.__version__}; PyTorch {torch.__version__ if torch else 'not installed'}"
        f"{f' with {torch.get_num_threads()} threads' if torch else ''}"
    )
    head = (
        f"{'kernel':<18} {'size':<18} {'numba ms':>9} {'numpy ms':>9} {'torch ms':>9} "
        f"{'numpy/numba':>12} {'torch/numba':>12}"
    )
    print(head)
    print("-" * len(head))
    with K.use_backend("numba"):
        run_cases(args)
    print(
        f"(numba threading layer: {numba.threading_layer()}; load average after: "
        f"{os.getloadavg()[0]:.2f})"
    )
    if not args.skip_startup:
        startup_table()


def run_cases(args):
    for name, label, fast, ref, th in cases(args.quick):
        t_fast = median_seconds(fast, args.repeats)
        t_ref = median_seconds(ref, args.repeats)
        t_th = median_seconds(th, args.repeats) if th else None
        th_ms = f"{t_th * 1e3:9.2f}" if t_th else f"{'-':>9}"
        th_ratio = f"{t_th / t_fast:12.2f}" if t_th else f"{'-':>12}"
        print(
            f"{name:<18} {label:<18} {t_fast * 1e3:9.2f} {t_ref * 1e3:9.2f} {th_ms} "
            f"{t_ref / t_fast:12.2f} {th_ratio}",
            flush=True,
        )


def startup_table():
    print()
    print(
        "start-up: `import tinyllm` + `tinyllm.kernels.warmup()` in a fresh process "
        "(float32 kernels)"
    )
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        for run in ("cold (empty numba cache)", "warm (cache from the cold run)"):
            imp, warm, total = startup_seconds(cache)
            print(
                f"  {run:<32} import {imp:6.2f} s   warmup {warm:6.2f} s   "
                f"process total {total:6.2f} s"
            )


if __name__ == "__main__":
    main()
