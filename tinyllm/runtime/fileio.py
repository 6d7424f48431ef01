"""Writing files so that a crash never leaves half of one behind.

A file written in place can be caught half-written by a crash, a full disk or a killed job —
and a truncated checkpoint or tokenizer looks like a valid one until it is read. So every file
tinyllm writes goes to a temporary name in the same directory first, is flushed to the disk
(fsync), and is then renamed over the real name; the directory is flushed too, so that the
rename itself survives a power cut. `os.replace` is atomic on POSIX and Windows within one file
system: a reader sees either the old file or the complete new one.

Two details make the temporary file behave like a normal one:

* it is removed when writing fails with an exception. A process killed outright (SIGKILL, the
  out-of-memory killer) cannot clean up, so its temporary file stays behind — its name carries
  the target's name and the writer's process id (`<name>.<pid>.<random>.tmp`), and the next
  write of the same target removes every such file whose writer is no longer running. (Process
  ids are only meaningful on one machine; a directory shared by several hosts keeps another
  host's leftovers until a write from that host sweeps them.)
* its permissions follow the umask, as `open(path, "w")` would give: `tempfile.mkstemp` creates
  files readable by their owner only (0600), which would silently hide a checkpoint from the
  rest of a group that shares it.
"""

from __future__ import annotations

import os
import re
import tempfile


def current_umask() -> int:
    """The process's umask. Linux reports it in /proc (no side effect); elsewhere it is read
    the classic way, by setting it and setting it back."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_directory(directory) -> None:
    """Flush a directory's entries (new names, renames) to disk, where the OS allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep_stale_temporaries(path) -> list[str]:
    """Remove the temporary files that killed writers of `path` left; → the names removed."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    pattern = re.compile(re.escape(os.path.basename(path)) + r"\.(\d+)\.[^.]+\.tmp$")
    removed = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for name in names:
        match = pattern.fullmatch(name)
        if match and int(match.group(1)) != os.getpid() and not _pid_alive(int(match.group(1))):
            try:
                os.unlink(os.path.join(directory, name))
                removed.append(name)
            except FileNotFoundError:  # another process swept it first
                pass
    return removed


def atomic_write(path, write) -> None:
    """Call `write(f)` on a binary file object, then atomically put the result at `path`."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    sweep_stale_temporaries(path)
    prefix = f"{os.path.basename(path)}.{os.getpid()}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # as open() would create it
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_directory(directory)


def atomic_write_bytes(path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))
