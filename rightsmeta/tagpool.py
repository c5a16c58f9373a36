"""``tag`` over many files in worker processes (``api.tag_iter(..., jobs=N)``, ``tag --jobs N``).

Each worker does a file's whole work as ``--jobs 1`` does it, with the same code (``tagging.tag_one``):
lock, read, plan, write the temporary file beside the original, fingerprint the new bytes when
there is a ledger; a thread of the worker then fsyncs that file and renames it over the original
(``tagging.Durable``: the data are durable before the rename, file by file) while the worker tags its
next file. A worker answers for a file only after its rename. The ledger has one writer, this
process: it records each work, and gives the results, in the order of the paths.

What a SIGKILL leaves, at any moment:
- of a worker: every original is either untouched (a stale temporary file of ours may remain
  beside it, which the next ``tag`` removes) or replaced whole by its tagged version. Its files
  without an answer are tagged again one at a time in a fresh worker, so the batch goes on; the
  one a worker dies on again fails, with the reason (``_DIED``).
- of this process: the workers see their pipe close, drop the writes not yet renamed and stop.
  The ledger holds the works of the results given so far, and of those about to be given (the
  results answered in order are recorded together, in one transaction, just before they are
  given): every work it holds is in its renamed file. Files renamed but not yet recorded (at
  most the window of paths taken ahead of the results: 2 x ``_DEPTH`` per worker) are tagged
  but not recorded; ``tag`` them again to record them.

Ctrl-C and SIGTERM stop the same way, without waiting for the batch: workers ignore SIGINT (a
terminal sends it to the whole process group) and this process ends them with SIGTERM, which
drops their writes not yet renamed (a worker's stop waits while a file's temporary file, just
created, is on its way into ``held``, from where it is dropped: stopping.py). A signing key
reaches the workers through their start-up pipe, never through a file.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from collections import deque
from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING, Any, cast

from . import tagging
from .carriers import Options
from .errors import UsageError
from .fsio import sync_dirs
from .reading import PathLike
from .report import TagResult
from .stopping import deferred, stop

if TYPE_CHECKING:
    import threading
    from multiprocessing.connection import Connection
    from multiprocessing.context import BaseContext

    from .fingerprint import Essence
    from .keys import Identity
    from .ledger import Ledger
    from .model import Assertion

# Files a worker holds at once: it tags the next while the previous ones are fsynced and renamed.
_DEPTH = 4
# Seconds a stopped worker gets to drop its writes and fsync its folders before it is killed.
_STOP_WAIT = 10.0
_PRELOAD = ("rightsmeta.tagpool", "rightsmeta.contentcheck", "rightsmeta.fingerprint", "rightsmeta.carriers.audio",
            "rightsmeta.carriers.pdf", "rightsmeta.carriers.manifest")
_DIED = ("the worker process tagging this file stopped before it answered, twice (killed, out of memory, or a "
         "crash inside a decoder); a write replaces a file whole, so it is either unchanged or tagged but not "
         "recorded in the ledger")

Answer = tuple[int, TagResult, "Essence | None", str | None]  # seq, result, essence to record, file written


def tag_parallel(
    paths: Iterable[PathLike],
    assertion: Assertion,
    *,
    jobs: int,
    dry_run: bool = False,
    password: str | None = None,
    identity: Identity | None = None,
    ledger: Ledger | None = None,
    follow_links: bool = True,
) -> Generator[TagResult, None, None]:
    """``api.tag_iter``'s results, the files tagged by ``jobs`` worker processes (0: one per core).

    Paths are taken from ``paths`` as the workers need them, at most a small window ahead of the
    result last given, so memory does not grow with the number of files. When the iterator is
    closed early (or Ctrl-C, SIGTERM) the workers are stopped: their files not yet renamed keep
    their original.
    """
    from multiprocessing.connection import wait

    from .log import level
    from .pool import default_jobs, start_context

    if jobs < 0:
        raise UsageError(f"jobs must be 0 (one per core) or more, not {jobs}")
    jobs = jobs or default_jobs()
    ctx = start_context(_PRELOAD + (("rightsmeta.keys",) if identity is not None else ()))
    setup = (assertion, dry_run, password, identity, ledger is not None, follow_links, level())
    workers = [_Worker(ctx, setup) for _ in range(jobs)]
    numbered = enumerate(os.fspath(p) for p in paths)
    once = tagging.Once(follow_links)
    window = 2 * _DEPTH * jobs  # paths taken but not yet given back as results
    answered: dict[int, Answer] = {}
    given = taken = 0
    more = True
    finished = False
    try:
        while True:
            due: deque[tuple[TagResult, tagging.ToRecord | None]] = deque()  # answered in order: recorded together
            while given in answered:
                _, result, found, target = answered.pop(given)
                due.append((result, (result, target, found) if found is not None and target is not None else None))
                given += 1
            yield from tagging.given(due, ledger, once)
            for worker in workers:
                while worker.feed() and more and taken - given < window:
                    job = next(numbered, None)
                    if job is None:
                        more = False
                        break
                    taken += 1
                    if (twice := once.seen(job[1], assertion)) is not None:  # answered here, not sent
                        answered[job[0]] = (job[0], twice, None, None)
                        continue
                    worker.send(*job)
            busy = [w for w in workers if w.held]
            if not busy:
                if given in answered or more:  # files answered here (named twice) still to give, or more to take
                    continue
                finished = True
                return
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
            for i, worker in enumerate(workers):
                if worker.conn in ready or worker.process.sentinel in ready:
                    answers, lost = worker.collect(worker.process.sentinel in ready)
                    for answer in answers:
                        answered[answer[0]] = answer
                    if lost is not None:  # it died: a fresh worker tags its files again, one by one
                        workers[i] = _Worker(ctx, setup, lost)
                        for seq, path in worker.failed:
                            answered[seq] = (seq, TagResult(path, "failed", reason=_DIED, assertion=assertion), None,
                                             None)
    finally:
        for worker in workers:
            worker.stop(finished)


class _Worker:
    """One worker process, the files it holds (sent, not answered), and the files it was given to
    tag again alone (``retry``: the files a worker that died held)."""

    def __init__(self, ctx: BaseContext, setup: tuple[Any, ...], retry: Iterable[tuple[int, str]] = ()) -> None:
        self.conn, child = ctx.Pipe()
        self.process: Any = cast(Any, ctx).Process(target=_work, args=(child, *setup), name="rightsmeta-tag",
                                                   daemon=True)
        self.process.start()
        child.close()  # so that the pipe ends when the worker does
        self.held: dict[int, str] = {}
        self.retry = deque(retry)
        self.alone = False  # tagging a file of ``retry``, and nothing else
        self.failed: list[tuple[int, str]] = []  # the file it died on while tagging it alone

    def feed(self) -> bool:
        """Send it a file to tag again when it is idle; whether it takes new files now (not until
        its files to tag again are done, each alone, so that the one it dies on is known)."""
        if self.retry and not self.held:
            self.send(*self.retry.popleft())
            self.alone = True
        return not self.retry and not self.alone and len(self.held) < _DEPTH

    def send(self, seq: int, path: str) -> None:
        self.held[seq] = path
        try:
            self.conn.send((seq, path))
        except OSError:  # it died: its sentinel says so, and the file stays held, to be tagged again
            pass

    def collect(self, dead: bool) -> tuple[list[Answer], list[tuple[int, str]] | None]:
        """The answers waiting; and when the worker has died (``dead``: its sentinel is ready, or
        found here), the files it held and had to tag again, else None."""
        answers: list[Answer] = []
        try:
            while self.conn.poll():
                answer: Answer = self.conn.recv()
                answers.append(answer)
                del self.held[answer[0]]
        except (EOFError, OSError):  # its end of the pipe is closed: it died, perhaps mid-answer
            dead = True
        if not self.held:
            self.alone = False
        if not dead:
            return answers, None
        self.process.join()
        self.conn.close()
        lost = sorted(self.held.items())
        if self.alone:  # it died on the one file it had: that file fails; the others are tried again
            self.failed, lost = lost, []
        self.held = {}
        return answers, lost + list(self.retry)

    def stop(self, finished: bool) -> None:
        """Finished: tell it so, and wait while it fsyncs its folders. Stopped early: SIGTERM, so
        that it drops the writes it has not renamed (killed if it does not end in time)."""
        if self.process.exitcode is None:
            if finished:
                try:
                    self.conn.send(None)
                except OSError:
                    pass
                self.process.join()
            else:
                self.process.terminate()
                self.process.join(_STOP_WAIT)
                if self.process.exitcode is None:
                    self.process.kill()
                    self.process.join()
        self.conn.close()


# --- in the worker ------------------------------------------------------------------------


def _stop(signum: int, frame: object) -> None:
    stop(SystemExit(128 + signum))  # not while a file's temporary file is on its way into ``held``


def _work(conn: Connection, assertion: Assertion, dry_run: bool, password: str | None, identity: Identity | None,
          record: bool, follow_links: bool, log_level: int | None) -> None:
    """A worker: tag each ``(seq, path)`` received, until ``None`` (the batch is done: its folders
    are fsynced), SIGTERM or the end of the pipe (stopped: what is not yet renamed is dropped)."""
    import queue
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what a Ctrl-C stops
    signal.signal(signal.SIGTERM, _stop)
    if log_level is not None:  # --debug reaches the workers too
        from .log import show

        show(log_level)
    options = Options(password=password)
    dirs: set[str] = set()
    durable = tagging.Durable(dirs)
    held: dict[int, tagging.Writing] = {}  # written, not yet answered for
    outbox: queue.SimpleQueue[tuple[int, TagResult | tagging.Writing | tagging.Raw, tagging.Finishing | None] | None] = queue.SimpleQueue()
    gone = threading.Event()  # an answer could not be sent: the parent is gone
    reporter = threading.Thread(target=_answer, args=(conn, outbox, held, gone), name="rightsmeta-answers",
                                daemon=True)
    reporter.start()

    def hold(step: tagging.Writing) -> None:  # for the file being tagged: ``seq``, set by the loop below
        held[seq] = step
        outbox.put((seq, step, durable.submit(step)))

    try:
        # Files already sent are not started once the parent is known to be gone: none would be recorded.
        while not gone.is_set() and (job := conn.recv()) is not None:
            seq, path = job
            step = tagging.tag_one(path, assertion.for_work(), dry_run, options, identity, record, follow_links, hold)
            if not isinstance(step, tagging.Writing):
                outbox.put((seq, step, None))
        outbox.put(None)
        reporter.join()
    except EOFError:  # the parent is gone
        pass
    finally:
        with deferred():  # a second SIGTERM waits until every temporary file is removed
            for step in list(held.values()):
                step.abandon()  # renamed already: nothing happens; otherwise its temporary file is removed
        durable.close()
        sync_dirs(dirs)


def _answer(conn: Connection, outbox: Any, held: dict[int, tagging.Writing], gone: threading.Event) -> None:
    """Send each file's answer to the parent once its rename is done, in the order tagged."""
    while (item := outbox.get()) is not None:
        seq, step, finishing = item
        answer: Answer
        if isinstance(step, TagResult):
            answer = (seq, step, None, None)
        elif isinstance(step, tagging.Raw):  # a raw tagged through its sidecar: nothing renamed to wait for
            answer = (seq, step.result, step.found, step.target)
        else:
            error = finishing.error()
            if step.replacement.discarded:
                # Dropped by this worker's stop (only a stop drops a file sent here), whether or not
                # its finish had begun: no answer, so the parent tags it again in a fresh worker.
                # The files after it may be renamed already (threads finish out of order): answered.
                continue
            result, work = tagging.result_of(step, error)
            # The working image is for lookups only: it is not recorded, so not sent.
            found = dataclasses.replace(work[2], view=None) if work is not None else None
            answer = (seq, result, found, step.target)
            held.pop(seq, None)
        try:
            conn.send(answer)
        except OSError:
            gone.set()
            return


__all__ = ["tag_parallel"]
