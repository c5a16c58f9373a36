"""Signed C2PA manifests carrying the CAWG training-and-data-mining assertion (c2pa-python).

Not a family of formats but a carrier across them: it is written last, over the bytes every
other carrier has already been written into, because any metadata write after signing breaks
the manifest's hash (signals.md section 9).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import MalformedFile, MalformedMetadata, RightsmetaError, UnsupportedFormat, WriteError
from ..model import Assertion
from ..report import CarrierReport
from ..vocab import cawg
from . import bmff, jpeg, jumbf, png, riff, splice, tiff, walked
from .heads import id3_size
from .tiff import find_tag

if TYPE_CHECKING:
    from ..keys import Identity

# c2pa (a native library) is imported only when a file holds a manifest or one is signed:
# most files of a scan have none, and the import costs more than reading them.
    from . import Options, Parsed

# The media type of every format rightsmeta recognises (what the server answers a file with).
MEDIA_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "tiff": "image/tiff",
    "gif": "image/gif",
    "avif": "image/avif",
    "heic": "image/heic",
    "svg": "image/svg+xml",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "aiff": "audio/aiff",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "m4a": "audio/mp4",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "pdf": "application/pdf",
    "epub": "application/epub+zip",
}
# Those c2pa-python signs, by the media type c2pa is told (AIFF, Ogg and Opus it cannot sign).
# Not EPUB: c2pa 0.38 fails on deflated members ("compression method not supported: 8").
MIME = {fmt: media for fmt, media in MEDIA_TYPES.items() if fmt not in ("aiff", "ogg", "opus", "epub")}
SOFT_BINDING_LABEL = "c2pa.soft-binding"
# The location of a store found damaged before c2pa could read it: no signature a tag could break.
DAMAGED = "C2PA manifest store (damaged, not read)"
SOFT_BINDING_ALG = "io.iscc.v0"
# Every embedded manifest store is a JUMBF box labelled "c2pa". Each format keeps the store in one
# structural place, where c2pa itself looks for it (c2pa-rs's asset handlers; measured with
# c2pa-python 0.38): JPEG APP11 segments, PNG caBX chunks, RIFF (WebP, WAV) "C2PA" chunks, the
# TIFF tag 0xCD41 of IFD0, ISO-BMFF top-level uuid boxes of the C2PA UUID, and the ID3v2 tag in
# front of MP3 and FLAC. The container walkers (jpeg.py, png.py, riff.py, tiff.py, bmff.py) say
# where those are; searching only there spares a scan from calling into c2pa for files without a
# store, and from reading their essence.
_MARKER = b"c2pa"
# GIF, PDF and SVG keep the store where only a search finds it quickly, as does any file whose
# headers do not add up (the family reports that); c2pa puts it near the start (GIF, SVG) or
# near the end (PDF, appended), so a head and a tail window are searched.
_HEAD = 1024 * 1024
_TAIL = 256 * 1024
_MAX_WALK = 100_000  # headers walked per file; real files have far fewer

Ranges = list[tuple[int, int]]


def _jpeg(buf: Any, parsed: Parsed | None = None) -> Ranges:
    return jpeg.c2pa_ranges(walked.jpeg_layout(buf, parsed), buf)


def _png(buf: Any, parsed: Parsed | None = None) -> Ranges:
    return png.c2pa_ranges(walked.png_chunks(buf, parsed), buf)


def _webp(buf: Any, parsed: Parsed | None = None) -> Ranges:
    return riff.c2pa_ranges(walked.webp_chunks(buf, parsed), buf)


def _wav(buf: Any) -> Ranges:
    # WAV writers often leave the RIFF size wrong; clamping it is what c2pa and players do too.
    return riff.c2pa_ranges(riff.walk(buf, b"WAVE", lenient_size=True), buf)


def _tiff(buf: Any) -> Ranges:
    return [(0, len(buf))] if find_tag(buf, tiff.C2PA_TAG, ifd="ifd0") is not None else []


def _bmff(buf: Any) -> Ranges:
    # The uuid boxes of the C2PA UUID, and any other top-level box but the media data holding a store.
    return [(payload, end) for btype, payload, end in bmff.children(buf, 0, len(buf), _MAX_WALK)
            if (btype == b"uuid" and bytes(buf[payload : payload + 16]) == bmff.C2PA_UUID)
            or (btype != b"mdat" and jumbf.holds_store(buf, payload, end))]


def _id3(buf: Any) -> Ranges:
    pos = 0
    for _ in range(16):  # some files carry several tags in a row
        end = id3_size(buf, pos)
        if end is None:
            break
        pos = end
    return [(0, pos)] if pos else []


_LOCATE: dict[str, Callable[[Any], Ranges]] = {
    "jpeg": _jpeg, "png": _png, "webp": _webp, "wav": _wav, "tiff": _tiff, "avif": _bmff, "heic": _bmff,
    "m4a": _bmff, "mp4": _bmff, "mov": _bmff, "mp3": _id3, "flac": _id3,
}


# Formats whose locator lists the elements a store may sit in (the others' ranges are a whole tag or file).
_ELEMENTS = frozenset({"jpeg", "png", "webp", "wav", "avif", "heic", "m4a", "mp4", "mov"})


# Formats whose walk a tag remembers for the writer and the content check (carriers.walked).
_REMEMBERED: dict[str, Callable[[Any, Parsed | None], Ranges]] = {"jpeg": _jpeg, "png": _png, "webp": _webp}


def _may_hold_manifest(
    buf: Any, fmt: str, located: dict[str, Ranges] | None = None, parsed: Parsed | None = None
) -> Ranges:
    """The ranges searched when one holds the marker (a store may sit there), else []."""
    locate = _LOCATE.get(fmt)
    ranges: Ranges | None = located.get(fmt) if located is not None else None  # the family's walk of this file, when it had one
    if ranges is None and locate is not None:
        remembered = _REMEMBERED.get(fmt) if parsed is not None else None
        try:
            ranges = remembered(buf, parsed) if remembered is not None else locate(buf)
        except RightsmetaError:  # headers that do not add up: search the likely windows instead
            ranges = None
    if ranges is None:
        size = len(buf)
        ranges = [(0, size)] if size <= _HEAD + _TAIL else [(0, _HEAD), (size - _TAIL, size)]
    searched = ranges
    spliced = splice.made(buf, parsed)
    clean = parsed.find("manifest", spliced.source) if parsed is not None and spliced is not None else None
    if spliced is not None and clean:
        searched = _not_searched(ranges, spliced, clean)
    if any(buf.find(_MARKER, start, end) >= 0 for start, end in searched):
        return ranges
    if parsed is not None:  # a tag's new version spliced from this one need not search these again
        parsed.keep("manifest", buf, ranges)
    return []


def _not_searched(ranges: Ranges, spliced: splice.Spliced, clean: Ranges) -> Ranges:
    """The parts of ``ranges`` of the file ``spliced`` made that may hold a marker not already
    looked for: a marker lying wholly in bytes copied from the ``clean`` ranges of the original
    (searched there, none found) is not in them. One overlapping a piece's edge still is."""
    width = len(_MARKER) - 1
    # The offsets where a marker would start wholly inside bytes known to hold none.
    known: Ranges = []
    for new_start, new_end, at in spliced.kept:
        for start, end in clean:
            low, high = max(start, at), min(end, at + new_end - new_start)
            if high - low > width:
                known.append((new_start + low - at, new_start + high - at - width))
    known.sort()
    left: Ranges = []
    for start, end in ranges:
        pos = start  # the first start offset not yet covered
        for low, high in known:
            if high <= pos or low >= end:
                continue
            if low > pos:
                left.append((pos, min(low + width, end)))
            pos = max(pos, high)
        if pos < end:
            left.append((pos, end))
    return left


