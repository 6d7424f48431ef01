"""tinyllm.checkpoint: round trips, bit-identical resume, corruption, atomic writes, no pickle."""

import io
import json
import os
import zipfile

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


# ---- what the checksum and the header checks catch ------------------------------------------


def rewrite_archive(src, dst, edit):
    """Copy the npz at `src` to `dst` with `edit(members)` applied to {name: bytes} — a valid zip
    with correct CRCs, the way a tool (or a careless script) would produce it."""
    with zipfile.ZipFile(src) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    members = edit(members)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)


def npy_bytes(a) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def edit_meta(change):
    def edit(members):
        meta = json.loads(np.load(io.BytesIO(members["__meta__.npy"])).tobytes())
        change(meta)
        raw = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        return dict(members, **{"__meta__.npy": npy_bytes(raw)})

    return edit


def test_a_consistent_edit_of_the_step_is_caught_by_the_checksum(small_file, tmp_path):
    bad = tmp_path / "edited.npz"
    rewrite_archive(small_file, bad, edit_meta(lambda m: m.update(step=-1)))
    with pytest.raises(CheckpointError, match="edited.npz.*checksum"):
        load_checkpoint(bad, Linear(3, 2))


def test_a_member_from_another_save_is_caught(tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    save_checkpoint(a, Linear(3, 2), step=1)
    save_checkpoint(b, Linear(3, 2), step=2)
    with zipfile.ZipFile(b) as z:
        other_weight = z.read("model/weight.npy")
    mixed = tmp_path / "mixed.npz"
    rewrite_archive(a, mixed, lambda m: dict(m, **{"model/weight.npy": other_weight}))
    with pytest.raises(CheckpointError, match="mixed.npz.*checksum"):
        load_checkpoint(mixed, Linear(3, 2))


def test_a_header_claiming_terabytes_is_an_error_not_a_memory_error(small_file, tmp_path):
    def lie(members):
        raw = members["model/weight.npy"]
        fake = npy_bytes(np.zeros(0, np.float32)).replace(b"(0,)", b"(1099511627776,)")
        return dict(members, **{"model/weight.npy": fake + raw[len(fake) :]})

    bad = tmp_path / "huge.npz"
    rewrite_archive(small_file, bad, lie)
    with pytest.raises(CheckpointError, match="huge.npz.*claims shape"):
        load_checkpoint(bad, Linear(3, 2))


def test_a_compressed_member_is_refused_before_it_is_inflated(small_file, tmp_path):
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(small_file) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:  # 64 MB of zeros → ~64 KB
        for name, data in members.items():
            z.writestr(name, data)
        z.writestr("pad.npy", npy_bytes(np.zeros(1 << 24, np.float32)))
    assert os.path.getsize(bomb) < 1 << 20
    with pytest.raises(CheckpointError, match="bomb.npz.*compressed"):
        load_checkpoint(bomb, Linear(3, 2))


def test_a_first_format_file_asks_to_be_saved_again(small_file, tmp_path):
    def strip(meta):
        meta.pop("sha256")
        meta["version"] = 1

    old = tmp_path / "v1.npz"
    rewrite_archive(small_file, old, edit_meta(strip))
    with pytest.raises(CheckpointError, match="v1.npz.*save it again"):
        load_checkpoint(old, Linear(3, 2))


@pytest.mark.parametrize("step", [-1, 1.5, True, "3"])
def test_step_must_be_a_non_negative_int(tmp_path, step):
    with pytest.raises(ValueError, match="non-negative integer"):
        save_checkpoint(tmp_path / "s.npz", Linear(3, 2), step=step)


def test_a_parameter_stored_with_another_dtype_is_refused(tmp_path):
    lin = Linear(3, 2)
    lin.weight.data = lin.weight.data > 0  # a bool "weight", as a buggy script could save
    path = tmp_path / "bool.npz"
    save_checkpoint(path, lin)
    with pytest.raises(CheckpointError, match="bool.npz.*weight.*bool.*float32"):
        load_checkpoint(path, Linear(3, 2))


def test_a_lost_optimizer_entry_is_an_error_not_a_restart(tmp_path):
    """Drop one parameter's exp_avg and re-seal the checksum (a consistent but incomplete
    file): the load must refuse instead of restarting that parameter's Adam moments."""
    lin = Linear(3, 2)
    opt = AdamW(lin.parameters())
    lin(tinyllm.tensor(np.ones((1, 3), np.float32))).sum().backward()
    opt.step()
    path = tmp_path / "o.npz"
    save_checkpoint(path, lin, opt, step=1)
    arrays, meta = load_arrays(path)
    del arrays["optimizer/state/0/exp_avg"]
    ckpt.save_arrays(tmp_path / "lost.npz", arrays, meta)  # valid checksum, entry gone
    lin2 = Linear(3, 2)
    with pytest.raises(CheckpointError, match="lost.npz.*weight.*exp_avg"):
        load_checkpoint(tmp_path / "lost.npz", lin2, AdamW(lin2.parameters()))


def test_the_checkpoint_carries_its_tokenizer_and_refuses_another(tmp_path):
    from tinyllm.data import ByteLevelBPE, TokenizerFileError

    tok = ByteLevelBPE().train("aaab aaab abab " * 20, vocab_size=260, special_tokens=["<s>"])
    other = ByteLevelBPE().train("xyxy zzz xyxy " * 20, vocab_size=260, special_tokens=["<s>"])
    path = tmp_path / "t.npz"
    save_checkpoint(path, Linear(3, 2), tokenizer=tok, config={"vocab_size": tok.vocab_size})
    meta = load_checkpoint(path, Linear(3, 2), tokenizer=tok)
    back = ByteLevelBPE.from_bytes(meta["tokenizer"], source=str(path))
    assert back.merges == tok.merges and back.special_tokens == tok.special_tokens
    with pytest.raises(CheckpointError, match="t.npz.*different tokenizer"):
        load_checkpoint(path, Linear(3, 2), tokenizer=other)
    with pytest.raises(TokenizerFileError, match="t.npz"):
        ByteLevelBPE.from_bytes(meta["tokenizer"][:-3], source=str(path))
