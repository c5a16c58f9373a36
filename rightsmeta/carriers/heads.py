"""Recognising formats from their first bytes, without importing the libraries that read them.

The command line and `verify` recognise every file before reading it; keeping these checks
apart from carriers/audio.py (mutagen), carriers/pdf.py (pypdf) and carriers/epub.py (zipfile)
lets a scan load those libraries only when it meets such a file.
"""

from __future__ import annotations

import re
import zlib

from ..errors import UnknownFormat, UnsupportedFormat
from . import bmff, containers
from .tiff import Buffer

# --- audio and video (carriers/audio.py) -------------------------------------------------------

#: The formats of carriers/audio.py (its FORMATS; a test keeps the two equal).
AUDIO_FORMATS = ("mp3", "wav", "aiff", "flac", "ogg", "opus", "m4a", "mp4", "mov")

_M4A_BRANDS = frozenset({b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "})
_MP4_BRANDS = frozenset(
    {b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso7", b"iso8", b"iso9", b"mp41", b"mp42",
     b"mp71", b"avc1", b"M4V ", b"M4VH", b"M4VP", b"dash", b"3gp4", b"3gp5", b"3gp6", b"3gp7", b"3g2a",
     b"MSNV", b"f4v ", b"XAVC", b"NDAS"}
)
# QuickTime files older than ftyp start straight with one of these atoms.
_BARE_MOV_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})


def sniff_audio(head: bytes) -> str | None:
    if head[:3] == b"ID3":
        # FLAC behind an ID3 tag: visible here only when the tag is tiny; read() and write()
        # look behind larger tags themselves.
        end = id3_size(head, 0)
        if end is not None and head[end : end + 4] == b"fLaC":
            return "flac"
        return "mp3"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] == b"OggS":
        return _sniff_ogg(head)
    if head[4:8] == b"ftyp":
        return _sniff_bmff(head)
    if head[4:8] in _BARE_MOV_ATOMS and int.from_bytes(head[:4], "big") >= 8:
        return "mov"
    frame = mpeg_frame(head[:4])
    if frame is not None and frame[1] == 3:
        return "mp3"
    return None


def refine_audio(buf: Buffer, fmt: str) -> str:
    """The format once more than the head can be seen: a FLAC behind a large ID3 tag (as c2pa
    writes it when signing a FLAC) is a FLAC, not an MP3."""
    if fmt == "mp3":
        end = id3_size(buf, 0)
        if end is not None and bytes(buf[end : end + 4]) == b"fLaC":
            return "flac"
    return fmt


def _sniff_ogg(head: bytes) -> str | None:
    if len(head) < 28:
        return None
    packet = head[27 + head[26] :]
    if packet.startswith(b"\x01vorbis"):
        return "ogg"
    if packet.startswith(b"OpusHead"):
        return "opus"
    return None  # Ogg FLAC, Speex, Theora...: not handled


def _sniff_bmff(head: bytes) -> str | None:
    if containers.sniff(head) is not None:
        return None  # HEIC/AVIF brands belong to the image family
    major, brands = bmff.brands(head)
    if major == b"qt  ":
        return "mov"
    if major in _M4A_BRANDS:
        return "m4a"
    if major in _MP4_BRANDS or brands & _MP4_BRANDS:
        return "mp4"
    return None


def syncsafe(data: bytes) -> int:
    return (data[0] << 21) | (data[1] << 14) | (data[2] << 7) | data[3]


def id3_size(buf: Buffer, pos: int) -> int | None:
    """End offset of the ID3v2 tag at ``pos`` as declared (None if the header is not one)."""
    head = bytes(buf[pos : pos + 10])
    if len(head) < 10 or head[:3] != b"ID3" or any(b & 0x80 for b in head[6:10]):
        return None
    footer = 10 if head[3] == 4 and head[5] & 0x10 else 0
    return pos + 10 + syncsafe(head[6:10]) + footer


