"""sim's communicator and collectives, under a real `mpirun -n 2` and `-n 4`.

The truth is stated three ways: every result is compared with a plain-NumPy reduction of all
ranks' inputs (each rank regenerates the others' inputs from the seed); the "explicit" backend
(point-to-point messages) and the "mpi" backend (MPI's built-in collectives) must both match it;
and the counted traffic must equal the textbook volumes written below — ring reduce-scatter and
all-gather send (n−1)/n·S per rank, ring all-reduce 2(n−1)/n·S, a binomial-tree broadcast or
reduce moves (n−1)·S in total over n−1 messages. Hypothesis draws the cases in this process;
one mpirun runs them all.
"""

import json
import math

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from mpi_helpers import run_mpi

from sim.collectives import binomial_tree, chunk_offsets, chunk_sizes, padded_count

OPS = ("all_reduce", "reduce_scatter", "all_gather", "broadcast", "reduce")

ITEMSIZE = {"float16": 2, "uint16": 2, "float32": 4, "float64": 8}
# Relative to the sum of |inputs|: float16 rounds every partial sum (up to n steps of 2^-11).
TOLERANCE = {"float16": 4e-3, "uint16": 0.0, "float32": 1e-5, "float64": 1e-12}


def movable(case):
    """uint16 (bf16 bit patterns) can be moved but not summed: reductions get float16."""
    if case["dtype"] == "uint16" and case["op"] in ("all_reduce", "reduce_scatter", "reduce"):
        case["dtype"] = "float16"
    return case


case_strategy = st.fixed_dictionaries(
    {
        "op": st.sampled_from(OPS),
        "count": st.one_of(st.integers(0, 9), st.integers(10, 600), st.integers(2000, 30000)),
        "dtype": st.sampled_from(["float32", "float64", "float16", "uint16"]),
        "root": st.integers(0, 3),
        "reduce": st.sampled_from(["sum", "avg"]),
        "seed": st.integers(0, 2**31 - 1),
    }
).map(movable)


def edge_cases(n):
    """Sizes every run includes: empty, one element, around and at multiples of n."""
    cases = []
    for i, op in enumerate(OPS):
        for count in (0, 1, n - 1, n + 1, 4 * n, 1000 * n):
            cases.append(
                {
                    "op": op,
                    "count": count,
                    "dtype": "float32" if count % 2 else "float64",
                    "root": count % 4,
                    "reduce": "avg" if i % 2 else "sum",
                    "seed": count,
                }
            )
    for dtype in ("float16", "uint16"):
        for op in OPS:
            cases.append(
                movable(
                    {
                        "op": op,
                        "count": 3 * n + 1,
                        "dtype": dtype,
                        "root": 1,
                        "reduce": "sum",
                        "seed": 7,
                    }
                )
            )
    return cases


def run_cases(tmp_path, n, cases, misc=False):
    path = tmp_path / f"cases_{n}.json"
    path.write_text(json.dumps(cases))
    args = [path] + (["--misc"] if misc else [])
    result = run_mpi("collectives_worker.py", n, args, timeout=120)
    ranks = result.results()
    assert [r["rank"] for r in ranks] == list(range(n or 1))
    return result, ranks


def check_values(case, rows, n):
    """Both backends agree with the NumPy reference; replicated results agree bitwise."""
    tol = TOLERANCE[case["dtype"]]
    for backend in ("explicit", "mpi"):
        for rank, row in enumerate(rows):
            got = row[backend]
            assert got["err"] <= tol * max(1.0, got["scale"]), (backend, rank, case, got)
            assert got["unchanged"], f"{backend} modified its input on rank {rank}: {case}"
    if case["op"] in ("all_reduce", "all_gather", "broadcast"):
        digests = {row["explicit"]["digest"] for row in rows}
        assert len(digests) == 1, f"ranks hold different results: {case}"


