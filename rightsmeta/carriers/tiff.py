"""TIFF IFDs (TIFF files and EXIF blocks): the one walker that reads, locates and splices them.

Classic TIFF (32-bit offsets) is read and written; BigTIFF (64-bit) only read. Every offset and length is checked
against the buffer before it is used, so hostile input can only ever produce
:class:`~rightsmeta.errors.MalformedFile`. Used by reading (carriers/containers.py,
carriers/image.py), the C2PA locator (tag 0xCD41) and the XMP writer (:func:`set_xmp`, tag 700).
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from ..errors import MalformedFile, UsageError
from ..xmp import begins_packet, pad

if TYPE_CHECKING:
    from .splice import Spliced

#: Anything :func:`find_tag` and :func:`read_ifd` accept: sliceable, sized.
Buffer = bytes | bytearray | mmap.mmap

EXIF_IFD_POINTER = 0x8769
C2PA_TAG = 0xCD41  # IFD0 tag holding the C2PA manifest store (JUMBF)

#: Bytes per value of each TIFF field type (TIFF 6.0 plus the BigTIFF types,
#: which a few writers use in classic files too).
TYPE_SIZES: dict[int, int] = {
    1: 1,  # BYTE
    2: 1,  # ASCII
    3: 2,  # SHORT
    4: 4,  # LONG
    5: 8,  # RATIONAL
    6: 1,  # SBYTE
    7: 1,  # UNDEFINED
    8: 2,  # SSHORT
    9: 4,  # SLONG
    10: 8,  # SRATIONAL
    11: 4,  # FLOAT
    12: 8,  # DOUBLE
    13: 4,  # IFD
    16: 8,  # LONG8
    17: 8,  # SLONG8
    18: 8,  # IFD8
}

_HEADERS = {b"II*\x00": "<", b"MM\x00*": ">"}


@dataclass(slots=True)  # not frozen: a scan builds tens per image, and frozen ones cost 3x to make
class IfdEntry:
    """One directory entry. ``size`` is None for a field type we do not know."""

    tag: int
    type: int
    count: int
    #: The 4 raw bytes of the value/offset field, in the file's byte order.
    field: bytes
    #: Absolute position of the value bytes (the field itself when inline).
    value_pos: int
    size: int | None


class Directory(NamedTuple):
    """A file's first directory (IFD0) as :func:`first_directory` reads it."""

    order: str  # for struct: "<" or ">"
    offset: int
    entries: tuple[IfdEntry, ...]
    next_offset: int  # of the next page's directory; 0: none


def first_directory(tiff: Buffer) -> Directory:
    """IFD0 of a classic TIFF: what the reader, the writer and the content check of a tag each
    start from (carriers/walked.py keeps it for each version of the file)."""
    order = byte_order(tiff)
    offset = first_ifd_offset(tiff, order)
    entries, next_offset = read_ifd(tiff, offset, order)
    return Directory(order, offset, tuple(entries), next_offset)


def byte_order(tiff: Buffer) -> str:
    """``"<"`` or ``">"`` for :mod:`struct`; MalformedFile if not a classic TIFF header."""
    order = _HEADERS.get(bytes(tiff[:4]))
    if order is None:
        raise MalformedFile("not a TIFF structure: no II*\\0 or MM\\0* header at offset 0")
    return order


def first_ifd_offset(tiff: Buffer, order: str) -> int:
    if len(tiff) < 8:
        raise MalformedFile(f"truncated TIFF: header needs 8 bytes but the data ends at {len(tiff)}")
    offset: int = struct.unpack(order + "I", tiff[4:8])[0]
    return offset


def read_ifd(tiff: Buffer, offset: int, order: str) -> tuple[list[IfdEntry], int]:
    """Entries of the directory at ``offset`` and the offset of the next one (0 = none).

    The directory itself must fit in the buffer; the entries' values are not
    checked here (see :func:`value_bytes`), so one damaged tag elsewhere (a
    MakerNote, say) does not hide the tag a caller is after.
    """
    raw = _directory(tiff, offset, order)
    # One C-level pass over the directory, (tag, type, count, field) per entry: this runs a few
    # times per image of a scan, so the per-entry Python is kept to the least.
    entries = []
    inline = offset + 2 + 8  # where entry 0's value field sits
    for tag, ftype, vcount, field in struct.iter_unpack(order + "HHI4s", raw[:-4]):
        entries.append(_entry(tag, ftype, vcount, field, inline, order))
        inline += 12
    next_offset: int = struct.unpack(order + "I", raw[-4:])[0]
    return entries, next_offset


