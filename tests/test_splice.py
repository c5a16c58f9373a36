"""Writing XMP changes the XMP element only: camera JPEGs, PNG, WebP and TIFF keep every other byte.

Files are made with Pillow and ExifTool (camera-like EXIF with MakerNotes, GPS, an IFD1
thumbnail, IPTC in a Photoshop IRB, ICC, MPF); ExifTool and Pillow check the results, and
pyexiv2 reads them as an independent reader.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms
from samples import exiftool_write, image_bytes, pixels

import rightsmeta
from rightsmeta import Assertion, Purpose, State
from rightsmeta.carriers import jpeg, jumbf, png, riff, tiff
from rightsmeta.errors import MalformedFile

DENY_AI = Assertion.build(deny=["ai"], holder="Ada Lovelace", copyright="(c) 2026 Ada Lovelace")


def _icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _picture(size: tuple[int, int] = (64, 48), seed: int = 3) -> Image.Image:
    img = Image.new("RGB", size)
    img.putdata([((x * 7 + seed) % 256, (y * 13 + seed) % 256, (x * y + seed) % 256) for y in range(size[1]) for x in range(size[0])])
    return img


def _camera_exif() -> bytes:
    """EXIF as a camera writes it: Make/Model, PhotometricInterpretation, a Canon MakerNote IFD."""
    ex = Image.Exif()
    ex[0x010F] = "Canon"
    ex[0x0110] = "Canon EOS 5D Mark III"
    ex[0x0106] = 2  # PhotometricInterpretation: RGB (the tag exiv2 dropped)
    # A Canon MakerNote is a plain IFD in the EXIF's byte order (Pillow writes big-endian):
    # CanonModelID (0x0010) and ThumbnailImageValidArea (0x0013).
    maker = struct.pack(">H", 2)
    maker += struct.pack(">HHI4s", 0x0010, 4, 1, struct.pack(">I", 0x80000285))
    maker += struct.pack(">HHI4s", 0x0013, 3, 1, struct.pack(">HH", 3, 0))
    maker += struct.pack(">I", 0)
    exif_ifd = ex.get_ifd(0x8769)
    exif_ifd[0x927C] = maker
    exif_ifd[0x9003] = "2026:01:02 03:04:05"
    return ex.tobytes()


def camera_jpeg(directory: Path, exiftool: str, *, with_xmp: bool = True) -> Path:
    """A two-image MPO (MPF index) with camera EXIF, GPS, an IFD1 thumbnail, IPTC, ICC and XMP."""
    path = directory / "camera.jpg"
    main = _picture()
    main.save(path, format="MPO", save_all=True, append_images=[main.transpose(Image.Transpose.FLIP_LEFT_RIGHT)],
              exif=_camera_exif(), icc_profile=_icc(), quality=90)
    thumb = directory / "thumb.jpg"
    main.resize((16, 12)).save(thumb, quality=60)
    args = ["-GPSLatitude=48.1", "-GPSLatitudeRef=N", "-GPSLongitude=11.5", "-GPSLongitudeRef=E",
            f"-ThumbnailImage<={thumb}", "-IPTC:Keywords=kept", "-IPTC:By-line=Ada", "-Photoshop:IPTCDigest=new"]
    if with_xmp:
        args += ["-XMP-dc:Creator=Someone Else", "-XMP-photoshop:Credit=Agency"]
    exiftool_write(exiftool, path, *args)
    return path


def exiftool_groups(exiftool: str, path: Path) -> dict[str, Any]:
    """``exiftool -a -G1 -s`` of every group but XMP and the file system's (name, size, dates)."""
    out = subprocess.run([exiftool, "-j", "-a", "-G1", "-s", "-b", str(path)], check=True, capture_output=True, text=True)
    tags: dict[str, Any] = json.loads(out.stdout)[0]
    return {k: v for k, v in tags.items() if not k.startswith(("XMP", "System:", "ExifTool:", "SourceFile"))}


def validation(exiftool: str, path: Path) -> str:
    """ExifTool's structural validation warnings (``-validate``)."""
    return subprocess.run([exiftool, "-validate", "-warning", "-a", "-s", str(path)], capture_output=True, text=True).stdout


