"""Report writers for verify: streamed JSON, JSON Lines and CSV for machines; one HTML page for people.

The machine formats are written row by row as verdicts arrive, so memory stays flat however
many files are scanned. The HTML page is self-contained (no scripts or styles fetched).

Values in a report come from files and file names nobody vetted, so nothing is written raw:

- text for people (the CLI's lines, the HTML page) shows control characters, line and
  paragraph separators, bidirectional overrides and the bytes of a name that is not UTF-8 as
  escapes (``escape.printable``): a newline in ``dc:rights`` or in a file name cannot forge a line, an
  escape sequence in an ID3 ``TCOP`` cannot retitle the terminal;
- JSON escapes them too (``json_text``), the bytes of a name that is not UTF-8 as ``\\udcXX``,
  which ``json.loads`` then ``os.fsencode`` turn back into the name's bytes;
- CSV keeps a name's bytes as they are (``os.fsencode``), and a cell that starts with ``=``,
  ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'`` so that a spreadsheet
  shows it as text instead of running it as a formula (``csv_cell``).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterable
from typing import IO, Any

from .escape import csv_cell, json_text, printable
from .model import PURPOSES

CSV_FIELDS = ["path", "format", "status", *[p.value for p in PURPOSES], "reasons", "match_path", "match_distance"]


class Writer:
    """Streams verdicts (JSON objects as in schemas/verify-report.schema.json) in one format.

    Subclasses for other reports name their CSV columns and say how a row flattens into them.
    """

    fields: list[str] = CSV_FIELDS
    #: Seconds between flushes. Rows reach a pipe as files finish, a few times a second: a flush
    #: per row would cost a system call per file of a million-file scan.
    flush_every = 0.2

    def __init__(self, fh: IO[str], fmt: str) -> None:
        self.fh, self.fmt, self.count = fh, fmt, 0
        self._flushed = time.monotonic()
        self._csv = None
        if fmt == "csv":  # csv, like html and tempfile below, loads only when used: JSON scans start sooner
            import csv

            self._csv = csv.DictWriter(fh, self.fields)
        if self._csv:
            self._csv.writeheader()
        elif fmt == "json":
            fh.write("[")

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "jsonl":
            self.fh.write(json_text(row) + "\n")
        elif self.fmt == "json":
            self.fh.write(("," if self.count else "") + "\n" + json_text(row))
        elif self._csv:
            self._csv.writerow({key: csv_cell(value) for key, value in self.flatten(row).items()})
        self.count += 1
        now = time.monotonic()
        if now - self._flushed >= self.flush_every:
            self.fh.flush()
            self._flushed = now

    def flatten(self, row: dict[str, Any]) -> dict[str, Any]:
        match = row.get("match") or {}
        return {
            "path": row["path"], "format": row["format"], "status": row["status"],
            **row["permissions"],
            "reasons": "; ".join(row["reasons"]),
            "match_path": match.get("path", ""), "match_distance": match.get("distance", ""),
        }

    def close(self) -> None:
        if self.fmt == "json":
            self.fh.write("\n]\n" if self.count else "]\n")
        self.fh.flush()


_COLOURS = {
    "intact": "#1b7f3b", "partial": "#b26a00", "conflicting": "#8a4baf", "tampered": "#c62828",
    "stripped": "#d84315", "untagged": "#607d8b", "unreadable": "#37474f",
}


def _html_row(r: dict[str, Any]) -> str:
    import html

    def esc(text: str) -> str:
        return html.escape(printable(text))

    colour = _COLOURS.get(r["status"], "#000")
    denied = [p for p, s in r["permissions"].items() if s in ("notAllowed", "constrained")]
    return (
        f'<tr data-status="{esc(r["status"])}"><td class="p">{esc(str(r["path"]))}</td><td>{esc(str(r["format"] or ""))}</td>'
        f'<td><span class="s" style="background:{colour}">{esc(r["status"])}</span></td>'
        f'<td>{esc(", ".join(denied)) or "&mdash;"}</td>'
        f'<td>{"<br>".join(esc(x) for x in r["reasons"])}</td></tr>\n'
    )


def _html_head(counts: Counter[str], total: int, title: str) -> str:
    import html

    def esc(text: str) -> str:
        return html.escape(printable(text))

    buttons = "".join(
        f'<button data-status="{s}" style="border-color:{c}"><b style="color:{c}">{counts.get(s, 0)}</b> {s}</button>'
        for s, c in _COLOURS.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}}
h1{{font-size:20px}} .bar{{display:flex;flex-wrap:wrap;gap:.5em;margin:1em 0}}
button{{background:#fff;border:2px solid;border-radius:6px;padding:.4em .8em;cursor:pointer;font:inherit}}
button.on{{background:#eee}} input{{padding:.4em;width:20em;font:inherit}}
table{{border-collapse:collapse;width:100%}} th,td{{text-align:left;padding:.35em .6em;border-bottom:1px solid #ddd;vertical-align:top}}
th{{background:#f5f5f5}} .s{{color:#fff;border-radius:4px;padding:.1em .5em;font-weight:600}}
.p{{font-family:ui-monospace,monospace;word-break:break-all;min-width:18em}}
</style></head><body>
<h1>{esc(title)}: {total} file(s)</h1>
<div class="bar">{buttons}<input id="q" type="search" placeholder="filter by path or reason"></div>
<table><thead><tr><th>file</th><th>format</th><th>status</th><th>reserved purposes</th><th>reasons</th></tr></thead>
<tbody>
"""


_HTML_TAIL = """</tbody></table>
<script>
const rows=[...document.querySelectorAll('tbody tr')],on=new Set();
function apply(){const q=document.getElementById('q').value.toLowerCase();
rows.forEach(r=>{const ok=(!on.size||on.has(r.dataset.status))&&(!q||r.textContent.toLowerCase().includes(q));r.hidden=!ok;});}
document.querySelectorAll('button').forEach(b=>b.onclick=()=>{const s=b.dataset.status;
on.has(s)?on.delete(s):on.add(s);b.classList.toggle('on');apply();});
document.getElementById('q').oninput=apply;
</script></body></html>
"""


class HtmlReport:
    """The self-contained page for people, built as verdicts arrive.

    The counts head the page but are known only at the end, so rows wait in a temporary file
    beside the report rather than in memory: a scan of millions stays flat. ``close`` writes
    the page atomically.
    """

    def __init__(self, path: str | os.PathLike[str], *, title: str = "rightsmeta verify") -> None:
        import tempfile

        self.path, self.title, self.counts = os.fspath(path), title, Counter[str]()
        self._rows = tempfile.TemporaryFile(dir=os.path.dirname(os.path.abspath(self.path)))

    def write(self, row: dict[str, Any]) -> None:
        self.counts[row["status"]] += 1
        self._rows.write(_html_row(row).encode("utf-8"))

    def close(self) -> None:
        import shutil

        from .fsio import replacing

        with self._rows:
            self._rows.seek(0)
            with replacing(self.path) as page:
                page.write(_html_head(self.counts, sum(self.counts.values()), self.title).encode("utf-8"))
                shutil.copyfileobj(self._rows, page)
                page.write(_HTML_TAIL.encode("utf-8"))


def html_page(rows: Iterable[dict[str, Any]], *, title: str = "rightsmeta verify") -> str:
    """A self-contained page: counts per status, then one filterable row per file with its reasons."""
    rows = list(rows)
    body = "".join(_html_row(r) for r in rows)
    return _html_head(Counter(r["status"] for r in rows), len(rows), title) + body + _HTML_TAIL