def _directory(tiff: Buffer, offset: int, order: str) -> bytes:
    """The bytes of the directory at ``offset`` after its count: the entries and the next pointer."""
    n = len(tiff)
    if offset < 8 or offset + 2 > n:
        raise MalformedFile(f"truncated TIFF: directory offset {offset} is outside the data (length {n})")
    count: int = struct.unpack(order + "H", tiff[offset : offset + 2])[0]
    end = offset + 2 + 12 * count + 4
    if end > n:
        raise MalformedFile(
            f"truncated TIFF: directory at offset {offset} has {count} entries "
            f"and needs {end - offset} bytes but the data ends at {n}"
        )
    return bytes(tiff[offset + 2 : end])


def _entry(tag: int, ftype: int, vcount: int, field: bytes, inline: int, order: str) -> IfdEntry:
    """The entry whose value field sits at ``inline``."""
    unit = TYPE_SIZES.get(ftype)
    size = None if unit is None else unit * vcount
    at: int = struct.unpack(order + "I", field)[0] if size is not None and size > 4 else inline
    return IfdEntry(tag, ftype, vcount, field, at, size)


def _find_in(tiff: Buffer, offset: int, order: str, tag: int) -> IfdEntry | None:
    """The first entry with ``tag`` in the directory at ``offset``, checked as :func:`read_ifd`
    checks it; only that entry is made (a lookup runs per image of a scan)."""
    raw = _directory(tiff, offset, order)
    tags = raw[:-4:12]  # the low or high byte of each entry's tag: a cheap first sieve in C
    low = tag & 0xFF if order == "<" else tag >> 8
    index = tags.find(low)
    while index >= 0:
        at = 12 * index
        found, ftype, vcount, field = struct.unpack(order + "HHI4s", raw[at : at + 12])
        if found == tag:
            return _entry(tag, ftype, vcount, field, offset + 2 + at + 8, order)
        index = tags.find(low, index + 1)
    return None


def next_ifd_offset(tiff: Buffer, offset: int, order: str) -> int:
    """Bounds-check the directory at ``offset`` (a later page) and return its next pointer."""
    n = len(tiff)
    if offset < 8 or offset + 2 > n:
        raise MalformedFile(f"truncated TIFF: directory offset {offset} is outside the file (length {n})")
    (count,) = struct.unpack(order + "H", tiff[offset : offset + 2])
    end = offset + 2 + 12 * count + 4
    if end > n:
        raise MalformedFile(
            f"truncated TIFF: directory at offset {offset} needs {end - offset} bytes but the file ends at {n}"
        )
    (next_ifd,) = struct.unpack(order + "I", tiff[end - 4 : end])
    return int(next_ifd)


def ifd_chain(tiff: Buffer, first: int, after_first: int, order: str, limit: int, *, big: bool = False) -> list[int]:
    """Offsets of every directory of the IFD chain (pages) of a TIFF or (``big``) a BigTIFF, each
    bounds-checked; no loops, at most ``limit``."""
    what = "BigTIFF" if big else "TIFF"
    chain = [first]
    seen = {first}
    offset = after_first
    for _ in range(limit):
        if offset == 0:
            return chain
        if offset in seen:
            raise MalformedFile(f"{what}: IFD chain loops back to offset {offset}")
        seen.add(offset)
        chain.append(offset)
        offset = read_big_ifd(tiff, offset, order)[1] if big else next_ifd_offset(tiff, offset, order)
    raise MalformedFile(f"{what}: more than {limit} directories")


