"""tinyllm.runtime.fileio: the atomic write cleans up after itself and respects the umask."""

import os
import stat
import subprocess
import sys

import pytest

from tinyllm.runtime.fileio import atomic_write, atomic_write_bytes, current_umask


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_mode_follows_the_umask_like_open(tmp_path, umask):
    old = os.umask(umask)
    try:
        assert current_umask() == umask
        atomic_write_bytes(tmp_path / "atomic", b"x")
        with open(tmp_path / "plain", "wb") as f:  # what a normal open gives
            f.write(b"x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(tmp_path / "atomic").st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "plain").st_mode) == 0o666 & ~umask


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def fail(f):
        f.write(b"half of the new")
        raise OSError("disk full (simulated)")

    with pytest.raises(OSError, match="simulated"):
        atomic_write(target, fail)
    assert os.listdir(tmp_path) == ["f.bin"] and target.read_bytes() == b"old"


def test_temporaries_of_killed_writers_are_swept_by_the_next_write(tmp_path):
    target = tmp_path / "ckpt.npz"
    dead = tmp_path / f"ckpt.npz.{dead_pid()}.abc123.tmp"  # a SIGKILLed writer's leftover
    dead.write_bytes(b"partial")
    alive = tmp_path / f"ckpt.npz.{os.getppid()}.def456.tmp"  # a writer that is still running
    alive.write_bytes(b"in progress")
    other = tmp_path / f"other.npz.{dead_pid()}.ghi789.tmp"  # another target's: not ours to judge
    other.write_bytes(b"x")
    atomic_write_bytes(target, b"new")
    assert sorted(os.listdir(tmp_path)) == sorted(["ckpt.npz", alive.name, other.name])
    assert target.read_bytes() == b"new"


def test_a_killed_writer_leaves_a_temporary_that_the_next_save_removes(tmp_path):
    """A real SIGKILL in the middle of a write, then a normal write of the same target."""
    target = tmp_path / "big.bin"
    code = (
        "import os, signal\n"
        "from tinyllm.runtime.fileio import atomic_write\n"
        "def write(f):\n"
        "    f.write(b'x' * 100000); f.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        f"atomic_write({str(target)!r}, write)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -9, proc.stderr
    left = os.listdir(tmp_path)
    assert len(left) == 1 and left[0].startswith("big.bin.") and left[0].endswith(".tmp")
    atomic_write_bytes(target, b"complete")
    assert os.listdir(tmp_path) == ["big.bin"]
