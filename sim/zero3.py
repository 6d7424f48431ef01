"""ZeRO-3: the parameters partitioned too — each unit gathered only while it computes.

The third rung of the ladder in sim/zero.py, and what PyTorch calls FSDP (fully sharded data
parallelism; Zhao et al. 2023). A rank stores only its shards of the parameters, like those of
the gradients and optimizer states; each unit's (transformer block's) full parameters are
all-gathered just before its forward and again just before its backward, and freed after each
use. Per rank, with b bytes per element and K bytes of optimizer state per parameter:

    memory  (b + b + K)Ψ/N + G      fp32 Adam (4 + 4 + 8)Ψ/N + G; mixed (2 + 2 + 12)Ψ/N + G
    sent    Ψ(N−1)/N (reduce-scatter) + 2 · Ψ(N−1)/N (all-gathers) = 3Ψ(N−1)/N elements

G, the gathered parameters at the peak, is the root unit (embeddings, final norm, tied head —
used from the first layer to the loss) plus the largest block. Forward reaches a unit through
its module's `forward`, wrapped here; backward reaches it through an identity autograd
Function on the unit's outputs whose backward gathers the unit before its gradient flows in.

Simplification, said plainly: "freed" parameters are released in the ledger and overwritten
with NaN — so any use before the next gather would show up as NaN losses — but the NumPy
buffer is reused for the next gather rather than returned to the allocator.
"""

from __future__ import annotations

import numpy as np

from sim.zero import ZeRO2
from tinyllm.engine import Function, Tensor
from tinyllm.precision.mixed import write_model_params_


class _PreBackward(Function):
    """Identity in forward; in backward, calls `hook()` before the gradient flows on into the
    unit that produced this tensor — ZeRO-3's cue to gather that unit's parameters."""

    @staticmethod
    def forward(ctx, x, hook=None):
        ctx.hook = hook
        return x

    @staticmethod
    def backward(ctx, grad):
        ctx.hook()
        return grad


class ZeRO3(ZeRO2):
    """Stage 3 — the parameters partitioned too: (b + b + K)Ψ/N + G per rank, 3Ψ(N−1)/N
    elements sent (the module docstring).

    Two options, ZeRO-3's alone: `reshard_after_forward=False` keeps each unit from its forward
    to its backward (G = every unit; one all-gather less, 2Ψ(N−1)/N); `prefetch=True` gathers
    the next unit as soon as the current one starts, so that its communication could overlap
    the current unit's compute (G = two blocks). Simplification: on the simulated timeline the
    compute still waits for every all-gather, prefetched or not.
    """

    name = "zero3"
    stage = 3

    def __init__(
        self, model, world, *, reshard_after_forward: bool = True, prefetch: bool = False, **kwargs
    ):
        self.reshard_after_forward = reshard_after_forward
        self.prefetch = prefetch
        super().__init__(model, world, **kwargs)

    def _setup(self):
        super()._setup()
        self._forward_order = self.units[1:]  # blocks, in forward order
        for st in self.units[1:]:
            self._wrap(st, st.unit.module)
        self._wrap(self.units[0], self.model)  # the root spans the whole forward

    def _setup_params(self, st):
        shard = self._alloc(
            self._param_shard_ledger(), st.layout.shard_size, "parameters", f"{st.name} param shard"
        )
        full = np.zeros(st.layout.padded, dtype=self.precision.storage_dtype)
        st.layout.pack([p.data for p in st.unit.params], full)
        lo, hi = st.layout.shard_range(self.group.index)
        shard[...] = full[lo:hi]
        st.param_shard = shard
        # The gathered buffer: charged to the device only while gathered (see _gather/_free).
        st.full = full
        for p, view in zip(st.unit.params, st.layout.views(full)):
            p.data = view
        self._poison(st.full)  # not gathered yet: any use would show NaN
        st.gathered = False

    def _param_shard_ledger(self):
        """Where the parameter shards live between uses: on the device."""
        return self.device

    def _poison(self, buf):
        buf[...] = self.precision.nan()

    # ---- gather / free ------------------------------------------------------------------------
    def _gather(self, st):
        if st.gathered:
            return
        self.device.register(st.full, "parameters", f"{st.name} gathered")
        self._all_gather_unit(st)
        st.gathered = True

    def _all_gather_unit(self, st):
        self.group.all_gather(st.param_shard, st.full, st.name, wait=True)

    def _free(self, st):
        if not st.gathered:
            return
        self._poison(st.full)
        self.device.free(st.full)
        st.gathered = False

    def _wrap(self, st, module):
        original = module.forward
        strategy = self

        def forward(*args, **kwargs):
            strategy._gather(st)
            if strategy.prefetch:
                strategy._prefetch_after(st)
            out = original(*args, **kwargs)
            out = strategy._hook_outputs(st, out)
            if strategy.reshard_after_forward:
                strategy._free(st)
            return out

        object.__setattr__(module, "forward", forward)

    def _prefetch_after(self, st):
        order = self._forward_order
        if st in order:
            i = order.index(st)
            if i + 1 < len(order):
                self._gather(order[i + 1])

    def _hook_outputs(self, st, out):
        def hook():
            self._gather(st)
            if self.prefetch and st in self._forward_order:
                i = self._forward_order.index(st)
                if i > 0:
                    self._gather(self._forward_order[i - 1])

        def attach(t):
            if isinstance(t, Tensor) and t.requires_grad:
                return _PreBackward.apply(t, hook=hook)
            return t

        if isinstance(out, tuple):
            return tuple(attach(t) for t in out)
        return attach(out)

    def _reduce_unit(self, st):
        super()._reduce_unit(st)
        self._free(st)  # its backward is done: drop the full parameters

    def _all_gather_updated(self):
        pass  # nothing to gather now: the next forward gathers the updated shards

    def _load_params(self, st, full):
        lo, hi = st.layout.shard_range(self.group.index)
        write_model_params_(st.param_shard, full[lo:hi])

    def full_state_dict(self) -> dict:
        """Each unit gathered in turn, its parameters copied out under every name they have in
        the state dict (tied weights included)."""
        sd = self.model.state_dict()
        out = {k: np.array(v) for k, v in sd.items()}  # buffers; parameters overwritten
        for st in self.units:
            was = st.gathered
            self._gather(st)
            ids = {id(p.data) for p in st.unit.params}
            for k, v in sd.items():
                if id(v) in ids:
                    out[k] = np.array(v)
            if not was:
                self._free(st)
        return out

    # ---- theory -------------------------------------------------------------------------------
    def _gathers_per_micro_step(self) -> int:
        return 2 if self.reshard_after_forward else 1

    def _gathered_theory(self) -> int:
        """G, bytes of full parameters held at the peak: the root unit plus the largest block —
        two blocks with prefetch, all of them when nothing is resharded after forward."""
        sizes = [st.layout.numel for st in self.units[1:]] or [0]
        root = self.units[0].layout.numel
        b = self.precision.itemsize
        if not self.reshard_after_forward:
            return b * (root + sum(sizes))
        k = 2 if self.prefetch else 1
        return b * (root + sum(sorted(sizes)[-k:]))

    def theory(self) -> dict:
        t = super().theory()
        b, psi, f = self.precision.itemsize, self.n_params, self.group.factor
        t["parameters"] = b * psi / f + self._gathered_theory()
        return t

    def theory_comm_bytes(self, accum_steps: int = 1) -> float:
        """One reduce-scatter and one or two all-gathers per micro-step."""
        gathers = self._gathers_per_micro_step() * accum_steps
        return self.precision.itemsize * self.group.elements_sent(
            self.n_params, accum_steps, gathers
        )
