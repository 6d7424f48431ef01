"""Corpora and batch builders.

Truths used: the definitions (y is x shifted by one; inputs + targets give back the sequence),
BERT's 15% / 80-10-10 rule checked statistically with tolerances of five binomial standard
deviations, T5's counting formulas worked by hand, and the uniformity of random compositions.
"""

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyllm.data.batches import (
    IGNORE_INDEX,
    get_batch,
    get_mlm_batch,
    get_span_corruption_batch,
    make_mlm_batch,
    mask_tokens,
    random_segmentation,
    random_spans_noise_mask,
    span_corrupt,
    span_corruption_lengths,
    span_counts,
)
from tinyllm.data.bpe import ENDOFTEXT, ByteLevelBPE
from tinyllm.data.corpus import (
    SKIP_DIRS,
    Corpus,
    load_corpus,
    split_train_val,
    stdlib_dir,
    stdlib_files,
    stdlib_text,
    tokenize_corpus,
)


def within(observed, expected, n, sigmas=5.0):
    """|observed fraction - p| <= sigmas * sqrt(p(1-p)/n): a binomial proportion test."""
    return abs(observed - expected) <= sigmas * np.sqrt(expected * (1 - expected) / n)


# ---- corpora ----------------------------------------------------------------------------------


def test_stdlib_files_are_filtered_and_deterministically_ordered():
    files = stdlib_files()
    assert len(files) > 100 and files == stdlib_files()
    root = stdlib_dir()
    relative = [f.relative_to(root).as_posix() for f in files]
    assert all(r.endswith(".py") for r in relative)
    assert not any(set(r.split("/")[:-1]) & SKIP_DIRS for r in relative)
    keys = [(zlib.crc32(r.encode()), r) for r in relative]
    assert keys == sorted(keys)


def test_stdlib_text_respects_budget_and_line_boundaries():
    text = stdlib_text(200_000)
    size = len(text.encode("utf-8"))
    assert 150_000 < size <= 200_000 and text.endswith("\n")
    first = stdlib_files()[0].read_text(encoding="utf-8")
    assert text.startswith(first.rstrip("\n"))
    assert stdlib_text(200_000) == text


def test_load_corpus_stdlib_split():
    corpus = load_corpus(max_bytes=300_000, val_fraction=0.1)
    whole = stdlib_text(300_000)
    assert corpus.train + corpus.val == whole
    assert corpus.train.endswith("\n")  # val starts at a line start
    assert abs(len(corpus.val) / len(whole) - 0.1) < 0.01
    assert load_corpus(max_bytes=300_000) == corpus


def test_load_corpus_from_file(tmp_path):
    path = tmp_path / "t.txt"
    lines = [f"line {i} ünïcödé\n" for i in range(100)]
    path.write_text("".join(lines), encoding="utf-8")
    corpus = load_corpus(path, max_bytes=None, val_fraction=0.2)
    assert corpus.train == "".join(lines[:80]) and corpus.val == "".join(lines[80:])
    # a byte budget that ends inside the two-byte "ü" drops the half character
    small = load_corpus(path, max_bytes=len("line 0 ü".encode()) - 1, val_fraction=0.0)
    assert small.train == "line 0 " and small.val == ""


def test_load_corpus_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_corpus(tmp_path / "nope.txt")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"abc\xff\xfedef\n")
    with pytest.raises(ValueError, match="not UTF-8"):
        load_corpus(bad)
    with pytest.raises(ValueError, match="val_fraction"):
        split_train_val("abc", 1.0)


def test_tokenize_corpus_round_trips():
    corpus = load_corpus(max_bytes=50_000)
    tok = ByteLevelBPE().train(corpus.train, 300, special_tokens=[ENDOFTEXT])
    train_ids, val_ids = tokenize_corpus(Corpus("t", corpus.train + ENDOFTEXT, corpus.val), tok)
    assert train_ids.dtype == val_ids.dtype == np.int64 and train_ids.ndim == 1
    assert tok.decode(train_ids) == corpus.train + ENDOFTEXT  # special strings stay plain text
    assert tok.token_to_id(ENDOFTEXT) not in train_ids
    assert tok.decode(val_ids) == corpus.val


# ---- causal LM --------------------------------------------------------------------------------


def test_get_batch_shift_and_range(rng):
    data = np.arange(50)  # token i has value i: position and value coincide
    x, y = get_batch(data, 2000, 8, rng)
    assert x.shape == y.shape == (2000, 8) and x.dtype == y.dtype == np.int64
    assert np.array_equal(y, x + 1)  # y is x shifted by one
    assert np.array_equal(x, x[:, :1] + np.arange(8))  # windows are contiguous
    assert set(x[:, 0]) == set(range(50 - 8))  # every start 0 .. len-T-1 occurs


