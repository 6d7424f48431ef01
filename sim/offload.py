"""ZeRO-Offload: the optimizer in host memory, the model on the device — the ladder's last rung.

A GPU's memory is small and dear; the host beside it has many times more. ZeRO-Offload (Ren et
al. 2021) moves to the host what the forward and backward passes never touch: the optimizer
states, an fp32 copy of the parameter shard for Adam to update (the masters of a half model),
and the gradient shard Adam reads. The Adam step runs on the CPU — here the same numba kernel,
on this machine's cores, and its measured time is what goes on the simulated timeline — and
every step moves, per rank, over the PCIe link (costed on the timeline's copy stream):

    device → host   the reduced gradient shard, bΨ/N     (once per reduce-scatter)
    host → device   the updated parameter shard, bΨ/N    (once per step)

The collectives between ranks are the stage's own. Model states per rank, with b bytes per
element, a micro-steps per step and G the gathered units of ZeRO-3 (sim/zero3.py):

    rung                 device              host                          PCIe per step
    ZeRO1Offload         bΨ + bΨ             16Ψ/N                         2 · bΨ/N
    ZeRO2Offload         bΨ                  16Ψ/N                         (a + 1) · bΨ/N
    ZeRO3Offload         bΨ/N + G            16Ψ/N                         (a + 1) · bΨ/N
    ZeRO3OffloadParams   G                   16Ψ/N (+ 2Ψ/N, half model)    3a · bΨ/N

The host's 16Ψ/N bytes are four fp32 shards of Ψ/N elements: the parameters (a half model's
masters, counted as optimizer state), m, v and the gradients. With `ZeRO3OffloadParams` even
the parameter shards live on the host: a shard is copied up before each of its all-gathers
(twice per micro-step) and the device holds parameters only while they are gathered (parameter
offload, which DeepSpeed added for stage 3 with ZeRO-Infinity, Rajbhandari et al. 2021).

`zero_class(stage, offload)` picks the rung for a stage and an offload choice.
"""

from __future__ import annotations

import time

from sim.zero import ZeRO1, ZeRO2
from sim.zero3 import ZeRO3

OFFLOAD_CHOICES = ("none", "optimizer", "params")


class OffloadOptimizer:
    """Mixin, the one idea of ZeRO-Offload: Adam's states and step on the host.

    Put before a ZeRO stage (`class ZeRO1Offload(OffloadOptimizer, ZeRO1)`): the optimizer is
    built in the host ledger over an fp32 copy of the parameter shard, runs on the CPU, and its
    result crosses PCIe back into the device's shard. The optimizer states leave the device:
    K bytes per parameter fewer there.
    """

    offload = "optimizer"

    def _optimizer_place(self):
        return self.host, self._host_copy_tag()

    def _host_copy_tag(self):
        """The tag of Adam's own copy of the parameter shard on the host."""
        return self.precision.host_copy_tag

    def _update_shards(self):
        t0 = time.perf_counter()
        self._adam_steps()
        # The host's Adam runs on this machine's CPU: its measured time is the honest figure.
        self.timeline.add("compute", time.perf_counter() - t0, "adam (host CPU, measured)")

    def _write_back(self):
        for st in self.units:
            st.opt.publish(st.param_shard)
            self._transfer(st.param_shard.nbytes, f"{st.name} param shard → device")

    def theory(self) -> dict:
        t = super().theory()
        t["optimizer_states"] = 0
        return t


class ZeRO1Offload(OffloadOptimizer, ZeRO1):
    """ZeRO-1 with the optimizer on the host. The full gradients stay on the device (stage 1
    accumulates them whole); after the last micro-step each rank copies its reduced gradient
    shard to the host once, cast to fp32 there.

        device  bΨ + bΨ        host  16Ψ/N        PCIe  bΨ/N down + bΨ/N up per step
    """

    def _setup_grads(self, st):
        super()._setup_grads(st)
        st.host_grad = self._alloc(
            self.host,
            st.layout.shard_size,
            "gradients",
            f"{st.name} grad shard",
            self.precision.master_dtype,
        )

    def _before_grads32(self):
        for st in self.units:
            st.host_grad[...] = self.precision.to_master(st.grad_shard)
            self._transfer(st.grad_shard.nbytes, f"{st.name} grad shard → host")

    def _grad_shards(self):
        return [(st.host_grad, True) for st in self.units]