def check_value(tiff: Buffer, entry: IfdEntry) -> None:
    """MalformedFile unless the entry's value lies inside the buffer."""
    if entry.size is None:
        raise MalformedFile(f"TIFF tag {entry.tag} has unknown field type {entry.type}")
    if entry.value_pos + entry.size > len(tiff):
        raise MalformedFile(
            f"truncated TIFF: tag {entry.tag} value at offset {entry.value_pos} claims "
            f"{entry.size} bytes but the data ends at {len(tiff)}"
        )


def begins_exif(head: bytes) -> bool:
    """Whether ``head`` (a block's first 10 bytes) starts an EXIF block: a TIFF header, after
    "Exif\\0\\0" or a HEIF Exif item's 4-byte offset or not. How a walker tells that a block its
    name or type does not mark as EXIF (a damaged type) holds one, LearningOptOutIn with it."""
    return any(head[at : at + 4] in _HEADERS for at in (0, 4, 6)) or head.find(b"Exif\x00\x00", 0, 10) >= 0


#: Photoshop's image resources (tag 34377), whose XMP resource may come first: a packet under its own name.
_PHOTOSHOP_RESOURCES = 34377


def misnamed_xmp(tiff: Buffer, entries: Iterable[IfdEntry]) -> IfdEntry | None:
    """An entry of bytes whose value begins with an XMP packet yet whose tag is not 700: the XMP
    entry with its tag number damaged, which no reader takes for XMP (the file would read as
    holding no statement)."""
    for e in entries:
        if e.type in (1, 7) and e.tag not in (XMP_TAG, _PHOTOSHOP_RESOURCES) and e.size is not None and e.size > 4 \
                and begins_packet(tiff, e.value_pos, e.value_pos + min(e.size, 96)):
            return e
    return None


def value_bytes(tiff: Buffer, entry: IfdEntry) -> bytes:
    check_value(tiff, entry)
    assert entry.size is not None  # check_value guarantees it; narrows the type
    return bytes(tiff[entry.value_pos : entry.value_pos + entry.size])


def shorts_or_longs(tiff: Buffer, entry: IfdEntry, order: str) -> tuple[int, ...] | None:
    """The numbers of a SHORT or LONG entry, its value checked to lie in the buffer
    (MalformedFile); None for an entry of another type."""
    if entry.type not in (3, 4):
        return None
    return struct.unpack(f"{order}{entry.count}{'H' if entry.type == 3 else 'I'}", value_bytes(tiff, entry))


def sub_ifd_offset(entry: IfdEntry, order: str) -> int:
    """The offset a pointer tag (ExifIFD, GPS...) holds."""
    if entry.type not in (4, 13) or entry.count != 1:
        raise MalformedFile(
            f"TIFF pointer tag {entry.tag} has type {entry.type} and count {entry.count}, not one LONG"
        )
    offset: int = struct.unpack(order + "I", entry.field)[0]
    return offset


def find_tag(tiff: Buffer, tag: int, *, ifd: str = "exif") -> tuple[int, int, bytes] | None:
    """Find ``tag`` in IFD0 (``ifd="ifd0"``) or in the Exif sub-IFD (``ifd="exif"``).

    Returns ``(field_type, count, value_bytes)``, the value bytes raw (in the
    block's byte order, see :func:`byte_order`), or None when the tag or the
    Exif sub-IFD is absent. MalformedFile for out-of-range offsets, counts that
    run past the data, or a sub-IFD that points back at IFD0.
    """
    if ifd not in ("ifd0", "exif"):
        raise UsageError(f"unknown IFD {ifd!r}: use 'ifd0' or 'exif'")
    try:
        order = byte_order(tiff)
        ifd0 = first_ifd_offset(tiff, order)
        directory = ifd0
        if ifd == "exif":
            pointer = _find_in(tiff, ifd0, order, EXIF_IFD_POINTER)
            if pointer is None:
                return None
            directory = sub_ifd_offset(pointer, order)
            if directory == ifd0:
                raise MalformedFile(f"TIFF Exif IFD pointer loops back to IFD0 at offset {ifd0}")
        entry = _find_in(tiff, directory, order, tag)
        if entry is None:
            return None
        return entry.type, entry.count, value_bytes(tiff, entry)
    except (struct.error, IndexError, OverflowError) as exc:  # defensive: checks above should prevent these
        raise MalformedFile(f"malformed TIFF structure: {exc}") from exc


