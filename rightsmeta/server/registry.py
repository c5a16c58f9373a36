"""Soft bindings and manifests of the works the service signed, beside the ledger.

The ledger (rightsmeta/ledger.py) stores essence hashes and perceptual codes, not the ISCC codes
carried as C2PA soft bindings nor the manifest stores. This module keeps them in its own table in
the same SQLite file, so the C2PA Soft Binding Resolution API (byBinding, manifests) answers from
one registry. WAL and a busy timeout make writes from several worker processes safe.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import io
import json
import os
import sqlite3
import struct
from contextlib import closing
from typing import Any

ALG = "io.iscc.v0"
MAX_DISTANCE = 8  # bits of a 64-bit ISCC Image-Code: a re-encode stays within a few; other images do not
# 4 bands of a 64-bit code, each searched within 2 bits: 548 keys a query, about n / 110 rows decoded
# (27 of 3,000 random codes, tests/test_serve_registry.py; nine 7-bit bands searched exactly: n / 15).
BAND_BITS = 16
_SCHEMA = """
CREATE TABLE IF NOT EXISTS rightsmeta_soft_bindings (
    manifest_id TEXT PRIMARY KEY,
    work_id TEXT NOT NULL,
    alg TEXT,
    value TEXT,
    manifest BLOB,
    store_json TEXT,
    recorded_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rightsmeta_soft_bindings_work ON rightsmeta_soft_bindings (work_id);
CREATE INDEX IF NOT EXISTS rightsmeta_soft_bindings_value ON rightsmeta_soft_bindings (alg, value);
-- byBinding's index: each code cut into bands of BAND_BITS. Two codes of n bands within d bits of
-- each other differ in at most d // n bits of some band (pigeonhole), so a query looks up every
-- key within that many bits of each of its bands, and only those rows are decoded and compared.
CREATE TABLE IF NOT EXISTS rightsmeta_soft_binding_bands (band TEXT NOT NULL, manifest_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS rightsmeta_soft_binding_bands_band ON rightsmeta_soft_binding_bands (band);
CREATE INDEX IF NOT EXISTS rightsmeta_soft_binding_bands_id ON rightsmeta_soft_binding_bands (manifest_id);
CREATE TABLE IF NOT EXISTS rightsmeta_soft_binding_meta (key TEXT PRIMARY KEY, value TEXT);
"""


def _connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    db = sqlite3.connect(os.fspath(path), isolation_level=None, timeout=30.0)
    db.execute("PRAGMA busy_timeout = 30000")
    db.executescript(_SCHEMA)
    if db.execute("SELECT 1 FROM rightsmeta_soft_binding_meta WHERE key = 'bands'").fetchone() is None:
        _index_all(db)
    return db


def _index_all(db: sqlite3.Connection) -> None:
    """Bands of the rows a registry made before the index existed; once per registry."""
    with db:
        db.execute("BEGIN IMMEDIATE")
        if db.execute("SELECT 1 FROM rightsmeta_soft_binding_meta WHERE key = 'bands'").fetchone() is None:
            db.execute("DELETE FROM rightsmeta_soft_binding_bands")
            for manifest_id, value in db.execute("SELECT manifest_id, value FROM rightsmeta_soft_bindings WHERE alg = ?",
                                                 (ALG,)).fetchall():
                _index(db, str(manifest_id), str(value))
            db.execute("INSERT INTO rightsmeta_soft_binding_meta VALUES ('bands', '1')")


def _bands(code: str, spread: int = 0) -> list[str]:
    """The band keys of a code (its kind and length, the band's number and bits); with ``spread``,
    also every key within that many bits of each band: what a query looks up."""
    decoded = _bits(code)
    if decoded is None:
        return []
    kind, value, bits = decoded
    count = max(1, bits // BAND_BITS)
    keys = []
    for i in range(count):
        start, end = bits * i // count, bits * (i + 1) // count
        band, width = (value >> (bits - end)) & ((1 << (end - start)) - 1), end - start
        near = {band}
        for _ in range(spread):
            near |= {v ^ (1 << b) for v in near for b in range(width)}
        keys += [f"{kind[0]}.{kind[1]}.{kind[2]}.{bits}.{i}:{v:x}" for v in sorted(near)]
    return keys


def _index(db: sqlite3.Connection, manifest_id: str, value: str | None) -> None:
    db.execute("DELETE FROM rightsmeta_soft_binding_bands WHERE manifest_id = ?", (manifest_id,))
    if value:
        db.executemany("INSERT INTO rightsmeta_soft_binding_bands VALUES (?, ?)", [(b, manifest_id) for b in _bands(value)])


def _store(data: bytes, fmt: str) -> tuple[str | None, str | None, str | None]:
    """(active manifest label, soft binding value, manifest store JSON) of a signed file."""
    from ..carriers.manifest import MIME, SOFT_BINDING_LABEL

    if fmt not in MIME:
        return None, None, None
    import c2pa

    try:
        reader = c2pa.Reader.try_create(MIME[fmt], io.BytesIO(data))
    except c2pa.C2paError:
        return None, None, None
    if reader is None:
        return None, None, None
    with reader:
        text = reader.json()
    store = json.loads(text)
    label = store.get("active_manifest")
    value = None
    for assertion in store.get("manifests", {}).get(label, {}).get("assertions", []):
        if assertion.get("label") == SOFT_BINDING_LABEL:
            data_ = assertion.get("data") or {}
            if data_.get("alg") == ALG:
                blocks = data_.get("blocks") or []
                value = blocks[0].get("value") if blocks else None
    return label, value, text


def record_file(path: str | os.PathLike[str], work_id: str, data: bytes, fmt: str, *, manifest: bytes | None = None) -> str:
    """Register the signed file's manifest and soft binding under the work; its manifest id."""
    label, value, store = _store(data, fmt)
    manifest_id = label or f"urn:uuid:{work_id}"
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    with closing(_connect(path)) as db:
        with db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT OR REPLACE INTO rightsmeta_soft_bindings VALUES (?, ?, ?, ?, ?, ?, ?)",
                (manifest_id, work_id, ALG if value else None, value, manifest, store, now),
            )
            _index(db, manifest_id, value)
    return manifest_id


def manifest_id_for_work(path: str | os.PathLike[str], work_id: str) -> str:
    with closing(_connect(path)) as db:
        row = db.execute(
            "SELECT manifest_id FROM rightsmeta_soft_bindings WHERE work_id = ? ORDER BY recorded_at DESC LIMIT 1", (work_id,)
        ).fetchone()
    return str(row[0]) if row else f"urn:uuid:{work_id}"


def parse_value(value: str) -> str | None:
    """An ISCC code from a query value: ``ISCC:...``, base64 of that text, or base64 of the code's bytes."""
    import iscc_core

    candidates = []
    # A base64 value's "+" arrives as a space when a client puts it in the URL unencoded, as the
    # C2PA API's clients do (c2pa-rs writes "?value={value}"): read with the "+" back too.
    for text in dict.fromkeys((value.strip(), value.replace(" ", "+").strip())):
        candidates.append(text)
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if ("-" in text or "_" in text) else None,
                                   validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if raw:
            try:
                candidates.append(raw.decode("ascii"))
            except UnicodeDecodeError:
                pass
            candidates.append("ISCC:" + iscc_core.encode_base32(raw))
    for candidate in candidates:
        code = candidate if candidate.upper().startswith("ISCC:") else f"ISCC:{candidate}"
        try:
            iscc_core.iscc_decode(code)
        except Exception:  # iscc_core raises ValueError and others for garbage; try the next reading
            continue
        return "ISCC:" + str(iscc_core.iscc_clean(code))
    return None


def _bits(code: str) -> tuple[tuple[int, int, int], int, int] | None:
    import iscc_core

    try:
        maintype, subtype, version, _length, digest = iscc_core.iscc_decode(code)
    except Exception:
        return None
    return (maintype, subtype, version), int.from_bytes(digest, "big"), len(digest) * 8


def by_binding(path: str | os.PathLike[str], alg: str, value: str, limit: int = 10) -> list[dict[str, Any]]:
    """Manifests whose soft binding matches: the same code first, then near codes of the same kind."""
    if alg != ALG:
        return []
    code = parse_value(value)
    if code is None:
        return []
    wanted = _bits(code)
    if wanted is None:
        return []
    bands = _bands(code, spread=MAX_DISTANCE * wanted[2] // 64 // max(1, wanted[2] // BAND_BITS))
    with closing(_connect(path)) as db:
        rows = db.execute(
            "SELECT manifest_id, value FROM rightsmeta_soft_bindings WHERE alg = ? AND manifest_id IN "
            f"(SELECT manifest_id FROM rightsmeta_soft_binding_bands WHERE band IN ({', '.join('?' * len(bands))}))",
            (ALG, *bands)).fetchall()
    scored: list[tuple[int, str]] = []
    for manifest_id, stored in rows:
        have = _bits(str(stored))
        if have is None or have[0] != wanted[0] or have[2] != wanted[2]:
            continue
        distance = bin(have[1] ^ wanted[1]).count("1")
        if distance <= MAX_DISTANCE * wanted[2] // 64:
            scored.append((distance, str(manifest_id)))
    scored.sort()
    bits = wanted[2]
    return [{"manifestId": m, "similarityScore": round(100 * (1 - d / bits))} for d, m in scored[:limit]]


def similarity(value: str, other: str) -> int:
    """How near two soft-binding values are, as ``by_binding`` scores a match (0-100); 0 when they
    are not codes of the same kind and length."""
    a, b = parse_value(value), parse_value(other)
    bits_a, bits_b = (_bits(a) if a is not None else None), (_bits(b) if b is not None else None)
    if bits_a is None or bits_b is None or bits_a[0] != bits_b[0] or bits_a[2] != bits_b[2]:
        return 0
    return round(100 * (1 - bin(bits_a[1] ^ bits_b[1]).count("1") / bits_a[2]))


def manifest(path: str | os.PathLike[str], manifest_id: str) -> tuple[bytes | None, str | None, str | None]:
    """(manifest store bytes, manifest store JSON, work id) for an id; all None when unknown."""
    with closing(_connect(path)) as db:
        row = db.execute(
            "SELECT manifest, store_json, work_id FROM rightsmeta_soft_bindings WHERE manifest_id = ?", (manifest_id,)
        ).fetchone()
    if row is None:
        return None, None, None
    return (bytes(row[0]) if row[0] is not None else None), row[1], str(row[2])


def active_only(store: bytes) -> bytes | None:
    """The manifest store holding only its active manifest (the last one, C2PA 2.2 section 15.5), or
    None when ``store`` is not a JUMBF manifest store. A store of one manifest is returned as is."""
    from ..carriers.jumbf import boxes

    try:
        top = boxes(store, 0, len(store))
        children = boxes(store, top[0].payload, top[0].end) if len(top) == 1 and top[0].kind == b"jumb" else []
    except ValueError:
        return None
    if len(children) < 2 or children[0].kind != b"jumd" or any(box.kind != b"jumb" for box in children[1:]):
        return None
    if len(children) == 2:
        return store
    description, last = children[0], children[-1]
    payload = store[description.start:description.end] + store[last.start:last.end]
    return struct.pack(">I4s", 8 + len(payload), b"jumb") + payload
