"""The container parsers: real files from Pillow, pyexiv2 and ExifTool, truncations, hostile input."""

from __future__ import annotations

import functools
import io
import mmap
import struct
import subprocess
import time
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, features

from rightsmeta.carriers.containers import IMAGE_FORMATS, Blocks, extract, sniff
from rightsmeta.carriers.tiff import byte_order, find_tag
from rightsmeta.errors import MalformedFile, UnsupportedFormat, UsageError

TITLE = "rightsmeta container test"
ARTIST = "Container Tester"
LEARNING = 0x9287  # Exif 3.1 LearningOptOutIn
LEARNING_VALUES = (1, 2, 0)  # "Generative AI/ML Training; Opt-out", as ExifTool writes 1 2 0
ARTIST_TAG = 0x013B

EXTENSIONS = {
    "jpeg": "jpg",
    "png": "png",
    "webp": "webp",
    "tiff": "tif",
    "gif": "gif",
    "heic": "heic",
    "avif": "avif",
}
LOCATIONS = {
    "jpeg": "JPEG APP1",
    "png": "PNG iTXt XML:com.adobe.xmp",
    "webp": "WebP XMP chunk",
    "tiff": "TIFF tag 700",
    "gif": "GIF XMP application extension",
    "heic": "HEIF mime item",
    "avif": "HEIF mime item",
}
PYEXIV2_FORMATS = ("jpeg", "png", "webp", "tiff")


def _heif_available() -> bool:
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        return False
    return True


def _available(fmt: str) -> bool:
    if fmt == "avif":
        return bool(features.check("avif"))
    if fmt == "heic":
        return _heif_available()
    return True


def _fmt_param(fmt: str) -> object:
    reason = "Pillow built without AVIF" if fmt == "avif" else "pillow-heif is not installed (HEIC encoder)"
    return pytest.param(fmt, marks=pytest.mark.skipif(not _available(fmt), reason=reason))


ALL_FORMATS = [_fmt_param(fmt) for fmt in IMAGE_FORMATS]


def _image() -> Image.Image:
    # A patterned 64x64 image, so the compressed pixel data is not trivially short.
    pixels = bytes((x * 7 + y * 13 + c * 50) % 256 for y in range(64) for x in range(64) for c in range(3))
    return Image.frombytes("RGB", (64, 64), pixels)


def _save(fmt: str, **kwargs: object) -> bytes:
    out = io.BytesIO()
    if fmt == "heic":
        # Not through a Pillow opener registered for the whole test process: rightsmeta must read
        # HEIC without one (tests/test_heic.py).
        import pillow_heif

        pillow_heif.from_pillow(_image()).save(out, **kwargs)
    else:
        _image().save(out, format=fmt.upper(), **kwargs)
    return out.getvalue()


def _pillow_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[ARTIST_TAG] = ARTIST
    # Pillow stores a tuple of small ints as SHORT[3]: the values survive any byte-order rewrite.
    exif.get_ifd(0x8769)[LEARNING] = LEARNING_VALUES
    return exif


@pytest.fixture(scope="session")
def plain() -> dict[str, bytes]:
    """One file per available format with no metadata at all."""
    return {fmt: _save(fmt) for fmt in IMAGE_FORMATS if _available(fmt)}


@pytest.fixture(scope="session")
def pyexiv2_tagged() -> dict[str, bytes]:
    """EXIF written by Pillow, XMP added by pyexiv2 (exiv2 files, as other tools leave them)."""
    return _pyexiv2_files()


@functools.cache
def _pyexiv2_files() -> dict[str, bytes]:
    import pyexiv2

    files = {}
    for fmt in PYEXIV2_FORMATS:
        image = pyexiv2.ImageData(_save(fmt, exif=_pillow_exif()))
        try:
            image.modify_xmp({"Xmp.dc.title": {'lang="x-default"': TITLE}})
            files[fmt] = image.get_bytes()
        finally:
            image.close()
    return files


