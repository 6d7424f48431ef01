"""Mixed-precision training: a half-precision model, fp32 master weights in the optimizer.

Micikevicius et al. 2018 ("Mixed Precision Training") train in fp16 without losing accuracy
with three ideas; this module and loss_scale.py implement them:

1. **fp32 master weights.** The model's weights, activations and gradients are half precision,
   but the optimizer keeps an fp32 copy of every weight and updates *that*. Updating half
   weights directly loses small updates: a step Δ smaller than half the spacing of the format
   at the weight (an ulp of bf16 at 0.02 is 2⁻¹³ ≈ 1.2e-4; of fp16, 2⁻¹⁶ ≈ 1.5e-5) rounds
   away to nothing, and Adam's steps are lr-sized, often below that.
2. **Loss scaling** (fp16 only; GradScaler): gradients too small for fp16 are lifted by S.
3. **fp32 arithmetic where it matters**: reductions and the loss. In tinyllm every op
   accumulates in fp32 anyway (half.py); the training loop computes the cross-entropy on
   float32 logits.

One optimizer step, in order (`MixedPrecisionOptimizer.step`):

    g32  = fp32(g_half)                    cast the half gradients up (transient fp32 copies)
    g32 /= S;  skip if any inf/NaN         unscale (GradScaler.step), S ← S/2 on overflow
    clip ‖g32‖ (optional)                  on the true, unscaled gradients
    θ32  ← AdamW(θ32, g32, m, v)           the wrapped optimizer, on the fp32 masters
    θ_half ← round(θ32)                    rewrite the model's weights from the masters

Memory per parameter (the ZeRO paper's mixed-precision Adam layout, K = 12):

    2 (half weights) + 2 (half gradients) + 4 (fp32 master) + 4 (m) + 4 (v) = 16 bytes,
                                            └──── K = 12 optimizer-state bytes ────┘

against 4 + 4 + 8 = 16 for fp32 training: with Adam the *model states* do not shrink; mixed
precision saves activation memory, bandwidth and (on real hardware) time, and it is ZeRO that
then partitions the 12 bytes. The fp32 gradient copies exist only inside step().

The conversions are pure functions on arrays of any shape (half.py), so the same three lines
serve a whole parameter here and one flat shard of a ZeRO partition:

    master = to_float32(half_params).copy()            fp32 master from the half weights
    g32    = to_float32(half_grads, out=grad_buffer)   cast a gradient shard up
    to_storage(master, dtype, out=half_params)         round the master into the half buffer
"""

from __future__ import annotations

import numpy as np

from tinyllm.dtypes import is_half, to_float32, to_storage
from tinyllm.engine import Tensor
from tinyllm.optim.clip import clip_grad_norm_


def master_copy(param_data: np.ndarray) -> np.ndarray:
    """A new fp32 array with the values of `param_data` (half storage or float): exact."""
    return np.array(to_float32(param_data), dtype=np.float32, copy=True)


def write_model_params_(model_data: np.ndarray, master: np.ndarray) -> None:
    """Round the fp32 master into the model's parameter storage, in place (a view into a flat
    buffer works too). A float32 model receives the master's values exactly."""
    dtype = model_data.dtype
    if is_half(dtype):
        to_storage(master, dtype, out=model_data)
    else:
        model_data[...] = master


