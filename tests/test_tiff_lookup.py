"""tiff.find_tag looks a tag up without making every entry: it must answer as a full read of
the directories (read_ifd) does, in both byte orders, whatever tags share a byte with it."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from rightsmeta.carriers import tiff
from rightsmeta.carriers.containers import extract


def _tiff(order: str, ifd0: list[tuple[int, int, int, bytes]], exif: list[tuple[int, int, int, bytes]]) -> bytes:
    """A classic TIFF: header, IFD0 (with an Exif IFD pointer when ``exif``), the Exif IFD, then
    the out-of-line values; entries are (tag, type, count, value bytes)."""
    rows0 = ifd0 + ([(tiff.EXIF_IFD_POINTER, 4, 1, b"")] if exif else [])
    size0 = 2 + 12 * len(rows0) + 4
    exif_at = 8 + size0
    values_at = exif_at + (2 + 12 * len(exif) + 4 if exif else 0)
    values = bytearray()

    def directory(rows: list[tuple[int, int, int, bytes]]) -> bytes:
        out = struct.pack(order + "H", len(rows))
        for tag, ftype, count, value in sorted(rows):
            if tag == tiff.EXIF_IFD_POINTER:
                field = struct.pack(order + "I", exif_at)
            elif len(value) > 4:
                field = struct.pack(order + "I", values_at + len(values))
                values.extend(value + b"\x00" * (len(value) & 1))
            else:
                field = value.ljust(4, b"\x00")
            out += struct.pack(order + "HHI4s", tag, ftype, count, field)
        return out + b"\x00\x00\x00\x00"

    head = (b"II*\x00" if order == "<" else b"MM\x00*") + struct.pack(order + "I", 8)
    return head + directory(rows0) + (directory(exif) if exif else b"") + bytes(values)


def _full_read(data: bytes, tag: int, ifd: str) -> tuple[int, int, bytes] | None:
    order = tiff.byte_order(data)
    entries, _ = tiff.read_ifd(data, tiff.first_ifd_offset(data, order), order)
    if ifd == "exif":
        pointer = next((e for e in entries if e.tag == tiff.EXIF_IFD_POINTER), None)
        if pointer is None:
            return None
        entries, _ = tiff.read_ifd(data, tiff.sub_ifd_offset(pointer, order), order)
    entry = next((e for e in entries if e.tag == tag), None)
    return None if entry is None else (entry.type, entry.count, tiff.value_bytes(data, entry))


@pytest.mark.parametrize("order", ["<", ">"])
def test_find_tag_answers_as_a_full_read_of_the_directories(order: str) -> None:
    # 0x0112 and 0x9212 share their low byte, 0x9212 and 0x9286 their high byte, 0x8298 and 0x9882
    # are each other's bytes swapped: the cheap sieve by one byte must never take the wrong one.
    ifd0 = [(0x0112, 3, 1, struct.pack(order + "H", 6)), (0x013B, 2, 12, b"Ada Lovelace"),
            (0x8298, 2, 17, b"(c) 2026 Ada L.\x00\x00"), (0x9882, 7, 2, b"xy")]
    exif = [(0x9212, 2, 3, b"no\x00"), (0x9286, 7, 9, b"ASCII\x00\x00\x00x"), (0x9287, 3, 3, struct.pack(order + "3H", 1, 2, 0)),
            (0x0112, 3, 1, struct.pack(order + "H", 1))]
    data = _tiff(order, ifd0, exif)
    tags = {t for t, *_ in ifd0 + exif} | {0x1292, 0x9292, 0x0012, 0x1200, tiff.EXIF_IFD_POINTER}
    found = 0
    for tag in sorted(tags):
        for ifd in ("ifd0", "exif"):
            expected = _full_read(data, tag, ifd)
            assert tiff.find_tag(data, tag, ifd=ifd) == expected, (hex(tag), ifd)
            found += expected is not None
    assert found == len(ifd0) + len(exif) + 1  # every tag put in was found where it was put, and the pointer
    # Without an Exif IFD, nothing is found in it.
    assert tiff.find_tag(_tiff(order, ifd0, []), 0x9287) is None


def test_find_tag_reads_a_real_tiff_and_its_compact_exif_alike() -> None:
    # Pillow writes the file; extract re-lays out IFD0 and the Exif IFD (the EXIF block image.py reads).
    exif = Image.Exif()
    exif[0x013B] = "Ada Lovelace"
    exif[0x8298] = "(c) 2026"
    exif.get_ifd(tiff.EXIF_IFD_POINTER)[0x9286] = b"ASCII\x00\x00\x00rights"
    out = io.BytesIO()
    Image.new("RGB", (32, 16), "teal").save(out, "TIFF", exif=exif)
    data = out.getvalue()
    block = extract(data, "tiff").exif
    assert block is not None
    for source in (data, block):
        for tag in (0x013B, 0x8298, 0x9286, 0x0100, 0x9287):
            for ifd in ("ifd0", "exif"):
                assert tiff.find_tag(source, tag, ifd=ifd) == _full_read(source, tag, ifd)
    assert tiff.find_tag(data, 0x013B, ifd="ifd0") == (2, 13, b"Ada Lovelace\x00")
