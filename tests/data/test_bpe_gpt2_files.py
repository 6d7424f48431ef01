"""GPT-2's tokenizer files (vocab.json + merges.txt) in tinyllm's byte-level BPE.

Truths used: a hand-written GPT-2-style fixture with ids worked out by hand (and GPT-2's
published ids for "t", "\\n" and " ": 83, 198, 220); Hugging Face `tokenizers` (a
ByteLevelBPETokenizer trained here, saved as vocab/merges) and `transformers`' GPT2Tokenizer
reading the same files; tiktoken built from the same ranks with GPT-2's regex; and the `regex`
module running GPT-2's pattern against tinyllm's pre-splitter.
"""

import json

import pytest

from tinyllm.data import ENDOFTEXT, ByteLevelBPE, TokenizerFileError, pre_split
from tinyllm.data.bpe_gpt2_files import bytes_to_unicode, text_to_token, token_to_text

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

TEXTS = [
    "Hello world, it's  a   test\n\n  x",
    "café naïve 東京 😀😀 don't we're I'LL they've",
    "   leading spaces",
    "trailing spaces   ",
    "\t\ttabs\n\n\nnewlines \u00a0nbsp \u3000ideographic",
    "numbers 12345 ²³ Ⅻ ٣ and symbols !!! ... --> ®©",
    "def f(x):\n    return x ** 2  # comment\n",
    "",
]


def corpus():
    return "\n".join(TEXTS * 3) + " the quick brown fox jumps over the lazy dog " * 5


# ---- the byte <-> character table ------------------------------------------------------------


def test_byte_table_is_gpt2s():
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[0] == "Ā"
    assert table[ord("!")] == "!" and table[ord("ÿ")] == "ÿ" and table[173] == "Ń"
    assert all(not c.isspace() and c.isprintable() for c in table.values())
    assert text_to_token("Ġthe") == b" the" and token_to_text(b"\xe6\x9d\xb1") == "æĿ±"
    assert text_to_token("x\u2603") is None


# ---- a hand-written fixture -----------------------------------------------------------------


