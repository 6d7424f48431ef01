"""What fp32, fp16, bf16 and int8 hold: the format table, and the course notes' claims, run.

    python examples/precision_table.py
    python examples/precision_table.py --n-params 7e9

1. The table of range and precision, computed from each format's exponent and fraction bits
   (tinyllm/precision/formats.py; tests check it against np.finfo and torch.finfo).
2. π stored in each format, and the rounding error.
3. bf16 beside fp32 and fp16: same range as fp32, less precision than fp16; rounding, not
   truncation; integers exact only up to 256.
4. Gradients in fp16: which underflow to 0 or overflow to inf, how a loss scale moves them into
   range, and how the dynamic GradScaler finds a scale that does not overflow.
5. Bytes per parameter: storing a model, and training it with Adam (fp32 vs mixed precision).
Each section ends with what it shows about a statement in the course notes, and where a note is
loose.
"""

from __future__ import annotations

import flags
import numpy as np

from tinyllm.accounting import FP32_ADAM, MIXED_PRECISION_ADAM
from tinyllm.precision import (
    BF16,
    FP16,
    FP32,
    INT8,
    GradScaler,
    dequantize,
    format_table,
    fp32_to_bf16_bits,
    qparams_from_minmax,
    quantize,
    round_to_bf16,
    round_to_fp16,
)


def _g(x) -> str:
    return "-" if x is None else f"{x:.4g}"


def print_table() -> None:
    print("1. Formats, computed from the bit layouts")
    print(
        f"{'format':<6}{'bits':>5}{'exp':>5}{'frac':>5}{'bytes/param':>12}{'largest':>12}"
        f"{'min normal':>12}{'min subnorm':>12}{'eps':>11}{'digits':>7}{'exact ints ≤':>19}"
    )
    for r in format_table():
        exp = "-" if r["exponent_bits"] is None else r["exponent_bits"]
        frac = "-" if r["fraction_bits"] is None else r["fraction_bits"]
        digits = "-" if r["decimal_digits"] is None else f"{r['decimal_digits']:.2f}"
        print(
            f"{r['name']:<6}{r['bits']:>5}{exp:>5}{frac:>5}{r['bytes']:>12}{r['max']:>12.5g}"
            f"{_g(r['smallest_normal']):>12}{_g(r['smallest_subnormal']):>12}{_g(r['eps']):>11}"
            f"{digits:>7}{r['max_exact_integer']:>19}"
        )
    print("   (int8: range [-128, 127]; 'exact ints' = largest integer n with all of 0..n exact)")
    print(
        "   Notes: the exponent/fraction split FP32 8/23, FP16 5/10, BF16 8/7 agrees. INT8 is\n"
        "   listed there as '7 fraction bits'; it is a two's-complement integer (a sign and 7\n"
        "   value bits, -128..127) with no fraction: the real-valued meaning comes from a\n"
        "   separate scale (and zero point) per tensor or channel.\n"
    )


def print_pi() -> None:
    pi = np.pi
    print("2. π = 3.14159265358979... stored in each format")
    s, z = qparams_from_minmax(-4.0, 4.0, symmetric=True)  # int8 covering [-4, 4]
    values = {
        "fp32": float(np.float32(pi)),
        "fp16": float(round_to_fp16(np.float64(pi))),
        "bf16": float(round_to_bf16(np.float32(pi))),
        "int8, scale 1": float(np.int8(round(pi))),
        f"int8, scale {float(s):.4f}": float(dequantize(quantize(np.float32(pi), s, z), s, z)),
    }
    for name, v in values.items():
        print(f"   {name:<20} {v:.10f}   error {abs(v - pi):.2e}")
    print(
        f"   bf16 bits of π: 0x{int(fp32_to_bf16_bits(np.float32(pi))):04X} (the upper half of "
        f"fp32's 0x{np.float32(pi).view(np.uint32):08X}, rounded)\n"
    )


def print_bf16_claims() -> None:
    print("3. bf16 beside fp32 and fp16")
    print(f"   largest:          fp32 {FP32.max:.4g}   bf16 {BF16.max:.4g}   fp16 {FP16.max:.4g}")
    print(
        f"   smallest normal:  fp32 {FP32.smallest_normal:.4g}   bf16 {BF16.smallest_normal:.4g}"
        f"   fp16 {FP16.smallest_normal:.4g}"
    )
    print(
        f"   smallest subnorm: fp32 {FP32.smallest_subnormal:.4g}    bf16 "
        f"{BF16.smallest_subnormal:.4g}    fp16 {FP16.smallest_subnormal:.4g}"
    )
    x = np.float32(1.001)
    print(
        f"   1.001 stored:     fp32 {float(x):.7f}   fp16 {float(round_to_fp16(x)):.7f}   "
        f"bf16 {float(round_to_bf16(x)):.7f}"
    )
    # Rounding vs truncating the dropped 16 bits, on many random values in [1, 2).
    rng = np.random.default_rng(0)
    v = rng.uniform(1, 2, 100_000).astype(np.float32)
    truncated = (v.view(np.uint32) & 0xFFFF0000).view(np.float32)
    rounded = round_to_bf16(v)
    print(
        f"   mean error over U[1,2): rounding {np.mean(rounded - v.astype(np.float64)):+.2e}, "
        f"truncation {np.mean(truncated - v.astype(np.float64)):+.2e}"
    )
    counter = {"fp32": np.float32(0), "fp16": np.float32(0), "bf16": np.float32(0)}
    rounders = {"fp32": np.float32, "fp16": round_to_fp16, "bf16": round_to_bf16}
    for _ in range(3000):  # add 1 three thousand times, rounding after each add
        for k in counter:
            counter[k] = np.float32(rounders[k](np.float32(counter[k] + 1)))
    print(
        "   counting 3000 ones, rounding each sum: "
        + ", ".join(f"{k} {float(c):.0f}" for k, c in counter.items())
    )
    print(
        "   Notes: 'bf16 keeps the dynamic range of fp32' — true for the largest value and the\n"
        "   smallest normal (same 8 exponent bits); subnormals reach down only to 9.2e-41, not\n"
        "   1.4e-45. 'Accuracy similar to 32 bits' is loose: bf16 has 8 significant bits\n"
        "   (eps 2^-7, ~2.4 decimal digits) against fp32's 24 (~7.2 digits) — fewer even than\n"
        "   fp16 (11 bits); 1.001 becomes 1.0. 'A truncated fp32' describes the bit layout,\n"
        "   but conversions round to nearest even (truncation is biased low, see above).\n"
        "   'Not suited to integer calculations': integers are exact only up to 256, so a bf16\n"
        "   counter stalls there (fp16 at 2048). 'Speeds up calculations' is a claim about GPU\n"
        "   hardware; tinyllm emulates bf16 in NumPy, which is slower, so it cannot show it.\n"
    )


