"""The library: ``read`` and ``tag`` over paths, bytes and binary file objects.

Reading never raises for what is inside a file: every problem becomes an error string in
the report, so a batch goes on. Tagging a path returns a ``TagResult`` (failures are
results too, including our own bugs: a batch of thousands must not stop at one file);
``tag_bytes`` raises typed errors, since its caller holds the only copy.

A tag is kept only when two independent checks pass: the new bytes read back as the
assertion asked (metadata), and they decode to the same content as the original
(``contentcheck``: pixels, samples, pages). The file is locked for the whole
read-modify-replace (``fsio.locked``), so two runs on one file take turns.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from . import sidecar
from .carriers import Family, Options, Parsed, detect, heads, manifest, splice
from .carriers.splice import Spliced
from .decide import decide
from .errors import (
    FolderNotWalked,
    MalformedFile,
    RightsmetaError,
    UnknownFormat,
    UnsupportedFormat,
    UsageError,
    WriteError,
)
from .fsio import Buffer, Replacement, locked, open_buffer, read_fd, stale_temps, start_write, sync_dirs
from .model import PURPOSES, Assertion, State
from .report import FileReport, TagResult
from .stopping import deferred

if TYPE_CHECKING:  # imported where used: a read-only scan never loads them
    from .fingerprint import Essence
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
        raise heads.not_read(bytes(buf[:64]), buf)
    return found


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
    return _read(source, name, Options(password=password, trust_anchors=trust_anchors, located={}),
                 os.fspath(beside) if beside is not None else None)  # one buffer


def _read(source: Source, name: str | None, options: Options, beside: str | None = None) -> FileReport:
    report = FileReport(name or _name(source))
    try:
        if isinstance(source, (bytes, mmap.mmap)):  # in memory already (verify reads its files itself)
            _read_carriers(report, source, options)
        else:
            with open_buffer(source) as buf:
                _read_carriers(report, buf, options)
    except UnknownFormat as exc:
        if beside is not None and sidecar.is_raw(beside):  # a raw whose own bytes no family reads (CR3, RW2)
            report.errors.append(f"a camera raw whose own metadata rightsmeta does not read ({exc}); "
                                 "only its sidecar is read")
        else:
            report.errors.append(str(exc))
    except RightsmetaError as exc:
        report.errors.append(str(exc))
    except OSError as exc:
        report.errors.append(f"cannot read file: {exc.strerror or exc}")
    except MemoryError:  # the per-file memory bound: the caller reports it
        raise
    except Exception as exc:  # a bug of ours must not stop a scan of millions: said, not hidden
        report.errors.append(f"rightsmeta failed on this file ({type(exc).__name__}: {exc}); please report it")
    if beside is not None and beside != "-":
        report.carriers += sidecar.read(beside)
    for carrier in report.carriers:
        report.errors.extend(f"{carrier.name}: {e}" for e in carrier.errors)
        if carrier.values.get("validation_state") == "Invalid":  # signed, then changed: use fails closed
            codes = ", ".join(carrier.values.get("failures") or []) or "no reason given"
            report.errors.append(f"{carrier.name}: the manifest failed validation ({codes})")
        for key, value in carrier.rights.items():
            report.rights.setdefault(key, value)
    report.decision = decide(report.signals)
    return report


def _read_carriers(report: FileReport, buf: Buffer, options: Options) -> None:
    family, fmt = _identify(buf)
    report.format = fmt
    report.carriers = family.read(buf, fmt, options)
    signed = manifest.read(buf, fmt, options)
    if signed is not None:
        report.carriers.append(signed)


def _check(assertion: Assertion) -> None:
    if assertion.is_empty:
        raise UsageError("nothing to tag: give at least one purpose to deny, allow or constrain")


class _Written(NamedTuple):
    """A file's new version, made in memory and not checked yet (``_checked``)."""

    new: bytes | Spliced  # a spliced file stays in pieces until something needs it whole
    fmt: str
    carriers: list[str]
    notes: list[str]
    options: Options  # with the file's own ``parsed``, for its read-back and content check


