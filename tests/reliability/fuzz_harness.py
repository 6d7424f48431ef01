"""Fuzzing the public ops: every call must give a correct result or a clear error.

A *case* is one call of a public op (a top-level tinyllm function, a Tensor method, an
operator or an nn.functional function) with arguments an attacker might pass: every dtype
(bool, int8/32/64, uint8, float16/32/64, complex, object), shapes with zero-size axes and
shapes that do not broadcast, dims out of range and duplicated, None, ragged lists, NaN and
inf values. The outcome of a case is sorted into exactly one class:

    correct        a result, equal to the reference (values, shape and dtype)
    clear error    TypeError / ValueError / IndexError / RuntimeError (or ZeroDivisionError for
                   an integer division by zero) whose message names the op
    silent wrong   a result that differs from the reference, or a result where the documented
                   policy demands an error
    unclear error  any other exception, or one whose message does not name the op (a NumPy or
                   numba internal surfacing)
    hang           the call did not return within the time limit

The reference is PyTorch, run on the same inputs (the policy follows PyTorch). Where PyTorch
refuses an input, a result from tinyllm is accepted only if it equals PyTorch's result on the
inputs cast to float64 and has a floating dtype (an honest extension, e.g. a half ∘ float32
product); otherwise it is silent wrong. Three rules are stricter than PyTorch and override it:
complex and object data, None and ragged lists must be rejected, and a probability outside
[0, 1] (or NaN) must raise. Random ops (dropout) are checked by a property instead of values:
every output is 0 or x/(1 − p).

The model cases do the same for a tiny GPT: `forward` with good and bad ids (negative, ≥ vocab,
float, bool, wrong rank, longer than the block size, None, ragged) and `generate` with good and
bad options. A good call must equal the same call with int64 ids (forward), or a greedy
decoding done by hand with repeated forwards (generate).

Run as a script to print the tally:

    PYTHONPATH=$PWD python tests/reliability/fuzz_harness.py [--seed 0] [--ops 3000] [--model 600]

The suite (tests/reliability/test_fuzz_ops.py) draws cases with hypothesis and demands every
case be correct or a clear error.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
import warnings
from dataclasses import dataclass, field

import numpy as np

import tinyllm
import tinyllm.nn.functional as F

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # pragma: no cover - the tally needs PyTorch as the oracle
    torch = None
    TF = None

OUTCOMES = ("correct", "clear error", "silent wrong", "unclear error", "hang")
CLEAR_TYPES = (TypeError, ValueError, IndexError, RuntimeError, ZeroDivisionError)
DTYPES = (
    "bool",
    "int8",
    "int32",
    "int64",
    "uint8",
    "float16",
    "float32",
    "float64",
    "complex64",
    "object",
)
TIME_LIMIT = 20  # seconds per call before it counts as a hang


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int):
    """Raise Hang in the main thread if the block runs longer than `seconds` (SIGALRM)."""

    def alarm(signum, frame):
        raise Hang

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ---- arguments ------------------------------------------------------------------------------


@dataclass
class Arr:
    """A tensor argument: given to tinyllm as Tensor(array), to torch as a torch tensor."""

    a: np.ndarray

    def __post_init__(self):
        self.a = np.asarray(self.a)  # (NumPy gives scalars for 0-d draws)

    def tl(self):
        return tinyllm.Tensor(self.a)

    def th(self):
        if self.a.dtype == object:
            return torch.tensor(self.a.tolist())
        return torch.from_numpy(np.array(self.a))

    def bad(self) -> bool:
        return self.a.dtype.kind in "cO"

    def f64(self, ints=False):
        """The reference's fallback input: float64 (with `ints`, integers become int64)."""
        if self.a.dtype.kind == "O" or self.a.dtype.kind == "c":
            raise TypeError("no float64 version")
        if ints and self.a.dtype.kind in "iu":
            return torch.from_numpy(self.a.astype(np.int64))
        return torch.from_numpy(self.a.astype(np.float64))

    def __repr__(self):
        return f"Arr({self.a.dtype}{list(self.a.shape)})"


@dataclass
class Py:
    """A plain Python value (a scalar, None, a list), passed as is to both libraries."""

    v: object

    def tl(self):
        return self.v

    def th(self):
        return self.v

    def bad(self) -> bool:
        if isinstance(self.v, np.ndarray):
            return self.v.dtype.kind not in "biuf"
        return self.v is None or isinstance(self.v, (complex, str)) or _ragged_or_none(self.v)

    def f64(self, ints=False):
        return self.v

    def __repr__(self):
        return f"Py({self.v!r})"


def _ragged_or_none(v) -> bool:
    if not isinstance(v, list):
        return False
    if any(x is None for x in v):
        return True
    lens = {len(x) if isinstance(x, list) else -1 for x in v}
    return len(lens) > 1 or any(_ragged_or_none(x) for x in v if isinstance(x, list))


def _values(rng, dtype: str, shape) -> np.ndarray:
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype == "uint8":
        return rng.integers(0, 6, shape).astype(np.uint8)
    if dtype.startswith("int"):
        return rng.integers(-5, 6, shape).astype(dtype)
    if dtype == "complex64":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    if dtype == "object":
        out = np.empty(shape, dtype=object)
        flat = out.reshape(-1)
        for i in range(flat.size):
            flat[i] = float(rng.standard_normal())
        return out
    a = (rng.standard_normal(shape) * 2).astype(dtype)
    if a.size and rng.random() < 0.15:  # NaN and inf now and then
        a.reshape(-1)[rng.integers(0, a.size)] = rng.choice([np.nan, np.inf, -np.inf])
    return a


def pick_dtype(rng, float_bias=0.5) -> str:
    if rng.random() < float_bias:
        return str(rng.choice(["float32", "float64", "float16"], p=[0.7, 0.2, 0.1]))
    return str(rng.choice(DTYPES))


def pick_shape(rng, min_ndim=0, max_ndim=3, zero=0.1):
    nd = int(rng.integers(min_ndim, max_ndim + 1))
    return tuple(0 if rng.random() < zero else int(rng.integers(1, 5)) for _ in range(nd))


def tensor_arg(rng, shape=None, dtype=None, **kw) -> Arr:
    shape = pick_shape(rng, **kw) if shape is None else shape
    return Arr(_values(rng, pick_dtype(rng) if dtype is None else dtype, shape))


