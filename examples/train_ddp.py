"""Data parallelism with DDP on simulated GPUs: the first rung of the ZeRO ladder.

    mpirun -n 4 python examples/train_ddp.py                 # bucketed all-reduce (PyTorch DDP)
    mpirun -n 4 python examples/train_ddp.py --naive-ddp     # one all-reduce per parameter
    mpirun -n 2 python examples/train_ddp.py --accum-steps 2 # no_sync() gradient accumulation

The same script, flags and JSON report as examples/train_zero.py with `--stage 0`: every rank
holds the whole model (4Ψ + 4Ψ + 8Ψ bytes, printed per rank beside the formula), gradients are
averaged by a ring all-reduce (2Ψ(N−1)/N elements sent per rank per step, printed beside the
measured bytes), and the cost model says how long the step would take on the chosen GPU
profile, with the bucketed all-reduce overlapping backward on its timeline.
"""

import sim  # noqa: F401,I001 — first: thread settings before NumPy loads

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_zero import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(0 if main(stage=0) is not None else 1)
