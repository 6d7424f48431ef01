"""Generation speed with and without the KV cache, side by side.

    python benchmarks/generate.py [--n-layer 4] [--n-embd 256] [--n-head 4] [--block-size 512]
                                  [--batch 1] [--new 64 256 0] [--threads 1] [--repeats 1]

Without a cache, every new token re-runs the model over the whole sequence so far: token t
costs a forward pass over t positions, so n tokens cost O(n²) position-passes (and O(n³)
attention work). With the cache, the prompt is run once ("prefill") and every later token
feeds one position, attending to the cached keys and values: O(n) position-passes.

For each output length (`--new`; 0 means "fill the context": block_size − 1 tokens after a
one-token prompt) the same greedy generation runs both ways from the same random model; the
script checks that the tokens are identical and prints tokens/s for each and the speedup.
Both runs of a length follow each other in one process, so a change in the machine's load
hits both; the load average is printed at the start and the end. `--threads` sets the numba
and BLAS thread counts (before NumPy loads): on a shared 2-core machine, two BLAS threads
that wait for each other make the many small matmuls of generation an order of magnitude
slower, so the default is one.
"""

from __future__ import annotations

import argparse
import os
import time


def timed_generate(model, prompt, n: int, use_cache: bool):
    t0 = time.perf_counter()
    out = model.generate(prompt, n, use_cache=use_cache)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=256)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--block-size", type=int, default=512)
    ap.add_argument("--vocab-size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument(
        "--new",
        type=int,
        nargs="+",
        default=[64, 256, 0],
        help="numbers of new tokens; 0 = block_size - 1",
    )
    ap.add_argument("--threads", type=int, default=1, help="numba and BLAS threads")
    ap.add_argument("--repeats", type=int, default=1, help="best of this many runs")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # read when NumPy / numba load
    from tinyllm.runtime import allocator

    allocator.configure()  # a benchmark is a program: reuse freed pages (runtime/allocator.py)
    import numpy as np

    from tinyllm.models import GPT, GPTConfig

    cfg = GPTConfig(
        vocab_size=args.vocab_size,
        block_size=args.block_size,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
        dropout=0.0,
    )
    model = GPT(cfg, generator=np.random.default_rng(args.seed)).eval()
    prompt = np.random.default_rng(args.seed).integers(0, cfg.vocab_size, (args.batch, 1))
    model.generate(prompt, 4, use_cache=True)  # compile / load the numba kernels
    model.generate(prompt, 4, use_cache=False)
    print(
        f"GPT n_layer={cfg.n_layer} n_embd={cfg.n_embd} n_head={cfg.n_head} "
        f"block_size={cfg.block_size} vocab={cfg.vocab_size} "
        f"({model.get_num_params(False):,} parameters), float32, batch {args.batch}, "
        f"1-token prompt, greedy, {args.threads} thread(s); "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'new tokens':>10} {'no cache tok/s':>15} {'KV cache tok/s':>15} {'speedup':>8} "
        f"{'same tokens':>12}"
    )
    for n in args.new:
        n = cfg.block_size - 1 if n == 0 else n
        best = {True: float("inf"), False: float("inf")}
        outs = {}
        for _ in range(args.repeats):
            for use_cache in (False, True):
                outs[use_cache], sec = timed_generate(model, prompt, n, use_cache)
                best[use_cache] = min(best[use_cache], sec)
        tok = args.batch * n
        same = np.array_equal(outs[True], outs[False])
        print(
            f"{n:10d} {tok / best[False]:15.1f} {tok / best[True]:15.1f} "
            f"{best[False] / best[True]:7.1f}x {'yes' if same else 'NO':>12}",
            flush=True,
        )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
