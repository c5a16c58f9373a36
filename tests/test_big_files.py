"""Files of gigabytes: read once into one buffer, and held to verify's per-file memory bound.

Sparse files (``truncate``) stand in for them, so nothing writes gigabytes; what reading one
costs is bounded by an address-space limit on a subprocess, not by the machine's memory.
"""

from __future__ import annotations

import json
import os
import resource
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from rightsmeta import fsio
from rightsmeta.verify import verify_many

ROOT = Path(__file__).resolve().parent.parent
GIB = 1024**3


def _jpeg(path: Path, size: int) -> Path:
    Image.new("RGB", (64, 64), "red").save(path, quality=90)
    with path.open("r+b") as f:
        f.truncate(size)
    return path


def _movie(path: Path, size: int, ffmpeg: str) -> Path:
    """A real MOV (moov first) whose ``mdat``, the last box, is stretched to ``size`` with a hole."""
    small = path.with_suffix(".small.mov")
    subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=5",
                    "-t", "1", "-movflags", "+faststart", str(small)], check=True)
    data = small.read_bytes()
    at = data.rindex(b"mdat") - 4
    assert at + struct.unpack(">I", data[at:at + 4])[0] == len(data)  # mdat is the last box
    with path.open("wb") as f:
        f.write(data[:at] + struct.pack(">I", size - at) + data[at + 4:])
        f.truncate(size)
    return path


def _run(code: str, *args: str, memory: int | None = None) -> subprocess.CompletedProcess[str]:
    def bound() -> None:
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, resource.RLIM_INFINITY))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          timeout=120, preexec_fn=bound)


def test_a_file_beyond_one_read_costs_its_size_once(tmp_path: Path) -> None:
    """2.25 GiB, more than Linux reads in one call: read under an address-space limit of the file's
    size plus 384 MiB, where reading in pieces and joining them (twice the size) ran out."""
    path = tmp_path / "big.bin"
    size = 2 * GIB + GIB // 4
    with path.open("wb") as f:
        f.write(b"head")
        f.seek(size - 4)
        f.write(b"tail")
    code = (
        "import resource, sys\n"
        "from rightsmeta import fsio\n"
        "used = int(next(l for l in open('/proc/self/status') if l.startswith('VmSize:')).split()[1]) * 1024\n"
        "resource.setrlimit(resource.RLIMIT_AS, (used + int(sys.argv[2]) + (384 << 20), resource.RLIM_INFINITY))\n"
        "data = fsio.read_path(sys.argv[1])\n"
        "print(len(data), data[:4].decode(), data[-4:].decode(), data[1 << 31:(1 << 31) + 2].hex())\n"
    )
    done = _run(code, str(path), str(size))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [str(size), "head", "tail", "0000"]


def test_a_mapped_read_of_a_file_that_shrank_is_the_shorter_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fsio, "_MAX_READ", 4096)  # the mapped read, on a small file
    data = os.urandom(10_000)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        whole = fsio._read_fd(fd)
        assert not isinstance(whole, bytes) and whole[:] == data
        assert fsio._read_fd(fd, 12_000)[:] == data  # fstat said 12,000 bytes; 10,000 are left
        assert fsio.read_fd(fd) == data and type(fsio.read_fd(fd)) is bytes  # a writer gets bytes
    finally:
        os.close(fd)
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert fsio._read_fd(fd, 8192) == b""
    finally:
        os.close(fd)


def test_verify_in_process_refuses_unread_a_file_beyond_the_bound(tmp_path: Path) -> None:
    """``jobs=1`` sets no process limit (a server's thread may call it), yet keeps the bound."""
    path = _jpeg(tmp_path / "photo.jpg", 300_000)
    before = resource.getrlimit(resource.RLIMIT_AS)
    [row] = verify_many([str(path)], jobs=1, seconds=0, memory=200 * 1024)
    assert row["status"] == "unreadable"
    assert row["reasons"] == ["file is larger than the 200 KiB a file may use; not read"]
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    [row] = verify_many([str(path)], jobs=1, seconds=0, memory=400 * 1024)
    assert row["status"] == "untagged", row


def test_cli_verify_jobs_1_keeps_the_2_gib_promise(tmp_path: Path) -> None:
    """A 3 GiB JPEG: refused before a byte is read, as README's ``unreadable`` row says. Under a
    1 GiB address-space limit, so a read of it fails fast rather than filling memory."""
    path = _jpeg(tmp_path / "big.jpg", 3 * GIB)
    code = "from rightsmeta.cli import main; main(prog_name='rightsmeta')"
    done = _run(code, "verify", "--no-ledger", "--jobs", "1", "--jsonl", str(path), memory=GIB)
    [row] = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert row["status"] == "unreadable"
    assert row["reasons"] == ["file is larger than the 2 GiB a file may use; not read"]


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_movie_beyond_the_bound_is_verified_in_windows(tmp_path: Path, ffmpeg: str, jobs: int) -> None:
    """A 3 GiB MOV needs only its boxes but the media data read, without a ledger: verified in
    the workers too, whose address-space limit its windows' map exceeded. A JPEG of that size,
    read whole or not at all, is refused unread, with the same words in both."""
    movie = _movie(tmp_path / "big.mov", 3 * GIB, ffmpeg)
    photo = _jpeg(tmp_path / "big.jpg", 3 * GIB)
    rows = list(verify_many([str(movie), str(photo)], jobs=jobs, seconds=0))
    assert rows[0]["status"] == "untagged", rows[0]
    assert (rows[1]["status"], rows[1]["reasons"]) == ("unreadable", ["file is larger than the 2 GiB a file may use; not read"])
