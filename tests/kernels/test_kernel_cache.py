"""Compile once per machine: several MPI ranks starting together on an empty numba cache.

The truth is numba's own bookkeeping (each dispatcher's cache hits and misses): on an empty
cache, local rank 0 compiles and the other ranks only load what it wrote; a second launch
compiles nothing at all; the kernels every rank loaded compute what the NumPy formulas give
(a cache corrupted by concurrent writers would not); and the code rank 0 compiled computes the
same bits as the code the others loaded — a kernel whose machine code depended on whether its
helpers came from the cache would make the first run after install differ from every later one.
"""

import pytest
from mpi_helpers import run_mpi

pytestmark = [pytest.mark.mpi, pytest.mark.slow]


def test_ranks_share_one_cache(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    first = run_mpi("cache_worker.py", 4, env=env, timeout=600).results()
    assert [r["rank"] for r in first] == [0, 1, 2, 3]
    assert first[0]["compiled"] > 0  # rank 0 paid the compile …
    for r in first[1:]:
        assert r["compiled"] == 0, r  # … the others only loaded it
        assert r["loaded"] > 0, r
    assert all(r["correct"] for r in first), first
    assert len({r["digest"] for r in first}) == 1, first  # compiled here = loaded from cache

    second = run_mpi("cache_worker.py", 4, env=env, timeout=300).results()
    for r in second:
        assert r["compiled"] == 0, r  # a warm start compiles nothing
        assert r["loaded"] > 0 and r["correct"], r
        assert r["digest"] == first[0]["digest"], r
