"""The main job, examples/train_zero.py, run for real under mpirun with small settings.

* its JSON report has the keys the design promises, and its memory/communication agree with
  the ZeRO formulas written here;
* a sharded checkpoint saved by 4 ranks at ZeRO-3 resumes on 2 ranks at ZeRO-1, on 1 process
  with DDP, and in a plain single-process AdamW loop (no sim at all) — each continuing with the
  losses of the uninterrupted run;
* a device-memory capacity under which DDP runs out of memory while ZeRO-3 trains.
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from mpi_helpers import run_mpi

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "train_zero.py"
SMALL = [
    "--steps",
    "6",
    "--n-layer",
    "2",
    "--n-embd",
    "32",
    "--n-head",
    "2",
    "--block-size",
    "16",
    "--vocab-size",
    "300",
    "--batch-size",
    "8",
    "--data-bytes",
    "60000",
    "--eval-interval",
    "3",
    "--eval-iters",
    "1",
    "--log-interval",
    "1",
    "--sample-tokens",
    "8",
]


def fresh_copy(tmp, name):
    """Each resuming run writes its own final checkpoint: give it a private copy of step 3's."""
    dst = tmp / name
    shutil.copytree(tmp / "ck", dst)
    return dst


def run_job(tmp_path, n, *extra, check=True, timeout=180):
    args = SMALL + ["--cache-dir", str(tmp_path / "cache"), *map(str, extra)]
    return run_mpi(SCRIPT, n, args, timeout=timeout, check=check)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("main_job")
    full = tmp / "full.json"
    run_job(tmp, 4, "--stage", "3", "--report", full, "--checkpoint-dir", tmp / "ck-full")
    run_job(tmp, 4, "--stage", "3", "--stop-at", "3", "--checkpoint-dir", tmp / "ck")
    return tmp, json.loads(full.read_text())


@pytest.mark.mpi
def test_report_has_the_promised_keys_and_matches_the_formulas(jobs):
    _, rep = jobs
    for key in (
        "losses",
        "val_losses",
        "params",
        "tokens_per_second",
        "world_size",
        "strategy",
        "memory",
        "comm",
        "simulated",
        "sample",
    ):
        assert key in rep, key
    assert rep["world_size"] == 4 and rep["strategy"] == "ZeRO-3" and len(rep["losses"]) == 6
    assert rep["losses"][-1] < rep["losses"][0]
    psi = rep["params"]
    assert len(rep["memory"]["per_rank"]) == 4
    for m in rep["memory"]["per_rank"]:
        assert set(m) >= {
            "parameters",
            "gradients",
            "optimizer_states",
            "activations",
            "peak",
            "host",
        }
        # ZeRO-3, fp32 Adam: gradients 4Ψ/N and optimizer states 8Ψ/N (padding: < 5%)
        assert m["gradients"] == pytest.approx(4 * psi / 4, rel=0.05)
        assert m["optimizer_states"] == pytest.approx(8 * psi / 4, rel=0.05)
        assert m["parameters"] >= 4 * psi / 4
        assert m["peak"] >= m["parameters"] + m["gradients"] + m["optimizer_states"]
    # memory.theory: the formula's bytes for the same keys (parameters: the shard 4Ψ/N plus the
    # gathered units, so at least the shard)
    theory = rep["memory"]["theory"]
    assert theory["gradients"] == pytest.approx(4 * psi / 4, rel=1e-9)
    assert theory["optimizer_states"] == pytest.approx(8 * psi / 4, rel=1e-9)
    assert 4 * psi / 4 < theory["parameters"] < 4 * psi
    assert rep["tokens_per_second"] > 0
    # ZeRO-3 sends 3Ψ(N−1)/N fp32 elements per rank per step
    for sent in rep["comm"]["bytes_per_step"]:
        assert sent == pytest.approx(4 * 3 * psi * 3 / 4, rel=0.05)
    assert rep["comm"]["theory_bytes_per_step"] == pytest.approx(4 * 3 * psi * 3 / 4, rel=1e-9)
    assert rep["simulated"]["step_seconds"] > 0


@pytest.mark.mpi
def test_checkpoint_from_4_ranks_stage3_resumes_on_2_ranks_stage1(jobs):
    tmp, full = jobs
    out = tmp / "r2.json"
    run_job(
        tmp,
        2,
        "--stage",
        "1",
        "--resume",
        "--checkpoint-dir",
        fresh_copy(tmp, "ck2"),
        "--report",
        out,
    )
    resumed = json.loads(out.read_text())["losses"]
    np.testing.assert_allclose(resumed[3:], full["losses"][3:], rtol=2e-5)
    np.testing.assert_allclose(resumed[:3], full["losses"][:3], rtol=0)  # carried in the report


def test_checkpoint_resumes_in_one_process_with_ddp(jobs):
    tmp, full = jobs
    out = tmp / "r1.json"
    run_job(
        tmp,
        None,
        "--stage",
        "0",
        "--resume",
        "--checkpoint-dir",
        fresh_copy(tmp, "ck1"),
        "--report",
        out,
    )
    np.testing.assert_allclose(
        json.loads(out.read_text())["losses"][3:], full["losses"][3:], rtol=2e-5
    )


