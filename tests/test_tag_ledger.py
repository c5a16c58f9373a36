"""``tag`` with a ledger in one process (api.tag_iter): the next files are tagged while earlier
writes are in flight, yet each work is recorded after its file's rename, in path order; what a
SIGKILL of a real run leaves in the files and the ledger."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from samples import image_bytes
from test_tagpool import ENV, _after, _photos

from rightsmeta import api, tagging
from rightsmeta.ledger import Ledger, Work
from rightsmeta.model import Assertion

DENY_AI = Assertion.build(deny=["ai"])


def _files(folder: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        path = folder / f"{i}.png"
        path.write_bytes(image_bytes("png", size=(64, 48), seed=i))
        paths.append(path)
    return paths


def test_with_a_ledger_the_next_files_are_tagged_while_a_write_is_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _files(tmp_path, 4)
    events: list[tuple[str, str]] = []
    real_fsync, real_replace, real_tag_one, real_insert = os.fsync, os.replace, tagging.tag_one, Ledger._insert

    def fsync(fd: int) -> None:
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if name.startswith(".0.png."):  # the first file's write is slow: a busy disk
            time.sleep(0.3)
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        real_replace(src, dst)
        events.append(("renamed", os.path.basename(dst)))

    def tag_one(name: str, *args: object) -> object:
        events.append(("tagging", os.path.basename(name)))
        return real_tag_one(name, *args)  # type: ignore[arg-type]

    def insert(self: Ledger, work: object) -> bool:
        events.append(("recorded", os.path.basename(work.path)))  # type: ignore[attr-defined]
        return real_insert(self, work)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(tagging, "tag_one", tag_one)
    monkeypatch.setattr(Ledger, "_insert", insert)
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        results = api.tag_all(paths, DENY_AI, ledger=ledger)
        recorded = {work.path: work.id for work in ledger}
    assert [r.path for r in results] == [str(p) for p in paths]
    assert [r.status for r in results] == ["tagged"] * 4 and not any(r.notes for r in results)
    # Every file after the first was tagged while the first's write was still in flight.
    assert events.index(("renamed", "0.png")) > events.index(("tagging", "3.png"))
    for path in paths:  # each work recorded after its rename, in path order
        assert events.index(("recorded", path.name)) > events.index(("renamed", path.name))
    assert [name for what, name in events if what == "recorded"] == [p.name for p in paths]
    assert recorded == {str(p): r.assertion.work_id for p, r in zip(paths, results, strict=True) if r.assertion}


def test_works_are_recorded_several_in_a_transaction_in_path_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _files(tmp_path, 2 * api._BATCH + 3)
    batches: list[list[str]] = []
    real = Ledger.record_many

    def record_many(self: Ledger, works: list[Work]) -> int:
        batches.append([os.path.basename(work.path) for work in works])
        return real(self, works)

    monkeypatch.setattr(Ledger, "record_many", record_many)
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        results = list(api.tag_iter(paths, DENY_AI, ledger=ledger))
        assert len(ledger) == len(paths)
    assert [r.status for r in results] == ["tagged"] * len(paths) and not any(r.notes for r in results)
    assert [name for batch in batches for name in batch] == [p.name for p in paths]
    assert max(len(batch) for batch in batches) == api._BATCH  # one commit for several works
    assert len(batches) == 3


def test_a_work_the_ledger_refuses_gets_the_note_and_the_rest_of_its_batch_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _files(tmp_path, api._BATCH)
    real = Ledger._insert

    def insert(self: Ledger, work: Work) -> bool:
        if work.path.endswith("/3.png"):
            raise sqlite3.OperationalError("disk I/O error")
        return real(self, work)

    monkeypatch.setattr(Ledger, "_insert", insert)
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        results = api.tag_all(paths, DENY_AI, ledger=ledger)
        recorded = sorted(os.path.basename(work.path) for work in ledger)
    assert [r.status for r in results] == ["tagged"] * len(paths)
    assert [r.notes for r in results if r.notes] == [["tagged, but not recorded in the ledger: disk I/O error"]]
    assert results[3].notes and recorded == sorted(p.name for p in paths if p.name != "3.png")


# The CLI on a slow disk: every fsync takes 50 ms, so renames wait while the next files are tagged.
SLOW_DISK = """
import os, sys, time
fsync = os.fsync
os.fsync = lambda fd: (time.sleep(0.05), fsync(fd))[1]
from rightsmeta.cli_plain import main
sys.argv[0] = "rightsmeta"
main()
"""


def test_a_run_stopped_early_records_every_file_it_renamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A disk slower than tagging (each fsync 20 ms), so files beyond the first batch are being
    # written when it is given: on a fast disk their writes could all be done and taken by then.
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (time.sleep(0.02), fsync(fd))[1])
    paths = _files(tmp_path, 3 * api._BATCH)
    originals = {path: path.read_bytes() for path in paths}
    with Ledger.open(tmp_path / "works.db") as ledger:
        run = api.tag_iter(paths, DENY_AI, ledger=ledger)
        first = next(run)  # given with its batch: the next files are being written meanwhile
        time.sleep(1)  # their writes finish, each renamed over its original
        run.close()  # as Ctrl-C or a closed pipe stops the CLI
        recorded = {work.path for work in ledger}
    tagged = {str(path) for path in paths if path.read_bytes() != originals[path]}
    assert first.status == "tagged" and len(tagged) > api._BATCH  # files beyond the batch given were renamed
    assert recorded == tagged


def test_a_run_killed_mid_batch_leaves_originals_or_whole_tags_and_a_true_ledger(tmp_path: Path) -> None:
    """SIGKILL of ``tag --ledger`` (one process) while files are tagged and written: every file is
    its original or tagged whole, every work recorded is in its renamed file, and at most the
    files renamed but not yet recorded (those written ahead, and a batch waiting for its
    transaction) are tagged but not recorded."""
    folder, ledger = tmp_path / "photos", tmp_path / "ledger.db"
    originals = _photos(folder, 40)
    run = subprocess.Popen([sys.executable, "-c", SLOW_DISK, "tag", "-r", "--deny", "ai", "--no-sign", "--ledger",
                            str(ledger), str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**ENV, "PYTHONUNBUFFERED": "1"})
    assert run.stdout is not None
    first = run.stdout.readline()
    assert first.startswith("tagged"), first
    run.kill()
    run.communicate(timeout=60)
    assert run.returncode == -signal.SIGKILL
    tagged, recorded = _after(folder, ledger, originals)
    assert 0 < len(recorded) <= len(tagged) < len(originals)
    assert len(tagged - recorded) <= api._AHEAD + api._BATCH
    # What the kill left is taken up by the next run: every file tagged and recorded once.
    again = subprocess.run([sys.executable, "-m", "rightsmeta", "tag", "-r", "--deny", "ai", "--no-sign", "--ledger",
                            str(ledger), str(folder)], capture_output=True, text=True, env=ENV, timeout=300)
    assert again.returncode == 0, again.stderr
    with Ledger.open(ledger, readonly=True) as db:
        assert {work.path for work in db} == {str(p) for p in originals}


def test_tagging_images_with_a_ledger_loads_no_module_only_audio_or_documents_need(tmp_path: Path) -> None:
    """Start-up: tempfile, shutil, zipfile and html serve fpcalc, ffmpeg and EPUBs only (12 ms of
    every run's imports when loaded at once)."""
    (tmp_path / "photos").mkdir()
    _files(tmp_path / "photos", 2)
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print(sorted(m for m in ('tempfile', 'shutil', 'zipfile', 'html') "
            "if m in sys.modules), file=sys.stderr))\n"
            "from rightsmeta.cli_plain import main\n"
            "sys.argv[0] = 'rightsmeta'\n"
            "main()\n")
    done = subprocess.run([sys.executable, "-c", code, "tag", "-r", "--deny", "ai", "--no-sign", "--ledger",
                           str(tmp_path / "ledger.db"), str(tmp_path / "photos")], capture_output=True, text=True,
                          env=ENV, timeout=120)
    assert done.returncode == 0 and done.stdout.count("tagged ") == 2, done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr


def test_a_name_that_is_not_utf8_is_recorded(tmp_path: Path) -> None:
    # SQLite cannot encode the lone surrogate such a name decodes to: the work went unrecorded
    # ("internal error ... please report it"), so its stripped copies were never recognised.
    path = os.path.join(os.fsencode(tmp_path), b"caf\xe9 photo.png")
    with open(path, "wb") as fh:
        fh.write(image_bytes("png", size=(64, 48), seed=7))
    name = os.fsdecode(path)
    with Ledger.open(tmp_path / "ledger.sqlite3") as ledger:
        [result] = api.tag_iter([name], DENY_AI, ledger=ledger)
        assert result.status == "tagged" and result.notes == [], result.notes
        [work] = list(ledger)
    assert work.path == str(tmp_path / "caf\\xe9 photo.png")
