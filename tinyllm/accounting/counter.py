"""Counting the FLOPs that actually run: `with FlopCounter() as fc: ...`.

The formulas in flops.py describe an idealized transformer. This module watches the ops that
really execute — forward and backward, op by op — and adds up their cost, so the two can be
printed side by side and disagreements explained instead of assumed away.

How it sees the ops. `FlopCounter` is a `tinyllm.tensor.GraphObserver`. The engine calls
`on_forward(fn, ctx, out, seconds)` after every op's forward and `on_backward(fn, ctx,
seconds)` after every node's backward, while `ctx` still holds what the op recorded (shapes,
`ctx.flops`, saved arrays). A registry, `FLOP_RULES`, maps each Function class to a `FlopRule`:
its family and two small functions that turn that ctx into a count. No op file knows about
counting; a new op registers a rule here (`register_flop_rule`). An op without a rule is
still counted, under "unregistered", and named in `fc.unregistered`.

Two kinds of count, kept apart:

* `gemm` — matrix-product FLOPs, exact: 2 per multiply-add, for every product the code runs.
  MatMul and Linear forward cost `ctx.flops` = 2·m·k·n. Their backward runs one product of the
  same size per input that needs a gradient (Ā = C̄Bᵀ, B̄ = AᵀC̄), so it costs `ctx.flops` times
  the number of `ctx.needs_input_grad` that are True. Attention is counted from `ctx.shapes`
  exactly as tinyllm/kernels/attention.py computes it (see `_sdpa_forward`/`_sdpa_backward`),
  including the backward's recomputation of QKᵀ.
* `other` — everything else, by a visibility convention, not an exact count: one FLOP per
  element an op produces (a reduction: per element it reads; a bias add: per output element).
  A backward is charged what its forward was (a scatter-add or a broadcast-sum: per element
  moved). Pure data movement — reshape, permute, indexing, casts — costs 0.

So `fc.gemm(...)` is the number to compare with 2·(2L²H + 12LH²) or PaLM's 6N + 12LHQT, and
`fc.other(...)` shows how much arithmetic lives outside the matmuls (a few percent in a GPT).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from tinyllm.tensor import GraphObserver, observe

PHASES = ("forward", "backward")


@dataclass(frozen=True)
class FlopRule:
    """How to cost one Function: `forward(ctx, out) -> (gemm, other)`,
    `backward(ctx, out_size) -> (gemm, other)` (out_size: elements the forward produced)."""

    family: str
    forward: Callable
    backward: Callable


FLOP_RULES: dict[type, FlopRule] = {}


def register_flop_rule(function_class: type, family: str, forward: Callable,
                       backward: Callable) -> None:
    """Teach the counter a new op (or replace a rule)."""
    FLOP_RULES[function_class] = FlopRule(family, forward, backward)


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
        rule = FLOP_RULES.get(fn)
        if rule is None:
            self.unregistered.add(fn.__name__)
            return _UNREGISTERED
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
        return sum(getattr(t, attr) for (fam, ph), t in self.by_family.items()
                   if (phase is None or ph == phase) and (families is None or fam in families))

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
            rows.append(f"{fam:<22}{self.gemm('forward', sel):>14,}{self.other('forward', sel):>12,}"
                        f"{self.gemm('backward', sel):>14,}{self.other('backward', sel):>12,}")
        if self.unregistered:
            rows.append(f"unregistered ops (1 FLOP per output element): {sorted(self.unregistered)}")
        return "\n".join(rows)


# --------------------------------------------------------------------------------------------
# The rules. Each reads only what the op's forward left on ctx.
# --------------------------------------------------------------------------------------------

def _prod(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def _per_output(ctx, out):
    return 0, np.size(out)


def _same_as_forward(ctx, out_size):
    return 0, out_size


def _free(ctx, *_):
    return 0, 0


_UNREGISTERED = FlopRule("unregistered", _per_output, _same_as_forward)


# ---- matmul ----------------------------------------------------------------------------------
def _matmul_forward(ctx, out):
    return ctx.flops, 0


def _matmul_backward(ctx, out_size):
    """One product per input needing a gradient; plus the sum `unbroadcast` does when an
    input's batch axes were broadcast (e.g. a shared weight (k, n) against a batch (B, m, k))."""
    a2, b2 = ctx.saved_tensors
    batch = _prod(np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]))
    gemm = other = 0
    for needed, operand in zip(ctx.needs_input_grad, (a2, b2)):
        if needed:
            gemm += ctx.flops
            own = _prod(operand.shape[:-2])
            other += (batch - own) * operand.shape[-2] * operand.shape[-1]
    return gemm, other


