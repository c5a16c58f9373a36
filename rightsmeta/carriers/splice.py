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
    out = bytearray()
    pos = 0
    inserted = False
    for start, end in sorted(cuts):
        if not inserted and at <= start:
            if at > pos:
                out += buf[pos:at]
                pos = at
            out += insert
            inserted = True
        out += buf[pos:start]
        pos = end
    if not inserted:
        if at > pos:
            out += buf[pos:at]
            pos = at
        out += insert
    out += buf[pos:]
    return bytes(out)
