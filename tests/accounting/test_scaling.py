"""Compute-optimal scaling: the 20-tokens rule against Chinchilla's Table 3, the fitted law's
closed form against a brute-force minimization, and the power-law fit; plus MFU."""

import math

import numpy as np
import pytest

from tinyllm.accounting import (
    CHINCHILLA,
    CHINCHILLA_TABLE3,
    ChinchillaLaw,
    compute_optimal_by_rule,
    fit_power_law,
    measure_matmul_peak,
    mfu,
    model_flops_per_second,
    scaling_rows,
    training_flops,
)


def test_rule_reproduces_chinchilla_table3_within_10_percent():
    """Hoffmann et al. 2022, Table 3 (typed in): for each row's FLOPs the rule's N and D are
    within 10% of the printed parameters and tokens, and 6·N·D of the printed row is within
    10% of its FLOPs."""
    assert len(CHINCHILLA_TABLE3) == 9
    for params, flops, tokens in CHINCHILLA_TABLE3:
        n, d = compute_optimal_by_rule(flops)
        assert n == pytest.approx(params, rel=0.10)
        assert d == pytest.approx(tokens, rel=0.10)
        assert training_flops(params, tokens) == pytest.approx(flops, rel=0.10)


def test_rule_definition():
    n, d = compute_optimal_by_rule(1.2e21)
    assert d == pytest.approx(20 * n) and 6 * n * d == pytest.approx(1.2e21)
    assert n == pytest.approx(math.sqrt(1.2e21 / 120))
    with pytest.raises(ValueError):
        compute_optimal_by_rule(0)


@pytest.mark.parametrize("flops", [1e18, 3e21, 1e26])
def test_closed_form_is_the_minimum(flops):
    """Brute force: the loss along 6ND = C on a fine log grid is lowest at the closed form."""
    n_opt, d_opt = CHINCHILLA.compute_optimal(flops)
    assert 6 * n_opt * d_opt == pytest.approx(flops)
    grid = np.exp(np.linspace(math.log(n_opt) - 3, math.log(n_opt) + 3, 200_001))
    losses = CHINCHILLA.loss(grid, flops / (6 * grid))
    assert grid[np.argmin(losses)] == pytest.approx(n_opt, rel=1e-3)
    n_num, _ = CHINCHILLA.compute_optimal_numeric(flops)
    assert n_num == pytest.approx(n_opt, rel=1e-5)
    # first-order condition: αA·N^−α = βB·D^−β
    law = CHINCHILLA
    assert law.alpha * law.A * n_opt**-law.alpha == pytest.approx(
        law.beta * law.B * d_opt**-law.beta
    )


def test_fitted_law_does_not_give_20_tokens_per_parameter():
    """With α > β the ratio D/N grows with the budget: (α−β)/(α+β) ≈ 0.097 per decade in log."""
    rows = scaling_rows([1e18, 1e22, 1e26])
    ratios = [r["tokens_per_param_law"] for r in rows]
    assert ratios[0] < ratios[1] < ratios[2]
    slope = math.log10(ratios[2] / ratios[0]) / 8
    assert slope == pytest.approx((0.34 - 0.28) / (0.34 + 0.28))
    assert all(r > 20 for r in ratios)
    # at equal exponents the ratio would be constant
    flat = ChinchillaLaw(alpha=0.3, beta=0.3)
    r1, r2 = (flat.compute_optimal(c) for c in (1e18, 1e24))
    assert r1[1] / r1[0] == pytest.approx(r2[1] / r2[0])
    # the law's own optimum is never worse than the rule's split, by the law's measure
    assert all(r["loss_law"] <= r["loss_rule"] for r in rows)


def test_fit_power_law_recovers_exponents():
    rng = np.random.default_rng(0)
    x = np.logspace(15, 20, 12)
    y = 3.0 * x**0.45 * np.exp(rng.normal(0, 0.01, x.size))
    fit = fit_power_law(x, y)
    assert fit.exponent == pytest.approx(0.45, abs=0.01)
    assert fit.coefficient == pytest.approx(3.0, rel=0.3)
    assert fit.r2 > 0.99
    exact = fit_power_law([1, 10, 100], [2, 20, 200])
    assert (exact.exponent, exact.coefficient, exact.r2) == pytest.approx((1.0, 2.0, 1.0))
    assert exact(1000) == pytest.approx(2000)
    for bad in (([1], [1]), ([1, 2], [1, -1]), ([5, 5], [1, 2]), ([1, 2, 3], [1, 2])):
        with pytest.raises(ValueError):
            fit_power_law(*bad)


