"""nn.RNN / LSTM / GRU and their cells: PyTorch's equations, names, shapes and gradients.

Three truths: a plain-NumPy loop written from the equations in the module docstring (forward
values of every variant: layers, directions, batch_first, unbatched, given states); central
differences through the whole unrolled sequence (gradcheck, float64 — backpropagation through
time by the ordinary autograd); and PyTorch's own modules when installed (the same state dict,
forward and gradients).
"""

import numpy as np
import pytest

from tinyllm import Tensor, nn
from tinyllm.testing import gradcheck


def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_step(mode, x, state, w_ih, w_hh, b_ih, b_hh):
    """One step, straight from the equations (NumPy)."""
    b_ih = 0 if b_ih is None else b_ih
    b_hh = 0 if b_hh is None else b_hh
    if mode == "LSTM":
        h, c = state
        gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        i, f, g, o = np.split(gi + gh, 4, axis=-1)
        c = sig(f) * c + sig(i) * np.tanh(g)
        return sig(o) * np.tanh(c), c
    h = state
    gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    if mode == "GRU":
        xr, xz, xn = np.split(gi, 3, axis=-1)
        hr, hz, hn = np.split(gh, 3, axis=-1)
        r, z = sig(xr + hr), sig(xz + hz)
        n = np.tanh(xn + r * hn)
        return (1 - z) * n + z * h
    pre = gi + gh
    return np.tanh(pre) if mode == "RNN_TANH" else np.maximum(pre, 0)


def np_rnn(m, x, h0=None, c0=None):
    """The module's forward as NumPy loops; x (T, B, in) → out (T, B, D·H), h_n[, c_n]."""
    dirs = 2 if m.bidirectional else 1
    t, b = x.shape[:2]
    H = m.hidden_size
    zeros = np.zeros((m.num_layers * dirs, b, H))
    h0 = zeros if h0 is None else h0
    c0 = zeros if c0 is None else c0
    hs, cs = [], []
    for layer in range(m.num_layers):
        outs = []
        for d in range(dirs):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            p = {
                n: getattr(m, n + sfx, None)
                for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            }
            p = {n: (None if v is None else v.data) for n, v in p.items()}
            k = layer * dirs + d
            state = (h0[k], c0[k]) if m.mode == "LSTM" else h0[k]
            ys = [None] * t
            for s in range(t - 1, -1, -1) if d else range(t):
                state = np_step(
                    m.mode, x[s], state, p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"]
                )
                ys[s] = state[0] if m.mode == "LSTM" else state
            outs.append(np.stack(ys))
            hs.append(state[0] if m.mode == "LSTM" else state)
            if m.mode == "LSTM":
                cs.append(state[1])
        x = np.concatenate(outs, axis=-1)
    return x, np.stack(hs), (np.stack(cs) if cs else None)


def make(kind, **kw):
    cls = {"RNN": nn.RNN, "RNN_relu": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}[kind]
    if kind == "RNN_relu":
        kw["nonlinearity"] = "relu"
    return cls(3, 4, dtype=np.float64, generator=np.random.default_rng(0), **kw)


KINDS = ["RNN", "RNN_relu", "LSTM", "GRU"]
VARIANTS = [
    {},
    {"num_layers": 2},
    {"bidirectional": True},
    {"num_layers": 2, "bidirectional": True, "bias": False},
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("variant", VARIANTS, ids=str)
def test_forward_equals_the_equations(kind, variant):
    m = make(kind, **variant)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 2, 3))
    out, hn = m(Tensor(x))
    want_out, want_h, want_c = np_rnn(m, x)
    if kind == "LSTM":
        hn, cn = hn
        np.testing.assert_allclose(cn.data, want_c, atol=1e-12)
    np.testing.assert_allclose(out.data, want_out, atol=1e-12)
    np.testing.assert_allclose(hn.data, want_h, atol=1e-12)
    dirs = 2 if variant.get("bidirectional") else 1
    assert out.shape == (5, 2, 4 * dirs)
    assert hn.shape == (variant.get("num_layers", 1) * dirs, 2, 4)


