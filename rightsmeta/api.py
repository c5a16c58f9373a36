"""The library: ``read`` and ``tag`` over paths, bytes and binary file objects.

Reading never raises for what is inside a file: every problem becomes an error string in
the report, so a batch goes on. Tagging a path returns a ``TagResult`` (failures are
results too); ``tag_bytes`` raises typed errors, since its caller holds the only copy.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from .carriers import Family, Options, detect
from .decide import decide
from .errors import MalformedFile, RightsmetaError, UnknownFormat, UsageError, WriteError
from .fsio import Buffer, atomic_write, open_buffer
from .model import Assertion
from .report import FileReport, TagResult

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO
PathLike = str | os.PathLike[str]


def _name(source: Source) -> str | None:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else None


def _identify(buf: Buffer) -> tuple[Family, str]:
    if len(buf) == 0:
        raise MalformedFile("empty file (0 bytes)")
    found = detect(bytes(buf[:64]))
    if found is None:
        raise UnknownFormat("not a format rightsmeta knows (unrecognised first bytes)")
    return found


def read(source: Source, *, name: str | None = None, password: str | None = None) -> FileReport:
    """Every carrier found in the file, its raw values, and the resolved permissions."""
    report = FileReport(name or _name(source))
    try:
        with open_buffer(source) as buf:
            family, fmt = _identify(buf)
            report.format = fmt
            report.carriers = family.read(buf, fmt, Options(password=password))
    except RightsmetaError as exc:
        report.errors.append(str(exc))
    except OSError as exc:
        report.errors.append(f"cannot read file: {exc.strerror or exc}")
    for carrier in report.carriers:
        report.errors.extend(f"{carrier.name}: {e}" for e in carrier.errors)
        for key, value in carrier.rights.items():
            report.rights.setdefault(key, value)
    report.decision = decide(report.signals)
    return report


def _check(assertion: Assertion) -> None:
    if assertion.is_empty:
        raise UsageError("nothing to tag: give at least one purpose to deny, allow or constrain")


def _tag_data(data: bytes, assertion: Assertion, password: str | None) -> tuple[bytes, str, list[str]]:
    family, fmt = _identify(data)
    new, carriers = family.write(data, fmt, assertion, Options(password=password))
    # Read our own output back: a write that does not say what was asked is never kept.
    check = read(new, password=password)
    if check.errors or dict(check.permissions) != dict(assertion.permissions):
        raise WriteError(f"the tagged {fmt.upper()} did not read back as written; original kept ({'; '.join(check.errors)})")
    return new, fmt, carriers


def tag_bytes(
    source: bytes | bytearray | memoryview | BinaryIO, assertion: Assertion, *, password: str | None = None
) -> bytes:
    """The file's bytes with the assertion written into every carrier it has."""
    _check(assertion)
    data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else source.read()
    return _tag_data(data, assertion if assertion.date else assertion.dated(), password)[0]


def tag(path: PathLike, assertion: Assertion, *, dry_run: bool = False, password: str | None = None) -> TagResult:
    """Write the assertion into the file at ``path``, atomically; the result says what happened.

    A file that cannot be tagged is left byte-identical and the result gives the reason.
    """
    _check(assertion)
    assertion = assertion if assertion.date else assertion.dated()
    name = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return TagResult(name, "failed", reason=f"cannot read file: {exc.strerror or exc}", assertion=assertion)
    try:
        new, fmt, carriers = _tag_data(data, assertion, password)
    except UnknownFormat as exc:
        return TagResult(name, "skipped", reason=str(exc), assertion=assertion)
    except RightsmetaError as exc:
        return TagResult(name, "failed", reason=str(exc), assertion=assertion)
    if dry_run:
        return TagResult(name, "would-tag", fmt, carriers, assertion=assertion)
    try:
        atomic_write(path, new)
    except WriteError as exc:
        return TagResult(name, "failed", fmt, reason=str(exc), assertion=assertion)
    return TagResult(name, "tagged", fmt, carriers, assertion=assertion)


def walk(paths: Iterable[PathLike], *, recursive: bool = False) -> Iterator[str]:
    """Files named, and with ``recursive`` the files below named folders, in a stable order.

    Hidden files and folders (and our own temporary files) are passed over in folders.
    """
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            if not recursive:
                raise UsageError(f"{path} is a folder; use -r to include the files below it")
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for file in sorted(files):
                    if not file.startswith("."):
                        yield os.path.join(root, file)
        else:
            yield path