@pytest.fixture(scope="session")
def exiftool_tagged(
    exiftool: str, plain: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, bytes]:
    """XMP and LearningOptOutIn written by ExifTool, in every format (one ExifTool run)."""
    folder = tmp_path_factory.mktemp("exiftool")
    for fmt, data in plain.items():
        (folder / f"sample.{EXTENSIONS[fmt]}").write_bytes(data)
    values = " ".join(map(str, LEARNING_VALUES))
    subprocess.run(
        [
            exiftool,
            "-q",
            "-q",
            "-overwrite_original",
            f"-XMP-dc:Title={TITLE}",
            f"-LearningOptOutIn#={values}",
            f"-Artist={ARTIST}",
            str(folder),
        ],
        check=True,
        capture_output=True,
    )
    return {fmt: (folder / f"sample.{EXTENSIONS[fmt]}").read_bytes() for fmt in plain}


def _learning(exif: bytes) -> tuple[int, ...]:
    found = find_tag(exif, LEARNING)
    assert found is not None
    field_type, count, value = found
    # UNDEFINED[6] holding int16u values as ExifTool writes it, SHORT[3] as Pillow does.
    assert (field_type, count) in ((7, 6), (3, 3))
    return struct.unpack(byte_order(exif) + "3H", value)


def _assert_tagged(blocks: Blocks, fmt: str, *, with_learning: bool = True) -> None:
    assert blocks.xmp is not None and TITLE.encode() in blocks.xmp
    assert blocks.xmp.lstrip().startswith((b"<?xpacket", b"<x:xmpmeta"))
    assert blocks.xmp.rstrip(b"\x00 \n").endswith((b"?>", b"</x:xmpmeta>"))
    assert blocks.xmp_location == LOCATIONS[fmt]
    if fmt == "gif":  # GIF has no EXIF carrier
        assert blocks.exif is None
        return
    assert blocks.exif is not None
    assert blocks.exif[:4] in (b"II*\x00", b"MM\x00*")
    if with_learning:
        assert _learning(blocks.exif) == LEARNING_VALUES
    artist = find_tag(blocks.exif, ARTIST_TAG, ifd="ifd0")
    assert artist is not None and artist[2].rstrip(b"\x00") == ARTIST.encode()


# --- sniffing -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_sniff_real_files(plain: dict[str, bytes], fmt: str) -> None:
    assert sniff(plain[fmt][:64]) == fmt


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"", None),
        (b"hello world", None),
        (b"%PDF-1.7\n", None),
        (b"II+\x00\x08\x00\x00\x00", "tiff"),  # BigTIFF: read, not written
        (b"MM\x00*\x00\x00\x00\x08", "tiff"),
        (b"GIF87a", "gif"),
        (b"RIFF\x00\x00\x00\x00WAVE", None),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "heic"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1avif", "avif"),
        (b"\x00\x00\x00\x14ftypmif1\x00\x00\x00\x00mif1", None),
        (b"\x00\x00\x00\x14ftypavis\x00\x00\x00\x00avis", "avif"),
        (b"\x00\x00\x00\x14ftypheix\x00\x00\x00\x00mif1", "heic"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", None),  # an MP4
    ],
)
def test_sniff_magic(head: bytes, expected: str | None) -> None:
    assert sniff(head) == expected


def test_unknown_format_name() -> None:
    with pytest.raises(UnsupportedFormat):
        extract(b"whatever", "bmp")


def test_a_broken_bigtiff_says_so() -> None:
    # BigTIFF is read (test_creators.py reads a real one); a header pointing nowhere is malformed.
    with pytest.raises(MalformedFile, match="BigTIFF: directory offset 0 is outside"):
        extract(b"II+\x00\x08\x00\x00\x00" + bytes(32), "tiff")


