"""The Tensor and reverse-mode automatic differentiation.

A `Tensor` wraps a NumPy array (`.data`) and, when it was produced by a differentiable
operation, remembers that operation (`._ctx`). Following those links backwards from a result
gives the *computation graph*: a directed acyclic graph whose leaves are the inputs and the
parameters.

Reverse mode. Let L be a scalar (the loss) and y = f(x₁, …, xₖ) one node of the graph. If we
already know the adjoint ȳ = ∂L/∂y, the chain rule gives each input's adjoint as a
vector-Jacobian product:

    x̄ᵢ  +=  (∂y/∂xᵢ)ᵀ ȳ

Every op therefore needs two functions that belong together: `forward`, which computes y from
the x's and saves what the derivative will need, and `backward`, which maps ȳ to the x̄ᵢ. A
`Function` subclass holds both, side by side (see tinyllm/ops/ for all of them). The `+=` is
why gradients *accumulate*: a tensor used twice receives the sum of both contributions.

The whole backward pass is two functions:

* `topological_sort(root)` lists every tensor that `root` depends on, each after all of its
  inputs (a post-order of a depth-first search). It is iterative, with an explicit stack, so a
  chain of 100,000 ops does not hit Python's recursion limit.
* `backpropagate(root, grad)` walks that list in reverse — so every tensor is reached only after
  *all* the tensors that consumed it have handed it their contributions — and calls each
  node's `backward` exactly once.

After a backward pass the arrays each node saved are released (they are usually most of the
memory of training: the activations). Calling backward through the same graph again is then an
error, unless the first call passed `retain_graph=True`.

Broadcasting. NumPy lets a (3, 1) array meet a (4,) array and produce (3, 4). Broadcasting
copies values along new or size-1 axes, so its adjoint *sums* along them: `unbroadcast` reduces
a gradient back to the shape of the input it belongs to.

dtypes. float32 is the default (Python lists and scalars become float32); float64 stays
float64. Python scalars never change a tensor's dtype (NumPy 2 "weak scalar" rules), so
`x * 0.5` of a float32 `x` is float32. Only floating-point tensors can require gradients.

Half precision. A tensor may also be float16 or bfloat16 (`x.to(tinyllm.bfloat16)`); bf16 is
stored as 16-bit patterns in a tagged uint16 array. Ops on half tensors compute in float32 and
round their results back — emulated storage and rounding, not half-precision hardware. The
rules live in tinyllm/precision/half.py; this file only calls its hooks through `_half`, which
stays None (one `is None` test per op) until the first half tensor is made.
"""
from __future__ import annotations

import functools
import numbers

import numpy as np

# --------------------------------------------------------------------------------------------
# Global switches: gradient recording, and observers of the graph (used by the memory ledger,
# the FLOP counter and the profiler; all empty by default, so they cost one check).
# --------------------------------------------------------------------------------------------

_grad_enabled = True
_half = None  # tinyllm.precision.half once a half tensor exists (see the module docstring)


def is_grad_enabled() -> bool:
    return _grad_enabled


