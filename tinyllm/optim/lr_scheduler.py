"""Learning-rate schedules: linear warmup, then cosine or linear decay.

Large steps early in training, when Adam's second-moment estimates are still poor, can
destabilize a transformer, so the rate ramps up linearly over `warmup` steps; afterwards it
decays, by a half cosine (GPT-3, Chinchilla) or a straight line, to `min_lr` at `total` steps:

    lr(t) = max_lr · (t + 1) / warmup                                  t < warmup
    lr(t) = min_lr + ½(1 + cos(π·r))·(max_lr − min_lr),  r = (t − warmup)/(total − warmup)
    lr(t) = min_lr + (1 − r)·(max_lr − min_lr)                        (linear decay)
    lr(t) = min_lr                                                     t ≥ total

The schedules are pure functions of the step; `LambdaLR` (PyTorch's name) applies one to an
optimizer: each `step()` advances the count and writes the new rate into every group.
"""

from __future__ import annotations

import math


def warmup_cosine(step: int, max_lr: float, warmup: int, total: int, min_lr: float = 0.0) -> float:
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    r = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * r)) * (max_lr - min_lr)


def warmup_linear(step: int, max_lr: float, warmup: int, total: int, min_lr: float = 0.0) -> float:
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    r = (step - warmup) / max(1, total - warmup)
    return min_lr + (1.0 - r) * (max_lr - min_lr)


class LambdaLR:
    """Set each group's lr to base_lr · fn(step) (torch.optim.lr_scheduler.LambdaLR)."""

    def __init__(self, optimizer, lr_lambda):
        self.optimizer = optimizer
        self.lr_lambda = lr_lambda
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def _apply(self):
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = base * self.lr_lambda(self.last_epoch)

    def step(self) -> None:
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        self.last_epoch = int(state["last_epoch"])
        self.base_lrs = list(state["base_lrs"])
        self._apply()


class CosineWithWarmup(LambdaLR):
    def __init__(self, optimizer, warmup: int, total: int, min_lr_ratio: float = 0.1):
        super().__init__(optimizer, lambda t: warmup_cosine(t, 1.0, warmup, total, min_lr_ratio))


class LinearWithWarmup(LambdaLR):
    def __init__(self, optimizer, warmup: int, total: int, min_lr_ratio: float = 0.0):
        super().__init__(optimizer, lambda t: warmup_linear(t, 1.0, warmup, total, min_lr_ratio))