def _write(data: bytes, assertion: Assertion, options: Options, identity: Identity | None) -> _Written:
    """The new version of ``data``; raises when nothing safe can be written."""
    from . import contentcheck

    options = options.but(located=options.located, parsed=Parsed())  # this file's: each version of it parsed once
    family, fmt = _identify(data)
    contentcheck.check_source(data, fmt)
    notes: list[str] = []
    signing = identity is not None
    refusal = manifest.why_not(data, fmt) if signing else None
    if refusal:
        signing = False
        notes.append(refusal)
    store = manifest.read(data, fmt, options) if not signing else None
    if store is not None and store.location == manifest.DAMAGED:
        notes.append(_DAMAGED_STORE_KEPT)
    elif store is not None:
        # No identity may mean none was made, or that the caller turned signing off (--no-sign).
        fix = refusal or ("tag it with a signing identity so rightsmeta can re-sign it "
                          "(rightsmeta keys init makes one; --no-sign turns signing off)")
        raise UnsupportedFormat(f"this file carries a signed C2PA manifest, which any metadata change would invalidate; {fix}")
    new: bytes | Spliced
    unwritten: UnsupportedFormat | None = None
    try:
        new, carriers = family.write(data, fmt, assertion, options)
    except UnsupportedFormat as exc:
        if not signing:
            raise
        new, carriers, unwritten = data, [], exc
        notes.append(f"only the C2PA manifest carries the signal ({exc})")
    notes += options.parsed.notes if options.parsed is not None else []
    if signing:
        assert identity is not None
        from .fingerprint import fingerprint

        whole = bytes(new)
        try:
            new = manifest.sign(whole, fmt, assertion, identity, fingerprint=fingerprint(whole, fmt))
            notes += manifest.caveats(new, fmt)
        except MalformedFile as exc:
            if unwritten is None:
                raise
            # Why the carriers could not be written comes first (an encrypted PDF): c2pa's reason
            # only says why the manifest could not stand in for them either.
            raise UnsupportedFormat(f"{unwritten}; nor could a C2PA manifest carry the signal alone ({exc})") from None
        carriers.append("c2pa")
    return _Written(new, fmt, carriers, notes, options)


_NOTICES = ("exif-copyright", "iptc-iim")  # carriers/image.py: EXIF_NOTICE, IIM_NOTICE
_DAMAGED_STORE_KEPT = "a damaged C2PA manifest store, which c2pa cannot read, is left as it was"


def _checked(data: bytes, new: Buffer, written: _Written, assertion: Assertion) -> list[str]:
    """Notes on ``new``, the bytes of ``written.new`` (joined, or the file written from them);
    raises when they do not read back as asked or do not hold the same work as ``data``."""
    from . import contentcheck

    options, fmt = written.options, written.fmt
    if isinstance(written.new, Spliced):
        splice.remember(options.parsed, new, written.new)
    # Read our own output back: a write that does not say what was asked is never kept.
    check = _read(new, None, options.but(located={}, parsed=options.parsed))
    covered = {p for s in check.signals for p in s.covers}
    wrong = [p.value for p in covered if check.decision.permissions[p] != assertion.permissions[p]]
    errors = check.errors
    if _DAMAGED_STORE_KEPT in written.notes:  # the original's damaged store, moved: not this write's
        left = {f"{c.name}: {e}" for c in check.carriers if c.location == manifest.DAMAGED for e in c.errors}
        errors = [e for e in errors if e not in left]
    if errors or wrong or any(c.values.get("validation_state") == "Invalid" for c in check.carriers):
        problems = errors + [f"{p} reads back differently" for p in wrong]
        raise WriteError(f"the tagged {fmt.upper()} did not read back as written; original kept ({'; '.join(problems)})")
    # A notice an image's EXIF or IIM held was replaced (carriers/image.py): it must say the new one.
    stale = [f"{c.name} says {c.rights.get('copyright')!r}" for c in check.carriers
             if c.name in _NOTICES and c.name in written.carriers and c.rights.get("copyright") != assertion.copyright]
    if stale:
        raise WriteError(f"the tagged {fmt.upper()} did not read back as written; original kept ({'; '.join(stale)})")
    lost = [p.value for p in PURPOSES if p not in covered and assertion.state(p) is not State.UNSPECIFIED]
    notes = [f"no carrier written to this {fmt.upper()} can express {', '.join(lost)}"] if lost else []
    # The same work, not only the same words: a rewrite that lost a page or a pixel row is refused.
    return notes + contentcheck.compare(data, new, fmt, options.parsed)