def _linear_forward(ctx, out):
    n_out = np.size(out)
    return ctx.flops, n_out if ctx.has_bias else 0


def _linear_backward(ctx, out_size):
    nx, nw, nb = ctx.needs_input_grad
    return ctx.flops * (int(nx) + int(nw)), out_size if nb else 0  # gx, gw; Σ rows for gb


# ---- attention -------------------------------------------------------------------------------
def _sdpa_dims(ctx):
    q_shape, k_shape, v_shape, _ = ctx.shapes
    batch = _prod(np.broadcast_shapes(q_shape[:-2], k_shape[:-2], v_shape[:-2]))
    return batch, q_shape[-2], k_shape[-2], q_shape[-1], v_shape[-1]


def _sdpa_forward(ctx, out):
    """S = QKᵀ: 2·L·S·E per batch·head; O = PV: 2·L·S·Ev. With dropout the op runs the
    reference forward and then recomputes S and PV to apply the mask: twice the products."""
    batch, l, s, e, ev = _sdpa_dims(ctx)
    gemm = 2 * batch * l * s * (e + ev)
    if ctx.meta[1] > 0.0:
        gemm *= 2
    return gemm, batch * l * s  # other: the softmax over the L×S scores, 1 per score


def _sdpa_backward(ctx, out_size):
    """Without dropout the kernel rebuilds P from the saved log-sum-exp, which recomputes
    S = QKᵀ (2LSE), then V̄ = PᵀŌ (2SLEv), P̄ = ŌVᵀ (2LEvS), Q̄ = S̄K (2LSE), K̄ = S̄ᵀQ (2SLE):
    2·L·S·(3E + 2Ev). With dropout P was saved, so no recomputation: 2·L·S·(2E + 2Ev).
    All products run whatever `needs_input_grad` says (the kernel computes every gradient)."""
    batch, l, s, e, ev = _sdpa_dims(ctx)
    recompute = 0 if ctx.meta[1] > 0.0 else e
    return 2 * batch * l * s * (recompute + 2 * e + 2 * ev), batch * l * s


# ---- reductions: one FLOP per element read ----------------------------------------------------
def _sum_forward(ctx, out):
    return 0, _prod(ctx.meta[0])


def _saved0_size(ctx, *_):
    return 0, ctx.saved_tensors[0].size  # Max saves x, Var saves x − mean: both input-sized


def _expand_backward(ctx, out_size):
    return 0, out_size - _prod(ctx.in_shape)  # unbroadcast: the stretched copies are summed


def _embedding_backward(ctx, out_size):
    return 0, out_size  # scatter-add of every looked-up row into the table's gradient


def _cross_entropy_forward(ctx, out):
    return 0, ctx.saved_tensors[0].size  # log-softmax over every logit


def _cross_entropy_backward(ctx, out_size):
    return 0, ctx.saved_tensors[0].size  # softmax − one-hot, per logit


