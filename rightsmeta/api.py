"""The library: ``read`` and ``tag`` over paths, bytes and binary file objects.

Reading never raises for what is inside a file: every problem becomes an error string in
the report, so a batch goes on. Tagging a path returns a ``TagResult`` (failures are
results too); ``tag_bytes`` raises typed errors, since its caller holds the only copy.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, BinaryIO

from .carriers import Family, Options, detect, manifest
from .decide import decide
from .errors import MalformedFile, RightsmetaError, UnknownFormat, UnsupportedFormat, UsageError, WriteError
from .fsio import Buffer, atomic_write, open_buffer
from .model import PURPOSES, Assertion, State
from .report import FileReport, TagResult

if TYPE_CHECKING:  # imported where used: a read-only scan never loads them
    from .keys import Identity
    from .ledger import Ledger

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | mmap.mmap | BinaryIO
PathLike = str | os.PathLike[str]


def _name(source: Source) -> str | None:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else None


def _identify(buf: Buffer) -> tuple[Family, str]:
    if len(buf) == 0:
        raise MalformedFile("empty file (0 bytes)")
    found = detect(bytes(buf[:64]), buf)
    if found is None:
        raise UnknownFormat("not a format rightsmeta knows (unrecognised first bytes)")
    return found


def read(
    source: Source, *, name: str | None = None, password: str | None = None, trust_anchors: bytes | None = None
) -> FileReport:
    """Every carrier found in the file, its raw values, and the resolved permissions.

    ``trust_anchors`` (PEM) lets a C2PA manifest whose signer chains to one of them be
    reported as ``Trusted`` rather than merely ``Valid``.
    """
    report = FileReport(name or _name(source))
    options = Options(password=password, trust_anchors=trust_anchors)
    try:
        with open_buffer(source) as buf:
            family, fmt = _identify(buf)
            report.format = fmt
            report.carriers = family.read(buf, fmt, options)
            signed = manifest.read(buf, fmt, options)
            if signed is not None:
                report.carriers.append(signed)
    except RightsmetaError as exc:
        report.errors.append(str(exc))
    except OSError as exc:
        report.errors.append(f"cannot read file: {exc.strerror or exc}")
    except MemoryError:  # the per-file memory bound: the caller reports it
        raise
    except Exception as exc:  # a bug of ours must not stop a scan of millions: said, not hidden
        report.errors.append(f"rightsmeta failed on this file ({type(exc).__name__}: {exc}); please report it")
    for carrier in report.carriers:
        report.errors.extend(f"{carrier.name}: {e}" for e in carrier.errors)
        if carrier.values.get("validation_state") == "Invalid":  # signed, then changed: use fails closed
            codes = ", ".join(carrier.values.get("failures") or []) or "no reason given"
            report.errors.append(f"{carrier.name}: the manifest failed validation ({codes})")
        for key, value in carrier.rights.items():
            report.rights.setdefault(key, value)
    report.decision = decide(report.signals)
    return report


def _check(assertion: Assertion) -> None:
    if assertion.is_empty:
        raise UsageError("nothing to tag: give at least one purpose to deny, allow or constrain")


def _tag_data(
    data: bytes, assertion: Assertion, options: Options, identity: Identity | None
) -> tuple[bytes, str, list[str], list[str]]:
    """New bytes, format, carriers written and notes; raises when nothing safe can be written."""
    family, fmt = _identify(data)
    notes: list[str] = []
    signing = identity is not None and manifest.signable(fmt)
    refusal = manifest.why_not(data, fmt) if signing else None
    if refusal:
        signing = False
        notes.append(refusal)
    if not signing and manifest.read(data, fmt, options) is not None:
        raise UnsupportedFormat(
            "this file carries a signed C2PA manifest, which any metadata change would invalidate; "
            "configure a signing identity (rightsmeta keys init) so rightsmeta can re-sign it"
        )
    try:
        new, carriers = family.write(data, fmt, assertion, options)
    except UnsupportedFormat as exc:
        if not signing:
            raise
        new, carriers = data, []
        notes.append(f"only the C2PA manifest carries the signal ({exc})")
    if signing:
        assert identity is not None
        from .fingerprint import fingerprint

        new = manifest.sign(new, fmt, assertion, identity, fingerprint=fingerprint(new, fmt))
        carriers.append("c2pa")

    # Read our own output back: a write that does not say what was asked is never kept.
    check = read(new, password=options.password)
    covered = {p for s in check.signals for p in s.covers}
    wrong = [p.value for p in covered if check.permissions[p] != assertion.permissions[p]]
    if check.errors or wrong or any(c.values.get("validation_state") == "Invalid" for c in check.carriers):
        problems = check.errors + [f"{p} reads back differently" for p in wrong]
        raise WriteError(f"the tagged {fmt.upper()} did not read back as written; original kept ({'; '.join(problems)})")
    lost = [p.value for p in PURPOSES if p not in covered and assertion.state(p) is not State.UNSPECIFIED]
    if lost:
        notes.append(f"no carrier written to this {fmt.upper()} can express {', '.join(lost)}")
    return new, fmt, carriers, notes


def tag_bytes(
    source: bytes | bytearray | memoryview | BinaryIO,
    assertion: Assertion,
    *,
    password: str | None = None,
    identity: Identity | None = None,
) -> bytes:
    """The file's bytes with the assertion written into every carrier it has.

    With ``identity``, a signed C2PA manifest is added last, over every other carrier.
    """
    _check(assertion)
    data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else source.read()
    return _tag_data(data, assertion.for_work(), Options(password=password), identity)[0]


def tag(
    path: PathLike,
    assertion: Assertion,
    *,
    dry_run: bool = False,
    password: str | None = None,
    identity: Identity | None = None,
    ledger: Ledger | None = None,
) -> TagResult:
    """Write the assertion into the file at ``path``, atomically; the result says what happened.

    A file that cannot be tagged is left byte-identical and the result gives the reason. With
    ``ledger``, the tagged work is recorded there (essence hash, fingerprint, assertion, carriers)
    so `verify` can recognise it after its metadata is stripped.
    """
    _check(assertion)
    assertion = assertion.for_work()
    name = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return TagResult(name, "failed", reason=f"cannot read file: {exc.strerror or exc}", assertion=assertion)
    try:
        new, fmt, carriers, notes = _tag_data(data, assertion, Options(password=password), identity)
    except UnknownFormat as exc:
        return TagResult(name, "skipped", reason=str(exc), assertion=assertion)
    except RightsmetaError as exc:
        return TagResult(name, "failed", reason=str(exc), assertion=assertion)
    if dry_run:
        return TagResult(name, "would-tag", fmt, carriers, assertion=assertion, notes=notes)
    try:
        atomic_write(path, new)
    except WriteError as exc:
        return TagResult(name, "failed", fmt, reason=str(exc), assertion=assertion)
    if ledger is not None:
        notes += _record(ledger, name, fmt, new, assertion, carriers)
    return TagResult(name, "tagged", fmt, carriers, assertion=assertion, notes=notes)


def _record(ledger: Ledger, path: str, fmt: str, data: bytes, assertion: Assertion, carriers: list[str]) -> list[str]:
    """Record a tagged work; the file is already written, so a ledger problem is a note, not a failure."""
    import sqlite3

    from .fingerprint import essence
    from .ledger import Work

    found = essence(data, fmt)
    try:
        ledger.record(Work.create(os.path.abspath(path), fmt, found, assertion, carriers, id=assertion.work_id))
    except (RightsmetaError, sqlite3.Error) as exc:
        return [f"tagged, but not recorded in the ledger: {exc}"]
    if found.hash is None and found.perceptual is None:
        return [f"recorded in the ledger without a fingerprint ({found.reason})"]
    return []


def walk(
    paths: Iterable[PathLike], *, recursive: bool = False, skipped: list[tuple[str, str]] | None = None
) -> Iterator[str]:
    """Files named, and with ``recursive`` the files below named folders, in a stable order.

    Hidden files and folders (and our own temporary files) are passed over in folders. With
    ``skipped``, what is not a regular file (a FIFO, socket or device, which would block or never
    end when read) is not yielded but added there as ``(path, reason)``; without it, such paths
    are yielded and ``read`` refuses them without blocking.
    """
    from .fsio import kind_of

    def regular(path: str) -> bool:
        if skipped is None or path == "-":
            return True
        try:
            kind = kind_of(os.stat(path).st_mode)
        except OSError:
            return True  # gone or unreadable: reading it says why
        if kind is not None:
            skipped.append((path, f"{kind}, not a regular file; not read"))
        return kind is None

    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            if not recursive:
                raise UsageError(f"{path} is a folder; use -r to include the files below it")
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for file in sorted(files):
                    if not file.startswith(".") and regular(os.path.join(root, file)):
                        yield os.path.join(root, file)
        elif regular(path):
            yield path