def _tag_data(
    data: bytes, assertion: Assertion, options: Options, identity: Identity | None
) -> tuple[bytes, str, list[str], list[str]]:
    """New bytes, format, carriers written and notes; raises when nothing safe can be written."""
    written = _write(data, assertion, options, identity)
    new = bytes(written.new)
    return new, written.fmt, written.carriers, written.notes + _checked(data, new, written, assertion)


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
    step = _tag_one(os.fspath(path), assertion.for_work(), dry_run, Options(password=password), identity,
                    ledger is not None, follow_links)
    if isinstance(step, TagResult):
        return step
    if isinstance(step, _Raw):
        if ledger is not None and step.found is not None:
            _recorded(ledger, [(step.result, step.target, step.found)])
        return step.result
    try:
        step.finish(None)  # the folder fsynced at once
    except Exception as exc:
        return _result(step, exc)[0]
    result, work = _result(step, None)
    if ledger is not None and work is not None:
        _recorded(ledger, [work])
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
    if jobs != 1:
        from .tagpool import tag_parallel

        yield from tag_parallel(paths, assertion, jobs=jobs, dry_run=dry_run, password=password, identity=identity,
                                ledger=ledger, follow_links=follow_links)
        return
    options = Options(password=password)
    dirs: set[str] = set()
    queue: deque[tuple[TagResult | _Writing | _Raw, _Finishing | None]] = deque()
    ready: deque[tuple[TagResult, _Work | None]] = deque()  # renamed (or not written), not yet given
    durable = _Durable(dirs)
    once = _Once(follow_links)

    def hold(step: _Writing) -> None:
        queue.append((step, durable.submit(step)))

    def take() -> Iterator[TagResult]:
        ready.append(_done(queue))
        if ledger is None or len(ready) >= _BATCH:
            yield from _given(ready, ledger, once)

    try:
        for path in paths:
            # a work id per file: the ledger keeps one work per id
            step = once.seen(os.fspath(path), assertion) or _tag_one(
                os.fspath(path), assertion.for_work(), dry_run, options, identity, ledger is not None, follow_links, hold)
            if not isinstance(step, _Writing):
                queue.append((step, None))
            while queue and (len(queue) > _AHEAD or queue[0][1] is None or queue[0][1].done):
                yield from take()
        while queue:
            yield from take()
        yield from _given(ready, ledger, once)
    finally:  # also when interrupted: files not yet renamed keep their original; the renames done are made durable
        if ledger is not None:
            # Stopped (Ctrl-C, SIGTERM, a closed pipe, a closed iterator): the files already renamed
            # are recorded still, though their results are not given.
            while queue and (queue[0][1] is None or queue[0][1].done):
                ready.append(_done(queue))
            _recorded(ledger, [work for _, work in ready if work is not None])
        with deferred():  # a second Ctrl-C or SIGTERM waits until every temporary file is removed
            for step, _ in queue:
                if isinstance(step, _Writing):
                    step.abandon()
        durable.close()
        sync_dirs(dirs)


class _Once:
    """The files a batch has tagged, by their real paths: one file named twice (a link to a photo
    beside the photo, or a name given twice) is tagged once, not given two works in the ledger.
    Hard links are not the same file once tagged (the replace splits them), so names are compared,
    not inodes. A link to a file is its target; any other name is its folder's real path and its
    own base name: ".." is taken after the folder's links as the kernel takes it (x/../p.jpg with
    x a link to other/sub is other/p.jpg), each folder looked up once a run."""

    def __init__(self, follow_links: bool) -> None:
        self.follow = follow_links
        self.first: dict[str, str] = {}  # the file's real path: the name it was first given under
        self.folders: dict[str, str] = {}  # a folder as named: its real path
        self.pending: dict[str, str] = {}  # a first name whose result is not given yet: its real path
        self.became: dict[str, str] = {}  # the file's real path: what became of it under its first name
        self.twins: dict[int, str] = {}  # id() of a result given here, not yet settled: the real path

    def seen(self, name: str, assertion: Assertion) -> TagResult | None:
        """A result for ``name`` when its file was named in this batch already, else None (and it is
        taken as named first under ``name``). The result's reason is settled when it is given
        (:meth:`settled`), once the first name's result is known."""
        if name == "-":
            return None
        link = os.path.islink(name)
        if link and not self.follow:
            return None  # skipped as a link, with its own reason
        if link:
            real = os.path.realpath(name)
        else:
            folder = os.path.dirname(name) or "."
            found = self.folders.get(folder)
            if found is None:
                found = self.folders[folder] = os.path.realpath(folder)
            real = os.path.join(found, os.path.basename(name))
        first = self.first.get(real)
        if first is None:
            self.first[real] = name
            self.pending[name] = real
            return None
        twin = TagResult(name, "skipped", assertion=assertion, reason=f"the same file as {first}, named already in this run")
        self.twins[id(twin)] = real
        return twin

    def settled(self, result: TagResult) -> TagResult:
        """``result`` as it is given: a first name's outcome kept, a second name's reason saying it
        (results are given in the order of the names, so the first's comes before)."""
        real = self.twins.pop(id(result), None)
        if real is not None:
            first, status = self.first[real], self.became.get(real)
            if status == "tagged":
                result.reason = f"the same file as {first}, tagged already in this run"
            elif status is not None:
                result.reason = f"the same file as {first}, named already in this run ({first}: {status})"
        elif result.path is not None and (real := self.pending.pop(result.path, None)) is not None:
            self.became[real] = result.status
        return result


