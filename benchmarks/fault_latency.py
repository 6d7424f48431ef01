"""How long a job takes to end after one rank fails, per kind of fault, at the default deadline.

    python benchmarks/fault_latency.py [--ranks 4] [--timeout SECONDS] [--faults kill,stop,...]

Each fault runs tests/mpi_workers/fault_worker.py under `mpirun -n RANKS`: rank 2 fails at
step 3 of a loop of ring all-reduces (or of pipeline-style send/recv, "pipeline-stop"), and
prints the wall-clock time just before it does. The table shows the seconds from that moment to
mpirun's exit, mpirun's exit status and the line that names the failed rank. SIM_TIMEOUT is left
unset (sim's default deadline) unless --timeout is given.

What to expect: kill -9 and an exception end the job within a second or two (mpirun reacts to
the dead process; the excepthook aborts); a stopped rank and an early exit end it when the
others' deadline passes — just under SIM_TIMEOUT after they began waiting (sim/deadline.py).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "tests" / "mpi_workers" / "fault_worker.py"
FAULTS = {
    "kill": ("kill", "all_reduce"),
    "stop": ("stop", "all_reduce"),
    "raise": ("raise", "all_reduce"),
    "exit": ("exit", "all_reduce"),
    "pipeline-stop": ("stop", "pipeline"),
}


def mpirun() -> str:
    here = Path(sys.executable).parent / "mpirun"
    return str(here) if here.exists() else "mpirun"


def run(fault: str, pattern: str, ranks: int, limit: float, env: dict) -> dict:
    command = [mpirun(), "-n", str(ranks), sys.executable, str(WORKER), fault, pattern]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=env, text=True)
        try:
            code = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        ended = time.time()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    stamps = [float(ln.split()[1]) for ln in stdout.splitlines() if ln.startswith("FAULT ")]
    named = re.search(r"^(sim: .*|\[sim\] uncaught exception on rank \d+ of \d+)", stderr, re.M)
    return {
        "seconds": ended - stamps[0] if stamps else float("nan"),
        "code": code,
        "named": named.group(1)[:90] if named else "(no rank named)",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=None, help="SIM_TIMEOUT (default: unset)")
    parser.add_argument("--faults", default=",".join(FAULTS))
    args = parser.parse_args()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("SIM_TIMEOUT", None)
    if args.timeout is not None:
        env["SIM_TIMEOUT"] = str(args.timeout)
    limit = 3 * (args.timeout or 30.0) + 60  # a hang is reported, not waited for forever
    print(f"# mpirun -n {args.ranks}, SIM_TIMEOUT={env.get('SIM_TIMEOUT', 'unset (default)')}")
    print(f"# load average at start: {os.getloadavg()[0]:.2f}")
    print(f"{'fault':>14} | {'fault → exit s':>14} | {'status':>6} | named")
    for name in args.faults.split(","):
        fault, pattern = FAULTS[name]
        row = run(fault, pattern, args.ranks, limit, env)
        line = f"{name:>14} | {row['seconds']:14.2f} | {row['code']:>6} | {row['named']}"
        print(line, flush=True)
    print(f"# load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
