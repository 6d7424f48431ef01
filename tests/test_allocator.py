"""tinyllm/allocator.py: freed arrays' pages are kept for the next allocation.

The truth is the kernel's own count of minor page faults (getrusage). A step-like pattern —
allocate eight 4 MiB arrays, write them, free them all, 20 times — hands 32 MiB back to the
kernel every round under glibc's defaults (TINYLLM_MALLOC=system: the free top of the heap is
over the trim threshold), so every round maps its 8 × 1024 pages again; once tinyllm has raised
the thresholds the pages of the first round are reused.
"""
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc",
                                reason="mallopt thresholds are glibc's")

SNIPPET = """
import resource, numpy as np, tinyllm
from tinyllm import allocator
def step():
    arrays = [np.ones(1 << 20, dtype=np.float32) for _ in range(8)]   # 4 MiB each, written
    del arrays
step()                                                      # first touch: always faults
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(allocator.configured(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


def faults(env_extra):
    env = {**os.environ, **env_extra}
    out = subprocess.run([sys.executable, "-c", SNIPPET], env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    return out[0] == "True", int(out[1])


def test_freed_pages_are_reused():
    configured, n = faults({"TINYLLM_MALLOC": ""})
    assert configured
    assert n < 1024                      # less than one array's worth of pages in 20 rounds


def test_system_allocator_when_asked():
    configured, n = faults({"TINYLLM_MALLOC": "system"})
    assert not configured
    assert n >= 20 * 1024                # every round maps at least one array's pages again


def test_unknown_choice_is_an_error():
    """A misspelt TINYLLM_MALLOC must not silently keep (or drop) the tuned thresholds."""
    env = {**os.environ, "TINYLLM_MALLOC": "sytem"}
    run = subprocess.run([sys.executable, "-c", "import tinyllm"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode != 0
    assert "TINYLLM_MALLOC='sytem'" in run.stderr
