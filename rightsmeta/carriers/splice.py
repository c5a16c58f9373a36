"""Cutting byte ranges out of a file and inserting new bytes, every other byte copied unchanged.

The container walkers (jpeg.py, png.py, riff.py) find the ranges; this is the one place that
rebuilds the file from them.
"""

from __future__ import annotations

from collections.abc import Iterable

from .tiff import Buffer


def splice(buf: Buffer, cuts: Iterable[tuple[int, int]], at: int, insert: bytes) -> bytes:
    """``buf`` without the ``[start, end)`` ranges in ``cuts`` and with ``insert`` at offset ``at``.

    ``at`` is an offset of the original. When it falls inside a cut range, the new bytes take
    the place where that range ended; the ranges must not overlap.
    """
    edits: list[tuple[int, int, bytes]] = []
    inserted = False
    pos = 0
    for start, end in sorted(cuts):
        if not inserted and at <= start:
            edits.append((max(at, pos), max(at, pos), insert))
            inserted = True
        edits.append((start, end, b""))
        pos = end
    if not inserted:
        edits.append((max(at, pos), max(at, pos), insert))
    return replace(buf, edits)


def replace(buf: Buffer, edits: Iterable[tuple[int, int, bytes]]) -> bytes:
    """``buf`` with each ``[start, end)`` range replaced by its bytes (an empty range inserts
    them), the ranges in order and not overlapping: the new file in one copy, not three."""
    view = memoryview(buf)
    pieces: list[bytes | memoryview] = []
    pos = 0
    for start, end, new in edits:
        if start < pos or end < start:
            raise ValueError(f"edits out of order or overlapping at {start}")
        pieces += (view[pos:start], new)
        pos = end
    pieces.append(view[pos:])
    return b"".join(pieces)
