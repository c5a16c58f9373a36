"""Exact hashes of PNG, WebP and TIFF images taken from their coded data (``HASH_V2``).

Like a JPEG's (``fingerprint._jpeg_hash``), each is the SHA-256 of what a decoder reads to make
the first picture's pixels, and of nothing a metadata editor writes, so the ledger can record a
work without decoding it at full size, and a metadata edit (rightsmeta's own tag, ExifTool
writing XMP, EXIF or IPTC, a C2PA manifest) keeps the hash while any change of a pixel does not
(different pixels cannot come from the same coded bytes). A lossless re-encode (another zlib
level, PNG -> TIFF) now keeps the perceptual code, not the hash.

- PNG: the chunks a decoder uses to make pixels, IHDR, PLTE, tRNS, the image data (IDAT, as one
  stream however it is split) and APNG's frames (acTL, fcTL, fdAT), and any unknown critical
  chunk; not text, EXIF, time, colour space or C2PA (caBX) chunks, nor what follows IEND.
- WebP: the canvas size and the bitstream chunks (VP8, VP8L, ALPH, ANIM, ANMF); not VP8X's
  flags (which say which metadata chunks exist), ICCP, EXIF, XMP or C2PA.
- TIFF: the byte order, the first directory's entries that define decoding (size, samples,
  compression, photometric, predictor, colour map, tiles, JPEG tables...) and the strips or
  tiles they point at, byte for byte; not the offsets (a rewrite moves the data), and not
  Orientation, which ``essence`` treats as metadata. Compressions whose data lies elsewhere
  (old-style JPEG) get no coded hash.

Every function returns None when the walk meets something it does not understand; ``essence``
then hashes the decoded pixels (the v1 form) as before. The bytes hashed never exceed the file.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import MalformedFile

if TYPE_CHECKING:
    from .carriers.riff import Riff

# Exact hashes of this form ("v2:" and 64 hex digits) are taken from the coded data where it alone
# identifies the essence (JPEG: frame, tables and scans, so no full-size decode is needed; PNG,
# WebP and TIFF: the image data and what defines its decoding, this module; MP3: the frames,
# which unlike the decoded samples do not depend on the tags around them); the unprefixed form
# (64 hex digits) is a hash of the decoded content (``fingerprint.LEGACY_HASH_FORMATS``).
HASH_V2 = "v2:"


class _Digest:
    """SHA-256 over length-prefixed pieces: no two different lists of pieces hash alike."""

    def __init__(self, name: bytes) -> None:
        self._sha = hashlib.sha256(b"rightsmeta-" + name + b"-v2\0")

    def piece(self, label: bytes, *parts: bytes | memoryview) -> None:
        self._sha.update(label + b"%d\0" % sum(len(p) for p in parts))
        for part in parts:
            self._sha.update(part)

    def hex(self) -> str:
        return HASH_V2 + self._sha.hexdigest()


# --- PNG --------------------------------------------------------------------------------------------

_PNG_DECODES = frozenset({b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"acTL", b"fcTL", b"fdAT"})


def png_hash(data: bytes) -> str | None:
    from .carriers import png

    try:
        chunks = png.walk(data)
    except MalformedFile:
        return None
    # A critical chunk (upper-case first letter) that no decoder here knows is kept too: a decoder
    # that reads it may make other pixels from it.
    kept = [c for c in chunks if c.type in _PNG_DECODES or (not c.type[0] & 0x20 and c.type != b"IEND")]
    if not any(c.type == b"IDAT" for c in kept):
        return None
    view = memoryview(data)
    digest = _Digest(b"png")
    run: list[memoryview] = []
    for i, chunk in enumerate(kept):
        run.append(view[chunk.data_start : chunk.data_start + chunk.length])
        if chunk.type == b"IDAT" and i + 1 < len(kept) and kept[i + 1].type == b"IDAT":
            continue  # the image data is one zlib stream, however a writer split it into chunks
        digest.piece(chunk.type, *run)
        run = []
    return digest.hex()


# --- WebP -------------------------------------------------------------------------------------------

_WEBP_DECODES = frozenset({b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF"})


def webp_hash(data: bytes) -> str | None:
    from .carriers import riff

    try:
        found = riff.walk(data, b"WEBP")
        width, height, _ = webp_canvas(data, found)
    except MalformedFile:
        return None
    kept = [c for c in found.chunks if c.fourcc in _WEBP_DECODES]
    if not any(c.fourcc in (b"VP8 ", b"VP8L", b"ANMF") for c in kept):
        return None
    view = memoryview(data)
    digest = _Digest(b"webp")
    digest.piece(b"canvas", b"%d\0%d" % (width, height))
    for chunk in kept:
        digest.piece(chunk.fourcc, view[chunk.data_start : chunk.end])
    return digest.hex()


def webp_canvas(data: bytes, found: Riff) -> tuple[int, int, int]:
    """(width, height, VP8X flags) of the canvas, as libwebp's demuxer reads it; MalformedFile if
    there is none."""
    from .carriers import riff

    header = riff.find(found, b"VP8X")
    if not header:
        # A writer adding metadata to a simple WebP adds a VP8X header with the bitstream's size.
        return riff._canvas(data, found)
    body = data[header[0].data_start : header[0].end]
    if len(body) < 10:
        raise MalformedFile(f"WebP: VP8X chunk at offset {header[0].start} is too short")
    return 1 + int.from_bytes(body[4:7], "little"), 1 + int.from_bytes(body[7:10], "little"), body[0]


# --- TIFF -------------------------------------------------------------------------------------------

# Entries of the first directory that define how its strips or tiles decode (TIFF 6.0 and the
# compressions libtiff reads): not the offsets, which move when a writer rewrites the file.
_TIFF_DECODES = frozenset({
    256, 257, 258, 259, 262, 266,  # width, length, bits per sample, compression, photometric, fill order
    277, 278, 279, 284, 317, 320,  # samples per pixel, rows per strip, strip byte counts, planar, predictor, colour map
    322, 323, 325, 338, 339, 347,  # tile width, length, byte counts, extra samples, sample format, JPEG tables
    529, 530, 531, 532,  # YCbCr coefficients, subsampling, positioning, reference black and white
})
_TIFF_OLD_JPEG = 6  # its data is found through JPEGInterchangeFormat, not the strips alone


def tiff_hash(data: bytes) -> str | None:
    from .carriers import tiff
    from .mediacheck import _image_data

    try:
        order, _, entries, _ = tiff.first_directory(data)
        compression = next((e for e in entries if e.tag == 259), None)
        # A compression that is no SHORT or LONG number is none libtiff decodes: not hashed either.
        if compression is not None and tiff.shorts_or_longs(data, compression, order) in (None, (_TIFF_OLD_JPEG,)):
            return None
        digest = _Digest(b"tiff")
        digest.piece(b"order", order.encode())
        for entry in entries:
            if entry.tag in _TIFF_DECODES:
                digest.piece(b"tag", struct.pack("<HHI", entry.tag, entry.type, entry.count), tiff.value_bytes(data, entry))
        pieces = _image_data(data, entries, order)
    except (MalformedFile, struct.error, ValueError):
        return None
    # Strips lie apart in a real file; more than the file's length hashed means they overlap
    # (a hostile file pointing a million strips at the same bytes).
    if any(end > len(data) or start < 0 or end < start for start, end in pieces):
        return None
    if sum(end - start for start, end in pieces) > len(data):
        return None
    view = memoryview(data)
    for start, end in pieces:
        digest.piece(b"data", view[start:end])
    return digest.hex()


CODED_HASHES: dict[str, Callable[[bytes], str | None]] = {"png": png_hash, "webp": webp_hash, "tiff": tiff_hash}
