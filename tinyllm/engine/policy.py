"""What an op accepts: the dtypes of its tensors, its `dim` arguments, its probabilities.

An op either computes the right answer or says, naming itself, why it cannot. The wrong
answers this prevents are quiet ones: NumPy happily computes the variance of an int64 array in
integer arithmetic, turns `None` into NaN, drops the imaginary part of a complex number, and
reads dim 5 of a 2-D array as "the last one" after a modulo. The rules live here, in one place,
and are applied at the op's entry (`Function.apply` reads the rule a Function declares; the
few ops composed of other ops call `admit` once).

dtypes. Every tensor holds bool, an integer or a float (fp16, bf16, fp32, fp64): complex and
object arrays, strings, `None` and ragged lists are refused when a tensor is made or when a
constant meets one (`Tensor(None)`, `Tensor([1, None, 3])`, `x * 2j`, `x + None`). Each op then
follows one of five rules for its tensor inputs, chosen to be PyTorch's:

| rule     | integer / bool tensor inputs            | ops                                    |
|----------|-----------------------------------------|----------------------------------------|
| ANY      | computed in their dtype: int ∘ int is   | + × // % pow, comparisons, maximum,    |
|          | int, int ∘ float is that float, sum of  | minimum, clamp, where, sum, amax,      |
|          | ints is int64                           | amin, sort, max(dim), shape ops,       |
|          |                                         | indexing, gather, embedding, any/all   |
| NUMERIC  | integers kept; bool refused             | neg, abs, relu, − , argmax, topk       |
| PROMOTE  | converted to float32 first              | exp, log, sqrt, tanh, sigmoid,         |
|          | (torch.sigmoid(int64) is float32)       | / (true division)                      |
| FLOAT    | refused: TypeError naming op and dtype  | mean, var, std, softmax, log_softmax,  |
|          |                                         | gelu, layer_norm, cross_entropy and    |
|          |                                         | nll_loss inputs, mse/l1/bce losses,    |
|          |                                         | dropout, scaled_dot_product_attention  |
| SAME     | all integer or all float; int ∘ float   | matmul, @, linear                      |
|          | and bool refused                        |                                        |

Promotion between two tensors is PyTorch's too: the float side decides (int32 ∘ float32 is
float32, not NumPy's float64), and a 0-d tensor acts like a Python scalar — it takes the other
operand's dtype unless its category (bool < integer < float) is higher (float32[3] ∘
float64[] is float32). Half tensors meeting float32 compute in float32 (tinyllm/dtypes.py);
PyTorch's matmul refuses that mix, tinyllm's emulation gives the float32 product. A rule costs
one dtype-kind test per tensor input at op entry, never a pass over the elements; all-float
inputs, the training case, return after that test.

dims. A `dim` of a tensor with n axes is an int in [−n, n) (for n = 0, in [−1, 0], as in
PyTorch); anything else is an IndexError (also a ValueError, like NumPy's AxisError) with
PyTorch's words, "<op>: Dimension out of range (expected to be in range of [−n, n−1], but
got d)"; a dim named twice is a RuntimeError, a non-int a TypeError.

Probabilities. A dropout probability p must be a real number with 0 ≤ p ≤ 1: NaN, ±inf, 1.5
and −0.5 are ValueErrors (PyTorch's attention accepts −0.5 and NaN silently; tinyllm does not).
p = 1 drops everything, so attention returns zeros, as PyTorch does.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

ANY = None  # the default: a Function declares nothing and pays nothing
NUMERIC = "numeric"
PROMOTE = "promote"
FLOAT = "float"
SAME = "same"

REAL_KINDS = "biuf"  # NumPy dtype kinds a tensor may hold (bf16 storage is kind "u")


def _kind(array: np.ndarray) -> str:
    """'f' for every floating storage (fp16/32/64 and bf16's tagged uint16), else NumPy's kind."""
    dt = array.dtype
    return "f" if dt.metadata is not None else dt.kind


def admit(op: str, rule, arrays, tensor_mask=None):
    """`arrays` checked against `rule` for `op`; PROMOTE returns them with ints made float32.

    Only the entries `tensor_mask` marks (all by default) are tensors' data; the others are
    an op's own helper arrays (integer targets, masks) and are left alone.
    """
    for i, a in enumerate(arrays):  # the common case: every tensor input is floating point
        if (
            (tensor_mask is None or tensor_mask[i])
            and isinstance(a, np.ndarray)
            and a.dtype.kind != "f"
            and a.dtype.metadata is None
        ):
            break
    else:
        return arrays
    kinds = []
    for i, a in enumerate(arrays):
        if isinstance(a, np.ndarray) and (tensor_mask is None or tensor_mask[i]):
            kinds.append(_kind(a))
    if rule is FLOAT:
        for a, k in zip(_tensors(arrays, tensor_mask), kinds):
            if k != "f":
                raise TypeError(
                    f"{op}: expected a floating-point tensor, got dtype {a.dtype} "
                    "(convert it first, e.g. x.float())"
                )
    elif rule is PROMOTE:
        if any(k != "f" for k in kinds):
            arrays = [
                a.astype(np.float32)
                if isinstance(a, np.ndarray)
                and (tensor_mask is None or tensor_mask[i])
                and _kind(a) != "f"
                else a
                for i, a in enumerate(arrays)
            ]
    elif rule is NUMERIC:
        if "b" in kinds:
            raise TypeError(f"{op}: not defined for bool tensors (convert them to int or float)")
    elif rule is SAME:
        if "b" in kinds:
            raise TypeError(f"{op}: not defined for bool tensors (convert them to int or float)")
        if "f" in kinds and any(k != "f" for k in kinds):
            dts = " and ".join(str(a.dtype) for a in _tensors(arrays, tensor_mask))
            raise TypeError(
                f"{op}: expected both operands to be floating point or both integer, got {dts}"
            )
    return arrays


def _tensors(arrays, tensor_mask):
    return [
        a
        for i, a in enumerate(arrays)
        if isinstance(a, np.ndarray) and (tensor_mask is None or tensor_mask[i])
    ]


def is_floating(array: np.ndarray) -> bool:
    return _kind(array) == "f"


# ---- what a tensor may hold ----------------------------------------------------------------


def check_real(op: str, array: np.ndarray) -> np.ndarray:
    """`array` if its dtype is bool, an integer or a float; a TypeError naming `op` otherwise."""
    if array.dtype.kind not in REAL_KINDS:
        raise TypeError(
            f"{op}: dtype {array.dtype} is not supported (tinyllm tensors hold bool, "
            "integers or floating point numbers; complex and object arrays are refused)"
        )
    return array


def as_real_array(op: str, data, dtype=None) -> np.ndarray:
    """A NumPy array for Python data (a scalar or nested lists), refusing None, ragged lists,
    strings and complex numbers with an error that names `op`."""
    if data is None:
        raise TypeError(f"{op}: got None where a number or a tensor was expected")
    if isinstance(data, (str, bytes)):
        raise TypeError(f"{op}: got the string {data!r} where a number was expected")
    if isinstance(data, complex):
        raise TypeError(f"{op}: complex numbers are not supported, got {data!r}")
    if isinstance(data, (list, tuple)):
        try:
            probe = np.asarray(data)
        except ValueError:
            raise ValueError(
                f"{op}: the nested lists are ragged (sublists of different lengths), so "
                "they do not form a tensor"
            ) from None
        if probe.dtype == object and probe.size and any(x is None for x in probe.reshape(-1)):
            raise TypeError(f"{op}: the list holds None where a number was expected")
        check_real(op, probe)
    try:
        return np.asarray(data, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{op}: cannot make a tensor of {type(data).__name__} data ({e})") from None


def integer_ids(op: str, data) -> np.ndarray:
    """Token or class ids as an integer array: lists are converted (None and ragged lists
    refused), and a float, bool or complex array is a TypeError naming `op` — ids are never
    rounded or truncated silently."""
    if hasattr(data, "data") and isinstance(data.data, np.ndarray):  # a Tensor
        data = data.data
    ids = data if isinstance(data, np.ndarray) else as_real_array(op, data)
    if ids.dtype.kind not in "iu" or ids.dtype.metadata is not None:
        raise TypeError(f"{op}: ids must be integers, got dtype {ids.dtype}")
    return ids


# ---- dims ----------------------------------------------------------------------------------


class DimensionError(IndexError, ValueError):
    """A dim out of range: PyTorch's IndexError, and a ValueError as NumPy's AxisError is."""


def dim(op: str, d, ndim: int, shape=None) -> int:
    """`d` as an axis index in [0, ndim), or PyTorch's IndexError naming `op`.

    A 0-d tensor has one valid dim spelled 0 or −1, as in PyTorch."""
    if not isinstance(d, (int, np.integer)) or isinstance(d, (bool, np.bool_)):
        raise TypeError(f"{op}: dim must be an int, got {d!r}")
    n = ndim if ndim else 1
    if not -n <= d < n:
        of = "" if shape is None else f" for a tensor of shape {tuple(shape)}"
        raise DimensionError(
            f"{op}: Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
            f"but got {d}){of}"
        )
    return int(d) % n if ndim else 0


def dims(op: str, ds, ndim: int, shape=None) -> tuple:
    """A dim or a sequence of dims as sorted axis indices; a repeated dim is a RuntimeError."""
    if isinstance(ds, (int, np.integer)) and not isinstance(ds, (bool, np.bool_)):
        return (dim(op, ds, ndim, shape),)
    if not isinstance(ds, (tuple, list)):
        raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {ds!r}")
    out = [dim(op, d, ndim, shape) for d in ds]
    if len(set(out)) != len(out):
        raise RuntimeError(f"{op}: dim {ds} names an axis more than once")
    return tuple(sorted(out))


# ---- probabilities -------------------------------------------------------------------------


def probability(op: str, p, name: str = "p") -> float:
    """`p` as a float in [0, 1], or a ValueError naming `op` (NaN and ±inf included)."""
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Real):
        raise TypeError(f"{op}: {name} must be a probability (a float in [0, 1]), got {p!r}")
    p = float(p)
    if math.isnan(p) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: {name} must be a probability in [0, 1], got {p}")
    return p