# --- real files -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_no_metadata(plain: dict[str, bytes], fmt: str) -> None:
    blocks = extract(plain[fmt], fmt)
    if fmt == "tiff":
        # A TIFF file's EXIF is its own IFD0, so there is always an EXIF block, just without our tag.
        assert blocks.xmp is None and blocks.xmp_location is None
        assert blocks.exif is not None and find_tag(blocks.exif, LEARNING) is None
    else:
        assert blocks == Blocks(None, None, None)


@pytest.mark.parametrize("fmt", PYEXIV2_FORMATS)
def test_pyexiv2_files(pyexiv2_tagged: dict[str, bytes], fmt: str) -> None:
    # Pillow's TIFF writer keeps IFD0 tags but drops the Exif sub-IFD (ExifTool's TIFF covers it).
    _assert_tagged(extract(pyexiv2_tagged[fmt], fmt), fmt, with_learning=fmt != "tiff")


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_exiftool_files(exiftool_tagged: dict[str, bytes], fmt: str) -> None:
    _assert_tagged(extract(exiftool_tagged[fmt], fmt), fmt)


@pytest.mark.parametrize("fmt", PYEXIV2_FORMATS)
def test_mmap_gives_same_result(pyexiv2_tagged: dict[str, bytes], tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "file"
    path.write_bytes(pyexiv2_tagged[fmt])
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        assert extract(mapped, fmt) == extract(pyexiv2_tagged[fmt], fmt)


def test_gif_xmp_is_the_raw_packet(exiftool_tagged: dict[str, bytes]) -> None:
    xmp = extract(exiftool_tagged["gif"], "gif").xmp
    assert xmp is not None
    assert xmp.startswith(b"<?xpacket begin=") and xmp.endswith(b"<?xpacket end='w'?>")


def test_tiff_exif_is_a_compact_valid_tiff(exiftool_tagged: dict[str, bytes]) -> None:
    exif = extract(exiftool_tagged["tiff"], "tiff").exif
    assert exif is not None
    assert len(exif) < 1024  # no pixels, no XMP
    parsed = Image.Exif()  # an independent parser reads it
    parsed.load(exif)
    assert parsed[ARTIST_TAG] == ARTIST
    assert parsed.get_ifd(0x8769)[LEARNING] == struct.pack(
        byte_order(exif) + "3H", *LEARNING_VALUES
    )  # UNDEFINED


# --- JPEG ----------------------------------------------------------------------


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def test_jpeg_ignores_extended_xmp_and_tolerates_fill_and_standalone_markers(plain: dict[str, bytes]) -> None:
    standard = _jpeg_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>main</x:xmpmeta>")
    extended = _jpeg_segment(
        0xE1, b"http://ns.adobe.com/xmp/extension/\x00" + b"0" * 32 + b"<x:xmpmeta>ext</x:xmpmeta>"
    )
    data = plain["jpeg"][:2] + extended + b"\xff" * 200 + standard + b"\xff\x01\xff\xd0" + plain["jpeg"][2:]
    blocks = extract(data, "jpeg")
    assert blocks.xmp == b"<x:xmpmeta>main</x:xmpmeta>"
    assert blocks.exif is None


def test_jpeg_messages(plain: dict[str, bytes]) -> None:
    data = plain["jpeg"]
    with pytest.raises(MalformedFile, match="no end-of-image marker"):
        extract(data[:-2], "jpeg")
    bad = data[:2] + b"\xff\xe1\xff\xf0" + b"x" * 10
    with pytest.raises(
        MalformedFile, match=r"segment at offset 2 claims 65520 bytes but the file ends at 16"
    ):
        extract(bad, "jpeg")
    with pytest.raises(MalformedFile, match="expected a marker at offset 2"):
        extract(data[:2] + b"garbage" + data[2:], "jpeg")


# --- PNG -----------------------------------------------------------------------


def _png_chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


def _png_insert(png: bytes, *chunks: bytes) -> bytes:
    iend = png.rindex(b"IEND") - 4
    return png[:iend] + b"".join(chunks) + png[iend:]


def _itxt_xmp(text: bytes, *, compressed: bool) -> bytes:
    body = zlib.compress(text) if compressed else text
    return _png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00" + bytes([compressed, 0]) + b"\x00\x00" + body)


def test_png_compressed_itxt(plain: dict[str, bytes]) -> None:
    packet = b"<x:xmpmeta>" + b"compressed " * 100 + b"</x:xmpmeta>"
    blocks = extract(_png_insert(plain["png"], _itxt_xmp(packet, compressed=True)), "png")
    assert blocks.xmp == packet


def test_png_zip_bomb_is_refused_quickly(plain: dict[str, bytes]) -> None:
    bomb = _png_insert(plain["png"], _itxt_xmp(bytes(100 * 1024 * 1024), compressed=True))
    assert len(bomb) < 200_000
    start = time.perf_counter()
    with pytest.raises(MalformedFile, match="decompresses to more than"):
        extract(bomb, "png")
    assert time.perf_counter() - start < 1.0


def test_png_crc_checked_on_metadata_chunks(plain: dict[str, bytes]) -> None:
    chunk = bytearray(_itxt_xmp(b"<x:xmpmeta/>", compressed=False))
    chunk[-1] ^= 0xFF
    with pytest.raises(MalformedFile, match="CRC mismatch"):
        extract(_png_insert(plain["png"], bytes(chunk)), "png")


def test_png_legacy_raw_profile_exif(plain: dict[str, bytes]) -> None:
    tiff = _pillow_exif().tobytes()
    hexdata = tiff.hex()
    text = (
        b"\nexif\n%8d\n" % len(tiff)
        + "\n".join(hexdata[i : i + 72] for i in range(0, len(hexdata), 72)).encode()
    )
    chunk = _png_chunk(b"zTXt", b"Raw profile type exif\x00\x00" + zlib.compress(text))
    blocks = extract(_png_insert(plain["png"], chunk), "png")
    assert blocks.exif is not None and _learning(blocks.exif) == LEARNING_VALUES


def test_png_missing_iend(plain: dict[str, bytes]) -> None:
    with pytest.raises(MalformedFile, match="without an IEND chunk"):
        extract(plain["png"][: plain["png"].rindex(b"IEND") - 4], "png")


# --- WebP ----------------------------------------------------------------------


def _riff(*chunks: tuple[bytes, bytes]) -> bytes:
    body = b"WEBP"
    for fourcc, data in chunks:
        body += fourcc + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_webp_exif_prefix_and_padding() -> None:
    tiff = _pillow_exif().tobytes()[6:]  # Pillow prefixes "Exif\0\0"
    data = _riff(
        (b"VP8X", bytes(10)), (b"ICCP", b"odd"), (b"EXIF", b"Exif\x00\x00" + tiff), (b"XMP ", b"<x/>")
    )
    blocks = extract(data, "webp")
    assert blocks.exif == tiff and blocks.xmp == b"<x/>"


def test_webp_riff_size_larger_than_file() -> None:
    data = _riff((b"VP8 ", bytes(20)))
    with pytest.raises(MalformedFile, match="RIFF header claims 40 bytes but the file ends at 30"):
        extract(data[:30], "webp")


# --- TIFF ----------------------------------------------------------------------


def _tiff(entries: list[tuple[int, int, int, bytes]], next_ifd: int = 0, extra: bytes = b"") -> bytes:
    """A little-endian TIFF with one IFD at offset 8; field values given as 4 raw bytes."""
    ifd = struct.pack("<H", len(entries))
    for tag, ftype, count, field in entries:
        ifd += struct.pack("<HHI4s", tag, ftype, count, field)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", next_ifd) + extra


def _long(value: int) -> bytes:
    return struct.pack("<I", value)


def test_tiff_ifd_pointing_to_itself() -> None:
    with pytest.raises(MalformedFile, match="loops"):
        extract(_tiff([(256, 4, 1, _long(1))], next_ifd=8), "tiff")


def test_tiff_exif_ifd_pointing_to_ifd0() -> None:
    data = _tiff([(0x8769, 4, 1, _long(8))])
    with pytest.raises(MalformedFile, match="loops"):
        extract(data, "tiff")
    with pytest.raises(MalformedFile, match="loops"):
        find_tag(data, LEARNING)


def test_tiff_strips_outside_file() -> None:
    data = _tiff([(273, 4, 1, _long(30)), (279, 4, 1, _long(5000))], extra=bytes(64))
    with pytest.raises(MalformedFile, match="truncated TIFF: image data"):
        extract(data, "tiff")


def test_tiff_many_entries_sharing_one_big_value() -> None:
    # 2,000 tags each pointing at the same 60 KB: copying them all would make 120 MB.
    entries = [(256, 4, 1, _long(1)), (257, 4, 1, _long(1))]
    entries += [(40000 + i, 7, 60_000, _long(8 + 2 + 12 * 2002 + 4)) for i in range(2000)]
    data = _tiff(entries, extra=bytes(60_000))
    start = time.perf_counter()
    exif = extract(data, "tiff").exif
    assert exif is not None and len(exif) < 2 * 1024 * 1024
    assert time.perf_counter() - start < 1.0


def test_tiff_absurd_strip_count() -> None:
    count = 1_000_001
    data = _tiff([(273, 3, count, _long(40)), (279, 3, count, _long(40))], extra=bytes(2 * count + 16))
    with pytest.raises(MalformedFile, match="strips or tiles"):
        extract(data, "tiff")


def test_find_tag() -> None:
    value = struct.pack("<3H", *LEARNING_VALUES)
    # IFD0 at 8 holds 2 entries (30 bytes), so the Exif IFD is at 38 and its value at 56.
    exif_ifd = struct.pack("<H", 1) + struct.pack("<HHI4s", LEARNING, 7, 6, _long(56)) + _long(0) + value
    data = _tiff([(ARTIST_TAG, 2, 3, b"me\x00\x00"), (0x8769, 4, 1, _long(38))], extra=exif_ifd)
    assert find_tag(data, ARTIST_TAG, ifd="ifd0") == (2, 3, b"me\x00")
    assert find_tag(data, LEARNING) == (7, 6, value)
    assert find_tag(data, LEARNING, ifd="ifd0") is None
    assert find_tag(data, 0x9000) is None
    assert find_tag(_tiff([(ARTIST_TAG, 2, 3, b"me\x00\x00")]), LEARNING) is None  # no Exif IFD
    with pytest.raises(UsageError):
        find_tag(data, LEARNING, ifd="gps")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"II*\x00",
        b"XX*\x00\x08\x00\x00\x00",
        b"II*\x00\xff\xff\xff\x7f",  # IFD0 far outside
        _tiff([(0x8769, 4, 1, _long(0xFFFFFF))]),  # Exif IFD far outside
        _tiff([(0x8769, 4, 2, _long(8))]),  # pointer with two values
        _tiff(
            [(0x8769, 4, 1, _long(26))],
            extra=struct.pack("<H", 1) + struct.pack("<HHI4s", LEARNING, 7, 0xFFFFFFF0, _long(8)) + _long(0),
        ),
        _tiff(
            [(0x8769, 4, 1, _long(26))],
            extra=struct.pack("<H", 1) + struct.pack("<HHI4s", LEARNING, 99, 9, _long(8)) + _long(0),
        ),
        b"II*\x00" + _long(8) + struct.pack("<H", 0xFFFF),  # absurd entry count
    ],
)
def test_find_tag_malformed(data: bytes) -> None:
    with pytest.raises(MalformedFile):
        find_tag(data, LEARNING)


