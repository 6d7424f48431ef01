"""The cost model: what a training step would take on real GPUs.

A laptop running four MPI ranks says nothing about time on a GPU cluster, but what the ranks *did*
— FLOPs computed, bytes and messages sent, bytes moved between host and device — is exact. The
cost model turns those counts into seconds on a named hardware profile:

    compute   t = FLOPs / peak FLOP/s for the dtype
    message   t = α + bytes / β          α: latency of the link, β: its bandwidth (one direction)
    transfer  t = α_PCIe + bytes / β_PCIe   (host ↔ device, for offload)

A collective on one rank costs  m·α + b/β, with m its messages and b its bytes — sent or
received, whichever is larger (links are full duplex: a ring step sends and receives at once).
For a ring all-reduce of S bytes over n ranks that is 2(n−1)·α + 2(n−1)/n · S/β, the classic
α–β model (Thakur, Rabenseifner & Gropp 2005). The link is the intra-node one (NVLink, or PCIe on
a PCIe-only node) when all ranks of the communicator sit in one node of `gpus_per_node`
consecutive world ranks, else the inter-node network (the slowest hop sets a ring's pace).

Overlap. A GPU runs compute kernels and communication on separate CUDA streams, so a gradient
bucket's all-reduce can run while backward computes the gradients of earlier layers. `Timeline`
models one rank with three streams — "compute", "comm" and "copy" (host ↔ device). Each stream
runs its operations in order; an operation starts when its stream is free *and* the events it
depends on have ended:

    start = max(stream free at, end of each dependency),   end = start + its seconds

A communication or copy depends by default on the compute done so far (the data it sends was just
produced). The step time is when the last stream finishes. The events are kept, so a timeline can
be printed (`format`) or saved (`as_dicts`).

Simplifications, said plainly: peak numbers (real kernels reach a fraction of peak FLOP/s, NCCL
~70–90% of link bandwidth); no contention between streams for memory bandwidth; a collective's
cost is this rank's own traffic (no waiting for a slower rank); latencies are typical values, not
datasheet figures (vendors do not publish them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

GB = 1e9  # vendors quote link bandwidth in decimal GB/s
GiB = 2**30  # ...and memory capacity in binary GB


@dataclass(frozen=True)
class Link:
    """A point-to-point link: `latency` seconds per message, `bandwidth` bytes/s one way."""

    latency: float
    bandwidth: float

    def seconds(self, nbytes: float, messages: int = 1) -> float:
        return messages * self.latency + nbytes / self.bandwidth


@dataclass(frozen=True)
class HardwareProfile:
    """One GPU model in its node: peak FLOP/s per dtype, memory, links."""

    name: str
    memory_bytes: int
    peak_flops: dict = field(hash=False)  # dtype name ("fp32", "tf32", "bf16", ...) → FLOP/s
    intra_node: Link  # GPU ↔ GPU in one node
    inter_node: Link  # GPU ↔ GPU across nodes, per GPU
    host: Link  # host ↔ device (PCIe)
    gpus_per_node: int = 8
    notes: str = ""

    def compute_seconds(self, flops: float, dtype="fp32") -> float:
        name = dtype_name(dtype)
        if name not in self.peak_flops:
            raise ValueError(
                f"profile {self.name} has no peak for dtype {name!r}; "
                f"known: {sorted(self.peak_flops)}"
            )
        return flops / self.peak_flops[name]

    def link_for(self, world_ranks) -> Link:
        """The link a collective among these world ranks runs on (intra-node if one node)."""
        nodes = {r // self.gpus_per_node for r in world_ranks}
        return self.intra_node if len(nodes) <= 1 else self.inter_node

    def comm_seconds(self, record) -> float:
        """Seconds of one rank's part of a collective (a sim.comm.CommRecord)."""
        link = self.link_for(record.group)
        return link.seconds(
            max(record.bytes_sent, record.bytes_recv),
            max(record.messages_sent, record.messages_recv),
        )

    def transfer_seconds(self, nbytes: float) -> float:
        return self.host.seconds(nbytes)


def dtype_name(dtype) -> str:
    """ "fp32"-style name for a NumPy dtype or a name ("tf32" and "bf16" pass through)."""
    if isinstance(dtype, str) and dtype in ("fp64", "fp32", "tf32", "fp16", "bf16"):
        return dtype
    names = {
        np.dtype(np.float64): "fp64",
        np.dtype(np.float32): "fp32",
        np.dtype(np.float16): "fp16",
    }
    try:
        return names[np.dtype(dtype)]
    except (TypeError, KeyError):
        raise ValueError(
            f"unknown compute dtype {dtype!r}; use fp64, fp32, tf32, fp16 or bf16 "
            f"(or a NumPy float dtype)"
        ) from None


