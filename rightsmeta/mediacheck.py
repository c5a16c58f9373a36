"""The quick proof for MP4/M4A/MOV that tagging left the media as it was, without decoding.

A tag adds metadata (moov/udta, moov/meta, top-level uuid boxes) and may grow the moov box;
when moov sits before mdat, every chunk offset (stco/co64) then moves by the same amount.
A decoder reads, per track, the sample tables and the bytes those tables point at. So the media
are the same when every box the decoder reads is byte-identical apart from the chunk offsets,
and every chunk, located relative to the mdat box it lies in, has the same place and the same
bytes (compared as whole mdat payloads, in place, never copied).

This is a fast path only: whenever the walk meets something it does not prove (fragmented
files, a chunk outside any mdat, compact sample sizes, a malformed box), ``same_media`` returns
False and the caller decodes both files with ffmpeg instead.
"""

from __future__ import annotations

import struct

import numpy as np

from .carriers import bmff
from .errors import MalformedFile

FORMATS = frozenset({"m4a", "mp4", "mov"})
_MAX_BOXES = 10_000  # per level; more is not walked (decoded instead)
_MAX_CHUNKS = 10_000_000
# Read by no decoder to make samples (metadata and padding).
_TOP_SKIPPED = frozenset({b"free", b"skip", b"wide", b"uuid", b"udta", b"meta"})
_MOOV_SKIPPED = frozenset({b"free", b"skip", b"udta", b"meta"})
_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"})
_FRAGMENTS = frozenset({b"moof", b"mfra", b"mvex", b"sidx", b"styp"})


class _NotProven(Exception):
    """The walk met something it does not prove the same: decode instead."""


def same_media(before: bytes, after: bytes) -> bool:
    """Whether the media a decoder reads from ``after`` are those of ``before``."""
    try:
        was, now = _media(before), _media(after)
    except (_NotProven, MalformedFile, struct.error, IndexError, ValueError, OverflowError):
        return False
    (was_tables, was_mdats), (now_tables, now_mdats) = was, now
    if was_tables != now_tables or len(was_mdats) != len(now_mdats):
        return False
    for (a0, a1), (b0, b1) in zip(was_mdats, now_mdats, strict=True):
        # startswith over a memoryview: memcmp in place, no copy of the audio.
        if a1 - a0 != b1 - b0 or not before.startswith(memoryview(after)[b0:b1], a0):
            return False
    return True


def _media(data: bytes) -> tuple[list[bytes], list[tuple[int, int]]]:
    """What the decoder reads apart from mdat (the normalised box tree), and the mdat payloads."""
    top = bmff.walk(data, 0, len(data), limit=_MAX_BOXES, printable=True, tail="zeros")
    mdats = [(b.payload, b.end) for b in top if b.type == b"mdat"]
    moovs = [b for b in top if b.type == b"moov"]
    if len(moovs) != 1 or not mdats:
        raise _NotProven("not one moov and at least one mdat")
    tables: list[bytes] = []
    for box in top:
        if box.type in _FRAGMENTS:
            raise _NotProven("a fragmented file")
        if box.type == b"moov":
            tables.append(b"moov")
            _tree(data, box, mdats, tables)
        elif box.type == b"mdat":
            tables.append(b"mdat")
        elif box.type not in _TOP_SKIPPED:
            tables.append(data[box.start : box.end])  # ftyp and anything unknown: as it is
    return tables, mdats


def _tree(data: bytes, parent: bmff.Box, mdats: list[tuple[int, int]], tables: list[bytes]) -> None:
    for box in bmff.walk(data, parent.payload, parent.end, limit=_MAX_BOXES, printable=True, open_ended=False):
        if box.type in _FRAGMENTS:
            raise _NotProven("a fragmented file")
        if box.type in _MOOV_SKIPPED:
            continue
        if box.type in _CONTAINERS:
            # The type and the nesting, not the size: a container grows when metadata is added in it.
            tables.append(b"<" + box.type)
            _tree(data, box, mdats, tables)
            tables.append(b">")
            if box.type == b"stbl":
                tables.append(_chunks(data, box, mdats))
        elif box.type in (b"stco", b"co64"):
            continue  # replaced by the located chunks, after the stbl
        elif box.type == b"stz2":
            raise _NotProven("compact sample sizes are not located")
        else:
            tables.append(data[box.start : box.end])


