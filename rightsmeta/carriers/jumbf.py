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

from .tiff import Buffer

SIGNATURE = b"jumdc2pa"
PEEK = 96


def holds_store(buf: Buffer, start: int, end: int) -> bool:
    """Whether the element at ``[start, end)`` of ``buf`` begins with a C2PA store's description."""
    return buf.find(SIGNATURE, start, min(end, start + PEEK)) >= 0
