"""int8 × int8 → int32 matmul: the numba kernel beside NumPy float32 (BLAS) and NumPy int32.

    python benchmarks/int8_matmul.py
    python benchmarks/int8_matmul.py --repeats 10
    python benchmarks/int8_matmul.py --quick --repeats 1      # the first shape only (seconds)

For Linear-like shapes X (M, K) · Wᵀ with W (N, K), times (best of --repeats) side by side in
one run, for:
- numba:    tinyllm.precision.int8_matmul (the numba kernel, rows in parallel, int32 accumulators)
- f32 BLAS: NumPy's float32 X @ W.T (an optimized BLAS: what the float model uses)
- int ref:  the NumPy reference — widen to int32, then NumPy's integer matmul (no BLAS)
- q-linear: the whole weight+activation quantized Linear (quantize X, int8 matmul, dequantize)
and the ratios. No int8 hardware instructions (VNNI, tensor cores) are used, so this measures
the arithmetic tinyllm writes out, not what int8 inference can reach on a GPU. All results are
checked to agree before they are timed.
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from tinyllm.precision import QuantizedLinear, int8_matmul
from tinyllm.precision.int8_matmul import int8_matmul_reference

SHAPES = [  # (M, K, N): tokens × in_features → out_features
    (1024, 256, 1024),
    (512, 768, 768),
    (512, 768, 3072),
    (2048, 512, 512),
]


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up (and, the first time, numba's compile or cache load)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="only the first shape")
    args = ap.parse_args()
    from tinyllm.runtime import allocator

    allocator.configure()  # a benchmark is a program: reuse freed pages (runtime/allocator.py)
    rng = np.random.default_rng(args.seed)
    print(f"numba threads: {numba.get_num_threads()}; best of {args.repeats}; times in ms")
    print(
        f"{'M×K·(N×K)ᵀ':>22}{'numba':>9}{'f32 BLAS':>10}{'int ref':>9}{'q-linear':>10}"
        f"{'numba/f32':>11}{'ref/numba':>11}{'GMAC/s numba':>14}"
    )
    for m, k, n in SHAPES[:1] if args.quick else SHAPES:
        xq = rng.integers(-128, 128, (m, k), dtype=np.int8)
        wq = rng.integers(-128, 128, (n, k), dtype=np.int8)
        xf, wf = xq.astype(np.float32), wq.astype(np.float32)
        zx, zw = np.zeros(m, np.int32), np.zeros(n, np.int32)
        got = int8_matmul(xq, wq)
        assert np.array_equal(got, int8_matmul_reference(xq, wq, zx, zw))
        assert np.array_equal(got, (xf @ wf.T).astype(np.int32))  # |sums| < 2^24: exact in f32
        ql = QuantizedLinear.from_float(
            rng.standard_normal((n, k)).astype(np.float32), mode="dynamic"
        )
        x = rng.standard_normal((m, k)).astype(np.float32)
        t_numba = best_time(lambda: int8_matmul(xq, wq), args.repeats)
        t_f32 = best_time(lambda: xf @ wf.T, args.repeats)
        t_ref = best_time(lambda: int8_matmul_reference(xq, wq, zx, zw), max(1, args.repeats // 2))
        t_ql = best_time(lambda: ql(x), args.repeats)
        print(
            f"{f'{m}×{k}·({n}×{k})ᵀ':>22}{t_numba * 1e3:>9.2f}{t_f32 * 1e3:>10.2f}"
            f"{t_ref * 1e3:>9.1f}{t_ql * 1e3:>10.2f}{t_numba / t_f32:>11.2f}"
            f"{t_ref / t_numba:>11.1f}{m * k * n / t_numba / 1e9:>14.1f}"
        )


if __name__ == "__main__":
    main()
