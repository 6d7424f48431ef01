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
[indices]}]}, with parameters numbered in group order.
"""

from __future__ import annotations

import numpy as np

from tinyllm import kernels
from tinyllm.engine import Tensor


class Optimizer:
    defaults: dict = {}

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.param_groups: list[dict] = []
        self.state: dict[int, dict] = {}  # keyed by id(param)
        seen = set()
        for g in groups:
            g = dict(g)
            g["params"] = list(g["params"])
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
            for k, v in self.defaults.items():
                g.setdefault(k, v)
            self.param_groups.append(g)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad[...] = 0

    def step(self) -> None:  # pragma: no cover - abstract
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
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: {len(groups)} parameter "
                f"groups in the state dict, {len(self.param_groups)} here"
            )
        params = self._params_in_order()
        for mine, theirs in zip(self.param_groups, groups):
            if len(mine["params"]) != len(theirs["params"]):
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: a group has "
                    f"{len(theirs['params'])} parameters in the state dict, "
                    f"{len(mine['params'])} here"
                )
            for k, v in theirs.items():
                if k != "params":
                    mine[k] = v
        self.state = {}
        for i, s in state_dict["state"].items():
            i = int(i)
            if not 0 <= i < len(params):
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: state for parameter "
                    f"{i}, but there are {len(params)}"
                )
            p = params[i]
            new = {}
            for k, v in s.items():
                if isinstance(v, np.ndarray) and v.shape != p.shape:
                    raise ValueError(
                        f"{type(self).__name__}.load_state_dict: state {k!r} of "
                        f"parameter {i} has shape {v.shape}, parameter has {p.shape}"
                    )
                new[k] = np.array(v, dtype=p.dtype) if isinstance(v, np.ndarray) else v
            self.state[id(p)] = new


class SGD(Optimizer):
    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ):
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

    def step(self) -> None:
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


class Adam(Optimizer):
    decoupled = False

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or weight_decay < 0:
            raise ValueError(
                f"{type(self).__name__}: invalid hyper-parameters lr={lr}, "
                f"betas={betas}, eps={eps}, weight_decay={weight_decay}"
            )
        super().__init__(
            params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        )

    def step(self) -> None:
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


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019); default weight_decay 0.01."""

    decoupled = True

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ):
        super().__init__(params, lr, betas, eps, weight_decay)


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