# ---- profiles ---------------------------------------------------------------------------------
# Sources (vendor datasheets; dense, i.e. without 2:4 sparsity):
# V100: "NVIDIA Tesla V100 GPU Accelerator" datasheet (SXM2): FP64 7.8, FP32 15.7, Tensor 125
#   TFLOPS; NVLink 300 GB/s (total, both directions: 150 GB/s each way); PCIe Gen3 32 GB/s
#   (16 each way). No TF32 and no bf16 tensor cores: those dtypes run at the FP32 rate.
# A100: "NVIDIA A100 Tensor Core GPU" datasheet (80GB SXM): FP64 9.7, FP32 19.5, TF32 156,
#   BF16/FP16 312 TFLOPS; NVLink 600 GB/s (300 each way); PCIe Gen4 64 GB/s (32 each way).
#   The 80GB PCIe card has the same peaks; without an NVLink bridge its GPUs talk over PCIe.
# H100: "NVIDIA H100 Tensor Core GPU" datasheet (SXM): FP64 34, FP32 67, TF32 494.7 (989 with
#   sparsity), BF16/FP16 989.4 (1,979 with sparsity) TFLOPS; NVLink 900 GB/s (450 each way);
#   PCIe Gen5 128 GB/s (64 each way).
# Inter-node, per GPU: DGX-1 (V100) has 4× 100 Gb/s EDR InfiniBand for 8 GPUs (6.25 GB/s per
#   GPU); DGX A100 one 200 Gb/s HDR port per GPU (25 GB/s); DGX H100 one 400 Gb/s NDR port per
#   GPU (50 GB/s) — the DGX system datasheets.
# Latencies are typical measured orders of magnitude (assumptions): ~2 µs per NVLink hop as
#   seen through NCCL, ~5 µs across PCIe or InfiniBand, ~10 µs for a host↔device copy launch.
TFLOPS = 1e12
us = 1e-6

_A100_PEAKS = {
    "fp64": 9.7 * TFLOPS,
    "fp32": 19.5 * TFLOPS,
    "tf32": 156 * TFLOPS,
    "fp16": 312 * TFLOPS,
    "bf16": 312 * TFLOPS,
}  # SXM and PCIe cards alike

PROFILES = {
    "V100-32GB": HardwareProfile(
        "V100-32GB",
        32 * GiB,
        {
            "fp64": 7.8 * TFLOPS,
            "fp32": 15.7 * TFLOPS,
            "tf32": 15.7 * TFLOPS,
            "fp16": 125 * TFLOPS,
            "bf16": 15.7 * TFLOPS,
        },
        intra_node=Link(2 * us, 150 * GB),
        inter_node=Link(5 * us, 6.25 * GB),
        host=Link(10 * us, 16 * GB),
        notes="SXM2, NVLink (DGX-1)",
    ),
    "A100-80GB": HardwareProfile(
        "A100-80GB",
        80 * GiB,
        _A100_PEAKS,
        intra_node=Link(2 * us, 300 * GB),
        inter_node=Link(5 * us, 25 * GB),
        host=Link(10 * us, 32 * GB),
        notes="SXM4, NVLink/NVSwitch (DGX A100)",
    ),
    "H100-80GB": HardwareProfile(
        "H100-80GB",
        80 * GiB,
        {
            "fp64": 34 * TFLOPS,
            "fp32": 67 * TFLOPS,
            "tf32": 494.7 * TFLOPS,
            "fp16": 989.4 * TFLOPS,
            "bf16": 989.4 * TFLOPS,
        },
        intra_node=Link(2 * us, 450 * GB),
        inter_node=Link(5 * us, 50 * GB),
        host=Link(10 * us, 64 * GB),
        notes="SXM5, NVLink/NVSwitch (DGX H100)",
    ),
    "A100-80GB-PCIe": HardwareProfile(
        "A100-80GB-PCIe",
        80 * GiB,
        _A100_PEAKS,
        # GPU ↔ GPU peer traffic crosses PCIe Gen4 (32 GB/s each way); the node shares one
        # 200 Gb/s NIC among 8 GPUs (3.125 GB/s per GPU).
        intra_node=Link(5 * us, 32 * GB),
        inter_node=Link(5 * us, 3.125 * GB),
        host=Link(10 * us, 32 * GB),
        notes="PCIe-only node, no NVLink",
    ),
}


