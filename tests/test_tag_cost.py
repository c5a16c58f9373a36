"""What a tag run does besides computing essences, made cheaper (issue 12): each shortcut gives
exactly what the long way gives."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from samples import image_bytes

STATEMENTS = (
    dict(deny=["ai"]),
    dict(deny=["all"], allow=["search"], holder='Ada & <Lovelace> "A"', contact="https://ada.example/?a=1&b=2",
         copyright="(c) 2026 \u00c4d\u00e4 \U0001f600\r\nLovelace", web_statement="https://ada.example/licence",
         policy="https://ada.example/tdm.json"),
    dict(constrain=[("genai-training", "https://ada.example/terms?a&b<c>")], allow=["data-mining"]),
    dict(allow=["all"]),
    dict(deny=["data-mining"], holder="Ada"),
)


def _tree_packet(assertion: object) -> ET.Element:
    """A new packet's tree as the writers built it before ``fresh_packet``."""
    from rightsmeta import xmp

    root = xmp._empty_packet()
    xmp.apply(root, xmp.updates(assertion, {}))  # type: ignore[arg-type]
    return root


@pytest.mark.parametrize("words", STATEMENTS)
def test_a_fresh_packet_is_the_serialised_tree_byte_for_byte(words: dict[str, object]) -> None:
    from rightsmeta import xmp
    from rightsmeta.model import Assertion

    statement = Assertion.build(**words)  # type: ignore[arg-type]
    for copy in [statement.for_work() for _ in range(3)] + [statement, statement.dated()]:
        expected = xmp.serialise(_tree_packet(copy))
        assert xmp.fresh_packet(copy) == expected
        assert xmp.write_packet(None, copy) == expected == xmp.write_packet(b"", copy)


def test_an_id_or_date_holding_a_mark_is_written_as_given() -> None:
    """The marks are replaced where the template put them, never inside the file's own values."""
    import dataclasses

    from rightsmeta import xmp
    from rightsmeta.model import Assertion

    statement = Assertion.build(deny=["ai"])
    statement.for_work()  # the run's memo exists before the odd copy is made
    odd = dataclasses.replace(statement, work_id="id\x01date\x01&", date="2026-01-01T00:00:00+00:00\x01work-id\x01")
    assert xmp.fresh_packet(odd) == xmp.serialise(_tree_packet(odd))


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "tiff"])
@pytest.mark.parametrize("extra", [{}, {"exif": True, "icc": True}])
def test_an_image_without_xmp_is_written_as_from_the_tree(fmt: str, extra: dict[str, bool]) -> None:
    from rightsmeta.carriers import image
    from rightsmeta.model import Assertion

    data = image_bytes(fmt, seed=len(fmt), **extra)
    for words in STATEMENTS:
        copy = Assertion.build(**words).for_work()  # type: ignore[arg-type]
        new, carriers = image.write(data, fmt, copy)
        assert bytes(new) == bytes(image._WRITERS[fmt](data, _tree_packet(copy), None)) and carriers == ["xmp"]


def test_a_results_json_is_json_dumps_indented_with_its_statement() -> None:
    """``tag --json`` renders a statement's words once per run: each result's text is still
    ``json.dumps(indent=2)`` of it, one level in, date and work id included."""
    import json

    from rightsmeta.cli_tag import _result_json
    from rightsmeta.model import Assertion
    from rightsmeta.report import TagResult

    for words in STATEMENTS:
        statement = Assertion.build(**words)  # type: ignore[arg-type]
        for result in (
            TagResult("caf\u00e9/\U0001f600 \"x\".jpg", "tagged", "jpeg", ["xmp"], assertion=statement.for_work(),
                      notes=["a note"]),
            TagResult("b.png", "tagged", "png", ["xmp"], assertion=statement.for_work()),
            TagResult("dated.pdf", "failed", "pdf", reason="why", assertion=statement.dated()),
            TagResult("fifo", "skipped", reason="a FIFO", assertion=statement),
            TagResult("bug.jpg", "failed", reason="internal error"),
        ):
            assert _result_json(result) == json.dumps(result.to_json(), indent=2).replace("\n", "\n  ")


