"""The watchdog: a rank killed outright is named, and the job's temporary files are removed.

Two things a rank cannot do for itself when it dies by `kill -9` (or a segfault):

1. Say who it was. mpirun (MPICH's hydra) sees a process vanish, kills every other rank at
   once and prints the dead process's PID — not its rank, and the others get no chance to
   speak (a stalled rank, by contrast, is named by the deadline: sim/deadline.py).
2. Clean up. MPICH keeps each machine's shared memory in a file `/dev/shm/mpich_shm_*` and
   hydra the machine's topology in `/tmp/hydra_hwloc_xmlfile_*`. A job that is aborted or
   killed leaves them behind, and /dev/shm fills up run by run.

So `sim.init()` starts, on every machine's local rank 0, a small watcher process: this file,
run as a script — standard library only, it must not start MPI itself — in a session of its
own, so that the kill that ends the job does not reach it. Every local rank keeps a Unix
socket connected to it and says `hello <rank> <pid>`; before a normal exit it says `bye`, and
before a deliberate abort (an uncaught exception, a deadline) `abort`. The kernel closes a
dead process's sockets at once, so the watcher learns of a death before mpirun does:

    a connection closes with neither bye nor abort said → that rank died without a word; the
    watcher prints "sim: rank 2 (pid 4711) died without a word …" to the launcher's stderr
    (only for the first such rank, and never after an abort: the rest are mpirun's doing).

When every rank is gone and the launcher has exited, the watcher deletes the job's own files
that are still there, and exits. Which files are the job's: those the ranks have mapped or
open — the shared-memory files in /proc/self/maps, and the hwloc file that the rank's parent,
the `hydra_pmi_proxy`, holds open (/proc/<ppid>/fd) — never a pattern match on the names, so
other jobs' files on the same machine are left alone.

Linux and MPICH only (the watcher is not started under other launchers). The watcher writes
its line to mpirun's own stderr (/proc/<mpirun>/fd/2, opened for appending): through a pipe or
a terminal it shows up in order; into a file that the shell opened without appending
(`mpirun … 2> log`), mpirun's later writes may overwrite it — use `2>> log` or a pipe.
"""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import sys
import time

SHM_PREFIX = "/dev/shm/mpich_shm_"
HWLOC_NAME = "hydra_hwloc_xmlfile_"
PROXY_NAME = "hydra_pmi_proxy"
CONNECT_SECONDS = 120.0  # how long the watcher waits for every local rank to say hello
LAUNCHER_SECONDS = 10.0  # how long it waits for mpirun to exit after the last rank

# ---- inside a rank ---------------------------------------------------------------------------


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def under_hydra() -> bool:
    """True when this process was started by MPICH's hydra (its parent is a hydra_pmi_proxy)."""
    return PROXY_NAME in _cmdline(os.getppid())


def job_files(pid: int | None = None) -> list[str]:
    """The temporary files of the job this process belongs to (only ones that exist).

    MPICH's shared-memory files that `pid` (default: this process) maps, and hydra's hwloc
    topology file held open by its parent proxy.
    """
    pid = os.getpid() if pid is None else pid
    found = set()
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].startswith(SHM_PREFIX):
                    found.add(fields[5].strip().removesuffix(" (deleted)"))
    except OSError:
        pass
    proxy = _parent(pid)
    if proxy is not None and PROXY_NAME in _cmdline(proxy):
        try:
            fds = os.listdir(f"/proc/{proxy}/fd")
        except OSError:
            fds = []
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{proxy}/fd/{fd}")
            except OSError:
                continue
            if os.path.basename(target).startswith(HWLOC_NAME):
                found.add(target)
    return sorted(p for p in found if os.path.exists(p))


_connection: socket.socket | None = None


def socket_name() -> str:
    """One name per job and machine (the proxy's PID), in the abstract socket namespace
    (a leading NUL byte, added where the socket is opened): no file to clean up."""
    return f"sim-watchdog-{os.getppid()}"


