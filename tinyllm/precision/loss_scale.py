"""Dynamic loss scaling for fp16 training (PyTorch's GradScaler, same names and semantics).

fp16 represents magnitudes only from 2⁻²⁴ ≈ 6.0e-8 (smallest subnormal) to 65504. Gradients of
a deep network are often smaller than the bottom of that range; in fp16 they round to zero and
learning silently stops. Loss scaling (Micikevicius et al. 2018, "Mixed Precision Training")
multiplies the loss by a factor S before the backward pass. By the chain rule every gradient is
then multiplied by S as well, which lifts the small ones into fp16's range; before the
optimizer uses them they are divided by S again ("unscaled", in fp32):

    L' = S · L   →   ∇L' = S · ∇L   →   g = ∇L' / S

Too large an S makes some gradient overflow to inf (or NaN). *Dynamic* loss scaling finds S by
trial: start high (2¹⁶), and after each backward pass

    if any gradient is inf/NaN:   skip this optimizer step,  S ← S · backoff_factor (0.5),
                                  and restart the count of clean steps;
    else:                         take the step; after growth_interval (2000) clean steps in a
                                  row, S ← S · growth_factor (2.0), unless that overflows fp32.

The scale hovers just below the largest value that does not overflow. bf16 has fp32's
exponent range, so bf16 training needs no loss scaling (`GradScaler(enabled=False)` makes every
method a pass-through).

The protocol per iteration, as in PyTorch:

    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)      # optional: only to look at / clip the true gradients
    scaler.step(optimizer)          # unscales if not done yet; skips the step on inf/NaN
    scaler.update()                 # adjusts the scale from what this iteration found

An "optimizer" is any object with `.param_groups` (a list of dicts whose "params" hold objects
with a `.grad` NumPy array or None, such as tinyllm Tensors) and a `.step()` method.
`unscale_` also accepts a plain list of such parameters or of gradient arrays. Gradients are
unscaled in place. The scale is a float32 number, as PyTorch keeps it.
"""

from __future__ import annotations

import numpy as np

_READY, _UNSCALED, _STEPPED = "ready", "unscaled", "stepped"


def unscale_grads_(grads, inv_scale) -> bool:
    """Multiply every gradient array in place by `inv_scale`; True if any held inf or NaN."""
    found_inf = False
    for g in grads:
        if not np.all(np.isfinite(g)):  # checked before scaling, as PyTorch does
            found_inf = True
        with np.errstate(over="ignore", invalid="ignore"):
            g *= np.asarray(inv_scale, dtype=g.dtype)
    return found_inf


def _gradients(source) -> list[np.ndarray]:
    """The gradient arrays of an optimizer-like object, or of a list of params / arrays."""
    if hasattr(source, "param_groups"):
        params = [p for group in source.param_groups for p in group["params"]]
    elif isinstance(source, (list, tuple)):
        params = list(source)
    else:
        raise TypeError(
            f"GradScaler: expected an optimizer with .param_groups or a list of "
            f"parameters/gradients, got {type(source).__name__}"
        )
    grads = []
    for i, p in enumerate(params):
        g = p if isinstance(p, np.ndarray) else getattr(p, "grad", None)
        if g is None:
            continue
        if not isinstance(g, np.ndarray):
            raise TypeError(f"GradScaler: gradient {i} is a {type(g).__name__}, not a NumPy array")
        if g.dtype == np.float16:
            raise ValueError(
                "Attempting to unscale FP16 gradients. Keep fp32 master gradients "
                "for the optimizer (fp16 cannot hold the unscaled values)."
            )
        if g.dtype.kind != "f":  # bf16 bit patterns (uint16): multiplying them is meaningless
            raise ValueError(
                f"GradScaler: gradient {i} has dtype {g.dtype} (bf16 bit patterns?); "
                f"unscale fp32 master gradients (see MixedPrecisionOptimizer)"
            )
        grads.append(g)
    return grads


