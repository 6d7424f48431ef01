"""DDP and ZeRO with a half-precision model: the ZeRO paper's mixed-precision layout, K = 12.

With Ψ parameters on N ranks (Rajbhandari et al. 2019, section 3 and fig. 1), per rank:
    DDP      2Ψ params + 2Ψ grads + 12Ψ optimizer (fp32 master 4 + m 4 + v 4)
    stage 1  2Ψ + 2Ψ + 12Ψ/N;   stage 2  2Ψ + (2 + 12)Ψ/N;   stage 3  (2 + 2 + 12)Ψ/N + gathered
Offloading the optimizer moves the 12 bytes (and an fp32 gradient shard, 4 bytes) to the host.
Losses are compared with one process running tinyllm.precision.MixedPrecisionOptimizer on the
whole batch: they agree to bf16/fp16 resolution (gradients are averaged in half precision
across ranks, one rounding more than one process does).
"""

import pytest
from mpi_helpers import run_mpi


@pytest.mark.mpi
def test_mixed_precision_strategies_match_one_process_and_k12_memory():
    res = run_mpi("mixed_worker.py", 2, timeout=300).results()
    n, psi = res["world_size"], res["n_params"]
    gathered = 2 * (res["root_size"] + max(res["block_sizes"]))
    want = {
        "ddp": (2 * psi, 2 * psi, 12 * psi, 0),
        "zero1": (2 * psi, 2 * psi, 12 * psi / n, 0),
        "zero2": (2 * psi, 2 * psi / n, 12 * psi / n, 0),
        "zero3": (2 * psi / n + gathered, 2 * psi / n, 12 * psi / n, 0),
        "zero2-offload": (2 * psi, 0, 0, (4 + 12) * psi / n),
        "zero3-offload-params": (gathered, 0, 0, (2 + 4 + 12) * psi / n),
    }
    for fmt, runs in res["formats"].items():
        ref = runs["reference"]
        for name, (p, g, o, host) in want.items():
            r = runs[name]
            assert r["skipped"] == 0, (fmt, name)
            assert r["losses"] == pytest.approx(ref, rel=1e-2), (fmt, name, r["losses"], ref)
            m = r["memory"]
            for tag, value in (("parameters", p), ("gradients", g), ("optimizer_states", o)):
                assert m[tag] == pytest.approx(value, rel=0.05, abs=0), (
                    fmt,
                    name,
                    tag,
                    m[tag],
                    value,
                )
            assert m["host"] == pytest.approx(host, rel=0.05, abs=0), (fmt, name, m["host"], host)
            # half-precision gradients travel in 2 bytes: 2·Ψ(N−1)/N per reduction
            elements = 3 if name.startswith("zero3") else 2
            assert r["bytes_sent"] == pytest.approx(2 * elements * psi * (n - 1) / n, rel=0.05)
