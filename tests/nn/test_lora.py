"""LoRA: the adapter's gradients by finite differences, the B = 0 start, merge/unmerge, which
parameters train, and the layer against the same formula written in PyTorch."""

import numpy as np
import pytest

from tinyllm.engine import Tensor
from tinyllm.models import GPT, GPTConfig
from tinyllm.nn import Linear, LoRALinear, apply_lora, lora_state_dict, merge_lora
from tinyllm.nn.lora import train_new_token_rows, trainable_parameters
from tinyllm.testing import gradcheck


def _layer(r=3, alpha=6.0, dropout=0.0, seed=0, random_b=True):
    g = np.random.default_rng(seed)
    base = Linear(5, 4, dtype=np.float64, generator=g)
    layer = LoRALinear(base, r=r, alpha=alpha, dropout=dropout, generator=g)
    if random_b:  # B = 0 at init would hide every mistake in the A path
        layer.lora_B.data[...] = g.standard_normal(layer.lora_B.shape)
    return layer


def _x(seed=1, shape=(2, 3, 5)):
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def test_gradcheck_input_and_adapters():
    layer, x = _layer(), _x()
    assert gradcheck(lambda x, a, b: layer(x), [x, layer.lora_A, layer.lora_B])


def test_forward_is_the_formula():
    layer, x = _layer(), _x()
    w, bias, a, b = (
        t.data for t in (layer.base.weight, layer.base.bias, layer.lora_A, layer.lora_B)
    )
    expected = x.data @ w.T + bias + (6.0 / 3) * (x.data @ a.T) @ b.T
    np.testing.assert_allclose(layer(x).data, expected, rtol=1e-12, atol=1e-12)


def test_b_zero_at_init_equals_the_base_even_with_dropout():
    layer, x = _layer(random_b=False, dropout=0.5), _x()
    assert np.all(layer.lora_B.data == 0)
    layer.train()  # dropout acts on the adapter input only; the frozen path sees x
    np.testing.assert_array_equal(layer(x).data, layer.base(x).data)


def test_merge_equals_unmerged_and_unmerge_restores_the_weight():
    layer, x = _layer(), _x()
    w0 = layer.base.weight.data.copy()
    unmerged = layer(x).data
    layer.merge()
    np.testing.assert_allclose(layer(x).data, unmerged, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        layer.base.weight.data - w0, 2.0 * layer.lora_B.data @ layer.lora_A.data
    )
    with pytest.raises(RuntimeError, match="already merged"):
        layer.merge()
    layer.unmerge()
    np.testing.assert_allclose(layer.base.weight.data, w0, rtol=0, atol=1e-14)
    np.testing.assert_allclose(layer(x).data, unmerged, rtol=1e-12, atol=1e-12)
    with pytest.raises(RuntimeError, match="not merged"):
        layer.unmerge()


def test_bad_arguments_are_named():
    base = Linear(4, 4)
    for kwargs, word in (
        ({"r": 0}, "rank"),
        ({"alpha": float("nan")}, "alpha"),
        ({"dropout": 1.0}, "dropout"),
    ):
        with pytest.raises(ValueError, match=word):
            LoRALinear(base, **kwargs)
    with pytest.raises(TypeError, match="nn.Linear"):
        LoRALinear(object())


def _gpt(seed=0):
    cfg = GPTConfig(vocab_size=40, block_size=8, n_layer=2, n_head=2, n_embd=8)
    return GPT(cfg, generator=np.random.default_rng(seed))


def test_apply_lora_starts_at_the_base_and_only_adapters_get_gradients():
    model, ref = _gpt(), _gpt()
    x = np.random.default_rng(0).integers(0, 40, (2, 8))
    wrapped = apply_lora(
        model, ("attn.c_attn", "mlp.c_fc"), r=2, alpha=4, generator=np.random.default_rng(1)
    )
    assert wrapped == [
        f"transformer.h.{i}.{n}" for i in range(2) for n in ("attn.c_attn", "mlp.c_fc")
    ]
    logits, loss = model(x, x)
    np.testing.assert_array_equal(logits.data, ref(x)[0].data)  # B = 0: the same model
    loss.backward()
    for name, p in model.named_parameters():
        if name.endswith(("lora_A", "lora_B")):
            assert p.requires_grad and p.grad is not None, name
        else:
            assert not p.requires_grad and p.grad is None, name
    # at B = 0 the loss depends on B (its grad is not zero) but not yet on A
    b_grads = [p.grad for n, p in model.named_parameters() if n.endswith("lora_B")]
    assert all(np.abs(g).max() > 0 for g in b_grads)
    # r·(in + out) per layer: c_attn 8 → 24, c_fc 8 → 32
    assert sum(p.numel() for p in trainable_parameters(model)) == 2 * (2 * (8 + 24) + 2 * (8 + 32))
    assert set(lora_state_dict(model)) == {n for n, _ in model.named_parameters() if "lora_" in n}


