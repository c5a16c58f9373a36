"""Proof that tagging changed only metadata: the decoded content before and after must agree.

The read-back in ``api`` proves the new file *says* what was asked; this module proves it
still *is* the same work. Writers and the C2PA signer rewrite containers, and on odd input
they have dropped a PDF page, changed a TIFF's decoded width and turned trailing chunks into
sound. So every tag decodes the content before and after and refuses a result whose exact
hash differs: images as Pillow decodes their first frame (mode, size, palette, every pixel),
documents with the decoder the ledger uses (``fingerprint.essence``: every PDF page's content
with the page count, an EPUB's spine text), audio as every
PCM sample libsndfile decodes, with rate and channels, read until the decoder has no more.
(Not ``essence``'s v1 audio hash, which reads as many frames as the header estimates: for an
MP3 without a Xing/LAME header libsndfile estimates from the file size, so an added ID3 tag
changed it although not one sample did; ``essence`` now hashes an MP3's coded frames (``v2:``),
and ffmpeg formats go through ``essence``, whose ffmpeg-made WAV states its length.) Where only
metadata moved, ``mediacheck`` proves the same in place, from the containers' own pieces. For images the embedded ICC colour profile is compared
too, since it changes how every pixel is shown and the pixel hash does not cover it.

Some input cannot be compared that way, and is refused before anything is written:

- a WAV whose ``data`` chunk declares 0 bytes (or 0xFFFFFFFF, a recorder that never finished
  its header): libsndfile reads no samples, ffmpeg reads to the end of the file, so any chunk
  written after it would become sound in ffmpeg-based players.

When the original cannot be decoded at all, the comparison cannot be made; the result says so
in a note instead of claiming a proof.
"""

from __future__ import annotations

import io
import struct
from typing import TYPE_CHECKING

from . import mediacheck
from .carriers import splice
from .errors import ContentChanged, MalformedFile
from .fsio import Buffer

if TYPE_CHECKING:
    from .carriers import Parsed

_RIFF_AUDIO = frozenset({"wav"})
_MAX_RIFF_CHUNKS = 100_000  # a RIFF with more top-level chunks is not walked further


def check_source(data: bytes, fmt: str) -> None:
    """Refuse, before writing, input whose content another reader would see change."""
    if fmt in _RIFF_AUDIO:
        _check_wav_data(data)


def compare(before: bytes, after: Buffer, fmt: str, parsed: Parsed | None = None) -> list[str]:
    """Notes on what could not be compared; raises ``ContentChanged`` when the content differs.
    ``parsed``: what the tag's writer and read-back parsed of these bytes (carriers.Parsed).
    ``after`` may be the file written, mapped (tagging._tag_path)."""
    if _same_in_place(before, after, fmt, parsed):
        return []
    after = after if isinstance(after, bytes) else after[:]  # the decoders take bytes: only here, rarely, a copy
    # Only now the decoders: a tag whose bytes compare in place never imports them (about 0.2 s).
    from .fingerprint import _SOUNDFILE_FORMATS, KIND_OF, essence

    kind = KIND_OF.get(fmt)
    if kind is None:
        return []
    was: str | None
    now: str | None
    profile = kept = None
    if kind == "image":
        was, why, profile = _pixels(before, fmt)
        now, _, kept = _pixels(after, fmt) if was is not None else (None, None, None)
    elif fmt in _SOUNDFILE_FORMATS:
        was, why = _pcm_hash(before, fmt)
        now = _pcm_hash(after, fmt)[0] if was is not None else None
    else:
        old = essence(before, fmt)
        was, why = old.hash, old.reason
        now = essence(after, fmt).hash if was is not None else None
    if was is None:
        return [f"the content could not be compared before and after ({why})"]
    if now != was:
        raise ContentChanged(
            f"tagging would change the {_WHAT[kind]} of this {fmt.upper()}{_detail(before, after, fmt, kind)}; "
            "the original is kept"
        )
    if kind == "image" and profile != kept:
        raise ContentChanged(
            f"tagging would change this {fmt.upper()}'s ICC colour profile "
            f"({_size(profile)} -> {_size(kept)}); the original is kept"
        )
    return []


def _same_in_place(before: bytes, after: Buffer, fmt: str, parsed: Parsed | None = None) -> bool:
    """Whether every byte the decoder reads is the same in both files: then so is the decoded
    content (pixels with their ICC profile, which is among those bytes; samples), and nothing is
    decoded. False whenever a walk does not prove it; the content is then decoded and compared."""
    if fmt in _IN_PLACE_IMAGES:
        return same_decoder_input(before, after, fmt, parsed)
    if fmt == "tiff":
        return mediacheck.same_tiff(before, after, parsed)
    if fmt == "pdf":  # an update appended that redefines no object the pages lead to (no pypdf, no decoder)
        return mediacheck.same_pdf(before, after, parsed)
    if not isinstance(after, bytes):  # only the images and PDFs above are mapped to be compared
        return False
    if fmt in mediacheck.FORMATS:  # the sample tables and the bytes they point at (no ffmpeg decodes)
        return mediacheck.same_media(before, after)
    if fmt in mediacheck.AUDIO_FORMATS:  # the tag beside the audio changed, not a frame
        return mediacheck.same_audio(before, after, fmt)
    return False


