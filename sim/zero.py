"""ZeRO: removing the redundancy of data parallelism, one kind of state at a time.

In DDP every one of N ranks keeps an identical copy of all model states: 4Ψ bytes of fp32
parameters, 4Ψ of gradients and 8Ψ of Adam moments (K = 8 bytes of optimizer state per
parameter). ZeRO (Rajbhandari et al. 2019) *partitions* them: rank r keeps only shard r of each
flat buffer (sim/flat.py) and gets the rest from its peers exactly when it is needed. A ladder:

    stage   partitioned                 model-state bytes per rank (fp32 Adam)    sent per rank
    DDP     —                           4Ψ + 4Ψ + 8Ψ                              2Ψ(N−1)/N
    1       optimizer states            4Ψ + 4Ψ + 8Ψ/N                            2Ψ(N−1)/N
    2       + gradients                 4Ψ + (4 + 8)Ψ/N                           2Ψ(N−1)/N
    3       + parameters                (4 + 4 + 8)Ψ/N + the gathered layers      3Ψ(N−1)/N

(communication in elements; ×4 for bytes.) Each stage is a class that adds one idea:

* `ZeRO1` — each rank owns 1/N of the optimizer state. After backward the gradients are
  *reduce-scattered* (each rank receives the average of its own shard: half an all-reduce),
  each rank updates its parameter shard, and the shards are *all-gathered* back into every
  rank's full parameters (the other half). Same volume as DDP's all-reduce.
* `ZeRO2` — also the gradients: each unit's (transformer block's) gradients are reduce-scattered
  as soon as backward has produced them, and the full-size gradients are dropped; a rank only
  ever keeps the gradient shard it owns (plus the one bucket in flight).
* `ZeRO3` — also the parameters (what PyTorch calls FSDP): a rank stores only its shards; each
  unit's full parameters are all-gathered just before its forward and again just before its
  backward, and freed after each use. `reshard_after_forward=False` keeps them from forward to
  backward instead — more memory, one all-gather less (2Ψ(N−1)/N). `prefetch=True` gathers the
  next unit while the current one computes (more memory held, communication hidden).

Two options apply to all stages:

* offload (Ren et al. 2021, ZeRO-Offload): `offload="optimizer"` keeps the Adam moments, an
  fp32 master copy of the parameter shard and the gradient shard in host memory; gradients go
  device→host after the reduce-scatter, the Adam step runs on the CPU (the same numba kernel),
  and the updated shard goes host→device. `offload="params"` (stage 3) also keeps the parameter
  shards on the host and copies them up before each all-gather. Copies are counted and costed
  on the PCIe link.
* hybrid sharding (`sharding_factor=F`): shard within groups of F consecutive ranks and
  replicate across the N/F groups; gradients are reduce-scattered inside a group and the shard
  all-reduced across groups. F = 1 is DDP's memory, F = N is full sharding; the formulas above
  hold with N → F for the memory, plus 2(Ψ/F)(N/F−1)/(N/F) elements for the cross-group
  all-reduce.

Simplifications, said plainly: collectives run synchronously here (the overlap is modelled on
the cost model's timeline, not real); ZeRO-3's "freed" parameters are released in the ledger and
overwritten with NaN — so any use before the next gather would show up as NaN losses — but the
NumPy buffer is reused for the next gather rather than returned to the allocator; activation
memory is not partitioned (that is ZeRO-R, not implemented).
"""
from __future__ import annotations

import numpy as np

from sim.flat import FlatLayout, split_units
from sim.collectives import add_into
from sim.strategy import ShardOptimizer, Strategy
from tinyllm.dtypes import logical_dtype, to_float32, to_storage
from tinyllm.precision.mixed import write_model_params_
from tinyllm.engine import Function, Tensor

OFFLOAD_CHOICES = ("none", "optimizer", "params")


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


class UnitState:
    """One unit's flat layout and the buffers this rank holds for it."""

    def __init__(self, unit, layout):
        self.unit, self.layout = unit, layout
        self.name = unit.name
        self.ready = 0          # parameters whose gradient backward has finished
        self.gathered = False   # ZeRO-3: full parameters present on the device


