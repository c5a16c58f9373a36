"""The library: ``read`` and ``tag`` over paths, bytes and binary file objects.

Reading never raises for what is inside a file: every problem becomes an error string in
the report, so a batch goes on. Tagging a path returns a ``TagResult`` (failures are
results too, including our own bugs: a batch of thousands must not stop at one file);
``tag_bytes`` raises typed errors, since its caller holds the only copy.

This is the public face; one file's read is reading.py's, one file's tag (write, read-back,
content check, durable rename, ledger record) tagging.py's, which tagpool.py also runs in
worker processes.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from typing import TYPE_CHECKING, BinaryIO

from . import reading, sidecar
from .carriers import Options
from .errors import FolderNotWalked, UsageError
from .fsio import stale_temps, sync_dirs
from .model import Assertion
from .reading import PathLike as PathLike
from .reading import Source as Source
from .report import FileReport, TagResult
from .stopping import deferred

if TYPE_CHECKING:  # imported where used: a read-only scan never loads them
    from .keys import Identity
    from .ledger import Ledger


def read(
    source: Source, *, name: str | None = None, password: str | None = None, trust_anchors: bytes | None = None,
    beside: PathLike | None = None, sidecars: bool = True,
) -> FileReport:
    """Every carrier found in the file, its raw values, and the resolved permissions.

    ``source``: a path, bytes, or a binary file object; one that can seek is read whole, whatever
    its position (which is given back), one that cannot (a pipe, an HTTP body) from where it is.

    ``trust_anchors`` (PEM) lets a C2PA manifest whose signer chains to one of them be
    reported as ``Trusted`` rather than merely ``Valid``.

    The XMP sidecars beside a path (``IMG_0001.xmp``, ``IMG_0001.CR2.xmp``) are read too, each
    reported as an ``xmp-sidecar`` carrier (sidecar.py); ``beside``: the path that bytes or a
    file object given as ``source`` were read from, whose sidecars are read. Only a path the
    caller gives is looked beside: never ``name``, which may come from anyone (an upload's).
    ``sidecars=False`` reads the file alone (the service's uploads, spooled to files it names).
    """
    if not sidecars:
        beside = None
    elif beside is None and isinstance(source, (str, os.PathLike)):
        beside = source
    return reading.read_source(source, name, Options(password=password, trust_anchors=trust_anchors, located={}),
                 os.fspath(beside) if beside is not None else None)  # one buffer


def _check(assertion: Assertion) -> None:
    if assertion.is_empty:
        raise UsageError("nothing to tag: give at least one purpose to deny, allow or constrain")


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
    from . import tagging  # imported here: a read-only scan never loads it

    data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else source.read()
    return tagging.tag_data(data, assertion.for_work(), Options(password=password), identity)[0]


def tag(
    path: PathLike,
    assertion: Assertion,
    *,
    dry_run: bool = False,
    password: str | None = None,
    identity: Identity | None = None,
    ledger: Ledger | None = None,
    follow_links: bool = True,
) -> TagResult:
    """Write the assertion into the file at ``path``, atomically; the result says what happened.

    A file that cannot be tagged is left byte-identical and the result gives the reason; this
    holds for unexpected errors too (``failed``, "internal error", logged with its traceback at
    DEBUG on the ``rightsmeta`` logger). With ``ledger``, the tagged work is recorded there
    (essence hash, fingerprint, assertion, carriers) so `verify` can recognise it after its
    metadata is stripped.

    A symbolic link is followed: the file it points to is tagged and the link stays a link
    (``follow_links=False``: links are skipped). A file with several hard links is replaced by a
    new file under this name only; the other names keep the untagged version (a note says so).
    Owner and group are kept where the user may set them; permission bits always.
    """
    _check(assertion)
    from . import tagging

    step = tagging.tag_one(os.fspath(path), assertion.for_work(), dry_run, Options(password=password), identity,
                    ledger is not None, follow_links)
    if isinstance(step, TagResult):
        return step
    if isinstance(step, tagging.Raw):
        if ledger is not None and step.found is not None:
            tagging.recorded(ledger, [(step.result, step.target, step.found)])
        return step.result
    try:
        step.finish(None)  # the folder fsynced at once
    except Exception as exc:
        return tagging.result_of(step, exc)[0]
    result, work = tagging.result_of(step, None)
    if ledger is not None and work is not None:
        tagging.recorded(ledger, [work])
    return result


def tag_all(
    paths: Iterable[PathLike],
    assertion: Assertion,
    *,
    dry_run: bool = False,
    password: str | None = None,
    identity: Identity | None = None,
    ledger: Ledger | None = None,
    follow_links: bool = True,
    jobs: int = 1,
) -> list[TagResult]:
    """``tag`` for each path, with one fsync per folder at the end instead of one per file.

    Each file's new bytes are durable before it is renamed over the original, as with ``tag``;
    only the renames' own durability waits for the end of the batch, and it is done before the
    results are returned (a power cut before then may undo a rename: the original is there).
    ``tag_iter`` gives the same results one at a time (with a ledger, ``_BATCH`` at a time).
    """
    return list(tag_iter(paths, assertion, dry_run=dry_run, password=password, identity=identity, ledger=ledger,
                         follow_links=follow_links, jobs=jobs))


# Files whose new bytes may wait for their fsync and rename while the next files are tagged
# (each holds two descriptors, no bytes in memory). With 8 ahead and 4 threads a disk busy with
# other writers left tag waiting on fsyncs; 32 and 8 kept it tagging (500 files, alternating).
_AHEAD = 32
# With a ledger, the results of files renamed are given this many at a time, their works recorded
# in one transaction: one commit (and its GIL hand-offs, WAL pages) for several works.
_BATCH = 8


def tag_iter(
    paths: Iterable[PathLike],
    assertion: Assertion,
    *,
    dry_run: bool = False,
    password: str | None = None,
    identity: Identity | None = None,
    ledger: Ledger | None = None,
    follow_links: bool = True,
    jobs: int = 1,
) -> Generator[TagResult, None, None]:
    """``tag_all``'s results in the order of ``paths``, each as soon as its file is done (with a
    ledger, ``_BATCH`` at a time).

    Close the iterator (``contextlib.closing``) when not running it to the end. While the next
    file is tagged, a thread makes the previous files' new bytes durable and renames each over
    its original (fsync first, then the rename, file by file). A file's result comes after its
    rename. When stopped early (an exception, a closed iterator) files not yet renamed keep
    their original and their temporary files are removed; the folders of the renames done are
    fsynced either way. A signal handler that stops a run should raise through
    ``stopping.stop`` (as the command's do): raised at once, it may land right after a temporary
    file is created and leave it (for the next ``tag`` to remove). With a ledger, works are recorded in this thread, in path order, each
    after its file's rename: the results of renamed files are given ``_BATCH`` at a time, their
    works recorded in one transaction just before. The ledger then holds the works of the
    results given (and of the batch about to be given); a run stopped early records the works of
    every file renamed by then; a run killed at any moment leaves at most ``_AHEAD + _BATCH``
    files renamed but not recorded, and tagging them again records them.

    ``jobs`` other than 1: the files are tagged in that many worker processes (0: one per core),
    the ledger written and the results given in this one, in the same order (tagpool.py).
    """
    _check(assertion)
    from . import tagging

    if jobs != 1:
        from .tagpool import tag_parallel

        yield from tag_parallel(paths, assertion, jobs=jobs, dry_run=dry_run, password=password, identity=identity,
                                ledger=ledger, follow_links=follow_links)
        return
    options = Options(password=password)
    dirs: set[str] = set()
    queue: deque[tuple[TagResult | tagging.Writing | tagging.Raw, tagging.Finishing | None]] = deque()
    ready: deque[tuple[TagResult, tagging.ToRecord | None]] = deque()  # renamed (or not written), not yet given
    durable = tagging.Durable(dirs)
    once = tagging.Once(follow_links)

    def hold(step: tagging.Writing) -> None:
        queue.append((step, durable.submit(step)))

    def take() -> Iterator[TagResult]:
        ready.append(tagging.done(queue))
        if ledger is None or len(ready) >= _BATCH:
            yield from tagging.given(ready, ledger, once)

    try:
        for path in paths:
            # a work id per file: the ledger keeps one work per id
            step = once.seen(os.fspath(path), assertion) or tagging.tag_one(
                os.fspath(path), assertion.for_work(), dry_run, options, identity, ledger is not None, follow_links, hold)
            if not isinstance(step, tagging.Writing):
                queue.append((step, None))
            while queue and (len(queue) > _AHEAD or queue[0][1] is None or queue[0][1].done):
                yield from take()
        while queue:
            yield from take()
        yield from tagging.given(ready, ledger, once)
    finally:  # also when interrupted: files not yet renamed keep their original; the renames done are made durable
        if ledger is not None:
            # Stopped (Ctrl-C, SIGTERM, a closed pipe, a closed iterator): the files already renamed
            # are recorded still, though their results are not given.
            while queue and (queue[0][1] is None or queue[0][1].done):
                ready.append(tagging.done(queue))
            tagging.recorded(ledger, [work for _, work in ready if work is not None])
        with deferred():  # a second Ctrl-C or SIGTERM waits until every temporary file is removed
            for step, _ in queue:
                if isinstance(step, tagging.Writing):
                    step.abandon()
        durable.close()
        sync_dirs(dirs)


def stale_temp_files(paths: Iterable[PathLike], *, remove: bool = False) -> list[str]:
    """Temporary files an interrupted rightsmeta write left in the folders of ``paths``.

    ``paths`` are files (their folder is looked in) or folders. Only our own temporary files
    that no running rightsmeta is writing are listed (see ``fsio.stale_temps``); with
    ``remove`` they are deleted too.
    """
    folders = []
    for path in paths:
        path = os.fspath(path)
        if path == "-":
            continue
        folders.append(path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path)))
    return stale_temps(folders, remove=remove)


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
    from .listing import below

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
                raise FolderNotWalked(path)
            # os.walk's order, each folder's names sorted and held compactly (listing.py)
            owners = sidecar.Owners()  # this walk's own
            for found in filter(regular, below(path)):
                # A sidecar is read and tagged with its file: listed alone, it would only be
                # "not media" (unreadable to verify, a failure for --fail-on unreadable).
                if owners.owned(found):
                    if skipped is not None:
                        skipped.append((found, "an XMP sidecar, read and tagged with the file beside it"))
                    continue
                yield found
        elif regular(path):
            yield path
