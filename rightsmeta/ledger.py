"""The ledger: a local SQLite registry of every tagged work, to recognise copies whose metadata is gone.

Each row (a ``Work``) holds what was tagged (path, format), its essence (``fingerprint.essence``:
an exact hash of the decoded content and a perceptual code), the assertion written and the
carriers it went into, when, and for imported registries who published it (``source``).

``Ledger.find(essence)`` answers "which tagged work is this?": first an exact essence-hash match
(distance 0), else the nearest perceptual code of the same kind within
``fingerprint.MATCH_THRESHOLD``. Perceptual codes are split into 16-bit bands stored in an indexed
table (multi-index hashing, Norouzi et al. 2012): if two codes of m bands differ in at most
m(r+1)-1 bits, at least one band differs in at most r bits, so probing each band's value and its
neighbours within r bits finds every code within the threshold without scanning the table. The
thresholds need r = 1 for images and text (31 of 256 bits: 16 bands x 17 probes) and r = 2 for
audio (23 of 128 bits: 8 bands x 137 probes); the distance is then computed for the candidates only.

Measured with 100,000 image works (256-bit codes of generated 128x96 images, 2 cores): a lookup
takes 3.8 ms for a JPEG q70 copy and 3.6 ms for an unrelated image, each touching about 790
candidate rows (0.8 %); an exact-hash lookup 0.05 ms. Recording the 100,000 works took 24 s and
the ledger is 98 MB. Command: ``RIGHTSMETA_BENCH=100000 python -m pytest tests/test_ledger.py -k
bench -s`` (most of its 6 minutes is generating the images).

When neither finds anything, the copy may be a part or a changed form of a work (issue 17):

- images: every work is recorded with the codes of regions of it (``Essence.regions``: the
  whole, centred crops, aspect crops, halves, corner squares) and the copy is looked up with the
  codes of forms of it (``Essence.probes``: its flips and quarter turns, slight centred crops,
  halves, corner squares), each
  probe against the regions it can be (``fingerprint.region_pair_allowed``), within
  ``REGION_THRESHOLD``. Region codes are indexed by 24-bit windows of them (``_region_keys``),
  so a lookup costs the same index seeks whatever the size of the ledger (bench/region_lookup.py).
- audio: the Chromaprint features are recorded, and half of their 24-bit keys indexed; the works
  sharing the most keys with a copy are aligned with it at every offset and tempo within 3 %
  (``align``) and match when at most ``CHROMA_THRESHOLD`` of the bits differ.

``Match.how`` says which region and which form matched, or where in the work and at what tempo.
Schema version 2 added these tables; a version-1 ledger is migrated when opened for writing (its
works keep matching by their whole codes), and read as it is when opened read-only. Version 3
replaced version 2's 16-bit region bands with 24-bit windows: a version-2 ledger is migrated in one
transaction when opened for writing (killed half-way, it is still the version-2 ledger it was),
and searched through its old bands when opened read-only.

The JSON Lines format of ``export_jsonl``/``import_jsonl`` is ``schemas/ledger-line.schema.json``;
importing validates every line, names the first bad one by its line number, imports nothing from
a file with a bad line, and skips works already present (same ``id``), so importing twice is
harmless.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import itertools
import json
import os
import re
import sqlite3
import struct
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import numpy as np

from . import paths
from .decide import strongest
from .errors import RightsmetaError
from .fingerprint import (
    KINDS,
    LEGACY_HASH_FORMATS,
    MATCH_THRESHOLD,
    PERCEPTUAL_BITS,
    Essence,
    region_pair_allowed,
)
from .model import PURPOSES, UNSPECIFIED, Assertion, Permission, Purpose

SCHEMA_VERSION = 3  # 2: region codes of images and Chromaprint features of audio (issue 17); 3: region keys of 24-bit windows
BAND_BITS = 16
MAX_LINE = 1024 * 1024  # one JSONL line; an assertion is a few hundred bytes
MAX_JSON_DEPTH = 32  # a ledger line nests four levels; deeper is hostile (json recursion)
_MAX_CANDIDATES = 100  # works considered per lookup, before ranking
BUSY_SECONDS = 30.0  # how long opening waits for another writer's transaction
IMPORTED = "imported registry"  # the source of imported lines when the importer names none

_ESSENCE_HASH = re.compile(r"^(v2:)?[0-9a-f]{64}$")  # fingerprint.HASH_V2: taken from the coded data
_HEX = re.compile(r"^[0-9a-f]+$")
_FORMAT = re.compile(r"^[a-z0-9]{1,16}$")
# Work ids: visible ASCII, starting with a letter or digit (a UUID, a URN, a registry's own key);
# never a space, a control character or a spreadsheet formula prefix.
_WORK_ID = re.compile(r"^[A-Za-z0-9][!-~]{0,199}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FIELDS = ("id", "path", "format", "kind", "essence_hash", "perceptual", "assertion", "carriers", "tagged_at", "source",
           "regions", "chroma")
_OPTIONAL = frozenset({"source", "regions", "chroma"})
_REGION_NAME = re.compile(r"^[a-z0-9 %:]{1,32}$")
MAX_REGIONS = 32
MAX_CHROMA = 4864  # Chromaprint gives one feature per 0.1238 s: 4,846 in the first ten minutes


class LedgerError(RightsmetaError, ValueError):
    """The ledger file or an imported line is unusable; the message says where and why."""


def default_path() -> Path:
    """``$RIGHTSMETA_LEDGER``, else ``$XDG_DATA_HOME/rightsmeta/ledger.sqlite3`` (``~/.local/share``)."""
    return paths.ledger()


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class Work:
    """One tagged work, as the ledger records it."""

    id: str
    path: str
    format: str
    essence_hash: str | None
    kind: str | None
    perceptual: str | None
    assertion: Assertion
    carriers: list[str] = field(default_factory=list)
    tagged_at: str = field(default_factory=_now)
    source: str | None = None
    regions: tuple[tuple[str, str], ...] = ()  # images: named codes of regions (fingerprint._regions)
    chroma: tuple[int, ...] | None = None  # audio: Chromaprint features, unsigned 32-bit

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        fmt: str,
        essence: Essence,
        assertion: Assertion,
        carriers: Iterable[str] = (),
        *,
        source: str | None = None,
        id: str | None = None,
    ) -> Work:
        """A new record tagged now, with ``id`` or a fresh UUID."""
        return cls(
            id=id or str(uuid.uuid4()),
            path=os.fspath(path),
            format=fmt,
            essence_hash=essence.hash,
            kind=essence.kind,
            perceptual=essence.perceptual,
            assertion=assertion,
            carriers=list(carriers),
            source=source,
            regions=tuple(essence.regions),
            chroma=essence.chroma,
        )

    @property
    def essence(self) -> Essence:
        return Essence(self.kind, self.essence_hash, self.perceptual, regions=self.regions, chroma=self.chroma)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "path": self.path,
            "format": self.format,
            "kind": self.kind,
            "essence_hash": self.essence_hash,
            "perceptual": self.perceptual,
            "assertion": self.assertion.to_json(),
            "carriers": list(self.carriers),
            "tagged_at": self.tagged_at,
        }
        if self.source is not None:
            out["source"] = self.source
        if self.regions:
            out["regions"] = dict(self.regions)
        if self.chroma:
            out["chroma"] = base64.b64encode(_pack(self.chroma)).decode("ascii")
        return out

    @classmethod
    def from_json(cls, data: Any) -> Work:
        """The inverse of :meth:`to_json`; raises ``LedgerError`` naming the bad field."""
        if not isinstance(data, Mapping):
            raise LedgerError("a ledger line must be a JSON object")
        extra = set(data) - set(_FIELDS)
        if extra:
            raise LedgerError(f"unknown field(s): {', '.join(sorted(extra))}")
        missing = [f for f in _FIELDS if f not in data and f not in _OPTIONAL]
        if missing:
            raise LedgerError(f"missing field(s): {', '.join(missing)}")
        work_id = _text(data, "id", 200)
        if not work_id:
            raise LedgerError("'id' must not be empty")
        if not _WORK_ID.match(work_id):
            raise LedgerError(f"'id' must be visible ASCII starting with a letter or digit, got {work_id!r}")
        fmt = _text(data, "format", 16)
        if not _FORMAT.match(fmt):
            raise LedgerError(f"'format' must be a format name like 'jpeg', got {fmt!r}")
        kind = data["kind"]
        if kind is not None and kind not in KINDS:
            raise LedgerError(f"'kind' must be one of {', '.join(KINDS)} or null, got {kind!r}")
        essence_hash = data["essence_hash"]
        if essence_hash is not None and not (isinstance(essence_hash, str) and _ESSENCE_HASH.match(essence_hash)):
            raise LedgerError("'essence_hash' must be 64 lowercase hex digits (after 'v2:' or not) or null")
        perceptual = data["perceptual"]
        if perceptual is not None:
            width = PERCEPTUAL_BITS[kind] // 4 if kind is not None else None
            if width is None or not isinstance(perceptual, str) or not re.fullmatch(f"[0-9a-f]{{{width}}}", perceptual):
                raise LedgerError(f"'perceptual' must be {width or 'no'} lowercase hex digits for kind {kind!r}")
        _check_assertion(data["assertion"], work_id)
        try:
            assertion = Assertion.from_json(data["assertion"])
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise LedgerError(f"'assertion' is invalid: {exc}") from None
        carriers = data["carriers"]
        if not isinstance(carriers, list) or not all(isinstance(c, str) and 0 < len(c) <= 64 for c in carriers):
            raise LedgerError("'carriers' must be a list of carrier names")
        tagged_at = _text(data, "tagged_at", 64)
        try:
            _dt.datetime.fromisoformat(tagged_at)
        except ValueError:
            raise LedgerError(f"'tagged_at' must be an ISO 8601 date and time, got {tagged_at!r}") from None
        source = data.get("source")
        if source is not None:
            source = _text(data, "source", 2048)
        regions = _check_regions(data.get("regions"), kind)
        chroma = _check_chroma(data.get("chroma"), kind)
        return cls(
            id=work_id,
            path=_text(data, "path", 4096),
            format=fmt,
            essence_hash=essence_hash,
            kind=kind,
            perceptual=perceptual,
            assertion=assertion,
            carriers=list(carriers),
            tagged_at=tagged_at,
            source=source,
            regions=regions,
            chroma=chroma,
        )


def _check_regions(raw: Any, kind: str | None) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if kind != "image" or not isinstance(raw, Mapping) or len(raw) > MAX_REGIONS:
        raise LedgerError(f"'regions' must be an object of at most {MAX_REGIONS} region codes, for images only")
    out = []
    for name, code in raw.items():
        if not isinstance(name, str) or not _REGION_NAME.match(name):
            raise LedgerError(f"'regions' has a bad region name {name!r}")
        if not isinstance(code, str) or not re.fullmatch(r"[0-9a-f]{64}", code):
            raise LedgerError(f"'regions' code of {name!r} must be 64 lowercase hex digits")
        out.append((name, code))
    return tuple(out)


def _check_chroma(raw: Any, kind: str | None) -> tuple[int, ...] | None:
    if raw is None:
        return None
    if kind != "audio" or not isinstance(raw, str) or len(raw) > -(-4 * MAX_CHROMA // 3) * 4:
        raise LedgerError("'chroma' must be base64 Chromaprint features, for audio only")
    try:
        packed = base64.b64decode(raw.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise LedgerError("'chroma' is not valid base64") from None
    if len(packed) % 4 or not 0 < len(packed) // 4 <= MAX_CHROMA:
        raise LedgerError(f"'chroma' must hold 1 to {MAX_CHROMA} 32-bit features")
    return _unpack(packed)


def _pack(features: Sequence[int]) -> bytes:
    return struct.pack(f">{len(features)}I", *features)


def _unpack(packed: bytes) -> tuple[int, ...]:
    return struct.unpack(f">{len(packed) // 4}I", packed)


def _check_assertion(raw: Any, work_id: str) -> None:
    """What ``Assertion.from_json`` takes on trust, checked for lines from elsewhere."""
    if not isinstance(raw, Mapping):
        raise LedgerError("'assertion' must be a JSON object")
    for key in ("copyright", "web_statement", "policy", "date", "work_id"):
        if raw.get(key) is not None:
            _text(raw, key, 4096)
    holder = raw.get("holder")
    if holder is not None:
        if not isinstance(holder, Mapping) or not isinstance(holder.get("name"), str):
            raise LedgerError("'assertion.holder' must be an object with a 'name' string")
        for key in ("name", "contact"):
            if holder.get(key) is not None:
                _text(holder, key, 4096)
    date = raw.get("date")
    if date is not None:
        try:
            parsed = _dt.datetime.fromisoformat(date)
        except ValueError:
            raise LedgerError(f"'assertion.date' must be an ISO 8601 date and time, got {date!r}") from None
        if parsed.tzinfo is not None and parsed > _dt.datetime.now(_dt.UTC) + _dt.timedelta(days=1):
            raise LedgerError(f"'assertion.date' lies in the future: {date!r}")
    claimed = raw.get("work_id")
    if claimed is not None and claimed != work_id:
        raise LedgerError(f"'assertion.work_id' {claimed!r} differs from the line's 'id' {work_id!r}")


def _text(data: Mapping[str, Any], key: str, limit: int) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise LedgerError(f"'{key}' must be a string")
    if len(value) > limit:
        raise LedgerError(f"'{key}' is longer than {limit} characters")
    if _CONTROL.search(value):
        raise LedgerError(f"'{key}' contains a control character")
    return value


@dataclass(frozen=True)
class Match:
    """A ledger work a file matched: ``distance`` 0.0 and ``exact`` for the same essence hash.

    ``how`` says which part of the work matched which form of the file (a region, a flip or
    rotation, an audio offset), when it was not the whole work as it is.
    """

    work: Work
    distance: float
    exact: bool
    how: str | None = None

    @property
    def imported(self) -> bool:
        """The work came from a registry someone published, not from this ledger's own tagging."""
        return self.work.source is not None

    def describe(self) -> str:
        how = "same essence" if self.exact else f"perceptual distance {self.distance:.3f}"
        if self.how:
            how += f", {self.how}"
        if self.imported:
            how += f"; imported from {self.work.source}"
        return f"{self.work.path or self.work.id} ({how})"


