"""Hugging Face's GPT-2 files: the directory layout `GPT2LMHeadModel.save_pretrained` writes.

tinyllm's GPT has GPT-2's architecture and GPT-2's parameter names (nanoGPT's), so a GPT-2
checkpoint maps onto it name for name. Two differences in how the file stores the numbers are
all there is to translate:

    config.json         hyper-parameters under Hugging Face's names:
                            n_positions → block_size    layer_norm_epsilon → layer_norm_eps
                            activation_function "gelu_new" / "gelu_pytorch_tanh" → "gelu_tanh",
                                                "gelu" → "gelu" (exact)
    model.safetensors   the tensors (a JSON header of names, dtypes, shapes and offsets, then the
                        raw little-endian bytes: no pickle, no code)

1. Conv1D. OpenAI's GPT-2 wrote its four projection matrices for y = x W + b, so Hugging Face
   keeps them in a `Conv1D` module whose weight is (in, out). tinyllm's Linear computes
   y = x Wᵀ + b with W (out, in), PyTorch's convention. So

       W_tinyllm = W_hfᵀ     for attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj (weights only)

   and every other tensor (embeddings, LayerNorms, biases) is copied as it is.
2. Tying. The output layer lm_head is the token embedding wte (tied), so the file stores it once;
   a `lm_head.weight` in the file must equal `wte`, or the model is not one GPT-2 describes.

Checkpoints saved from the bare `GPT2Model` (as the original GPT-2 release is) name the tensors
without the `transformer.` prefix; both spellings load. Old files also carry each block's causal
mask as a buffer (`h.0.attn.bias`, `h.0.attn.masked_bias`); tinyllm builds its mask on the fly,
so those are skipped.

Anything a tinyllm GPT cannot represent is refused with an error that names the file and the
key, rather than loaded into a model that would compute something else: another model_type or
activation, attention scaled by the inverse layer index, unscaled attention, an MLP width other
than 4·n_embd, untied embeddings, cross-attention.

Writing (`save_gpt2_pretrained`) is the inverse, and goes through a temporary directory: a new
directory appears complete or not at all; into an existing directory each file is replaced
atomically (other files there, such as a tokenizer's, stay).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save

from tinyllm.models.gpt import GPT, GPTConfig
from tinyllm.runtime.fileio import atomic_write_bytes

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

# Hugging Face's activation_function → GPTConfig.activation (both tanh spellings are one formula)
HF_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}
TINYLLM_ACTIVATIONS = {"gelu_tanh": "gelu_new", "gelu": "gelu"}

# the weights GPT-2 stores (in, out), as Conv1D does
CONV1D_WEIGHTS = (
    "attn.c_attn.weight",
    "attn.c_proj.weight",
    "mlp.c_fc.weight",
    "mlp.c_proj.weight",
)


class PretrainedFileError(ValueError):
    """A GPT-2 directory that tinyllm cannot load faithfully; the message names file and key."""


def _is_conv1d(name: str) -> bool:
    return name.startswith("transformer.h.") and name.endswith(CONV1D_WEIGHTS)


# ---- config.json ---------------------------------------------------------------------------


def config_from_hf(hf: dict, where: str = CONFIG_FILE, dropout: float = 0.0) -> GPTConfig:
    """GPTConfig for a GPT-2 config.json dict; refuses what tinyllm's GPT cannot compute."""

    def fail(key, message):
        raise PretrainedFileError(f"{where}: {key!r} {message}")

    if hf.get("model_type", "gpt2") != "gpt2":
        fail("model_type", f"is {hf['model_type']!r}; only 'gpt2' is supported")
    for key in ("n_embd", "n_layer", "n_head", "n_positions", "vocab_size"):
        if key not in hf:
            fail(key, "is missing")
        if not isinstance(hf[key], int) or isinstance(hf[key], bool) or hf[key] <= 0:
            fail(key, f"must be a positive integer, got {hf[key]!r}")
    act = hf.get("activation_function", "gelu_new")
    if act not in HF_ACTIVATIONS:
        fail("activation_function", f"is {act!r}; supported: {sorted(HF_ACTIVATIONS)}")
    refused = {  # key: (value tinyllm computes, what the other value would mean)
        "scale_attn_by_inverse_layer_idx": (False, "scales attention by 1/(layer index + 1)"),
        "scale_attn_weights": (True, "would leave the attention scores unscaled by 1/√d"),
        "tie_word_embeddings": (True, "would give lm_head its own matrix"),
        "add_cross_attention": (False, "adds cross-attention to an encoder"),
    }
    for key, (ours, meaning) in refused.items():
        if hf.get(key, ours) != ours:
            fail(key, f"is {hf[key]!r}: {meaning}, which tinyllm's GPT does not support")
    n_inner = hf.get("n_inner")
    if n_inner is not None and n_inner != 4 * hf["n_embd"]:
        fail("n_inner", f"is {n_inner}; tinyllm's MLP is 4·n_embd = {4 * hf['n_embd']} wide")
    eps = hf.get("layer_norm_epsilon", 1e-5)
    try:
        return GPTConfig(
            block_size=hf["n_positions"],
            vocab_size=hf["vocab_size"],
            n_layer=hf["n_layer"],
            n_head=hf["n_head"],
            n_embd=hf["n_embd"],
            dropout=dropout,
            bias=True,  # GPT-2 always has biases
            activation=HF_ACTIVATIONS[act],
            layer_norm_eps=float(eps),
        )
    except ValueError as e:
        raise PretrainedFileError(f"{where}: {e}") from None