# --- GIF -----------------------------------------------------------------------


def test_gif_xmp_without_magic_trailer(exiftool_tagged: dict[str, bytes]) -> None:
    data = exiftool_tagged["gif"]
    trailer = data.index(bytes([1, 255, 254, 253]))
    with pytest.raises(MalformedFile, match="no magic trailer"):
        extract(data[:trailer] + data[trailer + 1 :], "gif")


def test_gif_without_trailer(plain: dict[str, bytes]) -> None:
    with pytest.raises(MalformedFile, match="without a trailer"):
        extract(plain["gif"][:-1], "gif")


# --- ISO BMFF (HEIC / AVIF) ------------------------------------------------------


def _box(btype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + btype + payload


FTYP = _box(b"ftyp", b"heic\x00\x00\x00\x00mif1heic")


def _heif(xmp: bytes, *, extent_length: int | None = None, extra: bytes = b"") -> bytes:
    """A minimal HEIF 'meta' with one XMP mime item stored in 'mdat'."""
    infe = _box(b"infe", b"\x02\x00\x00\x00" + b"\x00\x01\x00\x00" + b"mime" + b"\x00application/rdf+xml\x00")
    iinf = _box(b"iinf", b"\x00\x00\x00\x00\x00\x01" + infe)

    def iloc(offset: int) -> bytes:
        length = len(xmp) if extent_length is None else extent_length
        return _box(
            b"iloc",
            b"\x00\x00\x00\x00" + bytes([0x44, 0x00]) + struct.pack(">HHHHII", 1, 1, 0, 1, offset, length),
        )

    meta_size = len(_box(b"meta", b"\x00" * 4 + iinf + iloc(0)))
    offset = len(FTYP) + meta_size + len(extra) + 8
    meta = _box(b"meta", b"\x00" * 4 + iinf + iloc(offset))
    return FTYP + meta + extra + _box(b"mdat", xmp)


def test_bmff_synthetic_and_largesize_box() -> None:
    largesize = struct.pack(">I", 1) + b"free" + struct.pack(">Q", 16 + 3) + b"abc"
    blocks = extract(_heif(b"<x:xmpmeta/>", extra=largesize), "heic")
    assert blocks == Blocks(b"<x:xmpmeta/>", None, "HEIF mime item")


@pytest.mark.parametrize(
    "data",
    [
        FTYP + struct.pack(">I", 0xFFFFFFF0) + b"mdat" + bytes(100),  # a box claiming ~4 GB
        FTYP + struct.pack(">I", 1) + b"mdat" + struct.pack(">Q", 2**63) + bytes(100),  # 64-bit size
        FTYP + struct.pack(">I", 4) + b"free",  # size smaller than its header
        _heif(b"<x:xmpmeta/>", extent_length=10**9),  # item extent past the end
        b"\x00\x00\x00\x08mdat",  # no ftyp
    ],
)
def test_bmff_hostile(data: bytes) -> None:
    start = time.perf_counter()
    with pytest.raises(MalformedFile):
        extract(data, "heic")
    assert time.perf_counter() - start < 0.1


# --- truncation -----------------------------------------------------------------

CUTS = (0, 5, 12, 100, 0.1, 0.25, 0.5, 0.75, 0.9, -1)


def _cut_points(length: int) -> list[int]:
    points = []
    for cut in CUTS:
        point = int(cut * length) if isinstance(cut, float) else cut % length
        points.append(min(point, length - 1))
    return points


def _assert_truncations_raise(data: bytes, fmt: str) -> None:
    for cut in _cut_points(len(data)):
        with pytest.raises(MalformedFile):
            extract(data[:cut], fmt)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_truncated_exiftool_files(exiftool_tagged: dict[str, bytes], fmt: str) -> None:
    _assert_truncations_raise(exiftool_tagged[fmt], fmt)


@pytest.mark.parametrize("fmt", PYEXIV2_FORMATS)
def test_truncated_pyexiv2_files(pyexiv2_tagged: dict[str, bytes], fmt: str) -> None:
    _assert_truncations_raise(pyexiv2_tagged[fmt], fmt)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_truncated_plain_files(plain: dict[str, bytes], fmt: str) -> None:
    _assert_truncations_raise(plain[fmt], fmt)


# --- fuzzing --------------------------------------------------------------------

FUZZ = settings(
    max_examples=200,
    deadline=1000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _must_not_crash(data: bytes, fmt: str | None = None) -> None:
    """sniff + extract + find_tag on anything: only our two errors may escape, quickly."""
    start = time.perf_counter()
    fmt = fmt or sniff(data[:64])
    if fmt is None:
        return
    try:
        blocks = extract(data, fmt)
    except (MalformedFile, UnsupportedFormat):
        return
    finally:
        assert time.perf_counter() - start < 1.0
    if blocks.exif is not None:
        for ifd in ("ifd0", "exif"):
            try:
                find_tag(blocks.exif, LEARNING, ifd=ifd)
            except MalformedFile:
                pass


@FUZZ
@given(data=st.binary(max_size=512), fmt=st.sampled_from(IMAGE_FORMATS))
def test_fuzz_random_bytes(data: bytes, fmt: str) -> None:
    _must_not_crash(data, fmt)
    try:
        find_tag(data, LEARNING)
    except MalformedFile:
        pass


@FUZZ
@given(
    prefix=st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"II*\x00", b"MM\x00*", FTYP]),
    rest=st.binary(max_size=512),
)
def test_fuzz_random_bytes_after_magic(prefix: bytes, rest: bytes) -> None:
    _must_not_crash(prefix + rest)
    _must_not_crash(b"RIFF" + rest[:4] + b"WEBP" + rest[4:])


