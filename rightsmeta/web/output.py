"""Streamed machine output of ``rightsmeta check``: a JSON array, JSON Lines or CSV, row by row.

Rows are ``WebReport.to_json`` objects (schemas/check-report.schema.json). The writer is verify's
(``rightsmeta.output.Writer``), so URLs and what servers said are escaped alike: JSON escapes
control characters, a CSV cell that would start a spreadsheet formula gets a leading ``'``.
"""

from __future__ import annotations

from typing import Any

from ..model import PURPOSES
from ..output import Writer

CSV_FIELDS = ["url", "final_url", "http_status", "status", *[p.value for p in PURPOSES], "sources", "conflicts", "errors",
              "notes", "unread"]


class CheckWriter(Writer):
    fields = CSV_FIELDS
    flush_every = 0.0  # a check takes network time: each row reaches a pipe as it is known

    def flatten(self, row: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": row["url"], "final_url": row["final_url"], "http_status": row["http_status"] or "",
            "status": row["status"], **row["effective"],
            "sources": "; ".join(s["source"] for s in row["sources"]),
            "conflicts": "; ".join(row["conflicts"]), "errors": "; ".join(row["errors"]),
            # What was ignored, and what was not read (the body without --fetch-body): without
            # them a CSV row reads as if every carrier had been looked at.
            "notes": "; ".join(row["notes"]), "unread": "; ".join(row["unread"]),
        }
