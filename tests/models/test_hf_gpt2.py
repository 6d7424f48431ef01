"""GPT.from_pretrained / save_pretrained: Hugging Face's GPT-2 directory layout.

Two independent truths. Always: a GPT-2 directory written here from NumPy arrays (config.json
by hand, model.safetensors with Conv1D weights stored (in, out)) and a plain-NumPy GPT-2 forward
written in this file, in GPT-2's own convention y = x W + b. When transformers is installed: a
tiny random GPT2LMHeadModel saved by transformers, loaded by tinyllm, and back.
"""

import json
import math
import os

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from tinyllm.models import GPT, GPTConfig, hf_gpt2
from tinyllm.models.hf_gpt2 import PretrainedFileError

E, L, H, T, V = 16, 2, 2, 8, 29


# ---- a GPT-2 written by hand ------------------------------------------------------------------


def gpt2_tensors(rng, prefix="transformer."):
    """GPT-2's tensors as its files store them: Conv1D weights (in, out)."""
    w = lambda *shape: (0.3 * rng.standard_normal(shape)).astype(np.float32)  # noqa: E731
    t = {f"{prefix}wte.weight": w(V, E), f"{prefix}wpe.weight": w(T, E)}
    for i in range(L):
        h = f"{prefix}h.{i}."
        t |= {
            h + "ln_1.weight": 1 + w(E),
            h + "ln_1.bias": w(E),
            h + "attn.c_attn.weight": w(E, 3 * E),
            h + "attn.c_attn.bias": w(3 * E),
            h + "attn.c_proj.weight": w(E, E),
            h + "attn.c_proj.bias": w(E),
            h + "ln_2.weight": 1 + w(E),
            h + "ln_2.bias": w(E),
            h + "mlp.c_fc.weight": w(E, 4 * E),
            h + "mlp.c_fc.bias": w(4 * E),
            h + "mlp.c_proj.weight": w(4 * E, E),
            h + "mlp.c_proj.bias": w(E),
        }
    t |= {f"{prefix}ln_f.weight": 1 + w(E), f"{prefix}ln_f.bias": w(E)}
    return t


def gpt2_config(**kw):
    c = dict(
        model_type="gpt2",
        n_embd=E,
        n_layer=L,
        n_head=H,
        n_positions=T,
        vocab_size=V,
        layer_norm_epsilon=1e-5,
        activation_function="gelu_new",
    )
    c.update(kw)
    return c


def write_dir(path, config, tensors):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    save_file(tensors, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    return path


def gpt2_forward_numpy(t, ids, eps, activation, prefix="transformer."):
    """GPT-2 (Radford et al. 2019) in float64 NumPy, in the files' own y = x W + b convention."""
    g = lambda k: t[prefix + k].astype(np.float64)  # noqa: E731

    def ln(x, k):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * g(k + ".weight") + g(k + ".bias")

    def gelu(x):
        if activation in ("gelu_new", "gelu_pytorch_tanh"):  # the tanh approximation
            return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
        return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))

    b, n = ids.shape
    hs = E // H
    x = g("wte.weight")[ids] + g("wpe.weight")[np.arange(n)]
    causal = np.tril(np.ones((n, n), dtype=bool))
    for i in range(L):
        p = f"h.{i}."
        a = ln(x, p + "ln_1") @ g(p + "attn.c_attn.weight") + g(p + "attn.c_attn.bias")
        q, k, v = (
            a[..., j * E : (j + 1) * E].reshape(b, n, H, hs).transpose(0, 2, 1, 3) for j in range(3)
        )
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hs)
        s = np.where(causal, s, -np.inf)
        s = np.exp(s - s.max(-1, keepdims=True))
        y = (s / s.sum(-1, keepdims=True)) @ v  # (B, H, T, hs)
        y = y.transpose(0, 2, 1, 3).reshape(b, n, E)
        x = x + y @ g(p + "attn.c_proj.weight") + g(p + "attn.c_proj.bias")
        m = gelu(ln(x, p + "ln_2") @ g(p + "mlp.c_fc.weight") + g(p + "mlp.c_fc.bias"))
        x = x + m @ g(p + "mlp.c_proj.weight") + g(p + "mlp.c_proj.bias")
    return ln(x, "ln_f") @ g("wte.weight").T


@pytest.mark.parametrize(
    "activation, eps", [("gelu_new", 1e-5), ("gelu_pytorch_tanh", 1e-3), ("gelu", 1e-2)]
)
def test_hand_written_gpt2_directory_matches_numpy_gpt2(tmp_path, rng, activation, eps):
    tensors = gpt2_tensors(rng)
    path = write_dir(
        tmp_path / "m", gpt2_config(activation_function=activation, layer_norm_epsilon=eps), tensors
    )
    model = GPT.from_pretrained(path)
    want = "gelu" if activation == "gelu" else "gelu_tanh"
    assert (model.config.activation, model.config.layer_norm_eps) == (want, eps)
    assert model.config.block_size == T and model.config.vocab_size == V
    ids = rng.integers(0, V, (3, T))
    logits, _ = model(ids)
    expected = gpt2_forward_numpy(tensors, ids, eps, activation)
    np.testing.assert_allclose(logits.data, expected, rtol=1e-4, atol=1e-4)


