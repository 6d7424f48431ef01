"""A byte-level BPE tokenizer: text -> token ids -> text (GPT-2, Radford et al. 2019).

Vocabulary, in id order:

    0 .. 255                 the 256 single bytes -- so every string has an encoding
    256 .. 256 + k - 1       the tokens learned by k merges, in the order they were learned
    after those              special tokens ("<|endoftext|>", "[MASK]", "<extra_id_0>", ...)

Encoding a string:

1. (special tokens) cut the text at the special tokens the caller allows; each becomes its id;
2. pre-split each remaining piece into GPT-2 chunks (pretokenize.py);
3. turn each chunk into its UTF-8 bytes, start from one token per byte, and replay the merges:
   repeatedly merge the adjacent pair with the lowest merge rank (the earliest learned) until no
   adjacent pair is a learned merge. This reproduces exactly what training did to that chunk,
   because training applied the merges to every word in the same order.

Decoding concatenates the tokens' bytes and decodes them as UTF-8.

Round trips, and the choices they force:

* `decode(encode(s)) == s` for EVERY Python str. A str may hold lone surrogates ("\\ud800",
  e.g. from `os.fsdecode`), which strict UTF-8 cannot encode; we encode them with the
  "surrogatepass" rule (the 3-byte pattern UTF-8 would use) and decode them back the same way.
* `decode_bytes(encode_bytes(b)) == b` for every bytes object, valid UTF-8 or not.
* An arbitrary id sequence need not spell valid UTF-8 (a model can emit half of a multi-byte
  character). `decode` never raises on that: invalid bytes become U+FFFD "\\ufffd", as in GPT-2
  and tiktoken (errors="replace"); `decode_bytes` returns the exact bytes.

Special tokens (tiktoken's rules): text is encoded as ordinary text unless the caller lists
specials in `allowed_special` (or passes "all"); by default, text that *contains* a special
token's string raises an error (`disallowed_special="all"`), so user text can never smuggle in
a control token by accident. Pass `disallowed_special=()` to encode such text as plain bytes.
Normal text therefore never produces a special id, and a special token is never split.

Files: `save` writes a plain-text file, atomically; `load` names the file and line of any
problem (tinyllm/data/bpe_file.py). No pickle.

GPT-2's own files (vocab.json + merges.txt, tinyllm/data/bpe_gpt2_files.py) load with
`from_gpt2_files` and are written by `save_gpt2_files`. Their ids are not in the order above
(GPT-2 numbers the printable bytes first; Hugging Face's trainer puts special tokens first), and
a model trained on them knows only those ids. So a tokenizer carries an optional id map: inside,
tokens keep the order above; at the edges (encode's result, decode's argument, every lookup)
each id is translated to the file's and back.
"""

from __future__ import annotations

import codecs
import os
import re
from collections import Counter
from functools import lru_cache
from typing import Iterable

import numpy as np

from tinyllm.data.bpe_file import (
    FORMAT,
    TokenizerFileError,
    parse_tokenizer_bytes,
    read_tokenizer_file,
    tokenizer_file_bytes,
    write_tokenizer_file,
)
from tinyllm.data.bpe_gpt2_files import (
    gpt2_file_paths,
    read_merges_txt,
    read_vocab_json,
    text_to_token,
    token_to_text,
    write_gpt2_files,
)
from tinyllm.data.bpe_merge import bpe_merge
from tinyllm.data.bpe_train import learn_merges
from tinyllm.data.pretokenize import pre_split

ENDOFTEXT = "<|endoftext|>"
PAD, CLS, SEP, MASK = "[PAD]", "[CLS]", "[SEP]", "[MASK]"


def sentinel(i: int) -> str:
    """T5's i-th sentinel token, "<extra_id_{i}>" (Raffel et al. 2020)."""
    return f"<extra_id_{i}>"


def standard_special_tokens(n_sentinels: int = 100) -> list[str]:
    """The special tokens GPT, BERT and T5 style models need, in a fixed order."""
    return [ENDOFTEXT, PAD, CLS, SEP, MASK] + [sentinel(i) for i in range(n_sentinels)]


