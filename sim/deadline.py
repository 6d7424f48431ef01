"""Deadlines: no rank waits forever, and when one gives up it names the rank that failed.

A blocking MPI call (`Send`, `Recv`, `Sendrecv`, `Barrier`, `Allreduce`, …) waits as long as it
takes. If the rank it waits for is stopped, crashed or already gone, it waits forever, and a
four-rank job hangs with no word about why. So sim never blocks inside MPI. Every operation is
started non-blocking (`Isend`, `Irecv`, `Ibarrier`, `Iallreduce`, …) and its request is *polled*
against a deadline:

    while not Test(request):
        if now − start > timeout − grace: raise the alarm
        pause: spin for the first ~50 µs (the answer is usually already on its way), then
               poll after sched_yield() — the core goes to any other runnable process, e.g.
               a rank still computing, four ranks sharing two cores — for up to 1 s, then
               sleep, doubling the pause up to 1 ms

Why yield and not sleep from the start: each Test also drives MPI's progress engine (a
multi-round collective advances only while its ranks poll), and a sleeping rank wakes late on a
loaded machine — sleeping after 5 ms already made a ZeRO-3 training step markedly slower. A
wait longer than a second is waiting for something slow; there the 1 ms pause costs nothing
and spares the CPU.

`timeout` is SIM_TIMEOUT (default 30 s); `grace` = min(2 s, timeout / 5) of it is kept for
naming the culprit, so a job whose rank failed ends within `timeout` of the moment the others
began waiting for it.

Who failed? A waiting rank knows whom it waits for (the peer of its `Irecv`, or of an `Isend`
that a large message keeps open until the receiver takes it) — but that peer may itself be a
victim. In a ring all-reduce with rank 2 stopped, rank 3 waits for 2, rank 0 waits for 3, rank
1 waits for 0: every rank times out, and each would blame its own neighbour. So the ranks ask
each other first. The alarm: the rank that gives up sends every rank a small report on a
channel of its own (a duplicate of MPI.COMM_WORLD),

    {"rank": r, "op": "all_reduce#5 (step 2/3)", "peer": p or None, "group": [world ranks]}

and every rank still polling a request (past its spin phase) listens on that channel every
50 ms; hearing an alarm, it answers with its own report. After the grace period every rank
follows the chain of reports (`blame`): r waits for p, p waits for q, … — the first rank on
the chain that sent no report is the one that stopped, crashed or left. For a collective
request (MPI's built-in ones, the checked-mode agreement, a barrier) the peer is unknown: then
every rank of the group that sent no report is named. A chain that closes on itself is a
deadlock (mismatched send and recv), not a failure, and is reported as such.

One rank — the one that waits directly for the culprit, lowest rank first — prints one line

    sim: rank 2 did not answer all_reduce#5 (step 2/3) within 28 s; aborting

and calls MPI_Abort, which makes mpirun kill every rank and exit non-zero. The others wait a
moment longer (so that the line is not lost when the abort tears the job down), then print
their own verdict and abort too, in case the first one could not.

What a deadline cannot tell: a rank that is merely slow (a long compile, a huge step) looks
like a stalled one once the deadline passes; SIM_TIMEOUT must be longer than the longest
stretch of work between two messages.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from mpi4py import MPI

DEFAULT_TIMEOUT = 30.0
SPIN_SECONDS = 5e-5  # poll without pausing this long: a fast answer pays no sleep
YIELD_SECONDS = 1.0  # then poll after sched_yield() this long: MPI keeps making progress
MAX_PAUSE = 1e-3  # the longest sleep between two polls
LISTEN_EVERY = 0.05  # how often a waiting rank checks the alarm channel
ALARM_TAG = 7001


class CollectiveTimeoutError(RuntimeError):
    """A rank waited past the deadline (raised only where there is no job to abort)."""


def timeout_from_env() -> float:
    """SIM_TIMEOUT in seconds (default 30); a clear error for a value that is not a number."""
    text = os.environ.get("SIM_TIMEOUT", "")
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"SIM_TIMEOUT={text!r} is not a number of seconds") from None
    if not value > 0:
        raise ValueError(f"SIM_TIMEOUT={text!r} must be a positive number of seconds")
    return value


def grace_seconds(timeout: float) -> float:
    """The part of the deadline kept for the ranks to compare notes before aborting."""
    return min(2.0, timeout / 5)


# ---- the alarm channel ------------------------------------------------------------------------

_channel = None  # a duplicate of MPI.COMM_WORLD carrying only alarms
_abort_hooks: list = []  # called just before MPI_Abort (the watchdog is told to stay quiet)


def open_channel() -> None:
    """Create the alarm channel (collective over MPI.COMM_WORLD; once per process)."""
    global _channel
    if _channel is None:
        _channel = MPI.COMM_WORLD.Dup()


def on_abort(hook) -> None:
    """Register `hook()` to run right before this module aborts the job."""
    _abort_hooks.append(hook)


def abort_job(line: str) -> None:
    """Print one line on stderr, let the launcher forward it, and MPI_Abort every rank."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    sys.stdout.flush()
    for hook in _abort_hooks:
        try:
            hook()
        except Exception:  # cleaning up must never stop the abort
            pass
    if MPI.COMM_WORLD.Get_size() == 1:
        raise CollectiveTimeoutError(line)
    time.sleep(0.3)  # mpirun forwards output through pipes that the abort closes
    MPI.COMM_WORLD.Abort(1)


# ---- waiting --------------------------------------------------------------------------------


