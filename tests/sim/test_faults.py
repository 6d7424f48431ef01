"""Fault injection under a real `mpirun -n 4`: one rank fails, the job must end, named and clean.

For each fault — kill -9, SIGSTOP, an uncaught exception, an early sys.exit(0) — the victim,
rank 2, fails at step 3 of a loop of collectives (or of pipeline-style send/recv). The test
checks what a user would: mpirun exits non-zero, soon after the fault (within SIM_TIMEOUT plus
a margin for the teardown), its output names rank 2 and no other rank as the culprit, and none
of the job's own MPICH/hydra temporary files is left (the worker lists them while running),
while files named like another job's are untouched.
"""

import contextlib
import json
import os
import re
import time
import uuid

import pytest
from mpi_helpers import run_mpi

from sim.deadline import blame, grace_seconds, printer, timeout_from_env, verdict_line

SIM_TIMEOUT = 5.0
MARGIN = 4.0  # abort → every process gone, on a loaded 2-core machine
NAMED = {
    "kill": r"sim: rank 2 \(pid \d+\) died without a word",
    "stop": r"sim: rank 2 did not answer ",
    "exit": r"sim: rank 2 did not answer ",
    "raise": r"\[sim\] uncaught exception on rank 2 of 4",
}


@contextlib.contextmanager
def other_jobs_files():
    """Files named like another job's: the cleanup must leave them alone."""
    tag = uuid.uuid4().hex[:8]
    decoys = [f"/dev/shm/mpich_shm_{tag}_0", f"/tmp/hydra_hwloc_xmlfile_{tag}"]
    for path in decoys:
        with open(path, "w") as f:
            f.write("not this job's\n")
    try:
        yield decoys
    finally:
        for path in decoys:
            if os.path.exists(path):
                os.unlink(path)


def run_fault(fault: str, pattern: str):
    started = time.time()
    with other_jobs_files() as decoys:
        result = run_mpi(
            "fault_worker.py",
            4,
            [fault, pattern],
            timeout=60,
            check=False,
            env={"SIM_TIMEOUT": str(SIM_TIMEOUT)},
        )
        ended = time.time()
        assert all(os.path.exists(path) for path in decoys), result.describe()
    text = result.describe()
    assert result.returncode != 0, text
    assert "finished all" not in result.stdout, text
    faults = [float(ln.split()[1]) for ln in result.stdout.splitlines() if ln.startswith("FAULT ")]
    assert len(faults) == 1, text
    assert started < faults[0] < ended
    assert ended - faults[0] < SIM_TIMEOUT + MARGIN, text
    assert re.search(NAMED[fault], result.stderr), text
    blamed = set(re.findall(r"sim: ranks? (\d+)", result.stderr))
    assert blamed <= {"2"}, text  # no other rank is ever blamed
    files_lines = [ln for ln in result.stdout.splitlines() if ln.startswith("FILES ")]
    assert len(files_lines) == 1, text
    files = json.loads(files_lines[0][len("FILES ") :])
    # The job had both kinds of file while it ran (so the check below is not vacuous) ...
    assert any(os.path.basename(f).startswith("mpich_shm_") for f in files), files
    assert any(os.path.basename(f).startswith("hydra_hwloc_xmlfile_") for f in files), files
    # ... and none of them is left now.
    assert [f for f in files if os.path.exists(f)] == [], text
    return result


@pytest.mark.mpi
@pytest.mark.parametrize("fault", ["kill", "stop", "raise", "exit"])
def test_a_failing_rank_ends_the_job_named_and_clean(fault):
    run_fault(fault, "all_reduce")


@pytest.mark.mpi
@pytest.mark.parametrize("fault", ["stop", "kill"])
def test_a_failing_pipeline_stage_ends_the_job(fault):
    """Point-to-point: rank 3 waits on 2's activations, ranks 1 and 0 on the gradients back."""
    result = run_fault(fault, "pipeline")
    if fault == "stop":
        assert re.search(r"did not answer (send to|recv from) rank 2 \(tag 0\)", result.stderr), (
            result.stderr
        )


@pytest.mark.mpi
def test_mpi_builtin_collective_is_covered_too():
    run_fault("stop", "mpi")


@pytest.mark.mpi
def test_a_clean_job_leaves_no_files_and_no_message():
    result = run_mpi("fault_worker.py", 4, ["none", "all_reduce"], timeout=60)
    assert result.stdout.count("finished all") == 4
    files = json.loads(result.stdout.split("FILES ", 1)[1].splitlines()[0])
    assert files and [f for f in files if os.path.exists(f)] == []
    assert "sim:" not in result.stderr, result.describe()


# ---- who is to blame: the reasoning on the reports, without MPI ------------------------------


def report(rank, peer, op="all_reduce#5 (step 2/3)", group=(0, 1, 2, 3)):
    return {"rank": rank, "op": op, "peer": peer, "group": list(group)}


def test_blame_follows_the_ring_to_the_silent_rank():
    # Ring all-reduce with rank 2 stopped: 3 waits for 2, 0 for 3, 1 for 0; 2 sent nothing.
    reports = {3: report(3, 2), 0: report(0, 3), 1: report(1, 0)}
    for start, chain in ((3, [3]), (0, [0, 3]), (1, [1, 0, 3])):
        assert blame(reports, start) == ([2], chain)
    assert printer(reports) == 3  # the one waiting directly for rank 2
    assert verdict_line(reports, 1, 4.0) == (
        "sim: rank 2 did not answer all_reduce#5 (step 2/3) within 4 s; aborting"
    )


def test_blame_of_a_collective_names_every_silent_member():
    reports = {0: report(0, None, "barrier"), 2: report(2, None, "barrier")}
    assert blame(reports, 0) == ([1, 3], [0])
    assert verdict_line(reports, 2, 28.0).startswith("sim: ranks 1, 3 did not answer barrier")


def test_a_cycle_is_a_deadlock_not_a_failure():
    reports = {0: report(0, 1, "recv (tag 0)"), 1: report(1, 0, "recv (tag 0)")}
    assert blame(reports, 0) == ([], [0, 1, 0])
    assert verdict_line(reports, 0, 4.0).startswith("sim: deadlock, each rank waits")


def test_everyone_answered_in_different_operations():
    reports = {0: report(0, None, "all_reduce#3", (0, 1)), 1: report(1, 0, "recv (tag 0)")}
    assert blame(reports, 0) == ([], [0])
    line = verdict_line(reports, 0, 4.0)
    assert "rank 0 in all_reduce#3" in line and "rank 1 in recv (tag 0)" in line


def test_sim_timeout_is_checked(monkeypatch):
    monkeypatch.setenv("SIM_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="SIM_TIMEOUT='soon' is not a number"):
        timeout_from_env()
    monkeypatch.setenv("SIM_TIMEOUT", "-1")
    with pytest.raises(ValueError, match="positive"):
        timeout_from_env()
    monkeypatch.delenv("SIM_TIMEOUT")
    assert timeout_from_env() == 30.0
    assert grace_seconds(30.0) == 2.0 and grace_seconds(5.0) == 1.0
