"""Durability of a batch: an fsync per file, one syncfs(2), or an fdatasync per file (issue 12).

    python bench/syncfs.py [FOLDER]      # default: a temporary folder on the filesystem of /tmp

Writes 100 files of 300 kB three ways, twice, and prints the seconds each took, to decide
whether batching durability (write all, one syncfs, then rename) would pay on this machine.
"""

from __future__ import annotations

import ctypes
import os
import sys
import tempfile
import time


def run(folder: str, mode: str, data: bytes) -> float:
    libc = ctypes.CDLL(None, use_errno=True)
    fds = []
    start = time.perf_counter()
    for i in range(100):
        fd = os.open(os.path.join(folder, f"{mode}{i}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, data)
        if mode == "fsync-each":
            os.fsync(fd)
        fds.append(fd)
    if mode == "syncfs":
        libc.syncfs(fds[0])
    if mode == "fdatasync-each":
        for fd in fds:
            os.fdatasync(fd)
    for fd in fds:
        os.close(fd)
    return time.perf_counter() - start


def main() -> None:
    data = os.urandom(300_000)
    with tempfile.TemporaryDirectory(dir=sys.argv[1] if len(sys.argv) > 1 else None) as folder:
        for _ in range(2):
            print("  ".join(f"{mode} {run(folder, mode, data):.3f} s" for mode in ("fsync-each", "syncfs", "fdatasync-each")))


if __name__ == "__main__":
    main()