def pick_dim(rng, ndim: int):
    """Mostly a valid dim, sometimes one just out of range, rarely a non-int."""
    r = rng.random()
    n = max(ndim, 1)
    if r < 0.75:
        return int(rng.integers(-n, n))
    if r < 0.95:
        return int(rng.choice([n, n + 3, -n - 1, -n - 4]))
    return rng.choice([1.5, None, "0"]) if ndim else 1.5


# ---- op specifications ----------------------------------------------------------------------


@dataclass
class Spec:
    """One public op: how to draw its arguments and call it in tinyllm and in torch."""

    name: str
    draw: object  # rng → (args: list, kwargs: dict of plain values)
    tl: object  # (args, kwargs) → result
    th: object | None  # (args, kwargs) → torch result; None: no torch version
    names: tuple = ()  # other words that name this op in a message
    check: object | None = None  # property check (random ops): (out, args, kwargs) → bool
    strict: object | None = None  # (args, kwargs) → True where policy demands an error

    def words(self):
        return (self.name,) + self.names


def _unary(rng):
    return [tensor_arg(rng)], {}


def _binary(rng):
    a = tensor_arg(rng)
    r = rng.random()
    if r < 0.55:  # a broadcast partner (same, trailing, or a mismatch)
        shape = a.a.shape[int(rng.integers(0, a.a.ndim + 1)) :] if rng.random() < 0.7 else None
        b = tensor_arg(rng, shape=shape)
    elif r < 0.85:
        b = Py(rng.choice([2, -3, 0, 0.5, 2.5, True, float("nan"), float("inf")]).item())
    else:
        b = Py([None, 2j, [1.0, None, 3.0], [[1.0], [2.0, 3.0]], "a"][int(rng.integers(0, 5))])
    if rng.random() < 0.2 and not (isinstance(b, Py) and isinstance(b.v, str)):
        a, b = b, a  # the constant on the left (reflected operators; not str: 'a' % x is
        # Python's string formatting, which never reaches tinyllm)
        if isinstance(a, Py) and not isinstance(b, Arr):
            a, b = b, a
    return [a, b], {}


def _dim_unary(rng):
    x = tensor_arg(rng, min_ndim=1)
    return [x], {"dim": pick_dim(rng, x.a.ndim)}


def _reduce(rng):
    x = tensor_arg(rng)
    r = rng.random()
    if r < 0.3:
        dim = None
    elif r < 0.85:
        dim = pick_dim(rng, x.a.ndim)
    else:
        d = int(rng.integers(-max(x.a.ndim, 1), max(x.a.ndim, 1)))
        dim = (d, d) if rng.random() < 0.5 else (0, pick_dim(rng, x.a.ndim))
    return [x], {"dim": dim, "keepdim": bool(rng.random() < 0.3)}


def _two_dims(rng):
    x = tensor_arg(rng, min_ndim=1)
    return [x], {"d0": pick_dim(rng, x.a.ndim), "d1": pick_dim(rng, x.a.ndim)}


def _permute(rng):
    x = tensor_arg(rng, min_ndim=1)
    dims = list(rng.permutation(x.a.ndim).tolist())
    r = rng.random()
    if r < 0.2:
        dims[0] = dims[-1]  # a duplicate (or, in 1-D, the same)
        if x.a.ndim == 1:
            dims = [0, 0]
    elif r < 0.4:
        dims[int(rng.integers(0, len(dims)))] = x.a.ndim + 1
    elif r < 0.5:
        dims = dims[:-1]
    return [x], {"dims": tuple(int(d) for d in dims)}


def _unsqueeze(rng):
    x = tensor_arg(rng)
    return [x], {"dim": pick_dim(rng, x.a.ndim + 1)}


def _seq(rng):
    x = tensor_arg(rng, min_ndim=1)
    n = int(rng.integers(1, 4))
    xs = [x]
    for _ in range(n):
        if rng.random() < 0.8:
            xs.append(
                Arr(
                    _values(
                        rng, str(x.a.dtype) if rng.random() < 0.7 else pick_dtype(rng), x.a.shape
                    )
                )
            )
        else:
            xs.append(tensor_arg(rng, min_ndim=1))
    return xs, {"dim": pick_dim(rng, x.a.ndim + 1)}


def _softmax_dim(rng):
    x = tensor_arg(rng, min_ndim=1, zero=0.2)
    return [x], {"dim": pick_dim(rng, x.a.ndim)}


def _matmul(rng):
    m, k, n = (int(rng.integers(0 if rng.random() < 0.1 else 1, 4)) for _ in range(3))
    a_shape = (m, k) if rng.random() < 0.8 else (k,)
    k2 = k if rng.random() < 0.85 else k + 1
    b_shape = (k2, n) if rng.random() < 0.8 else (k2,)
    if rng.random() < 0.2:
        a_shape = (2,) + a_shape
    da = pick_dtype(rng, 0.6)
    db = da if rng.random() < 0.6 else pick_dtype(rng, 0.6)
    return [Arr(_values(rng, da, a_shape)), Arr(_values(rng, db, b_shape))], {}


def _linear(rng):
    n, i, o = int(rng.integers(1, 4)), int(rng.integers(0, 4)), int(rng.integers(1, 4))
    dx = pick_dtype(rng, 0.6)
    dw = dx if rng.random() < 0.6 else pick_dtype(rng, 0.6)
    i2 = i if rng.random() < 0.9 else i + 1
    args = [Arr(_values(rng, dx, (n, i))), Arr(_values(rng, dw, (o, i2)))]
    if rng.random() < 0.5:
        args.append(Arr(_values(rng, dw, (o,) if rng.random() < 0.9 else (o + 1,))))
    return args, {}


def _layer_norm(rng):
    shape = pick_shape(rng, 1, 3, zero=0.25)
    x = tensor_arg(rng, shape=shape)
    d = shape[-1]
    ns = (d,) if rng.random() < 0.9 else (d + 1,)
    args = [x]
    if rng.random() < 0.5:
        dw = str(x.a.dtype) if rng.random() < 0.7 else pick_dtype(rng)
        args += [Arr(_values(rng, dw, ns)), Arr(_values(rng, dw, ns))]
    return args, {"normalized_shape": ns}


