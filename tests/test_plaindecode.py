"""A plain TIFF or still WebP decoded without Pillow's open is Pillow's grey, pixel for pixel
(rightsmeta/imagedecode.py ``plain_grey``; issue 12).

Every kind taken is made by a real writer (Pillow, tifffile, ExifTool adding metadata) and its grey
image compared with ``imagedecode.to_grey`` of Pillow's open and full decode; the kinds left to Pillow
are shown to go there, with Pillow's refusals kept; damaged files, and headers damaged at every
byte, either give Pillow's pixels or are left to Pillow, in a memory-limited child process.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from samples import seeded_mutants
from test_imagedecode import animated_webp, compared, in_child, photo, pil, pillow_grey, tiff_file

from rightsmeta import imagedecode
from rightsmeta.fingerprint import essence


def rgbx(size: tuple[int, int] = (67, 45)) -> np.ndarray:
    """RGB samples and a fourth, unspecified one that differs (Pillow drops it)."""
    rgb = np.asarray(photo(size=size))
    return np.dstack([rgb, 255 - rgb[..., :1]])


# (name, file): every kind taken without Pillow's open.
PLAIN: list[tuple[str, Callable[[], bytes]]] = [
    *[(f"tiff {mode}", lambda mode=mode: pil(photo(mode), "TIFF")) for mode in ("L", "RGB", "RGBA")],
    ("tiff RGB big-endian", lambda: tiff_file(np.asarray(photo()), photometric="rgb", byteorder=">")),
    ("tiff RGB strips of 7 rows", lambda: tiff_file(np.asarray(photo()), photometric="rgb", rowsperstrip=7)),
    ("tiff L strips of 1 row", lambda: tiff_file(np.asarray(photo("L")), photometric="minisblack", rowsperstrip=1)),
    ("tiff RGB extra sample", lambda: tiff_file(rgbx(), photometric="rgb", extrasamples=["unspecified"])),
    ("tiff RGBA unassociated", lambda: tiff_file(np.asarray(photo("RGBA")), photometric="rgb", extrasamples=["unassalpha"])),
    ("tiff orientation 1", lambda: pil(photo(), "TIFF", tiffinfo={274: 1})),
    ("webp lossy", lambda: pil(photo(), "WEBP", quality=75)),
    ("webp lossless", lambda: pil(photo(), "WEBP", lossless=True)),
    ("webp lossy alpha", lambda: pil(photo("RGBA"), "WEBP", quality=60)),
    ("webp lossless alpha", lambda: pil(photo("RGBA"), "WEBP", lossless=True)),
    ("webp with EXIF and ICC", lambda: pil(photo(), "WEBP", quality=80, exif=Image.Exif().tobytes(),
                                           icc_profile=b"\0" * 128)),
]


def noncontiguous_strips() -> bytes:
    """Two strips, the first moved to the end of the file (its offset pointed there)."""
    data = bytearray(tiff_file(np.asarray(photo()), photometric="rgb", rowsperstrip=23))
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
        page = tif.pages.first
        offsets, counts = page.dataoffsets, page.databytecounts
        at = page.tags["StripOffsets"].valueoffset
    data += data[offsets[0] : offsets[0] + counts[0]]
    data[at : at + 4] = (len(data) - counts[0]).to_bytes(4, "little")
    return bytes(data)


# Kinds left to Pillow's open (plain_grey returns None), each still decoded to Pillow's pixels.
LEFT: list[tuple[str, Callable[[], bytes]]] = [
    ("tiff LZW", lambda: pil(photo(), "TIFF", compression="tiff_lzw")),
    ("tiff tiles", lambda: tiff_file(np.asarray(photo()), photometric="rgb", tile=(16, 32))),
    ("tiff planar", lambda: tiff_file(np.asarray(photo()), photometric="rgb", planarconfig="separate")),
    ("tiff 16-bit", lambda: tiff_file(np.asarray(photo("L"), np.uint16) * 257, photometric="minisblack")),
    ("tiff LA", lambda: tiff_file(np.asarray(photo("LA")), photometric="minisblack", extrasamples=["unassalpha"])),
    ("tiff premultiplied alpha", lambda: tiff_file(np.asarray(photo("RGBA")), photometric="rgb", extrasamples=["assocalpha"])),
    ("tiff MinIsWhite", lambda: tiff_file(np.asarray(photo("L")), photometric="miniswhite")),
    ("tiff CMYK", lambda: pil(photo("CMYK"), "TIFF")),
    ("tiff palette", lambda: pil(photo().quantize(64), "TIFF")),
    *[(f"tiff orientation {o}", lambda o=o: pil(photo(), "TIFF", tiffinfo={274: o})) for o in (2, 3, 6, 8)],
    ("tiff strips out of order", noncontiguous_strips),
    ("webp animated", lambda: animated_webp(lossless=False, alpha=False)),
    ("webp animated alpha", lambda: animated_webp(lossless=True, alpha=True)),
]


def fmt_of(name: str) -> str:
    return name.split()[0]


@pytest.mark.parametrize(("name", "make"), PLAIN, ids=[name for name, _ in PLAIN])
def test_plain_files_give_pillows_grey_without_pillows_open(name: str, make: Callable[[], bytes]) -> None:
    data = make()
    plain, ref = imagedecode.plain_grey(data, fmt_of(name)), pillow_grey(data)
    assert plain is not None, f"{name} was left to Pillow"
    assert (plain.mode, plain.size) == (ref.mode, ref.size) == ("L", (67, 45))
    assert np.array_equal(np.asarray(plain), np.asarray(ref)), name
    assert len(np.unique(np.asarray(ref))) > 1, "a flat test picture proves little"


@pytest.mark.parametrize(("name", "make"), LEFT, ids=[name for name, _ in LEFT])
def test_other_kinds_are_left_to_pillows_open(name: str, make: Callable[[], bytes]) -> None:
    assert imagedecode.plain_grey(make(), fmt_of(name)) is None, name


def test_a_tiff_with_an_exif_directory_is_left_to_pillow(tmp_path: Path, exiftool: str) -> None:
    """Pillow's load reads the Exif directory too, and fails on a damaged one."""
    path = tmp_path / "a.tif"
    path.write_bytes(pil(photo(), "TIFF"))
    subprocess.run([exiftool, "-q", "-overwrite_original", "-EXIF:DateTimeOriginal=2024:01:01 00:00:00", str(path)],
                   check=True)
    data = path.read_bytes()
    assert b"2024:01:01" in data
    assert imagedecode.plain_grey(data, "tiff") is None
    assert np.array_equal(np.asarray(essence(data, "tiff").view), np.asarray(essence(pil(photo(), "TIFF"), "tiff").view))


