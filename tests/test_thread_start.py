"""A durability thread that cannot start (a limit on threads, no memory), and a worker's stop
racing its durability thread: no file's write is left to a thread that finishes it after the
file was given up, and every file ends either tagged (and said so) or untouched."""

from __future__ import annotations

import queue
import threading
from multiprocessing import Pipe
from pathlib import Path
from typing import Any

import pytest
from samples import image_bytes

import rightsmeta
from rightsmeta import Assertion, api, tagging, tagpool
from rightsmeta.errors import WriteError
from rightsmeta.ledger import Ledger
from rightsmeta.report import TagResult

DENY = Assertion.build(deny=["ai"])


def _files(folder: Path, count: int) -> dict[Path, bytes]:
    folder.mkdir()
    files = {folder / f"{i}.png": image_bytes("png", seed=i) for i in range(count)}
    for path, data in files.items():
        path.write_bytes(data)
    return files


def _failing_starts(monkeypatch: pytest.MonkeyPatch, fails: set[int]) -> list[int]:
    """``Thread.start`` of durability threads raises as under a thread limit, on the calls
    numbered in ``fails`` (from 1); the calls made are counted in the list returned."""
    real = threading.Thread.start
    calls: list[int] = []

    def start(thread: threading.Thread) -> None:
        if thread.name == "rightsmeta-durable":
            calls.append(len(calls) + 1)
            if calls[-1] in fails:
                raise RuntimeError("can't start new thread")
        real(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    return calls


@pytest.mark.parametrize("fails", [{1, 2, 3, 4, 5, 6}, {2}, {1}], ids=["none-start", "second-fails", "first-fails"])
def test_a_durability_thread_that_cannot_start_strands_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              fails: set[int]) -> None:
    files = _files(tmp_path / "photos", 6)
    calls = _failing_starts(monkeypatch, fails)
    results: list[TagResult] = []
    recorded: list[Any] = []

    def tag() -> None:
        ledger = Ledger.open(tmp_path / "ledger.db")
        try:
            results.extend(api.tag_iter(sorted(files), DENY, ledger=ledger))
            recorded.extend(ledger.get(r.assertion.work_id) for r in results if r.assertion is not None)
        finally:
            ledger.close()

    # In a thread of its own: a job left queued for a thread that never started would hang the
    # run, and that must fail this test, not hang the suite.
    run = threading.Thread(target=tag, daemon=True)
    run.start()
    run.join(60)
    assert not run.is_alive(), "the run hung: a file was left to a thread that never started"
    assert calls and set(calls) & fails  # the failure happened
    assert [r.status for r in results] == ["tagged"] * len(files), [r.reason for r in results]
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == sorted(p.name for p in files)  # no temp file
    for path, original in files.items():
        assert path.read_bytes() != original
        assert rightsmeta.read(path).permissions[rightsmeta.Purpose.GENAI_TRAINING].state \
            is rightsmeta.State.NOT_ALLOWED
    assert len(recorded) == len(files) and all(work is not None for work in recorded)


def test_a_file_dropped_by_a_workers_stop_is_not_answered(tmp_path: Path) -> None:
    """The race the worker-SIGTERM test of test_tag_safety lost now and then: the stop drops a
    file (``abandon``) before its durability thread finishes it, whose finish then fails with
    "stopped before it was replaced". That is no answer for the parent, which would give it as
    the file's failure: the file is tagged again in a fresh worker instead. A file after it that
    another durability thread had renamed already is still answered (not tagged twice)."""
    dropped_path, done_path = tmp_path / "dropped.png", tmp_path / "done.png"
    dropped_path.write_bytes(original := image_bytes("png"))
    done_path.write_bytes(image_bytes("png", seed=1))
    held: list[tagging.Writing] = []
    for path in (dropped_path, done_path):
        tagging.tag_one(str(path), DENY.for_work(), False, api.Options(), None, False, True, held.append)
    step, renamed = held
    step.abandon()  # the worker's stop, first
    with pytest.raises(WriteError, match="stopped before it was replaced") as dropped:
        step.finish(set())  # the durability thread, second
    finishing, finished = tagging.Finishing(), tagging.Finishing()
    finishing.end(dropped.value)
    renamed.finish(set())
    finished.end(None)
    outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    outbox.put((0, step, finishing))
    outbox.put((1, renamed, finished))
    outbox.put(None)
    parent, child = Pipe()
    tagpool._answer(child, outbox, {0: step, 1: renamed}, threading.Event())
    assert parent.poll(10), "the renamed file after the dropped one was not answered"
    seq, result, _, _ = parent.recv()
    assert (seq, result.status, result.path) == (1, "tagged", str(done_path))
    assert not parent.poll(0.1)  # nothing for the dropped file
    assert dropped_path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done.png", "dropped.png"]