def test_bare_gpt2model_names_and_mask_buffers_load(tmp_path, rng):
    """The original release's layout: no 'transformer.' prefix, a causal-mask buffer per
    block, and lm_head.weight stored although it is the (tied) wte."""
    tensors = gpt2_tensors(rng, prefix="")
    for i in range(L):
        tensors[f"h.{i}.attn.bias"] = np.tril(np.ones((1, 1, T, T), dtype=np.float32))
        tensors[f"h.{i}.attn.masked_bias"] = np.array(-1e4, dtype=np.float32)
    tensors["lm_head.weight"] = tensors["wte.weight"].copy()
    model = GPT.from_pretrained(write_dir(tmp_path / "m", gpt2_config(), tensors))
    ids = rng.integers(0, V, (2, 5))
    expected = gpt2_forward_numpy(tensors, ids, 1e-5, "gelu_new", prefix="")
    np.testing.assert_allclose(model(ids)[0].data, expected, rtol=1e-4, atol=1e-4)


def test_save_pretrained_writes_gpt2_layout_and_round_trips(tmp_path, rng):
    model = GPT(
        GPTConfig(
            vocab_size=V,
            block_size=T,
            n_layer=L,
            n_head=H,
            n_embd=E,
            activation="gelu_tanh",
            layer_norm_eps=1e-6,
        )
    )
    path = tmp_path / "out"
    model.save_pretrained(path)
    assert sorted(os.listdir(path)) == ["config.json", "model.safetensors"]
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["activation_function"] == "gelu_new" and cfg["layer_norm_epsilon"] == 1e-6
    assert (cfg["n_positions"], cfg["n_embd"], cfg["vocab_size"]) == (T, E, V)
    stored = load_file(str(path / "model.safetensors"))
    sd = model.state_dict()
    w = "transformer.h.1.attn.c_attn.weight"
    np.testing.assert_array_equal(stored[w], sd[w].T)  # Conv1D: (in, out)
    assert stored[w].shape == (E, 3 * E)
    np.testing.assert_array_equal(
        stored["transformer.h.0.ln_1.bias"], sd["transformer.h.0.ln_1.bias"]
    )
    assert "lm_head.weight" not in stored  # tied
    # the numpy GPT-2 on the written files agrees with the model that wrote them
    ids = rng.integers(0, V, (2, T))
    expected = gpt2_forward_numpy(stored, ids, 1e-6, "gelu_new")
    np.testing.assert_allclose(model(ids)[0].data, expected, rtol=1e-4, atol=1e-4)
    back = GPT.from_pretrained(path)
    assert back.config == model.config
    for (n, a), (m, b) in zip(back.state_dict().items(), sd.items()):
        assert n == m
        np.testing.assert_array_equal(a, b)


def test_save_pretrained_into_an_existing_directory_keeps_other_files(tmp_path):
    path = tmp_path / "out"
    path.mkdir()
    (path / "vocab.json").write_text("{}")
    GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=1, n_head=H, n_embd=E)).save_pretrained(path)
    assert sorted(os.listdir(path)) == ["config.json", "model.safetensors", "vocab.json"]


def test_a_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = []

    def fail_on_second(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        with open(path, "wb") as f:
            f.write(data)

    monkeypatch.setattr(hf_gpt2, "atomic_write_bytes", fail_on_second)
    model = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=1, n_head=H, n_embd=E))
    with pytest.raises(OSError, match="disk full"):
        model.save_pretrained(tmp_path / "out")
    assert os.listdir(tmp_path) == []


# ---- errors that name the problem -------------------------------------------------------------