def test_metadata_written_by_exiftool_keeps_the_plain_path_and_its_pixels(tmp_path: Path, exiftool: str) -> None:
    files = {"a.tif": pil(photo(), "TIFF"), "b.webp": pil(photo(), "WEBP", quality=80),
             "c.tif": tiff_file(np.asarray(photo()), photometric="rgb", rowsperstrip=7)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    subprocess.run([exiftool, "-q", "-overwrite_original", "-XMP-plus:DataMining=DMI-PROHIBITED",
                    "-XMP-dc:Rights=(c) test", "-IFD0:Artist=someone", *sorted(str(p) for p in tmp_path.iterdir())],
                   check=True)
    for name, data in files.items():
        edited = (tmp_path / name).read_bytes()
        assert edited != data, name
        plain = imagedecode.plain_grey(edited, "webp" if name.endswith("webp") else "tiff")
        assert plain is not None, name
        assert np.array_equal(np.asarray(plain), np.asarray(pillow_grey(data))), name


@pytest.mark.parametrize("compression", ["raw", "tiff_lzw"])
def test_a_tiff_turned_by_its_xmp_gives_pillows_turned_pixels(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                               exiftool: str, compression: str) -> None:
    """Pillow's TIFF load turns the picture by an XMP tiff:Orientation when there is no Orientation
    entry; neither imagedecode path did (seen red without the check)."""
    path = tmp_path / "a.tif"
    path.write_bytes(pil(photo(), "TIFF", compression=compression))
    subprocess.run([exiftool, "-q", "-overwrite_original", "-XMP-tiff:Orientation#=3", str(path)], check=True)
    data = path.read_bytes()
    assert not np.array_equal(np.asarray(pillow_grey(data)), np.asarray(photo("L")))  # Pillow turned it
    assert imagedecode.plain_grey(data, "tiff") is None
    with Image.open(io.BytesIO(data)) as img:
        assert imagedecode.grey(img, data) is None
    found = essence(data, "tiff")
    monkeypatch.setattr(imagedecode, "plain_grey", lambda data, fmt: None)
    monkeypatch.setattr(imagedecode, "grey", lambda img, data: None)
    assert essence(data, "tiff") == found and found.perceptual
    monkeypatch.undo()
    subprocess.run([exiftool, "-q", "-overwrite_original", "-XMP-tiff:Orientation#=1", str(path)], check=True)
    if compression == "raw":  # an XMP orientation of 1 turns nothing: still taken
        assert imagedecode.plain_grey(path.read_bytes(), "tiff") is not None


def test_the_essence_is_the_same_as_through_pillows_open(monkeypatch: pytest.MonkeyPatch) -> None:
    files = [(pil(photo(mode, seed=s, size=(300, 200)), fmt.upper()), fmt)
             for s in (1, 2) for mode, fmt in (("RGB", "tiff"), ("L", "tiff"), ("RGBA", "tiff"), ("RGB", "webp"))]
    fast = [essence(data, fmt) for data, fmt in files]
    monkeypatch.setattr(imagedecode, "plain_grey", lambda data, fmt: None)
    assert [essence(data, fmt) for data, fmt in files] == fast
    assert all(e.perceptual for e in fast)


@pytest.mark.parametrize("fmt", ["tiff", "webp"])
def test_pillows_size_limits_still_refuse(monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    data = pil(photo(), fmt.upper())
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a caller lowering Pillow's bomb limit
    assert imagedecode.plain_grey(data, fmt) is None
    assert "decompression bomb" in (essence(data, fmt).reason or "")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    monkeypatch.setattr(imagedecode, "MAX_PIXELS", 1000)
    assert imagedecode.plain_grey(data, fmt) is None
    assert "more than the 1000 allowed" in (essence(data, fmt).reason or "")


@pytest.mark.parametrize(("fmt", "plugin"), [("tiff", "TiffImagePlugin"), ("webp", "WebPImagePlugin")])
def test_pillow_imports_only_the_plugin_it_needs(fmt: str, plugin: str, tmp_path: Path) -> None:
    """Image.open(formats=[...]) of a format not yet registered imports all 47 plugins (~30 ms)."""
    left = pil(photo(), fmt.upper(), **({"compression": "tiff_lzw"} if fmt == "tiff" else {"save_all": True}))
    (tmp_path / "f").write_bytes(left if fmt == "tiff" else animated_webp(lossless=False, alpha=False))
    code = ("import sys; from pathlib import Path; from rightsmeta.fingerprint import essence; "
            f"e = essence(Path({str(tmp_path / 'f')!r}).read_bytes(), {fmt!r}); assert e.perceptual; "
            f"print(sorted(m for m in sys.modules if m.startswith('PIL.') and m.endswith('ImagePlugin')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded = json.loads(done.stdout.strip().replace("'", '"'))
    assert f"PIL.{plugin}" in loaded and "PIL.PsdImagePlugin" not in loaded, loaded


# --- damaged files ------------------------------------------------------------------------------------

SMALL = (40, 30)
FUZZED = {
    "tiff-rgb": lambda: pil(photo(size=SMALL), "TIFF"),
    "tiff-strips": lambda: tiff_file(np.asarray(photo(size=SMALL)), photometric="rgb", rowsperstrip=7),
    "tiff-rgba-big-endian": lambda: tiff_file(np.asarray(photo("RGBA", size=SMALL)), photometric="rgb",
                                              extrasamples=["unassalpha"], byteorder=">"),
    "webp-lossy": lambda: pil(photo(size=SMALL), "WEBP", quality=70),
    "webp-lossless-alpha": lambda: pil(photo("RGBA", size=SMALL), "WEBP", lossless=True),
}
MUTANTS = int(os.environ.get("RIGHTSMETA_FUZZ", "150"))


def header_mutants(data: bytes, end: int) -> Iterator[tuple[int, bytes]]:
    """Every byte of data[:end] (the header, the directory or chunk headers) set to 0, to 0xFF and
    with its low bit flipped."""
    n = 0
    for at in range(end):
        for value in {0, 0xFF, data[at] ^ 1}:
            mutant = bytearray(data)
            mutant[at] = value
            yield n, bytes(mutant)
            n += 1


def header_end(data: bytes) -> int:
    """Where the pixels start: everything before is header (WebP: the RIFF, VP8X and bitstream headers)."""
    if data.startswith(b"RIFF"):
        return 64
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages.first
        ifd_end = page.offset + 2 + 12 * len(page.tags) + 4
        values_end = max(t.valueoffset + t.count * 8 for t in page.tags)  # generous: the out-of-line values
        return min(len(data), max(ifd_end, values_end, min(page.dataoffsets)))


def fuzz(kind: str, header: bool) -> dict[str, int]:
    """Compare every mutant's plain grey with Pillow's; count what happened (run in a child)."""
    data = FUZZED[kind]()
    mutants = header_mutants(data, header_end(data)) if header else seeded_mutants(data, MUTANTS, b"\xff\xff\xff\x7f")
    return compared(kind, mutants, lambda mutant: imagedecode.plain_grey(mutant, kind.split("-")[0]))


@pytest.mark.parametrize("header", [False, True], ids=["anywhere", "header"])
@pytest.mark.parametrize("kind", sorted(FUZZED))
def test_damaged_files_give_pillows_pixels_or_are_left_to_pillow(kind: str, header: bool) -> None:
    counts = in_child("test_plaindecode", f"fuzz({kind!r}, {header!r})")
    assert counts["refused"] == 0, counts  # plain_grey never raises: what it cannot take is left to Pillow
    assert counts["same"] > 0 and counts["left to Pillow"] > 0, counts
    if not header:
        assert sum(counts.values()) == MUTANTS
