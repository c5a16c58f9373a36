"""What every command's run shares, without loading click: ``echo`` of plain text, a progress
bar drawn only on a terminal, and SIGTERM handling. Below both entry points (cli_plain.py's
plain command lines and cli.py's click commands), so neither imports the other for them; the
ledger path and stale temporary files are cli_verify.py's.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


def echo(line: str, *, err: bool = False) -> None:
    """Write ``line`` as click.echo writes plain ASCII (nothing to strip or re-encode; flushed;
    nowhere when the stream is closed), without loading click."""
    stream = sys.stderr if err else sys.stdout
    if stream is not None:
        stream.write(line)
        stream.flush()


def progress(items: Iterable[T], label: str, enabled: bool, total: int | None = None) -> Iterator[T]:
    """A progress bar on a terminal only, so pipes and logs stay clean."""
    length = total if total is not None else (len(items) if isinstance(items, list) else None)
    if not enabled or (length or 0) < 2 or not sys.stderr.isatty():
        yield from items
        return
    import click

    with click.progressbar(items, length=length, label=label, file=sys.stderr) as bar:
        yield from bar


@contextmanager
def terminate_cleanly() -> Iterator[None]:
    """SIGTERM ends the run as Ctrl-C does: the file being written has its temporary file removed.

    Both stop between the steps of a write (stopping.py), never right after a temporary file is
    created, before the run knows it is there to remove. Only the command does this; the library
    installs no signal handlers (a server calls it from threads).
    """
    import signal

    from .stopping import stop

    def terminate(signum: int, frame: object) -> None:
        stop(SystemExit(128 + signum))

    def interrupt(signum: int, frame: object) -> None:
        stop(KeyboardInterrupt())

    handlers = {signal.SIGTERM: terminate}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where it is ignored (nohup, &)
        handlers[signal.SIGINT] = interrupt
    try:
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    except ValueError:  # not the main thread (the command run from a test harness's thread)
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
