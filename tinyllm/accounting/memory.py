"""Model-state memory per device under DDP and ZeRO, and the bytes each moves per step.

Training keeps three *model states* for each of the Ψ parameters (Rajbhandari et al. 2019,
"ZeRO", §3): the parameters, their gradients, and the optimizer's states. With mixed-precision
Adam the parameters and gradients are fp16 (2 + 2 bytes) and the optimizer keeps an fp32 master
copy, momentum and variance: K = 4 + 4 + 4 = 12 bytes. Pure fp32 Adam keeps 4 + 4 bytes of
parameters and gradients and K = 8 bytes of states (no master copy is needed).

Plain data parallelism (DDP) replicates all of it on each of the N devices. ZeRO removes the
redundancy one state at a time — each device keeps only its 1/N partition:

    stage 0  DDP        (2 + 2 + K)·Ψ            = 16Ψ bytes with K = 12
    stage 1  P_os       2Ψ + 2Ψ + K·Ψ/N          optimizer states partitioned
    stage 2  P_os+g     2Ψ + (2 + K)·Ψ/N         + gradients partitioned
    stage 3  P_os+g+p   (2 + 2 + K)·Ψ/N          + parameters partitioned

(2 and 2 are the bytes per parameter and per gradient; `zero_memory` takes them as arguments.)
For Ψ = 7.5B and N = 64 that is 120 GB → 31.4 GB → 16.6 GB → 1.88 GB per device, the paper's
Figure 1. Its Table 1 prints GB = 10⁹ bytes: 16 bytes × 7.5·10⁹ = 120·10⁹, printed "120".
`ZERO_TABLE1` holds the paper's printed numbers; tests/accounting/test_memory.py checks every
cell against this module's formulas.

Stage 3 also needs room for the one layer it has gathered to compute with (`largest_layer`);
the paper's table leaves that out, and so does the default here.

Communication per device per step, in elements (the paper's §7; ring collectives, each device
sends (N−1)/N of the data per reduce-scatter or all-gather):

    DDP, stage 1, stage 2   2Ψ·(N−1)/N   all-reduce = reduce-scatter + all-gather
    stage 3                 3Ψ·(N−1)/N   all-gather before forward, again before backward,
                                         reduce-scatter of gradients
    stage 3, parameters kept between forward and backward: 2Ψ·(N−1)/N

The course notes' rule of thumb for fp32 training — 4 bytes of weights + 20 extra bytes per
parameter (4 gradients, 8 Adam, 8 activations and temporaries), ~24 GB for 1B parameters — is
the DDP fp32 layout (16 bytes) plus a fixed 8-byte activation allowance: `notes_rule_of_thumb`.
"""

from __future__ import annotations

from dataclasses import dataclass

GB = 1e9  # the ZeRO paper's gigabyte (its numbers are 10⁹ bytes: 7.5e9 × 16 B = "120GB")

STAGE_NAMES = {0: "DDP", 1: "P_os", 2: "P_os+g", 3: "P_os+g+p"}


@dataclass(frozen=True)
class Precision:
    """Bytes per parameter for the parameters, the gradients, and the optimizer states (K)."""

    param: float
    grad: float
    optim: float


MIXED_PRECISION_ADAM = Precision(param=2, grad=2, optim=12)  # fp16 p, g; fp32 master, m, v
FP32_ADAM = Precision(param=4, grad=4, optim=8)  # fp32 p, g; fp32 m, v


@dataclass(frozen=True)
class ModelStateMemory:
    """Bytes per device for each model state."""

    parameters: float
    gradients: float
    optimizer_states: float

    @property
    def total(self) -> float:
        return self.parameters + self.gradients + self.optimizer_states

    def as_dict(self) -> dict:
        return {
            "parameters": self.parameters,
            "gradients": self.gradients,
            "optimizer_states": self.optimizer_states,
            "total": self.total,
        }