def test_get_batch_is_reproducible_and_checks_length():
    data = np.arange(100)
    a = get_batch(data, 4, 10, np.random.default_rng(7))
    b = get_batch(data, 4, 10, np.random.default_rng(7))
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    with pytest.raises(ValueError, match="fewer than one window"):
        get_batch(np.arange(8), 1, 8, np.random.default_rng(0))
    with pytest.raises(ValueError, match="1-D integer"):
        get_batch(np.zeros(100), 1, 8, np.random.default_rng(0))


# ---- masked LM --------------------------------------------------------------------------------

V, CLS, SEP, PAD, MASK = 60, 0, 1, 2, 3
SPECIAL = {CLS, SEP, PAD, MASK}


def test_mask_tokens_proportions(rng):
    ids = rng.integers(4, V, size=(400, 500))
    ids[:, 0], ids[:, -1], ids[:, 250:260] = CLS, SEP, PAD  # specials at known places
    inputs, labels = mask_tokens(ids, rng, mask_id=MASK, vocab_size=V, special_ids=SPECIAL)
    special = np.isin(ids, list(SPECIAL))
    chosen = labels != IGNORE_INDEX

    assert not chosen[special].any()  # specials never chosen ...
    assert np.array_equal(inputs[special], ids[special])  # ... nor changed
    assert np.array_equal(labels[chosen], ids[chosen])  # labels: the original ids
    assert np.array_equal(inputs[~chosen], ids[~chosen])  # unchosen tokens untouched

    n = int((~special).sum())
    assert within(chosen.sum() / n, 0.15, n)
    k = int(chosen.sum())
    masked = inputs[chosen] == MASK
    kept = inputs[chosen] == ids[chosen]
    other = ~masked & ~kept
    n_ordinary = V - len(SPECIAL)
    # 10% are replaced by a uniform draw from the ordinary ids, which is the original 1/n times
    assert within(masked.mean(), 0.8, k)
    assert within(other.mean(), 0.1 * (1 - 1 / n_ordinary), k)
    assert within(kept.mean(), 0.1 + 0.1 / n_ordinary, k)
    assert not np.isin(inputs[chosen][other], list(SPECIAL)).any()  # random ids are ordinary
    # the random replacements cover the ordinary vocabulary
    assert set(inputs[chosen][other]) == set(range(4, V))


def test_make_mlm_batch_padding(rng):
    seqs = [list(range(10, 15)), list(range(20, 22)), []]
    inputs, labels, attention = make_mlm_batch(
        seqs,
        rng,
        cls_id=CLS,
        sep_id=SEP,
        pad_id=PAD,
        mask_id=MASK,
        vocab_size=V,
        mlm_probability=1.0,
    )  # choose every ordinary token
    assert inputs.shape == labels.shape == attention.shape == (3, 7)
    assert attention.tolist() == [[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5]
    assert labels.tolist() == [
        [-100, 10, 11, 12, 13, 14, -100],
        [-100, 20, 21, -100, -100, -100, -100],
        [-100] * 7,
    ]
    assert inputs[1, 0] == CLS and inputs[1, 3] == SEP and (inputs[1, 4:] == PAD).all()
    with pytest.raises(ValueError, match="length=4"):
        make_mlm_batch(
            seqs, rng, cls_id=CLS, sep_id=SEP, pad_id=PAD, mask_id=MASK, vocab_size=V, length=4
        )


def test_get_mlm_batch(rng):
    data = 4 + np.arange(1000) % (V - 4)  # ordinary ids that count up, wrapping around
    inputs, labels, attention = get_mlm_batch(
        data, 8, 16, rng, cls_id=CLS, sep_id=SEP, pad_id=PAD, mask_id=MASK, vocab_size=V
    )
    assert inputs.shape == (8, 16) and inputs.dtype == np.int64
    assert (inputs[:, 0] == CLS).all() and (inputs[:, -1] == SEP).all() and attention.all()
    # with the labels put back, each row between [CLS] and [SEP] is a window of the data
    restored = np.where(labels != IGNORE_INDEX, labels, inputs)[:, 1:-1] - 4
    assert (np.diff(restored, axis=1) % (V - 4) == 1).all()


# ---- span corruption --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "length, noise, spans",
    [
        (100, 15, 5),  # 15 = 100 x 0.15;  5 = 15 / 3
        (128, 19, 6),  # 19.2 -> 19;  6.33 -> 6
        (512, 77, 26),  # 76.8 -> 77;  25.67 -> 26
        (20, 3, 1),  # 3;  1
        (2, 1, 1),  # 0.3 -> 0, clamped to at least 1 noise token and 1 span
    ],
)
def test_span_counts_by_hand(length, noise, spans):
    assert span_counts(length) == (noise, spans)
    assert span_corruption_lengths(length) == (length - noise + spans, noise + spans + 1)


