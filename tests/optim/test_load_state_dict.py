"""Optimizer.load_state_dict: torch.optim's state dicts, the options tinyllm does not
implement, and the checks that a state dict fits the parameter groups."""

import numpy as np
import pytest

from tinyllm import nn
from tinyllm.engine import Tensor
from tinyllm.optim import SGD, Adam, AdamW


def params(rng, shapes=((3, 4), (4,))):
    return [nn.Parameter(rng.standard_normal(s)) for s in shapes]  # float64


def to_numpy(sd):
    """A torch.optim state dict with every tensor converted to NumPy (0-d step included)."""
    import torch

    conv = lambda v: v.detach().numpy().copy() if isinstance(v, torch.Tensor) else v  # noqa
    return {
        "state": {i: {k: conv(v) for k, v in s.items()} for i, s in sd["state"].items()},
        "param_groups": [dict(g) for g in sd["param_groups"]],
    }


@pytest.mark.parametrize(
    "ours_cls, theirs_name, kwargs",
    [
        (AdamW, "AdamW", dict(lr=0.05, betas=(0.8, 0.95), weight_decay=0.1)),
        (Adam, "Adam", dict(lr=0.05, weight_decay=0.01)),
        (SGD, "SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ],
)
def test_torch_state_dict_loads_and_both_step_to_equal_parameters(
    rng, ours_cls, theirs_name, kwargs
):
    torch = pytest.importorskip("torch")
    ps = params(rng)
    tp = [torch.tensor(p.data.copy(), requires_grad=True) for p in ps]
    theirs = getattr(torch.optim, theirs_name)(tp, **kwargs)
    grads = [[rng.standard_normal(p.shape) for p in ps] for _ in range(5)]
    for g in grads[:3]:  # torch alone trains three steps
        for t, gi in zip(tp, g):
            t.grad = torch.tensor(gi)
        theirs.step()
    for p, t in zip(ps, tp):  # hand its parameters and state over
        p.data[...] = t.detach().numpy()
    ours = ours_cls(ps, **kwargs)
    sd = to_numpy(theirs.state_dict())
    if theirs_name != "SGD":
        assert isinstance(sd["state"][0]["step"], np.ndarray)  # torch's step is a tensor
    ours.load_state_dict(sd)
    if theirs_name != "SGD":
        assert ours.state_dict()["state"][0]["step"] == 3
    for g in grads[3:]:  # both continue
        for p, t, gi in zip(ps, tp, g):
            p.grad, t.grad = gi.copy(), torch.tensor(gi)
        ours.step()
        theirs.step()
    for p, t in zip(ps, tp):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_unimplemented_options_are_errors_and_kernel_switches_are_ignored(rng):
    ps = params(rng)
    opt = AdamW(ps, foreach=True, fused=False, capturable=False, differentiable=False)
    sd = opt.state_dict()
    g = sd["param_groups"][0]
    for key in ("amsgrad", "maximize"):
        bad = {"state": {}, "param_groups": [dict(g, **{key: True})]}
        with pytest.raises(ValueError, match=f"{key}=True is not implemented"):
            AdamW(ps).load_state_dict(bad)
    ok = {"state": {}, "param_groups": [dict(g, amsgrad=False, foreach=True, fused=None)]}
    AdamW(ps).load_state_dict(ok)
    with pytest.raises(ValueError, match="decoupled_weight_decay=False"):
        AdamW(ps).load_state_dict(
            {"state": {}, "param_groups": [dict(g, decoupled_weight_decay=False)]}
        )
    with pytest.raises(ValueError, match="amsgrad=True"):
        Adam(ps, amsgrad=True)
    with pytest.raises(ValueError, match="maximize=True"):
        SGD(ps, maximize=True)


def test_state_must_fit_the_groups(rng):
    ps = params(rng)
    opt = Adam(ps)
    for p in ps:
        p.grad = np.ones_like(p.data)
    opt.step()
    sd = opt.state_dict()
    missing = {"state": {0: {"step": 1, "exp_avg": sd["state"][0]["exp_avg"]}}, **_groups(sd)}
    with pytest.raises(ValueError, match="keys \\['exp_avg', 'step'\\].*exp_avg_sq"):
        Adam(ps).load_state_dict(missing)
    stray = {"state": {7: sd["state"][0]}, **_groups(sd)}
    with pytest.raises(ValueError, match="parameter 7, which is in none"):
        Adam(ps).load_state_dict(stray)
    shape = {"state": {1: dict(sd["state"][0])}, **_groups(sd)}  # param 0's arrays on param 1
    with pytest.raises(ValueError, match="shape \\(3, 4\\), parameter has \\(4,\\)"):
        Adam(ps).load_state_dict(shape)
    fractional = {"state": {0: dict(sd["state"][0], step=np.array(1.5))}, **_groups(sd)}
    with pytest.raises(ValueError, match="step of parameter 0 is 1.5"):
        Adam(ps).load_state_dict(fractional)
    # nothing was half-applied by the failures; Tensors are accepted as values
    fresh = Adam(ps, lr=0.5)
    with pytest.raises(ValueError):
        fresh.load_state_dict(stray)
    assert fresh.param_groups[0]["lr"] == 0.5 and fresh.state == {}
    as_tensors = {
        "state": {
            i: {k: Tensor(np.asarray(v)) for k, v in s.items()} for i, s in sd["state"].items()
        },
        **_groups(sd),
    }
    fresh.load_state_dict(as_tensors)
    assert fresh.param_groups[0]["lr"] == sd["param_groups"][0]["lr"]
    assert fresh.state_dict()["state"][0]["step"] == 1


def _groups(sd):
    return {"param_groups": sd["param_groups"]}


def test_add_param_group_and_step_closure(rng):
    a, b = params(rng)
    opt = SGD([a], lr=0.1)
    opt.add_param_group({"params": b, "lr": 0.5, "foreach": True})  # a single tensor is fine
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert "foreach" not in opt.param_groups[1] and opt.param_groups[1]["momentum"] == 0.0
    with pytest.raises(ValueError, match="more than one group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="maximize=True"):
        opt.add_param_group({"params": [nn.Parameter(np.ones(1))], "maximize": True})
    a0, b0 = a.data.copy(), b.data.copy()

    def closure():
        opt.zero_grad()
        loss = (a * a).sum() + b.sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx((a0**2).sum() + b0.sum())
    np.testing.assert_allclose(a.data, a0 - 0.1 * 2 * a0)  # d(a²)/da = 2a
    np.testing.assert_allclose(b.data, b0 - 0.5)
    assert opt.step() is None