def test_consolidated_checkpoint_trains_on_in_a_plain_loop(jobs):
    """No sim at all: consolidate the shards into a GPT + AdamW and continue by hand."""
    sys.path.insert(0, str(ROOT / "examples"))
    import common  # examples/common.py (examples/ is on the path: see above)
    import train_zero  # noqa: E402  (only for its flags' defaults)

    from sim.checkpoint import load_into_model, read_index
    from tinyllm.data import get_batch
    from tinyllm.models import GPT, GPTConfig
    from tinyllm.optim import AdamW, clip_grad_norm_, param_groups_for_weight_decay

    tmp, full = jobs
    args = train_zero.build_parser().parse_args(SMALL + ["--cache-dir", str(tmp / "cache")])
    tok, train_ids, _ = common.prepare_text_data(
        None, args.vocab_size, args.data_bytes, args.cache_dir, only_load=True
    )
    index = read_index(tmp / "ck")
    model = GPT(GPTConfig(**index["extra"]["report"]["config"]))
    opt = AdamW(
        param_groups_for_weight_decay(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.95)
    )
    load_into_model(tmp / "ck", model, opt)
    rng = np.random.default_rng()
    rng.bit_generator.state = index["extra"]["data_rng"]
    losses = []
    for step in range(index["step"], args.steps):
        for g in opt.param_groups:
            g["lr"] = common.lr_at(step, args)
        x, y = get_batch(train_ids, args.batch_size, args.block_size, rng)
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        losses.append(loss.item())
    np.testing.assert_allclose(losses, full["losses"][3:], rtol=2e-5)


@pytest.mark.mpi
def test_device_capacity_where_ddp_runs_out_of_memory_and_zero3_trains(jobs):
    tmp, full = jobs
    per_rank = full["memory"]["per_rank"][0]
    capacity = int(per_rank["peak"] * 1.1)  # ZeRO-3's own peak + 10%: DDP needs far more
    ddp = run_job(
        tmp,
        4,
        "--stage",
        "0",
        "--device-memory",
        capacity,
        "--steps",
        "1",
        "--checkpoint-dir",
        tmp / "ck-ddp",
        check=False,
        timeout=120,
    )
    assert ddp.returncode != 0
    assert "out of memory" in ddp.stderr + ddp.stdout
    assert "optimizer_states" in ddp.stderr + ddp.stdout  # the ledger is printed
    run_job(
        tmp,
        4,
        "--stage",
        "3",
        "--device-memory",
        capacity,
        "--steps",
        "2",
        "--checkpoint-dir",
        tmp / "ck-z3",
        "--report",
        tmp / "z3.json",
    )
    assert json.loads((tmp / "z3.json").read_text())["losses"] == pytest.approx(
        full["losses"][:2], rel=1e-6
    )


@pytest.mark.mpi
def test_compare_table_rows_match_the_paper(tmp_path):
    """--compare on 4 ranks: every data-parallel row trains the same losses (same batches, same
    seed) and its optimizer-state and gradient bytes and its traffic are the paper's (ZeRO,
    Rajbhandari et al. 2019, §5: K = 8 bytes of Adam state and 4-byte gradients per fp32
    parameter, partitioned over the N_d ranks that shard them; DDP and ZeRO-1/2 send 2Ψ(N−1)/N
    elements per step, ZeRO-3 3Ψ(N−1)/N) — including the hybrid row, which shards over F = 2
    and all-reduces the gradient shards across the two groups."""
    out = tmp_path / "compare.json"
    run_job(tmp_path, 4, "--compare", "--compare-steps", "1", "--report", out, timeout=400)
    rows = {r["strategy"]: r for r in json.loads(out.read_text())["compare"]}
    assert {"DDP", "ZeRO-1", "ZeRO-2", "ZeRO-3", "ZeRO-3 (F=2)"} <= set(rows)
    n = 4
    # Ψ of SMALL's GPT, by nanoGPT's layout: token and position tables (the head is tied to
    # wte), per block 12E² weights + 13E biases and LayerNorms, and the final LayerNorm
    L, E, T, V = 2, 32, 16, 300
    psi = V * E + T * E + L * (12 * E * E + 13 * E) + 2 * E
    # shards: (grads partitioned over, optimizer partitioned over, elements sent per param)
    want = {
        "DDP": (1, 1, 2 * (n - 1) / n),
        "ZeRO-1": (1, n, 2 * (n - 1) / n),
        "ZeRO-2": (n, n, 2 * (n - 1) / n),
        "ZeRO-3": (n, n, 3 * (n - 1) / n),
        # F = 2: ZeRO-3's 3Ψ(F−1)/F inside each group of F ranks, plus a ring all-reduce
        # of each rank's Ψ/F gradient shard across the n/F = 2 groups: 2·(Ψ/F)·(2−1)/2
        "ZeRO-3 (F=2)": (2, 2, 3 * (2 - 1) / 2 + 2 * (1 / 2) * (2 - 1) / 2),
    }
    ref = rows["DDP"]["loss"]
    for name, (g_over, o_over, sent_per_param) in want.items():
        r = rows[name]
        assert r["loss"] == pytest.approx(ref, rel=1e-5), name
        m = r["memory"]
        assert m["gradients"] == pytest.approx(4 * psi / g_over, rel=0.05), name
        assert m["optimizer_states"] == pytest.approx(8 * psi / o_over, rel=0.05), name
        assert r["bytes_per_step"] == pytest.approx(4 * psi * sent_per_param, rel=0.05), name
    assert rows["DDP"]["memory"]["gradients"] == 4 * psi  # unsharded: exactly 4 bytes each
