"""File access: bounded snapshots for reads; atomic replacement for writes.

pyexiv2 and mutagen rewrite files in place, so a crash mid-write would leave a truncated
file. rightsmeta never lets them touch the user's file: the new bytes go to a temporary
file in the same directory (same filesystem, so the rename is atomic), are fsynced, and
replace the original in one ``os.replace``.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

from .errors import MalformedFile, UnsupportedFormat, WriteError

MAX_STREAM = 4 * 1024 * 1024 * 1024  # a non-file stream is read into memory; refuse beyond this

Buffer = bytes | mmap.mmap


def kind_of(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


@contextlib.contextmanager
def open_buffer(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview | mmap.mmap | BinaryIO,
) -> Iterator[Buffer]:
    """The source's bytes, in memory.

    Files are read, never mapped: a mapped file that another process shortens while it is read
    kills the reader with SIGBUS (no exception, no report, a whole scan gone). A read takes a
    snapshot of the bytes at the size the file had when opened; a file that shrinks meanwhile
    reads as a shorter, consistent file. Only regular files are read: a FIFO, socket or device
    is refused without a byte read, and opened with O_NONBLOCK so that one swapped in for a file
    after the walk looked at it cannot block the scan.
    """
    if isinstance(source, mmap.mmap):
        yield source  # already mapped by an outer caller: no copy
        return
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield bytes(source)
        return
    if isinstance(source, (str, os.PathLike)):
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
        fd = os.open(source, flags)
        try:
            yield _read_fd(fd)
        finally:
            os.close(fd)
        return
    fileno = getattr(source, "fileno", None)
    if fileno is not None:
        try:
            regular = stat.S_ISREG(os.fstat(fileno()).st_mode)
        except (OSError, ValueError):  # BytesIO and friends: no descriptor to read directly
            regular = False
        if regular:  # the whole file, whatever the position; pipes and sockets are read as streams
            yield _read_fd(fileno())
            return
    data = source.read(MAX_STREAM + 1)
    if len(data) > MAX_STREAM:
        raise MalformedFile(f"stream is larger than {MAX_STREAM} bytes")
    yield bytes(data)


def _read_fd(fd: int) -> bytes:
    """The bytes of the regular file open at ``fd``, from its start, its position untouched."""
    info = os.fstat(fd)
    kind = kind_of(info.st_mode)
    if kind is not None:
        raise UnsupportedFormat(f"{kind}, not a regular file; not read")
    size = info.st_size
    if size > MAX_STREAM:
        raise MalformedFile(f"file is larger than {MAX_STREAM} bytes")
    chunks: list[bytes] = []
    done = 0
    while done < size:
        # Linux returns at most 2 GiB - 4 KiB per call; a shorter read than asked is the end only
        # when it is empty (the file shrank since fstat).
        chunk = os.pread(fd, min(size - done, 1 << 30), done)
        if not chunk:
            break
        chunks.append(chunk)
        done += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file.

    The file's permission bits are kept. On any failure the temporary file is removed and
    the original is untouched.
    """
    with replacing(path) as out:
        out.write(data)


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A file to write that replaces ``path`` atomically when the block ends without an error,
    for output too large to hold in memory (see ``atomic_write``)."""
    import tempfile  # writing only: a scan never needs it

    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(target)}.", suffix=".rightsmeta-tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise WriteError(f"could not write {target}: {exc.strerror or exc}") from exc
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    # Makes the rename itself durable; not every platform or filesystem allows it.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