def config_to_hf(config: GPTConfig) -> dict:
    """The config.json dict `transformers.GPT2Config` reads for a tinyllm GPTConfig."""
    if not config.bias:
        raise ValueError("save_pretrained: GPT-2 has biases; a GPTConfig with bias=False has none")
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_ctx": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None,
        "activation_function": TINYLLM_ACTIVATIONS[config.activation],
        "layer_norm_epsilon": config.layer_norm_eps,
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "tie_word_embeddings": True,
        # GPT-2's <|endoftext|> is id 50256; a smaller vocabulary has no such token
        "bos_token_id": 50256 if config.vocab_size > 50256 else None,
        "eos_token_id": 50256 if config.vocab_size > 50256 else None,
    }


# ---- model.safetensors ----------------------------------------------------------------------


def _tinyllm_name(key: str) -> str | None:
    """tinyllm's parameter name for a file key (None for a causal-mask buffer)."""
    if key.endswith((".attn.bias", ".attn.masked_bias")):  # not ".c_attn.bias": a parameter
        return None
    if key.startswith("transformer.") or key == "lm_head.weight":
        return key
    return "transformer." + key  # saved from the bare GPT2Model


def state_dict_from_hf(tensors: dict, model: GPT, where: str = WEIGHTS_FILE) -> dict:
    """tinyllm state dict (name → array, Conv1D weights transposed) for the file's tensors,
    checked against `model`: every key known, every parameter present, every shape right."""
    expected = {n: p for n, p in model.named_parameters()}  # lm_head is tied: listed as wte
    out, unknown, lm_head = {}, [], None
    for key, array in tensors.items():
        name = _tinyllm_name(key)
        if name is None:
            continue
        if name == "lm_head.weight":
            lm_head = (key, array)
            continue
        if name not in expected:
            unknown.append(key)
            continue
        value = array.T if _is_conv1d(name) else array
        if value.shape != expected[name].shape:
            want = str(expected[name].shape)
            if _is_conv1d(name):
                want = f"{expected[name].shape[::-1]} (in, out), as Conv1D stores it"
            raise PretrainedFileError(
                f"{where}: tensor {key!r} has shape {array.shape}, the config needs {want}"
            )
        out[name] = value
    if unknown:
        raise PretrainedFileError(
            f"{where}: unknown keys {unknown} (not part of a GPT-2 of this config)"
        )
    missing = [n for n in expected if n not in out]
    if missing:
        raise PretrainedFileError(f"{where}: missing keys {missing}")
    if lm_head is not None:
        key, array = lm_head
        wte = out["transformer.wte.weight"]
        if array.shape != wte.shape or not np.array_equal(array, wte):
            raise PretrainedFileError(
                f"{where}: {key!r} differs from transformer.wte.weight; tinyllm's GPT ties "
                "the output layer to the token embedding"
            )
    return out


def state_dict_to_hf(model: GPT) -> dict:
    """The file's tensors for `model`: Conv1D weights as (in, out), lm_head left to the tie."""
    return {
        name: np.ascontiguousarray(p.data.T if _is_conv1d(name) else p.data)
        for name, p in model.named_parameters()
    }


# ---- the directory ----------------------------------------------------------------------------


def load_gpt2_pretrained(cls, path, dropout: float = 0.0) -> GPT:
    """A `cls` (GPT) with the weights of the GPT-2 directory `path` (see the module docstring)."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"from_pretrained: {path!r} is not a directory (a local GPT-2 directory with "
            f"{CONFIG_FILE} and {WEIGHTS_FILE} is expected; nothing is downloaded)"
        )
    config_path = os.path.join(path, CONFIG_FILE)
    weights_path = os.path.join(path, WEIGHTS_FILE)
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"from_pretrained: {config_path} is missing")
    if not os.path.isfile(weights_path):
        others = sorted(f for f in os.listdir(path) if f.endswith((".bin", ".index.json")))
        hint = f" (found {others}: only one unsharded safetensors file is read)" if others else ""
        raise FileNotFoundError(f"from_pretrained: {weights_path} is missing{hint}")
    try:
        with open(config_path, encoding="utf-8") as f:
            hf = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise PretrainedFileError(f"{config_path}: not valid JSON ({e})") from None
    if not isinstance(hf, dict):
        raise PretrainedFileError(f"{config_path}: expected a JSON object")
    config = config_from_hf(hf, config_path, dropout=dropout)
    try:
        tensors = load_file(weights_path)
    except (SafetensorError, OSError, ValueError, TypeError) as e:
        raise PretrainedFileError(f"{weights_path}: not a readable safetensors file ({e})") from e
    model = cls(config)
    state = state_dict_from_hf(tensors, model, weights_path)
    for name, p in model.named_parameters():
        value = state[name]
        if not np.issubdtype(value.dtype, np.floating):
            raise PretrainedFileError(f"{weights_path}: tensor {name!r} has dtype {value.dtype}")
        p.data[...] = value  # cast to the model's dtype (float32 by default)
    return model


def save_gpt2_pretrained(model: GPT, path) -> None:
    """Write `model` as config.json + model.safetensors in the directory `path`.

    A new directory is built beside `path` and renamed into place (it appears whole or not at
    all); into an existing directory each of the two files is replaced atomically, weights first.
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(f"save_pretrained: {path} exists and is not a directory")
    config = json.dumps(config_to_hf(model.config), indent=2).encode("utf-8") + b"\n"
    weights = save(state_dict_to_hf(model), metadata={"format": "pt"})  # "pt": transformers' tag
    if os.path.isdir(path):
        atomic_write_bytes(os.path.join(path, WEIGHTS_FILE), weights)
        atomic_write_bytes(os.path.join(path, CONFIG_FILE), config)
        return
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=parent)
    try:
        atomic_write_bytes(os.path.join(tmp, WEIGHTS_FILE), weights)
        atomic_write_bytes(os.path.join(tmp, CONFIG_FILE), config)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
