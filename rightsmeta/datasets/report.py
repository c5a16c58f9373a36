"""The scan report: one row per sample (and one per shard that could not be read to its end).

Written as JSON Lines or Parquet (``schemas/scan-report.schema.json`` describes a row), streamed:
rows are written as shards finish, and the file replaces its target only when complete.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from types import TracebackType
from typing import IO, Any

from ..errors import UsageError
from ..escape import json_text, utf8_text
from ..fsio import replacing
from .shards import Row

COLUMNS = ("shard", "key", "format", "purpose", "permission", "decision", "reasons", "sources", "errors")
_FLUSH_ROWS = 4096


def _arrow_schema() -> Any:
    import pyarrow as pa

    text = pa.string()
    return pa.schema([
        ("shard", text), ("key", text), ("format", text), ("purpose", text), ("permission", text),
        ("decision", text), ("reasons", pa.list_(text)), ("sources", pa.list_(text)), ("errors", pa.list_(text)),
    ])


def _text(value: Any) -> Any:
    """A row's value as Parquet's UTF-8 strings take it: names from a shard need not be UTF-8."""
    if isinstance(value, str):
        return utf8_text(value)
    if isinstance(value, list):
        return [_text(v) for v in value]
    return value


class ReportWriter:
    """``with ReportWriter(path) as w: w.write(row)``; the format follows the file name."""

    def __init__(self, path: str) -> None:
        lower = path.lower()
        if lower.endswith((".jsonl", ".ndjson")):
            self.kind = "jsonl"
        elif lower.endswith((".parquet", ".pq")):
            self.kind = "parquet"
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise UsageError("a Parquet report needs pyarrow: pip install 'rightsmeta[datasets]'") from None
        else:
            raise UsageError(f"{path}: the report is written as .jsonl or .parquet")
        self.path = path
        self._stack = contextlib.ExitStack()
        self._fh: IO[bytes] | None = None
        self._parquet: Any = None
        self._pending: list[Row] = []

    def __enter__(self) -> ReportWriter:
        self._fh = self._stack.enter_context(replacing(self.path))
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            self._parquet = self._stack.enter_context(pq.ParquetWriter(self._fh, _arrow_schema()))
        return self

    def write(self, row: Row) -> None:
        if self.kind == "jsonl":
            assert self._fh is not None
            self._fh.write(json_text(row).encode() + b"\n")
            return
        self._pending.append(row)
        if len(self._pending) >= _FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            import pyarrow as pa

            self._parquet.write_table(pa.Table.from_pylist([{c: _text(r.get(c)) for c in COLUMNS} for r in self._pending],
                                                           schema=_arrow_schema()))
            self._pending = []

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None and self.kind == "parquet":
            self._flush()
        self._stack.__exit__(kind, exc, tb)


def read_report(path: str) -> Iterator[Row]:
    """Rows of a report written by :class:`ReportWriter` (either format)."""
    if path.lower().endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches():
            yield from batch.to_pylist()
        return
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)