def _cross_entropy(rng):
    n, c = int(rng.integers(0, 4)), int(rng.integers(0 if rng.random() < 0.1 else 1, 5))
    logits = Arr(_values(rng, pick_dtype(rng, 0.6), (n, c)))
    r = rng.random()
    hi = max(c, 1)
    if r < 0.6:
        t = Arr(rng.integers(0, hi, (n,)).astype(rng.choice(["int64", "int32", "uint8"])))
    elif r < 0.7:
        t = Arr(rng.integers(-2, hi + 2, (n,)).astype(np.int64))
    elif r < 0.8:
        t = Arr(_values(rng, "float32", (n, c)))  # probabilities (not normalized: still defined)
        t = Arr(np.abs(np.nan_to_num(t.a)))
    else:
        t = Arr(_values(rng, pick_dtype(rng, 0.3), (n,)))
    return [logits, t], {"reduction": str(rng.choice(["mean", "sum", "none"]))}


def _sdpa(rng):
    b, h = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    L, S = int(rng.integers(1, 4)), int(rng.integers(0 if rng.random() < 0.15 else 1, 4))
    e = int(rng.integers(0 if rng.random() < 0.1 else 1, 4))
    dq = pick_dtype(rng, 0.7)
    dk = dq if rng.random() < 0.8 else pick_dtype(rng, 0.6)
    q = Arr(_values(rng, dq, (b, h, L, e)))
    k = Arr(_values(rng, dk, (b, h, S, e if rng.random() < 0.9 else e + 1)))
    v = Arr(_values(rng, dk, (b, h, S, e)))
    r = rng.random()
    p = 0.0 if r < 0.6 else float(rng.choice([1.0, 1.5, -0.5, float("nan")]))
    return [q, k, v], {"dropout_p": p, "is_causal": bool(rng.random() < 0.3)}


def _dropout(rng):
    x = tensor_arg(rng, zero=0.15)
    p = float(rng.choice([0.0, 0.25, 0.5, 1.0, 1.5, -0.5, float("nan"), float("inf")]))
    return [x], {"p": p, "training": True}


def _embedding(rng):
    w = Arr(_values(rng, pick_dtype(rng, 0.8), (int(rng.integers(1, 5)), int(rng.integers(0, 3)))))
    v = w.a.shape[0]
    r = rng.random()
    if r < 0.6:
        ids = Arr(rng.integers(0, v, pick_shape(rng, 1, 2)).astype(rng.choice(["int64", "int32"])))
    elif r < 0.8:
        ids = Arr(rng.integers(-2, v + 2, (3,)).astype(np.int64))
    else:
        ids = Arr(_values(rng, pick_dtype(rng, 0.5), (3,)))
    return [ids, w], {}


def _flatten(rng):
    x = tensor_arg(rng)
    return [x], {"start": pick_dim(rng, x.a.ndim), "end": pick_dim(rng, x.a.ndim)}


def _topk(rng):
    x = tensor_arg(rng, min_ndim=1)
    n = x.a.shape[-1]
    return [x], {"k": int(rng.integers(0, n + 2)), "dim": pick_dim(rng, x.a.ndim)}


def _make(rng):
    r = rng.random()
    choices = [
        None,
        [1.0, None, 3.0],
        [[1.0, 2.0], [3.0]],
        [1j, 2.0],
        2j,
        np.array([1j, 2.0]),
        np.array([1.0, "a"], dtype=object),
        np.array([1.5, 2.5], dtype=object),
        [[1.0, 2.0], [3.0, 4.0]],
        [1, 2, 3],
        [True, False],
        3.5,
        [],
        "abc",
    ]
    return [Py(choices[int(r * len(choices))])], {}


def _clamp(rng):
    x = tensor_arg(rng)
    bounds = [None, -1, 0.5, 2, float("nan")]
    lo, hi = (bounds[int(rng.integers(0, len(bounds)))] for _ in range(2))
    return [x], {"min": lo, "max": hi}


def _where(rng):
    (a, b), _ = _binary(rng)
    if not isinstance(a, Arr):
        a, b = b, a
    shape = a.a.shape if rng.random() < 0.8 else pick_shape(rng)
    cond = rng.random(shape) < 0.5
    if rng.random() < 0.15:
        cond = cond.astype(np.int64)  # not a boolean condition
    return [Arr(cond), a, b], {}


def _gather(rng):
    x = tensor_arg(rng, min_ndim=1, zero=0.05)
    d = pick_dim(rng, x.a.ndim)
    n = x.a.shape[d] if isinstance(d, int) and -x.a.ndim <= d < x.a.ndim else 1
    shape = tuple(int(rng.integers(0, s + 1)) for s in x.a.shape)
    hi = n + 1 if rng.random() < 0.15 else n
    index = rng.integers(0, max(hi, 1), shape)
    if rng.random() < 0.1:
        index = index.astype(np.float32)
    return [x, Arr(index)], {"dim": d}


def _masked_fill(rng):
    x = tensor_arg(rng)
    shape = x.a.shape if rng.random() < 0.7 else x.a.shape[1:] if rng.random() < 0.5 else (5,)
    mask = rng.random(shape) < 0.5
    if rng.random() < 0.1:
        mask = mask.astype(np.int8)
    value = [0.0, -1.5, 2, float("-inf"), None, 1j][int(rng.integers(0, 6))]
    return [x, Arr(mask)], {"value": value}


def _new_shape(rng):
    x = tensor_arg(rng)
    n = x.a.size
    r = rng.random()
    if r < 0.4:
        shape = (n,)
    elif r < 0.6:
        shape = (-1,) + ((1,) if rng.random() < 0.5 else ())
    elif r < 0.8:
        shape = tuple(int(s) for s in rng.permutation(list(x.a.shape) or [1]))
    else:
        shape = (n + 1,) if rng.random() < 0.5 else (-1, -1)
    return [x], {"shape": shape}


def _expand(rng):
    x = tensor_arg(rng, max_ndim=2)
    shape = tuple(s if s != 1 or rng.random() < 0.5 else 3 for s in x.a.shape)
    if rng.random() < 0.4:
        shape = (2,) + shape
    if rng.random() < 0.2:
        shape = tuple(-1 if rng.random() < 0.5 else s for s in shape)
    if rng.random() < 0.15:
        shape = (5,) * (x.a.ndim or 1)  # not broadcastable, mostly
    return [x], {"shape": shape}


def _tril(rng):
    x = tensor_arg(rng, min_ndim=1)
    return [x], {"diagonal": int(rng.integers(-3, 4))}


