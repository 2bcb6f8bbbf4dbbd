"""The C heap's freed memory kept for the next iteration while the engine works, and handed back when it stops.

Why: every iteration frees its feature maps and allocates the same ones again. glibc's malloc, left to its own
thresholds, gives a freed block of more than a few hundred KiB back to the system at once (an mmapped block, or the
top of the heap beyond its trim threshold), so the next iteration faults every page of it in afresh: 8,800 page
faults per iteration at 256 px and 26,400 at 512 px, an eighth of a 256 px iteration on the 2-core Zen 4 of
benchmarks/README.md (round ten). With the heap kept, a job faults only in its first iterations.

While any :func:`kept` block runs, blocks of up to 32 MiB (glibc's largest mmap threshold) come from the heap and
freed memory is not trimmed. When the outermost block ends, ``malloc_trim`` hands all freed memory back and glibc's
default trim threshold returns, so an idle engine process does not sit on its peak (peak RSS itself did not change:
benchmarks/README.md). The settings are the process's (malloc has no others); where the C library is not glibc (no
``mallopt``), nothing changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import threading
from typing import Iterator

# mallopt(3) parameters and values
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # the largest glibc takes on 64-bit
KEEP_ALL, DEFAULT_TRIM = 2**31 - 1, 128 * 1024  # the largest int mallopt takes; glibc's default


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


_LIBC = _glibc()
_lock = threading.Lock()
_depth = 0


@contextlib.contextmanager
def kept() -> Iterator[None]:
    """Freed memory stays in the heap until the outermost ``kept`` block ends (nested blocks, say an animation's
    frames, hand nothing back in between)."""
    global _depth
    with _lock:
        if _depth == 0 and _LIBC is not None:
            _LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            _LIBC.mallopt(M_TRIM_THRESHOLD, KEEP_ALL)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _LIBC is not None:
                _LIBC.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM)
                _LIBC.malloc_trim(0)
