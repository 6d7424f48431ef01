"""Mixed-precision training (tinyllm/precision/mixed.py) against an independent NumPy recipe.

The reference is Micikevicius et al.'s step written out in NumPy: cast the half gradient to
fp32, divide by the loss scale, AdamW on fp32 master weights (Loshchilov & Hutter's update with
bias correction, as torch.optim.AdamW), round the masters into the half model.
"""

import numpy as np
import pytest

import tinyllm
from tinyllm import Tensor, dtypes
from tinyllm.nn import functional as F
from tinyllm.optim import SGD, AdamW
from tinyllm.precision import GradScaler, MixedPrecisionOptimizer
from tinyllm.precision.mixed import state_arrays, write_model_params_

BF16, FP16 = tinyllm.bfloat16, np.dtype(np.float16)


def round_to(x, dtype):
    """Nearest value in dtype (float32 result); bf16 via fp32's upper half, ties to even."""
    x = np.asarray(x, np.float32)
    if dtype is FP16:
        return x.astype(np.float16).astype(np.float32)
    bits = x.view(np.uint32).astype(np.uint64)
    up = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return (up.astype(np.uint32) << 16).view(np.float32)


def adamw_reference(theta, g, m, v, t, lr, betas, eps, wd):
    """One AdamW step in float64 arithmetic (the equations, not tinyllm's code)."""
    b1, b2 = betas
    theta = theta * (1 - lr * wd)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    return theta - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def tiny_model(rng, dtype):
    lin = tinyllm.nn.Linear(6, 4)
    lin.weight.data[...] = rng.standard_normal((4, 6)).astype(np.float32) * 0.5
    return lin


