"""Exact hashes of PNG, WebP and TIFF from their coded data (``v2:``, rightsmeta/codedhash.py; issue 12).

A metadata edit, by rightsmeta (XMP, a C2PA manifest) or by ExifTool (XMP, EXIF, IPTC, stripping
everything), keeps the hash; one pixel changed does not. Ledgers recorded before hold the pixel
hash (v1) of these formats: such a ledger asks for it (``needs_legacy_hash``) and still finds the
file exactly; a ledger without such entries never makes the full-size RGBA copy.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import material
import numpy as np
import pytest
from PIL import Image
from samples import seeded_mutants
from test_essence_fast import old_definition

import rightsmeta
from rightsmeta import keys
from rightsmeta.codedhash import png_hash, tiff_hash, webp_hash
from rightsmeta.fingerprint import HASH_V2, _pixel_hash, essence
from rightsmeta.imagedecode import to_rgba
from rightsmeta.ledger import Ledger, Work

ASSERTION = rightsmeta.Assertion.build(deny=["ai"])
SUFFIX = {"png": "png", "webp": "webp", "tiff": "tif"}

# (format, Pillow save options): the encodings the hashes walk (zlib strips, predictors, alpha,
# palettes, lossy and lossless WebP).
ENCODINGS = [
    ("png", "RGB", {}),
    ("png", "RGBA", {}),
    ("png", "P", {}),
    ("webp", "RGB", {"quality": 90}),
    ("webp", "RGBA", {"lossless": True}),
    ("tiff", "RGB", {}),
    ("tiff", "RGB", {"compression": "tiff_lzw"}),
    ("tiff", "RGBA", {"compression": "tiff_adobe_deflate"}),
]


def picture(mode: str, seed: int = 3, size: tuple[int, int] = (240, 180)) -> Image.Image:
    img = material.photo(seed, size)
    if mode == "RGBA":
        alpha = Image.fromarray(np.tile(np.linspace(40, 255, size[0], dtype=np.uint8), (size[1], 1)), "L")
        img = img.convert("RGBA")
        img.putalpha(alpha)
    return img.quantize(64) if mode == "P" else img.convert(mode)


def encode(img: Image.Image, fmt: str, **save: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt.upper(), **save)
    return buf.getvalue()


@pytest.fixture(scope="module")
def identity() -> keys.Identity:
    return keys.make_identity("Test Creator")


@pytest.mark.parametrize(("fmt", "mode", "save"), ENCODINGS, ids=[f"{f}-{m}-{'-'.join(map(str, s.values()))}" for f, m, s in ENCODINGS])
def test_metadata_edits_keep_the_hash_and_a_pixel_changes_it(
    tmp_path: Path, exiftool: str, identity: keys.Identity, fmt: str, mode: str, save: dict[str, object]
) -> None:
    img = picture(mode)
    data = encode(img, fmt, **save)
    found = essence(data, fmt, probes=False)
    assert found.hash is not None and found.hash.startswith(HASH_V2) and len(found.hash) == 67, found
    assert found.legacy_hash is None and found.perceptual is not None
    path = tmp_path / f"work.{SUFFIX[fmt]}"
    path.write_bytes(data)
    edits = [
        ("rightsmeta tag", lambda: rightsmeta.tag(str(path), ASSERTION).status == "tagged"),
        ("rightsmeta tag, C2PA signed", lambda: rightsmeta.tag(str(path), ASSERTION, identity=identity).status == "tagged"),
        ("exiftool XMP, EXIF, IPTC", lambda: subprocess.run(
            [exiftool, "-q", "-overwrite_original", "-XMP-dc:Title=a title", "-EXIF:Artist=someone",
             "-IPTC:Keywords=kw", "-XMP-plus:DataMining=PLUS-DMI-PROHIBITED", str(path)], check=True) is not None),
        ("exiftool -all=", lambda: subprocess.run([exiftool, "-q", "-overwrite_original", "-all=", str(path)],
                                                  check=True) is not None),
    ]
    for name, edit in edits:
        before = path.read_bytes()
        assert edit(), name
        after = path.read_bytes()
        assert after != before, f"{name} changed nothing"
        assert essence(after, fmt, probes=False).hash == found.hash, name
    # One pixel changed, encoded the same way: another hash (lossy WebP re-encodes losslessly here,
    # so the change cannot be quantised away).
    changed = img.copy()
    x, y = 37, 41
    pixel = changed.getpixel((x, y))
    changed.putpixel((x, y), (pixel + 1) % 64 if mode == "P" else tuple((v + 128) % 256 for v in pixel))  # type: ignore[union-attr]
    lossless = {**save, "lossless": True} if fmt == "webp" else save
    same = essence(encode(img, fmt, **lossless), fmt, probes=False).hash
    other = essence(encode(changed, fmt, **lossless), fmt, probes=False).hash
    assert other is not None and other.startswith(HASH_V2) and other != same


def test_the_older_pixel_hash_is_computed_only_when_asked(tmp_path: Path) -> None:
    for fmt, mode, save in ENCODINGS:
        data = encode(picture(mode, seed=5), fmt, **save)
        asked = essence(data, fmt, probes=False, legacy=True)
        assert asked.legacy_hash == old_definition(data).hash, (fmt, mode, save)
        assert asked.hash == essence(data, fmt, probes=False).hash and asked.hash != asked.legacy_hash


def test_a_ledger_of_pixel_hashes_still_matches_exactly(tmp_path: Path, exiftool: str) -> None:
    """Works recorded with v1 hashes (as main recorded PNG, WebP and TIFF) are found exactly, and
    a ledger holding none never asks for them."""
    works = []
    for n, (fmt, mode, save) in enumerate(ENCODINGS):
        path = tmp_path / f"w{n}.{SUFFIX[fmt]}"
        path.write_bytes(encode(picture(mode, seed=20 + n), fmt, **save))
        assert rightsmeta.tag(str(path), ASSERTION).status == "tagged"
        works.append((Work.create(str(path), fmt, old_definition(path.read_bytes()), ASSERTION, id=f"old-{n}"), path))
    with Ledger.open(tmp_path / "new.sqlite3") as fresh:
        fresh.record(Work.create("x.png", "png", essence(works[0][1].read_bytes(), "png", probes=False), ASSERTION))
        assert not any(fresh.needs_legacy_hash(f) for f in SUFFIX)
    with Ledger.open(tmp_path / "old.sqlite3") as ledger:
        ledger.record_many(work for work, _ in works)
        assert all(ledger.needs_legacy_hash(f) for f in SUFFIX)
        for work, path in works:
            subprocess.run([exiftool, "-q", "-overwrite_original", "-all=", str(path)], check=True)
            seen = essence(path.read_bytes(), work.format, legacy=ledger.needs_legacy_hash(work.format))
            match = ledger.find(seen)
            assert match is not None and match.work.id == work.id and match.exact, (work.id, match)


def test_the_grey_working_image_is_the_one_made_through_rgba() -> None:
    """The perceptual codes are cut from grey made straight from the decoded mode: the same levels
    as the RGBA copy's grey they were cut from before (so recorded codes stay bit-identical)."""
    from rightsmeta.imagedecode import to_grey

    base = picture("RGBA", seed=7, size=(64, 48))
    for mode in ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "I", "F", "I;16"):
        img = base.convert("RGB").quantize(64).convert(mode) if mode in ("P", "PA") else base.convert(mode)
        assert np.array_equal(np.asarray(to_grey(img)), np.asarray(to_rgba(img).convert("L"))), mode


