"""Sharded checkpoints: every rank saves what it owns; any world size can load it back.

Under ZeRO no rank holds the whole model, and gathering it onto one rank to save would need
that rank to have memory for all of it. So each rank writes its *own* shards — for every flat
unit, its slice of the fp32 parameters and of Adam's two moments — into its own file:

    <dir>/shard-00002-of-00004.npz     rank with shard index 2 of 4 (one file per shard;
                                       with hybrid sharding only the first replica writes)
    <dir>/index.json                   written last, by rank 0: the step, the file list, the
                                       layout of every unit, the caller's extra data

Because `index.json` appears only after every shard file is complete (each written atomically,
then a barrier), a directory with an index is a whole checkpoint.

Loading *reshards*: `consolidate(dir)` reads every shard file, concatenates each unit's shards
in order and cuts the flat buffers back into named parameters — the single-process state. A
strategy with any world size, stage or sharding factor then takes its own shards from that
(`Strategy.load_full_state`), and `load_into_model` puts it into a plain model and AdamW for a
single process. Of a strategy, this module uses only the checkpoint protocol that
sim/strategy.py declares — `writes_checkpoint`, `shard_state`, `load_full_state` — besides its
`world`, `name` and `named_params`. Nothing here needs the ranks to share a machine: only the
checkpoint directory must be reachable by all of them. Files are NumPy archives read with
allow_pickle=False.
"""

from __future__ import annotations

import json
import os

import numpy as np

from sim.flat import FlatLayout
from tinyllm.checkpoint import CheckpointError, load_arrays, save_arrays
from tinyllm.runtime.fileio import atomic_write_bytes

INDEX = "index.json"
FORMAT = "tinyllm-sharded-checkpoint"


def shard_file(index: int, count: int) -> str:
    return f"shard-{index:05d}-of-{count:05d}.npz"


def save_sharded(strategy, directory: str, step: int, extra: dict | None = None) -> None:
    """Every rank that owns a distinct shard writes it; rank 0 then writes the index."""
    world = strategy.world
    groups = strategy.shard_state()
    n_shards = groups[0].layout.n_shards if groups else 1
    shard_index = groups[0].shard if groups else 0
    if world.rank == 0:
        os.makedirs(directory, exist_ok=True)
        stale = os.path.join(directory, INDEX)
        if os.path.exists(stale):
            os.unlink(stale)  # the old index must not describe the new shards
    world.barrier()
    if strategy.writes_checkpoint():
        arrays, layouts = {}, {}
        for g in groups:
            arrays[f"{g.name}/param"] = g.param
            arrays[f"{g.name}/exp_avg"] = g.exp_avg
            arrays[f"{g.name}/exp_avg_sq"] = g.exp_avg_sq
            layouts[g.name] = g.layout.describe()
        save_arrays(
            os.path.join(directory, shard_file(shard_index, n_shards)),
            arrays,
            {
                "format": FORMAT,
                "shard": shard_index,
                "n_shards": n_shards,
                "layouts": layouts,
                "step": int(step),
            },
        )
    world.barrier()
    if world.rank == 0:
        index = {
            "format": FORMAT,
            "step": int(step),
            "n_shards": n_shards,
            "files": [shard_file(i, n_shards) for i in range(n_shards)],
            "strategy": strategy.name,
            "world_size": world.size,
            "groups": [g.name for g in groups],
            "extra": extra or {},
        }
        atomic_write_bytes(
            os.path.join(directory, INDEX), (json.dumps(index, indent=1) + "\n").encode()
        )
    world.barrier()


def read_index(directory: str) -> dict:
    path = os.path.join(directory, INDEX)
    if not os.path.exists(path):
        raise CheckpointError(f"{directory}: no {INDEX} — not a complete sharded checkpoint")
    try:
        with open(path) as f:
            index = json.load(f)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON: {e}") from None
    if index.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {index.get('format')!r}, expected {FORMAT!r}")
    return index


def consolidate(directory: str) -> tuple[dict, dict, dict, dict]:
    """(params, exp_avg, exp_avg_sq, index): full named arrays from all the shard files."""
    index = read_index(directory)
    shards = []
    for i, fname in enumerate(index["files"]):
        arrays, meta = load_arrays(os.path.join(directory, fname))
        if meta.get("shard") != i or meta.get("n_shards") != index["n_shards"]:
            raise CheckpointError(
                f"{directory}/{fname}: holds shard {meta.get('shard')} of "
                f"{meta.get('n_shards')}, expected {i} of {index['n_shards']}"
            )
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
    return params, exp_avg, exp_avg_sq, index


def load_sharded(strategy, directory: str) -> dict:
    """Load a sharded checkpoint (saved by any world size / stage) into `strategy`."""
    params, m, v, index = consolidate(directory)
    names = [n for n, _ in strategy.named_params]
    missing = [n for n in names if n not in params]
    unexpected = [n for n in params if n not in set(names)]
    if missing or unexpected:
        raise CheckpointError(
            f"{directory}: does not fit the model — missing {missing}, unexpected {unexpected}"
        )
    strategy.load_full_state(params, m, v, index["step"])
    return index


def load_into_model(directory: str, model, optimizer=None) -> dict:
    """Consolidate into a single-process model (and a tinyllm.optim.Adam/AdamW)."""
    params, m, v, index = consolidate(directory)
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