class _Durable:
    """Threads finishing the writes: each file's fsync, then its rename, file by file.

    Several at once, because fsyncs that wait together are made durable together (ext4's
    journal commits them in one go): on a busy disk, where an fsync takes milliseconds, one
    thread would leave the batch waiting on them one after another. Daemon threads, not an
    executor's: a run stopped by SIGTERM while the disk is slow must not wait for an fsync at
    exit (``_Writing.abandon`` has made sure no rename follows).
    """

    def __init__(self, dirs: set[str], threads: int = 8) -> None:
        import queue

        self.dirs = dirs
        self.jobs: queue.SimpleQueue[tuple[_Writing, _Finishing] | None] = queue.SimpleQueue()
        self.threads = threads
        self.started = 0

    def submit(self, step: _Writing) -> _Finishing:
        import threading

        finishing = _Finishing()
        if self.started < self.threads:  # one more per job up to the limit: a single file starts one
            # Started before the job is queued: a thread that cannot start (a limit on threads, no
            # memory) leaves no job behind that a later thread would finish after this one did.
            try:
                threading.Thread(target=self._run, name="rightsmeta-durable", daemon=True).start()
            except (RuntimeError, MemoryError):
                if not self.started:  # no thread to hand it to: finished here, as ``tag`` does
                    self._finish((step, finishing), Exception)
                    return finishing
            else:
                self.started += 1
        self.jobs.put((step, finishing))
        return finishing

    def close(self) -> None:
        for _ in range(self.started):
            self.jobs.put(None)

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            self._finish(job, BaseException)  # anything: handed to the caller's thread, which reports it

    def _finish(self, job: tuple[_Writing, _Finishing], caught: type[BaseException]) -> None:
        step, finishing = job
        try:
            step.finish(self.dirs)
        except caught as exc:
            finishing.end(exc)
        else:
            finishing.end(None)


class _Finishing:
    """One file's ``finish`` in a durability thread, as the caller's thread sees it. (Not a
    concurrent.futures.Future: importing that module, and the logging it loads, was 13 ms of
    every run's start-up.)"""

    def __init__(self) -> None:
        import threading

        self._ended = threading.Event()
        self._error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self._ended.is_set()

    def end(self, error: BaseException | None) -> None:
        self._error = error
        self._ended.set()

    def error(self) -> BaseException | None:
        """What the finish raised (None when it succeeded), once it has ended."""
        self._ended.wait()
        return self._error


class _Writing:
    """A file whose new bytes are in its temporary file, still locked: ``finish`` makes them
    durable and renames them over the original (in the durability thread), ``abandon`` drops
    them unless renamed already; either releases the lock, once."""

    def __init__(self, result: TagResult, replacement: Replacement, lock: contextlib.ExitStack, nlink: int,
                 found: Essence | None, target: str) -> None:
        self.result, self.replacement, self.lock, self.nlink = result, replacement, lock, nlink
        self.found, self.target = found, target

    def finish(self, dirs: set[str] | None) -> None:
        try:
            self.replacement.finish(dirs)
        finally:
            self._release()

    def abandon(self) -> None:
        try:
            self.replacement.discard()
        finally:
            self._release()

    def _release(self) -> None:
        # pop_all: the first caller takes the lock's exit, a second one finds nothing to do.
        self.lock.pop_all().close()


