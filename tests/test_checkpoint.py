"""tinyllm.checkpoint: round trips, bit-identical resume, corruption, atomic writes, no pickle."""

import os

import numpy as np
import pytest

import tinyllm
from tinyllm import checkpoint as ckpt
from tinyllm.checkpoint import CheckpointError, load_arrays, load_checkpoint, save_checkpoint
from tinyllm.models import GPT, GPTConfig
from tinyllm.nn import Linear
from tinyllm.optim import SGD, AdamW
from tinyllm.runtime.random import default_generator

CFG = dict(vocab_size=19, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.1)


def make(seed):
    """A fresh GPT (dropout on, so the RNG state matters) and its AdamW."""
    m = GPT(GPTConfig(**CFG), generator=np.random.default_rng(seed))
    return m, AdamW(m.parameters(), lr=3e-3, weight_decay=0.1)


def train_step(m, opt):
    """One step on a batch drawn from tinyllm's default generator (as is the dropout mask)."""
    x = default_generator().integers(0, 19, (4, 8))
    _, loss = m(x, np.roll(x, -1, axis=1))
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def test_round_trip_model_optimizer_step_rng_config(tmp_path):
    tinyllm.manual_seed(0)
    m, opt = make(0)
    for _ in range(2):
        train_step(m, opt)
    path = tmp_path / "run.npz"
    save_checkpoint(path, m, opt, step=2, config=m.config.to_dict(), extra={"note": "hi"})
    expected_draws = default_generator().random(3)  # what the RNG gives next

    tinyllm.manual_seed(99)  # scramble the RNG
    m2, opt2 = make(1)
    meta = load_checkpoint(path, m2, opt2)
    assert meta["step"] == 2 and meta["config"] == m.config.to_dict()
    assert meta["extra"] == {"note": "hi"}
    np.testing.assert_array_equal(default_generator().random(3), expected_draws)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(m2.state_dict()[k], v, err_msg=k)
        assert m2.state_dict()[k].dtype == v.dtype
    assert m2.lm_head.weight is m2.transformer.wte.weight  # tying survives loading
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for i in a["state"]:
        assert a["state"][i]["step"] == b["state"][i]["step"] == 2
        for key in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(a["state"][i][key], b["state"][i][key])


def test_resume_gives_bit_identical_losses(tmp_path):
    tinyllm.manual_seed(0)
    m, opt = make(0)
    straight = [train_step(m, opt) for _ in range(6)]

    tinyllm.manual_seed(0)
    m, opt = make(0)
    first = [train_step(m, opt) for _ in range(3)]
    save_checkpoint(tmp_path / "c.npz", m, opt, step=3)
    del m, opt
    tinyllm.manual_seed(12345)  # a different process, in effect
    m, opt = make(7)
    assert load_checkpoint(tmp_path / "c.npz", m, opt)["step"] == 3
    resumed = first + [train_step(m, opt) for _ in range(3)]
    assert resumed == straight  # exact float equality


def test_sgd_momentum_state_round_trip(tmp_path):
    lin = Linear(3, 2)
    opt = SGD(lin.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    for p in lin.parameters():
        p.grad = np.ones(p.shape, np.float32)
    opt.step()
    save_checkpoint(tmp_path / "s.npz", lin, opt)
    lin2 = Linear(3, 2)
    opt2 = SGD(lin2.parameters(), lr=0.5)
    load_checkpoint(tmp_path / "s.npz", lin2, opt2)
    assert opt2.param_groups[0]["nesterov"] is True and opt2.param_groups[0]["lr"] == 0.1
    np.testing.assert_array_equal(
        opt2.state_dict()["state"][0]["momentum_buffer"],
        opt.state_dict()["state"][0]["momentum_buffer"],
    )


def test_tied_weights_are_stored_once_and_no_pickle_is_needed(tmp_path):
    m, opt = make(0)
    path = tmp_path / "c.npz"
    save_checkpoint(path, m, opt)
    with np.load(path, allow_pickle=False) as z:  # loads with pickle disabled
        names = z.files
        assert all(z[k].dtype != object for k in names)
    assert "model/transformer.wte.weight" in names and "model/lm_head.weight" not in names
    arrays, meta = load_arrays(path)
    assert meta["aliases"] == {"lm_head.weight": "transformer.wte.weight"}
    n_model = sum(a.size for k, a in arrays.items() if k.startswith("model/"))
    assert n_model == m.num_parameters()  # V·E counted once


# ---- bad files ---------------------------------------------------------------------------------


@pytest.fixture
def small_file(tmp_path):
    path = tmp_path / "small.npz"
    save_checkpoint(path, Linear(3, 2), step=1)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="nope.npz"):
        load_checkpoint(tmp_path / "nope.npz", Linear(3, 2))


