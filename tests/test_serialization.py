"""tinyllm.save / tinyllm.load: round trips of state dicts, sharing, types, errors, atomicity."""

import io
import math
import os
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import tinyllm
from tinyllm import nn
from tinyllm.engine import Tensor
from tinyllm.models import GPT, GPTConfig
from tinyllm.optim import AdamW
from tinyllm.serialization import SerializationError


def test_nested_structure_round_trips_with_types(tmp_path):
    obj = {
        "a": np.arange(6, dtype=np.int64).reshape(2, 3),
        "b": [Tensor(np.ones(2, np.float64), requires_grad=True), None, True, 3, 2.5, "s"],
        "c": (1.0, 2.0),
        0: {"nested": OrderedDict(x=np.zeros((0, 4), np.float16))},
        "special": [math.inf, -math.inf, math.nan],
        "np_scalar": np.float32(1.5),
        "bools": np.array([True, False]),
    }
    path = tmp_path / "obj.tl"
    tinyllm.save(obj, path)
    back = tinyllm.load(path)
    assert list(back) == ["a", "b", "c", 0, "special", "np_scalar", "bools"]  # int key stays int
    assert isinstance(back["a"], Tensor) and back["a"].dtype == np.int64
    np.testing.assert_array_equal(back["a"].data, obj["a"])
    t = back["b"][0]
    assert isinstance(t, Tensor) and t.requires_grad and t.dtype == np.float64
    assert back["b"][1:] == [None, True, 3, 2.5, "s"] and type(back["b"][3]) is int
    assert back["c"] == (1.0, 2.0) and isinstance(back["c"], tuple)
    nested = back[0]["nested"]
    assert isinstance(nested, OrderedDict) and nested["x"].shape == (0, 4)
    assert nested["x"].dtype == np.float16
    assert back["special"][:2] == [math.inf, -math.inf] and math.isnan(back["special"][2])
    assert back["np_scalar"] == 1.5 and type(back["np_scalar"]) is float
    assert back["bools"].dtype == np.bool_


def test_shared_tensors_are_stored_once_and_load_as_one(tmp_path):
    w = np.random.default_rng(0).standard_normal((50, 40)).astype(np.float32)
    path = tmp_path / "tied.tl"
    tinyllm.save({"wte": w, "lm_head": w}, path)
    with zipfile.ZipFile(path) as z:
        assert sum(n.startswith("t") for n in z.namelist()) == 1
    back = tinyllm.load(path)
    assert back["wte"] is back["lm_head"]


def test_model_state_dict_round_trip_including_tied_gpt(tmp_path):
    cfg = GPTConfig(vocab_size=13, block_size=8, n_layer=1, n_head=2, n_embd=8)
    a = GPT(cfg, generator=np.random.default_rng(0))
    b = GPT(cfg, generator=np.random.default_rng(1))
    tinyllm.save(a.state_dict(), tmp_path / "gpt.tl")
    b.load_state_dict(tinyllm.load(tmp_path / "gpt.tl"))
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[k], v)
    x = np.arange(8)[None] % 13
    np.testing.assert_array_equal(a(x)[0].data, b(x)[0].data)


def test_bfloat16_keeps_its_dtype(tmp_path):
    m = nn.Linear(4, 3).to(tinyllm.bfloat16)
    tinyllm.save(m.state_dict(), tmp_path / "bf16.tl")
    back = tinyllm.load(tmp_path / "bf16.tl")
    assert back["weight"].dtype is tinyllm.bfloat16
    np.testing.assert_array_equal(back["weight"].numpy(), m.weight.numpy())
    m2 = nn.Linear(4, 3).to(tinyllm.bfloat16)
    m2.load_state_dict(back)
    np.testing.assert_array_equal(m2.weight.data, m.weight.data)


def test_optimizer_state_dict_round_trips_and_training_continues(tmp_path):
    def run(steps, start=0, resume=None):
        m = nn.Linear(3, 2, generator=np.random.default_rng(0))
        opt = AdamW(m.parameters(), lr=0.1, betas=(0.8, 0.9))
        if resume is not None:
            m.load_state_dict(resume["model"])
            opt.load_state_dict(resume["opt"])
        for i in range(start, start + steps):
            x = Tensor(np.full((2, 3), i + 1.0, np.float32))
            opt.zero_grad()
            (m(x) ** 2).sum().backward()
            opt.step()
        return m, opt

    m, opt = run(2)
    tinyllm.save({"model": m.state_dict(), "opt": opt.state_dict()}, tmp_path / "run.tl")
    loaded = tinyllm.load(tmp_path / "run.tl")
    assert loaded["opt"]["param_groups"][0]["betas"] == (0.8, 0.9)
    assert loaded["opt"]["state"][0]["step"] == 2  # int keys and values survive JSON
    resumed, _ = run(2, start=2, resume=loaded)
    straight, _ = run(4)
    for k, v in straight.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[k], v)  # bit for bit


def test_arbitrary_objects_are_type_errors_naming_the_key_path(tmp_path):
    path = tmp_path / "bad.tl"
    with pytest.raises(
        TypeError, match=r"builtin_function_or_method at obj\['state'\]\[0\]\['fn'\]"
    ):
        tinyllm.save({"state": {0: {"fn": print}}}, path)
    with pytest.raises(TypeError, match=r"Linear at obj\['m'\]"):
        tinyllm.save({"m": nn.Linear(1, 1)}, path)
    with pytest.raises(TypeError, match=r"key \(1, 2\).*obj"):
        tinyllm.save({(1, 2): 3}, path)
    with pytest.raises(TypeError, match="dtype object"):
        tinyllm.save([np.array([None])], path)
    assert not os.path.exists(path)  # nothing written, not even a temporary file
    assert os.listdir(tmp_path) == []


def test_atomic_write_keeps_the_old_file_when_saving_fails(tmp_path):
    path = tmp_path / "keep.tl"
    tinyllm.save({"x": np.ones(3)}, path)
    with pytest.raises(TypeError):
        tinyllm.save({"x": np.ones(3), "y": object()}, path)
    np.testing.assert_array_equal(tinyllm.load(path)["x"].data, np.ones(3))


def test_file_objects_and_load_errors(tmp_path):
    buf = io.BytesIO()
    tinyllm.save([np.arange(3)], buf)
    buf.seek(0)
    assert tinyllm.load(buf)[0].tolist() == [0, 1, 2]
    with pytest.raises(FileNotFoundError, match="nope.tl"):
        tinyllm.load(tmp_path / "nope.tl")
    tinyllm.save({"x": np.ones(1000)}, tmp_path / "t.tl")
    data = (tmp_path / "t.tl").read_bytes()
    (tmp_path / "cut.tl").write_bytes(data[: len(data) // 2])
    with pytest.raises(SerializationError, match="cut.tl"):
        tinyllm.load(tmp_path / "cut.tl")
    np.savez(tmp_path / "plain.npz", a=np.ones(2))
    with pytest.raises(SerializationError, match="not a tinyllm.save file"):
        tinyllm.load(tmp_path / "plain.npz")
    with pytest.raises(ValueError, match="cuda"):
        tinyllm.load(tmp_path / "t.tl", map_location="cuda")


def test_a_torch_pickle_is_refused_with_a_hint(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.ones(2)}, tmp_path / "w.pt")
    with pytest.raises(SerializationError, match="PyTorch pickle"):
        tinyllm.load(tmp_path / "w.pt")


def test_models_reachable_after_import_tinyllm():
    import subprocess
    import sys

    code = "import tinyllm; print(tinyllm.models.GPT.__name__, tinyllm.save.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["GPT", "save"]
