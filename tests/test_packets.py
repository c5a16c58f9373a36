"""Two XMP packets in one file (issue 11.3): every packet is read, and disagreement is a conflict.

Files are spec-valid (one APP1 segment or iTXt chunk per packet, as a second tool appends its
own); ExifTool (``-a``) shows both packets, so neither is hidden from a reader.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from samples import EXTENSIONS, image_bytes

import rightsmeta
from rightsmeta import Assertion, Purpose, State, xmp
from rightsmeta.carriers import jpeg, png, riff
from rightsmeta.verify import classify

ALLOW = Assertion.build(allow=["all"]).dated()
DENY = Assertion.build(deny=["all"]).dated()
# What another tool writes: the PLUS projection alone, no rightsmeta record.
PLUS_PROHIBITED = b"""<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/"
  plus:DataMining="http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED"/></rdf:RDF></x:xmpmeta>"""


def with_packets(fmt: str, packets: list[bytes]) -> bytes:
    base = image_bytes(fmt)
    if fmt == "jpeg":
        layout = jpeg.walk(base)
        at = jpeg.xmp_insert_position(base, layout)
        return base[:at] + b"".join(jpeg.xmp_segments(p) for p in packets) + base[at:]
    if fmt == "png":
        at = png.xmp_insert_position(png.walk(base))
        return base[:at] + b"".join(png.xmp_chunk(p) for p in packets) + base[at:]
    assert fmt == "webp"
    out = bytes(riff.replace_webp_xmp(base, riff.walk(base, b"WEBP"), packets[0]))  # VP8X with the XMP flag
    out = out[: riff.walk(out, b"WEBP").end] + b"".join(riff.make(b"XMP ", p) for p in packets[1:])
    return out[:4] + (len(out) - 8).to_bytes(4, "little") + out[8:]


def _exiftool_all(exiftool: str, path: Path) -> list[str]:
    out = subprocess.run([exiftool, "-j", "-a", "-G1", "-XMP-rightsmeta:all", "-XMP-plus:DataMining", str(path)],
                         check=True, capture_output=True, text=True)
    return [f"{k}={v}" for k, v in json.loads(out.stdout)[0].items() if k != "SourceFile"]


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
@pytest.mark.parametrize("order", ["allow-then-deny", "deny-then-allow"])
def test_second_packet_is_read_and_conflicts(tmp_path: Path, exiftool: str, fmt: str, order: str) -> None:
    packets = [xmp.write_packet(None, ALLOW), xmp.write_packet(None, DENY)]
    if order == "deny-then-allow":
        packets.reverse()
    path = tmp_path / f"two.{EXTENSIONS[fmt]}"
    path.write_bytes(with_packets(fmt, packets))
    if fmt != "webp":  # ExifTool reads one XMP chunk in WebP
        shown = _exiftool_all(exiftool, path)
        assert sum("DataMining" in line for line in shown) >= 2, shown  # ExifTool -a: both packets

    report = rightsmeta.read(path)
    assert report.errors == []
    assert [c.name for c in report.carriers] == ["xmp", "xmp"]
    assert report.conflicts, "two packets that disagree must be a conflict"
    assert any("packet 2" in c for c in report.conflicts)
    for purpose in Purpose:  # precedence: notAllowed wins, whichever packet says it
        assert report.permissions[purpose].state is State.NOT_ALLOWED
        assert not report.may_use(purpose)
    assert classify(report).status == "conflicting"


def test_second_packet_from_another_tool(tmp_path: Path) -> None:
    data = with_packets("jpeg", [xmp.write_packet(None, ALLOW), PLUS_PROHIBITED])
    report = rightsmeta.read(data)
    assert report.conflicts
    assert report.permissions[Purpose.DATA_MINING].state is State.NOT_ALLOWED
    assert report.permissions[Purpose.AI_TRAINING].state is State.NOT_ALLOWED


def test_agreeing_packets_are_intact() -> None:
    data = with_packets("png", [xmp.write_packet(None, DENY), xmp.write_packet(None, DENY)])
    report = rightsmeta.read(data)
    assert report.conflicts == () and report.errors == []
    assert report.permissions == dict(DENY.permissions)
    assert classify(report).status == "intact"


def test_tagging_merges_packets_into_one(tmp_path: Path, exiftool: str) -> None:
    someone = b"""<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:source>kept</dc:source>