def _stores(buf: Any, fmt: str, ranges: Ranges) -> list[bytes]:
    """The JUMBF of each store element in ``ranges`` whose own header says so (a PNG caBX chunk, a
    RIFF C2PA chunk, a C2PA uuid box, JPEG APP11 segments joined per box instance); none for the
    formats whose store is found by a search (GIF, PDF, SVG), nor for a file searched whole."""
    found: list[bytes] = []
    if fmt == "png":
        found = [bytes(buf[start + 8 : end - 4]) for start, end in ranges if buf[start + 4 : start + 8] == b"caBX"]
    elif fmt in ("webp", "wav"):
        found = [bytes(buf[start + 8 : end]) for start, end in ranges if buf[start : start + 4] == b"C2PA"]
    elif fmt in ("avif", "heic", "m4a", "mp4", "mov"):
        for payload, end in ranges:
            if buf[payload - 4 : payload] == b"uuid" and bytes(buf[payload : payload + 16]) == bmff.C2PA_UUID:
                # version and flags, then the purpose (a C string), then for "manifest" a 64-bit offset
                purpose_end = buf.find(b"\0", payload + 20, end)
                if purpose_end < 0:
                    found.append(b"")  # no purpose: nothing a store could follow
                    continue
                start = purpose_end + 1 + (8 if bytes(buf[payload + 20 : purpose_end]) == b"manifest" else 0)
                found.append(bytes(buf[start:end]))
    elif fmt == "jpeg":
        joined: dict[bytes, bytearray] = {}
        for start, end in ranges:
            body = buf[start + 4 : end]
            if buf[start + 1] != jpeg.APP11 or body[:2] != b"JP" or len(body) < 16:
                continue
            instance, rest = bytes(body[2:4]), body[8:]
            if instance in joined:  # a continuation repeats the box's LBox and TBox (and XLBox)
                rest = rest[16:] if rest[:4] == b"\0\0\0\1" else rest[8:]
            joined.setdefault(instance, bytearray()).extend(rest)
        found = [bytes(jumbf_bytes) for jumbf_bytes in joined.values()]
    return found