def get_profile(name: str) -> HardwareProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown hardware profile {name!r}; known: {sorted(PROFILES)}") from None


# ---- the per-rank timeline --------------------------------------------------------------------


@dataclass
class Event:
    stream: str
    label: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


class Timeline:
    """Streams of one rank; operations scheduled by stream order and dependencies."""

    STREAMS = ("compute", "comm", "copy")

    def __init__(self, profile: HardwareProfile | str, dtype="fp32"):
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        self.dtype = dtype
        self.reset()

    def reset(self) -> None:
        self.free_at = dict.fromkeys(self.STREAMS, 0.0)
        self.events: list[Event] = []

    def add(self, stream: str, seconds: float, label: str, after=()) -> Event:
        """Schedule `seconds` of work on `stream` after the events (or times) in `after`."""
        if stream not in self.free_at:
            raise ValueError(f"unknown stream {stream!r}; expected one of {self.STREAMS}")
        if seconds < 0:
            raise ValueError(f"{label}: negative duration {seconds}")
        ready = [e.end if isinstance(e, Event) else float(e) for e in after]
        start = max([self.free_at[stream]] + ready)
        event = Event(stream, label, start, start + seconds)
        self.free_at[stream] = event.end
        self.events.append(event)
        return event

    def compute(self, flops: float, label: str = "compute", dtype=None, after=()) -> Event:
        """FLOPs on the compute stream (waiting also for `after`, e.g. an all-gather)."""
        return self.add(
            "compute", self.profile.compute_seconds(flops, dtype or self.dtype), label, after
        )

    def communicate(self, record, label: str | None = None, after=None) -> Event:
        """A collective (a CommRecord) on the comm stream; by default after the compute so far."""
        after = [self.free_at["compute"]] if after is None else after
        return self.add(
            "comm",
            self.profile.comm_seconds(record),
            label or f"{record.op} {record.nbytes} B",
            after,
        )

    def transfer(self, nbytes: float, label: str = "host↔device", after=None) -> Event:
        """A host ↔ device PCIe copy on the copy stream; by default after the compute so far."""
        after = [self.free_at["compute"]] if after is None else after
        return self.add("copy", self.profile.transfer_seconds(nbytes), label, after)

    def wait(self, events, stream: str = "compute") -> None:
        """`stream` cannot go on before `events` end (e.g. the optimizer waits for gradients)."""
        for e in events:
            self.free_at[stream] = max(self.free_at[stream], e.end)

    def synchronize(self) -> float:
        """Every stream waits for all work so far; returns that time."""
        t = self.elapsed
        for s in self.STREAMS:
            self.free_at[s] = t
        return t

    @property
    def elapsed(self) -> float:
        return max([0.0] + [e.end for e in self.events])

    def busy(self, stream: str) -> float:
        return sum(e.seconds for e in self.events if e.stream == stream)

    def summary(self) -> dict:
        """Step time, busy time per stream, and how much communication was hidden by compute."""
        comm, compute = self.busy("comm"), self.busy("compute")
        return {
            "step_seconds": self.elapsed,
            "compute_seconds": compute,
            "comm_seconds": comm,
            "copy_seconds": self.busy("copy"),
            "serial_seconds": compute + comm + self.busy("copy"),
            "exposed_comm_seconds": max(0.0, self.elapsed - compute),
        }

    def as_dicts(self) -> list[dict]:
        return [
            {"stream": e.stream, "label": e.label, "start": e.start, "end": e.end}
            for e in self.events
        ]

    def format(self, width: int = 60) -> str:
        """A text Gantt chart of the streams, then the events in start order."""
        total = self.elapsed or 1.0
        marks = {"compute": "█", "comm": "▒", "copy": "░"}
        lines = [f"timeline on {self.profile.name}: {_fmt_s(self.elapsed)}"]
        for s in self.STREAMS:
            row = [" "] * width
            for e in self.events:
                if e.stream == s:
                    lo = int(e.start / total * width)
                    hi = max(lo + 1, int(round(e.end / total * width)))
                    for i in range(lo, min(hi, width)):
                        row[i] = marks[s]
            lines.append(f"  {s:<8}|{''.join(row)}|")
        for e in sorted(self.events, key=lambda e: (e.start, e.stream)):
            lines.append(f"  {_fmt_s(e.start):>10} → {_fmt_s(e.end):>10}  {e.stream:<8}{e.label}")
        return "\n".join(lines)


def _fmt_s(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.1f} µs"
