"""Images: XMP (read by rightsmeta's own parsers, written by pyexiv2) and Exif 3.1.

Reading never touches exiv2: the container parsers find the XMP packet and the EXIF block
in the raw bytes, which is several times faster than opening the file with exiv2 and keeps
hostile XMP away from any parser but the hardened one. Writing goes through pyexiv2 in
memory; the caller makes the result durable.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from .. import xmp
from ..errors import MalformedFile, MalformedMetadata, UnsupportedFormat
from ..model import Assertion
from ..report import CarrierReport
from ..vocab import exif as exif_vocab
from . import containers, tiff

if TYPE_CHECKING:
    from . import Options

FORMATS = containers.IMAGE_FORMATS
WRITABLE = ("jpeg", "png", "webp", "tiff")

_REGISTERED = False


def register_namespaces() -> Any:
    """pyexiv2, ready to write our namespaces; imported here because reading never needs it."""
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


def read(buf: Any, fmt: str, options: Options | None = None) -> list[CarrierReport]:
    blocks = containers.extract(buf, fmt)
    found: list[CarrierReport] = []
    if blocks.xmp is not None:
        found.append(xmp.carrier_report(bytes(blocks.xmp), blocks.xmp_location))
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


def _pyexiv2_value(value: xmp.WriteValue) -> Any:
    if isinstance(value, xmp.LangAlt):
        return {'lang="x-default"': value.text}
    if isinstance(value, xmp.Bag):
        return list(value.items)
    return value


def write(data: bytes, fmt: str, assertion: Assertion, options: Options | None = None) -> tuple[bytes, list[str]]:
    """New file bytes with the assertion's XMP merged in, and the carriers written.

    The existing packet is parsed by the hardened reader first: exiv2 never sees XMP that
    rightsmeta would refuse, and a malformed packet is reported instead of overwritten.
    """
    if fmt not in WRITABLE:
        raise UnsupportedFormat(
            f"XMP cannot be written into {fmt.upper()} files (exiv2 does not support it); "
            "a signed C2PA manifest can carry the signal in this format instead"
        )
    packet = containers.extract(data, fmt).xmp
    try:
        existing = xmp.read(bytes(packet)).raw if packet is not None else {}
    except MalformedMetadata as exc:
        raise MalformedMetadata(f"the file's XMP is malformed ({exc}); not writing over it") from None
    pyexiv2 = register_namespaces()
    changes = {f"Xmp.{key.replace(':', '.', 1)}": _pyexiv2_value(v) for key, v in xmp.updates(assertion, existing).items()}
    # Deleting a property that is not there makes exiv2 complain; only delete what exists.
    changes = {k: v for k, v in changes.items() if v is not None or k[4:].replace(".", ":", 1) in existing}
    try:
        image = pyexiv2.ImageData(data)
    except RuntimeError as exc:
        raise MalformedFile(f"exiv2 cannot open this {fmt.upper()} file: {exc}") from None
    try:
        image.modify_xmp(changes)
        return image.get_bytes(), ["xmp"]
    except RuntimeError as exc:
        raise MalformedFile(f"exiv2 could not write XMP into this {fmt.upper()} file: {exc}") from None
    finally:
        image.close()
