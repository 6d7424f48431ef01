"""3D parallelism: data × tensor × pipeline parallelism in one strategy.

`Parallel3D(model, world, dp=, tp=, pp=, micro_batches=, schedule=)` trains a GPT on
dp · tp · pp ranks laid out by sim/topology.py:

1. tensor parallelism inside each block over the tp group (sim/tensor_parallel.py):
   `parallelize_gpt` keeps only this rank's heads and MLP columns;
2. pipeline parallelism over the pp group (sim/pipeline.py): `GPTStage` keeps only this stage's
   blocks, and `PipelineEngine` runs the micro-batches by GPipe or 1F1B;
3. data parallelism over the dp group: each replica gets batch/dp sequences, and after the
   pipeline has flushed the gradients are averaged by one all-reduce of this rank's flat gradient
   buffer (sim/ddp.py's idea with a single bucket and no overlap).

dp = N alone is data parallelism, tp = N alone Megatron tensor parallelism, pp = N alone a
pipeline. Every rank builds the same full GPT from the same seed and keeps its part, so a run is
the one-process run with the same global batch, up to floating-point summation order.

The training loop is the one of every strategy (sim/strategy.py), with one difference: a pipeline
interleaves the forwards and backwards of its micro-batches, so `strategy(x, y)` runs the whole
schedule — forward *and* backward — and returns the mean loss (the same on every rank); then
`strategy.backward(loss)` only finishes the step (the tied-embedding and data-parallel gradient
all-reduces). Gradient accumulation is the pipeline's micro-batching: use more micro-batches.

    strategy.zero_grad()
    _, loss = strategy(x, y)     # x, y: this data-parallel replica's batch/dp sequences
    strategy.backward(loss)
    strategy.clip_grad_norm_(1.0)
    strategy.step()

Memory per rank, by formula (`theory()`, fp32 Adam: 4 + 4 + 8 bytes per parameter held): a
block's split matrices count 1/tp, its LayerNorms and row-parallel biases fully; the stage holds
n_layer/pp blocks; the first stage adds the embeddings, the last ln_f and (pp > 1) its copy of
the tied head. Communication per rank and step, by axis (`theory_comm_bytes_by_axis`; q bytes
per value, m micro-batches of b sequences of T tokens, L_s blocks on this stage, k = 4
all-reduces per block, 6 with activation checkpointing, whose recomputed forward all-reduces
again):

    tp         m · L_s · k · 2(tp−1)/tp · q·b·T·E
    pp         m · q·b·T·E · ([not last stage] + [not first stage])
    embedding  q·V·E on the first and last stage (an all-reduce between two ranks)
    dp         2(dp−1)/dp · q·Ψ_rank

Simplifications, said plainly: every rank builds the whole model before keeping its part (a real
system initializes only its shard, or loads a checkpoint); with dropout > 0 the equivalence with
one process holds for tensor parallelism alone (each rank keeps its heads' part of the
one-process masks, sim/tensor_parallel.py) — pipeline stages and data-parallel replicas draw
from their own generators, per micro-batch, a different (equally valid) random stream; the
data-parallel all-reduce runs after the pipeline has flushed, without overlapping the backward.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sim.cost import Link, Timeline
from sim.flat import FlatLayout
from sim.pipeline import SCHEDULES, GPTStage, PipelineEngine, bubble_fraction, stage_layers
from sim.strategy import ShardOptimizer, Strategy
from sim.tensor_parallel import TPGroup, parallelize_gpt, split_rule
from sim.topology import Topology
from tinyllm.engine import Tensor, is_grad_enabled


def free_links_profile(profile):
    """The same hardware with free messages: isolates a schedule's bubble from communication."""
    free = Link(0.0, float("inf"))
    return dataclasses.replace(
        profile, name=f"{profile.name} (free links)", intra_node=free, inter_node=free
    )


