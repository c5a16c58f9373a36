"""The grey working image from imagecodecs is Pillow's, pixel for pixel (rightsmeta/imagedecode.py; issue 12).

Every kind of PNG, WebP and TIFF the fast path takes is made by a real writer (Pillow, pypng,
tifffile, ExifTool for metadata) and its grey image compared with ``imagedecode.to_grey`` of
Pillow's full decode; the kinds it leaves to Pillow are shown to go there; damaged files either
give Pillow's pixels or fall back, in a child process that must survive them all.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import warnings
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import material
import numpy as np
import png as pypng
import pytest
import tifffile
from PIL import Image
from samples import seeded_mutants

from rightsmeta import imagedecode
from rightsmeta.fingerprint import essence

SIZE = (67, 45)  # odd sides: rows that are not a whole number of words, tiles that overhang


def photo(mode: str = "RGB", seed: int = 5, size: tuple[int, int] = SIZE) -> Image.Image:
    img = material.photo(seed, size)
    if mode in ("RGBA", "LA", "PA"):
        alpha = Image.fromarray(np.tile(np.linspace(0, 255, size[0], dtype=np.uint8), (size[1], 1)), "L")
        img = img.convert("RGBA")
        img.putalpha(alpha)
    return img.convert(mode)


def wide(channels: int, seed: int = 7, size: tuple[int, int] = SIZE) -> np.ndarray:
    """16-bit samples using the whole range (so high byte and scaling both matter)."""
    grey = np.asarray(material.photo(seed, size).convert("RGB"), np.uint16) * 257
    noise = np.random.default_rng(seed).integers(0, 256, grey.shape, dtype=np.uint16)
    rgb = grey ^ noise
    return rgb[..., 0] if channels == 1 else rgb[..., :channels] if channels <= 3 else np.dstack([rgb, rgb[..., :1]])


def pil(img: Image.Image, fmt: str, **save: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


def pypng_file(rows: np.ndarray, *, greyscale: bool, alpha: bool, bitdepth: int, **info: object) -> bytes:
    height, width = rows.shape[:2]
    buf = io.BytesIO()
    writer = pypng.Writer(width, height, greyscale=greyscale, alpha=alpha, bitdepth=bitdepth, **info)
    writer.write(buf, rows.reshape(height, -1).tolist())
    return buf.getvalue()


def tiff_file(samples: np.ndarray, **options: object) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, samples, **options)
    return buf.getvalue()


def pillow_grey(data: bytes) -> Image.Image:
    """What ``fingerprint._image`` made before imagedecode: Pillow's full decode, then ``_grey``."""
    with Image.open(io.BytesIO(data)) as img, warnings.catch_warnings():
        # Pillow's P -> L warns about a palette's tRNS given as bytes; the pixels are the point here.
        warnings.simplefilter("ignore", UserWarning)
        img.load()
        return imagedecode.to_grey(img)


def fast_grey(data: bytes) -> Image.Image | None:
    with Image.open(io.BytesIO(data)) as img:
        imagedecode.check_decode_size(img)
        return imagedecode.grey(img, data)


def animated_webp(*, lossless: bool, alpha: bool) -> bytes:
    frames = [photo("RGBA" if alpha else "RGB", seed) for seed in (1, 2, 3)]
    return pil(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=80, lossless=lossless, quality=70)


