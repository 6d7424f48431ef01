"""sim: MPI ranks as simulated GPUs.

One MPI rank plays one GPU. What a real cluster would do in hardware is written out here, so it
can be read and measured. The modules, in reading order:

    sim.launch           init(): thread limits, numba warm-up in order, abort-on-exception
    sim.deadline         no wait without a deadline; the ranks name the one that failed
    sim.watchdog         names a rank killed outright; removes the job's MPICH temp files
    sim.traffic          CommRecord / CommStats: the bytes and messages of every call
    sim.agreement        checked mode: every rank must enter the same collective
    sim.comm             Communicator: ranks, sub-groups, send/recv, collectives, byte counters
    sim.collectives      ring reduce-scatter / all-gather / all-reduce and tree broadcast /
                         reduce, message by message, beside MPI's built-in versions
    sim.device           Device / Host memory ledgers (tagged, with peaks and out-of-memory),
                         activations measured from the autograd graph
    sim.cost             hardware profiles and a per-rank timeline: simulated seconds of a step
    sim.flat             flat buffers: parameters as views, padded shards, units (blocks)
    sim.precision        a half model with fp32 masters: the mixed-precision layout, K = 12
    sim.strategy         the training-loop API every strategy shares, AdamW on a shard, the
                         checkpoint protocol
    sim.ddp              NaiveDDP → DDP: every rank a replica, gradients all-reduced (buckets)
    sim.sharding         ShardGroup: which ranks share a shard; hybrid sharding (factor F)
    sim.zero             the ZeRO ladder; ZeRO1, ZeRO2: optimizer states, then gradients sharded
    sim.zero3            ZeRO3 (FSDP): parameters sharded too, gathered per unit while it runs
    sim.offload          ZeRO-Offload: optimizer (and ZeRO-3's parameter shards) on the host
    sim.checkpoint       sharded checkpoints, saved by any world size, loaded by any other
    sim.tensor_parallel  Megatron tensor parallelism: column- and row-parallel layers
    sim.pipeline         pipeline stages, GPipe and 1F1B schedules, the bubble
    sim.topology         the dp × tp × pp grid of ranks and its communicators
    sim.parallel3d       Parallel3D: data × tensor × pipeline parallelism in one strategy

A script starts with `world = sim.init()` and runs the same under `python script.py` (world size
1) and `mpirun -n 4 python script.py`.
"""

# Thread variables must be set before NumPy loads BLAS: this comes before every other import.
from sim.launch import set_thread_env_defaults as _set_thread_env_defaults

_set_thread_env_defaults()

from sim.comm import (  # noqa: E402
    CollectiveMismatchError,
    CollectiveTimeoutError,
    CommRecord,
    CommStats,
    Communicator,
)
from sim.cost import PROFILES, Event, HardwareProfile, Link, Timeline, get_profile  # noqa: E402
from sim.device import (  # noqa: E402
    TAGS,
    ActivationTracker,
    Device,
    Host,
    MemoryLedger,
    OutOfMemoryError,
    bytes_per_parameter,
    format_bytes_per_parameter,
)
from sim.launch import init, world  # noqa: E402

__all__ = [
    "init",
    "world",
    "Communicator",
    "CommRecord",
    "CommStats",
    "CollectiveMismatchError",
    "CollectiveTimeoutError",
    "Device",
    "Host",
    "MemoryLedger",
    "OutOfMemoryError",
    "TAGS",
    "ActivationTracker",
    "bytes_per_parameter",
    "format_bytes_per_parameter",
    "Link",
    "HardwareProfile",
    "PROFILES",
    "get_profile",
    "Timeline",
    "Event",
]
