"""Where NumPy's arrays come from, and why a training step should not give memory back.

Every array a step creates — activations, their gradients, temporaries — is a `malloc` by
NumPy. On Linux, glibc serves an allocation bigger than its *mmap threshold* (128 KiB at
start) with a fresh `mmap` of zeroed pages and hands it back to the kernel with `munmap` when
the array dies; smaller ones come from the heap, whose free top is returned to the kernel
(`trim`) once it exceeds the *trim threshold*. Either way the next step asks for the same
sizes again and gets pages the kernel has to find, zero and map on first touch: one *minor
page fault* per 4 KiB page.

A step's arrays are the same every step, so this is pure waste. Measured here on R1 of
benchmarks/step.py (GPT 4 layers × 256, batch 8 × 128): 16,500 minor page faults per step —
65 MB of memory mapped, zeroed and unmapped again — and 0.22 s/step; with the thresholds
raised, 0 faults and 0.18 s/step, at the same peak RSS (the peak is the step's live arrays;
keeping freed pages only stops RSS from falling *between* steps). GPU frameworks solve the
same problem with a caching allocator (PyTorch's CUDA allocator keeps freed blocks for
reuse); on CPU, PyTorch's performance guide recommends swapping in jemalloc or tcmalloc.
tinyllm asks glibc for the same effect with two `mallopt` calls:

    M_MMAP_THRESHOLD = 32 MiB   arrays up to 32 MiB come from the heap, reused after free
    M_TRIM_THRESHOLD = 1 GiB    freed heap memory stays mapped until 1 GiB of it is free

`configure()` runs once when tinyllm is imported. Set TINYLLM_MALLOC=system before the
import to keep glibc's defaults (to measure the difference: `benchmarks/step.py` prints the
faults per step). On other C libraries (macOS, musl) it does nothing and says so.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1            # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20        # glibc's largest accepted value on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1 << 30
CHOICES = ("", "system")         # values of TINYLLM_MALLOC

_configured: bool | None = None


def configure() -> bool:
    """Raise glibc's mmap and trim thresholds (see the module docstring); True if applied.

    Idempotent. Returns False when TINYLLM_MALLOC=system or the C library is not glibc;
    raises ValueError for any other value of TINYLLM_MALLOC (a typo would otherwise be ignored).
    """
    global _configured
    if _configured is not None:
        return _configured
    choice = os.environ.get("TINYLLM_MALLOC", "")
    if choice.lower() not in CHOICES:
        raise ValueError(f"TINYLLM_MALLOC={choice!r}: expected one of {CHOICES} "
                         f"('' or unset: raise glibc's thresholds; 'system': keep its defaults)")
    _configured = False
    if choice.lower() == "system":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  (only glibc has it: musl's mallopt is a no-op)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _configured = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _configured


def configured() -> bool:
    """Whether `configure()` changed the allocator in this process."""
    return bool(_configured)
