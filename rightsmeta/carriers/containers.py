"""Find the XMP packets and the EXIF block in image files, fast and safely.

The containers are walked by one module per syntax (jpeg.py, png.py, riff.py, tiff.py, gif.py,
bmff.py), the same walkers the XMP writer and the C2PA locator use; this module knows what an
image format keeps where (which segment, chunk, tag or item is XMP or EXIF) and how it is encoded.

This is the read path used when scanning very many files, so it uses no
third-party library, touches only the bytes it needs (``buf`` may be an
``mmap``: it is sliced, never copied whole) and treats every file as hostile:
each length and offset is checked before use, every loop is bounded and
decompression is capped. Whatever the input, only
:class:`~rightsmeta.errors.MalformedFile` (broken structure) and
:class:`~rightsmeta.errors.UnsupportedFormat` (a format we do not read) escape.

Truncation is reported as MalformedFile for every format: each walker goes
the container to its end marker (JPEG EOI, PNG IEND, GIF trailer) or checks
that the declared sizes (RIFF, ISO-BMFF boxes, TIFF offsets) fit in the file.
"""

from __future__ import annotations

import operator
import re
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import MalformedFile, MalformedMetadata, RightsmetaError, UnsupportedFormat
from ..xmp import begins_packet
from . import bmff, gif, jpeg, png, riff, walked
from . import tiff as _tiff
from .tiff import Buffer

if TYPE_CHECKING:
    from . import Parsed

IMAGE_FORMATS = ("jpeg", "png", "webp", "tiff", "gif", "heic", "avif")

#: Upper bound on segments/chunks/boxes/blocks walked in one file; real files
#: stay far below it, hostile ones cannot make us spin.
MAX_ITEMS = 100_000
#: Items, extents and infe entries walked inside an ISO-BMFF 'meta' box.
MAX_BMFF_ITEMS = bmff.MAX_META_ITEMS
#: GIF data comes in sub-blocks of at most 255 bytes, so this allows ~250 MB
#: of normally packed GIF while bounding the time a hostile file can take.
MAX_GIF_SUBBLOCKS = 1_000_000
#: Largest decompressed XMP or assembled metadata item we accept.
MAX_BLOCK = 16 * 1024 * 1024
#: EXIF cannot exceed 64 KiB in JPEG; values larger than this in a TIFF file
#: are image payloads (layers, previews), not metadata.
MAX_EXIF_VALUE = 64 * 1024
#: Total of the values copied into the compact EXIF of a TIFF file: far above
#: any real EXIF, low enough that many entries sharing one big value cannot
#: blow it up.
MAX_COMPACT_VALUES = 1024 * 1024
#: Strips or tiles listed by one TIFF directory.
MAX_TIFF_PIECES = 1_000_000

_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"})
_MIAF_BRANDS = frozenset({b"mif1", b"msf1", b"miaf", b"mif2"})


@dataclass(frozen=True)
class Blocks:
    """Where the metadata of one file is, as found by :func:`extract`."""

    #: The XMP packet as stored (UTF-8 XML, may include ``<?xpacket?>``);
    #: decompressed when the container compresses it (PNG iTXt).
    xmp: bytes | None
    #: TIFF-structured EXIF starting at the byte-order mark ("II*\\0"/"MM\\0*").
    #: For TIFF files this is a compact copy of IFD0 and the Exif IFD, see
    #: :func:`_compact_tiff`.
    exif: bytes | None
    #: Human-readable place of the XMP packet, e.g. "JPEG APP1".
    xmp_location: str | None
    #: Further XMP packets with their places: a file should hold one, but some hold more, and
    #: a reader that sees only the first can miss a reservation (ExifTool shows the last).
    more_xmp: tuple[tuple[bytes, str], ...] = ()
    #: The JPEG ExtendedXMP the first packet names, assembled and MD5-checked.
    extended_xmp: bytes | None = None
    #: Why a part of the XMP named by the file could not be read (fail closed: the caller says so).
    xmp_error: str | None = None
    #: Where a C2PA store may sit, as the same walk found (None: this format's walk does not say).
    #: Not metadata, so not compared: two files with the same metadata extract as equal.
    c2pa: list[tuple[int, int]] | None = field(default=None, compare=False)
    #: A JPEG's Photoshop image resources (APP13 "Photoshop 3.0", its segments joined), where the
    #: IPTC IIM lives (carriers/iim.py).
    irb: bytes | None = None