def gpt_params_per_rank(config, tp: int = 1, pp: int = 1, stage: int = 0) -> int:
    """Parameters held by one rank of stage `stage` (the formula of the module docstring)."""
    e, v, t, bias = config.n_embd, config.vocab_size, config.block_size, bool(config.bias)
    # c_attn 3E² (+ 3E), attn c_proj E², c_fc 4E² (+ 4E), mlp c_proj 4E²: split over tp
    split = 12 * e * e + (7 * e if bias else 0)
    replicated = 2 * e + (4 * e if bias else 0)  # ln_1, ln_2 (+ their biases, + 2 row biases)
    lo, hi = stage_layers(config.n_layer, pp)[stage]
    n = (hi - lo) * (split // tp + replicated)
    if stage == 0:
        n += v * e + t * e  # wte, wpe
    if stage == pp - 1:
        n += e + (e if bias else 0) + (v * e if pp > 1 else 0)  # ln_f (+ the head's copy of wte)
    return n


class Parallel3D(Strategy):
    """Data × tensor × pipeline parallelism (see the module docstring)."""

    name = "3d"

    def __init__(
        self,
        model,
        world,
        *,
        dp: int = 1,
        tp: int = 1,
        pp: int = 1,
        micro_batches: int = 1,
        schedule: str = "1f1b",
        checkpoint_activations: bool = False,
        ideal_links: bool = False,
        **kwargs,
    ):
        if schedule not in SCHEDULES:
            raise ValueError(
                f"unknown pipeline schedule {schedule!r}; expected one of {sorted(SCHEDULES)}"
            )
        if micro_batches < 1:
            raise ValueError(f"micro_batches must be ≥ 1, got {micro_batches}")
        self.topo = Topology(world, dp=dp, tp=tp, pp=pp)
        self.dp, self.tp, self.pp = dp, tp, pp
        self.micro_batches, self.schedule = micro_batches, schedule
        self.checkpoint_activations = checkpoint_activations
        self.config = model.config
        self.name = self.describe(dp, tp, pp, schedule, micro_batches, checkpoint_activations)
        self.tp_group = TPGroup(self.topo.tp_comm if tp > 1 else None)
        parallelize_gpt(model, self.tp_group)
        model.gradient_checkpointing = checkpoint_activations
        stage = GPTStage(model, self.topo.coord.pp, pp)
        super().__init__(stage, world, broadcast_init=False, **kwargs)
        if ideal_links:
            self.timeline = Timeline(free_links_profile(self.profile))
        self.tp_group.on_comm = lambda record, label: self._comm(record, label, wait=True)
        self.engine = PipelineEngine(
            stage,
            self.topo.pp_comm if pp > 1 else None,
            self.timeline,
            self._place_compute,
            self.timeline.profile,
        )
        self._last_loss = None
        self.last_bubble: dict = {}

    @staticmethod
    def describe(
        dp: int,
        tp: int,
        pp: int,
        schedule: str = "1f1b",
        micro_batches: int = 1,
        checkpoint_activations: bool = False,
    ) -> str:
        """The strategy's name for a grid, e.g. "dp2×tp2×pp2 1f1b m=4" (axes of size 1 left out)."""
        parts = [f"{axis}{n}" for axis, n in (("dp", dp), ("tp", tp), ("pp", pp)) if n > 1]
        text = "×".join(parts or ["1 rank"])
        if pp > 1:
            text += f" {schedule} m={micro_batches}"
        return text + (" +ckpt" if checkpoint_activations else "")

    # ---- layout: one flat parameter buffer and one flat gradient buffer per rank ---------------
    def _setup(self):
        names = [n for n, _ in self.named_params]
        params = [p for _, p in self.named_params]
        self.dtype = params[0].dtype
        self.layout = FlatLayout(names, [p.shape for p in params], 1)
        self.param_flat = self.device.allocate(
            (self.layout.padded,), self.dtype, "parameters", "stage parameters"
        )
        self.grad_flat = self.device.allocate(
            (self.layout.padded,), self.dtype, "gradients", "stage gradients"
        )
        self.layout.pack([p.data for p in params], self.param_flat)
        for p, pv, gv in zip(
            params, self.layout.views(self.param_flat), self.layout.views(self.grad_flat)
        ):
            p.data, p.grad = pv, gv  # backward accumulates straight into the flat buffer
        self.opt = ShardOptimizer(
            self.param_flat,
            self.layout,
            0,
            [self.decay_flag[id(p)] for p in params],
            self.device,
            "stage",
        )

    # ---- the step ---------------------------------------------------------------------------
    def __call__(self, x, y):
        """(None, mean loss). With gradients enabled this runs the whole schedule, backward
        included; under no_grad it is a forward-only evaluation."""
        if not is_grad_enabled():
            return None, Tensor(np.asarray(self.evaluate(x, y), dtype=self.dtype))
        return None, self.forward_backward(x, y)

    def _micro(self, x, y):
        x, y = np.asarray(x), np.asarray(y)
        b = x.shape[0]
        if b % self.micro_batches:
            raise ValueError(
                f"Parallel3D: this replica's batch of {b} sequences does not split "
                f"into {self.micro_batches} micro-batches"
            )
        mb = b // self.micro_batches
        xs = [x[i * mb : (i + 1) * mb] for i in range(self.micro_batches)]
        ys = [y[i * mb : (i + 1) * mb] for i in range(self.micro_batches)]
        return xs, ys, (mb, x.shape[1], self.config.n_embd)

    def forward_backward(self, x, y) -> Tensor:
        """Run the pipeline schedule on this replica's batch; the mean loss, on every rank."""
        xs, ys, shape = self._micro(x, y)
        self._batch_shape = np.shape(x)
        loss = self.engine.run(xs, ys, self.schedule, act_shape=shape, dtype=self.dtype)
        self._measure_bubble()
        self._last_loss = Tensor(np.asarray(self._share_loss(loss), dtype=self.dtype))
        return self._last_loss

    def evaluate(self, x, y) -> float:
        """The mean loss of a batch, forward only (no gradients, nothing kept)."""
        xs, ys, shape = self._micro(x, y)
        loss = self.engine.run(xs, ys, forward_only=True, act_shape=shape, dtype=self.dtype)
        return self._share_loss(loss)

    def _share_loss(self, loss):
        """The last stage's loss on every stage (host-side bookkeeping, not GPU traffic)."""
        if self.pp == 1:
            return loss
        return self.topo.pp_comm.bcast_json(loss, root=self.pp - 1)

    def backward(self, loss=None) -> None:
        """Finish the step whose backward the schedule already ran: the gradient all-reduces.
        (`loss` is accepted for the common training loop and not differentiated again.)"""
        if self._last_loss is None:
            raise RuntimeError(
                "Parallel3D.backward: no step to finish — call strategy(x, y) "
                "first (it runs forward and backward), then backward() once"
            )
        self._last_loss = None
        self._after_backward()
        self._place_compute("backward")

    def no_sync(self, active: bool = True):
        if active:
            raise NotImplementedError(
                "Parallel3D: gradient accumulation is the pipeline's "
                "micro-batching; raise micro_batches instead of no_sync()"
            )
        return super().no_sync(False)

    def _after_backward(self):
        tied = self.model.tied_embedding()
        if tied is not None:
            # The first stage's wte and the last stage's head copy are one parameter: add their
            # gradients, so both take the same step and stay equal.
            comm = self.topo.embed_comm
            self._comm(comm.all_reduce(tied.grad, "sum"), "tied embedding all-reduce")
        if self.dp > 1:
            self._comm(self.topo.dp_comm.all_reduce(self.grad_flat, "avg"), "dp all-reduce")

    def _counted(self, name, p) -> bool:
        """Is this parameter's gradient counted here in the global norm? Each element once over
        the model-parallel group: split block parameters on every tp rank, replicated ones on
        tp rank 0, the tied embedding on the first stage only."""
        if self.pp > 1 and self.model.is_last and p is self.model.tied_embedding():
            return False
        return split_rule(name) is not None or self.tp_group.rank == 0

    def _grad_shards(self):
        return [(p.grad, self._counted(name, p)) for name, p in self.named_params]

    def _norm_group(self):
        return self.topo.mp_comm if self.topo.mp_comm.size > 1 else None

    def _optimizer_step(self):
        self.opt.step(
            self.grad_flat, self.step_count, self.lr, self.betas, self.eps, self.weight_decay
        )
        self._adam_time(self.layout.numel)

    def _zero_grad(self):
        self.grad_flat[...] = 0
        for (_, p), gv in zip(self.named_params, self.layout.views(self.grad_flat)):
            p.grad = gv
        self.topo.reset_stats()
        self.tp_group.records.clear()

    # ---- measurements -------------------------------------------------------------------------
    def _measure_bubble(self):
        """1 − compute time / pipeline time, with the pipeline time the latest end of any stage."""
        end = float(self.engine.last_run["end"])
        busy = self.timeline.busy("compute")
        ends = [end] if self.pp == 1 else self.topo.pp_comm.allgather_json(end)
        total = max(ends)
        self.last_bubble = {
            "stage": self.topo.coord.pp,
            "micro_batches": self.micro_batches,
            "stages": self.pp,
            "pipeline_seconds": total,
            "compute_seconds": busy,
            "measured": 1.0 - busy / total if total > 0 else 0.0,
            "formula": bubble_fraction(self.pp, self.micro_batches),
        }

    def measure_bubble(self, x, y, free_links: bool = True) -> dict:
        """Run the schedule once more on (x, y) and return its measured bubble — with free
        messages by default (the formula's assumption: only the schedule makes stages wait).
        The gradients it produces are discarded (no optimizer step); call between steps."""
        saved = self.timeline
        if free_links:
            self.timeline = Timeline(free_links_profile(self.profile))
            self.engine.timeline, self.engine.profile = self.timeline, self.timeline.profile
        try:
            self.zero_grad()
            self(x, y)
            self.backward()
            result = dict(self.last_bubble)
            self.zero_grad()
        finally:
            self.timeline = self.engine.timeline = saved
            self.engine.profile = saved.profile
        return result

    def step_stats(self) -> dict:
        stats = super().step_stats()
        stats["bytes_by_axis"] = self.topo.bytes_by_axis()
        stats["bubble"] = dict(self.last_bubble)
        return stats

    def theory(self) -> dict:
        psi = gpt_params_per_rank(self.config, self.tp, self.pp, self.topo.coord.pp)
        q = np.dtype(self.dtype).itemsize
        return {"parameters": q * psi, "gradients": q * psi, "optimizer_states": 2 * q * psi}

    def theory_comm_bytes_by_axis(self, batch_per_replica: int, seq_len: int) -> dict:
        """Bytes sent by this rank per step along each axis, by the formulas above."""
        c, q = self.config, np.dtype(self.dtype).itemsize
        m = self.micro_batches
        act = q * (batch_per_replica // m) * seq_len * c.n_embd  # one (b, T, E) message
        lo, hi = self.model.layers
        per_block = 6 if self.checkpoint_activations else 4
        first, last = self.model.is_first, self.model.is_last
        psi = gpt_params_per_rank(c, self.tp, self.pp, self.topo.coord.pp)
        return {
            "tp": m * (hi - lo) * per_block * 2 * (self.tp - 1) / self.tp * act,
            "pp": m * act * ((not last) + (not first)) if self.pp > 1 else 0,
            "embedding": q * c.vocab_size * c.n_embd if self.pp > 1 and (first or last) else 0,
            "dp": 2 * (self.dp - 1) / self.dp * q * psi,
        }

    def theory_comm_bytes(self, accum_steps: int = 1) -> float:
        """All axes together, for the batch shape of the last step (sim/strategy.py's API)."""
        if not hasattr(self, "_batch_shape"):
            raise RuntimeError("theory_comm_bytes: run a step first (it needs the batch shape)")
        return float(sum(self.theory_comm_bytes_by_axis(*self._batch_shape).values()))

    def full_state_dict(self) -> dict | None:
        """The single-process state dict, on the ranks of the first stage (None elsewhere).
        Collective: every rank must call it. Its traffic is counted (call it between steps)."""
        from sim.tensor_parallel import gather_state_dict

        full = gather_state_dict(self.model, self.tp_group, self.config.n_head)
        if self.pp == 1:
            return full
        comm = self.topo.pp_comm
        shapes = comm.allgather_json({n: list(a.shape) for n, a in full.items()})  # host-side
        if comm.rank != 0:
            for name in shapes[comm.rank]:
                comm.send(np.ascontiguousarray(full[name]), 0)
            return None
        for s in range(1, comm.size):
            for name, shape in shapes[s].items():
                full[name] = np.empty(shape, self.dtype)
                comm.recv(full[name], s)
        full["lm_head.weight"] = full["transformer.wte.weight"]  # tied (the copies are equal)
        return full
