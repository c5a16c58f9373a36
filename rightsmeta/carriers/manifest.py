"""Signed C2PA manifests carrying the CAWG training-and-data-mining assertion (c2pa-python).

Not a family of formats but a carrier across them: it is written last, over the bytes every
other carrier has already been written into, because any metadata write after signing breaks
the manifest's hash (signals.md section 9).
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

from ..errors import MalformedFile, MalformedMetadata, UnsupportedFormat, WriteError
from ..model import Assertion
from ..report import CarrierReport
from ..vocab import cawg

if TYPE_CHECKING:
    from ..keys import Identity

# c2pa (a native library) is imported only when a file holds a manifest or one is signed:
# most files of a scan have none, and the import costs more than reading them.
    from . import Options

# Formats rightsmeta recognises that c2pa-python signs, by MIME type.
MIME = {
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
    "flac": "audio/flac",
    "m4a": "audio/mp4",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "pdf": "application/pdf",
}
# Not EPUB: c2pa 0.38 fails on deflated members ("compression method not supported: 8").
SOFT_BINDING_LABEL = "c2pa.soft-binding"
SOFT_BINDING_ALG = "io.iscc.v0"
# Every embedded manifest store is a JUMBF box labelled "c2pa": a file without these bytes has
# no manifest, and a memchr-speed search saves calling into c2pa for most files of a scan.
_MARKER = b"c2pa"
# Where c2pa puts the store (measured with c2pa-python 0.38): near the start in JPEG (APP11),
# PNG (caBX), GIF, MP3/FLAC (ID3) and MP4 (uuid after ftyp); near the end in WebP/WAV (RIFF
# chunk), TIFF and PDF (appended). Scanning a head and a tail window finds all of them without
# paging in the middle of large files.
_HEAD = 1024 * 1024
_TAIL = 256 * 1024


def _may_hold_manifest(buf: Any) -> bool:
    size = len(buf)
    if size <= _HEAD + _TAIL:
        return bool(buf.find(_MARKER, 0) >= 0)
    return bool(buf.find(_MARKER, 0, _HEAD) >= 0 or buf.find(_MARKER, size - _TAIL) >= 0)


def signable(fmt: str | None) -> bool:
    return fmt in MIME


def why_not(data: bytes, fmt: str) -> str | None:
    """A reason not to sign this particular file, though its format can be signed."""
    # c2pa embeds into a PDF by rewriting it whole, which breaks every existing digital
    # signature; each signature dictionary has a /ByteRange, so its presence is the tell.
    if fmt == "pdf" and b"/ByteRange" in data:
        return "not C2PA-signed: c2pa rewrites the whole PDF, which would break its existing digital signature"
    return None


def _version() -> str:
    from .. import __version__

    return __version__


def _context(trust_anchors: bytes | None) -> Any:
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
    if not _may_hold_manifest(buf):
        return None
    import c2pa

    trust = options.trust_anchors if options else None
    try:
        # An mmap is a seekable stream c2pa reads in place; bytes are wrapped without a copy.
        stream = buf if not isinstance(buf, (bytes, bytearray)) else io.BytesIO(buf)
        stream.seek(0)
        reader = c2pa.Reader.try_create(MIME[fmt], stream, context=_context(trust))
    except c2pa.C2paError as exc:
        return CarrierReport("c2pa", "C2PA manifest store", errors=[f"unreadable C2PA manifest: {exc}"])
    if reader is None:
        return None
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
    import c2pa

    if fmt not in MIME:
        raise UnsupportedFormat(f"c2pa cannot sign {fmt.upper()} files")
    assertions: list[dict[str, Any]] = []
    entries = cawg.encode(assertion)
    if entries is not None:
        assertions.append({"label": cawg.LABEL, "data": entries})
    if fingerprint:
        assertions.append({
            "label": SOFT_BINDING_LABEL,
            "data": {"alg": SOFT_BINDING_ALG, "blocks": [{"scope": {}, "value": fingerprint}]},
        })
    manifest = {
        "claim_generator_info": [{"name": "rightsmeta", "version": _version()}],
        "title": "rights statement",
        "assertions": assertions,
    }
    alg = getattr(c2pa.C2paSigningAlg, identity.algorithm.upper(), None)
    if alg is None:
        raise UnsupportedFormat(f"signing algorithm {identity.algorithm} is not supported by c2pa")
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, identity.chain_pem, identity.key_pem, None))
        with signer, c2pa.Builder(manifest, context=_context(None)) as builder:
            builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
            out = io.BytesIO()
            builder.sign(signer, MIME[fmt], io.BytesIO(data), out)
    except c2pa.C2paError as exc:
        # The message of c2pa errors never holds key material, only the reason.
        text = str(exc)
        if "certificate" in text.lower():
            raise WriteError(f"c2pa refused the signing certificate ({text}); run 'rightsmeta keys doctor' on it") from None
        raise MalformedFile(f"c2pa could not sign this {fmt.upper()} file: {text}") from None
    return out.getvalue()
