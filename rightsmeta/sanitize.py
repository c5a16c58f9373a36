"""Privacy metadata out, rights statements in: what a platform does to an upload before publishing it.

An allow-list, not a deny-list: everything is removed except the rights properties (and, with
``keep="rights,credit"``, the credit), plus the few technical fields that change how the picture
is shown (orientation, resolution, colour space, the ICC profile). So a GPS position, a camera or
lens serial number, a maker note, an owner name, an XMP edit history, an embedded thumbnail, a
comment - and whatever field nobody listed - never survive.

A signed C2PA manifest cannot survive a byte edit. The cleaned file is signed again with the
caller's identity (``c2pa.edited.metadata``, the upload as parent ingredient), so the chain shows
the creator's manifest and the platform's step. Without an identity a signed file is refused.

The rights are read before and after; if the cleaned file says anything else, it is not returned.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import api, xmp
from .errors import MalformedFile, RightsmetaError, UnsupportedFormat, UsageError, WriteError
from .fsio import atomic_write
from .model import PURPOSES
from .vocab import iptc, project, tdmrep

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .keys import Identity

FORMATS = ("jpeg", "png", "webp", "mp3", "flac", "ogg", "opus", "m4a")
KEEPS = ("rights", "rights,credit")

PHOTOSHOP = "http://ns.adobe.com/photoshop/1.0/"
# XMP kept: whole namespaces (ours and TDMRep's, xmpRights) and single properties (PLUS, Dublin Core).
_XMP_NAMESPACES = {"rights": {project.NS, tdmrep.NS, tdmrep.NS_HASH, xmp.XMP_RIGHTS}}
_XMP_PROPERTIES = {
    "rights": {(iptc.NS, "DataMining"), (iptc.NS, "OtherConstraints"), (iptc.NS, "Licensor"),
               (iptc.NS, "CopyrightOwner"), (xmp.DC, "rights")},
    "credit": {(xmp.DC, "creator"), (PHOTOSHOP, "Credit"), (iptc.NS, "ImageCreator")},
}
# Exif: the copyright, Exif 3.1's learning opt-out (0x9287), and what changes how pixels are shown.
_EXIF = {
    "rights": {"Exif.Image.Copyright", "Exif.Photo.0x9287", "Exif.Photo.LearningOptOutIn"},
    "credit": {"Exif.Image.Artist"},
    "display": {"Exif.Image.Orientation", "Exif.Image.XResolution", "Exif.Image.YResolution",
                "Exif.Image.ResolutionUnit", "Exif.Photo.ColorSpace", "Exif.Image.YCbCrPositioning"},
}
_IPTC = {
    "rights": {"Iptc.Application2.Copyright", "Iptc.Envelope.CharacterSet"},
    "credit": {"Iptc.Application2.Byline", "Iptc.Application2.Credit"},
}
# PNG text chunks (tEXt, zTXt, iTXt) beside the XMP one, by keyword: exiv2 leaves them all.
_PNG_TEXT = {"rights": {b"Copyright"}, "credit": {b"Author", b"Artist"}}
# ID3: the copyright and its URL, our record and TDMRep's fields (TXXX), the XMP packet (cleaned too).
_ID3_RIGHTS = {"TCOP", "WCOP"}
_ID3_CREDIT = {"TPE1", "TPE2", "TCOM", "TEXT"}
# Vorbis comments (FLAC, Ogg Vorbis, Opus) and MP4 atoms, beside our record's and TDMRep's fields.
_VORBIS = {"rights": {"copyright", "license"}, "credit": {"artist", "albumartist", "composer", "lyricist"}}
_MP4 = {"rights": {"cprt"}, "credit": {"\xa9ART", "aART", "\xa9wrt"}}
# moov/udta atoms kept: the tags (meta, cleaned by mutagen) and a 3GPP copyright; XMP_ is cleaned.
_UDTA_KEPT = frozenset({b"meta", b"cprt"})


@dataclass
class Sanitized:
    data: bytes
    format: str
    removed: list[str] = field(default_factory=list)  # what was taken out, by field name
    carriers: list[str] = field(default_factory=list)  # rights carriers left in the file
    manifest: bytes | None = None  # the new manifest store, when the file was re-signed
    assertion_json: dict[str, Any] = field(default_factory=dict)


def _groups(keep: str) -> tuple[str, ...]:
    if keep not in KEEPS:
        raise UsageError(f"keep is one of {', '.join(KEEPS)}, not {keep!r}")
    return ("rights", "credit") if keep == "rights,credit" else ("rights",)


def _kept(tag: str, groups: tuple[str, ...]) -> bool:
    ns, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    return any(ns in _XMP_NAMESPACES.get(g, set()) or (ns, local) in _XMP_PROPERTIES.get(g, set()) for g in groups)


def clean_xmp(packet: bytes, groups: tuple[str, ...], removed: list[str]) -> bytes | None:
    """The packet with only the kept properties (elements and attribute forms); None if none is left."""
    root = xmp._parse(packet)
    about = f"{{{xmp.RDF}}}about"
    left = 0
    for description in root.iter(f"{{{xmp.RDF}}}Description"):
        for child in list(description):
            if _kept(child.tag, groups):
                left += 1
            else:
                removed.append(f"XMP {child.tag}")
                description.remove(child)
        for name in list(description.attrib):
            if name == about or name.startswith(f"{{{xmp.RDF}}}"):
                continue
            if _kept(name, groups):
                left += 1
            else:
                removed.append(f"XMP {name}")
                del description.attrib[name]
    if not left:
        return None
    rdf = root if root.tag == f"{{{xmp.RDF}}}RDF" else root.find(f"{{{xmp.RDF}}}RDF")
    if rdf is not None:  # drop descriptions left empty by the cleaning
        for description in list(rdf):
            if len(description) == 0 and set(description.attrib) <= {about}:
                rdf.remove(description)
    return xmp.serialise(root if root.tag != f"{{{xmp.RDF}}}RDF" else _wrap(root))


def _wrap(rdf: ET.Element) -> ET.Element:
    meta = ET.Element(f"{{{xmp.X_META}}}xmpmeta")
    meta.append(rdf)
    return meta


def _image(data: bytes, fmt: str, groups: tuple[str, ...], removed: list[str]) -> bytes:
    from .carriers.image import register_namespaces

    pyexiv2 = register_namespaces()
    try:
        image = pyexiv2.ImageData(data)
    except RuntimeError as exc:
        raise MalformedFile(f"exiv2 cannot open this image: {exc}") from None
    try:
        exif = image.read_exif()
        iptc_ = image.read_iptc()
        raw_xmp = image.read_raw_xmp()
        comment = image.read_comment()
        thumbnail = image.read_thumbnail()
        keep_exif = set().union(*(_EXIF.get(g, set()) for g in (*groups, "display")))
        keep_iptc = set().union(*(_IPTC.get(g, set()) for g in groups))
        new_exif = {k: v for k, v in exif.items() if k in keep_exif}
        new_iptc = {k: v for k, v in iptc_.items() if k in keep_iptc}
        removed += [f"Exif {k}" for k in exif if k not in keep_exif]
        removed += [f"IPTC {k}" for k in iptc_ if k not in keep_iptc]
        if thumbnail:
            removed.append("Exif thumbnail")
        if comment:
            removed.append("comment")
        packet = clean_xmp(raw_xmp.encode("utf-8") if isinstance(raw_xmp, str) else raw_xmp, groups, removed) if raw_xmp else None
        image.clear_exif()
        image.clear_iptc()
        image.clear_xmp()
        image.clear_comment()
        if new_exif:
            image.modify_exif(new_exif)
        if new_iptc:
            image.modify_iptc(new_iptc)
        if packet is not None:
            image.modify_raw_xmp(packet.decode("utf-8"))
        result: bytes = image.get_bytes()
    except RuntimeError as exc:  # exiv2's errors are bare RuntimeErrors
        raise MalformedFile(f"exiv2 could not clean this image: {exc}") from None
    finally:
        image.close()
    if fmt == "jpeg":
        return _jpeg_segments(result, new_iptc, removed)
    if fmt == "png":
        return _png_text(result, groups, removed)
    if fmt == "webp" and packet is None and raw_xmp:
        return _webp_without_xmp(result)
    return result


# JPEG APPn segments kept beside those exiv2 writes (APP1 Exif and XMP, APP13 IPTC): JFIF, the
# ICC profile (APP2, but MPF's), JUMBF/C2PA (APP11), Adobe's colour transform (APP14), which decoders read.
_JPEG_KEPT_APPS = frozenset({0xE0, 0xE1, 0xE2, 0xEB, 0xEE})


def _jpeg_segments(data: bytes, iptc_kept: dict[str, Any], removed: list[str]) -> bytes:
    """The JPEG without the application segments exiv2 leaves: Photoshop's APP13 block but for
    the kept IPTC (written into a new one; exiv2 clears the block's IPTC alone, and a thumbnail of
    the uncropped original, URLs and captions stayed), and every APPn it does not know (Ducky's
    comment, vendors' blocks); and without what follows the image: a camera's MPF previews, each
    a JPEG with its own Exif (GPS included), which exiv2 copies as they are, or a phone's
    appended video. The MPF index that pointed at them goes with them."""
    from .carriers import jpeg
    from .carriers.image import register_namespaces

    end = jpeg.image_end(data)
    if end < len(data):
        removed.append(f"{len(data) - end} bytes after the image (MPF previews or other appended data)")
        data = data[:end]
    layout = jpeg.walk(data)
    mpf = jpeg.mpf_start(data, layout)
    apps = [s for s in layout.segments
            if 0xE0 <= s.marker <= 0xEF and (s.marker not in _JPEG_KEPT_APPS or s.start == mpf)]
    if not apps:
        return data
    removed += [f"JPEG APP{s.marker - 0xE0}" for s in apps]
    data = bytes(jpeg.splice(data, apps, apps[0].start, b""))
    if not iptc_kept or all(s.marker != 0xED for s in apps):
        return data
    image = register_namespaces().ImageData(data)
    try:
        image.modify_iptc(iptc_kept)
        result: bytes = image.get_bytes()
    except RuntimeError as exc:
        raise MalformedFile(f"exiv2 could not clean this image: {exc}") from None
    finally:
        image.close()
    return result


def _png_text(data: bytes, groups: tuple[str, ...], removed: list[str]) -> bytes:
    """The PNG without the text chunks no group keeps (Artist, Comment, Author...: exiv2 leaves them)."""
    from .carriers import png

    keep = set().union(*(_PNG_TEXT.get(g, set()) for g in groups))
    cut = []
    for chunk in png.walk(data):
        if chunk.type in (b"tEXt", b"zTXt", b"iTXt") and not png.is_xmp(data, chunk):
            keyword = png.data(data, chunk).partition(b"\0")[0]
            if keyword not in keep:
                cut.append(chunk)
                removed.append(f"PNG {chunk.type.decode()} {keyword.decode('latin-1')}")
    return bytes(png.splice(data, cut, 0, b"")) if cut else data


def _webp_without_xmp(data: bytes) -> bytes:
    """exiv2, told to write no XMP into a WebP, leaves its old XMP chunk whole (a location, names):
    it is replaced by a packet that states nothing."""
    from .carriers import riff

    walked = riff.walk(data, b"WEBP")
    if not riff.find(walked, b"XMP "):
        return data
    return bytes(riff.replace_webp_xmp(data, walked, xmp.serialise(_wrap(ET.Element(f"{{{xmp.RDF}}}RDF")))))


def _mp3(data: bytes, groups: tuple[str, ...], removed: list[str]) -> bytes:
    import io

    from mutagen.id3 import ID3, PRIV, ID3NoHeaderError
    from mutagen.mp3 import MP3

    from .carriers.audio import ID3_DESCRIPTIONS  # the TXXX names rightsmeta writes

    buf = io.BytesIO(data)
    try:
        audio = MP3(buf)
    except Exception as exc:  # mutagen raises its own error types, and others on hostile input
        raise MalformedFile(f"cannot parse the MP3: {type(exc).__name__}: {exc}") from None
    if audio.tags is None:
        return data
    tags: ID3 = audio.tags
    keep = set(_ID3_RIGHTS) | (_ID3_CREDIT if "credit" in groups else set())
    packets: list[bytes] = []
    for key in list(tags.keys()):
        frame = tags[key]
        fid = frame.FrameID
        if fid in keep or (fid == "TXXX" and frame.desc.casefold() in ID3_DESCRIPTIONS):
            continue
        if fid == "PRIV" and frame.owner == "XMP":
            packets.append(bytes(frame.data))
        elif fid == "GEOB" and "c2pa" in (frame.mime or "").lower():
            pass  # the old manifest store: replaced by the re-signed one
        else:
            removed.append(f"ID3 {key}")
        del tags[key]
    for packet in packets:
        cleaned = clean_xmp(packet, groups, removed)
        if cleaned is not None:
            tags.add(PRIV(owner="XMP", data=cleaned))
    try:
        buf.seek(0)
        tags.save(buf, v2_version=tags.version[1] if tags.version[1] in (3, 4) else 4)
    except (ID3NoHeaderError, Exception) as exc:
        raise MalformedFile(f"cannot write the cleaned ID3 tag: {type(exc).__name__}: {exc}") from None
    return buf.getvalue()


def _vorbis(data: bytes, fmt: str, groups: tuple[str, ...], removed: list[str]) -> bytes:
    import io

    from mutagen.flac import FLAC
    from mutagen.oggopus import OggOpus
    from mutagen.oggvorbis import OggVorbis

    from .carriers.audio import BY_VORBIS  # the Vorbis names rightsmeta writes

    kind = {"flac": FLAC, "ogg": OggVorbis, "opus": OggOpus}[fmt]
    buf = io.BytesIO(data)
    try:
        audio = kind(buf)
    except Exception as exc:  # mutagen raises its own error types, and others on hostile input
        raise MalformedFile(f"cannot parse the {fmt.upper()}: {type(exc).__name__}: {exc}") from None
    keep = set().union(*(_VORBIS.get(g, set()) for g in groups))
    if audio.tags is not None:
        for key in sorted({k for k, _ in audio.tags}):
            if key.casefold() not in keep and key.casefold() not in BY_VORBIS:
                removed.append(f"Vorbis {key}")
                del audio.tags[key]
    if fmt == "flac":
        if audio.pictures:
            removed.append(f"FLAC pictures ({len(audio.pictures)})")
            audio.clear_pictures()
        if data[:3] == b"ID3":
            removed.append("ID3 tag before the FLAC stream")
    try:
        buf.seek(0)
        if fmt == "flac":
            audio.save(buf, deleteid3=True)  # an ID3 tag in FLAC is non-standard; c2pa's own is replaced on signing
        else:
            audio.save(buf)
    except Exception as exc:
        raise MalformedFile(f"cannot write the cleaned {fmt.upper()} tags: {type(exc).__name__}: {exc}") from None
    return buf.getvalue()


def _mp4_in_place(data: bytes, groups: tuple[str, ...], removed: list[str]) -> bytes:
    """Clean the XMP packets (top-level uuid box, moov/udta/XMP_) and blank moov/udta's atoms
    beside them and the tags (a place in 3GPP ``loci`` or ``\xa9xyz``, which mutagen does not see)
    in place: padded, or a ``free`` atom of the same size, so no media byte moves."""
    from .carriers import bmff
    from .carriers.audio import XMP_UUID

    def level(start: int, end: int) -> Iterator[bmff.Box]:
        return bmff.boxes(data, start, end, what="MP4", tail="ignore")

    out = bytearray(data)
    spans: list[tuple[int, int]] = []
    for box in level(0, len(data)):
        if box.type == b"uuid" and data[box.payload : box.payload + 16] == XMP_UUID:
            spans.append((box.payload + 16, box.end))
        elif box.type == b"moov":
            for udta in level(box.payload, box.end):
                if udta.type != b"udta":
                    continue
                for atom in level(udta.payload, udta.end):
                    if atom.type == b"XMP_":
                        spans.append((atom.payload, atom.end))
                    elif atom.type not in _UDTA_KEPT:
                        removed.append(f"MP4 udta {atom.type.decode('latin-1')}")
                        size = atom.end - atom.start
                        if size >= 1 << 32:
                            raise MalformedFile(f"MP4: a {size}-byte user data atom")
                        out[atom.start : atom.end] = size.to_bytes(4, "big") + b"free" + bytes(size - 8)
    for start, end in spans:
        cleaned = clean_xmp(bytes(data[start:end]), groups, removed) or b""
        if len(cleaned) > end - start:
            raise MalformedFile("the cleaned XMP does not fit its box")  # cannot happen: cleaning only removes
        cut = cleaned.rfind(b"<?xpacket end")
        if cut >= 0:  # XMP's own padding: whitespace before the trailer
            cleaned = cleaned[:cut] + b" " * (end - start - len(cleaned)) + cleaned[cut:]
        else:
            cleaned = cleaned + b" " * (end - start - len(cleaned))
        out[start:end] = cleaned
    return bytes(out)


def _m4a(data: bytes, groups: tuple[str, ...], removed: list[str]) -> bytes:
    import io

    from mutagen.mp4 import MP4

    from .carriers.audio import BY_MP4  # the freeform atoms rightsmeta writes

    buf = io.BytesIO(data)
    try:
        audio = MP4(buf)
    except Exception as exc:  # mutagen raises its own error types, and others on hostile input
        raise MalformedFile(f"cannot parse the M4A: {type(exc).__name__}: {exc}") from None
    keep = set().union(*(_MP4.get(g, set()) for g in groups))
    if audio.tags is not None:
        web = "----:org.rightsmeta:rightsmeta:webstatement"
        for key in list(audio.tags.keys()):
            if key not in keep and key.casefold() not in BY_MP4 and key.casefold() != web:
                removed.append(f"MP4 {key}")
                del audio.tags[key]
        try:
            buf.seek(0)
            audio.save(buf)  # mutagen moves the chunk offsets with the atoms it rewrites
        except Exception as exc:
            raise MalformedFile(f"cannot write the cleaned M4A atoms: {type(exc).__name__}: {exc}") from None
    return _mp4_in_place(buf.getvalue(), groups, removed)


def sanitize_bytes(data: bytes, *, keep: str = "rights", identity: Identity | None = None) -> Sanitized:
    """``data`` with privacy metadata removed and rights kept; raises typed errors, never returns a lossy file."""
    groups = _groups(keep)
    before = api.read(data)
    fmt = before.format
    if fmt is None:
        raise UnsupportedFormat("; ".join(before.errors) or "not a format rightsmeta knows")
    if fmt not in FORMATS:
        raise UnsupportedFormat(f"sanitize handles {', '.join(f.upper() for f in FORMATS)}; "
                                f"this {fmt.upper()} is refused rather than half-cleaned")
    if before.errors:
        raise MalformedFile("the file's metadata cannot be read fully, so it is not cleaned: " + "; ".join(before.errors))
    signed = next((c for c in before.carriers if c.name == "c2pa"), None)
    if signed is not None:
        if signed.values.get("validation_state") == "Invalid":
            raise MalformedFile("the file's C2PA manifest is invalid (tampered); it is not re-signed over")
        if identity is None:
            raise UnsupportedFormat("this file carries a signed C2PA manifest, which cleaning invalidates; "
                                    "a signing identity is needed to sign the cleaned file")
    removed: list[str] = []
    if fmt == "mp3":
        new = _mp3(data, groups, removed)
    elif fmt in ("flac", "ogg", "opus"):
        new = _vorbis(data, fmt, groups, removed)
    elif fmt == "m4a":
        new = _m4a(data, groups, removed)
    else:
        new = _image(data, fmt, groups, removed)
    result = Sanitized(new, fmt, removed)
    statement = _statement(before)
    result.assertion_json = statement.to_json()
    if signed is not None:
        assert identity is not None
        from .fingerprint import fingerprint
        from .provenance import sign_derived

        result.data, result.manifest = sign_derived(new, fmt, data, fmt, statement, identity, ["c2pa.edited.metadata"],
                                                    fingerprint=fingerprint(new, fmt), title="sanitized")
    after = api.read(result.data)
    lost = [p.value for p in PURPOSES if after.permissions[p] != before.permissions[p]]
    if after.errors or lost or any(c.values.get("validation_state") == "Invalid" for c in after.carriers):
        raise WriteError("the cleaned file does not state the same rights; original kept ("
                         + "; ".join(after.errors + [f"{p} differs" for p in lost]) + ")")
    lost_fields = [k for k in before.rights if k not in after.rights and k in ("copyright", "web_statement", "holder")]
    if lost_fields:
        raise WriteError(f"cleaning would lose {', '.join(lost_fields)}; original kept")
    result.carriers = [c.name for c in after.carriers if c.signals]
    return result


def _statement(report: Any) -> Any:
    """The statement a file makes, as an assertion (for the re-signed manifest and the ledger)."""
    from .model import Assertion, Holder

    holder = report.rights.get("holder")
    return Assertion(
        permissions=dict(report.permissions),
        holder=Holder(holder["name"], holder.get("contact")) if isinstance(holder, dict) and holder.get("name") else None,
        copyright=report.rights.get("copyright") if isinstance(report.rights.get("copyright"), str) else None,
        web_statement=report.rights.get("web_statement") if isinstance(report.rights.get("web_statement"), str) else None,
        work_id=next((str(s.raw["WorkID"]) for s in report.signals if s.exact and s.raw.get("WorkID")), None),
    )


def sanitize_path(path: str | os.PathLike[str], *, keep: str = "rights", identity: Identity | None = None) -> dict[str, Any]:
    """Clean the file in place (atomically); a result object, failures included."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            data = fh.read()
        result = sanitize_bytes(data, keep=keep, identity=identity)
        atomic_write(name, result.data)
    except OSError as exc:
        return {"path": name, "status": "failed", "reason": f"cannot read or write the file: {exc.strerror or exc}"}
    except RightsmetaError as exc:
        return {"path": name, "status": "failed", "reason": str(exc)}
    return {"path": name, "status": "sanitized", "format": result.format, "removed": result.removed,
            "carriers": result.carriers, "resigned": result.manifest is not None}
