"""Compute-optimal model size and data for a FLOP budget (Hoffmann et al. 2022, "Chinchilla").

    python examples/scaling.py --table     # the 20-tokens rule vs the fitted loss law, 1e18…1e26
    python examples/scaling.py --sweep     # a real tiny scaling experiment (a few minutes)

--table prints, for each budget C (one per decade), the split N, D given by the rule of thumb
(D = 20·N with C = 6ND) and by minimizing the paper's fitted loss L(N, D) = E + A/N^α + B/D^β
under the same constraint, how many tokens per parameter the fitted law asks for, and how far
the two answers are apart. Then it checks the rule against the paper's Table 3.
"""

from __future__ import annotations

import os

import flags

from tinyllm.accounting import (
    CHINCHILLA,
    CHINCHILLA_TABLE3,
    compute_optimal_by_rule,
    fit_power_law,
    pf_days,
    scaling_rows,
)


def si(x: float) -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def print_table(budgets) -> None:
    law = CHINCHILLA
    print("Compute-optimal N (parameters) and D (tokens) for a budget C = 6·N·D FLOPs")
    print(
        f"fitted law: L(N, D) = {law.E} + {law.A}/N^{law.alpha} + {law.B}/D^{law.beta}"
        f"  (Hoffmann et al. 2022, Approach 3)\n"
    )
    head = (
        f"{'C FLOPs':>9} {'PF-days':>9} | {'N rule':>7} {'D rule':>7} | {'N law':>7} "
        f"{'D law':>7} {'D/N law':>8} | {'N law/rule':>10} {'loss rule':>9} {'loss law':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in scaling_rows(budgets, law):
        print(
            f"{r['flops']:>9.0e} {pf_days(r['flops']):>9.3g} | {si(r['n_rule']):>7} "
            f"{si(r['d_rule']):>7} | {si(r['n_law']):>7} {si(r['d_law']):>7} "
            f"{r['tokens_per_param_law']:>8.1f} | {r['n_law_over_rule']:>10.2f} "
            f"{r['loss_rule']:>9.4f} {r['loss_law']:>9.4f}"
        )
    s = law.alpha + law.beta
    print(
        f"\nThe fitted law's tokens per parameter are not 20: D/N = G⁻²·(C/6)^((α−β)/(α+β)) "
        f"grows as C^{(law.alpha - law.beta) / s:.3f}\n(G = {law.G:.4f}); its N_opt ∝ "
        f"C^{law.beta / s:.3f} against the rule's C^0.5. Both are the paper's; they disagree.\n"
    )

    print("The 20-tokens rule against the paper's Table 3 (Approach 1 projections)")
    head = (
        f"{'paper N':>8} {'paper C':>9} {'paper D':>8} | {'rule N':>7} {'rule D':>7} | "
        f"{'ΔN':>6} {'ΔD':>6}"
    )
    print(head)
    print("-" * len(head))
    for params, flops, tokens in CHINCHILLA_TABLE3:
        n, d = compute_optimal_by_rule(flops)
        print(
            f"{si(params):>8} {flops:>9.2e} {si(tokens):>8} | {si(n):>7} {si(d):>7} | "
            f"{n / params - 1:>+6.1%} {d / tokens - 1:>+6.1%}"
        )


# (layers, heads, width): 2.8 K … 356 K parameters — small enough at the low end that the best
# size of every budget but the smallest lies inside the grid (a U, not only its right half)
SWEEP_SIZES = [(1, 1, 8), (1, 1, 12), (1, 1, 16), (1, 2, 32), (2, 2, 48), (2, 4, 64), (3, 4, 96)]
SWEEP_BLOCK, SWEEP_BATCH = 32, 32
SWEEP_VOCAB = (
    257  # the 256 bytes + <|endoftext|>: no merges, so the tiny models' output layer stays small
)


def isoflop_minimum(log_n, loss):
    """Chinchilla's Approach 2: fit a parabola to loss against log N at one budget and take its
    vertex — the best size, even between the sizes that were trained. Falls back to the best
    trained size when the points do not curve upwards."""
    import numpy as np

    if len(log_n) >= 3:
        a, b, _ = np.polyfit(log_n, loss, 2)
        if a > 0:
            vertex = -b / (2 * a)
            if min(log_n) <= vertex <= max(log_n):
                return float(np.exp(vertex))
    return float(np.exp(log_n[int(np.argmin(loss))]))


def run_sweep(args) -> None:
    """A real, tiny scaling experiment: IsoFLOP profiles of small GPTs on the stdlib corpus.

    For each compute budget C and each model size, train for D = C / F tokens, where F is the
    model's training FLOPs per token (PaLM's 6N + 12·L·H·Q·T: the matmul parameters plus
    attention — at these tiny widths attention is not negligible), then measure the
    validation loss. Per budget, the best size comes from a parabola through loss vs log N
    (Hoffmann et al. 2022, Approach 2). A power law N_opt ∝ C^a through the budgets' optima is
    compared with the rule's a = 0.5 and the fitted law's β/(α+β) ≈ 0.45. Honest caveats: four
    budgets and seven sizes of models with 10³–10⁵·⁵ parameters give a rough exponent, and the
    learning rate is the same for every size (the paper tuned it).

    Each run's progress line carries its tokens/s and MFU (tokens/s × F / this machine's fp32
    matmul peak, tinyllm/accounting/mfu.py).
    """
    import csv
    import io
    import os
    import time

    import common
    import numpy as np

    import tinyllm
    from tinyllm.accounting import count_parameters, measure_matmul_peak, palm_flops_per_token_for
    from tinyllm.data import get_batch
    from tinyllm.models import GPT, GPTConfig
    from tinyllm.optim import AdamW, clip_grad_norm_, param_groups_for_weight_decay, warmup_cosine
    from tinyllm.runtime.fileio import atomic_write_bytes

    budgets = args.budgets
    block, batch = SWEEP_BLOCK, SWEEP_BATCH
    tok, train_ids, val_ids = common.prepare_text_data(
        args.data, SWEEP_VOCAB, args.data_bytes, args.cache_dir
    )
    peak = measure_matmul_peak(np.float32, n=512, repeats=3)
    print(f"measured fp32 matmul peak {peak / 1e9:.1f} GFLOP/s", flush=True)
    rows = []
    t_start = time.perf_counter()
    for c in budgets:
        for n_layer, n_head, n_embd in SWEEP_SIZES:
            tinyllm.manual_seed(args.seed)
            cfg = GPTConfig(
                block_size=block,
                vocab_size=tok.vocab_size,
                n_layer=n_layer,
                n_head=n_head,
                n_embd=n_embd,
            )
            model = GPT(cfg)
            n = count_parameters(model).matmul
            f = palm_flops_per_token_for(cfg, block)
            steps = max(1, int(round(c / f / (batch * block))))
            opt = AdamW(
                param_groups_for_weight_decay(model, 0.1), lr=args.sweep_lr, betas=(0.9, 0.95)
            )
            rng = np.random.default_rng(args.seed)
            t0 = time.perf_counter()
            for step in range(steps):
                for g in opt.param_groups:
                    g["lr"] = warmup_cosine(
                        step, args.sweep_lr, max(1, steps // 20), steps, args.sweep_lr * 0.1
                    )
                x, y = get_batch(train_ids, batch, block, rng)
                _, loss = model(x, y)
                opt.zero_grad()
                loss.backward()
                clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
            seconds = time.perf_counter() - t0  # training only, before the evaluation
            tps = steps * batch * block / seconds
            model.eval()
            val = common.estimate_loss(
                model, val_ids, batch, block, 8, np.random.default_rng(args.seed + 1)
            )
            rows.append(
                {
                    "budget": c,
                    "n_layer": n_layer,
                    "n_embd": n_embd,
                    "params": n,
                    "flops_per_token": f,
                    "tokens": steps * batch * block,
                    "steps": steps,
                    "val_loss": val,
                    "seconds": seconds,
                    "tokens_per_second": tps,
                    "mfu": tps * f / peak,
                }
            )
            print(
                f"C={c:.0e}  {n_layer}L {n_embd:>3}E  N={si(n):>6}  "
                f"D={si(steps * batch * block):>6} ({steps:>4} steps)  val loss {val:.4f}  "
                f"{tps:7.0f} tok/s  MFU {100 * tps * f / peak:5.1f}%   "
                f"[{time.perf_counter() - t_start:6.0f} s]",
                flush=True,
            )
    os.makedirs(os.path.dirname(os.path.abspath(args.sweep_out)) or ".", exist_ok=True)
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(args.sweep_out, text.getvalue().encode())  # temp file + os.replace
    best = []
    for c in budgets:
        rs = [r for r in rows if r["budget"] == c]
        best.append(isoflop_minimum(np.log([r["params"] for r in rs]), [r["val_loss"] for r in rs]))
    law = fit_power_law(budgets, best)
    print("\nIsoFLOP profiles (validation loss against model size; * marks each budget's best):")
    print(text_chart(rows, budgets))
    for c, nb in zip(budgets, best):
        print(f"  C = {c:.0e} FLOPs: best N ≈ {si(nb)}")
    print(
        f"\nfitted N_opt = {law.coefficient:.3g}·C^{law.exponent:.3f} (R² {law.r2:.3f}); "
        f"the 20-tokens rule says C^0.5, the paper's fitted loss law C^"
        f"{CHINCHILLA.beta / (CHINCHILLA.alpha + CHINCHILLA.beta):.3f}"
    )
    print(f"results written to {args.sweep_out}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for c in budgets:
        rs = [r for r in rows if r["budget"] == c]
        ax.plot([r["params"] for r in rs], [r["val_loss"] for r in rs], "o-", label=f"C={c:.0e}")
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("validation loss")
    ax.legend()
    png = os.path.splitext(args.sweep_out)[0] + ".png"
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(png, buf.getvalue())
    print(f"plot written to {png}")


def text_chart(rows, budgets, width=48) -> str:
    """Loss against model size, one line per (budget, size): a bar from the lowest loss."""
    lo = min(r["val_loss"] for r in rows)
    hi = max(r["val_loss"] for r in rows)
    lines = []
    for c in budgets:
        rs = [r for r in rows if r["budget"] == c]
        best = min(rs, key=lambda r: r["val_loss"])
        for r in rs:
            bar = "#" * (1 + int((r["val_loss"] - lo) / max(hi - lo, 1e-9) * (width - 1)))
            mark = "*" if r is best else " "
            lines.append(f"  C={c:.0e} N={si(r['params']):>6} {r['val_loss']:7.4f} {mark}|{bar}")
        lines.append("")
    return "\n".join(lines)


def build_parser():
    p = flags.parser(__doc__)
    p.add_argument("--table", action="store_true", help="print the rule vs the fitted law")
    p.add_argument("--sweep", action="store_true", help="train a grid of tiny GPTs")
    p.add_argument(
        "--min-exp", type=flags.nonnegative_int, default=18, help="smallest budget 10^k FLOPs"
    )
    p.add_argument(
        "--max-exp", type=flags.nonnegative_int, default=26, help="largest budget 10^k FLOPs"
    )
    p.add_argument(
        "--budgets",
        type=flags.comma_list(flags.finite_positive_float),
        default="1e10,3e10,1e11,3e11",
        help="--sweep: comma-separated training budgets in FLOPs (two or more)",
    )
    p.add_argument(
        "--sweep-lr",
        type=flags.finite_positive_float,
        default=3e-3,
        help="--sweep: peak learning rate",
    )
    p.add_argument(
        "--sweep-out",
        type=flags.writable_file,
        default=os.path.join("runs", "scaling_sweep.csv"),
        help="--sweep: the CSV of results (a .png beside it with matplotlib)",
    )
    p.add_argument(
        "--data",
        type=flags.readable_text_file,
        default=None,
        help="--sweep: text file (default: the stdlib)",
    )
    p.add_argument(
        "--data-bytes",
        type=flags.positive_int,
        default=1_000_000,
        help="--sweep: bytes of the corpus to read",
    )
    p.add_argument(
        "--cache-dir",
        type=flags.writable_dir,
        default=os.path.join("runs", "cache"),
        help="--sweep: where tokenizers and encoded corpora are cached",
    )
    p.add_argument(
        "--seed", type=flags.nonnegative_int, default=1337, help="--sweep: seed of every run"
    )

    @p.add_check
    def ranges(args):
        if args.min_exp > args.max_exp:
            return f"--min-exp {args.min_exp} must not exceed --max-exp {args.max_exp}"
        if args.max_exp > 300:
            return f"--max-exp must be at most 300 (10^k as a float), got {args.max_exp}"
        if args.sweep and len(args.budgets) < 2:
            return f"--budgets needs two or more budgets to fit a power law, got {args.budgets}"
        return None

    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if not (args.table or args.sweep):
        args.table = True
    if args.table:
        print_table([10.0**k for k in range(args.min_exp, args.max_exp + 1)])
    if args.sweep:
        run_sweep(args)


if __name__ == "__main__":
    main()
