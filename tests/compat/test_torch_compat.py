"""Code written for PyTorch runs on tinyllm: a nanoGPT-style model file (nanogpt_style.py,
plain torch idiom, it never names tinyllm) imported with `tinyllm.torch_compat` standing in
for torch trains to the losses of tinyllm's own GPT from the same weights on the same batches —
and, when PyTorch is installed, the same file under the real torch does too.

The truth here is tinyllm's GPT (models/gpt.py), which is itself checked against a PyTorch
nanoGPT in tests/models; the model file takes a different road to the same function (a
registered mask buffer, masked_fill and softmax instead of the fused attention op, its own
LayerNorm module, torch.nn.init under Module.apply, parameter groups by p.dim()).
"""

import importlib.util
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

import tinyllm
from tinyllm import torch_compat
from tinyllm.models import GPT, GPTConfig
from tinyllm.optim import clip_grad_norm_

HERE = Path(__file__).parent
_names = itertools.count()

DIMS = dict(block_size=16, vocab_size=64, n_layer=2, n_head=2, n_embd=32, dropout=0.0, bias=True)
STEPS, BATCH = 6, 4


def import_model_file():
    """A fresh copy of nanogpt_style.py, bound to whatever `torch` is in sys.modules now."""
    name = f"nanogpt_style_{next(_names)}"
    spec = importlib.util.spec_from_file_location(name, HERE / "nanogpt_style.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def shimmed():
    with torch_compat.installed():
        return import_model_file()


def batches(seed=0):
    """STEPS batches of (x, y) windows, as int64 arrays: the same tokens for every framework."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, DIMS["vocab_size"], size=4000)
    out = []
    for _ in range(STEPS):
        starts = rng.integers(0, len(data) - DIMS["block_size"] - 1, size=BATCH)
        x = np.stack([data[s : s + DIMS["block_size"]] for s in starts])
        y = np.stack([data[s + 1 : s + 1 + DIMS["block_size"]] for s in starts])
        out.append((x, y))
    return out


def reference_run(seed=0):
    """tinyllm's own GPT: (initial state dict as arrays, losses, final state dict)."""
    tinyllm.manual_seed(seed)
    model = GPT(GPTConfig(**DIMS))
    start = {
        k: np.array(v.data if hasattr(v, "data") else v) for k, v in model.state_dict().items()
    }
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu")
    losses = []
    for x, y in batches():
        _, loss = model(tinyllm.tensor(x), tinyllm.tensor(y))
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    end = {k: np.array(v.data if hasattr(v, "data") else v) for k, v in model.state_dict().items()}
    return start, losses, end


@pytest.fixture(scope="module")
def reference():
    return reference_run()


def test_the_model_file_is_plain_torch():
    source = (HERE / "nanogpt_style.py").read_text()
    assert "tinyllm" not in source.split('"""', 2)[2]  # only the docstring may name it
    assert "import torch\n" in source and "from torch.nn import functional as F" in source


def test_under_the_shim_it_trains_like_tinyllms_gpt(shimmed, reference):
    start, ref_losses, ref_end = reference
    torch = torch_compat.torch
    model = shimmed.GPT(shimmed.Config(**DIMS))
    assert isinstance(model, tinyllm.nn.Module)
    result = model.load_state_dict({k: torch.tensor(v) for k, v in start.items()})
    assert list(result.missing_keys) == [] and list(result.unexpected_keys) == []
    data = [(torch.tensor(x), torch.tensor(y)) for x, y in batches()]
    losses = shimmed.train(model, data)
    np.testing.assert_allclose(losses, ref_losses, rtol=0, atol=2e-5)
    assert losses[-1] < losses[0]  # it learned, not just agreed
    end = model.state_dict()
    for key, want in ref_end.items():
        np.testing.assert_allclose(np.asarray(end[key].data), want, rtol=0, atol=2e-5, err_msg=key)


def test_its_init_and_parameter_count_follow_nanogpt(shimmed):
    tinyllm.manual_seed(1)
    model = shimmed.GPT(shimmed.Config(**DIMS))
    weights = [p for n, p in model.named_parameters() if n.endswith("c_fc.weight")]
    projections = [p for n, p in model.named_parameters() if n.endswith("c_proj.weight")]
    std = np.concatenate([np.asarray(p.data).ravel() for p in weights]).std()
    proj_std = np.concatenate([np.asarray(p.data).ravel() for p in projections]).std()
    assert abs(std - 0.02) < 0.002
    assert abs(proj_std - 0.02 / np.sqrt(2 * DIMS["n_layer"])) < 0.001
    e, v, t, n = DIMS["n_embd"], DIMS["vocab_size"], DIMS["block_size"], DIMS["n_layer"]
    per_block = (
        2 * 2 * e + (3 * e * e + 3 * e) + (e * e + e) + (4 * e * e + 4 * e) + (4 * e * e + e)
    )
    assert model.get_num_params() == v * e + n * per_block + 2 * e  # wpe left out, as nanoGPT
    assert model.get_num_params() + t * e == GPT(GPTConfig(**DIMS)).get_num_params(False)


def test_top1_sampling_is_greedy_decoding(shimmed, reference):
    start, _, _ = reference
    torch = torch_compat.torch
    model = shimmed.GPT(shimmed.Config(**DIMS))
    model.load_state_dict({k: torch.tensor(v) for k, v in start.items()})
    model.eval()
    tinyllm.manual_seed(0)
    ref = GPT(GPTConfig(**DIMS))
    ref.load_state_dict({k: tinyllm.tensor(v) for k, v in start.items()})
    prompt = np.array([[1, 2, 3]])
    # top_k=1 leaves one token with probability 1: multinomial must pick it, so the
    # topk + masked assignment + multinomial path equals argmax decoding
    got = model.generate(torch.tensor(prompt), 20, top_k=1)
    want = ref.generate(tinyllm.tensor(prompt), 20, temperature=0.0)
    np.testing.assert_array_equal(np.asarray(got.data), np.asarray(want.data))
    assert got.shape == (1, 23)  # past block_size 16: the crop to the last 16 tokens ran


def test_sampling_draws_from_tinyllms_seeded_generator(shimmed, reference):
    start, _, _ = reference
    torch = torch_compat.torch
    model = shimmed.GPT(shimmed.Config(**DIMS))
    model.load_state_dict({k: torch.tensor(v) for k, v in start.items()})
    runs = []
    for _ in range(2):
        tinyllm.manual_seed(7)
        runs.append(np.asarray(model.generate(torch.tensor([[5]]), 12, top_k=8).data))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert runs[0].min() >= 0 and runs[0].max() < DIMS["vocab_size"]


def test_unsupported_names_say_so():
    torch = torch_compat.torch
    with pytest.raises(NotImplementedError, match=r"torch\.compile is not supported"):
        _ = torch.compile
    with pytest.raises(NotImplementedError, match=r"torch\.nn\.functional\.grid_sample"):
        _ = torch.nn.functional.grid_sample
    assert not hasattr(torch, "compile")  # feature checks still work
    assert getattr(torch.nn, "RNNBase", None) is None
    assert torch.cuda.is_available() is False and torch.cuda.device_count() == 0
    assert torch.backends.mps.is_available() is False
    with pytest.raises(RuntimeError, match="cuda"):
        torch.zeros(2, device="cuda")


def test_installed_restores_sys_modules():
    before = {k: sys.modules.get(k) for k in ("torch", "torch.nn", "torch.nn.functional")}
    with torch_compat.installed() as torch:
        import torch as inner  # noqa: F401  (the stand-in)

        assert inner is torch is sys.modules["torch"]
    assert {k: sys.modules.get(k) for k in before} == before


def test_under_real_torch_the_same_file_matches_too(reference):
    torch = pytest.importorskip("torch")
    start, ref_losses, _ = reference
    assert sys.modules["torch"] is torch
    real = import_model_file()
    torch.manual_seed(0)
    model = real.GPT(real.Config(**DIMS))
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in start.items()})
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches()]
    losses = real.train(model, data)
    np.testing.assert_allclose(losses, ref_losses, rtol=0, atol=5e-5)