# (name, file): every kind the fast path takes.
FAST: list[tuple[str, Callable[[], bytes]]] = [
    *[(f"png {mode}", lambda mode=mode: pil(photo(mode), "PNG")) for mode in ("1", "L", "LA", "RGB", "RGBA")],
    ("png P 8-bit", lambda: pil(photo().quantize(200), "PNG")),
    *[(f"png P {bits}-bit", lambda bits=bits: pil(photo().quantize(1 << bits), "PNG", bits=bits)) for bits in (1, 2, 4)],
    ("png P tRNS index", lambda: pil(photo().quantize(16), "PNG", transparency=3)),
    ("png P tRNS alphas", lambda: pil(photo("RGBA").quantize(64, method=Image.Quantize.FASTOCTREE), "PNG")),
    ("png L tRNS", lambda: pil(photo("L"), "PNG", transparency=80)),
    ("png RGB tRNS", lambda: pil(photo(), "PNG", transparency=(90, 120, 200))),
    ("png I;16", lambda: pil(Image.fromarray(wide(1)), "PNG")),
    ("png I;16 tRNS", lambda: pil(Image.fromarray(wide(1)), "PNG", transparency=300)),
    *[(f"png grey {b}-bit", lambda b=b: pypng_file(np.asarray(photo("L"), np.uint16) >> (8 - b), greyscale=True, alpha=False, bitdepth=b))
      for b in (2, 4)],
    ("png RGB 16-bit", lambda: pypng_file(wide(3), greyscale=False, alpha=False, bitdepth=16)),
    ("png RGBA 16-bit", lambda: pypng_file(wide(4), greyscale=False, alpha=True, bitdepth=16)),
    ("png LA 16-bit", lambda: pypng_file(wide(2), greyscale=True, alpha=True, bitdepth=16)),
    ("png RGB interlaced", lambda: pypng_file(np.asarray(photo()), greyscale=False, alpha=False, bitdepth=8, interlace=True)),
    ("png grey 16 interlaced", lambda: pypng_file(wide(1), greyscale=True, alpha=False, bitdepth=16, interlace=True)),
    ("png unknown chunk after the image", lambda: png_with_chunk_after_the_image(b"prVt", b"whatever")),
    ("png gamma and sBIT", lambda: pypng_file(np.asarray(photo()) >> 2, greyscale=False, alpha=False, bitdepth=6, gamma=0.45)),
    ("webp lossy", lambda: pil(photo(), "WEBP", quality=75)),
    ("webp lossless", lambda: pil(photo(), "WEBP", lossless=True)),
    ("webp lossy alpha", lambda: pil(photo("RGBA"), "WEBP", quality=60)),
    ("webp lossless alpha", lambda: pil(photo("RGBA"), "WEBP", lossless=True)),
    ("webp animated", lambda: animated_webp(lossless=False, alpha=False)),
    ("webp animated alpha", lambda: animated_webp(lossless=True, alpha=True)),
    *[(f"tiff {mode} {c}", lambda mode=mode, c=c: pil(photo(mode), "TIFF", compression=c))
      for mode in ("L", "RGB", "RGBA") for c in ("raw", "tiff_lzw", "packbits")],
    ("tiff I;16", lambda: pil(Image.fromarray(wide(1)), "TIFF")),
    ("tiff LA", lambda: tiff_file(np.asarray(photo("LA")), photometric="minisblack", extrasamples=["unassalpha"])),
    ("tiff RGB 16-bit", lambda: tiff_file(wide(3), photometric="rgb")),
    ("tiff RGBA 16-bit big-endian", lambda: tiff_file(wide(4), photometric="rgb", extrasamples=["unassalpha"], byteorder=">")),
    ("tiff grey 16-bit LZW", lambda: tiff_file(wide(1), photometric="minisblack", compression="lzw")),
    ("tiff RGB tiles lzw predictor", lambda: tiff_file(np.asarray(photo()), photometric="rgb", tile=(16, 32),
                                                       compression="lzw", predictor=True)),
    ("tiff RGB strips of 7 rows", lambda: tiff_file(np.asarray(photo()), photometric="rgb", rowsperstrip=7, compression="packbits")),
    ("tiff RGB extra sample", lambda: tiff_file(np.asarray(photo("RGBA")), photometric="rgb", extrasamples=["unspecified"])),
]

def png_with_chunk_after_the_image(ctype: bytes, body: bytes) -> bytes:
    data = pil(photo(), "PNG")
    at = data.rindex(b"IEND") - 4
    return data[:at] + struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body)) + data[at:]


