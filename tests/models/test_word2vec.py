"""word2vec's data pipeline and queries, each against an independent statement of what it must
be: the subsampling formula, the noise distribution by counting, the training pairs by brute
force, 3CosAdd on vectors built by hand; and training that learns the synthetic language."""

import numpy as np
import pytest

from tinyllm.data.word_grammar import COUNTRIES, PEOPLE, ROLES, WordGrammar
from tinyllm.models.word2vec import Word2Vec, analogy_accuracy, neighbour_class_precision

TEXT = [["a", "b", "a", "c"], ["a", "d"], ["b", "a", "e", "a", "a"]]


def test_vocabulary_is_ordered_by_count_and_min_count_drops_rare_words():
    m = Word2Vec(min_count=2).build_vocab(TEXT)
    assert m.index_to_key == ["a", "b"]  # a: 6, b: 2; c, d, e once
    assert list(m.counts) == [6, 2]


def test_keep_probability_is_the_c_codes_formula():
    m = Word2Vec(sample=0.1).build_vocab(TEXT)
    f = np.array([6, 2, 1, 1, 1]) / 11
    expected = np.minimum(1, (np.sqrt(f / 0.1) + 1) * 0.1 / f)
    np.testing.assert_allclose(m.keep_probability(), expected)
    assert m.keep_probability()[0] < 1  # "a" is frequent enough to be thinned
    assert (Word2Vec(sample=0).build_vocab(TEXT).keep_probability() == 1).all()


@pytest.mark.parametrize("exponent", [0.75, 0.0, 1.0])
def test_noise_words_follow_count_to_the_power(exponent):
    m = Word2Vec(ns_exponent=exponent).build_vocab(TEXT)
    draws = m.noise_words(200_000, np.random.default_rng(0))
    freq = np.bincount(draws, minlength=5) / draws.size
    p = np.array([6, 2, 1, 1, 1], dtype=float) ** exponent
    np.testing.assert_allclose(freq, p / p.sum(), atol=0.005)


def _brute_force_pairs(ids, sentence, window, seed):
    """Every (centre, context) position pair: centre by centre, offsets −b … −1, 1 … b."""
    rng = np.random.default_rng(seed)
    rng.random(len(ids))  # the subsampling draw (sample=0 keeps every token)
    reach = rng.integers(1, window + 1, size=len(ids))
    pairs = []
    for i in range(len(ids)):
        for o in [*range(-reach[i], 0), *range(1, reach[i] + 1)]:
            j = i + o
            if 0 <= j < len(ids) and sentence[j] == sentence[i]:
                pairs.append((i, j))
    return pairs


@pytest.mark.parametrize("sg", [True, False])
def test_examples_are_the_window_pairs(sg):
    m = Word2Vec(sample=0, window=3, sg=sg).build_vocab(TEXT)
    ids, sentence = m.encode(TEXT)
    inputs, offsets, targets, at, kept = m.examples(ids, sentence, np.random.default_rng(7))
    pairs = _brute_force_pairs(ids, sentence, 3, seed=7)
    assert kept == len(ids)
    if sg:
        assert list(zip(inputs, targets)) == [(ids[i], ids[j]) for i, j in pairs]
        assert list(at) == [i for i, _ in pairs]
    else:
        centres = sorted({i for i, _ in pairs})
        assert list(targets) == [ids[i] for i in centres] and list(at) == centres
        for e, c in enumerate(centres):
            got = list(inputs[offsets[e] : offsets[e + 1]])
            assert got == [ids[j] for i, j in pairs if i == c]


def test_same_seed_same_vectors_other_seed_other_vectors():
    text = WordGrammar().sentences(500, seed=1)
    a = Word2Vec(vector_size=8, epochs=1, seed=4)
    b = Word2Vec(vector_size=8, epochs=1, seed=4)
    c = Word2Vec(vector_size=8, epochs=1, seed=5)
    assert a.train(text) == b.train(text)
    c.train(text)
    assert np.array_equal(a.vectors, b.vectors) and not np.allclose(a.vectors, c.vectors)


