"""Sampling: torch.multinomial — draw category indices with probabilities given by weights.

Row r of `input` holds non-negative weights w₁ … wₙ (they need not sum to one); each draw picks
category i with probability pᵢ = wᵢ / Σⱼ wⱼ.

With replacement, the draws are independent: invert the cumulative distribution, i.e. for a
uniform u ∈ [0, 1) choose the first i with u < (w₁ + … + wᵢ) / Σⱼ wⱼ.

Without replacement, each draw removes its category and renormalises the rest. Drawing all k
at once gives the same distribution: give each category a key eᵢ / wᵢ with eᵢ ~ Exp(1)
independent, and take the k smallest keys. (An exponential race: the category whose clock
rings first, min eᵢ/wᵢ, is i with probability wᵢ / Σ w; by memorylessness the remaining clocks
race afresh among the rest — exactly sequential sampling without replacement.)

The random numbers come from `generator` or tinyllm's seeded default generator
(tinyllm/runtime/random.py), so a seed reproduces the draws. The result is an int64 tensor of
shape (num_samples,) or (rows, num_samples); sampling is not differentiable.
"""

from __future__ import annotations

import numpy as np

from tinyllm.engine import Tensor
from tinyllm.runtime.random import generator_or_default


def multinomial(
    input: Tensor,  # noqa: A002 - PyTorch's name
    num_samples: int,
    replacement: bool = False,
    *,
    generator=None,
) -> Tensor:
    """Indices drawn from each row of weights `input` (1-D or 2-D), PyTorch's torch.multinomial."""
    w = np.asarray(input.numpy() if isinstance(input, Tensor) else input, dtype=np.float64)
    if w.ndim not in (1, 2):
        raise ValueError(f"multinomial: input must be 1-D or 2-D, got shape {w.shape}")
    rows = w.reshape(1, -1) if w.ndim == 1 else w
    n = rows.shape[1]
    if not isinstance(num_samples, (int, np.integer)) or num_samples <= 0:
        raise ValueError(f"multinomial: num_samples must be a positive int, got {num_samples!r}")
    if n == 0:
        raise ValueError("multinomial: input has no categories (its last dim is 0)")
    if not np.all(np.isfinite(rows)) or np.any(rows < 0):
        raise ValueError("multinomial: weights must be finite and non-negative")
    totals = rows.sum(axis=1, keepdims=True)
    if np.any(totals <= 0):
        raise ValueError("multinomial: every row needs a positive sum of weights")
    g = generator_or_default(generator)
    if replacement:
        cdf = np.cumsum(rows / totals, axis=1)
        cdf[:, -1] = 1.0  # rounding must not leave u above the last bound
        u = g.random((rows.shape[0], num_samples))
        out = np.stack([np.searchsorted(c, ui, side="right") for c, ui in zip(cdf, u)])
    else:
        if num_samples > n:
            raise ValueError(
                f"multinomial: cannot draw {num_samples} samples without replacement from "
                f"{n} categories"
            )
        if np.any((rows > 0).sum(axis=1) < num_samples):
            raise ValueError(
                f"multinomial: a row has fewer than {num_samples} categories of positive "
                "weight to draw without replacement"
            )
        with np.errstate(divide="ignore"):
            keys = g.standard_exponential(rows.shape) / rows  # zero weight → key inf, never drawn
        out = np.argsort(keys, axis=1, kind="stable")[:, :num_samples]
    out = out.astype(np.int64)
    return Tensor(out[0] if w.ndim == 1 else out)