class Wait:
    """What one rank is waiting for: the text of the operation, the peer, the group.

    `peer` and `group` are world ranks; `peer` is None when the request is a collective whose
    missing member cannot be told from here.
    """

    __slots__ = ("op", "peer", "group")

    def __init__(self, op: str, peer: int | None, group):
        self.op, self.peer, self.group = op, peer, group

    def report(self) -> dict:
        return {
            "rank": MPI.COMM_WORLD.Get_rank(),
            "op": self.op,
            "peer": self.peer,
            "group": list(self.group),
        }


_yield = getattr(os, "sched_yield", lambda: time.sleep(0))


def wait(requests: list, timeout: float, describe, statuses=None) -> None:
    """Complete every request of `requests`, or end the job once `timeout` has passed.

    `describe()` returns the `Wait` (op, peer, group) and is only called when something goes
    wrong, so that the common path builds no strings. `statuses` (a list of MPI.Status, one
    per request) receives the statuses, e.g. the byte count of a receive.
    """
    if MPI.Request.Testall(requests, statuses):
        return
    start = time.monotonic()
    alarm_at = start + timeout - grace_seconds(timeout)
    listen_at = start + LISTEN_EVERY
    pause = 0.0
    while not MPI.Request.Testall(requests, statuses):
        now = time.monotonic()
        if now >= alarm_at:
            raise_alarm(describe(), timeout)
        waited = now - start
        if waited < SPIN_SECONDS:
            continue
        if now >= listen_at:
            listen_at = now + LISTEN_EVERY
            if _heard_alarm():
                raise_alarm(describe(), timeout)
        if waited < YIELD_SECONDS:
            _yield()
        else:
            time.sleep(pause)
            pause = min(2 * pause + 1e-5, MAX_PAUSE)


def _heard_alarm() -> bool:
    return _channel is not None and _channel.Iprobe(source=MPI.ANY_SOURCE, tag=ALARM_TAG)


def _send_report(report: dict, keep: list) -> None:
    """Post our report to every other world rank; never wait for these sends."""
    data = np.frombuffer(json.dumps(report).encode(), dtype=np.uint8).copy()
    keep.append(data)
    me = MPI.COMM_WORLD.Get_rank()
    for r in range(MPI.COMM_WORLD.Get_size()):
        if r != me:
            try:
                keep.append(_channel.Isend(data, dest=r, tag=ALARM_TAG))
            except MPI.Exception:  # that rank is gone; it will be named, not told
                pass


def _collect_reports(reports: dict, until: float) -> None:
    """Add the reports that arrive before `until` (monotonic seconds) to `reports`."""
    status = MPI.Status()
    while True:
        while _channel.Iprobe(source=MPI.ANY_SOURCE, tag=ALARM_TAG, status=status):
            data = np.empty(status.Get_count(MPI.BYTE), np.uint8)
            # The message is already here (Iprobe saw it), so this receive returns at once.
            _channel.Recv(data, source=status.Get_source(), tag=ALARM_TAG)
            report = json.loads(data.tobytes())
            reports[report["rank"]] = report
        if time.monotonic() >= until:
            return
        time.sleep(0.01)


def raise_alarm(waiting: Wait, timeout: float) -> None:
    """Compare notes with the other ranks for a grace period, name the culprit, abort."""
    me = MPI.COMM_WORLD.Get_rank()
    grace = grace_seconds(timeout)
    waited = timeout - grace
    mine = waiting.report()
    reports = {me: mine}
    if _channel is None or MPI.COMM_WORLD.Get_size() == 1:
        abort_job(verdict_line(reports, me, waited))
        return
    keep: list = []
    _send_report(mine, keep)
    # Half the grace period to hear the others (a rank that only joined listens too: not all
    # may have spoken yet), the other half for the printer to abort the job.
    _collect_reports(reports, time.monotonic() + grace / 2)
    if printer(reports) != me:
        time.sleep(grace / 2)  # the printer aborts the job meanwhile; if not, speak ourselves
        _collect_reports(reports, time.monotonic() + 0.01)
    abort_job(verdict_line(reports, me, waited))


# ---- who is to blame (pure functions of the reports) ------------------------------------------


def blame(reports: dict, start: int) -> tuple[list[int], list[int]]:
    """Follow "r waits for p" from rank `start` through the ranks that sent a report.

    Returns (culprits, chain): the ranks that sent no report where the chain ends (empty for a
    deadlock or when everyone answered), and the ranks visited, in order (a deadlock's chain
    ends with the rank it started the cycle from).
    """
    chain = [start]
    rank = start
    while True:
        report = reports[rank]
        peer = report["peer"]
        if peer is None:
            return [r for r in report["group"] if r not in reports], chain
        if peer not in reports:
            return [peer], chain
        if peer in chain:
            return [], chain + [peer]
        chain.append(peer)
        rank = peer


def printer(reports: dict) -> int:
    """The rank that prints the verdict: the lowest one that waits directly for a culprit."""
    direct = []
    for r in sorted(reports):
        culprits, chain = blame(reports, r)
        if culprits and len(chain) == 1:
            direct.append(r)
    return direct[0] if direct else min(reports)


def verdict_line(reports: dict, me: int, waited: float) -> str:
    """The one line printed before the abort."""
    culprits, chain = blame(reports, me)
    last = reports[chain[-1]]
    if culprits:
        who = ("rank " if len(culprits) == 1 else "ranks ") + ", ".join(map(str, culprits))
        return f"sim: {who} did not answer {last['op']} within {waited:.3g} s; aborting"
    if len(chain) > 1 and chain[-1] in chain[:-1]:
        cycle = " → ".join(f"rank {r} ({reports[r]['op']})" for r in chain)
        return f"sim: deadlock, each rank waits for the next: {cycle}; aborting"
    doing = ", ".join(f"rank {r} in {reports[r]['op']}" for r in sorted(reports))
    return (
        f"sim: no rank failed, but the ranks wait in different operations for {waited:.3g} s "
        f"({doing}); aborting"
    )
