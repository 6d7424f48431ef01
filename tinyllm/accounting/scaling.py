"""Compute-optimal scaling (Hoffmann et al. 2022, "Chinchilla"): how big, for how long?

A budget of C FLOPs buys N parameters trained on D tokens with C ≈ 6·N·D (flops.py). A bigger
model learns more per token but sees fewer tokens; the compute-optimal split minimizes the final
loss at fixed C. Two answers:

1. The rule of thumb the notes quote: about 20 tokens per parameter, D = 20·N. With C = 6ND,
   N = √(C / (6·20)) and D = 20·N. Table 3 of the paper (its Approach 1 projections: 400M
   parameters → 8.0B tokens at 1.92e19 FLOPs, … 1T → 21.2T tokens at 1.27e26) is this rule to
   within a few percent (`CHINCHILLA_TABLE3`).

2. The paper's fitted loss (Approach 3, eq. 2 with the fitted constants of §3.3):

       L(N, D) = E + A / N^α + B / D^β,   E = 1.69, A = 406.4, B = 410.7, α = 0.34, β = 0.28

   minimized under C = 6ND. Setting dL/dN = 0 with D = C/(6N) gives αA·N^(−α) = βB·D^(−β), so

       N_opt = G·(C/6)^(β/(α+β)),   D_opt = G⁻¹·(C/6)^(α/(α+β)),   G = (αA / (βB))^(1/(α+β)).

   Because α ≠ β the tokens per parameter D/N = G⁻²·(C/6)^((α−β)/(α+β)) are not constant:
   they grow with the budget, and with these constants they are not 20 — the fitted law and
   the rule disagree (examples/scaling.py --table prints by how much). That is a known property
   of the published fit, not a bug to hide.

`fit_power_law` fits y = a·x^b by least squares in log space — the tool for turning "the best
model size at each budget" from a sweep into an exponent comparable with β/(α+β).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def compute_optimal_by_rule(flops: float, tokens_per_param: float = 20.0) -> tuple[float, float]:
    """(N, D) with D = r·N and 6·N·D = C: N = √(C / (6r)), D = r·N."""
    if not flops > 0 or not tokens_per_param > 0:
        raise ValueError(
            f"compute_optimal_by_rule: need C > 0 and tokens_per_param > 0, got "
            f"C={flops!r}, tokens_per_param={tokens_per_param!r}"
        )
    n = math.sqrt(flops / (6.0 * tokens_per_param))
    return n, tokens_per_param * n


@dataclass(frozen=True)
class ChinchillaLaw:
    """L(N, D) = E + A/N^α + B/D^β; defaults: Hoffmann et al. 2022's fitted constants."""

    E: float = 1.69
    A: float = 406.4
    B: float = 410.7
    alpha: float = 0.34
    beta: float = 0.28

    def loss(self, n_params, n_tokens):
        return (
            self.E
            + self.A / np.power(n_params, self.alpha)
            + self.B / np.power(n_tokens, self.beta)
        )

    @property
    def G(self) -> float:
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    def compute_optimal(self, flops: float) -> tuple[float, float]:
        """Closed-form (N_opt, D_opt) minimizing the loss under 6·N·D = C."""
        if not flops > 0:
            raise ValueError(f"compute budget must be positive, got {flops!r}")
        s = self.alpha + self.beta
        n = self.G * (flops / 6.0) ** (self.beta / s)
        d = (flops / 6.0) ** (self.alpha / s) / self.G
        return n, d

    def compute_optimal_numeric(self, flops: float, tol: float = 1e-10) -> tuple[float, float]:
        """The same minimum found by golden-section search over u = ln N ∈ [0, ln(C/6)].

        L(e^u, C/(6e^u)) = E + A·e^(−αu) + B·(6/C)^β·e^(βu) is convex in u, so the search
        converges to the unique minimum. Used to check the closed form.
        """
        lo, hi = 0.0, math.log(flops / 6.0)
        f = lambda u: self.loss(math.exp(u), flops / (6.0 * math.exp(u)))  # noqa: E731
        phi = (math.sqrt(5.0) - 1.0) / 2.0
        a, b = hi - phi * (hi - lo), lo + phi * (hi - lo)
        fa, fb = f(a), f(b)
        while hi - lo > tol:
            if fa < fb:
                hi, b, fb = b, a, fa
                a = hi - phi * (hi - lo)
                fa = f(a)
            else:
                lo, a, fa = a, b, fb
                b = lo + phi * (hi - lo)
                fb = f(b)
        n = math.exp((lo + hi) / 2.0)
        return n, flops / (6.0 * n)


CHINCHILLA = ChinchillaLaw()

# Hoffmann et al. 2022, Table 3 (Approach 1 projections), as printed:
# (parameters, training FLOPs, training tokens).
CHINCHILLA_TABLE3 = (
    (400e6, 1.92e19, 8.0e9),
    (1e9, 1.21e20, 20.2e9),
    (10e9, 1.23e22, 205.1e9),
    (67e9, 5.76e23, 1.5e12),
    (175e9, 3.85e24, 3.7e12),
    (280e9, 9.90e24, 5.9e12),
    (520e9, 3.43e25, 11.0e12),
    (1e12, 1.27e26, 21.2e12),
    (10e12, 1.30e28, 216.2e12),
)


def scaling_rows(budgets, law: ChinchillaLaw = CHINCHILLA, tokens_per_param: float = 20.0):
    """One dict per budget: the rule's and the fitted law's N, D, D/N, and their ratio."""
    rows = []
    for c in budgets:
        n_rule, d_rule = compute_optimal_by_rule(c, tokens_per_param)
        n_law, d_law = law.compute_optimal(c)
        rows.append(
            {
                "flops": c,
                "n_rule": n_rule,
                "d_rule": d_rule,
                "n_law": n_law,
                "d_law": d_law,
                "tokens_per_param_law": d_law / n_law,
                "n_law_over_rule": n_law / n_rule,
                "loss_rule": float(law.loss(n_rule, d_rule)),
                "loss_law": float(law.loss(n_law, d_law)),
            }
        )
    return rows


@dataclass(frozen=True)
class PowerLaw:
    """y = coefficient · x^exponent, fitted in log space; r2 is the fit's R² in log space."""

    coefficient: float
    exponent: float
    r2: float

    def __call__(self, x):
        return self.coefficient * np.power(x, self.exponent)


def fit_power_law(x, y) -> PowerLaw:
    """Least-squares fit of log y = log a + b·log x (e.g. best model size vs compute budget)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(
            f"fit_power_law: need two 1-D arrays of the same length ≥ 2, got shapes "
            f"{x.shape} and {y.shape}"
        )
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("fit_power_law: every x and y must be positive (the fit is in log space)")
    lx, ly = np.log(x), np.log(y)
    if np.ptp(lx) == 0:
        raise ValueError("fit_power_law: all x are equal; the exponent is undetermined")
    b, log_a = np.polyfit(lx, ly, 1)
    resid = ly - (log_a + b * lx)
    ss_tot = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else 1.0
    return PowerLaw(float(math.exp(log_a)), float(b), r2)


__all__ = [
    "compute_optimal_by_rule",
    "ChinchillaLaw",
    "CHINCHILLA",
    "CHINCHILLA_TABLE3",
    "scaling_rows",
    "PowerLaw",
    "fit_power_law",
]