def near_tags(tiff: Buffer, tag: int, *, ifd: str = "exif") -> list[IfdEntry]:
    """The entries of the Exif sub-IFD (or IFD0) whose tag number differs from ``tag`` in one of
    its two bytes (their values not read: a MakerNote's may point anywhere): where ``tag``'s own
    entry is missing, one of these may be it, its number damaged. A sieve over the directory's
    bytes first: a camera photo has a few such neighbours (UserComment, SubSecTime, MakerNote),
    most images none."""
    try:
        order = byte_order(tiff)
        directory = first_ifd_offset(tiff, order)
        if ifd == "exif":
            pointer = _find_in(tiff, directory, order, EXIF_IFD_POINTER)
            if pointer is None:
                return []
            directory = sub_ifd_offset(pointer, order)
        raw = _directory(tiff, directory, order)
        high, low = tag >> 8, tag & 0xFF
        found: dict[int, IfdEntry] = {}
        for column, byte in enumerate((low, high) if order == "<" else (high, low)):
            tags = raw[column:-4:12]
            index = tags.find(byte)
            while index >= 0:
                at = 12 * index
                number, ftype, vcount, field = struct.unpack(order + "HHI4s", raw[at : at + 12])
                if number != tag:
                    found[at] = _entry(number, ftype, vcount, field, directory + 2 + at + 8, order)
                index = tags.find(byte, index + 1)
        return list(found.values())
    except (struct.error, IndexError, OverflowError) as exc:
        raise MalformedFile(f"malformed TIFF structure: {exc}") from exc


def find_in_directory(tiff: Buffer, offset: int, tag: int) -> IfdEntry | None:
    """``tag``'s entry in the directory at ``offset`` (MalformedFile when no directory fits there)."""
    try:
        return _find_in(tiff, offset, byte_order(tiff), tag)
    except (struct.error, IndexError, OverflowError) as exc:
        raise MalformedFile(f"malformed TIFF structure: {exc}") from exc


# --- BigTIFF: read only ----------------------------------------------------------------------
# Scanners, microscopes and GIS tools write BigTIFF (header 43, 64-bit offsets) for images near
# or past 4 GiB. Its directories are read into the same IfdEntry as classic ones: the value
# field is 8 bytes (``field`` keeps its first 4, which is where a value of 4 bytes or less sits,
# left-justified as in classic TIFF), and values of up to 8 bytes are inline.

BIG_HEADERS = {b"II+\x00": "<", b"MM\x00+": ">"}
#: Entries in one BigTIFF directory (its count is 64-bit: a hostile one must not size a read).
MAX_BIG_ENTRIES = 65_535


def big_order(tiff: Buffer) -> str | None:
    """``"<"`` or ``">"`` when ``tiff`` starts with a BigTIFF header, else None."""
    return BIG_HEADERS.get(bytes(tiff[:4]))


def big_first_directory(tiff: Buffer) -> Directory:
    """IFD0 of a BigTIFF, as :func:`first_directory` reads a classic one."""
    order = big_order(tiff)
    if order is None or len(tiff) < 16:
        raise MalformedFile("not a BigTIFF structure: no II+\\0 or MM\\0+ header of 16 bytes at offset 0")
    bytesize, reserved, offset = struct.unpack(order + "HHQ", tiff[4:16])
    if bytesize != 8 or reserved != 0:
        raise MalformedFile(f"BigTIFF header says offsets are {bytesize} bytes (8 expected)")
    entries, next_offset = read_big_ifd(tiff, offset, order)
    return Directory(order, offset, tuple(entries), next_offset)


