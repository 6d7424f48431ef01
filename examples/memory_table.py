"""Model-state memory per device under DDP and ZeRO: the ZeRO paper's Table 1, recomputed.

    python examples/memory_table.py                      # Table 1, rule of thumb, comm volumes
    python examples/memory_table.py --psi 1.5e9 --devices 8 --precision fp32

For each model size Ψ and data-parallel degree N, the formulas of tinyllm/accounting/memory.py
give the bytes per device at ZeRO stages 1, 2 and 3 (mixed-precision Adam, K = 12). Beside each
number: the value printed in the paper (Rajbhandari et al. 2019, Table 1), in GB = 10⁹ bytes.
"""

from __future__ import annotations

import flags

from tinyllm.accounting import (
    FP32_ADAM,
    GB,
    MIXED_PRECISION_ADAM,
    ZERO_TABLE1,
    notes_rule_of_thumb,
    zero_communication_elements,
    zero_memory,
    zero_table,
)
from tinyllm.accounting.memory import STAGE_NAMES

PRECISIONS = {"mixed": MIXED_PRECISION_ADAM, "fp32": FP32_ADAM}


def fmt(gb: float) -> str:
    """Enough digits to see how the paper rounded: 4187.5, 41.25, 1.875, 0.1172."""
    if float(gb).is_integer():
        return f"{gb:.0f}"
    return f"{gb:.1f}" if gb >= 1000 else f"{gb:.4g}"


def print_table1() -> None:
    computed = zero_table()
    print("ZeRO Table 1 — model-state memory per device, GB (10^9 bytes), K = 12")
    print("each cell: computed [paper]\n")
    for psi, rows in ZERO_TABLE1.items():
        label = f"{psi / 1e9:g}B" if psi < 1e12 else f"{psi / 1e12:g}T"
        print(f"Ψ = {label} parameters")
        print(f"{'N':>6}  " + "".join(f"{STAGE_NAMES[s]:>22}" for s in (1, 2, 3)))
        for n, printed in rows.items():
            cells = "".join(
                f"{fmt(v) + ' [' + p + ']':>22}" for v, p in zip(computed[psi][n], printed)
            )
            print(f"{n:>6}  {cells}")
        print()


def print_rule_of_thumb(n_params: float) -> None:
    r = notes_rule_of_thumb(n_params)
    print(f"Course notes' rule of thumb, fp32 training of {n_params / 1e9:g}B parameters:")
    for key in ("weights", "gradients", "adam", "activations"):
        print(f"  {key:<12} {r[key] / n_params:>4.0f} bytes/param  {r[key] / GB:>7.1f} GB")
    extra = r["total"] - r["weights"]
    print(
        f"  {'total':<12} {r['total'] / n_params:>4.0f} bytes/param  {r['total'] / GB:>7.1f} GB"
        f"   (= 4 bytes of weights + {extra / n_params:.0f} extra bytes per parameter)"
    )
    ddp = zero_memory(n_params, 1, 0, FP32_ADAM).total
    print(
        f"  of which model states (DDP, fp32 Adam 4+4+8): {ddp / GB:.1f} GB; the 8-byte "
        f"activation term is the notes' high-end allowance, not a formula.\n"
    )


def print_one(psi: float, devices: int, precision_name: str) -> None:
    precision = PRECISIONS[precision_name]
    print(
        f"Ψ = {psi:,.0f} parameters on N = {devices} devices, {precision_name} Adam "
        f"({precision.param:g} + {precision.grad:g} + {precision.optim:g} bytes/param)"
    )
    print(
        f"{'stage':<12}{'params GB':>12}{'grads GB':>12}{'optim GB':>12}{'total GB':>12}"
        f"{'comm elems/step':>18}"
    )
    for stage in (0, 1, 2, 3):
        m = zero_memory(psi, devices, stage, precision)
        comm = zero_communication_elements(psi, devices, stage)
        print(
            f"{stage} {STAGE_NAMES[stage]:<10}{m.parameters / GB:>12.3f}{m.gradients / GB:>12.3f}"
            f"{m.optimizer_states / GB:>12.3f}{m.total / GB:>12.3f}{comm:>18,.0f}"
        )
    kept = zero_communication_elements(psi, devices, 3, reshard_after_forward=False)
    print(f"stage 3 with parameters kept between forward and backward: {kept:,.0f} elements\n")


def build_parser():
    p = flags.parser(__doc__)
    p.add_argument("--psi", type=flags.finite_positive_float, default=7.5e9, help="parameters Ψ")
    p.add_argument("--devices", type=flags.positive_int, default=64, help="data-parallel degree N")
    p.add_argument(
        "--precision",
        choices=sorted(PRECISIONS),
        default="mixed",
        help="training precision of the one-model table",
    )
    p.add_argument(
        "--rule-params",
        type=flags.finite_positive_float,
        default=1e9,
        help="parameters for the notes' rule of thumb",
    )
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    print_table1()
    print_rule_of_thumb(args.rule_params)
    print_one(args.psi, args.devices, args.precision)


if __name__ == "__main__":
    main()
