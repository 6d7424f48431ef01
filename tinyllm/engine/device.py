"""Devices: where a tensor's numbers live. In tinyllm there is one, the CPU.

PyTorch code names a device everywhere — `torch.zeros(3, device="cuda")`, `x.to("cpu")`,
`model.to(device)` — so that the same program can run on a GPU. tinyllm computes with NumPy on
the CPU and nowhere else (its simulated GPUs are MPI processes, in `sim`, and hold ordinary
arrays), so a device argument can only say "cpu": `"cpu"`, `"cpu:0"` or `tinyllm.device("cpu")`
are accepted and change nothing; any other device ("cuda", "cuda:0", "mps") is a RuntimeError
that names it, rather than a program that silently runs somewhere its author did not intend.
"""

from __future__ import annotations


class device:  # noqa: N801 - PyTorch's name (torch.device)
    """`tinyllm.device("cpu")` / `device("cpu", 0)`: the one device tinyllm has."""

    __slots__ = ("type", "index")

    def __init__(self, spec="cpu", index=None):
        if isinstance(spec, device):
            spec, index = spec.type, spec.index if index is None else index
        if not isinstance(spec, str):
            raise TypeError(f"device: expected a string such as 'cpu', got {spec!r}")
        kind, _, number = spec.partition(":")
        if number:
            if index is not None:
                raise ValueError(f"device: {spec!r} already names an index; index={index}")
            index = int(number) if number.isdigit() else number
        if kind != "cpu" or index not in (None, 0):
            shown = spec if index is None or number else f"{spec}:{index}"
            raise RuntimeError(
                f"device {shown!r} is not available: tinyllm computes on the CPU with NumPy, "
                "so the only device is 'cpu'"
            )
        self.type, self.index = kind, index

    def __eq__(self, other):  # a device equals a device, not a string (as torch.device)
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))

    def __repr__(self):
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{index})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"


CPU = device("cpu")


def check_device(spec, op: str) -> device:
    """The device `spec` names (None means the CPU), or a RuntimeError naming `op` and it."""
    if spec is None:
        return CPU
    try:
        return device(spec)
    except (RuntimeError, TypeError, ValueError) as e:
        raise type(e)(f"{op}: {e}") from None
