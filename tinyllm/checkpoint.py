"""Checkpoints: saving and restoring a training run safely.

A checkpoint is everything needed to continue training as if it had never stopped: the model's
parameters, the optimizer's state (Adam's moments and step counts), the step number, the
random-number generators' states, the model's configuration and the tokenizer the model reads.
Restore all of them and the next losses are bit-for-bit those of an uninterrupted run; hand the
checkpoint to another program and it needs nothing else to read and write text with the model.

Format: one NumPy `.npz` archive (a zip of `.npy` arrays) written uncompressed, so loading a
checkpoint can never execute code (PyTorch's default pickle format can) nor inflate a small
file into a huge allocation. Arrays are stored under `model/<name>`, `optimizer/state/<i>/<key>`
and `tokenizer` (the bytes of the tokenizer's own file, tinyllm/data/bpe_file.py); everything
that is not an array (step, run id, config, RNG state, hyper-parameters) is one JSON document
stored as bytes under `__meta__`. A tied parameter (GPT's lm_head.weight =
transformer.wte.weight) is stored once and recorded as an alias.

Integrity. Zip members carry CRC-32 checksums, which catch a flipped bit but not a file that is
consistent yet wrong: a member dropped from the directory, an array swapped in from another
save, an edited step. So the metadata also carries a SHA-256 over the whole content,

    sha256 = H( canonical JSON of the metadata  ‖  for each array, sorted by name:
                name, dtype, shape, raw bytes )

recomputed on every load. Before anything is read, each member's npy header is checked against
the member's size (∏shape × itemsize + header = stored bytes) and all members together against
the file's size, so a lying header is an error and not a 4 TB allocation. Parameter dtypes must
equal the model's, and every optimizer state entry must have all the keys it was saved with.
Anything wrong raises `CheckpointError` naming the file and the problem.

Safety of writing: the file is written to a temporary name in the same directory, flushed to
disk, and then atomically renamed over the target (tinyllm/runtime/fileio.py), so a crash never
leaves a half-written checkpoint under the real name.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import zipfile

import numpy as np

from tinyllm.runtime.fileio import atomic_write
from tinyllm.runtime.random import get_rng_state, set_rng_state

FORMAT = "tinyllm-checkpoint"
VERSION = 2


class CheckpointError(Exception):
    """A checkpoint file is missing, truncated, corrupt or does not fit the model."""


# ---- the content checksum ---------------------------------------------------------------------


def canonical_json(obj) -> str:
    """One spelling of a JSON document (sorted keys, no spaces), so its hash is well defined."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def content_digest(arrays: dict, meta: dict) -> str:
    """SHA-256 over the metadata and every array's name, dtype, shape and bytes (see above)."""
    h = hashlib.sha256(canonical_json(meta).encode("ascii"))
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(canonical_json([name, a.dtype.str, list(a.shape)]).encode("utf-8"))
        h.update(a.reshape(-1).view(np.uint8).data)
    return h.hexdigest()


def check_step(step, where: str) -> int:
    """A step count is a non-negative int (not a bool, not a float); else a CheckpointError."""
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise CheckpointError(f"{where}: step must be a non-negative integer, got {step!r}")
    return int(step)


# ---- arrays + JSON metadata, atomically --------------------------------------------------------


def save_arrays(path: str, arrays: dict, meta: dict) -> None:
    """Write {name: array} and a JSON-able `meta` dict to `path` atomically, with the digest."""
    payload = dict(arrays)
    if "__meta__" in payload or "__arrays__" in meta or "sha256" in meta:
        raise ValueError(
            "save_arrays: '__meta__' (array), '__arrays__' and 'sha256' (meta keys) are reserved"
        )
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray) or a.dtype.hasobject:
            raise TypeError(f"save_arrays: {name!r} is not a plain NumPy array")
    # JSON once and back, so the digest is over exactly what load_arrays will read
    record = json.loads(json.dumps(dict(meta, __arrays__=sorted(arrays))))
    record["sha256"] = content_digest(arrays, record)
    payload["__meta__"] = np.frombuffer(json.dumps(record).encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **payload))


def _fail(path, message: str):
    raise CheckpointError(f"{path}: {message}")


