"""Creators' leftovers (session 12): what photographers, authors and phone users keep beside or
inside their files, tagged and read back with the tools that wrote it (ExifTool 13.59, ffmpeg)."""

from __future__ import annotations

from pathlib import Path

import material
from samples import exiftool_json, exiftool_write

import rightsmeta
from rightsmeta import Assertion

DENY_AI = Assertion.build(deny=["ai"], copyright="(c) 2026 Ada")


def test_copyright_keeps_its_other_languages(exiftool: str, tmp_path: Path) -> None:
    # A notice kept in several languages (ExifTool's -XMP-dc:Rights-de=...): a new --copyright
    # replaced the x-default and dropped the translations. A translation stays; an entry that
    # only repeated the old notice is not a translation and says the new one.
    path = tmp_path / "photo.jpg"
    path.write_bytes(material.jpeg(material.photo(10, (96, 64))))
    exiftool_write(exiftool, path, "-XMP-dc:Rights=(c) 2025 Ada", "-XMP-dc:Rights-de=(c) 2025 Ada, alle Rechte vorbehalten",
                   "-XMP-dc:Rights-en-GB=(c) 2025 Ada")
    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    found = exiftool_json(exiftool, path, "-XMP-dc:Rights*")
    assert found["XMP-dc:Rights"] == "(c) 2026 Ada"
    assert found["XMP-dc:Rights-de"] == "(c) 2025 Ada, alle Rechte vorbehalten"
    assert found["XMP-dc:Rights-en-GB"] == "(c) 2026 Ada"
    report = rightsmeta.read(path)
    assert report.errors == [] and report.rights["copyright"] == "(c) 2026 Ada"
