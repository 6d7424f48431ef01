"""tinyllm.optim: SGD / Adam / AdamW, schedules, clipping, gradient accumulation.

Each optimizer is checked step by step against the textbook update written out here in NumPy
(so these tests run without PyTorch), and — when installed — against torch.optim on the same
parameters and gradients.
"""

import math

import numpy as np
import pytest

from tinyllm.kernels import adam as adam_kernels
from tinyllm.models import GPT, GPTConfig
from tinyllm.nn import Parameter
from tinyllm.optim import (
    SGD,
    Adam,
    AdamW,
    CosineWithWarmup,
    LambdaLR,
    LinearWithWarmup,
    clip_grad_norm_,
    param_groups_for_weight_decay,
    warmup_cosine,
    warmup_linear,
)

STEPS = 20
SHAPES = [(4, 3), (5,)]


def grad_stream(dtype, seed=0):
    """The same sequence of gradients for every implementation: STEPS lists of arrays."""
    r = np.random.default_rng(seed)
    return [[r.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(STEPS)]


def init_params(dtype, seed=1):
    r = np.random.default_rng(seed)
    return [r.standard_normal(s).astype(dtype) for s in SHAPES]


def run_tinyllm(make_opt, dtype):
    params = [Parameter(a.copy()) for a in init_params(dtype)]
    opt = make_opt(params)
    history = []
    for grads in grad_stream(dtype):
        for p, g in zip(params, grads):
            p.grad = g.copy()
        opt.step()
        history.append([p.data.copy() for p in params])
    return history


# ---- the textbook updates, in NumPy, float64 -------------------------------------------------


def sgd_textbook(lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    """PyTorch's documented SGD: g ← g + λθ; b₁ = g, b_t = μ b_{t−1} + (1 − τ) g;
    g ← g + μ b (Nesterov) or b; θ ← θ − lr g."""
    theta = [a.astype(np.float64) for a in init_params(np.float64)]
    buf = [None] * len(theta)
    history = []
    for grads in grad_stream(np.float64):
        for i, g in enumerate(grads):
            g = g + weight_decay * theta[i]
            if momentum:
                buf[i] = g.copy() if buf[i] is None else momentum * buf[i] + (1 - dampening) * g
                g = g + momentum * buf[i] if nesterov else buf[i]
            theta[i] = theta[i] - lr * g
        history.append([t.copy() for t in theta])
    return history


def adam_textbook(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    """Kingma & Ba (Algorithm 1) with bias correction; Adam's weight decay is an L2 term added
    to the gradient, AdamW's (Loshchilov & Hutter, Algorithm 2) shrinks θ by lr·λ first."""
    b1, b2 = betas
    theta = init_params(np.float64)
    m = [np.zeros_like(t) for t in theta]
    v = [np.zeros_like(t) for t in theta]
    history = []
    for t, grads in enumerate(grad_stream(np.float64), start=1):
        for i, g in enumerate(grads):
            if decoupled:
                theta[i] = theta[i] * (1 - lr * weight_decay)
            else:
                g = g + weight_decay * theta[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat = m[i] / (1 - b1**t)
            v_hat = v[i] / (1 - b2**t)
            theta[i] = theta[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
        history.append([x.copy() for x in theta])
    return history


CASES = [
    ("sgd", dict(lr=0.1), lambda p, kw: SGD(p, **kw)),
    ("sgd_momentum", dict(lr=0.05, momentum=0.9), lambda p, kw: SGD(p, **kw)),
    (
        "sgd_dampening_wd",
        dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.1),
        lambda p, kw: SGD(p, **kw),
    ),
    (
        "sgd_nesterov_wd",
        dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
        lambda p, kw: SGD(p, **kw),
    ),
    ("adam", dict(lr=0.01), lambda p, kw: Adam(p, **kw)),
    (
        "adam_l2",
        dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
        lambda p, kw: Adam(p, **kw),
    ),
    ("adamw", dict(lr=0.01, weight_decay=0.1), lambda p, kw: AdamW(p, **kw)),
]


def textbook(name, kw):
    if name.startswith("sgd"):
        return sgd_textbook(**kw)
    return adam_textbook(decoupled=name == "adamw", **kw)


@pytest.mark.parametrize("name, kw, make", CASES, ids=[c[0] for c in CASES])
def test_optimizer_matches_textbook_equations(name, kw, make):
    ours = run_tinyllm(lambda p: make(p, kw), np.float64)
    ref = textbook(name, kw)
    for step, (a, b) in enumerate(zip(ours, ref)):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12, err_msg=f"step {step}")


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-6)])
@pytest.mark.parametrize("name, kw, make", CASES, ids=[c[0] for c in CASES])
def test_optimizer_matches_torch_optim(name, kw, make, dtype, tol):
    torch = pytest.importorskip("torch")
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    tparams = [torch.tensor(a.copy(), dtype=tdtype, requires_grad=True) for a in init_params(dtype)]
    tcls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    topt = tcls[name.split("_")[0]](tparams, **kw)
    ours = run_tinyllm(lambda p: make(p, kw), dtype)
    for step, grads in enumerate(grad_stream(dtype)):
        for p, g in zip(tparams, grads):
            p.grad = torch.tensor(g.copy())
        topt.step()
        for x, p in zip(ours[step], tparams):
            np.testing.assert_allclose(
                x, p.detach().numpy(), rtol=tol, atol=tol, err_msg=f"{name} step {step}"
            )


