"""ISO base media file format boxes (HEIF, AVIF, MP4, M4A, MOV): the one box walker, used by
reading (carriers/containers.py, carriers/audio.py, carriers/audiotags.py), the MP4 XMP writer
(carriers/audio.py) and the C2PA locator (carriers/manifest.py).

Every size is checked against its container before use (32-bit, 64-bit and "to the end" sizes);
the number of boxes walked is bounded by the caller's limit, the depth by the caller (who decides
which boxes are containers). What differs between callers is policy, chosen by arguments of
``walk``: whether a size of 0 ("to the end") is allowed at this level, whether fewer than 8 bytes
left at the end of a level are slack or a cut-off header, and whether a box type must be a
printable four-character code. Items of a HEIF/AVIF 'meta' box (iinf, iloc, idat) are located
here too; choosing which item is XMP or EXIF is the image family's.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, NamedTuple

from ..errors import MalformedFile
from ..xmp import begins_packet
from .tiff import Buffer

#: Items, extents and infe entries walked inside a 'meta' box.
MAX_META_ITEMS = 10_000
_HEADER = struct.Struct(">I4s")
_U64 = struct.Struct(">Q")
C2PA_UUID = bytes.fromhex("D8FEC3D61B0E483C92975828877EC481")


def brands(head: bytes) -> tuple[bytes, frozenset[bytes]]:
    """The major brand and the compatible brands of the 'ftyp' box at the start of ``head``."""
    size = int.from_bytes(head[:4], "big")
    # Compatible brands follow major brand and minor version, up to the box end.
    end = min(max(size, 16), len(head))
    return head[8:12], frozenset(head[i : i + 4] for i in range(16, end - 3, 4))


class Box(NamedTuple):
    """One box; a tuple because the audio reader makes up to 200,000 of them per file (a frozen
    dataclass takes twice as long to build)."""

    type: bytes
    start: int
    payload: int  # after the 8- or 16-byte header
    end: int
    open_ended: bool = False  # size 0: "to the end of its container"


#: What ``walk`` makes of fewer than 8 bytes left at the end of a level: a cut-off box header
#: ("error"), slack if they are all zero ("zeros": QuickTime ends some atom lists with a zero
#: word, some writers pad the file), or slack whatever they hold ("ignore").
Tail = Literal["error", "zeros", "ignore"]


def _printable(btype: bytes) -> bool:
    # Box types are printable four-character codes (QuickTime adds '©').
    return all(0x20 <= b <= 0x7E or b == 0xA9 for b in btype)


def boxes(
    buf: Buffer,
    start: int,
    end: int,
    *,
    what: str = "ISO-BMFF",
    open_ended: bool = True,
    printable: bool = False,
    tail: Tail = "error",
) -> Iterator[Box]:
    """The boxes in ``[start, end)``, one level, read as they are asked for: a caller that bounds
    a whole tree (audiotags) counts them itself. Each box takes at least 8 bytes.

    ``open_ended`` allows a size of 0 (the box runs to ``end``); else it is an invalid size.
    ``printable`` refuses a type that is no printable code: that is the inside of some other box,
    met because a size or an edit shifted the walk, and reading on would make the boxes after it
    (a uuid XMP box, the ilst) vanish without an error. ``tail``: see ``Tail``.
    """
    # The audio reader walks up to 200,000 boxes per file: the header is read inline, once.
    unpack, pos = _HEADER.unpack_from, start
    while pos < end:
        if pos + 8 > end:
            if tail == "ignore" or (tail == "zeros" and not any(buf[pos:end])):
                return
            raise MalformedFile(f"truncated {what}: a box header at offset {pos} is cut off at {end}")
        size, btype = unpack(buf, pos)
        if printable and not _printable(btype):
            raise MalformedFile(f"{what}: no box type at offset {pos} ({btype!r}); the file is damaged")
        payload = pos + 8
        if size == 1:
            if pos + 16 > end:
                raise MalformedFile(f"truncated {what}: the '{btype.decode('latin-1')}' box header at offset {pos} is cut off")
            size = _U64.unpack_from(buf, pos + 8)[0]
            payload = pos + 16
        elif size == 0 and open_ended:
            yield Box(btype, pos, payload, end, True)
            return
        if size < payload - pos:
            raise MalformedFile(f"{what}: the '{btype.decode('latin-1')}' box at offset {pos} has an invalid size {size}")
        if pos + size > end:
            where = "the file" if end == len(buf) else "its container"
            raise MalformedFile(
                f"truncated {what}: the '{btype.decode('latin-1')}' box at offset {pos} claims {size} bytes "
                f"but {where} ends at {end}"
            )
        yield Box(btype, pos, payload, pos + size)
        pos += size


def walk(
    buf: Buffer,
    start: int,
    end: int,
    *,
    limit: int,
    what: str = "ISO-BMFF",
    open_ended: bool = True,
    printable: bool = False,
    tail: Tail = "error",
) -> list[Box]:
    """Every box in ``[start, end)``, one level; more than ``limit`` of them is an error."""
    found: list[Box] = []
    for item in boxes(buf, start, end, what=what, open_ended=open_ended, printable=printable, tail=tail):
        if len(found) >= limit:
            raise MalformedFile(f"{what}: more than {limit} boxes at offset {start}")
        found.append(item)
    return found


# Boxes that may hold anything, dead data too (a tool "deletes" a box by renaming it free or skip).
_MAY_HOLD_ANYTHING = frozenset({b"mdat", b"free", b"skip", b"wide"})


def misnamed_xmp(buf: Buffer, level: list[Box], known: frozenset[bytes], *, whole: bool = False) -> Box | None:
    """A box of ``level`` of no type in ``known`` that holds an XMP packet at its start (after a
    uuid box's UUID), or anywhere in it when ``whole``: a box whose type (a uuid box's UUID, a
    'udta' or 'XMP_' name) was damaged, so that no reader finds the packet in it."""
    for box in level:
        if box.type not in known and box.type not in _MAY_HOLD_ANYTHING and begins_packet(
                buf, box.payload, box.end if whole else min(box.end, box.payload + 16 + 96)):
            return box
    return None


class Walker(NamedTuple):
    """How one caller walks a movie's box tree (MP4, M4A, MOV), level by level: the audio
    carrier's reader and writer and ``tracks`` below, each with its own policy below the top.

    The top level is walked alike for all: a size of 0 is allowed there (the last box runs to the
    end of the file), types must be printable (a shifted walk is damage, not boxes vanishing),
    and fewer than 8 zero bytes at the end are padding. Inside a box a size of 0 is invalid;
    ``printable`` and ``tail`` are the caller's (see ``boxes``). Each level is walked whole, at
    most ``limit`` boxes: damage after the box looked for is still an error, as it was."""

    what: str = "ISO-BMFF"
    limit: int = 10_000
    printable: bool = False  # below the top level
    tail: Tail = "error"  # below the top level

    def top(self, buf: Buffer) -> list[Box]:
        return walk(buf, 0, len(buf), limit=self.limit, what=self.what, printable=True, tail="zeros")

    def inside(self, buf: Buffer, box: Box) -> list[Box]:
        return walk(buf, box.payload, box.end, limit=self.limit, what=self.what, open_ended=False,
                    printable=self.printable, tail=self.tail)

    def child(self, buf: Buffer, box: Box | None, btype: bytes) -> Box | None:
        """The first ``btype`` box inside ``box``; None without one (or without ``box``)."""
        if box is None:
            return None
        level = walk(buf, box.payload, box.end, limit=self.limit, what=self.what, open_ended=False,
                     printable=self.printable, tail=self.tail)  # ``inside``, one call less: reads walk it often
        return next((b for b in level if b.type == btype), None)

    def path(self, buf: Buffer, box: Box | None, *btypes: bytes) -> Box | None:
        """``child`` after ``child`` down ``btypes`` (moov/udta/XMP_); None when one is missing."""
        for btype in btypes:
            box = self.child(buf, box, btype)
        return box


class Track(NamedTuple):
    handler: bytes  # mdia/hdlr's handler type: b"soun", b"vide", ...; b"" when it has none
    # As shown: tkhd's width and height (whole pixels), swapped when its matrix turns the picture a
    # quarter (a phone's portrait video is stored landscape); None when unreadable or under a pixel.
    size: tuple[int, int] | None


def tracks(buf: Buffer, limit: int = 10_000) -> list[Track]:
    """The tracks of an MP4 or MOV's one 'moov' (MalformedFile when there is not exactly one, or a
    box on the way is damaged)."""
    movie = Walker(limit=limit)
    moovs = [box for box in movie.top(buf) if box.type == b"moov"]
    if len(moovs) != 1:
        raise MalformedFile(f"ISO-BMFF: {len(moovs)} 'moov' boxes, not one")
    found = []
    for trak in movie.inside(buf, moovs[0]):
        if trak.type != b"trak":
            continue
        inside = movie.inside(buf, trak)
        handler = b""
        for mdia in (box for box in inside if box.type == b"mdia"):
            for hdlr in movie.inside(buf, mdia):
                if hdlr.type == b"hdlr" and hdlr.payload + 12 <= hdlr.end:
                    handler = bytes(buf[hdlr.payload + 8 : hdlr.payload + 12])
        size = None
        for tkhd in (box for box in inside if box.type == b"tkhd"):
            # The matrix (a b u / c d v / x y w), then width and height, 16.16 fixed point, end the
            # box in both versions (ISO/IEC 14496-12 8.3.2).
            if tkhd.end - tkhd.payload in (84, 96):
                a, _, _, _, d, *_, width, height = struct.unpack(">9iII", bytes(buf[tkhd.end - 44 : tkhd.end]))
                width, height = width >> 16, height >> 16
                if width and height:
                    size = (height, width) if a == 0 and d == 0 else (width, height)
        found.append(Track(handler, size))
    return found


def full_box(buf: Buffer, box: Box, what: str = "ISO-BMFF") -> tuple[int, int]:
    """(version, flags) of a FullBox: the 4 bytes its payload starts with."""
    if box.payload + 4 > box.end:
        raise MalformedFile(f"{what}: the '{box.type.decode('latin-1')}' box at offset {box.start} is too short")
    return buf[box.payload], int.from_bytes(buf[box.payload + 1 : box.payload + 4], "big")


def quicktime_meta(buf: Buffer, box: Box) -> bool:
    """Is this 'meta' QuickTime's (no version and flags: a whole 'hdlr' box starts at once, as
    Apple devices and ExifTool write moov/meta) rather than ISO's FullBox?"""
    pos = box.payload
    if pos + 8 > box.end or buf[pos + 4 : pos + 8] != b"hdlr":
        return False
    return 8 <= int.from_bytes(buf[pos : pos + 4], "big") <= box.end - pos


