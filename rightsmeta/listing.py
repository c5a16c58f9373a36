"""A folder's names in sorted order, held compactly, so a walk's memory barely grows with a folder's size.

A walk yields a folder's files sorted, so it has to list them all first. Kept as a list of
strings (as ``os.walk`` keeps them, and a sorted copy beside it), a folder of 20,000 files held
1.4 MiB for the whole scan, a 59-byte object per name: 7 % of a ``verify -r``'s peak RSS, the
growth from 2,000 to 20,000 files. Here the names are sorted in runs of ``_RUN``, each run kept
as one string (its names joined by NUL, which no file name holds: about a byte per character and
one per name), and the runs merged as the walk goes; no more than one run's names are objects at
a time. A folder of up to ``_RUN`` names is one sorted list, as before.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

# Names sorted and kept as objects together: a run of 4,096 short names is ~0.3 MiB while it
# is listed, and a folder this size or smaller is walked without any merging.
_RUN = 4096


class _Sorted:
    """Names added to ``names`` in any order (``pack`` called when it holds ``_RUN``), iterated in
    sorted (code point) order, as ``sorted`` orders them."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.names: list[str] = []

    def pack(self) -> None:
        self.names.sort()
        self.runs.append("\0".join(self.names))
        self.names.clear()

    def __iter__(self) -> Iterator[str]:
        if not self.runs:
            self.names.sort()
            return iter(self.names)
        if self.names:
            self.pack()
        import heapq  # only for folders of more than one run

        # Names within a folder are unique, so the merge has no ties to order.
        return heapq.merge(*(_split(run) for run in self.runs))


class Alone(str):
    """A path a walk listed in a folder holding no ``.xmp`` file: it has no sidecar to look for
    (``sidecar.find``), so the four lookups each file read from a path costs are spared (a str:
    it goes wherever a path goes, to worker processes too)."""

    __slots__ = ()


def _split(run: str) -> Iterator[str]:
    start = 0
    while (end := run.find("\0", start)) >= 0:
        yield run[start:end]
        start = end + 1
    yield run[start:]


def entries(folder: str) -> tuple[Iterator[str], Iterator[str], bool]:
    """The subfolders to walk into and the other names of ``folder``, each sorted, hidden names
    (a leading dot) left out; and whether any name ends ``.xmp`` or is a link (a sidecar may be
    there, or beside the link's target).

    As ``os.walk`` (without ``followlinks``) sorts them: a name whose ``is_dir`` fails is not a
    folder, and a link to a folder is neither walked into nor another name. A folder that cannot
    be listed, or whose listing fails part-way, has nothing (``os.walk`` passes over it too).
    """
    folders, files = _Sorted(), _Sorted()
    xmp = False
    run = _RUN  # names appended here, not by a method: a call per name was 0.1 % of a scan's instructions
    try:
        with os.scandir(folder) as listing:
            for entry in listing:
                name = entry.name
                if name.startswith("."):
                    continue
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                if is_dir and entry.is_symlink():
                    continue
                into = folders if is_dir else files
                into.names.append(name)
                # a sidecar may be here, or beside a linked file's target
                xmp = xmp or name[-4:].lower() == ".xmp" or entry.is_symlink()
                if len(into.names) == run:
                    into.pack()
    except OSError:
        return iter(()), iter(()), False
    return iter(folders), iter(files), xmp


def below(top: str) -> Iterator[str]:
    """The paths of the files below the folder ``top``, in ``os.walk``'s top-down order with each
    folder's names sorted: a folder's files, then each of its subfolders in turn."""
    pending = [iter((top,))]  # the folders still to walk, deepest level last
    while pending:
        folder = next(pending[-1], None)
        if folder is None:
            pending.pop()
            continue
        folders, files, xmp = entries(folder)
        path = str if xmp else Alone
        for name in files:
            yield path(os.path.join(folder, name))
        pending.append(_joined(folder, folders))


def _joined(folder: str, names: Iterator[str]) -> Iterator[str]:
    for name in names:
        yield os.path.join(folder, name)
