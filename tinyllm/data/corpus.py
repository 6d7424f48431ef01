"""Corpora: text to train on, with a deterministic train/validation split.

The default corpus is the Python standard library's own source code: every machine that runs
tinyllm has it, so no download is needed, and "generated text that looks like Python" is an
easy check that a model learned something. The files are found with
`sysconfig.get_paths()["stdlib"]`; test suites (`test/`, `tests/`, `idle_test/`) and installed
third-party packages (`site-packages/`) are skipped.

Determinism: files are read in a fixed order -- sorted by the CRC-32 of their path relative to the
stdlib directory, then by the path -- which is a stable shuffle: a budget of a few MB then holds
a mix of modules instead of only the alphabetically first (`_pydecimal.py`, `asyncio/`, and the
hundred near-identical codec tables in `encodings/`). CRC-32 is used, not `hash()`, because
Python salts `hash()` per process.

Caveat: the standard library differs between Python versions (3.11 and 3.12 ship different
files and different code), so the corpus, and every number measured on it -- compression ratios,
losses -- differs between versions. On one machine it is reproducible, run after run.

Split: the last `val_fraction` of the text, cut at a line boundary, is the validation set (the
nanoGPT convention of a held-out tail). With the shuffled file order the tail is a sample of
whole modules the model has not seen.
"""

from __future__ import annotations

import io
import os
import sysconfig
import tokenize
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_MAX_BYTES = 4_000_000
SKIP_DIRS = frozenset(
    {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
)


@dataclass(frozen=True)
class Corpus:
    """A named text corpus split into a training and a validation part."""

    name: str
    train: str
    val: str

    def __repr__(self) -> str:
        return (
            f"Corpus({self.name!r}, train={len(self.train):,} chars, val={len(self.val):,} chars)"
        )


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: str | os.PathLike | None = None) -> list[Path]:
    """The stdlib's .py files outside SKIP_DIRS, in the deterministic corpus order."""
    root = Path(root) if root is not None else stdlib_dir()
    if not root.is_dir():
        raise FileNotFoundError(f"stdlib directory {root} does not exist")
    files = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = [d for d in subdirs if d not in SKIP_DIRS]  # do not descend into them
        for name in names:
            if name.endswith(".py"):
                path = Path(directory, name)
                relative = path.relative_to(root).as_posix()
                files.append((zlib.crc32(relative.encode()), relative, path))
    files.sort()
    return [path for _, _, path in files]


def read_python_source(path: Path) -> str:
    """A .py file's text, decoded with the encoding its coding cookie declares (PEP 263)."""
    data = path.read_bytes()
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    return data.decode(encoding, errors="replace").replace("\r\n", "\n")


def stdlib_text(max_bytes: int = DEFAULT_MAX_BYTES, root: str | os.PathLike | None = None) -> str:
    """Up to `max_bytes` (UTF-8) of stdlib source: whole files in corpus order, separated by a
    blank line; the last file is cut at a line boundary to fit."""
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")
    parts, used = [], 0
    for path in stdlib_files(root):
        text = read_python_source(path).rstrip("\n") + "\n\n"
        size = len(text.encode("utf-8"))
        if used + size > max_bytes:
            parts.append(_cut_at_line(text, max_bytes - used))
            break
        parts.append(text)
        used += size
    return "".join(parts)


def _cut_at_line(text: str, max_bytes: int) -> str:
    """The longest prefix of whole lines of `text` that fits in `max_bytes` of UTF-8."""
    prefix = text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")
    return prefix[: prefix.rfind("\n") + 1]


def split_train_val(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """(train, val): val is the last `val_fraction` of the text, starting at a line start."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    cut = int(round(len(text) * (1.0 - val_fraction)))
    if cut < len(text):
        newline = text.rfind("\n", 0, cut)
        cut = newline + 1 if newline >= 0 else cut  # prefer a line boundary at or before cut
    return text[:cut], text[cut:]


def load_corpus(
    path: str | os.PathLike | None = None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    val_fraction: float = 0.1,
) -> Corpus:
    """The stdlib corpus (path=None) or a UTF-8 text file, split into train and val.

    max_bytes limits how much is read (None: all of a file; the stdlib needs a number).
    """
    if path is None:
        if max_bytes is None:
            raise ValueError("the stdlib corpus needs max_bytes (it is ~12+ MB in total)")
        text, name = stdlib_text(max_bytes), f"python{sysconfig.get_python_version()}-stdlib"
    else:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"corpus file {path} does not exist")
        with open(path, "rb") as f:
            data = f.read() if max_bytes is None else f.read(max_bytes)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            if e.reason == "unexpected end of data":  # max_bytes cut a character in two
                text = data[: e.start].decode("utf-8")
            else:
                raise ValueError(
                    f"corpus file {path} is not UTF-8 text: {e.reason} at byte {e.start}"
                ) from e
        name = str(path)
    if not text:
        raise ValueError(f"corpus {name} is empty")
    train, val = split_train_val(text, val_fraction)
    return Corpus(name, train, val)


def tokenize_corpus(corpus: Corpus, tokenizer) -> tuple[np.ndarray, np.ndarray]:
    """(train_ids, val_ids): both parts encoded as 1-D int64 arrays, ready for the batch
    builders. Special-token strings in the text are encoded as plain text."""

    def encode(text: str) -> np.ndarray:
        return np.array(tokenizer.encode(text, disallowed_special=()), dtype=np.int64)

    return encode(corpus.train), encode(corpus.val)