def test_walks_that_fail_fall_back_to_the_pixel_hash() -> None:
    img = picture("RGB", seed=9, size=(64, 48))
    tif = bytearray(encode(img, "tiff"))
    # Point the strip table at the header many times over: overlapping strips are not hashed.
    from rightsmeta.carriers import tiff

    entries, _ = tiff.read_ifd(bytes(tif), tiff.first_ifd_offset(bytes(tif), "<"), "<")
    counts = next(e for e in entries if e.tag == 279)
    assert counts.count == 1  # one strip: its count made larger than the file
    tif[counts.value_pos : counts.value_pos + 4] = (len(tif) + 1).to_bytes(4, "little")
    assert tiff_hash(bytes(tif)) is None
    assert png_hash(b"\x89PNG\r\n\x1a\n") is None and webp_hash(b"RIFF\x04\0\0\0WEBP") is None
    # Old-style JPEG compression keeps its data elsewhere: no coded hash.
    plain = encode(img, "tiff")
    entries, _ = tiff.read_ifd(plain, tiff.first_ifd_offset(plain, "<"), "<")
    compression = next(e for e in entries if e.tag == 259)
    old_jpeg = bytearray(plain)
    old_jpeg[compression.value_pos : compression.value_pos + 2] = (6).to_bytes(2, "little")
    assert tiff_hash(bytes(old_jpeg)) is None
    # A PNG cut before its IEND: the walk refuses it, Pillow decodes it, and the pixel hash stands in.
    png = encode(img, "png")
    cut = png[: png.rindex(b"IEND") - 4]
    assert png_hash(cut) is None
    assert essence(cut, "png").hash == _pixel_hash(to_rgba(img)) == essence(png, "png", legacy=True).legacy_hash


@pytest.mark.parametrize("fmt", ["png", "webp", "tiff"])
def test_damaged_files_never_raise_and_keep_the_hash_only_if_the_coded_bytes_are_intact(fmt: str) -> None:
    data = encode(picture("RGB", seed=12, size=(96, 72)), fmt, **({"lossless": True} if fmt == "webp" else {}))
    original = essence(data, fmt, probes=False).hash
    for n, mutant in seeded_mutants(data, 90, b"\xff\xff\xff\x7f"):
        found = essence(mutant, fmt, probes=False)
        if found.hash == original:
            # The same hash: the pixels must be the same too.
            with Image.open(io.BytesIO(mutant)) as a, Image.open(io.BytesIO(data)) as b:
                assert np.array_equal(np.asarray(a.convert("RGBA")), np.asarray(b.convert("RGBA"))), n


@pytest.mark.parametrize(("kind", "value", "hashed"), [
    (3, 1, True),  # SHORT 1: uncompressed, hashed
    (4, 1, True),  # LONG 1
    (3, 6, False),  # old-style JPEG: its data lies outside the strips
    (1, 1, False),  # BYTE: a compression libtiff does not read
    (10, 1, False),  # SRATIONAL
])
def test_a_tiff_compression_that_is_no_short_or_long_number_is_not_hashed(kind: int, value: int, hashed: bool) -> None:
    out = io.BytesIO()
    Image.new("RGB", (16, 12), (10, 200, 30)).save(out, "TIFF")
    data = bytearray(out.getvalue())
    assert data[:2] == b"II"
    ifd = int.from_bytes(data[4:8], "little")
    for at in range(ifd + 2, ifd + 2 + 12 * int.from_bytes(data[ifd : ifd + 2], "little"), 12):
        if int.from_bytes(data[at : at + 2], "little") == 259:
            data[at + 2 : at + 4] = kind.to_bytes(2, "little")
            data[at + 8 : at + 12] = value.to_bytes(4, "little")
    assert (tiff_hash(bytes(data)) is not None) == hashed
