"""Figures for the book: text charts that print anywhere, PNG files where matplotlib exists.

A number in a table says how much; a picture says how it moves. Three pictures recur in the
chapters (docs/), and this script draws each from what the examples produce:

    python docs/figures.py loss runs/gpt.json [more.json …] [--out F.txt] [--png F.png]
        The training curves in one or more JSON reports (every example writes one with
        --report): every `losses` list (the loss of each optimizer step) and `val_losses`
        list ([step, loss] pairs) found anywhere in the report — so fine-tuning beside training
        from scratch, or fp32 beside bf16 and fp16, share one chart. The loss is the mean
        cross-entropy of the next token, −(1/T) Σₜ log p(x_{t+1} | x_{≤t}), in nats.

    python docs/figures.py memory runs/compare.json [--out F.txt] [--png F.png]
        The peak device memory of each strategy of `examples/train_zero.py --compare
        --report runs/compare.json`, as stacked bars by category — the ZeRO paper's Figure 1,
        measured (the bars are the ones the example prints; the PNG draws the same numbers).
        The equation behind the bars, for Ψ parameters on N ranks with K bytes of optimizer
        state per parameter: DDP (2b + K)Ψ, stage 1 2bΨ + KΨ/N, stage 2 bΨ + (b + K)Ψ/N,
        stage 3 (2b + K)Ψ/N, with b bytes per parameter and per gradient (chapter 12).

    mpirun -n 4 python docs/figures.py pipeline [--schedule gpipe|1f1b|both] [--micro-batches 8]
        One training step of a small GPT cut into one pipeline stage per rank
        (sim/parallel3d.py), drawn from every stage's simulated timeline (sim/cost.py): which
        micro-batch each stage computes when, and where it waits — for GPipe and for 1F1B.
        The idle fraction of a stage is the *bubble*; the chart prints it beside GPipe's
        formula (p − 1)/(m + p − 1). Messages are free by default (--links free), which is
        the formula's assumption; with --links profile they cost what the hardware
        profile's links cost.

The text chart is always printed (and written to --out); --png draws the same data with
matplotlib when it is installed, and says so when it is not (matplotlib is not a dependency).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# ---- a text chart of curves -----------------------------------------------------------------


def find_curves(report, path=()):
    """Every (name, xs, ys) curve in a report: `losses` (x = step index) and `val_losses`
    ([step, loss] pairs), wherever they are nested (e.g. report["scratch"]["losses"])."""
    curves = []
    if isinstance(report, dict):
        here = "/".join(path)
        losses = report.get("losses")
        if isinstance(losses, list) and losses and all(isinstance(v, (int, float)) for v in losses):
            curves.append((f"{here}/train" if here else "train", list(range(len(losses))), losses))
        val = report.get("val_losses")
        if isinstance(val, list) and val and all(isinstance(p, list) and len(p) == 2 for p in val):
            curves.append(
                (f"{here}/val" if here else "val", [p[0] for p in val], [p[1] for p in val])
            )
        for key, value in report.items():
            if isinstance(value, dict):
                curves += find_curves(value, path + (str(key),))
    return curves


MARKS = "*o+x#@%&=~"


def text_chart(curves, width: int = 72, height: int = 18, title: str = "") -> str:
    """Curves on one character grid: y (loss) upwards, x (step) to the right, one mark each.

    Each curve's points are placed in the cell nearest to (x, y); where two curves meet, the
    later one wins. The axes are labelled with their ranges."""
    points = [(x, y) for _, xs, ys in curves for x, y in zip(xs, ys) if math.isfinite(y)]
    if not points:
        raise ValueError("no finite points to draw")
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    y_lo, y_hi = min(p[1] for p in points), max(p[1] for p in points)
    x_span, y_span = (x_hi - x_lo) or 1.0, (y_hi - y_lo) or 1.0
    grid = [[" "] * width for _ in range(height)]
    for k, (_, xs, ys) in enumerate(curves):
        mark = MARKS[k % len(MARKS)]
        for x, y in zip(xs, ys):
            if not math.isfinite(y):
                continue
            col = round((x - x_lo) / x_span * (width - 1))
            row = height - 1 - round((y - y_lo) / y_span * (height - 1))
            grid[row][col] = mark
    lines = [title] if title else []
    for r, row in enumerate(grid):
        y = y_hi - r * y_span / (height - 1)
        label = f"{y:8.3f} |" if r in (0, height // 2, height - 1) else f"{'':8} |"
        lines.append(label + "".join(row))
    lines.append(f"{'':8} +" + "-" * width)
    lines.append(f"{'':9}{x_lo:<10g}{'step':^{width - 20}}{x_hi:>10g}")
    lines += [
        f"  {MARKS[k % len(MARKS)]} {name}: {ys[0]:.4f} → {ys[-1]:.4f} ({len(ys)} points)"
        for k, (name, _, ys) in enumerate(curves)
    ]
    return "\n".join(lines)


def png_curves(curves, path: str, title: str) -> str:
    plt = _pyplot()
    if plt is None:
        return _NO_MATPLOTLIB.format(path=path)
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, xs, ys in curves:
        ax.plot(xs, ys, marker="o" if name.endswith("val") else None, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    _save(fig, path)
    return f"wrote {path}"


_NO_MATPLOTLIB = "(matplotlib is not installed: no {path}; the text chart above is the figure)"


def _pyplot():
    """matplotlib.pyplot with a file-only backend, or None where matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


