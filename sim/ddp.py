"""Distributed data parallelism (DDP): every rank a full replica, gradients averaged.

Each of N ranks holds the whole model and optimizer and runs forward and backward on its own
1/N of the global batch. If their gradients are averaged before the optimizer step,

    ḡ = (1/N) Σᵣ gᵣ = ∇ (1/N) Σᵣ Lᵣ = ∇ L(global batch)       (equal-sized local batches)

every rank applies the same update to the same parameters, and the run is mathematically the
one-process run with batch B. Memory per rank is unchanged — 4Ψ parameters + 4Ψ gradients +
8Ψ Adam states (fp32, Ψ parameters) — only time is divided. Communication is one all-reduce
of the Ψ gradient elements per step; a ring all-reduce sends 2Ψ(N−1)/N elements per rank.

Two versions, naive first:

* `NaiveDDP` — after backward, one all-reduce per parameter, in order. Correct, but many small
  messages (each paying the link latency) and no overlap with compute.
* `DDP` — PyTorch's design (Li et al. 2020, "PyTorch Distributed"): parameters and gradients
  are laid out in *buckets* of ~25 MB, in reverse order of the parameters (the order backward
  produces their gradients); gradients are views into the bucket buffers, and a bucket's
  all-reduce is launched the moment backward has finished all of its gradients — so the
  communication of the last layers overlaps the backward of the first ones (on the simulated
  timeline). `no_sync()` skips the all-reduce for gradient accumulation.

DDP is the first rung of a ladder that sim/zero.py climbs: ZeRO-1, -2 and -3 remove, one kind
of state at a time, the N identical copies that DDP keeps.
"""

from __future__ import annotations

from sim.flat import FlatLayout
from sim.strategy import ShardOptimizer, ShardState, Strategy


class NaiveDDP(Strategy):
    """One all-reduce per parameter after backward."""

    name = "naive-ddp"
    stage = 0

    def _setup(self):
        for name, p in self.named_params:
            self.device.register(p.data, "parameters", name)
        self._opt = []
        for name, p in self.named_params:
            layout = FlatLayout([name], [p.shape], 1)
            self._opt.append(
                (
                    p,
                    ShardOptimizer(
                        p.data.reshape(-1),
                        layout,
                        0,
                        [self.decay_flag[id(p)]],
                        self.device,
                        name,
                        copy_tag=self.precision.master_tag,
                    ),
                )
            )
            p.register_post_accumulate_grad_hook(self._charge_grad)

    def _charge_grad(self, p):
        if not self.device.holds(p.grad):
            self.device.register(p.grad, "gradients", "grad")

    def _after_backward(self):
        if not self._sync:
            return
        for name, p in self.named_params:
            if p.grad is not None:
                self._comm(self.world.all_reduce(p.grad, "avg"), f"all-reduce {name}")

    def _grad_shards(self):
        return [(p.grad, True) for _, p in self.named_params if p.grad is not None]

    def _norm_group(self):
        return None  # every rank holds the whole (already averaged) gradient

    def _optimizer_step(self):
        with_grad = [(p, opt) for p, opt in self._opt if p.grad is not None]
        for (p, opt), (g, _) in zip(with_grad, self.grads32()):
            opt.step(
                g.reshape(-1), self.step_count, self.lr, self.betas, self.eps, self.weight_decay
            )
            opt.publish(p.data.reshape(-1))
        self._adam_time(self.n_params)

    def _zero_grad(self):
        for _, p in self.named_params:
            if p.grad is not None:
                p.grad[...] = 0

    def theory(self) -> dict:
        """Every rank holds everything: bΨ + bΨ + KΨ (fp32 Adam: 4Ψ + 4Ψ + 8Ψ)."""
        psi = self.n_params
        b = self.precision.itemsize
        return {
            "parameters": b * psi,
            "gradients": b * psi,
            "optimizer_states": self.precision.optimizer_bytes * psi,
        }

    # ---- checkpoints (sim/checkpoint.py): every rank holds everything; rank 0 writes ---------
    def writes_checkpoint(self) -> bool:
        return self.rank == 0

    def full_state_dict(self) -> dict:
        return self._model_state_copy()

    def shard_state(self) -> list:
        """(name, layout, shard index, param, exp_avg, exp_avg_sq) per flat group."""
        return [
            ShardState(name, FlatLayout([name], [p.shape], 1), 0, opt.params, opt.m, opt.v)
            for (name, _), (p, opt) in zip(self.named_params, self._opt)
        ]

    def load_full_state(self, params: dict, exp_avg: dict, exp_avg_sq: dict, step: int) -> None:
        for (name, _), (p, opt) in zip(self.named_params, self._opt):
            opt.params[...] = params[name].reshape(-1)
            opt.publish(p.data.reshape(-1))
            opt.m[...] = exp_avg[name].reshape(-1)
            opt.v[...] = exp_avg_sq[name].reshape(-1)
        self.step_count = step

    def theory_comm_bytes(self, accum_steps: int = 1) -> float:
        """One ring all-reduce of the Ψ gradient elements per step: 2Ψ(N−1)/N, × b bytes."""
        n = self.size
        return self.precision.itemsize * 2 * self.n_params * (n - 1) / n