_IN_PLACE_IMAGES = frozenset({"jpeg", "png", "webp"})
_WHAT = {"image": "decoded pixels", "audio": "decoded samples", "text": "pages"}


def _detail(before: bytes, after: bytes, fmt: str, kind: str) -> str:
    """What changed, where it is cheap to say: image geometry, PDF page count."""
    try:
        if kind == "image":
            from PIL import Image

            with Image.open(io.BytesIO(before)) as a, Image.open(io.BytesIO(after)) as b:
                if a.size != b.size:
                    return f" ({a.width}x{a.height} pixels before, {b.width}x{b.height} after)"
        elif fmt == "pdf":
            import pypdf

            counts = [len(pypdf.PdfReader(io.BytesIO(x), strict=False).pages) for x in (before, after)]
            if counts[0] != counts[1]:
                return f" ({counts[0]} pages before, {counts[1]} after)"
    except Exception:  # only the message's detail is lost; the refusal stands
        return ""
    return ""


def _pcm_hash(data: bytes, fmt: str) -> tuple[str | None, str | None]:
    import hashlib  # here, as the decoders: a tag compared in place never loads it (11M instructions)

    import numpy as np
    import soundfile

    from .fingerprint import MAX_AUDIO_SECONDS

    try:
        with soundfile.SoundFile(io.BytesIO(data)) as fh:
            rate, channels = int(fh.samplerate), int(fh.channels)
            digest = hashlib.sha256(b"%d\0%d\0" % (rate, channels))
            limit, frames = MAX_AUDIO_SECONDS * max(rate, 1), 0
            # A buffer given as ``out`` is filled as far as the decoder goes; without one,
            # soundfile stops at the header's frame count, an estimate for MP3.
            buffer = np.empty((1 << 16, channels), dtype=np.int32)
            while True:
                block = fh.read(out=buffer)
                if len(block) == 0:
                    break
                frames += len(block)
                if frames > limit:
                    return None, f"audio longer than {MAX_AUDIO_SECONDS} s is not decoded"
                digest.update(block.astype("<i4", copy=False).tobytes())
    except Exception as exc:  # libsndfile's errors, and anything a hostile file provokes in it
        return None, f"libsndfile cannot decode this {fmt.upper()}: {exc}"
    return digest.hexdigest(), None


