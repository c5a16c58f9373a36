"""The CLI's memory allocator settings for runs over many files (never called by the library).

Tagging reads each file into one buffer and builds the new file in another. With glibc's
defaults, a buffer over 128 KiB is a fresh mapping (or heap that is trimmed again as soon as
it is freed), so every page of every file is faulted in anew: the bench's 500 files (100 each
JPEG, PNG, WebP, TIFF, PDF) took 27,700 minor page faults, 5,000 with the heap kept. This
changes the whole process's allocator, which is the application's choice to make: hence the
CLI, not ``api``, which a server calls from its threads.
"""

from __future__ import annotations

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Buffers up to this size come from the heap and are reused, not mapped and unmapped per file.
_HEAP_BUFFERS = 64 * 1024 * 1024
# Freed heap kept for the next files, rather than given back and faulted in again.
_KEPT = 128 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Have glibc keep freed buffers for reuse; False where that cannot be asked (no glibc)."""
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (ImportError, OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    # mallopt returns 1 on success; the trim threshold first, so a heap grown by the second
    # setting is never trimmed under it.
    return bool(mallopt(_M_TRIM_THRESHOLD, _KEPT)) and bool(mallopt(_M_MMAP_THRESHOLD, _HEAP_BUFFERS))
