"""One file's tag: the new version written in memory, read back and compared with the original
(``contentcheck``), made durable and renamed over the original, and its work recorded.

``api`` runs it file by file (``tag``, ``tag_iter``), ``tagpool`` in worker processes, with the
same code (``tag_one``). A tag is kept only when two independent checks pass: the new bytes read
back as the assertion asked (metadata), and they decode to the same content as the original
(``contentcheck``: pixels, samples, pages). The file is locked for the whole read-modify-replace
(``fsio.locked``), so two runs on one file take turns.
"""

from __future__ import annotations

import contextlib
import os
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NamedTuple

from . import sidecar
from .carriers import Options, Parsed, manifest, splice
from .carriers.splice import Spliced
from .errors import (
    MalformedFile,
    RightsmetaError,
    UnknownFormat,
    UnsupportedFormat,
    WriteError,
)
from .fsio import Buffer, Replacement, locked, read_fd, start_write
from .model import PURPOSES, Assertion, State
from .reading import identify, read_source
from .report import TagResult
from .stopping import deferred

if TYPE_CHECKING:  # imported where used: a run pays only for what it needs
    from .fingerprint import Essence
    from .keys import Identity
    from .ledger import Ledger


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
    family, fmt = identify(data)
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
    check = read_source(new, None, options.but(located={}, parsed=options.parsed))
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


def tag_data(
    data: bytes, assertion: Assertion, options: Options, identity: Identity | None
) -> tuple[bytes, str, list[str], list[str]]:
    """New bytes, format, carriers written and notes; raises when nothing safe can be written."""
    written = _write(data, assertion, options, identity)
    new = bytes(written.new)
    return new, written.fmt, written.carriers, written.notes + _checked(data, new, written, assertion)


class _Hashes:
    """A set of 64-bit hashes in one array, at most half full (8-16 bytes a hash, where a Python
    set of ints takes about 100)."""

    def __init__(self) -> None:
        self.slots = array("Q", bytes(8 * 1024))
        self.count = 0

    def add(self, value: int) -> bool:
        """Add ``value``; whether it was not there before."""
        value = value & 0xFFFFFFFFFFFFFFFF or 1  # 0 marks an empty slot
        mask = len(self.slots) - 1
        at = value & mask
        while found := self.slots[at]:
            if found == value:
                return False
            at = (at + 1) & mask
        self.slots[at] = value
        self.count += 1
        if 2 * self.count > len(self.slots):
            old, self.slots, self.count = self.slots, array("Q", bytes(16 * len(self.slots))), 0
            for found in old:
                if found:
                    self.add(found)
        return True


class Once:
    """The files a batch has tagged, by their real paths: one file named twice (a link to a photo
    beside the photo, or a name given twice) is tagged once, not given two works in the ledger.
    Hard links are not the same file once tagged (the replace splits them), so names are compared,
    not inodes. A link to a file is its target; any other name is its folder's real path and its
    own base name: ".." is taken after the folder's links as the kernel takes it (x/../p.jpg with
    x a link to other/sub is other/p.jpg), each folder looked up once a run.

    A run keeps a 64-bit hash a file, in one array (``_Hashes``): the real paths themselves cost
    300 bytes a file, and tag -r's peak memory grew a third from 2,000 to 20,000 files (a Python
    set of the hashes: a fifth). Two paths of one hash, which would skip a file, are about one
    chance in 10^7 at a million files."""

    def __init__(self, follow_links: bool) -> None:
        self.follow = follow_links
        self.named = _Hashes()  # of the real path of each file named so far
        self.aliases: dict[int, str] = {}  # a file first named otherwise than by its real path: that name
        self.folders: dict[str, str] = {}  # a folder as named: its real path
        self.pending: dict[str, int] = {}  # a first name whose result is not given yet: its file
        self.unlike: dict[int, str] = {}  # a file whose first name was not tagged: what became of it
        self.twins: dict[int, tuple[int, str]] = {}  # id() of a second name's result: its file, first name

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
        key = hash(real)
        if self.named.add(key):
            self.pending[name] = key
            if os.path.abspath(name) != real:  # a link, a linked folder, "..": its name is kept for the message
                self.aliases[key] = name
            return None
        first = self.aliases.get(key, real)
        twin = TagResult(name, "skipped", assertion=assertion, reason=f"the same file as {first}, named already in this run")
        self.twins[id(twin)] = (key, first)
        return twin

    def settled(self, result: TagResult) -> TagResult:
        """``result`` as it is given: a first name's outcome kept, a second name's reason saying it
        (results are given in the order of the names, so the first's comes before)."""
        twin = self.twins.pop(id(result), None)
        if twin is not None:
            key, first = twin
            status = self.unlike.get(key)
            if status is None and key not in self.pending.values():  # given, and not unlike: tagged
                result.reason = f"the same file as {first}, tagged already in this run"
            elif status is not None:
                result.reason = f"the same file as {first}, named already in this run ({first}: {status})"
        elif result.path is not None and (named := self.pending.pop(result.path, None)) is not None:
            if result.status != "tagged":
                self.unlike[named] = result.status
        return result


