"""The grey working image of a PNG, WebP or TIFF decoded by imagecodecs: Pillow's pixels, faster.

The ledger records every tagged image with perceptual codes cut from an 8-bit grey copy of its
first frame (``to_grey`` of Pillow's full decode). A JPEG is decoded at reduced scale
(``draft``); these three formats have no reduced decode, so their full decode was most of what
recording them cost. imagecodecs calls libpng, libwebp and libtiff directly. On bench/corpus.py's
images (RGB, 320x240..800x600, 100 of each), open + size check + grey image took, under
callgrind, 29.6M -> 19.2M instructions a PNG (-35 %), 22.1M -> 16.2M a WebP (-27 %), 8.9M -> 7.1M
an uncompressed TIFF (-20 %); in time (``bench/imagedecode.py``, best of 7, alternating, load 6):
PNG 4.5 -> 3.5 ms, WebP 5.0 -> 3.4 ms, TIFF 0.82 -> 0.84 ms (the TIFF's saving is in the noise).

``grey`` takes over only the pixel decode: Pillow has already opened the file, so its checks
stand (``check_decode_size`` before anything is decoded, first frame, bomb refusal),
and what Pillow found (mode, size, how it would unpack the samples, transparency) says which
decode is the same as Pillow's. The cases taken are those ``tests/test_imagedecode.py`` proves
pixel-identical (every PNG colour type and bit depth, interlaced, tRNS; WebP lossy, lossless,
alpha, an animation's first frame; TIFF uncompressed, LZW and PackBits, strips or tiles,
8 or 16 bits, one plane). Anything else (CMYK, YCbCr, JPEG-in-TIFF, premultiplied alpha,
MinIsWhite, separate planes, floats, Deflate-compressed TIFF, a TIFF Pillow's load would turn by
its Orientation or XMP, a PNG with chunks after the image data that Pillow's load reads...)
returns None and is decoded by Pillow as before.

``plain_grey`` goes further for a plain TIFF (uncompressed 8-bit grey, RGB or RGBA, strips in a
row) and a still WebP: no Pillow open at all (for these it cost as much as the decode), the
header walked here with every entry Pillow reads checked, the same size refusals, Pillow left to
decide anything unusual (``tests/test_plaindecode.py``, with every header byte fuzzed). With
``_rgbx`` (RGB unpacked into an uncleared image), open + size check + grey image went, under
callgrind on bench/corpus.py's images (20 of each kind, after a first), 18.8M -> 17.7M
instructions a PNG, 17.0M -> 14.4M a WebP, 6.6M -> 4.8M an uncompressed TIFF; in time (main and
this code alternating in one process, best of 9, load 3-5) PNG in the noise (-17..+5 %), WebP -18..-32 %,
TIFF -36..-66 %.

Hostile input: the output array is allocated here, at the shape Pillow's header says, within the
decode budget, and imagecodecs refuses to decode into an array of another shape, so a file whose
header the two read differently costs no more memory than Pillow's own decode. Any error from the
C decoder returns None: Pillow's decode then gives today's refusal reason for the damaged file.
"""

from __future__ import annotations

import functools
import importlib
import io
import logging
import re
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .errors import Undecodable

if TYPE_CHECKING:
    from PIL import Image, ImageFile



# The Pillow plugin of each image format rightsmeta decodes.
PIL_FORMATS = {
    "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "tiff": "TIFF", "gif": "GIF", "heic": "HEIF", "avif": "AVIF",
}
MAX_PIXELS = 89_478_485  # Pillow's default MAX_IMAGE_PIXELS, enforced even if a caller lifted it
# An image decode may hold at most this many bytes (estimated from width x height x bytes per
# pixel before decoding): half of verify's 2 GiB per-file bound, the rest is the interpreter,
# the file's own bytes and the libraries.
MAX_DECODE_BYTES = 1024**3

# Bytes per pixel Pillow holds for a decoded image of each mode (8-bit multi-band modes take 4).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2, "LA": 4, "La": 4, "PA": 4}