_BITRATES = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def mpeg_frame(h: bytes) -> tuple[int, int] | None:
    """(frame length, layer) of the MPEG audio frame header ``h``, or None if it is not one."""
    if len(h) < 4 or h[0] != 0xFF or h[1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (h[1] >> 3) & 3, (h[1] >> 1) & 3
    bitrate_index, rate_index, padding = h[2] >> 4, (h[2] >> 2) & 3, (h[2] >> 1) & 1
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None  # reserved values, or free format (whose length no header states)
    layer, mpeg1 = 4 - layer_bits, version == 3
    bitrate = _BITRATES[(mpeg1, layer)][bitrate_index] * 1000
    rate = _SAMPLE_RATES[version][rate_index]
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4, layer
    if layer == 3 and not mpeg1:
        return 72 * bitrate // rate + padding, layer
    return 144 * bitrate // rate + padding, layer



# --- EPUB (carriers/epub.py) -------------------------------------------------------------------

EPUB_MIMETYPE = b"application/epub+zip"


_EPUB_MIMETYPE_CRC = zlib.crc32(EPUB_MIMETYPE).to_bytes(4, "little")


def sniff_epub(head: bytes) -> str | None:
    # OCF: the first local file header is an uncompressed "mimetype" holding the media type.
    if len(head) < 38 or head[:4] != b"PK\x03\x04":
        return None
    name_len, extra_len = int.from_bytes(head[26:28], "little"), int.from_bytes(head[28:30], "little")
    if name_len != 8 or head[30:38] != b"mimetype":
        return None
    start = 38 + extra_len
    if start + len(EPUB_MIMETYPE) <= len(head):
        return "epub" if head[start : start + len(EPUB_MIMETYPE)] == EPUB_MIMETYPE else None
    # Info-ZIP's extra field (zip without -X) pushes the text past the head: the header's
    # method, CRC-32 and sizes tell the stored text all the same.
    size = len(EPUB_MIMETYPE).to_bytes(4, "little")
    return "epub" if head[8:10] == b"\x00\x00" and head[14:26] == _EPUB_MIMETYPE_CRC + size + size else None


# --- PDF (carriers/pdf.py) ---------------------------------------------------------------------


def sniff_pdf(head: bytes) -> str | None:
    # The header may follow up to 1024 bytes of junk; sniff sees 64 of them.
    return "pdf" if b"%PDF-" in head[:64] else None


# --- recognised only to say why nothing reads them ---------------------------------------------

# A sidecar is a bare packet: ExifTool and Capture One start it with <?xpacket, Lightroom and
# darktable with <x:xmpmeta (darktable after an XML declaration).
_XMP_SIDECAR = re.compile(rb"(\xef\xbb\xbf)?\s*(<\?xml[^>]*\?>\s*)?<(\?xpacket|x:xmpmeta)[\s>]")


def _media_not_read(head: bytes) -> str | None:
    """The name of a media format rightsmeta recognises only to say it does not read it."""
    if head[:4] in (b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "RF64 WAV (the 64-bit form recorders write for takes over 4 GiB)"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "WebM" if b"webm" in head else "Matroska (MKV, MKA)"
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return "AVI"
    if head[:4] == b"OggS":
        return "Ogg of a codec other than Vorbis and Opus (FLAC, Speex, Theora)"
    if head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in (12, 40, 52, 56, 64, 108, 124):
        return "BMP"  # the sizes of the DIB headers there are: "BM" alone could start any text
    if head[:4] == b"8BPS" and head[4:6] in (b"\x00\x01", b"\x00\x02"):
        return "Photoshop (PSD, PSB)"
    return None


def not_read(head: bytes, buf: Buffer) -> UnsupportedFormat:
    """Why a file no family recognises is not read: what it is, where its bytes tell (the first
    ones; for a ZIP, the central directory at its end). Media are refused (tag fails them with
    this reason); other files are unknown (skipped)."""
    media = _media_not_read(head)
    if media is not None:
        return UnsupportedFormat(f"{media} is not supported")
    directory = bytes(buf[-(1 << 20) :]) if head[:4] == b"PK\x03\x04" else b""
    if b"META-INF/container.xml" in directory and b"mimetype" in directory:
        return UnsupportedFormat(
            "an EPUB whose 'mimetype' entry is not first and stored, as EPUB's container format (OCF) "
            "requires; repack it with that entry first (zip -X0 book.epub mimetype, then the rest)"
        )
    if _XMP_SIDECAR.match(head):
        return UnknownFormat("an XMP sidecar (metadata kept beside a camera raw or other file), not media: "
                             "rightsmeta reads it with the file it describes (read or verify that file; tag of a "
                             "camera raw updates it)")
    return UnknownFormat("not a format rightsmeta knows (unrecognised first bytes)")
