"""Stopping a run on a signal (SIGTERM, Ctrl-C) between the steps of a write, never inside one.

A signal handler that raises (SystemExit, KeyboardInterrupt) does so between any two bytecodes
of the main thread: for instance right after a temporary file's create call returned, before the
file is known to the code that removes it when a run stops, which then leaves it behind (until
the next run's stale-file clean-up). Code that makes something a stop would leave behind marks
the stretch up to where it is held by its clean-up ``with deferred():``; a handler that stops
through ``stop`` raises at that block's end instead of inside it.

The library installs no signal handlers (a server calls it from threads); the command's
(cli_common.terminate_cleanly) and the tag workers' (tagpool) call ``stop``. The marks are per
thread: a handler runs in the main thread, so it waits only for the main thread's blocks, and a
server's threads calling the library mark only their own.
"""

from __future__ import annotations

import threading
from types import TracebackType

_state = threading.local()  # depth: blocks open in this thread; pending: the stop they hold back


class deferred:
    """A block that a ``stop`` waits for: raised at its end (the outermost, when nested)."""

    __slots__ = ()

    def __enter__(self) -> None:
        _state.depth = getattr(_state, "depth", 0) + 1

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        _state.depth -= 1
        if _state.depth == 0:
            pending = getattr(_state, "pending", None)
            if pending is not None:
                _state.pending = None
                raise pending


def stop(exc: BaseException) -> None:
    """For a signal handler: raise ``exc`` now, or at the end of the ``deferred`` block the main
    thread is in (the first stop asked for is the one raised)."""
    if getattr(_state, "depth", 0):
        if getattr(_state, "pending", None) is None:
            _state.pending = exc
        return
    _state.pending = None  # one held back by a block that ended just now is this stop's to replace
    raise exc


__all__ = ["deferred", "stop"]
