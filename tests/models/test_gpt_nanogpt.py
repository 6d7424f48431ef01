"""GPT's nanoGPT conventions: configure_optimizers' signature, crop_block_size, estimate_mfu,
the ignored target, and GPTConfig's activation and layer-norm ε.

Truths used: NumPy's log-softmax for the loss, PaLM's 6N + 12·L·H·Q·T written out here (and
tinyllm.accounting's formula, derived independently of the model), the uncropped model's logits
for a cropped one, and the GELU formulas for the activation option.
"""

import math

import numpy as np
import pytest

from tinyllm.accounting import gpt_param_formula, palm_flops_per_token_for
from tinyllm.engine import Tensor
from tinyllm.models import GPT, GPTConfig
from tinyllm.nn.layers import GELU, LayerNorm
from tinyllm.optim import AdamW


def small_gpt(seed=0, **kw):
    cfg = dict(vocab_size=23, block_size=12, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    cfg.update(kw)
    return GPT(GPTConfig(**cfg), generator=np.random.default_rng(seed))


def log_softmax_np(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


# ---- the ignored target --------------------------------------------------------------------


@pytest.mark.parametrize("ignore_index", [-1, -100, 7])
def test_targets_equal_to_ignore_index_are_left_out(rng, ignore_index):
    m = small_gpt()
    idx = rng.integers(0, 23, (2, 9))
    tg = rng.integers(0, 23, (2, 9))
    tg[tg == ignore_index] = (ignore_index + 1) % 23  # only the positions set below are ignored
    tg[0, 2] = tg[1, 5] = tg[1, 8] = ignore_index
    logits, loss = m(idx, tg, ignore_index=ignore_index)
    lp = log_softmax_np(logits.data.astype(np.float64))
    keep = tg != ignore_index
    assert keep.sum() == 18 - 3
    assert abs(loss.item() - (-lp[keep, tg[keep]].mean())) < 1e-5


def test_nanogpt_minus_one_targets_need_ignore_index_and_say_so(rng):
    """The default stays −100 (tinyllm's batches, BERT, T5, PyTorch); a −1 under it is a clear
    error that names the target and the ignore_index, never an IndexError."""
    m = small_gpt()
    idx = rng.integers(0, 23, (1, 4))
    with pytest.raises(ValueError, match=r"-1.*ignore_index=-100"):
        m(idx, np.array([[1, 2, -1, 3]]))
    with pytest.raises(ValueError, match=r"23.*ignore_index=-1"):
        m(idx, np.array([[1, 2, 23, 3]]), ignore_index=-1)


def test_forward_without_targets_returns_every_position(rng):
    """Documented choice: all T positions (KV-cache prefill and scoring need them), not only
    the last as nanoGPT's inference shortcut; row t equals the model run on idx[:, :t+1]."""
    m = small_gpt()
    idx = rng.integers(0, 23, (2, 6))
    logits, loss = m(idx)
    assert logits.shape == (2, 6, 23) and loss is None
    for t in range(6):
        np.testing.assert_allclose(m(idx[:, : t + 1])[0].data[:, -1], logits.data[:, t], atol=1e-5)


# ---- configure_optimizers -------------------------------------------------------------------


def test_configure_optimizers_takes_nanogpts_arguments():
    m = small_gpt()
    opt = m.configure_optimizers(0.1, 6e-4, (0.9, 0.95), "cuda")  # nanoGPT's call, as written
    assert isinstance(opt, AdamW)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])
    n = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n == m.get_num_params(non_embedding=False)
    assert decay["lr"] == 6e-4 and decay["betas"] == (0.9, 0.95) and decay["eps"] == 1e-8
    opt = m.configure_optimizers(0.0, 1e-3, device_type="cpu", eps=1e-6)
    assert opt.param_groups[0]["eps"] == 1e-6
    with pytest.raises(ValueError, match="device_type"):
        m.configure_optimizers(0.1, 1e-3, (0.9, 0.95), 1e-8)  # the old positional eps
    with pytest.raises(TypeError):
        m.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu", 1e-8)  # eps is keyword-only