# Segments and chunks that hold only metadata: no decoder reads them to make pixels. Kept: the ICC
# profile (JPEG APP2 "ICC_PROFILE", PNG iCCP, WebP ICCP) and JPEG APP14 "Adobe", which selects the
# colour transform.
_JPEG_METADATA = frozenset(range(0xE0, 0xF0)) - {0xEE} | {0xFE}
_PNG_METADATA = frozenset({b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME", b"caBX"})
_WEBP_METADATA = frozenset({b"XMP ", b"EXIF", b"C2PA"})


Pieces = mediacheck.Pieces


def same_decoder_input(before: bytes, after: Buffer, fmt: str, parsed: Parsed | None = None) -> bool:
    """Whether the bytes an image decoder reads to make pixels are the same in both files.

    A fast path, since most tags change no byte of these: False also when a walk finds
    something unexpected, and then the pixels are decoded and compared instead. ``parsed``:
    the tag's remembered walks of both (carriers.walked), and how the new file was spliced.
    """
    return mediacheck.same_pieces(_decoder_input(before, fmt, parsed), _decoder_input(after, fmt, parsed),
                                  splice.made(after, parsed), after)


def _decoder_input(data: Buffer, fmt: str, parsed: Parsed | None = None) -> Pieces | None:
    """The pieces of ``data`` an image decoder reads to make pixels (metadata segments left
    out), or None when the format is not one of these or the walk finds something unexpected.
    The container walkers are the ones reading and writing use (carriers/jpeg, png, riff)."""
    try:
        if fmt == "jpeg":
            return _jpeg_input(data, parsed)
        if fmt == "png":
            return _png_input(data, parsed)
        if fmt == "webp":
            return _webp_input(data, parsed)
    except (MalformedFile, struct.error, IndexError, ValueError):
        return None
    return None


def _jpeg_input(data: Buffer, parsed: Parsed | None) -> Pieces:
    from .carriers import jpeg, walked

    kept: Pieces = []
    for seg in walked.jpeg_layout(data, parsed).segments:
        if seg.marker == jpeg.SOS:  # the rest is image data (and any later tables)
            kept.append((data, seg.marker_pos, len(data)))
        elif seg.marker not in _JPEG_METADATA or (
            seg.marker == jpeg.APP2 and data[seg.payload_start : seg.payload_start + 12] == b"ICC_PROFILE\0"
        ):
            kept.append((data, seg.marker_pos, seg.end))  # fill bytes before a marker left out
    return kept


def _png_input(data: Buffer, parsed: Parsed | None) -> Pieces:
    from .carriers import walked

    chunks = walked.png_chunks(data, parsed)
    kept: Pieces = [(data, c.start, c.end) for c in chunks if c.type not in _PNG_METADATA]
    kept.append((data, chunks[-1].end, len(data)))  # anything after IEND, as it is
    return kept


def _webp_input(data: Buffer, parsed: Parsed | None) -> Pieces:
    from .carriers import riff, walked

    found = walked.webp_chunks(data, parsed)
    kept: Pieces = []
    for chunk in found.chunks:
        if chunk.fourcc == b"VP8X":  # its EXIF and XMP flag bits only say those chunks exist
            body = data[chunk.data_start : chunk.end]
            header = b"VP8X" + bytes([body[0] & ~(riff.VP8X_EXIF | riff.VP8X_XMP)]) + body[1:]
            kept.append((header, 0, len(header)))
        elif chunk.fourcc not in _WEBP_METADATA:
            kept.append((data, chunk.start, found.padded_end(chunk)))
    if not any(c.fourcc == b"VP8X" for c in found.chunks):
        # A writer adding XMP to a simple WebP adds a VP8X header with no feature flags and the
        # bitstream's size as canvas; the simple file stands for exactly that header.
        header = b"VP8X" + _simple_vp8x(data[12:30])  # the chunk's header and the bitstream's, not the image
        kept.insert(0, (header, 0, len(header)))
    kept.append((data, found.end, len(data)))
    return kept


def _simple_vp8x(chunk: bytes) -> bytes:
    ident, body = chunk[:4], chunk[8:]
    if ident == b"VP8 " and body[3:6] == b"\x9d\x01\x2a":
        raw_width, raw_height = struct.unpack("<HH", body[6:10])
        width, height = int(raw_width) & 0x3FFF, int(raw_height) & 0x3FFF
    elif ident == b"VP8L" and body[:1] == b"\x2f":
        bits = int.from_bytes(body[1:5], "little")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    else:
        raise ValueError("not a simple WebP")
    return b"\0\0\0\0" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")


def _pixels(data: bytes, fmt: str) -> tuple[str | None, str | None, bytes | None]:
    """Hash of the first frame as decoded (mode, size, palette, pixels), why not, and the ICC profile.

    Cheaper than ``essence`` (no RGBA conversion, no perceptual code): the comparison needs
    only equality, and this runs twice on every tagged image.
    """
    import hashlib

    from .imagedecode import MAX_PIXELS, open_image

    # The size is checked here, not by turning Pillow's DecompressionBombWarning into an error:
    # warnings.catch_warnings swaps the process's one filter list, which threads calling this at
    # once left holding an "error" filter for good (tests/test_thread_state.py).
    try:
        with open_image(data, fmt) as img:
            if img.width * img.height > MAX_PIXELS:
                return None, f"image has {img.width}x{img.height} pixels, more than the {MAX_PIXELS} decoded", None
            img.seek(0)
            img.load()
            digest = hashlib.sha256(b"%s\0%d\0%d\0" % (img.mode.encode(), img.width, img.height))
            if img.palette is not None:
                digest.update(bytes(img.palette.tobytes()))
            digest.update(repr(sorted((k, v) for k, v in img.info.items() if k == "transparency")).encode())
            digest.update(img.tobytes())
            profile = img.info.get("icc_profile")
    except Exception as exc:  # Pillow raises any type on hostile input
        return None, f"Pillow cannot decode this {fmt.upper()}: {type(exc).__name__}: {exc}", None
    return digest.hexdigest(), None, bytes(profile) if profile else None


def _size(profile: bytes | None) -> str:
    return "none" if profile is None else f"{len(profile)} bytes"


def _check_wav_data(data: bytes) -> None:
    # Not carriers/riff.walk: it stops at the RIFF size, and the point here is a data chunk that
    # a reader may take to run past what its size says.
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        return  # not a RIFF WAV (RF64, W64): the family's own checks apply
    order = "<" if data[:4] == b"RIFF" else ">"
    pos = 12
    for _ in range(_MAX_RIFF_CHUNKS):
        if pos + 8 > len(data):
            return
        ident = data[pos : pos + 4]
        (size,) = struct.unpack(order + "I", data[pos + 4 : pos + 8])
        if ident == b"data":
            if size in (0, 0xFFFFFFFF) and pos + 8 < len(data):
                raise ContentChanged(
                    f"this WAV's data chunk declares {'0' if size == 0 else '0xFFFFFFFF'} bytes but "
                    f"{len(data) - pos - 8} bytes follow it: ffmpeg plays them to the end of the file, so "
                    "metadata written after them would become sound; not written (re-save the WAV with "
                    "a tool that finishes its header, e.g. ffmpeg -i in.wav -c copy out.wav)"
                )
            return
        pos += 8 + size + (size & 1)