@functools.cache
def _fuzz_samples() -> list[bytes]:
    # Not a fixture: Hypothesis would print the fixture's (large) value with every example.
    return [_save(fmt) for fmt in IMAGE_FORMATS if _available(fmt)] + list(_pyexiv2_files().values())


# (kind, where in the file as a fraction, byte value, run length): a tuple so failures print readably.
MUTATIONS = st.tuples(
    st.sampled_from(["flip", "set", "insert", "delete", "cut"]),
    st.floats(min_value=0, max_value=1),
    st.integers(min_value=0, max_value=255),
    st.integers(min_value=1, max_value=16),
)


def _mutate(data: bytes, mutation: tuple[str, float, int, int]) -> bytes:
    kind, where, value, size = mutation
    if not data:
        return data
    i = min(int(where * len(data)), len(data) - 1)
    if kind == "flip":
        return data[:i] + bytes([data[i] ^ (1 << (value % 8))]) + data[i + 1 :]
    if kind == "set":
        return data[:i] + bytes([value]) * size + data[i + size :]
    if kind == "insert":
        return data[:i] + bytes([value]) * size + data[i:]
    if kind == "delete":
        return data[:i] + data[i + size :]
    return data[:i]


@FUZZ
@given(index=st.integers(min_value=0), mutations=st.lists(MUTATIONS, min_size=1, max_size=4))
def test_fuzz_mutated_real_files(index: int, mutations: list[tuple[str, float, int, int]]) -> None:
    samples = _fuzz_samples()
    data = samples[index % len(samples)]
    for mutation in mutations:
        data = _mutate(data, mutation)
    _must_not_crash(data)


def test_real_files_are_parsed_quickly(pyexiv2_tagged: dict[str, bytes]) -> None:
    # A rough guard for the "millions of files" use: small files in well under a millisecond each.
    start = time.perf_counter()
    for _ in range(200):
        for fmt, data in pyexiv2_tagged.items():
            extract(data, fmt)
    assert (time.perf_counter() - start) / (200 * len(pyexiv2_tagged)) < 0.002


def test_family_registry_matches_the_family_modules() -> None:
    import importlib

    from rightsmeta.carriers import FAMILIES

    for family in FAMILIES:
        module = importlib.import_module(f"rightsmeta.carriers.{family.name}")
        assert family.FORMATS == module.FORMATS, family.name
    assert len({f for family in FAMILIES for f in family.FORMATS}) == sum(len(family.FORMATS) for family in FAMILIES)