class GradScaler:
    """Dynamic loss scaler: `GradScaler(init_scale=2**16, growth_factor=2.0,
    backoff_factor=0.5, growth_interval=2000, enabled=True)`."""

    def __init__(
        self,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
        enabled: bool = True,
    ):
        self._enabled = bool(enabled)
        if growth_factor <= 1.0:
            raise ValueError(f"GradScaler: growth_factor must be > 1.0, got {growth_factor}")
        if not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"GradScaler: backoff_factor must be in (0, 1), got {backoff_factor}")
        if int(growth_interval) < 1:
            raise ValueError(f"GradScaler: growth_interval must be ≥ 1, got {growth_interval}")
        self._scale = np.float32(init_scale)
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = int(growth_interval)
        self._growth_tracker = 0  # consecutive clean steps since the scale last changed
        self._per_optimizer = {}  # id(optimizer) -> {"stage": ..., "found_inf": bool}

    # ---- the four calls of an iteration ------------------------------------------------------

    def scale(self, outputs):
        """outputs · S: a tinyllm Tensor, a float, an array, or a list/tuple of those.

        An fp16 output is cast up to fp32 first (differentiably, for a Tensor): S = 2^16 is
        itself beyond fp16's largest value, 65504.
        """
        if not self._enabled:
            return outputs
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        if getattr(outputs, "dtype", None) == np.float16:
            outputs = outputs.astype(np.float32)
        return outputs * float(self._scale)

    def _state(self, optimizer) -> dict:
        return self._per_optimizer.setdefault(id(optimizer), {"stage": _READY, "found_inf": None})

    def unscale_(self, optimizer) -> None:
        """Divide the gradients by S in place and record whether any is inf/NaN."""
        if not self._enabled:
            return
        state = self._state(optimizer)
        if state["stage"] == _UNSCALED:
            raise RuntimeError(
                "unscale_() has already been called on this optimizer since the last update()."
            )
        if state["stage"] == _STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        grads = _gradients(optimizer)
        # 1/S computed in float64, then rounded to float32, as PyTorch does.
        inv_scale = np.float32(1.0 / np.float64(self._scale))
        state["found_inf"] = unscale_grads_(grads, inv_scale) if grads else None
        state["stage"] = _UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """Unscale (if not yet done) and call optimizer.step() unless a gradient was inf/NaN.

        Returns what optimizer.step() returned, or None when the step was skipped.
        """
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        state = self._state(optimizer)
        if state["stage"] == _STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] == _READY:
            self.unscale_(optimizer)
        if state["found_inf"] is None:
            raise RuntimeError(
                "No inf checks were recorded for this optimizer (none of its "
                "parameters has a gradient)."
            )
        retval = None if state["found_inf"] else optimizer.step(*args, **kwargs)
        state["stage"] = _STEPPED
        return retval

    def update(self, new_scale=None) -> None:
        """Back off on any inf/NaN this iteration, else count a clean step (and maybe grow).

        `new_scale` sets the scale directly instead (the growth count is left as it is).
        """
        if not self._enabled:
            return
        if new_scale is not None:
            self._scale = np.float32(new_scale)
        else:
            found = [
                s["found_inf"] for s in self._per_optimizer.values() if s["found_inf"] is not None
            ]
            if not found:
                raise RuntimeError("No inf checks were recorded prior to update().")
            self._scale, self._growth_tracker = update_scale(
                self._scale,
                self._growth_tracker,
                any(found),
                self._growth_factor,
                self._backoff_factor,
                self._growth_interval,
            )
        self._per_optimizer = {}

    def update_found_inf(self, found_inf: bool) -> None:
        """update() for a caller that did its own inf check — e.g. a data-parallel strategy
        whose ranks each unscaled their gradient shards and agreed on one flag."""
        if self._enabled:
            self._scale, self._growth_tracker = update_scale(
                self._scale,
                self._growth_tracker,
                bool(found_inf),
                self._growth_factor,
                self._backoff_factor,
                self._growth_interval,
            )
            self._per_optimizer = {}

    # ---- inspection and checkpoints ----------------------------------------------------------

    def get_scale(self) -> float:
        return float(self._scale) if self._enabled else 1.0

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def is_enabled(self) -> bool:
        return self._enabled

    def state_dict(self) -> dict:
        """Plain numbers (JSON-able); empty when disabled, as in PyTorch."""
        if not self._enabled:
            return {}
        return {
            "scale": float(self._scale),
            "growth_factor": self._growth_factor,
            "backoff_factor": self._backoff_factor,
            "growth_interval": self._growth_interval,
            "_growth_tracker": int(self._growth_tracker),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        if not self._enabled:
            raise RuntimeError(
                "Attempted to load_state_dict() in a disabled instance of GradScaler."
            )
        if len(state_dict) == 0:
            raise RuntimeError(
                "The source state dict is empty, possibly because it was saved "
                "from a disabled instance of GradScaler."
            )
        missing = {
            "scale",
            "growth_factor",
            "backoff_factor",
            "growth_interval",
            "_growth_tracker",
        } - set(state_dict)
        if missing:
            raise KeyError(f"GradScaler.load_state_dict: missing keys {sorted(missing)}")
        self._scale = np.float32(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])


def update_scale(
    scale,
    growth_tracker: int,
    found_inf: bool,
    growth_factor: float,
    backoff_factor: float,
    growth_interval: int,
):
    """One step of the dynamic-scale state machine (PyTorch's _amp_update_scale_), pure.

    Returns (new scale as float32, new growth tracker).
    """
    scale = np.float32(scale)
    if found_inf:
        return np.float32(scale * np.float32(backoff_factor)), 0
    successful = growth_tracker + 1
    if successful == growth_interval:
        with np.errstate(over="ignore"):  # growing past fp32's max is refused just below
            grown = np.float32(np.float64(scale) * growth_factor)
        return (grown if np.isfinite(grown) else scale), 0
    return scale, successful
