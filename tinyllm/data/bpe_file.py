"""The tokenizer's file: plain text a person can read, checked line by line when it is read.

A tokenizer is its merges (in rank order) and its special tokens (in id order); the ids follow
from those (bpe.py). The file holds exactly that, tokens as the hex of their bytes so that any
byte sequence survives, ASCII throughout:

    tinyllm-bpe v2
    merges <N>
    <hex a> <hex b>        N lines, in rank order; e.g. "20 74" merges b" " + b"t"
    specials <K>
    <hex>                  K lines, the UTF-8 of each special token, in id order
    end
    sha256 <hex>           SHA-256 of every byte above this line

It is written atomically (tinyllm/runtime/fileio.py: a temporary file, fsync, rename), so a
crash leaves the old file or the new one. Reading checks the checksum first, then everything a
wrong file could get wrong — the header, each count, that every merge is made of tokens the
merges above it made, no duplicate, valid UTF-8 specials, nothing after the checksum — and
names the file and line. No pickle.

Why a checksum when every line is already checked: the structure cannot tell a merge `20 74`
from `20 75`, and an edit like that yields a valid, *different* tokenizer — the model would
read text through the wrong ids without any error. The first version of the format (`v1`) had
no checksum and is read only on request (`allow_unverified_v1=True`), to be saved again.
"""

from __future__ import annotations

import hashlib
import os

from tinyllm.runtime.fileio import atomic_write_bytes

FORMAT = "tinyllm-bpe v2"
FORMAT_V1 = "tinyllm-bpe v1"  # the same lines without the checksum


class TokenizerFileError(ValueError):
    """A tokenizer file is malformed; the message names the file and the line."""


def tokenizer_file_bytes(merges, specials) -> bytes:
    """The file's content for `merges` [(bytes, bytes)] and `specials` [str] (format above)."""
    lines = [FORMAT, f"merges {len(merges)}"]
    lines += [f"{a.hex()} {b.hex()}" for a, b in merges]
    lines += [f"specials {len(specials)}"] + [s.encode("utf-8").hex() for s in specials]
    lines.append("end")
    body = ("\n".join(lines) + "\n").encode("ascii")
    return body + f"sha256 {hashlib.sha256(body).hexdigest()}\n".encode("ascii")


def write_tokenizer_file(path, merges, specials) -> None:
    """Write `merges` [(bytes, bytes)] and `specials` [str] in the format above, atomically."""
    atomic_write_bytes(path, tokenizer_file_bytes(merges, specials))


def read_tokenizer_file(
    path, allow_unverified_v1: bool = False
) -> tuple[list[tuple[bytes, bytes]], list[str]]:
    """(merges, special tokens) from a file `write_tokenizer_file` wrote; any malformation
    raises TokenizerFileError naming the file and the line."""
    name = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise TokenizerFileError(f"{name}: cannot read the tokenizer file: {e}") from None
    return parse_tokenizer_bytes(raw, name, allow_unverified_v1)


def _verified_body(raw: bytes, name: str, allow_unverified_v1: bool) -> bytes:
    """The bytes above the checksum line, after checking the checksum (or the v1 opt-in)."""
    if raw.startswith(FORMAT_V1.encode() + b"\n"):
        if allow_unverified_v1:
            return raw
        raise TokenizerFileError(
            f"{name}: a tokenizer file of the first format ({FORMAT_V1!r}) has no checksum, so "
            "an edited or corrupted copy would load as a different tokenizer; if you trust "
            "it, load it once with ByteLevelBPE.load(path, allow_unverified_v1=True) and save "
            "it again"
        )
    cut = raw.rfind(b"\nsha256 ", 0, max(0, len(raw) - 1)) + 1
    tail = raw[cut:]
    if cut == 0 or len(tail) != len("sha256 ") + 64 + 1 or not tail.endswith(b"\n"):
        raise TokenizerFileError(
            f"{name}: no 'sha256 <hex>' line at the end (truncated, or not a tokenizer file?)"
        )
    body = raw[:cut]
    if hashlib.sha256(body).hexdigest().encode("ascii") != tail[len("sha256 ") : -1]:
        line = body.count(b"\n") + 1
        raise TokenizerFileError(
            f"{name}, line {line}: checksum mismatch — the file was modified or is corrupt"
        )
    return body


def parse_tokenizer_bytes(
    raw: bytes, name: str = "<bytes>", allow_unverified_v1: bool = False
) -> tuple[list[tuple[bytes, bytes]], list[str]]:
    """`read_tokenizer_file` on bytes already read (`name` says where from, for errors)."""
    header = FORMAT_V1 if raw.startswith(FORMAT_V1.encode() + b"\n") else FORMAT
    raw = _verified_body(raw, name, allow_unverified_v1)
    try:
        lines = raw.decode("ascii").split("\n")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise TokenizerFileError(
            f"{name}, line {line}: non-ASCII byte; not a tokenizer file"
        ) from None
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    pos = 0

    def next_line(what: str) -> str:
        nonlocal pos
        if pos >= len(lines):
            raise TokenizerFileError(
                f"{name}, line {pos + 1}: file ends where {what} was expected (truncated?)"
            )
        pos += 1
        return lines[pos - 1]

    def fail(message: str):
        raise TokenizerFileError(f"{name}, line {pos}: {message}")

    def hex_token(field: str, what: str) -> bytes:
        try:
            token = bytes.fromhex(field)
        except ValueError:
            fail(f"{what} {field!r} is not hexadecimal bytes")
        if not token:
            fail(f"{what} is empty")
        return token

    def count_line(keyword: str) -> int:
        fields = next_line(f"'{keyword} <count>'").split(" ")
        if len(fields) != 2 or fields[0] != keyword or not fields[1].isdigit():
            fail(f"expected '{keyword} <count>', got {' '.join(fields)!r}")
        return int(fields[1])

    if next_line("the header") != header:
        fail(f"expected the header {header!r}; not a tokenizer file or another version")
    merges, seen = [], set()
    known = {bytes([i]) for i in range(256)}  # the vocabulary so far, to check each merge
    for _ in range(count_line("merges")):
        fields = next_line("a merge line").split(" ")
        if len(fields) != 2:
            fail(f"a merge line holds two hex tokens, got {len(fields)} fields")
        a, b = hex_token(fields[0], "token"), hex_token(fields[1], "token")
        for part in (a, b):
            if part not in known:
                fail(f"token {part.hex()} is not made by the merges above it")
        if (a, b) in seen:
            fail(f"merge {fields[0]} {fields[1]} appears twice")
        seen.add((a, b))
        known.add(a + b)
        merges.append((a, b))
    specials = []
    for _ in range(count_line("specials")):
        token = hex_token(next_line("a special token line"), "special token")
        try:
            specials.append(token.decode("utf-8"))
        except UnicodeDecodeError:
            fail("special token is not valid UTF-8")
        if specials[-1] in specials[:-1]:
            fail(f"special token {specials[-1]!r} appears twice")
    if next_line("'end'") != "end":
        fail("expected 'end' after the special tokens")
    if pos != len(lines):
        pos += 1
        fail("unexpected content after 'end'")
    return merges, specials
