"""MPI worker for tests/kernels/test_kernel_cache.py: ranks start together on one numba cache.

Each rank runs the real `sim.init()` (local rank 0 warms the kernels up, the others wait at a
barrier and then load them), counts what numba did for every tinyllm kernel — compilations
(cache misses) and loads from the on-disk cache (cache hits) — and then checks that the loaded
machine code computes what the NumPy references compute (a corrupt cache would not), and
reports a digest of every kernel's output bits: code compiled here and code loaded from the
cache must compute the same bits, or a run right after install would not repeat.
"""

import sim  # first: the thread variables must be set before NumPy loads BLAS

# isort: split

import hashlib
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
    ok &= np.allclose(
        g, 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))), atol=1e-5
    )
    return bool(ok)


def output_digest() -> str:
    """sha256 of the bits every kernel dispatcher produces on fixed inputs (float32 and float64)."""
    h = hashlib.sha256()
    for dt in (np.float32, np.float64):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((64, 96)).astype(dt)
        g = rng.standard_normal((64, 96)).astype(dt)
        w, b = rng.standard_normal(96).astype(dt), rng.standard_normal(96).astype(dt)
        t = rng.integers(0, 96, 64)
        q = rng.standard_normal((2, 2, 64, 16)).astype(dt)
        y = kernels.softmax_forward(x)
        ly = kernels.log_softmax_forward(x)
        loss, lse = kernels.cross_entropy_forward(x, t, -100)
        ln, mu, rstd = kernels.layer_norm_forward(x, w, b, 1e-5)
        out, qlse = kernels.attention_forward(q, q, q, None, 0.25, True)
        p, m, v = w.copy(), np.zeros_like(w), np.zeros_like(w)
        kernels.adam_step(p, b, m, v, 3, 1e-3, 0.9, 0.95, 1e-8, 0.1, True)
        results = [
            y,
            kernels.softmax_backward(y, g),
            ly,
            kernels.log_softmax_backward(ly, g),
            loss,
            lse,
            kernels.cross_entropy_backward(x, lse, t, np.ones(64, dt), -100),
            ln,
            *kernels.layer_norm_backward(x, w, mu, rstd, g),
            kernels.gelu_forward(x, "none"),
            kernels.gelu_forward(x, "tanh"),
            kernels.gelu_backward(x, g, "none"),
            kernels.gelu_backward(x, g, "tanh"),
            kernels.embedding_backward(t, g, 96),
            out,
            qlse,
            *kernels.attention_backward(q, q, q, None, 0.25, True, out, qlse, q),
            p,
            m,
            v,
            kernels.fp32_to_bf16_bits(x.astype(np.float32)),
        ]
        for r in results:
            if r is not None:  # (attention's mask gradient, when there is no mask)
                h.update(np.ascontiguousarray(r).tobytes())
    return h.hexdigest()


def main():
    world = sim.init()
    ds = dispatchers()
    mine = {
        "rank": world.rank,
        "compiled": sum(sum(d.stats.cache_misses.values()) for d in ds),
        "loaded": sum(sum(d.stats.cache_hits.values()) for d in ds),
        "kernels": len(ds),
        "correct": agrees_with_references(world.rank),
        "digest": output_digest(),
    }
    everyone = world.gather_json(mine)
    if world.rank == 0:
        print("RESULTS " + json.dumps(everyone), flush=True)


if __name__ == "__main__":
    main()
