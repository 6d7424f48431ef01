"""Module and Parameter: how a model owns its weights.

A model is a tree of `Module`s. Each module holds its learnable `Parameter`s (Tensors that
require gradients), its *buffers* (state that is not learned, e.g. a fixed positional table or
a causal mask) and its child modules, all registered simply by assigning attributes:

    self.c_fc = Linear(n_embd, 4 * n_embd)        # a child module
    self.weight = Parameter(np.ones(n_embd))      # a parameter
    self.register_buffer("mask", causal_mask)     # a buffer (persistent=False: not saved)

Walking the tree gives every parameter a dotted name — `transformer.h.0.attn.c_attn.weight` —
and `state_dict()` is the flat map name → array that checkpoints store and that maps 1:1 onto
PyTorch / nanoGPT. The same Parameter object can be reachable under two names (weight tying:
`self.lm_head.weight = self.transformer.wte.weight` makes GPT's output layer *be* its token
embedding); `parameters()` yields it once, so the optimizer updates it once, while
`state_dict()` lists both names, as PyTorch does.

A buffer is saved in `state_dict()` unless it was registered with `persistent=False`, and is
cast by `to(dtype)` together with the parameters. A buffer may be a Tensor (as in PyTorch) or a
NumPy array (tinyllm's own layers use arrays); either way `state_dict()` holds its array.

`train()` / `eval()` flip the `training` flag of every module (dropout reads it). The
containers — ModuleList, ModuleDict, Sequential — are in tinyllm/nn/containers.py.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Callable, Iterator

import numpy as np

from tinyllm.dtypes import as_dtype, assign_, convert_array, is_float_storage
from tinyllm.engine import Tensor


class Parameter(Tensor):
    """A Tensor that is a learnable weight: requires_grad=True by default, float32 by default."""

    def __init__(self, data, requires_grad: bool = True, dtype=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


# What load_state_dict returns, as PyTorch: unpacks as (missing_keys, unexpected_keys).
IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def check_device(device, where: str) -> None:
    """tinyllm computes on the CPU: accept device=None or "cpu" (PyTorch's keyword), refuse
    any other device by name rather than silently running somewhere it was not asked to."""
    if device is not None and str(device) != "cpu":
        raise ValueError(f"{where}: tinyllm runs on the CPU only, got device {device!r}")


def _array_of(value):
    """The NumPy array behind a buffer or state-dict value (a Tensor's .data, or the array)."""
    return value.data if isinstance(value, Tensor) else np.asarray(value)


def _check_new_name(module, name, kind):
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
    if name == "" or "." in name:
        raise KeyError(f"{kind} name can't be empty or contain '.', got {name!r}")
    if name in module.__dict__ or (
        hasattr(type(module), name)
        and name not in module._parameters
        and name not in module._buffers
        and name not in module._modules
    ):
        raise KeyError(f"attribute {name!r} already exists on {type(module).__name__}")


class Module:
    """Base class of every layer and model (PyTorch's torch.nn.Module, the essentials)."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---- registration by assignment ---------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(
                f"{type(self).__name__}: call super().__init__() before assigning "
                f"attribute {name!r}"
            )
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            self._forget(name)
            params[name] = value
        elif name in params:
            if value is not None:  # PyTorch's rule: a parameter slot takes a Parameter or None
                raise TypeError(
                    f"{type(self).__name__}: cannot assign {type(value).__name__} as parameter "
                    f"{name!r} (tinyllm.nn.Parameter or None expected)"
                )
            params[name] = None
        elif isinstance(value, Module):
            self._forget(name)
            modules[name] = value
        elif name in modules and value is None:
            modules[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, (Tensor, np.ndarray)):
                raise TypeError(
                    f"{type(self).__name__}: cannot assign {type(value).__name__} to buffer "
                    f"{name!r} (a Tensor, a NumPy array or None expected)"
                )
            buffers[name] = value  # keeps its persistence
        else:
            self._forget(name)
            object.__setattr__(self, name, value)

    def _forget(self, name):
        for table in (self._parameters, self._buffers, self._modules):
            table.pop(name, None)
        self._non_persistent_buffers.discard(name)
        self.__dict__.pop(name, None)

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
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """State that is not learned: a Tensor (or NumPy array, or None) under `name`.

        A persistent buffer is saved in `state_dict()`; `persistent=False` keeps it out (a
        causal mask that the module rebuilds from its config need not be stored).
        """
        if "_buffers" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before buffers")
        if name not in self._buffers:
            _check_new_name(self, name, "buffer")
            if name in self._parameters or name in self._modules:
                raise KeyError(f"attribute {name!r} already exists on {type(self).__name__}")
        if tensor is not None and not isinstance(tensor, (Tensor, np.ndarray)):
            raise TypeError(
                f"{type(self).__name__}.register_buffer({name!r}): a Tensor, a NumPy array or "
                f"None is required, got {type(tensor).__name__}"
            )
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register `param` (a Parameter, or None for an absent one such as bias=False)."""
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before parameters")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"{type(self).__name__}.register_parameter({name!r}): a Parameter or None is "
                f"required, got {type(param).__name__}"
            )
        if name not in self._parameters:
            _check_new_name(self, name, "parameter")
            if name in self._buffers or name in self._modules:
                raise KeyError(f"attribute {name!r} already exists on {type(self).__name__}")
        self._parameters[name] = param

    def add_module(self, name: str, module: Module | None) -> None:
        """Register a child module under `name` (what `self.name = module` does)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module({name!r}): {type(module).__name__} is not a Module")
        if name not in self._modules:
            _check_new_name(self, name, "module")
        self._forget(name)
        self._modules[name] = module

    register_module = add_module

    def get_submodule(self, target: str) -> Module:
        """The module at dotted path `target` ("" is self), e.g. "transformer.h.0.attn"."""
        module = self
        for part in target.split(".") if target else []:
            if part not in module._modules or module._modules[part] is None:
                raise AttributeError(f"{type(module).__name__} has no submodule {part!r}")
            module = module._modules[part]
        return module

    # ---- calling ----------------------------------------------------------------------------
    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- walking the tree -------------------------------------------------------------------
    def named_modules(
        self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for self and every descendant, depth first, parents first.
        A module reachable twice is yielded once (unless remove_duplicate=False)."""
        memo = set() if memo is None else memo
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                sub = f"{prefix}.{name}" if prefix else name
                yield from child.named_modules(memo, sub, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen: set[int] = set()
        for n, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield n, m

    def _named_members(self, table, prefix, recurse, remove_duplicate):
        seen: set[int] = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mod_prefix, module in modules:
            for name, v in getattr(module, table).items():
                if v is None or (remove_duplicate and id(v) in seen):
                    continue
                seen.add(id(v))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), v

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter); a tied parameter once, under its first name."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """(dotted name, buffer) for every buffer, persistent or not."""
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def num_parameters(self) -> int:
        return sum(p.data.size for p in self.parameters())

    # ---- modes and gradients ----------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        if not isinstance(mode, bool):
            raise ValueError(f"train(mode): mode is expected to be a bool, got {mode!r}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad[...] = 0

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def to(self, *args, **kwargs) -> Module:
        """Cast every floating-point parameter (and its .grad) and buffer to a dtype, in place,
        as PyTorch's `module.to(dtype)`: float32, float64, float16 or tinyllm.bfloat16.
        `to("cpu")`, `to("cpu", dtype)` and `to(device="cpu", dtype=…)` are accepted, since
        the CPU is the only device; any other device is an error.

        Narrowing rounds to nearest even; widening from a half format is exact. Parameters keep
        their identity (optimizers and tied weights still point at them). Half formats are
        emulated (tinyllm/dtypes.py): the model then computes in float32 and rounds every
        result to `dtype`.
        """
        dtype = kwargs.pop("dtype", None)
        device = kwargs.pop("device", None)
        if kwargs:
            raise TypeError(f"Module.to: unexpected keyword arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, str) and a.split(":")[0] in ("cpu", "cuda", "mps", "meta", "xpu"):
                device = a
            else:
                dtype = a
        check_device(device, "Module.to")
        if dtype is None:
            return self
        dtype = as_dtype(dtype)
        for p in self.parameters():
            if is_float_storage(p.data.dtype):
                p.data = convert_array(p.data, dtype)
                if p.grad is not None:
                    p.grad = convert_array(p.grad, dtype)
        for module in self.modules():
            for name, b in module._buffers.items():
                if b is None or not is_float_storage(_array_of(b).dtype):
                    continue
                if isinstance(b, Tensor):
                    b.data = convert_array(b.data, dtype)  # the same Tensor, cast
                else:
                    module._buffers[name] = convert_array(b, dtype)
        return self

    def float(self) -> Module:
        return self.to(np.float32)

    def double(self) -> Module:
        return self.to(np.float64)

    def half(self) -> Module:
        return self.to(np.float16)

    def bfloat16(self) -> Module:
        return self.to("bfloat16")

    def cpu(self) -> Module:
        return self

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call fn on every submodule (children first) and on self, as in PyTorch."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---- state dicts ------------------------------------------------------------------------
    def _state_items(self, prefix: str = ""):
        """(name, module, attribute, kind) for every entry of state_dict(), in PyTorch's order:
        a module's own parameters, then its persistent buffers, then its children's."""
        for mod_prefix, module in self.named_modules(prefix=prefix):
            for name, p in module._parameters.items():
                if p is not None:
                    yield (f"{mod_prefix}.{name}" if mod_prefix else name), module, name, "param"
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent_buffers:
                    yield (f"{mod_prefix}.{name}" if mod_prefix else name), module, name, "buffer"

    def state_dict(self, destination=None, prefix: str = "", keep_vars: bool = False):
        """name → array for every parameter (tied ones under each name) and persistent buffer.

        keep_vars=True gives the Parameter (and Tensor buffer) objects themselves instead.
        """
        out = OrderedDict() if destination is None else destination
        for key, module, name, kind in self._state_items(prefix):
            value = module._parameters[name] if kind == "param" else module._buffers[name]
            out[key] = value if keep_vars else _array_of(value)
        return out

    def _state_slots(self):
        """name → (owning module, attribute, kind) for every entry of state_dict()."""
        return {key: (module, name, kind) for key, module, name, kind in self._state_items()}

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy arrays (or Tensors) into this module's parameters and buffers, in place.

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
                target = module._parameters[name] if kind == "param" else module._buffers[name]
                target, value = _array_of(target), _array_of(state_dict[k])
                if value.dtype == object:
                    mismatched.append(f"{k}: {type(state_dict[k]).__name__} is not an array")
                elif value.shape != target.shape:
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
                target = module._parameters[name] if kind == "param" else module._buffers[name]
                assign_(_array_of(target), _array_of(state_dict[k]))  # bf16: rounds
        return IncompatibleKeys(missing, unexpected)

    # ---- printing ---------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return lines[0] + (")" if len(lines) == 1 else "\n" + "\n".join(lines[1:]) + "\n)")


# The containers live in their own file; importing them from here keeps older imports working.
from tinyllm.nn.containers import ModuleDict, ModuleList, Sequential  # noqa: E402, F401