def test_missing_files_are_named(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        GPT.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "a").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        GPT.from_pretrained(tmp_path / "a")
    (tmp_path / "a" / "config.json").write_text(json.dumps(gpt2_config()))
    (tmp_path / "a" / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"model.safetensors is missing.*pytorch_model"):
        GPT.from_pretrained(tmp_path / "a")
    (tmp_path / "a" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(PretrainedFileError, match="not a readable safetensors"):
        GPT.from_pretrained(tmp_path / "a")
    (tmp_path / "a" / "config.json").write_text("{oops")
    with pytest.raises(PretrainedFileError, match="not valid JSON"):
        GPT.from_pretrained(tmp_path / "a")


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(model_type="llama"), "'model_type'"),
        (dict(activation_function="relu"), "'activation_function' is 'relu'"),
        (dict(scale_attn_by_inverse_layer_idx=True), "'scale_attn_by_inverse_layer_idx'"),
        (dict(scale_attn_weights=False), "'scale_attn_weights'"),
        (dict(tie_word_embeddings=False), "'tie_word_embeddings'"),
        (dict(add_cross_attention=True), "'add_cross_attention'"),
        (dict(n_inner=3 * E), "'n_inner'"),
        (dict(n_head=3), "not divisible"),
        (dict(n_embd=None), "'n_embd' must be a positive integer"),
        (dict(layer_norm_epsilon=0.0), "layer_norm_eps"),
    ],
)
def test_unsupported_config_names_the_key(tmp_path, rng, change, match):
    path = write_dir(tmp_path / "m", gpt2_config(**change), gpt2_tensors(rng))
    with pytest.raises(PretrainedFileError, match=match):
        GPT.from_pretrained(path)


def test_missing_config_key_is_named(tmp_path, rng):
    cfg = gpt2_config()
    del cfg["n_positions"]
    with pytest.raises(PretrainedFileError, match="'n_positions' is missing"):
        GPT.from_pretrained(write_dir(tmp_path / "m", cfg, gpt2_tensors(rng)))


def test_tensor_problems_name_the_key(tmp_path, rng):
    t = gpt2_tensors(rng)
    t["transformer.h.0.attn.rotary.weight"] = np.zeros(3, dtype=np.float32)
    with pytest.raises(PretrainedFileError, match=r"unknown keys.*rotary"):
        GPT.from_pretrained(write_dir(tmp_path / "a", gpt2_config(), t))
    t = gpt2_tensors(rng)
    del t["transformer.h.1.mlp.c_fc.bias"]
    with pytest.raises(PretrainedFileError, match=r"missing keys.*h\.1\.mlp\.c_fc\.bias"):
        GPT.from_pretrained(write_dir(tmp_path / "b", gpt2_config(), t))
    t = gpt2_tensors(rng)
    t["transformer.h.0.attn.c_attn.weight"] = t["transformer.h.0.attn.c_attn.weight"].T.copy()
    with pytest.raises(
        PretrainedFileError, match=r"h\.0\.attn\.c_attn\.weight.*\(48, 16\).*\(16, 48\)"
    ):
        GPT.from_pretrained(write_dir(tmp_path / "c", gpt2_config(), t))
    t = gpt2_tensors(rng)
    t["lm_head.weight"] = t["transformer.wte.weight"] + 1
    with pytest.raises(PretrainedFileError, match="lm_head.weight.*ties"):
        GPT.from_pretrained(write_dir(tmp_path / "d", gpt2_config(), t))


def test_save_refuses_what_gpt2_cannot_hold(tmp_path):
    m = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=1, n_head=H, n_embd=E, bias=False))
    with pytest.raises(ValueError, match="bias=False"):
        m.save_pretrained(tmp_path / "x")
    (tmp_path / "f").write_text("")
    m = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=1, n_head=H, n_embd=E))
    with pytest.raises(NotADirectoryError, match="not a directory"):
        m.save_pretrained(tmp_path / "f")


# ---- against transformers, when installed -----------------------------------------------------


@pytest.mark.parametrize("activation", ["gelu_new", "gelu"])
def test_transformers_gpt2_round_trip(tmp_path, rng, activation):
    torch = pytest.importorskip("torch")
    tr = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = tr.GPT2Config(
        n_layer=2,
        n_embd=64,
        n_head=4,
        n_positions=24,
        vocab_size=101,
        activation_function=activation,
        layer_norm_epsilon=1e-4,
        bos_token_id=None,
        eos_token_id=None,
    )
    hf = tr.GPT2LMHeadModel(cfg).eval()
    hf.save_pretrained(tmp_path / "hf")
    model = GPT.from_pretrained(tmp_path / "hf")
    ids = rng.integers(0, 101, (2, 24))
    logits = model(ids)[0].data
    with torch.no_grad():
        ref = hf(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(logits, ref, atol=1e-5, rtol=0)
    model.save_pretrained(tmp_path / "ours")
    back = tr.GPT2LMHeadModel.from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        again = back(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(again, logits, atol=1e-5, rtol=0)
    assert back.config.activation_function == ("gelu_new" if activation == "gelu_new" else "gelu")
    # greedy decoding, token by token through tinyllm's KV cache, picks Hugging Face's tokens
    prompt = ids[:, :5]
    ours = model.generate(prompt, 6)
    with torch.no_grad():
        theirs = hf.generate(torch.tensor(prompt), max_new_tokens=6, do_sample=False)
    np.testing.assert_array_equal(ours, theirs.numpy())
