"""Counting the FLOPs that actually run: `with FlopCounter() as fc: ...`.

The formulas in flops.py describe an idealized transformer. This module watches the ops that
really execute — forward and backward, op by op — and adds up their cost, so the two can be
printed side by side and disagreements explained instead of assumed away.

How it sees the ops. `FlopCounter` is a `GraphObserver` (tinyllm/engine/hooks.py). The engine
calls `on_forward(fn, ctx, out, seconds)` after every op's forward and `on_backward(fn, ctx,
seconds)` after every node's backward, while `ctx` still holds what the op recorded. Every op
declares its own cost, `fn.flops` (a `FlopRule`, tinyllm/engine/flops.py): its family and two
small functions that turn that ctx into a count — matrix products exactly (`gemm`, 2 FLOPs per
multiply-add, attention's recomputation included), everything else by the one-per-element
convention (`other`). This module knows no op by name. An op that declares nothing is still
counted, one FLOP per output element under "unregistered", and named in `fc.unregistered`.

So `fc.gemm(...)` is the number to compare with 2·(2L²H + 12LH²) or PaLM's 6N + 12LHQT, and
`fc.other(...)` shows how much arithmetic lives outside the matmuls (a few percent in a GPT).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyllm.accounting.flops import (
    kaplan_flops_per_token,
    layer_forward_flops,
    palm_flops_per_token,
)
from tinyllm.engine.flops import UNDECLARED, FlopRule
from tinyllm.engine.hooks import GraphObserver, observe

PHASES = ("forward", "backward")


@dataclass
class FlopTally:
    gemm: int = 0
    other: int = 0
    calls: int = 0

    @property
    def total(self) -> int:
        return self.gemm + self.other


class FlopCounter(GraphObserver):
    """Count the FLOPs of every op run inside `with FlopCounter() as fc:`.

    `fc.by_family[(family, phase)]` and `fc.by_op[(op name, phase)]` hold `FlopTally`s;
    `fc.gemm(phase)`, `fc.other(phase)`, `fc.total(phase)` sum them (phase None = both).
    Counters may be nested or reused; each `with` block adds to the same tallies.
    """

    def __init__(self):
        self.by_family: dict[tuple[str, str], FlopTally] = {}
        self.by_op: dict[tuple[str, str], FlopTally] = {}
        self.unregistered: set[str] = set()
        self.backward_without_forward = 0  # nodes whose forward ran before the counter started
        self._out_sizes: dict[int, int] = {}  # id(ctx) -> elements its forward produced
        self._scope = None

    # ---- installing -------------------------------------------------------------------------
    def __enter__(self):
        if self._scope is not None:
            raise RuntimeError("FlopCounter: this counter is already active")
        self._scope = observe(self)
        self._scope.__enter__()
        return self

    def __exit__(self, *exc):
        scope, self._scope = self._scope, None
        scope.__exit__(*exc)
        self._out_sizes.clear()
        return False

    # ---- the hooks --------------------------------------------------------------------------
    def _rule(self, fn) -> FlopRule:
        rule = fn.flops
        if rule is None:
            self.unregistered.add(fn.__name__)
            return UNDECLARED
        return rule

    def _add(self, fn, family, phase, gemm, other):
        for table, key in ((self.by_family, (family, phase)), (self.by_op, (fn.__name__, phase))):
            tally = table.setdefault(key, FlopTally())
            tally.gemm += int(gemm)
            tally.other += int(other)
            tally.calls += 1

    def on_forward(self, fn, ctx, out, seconds):
        rule = self._rule(fn)
        gemm, other = rule.forward(ctx, out)
        self._add(fn, rule.family, "forward", gemm, other)
        if getattr(ctx, "function", None) is not None:  # recorded: a backward may follow
            self._out_sizes[id(ctx)] = int(np.size(out))

    def on_backward(self, fn, ctx, seconds):
        rule = self._rule(fn)
        out_size = self._out_sizes.pop(id(ctx), None)
        if out_size is None:
            self.backward_without_forward += 1
            out_size = 0
        gemm, other = rule.backward(ctx, out_size)
        self._add(fn, rule.family, "backward", gemm, other)

    # ---- reading the tallies ----------------------------------------------------------------
    def _sum(self, attr, phase=None, families=None) -> int:
        if phase is not None and phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES} or None, got {phase!r}")
        return sum(
            getattr(t, attr)
            for (fam, ph), t in self.by_family.items()
            if (phase is None or ph == phase) and (families is None or fam in families)
        )

    def gemm(self, phase=None, families=None) -> int:
        """Exact matrix-product FLOPs (optionally one phase, or only some families)."""
        return self._sum("gemm", phase, families)

    def other(self, phase=None, families=None) -> int:
        """Non-matmul FLOPs by the one-per-element convention."""
        return self._sum("other", phase, families)

    def total(self, phase=None, families=None) -> int:
        return self.gemm(phase, families) + self.other(phase, families)

    def table(self) -> str:
        """A printable table: one row per family, forward and backward, gemm and other."""
        families = sorted({fam for fam, _ in self.by_family})
        head = f"{'family':<22}{'fwd gemm':>14}{'fwd other':>12}{'bwd gemm':>14}{'bwd other':>12}"
        rows = [head, "-" * len(head)]
        for fam in families + ["total"]:
            sel = None if fam == "total" else {fam}
            rows.append(
                f"{fam:<22}{self.gemm('forward', sel):>14,}{self.other('forward', sel):>12,}"
                f"{self.gemm('backward', sel):>14,}{self.other('backward', sel):>12,}"
            )
        if self.unregistered:
            rows.append(
                f"unregistered ops (1 FLOP per output element): {sorted(self.unregistered)}"
            )
        return "\n".join(rows)


# --------------------------------------------------------------------------------------------
# Counted vs formulas
# --------------------------------------------------------------------------------------------


def compare_with_formulas(fc: FlopCounter, config, batch_size: int, seq_len: int) -> list:
    """Rows (name, FLOPs, ratio to the counted training matmul FLOPs) for one training step.

    `config`: GPTConfig-like (vocab_size, n_layer, n_head, n_embd). The formulas use
    N = the matmul weights (12·n_layer·H² + V·H for a tied GPT): biases and norms are not
    multiplied by every token. Per step = per token × batch_size·seq_len.
    """

    b, t = batch_size, seq_len
    n_layer, h, v = config.n_layer, config.n_embd, config.vocab_size
    n_blocks = 12 * n_layer * h * h
    n_matmul = n_blocks + v * h
    tokens = b * t
    counted = fc.gemm()
    notes_fwd = b * (n_layer * layer_forward_flops(t, h) + 2 * t * h * v)
    rows = [
        ("counted matmul, forward", fc.gemm("forward")),
        ("counted matmul, backward", fc.gemm("backward")),
        ("counted matmul, forward + backward", counted),
        ("counted other (1/element), fwd + bwd", fc.other()),
        ("notes 2·(2T²H + 12TH²)/layer + lm_head, fwd", notes_fwd),
        ("notes forward × 3 (backward = 2 × forward)", 3 * notes_fwd),
        ("6N·tokens", 6 * n_matmul * tokens),
        (
            "Kaplan 3·(2N + 2·n_layer·T·H), N = blocks",
            kaplan_flops_per_token(n_blocks, n_layer, t, h) * tokens,
        ),
        (
            "PaLM (6N + 12·L·H·Q·T)·tokens",
            palm_flops_per_token(n_matmul, n_layer, config.n_head, h // config.n_head, t) * tokens,
        ),
    ]
    return [
        (name, int(value), value / counted if counted else float("nan")) for name, value in rows
    ]


def comparison_table(rows) -> str:
    width = max(len(name) for name, _, _ in rows)
    lines = [f"{'':<{width}}  {'FLOPs':>16}  {'/ counted':>9}"]
    lines += [f"{name:<{width}}  {value:>16,}  {ratio:>9.4f}" for name, value, ratio in rows]
    return "\n".join(lines)
