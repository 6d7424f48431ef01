"""Byte-level BPE: pre-splitting, training, encoding/decoding, special tokens, files.

The truths stated here: GPT-2's split rule applied by hand; the merge sequence of Sennrich et
al.'s example worked out by hand; the definition of BPE training and of merge replay (the slow
reference implementations); and exact round trips.
"""

import hashlib
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyllm.data import (
    ENDOFTEXT,
    MASK,
    ByteLevelBPE,
    TokenizerFileError,
    learn_merges,
    learn_merges_reference,
    pre_split,
    pre_split_reference,
    standard_special_tokens,
)
from tinyllm.data.bpe_merge import bpe_merge, bpe_merge_reference
from tinyllm.data.bpe_train import merge_pair
from tinyllm.data.corpus import stdlib_text

# Any str, lone surrogates included (hypothesis leaves out category Cs unless asked), mixed with
# pieces that stress the splitter and the byte level.
TRICKY = [
    "\r\n",
    "\x00",
    "🙂",
    "👩\u200d💻",
    "日本語",
    "e\u0301",
    " 's",
    "'ll",
    "   ",
    "\t\n ",
    "\ud800",
    "\udcff",
    "²",
    "x = 42;",
    ENDOFTEXT[:5],
    "\ufffd",
    "\U0010ffff",
]
any_char = st.one_of(st.characters(), st.characters(categories=["Cs"]))
any_text = st.lists(st.one_of(st.text(any_char), st.sampled_from(TRICKY)), max_size=12).map("".join)


# ---- pre-split --------------------------------------------------------------------------------

# Each expectation follows from GPT-2's alternatives (contraction | ?letters | ?digits |
# ?other | spaces-not-before-a-non-space | spaces), worked out by hand.
HAND_SPLITS = [
    ("Hello world", ["Hello", " world"]),
    ("I'm here", ["I", "'m", " here"]),
    ("They'll've", ["They", "'ll", "'ve"]),
    ("HE'S", ["HE", "'", "S"]),  # contractions are lower case only
    ("x = 42;", ["x", " =", " 42", ";"]),
    ("3.14", ["3", ".", "14"]),
    ("a   b", ["a", "  ", " b"]),  # the last space goes to the word
    ("a\n\nb", ["a", "\n", "\n", "b"]),  # "\n" cannot lead a word: split singly
    ("def f():\n    return 1", ["def", " f", "():", "\n   ", " return", " 1"]),
    ("trailing  ", ["trailing", "  "]),  # at the end, the whole run
    ("\t\tx", ["\t", "\t", "x"]),
    ("hello!!! 'quoted'", ["hello", "!!!", " '", "quoted", "'"]),
    ("a_b", ["a", "_", "b"]),  # underscore is not a letter
    ("x²", ["x", "²"]),  # superscript two is a numeral (No)
    ("日本語テキスト", ["日本語テキスト"]),  # all letters (Lo)
    ("cafe\u0301", ["cafe", "\u0301"]),  # a combining mark is "other"
    ("🙂 ok", ["🙂", " ok"]),
    ("", []),
]


@pytest.mark.parametrize("text, expected", HAND_SPLITS)
def test_pre_split_hand_examples(text, expected):
    assert pre_split_reference(text) == expected
    assert pre_split(text) == expected


@given(any_text)
def test_pre_split_fast_equals_reference_and_loses_nothing(text):
    chunks = pre_split(text)
    assert chunks == pre_split_reference(text)
    assert "".join(chunks) == text
    assert all(chunks)


# ---- training ---------------------------------------------------------------------------------

# Sennrich et al. (2016)'s toy vocabulary, without their end-of-word symbol. Pair counts worked
# by hand; ties go to the lexicographically smaller pair:
#  1. e s  : 9 (newest 6 + widest 3), ties with s t : 9;  "e" < "s"
#  2. es t : 9
#  3. l o  : 7 (low 5 + lower 2), ties with o w : 7
#  4. lo w : 7
#  5. e w  : 6, ties with n e : 6 and w est : 6;  "e" < "n" < "w"
#  6. ew est : 6, ties with n ew : 6
#  7. n ewest : 6
#  8. d est : 3, ties with i d, w i (widest);   "d" < "i" < "w"
#  9. i dest : 3, ties with w i
# 10. w idest : 3
# 11. e r  : 2, ties with low e : 2 (lower)
# 12. low er : 2        -- now every word is one token; training stops
SENNRICH = {b"low": 5, b"lower": 2, b"newest": 6, b"widest": 3}
SENNRICH_MERGES = [
    (b"e", b"s"),
    (b"es", b"t"),
    (b"l", b"o"),
    (b"lo", b"w"),
    (b"e", b"w"),
    (b"ew", b"est"),
    (b"n", b"ewest"),
    (b"d", b"est"),
    (b"i", b"dest"),
    (b"w", b"idest"),
    (b"e", b"r"),
    (b"low", b"er"),
]


