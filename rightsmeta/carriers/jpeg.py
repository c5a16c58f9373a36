"""JPEG marker segments: the one walker that reads, locates and splices them.

Used by reading (carriers/containers.py), by the XMP writer (carriers/image.py) and by the C2PA
locator (carriers/manifest.py). Every length is checked before use and the walk is bounded, so a
hostile file can only produce :class:`~rightsmeta.errors.MalformedFile`. ``buf`` may be an mmap:
it is sliced, never copied whole.

Splicing replaces or inserts whole segments and copies every other byte as it was (fill bytes,
entropy-coded data, trailing data after EOI, a second image of an MPO), so EXIF, MakerNotes,
IPTC, ICC and the rest keep their exact bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from ..errors import MalformedFile, MalformedMetadata
from ..xmp import begins_packet
from . import jumbf
from .splice import Spliced
from .splice import splice as _splice
from .tiff import Buffer

XMP_SIGNATURE = b"http://ns.adobe.com/xap/1.0/\x00"
EXTENDED_SIGNATURE = b"http://ns.adobe.com/xmp/extension/\x00"
EXIF_SIGNATURE = b"Exif\x00\x00"
MPF_SIGNATURE = b"MPF\x00"
#: Upper bound on segments walked before the scan; real files stay far below it.
MAX_SEGMENTS = 100_000
#: A segment's length field counts itself: at most 65535 - 2 bytes of payload.
MAX_PAYLOAD = 65533
#: Largest standard XMP packet one APP1 segment holds (XMP part 3, 1.1.3.1).
MAX_STANDARD_PACKET = MAX_PAYLOAD - len(XMP_SIGNATURE)
#: ExtendedXMP: signature, 32-character GUID, full length and offset (4 bytes each), then data.
_EXTENDED_HEADER = len(EXTENDED_SIGNATURE) + 32 + 4 + 4
MAX_EXTENDED_CHUNK = MAX_PAYLOAD - _EXTENDED_HEADER
#: Largest ExtendedXMP we assemble from a file.
MAX_EXTENDED = 16 * 1024 * 1024

APP0, APP1, APP2, APP11, SOS, EOI = 0xE0, 0xE1, 0xE2, 0xEB, 0xDA, 0xD9


class Segment(NamedTuple):
    """One marker segment before the scan. ``start`` includes fill bytes before the marker.
    (A NamedTuple, made at C speed: a frozen dataclass's ``__init__`` was most of a walk's cost,
    and a tag walks a JPEG several times.)"""

    marker: int
    start: int
    marker_pos: int
    end: int

    @property
    def payload_start(self) -> int:
        return self.marker_pos + 4 if self.has_length else self.marker_pos + 2

    @property
    def has_length(self) -> bool:
        return not (self.marker == 0x01 or 0xD0 <= self.marker <= 0xD7 or self.marker == EOI)


class Layout(NamedTuple):
    """The segments from SOI to the first SOS (or to EOI in a tables-only stream)."""

    segments: tuple[Segment, ...]


def walk(buf: Buffer) -> Layout:
    """Every segment from SOI up to and including the first SOS (or EOI); checks that EOI follows."""
    n = len(buf)
    if buf[:2] != b"\xff\xd8":
        raise MalformedFile("not a JPEG: no start-of-image marker at offset 0")
    segments: list[Segment] = []
    pos = 2
    start = pos
    for _ in range(MAX_SEGMENTS):
        if pos >= n:
            raise MalformedFile(f"truncated JPEG: file ends at {n} before the start of scan")
        if buf[pos] != 0xFF:
            raise MalformedFile(f"JPEG: expected a marker at offset {pos}, found byte 0x{buf[pos]:02X}")
        # Any number of 0xFF fill bytes may precede a marker code; skip them in bulk.
        window = buf[pos : pos + 64]
        fill = len(window) - len(window.lstrip(b"\xff"))
        if fill == len(window):
            if pos + fill >= n:
                raise MalformedFile(f"truncated JPEG: file ends at {n} in fill bytes before the start of scan")
            pos += fill - 1  # keep one 0xFF to introduce the marker
            continue
        marker_pos = pos + fill - 1
        marker = buf[pos + fill]
        pos += fill + 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM, RSTn: no length
            segments.append(Segment(marker, start, marker_pos, pos))
            start = pos
            continue
        if marker == EOI:  # EOI without a scan: a tables-only stream
            segments.append(Segment(marker, start, marker_pos, pos))
            return Layout(tuple(segments))
        if marker in (0x00, 0xD8):
            raise MalformedFile(f"JPEG: invalid marker FF{marker:02X} at offset {marker_pos}")
        if pos + 2 > n:
            raise MalformedFile(f"truncated JPEG: marker at offset {marker_pos} has no length")
        length = int.from_bytes(buf[pos : pos + 2], "big")
        if length < 2:
            raise MalformedFile(f"JPEG: segment at offset {marker_pos} has invalid length {length}")
        end = pos + length
        if end > n:
            raise MalformedFile(
                f"truncated JPEG: segment at offset {marker_pos} claims {length} bytes but the file ends at {n}"
            )
        segments.append(Segment(marker, start, marker_pos, end))
        if marker == SOS:
            # Entropy-coded data follows; only EOI can tell us the file is whole.
            # FF D9 cannot occur inside entropy-coded data (FF is stuffed as FF 00).
            if buf.rfind(b"\xff\xd9", end) < 0:
                raise MalformedFile("truncated JPEG: no end-of-image marker")
            return Layout(tuple(segments))
        pos = start = end
    raise MalformedFile(f"JPEG: more than {MAX_SEGMENTS} segments before the start of scan")


def payload(buf: Buffer, seg: Segment) -> bytes:
    return bytes(buf[seg.payload_start : seg.end])


def _starts(buf: Buffer, seg: Segment, signature: bytes) -> bool:
    return bytes(buf[seg.payload_start : seg.payload_start + len(signature)]) == signature


def is_xmp(buf: Buffer, seg: Segment) -> bool:
    return seg.marker == APP1 and _starts(buf, seg, XMP_SIGNATURE)


def is_extended_xmp(buf: Buffer, seg: Segment) -> bool:
    return seg.marker == APP1 and _starts(buf, seg, EXTENDED_SIGNATURE)


def is_exif(buf: Buffer, seg: Segment) -> bool:
    return seg.marker == APP1 and _starts(buf, seg, EXIF_SIGNATURE)


APP13 = 0xED
PHOTOSHOP_SIGNATURE = b"Photoshop 3.0\x00"


def photoshop_segments(buf: Buffer, layout: Layout) -> list[Segment]:
    """The APP13 segments holding Photoshop's image resources (a large block spans several)."""
    return [s for s in layout.segments if s.marker == APP13 and _starts(buf, s, PHOTOSHOP_SIGNATURE)]


