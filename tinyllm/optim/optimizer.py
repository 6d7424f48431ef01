"""Optimizers: SGD with momentum, Adam, AdamW — torch.optim's equations, defaults and state.

An optimizer owns *parameter groups*: lists of parameters that share hyper-parameters (e.g. a
group with weight decay for matrices and one without for biases and LayerNorm weights). Each
parameter gets its own *state* — momentum buffers, Adam's moments — created lazily on the
first step. `step()` reads each parameter's `.grad` and updates `.data` in place; parameters
whose grad is None are skipped, as in PyTorch.

SGD (with momentum μ, dampening τ, weight decay λ; torch.optim.SGD):
    d = g + λθ;   b ← d (first step) or μb + (1 − τ)d;   d ← d + μb (Nesterov) or b;   θ ← θ − lr·d

Adam / AdamW: see tinyllm/kernels/adam.py, where the update is one pure function shared with
ZeRO shards and CPU offload. Defaults as PyTorch: lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
weight_decay 0 for Adam and 0.01 for AdamW.

`state_dict()` has PyTorch's layout: {"state": {index: {...}}, "param_groups": [{..., "params":
[indices]}]}, with parameters numbered in group order. `load_state_dict` also takes a state
dict made by torch.optim (its tensors converted to NumPy, or as tinyllm Tensors): torch's
tensor `step` becomes an int, and PyTorch's switches are read as follows —

    foreach, fused, capturable, differentiable   ignored: they choose PyTorch's kernels, not
                                                 the update (the same equations run here)
    amsgrad, maximize (and decoupled_weight_decay accepted only at the value that describes
    for Adam vs AdamW)                           this optimizer's own update; any other value
                                                 is an error, since tinyllm does not implement
                                                 that update and silently ignoring it would
                                                 train differently

The constructors take the same keywords with the same rules. Every state entry must belong to a
parameter of the groups and hold exactly the optimizer's state keys (Adam: step, exp_avg,
exp_avg_sq; SGD: momentum_buffer), each array shaped like its parameter.
"""

from __future__ import annotations

import numpy as np

from tinyllm import kernels
from tinyllm.engine import Tensor, enable_grad

# PyTorch's switches that select an implementation, not an update: accepted and dropped.
IGNORED_OPTIONS = ("foreach", "fused", "capturable", "differentiable")


def _to_python(value, what):
    """A 0-d array / Tensor / NumPy scalar (as torch state dicts hold) → a Python number."""
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"{what}: expected a scalar, got an array of shape {value.shape}")
        value = value.reshape(()).item()
    return value.item() if isinstance(value, np.generic) else value


def check_unsupported(name: str, options: dict, supported: dict) -> None:
    """Raise if an option tinyllm does not implement is set away from its one allowed value."""
    for key, allowed in supported.items():
        if key in options and options[key] is not None and bool(options[key]) != allowed:
            raise ValueError(
                f"{name}: {key}={options[key]!r} is not implemented in tinyllm (only "
                f"{key}={allowed}); it changes the update, so it cannot be ignored"
            )


class Optimizer:
    defaults: dict = {}
    state_keys: tuple = ()  # the keys of each parameter's state, as torch.optim names them
    fixed_options: dict = {}  # PyTorch options this optimizer supports at one value only

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.param_groups: list[dict] = []
        self.state: dict[int, dict] = {}  # keyed by id(param)
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group (e.g. layers unfrozen during fine-tuning); options it leaves out take
        the optimizer's defaults."""
        g = dict(param_group)
        params = g["params"]
        g["params"] = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        for p in g["params"]:
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(
                    f"{type(self).__name__}: can only optimize tensors that "
                    f"require grad, got {type(p).__name__}"
                )
            if id(p) in seen:
                raise ValueError(
                    f"{type(self).__name__}: a parameter appears in more than one group"
                )
            seen.add(id(p))
        check_unsupported(type(self).__name__, g, self.fixed_options)
        for k in list(g):
            if k in IGNORED_OPTIONS or k in self.fixed_options:
                del g[k]
        for k, v in self.defaults.items():
            g.setdefault(k, v)
        self.param_groups.append(g)

    @staticmethod
    def _evaluate(closure):
        """step(closure): re-evaluate the loss (with gradients on) before updating, as torch."""
        if closure is None:
            return None
        with enable_grad():
            return closure()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad[...] = 0

    def step(self, closure=None):  # pragma: no cover - abstract
        raise NotImplementedError

    # ---- state dicts ------------------------------------------------------------------------
    def _params_in_order(self):
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> dict:
        index = {id(p): i for i, p in enumerate(self._params_in_order())}
        state = {
            index[pid]: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
            for pid, s in self.state.items()
            if pid in index
        }
        groups = []
        for g in self.param_groups:
            d = {k: v for k, v in g.items() if k != "params"}
            d["params"] = [index[id(p)] for p in g["params"]]
            groups.append(d)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyper-parameters and state from `state_dict()` — ours or torch.optim's."""
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            keys = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict)
            raise ValueError(f"{name}: expected keys 'state' and 'param_groups', got {keys}")
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"{name}: {len(groups)} parameter groups in the state dict, "
                f"{len(self.param_groups)} here"
            )
        by_saved_id = {}  # the state dict's parameter ids → our parameters, group by group
        new_groups = []
        for mine, theirs in zip(self.param_groups, groups):
            if len(mine["params"]) != len(theirs["params"]):
                raise ValueError(
                    f"{name}: a group has {len(theirs['params'])} parameters in the state "
                    f"dict, {len(mine['params'])} here"
                )
            for saved_id, p in zip(theirs["params"], mine["params"]):
                by_saved_id[int(_to_python(saved_id, name))] = p
            new_groups.append(self._group_from_state(mine, theirs, name))
        state = {}
        for i, s in state_dict["state"].items():
            i = int(_to_python(i, name))
            if i not in by_saved_id:
                raise ValueError(
                    f"{name}: state for parameter {i}, which is in none of the parameter "
                    f"groups {sorted(by_saved_id)}"
                )
            p = by_saved_id[i]
            s = {k: v for k, v in s.items() if v is not None}  # torch: momentum_buffer=None
            if s:
                state[id(p)] = self._state_from_dict(s, p, i, name)
        for mine, new in zip(self.param_groups, new_groups):  # all checked: now apply
            mine.update(new)
        self.state = state

    def _group_from_state(self, mine: dict, theirs: dict, name: str) -> dict:
        """A saved group's hyper-parameters, checked and converted (not yet applied)."""
        check_unsupported(name, theirs, self.fixed_options)
        new = {}
        for k, v in theirs.items():
            if k == "params" or k in IGNORED_OPTIONS or k in self.fixed_options:
                continue
            if isinstance(v, (tuple, list)):
                v = tuple(_to_python(x, f"{name}: {k}") for x in v)
            else:
                v = _to_python(v, f"{name}: {k}")
            new[k] = v
        return new

    def _state_from_dict(self, s: dict, p, i: int, name: str) -> dict:
        """One parameter's saved state, checked against this optimizer's keys and shapes."""
        if self.state_keys and set(s) != set(self.state_keys):
            raise ValueError(
                f"{name}: state of parameter {i} has keys {sorted(s)}, "
                f"{type(self).__name__} keeps {sorted(self.state_keys)}"
            )
        new = {}
        for k, v in s.items():
            if isinstance(v, Tensor):
                v = v.data
            if k == "step":
                step = _to_python(v, f"{name}: step of parameter {i}")
                if step != int(step) or step < 0:
                    raise ValueError(f"{name}: step of parameter {i} is {step}, not a count")
                new[k] = int(step)
            elif isinstance(v, np.ndarray):
                if v.shape != p.shape:
                    raise ValueError(
                        f"{name}: state {k!r} of parameter {i} has shape {v.shape}, "
                        f"parameter has {p.shape}"
                    )
                new[k] = np.array(v, dtype=p.dtype)
            else:
                new[k] = v
        return new


