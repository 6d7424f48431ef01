"""ZeRO: removing the redundancy of data parallelism, one kind of state at a time.

In DDP (sim/ddp.py) every one of N ranks keeps an identical copy of all model states. With Ψ
parameters, b bytes per parameter element and K bytes of optimizer state per parameter, that is
bΨ + bΨ + KΨ per rank: 4Ψ + 4Ψ + 8Ψ for fp32 Adam (m and v, K = 8), and the ZeRO paper's
2Ψ + 2Ψ + 12Ψ for a half-precision model with fp32 masters (K = 12). ZeRO (Rajbhandari et al.
2019) *partitions* the states instead: rank r keeps only shard r of each flat buffer
(sim/flat.py) and gets the rest from its peers exactly when it is needed. A ladder, each class
one rung and one idea:

    rung     partitioned          model-state bytes per rank          sent per rank (elements)
    DDP      —                    bΨ + bΨ + KΨ       4Ψ + 4Ψ + 8Ψ        2Ψ(N−1)/N
    ZeRO1    optimizer states     bΨ + bΨ + KΨ/N     4Ψ + 4Ψ + 8Ψ/N      2Ψ(N−1)/N
    ZeRO2    + gradients          bΨ + (b + K)Ψ/N    4Ψ + 12Ψ/N          2Ψ(N−1)/N
    ZeRO3    + parameters         (2b + K)Ψ/N + G    16Ψ/N + G           3Ψ(N−1)/N

(G: the full parameters of the units gathered at the peak; ×b for bytes on the wire.) ZeRO1 and
ZeRO2 are here; ZeRO3, whose parameters come and go, has a module of its own (sim/zero3.py).
The pieces every rung shares are named objects, not branches in each stage: `ShardGroup`
(sim/sharding.py) says which ranks share a shard — all N, or groups of F with hybrid sharding,
where every formula above holds with N → F — and `MixedPrecision` (sim/precision.py) holds the
half-model / fp32-master logic. The next rung, ZeRO-Offload, moves the optimizer (and, for
ZeRO-3, the parameter shards) to host memory: sim/offload.py.

Simplifications, said plainly: collectives run synchronously here (the overlap is modelled on
the cost model's timeline, not real); activation memory is not partitioned (that is ZeRO-R, not
implemented).
"""

from __future__ import annotations

import numpy as np

from sim.collectives import add_into
from sim.flat import FlatLayout, split_units
from sim.sharding import ShardGroup
from sim.strategy import ShardOptimizer, ShardState, Strategy
from tinyllm.precision.mixed import write_model_params_

ZERO3_OPTIONS = ("reshard_after_forward", "prefetch")


class UnitState:
    """One unit's flat layout and the buffers this rank holds for it."""

    def __init__(self, unit, layout):
        self.unit, self.layout = unit, layout
        self.name = unit.name
        self.ready = 0  # parameters whose gradient backward has finished
        self.reduced = False  # its gradients were reduced in this backward
        self.gathered = False  # ZeRO-3: full parameters present on the device