# ---- memory bars from a --compare report ----------------------------------------------------

MEMORY_KEYS = ("parameters", "gradients", "optimizer_states", "activations", "buffers")


def compare_rows(report: dict) -> list:
    rows = report.get("compare")
    if not isinstance(rows, list):
        raise SystemExit(
            "this report has no 'compare' rows: write it with "
            "`examples/train_zero.py --compare --report PATH`"
        )
    return rows


def png_memory(rows, path: str, title: str) -> str:
    plt = _pyplot()
    if plt is None:
        return _NO_MATPLOTLIB.format(path=path)
    ok = [r for r in rows if "memory" in r]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(ok) + 1.5))
    left = [0.0] * len(ok)
    for key in MEMORY_KEYS:
        widths = [r["memory"].get(key, 0) / 1e6 for r in ok]
        ax.barh([r["strategy"] for r in ok], widths, left=left, label=key)
        left = [a + b for a, b in zip(left, widths)]
    ax.invert_yaxis()
    ax.set_xlabel("MB per rank (peak of each category)")
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    _save(fig, path)
    return f"wrote {path}"


# ---- the pipeline timeline -------------------------------------------------------------------


def event_mark(label: str) -> str:
    """'F3' → '3' (forward of micro-batch 3), 'B3' → 'd' (its backward), other compute → '#'."""
    if len(label) > 1 and label[0] in "FB" and label[1:].isdigit():
        i = int(label[1:])
        return str(i % 10) if label[0] == "F" else chr(ord("a") + i % 26)
    return "#"


def pipeline_chart(timelines, width: int = 96) -> str:
    """One row per stage: each compute event drawn with its micro-batch's mark, '.' idle.

    `timelines[s]` is stage s's list of events (sim.cost.Timeline.as_dicts())."""
    total = max((e["end"] for events in timelines for e in events), default=0.0) or 1.0
    lines = []
    for s, events in enumerate(timelines):
        row = ["."] * width
        for e in events:
            if e["stream"] != "compute" or e["end"] <= e["start"]:
                continue
            lo = int(e["start"] / total * width)
            hi = max(lo + 1, int(round(e["end"] / total * width)))
            for c in range(lo, min(hi, width)):
                row[c] = event_mark(e["label"])
        lines.append(f"  stage {s} |{''.join(row)}|")
    return "\n".join(lines)


def run_pipeline(args) -> str:
    import sim  # first: it sets the BLAS/numba thread counts before NumPy loads

    world = sim.init()
    if world.size < 2:
        raise SystemExit(
            "the pipeline figure needs one rank per stage: mpirun -n 4 python "
            "docs/figures.py pipeline"
        )
    schedules = ("gpipe", "1f1b") if args.schedule == "both" else (args.schedule,)
    texts = [pipeline_step(world, args, schedule) for schedule in schedules]
    return "\n\n".join(texts) if world.rank == 0 else ""


def pipeline_step(world, args, schedule: str) -> str:
    """One step of a GPT cut into world.size stages; the chart (on rank 0)."""
    import numpy as np

    import tinyllm
    from sim.parallel3d import Parallel3D
    from tinyllm.models import GPT, GPTConfig

    p, m = world.size, args.micro_batches
    tinyllm.manual_seed(0)
    cfg = GPTConfig(
        vocab_size=64,
        block_size=args.block_size,
        n_layer=p * args.layers_per_stage,
        n_head=2,
        n_embd=args.n_embd,
        dropout=0.0,
    )
    strategy = Parallel3D(
        GPT(cfg),
        world,
        pp=p,
        micro_batches=m,
        schedule=schedule,
        ideal_links=args.links == "free",
        profile=args.profile,
    )
    rng = np.random.default_rng(0)
    x = rng.integers(0, cfg.vocab_size, size=(m * args.micro_batch_size, cfg.block_size))
    y = rng.integers(0, cfg.vocab_size, size=x.shape)
    strategy.zero_grad()
    _, loss = strategy(x, y)
    strategy.backward(loss)
    events = world.allgather_json(strategy.timeline.as_dicts())
    bubbles = world.allgather_json(strategy.last_bubble)
    stage0 = strategy.timeline.format(width=args.width) if world.rank == 0 else ""
    strategy.close()
    if world.rank != 0:
        return ""
    links = "free links" if args.links == "free" else f"{args.profile} links"
    lines = [
        f"pipeline, one step: p = {p} stages, m = {m} micro-batches, schedule {schedule}, "
        f"simulated {args.profile} ({links})",
        f"GPT {cfg.n_layer}L/{cfg.n_embd}E, {args.layers_per_stage} block(s) per stage, "
        f"{args.micro_batch_size} sequence(s) of {cfg.block_size} tokens per micro-batch",
        "digits: forward of micro-batch i; letters: its backward (a = 0, b = 1, …); "
        "'#' other compute; '.' idle",
        "",
        pipeline_chart(events, args.width),
        "",
        f"bubble (idle fraction) per stage, measured on the timelines beside "
        f"(p − 1)/(m + p − 1) = {bubbles[0]['formula']:.4f}:",
    ]
    lines += [f"  stage {s}: {b['measured']:.4f}" for s, b in enumerate(bubbles)]
    lines += ["", "stage 0's own timeline (sim.cost.Timeline.format):", stage0]
    if args.png:
        root, ext = os.path.splitext(args.png)
        lines.append(png_pipeline(events, f"{root}-{schedule}{ext or '.png'}", lines[0]))
    return "\n".join(lines)