def read_big_ifd(tiff: Buffer, offset: int, order: str) -> tuple[list[IfdEntry], int]:
    """Entries of the BigTIFF directory at ``offset`` and the offset of the next one (0 = none),
    bounds-checked as :func:`read_ifd` checks a classic one."""
    n = len(tiff)
    if offset < 16 or offset + 8 > n:
        raise MalformedFile(f"truncated BigTIFF: directory offset {offset} is outside the data (length {n})")
    (count,) = struct.unpack(order + "Q", tiff[offset : offset + 8])
    end = offset + 8 + 20 * count + 8
    if count > MAX_BIG_ENTRIES or end > n:
        raise MalformedFile(f"truncated BigTIFF: directory at offset {offset} has {count} entries "
                            f"and needs {end - offset} bytes but the data ends at {n}")
    raw = bytes(tiff[offset + 8 : end])
    entries = []
    inline = offset + 8 + 12  # where entry 0's value field sits
    for tag, ftype, vcount, field in struct.iter_unpack(order + "HHQ8s", raw[:-8]):
        unit = TYPE_SIZES.get(ftype)
        size = None if unit is None else unit * vcount
        at: int = struct.unpack(order + "Q", field)[0] if size is not None and size > 8 else inline
        entries.append(IfdEntry(tag, ftype, vcount, field[:4], at, size))
        inline += 20
    (next_offset,) = struct.unpack(order + "Q", raw[-8:])
    return entries, int(next_offset)


def big_sub_ifd_offset(tiff: Buffer, entry: IfdEntry, order: str) -> int:
    """The offset a BigTIFF pointer tag holds: one LONG or IFD (4 bytes), or LONG8 or IFD8."""
    if entry.count != 1 or entry.type not in (4, 13, 16, 18):
        raise MalformedFile(f"BigTIFF pointer tag {entry.tag} has type {entry.type} and count {entry.count}, not one offset")
    value = value_bytes(tiff, entry)
    return int(struct.unpack(order + ("I" if entry.type in (4, 13) else "Q"), value)[0])


# --- writing: tag 700 (XMP) of IFD0 only -------------------------------------------------------

XMP_TAG = 700
#: Spare room left after a packet written at the end of the file, so the next tag fits in place.
XMP_PADDING = 2048
_XMP_TYPES = (1, 2, 7)  # BYTE (the specification's), ASCII, UNDEFINED: all seen in the wild


def set_xmp(buf: Buffer, packet: bytes, ifd0: Directory | None = None) -> Spliced:
    """The classic TIFF with IFD0's XMP tag set to ``packet``; every other byte where it was.

    A packet that fits in the old value's room is written there (padded to its size). Otherwise
    the value goes to the end of the file with room to spare, and the old value's bytes are
    blanked: no stale packet is left for a byte search to find. A new tag needs a bigger IFD0,
    which is then written at the end of the file with the header pointing to it; the old IFD0
    is left unreferenced, and all other directories, values and image data stay untouched.
    ``ifd0``: ``first_directory(buf)``, when the caller has it.
    """
    from .splice import replace  # splice.py imports this module

    order, start, entries, next_ifd = ifd0 or first_directory(buf)
    found = [i for i, e in enumerate(entries) if e.tag == XMP_TAG]
    if len(found) > 1:
        raise MalformedFile(f"TIFF: IFD0 holds the XMP tag (700) {len(found)} times; not choosing one to replace")
    edits: list[tuple[int, int, bytes]] = []
    tail = bytearray()  # what goes after the file's last byte
    if found:
        index = found[0]
        entry = entries[index]
        if entry.type not in _XMP_TYPES:
            raise MalformedFile(f"TIFF: XMP tag 700 has field type {entry.type}, expected BYTE or UNDEFINED")
        check_value(buf, entry)
        assert entry.size is not None
        if entry.size > 4 and len(packet) <= entry.size:
            return replace(buf, [(entry.value_pos, entry.value_pos + entry.size, pad(packet, entry.size))])
        value = pad(packet, len(packet) + XMP_PADDING)
        value_at = _append(tail, len(buf), value)
        field_at = start + 2 + 12 * index
        edits.append((field_at, field_at + 12, struct.pack(order + "HHII", XMP_TAG, entry.type, len(value), value_at)))
        if entry.size > 4:
            if entry.value_pos < field_at + 12 and field_at < entry.value_pos + entry.size:
                raise MalformedFile("TIFF: the XMP value overlaps its own directory entry; not writing into it")
            edits.append((entry.value_pos, entry.value_pos + entry.size, bytes(entry.size)))
    else:
        value = pad(packet, len(packet) + XMP_PADDING)
        value_at = _append(tail, len(buf), value)
        rows = [(e.tag, e.type, e.count, e.field) for e in entries]
        rows.append((XMP_TAG, 1, len(value), struct.pack(order + "I", value_at)))
        rows.sort(key=lambda row: row[0])  # TIFF wants directory entries in ascending tag order
        directory = struct.pack(order + "H", len(rows))
        for row in rows:
            directory += struct.pack(order + "HHI4s", *row)
        directory += struct.pack(order + "I", next_ifd)
        edits.append((4, 8, struct.pack(order + "I", _append(tail, len(buf), directory))))
    edits.append((len(buf), len(buf), bytes(tail)))
    return replace(buf, sorted(edits, key=lambda edit: edit[0]))


