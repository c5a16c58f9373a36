"""The server's private temporary folder: uploads, outputs and batches live there.

A server removes it when it stops, but one killed (SIGKILL, the OOM killer, a power cut) cannot:
the uploads it was receiving, other people's files, and its batches stayed on disk for good, one
more folder each restart. So each server holds a lock on its folder while it lives, and the next
one to start removes every folder of ours whose lock nobody holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
import time

# Not the "rightsmeta-serve-" of servers before the lock: their folders, held by nothing, may still be in use.
PREFIX = "rightsmeta-server-"
# A folder younger than this may be one another server has just made and not yet locked.
_SETTLE_SECONDS = 10.0


def make() -> tuple[str, int]:
    """A new private folder (0700) and the descriptor holding its lock; stale ones are removed first."""
    parent = tempfile.gettempdir()
    _sweep(parent)
    folder = tempfile.mkdtemp(prefix=PREFIX, dir=parent)
    os.chmod(folder, 0o700)
    held = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return folder, held


def remove(folder: str, held: int) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    os.close(held)


def _sweep(parent: str) -> None:
    with contextlib.suppress(OSError), os.scandir(parent) as entries:
        for entry in entries:
            if entry.name.startswith(PREFIX):
                with contextlib.suppress(OSError):
                    _remove_if_dead(entry.path)


def _remove_if_dead(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        if info.st_uid != os.getuid() or not stat.S_ISDIR(info.st_mode) or time.time() - info.st_mtime < _SETTLE_SECONDS:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a live server's
        shutil.rmtree(path, ignore_errors=True)
    finally:
        os.close(fd)
