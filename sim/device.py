"""Device memory as a ledger: what a simulated GPU holds, by category, with its peak.

A real GPU has a fixed memory (e.g. 80 GB). Training fills it with five kinds of arrays:

    parameters        the weights                                   4 bytes each in fp32
    gradients         one per parameter                             4 bytes each
    optimizer_states  Adam's first and second moments m and v       8 bytes per parameter
    activations       what the forward pass saves for backward      depends on batch × sequence
    buffers           communication buffers (gradient buckets, gathered shards)

Here a GPU is a NumPy process, so nothing stops it from using more than 80 GB except
bookkeeping: every array the simulated GPU would hold is *charged* to its `Device` with a tag,
and released when freed. The ledger keeps, per tag, the bytes held now and the most ever held,
and the peak of the total (which is not the sum of the per-tag peaks: activations peak at the
end of forward, gradients at the end of backward). Charging more than the capacity raises
`OutOfMemoryError`, whose message is the ledger — the same moment a GPU would fail.

A `Host` ledger (CPU memory, no capacity by default) holds what offloading moves off the GPU.

Activations are measured, not estimated: `ActivationTracker` is a `tinyllm.engine.GraphObserver`
that charges the arrays each autograd node saves for backward the moment it saves them, and
releases them when backward frees the node. An array saved by several nodes, or saved as
several views of one buffer, is one allocation: the tracker charges the *base* buffer once and
counts references. Arrays already in the ledger (parameters, gathered shards) and any registered
with `exclude` are not activations and are skipped. Simplification: a saved view keeps its
whole base buffer alive, so the whole base is charged — which is what the memory really holds.

The course notes' rule of thumb for fp32 training with Adam (per parameter): 4 bytes weights
+ 4 gradients + 8 optimizer states + ~8 activations ≈ 24 bytes, i.e. ~24 GB for 1B parameters.
`format_bytes_per_parameter` prints the measured bytes per parameter beside it.
"""

from __future__ import annotations

import numpy as np

from tinyllm.engine import GraphObserver, observe

TAGS = ("parameters", "gradients", "optimizer_states", "activations", "buffers")

# Course notes: bytes per parameter for fp32 training with Adam. Activations are their rough
# figure; the real number scales with batch size and sequence length, not with parameters.
NOTES_RULE = {"parameters": 4, "gradients": 4, "optimizer_states": 8, "activations": 8}


class OutOfMemoryError(MemoryError):
    """A charge would exceed the ledger's capacity. The message shows the whole ledger."""


def _base(array: np.ndarray) -> np.ndarray:
    """The array that owns the memory a view looks into (the array itself if it owns it)."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def _fmt(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(nbytes) < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.2f} {unit}"
        nbytes /= 1024


class MemoryLedger:
    """Bytes held per tag, current and peak, under an optional capacity (bytes)."""

    kind = "memory"

    def __init__(self, capacity_bytes: int | None = None, rank: int = 0):
        if capacity_bytes is not None and capacity_bytes < 0:
            raise ValueError(f"capacity_bytes must be >= 0, got {capacity_bytes}")
        self.capacity = capacity_bytes
        self.rank = rank
        self.current = dict.fromkeys(TAGS, 0)
        self.peak = dict.fromkeys(TAGS, 0)
        self.peak_total = 0
        self._live: dict[int, tuple[int, str, str]] = {}  # key → (bytes, tag, label)
        self._arrays: dict[int, np.ndarray] = {}  # keeps charged arrays alive, so ids stay unique

    @property
    def total(self) -> int:
        return sum(self.current.values())

    # ---- raw bytes ----------------------------------------------------------------------------
    def charge(self, key, nbytes: int, tag: str, label: str = "") -> None:
        """Record `nbytes` under `tag`, remembered by `key` for the matching `release(key)`."""
        if tag not in TAGS:
            raise ValueError(f"unknown memory tag {tag!r}; expected one of {TAGS}")
        if key in self._live:
            held, old_tag, old_label = self._live[key]
            raise ValueError(
                f"{self.kind} rank {self.rank}: {label or key!r} is already charged "
                f"({_fmt(held)} as {old_tag} {old_label!r})"
            )
        self._check_capacity(nbytes, tag, label)
        self._live[key] = (int(nbytes), tag, label)
        self.current[tag] += nbytes
        self.peak[tag] = max(self.peak[tag], self.current[tag])
        self.peak_total = max(self.peak_total, self.total)

    def _check_capacity(self, nbytes: int, tag: str, label: str) -> None:
        if self.capacity is not None and self.total + nbytes > self.capacity:
            raise OutOfMemoryError(
                f"{self.kind} rank {self.rank} out of memory: cannot allocate {_fmt(nbytes)} "
                f"({nbytes} bytes) for {tag}"
                + (f" ({label})" if label else "")
                + f" with {_fmt(self.total)} of {_fmt(self.capacity)} in use\n"
                + self.report()
            )

    def release(self, key) -> int:
        """Forget the charge made under `key`; returns its bytes."""
        try:
            nbytes, tag, _ = self._live.pop(key)
        except KeyError:
            raise KeyError(
                f"{self.kind} rank {self.rank}: nothing is charged under {key!r} "
                f"(freed twice, or never allocated here)"
            ) from None
        self.current[tag] -= nbytes
        self._arrays.pop(key, None)
        return nbytes

    # ---- arrays -------------------------------------------------------------------------------
    def allocate(self, shape, dtype, tag: str, label: str = "") -> np.ndarray:
        """A new zero-filled array charged to `tag` (free it with `free`)."""
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if tag not in TAGS:
            raise ValueError(f"unknown memory tag {tag!r}; expected one of {TAGS}")
        self._check_capacity(nbytes, tag, label)  # before NumPy allocates anything
        array = np.zeros(shape, dtype)
        self.register(array, tag, label)
        return array

    def register(self, array: np.ndarray, tag: str, label: str = "") -> np.ndarray:
        """Charge an existing array (its whole base buffer) to `tag`; returns the array."""
        base = _base(array)
        self.charge(id(base), base.nbytes, tag, label)
        self._arrays[id(base)] = base
        return array

    def free(self, array: np.ndarray) -> int:
        """Release an array charged by `allocate` or `register`; returns its bytes."""
        return self.release(id(_base(array)))

    def holds(self, array: np.ndarray) -> bool:
        return id(_base(array)) in self._arrays

    def reset_peaks(self) -> None:
        """Start measuring peaks afresh from what is held now (e.g. after the first step)."""
        self.peak = dict(self.current)
        self.peak_total = self.total

    # ---- reports ------------------------------------------------------------------------------
    def as_dict(self) -> dict:
        return {
            "current": dict(self.current),
            "peak": dict(self.peak),
            "total": self.total,
            "peak_total": self.peak_total,
            "capacity": self.capacity,
        }

    def report(self) -> str:
        cap = "unlimited" if self.capacity is None else _fmt(self.capacity)
        lines = [
            f"{self.kind} rank {self.rank} (capacity {cap})",
            f"  {'tag':<17}{'current':>14}{'peak':>14}",
        ]
        for tag in TAGS:
            lines.append(f"  {tag:<17}{_fmt(self.current[tag]):>14}{_fmt(self.peak[tag]):>14}")
        lines.append(f"  {'total':<17}{_fmt(self.total):>14}{_fmt(self.peak_total):>14}")
        return "\n".join(lines)


class Device(MemoryLedger):
    """One simulated GPU's memory: a ledger with a capacity in bytes."""

    kind = "device"

    def __init__(self, capacity_bytes: int, rank: int = 0):
        super().__init__(capacity_bytes, rank)