def xmp_packets(buf: Buffer, layout: Layout) -> list[tuple[Segment, bytes]]:
    """Every standard XMP packet, in file order (a file should have one; some have more)."""
    return [(s, payload(buf, s)[len(XMP_SIGNATURE) :]) for s in layout.segments if is_xmp(buf, s)]


_MAY_HOLD_XMP_TEXT = frozenset({0xED, 0xFE})  # APP13 (Photoshop IRB), COM
# The coding segments: SOFn, DHT, DAC (C0-CF), SOS, DQT, DNL, DRI, DHP, EXP (DA-DF).
_CODING = frozenset(range(0xC0, 0xD0)) | frozenset(range(0xDA, 0xE0))


def misnamed_metadata(buf: Buffer, layout: Layout) -> Segment | None:
    """A segment that is not XMP or EXIF by its marker and name yet begins with an XMP packet, or
    with a TIFF header where "Exif\0\0" would end: its name (a byte of
    "http://ns.adobe.com/xap/1.0/" or "Exif\0\0") or its APP1 marker damaged, so no reader takes
    it for what it holds. Not a comment (COM) or Photoshop's APP13, where a packet may stand a
    little way in; MPF's TIFF header (APP2 "MPF\0") stands at 4."""
    for seg in layout.segments:
        if seg.marker in _CODING or seg.marker in _MAY_HOLD_XMP_TEXT or not seg.has_length:
            continue  # the image's own segments (tables, frame, scan): most of a JPEG's, never XMP
        if is_xmp(buf, seg) or is_extended_xmp(buf, seg) or is_exif(buf, seg):
            continue
        if begins_packet(buf, seg.payload_start, min(seg.end, seg.payload_start + 96)):
            return seg
        if bytes(buf[seg.payload_start + 6 : seg.payload_start + 10]) in _TIFF_HEADERS:
            return seg
    return None