def print_fp16_gradients() -> None:
    print("4. Gradients in fp16, and loss scaling")
    S = 2.0**16
    print(f"   {'gradient':>10}{'fp16':>12}{'bf16':>12}{'fp16 of g·S, /S':>18}   (S = 2^16)")
    for g in (1e-9, 3e-8, 1e-6, 1e-4, 1.0, 2.0):
        scaled = float(round_to_fp16(np.float32(g * S))) / S
        print(
            f"   {g:>10.0e}{float(round_to_fp16(np.float32(g))):>12.4g}"
            f"{float(round_to_bf16(np.float32(g))):>12.4g}{scaled:>18.4g}"
        )
    print(
        f"   fp16 underflows to 0 below {FP16.smallest_subnormal / 2:.3g} (half the smallest "
        f"subnormal) and keeps\n   full precision only above {FP16.smallest_normal:.3g}; it "
        f"overflows to inf above {FP16.max:.0f}. Scaling by S lifts small\n   gradients into "
        f"range but pushes gradients above {FP16.max / S:.4g} to inf."
    )
    # Dynamic scaling finds the largest safe power of two: a stream of gradients whose
    # largest magnitude is 10, "computed in fp16" as round_to_fp16(S·g).
    rng = np.random.default_rng(1)
    scaler = GradScaler()  # 2^16, ×0.5 on overflow, ×2 after 2000 clean steps

    class Param:
        grad = None

    class NoOptimizer:
        param_groups = [{"params": [Param()]}]
        steps = 0

        def step(self):
            NoOptimizer.steps += 1

    opt = NoOptimizer()
    history = []
    for _ in range(8):
        g = rng.standard_normal(1000).astype(np.float32)
        g *= np.float32(10.0 / np.abs(g).max())
        opt.param_groups[0]["params"][0].grad = round_to_fp16(g * np.float32(scaler.get_scale()))
        history.append(scaler.get_scale())
        scaler.step(opt)
        scaler.update()
    print(
        "   GradScaler on gradients up to 10: scale per step "
        + " → ".join(f"{s:.0f}" for s in history)
        + f"\n   ({8 - opt.steps} steps skipped while the scale backed off; 10·4096 < 65504)."
    )
    print(
        "   Notes: they mention fp16's narrow range only by contrast with bf16; in training it\n"
        "   is why fp16 needs loss scaling and bf16 (fp32's exponent range) does not.\n"
    )


def print_bytes(n_params: float) -> None:
    print(f"5. Bytes for {n_params / 1e9:g}B parameters")
    for name, b in (("fp32", 4), ("fp16", 2), ("bf16", 2), ("int8", INT8.bytes)):
        print(f"   store weights in {name}: {b} B/param = {n_params * b / 1e9:.1f} GB")
    d = 4096
    print(
        f"   (int8 per-channel adds one fp32 scale per row: 4/{d} bytes/param for a {d}-wide "
        f"matrix)"
    )
    for name, p in (("fp32 Adam", FP32_ADAM), ("mixed-precision Adam", MIXED_PRECISION_ADAM)):
        total = p.param + p.grad + p.optim
        print(
            f"   train with {name:<21}: {p.param} + {p.grad} + {p.optim} = {total} bytes/param "
            f"(weights + gradients + optimizer states)"
        )
    print(
        "   Notes: '16-bit halves the memory' holds for storing weights. 'Quantization gives\n"
        "   the same savings for training' is loose: mixed-precision Adam keeps fp32 master\n"
        "   weights, momentum and variance (K = 12 bytes) beside fp16/bf16 weights and\n"
        "   gradients, 16 bytes/param — the same as all-fp32 Adam. The savings in training\n"
        "   come from activations in 16 bits and from sharding the states (ZeRO).\n"
    )


def build_parser():
    p = flags.parser(__doc__)
    p.add_argument(
        "--n-params",
        type=flags.finite_positive_float,
        default=1e9,
        help="model size for the bytes-per-parameter section",
    )
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    print_table()
    print_pi()
    print_bf16_claims()
    print_fp16_gradients()
    print_bytes(args.n_params)


if __name__ == "__main__":
    main()
