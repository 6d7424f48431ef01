"""The Tensor: a NumPy array that remembers how it was made, so that it can be differentiated.

`Tensor(data, requires_grad=False, dtype=None)` holds

    .data           the values, a NumPy array (its dtype is kept; lists and scalars → float32)
    .grad           ∂L/∂self after `L.backward()`, an array of `.data`'s shape, or None
    .requires_grad  whether ops on this tensor are recorded for differentiation
    ._ctx           the Context of the op that produced it (None for a leaf: an input or a
                    parameter the user made)

A tensor made by an op points at that op's Context, which points at the op's inputs: that chain
is the computation graph that `backward()` walks (tinyllm/engine/autograd.py). Only leaves
keep a `.grad` (and tensors that asked for it with `retain_grad()`); gradients of the tensors
in between live only while the backward pass needs them.

This class holds the data and the gradient; everything you compute with a tensor — `x + y`,
`x @ w`, `x.sum()`, `x.reshape(…)`, `x[i]` — is an op, and tinyllm/ops/methods.py attaches
those operators and methods to this class, each one a line that names the op it calls.

Shapes speak PyTorch: `x.shape` is the shape tuple, `x.size()` the same as a `Size` (a tuple)
and `x.size(d)` one axis's length, `x.numel()` the number of elements, `x.dim()` the number of
axes. (NumPy's `size` is the element count; PyTorch's, and so tinyllm's, is the shape.)

In-place ops (tinyllm/ops/inplace.py) write into `.data` and bump `._version`, a counter that
a tensor shares with its views (tinyllm/engine/versions.py); backward checks it.

dtypes. float32 is the default (Python lists and scalars become float32); float64 stays
float64. Only floating-point tensors can require gradients. fp16 and bf16 tensors hold half
storage (tinyllm/dtypes.py): `.dtype` reports the format, `.numpy()` decodes bf16 to float32.
"""

from __future__ import annotations

import numpy as np

from tinyllm import dtypes
from tinyllm.engine import autograd, hooks, policy
from tinyllm.engine.device import CPU
from tinyllm.engine.versions import VersionCounter


def _to_array(data, dtype=None, op="Tensor") -> np.ndarray:
    """NumPy array for `data`: lists and Python scalars become float32 (unless `dtype`).

    Complex, object and string data, None and ragged lists are refused (tinyllm/engine/policy.py).
    """
    if isinstance(data, Tensor):
        data = data.data
    if hasattr(dtype, "encode"):  # tinyllm.bfloat16: round float32 values into bit patterns
        return dtype.encode(_to_array(data, np.float32, op))
    if isinstance(data, np.ndarray):
        policy.check_real(op, data)
        return data if dtype is None else data.astype(dtype, copy=False)
    if isinstance(data, np.generic):
        return policy.check_real(op, np.asarray(data, dtype=dtype))
    if dtype is None:
        dtype = dtypes.DEFAULT_DTYPE
    return policy.check_real(op, policy.as_real_array(op, data, dtype))


class Size(tuple):
    """A tensor's shape, as `x.size()` returns it: a tuple (PyTorch's torch.Size)."""

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n

    def __repr__(self):
        return f"tinyllm.Size({list(self)})"


