"""The local engine: shards fed to worker processes started once; rows come back in shard order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .shards import Row, ScanOptions, iter_shard, shard_row
from .sources import Shard

# A worker process's own options (what ``_init`` gave it). Only worker processes read them: a scan in
# the caller's process passes its options along, so two scans there (a server's threads) never
# decide by each other's.
_WORKER: dict[str, ScanOptions] = {}


def _init(options: ScanOptions) -> None:
    _WORKER["options"] = options


def _rows(shard: Shard, options: ScanOptions) -> Iterator[Row]:
    try:
        yield from iter_shard(shard, options)
    except MemoryError:
        yield shard_row(shard, "needed more memory than this machine gave the worker", options.purpose)
    except Exception as exc:  # a bug of ours must not stop a scan of millions: said, not hidden
        yield shard_row(shard, f"rightsmeta failed on this shard ({type(exc).__name__}: {exc}); please report it",
                        options.purpose)


def _one(shard: Shard, options: ScanOptions | None = None) -> list[Row]:
    """A worker's answer: the shard's rows (one message back per shard), by ``options`` or the
    worker's own."""
    return list(_rows(shard, options or _WORKER["options"]))


def scan_local(shards: Sequence[Shard], options: ScanOptions, *, jobs: int = 1) -> Iterator[Row]:
    """Report rows of every shard, streamed shard by shard in the order given.

    With ``jobs`` > 1, that many processes start once and are fed one shard at a time, so the
    load balances over shards of different sizes; each sends its shard's rows back in one message
    (a few hundred bytes per sample).
    """
    if jobs <= 1 or len(shards) <= 1:
        for shard in shards:
            yield from _rows(shard, options)  # row by row: memory flat in the shard's size too
        return
    from ..pool import start_context

    # each worker forks with the readers already imported, not importing them itself
    ctx: Any = start_context(preload=["rightsmeta.datasets.local", "rightsmeta.carriers"])
    with ctx.Pool(min(jobs, len(shards)), _init, (options,)) as pool:
        for rows in pool.imap(_one, shards, chunksize=1):
            yield from rows