@pytest.mark.parametrize("learn", [learn_merges_reference, learn_merges])
def test_hand_worked_example(learn):
    assert learn(SENNRICH, 100) == SENNRICH_MERGES  # stops when no pair is left
    assert learn(SENNRICH, 4) == SENNRICH_MERGES[:4]


def test_merge_pair_is_left_to_right_without_overlap():
    assert merge_pair([b"a", b"a", b"a"], b"a", b"a") == [b"aa", b"a"]
    assert merge_pair([b"a", b"a", b"a", b"a"], b"a", b"a") == [b"aa", b"aa"]
    assert merge_pair([b"x", b"a", b"b"], b"a", b"b") == [b"x", b"ab"]


# small alphabets make many repeated pairs and ties: the hard cases for the incremental counts
word_counts = st.dictionaries(
    st.text("abcd", min_size=1, max_size=8).map(str.encode),
    st.integers(1, 20),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40)
@given(word_counts, st.integers(0, 40))
def test_incremental_trainer_equals_reference(counts, n_new):
    assert learn_merges(counts, n_new) == learn_merges_reference(counts, n_new)


@pytest.fixture(scope="module")
def corpus():
    return stdlib_text(300_000)


@pytest.fixture(scope="module")
def tok(corpus):
    return ByteLevelBPE().train(corpus, 600, special_tokens=standard_special_tokens(8))


def test_training_is_deterministic_and_sized(corpus, tok):
    again = ByteLevelBPE().train(corpus, 600, special_tokens=standard_special_tokens(8))
    assert again.merges == tok.merges
    assert tok.vocab_size == 600
    assert len(tok.merges) == 600 - 256 - len(standard_special_tokens(8))
    assert tok.special_tokens[ENDOFTEXT] == 600 - 13  # specials take the last ids, in order


def test_training_ignores_special_strings_in_text():
    plain = ByteLevelBPE().train(["ab ab ab", "cd cd"], 260, special_tokens=[ENDOFTEXT])
    joined = ByteLevelBPE().train(f"ab ab ab{ENDOFTEXT}cd cd", 260, special_tokens=[ENDOFTEXT])
    assert joined.merges == plain.merges
    assert not any(b"|" in a + b for a, b in joined.merges)


def test_vocab_size_too_small_is_an_error():
    with pytest.raises(ValueError, match="vocab_size"):
        ByteLevelBPE().train("abc", 257, special_tokens=["[A]", "[B]"])


def test_encoding_reproduces_training_segmentation(corpus, tok):
    # Training applied each merge to every word in order; encoding by merge rank must end in
    # the same tokens. Replay the merges on each word with merge_pair, the training step itself.
    words = sorted(set(pre_split(corpus[:20_000])))
    for word in words:
        tokens = [bytes([b]) for b in word.encode()]
        for a, b in tok.merges:
            tokens = merge_pair(tokens, a, b)
        assert [tok.id_to_bytes(i) for i in tok.encode_ordinary(word)] == tokens


# ---- encoding / decoding ----------------------------------------------------------------------


@given(st.lists(st.integers(0, 5), max_size=60), st.randoms(use_true_random=False))
def test_fast_merge_replay_equals_reference(ids, random):
    # random ranks over a small alphabet: pairs of ids 0..5 merge into new ids 6, 7, ...
    pairs = [(a, b) for a in range(8) for b in range(8)]
    random.shuffle(pairs)
    ranks = {p: (r, 6 + r) for r, p in enumerate(pairs[:20]) if max(p) < 6 + r}
    assert bpe_merge(ids, ranks) == bpe_merge_reference(ids, ranks)


@given(any_text)
def test_round_trip_any_str(tok, text):
    ids = tok.encode(text, disallowed_special=())
    assert tok.decode(ids) == text
    assert all(not tok.is_special_id(i) for i in ids)


@given(st.binary(max_size=200))
def test_round_trip_any_bytes(tok, data):
    assert tok.decode_bytes(tok.encode_bytes(data)) == data