_NOTHING = Blocks(None, None, None)


def sniff(head: bytes) -> str | None:
    """Format name from the first bytes of a file (64 are enough), or None."""
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:8] == png.SIGNATURE:
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    # BigTIFF (43) is TIFF with 64-bit offsets: read as TIFF, and tag says it does not write it.
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[4:8] == b"ftyp":
        return _sniff_bmff(head)
    return None


def _sniff_bmff(head: bytes) -> str | None:
    major, brands = bmff.brands(head)
    if major in _AVIF_BRANDS:
        return "avif"
    if major in _HEIC_BRANDS:
        return "heic"
    if major in _MIAF_BRANDS or major[:3] == b"MA1":
        if brands & _AVIF_BRANDS:
            return "avif"
        if brands & _HEIC_BRANDS:
            return "heic"
    return None


def extract(buf: Buffer, fmt: str, parsed: Parsed | None = None) -> Blocks:
    """Locate the XMP packet and the EXIF block in an image of format ``fmt``.

    ``parsed``: the tag's memo of this file's walks (carriers.walked), when tagging.

    MalformedFile (with what is wrong and where) when the structure is broken
    or truncated; UnsupportedFormat for a format name we do not read or a
    variant we cannot (BigTIFF).
    """
    parser = _PARSERS.get(fmt)
    if parser is None:
        raise UnsupportedFormat(f"cannot read metadata from format {fmt!r}")
    try:
        return parser(buf, parsed)
    except RightsmetaError:
        raise
    except (struct.error, IndexError, ValueError, OverflowError, zlib.error) as exc:
        # Safety net: the parsers check lengths first, so reaching this means a
        # check is missing; the caller still only ever sees MalformedFile.
        raise MalformedFile(f"malformed {fmt.upper()}: {exc}") from exc


# --- helpers -----------------------------------------------------------------


def _u32be(buf: Buffer, pos: int) -> int:
    return int.from_bytes(buf[pos : pos + 4], "big")


def _tiff_block(data: bytes, where: str) -> bytes:
    """The EXIF payload from its byte-order mark, tolerating an "Exif\\0\\0" prefix."""
    if data[:6] == b"Exif\x00\x00":
        data = data[6:]
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        raise MalformedFile(f"{where}: EXIF does not start with a TIFF header (found {data[:4]!r})")
    return data