def signable(fmt: str | None) -> bool:
    return fmt in MIME


def why_not(data: bytes, fmt: str) -> str | None:
    """A reason not to sign this file: its format (said, as a signing user expects a manifest in
    every file), or something in the file itself."""
    if fmt not in MIME:
        return f"not C2PA-signed: c2pa cannot embed a manifest in {fmt.upper()} files"
    # c2pa embeds into a PDF by rewriting it whole, which breaks every existing digital
    # signature; each signature dictionary has a /ByteRange, so its presence is the tell.
    if fmt == "pdf" and b"/ByteRange" in data:
        return "not C2PA-signed: c2pa rewrites the whole PDF, which would break its existing digital signature"
    return None


def rightsmeta_version() -> str:
    from .. import __version__

    return __version__


def c2pa_context(trust_anchors: bytes | None) -> Any:
    import c2pa

    settings: dict[str, Any] = {"builder": {"thumbnail": {"enabled": False}}}
    if trust_anchors:
        settings["trust"] = {"user_anchors": trust_anchors.decode("ascii", "replace")}
        settings["verify"] = {"verify_trust": True}
    return c2pa.Context(settings=c2pa.Settings.from_dict(settings))


def _failures(results: Any) -> list[str]:
    codes: list[str] = []
    active = (results or {}).get("activeManifest") or {}
    for item in active.get("failure") or []:
        code = item.get("code")
        if code and code not in codes:
            codes.append(code)
    return codes


def read(buf: Any, fmt: str, options: Options | None = None) -> CarrierReport | None:
    """The manifest's validation and training-mining assertion; None when there is no manifest."""
    if fmt not in MIME:
        return None
    ranges = _may_hold_manifest(buf, fmt, options.located if options else None, options.parsed if options else None)
    if not ranges:
        return None
    for store in _stores(buf, fmt, ranges):
        damage = jumbf.store_damage(store)
        if damage is not None:  # c2pa would trust the lengths: see jumbf.py
            return CarrierReport("c2pa", DAMAGED, errors=[f"unreadable C2PA manifest: the store is damaged ({damage})"])
    import c2pa

    trust = options.trust_anchors if options else None
    try:
        # An mmap is a seekable stream c2pa reads in place; bytes are wrapped without a copy.
        stream = buf if not isinstance(buf, (bytes, bytearray)) else io.BytesIO(buf)
        stream.seek(0)
        reader = c2pa.Reader.try_create(MIME[fmt], stream, context=c2pa_context(trust))
    except c2pa.C2paError as exc:
        return CarrierReport("c2pa", "C2PA manifest store", errors=[f"unreadable C2PA manifest: {exc}"])
    if reader is None:
        # An element's first bytes (jumbf.py), where the walkers list elements; a GIF's windows are
        # searched whole, its store sitting wherever its application extension does. Not a PDF, an
        # ID3 tag or a TIFF, searched as a whole: an embedded signed JPEG (a PDF's image, an MP3's
        # cover) holds a store of its own that is none of the file's.
        held = next(((start, end) for start, end in ranges
                     if (jumbf.finds_store(buf, start, end) if fmt == "gif"
                         else fmt in _ELEMENTS and jumbf.holds_store(buf, start, end))), None)
        if held is None:
            return None
        # A store where c2pa did not find one: the header of the element holding it is damaged.
        return CarrierReport("c2pa", DAMAGED, errors=[
            f"a C2PA manifest store at bytes {held[0]}-{held[1]} is not where c2pa reads one (a damaged "
            "header?); the manifest was not read"])
    with reader:
        state = reader.get_validation_state()
        failures = _failures(reader.get_validation_results())
        store = json.loads(reader.json())
    active = store.get("manifests", {}).get(store.get("active_manifest"), {})
    signature = active.get("signature_info") or {}
    report = CarrierReport(
        "c2pa",
        "C2PA manifest store",
        values={
            "validation_state": state,
            "failures": failures,
            "signer": signature.get("common_name") or signature.get("issuer"),
            "issuer": signature.get("issuer"),
            "claim_generator": [g.get("name") for g in active.get("claim_generator_info", [])],
            "ingredients": len(active.get("ingredients") or []),
        },
    )
    trusted = state != "Invalid"
    for assertion in active.get("assertions", []):
        label = assertion.get("label", "")
        if label in cawg.LABELS:
            try:
                report.signals.append(cawg.decode(assertion.get("data"), label=label, trusted=trusted))
            except MalformedMetadata as exc:
                report.errors.append(str(exc))
        elif label == SOFT_BINDING_LABEL:
            report.values["soft_binding"] = assertion.get("data")
    return report


