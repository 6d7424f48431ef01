"""Random numbers: one explicit, seedable generator.

Every random choice in tinyllm — parameter initialization, dropout masks, data sampling,
token sampling — draws from a NumPy `Generator` that is either passed in explicitly or is the
module-level default set by `manual_seed(seed)`. The same seed therefore gives the same run,
on every machine and on every MPI rank. (NumPy's PCG64 stream is the same everywhere.)

The default generator starts from seed 0, so even a script that never seeds is reproducible.
"""

from __future__ import annotations

import numpy as np

_default = np.random.Generator(np.random.PCG64(0))


def manual_seed(seed: int) -> np.random.Generator:
    """Reset the default generator to `seed` (PyTorch's torch.manual_seed) and return it."""
    global _default
    _default = np.random.Generator(np.random.PCG64(int(seed)))
    return _default


def default_generator() -> np.random.Generator:
    return _default


def get_rng_state() -> dict:
    """The default generator's state, as plain JSON-able data (for checkpoints)."""
    return _default.bit_generator.state


def set_rng_state(state: dict) -> None:
    _default.bit_generator.state = state


def generator_or_default(generator) -> np.random.Generator:
    return _default if generator is None else generator
