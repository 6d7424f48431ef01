"""Instruction fine-tuning learns only the assistant's tokens — checked by gradients.

The chat format's targets are −100 off the assistant's turns, so the cross-entropy's gradient
with respect to the logits must be exactly zero at every position whose next token is a
system/user token or a header, and the loss must equal a plain-NumPy masked mean over the
assistant positions. Changing what a user token would be as a target changes nothing; changing
an assistant token does.
"""

import numpy as np

from tinyllm import ops
from tinyllm.data import ByteLevelBPE
from tinyllm.data.chat import ChatFormat
from tinyllm.engine import Tensor
from tinyllm.models import GPT, GPTConfig

CONV = [
    {"role": "system", "content": "answer briefly"},
    {"role": "user", "content": "ref qwzx\nvalue of b? a=12 b=34"},
    {"role": "assistant", "content": "34"},
    {"role": "user", "content": "and a?"},
    {"role": "assistant", "content": "12"},
]


def _setup():
    fmt = ChatFormat(ByteLevelBPE())
    ids, mask = fmt.render(CONV)
    x, y = fmt.targets(ids, mask)
    return fmt, ids, mask, x, y


def _reference_loss(logits, ids, mask):
    """−mean over t with mask[t+1] of log softmax(logits[t])[ids[t+1]], in NumPy."""
    z = logits - logits.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    t = np.flatnonzero(mask[1:])
    return -logp[t, ids[1:][t]].mean()


def test_logit_gradient_is_zero_exactly_off_the_assistant_tokens():
    fmt, ids, mask, x, y = _setup()
    rng = np.random.default_rng(0)
    logits = Tensor(rng.standard_normal((len(x), fmt.tokenizer.vocab_size)), requires_grad=True)
    loss = ops.cross_entropy(logits, y, ignore_index=-100)
    loss.backward()
    row_norm = np.abs(logits.grad).sum(axis=1)
    learned = mask[1:]  # position t predicts token t+1
    assert learned.sum() == len("34") + 1 + len("12") + 1  # the answers and their <|end|>
    assert np.all(row_norm[~learned] == 0)
    assert np.all(row_norm[learned] > 0)
    np.testing.assert_allclose(loss.item(), _reference_loss(logits.data, ids, mask), rtol=1e-10)


def test_a_user_tokens_target_does_not_reach_the_loss_an_assistant_token_does():
    fmt, ids, mask, x, y = _setup()
    cfg = GPTConfig(vocab_size=fmt.tokenizer.vocab_size, block_size=64, n_layer=1, n_head=2,
                    n_embd=16)  # fmt: skip
    model = GPT(cfg, generator=np.random.default_rng(0))

    def loss_and_grads(targets):
        model.zero_grad()
        _, loss = model(x[None], targets[None])
        loss.backward()
        return loss.item(), [p.grad.copy() for p in model.parameters()]

    base_loss, base_grads = loss_and_grads(y)
    user_pos = np.flatnonzero(~mask[1:] & (ids[1:] < 256))  # targets that are user/system text
    assert len(user_pos) > 10
    other = ids.copy()
    other[1:][user_pos] = (other[1:][user_pos] + 1) % 256  # different user text as targets
    _, y_user = fmt.targets(other, mask)
    loss_u, grads_u = loss_and_grads(y_user)
    assert loss_u == base_loss
    assert all(np.array_equal(a, b) for a, b in zip(grads_u, base_grads))

    answer_pos = np.flatnonzero(mask[1:])[0]
    other = ids.copy()
    other[1 + answer_pos] = (other[1 + answer_pos] + 1) % 256
    _, y_asst = fmt.targets(other, mask)
    loss_a, grads_a = loss_and_grads(y_asst)
    assert loss_a != base_loss
    assert not all(np.array_equal(a, b) for a, b in zip(grads_a, base_grads))


def test_all_tokens_ablation_reaches_the_user_positions():
    fmt, ids, mask, x, _ = _setup()
    _, y_all = fmt.targets(ids, np.ones_like(mask))
    logits = Tensor(np.random.default_rng(1).standard_normal((len(x), fmt.tokenizer.vocab_size)),
                    requires_grad=True)  # fmt: skip
    ops.cross_entropy(logits, y_all, ignore_index=-100).backward()
    assert np.all(np.abs(logits.grad).sum(axis=1) > 0)
