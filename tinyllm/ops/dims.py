"""Naming an axis: PyTorch's `dim=` / `keepdim=`, with NumPy's `axis=` / `keepdims=` as aliases.

PyTorch and NumPy name the same idea differently. `x.sum(dim=1, keepdim=True)` (PyTorch) and
`x.sum(axis=1, keepdims=True)` (NumPy) both collapse axis 1 and keep it with size 1. tinyllm's
ops take PyTorch's names — its API contract is PyTorch's — and accept NumPy's as aliases, so
code written in either dialect runs. Passing a name and its alias at once is ambiguous, and is
an error that names both.

`numpy_aliases` is the one place that translation happens: a decorator that renames the alias
keywords before the op sees them, so every op's signature reads in PyTorch's words.
"""

from __future__ import annotations

import functools

ALIASES = {"axis": "dim", "keepdims": "keepdim"}  # NumPy's name → PyTorch's name


def numpy_aliases(fn):
    """Let `fn(..., dim=, keepdim=)` also be called with `axis=` and `keepdims=`."""

    @functools.wraps(fn)
    def op(*args, **kwargs):
        for numpy_name, torch_name in ALIASES.items():
            if numpy_name in kwargs:
                if torch_name in kwargs:
                    raise TypeError(
                        f"{fn.__name__}: got both {torch_name}= and its NumPy alias "
                        f"{numpy_name}=; pass one of them"
                    )
                kwargs[torch_name] = kwargs.pop(numpy_name)
        return fn(*args, **kwargs)

    return op