def test_merge_lora_gives_back_the_base_structure_with_the_adapted_function():
    model = _gpt()
    names = list(model.state_dict())
    apply_lora(model, ("c_attn", "c_proj"), r=2, alpha=2, generator=np.random.default_rng(2))
    g = np.random.default_rng(3)
    for n, p in model.named_parameters():
        if n.endswith("lora_B"):
            p.data[...] = g.standard_normal(p.shape) * 0.1
    x = g.integers(0, 40, (2, 8))
    adapted = model(x)[0].data
    merge_lora(model)
    assert list(model.state_dict()) == names
    np.testing.assert_allclose(model(x)[0].data, adapted, rtol=1e-4, atol=1e-5)
    plain = _gpt()
    plain.load_state_dict(model.state_dict())
    np.testing.assert_allclose(plain(x)[0].data, adapted, rtol=1e-4, atol=1e-5)


def test_a_target_that_matches_nothing_is_an_error():
    with pytest.raises(ValueError, match="no Linear layer is named 'attn.q_proj'"):
        apply_lora(_gpt(), ("attn.q_proj",))


def test_against_torch():
    torch = pytest.importorskip("torch")
    layer, x = _layer(), _x()
    out = layer(x)
    u = np.random.default_rng(5).standard_normal(out.shape)
    out.backward(u)
    t = {k: torch.tensor(v.data, requires_grad=True) for k, v in
         (("x", x), ("A", layer.lora_A), ("B", layer.lora_B))}  # fmt: skip
    w, b = torch.tensor(layer.base.weight.data), torch.tensor(layer.base.bias.data)
    y = torch.nn.functional.linear(t["x"], w, b) + 2.0 * (t["x"] @ t["A"].T) @ t["B"].T
    y.backward(torch.tensor(u))
    np.testing.assert_allclose(out.data, y.detach().numpy(), rtol=1e-12, atol=1e-12)
    for k, mine in (("x", x), ("A", layer.lora_A), ("B", layer.lora_B)):
        np.testing.assert_allclose(mine.grad, t[k].grad.numpy(), rtol=1e-10, atol=1e-12)


def test_new_token_rows_train_alone_and_merge_back_tied():
    model, ref = _gpt(), _gpt()
    names = list(model.state_dict())
    x = np.random.default_rng(0).integers(0, 40, (2, 8))
    apply_lora(model, ("c_attn",), r=2, alpha=2, generator=np.random.default_rng(1))
    rows = train_new_token_rows(model, 3)
    logits, loss = model(x, x)
    np.testing.assert_allclose(logits.data, ref(x)[0].data, rtol=1e-6, atol=1e-6)  # unchanged
    loss.backward()
    grad = rows.new_rows.grad
    assert grad.shape == (3, 8) and np.abs(grad).max() > 0  # the head reaches every row
    assert model.transformer.wte.base.weight.grad is None  # the old rows: frozen, no gradient
    rows.new_rows.data[...] += 0.5
    adapted = model(x)[0].data
    merge_lora(model)
    assert list(model.state_dict()) == names
    assert model.lm_head.weight is model.transformer.wte.weight  # still tied
    np.testing.assert_allclose(model.transformer.wte.weight.data[-3:], rows.new_rows.data)
    np.testing.assert_allclose(model(x)[0].data, adapted, rtol=1e-5, atol=1e-6)


def test_train_old_rows_gives_the_whole_tied_table_the_full_models_gradient():
    """With train_old (PEFT's modules_to_save for the embedding), every row of the tied table
    gets the gradient the plain model gives its embedding: input lookup plus output head."""
    model, ref = _gpt(), _gpt()
    x = np.random.default_rng(0).integers(0, 40, (2, 8))
    apply_lora(model, ("c_attn",), r=2, alpha=2, generator=np.random.default_rng(1))
    rows = train_new_token_rows(model, 3, train_old=True)
    _, loss = model(x, x)
    loss.backward()
    _, ref_loss = ref(x, x)
    ref_loss.backward()
    full = ref.transformer.wte.weight.grad  # B = 0: the adapted model computes the same function
    np.testing.assert_allclose(model.transformer.wte.base.weight.grad[:-3], full[:-3], atol=1e-6)
    np.testing.assert_allclose(rows.new_rows.grad, full[-3:], atol=1e-6)
    base = model.transformer.wte.base.weight
    assert any(p is base for p in trainable_parameters(model))