class Host(MemoryLedger):
    """CPU memory of one rank, where offloaded states live (no capacity unless given)."""

    kind = "host"


# ---- activations, measured from the autograd graph --------------------------------------------


class ActivationTracker(GraphObserver):
    """Charge what autograd nodes save for backward to `ledger` under "activations".

    Use it around forward *and* backward:  `with ActivationTracker(device, exclude=params): ...`
    Each distinct base buffer is charged once, with a reference count over the nodes that saved
    it; it is released when the last of those nodes is released (by backward, or at once for
    nodes recorded under no_grad).
    """

    def __init__(self, ledger: MemoryLedger, exclude=()):
        self.ledger = ledger
        self._excluded: dict[int, np.ndarray] = {}
        self._refs: dict[int, int] = {}  # id(base) → number of saves still alive
        self._by_node: dict[int, list[int]] = {}  # id(ctx) → the bases it charged
        # The charged bases, held so that their ids cannot be reused by new arrays meanwhile.
        self._bases: dict[int, np.ndarray] = {}
        self._observe = observe(self)
        self.exclude(exclude)

    def exclude(self, arrays) -> None:
        """Never count these arrays (or views of their buffers): parameters, for instance."""
        for a in arrays:
            a = getattr(a, "data", a)  # accept Tensors / Parameters too
            base = _base(a)
            self._excluded[id(base)] = base

    def on_save(self, ctx, arrays):
        keys = []
        for a in arrays:
            if not isinstance(a, np.ndarray):
                continue
            base = _base(a)
            key = id(base)
            if key in self._excluded or self.ledger.holds(base):
                continue
            if key not in self._refs:
                self._refs[key] = 0
                self.ledger.charge(("activation", key), base.nbytes, "activations")
                self._bases[key] = base
            self._refs[key] += 1
            keys.append(key)
        if keys:
            self._by_node[id(ctx)] = self._by_node.get(id(ctx), []) + keys

    def on_release(self, ctx):
        for key in self._by_node.pop(id(ctx), ()):
            self._refs[key] -= 1
            if self._refs[key] == 0:
                del self._refs[key]
                self._bases.pop(key)
                self.ledger.release(("activation", key))

    def __enter__(self):
        self._observe.__enter__()
        return self

    def __exit__(self, *exc):
        return self._observe.__exit__(*exc)


# ---- the report: bytes per parameter beside the rule of thumb ---------------------------------


def bytes_per_parameter(ledger: MemoryLedger, n_params: int, which: str = "peak") -> dict:
    """Bytes per parameter for each tag (peak or current), and for their total."""
    if n_params <= 0:
        raise ValueError(f"n_params must be positive, got {n_params}")
    held = ledger.peak if which == "peak" else ledger.current
    out = {tag: held[tag] / n_params for tag in TAGS}
    out["total"] = (ledger.peak_total if which == "peak" else ledger.total) / n_params
    return out


def format_bytes_per_parameter(ledger: MemoryLedger, n_params: int, which: str = "peak") -> str:
    """A table: per tag, bytes, bytes per parameter, and the course notes' rule beside it."""
    per = bytes_per_parameter(ledger, n_params, which)
    held = ledger.peak if which == "peak" else ledger.current
    lines = [
        f"{ledger.kind} rank {ledger.rank}, {which}, {n_params:,} parameters",
        f"  {'tag':<17}{'bytes':>14}{'B/param':>10}{'notes rule':>12}",
    ]
    for tag in TAGS:
        rule = NOTES_RULE.get(tag)
        lines.append(
            f"  {tag:<17}{held[tag]:>14,}{per[tag]:>10.2f}{'' if rule is None else rule:>12}"
        )
    total = ledger.peak_total if which == "peak" else ledger.total
    lines.append(f"  {'total':<17}{total:>14,}{per['total']:>10.2f}{sum(NOTES_RULE.values()):>12}")
    return "\n".join(lines)
