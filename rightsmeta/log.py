"""The ``rightsmeta`` logger: what the library did that a report does not show.

The fast readers (carriers/audiotags.py, carriers/pdfobjects.py) hand what they are not sure of
to mutagen or pypdf. That is expected for unusual files and logged at DEBUG; any other exception
in a fast reader is a bug of ours that only made the read slower, logged as a WARNING with its
traceback so that it is seen (``rightsmeta --debug`` shows both). A fast reader mostly steps
aside with a bare ``raise LeaveToLibrary  # why``: the DEBUG line then names the line that raised
it and that comment, read from the source file only when DEBUG is shown. The library adds only a
``NullHandler``: an application decides where its log goes. ``logging`` is imported on the first
fallback, so a scan that never falls back never loads it.
"""

from __future__ import annotations

NAME = "rightsmeta"


def fell_back(reader: str, fallback: str, exc: BaseException, *, expected: tuple[type[BaseException], ...]) -> None:
    """Record that ``reader`` gave the file to ``fallback`` because of ``exc``."""
    import logging

    log = logging.getLogger(NAME)
    if not log.handlers:
        log.addHandler(logging.NullHandler())
    if isinstance(exc, expected):
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s left the file to %s: %s", reader, fallback, _reason(exc))
    else:
        log.warning("%s failed (%s: %s), a bug of rightsmeta; %s read the file instead",
                    reader, type(exc).__name__, exc, fallback, exc_info=exc)


def _reason(exc: BaseException) -> str:
    """What ``exc`` says; for one raised without a message, where (file, line, function) and
    the comment on that line, which in the fast readers says why."""
    if str(exc):
        return str(exc)
    tb = exc.__traceback__
    if tb is None:
        return type(exc).__name__
    while tb.tb_next is not None:
        tb = tb.tb_next
    code, line = tb.tb_frame.f_code, tb.tb_lineno
    where = f"{type(exc).__name__} at {code.co_filename.rpartition('/')[2]}:{line} ({code.co_name})"
    # Read here rather than through linecache: no cache kept for the process, and this runs
    # only with DEBUG shown. An inline comment is "  # ...", after the code.
    try:
        with open(code.co_filename, encoding="utf-8") as source:
            text = next((t for n, t in enumerate(source, 1) if n == line), "")
    except (OSError, UnicodeDecodeError):
        text = ""
    comment = text.rpartition("  # ")[2].strip() if "  # " in text else ""
    return f"{where}: {comment}" if comment else where


def show(level: int | None = None) -> None:
    """Print the ``rightsmeta`` log on standard error, from DEBUG unless ``level`` says otherwise."""
    import logging
    import sys

    log = logging.getLogger(NAME)
    log.setLevel(logging.DEBUG if level is None else level)
    if not any(getattr(h, "stream", None) is sys.stderr for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("rightsmeta: %(levelname)s: %(message)s"))
        log.addHandler(handler)


def level() -> int | None:
    """The level ``show`` set, for worker processes to show the same; None when never set."""
    import sys

    logging = sys.modules.get("logging")
    if logging is None:
        return None
    found: int = logging.getLogger(NAME).level
    return found or None
