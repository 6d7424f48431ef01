"""Reverse-mode automatic differentiation: grad mode, Function, and the backward pass.

A `Tensor` (tinyllm/engine/tensor.py) wraps a NumPy array and, when a differentiable op made
it, remembers that op (`._ctx`). Following those links backwards from a result gives the
*computation graph*: a directed acyclic graph whose leaves are the inputs and the parameters.

Reverse mode. Let L be a scalar (the loss) and y = f(x₁, …, xₖ) one node of the graph. If we
already know the adjoint ȳ = ∂L/∂y, the chain rule gives each input's adjoint as a
vector-Jacobian product:

    x̄ᵢ  +=  (∂y/∂xᵢ)ᵀ ȳ

Every op therefore needs two functions that belong together: `forward`, which computes y from
the x's and saves what the derivative will need, and `backward`, which maps ȳ to the x̄ᵢ. A
`Function` subclass holds both, side by side (tinyllm/ops/ has all of them). The `+=` is why
gradients *accumulate*: a tensor used twice receives the sum of both contributions
(tinyllm/engine/adjoints.py).

The whole backward pass is two functions:

* `topological_sort(root)` lists every tensor that `root` depends on, each after all of its
  inputs (a post-order of a depth-first search). It is iterative, with an explicit stack, so a
  chain of 100,000 ops does not hit Python's recursion limit.
* `backpropagate(root, grad)` walks that list in reverse — so every tensor is reached only after
  *all* the tensors that consumed it have handed it their contributions — and calls each
  node's `backward` exactly once.

An in-place op that overwrites an array some node saved would make that node's backward wrong;
each tensor's version counter (tinyllm/engine/versions.py) lets backward refuse instead.

After a backward pass the arrays each node saved are released (they are usually most of the
memory of training: the activations). Calling backward through the same graph again is then an
error, unless the first call passed `retain_graph=True`.

Observers (the FLOP counter, sim's memory ledger) and half precision take part in every step
through one door, tinyllm/engine/hooks.py; the `if hooks.active:` lines below are that door.
"""

from __future__ import annotations

import functools

import numpy as np

from tinyllm.engine import hooks, policy, versions
from tinyllm.engine.adjoints import add_adjoint

# ---- grad mode ------------------------------------------------------------------------------

_grad_enabled = True


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


# ---- Function and its context ---------------------------------------------------------------


