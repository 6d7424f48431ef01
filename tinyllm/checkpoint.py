"""Checkpoints: saving and restoring a training run safely.

A checkpoint is everything needed to continue training as if it had never stopped: the model's
parameters, the optimizer's state (Adam's moments and step counts), the step number, the
random-number generators' states, and the configuration. Restore all of them and the next
losses are bit-for-bit those of an uninterrupted run.

Format: one NumPy `.npz` archive (a zip of `.npy` arrays), read with `allow_pickle=False`, so
loading a checkpoint can never execute code (PyTorch's default pickle format can). Arrays are
stored under `model/<name>` and `optimizer/state/<i>/<key>`; everything that is not an array
(step, config, RNG state, hyper-parameters) is one JSON document stored as bytes under
`__meta__`. A tied parameter (GPT's lm_head.weight = transformer.wte.weight) is stored once and
recorded as an alias.

Safety: the file is written to a temporary name in the same directory, flushed to disk, and
then atomically renamed over the target, so a crash never leaves a half-written checkpoint
under the real name. Zip members carry CRC-32 checksums; a truncated or corrupted file raises
`CheckpointError` naming the file and the problem.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from tinyllm.runtime.fileio import atomic_write
from tinyllm.runtime.random import get_rng_state, set_rng_state

FORMAT = "tinyllm-checkpoint"
VERSION = 1


class CheckpointError(Exception):
    """A checkpoint file is missing, truncated, corrupt or does not fit the model."""


# ---- arrays + JSON metadata, atomically --------------------------------------------------------


def save_arrays(path: str, arrays: dict, meta: dict) -> None:
    """Write {name: array} and a JSON-able `meta` dict to `path` atomically."""
    payload = dict(arrays)
    if "__meta__" in payload or "__arrays__" in meta:
        raise ValueError("save_arrays: '__meta__' (array) and '__arrays__' (meta key) are reserved")
    # The metadata also lists the array names: a corrupt zip directory can hide a member
    # without any checksum noticing, and load_arrays compares the two.
    record = dict(meta, __arrays__=sorted(arrays))
    payload["__meta__"] = np.frombuffer(json.dumps(record).encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **payload))


def load_arrays(path: str) -> tuple[dict, dict]:
    """Read back (arrays, meta); every array is read in full, so a bad CRC is caught here."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
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
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): {type(e).__name__}: {e}"
        ) from None
    if "__meta__" not in arrays:
        raise CheckpointError(f"{path}: no '__meta__' entry — not a tinyllm checkpoint")
    try:
        meta = json.loads(arrays.pop("__meta__").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: metadata is not valid JSON: {e}") from None
    names = meta.pop("__arrays__", None)  # absent in files written before it existed
    if names is not None and set(names) != set(arrays):
        lost, extra = sorted(set(names) - set(arrays)), sorted(set(arrays) - set(names))
        raise CheckpointError(
            f"{path}: corrupt archive directory — arrays missing {lost}, unexpected {extra}"
        )
    return arrays, meta


# ---- model + optimizer + RNG ----------------------------------------------------------------


def _jsonable(v):
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


def save_checkpoint(
    path: str,
    model,
    optimizer=None,
    step: int = 0,
    config: dict | None = None,
    extra: dict | None = None,
) -> None:
    """Save model (+ optimizer, step, config, tinyllm's RNG state, `extra` JSON) to `path`."""

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
        "step": int(step),
        "config": config,
        "aliases": aliases,
        "rng": get_rng_state(),
        "extra": extra or {},
    }
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars = {}
        for i, st in sd["state"].items():
            for k, v in st.items():
                if isinstance(v, np.ndarray):
                    arrays[f"optimizer/state/{i}/{k}"] = v
                else:
                    scalars.setdefault(str(i), {})[k] = _jsonable(v)
        meta["optimizer"] = {
            "type": type(optimizer).__name__,
            "scalars": scalars,
            "param_groups": [{k: _jsonable(v) for k, v in g.items()} for g in sd["param_groups"]],
        }
    save_arrays(path, arrays, meta)


def load_checkpoint(path: str, model=None, optimizer=None, restore_rng: bool = True) -> dict:
    """Load into `model` / `optimizer` in place; returns the metadata (step, config, extra)."""

    arrays, meta = load_arrays(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    if model is not None:
        sd = {k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")}
        for name, target in meta.get("aliases", {}).items():
            if target not in sd:
                raise CheckpointError(f"{path}: alias {name} → {target}, but {target} is missing")
            sd[name] = sd[target]
        try:
            model.load_state_dict(sd)
        except RuntimeError as e:  # load_state_dict lists missing/unexpected/mis-shaped keys
            raise CheckpointError(f"{path}: {e}") from None
    if optimizer is not None:
        if "optimizer" not in meta:
            raise CheckpointError(f"{path}: holds no optimizer state")
        opt = meta["optimizer"]
        if opt["type"] != type(optimizer).__name__:
            raise CheckpointError(
                f"{path}: optimizer state is for {opt['type']}, not {type(optimizer).__name__}"
            )
        state: dict = {}
        for k, v in arrays.items():
            if k.startswith("optimizer/state/"):
                _, _, i, key = k.split("/", 3)
                state.setdefault(int(i), {})[key] = v
        for i, sc in opt["scalars"].items():
            state.setdefault(int(i), {}).update(sc)
        groups = []
        for g in opt["param_groups"]:
            g = dict(g)
            if "betas" in g:
                g["betas"] = tuple(g["betas"])
            groups.append(g)
        try:
            optimizer.load_state_dict({"state": state, "param_groups": groups})
        except ValueError as e:
            raise CheckpointError(f"{path}: {e}") from None
    if restore_rng and meta.get("rng") is not None:
        set_rng_state(meta["rng"])
    return meta