def exiftool_xmp(exiftool: str, path: Path) -> dict[str, Any]:
    out = subprocess.run([exiftool, "-j", "-a", "-G1", "-XMP:all", str(path)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)[0]  # type: ignore[no-any-return]


def _jpeg_pieces(data: bytes) -> tuple[list[bytes], bytes]:
    """Non-XMP segments (bytes, in order) and everything from the start of scan on."""
    layout = jpeg.walk(data)
    kept = [data[s.start : s.end] for s in layout.segments if not (jpeg.is_xmp(data, s) or jpeg.is_extended_xmp(data, s))]
    return kept[:-1], data[layout.segments[-1].start :]


def _frames(data: bytes) -> list[bytes]:
    with Image.open(io.BytesIO(data)) as img:
        out = []
        for i in range(getattr(img, "n_frames", 1)):
            img.seek(i)
            out.append(img.convert("RGB").tobytes())
        return out


# --- JPEG ----------------------------------------------------------------------------------


@pytest.mark.parametrize("with_xmp", [True, False], ids=["replace-xmp", "insert-xmp"])
def test_camera_jpeg_keeps_everything_but_xmp(tmp_path: Path, exiftool: str, with_xmp: bool) -> None:
    path = camera_jpeg(tmp_path, exiftool, with_xmp=with_xmp)
    before = path.read_bytes()
    groups = exiftool_groups(exiftool, path)
    # The fixture really has what a camera file has.
    assert groups["IFD0:PhotometricInterpretation"] == 2 or groups["IFD0:PhotometricInterpretation"] == "RGB"
    for key in ("Canon:CanonModelID", "GPS:GPSLatitude", "IFD1:ThumbnailOffset", "IPTC:Keywords", "MPF0:NumberOfImages",
                "ICC_Profile:ProfileDescription", "Photoshop:IPTCDigest"):
        assert key in groups, key

    checked = validation(exiftool, path)
    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    after = path.read_bytes()
    assert validation(exiftool, path) == checked  # nothing new for ExifTool to warn about
    now = exiftool_groups(exiftool, path)
    if not with_xmp:
        # ExifTool reports an MPF image's start as a file offset (stored offset + MPF header
        # position); a new segment before the index moves it, while the stored bytes stay the same.
        assert now.pop("MPImage2:MPImageStart") == groups.pop("MPImage2:MPImageStart") + len(after) - len(before)
    assert now == groups
    assert _jpeg_pieces(after) == _jpeg_pieces(before)  # every non-XMP segment, scan data and the MPO's 2nd image
    assert _frames(after) == _frames(before) and len(_frames(after)) == 2
    xmp_tags = exiftool_xmp(exiftool, path)
    assert xmp_tags["XMP-plus:DataMining"] == "Prohibited for AI/ML training"
    if with_xmp:
        assert xmp_tags["XMP-dc:Creator"] == "Someone Else" and xmp_tags["XMP-photoshop:Credit"] == "Agency"
    # The new segment sits after APP0/APP1-EXIF and before the MPF index, as XMP readers expect.
    layout = jpeg.walk(after)
    order = [("xmp" if jpeg.is_xmp(after, s) else "exif" if jpeg.is_exif(after, s) else hex(s.marker)) for s in layout.segments]
    assert order.index("xmp") > order.index("exif")
    assert order.index("xmp") < order.index("0xe2")  # ICC and MPF are APP2
    report = rightsmeta.read(path)
    assert report.errors == [] and report.permissions[Purpose.AI_TRAINING].state is State.NOT_ALLOWED


def test_pyexiv2_reads_what_we_wrote(tmp_path: Path, exiftool: str) -> None:
    import pyexiv2

    path = camera_jpeg(tmp_path, exiftool)
    rightsmeta.tag(path, DENY_AI)
    with pyexiv2.Image(str(path)) as img:
        xmp_data = img.read_xmp()
        exif = img.read_exif()
    assert xmp_data["Xmp.plus.DataMining"] == "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING"
    assert xmp_data["Xmp.dc.creator"] == ["Someone Else"]
    assert exif["Exif.Image.Make"] == "Canon" and exif["Exif.Image.PhotometricInterpretation"] == "2"


def test_tagging_twice_replaces_in_place(tmp_path: Path, exiftool: str) -> None:
    path = camera_jpeg(tmp_path, exiftool)
    rightsmeta.tag(path, Assertion.build(deny=["all"]))
    once = path.read_bytes()
    rightsmeta.tag(path, DENY_AI)
    twice = path.read_bytes()
    assert _jpeg_pieces(once) == _jpeg_pieces(twice)
    assert sum(1 for s in jpeg.walk(twice).segments if jpeg.is_xmp(twice, s)) == 1
    assert rightsmeta.read(path).permissions == dict(DENY_AI.permissions)


def test_extended_xmp_written_and_read(tmp_path: Path, exiftool: str) -> None:
    """A packet over one segment's 64 KiB: ExifTool writes ExtendedXMP, we keep and rewrite it."""
    path = camera_jpeg(tmp_path, exiftool)
    long_text = "".join(f"line {i} of a long description. " for i in range(4000))  # ~130 KB
    exiftool_write(exiftool, path, f"-XMP-dc:Description={long_text}")
    before = path.read_bytes()
    assert any(jpeg.is_extended_xmp(before, s) for s in jpeg.walk(before).segments)
    assert rightsmeta.read(path).errors == []
    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    after = path.read_bytes()
    assert _jpeg_pieces(after) == _jpeg_pieces(before)
    assert sum(1 for s in jpeg.walk(after).segments if jpeg.is_extended_xmp(after, s)) >= 2
    tags = exiftool_xmp(exiftool, path)
    assert tags["XMP-dc:Description"] == long_text  # assembled by ExifTool from our ExtendedXMP
    assert tags["XMP-plus:DataMining"] == "Prohibited for AI/ML training"
    report = rightsmeta.read(path)
    assert report.errors == [] and report.carriers[0].location == "JPEG APP1 + ExtendedXMP"
    assert report.permissions == dict(DENY_AI.permissions)


def test_damaged_extended_xmp_fails_closed(tmp_path: Path, exiftool: str) -> None:
    path = camera_jpeg(tmp_path, exiftool)
    exiftool_write(exiftool, path, "-XMP-dc:Description=" + "x" * 100_000)
    rightsmeta.tag(path, DENY_AI)
    data = bytearray(path.read_bytes())
    ext = [s for s in jpeg.walk(bytes(data)).segments if jpeg.is_extended_xmp(bytes(data), s)]
    data[ext[-1].end - 10] ^= 0x20  # one character inside the ExtendedXMP: its MD5 no longer matches
    path.write_bytes(bytes(data))
    report = rightsmeta.read(path)
    assert any("ExtendedXMP" in e and "MD5" in e for e in report.errors), report.errors
    assert not report.may_use(Purpose.SEARCH)
    assert rightsmeta.tag(path, DENY_AI).status == "failed"


def test_xmp_after_mpf_is_replaced_only_in_place(tmp_path: Path) -> None:
    base = io.BytesIO()
    _picture().save(base, format="MPO", save_all=True, append_images=[_picture(seed=9)])
    data = base.getvalue()
    layout = jpeg.walk(data)
    mpf = jpeg.mpf_start(data, layout)
    assert mpf is not None
    mpf_seg = next(s for s in layout.segments if s.start == mpf)
    # An XMP segment with plenty of padding, placed right after the MPF index.
    packet = rightsmeta.xmp.pad(rightsmeta.xmp.serialise(rightsmeta.xmp._empty_packet()), 6000)
    moved = data[: mpf_seg.end] + jpeg.xmp_segments(packet) + data[mpf_seg.end :]
    # MPF offsets count from the MPF header, which did not move; the 2nd image moved by the insert:
    # fix its offset so the fixture is a valid MPO.
    tagged = rightsmeta.tag_bytes(_fix_mpf(moved, mpf_seg, len(moved) - len(data)), DENY_AI)
    assert len(tagged) == len(_fix_mpf(moved, mpf_seg, len(moved) - len(data)))
    assert len(_frames(tagged)) == 2
    packet = rightsmeta.xmp.pad(rightsmeta.xmp.serialise(rightsmeta.xmp._empty_packet()), 100)
    small = data[: mpf_seg.end] + jpeg.xmp_segments(packet) + data[mpf_seg.end :]
    with pytest.raises(MalformedFile, match="MPF"):
        rightsmeta.tag_bytes(_fix_mpf(small, mpf_seg, len(small) - len(data)), DENY_AI)


def _fix_mpf(data: bytes, mpf: jpeg.Segment, shift: int) -> bytes:
    """Move the MP entries' offsets of the later images by ``shift`` (little-endian MPF from Pillow)."""
    out = bytearray(data)
    header = mpf.payload_start + 4
    (first_ifd,) = struct.unpack_from("<I", out, header + 4)
    count, = struct.unpack_from("<H", out, header + first_ifd)
    for i in range(count):
        tag, _type, _n, value = struct.unpack_from("<HHII", out, header + first_ifd + 2 + 12 * i)
        if tag == 0xB002:  # MP Entry: 16 bytes per image; offset at +8, 0 for the first image
            for image in range(1, _n // 16):
                at = header + value + 16 * image + 8
                (offset,) = struct.unpack_from("<I", out, at)
                struct.pack_into("<I", out, at, offset + shift)
    return bytes(out)


# --- PNG -----------------------------------------------------------------------------------


def _png_pieces(data: bytes) -> list[bytes]:
    return [data[c.start : c.end] for c in png.walk(data) if not png.is_xmp(data, c)]


def test_png_keeps_every_other_chunk(tmp_path: Path, exiftool: str) -> None:
    path = tmp_path / "a.png"
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "kept")
    info.add_text("Author", "Ada", zip=True)
    _picture().save(path, format="PNG", exif=_camera_exif(), icc_profile=_icc(), pnginfo=info)
    exiftool_write(exiftool, path, "-XMP-dc:Creator=Someone Else")
    before = path.read_bytes()
    groups = exiftool_groups(exiftool, path)
    assert "PNG:Comment" in groups and "IFD0:Make" in groups and "ICC_Profile:ProfileDescription" in groups
    checked = validation(exiftool, path)
    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    after = path.read_bytes()
    assert validation(exiftool, path) == checked
    assert _png_pieces(after) == _png_pieces(before)
    assert exiftool_groups(exiftool, path) == groups
    assert pixels(after) == pixels(before)
    assert exiftool_xmp(exiftool, path)["XMP-dc:Creator"] == "Someone Else"
    kinds = [c.type for c in png.walk(after)]
    assert kinds.index(b"iTXt") < kinds.index(b"IDAT")


def test_png_inserted_before_idat_with_right_crc(tmp_path: Path) -> None:
    before = image_bytes("png")
    after = rightsmeta.tag_bytes(before, DENY_AI)
    chunks = png.walk(after)
    xmp_chunks = png.xmp_chunks(after, chunks)
    assert len(xmp_chunks) == 1
    png.data(after, xmp_chunks[0])  # raises on a CRC mismatch
    assert [c.type for c in chunks].index(b"iTXt") == [c.type for c in chunks].index(b"IDAT") - 1
    assert _png_pieces(after) == _png_pieces(before)


# --- WebP ----------------------------------------------------------------------------------


def _webp(lossless: bool, *, alpha: bool = False, exif: bool = False, icc: bool = False) -> bytes:
    img = _picture().convert("RGBA") if alpha else _picture()
    if alpha:
        img.putalpha(128)
    kwargs: dict[str, Any] = {"lossless": lossless}
    if exif:
        kwargs["exif"] = _camera_exif()
    if icc:
        kwargs["icc_profile"] = _icc()
    out = io.BytesIO()
    img.save(out, format="WEBP", **kwargs)
    return out.getvalue()


@pytest.mark.parametrize(
    ("lossless", "alpha", "extended"),
    [(False, False, False), (True, False, False), (True, True, False), (False, True, True), (True, False, True)],
    ids=["vp8-simple", "vp8l-simple", "vp8l-alpha-simple", "vp8-alpha-exif-icc", "vp8l-exif-icc"],
)
def test_webp_chunks_flag_and_size(tmp_path: Path, exiftool: str, lossless: bool, alpha: bool, extended: bool) -> None:
    before = _webp(lossless, alpha=alpha, exif=extended, icc=extended)
    old = riff.walk(before, b"WEBP")
    assert bool(riff.find(old, b"VP8X")) == (extended or (alpha and not lossless))
    after = rightsmeta.tag_bytes(before, DENY_AI)
    new = riff.walk(after, b"WEBP")
    assert int.from_bytes(after[4:8], "little") == len(after) - 8
    assert [after[c.start : new.padded_end(c)] for c in new.chunks if c.fourcc not in (b"XMP ", b"VP8X")] == [
        before[c.start : old.padded_end(c)] for c in old.chunks if c.fourcc != b"VP8X"
    ]
    vp8x = riff.data(after, riff.find(new, b"VP8X")[0])
    assert vp8x[0] & riff.VP8X_XMP
    if riff.find(old, b"VP8X"):
        assert vp8x[0] == riff.data(before, riff.find(old, b"VP8X")[0])[0] | riff.VP8X_XMP
        assert vp8x[1:] == riff.data(before, riff.find(old, b"VP8X")[0])[1:]
    else:
        assert int.from_bytes(vp8x[4:7], "little") + 1 == 64 and int.from_bytes(vp8x[7:10], "little") + 1 == 48
        assert bool(vp8x[0] & riff.VP8X_ALPHA) == alpha
    kinds = [c.fourcc for c in new.chunks]
    assert kinds[0] == b"VP8X" and kinds[-1] == b"XMP "
    assert pixels(after) == pixels(before)
    path = tmp_path / "a.webp"
    path.write_bytes(after)
    assert exiftool_xmp(exiftool, path)["XMP-plus:DataMining"] == "Prohibited for AI/ML training"
    original = tmp_path / "original.webp"
    original.write_bytes(before)
    assert validation(exiftool, path) == validation(exiftool, original)  # ExifTool's validation finds nothing new


def test_webp_groups_unchanged_but_xmp(tmp_path: Path, exiftool: str) -> None:
    path = tmp_path / "a.webp"
    path.write_bytes(_webp(True, exif=True, icc=True))
    exiftool_write(exiftool, path, "-XMP-dc:Creator=Someone Else")
    groups = exiftool_groups(exiftool, path)
    assert "IFD0:Make" in groups
    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    assert exiftool_groups(exiftool, path) == groups
    assert exiftool_xmp(exiftool, path)["XMP-dc:Creator"] == "Someone Else"


# --- TIFF ----------------------------------------------------------------------------------


def _tiff_file(directory: Path, exiftool: str) -> Path:
    path = directory / "a.tif"
    first = _picture()
    first.save(path, format="TIFF", save_all=True, append_images=[_picture(seed=8)], exif=_camera_exif(),
               icc_profile=_icc())
    # -m: Pillow gives both pages one Exif IFD, which ExifTool calls a minor error
    exiftool_write(exiftool, path, "-m", "-GPSLatitude=48.1", "-GPSLatitudeRef=N", "-IPTC:Keywords=kept")
    return path


@pytest.mark.parametrize("with_xmp", [False, True], ids=["new-tag", "existing-tag"])
def test_tiff_only_tag_700_changes(tmp_path: Path, exiftool: str, with_xmp: bool) -> None:
    path = _tiff_file(tmp_path, exiftool)
    if with_xmp:
        exiftool_write(exiftool, path, "-XMP-dc:Creator=Someone Else")
    before = path.read_bytes()
    groups = exiftool_groups(exiftool, path)
    assert "GPS:GPSLatitude" in groups and "IFD1:ImageWidth" in groups  # a second page
    checked = validation(exiftool, path)
    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    after = path.read_bytes()
    assert validation(exiftool, path) == checked
    assert exiftool_groups(exiftool, path) == groups
    assert _frames(after) == _frames(before)
    # Bytes of the original that changed: only the header's IFD0 pointer, IFD0's tag-700 entry
    # and the old packet (blanked or rewritten in place).
    order = tiff.byte_order(before)
    entries, _ = tiff.read_ifd(before, tiff.first_ifd_offset(before, order), order)
    allowed = set(range(4, 8))
    ifd0 = tiff.first_ifd_offset(before, order)
    for i, e in enumerate(entries):
        if e.tag == 700:
            allowed |= set(range(ifd0 + 2 + 12 * i, ifd0 + 14 + 12 * i))
            allowed |= set(range(e.value_pos, e.value_pos + (e.size or 0)))
    changed = {i for i in range(len(before)) if before[i] != after[i]}
    assert changed <= allowed
    if with_xmp:
        assert exiftool_xmp(exiftool, path)["XMP-dc:Creator"] == "Someone Else"
    again = rightsmeta.tag_bytes(after, Assertion.build(deny=["all"]))
    assert len(again) == len(after)  # the padding left room: the second tag is written in place


# --- random layouts ------------------------------------------------------------------------

_BASE_JPEG = image_bytes("jpeg", exif=True)
_app = st.tuples(st.integers(0xE0, 0xEF), st.binary(min_size=0, max_size=300))
_com = st.tuples(st.just(0xFE), st.binary(min_size=0, max_size=100))


_OLD_PROPERTIES = ("source", "coverage", "format")


def _old_xmp(n: int) -> bytes:
    """Someone else's packet number ``n``, with a property of its own (dc:source, dc:coverage...)."""
    name = _OLD_PROPERTIES[n].encode()
    return (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:' + name + b">packet "
        + str(n).encode() + b"</dc:" + name + b"></rdf:Description></rdf:RDF></x:xmpmeta>"
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    extra=st.lists(st.one_of(_app, _com), max_size=8),
    xmp_at=st.lists(st.integers(0, 8), max_size=2),
    fill=st.lists(st.integers(0, 3), max_size=8),
)
def test_random_jpeg_layouts_keep_other_segments(extra: list[tuple[int, bytes]], xmp_at: list[int], fill: list[int]) -> None:
    layout = jpeg.walk(_BASE_JPEG)
    head = [_BASE_JPEG[s.start : s.end] for s in layout.segments[:-1]]
    rest = _BASE_JPEG[layout.segments[-1].start :]
    made = [b"\xff" * (fill[i] if i < len(fill) else 0) + jpeg.segment(m, body) for i, (m, body) in enumerate(extra)]
    # Random segments must not look like XMP, nor begin with a C2PA store (hypothesis finds
    # jumbf.SIGNATURE; such a segment reads as a damaged store, an error), to count as "other" segments.
    made = [m for m in made if jpeg.XMP_SIGNATURE not in m[:40] and jpeg.EXTENDED_SIGNATURE not in m[:50]
            and not jumbf.holds_store(m, 0, len(m)) and b"<?xpacket begin" not in m and b"<x:xmpmeta" not in m]
    for n, at in enumerate(xmp_at):
        made.insert(min(at, len(made)), jpeg.xmp_segments(_old_xmp(n)))
    data = b"\xff\xd8" + head[0] + b"".join(made) + b"".join(head[1:]) + rest
    tagged = rightsmeta.tag_bytes(data, DENY_AI)
    assert _jpeg_pieces(tagged) == _jpeg_pieces(data)
    assert pixels(tagged) == pixels(data)
    new = jpeg.walk(tagged)
    assert sum(1 for s in new.segments if jpeg.is_xmp(tagged, s)) == 1
    report = rightsmeta.read(tagged)
    assert report.errors == [] and report.permissions == dict(DENY_AI.permissions)
    for n in range(len(xmp_at)):  # every old packet's own property survives, merged into one packet
        assert report.carriers[0].values[f"dc:{_OLD_PROPERTIES[n]}"] == f"packet {n}"


_BASE_PNG = image_bytes("png", size=(20, 12))
_chunk_types = st.sampled_from([b"tEXt", b"zTXt", b"iTXt", b"prVt", b"ruSt"])


def _chunk_body(ctype: bytes, body: bytes) -> bytes:
    """A valid body for the chunk type: text chunks as the PNG specification lays them out."""
    if ctype == b"tEXt":
        return b"Comment\x00" + body.decode("latin-1").encode("latin-1")
    if ctype == b"zTXt":
        return b"Comment\x00\x00" + zlib.compress(body)
    if ctype == b"iTXt":
        return b"Comment\x00\x00\x00\x00\x00" + body.hex().encode()
    return body


@settings(max_examples=40, deadline=None)
@given(extra=st.lists(st.tuples(_chunk_types, st.binary(max_size=200)), max_size=8), xmp_at=st.lists(st.integers(0, 8), max_size=2))
def test_random_png_layouts_keep_other_chunks(extra: list[tuple[bytes, bytes]], xmp_at: list[int]) -> None:
    chunks = png.walk(_BASE_PNG)
    head = _BASE_PNG[: chunks[1].start]  # signature + IHDR
    rest = _BASE_PNG[chunks[1].start :]
    made = [png.make(t, _chunk_body(t, body)) for t, body in extra]
    for n, at in enumerate(xmp_at):
        made.insert(min(at, len(made)), png.xmp_chunk(_old_xmp(n)))
    data = head + b"".join(made) + rest
    tagged = rightsmeta.tag_bytes(data, DENY_AI)
    assert _png_pieces(tagged) == _png_pieces(data)
    assert pixels(tagged) == pixels(data)
    for c in png.walk(tagged):
        png.data(tagged, c)  # every CRC right
    report = rightsmeta.read(tagged)
    assert report.errors == [] and report.permissions == dict(DENY_AI.permissions)
    for n in range(len(xmp_at)):
        assert report.carriers[0].values[f"dc:{_OLD_PROPERTIES[n]}"] == f"packet {n}"


def test_png_crc_of_inserted_chunk() -> None:
    chunk = png.xmp_chunk(b"<x/>")
    assert zlib.crc32(chunk[4:-4]) == int.from_bytes(chunk[-4:], "big")


def test_extended_xmp_the_packet_does_not_name_is_left_alone() -> None:
    stray = jpeg.segment(jpeg.APP1, jpeg.EXTENDED_SIGNATURE + b"0" * 32 + (5).to_bytes(4, "big") + bytes(4) + b"<x/> ")
    base = image_bytes("jpeg")
    data = base[:2] + stray + base[2:]
    tagged = rightsmeta.tag_bytes(data, DENY_AI)
    assert stray in tagged and _jpeg_pieces(tagged)[0][0] == _jpeg_pieces(data)[0][0]


_BASE_WEBP = _webp(True, exif=True, icc=True)


@settings(max_examples=30, deadline=None)
@given(
    extra=st.lists(st.tuples(st.sampled_from([b"ABCD", b"junk", b"XYZW"]), st.binary(max_size=51)), max_size=5),
    xmp=st.booleans(),
)
def test_random_webp_layouts_keep_other_chunks(extra: list[tuple[bytes, bytes]], xmp: bool) -> None:
    walked = riff.walk(_BASE_WEBP, b"WEBP")
    body = _BASE_WEBP[12 : walked.end]
    if xmp:
        body += riff.make(b"XMP ", _old_xmp(0))
    # unknown chunks, odd sizes too; not one beginning with a C2PA store (hypothesis finds jumbf.SIGNATURE)
    body += b"".join(riff.make(fourcc, payload) for fourcc, payload in extra if not jumbf.holds_store(payload, 0, len(payload)))
    data = b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WEBP" + body
    tagged = rightsmeta.tag_bytes(data, DENY_AI)
    old, new = riff.walk(data, b"WEBP"), riff.walk(tagged, b"WEBP")
    assert int.from_bytes(tagged[4:8], "little") == len(tagged) - 8
    assert [tagged[c.start : new.padded_end(c)] for c in new.chunks if c.fourcc not in (b"XMP ", b"VP8X")] == [
        data[c.start : old.padded_end(c)] for c in old.chunks if c.fourcc not in (b"XMP ", b"VP8X")
    ]
    assert pixels(tagged) == pixels(data)
    report = rightsmeta.read(tagged)
    assert report.errors == [] and report.permissions == dict(DENY_AI.permissions)
    if xmp:
        assert report.carriers[0].values["dc:source"] == "packet 0"


_TAGGED = {fmt: rightsmeta.tag_bytes(image_bytes(fmt, size=(24, 16), exif=True), DENY_AI) for fmt in ("jpeg", "png", "webp", "tiff")}


@pytest.mark.parametrize("fmt", sorted(_TAGGED))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_mutated_files_never_escape_the_writers(fmt: str, data: st.DataObject) -> None:
    """Bit flips, cuts and inflated lengths: the writer returns a file or raises one of ours."""
    from rightsmeta.errors import RightsmetaError

    original = bytearray(_TAGGED[fmt])
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "cut", "inflate"]))
        at = data.draw(st.integers(0, len(original) - 1))
        if kind == "flip":
            original[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "cut":
            del original[at:]
            if not original:
                return
        else:
            original[at : at + 2] = b"\xff\xff"
    try:
        out = rightsmeta.tag_bytes(bytes(original), Assertion.build(deny=["all"]))
    except RightsmetaError:
        return
    assert rightsmeta.read(out).permissions[Purpose.AI_TRAINING].state is State.NOT_ALLOWED


def test_png_xmp_after_idat_moves_before_it() -> None:
    base = image_bytes("png")
    chunks = png.walk(base)
    iend = chunks[-1].start
    data = base[:iend] + png.xmp_chunk(_old_xmp(0)) + base[iend:]  # as some tools append it
    tagged = rightsmeta.tag_bytes(data, DENY_AI)
    kinds = [c.type for c in png.walk(tagged)]
    assert kinds.count(b"iTXt") == 1 and kinds.index(b"iTXt") < kinds.index(b"IDAT")
    assert _png_pieces(tagged) == _png_pieces(data)
    assert rightsmeta.read(tagged).carriers[0].values["dc:source"] == "packet 0"


def test_png_corrupt_iccp_is_kept_as_it_was() -> None:
    """exiv2 replaced a corrupt iCCP with a 26-byte stub (issue 11.13); a splice leaves it alone."""
    base = image_bytes("png")
    chunks = png.walk(base)
    corrupt = png.make(b"iCCP", b"Broken profile\x00\x00" + b"\x78\x9c" + b"not deflate data at all")
    data = base[: chunks[1].start] + corrupt + base[chunks[1].start :]
    tagged = rightsmeta.tag_bytes(data, DENY_AI)
    assert corrupt in tagged
    assert _png_pieces(tagged) == _png_pieces(data)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "tiff"])
