"""Pipeline parallelism: consecutive layers on different ranks, micro-batches flowing through.

A model of L blocks is cut into p *stages* of consecutive blocks, one per rank (GPipe, Huang et
al. 2019): stage 0 also holds the token and position embeddings, stage p−1 the final LayerNorm,
the head and the loss. Stage s computes its blocks on what stage s−1 sent it and sends the result
on — a point-to-point message of one activation tensor (B, T, E); in backward the gradient of
that tensor travels the other way. Memory per rank: 1/p of the layers' weights, gradients and
optimizer states. Communication: one activation and one gradient message per micro-batch and
stage boundary — far less than tensor parallelism's all-reduces in every layer.

The bubble. A batch processed whole would keep only one stage busy at a time. So the batch is
split into m *micro-batches*: while stage 1 works on micro-batch 0, stage 0 starts micro-batch 1.
Still, the pipeline must fill and drain: with equal stages, each forward taking t_f and each
backward t_b, a step lasts (m + p − 1)(t_f + t_b) of which every stage computes m(t_f + t_b), so
the idle fraction — the *bubble* — is

    bubble = (p − 1) / (m + p − 1)                         (GPipe, §2.3; Narayanan et al. 2021)

More micro-batches shrink it; more stages grow it.

Two schedules, as lists of actions per stage ("F", i) = forward of micro-batch i, ("B", i) =
its backward:

* GPipe — all m forwards, then all m backwards. Every stage holds the activations of all m
  micro-batches at the end of the forwards: peak activation memory ∝ m.
* 1F1B (PipeDream-Flush, Narayanan et al. 2021) — stage s runs p − s − 1 forwards to fill the
  pipeline ("warm-up"), then alternates one forward and one backward ("steady state"), then
  finishes the remaining backwards ("cool-down"). A micro-batch's activations are freed by its
  backward as soon as possible, so stage s holds at most p − s micro-batches: peak ∝ min(p − s,
  m) instead of m. Same bubble, same result (the gradients of a step are the same sum).

Messages. A send followed on the same stage by a receive from the same neighbour (1F1B's steady
state: send an activation to s+1, then wait for a gradient from s+1) is done as one `sendrecv`,
as Megatron-LM's send_forward_recv_backward does: two stages each blocked in a plain send to the
other would wait forever once messages are too big to be buffered.

The clock. Each rank has its own simulated timeline (sim/cost.py). A stage's compute is placed
from the FLOPs counted while it ran; a send is placed on the communication stream after that
compute, lasting latency + bytes/bandwidth of the link, and the time it arrives travels with the
message (as host-side bookkeeping, not counted as traffic). The receiving stage's compute cannot
start before that time. The bubble is then *measured*: 1 − (compute time of a stage) / (time of
the whole pipeline step) on the per-rank timelines. `ideal_links` in the strategy makes messages
free, isolating the schedule's bubble from communication time, which is what the formula assumes.

Tied embeddings. GPT's head reuses the token embedding (wte). With p > 1 the two uses live on
different stages, so the last stage keeps a copy (`lm_head.weight`) and after backward the first
and last stages add their two gradients (an all-reduce in the embedding group, see
sim/topology.py) — both copies then take the same optimizer step and stay equal (Megatron-LM).
"""

from __future__ import annotations

import contextlib

import numpy as np

from sim.cost import Event
from tinyllm import ops
from tinyllm.engine import Tensor, no_grad
from tinyllm.nn.layers import Linear
from tinyllm.nn.module import Module, ModuleDict, Parameter
from tinyllm.recompute import checkpoint

CLOCK_TAG = 7  # the simulated arrival time travels under this tag beside each message


def bubble_fraction(p: int, m: int) -> float:
    """The idle fraction of a pipeline of p equal stages with m micro-batches."""
    return (p - 1) / (m + p - 1)


# ---- schedules --------------------------------------------------------------------------------


