"""The order of durability in a batch (api.tag_all): every file's new bytes are fsynced before
its rename, and each folder is fsynced once, after its renames and before the results return."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
from samples import image_bytes, pixels

import rightsmeta
from rightsmeta import api
from rightsmeta.model import Assertion, Permission, Purpose, State

DENY_AI = Assertion.build(deny=["ai"])


def _record(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The real fsync and replace calls, in order, with what they were called on."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        what = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        events.append((f"fsync-{what}", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append(("replace", os.fspath(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def _files(tmp_path: Path) -> list[Path]:
    paths = []
    for i, folder in enumerate(["a", "a", "b", "a"]):
        (tmp_path / folder).mkdir(exist_ok=True)
        path = tmp_path / folder / f"{i}.jpg"
        path.write_bytes(image_bytes("jpeg", seed=i))
        paths.append(path)
    return paths


def test_a_batch_syncs_data_before_each_rename_and_each_folder_once_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _files(tmp_path)
    originals = [pixels(p) for p in paths]
    events = _record(monkeypatch)
    results = api.tag_all(paths, DENY_AI)
    assert [r.status for r in results] == ["tagged"] * 4
    replaces = [i for i, (kind, _) in enumerate(events) if kind == "replace"]
    assert len(replaces) == 4
    for i in replaces:  # the temporary file renamed was fsynced before, by name
        assert ("fsync-file", events[i][1]) in events[:i]
    dirs = [(i, name) for i, (kind, name) in enumerate(events) if kind == "fsync-dir"]
    assert sorted(name for _, name in dirs) == [str(tmp_path / "a"), str(tmp_path / "b")]  # once per folder
    assert all(i > replaces[-1] for i, _ in dirs)  # after every rename
    for path, before in zip(paths, originals, strict=True):
        assert rightsmeta.read(path).permissions[Purpose.AI_TRAINING] == Permission(State.NOT_ALLOWED)
        assert pixels(path) == before


def test_a_batch_stopped_midway_still_syncs_the_folders_it_renamed_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _files(tmp_path)
    originals = [p.read_bytes() for p in paths]
    events = _record(monkeypatch)

    def stopping() -> object:
        yield from paths[:2]
        raise KeyboardInterrupt  # Ctrl-C between two files

    with pytest.raises(KeyboardInterrupt):
        api.tag_all(stopping(), DENY_AI)  # type: ignore[arg-type]
    # The files whose rename the interruption came before keep their original, whole; those
    # renamed had their bytes synced first, and their folder is synced after, before returning.
    renamed = [i for i, (kind, _) in enumerate(events) if kind == "replace"]
    for i in renamed:
        assert ("fsync-file", events[i][1]) in events[:i]
    changed = [p.parent for p, before in zip(paths, originals, strict=True) if p.read_bytes() != before]
    assert len(changed) == len(renamed) <= 2
    synced = [(i, name) for i, (kind, name) in enumerate(events) if kind == "fsync-dir"]
    assert [name for _, name in synced] == sorted({str(p) for p in changed})
    assert all(i > j for i, _ in synced for j in renamed)
    assert not list(tmp_path.rglob("*.rightsmeta-tmp"))  # no temporary file left behind


def test_a_batch_stopped_while_renames_wait_keeps_those_originals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped while the durability thread is busy (a slow disk): the files not renamed yet keep
    their original, nothing renames them later, and no temporary file stays."""
    paths = _files(tmp_path)
    originals = [p.read_bytes() for p in paths]
    real_fsync = os.fsync

    def slow(fd: int) -> None:  # the first file's fsync is quick, the others' slow
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if name.endswith(".rightsmeta-tmp") and not name.startswith(".0.jpg."):
            time.sleep(0.3)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow)
    results = api.tag_iter(paths, DENY_AI)
    assert next(results).status == "tagged"  # after its rename; the others are in their slow fsyncs
    results.close()
    time.sleep(1.2)  # longer than the remaining fsyncs: a rename still coming would have happened
    assert paths[0].read_bytes() != originals[0]
    assert [p.read_bytes() for p in paths[1:]] == originals[1:]
    assert not list(tmp_path.rglob("*.rightsmeta-tmp"))


def test_a_single_tag_syncs_its_folder_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _files(tmp_path)[0]
    events = _record(monkeypatch)
    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    assert [kind for kind, _ in events] == ["fsync-file", "replace", "fsync-dir"]


def test_results_stream_while_paths_are_still_coming(tmp_path: Path) -> None:
    """tag_iter holds no list of paths or results: a file's result comes while at most a few
    paths after it have been taken, so memory does not grow with the size of a batch."""
    paths = _files(tmp_path)[:1]  # one real file, then names that do not exist
    taken: list[int] = []

    def endless() -> object:
        yield paths[0]
        for i in range(10**9):
            taken.append(i)
            yield tmp_path / f"missing-{i}.jpg"

    results = api.tag_iter(endless(), DENY_AI)  # type: ignore[arg-type]
    first = next(results)
    assert first.status == "tagged" and first.path == str(paths[0])
    assert len(taken) <= api._AHEAD + 1
    for _ in range(1000):
        assert next(results).status == "failed"
    assert len(taken) <= 1000 + api._AHEAD + 1
    results.close()
