"""With NUMBA_DISABLE_JIT=1 numba runs every kernel's Python source as plain Python: it must give
the numbers the compiled kernels give (so the kernels can be read and stepped through in a
debugger as ordinary code). Two subprocesses each: a small model step through the ops, and
flash attention with vecmath's exp and erf.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

MODEL_STEP = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tinyllm as tl
    from tinyllm import ops, kernels

    assert kernels.backend() == "numba"
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 11, size=(2, 5))
    wte = tl.Tensor(rng.standard_normal((11, 8)), requires_grad=True)
    g, b = (tl.Tensor(rng.standard_normal(8), requires_grad=True) for _ in range(2))
    w = tl.Tensor(rng.standard_normal((11, 8)), requires_grad=True)
    h = ops.layer_norm(ops.embedding(ids, wte), 8, g, b)
    h = ops.gelu(h) + ops.gelu(h, approximate="tanh")
    logits = ops.linear(h, w)                                    # (2, 5, 11)
    targets = rng.integers(0, 11, size=(2, 5))
    targets[0, 1] = -100
    loss = ops.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1))
    loss = loss + logits.softmax(-1).log_softmax(1).mean()
    loss.backward()
    out = {"loss": loss.item()}
    for name, t in [("wte", wte), ("g", g), ("b", b), ("w", w)]:
        out[name] = t.grad.ravel().tolist()
    json.dump(out, sys.stdout)
""")


def _run(env_extra):
    env = dict(os.environ, **env_extra)
    env.pop("TINYLLM_KERNELS", None)
    proc = subprocess.run(
        [sys.executable, "-c", MODEL_STEP], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_kernels_give_the_same_numbers_with_numba_disabled():
    jit = _run({})
    nojit = _run({"NUMBA_DISABLE_JIT": "1"})
    assert jit.keys() == nojit.keys()
    for key in jit:
        np.testing.assert_allclose(nojit[key], jit[key], rtol=1e-10, atol=1e-12, err_msg=key)


ATTENTION_AND_VECMATH = textwrap.dedent("""
    import json, sys
    import numpy as np
    from tinyllm.kernels import attention, vecmath
    rng = np.random.default_rng(0)
    q, k, v, g = (rng.standard_normal((1, 2, 35, 4)).astype(np.float32) for _ in range(4))
    out, lse = attention.attention_forward_numba(q, k, v, None, 0.5, True)
    dq, dk, dv, _ = attention.attention_backward_numba(q, k, v, None, 0.5, True, out, lse, g)
    x = np.linspace(-5, 5, 11, dtype=np.float32)
    e = [float(vecmath.vexp(np.float32(t))) for t in x]
    f = [float(vecmath.verf(np.float32(t))) for t in x]
    json.dump({name: np.asarray(a, dtype=np.float64).ravel().tolist() for name, a in
               [("out", out), ("lse", lse), ("dq", dq), ("dk", dk), ("dv", dv), ("exp", e),
                ("erf", f)]}, sys.stdout)
""")


def test_flash_attention_and_vecmath_without_the_jit():
    def run(extra):
        env = dict(os.environ, **extra)
        env.pop("TINYLLM_KERNELS", None)
        proc = subprocess.run(
            [sys.executable, "-c", ATTENTION_AND_VECMATH],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    jit, nojit = run({}), run({"NUMBA_DISABLE_JIT": "1"})
    for key in jit:  # float32 arithmetic, summed in another order: a few ulp apart
        np.testing.assert_allclose(nojit[key], jit[key], rtol=1e-5, atol=1e-6, err_msg=key)
