"""Content fingerprints that survive metadata removal and ordinary re-encoding.

Two uses:

- ``fingerprint`` / ``image_code``: the ISCC code (ISO 24138) carried as the C2PA soft binding of
  a signed manifest (Image-Code over 32x32 grey pixels, the normalisation iscc-sdk applies;
  Audio- and Text-Codes for audio and PDFs).
- ``essence``: what the ledger records for every tagged work, so a copy whose metadata was
  stripped can still be matched to it. An ``Essence`` holds an exact hash of the decoded content
  (unchanged by any metadata edit) and a perceptual code that survives lossy handling, compared
  with ``distance`` against the per-kind ``MATCH_THRESHOLD``.

What each kind hashes and fingerprints:

- **image** (jpeg png webp tiff gif heic avif; Pillow, first frame, no EXIF rotation since the
  Orientation tag is metadata): the hash (``v2:``, see ``HASH_V2``) covers the coded data a
  decoder reads: a JPEG's frame, tables and scans, so it is decoded only at the reduced scale the
  perceptual codes need (``draft``: a 12 MP photo at 1/8); a PNG's, WebP's or TIFF's image data
  and what defines its decoding (codedhash.py), so no full-size RGBA copy is made. A lossless
  rewrite (jpegtran, another PNG compression level) now keeps the perceptual code, not the hash.
  GIF, HEIC and AVIF (and a file whose coded data cannot be walked) keep the older hash of the
  size and the RGBA pixels. The perceptual code is the 256-bit ISCC Image-Code (four 8x8 blocks of low DCT
  frequencies of 32x32 grey pixels; its first 64 bits are the usual 64-bit Image-Code), the 32x32
  pixels being each the mean of the part of the picture it covers (grids v2, see ``AREA_SIDE``;
  the C2PA soft binding keeps ISCC's own bicubic normalisation, ``image_code``): against
  100,000 works the 64-bit code (at 8/64) matched 3 % of unrelated images, the 256-bit one none.
  Images above ``imagedecode.MAX_PIXELS`` (Pillow's bomb limit) are refused; near-uniform ones get no
  perceptual code.
- **audio** (mp3 wav aiff flac ogg opus via soundfile/libsndfile; m4a mp4 mov through an
  ``ffmpeg`` subprocess when it is on PATH, first audio track): the hash covers the sample rate,
  channel count and every PCM sample as 32-bit integers, so WAV -> FLAC keeps it; an MP3's
  (``v2:``) covers its MPEG frames instead (``_mp3_hash`` says why). The perceptual
  code is Haitsma-Kalker-style: the mono signal's energy in 17 log-spaced bands between 300 and
  3000 Hz (where lossy codecs keep the signal; so no resampling is needed), over 9 equal time
  segments of the whole clip; each bit is the sign of the band-energy difference between
  neighbouring bands, differenced again between neighbouring segments (8 x 16 = 128 bits). Fixed
  length, so the ledger can index it; it assumes the copy is not cut (codec padding of tens of ms
  is harmless). Silent or sub-second audio gets no perceptual code.
- **text** (pdf via pypdf, or pdfessence.py's reader when no page shows text; epub via zipfile +
  defusedxml): PDF hash = every page's decoded
  content stream plus the decoded data of the XObjects (images, forms) it draws, so a qpdf
  rewrite or any metadata change keeps it and scanned PDFs are not all alike (fonts are not
  hashed); EPUB hash = the text of the spine documents. The perceptual code is the 256-bit ISCC
  Text-Code MinHash (character 13-grams) of the extracted text (PDFs: the first ``pdfessence.MAX_TEXT_PAGES``
  pages); under ``MIN_TEXT_CHARS`` characters there is none.

Thresholds (a match is ``distance <= MATCH_THRESHOLD[kind]``; each is the largest the ledger's
index finds with a probe radius of 1 bit per 16-bit band, or 2 for audio), measured with
``RIGHTSMETA_MEASURE=1 python -m pytest tests/test_ledger.py -k measure -s`` on generated content
(photo-like images of shapes, gradients and noise; music-like 4 s stereo clips; random-text PDFs)
with Pillow 13, libsndfile 1.2.2 and ffmpeg 5.1:

- image, 31/256 = 0.121: 200 works (320x240) under JPEG q70, downscale 50 %, PNG -> JPEG and
  Pillow JPEG re-save: at most 0.062, mean 0.011; 1,000 unrelated 128x96 images against 50 works:
  nearest 0.352. At 100,000 works, JPEG q70 copies of 128x96 images: 199/200 matched (the miss, a
  near-flat gradient, at 0.125), unrelated: 0/200.
- audio, 23/128 = 0.180: 40 clips re-encoded to MP3 96 kbps: at most 0.062, mean 0.034; AAC 128
  kbps: at most 0.141; Opus 64 kbps: at most 0.133; 300 unrelated clips against 40: nearest 0.273.
- text, 31/256 = 0.121: a qpdf or pypdf rewrite keeps the exact hash; one of 12 paragraphs
  rewritten: mean 0.076, at most 0.125; 100 unrelated random-text PDFs against 20: nearest 0.398.

Changed copies (issue 17): an image ``Essence`` also holds ``regions`` (codes of parts of the
picture, recorded with the work) and ``probes`` (codes of flipped, turned, cropped and halved
forms of the file, looked up), an audio one the Chromaprint features (``chroma``, from
``fpcalc``) that the ledger aligns at any offset and tempo within 3 %; see the comments at
``REGION_SIDE`` and ``CHROMA_SECONDS`` and bench/durability.py.

Every decoder is bounded (input size, pixels, decoded bytes before decoding (``imagedecode.decode_budget``),
audio duration, zip members, PDF pages, subprocess time) and never raises for bad input: it
returns an ``Essence`` whose missing fields are None, with the ``reason``. Running out of memory
(``MemoryError``) and the caller's time limit are let through: giving up is not an answer.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from . import imagedecode
from .codedhash import HASH_V2
from .errors import Undecodable
from .imagedecode import PIL_FORMATS, check_decode_size, to_grey, to_rgba

if TYPE_CHECKING:  # imported where used: a run pays only for the kinds of file it meets
    import zipfile

    import soundfile
    from PIL import Image

IMAGE_FORMATS = frozenset({"jpeg", "png", "webp", "tiff", "gif", "heic", "avif"})


def image_code(data: bytes, fmt: str | None = None) -> str | None:
    """``ISCC:...`` Image-Code of the pixels, or None if Pillow cannot decode them. ``fmt``: the
    format's own decoder (``imagedecode.open_image``: HEIC needs it, as no opener is registered
    for it process-wide); without it, whichever Pillow opener takes the bytes."""
    import iscc_core
    from PIL import Image, ImageOps, UnidentifiedImageError


    try:
        with imagedecode.open_image(data, fmt) if fmt is not None else Image.open(io.BytesIO(data)) as img:
            img.draft("L", (256, 256))  # JPEG: decode at reduced size, far faster on large photos
            check_decode_size(img)
            grey = ImageOps.exif_transpose(img).convert("L").resize((32, 32), Image.Resampling.BICUBIC)
            pixels = list(grey.tobytes())
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, Undecodable):
        return None
    code: str = iscc_core.gen_image_code_v0(pixels, bits=64)["iscc"]
    return code


def fingerprint(data: bytes, fmt: str) -> str | None:
    """The ISCC code carried as a C2PA soft binding: Image-, Audio- or Text-Code, or None.

    The Audio-Code is built on Chromaprint features, taken from ``fpcalc`` (Debian package
    libchromaprint-tools) when it is on PATH; without it audio gets no soft binding.
    """
    if fmt in IMAGE_FORMATS:
        return image_code(data, fmt)
    if KIND_OF.get(fmt) == "audio":
        return _audio_code(data, fmt)
    if fmt == "pdf":
        from .pdfessence import pdf_content  # imported here: only PDFs need it

        try:
            _, text = pdf_content(data)
        except MemoryError:
            raise  # the per-file memory bound: the caller reports the file, as essence() does
        except Exception:  # Undecodable, or pypdf's any type on a damaged file: no code, as for an image
            return None
        if len(text) >= MIN_TEXT_CHARS:
            import iscc_core

            code: str = iscc_core.gen_text_code_v0(text, bits=64)["iscc"]
            return code
    return None




def _fpcalc(data: bytes, fmt: str, seconds: int) -> list[int] | None:
    """Chromaprint's raw features of the first ``seconds`` of the audio, signed; None when fpcalc
    is missing, fails, times out or prints no features."""
    import shutil
    import subprocess
    import tempfile

    fpcalc = shutil.which("fpcalc")
    if fpcalc is None or len(data) > MAX_INPUT:
        return None
    with tempfile.NamedTemporaryFile(suffix=f".{fmt}") as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            done = subprocess.run([fpcalc, "-raw", "-signed", "-plain", "-length", str(seconds), tmp.name],
                                  capture_output=True, text=True, timeout=FFMPEG_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired):
            return None
    return _signed_features(done.stdout) or None


def _audio_code(data: bytes, fmt: str) -> str | None:
    features = _fpcalc(data, fmt, 120)
    if not features:
        return None
    import iscc_core

    code: str = iscc_core.gen_audio_code_v0(features, bits=64)["iscc"]
    return code


def _signed_features(text: str) -> list[int] | None:
    """Chromaprint's raw features as the signed 32-bit integers the ISCC Audio-Code is defined on.

    ``fpcalc -raw`` prints them unsigned, and iscc-core overflows on any value with the top bit set
    (most real music has such features); ``-signed`` prints them signed, and values that still come
    unsigned (an fpcalc without that option) are folded into the signed range here.
    """
    try:
        values = [int(x) for x in text.strip().split(",") if x.strip()]
    except ValueError:
        return None
    if any(not -(1 << 31) <= v < (1 << 32) for v in values):
        return None
    return [v - (1 << 32) if v >= (1 << 31) else v for v in values]


# --- essence -------------------------------------------------------------------------------------

KINDS = ("image", "audio", "text")
PERCEPTUAL_BITS: dict[str, int] = {"image": 256, "audio": 128, "text": 256}
MATCH_THRESHOLD: dict[str, float] = {"image": 31 / 256, "audio": 23 / 128, "text": 31 / 256}

# The formats whose exact hash was a hash of the decoded content (no ``codedhash.HASH_V2``
# prefix) before: a ledger holding such entries asks for ``legacy_hash`` too.
LEGACY_HASH_FORMATS = frozenset({"jpeg", "mp3", "png", "webp", "tiff"})

_SOUNDFILE_FORMATS = frozenset({"mp3", "wav", "aiff", "flac", "ogg", "opus"})
_FFMPEG_FORMATS = frozenset({"m4a", "mp4", "mov"})
_TEXT_FORMATS = frozenset({"pdf", "epub"})
KIND_OF: dict[str, str] = {
    **{f: "image" for f in PIL_FORMATS},
    **{f: "audio" for f in _SOUNDFILE_FORMATS | _FFMPEG_FORMATS},
    **{f: "text" for f in _TEXT_FORMATS},
}

MAX_INPUT = 2 * 1024**3
MAX_AUDIO_SECONDS = 3 * 3600
FFMPEG_TIMEOUT = 300.0  # seconds; decoding three hours of AAC takes well under a minute
MIN_TEXT_CHARS = 200  # below this a MinHash says little; such works match by exact hash only
MAX_ZIP_ENTRIES = 10_000
MAX_ZIP_XML = 4 * 1024**2  # container.xml and the package document
MAX_ZIP_DOCUMENT = 32 * 1024**2  # one spine document, decompressed
MAX_ZIP_TOTAL = 256 * 1024**2  # all spine documents, decompressed

# Audio analysis: band energies between 300 and 3000 Hz, HK-style sign bits on a fixed grid.
_AUDIO_SEGMENTS = 9
_AUDIO_BANDS = 17
_AUDIO_LOW, _AUDIO_HIGH = 300.0, 3000.0
_AUDIO_MIN_RATE = 6400  # Nyquist must lie above the top band
_AUDIO_BLOCK = 1 << 16


@dataclass(frozen=True)
class Essence:
    """The decoded content of a file, as the ledger stores and compares it.

    ``kind`` is "image", "audio" or "text" (None when the format has no essence rightsmeta reads);
    ``hash`` is the hex SHA-256 of the decoded content; ``perceptual`` the hex code compared with
    ``distance``; ``reason`` says why a field is None.
    """

    kind: str | None
    hash: str | None
    perceptual: str | None
    reason: str | None = None
    # Images: named codes of regions of the work (recorded when tagging) and of forms of the file
    # (flips, rotations, crops, halves; looked up when verifying). Audio: Chromaprint features.
    regions: tuple[tuple[str, str], ...] = ()
    probes: tuple[tuple[str, str], ...] = ()
    chroma: tuple[int, ...] | None = None
    # The exact hash in the form ledgers recorded before ``hash`` took a versioned form (a JPEG's
    # pixel hash; see HASH_V2), computed only when asked for (``essence(..., legacy=True)``).
    legacy_hash: str | None = None
    # Images: the grey working image the regions were cut from, for cropsearch (with ``probes`` only).
    view: np.ndarray[Any, Any] | None = field(default=None, compare=False, repr=False)
    # Images: which definition of the 32x32 grids ``perceptual``, ``regions`` and ``probes`` were
    # cut with (GRIDS_V1, GRIDS_V2; see the comment at AREA_SIDE), and, when asked for
    # (``essence(..., legacy_grids=True)``), the same file's codes by GRIDS_V1 (no hash), to
    # compare with works a ledger recorded that way.
    grids: int = 2  # GRIDS
    legacy_codes: Essence | None = field(default=None, compare=False, repr=False)

    @property
    def decoded(self) -> bool:
        """False when the content of a kind rightsmeta reads could not be decoded (``reason`` says why):
        such a file was not compared with the ledger, which is not the same as matching nothing."""
        return self.kind is None or self.hash is not None or self.perceptual is not None


def essence(data: bytes, fmt: str, *, probes: bool = True, legacy: bool = False, grids: int = 2,
            legacy_grids: bool = False, password: str | None = None) -> Essence:
    """Hash and perceptual code of the decoded content of ``data`` (a file of format ``fmt``).

    ``probes``: also compute an image's ``probes``, the forms a copy is looked up by (verifying
    needs them, recording a work does not: without them an image takes half the time).
    ``legacy``: also compute ``legacy_hash`` (for formats in ``LEGACY_HASH_FORMATS``), the exact
    hash as older rightsmeta recorded it; worth its cost only when a ledger holds such entries.
    ``grids``: the definition an image's codes are cut with (``GRIDS``, the current one, or
    ``GRIDS_V1``); ``legacy_grids``: also the codes by ``GRIDS_V1`` in ``legacy_codes``, worth
    their cost only when a ledger holds works recorded with them (``Ledger.needs_legacy_grids``).
    ``password``: opens an encrypted PDF (its decrypted content is hashed, as its original's was).
    Never raises for what the bytes hold; missing fields come with a ``reason``.
    """
    if grids not in (GRIDS_V1, GRIDS_V2):
        raise ValueError(f"no image grids of version {grids!r}")
    kind = KIND_OF.get(fmt)
    if kind is None:
        return Essence(None, None, None, f"no essence fingerprint for format {fmt!r}")
    if not data:
        return Essence(kind, None, None, "empty file (0 bytes)")
    if len(data) > MAX_INPUT:
        return Essence(kind, None, None, f"file is larger than {MAX_INPUT} bytes")
    try:
        if kind == "image":
            return _image(data, fmt, legacy, probes, grids, legacy_grids)
        return _audio(data, fmt, legacy) if kind == "audio" else _text(data, fmt, password)
    except Undecodable as exc:
        return Essence(kind, None, None, str(exc))
    except MemoryError:
        raise  # the per-file memory bound was hit: the caller reports the file unreadable, not untagged
    except Exception as exc:  # third-party decoders raise any type on hostile input; the batch goes on
        return Essence(kind, None, None, f"cannot decode the {fmt.upper()}: {type(exc).__name__}: {exc}")


def distance(a: str | None, b: str | None) -> float:
    """Normalised Hamming distance in [0, 1] between two perceptual codes (1.0 if not comparable)."""
    if a is None or b is None or len(a) != len(b) or not a:
        return 1.0
    try:
        return (int(a, 16) ^ int(b, 16)).bit_count() / (4 * len(a))
    except ValueError:
        return 1.0


def _hex(bits: np.ndarray[Any, Any] | bytes, nbits: int) -> str:
    raw = bits if isinstance(bits, bytes) else np.packbits(bits.astype(np.uint8)).tobytes()
    return raw[: nbits // 8].hex()


# --- images --------------------------------------------------------------------------------------


def _decode_image(data: bytes, fmt: str, coded: str | None, legacy: bool) -> tuple[Image.Image, tuple[int, int], str | None]:
    """The grey working image, the picture's size in pixels, and the v1 pixel hash when it is
    needed (no coded hash, or ``legacy``)."""
    from PIL import Image, UnidentifiedImageError


    if coded is not None and not legacy:
        # imagedecode.py: a plain TIFF or still WebP decoded without Pillow's open (same pixels)
        plain = imagedecode.plain_grey(data, fmt)
        if plain is not None:
            return plain, plain.size, None
    try:
        with imagedecode.open_image(data, fmt) as img:
            check_decode_size(img)
            img.seek(0)
            full = img.size
            drafted = coded is not None and fmt == "jpeg"
            if drafted:
                # The hash comes from the coded data, so no pixel is needed at full size: libjpeg
                # decodes the luma at 1/2, 1/4 or 1/8 scale (DCT scaling), no smaller than the
                # working image.
                img.draft("L", _working_size(full))
            # imagedecode.py: the same grey from libpng/libwebp/libtiff, cheaper (unless RGBA is hashed)
            luma = None if coded is None or legacy else imagedecode.grey(img, data)
            if luma is None:
                img.load()
                luma = to_grey(img)
            exact = None
            if coded is None or legacy:
                rgba = to_rgba(_full_decode(data) if drafted else img)
                exact = _pixel_hash(rgba)
                del rgba
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Undecodable(f"image refused as a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise Undecodable(f"Pillow cannot decode this {fmt.upper()}") from exc
    except OSError as exc:
        raise Undecodable(f"cannot decode the {fmt.upper()}: {exc}") from exc
    return luma, full, exact


def _image(data: bytes, fmt: str, legacy: bool, probes: bool, grids: int, legacy_grids: bool) -> Essence:
    coded = _coded_hash(data, fmt)
    luma, full, exact = _decode_image(data, fmt, coded, legacy)
    # Old ledgers hold the pixel hash of JPEG, PNG, WebP and TIFF images; it is computed only when
    # asked for (``legacy``).
    found = Essence("image", coded, None, legacy_hash=exact, grids=grids) if coded else Essence("image", exact, None, grids=grids)
    factor = max(1, max(luma.size) // REGION_SIDE)
    # A whole-factor box average, the cheapest resampling; a JPEG comes already reduced (draft).
    view = luma.reduce(factor) if factor > 1 else luma
    # The picture's extent in the view's pixels: a reduction by a whole factor (libjpeg's or
    # Pillow's) rounds the size up, its last pixels averaging a narrower strip.
    scale = factor * max(1, round(max(full) / max(luma.size)))
    extent = (min(view.width, full[0] / scale), min(view.height, full[1] / scale))
    del luma
    found = _codes(found, view, extent, full, probes, grids)
    if legacy_grids and grids != GRIDS_V1:
        older = _codes(Essence("image", None, None, grids=GRIDS_V1), view, extent, full, probes, GRIDS_V1)
        found = replace(found, legacy_codes=older)
    # The view is for the crop search of a copy looked up (``probes``); a work recorded needs none.
    return replace(found, view=np.asarray(view)) if probes else found


def _codes(found: Essence, view: Image.Image, extent: tuple[float, float], full: tuple[int, int], probes: bool,
           grids: int) -> Essence:
    """``found`` with the perceptual code, regions and (``probes``) probes of the working image
    ``view`` (the picture spanning ``extent`` of its pixels) of a picture of ``full`` pixels, cut
    by the grids of version ``grids``."""
    layout = _layout(full, probes)
    cutter = _Grids(view) if grids == GRIDS_V1 else _AreaGrids(view, extent)
    cut = cutter.of(layout.boxes)
    # The spread of the grids it decides on: the whole picture's, and the corner squares' (a
    # flat one is not kept: a sky or a border would match every other flat corner).
    spread = _spread(cut[list(layout.judged)]).tolist()
    if spread[0] < _IMAGE_MIN_STD:
        return replace(found, reason="image too uniform for a perceptual fingerprint")
    flat = {i for i, std in zip(layout.judged, spread, strict=True) if std < _IMAGE_MIN_STD}
    kept = [i for i in range(layout.regions) if i not in flat]
    names = [layout.names[i] for i in kept]
    stacked = cut if len(kept) == len(cut) else cut[kept]
    if probes:
        whole = cut[0]
        also = [i for i in range(layout.regions, len(cut)) if i not in flat]
        names += ["as it is", *_DIHEDRAL, *(layout.names[i] for i in also)]
        turned = np.stack([whole] + [turn(whole) for turn in _DIHEDRAL.values()])
        # A copy flipped or turned and then cut: its parts undone are the work's parts (see
        # region_pair_allowed), so they are the same grids turned, not new cuts.
        parts = cut[also]
        names += [f"{form}, {layout.names[i]}" for form in _DIHEDRAL for i in also]
        stacked = np.concatenate([stacked, turned, parts, *(turn(parts) for turn in _DIHEDRAL.values())])
    codes = list(zip(names, _image_hashes(stacked), strict=True))
    return replace(found, perceptual=codes[0][1], regions=tuple(codes[: len(kept)]), probes=tuple(codes[len(kept) :]))


def _spread(grids: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``grids.std(axis=(1, 2))`` of a stack of 32x32 grids (written into), by the same operations
    as numpy's ``_var`` in the same order (the same bits, checked in tests/test_codes_fast.py)
    without its Python layers: its call cost more than its arithmetic on five grids."""
    # One axis of 1,024 contiguous values: numpy sums the two axes of a grid as one (pairwise).
    cells = grids.reshape(len(grids), 1024)
    mean = np.add.reduce(cells, axis=1, keepdims=True)
    mean /= 1024
    cells -= mean
    np.square(cells, out=cells)
    variance = np.add.reduce(cells, axis=1)
    variance /= 1024
    out: np.ndarray[Any, Any] = np.sqrt(variance, out=variance)
    return out


def _full_decode(data: bytes) -> Any:
    from PIL import Image

    img = Image.open(io.BytesIO(data), formats=["JPEG"])
    img.load()
    return img


def _coded_hash(data: bytes, fmt: str) -> str | None:
    if fmt == "jpeg":
        return _jpeg_hash(data)
    from .codedhash import CODED_HASHES  # imported here: only images need it

    coded = CODED_HASHES.get(fmt)
    return coded(data) if coded is not None else None


def _pixel_hash(rgba: Any) -> str:
    """The v1 exact hash: SHA-256 of the size and the RGBA pixels (GIF, HEIC and AVIF use it, and
    the other formats when their coded data cannot be walked)."""
    digest = hashlib.sha256(b"rightsmeta-image-v1\0%d\0%d\0" % rgba.size)
    step = max(1, (1 << 22) // max(1, 4 * rgba.width))  # ~4 MiB strips: no second full-size copy
    for top in range(0, rgba.height, step):
        strip = rgba if step >= rgba.height else rgba.crop((0, top, rgba.width, min(rgba.height, top + step)))
        digest.update(strip.tobytes())
    return digest.hexdigest()


def _jpeg_hash(data: bytes) -> str | None:
    """The v2 exact hash of a JPEG: SHA-256 of the bytes a decoder reads (frame header, tables,
    scans with their entropy-coded data, Adobe's colour transform), which no metadata edit touches
    (``carriers.jpeg.coded_ranges``). None when the walk fails: the pixel hash is used then."""
    from .carriers.jpeg import coded_ranges
    from .errors import RightsmetaError

    try:
        ranges = coded_ranges(data)
    except RightsmetaError:
        return None
    digest = hashlib.sha256(b"rightsmeta-jpeg-v2\0")
    view = memoryview(data)
    for start, end in ranges:
        digest.update(b"%d\0" % (end - start))
        digest.update(view[start:end])
    return HASH_V2 + digest.hexdigest()


# --- image regions: what survives crops, banners, flips and rotations ---------------------------
#
# A 256-bit DCT code of the whole picture does not survive a crop: measured on camera-like photos
# (tests/material.py), cutting 2 % per side moves it by 32 bits, 5 % by 72 (unrelated pictures lie
# 78 bits or more apart). So a work is recorded with codes of several regions, and a copy is
# looked up with codes of several forms of itself:
#
# - the work (``regions``): the whole picture; centred crops keeping 90, 80, 70 and 60 % of each
#   side; the centred square, 4:5 and 16:9 crops (when they differ from the picture's own shape);
#   its top, bottom, left and right halves.
# - the copy (``probes``): the whole picture and its seven flips and quarter turns; centred crops
#   keeping 98 to 90 % of each side (a crop between the work's 10 % steps then lands within 1 % of
#   one of them); its four halves. A banner or sticker covering up to a quarter leaves one half
#   untouched. Its corner squares (below), and all these parts again in each flip and turn undone
#   (the same grids turned: a copy flipped or turned and then cut).
#
# Each probe is compared only with the regions it can be (``region_pair_allowed``, after
# ``_corner_boxes``); measured on 30 photos x 26
# handlings the true pair lay at most 12 bits apart, unrelated pictures at least 78 bits (grids v1;
# v2's figures are at AREA_SIDE).
#
# Every box is in normalised coordinates (a box means the same part of the picture at any size)
# and is cut into a 32x32 grid of mean grey levels (grids v2, see AREA_SIDE; works recorded
# before ledger schema 5 were resized bicubically, grids v1) from one grey working image of
# REGION_SIDE to twice that on its longest side (a JPEG decoded at that scale by libjpeg's DCT
# scaling, other formats reduced by a whole factor), its edges kept between pixels, not rounded.
# The flips and turns of the whole picture are flips and turns of its 32x32 grid, and all codes go
# through one batched DCT. Before grids v1,
# each box was cut at whole pixels from a 512-pixel copy of the full decode, resized on its own
# (55 ms an image; README "Speed" has the measurements). Codes of works recorded that way lie a few
# bits from grids v1's, which such works are compared with (160 bench/corpus.py images: mean 2.7, at most 16 of 256 bits; a REGION_SIDE
# of 128 gave mean 4.6, at most 26), and such ledgers still find handled copies
# (tests/test_essence_fast.py restates the old definition).

REGION_SIDE = 256
_CROPS = (0.9, 0.8, 0.7, 0.6)
_PROBE_CROPS = (0.98, 0.96, 0.94, 0.92, 0.9)
_ASPECTS = {"square": 1.0, "4:5": 0.8, "16:9": 16 / 9}
_HALVES = {"top half": (0, 0, 1, 0.5), "bottom half": (0, 0.5, 1, 1), "left half": (0, 0, 0.5, 1), "right half": (0.5, 0, 1, 1)}
# The copy's flips and turns, as what undoes them (a copy turned clockwise is turned back), on the
# last two axes (one grid or a stack of them).
_DIHEDRAL: dict[str, Callable[[np.ndarray[Any, Any]], np.ndarray[Any, Any]]] = {
    "mirrored": lambda a: a[..., ::-1],
    "flipped vertically": lambda a: a[..., ::-1, :],
    "rotated 180": lambda a: a[..., ::-1, ::-1],
    "rotated 90 clockwise": lambda a: np.rot90(a, 1, axes=(-2, -1)),  # anticlockwise, as PIL's ROTATE_90
    "rotated 90 anticlockwise": lambda a: np.rot90(a, 3, axes=(-2, -1)),
    "transposed": lambda a: np.swapaxes(a, -1, -2),
    "transversed": lambda a: np.swapaxes(a[..., ::-1, ::-1], -1, -2),
}
TURNS = frozenset(_DIHEDRAL)  # the names of the flipped and turned forms a match's ``how`` may give

Box = tuple[float, float, float, float]


def _working_size(full: tuple[int, int]) -> tuple[int, int]:
    scale = REGION_SIDE / max(full)
    return (max(1, math.ceil(full[0] * scale)), max(1, math.ceil(full[1] * scale)))


class _Grids:
    """Grids v1: 32x32 grey grids of normalised boxes of one picture, each box resized
    bicubically from the working image. Kept only for ledgers holding works recorded with them
    (``Ledger.needs_legacy_grids``): their copies are looked up by codes cut the same way."""

    def __init__(self, view: Image.Image) -> None:
        self.image = view

    def of(self, boxes: Sequence[Box]) -> np.ndarray[Any, Any]:
        """(len(boxes), 32, 32) grey levels of each box, resized bicubically from the working copy
        (box edges between pixels are kept, not rounded: a 1 % shift of a window moves its code).

        Each box is one resize of its own: boxes spanning the same columns cannot share a
        horizontal pass, since Pillow 13 picks the order of its two passes per resize (measured:
        a tall image's box is resampled vertically first), and the rounding between the passes
        depends on the order."""
        from PIL import Image

        w, h = self.image.size
        bicubic = Image.Resampling.BICUBIC
        # The grids are pasted into one image, converted to numpy once: converting each small
        # image cost more than its resize. The cores are called directly for the same reason
        # (Image.resize wraps each result in a new Image). A box asked for twice (a region that
        # is also a probe) is resized once.
        canvas = Image.new("L", (32, 32 * len(boxes)))
        core = self.image.im
        done: dict[Box, Any] = {}
        for i, box in enumerate(boxes):
            if box not in done:
                x0, y0, x1, y1 = box
                done[box] = core.resize((32, 32), bicubic, (x0 * w, y0 * h, x1 * w, y1 * h))
            canvas.im.paste(done[box], (0, 32 * i, 32, 32 * i + 32))
        return np.asarray(canvas, dtype=np.float64).reshape(len(boxes), 32, 32)


# Grids v2 (what works are recorded with since ledger schema 5): each cell of a box's 32x32 grid
# is the exact mean grey level of the part of the picture it covers, pixels cut by the cell's
# edges counted by the share they cover. From a summed-area table (integral image) S of the
# working image, zero-padded: S interpolated bilinearly at (x, y) is the exact integral of the
# piecewise-constant picture over [0, x] x [0, y], so a cell's sum is four such values, and every
# cell of every box is computed at once. Elementwise float64 only (no BLAS, no reduction whose
# order a library picks): the same bits on every machine. The table is built on the working
# image reduced to AREA_SIDE to twice that on its longest side (a whole-factor box average): the
# table costs ~2 ns an element (its sums in lanes, see _AreaGrids.__init__), and a mean over a
# cell needs no finer picture.
# Grids v1 (``_Grids``, each box resized bicubically by Pillow) cannot be made cheaper bit for
# bit: a work's 16 grids cost 30.0 M instructions an image, v2's 3.4 M (callgrind, the 80 JPEG,
# PNG, WebP and TIFF images of a bench/corpus.py mix; best of 20 on an idle machine: 2.16 against
# 0.43 ms). The codes of the two lie up to ~26 bits
# apart, so a ledger compares each work with the copy's codes of the work's own grids. AREA_SIDE:
# on 20 photos x 21 handlings (not the uneven crops) the true pairs lay at mean 1.6, at most 12
# bits (v1: 2.3, 12; AREA_SIDE 96: 2.0, 12; 192: 1.3, 10, at twice the table's cost; 64: 3.5,
# 36), unrelated ones 86 or more.
AREA_SIDE = 128
_STEPS = np.arange(33) / 32  # a box's 33 grid lines, as fractions of its side


class _AreaGrids:
    """Grids v2: exact area means of the cells of normalised boxes (see AREA_SIDE) of a picture
    spanning ``extent`` (width, height; by default all) of the pixels of ``view``."""

    def __init__(self, view: Image.Image, extent: tuple[float, float] | None = None) -> None:
        factor = max(1, max(view.size) // AREA_SIDE)
        # The summed-area table, transposed: table[x, y] is the sum of small[:y, :x]. Integers: each
        # partial sum is exact, whatever the order. A cumulative sum in numpy adds one element at a
        # time (~3 ns each), so the sums run in lanes of 64-bit words: the column sums four to a
        # word (at most 255 x 255 < 2**16: the picture is under 2 x AREA_SIDE a side), then, on the
        # transposed, the sums of those two to a word (at most 255**3 < 2**31); no lane carries into
        # the next. Half the instructions and a third of the time of two plain cumulative sums.
        small = np.asarray(view.reduce(factor) if factor > 1 else view)
        h, w = small.shape
        if small.dtype != np.uint8 or max(h, w) >= 2 * AREA_SIDE:  # what the lanes' bounds assume
            raise ValueError(f"grids v2 need 8-bit grey under {2 * AREA_SIDE} px a side, not {small.dtype} {w}x{h}")
        columns = np.empty((h, -(-w // 4) * 4), np.uint16)
        columns[:, w:] = 0
        columns[:, :w] = small
        self.size = (w, h)
        width, height = extent or view.size
        # Pillow's reduce rounds up too: the picture spans a fraction of the last pixels.
        self.extent = (min(w, width / factor), min(h, height / factor))
        np.cumsum(columns.view(np.uint64), axis=0, out=columns.view(np.uint64))
        rows = np.empty((w, -(-h // 2) * 2), np.int32)
        rows[:, h:] = 0
        rows[:, :h] = columns[:, :w].T
        np.cumsum(rows.view(np.uint64), axis=0, out=rows.view(np.uint64))
        self.table = np.empty((w + 1, h + 1))
        self.table[0] = 0
        self.table[1:, 0] = 0
        self.table[1:, 1:] = rows[:, :h]

    def of(self, boxes: Sequence[Box]) -> np.ndarray[Any, Any]:
        """(len(boxes), 32, 32) mean grey levels of each box's cells."""
        at, fx, fy, area = _area_geometry(self.size, self.extent, tuple(boxes))
        h = self.size[1]
        flat = self.table.ravel()
        # The table at each crossing's pixel and the one below (``at``), and the next across of
        # each ("wrap": take's cheapest mode, with no error path; every index is in range by
        # construction, the last crossing's last neighbour being the table's last element, and
        # tests/test_codes_fast.py compares the grids with main's for random boxes and extents).
        # np.take reads the indices through a writable array: the read-only ``at`` is a view of one
        # only this reads, through its base (see _area_geometry).
        index = at.base
        assert isinstance(index, np.ndarray) and index.flags.writeable and index.shape == at.shape
        left = np.take(flat, index, mode="wrap")  # s00, s10
        right = np.take(flat[h + 1 :], index, mode="wrap")  # s01, s11
        # In place, in this order: upper = s00 + fx (s01 - s00) and lower = s10 + fx (s11 - s10)
        # (both at once), then S = upper + fy (lower - upper).
        right -= left
        right *= fx
        right += left
        upper, lower = right
        lower -= upper
        lower *= fy
        lower += upper  # S at every crossing of grid lines
        # A cell's sum from the crossings at its corners, in this order: S(right, bottom) -
        # S(right, top) - S(left, bottom) + S(left, top). On the crossings of all boxes as one flat
        # array, each operation runs over contiguous memory; the sums it makes past a box's last
        # row or column (into the next box) belong to no cell and are dropped. Into s00's memory,
        # no longer needed.
        crossings, sums = lower.ravel(), left[0].ravel()
        n = crossings.size
        np.subtract(crossings[34:], crossings[1 : n - 33], out=sums[: n - 34])
        sums[: n - 34] -= crossings[33 : n - 1]
        sums[: n - 34] += crossings[: n - 34]
        cells: np.ndarray[Any, Any] = np.divide(left[0, :, :32, :32], area)
        return cells


@functools.lru_cache(maxsize=4)
def _area_geometry(size: tuple[int, int], extent: tuple[float, float],
                   boxes: tuple[Box, ...]) -> tuple[np.ndarray[Any, Any], ...]:
    """Where ``_AreaGrids.of`` reads the summed-area table of ``size`` (w, h) pixels for the
    picture spanning ``extent`` of them cut into ``boxes``: each crossing's table index (the pixel
    it falls in, then the one below it), its fractions of a pixel across (fx) and down (fy), and
    each cell's area (the divisor).

    Pictures of one size (a folder from one camera) share all of it, so it is kept for the last
    few sizes (~0.7 MB each, 1.4 with probes), read-only so that threads may share it. The indices
    are a read-only view of a writable array: np.take only reads its indices, but it asks for a
    writable array (PyArray_TakeFrom converts them with NPY_ARRAY_DEFAULT) and copies a read-only
    one, which cost ten times the gather; ``of`` hands it the view's base. fx and fy are kept as
    whole (boxes, 33, 33) arrays, not broadcast, so that the interpolation's operations run over
    contiguous memory."""
    w, h = size
    width, height = extent
    b = np.array(boxes, dtype=np.float64)
    xs = (b[:, :1] + (b[:, 2:3] - b[:, :1]) * _STEPS) * width  # (boxes, 33) grid lines in pixels
    ys = (b[:, 1:2] + (b[:, 3:4] - b[:, 1:2]) * _STEPS) * height
    ix = np.minimum(xs.astype(np.intp), w - 1)  # the pixel each line falls in (the last line on the edge)
    iy = np.minimum(ys.astype(np.intp), h - 1)
    shape = (len(boxes), 33, 33)
    fx = np.broadcast_to((xs - ix)[:, None, :], shape).copy()
    fy = np.broadcast_to((ys - iy)[:, :, None], shape).copy()
    at = (ix * (h + 1))[:, None, :] + iy[:, :, None]  # in the transposed table
    at = np.stack([at, at + 1])  # and the pixel below
    area = (ys[:, 1:] - ys[:, :-1])[:, :, None] * (xs[:, 1:] - xs[:, :-1])[:, None, :]
    shared = at.view()
    for made in (shared, fx, fy, area):
        made.flags.writeable = False
    return shared, fx, fy, area


GRIDS_V1, GRIDS_V2 = 1, 2
GRIDS = GRIDS_V2  # what new works are recorded with


def _centred(ratio_w: float, ratio_h: float) -> Box:
    return ((1 - ratio_w) / 2, (1 - ratio_h) / 2, (1 + ratio_w) / 2, (1 + ratio_h) / 2)


def _region_boxes(shape: float) -> list[tuple[str, Box]]:
    """The work's regions beyond the whole picture, for a picture of aspect ratio ``shape``."""
    out = [(f"centre {round(c * 100)} %", _centred(c, c)) for c in _CROPS]
    for name, ratio in _ASPECTS.items():
        if abs(shape / ratio - 1) < 0.04:
            continue
        box = _centred(ratio / shape, 1.0) if shape > ratio else _centred(1.0, shape / ratio)
        out.append((f"centre {name}", box))
    return out + [(name, (float(a), float(b), float(c), float(d))) for name, (a, b, c, d) in _HALVES.items()]


_PROBE_BOXES: list[tuple[str, Box]] = [(f"centre {round(c * 100)} %", _centred(c, c)) for c in _PROBE_CROPS] + [
    (name, (float(a), float(b), float(c), float(d))) for name, (a, b, c, d) in _HALVES.items()
]


# Uneven crops (e.g. 20 % off the left and 10 % off the top) defeat the centred regions: a window
# 1 % off moves the code by 8 to 36 bits (measured on tests/material.py photos), so covering every
# combination of four cuts with a grid of windows would take hundreds of codes. But a crop that
# cuts at most two adjacent sides keeps one corner of the work, at the same pixel scale: the
# square of P pixels at that corner is the same pixels in the work and in the copy. So the work
# records, at each corner, the square of the largest P on a fixed ladder (64 px x sqrt 2 steps)
# within 80 % of its shorter side, and the copy probes, at each corner, every ladder P between
# 56 % and 100 % of its own shorter side (a copy cut at most 20 % a side holds the work's square:
# P <= 0.8 x the work's side <= the copy's side, and P > 0.8 / sqrt 2 x the work's side). Not
# covered: crops that cut three or four sides unevenly (no corner kept), or a crop then resized.
# P is in the file's own pixels; the square is cut from the working image at P times its scale.

WHOLE = "whole"  # the name of the work's region that is the whole picture
_CORNERS = ("top left", "top right", "bottom left", "bottom right")
_LADDER = tuple(round(64 * 2 ** (k / 2)) for k in range(18))  # 64 ... 16384 px
_CORNER_KEEP = 0.8
_CORNER_NAME = re.compile(r"^(top|bottom) (left|right) \d+ px$")


def _corner_boxes(full: tuple[int, int], work: bool) -> list[tuple[str, Box]]:
    """Corner squares: one size per corner for a work, the sizes it may hold for a copy."""
    width, height = full
    short = min(full)
    if work:
        sides = [p for p in _LADDER if p <= _CORNER_KEEP * short][-1:]
    else:
        sides = [p for p in _LADDER if 0.55 * short < p <= short]  # 0.55: below 0.8 / sqrt 2, for the rounding
    out = []
    for side in sides:
        w, h = side / width, side / height
        for corner in _CORNERS:
            left = 0.0 if corner.endswith("left") else 1 - w
            top = 0.0 if corner.startswith("top") else 1 - h
            out.append((f"{corner} {side} px", (left, top, left + w, top + h)))
    return out


class _Layout(NamedTuple):
    """The boxes ``_codes`` cuts a picture into: the work's regions, then (with probes) the boxes
    a copy is looked up by."""

    names: tuple[str, ...]
    boxes: tuple[Box, ...]
    regions: int  # how many of them are the work's regions
    judged: tuple[int, ...]  # those whose spread decides: the whole picture (0), the corner squares


@functools.lru_cache(maxsize=8)
def _layout(full: tuple[int, int], probes: bool) -> _Layout:
    """The boxes of a picture of ``full`` pixels; pictures of one size share them."""
    regions = [(WHOLE, (0.0, 0.0, 1.0, 1.0))] + _region_boxes(full[0] / full[1]) + _corner_boxes(full, work=True)
    named = regions + (_PROBE_BOXES + _corner_boxes(full, work=False) if probes else [])
    judged = tuple(i for i, (name, _) in enumerate(named) if i == 0 or _CORNER_NAME.match(name))
    return _Layout(tuple(name for name, _ in named), tuple(box for _, box in named), len(regions), judged)


# Halves and corners as the quarters of the picture they cover, so that a flip or turn (applied to
# the 2x2 mask as to a grid) says which part of the work a part of a flipped or turned copy shows.
_QUARTERS = {
    "top half": ((1, 1), (0, 0)), "bottom half": ((0, 0), (1, 1)), "left half": ((1, 0), (1, 0)),
    "right half": ((0, 1), (0, 1)), "top left": ((1, 0), (0, 0)), "top right": ((0, 1), (0, 0)),
    "bottom left": ((0, 0), (1, 0)), "bottom right": ((0, 0), (0, 1)),
}


@functools.lru_cache(maxsize=64)
def _undone(form: str, part: str) -> str:
    """The work's part that the part ``part`` of a copy flipped or turned as ``form`` names shows."""
    corner = _CORNER_NAME.match(part)
    quarter = f"{corner[1]} {corner[2]}" if corner else part
    if quarter not in _QUARTERS:
        return part  # the whole or a centred crop: the same part of the work
    mask = _DIHEDRAL[form](np.array(_QUARTERS[quarter])).tolist()
    shown = next(name for name, quarters in _QUARTERS.items() if mask == [list(q) for q in quarters])
    return part.replace(quarter, shown, 1)


def probe_form(probe: str) -> str | None:
    """The flip or turn (a name in ``TURNS``) of the copy that ``probe`` undoes, None for the copy as it is."""
    form = probe.partition(", ")[0]
    return form if form in _DIHEDRAL else None


def same_part(probe: str, region: str) -> bool:
    """Whether the copy's part ``probe`` (turned back, if turned) and the work's ``region`` are the
    same share of each picture: a half with the same half, a centred share with the same share.
    Then the copy frames the picture as the work does, so such a match shows no cut (a picture
    alike top and bottom matches half to half as closely as whole to whole). Corner squares are
    sized in pixels, not in shares: never the same part."""
    form, _, part = probe.partition(", ")
    if form in _DIHEDRAL:
        probe = _undone(form, part) if part else WHOLE
    elif probe == "as it is":
        probe = WHOLE
    return not _CORNER_NAME.match(probe) and probe == region


def turned_part(probe: str) -> bool:
    """Whether ``probe`` names a part of a copy flipped or turned back (``mirrored, top half``)."""
    form, _, part = probe.partition(", ")
    return bool(part) and form in _DIHEDRAL


def region_pair_allowed(probe: str, region: str) -> bool:
    """Whether a copy's ``probe`` may be compared with a work's ``region`` (see the comment at
    REGION_SIDE).

    A flipped or turned form of the copy (``mirrored``, or ``mirrored, top half``) undone is the
    copy unflipped, or its part: the part of the work it shows is compared as the copy's own
    parts are (the copy's top left corner, mirrored, with the work's top right one)."""
    form, _, part = probe.partition(", ")
    if form in _DIHEDRAL:
        probe = _undone(form, part) if part else "as it is"
    if _CORNER_NAME.match(probe) or _CORNER_NAME.match(region):
        return probe == region
    if probe in _HALVES or region in _HALVES:
        return probe == region
    return True  # the copy as it is or a centred crop of it, against the whole work or a crop of it


# --- audio: Chromaprint features, matched at any offset -----------------------------------------
#
# The 128-bit code above covers a whole clip; a trimmed copy or an excerpt needs features in time.
# Chromaprint's (``fpcalc -raw``, about 8 per second, each 32 bits) are compared as AcoustID does:
# slide one sequence over the other and count differing bits. Tempo changes within 3 % are met by
# stretching the copy's sequence by 0.97 ... 1.03 before sliding.

CHROMA_SECONDS = 600  # features of at most the first ten minutes are recorded
CHROMA_MIN_FEATURES = 40  # about five seconds: less says too little to match at an offset


def chroma_features(data: bytes, fmt: str) -> tuple[int, ...] | None:
    """Unsigned 32-bit Chromaprint features of the audio, or None (no fpcalc, too short, undecodable)."""
    features = _fpcalc(data, fmt, CHROMA_SECONDS)
    if not features or len(features) < CHROMA_MIN_FEATURES:
        return None
    return tuple(v & 0xFFFFFFFF for v in features)


_DCT = np.cos(np.pi / 32 * (np.arange(32)[None, :] + 0.5) * np.arange(32)[:, None])
_IMAGE_MIN_STD = 2.0  # grey levels; flatter images would all share one code


def _image_hash(pixels: np.ndarray[Any, Any]) -> str:
    """256-bit ISCC Image-Code v0 of 32x32 grey pixels (its first 64 bits are the usual Image-Code)."""
    return _image_hashes(pixels[None])[0]


def _image_hashes(pixels: np.ndarray[Any, Any]) -> list[str]:
    """``_image_hash`` of each of a stack of 32x32 grids, in one pass.

    The same bits as ``iscc_core.soft_hash_image_v0(pixels, 256)`` (checked in the tests), far
    faster: four 8x8 blocks of low DCT frequencies, each bit a coefficient above its block's median.
    """
    low = _DCT[:16]  # only the 16x16 lowest frequencies feed the four blocks
    # Rounding (exact zeros stay zero, as in iscc_core) as np.round(x, 6) does it: times 10**6,
    # to nearest even, divided by 10**6; in place.
    coefficients = low @ pixels @ low.T
    coefficients *= 1e6
    np.rint(coefficients, out=coefficients)
    coefficients /= 1e6
    # The four 8x8 blocks (top left, top right, bottom left, bottom right), 64 values each.
    blocks = coefficients.reshape(-1, 2, 8, 2, 8).transpose(0, 1, 3, 2, 4).reshape(-1, 4, 64)
    # Each block's median, as np.median takes it (the mean of the 32nd and 33rd values), by one
    # sort (np.median's own checks cost as much again; a partition of 64 values costs more than
    # numpy's vectorised sort). Whichever of two equal values (0.0, -0.0) it gives, the
    # comparisons are the same.
    middle = np.sort(blocks, axis=2)[:, :, 31:33]
    median = np.add(middle[:, :, :1], middle[:, :, 1:])
    median /= 2
    codes = np.packbits(np.greater(blocks, median).reshape(len(pixels), 256), axis=1).tobytes().hex()
    return [codes[start : start + 64] for start in range(0, len(codes), 64)]


# --- audio ---------------------------------------------------------------------------------------


def _audio(data: bytes, fmt: str, legacy: bool) -> Essence:
    import soundfile

    if fmt in _FFMPEG_FORMATS:
        return _with_chroma(*_audio_ffmpeg(data, fmt), data, fmt)
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as fh:
            found, seconds = _audio_pcm(fh, fmt)
    except soundfile.LibsndfileError as exc:
        raise Undecodable(f"libsndfile cannot decode this {fmt.upper()}: {exc.error_string}") from exc
    coded = _mp3_hash(data) if fmt == "mp3" and found.hash is not None else None
    if coded is not None:  # the sample hash is the older form, at no extra cost
        found = replace(found, hash=coded, legacy_hash=found.hash if legacy else None)
    return _with_chroma(found, seconds, data, fmt)


_MPEG_SYNC = re.compile(rb"\xff[\xe0-\xff]")  # 11 set bits: an MPEG audio frame header starts


def _mp3_hash(data: bytes) -> str | None:
    """The v2 exact hash of an MP3: SHA-256 of its MPEG frames, from the first frame sync after any
    ID3v2 tag to the end, less an ID3v1 or APEv2 tag there. The samples' hash (v1) depended on the
    tags: without a Xing/LAME frame libsndfile estimates the frame count from the file's size, so
    adding or stripping an ID3 tag changed how many samples were hashed. None when the tags
    cannot be walked: the sample hash is used then."""
    from .mediacheck import id3v2_end

    try:
        start = id3v2_end(data)
    except ValueError:
        return None
    end = len(data)
    if end - start >= 128 and data[end - 128 : end - 125] == b"TAG":
        end -= 128
    if end - start >= 32 and data[end - 32 : end - 24] == b"APETAGEX":
        size = int.from_bytes(data[end - 20 : end - 16], "little")  # items and footer
        header = 32 if data[end - 9] & 0x80 else 0  # flags bit 31: a header precedes the items
        end -= size + header
    sync = _MPEG_SYNC.search(data, start, max(start, end))
    if sync is None or end <= sync.start():
        return None
    digest = hashlib.sha256(b"rightsmeta-mp3-v2\0")
    digest.update(memoryview(data)[sync.start() : end])
    return HASH_V2 + digest.hexdigest()


def _audio_ffmpeg(data: bytes, fmt: str) -> tuple[Essence, float]:
    import shutil
    import subprocess
    import tempfile

    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return Essence(None, None, None, f"decoding {fmt.upper()} audio needs ffmpeg, which is not on PATH"), 0.0
    with tempfile.TemporaryDirectory(prefix="rightsmeta-") as tmp:
        src, out = os.path.join(tmp, "in"), os.path.join(tmp, "out.wav")
        with open(src, "wb") as fh:
            fh.write(data)  # a file, not a pipe: MP4s with the index at the end need seeking
        sounds = _sound_tracks(data)
        silent: Essence | str | None = None
        if sounds == 0:
            # No track's handler is sound: the video packets are hashed first, and ffmpeg's list of
            # the file's streams (the same run) says whether it finds audio after all. A failed
            # audio run before the hash doubled ffmpeg's time (a 5 s 640x360 MP4: 135 -> 68 ms of CPU).
            silent, heard = _video_packets(ffmpeg, src, fmt)
            if not heard:
                return _silent_video(silent), 0.0
        cmd = [
            ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", src,
            "-map", "0:a:0", "-vn", "-sn", "-dn", "-t", str(MAX_AUDIO_SECONDS + 1),
            "-c:a", "pcm_s16le", "-rf64", "auto", "-f", "wav", out,
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=FFMPEG_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as exc:
            raise Undecodable(f"ffmpeg took more than {FFMPEG_TIMEOUT:.0f} s to decode the audio") from exc
        if done.returncode != 0:
            if silent is not None:  # no sound track, and the audio ffmpeg listed does not decode
                return _silent_video(silent), 0.0
            message = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise Undecodable(f"ffmpeg cannot decode the audio of this {fmt.upper()}: {(message or ['?'])[-1][:300]}")
        import soundfile

        try:
            with soundfile.SoundFile(out) as fh:
                return _audio_pcm(fh, fmt)
        except soundfile.LibsndfileError as exc:
            raise Undecodable(f"cannot read ffmpeg's decoding of this {fmt.upper()}: {exc.error_string}") from exc


# A video without sound has nothing to fingerprint by ear; its coded video packets (ffmpeg's hash
# muxer reads the packets' bytes only, not their boxes or timing) are what survives stripping or
# retagging its metadata, so such a copy is still recognised, though only when exact.
SILENT_VIDEO = "no audio track to fingerprint; its video packets are hashed"


# An audio stream in ffmpeg's list of the input's streams (log level info).
_AUDIO_STREAM = re.compile(rb"^ *Stream #0:[0-9]+\S*: Audio: ", re.MULTILINE)


def _video_packets(ffmpeg: str, src: str, fmt: str) -> tuple[Essence | str, bool]:
    """A silent video's essence (or why ffmpeg cannot read its video), and whether ffmpeg lists an
    audio stream in the file."""
    import subprocess

    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info", "-i", src, "-map", "0:v", "-c", "copy",
           "-f", "hash", "-hash", "sha256", "-"]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=FFMPEG_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise Undecodable(f"ffmpeg took more than {FFMPEG_TIMEOUT:.0f} s to read the video") from exc
    listed = done.stderr.split(b"\nOutput #0", 1)[0]  # the input's streams, not the output's
    heard = _AUDIO_STREAM.search(listed) is not None
    found = re.fullmatch(rb"SHA256=([0-9a-f]{64})\s*", done.stdout)
    if done.returncode != 0 or found is None:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"this {fmt.upper()} has no audio track and ffmpeg cannot read its video: {(message or ['?'])[-1][:300]}", heard
    digest = hashlib.sha256(b"rightsmeta-video-packets-v1\0" + found.group(1))
    return Essence("audio", HASH_V2 + digest.hexdigest(), None, SILENT_VIDEO), heard


def _silent_video(found: Essence | str) -> Essence:
    if isinstance(found, str):
        raise Undecodable(found)
    return found


def _audio_pcm(fh: soundfile.SoundFile, fmt: str) -> tuple[Essence, float]:
    """The essence of the decoded samples, and how many seconds were decoded."""
    rate, channels = int(fh.samplerate), int(fh.channels)
    if rate <= 0 or channels <= 0:
        raise Undecodable(f"the {fmt.upper()} declares {rate} Hz and {channels} channels")
    if fh.frames > MAX_AUDIO_SECONDS * rate:
        raise Undecodable(f"audio longer than {MAX_AUDIO_SECONDS} s is not fingerprinted")
    digest = hashlib.sha256(b"rightsmeta-audio-v1\0%d\0%d\0" % (rate, channels))
    analysis = _BandEnergies(rate)
    frames = 0
    for block in fh.blocks(blocksize=_AUDIO_BLOCK, dtype="int32", always_2d=True):
        frames += len(block)
        if frames > MAX_AUDIO_SECONDS * rate:  # a header can understate the length
            raise Undecodable(f"audio longer than {MAX_AUDIO_SECONDS} s is not fingerprinted")
        digest.update(block.astype("<i4", copy=False).tobytes())
        analysis.feed(block.mean(axis=1, dtype=np.float64) / 2**31)
    if frames == 0:
        raise Undecodable("the audio holds no samples")
    code, why = analysis.code()
    return Essence("audio", digest.hexdigest(), code, why), frames / rate


# Chromaprint gives about 8 features a second after its first 2.7 s (fpcalc 1.5.1, measured at 8
# to 96 kHz: 35 features from 7 s of audio, 39 from 7.5 s, 43 from 8 s), so audio under
# CHROMA_MIN_SECONDS never reaches CHROMA_MIN_FEATURES and fpcalc is not started for it (25-50 ms
# of CPU a file; tests/test_chroma_skip.py). Only where the audio decoded here is the audio fpcalc
# decodes: formats whose length libsndfile counts as fpcalc's FFmpeg does (not Ogg: chained
# streams), and MP4s with one audio track (with more, fpcalc may take another than the first).
CHROMA_MIN_SECONDS = 6.0
_CHROMA_SAME_LENGTH = frozenset({"mp3", "wav", "aiff", "flac"})


def _with_chroma(found: Essence, seconds: float, data: bytes, fmt: str) -> Essence:
    if found.hash is None or not seconds:  # nothing decoded, or a video without sound
        return found
    if seconds < CHROMA_MIN_SECONDS and (fmt in _CHROMA_SAME_LENGTH or (fmt in _FFMPEG_FORMATS and _one_audio_track(data))):
        return found
    return replace(found, chroma=chroma_features(data, fmt))


def _one_audio_track(data: bytes) -> bool:
    """Whether the MP4 or MOV has exactly one track whose handler is sound (False when unsure)."""
    return _sound_tracks(data) == 1


def _sound_tracks(data: bytes) -> int | None:
    """How many tracks of the MP4 or MOV have a sound handler (None when unsure)."""
    from .carriers import bmff
    from .errors import MalformedFile

    try:
        return sum(track.handler == b"soun" for track in bmff.tracks(data))
    except MalformedFile:
        return None


class _BandEnergies:
    """Streaming energy per analysis frame (~100 ms, hop ~25 ms) in log-spaced bands, 300-3000 Hz."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.size = 1 << max(8, round(np.log2(0.1 * rate)))  # a power of two near 100 ms
        # A quarter-frame hop keeps the segment boundaries within ~25 ms of the same instant
        # whatever the sample rate (an Opus copy decodes at 48 kHz, its original was 44.1 kHz).
        self.hop = self.size // 4
        self.window = np.hanning(self.size)
        freqs = np.fft.rfftfreq(self.size, 1 / rate)
        self.edges = np.searchsorted(freqs, np.geomspace(_AUDIO_LOW, _AUDIO_HIGH, _AUDIO_BANDS + 1))
        self.carry = np.zeros(0)
        self.total = 0
        self.rows: list[np.ndarray[Any, Any]] = []

    def feed(self, mono: np.ndarray[Any, Any]) -> None:
        self.total += len(mono)
        if self.rate < _AUDIO_MIN_RATE:
            return
        samples = np.concatenate([self.carry, mono])
        if len(samples) < self.size:
            self.carry = samples
            return
        frames = np.lib.stride_tricks.sliding_window_view(samples, self.size)[:: self.hop]
        self.carry = samples[len(frames) * self.hop :]
        power = np.abs(np.fft.rfft(frames * self.window, axis=1)) ** 2
        self.rows.append(np.add.reduceat(power, self.edges[:-1], axis=1)[:, : _AUDIO_BANDS])

    def code(self) -> tuple[str | None, str | None]:
        if self.rate < _AUDIO_MIN_RATE:
            return None, f"sample rate {self.rate} Hz is too low for the audio fingerprint"
        energy = np.concatenate(self.rows) if self.rows else np.zeros((0, _AUDIO_BANDS))
        if len(energy) < 4 * _AUDIO_SEGMENTS:
            return None, "audio too short (under a second) for a perceptual fingerprint"
        # Segments are fractions of the duration, each frame going to the one holding its centre.
        centres = np.arange(len(energy)) * self.hop + self.size / 2
        segment = np.minimum((centres * _AUDIO_SEGMENTS / self.total).astype(int), _AUDIO_SEGMENTS - 1)
        grid = np.zeros((_AUDIO_SEGMENTS, _AUDIO_BANDS))
        np.add.at(grid, segment, energy)
        peak = float(grid.max())
        if peak < 1e-6:
            return None, "audio is silent: no perceptual fingerprint"
        # The floor keeps near-silent cells from turning noise into bits.
        logs = np.log(grid + peak * 1e-6)
        across = logs[:, :-1] - logs[:, 1:]
        bits = (across[1:] - across[:-1]) > 0
        return _hex(bits.ravel(), PERCEPTUAL_BITS["audio"]), None


# --- text: PDF and EPUB ---------------------------------------------------------------------------


def _text(data: bytes, fmt: str, password: str | None = None) -> Essence:
    if fmt == "pdf":
        from .pdfessence import pdf_content

        content_hash, text = pdf_content(data, password)
    else:
        text = _epub_text(data)
        content_hash = _text_hash(text) if text else None
    if not text and content_hash is None:
        raise Undecodable(f"the {fmt.upper()} holds no text")
    if len(text) < MIN_TEXT_CHARS:
        return Essence("text", content_hash, None, f"too little text ({len(text)} characters) for a perceptual fingerprint")
    return Essence("text", content_hash, _text_code(text))


def _text_hash(text: str) -> str:
    return hashlib.sha256(b"rightsmeta-text-v1\0" + text.encode("utf-8")).hexdigest()


def _text_code(text: str) -> str:
    import iscc_core

    normal = iscc_core.text_collapse(text)
    return _hex(iscc_core.soft_hash_text_v0(normal), PERCEPTUAL_BITS["text"])


_SPACES = re.compile(r"\s+")


_CONTAINER_NS = "{urn:oasis:names:tc:opendocument:xmlns:container}"
_OPF_NS = "{http://www.idpf.org/2007/opf}"
_HIDDEN = re.compile(rb"<(head|script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(rb"<[^>]*>")


def _epub_text(data: bytes) -> str:
    import zipfile

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise Undecodable(f"not a readable EPUB (zip): {exc}") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ZIP_ENTRIES:
            raise Undecodable(f"the EPUB has {len(infos)} zip entries, more than the {MAX_ZIP_ENTRIES} allowed")
        container = _xml(archive, "META-INF/container.xml")
        rootfile = container.find(f"{_CONTAINER_NS}rootfiles/{_CONTAINER_NS}rootfile")
        opf_path = rootfile.get("full-path") if rootfile is not None else None
        if not opf_path:
            raise Undecodable("the EPUB's container.xml names no package document")
        package = _xml(archive, opf_path)
        base = posixpath.dirname(opf_path)
        hrefs = {
            item.get("id"): item.get("href", "")
            for item in package.iter(f"{_OPF_NS}item")
        }
        texts: list[str] = []
        total = 0
        for itemref in package.iter(f"{_OPF_NS}itemref"):
            href = hrefs.get(itemref.get("idref"))
            if not href:
                continue
            name = posixpath.normpath(posixpath.join(base, href.split("#", 1)[0]))
            raw = _member(archive, name, MAX_ZIP_DOCUMENT)
            total += len(raw)
            if total > MAX_ZIP_TOTAL:
                raise Undecodable(f"the EPUB's spine documents hold more than {MAX_ZIP_TOTAL} bytes")
            texts.append(_markup_text(raw))
        return "\n".join(t for t in texts if t)


def _xml(archive: zipfile.ZipFile, name: str) -> Any:
    import defusedxml.ElementTree as SafeET
    from defusedxml import DefusedXmlException

    try:
        return SafeET.fromstring(_member(archive, name, MAX_ZIP_XML))
    except DefusedXmlException as exc:
        raise Undecodable(f"{name} declares entities or a DTD, which are refused: {exc}") from exc
    except SafeET.ParseError as exc:
        raise Undecodable(f"{name} is not well-formed XML: {exc}") from exc


def _member(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError as exc:
        raise Undecodable(f"the EPUB lacks {name!r}") from exc
    if info.file_size > limit:
        raise Undecodable(f"{name} inflates to {info.file_size} bytes, more than the {limit} allowed")
    with archive.open(info) as fh:
        raw = fh.read(limit + 1)  # the declared size can lie
    if len(raw) > limit:
        raise Undecodable(f"{name} inflates to more than {limit} bytes")
    return raw


def _markup_text(raw: bytes) -> str:
    # Tags are stripped, not parsed: XHTML in the wild has HTML entities and broken markup that
    # an XML parser refuses, and stripping never resolves entities or fetches anything.
    import html

    body = _TAG.sub(b" ", _HIDDEN.sub(b" ", raw))
    return _SPACES.sub(" ", html.unescape(body.decode("utf-8", "replace"))).strip()