def test_exiv2_reads_the_same_exif_and_our_xmp(fmt: str) -> None:
    """pyexiv2 (exiv2), an independent reader: EXIF and ICC unchanged, our XMP there."""
    import pyexiv2

    before = image_bytes(fmt, exif=True, icc=True)
    after = rightsmeta.tag_bytes(before, DENY_AI)
    old, new = pyexiv2.ImageData(before), pyexiv2.ImageData(after)
    try:
        exif = new.read_exif()
        exif.pop("Exif.Image.XMLPacket", None)  # a TIFF's tag 700, the XMP itself, as exiv2 lists it
        assert exif == old.read_exif() and exif["Exif.Image.Make"] == "rightsmeta test camera"
        assert new.read_icc() == old.read_icc() and new.read_icc()
        assert new.read_xmp()["Xmp.plus.DataMining"] == "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING"
    finally:
        old.close()
        new.close()


def test_signed_camera_jpeg_keeps_everything_but_xmp_and_the_store(tmp_path: Path, exiftool: str) -> None:
    """With signing, the manifest (APP11) is written last over the spliced file: it validates, and
    every other segment is still the camera's, twice over (re-signing keeps the old store as ingredient)."""
    from rightsmeta import keys

    identity = keys.make_identity("Test Creator")
    before = camera_jpeg(tmp_path, exiftool).read_bytes()
    once = rightsmeta.tag_bytes(before, DENY_AI, identity=identity)
    twice = rightsmeta.tag_bytes(once, Assertion.build(deny=["all"]), identity=identity)

    def others(data: bytes) -> list[bytes]:
        layout = jpeg.walk(data)
        return [data[s.start : s.end] for s in layout.segments if s.marker != jpeg.APP11
                and not jpeg.is_xmp(data, s) and not jpeg.is_extended_xmp(data, s)]

    for signed in (once, twice):
        report = rightsmeta.read(signed)
        assert report.errors == [] and [c.values.get("validation_state") for c in report.carriers if c.name == "c2pa"] == ["Valid"]
        assert others(signed) == others(before)
        assert _frames(signed) == _frames(before)
