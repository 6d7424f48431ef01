"""GPT-2's tokenizer files: vocab.json and merges.txt, as OpenAI released them.

GPT-2's byte-level BPE (Radford et al. 2019) is stored as two text files:

    vocab.json    {"token": id, ...}        every token (256 bytes, the merged tokens, and the
                                           special "<|endoftext|>") and its id
    merges.txt    #version: 0.2            an optional first line
                  Ġ t                      one merge per line, in rank order: the pair "Ġ" + "t"
                  h e                      merges before the pair "h" + "e"

A token is bytes, but JSON and a space-separated text file hold text. So GPT-2 spells each byte
as one printable character, and a token as the string of its bytes' characters:

    bytes_to_unicode:  byte b  ->  chr(b)        for the 188 printable bytes
                                                 "!".."~", "¡".."¬", "®".."ÿ"
                                   chr(256 + n)  for the n-th of the other 68, in byte order
                                                 (so b" " -> "Ġ" U+0120, b"\\n" -> "Ċ" U+010A,
                                                 b"\\x00" -> "Ā" U+0100)

No byte is spelled as whitespace, so a merge line splits on its one space, and every token is a
visible string. The map is a bijection from the 256 bytes onto 256 characters; its inverse reads
the files back.

The ids in vocab.json are the file's, not tinyllm's: GPT-2 puts the 188 printable bytes first
(so "!" is 0, "t" is 83, "\\n" (Ċ) is 198 and " " (Ġ) is 220), then the merges in rank order,
then "<|endoftext|>" (50256); a tokenizer trained by Hugging Face's `tokenizers` puts its special
tokens first. A vocabulary entry that is neither one of the 256 bytes nor made by a merge is a
special token, kept as the string it is written as. `ByteLevelBPE.from_gpt2_files` keeps the
file's ids (bpe.py), so a model trained with them reads the same ids here.

Reading checks what a wrong file could get wrong — JSON that is not an object of str -> int,
ids that are not exactly 0 … n−1 once each, a character outside the 256, a merge line that is not
two tokens, a merge of tokens not made above it, a repeated merge — and names the file (and line).
Writing is atomic (tinyllm/runtime/fileio.py), one file at a time.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache

from tinyllm.data.bpe_file import TokenizerFileError
from tinyllm.runtime.fileio import atomic_write_bytes

MERGES_HEADER = "#version: 0.2"


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> character table (see the module docstring)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    table = {b: chr(b) for b in printable}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    return table


@lru_cache(maxsize=1)
def unicode_to_bytes() -> dict[str, int]:
    """The inverse table: character -> byte."""
    return {c: b for b, c in bytes_to_unicode().items()}


def token_to_text(token: bytes) -> str:
    """A token's bytes as GPT-2 writes them, e.g. b" the" -> "Ġthe"."""
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)


def text_to_token(text: str) -> bytes | None:
    """The bytes GPT-2's spelling `text` stands for; None if a character is not one of the 256."""
    table = unicode_to_bytes()
    try:
        return bytes(table[c] for c in text)
    except KeyError:
        return None


def byte_order() -> list[int]:
    """The 256 bytes in GPT-2's id order: printable ones first (the table's insertion order)."""
    return list(bytes_to_unicode())


VOCAB_FILE, MERGES_FILE = "vocab.json", "merges.txt"


def gpt2_file_paths(vocab_path, merges_path=None, make: bool = False) -> tuple[str, str]:
    """(vocab path, merges path): as given, or the two files in the directory `vocab_path`
    when `merges_path` is None (`make`: create the directory)."""
    if merges_path is not None:
        return os.fspath(vocab_path), os.fspath(merges_path)
    directory = os.fspath(vocab_path)
    if make:
        os.makedirs(directory, exist_ok=True)
    elif not os.path.isdir(directory):
        raise FileNotFoundError(
            f"{directory!r} is not a directory; pass vocab.json's and merges.txt's paths, or "
            "the directory that holds them"
        )
    return os.path.join(directory, VOCAB_FILE), os.path.join(directory, MERGES_FILE)


# ---- reading ----------------------------------------------------------------------------------


def read_vocab_json(path) -> dict[str, int]:
    """token string -> id from vocab.json, checked: an object of str -> int, ids 0 … n−1."""
    name = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            vocab = json.load(f)
    except (UnicodeDecodeError, ValueError) as e:
        raise TokenizerFileError(f"{name}: not valid UTF-8 JSON ({e})") from None
    if not isinstance(vocab, dict) or not vocab:
        raise TokenizerFileError(f"{name}: expected a non-empty JSON object of token -> id")
    by_id: dict[int, str] = {}
    for token, i in vocab.items():
        if not isinstance(i, int) or isinstance(i, bool) or i < 0:
            raise TokenizerFileError(f"{name}: token {token!r} has id {i!r}, not an integer ≥ 0")
        if i in by_id:
            raise TokenizerFileError(f"{name}: tokens {by_id[i]!r} and {token!r} share the id {i}")
        by_id[i] = token
    missing = next((i for i in range(len(vocab)) if i not in by_id), None)
    if missing is not None:
        raise TokenizerFileError(
            f"{name}: ids must be 0 … {len(vocab) - 1} (one per token); {missing} is unused"
        )
    return vocab


def read_merges_txt(path) -> list[tuple[bytes, bytes]]:
    """The merges of merges.txt in rank order, each checked to be made of the 256 bytes and
    of tokens the merges above it made; a problem names the file and line."""
    name = os.fspath(path)
    try:
        with open(path, encoding="utf-8", newline="") as f:
            lines = f.read().split("\n")
    except UnicodeDecodeError as e:
        raise TokenizerFileError(f"{name}: not UTF-8 text ({e})") from None
    known = {bytes([b]) for b in range(256)}
    merges, seen = [], set()
    for number, line in enumerate(lines, start=1):
        line = line.removesuffix("\r")
        if number == 1 and line.startswith("#version"):
            continue
        if not line:
            if any(rest.strip() for rest in lines[number:]):
                raise TokenizerFileError(f"{name}, line {number}: empty line between merges")
            break
        fields = line.split(" ")
        if len(fields) != 2 or not all(fields):
            raise TokenizerFileError(
                f"{name}, line {number}: a merge is two tokens and one space, got {line!r}"
            )
        pair = tuple(text_to_token(f) for f in fields)
        for field, token in zip(fields, pair):
            if token is None:
                raise TokenizerFileError(
                    f"{name}, line {number}: {field!r} has a character outside GPT-2's 256 "
                    "byte characters"
                )
            if token not in known:
                raise TokenizerFileError(
                    f"{name}, line {number}: token {field!r} is not made by the merges above it"
                )
        if pair in seen:
            raise TokenizerFileError(f"{name}, line {number}: merge {line!r} appears twice")
        seen.add(pair)
        known.add(pair[0] + pair[1])
        merges.append(pair)
    return merges


# ---- writing ----------------------------------------------------------------------------------


def write_gpt2_files(vocab_path, merges_path, vocab: dict[str, int], merges) -> None:
    """Write vocab.json ({token string: id}) and merges.txt ([(bytes, bytes)]), atomically."""
    text = json.dumps(vocab, ensure_ascii=False)
    atomic_write_bytes(vocab_path, text.encode("utf-8"))
    lines = [MERGES_HEADER] + [f"{token_to_text(a)} {token_to_text(b)}" for a, b in merges]
    atomic_write_bytes(merges_path, ("\n".join(lines) + "\n").encode("utf-8"))
