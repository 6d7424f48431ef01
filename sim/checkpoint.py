"""Sharded checkpoints: every rank saves what it owns; any world size can load it back.

Under ZeRO no rank holds the whole model, and gathering it onto one rank to save would need
that rank to have memory for all of it. So each rank writes its *own* shards — for every flat
unit, its slice of the fp32 parameters and of Adam's two moments — into its own file:

    <dir>/shard-00002-of-00004.npz     rank with shard index 2 of 4 (one file per shard;
                                       with hybrid sharding only the first replica writes)
    <dir>/tokenizer.txt                the tokenizer's file (tinyllm/data/bpe_file.py), if given
    <dir>/index.json                   by rank 0: the step, the file list, the save's id, the
                                       model config, the caller's extra data, a SHA-256 of itself

A save is atomic as a whole, not just file by file. The ranks write a new directory beside the
old one, `<dir>.tmp-<save id>`; each file is fsynced, then the directory; only then does rank 0
switch: `<dir>` → `<dir>.old-<save id>`, the new directory → `<dir>`, and the old one is
deleted. A rank killed at any moment leaves `<dir>` as the previous complete checkpoint (or, in
the instant between the two renames, `<dir>.old-*`, which loading falls back to); the next save
sweeps the leftovers. (POSIX cannot swap two directories in one rename, hence the two steps.)

Every shard file records the run id, the save id, the step and the layout (which shard of how
many, the world size, the strategy, each unit's flat layout), and carries a SHA-256 over its
content (tinyllm/checkpoint.py). Loading checks all of it against the index, so a shard from
another save — of the same run at another step, or of a run with another world size — or a
truncated or foreign file is a `CheckpointError` naming the file, never a silent mix.

Loading *reshards*: `consolidate(dir)` reads every shard file, concatenates each unit's shards
in order and cuts the flat buffers back into named parameters — the single-process state. A
strategy with any world size, stage or sharding factor then takes its own shards from that
(`Strategy.load_full_state`), and `load_into_model` puts it into a plain model and AdamW for a
single process. Of a strategy, this module uses only the checkpoint protocol that
sim/strategy.py declares — `writes_checkpoint`, `shard_state`, `load_full_state` — besides its
`world`, `name` and `named_params`. Nothing here needs the ranks to share a machine: only the
checkpoint directory must be reachable by all of them (and one job saves to it at a time).
Files are NumPy archives read with allow_pickle=False.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid

import numpy as np

from sim.flat import FlatLayout
from tinyllm.checkpoint import (
    CheckpointError,
    canonical_json,
    check_step,
    load_arrays,
    new_run_id,
    save_arrays,
)
from tinyllm.runtime.fileio import atomic_write_bytes, fsync_directory

INDEX = "index.json"
TOKENIZER = "tokenizer.txt"
FORMAT = "tinyllm-sharded-checkpoint"
VERSION = 2


def shard_file(index: int, count: int) -> str:
    return f"shard-{index:05d}-of-{count:05d}.npz"


# ---- the directory switch --------------------------------------------------------------------


def _siblings(directory: str, kind: str) -> list[str]:
    """`<dir>.tmp-*` or `<dir>.old-*` beside `directory`."""
    parent, base = os.path.split(os.path.abspath(directory))
    if not os.path.isdir(parent):
        return []
    prefix = f"{base}.{kind}-"
    return sorted(os.path.join(parent, n) for n in os.listdir(parent) if n.startswith(prefix))


def _complete_old(directory: str) -> list[str]:
    """The `<dir>.old-*` that hold a whole checkpoint (their index was written last)."""
    return [d for d in _siblings(directory, "old") if os.path.isfile(os.path.join(d, INDEX))]


def _is_checkpoint_dir(directory: str) -> bool:
    """Only what a save writes (shards, index, tokenizer, temporaries) may be replaced."""
    for name in os.listdir(directory):
        if not (name in (INDEX, TOKENIZER) or name.startswith("shard-") or ".tmp" in name):
            return False
    return True


def _prepare(directory: str) -> str | None:
    """Rank 0, before a save: finish an interrupted switch, sweep leftovers; → a problem."""
    if os.path.exists(directory):
        if not os.path.isdir(directory) or not _is_checkpoint_dir(directory):
            return f"{directory} exists and is not a checkpoint directory; refusing to replace it"
    else:
        complete = _complete_old(directory)
        if complete:  # killed between the two renames: put the previous checkpoint back
            os.rename(complete[-1], directory)
    for leftover in _siblings(directory, "tmp") + _siblings(directory, "old"):
        shutil.rmtree(leftover, ignore_errors=True)
    return None


def _switch(staging: str, directory: str, save_id: str) -> None:
    """Rank 0, after every file is in `staging`: make it `directory`, drop the previous one."""
    fsync_directory(staging)
    old = f"{directory}.old-{save_id}"
    if os.path.exists(directory):
        os.rename(directory, old)
    os.rename(staging, directory)
    fsync_directory(os.path.dirname(os.path.abspath(directory)))
    shutil.rmtree(old, ignore_errors=True)


def save_sharded(
    strategy,
    directory: str,
    step: int,
    extra: dict | None = None,
    tokenizer=None,
    config: dict | None = None,
    run_id: str | None = None,
) -> None:
    """Every rank that owns a distinct shard writes it; rank 0 writes the index and switches.
    `tokenizer` is anything with `to_bytes()` (tinyllm.data.ByteLevelBPE); collective."""
    world = strategy.world
    groups = strategy.shard_state()
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"save_sharded: step must be a non-negative integer, got {step!r}")
    n_shards = groups[0].layout.n_shards if groups else 1
    shard_index = groups[0].shard if groups else 0
    plan = None
    if world.rank == 0:
        problem = _prepare(directory)
        save_id = uuid.uuid4().hex
        plan = {"problem": problem, "save_id": save_id, "run_id": run_id or new_run_id()}
        if problem is None:
            os.makedirs(f"{directory}.tmp-{save_id}")
    plan = world.bcast_json(plan)
    if plan["problem"]:
        raise CheckpointError(plan["problem"])
    staging = f"{directory}.tmp-{plan['save_id']}"
    common = {
        "format": FORMAT,
        "version": VERSION,
        "run_id": plan["run_id"],
        "save_id": plan["save_id"],
        "step": int(step),
        "n_shards": n_shards,
        "world_size": world.size,
        "strategy": strategy.name,
    }
    if strategy.writes_checkpoint():
        arrays, layouts = {}, {}
        for g in groups:
            arrays[f"{g.name}/param"] = g.param
            arrays[f"{g.name}/exp_avg"] = g.exp_avg
            arrays[f"{g.name}/exp_avg_sq"] = g.exp_avg_sq
            layouts[g.name] = g.layout.describe()
        meta = dict(common, shard=shard_index, layouts=layouts)
        save_arrays(os.path.join(staging, shard_file(shard_index, n_shards)), arrays, meta)
    world.barrier()
    if world.rank == 0:
        index = dict(
            common,
            files=[shard_file(i, n_shards) for i in range(n_shards)],
            groups=[g.name for g in groups],
            config=config,
            extra=extra or {},
            tokenizer_sha256=None,
        )
        if tokenizer is not None:
            data = tokenizer.to_bytes()
            atomic_write_bytes(os.path.join(staging, TOKENIZER), data)
            index["tokenizer_sha256"] = hashlib.sha256(data).hexdigest()
        index = json.loads(json.dumps(index))  # the digest is over what read_index will see
        index["sha256"] = hashlib.sha256(canonical_json(index).encode()).hexdigest()
        atomic_write_bytes(
            os.path.join(staging, INDEX), (json.dumps(index, indent=1) + "\n").encode()
        )
        _switch(staging, directory, plan["save_id"])
    world.barrier()


# ---- reading and checking ----------------------------------------------------------------------


def complete_directory(directory: str) -> str:
    """`directory`, or — when a save was killed between its two renames — the previous
    checkpoint still named `<dir>.old-*`."""
    if os.path.isfile(os.path.join(directory, INDEX)):
        return directory
    complete = _complete_old(directory)
    if not os.path.exists(directory) and complete:
        return complete[-1]
    raise CheckpointError(f"{directory}: no {INDEX} — not a complete sharded checkpoint")


def _check_index(path: str, index) -> dict:
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        got = index.get("format") if isinstance(index, dict) else type(index).__name__
        raise CheckpointError(f"{path}: format {got!r}, expected {FORMAT!r}")
    digest = index.pop("sha256", None)
    if digest is None or index.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: format version {index.get('version', 1)!r} without a checksum; this "
            f"tinyllm reads version {VERSION}: load it with the version that wrote it and save "
            "it again"
        )
    if hashlib.sha256(canonical_json(index).encode()).hexdigest() != digest:
        raise CheckpointError(f"{path}: checksum mismatch — the index was edited or is corrupt")
    check_step(index.get("step"), path)  # a consistent forgery still gets the basic checks
    n = index.get("n_shards")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise CheckpointError(f"{path}: n_shards must be a positive integer, got {n!r}")
    if index.get("files") != [shard_file(i, n) for i in range(n)]:
        raise CheckpointError(f"{path}: the file list does not match n_shards = {n}")
    return index


def read_index(directory: str) -> dict:
    path = os.path.join(complete_directory(directory), INDEX)
    try:
        with open(path, "rb") as f:
            index = json.loads(f.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON: {e}") from None
    return _check_index(path, index)


def _check_shard(path: str, i: int, meta: dict, index: dict) -> None:
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a shard of a sharded checkpoint")
    if meta.get("save_id") != index["save_id"]:
        raise CheckpointError(
            f"{path}: from another save (run {meta.get('run_id')}, step {meta.get('step')}, "
            f"{meta.get('n_shards')} shards) than its index (run {index['run_id']}, step "
            f"{index['step']}, {index['n_shards']} shards); shards of two saves never mix"
        )
    for key, want in (("shard", i), ("n_shards", index["n_shards"]), ("step", index["step"])):
        if meta.get(key) != want:
            raise CheckpointError(f"{path}: {key} is {meta.get(key)!r}, the index says {want!r}")


def _read_tokenizer(directory: str, index: dict) -> bytes | None:
    if index.get("tokenizer_sha256") is None:
        return None
    path = os.path.join(directory, TOKENIZER)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CheckpointError(f"{path}: the index names a tokenizer, but: {e}") from None
    if hashlib.sha256(data).hexdigest() != index["tokenizer_sha256"]:
        raise CheckpointError(f"{path}: checksum mismatch — not the tokenizer this run saved")
    return data


def consolidate(directory: str) -> tuple[dict, dict, dict, dict]:
    """(params, exp_avg, exp_avg_sq, index): full named arrays from all the shard files; the
    index also carries `tokenizer`, the stored tokenizer file's bytes (or None)."""
    index = read_index(directory)
    directory = complete_directory(directory)
    shards = []
    for i, fname in enumerate(index["files"]):
        path = os.path.join(directory, fname)
        arrays, meta = load_arrays(path)
        _check_shard(path, i, meta, index)
        for name, a in arrays.items():
            if a.dtype.kind != "f" or a.ndim != 1:
                raise CheckpointError(f"{path}: {name} is {a.dtype} {a.shape}, not a flat float")
        if shards and meta["layouts"] != shards[0][1]["layouts"]:
            raise CheckpointError(f"{path}: its unit layouts differ from shard 0's")
        shards.append((arrays, meta))
    params, exp_avg, exp_avg_sq = {}, {}, {}
    for name in index["groups"]:
        d = shards[0][1]["layouts"].get(name)
        if d is None:
            raise CheckpointError(f"{directory}: unit {name!r} is missing from the shard files")
        layout = FlatLayout(d["names"], d["shapes"], d["n_shards"])
        for kind, out in (("param", params), ("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)):
            try:
                flat = np.concatenate([a[f"{name}/{kind}"] for a, _ in shards])
            except KeyError:
                raise CheckpointError(f"{directory}: a shard lacks {name}/{kind}") from None
            if flat.size != layout.padded:
                raise CheckpointError(
                    f"{directory}: {name}/{kind} has {flat.size} elements "
                    f"over all shards, layout says {layout.padded}"
                )
            for pname, view in zip(layout.names, layout.views(flat)):
                out[pname] = np.array(view)
    index["tokenizer"] = _read_tokenizer(directory, index)
    return params, exp_avg, exp_avg_sq, index


def _check_tokenizer(directory: str, index: dict, tokenizer) -> None:
    if tokenizer is not None and index["tokenizer"] is not None:
        if tokenizer.to_bytes() != index["tokenizer"]:
            raise CheckpointError(f"{directory}: was trained with a different tokenizer")


def load_sharded(strategy, directory: str, tokenizer=None) -> dict:
    """Load a sharded checkpoint (saved by any world size / stage) into `strategy`; given a
    `tokenizer`, a checkpoint that stores another one is a CheckpointError."""
    params, m, v, index = consolidate(directory)
    _check_tokenizer(directory, index, tokenizer)
    names = [n for n, _ in strategy.named_params]
    missing = [n for n in names if n not in params]
    unexpected = [n for n in params if n not in set(names)]
    if missing or unexpected:
        raise CheckpointError(
            f"{directory}: does not fit the model — missing {missing}, unexpected {unexpected}"
        )
    strategy.load_full_state(params, m, v, index["step"])
    return index


def load_into_model(directory: str, model, optimizer=None, tokenizer=None) -> dict:
    """Consolidate into a single-process model (and a tinyllm.optim.Adam/AdamW)."""
    params, m, v, index = consolidate(directory)
    _check_tokenizer(directory, index, tokenizer)
    named = dict(model.named_parameters())
    missing = [n for n in named if n not in params]
    if missing:
        raise CheckpointError(f"{directory}: no values for {missing}")
    for name, p in named.items():
        if p.shape != params[name].shape:
            raise CheckpointError(
                f"{directory}: {name} has shape {params[name].shape}, model has {p.shape}"
            )
        p.data[...] = params[name]
    if optimizer is not None:
        for name, p in named.items():
            optimizer.state[id(p)] = {
                "step": index["step"],
                "exp_avg": m[name].astype(p.dtype),
                "exp_avg_sq": v[name].astype(p.dtype),
            }
    return index