def sign(data: bytes, fmt: str, assertion: Assertion, identity: Identity, *, fingerprint: str | None = None) -> bytes:
    """``data`` with a signed manifest holding the assertion (and a soft binding, when given).

    Always with the EDIT intent: rightsmeta tags existing works, so the action is
    ``c2pa.opened`` with the asset as parent ingredient, and a previous manifest is kept as
    that ingredient instead of being thrown away.
    """
    if fmt not in MIME:
        raise UnsupportedFormat(f"c2pa cannot sign {fmt.upper()} files")
    manifest = {
        "claim_generator_info": [{"name": "rightsmeta", "version": rightsmeta_version()}],
        "title": "rights statement",
        "assertions": statement_assertions(assertion, fingerprint),
    }
    return sign_manifest(manifest, fmt, data, identity)[0]


# ExifTool (13.59) keys the directories it has read by their offset within a PNG chunk, not in the
# file: the manifest store's first box and IFD0 both start 8 bytes into their chunks, so whichever
# chunk comes second is taken for a loop and not shown. c2pa always puts its caBX chunk right after
# IHDR, before the file's eXIf (c2pa-python 0.38 offers no other place), so ExifTool then shows no
# EXIF ("IFD0 pointer references previous JUMBFBox directory") though every byte of it is kept.
EXIF_AFTER_STORE = ("ExifTool (13.59) does not show this PNG's EXIF while the C2PA manifest chunk comes first, "
                    "as c2pa places it; its EXIF is unchanged, and ExifTool shows it again once the manifest is gone")


def caveats(signed: bytes, fmt: str) -> list[str]:
    """What a reader known to misread the signed file gets wrong, said so that nobody takes it for damage."""
    if fmt != "png":
        return []
    order = [c.type for c in png.walk(signed)]
    if b"eXIf" in order and b"caBX" in order and order.index(b"caBX") < order.index(b"eXIf"):
        return [EXIF_AFTER_STORE]
    return []


def statement_assertions(assertion: Assertion | None, fingerprint: str | None) -> list[dict[str, Any]]:
    """The training-mining assertion of the statement and the ISCC soft binding, as far as given."""
    assertions: list[dict[str, Any]] = []
    entries = cawg.encode(assertion) if assertion is not None else None
    if entries is not None:
        assertions.append({"label": cawg.LABEL, "data": entries})
    if fingerprint:
        assertions.append({
            "label": SOFT_BINDING_LABEL,
            "data": {"alg": SOFT_BINDING_ALG, "blocks": [{"scope": {}, "value": fingerprint}]},
        })
    return assertions


def sign_manifest(
    manifest: dict[str, Any], fmt: str, data: bytes, identity: Identity, *,
    parent: bytes | None = None, parent_fmt: str | None = None,
) -> tuple[bytes, bytes]:
    """(signed file, manifest store bytes). Without ``parent`` the file is its own parent (intent
    EDIT); with it, ``parent`` is added as the parent ingredient (a sanitized copy, a rendition)."""
    import c2pa

    alg = getattr(c2pa.C2paSigningAlg, identity.algorithm.upper(), None)
    if alg is None:
        raise UnsupportedFormat(f"signing algorithm {identity.algorithm} is not supported by c2pa")
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, identity.chain_pem, identity.key_pem, None))
        with signer, c2pa.Builder(manifest, context=c2pa_context(None)) as builder:
            if parent is None or parent_fmt is None:
                builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
            else:
                builder.add_ingredient(json.dumps({"title": f"original.{parent_fmt}", "relationship": "parentOf", "label": "parent"}),
                                       MIME[parent_fmt], io.BytesIO(parent))
            out = io.BytesIO()
            store = builder.sign(signer, MIME[fmt], io.BytesIO(data), out)
    except c2pa.C2paError as exc:
        # The message of c2pa errors never holds key material, only the reason.
        text = str(exc)
        if "certificate" in text.lower():
            raise WriteError(f"c2pa refused the signing certificate ({text}); run 'rightsmeta keys doctor' on it") from None
        raise MalformedFile(f"c2pa could not sign this {fmt.upper()} file: {text}") from None
    return out.getvalue(), bytes(store)