def check_traffic(case, rows, n):
    """Counted bytes and messages equal the textbook volumes, for both backends."""
    itemsize = ITEMSIZE[case["dtype"]]
    S = case["count"] * itemsize  # the full buffer, in bytes
    root = case["root"] % n
    explicit = [row["explicit"]["traffic"] for row in rows]
    counted = [row["mpi"]["traffic"] for row in rows]
    assert explicit == counted, f"MPI backend counted differently from the real messages: {case}"
    sent = [t["bytes_sent"] for t in explicit]
    recv = [t["bytes_recv"] for t in explicit]
    msgs = [t["messages_sent"] for t in explicit]
    assert sum(sent) == sum(recv)  # every byte sent is received
    op = case["op"]
    if op in ("reduce_scatter", "all_gather", "all_reduce"):
        phases = 2 if op == "all_reduce" else 1
        assert msgs == [phases * (n - 1)] * n
        # In total the ring moves phases·(n−1)·S bytes, whatever the chunking...
        assert sum(sent) == phases * (n - 1) * S
        if case["count"] % n == 0:  # ...and with equal chunks exactly phases·(n−1)/n·S each.
            assert sent == [phases * (n - 1) * S // n] * n
            assert recv == sent
        else:  # uneven chunks differ by at most one element each
            for b in sent + recv:
                assert abs(b - phases * (n - 1) * S / n) <= phases * itemsize
    else:
        # Binomial tree: n−1 messages of S bytes in ⌈log₂ n⌉ rounds.
        assert sum(msgs) == n - 1
        assert sum(sent) == (n - 1) * S
        if op == "broadcast":
            assert recv == [0 if r == root else S for r in range(n)]
            assert sent[root] == math.ceil(math.log2(n)) * S
        else:
            assert sent == [0 if r == root else S for r in range(n)]
            assert recv[root] == math.ceil(math.log2(n)) * S


@given(count=st.integers(0, 10_000), n=st.integers(1, 64))
def test_chunks_cover_the_buffer_and_padding_makes_them_equal(count, n):
    sizes = chunk_sizes(count, n)
    assert sum(sizes) == count and max(sizes) - min(sizes) <= 1
    assert chunk_offsets(count, n) == [sum(sizes[:c]) for c in range(n + 1)]
    padded = padded_count(count, n)
    assert padded % n == 0 and count <= padded < count + n
    assert set(chunk_sizes(padded, n)) == {padded // n}


@given(n=st.integers(1, 70))
def test_binomial_tree_reaches_every_rank_once_in_log2_rounds(n):
    parents = {v: binomial_tree(v, n)[0] for v in range(n)}
    assert parents[0] is None
    for v in range(n):
        parent, children = binomial_tree(v, n)
        for c in children:
            assert parents[c] == v  # children and parents agree
        depth, u = 0, v  # the path to the root has at most ⌈log₂ n⌉ hops
        while parents[u] is not None:
            u, depth = parents[u], depth + 1
        assert depth <= math.ceil(math.log2(n)) if n > 1 else depth == 0


@pytest.mark.mpi
@pytest.mark.parametrize("n", [2, 4])
# One drawn list of cases per world size; no shrinking (each try is an mpirun, and a failure
# message already names the failing case).
@settings(
    max_examples=1,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(drawn=st.lists(case_strategy, min_size=30, max_size=30))
def test_collectives_match_mpi_and_textbook_volumes(tmp_path, n, drawn):
    cases = edge_cases(n) + drawn
    result, ranks = run_cases(tmp_path, n, cases, misc=True)
    for i, case in enumerate(cases):
        rows = [r["cases"][i] for r in ranks]
        check_values(case, rows, n)
        check_traffic(case, rows, n)
    check_misc([r["misc"] for r in ranks], n, result.stderr)


def check_misc(misc, n, stderr):
    # split(rank % 2, key=-rank): groups by parity, ordered by descending world rank.
    for rank, m in enumerate(misc):
        group = sorted(range(rank % 2, n, 2), reverse=True)
        s = m["split"]
        assert s["world_ranks"] == group and s["rec_group"] == group
        assert s["sub_size"] == len(group) and s["sub_rank"] == group.index(rank)
        assert s["sum"] == sum(group)
        # The sub-communicator's traffic also counts in the world's stats.
        assert s["world_bytes"] == s["sub_bytes"] == 2 * (len(group) - 1) * 8 // len(group) * 1
        assert m["split_none"] == (rank == 0)
    for rank, m in enumerate(misc):
        # Every rank raised the same clear error, naming each rank's call.
        assert "count=10" in m["mismatch_count"] and "count=11" in m["mismatch_count"]
        assert f"rank {n - 1}" in m["mismatch_recv"] and "invalid here" in m["mismatch_recv"]
        assert "broadcast" in m["mismatch_op"] and "all_reduce" in m["mismatch_op"]
        assert m["usable_after"] == [float(n)] * 3
        assert m["ring_p2p"] == [float((rank - 1) % n)] * 3
        assert m["bcast"] == {"from": 0}
        assert m["after_reset"] == 0
    assert misc[0]["gathered"] == [{"rank": r} for r in range(n)]
    assert (
        "expected 32 bytes" in misc[1]["recv_size_error"]
        and "had 24 bytes" in misc[1]["recv_size_error"]
    )
    assert {"send", "sendrecv"} <= set(misc[0]["p2p_ops"])
    # Verbose mode traced each message of the last all-reduce (8 float32 = 32 bytes).
    chunk = 32 // n
    for rank in range(n):
        assert f"[sim {rank} | {rank}/{n}] all_reduce#" in stderr
    assert f"send {chunk} B → " in stderr and f"recv {chunk} B ← " in stderr


def test_world_size_one_without_mpirun(tmp_path):
    """Plain `python` (no mpirun): one rank, every collective is a copy, nothing is sent."""
    cases = [c for c in edge_cases(1)]
    _, ranks = run_cases(tmp_path, None, cases)
    (only,) = ranks
    assert only["size"] == 1
    for case, row in zip(cases, only["cases"]):
        check_values(case, [row], 1)
        for backend in ("explicit", "mpi"):
            assert row[backend]["traffic"] == {
                "bytes_sent": 0,
                "bytes_recv": 0,
                "messages_sent": 0,
                "messages_recv": 0,
            }


@pytest.mark.mpi
@pytest.mark.parametrize(
    "mode,expect",
    [
        (
            "raise",
            ["uncaught exception on rank 1 of 2", "ValueError: deliberate failure on rank 1"],
        ),
        (
            "absent",
            ["sim: rank 1 did not answer all_reduce#1 (checking that every rank entered it)"],
        ),
    ],
)
def test_failure_on_one_rank_ends_the_job(mode, expect):
    timeout = 60
    result = run_mpi(
        "failure_worker.py", 2, [mode], timeout=timeout, check=False, env={"SIM_TIMEOUT": "3"}
    )
    assert result.returncode != 0, result.describe()
    assert result.seconds < timeout / 4, result.describe()  # ended by abort, not by our timeout
    for text in expect:
        assert text in result.stderr, result.describe()
    assert "should never get here" not in result.stdout