def _getitem(rng):
    x = tensor_arg(rng, min_ndim=1)
    n = x.a.shape[0]
    choices = [
        0,
        -1,
        n,
        slice(1, None),
        slice(None, None, 2),
        (Ellipsis, 0),
        None,
        rng.integers(0, max(n, 1), 3),
        rng.random(x.a.shape) < 0.5,
        1.5,
        (0,) * (x.a.ndim + 1),
    ]
    return [x], {"index": choices[int(rng.integers(0, len(choices)))]}


def _pair(rng):
    x = tensor_arg(rng, zero=0.15)
    r = rng.random()
    if r < 0.7:
        y = Arr(_values(rng, str(x.a.dtype) if rng.random() < 0.7 else pick_dtype(rng), x.a.shape))
    else:
        y = tensor_arg(rng)
    return [x, y], {}


def _nll(rng):
    args, kwargs = _cross_entropy(rng)
    if args[1].a.dtype.kind == "f" and args[1].a.shape == args[0].a.shape:
        args[1] = Arr(np.zeros(args[0].a.shape[:1], np.int64))  # nll takes class indices only
    return args, kwargs


def _any_dim(rng):
    x = tensor_arg(rng)
    return [x], {"dim": None if rng.random() < 0.3 else pick_dim(rng, x.a.ndim)}


def _th_any(x, dim=None):
    return x.any() if dim is None else x.any(dim)


def _probability_bad(p) -> bool:
    return not (isinstance(p, (int, float)) and not math.isnan(p) and 0.0 <= p <= 1.0)


