"""File access: bounded snapshots for reads; atomic replacement for writes.

pyexiv2 and mutagen rewrite files in place, so a crash mid-write would leave a truncated
file. rightsmeta never lets them touch the user's file: the new bytes go to a temporary
file in the same directory (same filesystem, so the rename is atomic), are fsynced, and
replace the original in one ``os.replace``; the folder is fsynced after it, so the rename
survives a power cut too. The new file gets the old one's permission bits, and its owner and
group where the user may set them (root, or a group the user is in).

The temporary file is locked (``flock``) while it is written. A process killed mid-write
(SIGKILL, a power cut) leaves it behind; since its lock died with the process, a later run
can tell such a stale file of ours (``stale_temps``) from one another run is still writing.

``locked`` takes an exclusive ``flock`` on the file being changed, for the whole
read-modify-replace: two rightsmeta runs tagging one file take turns instead of one silently
undoing the other. Other programs do not take that lock, so ``replacing`` also refuses to
replace a file whose size, time or inode changed since it was read (``expect``).
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import BinaryIO, NoReturn

from .errors import FileBusy, MalformedFile, UnsupportedFormat, WriteError
from .stopping import deferred

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
    windows: Callable[[int, int], mmap.mmap | None] | None = None,
    limit: int | None = None,
) -> Iterator[Buffer]:
    """The source's bytes, in memory.

    Files are read, never mapped: a mapped file that another process shortens while it is read
    kills the reader with SIGBUS (no exception, no report, a whole scan gone). A read takes a
    snapshot of the bytes at the size the file had when opened; a file that shrinks meanwhile
    reads as a shorter, consistent file. Only regular files are read: a FIFO, socket or device
    is refused without a byte read, and opened with O_NONBLOCK so that one swapped in for a file
    after the walk looked at it cannot block the scan.

    ``windows(fd, size)`` may give a file's bytes with only the parts a reader needs read (the
    rest zero), or None to have it read whole (carriers/windows.py).

    ``limit`` (bytes) refuses, unread, a file or stream that would take more memory than that
    (a file read in windows takes only what they hold).
    """
    if isinstance(source, mmap.mmap):
        yield source  # already mapped by an outer caller: no copy
        return
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield bytes(source)
        return
    if isinstance(source, (str, os.PathLike)):
        yield read_path(source, windows, limit)
        return
    fileno = getattr(source, "fileno", None)
    if fileno is not None:
        try:
            regular = stat.S_ISREG(os.fstat(fileno()).st_mode)
        except (OSError, ValueError):  # BytesIO and friends: no descriptor to read directly
            regular = False
        if regular:  # the whole file, whatever the position; pipes and sockets are read as streams
            yield _read_fd(fileno(), _within(_regular_size(fileno()), limit))
            return
    most = MAX_STREAM if limit is None else min(limit, MAX_STREAM)
    # A seekable stream is read whole, as a regular file is: an upload the caller (or its
    # framework) already hashed or sniffed sits part-way or at its end, and read from there it
    # would be a few bytes of nothing, or a PDF whose offsets all point wrong. Its position is
    # given back. One that cannot seek (an HTTP body, a pipe) is read from where it is: its start.
    seekable = getattr(source, "seekable", None)  # a duck-typed stream may have read() alone
    at = source.tell() if seekable is not None and seekable() else None
    if at is not None:
        source.seek(0)
    try:
        data = source.read(most + 1)
    finally:
        if at is not None:
            source.seek(at)
    if len(data) > most:
        raise MalformedFile(f"stream is larger than {_too_large(most, limit)}")
    yield bytes(data)


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)


def read_path(
    path: str | os.PathLike[str], windows: Callable[[int, int], mmap.mmap | None] | None = None,
    limit: int | None = None,
) -> Buffer:
    """The bytes of the regular file at ``path``, as :func:`open_buffer` reads them; no context
    is needed, as the file is closed before they are returned (a scan calls this per file)."""
    fd = os.open(path, _READ_FLAGS)
    try:
        size = _regular_size(fd)
        sparse = windows(fd, size) if windows is not None else None
        return sparse if sparse is not None else _read_fd(fd, _within(size, limit))
    finally:
        os.close(fd)


def read_fd(fd: int, info: os.stat_result | None = None) -> bytes:
    """The bytes of the regular file open at ``fd`` (``locked`` gives one), bounded like a read;
    ``info``, its ``os.fstat`` when the caller has it, saves taking it again."""
    data = _read_fd(fd, None if info is None else _checked_size(info))
    # A writer edits bytes: a file beyond one read (over 2 GiB) is copied out of its map, once.
    return data if isinstance(data, bytes) else data[:]


def _regular_size(fd: int) -> int:
    """The size of the regular file open at ``fd``; refused when it is none, or too large to read."""
    return _checked_size(os.fstat(fd))


def _within(size: int, limit: int | None) -> int:
    """``size``, the bytes a whole read takes; refused when more than ``limit``."""
    if limit is not None and size > limit:
        raise MalformedFile(f"file is larger than {_too_large(limit, limit)}; not read")
    return size


def _too_large(most: int, limit: int | None) -> str:
    if most != limit:
        return f"{most} bytes"
    power, unit = next((p, u) for p, u in ((3, "GiB"), (2, "MiB"), (1, "KiB"), (0, "bytes")) if most >= 1024**p)
    return f"the {most / 1024**power:.3g} {unit} a file may use"


def _checked_size(info: os.stat_result) -> int:
    kind = kind_of(info.st_mode)
    if kind is not None:
        raise UnsupportedFormat(f"{kind}, not a regular file; not read")
    if info.st_size > MAX_STREAM:
        raise MalformedFile(f"file is larger than {MAX_STREAM} bytes")
    return info.st_size


#: The most Linux reads in one call (2 GiB - 4 KiB).
_MAX_READ = 0x7FFFF000


def _read_fd(fd: int, size: int | None = None) -> Buffer:
    """The bytes of the regular file open at ``fd``, from its start, its position untouched.

    Read into one buffer, never joined from pieces: a file costs its size in memory, not twice
    that. Up to one read's worth it is the bytes ``pread`` returns; beyond, an anonymous map the
    reads fill in place (anonymous: no file to shrink under it)."""
    if size is None:
        size = _regular_size(fd)
    if size > _MAX_READ:
        return _read_mapped(fd, size)
    chunks: list[bytes] = []
    done = 0
    while done < size:
        # A shorter read than asked is the end only when it is empty (the file shrank since fstat).
        chunk = os.pread(fd, size - done, done)
        if not chunk:
            break
        chunks.append(chunk)
        done += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _read_mapped(fd: int, size: int) -> Buffer:
    buf = mmap.mmap(-1, size)
    done = 0
    with memoryview(buf) as view:
        while done < size:
            read = os.preadv(fd, [view[done:done + _MAX_READ]], done)
            if not read:
                break
            done += read
    if done == size:
        return buf
    if not done:
        buf.close()
        return b""
    buf.resize(done)  # the file shrank since fstat: it reads as the shorter file
    return buf


TEMP_SUFFIX = ".rightsmeta-tmp"
# _create_temp's names (mkstemp's before it): the prefix, eight characters of [a-z0-9_], the suffix.
_TEMP_NAME = re.compile(r"\A\..+\.[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX) + r"\Z", re.DOTALL)
LOCK_TIMEOUT = 60.0  # seconds a tag waits for another run tagging the same file
# A temporary file is locked an instant after it is created; younger ones are left alone anyway.
STALE_AFTER = 10.0


def atomic_write(
    path: str | os.PathLike[str], data: bytes, *, expect: os.stat_result | None = None,
    dirs_to_sync: set[str] | None = None,
) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file.

    The file's permission bits are kept, and its owner and group where permitted. On any
    failure the temporary file is removed and the original is untouched. With ``expect`` (the
    ``os.stat`` of the file as it was read), a file changed since then is not replaced.

    With ``dirs_to_sync``, the folder is added to that set instead of being fsynced at once: a
    batch makes its renames durable with one ``sync_dirs`` per folder at its end. The new data
    are durable before the rename either way; until ``sync_dirs`` a power cut may only undo the
    rename, leaving the original.
    """
    with deferred():  # a stop (SIGTERM, Ctrl-C) between the two would leave the temporary file
        start_write(path, data, expect=expect).finish(dirs_to_sync)


