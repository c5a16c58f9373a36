"""Streamed machine output of ``rightsmeta check``: a JSON array, JSON Lines or CSV, row by row.

Rows are ``WebReport.to_json`` objects (schemas/check-report.schema.json).
"""

from __future__ import annotations

import csv
import json
from typing import IO, Any

from ..model import PURPOSES

CSV_FIELDS = ["url", "final_url", "http_status", "status", *[p.value for p in PURPOSES], "sources", "conflicts", "errors"]


class CheckWriter:
    def __init__(self, fh: IO[str], fmt: str) -> None:
        self.fh, self.fmt, self.count = fh, fmt, 0
        self._dumps = json.JSONEncoder(ensure_ascii=False).encode
        self._csv = csv.DictWriter(fh, CSV_FIELDS) if fmt == "csv" else None
        if self._csv:
            self._csv.writeheader()
        elif fmt == "json":
            fh.write("[")

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "jsonl":
            self.fh.write(self._dumps(row) + "\n")
        elif self.fmt == "json":
            self.fh.write(("," if self.count else "") + "\n" + self._dumps(row))
        elif self._csv:
            self._csv.writerow({
                "url": row["url"], "final_url": row["final_url"], "http_status": row["http_status"] or "",
                "status": row["status"], **row["effective"],
                "sources": "; ".join(s["source"] for s in row["sources"]),
                "conflicts": "; ".join(row["conflicts"]), "errors": "; ".join(row["errors"]),
            })
        self.count += 1
        self.fh.flush()  # a check takes network time: each row reaches a pipe as it is known

    def close(self) -> None:
        if self.fmt == "json":
            self.fh.write("\n]\n" if self.count else "]\n")
        self.fh.flush()
