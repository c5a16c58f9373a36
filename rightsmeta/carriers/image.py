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
from . import containers, iim, jpeg, png, riff, tiff, walked
from .splice import Spliced, replace

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
    order = tiff.byte_order(block)
    if found is None:
        for entry in tiff.near_tags(block, exif_vocab.TAG):
            if entry.type not in (1, 3, 7) or entry.count > 64:  # five usages: 11 shorts
                continue
            try:
                value = tiff.value_bytes(block, entry)
            except MalformedFile:
                continue  # a value out of place is that tag's own trouble
            if _opt_out_shaped(_shorts(entry.type, entry.count, value, order)):
                raise MalformedMetadata(
                    f"the Exif IFD's tag 0x{entry.tag:04X} holds what reads as a LearningOptOutIn (tag 0x9287): "
                    "its tag number is damaged, so it was not read")
        if tiff.find_tag(block, tiff.EXIF_IFD_POINTER, ifd="ifd0") is None:
            _no_damaged_exif_pointer(block, order)
        return None
    field_type, count, value = found
    if field_type not in (1, 3, 7):
        raise MalformedMetadata(f"LearningOptOutIn has unexpected TIFF type {field_type}")
    values = _shorts(field_type, count, value, order)
    if values is None:
        raise MalformedMetadata("LearningOptOutIn value is shorter than its count")
    return values


def _no_damaged_exif_pointer(block: bytes, order: str) -> None:
    """MalformedMetadata when IFD0 has no Exif IFD pointer (0x8769) but an entry one byte from it
    points at a directory holding LearningOptOutIn: the pointer's tag number damaged, the Exif
    IFD and the reservation in it unreachable."""
    for entry in tiff.near_tags(block, tiff.EXIF_IFD_POINTER, ifd="ifd0"):
        if entry.type not in (4, 13) or entry.count != 1:
            continue
        try:
            found = tiff.find_in_directory(block, tiff.sub_ifd_offset(entry, order), exif_vocab.TAG)
        except MalformedFile:
            continue
        if found is not None:
            raise MalformedMetadata(f"IFD0's tag 0x{entry.tag:04X} points at an Exif IFD holding LearningOptOutIn "
                                    "(its pointer is tag 0x8769): its tag number is damaged, so it was not read")


def _shorts(field_type: int, count: int, value: bytes, order: str) -> list[int] | None:
    """An entry's value as 16-bit integers: SHORT, or BYTE / UNDEFINED holding them, as ExifTool
    writes LearningOptOutIn; None when the value is shorter than its count says."""
    n = count if field_type == 3 else count // 2
    return list(struct.unpack_from(f"{order}{n}H", value)) if len(value) >= 2 * n else None


def _opt_out_shaped(values: list[int] | None) -> bool:
    """Whether ``values`` read as a LearningOptOutIn would: a count, then that many known
    (usage, indicator) pairs. No other Exif tag's value is likely to (UserComment's 8-byte
    character code, SubSecTime's digits, a MakerNote's header)."""
    if not values or values[0] < 1 or len(values) != 1 + 2 * values[0]:
        return False
    return all(u in exif_vocab.USAGES and i in exif_vocab.INDICATORS for u, i in zip(values[1::2], values[2::2], strict=True))


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
    found += _notice_reports(blocks)
    return found


EXIF_NOTICE = "exif-copyright"
IIM_NOTICE = "iptc-iim"


_COPYRIGHT_ENTRY = (tiff.COPYRIGHT_TAG.to_bytes(2, "little"), tiff.COPYRIGHT_TAG.to_bytes(2, "big"))


