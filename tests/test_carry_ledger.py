"""A rendition carry recorded in the ledger is a local record derived from its work: named so, ranked
with the local works, and following its work's newest statement when the work is tagged again."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from test_verify import photo

import rightsmeta
from rightsmeta import Assertion
from rightsmeta.carry import carry_path
from rightsmeta.ledger import Ledger
from rightsmeta.verify import verify


def rendition(tmp_path: Path, exiftool: str) -> tuple[Path, Path, Path]:
    """(work, its carried WebP rendition, a stripped copy of the rendition), the work denying AI."""
    work = photo(tmp_path, "work.jpg", 21, (320, 240))
    with Ledger.open(tmp_path / "ledger.sqlite3") as ledger:
        assert rightsmeta.tag(work, Assertion.build(deny=["ai"]), ledger=ledger).status == "tagged"
    small = tmp_path / "small.webp"
    with Image.open(work) as img:
        img.resize((160, 120)).save(small, quality=80)
    carry_path(work, small, ledger_path=str(tmp_path / "ledger.sqlite3"))
    copy = tmp_path / "copy.webp"
    shutil.copy(small, copy)
    subprocess.run([exiftool, "-q", "-all=", "-overwrite_original", str(copy)], check=True)
    return work, small, copy


def test_a_rendition_is_a_local_record_of_its_work(tmp_path: Path, exiftool: str) -> None:
    work, small, copy = rendition(tmp_path, exiftool)
    with Ledger.open(tmp_path / "ledger.sqlite3") as ledger:
        [original] = [w for w in ledger if w.path == str(work)]
        verdict = verify(copy, ledger=ledger)
        assert verdict.status == "stripped" and verdict.match is not None
        assert verdict.match.work.path == str(small) and not verdict.match.imported
        assert f"a rendition carried from work {original.id}" in verdict.reasons[0] and "imported" not in verdict.reasons[0]
        # A registry's claim on the same essence comes after the creator's rendition, however new.
        claim = verdict.match.work.to_json() | {"id": "registry-1", "tagged_at": "2999-01-01T00:00:00Z", "source": None,
                                                "assertion": Assertion.build(allow=["all"]).to_json()}
        assert ledger.import_jsonl([json.dumps(claim)], source="https://registry.example/works.jsonl") == 1
        verdict = verify(copy, ledger=ledger)
        assert verdict.match is not None and verdict.match.work.path == str(small), verdict.reasons
        assert verdict.to_json()["permissions"]["ai-training"] == "notAllowed"


def test_a_registry_line_cannot_pass_for_a_local_rendition(tmp_path: Path, exiftool: str) -> None:
    work, small, copy = rendition(tmp_path, exiftool)
    with Ledger.open(tmp_path / "ledger.sqlite3") as ledger:
        [mine] = [w for w in ledger if w.path == str(small)]
        forged = mine.to_json() | {"id": "forged-1", "assertion": Assertion.build(allow=["all"]).to_json()}
        assert ledger.import_jsonl([json.dumps(forged)], source="https://registry.example/works.jsonl") == 1
        [claim] = [w for w in ledger if w.id == "forged-1"]
        assert claim.derived_from is None and claim.source == f"https://registry.example/works.jsonl: {mine.source}"
        row = verify(copy, ledger=ledger).to_json()
        assert row["permissions"]["ai-training"] == "notAllowed"  # the most restrictive of the two


def test_a_derived_line_imported_unlabelled_never_supersedes_the_creators_record(tmp_path: Path, exiftool: str) -> None:
    """Before import_jsonl labelled them, a registry line whose own source read "derived from X" was
    stored as it came: such a row with the work's own essence, newer and allowing everything, must
    not replace the creator's statement as the newest record of the work."""
    work, _, _ = rendition(tmp_path, exiftool)
    copy = tmp_path / "copy.jpg"
    shutil.copy(work, copy)
    subprocess.run([exiftool, "-q", "-all=", "-overwrite_original", str(copy)], check=True)
    with Ledger.open(tmp_path / "ledger.sqlite3") as ledger:
        [original] = [w for w in ledger if w.path == str(work)]
        stored = replace(original, id="forged-1", tagged_at="2999-01-01T00:00:00+00:00",
                         assertion=Assertion.build(allow=["all"]), source=f"derived from {original.id}")
        assert stored.derived_from == original.id and ledger.record(stored)
        verdict = verify(copy, ledger=ledger)
        matched = [m.work.id for m in (verdict.match, *verdict.also) if m is not None]
        assert verdict.status == "stripped" and original.id in matched and "forged-1" in matched, verdict.reasons
        assert verdict.to_json()["permissions"]["ai-training"] == "notAllowed"


def test_a_rendition_follows_its_work_tagged_again(tmp_path: Path, exiftool: str) -> None:
    work, small, copy = rendition(tmp_path, exiftool)
    with Ledger.open(tmp_path / "ledger.sqlite3") as ledger:
        assert verify(copy, ledger=ledger).to_json()["permissions"]["ai-training"] == "notAllowed"
        assert rightsmeta.tag(work, Assertion.build(allow=["all"]), ledger=ledger).status == "tagged"
        verdict = verify(copy, ledger=ledger)
        row = verdict.to_json()
        assert row["status"] == "stripped" and set(row["permissions"].values()) == {"allowed"}, row
        assert verdict.match is not None and verdict.match.work.path == str(work) and not verdict.also
        assert "tagged again" in verdict.reasons[0]


def test_carry_compares_in_memory_and_records_the_essence_it_compared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The comparison's ledger was a file in a temporary folder (3-45 ms to create and commit),
    # and the rendition's essence was computed again to record it. Now no temporary folder is
    # needed at all, each content is decoded once, and the record is what it was.
    import tempfile

    from rightsmeta import fingerprint
    from rightsmeta import ledger as ledger_module
    from rightsmeta.ledger import Work

    work = photo(tmp_path, "work.jpg", 22, (320, 240))
    assert rightsmeta.tag(work, Assertion.build(deny=["ai"]), ledger=None).status == "tagged"
    small = tmp_path / "small.png"
    with Image.open(work) as img:
        img.resize((160, 120)).save(small)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no such folder"))
    decoded: list[int] = []
    real = fingerprint.essence

    def essence(data: bytes, *args: Any, **kwargs: Any) -> fingerprint.Essence:
        decoded.append(len(data))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(fingerprint, "essence", essence)
    monkeypatch.setattr(ledger_module, "essence", essence)
    carry_path(work, small, ledger_path=str(tmp_path / "ledger.sqlite3"))
    assert len(decoded) == 2, decoded  # the work's, the rendition's
    monkeypatch.undo()
    with Ledger.open(tmp_path / "ledger.sqlite3") as ledger:
        [recorded] = list(ledger)
    fresh = Work.create(recorded.path, "png", fingerprint.essence(small.read_bytes(), "png", probes=False), recorded.assertion,
                        recorded.carriers, source=recorded.source, id=recorded.id)
    assert replace(fresh, tagged_at=recorded.tagged_at) == recorded
