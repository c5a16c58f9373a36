"""From the command line's SOURCE arguments to a deterministic list of shards.

A source is a tar shard (``.tar``, ``.tar.gz``, ``.tgz``), a Parquet file, a folder, a glob
(``shards/*.tar``) or a brace range (``shard-{000000..000099}.tar``, ``{a,b}``). A folder holds
shards of either kind, or plain files: each folder of plain files becomes one shard of its own.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..errors import UsageError

Kind = Literal["tar", "parquet", "folder"]
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
PARQUET_SUFFIXES = (".parquet", ".pq")
MAX_EXPANSION = 1_000_000  # a typo in a brace range must not build a list of billions of names

_RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")
_LIST = re.compile(r"\{([^{}]*,[^{}]*)\}")


@dataclass(frozen=True)
class Shard:
    kind: Kind
    path: str
    name: str  # where its filtered copy goes under --out (relative, as given below its source)

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "path": self.path, "name": self.name}


def braces(pattern: str) -> list[str]:
    """Brace expansion as the shell (and webdataset) do it: ``{000..099}`` keeps the zero padding."""
    found = [m for m in (_RANGE.search(pattern), _LIST.search(pattern)) if m is not None]
    if not found:
        return [pattern]
    match = min(found, key=lambda m: m.start())  # leftmost first, as the shell: {a,b}-{0..1} -> a-0 a-1 b-0 b-1
    if match.re is _RANGE:
        lo, hi = match.group(1), match.group(2)
        width = len(lo) if lo.startswith("0") or len(lo) == len(hi) else 0
        start, stop = int(lo), int(hi)
        step = 1 if stop >= start else -1
        if abs(stop - start) + 1 > MAX_EXPANSION:
            raise UsageError(f"brace range {match.group(0)} names more than {MAX_EXPANSION} shards")
        items = [str(n).zfill(width) for n in range(start, stop + step, step)]
    else:
        items = match.group(1).split(",")
    head, tail = pattern[: match.start()], pattern[match.end():]
    out: list[str] = []
    for item in items:
        out.extend(braces(head + item + tail))
        if len(out) > MAX_EXPANSION:
            raise UsageError(f"{pattern} names more than {MAX_EXPANSION} shards")
    return out


def kind_of(path: str) -> Kind | None:
    lower = path.lower()
    if lower.endswith(TAR_SUFFIXES):
        return "tar"
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def img2dataset_files(files: list[str]) -> set[str]:
    """The files img2dataset writes beside each tar shard ``X.tar``: ``X.parquet`` (the shard's
    urls, captions and download status, without the images) and ``X_stats.json``. In a folder
    they are not shards nor samples; they are not copied to --out either (they list every sample,
    the dropped ones too). Named on their own, they are scanned as asked."""
    stems = {name[: -len(suffix)] for name in files for suffix in TAR_SUFFIXES if name.lower().endswith(suffix)}
    return {name for stem in stems for name in (f"{stem}.parquet", f"{stem}_stats.json")} & set(files)


def _folder(root: str) -> list[Shard]:
    shards: list[Shard] = []
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        plain = False
        beside = img2dataset_files(files)
        for name in sorted(files):
            if name.startswith(".") or name in beside:
                continue  # our own temporary files, editors' droppings; img2dataset's shard tables
            path = os.path.join(directory, name)
            kind = kind_of(name)
            if kind is not None:
                shards.append(Shard(kind, path, os.path.relpath(path, root)))
            elif os.path.isfile(path):
                plain = True
        if plain:
            rel = os.path.relpath(directory, root)
            shards.append(Shard("folder", directory, os.path.basename(os.path.abspath(root)) if rel == "." else rel))
    return shards


def expand(sources: Sequence[str]) -> list[Shard]:
    """Every shard the sources name, in the order given (globs and folders sorted)."""
    shards: list[Shard] = []
    for source in sources:
        for pattern in braces(source):
            names = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
            if not names:
                raise UsageError(f"{pattern}: no file matches")
            for name in names:
                if os.path.isdir(name):
                    shards.extend(_folder(name))
                elif not os.path.exists(name):
                    raise UsageError(f"{name}: no such file or folder")
                else:
                    kind = kind_of(name)
                    if kind is None:
                        raise UsageError(f"{name}: not a shard (expected .tar, .tar.gz, .tgz, .parquet or a folder)")
                    shards.append(Shard(kind, name, os.path.basename(name)))
    seen: set[str] = set()
    unique: list[Shard] = []
    for shard in shards:
        real = os.path.realpath(shard.path)
        if real in seen:
            continue  # named twice (a glob and a path, a folder and a shard in it): scanned once
        seen.add(real)
        unique.append(shard)
    return unique


def check_out_names(shards: Sequence[Shard]) -> None:
    """Raises UsageError when two shards would be written to one name under --out (train/00000.tar
    and val/00000.tar, named by a glob): only a scan with --out has to refuse them."""
    seen: dict[str, str] = {}
    for shard in shards:
        if shard.name in seen:
            raise UsageError(f"{shard.path} and {seen[shard.name]} would both be written to {shard.name} under --out")
        seen[shard.name] = shard.path
