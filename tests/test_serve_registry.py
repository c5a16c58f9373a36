"""byBinding's index (rightsmeta/server/registry.py): the same answers as comparing every stored
code, from a fraction of the rows; a registry made before the index gets it on first use."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

iscc_core = pytest.importorskip("iscc_core")

from rightsmeta.server import registry  # noqa: E402

ROWS = 3000


def _code(value: int) -> str:
    return "ISCC:" + iscc_core.encode_component(iscc_core.MT.CONTENT, iscc_core.ST_CC.IMAGE, iscc_core.VS.V0, 64,
                                                value.to_bytes(8, "big"))


def _flip(value: int, bits: int, rng: random.Random) -> int:
    for bit in rng.sample(range(64), bits):
        value ^= 1 << bit
    return value


def _brute(stored: dict[str, int], wanted: int) -> list[tuple[int, str]]:
    """The answer restated: every stored code within 8 bits, nearest first."""
    near = sorted((bin(v ^ wanted).count("1"), m) for m, v in stored.items())
    return [(d, m) for d, m in near if d <= 8][:10]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    rng = random.Random(5)
    stored = {f"urn:uuid:m{i}": rng.getrandbits(64) for i in range(ROWS)}
    path = tmp_path_factory.mktemp("registry") / "ledger.sqlite3"
    # A registry as the previous version made it: the table of soft bindings only.
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE rightsmeta_soft_bindings (manifest_id TEXT PRIMARY KEY, work_id TEXT NOT NULL, alg TEXT,"
               " value TEXT, manifest BLOB, store_json TEXT, recorded_at TEXT NOT NULL)")
    db.executemany("INSERT INTO rightsmeta_soft_bindings VALUES (?, ?, ?, ?, NULL, NULL, '2026-01-01')",
                   [(m, m, registry.ALG, _code(v)) for m, v in stored.items()])
    db.commit()
    db.close()
    return path, stored


def test_by_binding_answers_as_comparing_every_row_does(made: tuple[Path, dict[str, int]], monkeypatch: pytest.MonkeyPatch) -> None:
    path, stored = made
    rng = random.Random(9)
    registry.by_binding(path, registry.ALG, _code(0))  # the first use indexes the old rows
    decoded = []
    real = registry._bits

    def counting(code: str) -> Any:
        decoded.append(code)
        return real(code)

    monkeypatch.setattr(registry, "_bits", counting)
    targets = rng.sample(sorted(stored), 40)
    for i, manifest_id in enumerate(targets):
        wanted = _flip(stored[manifest_id], i % 11, rng)  # 0..10 bits away: near, at the edge, beyond
        got = registry.by_binding(path, registry.ALG, _code(wanted))
        want = _brute(stored, wanted)
        assert [(m["manifestId"], m["similarityScore"]) for m in got] == [(m, round(100 * (1 - d / 64))) for d, m in want]
        assert (i % 11 <= 8) == any(m["manifestId"] == manifest_id for m in got)
    # each query decoded under 5% of the rows (comparing every row decodes them all)
    print(f"rows decoded per query: {len(decoded) / 40:.0f} of {ROWS}")
    assert len(decoded) < 40 * ROWS // 20, len(decoded)


def test_a_new_record_is_indexed(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    value = random.Random(3).getrandbits(64)
    db = registry._connect(path)
    with db:
        db.execute("INSERT INTO rightsmeta_soft_bindings VALUES ('m', 'w', ?, ?, NULL, NULL, 'now')", (registry.ALG, _code(value)))
        registry._index(db, "m", _code(value))
    db.close()
    [match] = registry.by_binding(path, registry.ALG, _code(value ^ 0b1011))
    assert match == {"manifestId": "m", "similarityScore": round(100 * (1 - 3 / 64))}
