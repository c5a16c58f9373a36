"""Cutting byte ranges out of a file and inserting new bytes, every other byte copied unchanged.

The container walkers (jpeg.py, png.py, riff.py, tiff.py) find the ranges, and the PDF writer
appends its update; this is the one place that rebuilds the file from them. The new file is not
joined into one buffer: it is kept as its pieces (``Spliced``), ranges of the original (views,
not copies) and the new bytes between them. A tag writes the pieces to the file one after
another and proves the ranges kept unchanged by where they were copied from
(``Spliced.copied``), so a 20 MB photo whose XMP changed is not copied once more in memory and
compared byte by byte; ``bytes()`` joins it where a caller needs it whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .tiff import Buffer

if TYPE_CHECKING:
    from . import Parsed

Piece = bytes | memoryview


class Spliced:
    """A file made of ``pieces``, in order: ranges of ``source`` (memoryviews of it) and new
    bytes. ``kept`` says where each range lies: (start, end) in the new file, start in the source."""

    __slots__ = ("source", "pieces", "kept", "size")

    def __init__(self, source: Buffer, pieces: tuple[Piece, ...], kept: tuple[tuple[int, int, int], ...]) -> None:
        self.source, self.pieces, self.kept = source, pieces, kept
        self.size = sum(len(p) for p in pieces)

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        return b"".join(self.pieces)

    def copied(self, start: int, end: int) -> int | None:
        """Where in ``source`` the new file's bytes ``[start, end)`` were copied from, when one
        range kept unchanged holds them all; else None."""
        for new_start, new_end, at in self.kept:
            if new_start <= start and end <= new_end:
                return at + start - new_start
        return None


def remember(parsed: Parsed | None, buf: Any, spliced: Spliced) -> None:
    """Keep, with the tag's ``parsed``, that ``buf`` holds the bytes ``spliced`` is made of (the
    joined pieces, or the file written from them)."""
    if parsed is not None:
        parsed.keep("splice", buf, spliced)


def made(buf: Any, parsed: Parsed | None) -> Spliced | None:
    """How ``buf`` was spliced from its original, when the tag's ``parsed`` remembers it."""
    return parsed.find("splice", buf) if parsed is not None else None


def edits(cuts: Iterable[tuple[int, int]], at: int, insert: bytes) -> list[tuple[int, int, bytes]]:
    """The edits (for ``replace``) that cut the ``[start, end)`` ranges in ``cuts`` and insert
    ``insert`` at offset ``at`` of the original. When ``at`` falls inside a cut range, the new
    bytes take the place where that range ended; the ranges must not overlap."""
    found: list[tuple[int, int, bytes]] = []
    inserted = False
    pos = 0
    for start, end in sorted(cuts):
        if not inserted and at <= start:
            found.append((max(at, pos), max(at, pos), insert))
            inserted = True
        found.append((start, end, b""))
        pos = end
    if not inserted:
        found.append((max(at, pos), max(at, pos), insert))
    return found


def splice(buf: Buffer, cuts: Iterable[tuple[int, int]], at: int, insert: bytes) -> Spliced:
    """``buf`` without the ``[start, end)`` ranges in ``cuts`` and with ``insert`` at offset ``at``
    (see ``edits``)."""
    return replace(buf, edits(cuts, at, insert))


def replace(buf: Buffer, changes: Iterable[tuple[int, int, bytes]]) -> Spliced:
    """``buf`` with each ``[start, end)`` range replaced by its bytes (an empty range inserts
    them), the ranges in order and not overlapping."""
    view = memoryview(buf)
    pieces: list[Piece] = []
    kept: list[tuple[int, int, int]] = []
    pos = size = 0

    def keep(start: int, end: int) -> None:
        nonlocal size
        if end > start:
            pieces.append(view[start:end])
            kept.append((size, size + end - start, start))
            size += end - start

    for start, end, new in changes:
        if start < pos or end < start:
            raise ValueError(f"edits out of order or overlapping at {start}")
        keep(pos, start)
        if new:
            pieces.append(new)
            size += len(new)
        pos = end
    keep(pos, len(buf))
    return Spliced(buf, tuple(pieces), tuple(kept))
