"""The device-memory ledger: tagged charges, peaks, out-of-memory, and activations measured from
the autograd graph on graphs whose saved bytes are counted by hand."""

import numpy as np
import pytest

import tinyllm
from sim.device import (
    NOTES_RULE,
    TAGS,
    ActivationTracker,
    Device,
    Host,
    OutOfMemoryError,
    bytes_per_parameter,
    format_bytes_per_parameter,
)
from tinyllm import Tensor
from tinyllm.nn import functional as F


def test_current_and_peak_per_tag_and_total():
    dev = Device(10_000, rank=3)
    w = dev.allocate((100,), np.float32, "parameters", "w")  # 400 B
    a = dev.allocate((250,), np.float32, "activations")  # 1000 B
    assert isinstance(w, np.ndarray) and w.shape == (100,) and not w.any()
    assert dev.total == 1400
    dev.free(a)
    g = dev.allocate((100,), np.float32, "gradients")  # 400 B
    assert dev.current == {
        "parameters": 400,
        "gradients": 400,
        "optimizer_states": 0,
        "activations": 0,
        "buffers": 0,
    }
    assert dev.peak["activations"] == 1000 and dev.peak["gradients"] == 400
    # The total's peak is the peak of the sum (1400), not the sum of the per-tag peaks (1800).
    assert dev.peak_total == 1400
    dev.free(g)
    dev.reset_peaks()
    assert dev.peak_total == 400 and dev.peak["activations"] == 0


def test_out_of_memory_prints_the_ledger_and_changes_nothing():
    dev = Device(1000, rank=2)
    dev.allocate((150,), np.float32, "parameters", "transformer.wte.weight")  # 600 B
    with pytest.raises(OutOfMemoryError) as info:
        dev.allocate((125,), np.float32, "gradients", "bucket 0")  # 500 B > 400 B free
    msg = str(info.value)
    assert "device rank 2 out of memory" in msg
    assert "500 bytes" in msg and "gradients (bucket 0)" in msg
    assert "600 B of 1000 B in use" in msg
    for tag in TAGS:
        assert tag in msg  # the ledger's rows
    assert dev.total == 600 and dev.current["gradients"] == 0


def test_bad_use_is_named():
    dev = Device(1 << 20)
    with pytest.raises(ValueError, match="unknown memory tag 'weights'"):
        dev.allocate((4,), np.float32, "weights")
    a = dev.allocate((4,), np.float32, "buffers")
    with pytest.raises(ValueError, match="already charged"):
        dev.register(a[1:], "buffers")  # a view of an array already held
    dev.free(a)
    with pytest.raises(KeyError, match="freed twice"):
        dev.free(a)


def test_host_ledger_has_no_capacity_by_default():
    host = Host(rank=1)
    host.charge("adam m+v", 5 * 2**40, "optimizer_states")  # 5 TiB of bookkeeping, no array
    assert host.total == 5 * 2**40 and "host rank 1" in host.report()
    assert host.release("adam m+v") == 5 * 2**40 and host.total == 0


def test_activations_are_the_saved_arrays_counted_once():
    """x (4, 8) @ W (8, 16) → exp → e * e and eᵀ * eᵀ → sum, all float32.

    Saved for backward: matmul saves x (128 B) and W (a parameter: excluded); exp saves its
    output e (4·16·4 = 256 B); both products save e (as itself, or as the view eᵀ) — the same
    buffer, counted once. Sum saves nothing. So 384 bytes, until backward frees them all.
    """
    rng = np.random.default_rng(0)
    dev = Device(1 << 20)
    W = Tensor(rng.standard_normal((8, 16)).astype(np.float32), requires_grad=True)
    dev.register(W.data, "parameters", "W")
    x = Tensor(rng.standard_normal((4, 8)).astype(np.float32), requires_grad=True)
    with ActivationTracker(dev) as tracker:
        e = (x @ W).exp()
        loss = (e * e).sum() + (e.T * e.T).sum()
        assert dev.current["activations"] == 128 + 256
        assert len(tracker._refs) == 2  # two distinct buffers: x and e
        loss.backward()
        assert dev.current["activations"] == 0
    assert dev.peak["activations"] == 384
    assert dev.current["parameters"] == W.data.nbytes


def test_excluded_parameters_and_no_grad():
    """A Linear layer: x (2, 3, 5) float64, weight (7, 5) excluded by `exclude`; the op saves
    x reshaped to (6, 5) — a view of x's buffer, so x's 240 bytes."""
    rng = np.random.default_rng(1)
    weight = Tensor(rng.standard_normal((7, 5)), requires_grad=True)
    bias = Tensor(np.zeros(7), requires_grad=True)
    x = Tensor(rng.standard_normal((2, 3, 5)))
    dev = Device(1 << 20)
    with ActivationTracker(dev, exclude=[weight, bias]):
        with tinyllm.no_grad():
            F.linear(x, weight, bias)
        assert dev.current["activations"] == 0  # nothing recorded under no_grad
        out = F.linear(x, weight, bias)
        assert dev.current["activations"] == 2 * 3 * 5 * 8
        out.sum().backward()
    assert dev.current["activations"] == 0 and dev.peak["activations"] == 240


def test_bytes_per_parameter_beside_the_notes_rule():
    """fp32 Adam on Ψ = 1000 parameters: 4 + 4 + 8 bytes per parameter, as the notes say."""
    psi = 1000
    dev = Device(1 << 20)
    dev.allocate((psi,), np.float32, "parameters")
    dev.allocate((psi,), np.float32, "gradients")
    dev.allocate((psi,), np.float32, "optimizer_states", "exp_avg")
    dev.allocate((psi,), np.float32, "optimizer_states", "exp_avg_sq")
    dev.charge("saved", 3000, "activations")
    per = bytes_per_parameter(dev, psi)
    assert per["parameters"] == 4 and per["gradients"] == 4 and per["optimizer_states"] == 8
    assert per["activations"] == 3 and per["total"] == 19
    assert sum(NOTES_RULE.values()) == 24  # the notes' "~24 GB to train 1B parameters"
    table = format_bytes_per_parameter(dev, psi)
    assert "1,000 parameters" in table
    row = next(ln for ln in table.splitlines() if ln.strip().startswith("optimizer_states"))
    assert row.split()[1:] == ["8,000", "8.00", "8"]
    with pytest.raises(ValueError):
        bytes_per_parameter(dev, 0)