@pytest.mark.parametrize("dtype,scaled", [(BF16, False), (FP16, True)], ids=["bf16", "fp16+S"])
def test_step_equals_numpy_fp32_master_recipe(dtype, scaled, rng):
    lin = tiny_model(rng, dtype)
    hp = dict(lr=0.05, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    scaler = GradScaler(init_scale=2.0**10) if scaled else None
    opt = MixedPrecisionOptimizer(AdamW(lin.parameters(), **hp), scaler=scaler)
    master = {id(p): p.data.astype(np.float64) for p in lin.parameters()}  # fp32 init values
    state = {id(p): (0.0, 0.0) for p in lin.parameters()}
    lin.to(dtype)
    for t in range(1, 4):
        x = Tensor(rng.standard_normal((5, 6)).astype(np.float32)).to(dtype)
        opt.zero_grad()
        opt.backward((F.linear(x, lin.weight, lin.bias).float() ** 2).mean())
        S = scaler.get_scale() if scaled else 1.0
        half_grads = {id(p): dtypes.to_float32(p.grad).astype(np.float64) for p in lin.parameters()}
        assert opt.step()
        for p in lin.parameters():
            g = half_grads[id(p)] / S  # cast up, unscale
            m, v = state[id(p)]
            theta, m, v = adamw_reference(
                master[id(p)], g, m, v, t, hp["lr"], hp["betas"], hp["eps"], hp["weight_decay"]
            )
            master[id(p)], state[id(p)] = theta, (m, v)
            i = [q is p for q in opt.model_params].index(True)  # == is element-wise
            np.testing.assert_allclose(opt.master_params[i].data, theta, rtol=1e-5, atol=1e-7)
            assert p.dtype is dtype or p.dtype == dtype  # still half
            np.testing.assert_array_equal(p.numpy(), round_to(opt.master_params[i].data, dtype))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf·0 in the overflow
def test_loss_scaler_skips_the_step_on_overflow_and_backs_off(rng):
    lin = tiny_model(rng, FP16)
    scaler = GradScaler(init_scale=2.0**40)  # S·grad overflows fp16's 65504
    opt = MixedPrecisionOptimizer(AdamW(lin.parameters(), lr=0.01), scaler=scaler)
    lin.to(FP16)
    x = Tensor(rng.standard_normal((5, 6)).astype(np.float32)).to(FP16)
    skipped = 0
    for _ in range(40):
        before_model = [p.numpy().copy() for p in lin.parameters()]
        before_master = [m.data.copy() for m in opt.master_params]
        scale = scaler.get_scale()
        opt.zero_grad()
        opt.backward((F.linear(x, lin.weight, lin.bias).float() ** 2).mean())
        overflow = any(not np.all(np.isfinite(p.grad)) for p in lin.parameters())
        applied = opt.step()
        assert applied is (not overflow)
        if not applied:
            skipped += 1
            assert scaler.get_scale() == scale * 0.5
            for a, p in zip(before_model, lin.parameters()):
                np.testing.assert_array_equal(a, p.numpy())
            for a, m in zip(before_master, opt.master_params):
                np.testing.assert_array_equal(a, m.data)
        else:
            assert scaler.get_scale() == scale
            break
    assert applied and skipped == opt.skipped_steps and 10 <= skipped < 40
    assert any(not np.array_equal(a, m.data) for a, m in zip(before_master, opt.master_params))


def test_without_master_weights_small_updates_are_lost():
    """SGD steps of 1e-4 on a weight of 1.0: bf16's spacing there is 2^-7 ≈ 0.0078, so each
    update rounds straight back to 1.0 — unless an fp32 master accumulates them."""
    results = {}
    for masters in (True, False):
        w = tinyllm.nn.Parameter(np.ones(3, np.float32))
        opt = MixedPrecisionOptimizer(SGD([w], lr=1e-4), master_weights=masters)
        w.data = dtypes.to_storage(w.data, BF16)
        for _ in range(100):
            opt.zero_grad()
            (w * 1.0).float().sum().backward()  # gradient 1 → step −1e-4
            opt.step()
        results[masters] = w.numpy()[0]
    assert results[False] == 1.0  # every update lost
    assert results[True] == round_to(1 - 100 * 1e-4, BF16)  # 0.99 → nearest bf16, 0.98828125


def test_bytes_per_parameter_of_the_layouts(rng):
    from sim.device import MemoryLedger

    def measure(dtype):
        lin = tinyllm.nn.Linear(8, 5)
        opt = AdamW(lin.parameters(), lr=1e-3)
        if dtype is not None:
            opt = MixedPrecisionOptimizer(opt)
            lin.to(dtype)
        x = Tensor(rng.standard_normal((3, 8)).astype(np.float32))
        if dtype is not None:
            x = x.to(dtype)
        opt.zero_grad()
        F.linear(x, lin.weight, lin.bias).float().sum().backward()
        opt.step()
        ledger = MemoryLedger()
        for tag, arrays in state_arrays(lin.parameters(), opt).items():
            for a in arrays:
                ledger.register(a, tag)
        n = lin.num_parameters()
        return [ledger.current[t] / n for t in ("parameters", "gradients", "optimizer_states")]

    assert measure(None) == [4, 4, 8]  # fp32 + Adam
    assert measure(BF16) == [2, 2, 12]  # ZeRO paper's K = 12 layout
    assert measure(FP16) == [2, 2, 12]


def test_write_model_params_rounds_a_master_shard_into_a_flat_buffer():
    flat = np.zeros(8, BF16.storage)
    shard = np.array([0.1, -0.2, 0.3], np.float32)  # this rank's fp32 master shard
    write_model_params_(flat[2:5], shard)
    np.testing.assert_array_equal(dtypes.to_float32(flat[2:5]), round_to(shard, BF16))
    assert not flat[:2].any() and not flat[5:].any()
    fp16 = np.zeros(3, np.float16)
    write_model_params_(fp16, shard)
    np.testing.assert_array_equal(fp16, shard.astype(np.float16))


def test_wrapping_an_optimizer_with_state_is_refused(rng):
    lin = tiny_model(rng, BF16)
    opt = AdamW(lin.parameters())
    F.linear(Tensor(np.ones((1, 6), np.float32)), lin.weight, lin.bias).sum().backward()
    opt.step()
    with pytest.raises(ValueError, match="fresh optimizer"):
        MixedPrecisionOptimizer(opt)


def test_gpt_trains_in_bf16_and_fp16_close_to_fp32():
    from tinyllm.models import GPT, GPTConfig

    cfg = GPTConfig(block_size=16, vocab_size=32, n_layer=1, n_head=2, n_embd=16)
    starts = np.random.default_rng(0).integers(0, 32, (12, 4, 1))
    data = (starts + np.arange(17)) % 32  # learnable: each token is the last one + 1
    losses = {}
    for dtype in (None, BF16, FP16):
        tinyllm.manual_seed(0)
        model = GPT(cfg)
        opt = AdamW(model.parameters(), lr=3e-3)
        if dtype is not None:
            opt = MixedPrecisionOptimizer(opt, scaler=GradScaler() if dtype is FP16 else None)
            model.to(dtype)
        run = []
        for batch in data:
            logits, _ = model(batch[:, :-1])
            loss = F.cross_entropy(logits.float().reshape(-1, 32), batch[:, 1:].reshape(-1))
            opt.zero_grad()
            if dtype is None:
                loss.backward()
            else:
                opt.backward(loss)
            opt.step()
            run.append(loss.item())
        losses[dtype] = np.array(run)
    assert losses[None][-1] < losses[None][0] - 0.1  # it learns
    for dtype in (BF16, FP16):
        assert np.max(np.abs(losses[dtype] - losses[None])) < 0.05


@pytest.mark.slow
def test_mixed_precision_example_end_to_end(tmp_path):
    """examples/mixed_precision.py as a user runs it (tiny settings): every format trains, and
    the ledger's bytes per parameter are the layouts' 4+4+8 and 2+2+12."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "mixed.json"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            str(root / "examples" / "mixed_precision.py"),
            "--steps",
            "4",
            "--formats",
            "fp32,bf16,fp16-nomaster",
            "--n-layer",
            "1",
            "--n-head",
            "2",
            "--n-embd",
            "32",
            "--block-size",
            "16",
            "--batch-size",
            "4",
            "--vocab-size",
            "300",
            "--data-bytes",
            "100000",
            "--eval-iters",
            "1",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--seeds",
            "2",
            "--report",
            str(out),
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rep = json.loads(out.read_text())
    assert set(rep) >= {"losses", "val_losses", "params", "tokens_per_second", "formats"}
    layouts = {"fp32": [4, 4, 8], "bf16": [2, 2, 12], "fp16-nomaster": [2, 2, 8]}
    for name, want in layouts.items():
        run = rep["formats"][name]
        assert len(run["losses"]) == 4 and all(np.isfinite(run["losses"]))
        b = run["bytes_per_param"]
        assert [b["parameters"], b["gradients"], b["optimizer_states"]] == want
        assert abs(run["losses"][0] - rep["formats"]["fp32"]["losses"][0]) < 0.05
    assert rep["formats"]["fp16-nomaster"]["final_loss_scale"] > 0  # fp16 runs loss scaling
    # MFU = tokens/s × PaLM's model FLOPs per token / the measured peak, per format
    from tinyllm.accounting import palm_flops_per_token

    assert rep["flops_per_token"] == palm_flops_per_token(
        rep["params"] - rep["config"]["block_size"] * rep["config"]["n_embd"], 1, 2, 16, 16
    )
    for run in rep["formats"].values():
        assert run["mfu"] == pytest.approx(
            run["tokens_per_second"] * rep["flops_per_token"] / rep["peak_flops"]
        )
    assert proc.stdout.count("MFU") >= 3 * 2 * 2  # every progress line (2 per run) + the table
    # --seeds 2: every format ran twice; the second seed is a different run (other init and
    # batches), and each gap is that seed's val loss minus fp32's val loss with the same seed.
    for name in layouts:
        r0, r1 = rep["seeds"][name]
        assert r1["seed"] == r0["seed"] + 1
        assert r0["losses"] != r1["losses"]
        for r, b in zip(rep["seeds"][name], rep["seeds"]["fp32"]):
            assert r["val_gap_vs_fp32"] == pytest.approx(r["final_val_loss"] - b["final_val_loss"])
    assert [r["val_gap_vs_fp32"] for r in rep["seeds"]["fp32"]] == [0.0, 0.0]