# A file tagged and renamed whose work is to be recorded: its result, the file written, its essence.
_Work = tuple[TagResult, str, "Essence"]


def _done(queue: deque[tuple[TagResult | _Writing | _Raw, _Finishing | None]]) -> tuple[TagResult, _Work | None]:
    """The first file's result and its work to record, taken off ``queue`` only when its write is
    done (an interruption while waiting for it leaves it there, for ``tag_iter`` to abandon)."""
    step, finishing = queue[0]
    error = finishing.error() if finishing is not None else None
    queue.popleft()
    if isinstance(step, _Raw):
        return step.result, (step.result, step.target, step.found) if step.found is not None else None
    return (step, None) if isinstance(step, TagResult) else _result(step, error)


def _given(ready: deque[tuple[TagResult, _Work | None]], ledger: Ledger | None, once: _Once) -> Iterator[TagResult]:
    """The results of ``ready`` in order, their works recorded first, in one transaction; a
    file's second name says what became of it under its first (``once``)."""
    if ledger is not None:
        _recorded(ledger, [work for _, work in ready if work is not None])
        for i, (result, _) in enumerate(ready):
            ready[i] = (result, None)  # recorded: a stop while they are given must not record them again
    while ready:
        yield once.settled(ready.popleft()[0])


def _result(step: _Writing, error: BaseException | None) -> tuple[TagResult, _Work | None]:
    """The file's result once its write is done (``error`` when it failed), and its work to record
    when it was written and its essence computed."""
    result = step.result
    if isinstance(error, RightsmetaError):
        return TagResult(result.path, "failed", result.format, reason=str(error), assertion=result.assertion), None
    if error is not None:
        _log_bug(f"writing {result.path}", error)
        return TagResult(result.path, "failed", result.format, assertion=result.assertion,
                         reason=f"internal error ({type(error).__name__}: {error}); the file is unchanged; "
                                "please report it"), None
    if step.nlink > 1:
        result.notes.append(
            f"the file had {step.nlink} hard links; this name now holds the tagged file, the other "
            f"{step.nlink - 1} still hold the untagged version (an atomic replace writes a new file)"
        )
    return result, (result, step.target, step.found) if step.found is not None else None


def _recorded(ledger: Ledger, works: list[_Work]) -> None:
    """Record the works of files already renamed, in one transaction. The files are written: from
    here on a problem is a note of a result, never a failure of the tag; when a transaction of
    several fails, each work is recorded alone, so the note goes to the file it concerns."""
    if not works:
        return
    try:
        _record(ledger, works)
    except Exception as exc:
        import sqlite3

        if len(works) > 1:
            for work in works:
                _recorded(ledger, [work])
            return
        result = works[0][0]
        if isinstance(exc, (RightsmetaError, sqlite3.Error)):
            result.notes.append(f"tagged, but not recorded in the ledger: {exc}")
            return
        _log_bug(f"recording {result.path} in the ledger", exc)
        result.notes.append(f"tagged, but not recorded in the ledger: internal error ({type(exc).__name__}: "
                            f"{exc}); please report it")


def _tag_one(
    name: str, assertion: Assertion, dry_run: bool, options: Options, identity: Identity | None,
    record: bool, follow_links: bool, hold: Callable[[_Writing], None] | None = None,
) -> TagResult | _Writing | _Raw:
    """One file tagged up to its rename (``record``: its essence computed, for the ledger).

    ``hold`` is given a file written (its ``_Writing``, also returned) before a stop (SIGTERM,
    Ctrl-C: ``stopping.stop``) can be raised once its temporary file exists: the caller's batch
    holds it there, to abandon it when stopped."""
    try:
        return _tag_path(name, assertion, dry_run, options, identity, record, follow_links, hold)
    except Exception as exc:  # our bug, or a library's: this file fails, the batch goes on
        _log_bug(f"tagging {name}", exc)
        return TagResult(
            name, "failed", assertion=assertion,
            reason=f"internal error ({type(exc).__name__}: {exc}); the file is unchanged; please report it",
        )