SPECS = [
    Spec("add", _binary, lambda a, k: a[0] + a[1], lambda a, k: a[0] + a[1]),
    Spec("sub", _binary, lambda a, k: a[0] - a[1], lambda a, k: a[0] - a[1]),
    Spec("mul", _binary, lambda a, k: a[0] * a[1], lambda a, k: a[0] * a[1]),
    Spec("div", _binary, lambda a, k: a[0] / a[1], lambda a, k: a[0] / a[1]),
    Spec("pow", _binary, lambda a, k: a[0] ** a[1], lambda a, k: a[0] ** a[1]),
    Spec(
        "maximum",
        _binary,
        lambda a, k: tinyllm.maximum(*a),
        lambda a, k: torch.maximum(*_th_tensors(*a)),
    ),
    Spec("neg", _unary, lambda a, k: -a[0], lambda a, k: -a[0]),
    Spec("abs", _unary, lambda a, k: tinyllm.abs(a[0]), lambda a, k: torch.abs(a[0])),
    Spec("exp", _unary, lambda a, k: tinyllm.exp(a[0]), lambda a, k: torch.exp(a[0])),
    Spec("log", _unary, lambda a, k: tinyllm.log(a[0]), lambda a, k: torch.log(a[0])),
    Spec("sqrt", _unary, lambda a, k: tinyllm.sqrt(a[0]), lambda a, k: torch.sqrt(a[0])),
    Spec("tanh", _unary, lambda a, k: F.tanh(a[0]), lambda a, k: torch.tanh(a[0])),
    Spec("sigmoid", _unary, lambda a, k: F.sigmoid(a[0]), lambda a, k: torch.sigmoid(a[0])),
    Spec("relu", _unary, lambda a, k: F.relu(a[0]), lambda a, k: torch.relu(a[0])),
    Spec("gelu", _unary, lambda a, k: F.gelu(a[0]), lambda a, k: _th_gelu(a[0])),
    Spec(
        "sum",
        _reduce,
        lambda a, k: tinyllm.sum(a[0], **k),
        lambda a, k: _th_reduce(torch.sum, a, k),
    ),
    Spec(
        "mean",
        _reduce,
        lambda a, k: tinyllm.mean(a[0], **k),
        lambda a, k: _th_reduce(torch.mean, a, k),
    ),
    Spec(
        "var",
        _reduce,
        lambda a, k: tinyllm.var(a[0], **k),
        lambda a, k: _th_reduce(torch.var, a, k),
    ),
    Spec("std", _reduce, lambda a, k: a[0].std(**k), lambda a, k: _th_reduce(torch.std, a, k)),
    Spec(
        "amax",
        _reduce,
        lambda a, k: tinyllm.amax(a[0], **k),
        lambda a, k: _th_reduce(torch.amax, a, k, empty=()),
        names=("amin",),
    ),
    Spec(
        "softmax",
        _softmax_dim,
        lambda a, k: F.softmax(a[0], **k),
        lambda a, k: torch.softmax(a[0], **k),
    ),
    Spec(
        "log_softmax",
        _softmax_dim,
        lambda a, k: F.log_softmax(a[0], **k),
        lambda a, k: torch.log_softmax(a[0], **k),
    ),
    Spec(
        "argmax",
        _dim_unary,
        lambda a, k: tinyllm.argmax(a[0], **k),
        lambda a, k: torch.argmax(a[0], **k),
    ),
    Spec(
        "sort",
        _dim_unary,
        lambda a, k: tinyllm.sort(a[0], **k)[0],
        lambda a, k: torch.sort(a[0], **k)[0],
    ),
    Spec(
        "topk",
        _topk,
        lambda a, k: tinyllm.topk(a[0], **k)[0],
        lambda a, k: torch.topk(a[0], **k)[0],
    ),
    Spec(
        "unsqueeze", _unsqueeze, lambda a, k: a[0].unsqueeze(**k), lambda a, k: a[0].unsqueeze(**k)
    ),
    Spec(
        "squeeze", _dim_unary, lambda a, k: a[0].squeeze(**k), lambda a, k: _th_squeeze(a[0], **k)
    ),
    Spec(
        "transpose",
        _two_dims,
        lambda a, k: a[0].transpose(k["d0"], k["d1"]),
        lambda a, k: a[0].transpose(k["d0"], k["d1"]),
    ),
    Spec(
        "permute",
        _permute,
        lambda a, k: a[0].permute(*k["dims"]),
        lambda a, k: a[0].permute(*k["dims"]),
    ),
    Spec(
        "flatten",
        _flatten,
        lambda a, k: a[0].flatten(k["start"], k["end"]),
        lambda a, k: a[0].flatten(k["start"], k["end"]),
    ),
    Spec(
        "cat",
        _seq,
        lambda a, k: tinyllm.cat(a, **k),
        lambda a, k: torch.cat(a, **k),
        names=("concatenate",),
    ),
    Spec("stack", _seq, lambda a, k: tinyllm.stack(a, **k), lambda a, k: torch.stack(a, **k)),
    Spec("matmul", _matmul, lambda a, k: a[0] @ a[1], lambda a, k: a[0] @ a[1]),
    Spec("linear", _linear, lambda a, k: F.linear(*a), lambda a, k: TF.linear(*a)),
    Spec(
        "layer_norm",
        _layer_norm,
        lambda a, k: F.layer_norm(a[0], k["normalized_shape"], *a[1:]),
        lambda a, k: TF.layer_norm(a[0], k["normalized_shape"], *a[1:]),
    ),
    Spec(
        "cross_entropy",
        _cross_entropy,
        lambda a, k: F.cross_entropy(*a, **k),
        lambda a, k: TF.cross_entropy(*a, **k),
    ),
    Spec(
        "scaled_dot_product_attention",
        _sdpa,
        lambda a, k: F.scaled_dot_product_attention(*a, **k),
        lambda a, k: _th_attention(*a, **k),
        check=lambda out, a, k: _attention_ok(out, a, k),
        strict=lambda a, k: _probability_bad(k["dropout_p"]),
    ),
    Spec(
        "dropout",
        _dropout,
        lambda a, k: F.dropout(a[0], **k),
        lambda a, k: TF.dropout(a[0], **k),
        check=lambda out, a, k: _dropout_ok(out, a[0], k["p"]),
        strict=lambda a, k: _probability_bad(k["p"]),
    ),
    Spec("embedding", _embedding, lambda a, k: F.embedding(*a), lambda a, k: TF.embedding(*a)),
    Spec("floor_divide", _binary, lambda a, k: a[0] // a[1], lambda a, k: a[0] // a[1]),
    Spec("remainder", _binary, lambda a, k: a[0] % a[1], lambda a, k: a[0] % a[1]),
    Spec("lt", _binary, lambda a, k: a[0] < a[1], lambda a, k: a[0] < a[1], names=("gt",)),
    Spec(
        "minimum",
        _binary,
        lambda a, k: tinyllm.minimum(*a),
        lambda a, k: torch.minimum(*_th_tensors(*a)),
    ),
    Spec(
        "clamp",
        _clamp,
        lambda a, k: tinyllm.clamp(a[0], **k),
        lambda a, k: torch.clamp(a[0], **k),
    ),
    Spec(
        "where",
        _where,
        lambda a, k: tinyllm.where(*a),
        lambda a, k: torch.where(a[0], *_th_tensors(a[1], a[2])),
    ),
    Spec(
        "amin",
        _reduce,
        lambda a, k: tinyllm.amin(a[0], **k),
        lambda a, k: _th_reduce(torch.amin, a, k),
        names=("amax",),
    ),
    Spec(
        "max",
        _dim_unary,
        lambda a, k: _max_values(tinyllm.max(a[0], k["dim"])),
        lambda a, k: torch.max(a[0]) if k["dim"] is None else torch.max(a[0], k["dim"]).values,
        names=("argmax", "gather"),
    ),
    Spec(
        "gather",
        _gather,
        lambda a, k: tinyllm.gather(a[0], k["dim"], a[1]),
        lambda a, k: torch.gather(a[0], k["dim"], a[1]),
    ),
    Spec(
        "masked_fill",
        _masked_fill,
        lambda a, k: a[0].masked_fill(a[1], k["value"]),
        lambda a, k: a[0].masked_fill(a[1], k["value"]),
        strict=lambda a, k: k["value"] is None or isinstance(k["value"], complex),
    ),
    Spec(
        "reshape",
        _new_shape,
        lambda a, k: a[0].reshape(*k["shape"]),
        lambda a, k: a[0].reshape(*k["shape"]),
    ),
    Spec(
        "expand",
        _expand,
        lambda a, k: a[0].expand(k["shape"]),
        lambda a, k: a[0].expand(k["shape"]),
    ),
    Spec("tril", _tril, lambda a, k: tinyllm.tril(a[0], **k), lambda a, k: torch.tril(a[0], **k)),
    Spec(
        "getitem",
        _getitem,
        lambda a, k: a[0][k["index"]],
        lambda a, k: a[0][_th_index(k["index"])],
        names=("index",),
    ),
    Spec("any", _any_dim, lambda a, k: tinyllm.any(a[0], **k), lambda a, k: _th_any(a[0], **k)),
    Spec("mse_loss", _pair, lambda a, k: F.mse_loss(*a), lambda a, k: TF.mse_loss(*a)),
    Spec("l1_loss", _pair, lambda a, k: F.l1_loss(*a), lambda a, k: TF.l1_loss(*a)),
    Spec(
        "binary_cross_entropy_with_logits",
        _pair,
        lambda a, k: F.binary_cross_entropy_with_logits(*a),
        lambda a, k: TF.binary_cross_entropy_with_logits(*a),
    ),
    Spec("nll_loss", _nll, lambda a, k: F.nll_loss(*a, **k), lambda a, k: TF.nll_loss(*a, **k)),
    Spec(
        "tensor",
        _make,
        lambda a, k: tinyllm.Tensor(a[0]),
        lambda a, k: _th_Tensor(a[0]),
        names=("Tensor",),
    ),
]
SPECS_BY_NAME = {s.name: s for s in SPECS}


def _th_Tensor(data):  # noqa: N802 - the reference of tinyllm.Tensor(data)
    """tinyllm.Tensor(data) is torch.Tensor(data) for lists and numbers (float32) and keeps
    a NumPy array's dtype (torch.from_numpy)."""
    if isinstance(data, np.ndarray):
        return torch.from_numpy(data)
    if isinstance(data, (int, float)):
        return torch.tensor(float(data))
    return torch.Tensor(data)


def _attention_ok(out, args, kwargs) -> bool:
    """tinyllm's attention against the math, element by element: a masked key's value enters
    either as 0·v (PyTorch's math path: NaN if v is not finite) or not at all (the kernel
    skips keys beyond the causal frontier); both are accepted, nothing else."""
    try:
        inputs = [a.th() for a in args]
        read = _to_numpy(_th_attention(*inputs, **kwargs, read_masked=True))
        exact = True
    except RuntimeError:  # PyTorch refuses these dtypes: the math in float64
        inputs = [a.f64() for a in args]
        read = _to_numpy(_th_attention(*inputs, **kwargs, read_masked=True))
        exact = False
    skip = _to_numpy(_th_attention(*inputs, **kwargs, read_masked=False))
    if out.shape != read.shape or (out.dtype != read.dtype if exact else out.dtype.kind != "f"):
        return False
    tol = _tol(out.dtype) if exact else max(_tol(out.dtype), 2e-4)
    g = out.astype(np.float64)
    near = [
        np.isclose(g, w.astype(np.float64), rtol=tol, atol=tol, equal_nan=True)
        for w in (read, skip)
    ]
    return bool(np.all(near[0] | near[1]))


def _th_attention(q, k, v, dropout_p=0.0, is_causal=False, read_masked=False):
    """PyTorch's documented math of scaled_dot_product_attention, written out: softmax(QKᵀ/√E
    + causal mask) V. (Its fused CPU kernel returns zeros for a query row holding NaN; the
    math, like tinyllm, gives NaN.) Half inputs compute in float32, as PyTorch's CPU kernels
    do; dtypes must agree, as PyTorch demands."""
    if not (q.dtype == k.dtype == v.dtype) or not q.is_floating_point():
        raise RuntimeError("expected query, key and value of one floating dtype")
    if math.isnan(dropout_p) or not 0.0 <= dropout_p <= 1.0:
        raise RuntimeError("dropout probability out of range")
    dtype = q.dtype
    work = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    q, k, v = q.to(work), k.to(work), v.to(work)
    e = q.shape[-1]
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise RuntimeError("shapes do not fit")
    s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(e) if e else 1.0)
    keep = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool)
    if is_causal:
        keep = keep.tril()
        s = s.masked_fill(~keep, float("-inf"))
    if read_masked:  # P V as a product: a masked key's value enters as 0 · v
        out = torch.softmax(s, dim=-1) @ v
    else:  # a masked key's value is never read
        contrib = torch.softmax(s, dim=-1).unsqueeze(-1) * v.unsqueeze(-3)  # (…, L, S, Ev)
        out = torch.where(keep.unsqueeze(-1), contrib, 0.0).sum(-2)
    if dropout_p == 1.0:
        out = torch.zeros_like(out)
    return out.to(dtype)