class ZeRO1(Strategy):
    """Stage 1 — the optimizer states partitioned: rank r keeps Adam's m and v (and, for a half
    model, the fp32 masters) only for shard r of each unit.

    After backward the full gradients are *reduce-scattered* (each rank receives the average
    of its own shard: the first half of an all-reduce), each rank updates its parameter shard,
    and the shards are *all-gathered* back into every rank's full parameters (the second half).
    The gradients are accumulated whole, like DDP's, so `no_sync()` works as in DDP.
    `sharding_factor=F` (every stage has it) shards within groups of F ranks and replicates
    across the groups: hybrid sharding, sim/sharding.py.

        memory  bΨ + bΨ + KΨ/N          (fp32 Adam: 4Ψ + 4Ψ + 8Ψ/N; mixed: 2Ψ + 2Ψ + 12Ψ/N)
        sent    Ψ(N−1)/N + Ψ(N−1)/N = 2Ψ(N−1)/N elements per step, DDP's volume
    """

    name = "zero1"
    stage = 1

    def __init__(self, model, world, *, sharding_factor: int | None = None, **kwargs):
        for option in ZERO3_OPTIONS:
            if option in kwargs:
                raise TypeError(
                    f"{type(self).__name__}: {option!r} is an option of ZeRO-3, "
                    f"which gathers and frees the parameters; ZeRO-{self.stage} "
                    f"keeps them whole on every rank"
                )
        if "offload" in kwargs:
            raise TypeError(
                f"{type(self).__name__}: offload is a rung of its own — "
                f"sim/offload.py's ZeRO{self.stage}Offload (or zero_class(stage, "
                f"offload))"
            )
        self.group = ShardGroup(world, sharding_factor, place=self._comm)
        super().__init__(model, world, **kwargs)

    # ---- layout -----------------------------------------------------------------------------
    def _setup(self):
        self.units = []
        self._unit_of = {}
        for unit in split_units(self.model):
            layout = FlatLayout(unit.names, [p.shape for p in unit.params], self.group.factor)
            st = UnitState(unit, layout)
            for p in unit.params:
                self._unit_of[id(p)] = st
                p.register_post_accumulate_grad_hook(self._grad_ready)
            self.units.append(st)
        for st in self.units:
            self._setup_params(st)
            self._setup_grads(st)
            self._setup_optimizer(st)

    def _alloc(self, ledger, n, tag, label, dtype=None):
        """n elements in the model's storage dtype (or `dtype`), charged to `ledger`."""
        dtype = self.precision.storage_dtype if dtype is None else dtype
        return ledger.allocate((n,), dtype, tag, label)

    def _setup_params(self, st):
        """Stages 1–2: the full parameters stay on every rank, as views into a flat buffer."""
        st.param_flat = self._alloc(
            self.device, st.layout.padded, "parameters", f"{st.name} params"
        )
        st.layout.pack([p.data for p in st.unit.params], st.param_flat)
        for p, view in zip(st.unit.params, st.layout.views(st.param_flat)):
            p.data = view
        lo, hi = st.layout.shard_range(self.group.index)
        st.param_shard = st.param_flat[lo:hi]  # the part this rank updates

    def _setup_grads(self, st):
        """Stage 1: full gradients, accumulated in place into a flat buffer (like DDP)."""
        st.grad_flat = self._alloc(self.device, st.layout.padded, "gradients", f"{st.name} grads")
        for p, view in zip(st.unit.params, st.layout.views(st.grad_flat)):
            p.grad = view
        lo, hi = st.layout.shard_range(self.group.index)
        st.grad_shard = st.grad_flat[lo:hi]

    def _setup_optimizer(self, st):
        """Adam's state for this rank's shard, in `_optimizer_place()`'s ledger."""
        flags = [self.decay_flag[id(p)] for p in st.unit.params]
        ledger, copy_tag = self._optimizer_place()
        st.opt = ShardOptimizer(
            st.param_shard, st.layout, self.group.index, flags, ledger, st.name, copy_tag=copy_tag
        )

    def _optimizer_place(self):
        """(ledger, tag of Adam's own fp32 copy): the device, with fp32 masters if the model is
        half (ZeRO-Offload moves both to the host, sim/offload.py)."""
        return self.device, self.precision.master_tag

    # ---- backward: reduce gradients ---------------------------------------------------------
    def _grad_ready(self, p):
        self._on_grad(p)
        st = self._unit_of[id(p)]
        st.ready += 1
        if st.ready == len(st.unit.params):
            st.ready = 0
            self._unit_grads_ready(st)

    def _on_grad(self, p):
        """A parameter's gradient is complete (stage 1: it is a view into the flat buffer)."""

    def _unit_grads_ready(self, st):
        if self._sync:
            self._reduce_unit(st)
            st.reduced = True

    def _reduce_unit(self, st):
        """Stage 1: reduce-scatter the unit's full gradient; keep the average of our shard."""
        tmp = self._alloc(self.device, st.layout.shard_size, "buffers", "reduce-scatter out")
        self.group.reduce_scatter_avg(st.grad_flat, tmp, st.name)
        st.grad_shard[...] = tmp
        self.device.free(tmp)

    def _after_backward(self):
        for st in self.units:
            if self._sync and not st.reduced:
                self._reduce_unit(st)  # a unit with an unused parameter never filled up
            st.ready = 0
            st.reduced = False

    # ---- optimizer ------------------------------------------------------------------------------
    def _grad_shards(self):
        return [(st.grad_shard, True) for st in self.units]

    def _norm_group(self):
        return self.group.shard_comm

    def _optimizer_step(self):
        self._update_shards()  # Adam on the shards this rank owns
        self._write_back()  # ... into the model's parameter shards
        self._all_gather_updated()  # every rank receives every updated shard

    def _update_shards(self):
        self._adam_steps()
        self._adam_time(sum(st.layout.shard_size for st in self.units), "adam (device)")

    def _adam_steps(self):
        for st, (grads, _) in zip(self.units, self.grads32()):
            st.opt.step(grads, self.step_count, self.lr, self.betas, self.eps, self.weight_decay)

    def _write_back(self):
        """The optimizer's updated copy (the fp32 masters, if any) into the model's shard."""
        for st in self.units:
            st.opt.publish(st.param_shard)

    def _all_gather_updated(self):
        """Stages 1–2: all-gather the updated shards into every rank's full parameters."""
        if self.group.factor == 1:
            return  # the shard is the whole buffer
        for st in self.units:
            # The shard is a slice of the full buffer: MPI forbids sending from the buffer
            # being received into, so it is staged in a temporary.
            send = self._alloc(self.device, st.layout.shard_size, "buffers", "all-gather in")
            send[...] = st.param_shard
            self.group.all_gather(send, st.param_flat, st.name, wait=False)
            self.device.free(send)

    def _zero_grad(self):
        for st in self.units:
            st.grad_flat[...] = 0
            for p, view in zip(st.unit.params, st.layout.views(st.grad_flat)):
                p.grad = view

    # ---- checkpoints (sim/checkpoint.py): each shard written once, by the first replica ------
    def writes_checkpoint(self) -> bool:
        return self.group.first_replica

    def shard_state(self) -> list:
        return [
            ShardState(st.name, st.layout, self.group.index, st.opt.params, st.opt.m, st.opt.v)
            for st in self.units
        ]

    def load_full_state(self, params: dict, exp_avg: dict, exp_avg_sq: dict, step: int) -> None:
        for st in self.units:
            lo, hi = st.layout.shard_range(self.group.index)
            full = np.zeros(st.layout.padded, dtype=self.precision.master_dtype)
            st.layout.pack([params[n] for n in st.unit.names], full)
            st.opt.params[...] = full[lo:hi]  # the parameters, a copy, or the masters
            self._load_params(st, full)
            st.layout.pack([exp_avg[n] for n in st.unit.names], full)
            st.opt.m[...] = full[lo:hi]
            st.layout.pack([exp_avg_sq[n] for n in st.unit.names], full)
            st.opt.v[...] = full[lo:hi]
        self.step_count = step

    def _load_params(self, st, full):
        write_model_params_(st.param_flat, full)

    def full_state_dict(self) -> dict:
        return self._model_state_copy()  # every rank holds the full parameters

    # ---- theory -------------------------------------------------------------------------------
    def theory(self) -> dict:
        """Model-state bytes per rank, the class docstring's formula with N → F."""
        psi, f, b = self.n_params, self.group.factor, self.precision.itemsize
        return {
            "parameters": b * psi,
            "gradients": b * psi,
            "optimizer_states": self.precision.optimizer_bytes * psi / f,
        }

    def theory_comm_bytes(self, accum_steps: int = 1) -> float:
        """Bytes sent per rank per optimizer step: one reduce-scatter (after the last
        micro-step) and one all-gather (sim/sharding.py's volume, × b bytes)."""
        return self.precision.itemsize * self.group.elements_sent(self.n_params, 1, 1)


