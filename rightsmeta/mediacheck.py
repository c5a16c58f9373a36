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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .carriers import bmff, splice, tiff, walked
from .errors import LeaveToLibrary, MalformedFile

if TYPE_CHECKING:  # imported where used: only MP4 chunk tables need it
    import mmap

    import numpy as np

    from .carriers import Parsed, pdfobjects
    from .carriers.splice import Spliced

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
    import numpy as np

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
    import numpy as np

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


# --- MP3, FLAC, WAV: the tag is beside the audio ----------------------------------------------------

AUDIO_FORMATS = frozenset({"mp3", "flac", "wav"})
# WAV chunks no decoder reads to make samples (info lists, ID3, XMP, padding).
_WAV_METADATA = frozenset({b"LIST", b"id3 ", b"ID3 ", b"_PMX", b"JUNK", b"junk", b"PAD ", b"FLLR"})
# FLAC metadata blocks no decoder reads to make samples: PADDING, VORBIS_COMMENT, PICTURE.
_FLAC_METADATA = frozenset({1, 4, 6})
_MAX_FLAC_BLOCKS = 10_000

Pieces = list[tuple[tiff.Buffer, int, int]]  # (buffer, start, end): compared in place, never copied


def same_pieces(was: Pieces | None, now: Pieces | None, spliced: Spliced | None = None, new: Any = None) -> bool:
    """Whether two lists of pieces hold the same bytes, piece by piece; None (a walk that found
    something unexpected) is never the same. ``spliced``: how ``new``, a buffer ``now``'s pieces
    lie in, was made from its original (see ``same_range``)."""
    if was is None or now is None or len(was) != len(now):
        return False
    return all(a1 - a0 == b1 - b0 and same_range(a, a0, b, b0, b1, spliced, new)
               for (a, a0, a1), (b, b0, b1) in zip(was, now, strict=True))


def same_range(a: Any, a0: int, b: Any, b0: int, b1: int, spliced: Spliced | None = None, new: Any = None) -> bool:
    """Whether ``b[b0:b1]`` holds the bytes of ``a`` from ``a0`` on. Without comparing them when
    ``b`` is ``new``, which ``spliced`` made from ``a`` copying these very bytes from ``a0``: the
    photo a tag rewrote is not read again, only its new XMP and what the decoder reads before it."""
    if spliced is not None and b is new and a is spliced.source and spliced.copied(b0, b1) == a0:
        return True
    # startswith over a memoryview: memcmp in place, no copy of a megabyte of media data.
    return bool(a.startswith(memoryview(b)[b0:b1], a0))


def same_audio(before: bytes, after: bytes, fmt: str) -> bool:
    """Whether every byte an MP3, FLAC or WAV decoder reads to make samples is the same in both.

    False also when a walk finds anything unexpected: the samples are then decoded instead.
    """
    try:
        was, now = _audio_input(before, fmt), _audio_input(after, fmt)
    except (MalformedFile, struct.error, IndexError, ValueError):
        return False
    return same_pieces(was, now)


def _audio_input(data: bytes, fmt: str) -> Pieces | None:
    if fmt == "mp3":
        # Decoders skip a leading ID3v2 tag by its declared size and decode what follows.
        return [(data, id3v2_end(data), len(data))]
    if fmt == "flac":
        return _flac_input(data)
    if fmt == "wav":
        return _wav_input(data)
    return None


def id3v2_end(data: bytes) -> int:
    if data[:3] != b"ID3":
        return 0
    size = data[6:10]
    if len(size) < 4 or any(b & 0x80 for b in size) or data[3] not in (2, 3, 4):
        raise ValueError("not an ID3v2.2-2.4 header with a synchsafe size")
    # Only ID3v2.4 has a footer; the same flag bit in an older tag is no reason to skip 10 bytes.
    footer = 10 if data[3] == 4 and data[5] & 0x10 else 0
    end = 10 + (size[0] << 21 | size[1] << 14 | size[2] << 7 | size[3]) + footer
    if end > len(data):
        raise ValueError("an ID3v2 tag longer than the file")
    return end