def test_mfu_and_peak():
    assert mfu(model_flops_per_second(1000, 6e6), 1.2e10) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        mfu(1.0, 0)
    peak = measure_matmul_peak(np.float32, n=64, repeats=2)
    assert np.isfinite(peak) and peak > 0
    with pytest.raises(TypeError):
        measure_matmul_peak(np.int32, n=8)
    with pytest.raises(ValueError):
        measure_matmul_peak(n=0)


def test_peak_also_times_the_way_linear_layers_run_the_product(monkeypatch):
    """The peak is the best of one BLAS call and tinyllm.kernels.matmul (row blocks over
    help-first threads): both are run, warm-up + repeats each, and both compute a @ b."""
    from tinyllm import kernels

    calls = []
    real = kernels.matmul

    def counting(a, b):
        calls.append((a.shape, b.shape))
        out = real(a, b)
        np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
        return out

    monkeypatch.setattr(kernels, "matmul", counting)
    assert measure_matmul_peak(np.float32, n=48, repeats=3) > 0
    assert calls == [((48, 48), (48, 48))] * (1 + 3)


def _run_scaling(argv):
    import runpy
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "examples" / "scaling.py"
    saved = sys.argv, list(sys.path)
    try:  # as `python examples/scaling.py` runs it: its own folder first on the path
        sys.argv, sys.path[:0] = [str(script), *argv], [str(script.parent)]
        return runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv, sys.path[:] = saved


def test_scaling_example_table(capsys):
    _run_scaling(["--table", "--min-exp", "20", "--max-exp", "21"])
    out = capsys.readouterr().out
    assert "1e+20" in out and "1e+21" in out and "1e+22" not in out
    assert "Table 3" in out


def test_isoflop_minimum_is_the_parabola_vertex():
    """Approach 2 of the paper: loss = a(log N − log N*)² + c has its minimum at N*."""
    ns = _run_scaling(["--table", "--min-exp", "18", "--max-exp", "18"])
    log_n = np.log([1e3, 1e4, 1e5, 1e6])
    loss = 0.3 * (log_n - np.log(3e4)) ** 2 + 2.0
    assert ns["isoflop_minimum"](log_n, loss) == pytest.approx(3e4, rel=1e-9)
    # points that do not curve upwards: the best trained size
    assert ns["isoflop_minimum"](log_n, -log_n) == pytest.approx(1e6)


def test_scaling_sweep_trains_each_size_for_its_budget(tmp_path, capsys):
    import csv

    out_csv = tmp_path / "sweep.csv"
    ns = _run_scaling(
        [
            "--sweep",
            "--budgets",
            "2e8,6e8",
            "--data-bytes",
            "60000",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--sweep-out",
            str(out_csv),
        ]
    )
    rows = list(csv.DictReader(out_csv.open()))
    sizes = ns["SWEEP_SIZES"]
    assert len(rows) == 2 * len(sizes)
    tokens_per_step = ns["SWEEP_BLOCK"] * ns["SWEEP_BATCH"]
    for r in rows:
        c, f, d = float(r["budget"]), float(r["flops_per_token"]), float(r["tokens"])
        # D = C / F, rounded to whole steps (at least one)
        assert abs(d * f - c) <= 0.5 * tokens_per_step * f or int(r["steps"]) == 1
        assert np.isfinite(float(r["val_loss"]))
        assert float(r["tokens_per_second"]) * float(r["seconds"]) == pytest.approx(d)
    # MFU = tokens/s × F / peak with one measured peak for every run
    peaks = [
        float(r["tokens_per_second"]) * float(r["flops_per_token"]) / float(r["mfu"]) for r in rows
    ]
    assert peaks == pytest.approx([peaks[0]] * len(rows))
    text = capsys.readouterr().out
    assert "fitted N_opt" in text and "IsoFLOP" in text
    assert text.count("MFU") == len(rows) and f"peak {peaks[0] / 1e9:.1f} GFLOP/s" in text
