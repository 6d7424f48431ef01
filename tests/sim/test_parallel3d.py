"""3D parallelism: the dp × tp × pp grid (sim/topology.py), a GPT trained on 2 × 2 × 2 = 8 ranks
(sim/parallel3d.py), and examples/train_3d.py end to end.

The truth, stated independently of the code under test:
* the rank layout of Megatron-LM (tp fastest, then dp, then pp), whose docstring lists the
  groups of 16 GPUs with tp = 2, pp = 4: tensor groups [0 1] [2 3] …, pipeline groups
  [0 4 8 12] [1 5 9 13] …, data groups [0 2] [1 3] [4 6] [5 7] …;
* the one-process GPT of the same seed and global batch (float64), for 1F1B and for GPipe with
  activation checkpointing — under `mpirun -n 8` on 2 cores, so the model is tiny;
* bytes per axis from the textbook volumes (ring all-reduce 2(n−1)/n·S per rank, one message
  per micro-batch and stage boundary), parameters per rank counted from the architecture.
"""

import json

import pytest
from mpi_helpers import run_mpi

from sim.topology import Grid


def test_megatron_layout_16_ranks():
    g = Grid(dp=2, tp=2, pp=4)
    assert g.groups("tp") == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11], [12, 13], [14, 15]]
    assert g.groups("pp") == [[0, 4, 8, 12], [1, 5, 9, 13], [2, 6, 10, 14], [3, 7, 11, 15]]
    assert g.groups("dp") == [[0, 2], [1, 3], [4, 6], [5, 7], [8, 10], [9, 11], [12, 14], [13, 15]]


@pytest.mark.parametrize("dims", [(1, 1, 1), (2, 1, 1), (1, 4, 1), (3, 2, 2), (2, 2, 3)])
def test_grid_coordinates_and_groups_partition_the_ranks(dims):
    g = Grid(*dims)
    for r in range(g.size):
        c = g.coords(r)
        assert g.rank_of(c.dp, c.pp, c.tp) == r
    for axis in ("dp", "tp", "pp"):
        groups = g.groups(axis)
        assert sorted(r for grp in groups for r in grp) == list(range(g.size))
        assert all(len(grp) == getattr(g, axis) for grp in groups)
        for grp in groups:  # ranks of a group differ only along the axis, in its order
            coords = [g.coords(r) for r in grp]
            assert [getattr(c, axis) for c in coords] == list(range(getattr(g, axis)))
            others = {tuple(getattr(c, a) for a in ("dp", "pp", "tp") if a != axis) for c in coords}
            assert len(others) == 1


def test_grid_errors():
    with pytest.raises(ValueError, match="tp must be ≥ 1"):
        Grid(tp=0)
    with pytest.raises(ValueError, match="rank 8 is outside"):
        Grid(2, 2, 2).coords(8)


# ---- 2 × 2 × 2 under mpirun -n 8 ----------------------------------------------------------


def params_per_rank(c, tp, pp, stage):
    e, v = c["n_embd"], c["vocab_size"]
    split = 12 * e * e + 7 * e  # c_attn, c_proj, c_fc, c_proj weights + column biases
    whole = 6 * e  # ln_1, ln_2 (weights, biases), the two row biases
    n = c["n_layer"] // pp * (split // tp + whole)
    if stage == 0:
        n += v * e + c["block_size"] * e
    if stage == pp - 1:
        n += 2 * e + (v * e if pp > 1 else 0)
    return n


@pytest.fixture(scope="module")
def grid_run():
    return run_mpi("grid_worker.py", 8, timeout=240).results()


def test_topology_groups_on_8_ranks(grid_run):
    expected = {
        "tp": [[0, 1], [2, 3], [4, 5], [6, 7]],
        "dp": [[0, 2], [1, 3], [4, 6], [5, 7]],
        "pp": [[0, 4], [1, 5], [2, 6], [3, 7]],
        "embedding": [[0, 4], [1, 5], [2, 6], [3, 7]],
        "model_parallel": [[0, 1, 4, 5], [2, 3, 6, 7]],
    }
    for r in grid_run:
        rank = r["rank"]
        dp, pp, tp = r["coord"]
        assert rank == tp + 2 * (dp + 2 * pp)
        for axis, groups in expected.items():
            assert r["groups"][axis] == next(g for g in groups if rank in g), (rank, axis)


def test_3d_equals_one_process(grid_run):
    for r in grid_run:
        for run in ("1f1b", "gpipe_ckpt"):
            res = r[run]
            assert res["loss_rel_err"] < 1e-12 and res["param_err"] < 1e-12, (r["rank"], run, res)
            if r["rank"] == 0:
                assert res["gathered_err"] < 1e-12


