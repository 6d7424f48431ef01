"""ZeRO memory and communication formulas against the paper's Table 1 and the notes."""

import math

import pytest

from tinyllm.accounting import (
    FP32_ADAM,
    GB,
    MIXED_PRECISION_ADAM,
    ZERO_TABLE1,
    notes_rule_of_thumb,
    zero_communication_elements,
    zero_memory,
    zero_table,
)


def printed_forms(value, decimals):
    """How a table prints `value` with `decimals` digits: rounded (half up) or truncated."""
    scale = 10**decimals
    return {math.floor(value * scale + 0.5) / scale, math.floor(value * scale) / scale}


def test_every_cell_of_zero_table1():
    """Rajbhandari et al. 2019, Table 1: 3 model sizes × 6 DP degrees × 3 stages, K = 12.

    The paper prints GB = 10⁹ bytes with 3 significant digits, rounding some cells and
    truncating others (41.25 → "41.3" but 4187.5 → "4187"), so each computed value must
    print as the paper's string under one of the two. A wrong formula, a wrong K or GiB
    (2³⁰) instead of GB fails many cells.
    """
    computed = zero_table()
    checked = 0
    for psi, rows in ZERO_TABLE1.items():
        for n, printed in rows.items():
            for stage, text in zip((1, 2, 3), printed):
                decimals = len(text.split(".")[1]) if "." in text else 0
                value = computed[psi][n][stage - 1]
                assert float(text) in printed_forms(value, decimals), (psi, n, stage, value, text)
                checked += 1
    assert checked == 54


def test_figure1_example_and_ddp_baseline():
    """The paper's Figure 1: Ψ = 7.5B, N = 64, K = 12 → 120, 31.4, 16.6, 1.88 GB."""
    psi = 7.5e9
    assert zero_memory(psi, 64, 0).total == 16 * psi == 120 * GB
    m1, m2, m3 = (zero_memory(psi, 64, s) for s in (1, 2, 3))
    assert (m1.parameters, m1.gradients, m1.optimizer_states) == (2 * psi, 2 * psi, 12 * psi / 64)
    assert (m2.parameters, m2.gradients) == (2 * psi, 2 * psi / 64)
    assert m3.total == 16 * psi / 64
    assert [round(m.total / GB, 2) for m in (m1, m2, m3)] == [31.41, 16.64, 1.88]


def test_fp32_adam_layout_per_stage():
    """fp32 Adam (4 + 4 + 8 bytes): DDP 16Ψ; stage 1 8Ψ + 8Ψ/N; stage 2 4Ψ + 12Ψ/N; stage 3
    16Ψ/N (+ the largest gathered layer's 4 bytes per parameter)."""
    psi, n = 1000, 4
    assert zero_memory(psi, n, 0, FP32_ADAM).total == 16 * psi
    assert zero_memory(psi, n, 1, FP32_ADAM).total == 8 * psi + 8 * psi / n
    assert zero_memory(psi, n, 2, FP32_ADAM).total == 4 * psi + 12 * psi / n
    assert zero_memory(psi, n, 3, FP32_ADAM).total == 16 * psi / n
    assert zero_memory(psi, n, 3, FP32_ADAM, largest_layer=100).parameters == 4 * psi / n + 400
    assert MIXED_PRECISION_ADAM.optim == 12


def test_notes_rule_of_thumb():
    """Course notes: fp32 weights 4 bytes + 20 extra bytes per parameter (gradients 4, Adam 8,
    activations 8) → ~24 GB to train 1B parameters."""
    r = notes_rule_of_thumb(1e9)
    assert r["weights"] == 4e9
    assert r["total"] - r["weights"] == 20e9
    assert (r["gradients"], r["adam"], r["activations"]) == (4e9, 8e9, 8e9)
    assert r["total"] / GB == 24


def test_communication_volumes():
    """Per rank per step: 2Ψ(N−1)/N for DDP and stages 1–2; 3Ψ(N−1)/N for stage 3, or
    2Ψ(N−1)/N when parameters stay gathered between forward and backward."""
    psi, n = 1200, 4
    for stage in (0, 1, 2):
        assert zero_communication_elements(psi, n, stage) == 2 * psi * 3 / 4
    assert zero_communication_elements(psi, n, 3) == 3 * psi * 3 / 4
    assert zero_communication_elements(psi, n, 3, reshard_after_forward=False) == 2 * psi * 3 / 4
    assert zero_communication_elements(psi, 1, 3) == 0  # one device talks to nobody


@pytest.mark.parametrize(
    "args,match",
    [((0, 4, 1), "Ψ"), ((10, 0, 1), "degree"), ((10, 2.5, 1), "degree"), ((10, 4, 4), "stage")],
)
def test_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        zero_memory(*args)


def test_memory_table_example_runs(capsys):
    import runpy
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "examples" / "memory_table.py"
    argv, sys.argv = sys.argv, [str(script), "--psi", "1e9", "--devices", "4"]
    sys.path.insert(0, str(script.parent))  # as `python script.py` does: its flags module
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv
        sys.path.remove(str(script.parent))
    out = capsys.readouterr().out
    assert "31.41 [31.4]" in out and "4187.5 [4187]" in out and "24.0 GB" in out