@pytest.mark.parametrize("kind", KINDS)
def test_batch_first_unbatched_and_initial_state(kind):
    m = make(kind, num_layers=2)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 2, 3))
    h0 = rng.standard_normal((2, 2, 4))
    c0 = rng.standard_normal((2, 2, 4))
    hx = (Tensor(h0), Tensor(c0)) if kind == "LSTM" else Tensor(h0)
    out, _ = m(Tensor(x), hx)
    want, _, _ = np_rnn(m, x, h0, c0)
    np.testing.assert_allclose(out.data, want, atol=1e-12)
    m.batch_first = True
    out_bf, _ = m(Tensor(x.transpose(1, 0, 2)), hx)
    np.testing.assert_allclose(out_bf.data, want.transpose(1, 0, 2), atol=1e-12)
    m.batch_first = False
    hx1 = (Tensor(h0[:, 0]), Tensor(c0[:, 0])) if kind == "LSTM" else Tensor(h0[:, 0])
    out_u, h_u = m(Tensor(x[:, 0]), hx1)
    assert out_u.shape == (6, 4)
    np.testing.assert_allclose(out_u.data, want[:, 0], atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_backpropagation_through_time_by_finite_differences(kind):
    m = make(kind, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(3)
    x = Tensor(rng.standard_normal((4, 2, 3)), requires_grad=True)
    params = [p for _, p in m.named_parameters()]

    def f(x, *ps):
        out, _ = m(x)
        return out

    gradcheck(f, [x, *params])


@pytest.mark.parametrize("cell", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells_are_one_step_and_gradcheck(cell):
    c = getattr(nn, cell)(3, 5, dtype=np.float64, generator=np.random.default_rng(4))
    rng = np.random.default_rng(5)
    x = Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    h = Tensor(rng.standard_normal((2, 5)), requires_grad=True)
    cc = Tensor(rng.standard_normal((2, 5)), requires_grad=True)
    mode = {"RNNCell": "RNN_TANH", "LSTMCell": "LSTM", "GRUCell": "GRU"}[cell]
    state = (h.data, cc.data) if mode == "LSTM" else h.data
    want = np_step(
        mode, x.data, state, c.weight_ih.data, c.weight_hh.data, c.bias_ih.data, c.bias_hh.data
    )
    if mode == "LSTM":
        got = c(x, (h, cc))
        np.testing.assert_allclose(got[0].data, want[0], atol=1e-12)
        np.testing.assert_allclose(got[1].data, want[1], atol=1e-12)
        gradcheck(
            lambda x, h, cc, *ps: c(x, (h, cc))[1] * 2 + c(x, (h, cc))[0],
            [x, h, cc, *c.parameters()],
        )
    else:
        np.testing.assert_allclose(c(x, h).data, want, atol=1e-12)
        gradcheck(lambda x, h, *ps: c(x, h), [x, h, *c.parameters()])
    single = c(Tensor(x.data[0]))  # unbatched: (in,) → (H,)
    single = single[0] if mode == "LSTM" else single
    assert single.shape == (5,)


def test_parameter_names_and_shapes_are_pytorchs():
    m = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    shapes = {n: tuple(p.shape) for n, p in m.named_parameters()}
    assert shapes["weight_ih_l0"] == (16, 3)
    assert shapes["weight_hh_l0_reverse"] == (16, 4)
    assert shapes["weight_ih_l1"] == (16, 8)  # both directions feed layer 1
    assert shapes["bias_hh_l1_reverse"] == (16,)
    assert len(shapes) == 16
    assert {n for n, _ in nn.GRU(3, 4, bias=False).named_parameters()} == {
        "weight_ih_l0",
        "weight_hh_l0",
    }
    bound = 1 / np.sqrt(4)
    assert all(np.abs(p.data).max() <= bound for p in m.parameters())


@pytest.mark.parametrize(
    "call, err, msg",
    [
        (lambda: nn.RNN(3, 0), ValueError, "hidden_size"),
        (lambda: nn.RNN(3, 4, nonlinearity="gelu"), ValueError, "nonlinearity"),
        (lambda: nn.LSTM(3, 4, dropout=1.5), ValueError, "dropout"),
        (lambda: nn.LSTM(3, 4, proj_size=2), NotImplementedError, "proj_size"),
        (lambda: nn.GRU(3, 4)(Tensor(np.zeros((5, 2, 7)))), ValueError, "input_size=3"),
        (
            lambda: nn.GRU(3, 4)(Tensor(np.zeros((5, 2, 3))), Tensor(np.zeros((1, 3, 4)))),
            ValueError,
            "hidden size",
        ),
        (
            lambda: nn.LSTM(3, 4)(Tensor(np.zeros((5, 2, 3))), Tensor(np.zeros((1, 2, 4)))),
            TypeError,
            "tuple",
        ),
        (lambda: nn.RNN(3, 4)(Tensor(np.zeros((0, 2, 3)))), ValueError, "no time steps"),
        (
            lambda: nn.RNN(3, 4)(Tensor(np.zeros((5, 2, 3), dtype=np.int64))),
            TypeError,
            "floating point",
        ),
    ],
)
def test_bad_arguments_are_named(call, err, msg):
    with pytest.raises(err, match=msg):
        call()


torch = pytest.importorskip("torch", reason="cross-check against PyTorch's modules")


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_equal_to_pytorch_forward_and_gradients(kind):
    tm = getattr(torch.nn, kind)(3, 4, num_layers=2, bidirectional=True, batch_first=True).double()
    m = getattr(nn, kind)(
        3, 4, num_layers=2, bidirectional=True, batch_first=True, dtype=np.float64
    )
    m.load_state_dict({k: v.detach().numpy().copy() for k, v in tm.state_dict().items()})
    x = np.random.default_rng(6).standard_normal((2, 5, 3))
    tx = torch.tensor(x, requires_grad=True)
    tout, th = tm(tx)
    xt = Tensor(x, requires_grad=True)
    out, h = m(xt)
    np.testing.assert_allclose(out.data, tout.detach().numpy(), atol=1e-10)
    th = th[0] if kind == "LSTM" else th
    h = h[0] if kind == "LSTM" else h
    np.testing.assert_allclose(h.data, th.detach().numpy(), atol=1e-10)
    u = np.random.default_rng(7).standard_normal(out.shape)
    (tout * torch.tensor(u)).sum().backward()
    out.backward(u)
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), atol=1e-10)
    for name, p in m.named_parameters():
        np.testing.assert_allclose(
            p.grad, dict(tm.named_parameters())[name].grad.numpy(), atol=1e-10, err_msg=name
        )