_TIFF_HEADERS = frozenset({b"II*\x00", b"MM\x00*"})


def extended_guid(buf: Buffer, seg: Segment) -> str | None:
    """The GUID of an ExtendedXMP segment (upper case), or None for any other segment."""
    if not is_extended_xmp(buf, seg):
        return None
    start = seg.payload_start + len(EXTENDED_SIGNATURE)
    return bytes(buf[start : start + 32]).decode("ascii", "replace").upper()


def exif(buf: Buffer, layout: Layout) -> bytes | None:
    """The first APP1 EXIF payload, from its "Exif\\0\\0" header."""
    for seg in layout.segments:
        if is_exif(buf, seg):
            return payload(buf, seg)
    return None


def extended_xmp(buf: Buffer, layout: Layout, guid: str) -> bytes:
    """The ExtendedXMP whose GUID the standard packet names (xmpNote:HasExtendedXMP), assembled.

    MalformedMetadata when its parts are missing, overlap or do not hash to the GUID: the
    packet is then not fully read, and the caller must say so.
    """
    key = guid.upper().encode("ascii", "replace")
    total: int | None = None
    parts: dict[int, bytes] = {}
    for seg in layout.segments:
        if not is_extended_xmp(buf, seg):
            continue
        body = payload(buf, seg)
        if len(body) < _EXTENDED_HEADER or body[len(EXTENDED_SIGNATURE) : len(EXTENDED_SIGNATURE) + 32].upper() != key:
            continue
        head = len(EXTENDED_SIGNATURE) + 32
        full, offset = int.from_bytes(body[head : head + 4], "big"), int.from_bytes(body[head + 4 : head + 8], "big")
        if full > MAX_EXTENDED:
            raise MalformedMetadata(f"ExtendedXMP {guid} claims {full} bytes, more than {MAX_EXTENDED}")
        if total is not None and full != total:
            raise MalformedMetadata(f"ExtendedXMP {guid}: its segments disagree on the full length")
        total = full
        parts[offset] = body[_EXTENDED_HEADER:]
    if total is None:
        raise MalformedMetadata(f"the XMP packet names ExtendedXMP {guid} but no segment holds it")
    out = bytearray()
    for offset in sorted(parts):
        if offset != len(out):
            raise MalformedMetadata(f"ExtendedXMP {guid}: a part is missing or overlaps at offset {len(out)}")
        out += parts[offset]
    if len(out) != total:
        raise MalformedMetadata(f"ExtendedXMP {guid}: holds {len(out)} of its {total} bytes")
    import hashlib  # here, not at the top: only ExtendedXMP needs it, and it costs a scan's start-up

    if hashlib.md5(out, usedforsecurity=False).hexdigest().upper() != guid.upper():
        raise MalformedMetadata(f"ExtendedXMP {guid}: content does not match its MD5 GUID")
    return bytes(out)


def c2pa_ranges(layout: Layout, buf: Buffer) -> list[tuple[int, int]]:
    """APP11 segments, where a C2PA store (JUMBF) lives, and any other APPn or COM segment holding one
    (jumbf.py)."""
    return [(s.marker_pos, s.end) for s in layout.segments
            if s.marker == APP11 or (s.marker >= APP0 and jumbf.holds_store(buf, s.marker_pos, s.end))]


def segment(marker: int, body: bytes) -> bytes:
    if len(body) > MAX_PAYLOAD:
        raise ValueError(f"JPEG segment payload of {len(body)} bytes exceeds {MAX_PAYLOAD}")
    return bytes((0xFF, marker)) + (len(body) + 2).to_bytes(2, "big") + body


def xmp_segments(standard: bytes, extended: bytes | None = None) -> bytes:
    """APP1 segments for a standard packet and, when given, its ExtendedXMP split into parts."""
    if len(standard) > MAX_STANDARD_PACKET:
        raise MalformedMetadata(f"the standard XMP packet is {len(standard)} bytes, more than one JPEG segment holds")
    out = segment(APP1, XMP_SIGNATURE + standard)
    if extended is not None:
        import hashlib

        guid = hashlib.md5(extended, usedforsecurity=False).hexdigest().upper().encode("ascii")
        size = len(extended).to_bytes(4, "big")
        for offset in range(0, len(extended), MAX_EXTENDED_CHUNK):
            part = extended[offset : offset + MAX_EXTENDED_CHUNK]
            out += segment(APP1, EXTENDED_SIGNATURE + guid + size + offset.to_bytes(4, "big") + part)
    return out


