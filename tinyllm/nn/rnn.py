"""Recurrent networks: one hidden state carried from step to step (PyTorch's RNN, LSTM, GRU).

Before attention, a sequence model read its input one position at a time and kept what it had
read in a fixed-size vector, the hidden state h_t, updated by the same weights at every step:

    RNN   h_t = tanh(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh)          (or relu)

    LSTM  (Hochreiter & Schmidhuber 1997; PyTorch's gate order i, f, g, o in the rows of W)
          i = σ(W_ii x_t + b_ii + W_hi h_{t−1} + b_hi)     input gate
          f = σ(W_if x_t + b_if + W_hf h_{t−1} + b_hf)     forget gate
          g = tanh(W_ig x_t + b_ig + W_hg h_{t−1} + b_hg)  candidate cell
          o = σ(W_io x_t + b_io + W_ho h_{t−1} + b_ho)     output gate
          c_t = f ⊙ c_{t−1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)

    GRU   (Cho et al. 2014; gate order r, z, n)
          r = σ(W_ir x_t + b_ir + W_hr h_{t−1} + b_hr)     reset gate
          z = σ(W_iz x_t + b_iz + W_hz h_{t−1} + b_hz)     update gate
          n = tanh(W_in x_t + b_in + r ⊙ (W_hn h_{t−1} + b_hn))
          h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}

The recurrence is what makes these networks both general (any input and output lengths: read
the whole input, then emit, or emit at every step) and slow: h_t needs h_{t−1}, so the T steps
of a sequence run one after another, where a transformer's attention sees all positions in one
parallel pass. Training unrolls the loop and backpropagates through it ("backpropagation
through time"); nothing here is special for that — each step is ordinary ops and the autograd
walks back through all T of them. The product of T Jacobians ∂h_t/∂h_{t−1} is also why
gradients explode or vanish over long sequences: the LSTM's additive cell path c_t = f⊙c_{t−1} + …
is the classic cure for vanishing, gradient clipping (nn.utils.clip_grad_norm_) for exploding.

The input projection W_ih x_t does not depend on the previous step, so it is computed for all
steps in one matrix product before the loop; only W_hh h_{t−1} runs per step.

PyTorch's interface, names and shapes, so a state dict transfers: `weight_ih_l{k}` (G·H, in),
`weight_hh_l{k}` (G·H, H), `bias_ih_l{k}`, `bias_hh_l{k}` (G·H,) with G = 1, 4, 3 gates, and a
`_reverse` suffix for the backward direction; input (T, B, in), or (B, T, in) with
`batch_first`, or unbatched (T, in); output (T, B, D·H) — every step's top-layer state — and
h_n (D·num_layers, B, H) the last state of every layer (LSTM: (h_n, c_n)); `dropout` between
layers in training; every weight and bias ~ U(−1/√H, 1/√H). The cells (RNNCell, LSTMCell,
GRUCell) are one step of the same equations.
"""

from __future__ import annotations

import math

import numpy as np

from tinyllm import ops
from tinyllm.dtypes import DEFAULT_DTYPE
from tinyllm.engine import Tensor
from tinyllm.nn.module import Module, Parameter, check_device
from tinyllm.runtime.random import generator_or_default

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _as_tensor(x, where: str) -> Tensor:
    if not isinstance(x, Tensor):
        x = Tensor(np.asarray(x))
    if x.dtype.kind != "f":
        raise TypeError(f"{where}: input must be floating point, got {x.dtype}")
    return x


def rnn_tanh_step(xw, h, w_hh, b_hh):
    """One RNN step; xw = W_ih x_t + b_ih precomputed. Returns h_t."""
    return ops.tanh(xw + ops.linear(h, w_hh, b_hh))


def rnn_relu_step(xw, h, w_hh, b_hh):
    return ops.relu(xw + ops.linear(h, w_hh, b_hh))


def lstm_step(xw, state, w_hh, b_hh):
    """One LSTM step; state = (h, c). Returns (h_t, c_t)."""
    h, c = state
    gates = xw + ops.linear(h, w_hh, b_hh)  # (B, 4H): i, f, g, o
    i, f, g, o = ops.chunk(gates, 4, dim=-1)
    c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
    return ops.sigmoid(o) * ops.tanh(c), c


def gru_step(xw, h, w_hh, b_hh):
    """One GRU step. The reset gate multiplies W_hn h + b_hn (PyTorch's form, and cuDNN's)."""
    x_r, x_z, x_n = ops.chunk(xw, 3, dim=-1)
    h_r, h_z, h_n = ops.chunk(ops.linear(h, w_hh, b_hh), 3, dim=-1)
    r = ops.sigmoid(x_r + h_r)
    z = ops.sigmoid(x_z + h_z)
    n = ops.tanh(x_n + r * h_n)
    return (1.0 - z) * n + z * h