class Context:
    """What one node of the graph remembers between its forward and its backward.

    `save_for_backward(*arrays)` stores arrays; `saved_tensors` returns them. Ops may also set
    plain attributes, by name (`ctx.axis = 1`). `needs_input_grad[i]` tells backward whether
    input i wants a gradient, so it can skip work.
    """

    __slots__ = ("function", "parents", "saved_tensors", "needs_input_grad", "released", "__dict__")

    def __init__(self):
        self.saved_tensors = ()
        self.released = False

    def save_for_backward(self, *arrays):
        self.saved_tensors = arrays
        if hooks.active:
            hooks.saved(self, arrays)

    def release(self):
        """Free what forward saved (and the links to the inputs): this node is spent."""
        if hooks.active:
            hooks.released(self)
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

    `flops` declares what the op costs (tinyllm/engine/flops.py); the FLOP counter reads it.
    `returns_view = True` says forward may return a view of its first input, which then shares
    that input's version counter (tinyllm/engine/versions.py). `inputs` names the dtype rule
    its tensor inputs must satisfy (ANY, NUMERIC, PROMOTE, FLOAT or SAME of
    tinyllm/engine/policy.py), checked here before forward runs.
    """

    flops = None
    returns_view = False  # forward may return a view of its first input (reshape, slicing)
    inputs = policy.ANY  # the dtype rule for tensor inputs (tinyllm/engine/policy.py)
    name = None  # the op's public name, for error messages (default: the class name)

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
        if cls.inputs is not None:  # one dtype-kind test per tensor input
            mask = [isinstance(a, Tensor) for a in args]
            arrays = policy.admit(cls.name or cls.__name__, cls.inputs, arrays, mask)
        record = _grad_enabled and any(needs)
        ctx.needs_input_grad = tuple(needs) if record else (False,) * len(needs)
        if record:
            ctx.function = cls
            ctx.parents = args
        if hooks.active:
            from_tensor = [isinstance(a, Tensor) for a in args]
            out = hooks.forward(cls, ctx, arrays, from_tensor, kwargs)
        else:
            out = cls.forward(ctx, *arrays, **kwargs)
        result = Tensor._result(out, ctx if record else None)
        if cls.returns_view and isinstance(args[0], Tensor):
            versions.share_if_view(args[0], result)
        if record:
            versions.record(ctx, [a for a in args if isinstance(a, Tensor)], result)
        return result


# ---- the backward pass: topological_sort and backpropagate ----------------------------------


def topological_sort(root: Tensor) -> list[Tensor]:
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
                if (
                    isinstance(parent, Tensor)
                    and parent.requires_grad
                    and id(parent) not in visited
                ):
                    stack.append((parent, False))
    return order


def backpropagate(root: Tensor, grad: np.ndarray, retain_graph: bool = False) -> None:
    """Send `grad` (the adjoint of `root`) back through the graph, accumulating into `.grad`.

    Adjoints of intermediate tensors live in a dict only while needed; leaves (tensors created
    by the user with requires_grad=True, e.g. parameters) and tensors that called
    `retain_grad()` receive theirs in `.grad`, adding to what is already there.

    A leaf's gradient is final as soon as every node that consumed it has run its backward, so
    each leaf counts its pending consumers and is written (and its post-accumulate hooks run)
    the moment that count reaches zero — not when the reversed order happens to reach it. This
    is what lets data parallelism start communicating the last layer's gradients while the
    earlier layers are still being differentiated (sim/ddp.py).
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
        if hooks.active:
            g = hooks.adjoint(g, node)
        ctx = node._ctx
        if ctx is None:  # a leaf nobody else consumed (backward() on the leaf itself)
            node._finalize_grad(g)
            continue
        if node._retains_grad:
            node._accumulate_grad(g)
        if ctx.released:
            raise RuntimeError(
                "backward through a graph whose saved arrays were already freed: a previous "
                "backward() released them. Pass retain_graph=True to the first backward() if "
                "you need to call backward twice."
            )
        fn = ctx.function
        if "saved_versions" in ctx.__dict__:  # saved arrays of tensors: not modified since?
            versions.check(ctx, fn)
        grads = hooks.backward(fn, ctx, g) if hooks.active else fn.backward(ctx, g)
        if not isinstance(grads, tuple):
            grads = (grads,)
        parents = ctx.parents
        if len(grads) != len(parents):
            raise RuntimeError(
                f"{fn.__name__}.backward returned {len(grads)} gradients for {len(parents)} inputs"
            )
        for parent, pg in zip(parents, grads):
            if not isinstance(parent, Tensor) or not parent.requires_grad:
                continue
            key = id(parent)
            if pg is not None:
                if pg.shape != parent.data.shape:
                    raise RuntimeError(
                        f"{fn.__name__}.backward produced a gradient of shape "
                        f"{pg.shape} for an input of shape {parent.data.shape}"
                    )
                add_adjoint(adjoints, owned, key, pg)
            if parent._ctx is None:
                pending[key] -= 1
                if pending[key] == 0 and key in adjoints:
                    owned.discard(key)
                    parent._finalize_grad(adjoints.pop(key))
        if not retain_graph:
            ctx.release()


# The Tensor class is built on this module (its backward() calls backpropagate), so it is
# imported last: tinyllm/engine/__init__.py imports this module first.
from tinyllm.engine.tensor import Tensor  # noqa: E402
