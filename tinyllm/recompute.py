"""Activation checkpointing: trade compute for memory by recomputing a block's forward.

Backward needs what forward computed: every op saves its inputs (or outputs) for its derivative,
and in a transformer these saved arrays — the *activations* — are most of the memory of
training. For one pre-LayerNorm GPT block, with sequence length s, micro-batch b, hidden size h
and a attention heads, Korthikanti et al. (2022, "Reducing Activation Recomputation in Large
Transformer Models", eq. 1) count

    activations per layer = s·b·h·(34 + 5·a·s/h)  bytes     (fp16 activations, 1-byte masks)

Activation checkpointing (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost";
PyTorch's torch.utils.checkpoint) keeps only the *input* of each checkpointed block, runs the
block's forward without recording a graph, and, when backward reaches the block, runs its
forward a second time — now recording — and backpropagates through that fresh graph. What stays
alive between forward and backward per layer is then the block input alone:

    2·s·b·h bytes in fp16   →   4·s·b·h bytes in fp32 (tinyllm's default dtype)

at the price of one extra forward per block: a training step costs forward + (forward +
backward) ≈ 4 forward-units instead of 3, i.e. ~33% more FLOPs (Korthikanti et al. §4).

How it is built here. `CheckpointFunction` is an ordinary `Function`:

    forward(x):   y = block(x) under no_grad      save only x (and the random-number state)
    backward(ȳ):  x' = a fresh leaf holding x     y' = block(x') with grad recording on
                  backpropagate ȳ through y'      return x'.grad

The parameters' gradients are accumulated by that inner backward pass straight into their
`.grad` (their post-accumulate hooks fire there, so data-parallel bucketing still works); the
outer graph only carries the input's gradient. This is the "reentrant" variant of PyTorch's
checkpoint. The block's parameters are passed to the node as extra (gradient-less) inputs so that
the node is recorded even when x itself needs no gradient.

Dropout. A block with dropout draws random masks; the recomputation must draw the *same* ones.
The default generator's state (tinyllm.runtime.random) is saved before the first forward and
restored for the recomputation, then put back where backward found it (PyTorch's
preserve_rng_state). Generators passed explicitly to ops are not tracked.

Are the gradients identical? The recomputation runs the same ops, in the same order, on the same
arrays, so each intermediate value is bit-for-bit the one the plain forward produced (the kernels
are deterministic for a fixed thread count), and the backward ops then see identical inputs.
Gradients that sum several contributions could differ only if the contributions arrived in a
different order; in a GPT block every tensor has at most two consumers, and a + b == b + a
exactly in IEEE arithmetic — so tests/test_recompute.py asserts bitwise equality.
"""

from __future__ import annotations

from tinyllm.engine import Function, Tensor, enable_grad, is_grad_enabled, no_grad
from tinyllm.engine.flops import MOVES_DATA
from tinyllm.runtime.random import get_rng_state, set_rng_state


class CheckpointFunction(Function):
    """forward: run `function` without a graph, keep its inputs; backward: rerun, differentiate.

    Positional inputs: the tensors passed to `function` (n_inputs of them), then the parameters
    the function uses (only so that this node is recorded; they receive no gradient from it —
    the inner backward accumulates theirs).

    The node itself costs nothing: the ops it runs — the block's forward, and in backward its
    recomputation and backward — are observed and counted one by one.
    """

    flops = MOVES_DATA

    @staticmethod
    def forward(ctx, *arrays, function=None, n_inputs=1, requires=(), args=(), kwargs=None):
        inputs = arrays[:n_inputs]
        ctx.block, ctx.requires, ctx.args, ctx.kwargs = function, requires, args, kwargs or {}
        ctx.rng_state = get_rng_state()
        ctx.save_for_backward(*inputs)  # the only activations kept: the block's inputs
        with no_grad():
            out = function(*_place(args, [Tensor(a) for a in inputs]), **ctx.kwargs)
        if not isinstance(out, Tensor):
            raise TypeError(
                f"checkpoint: the function must return one Tensor, got {type(out).__name__}"
            )
        return out.data

    @staticmethod
    def backward(ctx, grad):
        inputs = [Tensor(a, requires_grad=r) for a, r in zip(ctx.saved_tensors, ctx.requires)]
        state_now = get_rng_state()
        set_rng_state(ctx.rng_state)  # the same dropout masks as the first forward
        with enable_grad():
            out = ctx.block(*_place(ctx.args, inputs), **ctx.kwargs)
        set_rng_state(state_now)
        if out.requires_grad:
            out.backward(grad)  # parameters' .grad accumulate here (reentrant)
        n_params = len(ctx.parents) - len(inputs)
        return tuple(x.grad if x.requires_grad else None for x in inputs) + (None,) * n_params


_TENSOR = object()  # placeholder in `args` for "the next tensor input"


def _place(args, tensors):
    """Rebuild the positional arguments: tensors go where the placeholders are."""
    it = iter(tensors)
    return [next(it) if a is _TENSOR else a for a in args]


def checkpoint(function, *args, **kwargs):
    """`function(*args, **kwargs)`, keeping only its tensor arguments for backward.

    `function` is typically a Module (a transformer block); its parameters are found with
    `.parameters()`. Non-tensor arguments (masks, None) are passed through unchanged. Under
    `no_grad` (evaluation) this is just `function(*args, **kwargs)`.
    """
    if not is_grad_enabled():
        return function(*args, **kwargs)
    tensors = [a for a in args if isinstance(a, Tensor)]
    if not tensors:
        raise TypeError("checkpoint: at least one positional argument must be a Tensor")
    params = list(function.parameters()) if hasattr(function, "parameters") else []
    placed = tuple(_TENSOR if isinstance(a, Tensor) else a for a in args)
    return CheckpointFunction.apply(
        *tensors,
        *params,
        function=function,
        n_inputs=len(tensors),
        requires=tuple(t.requires_grad for t in tensors),
        args=placed,
        kwargs=kwargs,
    )
