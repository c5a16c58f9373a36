"""``tag --jobs N`` (rightsmeta/tagpool.py): the same files and ledger as ``--jobs 1``, from real
processes; what a SIGKILL of the parent or of a worker, SIGTERM and Ctrl-C leave behind."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from samples import image_bytes

from rightsmeta import api, keys, tagpool
from rightsmeta.cli import main
from rightsmeta.errors import UsageError
from rightsmeta.fsio import stale_temps
from rightsmeta.ledger import Ledger
from rightsmeta.model import Assertion

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
DENY_AI = Assertion.build(deny=["ai"])
# What differs between two tags of one file by design: the work id (a fresh UUID per file) and the date.
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DATES = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\+00:00|Z)?|D:\d{14}Z?")  # XMP's; a PDF's Info dict's
_HEX = re.compile(rb"<((?:[0-9a-f]{2})+)>")


def _pdf(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise((60, 40), 10 + seed).convert("RGB").save(buf, "PDF")
    return buf.getvalue()


def _audio(ffmpeg: str, folder: Path, name: str, seed: int) -> None:
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", f"sine=frequency={300 + 50 * seed}:duration=1",
                    str(folder / name)], check=True, timeout=60)


def _mixed(folder: Path, ffmpeg: str) -> list[str]:
    """Images, PDFs and audio in two folders, a truncated JPEG (fails) and a text file (skipped)."""
    (folder / "sub").mkdir(parents=True)
    for i, fmt in enumerate(["jpeg", "png", "webp", "tiff"] * 3):
        ext = {"jpeg": "jpg", "tiff": "tif"}.get(fmt, fmt)
        where = folder / "sub" if i % 2 else folder
        (where / f"{i:02d}.{ext}").write_bytes(image_bytes(fmt, size=(64, 48), seed=i))
    for i in range(2):
        (folder / f"doc{i}.pdf").write_bytes(_pdf(i))
    for i, ext in enumerate(["mp3", "flac", "wav"]):
        _audio(ffmpeg, folder / "sub", f"song{i}.{ext}", i)
    (folder / "broken.jpg").write_bytes(image_bytes("jpeg", size=(64, 48), seed=99)[:300])
    (folder / "notes.txt").write_text("not media\n")
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _tag(folder: Path, ledger: Path, *extra: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rightsmeta", "tag", "-r", "--deny", "ai", "--no-sign", "--json",
                           "--ledger", str(ledger), *extra, str(folder)], capture_output=True, text=True,
                          env=ENV, timeout=120, **kwargs)  # type: ignore[call-overload]


def _plain(data: bytes, result: dict[str, Any]) -> bytes:
    """The bytes with this file's work id and dates blanked, also inside a PDF's hex strings: the
    same length, as both always are."""
    work_id = str(result["assertion"]["work_id"]).encode()

    def blank(text: bytes) -> bytes:
        return _DATES.sub(lambda m: b"D" * len(m.group()), text.replace(work_id, b"W" * len(work_id)))

    data = blank(_HEX.sub(lambda m: b"<" + blank(bytes.fromhex(m.group(1).decode())).hex().encode() + b">", data))
    if data.startswith(b"\x89PNG"):  # each chunk's CRC follows from its bytes, compared already
        out, pos = bytearray(data), 8
        while pos + 8 <= len(data):
            end = pos + 8 + int.from_bytes(data[pos : pos + 4], "big")
            out[end : end + 4] = bytes(4)
            pos = end + 4
        data = bytes(out)
    return data


def _works(ledger: Path, folder: Path) -> dict[str, dict[str, object]]:
    """The ledger's works by path under ``folder``, without ids and times."""
    buf = io.StringIO()
    with Ledger.open(ledger, readonly=True) as db:
        db.export_jsonl(buf)
    works = {}
    for line in buf.getvalue().splitlines():
        work = json.loads(line)
        for key in ("id", "tagged_at"):
            work.pop(key)
        work["assertion"].pop("work_id")
        work["assertion"].pop("date")
        works[os.path.relpath(work.pop("path"), folder)] = work
    return works