def children(buf: Buffer, start: int, end: int, limit: int) -> list[tuple[bytes, int, int]]:
    """(type, payload start, box end) of every box in ``[start, end)``; at most ``limit`` of them."""
    return [(b.type, b.payload, b.end) for b in walk(buf, start, end, limit=limit)]


def c2pa_ranges(buf: Buffer, limit: int) -> list[tuple[int, int]]:
    """Top-level ``uuid`` boxes of the C2PA UUID, where c2pa keeps the manifest store."""
    return [
        (payload, end)
        for btype, payload, end in children(buf, 0, len(buf), limit)
        if btype == b"uuid" and bytes(buf[payload : payload + 16]) == C2PA_UUID
    ]


@dataclass
class Item:
    """One item of a 'meta' box, as its 'iinf' and 'iloc' entries describe it."""

    item_type: bytes = b""
    content_type: bytes = b""
    content_encoding: bytes = b""
    construction: int = 0
    data_ref: int = 0
    extents: tuple[tuple[int, int], ...] = ()
    described: bool = False  # an 'infe' entry names it (every item has one; 'iloc' alone is damage)


def meta_items(buf: Buffer, limit: int) -> tuple[dict[int, Item], tuple[int, int] | None] | None:
    """The items of the top-level 'meta' box (HEIF/AVIF) and its 'idat' range; None without one.

    ``limit`` bounds the top-level boxes walked. Every extent stored in the file must lie inside
    it: this is what catches a file cut short in its 'mdat', whose own box may end at the cut.
    """
    n = len(buf)
    top = children(buf, 0, n, limit)
    if not top or top[0][0] != b"ftyp":
        raise MalformedFile("not an ISO-BMFF image: no 'ftyp' box at offset 0")
    meta = next((found for found in top if found[0] == b"meta"), None)
    if meta is None:
        if not any(found[0] == b"moov" for found in top):
            # An image file keeps its pictures as items of 'meta', a sequence in a 'moov' track:
            # with neither, a damaged type or size hid the 'meta' box, and its XMP with it.
            raise MalformedFile("ISO-BMFF image: no 'meta' box (nor 'moov' track): the file is damaged")
        return None
    _, payload, meta_end = meta
    # 'meta' is a FullBox: 4 bytes of version and flags before its children.
    boxes = children(buf, payload + 4, meta_end, MAX_META_ITEMS)
    items: dict[int, Item] = {}
    idat: tuple[int, int] | None = None
    if not any(btype == b"iinf" for btype, _, _ in boxes) and not any(found[0] == b"moov" for found in top):
        # A picture is an item: a 'meta' box without 'iinf' had a size damaged (its own, or a child's
        # that then ran over the rest), and its items, the XMP among them, were hidden.
        raise MalformedFile("ISO-BMFF image: its 'meta' box holds no 'iinf' (item information): the box is damaged")
    for btype, start, end in boxes:
        if btype == b"iinf":
            _iinf(buf, start, end, items)
        elif btype == b"iloc":
            _iloc(buf, start, end, items)
        elif btype == b"idat" and idat is None:
            idat = (start, end)
    for item_id, item in items.items():
        if not item.described:
            # A damaged 'iinf' or 'infe' type or size leaves items located but unnamed: one may be the XMP.
            raise MalformedFile(f"ISO-BMFF: item {item_id} has a place ('iloc') but no 'infe' entry: the 'meta' box is damaged")
        if item.construction == 0 and item.data_ref == 0:
            for offset, length in item.extents:
                if offset + length > n:
                    raise MalformedFile(
                        f"truncated ISO-BMFF: item {item_id} extent at offset {offset} claims {length} bytes "
                        f"but the file ends at {n}"
                    )
    return items, idat


