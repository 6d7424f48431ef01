"""Compute-optimal model size and data for a FLOP budget (Hoffmann et al. 2022, "Chinchilla").

    python examples/scaling.py --table     # the 20-tokens rule vs the fitted loss law, 1e18…1e26
    python examples/scaling.py --sweep     # a real tiny scaling experiment (not written yet)

--table prints, for each budget C (one per decade), the split N, D given by the rule of thumb
(D = 20·N with C = 6ND) and by minimizing the paper's fitted loss L(N, D) = E + A/N^α + B/D^β
under the same constraint, how many tokens per parameter the fitted law asks for, and how far
the two answers are apart. Then it checks the rule against the paper's Table 3.
"""
from __future__ import annotations

import argparse

from tinyllm.accounting import (CHINCHILLA, CHINCHILLA_TABLE3, compute_optimal_by_rule, pf_days,
                                scaling_rows)


def si(x: float) -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def print_table(budgets) -> None:
    law = CHINCHILLA
    print("Compute-optimal N (parameters) and D (tokens) for a budget C = 6·N·D FLOPs")
    print(f"fitted law: L(N, D) = {law.E} + {law.A}/N^{law.alpha} + {law.B}/D^{law.beta}"
          f"  (Hoffmann et al. 2022, Approach 3)\n")
    head = (f"{'C FLOPs':>9} {'PF-days':>9} | {'N rule':>7} {'D rule':>7} | {'N law':>7} "
            f"{'D law':>7} {'D/N law':>8} | {'N law/rule':>10} {'loss rule':>9} {'loss law':>9}")
    print(head)
    print("-" * len(head))
    for r in scaling_rows(budgets, law):
        print(f"{r['flops']:>9.0e} {pf_days(r['flops']):>9.3g} | {si(r['n_rule']):>7} "
              f"{si(r['d_rule']):>7} | {si(r['n_law']):>7} {si(r['d_law']):>7} "
              f"{r['tokens_per_param_law']:>8.1f} | {r['n_law_over_rule']:>10.2f} "
              f"{r['loss_rule']:>9.4f} {r['loss_law']:>9.4f}")
    s = law.alpha + law.beta
    print(f"\nThe fitted law's tokens per parameter are not 20: D/N = G⁻²·(C/6)^((α−β)/(α+β)) "
          f"grows as C^{(law.alpha - law.beta) / s:.3f}\n(G = {law.G:.4f}); its N_opt ∝ "
          f"C^{law.beta / s:.3f} against the rule's C^0.5. Both are the paper's; they disagree.\n")

    print("The 20-tokens rule against the paper's Table 3 (Approach 1 projections)")
    head = (f"{'paper N':>8} {'paper C':>9} {'paper D':>8} | {'rule N':>7} {'rule D':>7} | "
            f"{'ΔN':>6} {'ΔD':>6}")
    print(head)
    print("-" * len(head))
    for params, flops, tokens in CHINCHILLA_TABLE3:
        n, d = compute_optimal_by_rule(flops)
        print(f"{si(params):>8} {flops:>9.2e} {si(tokens):>8} | {si(n):>7} {si(d):>7} | "
              f"{n / params - 1:>+6.1%} {d / tokens - 1:>+6.1%}")


def run_sweep(args) -> None:
    """HOOK — to be written by the lead once a GPT training loop exists.

    The plan (issue 7): for each budget in a few small fixed compute budgets, train a grid of
    small GPTs (tinyllm.models.GPT) on the standard-library corpus, each for
    D = C / (6·N) tokens with N = count_parameters(model).matmul (or the PaLM count);
    record the final validation loss; take the best model size per budget; fit
    `tinyllm.accounting.fit_power_law(budgets, best_sizes)` and report its exponent beside
    the law's β/(α+β) ≈ 0.45 and the rule's 0.5; write a plot (matplotlib when installed,
    otherwise a CSV and a text chart). Must finish in minutes with progress lines.
    """
    raise SystemExit("examples/scaling.py --sweep is not implemented yet: it needs the GPT "
                     "training loop (see run_sweep's docstring for the plan).")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", action="store_true", help="print the rule vs the fitted law")
    parser.add_argument("--sweep", action="store_true", help="train a grid of tiny GPTs")
    parser.add_argument("--min-exp", type=int, default=18, help="smallest budget 10^k FLOPs")
    parser.add_argument("--max-exp", type=int, default=26, help="largest budget 10^k FLOPs")
    args = parser.parse_args(argv)
    if args.min_exp > args.max_exp:
        parser.error("--min-exp must not exceed --max-exp")
    if not (args.table or args.sweep):
        args.table = True
    if args.table:
        print_table([10.0 ** k for k in range(args.min_exp, args.max_exp + 1)])
    if args.sweep:
        run_sweep(args)


if __name__ == "__main__":
    main()
