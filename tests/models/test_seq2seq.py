"""The LSTM encoder–decoder: Bahdanau attention against its equations in NumPy, gradients by
finite differences, teacher forcing equal to step-by-step decoding, padding never attended;
and the language pair's reference translation against hand-written cases."""

import numpy as np
import pytest

import tinyllm
from tinyllm.data.language_pair import BOS, EOS, LanguagePair
from tinyllm.models.seq2seq import Seq2Seq
from tinyllm.testing import gradcheck


def _model(attention=True, dtype=None):
    tinyllm.manual_seed(0)
    m = Seq2Seq(7, 9, embed=4, hidden=5, attention=attention, attention_size=3)
    if dtype is not None:
        m.to(dtype)
    return m


def test_attention_is_the_additive_score_softmax_and_weighted_sum():
    m = _model()
    rng = np.random.default_rng(0)
    s = rng.normal(size=(2, 5))
    states = rng.normal(size=(2, 4, 5))
    pad = np.array([[True, False, False, False], [False, False, False, False]])
    keys = m.U(tinyllm.tensor(states.astype(np.float32)))
    alpha, ctx = m.attend(
        tinyllm.tensor(s.astype(np.float32)), keys, tinyllm.tensor(states.astype(np.float32)), pad
    )
    W, U, b, v = (
        np.asarray(p.data, dtype=np.float64) for p in (m.W.weight, m.U.weight, m.U.bias, m.v.weight)
    )
    e = np.tanh((s @ W.T)[:, None, :] + states @ U.T + b) @ v[0]  # vᵀ tanh(W s + U h_j)
    e[pad] = -np.inf
    ref = np.exp(e - e.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    np.testing.assert_allclose(alpha.numpy(), ref, atol=1e-5)
    np.testing.assert_allclose(ctx.numpy(), np.einsum("bs,bsh->bh", ref, states), atol=1e-5)
    assert alpha.numpy()[0, 0] == 0.0  # padding gets no weight


@pytest.mark.parametrize("attention", [True, False])
def test_gradients_by_finite_differences(attention):
    m = _model(attention, dtype=tinyllm.float64)
    src = np.array([[0, 3, 4, 5], [2, 1, 6, 3]])
    mask = np.array([[0, 1, 1, 1], [1, 1, 1, 1]])
    tgt_in = np.array([[1, 4, 5], [1, 2, 8]])
    labels = np.array([[4, 5, 2], [2, 8, -100]])
    params = list(m.parameters())
    # gradcheck perturbs each picked parameter in place and reruns the loss
    picks = [params[i] for i in (0, 2, 4, len(params) - 1)]  # embeddings, LSTM, read-out
    assert gradcheck(lambda *_: m(src, tgt_in, labels, src_mask=mask)[1], picks)


def test_teacher_forcing_equals_stepping_and_greedy_decoding_stops_at_eos():
    m = _model()
    src = np.array([[0, 3, 4, 5]])
    tgt_in = np.array([[1, 6, 7, 8]])
    logits, _ = m(src, tgt_in)
    memory, state = m._memory(src, None)
    for t in range(4):
        out, state, _ = m.step(tgt_in[:, t], state, memory)
        np.testing.assert_allclose(out.numpy(), logits.numpy()[:, t], atol=1e-6)
    ids, alpha = m.generate(src, 6, bos_id=1, eos_id=2)
    assert ids.shape[0] == 1 and 1 <= ids.shape[1] <= 6
    assert alpha.shape == (1, ids.shape[1], 4)
    np.testing.assert_allclose(alpha.sum(-1), 1.0, atol=1e-5)


def test_reference_translation_by_hand():
    lp = LanguagePair(seed=0)
    n, a, v, art = lp.noun, lp.adjective, lp.verb, lp.article
    g = lp.gender
    src = "the big dog sees a cat near the old trees".split()
    expected = [
        n["dog"], f"{a['big']}-{g['dog']}", f"{art['the']}-{g['dog']}",
        n["cat"], f"{art['a']}-{g['cat']}",
        n["tree"] + "i", f"{a['old']}-pl", f"{art['the']}-pl", lp.place,
        f"{v['see']}-sg",
    ]  # fmt: skip
    assert lp.translate(src) == expected
    plural_subject = "the dogs see a cat".split()
    assert lp.translate(plural_subject)[-1] == f"{v['see']}-pl"
    with pytest.raises(ValueError, match="not a sentence"):
        lp.translate("the dog cat".split())


def test_samples_batches_and_decoding_round_trip():
    lp = LanguagePair(seed=1)
    rng = np.random.default_rng(0)
    pairs = [lp.sample(rng) for _ in range(50)]
    assert all(lp.translate(s) == t for s, t in pairs)
    assert 5 <= min(len(s) for s, _ in pairs) and max(len(s) for s, _ in pairs) <= 17
    src, mask, tgt_in, labels = lp.batch(pairs)
    for i, (s, t) in enumerate(pairs):
        assert [lp.source_vocab[j] for j in src[i][mask[i] == 1]] == s
        assert mask[i, -1] == 1  # left-padded: every sentence ends in the last column
        assert lp.decode(labels[i][labels[i] >= 0]) == t
        assert tgt_in[i, 0] == lp.target_index[BOS]
        assert labels[i][labels[i] >= 0][-1] == lp.target_index[EOS]
    right, rmask, _, _ = lp.batch(pairs, pad_side="right")
    assert (rmask[:, 0] == 1).all()
    with pytest.raises(ValueError, match="pad_side"):
        lp.batch(pairs, pad_side="middle")