def write_fixture(tmp_path):
    """GPT-2's id order: the 188 printable bytes first, then the 68 others, then the merges,
    then <|endoftext|>."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    others = [b for b in range(256) if b not in printable]
    chars = [chr(b) for b in printable] + [chr(256 + n) for n in range(len(others))]
    vocab = {c: i for i, c in enumerate(chars)}
    merges = ["Ġ t", "h e", "Ġt he", "l o", "lo w"]
    for m in merges:
        vocab[m.replace(" ", "")] = len(vocab)  # 256 "Ġt", 257 "he", 258 "Ġthe", 259, 260
    vocab[ENDOFTEXT] = len(vocab)  # 261
    (tmp_path / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), "utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", "utf-8")
    return tmp_path / "vocab.json", tmp_path / "merges.txt"


def test_hand_written_files_encode_to_hand_derived_ids(tmp_path):
    tok = ByteLevelBPE.from_gpt2_files(*write_fixture(tmp_path))
    assert tok.vocab_size == 262
    # GPT-2's own ids for these bytes
    assert tok.encode("t") == [83] and tok.encode("\n") == [198] and tok.encode(" ") == [220]
    # "the" -> t + he (no merge makes "the" without the space);  " low" -> Ġ + (lo + w)
    # " the" -> (Ġt) + (he) -> Ġthe;  "\n" -> Ċ;  then the special token
    text = "the low the\n" + ENDOFTEXT
    assert tok.encode(text, allowed_special="all") == [83, 257, 220, 260, 258, 198, 261]
    assert tok.decode([83, 257, 220, 260, 258, 198, 261]) == text
    assert tok.special_tokens == {ENDOFTEXT: 261} and tok.is_special_id(261)
    assert not tok.is_special_id(0)
    assert tok.token_to_id(b" the") == 258 and tok.id_to_bytes(260) == b"low"
    assert tok.id_to_bytes(0) == b"!" and tok.id_to_bytes(188) == b"\x00"
    assert tok.encode_bytes(b" the\xff") == [258, tok.token_to_id(b"\xff")]
    assert tok.decode_bytes(tok.encode_bytes(b" the\xff")) == b" the\xff"
    assert tok.id_to_token(258) == " the" and tok.id_to_token(261) == ENDOFTEXT
    with pytest.raises(ValueError, match=r"token id 262 is outside the vocabulary \[0, 262\)"):
        tok.decode([262])
    with pytest.raises(ValueError, match="special token '<|endoftext|>'"):
        tok.encode(text)  # as tiktoken's GPT-2: a special in user text is refused by default
    # as plain text: "<|" "endoftext" "|>", one byte each (id = byte − 33 for ASCII ≥ "!")
    expected = [ord(c) - 33 for c in ENDOFTEXT]
    assert tok.encode(ENDOFTEXT, disallowed_special=()) == expected


def test_gpt2_files_round_trip_with_their_ids(tmp_path):
    tok = ByteLevelBPE.from_gpt2_files(*write_fixture(tmp_path))
    (tmp_path / "out").mkdir()
    paths = tmp_path / "out" / "vocab.json", tmp_path / "out" / "merges.txt"
    tok.save_gpt2_files(*paths)
    assert json.loads(paths[0].read_text("utf-8")) == json.loads(
        (tmp_path / "vocab.json").read_text("utf-8")
    )
    assert paths[1].read_text("utf-8") == (tmp_path / "merges.txt").read_text("utf-8")
    back = ByteLevelBPE.from_gpt2_files(*paths)
    for t in TEXTS:
        assert back.encode(t) == tok.encode(t)
    new = tok.add_special_tokens(["<pad>"])
    assert new == [262] and tok.encode("<pad>", allowed_special="all") == [262]
    with pytest.raises(ValueError, match="save_gpt2_files"):
        tok.save(tmp_path / "tok.txt")  # the tinyllm format cannot hold the file's ids


def test_a_trained_tinyllm_tokenizer_writes_files_that_read_back(tmp_path):
    tok = ByteLevelBPE().train(corpus(), vocab_size=400, special_tokens=[ENDOFTEXT])
    tok.save_gpt2_files(tmp_path / "v.json", tmp_path / "m.txt")
    back = ByteLevelBPE.from_gpt2_files(tmp_path / "v.json", tmp_path / "m.txt")
    assert back.vocab_size == tok.vocab_size and back.special_tokens == tok.special_tokens
    for t in TEXTS + [ENDOFTEXT + "x"]:
        kw = dict(allowed_special="all")
        assert back.encode(t, **kw) == tok.encode(t, **kw)


@pytest.mark.parametrize(
    "vocab_edit, merges_text, match",
    [
        (lambda v: v.pop("lo"), None, r"vocab.json: ids must be 0 … 260.*unused"),
        (lambda v: v.update({"lo": 3}), None, "share the id 3"),
        (lambda v: v.update({"lo": "x"}), None, "has id 'x'"),
        (lambda v: v.pop("low") and v.pop(ENDOFTEXT), None, r"token 'low'.*has no id"),
        (None, "#version: 0.2\nĠ t\nh e e\n", r"merges.txt, line 3: a merge is two tokens"),
        (None, "Ġ t\nĠt he\n", r"merges.txt, line 2: token 'he' is not made"),
        (None, "Ġ t\nĠ t\n", r"line 2: merge 'Ġ t' appears twice"),
        (None, "Ġ t\n\nh e\n", r"line 2: empty line"),
        (None, "Ġ t\nh \u2603\n", r"line 2: '\u2603' has a character outside"),
    ],
)
def test_bad_files_name_the_file_and_line(tmp_path, vocab_edit, merges_text, match):
    vocab_path, merges_path = write_fixture(tmp_path)
    if vocab_edit is not None:
        vocab = json.loads(vocab_path.read_text("utf-8"))
        vocab_edit(vocab)
        vocab_path.write_text(json.dumps(vocab), "utf-8")
    if merges_text is not None:
        merges_path.write_text(merges_text, "utf-8")
    with pytest.raises(TokenizerFileError, match=match):
        ByteLevelBPE.from_gpt2_files(vocab_path, merges_path)


def test_a_directory_holds_the_two_files(tmp_path):
    """A Hugging Face GPT-2 directory: the model's files and the tokenizer's side by side."""
    tok = ByteLevelBPE.from_gpt2_files(*write_fixture(tmp_path))
    tok.save_gpt2_files(tmp_path / "pretrained")
    assert sorted(p.name for p in (tmp_path / "pretrained").iterdir()) == [
        "merges.txt",
        "vocab.json",
    ]
    back = ByteLevelBPE.from_gpt2_files(tmp_path / "pretrained")
    assert back.encode("the low") == tok.encode("the low") == [83, 257, 220, 260]
    with pytest.raises(FileNotFoundError, match="not a directory"):
        ByteLevelBPE.from_gpt2_files(tmp_path / "nowhere")


def test_unreadable_vocab_is_named(tmp_path):
    vocab_path, merges_path = write_fixture(tmp_path)
    vocab_path.write_text("[1, 2]")
    with pytest.raises(TokenizerFileError, match="vocab.json: expected a non-empty JSON object"):
        ByteLevelBPE.from_gpt2_files(vocab_path, merges_path)
    vocab_path.write_text("{oops")
    with pytest.raises(TokenizerFileError, match="not valid UTF-8 JSON"):
        ByteLevelBPE.from_gpt2_files(vocab_path, merges_path)
    with pytest.raises(FileNotFoundError):
        ByteLevelBPE.from_gpt2_files(tmp_path / "none.json", merges_path)


# ---- GPT-2's pre-tokenization regex ------------------------------------------------------------


def test_pre_split_is_gpt2s_regex():
    regex = pytest.importorskip("regex")
    pattern = regex.compile(GPT2_PATTERN)
    for t in TEXTS + [corpus()]:
        assert pre_split(t) == pattern.findall(t), t


# ---- against Hugging Face tokenizers / transformers and tiktoken --------------------------------


@pytest.fixture(scope="module")
def hf_files(tmp_path_factory):
    tokenizers = pytest.importorskip("tokenizers")
    hf = tokenizers.ByteLevelBPETokenizer()
    hf.train_from_iterator(
        [corpus()], vocab_size=420, min_frequency=1, special_tokens=[ENDOFTEXT], show_progress=False
    )
    d = tmp_path_factory.mktemp("hf_tok")
    hf.save_model(str(d))
    return hf, d / "vocab.json", d / "merges.txt"


def test_ids_equal_hugging_face_tokenizers(hf_files):
    hf, vocab_path, merges_path = hf_files
    tok = ByteLevelBPE.from_gpt2_files(vocab_path, merges_path)
    assert tok.vocab_size == hf.get_vocab_size()
    assert tok.special_tokens == {ENDOFTEXT: hf.token_to_id(ENDOFTEXT)}
    for t in TEXTS + ["unseen words: zebra quixotic ǅ ﬁ 𝔘𝔫𝔦"]:
        ids = tok.encode(t)
        assert ids == hf.encode(t).ids, t
        assert tok.decode(ids) == hf.decode(ids) == t
    text = "a" + ENDOFTEXT + " b"
    assert tok.encode(text, allowed_special="all") == hf.encode(text).ids


def test_ids_equal_transformers_gpt2_tokenizer(hf_files):
    tr = pytest.importorskip("transformers")
    _, vocab_path, merges_path = hf_files
    tok = ByteLevelBPE.from_gpt2_files(vocab_path, merges_path)
    gpt2 = tr.GPT2Tokenizer.from_pretrained(str(vocab_path.parent))  # reads the two files
    for t in TEXTS:
        assert tok.encode(t) == gpt2.encode(t), t


def test_ids_equal_tiktoken_with_gpt2s_regex(hf_files):
    tiktoken = pytest.importorskip("tiktoken")
    _, vocab_path, merges_path = hf_files
    tok = ByteLevelBPE.from_gpt2_files(vocab_path, merges_path)
    ranks = {tok.id_to_bytes(i): i for i in range(tok.vocab_size) if not tok.is_special_id(i)}
    enc = tiktoken.Encoding(
        "gpt2-style", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens=tok.special_tokens
    )
    for t in TEXTS:
        assert tok.encode(t) == enc.encode(t), t
    text = "x " + ENDOFTEXT + "y"
    assert tok.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")
    with pytest.raises(ValueError):
        enc.encode(text)  # both refuse a special token in user text by default
    with pytest.raises(ValueError):
        tok.encode(text)
    assert tok.encode(text, disallowed_special=()) == enc.encode(text, disallowed_special=())


def test_files_written_by_tinyllm_load_in_hugging_face_tokenizers(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    tok = ByteLevelBPE().train(corpus(), vocab_size=400, special_tokens=[ENDOFTEXT])
    tok.save_gpt2_files(tmp_path)
    hf = tokenizers.ByteLevelBPETokenizer(
        str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt")
    )
    hf.add_special_tokens([ENDOFTEXT])
    assert hf.token_to_id(ENDOFTEXT) == tok.special_tokens[ENDOFTEXT]
    for t in TEXTS + ["unseen: zebra quixotic 𝔘𝔫𝔦"]:
        assert hf.encode(t).ids == tok.encode(t), t
    text = "a" + ENDOFTEXT + " b"
    assert hf.encode(text).ids == tok.encode(text, allowed_special="all")