def _chunks(data: bytes, stbl: bmff.Box, mdats: list[tuple[int, int]]) -> bytes:
    """Every chunk of one track as (mdat number, offset in that mdat); each must end in its mdat."""
    found = {b.type: b for b in bmff.walk(data, stbl.payload, stbl.end, limit=_MAX_BOXES, open_ended=False)}
    if b"stco" in found and b"co64" in found:
        raise _NotProven("both stco and co64")
    box = found.get(b"stco") or found.get(b"co64")
    stsc, stsz = found.get(b"stsc"), found.get(b"stsz")
    if box is None or stsc is None or stsz is None:
        raise _NotProven("a track without chunk offsets, sample-to-chunk or sample sizes")
    count = _count(data, box)
    offsets = np.frombuffer(data, dtype=">u4" if box.type == b"stco" else ">u8", count=count, offset=box.payload + 8)
    offsets = offsets.astype(np.int64)
    lengths = _chunk_lengths(data, stsc, stsz, count)
    starts = np.array([s for s, _ in mdats], dtype=np.int64)
    ends = np.array([e for _, e in mdats], dtype=np.int64)
    which = np.searchsorted(starts, offsets, side="right") - 1
    if count and (which.min() < 0 or np.any(offsets + lengths > ends[which])):
        raise _NotProven("a chunk outside the mdat boxes")
    located = np.stack([which, offsets - starts[which]], axis=1) if count else np.zeros((0, 2), np.int64)
    return b"chunks" + located.astype("<i8").tobytes()


def _count(data: bytes, box: bmff.Box) -> int:
    (count,) = struct.unpack_from(">I", data, box.payload + 4)
    width = 4 if box.type == b"stco" else 8
    if count > _MAX_CHUNKS or box.payload + 8 + count * width > box.end:
        raise _NotProven("a chunk table longer than its box")
    return int(count)


def _chunk_lengths(data: bytes, stsc: bmff.Box, stsz: bmff.Box, chunks: int) -> np.ndarray:
    """Bytes of samples in each chunk, from sample-to-chunk runs and the sample sizes."""
    (runs,) = struct.unpack_from(">I", data, stsc.payload + 4)
    if runs > _MAX_CHUNKS or stsc.payload + 8 + runs * 12 > stsc.end:
        raise _NotProven("a sample-to-chunk table longer than its box")
    table = np.frombuffer(data, dtype=">u4", count=runs * 3, offset=stsc.payload + 8).reshape(-1, 3).astype(np.int64)
    per_chunk = np.zeros(chunks, dtype=np.int64)
    for i, (first, samples, _) in enumerate(table):
        last = int(table[i + 1][0]) - 1 if i + 1 < runs else chunks
        if first < 1 or last < first - 1 or last > chunks:
            raise _NotProven("sample-to-chunk runs out of order")
        per_chunk[int(first) - 1 : last] = samples
    uniform, samples = struct.unpack_from(">II", data, stsz.payload + 4)
    total = int(per_chunk.sum())
    if total != samples or samples > _MAX_CHUNKS * 16:
        raise _NotProven("the sample tables disagree on the sample count")
    if uniform:
        return np.asarray(per_chunk * int(uniform), dtype=np.int64)
    if stsz.payload + 12 + samples * 4 > stsz.end:
        raise _NotProven("a sample size table longer than its box")
    sizes = np.frombuffer(data, dtype=">u4", count=samples, offset=stsz.payload + 12).astype(np.int64)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    first_sample = np.concatenate([[0], np.cumsum(per_chunk)])
    return np.asarray(bounds[first_sample[1:]] - bounds[first_sample[:-1]], dtype=np.int64)