def _th_tensors(a, b):
    """torch.maximum wants tensors: a Python number becomes a 0-d tensor of the dtype torch
    gives the tensor ∘ that number (torch.result_type), as it does for `+`."""
    if not isinstance(a, torch.Tensor):
        a = torch.tensor(a, dtype=torch.result_type(b, a))
    if not isinstance(b, torch.Tensor):
        b = torch.tensor(b, dtype=torch.result_type(a, b))
    return a, b


def _th_gelu(x):
    """PyTorch's GELU in float64, rounded to x's dtype (its float32 kernel gives NaN for +inf,
    where GELU(x) → x)."""
    if not x.is_floating_point():
        raise RuntimeError("GeluKernelImpl not implemented for integers")
    return TF.gelu(x.double()).to(x.dtype)


def _max_values(out):
    """max(x, dim) gives (values, indices); max(x) (dim None) gives the values alone."""
    return out.values if isinstance(out, tuple) else out


def _th_index(index):
    return torch.from_numpy(index) if isinstance(index, np.ndarray) else index


def _th_squeeze(x, dim=None):
    return x.squeeze() if dim is None else x.squeeze(dim)


def _th_reduce(fn, a, k, empty=None):
    dim = k["dim"]
    if dim is None:
        if k["keepdim"]:
            return fn(a[0], dim=tuple(range(a[0].ndim)), keepdim=True)
        return fn(a[0])
    return fn(a[0], dim=dim, keepdim=k["keepdim"])


def _dropout_ok(out, x, p) -> bool:
    """Every element is 0 or x/(1 − p), with x's dtype and shape."""
    if out.dtype != np.dtype(x.a.dtype) or out.shape != x.a.shape:
        return False
    y = np.asarray(out, dtype=np.float64)
    if p == 1.0:  # x · 0, as PyTorch computes it (NaN where x is not finite)
        return bool(np.array_equal(y, x.a.astype(np.float64) * 0.0, equal_nan=True))
    want = x.a.astype(np.float64) / (1.0 - p)
    tol = 1e-2 if x.a.dtype == np.float16 else 1e-5
    near = np.isclose(y, want, rtol=tol, atol=tol, equal_nan=True)
    dropped_inf = ~np.isfinite(want) & np.isnan(y)  # ±inf · 0 = NaN, in PyTorch too
    return bool(np.all(near | (y == 0) | dropped_inf))


# ---- classifying one case -------------------------------------------------------------------

_TORCH_DTYPE = {}


def _to_numpy(out):
    """A result as (array, dtype string) for comparison; tuples become lists of those."""
    if torch is not None and isinstance(out, torch.Tensor):
        return out.detach().cpu().numpy()
    if isinstance(out, tinyllm.Tensor):
        dt = out.dtype
        if dt is tinyllm.bfloat16:
            return out.numpy()
        return np.asarray(out.data)
    if isinstance(out, (list, tuple)):
        raise TypeError("sequence results are compared element by element")
    return np.asarray(out)


def _tol(dtype) -> float:
    if dtype == np.float16:
        return 2e-2
    if dtype == np.float32:
        return 2e-4
    if dtype.kind == "f":
        return 1e-9
    return 0.0


def same(got: np.ndarray, want: np.ndarray, check_dtype=True) -> bool:
    if got.shape != want.shape:
        return False
    if check_dtype and got.dtype != want.dtype:
        return False
    if got.dtype.kind not in "biuf" or want.dtype.kind not in "biuf":
        return False
    tol = _tol(got.dtype) if check_dtype else max(_tol(got.dtype), 2e-4)
    g, w = got.astype(np.float64), want.astype(np.float64)
    if tol == 0:
        return bool(np.array_equal(g, w, equal_nan=True))
    return bool(np.allclose(g, w, rtol=tol, atol=tol, equal_nan=True))


def names_op(exc: BaseException, words) -> bool:
    msg = str(exc)
    low = msg.lower()
    return any(w.lower() in low for w in words) or msg.startswith("Tensor")