def test_defaults_are_pytorchs():
    p = [Parameter(np.zeros(2))]
    a, w, s = Adam(p), AdamW([Parameter(np.zeros(2))]), SGD([Parameter(np.zeros(2))])
    assert (
        a.defaults["lr"],
        a.defaults["betas"],
        a.defaults["eps"],
        a.defaults["weight_decay"],
    ) == (1e-3, (0.9, 0.999), 1e-8, 0.0)
    assert w.defaults["weight_decay"] == 0.01
    assert s.defaults["lr"] == 1e-3 and s.defaults["momentum"] == 0.0


def test_invalid_hyper_parameters_are_rejected():
    with pytest.raises(ValueError, match="Nesterov"):
        SGD([Parameter(np.zeros(2))], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        Adam([Parameter(np.zeros(2))], betas=(1.0, 0.999))
    with pytest.raises(ValueError, match="empty"):
        Adam([])
    p = Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="more than one group"):
        SGD([{"params": [p]}, {"params": [p]}])


def test_param_groups_have_their_own_hyper_parameters():
    a, b = Parameter(np.ones(3)), Parameter(np.ones(3))
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.5, "weight_decay": 0.1}], lr=0.1)
    a.grad, b.grad = np.ones(3), np.ones(3)
    opt.step()
    np.testing.assert_allclose(a.data, 1 - 0.1 * 1)
    np.testing.assert_allclose(b.data, 1 - 0.5 * (1 + 0.1 * 1))
    # a parameter without a gradient is skipped
    c = Parameter(np.ones(2))
    SGD([c], lr=1.0).step()
    np.testing.assert_array_equal(c.data, np.ones(2))


def test_weight_decay_groups_for_gpt():
    m = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8))
    decay, no_decay = param_groups_for_weight_decay(m, 0.1)
    names = {id(p): n for n, p in m.named_parameters()}
    assert {names[id(p)] for p in decay["params"]} == {
        n
        for n, p in m.named_parameters()
        if n.endswith("weight") and ".ln_" not in n and "ln_f" not in n
    }
    assert all(names[id(p)].endswith("bias") or "ln" in names[id(p)] for p in no_decay["params"])
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    opt = m.configure_optimizers(0.1, 1e-3)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(m.parameters()))


@pytest.mark.parametrize(
    "make", [lambda p: AdamW(p, lr=0.01), lambda p: SGD(p, lr=0.01, momentum=0.9)]
)
def test_state_dict_round_trip_continues_identically(make):
    grads = grad_stream(np.float32)
    params = [Parameter(a) for a in init_params(np.float32)]
    opt = make(params)
    for grads_t in grads[:5]:
        for p, g in zip(params, grads_t):
            p.grad = g
        opt.step()
    sd = opt.state_dict()
    clones = [Parameter(p.data.copy()) for p in params]
    opt2 = make(clones)
    opt2.load_state_dict(sd)
    for grads_t in grads[5:]:
        for ps, o in ((params, opt), (clones, opt2)):
            for p, g in zip(ps, grads_t):
                p.grad = g.copy()
            o.step()
    for p, q in zip(params, clones):
        np.testing.assert_array_equal(p.data, q.data)
    # the state dict holds copies: stepping on does not change a saved one
    assert sd is not opt.state_dict() and sd["state"][0] is not opt.state_dict()["state"][0]


