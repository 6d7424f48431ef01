"""Whole-model quantization (tinyllm/precision/model_quant.py): PTQ swaps and QAT.

Independent truths: the PyTorch observer formulas for scale and zero point written out in
NumPy (weight-only PTQ must equal the float model run on those dequantized weights), the
QuantizedLinear math layer by layer, the straight-through estimator (the gradient of a QAT
weight is the float model's gradient at the fake-quantized weight, masked where clipped), and
byte counts from the parameter shapes.
"""

import copy

import numpy as np
import pytest

import tinyllm
from tinyllm import Tensor, no_grad
from tinyllm.models import GPT, GPTConfig
from tinyllm.nn import Embedding, LayerNorm, Linear
from tinyllm.optim import AdamW
from tinyllm.precision import (
    QATLinear,
    QuantizedLinear,
    QuantizedLinearModule,
    convert_qat,
    model_nbytes,
    prepare_qat,
    quantize_model,
)
from tinyllm.precision.qlinear import quantize_weight

CFG = GPTConfig(block_size=8, vocab_size=32, n_layer=2, n_head=2, n_embd=16)


@pytest.fixture(scope="module")
def gpt():
    tinyllm.manual_seed(3)
    return GPT(CFG)


@pytest.fixture
def ids():
    return np.random.default_rng(0).integers(0, CFG.vocab_size, (2, CFG.block_size))


def untied_linears(model):
    tied = {id(m.weight) for m in model.modules() if isinstance(m, Embedding)}
    return [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, Linear) and id(m.weight) not in tied
    ]


def dequantized_reference(w, per_channel, symmetric, qmin=-128, qmax=127):
    """PyTorch's (Per)ChannelMinMaxObserver qparams, quantize, dequantize — in NumPy."""
    w = w.astype(np.float32)
    lo = (w.min(axis=1) if per_channel else w.min()).astype(np.float32)
    hi = (w.max(axis=1) if per_channel else w.max()).astype(np.float32)
    lo, hi = np.minimum(lo, 0), np.maximum(hi, 0)
    eps = np.finfo(np.float32).eps
    if symmetric:
        s = np.maximum(np.maximum(-lo, hi) / np.float32((qmax - qmin) / 2), eps)
        z = np.zeros_like(s)
    else:
        s = np.maximum((hi - lo) / np.float32(qmax - qmin), eps)
        z = np.clip(qmin - np.round(lo / s), qmin, qmax)
    s, z = s.astype(np.float32), z.astype(np.float32)
    if per_channel:
        s, z = s[:, None], z[:, None]
    q = np.clip(np.rint(w * (np.float32(1) / s)) + z, qmin, qmax)
    return ((q - z) * s).astype(np.float32)


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("symmetric", [True, False])
def test_weight_only_model_is_the_float_model_on_dequantized_weights(
    gpt, ids, per_channel, symmetric
):
    model_q = quantize_model(gpt, "weight_only", per_channel=per_channel, symmetric=symmetric)
    ref = copy.deepcopy(gpt)
    for _, lin in untied_linears(ref):
        lin.weight.data[...] = dequantized_reference(lin.weight.data, per_channel, symmetric)
    with no_grad():
        got, _ = model_q(ids)
        want, _ = ref(ids)
    np.testing.assert_allclose(got.data, want.data, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["weight_only", "dynamic", "llm_int8"])
def test_every_layer_computes_quantized_linear_math(gpt, mode, rng):
    model_q = quantize_model(gpt, mode, per_channel=True, threshold=1.5)
    swapped = {n: m for n, m in model_q.named_modules() if isinstance(m, QuantizedLinearModule)}
    originals = dict(untied_linears(gpt))
    assert set(swapped) == set(originals) and len(swapped) == 4 * CFG.n_layer
    for name, qm in swapped.items():
        lin = originals[name]
        x = rng.standard_normal((3, 5, lin.in_features)).astype(np.float32) * 2
        want = QuantizedLinear.from_float(lin.weight.data, lin.bias.data, mode=mode, threshold=1.5)(
            x
        )
        with no_grad():
            got = qm(Tensor(x))
        np.testing.assert_array_equal(got.data, want)
    with no_grad():
        logits, _ = model_q(np.zeros((1, 4), np.int64))
    assert logits.shape == (1, 4, CFG.vocab_size) and np.all(np.isfinite(logits.data))


