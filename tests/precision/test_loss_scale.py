"""GradScaler: the dynamic loss-scale state machine, with PyTorch's semantics.

Truth: a sequence written by hand from PyTorch's documented rules (back off ×0.5 and skip on
inf/NaN; ×2 after growth_interval clean steps), and torch.amp.GradScaler("cpu") run side by
side on the same gradients when PyTorch is installed.
"""

import numpy as np
import pytest

from tinyllm import Tensor
from tinyllm.precision import GradScaler


class FakeSGD:
    """The optimizer interface GradScaler relies on: param_groups with "params", and step()."""

    def __init__(self, params, lr=0.1):
        self.param_groups = [{"params": list(params), "lr": lr}]
        self.steps = 0
        self.seen_grads = []

    def step(self):
        self.steps += 1
        for group in self.param_groups:
            for p in group["params"]:
                grad = p.grad.numpy() if hasattr(p.grad, "numpy") else p.grad  # torch or NumPy
                self.seen_grads.append(np.array(grad, copy=True))
                p.data -= group["lr"] * p.grad
        return "stepped"


def _run(scaler, opt, param, grad_values):
    """One iteration: gradients as a backward pass of S·L would leave them, then step/update."""
    param.grad = np.asarray(grad_values, np.float32) * np.float32(scaler.get_scale())
    result = scaler.step(opt)
    scaler.update()
    return result


def test_hand_written_state_machine():
    p = Tensor(np.zeros(2, np.float32), requires_grad=True)
    opt = FakeSGD([p])
    scaler = GradScaler(init_scale=8.0, growth_factor=2.0, backoff_factor=0.5, growth_interval=3)
    grads = [
        [1, 2],
        [1, 2],
        [1, 2],
        [np.inf, 1],
        [1, 2],
        [np.nan, 0],
        [1, 2],
        [1, 2],
        [1, 2],
        [1, 2],
    ]
    # By hand: clean steps count 1, 2, 3 → grow to 16; inf → 8, count 0, skip; clean 1;
    # NaN → 4, count 0, skip; clean 1, 2, 3 → grow to 8; clean 1.
    expected_scale = [8, 8, 16, 8, 8, 4, 4, 4, 8, 8]
    expected_tracker = [1, 2, 0, 0, 1, 0, 1, 2, 0, 1]
    expected_stepped = [True, True, True, False, True, False, True, True, True, True]
    for g, s, t, stepped in zip(grads, expected_scale, expected_tracker, expected_stepped):
        steps_before = opt.steps
        result = _run(scaler, opt, p, g)
        assert (opt.steps > steps_before) == stepped
        assert result == ("stepped" if stepped else None)
        assert scaler.get_scale() == s
        assert scaler.state_dict()["_growth_tracker"] == t
    # The optimizer only ever saw unscaled gradients (powers of two: exact).
    for seen in opt.seen_grads:
        np.testing.assert_array_equal(seen, [1, 2])
    assert opt.steps == 8


def test_scale_backward_unscale_with_tinyllm_tensors():
    w = Tensor(np.float32([0.5, -1.0, 2.0]), requires_grad=True)
    x = np.float32([1e-6, 3.0, -2.0])
    scaler = GradScaler()  # 2^16
    loss = (w * Tensor(x)).sum()
    scaled = scaler.scale(loss)
    assert scaled.item() == pytest.approx(loss.item() * 2**16)
    scaled.backward()
    np.testing.assert_allclose(w.grad, x * 2**16, rtol=1e-6)
    opt = FakeSGD([w])
    scaler.unscale_(opt)  # e.g. to clip the true gradients here
    np.testing.assert_allclose(w.grad, x, rtol=1e-6)
    scaler.step(opt)  # does not unscale a second time
    np.testing.assert_allclose(opt.seen_grads[0], x, rtol=1e-6)
    scaler.update()
    assert scaler.scale(3.0) == 3.0 * 2**16
    half = Tensor(np.float16(0.5), requires_grad=True)
    scaled_half = scaler.scale(half)  # 2^16 is inf in fp16: scaled in fp32
    assert scaled_half.dtype == np.float32 and scaled_half.item() == 2.0**15
    with np.errstate(over="ignore"):  # the cast back to fp16 overflows: that is the point
        scaled_half.backward()
    assert half.grad.dtype == np.float16 and half.grad == np.float16(np.inf)  # S overflows fp16
    assert scaler.scale([1.0, 2.0]) == [2.0**16, 2.0**17]


def test_skip_only_the_optimizer_with_inf_but_back_off_once():
    a = Tensor(np.zeros(1, np.float32), requires_grad=True)
    b = Tensor(np.zeros(1, np.float32), requires_grad=True)
    opt_a, opt_b = FakeSGD([a]), FakeSGD([b])
    scaler = GradScaler(init_scale=4.0)
    a.grad, b.grad = np.float32([4.0]), np.float32([np.inf])
    scaler.step(opt_a)
    scaler.step(opt_b)
    scaler.update()
    assert (opt_a.steps, opt_b.steps) == (1, 0)
    assert scaler.get_scale() == 2.0


def test_growth_never_overflows_fp32():
    p = Tensor(np.zeros(1, np.float32), requires_grad=True)
    scaler = GradScaler(init_scale=2.0**127, growth_interval=1)
    p.grad = np.float32([1.0])
    scaler.step(FakeSGD([p]))
    scaler.update()
    assert scaler.get_scale() == 2.0**127  # 2^128 would be inf in float32: not taken


