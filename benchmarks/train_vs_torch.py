"""Train the same GPT in tinyllm and in PyTorch, step by step, and compare the loss curves.

    python benchmarks/train_vs_torch.py [--steps 50] [--batch-size 8] [--lr 1e-3] [--seed 0]
                                        [--threads 1] [--report PATH]

Both runs start from the same weights — PyTorch's model is nanoGPT's layout
(tests/torch_nanogpt.py) loaded with tinyllm's initial `state_dict()`, the names match one to
one — and see the same batches: byte-level tokens (0…255) of the Python standard library's own
source files, windows at offsets drawn from one seeded generator. The optimizer is AdamW with
nanoGPT's grouping (weight decay on matrices only) and the same hyper-parameters; float32,
dropout 0.

If both frameworks implement the same mathematics, the curves agree to float32 rounding, which
grows slowly as training amplifies it: ~1e-4 over the first 50 steps is the target. The two
step loops are interleaved (tinyllm step i, then PyTorch step i), so both see the same machine
load, and the median step times are printed side by side. `--threads` sets the numba, BLAS
and torch thread counts (the first two before NumPy loads).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

# tests/torch_nanogpt.py: nanoGPT in PyTorch, the same reference the tests use
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))


def stdlib_bytes(limit: int = 2_000_000):
    """The first `limit` bytes of the standard library's .py files, in sorted path order."""
    import numpy as np

    root = os.path.dirname(os.__file__)
    chunks, total = [], 0
    for name in sorted(os.listdir(root)):
        if name.endswith(".py"):
            with open(os.path.join(root, name), "rb") as f:
                chunks.append(f.read())
            total += len(chunks[-1])
            if total >= limit:
                break
    return np.frombuffer(b"".join(chunks)[:limit], dtype=np.uint8).astype(np.int64)


def batches(data, steps: int, batch: int, block: int, seed: int):
    """`steps` (x, y) pairs of (batch, block) windows; y is x shifted by one token."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for _ in range(steps):
        off = rng.integers(0, len(data) - block - 1, batch)
        x = np.stack([data[o : o + block] for o in off])
        y = np.stack([data[o + 1 : o + block + 1] for o in off])
        yield x, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--n-embd", type=int, default=64)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--block-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="numba and torch threads each")
    ap.add_argument("--report", help="write the curves and timings as JSON here")
    args = ap.parse_args()

    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # read when NumPy / numba load
    from tinyllm.runtime import allocator

    allocator.configure()  # a benchmark is a program: reuse freed pages (runtime/allocator.py)
    import numpy as np
    import torch
    from torch_nanogpt import nanogpt_torch

    from tinyllm.models import GPT, GPTConfig
    from tinyllm.runtime.fileio import atomic_write_bytes

    torch.set_num_threads(args.threads)
    betas = (0.9, 0.95)
    cfg = GPTConfig(
        vocab_size=256,
        block_size=args.block_size,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
        dropout=0.0,
    )
    ours = GPT(cfg, generator=np.random.default_rng(args.seed))
    ref = nanogpt_torch(cfg)
    ref.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()}, strict=True)
    opt = ours.configure_optimizers(args.weight_decay, args.lr, betas=betas)
    decay = [p for p in ref.parameters() if p.dim() >= 2]
    no_decay = [p for p in ref.parameters() if p.dim() < 2]
    topt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": args.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=args.lr,
        betas=betas,
        eps=1e-8,
    )

    data = stdlib_bytes()
    print(
        f"GPT n_layer={cfg.n_layer} n_embd={cfg.n_embd} n_head={cfg.n_head} "
        f"block={cfg.block_size} vocab=256 ({ours.get_num_params(False):,} parameters), "
        f"batch {args.batch_size}, AdamW lr={args.lr} betas={betas} wd={args.weight_decay}, "
        f"float32, {args.threads} thread(s) each; load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'step':>5} {'tinyllm':>10} {'pytorch':>10} {'|diff|':>9}")
    losses = {"tinyllm": [], "pytorch": []}
    times = {"tinyllm": [], "pytorch": []}
    for step, (x, y) in enumerate(
        batches(data, args.steps, args.batch_size, cfg.block_size, args.seed)
    ):
        t0 = time.perf_counter()
        _, loss = ours(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        t1 = time.perf_counter()
        _, tloss = ref(torch.from_numpy(x), torch.from_numpy(y))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        t2 = time.perf_counter()
        losses["tinyllm"].append(loss.item())
        losses["pytorch"].append(tloss.item())
        times["tinyllm"].append(t1 - t0)
        times["pytorch"].append(t2 - t1)
        diff = abs(losses["tinyllm"][-1] - losses["pytorch"][-1])
        print(
            f"{step:5d} {losses['tinyllm'][-1]:10.6f} {losses['pytorch'][-1]:10.6f} {diff:9.2e}",
            flush=True,
        )

    diffs = np.abs(np.array(losses["tinyllm"]) - np.array(losses["pytorch"]))
    w = max(
        float(np.abs(p.data - ref.get_parameter(name).detach().numpy()).max())
        for name, p in ours.named_parameters()
    )
    med = {k: statistics.median(v[1:] or v) for k, v in times.items()}  # step 0 compiles
    print(
        f"max |loss difference| over {args.steps} steps: {diffs.max():.2e} "
        f"(at step {int(diffs.argmax())}); max |weight difference| at the end: "
        f"{w:.2e}"
    )
    print(
        f"median step time: tinyllm {med['tinyllm'] * 1e3:.1f} ms, PyTorch "
        f"{med['pytorch'] * 1e3:.1f} ms, ratio {med['tinyllm'] / med['pytorch']:.2f}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    if args.report:
        report = {
            "config": cfg.to_dict(),
            "args": vars(args),
            "losses": losses,
            "max_abs_loss_diff": float(diffs.max()),
            "max_abs_weight_diff": w,
            "median_step_seconds": med,
        }
        atomic_write_bytes(args.report, json.dumps(report, indent=1).encode())


if __name__ == "__main__":
    main()
