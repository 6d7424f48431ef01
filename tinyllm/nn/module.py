"""Module and Parameter: how a model owns its weights.

A model is a tree of `Module`s. Each module holds its learnable `Parameter`s (Tensors that
require gradients), its *buffers* (arrays that are state but not learned, e.g. a fixed
positional table) and its child modules, all registered simply by assigning attributes:

    self.c_fc = Linear(n_embd, 4 * n_embd)        # a child module
    self.weight = Parameter(np.ones(n_embd))      # a parameter

Walking the tree gives every parameter a dotted name — `transformer.h.0.attn.c_attn.weight` —
and `state_dict()` is the flat map name → array that checkpoints store and that maps 1:1 onto
PyTorch / nanoGPT. The same Parameter object can be reachable under two names (weight tying:
GPT's `lm_head.weight` *is* `transformer.wte.weight`); `parameters()` yields it once, so the
optimizer updates it once, while `state_dict()` lists both names, as PyTorch does.

`train()` / `eval()` flip the `training` flag of every module (dropout reads it).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterator

import numpy as np

from tinyllm.dtypes import assign_, convert_array, is_float_storage
from tinyllm.engine import Tensor


class Parameter(Tensor):
    """A Tensor that is a learnable weight: requires_grad=True by default, float32 by default."""

    def __init__(self, data, requires_grad: bool = True, dtype=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer and model (PyTorch's torch.nn.Module, the essentials)."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---- registration by assignment ---------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(
                f"{type(self).__name__}: call super().__init__() before assigning "
                f"attribute {name!r}"
            )
        for table in (self._parameters, self._buffers, self._modules):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, array) -> None:
        """State that is saved in state_dict but not learned (a NumPy array or None)."""
        self.__dict__.pop(name, None)
        self._buffers[name] = None if array is None else np.asarray(array)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is None:
            self._parameters[name] = None
        else:
            setattr(self, name, param)

    # ---- calling ----------------------------------------------------------------------------
    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- walking the tree -------------------------------------------------------------------
    def named_modules(
        self, prefix: str = "", memo: set | None = None
    ) -> Iterator[tuple[str, "Module"]]:
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def children(self) -> Iterator["Module"]:
        for m in self._modules.values():
            if m is not None:
                yield m

    def named_children(self):
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        seen: set[int] = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_prefix, module in modules:
            for name, p in module._parameters.items():
                if p is None or (remove_duplicate and id(p) in seen):
                    continue
                seen.add(id(p))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = ""):
        for mod_prefix, module in self.named_modules(prefix):
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{mod_prefix}.{name}" if mod_prefix else name), b

    def num_parameters(self) -> int:
        return sum(p.data.size for p in self.parameters())

    # ---- modes and gradients ----------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad[...] = 0

    def requires_grad_(self, flag: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad_(flag)
        return self

    def to(self, dtype) -> "Module":
        """Cast every floating-point parameter (and its .grad) and buffer to `dtype`, in place,
        as PyTorch's `module.to(dtype)`: float32, float64, float16 or tinyllm.bfloat16.

        Narrowing rounds to nearest even; widening from a half format is exact. Parameters keep
        their identity (optimizers and tied weights still point at them). Half formats are
        emulated (tinyllm/dtypes.py): the model then computes in float32 and rounds every
        result to `dtype`.
        """
        for p in self.parameters():
            if is_float_storage(p.data.dtype):
                p.data = convert_array(p.data, dtype)
                if p.grad is not None:
                    p.grad = convert_array(p.grad, dtype)
        for module in self.modules():
            for name, b in module._buffers.items():
                if b is not None and is_float_storage(b.dtype):
                    module._buffers[name] = convert_array(b, dtype)
        return self

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Call fn on every submodule (children first) and on self, as in PyTorch."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---- state dicts ------------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """name → array for every parameter (tied ones under each name) and buffer."""
        out: OrderedDict[str, np.ndarray] = OrderedDict()
        for mod_prefix, module in self.named_modules(memo=None):
            for name, p in module._parameters.items():
                if p is not None:
                    out[f"{mod_prefix}.{name}" if mod_prefix else name] = p.data
            for name, b in module._buffers.items():
                if b is not None:
                    out[f"{mod_prefix}.{name}" if mod_prefix else name] = b
        return out

    def _state_slots(self):
        """name → (owning module, attribute, kind) for every entry of state_dict()."""
        slots = {}
        for mod_prefix, module in self.named_modules():
            for table, kind in ((module._parameters, "param"), (module._buffers, "buffer")):
                for name, v in table.items():
                    if v is not None:
                        slots[f"{mod_prefix}.{name}" if mod_prefix else name] = (module, name, kind)
        return slots

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy arrays into this module's parameters and buffers, in place.

        With strict=True, any missing key or unexpected key raises one RuntimeError (PyTorch's
        type) that lists all of them; a shape mismatch raises even with strict=False. Values
        are cast to each parameter's dtype. Returns (missing_keys, unexpected_keys) as PyTorch
        does.
        """
        slots = self._state_slots()
        missing = [k for k in slots if k not in state_dict]
        unexpected = [k for k in state_dict if k not in slots]
        mismatched = []
        for k, (module, name, kind) in slots.items():
            if k in state_dict:
                target = module._parameters[name].data if kind == "param" else module._buffers[name]
                value = np.asarray(state_dict[k])
                if value.shape != target.shape:
                    mismatched.append(f"{k}: checkpoint {value.shape} vs model {target.shape}")
        problems = []
        if mismatched:
            problems.append("size mismatch for " + "; ".join(mismatched))
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise RuntimeError(
                f"load_state_dict into {type(self).__name__}: " + " | ".join(problems)
            )
        for k, (module, name, kind) in slots.items():
            if k in state_dict:
                if kind == "param":
                    assign_(module._parameters[name].data, state_dict[k])  # bf16: rounds
                else:
                    assign_(module._buffers[name], state_dict[k])
        return missing, unexpected

    # ---- printing ---------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return lines[0] + (")" if len(lines) == 1 else "\n" + "\n".join(lines[1:]) + "\n)")


class ModuleList(Module):
    """A list of modules whose members are registered as children "0", "1", …"""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> "ModuleList":
        self._modules[str(len(self._modules))] = module
        return self

    def __getitem__(self, i):
        if isinstance(i, slice):
            return ModuleList(list(self._modules.values())[i])
        n = len(self._modules)
        if not -n <= i < n:
            raise IndexError(f"ModuleList index {i} out of range for {n} modules")
        return self._modules[str(i % n)]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleDict(Module):
    """A dict of named child modules (nanoGPT's `transformer = nn.ModuleDict(...)`)."""

    def __init__(self, modules=None):
        super().__init__()
        for k, m in (modules or {}).items():
            self._modules[k] = m

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self._modules[key] = module

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()


class Sequential(Module):
    """Modules applied one after another."""

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            self._modules[str(i)] = m

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)
