"""Post-accumulate-grad hooks and eager leaf finalization (what DDP's bucketing relies on)."""

import numpy as np

import tinyllm
from tinyllm.engine import Tensor
from tinyllm.models import GPT, GPTConfig


def test_hook_fires_once_per_backward_after_all_uses():
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    seen = []
    x.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.copy()))
    y = (x * x).sum() + (3 * x).sum()  # x used by two consumers
    y.backward()
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], 2 * x.data + 3)
    (x * 2).sum().backward()  # second backward: accumulated grad visible
    assert len(seen) == 2
    np.testing.assert_allclose(seen[1], 2 * x.data + 3 + 2)


def test_hook_on_root_leaf():
    x = Tensor(np.array([2.0]), requires_grad=True)
    calls = []
    x.register_post_accumulate_grad_hook(lambda t: calls.append(1))
    x.backward(np.array([1.0]))
    assert calls == [1] and x.grad[0] == 1.0


def test_gpt_parameter_grads_finalize_from_last_layer_to_first():
    """Each block's parameters are complete before any earlier block's: the order DDP buckets
    (reverse parameter order) assume."""
    tinyllm.manual_seed(0)
    model = GPT(GPTConfig(block_size=8, vocab_size=16, n_layer=3, n_head=2, n_embd=8))
    order = []
    for name, p in model.named_parameters():
        p.register_post_accumulate_grad_hook(lambda t, name=name: order.append(name))
    idx = np.random.default_rng(0).integers(0, 16, (2, 8))
    _, loss = model(idx, idx)
    loss.backward()
    assert sorted(order) == sorted(n for n, _ in model.named_parameters())
    last_of_block = [
        max(i for i, n in enumerate(order) if n.startswith(f"transformer.h.{b}.")) for b in range(3)
    ]
    first_of_block = [
        min(i for i, n in enumerate(order) if n.startswith(f"transformer.h.{b}.")) for b in range(3)
    ]
    # block 2 finishes before block 1 starts finishing, and block 1 before block 0
    assert last_of_block[2] < first_of_block[1]
    assert last_of_block[1] < first_of_block[0]
    # the tied embedding is used first in forward and last in backward
    assert order[-1] in ("transformer.wte.weight", "transformer.wpe.weight")