def _tag_path(
    name: str, assertion: Assertion, dry_run: bool, options: Options, identity: Identity | None,
    record: bool, follow_links: bool, hold: Callable[[_Writing], None] | None,
) -> TagResult | _Writing | _Raw:
    notes: list[str] = []
    target = name
    if os.path.islink(name):
        if not follow_links:
            return TagResult(name, "skipped", reason="a symbolic link, and links are not followed; nothing written",
                             assertion=assertion)
        target = os.path.realpath(name)
        notes.append(f"a symbolic link: tagged the file it points to, {target}")
    if sidecar.is_raw(target):
        return _tag_raw(name, target, assertion, dry_run, notes, record)
    with contextlib.ExitStack() as held:
        try:
            # Locked for the whole read-modify-replace, so a concurrent tag cannot be lost.
            fd = held.enter_context(locked(target))
            before = os.fstat(fd)
            data = read_fd(fd, before)
        except RightsmetaError as exc:  # FileBusy: another run kept it locked
            return TagResult(name, "failed", reason=str(exc), assertion=assertion)
        except OSError as exc:
            return TagResult(name, "failed", reason=f"cannot read file: {exc.strerror or exc}", assertion=assertion)
        try:
            written = _write(data, assertion, options, identity)
            if dry_run:
                notes += written.notes + _checked(data, bytes(written.new), written, assertion)
                carriers = written.carriers + _sidecars(target, assertion, notes, dry_run=True)
                return TagResult(name, "would-tag", written.fmt, carriers, assertion=assertion, notes=notes)
        except UnknownFormat as exc:
            return TagResult(name, "skipped", reason=str(exc), assertion=assertion)
        except RightsmetaError as exc:
            return TagResult(name, "failed", reason=str(exc), assertion=assertion)
        fmt = written.fmt
        step: _Writing | None = None
        held_there = False
        try:
            with deferred():  # a stop waits until ``step`` has the temporary file, to remove it
                try:
                    replacement = start_write(target, _pieces(written.new), expect=before)
                except RightsmetaError as exc:
                    return TagResult(name, "failed", fmt, reason=str(exc), assertion=assertion)
                # The lock goes with the new bytes: it is released once they replaced the original.
                step = _Writing(TagResult(name, "tagged", fmt, written.carriers, assertion=assertion, notes=notes),
                                replacement, held.pop_all(), before.st_nlink, None, target)
            try:
                with _as_written(replacement, written.new) as new:
                    notes += written.notes + _checked(data, new, written, assertion)
                    if record:
                        from .fingerprint import essence

                        # recorded: the forms a copy is looked up by are not needed
                        step.found = essence(new[:], fmt, probes=False)
                    # Last before the file is handed over: a check or an essence that fails leaves the
                    # sidecar as it was (only a failed rename, later, leaves the two disagreeing).
                    step.result.carriers = written.carriers + _sidecars(target, assertion, notes)
            except RightsmetaError as exc:
                step.abandon()
                return TagResult(name, "failed", fmt, reason=str(exc), assertion=assertion)
            with deferred():  # a stop waits until ``hold`` has the step, or is raised before it
                if hold is not None:
                    hold(step)
                    held_there = True
        except BaseException:
            # A stop held back to a block's end, a failure, or ``hold`` failed: no caller has the file, so
            # its temporary file and lock go here (``tag``, with no batch, passes no ``hold``).
            if step is not None and not held_there:
                step.abandon()
            raise
        return step


def _sidecars(target: str, assertion: Assertion, notes: list[str], *, dry_run: bool = False) -> list[str]:
    """The sidecars a file tagged in place already has, made to say the same (else read would
    find them disagreeing with it); raises WriteError, and the file is then not tagged either."""
    if not sidecar.find(target):
        return []
    split: list[str] = []
    written = sidecar.write(target, assertion, dry_run=dry_run, notes=split)
    notes.append(f"its XMP sidecar {', '.join(os.path.basename(w) for w in written)} says the same")
    notes += split
    return [sidecar.CARRIER]


class _Raw(NamedTuple):
    """A camera raw tagged through its sidecar, and its work to record (``found``: None when not
    recording): no rename of its own to wait for, so it is recorded as soon as it is done."""

    result: TagResult
    target: str
    found: Essence | None


