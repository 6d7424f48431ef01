"""MPI worker for tests/test_kernel_cache.py: several ranks start together on one numba cache.

Each rank runs the real `sim.init()` (local rank 0 warms the kernels up, the others wait at a
barrier and then load them), counts what numba did for every tinyllm kernel — compilations
(cache misses) and loads from the on-disk cache (cache hits) — and then checks that the loaded
machine code computes what the NumPy references compute (a corrupt cache would not).
"""
import sim  # first: the thread variables must be set before NumPy loads BLAS

import importlib
import json
import pkgutil

import numpy as np
from numba.core.dispatcher import Dispatcher

import tinyllm.kernels
from tinyllm import kernels


def dispatchers():
    """Every numba function in tinyllm/kernels/*, once."""
    found = {}
    for info in pkgutil.iter_modules(tinyllm.kernels.__path__):
        module = importlib.import_module(f"tinyllm.kernels.{info.name}")
        for value in vars(module).values():
            if isinstance(value, Dispatcher):
                found[id(value)] = value
    return list(found.values())


def agrees_with_references(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((6, 16)).astype(np.float32)
    w, b = rng.standard_normal(16).astype(np.float32), rng.standard_normal(16).astype(np.float32)
    y, _, _ = kernels.layer_norm_forward(x, w, b, 1e-5)
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    ok = np.allclose(y, (x - mu) / np.sqrt(var + 1e-5) * w + b, atol=1e-5)
    s = kernels.softmax_forward(x)
    e = np.exp(x - x.max(-1, keepdims=True))
    ok &= np.allclose(s, e / e.sum(-1, keepdims=True), atol=1e-6)
    g = kernels.gelu_forward(x, "tanh")
    ok &= np.allclose(g, 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
                      atol=1e-5)
    return bool(ok)


def main():
    world = sim.init()
    ds = dispatchers()
    mine = {"rank": world.rank,
            "compiled": sum(sum(d.stats.cache_misses.values()) for d in ds),
            "loaded": sum(sum(d.stats.cache_hits.values()) for d in ds),
            "kernels": len(ds),
            "correct": agrees_with_references(world.rank)}
    everyone = world.gather_json(mine)
    if world.rank == 0:
        print("RESULTS " + json.dumps(everyone), flush=True)


if __name__ == "__main__":
    main()
