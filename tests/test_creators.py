"""Creators' leftovers (session 12): what photographers, authors and phone users keep beside or
inside their files, tagged and read back with the tools that wrote it (ExifTool 13.59, ffmpeg)."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import zipfile
from pathlib import Path

import material
import pytest
from samples import exiftool_json, exiftool_write
from test_documents import OPF3, epub_bytes

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


def _opf(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        return archive.read("OEBPS/content.opf").decode()


@pytest.mark.parametrize("modified", ['<meta property="dcterms:modified" id="mod">2020-05-01T10:00:00Z</meta>', ""],
                         ids=["stated", "missing"])
def test_epub3_modified_says_when_it_was_tagged(epubcheck: list[str], tmp_path: Path, modified: str) -> None:
    # EPUB 3 requires dcterms:modified to change with the publication; tagging left the old time
    # (stores and reading systems compare it to decide which copy is newer).
    opf = OPF3.format(prefix="", extra="").replace('<meta property="dcterms:modified">2026-01-01T00:00:00Z</meta>', modified)
    path = tmp_path / "book.epub"
    path.write_bytes(epub_bytes(opf=opf))
    result = rightsmeta.tag(path, DENY_AI)
    assert result.status == "tagged"
    date = rightsmeta.read(path).rights["date"]
    stamp = dt.datetime.fromisoformat(date).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    found = re.findall(r'<meta property="dcterms:modified"( id="mod")?>([^<]*)</meta>', _opf(path))
    assert found == [(' id="mod"' if modified else "", stamp)]
    checked = subprocess.run([*epubcheck, str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