def _flac_input(data: bytes) -> Pieces | None:
    if data[:4] != b"fLaC":
        return None  # an ID3 tag before it, or not FLAC: decoded instead
    kept: Pieces = [(data, 0, 4)]
    pos = 4
    for _ in range(_MAX_FLAC_BLOCKS):
        if pos + 4 > len(data):
            raise ValueError("a FLAC metadata block header is cut off")
        header = data[pos]
        end = pos + 4 + int.from_bytes(data[pos + 1 : pos + 4], "big")
        if end > len(data) or header & 0x7F == 127:
            raise ValueError("a FLAC metadata block is cut off or invalid")
        if header & 0x7F not in _FLAC_METADATA:
            # The type and the body: the last-block bit moves when metadata blocks are added.
            kind = bytes([header & 0x7F])
            kept += [(kind, 0, 1), (data, pos + 1, end)]
        pos = end
        if header & 0x80:
            kept.append((data, pos, len(data)))  # the frames, and anything after them
            return kept
    return None


def _wav_input(data: bytes) -> Pieces:
    from .carriers import riff

    found = riff.walk(data, b"WAVE")
    kept: Pieces = [(data, 0, 4), (data, 8, 12)]  # not the RIFF size, which metadata changes
    for chunk in found.chunks:
        if chunk.fourcc not in _WAV_METADATA:
            kept.append((data, chunk.start, found.padded_end(chunk)))
    kept.append((data, found.end, len(data)))
    return kept


# --- TIFF: the XMP value beside the image ------------------------------------------------------------

_STRIPS, _TILES = (273, 279), (324, 325)  # (offsets, byte counts)


def same_tiff(before: bytes, after: tiff.Buffer, parsed: Parsed | None = None) -> bool:
    """Whether the first page of a classic TIFF decodes from the same bytes in both files.

    The TIFF writer (carriers/tiff.set_xmp) changes only IFD0's XMP entry, the header's IFD0
    pointer when IFD0 had to grow, the old XMP value, and appends. So: IFD0's other entries and
    next pointer are the same, every byte of the original outside the header pointer, its IFD0
    and its XMP value is the same in the new file, and nothing the decoder reads (out-of-line
    values, strips, tiles) lies in those changed places or past the original's end.
    ``parsed``: the tag's walks of both (carriers/walked.py).
    """
    try:
        order, start, was, was_next = walked.tiff_directory(before, parsed)
        now_order, _, now, now_next = walked.tiff_directory(after, parsed)
        if now_order != order or len(after) < len(before):
            return False
        rows = [(e.tag, e.type, e.count, e.field) for e in was if e.tag != tiff.XMP_TAG]
        if was_next != now_next or rows != [(e.tag, e.type, e.count, e.field) for e in now if e.tag != tiff.XMP_TAG]:
            return False
        changed = [(4, 8), (start, start + 2 + 12 * len(was) + 4)]
        read: list[tuple[int, int]] = []
        for entry in was:
            tiff.check_value(before, entry)
            assert entry.size is not None
            if entry.tag == tiff.XMP_TAG:
                changed.append((entry.value_pos, entry.value_pos + entry.size))
            elif entry.size > 4:
                read.append((entry.value_pos, entry.value_pos + entry.size))
        read += _image_data(before, was, order)
        if any(a0 < b1 and b0 < a1 for a0, a1 in read for b0, b1 in changed):
            return False
        if any(end > len(before) for _, end in read):
            return False
        # Every byte of the original outside the changed places, compared in place.
        spliced = splice.made(after, parsed)
        pos = 0
        for c0, c1 in sorted(changed):
            if c0 > pos and not same_range(before, pos, after, pos, c0, spliced, after):
                return False
            pos = max(pos, c1)
        return same_range(before, pos, after, pos, len(before), spliced, after)
    except (MalformedFile, struct.error, IndexError, ValueError):
        return False