class Tensor:
    """An n-dimensional array that can record the ops applied to it for differentiation.

    `Tensor(data, requires_grad=False, dtype=None)`: `data` may be a NumPy array (its dtype is
    kept), a list or a scalar (float32 by default). Attributes follow PyTorch: `.data` (the
    array), `.grad` (an array or None), `.requires_grad`, `.shape`, `.dtype`, `.ndim`.
    """

    __slots__ = (
        "data",
        "grad",
        "requires_grad",
        "_ctx",
        "_retains_grad",
        "_post_hooks",
        "_vc",
        "_base",
        "_used",
        "__weakref__",
    )
    __array_priority__ = 1000  # ndarray ∘ Tensor defers to Tensor's reflected operators

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data = _to_array(data, dtype)
        if not hooks.half and self.data.dtype == np.float16:
            dtypes.half_seen()
        self.grad = None
        self._ctx = None
        self._retains_grad = False
        self._post_hooks = None
        self._vc = VersionCounter()
        self._base = None
        self._used = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _result(data: np.ndarray, ctx) -> Tensor:
        """An op's output (Function.apply): `ctx` is its node, or None when nothing was recorded."""
        result = Tensor.__new__(Tensor)
        result.data = data
        result.grad = None
        result.requires_grad = ctx is not None
        result._retains_grad = False
        result._post_hooks = None
        result._ctx = ctx
        result._vc = VersionCounter()
        result._base = None
        result._used = False
        return result

    # ---- basic properties -------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self):
        dt = self.data.dtype
        return dt if dt.metadata is None else dtypes.logical_dtype(dt)  # bf16 storage → bfloat16

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def size(self, dim=None):
        """The shape as a `Size` (a tuple), or the length of axis `dim` (PyTorch's size)."""
        if dim is None:
            return Size(self.data.shape)
        nd = self.data.ndim
        if not isinstance(dim, (int, np.integer)) or not -nd <= dim < nd:
            raise IndexError(
                f"size: dim {dim!r} is out of range for a tensor of shape {self.shape}"
            )
        return self.data.shape[dim]

    def dim(self) -> int:
        return self.data.ndim

    ndimension = dim

    @property
    def device(self):
        return CPU  # tinyllm/engine/device.py: the only device

    @property
    def is_cuda(self) -> bool:
        return False

    @property
    def _version(self) -> int:
        """How many in-place ops have modified this tensor's storage (shared with views)."""
        return self._vc.value

    def is_floating_point(self) -> bool:
        return dtypes.is_float_storage(self.data.dtype)

    def element_size(self) -> int:
        return self.data.dtype.itemsize

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        return None if self._ctx is None else self._ctx.function

    def numel(self) -> int:
        return self.data.size

    nelement = numel

    def __len__(self) -> int:
        return len(self.data)

    def numpy(self) -> np.ndarray:
        """The values as a NumPy array: `.data` itself, except for bf16 (decoded to float32)."""
        dt = self.data.dtype
        return self.data if dt.metadata is None else dtypes.logical_dtype(dt).decode(self.data)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.numpy().item()

    def tolist(self):
        return self.numpy().tolist()

    def __repr__(self):
        extra = ""
        if self._ctx is not None:
            extra = f", grad_fn={self._ctx.function.__name__}"
        elif self.requires_grad:
            extra = ", requires_grad=True"
        values = np.array2string(self.numpy(), precision=4, threshold=20)
        return f"Tensor({values}, dtype={self.dtype}{extra})"

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(
                f"Boolean value of a tensor with {self.data.size} values (shape {self.shape}) "
                "is ambiguous: use .any() or .all()"
            )
        return bool(self.numpy())

    def _scalar(self, kind: str):
        if self.data.size != 1:
            raise RuntimeError(
                f"{kind}() of a tensor needs exactly one element, got {self.data.size} "
                f"(shape {self.shape}); use .tolist() for many"
            )
        return self.numpy().item()

    def __float__(self) -> float:  # float(loss), as in PyTorch
        return float(self._scalar("float"))

    def __int__(self) -> int:
        return int(self._scalar("int"))

    def __hash__(self):
        # By identity, as in PyTorch: `==` is element-wise (tinyllm/ops/compare.py), so a
        # tensor is a dict key or a set member as an object, never by its values.
        return id(self)

    # ---- autograd ---------------------------------------------------------------------------
    def requires_grad_(self, flag: bool = True) -> Tensor:
        if flag and not np.issubdtype(self.dtype, np.floating):
            raise TypeError(
                f"only floating-point tensors can require gradients; this tensor "
                f"has dtype {self.data.dtype} and shape {self.shape}"
            )
        if not flag and self._ctx is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use detach() instead")
        self.requires_grad = flag
        return self

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in `.grad` after backward (PyTorch semantics)."""
        self._retains_grad = True

    def detach(self) -> Tensor:
        """The same data, cut off from the graph (shares memory and the version counter, as
        in PyTorch: an in-place op on the detached tensor is an in-place op on this one)."""
        out = Tensor(self.data)
        out._vc = self._vc
        return out

    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Compute the gradient of this tensor with respect to every leaf that requires grad.

        For a scalar, `grad` defaults to 1. For a non-scalar, `grad` (the adjoint, same shape)
        must be given.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad (no input of "
                "the computation had requires_grad=True, or it ran under no_grad)"
            )
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() on a non-scalar tensor of shape {self.shape} "
                    f"needs an explicit gradient of that shape"
                )
            grad = np.ones(self.shape, dtype=self.dtype)
        else:
            grad = _to_array(grad, np.dtype(self.dtype))  # (float32 values for bf16)
            if grad.shape != self.shape:
                raise RuntimeError(
                    f"backward(): gradient of shape {grad.shape} does not match "
                    f"tensor of shape {self.shape}"
                )
        autograd.backpropagate(self, grad, retain_graph=retain_graph)

    def register_post_accumulate_grad_hook(self, hook) -> None:
        """Call `hook(tensor)` each time backward has finished adding into this leaf's `.grad`
        (PyTorch's name). Data-parallel training uses it to launch gradient communication."""
        if self._ctx is not None:
            raise RuntimeError("post-accumulate-grad hooks can only be registered on leaf tensors")
        if self._post_hooks is None:
            self._post_hooks = []
        self._post_hooks.append(hook)

    def clear_post_accumulate_grad_hooks(self) -> None:
        self._post_hooks = None

    def _finalize_grad(self, g: np.ndarray) -> None:
        self._accumulate_grad(g)
        if self._post_hooks:
            for hook in self._post_hooks:
                hook(self)

    def _accumulate_grad(self, g: np.ndarray) -> None:
        if hooks.active and hooks.accumulate_grad(self, g):  # a half leaf: stored in its format
            return
        if g.dtype != self.data.dtype:
            g = g.astype(self.data.dtype)
        if self.grad is None:
            # Own a fresh, contiguous array: g may be a view or shared by another node.
            self.grad = np.array(g, dtype=self.data.dtype, copy=True, order="C")
        else:
            self.grad += g

    def zero_grad(self) -> None:
        self.grad = None