def test_grads_list_and_params_without_grad():
    scaler = GradScaler(init_scale=4.0)
    grads = [np.float32([4.0, 8.0]), np.float32([-4.0])]
    scaler.unscale_(grads)
    np.testing.assert_array_equal(grads[0], [1.0, 2.0])
    np.testing.assert_array_equal(grads[1], [-1.0])
    scaler.update()  # the list's clean check counts
    p_none = Tensor(np.zeros(1, np.float32), requires_grad=True)  # grad None: skipped
    opt = FakeSGD([p_none])
    with pytest.raises(RuntimeError, match="No inf checks"):
        scaler.step(opt)


def test_protocol_errors():
    p = Tensor(np.zeros(1, np.float32), requires_grad=True)
    opt = FakeSGD([p])
    scaler = GradScaler()
    with pytest.raises(RuntimeError, match="No inf checks were recorded prior to update"):
        scaler.update()
    p.grad = np.float32([1.0])
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        scaler.step(opt)
    with pytest.raises(RuntimeError, match="after step"):
        scaler.unscale_(opt)
    scaler.update()
    with pytest.raises(RuntimeError, match="Closure"):
        scaler.step(opt, closure=lambda: 0)
    p.grad = np.float16([1.0])
    with pytest.raises(ValueError, match="FP16 gradients"):
        scaler.unscale_(opt)
    with pytest.raises(TypeError, match="param_groups"):
        scaler.unscale_(object())
    with pytest.raises(ValueError, match="growth_factor"):
        GradScaler(growth_factor=1.0)
    with pytest.raises(ValueError, match="backoff_factor"):
        GradScaler(backoff_factor=1.5)


def test_disabled_is_a_pass_through():
    p = Tensor(np.zeros(1, np.float32), requires_grad=True)
    p.grad = np.float32([np.inf])
    opt = FakeSGD([p])
    scaler = GradScaler(enabled=False)  # what bf16 training uses
    loss = Tensor(np.float32(2.0))
    assert scaler.scale(loss) is loss
    assert scaler.step(opt) == "stepped"  # no inf check, no skipping
    scaler.update()
    assert scaler.get_scale() == 1.0 and scaler.state_dict() == {}
    with pytest.raises(RuntimeError, match="disabled"):
        scaler.load_state_dict({"scale": 1.0})


def test_state_dict_round_trip_continues_identically():
    rng = np.random.default_rng(0)
    grads = [np.where(rng.random(2) < 0.15, np.inf, rng.standard_normal(2)) for _ in range(40)]
    p1 = Tensor(np.zeros(2, np.float32), requires_grad=True)
    s1, o1 = GradScaler(init_scale=1024.0, growth_interval=4), FakeSGD([p1])
    for g in grads[:17]:
        _run(s1, o1, p1, g)
    state = s1.state_dict()
    assert set(state) == {
        "scale",
        "growth_factor",
        "backoff_factor",
        "growth_interval",
        "_growth_tracker",
    }
    s2 = GradScaler()
    s2.load_state_dict(state)
    p2 = Tensor(p1.data.copy(), requires_grad=True)
    o2 = FakeSGD([p2])
    for g in grads[17:]:
        _run(s1, o1, p1, g)
        _run(s2, o2, p2, g)
        assert s1.state_dict() == s2.state_dict()
    np.testing.assert_array_equal(p1.data, p2.data)
    with pytest.raises(RuntimeError, match="empty"):
        s2.load_state_dict({})


def test_matches_torch_grad_scaler_on_cpu():
    torch = pytest.importorskip("torch")
    try:
        theirs = torch.amp.GradScaler(
            "cpu", init_scale=256.0, growth_factor=2.0, backoff_factor=0.5, growth_interval=3
        )
    except Exception as e:  # pragma: no cover - older torch without CPU GradScaler
        pytest.skip(f"torch.amp.GradScaler on CPU unavailable: {e}")
    # torch's GradScaler needs only param_groups and step() too; torch.optim is not imported
    # (it pulls in the compiler stack, seconds of start-up).
    tp = torch.zeros(3)
    topt = FakeSGD([tp])
    ours = GradScaler(init_scale=256.0, growth_factor=2.0, backoff_factor=0.5, growth_interval=3)
    p = Tensor(np.zeros(3, np.float32), requires_grad=True)
    opt = FakeSGD([p])
    rng = np.random.default_rng(5)
    theirs.scale(torch.ones(()))  # PyTorch creates its scale lazily, on the first scale()
    for it in range(60):
        g = rng.standard_normal(3).astype(np.float32)
        r = rng.random()
        if r < 0.15:
            g[rng.integers(3)] = np.inf
        elif r < 0.25:
            g[rng.integers(3)] = np.nan
        scaled = g * np.float32(ours.get_scale())
        tp.grad = torch.from_numpy(scaled.copy())
        p.grad = scaled.copy()
        theirs.step(topt)
        theirs.update()
        ours.step(opt)
        ours.update()
        assert ours.get_scale() == theirs.get_scale(), f"iteration {it}"
        assert ours.state_dict() == theirs.state_dict(), f"iteration {it}"
        assert opt.steps == topt.steps, f"iteration {it}: steps taken differ"
    assert 0 < opt.steps < 60
    for ours_g, theirs_g in zip(opt.seen_grads, topt.seen_grads):
        np.testing.assert_array_equal(ours_g, theirs_g)  # unscaled identically