def _image_data(data: bytes, entries: Sequence[tiff.IfdEntry], order: str) -> list[tuple[int, int]]:
    by_tag = {e.tag: e for e in entries}
    for offsets_tag, counts_tag in (_STRIPS, _TILES):
        if offsets_tag in by_tag and counts_tag in by_tag:
            offsets, counts = (tiff.shorts_or_longs(data, by_tag[t], order) for t in (offsets_tag, counts_tag))
            if offsets is None or counts is None:
                raise ValueError("strip offsets neither SHORT nor LONG")
            if len(offsets) != len(counts) or not offsets:
                raise ValueError("strip or tile tables of different lengths")
            return [(o, o + c) for o, c in zip(offsets, counts, strict=True)]
    raise ValueError("no strips or tiles")


# --- PDF: an incremental update that changes no page ---------------------------------------------

_MAX_PDF_OBJECTS = 200_000  # objects followed from the catalog; more is decoded instead


def same_pdf(before: bytes, after: bytes | mmap.mmap, parsed: Parsed | None = None) -> bool:
    """Whether ``after`` is ``before`` plus an incremental update that leaves every page as it was.

    The update (one appended cross-reference section, chained to the original's) may redefine
    the catalog only by its ``/Metadata`` entry, and otherwise only objects that nothing in the
    original catalog leads to (its Info dictionary, its metadata stream) or new numbers nothing
    there names. Then every object a reader reaches from the pages resolves to the bytes it had.
    Object streams the original uses may not be redefined (their members would change). Read
    with the fast PDF reader; whatever it is unsure of is not proven (the pages are decoded).
    ``parsed``: the readers the tag's writer and read-back made of these bytes, used again.
    """
    from .carriers import pdfobjects as po

    if len(after) <= len(before) or not same_range(before, 0, after, 0, len(before), splice.made(after, parsed), after):
        return False
    try:
        old, new = po.reader(before, parsed), po.reader(after, parsed)
        old_sections, new_sections = old.sections(), new.sections()
        if [s[0] for s in new_sections[1:]] != [s[0] for s in old_sections] or new_sections[0][0] < len(before):
            return False  # not one section appended to the original chain
        if "/Encrypt" in old.trailer or "/Encrypt" in new.trailer:
            return False
        root = old.trailer.get("/Root")
        if not isinstance(root, po.Ref) or new.trailer.get("/Root") != root:
            return False
        catalog, updated = old.get(root), new.get(root)
        if not isinstance(catalog, dict) or not isinstance(updated, dict):
            return False
        rest = {k: v for k, v in catalog.items() if k != "/Metadata"}
        if rest != {k: v for k, v in updated.items() if k != "/Metadata"}:
            return False
        changed = new_sections[0][1] - {root.num}
        used_streams = set().union(*(s[2] for s in old_sections))
        return not changed & (_reachable(old, list(rest.values())) | used_streams)
    except (LeaveToLibrary, RecursionError, ValueError, IndexError, TypeError):
        return False


def _reachable(reader: pdfobjects.Reader, values: list[object]) -> set[int]:
    """The object numbers named by ``values`` and by everything they lead to (bounded)."""
    from .carriers import pdfobjects as po

    seen: set[int] = set()
    todo = values
    while todo:
        value = todo.pop()
        if isinstance(value, po.Ref):
            if value.num in seen:
                continue
            seen.add(value.num)
            if len(seen) > _MAX_PDF_OBJECTS:
                raise LeaveToLibrary
            todo.append(reader.get(value))  # a dangling reference is LeaveToLibrary: not proven
        elif isinstance(value, dict):
            todo.extend(value.values())
        elif isinstance(value, list):
            todo.extend(value)
        elif isinstance(value, po.Stream):
            todo.extend(value.dictionary.values())
    return seen