def test_surrogates_and_specific_strings_round_trip(tok):
    for text in ["\ud800", "a\udcffb", "\ud83d\ude00", "\x00\r\n", "🙂日本語\u0301", ""]:
        assert tok.decode(tok.encode(text)) == text


def test_decode_never_raises_on_invalid_utf8(tok):
    ids = [0xE6, 0x97, 0xFF, ord("a"), 0xC3]  # truncated 3-byte char, invalid byte, lone lead
    assert tok.decode(ids) == "\ufffd\ufffda\ufffd"  # maximal invalid subparts -> U+FFFD each
    assert tok.decode_bytes(ids) == bytes([0xE6, 0x97, 0xFF, ord("a"), 0xC3])


def test_decode_rejects_ids_outside_vocabulary(tok):
    for bad in (-1, tok.vocab_size):
        with pytest.raises(ValueError, match="outside the vocabulary"):
            tok.decode([1, bad])


def test_long_chunk_encodes_and_compresses(tok):
    text = "a" * 20_000 + " " * 5_000  # one huge chunk each: the O(n log n) replay
    ids = tok.encode(text)
    assert tok.decode(ids) == text and len(ids) < len(text)


def test_encode_batch_and_numpy_ids(tok):
    texts = ["def f(x):", "    return x\n"]
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]
    assert tok.decode(np.array(tok.encode(texts[0]))) == texts[0]


def test_merges_spelling_an_existing_token_share_its_id():
    tok = ByteLevelBPE([(b"a", b"b"), (b"b", b"c"), (b"ab", b"c"), (b"a", b"bc")])
    assert tok.vocab_size == 256 + 3  # ab, bc, abc
    assert tok.token_to_id(b"abc") == 258
    assert tok.encode("abc") == [258]
    assert tok.decode([ord("a"), 257]) == "abc"


# ---- special tokens ---------------------------------------------------------------------------


def test_special_tokens_are_atomic_and_opt_in(tok):
    eot, mask = tok.token_to_id(ENDOFTEXT), tok.token_to_id(MASK)
    text = f"x = 1{ENDOFTEXT}y[MASK]"
    ids = tok.encode(text, allowed_special="all")
    assert ids.count(eot) == 1 and ids.count(mask) == 1
    assert tok.decode(ids) == text
    # only the allowed ones become special ids; the rest is an error by default ...
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        tok.encode(text, allowed_special={ENDOFTEXT})
    with pytest.raises(ValueError, match="endoftext"):
        tok.encode(text)
    # ... or plain text on request, which never yields a special id
    plain = tok.encode(text, disallowed_special=())
    assert not any(tok.is_special_id(i) for i in plain)
    assert tok.decode(plain) == text
    with pytest.raises(ValueError, match="not special tokens"):
        tok.encode("x", allowed_special={"<nope>"})


def test_add_special_tokens_and_lookup(tok):
    t = ByteLevelBPE(tok.merges, [ENDOFTEXT])
    n = t.vocab_size
    assert t.add_special_tokens(["[NEW]", ENDOFTEXT]) == [n, n - 1]
    assert t.vocab_size == n + 1
    assert t.token_to_id("[NEW]") == n and t.id_to_token(n) == "[NEW]"
    assert t.token_to_id(" ") == 32 and t.id_to_bytes(32) == b" "
    with pytest.raises(KeyError):
        t.token_to_id("surely not a single token in this vocabulary")


# ---- files ------------------------------------------------------------------------------------


def test_save_load_round_trip(tok, tmp_path):
    path = tmp_path / "tok.txt"
    tok.save(path)
    loaded = ByteLevelBPE.load(path)
    assert loaded.merges == tok.merges
    assert loaded.special_tokens == tok.special_tokens
    text = "class A:\n    def __init__(self):\n        pass  # 🙂"
    assert loaded.encode(text) == tok.encode(text)
    assert [p.name for p in tmp_path.iterdir()] == ["tok.txt"]  # no temp file left behind


def _seal(body: str) -> bytes:
    """`body` with a correct checksum line appended, as a careful forger would write it — so
    that the structural checks behind the checksum are what the test exercises."""
    raw = (body if body.endswith("\n") else body + "\n").encode("ascii")
    return raw + f"sha256 {hashlib.sha256(raw).hexdigest()}\n".encode()


def _corrupt(tmp_path, tok, edit):
    path = tmp_path / "tok.txt"
    tok.save(path)
    body = path.read_text()
    body = body[: body.rindex("sha256 ")]  # the lines the checksum covers
    path.write_bytes(_seal(edit(body.split("\n"))))
    return path