# Kinds left to Pillow (imagedecode.grey returns None): no proof here that libtiff agrees.
SLOW: list[tuple[str, Callable[[], bytes]]] = [
    ("tiff planar", lambda: tiff_file(np.asarray(photo()), photometric="rgb", planarconfig="separate", compression="lzw")),
    ("tiff Deflate", lambda: pil(photo(), "TIFF", compression="tiff_adobe_deflate")),
    ("tiff Deflate tiles", lambda: tiff_file(np.asarray(photo()), photometric="rgb", tile=(16, 32), compression="zlib")),
    ("tiff CMYK", lambda: pil(photo("CMYK"), "TIFF")),
    ("tiff YCbCr JPEG", lambda: pil(photo(), "TIFF", compression="jpeg")),
    ("tiff 1-bit", lambda: pil(photo("1"), "TIFF", compression="group4")),
    ("tiff float", lambda: pil(photo("F"), "TIFF")),
    ("tiff premultiplied alpha", lambda: tiff_file(np.asarray(photo("RGBA")), photometric="rgb", extrasamples=["assocalpha"])),
    ("tiff MinIsWhite", lambda: tiff_file(np.asarray(photo("L")), photometric="miniswhite")),
    ("tiff palette", lambda: pil(photo().quantize(64), "TIFF")),
    # Pillow's load turns a TIFF as its Orientation says (libtiff does not): 2-4 keep the size, so
    # libtiff's unturned pixels were taken until the orientation was checked (seen red without it).
    *[(f"tiff orientation {o}", lambda o=o: pil(photo(), "TIFF", compression="tiff_lzw", tiffinfo={274: o})) for o in (2, 3, 4)],
    ("tiff square orientation 6", lambda: pil(photo(size=(45, 45)), "TIFF", compression="tiff_lzw", tiffinfo={274: 6})),
    ("jpeg", lambda: material.jpeg(photo())),
    # Pillow's load reads the chunks after the image data and refuses damaged ones; its open, which
    # grey follows, does not reach them (taken until the tail was checked: seen red without it).
    ("png damaged zTXt after the image", lambda: png_with_chunk_after_the_image(b"zTXt", b"Comment\0\1" + zlib.compress(b"x"))),
    ("png short pHYs after the image", lambda: png_with_chunk_after_the_image(b"pHYs", b"\0\0")),
    ("png iCCP after the image", lambda: png_with_chunk_after_the_image(b"iCCP", b"icc\0\1" + zlib.compress(b"x"))),
    ("gif", lambda: pil(photo().quantize(64), "GIF")),
]


@pytest.mark.parametrize(("name", "make"), FAST, ids=[name for name, _ in FAST])
def test_the_fast_path_gives_pillows_grey_pixels(name: str, make: Callable[[], bytes]) -> None:
    data = make()
    fast, ref = fast_grey(data), pillow_grey(data)
    assert fast is not None, f"{name} fell back to Pillow"
    assert (fast.mode, fast.size) == (ref.mode, ref.size) == ("L", SIZE)
    assert np.array_equal(np.asarray(fast), np.asarray(ref)), name
    assert len(np.unique(np.asarray(ref))) > 1, "a flat test picture proves little"


@pytest.mark.parametrize(("name", "make"), SLOW, ids=[name for name, _ in SLOW])
def test_other_kinds_are_left_to_pillow(name: str, make: Callable[[], bytes]) -> None:
    assert fast_grey(make()) is None, name


def test_metadata_written_by_exiftool_keeps_the_fast_path_and_its_pixels(tmp_path: Path, exiftool: str) -> None:
    files = {"a.png": pil(photo(), "PNG"), "b.webp": pil(photo(), "WEBP", quality=80), "c.tif": pil(photo(), "TIFF", compression="tiff_lzw")}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    subprocess.run([exiftool, "-q", "-overwrite_original", "-XMP-plus:DataMining=DMI-PROHIBITED",
                    "-XMP-dc:Rights=(c) test", "-EXIF:Artist=someone", *sorted(str(p) for p in tmp_path.iterdir())], check=True)
    for name, data in files.items():
        edited = (tmp_path / name).read_bytes()
        assert edited != data, name
        fast = fast_grey(edited)
        assert fast is not None, name
        assert np.array_equal(np.asarray(fast), np.asarray(pillow_grey(data))), name


def pillow_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imagedecode, "grey", lambda img, data: None)
    monkeypatch.setattr(imagedecode, "plain_grey", lambda data, fmt: None)