class Bucket:
    """Consecutive parameters (in reverse model order) sharing one flat param/grad buffer."""

    def __init__(self, index, names, params):
        self.index, self.names, self.params = index, names, params
        self.layout = FlatLayout(names, [p.shape for p in params], 1)
        self.ready = 0
        self.launched = False


class DDP(Strategy):
    """Bucketed all-reduce, launched as soon as backward completes each bucket."""

    name = "ddp"
    stage = 0

    def __init__(self, model, world, *, bucket_cap_mb: float = 25.0, **kwargs):
        self.bucket_cap_bytes = int(bucket_cap_mb * 2**20)
        super().__init__(model, world, **kwargs)

    def _setup(self):
        # Reverse parameter order: roughly the order in which backward finishes gradients.
        order = list(reversed(self.named_params))
        groups, cur, size = [], [], 0
        for name, p in order:
            if cur and size + p.data.nbytes > self.bucket_cap_bytes:
                groups.append(cur)
                cur, size = [], 0
            cur.append((name, p))
            size += p.data.nbytes
        if cur:
            groups.append(cur)
        self.buckets = []
        self._bucket_of = {}
        dtype = self.precision.storage_dtype
        for i, group in enumerate(groups):
            b = Bucket(i, [n for n, _ in group], [p for _, p in group])
            b.param_flat = self.device.allocate(
                (b.layout.padded,), dtype, "parameters", f"bucket {i} params"
            )
            b.grad_flat = self.device.allocate(
                (b.layout.padded,), dtype, "gradients", f"bucket {i} grads"
            )
            b.layout.pack([p.data for p in b.params], b.param_flat)
            for p, pv, gv in zip(
                b.params, b.layout.views(b.param_flat), b.layout.views(b.grad_flat)
            ):
                p.data = pv  # the parameter now lives in the bucket
                p.grad = gv  # backward accumulates straight into the bucket
                self._bucket_of[id(p)] = b
                p.register_post_accumulate_grad_hook(self._grad_ready)
            b.opt = ShardOptimizer(
                b.param_flat,
                b.layout,
                0,
                [self.decay_flag[id(p)] for p in b.params],
                self.device,
                f"bucket {i}",
                copy_tag=self.precision.master_tag,
            )
            self.buckets.append(b)

    def _grad_ready(self, p):
        b = self._bucket_of[id(p)]
        b.ready += 1
        if b.ready == len(b.params):
            self._launch(b)

    def _launch(self, b):
        b.ready = 0
        if self._sync and not b.launched:
            b.launched = True
            self._comm(self.world.all_reduce(b.grad_flat, "avg"), f"all-reduce bucket {b.index}")

    def _after_backward(self):
        # Buckets with a parameter that received no gradient (unused in this forward) would
        # never fill; reduce them now so every rank takes part in the same collectives.
        for b in self.buckets:
            if self._sync and not b.launched:
                self._launch(b)
            b.ready = 0
            b.launched = False

    def _grad_shards(self):
        return [(b.grad_flat, True) for b in self.buckets]

    def _norm_group(self):
        return None

    def _optimizer_step(self):
        for b, (g, _) in zip(self.buckets, self.grads32()):
            b.opt.step(g, self.step_count, self.lr, self.betas, self.eps, self.weight_decay)
            b.opt.publish(b.param_flat)
        self._adam_time(self.n_params)

    def _zero_grad(self):
        for b in self.buckets:
            b.grad_flat[...] = 0
            for p, gv in zip(b.params, b.layout.views(b.grad_flat)):
                p.grad = gv  # in case anything set it to None

    theory = NaiveDDP.theory
    theory_comm_bytes = NaiveDDP.theory_comm_bytes
    writes_checkpoint = NaiveDDP.writes_checkpoint
    full_state_dict = NaiveDDP.full_state_dict

    def shard_state(self) -> list:
        return [
            ShardState(f"bucket{b.index}", b.layout, 0, b.opt.params, b.opt.m, b.opt.v)
            for b in self.buckets
        ]

    def load_full_state(self, params: dict, exp_avg: dict, exp_avg_sq: dict, step: int) -> None:
        for b in self.buckets:
            b.layout.pack([params[n] for n in b.names], b.opt.params)  # fp32 (master)
            b.opt.publish(b.param_flat)
            b.layout.pack([exp_avg[n] for n in b.names], b.opt.m)
            b.layout.pack([exp_avg_sq[n] for n in b.names], b.opt.v)
        self.step_count = step