class _GradMode:
    """Base of `no_grad` / `enable_grad`: a context manager that is also a decorator."""

    mode = True

    def __enter__(self):
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = self.mode

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Inside `with no_grad():` ops run forward only: no graph is recorded, nothing is saved."""

    mode = False


class enable_grad(_GradMode):
    mode = True


class GraphObserver:
    """Something that wants to see the graph being built and run.

    Subclasses override any of these hooks; `observe(observer)` installs one for a `with` block.
    - `on_forward(fn, ctx, out, seconds)` after each recorded or unrecorded op's forward;
    - `on_backward(fn, ctx, seconds)` after each node's backward;
    - `on_save(ctx, arrays)` when a node saves arrays for backward;
    - `on_release(ctx)` when a node's saved arrays are freed.
    """

    def on_forward(self, fn, ctx, out, seconds):  # pragma: no cover - default no-op
        pass

    def on_backward(self, fn, ctx, seconds):  # pragma: no cover - default no-op
        pass

    def on_save(self, ctx, arrays):  # pragma: no cover - default no-op
        pass

    def on_release(self, ctx):  # pragma: no cover - default no-op
        pass


_observers: list[GraphObserver] = []


class observe:
    """`with observe(obs): ...` — install a GraphObserver for the duration of the block."""

    def __init__(self, observer: GraphObserver):
        self.observer = observer

    def __enter__(self):
        _observers.append(self.observer)
        return self.observer

    def __exit__(self, *exc):
        _observers.remove(self.observer)
        return False


def _now():
    import time

    return time.perf_counter()


# --------------------------------------------------------------------------------------------
# Function and its context
# --------------------------------------------------------------------------------------------


class Context:
    """What one node of the graph remembers between its forward and its backward.

    `save_for_backward(*arrays)` stores arrays; `saved_tensors` returns them. Ops may also set
    plain attributes (`ctx.axis = 1`). `needs_input_grad[i]` tells backward whether input i
    wants a gradient, so it can skip work.
    """

    __slots__ = ("function", "parents", "saved_tensors", "needs_input_grad", "released",
                 "__dict__")

    def __init__(self):
        self.saved_tensors = ()
        self.released = False

    def save_for_backward(self, *arrays):
        self.saved_tensors = arrays
        if _observers:
            for obs in _observers:
                obs.on_save(self, arrays)

    def release(self):
        """Free what forward saved (and the links to the inputs): this node is spent."""
        if _observers and self.saved_tensors:
            for obs in _observers:
                obs.on_release(self)
        self.saved_tensors = ()
        self.parents = ()
        self.__dict__.clear()
        self.released = True


class Function:
    """A differentiable op: `forward(ctx, *inputs)` and `backward(ctx, grad)` side by side.

    `forward` receives NumPy arrays (Tensors are unwrapped) plus any keyword arguments and
    returns one array. `backward` receives the adjoint of that output and returns one gradient
    per positional input (None where the input is not a tensor or needs no gradient), each with
    its input's shape. Users call `MyFunction.apply(...)` through a lowercase wrapper.
    """

    @staticmethod
    def forward(ctx, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        ctx = Context()
        arrays = []
        needs = []
        for a in args:
            if isinstance(a, Tensor):
                arrays.append(a.data)
                needs.append(a.requires_grad)
            else:
                arrays.append(a)
                needs.append(False)
        record = _grad_enabled and any(needs)
        ctx.needs_input_grad = tuple(needs) if record else (False,) * len(needs)
        out_dtype = None
        if _half is not None:  # fp16/bf16 inputs: compute in float32, round the output below
            arrays, out_dtype = _half.upcast_inputs(cls, args, arrays)
        if _observers:
            t0 = _now()
            out = cls.forward(ctx, *arrays, **kwargs)
            seconds = _now() - t0
        else:
            out = cls.forward(ctx, *arrays, **kwargs)
        if out_dtype is not None:
            out = _half.store_output(out, out_dtype)
        result = Tensor.__new__(Tensor)
        result.data = out
        result.grad = None
        result.requires_grad = record
        result._retains_grad = False
        result._post_hooks = None
        if record:
            ctx.function = cls
            ctx.parents = args
            result._ctx = ctx
        else:
            result._ctx = None
        if _observers:
            for obs in _observers:
                obs.on_forward(cls, ctx, out, seconds)
            if not record and ctx.saved_tensors:
                # Nothing will ever run backward through this node: tell the ledger it is gone.
                for obs in _observers:
                    obs.on_release(ctx)
                ctx.saved_tensors = ()
        return result


# --------------------------------------------------------------------------------------------
# The backward pass: topological_sort and backpropagate
# --------------------------------------------------------------------------------------------


def topological_sort(root: "Tensor") -> list["Tensor"]:
    """Every tensor `root` depends on through recorded ops, inputs before the ops that use them.

    Depth-first search, emitting a node only after all of its parents were emitted
    (post-order). In that list each tensor comes after everything it was computed from; read in
    reverse, each tensor comes after everything that consumed it — exactly the order in which
    its adjoint becomes complete. An explicit stack replaces recursion.
    """
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        ctx = node._ctx
        if ctx is not None:
            for parent in ctx.parents:
                if isinstance(parent, Tensor) and parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    return order


def backpropagate(root: "Tensor", grad: np.ndarray, retain_graph: bool = False) -> None:
    """Send `grad` (the adjoint of `root`) back through the graph, accumulating into `.grad`.

    Adjoints of intermediate tensors live in a dict only while needed; leaves (tensors created
    by the user with requires_grad=True, e.g. parameters) and tensors that called
    `retain_grad()` receive theirs in `.grad`, adding to what is already there.

    A leaf's gradient is final as soon as every node that consumed it has run its backward, so
    each leaf counts its pending consumers and is written (and its post-accumulate hooks run)
    the moment that count reaches zero — not when the reversed order happens to reach it. This
    is what lets data parallelism start communicating the last layer's gradients while the
    earlier layers are still being differentiated (sim/ddp.py).

    Summing the contributions (`_add_adjoint`) allocates as little as it can: the first sum
    makes a new array, which this pass then owns and adds later contributions into in place;
    a `ScatterGrad` (from indexing) is added into it slice by slice.
    """
    order = topological_sort(root)
    pending: dict[int, int] = {}  # leaf id → number of consumers that have not yet run
    for node in order:
        ctx = node._ctx
        if ctx is not None:
            for parent in ctx.parents:
                if isinstance(parent, Tensor) and parent.requires_grad and parent._ctx is None:
                    pending[id(parent)] = pending.get(id(parent), 0) + 1
    adjoints: dict[int, np.ndarray] = {id(root): grad}
    owned: set[int] = set()  # adjoints this pass allocated itself: safe to add into in place
    for node in reversed(order):
        g = adjoints.pop(id(node), None)
        if g is None:
            continue
        owned.discard(id(node))
        if _half is not None:  # the adjoint of a half tensor is rounded to its format
            g = _half.round_grad(g, node)
        ctx = node._ctx
        if ctx is None:              # a leaf nobody else consumed (backward() on the leaf itself)
            node._finalize_grad(g)
            continue
        if node._retains_grad:
            node._accumulate_grad(g)
        if ctx.released:
            raise RuntimeError(
                "backward through a graph whose saved arrays were already freed: a previous "
                "backward() released them. Pass retain_graph=True to the first backward() if "
                "you need to call backward twice.")
        fn = ctx.function
        if _observers:
            t0 = _now()
            grads = fn.backward(ctx, g)
            seconds = _now() - t0
            for obs in _observers:
                obs.on_backward(fn, ctx, seconds)
        else:
            grads = fn.backward(ctx, g)
        if not isinstance(grads, tuple):
            grads = (grads,)
        parents = ctx.parents
        if len(grads) != len(parents):
            raise RuntimeError(f"{fn.__name__}.backward returned {len(grads)} gradients for "
                               f"{len(parents)} inputs")
        for parent, pg in zip(parents, grads):
            if not isinstance(parent, Tensor) or not parent.requires_grad:
                continue
            key = id(parent)
            if pg is not None:
                if pg.shape != parent.data.shape:
                    raise RuntimeError(f"{fn.__name__}.backward produced a gradient of shape "
                                       f"{pg.shape} for an input of shape {parent.data.shape}")
                _add_adjoint(adjoints, owned, key, pg)
            if parent._ctx is None:
                pending[key] -= 1
                if pending[key] == 0 and key in adjoints:
                    owned.discard(key)
                    parent._finalize_grad(adjoints.pop(key))
        if not retain_graph:
            ctx.release()


class ScatterGrad:
    """The gradient of indexing, x[index]: zero except for `values` at `index`.

    Taking three slices q, k, v = x[0], x[1], x[2] would otherwise give x three full-size,
    mostly-zero gradients and two full-size sums; the engine instead writes each slice into one
    buffer (`add_to`). `accumulate=True` (integer-array indices, which may repeat an element)
    adds with np.add.at, so repeated indices receive every contribution.
    """

    __slots__ = ("shape", "dtype", "index", "values", "accumulate")

    def __init__(self, shape, dtype, index, values, accumulate=False):
        self.shape, self.dtype = tuple(shape), dtype
        self.index, self.values, self.accumulate = index, values, accumulate

    def add_to(self, buf: np.ndarray) -> None:
        if self.accumulate:
            np.add.at(buf, self.index, self.values)
        else:
            buf[self.index] += self.values

    def dense(self) -> np.ndarray:
        buf = np.zeros(self.shape, dtype=self.dtype)
        self.add_to(buf)
        return buf


def _add_adjoint(adjoints: dict, owned: set, key: int, contribution) -> None:
    """adjoints[key] += contribution, in place where this pass owns the buffer (see above)."""
    prev = adjoints.get(key)
    if isinstance(contribution, ScatterGrad):
        if prev is None:
            buf = np.zeros(contribution.shape, dtype=contribution.dtype)
        elif key in owned:
            buf = prev
        else:                        # someone else's array (e.g. passed through by an add)
            buf = np.array(prev, dtype=np.result_type(prev, contribution.dtype), copy=True)
        contribution.add_to(buf)
        adjoints[key] = buf
        owned.add(key)
    elif prev is None:
        adjoints[key] = contribution
    elif key in owned and np.can_cast(contribution.dtype, prev.dtype, "same_kind") \
            and np.result_type(prev, contribution) == prev.dtype:
        prev += contribution
    else:
        adjoints[key] = prev + contribution
        owned.add(key)


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `grad` down to `shape`: the adjoint of broadcasting `shape` up to `grad.shape`.

    Broadcasting prepends axes and stretches size-1 axes; both copy values, and the adjoint of
    a copy is a sum. So: sum over the prepended leading axes, then over every axis where the
    input had size 1 (keeping it).
    """
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