class MixedPrecisionOptimizer:
    """Wrap an optimizer built over a model's parameters so that it updates fp32 masters.

    `MixedPrecisionOptimizer(optimizer, scaler=None, max_grad_norm=None)`:
    - `optimizer`: a fresh tinyllm optimizer (e.g. AdamW) over the model's parameters, in any
      float dtype. Its parameter groups are re-pointed at fp32 master copies, made now from the
      parameters' current values — build it before `model.to(half)` to keep the exact fp32
      initialization, or after (the masters then start from the rounded weights).
    - `scaler`: a GradScaler for fp16 (dynamic loss scaling); None for bf16 or fp32.
    - `max_grad_norm`: clip the global norm of the unscaled fp32 gradients before the update.
    - `master_weights=False`: the ablation that shows why masters exist — before every step
      the fp32 copy is overwritten with the model's half weights, so each update is applied
      to the half value and rounded straight back (what updating half weights in place does;
      Adam's m and v stay fp32). Updates below half an ulp are lost.

    Per iteration: `opt.zero_grad(); opt.backward(loss); opt.step()` — or scale the loss
    yourself with `opt.scale_loss(loss).backward()`. `param_groups` are the wrapped
    optimizer's (set "lr" there); `skipped_steps` counts steps the scaler skipped.
    """

    def __init__(
        self,
        optimizer,
        scaler=None,
        max_grad_norm: float | None = None,
        master_weights: bool = True,
    ):
        if getattr(optimizer, "state", None):
            raise ValueError(
                "MixedPrecisionOptimizer: wrap a fresh optimizer — this one has "
                "state already, keyed by the model's parameters"
            )
        self.optimizer = optimizer
        self.scaler = scaler
        self.max_grad_norm = max_grad_norm
        self.master_weights = master_weights
        self.model_params: list[Tensor] = []
        self.master_params: list[Tensor] = []
        for group in optimizer.param_groups:
            masters = []
            for p in group["params"]:
                m = Tensor(master_copy(p.data), requires_grad=True)
                self.model_params.append(p)
                self.master_params.append(m)
                masters.append(m)
            group["params"] = masters
        self.skipped_steps = 0

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @property
    def state(self):
        return self.optimizer.state

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.model_params:
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad[...] = 0
        for m in self.master_params:
            m.grad = None

    def scale_loss(self, loss: Tensor) -> Tensor:
        """The loss to differentiate: float32, times the scaler's S when there is one."""
        if is_half(loss.dtype):
            loss = loss.float()
        return loss if self.scaler is None else self.scaler.scale(loss)

    def backward(self, loss: Tensor) -> None:
        self.scale_loss(loss).backward()

    def step(self) -> bool:
        """Update the masters from the model's gradients and round them back into the model.
        Returns False when the loss scaler skipped the step (an inf/NaN gradient)."""
        for p, m in zip(self.model_params, self.master_params):
            m.grad = None if p.grad is None else master_copy(p.grad)  # fp32 gradient
            if not self.master_weights:
                m.data[...] = to_float32(p.data)  # (the ablation)
        masters = self.master_params
        if self.scaler is None:
            if self.max_grad_norm is not None:
                clip_grad_norm_(masters, self.max_grad_norm)
            self.optimizer.step()
            applied = True
        else:
            self.scaler.unscale_(self.optimizer)  # g /= S, find inf
            if self.max_grad_norm is not None:
                clip_grad_norm_(masters, self.max_grad_norm)  # leaves non-finite grads alone
            before = self.scaler.get_scale()
            self.scaler.step(self.optimizer)  # skipped on inf/NaN
            self.scaler.update()
            # The scaler backs off (×backoff_factor < 1) exactly when it found inf/NaN.
            applied = not self.scaler.get_scale() < before
            self.skipped_steps += not applied
        if applied:
            for p, m in zip(self.model_params, masters):
                write_model_params_(p.data, m.data)
        for m in masters:  # free the fp32 copies
            m.grad = None
        return applied

    def state_arrays(self) -> dict:
        """The arrays this training setup keeps between steps, by memory-ledger tag: the
        model's weights and gradients, and the masters plus the optimizer's state."""
        opt_states = [m.data for m in self.master_params] if self.master_weights else []
        for st in self.optimizer.state.values():
            opt_states += [v for v in st.values() if isinstance(v, np.ndarray)]
        return {
            "parameters": [p.data for p in self.model_params],
            "gradients": [p.grad for p in self.model_params if p.grad is not None],
            "optimizer_states": opt_states,
        }


def state_arrays(params, optimizer) -> dict:
    """The same listing for plain (single-precision) training with `optimizer`."""
    if isinstance(optimizer, MixedPrecisionOptimizer):
        return optimizer.state_arrays()
    params = list(params)
    opt_states = [
        v for st in optimizer.state.values() for v in st.values() if isinstance(v, np.ndarray)
    ]
    return {
        "parameters": [p.data for p in params],
        "gradients": [p.grad for p in params if p.grad is not None],
        "optimizer_states": opt_states,
    }