@pytest.mark.parametrize("keep", [0.0, 0.3, 0.9, 0.999])
def test_truncated_file_names_the_file(small_file, keep):
    raw = small_file.read_bytes()
    small_file.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(CheckpointError, match="small.npz"):
        load_checkpoint(small_file, Linear(3, 2))


def test_corrupted_data_byte_is_caught_by_the_checksum(small_file):
    raw = bytearray(small_file.read_bytes())
    with np.load(small_file) as z:
        weight = z["model/weight"]
    start = bytes(raw).find(weight.tobytes())  # the weight's bytes inside the zip
    assert start > 0
    raw[start + 5] ^= 0x01  # one flipped bit
    small_file.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="small.npz"):
        load_checkpoint(small_file, Linear(3, 2))


def test_any_flipped_byte_is_an_error_or_harmless(tmp_path):
    """Flip each byte of a small checkpoint in turn: loading either raises CheckpointError or
    (for zip fields nothing depends on, like timestamps) returns exactly the saved content —
    never another exception, never silently different arrays."""
    path = tmp_path / "c.npz"
    save_checkpoint(path, Linear(2, 2), step=1)
    raw = path.read_bytes()
    ref_arrays, ref_meta = load_arrays(path)
    errors = harmless = 0
    bad = tmp_path / "bad.npz"
    for off in range(len(raw)):
        b = bytearray(raw)
        b[off] ^= 0xFF
        bad.write_bytes(bytes(b))
        try:
            arrays, meta = load_arrays(bad)
        except CheckpointError:
            errors += 1
            continue
        assert meta == ref_meta, off
        assert arrays.keys() == ref_arrays.keys(), off
        for k in arrays:
            np.testing.assert_array_equal(arrays[k], ref_arrays[k], err_msg=f"offset {off}")
            assert arrays[k].dtype == ref_arrays[k].dtype
        harmless += 1
    assert errors > 0.8 * len(raw)


def test_wrong_model_or_optimizer_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "c.npz"
    lin = Linear(3, 2)
    save_checkpoint(path, lin, AdamW(lin.parameters()))
    with pytest.raises(CheckpointError, match="weight"):
        load_checkpoint(path, Linear(4, 2))
    with pytest.raises(CheckpointError, match="AdamW"):
        load_checkpoint(path, Linear(3, 2), SGD(Linear(3, 2).parameters()))
    save_checkpoint(path, lin)
    with pytest.raises(CheckpointError, match="no optimizer"):
        load_checkpoint(path, Linear(3, 2), AdamW(Linear(3, 2).parameters()))


def test_not_a_tinyllm_checkpoint(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(CheckpointError, match="__meta__"):
        load_checkpoint(path, Linear(1, 1))


# ---- atomic writes -----------------------------------------------------------------------------


def test_save_leaves_no_temporary_files(tmp_path):
    save_checkpoint(tmp_path / "a.npz", Linear(3, 2))
    save_checkpoint(tmp_path / "a.npz", Linear(3, 2))  # overwrite
    assert sorted(os.listdir(tmp_path)) == ["a.npz"]


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "a.npz"
    old = Linear(3, 2)
    save_checkpoint(path, old, step=1)
    before = path.read_bytes()
    real_savez = np.savez

    def savez_then_crash(f, **arrays):
        real_savez(f, **arrays)  # write everything…
        f.seek(len(before) // 2)
        f.truncate()  # …lose the second half…
        raise OSError("disk full (simulated)")  # …and fail

    monkeypatch.setattr(ckpt.np, "savez", savez_then_crash)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, Linear(3, 2), step=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["a.npz"]
    fresh = Linear(3, 2)
    assert load_checkpoint(path, fresh)["step"] == 1
    np.testing.assert_array_equal(fresh.weight.data, old.weight.data)
