"""Where NumPy's arrays come from, and why a training step should not give memory back.

Every array a step creates — activations, their gradients, temporaries — is a `malloc` by
NumPy. On Linux, glibc serves an allocation bigger than its *mmap threshold* (128 KiB at
start) with a fresh `mmap` of zeroed pages and hands it back to the kernel with `munmap` when
the array dies; smaller ones come from the heap, whose free top is returned to the kernel
(`trim`) once it exceeds the *trim threshold*. Either way the next step asks for the same
sizes again and gets pages the kernel has to find, zero and map on first touch: one *minor
page fault* per 4 KiB page.

A step's arrays are the same every step, so giving their pages back only to fault them in
again is pure waste. GPU frameworks solve the same problem with a caching allocator (PyTorch's
CUDA allocator keeps freed blocks for reuse); on CPU, PyTorch's performance guide recommends
swapping in jemalloc or tcmalloc. tinyllm asks glibc for the same effect with two `mallopt`
calls:

    M_MMAP_THRESHOLD = 32 MiB   arrays up to 32 MiB come from the heap, reused after free
    M_TRIM_THRESHOLD = 1 GiB    freed heap memory stays mapped until 1 GiB of it is free

The peak memory is unchanged (it is the step's live arrays); what changes is that memory no
longer falls *between* steps. docs/03-kernels.md shows the page faults per step and the time
they cost, measured by benchmarks/step.py.

This changes the whole process's allocator, so a library must not do it behind the user's
back: importing tinyllm leaves glibc alone. A program asks for it by calling `configure()` —
the examples' shared start-up (examples/common.py) and the benchmarks do. The environment
variable TINYLLM_MALLOC decides for any program: `tuned` applies the thresholds when tinyllm
is imported (for your own scripts), `system` keeps glibc's defaults even where a program
calls `configure()` (to measure the difference), and unset leaves the choice to the program.
On other C libraries (macOS, musl) `configure()` does nothing and returns False.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest accepted value on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1 << 30
CHOICES = ("", "tuned", "system")  # values of TINYLLM_MALLOC

_configured: bool | None = None


def choice() -> str:
    """TINYLLM_MALLOC, checked: '' (unset), 'tuned' or 'system'. A typo is an error, not a
    silent fallback to either behaviour."""
    value = os.environ.get("TINYLLM_MALLOC", "")
    if value.lower() not in CHOICES:
        raise ValueError(
            f"TINYLLM_MALLOC={value!r}: expected one of {CHOICES} ('tuned': "
            f"raise glibc's thresholds at import; 'system': keep its defaults; "
            f"unset: the program decides)"
        )
    return value.lower()


def configure() -> bool:
    """Raise glibc's mmap and trim thresholds (see the module docstring); True if applied.

    Idempotent. Returns False when TINYLLM_MALLOC=system or the C library is not glibc.
    """
    global _configured
    if _configured is not None:
        return _configured
    _configured = False
    if choice() == "system":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  (only glibc has it: musl's mallopt is a no-op)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _configured = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    return _configured


def configured() -> bool:
    """Whether `configure()` changed the allocator in this process."""
    return bool(_configured)