def _call(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            return fn()


@dataclass
class Outcome:
    kind: str
    detail: str = ""


def classify(spec: Spec, args, kwargs) -> Outcome:
    """Run one case in tinyllm (and torch) and sort its outcome (see the module docstring)."""
    try:
        with time_limit(TIME_LIMIT):
            got = _call(lambda: spec.tl([a.tl() for a in args], dict(kwargs)))
            got = _to_numpy(got)
    except Hang:
        return Outcome("hang", f"{spec.name} {args} {kwargs}")
    except CLEAR_TYPES as e:
        if names_op(e, spec.words()):
            return Outcome("clear error", _stricter(spec, args, kwargs, e))
        return Outcome("unclear error", f"{type(e).__name__}: {e}")
    except Exception as e:  # noqa: BLE001 - anything else is what we are looking for
        return Outcome("unclear error", f"{type(e).__name__}: {e}")
    # tinyllm returned a value: is it the right one?
    if any(a.bad() for a in args) or (spec.strict is not None and spec.strict(args, kwargs)):
        return Outcome("silent wrong", f"accepted bad input, returned {got.dtype}{got.shape}")
    if got.dtype.kind not in "biuf":
        return Outcome("silent wrong", f"result dtype {got.dtype}")
    try:
        want = _call(lambda: _to_numpy(spec.th([a.th() for a in args], dict(kwargs))))
        want_ok = True
    except Exception:  # noqa: BLE001 - torch refuses: compare with float64
        want_ok = False
    if spec.check is not None:
        if want_ok and not spec.check(got, args, kwargs):
            return Outcome("silent wrong", f"property fails: {got.dtype}{got.shape}")
        if want_ok:
            return Outcome("correct")
    if want_ok:
        if same(got, want):
            return Outcome("correct")
        return Outcome("silent wrong", f"got {got.dtype}{got.shape}, want {want.dtype}{want.shape}")
    want = None
    for ints in (True, False):  # integer ids as int64 and floats as float64; then all float64
        try:
            inputs = [a.f64(ints) for a in args]
            want = _call(lambda: _to_numpy(spec.th(inputs, dict(kwargs))))  # noqa: B023
            break
        except Exception:  # noqa: BLE001, S112 - try the next fallback
            continue
    if want is None:
        return Outcome("silent wrong", f"torch refuses even in float64; got {got.dtype}{got.shape}")
    if _kind_class(got) != _kind_class(want):  # e.g. an integer variance
        return Outcome("silent wrong", f"torch refuses; got {got.dtype}, reference {want.dtype}")
    if spec.check is not None:
        return Outcome("correct" if spec.check(got, args, kwargs) else "silent wrong")
    if same(got, want, check_dtype=False):
        return Outcome("correct")
    return Outcome("silent wrong", f"got {got.dtype}{got.shape}, float64 ref {want.shape}")


def _kind_class(a: np.ndarray) -> str:
    return {"b": "bool", "i": "int", "u": "int"}.get(a.dtype.kind, "float")


def _stricter(spec: Spec, args, kwargs, error) -> str:
    """For a clear error: a note if PyTorch computes this call although no rule of the policy
    demands an error (tinyllm refuses more than PyTorch does) — counted, not failed."""
    if any(a.bad() for a in args) or (spec.strict is not None and spec.strict(args, kwargs)):
        return ""
    try:
        _call(lambda: spec.th([a.th() for a in args], dict(kwargs)))
    except Exception:  # noqa: BLE001 - PyTorch refuses too
        return ""
    return f"stricter than PyTorch: {type(error).__name__}: {error}"


def draw_case(rng, spec: Spec | None = None):
    spec = SPECS[int(rng.integers(0, len(SPECS)))] if spec is None else spec
    args, kwargs = spec.draw(rng)
    return spec, args, kwargs


# ---- the model cases ------------------------------------------------------------------------

VOCAB, BLOCK = 11, 8


def tiny_gpt():
    from tinyllm.models import GPT, GPTConfig

    tinyllm.manual_seed(0)
    cfg = GPTConfig(block_size=BLOCK, vocab_size=VOCAB, n_layer=1, n_head=2, n_embd=8)
    model = GPT(cfg)
    model.eval()
    return model


@dataclass
class ModelCase:
    kind: str  # "forward" or "generate"
    idx: object
    options: dict = field(default_factory=dict)
    bad: bool = False  # the policy demands an error

    def __repr__(self):
        idx = self.idx
        shown = f"{idx.dtype}{list(idx.shape)}" if isinstance(idx, np.ndarray) else repr(idx)
        return f"{self.kind}({shown}, {self.options})"


def draw_model_case(rng) -> ModelCase:
    b, t = int(rng.integers(1, 3)), int(rng.integers(1, BLOCK + 1))
    good = rng.integers(0, VOCAB, (b, t))
    r = rng.random()
    bad = True
    if r < 0.35:
        idx, bad = good.astype(rng.choice(["int64", "int32", "uint8", "int16"])), False
    elif r < 0.45:
        idx = good.copy()
        idx.reshape(-1)[0] = rng.choice([-1, VOCAB, VOCAB + 100, -100])
    elif r < 0.55:
        idx = good.astype(rng.choice(["float32", "float64", "bool", "complex64"]))
    elif r < 0.62:
        shape = [(t,), (1, 1, t), ()][int(rng.integers(0, 3))]
        idx = rng.integers(0, VOCAB, shape)
    elif r < 0.7:
        idx = rng.integers(0, VOCAB, (b, BLOCK + int(rng.integers(1, 4))))  # generate crops
    elif r < 0.75:
        idx = [None, [[1, 2], [3]], [[1, None]], "abc", [[1.5, 2.0]]][int(rng.integers(0, 5))]
    elif r < 0.8:
        idx = good.tolist()
        bad = False
    else:
        idx = np.zeros((b, 0), dtype=np.int64)
    if rng.random() < 0.5:
        return ModelCase("forward", idx, {}, bad)
    if isinstance(idx, np.ndarray) and idx.dtype.kind in "iu" and idx.min(initial=0) >= 0:
        # generate accepts one prompt as 1-D ids and crops a prompt longer than the block
        bad = idx.ndim not in (1, 2) or idx.shape[-1] == 0 or idx.max(initial=0) >= VOCAB
    options = {"max_new_tokens": int(rng.integers(0, 4))}
    if not bad and isinstance(idx, np.ndarray) and idx.ndim == 2 and idx.shape[1] > BLOCK - 3:
        idx = idx[:, : BLOCK - 3]  # room to generate
    r = rng.random()
    if r < 0.4:  # good options
        options["do_sample"] = bool(rng.random() < 0.5)
        if options["do_sample"]:
            options.update(
                temperature=float(rng.choice([0.5, 1.0, 2.0])), seed=int(rng.integers(0, 9))
            )
            if rng.random() < 0.5:
                options["top_k"] = int(rng.integers(1, VOCAB + 3))
            if rng.random() < 0.5:
                options["top_p"] = float(rng.choice([0.1, 0.9, 1.0]))
    else:
        bad = True
        key, value = [
            ("max_new_tokens", -1),
            ("max_new_tokens", 2.5),
            ("max_new_tokens", None),
            ("temperature", 0.0),
            ("temperature", -1.0),
            ("temperature", float("nan")),
            ("temperature", float("inf")),
            ("top_k", 0),
            ("top_k", -2),
            ("top_k", 2.5),
            ("top_p", 0.0),
            ("top_p", 1.5),
            ("top_p", float("nan")),
            ("repetition_penalty", 0.0),
            ("repetition_penalty", float("nan")),
            ("repetition_penalty", -1.0),
            ("eos_token_id", -3),
            ("eos_token_id", 2.5),
            ("eos_token_id", VOCAB + 5),
            ("pad_token_id", -1),
            ("do_sample", "yes"),
        ][int(rng.integers(0, 21))]
        options[key] = value
        if key in ("temperature", "top_k", "top_p"):
            options["do_sample"] = True
    return ModelCase("generate", idx, options, bad)


def _greedy_reference(model, idx: np.ndarray, n: int) -> np.ndarray:
    """Greedy decoding by hand: n full forwards without a cache, argmax of the last row."""
    out = np.asarray(idx, dtype=np.int64)
    if out.ndim == 1:
        out = out[None]
    for _ in range(n):
        logits, _ = model(out[:, -BLOCK:])
        out = np.concatenate([out, logits.data[:, -1].argmax(-1)[:, None]], axis=1)
    return out


def classify_model(model, case: ModelCase) -> Outcome:
    words = ("GPT", "forward", "generate", "idx", "embedding")
    try:
        with time_limit(TIME_LIMIT):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if case.kind == "forward":
                    got, _ = model(case.idx)
                    got = np.asarray(got.data)
                else:
                    got = np.asarray(tinyllm.generate.generate(model, case.idx, **case.options))
    except Hang:
        return Outcome("hang", repr(case))
    except CLEAR_TYPES as e:
        return Outcome("clear error") if names_op(e, words) else Outcome("unclear error", f"{e}")
    except Exception as e:  # noqa: BLE001
        return Outcome("unclear error", f"{type(e).__name__}: {e}")
    if case.bad:
        return Outcome("silent wrong", f"accepted {case!r}")
    ids = np.asarray(case.idx).astype(np.int64)
    if case.kind == "forward":
        want, _ = model(ids)
        ok = same(got, np.asarray(want.data))
    else:
        n = case.options["max_new_tokens"]
        ok = got.dtype.kind in "iu" and got.shape == (
            ids.reshape(-1, ids.shape[-1]).shape[0],
            ids.shape[-1] + n,
        )
        ok = ok and bool(((got >= 0) & (got < VOCAB)).all())
        if ok and not case.options.get("do_sample"):
            ok = bool(np.array_equal(got, _greedy_reference(model, ids, n)))
    return Outcome("correct") if ok else Outcome("silent wrong", repr(case))


# ---- the tally ------------------------------------------------------------------------------


def tally(seed: int, n_ops: int, n_model: int, show: int = 3):
    rng = np.random.default_rng(seed)
    counts = {"ops": dict.fromkeys(OUTCOMES, 0), "model": dict.fromkeys(OUTCOMES, 0)}
    examples: dict[str, list[str]] = {k: [] for k in OUTCOMES[2:] + ("stricter",)}
    per_op: dict[str, dict[str, int]] = {}
    for _ in range(n_ops):
        spec, args, kwargs = draw_case(rng)
        out = classify(spec, args, kwargs)
        counts["ops"][out.kind] += 1
        if out.kind == "clear error" and out.detail:
            counts["ops"]["stricter"] = counts["ops"].get("stricter", 0) + 1
            examples["stricter"].append(f"{spec.name} {args} {kwargs}: {out.detail}"[:300])
        per_op.setdefault(spec.name, dict.fromkeys(OUTCOMES, 0))[out.kind] += 1
        if out.kind in examples and len(examples[out.kind]) < 400:
            examples[out.kind].append(f"{spec.name} {args} {kwargs}: {out.detail}"[:300])
    model = tiny_gpt()
    for _ in range(n_model):
        case = draw_model_case(rng)
        out = classify_model(model, case)
        counts["model"][out.kind] += 1
        if out.kind in examples and len(examples[out.kind]) < 400:
            examples[out.kind].append(f"{case!r}: {out.detail}"[:300])
    return counts, per_op, examples


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ops", type=int, default=3000)
    parser.add_argument("--model", type=int, default=600)
    parser.add_argument("--show", type=int, default=5, help="examples to print per bad outcome")
    parser.add_argument("--per-op", action="store_true", help="print the counts of every op")
    args = parser.parse_args(argv)
    if args.ops < 0 or args.model < 0 or args.show < 0:
        parser.error("--ops, --model and --show must be ≥ 0")
    if torch is None:
        print("the tally needs PyTorch as its reference", file=sys.stderr)
        return 2
    counts, per_op, examples = tally(args.seed, args.ops, args.model)
    if args.per_op:
        for name, c in sorted(per_op.items()):
            print(f"  {name:30s} " + " ".join(f"{c[k]:4d}" for k in OUTCOMES))
    for kind, lines in examples.items():
        for line in lines[: args.show]:
            print(f"[{kind}] {line}")
    print(f"\nseed {args.seed}")
    print(f"{'calls':8s} {'tried':>6s} " + " ".join(f"{k:>13s}" for k in OUTCOMES))
    for group, c in counts.items():
        tried = sum(c[k] for k in OUTCOMES)
        print(f"{group:8s} {tried:6d} " + " ".join(f"{c[k]:13d}" for k in OUTCOMES))
    print(
        f"(of the clear errors, {counts['ops'].get('stricter', 0)} refuse a call PyTorch "
        "computes and no rule of the policy forbids)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
