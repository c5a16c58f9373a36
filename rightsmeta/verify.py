"""The verifier: one status per file, with the reasons behind it.

    intact       signals present and consistent, any manifest valid, nothing the ledger recorded missing
    partial      some carriers gone (the XMP survived but the manifest did not, or the reverse)
    conflicting  carriers disagree about a purpose
    tampered     a C2PA manifest is present but invalid
    stripped     no signal left, but the file matches a work in the ledger
    untagged     no signal and no match
    unreadable   the file could not be parsed (reason given)

``verify`` never raises for what is inside a file, and never decodes the essence of a file that
still carries signals: matching against the ledger costs a decode, so only files with nothing
left pay for it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import TYPE_CHECKING, Any, Literal

from . import api, reading, sidecar
from .carriers.windows import sparse
from .decide import NOTHING
from .errors import RightsmetaError, TimeLimit, on_alarm
from .fsio import Buffer, open_buffer, read_path
from .model import Assertion
from .report import FileReport, states
from .vocab import Signal, iptc, tdmrep

if TYPE_CHECKING:  # the ledger and the decoders load only when a scan matches against a ledger
    from .ledger import Ledger, Match

Status = Literal["intact", "partial", "conflicting", "tampered", "stripped", "untagged", "unreadable"]
STATUSES: tuple[Status, ...] = ("intact", "partial", "conflicting", "tampered", "stripped", "untagged", "unreadable")
XMP_WRITABLE = ("jpeg", "png", "webp", "tiff")

# Projections rightsmeta writes beside its exact record in the same carrier: XMP holds both;
# the key/value carriers (ID3, Vorbis comments, MP4 atoms, the PDF Info dictionary, the EPUB
# package document) hold TDMRep's only, as they have no IPTC field.
_PROJECTIONS = {iptc.NAME: (iptc.encode, "plus:DataMining"), tdmrep.NAME: (tdmrep.encode, "tdm:reservation")}
_XMP_ONLY = frozenset({iptc.NAME})


# Most files of a scan state nothing: the JSON of that decision is made once (and copied per
# row, which its reader may change).
_UNSTATED = states(NOTHING.permissions), states(NOTHING.effective)


@dataclass
class Verdict:
    path: str | None
    status: Status
    reasons: list[str] = field(default_factory=list)
    report: FileReport | None = None
    match: Match | None = None
    also: list[Match] = field(default_factory=list)  # further works the file matched

    def to_json(self) -> dict[str, Any]:
        report = self.report
        decision = report.decision if report is not None else NOTHING
        unstated = decision is NOTHING
        out: dict[str, Any] = {
            "path": self.path,
            "format": report.format if report is not None else None,
            "status": self.status,
            "reasons": list(self.reasons),
            "permissions": dict(_UNSTATED[0]) if unstated else states(decision.permissions),
            "effective": dict(_UNSTATED[1]) if unstated else states(decision.effective),
            "carriers": [c.name for c in report.carriers] if report is not None else [],
            "match": None,
        }
        if self.match is not None:
            work = self.match.work
            out["match"] = {
                "work_id": work.id,
                "path": work.path or None,
                "format": work.format,
                "distance": round(self.match.distance, 4),
                "exact": self.match.exact,
                "assertion": work.assertion.to_json(),
                "source": getattr(work, "source", None),
            }
            if self.match.how:
                out["match"]["how"] = self.match.how
            if self.also:
                out["match"]["also"] = [
                    {"work_id": m.work.id, "path": m.work.path or None, "distance": round(m.distance, 4), "exact": m.exact,
                     "source": m.work.source, "assertion": m.work.assertion.to_json()}
                    for m in self.also
                ]
            from .decide import umbrella
            from .ledger import combined

            # The copy is to be honoured as its work would be, data-mining umbrella included.
            stated = combined([self.match, *self.also])
            out["permissions"], out["effective"] = states(stated), states(umbrella(stated))
        return out

    def without_paths(self) -> Verdict:
        """The verdict for someone other than the ledger's owner (a service's client): the works
        it matched are named by their ids, not by where on the tagging machine their files are."""
        if self.match is None:
            return self
        found = [replace(m, work=replace(m.work, path="")) for m in (self.match, *self.also)]
        return replace(self, reasons=_stripped(found), match=found[0], also=found[1:])


def _stripped(found: list[Match]) -> list[str]:
    # Every work it matches is named; the permissions are the most restrictive among them.
    return [f"no signal left, but it matches {m.describe()}" for m in found]


def _work_id(signals: list[Signal]) -> str | None:
    for found in signals:
        if found.exact and found.raw.get("WorkID"):
            return str(found.raw["WorkID"])
    return None


def _missing(report: FileReport, ledger: Ledger | None, signals: list[Signal]) -> list[str]:
    """Carriers that should be there and are not (``signals``: the report's)."""
    present = {c.name for c in report.carriers}
    missing: list[str] = []
    work_id = _work_id(signals)
    if ledger is not None and work_id:
        work = ledger.get(work_id)
        if work is not None:
            missing += [f"{name} (recorded in the ledger)" for name in work.carriers if name not in present]
    # The exact record implies its projections in the same carrier; one gone means an edit stripped it.
    for carrier in report.carriers:
        exact = [s for s in carrier.signals if s.exact and s.vocabulary != "cawg"]
        if not exact:
            continue
        vocabularies = {s.vocabulary for s in carrier.signals if any(p.state.value != "unspecified" for p in s.permissions.values())}
        record = Assertion(permissions=exact[0].permissions)
        for name, (encode, prop) in _PROJECTIONS.items():
            if name in _XMP_ONLY and carrier.name != "xmp":
                continue
            expected = encode(record)
            if expected is None or name in vocabularies:
                continue
            # When no DataMining code is true of the record (e.g. only ai-training denied), the IPTC
            # projection is our sentence in plus:OtherConstraints alone, which states no code.
            if name == iptc.NAME and expected.get("DataMining") is None:
                if any(s.vocabulary == name for s in carrier.signals):
                    continue
                prop = "plus:OtherConstraints"
            missing.append(f"{prop} in {carrier.name}")
    # A manifest rightsmeta signed sits beside XMP wherever XMP can be written.
    manifest = next((c for c in report.carriers if c.name == "c2pa"), None)
    if manifest is not None and "rightsmeta" in (manifest.values.get("claim_generator") or []):
        if report.format in XMP_WRITABLE and "xmp" not in present:
            missing.append("xmp (the rightsmeta manifest is there, its XMP is not)")
    return sorted(set(missing))


def classify(report: FileReport, *, ledger: Ledger | None = None, data: Any = None, password: str | None = None) -> Verdict:
    """The status of one read report; ``data`` (the file's bytes) is decoded only for ledger matching
    (``password``: an encrypted PDF's, as it was read)."""
    # Before the errors: an invalid manifest is itself an error of the report (it fails closed),
    # and "tampered" says more than "unreadable".
    invalid = [c for c in report.carriers if c.values.get("validation_state") == "Invalid"]
    if invalid:
        codes = [code for c in invalid for code in c.values.get("failures", [])]
        return Verdict(report.path, "tampered", [f"C2PA manifest invalid: {', '.join(codes) or 'no reason given'}"], report)
    if report.format is None or report.errors:
        return Verdict(report.path, "unreadable", list(report.errors) or ["unreadable"], report)
    if report.conflicts:
        return Verdict(report.path, "conflicting", list(report.conflicts), report)
    signals = report.signals
    if signals:
        missing = _missing(report, ledger, signals)
        if missing:
            return Verdict(report.path, "partial", [f"missing: {m}" for m in missing], report)
        names = ", ".join(sorted({c.name for c in report.carriers if c.signals}))
        reasons = [f"signals in {names}"]
        if all(c.name == sidecar.CARRIER for c in report.carriers if c.signals):
            reasons.append("only in a sidecar beside the file, which does not travel with it: a copy of the file alone carries none")
        return Verdict(report.path, "intact", reasons, report)
    if ledger is not None and data is not None:
        from .cropsearch import matches as ledger_matches
        from .ledger import current

        essence = ledger.essence_of(bytes(data), report.format, password)
        if not essence.decoded:  # not compared with the ledger is not "no match": fail closed
            return Verdict(report.path, "unreadable", [f"content not matched against the ledger: {essence.reason}"], report)
        # With the search for uneven crops of images; a work re-tagged here counts as last tagged.
        found = current(ledger_matches(ledger, essence))
        if found:
            return Verdict(report.path, "stripped", _stripped(found), report, found[0], found[1:])
        if essence.perceptual is None and essence.reason:  # no near copy could have been found
            return Verdict(report.path, "untagged", ["no rights signal found", f"only an exact copy is recognised ({essence.reason})"],
                           report)
    return Verdict(report.path, "untagged", ["no rights signal found"], report)


def verify(
    source: reading.Source,
    *,
    ledger: Ledger | None = None,
    password: str | None = None,
    trust_anchors: bytes | None = None,
    memory: int | None = None,
    sidecars: bool = True,
) -> Verdict:
    """Read and classify one file (path, bytes or binary file object); one that would take more
    than ``memory`` bytes to hold is refused unread (``unreadable``). A path's XMP sidecars are
    read with it (``sidecars=False``: the file alone, as an upload is)."""
    name = reading.name_of(source)
    # Without a ledger nothing decodes the essence, so large TIFFs and WAVs are read only where
    # their structure and metadata are (carriers/windows.py); matching needs every byte.
    windows = sparse if ledger is None else None
    try:
        if isinstance(source, (str, os.PathLike)):  # most of a scan: read without a context's cost
            buf = read_path(source, windows, memory)
        else:
            with open_buffer(source, windows, memory) as buf:
                return _classified(buf, name, ledger, password, trust_anchors)
        return _classified(buf, name, ledger, password, trust_anchors, os.fspath(source) if sidecars else None)
    except OSError as exc:
        return Verdict(name, "unreadable", [f"cannot read file: {exc.strerror or exc}"])
    except RightsmetaError as exc:  # not a regular file, or too large to read
        return Verdict(name, "unreadable", [str(exc)])


def _classified(buf: Buffer, name: str | None, ledger: Ledger | None, password: str | None,
                anchors: bytes | None, beside: str | None = None) -> Verdict:
    report = api.read(buf, name=name, password=password, trust_anchors=anchors, beside=beside)
    return classify(report, ledger=ledger, data=buf if ledger is not None else None, password=password)


# --- many files, in parallel, with a bound per file ----------------------------------------

_WORKER: dict[str, Any] = {}  # a worker process's own: what _setup gave it


def _init_worker(
    ledger_path: str | None, password: str | None, anchors: bytes | None, seconds: float, memory: int,
    log_level: int | None = None,
) -> None:
    _WORKER.update(_setup(ledger_path, password, anchors, seconds, memory, log_level, worker=True))


def _setup(
    ledger_path: str | None, password: str | None, anchors: bytes | None, seconds: float, memory: int,
    log_level: int | None, *, worker: bool,
) -> dict[str, Any]:
    """What each file's verification uses: a worker's (its process limit set) or, in the calling
    process, one scan's own (no process limit; threads may each run a scan)."""
    if log_level is not None:  # --debug reaches the workers too
        from .log import show

        show(log_level)

    limit = 0
    if memory and worker:  # worker processes only: a scan in this process loads no resource module
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory if hard == resource.RLIM_INFINITY else min(memory, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    if ledger_path:
        from .ledger import Ledger
    if seconds:
        try:
            signal.signal(signal.SIGALRM, on_alarm)
        except ValueError:  # not the main thread (e.g. inside a server): no alarm can reach us
            seconds = 0
    return {"ledger": Ledger.open(ledger_path, readonly=True) if ledger_path else None, "password": password,
            "anchors": anchors, "seconds": seconds, "memory": memory or None, "limit": limit}


def _verify_one(path: str, context: dict[str, Any]) -> dict[str, Any]:
    with _room_for_windows(path, context):  # outside the alarm: a TimeLimit must not cut short its restoring
        return _verify_timed(path, context)


def _verify_timed(path: str, context: dict[str, Any]) -> dict[str, Any]:
    seconds = float(context.get("seconds") or 0)
    if seconds:
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        source: reading.Source = sys.stdin.buffer if path == "-" else path  # "-": an upload piped in
        verdict = verify(source, ledger=context.get("ledger"), password=context.get("password"),
                         trust_anchors=context.get("anchors"), memory=context.get("memory"))
        verdict.path = path
        return verdict.to_json()
    except TimeLimit:
        return Verdict(path, "unreadable", [f"gave up after {seconds:g} s"]).to_json()
    except MemoryError:
        return Verdict(path, "unreadable", ["needed more memory than the per-file limit"]).to_json()
    except Exception as exc:  # a bug of ours must not end a scan: said, not hidden
        return Verdict(path, "unreadable", [f"rightsmeta failed on this file ({type(exc).__name__}: {exc}); please report it"]).to_json()
    finally:
        if seconds:
            signal.setitimer(signal.ITIMER_REAL, 0)


@contextlib.contextmanager
def _room_for_windows(path: str, context: dict[str, Any]) -> Iterator[None]:
    """A worker's address-space limit raised, for this file only, by the size of a file too large
    to be read whole that may still be read in windows (no ledger: carriers/windows.py). Their map
    spans the file's length, but only the windows read take memory; the bound on the rest stays."""
    limit = int(context.get("limit") or 0)
    try:
        size = os.stat(path).st_size if limit and path != "-" and context.get("ledger") is None else 0
    except OSError:  # said by the read itself
        size = 0
    if size <= limit:
        yield
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (soft + size if hard == resource.RLIM_INFINITY else min(soft + size, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def verify_many(
    paths: Iterable[str],
    *,
    ledger_path: str | None = None,
    jobs: int = 1,
    password: str | None = None,
    trust_anchors: bytes | None = None,
    seconds: float = 30.0,
    memory: int = 2 * 1024**3,
) -> Iterator[dict[str, Any]]:
    """Verdicts (as JSON objects) in input order, streamed; memory stays flat in the number of files.

    ``paths`` may be a generator (e.g. ``api.walk``), consumed as the scan goes: no list of
    every path is held.

    A path ``"-"`` is standard input (read in the calling process, so with ``jobs=1``).

    Each file runs under a time limit (``seconds``) and, in worker processes, an address-space
    limit (``memory`` bytes), so one hostile file costs at most that and the scan goes on. With
    ``jobs=1`` no process limit is set (the caller may be a server's thread); there, as in the
    workers, a file that would take more than ``memory`` to hold whole is refused unread. A
    worker that dies is noticed (no hang): the files it held are read again, one at a time, and
    the one it dies on is reported ``unreadable``.
    """
    if jobs <= 1:
        # No process limit here (this may be a server's thread): files beyond ``memory`` are refused unread.
        context = _setup(ledger_path, password, trust_anchors, seconds, memory, None, worker=False)
        try:
            for path in paths:
                yield _verify_one(path, context)
        finally:
            if context["ledger"] is not None:
                context["ledger"].close()
        return
    from concurrent.futures import Future, ProcessPoolExecutor

    from .log import level
    from .pool import executor as start

    initargs = (ledger_path, password, trust_anchors, seconds, memory, level())

    def pool(workers: int) -> ProcessPoolExecutor:
        # Workers fork from a server that imported the readers once, rather than each import them.
        return start(workers, _init_worker, initargs, preload=_PRELOAD)

    chunks = _chunks(paths, jobs)
    # A bounded window of chunks in flight, so rows stream in order and memory stays flat.
    window: deque[tuple[list[str], Future[list[dict[str, Any]]] | None]] = deque()
    executor = pool(jobs)
    finished = False
    try:
        while True:
            for part in chunks:
                window.append((part, _submit(executor, _verify_chunk, part)))
                if len(window) >= jobs * 2:
                    break
            if not window:
                finished = True
                return
            part, future = window.popleft()
            rows = _result(future)
            if rows is not None:
                yield from rows
                continue
            # A worker died (killed, out of memory, a crash inside a decoder): the pool is broken
            # and every chunk in flight with it. What finished is kept; the rest is read again one
            # file at a time, so the file that kills a worker is found and reported, and the scan
            # goes on with a fresh pool.
            executor.shutdown(wait=True, cancel_futures=True)
            lost = [(part, None)] + [(p, _result(f) if f is not None and f.done() else None) for p, f in window]
            window.clear()
            yield from _isolated(lost, pool)
            executor = pool(jobs)
    finally:
        if not finished:
            # Stopped early (the consumer went away, Ctrl-C): the workers may be minutes into a
            # chunk; stop them, as multiprocessing.Pool's exit did, rather than wait.
            for process in list((getattr(executor, "_processes", None) or {}).values()):
                process.terminate()
        executor.shutdown(wait=finished, cancel_futures=True)
        if finished and ledger_path is not None:
            # The workers' read-only connections ended with them, leaving -wal and -shm (see drop_wal).
            from pathlib import Path

            from .ledger import drop_wal

            drop_wal(Path(ledger_path))


_PRELOAD = ("rightsmeta.verify", "rightsmeta.carriers.audio", "rightsmeta.carriers.pdf", "rightsmeta.carriers.manifest")


def _chunks(paths: Iterable[str], jobs: int) -> Iterator[list[str]]:
    """Chunks of paths for the workers: big ones spare the pool a round trip per file (up to 64);
    the first are small, so that every worker has files at once however few there are (the
    number of paths is not known: they may be streamed from a walk)."""
    size = 1
    it = iter(paths)
    while part := list(islice(it, size)):
        yield part
        if size < 64:
            size = min(64, size * 2)


_DIED = ("the worker process verifying this file stopped before it answered (killed, out of memory, "
         "a crash inside a decoder, or it could not start); the scan went on")


def _verify_chunk(paths: list[str]) -> list[dict[str, Any]]:
    return [_verify_one(path, _WORKER) for path in paths]


def _submit(executor: Any, fn: Any, arg: Any) -> Any:
    from concurrent.futures.process import BrokenProcessPool

    try:
        return executor.submit(fn, arg)
    except BrokenProcessPool:  # broken by a death not yet seen through a result
        return None


def _result(future: Any) -> list[dict[str, Any]] | None:
    """The rows of a chunk; None when its worker died."""
    from concurrent.futures.process import BrokenProcessPool

    if future is None:
        return None
    try:
        return future.result()  # type: ignore[no-any-return]
    except BrokenProcessPool:
        return None


def _isolated(chunks: list[tuple[list[str], list[dict[str, Any]] | None]], pool: Any) -> Iterator[dict[str, Any]]:
    """The rows of chunks, in order: those already answered as they are, the others read one file
    at a time in a pool of one worker, so that when it dies the file it was reading is the one."""
    executor = None
    try:
        for paths, answered in chunks:
            if answered is not None:
                yield from answered
                continue
            for path in paths:
                executor = executor or pool(1)
                rows = _result(_submit(executor, _verify_chunk, [path]))
                if rows is None:
                    executor.shutdown(wait=True, cancel_futures=True)
                    executor = None
                    rows = [Verdict(path, "unreadable", [_DIED]).to_json()]
                yield from rows
    finally:
        if executor is not None:
            executor.shutdown(wait=True)


__all__ = ["STATUSES", "Status", "Verdict", "classify", "verify", "verify_many"]