def gpipe_schedule(m: int, p: int, s: int) -> list:
    """All forwards, then all backwards (in micro-batch order)."""
    return [("F", i) for i in range(m)] + [("B", i) for i in range(m)]


def one_f_one_b_schedule(m: int, p: int, s: int) -> list:
    """PipeDream-Flush: p − s − 1 warm-up forwards, then one forward / one backward, then the
    cool-down backwards. At most min(p − s, m) micro-batches are in flight on stage s."""
    warmup = min(p - s - 1, m)
    actions = [("F", i) for i in range(warmup)]
    for k in range(m - warmup):
        actions += [("F", warmup + k), ("B", k)]
    return actions + [("B", i) for i in range(m - warmup, m)]


SCHEDULES = {"gpipe": gpipe_schedule, "1f1b": one_f_one_b_schedule}


def in_flight_peak(actions: list) -> int:
    """Most micro-batches whose forward ran and whose backward has not (activations held)."""
    live = peak = 0
    for kind, _ in actions:
        live += 1 if kind == "F" else -1
        peak = max(peak, live)
    return peak


# ---- cutting a GPT into stages ----------------------------------------------------------------


def stage_layers(n_layer: int, n_stages: int) -> list[tuple[int, int]]:
    """[lo, hi) block ranges of each stage: as equal as possible, earlier stages get the extra
    block (the last stage also carries the head and the loss)."""
    if n_stages < 1 or n_layer < n_stages:
        raise ValueError(
            f"pipeline: {n_layer} blocks cannot fill {n_stages} stages "
            f"(each stage needs at least one block)"
        )
    base, extra = divmod(n_layer, n_stages)
    bounds, lo = [], 0
    for s in range(n_stages):
        hi = lo + base + (1 if s < extra else 0)
        bounds.append((lo, hi))
        lo = hi
    return bounds


class GPTStage(Module):
    """Stage `stage` of `n_stages` of a GPT (or of its tensor-parallel shard, sim.tensor_parallel).

    It holds the model's own modules (same objects, same nanoGPT names: `transformer.h.5.…`
    stays `transformer.h.5.…`): embeddings on the first stage, its blocks, and on the last stage
    ln_f and the head. forward(inp, targets): the first stage takes token ids (B, T), the others
    the activation (B, T, E) from the previous stage; the last stage returns the mean
    cross-entropy, the others their output activation.
    """

    def __init__(self, model, stage: int, n_stages: int):
        super().__init__()
        tr = model.transformer
        lo, hi = stage_layers(len(tr.h), n_stages)[stage]
        self.stage, self.n_stages, self.layers = stage, n_stages, (lo, hi)
        self.is_first, self.is_last = stage == 0, stage == n_stages - 1
        self.config = model.config
        parts = {}
        if self.is_first:
            parts.update(wte=tr.wte, wpe=tr.wpe, drop=tr.drop)
        parts["h"] = ModuleDict({str(i): tr.h[i] for i in range(lo, hi)})
        if self.is_last:
            parts["ln_f"] = tr.ln_f
        self.transformer = ModuleDict(parts)
        if self.is_last and self.is_first:
            self.lm_head = model.lm_head  # one stage: the head stays tied to wte
        elif self.is_last:
            # The head's own copy of the tied embedding (a throwaway generator: drawing from the
            # default one would shift every later random number away from the one-process run).
            e, v = model.lm_head.in_features, model.lm_head.out_features
            self.lm_head = Linear(e, v, bias=False, generator=np.random.default_rng(0))
            self.lm_head.weight = Parameter(model.lm_head.weight.data.copy())
        self.gradient_checkpointing = getattr(model, "gradient_checkpointing", False)

    def tied_embedding(self):
        """The Parameter holding this stage's copy of the tied embedding (None in the middle)."""
        if self.n_stages == 1:
            return None
        if self.is_first:
            return self.transformer.wte.weight
        return self.lm_head.weight if self.is_last else None

    def forward(self, inp, targets=None):
        tr = self.transformer
        if self.is_first:
            idx = np.asarray(inp)  # (B, T) token ids
            x = tr.drop(tr.wte(idx) + tr.wpe(np.arange(idx.shape[1])))
        else:
            x = inp  # (B, T, E) from stage s − 1
        for block in tr.h.values():
            x = checkpoint(block, x, None, None) if self.gradient_checkpointing else block(x)
        if not self.is_last:
            return x
        logits = self.lm_head(tr.ln_f(x))  # (B, T, V)
        b, t = logits.shape[:2]
        return ops.cross_entropy(logits.reshape(b * t, -1), np.asarray(targets).reshape(-1))