def _raw_essence(target: str) -> Essence:
    """What identifies a raw in the ledger: the essence of its bytes as ``verify`` computes it for
    the raw read alone (a copy without its sidecar), so that copy is recognised. For a TIFF-based
    raw (NEF, ARW, CR2...) that is its first image, the camera's preview or thumbnail; a raw whose
    container no family reads (CR3, RW2) gets none, and ``verify`` says such a raw is unreadable
    anyway (fail closed). The raw is never rewritten, so what was read is what lies there."""
    from .fingerprint import Essence, essence
    from .fsio import read_path

    try:
        data = bytes(read_path(target))
        _, fmt = _identify(data)
    except OSError as exc:
        return Essence(None, None, None, f"the raw could not be read: {exc.strerror or exc}")
    except RightsmetaError as exc:
        return Essence(None, None, None, f"its container is not one rightsmeta reads: {exc}")
    return essence(data, fmt, probes=False)


def _tag_raw(name: str, target: str, assertion: Assertion, dry_run: bool, notes: list[str],
             record: bool) -> TagResult | _Raw:
    """A camera raw, tagged through its XMP sidecar (sidecar.py): the raw itself is never
    rewritten. With ``record``, its work (``_raw_essence``) goes to the ledger as a tagged file's does."""
    if not sidecar.regular(target):
        reason = "not a regular file; not tagged" if os.path.lexists(target) else "no such file"
        return TagResult(name, "failed", reason=reason, assertion=assertion)
    try:
        split: list[str] = []
        written = sidecar.write(target, assertion, dry_run=dry_run, notes=split)
    except RightsmetaError as exc:
        return TagResult(name, "failed", "raw", reason=str(exc), assertion=assertion)
    names = ", ".join(os.path.basename(w) for w in written)
    notes.append(f"a camera raw: the raw is unchanged; the statement is in its XMP sidecar {names}, "
                 "which does not travel with the file (keep them together; a copy of the raw alone says nothing)")
    notes += split
    result = TagResult(name, "would-tag" if dry_run else "tagged", "raw", [sidecar.CARRIER], assertion=assertion, notes=notes)
    if dry_run or not record:
        return result
    return _Raw(result, target, _raw_essence(target))


def _pieces(new: bytes | Spliced) -> bytes | tuple[bytes | memoryview, ...]:
    # A spliced file goes to the file piece by piece: a photo is not copied whole in memory to be written.
    return new.pieces if isinstance(new, Spliced) else new


# From this size a spliced file is checked mapped rather than joined: mapping and unmapping cost
# 30-70 us (a process with threads), joining 10 us a 256 KiB file, 50 us a MiB, 270 us 3 MiB.
_MAPPED_FROM = 1 << 20


def _as_written(replacement: Replacement, new: bytes | Spliced) -> contextlib.AbstractContextManager[Buffer]:
    """The new bytes to check before they may replace the original: a large spliced file as written,
    mapped (read back and compared where it lies, not joined into memory); others in memory."""
    if isinstance(new, Spliced) and len(new) >= _MAPPED_FROM:
        return replacement.mapped()
    return contextlib.nullcontext(bytes(new))


def _log_bug(doing: str, exc: BaseException) -> None:
    """A bug of ours (or of a library) became a result: its traceback goes to the ``rightsmeta``
    log (``rightsmeta --debug`` shows it), a WARNING as for the fast readers' bugs (log.py)."""
    import logging  # only when something went wrong: a tag that succeeds never loads it

    from .log import NAME

    log = logging.getLogger(NAME)
    if not log.handlers:
        log.addHandler(logging.NullHandler())  # the application decides where the log goes
    log.warning("internal error while %s (%s: %s), a bug; please report it", doing, type(exc).__name__, exc,
                exc_info=exc)


def _record(ledger: Ledger, works: list[_Work]) -> None:
    """Record tagged works in one transaction; raises what the ledger raises."""
    from .escape import stored_path
    from .ledger import Work

    def work(result: TagResult, target: str, found: Essence) -> Work:
        assert result.assertion is not None
        return Work.create(stored_path(target), result.format or "", found, result.assertion, result.carriers,
                           id=result.assertion.work_id)

    ledger.record_many([work(*tagged) for tagged in works])
    for result, _, found in works:
        if found.hash is None and found.perceptual is None:
            result.notes.append(f"recorded in the ledger without a fingerprint ({found.reason})")


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
