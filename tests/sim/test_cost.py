"""The cost model's arithmetic, against values computed by hand."""

import math

import numpy as np
import pytest

from sim.comm import CommRecord
from sim.cost import PROFILES, HardwareProfile, Link, Timeline, get_profile

us = 1e-6


def ring_record(S, n, group=None, itemsize=4):
    """What one rank of a ring all-reduce of S bytes over n ranks sends: 2(n−1)/n·S."""
    sent = 2 * (n - 1) * S // n
    return CommRecord(
        "all_reduce",
        S // itemsize,
        itemsize,
        "explicit",
        tuple(range(n)) if group is None else group,
        bytes_sent=sent,
        bytes_recv=sent,
        messages_sent=2 * (n - 1),
        messages_recv=2 * (n - 1),
    )


def test_link_is_latency_plus_bytes_over_bandwidth():
    assert Link(2 * us, 1e9).seconds(1e6, messages=3) == pytest.approx(6e-6 + 1e-3)


def test_profiles_have_datasheet_peaks():
    a100 = get_profile("A100-80GB")
    assert a100.compute_seconds(19.5e12, "fp32") == pytest.approx(1.0)
    assert a100.compute_seconds(312e12, "bf16") == pytest.approx(1.0)
    assert a100.compute_seconds(156e12, "tf32") == pytest.approx(1.0)
    assert a100.compute_seconds(19.5e12, np.float32) == pytest.approx(1.0)
    assert get_profile("H100-80GB").compute_seconds(989.4e12, "bf16") == pytest.approx(1.0)
    assert get_profile("V100-32GB").compute_seconds(125e12, "fp16") == pytest.approx(1.0)
    assert a100.memory_bytes == 80 * 2**30
    assert {"V100-32GB", "A100-80GB", "H100-80GB", "A100-80GB-PCIe"} <= set(PROFILES)
    with pytest.raises(ValueError, match="unknown hardware profile"):
        get_profile("TPU")
    with pytest.raises(ValueError, match="unknown compute dtype"):
        a100.compute_seconds(1.0, "int8")


def test_ring_all_reduce_cost_on_nvlink_and_across_nodes():
    a100 = get_profile("A100-80GB")  # NVLink 300 GB/s each way, 2 µs; IB 25 GB/s, 5 µs
    S, n = 10**8, 4
    # 2(n−1) = 6 messages; 2(n−1)/n·S = 1.5e8 bytes.
    assert a100.comm_seconds(ring_record(S, n)) == pytest.approx(6 * 2 * us + 1.5e8 / 300e9)
    # Ranks 0 and 8 are in different nodes of 8 GPUs: the ring runs at InfiniBand speed.
    assert a100.comm_seconds(ring_record(S, 2, group=(0, 8))) == pytest.approx(
        2 * 5 * us + 1e8 / 25e9
    )
    pcie = get_profile("A100-80GB-PCIe")
    assert pcie.comm_seconds(ring_record(S, n)) == pytest.approx(6 * 5 * us + 1.5e8 / 32e9)
    assert a100.transfer_seconds(32e9) == pytest.approx(1.0 + 10 * us)


def toy_profile():
    # 1 TFLOP/s, 1 µs + 1 GB/s links, 2 GB/s PCIe with 0 latency: easy numbers by hand.
    return HardwareProfile(
        "toy",
        1 << 30,
        {"fp32": 1e12},
        intra_node=Link(1 * us, 1e9),
        inter_node=Link(1 * us, 1e9),
        host=Link(0.0, 2e9),
    )


def test_bucketed_all_reduce_overlaps_backward():
    """Three backward layers of 1 ms each; after each, a 1 MB bucket all-reduce (1.001 ms).

    compute: [0, 1] [1, 2] [2, 3] ms.
    comm:    bucket 0 starts at 1 ms → 2.001; bucket 1 waits for the stream → 3.002;
             bucket 2 → 4.003. The optimizer (0.5 ms) waits for all buckets: 4.503 ms,
    instead of 3 + 3.003 + 0.5 = 6.503 ms without overlap.
    """
    tl = Timeline(toy_profile())
    rec = CommRecord(
        "all_reduce",
        0,
        4,
        "explicit",
        (0, 1),
        bytes_sent=10**6,
        bytes_recv=10**6,
        messages_sent=1,
        messages_recv=1,
    )
    buckets = []
    for layer in range(3):
        tl.compute(1e9, f"backward layer {2 - layer}")
        buckets.append(tl.communicate(rec, f"all_reduce bucket {layer}"))
    assert [b.start for b in buckets] == pytest.approx([1e-3, 2.001e-3, 3.002e-3])
    assert buckets[-1].end == pytest.approx(4.003e-3)
    tl.wait(buckets)
    step = tl.compute(0.5e9, "optimizer")
    assert step.start == pytest.approx(4.003e-3) and tl.elapsed == pytest.approx(4.503e-3)
    s = tl.summary()
    assert s["serial_seconds"] == pytest.approx(6.503e-3)
    assert s["exposed_comm_seconds"] == pytest.approx(4.503e-3 - 3.5e-3)
    text = tl.format(width=40)
    assert "compute" in text and "all_reduce bucket 2" in text and len(tl.as_dicts()) == 7


def test_compute_waits_for_a_prefetched_all_gather_and_copies_use_pcie():
    tl = Timeline(toy_profile())
    rec = CommRecord(
        "all_gather",
        0,
        4,
        "explicit",
        (0, 1),
        bytes_sent=2 * 10**6,
        bytes_recv=2 * 10**6,
        messages_sent=1,
        messages_recv=1,
    )
    gather = tl.communicate(rec, "all_gather layer 0", after=[])  # 2.001 ms, from t = 0
    fwd = tl.compute(1e9, "forward layer 0", after=[gather])
    assert fwd.start == pytest.approx(2.001e-3) and fwd.end == pytest.approx(3.001e-3)
    copy = tl.transfer(4e6, "optimizer states to host")  # after the compute: 2 ms at 2 GB/s
    assert copy.start == pytest.approx(3.001e-3) and copy.end == pytest.approx(5.001e-3)
    assert tl.synchronize() == pytest.approx(5.001e-3)
    assert all(math.isclose(t, 5.001e-3) for t in tl.free_at.values())