def _append(tail: bytearray, base: int, value: bytes) -> int:
    """Append ``value`` to what follows the ``base`` bytes of the file, on a word boundary
    (TIFF values start at even offsets); its offset in the new file."""
    if (base + len(tail)) & 1:
        tail.append(0)
    at = base + len(tail)
    if at + len(value) > 0xFFFFFFFF:
        raise MalformedFile("TIFF: the file would outgrow 32-bit offsets (BigTIFF is not supported)")
    tail += value
    return at


COPYRIGHT_TAG = 0x8298  # IFD0 Copyright (TIFF 6.0, EXIF): "photographer\0editor\0" or one notice
_TEXT_TYPES = (1, 2, 7)  # ASCII as the specification has it; BYTE and UNDEFINED as some writers do


def text_entry(buf: Buffer, tag: int, ifd0: Directory | None = None) -> tuple[IfdEntry, int] | None:
    """IFD0's entry for ``tag`` and where that entry sits, its value checked to lie in ``buf``;
    None when there is none. MalformedFile for a repeated tag or one that is not text."""
    order, start, entries, _ = ifd0 or first_directory(buf)
    found = [i for i, e in enumerate(entries) if e.tag == tag]
    if not found:
        return None
    if len(found) > 1:
        raise MalformedFile(f"TIFF: IFD0 holds tag 0x{tag:04X} {len(found)} times; not choosing one")
    entry = entries[found[0]]
    if entry.type not in _TEXT_TYPES:
        raise MalformedFile(f"TIFF: tag 0x{tag:04X} has field type {entry.type}, not text")
    check_value(buf, entry)
    return entry, start + 2 + 12 * found[0]


def text_value(buf: Buffer, tag: int, ifd0: Directory | None = None) -> str | None:
    """The text of IFD0's ``tag`` up to its first NUL (UTF-8, as ExifTool writes and reads EXIF
    text), or None."""
    if ifd0 is not None:
        found = text_entry(buf, tag, ifd0)
        entry = found[0] if found is not None else None
    else:  # a read, for every image of a scan: only this entry is made (_find_in)
        order = byte_order(buf)
        entry = _find_in(buf, first_ifd_offset(buf, order), order, tag)
        if entry is not None and entry.type not in _TEXT_TYPES:
            raise MalformedFile(f"TIFF: tag 0x{tag:04X} has field type {entry.type}, not text")
    if entry is None:
        return None
    return value_bytes(buf, entry).split(b"\x00", 1)[0].decode("utf-8", "replace")


#: Pointer tags to further directories: ExifIFD, GPS, Interoperability (in the Exif IFD), SubIFDs.
_SUB_DIRECTORIES = (EXIF_IFD_POINTER, 0x8825, 0xA005, 330)
#: (offsets, byte counts) of data the entries point at: strips, tiles, IFD1's JPEG thumbnail.
_DATA_POINTERS = ((273, 279), (324, 325), (513, 514))
_MAX_DIRECTORIES = 1_000


