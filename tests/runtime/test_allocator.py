"""tinyllm/runtime/allocator.py: freed arrays' pages are kept for the next allocation — when a
program asks for it, never because tinyllm was imported.

The truth is the kernel's own count of minor page faults (getrusage). A step-like pattern —
allocate eight 4 MiB arrays, write them, free them all, 20 times — hands 32 MiB back to the
kernel every round under glibc's defaults (the free top of the heap is over the trim
threshold), so every round maps its 8 × 1024 pages again; once the thresholds are raised the
pages of the first round are reused.
"""

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's"
)

SNIPPET = """
import resource, sys, numpy as np, tinyllm
from tinyllm.runtime import allocator
if sys.argv[1] == "configure":
    allocator.configure()                                   # what the examples do
def step():
    arrays = [np.ones(1 << 20, dtype=np.float32) for _ in range(8)]   # 4 MiB each, written
    del arrays
step()                                                      # first touch: always faults
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(allocator.configured(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


def faults(program: str, malloc: str | None):
    env = dict(os.environ)
    env.pop("TINYLLM_MALLOC", None)
    if malloc is not None:
        env["TINYLLM_MALLOC"] = malloc
    out = subprocess.run(
        [sys.executable, "-c", SNIPPET, program],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    return out[0] == "True", int(out[1])


def test_importing_tinyllm_leaves_the_allocator_alone():
    configured, n = faults("import-only", None)
    assert not configured
    assert n >= 20 * 1024  # every round maps at least one array's pages again


def test_a_program_that_asks_reuses_freed_pages():
    configured, n = faults("configure", None)
    assert configured
    assert n < 1024  # less than one array's worth of pages in 20 rounds


def test_the_environment_can_ask_at_import():
    configured, n = faults("import-only", "tuned")
    assert configured
    assert n < 1024


def test_system_keeps_glibc_defaults_even_when_a_program_asks():
    configured, n = faults("configure", "system")
    assert not configured
    assert n >= 20 * 1024


def test_unknown_choice_is_an_error():
    """A misspelt TINYLLM_MALLOC must not silently keep (or drop) the tuned thresholds."""
    env = {**os.environ, "TINYLLM_MALLOC": "sytem"}
    run = subprocess.run(
        [sys.executable, "-c", "import tinyllm"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    assert "TINYLLM_MALLOC='sytem'" in run.stderr