def test_embeddings_layernorms_and_the_tied_head_stay_float(gpt):
    model_q = quantize_model(gpt, "dynamic")
    assert isinstance(model_q.transformer.wte, Embedding)
    assert isinstance(model_q.transformer.h[0].ln_1, LayerNorm)
    assert isinstance(model_q.lm_head, Linear)
    assert model_q.lm_head.weight is model_q.transformer.wte.weight
    np.testing.assert_array_equal(
        model_q.transformer.wte.weight.data, gpt.transformer.wte.weight.data
    )
    assert isinstance(gpt.transformer.h[0].mlp.c_fc, Linear)  # the original is untouched
    with_head = quantize_model(gpt, "weight_only", include_tied=True)
    assert isinstance(with_head.lm_head, QuantizedLinearModule)
    assert isinstance(with_head.transformer.wte, Embedding)


def test_model_bytes(gpt):
    n = gpt.num_parameters()
    assert model_nbytes(gpt) == 4 * n
    assert model_nbytes(copy.deepcopy(gpt).to(tinyllm.bfloat16)) == 2 * n
    assert model_nbytes(copy.deepcopy(gpt).to(np.float16)) == 2 * n
    want = 4 * n
    for _, lin in untied_linears(gpt):
        out, inp = lin.weight.shape
        want += (out * inp * 1 + out * 4) - out * inp * 4  # int8 weights + fp32 scales
    assert model_nbytes(quantize_model(gpt, "weight_only", per_channel=True)) == want
    want_affine_tensor = want
    for _, lin in untied_linears(gpt):
        out = lin.weight.shape[0]
        want_affine_tensor += (4 + 4) - out * 4  # one scale + one int32 zero point
    assert (
        model_nbytes(quantize_model(gpt, "weight_only", per_channel=False, symmetric=False))
        == want_affine_tensor
    )


def test_quantized_model_is_inference_only(gpt, ids):
    model_q = quantize_model(gpt, "weight_only")
    with pytest.raises(RuntimeError, match="inference-only"):
        model_q(ids, ids)
    with no_grad():
        _, loss = model_q(ids, ids)
    assert np.isfinite(loss.item())


def test_int4_range_weights(rng):
    w = rng.standard_normal((6, 10)).astype(np.float32)
    q, s, z = quantize_weight(w, per_channel=False, symmetric=True, quant_min=-8, quant_max=7)
    assert q.dtype == np.int8 and q.min() >= -8 and q.max() <= 7
    assert s == pytest.approx(np.abs(w).max() / 7.5)
    w_hat = (q.astype(np.float32) - z) * s
    inside = np.abs(w) <= 7 * s
    assert np.all(np.abs(w - w_hat)[inside] <= s / 2 + 1e-7)


# ---- QAT -------------------------------------------------------------------------------------


def fake_quantized_reference(w, s, qmin, qmax):
    """Per-tensor symmetric fake quantization and its STE mask, in NumPy."""
    levels = np.rint(w * (np.float32(1) / s))
    return (np.clip(levels, qmin, qmax) * s).astype(np.float32), (levels >= qmin) & (levels <= qmax)


@pytest.mark.parametrize("qmin,qmax", [(-128, 127), (-8, 7)])
def test_qat_weight_gradients_are_the_straight_through_estimator(gpt, ids, qmin, qmax):
    qat = prepare_qat(gpt, quant_min=qmin, quant_max=qmax)
    _, loss = qat(ids, ids)
    loss.backward()
    # Reference: the float model with every weight replaced by its fake-quantized value; its
    # gradient w.r.t. that value, masked where the level was clipped, is the STE gradient.
    ref = copy.deepcopy(gpt)
    masks = {}
    for name, lin in untied_linears(ref):
        w = lin.weight.data
        s = max(-min(w.min(), 0), max(w.max(), 0)) / np.float32((qmax - qmin) / 2)
        lin.weight.data[...], masks[name] = fake_quantized_reference(w, np.float32(s), qmin, qmax)
    _, ref_loss = ref(ids, ids)
    ref_loss.backward()
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)
    qat_linears = {n: m for n, m in qat.named_modules() if isinstance(m, QATLinear)}
    for name, lin in untied_linears(ref):
        np.testing.assert_allclose(
            qat_linears[name].weight.grad, lin.weight.grad * masks[name], rtol=1e-4, atol=1e-7
        )
        assert np.abs(lin.weight.grad).max() > 0


