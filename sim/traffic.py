"""What was sent: the byte and message counters of every collective call.

Each call of a collective on a rank produces one `CommRecord` — bytes and messages this rank
sent and received, the buffer size, the group of ranks — and a `CommStats` accumulates them per
collective until `reset()` (once per training step). The cost model (sim/cost.py) turns records
into simulated seconds; the strategies compare the totals with the papers' volumes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class CommRecord:
    """One call on one rank: which collective, how big, and what this rank put on the wire."""

    op: str
    count: int  # elements in the (full) buffer
    itemsize: int
    backend: str
    group: tuple  # world ranks of the communicator (the cost model picks the link from them)
    seq: int = 0  # call number on this communicator
    bytes_sent: int = 0
    bytes_recv: int = 0
    messages_sent: int = 0
    messages_recv: int = 0
    seconds: float = 0.0  # wall time of the call on this machine

    @property
    def nbytes(self) -> int:
        return self.count * self.itemsize


@dataclass
class Traffic:
    calls: int = 0
    bytes_sent: int = 0
    bytes_recv: int = 0
    messages_sent: int = 0
    messages_recv: int = 0

    def add(self, rec: CommRecord) -> None:
        self.calls += 1
        self.bytes_sent += rec.bytes_sent
        self.bytes_recv += rec.bytes_recv
        self.messages_sent += rec.messages_sent
        self.messages_recv += rec.messages_recv


class CommStats:
    """Cumulative traffic of one rank, per collective, since the last `reset()`."""

    def __init__(self, parent: "CommStats | None" = None):
        self.parent = parent
        self.reset()

    def reset(self) -> None:
        self.by_op: dict[str, Traffic] = {}
        self.records: list[CommRecord] = []

    def add(self, rec: CommRecord) -> None:
        self.by_op.setdefault(rec.op, Traffic()).add(rec)
        self.records.append(rec)
        if self.parent is not None:
            self.parent.add(rec)

    @property
    def total(self) -> Traffic:
        t = Traffic()
        for part in self.by_op.values():
            for name in asdict(t):
                setattr(t, name, getattr(t, name) + getattr(part, name))
        return t

    def as_dict(self) -> dict:
        return {
            "total": asdict(self.total),
            "by_op": {op: asdict(t) for op, t in self.by_op.items()},
        }