class ZeRO2Offload(OffloadOptimizer, ZeRO2):
    """ZeRO-2 with the optimizer on the host. The gradient shard itself lives on the host:
    each unit's reduce-scatter result is streamed down as backward produces it and added to
    the host's fp32 shard (across micro-steps), so no gradient stays on the device.

        device  bΨ             host  16Ψ/N        PCIe  bΨ/N down per micro-step + bΨ/N up
    """

    def _setup_grads(self, st):
        st.grad_shard = self._alloc(
            self.host,
            st.layout.shard_size,
            "gradients",
            f"{st.name} grad shard",
            self.precision.master_dtype,
        )
        for p in st.unit.params:
            p.grad = None  # backward allocates them; we reduce and drop them unit by unit

    def _accumulate_shard(self, st, reduced):
        self._transfer(reduced.nbytes, f"{st.name} grad shard → host")
        st.grad_shard += self.precision.to_master(reduced)  # across micro-steps, in fp32

    def theory(self) -> dict:
        t = super().theory()
        t["gradients"] = 0
        return t


class ZeRO3Offload(ZeRO2Offload, ZeRO3):
    """ZeRO-3 with the optimizer on the host: ZeRO2Offload's gradient stream on ZeRO-3's
    gathered parameters. The parameter shards stay on the device.

        device  bΨ/N + G       host  16Ψ/N        PCIe  bΨ/N down per micro-step + bΨ/N up
    """


class ZeRO3OffloadParams(ZeRO3Offload):
    """ZeRO-3 with the optimizer *and* the parameter shards on the host: a shard is staged on
    the device just before each all-gather of its unit (forward and backward), and the device
    holds parameters only while a unit is gathered. Adam updates the host's shard in place
    (a half model: its fp32 masters, rounded into that shard).

        device  G              host  16Ψ/N (+ 2Ψ/N)   PCIe  bΨ/N up per all-gather + bΨ/N down
    """

    offload = "params"

    def _param_shard_ledger(self):
        return self.host

    def _host_copy_tag(self):
        return self.precision.master_tag  # the shard is already on the host: copy only masters

    def _all_gather_unit(self, st):
        staged = self._alloc(self.device, st.layout.shard_size, "buffers", "param shard (staged)")
        staged[...] = st.param_shard
        self._transfer(staged.nbytes, f"{st.name} param shard → device")
        self.group.all_gather(staged, st.full, st.name, wait=True)
        self.device.free(staged)

    def _write_back(self):
        for st in self.units:  # host to host: nothing crosses PCIe now
            st.opt.publish(st.param_shard)

    def theory(self) -> dict:
        t = super().theory()
        t["parameters"] = self._gathered_theory()
        return t


ZERO_CLASSES = {
    (1, "none"): ZeRO1,
    (2, "none"): ZeRO2,
    (3, "none"): ZeRO3,
    (1, "optimizer"): ZeRO1Offload,
    (2, "optimizer"): ZeRO2Offload,
    (3, "optimizer"): ZeRO3Offload,
    (3, "params"): ZeRO3OffloadParams,
}


def zero_class(stage: int, offload: str = "none") -> type:
    """The rung for ZeRO stage 1–3 with offload "none", "optimizer" or "params" (stage 3)."""
    if offload not in OFFLOAD_CHOICES:
        raise ValueError(f"offload must be one of {OFFLOAD_CHOICES}, got {offload!r}")
    if stage not in (1, 2, 3):
        raise ValueError(f"ZeRO stage must be 1, 2 or 3, got {stage!r}")
    if (stage, offload) not in ZERO_CLASSES:
        raise ValueError(
            f"offload='params' needs stage 3 (parameters are partitioned only "
            f"there); ZeRO-{stage} can offload 'optimizer'"
        )
    return ZERO_CLASSES[(stage, offload)]
