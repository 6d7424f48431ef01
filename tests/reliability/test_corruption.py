"""Damaged checkpoints and tokenizer files: every case loads bit-identically or fails clearly.

Each test takes a pristine file (a single-file checkpoint, a tokenizer file, sharded checkpoints
written under a real mpirun by 2 and by 4 ranks) and damages it in many ways: truncation at
many offsets, flipped and replaced bytes, dropped members and files, consistent edits that keep
every zip CRC valid (the step, the config, a parameter's dtype, a header claiming terabytes),
members and shards swapped in from another save of the same run or from another world size,
indexes of other saves, foreign files in the checkpoint's place. Each case is then loaded
exactly as a user would, and sorted into one of

    identical     the load succeeded and gave exactly the pristine state
    clear         CheckpointError / TokenizerFileError whose message names the file
    silent wrong  the load succeeded with a different state — the failure that must not happen
    unclear       any other exception (MemoryError, KeyError, ...), or a message naming no file

The tally is printed (`pytest -s`) and `silent wrong` and `unclear` must both be zero. The suite
uses only calls that every version of tinyllm has, so it can also be run against an old one.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile

import numpy as np
import pytest
from mpi_helpers import run_mpi

from sim.checkpoint import consolidate
from tinyllm.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tinyllm.data import ENDOFTEXT, ByteLevelBPE, TokenizerFileError
from tinyllm.models import GPT, GPTConfig
from tinyllm.nn import Linear
from tinyllm.optim import AdamW

CLEAR_ERRORS = (CheckpointError, TokenizerFileError)


class Tally:
    """Counts the four outcomes of loading damaged files (see the module docstring)."""

    def __init__(self, what: str):
        self.what = what
        self.counts = {"identical": 0, "clear": 0, "silent wrong": 0, "unclear": 0}
        self.examples: dict[str, list[str]] = {"silent wrong": [], "unclear": []}

    def case(self, label: str, load, expected, path) -> None:
        try:
            got = load()
        except CLEAR_ERRORS as e:
            kind = "clear" if str(path) in str(e) else "unclear"
            detail = f"{type(e).__name__}: {e}"
        except Exception as e:  # noqa: BLE001 — any other exception is what we are counting
            kind, detail = "unclear", f"{type(e).__name__}: {e}"
        else:
            kind, detail = ("identical" if got == expected else "silent wrong"), "loaded"
        self.counts[kind] += 1
        if kind in self.examples and len(self.examples[kind]) < 6:
            self.examples[kind].append(f"{label}: {detail[:160]}")

    def report(self) -> str:
        tried = sum(self.counts.values())
        line = f"{self.what}: tried {tried} | " + " | ".join(
            f"{k} {v}" for k, v in self.counts.items()
        )
        for kind, cases in self.examples.items():
            line += "".join(f"\n    {kind}: {c}" for c in cases)
        return line

    def assert_safe(self) -> None:
        print("\n" + self.report())
        assert self.counts["silent wrong"] == 0 and self.counts["unclear"] == 0, self.report()


def offsets(n: int, k: int, rng) -> list[int]:
    """k offsets in [0, n): evenly spread, plus random ones, plus the last bytes."""
    spread = np.linspace(0, n - 1, k // 2).astype(int).tolist()
    rand = rng.integers(0, n, k - k // 2).tolist()
    return sorted(set(spread + rand + list(range(max(0, n - 24), n))))


def rewrite_archive(src, dst, edit, compression=zipfile.ZIP_STORED) -> None:
    """`src`'s members, edited by `edit({name: bytes})`, as a new zip with valid CRCs."""
    with zipfile.ZipFile(src) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    with zipfile.ZipFile(dst, "w", compression) as z:
        for name, data in edit(members).items():
            z.writestr(name, data)


def npy(a) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def edit_meta(change):
    def edit(members):
        meta = json.loads(np.load(io.BytesIO(members["__meta__.npy"])).tobytes())
        change(meta)
        data = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        return dict(members, **{"__meta__.npy": npy(data)})

    return edit