def _check(psi, n_devices, stage):
    if not psi > 0:
        raise ValueError(f"number of parameters Ψ must be positive, got {psi!r}")
    if int(n_devices) != n_devices or n_devices < 1:
        raise ValueError(f"data-parallel degree N must be a positive integer, got {n_devices!r}")
    if stage not in STAGE_NAMES:
        raise ValueError(
            f"ZeRO stage must be one of {sorted(STAGE_NAMES)} (0 = DDP), got {stage!r}"
        )


def zero_memory(
    psi: float,
    n_devices: int,
    stage: int,
    precision: Precision = MIXED_PRECISION_ADAM,
    largest_layer: float = 0,
) -> ModelStateMemory:
    """Model-state bytes per device for Ψ parameters on N data-parallel devices.

    Stage s partitions the optimizer states (s ≥ 1), the gradients (s ≥ 2), the parameters
    (s = 3) over the N devices. `largest_layer` (parameters) adds stage 3's gathered layer.
    """
    _check(psi, n_devices, stage)
    n = n_devices
    params = precision.param * psi / (n if stage >= 3 else 1)
    if stage >= 3:
        params += precision.param * largest_layer
    grads = precision.grad * psi / (n if stage >= 2 else 1)
    optim = precision.optim * psi / (n if stage >= 1 else 1)
    return ModelStateMemory(params, grads, optim)


def zero_communication_elements(
    psi: float, n_devices: int, stage: int, reshard_after_forward: bool = True
) -> float:
    """Elements each device sends per training step (ring collectives), the paper's volumes."""
    _check(psi, n_devices, stage)
    passes = 3 if stage == 3 and reshard_after_forward else 2
    return passes * psi * (n_devices - 1) / n_devices


def notes_rule_of_thumb(n_params: float, activation_bytes_per_param: float = 8) -> dict:
    """The notes' fp32 estimate: weights 4 + gradients 4 + Adam 8 + activations 8 bytes/param.

    Returns bytes per item and the total; the first three are `zero_memory(Ψ, 1, 0, FP32_ADAM)`.
    The activation term is the notes' "high-end estimate", not a formula: real activations
    depend on batch size and sequence length, not on the parameter count.
    """
    states = zero_memory(n_params, 1, 0, FP32_ADAM)
    activations = activation_bytes_per_param * n_params
    return {
        "weights": states.parameters,
        "gradients": states.gradients,
        "adam": states.optimizer_states,
        "activations": activations,
        "total": states.total + activations,
    }


# The ZeRO paper's Table 1 (Rajbhandari et al. 2019, arXiv:1910.02054): per-device memory of
# model states in GB for mixed-precision Adam (K = 12), typed in as printed — strings keep the
# printed precision. {Ψ: {N: (P_os, P_os+g, P_os+g+p)}}. Never computed here.
ZERO_TABLE1 = {
    7.5e9: {
        1: ("120", "120", "120"),
        4: ("52.5", "41.3", "30"),
        16: ("35.6", "21.6", "7.5"),
        64: ("31.4", "16.6", "1.88"),
        256: ("30.4", "15.4", "0.47"),
        1024: ("30.1", "15.1", "0.12"),
    },
    128e9: {
        1: ("2048", "2048", "2048"),
        4: ("896", "704", "512"),
        16: ("608", "368", "128"),
        64: ("536", "284", "32"),
        256: ("518", "263", "8"),
        1024: ("513", "257", "2"),
    },
    1e12: {
        1: ("16000", "16000", "16000"),
        4: ("7000", "5500", "4000"),
        16: ("4750", "2875", "1000"),
        64: ("4187", "2218", "250"),
        256: ("4046", "2054", "62.5"),
        1024: ("4011", "2013", "15.6"),
    },
}


def zero_table(
    psis=tuple(ZERO_TABLE1),
    degrees=(1, 4, 16, 64, 256, 1024),
    precision: Precision = MIXED_PRECISION_ADAM,
) -> dict:
    """{Ψ: {N: (stage 1, stage 2, stage 3) GB per device}} from the formulas (Table 1's layout)."""
    return {
        psi: {
            n: tuple(zero_memory(psi, n, s, precision).total / GB for s in (1, 2, 3))
            for n in degrees
        }
        for psi in psis
    }