def decode_budget() -> int:
    """Bytes an image decode may hold at once: ``MAX_DECODE_BYTES``, or half the address-space
    limit when the process runs under a smaller one (verify's worker processes do)."""
    budget = MAX_DECODE_BYTES
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            budget = min(budget, soft // 2)
    except (ImportError, OSError, ValueError):  # no resource module (Windows): the fixed budget
        pass
    return budget


def check_decode_size(img: Image.Image) -> None:
    """Refuse, before any pixel is decoded, an image whose decoding would exceed the budget."""
    refusal = decode_refusal(img.width, img.height, img.mode)
    if refusal is not None:
        raise Undecodable(refusal)


def decode_refusal(width: int, height: int, mode: str) -> str | None:
    """Why an image of this size and Pillow mode is not decoded, or None when it may be.

    Peak memory of ``fingerprint._image``: the decoded image in its own mode, the 8-bit grey copy of a
    high-bit-depth image, and the RGBA image that is hashed (hashing goes strip by strip).
    """
    if width * height > MAX_PIXELS:
        return f"image has {width}x{height} pixels, more than the {MAX_PIXELS} allowed"
    # + 4: the RGBA copy; + 1: its grey copy (or the 8-bit copy of a high-bit-depth image)
    per_pixel = _MODE_BYTES.get(mode, 4) + 4 + 1 + (1 if mode in _WIDE_MODES else 0)
    need, budget = width * height * per_pixel, decode_budget()
    if need > budget:
        return (f"decoding this {width}x{height} {mode} image needs about {need // 2**20} MiB, "
                f"more than the {budget // 2**20} MiB memory bound")
    return None


_WIDE_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})


# Modes whose direct conversion to grey gives the same levels as going through RGBA (checked in
# tests/test_coded_hash.py): the grey working image is made without a full-size RGBA copy.
_GREY_DIRECT = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX"})


def to_grey(img: Image.Image) -> Image.Image:
    """The 8-bit grey image the perceptual codes are cut from (as ``toto_rgba(img).convert("L")``)."""
    if img.mode == "L":
        return img
    return img.convert("L") if img.mode in _GREY_DIRECT else to_rgba(img).convert("L")