@pytest.mark.parametrize(
    "edit, line, message",
    [
        (lambda L: "\n".join(["tinyllm-bpe v9"] + L[1:]), 1, "header"),
        (lambda L: "\n".join(L[:2] + ["6c zz"] + L[3:]), 3, "not hexadecimal"),
        (lambda L: "\n".join(L[:2] + ["6c"] + L[3:]), 3, "two hex tokens"),
        (lambda L: "\n".join(L[:2] + ["6c6c6c6c 6f"] + L[3:]), 3, "not made by the merges"),
        (lambda L: "\n".join(L[:2] + [L[2], L[2]] + L[4:]), 4, "appears twice"),
        (lambda L: "\n".join(L[: len(L) // 2]), None, "truncated"),
        (lambda L: "\n".join(L[:-2]), None, "truncated"),  # "end" line missing
        (lambda L: "\n".join(L[:-1] + ["extra", ""]), None, "after 'end'"),
        (lambda L: "\n".join(L[:1] + ["merges x"] + L[2:]), 2, "merges <count>"),
    ],
)
def test_corrupt_files_name_file_and_line(tok, tmp_path, edit, line, message):
    path = _corrupt(tmp_path, tok, edit)
    with pytest.raises(TokenizerFileError, match=message) as info:
        ByteLevelBPE.load(path)
    assert str(path) in str(info.value)
    if line is not None:
        assert f"line {line}:" in str(info.value)


def test_non_ascii_file_is_rejected(tmp_path):
    path = tmp_path / "bad.txt"
    raw = b"tinyllm-bpe v2\n\xff\n"
    path.write_bytes(raw + f"sha256 {hashlib.sha256(raw).hexdigest()}\n".encode())
    with pytest.raises(TokenizerFileError, match="line 2"):
        ByteLevelBPE.load(path)


def test_an_edit_that_keeps_the_structure_is_caught_by_the_checksum(tok, tmp_path):
    """Changing one merge's second token to another known byte is structurally valid — without
    the checksum this file would load as a different tokenizer."""
    path = tmp_path / "tok.txt"
    tok.save(path)
    raw = bytearray(path.read_bytes())
    first_merge = raw.index(b"\n", raw.index(b"merges")) + 1  # line 3: "<hex a> <hex b>"
    end = raw.index(b"\n", first_merge)
    a, b = raw[first_merge:end].split(b" ")
    if len(b) == 2:  # a single byte: make it the neighbouring byte, still a known token
        raw[first_merge:end] = a + b" " + f"{(int(b, 16) ^ 1):02x}".encode()
    else:
        raw[first_merge:end] = a + b" 41"
    path.write_bytes(bytes(raw))
    with pytest.raises(TokenizerFileError, match="checksum mismatch") as info:
        ByteLevelBPE.load(path)
    assert str(path) in str(info.value)


def test_a_first_format_file_is_refused_unless_asked_for(tok, tmp_path):
    path = tmp_path / "old.txt"
    body = tok.to_bytes().decode("ascii")
    body = body[: body.rindex("sha256 ")].replace("tinyllm-bpe v2", "tinyllm-bpe v1", 1)
    path.write_text(body)  # what the first version of the format wrote
    with pytest.raises(TokenizerFileError, match="save it again") as info:
        ByteLevelBPE.load(path)
    assert str(path) in str(info.value)
    old = ByteLevelBPE.load(path, allow_unverified_v1=True)
    assert old.merges == tok.merges and old.special_tokens == tok.special_tokens
    old.save(tmp_path / "new.txt")
    assert (tmp_path / "new.txt").read_bytes() == tok.to_bytes()


def test_to_bytes_is_the_file_and_from_bytes_reads_it(tok, tmp_path):
    tok.save(tmp_path / "t.txt")
    assert (tmp_path / "t.txt").read_bytes() == tok.to_bytes()
    back = ByteLevelBPE.from_bytes(tok.to_bytes(), source="ckpt.npz")
    assert back.merges == tok.merges and back.special_tokens == tok.special_tokens
    with pytest.raises(TokenizerFileError, match="ckpt.npz"):
        ByteLevelBPE.from_bytes(tok.to_bytes()[:-5], source="ckpt.npz")


def test_failed_save_leaves_old_file_intact(tok, tmp_path, monkeypatch):
    path = tmp_path / "tok.txt"
    path.write_text("old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        tok.save(path)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["tok.txt"]