def _lossless_then_replace(error: UnicodeDecodeError):
    """UTF-8 decoding error handler: surrogates encoded by "surrogatepass" come back; any other
    invalid bytes become U+FFFD (the "replace" rule)."""
    try:
        return codecs.lookup_error("surrogatepass")(error)
    except UnicodeDecodeError:
        return codecs.lookup_error("replace")(error)


codecs.register_error("tinyllm.bpe", _lossless_then_replace)


# ---- the tokenizer ------------------------------------------------------------------------


class ByteLevelBPE:
    """Byte-level BPE tokenizer with GPT-2 pre-splitting and special tokens.

    >>> tok = ByteLevelBPE().train(text, vocab_size=2048, special_tokens=["<|endoftext|>"])
    >>> ids = tok.encode("def f(x):\\n    return x")
    >>> tok.decode(ids)
    'def f(x):\\n    return x'
    """

    CACHE_SIZE = 200_000  # chunk -> ids entries kept before the encoding cache is cleared

    def __init__(
        self, merges: Iterable[tuple[bytes, bytes]] = (), special_tokens: Iterable[str] = ()
    ):
        self._set_merges(merges)
        self._special_to_id: dict[str, int] = {}
        self.add_special_tokens(special_tokens)

    # -- ids as a file numbers them (from_gpt2_files); None: the order of the module docstring --

    _to_public: list[int] | None = None  # internal id -> public id
    _to_internal: list[int] | None = None  # public id -> internal id

    def _public(self, ids: list[int]) -> list[int]:
        return ids if self._to_public is None else [self._to_public[i] for i in ids]

    def _internal(self, ids: list[int]) -> list[int]:
        return ids if self._to_internal is None else [self._to_internal[i] for i in ids]

    # -- building --

    def _set_merges(self, merges: Iterable[tuple[bytes, bytes]]) -> None:
        self._id_to_bytes = [bytes([i]) for i in range(256)]
        self._bytes_to_id = {b: i for i, b in enumerate(self._id_to_bytes)}
        self._ranks: dict[tuple[int, int], tuple[int, int]] = {}
        self.merges: list[tuple[bytes, bytes]] = []
        for rank, (a, b) in enumerate(merges):
            for part in (a, b):
                if part not in self._bytes_to_id:
                    raise ValueError(
                        f"merge {rank} ({a!r}, {b!r}): token {part!r} is not in the "
                        "vocabulary built by the merges before it"
                    )
            pair = (self._bytes_to_id[a], self._bytes_to_id[b])
            if pair in self._ranks:
                raise ValueError(
                    f"merge {rank} ({a!r}, {b!r}) repeats merge {self._ranks[pair][0]}"
                )
            merged = a + b
            if merged not in self._bytes_to_id:  # two pairs may spell the same bytes: one token
                self._bytes_to_id[merged] = len(self._id_to_bytes)
                self._id_to_bytes.append(merged)
            self._ranks[pair] = (rank, self._bytes_to_id[merged])
            self.merges.append((a, b))
        # chunk -> ids, one cache per way of turning str into bytes (they differ on surrogates)
        self._caches: dict[str, dict[str, list[int]]] = {"surrogatepass": {}, "surrogateescape": {}}

    def train(
        self,
        text: str | Iterable[str],
        vocab_size: int,
        special_tokens: Iterable[str] = (),
        progress=None,
    ) -> "ByteLevelBPE":
        """Learn merges from `text` (a str or an iterable of str, e.g. one per document).

        vocab_size counts everything: 256 bytes + learned tokens + special tokens. Training stops
        early if the corpus runs out of pairs (then `self.vocab_size` is smaller). Occurrences of
        the special tokens' strings in the text are cut out and not learned from. Replaces any
        previous merges and special tokens. Returns self.
        """
        special_tokens = list(dict.fromkeys(special_tokens))
        n_new = vocab_size - 256 - len(special_tokens)
        if n_new < 0:
            raise ValueError(
                f"vocab_size={vocab_size} is smaller than 256 bytes + "
                f"{len(special_tokens)} special tokens"
            )
        texts = [text] if isinstance(text, str) else text
        splitter = _special_splitter(frozenset(special_tokens)) if special_tokens else None
        chunk_counts: Counter = Counter()
        for document in texts:
            pieces = [document] if splitter is None else splitter.split(document)[::2]
            for piece in pieces:
                chunk_counts.update(pre_split(piece))
        word_counts = {c.encode("utf-8", "surrogatepass"): f for c, f in chunk_counts.items()}
        self._set_merges(learn_merges(word_counts, n_new, progress=progress))
        self._to_public = self._to_internal = None
        self._special_to_id = {}
        self.add_special_tokens(special_tokens)
        return self

    def add_special_tokens(self, tokens: Iterable[str]) -> list[int]:
        """Register special tokens (new ones get the next ids); return the ids of all given."""
        ids = []
        for token in tokens:
            if not isinstance(token, str) or not token:
                raise ValueError(f"a special token must be a non-empty str, got {token!r}")
            try:
                token.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"special token {token!r} is not valid Unicode text") from None
            if token not in self._special_to_id:
                if self._to_public is not None:  # a new token takes the next public id too
                    self._to_public.append(self.vocab_size)
                    self._to_internal.append(self.vocab_size)
                self._special_to_id[token] = self.vocab_size
            ids.append(self._special_to_id[token])
        self._id_to_special = {i: s for s, i in self._special_to_id.items()}
        return self._public(ids)

    # -- vocabulary --

    @property
    def vocab_size(self) -> int:
        return len(self._id_to_bytes) + len(self._special_to_id)

    @property
    def special_tokens(self) -> dict[str, int]:
        """Special token string -> id (a copy)."""
        return {s: self._public([i])[0] for s, i in self._special_to_id.items()}

    def is_special_id(self, i: int) -> bool:
        return 0 <= i < self.vocab_size and self._internal([i])[0] in self._id_to_special

    def token_to_id(self, token: str | bytes) -> int:
        """Id of a special token (str), or of a learned/byte token given as bytes or str."""
        if isinstance(token, str) and token in self._special_to_id:
            return self._public([self._special_to_id[token]])[0]
        key = token.encode("utf-8", "surrogatepass") if isinstance(token, str) else token
        if key not in self._bytes_to_id:
            raise KeyError(f"{token!r} is neither a special token nor a token of this vocabulary")
        return self._public([self._bytes_to_id[key]])[0]

    def id_to_bytes(self, i: int) -> bytes:
        """The exact bytes of token `i` (a special token's UTF-8 spelling)."""
        (i,) = self._internal(self._check_ids([i]))
        if i in self._id_to_special:
            return self._id_to_special[i].encode("utf-8")
        return self._id_to_bytes[i]

    def id_to_token(self, i: int) -> str:
        """Token `i` as text (bytes that are not whole UTF-8 characters show as U+FFFD)."""
        return self.id_to_bytes(i).decode("utf-8", "tinyllm.bpe")

    # -- encoding --

    def _encode_text(self, text: str, errors: str) -> list[int]:
        """Pre-split, then replay the merges on each chunk's bytes (cached per chunk: text
        repeats the same chunks -- " self", "    " -- over and over)."""
        ids: list[int] = []
        cache = self._caches[errors]
        for chunk in pre_split(text):
            chunk_ids = cache.get(chunk)
            if chunk_ids is None:
                # iterating over bytes gives the byte values, which are the byte tokens' ids
                chunk_ids = bpe_merge(chunk.encode("utf-8", errors), self._ranks)
                if len(cache) >= self.CACHE_SIZE:
                    cache.clear()
                cache[chunk] = chunk_ids
            ids.extend(chunk_ids)
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode `text` ignoring special tokens entirely (their strings become plain bytes)."""
        return self._public(self._encode_text(text, "surrogatepass"))

    def encode(
        self,
        text: str,
        allowed_special: str | Iterable[str] = (),
        disallowed_special: str | Iterable[str] = "all",
    ) -> list[int]:
        """Encode `text` to token ids.

        allowed_special: special tokens that, where their string occurs, become their id
            ("all" for every registered one).
        disallowed_special: special tokens whose presence in the text is an error ("all": every
            registered one not allowed); pass () to encode them as ordinary text instead.
        """
        if not isinstance(text, str):
            raise TypeError(f"encode expects str, got {type(text).__name__} (use encode_bytes)")
        allowed = self._special_set(allowed_special, "allowed_special")
        disallowed = (
            set(self._special_to_id) - allowed
            if disallowed_special == "all"
            else self._special_set(disallowed_special, "disallowed_special")
        )
        found = disallowed and _special_splitter(frozenset(disallowed)).search(text)
        if found:  # name the first one in the text
            token = found.group()
            raise ValueError(
                f"encode: the text contains the special token {token!r}; pass "
                f"allowed_special={{{token!r}}} to encode it as a special token, or "
                "disallowed_special=() to encode it as ordinary text"
            )
        if not allowed:
            return self.encode_ordinary(text)
        ids: list[int] = []
        for k, piece in enumerate(_special_splitter(frozenset(allowed)).split(text)):
            if k % 2:  # re.split with one group: odd pieces are the separators
                ids.append(self._special_to_id[piece])
            elif piece:
                ids.extend(self._encode_text(piece, "surrogatepass"))
        return self._public(ids)

    def _special_set(self, value, name: str) -> set[str]:
        tokens = set(self._special_to_id) if value == "all" else set(value)
        unknown = tokens - set(self._special_to_id)
        if unknown:
            raise ValueError(
                f"{name}: {sorted(unknown)} are not special tokens of this "
                f"tokenizer (registered: {sorted(self._special_to_id)})"
            )
        return tokens

    def encode_bytes(self, data: bytes) -> list[int]:
        """Encode raw bytes (valid UTF-8 or not); `decode_bytes` gives them back exactly.

        Invalid bytes are carried through pre-splitting as the "surrogateescape" code points
        U+DC80..U+DCFF (they split like punctuation) and turned back into the same bytes.
        """
        text = bytes(data).decode("utf-8", "surrogateescape")
        return self._public(self._encode_text(text, "surrogateescape"))

    def encode_batch(self, texts: Iterable[str], **kwargs) -> list[list[int]]:
        """`encode` each text (same keyword arguments)."""
        return [self.encode(text, **kwargs) for text in texts]

    # -- decoding --

    def _check_ids(self, ids) -> list[int]:
        ids = ids.tolist() if isinstance(ids, np.ndarray) else list(ids)
        if ids and (min(ids) < 0 or max(ids) >= self.vocab_size):
            bad = next(i for i in ids if not 0 <= i < self.vocab_size)
            raise ValueError(f"token id {bad} is outside the vocabulary [0, {self.vocab_size})")
        return ids

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The exact bytes the ids spell (special tokens as their UTF-8 spelling)."""
        table, special = self._id_to_bytes, self._id_to_special
        return b"".join(
            special[i].encode("utf-8") if i in special else table[i]
            for i in self._internal(self._check_ids(ids))
        )

    def decode(self, ids: Iterable[int]) -> str:
        """Decode ids to text; never raises on invalid UTF-8 (those bytes become U+FFFD)."""
        return self.decode_bytes(ids).decode("utf-8", "tinyllm.bpe")

    # -- files --

    FORMAT = FORMAT

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as plain text, atomically (the format: tinyllm/data/bpe_file.py)."""
        self._refuse_file_ids("save")
        write_tokenizer_file(path, self.merges, self._specials_in_order())

    @classmethod
    def load(cls, path: str | os.PathLike, allow_unverified_v1: bool = False) -> "ByteLevelBPE":
        """Read a file written by `save`; a wrong checksum or any malformation raises
        TokenizerFileError(file:line)."""
        return cls(*read_tokenizer_file(path, allow_unverified_v1))

    def to_bytes(self) -> bytes:
        """The content `save` writes — what a checkpoint stores to carry its tokenizer."""
        self._refuse_file_ids("to_bytes")
        return tokenizer_file_bytes(self.merges, self._specials_in_order())

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> "ByteLevelBPE":
        """The tokenizer whose `to_bytes()` is `data`; errors name `source` (e.g. a checkpoint)."""
        return cls(*parse_tokenizer_bytes(bytes(data), source))

    def _specials_in_order(self) -> list[str]:
        return sorted(self._special_to_id, key=self._special_to_id.get)

    def _refuse_file_ids(self, what: str) -> None:
        if self._to_public is not None:
            raise ValueError(
                f"{what}: this tokenizer keeps the ids of GPT-2 files, which the tinyllm format "
                "cannot record; write it with save_gpt2_files"
            )

    @classmethod
    def from_gpt2_files(cls, vocab_path, merges_path=None) -> "ByteLevelBPE":
        """Load GPT-2's vocab.json + merges.txt (tinyllm/data/bpe_gpt2_files.py), keeping the
        file's ids. Entries that are neither a byte nor made by a merge are special tokens.
        Given one directory (a Hugging Face GPT-2 directory), read the two files in it."""
        vocab_path, merges_path = gpt2_file_paths(vocab_path, merges_path)
        merges = read_merges_txt(merges_path)
        vocab = read_vocab_json(vocab_path)
        tok = cls(merges)
        to_public = [-1] * len(tok._id_to_bytes)
        specials = []
        for text, public in sorted(vocab.items(), key=lambda item: item[1]):
            token = text_to_token(text)
            if token is not None and token in tok._bytes_to_id:
                to_public[tok._bytes_to_id[token]] = public
            else:
                specials.append(text)
        for internal, public in enumerate(to_public):
            if public < 0:
                spelled = token_to_text(tok._id_to_bytes[internal])
                raise TokenizerFileError(
                    f"{os.fspath(vocab_path)}: token {spelled!r} (a byte, or made by the merges "
                    f"in {os.fspath(merges_path)}) has no id"
                )
        tok.add_special_tokens(specials)  # internal ids after the merges, in file-id order
        to_public += [vocab[s] for s in specials]
        tok._to_public = to_public
        tok._to_internal = [0] * len(to_public)
        for internal, public in enumerate(to_public):
            tok._to_internal[public] = internal
        return tok

    def save_gpt2_files(self, vocab_path, merges_path=None) -> None:
        """Write vocab.json + merges.txt as GPT-2 does, atomically; `from_gpt2_files` and
        Hugging Face's GPT-2 tokenizers read them back with the same ids. Given one path, it
        is a directory (made if needed) that gets the two files."""
        vocab_path, merges_path = gpt2_file_paths(vocab_path, merges_path, make=True)
        to_public = self._to_public or list(range(self.vocab_size))
        vocab = {token_to_text(b): to_public[i] for i, b in enumerate(self._id_to_bytes)}
        vocab |= {s: to_public[i] for s, i in self._special_to_id.items()}
        if len(vocab) != self.vocab_size:  # a special spelled like an ordinary token
            clash = [
                s for s in self._special_to_id if s in {token_to_text(b) for b in self._id_to_bytes}
            ]
            raise ValueError(
                f"save_gpt2_files: special tokens {clash} are spelled like ordinary tokens "
                "in GPT-2's byte characters; vocab.json cannot hold both"
            )
        write_gpt2_files(vocab_path, merges_path, vocab, self.merges)


@lru_cache(maxsize=16)
def _special_splitter(tokens: frozenset[str]) -> re.Pattern:
    """A pattern matching any of the (non-empty set of) special tokens, longest first; its
    re.split keeps them as separate pieces."""
    ordered = sorted(tokens, key=lambda t: (-len(t), t))  # "<a><b>" must win over "<a>"
    return re.compile("(" + "|".join(map(re.escape, ordered)) + ")")