def png_pipeline(timelines, path: str, title: str) -> str:
    plt = _pyplot()
    if plt is None:
        return _NO_MATPLOTLIB.format(path=path)
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(timelines) + 1.5))
    for s, events in enumerate(timelines):
        for e in events:
            if e["stream"] != "compute":
                continue
            forward = e["label"].startswith("F")
            ax.broken_barh(
                [(e["start"] * 1e6, (e["end"] - e["start"]) * 1e6)],
                (s - 0.4, 0.8),
                facecolors="tab:blue" if forward else "tab:orange",
            )
            ax.text(
                (e["start"] + e["end"]) / 2 * 1e6,
                s,
                e["label"],
                ha="center",
                va="center",
                fontsize=6,
            )
    ax.set_yticks(range(len(timelines)), [f"stage {s}" for s in range(len(timelines))])
    ax.invert_yaxis()
    ax.set_xlabel("simulated µs")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return f"wrote {path}"


# ---- command line ----------------------------------------------------------------------------


def write_text(text: str, out: str | None) -> None:
    print(text)
    if out:
        from tinyllm.runtime.fileio import atomic_write_bytes

        atomic_write_bytes(out, (text + "\n").encode("utf-8"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="figure", required=True)
    lo = sub.add_parser("loss", help="training curves of one or more JSON reports")
    lo.add_argument("reports", nargs="+")
    me = sub.add_parser("memory", help="memory bars of a train_zero.py --compare report")
    me.add_argument("report")
    pi = sub.add_parser("pipeline", help="a pipeline step's timeline (run under mpirun)")
    pi.add_argument("--schedule", choices=("gpipe", "1f1b", "both"), default="both")
    pi.add_argument("--micro-batches", type=int, default=8)
    pi.add_argument("--micro-batch-size", type=int, default=1)
    pi.add_argument("--layers-per-stage", type=int, default=2)
    pi.add_argument("--n-embd", type=int, default=64)
    pi.add_argument("--block-size", type=int, default=32)
    pi.add_argument("--links", choices=("free", "profile"), default="free")
    pi.add_argument("--profile", default="A100-80GB", help="cost-model GPU (sim/cost.py)")
    for p in (lo, me, pi):
        p.add_argument("--out", help="also write the text chart to this file")
        p.add_argument("--png", help="also draw a PNG here (needs matplotlib)")
        p.add_argument("--width", type=int, default=72 if p is not pi else 96)
    args = ap.parse_args(argv)

    if args.figure == "pipeline":
        text = run_pipeline(args)
        if text:
            write_text(text, args.out)
        return 0
    if args.figure == "loss":
        curves = []
        for path in args.reports:
            report = json.loads(Path(path).read_text())
            found = find_curves(report)
            if not found:
                raise SystemExit(f"{path}: no 'losses' or 'val_losses' in this report")
            prefix = f"{Path(path).stem}:" if len(args.reports) > 1 else ""
            curves += [(prefix + name, xs, ys) for name, xs, ys in found]
        title = "loss per step — " + ", ".join(os.path.basename(p) for p in args.reports)
        text = text_chart(curves, width=args.width, title=title)
        if args.png:
            text += "\n" + png_curves(curves, args.png, title)
    else:
        sys.path.insert(0, str(ROOT / "examples"))
        from zero_loop import memory_bars  # the chart the example prints, from the report

        rows = compare_rows(json.loads(Path(args.report).read_text()))
        text = memory_bars(rows, width=args.width)
        if args.png:
            text += "\n" + png_memory(rows, args.png, "peak device memory per rank")
    write_text(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
