"""Mixed precision on the simulated GPUs: a half-precision model, fp32 in the optimizer.

Mixed-precision training (Micikevicius et al. 2018) keeps the model — its parameters, hence its
gradients and the collectives that move them — in a 2-byte format (fp16, or bf16) and the
optimizer in fp32: an fp32 *master* copy of the parameters beside Adam's two fp32 moments. A
step casts the gradients up (dividing by the loss scale, for fp16), updates the masters, and
rounds them into the model's storage. Per parameter that is the ZeRO paper's layout
(Rajbhandari et al. 2019, section 3):

    2Ψ parameters + 2Ψ gradients + KΨ optimizer states,   K = 4 master + 4 m + 4 v = 12

With an fp32 (or fp64) model every piece degenerates: no master copy, no cast, K = 2 × 4 = 8.
`MixedPrecision` is the one place the strategies ask about the model's format; the stages carry
no precision branches of their own.
"""

from __future__ import annotations

import numpy as np

from tinyllm.dtypes import is_half, logical_dtype, to_float32, to_storage


class MixedPrecision:
    """The model's number format and what the optimizer needs in addition.

    storage_dtype   the parameters' array dtype (bf16 is uint16 bit patterns, tagged)
    format          the logical dtype: float32, float16 or bfloat16
    mixed           True for a half model: the optimizer holds fp32 masters
    itemsize        bytes per parameter or gradient element (b in the ZeRO formulas)
    master_dtype    what Adam updates in: float32 for a half model, else the model's dtype
    compute_dtype   the cost model's key for the GPU's peak FLOP/s (bf16/fp16 tensor cores)
    """

    def __init__(self, storage_dtype):
        self.storage_dtype = np.dtype(storage_dtype)
        self.format = logical_dtype(self.storage_dtype)
        self.mixed = is_half(self.storage_dtype)
        self.itemsize = self.storage_dtype.itemsize
        self.master_dtype = np.dtype(np.float32) if self.mixed else self.storage_dtype
        self.compute_dtype = {"bfloat16": "bf16", "float16": "fp16"}.get(
            str(self.format), self.storage_dtype
        )

    @property
    def optimizer_bytes(self) -> int:
        """K, the optimizer's bytes per parameter: m and v (2b), plus 4 for the fp32 master
        when the model is half precision (12, the ZeRO paper's mixed-precision layout)."""
        return 12 if self.mixed else 2 * self.itemsize

    @property
    def master_tag(self) -> str | None:
        """The ledger tag of a copy of parameters the optimizer updates beside the model's own:
        the fp32 masters count as optimizer state; None: no copy (Adam updates the model's)."""
        return "optimizer_states" if self.mixed else None

    @property
    def host_copy_tag(self) -> str:
        """The tag of the optimizer's copy of the parameters on the host (ZeRO-Offload):
        the masters for a half model, else an fp32 copy of the parameter shard."""
        return "optimizer_states" if self.mixed else "parameters"

    def to_master(self, values: np.ndarray) -> np.ndarray:
        """`values` (model storage) in the master dtype: exact (a half value fits in fp32)."""
        return to_float32(values) if self.mixed else values

    def nan(self):
        """NaN in the model's storage format (what freed ZeRO-3 buffers are filled with)."""
        return to_storage(np.array([np.nan], np.float32), self.format)[0]

    def gradients_for_update(self, shards: list, device, scaler=None) -> tuple[list, list]:
        """(fp32 shards, transient buffers): the (array, counted) pairs of `shards`, cast up
        to fp32 — into "buffers" allocated on `device`, freed by the caller after the step —
        and divided by the loss scale of `scaler`. In fp32 without a scaler: `shards` itself."""
        if not self.mixed and scaler is None:
            return shards, []
        inv = 1.0 / scaler.get_scale() if scaler is not None else 1.0
        out, buffers = [], []
        for g, counted in shards:
            if is_half(g.dtype):
                g32 = device.allocate(g.shape, np.float32, "buffers", "fp32 gradients")
                to_float32(g, out=g32)
                buffers.append(g32)
            else:
                g32 = g
            if inv != 1.0:
                g32 *= np.float32(inv)
            out.append((g32, counted))
        return out, buffers
