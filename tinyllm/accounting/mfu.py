"""Model FLOPs utilization (MFU): how much of the machine's peak the model's math uses.

PaLM (Chowdhery et al. 2022, appendix B) defines it as

    MFU = (model FLOPs per second actually achieved) / (peak FLOP/s of the hardware)

where the model FLOPs per token are fixed by the architecture — 6N + 12·L·H·Q·T for training
(flops.palm_flops_per_token) — so MFU does not reward an implementation for redoing work
(activation recomputation raises *hardware* FLOPs utilization, not MFU). Achieved model FLOP/s
= tokens per second × model FLOPs per token.

The peak is either measured on this machine — `measure_matmul_peak`, a few large square
matrix products at the model's dtype, best of several runs — or taken from a GPU profile (e.g.
sim's cost model) when the time is simulated. A BLAS matmul is the fastest thing the CPU does,
so it is the honest ceiling for a NumPy framework; vendor datasheet peaks are higher and make
MFU look worse.

The same product can be run two ways, and the peak is the better of the two: one NumPy call,
which OpenBLAS splits over its own threads and then waits for all of them, and the way
tinyllm's linear layers run it (tinyllm.kernels.matmul: row blocks, each a single-threaded BLAS
call, taken by help-first threads, tinyllm/runtime/threads.py). On a busy shared machine the first
can be several times slower than the second — one descheduled BLAS thread stalls the whole call —
and a peak measured only that way was below what training then achieved (MFU printed above 100%).
Even so, a peak is one moment's measurement: if the machine gets less busy later, a step can beat
it, and an MFU above 100% says the peak was measured under more load, not that the model exceeded
the hardware.
"""

from __future__ import annotations

import time

import numpy as np

from tinyllm import kernels


def mfu(model_flops_per_second: float, peak_flops_per_second: float) -> float:
    """Model FLOPs utilization, a fraction in [0, 1] for a real machine."""
    if not peak_flops_per_second > 0:
        raise ValueError(f"mfu: peak FLOP/s must be positive, got {peak_flops_per_second!r}")
    if model_flops_per_second < 0:
        raise ValueError(f"mfu: model FLOP/s must be ≥ 0, got {model_flops_per_second!r}")
    return model_flops_per_second / peak_flops_per_second


def model_flops_per_second(tokens_per_second: float, flops_per_token: float) -> float:
    """Achieved model FLOP/s: tokens/s × model FLOPs per token (e.g. palm_flops_per_token)."""
    return tokens_per_second * flops_per_token


def measure_matmul_peak(dtype=np.float32, n: int = 1024, repeats: int = 5, seed: int = 0) -> float:
    """This machine's matmul peak in FLOP/s: best of `repeats` products of two n×n matrices,
    each run both as one NumPy (BLAS) call and as tinyllm.kernels.matmul (see the module
    docstring); the best of all of them.

    One product costs 2n³ FLOPs. One warm-up product of each kind runs first (threads start,
    pages are touched). The best run, not the mean, estimates the peak: noise only ever slows
    a run down. The cost is 2·(repeats + 1) products: at the defaults, 12 of 2.1 GFLOP each.
    """

    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"measure_matmul_peak: dtype must be floating point, got {dtype}")
    if n < 1 or repeats < 1:
        raise ValueError(
            f"measure_matmul_peak: need n ≥ 1 and repeats ≥ 1, got n={n}, repeats={repeats}"
        )
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    out = np.empty((n, n), dtype=dtype)
    ways = (
        lambda: np.matmul(a, b, out=out),  # one BLAS call on BLAS's threads
        lambda: kernels.matmul(a, b),
    )  # row blocks over help-first threads
    best = float("inf")
    for run in ways:
        run()  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / max(best, 1e-12)
