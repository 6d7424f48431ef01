"""What every data-parallel strategy shares: the training-loop API, the ledgers and the clock.

DDP and the ZeRO stages differ only in *where* parameters, gradients and optimizer states live
and *which* collectives move them. Everything else is here, so that the training loop reads the
same for all of them:

    strategy = ZeRO3(model, world, lr=..., device_memory=...)
    for step in range(steps):
        strategy.zero_grad()                       # a new step: counters reset
        for micro in range(accum):
            with strategy.no_sync(micro < accum - 1):
                _, loss = strategy(x, y)           # forward (the model's own signature)
                strategy.backward(loss / accum)
        strategy.clip_grad_norm_(1.0)
        strategy.step()                            # optimizer; parameters up to date after it
        stats = strategy.step_stats()              # bytes sent, simulated seconds, memory

Measured per rank (the "simulated GPU"):

* memory — a `sim.device.Device` ledger: each strategy registers its parameter, gradient and
  optimizer-state buffers under their tags; `ActivationTracker` charges what autograd saves
  for backward; a `Host` ledger holds what is offloaded;
* communication — the world communicator's byte counters (sim.comm);
* time — a `sim.cost.Timeline` on a hardware profile: compute from the FLOPs that actually ran
  (tinyllm.accounting.FlopCounter), each collective on a communication stream that overlaps
  compute, host↔device copies on a copy stream.

The optimizer is AdamW (decoupled weight decay on parameters with ≥ 2 dims, nanoGPT's
grouping), applied by the one pure update function tinyllm.kernels.adam_step to whatever
arrays the strategy owns: whole parameters, shards, or host copies. A half-precision model is
handled in one place, `sim.precision.MixedPrecision` (fp32 masters, gradients cast up).

Checkpoints (sim/checkpoint.py) need four things of every strategy, declared here:
`writes_checkpoint()`, `shard_state()`, `load_full_state(...)` and `full_state_dict()`.
"""

from __future__ import annotations

import contextlib
import time
from typing import NamedTuple

import numpy as np

from sim.cost import Timeline, get_profile
from sim.device import ActivationTracker, Device, Host
from sim.flat import FlatLayout
from sim.precision import MixedPrecision
from tinyllm import kernels
from tinyllm.accounting import FlopCounter
from tinyllm.optim.clip import clip_coefficient
from tinyllm.precision.mixed import write_model_params_


class ShardOptimizer:
    """AdamW state for one flat buffer's shard, and the update applied to it segment by segment.

    `params` is the shard of the model's parameters this optimizer owns. The update runs on
    `self.params`: the shard itself (fp32 training, on the device), or — with `copy_tag` — an
    fp32 copy allocated in `ledger` under that tag: the host's copy after offload, or the fp32
    *master* weights of mixed precision (counted with the optimizer states: the ZeRO paper's
    K = 12 = 4 master + 4 m + 4 v bytes). `publish(dst)` writes the updated copy back into the
    model's storage, rounding to half precision where the model is half. `m`, `v` (fp32) are
    allocated in `ledger` under "optimizer_states". `segments` say which elements belong to
    which parameter, so weight decay applies only to matrices.
    """

    def __init__(
        self,
        params: np.ndarray,
        layout: FlatLayout,
        shard: int,
        decay_flags,
        ledger,
        label: str,
        copy_tag: str | None = None,
    ):
        if copy_tag is None:
            self.params = params
        else:
            fmt = MixedPrecision(params.dtype)
            self.params = ledger.allocate(
                params.shape, fmt.master_dtype, copy_tag, f"{label} fp32 copy"
            )
            self.params[...] = fmt.to_master(params)
        self.m = ledger.allocate(
            params.shape, self.params.dtype, "optimizer_states", f"{label} exp_avg"
        )
        self.v = ledger.allocate(
            params.shape, self.params.dtype, "optimizer_states", f"{label} exp_avg_sq"
        )
        self.segments = [
            (seg.lo, seg.hi, bool(decay_flags[seg.index])) for seg in layout.segments(shard)
        ]

    def publish(self, dst: np.ndarray) -> None:
        """Write the updated parameters into `dst` (the model's storage), if they are a copy."""
        if self.params is not dst:
            write_model_params_(dst, self.params)

    def step(self, grads: np.ndarray, step: int, lr, betas, eps, weight_decay) -> None:
        for lo, hi, decay in self.segments:
            kernels.adam_step(
                self.params[lo:hi],
                grads[lo:hi],
                self.m[lo:hi],
                self.v[lo:hi],
                step,
                lr,
                betas[0],
                betas[1],
                eps,
                weight_decay if decay else 0.0,
                True,
            )