def foreign_files(tmp_path) -> dict[str, bytes]:
    """Things that are not checkpoints, as bytes."""
    tok = ByteLevelBPE().train("abc abd " * 20, vocab_size=260)
    tok.save(tmp_path / "foreign-tok.txt")
    buf = io.BytesIO()
    np.savez(buf, a=np.arange(5))
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("readme.txt", "hello")
    return {
        "empty": b"",
        "random bytes": np.random.default_rng(5).bytes(3000),
        "an unrelated npz": buf.getvalue(),
        "a tokenizer file": (tmp_path / "foreign-tok.txt").read_bytes(),
        "a JSON document": b'{"step": 3, "format": "tinyllm-checkpoint"}',
        "a zip of text": zbuf.getvalue(),
    }


# ---- single-file checkpoints ------------------------------------------------------------------

CFG = dict(vocab_size=19, block_size=8, n_layer=1, n_head=2, n_embd=8)


def gpt_and_adam(seed: int):
    model = GPT(GPTConfig(**CFG), generator=np.random.default_rng(seed))
    return model, AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)


def trained_checkpoint(path, steps: int) -> None:
    model, opt = gpt_and_adam(0)
    rng = np.random.default_rng(steps)
    for _ in range(steps):
        x = rng.integers(0, 19, (2, 8))
        _, loss = model(x, np.roll(x, -1, axis=1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_checkpoint(path, model, opt, step=steps, config=CFG, extra={"note": "pristine"})


def single_file_state(path):
    """What a load gives, as comparable values: every array's dtype, shape and bytes."""
    model, opt = gpt_and_adam(99)  # other initial values: a skipped array shows up
    meta = load_checkpoint(path, model, opt, restore_rng=False)
    arrays = {k: (v.dtype.str, v.shape, v.tobytes()) for k, v in model.state_dict().items()}
    sd = opt.state_dict()
    state = {
        i: {k: (v.dtype.str, v.tobytes()) if isinstance(v, np.ndarray) else v for k, v in s.items()}
        for i, s in sd["state"].items()
    }
    return arrays, state, sd["param_groups"], meta["step"], meta["config"], meta["extra"]


def test_single_file_checkpoint_corruption(tmp_path):
    good, other = tmp_path / "good.npz", tmp_path / "other.npz"
    trained_checkpoint(good, 2)
    trained_checkpoint(other, 3)  # the same run one step later: same names and shapes
    raw = good.read_bytes()
    expected = single_file_state(good)
    tally = Tally("single-file checkpoint")
    bad = tmp_path / "bad.npz"

    def case(label, data: bytes | None = None):
        if data is not None:
            bad.write_bytes(data)
        tally.case(label, lambda: single_file_state(bad), expected, bad)

    rng = np.random.default_rng(0)
    for off in offsets(len(raw), 80, rng):
        case(f"truncated at {off}", raw[:off])
    for off in offsets(len(raw), 500, rng):
        flipped = bytearray(raw)
        flipped[off] ^= 1 << int(rng.integers(0, 8))
        case(f"bit flipped at {off}", bytes(flipped))
    with zipfile.ZipFile(good) as z:
        names = [i.filename for i in z.infolist()]
    for name in names:
        rewrite_archive(good, bad, lambda m, name=name: {k: v for k, v in m.items() if k != name})
        case(f"member {name} dropped")
    for name in [n for n in names if n != "__meta__.npy"][:12]:
        with zipfile.ZipFile(other) as z:
            theirs = z.read(name)
        rewrite_archive(good, bad, lambda m, name=name, theirs=theirs: dict(m, **{name: theirs}))
        case(f"member {name} from another save")
    weight = "model/transformer.h.0.mlp.c_fc.weight.npy"
    for dtype in (np.float64, np.float16, bool, np.int32):

        def retype(m, dtype=dtype):
            a = np.load(io.BytesIO(m[weight]))
            return dict(m, **{weight: npy(a.astype(dtype))})

        rewrite_archive(good, bad, retype)
        case(f"{weight} stored as {np.dtype(dtype)}")

    def lying_header(m):
        fake = npy(np.zeros(0, np.float32)).replace(b"(0,)", b"(1099511627776,)")
        return dict(m, **{weight: fake + m[weight][len(fake) :]})

    rewrite_archive(good, bad, lying_header)
    case("a header claiming 4 TB")
    rewrite_archive(good, bad, lambda m: dict(m, **{"pad.npy": npy(np.zeros(1 << 23))}), 8)
    case("a deflated 64 MB member (a small file that inflates)")
    for label, change in (
        ("step -1", lambda meta: meta.update(step=-1)),
        ("step 5", lambda meta: meta.update(step=5)),
        ("step 2.5", lambda meta: meta.update(step=2.5)),
        ("config edited", lambda meta: meta["config"].update(n_embd=16)),
        ("aliases dropped", lambda meta: meta.pop("aliases")),
        (
            "optimizer scalars of parameter 0 dropped",
            lambda meta: meta["optimizer"]["scalars"].pop("0"),
        ),
        (
            "a learning rate edited",
            lambda meta: meta["optimizer"]["param_groups"][0].update(lr=9.0),
        ),
        ("extra edited", lambda meta: meta["extra"].update(note="forged")),
    ):
        rewrite_archive(good, bad, edit_meta(change))
        case(f"metadata: {label}")
    for label, data in foreign_files(tmp_path).items():
        case(f"foreign: {label}", data)
    save_checkpoint(bad, Linear(3, 2), step=2)
    case("another model's checkpoint")
    tally.assert_safe()


# ---- tokenizer files --------------------------------------------------------------------------

TEXT = (
    "def parse(self, text):\n    return [t for t in text.split() if t]\n"
    "The quick brown fox jumps over the lazy dog. Über naïve café 🙂\n"
) * 12


def test_tokenizer_file_corruption(tmp_path):
    tok = ByteLevelBPE().train(TEXT, vocab_size=300, special_tokens=[ENDOFTEXT, "<pad>"])
    good = tmp_path / "tok.txt"
    tok.save(good)
    raw = good.read_bytes()
    expected = (tok.merges, tok.special_tokens)
    tally = Tally("tokenizer file")
    bad = tmp_path / "bad-tok.txt"

    def load():
        t = ByteLevelBPE.load(bad)
        return t.merges, t.special_tokens

    def case(label, data):
        bad.write_bytes(data)
        tally.case(label, load, expected, bad)

    hexdigits = b"0123456789abcdef"
    for off in range(len(raw)):
        case(f"truncated at {off}", raw[:off])
        for new in {raw[off] ^ 1, hexdigits[(hexdigits.find(raw[off]) + 1) % 16]}:
            if new != raw[off]:
                edited = bytearray(raw)
                edited[off] = new
                case(f"byte {off} → {bytes([new])!r}", bytes(edited))
    lines = raw.split(b"\n")
    for i in range(2, min(len(lines) - 3, 40)):
        case(f"line {i + 1} dropped", b"\n".join(lines[:i] + lines[i + 1 :]))
        case(
            f"lines {i + 1}, {i + 2} swapped",
            b"\n".join(lines[:i] + [lines[i + 1], lines[i]] + lines[i + 2 :]),
        )
    case("a blank line appended", raw + b"\n")
    for label, data in foreign_files(tmp_path).items():
        if label != "a tokenizer file":
            case(f"foreign: {label}", data)
    tally.assert_safe()


# ---- sharded checkpoints ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """n2-s1, n2-s2 (two saves of one run on 2 ranks) and n4-s1, n4-s2 (the same on 4)."""
    out = tmp_path_factory.mktemp("sharded")
    for n in (2, 4):
        run_mpi("corruption_worker.py", n, [out], timeout=300)
    return out


def sharded_state(directory):
    params, m, v, index = consolidate(directory)
    arrays = {
        (kind, k): (a.dtype.str, a.shape, a.tobytes())
        for kind, d in (("param", params), ("m", m), ("v", v))
        for k, a in d.items()
    }
    return arrays, index["step"], index["n_shards"], index["extra"]


@pytest.mark.mpi
def test_sharded_checkpoint_corruption(sharded, tmp_path):
    good, same_run_earlier, four_ranks = sharded / "n2-s2", sharded / "n2-s1", sharded / "n4-s2"
    expected = sharded_state(good)
    tally = Tally("sharded checkpoint")
    rng = np.random.default_rng(1)
    count = [0]

    def case(label, damage):
        count[0] += 1
        d = tmp_path / f"case{count[0]}"
        shutil.copytree(good, d)
        damage(d)
        tally.case(label, lambda: sharded_state(d), expected, d)
        shutil.rmtree(d)

    shards = ["shard-00000-of-00002.npz", "shard-00001-of-00002.npz"]

    def write(name, data):
        return lambda d: (d / name).write_bytes(data)

    def index_edit(change):
        def damage(d):
            index = json.loads((d / "index.json").read_text())
            change(index)
            (d / "index.json").write_text(json.dumps(index, indent=1) + "\n")

        return damage

    case("index.json deleted", lambda d: os.unlink(d / "index.json"))
    for name in shards:
        case(f"{name} deleted", lambda d, name=name: os.unlink(d / name))
        raw = (good / name).read_bytes()
        for off in offsets(len(raw), 16, rng):
            case(f"{name} truncated at {off}", write(name, raw[:off]))
        for off in offsets(len(raw), 60, rng):
            flipped = bytearray(raw)
            flipped[off] ^= 1 << int(rng.integers(0, 8))
            case(f"{name}: bit flipped at {off}", write(name, bytes(flipped)))
    index_raw = (good / "index.json").read_bytes()
    for off in range(len(index_raw)):
        flipped = bytearray(index_raw)
        flipped[off] ^= 1
        case(f"index.json: byte {off} flipped", write("index.json", bytes(flipped)))
    for label, change in (
        ("step -1", lambda i: i.update(step=-1)),
        ("step 3", lambda i: i.update(step=3)),
        ("step '2'", lambda i: i.update(step="2")),
        ("n_shards 4", lambda i: i.update(n_shards=4)),
        ("files reversed", lambda i: i["files"].reverse()),
        ("a group dropped", lambda i: i["groups"].pop()),
        ("extra edited", lambda i: i["extra"].update(saved=7)),
        ("world size edited", lambda i: i.update(world_size=8)),
    ):
        case(f"index.json: {label}", index_edit(change))
    for name in shards:  # the same run's previous save
        data = (same_run_earlier / name).read_bytes()
        case(f"{name} from the step-1 save of the same run", write(name, data))
    case(
        "index.json from the step-1 save",
        write("index.json", (same_run_earlier / "index.json").read_bytes()),
    )
    case(
        "index.json from the 4-rank save",
        write("index.json", (four_ranks / "index.json").read_bytes()),
    )
    for i in range(2):  # another world size's shard under this one's name
        data = (four_ranks / f"shard-0000{i}-of-00004.npz").read_bytes()
        case(f"shard {i} of 4 renamed to shard {i} of 2", write(shards[i], data))

    def four_rank_shards(d):
        for name in shards:
            os.unlink(d / name)
        for f in four_ranks.iterdir():
            if f.name.startswith("shard-"):
                shutil.copy(f, d / f.name)

    case("the 4-rank shards with the 2-rank index", four_rank_shards)
    single = tmp_path / "single.npz"
    save_checkpoint(single, Linear(3, 2), step=2)
    case("a single-file checkpoint as shard 0", write(shards[0], single.read_bytes()))
    for label, data in foreign_files(tmp_path).items():
        case(f"foreign as shard 1: {label}", write(shards[1], data))
        case(f"foreign as index.json: {label}", write("index.json", data))
    tally.assert_safe()
