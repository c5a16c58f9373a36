"""Fuzzing ``Ledger.import_jsonl`` (``rightsmeta ledger import``): lines from someone else's ledger.

A good exported line with any one field replaced by any JSON value, or its text damaged, is
imported or refused with a LedgerError naming the line; nothing else escapes, and a refused
import keeps nothing. tests/test_ledger.py holds the named hostile lines; this is their random
complement.
"""

from __future__ import annotations

import io
import json
import os
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
from fuzzing import json_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from samples import image_bytes

from rightsmeta.fingerprint import essence
from rightsmeta.ledger import Ledger, LedgerError, Work
from rightsmeta.model import Assertion

EXAMPLES = int(os.environ.get("RIGHTSMETA_FUZZ_EXAMPLES", "200"))
JSON = json_values(("image", "text", "2026-01-01T00:00:00+00:00", "notAllowed", "0" * 64, "v2:" + "a" * 64),
                   ("name", "contact", "state", "permissions"), max_leaves=8)


@pytest.fixture(scope="module")
def good_line(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data = image_bytes("png")
    work = Work.create("a.png", "png", essence(data, "png"), Assertion.build(deny=["ai"], holder="Jane Doe"), ["xmp"])
    with Ledger.open(tmp_path_factory.mktemp("ledger") / "l.sqlite3") as ledger:
        ledger.record(work)
        out = io.StringIO()
        ledger.export_jsonl(out)
    line: dict[str, Any] = json.loads(out.getvalue())
    return line


def _import(tmp: Path, lines: list[str]) -> None:
    with Ledger.open(tmp / f"{uuid.uuid4().hex}.sqlite3") as ledger:  # a fresh ledger each time
        try:
            ledger.import_jsonl(lines)
        except LedgerError as exc:
            assert str(exc).startswith("line 1:"), exc
            assert len(ledger) == 0
        else:
            assert len(ledger) == 1


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_lines_with_any_field_replaced(good_line: dict[str, Any], tmp_path: Path, data: st.DataObject) -> None:
    line = dict(good_line)
    key = data.draw(st.sampled_from(sorted(line)))
    if isinstance(line[key], dict) and data.draw(st.booleans()):
        inner = dict(line[key])
        inner[data.draw(st.sampled_from(sorted(inner) or ["x"]))] = data.draw(JSON)
        line[key] = inner
    else:
        line[key] = data.draw(JSON)
    _import(tmp_path, [json.dumps(line)])


def test_damaged_line_text(good_line: dict[str, Any], tmp_path: Path) -> None:
    text = json.dumps(good_line)
    rng = random.Random(20261130)
    for _ in range(EXAMPLES):
        at = rng.randrange(len(text))
        mutant = text[:at] + rng.choice(('"', "\\", "{", "}", "[", ",", ":", "1e999", "\u2028", "\x00", "")) + text[at + 1:]
        _import(tmp_path, [mutant])