def test_analogy_and_neighbours_on_hand_made_vectors():
    words = ["king", "queen", "man", "woman", "apple", "pear"]
    m = Word2Vec(vector_size=3).build_vocab([words])
    rows = {
        "king": [1, 1, 0],
        "queen": [1, -1, 0],
        "man": [0.2, 1, 0],
        "woman": [0.2, -1, 0],
        "apple": [0, 0.1, 1],
        "pear": [0, -0.1, 1],
    }
    for w, v in rows.items():
        m.vectors[m.key_to_index[w]] = v
    # queen − king + man (unit vectors) points along −y: woman; the question words excluded
    assert m.analogy("king", "queen", "man")[0][0] == "woman"
    assert [w for w, _ in m.most_similar("king", 2)] == ["man", "apple"]
    assert m.similarity("king", "queen") == pytest.approx(0.0)
    # nearest neighbours: king→man, queen→woman, man→king, woman→queen, apple↔pear; with pear
    # mislabelled a person, apple's and pear's neighbours miss: 4 of 6 words hit
    classes = {"king": "p", "queen": "p", "man": "p", "woman": "p", "apple": "f", "pear": "p"}
    assert neighbour_class_precision(m, classes, k=1) == pytest.approx(4 / 6)
    assert (
        analogy_accuracy(m, [("king", "queen", "man", "woman"), ("man", "king", "woman", "pear")])
        == 0.5
    )


@pytest.mark.parametrize("sg", [True, False])
def test_training_learns_the_classes_and_relations_of_the_grammar(sg):
    grammar = WordGrammar(seed=0)
    text = grammar.sentences(15_000, seed=0)
    untrained = Word2Vec(vector_size=32, seed=0).build_vocab(text)
    model = Word2Vec(vector_size=32, sg=sg, epochs=4, seed=0)
    losses = model.train(text)
    assert losses[-1] < losses[0]
    assert analogy_accuracy(untrained, grammar.analogies) < 0.05
    assert neighbour_class_precision(untrained, grammar.word_class) < 0.1
    assert analogy_accuracy(model, grammar.analogies) > 0.9
    assert neighbour_class_precision(model, grammar.word_class) > 0.7


def test_grammar_lists_every_analogy_once():
    g = WordGrammar()
    n = len(COUNTRIES)
    pairs = len(ROLES) * (len(ROLES) - 1)
    assert len(g.analogies) == pairs * n * (n - 1) + len(PEOPLE) * (len(PEOPLE) - 1)
    assert len(set(g.analogies)) == len(g.analogies)
    assert all(w in g.word_class for q in g.analogies for w in q)
    marks = [w for ws in g.landmark_words.values() for w in ws]
    assert len(set(marks)) == len(marks) and not set(marks) & set(g.word_class)
    assert g.sentences(50, seed=3) == g.sentences(50, seed=3)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="window"):
        Word2Vec(window=0)
    with pytest.raises(ValueError, match="alpha"):
        Word2Vec(alpha=float("nan"))
    with pytest.raises(TypeError, match="sentence 1"):
        Word2Vec().build_vocab([["a"], "b c"])
    with pytest.raises(TypeError, match="one str"):
        Word2Vec().train("a b c")
    with pytest.raises(ValueError, match="min_count=3"):
        Word2Vec(min_count=3).build_vocab(TEXT[:1])
    m = Word2Vec().build_vocab(TEXT)
    with pytest.raises(KeyError, match="'zebra'"):
        m.most_similar("zebra")
    with pytest.raises(RuntimeError, match="no vocabulary"):
        Word2Vec().most_similar("a")
    with pytest.raises(ValueError, match="share"):
        WordGrammar(share=(1, -1, 0))


def test_precision_by_class_averages_to_the_overall_precision_when_classes_are_equal_sized():
    m = Word2Vec(vector_size=2).build_vocab([["a", "b", "c", "d"]])
    m.vectors[:] = [[1, 0.1], [1, -0.1], [-1, 0.1], [0.2, 1]]
    classes = {"a": "x", "b": "x", "c": "y", "d": "y"}
    # a↔b hit; c's nearest is d (cos −0.1; a and b are near −1): hit; d's nearest is a: miss
    assert neighbour_class_precision(m, classes, k=1, by_class=True) == {"x": 1.0, "y": 0.5}
    assert neighbour_class_precision(m, classes, k=1) == 0.75
