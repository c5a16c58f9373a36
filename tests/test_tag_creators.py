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
from rightsmeta import Assertion, api
from rightsmeta.ledger import Ledger
from rightsmeta.verify import verify

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


def test_a_raw_tagged_through_its_sidecar_is_recorded_in_the_ledger(exiftool: str, tmp_path: Path) -> None:
    # The ledger is to know every work a creator tagged: a raw (tagged through its sidecar) was not
    # recorded, so a copy of the raw without its sidecar was "untagged".
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    raw = shoot / "DSC_0002.NEF"
    original = _camera_raw(exiftool, raw)
    ledger = Ledger.open(tmp_path / "ledger.db")
    results = api.tag_all([raw], DENY_AI, ledger=ledger)
    assert [r.status for r in results] == ["tagged"] and raw.read_bytes() == original
    works = list(ledger)
    assert len(works) == 1 and works[0].carriers == ["xmp-sidecar"] and works[0].path == str(raw)
    assert works[0].essence_hash is not None  # the raw's own bytes are what identifies it
    # With its sidecar: the recorded work is its, and nothing it recorded is missing.
    verdict = verify(raw, ledger=ledger)
    assert verdict.status == "intact", verdict.reasons
    # The raw copied alone (no sidecar beside it): recognised as the work tagged.
    copy = tmp_path / "copy" / "DSC_0002.NEF"
    copy.parent.mkdir()
    copy.write_bytes(original)
    verdict = verify(copy, ledger=ledger)
    assert verdict.status == "stripped" and verdict.match is not None and verdict.match.work.id == works[0].id, verdict.reasons
    # tag (one file) and --jobs 2 record it too
    other = shoot / "DSC_0003.NEF"
    _camera_raw(exiftool, other)
    assert rightsmeta.tag(other, DENY_AI, ledger=ledger).status == "tagged"
    third = shoot / "DSC_0004.NEF"
    _camera_raw(exiftool, third, "-Artist=Ada")
    assert [r.status for r in api.tag_all([third], DENY_AI, ledger=ledger, jobs=2)] == ["tagged"]
    assert sorted(w.path for w in ledger) == sorted(str(p) for p in (raw, other, third))
    ledger.close()