def _rank(match: Match) -> tuple[bool, bool, float, str]:
    # The creator's own records first: an imported line never outranks a local one by being
    # newer or nearer. Then the same essence before a perceptual match, nearest, newest.
    return (match.imported, not match.exact, match.distance, _invert(match.work.tagged_at))


def _invert(text: str) -> str:
    return "".join(chr(0x10FFFF - ord(c)) for c in text)  # sorts newest first within a key


def combined(matches: Sequence[Match]) -> dict[Purpose, Permission]:
    """What a stripped copy may be used for when it matched several works: every purpose at its
    most restrictive state among them (notAllowed > constrained > allowed > unspecified), so a
    registry claiming "allowed" cannot lift the creator's own "notAllowed" (fail closed)."""
    return {p: strongest(m.work.assertion.permissions.get(p, UNSPECIFIED) for m in matches) for p in PURPOSES}


def _bands(perceptual: str) -> list[int]:
    """The code's 16-bit bands, or none if it is not a hex string of whole bands."""
    step = BAND_BITS // 4
    if len(perceptual) % step or not _HEX.match(perceptual):
        return []
    return [int(perceptual[i : i + step], 16) for i in range(0, len(perceptual), step)]


_MASKS: dict[int, list[int]] = {}


def _masks(radius: int) -> list[int]:
    """Every 16-bit word with at most ``radius`` bits set (the probes around one band value)."""
    if radius not in _MASKS:
        _MASKS[radius] = [
            sum(1 << bit for bit in bits)
            for r in range(radius + 1)
            for bits in itertools.combinations(range(BAND_BITS), r)
        ]
    return _MASKS[radius]


