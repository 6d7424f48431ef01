"""Writing files so that a crash never leaves half of one behind.

A file written in place can be caught half-written by a crash, a full disk or a killed job —
and a truncated checkpoint or tokenizer looks like a valid one until it is read. So every file
tinyllm writes goes to a temporary name in the same directory first, is flushed to the disk
(fsync), and is then renamed over the real name. `os.replace` is atomic on POSIX and Windows
within one file system: a reader sees either the old file or the complete new one.
"""

from __future__ import annotations

import os
import tempfile


def atomic_write(path, write) -> None:
    """Call `write(f)` on a binary file object, then atomically put the result at `path`."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))
