"""Worker: each rung of the ZeRO ladder takes only its own options, and a strategy that lacks
part of the checkpoint protocol says so by name.

Every construction below either fails in its constructor before any collective (the same way
on every rank) or builds a working strategy, which is closed again. Rank 0 prints one RESULTS
line: per case, None (it built) or the exception's type and message.

    mpirun -n 2 python options_worker.py
"""

import sim  # noqa: I001 — before NumPy (thread settings)

import json
import tempfile

import tinyllm
from sim.checkpoint import save_sharded
from sim.offload import ZeRO1Offload, ZeRO3Offload, ZeRO3OffloadParams
from sim.parallel3d import Parallel3D
from sim.strategy import Strategy
from sim.zero import ZeRO1, ZeRO2
from sim.zero3 import ZeRO3
from tinyllm.models import GPT, GPTConfig

world = sim.init()
CFG = GPTConfig(block_size=8, vocab_size=32, n_layer=2, n_head=2, n_embd=16)


def make_model():
    tinyllm.manual_seed(0)
    return GPT(CFG)


def outcome(call):
    """None if `call()` returned (a strategy it built is closed), else the exception."""
    try:
        result = call()
    except Exception as e:  # noqa: BLE001 — the test inspects type and message
        return {"type": type(e).__name__, "message": str(e)}
    if isinstance(result, Strategy):
        result.close()
    return None


class Bare(Strategy):
    """A strategy that trains nothing and implements none of the checkpoint protocol."""

    name = "bare"

    def _setup(self):
        pass


def main():
    cases = {
        "ZeRO1(prefetch=True)": lambda: ZeRO1(make_model(), world, prefetch=True),
        "ZeRO1(reshard_after_forward=False)": lambda: ZeRO1(
            make_model(), world, reshard_after_forward=False
        ),
        "ZeRO2(prefetch=True)": lambda: ZeRO2(make_model(), world, prefetch=True),
        "ZeRO2(reshard_after_forward=True)": lambda: ZeRO2(
            make_model(), world, reshard_after_forward=True
        ),
        "ZeRO1Offload(prefetch=True)": lambda: ZeRO1Offload(make_model(), world, prefetch=True),
        "ZeRO2(offload='optimizer')": lambda: ZeRO2(make_model(), world, offload="optimizer"),
        "ZeRO3(prefetch=True, reshard_after_forward=False)": lambda: ZeRO3(
            make_model(), world, prefetch=True, reshard_after_forward=False
        ),
        "ZeRO3Offload(prefetch=True)": lambda: ZeRO3Offload(make_model(), world, prefetch=True),
        "ZeRO3OffloadParams(sharding_factor=1)": lambda: ZeRO3OffloadParams(
            make_model(), world, sharding_factor=1
        ),
        "ZeRO1(sharding_factor=3)": lambda: ZeRO1(make_model(), world, sharding_factor=3),
    }
    results = {
        "world_size": world.size,
        "options": {name: outcome(call) for name, call in cases.items()},
    }
    bare = Bare(make_model(), world)
    results["bare"] = {
        "writes_checkpoint": outcome(bare.writes_checkpoint),
        "shard_state": outcome(bare.shard_state),
        "load_full_state": outcome(lambda: bare.load_full_state({}, {}, {}, 0)),
        "full_state_dict": outcome(bare.full_state_dict),
    }
    bare.close()
    # Parallel3D gathers a full state dict but writes no sharded checkpoint.
    p3d = Parallel3D(make_model(), world, dp=world.size)
    with tempfile.TemporaryDirectory() as tmp:
        results["parallel3d_save"] = outcome(lambda: save_sharded(p3d, tmp, 0))
    results["parallel3d_full_state_dict"] = outcome(p3d.full_state_dict)
    p3d.close()
    if world.rank == 0:
        print("RESULTS " + json.dumps(results), flush=True)


main()
