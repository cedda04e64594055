"""Keep numpy's large temporaries off ``mmap`` (Linux, glibc).

A training step allocates and frees dozens of temporaries of a few hundred KB. glibc serves blocks
above its mmap threshold (128 KB until it adapts) with fresh ``mmap`` pages, so every temporary
costs page faults and zeroing; measured on the MNIST MLP this halves the simulator's speed. Raising
the thresholds once (as glibc's own adaptive rule would after the first large ``free``) keeps those
blocks in the heap. It changes no result, only speed; other platforms are left alone.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
_done = False


def tune_allocator(mmap_threshold: int = 32 << 20, trim_threshold: int = 64 << 20) -> bool:
    """Raise glibc's mmap and trim thresholds once per process; returns whether it applied."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    _done = bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_TRIM_THRESHOLD, trim_threshold))
    return _done