@given(st.integers(1, 60), st.data())
def test_random_segmentation_is_a_composition(n, data):
    k = data.draw(st.integers(1, n))
    lengths = random_segmentation(n, k, np.random.default_rng(data.draw(st.integers(0, 99))))
    assert len(lengths) == k and lengths.sum() == n and (lengths >= 1).all()


def test_noise_mask_structure_density_and_span_length(rng):
    length = 128
    n_noise, n_spans = span_counts(length)
    for _ in range(50):
        mask = random_spans_noise_mask(length, rng)
        starts = np.flatnonzero(np.diff(mask.astype(int)) == 1) + 1
        assert mask.sum() == n_noise and len(starts) == n_spans
        assert not mask[0] and mask[-1]  # kept first; T5's last span is always noise
    assert abs(n_noise - 0.15 * length) <= 0.5  # noise fraction = density
    assert abs(n_noise / n_spans - 3.0) <= 1.5 / n_spans  # mean span length = 3


def test_noise_masks_are_uniform_over_compositions():
    # L=10, density 0.3, mean span 1.5: N=3 noise tokens in S=2 spans, 7 kept in 2 stretches.
    # Compositions: 3 into 2 parts -> 2 ways, 7 into 2 parts -> 6 ways: 12 masks, equally likely.
    rng = np.random.default_rng(3)
    n = 6_000
    counts = {}
    for _ in range(n):
        key = random_spans_noise_mask(10, rng, 0.3, 1.5).tobytes()
        counts[key] = counts.get(key, 0) + 1
    assert len(counts) == 12
    assert all(within(c / n, 1 / 12, n) for c in counts.values())


SENTINELS = list(range(1000, 1100))


def reconstruct(inputs, targets):
    """Put each span from the targets back in place of its sentinel in the inputs."""
    spans, current = {}, None
    for t in targets:
        if t in SENTINELS:
            current = t
            spans[current] = []
        else:
            spans[current].append(t)
    out = []
    for t in inputs:
        out.extend(spans[t] if t in SENTINELS else [t])
    return out


@settings(max_examples=50)
@given(
    st.lists(st.integers(0, 999), min_size=2, max_size=300),
    st.integers(0, 2**32 - 1),
    st.sampled_from([(0.15, 3.0), (0.5, 2.0), (0.05, 1.0)]),
)
def test_span_corruption_reconstructs_exactly(tokens, seed, params):
    rng = np.random.default_rng(seed)
    mask = random_spans_noise_mask(len(tokens), rng, *params)
    inputs, targets = span_corrupt(np.array(tokens), mask, SENTINELS)
    assert (len(inputs), len(targets)) == span_corruption_lengths(len(tokens), *params)
    assert reconstruct(inputs.tolist(), targets.tolist()) == tokens
    sentinels_in = [t for t in inputs if t in SENTINELS]
    assert sentinels_in == SENTINELS[: len(sentinels_in)]  # <extra_id_0>, <extra_id_1>, ...
    assert targets[-1] == SENTINELS[len(sentinels_in)]  # closing sentinel


def test_span_corruption_paper_example():
    # Raffel et al. (2020), Figure 2, with words as tokens and <X>, <Y>, <Z> as sentinels
    words = "Thank you for inviting me to your party last week .".split()
    mask = np.array([w in ("for", "inviting", "last") for w in words])
    inputs, targets = span_corrupt(np.arange(len(words)), mask, [100, 101, 102])
    show = {100: "<X>", 101: "<Y>", 102: "<Z>"}
    assert [
        show.get(i, words[i] if i < 100 else i) for i in inputs
    ] == "Thank you <X> me to your party <Y> week .".split()
    assert [
        show.get(i, words[i] if i < 100 else i) for i in targets
    ] == "<X> for inviting <Y> last <Z>".split()


def test_get_span_corruption_batch(rng):
    data = np.arange(5000)
    inputs, targets = get_span_corruption_batch(
        data, 6, 128, rng, sentinel_ids=SENTINELS, eos_id=9999
    )
    li, lt = span_corruption_lengths(128)
    assert inputs.shape == (6, li + 1) and targets.shape == (6, lt + 1)
    assert inputs.dtype == targets.dtype == np.int64
    assert (inputs[:, -1] == 9999).all() and (targets[:, -1] == 9999).all()
    for i, t in zip(inputs, targets):
        seq = reconstruct(i[:-1].tolist(), t[:-1].tolist())
        assert seq == list(range(seq[0], seq[0] + 128))  # a contiguous window of the data
    with pytest.raises(ValueError, match="sentinel ids"):
        get_span_corruption_batch(data, 1, 128, rng, sentinel_ids=SENTINELS[:3])