# Region codes (issue 17) are indexed by windows of 24 bits at every 12th bit (20 keys, each
# holding the window's number above its bits), looked up exactly: a region code is a candidate
# when one of its windows equals the probe's. Each flipped bit spoils at most two windows, so
# every code within 9 bits of a probe is found, and real copies do far better: their differing
# bits cluster, so of the true (probe, region) pairs of the bench's copies all within 15 bits
# share a window, 99 % at 16-19 and 96 % at 20-23, and every copy has such a pair
# (``python bench/region_lookup.py --recall 40``; schema 2's rule, two equal 16-bit bands:
# 98-100 %). Keys of 24 bits hold few codes by chance (16 regions x works / 2^24: 0.1 at
# 100,000 works, 1 at 1M), so a probe costs 20 index seeks reading few rows; schema 2's 16-bit bands read
# regions x works / 65,536 rows per seek, 24 at 100,000 works, and grew with the ledger. Flipping
# bits at query time instead (32-bit bands and their 32 one-bit neighbours: 15 bits guaranteed)
# was tried and measured slower at every size up to 100,000 works: 264 seeks per probe.
REGION_THRESHOLD = 24 / 256
REGION_KEY_BITS = 24
REGION_KEY_STEP = 12
_REGION_WINDOWS = (256 - REGION_KEY_BITS) // REGION_KEY_STEP + 1
_REGION_CODE = re.compile(r"^[0-9a-f]{64}$")


