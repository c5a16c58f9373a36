"""Images: XMP and Exif 3.1, read and written by rightsmeta's own container walkers.

The walkers (jpeg.py, png.py, riff.py, tiff.py) find the XMP packets and the EXIF block in the
raw bytes, and the writers splice in a new XMP element without touching any other byte: exiv2
(pyexiv2), used before, re-serialised a JPEG's whole EXIF segment and so changed camera
metadata (PhotometricInterpretation lost, the thumbnail moved). Hostile XMP only ever meets the
hardened parser. Writing happens in memory; the caller makes the result durable.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

from .. import xmp
from ..errors import MalformedFile, MalformedMetadata, UnsupportedFormat
from ..model import Assertion
from ..report import CarrierReport
from ..vocab import exif as exif_vocab
from . import containers, jpeg, png, riff, tiff, walked
from .splice import Spliced

if TYPE_CHECKING:
    from . import Options, Parsed

FORMATS = containers.IMAGE_FORMATS
#: Whitespace left in a new packet so later edits fit in place (XMP part 1 suggests 2-4 KB).
XMP_PADDING = 2048
WRITABLE = ("jpeg", "png", "webp", "tiff")

_REGISTERED = False


def register_namespaces() -> Any:
    """pyexiv2 with our namespaces registered: what ``rightsmeta demo`` uses to play "another
    tool" editing a file behind our back. rightsmeta itself no longer writes with it."""
    # exiv2 keeps namespaces in a process-wide table; registering is idempotent, and doing it
    # once, lazily, keeps importing rightsmeta free of side effects.
    import pyexiv2

    global _REGISTERED
    if not _REGISTERED:
        pyexiv2.set_log_level(4)  # exiv2's own warnings go to stderr otherwise; errors still raise
        for prefix, ns in xmp.NAMESPACES.items():
            if prefix in ("tdm", "rightsmeta"):
                pyexiv2.registerNs(ns, prefix)
        _REGISTERED = True
    return pyexiv2


def sniff(head: bytes) -> str | None:
    return containers.sniff(head)


def _learning_opt_out(block: bytes) -> list[int] | None:
    found = tiff.find_tag(block, exif_vocab.TAG, ifd="exif")
    if found is None:
        return None
    field_type, count, value = found
    order = tiff.byte_order(block)
    if field_type == 3:  # SHORT
        n = count
    elif field_type in (1, 7):  # BYTE / UNDEFINED holding int16u values, as ExifTool writes it
        n = count // 2
    else:
        raise MalformedMetadata(f"LearningOptOutIn has unexpected TIFF type {field_type}")
    if len(value) < 2 * n:
        raise MalformedMetadata("LearningOptOutIn value is shorter than its count")
    return list(struct.unpack_from(f"{order}{n}H", value))


def _xmp_reports(blocks: containers.Blocks, parsed: Parsed | None) -> list[CarrierReport]:
    """One report per XMP packet. Later packets get their own signal source ("xmp (packet 2)"),
    so a disagreement between packets is a conflict resolved by precedence, never hidden."""
    if blocks.xmp is None:
        return []
    first = bytes(blocks.xmp)
    location = blocks.xmp_location
    error = blocks.xmp_error
    if blocks.extended_xmp is not None:
        try:
            first = xmp.serialise(xmp.combine([first, blocks.extended_xmp]))
            location = f"{location} + ExtendedXMP"
        except MalformedMetadata as exc:
            error = f"ExtendedXMP not read: {exc}"
    reports = [xmp.carrier_report(first, location, parsed=parsed)]
    if error is not None:
        reports[0].errors.append(f"part of the XMP was not read ({error})")
    for number, (packet, where) in enumerate(blocks.more_xmp, start=2):
        reports.append(xmp.carrier_report(bytes(packet), where, carrier=f"xmp (packet {number})"))
    return reports


def read(buf: Any, fmt: str, options: Options | None = None) -> list[CarrierReport]:
    parsed = options.parsed if options is not None else None
    blocks = containers.extract(buf, fmt, parsed)
    if blocks.c2pa is not None and options is not None and options.located is not None:
        options.located[fmt] = blocks.c2pa
    found = _xmp_reports(blocks, parsed)
    if blocks.exif is not None:
        try:
            values = _learning_opt_out(blocks.exif)
        except (MalformedMetadata, MalformedFile) as exc:
            found.append(CarrierReport("exif", "Exif IFD", errors=[f"malformed EXIF: {exc}"]))
        else:
            if values is not None:
                report = CarrierReport("exif", "Exif IFD 0x9287", values={"LearningOptOutIn": values})
                try:
                    report.signals.append(exif_vocab.decode(values))
                except MalformedMetadata as exc:
                    report.errors.append(str(exc))
                found.append(report)
    return found


