"""The ZeRO ladder's shape: each rung takes only its own options, and every strategy declares
the checkpoint protocol.

* DDP → ZeRO-1 → ZeRO-2 → ZeRO-3 (sim/zero.py), each a subclass of the one before; the offload
  rungs (sim/offload.py) sit on top of the stage they offload, and `zero_class` maps the flags
  of examples/train_zero.py (stage, offload) to them;
* ZeRO-3's options (reshard_after_forward, prefetch) are refused by ZeRO-1 and ZeRO-2 with an
  error that names the option and the stage; offload="params" exists only for stage 3, where
  parameters are sharded;
* `Strategy` declares writes_checkpoint / shard_state / load_full_state / full_state_dict; a
  strategy that lacks one raises NotImplementedError naming its class and the method.
"""

import pytest
from mpi_helpers import run_mpi

from sim.ddp import DDP, NaiveDDP
from sim.offload import (
    ZERO_CLASSES,
    ZeRO1Offload,
    ZeRO2Offload,
    ZeRO3Offload,
    ZeRO3OffloadParams,
    zero_class,
)
from sim.strategy import Strategy
from sim.zero import ZeRO1, ZeRO2
from sim.zero3 import ZeRO3

PROTOCOL = ("writes_checkpoint", "shard_state", "load_full_state", "full_state_dict")


def test_zero_class_maps_stage_and_offload_to_a_rung():
    assert zero_class(1) is ZeRO1 and zero_class(2) is ZeRO2 and zero_class(3) is ZeRO3
    assert zero_class(1, "optimizer") is ZeRO1Offload
    assert zero_class(2, "optimizer") is ZeRO2Offload
    assert zero_class(3, "optimizer") is ZeRO3Offload
    assert zero_class(3, "params") is ZeRO3OffloadParams
    # each rung is the stage it offloads, plus one idea
    assert issubclass(ZeRO2, ZeRO1) and issubclass(ZeRO3, ZeRO2)
    for cls in (ZeRO1Offload, ZeRO2Offload, ZeRO3Offload, ZeRO3OffloadParams):
        assert issubclass(cls, zero_class(cls.stage)), cls
    assert ZeRO3OffloadParams.offload == "params" and ZeRO3Offload.offload == "optimizer"


@pytest.mark.parametrize("stage", [1, 2])
def test_params_offload_needs_sharded_parameters(stage):
    with pytest.raises(ValueError, match=f"offload='params' needs stage 3.*ZeRO-{stage}"):
        zero_class(stage, "params")


def test_zero_class_rejects_unknown_choices():
    with pytest.raises(ValueError, match="offload must be one of"):
        zero_class(2, "disk")
    with pytest.raises(ValueError, match="stage must be 1, 2 or 3"):
        zero_class(4)


@pytest.mark.parametrize("cls", [NaiveDDP, DDP, *ZERO_CLASSES.values()], ids=lambda c: c.__name__)
def test_every_data_parallel_strategy_implements_the_checkpoint_protocol(cls):
    for method in PROTOCOL:
        assert getattr(cls, method) is not getattr(Strategy, method), (cls.__name__, method)
        assert getattr(Strategy, method).__doc__, method  # the protocol says what it returns


@pytest.mark.mpi
def test_options_and_protocol_errors_under_mpirun():
    res = run_mpi("options_worker.py", 2, timeout=120).results()
    opts = res["options"]
    for name, option, stage in (
        ("ZeRO1(prefetch=True)", "prefetch", 1),
        ("ZeRO1(reshard_after_forward=False)", "reshard_after_forward", 1),
        ("ZeRO2(prefetch=True)", "prefetch", 2),
        ("ZeRO2(reshard_after_forward=True)", "reshard_after_forward", 2),
        ("ZeRO1Offload(prefetch=True)", "prefetch", 1),
    ):
        err = opts[name]
        assert err is not None and err["type"] == "TypeError", (name, err)
        assert f"'{option}'" in err["message"] and "ZeRO-3" in err["message"], err
        assert f"ZeRO-{stage}" in err["message"] and name.split("(")[0] in err["message"], err
    off = opts["ZeRO2(offload='optimizer')"]
    assert off["type"] == "TypeError" and "sim/offload.py" in off["message"], off
    assert "ZeRO2Offload" in off["message"], off
    for name in (
        "ZeRO3(prefetch=True, reshard_after_forward=False)",
        "ZeRO3Offload(prefetch=True)",
        "ZeRO3OffloadParams(sharding_factor=1)",
    ):
        assert opts[name] is None, (name, opts[name])
    bad_f = opts["ZeRO1(sharding_factor=3)"]
    assert bad_f["type"] == "ValueError" and "must divide the world size 2" in bad_f["message"]
    for method, err in res["bare"].items():
        assert err["type"] == "NotImplementedError", (method, err)
        assert f"Bare does not implement {method}()" in err["message"], err
    save = res["parallel3d_save"]
    assert save["type"] == "NotImplementedError", save
    assert "Parallel3D does not implement shard_state()" in save["message"], save
    assert res["parallel3d_full_state_dict"] is None