class SGD(Optimizer):
    state_keys = ("momentum_buffer",)
    fixed_options = {"maximize": False}

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach=None,
        differentiable: bool = False,
        fused=None,
    ):
        check_unsupported("SGD", dict(maximize=maximize), self.fixed_options)
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(
                f"SGD: invalid lr={lr}, momentum={momentum} or weight_decay={weight_decay}"
            )
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires momentum > 0 and zero dampening")
        super().__init__(
            params,
            dict(
                lr=lr,
                momentum=momentum,
                dampening=dampening,
                weight_decay=weight_decay,
                nesterov=nesterov,
            ),
        )

    def step(self, closure=None):
        loss = self._evaluate(closure)
        for g in self.param_groups:
            lr, mu, tau, wd = g["lr"], g["momentum"], g["dampening"], g["weight_decay"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if wd != 0:
                    d = d + wd * p.data
                if mu != 0:
                    st = self.state.setdefault(id(p), {})
                    buf = st.get("momentum_buffer")
                    if buf is None:
                        buf = st["momentum_buffer"] = np.array(d, dtype=p.dtype, copy=True)
                    else:
                        buf *= mu
                        buf += (1 - tau) * d
                    d = d + mu * buf if g["nesterov"] else buf
                p.data -= lr * d
        return loss


class Adam(Optimizer):
    decoupled = False
    state_keys = ("step", "exp_avg", "exp_avg_sq")
    fixed_options = {"amsgrad": False, "maximize": False, "decoupled_weight_decay": False}

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        foreach=None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused=None,
        decoupled_weight_decay: bool | None = None,
    ):
        options = dict(amsgrad=amsgrad, maximize=maximize)
        options["decoupled_weight_decay"] = decoupled_weight_decay
        check_unsupported(type(self).__name__, options, self.fixed_options)
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or weight_decay < 0:
            raise ValueError(
                f"{type(self).__name__}: invalid hyper-parameters lr={lr}, "
                f"betas={betas}, eps={eps}, weight_decay={weight_decay}"
            )
        super().__init__(
            params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        )

    def step(self, closure=None):
        loss = self._evaluate(closure)
        for g in self.param_groups:
            beta1, beta2 = g["betas"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self.state.get(id(p))
                if st is None:
                    st = self.state[id(p)] = {
                        "step": 0,
                        "exp_avg": np.zeros_like(p.data),
                        "exp_avg_sq": np.zeros_like(p.data),
                    }
                st["step"] += 1
                kernels.adam_step(
                    p.data,
                    p.grad,
                    st["exp_avg"],
                    st["exp_avg_sq"],
                    st["step"],
                    g["lr"],
                    beta1,
                    beta2,
                    g["eps"],
                    g["weight_decay"],
                    self.decoupled,
                )
        return loss


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019); default weight_decay 0.01."""

    decoupled = True
    fixed_options = {"amsgrad": False, "maximize": False, "decoupled_weight_decay": True}

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        amsgrad: bool = False,
        *,
        foreach=None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused=None,
    ):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)


def param_groups_for_weight_decay(model, weight_decay: float) -> list[dict]:
    """nanoGPT's grouping: decay every parameter with ≥ 2 dims (matrices, embeddings); not
    biases and LayerNorm weights (1-D)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        (decay if p.ndim >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