def _notice_reports(blocks: containers.Blocks) -> list[CarrierReport]:
    """The copyright notices EXIF (IFD0 Copyright) and the IPTC IIM (2:116 CopyrightNotice) hold
    beside XMP's dc:rights: shown by read, and what a tag with ``--copyright`` replaces. A blank
    one (cameras write spaces) is no notice. Nor is one that cannot be read (a Copyright entry of
    another type or pointing past its block, an IIM dataset overrunning it): a notice is no rights
    signal, so a damaged one must not make the file unreadable for read and verify, nor fail a
    tag's read-back; it is not listed (as before notices were read), and a tag with
    ``--copyright`` leaves it as it was with a note (:func:`_with_notices`)."""
    found: list[CarrierReport] = []
    # Searched for in C first: most images of a scan hold neither, and walking costs (microseconds).
    if blocks.exif is not None and _COPYRIGHT_ENTRY[blocks.exif[:2] == b"MM"] in blocks.exif:
        try:
            notice = tiff.text_value(blocks.exif, tiff.COPYRIGHT_TAG)
        except MalformedFile:
            pass
        else:
            if notice and notice.strip():
                found.append(CarrierReport(EXIF_NOTICE, "IFD0 0x8298 Copyright", values={"Copyright": notice},
                                           rights={"copyright": notice}))
    if blocks.irb is not None and iim.NOTICE_MARK in blocks.irb:
        try:
            notices = [n for n in iim.notices(blocks.irb) if n.strip()]
        except MalformedMetadata:
            pass
        else:
            if notices:
                found.append(CarrierReport(IIM_NOTICE, "JPEG APP13 IPTC 2:116", values={"CopyrightNotice": notices[0]},
                                           rights={"copyright": notices[0]}))
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
    carriers = ["xmp"]
    if assertion.copyright:
        data, carriers = _with_notices(data, fmt, assertion.copyright, parsed)
    blocks = containers.extract(data, fmt, parsed)
    if blocks.xmp_error is not None:
        raise MalformedMetadata(f"part of the file's XMP cannot be read ({blocks.xmp_error}); not writing over it")
    packets = [bytes(p) for p in (blocks.xmp, blocks.extended_xmp) if p is not None]
    packets += [bytes(p) for p, _ in blocks.more_xmp]
    if not packets:  # the packet alone: the same bytes as the tree below would give, made faster
        return _WRITERS[fmt](data, xmp.fresh_packet(assertion, parsed), parsed), carriers
    changes = xmp.planned(assertion)  # once: the merge and the update both need it
    try:
        root = xmp.combine(packets, replaced=frozenset(changes) | {"plus:OtherConstraints", "xmpRights:UsageTerms"})
        xmp.drop_extended_note(root)
        xmp.apply(root, xmp.keeping_others(changes, xmp.raw(root)))
    except MalformedMetadata as exc:
        raise MalformedMetadata(f"the file's XMP is malformed ({exc}); not writing over it") from None
    return _WRITERS[fmt](data, root, parsed), carriers


def _with_notices(data: bytes, fmt: str, notice: str, parsed: Parsed | None) -> tuple[bytes, list[str]]:
    """``data`` with the older copyright notices its EXIF and IPTC IIM hold saying ``notice``,
    and the carriers that now say it (XMP first). The MWG guidelines ask a writer to keep the
    three in sync; left apart, readers that reconcile them (ExifTool's MWG Copyright, which
    takes EXIF's first; Lightroom) show the old notice. Only a notice that is there is replaced
    (none is added), each where it lies, every other byte kept (jpeg.py, tiff.py, iim.py). A
    notice that cannot be replaced safely is left, and a note says so (``parsed.notes``).

    A file with no older notice is returned as it is (the same object: its walks are reused); one
    with a notice to change is copied once, which only such files pay."""
    carriers = ["xmp"]
    notes = parsed.notes if parsed is not None else []
    if fmt == "jpeg":
        data, written = _jpeg_notices(data, notice, parsed, notes)
        carriers += written
    elif fmt == "tiff":
        try:
            directory = walked.tiff_directory(data, parsed)
            old = tiff.text_value(data, tiff.COPYRIGHT_TAG, directory)
            edits = tiff.set_text(data, tiff.COPYRIGHT_TAG, notice, directory) if old and old.strip() else None
        except MalformedFile as exc:
            notes.append(f"its EXIF Copyright is left as it was ({exc})")
            old, edits = None, None
        if edits is not None and old != notice:
            data = bytes(replace(data, edits))
        if edits is not None:
            carriers.append(EXIF_NOTICE)
    elif fmt == "png":
        data, written = _png_notices(data, notice, parsed, notes)
        carriers += written
    elif fmt == "webp":
        data, written = _webp_notices(data, notice, parsed, notes)
        carriers += written
    return data, carriers


def _new_exif(block: bytes, notice: str, notes: list[str]) -> tuple[str | None, bytes | None]:
    """The notice an EXIF block (from its TIFF header) holds (None: none, or blank), and the block
    saying ``notice`` instead (None: nothing to change, or it cannot be read: a note says so)."""
    try:
        old = tiff.text_value(block, tiff.COPYRIGHT_TAG)
        if not old or not old.strip():
            return None, None
        changes = tiff.set_text(block, tiff.COPYRIGHT_TAG, notice) if old != notice else None
    except MalformedFile as exc:
        notes.append(f"its EXIF Copyright is left as it was ({exc})")
        return None, None
    return old, bytes(replace(block, changes)) if changes is not None else None


def _png_notices(data: bytes, notice: str, parsed: Parsed | None, notes: list[str]) -> tuple[bytes, list[str]]:
    """A PNG's eXIf chunk (the first, the one read) made to say ``notice``: the chunk replaced in
    place with its new CRC. A legacy "Raw profile" EXIF text chunk is left, with a note."""
    chunk = next((c for c in walked.png_chunks(data, parsed) if c.type == b"eXIf"), None)
    if chunk is None:
        _left_notices(containers.extract(data, "png", parsed), notice, notes)
        return data, []
    body = png.data(data, chunk)
    prefix = jpeg.EXIF_SIGNATURE if body[: len(jpeg.EXIF_SIGNATURE)] == jpeg.EXIF_SIGNATURE else b""
    old, new = _new_exif(body[len(prefix) :], notice, notes)
    if new is None:
        return data, [EXIF_NOTICE] if old is not None else []
    return bytes(replace(data, [(chunk.start, chunk.end, png.make(b"eXIf", prefix + new))])), [EXIF_NOTICE]