def _read_member(path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One `.npy` member, its header checked against its size before any allocation."""
    what = f"member {info.filename!r}"
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            _fail(path, f"{what}: npy format version {version} is not one numpy.savez writes")
        if dtype.hasobject:
            _fail(path, f"{what} holds Python objects (pickle); refusing to load it")
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize  # Python ints: no overflow
        if f.tell() + nbytes != info.file_size:
            _fail(
                path,
                f"{what}: its header claims shape {shape} of {dtype} ({nbytes:,} bytes) but the "
                f"member holds {info.file_size - f.tell():,} bytes of data",
            )
        data = bytearray(nbytes)
        view, got = memoryview(data), 0
        while got < nbytes:
            n = f.readinto(view[got:])
            if not n:
                _fail(path, f"{what} ends early (truncated?)")
            got += n
        if f.read(1):
            _fail(path, f"{what} is longer than its header says")
    a = np.frombuffer(data, dtype=dtype)
    return a.reshape(shape, order="F" if fortran else "C")


def load_arrays(path: str) -> tuple[dict, dict]:
    """Read back (arrays, meta), every size checked first and the content digest verified."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        _fail(path, "no such checkpoint file")
    try:
        size = os.path.getsize(path)
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            if len(set(names)) != len(names) or not all(n.endswith(".npy") for n in names):
                _fail(path, f"not a NumPy archive of distinct .npy members: {names[:8]}")
            for i in infos:  # nothing is inflated: a small file cannot become a huge array
                if i.compress_type != zipfile.ZIP_STORED or i.file_size != i.compress_size:
                    _fail(path, f"member {i.filename!r} is compressed; tinyllm writes none")
            if sum(i.file_size for i in infos) > size:
                _fail(path, "its members claim more bytes than the file holds (corrupt directory)")
            arrays = {i.filename[: -len(".npy")]: _read_member(path, zf, i) for i in infos}
    # a damaged zip header can also claim an unknown compression method or encryption
    except (
        zipfile.BadZipFile,
        ValueError,
        EOFError,
        OSError,
        KeyError,
        NotImplementedError,
        RuntimeError,
    ) as e:
        _fail(path, f"not a readable checkpoint (truncated or corrupt?): {type(e).__name__}: {e}")
    if "__meta__" not in arrays:
        _fail(path, "no '__meta__' entry — not a tinyllm checkpoint")
    try:
        meta = json.loads(arrays.pop("__meta__").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        _fail(path, f"metadata is not valid JSON: {e}")
    if not isinstance(meta, dict):
        _fail(path, "metadata is not a JSON object")
    digest = meta.pop("sha256", None)
    if digest is None:
        _fail(
            path,
            "carries no content checksum: written by an older tinyllm (format version 1) or "
            "not by tinyllm; load it with the version that wrote it and save it again",
        )
    if content_digest(arrays, meta) != digest:
        _fail(path, "content checksum mismatch — the file was modified or is corrupt")
    names = meta.pop("__arrays__")
    if set(names) != set(arrays):
        lost, extra = sorted(set(names) - set(arrays)), sorted(set(arrays) - set(names))
        _fail(path, f"arrays missing {lost}, unexpected {extra}")
    return arrays, meta


# ---- model + optimizer + RNG + tokenizer ------------------------------------------------------


def _jsonable(v):
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


def new_run_id() -> str:
    """A fresh identifier for a training run (stored in each of its checkpoints)."""
    return uuid.uuid4().hex


def save_checkpoint(
    path: str,
    model,
    optimizer=None,
    step: int = 0,
    config: dict | None = None,
    extra: dict | None = None,
    tokenizer=None,
    run_id: str | None = None,
) -> None:
    """Save model (+ optimizer, step, config, tinyllm's RNG state, `extra` JSON, the tokenizer —
    anything with `to_bytes()`, e.g. tinyllm.data.ByteLevelBPE) to `path`, atomically."""
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"save_checkpoint: step must be a non-negative integer, got {step!r}")
    arrays, aliases, by_id = {}, {}, {}
    for name, arr in model.state_dict().items():
        if id(arr) in by_id:
            aliases[name] = by_id[id(arr)]
        else:
            by_id[id(arr)] = name
            arrays[f"model/{name}"] = arr
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "run_id": run_id or new_run_id(),
        "step": int(step),
        "world_size": 1,  # one file holds everything; sim/checkpoint.py writes sharded ones
        "config": config,
        "aliases": aliases,
        "rng": get_rng_state(),
        "extra": extra or {},
    }
    if tokenizer is not None:
        arrays["tokenizer"] = np.frombuffer(tokenizer.to_bytes(), dtype=np.uint8)
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars, keys = {}, {}
        for i, st in sd["state"].items():
            keys[str(i)] = sorted(st)
            for k, v in st.items():
                if isinstance(v, np.ndarray):
                    arrays[f"optimizer/state/{i}/{k}"] = v
                else:
                    scalars.setdefault(str(i), {})[k] = _jsonable(v)
        meta["optimizer"] = {
            "type": type(optimizer).__name__,
            "scalars": scalars,
            "state_keys": keys,  # so a lost entry is an error, not a silent restart
            "param_groups": [{k: _jsonable(v) for k, v in g.items()} for g in sd["param_groups"]],
        }
    save_arrays(path, arrays, meta)