def _region_keys(code: str) -> list[int]:
    """The index keys of a 256-bit region code: window number << 24 | the window's 24 bits."""
    if not _REGION_CODE.match(code):
        return []
    value = int(code, 16)
    return [_region_key(value, window) for window in range(_REGION_WINDOWS)]


def _region_key(value: int, window: int) -> int:
    return window << REGION_KEY_BITS | (value >> (REGION_KEY_STEP * window)) & ((1 << REGION_KEY_BITS) - 1)


def _probe_keys(codes: Sequence[str]) -> list[int]:
    """The keys of every code, each once, sorted."""
    return sorted({key for code in codes for key in _region_keys(code)})


# Chromaprint: a feature's top 24 bits are its key; half of the keys (chosen by a hash of the key,
# so a copy keeps the same half) are indexed, about 3 a second of audio. A copy's keys vote for
# the works that share them; the best-voted works are aligned in full (``align``). Measured on
# 30 s music-like clips: a 10 s excerpt shares 15-56 distinct keys with its work before halving.
CHROMA_KEY_SHIFT = 8
CHROMA_MIN_VOTES = 3
CHROMA_THRESHOLD = 0.25  # share of differing bits over the overlap; unrelated music: about 0.45
_CHROMA_CANDIDATES = 20


def _chroma_keys(features: Sequence[int]) -> list[int]:
    return [key for key in {f >> CHROMA_KEY_SHIFT for f in features} if (key * 0x9E3779B1) & 0x80000000 == 0]


@dataclass(frozen=True)
class Alignment:
    """Where a copy's Chromaprint features sit in a work's: the work's frame the copy starts at,
    the tempo factor of the copy, the share of differing bits and the frames compared."""

    offset: int
    tempo: float
    error: float
    frames: int

    def describe(self) -> str:
        seconds = self.offset * _CHROMA_FRAME
        where = f"from {seconds:.1f} s of the work" if self.offset >= 0 else f"{-seconds:.1f} s before the work starts"
        tempo = "" if self.tempo == 1.0 else f", tempo x{self.tempo:.2f}"
        return f"the file matched the work's audio {where} ({self.frames * _CHROMA_FRAME:.0f} s compared{tempo})"