STEPS = {"RNN_TANH": rnn_tanh_step, "RNN_RELU": rnn_relu_step, "LSTM": lstm_step, "GRU": gru_step}


class RNNBase(Module):
    """The shared multi-layer, optionally bidirectional recurrence over a whole sequence."""

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        dtype=DEFAULT_DTYPE,
        generator=None,
        device=None,
    ):
        super().__init__()
        name = type(self).__name__
        check_device(device, name)
        for what, v in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name}: {what} must be a positive int, got {v!r}")
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, (int, float))
            or not (0.0 <= dropout <= 1.0)
        ):
            raise ValueError(f"{name}: dropout must be a probability in [0, 1], got {dropout!r}")
        if proj_size:
            raise NotImplementedError(f"{name}: proj_size (LSTM projections) is not implemented")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        self.proj_size = 0
        dtype = DEFAULT_DTYPE if dtype is None else dtype
        g = generator_or_default(generator)
        k = 1.0 / math.sqrt(hidden_size)
        gh = GATES[mode] * hidden_size
        dirs = 2 if bidirectional else 1
        for layer in range(num_layers):
            in_size = input_size if layer == 0 else hidden_size * dirs
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                shapes = [("weight_ih", (gh, in_size)), ("weight_hh", (gh, hidden_size))]
                if bias:
                    shapes += [("bias_ih", (gh,)), ("bias_hh", (gh,))]
                for pname, shape in shapes:
                    w = g.uniform(-k, k, shape).astype(dtype)
                    self.register_parameter(pname + sfx, Parameter(w))

    def _weights(self, layer: int, d: int):
        sfx = f"_l{layer}" + ("_reverse" if d else "")
        get = lambda n: getattr(self, n + sfx) if self.bias or n.startswith("w") else None  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def _check_hx(self, hx, batch: int, unbatched: bool, name: str):
        dirs = 2 if self.bidirectional else 1
        want = (self.num_layers * dirs, batch, self.hidden_size)
        if hx is None:
            return Tensor(np.zeros(want, dtype=self.weight_ih_l0.dtype))
        hx = _as_tensor(hx, name)
        if unbatched:
            if hx.ndim != 2:
                raise ValueError(f"{name}: for unbatched input, hx must be 2-D, got {hx.shape}")
            hx = ops.unsqueeze(hx, 1)
        if tuple(hx.shape) != want:
            raise ValueError(f"{name}: expected hidden size {want}, got {tuple(hx.shape)}")
        return hx

    def forward(self, input, hx=None):
        name = type(self).__name__
        x = _as_tensor(input, name)
        if x.ndim not in (2, 3):
            raise ValueError(f"{name}: input must be 2-D (unbatched) or 3-D, got {x.shape}")
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"{name}: input has {x.shape[-1]} features, expected input_size={self.input_size}"
            )
        unbatched = x.ndim == 2
        if unbatched:
            x = ops.unsqueeze(x, 1)  # (T, 1, in)
        elif self.batch_first:
            x = ops.transpose(x, 0, 1)  # (T, B, in)
        t, b = x.shape[0], x.shape[1]
        if t == 0:
            raise ValueError(f"{name}: input has no time steps (sequence length 0)")
        lstm = self.mode == "LSTM"
        if lstm:
            if hx is None:
                h0 = c0 = self._check_hx(None, b, unbatched, name)
            else:
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise TypeError(f"{name}: hx must be a tuple (h_0, c_0)")
                h0 = self._check_hx(hx[0], b, unbatched, name)
                c0 = self._check_hx(hx[1], b, unbatched, name)
        else:
            if isinstance(hx, (tuple, list)):
                raise TypeError(f"{name}: hx must be a tensor, not a tuple (that is LSTM's)")
            h0 = self._check_hx(hx, b, unbatched, name)
        step = STEPS[self.mode]
        dirs = 2 if self.bidirectional else 1
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(dirs):
                w_ih, w_hh, b_ih, b_hh = self._weights(layer, d)
                xw = ops.linear(x, w_ih, b_ih)  # (T, B, G·H): every step's input part at once
                k = layer * dirs + d
                state = (h0[k], c0[k]) if lstm else h0[k]
                ys = [None] * t
                for s in range(t - 1, -1, -1) if d else range(t):
                    state = step(xw[s], state, w_hh, b_hh)
                    ys[s] = state[0] if lstm else state
                outs.append(ops.stack(ys, dim=0))  # (T, B, H)
                h_n.append(state[0] if lstm else state)
                if lstm:
                    c_n.append(state[1])
            x = outs[0] if dirs == 1 else ops.cat(outs, dim=-1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = ops.dropout(x, self.dropout, training=True)
        out = x
        h_n = ops.stack(h_n, dim=0)
        if lstm:
            c_n = ops.stack(c_n, dim=0)
        if unbatched:
            out = ops.squeeze(out, 1)
            h_n = ops.squeeze(h_n, 1)
            if lstm:
                c_n = ops.squeeze(c_n, 1)
        elif self.batch_first:
            out = ops.transpose(out, 0, 1)
        return out, ((h_n, c_n) if lstm else h_n)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for flag, default in (("bias", True), ("batch_first", False), ("bidirectional", False)):
            if getattr(self, flag) != default:
                s += f", {flag}={getattr(self, flag)}"
        if self.dropout:
            s += f", dropout={self.dropout}"
        return s


class RNN(RNNBase):
    """Elman RNN, tanh or relu: h_t = act(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        **kwargs,
    ):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(
            "RNN_" + nonlinearity.upper(), input_size, hidden_size, num_layers, **kwargs
        )
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory; forward returns (output, (h_n, c_n))."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, **kwargs):
        super().__init__("LSTM", input_size, hidden_size, num_layers, **kwargs)


class GRU(RNNBase):
    """Gated recurrent unit; forward returns (output, h_n)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, **kwargs):
        super().__init__("GRU", input_size, hidden_size, num_layers, **kwargs)


