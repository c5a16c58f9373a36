"""ISO base media file format boxes (HEIF, AVIF; the C2PA store of MP4/M4A/MOV): the one box walker
of the image side, used by reading (carriers/containers.py) and the C2PA locator (carriers/manifest.py).

Every size is checked against its container before use (32-bit, 64-bit and "to the end" sizes);
the number of boxes walked is bounded by the caller's limit. The audio family's ISO-BMFF readers
(carriers/audio.py, audiotags.py) still walk on their own; see the closing note of issue 10.
"""

from __future__ import annotations

from ..errors import MalformedFile
from .tiff import Buffer

C2PA_UUID = bytes.fromhex("D8FEC3D61B0E483C92975828877EC481")


def box(buf: Buffer, pos: int, end: int) -> tuple[bytes, int, int]:
    """(type, payload start, box end) of the box at ``pos`` inside ``[pos, end)``."""
    if pos + 8 > end:
        raise MalformedFile(f"truncated ISO-BMFF: box header at offset {pos} runs past the end at {end}")
    size = int.from_bytes(buf[pos : pos + 4], "big")
    btype = bytes(buf[pos + 4 : pos + 8])
    payload = pos + 8
    if size == 1:
        if pos + 16 > end:
            raise MalformedFile(f"truncated ISO-BMFF: {btype!r} box at offset {pos} has no 64-bit size")
        size = int.from_bytes(buf[pos + 8 : pos + 16], "big")
        payload = pos + 16
    elif size == 0:
        size = end - pos
    if size < payload - pos:
        raise MalformedFile(f"ISO-BMFF: {btype!r} box at offset {pos} has invalid size {size}")
    if pos + size > end:
        raise MalformedFile(
            f"truncated ISO-BMFF: {btype!r} box at offset {pos} claims {size} bytes but its container ends at {end}"
        )
    return btype, payload, pos + size


def children(buf: Buffer, start: int, end: int, limit: int) -> list[tuple[bytes, int, int]]:
    """(type, payload start, box end) of every box in ``[start, end)``; at most ``limit`` of them."""
    boxes: list[tuple[bytes, int, int]] = []
    pos = start
    while pos < end:
        if len(boxes) >= limit:
            raise MalformedFile(f"ISO-BMFF: more than {limit} boxes at offset {start}")
        found = box(buf, pos, end)
        boxes.append(found)
        pos = found[2]
    return boxes


def c2pa_ranges(buf: Buffer, limit: int) -> list[tuple[int, int]]:
    """Top-level ``uuid`` boxes of the C2PA UUID, where c2pa keeps the manifest store."""
    return [
        (payload, end)
        for btype, payload, end in children(buf, 0, len(buf), limit)
        if btype == b"uuid" and bytes(buf[payload : payload + 16]) == C2PA_UUID
    ]