class ZeRO2(ZeRO1):
    """Stage 2 — the gradients partitioned too: each unit's (transformer block's) gradients are
    reduce-scattered as soon as backward has produced them, and the full-size gradients are
    dropped; a rank only keeps the gradient shard it owns (plus the one unit in flight).

        memory  bΨ + (b + K)Ψ/N         (fp32 Adam: 4Ψ + (4 + 8)Ψ/N; mixed: 2Ψ + (2 + 12)Ψ/N)
        sent    2Ψ(N−1)/N elements per step — but one reduce-scatter per micro-step: nothing
                full-size may be kept, so gradient accumulation communicates every micro-step
    """

    name = "zero2"
    stage = 2

    def _setup_grads(self, st):
        st.grad_shard = self._alloc(
            self.device, st.layout.shard_size, "gradients", f"{st.name} grad shard"
        )
        for p in st.unit.params:
            p.grad = None  # backward allocates them; we reduce and drop them unit by unit

    def _on_grad(self, p):
        # A full-size gradient waiting for its unit's reduce-scatter: the bucket in flight.
        if not self.device.holds(p.grad):
            self.device.register(p.grad, "buffers", "gradient bucket")

    def _unit_grads_ready(self, st):
        # Stage 2 reduces every micro-step (no no_sync): nothing full-size may be kept.
        self._reduce_unit(st)
        st.reduced = True

    def _reduce_unit(self, st):
        flat = self._alloc(self.device, st.layout.padded, "buffers", f"{st.name} bucket")
        st.layout.pack([p.grad for p in st.unit.params], flat)
        for p in st.unit.params:
            if p.grad is not None and self.device.holds(p.grad):
                self.device.free(p.grad)
            p.grad = None
        out = self._alloc(self.device, st.layout.shard_size, "buffers", "reduce-scatter out")
        self.group.reduce_scatter_avg(flat, out, st.name)
        self.device.free(flat)
        self._accumulate_shard(st, out)
        self.device.free(out)

    def _accumulate_shard(self, st, reduced):
        """Add this micro-step's reduced shard to the gradient shard (in its format)."""
        add_into(st.grad_shard, reduced)

    def _after_backward(self):
        for st in self.units:
            if not st.reduced and any(p.grad is not None for p in st.unit.params):
                self._reduce_unit(st)
            st.ready = 0
            st.reduced = False

    def _zero_grad(self):
        for st in self.units:
            st.grad_shard[...] = 0
            for p in st.unit.params:
                p.grad = None

    def theory(self) -> dict:
        t = super().theory()
        t["gradients"] = self.precision.itemsize * self.n_params / self.group.factor
        return t

    def theory_comm_bytes(self, accum_steps: int = 1) -> float:
        """One reduce-scatter per micro-step, one all-gather per step."""
        return self.precision.itemsize * self.group.elements_sent(self.n_params, accum_steps, 1)