def start_write(
    path: str | os.PathLike[str], data: bytes | Sequence[bytes | memoryview], *, expect: os.stat_result | None = None,
) -> Replacement:
    """``atomic_write`` up to its ``finish``: ``data`` written into the temporary file, nothing
    made durable or renamed yet (the caller finishes or discards it). ``data``: the bytes, or
    the pieces they are made of, in order (a large piece goes to the file without a copy).

    Call it in a ``stopping.deferred()`` block that also hands the result to what discards it
    when the run stops: a stop raised in between would leave the temporary file behind.
    """
    pending = Replacement(path, expect=expect)
    try:
        for piece in (data,) if isinstance(data, bytes) else data:
            pending.out.write(piece)
    except BaseException as exc:
        pending.discard()
        _reraise(pending.target, exc)
    return pending


def sync_dirs(directories: Iterable[str]) -> None:
    """Make the renames done in these folders durable (see ``atomic_write``'s ``dirs_to_sync``)."""
    for directory in sorted(set(directories)):
        _fsync_dir(directory)


@contextlib.contextmanager
def replacing(
    path: str | os.PathLike[str], *, expect: os.stat_result | None = None, dirs_to_sync: set[str] | None = None,
) -> Iterator[BinaryIO]:
    """A file to write that replaces ``path`` atomically when the block ends without an error,
    for output too large to hold in memory (see ``atomic_write``)."""
    pending = None
    try:
        with deferred():  # a stop waits until ``pending`` holds the temporary file, for the ``except`` to remove
            pending = Replacement(path, expect=expect)
        yield pending.out
    except BaseException as exc:
        if pending is not None:
            pending.discard()
        _reraise(os.fspath(path), exc)
    pending.finish(dirs_to_sync)