# PNG grey is handed on as the decoder's own array (no copy); the others go through Pillow's RGB -> L.
# A plain TIFF and a still WebP are decoded without Pillow's open (plain_grey), the others by ``grey``.
@pytest.mark.parametrize(("fmt", "mode", "path"), [("png", "L", "grey"), ("png", "RGB", "grey"), ("png", "RGBA", "grey"),
                                                   ("webp", "RGBA", "plain_grey"), ("tiff", "RGBA", "plain_grey"),
                                                   ("tiff", "RGB", "plain_grey"), ("tiff", "L", "plain_grey")])
def test_essence_is_the_same_through_either_decode(monkeypatch: pytest.MonkeyPatch, fmt: str, mode: str, path: str) -> None:
    data = pil(photo(mode, seed=11, size=(300, 200)), fmt.upper(), **({"quality": 85} if fmt == "webp" else {}))
    calls: list[object] = []
    real = getattr(imagedecode, path)

    def counted(*args: object) -> Image.Image | None:
        found = real(*args)
        calls.append(found)
        return found

    monkeypatch.setattr(imagedecode, path, counted)
    fast = essence(data, fmt)
    assert len(calls) == 1 and calls[0] is not None  # the fast path was taken
    pillow_only(monkeypatch)
    slow = essence(data, fmt)
    assert fast.perceptual is not None and fast.hash is not None
    assert (fast.hash, fast.perceptual, fast.regions, fast.probes) == (slow.hash, slow.perceptual, slow.regions, slow.probes)
    assert np.array_equal(fast.view, slow.view)


def test_a_pixel_hash_is_still_made_from_pillows_full_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    """``legacy`` (a ledger holding v1 pixel hashes) needs the full RGBA image: Pillow decodes it."""
    seen: list[object] = []
    monkeypatch.setattr(imagedecode, "grey", lambda img, data: seen.append(img))
    monkeypatch.setattr(imagedecode, "plain_grey", lambda data, fmt: seen.append(data))
    for fmt in ("png", "tiff", "webp"):
        found = essence(pil(photo(), fmt.upper()), fmt, legacy=True, probes=False)
        assert seen == [] and found.legacy_hash is not None


def test_an_image_over_the_budget_is_refused_before_imagecodecs_sees_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imagedecode, "decode_budget", lambda: 1000)
    data = pil(photo(), "PNG")
    monkeypatch.setattr(imagedecode, "_plan", lambda img, data: pytest.fail("decoded past the budget"))
    found = essence(data, "png")
    assert found.perceptual is None and "memory bound" in (found.reason or "")
    for fmt in ("tiff", "webp"):  # decoded without Pillow's open: left to Pillow, which refuses in the same words
        plain = pil(photo(), fmt.upper())
        assert imagedecode.plain_grey(plain, fmt) is None
        assert essence(plain, fmt).reason == found.reason


def test_a_fast_decode_above_the_budget_is_left_to_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    """16-bit RGBA holds 8 bytes a pixel before its 8-bit copy: more than Pillow's own decode needs."""
    data = pypng_file(wide(4), greyscale=False, alpha=True, bitdepth=16)
    pixels = SIZE[0] * SIZE[1]
    monkeypatch.setattr(imagedecode, "decode_budget", lambda: pixels * 10)  # Pillow's RGBA: 9 bytes a pixel
    assert fast_grey(data) is None
    assert essence(data, "png").perceptual is not None


def test_without_imagecodecs_pillow_decodes_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    data = pil(photo(), "WEBP", quality=80)
    with_it = essence(data, "webp")
    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # ``import imagecodecs`` now raises ImportError
    assert fast_grey(data) is None
    assert essence(data, "webp") == with_it


def test_threads_decoding_at_once_get_each_their_own_pixels() -> None:
    """imagecodecs releases the GIL while decoding; a server calls essence from several threads."""
    from concurrent.futures import ThreadPoolExecutor

    files = [(pil(photo(seed=s), fmt.upper()), fmt) for s in range(4) for fmt in ("png", "webp", "tiff")]
    alone = [essence(data, fmt, probes=False) for data, fmt in files]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda file: essence(*file, probes=False), files * 3))
    assert together == alone * 3
    assert len({e.hash for e in alone}) == len(files) and all(e.perceptual for e in alone)