# ---- running one stage's schedule -------------------------------------------------------------


class PipelineEngine:
    """Runs a schedule on one stage: forwards, backwards and the messages between stages.

    `comm`: the pipeline communicator (rank s = stage s; None for one stage). `timeline`, and
    `place_compute(label)` which puts the FLOPs counted so far on it (sim.strategy.Strategy).
    `profile` prices the messages (None: free).
    """

    def __init__(self, stage: GPTStage, comm, timeline=None, place_compute=None, profile=None):
        self.stage_module = stage
        self.comm = comm
        self.s, self.p = stage.stage, stage.n_stages
        self.timeline = timeline
        self.place_compute = place_compute or (lambda label: None)
        self.profile = profile
        self.last_run: dict = {}

    # ---- messages with their simulated arrival time -------------------------------------------
    # Each data message is accompanied by one float64, the time it arrives on the simulated
    # timeline, sent non-blocking beside it (posted before and completed after the data
    # transfer), so the clock can never add a dependency the data transfer itself does not have.
    def _link_seconds(self, peer: int, nbytes: int) -> float:
        if self.profile is None:
            return 0.0
        ranks = (self.comm.world_ranks[self.s], self.comm.world_ranks[peer])
        return self.profile.link_for(ranks).seconds(nbytes, 1)

    def _post_send(self, array: np.ndarray, peer: int, label: str) -> np.ndarray:
        """Place the send on this rank's comm stream; returns its arrival time (1 float64)."""
        if self.timeline is None:
            return np.zeros(1)
        ev = self.timeline.add(
            "comm",
            self._link_seconds(peer, array.nbytes),
            f"send {label}",
            after=[self.timeline.free_at["compute"]],
        )
        return np.array([ev.end])

    def _arrived(self, arrival: np.ndarray, peer: int, nbytes: int, label: str) -> None:
        """The compute stream cannot go on before the message is here."""
        if self.timeline is not None:
            end = float(arrival[0])
            start = end - self._link_seconds(peer, nbytes)
            self.timeline.wait([Event("comm", f"recv {label}", start, end)])

    def _send(self, array, peer, label):
        clock = self._post_send(array, peer, label)
        request = self.comm.mpi.Isend(clock, dest=peer, tag=CLOCK_TAG)
        self.comm.send(array, peer)
        self.comm._wait_all([request], f"pipeline send {label} (clock)", peer)

    def _recv(self, out, peer, label):
        clock = np.empty(1)
        request = self.comm.mpi.Irecv(clock, source=peer, tag=CLOCK_TAG)
        self.comm.recv(out, peer)
        self.comm._wait_all([request], f"pipeline recv {label} (clock)", peer)
        self._arrived(clock, peer, out.nbytes, label)

    def _sendrecv(self, array, out, peer, label_send, label_recv):
        clock_out, clock_in = self._post_send(array, peer, label_send), np.empty(1)
        requests = [
            self.comm.mpi.Isend(clock_out, dest=peer, tag=CLOCK_TAG),
            self.comm.mpi.Irecv(clock_in, source=peer, tag=CLOCK_TAG),
        ]
        self.comm.sendrecv(array, peer, out, peer)
        self.comm._wait_all(requests, f"pipeline exchange {label_send} / {label_recv}", peer)
        self._arrived(clock_in, peer, out.nbytes, label_recv)

    # ---- the schedule -----------------------------------------------------------------------
    def run(
        self,
        micro_inputs: list,
        micro_targets: list,
        schedule: str = "1f1b",
        forward_only: bool = False,
        act_shape=None,
        dtype=np.float32,
    ) -> float | None:
        """Run every micro-batch through this stage; returns the mean loss (last stage) or None.

        `micro_inputs[i]`: token ids of micro-batch i (used by the first stage);
        `micro_targets[i]`: its targets (used by the last stage); `act_shape`: (b, T, E) of the
        activations exchanged between stages. The loss of each micro-batch is scaled by 1/m
        before its backward, so the gradients are those of the mean over the whole batch.
        """
        if schedule not in SCHEDULES:
            raise ValueError(
                f"unknown pipeline schedule {schedule!r}; expected one of {sorted(SCHEDULES)}"
            )
        m = len(micro_inputs)
        if forward_only:
            actions = [("F", i) for i in range(m)]
        else:
            actions = SCHEDULES[schedule](m, self.p, self.s)
        self._act_shape, self._dtype = tuple(act_shape or ()), dtype
        self._forward_only = forward_only
        self._inputs, self._outputs, self._losses = {}, {}, {}
        self._early_input = self._early_grad = None  # received by a combined sendrecv
        for k, (kind, i) in enumerate(actions):
            nxt = actions[k + 1] if k + 1 < len(actions) else None
            if kind == "F":
                self._forward(i, micro_inputs[i], micro_targets[i], nxt)
            else:
                self._backward(i, m, nxt)
        self.last_run = {
            "actions": actions,
            "micro_batches": m,
            "schedule": schedule,
            "end": None if self.timeline is None else self.timeline.free_at["compute"],
        }
        if not self.stage_module.is_last:
            return None
        return float(np.mean([self._losses[i] for i in range(m)]))

    def _buffer(self):
        return np.empty(self._act_shape, self._dtype)  # (b, T, E)

    def _forward(self, i, tokens, targets, nxt):
        st = self.stage_module
        if st.is_first:
            inp = tokens
        elif self._early_input is not None:
            inp, self._early_input = self._early_input, None
        else:
            buf = self._buffer()
            self._recv(buf, self.s - 1, f"activation {i}")
            inp = Tensor(buf, requires_grad=not self._forward_only)
        with no_grad() if self._forward_only else contextlib.nullcontext():
            out = st(inp, targets if st.is_last else None)
        self.place_compute(f"F{i}")
        if st.is_last:
            self._losses[i] = out.item()
        else:
            send = np.ascontiguousarray(out.data)
            if nxt is not None and nxt[0] == "B":
                # 1F1B steady state: the next action waits for a gradient from the same neighbour.
                grad = self._buffer()
                self._sendrecv(send, grad, self.s + 1, f"activation {i}", f"gradient {nxt[1]}")
                self._early_grad = grad
            else:
                self._send(send, self.s + 1, f"activation {i}")
        if not self._forward_only:
            self._inputs[i], self._outputs[i] = inp, out  # the graph lives until B{i}

    def _backward(self, i, m, nxt):
        st = self.stage_module
        out, inp = self._outputs.pop(i), self._inputs.pop(i)
        if st.is_last:
            out.backward(np.asarray(1.0 / m, dtype=out.dtype))  # d(mean over micro-batches)
        else:
            if self._early_grad is not None:
                grad, self._early_grad = self._early_grad, None
            else:
                grad = self._buffer()
                self._recv(grad, self.s + 1, f"gradient {i}")
            out.backward(grad)
        self.place_compute(f"B{i}")
        if st.is_first:
            return
        send = np.ascontiguousarray(inp.grad)
        if nxt is not None and nxt[0] == "F":
            # 1F1B steady state: the next forward's activation comes from the same neighbour.
            buf = self._buffer()
            self._sendrecv(send, buf, self.s - 1, f"gradient {i}", f"activation {nxt[1]}")
            self._early_input = Tensor(buf, requires_grad=True)
        else:
            self._send(send, self.s - 1, f"gradient {i}")