def start(local_size: int) -> bool:
    """On local rank 0: start the watcher for `local_size` ranks; True once it listens.

    A watcher that cannot be started costs the job nothing but its services: False.
    """
    launcher = _parent(os.getppid())
    if launcher is None:
        return False
    try:
        stderr = open(f"/proc/{launcher}/fd/2", "ab")  # mpirun's own stderr
    except OSError:
        stderr = subprocess.DEVNULL
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "MPI", "HYDRA"))}
    command = [sys.executable, "-I", os.path.abspath(__file__), socket_name(), str(local_size)]
    command += [str(launcher), *job_files()]
    try:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            start_new_session=True,  # out of reach of the kill that ends the job
        )
    except OSError:
        return False
    finally:
        if stderr is not subprocess.DEVNULL:
            stderr.close()
    ready = proc.stdout.readline().strip() == b"ready"
    proc.stdout.close()
    return ready


def connect(rank: int) -> bool:
    """On every local rank (after `start`): connect and say hello; True if connected."""
    global _connection
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect("\0" + socket_name())
        conn.sendall(f"hello {rank} {os.getpid()}\n".encode())
    except OSError:
        return False
    _connection = conn
    return True


def tell(word: str) -> None:
    """Say `bye` (a normal exit) or `abort` (a deliberate abort) to the watcher."""
    global _connection
    if _connection is None:
        return
    try:
        _connection.sendall(f"{word}\n".encode())
        _connection.close()
    except OSError:
        pass
    _connection = None


# ---- the watcher process ----------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with open(f"/proc/{pid}/stat") as f:  # a zombie has exited but is not yet reaped
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def remove(paths) -> list[str]:
    """Delete the files of `paths` that still exist; returns those deleted."""
    removed = []
    for path in paths:
        try:
            os.unlink(path)
            removed.append(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            print(f"sim watchdog: could not remove {path}: {exc}", file=sys.stderr)
    return removed


def watch(name: str, local_size: int, launcher: int, files: list[str]) -> None:
    """The watcher's life: accept the ranks, wait for them to go, report, clean up."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + name)
    listener.listen(local_size)
    print("ready", flush=True)
    sys.stdout.close()
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    ranks: dict = {}  # socket → {"rank", "pid", "words", "text"}
    hellos = 0
    spoke = aborted = False
    give_up = time.monotonic() + CONNECT_SECONDS
    while True:
        if hellos >= local_size and not ranks:
            break  # everyone came and went
        if not ranks and time.monotonic() > give_up:
            break  # some rank never came (it died during start-up)
        for key, _ in sel.select(timeout=1.0):
            if key.fileobj is listener:
                conn, _ = listener.accept()
                ranks[conn] = {"rank": "?", "pid": "?", "words": set(), "text": b""}
                sel.register(conn, selectors.EVENT_READ)
                continue
            conn, state = key.fileobj, ranks[key.fileobj]
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            state["text"] += data
            *lines, state["text"] = state["text"].split(b"\n")
            for line in lines:
                words = line.decode(errors="replace").split()
                if words[:1] == ["hello"] and len(words) == 3:
                    state["rank"], state["pid"] = words[1], words[2]
                    hellos += 1
                elif words:
                    state["words"].add(words[0])
            aborted = aborted or "abort" in state["words"]
            if data:
                continue
            sel.unregister(conn)
            conn.close()
            del ranks[conn]
            if not (state["words"] or aborted or spoke):
                spoke = True
                sys.stderr.write(
                    f"sim: rank {state['rank']} (pid {state['pid']}) died without a word "
                    f"(killed by a signal, or it crashed or exited outside Python); "
                    f"mpirun ends the job\n"
                )
                sys.stderr.flush()
    end = time.monotonic() + LAUNCHER_SECONDS
    while _alive(launcher) and time.monotonic() < end:
        time.sleep(0.05)
    remove(files)


if __name__ == "__main__":
    watch(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])