def write(data: bytes, fmt: str, assertion: Assertion, options: Options | None = None) -> tuple[Spliced, list[str]]:
    """The new file (its pieces: ``bytes()`` joins them) with the assertion's XMP merged in, and
    the carriers written.

    Only the XMP element of the container changes (an APP1 segment, an iTXt chunk, an ``XMP ``
    chunk, tag 700); every other segment, chunk and tag keeps its bytes. The existing packets
    are parsed by the hardened reader and merged, so other namespaces are kept; a malformed
    packet is reported instead of overwritten.
    """
    if fmt not in WRITABLE:
        raise UnsupportedFormat(
            f"XMP cannot be written into {fmt.upper()} files by rightsmeta; "
            "a signed C2PA manifest can carry the signal in this format instead"
        )
    if fmt == "tiff" and tiff.big_order(data) is not None:
        raise UnsupportedFormat(
            "a BigTIFF (64-bit offsets): rightsmeta reads its XMP and EXIF but does not write into it; "
            "the file is unchanged"
        )
    parsed = options.parsed if options is not None else None
    blocks = containers.extract(data, fmt, parsed)
    if blocks.xmp_error is not None:
        raise MalformedMetadata(f"part of the file's XMP cannot be read ({blocks.xmp_error}); not writing over it")
    packets = [bytes(p) for p in (blocks.xmp, blocks.extended_xmp) if p is not None]
    packets += [bytes(p) for p, _ in blocks.more_xmp]
    if not packets:  # the packet alone: the same bytes as the tree below would give, made faster
        return _WRITERS[fmt](data, xmp.fresh_packet(assertion, parsed), parsed), ["xmp"]
    changes = xmp.planned(assertion)  # once: the merge and the update both need it
    try:
        root = xmp.combine(packets, replaced=frozenset(changes) | {"plus:OtherConstraints", "xmpRights:UsageTerms"})
        xmp.drop_extended_note(root)
        xmp.apply(root, xmp.keeping_others(changes, xmp.raw(root)))
    except MalformedMetadata as exc:
        raise MalformedMetadata(f"the file's XMP is malformed ({exc}); not writing over it") from None
    return _WRITERS[fmt](data, root, parsed), ["xmp"]


# What a writer puts in: the packet's tree, or the packet already serialised (a file without XMP).
Packet = ET.Element | bytes


def _serialised(packet: Packet) -> bytes:
    return packet if isinstance(packet, bytes) else xmp.serialise(packet)


def _write_jpeg(data: bytes, packet: Packet, parsed: Parsed | None) -> Spliced:
    layout = walked.jpeg_layout(data, parsed)
    if isinstance(packet, bytes) and len(packet) <= jpeg.MAX_STANDARD_PACKET:
        standard, extended = packet, None
    else:  # too large for one segment: the tree is cut (split_extended), from the packet if need be
        standard, extended = xmp.split_extended(xmp.parse(packet) if isinstance(packet, bytes) else packet,
                                                jpeg.MAX_STANDARD_PACKET)
    packets = jpeg.xmp_packets(data, layout)
    named = containers.extended_guid(packets[0][1]) if packets else None
    # ExtendedXMP that the packet does not name is no part of it (readers ignore it): left as it is.
    old = [s for s in layout.segments if jpeg.is_xmp(data, s) or (named and jpeg.extended_guid(data, s) == named)]
    if len(old) == 1 and jpeg.is_xmp(data, old[0]) and extended is None:
        room = old[0].end - old[0].payload_start - len(jpeg.XMP_SIGNATURE)
        if len(standard) <= room:
            # Same size, same place: nothing after it moves, so offsets that count from the
            # file's start (an MPF image's position, as ExifTool reports it) stay as they were.
            return jpeg.splice(data, old, old[0].start, jpeg.xmp_segments(xmp.pad(standard, room)))
    mpf = jpeg.mpf_start(data, layout)
    if mpf is not None and any(s.start > mpf for s in old):
        # MPF offsets count from its own header: XMP behind it may change only in place.
        raise MalformedFile(
            "this JPEG keeps its XMP after the MPF (multi-picture) index and the new packet does not fit "
            "in its place; writing it would break the offsets of the further images"
        )
    if extended is None:
        # Room to spare, as XMP writers leave it, so the next edit is made in place.
        standard = xmp.pad(standard, min(len(standard) + XMP_PADDING, jpeg.MAX_STANDARD_PACKET))
    at = old[0].start if old else jpeg.xmp_insert_position(data, layout)
    return jpeg.splice(data, old, at, jpeg.xmp_segments(standard, extended))


def _write_png(data: bytes, packet: Packet, parsed: Parsed | None) -> Spliced:
    chunks = walked.png_chunks(data, parsed)
    old = png.xmp_chunks(data, chunks)
    before_idat = png.xmp_insert_position(chunks)
    # In place when it already precedes the image data; moved there when a tool put it after.
    at = old[0].start if old and old[0].start < before_idat else before_idat
    return png.splice(data, old, at, png.xmp_chunk(_serialised(packet)))


def _write_webp(data: bytes, packet: Packet, parsed: Parsed | None) -> Spliced:
    return riff.replace_webp_xmp(data, walked.webp_chunks(data, parsed), _serialised(packet))


def _write_tiff(data: bytes, packet: Packet, parsed: Parsed | None) -> Spliced:
    return tiff.set_xmp(data, _serialised(packet), walked.tiff_directory(data, parsed))


_WRITERS = {"jpeg": _write_jpeg, "png": _write_png, "webp": _write_webp, "tiff": _write_tiff}
