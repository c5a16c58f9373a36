"""Recognising a C2PA manifest store by its first bytes, wherever it sits.

A store is a JUMBF superbox whose description box ('jumd') starts with the C2PA UUID, whose first
four bytes spell "c2pa". The description box stands within the first few hundred bytes of the
element holding the store: 20 bytes into a JPEG APP11 segment, a PNG chunk or a RIFF chunk, 57
into a BMFF uuid box (after its UUID, purpose and offset: the longest lead-in). Only those first
bytes are looked at: a search costs about 2 us a kilobyte, and a scan's whole read of a file 50.
The walkers list an element holding one among the places a store sits even when its own header
was damaged (an APP11 marker, a caBX or C2PA type, a uuid box's type or UUID): c2pa then finds no
store there, and the read says a store was not read instead of reading the file as unsigned.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .tiff import Buffer

# The superbox's type, its description box's size, then that box's type and the UUID's "c2pa":
# eight bytes alone ("jumdc2pa") were found by hypothesis in an unknown WebP chunk.
SIGNATURE = re.compile(rb"jumb.{4}jumdc2pa", re.DOTALL)
PEEK = 104


def holds_store(buf: Buffer, start: int, end: int) -> bool:
    """Whether the element at ``[start, end)`` of ``buf`` begins with a C2PA store's superbox."""
    return SIGNATURE.search(buf, start, min(end, start + PEEK)) is not None


def finds_store(buf: Buffer, start: int, end: int) -> bool:
    """Whether a C2PA store's superbox begins anywhere in ``[start, end)`` of ``buf``."""
    return SIGNATURE.search(buf, start, end) is not None


# --- a store's structure, checked before c2pa parses it -----------------------------------------
#
# c2pa-rs trusts the lengths inside a store's CBOR: a text string claiming 1.8 GB in a 24 KB WAV
# (one flipped byte) cost 9 s and 1.8 GB of memory to read (c2pa-python 0.38). Every JUMBF box
# and CBOR item of the store is checked to fit in what holds it first; a store that does not is
# damaged, and is reported unread without c2pa.

_MAX_DEPTH = 32


def store_damage(jumbf: bytes) -> str | None:
    """Why the JUMBF of a C2PA store (its top-level 'jumb' superbox, first) does not add up: a box
    past its parent's end, or a CBOR length or count past its box's end; None when everything fits."""
    if len(jumbf) < 8:
        return "the store is cut short"
    # The top-level superbox alone: what follows it (a RIFF pad byte, a segment's rest) is not its own.
    size = int.from_bytes(jumbf[:4], "big")
    head = 16 if size == 1 else 8
    size = int.from_bytes(jumbf[8:16], "big") if size == 1 else size or len(jumbf)
    return _damage(jumbf, 0, min(len(jumbf), size) if size >= head else len(jumbf), 0)


class Box(NamedTuple):
    kind: bytes
    start: int
    payload: int  # after the 8- or 16-byte header
    end: int


def boxes(data: bytes, start: int, end: int) -> list[Box]:
    """The JUMBF boxes (ISO BMFF-style) filling ``data[start:end]`` exactly; ValueError, saying
    which, when one does not fit."""
    found, pos = [], start
    while pos < end:
        if end - pos < 8:
            raise ValueError(f"JUMBF box at byte {pos} is cut short")
        size, kind, head = int.from_bytes(data[pos : pos + 4], "big"), bytes(data[pos + 4 : pos + 8]), 8
        if size == 1:  # a 64-bit size follows the type
            if end - pos < 16:
                raise ValueError(f"JUMBF box at byte {pos} is cut short")
            size, head = int.from_bytes(data[pos + 8 : pos + 16], "big"), 16
        elif size == 0:  # to the end
            size = end - pos
        if size < head or size > end - pos:
            raise ValueError(f"JUMBF '{kind.decode('latin-1')}' box at byte {pos} claims {size} bytes, {end - pos} left")
        found.append(Box(kind, pos, pos + head, pos + size))
        pos += size
    return found


def _damage(data: bytes, start: int, end: int, depth: int) -> str | None:
    if depth > _MAX_DEPTH:
        return "JUMBF boxes nested too deep"
    try:
        level = boxes(data, start, end)
    except ValueError as exc:
        return str(exc)
    for box in level:
        found = (_damage(data, box.payload, box.end, depth + 1) if box.kind == b"jumb"
                 else cbor_damage(data, box.payload, box.end) if box.kind == b"cbor" else None)
        if found is not None:
            return found
    return None


def cbor_damage(data: bytes, pos: int, end: int) -> str | None:
    """Why the CBOR data item(s) in ``data[pos:end]`` are not well-formed as far as lengths go: a
    string, array or map claiming more than is left, a head cut short, nesting past a bound."""
    stack: list[int] = []  # what is left to read at each open level; -1: until a break
    left = -1  # the top level: items until the end
    while True:
        if left == 0:
            left = stack.pop()
            continue
        if pos >= end:
            return None if not stack and left == -1 else f"CBOR ends at byte {pos}, inside an item"
        head = data[pos]
        pos += 1
        major, info = head >> 5, head & 31
        arg: int | None
        if info < 24:
            arg = info
        elif info < 28:
            width = 1 << (info - 24)
            if pos + width > end:
                return f"CBOR ends at byte {end}, inside the head at byte {pos - 1}"
            arg = int.from_bytes(data[pos : pos + width], "big")
            pos += width
        elif info == 31 and major in (2, 3, 4, 5, 7):
            arg = None
        else:
            return f"CBOR head 0x{head:02x} at byte {pos - 1} is not well-formed"
        if major == 7 and arg is None:  # a break ends an indefinite-length item
            if left != -1 or not stack:
                return f"CBOR break at byte {pos - 1} outside an indefinite-length item"
            left = stack.pop()
            continue
        if left > 0:
            left -= 1
        if major in (2, 3) and arg is not None:
            if arg > end - pos:
                return f"CBOR string at byte {pos} claims {arg} bytes, {end - pos} left"
            pos += arg
        elif major in (2, 3, 4, 5, 6):
            # Each entry takes a byte at least: a count past the bytes left is damage, whatever it holds.
            count = 1 if major == 6 else -1 if arg is None else arg * (2 if major == 5 else 1)
            if count > end - pos:
                return f"CBOR {'map' if major == 5 else 'array'} at byte {pos} claims {arg} entries, {end - pos} bytes left"
            if count:
                if len(stack) >= _MAX_DEPTH:
                    return f"CBOR nested more than {_MAX_DEPTH} deep"
                stack.append(left)
                left = count
