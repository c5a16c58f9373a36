"""The ``verify`` command's work: one function the click command and the plain entry point
(cli_plain.py) both call, so that a machine scan starts without click (loading it cost a JSON
Lines scan of a few thousand small files about a twentieth of its CPU)."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from . import api
from .cli_common import echo, progress, terminate_cleanly
from .errors import FolderNotWalked, RightsmetaError, UsageError

if TYPE_CHECKING:
    from .ledger import Ledger
from .escape import printable


def stale_temps(files: list[str], *, remove: bool) -> None:
    """Say which temporary files an interrupted write left beside these files (and remove them when tagging)."""
    found = api.stale_temp_files(files, remove=remove)
    if not found:
        return
    import click  # as the command always wrote them: a name's escape sequences stripped off a pipe

    for path in found:
        what = "removed" if remove else "found"
        hint = "" if remove else "; rightsmeta tag in that folder removes it"
        click.echo(f"note: {what} {path}, a temporary file an interrupted rightsmeta write left behind{hint}", err=True)


def summary(counts: dict[str, int], statuses: Iterable[str], noun: str) -> str:
    """The closing line of verify and check: each status's count, then all of them."""
    total = sum(counts.values())
    each = ", ".join(f"{counts[s]} {s}" for s in statuses if s in counts)
    return f"summary: {each} ({total} {noun}{'' if total == 1 else 's'})"


def run(
    paths: tuple[str, ...], *, recursive: bool = False, ledger: str | None = None, no_ledger: bool = False,
    fmt: str | None = None, html_file: str | None = None, fail_on: str = "", jobs: int = 1, timeout: float = 30.0,
    password: str | None = None, trust_anchors: str | None = None,
) -> int:
    """Verify ``paths`` as the ``verify`` command does; the exit code.

    Raises UsageError (before anything is written) for what click reports as a usage error, and
    the RightsmetaError of an HTML report that could not be written.
    """
    from . import output
    from .verify import STATUSES, verify_many

    failing = {s.strip() for s in fail_on.split(",") if s.strip()}
    unknown = failing - set(STATUSES)
    if unknown:
        raise UsageError(f"unknown status {', '.join(sorted(unknown))}; expected one of {', '.join(STATUSES)}")
    if jobs < 0:
        raise UsageError("--jobs must be 0 (one per core) or more")
    used = ledger_path(ledger, no_ledger, must_exist=True)
    if used:  # said once, before the scan, not by every worker that fails to start
        check_ledger(used)
    anchors = read_trust_anchors(trust_anchors) if trust_anchors else None
    files: Iterable[str]
    folders: set[str] = set()
    if recursive and fmt and "-" not in paths:
        # For machines, no progress bar needs the count: paths stream from the walk into the
        # scan, so memory does not grow with the number of files (a walk raises nothing with -r).
        # Only the folders are kept, to look for stale temporary files in once the scan is done.
        def streamed() -> Iterator[str]:
            last = None
            for path in api.walk(paths, recursive=True):
                # A walk yields a folder's files together; the absolute form of the folder of a
                # file's name (never "." or "..") is the folder of its absolute path.
                folder = os.path.dirname(path)
                if folder != last:
                    folders.add(os.path.abspath(folder))
                    last = folder
                yield path

        files, total = streamed(), None
    else:
        files = listed_files(paths, recursive)
        total = len(files)
        stale_temps(files, remove=False)
    if "-" in paths:
        jobs = 1  # standard input is one stream, read once, in this process
    if not jobs:  # one worker per core; pool.py (multiprocessing) is loaded only when workers start
        from .pool import default_jobs

        jobs = default_jobs()
    rows = verify_many(
        files, ledger_path=used, jobs=jobs,
        password=password, trust_anchors=anchors, seconds=timeout,
    )
    stream: Any = sys.stdout
    if fmt == "csv" and hasattr(sys.stdout, "buffer"):
        # A name that is not UTF-8 is written as its own bytes (os.fsencode), not a traceback
        # half-way through the rows; JSON escapes such names instead (output.json_text).
        sys.stdout.flush()
        stream = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", errors="surrogateescape", newline="")
    writer = output.Writer(stream, fmt) if fmt else None
    try:  # before the scan: a report that cannot be written is said at once, not after an hour
        page = output.HtmlReport(html_file) if html_file else None
    except OSError as exc:
        raise UsageError(f"cannot write the HTML report {html_file}: {exc.strerror or exc}") from None
    if writer is None:
        rows = progress(rows, "verifying", True, total=total)
    counts: dict[str, int] = {}
    for row in rows:
        counts[str(row["status"])] = counts.get(str(row["status"]), 0) + 1
        if writer:
            writer.write(row)
        else:
            _say(row)
        if page:
            page.write(row)
    if writer:
        writer.close()
    if stream is not sys.stdout:
        stream.detach()  # sys.stdout keeps its buffer
    if page:
        with terminate_cleanly():  # as tag: SIGTERM while the page is written removes its temporary file
            page.close()
    if folders:
        stale_temps(sorted(folders), remove=False)
    echo(summary(counts, STATUSES, "file") + "\n" if counts else "summary: no files to verify\n", err=True)
    return 1 if any(counts.get(s) for s in failing) else 0


def listed_files(paths: Iterable[str], recursive: bool, skipped: list[tuple[str, str]] | None = None) -> list[str]:
    """``api.walk``'s files, a folder named without -r refused in the command line's words."""
    try:
        return list(api.walk(paths, recursive=recursive, skipped=skipped))
    except FolderNotWalked as exc:
        raise UsageError(f"{exc.path} is a folder; use -r to include the files below it") from None


def check_ledger(path: str) -> None:
    """UsageError unless ``path`` opens as a ledger (it is another file, or damaged)."""
    open_ledger(path, readonly=True).close()


def open_ledger(path: str, *, readonly: bool = False) -> Ledger:
    """The ledger at ``path``, open; one that cannot be used (another file, a damaged one) is a
    UsageError, said before anything is written. Imported only with a ledger: it loads every
    decoder (about 0.2 s)."""
    from .ledger import Ledger

    try:
        return Ledger.open(path, readonly=readonly)
    except RightsmetaError as exc:
        raise UsageError(f"cannot use the ledger: {printable(exc)}") from None


def read_trust_anchors(path: str) -> bytes:
    """The PEM roots of ``--trust-anchors``; UsageError when the file holds no certificate (c2pa
    would otherwise call every signed file's manifest unreadable, blaming the files)."""
    from cryptography import x509

    with open(path, "rb") as fh:  # pathlib is not loaded for this alone (~6 ms of a plain run's start)
        data = fh.read()
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise UsageError(f"--trust-anchors {printable(path)} holds no PEM certificate (give the root.pem of keys init)") from None
    return data


def ledger_path(ledger: str | None, no_ledger: bool, *, must_exist: bool) -> str | None:
    """--ledger, else the default ledger (when reading: only if it exists); None with --no-ledger."""
    if no_ledger:
        return None
    if ledger:
        return ledger
    from . import paths

    default = paths.ledger()
    return str(default) if (default.exists() or not must_exist) else None


def _say(row: dict[str, Any]) -> None:
    import click

    colour = {"intact": "green", "untagged": None, "unreadable": "red", "tampered": "red"}.get(str(row["status"]), "yellow")
    click.echo(f"{click.style(str(row['status']).ljust(11), fg=colour)}  {printable(row['path'])}: {printable('; '.join(row['reasons']))}")

