"""Run a script under `mpirun -n N` from a test: a timeout, and every rank's output on failure.

Distributed code is tested for real: pytest spawns `mpirun -n N python script.py args` (MPICH
oversubscribes happily, so 4 ranks run on 2 cores) and inspects what the ranks printed. Workers
print one line `RESULTS <json>` (rank 0, after gathering every rank's results) for the test to
check against formulas written in the test itself.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

WORKERS = Path(__file__).parent / "mpi_workers"


def mpirun_path() -> str:
    """The mpirun beside this Python (the pip `mpich` wheel's), else the one on PATH."""
    here = Path(sys.executable).parent / "mpirun"
    found = str(here) if here.exists() else shutil.which("mpirun") or shutil.which("mpiexec")
    if found is None:
        raise RuntimeError("mpirun not found: install the `mpich` wheel (pip install mpich)")
    return found


@dataclass
class MPIResult:
    command: list
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        return (
            f"$ {' '.join(self.command)}\nexit status {self.returncode} after "
            f"{self.seconds:.1f} s\n--- stdout (all ranks) ---\n{self.stdout}\n"
            f"--- stderr (all ranks) ---\n{self.stderr}"
        )

    def results(self) -> object:
        """The JSON a worker printed after `RESULTS ` (exactly one such line is expected)."""
        lines = [ln for ln in self.stdout.splitlines() if ln.startswith("RESULTS ")]
        assert len(lines) == 1, f"expected one RESULTS line\n{self.describe()}"
        return json.loads(lines[0][len("RESULTS ") :])


def run_mpi(
    script, n: int | None, args=(), timeout: float = 60, env: dict | None = None, check: bool = True
) -> MPIResult:
    """Run `script` on n ranks (n=None: plain `python`, world size 1, no mpirun).

    check=True: fail with every rank's output unless the job exits with status 0. The job is
    killed (its whole process group) if it runs past `timeout` seconds.
    """
    script = Path(script)
    if not script.is_absolute():
        script = WORKERS / script
    command = [sys.executable, str(script), *map(str, args)]
    if n is not None:
        command = [mpirun_path(), "-n", str(n)] + command
    full_env = {**os.environ, "SIM_TIMEOUT": "30", "PYTHONUNBUFFERED": "1", **(env or {})}
    start = time.monotonic()
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as timed_out:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        result = MPIResult(command, -9, stdout, stderr, time.monotonic() - start)
        raise AssertionError(
            f"mpirun job timed out after {timeout} s\n{result.describe()}"
        ) from timed_out
    result = MPIResult(command, proc.returncode, stdout, stderr, time.monotonic() - start)
    if check and result.returncode != 0:
        raise AssertionError(f"mpirun job failed\n{result.describe()}")
    return result