# --------------------------------------------------------------------------------------------
# Tensor
# --------------------------------------------------------------------------------------------

DEFAULT_DTYPE = np.float32


def _to_array(data, dtype=None) -> np.ndarray:
    """NumPy array for `data`: lists and Python scalars become float32 (unless `dtype`)."""
    if isinstance(data, Tensor):
        data = data.data
    if hasattr(dtype, "encode"):  # tinyllm.bfloat16: round float32 values into bit patterns
        return dtype.encode(_to_array(data, np.float32))
    if isinstance(data, np.ndarray):
        return data if dtype is None else data.astype(dtype, copy=False)
    if isinstance(data, np.generic):
        return np.asarray(data, dtype=dtype)
    arr = np.asarray(data, dtype=dtype if dtype is not None else DEFAULT_DTYPE)
    return arr


class Tensor:
    """An n-dimensional array that can record the ops applied to it for differentiation.

    `Tensor(data, requires_grad=False, dtype=None)`: `data` may be a NumPy array (its dtype is
    kept), a list or a scalar (float32 by default). Attributes follow PyTorch: `.data` (the
    array), `.grad` (an array or None), `.requires_grad`, `.shape`, `.dtype`, `.ndim`.
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_retains_grad", "_post_hooks",
                 "__weakref__")
    __array_priority__ = 1000  # ndarray ∘ Tensor defers to Tensor's reflected operators

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data = _to_array(data, dtype)
        if _half is None and self.data.dtype == np.float16:
            _activate_half()
        self.grad = None
        self._ctx = None
        self._retains_grad = False
        self._post_hooks = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ---- basic properties -------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self):
        dt = self.data.dtype
        return dt if dt.metadata is None else _logical_dtype(dt)  # bf16 storage → bfloat16

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        return None if self._ctx is None else self._ctx.function

    def numel(self) -> int:
        return self.data.size

    def __len__(self) -> int:
        return len(self.data)

    def numpy(self) -> np.ndarray:
        """The values as a NumPy array: `.data` itself, except for bf16 (decoded to float32)."""
        dt = self.data.dtype
        return self.data if dt.metadata is None else _logical_dtype(dt).decode(self.data)

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
        return f"Tensor({np.array2string(self.numpy(), precision=4, threshold=20)}, dtype={self.dtype}{extra})"

    def __bool__(self):
        return bool(self.numpy())

    def __hash__(self):
        return id(self)

    # ---- autograd ---------------------------------------------------------------------------
    def requires_grad_(self, flag: bool = True) -> "Tensor":
        if flag and not np.issubdtype(self.dtype, np.floating):
            raise TypeError(f"only floating-point tensors can require gradients; this tensor "
                            f"has dtype {self.data.dtype} and shape {self.shape}")
        if not flag and self._ctx is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use detach() instead")
        self.requires_grad = flag
        return self

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in `.grad` after backward (PyTorch semantics)."""
        self._retains_grad = True

    def detach(self) -> "Tensor":
        """The same data, cut off from the graph (shares memory, as in PyTorch)."""
        return Tensor(self.data)

    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Compute the gradient of this tensor with respect to every leaf that requires grad.

        For a scalar, `grad` defaults to 1. For a non-scalar, `grad` (the adjoint, same shape)
        must be given.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (no input of "
                               "the computation had requires_grad=True, or it ran under no_grad)")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() on a non-scalar tensor of shape {self.shape} "
                                   f"needs an explicit gradient of that shape")
            grad = np.ones(self.shape, dtype=self.dtype)
        else:
            grad = _to_array(grad, np.dtype(self.dtype))  # (float32 values for bf16)
            if grad.shape != self.shape:
                raise RuntimeError(f"backward(): gradient of shape {grad.shape} does not match "
                                   f"tensor of shape {self.shape}")
        backpropagate(self, grad, retain_graph=retain_graph)

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
        if _half is not None and _half.accumulate_grad(self, g):  # stored in fp16/bf16
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

    # ---- operators (the ops themselves live in tinyllm/ops) ----------------------------------
    def __add__(self, other):
        return ops.add(self, other)

    def __radd__(self, other):
        return ops.add(other, self)

    def __sub__(self, other):
        return ops.sub(self, other)

    def __rsub__(self, other):
        return ops.sub(other, self)

    def __mul__(self, other):
        return ops.mul(self, other)

    def __rmul__(self, other):
        return ops.mul(other, self)

    def __truediv__(self, other):
        return ops.div(self, other)

    def __rtruediv__(self, other):
        return ops.div(other, self)

    def __pow__(self, other):
        return ops.pow(self, other)

    def __rpow__(self, other):
        return ops.pow(other, self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __neg__(self):
        return ops.neg(self)

    def __abs__(self):
        return ops.abs(self)

    def __getitem__(self, index):
        return ops.getitem(self, index)

    # Comparisons give boolean arrays wrapped in Tensors (not differentiable), like PyTorch.
    def _compare(self, other, op):
        other = other.numpy() if isinstance(other, Tensor) else other
        return Tensor(op(self.numpy(), other))

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    def eq(self, other):
        return self._compare(other, np.equal)

    # ---- methods delegating to ops ----------------------------------------------------------
    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def sqrt(self):
        return ops.sqrt(self)

    def tanh(self):
        return ops.tanh(self)

    def sigmoid(self):
        return ops.sigmoid(self)

    def relu(self):
        return ops.relu(self)

    def abs(self):
        return ops.abs(self)

    def sum(self, axis=None, keepdims=False):
        return ops.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return ops.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return ops.max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return ops.min(self, axis, keepdims)

    def var(self, axis=None, keepdims=False, correction=1):
        return ops.var(self, axis, keepdims, correction)

    def reshape(self, *shape):
        return ops.reshape(self, *shape)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        return ops.flatten(self, start_dim, end_dim)

    def transpose(self, dim0, dim1):
        return ops.transpose(self, dim0, dim1)

    @property
    def T(self):
        return ops.permute(self, *reversed(range(self.ndim)))

    def permute(self, *dims):
        return ops.permute(self, *dims)

    def expand(self, *shape):
        return ops.expand(self, *shape)

    def broadcast_to(self, shape):
        return ops.expand(self, shape)

    def squeeze(self, axis=None):
        return ops.squeeze(self, axis)

    def unsqueeze(self, axis):
        return ops.unsqueeze(self, axis)

    def split(self, split_size_or_sections, axis=0):
        return ops.split(self, split_size_or_sections, axis)

    def chunk(self, chunks, axis=0):
        return ops.chunk(self, chunks, axis)

    def masked_fill(self, mask, value):
        return ops.masked_fill(self, mask, value)

    def softmax(self, axis=-1):
        return ops.softmax(self, axis)

    def log_softmax(self, axis=-1):
        return ops.log_softmax(self, axis)

    def contiguous(self):
        return ops.contiguous(self)

    def to(self, dtype):
        return ops.cast(self, dtype)

    astype = to

    def float(self):
        return ops.cast(self, np.float32)

    def double(self):
        return ops.cast(self, np.float64)

    def clone(self):
        return ops.clone(self)


def tensor(data, requires_grad=False, dtype=None) -> Tensor:
    """`tinyllm.tensor(data)`: the same as `Tensor(data)` but always copies the data."""
    arr = np.array(data.data if isinstance(data, Tensor) else data,
                   dtype=dtype if dtype is not None else (None if isinstance(data, (np.ndarray, Tensor)) else DEFAULT_DTYPE))
    return Tensor(arr, requires_grad=requires_grad, dtype=dtype)


def is_scalar(x) -> bool:
    return isinstance(x, numbers.Number) and not isinstance(x, np.ndarray)


def _logical_dtype(storage: np.dtype):
    """The dtype object a tagged storage dtype stands for (tinyllm.bfloat16)."""
    return storage.metadata["tinyllm.dtype"]


def _activate_half() -> None:
    from tinyllm.precision.half import activate
    activate()


from tinyllm import ops  # noqa: E402  (ops need Tensor defined above)