def _used(buf: Buffer, directory: Directory, skip: int) -> list[tuple[int, int]]:
    """Where the bytes of a classic TIFF's structure lie: every directory of its chain and of their
    sub-directories (Exif, GPS, Interoperability, SubIFDs), every value stored outside its entry,
    and the strips, tiles and JPEG thumbnail the entries point at; except the value of the entry
    whose 12 bytes sit at ``skip``. MalformedFile when a part cannot be walked."""
    order = directory.order
    pending = ifd_chain(buf, directory.offset, directory.next_offset, order, _MAX_DIRECTORIES)
    seen = set(pending)
    used: list[tuple[int, int]] = []
    while pending:
        offset = pending.pop()
        entries, _ = read_ifd(buf, offset, order)
        used.append((offset, offset + 2 + 12 * len(entries) + 4))
        by_tag: dict[int, IfdEntry] = {}
        for index, entry in enumerate(entries):
            by_tag.setdefault(entry.tag, entry)
            if entry.size is not None and entry.size > 4 and offset + 2 + 12 * index != skip:
                used.append((entry.value_pos, entry.value_pos + entry.size))
            if entry.tag in _SUB_DIRECTORIES:
                for sub in shorts_or_longs(buf, entry, order) or (sub_ifd_offset(entry, order),):
                    if sub not in seen:
                        if len(seen) >= _MAX_DIRECTORIES:
                            raise MalformedFile(f"TIFF: more than {_MAX_DIRECTORIES} directories")
                        seen.add(sub)
                        pending.append(sub)
        for offsets_tag, counts_tag in _DATA_POINTERS:
            if offsets_tag in by_tag and counts_tag in by_tag:
                offsets = shorts_or_longs(buf, by_tag[offsets_tag], order)
                counts = shorts_or_longs(buf, by_tag[counts_tag], order)
                if offsets is None or counts is None:
                    raise MalformedFile(f"TIFF: tag {offsets_tag} or {counts_tag} is not SHORT or LONG")
                used += [(at, at + count) for at, count in zip(offsets, counts, strict=False)]
    return used


def set_text(buf: Buffer, tag: int, text: str, ifd0: Directory | None = None) -> list[tuple[int, int, bytes]] | None:
    """The edits (for ``splice.replace``) that make IFD0's existing ``tag`` say ``text``; None
    when IFD0 has no such tag (none is added). The value goes where the old one was when it fits
    (the rest of its room zeroed), else after the last byte of ``buf``, the old bytes zeroed (no
    stale notice left for a byte search to find): every other value keeps its offset.

    TIFF lets two entries share a value, and a damaged or crafted one may point into a thumbnail or
    a directory: when any other part of the structure (:func:`_used`) overlaps the old value, or the
    structure cannot be walked to tell, the old bytes are left as they are and the new value goes
    after the last byte, so that nothing but the entry changes what it says."""
    found = text_entry(buf, tag, ifd0)
    if found is None:
        return None
    entry, field_at = found
    assert entry.size is not None  # text_entry checked the value
    directory = ifd0 or first_directory(buf)
    order = directory.order
    value = text.encode("utf-8") + b"\x00"
    outside = entry.size > 4
    if outside and entry.value_pos < field_at + 12 and field_at < entry.value_pos + entry.size:
        raise MalformedFile(f"TIFF: the value of tag 0x{tag:04X} overlaps its own directory entry; not writing into it")
    own = outside  # its old bytes are its own to overwrite or zero
    if outside:
        start, end = entry.value_pos, entry.value_pos + entry.size
        try:
            own = not any(at < end and start < stop for at, stop in _used(buf, directory, field_at))
        except MalformedFile:
            own = False  # not known to be its own: left as it is
    edits: list[tuple[int, int, bytes]] = []
    if len(value) <= 4:
        edits.append((field_at + 4, field_at + 12, struct.pack(order + "I", len(value)) + value.ljust(4, b"\x00")))
    elif own and len(value) <= entry.size:
        edits.append((field_at + 4, field_at + 8, struct.pack(order + "I", len(value))))
        edits.append((entry.value_pos, entry.value_pos + entry.size, value.ljust(entry.size, b"\x00")))
        return sorted(edits, key=lambda edit: edit[0])
    else:
        tail = bytearray()
        at = _append(tail, len(buf), value)
        edits.append((field_at + 4, field_at + 12, struct.pack(order + "II", len(value), at)))
        edits.append((len(buf), len(buf), bytes(tail)))
    if own:
        edits.append((entry.value_pos, entry.value_pos + entry.size, bytes(entry.size)))
    return sorted(edits, key=lambda edit: edit[0])