def to_rgba(img: Image.Image) -> Image.Image:
    if img.mode in _WIDE_MODES:
        # Pillow converts high-bit-depth grey to RGB by clipping; scale to 8 bits first. Strip by
        # strip: the float arithmetic over a whole 9400x9400 image took 2.3 GB (issue 11.6).
        high = img.getextrema()[1]
        peak = 65535.0 if img.mode.startswith("I;16") or float(high) > 255 else 255.0  # type: ignore[arg-type]
        grey = np.empty((img.height, img.width), np.uint8)
        step = max(1, (1 << 22) // max(1, 8 * img.width))
        for top in range(0, img.height, step):
            bottom = min(img.height, top + step)
            strip = np.asarray(img.crop((0, top, img.width, bottom)), dtype=np.float64)
            grey[top:bottom] = np.clip(strip * (255.0 / peak), 0, 255).astype(np.uint8)
        from PIL import Image

        img = Image.fromarray(grey, "L")
    return img.convert("RGBA")


class _Layout(NamedTuple):
    """How Pillow unpacks one raw mode: samples per pixel and their width, as a decoder gives them."""

    channels: int
    wide: bool  # 16-bit samples


# Pillow's raw modes (how it unpacks the decoded samples into its own mode) that a decoder here
# gives as plain samples. Pillow keeps the high byte of 16-bit colour samples ("RGB;16B") and
# scales 16-bit grey (mode I;16; see to_rgba).
_PNG_RAW: dict[str, _Layout] = {
    "1": _Layout(1, False), "L;2": _Layout(1, False), "L;4": _Layout(1, False), "L": _Layout(1, False),
    "I;16B": _Layout(1, True), "LA": _Layout(2, False), "LA;16B": _Layout(2, True),
    "RGB": _Layout(3, False), "RGB;16B": _Layout(3, True), "RGBA": _Layout(4, False), "RGBA;16B": _Layout(4, True),
    # libpng expands a palette to RGB (RGBA with tRNS); Pillow's P -> L goes through the same RGB.
    "P;1": _Layout(3, False), "P;2": _Layout(3, False), "P;4": _Layout(3, False), "P": _Layout(3, False),
}
_TIFF_RAW: dict[str, _Layout] = {
    "L": _Layout(1, False), "I;16": _Layout(1, True), "I;16B": _Layout(1, True), "I;16N": _Layout(1, True),
    "LA": _Layout(2, False),
    "RGB": _Layout(3, False), "RGBX": _Layout(4, False), "RGBA": _Layout(4, False),
    "RGB;16L": _Layout(3, True), "RGB;16B": _Layout(3, True), "RGBA;16L": _Layout(4, True),
    "RGBA;16B": _Layout(4, True), "RGBX;16L": _Layout(4, True), "RGBX;16B": _Layout(4, True),
}
# TIFF directory entries whose values libtiff and Pillow decode alike (anything else: Pillow).
# Not Deflate: on a damaged stream imagecodecs' libtiff (libdeflate) and Pillow's (zlib) both go on
# without an error, with other pixels (10 of 2,400 fuzzed files); LZW, PackBits: 0 of 4,800.
_TIFF_COMPRESSIONS = frozenset({1, 5, 32773})  # none, LZW, PackBits
_TIFF_PREDICTORS = frozenset({1, 2})  # none, horizontal differencing
_TIFF_PHOTOMETRIC = frozenset({1, 2})  # MinIsBlack, RGB

# Bytes per pixel this path holds besides the decoded samples: Pillow's 4-byte copy of a 3-channel
# array, the 8-bit copy of 16-bit samples, the grey image.
_EXTRA_BYTES = 4 + 4 + 1


def grey(img: ImageFile.ImageFile, data: bytes) -> Image.Image | None:
    """``to_grey`` of ``img`` fully decoded (``img`` opened by Pillow from ``data``, its
    size already checked, not loaded), decoded by imagecodecs; None when this file is not one of
    the cases proven to give Pillow's pixels, or imagecodecs fails on it: the caller then loads
    ``img`` as before."""
    planned = _plan(img, data)
    if planned is None:
        return None
    decode, layout = planned

    samples = np.dtype(np.uint16 if layout.wide else np.uint8)
    if img.width * img.height * (layout.channels * samples.itemsize + _EXTRA_BYTES) > decode_budget():
        return None  # Pillow's decode needs less: it decides
    shape = (img.height, img.width, layout.channels) if layout.channels > 1 else (img.height, img.width)
    out = np.empty(shape, samples)
    try:
        decoded = decode(data, out)
    except Exception:  # imagecodecs' own error types, whatever libpng/libwebp/libtiff reported
        return None
    if not np.shares_memory(decoded, out):
        return None  # never seen; a decoder that allocated after all is not trusted with this file
    return _as_grey(img.mode, out, layout)


def _plan(img: ImageFile.ImageFile, data: bytes) -> tuple[Callable[[bytes, np.ndarray[Any, Any]], Any], _Layout] | None:
    if img.format not in ("PNG", "WEBP", "TIFF"):
        return None
    try:
        import imagecodecs
    except ImportError:  # an install without the wheel: Pillow decodes everything
        return None
    _quiet_imagecodecs()
    if img.format == "WEBP":
        # libwebp's RGBA output holds the same colour values as its RGB output, and Pillow maps it
        # without a copy. No frame index: asking for frame 0 of a still picture goes through
        # WebPAnimDecoder's canvas (0.23 ms more a file); an animation gives its first frame either
        # way (the animated cases of tests/test_imagedecode.py).
        return lambda data, out: imagecodecs.webp_decode(data, hasalpha=True, out=out), _Layout(4, False)
    if not img.tile:
        return None
    raw = img.tile[0].args
    rawmode = raw if isinstance(raw, str) else raw[0] if isinstance(raw, tuple) and raw else None
    if img.format == "PNG" and isinstance(rawmode, str) and rawmode in _PNG_RAW and _png_tail_skipped(data):
        layout = _PNG_RAW[rawmode]
        if "transparency" in img.info and layout.channels in (1, 3):
            layout = layout._replace(channels=layout.channels + 1)  # libpng turns tRNS into alpha
        return lambda data, out: imagecodecs.png_decode(data, out=out), layout
    if img.format == "TIFF" and isinstance(rawmode, str) and rawmode in _TIFF_RAW and _tiff_plain(img):
        return lambda data, out: imagecodecs.tiff_decode(data, index=0, out=out), _TIFF_RAW[rawmode]
    return None


def _png_tail_skipped(data: bytes) -> bool:
    """Whether every chunk after the image data is one Pillow's load skips. Its load reads them once
    the pixels are decoded, and its readers of text, colour and size chunks refuse damaged ones (a
    zTXt of an unknown compression, a short pHYs...), a refusal ``grey`` would otherwise decode past."""
    from PIL.PngImagePlugin import PngStream

    from .carriers import png
    from .errors import MalformedFile

    try:
        chunks = png.walk(data)
    except MalformedFile:
        return False
    first = next((i for i, chunk in enumerate(chunks) if chunk.type == b"IDAT"), len(chunks))
    return not any(hasattr(PngStream, "chunk_" + chunk.type.decode("latin-1"))
                   for chunk in chunks[first:] if chunk.type not in (b"IDAT", b"IEND"))


@functools.cache
def _quiet_imagecodecs() -> None:
    # libpng's warnings about a damaged file ("IDAT: incorrect data check") are logged by
    # imagecodecs; a NullHandler keeps them off stderr (as fingerprint does for pypdf). What the
    # file is worth is decided by comparing its pixels, not by the warning.
    logging.getLogger("imagecodecs").addHandler(logging.NullHandler())


def _tiff_plain(img: Image.Image) -> bool:
    """True for a first directory that libtiff decodes to the samples Pillow unpacks."""
    tags = getattr(img, "tag_v2", None)
    if tags is None:
        return False
    return (
        tags.get(259, 1) in _TIFF_COMPRESSIONS
        and tags.get(317, 1) in _TIFF_PREDICTORS
        and tags.get(262) in _TIFF_PHOTOMETRIC
        and tags.get(284, 1) == 1  # one plane: samples of a pixel side by side
        and tags.get(266, 1) == 1  # most significant bit first
        and tags.get(274, 1) == 1  # Pillow's load turns the picture as Orientation says; libtiff does not
        and not _turned_by_xmp(img.info.get("xmp"))
        and all(f == 1 for f in _tuple(tags.get(339, 1)))  # unsigned integer samples
    )


# What Pillow's getexif() reads as the orientation of a TIFF without an Orientation entry.
_XMP_ORIENTATION = re.compile(rb'tiff:Orientation(="|>)([0-9])')


def _turned_by_xmp(xmp: object) -> bool:
    """Whether Pillow's TIFF load turns the picture by its XMP (``tiff:Orientation`` 2-8), or may
    fail reading it (a value that is not bytes)."""
    if xmp is None:
        return False
    if not isinstance(xmp, bytes):
        return True
    found = _XMP_ORIENTATION.search(xmp)
    return found is not None and found[2] in b"2345678"


def _tuple(value: Any) -> tuple[Any, ...]:
    return value if isinstance(value, tuple) else (value,)


def _as_grey(mode: str, samples: np.ndarray[Any, Any], layout: _Layout) -> Image.Image:
    """The grey image from decoded samples, through Pillow's own conversions (``_grey``), so its
    rounding is kept exactly: RGB -> L is Pillow's fixed-point ITU-R 601 sum, 16-bit grey goes
    through ``_rgba``'s float scaling."""
    from PIL import Image


    height, width = samples.shape[:2]
    if layout.wide and mode.startswith("I;16"):
        # I;16 is little-endian; the decoders give native order.
        grey16 = np.ascontiguousarray(samples[..., 0] if samples.ndim == 3 else samples, dtype="<u2")
        return to_grey(Image.frombuffer("I;16", (width, height), grey16, "raw", "I;16", 0, 1))
    if layout.wide:
        # Pillow's ";16" raw modes keep the high byte; shifted in place, so no second 16-bit copy is held.
        samples = np.right_shift(samples, 8, out=samples).astype(np.uint8)
    if samples.ndim == 2 or samples.shape[2] <= 2:  # grey, grey + alpha: the grey samples are the image
        return Image.frombuffer("L", (width, height), np.ascontiguousarray(samples.reshape(height, width, -1)[..., 0]),
                                "raw", "L", 0, 1)
    # An RGBA array is mapped, not copied; Pillow's RGB(A) -> L ignores the fourth byte.
    if samples.shape[2] == 4:
        return to_grey(Image.frombuffer("RGBA", (width, height), samples, "raw", "RGBA", 0, 1))
    return to_grey(_rgbx((width, height), samples))


def _rgbx(size: tuple[int, int], samples: np.ndarray[Any, Any]) -> Image.Image:
    """An RGBX image of 3-byte RGB samples, for Pillow's RGB -> L (which reads 4 bytes a pixel).

    Pillow unpacks the samples once, into memory not first cleared: an image of its own would be
    (``Image.frombuffer("RGB")`` and ``Image.new`` clear theirs, a tenth of what recording an RGB
    PNG or TIFF cost in instructions), so the RGBX image maps an array made here and its
    ``frombytes`` unpacks into it (a Pillow that copied a mapped image before writing to it would
    give the same pixels, only slower).
    """
    from PIL import Image

    pixels = np.empty((size[1], size[0], 4), np.uint8)
    img = Image.frombuffer("RGBX", size, pixels, "raw", "RGBX", 0, 1)
    img.frombytes(samples, "raw", "RGB")
    return img


# --- without Pillow's open: plain TIFF, still WebP ---------------------------------------------------

# Pillow's image mode and raw mode of the 8-bit, one-plane TIFF layouts taken, by (photometric,
# samples per pixel, ExtraSamples) as Pillow's TiffImagePlugin.OPEN_INFO maps them.
_TIFF_LAYOUTS: dict[tuple[int, int, tuple[int, ...]], tuple[str, str]] = {
    (1, 1, ()): ("L", "L"),
    (2, 3, ()): ("RGB", "RGB"),
    (2, 4, ()): ("RGBA", "RGBA"),
    (2, 4, (2,)): ("RGBA", "RGBA"),  # unassociated alpha
    (2, 4, (0,)): ("RGB", "RGBX"),  # an unspecified fourth sample, dropped
}
# Entries whose presence leaves the file to Pillow: tiles; the sub-directories Pillow's load reads
# (Exif, GPS, Interoperability: a damaged one fails its load); Windows Media Photo.
_TIFF_NOT_PLAIN = frozenset({322, 323, 324, 325, 34665, 34853, 40965, 0xBC01})
# Entries that must hold exactly this one value when present (absent: TIFF's default, the same).
_TIFF_ONE_OF = {259: 1, 266: 1, 274: 1, 284: 1, 317: 1}  # compression, fill order, orientation, planar, predictor
# The entries whose numbers are read (SHORT or LONG): size, bits, compression, photometric, fill
# order, strip offsets, orientation, samples, rows per strip, planar, predictor, extra samples,
# sample format.
_TIFF_READ = frozenset({256, 257, 258, 259, 262, 266, 273, 274, 277, 278, 284, 317, 338, 339})


def plain_grey(data: bytes, fmt: str) -> Image.Image | None:
    """``to_grey`` of Pillow's full decode of a plain TIFF or a still WebP, made without
    Pillow's open (which for these costs as much as what follows it); None for any other file,
    or one past the size limits, or one the decoder fails on: the caller then opens it with
    Pillow as before, which gives the refusal its reason.

    A plain TIFF is uncompressed 8-bit grey, RGB or RGBA in one plane, in strips that follow one
    another: its samples are the file's bytes, so they are mapped (grey, RGBA) or unpacked once
    by Pillow (RGB), never copied by a decoder. Every entry Pillow's open and load read is checked
    to say the same to both (tests/test_plaindecode.py: the kinds taken and left, and fuzzed
    headers). A still WebP is decoded by libwebp as ``grey`` does, its canvas read by the RIFF walk.
    """
    if fmt == "tiff":
        return _plain_tiff(data)
    if fmt == "webp":
        return _still_webp(data)
    return None


def _plain_tiff(data: bytes) -> Image.Image | None:
    from PIL import Image

    layout = _tiff_layout(data)
    if layout is None:
        return None
    mode, raw, size, start = layout
    if not _may_decode(size, mode):
        return None
    pixels = np.frombuffer(data, np.uint8, size[0] * size[1] * len(raw), start)  # a view of the file's bytes
    img = _rgbx(size, pixels) if raw == "RGB" else Image.frombuffer(raw, size, pixels, "raw", raw, 0, 1)

    return to_grey(img)


def _tiff_layout(data: bytes) -> tuple[str, str, tuple[int, int], int] | None:
    """(Pillow's mode, raw mode, size, where the pixels start) of a plain TIFF, else None."""
    values = _tiff_entries(data)
    if values is None:
        return None

    def one(tag: int, default: int | None = None) -> int | None:
        found = values.get(tag)
        return default if found is None else found[0] if len(found) == 1 else None

    if any(one(tag, value) != value for tag, value in _TIFF_ONE_OF.items()):
        return None
    width, height, photometric, spp = one(256), one(257), one(262), one(277, 1)
    bits, extra, formats, offsets = values.get(258, ()), values.get(338, ()), values.get(339, (1,)), values.get(273, ())
    if not width or not height or photometric is None or spp is None or not offsets:
        return None
    modes = _TIFF_LAYOUTS.get((photometric, spp, extra))
    if modes is None or len(bits) not in (1, spp) or set(bits) != {8} or set(formats) != {1}:
        return None
    rows = one(278, height)  # absent: one strip
    if not rows:
        return None
    rows = min(rows, height)
    # Strips that follow one another from the first: the pixels are one run of bytes.
    strip = rows * width * spp
    if len(offsets) != -(-height // rows) or any(o != offsets[0] + i * strip for i, o in enumerate(offsets)):
        return None
    if offsets[0] + width * height * spp > len(data):
        return None
    return modes[0], modes[1], (width, height), offsets[0]


def _tiff_entries(data: bytes) -> dict[int, tuple[int, ...]] | None:
    """The numbers of the first directory's entries ``_tiff_layout`` reads, when the directory
    is one Pillow reads whole and alike, else None."""
    from .carriers import tiff
    from .errors import MalformedFile

    try:
        order, _, entries, _ = tiff.first_directory(data)
        tags = {e.tag: e for e in entries}
        # Pillow reads the first of repeated entries, skips those of a type it does not know, and
        # drops the rest of the directory at a value past the end of the file or once the values
        # read add up to more than the file: none of that is met here.
        if len(tags) != len(entries) or not _TIFF_NOT_PLAIN.isdisjoint(tags):
            return None
        apart = [e for e in entries if e.size is None or e.size > 4]
        for entry in apart:
            tiff.check_value(data, entry)
        if sum(e.size or 0 for e in apart) > len(data):
            return None
        # An entry of no value is no number Pillow reads: not taken.
        read = {tag: tiff.shorts_or_longs(data, e, order) if e.count else None
                for tag, e in tags.items() if tag in _TIFF_READ}
        xmp = tags.get(700)
        if xmp is not None and _turned_by_xmp(tiff.value_bytes(data, xmp) if xmp.type in (1, 7) else xmp):
            return None
    except (MalformedFile, struct.error):
        return None
    numbers = {tag: found for tag, found in read.items() if found is not None}
    return numbers if len(numbers) == len(read) else None  # an entry read is not SHORT or LONG numbers


def _still_webp(data: bytes) -> Image.Image | None:
    from PIL import Image

    from .carriers import riff
    from .codedhash import webp_canvas
    from .errors import MalformedFile

    try:
        found = riff.walk(data, b"WEBP")
        width, height, flags = webp_canvas(data, found)
    except MalformedFile:
        return None
    if flags & riff.VP8X_ANIMATION or riff.find(found, b"ANIM") or riff.find(found, b"ANMF"):
        return None  # an animation's first frame: Pillow's open, then ``grey``
    # Pillow's mode is RGB or RGBA: 4 bytes a pixel either way, so the size limit is the same.
    if not _may_decode((width, height), "RGBA"):
        return None
    try:
        import imagecodecs
    except ImportError:
        return None
    _quiet_imagecodecs()
    out = np.empty((height, width, 4), np.uint8)
    try:
        decoded = imagecodecs.webp_decode(data, hasalpha=True, out=out)
    except Exception:  # imagecodecs' own error types, whatever libwebp reported; Pillow decides
        return None
    if not np.shares_memory(decoded, out):
        return None

    return to_grey(Image.frombuffer("RGBA", (width, height), out, "raw", "RGBA", 0, 1))


def _may_decode(size: tuple[int, int], mode: str) -> bool:
    """Whether Pillow's open and ``check_decode_size`` would let this image be decoded
    (else Pillow's path gives the refusal and its words)."""
    from PIL import Image


    if Image.MAX_IMAGE_PIXELS is not None and size[0] * size[1] > Image.MAX_IMAGE_PIXELS:
        return False  # Pillow's decompression bomb check (a warning, an error past twice as many)
    return decode_refusal(size[0], size[1], mode) is None


# Pillow plugins that Image.open would otherwise find by importing every plugin there is
# (``Image.init``, ~30 ms once a process): JPEG, PNG and GIF come with its ``preinit``.
_PILLOW_PLUGINS = {"tiff": "TiffImagePlugin", "webp": "WebPImagePlugin"}


def open_image(data: bytes, fmt: str) -> ImageFile.ImageFile:
    """``data`` opened by the Pillow plugin of ``fmt`` (a format of ``PIL_FORMATS``), not loaded;
    UnidentifiedImageError when that plugin does not take it, as ``Image.open`` says.

    HEIC is opened by pillow_heif's image class directly: its ``register_heif_opener`` would add
    HEIF to Pillow's registry for the whole process, which a library called by servers' threads
    leaves to its callers (and which a caller that did not register would miss: every HEIC was
    unreadable). Pillow's own decompression-bomb check is not run for it: ``fingerprint``'s
    size checks, which refuse the same pixel count, are.
    """
    from PIL import Image, UnidentifiedImageError


    if fmt != "heic":
        name = _PILLOW_PLUGINS.get(fmt)
        if name is not None:
            importlib.import_module(f"PIL.{name}")
        return Image.open(io.BytesIO(data), formats=[PIL_FORMATS[fmt]])
    try:
        from pillow_heif.as_plugin import HeifImageFile
    except ImportError as exc:  # an install without pillow_heif reads no HEIC pixels
        raise UnidentifiedImageError(f"pillow_heif is not installed: {exc}") from exc
    try:
        return HeifImageFile(io.BytesIO(data))  # type: ignore[no-untyped-call]
    except SyntaxError as exc:  # what Image.open turns into UnidentifiedImageError
        raise UnidentifiedImageError(f"libheif cannot read this HEIC: {exc}") from exc