def test_3d_bytes_per_axis_and_memory(grid_run):
    for r in grid_run:
        dp, tp, pp = r["grid"]
        stage = r["coord"][1]
        q, m = r["itemsize"], r["micro_batches"]
        b = r["batch"] // dp // m
        act = q * b * r["block_size"] * r["n_embd"]  # one (b, T, E) tensor in bytes
        layers = r["n_layer"] // pp
        psi = params_per_rank(r, tp, pp, stage)
        for run, per_block in (("1f1b", 4), ("gpipe_ckpt", 6)):
            axes = r[run]["bytes_by_axis"]
            assert axes["tp"] == m * layers * per_block * 2 * (tp - 1) / tp * act
            assert axes["pp"] == m * act * ((stage < pp - 1) + (stage > 0))
            assert axes["embedding"] == q * r["vocab_size"] * r["n_embd"]
            assert axes["dp"] == 2 * (dp - 1) / dp * q * psi
            mem = r[run]["memory"]
            assert mem["parameters"] == mem["gradients"] == q * psi
            assert mem["optimizer_states"] == 2 * q * psi
        # recomputation keeps only block inputs: less activation memory on every rank
        assert r["gpipe_ckpt"]["memory"]["activations"] < r["1f1b"]["memory"]["activations"]


# ---- the example, end to end -------------------------------------------------------------


def test_train_3d_example_matches_one_process(tmp_path):
    from pathlib import Path

    text = (Path(json.__file__).read_text() + Path(__file__).read_text()) * 2
    data = tmp_path / "corpus.txt"
    data.write_text(text)
    script = Path(__file__).resolve().parents[2] / "examples" / "train_3d.py"
    common = [
        "--steps",
        3,
        "--batch-size",
        4,
        "--block-size",
        16,
        "--n-layer",
        2,
        "--n-head",
        2,
        "--n-embd",
        16,
        "--vocab-size",
        300,
        "--data",
        data,
        "--cache-dir",
        tmp_path / "cache",
        "--eval-interval",
        2,
        "--eval-iters",
        1,
        "--float64",
        "--sample-tokens",
        8,
    ]
    reports, stdout = {}, {}
    for name, n, grid in (
        ("one", None, []),
        ("grid", 4, ["--tp", 2, "--pp", 2, "--schedule", "gpipe", "--checkpoint-activations"]),
    ):
        path = tmp_path / f"{name}.json"
        stdout[name] = run_mpi(script, n, common + grid + ["--report", path], timeout=120).stdout
        reports[name] = json.loads(path.read_text())
    one, grid = reports["one"], reports["grid"]
    assert len(one["losses"]) == len(grid["losses"]) == 3
    for a, b in zip(grid["losses"], one["losses"]):
        assert abs(a - b) <= 1e-10 * abs(b)
    val_one = [v for _, v in one["val_losses"]]
    assert [v for _, v in grid["val_losses"]] == pytest.approx(val_one, rel=1e-10)
    assert grid["world_size"] == 4 and grid["params"] == one["params"]
    for key in ("tokens_per_second", "strategy", "sample"):
        assert key in grid
    assert len(grid["memory"]["per_rank"]) == 4 and len(grid["comm"]["bytes_per_step"]) == 4
    assert grid["simulated"]["step_seconds"] > 0
    for axes, theory in zip(grid["comm"]["bytes_by_axis"], grid["comm"]["theory_bytes_by_axis"]):
        for axis in ("dp", "tp", "pp", "embedding"):
            assert axes[axis] == theory[axis]
    assert len(grid["bubble"]["per_rank"]) == 4
    # MFU per rank, recomputed from the report's fields: the whole model's FLOPs per token
    # (PaLM's 6N + 12·L·H·Q·T, N = all parameters but the position table, H·Q = n_embd) times
    # the step's tokens, over the ranks, the slowest rank's simulated step, and the A100's
    # fp64 peak (9.7 TFLOP/s, NVIDIA's datasheet; the model is float64 here)
    for name, rep in reports.items():
        c, sim_ = rep["config"], rep["simulated"]
        n = rep["params"] - c["block_size"] * c["n_embd"]
        assert rep["flops_per_token"] == 6 * n + 12 * c["n_layer"] * c["n_embd"] * 16
        assert sim_["peak_flops"] == pytest.approx(9.7e12)
        assert sim_["mfu"] == pytest.approx(
            4
            * 16
            * rep["flops_per_token"]
            / rep["world_size"]
            / sim_["step_seconds"]
            / sim_["peak_flops"]
        )
        assert sim_["mfu"] == pytest.approx(
            sim_["tokens_per_second_per_rank"] * rep["flops_per_token"] / sim_["peak_flops"]
        )
        assert "MFU per rank = model FLOPs of the step / world / step time / peak" in stdout[name]
        assert stdout[name].count("per rank) |") == 2  # progress lines: steps 0 and 2
