"""A tag walks each version of a TIFF's first directory once: the reader, the writer and the
content check share the walk (carriers/walked.py), and what they give is what each gave alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from samples import image_bytes

import rightsmeta
from rightsmeta import Assertion, api, mediacheck
from rightsmeta.carriers import Parsed, tiff


def test_a_tag_reads_each_versions_first_directory_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "photo.tif"
    path.write_bytes(original := image_bytes("tiff", exif=True))
    real = tiff.read_ifd
    read: list[tuple[bytes, int]] = []

    def counted(buf: Any, offset: int, order: str) -> Any:
        read.append((bytes(buf[:8]) + bytes(buf[-16:]), offset))
        return real(buf, offset, order)

    monkeypatch.setattr(tiff, "read_ifd", counted)
    assert api.tag(path, Assertion.build(deny=["ai"])).status == "tagged"
    tagged = path.read_bytes()
    ifd0 = {data: tiff.first_ifd_offset(data, tiff.byte_order(data)) for data in (original, tagged)}
    for data, start in ifd0.items():
        assert read.count((data[:8] + data[-16:], start)) == 1, read
    assert rightsmeta.read(path).permissions[rightsmeta.Purpose.GENAI_TRAINING].state is rightsmeta.State.NOT_ALLOWED


def test_the_content_check_with_the_tags_walks_says_what_it_says_alone() -> None:
    original = image_bytes("tiff")
    tagged = bytes(tiff.set_xmp(original, b"<x:xmpmeta/>" * 400))  # grows: IFD0 moves to the end
    parsed = Parsed()
    assert bytes(tiff.set_xmp(original, b"<x:xmpmeta/>" * 400, tiff.first_directory(original))) == tagged
    assert mediacheck.same_tiff(original, tagged) and mediacheck.same_tiff(original, tagged, parsed)
    ifd0 = tiff.first_directory(tagged)
    strips = next(e for e in ifd0.entries if e.tag == 273)
    first = tiff.shorts_or_longs(tagged, strips, ifd0.order)
    assert first is not None
    changed = bytearray(tagged)
    changed[first[0]] ^= 1  # a pixel
    assert not mediacheck.same_tiff(original, bytes(changed), parsed)
    assert not mediacheck.same_tiff(original, tagged[: len(original) - 1], parsed)