def _register_tinyllm_ops():
    # import_module, because tinyllm.ops re-exports functions named like some of its modules
    # (`tinyllm.ops.softmax` is the function; the module is in sys.modules).
    from importlib import import_module

    attention, ew, embedding, linalg, norm, reduce, shape, sm = (
        import_module(f"tinyllm.ops.{name}") for name in
        ("attention", "elementwise", "embedding", "linalg", "norm", "reduce", "shape", "softmax"))

    register_flop_rule(linalg.MatMul, "matmul", _matmul_forward, _matmul_backward)
    register_flop_rule(linalg.Linear, "linear", _linear_forward, _linear_backward)
    register_flop_rule(attention.ScaledDotProductAttention, "attention", _sdpa_forward,
                       _sdpa_backward)
    for cls in (ew.Add, ew.Sub, ew.Mul, ew.Div, ew.Pow, ew.Maximum, ew.Where, ew.Neg, ew.Exp,
                ew.Log, ew.Sqrt, ew.Abs, ew.Clamp, embedding.Dropout):
        register_flop_rule(cls, "elementwise", _per_output, _same_as_forward)
    for cls in (ew.GELU, ew.ReLU, ew.Tanh, ew.Sigmoid):
        register_flop_rule(cls, "activation", _per_output, _same_as_forward)
    register_flop_rule(reduce.Sum, "reduction", _sum_forward, _sum_forward)
    register_flop_rule(reduce.Max, "reduction", _saved0_size, _saved0_size)
    register_flop_rule(reduce.Var, "reduction", _saved0_size, _saved0_size)
    for cls in (sm.Softmax, sm.LogSoftmax):
        register_flop_rule(cls, "softmax/cross-entropy", _per_output, _same_as_forward)
    register_flop_rule(sm.CrossEntropy, "softmax/cross-entropy", _cross_entropy_forward,
                       _cross_entropy_backward)
    register_flop_rule(norm.LayerNorm, "layer norm", _per_output, _same_as_forward)
    register_flop_rule(embedding.Embedding, "embedding", _free, _embedding_backward)
    for cls in (shape.Reshape, shape.Permute, shape.Contiguous, shape.Concatenate,
                shape.GetItem, shape.MaskedFill, ew.Cast, ew.Clone):
        register_flop_rule(cls, "data movement", _free, _free)
    register_flop_rule(shape.Expand, "data movement", _free, _expand_backward)
    # Activation checkpointing's wrapper node costs nothing itself: the ops it runs (the block's
    # forward, and in backward its recomputation and backward) are observed and counted one by one.
    from tinyllm.recompute import CheckpointFunction
    register_flop_rule(CheckpointFunction, "data movement", _free, _free)


_register_tinyllm_ops()


# --------------------------------------------------------------------------------------------
# Counted vs formulas
# --------------------------------------------------------------------------------------------

def compare_with_formulas(fc: FlopCounter, config, batch_size: int, seq_len: int) -> list:
    """Rows (name, FLOPs, ratio to the counted training matmul FLOPs) for one training step.

    `config`: GPTConfig-like (vocab_size, n_layer, n_head, n_embd). The formulas use
    N = the matmul weights (12·n_layer·H² + V·H for a tied GPT): biases and norms are not
    multiplied by every token. Per step = per token × batch_size·seq_len.
    """
    from tinyllm.accounting.flops import (kaplan_flops_per_token, layer_forward_flops,
                                          palm_flops_per_token)

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
        ("Kaplan 3·(2N + 2·n_layer·T·H), N = blocks",
         kaplan_flops_per_token(n_blocks, n_layer, t, h) * tokens),
        ("PaLM (6N + 12·L·H·Q·T)·tokens",
         palm_flops_per_token(n_matmul, n_layer, config.n_head, h // config.n_head, t) * tokens),
    ]
    return [(name, int(value), value / counted if counted else float("nan"))
            for name, value in rows]


def comparison_table(rows) -> str:
    width = max(len(name) for name, _, _ in rows)
    lines = [f"{'':<{width}}  {'FLOPs':>16}  {'/ counted':>9}"]
    lines += [f"{name:<{width}}  {value:>16,}  {ratio:>9.4f}" for name, value, ratio in rows]
    return "\n".join(lines)
