"""Values from files and file names, made safe to write: for people, for JSON, for spreadsheets.

See output.py for what each report format does with them. Kept apart from output.py so that
``read`` and ``tag`` can escape their lines without loading the report writers.
"""

from __future__ import annotations

import functools
import json
import os
import re
from typing import Any

_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


# Compiled on first use: re takes about 0.4 ms to compile a class of characters beyond Latin-1,
# and a run for machines (JSON) may never need either.
@functools.cache
def _unprintable() -> re.Pattern[str]:
    # C0 and C1 controls, DEL, line/paragraph separators, bidirectional embeddings, overrides and
    # isolates, and lone surrogates (a name's bytes that are not UTF-8, as os.fsdecode gives them).
    return re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


@functools.cache
def _surrogate() -> re.Pattern[str]:
    return re.compile("[\ud800-\udfff]")


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _escape(found: re.Match[str]) -> str:
    char = found.group()
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape's stand-in for one byte
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return _SHORT.get(char) or f"\\x{code:02x}"
    return f"\\u{code:04x}"


def printable(text: object) -> str:
    """``text`` safe on a terminal or a page: every character that could move the cursor, start
    an escape sequence, reorder the line or fail to encode is shown as a backslash escape."""
    return _unprintable().sub(_escape, text if isinstance(text, str) else str(text))


# json.dumps makes an encoder per call. Reports are trees built by to_json (never cyclic), so the
# circular-reference bookkeeping per container is skipped: about a sixth of a row's encoding.
_ENCODE = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode


def json_text(value: Any) -> str:
    """Compact JSON, valid UTF-8 whatever the names: a lone surrogate (a byte of a name that is
    not UTF-8) is written as its ``\\uXXXX`` escape, which json.loads reads back as it was."""
    text = _ENCODE(value)
    if text.isascii():  # most rows; a flag of the string, where the search scans every character
        return text
    surrogate = _surrogate()
    return surrogate.sub(lambda m: f"\\u{ord(m.group()):04x}", text) if surrogate.search(text) else text


def utf8_text(text: str) -> str:
    """``text`` as a store of UTF-8 text (SQLite, Parquet) takes it: a lone surrogate, which
    neither can encode (a byte of a name that is not UTF-8), as its escape (``\\xff``)."""
    return text if text.isascii() else _surrogate().sub(_escape, text)


def stored_path(path: str | os.PathLike[str]) -> str:
    """An absolute path as the ledger stores it (see utf8_text)."""
    return utf8_text(os.path.abspath(path))


def csv_cell(value: Any) -> Any:
    """A cell a spreadsheet shows as text: a leading formula character is neutralised with ``'``."""
    if isinstance(value, str) and len(value) > 1 and value.startswith(_FORMULA):
        return "'" + value
    return value