def _iinf(buf: Buffer, start: int, end: int, items: dict[int, Item]) -> None:
    if start + 4 > end:
        raise MalformedFile(f"ISO-BMFF: 'iinf' box at offset {start - 8} is too short")
    version = buf[start]
    first = start + 4 + (2 if version == 0 else 4)  # skip entry_count; the boxes themselves tell
    for btype, pos, box_end in children(buf, first, end, MAX_META_ITEMS):
        if btype != b"infe":
            continue
        entry = bytes(buf[pos:box_end])
        if len(entry) < 8:
            raise MalformedFile(f"ISO-BMFF: 'infe' box at offset {pos - 8} is too short")
        infe_version = entry[0]
        if infe_version >= 3:
            item_id, item_type, rest = int.from_bytes(entry[4:8], "big"), entry[10:14], entry[14:]
        elif infe_version == 2:
            item_id, item_type, rest = int.from_bytes(entry[4:6], "big"), entry[8:12], entry[12:]
        else:  # versions 0 and 1: every item is described by a MIME type
            item_id, item_type, rest = int.from_bytes(entry[4:6], "big"), b"", entry[8:]
        strings = rest.split(b"\x00")
        item = items.setdefault(item_id, Item())
        item.item_type = item_type
        item.described = True
        if item_type in (b"mime", b""):
            # item_name, content_type, optional content_encoding
            item.content_type = strings[1] if len(strings) > 1 else b""
            item.content_encoding = strings[2] if len(strings) > 2 else b""


