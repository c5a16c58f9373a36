"""Creators tagging folders (session 13): a photo's older notices in EXIF and IIM, raws in the
ledger, hard-linked sidecars; every file made with Pillow and ExifTool, read back with ExifTool."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import material
from samples import exiftool_json
from test_creators import _camera_raw

import rightsmeta
from rightsmeta import Assertion

DENY_AI = Assertion.build(deny=["ai"], copyright="(c) 2026 Ada")


def test_a_hard_linked_sidecar_is_split_with_a_note(exiftool: str, tmp_path: Path) -> None:
    # A sidecar with a second name (a backup folder made with cp -l): the atomic rename gives this
    # name the new sidecar and leaves the other with the old statement. Said for a tagged file;
    # a sidecar was split silently.
    raw = tmp_path / "DSC_0001.NEF"
    _camera_raw(exiftool, raw)
    sidecar = tmp_path / "DSC_0001.xmp"
    subprocess.run([exiftool, "-q", "-XMP-xmp:Rating=4", "-o", str(sidecar), str(raw)], check=True)
    (tmp_path / "backup").mkdir()
    os.link(sidecar, tmp_path / "backup" / "DSC_0001.xmp")
    result = rightsmeta.tag(raw, DENY_AI)
    assert result.status == "tagged"
    assert any("DSC_0001.xmp had 2 hard links" in note and "the other 1 still" in note for note in result.notes), result.notes
    assert exiftool_json(exiftool, sidecar, "-XMP-plus:DataMining")["XMP-plus:DataMining"] == "Prohibited for AI/ML training"
    assert "XMP-plus:DataMining" not in exiftool_json(exiftool, tmp_path / "backup" / "DSC_0001.xmp", "-XMP-plus:DataMining")

    # A JPEG whose darktable sidecar is hard-linked: the same note, for the sidecar.
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(material.jpeg(material.photo(12, (64, 48))))
    subprocess.run([exiftool, "-q", "-XMP-xmp:Rating=5", "-o", f"{photo}.xmp", str(photo)], check=True)
    os.link(f"{photo}.xmp", tmp_path / "backup" / "photo.jpg.xmp")
    result = rightsmeta.tag(photo, DENY_AI)
    assert result.status == "tagged" and any("photo.jpg.xmp had 2 hard links" in n for n in result.notes), result.notes