def mpf_start(buf: Buffer, layout: Layout) -> int | None:
    """Where the first MPF (multi-picture) APP2 segment starts, if any."""
    for seg in layout.segments:
        if seg.marker == APP2 and _starts(buf, seg, MPF_SIGNATURE):
            return seg.start
    return None


def xmp_insert_position(buf: Buffer, layout: Layout) -> int:
    """Where a new XMP segment goes: after the leading APP0 (JFIF) and APP1 EXIF segments.

    Never after an MPF segment: MPF offsets count from its own header, so anything inserted
    between it and the later images would move them.
    """
    pos = layout.segments[0].start if layout.segments else 2
    for seg in layout.segments:
        if seg.marker == APP0 or is_exif(buf, seg):
            pos = seg.end
            continue
        break
    mpf = mpf_start(buf, layout)
    return mpf if mpf is not None and mpf < pos else pos


def splice(buf: Buffer, remove: Iterable[Segment], at: int, insert: bytes) -> Spliced:
    """The file with the segments in ``remove`` cut out and ``insert`` placed at offset ``at``.

    ``at`` is a segment boundary of the original; every byte not removed is copied unchanged.
    """
    return _splice(buf, ((s.start, s.end) for s in remove), at, insert)


# A marker inside or after entropy-coded data: FF followed by neither a stuffed 00, a restart
# marker (part of the data), nor another FF (a fill byte).
_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
# Segments a decoder reads: SOFn, DHT, DAC (C0-CF), DNL, DQT, DRI; and SOS, handled apart.
_CODED = frozenset(range(0xC0, 0xD0)) | {0xDB, 0xDC, 0xDD}
APP14 = 0xEE


def _decodes(buf: Buffer, seg: Segment) -> bool:
    # Adobe's APP14 holds the colour transform (YCbCr or not): it changes the pixels.
    return seg.marker in _CODED or seg.marker == SOS or (seg.marker == APP14 and _starts(buf, seg, b"Adobe"))


def coded_ranges(buf: Buffer) -> list[tuple[int, int]]:
    """Byte ranges of what decoding the first image reads: frame header, tables, scan headers and
    their entropy-coded data (restart markers included), Adobe's colour transform; no metadata
    (APPn, COM), nothing after the image's EOI (an MPO's other images). Metadata editors leave
    these bytes alone, so they identify the coded picture. Raises MalformedFile."""
    return _first_image(buf)[0]


def image_end(buf: Buffer) -> int:
    """Where the first image ends, after its EOI: what follows is no part of it (an MPF file's
    previews and other views, a phone's appended video, a trailer). Raises MalformedFile."""
    return _first_image(buf)[1] + 2


def _first_image(buf: Buffer) -> tuple[list[tuple[int, int]], int]:
    """``coded_ranges`` and where the first image's EOI marker is."""
    layout = walk(buf)
    last = layout.segments[-1]
    if last.marker != SOS:
        raise MalformedFile("JPEG: no image (a tables-only stream)")
    ranges = [(seg.marker_pos, seg.end) for seg in layout.segments if _decodes(buf, seg)]
    pos, n = last.end, len(buf)
    for _ in range(MAX_SEGMENTS):
        found = _MARKER.search(buf, pos)
        if found is None:
            raise MalformedFile("truncated JPEG: no end-of-image marker")
        at = found.start()
        if at > pos:  # entropy-coded data (none between two segments)
            ranges.append((pos, at))
        marker = buf[at + 1]
        if marker == EOI:
            return ranges, at
        if at + 4 > n:
            raise MalformedFile(f"truncated JPEG: marker at offset {at} has no length")
        end = at + 2 + int.from_bytes(buf[at + 2 : at + 4], "big")
        if end > n or end < at + 4:
            raise MalformedFile(f"JPEG: segment at offset {at} overruns the file or has an invalid length")
        if _decodes(buf, Segment(marker, at, at, end)):
            ranges.append((at, end))
        pos = end
    raise MalformedFile(f"JPEG: more than {MAX_SEGMENTS} segments after the start of scan")
