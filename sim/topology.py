"""The 3D grid: which rank holds which part of the model, and who talks to whom.

Three ways to split training over N = dp · tp · pp GPUs combine into one grid:

    tp  tensor parallelism   each layer's matrices split across tp ranks (sim/tensor_parallel.py);
                             two all-reduces of the activations per layer and direction, so it
                             wants the fastest links: the GPUs of one node
    pp  pipeline parallelism consecutive layers on pp ranks (sim/pipeline.py); one point-to-point
                             message per micro-batch and stage boundary: fine across nodes
    dp  data parallelism     dp replicas of all of the above, each on its share of the batch;
                             one gradient all-reduce per step

Rank layout. A rank has coordinates (dp, pp, tp) and, as in Megatron-LM (its default order
"tp-dp-pp"), tp varies fastest, then dp, then pp:

    rank = tp + TP · (dp + DP · pp)

so a tensor-parallel group is TP *consecutive* ranks — inside one node of 8 GPUs when TP ≤ 8,
which is what the cost model's intra-node link assumes (sim/cost.py) — and the pipeline axis is
the slowest. With DP = TP = PP = 2 (8 ranks):

    tp groups  [0 1] [2 3] [4 5] [6 7]      ranks that differ only in tp
    dp groups  [0 2] [1 3] [4 6] [5 7]      ... only in dp
    pp groups  [0 4] [1 5] [2 6] [3 7]      ... only in pp (stage 0 first)

Every communicator a 3D run needs is derived here by `world.split(color, key)`: ranks agreeing
on every coordinate but one share a color, and the key orders them along the remaining axis.
Two more groups: the *model-parallel* group (all tp × pp ranks of one replica — they hold
together one copy of the model, so a global gradient norm is summed over it), and the
*embedding* group, {first stage, last stage} of each pipeline, which hold the two copies of the
tied token embedding (wte and lm_head) and add their gradients (as Megatron-LM does).

Each sub-communicator counts its own traffic (and adds it to the world's), so `bytes_by_axis()`
says how many bytes a rank sent along each axis.
"""

from __future__ import annotations

from dataclasses import dataclass

AXES = ("dp", "pp", "tp")


@dataclass(frozen=True)
class Coord:
    dp: int
    pp: int
    tp: int


@dataclass(frozen=True)
class Grid:
    """The arithmetic of the layout (no MPI): sizes, coordinates and groups."""

    dp: int = 1
    tp: int = 1
    pp: int = 1

    def __post_init__(self):
        for axis in AXES:
            if int(getattr(self, axis)) < 1:
                raise ValueError(f"Grid: {axis} must be ≥ 1, got {getattr(self, axis)}")

    @property
    def size(self) -> int:
        return self.dp * self.tp * self.pp

    def rank_of(self, dp: int, pp: int, tp: int) -> int:
        return tp + self.tp * (dp + self.dp * pp)

    def coords(self, rank: int) -> Coord:
        if not 0 <= rank < self.size:
            raise ValueError(
                f"rank {rank} is outside a {self.describe()} grid of {self.size} ranks"
            )
        tp, rest = rank % self.tp, rank // self.tp
        return Coord(dp=rest % self.dp, pp=rest // self.dp, tp=tp)

    def groups(self, axis: str) -> list[list[int]]:
        """For one axis: the lists of ranks that differ only along it (each ordered along it)."""
        if axis not in AXES:
            raise ValueError(f"unknown axis {axis!r}; expected one of {AXES}")
        out = {}
        for r in range(self.size):
            c = self.coords(r)
            others = tuple(getattr(c, a) for a in AXES if a != axis)
            out.setdefault(others, []).append(r)
        ordered = [sorted(g, key=lambda r: getattr(self.coords(r), axis)) for g in out.values()]
        return sorted(ordered, key=min)

    def describe(self) -> str:
        return f"dp={self.dp} × tp={self.tp} × pp={self.pp}"

    def table(self) -> str:
        """One line per pipeline stage: the ranks of each replica, tp ranks side by side."""
        lines = [
            f"{self.describe()} = {self.size} ranks (rank = tp + {self.tp}·(dp + {self.dp}·pp))"
        ]
        for pp in range(self.pp):
            replicas = [
                " ".join(str(self.rank_of(dp, pp, tp)) for tp in range(self.tp))
                for dp in range(self.dp)
            ]
            row = "   ".join(f"[{r}]" for r in replicas)
            lines.append(f"  stage {pp}:  {row}")
        return "\n".join(lines)


class Topology:
    """A `Grid` on a world communicator, with one communicator per axis for this rank.

    Attributes: `grid`, `coord` (this rank's Coord), `dp_comm`, `tp_comm`, `pp_comm` (each of
    the axis' size, ranked along it), `mp_comm` (tp × pp ranks of this replica, ranked by
    pp·TP + tp), `embed_comm` (first and last stage of this pipeline; None if pp = 1 or this rank
    is on a middle stage).
    """

    def __init__(self, world, dp: int = 1, tp: int = 1, pp: int = 1):
        self.grid = Grid(dp=dp, tp=tp, pp=pp)
        if self.grid.size != world.size:
            raise ValueError(
                f"Topology: {self.grid.describe()} needs {self.grid.size} ranks, "
                f"but the world has {world.size} (run mpirun -n {self.grid.size})"
            )
        self.world = world
        g, c = self.grid, self.grid.coords(world.rank)
        self.coord = c
        # color: the coordinates that stay fixed within the group; key: the coordinate along it.
        self.tp_comm = world.split(c.dp + g.dp * c.pp, c.tp)
        self.dp_comm = world.split(c.tp + g.tp * c.pp, c.dp)
        self.pp_comm = world.split(c.tp + g.tp * c.dp, c.pp)
        self.mp_comm = world.split(c.dp, c.tp + g.tp * c.pp)
        ends = c.pp in (0, g.pp - 1) and g.pp > 1
        self.embed_comm = world.split(c.tp + g.tp * c.dp if ends else None, c.pp)
        self.axis_comms = {
            "dp": self.dp_comm,
            "tp": self.tp_comm,
            "pp": self.pp_comm,
            "embedding": self.embed_comm,
            "model_parallel": self.mp_comm,
        }

    def reset_stats(self) -> None:
        for comm in self.axis_comms.values():
            if comm is not None:
                comm.stats.reset()

    def bytes_by_axis(self) -> dict:
        """Bytes this rank sent along each axis since the last `reset_stats()` (the embedding
        and model-parallel groups apart: small all-reduces of gradients and of a norm)."""
        return {
            name: (0 if comm is None else int(comm.stats.total.bytes_sent))
            for name, comm in self.axis_comms.items()
        }