@pytest.mark.parametrize("count", [0, 1, 63, 64, 65, 200, 1000])
@pytest.mark.parametrize("given", ["tuples", "array"])
def test_index_rows_inserted_many_to_a_statement_are_the_rows_given(count: int, given: str) -> None:
    """``ledger._insert_rows`` writes what a statement a row wrote: every row, duplicates ignored,
    from rows as tuples (with a blob) or as an array of integers (numpy's int64, as Python ints)."""
    import random
    import sqlite3

    import numpy as np

    from rightsmeta import ledger

    rng = random.Random(count)
    rows: list[tuple[object, ...]] = [
        (rng.randrange(50), rng.randrange(1 << 40), bytes(rng.randrange(256) for _ in range(4))) for _ in range(count)]
    if given == "array":
        rows = [row[:2] for row in rows]
    columns = "(key, work, code)" if given == "tuples" else "(key, work)"
    tables = []
    for insert in (ledger._insert_rows, None):
        db = sqlite3.connect(":memory:")
        db.execute("CREATE TABLE t (key INTEGER NOT NULL, work INTEGER NOT NULL, code BLOB, PRIMARY KEY (key, work)) "
                   "WITHOUT ROWID")
        if insert is None:
            db.executemany(f"INSERT OR IGNORE INTO t {columns} VALUES ({', '.join('?' * len(columns.split(',')))})", rows)
        else:
            insert(db, f"t {columns}", np.array(rows, dtype=np.int64).reshape(-1, 2) if given == "array" else rows)
        tables.append(db.execute("SELECT key, work, typeof(key), code FROM t ORDER BY key, work").fetchall())
    assert tables[0] == tables[1] and len(tables[0]) == len({row[:2] for row in rows})


def test_a_works_region_set_and_statement_are_recorded_as_before() -> None:
    """The ledger's shortcuts for a tagged work (all region codes tested at once, the statement's
    words rendered once per run) record what the per-code test and ``json.dumps`` recorded."""
    import json
    import random

    from rightsmeta import ledger
    from rightsmeta.model import Assertion

    def one_by_one(recorded: list[tuple[str, object]]) -> tuple[str, bytes] | None:
        kept = [(n, c) for n, c in recorded if isinstance(c, str) and ledger._REGION_CODE.match(c)][: ledger.MAX_REGIONS]
        return (",".join(n for n, _ in kept), bytes.fromhex("".join(str(c) for _, c in kept))) if kept else None

    rng = random.Random(7)
    good = lambda: "".join(rng.choice("0123456789abcdef") for _ in range(64))  # noqa: E731
    odd = [good()[:63], good() + "0", good()[:63] + "\n", good().upper(), None, 5, good()[:-1] + "g", "",
           good()[:60] + "  ab", good()[:62] + "\tA", good()[:63] + "\u00e9", good()[:62] + "\u0660\u0661"]
    for size in (0, 1, 16, 32, 33, 40):
        for bad in [None, *odd]:
            recorded = [(f"r{i}", good()) for i in range(size)]
            if bad is not None and size:
                recorded[rng.randrange(size)] = ("bad", bad)  # type: ignore[assignment]
            if bad is not None and size > 1:  # two codes whose lengths add up to 128
                recorded[0:2] = [("a", good()[:63]), ("b", good() + "0")]
            assert ledger._region_set(recorded) == one_by_one(recorded)  # type: ignore[arg-type]
    for words in STATEMENTS:
        statement = Assertion.build(**words)  # type: ignore[arg-type]
        for copy in (statement, statement.for_work(), statement.dated()):
            assert ledger._assertion_json(copy) == json.dumps(copy.to_json(), ensure_ascii=False)