def test_load_state_dict_rejects_a_mismatch():
    opt = AdamW([Parameter(np.zeros(3))])
    other = AdamW([Parameter(np.zeros(4))])
    other.param_groups[0]["params"][0].grad = np.ones(4, np.float32)
    other.step()
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(other.state_dict())
    two = AdamW([{"params": [Parameter(np.zeros(3))]}, {"params": [Parameter(np.zeros(3))]}])
    with pytest.raises(ValueError, match="groups"):
        opt.load_state_dict(two.state_dict())


# ---- the Adam kernel: numba == reference ----------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("wd, decoupled", [(0.0, False), (0.1, False), (0.1, True)])
def test_adam_numba_kernel_equals_reference(dtype, wd, decoupled):
    r = np.random.default_rng(0)
    arrays = [r.standard_normal(1000).astype(dtype) for _ in range(2)]
    states = {}
    for impl in ("reference", "numba"):
        p, m, v = arrays[0].copy(), np.zeros(1000, dtype), np.zeros(1000, dtype)
        fn = getattr(adam_kernels, f"adam_step_{impl}")
        for step in range(1, 6):
            g = (arrays[1] * step).astype(dtype)
            fn(p, g, m, v, step, 1e-2, 0.9, 0.999, 1e-8, wd, decoupled)
        states[impl] = (p, m, v)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    for a, b in zip(states["reference"], states["numba"]):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
        assert a.dtype == b.dtype == dtype


def test_adam_numba_kernel_rejects_non_contiguous():
    p = np.zeros((4, 4), np.float32)[:, ::2]
    with pytest.raises(ValueError, match="contiguous"):
        adam_kernels.adam_step_numba(
            p,
            np.ones_like(p),
            np.zeros_like(p),
            np.zeros_like(p),
            1,
            0.1,
            0.9,
            0.999,
            1e-8,
            0.0,
            False,
        )


# ---- learning-rate schedules -----------------------------------------------------------------


def test_warmup_cosine_hand_values():
    mx, mn, W, T = 1.0, 0.1, 10, 110
    assert warmup_cosine(0, mx, W, T, mn) == pytest.approx(mx / W)  # first warmup step
    assert warmup_cosine(4, mx, W, T, mn) == pytest.approx(mx * 5 / W)
    assert warmup_cosine(W - 1, mx, W, T, mn) == pytest.approx(mx)  # warmup's last step
    assert warmup_cosine(W, mx, W, T, mn) == pytest.approx(mx)  # decay starts at max
    assert warmup_cosine(W + (T - W) // 2, mx, W, T, mn) == pytest.approx((mx + mn) / 2)
    assert warmup_cosine(W + (T - W) // 4, mx, W, T, mn) == pytest.approx(
        mn + (mx - mn) * (1 + math.cos(math.pi / 4)) / 2
    )
    assert warmup_cosine(T, mx, W, T, mn) == pytest.approx(mn)
    assert warmup_cosine(T + 50, mx, W, T, mn) == pytest.approx(mn)
    lrs = [warmup_cosine(t, mx, W, T, mn) for t in range(W, T + 1)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))  # monotone decay


def test_warmup_linear_hand_values():
    assert warmup_linear(1, 2.0, 4, 24) == pytest.approx(1.0)
    assert warmup_linear(4, 2.0, 4, 24) == pytest.approx(2.0)
    assert warmup_linear(14, 2.0, 4, 24) == pytest.approx(1.0)  # half way: half
    assert warmup_linear(19, 2.0, 4, 24, 0.4) == pytest.approx(0.4 + 0.25 * 1.6)
    assert warmup_linear(24, 2.0, 4, 24, 0.4) == pytest.approx(0.4)