def _inflate(data: bytes, where: str) -> bytes:
    """zlib-decompress with a hard output cap, so a small bomb cannot eat memory."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_BLOCK + 1)
    except zlib.error as exc:
        raise MalformedFile(f"{where}: corrupt compressed data ({exc})") from exc
    if len(out) > MAX_BLOCK or inflater.unconsumed_tail:
        raise MalformedFile(f"{where}: decompresses to more than {MAX_BLOCK} bytes")
    if not inflater.eof:
        raise MalformedFile(f"{where}: compressed data is truncated")
    return out


# --- JPEG (walked by carriers/jpeg.py) --------------------------------------------------------

_EXTENDED_GUID = re.compile(rb"HasExtendedXMP(?:\s*=\s*[\"']|>)\s*([0-9A-Fa-f]{32})")


def extended_guid(packet: bytes) -> str | None:
    """The GUID of the ExtendedXMP a standard packet names (xmpNote:HasExtendedXMP), found without parsing."""
    named = _EXTENDED_GUID.search(packet)
    return named.group(1).decode("ascii").upper() if named is not None else None


def _extract_jpeg(buf: Buffer, parsed: Parsed | None) -> Blocks:
    layout = walked.jpeg_layout(buf, parsed)
    packets = jpeg.xmp_packets(buf, layout)
    raw_exif = jpeg.exif(buf, layout)
    exif = _tiff_block(raw_exif, "JPEG APP1 EXIF") if raw_exif is not None else None
    c2pa = jpeg.c2pa_ranges(layout, buf)
    misnamed = jpeg.misnamed_metadata(buf, layout)
    if misnamed is not None:
        raise MalformedFile(f"JPEG segment 0x{misnamed.marker:02X} at offset {misnamed.marker_pos} holds an XMP packet "
                            "or EXIF under a damaged marker or name (not APP1 http://ns.adobe.com/xap/1.0/ or Exif): "
                            "it was not read")
    irbs = jpeg.photoshop_segments(buf, layout)
    irb = b"".join(jpeg.payload(buf, s)[len(jpeg.PHOTOSHOP_SIGNATURE) :] for s in irbs) if irbs else None
    if not packets:
        return Blocks(None, exif, None, c2pa=c2pa, irb=irb)
    first = packets[0][1]
    extended: bytes | None = None
    error: str | None = None
    named = extended_guid(first)
    if named is not None:
        try:
            extended = jpeg.extended_xmp(buf, layout, named)
        except MalformedMetadata as exc:
            error = str(exc)
    more = tuple((packet, f"JPEG APP1 at offset {seg.marker_pos}") for seg, packet in packets[1:])
    return Blocks(first, exif, "JPEG APP1", more, extended, error, c2pa, irb)


# --- PNG (walked by carriers/png.py) -----------------------------------------------------------


def _extract_png(buf: Buffer, parsed: Parsed | None) -> Blocks:
    chunks = walked.png_chunks(buf, parsed)
    packets: list[tuple[bytes, str, str]] = []  # (packet, its chunk, the chunk and its offset)
    exif: bytes | None = None
    raw_profile: png.Chunk | None = None  # a legacy EXIF text chunk
    raw_xmp: list[tuple[bytes, str, str]] = []  # ImageMagick's: after the others, which readers prefer
    for chunk in chunks:
        raw = png.is_raw_profile(buf, chunk, png.RAW_XMP_KEYWORDS)
        if raw or png.is_xmp(buf, chunk):
            name = f"PNG {chunk.type.decode()} {'Raw profile type xmp' if raw else 'XML:com.adobe.xmp'}"
            where = f"{name} at offset {chunk.start}"
            read = _png_raw_profile if raw else _png_xmp_text
            (raw_xmp if raw else packets).append((read(png.data(buf, chunk), chunk.type, where), name, where))
        elif chunk.type == b"eXIf" and exif is None:
            exif = _tiff_block(png.data(buf, chunk), f"PNG eXIf chunk at offset {chunk.start}")
        elif raw_profile is None and png.is_raw_profile(buf, chunk, png.RAW_EXIF_KEYWORDS):
            raw_profile = chunk
        elif chunk.type != b"IDAT":
            # Every other chunk's CRC too (not the image data's: the decoder's to judge): a byte of an
            # XMP chunk's type or keyword made it a chunk nothing reads, and the file read as no
            # statement. A CRC that fails is damage, whatever the chunk (ExifTool warns of it too).
            png.data(buf, chunk)
    if exif is None and raw_profile is not None:
        # Legacy ImageMagick/ExifTool "Raw profile" text chunk, used before eXIf existed.
        where = f"PNG {raw_profile.type.decode()} 'Raw profile' chunk at offset {raw_profile.start}"
        exif = _tiff_block(_png_raw_profile(png.data(buf, raw_profile), raw_profile.type, where), where)
    c2pa = png.c2pa_ranges(chunks, buf)
    packets += raw_xmp
    if not packets:
        return Blocks(None, exif, None, c2pa=c2pa)
    return Blocks(packets[0][0], exif, packets[0][1], tuple((p, where) for p, _, where in packets[1:]), c2pa=c2pa)


def _png_xmp_text(data: bytes, ctype: bytes, where: str) -> bytes:
    """The packet of an XMP text chunk: iTXt, or tEXt/zTXt (Latin-1 text, as PNG defines it)."""
    i = len(png.XMP_KEYWORD)
    if ctype != b"iTXt":
        text = data[i:] if ctype == b"tEXt" else _png_ztxt(data[i:], where)
        return text.decode("latin-1").encode("utf-8")
    if len(data) < i + 2:
        raise MalformedFile(f"{where}: too short for an iTXt header")
    compressed, method = data[i], data[i + 1]
    lang_end = data.find(b"\x00", i + 2)
    translated_end = data.find(b"\x00", lang_end + 1) if lang_end >= 0 else -1
    if translated_end < 0:
        raise MalformedFile(f"{where}: language or translated keyword is not NUL-terminated")
    text = data[translated_end + 1 :]
    if compressed == 0:
        return text
    if compressed != 1 or method != 0:
        raise MalformedFile(f"{where}: unknown compression flag {compressed} / method {method}")
    return _inflate(text, where)


def _png_ztxt(text: bytes, where: str) -> bytes:
    """A zTXt chunk's text, from its compression method on."""
    if text[:1] != b"\x00":
        raise MalformedFile(f"{where}: unknown compression method")
    return _inflate(text[1:], where)


