"""tinyllm.torch_compat — run model code written for PyTorch, with tinyllm standing in for torch.

tinyllm uses PyTorch's names (Tensor, nn.Module, F.softmax(dim=-1), optim.AdamW, …), so much
code written for torch already reads as tinyllm code. What it lacks is the *module path*: the
file says `import torch`. This module supplies stand-ins for `torch`, `torch.nn`,
`torch.nn.functional`, `torch.nn.init`, `torch.nn.utils` and `torch.optim` whose attributes are
tinyllm's, and a context manager that places them in `sys.modules` while the file is imported:

    from tinyllm import torch_compat
    with torch_compat.installed():
        import my_nanogpt_model          # its `import torch` now gives tinyllm
    model = my_nanogpt_model.GPT(config) # a tinyllm Module; train it with tinyllm

Only the names listed in docs/15-coming-from-pytorch.md are supported. Any other attribute of
a stand-in raises `Unsupported` — a NotImplementedError that names the missing `torch.x.y` —
at the line that asked for it, never an AttributeError deep inside tinyllm. `Unsupported` is also
an AttributeError, so `hasattr(torch, "compile")` and `getattr(torch, name, default)` answer
False/default as feature checks expect.

This is a shim over names, not an emulation of PyTorch: there is one device ("cpu"), tensors are
NumPy arrays underneath, and whatever a name maps to has tinyllm's implementation (checked
against PyTorch op by op in the test suite).
"""

from __future__ import annotations
import __future__

import contextlib
import sys
import types

import tinyllm
from tinyllm import nn, optim
from tinyllm.nn import functional, init, utils
from tinyllm.optim import lr_scheduler

DOCS = "docs/15-coming-from-pytorch.md"


class Unsupported(NotImplementedError, AttributeError):
    """A torch name tinyllm does not provide. NotImplementedError, so the message is read as
    "not here", and AttributeError, so `hasattr`/`getattr(..., default)` feature checks work."""


class StandIn(types.ModuleType):
    """A module object named like a torch module whose attributes come from tinyllm modules.

    Lookup order: the names set on the stand-in itself (submodules, shims such as
    `torch.cuda`), then each source module in turn. Private names of the sources are never
    exposed: `torch._C` is a torch internal, not tinyllm's."""

    def __init__(self, name: str, *sources: types.ModuleType, **names):
        super().__init__(name, f"tinyllm standing in for {name} ({DOCS})")
        self._sources = sources
        for key, value in names.items():
            setattr(self, key, value)

    def __getattr__(self, attr: str):
        for source in self._sources:
            if attr in public_names(source):
                return getattr(source, attr)
        if attr.startswith("__") and attr.endswith("__"):  # import machinery probes these
            raise AttributeError(attr)
        raise Unsupported(
            f"{self.__name__}.{attr} is not supported by tinyllm.torch_compat "
            f"(the supported subset: {DOCS})"
        )

    def __dir__(self):
        names = set(super().__dir__())
        for source in self._sources:
            names |= public_names(source)
        return sorted(names)


def public_names(module: types.ModuleType) -> frozenset[str]:
    """What a tinyllm module offers as API: its `__all__` when it has one, else its names
    without a leading underscore that are not modules or `from __future__` features (a
    module's imports of helpers are its business, not torch's surface)."""
    if "__all__" in vars(module):
        return frozenset(module.__all__)
    return frozenset(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, (types.ModuleType, __future__._Feature))
    )


def _no_accelerator(name: str) -> StandIn:
    """torch.cuda / torch.backends.mps: present, and saying there is no such device here."""
    return StandIn(
        name,
        is_available=lambda: False,
        device_count=lambda: 0,
        is_bf16_supported=lambda: False,
    )


def _build() -> dict[str, StandIn]:
    fn = StandIn("torch.nn.functional", functional)
    nn_init = StandIn("torch.nn.init", init)
    nn_utils = StandIn("torch.nn.utils", utils)
    torch_nn = StandIn("torch.nn", nn, functional=fn, init=nn_init, utils=nn_utils)
    sched = StandIn("torch.optim.lr_scheduler", lr_scheduler)
    torch_optim = StandIn("torch.optim", optim, lr_scheduler=sched)
    cuda = _no_accelerator("torch.cuda")
    backends = StandIn("torch.backends", mps=_no_accelerator("torch.backends.mps"))
    torch = StandIn("torch", tinyllm, nn=torch_nn, optim=torch_optim, cuda=cuda, backends=backends)
    return {
        "torch": torch,
        "torch.nn": torch_nn,
        "torch.nn.functional": fn,
        "torch.nn.init": nn_init,
        "torch.nn.utils": nn_utils,
        "torch.optim": torch_optim,
        "torch.optim.lr_scheduler": sched,
        "torch.cuda": cuda,
        "torch.backends": backends,
    }


MODULES = _build()
torch = MODULES["torch"]


@contextlib.contextmanager
def installed():
    """Within the block, `import torch` (and torch.nn, torch.nn.functional, torch.optim, …)
    gives the stand-ins; on exit sys.modules is as it was, a real torch included. A file
    imported inside the block keeps the stand-ins it bound."""
    saved = {name: sys.modules.get(name) for name in MODULES}
    sys.modules.update(MODULES)
    try:
        yield torch
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