class RNNCellBase(Module):
    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        dtype=DEFAULT_DTYPE,
        generator=None,
        device=None,
    ):
        super().__init__()
        name = type(self).__name__
        check_device(device, name)
        for what, v in (("input_size", input_size), ("hidden_size", hidden_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name}: {what} must be a positive int, got {v!r}")
        self.mode, self.input_size, self.hidden_size, self.bias = (
            mode,
            input_size,
            hidden_size,
            bias,
        )
        dtype = DEFAULT_DTYPE if dtype is None else dtype
        g = generator_or_default(generator)
        k = 1.0 / math.sqrt(hidden_size)
        gh = GATES[mode] * hidden_size
        self.weight_ih = Parameter(g.uniform(-k, k, (gh, input_size)).astype(dtype))
        self.weight_hh = Parameter(g.uniform(-k, k, (gh, hidden_size)).astype(dtype))
        if bias:
            self.bias_ih = Parameter(g.uniform(-k, k, gh).astype(dtype))
            self.bias_hh = Parameter(g.uniform(-k, k, gh).astype(dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)

    def _prepare(self, input, hx):
        name = type(self).__name__
        x = _as_tensor(input, name)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"{name}: input must be (batch, {self.input_size}) or ({self.input_size},), "
                f"got {tuple(x.shape)}"
            )
        unbatched = x.ndim == 1
        if unbatched:
            x = ops.unsqueeze(x, 0)
        want = (x.shape[0], self.hidden_size)

        def state(h):
            if h is None:
                return Tensor(np.zeros(want, dtype=self.weight_ih.dtype))
            h = _as_tensor(h, name)
            h = ops.unsqueeze(h, 0) if unbatched and h.ndim == 1 else h
            if tuple(h.shape) != want:
                raise ValueError(f"{name}: expected hidden state {want}, got {tuple(h.shape)}")
            return h

        return x, unbatched, state

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(RNNCellBase):
    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        **kwargs,
    ):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}"
            )
        super().__init__("RNN_" + nonlinearity.upper(), input_size, hidden_size, bias, **kwargs)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        x, unbatched, state = self._prepare(input, hx)
        xw = ops.linear(x, self.weight_ih, self.bias_ih)
        h = STEPS[self.mode](xw, state(hx), self.weight_hh, self.bias_hh)
        return ops.squeeze(h, 0) if unbatched else h


class LSTMCell(RNNCellBase):
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, **kwargs):
        super().__init__("LSTM", input_size, hidden_size, bias, **kwargs)

    def forward(self, input, hx=None):
        x, unbatched, state = self._prepare(input, hx)
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError("LSTMCell: hx must be a tuple (h_0, c_0)")
        h0, c0 = (state(None), state(None)) if hx is None else (state(hx[0]), state(hx[1]))
        xw = ops.linear(x, self.weight_ih, self.bias_ih)
        h, c = lstm_step(xw, (h0, c0), self.weight_hh, self.bias_hh)
        return (ops.squeeze(h, 0), ops.squeeze(c, 0)) if unbatched else (h, c)


class GRUCell(RNNCellBase):
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, **kwargs):
        super().__init__("GRU", input_size, hidden_size, bias, **kwargs)

    def forward(self, input, hx=None):
        x, unbatched, state = self._prepare(input, hx)
        xw = ops.linear(x, self.weight_ih, self.bias_ih)
        h = gru_step(xw, state(hx), self.weight_hh, self.bias_hh)
        return ops.squeeze(h, 0) if unbatched else h