def _png_raw_profile(data: bytes, ctype: bytes, where: str) -> bytes:
    """The profile an ImageMagick "Raw profile type NAME" text chunk (tEXt or zTXt) holds."""
    text = data[data.index(b"\x00") + 1 :]  # the keyword matched, so the NUL is there
    if ctype == b"zTXt":
        text = _png_ztxt(text, where)
    # "\n<name>\n<spaces><decimal length>\n<hex digits, line-wrapped>"
    parts = text.split(maxsplit=2)
    if len(parts) != 3 or not parts[1].isdigit():
        raise MalformedFile(f"{where}: not a raw profile")
    try:
        payload = bytes.fromhex(parts[2].decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedFile(f"{where}: bad hex data") from exc
    if len(payload) != int(parts[1]):
        raise MalformedFile(f"{where}: declares {int(parts[1])} bytes but holds {len(payload)}")
    return payload


# --- WebP --------------------------------------------------------------------


def _extract_webp(buf: Buffer, parsed: Parsed | None) -> Blocks:
    found = walked.webp_chunks(buf, parsed)
    misnamed = riff.misnamed_metadata(found, buf)
    if misnamed is not None:
        raise MalformedFile(f"WebP chunk {misnamed.fourcc!r} at offset {misnamed.start} holds an XMP packet or EXIF under a "
                            "damaged type (not 'XMP ' or 'EXIF'): it was not read")
    packets = [(riff.data(buf, c), f"WebP XMP chunk at offset {c.start}") for c in riff.find(found, b"XMP ")]
    exif_chunks = riff.find(found, b"EXIF")
    exif = None
    if exif_chunks:
        exif = _tiff_block(riff.data(buf, exif_chunks[0]), f"WebP EXIF chunk at offset {exif_chunks[0].start}")
    c2pa = riff.c2pa_ranges(found, buf)
    if not packets:
        return Blocks(None, exif, None, c2pa=c2pa)
    return Blocks(packets[0][0], exif, "WebP XMP chunk", tuple(packets[1:]), c2pa=c2pa)


# --- TIFF --------------------------------------------------------------------

# Tags whose values point at pixel data or other directories: meaningless once
# IFD0 and the Exif IFD are copied out of the file (XMP is returned on its own).
_NOT_COPIED = frozenset(
    {273, 279, 288, 289, 324, 325, 330, 513, 514, 700, 0x8825, 0xA005, _tiff.EXIF_IFD_POINTER}
)
_DATA_TAGS = ((273, 279), (324, 325))  # (offsets, byte counts) of strips and tiles
_SIZE_TAGS = frozenset({256, 257})  # ImageWidth, ImageLength


def _extract_tiff(buf: Buffer, parsed: Parsed | None) -> Blocks:
    """TIFF: XMP is IFD0 tag 700; the EXIF is the file's own IFD0 and Exif IFD.

    The structure is validated as far as it locates data: the IFD chain (no
    loops, every directory inside the file), IFD0's values and the strips or
    tiles it points to, and the Exif IFD with its values.
    """
    big = _tiff.big_order(buf) is not None  # BigTIFF: the same checks on 64-bit directories
    order, ifd0, entries, next_ifd = _tiff.big_first_directory(buf) if big else walked.tiff_directory(buf, parsed)
    for entry in entries:
        if entry.size is not None:
            _tiff.check_value(buf, entry)
    by_tag = {entry.tag: entry for entry in entries}
    _check_tiff_data(buf, by_tag, order)

    if big:
        seen = set(_tiff.ifd_chain(buf, ifd0, next_ifd, order, MAX_ITEMS, big=True))
    else:
        seen = set(_tiff.ifd_chain(buf, ifd0, next_ifd, order, MAX_ITEMS))

    exif_entries: Sequence[_tiff.IfdEntry] = ()
    pointer = by_tag.get(_tiff.EXIF_IFD_POINTER)
    if pointer is not None:
        exif_ifd = _tiff.big_sub_ifd_offset(buf, pointer, order) if big else _tiff.sub_ifd_offset(pointer, order)
        if exif_ifd in seen:
            raise MalformedFile(f"TIFF: Exif IFD pointer loops back to the directory at offset {exif_ifd}")
        exif_entries, _ = _tiff.read_big_ifd(buf, exif_ifd, order) if big else _tiff.read_ifd(buf, exif_ifd, order)
        for entry in exif_entries:
            if entry.size is not None:
                _tiff.check_value(buf, entry)

    if not _SIZE_TAGS.issubset(by_tag):
        # Every TIFF's first directory gives the image's size. Bytes inserted or cut before it
        # leave the header pointing at whatever now sits there, which may read as a directory of
        # no entries: no XMP entry, untagged, where the statement is in the file still.
        raise MalformedFile(f"TIFF: the first directory (at offset {ifd0}, {len(entries)} entries) gives no "
                            "image size (ImageWidth, ImageLength): it is damaged, or not where the header says")

    misnamed = _tiff.misnamed_xmp(buf, entries)
    if misnamed is not None:
        raise MalformedFile(f"TIFF: tag {misnamed.tag} of the first directory holds an XMP packet under a damaged "
                            "tag number (not 700): the packet was not read")
    packets: list[bytes] = []
    for xmp_entry in (e for e in entries if e.tag == 700):  # a damaged or merged IFD0 may hold two
        if xmp_entry.type not in (1, 2, 7):
            raise MalformedFile(
                f"TIFF: XMP tag 700 has field type {xmp_entry.type}, expected BYTE or UNDEFINED"
            )
        packets.append(_tiff.value_bytes(buf, xmp_entry))
    exif = _compact_tiff(buf, order, entries, exif_entries)
    # The locator searches the whole file when IFD0 holds the tag; a tag of unknown field type
    # (not checked above) is left to the locator's own walk, which fails on it and searches windows.
    store = next((e for e in entries if e.tag == _tiff.C2PA_TAG), None)
    c2pa = [] if store is None else [(0, len(buf))] if store.size is not None else None
    if not packets:
        return Blocks(None, exif, None, c2pa=c2pa)
    more = tuple((p, f"TIFF tag 700 (entry {n})") for n, p in enumerate(packets[1:], start=2))
    return Blocks(packets[0], exif, "TIFF tag 700", more, c2pa=c2pa)


def _check_tiff_data(buf: Buffer, by_tag: dict[int, _tiff.IfdEntry], order: str) -> None:
    n = len(buf)
    for offsets_tag, counts_tag in _DATA_TAGS:
        offsets_entry, counts_entry = by_tag.get(offsets_tag), by_tag.get(counts_tag)
        if offsets_entry is None or counts_entry is None:
            continue
        offsets = _tiff_uints(buf, offsets_entry, order)
        counts = _tiff_uints(buf, counts_entry, order)
        if len(offsets) != len(counts):
            raise MalformedFile(
                f"TIFF: tag {offsets_tag} has {len(offsets)} offsets but tag {counts_tag} has {len(counts)} byte counts"
            )
        # Files can have 100,000s of strips: map/max keep this at C speed.
        last_end = max(map(operator.add, offsets, counts), default=0)
        if last_end > n:
            raise MalformedFile(
                f"truncated TIFF: image data (tag {offsets_tag}) extends to offset {last_end} but the file ends at {n}"
            )


def _tiff_uints(buf: Buffer, entry: _tiff.IfdEntry, order: str) -> tuple[int, ...]:
    code = {3: "H", 4: "I", 13: "I", 16: "Q"}.get(entry.type)  # LONG8: BigTIFF's strip offsets
    if code is None:
        raise MalformedFile(f"TIFF: tag {entry.tag} has field type {entry.type}, expected SHORT or LONG")
    if entry.count > MAX_TIFF_PIECES:
        raise MalformedFile(
            f"TIFF: tag {entry.tag} lists {entry.count} strips or tiles, more than {MAX_TIFF_PIECES}"
        )
    return struct.unpack(f"{order}{entry.count}{code}", _tiff.value_bytes(buf, entry))


def _compact_tiff(
    buf: Buffer, order: str, ifd0: Sequence[_tiff.IfdEntry], exif_ifd: Sequence[_tiff.IfdEntry]
) -> bytes:
    """A standalone TIFF holding IFD0 and the Exif IFD of a TIFF file, without pixels.

    A TIFF file's EXIF *is* the file, but copying whole (possibly gigabyte)
    files per scan would be wasteful, and slicing a prefix does not help when
    the directory sits at the end. So the two directories are re-laid out:
    header, IFD0, Exif IFD, then the out-of-line values. Values over 64 KiB
    (layers, previews, XMP which is returned separately), values beyond a 1 MiB
    total, and pointers to pixel data or other directories are left out, so
    :func:`tiff.find_tag` works on the result exactly as on a JPEG's EXIF.
    """
    budget = MAX_COMPACT_VALUES

    def keep(entries: Sequence[_tiff.IfdEntry]) -> list[_tiff.IfdEntry]:
        nonlocal budget
        kept = []
        for e in sorted(entries, key=lambda entry: entry.tag):
            if e.size is None or e.size > MAX_EXIF_VALUE or e.tag in _NOT_COPIED:
                continue
            cost = e.size + (e.size & 1) if e.size > 4 else 0
            if cost <= budget:
                budget -= cost
                kept.append(e)
        return kept

    # The Exif IFD is served first: it holds the rights tags (LearningOptOutIn).
    sub = keep(exif_ifd)
    main = keep(ifd0)
    has_sub = bool(exif_ifd)
    ifd0_size = 2 + 12 * (len(main) + has_sub) + 4
    sub_at = 8 + ifd0_size
    data_at = sub_at + (2 + 12 * len(sub) + 4 if has_sub else 0)
    values = bytearray()

    def directory(entries: list[_tiff.IfdEntry], extra: list[tuple[int, int, int, bytes]]) -> bytes:
        rows = []
        for e in entries:
            assert e.size is not None  # keep() filtered unknown types
            if e.size > 4:
                field = struct.pack(order + "I", data_at + len(values))
                values.extend(buf[e.value_pos : e.value_pos + e.size])
                if len(values) % 2:
                    values.append(0)  # TIFF values start on word boundaries
            else:
                field = e.field
            rows.append((e.tag, e.type, e.count, field))
        rows = sorted(rows + extra)
        out = struct.pack(order + "H", len(rows))
        for row in rows:
            out += struct.pack(order + "HHI4s", *row)
        return out + b"\x00\x00\x00\x00"

    pointer = [(_tiff.EXIF_IFD_POINTER, 4, 1, struct.pack(order + "I", sub_at))] if has_sub else []
    header = (b"II*\x00" if order == "<" else b"MM\x00*") + struct.pack(order + "I", 8)
    out = header + directory(main, pointer)
    if has_sub:
        out += directory(sub, [])
    return out + bytes(values)


# --- GIF (walked by carriers/gif.py) -----------------------------------------------------------


def _extract_gif(buf: Buffer) -> Blocks:
    packets = gif.xmp_packets(buf, MAX_ITEMS, MAX_GIF_SUBBLOCKS)
    if not packets:
        return _NOTHING
    more = tuple((packet, f"GIF XMP application extension at offset {pos}") for pos, packet in packets[1:])
    return Blocks(packets[0][1], None, "GIF XMP application extension", more)


# --- HEIF / AVIF (ISO base media file format; boxes walked by carriers/bmff.py) ------------


# Item types of pictures (coded images, derived images, masks): never looked into for a packet.
_HEIF_PICTURES = frozenset({b"av01", b"hvc1", b"hvt1", b"lhv1", b"avc1", b"jpeg", b"j2k1", b"vvc1", b"unci", b"grid",
                            b"iden", b"iovl", b"tmap", b"mski"})


def _extract_bmff(buf: Buffer) -> Blocks:
    found = bmff.meta_items(buf, MAX_ITEMS)
    if found is None:
        return _NOTHING
    items, idat = found
    packets: list[tuple[bytes, str]] = []
    exif: bytes | None = None
    for item_id, item in items.items():
        if item.item_type in (b"mime", b"") and item.content_type == b"application/rdf+xml":
            packet = bmff.item_data(buf, item, item_id, idat, MAX_BLOCK)
            if packet is None or item.content_encoding:
                # Stored where we do not follow (another file, a damaged data reference) or encoded
                # (deflated): a packet that is not read is said, never taken for no statement.
                raise MalformedFile(f"ISO-BMFF: XMP item {item_id} is {'encoded' if packet is not None else 'stored'} in a "
                                    "way rightsmeta does not read: the packet was not read")
            packets.append((packet, f"HEIF mime item {item_id}"))
        elif item.item_type not in _HEIF_PICTURES and item.item_type != b"Exif":
            # A mime item of another content type, or an item of no known type: its type or content
            # type may be the XMP item's, damaged (one byte of "mime" or "application/rdf+xml").
            data = bmff.item_data(buf, item, item_id, idat, MAX_BLOCK)
            if data is not None and (begins_packet(data, 0, 96) or _tiff.begins_exif(data[:10])):
                raise MalformedFile(f"ISO-BMFF: item {item_id} holds an XMP packet or EXIF under a damaged item type or "
                                    "content type (not mime application/rdf+xml, nor Exif): it was not read")
        elif exif is None and item.item_type == b"Exif":
            data = bmff.item_data(buf, item, item_id, idat, MAX_BLOCK)
            if data is None:  # as for XMP: EXIF that is not read is said (a damaged data reference)
                raise MalformedFile(f"ISO-BMFF: Exif item {item_id} is stored in a way rightsmeta does not read: "
                                    "its EXIF was not read")
            # The payload starts with the offset from after this field to the TIFF header.
            if len(data) < 4 or 4 + _u32be(data, 0) > len(data):
                raise MalformedFile(f"ISO-BMFF: Exif item {item_id} has an invalid TIFF header offset")
            exif = _tiff_block(data[4 + _u32be(data, 0) :], f"ISO-BMFF Exif item {item_id}")
    if not packets:
        return Blocks(None, exif, None)
    return Blocks(packets[0][0], exif, "HEIF mime item", tuple(packets[1:]))


def _unwalked(parser: Callable[[Buffer], Blocks]) -> Callable[[Buffer, Parsed | None], Blocks]:
    return lambda buf, parsed: parser(buf)  # no walk of these is remembered (carriers.walked)


_PARSERS: dict[str, Callable[[Buffer, Parsed | None], Blocks]] = {
    "jpeg": _extract_jpeg,
    "png": _extract_png,
    "webp": _extract_webp,
    "tiff": _extract_tiff,
    "gif": _unwalked(_extract_gif),
    "heic": _unwalked(_extract_bmff),
    "avif": _unwalked(_extract_bmff),
}