def test_a_tag_run_freezes_what_start_up_made(tmp_path: Path) -> None:
    """The CLI's run freezes the objects made before its first file (gc.freeze), so the collector
    does not traverse the loaded modules again and again, and unfreezes them when it ends (a
    host process goes on); the entry point, which ends the process, freezes everything again at
    exit (atexit, before the interpreter's last collection), so that collection skips it, and only
    then: a host catching its SystemExit keeps its collector. The files are tagged as ever."""
    import subprocess
    import sys

    (tmp_path / "a.png").write_bytes(image_bytes("png"))
    run = ("import atexit, gc, sys\nfrom rightsmeta import api, cli_tag\nfrom rightsmeta.cli_plain import main\n"
           "seen, real, command = [], api.tag_iter, cli_tag.run\n"
           "atexit.register(lambda: print('at exit', gc.get_freeze_count(), file=sys.stderr))  # runs after main's\n"
           "def spy(*args, **kwargs):\n    seen.append(gc.get_freeze_count())\n    return real(*args, **kwargs)\n"
           "def ran(*args, **kwargs):\n    try:\n        return command(*args, **kwargs)\n"
           "    finally:\n        seen.append(gc.get_freeze_count())\n"
           "api.tag_iter, cli_tag.run = spy, ran\n"
           "try:\n    main()\nexcept SystemExit:\n    seen.append(gc.get_freeze_count())\n"
           "print('frozen', *seen, file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", run, "tag", "-r", "--deny", "ai", "--no-sign", "--no-ledger", str(tmp_path)],
                          capture_output=True, text=True)
    assert "summary: 1 tagged, 0 failed" in done.stderr, done.stderr
    during, after, caught = map(int, done.stderr.rsplit("frozen ", 1)[1].split()[:3])
    leaving = int(done.stderr.rsplit("at exit ", 1)[1].split()[0])
    # The modules' objects (about 14,000 here), then none once the command is done and while the
    # SystemExit is caught, then all of them at exit.
    assert during > 10_000 and after == caught == 0 and leaving >= during


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="3.14's incremental collector schedules and counts its steps otherwise")
def test_a_tag_run_collects_young_objects_less_often(tmp_path: Path) -> None:
    """During the CLI's run the collector waits for more young objects (cli_tag._YOUNG_OBJECTS)
    before it looks: a few collections, not one every few files, and none of the middle
    generation; the thresholds a host had are back when the command ends. Tagged as ever."""
    import subprocess
    import sys

    (tmp_path / "files").mkdir()
    for i in range(40):
        (tmp_path / "files" / f"{i}.png").write_bytes(image_bytes("png", seed=i))
    run = ("import gc, sys\nfrom rightsmeta import api, cli_tag\n"
           "counts, real, command = [0, 0, 0], api.tag_iter, cli_tag.run\n"
           "def count(phase, info):\n    if phase == 'start':\n        counts[info['generation']] += 1\n"
           "def spy(*args, **kwargs):\n    gc.callbacks.append(count)\n    try:\n        yield from real(*args, **kwargs)\n"
           "    finally:\n        gc.callbacks.remove(count)\n"
           "api.tag_iter = spy\n"
           "gc.set_threshold(700, 9, 8)\n"
           "code = command((sys.argv[1],), deny=('ai',), sign=False, recursive=True, as_json=True, ledger=sys.argv[2])\n"
           "print('counts', *counts, *gc.get_threshold(), code, file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", run, str(tmp_path / "files"), str(tmp_path / "l.sqlite3")],
                          capture_output=True, text=True)
    assert done.stdout.count('"tagged"') == 40, done.stderr
    young, middle, old, *after, code = map(int, done.stderr.rsplit("counts ", 1)[1].split())
    assert after == [700, 9, 8] and code == 0
    assert young <= 3 and middle == old == 0, (young, middle, old)