def _iloc(buf: Buffer, start: int, end: int, items: dict[int, Item]) -> None:
    data = bytes(buf[start:end])  # small: a table of offsets
    where = f"ISO-BMFF 'iloc' box at offset {start - 8}"
    if len(data) < 8:
        raise MalformedFile(f"{where} is too short")
    version = data[0]
    if version > 2:
        raise MalformedFile(f"{where} has unknown version {version}")
    offset_size, length_size = data[4] >> 4, data[4] & 15
    base_size, index_size = data[5] >> 4, (data[5] & 15 if version else 0)
    if any(size not in (0, 4, 8) for size in (offset_size, length_size, base_size, index_size)):
        raise MalformedFile(f"{where} has invalid field sizes")
    pos = 6
    id_size = 4 if version == 2 else 2

    def read(size: int) -> int:
        nonlocal pos
        if pos + size > len(data):
            raise MalformedFile(f"{where}: table runs past the end of the box")
        value = int.from_bytes(data[pos : pos + size], "big")
        pos += size
        return value

    count = read(id_size)
    if count > MAX_META_ITEMS:
        raise MalformedFile(f"{where} lists {count} items, more than {MAX_META_ITEMS}")
    total_extents = 0
    for _ in range(count):
        item = items.setdefault(read(id_size), Item())
        item.construction = read(2) & 15 if version else 0
        item.data_ref = read(2)
        base = read(base_size)
        extent_count = read(2)
        total_extents += extent_count
        if total_extents > MAX_META_ITEMS:
            raise MalformedFile(f"{where} lists more than {MAX_META_ITEMS} extents")
        extents = []
        for _ in range(extent_count):
            read(index_size)
            offset = base + read(offset_size)
            extents.append((offset, read(length_size)))
        item.extents = tuple(extents)


def item_data(buf: Buffer, item: Item, item_id: int, idat: tuple[int, int] | None, max_size: int) -> bytes | None:
    """The item's bytes, or None when stored in a way we do not follow (another file, item references)."""
    if item.data_ref != 0:
        return None
    if item.construction == 0:
        base, end = 0, len(buf)
    elif item.construction == 1 and idat is not None:
        base, end = idat
    else:
        return None
    if not item.extents:
        raise MalformedFile(f"ISO-BMFF: item {item_id} has no data extents")
    parts = []
    total = 0
    for offset, length in item.extents:
        start = base + offset
        if length == 0 and start <= end:  # "the rest of the data"
            length = end - start
        if start + length > end:
            raise MalformedFile(
                f"truncated ISO-BMFF: item {item_id} extent at offset {start} claims {length} bytes "
                f"but its data ends at {end}"
            )
        total += length
        if total > max_size:
            raise MalformedFile(f"ISO-BMFF: item {item_id} is larger than {max_size} bytes")
        parts.append(bytes(buf[start : start + length]))
    return b"".join(parts)