class ZeRO1(Strategy):
    """Stage 1: optimizer states partitioned (4Ψ + 4Ψ + 8Ψ/N)."""

    name = "zero1"
    stage = 1
    shards_gradients = False
    shards_parameters = False

    def __init__(self, model, world, *, sharding_factor: int | None = None,
                 offload: str = "none", reshard_after_forward: bool = True,
                 prefetch: bool = False, **kwargs):
        if offload not in OFFLOAD_CHOICES:
            raise ValueError(f"offload must be one of {OFFLOAD_CHOICES}, got {offload!r}")
        if offload == "params" and not self.shards_parameters:
            raise ValueError(f"offload='params' needs stage 3 (parameters are partitioned only "
                             f"there); {self.name} can offload 'optimizer'")
        f = world.size if sharding_factor is None else int(sharding_factor)
        if f < 1 or world.size % f:
            raise ValueError(f"sharding_factor {f} must divide the world size {world.size}")
        self.factor = f
        self.offload = offload
        self.reshard_after_forward = reshard_after_forward
        self.prefetch = prefetch
        # Shard groups: F consecutive ranks; replica groups: the ranks with the same position
        # in their shard group. Every rank is in exactly one of each.
        self.shard_comm = world.split(world.rank // f, world.rank)
        self.replica_comm = world.split(world.rank % f, world.rank)
        self.shard_rank = self.shard_comm.rank
        super().__init__(model, world, **kwargs)

    # ---- layout -----------------------------------------------------------------------------
    def _setup(self):
        self.units = []
        self._unit_of = {}
        for unit in split_units(self.model):
            layout = FlatLayout(unit.names, [p.shape for p in unit.params], self.factor)
            st = UnitState(unit, layout)
            for p in unit.params:
                self._unit_of[id(p)] = st
                p.register_post_accumulate_grad_hook(self._grad_ready)
            self.units.append(st)
        self.dtype = self.storage_dtype   # the model's storage: float32, float16 or bf16 bits
        for st in self.units:
            self._setup_params(st)
            self._setup_grads(st)
            self._setup_optimizer(st)

    def _alloc(self, ledger, n, tag, label, dtype=None):
        return ledger.allocate((n,), self.dtype if dtype is None else dtype, tag, label)

    def _setup_params(self, st):
        """Stages 1–2: the full parameters stay on every rank, as views into a flat buffer."""
        st.param_flat = self._alloc(self.device, st.layout.padded, "parameters", f"{st.name} params")
        st.layout.pack([p.data for p in st.unit.params], st.param_flat)
        for p, view in zip(st.unit.params, st.layout.views(st.param_flat)):
            p.data = view
        lo, hi = st.layout.shard_range(self.shard_rank)
        st.param_shard = st.param_flat[lo:hi]   # the part this rank updates

    def _setup_grads(self, st):
        """Stage 1: full gradients, accumulated in place into a flat buffer (like DDP)."""
        st.grad_flat = self._alloc(self.device, st.layout.padded, "gradients", f"{st.name} grads")
        for p, view in zip(st.unit.params, st.layout.views(st.grad_flat)):
            p.grad = view
        lo, hi = st.layout.shard_range(self.shard_rank)
        st.grad_shard = st.grad_flat[lo:hi]
        if self.offload != "none":
            # on the host, gradients are fp32 (a half model's are cast up as they arrive)
            st.host_grad = self._alloc(self.host, st.layout.shard_size, "gradients",
                                       f"{st.name} grad shard", self._host_dtype())

    def _setup_optimizer(self, st):
        """Adam on our shard: on the device, or (offload) on the host with an fp32 copy of the
        parameters — the master weights, counted as optimizer state in mixed precision."""
        flags = [self.decay_flag[id(p)] for p in st.unit.params]
        if self.offload == "none":
            ledger, copy_tag = self.device, self.master_tag
        else:
            ledger, copy_tag = self.host, self._host_copy_tag()
        st.opt = ShardOptimizer(st.param_shard, st.layout, self.shard_rank, flags, ledger,
                                st.name, copy_tag=copy_tag)

    def _host_copy_tag(self):
        return "optimizer_states" if self.mixed else "parameters"

    def _host_dtype(self):
        """What the host computes in: fp32 for a half model, else the model's own dtype."""
        return np.float32 if self.mixed else self.dtype

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

    def _reduce_scatter_avg(self, send, recv, label):
        """recv ← this rank's shard of the average over all N ranks of `send`."""
        if self.shard_comm.size > 1:
            self._comm(self.shard_comm.reduce_scatter(send, recv, "avg"), f"reduce-scatter {label}")
        else:
            recv[...] = send
        if self.replica_comm.size > 1:
            self._comm(self.replica_comm.all_reduce(recv, "avg"), f"all-reduce {label} (replicas)")

    def _reduce_unit(self, st):
        """Stage 1: reduce-scatter the unit's full gradient; keep the average of our shard."""
        tmp = self._alloc(self.device, st.layout.shard_size, "buffers", "reduce-scatter out")
        self._reduce_scatter_avg(st.grad_flat, tmp, st.name)
        st.grad_shard[...] = tmp
        self.device.free(tmp)

    def _after_backward(self):
        for st in self.units:
            if self._sync and not getattr(st, "reduced", False):
                self._reduce_unit(st)      # a unit with an unused parameter never filled up
            st.ready = 0
            st.reduced = False

    # ---- optimizer ------------------------------------------------------------------------------
    def _grad_shards(self):
        return [(st.grad_shard if self.offload == "none" else st.host_grad, True)
                for st in self.units]

    def _before_grads32(self):
        if self.offload != "none":
            self._grads_to_host()

    def _grads_to_host(self):
        for st in self.units:
            st.host_grad[...] = to_float32(st.grad_shard) if self.mixed else st.grad_shard
            self._transfer(st.grad_shard.nbytes, f"{st.name} grad shard → host")

    def _norm_group(self):
        return self.shard_comm

    def _optimizer_step(self):
        import time
        t0 = time.perf_counter()
        for st, (grads, _) in zip(self.units, self.grads32()):
            st.opt.step(grads, self.step_count, self.lr, self.betas, self.eps, self.weight_decay)
        n_owned = sum(st.layout.shard_size for st in self.units)
        if self.offload == "none":
            self._adam_time(n_owned, "adam (device)")
        else:
            # The host's Adam runs on this machine's CPU: its measured time is the honest figure.
            self.timeline.add("compute", time.perf_counter() - t0, "adam (host CPU, measured)")
        self._params_to_device()
        self._publish_params()

    def _params_to_device(self):
        """Write each updated copy (host copy, or fp32 master) into the model's shard."""
        for st in self.units:
            st.opt.publish(st.param_shard)
            if self.offload != "none":
                self._transfer(st.param_shard.nbytes, f"{st.name} param shard → device")

    def _publish_params(self):
        """Stages 1–2: all-gather the updated shards into every rank's full parameters."""
        for st in self.units:
            self._all_gather_params(st, st.param_shard, st.param_flat, wait=False)

    def _all_gather_params(self, st, shard, full, wait):
        if self.shard_comm.size == 1:
            full[...] = shard
            return
        if not np.shares_memory(shard, full):
            self._comm(self.shard_comm.all_gather(shard, full), f"all-gather {st.name}", wait=wait)
            return
        # The shard is a slice of the full buffer: MPI forbids sending from the buffer being
        # received into, so stage it in a temporary.
        send = self._alloc(self.device, st.layout.shard_size, "buffers", "all-gather in")
        send[...] = shard
        self._comm(self.shard_comm.all_gather(send, full), f"all-gather {st.name}", wait=wait)
        self.device.free(send)

    def _zero_grad(self):
        for st in self.units:
            st.grad_flat[...] = 0
            for p, view in zip(st.unit.params, st.layout.views(st.grad_flat)):
                p.grad = view

    # ---- checkpoints (sim/checkpoint.py): each shard written once, by the first replica ------
    def writes_checkpoint(self) -> bool:
        return self.replica_comm.rank == 0

    def shard_state(self) -> list:
        """(name, layout, shard index, fp32 param shard, exp_avg, exp_avg_sq) per unit."""
        return [(st.name, st.layout, self.shard_rank, st.opt.params, st.opt.m, st.opt.v)
                for st in self.units]

    def load_full_state(self, params: dict, exp_avg: dict, exp_avg_sq: dict, step: int) -> None:
        """Take this rank's shard of a full (consolidated) state — any saving world size."""
        for st in self.units:
            lo, hi = st.layout.shard_range(self.shard_rank)
            full = np.zeros(st.layout.padded, dtype=np.float32 if self.mixed else self.dtype)
            st.layout.pack([params[n] for n in st.unit.names], full)
            st.opt.params[...] = full[lo:hi]      # fp32: the parameters, a copy, or the master
            self._load_params(st, full)
            st.layout.pack([exp_avg[n] for n in st.unit.names], full)
            st.opt.m[...] = full[lo:hi]
            st.layout.pack([exp_avg_sq[n] for n in st.unit.names], full)
            st.opt.v[...] = full[lo:hi]
        self.step_count = step

    def _load_params(self, st, full32):
        write_model_params_(st.param_flat, full32)

    # ---- theory -------------------------------------------------------------------------------
    def _gathered_theory(self) -> int:
        return 0

    def theory(self) -> dict:
        """Model-state bytes per rank from the ZeRO paper's formulas, N → F: with b bytes per
        element (4 in fp32), parameters bΨ, gradients bΨ, Adam's two moments K = 2b."""
        psi, f, b = self.n_params, self.factor, self.itemsize
        p = b * psi / f + self._gathered_theory() if self.shards_parameters else b * psi
        g = b * psi / f if self.shards_gradients else b * psi
        o = self.optimizer_bytes * psi / f
        if self.offload != "none":
            o = 0
            if self.shards_gradients:
                g = 0
        if self.offload == "params":
            p = self._gathered_theory()
        return {"parameters": p, "gradients": g, "optimizer_states": o}

    def theory_comm_bytes(self, accum_steps: int = 1) -> float:
        """Bytes sent per rank per optimizer step (the paper counts elements; × bytes each)."""
        psi, f, r = self.n_params, self.factor, self.size // self.factor
        rs = psi * (f - 1) / f                 # one reduce-scatter in the shard group
        ag = psi * (f - 1) / f                 # one all-gather in the shard group
        ar = 2 * (psi / f) * (r - 1) / r       # all-reduce of a shard across replicas
        reductions = accum_steps if self.shards_gradients else 1
        gathers = self._gathers_per_micro_step() * accum_steps if self.shards_parameters else 1
        return self.itemsize * (reductions * (rs + ar) + gathers * ag)


class ZeRO2(ZeRO1):
    """Stage 2: gradients partitioned too (4Ψ + (4 + 8)Ψ/N): each unit's gradients are
    reduce-scattered as soon as backward finishes them, and only our shard is kept."""

    name = "zero2"
    stage = 2
    shards_gradients = True

    def _setup_grads(self, st):
        if self.offload == "none":
            st.grad_shard = self._alloc(self.device, st.layout.shard_size, "gradients",
                                        f"{st.name} grad shard")
        else:  # streamed to the host as it is reduced; fp32 there
            st.grad_shard = self._alloc(self.host, st.layout.shard_size, "gradients",
                                        f"{st.name} grad shard", self._host_dtype())
        st.host_grad = st.grad_shard if self.offload != "none" else None
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
        self._reduce_scatter_avg(flat, out, st.name)
        self.device.free(flat)
        if self.offload != "none":
            self._transfer(out.nbytes, f"{st.name} grad shard → host")
        if self.offload != "none":
            st.grad_shard += to_float32(out) if self.mixed else out   # across micro-steps
        else:
            add_into(st.grad_shard, out)       # accumulate across micro-steps (in its format)
        self.device.free(out)

    def _after_backward(self):
        for st in self.units:
            if not getattr(st, "reduced", False) and any(p.grad is not None for p in st.unit.params):
                self._reduce_unit(st)
            st.ready = 0
            st.reduced = False

    def _grads_to_host(self):
        pass  # already streamed to the host shard by _reduce_unit

    def _grad_shards(self):
        return [(st.grad_shard, True) for st in self.units]

    def _zero_grad(self):
        for st in self.units:
            st.grad_shard[...] = 0
            for p in st.unit.params:
                p.grad = None


class ZeRO3(ZeRO2):
    """Stage 3 (FSDP): parameters partitioned too ((4 + 4 + 8)Ψ/N + the gathered units):
    each unit is all-gathered just before its forward and its backward and freed after."""

    name = "zero3"
    stage = 3
    shards_parameters = True

    def _setup(self):
        super()._setup()
        self._forward_order = self.units[1:]           # blocks, in forward order
        for st in self.units[1:]:
            self._wrap(st, st.unit.module)
        self._wrap(self.units[0], self.model)           # the root spans the whole forward

    def _setup_params(self, st):
        where = self.host if self.offload == "params" else self.device
        shard = self._alloc(where, st.layout.shard_size, "parameters", f"{st.name} param shard")
        full = np.zeros(st.layout.padded, dtype=self.dtype)
        st.layout.pack([p.data for p in st.unit.params], full)
        lo, hi = st.layout.shard_range(self.shard_rank)
        shard[...] = full[lo:hi]
        st.param_shard = shard
        # The gathered buffer: charged to the device only while gathered (see _gather/_free).
        st.full = full
        for p, view in zip(st.unit.params, st.layout.views(full)):
            p.data = view
        self._poison(st.full)            # not gathered yet: any use would show NaN
        st.gathered = False

    def _poison(self, buf):
        buf[...] = to_storage(np.array([np.nan], np.float32), self.param_format)[0]

    def _host_copy_tag(self):
        if self.offload == "params" and not self.mixed:
            return None                  # the fp32 host shard *is* what Adam updates
        return super()._host_copy_tag()

    # ---- gather / free ------------------------------------------------------------------------
    def _gather(self, st, why: str):
        if st.gathered:
            return
        self.device.register(st.full, "parameters", f"{st.name} gathered")
        shard = st.param_shard
        if self.offload == "params":
            staged = self._alloc(self.device, st.layout.shard_size, "buffers", "param shard (staged)")
            staged[...] = shard
            self._transfer(staged.nbytes, f"{st.name} param shard → device")
            shard = staged
        self._all_gather_params(st, shard, st.full, wait=True)
        if self.offload == "params":
            self.device.free(staged)
        st.gathered = True

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
            strategy._gather(st, "forward")
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
                self._gather(order[i + 1], "prefetch")

    def _hook_outputs(self, st, out):
        def hook():
            self._gather(st, "backward")
            if self.prefetch and st in self._forward_order:
                i = self._forward_order.index(st)
                if i > 0:
                    self._gather(self._forward_order[i - 1], "prefetch")

        def attach(t):
            if isinstance(t, Tensor) and t.requires_grad:
                return _PreBackward.apply(t, hook=hook)
            return t

        if isinstance(out, tuple):
            return tuple(attach(t) for t in out)
        return attach(out)

    def _reduce_unit(self, st):
        super()._reduce_unit(st)
        self._free(st)                   # its backward is done: drop the full parameters

    def _publish_params(self):
        pass  # nothing to broadcast: the next forward gathers the updated shards

    def _params_to_device(self):
        if self.offload == "params":     # the shards stay on the host: nothing crosses PCIe now
            for st in self.units:
                st.opt.publish(st.param_shard)
            return
        super()._params_to_device()

    def _load_params(self, st, full32):
        lo, hi = st.layout.shard_range(self.shard_rank)
        write_model_params_(st.param_shard, full32[lo:hi])

    def _gathers_per_micro_step(self) -> int:
        return 2 if self.reshard_after_forward else 1

    def _gathered_theory(self) -> int:
        """Bytes of full parameters held at the peak: the root unit (needed from the first
        layer to the output head) plus the largest block — two blocks with prefetch, all of
        them when nothing is resharded after forward."""
        sizes = [st.layout.numel for st in self.units[1:]] or [0]
        root = self.units[0].layout.numel
        if not self.reshard_after_forward:
            return self.itemsize * (root + sum(sizes))
        k = 2 if self.prefetch else 1
        return self.itemsize * (root + sum(sorted(sizes)[-k:]))

    def full_state_dict(self) -> dict:
        """The single-process state dict: each unit gathered in turn, its parameters copied
        out under every name they have in the state dict (tied weights included)."""
        sd = self.model.state_dict()
        out = {k: np.array(v) for k, v in sd.items()}       # buffers; parameters overwritten
        for st in self.units:
            was = st.gathered
            self._gather(st, "state dict")
            ids = {id(p.data) for p in st.unit.params}
            for k, v in sd.items():
                if id(v) in ids:
                    out[k] = np.array(v)
            if not was:
                self._free(st)
        return out


STRATEGIES = {0: None, 1: ZeRO1, 2: ZeRO2, 3: ZeRO3}