_CHROMA_FRAME = 0.1238  # seconds per Chromaprint feature (4096-sample hop / 3 at 11025 Hz)
_TEMPOS = (1.0, 0.99, 1.01, 0.98, 1.02, 0.97, 1.03)
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def align(work: Sequence[int], copy: Sequence[int], *, min_frames: int = 40) -> Alignment | None:
    """The best alignment of ``copy`` within ``work`` over every offset and tempo within 3 %.

    The copy's sequence is stretched (a copy sped up by x covers x times more music per
    feature), then slid over the work's; at each offset the differing bits of the overlap are
    counted, with at least 90 % of the shorter sequence (and ``min_frames``) overlapping.
    """
    a = np.asarray(work, dtype=np.uint32)
    best: Alignment | None = None
    for tempo in _TEMPOS:
        index = np.round(np.arange(0, len(copy) * tempo) / tempo).astype(int)
        b = np.asarray(copy, dtype=np.uint32)[index[index < len(copy)]]
        # The copy must lie (almost) wholly inside the work: a trimmed copy or an excerpt does, and
        # a few seconds overlapping at an edge matched unrelated songs by chance (measured).
        need = max(min(min_frames, len(b)), int(0.9 * min(len(a), len(b))))
        if need < 8 or len(a) < need:
            continue
        # The work padded so that every offset with enough overlap is one window; pads count nothing.
        pad = len(b) - need
        padded = np.concatenate([np.zeros(pad, np.uint32), a, np.zeros(pad, np.uint32)])
        valid = np.concatenate([np.zeros(pad, np.uint32), np.ones(len(a), np.uint32), np.zeros(pad, np.uint32)])
        windows = np.lib.stride_tricks.sliding_window_view(padded, len(b))
        masks = np.lib.stride_tricks.sliding_window_view(valid, len(b))
        step = max(1, (1 << 20) // len(b))  # a few MB at a time
        for first in range(0, len(windows), step):
            diff = np.bitwise_xor(windows[first : first + step], b[None, :])
            bits = _POPCOUNT[diff.view(np.uint8)].reshape(len(diff), len(b), 4).sum(axis=2, dtype=np.uint32)
            counted = masks[first : first + step].sum(axis=1)
            errors = (bits * masks[first : first + step]).sum(axis=1) / np.maximum(32 * counted, 1)
            errors[counted < need] = 1.0
            at = int(np.argmin(errors))
            if best is None or float(errors[at]) < best.error:
                offset = first + at - pad
                best = Alignment(offset, tempo, float(errors[at]), int(counted[at]))
    return best


_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS works (
    n INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    format TEXT NOT NULL,
    kind TEXT,
    essence_hash TEXT,
    perceptual TEXT,
    assertion TEXT NOT NULL,
    carriers TEXT NOT NULL,
    tagged_at TEXT NOT NULL,
    source TEXT
);
CREATE INDEX IF NOT EXISTS works_essence ON works (essence_hash) WHERE essence_hash IS NOT NULL;
CREATE TABLE IF NOT EXISTS bands (
    kind TEXT NOT NULL,
    band INTEGER NOT NULL,
    value INTEGER NOT NULL,
    work INTEGER NOT NULL REFERENCES works (n) ON DELETE CASCADE,
    PRIMARY KEY (kind, band, value, work)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS regions (
    n INTEGER PRIMARY KEY,
    work INTEGER NOT NULL REFERENCES works (n) ON DELETE CASCADE,
    name TEXT NOT NULL,
    code TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS regions_work ON regions (work);
CREATE TABLE IF NOT EXISTS region_keys (
    key INTEGER NOT NULL,
    region INTEGER NOT NULL REFERENCES regions (n) ON DELETE CASCADE,
    PRIMARY KEY (key, region)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chroma (
    work INTEGER PRIMARY KEY REFERENCES works (n) ON DELETE CASCADE,
    features BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS chroma_keys (
    key INTEGER NOT NULL,
    work INTEGER NOT NULL REFERENCES works (n) ON DELETE CASCADE,
    PRIMARY KEY (key, work)
) WITHOUT ROWID;
"""

_COLUMNS = "id, path, format, kind, essence_hash, perceptual, assertion, carriers, tagged_at, source"


class Ledger:
    """A ledger file, open. Use ``Ledger.open(path)`` (a context manager)."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path
        # A version-1 ledger opened read-only has no region or Chromaprint tables to search.
        self._v2 = bool(connection.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('regions', 'chroma_keys')"
        ).fetchone()[0] == 2)
        self._legacy: dict[str, bool] = {}  # see needs_legacy_hash

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *, readonly: bool = False) -> Ledger:
        """Open the ledger at ``path``, else ``default_path()``.

        Created with its folder if missing, unless ``readonly`` (then a missing ledger is an error).
        """
        where = Path(path) if path is not None else default_path()
        try:
            if readonly:
                db = sqlite3.connect(f"{where.absolute().as_uri()}?mode=ro", uri=True, isolation_level=None, timeout=BUSY_SECONDS)
            else:
                where.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                db = sqlite3.connect(where, isolation_level=None, timeout=BUSY_SECONDS)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open the ledger {where}: {exc}") from exc
        try:
            # 32 MiB of page cache (SQLite's default is 2): a region or Chromaprint lookup reads a
            # few hundred scattered index pages, which then stay cached across a scan.
            db.execute("PRAGMA cache_size = -32768")
            if readonly:
                cls._check_version(db, where)
            else:
                cls._create(db, where)
        except sqlite3.OperationalError as exc:
            db.close()
            if "locked" in str(exc):  # not damage: another writer held it, maybe migrating a large ledger
                raise LedgerError(
                    f"the ledger {where} is busy: another rightsmeta has been writing to it for {BUSY_SECONDS:.0f} s "
                    "(migrating a large ledger to a new schema takes minutes); try again when it is done"
                ) from exc
            raise LedgerError(f"{where} is not a usable rightsmeta ledger: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            db.close()
            raise LedgerError(f"{where} is not a usable rightsmeta ledger: {exc}") from exc
        except BaseException:
            db.close()
            raise
        return cls(db, where)

    @staticmethod
    def _create(db: sqlite3.Connection, where: Path) -> None:
        db.execute("PRAGMA foreign_keys = ON")
        # WAL: readers (verify) never wait for a writer (tag), and a crash cannot corrupt it.
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            version = Ledger._check_version(db, where)
            if version is None or version < SCHEMA_VERSION:
                # Version 1 -> 2 only adds tables (made above): works recorded before keep matching
                # by their whole-picture and whole-clip codes; their regions were never recorded.
                # Version 2 -> 3 keys the recorded regions anew and drops the 16-bit bands. All in
                # this one transaction: a crash leaves the ledger as it was, migrated next time.
                if version == 2:
                    _index_regions(db)
                db.execute("DROP TABLE IF EXISTS region_bands")
                db.execute("DELETE FROM schema_version")
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @staticmethod
    def _check_version(db: sqlite3.Connection, where: Path) -> int | None:
        version: int | None = db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        if version is not None and version > SCHEMA_VERSION:
            raise LedgerError(
                f"the ledger {where} has schema version {version}, newer than this rightsmeta reads ({SCHEMA_VERSION})"
            )
        return version

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __len__(self) -> int:
        count: int = self._db.execute("SELECT COUNT(*) FROM works").fetchone()[0]
        return count

    def __iter__(self) -> Iterator[Work]:
        for row in self._db.execute(f"SELECT n, {_COLUMNS} FROM works ORDER BY n").fetchall():
            yield self._full(row)

    def get(self, work_id: str) -> Work | None:
        row = self._db.execute(f"SELECT n, {_COLUMNS} FROM works WHERE id = ?", (work_id,)).fetchone()
        return self._full(row) if row is not None else None

    def _load(self, n: int) -> Work:
        return self._full(self._db.execute(f"SELECT n, {_COLUMNS} FROM works WHERE n = ?", (n,)).fetchone())

    def _full(self, row: tuple[Any, ...]) -> Work:
        work = _work(row[1:])
        if not self._v2:
            return work
        regions = tuple(self._db.execute("SELECT name, code FROM regions WHERE work = ? ORDER BY n", (row[0],)).fetchall())
        blob = self._db.execute("SELECT features FROM chroma WHERE work = ?", (row[0],)).fetchone()
        return replace(work, regions=regions, chroma=_unpack(blob[0]) if blob else None)

    def region_codes(self, name: str, *, after: int = 0) -> list[tuple[int, str, str]]:
        """(row, work id, code) of every recorded region called ``name`` in rows after ``after``,
        in row order (rows only grow: cropsearch keeps its own index of one region this way)."""
        if not self._v2:
            return []
        return self._db.execute(
            "SELECT regions.n, works.id, regions.code FROM regions JOIN works ON works.n = regions.work "
            "WHERE regions.n > ? AND regions.name = ? ORDER BY regions.n", (after, name)
        ).fetchall()

    # --- writing ---

    def record(self, work: Work) -> bool:
        """Add ``work``; False if a work with its id is already there (nothing changes)."""
        return self.record_many([work]) == 1

    def record_many(self, works: Iterable[Work]) -> int:
        """Add many works in one transaction; the number actually added (known ids are skipped)."""
        with self._transaction():
            return sum(self._insert(work) for work in works)

    def needs_legacy_hash(self, fmt: str | None) -> bool:
        """Whether works of format ``fmt`` were recorded with the exact hash's older form, so a file of
        that format must be hashed that way too (``essence(..., legacy=True)``) to find them."""
        if fmt not in LEGACY_HASH_FORMATS:
            return False
        if fmt not in self._legacy:  # older forms are unprefixed hex digits, which sort before "v2:"
            self._legacy[fmt] = self._db.execute(
                "SELECT 1 FROM works WHERE format = ? AND essence_hash < 'v' LIMIT 1", (fmt,)
            ).fetchone() is not None
        return self._legacy[fmt]

    def _insert(self, work: Work) -> bool:
        if work.essence_hash is not None and work.essence_hash < "v":
            self._legacy.pop(work.format, None)  # an older form arrives (an import): ask again
        cursor = self._db.execute(
            f"INSERT OR IGNORE INTO works ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                work.id, work.path, work.format, work.kind, work.essence_hash, work.perceptual,
                json.dumps(work.assertion.to_json(), ensure_ascii=False), json.dumps(list(work.carriers)),
                work.tagged_at, work.source,
            ),
        )
        if cursor.rowcount != 1:
            return False
        n = cursor.lastrowid
        if work.kind is not None and work.perceptual:
            self._db.executemany(
                "INSERT OR IGNORE INTO bands (kind, band, value, work) VALUES (?, ?, ?, ?)",
                [(work.kind, i, value, n) for i, value in enumerate(_bands(work.perceptual))],
            )
        for name, code in work.regions:
            region = self._db.execute("INSERT INTO regions (work, name, code) VALUES (?, ?, ?)", (n, name, code)).lastrowid
            self._db.executemany(
                "INSERT OR IGNORE INTO region_keys (key, region) VALUES (?, ?)", [(key, region) for key in _region_keys(code)]
            )
        if work.chroma:
            self._db.execute("INSERT INTO chroma (work, features) VALUES (?, ?)", (n, _pack(work.chroma)))
            self._db.executemany(
                "INSERT OR IGNORE INTO chroma_keys (key, work) VALUES (?, ?)", [(key, n) for key in _chroma_keys(work.chroma)]
            )
        return True

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        # Explicit and IMMEDIATE: the write lock is taken up front, so two taggers never deadlock.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- lookup ---

    def find(self, essence: Essence, *, threshold: float | None = None) -> Match | None:
        """The work this essence belongs to: the exact hash first, else the nearest perceptual match."""
        found = self.matches(essence, threshold=threshold, limit=1)
        return found[0] if found else None

    def matches(self, essence: Essence, *, threshold: float | None = None, limit: int = 10) -> list[Match]:
        """Works matching ``essence``, best first: works tagged here before imported ones, then
        exact hashes (newest first) before perceptual matches (nearest first).

        Every work that matches is listed (up to ``limit``): when a registry claims the same
        essence as a local work, both are reported, and ``combined`` decides between them.
        """
        out: list[Match] = []
        if essence.hash is not None:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM works WHERE essence_hash IN (?, ?) AND kind IS ? ORDER BY tagged_at DESC, n DESC "
                "LIMIT ?",
                (essence.hash, essence.legacy_hash or essence.hash, essence.kind, _MAX_CANDIDATES),
            ).fetchall()
            out = [Match(_work(row), 0.0, True) for row in rows]
        if essence.kind is not None and essence.perceptual:
            limit_distance = MATCH_THRESHOLD.get(essence.kind, 0.0) if threshold is None else threshold
            exact = {m.work.id for m in out}
            near = sorted(
                (d, n) for n, d in self._near(essence.kind, essence.perceptual, limit_distance) if d <= limit_distance
            )
            for d, n in near[:_MAX_CANDIDATES]:
                work = self._load(n)
                if work.id not in exact:
                    out.append(Match(work, d, False))
        if not out and self._v2:
            # Nothing matched the file as it is: look for the work it was cut from, turned or
            # covered (image regions), or trimmed, excerpted or slowed (audio at an offset).
            out = self._region_matches(essence) if essence.kind == "image" else self._chroma_matches(essence)
        out.sort(key=_rank)
        return out[:limit]

    def _region_matches(self, essence: Essence) -> list[Match]:
        probes = [(probe, code, int(code, 16)) for probe, code in essence.probes if _REGION_CODE.match(code)]
        best: dict[int, tuple[float, str, str]] = {}
        for work, name, other in self._region_candidates([code for _, code, _ in probes]):
            if not _REGION_CODE.match(other):
                continue
            value = int(other, 16)
            for probe, _, target in probes:
                if not region_pair_allowed(probe, name):
                    continue
                d = (target ^ value).bit_count() / 256
                if d <= REGION_THRESHOLD and (work not in best or d < best[work][0]):
                    best[work] = (d, probe, name)
        out = []
        for work, (d, probe, name) in sorted(best.items(), key=lambda item: item[1][0])[:_MAX_CANDIDATES]:
            out.append(Match(self._load(work), d, False, f"the file ({probe}) matched the work's {name}"))
        return out

    def _region_candidates(self, codes: list[str]) -> list[tuple[int, str, str]]:
        """(work, name, code) of the regions sharing an index key with any of ``codes``."""
        if not codes:
            return []
        # One read transaction: the tables seen are the ones searched, even if a writer migrates
        # the ledger from version 2 meanwhile.
        own = not self._db.in_transaction
        if own:
            self._db.execute("BEGIN")
        try:
            if self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'region_keys'").fetchone():
                keys = _probe_keys(codes)
                step = max(1, self._db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - 1)
                found = set()
                for first in range(0, len(keys), step):
                    chunk = keys[first : first + step]
                    found.update(self._db.execute(
                        f"SELECT region FROM region_keys WHERE key IN ({','.join('?' * len(chunk))})", chunk
                    ).fetchall())
                regions = sorted(n for (n,) in found)
            else:
                regions = self._version_2_candidates(codes)
            rows: list[tuple[int, str, str]] = []
            for first in range(0, len(regions), 900):
                chunk = regions[first : first + 900]
                rows += self._db.execute(
                    f"SELECT work, name, code FROM regions WHERE n IN ({','.join('?' * len(chunk))})", chunk
                ).fetchall()
            return rows
        finally:
            if own:
                self._db.execute("COMMIT")

    def _version_2_candidates(self, codes: list[str]) -> list[int]:
        """Schema 2's region index (a ledger opened read-only is not migrated): the regions sharing
        at least two 16-bit bands with a code."""
        found: set[int] = set()
        for code in codes:
            bands = _bands(code)
            selects = " UNION ALL ".join(["SELECT region FROM region_bands WHERE band = ? AND value = ?"] * len(bands))
            params = [x for pair in enumerate(bands) for x in pair]
            found.update(n for (n,) in self._db.execute(
                f"SELECT region FROM ({selects}) GROUP BY region HAVING COUNT(*) >= 2", params
            ))
        return sorted(found)

    def _chroma_matches(self, essence: Essence) -> list[Match]:
        if not essence.chroma:
            return []
        keys = sorted(set(_chroma_keys(essence.chroma)))
        votes: dict[int, int] = {}
        for first in range(0, len(keys), 900):
            chunk = keys[first : first + 900]
            for work, count in self._db.execute(
                f"SELECT work, COUNT(*) FROM chroma_keys WHERE key IN ({','.join('?' * len(chunk))}) GROUP BY work", chunk
            ):
                votes[work] = votes.get(work, 0) + count
        ranked = sorted((w for w, c in votes.items() if c >= CHROMA_MIN_VOTES), key=lambda w: -votes[w])
        out = []
        for work in ranked[:_CHROMA_CANDIDATES]:
            blob = self._db.execute("SELECT features FROM chroma WHERE work = ?", (work,)).fetchone()
            if blob is None:
                continue
            aligned = align(_unpack(blob[0]), essence.chroma)
            if aligned is not None and aligned.error <= CHROMA_THRESHOLD:
                out.append(Match(self._load(work), aligned.error, False, aligned.describe()))
        return out

    def _near(self, kind: str, perceptual: str, threshold: float) -> list[tuple[int, float]]:
        """(row, distance) of every indexed code sharing a band with ``perceptual`` within the radius
        the threshold needs: a superset of the codes within the threshold, a small part of the table."""
        bands = _bands(perceptual)
        if not bands:
            return []
        max_bits = int(threshold * BAND_BITS * len(bands) + 1e-9)
        radius = min(BAND_BITS, -(-(max_bits + 1) // len(bands)) - 1)  # ceil((t+1)/m) - 1
        masks = _masks(radius)
        per_statement = max(1, 900 // (len(masks) + 2))  # bands per statement, under SQLite's parameter limit
        target, width = int(perceptual, 16), 4 * len(perceptual)
        found: dict[int, float] = {}
        for first in range(0, len(bands), per_statement):
            selects, params = [], []
            for index in range(first, min(first + per_statement, len(bands))):
                probes = sorted({bands[index] ^ mask for mask in masks})
                selects.append(f"SELECT work FROM bands WHERE kind = ? AND band = ? AND value IN ({','.join('?' * len(probes))})")
                params += [kind, index, *probes]
            rows = self._db.execute(
                f"SELECT n, perceptual FROM works WHERE n IN ({' UNION '.join(selects)})", params
            )
            for n, code in rows:
                if len(code) == len(perceptual):  # a code of another length is never comparable
                    found[n] = (target ^ int(code, 16)).bit_count() / width
        return list(found.items())

    # --- JSON Lines ---

    def export_jsonl(self, fh: TextIO, *, paths: bool = True) -> int:
        """Write every work as one JSON line; with ``paths=False`` only file names (no local folders)."""
        count = 0
        for work in self:
            if not paths:
                work = replace(work, path=os.path.basename(work.path))
            fh.write(json.dumps(work.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
        return count

    def import_jsonl(self, fh: Iterable[str] | Iterable[bytes], *, source: str | None = None) -> int:
        """Add the works of a JSON Lines registry; the number added (works already present are skipped).

        Text or bytes (UTF-8) lines. Every imported work gets a ``source``: its own, else
        ``source`` (who published the registry), else ``IMPORTED``, so it can never pass for a
        work tagged here. A bad line raises ``LedgerError`` naming its number, and nothing from
        the file is kept.
        """
        added = 0
        readline = getattr(fh, "readline", None)
        # readline with a limit: a hostile file's one endless line is never read whole.
        lines: Iterable[str | bytes] = iter(lambda: readline(MAX_LINE + 1), readline(0)) if readline else fh
        label = source or IMPORTED
        with self._transaction():
            for number, line in enumerate(lines, start=1):
                if isinstance(line, bytes):
                    try:
                        line = line.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise LedgerError(f"line {number}: not UTF-8 (byte 0x{line[exc.start]:02x} at offset {exc.start})") from None
                if len(line.rstrip("\r\n")) > MAX_LINE:
                    raise LedgerError(f"line {number}: longer than {MAX_LINE} characters")
                if not line.strip():
                    continue
                if _depth(line) > MAX_JSON_DEPTH:
                    raise LedgerError(f"line {number}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
                try:
                    work = Work.from_json(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise LedgerError(f"line {number}: not JSON ({exc.msg} at column {exc.colno})") from None
                except RecursionError:
                    raise LedgerError(f"line {number}: JSON nested too deeply") from None
                except LedgerError as exc:
                    raise LedgerError(f"line {number}: {exc}") from None
                if not work.source:
                    work = replace(work, source=label)
                added += self._insert(work)
        return added


def _index_regions(db: sqlite3.Connection) -> None:
    """Key every recorded region code (the migration from schema 2), in order of key.

    The keys come sorted out of SQLite's own sorter (temporary files when large), so the index is
    appended page by page rather than written at random places, and memory stays bounded whatever
    the size of the ledger (time and peak RSS: bench/region_lookup.py --migrate).
    """
    db.create_function("rightsmeta_region_key", 2, _region_key_of, deterministic=True)
    windows = " UNION ALL ".join(f"SELECT {window} AS w" for window in range(_REGION_WINDOWS))
    db.execute(
        "INSERT OR IGNORE INTO region_keys (key, region) "
        "SELECT key, region FROM (SELECT rightsmeta_region_key(code, win.w) AS key, n AS region "
        f"FROM regions, ({windows}) AS win) WHERE key IS NOT NULL ORDER BY key, region"
    )


def _region_key_of(code: object, window: int) -> int | None:
    if not isinstance(code, str) or not _REGION_CODE.match(code):
        return None  # never written by rightsmeta; such a region is not searchable, as before
    return _region_key(int(code, 16), window)


def _depth(line: str) -> int:
    """How deeply the brackets of a JSON text nest (strings skipped), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for char in line:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _work(row: tuple[Any, ...]) -> Work:
    work_id, path, fmt, kind, essence_hash, perceptual, assertion, carriers, tagged_at, source = row
    return Work(
        id=work_id,
        path=path,
        format=fmt,
        essence_hash=essence_hash,
        kind=kind,
        perceptual=perceptual,
        assertion=Assertion.from_json(json.loads(assertion)),
        carriers=list(json.loads(carriers)),
        tagged_at=tagged_at,
        source=source,
    )