def _new_file_mode() -> int:
    """The mode a new file gets from the user's umask (0o666 less it), as other tools make files:
    the temporary file is 0o600 while it is written. Read from /proc, because os.umask can only
    be read by setting it, for the whole process, under other threads' feet; 0o644 where /proc
    says nothing (the usual umask)."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o644


class Replacement:
    """A temporary file beside ``path`` that either replaces it (``finish``) or is removed
    (``discard``): ``replacing`` in two steps, so that a batch can tag the next file while this
    one's data are made durable (``finish`` in another thread: api.tag_iter)."""

    def __init__(self, path: str | os.PathLike[str], *, expect: os.stat_result | None = None) -> None:
        import threading

        self.target = os.fspath(path)
        self.directory = os.path.dirname(os.path.abspath(self.target))
        self.expect = expect
        self.before: os.stat_result | None = expect  # the file as read: its owner and mode are kept
        if expect is None:
            try:
                self.before = os.stat(self.target)
            except FileNotFoundError:
                pass
        # discard() may come from another thread while finish() runs: the guard makes the rename
        # and the decision to drop the file exclusive, so one of them wins, entirely.
        self._guard = threading.Lock()
        self._finishing = self._dropped = self._renamed = False
        fd, self.tmp = _create_temp(self.directory, os.path.basename(self.target))
        self.out: BinaryIO = os.fdopen(fd, "wb")
        _try_lock(fd)  # held until closed: marks the file as being written (stale_temps)

    def finish(self, dirs_to_sync: set[str] | None = None) -> None:
        """Make the data durable, then rename over the target (then fsync the folder, or add it
        to ``dirs_to_sync``); on any failure the temporary file is removed and WriteError raised."""
        with self._guard:
            if self._dropped:
                raise WriteError(f"{self.target}: stopped before it was replaced; the original is kept")
            self._finishing = True
        try:
            with self.out as out:
                out.flush()
                os.fsync(out.fileno())
                if self.before is not None:
                    _same_owner(out.fileno(), self.before)
                # After chown, which clears set-user-ID bits.
                os.fchmod(out.fileno(), self.before.st_mode & 0o7777 if self.before is not None else _new_file_mode())
                if self.expect is not None:
                    _unchanged(self.target, self.expect)
                with self._guard:
                    if self._dropped:
                        raise WriteError(f"{self.target}: stopped before it was replaced; the original is kept")
                    os.replace(self.tmp, self.target)
                    self._renamed = True
                    if dirs_to_sync is not None:  # in the guard: whoever dropped the rest syncs this folder
                        dirs_to_sync.add(self.directory)
        except BaseException as exc:
            self._unlink()
            _reraise(self.target, exc)
        if dirs_to_sync is None:
            _fsync_dir(self.directory)

    @contextlib.contextmanager
    def mapped(self) -> Iterator[Buffer]:
        """What was written so far, as the temporary file holds it: mapped, not copied, so that a
        tag reads back the very file it is about to rename. Unlike a file being read (see
        ``open_buffer``), this one is ours, created exclusively with mode 0600 and locked: no
        other program shortens it under the map."""
        self.out.flush()
        size = os.fstat(self.out.fileno()).st_size
        if size == 0:  # mmap refuses an empty file
            yield b""
            return
        try:
            view = mmap.mmap(self.out.fileno(), size, access=mmap.ACCESS_READ)
        except OSError:  # beyond the address-space limit: read, as any file is
            yield _read_fd(self.out.fileno(), size)
            return
        try:
            yield view
        finally:
            with contextlib.suppress(BufferError):  # a slice still exported: unmapped when it is freed
                view.close()

    @property
    def discarded(self) -> bool:
        """Whether ``discard`` came first: the target is left as it was, whatever ``finish`` does."""
        return self._dropped

    def discard(self) -> None:
        """Remove the temporary file unless it already replaced the target, which is otherwise
        left as it was. Safe while ``finish`` runs in another thread: its rename then either
        happened before or never does."""
        with self._guard:
            if self._renamed:
                return
            self._dropped = True
            self._unlink()
            close = not self._finishing  # else finish closes it, in its own thread
        if close:
            with contextlib.suppress(OSError):
                self.out.close()

    def _unlink(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


_TEMP_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def _create_temp(directory: str, base: str) -> tuple[int, str]:
    """A new file ``.{base}.XXXXXXXX.rightsmeta-tmp`` in ``directory``, opened for writing: what
    ``tempfile.mkstemp`` makes (created exclusively, mode 0600, no symlink followed), without
    importing tempfile and its random and shutil (5 ms of every tag's start)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        # The name only has to be unlikely to exist: O_EXCL makes taking it safe.
        name = f".{base}.{''.join(_TEMP_CHARS[b % len(_TEMP_CHARS)] for b in os.urandom(8))}{TEMP_SUFFIX}"
        path = os.path.join(directory, name)
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError(17, "no free temporary file name", os.path.join(directory, f".{base}.*{TEMP_SUFFIX}"))


def _reraise(target: str, exc: BaseException) -> NoReturn:
    """An OSError while writing says which file could not be written; anything else stays itself."""
    if isinstance(exc, OSError) and not isinstance(exc, WriteError):
        raise WriteError(f"could not write {target}: {exc.strerror or exc}") from exc
    raise exc


def _try_lock(fd: int) -> None:
    # A filesystem without flock (some network mounts) only loses the stale-file detection.
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _same_owner(fd: int, before: os.stat_result) -> None:
    now = os.fstat(fd)
    if (now.st_uid, now.st_gid) == (before.st_uid, before.st_gid):
        return
    try:
        os.fchown(fd, before.st_uid, before.st_gid)
    except PermissionError:
        # Not root: a user may still give the file back a group they belong to.
        with contextlib.suppress(PermissionError):
            os.fchown(fd, -1, before.st_gid)


def _unchanged(target: str, expect: os.stat_result) -> None:
    try:
        now = os.stat(target)
    except FileNotFoundError:
        raise WriteError(f"{target} was removed while it was being tagged; nothing written") from None
    if (now.st_ino, now.st_dev, now.st_size, now.st_mtime_ns) != (
        expect.st_ino, expect.st_dev, expect.st_size, expect.st_mtime_ns
    ):
        raise WriteError(f"{target} was changed by another program while it was being tagged; not replaced, tag it again")


@contextlib.contextmanager
def locked(path: str | os.PathLike[str], *, timeout: float = LOCK_TIMEOUT) -> Iterator[int]:
    """A descriptor of ``path`` opened for reading, holding an exclusive ``flock`` on it.

    The lock is on the file now at ``path``: a run that waited while another replaced the
    file finds its lock on the old, replaced file and starts again on the new one. Raises
    ``FileBusy`` after ``timeout`` seconds, and OSError when the file cannot be opened.
    """
    deadline = time.monotonic() + timeout
    while True:
        # O_NONBLOCK: opening a named pipe must not wait for a writer; it is refused below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            kind = kind_of(os.fstat(fd).st_mode)
            if kind is not None:
                raise WriteError(f"{kind}, not a regular file; not tagged")
            if not _wait_lock(fd, deadline):
                raise FileBusy(f"another program has held a lock on {os.fspath(path)} for {timeout:.0f} s; not tagged")
            held = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
            if now is not None and (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev):
                yield fd
                return
        finally:
            os.close(fd)  # also releases the lock
        if now is None:
            raise FileNotFoundError(2, "No such file or directory", os.fspath(path))


def _wait_lock(fd: int, deadline: float) -> bool:
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        except OSError:  # no flock on this filesystem: ``replacing(expect=...)`` still guards
            return True


def stale_temps(directories: Iterable[str | os.PathLike[str]], *, remove: bool = False,
                older_than: float = STALE_AFTER) -> list[str]:
    """Temporary files of ours left in ``directories`` by a write that never finished.

    Only regular files named as ``replacing`` names them, older than ``older_than`` seconds,
    that no live process holds locked (a run writing one holds its lock until it is done).
    With ``remove`` they are deleted; the list says what was found (and removed).
    """
    found: list[str] = []
    now = time.time()
    for directory in dict.fromkeys(os.fspath(d) for d in directories):
        try:  # streamed, not listdir's list: a folder of 20,000 files is 1.4 MiB of names at once
            with os.scandir(directory) as entries:
                names = sorted(n for e in entries if (n := e.name).endswith(TEMP_SUFFIX) and _TEMP_NAME.match(n))
        except OSError:
            continue
        for name in names:
            path = os.path.join(directory, name)
            if _stale(path, now - older_than, remove):
                found.append(path)
    return found


def _stale(path: str, cutoff: float, remove: bool) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:  # a symlink, gone, or not ours to open
        return False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_mtime > cutoff:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: a write in progress
            return False
        if remove:
            try:
                current = os.lstat(path)
                if (current.st_ino, current.st_dev) != (info.st_ino, info.st_dev):
                    return False
                os.unlink(path)
            except OSError:
                return False
        return True
    finally:
        os.close(fd)


def _fsync_dir(directory: str) -> None:
    # Makes the rename itself durable; not every platform or filesystem allows it.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
