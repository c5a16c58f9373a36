"""Batches (the creators' page's way to tag a whole folder): files tagged one by one into a batch on
the server's disk, downloaded as one zip written while it is sent. Real server, real files; the
server's peak memory is read from /proc and must not grow with the number of files."""

from __future__ import annotations

import io
import os
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

import rightsmeta
from rightsmeta.fingerprint import essence
from rightsmeta.server.app import Problem
from rightsmeta.server.batches import Batches, Member, zip_stream
from rightsmeta.server.folder import PREFIX
from tests.samples import image_bytes
from tests.test_serve import ASSERTION, Server, _start

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("batches")
    yield from _start(folder, "--ledger", str(folder / "ledger.sqlite3"), "--token-file", str(folder / "token"), "--workers", "2")


def peak_kib(pid: int) -> int:
    """The most resident memory this process has ever had (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc")


def big_png(megabytes: int, seed: int = 1) -> bytes:
    """A real PNG of incompressible pixels, so its size is about what it holds."""
    side = int((megabytes * MIB / 3) ** 0.5)
    raw = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(raw, "PNG", compress_level=1)
    return raw.getvalue()


def _add(http: httpx.Client, server: Server, batch: dict[str, str], name: str, data: bytes) -> httpx.Response:
    return http.post(batch["files"], headers=server.auth, files={"file": (name, data)}, data={"assertion": ASSERTION})


def _zip_to(http: httpx.Client, url: str, path: Path) -> int:
    """Stream the zip to disk (the test holds no more of it than the server does); the largest chunk seen."""
    largest = 0
    with http.stream("GET", url) as answer, open(path, "wb") as out:
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip"
        assert "content-length" not in answer.headers  # written while sent, not built first
        for chunk in answer.iter_raw():
            largest = max(largest, len(chunk))
            out.write(chunk)
    return largest


def test_many_files_stream_through_with_flat_server_memory(server: Server, tmp_path: Path) -> None:
    photo = big_png(3)
    truncated = image_bytes("jpeg", size=(200, 150))
    truncated = truncated[: len(truncated) // 2]
    with httpx.Client(base_url=server.url, timeout=120) as http:
        batch = http.post("/v1/batches", headers=server.auth).json()
        # Warm up: every code path (upload, tag, zip) has run once before the peak is read.
        for _ in range(3):
            assert _add(http, server, batch, "photo.png", photo).status_code == 201
        _zip_to(http, batch["zip"], tmp_path / "warm.zip")
        before = peak_kib(server.process.pid)

        files = 45
        for _ in range(files):
            answer = _add(http, server, batch, "photo.png", photo)
            assert answer.status_code == 201, answer.text
        bad = _add(http, server, batch, "broken.jpg", truncated)
        assert bad.status_code == 422 and "truncated JPEG" in bad.json()["detail"]
        assert _add(http, server, batch, "photo.png", photo).status_code == 201  # the batch goes on after a failure
        largest = _zip_to(http, batch["zip"], tmp_path / "all.zip")
        after = peak_kib(server.process.pid)
        info = http.get(f"/v1/batches/{batch['id']}").json()

    through = (files + 1) * len(photo) * 2 // 1024  # each file went up and came down again
    grown = after - before
    print(f"server peak RSS {before} -> {after} KiB ({grown} KiB) with {through} KiB through")
    # 150 MB through the server; its peak grew by at most 24 MiB (one upload's parts and chunks in flight).
    assert grown < 24 * 1024, f"server peak RSS grew {grown} KiB while {through} KiB went through"
    assert largest <= 4 * MIB
    assert info["failed"] == 1 and len(info["files"]) == files + 4
    with zipfile.ZipFile(tmp_path / "all.zip") as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert len(names) == files + 4 and len(set(names)) == len(names)
        assert names[:3] == ["photo.png", "photo-2.png", "photo-3.png"] and "broken.jpg" not in names
        sample = archive.read(names[-1])
    report = rightsmeta.read(sample)
    assert report.permissions[rightsmeta.Purpose.AI_TRAINING].state is rightsmeta.State.NOT_ALLOWED
    assert essence(sample, "png").hash == essence(photo, "png").hash


def test_batch_ids_names_and_tokens(server: Server) -> None:
    png = image_bytes("png", seed=3)
    with server.client() as http:
        assert http.post("/v1/batches").status_code == 401
        batch = http.post("/v1/batches", headers=server.auth).json()
        assert len(batch["id"]) == 24
        assert http.post(batch["files"], files={"file": ("a.png", png)}, data={"assertion": ASSERTION}).status_code == 401
        first = _add(http, server, batch, "../../etc/passwd.png", png).json()
        second = _add(http, server, batch, "../holiday/./beach.png", png).json()
        assert (first["name"], second["name"]) == ("etc/passwd.png", "holiday/beach.png")
        # The batch's folder holds its files only: not what a job saved for a run of it again.
        [root] = [Path(os.readlink(fd)) / "batches" for fd in Path(f"/proc/{server.process.pid}/fd").iterdir()
                  if os.readlink(fd).rsplit("/", 1)[-1].startswith(PREFIX)]
        kept = [p.name for p in root.glob("*/*")]
        assert len(kept) >= 2 and all(re.fullmatch("[0-9a-f]{24}", name) for name in kept), kept  # named by batches.add
        # The batch id is the capability a download link carries (a link cannot send a bearer token).
        one = http.get(second["download"])
        assert one.status_code == 200 and "beach.png" in one.headers["content-disposition"]
        assert rightsmeta.read(one.content).permissions[rightsmeta.Purpose.AI_TRAINING].state is rightsmeta.State.NOT_ALLOWED
        assert http.get(f"/v1/batches/{batch['id']}/files/2").status_code == 404
        for wrong in ("x" * 24, "..%2F..%2Fetc", batch["id"][:-1]):
            answer = http.get(f"/v1/batches/{wrong}/zip")
            assert answer.status_code == 404 and answer.headers["content-type"] == "application/problem+json"
        assert http.delete(f"/v1/batches/{batch['id']}").status_code == 401
        assert http.delete(f"/v1/batches/{batch['id']}", headers=server.auth).status_code == 204
        assert http.get(batch["zip"]).status_code == 404


def test_zip_stream_holds_one_chunk_at_a_time(tmp_path: Path) -> None:
    members = []
    for n in range(3):
        path = tmp_path / f"m{n}"
        path.write_bytes(os.urandom(3 * MIB + n))
        members.append(Member(f"dir/file{n}.bin", str(path), path.stat().st_size))
    ended: list[bool] = []
    chunks = list(zip_stream(members, lambda: ended.append(True)))
    assert ended == [True]
    assert max(len(c) for c in chunks) < 2 * 256 * 1024 + 4096
    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as archive:
        assert archive.testzip() is None
        for member in members:
            assert archive.read(member.name) == Path(member.path).read_bytes()


def test_batches_are_bounded_and_expire(tmp_path: Path) -> None:
    store = Batches(str(tmp_path), max_bytes=10 * MIB, max_files=2, max_batches=2, seconds=0.5)
    first = store.create()
    store.reserve(first, 6 * MIB)
    with pytest.raises(Problem) as full:
        store.reserve(first, 6 * MIB)
    assert full.value.status == 507
    # More than all batches may hold together: no batch ever takes it, so it is not "full" (507) but refused.
    with pytest.raises(Problem) as never:
        store.reserve(first, 10 * MIB + 1)
    assert never.value.status == 413 and "can never fit" in never.value.detail
    path = Path(first.folder) / "one"
    path.write_bytes(b"x" * 100)
    assert store.settle(first, 6 * MIB, Member("one", str(path), 100)) == 0
    assert store.used() == 100 and first.size == 100
    store.reserve(first, MIB)
    with pytest.raises(Problem) as many:
        store.reserve(first, MIB)
    assert many.value.status == 413
    assert store.settle(first, MIB, None) == -1
    # More than the disk has free (whatever the batch limit says): refused before anything is written.
    roomy = Batches(str(tmp_path), max_bytes=2**62, max_files=5, max_batches=5, seconds=60)
    with pytest.raises(Problem) as disk:
        roomy.reserve(roomy.create(), shutil.disk_usage(tmp_path).free)
    assert disk.value.status == 507 and "free" in disk.value.detail
    store.create()
    with pytest.raises(Problem) as busy:
        store.create()
    assert busy.value.status == 503
    # Unused for longer than `seconds`: removed, its folder too, and room for new batches.
    first.touched -= 1
    store.create()
    assert not Path(first.folder).exists()
    with pytest.raises(Problem):
        store.get(first.id)


def test_a_deleted_batch_goes_when_its_last_download_ends(tmp_path: Path) -> None:
    store = Batches(str(tmp_path), max_bytes=MIB, max_files=5, max_batches=5, seconds=60)
    batch = store.create()
    store.hold(batch)  # a download is being sent
    store.delete(batch)
    with pytest.raises(Problem):
        store.get(batch.id)
    assert Path(batch.folder).is_dir()
    store.release(batch)
    assert not Path(batch.folder).exists()


def test_a_zip_stream_left_early_still_releases_its_batch(tmp_path: Path) -> None:
    """A client that goes away mid-download: closing the stream reports the end once, so the batch can go."""
    path = tmp_path / "m"
    path.write_bytes(os.urandom(2 * MIB))
    ended: list[bool] = []
    stream = zip_stream([Member("m.bin", str(path), 2 * MIB)], lambda: ended.append(True))
    assert next(stream)
    assert ended == []
    stream.close()
    assert ended == [True]
