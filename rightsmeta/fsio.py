"""File access: bounded, read-only mapping for reads; atomic replacement for writes.

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

from .errors import MalformedFile, WriteError

MAX_STREAM = 4 * 1024 * 1024 * 1024  # a non-file stream is read into memory; refuse beyond this
# Files up to this size are read whole: for the small files that make up most of a scan, one
# read costs less than setting up and tearing down a mapping.
READ_WHOLE = 64 * 1024

Buffer = bytes | mmap.mmap


@contextlib.contextmanager
def open_buffer(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview | mmap.mmap | BinaryIO,
) -> Iterator[Buffer]:
    """The source's bytes, mapped (paths, real files) or in memory (bytes, other streams)."""
    if isinstance(source, mmap.mmap):
        yield source  # already mapped by an outer caller: no copy
        return
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield bytes(source)
        return
    if isinstance(source, (str, os.PathLike)):
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            size = os.fstat(fd).st_size
            # A size of 0 is also what pipes and special files report: they are not read.
            data = b"" if size == 0 else os.read(fd, READ_WHOLE + 1) if size <= READ_WHOLE else None
            if data is not None and len(data) <= READ_WHOLE:
                yield data
            else:  # large, or grown since fstat
                with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as buf:
                    yield buf
        finally:
            os.close(fd)
        return
    fileno = getattr(source, "fileno", None)
    if fileno is not None:
        try:
            regular = stat.S_ISREG(os.fstat(fileno()).st_mode)
        except (OSError, ValueError):  # BytesIO and friends: no descriptor to map
            regular = False
        if regular:  # pipes and sockets (an upload on standard input) are read instead
            with _map(source) as buf:
                yield buf
            return
    data = source.read(MAX_STREAM + 1)
    if len(data) > MAX_STREAM:
        raise MalformedFile(f"stream is larger than {MAX_STREAM} bytes")
    yield bytes(data)


@contextlib.contextmanager
def _map(fh: BinaryIO) -> Iterator[Buffer]:
    size = os.fstat(fh.fileno()).st_size
    if size == 0:
        yield b""
        return
    with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        yield buf


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