</rdf:Description></rdf:RDF></x:xmpmeta>"""
    data = with_packets("jpeg", [xmp.write_packet(None, ALLOW), someone])
    tagged = rightsmeta.tag_bytes(data, DENY)
    assert sum(1 for s in jpeg.walk(tagged).segments if jpeg.is_xmp(tagged, s)) == 1
    report = rightsmeta.read(tagged)
    assert report.conflicts == () and report.permissions == dict(DENY.permissions)
    assert report.carriers[0].values["dc:source"] == "kept"


def test_packets_disagreeing_on_other_data_are_not_overwritten() -> None:
    def source(text: str) -> bytes:
        return (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
                b'<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" dc:source="'
                + text.encode() + b'"/></rdf:RDF></x:xmpmeta>')

    data = with_packets("png", [source("one"), source("two")])
    with pytest.raises(rightsmeta.errors.MalformedMetadata, match="disagree on dc:source"):
        rightsmeta.tag_bytes(data, DENY)


def _tiff_with_two_packets(first: bytes, second: bytes) -> bytes:
    """A TIFF whose IFD0 holds tag 700 twice (as a careless merge of two directories leaves it)."""
    import struct

    from rightsmeta.carriers import tiff

    data = bytearray(bytes(tiff.set_xmp(image_bytes("tiff"), first)))
    order = tiff.byte_order(data)
    entries, next_ifd = tiff.read_ifd(bytes(data), tiff.first_ifd_offset(data, order), order)
    if len(data) & 1:
        data.append(0)
    value_at = len(data)
    data += second
    rows = [(e.tag, e.type, e.count, e.field) for e in entries] + [(700, 1, len(second), struct.pack(order + "I", value_at))]
    rows.sort(key=lambda row: row[0])
    if len(data) & 1:
        data.append(0)
    ifd_at = len(data)
    data += struct.pack(order + "H", len(rows)) + b"".join(struct.pack(order + "HHI4s", *r) for r in rows)
    data += struct.pack(order + "I", next_ifd)
    data[4:8] = struct.pack(order + "I", ifd_at)
    return bytes(data)


def test_tiff_with_tag_700_twice(tmp_path: Path, exiftool: str) -> None:
    data = _tiff_with_two_packets(xmp.write_packet(None, ALLOW), xmp.write_packet(None, DENY))
    path = tmp_path / "two.tif"
    path.write_bytes(data)
    report = rightsmeta.read(path)
    assert report.errors == [] and report.conflicts
    assert not report.may_use(Purpose.AI_TRAINING)
    assert classify(report).status == "conflicting"
    result = rightsmeta.tag(path, DENY)  # which entry to replace is not ours to choose: refused, kept
    assert result.status == "failed" and "700" in (result.reason or "")
    assert path.read_bytes() == data


def test_gif_with_two_xmp_extensions(tmp_path: Path, exiftool: str) -> None:
    from rightsmeta.carriers import gif

    trailer = bytes([1, *range(255, -1, -1), 0])

    def extension(packet: bytes) -> bytes:
        return b"\x21\xff\x0b" + gif.XMP_APP + packet + trailer

    base = image_bytes("gif")
    assert base.endswith(b"\x3b")
    data = base[:-1] + extension(xmp.write_packet(None, ALLOW)) + extension(xmp.write_packet(None, DENY)) + b"\x3b"
    path = tmp_path / "two.gif"
    path.write_bytes(data)
    shown = _exiftool_all(exiftool, path)
    assert sum("DataMining" in line for line in shown) >= 2, shown
    report = rightsmeta.read(path)
    assert report.errors == [] and report.conflicts
    assert not report.may_use(Purpose.AI_TRAINING)