# ---- crop_block_size ---------------------------------------------------------------------------


def test_crop_block_size_keeps_the_first_positions(rng):
    m = small_gpt()
    cfg = m.config
    idx = rng.integers(0, 23, (2, 5))
    before = m(idx)[0].data.copy()
    wpe = m.transformer.wpe.weight
    first_rows = wpe.data[:5].copy()
    m.crop_block_size(5)
    assert m.config.block_size == 5 and cfg.block_size == 12  # the shared config is untouched
    assert m.transformer.wpe.weight is wpe and wpe.shape == (5, 16)  # same Parameter object
    np.testing.assert_array_equal(wpe.data, first_rows)
    np.testing.assert_allclose(m(idx)[0].data, before, atol=1e-6)
    with pytest.raises(ValueError, match="block_size"):
        m(rng.integers(0, 23, (1, 6)))
    out = m.generate(idx[:1, :3], 4)  # decoding crops its context to the new block_size
    assert out.shape == (1, 7)
    for bad in (0, 6):
        with pytest.raises(ValueError, match=r"crop_block_size.*\[1, 5\]"):
            m.crop_block_size(bad)


# ---- estimate_mfu -----------------------------------------------------------------------------


def test_estimate_mfu_is_palms_formula_over_the_peak():
    m = small_gpt(vocab_size=50, block_size=32, n_layer=3, n_head=4, n_embd=32)
    n, L, H, Q, T = m.get_num_params(), 3, 4, 8, 32
    # N without the position table, counted from the config alone
    assert n == gpt_param_formula(m.config).non_embedding
    per_token = 6 * n + 12 * L * H * Q * T
    assert per_token == palm_flops_per_token_for(m.config)
    fwdbwd, dt = 20, 0.5
    achieved = per_token * T * fwdbwd / dt
    assert m.estimate_mfu(fwdbwd, dt) == pytest.approx(achieved / 312e12, rel=1e-12)
    assert m.estimate_mfu(fwdbwd, dt, peak_flops=1e9) == pytest.approx(achieved / 1e9, rel=1e-12)
    with pytest.raises(ValueError, match="dt"):
        m.estimate_mfu(1, 0.0)
    with pytest.raises(ValueError, match="peak_flops"):
        m.estimate_mfu(1, 1.0, peak_flops=0)


# ---- GPTConfig: activation and layer_norm_eps --------------------------------------------------


def test_config_defaults_are_unchanged_and_used_by_every_block():
    c = GPTConfig()
    assert (c.activation, c.layer_norm_eps) == ("gelu", 1e-5)
    m = small_gpt()
    gelus = [mod for mod in m.modules() if isinstance(mod, GELU)]
    norms = [mod for mod in m.modules() if isinstance(mod, LayerNorm)]
    assert len(gelus) == 2 and all(g.approximate == "none" for g in gelus)
    assert len(norms) == 5 and all(n.eps == 1e-5 for n in norms)
    m = small_gpt(activation="gelu_tanh", layer_norm_eps=1e-3)
    assert all(g.approximate == "tanh" for g in m.modules() if isinstance(g, GELU))
    assert all(n.eps == 1e-3 for n in m.modules() if isinstance(n, LayerNorm))


def test_activation_option_computes_the_named_gelu(rng):
    x = rng.standard_normal(50)
    exact = 0.5 * x * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x]))
    tanh = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    for activation, expected in (("gelu", exact), ("gelu_tanh", tanh)):
        mlp = small_gpt(activation=activation).transformer.h[0].mlp
        np.testing.assert_allclose(mlp.gelu(Tensor(x)).data, expected, rtol=1e-12, atol=1e-12)


def test_config_rejects_unknown_activation_and_bad_eps():
    with pytest.raises(ValueError, match="activation 'relu'"):
        GPTConfig(activation="relu")
    with pytest.raises(ValueError, match="layer_norm_eps"):
        GPTConfig(layer_norm_eps=0.0)