# --- damaged files ------------------------------------------------------------------------------------

# Data after IEND (which some writers append): a PNG's chunks are all checksummed, so only damage
# there leaves a PNG that libpng decodes, for the comparison to be about something.
TRAILER = bytes(range(256)) * 4
FUZZED = {
    "png": lambda: pil(photo(size=(40, 30)), "PNG") + TRAILER,
    "png-interlaced": lambda: pypng_file(np.asarray(photo("RGBA", size=(40, 30))), greyscale=False, alpha=True, bitdepth=8,
                                         interlace=True) + TRAILER,
    "png-palette": lambda: pil(photo(size=(40, 30)).quantize(16), "PNG", transparency=2) + TRAILER,
    "png-16-bit": lambda: pypng_file(wide(3, size=(40, 30)), greyscale=False, alpha=False, bitdepth=16) + TRAILER,
    "webp-lossy": lambda: pil(photo(size=(40, 30)), "WEBP", quality=70),
    "webp-lossless-alpha": lambda: pil(photo("RGBA", size=(40, 30)), "WEBP", lossless=True),
    "webp-animated": lambda: animated_webp(lossless=False, alpha=True),
    "tiff-lzw": lambda: pil(photo(size=(40, 30)), "TIFF", compression="tiff_lzw"),
    "tiff-tiles": lambda: tiff_file(np.asarray(photo(size=(40, 30))), photometric="rgb", tile=(16, 16), compression="lzw"),
    "tiff-packbits": lambda: pil(photo(size=(40, 30)), "TIFF", compression="packbits"),
    "tiff-raw": lambda: pil(photo(size=(40, 30)), "TIFF"),
}
MUTANTS = int(os.environ.get("RIGHTSMETA_FUZZ", "150"))  # mutants of each kind (RIGHTSMETA_FUZZ=1200: the long run)


def compared(kind: str, mutants: Iterable[tuple[int, bytes]], decode: Callable[[bytes], Any]) -> dict[str, int]:
    """Each mutant's grey by ``decode`` compared with Pillow's; how many were the same, left to
    Pillow (``decode`` gave None) and refused (``decode`` raised: Pillow's open or size check)."""
    counts = {"same": 0, "left to Pillow": 0, "refused": 0}
    for n, mutant in mutants:
        try:
            fast = decode(mutant)
        except Exception:
            counts["refused"] += 1
            continue
        if fast is None:
            counts["left to Pillow"] += 1
            continue
        try:
            ref = pillow_grey(mutant)
        except Exception as exc:
            raise AssertionError(f"{kind} mutant {n}: decoded what Pillow refuses ({exc})") from exc
        assert np.array_equal(np.asarray(fast), np.asarray(ref)), f"{kind} mutant {n}: other pixels"
        counts["same"] += 1
    return counts


def in_child(module: str, call: str) -> dict[str, int]:
    """The counts ``module.call`` gives in a child process under the address-space limit verify's
    workers run with, so a crash in C code or an allocation past the limit fails the test instead
    of ending the run."""
    code = (
        f"import json, resource, {module} as t; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)); "
        f"print(json.dumps(t.{call}))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    counts: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return counts


def fuzz(kind: str) -> dict[str, int]:
    return compared(kind, seeded_mutants(FUZZED[kind](), MUTANTS, b"\xff\xff\xff\x7f"), fast_grey)


@pytest.mark.parametrize("kind", sorted(FUZZED))
def test_damaged_files_give_pillows_pixels_or_fall_back_and_never_crash(kind: str) -> None:
    counts = in_child("test_imagedecode", f"fuzz({kind!r})")
    assert sum(counts.values()) == MUTANTS
    assert counts["same"] > 0, counts  # damage past the image data leaves it decodable, by both


@pytest.mark.parametrize("name", [name for name, _ in SLOW if "after the image" in name])
def test_a_png_whose_tail_pillows_load_refuses_is_refused_as_before(name: str) -> None:
    data = dict(SLOW)[name]()
    with pytest.raises((SyntaxError, ValueError)) as refused:
        pillow_grey(data)
    found = essence(data, "png")
    assert found.perceptual is None and str(refused.value) in (found.reason or ""), found.reason