class Durable:
    """Threads finishing the writes: each file's fsync, then its rename, file by file.

    Several at once, because fsyncs that wait together are made durable together (ext4's
    journal commits them in one go): on a busy disk, where an fsync takes milliseconds, one
    thread would leave the batch waiting on them one after another. Daemon threads, not an
    executor's: a run stopped by SIGTERM while the disk is slow must not wait for an fsync at
    exit (``Writing.abandon`` has made sure no rename follows).
    """

    def __init__(self, dirs: set[str], threads: int = 8) -> None:
        import queue

        self.dirs = dirs
        self.jobs: queue.SimpleQueue[tuple[Writing, Finishing] | None] = queue.SimpleQueue()
        self.threads = threads
        self.started = 0

    def submit(self, step: Writing) -> Finishing:
        import threading

        finishing = Finishing()
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

    def _finish(self, job: tuple[Writing, Finishing], caught: type[BaseException]) -> None:
        step, finishing = job
        try:
            step.finish(self.dirs)
        except caught as exc:
            finishing.end(exc)
        else:
            finishing.end(None)


class Finishing:
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


class Writing:
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
ToRecord = tuple[TagResult, str, "Essence"]


def done(queue: deque[tuple[TagResult | Writing | Raw, Finishing | None]]) -> tuple[TagResult, ToRecord | None]:
    """The first file's result and its work to record, taken off ``queue`` only when its write is
    done (an interruption while waiting for it leaves it there, for ``tag_iter`` to abandon)."""
    step, finishing = queue[0]
    error = finishing.error() if finishing is not None else None
    queue.popleft()
    if isinstance(step, Raw):
        return step.result, (step.result, step.target, step.found) if step.found is not None else None
    return (step, None) if isinstance(step, TagResult) else result_of(step, error)


def given(ready: deque[tuple[TagResult, ToRecord | None]], ledger: Ledger | None, once: Once) -> Iterator[TagResult]:
    """The results of ``ready`` in order, their works recorded first, in one transaction; a
    file's second name says what became of it under its first (``once``)."""
    if ledger is not None:
        recorded(ledger, [work for _, work in ready if work is not None])
        for i, (result, _) in enumerate(ready):
            ready[i] = (result, None)  # recorded: a stop while they are given must not record them again
    while ready:
        yield once.settled(ready.popleft()[0])


def result_of(step: Writing, error: BaseException | None) -> tuple[TagResult, ToRecord | None]:
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


def recorded(ledger: Ledger, works: list[ToRecord]) -> None:
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
                recorded(ledger, [work])
            return
        result = works[0][0]
        if isinstance(exc, (RightsmetaError, sqlite3.Error)):
            result.notes.append(f"tagged, but not recorded in the ledger: {exc}")
            return
        _log_bug(f"recording {result.path} in the ledger", exc)
        result.notes.append(f"tagged, but not recorded in the ledger: internal error ({type(exc).__name__}: "
                            f"{exc}); please report it")


def tag_one(
    name: str, assertion: Assertion, dry_run: bool, options: Options, identity: Identity | None,
    record: bool, follow_links: bool, hold: Callable[[Writing], None] | None = None,
) -> TagResult | Writing | Raw:
    """One file tagged up to its rename (``record``: its essence computed, for the ledger).

    ``hold`` is given a file written (its ``Writing``, also returned) before a stop (SIGTERM,
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
    record: bool, follow_links: bool, hold: Callable[[Writing], None] | None,
) -> TagResult | Writing | Raw:
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
        step: Writing | None = None
        held_there = False
        try:
            with deferred():  # a stop waits until ``step`` has the temporary file, to remove it
                try:
                    replacement = start_write(target, _pieces(written.new), expect=before)
                except RightsmetaError as exc:
                    return TagResult(name, "failed", fmt, reason=str(exc), assertion=assertion)
                # The lock goes with the new bytes: it is released once they replaced the original.
                step = Writing(TagResult(name, "tagged", fmt, written.carriers, assertion=assertion, notes=notes),
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


class Raw(NamedTuple):
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
        _, fmt = identify(data)
    except OSError as exc:
        return Essence(None, None, None, f"the raw could not be read: {exc.strerror or exc}")
    except RightsmetaError as exc:
        return Essence(None, None, None, f"its container is not one rightsmeta reads: {exc}")
    return essence(data, fmt, probes=False)


def _tag_raw(name: str, target: str, assertion: Assertion, dry_run: bool, notes: list[str],
             record: bool) -> TagResult | Raw:
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
    return Raw(result, target, _raw_essence(target))


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


def _record(ledger: Ledger, works: list[ToRecord]) -> None:
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
