"""The worker process's memory, tuned through glibc's allocator: fewer malloc arenas, and freed memory handed back.

Both are no-ops where the C library is not glibc (macOS, musl): there is nothing to tune there and nothing lost.
"""

import ctypes
from functools import lru_cache

M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)
MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """Cap glibc's malloc arenas, before the request threads start. glibc gives threads arenas of their own (up
    to 8 per core), and each keeps its own freed pieces, so a worker's memory grows with its threads for no gain:
    Python's small objects don't use malloc, so there is little to contend for."""
    if glibc := _glibc():
        glibc.mallopt(M_ARENA_MAX, arenas)


def release_freed_memory() -> None:
    """Hand freed memory back to the system: after loading (the parsed protobuf, unpacked weights), and after a
    long sentence (its activations). glibc keeps it otherwise, and a worker would stay at its largest for good
    (tests/test_faults.py checks that a 1,024-token sentence leaves nothing behind)."""
    if glibc := _glibc():
        glibc.malloc_trim(0)


@lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    """glibc, whose allocator this module tunes; None under another C library."""
    try:
        glibc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return glibc if hasattr(glibc, "mallopt") and hasattr(glibc, "malloc_trim") else None
