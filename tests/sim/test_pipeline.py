"""Pipeline parallelism (sim/pipeline.py): schedules, and a GPT cut into stages under mpirun.

The truth, stated independently of the code under test:
* schedules — each micro-batch goes forward then backward exactly once on every stage; 1F1B
  keeps at most p − s micro-batches in flight on stage s, GPipe m (Narayanan et al. 2021, §2);
  a stand-alone event simulation of the action lists with unit stage times finishes in
  (m + p − 1)(t_f + t_b), i.e. the bubble (p − 1)/(m + p − 1) (GPipe, Huang et al. 2019);
* under mpirun, the single-process GPT of the same seed and global batch (float64): losses,
  parameters, the gathered state dict;
* bytes: one (b, T, E) activation per micro-batch to the next stage and one gradient back; the
  two copies of the tied embedding all-reduced between the first and last stage;
* the bubble measured on the simulated per-rank timelines (free links: the formula's
  assumption) within 0.01 of (p − 1)/(m + p − 1) for nearly equal stages; peak activation
  memory per stage ∝ m for GPipe and ∝ min(p − s, m) for 1F1B.
"""

import pytest
from mpi_helpers import run_mpi

from sim.pipeline import (
    SCHEDULES,
    bubble_fraction,
    in_flight_peak,
    one_f_one_b_schedule,
    stage_layers,
)

CASES = [(p, m) for p in range(1, 6) for m in range(1, 10)]


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_each_micro_batch_forward_then_backward_once(name):
    for p, m in CASES:
        for s in range(p):
            actions = SCHEDULES[name](m, p, s)
            every = [("F", i) for i in range(m)] + [("B", i) for i in range(m)]
            assert sorted(actions) == sorted(every)
            for i in range(m):
                assert actions.index(("F", i)) < actions.index(("B", i))
            # backwards run in micro-batch order, as the next stage sends their gradients
            assert [i for kind, i in actions if kind == "B"] == list(range(m))


def test_activations_in_flight():
    for p, m in CASES:
        for s in range(p):
            assert in_flight_peak(SCHEDULES["gpipe"](m, p, s)) == m
            assert in_flight_peak(one_f_one_b_schedule(m, p, s)) == min(p - s, m)


def simulate(name, p, m, t_f=1.0, t_b=2.0):
    """Finish time of every stage running its action list, with F(s, i) after F(s−1, i) and
    B(s, i) after B(s+1, i) (after F(p−1, i) on the last stage): free messages, equal stages."""
    lists = [list(SCHEDULES[name](m, p, s)) for s in range(p)]
    done, clock = {}, [0.0] * p
    while any(lists):
        progressed = False
        for s in range(p):
            while lists[s]:
                kind, i = lists[s][0]
                dep = (
                    (("F", s - 1, i) if s > 0 else None)
                    if kind == "F"
                    else (("B", s + 1, i) if s < p - 1 else ("F", s, i))
                )
                if dep is not None and dep not in done:
                    break
                start = max(clock[s], done.get(dep, 0.0))
                clock[s] = done[(kind, s, i)] = start + (t_f if kind == "F" else t_b)
                lists[s].pop(0)
                progressed = True
        assert progressed, f"{name} deadlocks for p={p}, m={m}"
    return max(clock)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedules_take_m_plus_p_minus_1_slots(name):
    for p, m in CASES:
        makespan = simulate(name, p, m)
        assert makespan == (m + p - 1) * 3.0
        assert 1 - m * 3.0 / makespan == pytest.approx(bubble_fraction(p, m))


def test_stage_layers():
    for layers in range(1, 12):
        for p in range(1, layers + 1):
            bounds = stage_layers(layers, p)
            assert bounds[0][0] == 0 and bounds[-1][1] == layers
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            sizes = [hi - lo for lo, hi in bounds]
            assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    with pytest.raises(ValueError, match="3 blocks cannot fill 4 stages"):
        stage_layers(3, 4)


# ---- under mpirun -----------------------------------------------------------------------------


def stage_params(c, p, s):
    """Parameters of stage s: its blocks (12E² + 13E each), embeddings first, ln_f and the
    head's copy of the tied embedding last."""
    e, v = c["n_embd"], c["vocab_size"]
    per_stage = c["n_layer"] // p
    n = per_stage * (12 * e * e + 13 * e)
    if s == 0:
        n += v * e + c["block_size"] * e
    if s == p - 1:
        n += 2 * e + (v * e if p > 1 else 0)
    return n


@pytest.fixture(scope="module", params=[2, 4])
def pp_run(request):
    n = request.param
    return n, run_mpi("pp_worker.py", n, ["--bubble"], timeout=150).results()


def test_pipeline_equals_one_process(pp_run):
    p, ranks = pp_run
    for r in ranks:
        for schedule in ("gpipe", "1f1b"):
            res = r[schedule]
            assert res["loss_rel_err"] < 1e-12 and res["param_err"] < 1e-12, res
            if r["rank"] == 0:
                assert res["gathered_names"] and res["gathered_err"] < 1e-12


def test_pipeline_bytes_and_memory(pp_run):
    p, ranks = pp_run
    for s, r in enumerate(ranks):
        m, b = r["micro_batches"], r["batch"] // r["micro_batches"]
        message = b * r["block_size"] * r["n_embd"] * r["itemsize"]  # one (b, T, E)
        for schedule in ("gpipe", "1f1b"):
            axes = r[schedule]["bytes_by_axis"]
            assert axes["pp"] == m * message * ((s < p - 1) + (s > 0))
            ends = s in (0, p - 1)
            table = r["vocab_size"] * r["n_embd"] * r["itemsize"]
            assert axes["embedding"] == (table if ends else 0)
            assert axes["tp"] == axes["dp"] == 0
            mem, psi = r[schedule]["memory"], stage_params(r, p, s)
            assert mem["parameters"] == mem["gradients"] == r["itemsize"] * psi
            assert mem["optimizer_states"] == 2 * r["itemsize"] * psi


def test_bubble_and_activation_peaks(pp_run):
    p, ranks = pp_run
    for s, r in enumerate(ranks):
        rows = {(row["schedule"], row["m"]): row for row in r["bubbles"]}
        for (schedule, m), row in rows.items():
            assert abs(row["free_links"] - bubble_fraction(p, m)) < 0.01, (s, row)
            assert row["real_links"] >= row["free_links"]  # messages can only add waiting
            one = rows[(schedule, 1)]["activation_peak"]  # one micro-batch's activations
            held = m if schedule == "gpipe" else min(p - s, m)
            assert row["activation_peak"] == pytest.approx(held * one, rel=0.01), (s, row)