def test_qat_gradient_is_zero_where_the_weight_is_clipped(gpt, rng):
    qat = prepare_qat(gpt)
    layer = qat.transformer.h[0].mlp.c_fc
    fq = layer.weight_fake_quant
    fq.disable_observer()
    fq.scale = np.float32(np.abs(layer.weight.data).max() / 127 / 3)  # the top third clips
    fq.zero_point = np.int32(0)
    x = Tensor(rng.standard_normal((4, CFG.n_embd)).astype(np.float32))
    layer(x).sum().backward()
    levels = np.rint(layer.weight.data * (np.float32(1) / fq.scale))
    clipped = (levels < -128) | (levels > 127)
    assert clipped.any() and (~clipped).any()
    assert np.all(layer.weight.grad[clipped] == 0)
    assert np.all(layer.weight.grad[~clipped] != 0)


def test_convert_qat_computes_what_the_fake_quantized_model_computed(gpt, ids):
    qat = prepare_qat(gpt, quant_min=-8, quant_max=7)
    opt = AdamW(qat.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):  # a little QAT: weights and scales move
        _, loss = qat(ids, ids)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert [n for n, _ in qat.named_parameters()] == [n for n, _ in gpt.named_parameters()]
    with no_grad():
        fake, _ = qat(ids)  # observes once more, then converted:
        converted = convert_qat(qat)
        real, _ = converted(ids)
    assert all(not isinstance(m, QATLinear) for m in converted.modules())
    np.testing.assert_allclose(real.data, fake.data, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_quantize_example_end_to_end(tmp_path):
    """examples/quantize.py as a user runs it (tiny settings): trains through train_gpt.py,
    prints the eight-format table and the PTQ/QAT comparison into its report."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "quantize.json"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            str(root / "examples" / "quantize.py"),
            "--steps",
            "4",
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
            "--eval-interval",
            "4",
            "--eval-iters",
            "1",
            "--eval-batches",
            "1",
            "--qat-steps",
            "2",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--save",
            str(tmp_path / "base.ckpt.npz"),
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
    rows = {r["format"]: r for r in rep["table"]}
    assert len(rows) == 8 and len(rep["losses"]) == 4
    assert rows["fp32"]["bytes"] == 4 * rep["params"]
    assert rows["bf16"]["bytes"] == rows["fp16"]["bytes"] == 2 * rep["params"]
    int8 = [r for name, r in rows.items() if "int8" in name]
    assert all(r["bytes"] < rows["fp32"]["bytes"] and np.isfinite(r["val_loss"]) for r in int8)
    for key in ("fp32_loss", "ptq_loss", "qat_loss", "control_fp32_loss", "recovered_fraction"):
        assert key in rep["qat"]
    assert set(rep["ptq_sweep"]) == {"8", "4", "3", "2"}
    # the QAT and control fine-tunings' MFU, recomputed from the report's own fields:
    # tokens/s × (6N + 12·L·H·Q·T, N = all parameters but the position table) / peak
    q, c = rep["qat"], rep["config"]
    n = rep["params"] - c["block_size"] * c["n_embd"]
    assert q["flops_per_token"] == 6 * n + 12 * c["n_layer"] * c["n_embd"] * c["block_size"]
    assert q["peak_flops"] > 0 and q["tokens_per_second"] > 0
    assert q["mfu"] == pytest.approx(
        q["tokens_per_second"] * q["flops_per_token"] / q["peak_flops"]
    )
    assert q["control_mfu"] == pytest.approx(
        q["control_tokens_per_second"] * q["flops_per_token"] / q["peak_flops"]
    )
    assert proc.stdout.count("[QAT] step") == proc.stdout.count("[control] step") == 2
    assert all("MFU" in line for line in proc.stdout.splitlines() if "] step" in line)