def test_schedulers_drive_the_optimizer():
    opt = SGD([Parameter(np.zeros(1))], lr=0.5)
    sched = CosineWithWarmup(opt, warmup=2, total=6, min_lr_ratio=0.1)
    seen = [opt.param_groups[0]["lr"]]
    for _ in range(7):
        sched.step()
        seen.append(opt.param_groups[0]["lr"])
    expected = [
        0.25,
        0.5,
        0.5,
        0.5 * (0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2),
        0.5 * 0.55,
        0.5 * (0.1 + 0.9 * (1 + math.cos(3 * math.pi / 4)) / 2),
        0.05,
        0.05,
    ]
    np.testing.assert_allclose(seen, expected, rtol=1e-12)
    assert sched.get_last_lr() == [0.05]
    # resume: a new scheduler loaded from the state dict continues at the same step
    opt2 = SGD([Parameter(np.zeros(1))], lr=0.5)
    s2 = CosineWithWarmup(opt2, warmup=2, total=6, min_lr_ratio=0.1)
    s2.load_state_dict(sched.state_dict())
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.05)
    lin = LinearWithWarmup(SGD([Parameter(np.zeros(1))], lr=1.0), warmup=1, total=3)
    lin.step()
    lin.step()
    assert lin.get_last_lr() == [pytest.approx(0.5)]


def test_lambda_lr_matches_torch():
    torch = pytest.importorskip("torch")
    fn = lambda t: 0.9**t + 0.1  # noqa: E731
    opt = SGD([Parameter(np.zeros(1))], lr=0.3)
    ours = LambdaLR(opt, fn)
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.3)
    theirs = torch.optim.lr_scheduler.LambdaLR(topt, fn)
    for _ in range(5):
        assert ours.get_last_lr()[0] == pytest.approx(theirs.get_last_lr()[0], rel=1e-12)
        topt.step()
        ours.step()
        theirs.step()


# ---- gradient clipping -----------------------------------------------------------------------


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_formula(max_norm):
    r = np.random.default_rng(0)
    params = [Parameter(np.zeros(s)) for s in [(3, 4), (5,)]]
    for p in params:
        p.grad = r.standard_normal(p.shape)
    params.append(Parameter(np.zeros(2)))  # no grad: ignored
    before = [p.grad.copy() for p in params[:2]]
    norm = math.sqrt(sum((g**2).sum() for g in before))
    returned = clip_grad_norm_(params, max_norm)
    assert returned == pytest.approx(norm, rel=1e-12)
    coef = min(1.0, max_norm / (norm + 1e-6))
    for p, g in zip(params, before):
        np.testing.assert_allclose(p.grad, g * coef, rtol=1e-12)
    after = math.sqrt(sum((p.grad**2).sum() for p in params[:2]))
    assert after <= max_norm + 1e-9


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(1)
    grads = [r.standard_normal(s) * 3 for s in [(3, 4), (7,)]]
    params = [Parameter(np.zeros(g.shape)) for g in grads]
    tparams = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, tp, g in zip(params, tparams, grads):
        p.grad, tp.grad = g.copy(), torch.tensor(g)
    ours = clip_grad_norm_(params, 1.0)
    theirs = torch.nn.utils.clip_grad_norm_(tparams, 1.0)
    assert ours == pytest.approx(theirs.item(), rel=1e-12)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-12)


# ---- gradient accumulation -------------------------------------------------------------------


def test_gradient_accumulation_equals_one_big_batch():
    """k micro-batches, each loss scaled by 1/k and backpropagated into the same .grad,
    give the big batch's gradient (mean cross-entropy over equal-sized micro-batches)."""
    cfg = GPTConfig(vocab_size=17, block_size=8, n_layer=1, n_head=2, n_embd=8)
    m = GPT(cfg, generator=np.random.default_rng(0))
    for p in m.parameters():
        p.data = p.data.astype(np.float64)
    r = np.random.default_rng(1)
    x, y = r.integers(0, 17, (8, 8)), r.integers(0, 17, (8, 8))
    m.zero_grad()
    m(x, y)[1].backward()
    big = {n: p.grad.copy() for n, p in m.named_parameters()}
    m.zero_grad()
    k = 4
    for i in range(k):
        _, loss = m(x[2 * i : 2 * i + 2], y[2 * i : 2 * i + 2])
        (loss * (1.0 / k)).backward()
    for n, p in m.named_parameters():
        np.testing.assert_allclose(p.grad, big[n], rtol=1e-10, atol=1e-13, err_msg=n)