def _webp_notices(data: bytes, notice: str, parsed: Parsed | None, notes: list[str]) -> tuple[bytes, list[str]]:
    """A WebP's EXIF chunk (the first, the one read) made to say ``notice``, in its place."""
    walked_riff = walked.webp_chunks(data, parsed)
    chunk = next(iter(riff.find(walked_riff, b"EXIF")), None)
    if chunk is None:
        return data, []
    body = riff.data(data, chunk)
    prefix = jpeg.EXIF_SIGNATURE if body[: len(jpeg.EXIF_SIGNATURE)] == jpeg.EXIF_SIGNATURE else b""
    old, new = _new_exif(body[len(prefix) :], notice, notes)
    if new is None:
        return data, [EXIF_NOTICE] if old is not None else []
    return bytes(riff.replace_chunk(data, walked_riff, chunk, prefix + new)), [EXIF_NOTICE]


def _left_notices(blocks: containers.Blocks, notice: str, notes: list[str]) -> None:
    for report in _notice_reports(blocks):
        old = report.rights.get("copyright")
        if old is not None and old != notice:
            notes.append(f"its older copyright notice in {report.name} ({old!r}) is left as it was: rightsmeta "
                         "does not rewrite it in this format; readers may show either notice")


def _jpeg_notices(data: bytes, notice: str, parsed: Parsed | None, notes: list[str]) -> tuple[bytes, list[str]]:
    layout = walked.jpeg_layout(data, parsed)
    edits: list[tuple[int, int, bytes]] = []
    carriers: list[str] = []
    mpf = jpeg.mpf_start(data, layout)
    exif = next((s for s in layout.segments if jpeg.is_exif(data, s)), None)  # the one read takes
    if exif is not None:
        block = jpeg.payload(data, exif)[len(jpeg.EXIF_SIGNATURE) :]
        old, new = _new_exif(block, notice, notes)
        if new is not None:
            if len(jpeg.EXIF_SIGNATURE) + len(new) > jpeg.MAX_PAYLOAD:
                notes.append(f"its EXIF Copyright ({old!r}) is left as it was: the EXIF segment has no room for the new notice")
            elif len(new) != len(block) and mpf is not None and mpf < exif.start:
                notes.append(f"its EXIF Copyright ({old!r}) is left as it was: its EXIF follows the MPF index, "
                             "whose offsets a longer segment would break")
            else:
                edits.append((exif.marker_pos, exif.end, jpeg.segment(jpeg.APP1, jpeg.EXIF_SIGNATURE + new)))
                carriers.append(EXIF_NOTICE)
        elif old is not None:
            carriers.append(EXIF_NOTICE)  # says it already
    irbs = jpeg.photoshop_segments(data, layout)
    if len(irbs) > 1:
        if any(iim.NOTICE_MARK in jpeg.payload(data, s) for s in irbs):
            notes.append("its IPTC IIM copyright notice is left as it was: its Photoshop resources span several APP13 "
                         "segments, which rightsmeta does not rewrite")
    elif irbs:
        seg = irbs[0]
        irb = jpeg.payload(data, seg)[len(jpeg.PHOTOSHOP_SIGNATURE) :]
        try:
            olds = [n for n in iim.notices(irb) if n.strip()]
            new_irb = iim.with_notice(irb, notice) if olds and any(n != notice for n in olds) else None
        except MalformedMetadata as exc:
            notes.append(f"its IPTC IIM copyright notice is left as it was ({exc})")
            olds, new_irb = [], None
        if new_irb is not None:
            grown = len(new_irb) != len(irb)
            if len(jpeg.PHOTOSHOP_SIGNATURE) + len(new_irb) > jpeg.MAX_PAYLOAD:
                notes.append(f"its IPTC IIM copyright notice ({olds[0]!r}) is left as it was: the APP13 segment has no room")
            elif grown and mpf is not None and mpf < seg.start:
                notes.append(f"its IPTC IIM copyright notice ({olds[0]!r}) is left as it was: it follows the MPF index, "
                             "whose offsets a longer segment would break")
            else:
                edits.append((seg.marker_pos, seg.end, jpeg.segment(jpeg.APP13, jpeg.PHOTOSHOP_SIGNATURE + new_irb)))
                carriers.append(IIM_NOTICE)
        elif olds:
            carriers.append(IIM_NOTICE)
    if not edits:
        return data, carriers
    return bytes(replace(data, sorted(edits, key=lambda edit: edit[0]))), carriers


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
