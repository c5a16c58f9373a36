"""The local engine: shards fed to worker processes started once; rows come back in shard order."""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

from .shards import COPY_FAILED, NOT_WRITTEN, NOT_WRITTEN_MARK, Row, ScanOptions, iter_shard, shard_row
from .sources import Shard

# A worker process's own options and spool folder (what ``_init`` gave it). Only worker processes
# read them: a scan in the caller's process passes its options along, so two scans there (a
# server's threads) never decide by each other's.
_WORKER: dict[str, Any] = {}


def _init(options: ScanOptions, folder: str) -> None:
    import signal

    _WORKER["options"] = options
    _WORKER["folder"] = folder
    # The caller decides what a Ctrl-C stops; its pool ends the workers with SIGTERM, which
    # unwinds the shard as a stop does: the copy being written to --out has its temporary file
    # removed (it was left there, killed).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)


def _stop(signum: int, frame: object) -> None:
    from ..stopping import stop

    stop(SystemExit(128 + signum))


def _rows(shard: Shard, options: ScanOptions) -> Iterator[Row]:
    try:
        yield from iter_shard(shard, options)
    except MemoryError:
        yield shard_row(shard, "needed more memory than this machine gave the worker", options.purpose)
    except Exception as exc:  # a bug of ours must not stop a scan of millions: said, not hidden
        yield shard_row(shard, f"rightsmeta failed on this shard ({type(exc).__name__}: {exc}); please report it",
                        options.purpose)


def _spool(shard: Shard) -> tuple[str, str | None]:
    """A worker's answer: (the file in the scan's spool folder holding the shard's rows, pickled
    one after another; why the rows are not all there, or None). Only the name goes back: neither
    the worker nor the caller holds a shard's rows at once (a shard of 100k samples is 100k rows)."""
    options: ScanOptions = _WORKER["options"]
    fd, path = tempfile.mkstemp(dir=_WORKER["folder"], suffix=".rows")
    try:
        with os.fdopen(fd, "wb") as fh:
            for row in _rows(shard, options):
                pickle.dump(row, fh, protocol=pickle.HIGHEST_PROTOCOL)
    except OSError as exc:  # the spool folder's disk is full: the rows written so far are given, all dropped
        why = f"its report rows could not be kept for the scan ({exc.strerror or exc}): rows are missing"
        if options.out_dir is not None and shard.kind != "folder":
            out = os.path.join(options.out_dir, shard.name)
            try:
                os.unlink(out)  # the copy holds samples the report does not name
                why += NOT_WRITTEN
            except OSError:
                why += f"; {NOT_WRITTEN_MARK}, and what is at {out} is not this run's (not removed)"
        return path, why
    return path, None


def _unspool(shard: Shard, path: str, failed: str | None, options: ScanOptions) -> Iterator[Row]:
    """The rows ``_spool`` wrote; when they are not all there, none of the shard's is kept."""
    try:
        with open(path, "rb") as fh:
            while True:
                try:
                    row: Row = pickle.load(fh)
                except EOFError:
                    break
                if failed is not None and options.out_dir is not None and row["decision"] == "keep":
                    row["decision"] = "drop"
                    row["reasons"] = [COPY_FAILED, *row["reasons"]]
                yield row
    finally:
        with contextlib.suppress(FileNotFoundError):  # the folder already removed (the scan stopped)
            os.unlink(path)
    if failed is not None:
        yield shard_row(shard, failed, options.purpose)


def scan_local(shards: Sequence[Shard], options: ScanOptions, *, jobs: int = 1) -> Iterator[Row]:
    """Report rows of every shard, streamed shard by shard in the order given.

    With ``jobs`` > 1, that many processes start once and are fed one shard at a time, so the
    load balances over shards of different sizes; each writes its shard's rows to a file of the
    scan's temporary folder (a few hundred bytes per sample) and sends back its name.
    """
    if jobs <= 1 or len(shards) <= 1:
        for shard in shards:
            yield from _rows(shard, options)  # row by row: memory flat in the shard's size too
        return
    from ..pool import start_context

    # each worker forks with the readers already imported, not importing them itself
    ctx: Any = start_context(preload=["rightsmeta.datasets.local", "rightsmeta.carriers"])
    # The folder goes after the pool: files of shards whose rows were never read (the caller
    # stopped early) go with it.
    with tempfile.TemporaryDirectory(prefix="rightsmeta-scan-") as folder, \
            ctx.Pool(min(jobs, len(shards)), _init, (options, folder)) as pool:
        for shard, (path, failed) in zip(shards, pool.imap(_spool, shards, chunksize=1), strict=True):
            yield from _unspool(shard, path, failed, options)