def _load_model(path, arrays: dict, meta: dict, model) -> None:
    sd = {k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")}
    for name, target in meta.get("aliases", {}).items():
        if target not in sd:
            _fail(path, f"alias {name} → {target}, but {target} is missing")
        sd[name] = sd[target]
    for name, current in model.state_dict().items():
        if name in sd and np.asarray(sd[name]).dtype.str != current.dtype.str:
            _fail(path, f"{name} is stored as {sd[name].dtype}, the model's is {current.dtype}")
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:  # load_state_dict lists missing/unexpected/mis-shaped keys
        _fail(path, str(e))


def _load_optimizer(path, arrays: dict, meta: dict, optimizer, model) -> None:
    if "optimizer" not in meta:
        _fail(path, "holds no optimizer state")
    opt = meta["optimizer"]
    if opt["type"] != type(optimizer).__name__:
        _fail(path, f"optimizer state is for {opt['type']}, not {type(optimizer).__name__}")
    state: dict = {}
    for k, v in arrays.items():
        if k.startswith("optimizer/state/"):
            _, _, i, key = k.split("/", 3)
            state.setdefault(int(i), {})[key] = v
    for i, sc in opt["scalars"].items():
        state.setdefault(int(i), {}).update(sc)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    names = {id(p): n for n, p in model.named_parameters()} if model is not None else {}
    expected = {int(i): set(k) for i, k in opt["state_keys"].items()}
    for i in sorted(set(expected) | set(state)):
        have, want = set(state.get(i, {})), expected.get(i, set())
        if have != want:
            who = names.get(id(params[i]), f"#{i}") if 0 <= i < len(params) else f"#{i}"
            _fail(
                path,
                f"optimizer state of parameter {who} has keys {sorted(have)}, saved with "
                f"{sorted(want)} (a lost entry would silently restart its moments)",
            )
    groups = []
    for g in opt["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except ValueError as e:
        _fail(path, str(e))


def load_checkpoint(
    path: str, model=None, optimizer=None, restore_rng: bool = True, tokenizer=None
) -> dict:
    """Load into `model` / `optimizer` in place; returns the metadata (step, run_id, config,
    extra, and `tokenizer`: the stored tokenizer file's bytes or None). Given a `tokenizer`,
    a checkpoint that stores a different one is a CheckpointError."""
    arrays, meta = load_arrays(path)
    if meta.get("format") != FORMAT:
        _fail(path, f"format {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("version") != VERSION:
        _fail(path, f"format version {meta.get('version')!r}; this tinyllm reads {VERSION}")
    check_step(meta.get("step"), os.fspath(path))
    stored = arrays["tokenizer"].tobytes() if "tokenizer" in arrays else None
    if tokenizer is not None and stored is not None and tokenizer.to_bytes() != stored:
        _fail(path, "was trained with a different tokenizer than the one given")
    if model is not None:
        _load_model(path, arrays, meta, model)
    if optimizer is not None:
        _load_optimizer(path, arrays, meta, optimizer, model)
    if restore_rng and meta.get("rng") is not None:
        set_rng_state(meta["rng"])
    meta["tokenizer"] = stored
    return meta