def _bare(result: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A result without what differs by design: its folder, work id and date."""
    bare = {**result, "path": os.path.relpath(result["path"], folder)}
    if result["assertion"] is not None:
        bare["assertion"] = {k: v for k, v in result["assertion"].items() if k not in ("work_id", "date")}
    return bare


def test_jobs_2_gives_the_same_files_results_and_ledger_as_jobs_1(tmp_path: Path, ffmpeg: str) -> None:
    names = _mixed(tmp_path / "one", ffmpeg)
    shutil.copytree(tmp_path / "one", tmp_path / "two")
    runs = {}
    for jobs, folder in (("1", tmp_path / "one"), ("2", tmp_path / "two")):
        done = _tag(folder, tmp_path / f"ledger{jobs}.db", "--jobs", jobs)
        assert done.returncode == 1, done.stderr  # the truncated JPEG failed, alone
        runs[jobs] = json.loads(done.stdout)
    one = [_bare(r, tmp_path / "one") for r in runs["1"]]
    assert one == [_bare(r, tmp_path / "two") for r in runs["2"]]  # the same results, in the same order
    statuses = {r["path"]: r["status"] for r in one}
    assert statuses["broken.jpg"] == "failed" and statuses["notes.txt"] == "skipped"
    assert sorted(statuses) == names and list(statuses.values()).count("tagged") == len(names) - 2
    for a, b in zip(runs["1"], runs["2"], strict=True):
        name = os.path.relpath(a["path"], tmp_path / "one")
        first, second = (tmp_path / "one" / name).read_bytes(), (tmp_path / "two" / name).read_bytes()
        if a["status"] == "tagged":
            assert first != second  # each file has its own work id...
            assert _plain(first, a) == _plain(second, b), name  # ...and is otherwise the same
        else:
            assert first == second, name
    works = _works(tmp_path / "ledger1.db", tmp_path / "one")
    assert sorted(works) == sorted(n for n, s in statuses.items() if s == "tagged")
    assert works == _works(tmp_path / "ledger2.db", tmp_path / "two")


# --- stopped at any moment: SIGKILL of a worker or of the parent, SIGTERM, Ctrl-C ----------------


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:  # gone meanwhile
        return []


def _workers(parent: int) -> list[int]:
    """The worker processes of a run: the children of its fork server."""
    return [w for child in _children(parent) if b"forkserver" in _cmdline(child) for w in _children(child)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@functools.cache
def _photo() -> bytes:
    y, x = np.indices((900, 1200))
    rgb = np.stack([(x * 7 + y) % 256, (y * 5) % 256, (x * y // 97) % 256], axis=-1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _photos(folder: Path, count: int) -> dict[Path, bytes]:
    """Camera-size JPEGs: each takes the workers long enough that a signal lands mid-batch."""
    folder.mkdir()
    for i in range(count):
        (folder / f"{i:03d}.jpg").write_bytes(_photo())
    return {path: _photo() for path in sorted(folder.iterdir())}


def _started(folder: Path, ledger: Path, **kwargs: Any) -> tuple[subprocess.Popen[str], list[int]]:
    """``tag --jobs 2`` running, once its first result is printed; and its workers' process ids."""
    run = subprocess.Popen([sys.executable, "-m", "rightsmeta", "tag", "-r", "--deny", "ai", "--no-sign", "--ledger",
                            str(ledger), "--jobs", "2", str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env={**ENV, "PYTHONUNBUFFERED": "1"}, **kwargs)
    assert run.stdout is not None
    first = run.stdout.readline()
    assert first.startswith("tagged"), first + run.stderr.read() if run.stderr else ""
    workers = _workers(run.pid)
    assert len(workers) == 2, workers
    return run, workers


def _rest(run: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """The rest of a run's output once it ended. Read through the pipes' own buffered readers, not
    by ``communicate``, which reads the file descriptors: lines ``_started``'s readline took from the
    pipe with the first one (the parent may print several results at once) would be lost."""
    run.wait(timeout=timeout)  # these runs print a few kB: the pipes never fill
    assert run.stdout is not None and run.stderr is not None
    with run.stdout, run.stderr:
        return run.stdout.read(), run.stderr.read()


def _after(folder: Path, ledger: Path, originals: dict[Path, bytes]) -> tuple[set[Path], set[Path]]:
    """Every file is its original or tagged whole; every work in the ledger is in its file. The
    files tagged, and those tagged and recorded."""
    recorded: dict[str, str] = {}
    with Ledger.open(ledger, readonly=True) as db:
        for work in db:
            recorded[work.path] = work.id
    tagged = set()
    for path, original in originals.items():
        data = path.read_bytes()
        if data == original:
            continue
        report = api.read(path)
        assert not report.errors and report.decision is not None, path
        tagged.add(path)
        work_ids = {s.raw.get("WorkID") for s in report.signals if s.exact}
        if str(path) in recorded:
            assert work_ids == {recorded[str(path)]}, path  # a record is made only after its file's rename
    assert set(recorded) <= {str(p) for p in tagged}
    return tagged, {p for p in tagged if str(p) in recorded}


def test_a_worker_killed_mid_batch_loses_no_file_and_its_files_are_tagged_again(tmp_path: Path) -> None:
    originals = _photos(tmp_path / "photos", 40)
    run, workers = _started(tmp_path / "photos", tmp_path / "ledger.db")
    os.kill(workers[0], signal.SIGKILL)
    out, err = _rest(run, timeout=120)
    assert run.returncode == 0, err
    assert out.count("tagged  ") + 1 == len(originals)  # every file answered once (the first line was read)
    tagged, recorded = _after(tmp_path / "photos", tmp_path / "ledger.db", originals)
    assert tagged == recorded == set(originals)
    # The killed worker's temporary files (the file it was writing, those waiting for their rename)
    # are stale (no live process holds their lock): the next tag removes them.
    leftover = sorted(str(t) for t in (tmp_path / "photos").glob(".*.rightsmeta-tmp"))
    assert len(leftover) <= tagpool._DEPTH + 1 and leftover == stale_temps([tmp_path / "photos"], older_than=0)


def test_the_parent_killed_mid_batch_leaves_originals_or_whole_tags_and_a_true_ledger(tmp_path: Path) -> None:
    originals = _photos(tmp_path / "photos", 40)
    run, workers = _started(tmp_path / "photos", tmp_path / "ledger.db")
    run.kill()
    run.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while any(_alive(w) for w in workers):  # their pipe closed: they drop what is not renamed, and stop
        assert time.monotonic() < deadline, "workers still running after their parent was killed"
        time.sleep(0.05)
    tagged, recorded = _after(tmp_path / "photos", tmp_path / "ledger.db", originals)
    assert 0 < len(tagged) < len(originals)
    assert len(tagged - recorded) <= 2 * 2 * tagpool._DEPTH  # at most the reorder window: renamed, not yet given
    assert sorted((tmp_path / "photos").glob(".*.rightsmeta-tmp")) == []


@pytest.mark.parametrize("how", ["SIGTERM", "Ctrl-C"])
def test_a_stopped_batch_ends_its_workers_and_leaves_no_temporary_file(tmp_path: Path, how: str) -> None:
    originals = _photos(tmp_path / "photos", 40)
    run, workers = _started(tmp_path / "photos", tmp_path / "ledger.db", start_new_session=True)
    if how == "SIGTERM":
        run.terminate()
    else:  # a terminal sends SIGINT to the whole foreground process group
        os.killpg(run.pid, signal.SIGINT)
    started = time.monotonic()
    run.communicate(timeout=60)
    assert run.returncode == (128 + signal.SIGTERM if how == "SIGTERM" else 1)
    assert time.monotonic() - started < 10  # not after the whole batch
    assert not any(_alive(w) for w in workers)
    tagged, _ = _after(tmp_path / "photos", tmp_path / "ledger.db", originals)
    assert len(tagged) < len(originals)
    assert sorted((tmp_path / "photos").glob(".*.rightsmeta-tmp")) == []


# --- the library form ---------------------------------------------------------------------------

SCRIPT = """
import json, sys
from rightsmeta import api
from rightsmeta.ledger import Ledger
from rightsmeta.model import Assertion
files, ledger = json.loads(sys.argv[1]), sys.argv[2]
with Ledger.open(ledger) as db:
    results = api.tag_all(files, Assertion.build(deny=["ai"]), ledger=db, jobs=2)
    print(json.dumps([[r.path, r.status] for r in results]))
    print(sum(1 for _ in db))
"""


def test_tag_with_workers_from_a_stdin_script(tmp_path: Path) -> None:
    files = []
    for i, fmt in enumerate(["jpeg", "png", "webp", "tiff", "jpeg"]):
        path = tmp_path / f"{i}.{fmt}"
        path.write_bytes(image_bytes(fmt, seed=i))
        files.append(str(path))
    # Run from another folder, as a user's script would be: the worktree's rightsmeta comes from PYTHONPATH.
    done = subprocess.run([sys.executable, "-", json.dumps(files), str(tmp_path / "ledger.db")], input=SCRIPT,
                          text=True, capture_output=True, timeout=60, cwd=tmp_path, env=ENV)
    assert done.returncode == 0, done.stderr[-2000:]
    results, recorded = done.stdout.splitlines()
    assert json.loads(results) == [[f, "tagged"] for f in files]
    assert int(recorded) == len(files)


def test_workers_sign_with_the_key_given_and_write_it_nowhere(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    identity = keys.make_identity("Test Creator")
    paths = []
    for i, fmt in enumerate(["jpeg", "png", "webp"]):
        path = tmp_path / f"{i}.{fmt}"
        path.write_bytes(image_bytes(fmt, seed=i))
        paths.append(path)
    results = api.tag_all(paths, DENY_AI, identity=identity, jobs=2)
    assert [(r.status, "c2pa" in r.carriers) for r in results] == [("tagged", True)] * 3, results
    for path in paths:
        [manifest] = [c for c in api.read(path).carriers if c.name == "c2pa"]
        assert manifest.values.get("validation_state") == "Valid", manifest.values
    body = b"".join(identity.key_pem.splitlines()[1:-1])  # the key's base64, without its PEM armour
    for line in identity.key_pem.splitlines()[1:-1]:
        for file in tmp_path.rglob("*"):
            assert not file.is_file() or line not in file.read_bytes(), file
    captured = capfd.readouterr()
    assert body.decode() not in captured.out + captured.err


def test_paths_are_taken_as_the_workers_need_them(tmp_path: Path) -> None:
    """No list of paths or results is held: while results are given, the paths taken stay a small
    window ahead of them, so memory does not grow with the size of a batch."""
    real = tmp_path / "photo.jpg"
    real.write_bytes(image_bytes("jpeg", seed=3))
    taken: list[int] = []

    def endless() -> Iterator[Path]:
        yield real
        for i in range(10**9):
            taken.append(i)
            yield tmp_path / f"missing-{i}.jpg"

    with contextlib.closing(api.tag_iter(endless(), DENY_AI, jobs=2)) as results:
        first = next(results)
        assert first.status == "tagged" and first.path == str(real)
        most = 2 * 2 * tagpool._DEPTH  # two workers' queues, each at most twice its depth ahead
        assert len(taken) <= most
        for _ in range(300):
            assert next(results).status == "failed"
        # The bound is the window's cap, not its size at the first result: the workers may not have
        # filled it yet then (311 taken against 300 + 7 + 1, once in session 10).
        assert 300 <= len(taken) <= 300 + most + 1


_SYSCALL = re.compile(r"(\d+)\s+([\d.]+)\s+(?:<\.\.\. (\w+) resumed>(.*)|(\w+)\((.*))")  # pids are padded


def _syscalls(log: str) -> list[tuple[int, str, str, float, float]]:
    """strace -f -y -ttt lines as (thread, call, arguments, start, end); an interrupted call's two
    halves ("unfinished" and "resumed") joined."""
    calls, pending = [], {}
    for line in log.splitlines():
        m = _SYSCALL.match(line)
        if m is None:
            continue
        tid, when = int(m.group(1)), float(m.group(2))
        if m.group(3):  # the second half: its result
            name, args, start = pending.pop(tid)
            calls.append((tid, name, args + m.group(4), start, when))
        elif line.endswith("<unfinished ...>"):
            pending[tid] = (m.group(5), m.group(6), when)
        else:
            calls.append((tid, m.group(5), m.group(6), when, when))
    return sorted(calls, key=lambda c: c[3])


def test_in_the_workers_each_fsync_precedes_its_rename_and_each_folder_is_fsynced_after(tmp_path: Path) -> None:
    """Seen from outside, in the system calls the workers make (strace): each file's new bytes are
    fsynced before the rename that puts them in place, and its folder is fsynced after that rename."""
    strace = shutil.which("strace")
    if strace is None:
        if os.environ.get("CI"):
            pytest.fail("strace not found (apt-get install strace)")
        pytest.skip("strace not found (apt-get install strace)")
    folder = tmp_path / "files"
    (folder / "sub").mkdir(parents=True)
    for i, fmt in enumerate(["jpeg", "png", "webp", "tiff"] * 2):
        (folder / ("sub" if i % 2 else "") / f"{i}.{fmt}").write_bytes(image_bytes(fmt, seed=i))
    log = tmp_path / "strace.log"
    done = subprocess.run([strace, "-f", "-qq", "-y", "-ttt", "-e", "trace=fsync,rename", "-e", "signal=none", "-o",
                           str(log), sys.executable, "-m", "rightsmeta", "tag", "-r", "--deny", "ai", "--no-ledger",
                           "--jobs", "2", str(folder)], capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 0, done.stderr
    calls = _syscalls(log.read_text())
    renames = [i for i, c in enumerate(calls) if c[1] == "rename"]
    assert len(renames) == 8 and len({calls[i][0] for i in renames}) >= 2  # threads of both workers
    for i in renames:
        tid, _, args, _, end = calls[i]
        temp, target = re.findall(r'"([^"]+)"', args)
        assert ".rightsmeta-tmp" in temp and target.startswith(str(folder))
        before = [c for c in calls[:i] if c[0] == tid]
        assert before and before[-1][1] == "fsync" and f"<{temp}>" in before[-1][2], (target, before[-1:])
        directory = os.path.dirname(target)
        assert any(c[1] == "fsync" and f"<{directory}>)" in c[2] and c[3] >= end for c in calls), target


def test_a_negative_number_of_jobs_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(image_bytes("png"))
    done = CliRunner().invoke(main, ["tag", str(path), "--deny", "ai", "--no-ledger", "--jobs", "-1"])
    assert done.exit_code == 2 and "--jobs" in done.stderr
    with pytest.raises(UsageError, match="jobs must be 0"):
        api.tag_all([path], DENY_AI, jobs=-1)
    assert path.read_bytes() == image_bytes("png")


def _holds(pid: int, path: Path) -> bool:
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(path) for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:  # gone meanwhile
        return False


def test_a_file_its_workers_die_on_fails_alone_and_the_batch_goes_on(tmp_path: Path) -> None:
    """Whatever worker opens one file is killed (as a crash inside a decoder would end it): after
    its second death, tagging it alone, that file fails with the reason; every other file is tagged."""
    originals = _photos(tmp_path / "photos", 12)
    deadly = tmp_path / "photos" / "005.jpg"
    run = subprocess.Popen([sys.executable, "-m", "rightsmeta", "tag", "-r", "--deny", "ai", "--no-sign", "--json",
                            "--ledger", str(tmp_path / "ledger.db"), "--jobs", "2", str(tmp_path / "photos")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    kills = 0
    deadline = time.monotonic() + 120
    while run.poll() is None and time.monotonic() < deadline:
        for worker in _workers(run.pid):
            if _holds(worker, deadly):
                try:
                    os.kill(worker, signal.SIGKILL)
                except ProcessLookupError:  # it ended between the look and the kill
                    continue
                kills += 1
    out, err = run.communicate(timeout=60)
    assert run.returncode == 1, err
    results = {Path(r["path"]): r for r in json.loads(out)}
    assert list(results) == list(originals)
    assert results[deadly]["status"] == "failed" and "stopped before it answered" in results[deadly]["reason"]
    assert all(r["status"] == "tagged" for p, r in results.items() if p != deadly)
    assert kills >= 2
    tagged, recorded = _after(tmp_path / "photos", tmp_path / "ledger.db", originals)
    assert recorded == set(originals) - {deadly} and tagged >= recorded
