"""The tag fast path (issue 12): what a run loads (start-up is paid once per run: for a folder of a
few hundred files it was a tenth of the time ExifTool needs), and XMP changes planned once per file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from samples import image_bytes
from test_documents import pdf_bytes

# Modules a successful tag never needs: concurrent.futures (with logging) for the durability
# threads' results, tempfile (with random and shutil) for the temporary files, hashlib (11M
# instructions) where the content is compared in place, not decoded and hashed.
NOT_LOADED = ("concurrent.futures", "logging", "tempfile", "hashlib")

_RUN = """
import sys
from rightsmeta.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    print("loaded:", sorted(m for m in {modules!r} if m in sys.modules), file=sys.stderr)
"""


def test_a_batch_tag_loads_no_executor_logging_or_tempfile(tmp_path: Path) -> None:
    for i, fmt in enumerate(("jpeg", "png", "webp", "tiff")):
        (tmp_path / f"{i}.{fmt}").write_bytes(image_bytes(fmt, seed=i))
    (tmp_path / "4.pdf").write_bytes(pdf_bytes())
    done = subprocess.run(
        [sys.executable, "-c", _RUN.format(modules=NOT_LOADED), "tag", "-r", "--deny", "ai", "--no-sign", "--no-ledger",
         str(tmp_path)], capture_output=True, text=True, check=True)
    assert "summary: 5 tagged, 0 failed" in done.stderr
    assert "loaded: []" in done.stderr, done.stderr


def test_temporary_files_are_named_as_stale_temps_finds_them(tmp_path: Path) -> None:
    """The temporary file's name is what ``stale_temps`` looks for, so a write killed midway
    is found and removed by the next run."""
    import os

    from rightsmeta import fsio

    target = tmp_path / "photo.jpg"
    target.write_bytes(b"old")
    pending = fsio.Replacement(target)
    try:
        name = os.path.basename(pending.tmp)
        assert fsio._TEMP_NAME.match(name), name
        assert name.startswith(".photo.jpg.") and os.stat(pending.tmp).st_mode & 0o777 == 0o600
    finally:
        pending.discard()
    assert sorted(os.listdir(tmp_path)) == ["photo.jpg"]


def test_changes_planned_once_keep_others_text_and_drop_our_own() -> None:
    """``planned`` (once per file) with ``keeping_others`` is ``updates``: our earlier free text
    is replaced or deleted, someone else's is kept."""
    import rightsmeta
    from rightsmeta import xmp
    from rightsmeta.vocab import iptc

    assertion = rightsmeta.Assertion.build(deny=["ai"]).for_work()
    ours = f"{iptc.SENTENCE_PREFIX} Not allowed: everything."
    assert iptc.is_own_sentence(ours)
    for existing in ({}, {"xmpRights:UsageTerms": ours}, {"xmpRights:UsageTerms": "Editorial use only"}):
        assert xmp.keeping_others(xmp.planned(assertion), existing) == xmp.updates(assertion, existing)
    kept = xmp.keeping_others(xmp.planned(assertion), {"xmpRights:UsageTerms": "Editorial use only"})
    assert "xmpRights:UsageTerms" not in kept
    # Without a sentence of ours to write, an earlier one of ours goes and someone else's stays.
    assert xmp.keeping_others({}, {"plus:OtherConstraints": ours}) == {"plus:OtherConstraints": None}
    assert xmp.keeping_others({}, {"plus:OtherConstraints": "Ask first"}) == {}


def test_tag_json_element_is_json_dumps_indented() -> None:
    """``tag --json`` prints each result as ``json.dumps(indent=2)`` would, one level in."""
    import json

    from rightsmeta.cli import _indented

    values = [
        {"path": "caf\u00e9/\U0001f600 \"x\"\n.jpg", "status": "tagged", "carriers": ["xmp", "exif"], "notes": [],
         "reason": None, "n": 3, "f": 0.1, "ok": True, "empty": {}, "nested": {"a": [{"b": [1, [], {}]}], "t": (1, 2)}},
        {1: "int key", None: "none key", "s": [True, None]},
        [], {}, "plain", 5,
    ]
    for value in values:
        assert _indented(value, "\n  ") == json.dumps(value, indent=2).replace("\n", "\n  ")


def test_a_work_copy_keeps_every_checked_field_and_stays_frozen() -> None:
    """``for_work`` copies the fields (not ``replace``, which checked them all again per file)."""
    import dataclasses

    import pytest

    from rightsmeta.model import Assertion

    statement = Assertion.build(deny=["ai"], holder="Ada", copyright="(c) Ada", policy="https://p.example/tdm.json")
    first, second = statement.for_work(), statement.for_work()
    assert first.work_id and second.work_id and first.work_id != second.work_id and first.date
    assert dataclasses.replace(first, date=None, work_id=None) == statement
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.date = "2000-01-01"  # type: ignore[misc]


def test_a_runs_words_are_planned_once_and_each_file_gets_its_own_id_and_date(monkeypatch: Any) -> None:
    """``planned`` takes the words from the run's memo (``Assertion.shared``) and adds each file's
    work id and date: the same changes, in the same order, as planning each file from scratch."""
    from rightsmeta import xmp
    from rightsmeta.model import Assertion

    statements = (
        Assertion.build(deny=["ai"]),
        Assertion.build(deny=["all"], allow=["search"], holder="Ada", contact="https://ada.example",
                        copyright="(c) Ada", web_statement="https://ada.example/l", policy="https://p.example/t.json"),
        Assertion.build(constrain={"genai-training": "https://ada.example/terms"}, holder="Ada"),
    )
    made = []
    words = xmp._planned_words
    monkeypatch.setattr(xmp, "_planned_words", lambda a: made.append(a) or words(a))
    for statement in statements:
        copies = [statement.for_work() for _ in range(3)]
        for copy in copies:
            assert list(xmp.planned(copy).items()) == list(words(copy).items())  # order too: it is the packet's
        assert len({xmp.planned(c)["rightsmeta:WorkID"] for c in copies}) == 3
    assert len(made) == len(statements)  # once per run's statement, not per file
    assert all(a.date is None and a.work_id is None for a in made)


def test_a_tag_walks_each_version_of_a_jpeg_png_or_webp_once(monkeypatch: Any) -> None:
    """The C2PA locator, the block extraction, the writer and the content check share one walk of
    the original and one of the tagged bytes (carriers.walked); a read is not changed by it."""
    import rightsmeta
    from rightsmeta.carriers import jpeg, png, riff

    walks: list[bytes] = []
    for module in (jpeg, png, riff):
        walk = module.walk
        monkeypatch.setattr(module, "walk", lambda buf, *a, _walk=walk, **k: walks.append(bytes(buf)) or _walk(buf, *a, **k))
    statement = rightsmeta.Assertion.build(deny=["ai"])
    for seed, fmt in enumerate(("jpeg", "png", "webp")):
        walks.clear()
        original = image_bytes(fmt, seed=seed)
        tagged = rightsmeta.tag_bytes(original, statement)
        assert sorted(walks) == sorted([original, tagged]), fmt
        walks.clear()
        assert rightsmeta.read(tagged).decision is not None
        assert walks == [tagged]  # a read without the memo: its one walk (which the locator reuses) done
