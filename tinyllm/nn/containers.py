"""Containers: modules that hold other modules — ModuleList, ModuleDict, Sequential.

A Python list or dict of layers is invisible to the Module tree: `parameters()` would not find
the weights inside it, `state_dict()` would not save them, `to()` would not cast them. These
containers register each member as a child under a name — "0", "1", … for ModuleList and
Sequential, the key for ModuleDict — so that nanoGPT's

    self.transformer = nn.ModuleDict(dict(wte=…, h=nn.ModuleList([Block(c) for _ in range(n)])))

names its weights `transformer.h.0.attn.c_attn.weight`, exactly as PyTorch does.

    ModuleList   a list: append, extend, insert, indexing, slicing, del, len, iter
    ModuleDict   a dict with string keys: [], in, keys/values/items, update, pop
    Sequential   y = fₙ(…f₂(f₁(x))): positional modules or an OrderedDict of named ones

Removing or inserting a member of a ModuleList or Sequential renumbers the members after it,
so the names stay 0, 1, …, n−1 (PyTorch does the same).
"""

from __future__ import annotations

import operator
from collections import OrderedDict

from tinyllm.nn.module import Module


def _as_module(container, module, where):
    if not isinstance(module, Module):
        raise TypeError(
            f"{type(container).__name__}.{where}: {type(module).__name__} is not a Module"
        )
    return module


class _Indexed(Module):
    """The shared machinery of ModuleList and Sequential: children named "0" … "n−1"."""

    def _index(self, i) -> int:
        n = len(self._modules)
        i = operator.index(i)
        if not -n <= i < n:
            raise IndexError(f"{type(self).__name__} index {i} out of range for {n} modules")
        return i % n

    def _renumber(self, members) -> None:
        self._modules.clear()
        for k, m in enumerate(members):
            self._modules[str(k)] = m

    def __getitem__(self, i):
        return self._modules[str(self._index(i))]

    def __setitem__(self, i, module) -> None:
        self._modules[str(self._index(i))] = _as_module(self, module, "__setitem__")

    def __delitem__(self, i) -> None:
        members = list(self._modules.values())
        if isinstance(i, slice):
            del members[i]
        else:
            del members[self._index(i)]
        self._renumber(members)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module):
        self._modules[str(len(self._modules))] = _as_module(self, module, "append")
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        members = list(self._modules.values())
        members.insert(operator.index(index), _as_module(self, module, "insert"))
        self._renumber(members)


class ModuleList(_Indexed):
    """A list of modules whose members are registered as children "0", "1", …"""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return ModuleList(list(self._modules.values())[i])
        return super().__getitem__(i)

    def __iadd__(self, modules):
        return self.extend(modules)

    def __add__(self, other):
        return ModuleList(list(self) + list(other))

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward(): iterate over its modules")


class Sequential(_Indexed):
    """Modules applied one after another: Sequential(a, b, c)(x) = c(b(a(x))).

    Sequential(OrderedDict(fc=…, act=…)) names the children by the dict's keys instead.
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, _as_module(self, m, "__init__"))
        else:
            self.extend(modules)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Sequential(OrderedDict(list(self._modules.items())[i]))
        return list(self._modules.values())[self._index(i)]

    def __setitem__(self, i, module) -> None:
        key = list(self._modules)[self._index(i)]
        self._modules[key] = _as_module(self, module, "__setitem__")

    def __delitem__(self, i) -> None:
        items = list(self._modules.items())
        if isinstance(i, slice):
            del items[i]
        else:
            del items[self._index(i)]
        self._modules.clear()
        self._modules.update(items)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleDict(Module):
    """A dict of named child modules (nanoGPT's `transformer = nn.ModuleDict(...)`)."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        if key not in self._modules:
            raise KeyError(f"ModuleDict has no module {key!r}; keys: {list(self._modules)}")
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str) or key == "" or "." in key:
            raise KeyError(f"ModuleDict keys are non-empty strings without '.', got {key!r}")
        self._modules[key] = _as_module(self, module, "__setitem__")

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __contains__(self, key) -> bool:
        return key in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def update(self, modules) -> None:
        """Add (key, module) pairs from a mapping or an iterable of pairs."""
        pairs = modules.items() if hasattr(modules, "items") else modules
        for key, m in pairs:
            self[key] = m

    def pop(self, key: str) -> Module:
        m = self[key]
        del self._modules[key]
        return m

    def clear(self) -> None:
        self._modules.clear()