class ShardState(NamedTuple):
    """One flat group of what a rank owns, as a checkpoint stores it (`Strategy.shard_state`)."""

    name: str  # the group's name (a ZeRO unit, a DDP bucket)
    layout: FlatLayout  # its parameters end to end; layout.n_shards ranks share it
    shard: int  # which of the n_shards this rank holds
    param: np.ndarray  # the parameters of that shard, in the optimizer's dtype (fp32 masters)
    exp_avg: np.ndarray  # Adam's m for the same elements
    exp_avg_sq: np.ndarray  # Adam's v


class Strategy:
    """Base class: see the module docstring. Subclasses set `name`, `stage` and the hooks."""

    name = "base"
    stage = None

    def __init__(
        self,
        model,
        world,
        *,
        lr: float = 1e-3,
        betas=(0.9, 0.95),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        device_memory: int | None = None,
        profile: str = "A100-80GB",
        broadcast_init: bool = True,
        loss_scaler=None,
    ):
        self.model = model
        self.world = world
        self.rank, self.size = world.rank, world.size
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay
        self.profile = get_profile(profile)
        capacity = self.profile.memory_bytes if device_memory is None else int(device_memory)
        self.device = Device(capacity, rank=self.rank)
        self.host = Host(rank=self.rank)
        self.named_params = list(model.named_parameters())
        self.n_params = sum(p.numel() for _, p in self.named_params)
        # The model's format; a half model trains with fp32 masters (sim/precision.py).
        self.precision = MixedPrecision(self.named_params[0][1].data.dtype)
        self.timeline = Timeline(self.profile, dtype=self.precision.compute_dtype)
        self.scaler = loss_scaler  # GradScaler (fp16) or None
        self.skipped_steps = 0
        self._g32, self._g32_buffers = None, []  # this step's fp32 gradients
        self.decay_flag = {id(p): p.ndim >= 2 for _, p in self.named_params}
        self.flops = FlopCounter()
        self._flops_placed = self._step_flops_start = 0  # cumulative FLOP counts
        self._pending_comm = []  # timeline events the optimizer must wait for
        self._step_wall = 0.0
        self.step_count = 0
        self._sync = True
        self.host_transfer_bytes = 0
        self._last_stats = {}
        if broadcast_init:
            # Every rank starts from rank 0's parameters (DDP's constructor does the same).
            for _, p in self.named_params:
                self.world.broadcast(p.data, root=0)
            self.world.stats.reset()
        self._setup()
        self.activations = ActivationTracker(self.device)
        self._observers = contextlib.ExitStack()
        self._observers.enter_context(self.flops)
        self._observers.enter_context(self.activations)

    # ---- to be provided by each strategy ----------------------------------------------------
    def _setup(self) -> None:
        raise NotImplementedError

    def _after_backward(self) -> None:
        pass

    def _grad_shards(self):
        """(array, counted) pairs: every gradient array this rank holds; the squares of those
        with counted=True sum, over the norm group, to ‖g‖² (a replicated array is counted on
        one rank only, but scaled on all)."""
        raise NotImplementedError

    def _optimizer_step(self) -> None:
        raise NotImplementedError

    def _zero_grad(self) -> None:
        raise NotImplementedError

    # ---- the training-loop API --------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        return self.model(*args, **kwargs)  # forward, with the model's own signature

    def backward(self, loss) -> None:
        if self.scaler is not None:
            loss = self.scaler.scale(loss)  # fp16: lift small gradients above underflow
        loss.backward()
        self._after_backward()
        self._place_compute("backward")

    @contextlib.contextmanager
    def no_sync(self, active: bool = True):
        """Inside, backward accumulates gradients locally without communicating (gradient
        accumulation); strategies that must reduce every micro-step ignore it."""
        prev = self._sync
        self._sync = not active
        try:
            yield
        finally:
            self._sync = prev

    def zero_grad(self) -> None:
        """Start a new step: clear gradients, counters, the timeline."""
        self._zero_grad()
        self.world.stats.reset()
        self.timeline.reset()
        self._flops_placed = self._step_flops_start = self.flops.total()
        self._pending_comm = []
        self._g32 = None
        self.host_transfer_bytes = 0
        self._step_wall = time.perf_counter()

    def clip_grad_norm_(self, max_norm: float) -> float:
        """Global-norm clipping across all shards: each rank sums the squares of the gradient
        elements it owns, one all-reduce adds them up, every rank scales by the same factor."""
        sq = np.zeros(1, dtype=np.float64)
        shards = self.grads32()
        for g, counted in shards:
            if counted:
                g64 = g.astype(np.float64, copy=False).reshape(-1)
                sq[0] += float(np.dot(g64, g64))
        group = self._norm_group()
        if group is not None and group.size > 1:
            self._comm(group.all_reduce(sq), "grad-norm all-reduce", wait=True)
        norm = float(np.sqrt(sq[0]))
        coef = clip_coefficient(norm, max_norm) if np.isfinite(norm) else 1.0
        if coef < 1.0:
            for g, _ in shards:
                g *= coef
        self.last_grad_norm = norm
        return norm

    def grads32(self) -> list:
        """This step's gradients as fp32 arrays, aligned with `_grad_shards()` (same flags): the
        shards themselves in fp32 training; with a half-precision model, fp32 copies (transient
        device buffers) — the "cast gradients up before the update" of mixed precision — and,
        with a loss scaler, divided by the loss scale."""
        if self._g32 is None:
            self._before_grads32()
            self._g32, self._g32_buffers = self.precision.gradients_for_update(
                self._grad_shards(), self.device, self.scaler
            )
        return self._g32

    def _before_grads32(self) -> None:
        """Hook: last moves before the gradients are read (ZeRO-Offload copies them to the host)."""

    def _release_grads32(self) -> None:
        for buf in self._g32_buffers:
            self.device.free(buf)
        self._g32, self._g32_buffers = None, []

    def _norm_group(self):
        """The ranks whose gradient shards together make up the whole gradient (None: this
        rank holds all of it)."""
        return self.world

    def step(self) -> None:
        self._place_compute("backward")
        self.timeline.wait(self._pending_comm)
        grads = self.grads32()
        if self.scaler is not None:
            # Dynamic loss scaling: every rank checks its own gradients; one all-reduce makes
            # them agree, so all skip (and halve the scale) or all step.
            flag = np.array(
                [float(any(not np.all(np.isfinite(g)) for g, _ in grads))], dtype=np.float32
            )
            if self.size > 1:
                self._comm(self.world.all_reduce(flag), "inf/NaN check", wait=True)
            found_inf = bool(flag[0] > 0)
            self.scaler.update_found_inf(found_inf)
            if found_inf:
                self.skipped_steps += 1
                self._release_grads32()
                self.timeline.synchronize()
                self._step_wall = time.perf_counter() - self._step_wall
                return
        self.step_count += 1
        self._optimizer_step()
        self._release_grads32()
        self.timeline.synchronize()
        self._step_wall = time.perf_counter() - self._step_wall

    def set_lr(self, lr: float) -> None:
        self.lr = lr

    # ---- clock ------------------------------------------------------------------------------
    def _place_compute(self, label: str):
        """Put the FLOPs counted since the last call on the compute stream."""
        total = self.flops.total()
        delta = total - self._flops_placed
        if delta > 0:
            self.timeline.compute(delta, label)
            self._flops_placed = total

    def _comm(self, record, label: str, wait: bool = False):
        """Place a collective on the comm stream after the compute so far; optionally make the
        compute stream wait for it (data needed right away, e.g. gathered parameters)."""
        self._place_compute("compute")
        ev = self.timeline.communicate(record, label)
        if wait:
            self.timeline.wait([ev])
        else:
            self._pending_comm.append(ev)
        return ev

    def _transfer(self, nbytes: int, label: str, wait: bool = True):
        self._place_compute("compute")
        self.host_transfer_bytes += int(nbytes)
        ev = self.timeline.transfer(nbytes, label)
        if wait:
            self.timeline.wait([ev])
        return ev

    def _adam_time(self, n_elements: int, label: str = "adam"):
        """Adam's update on the device's compute stream, as ~12 FLOPs per element. (A
        simplification: the real kernel is bound by memory bandwidth — it reads param, grad, m,
        v and writes param, m, v — which the profiles do not model.)"""
        self.timeline.compute(12 * n_elements, label)

    # ---- reports ------------------------------------------------------------------------------
    def theory(self) -> dict:
        """The ZeRO paper's model-state bytes for this strategy (fp32 Adam: 4 + 4 + 8 bytes)."""
        raise NotImplementedError

    def memory_report(self) -> dict:
        """Peak bytes per tag on the device ledger, plus its peak total and the host's bytes."""
        d = dict(self.device.peak)
        d["peak"] = self.device.peak_total
        d["host"] = self.host.peak_total
        return d

    def step_stats(self) -> dict:
        total = self.world.stats.total
        return {
            "bytes_sent": int(total.bytes_sent),
            "bytes_recv": int(total.bytes_recv),
            "messages_sent": int(total.messages_sent),
            "host_transfer_bytes": self.host_transfer_bytes,
            "flops": self.flops.total() - self._step_flops_start,
            "simulated_seconds": self.timeline.elapsed,
            "timeline": self.timeline.summary(),
            "wall_seconds": self._step_wall,
        }

    # ---- the checkpoint protocol (sim/checkpoint.py uses only these) -------------------------
    def writes_checkpoint(self) -> bool:
        """True on the ranks that write a shard file: together they hold every shard exactly
        once (DDP: rank 0 alone; ZeRO: the ranks of the first replica)."""
        raise self._not_implemented("writes_checkpoint")

    def shard_state(self) -> list[ShardState]:
        """What this rank owns, one `ShardState` per flat group: the layout, which shard of it
        this rank holds, and that shard's optimizer-dtype parameters and Adam moments. Every
        rank returns the same names and layouts; only the shards differ."""
        raise self._not_implemented("shard_state")

    def load_full_state(self, params: dict, exp_avg: dict, exp_avg_sq: dict, step: int) -> None:
        """Take this rank's part of a consolidated (single-process) state — name → full array
        of the parameters (fp32 masters for a half model) and of Adam's m and v, whatever world
        size saved it — into the optimizer and the model; the step count becomes `step`."""
        raise self._not_implemented("load_full_state")

    def full_state_dict(self) -> dict:
        """The single-process state dict, name → a copy of each array (parameters gathered
        where they are sharded: then collective — every rank must call it)."""
        raise self._not_implemented("full_state_dict")

    def _not_implemented(self, method: str) -> NotImplementedError:
        return NotImplementedError(
            f"{type(self).__name__} does not implement {method}() of "
            f"the checkpoint protocol (sim/strategy.py)"
        )

    def _model_state_copy(self) -> dict:
        """full_state_dict() of a strategy whose every rank holds the whole model."""
        return {k: np.array(v) for k, v in self.model.state_dict().items()}

    def close(self) -> None:
        """Remove the graph observers (FLOP counter, activation tracker)."""
        self._observers.close()
