"""The ledger: a local SQLite registry of every tagged work, to recognise copies whose metadata is gone.

Each row (a ``Work``) holds what was tagged (path, format), its essence (``fingerprint.essence``:
an exact hash of the decoded content and a perceptual code), the assertion written and the
carriers it went into, when, and for imported registries who published it (``source``).

``Ledger.find(essence)`` answers "which tagged work is this?": first an exact essence-hash match
(distance 0), else the nearest perceptual code of the same kind within
``fingerprint.MATCH_THRESHOLD``. Perceptual codes are split into bands stored in an indexed
table (multi-index hashing, Norouzi et al. 2012): if two codes of m bands differ in at most
m(r+1)-1 bits, at least one band differs in at most r bits, so probing each band's value and its
neighbours within r bits finds every code within m(r+1)-1 bits without scanning the table. Text
and audio codes have 16-bit bands, probed within r = 1 (text: 31 of 256 bits, 16 bands x 17
probes) and r = 2 (audio: 23 of 128 bits, 8 bands x 137 probes), every code within the threshold
found. Image codes have 12 bands of 21-22 bits probed within r = 1 (``IMAGE_BAND_WIDTHS``): every
code within 23 bits is found, and one 24-31 bits away when its differing bits leave a band within
one bit, as real copies' do (a trade for lookups that cost about the same at 100,000 works as at
1,000). The distance is then computed for the candidates only, from the code kept beside each
band key (``whole_bands``).

When neither finds anything, the copy may be a part or a changed form of a work (issue 17):

- images: every work is recorded with the codes of regions of it (``Essence.regions``: the
  whole, centred crops, aspect crops, halves, corner squares) and the copy is looked up with the
  codes of forms of it (``Essence.probes``: its flips and quarter turns, slight centred crops,
  halves, corner squares, and those parts flipped and turned back), each
  probe against the regions it can be (``fingerprint.region_pair_allowed``), within
  ``REGION_THRESHOLD``. Region codes are indexed by 8 keys of 32 of their bits (``_region_keys``),
  so a lookup costs the same index seeks whatever the size of the ledger, and finds almost no
  code by chance (bench/region_lookup.py).
- audio: the Chromaprint features are recorded, and half of their 24-bit keys indexed; the works
  sharing the most keys with a copy are aligned with it at every offset and tempo within 3 %
  (``align``) and match when at most ``CHROMA_THRESHOLD`` of the bits differ.

``Match.how`` says which region and which form matched, or where in the work and at what tempo;
``Match.region`` and ``Match.form`` say the same for code.
Schema version 2 added these tables; a version-1 ledger is migrated when opened for writing (its
works keep matching by their whole codes), and read as it is when opened read-only. Version 3
replaced version 2's 16-bit region bands with 24-bit windows: a version-2 ledger is migrated in one
transaction when opened for writing (killed half-way, it is still the version-2 ledger it was),
and searched through its old bands when opened read-only. Version 4 keeps a work's region codes in
one row keyed by 32-bit keys, and writes index rows for many works at once (``INDEX_EVERY``);
versions 1-3 are migrated to it the same way, and read-only opens search them as they are.
Version 5 records which grids an image work's codes were cut with (``Work.grids``;
fingerprint.AREA_SIDE): every work of an older ledger has grids v1, and while a ledger holds
such works a copy is looked up by its codes of both grids, each work compared with the codes of
its own (``needs_legacy_grids``, ``essence_of``); the migration adds the column in one step.

The JSON Lines format of ``export_jsonl``/``import_jsonl`` is ``schemas/ledger-line.schema.json``;
importing validates every line, names the first bad one by its line number, imports nothing from
a file with a bad line, and skips works already present (same ``id``), so importing twice is
harmless.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import functools
import itertools
import json
import operator
import os
import re
import sqlite3
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from json.encoder import encode_basestring as _json_text  # json.dumps of a str, ensure_ascii=False
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TextIO, TypeVar

import numpy as np

from . import paths
from .decide import strongest
from .errors import RightsmetaError
from .fingerprint import (
    GRIDS,
    GRIDS_V1,
    KINDS,
    LEGACY_HASH_FORMATS,
    MATCH_THRESHOLD,
    PERCEPTUAL_BITS,
    WHOLE,
    Essence,
    essence,
    probe_form,
    region_pair_allowed,
    turned_part,
)
from .model import PURPOSES, UNSPECIFIED, Assertion, Permission, Purpose, new_work_id

Array = np.ndarray[Any, Any]
_Found = TypeVar("_Found")  # what a lookup found of a work: (work, distance), (distance, work, probe, region)

# 2: region codes of images and Chromaprint features of audio (issue 17); 3: region keys of 24-bit
# windows; 4: a work's region codes in one row, keyed by 8 keys of 32 bits; whole codes as bytes;
# 5: which grids each image work's codes were cut with (``works.grids``, see fingerprint.AREA_SIDE)
SCHEMA_VERSION = 5
BAND_BITS = 16
MAX_LINE = 1024 * 1024  # one JSONL line; an assertion is a few hundred bytes
MAX_JSON_DEPTH = 32  # a ledger line nests four levels; deeper is hostile (json recursion)
_MAX_CANDIDATES = 100  # works considered per lookup, before ranking
BUSY_SECONDS = 30.0  # how long opening waits for another writer's transaction
IMPORTED = "imported registry"  # the source of imported lines when the importer names none
# The source of a rendition ``carry`` recorded here, followed by its work's id: a local record (an
# imported line's own source never starts so: ``import_jsonl`` puts its publisher's name first).
DERIVED = "derived from "

_ESSENCE_HASH = re.compile(r"^(v2:)?[0-9a-f]{64}$")  # fingerprint.HASH_V2: taken from the coded data
_HEX = re.compile(r"^[0-9a-f]+$")
_FORMAT = re.compile(r"^[a-z0-9]{1,16}$")
# Work ids: visible ASCII, starting with a letter or digit (a UUID, a URN, a registry's own key);
# never a space, a control character or a spreadsheet formula prefix.
_WORK_ID = re.compile(r"^[A-Za-z0-9][!-~]{0,199}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FIELDS = ("id", "path", "format", "kind", "essence_hash", "perceptual", "assertion", "carriers", "tagged_at", "source",
           "regions", "chroma", "grids")
_OPTIONAL = frozenset({"source", "regions", "chroma", "grids"})
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
    grids: int = GRIDS  # images: the grids the codes were cut with (fingerprint.GRIDS_V1 or GRIDS_V2)

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
            id=id or new_work_id(),
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
            grids=essence.grids,
        )

    @property
    def derived_from(self) -> str | None:
        """The id of the work this record is a rendition of, when ``carry`` recorded it here."""
        return self.source[len(DERIVED):] if self.source is not None and self.source.startswith(DERIVED) else None

    @property
    def essence(self) -> Essence:
        return Essence(self.kind, self.essence_hash, self.perceptual, regions=self.regions, chroma=self.chroma,
                       grids=self.grids)

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
        if self.kind == "image" and self.grids != GRIDS_V1:  # absent: v1, as every line written before
            out["grids"] = self.grids
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
        grids = data.get("grids", GRIDS_V1 if kind == "image" else GRIDS)  # a line without it: an older image work
        if "grids" in data and (kind != "image" or type(grids) is not int or grids not in (GRIDS_V1, GRIDS)):
            raise LedgerError(f"'grids' must be {GRIDS_V1} or {GRIDS}, for images only, got {grids!r}")
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
            grids=grids,
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


EXCERPT = "audio excerpt"  # Match.region of audio matched at an offset or tempo (``align``): a part in time


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
    # What ``how`` says, for code that decides by it (carry's C2PA actions): prose is for people,
    # and rewording it must not change a decision.
    region: str = WHOLE  # the work's part that matched: WHOLE, a region's name (fingerprint), the crop search's, EXCERPT
    form: str | None = None  # the flip or turn of the copy that matched (a name in fingerprint.TURNS); None: as it is
    probe: str | None = None  # the copy's part that matched the region (a fingerprint probe's name); None: not a region match

    @property
    def imported(self) -> bool:
        """The work came from a registry someone published, not from this ledger's own tagging
        (nor from its own carrying of a statement to a rendition)."""
        return self.work.source is not None and self.work.derived_from is None

    def describe(self) -> str:
        how = "same essence" if self.exact else f"perceptual distance {self.distance:.3f}"
        if self.how:
            how += f", {self.how}"
        if self.imported:
            how += f"; imported from {self.work.source}"
        elif self.work.derived_from is not None:
            how += f"; a rendition carried from work {self.work.derived_from}"
        return f"{self.work.path or self.work.id} ({how})"


def _rank(match: Match) -> tuple[bool, bool, float, str]:
    # The creator's own records first: an imported line never outranks a local one by being
    # newer or nearer. Then the same essence before a perceptual match, nearest, newest.
    return (match.imported, not match.exact, match.distance, _invert(match.work.tagged_at))


def _invert(text: str) -> str:
    return "".join(chr(0x10FFFF - ord(c)) for c in text)  # sorts newest first within a key


def current(matches: Sequence[Match]) -> list[Match]:
    """``matches`` without the superseded records of a work: of the records of one file tagged here
    again (``_work_of``), only the newest stays, so a creator's re-tagging decides instead of
    mixing with the statement it replaced. Imported
    records are other publishers' claims, never superseded: with the rest they go to
    ``combined``'s most restrictive rule. At equal ``tagged_at`` (it counts seconds) the first
    listed stays, the one recorded last (``Ledger.matches``)."""
    newest: dict[object, Match] = {}
    for match in matches:
        work = _work_of(match)
        if work is not None and (work not in newest or match.work.tagged_at > newest[work].work.tagged_at):
            newest[work] = match
    return [m for m in matches if (work := _work_of(m)) is None or newest[work] is m]


def _work_of(match: Match) -> object | None:
    """What makes two records one file tagged here again, or None for a record never superseded."""
    return _retag_key(match.work) if not match.imported else None


def _retag_key(work: Work) -> tuple[str, str, str] | None:
    """The same exact hash is not the same work: a video is hashed by its sound alone, a WAV and a
    FLAC of one recording share their samples' hash. Only the same file tagged again (its essence,
    format and path) replaces its older statement. None for what is never superseded: a record
    without an exact hash; the service's uploads (``upload:NAME``, a name any client may send);
    a rendition (it follows its work through ``Ledger._followed``; and a ledger may hold "derived
    from" lines imported before ``import_jsonl`` labelled them)."""
    if work.essence_hash is None or work.derived_from is not None or not os.path.isabs(work.path):
        return None
    return (work.essence_hash, work.format, work.path)


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


@functools.cache
def _masks(radius: int, width: int = BAND_BITS) -> tuple[int, ...]:
    """Every ``width``-bit word with at most ``radius`` bits set (the probes around one band value)."""
    return tuple(
        sum(1 << bit for bit in bits) for r in range(radius + 1) for bits in itertools.combinations(range(width), r)
    )


# Region codes (issue 17) are indexed by keys of 32 of their bits, looked up exactly: a region
# code is a candidate when one of its keys equals a probe's. The 256 bits are taken in order of
# DCT frequency (the code's four 8x8 blocks of coefficients, fingerprint._image_hashes, laid out
# as the 16x16 lowest frequencies; lowest first) and cut into 8 keys of 32. Every flipped bit
# spoils one key, so every code within 7 bits of a probe is found; real copies do better, as
# their differing bits lie in the high frequencies (bench/region_lookup.py --recall: of the
# bench's true (probe, region) pairs, block 0's bits flip in 1.5 %, block 3's in 4.5 %), and
# the low-frequency keys survive. Keys of 32 bits hold almost no code by chance, also for real
# codes, which share far more bits than random ones: schema 3's 24-bit windows at every 12th bit
# read ~800 chance candidates per lookup at 100,000 real works (estimated from 6,000 works'
# codes), these ~2. A work's region codes are one row (``region_sets``), its keys 8 per region.
REGION_THRESHOLD = 24 / 256
REGION_KEY_BITS = 32
_REGION_WINDOWS = 256 // REGION_KEY_BITS
_REGION_CODE = re.compile(r"^[0-9a-f]{64}$")
_REF_BITS = 5  # an index row's ref: the work's row << 5 | the region's place in its set (MAX_REGIONS)


def _frequency_order() -> np.ndarray[Any, Any]:
    """The bit positions of a region code (0: the top bit of its first byte), lowest frequency first."""
    corners = ((0, 0), (8, 0), (0, 8), (8, 8))  # (x, y) of each 8x8 block, in the code's order

    def frequency(position: int) -> tuple[int, int]:
        x, y = corners[position // 64]
        u, v = y + position % 64 // 8, x + position % 8
        return (u + v, u)

    return np.array(sorted(range(256), key=frequency))


_FREQUENCY_ORDER = _frequency_order()
_WINDOW_TAGS = np.arange(_REGION_WINDOWS, dtype=np.int64) << REGION_KEY_BITS

# Whole image codes (schema 4's ``whole_bands``) are cut into 12 bands of 21-22 bits, taken in
# the same DCT frequency order, and each band is probed within one bit: every code within 23 bits
# is found, and a code 24-31 bits away (MATCH_THRESHOLD) when its differing bits cluster, as a
# real copy's do in the high frequencies, leaving a low-frequency band within one bit. 16 bands
# of 16 bits guaranteed all 31 bits but read ~730 chance rows per lookup at 100,000 works of
# real codes (which share their low frequencies far more than random codes); these ~20, for the
# same ~270 probes (bench/region_lookup.py; its --recall counts the copies 24-31 bits away that the
# bands find: all 56 of 100 photos x 29 handlings). Audio and text codes keep 16-bit bands in
# code order, probed as far as their threshold needs.
IMAGE_BAND_WIDTHS = (22,) * 4 + (21,) * 8
IMAGE_BAND_RADIUS = 1


def _region_keys(codes: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """(n, 8) keys of n region codes given as (n, 32) bytes: the window's number << 32 | its 32 bits."""
    return _in_frequency_order(codes.reshape(-1, 32)).view(">u4").astype(np.int64) | _WINDOW_TAGS


def _in_frequency_order(codes: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """(n, 32) bytes of n region codes, (n, 32) bytes of their bits lowest frequency first."""
    # Packed as one run of bits (each code's 256 fill whole bytes): numpy packs a flat array 2.7x
    # faster than along an axis (6,400 codes: 6.1 -> 2.3 ms), to the same bytes.
    return np.packbits(np.unpackbits(codes, axis=1)[:, _FREQUENCY_ORDER]).reshape(-1, 32)


def _code_array(codes: Sequence[str]) -> np.ndarray[Any, Any]:
    """(n, 32) bytes of n hex region codes."""
    return np.frombuffer(bytes.fromhex("".join(codes)), np.uint8).reshape(len(codes), 32)


# Schema 3 (read-only ledgers not yet migrated): windows of 24 bits at every 12th bit, 20 a code.
_V3_KEY_BITS, _V3_KEY_STEP = 24, 12


def _v3_probe_keys(codes: Sequence[str]) -> list[int]:
    """Schema 3's keys of every code, each once, sorted."""
    mask = (1 << _V3_KEY_BITS) - 1
    return sorted({
        window << _V3_KEY_BITS | (value >> (_V3_KEY_STEP * window)) & mask
        for value in (int(code, 16) for code in codes)
        for window in range((256 - _V3_KEY_BITS) // _V3_KEY_STEP + 1)
    })


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
            bits = np.bitwise_count(diff)
            counted = masks[first : first + step].sum(axis=1)
            errors = (bits * masks[first : first + step]).sum(axis=1) / np.maximum(32 * counted, 1)
            errors[counted < need] = 1.0
            at = int(np.argmin(errors))
            if best is None or float(errors[at]) < best.error:
                offset = first + at - pad
                best = Alignment(offset, tempo, float(errors[at]), int(counted[at]))
    return best


# Version 4: ``whole_bands`` keys each perceptual code by its bands (the kind's number << 40 |
# band << 24 | value; see IMAGE_BAND_WIDTHS) and holds the code as bytes, so a band's candidates
# are checked where they are found, not by a seek into the works' rows each; ``region_sets`` a work's region names (joined by
# _NAME_SEPARATOR) and codes (32 bytes each, in the same order); ``region_index`` each region's 8
# keys (see _region_keys) with its ref, work << 5 | its place in the set. Version 5: ``works.grids``,
# the grids an image work's codes were cut with (1 for every work recorded before: the default);
# a ledger holding any such work compares them with a copy's v1 codes (``needs_legacy_grids``).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS indexed (upto INTEGER NOT NULL);
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
    source TEXT,
    grids INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS works_essence ON works (essence_hash) WHERE essence_hash IS NOT NULL;
CREATE TABLE IF NOT EXISTS whole_bands (
    key INTEGER NOT NULL,
    work INTEGER NOT NULL REFERENCES works (n) ON DELETE CASCADE,
    code BLOB NOT NULL,
    PRIMARY KEY (key, work)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS region_sets (
    work INTEGER PRIMARY KEY REFERENCES works (n) ON DELETE CASCADE,
    names TEXT NOT NULL,
    codes BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS region_index (
    key INTEGER NOT NULL,
    ref INTEGER NOT NULL,
    PRIMARY KEY (key, ref)
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

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _locked(method: Callable[Concatenate[Ledger, _P], _R]) -> Callable[Concatenate[Ledger, _P], _R]:
    """One call at a time on the ledger's connection: a server's threads share one open ledger, and
    a read or write transaction must not take in another thread's statements (nor its caches)."""

    @functools.wraps(method)
    def locked(self: Ledger, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


def drop_wal(path: Path) -> None:
    """Remove the ``-wal`` and ``-shm`` files a read-only connection made and cannot remove.

    A reader opened ``mode=ro`` creates them when they are missing, and SQLite removes them only when
    the last connection to close may checkpoint, which a read-only one may not: every verify left them
    beside the ledger (in the folder ``demo --keep`` gives the user). A connection that may write,
    closed right after, removes them when it is the last one, and does nothing while another is open.
    It never creates a ledger, and a ledger it cannot write stays as it is."""
    try:
        with contextlib.closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True, timeout=0)) as db:
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1")  # the WAL is opened with the first read, not before
    except sqlite3.Error:
        pass  # busy, gone or not writable: the files stay, harmless to SQLite


class Ledger:
    """A ledger file, open. Use ``Ledger.open(path)`` (a context manager)."""

    def __init__(self, connection: sqlite3.Connection, path: Path, *, writer: bool = False) -> None:
        self._db = connection
        self._lock = threading.RLock()  # see _locked
        self.path = path
        self._writer = writer  # opened for writing: indexes its tail when closed
        self._legacy: dict[str, bool] = {}  # see needs_legacy_hash
        self._legacy_grids: bool | None = None  # see needs_legacy_grids
        self._grids_column = False  # see _columns

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *, readonly: bool = False) -> Ledger:
        """Open the ledger at ``path``, else ``default_path()``.

        Created with its folder if missing, unless ``readonly`` (then a missing ledger is an error).
        """
        where = Path(path) if path is not None else default_path()
        try:
            if readonly:
                db = sqlite3.connect(f"{where.absolute().as_uri()}?mode=ro", uri=True, isolation_level=None, timeout=BUSY_SECONDS,
                                     check_same_thread=False)
            else:
                where.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                db = sqlite3.connect(where, isolation_level=None, timeout=BUSY_SECONDS, check_same_thread=False)
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
                    "(migrating a large ledger to a new schema takes a while); try again when it is done"
                ) from exc
            raise LedgerError(f"{where} is not a usable rightsmeta ledger: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            db.close()
            raise LedgerError(f"{where} is not a usable rightsmeta ledger: {exc}") from exc
        except BaseException:
            db.close()
            raise
        return cls(db, where, writer=not readonly)

    @classmethod
    def in_memory(cls) -> Ledger:
        """An empty ledger in memory, gone when closed: files compared as a ledger compares them,
        with nothing written to disk."""
        return cls.open(":memory:")  # SQLite's name for a database in memory

    @staticmethod
    def _create(db: sqlite3.Connection, where: Path) -> None:
        # WAL: readers (verify) never wait for a writer (tag), and a crash cannot corrupt it.
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("INSERT INTO indexed (upto) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM indexed)")
            version = Ledger._check_version(db, where)
            if version is None or version < SCHEMA_VERSION:
                # Version 1 -> 2 only added tables: works recorded before keep matching by their
                # whole codes; their regions were never recorded. Versions 2 and 3 kept a row per
                # region, keyed by 16-bit bands or 24-bit windows: version 4 keeps one row per
                # work and keys it anew. All in this one transaction: a crash leaves the ledger as
                # it was, migrated next time.
                if version is not None:
                    _migrate(db, version)
                db.execute("DELETE FROM schema_version")
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            _index(db, where)  # what a killed writer left in the tail, or every work of a migrated ledger
            db.execute(_V1_GRIDS_INDEX)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        # After the migration: with foreign keys on, dropping the old tables would delete their
        # rows one by one first (and the pragma cannot change inside a transaction).
        db.execute("PRAGMA foreign_keys = ON")

    @staticmethod
    def _check_version(db: sqlite3.Connection, where: Path) -> int | None:
        version: int | None = db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        if version is not None and version > SCHEMA_VERSION:
            raise LedgerError(
                f"the ledger {where} has schema version {version}, newer than this rightsmeta reads ({SCHEMA_VERSION})"
            )
        return version

    def _layout(self) -> int:
        """Where the region codes are, as of this transaction (a writer may migrate the ledger
        while it is open read-only): 4 in ``region_sets``; 3 or 2 a row per region, keyed by
        24-bit windows or by 16-bit bands; 1 nowhere (a version-1 ledger read as it is)."""
        names = {name for (name,) in self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('region_sets', 'region_keys', 'region_bands')"
        )}
        return 4 if "region_sets" in names else 3 if "region_keys" in names else 2 if "region_bands" in names else 1

    @contextlib.contextmanager
    def _reading(self) -> Iterator[int]:
        """One read transaction (the tables seen are the ones searched), and the layout it sees."""
        own = not self._db.in_transaction
        if own:
            self._db.execute("BEGIN")
        try:
            yield self._layout()
        except sqlite3.DatabaseError as exc:
            # A value of the wrong type (a TEXT blob that is not UTF-8), a damaged page: the file
            # is not the ledger rightsmeta wrote. Said as such, not as an internal error.
            raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from exc
        finally:
            if own:
                self._db.execute("COMMIT")

    @_locked
    def close(self) -> None:
        try:
            if self._writer and self._tail_length() > 0:
                with self._transaction():
                    _index(self._db, self.path)
        except sqlite3.Error:
            pass  # busy or read-only now: the tail stays searchable, and the next writer indexes it
        finally:
            self._db.close()
        if not self._writer:
            drop_wal(self.path)

    def _tail_length(self) -> int:
        """How many works are recorded but not yet indexed (see INDEX_EVERY)."""
        count: int = self._db.execute("SELECT COUNT(*) FROM works WHERE n > (SELECT upto FROM indexed)").fetchone()[0]
        return count

    def _upto(self) -> int:
        """The last work indexed; the works after it are compared one by one."""
        upto: int = self._db.execute("SELECT upto FROM indexed").fetchone()[0]
        return upto

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @_locked
    def __len__(self) -> int:
        count: int = self._db.execute("SELECT COUNT(*) FROM works").fetchone()[0]
        return count

    def __iter__(self) -> Iterator[Work]:
        with self._lock:
            rows = self._db.execute(f"SELECT n, {self._columns()} FROM works ORDER BY n").fetchall()
        for row in rows:
            with self._lock:
                work = self._full(row)
            yield work

    @_locked
    def get(self, work_id: str) -> Work | None:
        row = self._db.execute(f"SELECT n, {self._columns()} FROM works WHERE id = ?", (work_id,)).fetchone()
        return self._full(row) if row is not None else None

    def _load(self, n: int) -> Work:
        return self._full(self._db.execute(f"SELECT n, {self._columns()} FROM works WHERE n = ?", (n,)).fetchone())

    def _full(self, row: tuple[Any, ...]) -> Work:
        work = _work(row[1:])
        with self._reading() as layout:
            if layout == 1:
                return work
            if layout == 4:
                found = self._region_sets([row[0]]).get(row[0])
                regions = tuple(zip(found[0], (code.tobytes().hex() for code in found[1]), strict=True)) if found else ()
            else:
                regions = tuple(self._db.execute("SELECT name, code FROM regions WHERE work = ? ORDER BY n", (row[0],)))
            blob = self._db.execute("SELECT features FROM chroma WHERE work = ?", (row[0],)).fetchone()
        return replace(work, regions=regions, chroma=_unpack(blob[0]) if blob else None)

    @_locked
    def region_codes(self, name: str, *, after: int = 0) -> list[tuple[int, str, str, int]]:
        """(row, work id, code, grids) of every recorded region called ``name`` in rows after
        ``after``, in row order (rows only grow: cropsearch keeps its own index of one region this
        way); ``grids``: what the code was cut with (fingerprint.GRIDS_V1 or GRIDS_V2)."""
        with self._reading() as layout:
            if layout == 1:
                return []
            if layout < 4:
                return self._db.execute(
                    f"SELECT regions.n, works.id, regions.code, {GRIDS_V1} FROM regions JOIN works ON works.n = regions.work "
                    "WHERE regions.n > ? AND regions.name = ? ORDER BY regions.n", (after, name)
                ).fetchall()
            out = []
            grids = "works.grids" if self._has_grids() else str(GRIDS_V1)
            # A region's row is its index ref (work << 5 | place), above any schema-3 row of its work.
            for work, work_id, names, codes, version in self._db.execute(
                f"SELECT region_sets.work, works.id, region_sets.names, region_sets.codes, {grids} FROM region_sets "
                "JOIN works ON works.n = region_sets.work WHERE region_sets.work >= ? ORDER BY region_sets.work",
                (after >> _REF_BITS,),
            ):
                listed, recorded = self._region_set(work, names, codes)
                if name in listed and (ref := work << _REF_BITS | listed.index(name)) > after:
                    out.append((ref, work_id, recorded[listed.index(name)].tobytes().hex(), version))
            return out

    # --- writing ---

    def record(self, work: Work) -> bool:
        """Add ``work``; False if a work with its id is already there (nothing changes)."""
        return self.record_many([work]) == 1

    @_locked
    def record_many(self, works: Iterable[Work]) -> int:
        """Add many works in one transaction; the number actually added (known ids are skipped)."""
        with self._transaction():
            added = sum(self._insert(work) for work in works)
            self._index_if_due()
            return added

    @_locked
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

    def essence_of(self, data: bytes, fmt: str, password: str | None = None) -> Essence:
        """The essence of a file to look up here (``fingerprint.essence``), with the older forms of
        its hash and codes when this ledger holds works recorded with them."""
        return essence(data, fmt, legacy=self.needs_legacy_hash(fmt), legacy_grids=self.needs_legacy_grids(), password=password)

    @_locked
    def needs_legacy_grids(self) -> bool:
        """Whether the ledger holds image works whose codes were cut with grids v1 (recorded before
        schema 5, or imported so), so a copy must be looked up by its v1 codes too
        (``essence(..., legacy_grids=True)``) to find them."""
        if self._legacy_grids is None:
            v1 = "grids = 1 AND " if self._has_grids() else ""  # no column: an older ledger read as it is
            self._legacy_grids = self._db.execute(f"SELECT 1 FROM works WHERE {v1}kind = 'image' LIMIT 1").fetchone() is not None
        return self._legacy_grids

    def _has_grids(self) -> bool:
        """Whether ``works`` has the ``grids`` column (schema 5); a ledger opened read-only may be
        older, or be migrated by a writer meanwhile (so only the answer True is kept)."""
        if not self._grids_column:
            self._grids_column = any(row[1] == "grids" for row in self._db.execute("PRAGMA table_info(works)"))
        return self._grids_column

    def _columns(self) -> str:
        """The columns ``_work`` reads: a ledger without ``grids`` holds only v1 codes."""
        return f"{_COLUMNS}, grids" if self._has_grids() else f"{_COLUMNS}, {GRIDS_V1}"

    def _grids_of(self, works: Iterable[int]) -> dict[int, int]:
        """The grids each of these works' codes were cut with."""
        rows = sorted(set(works))
        if not self._has_grids():
            return dict.fromkeys(rows, GRIDS_V1)
        return dict(self._in("SELECT n, grids FROM works WHERE n IN ({})", rows))

    def _older_codes(self, essence: Essence) -> Essence | None:
        """The copy's v1 codes, when the ledger holds works recorded with them and the essence has
        them; None: every work is compared with the essence's own codes."""
        if essence.kind != "image" or essence.legacy_codes is None or essence.grids == GRIDS_V1:
            return None
        return essence.legacy_codes if self.needs_legacy_grids() else None

    def _own_grids(self, current: list[_Found], older: list[_Found], work: Callable[[_Found], int]) -> list[_Found]:
        """Of what a lookup found, what each work's own grids found: ``current`` by the copy's
        codes, ``older`` by its v1 codes (``work`` names the work a finding is of)."""
        versions = self._grids_of(map(work, current + older))
        return [found for found in current if versions.get(work(found)) != GRIDS_V1] + \
               [found for found in older if versions.get(work(found)) == GRIDS_V1]

    def _index_if_due(self) -> None:
        if self._tail_length() >= INDEX_EVERY:
            _index(self._db, self.path)

    def _insert(self, work: Work) -> bool:
        """The work's own rows; its index rows are written with the tail's (see INDEX_EVERY)."""
        if work.essence_hash is not None and work.essence_hash < "v":
            self._legacy.pop(work.format, None)  # an older form arrives (an import): ask again
        if work.kind == "image" and work.grids == GRIDS_V1:
            self._legacy_grids = None
        cursor = self._db.execute(
            f"INSERT OR IGNORE INTO works ({_COLUMNS}, grids) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                work.id, work.path, work.format, work.kind, work.essence_hash, work.perceptual,
                _assertion_json(work.assertion), json.dumps(list(work.carriers)),
                work.tagged_at, work.source, work.grids,
            ),
        )
        if cursor.rowcount != 1:
            return False
        n = cursor.lastrowid
        if found := _region_set(work.regions):
            self._db.execute("INSERT INTO region_sets (work, names, codes) VALUES (?, ?, ?)", (n, *found))
        if work.chroma:
            self._db.execute("INSERT INTO chroma (work, features) VALUES (?, ?)", (n, _pack(work.chroma)))
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

    @_locked
    def matches(self, essence: Essence, *, threshold: float | None = None, limit: int = 10) -> list[Match]:
        """Works matching ``essence``, best first: works tagged here before imported ones, then
        exact hashes (newest first) before perceptual matches (nearest first).

        Every work that matches is listed (up to ``limit``): when a registry claims the same
        essence as a local work, both are reported, and ``combined`` decides between them.
        Make ``essence`` with ``essence_of``: a ledger holding image works recorded with grids v1
        raises ValueError for an image essence without v1 codes rather than miss those works.
        """
        self._check_grids(essence)
        out: list[Match] = []
        with self._reading() as layout:
            if essence.hash is not None:
                rows = self._db.execute(
                    f"SELECT {self._columns()} FROM works WHERE essence_hash IN (?, ?) AND kind IS ? "
                    "ORDER BY tagged_at DESC, n DESC LIMIT ?",
                    (essence.hash, essence.legacy_hash or essence.hash, essence.kind, _MAX_CANDIDATES),
                ).fetchall()
                out = [Match(_work(row), 0.0, True) for row in rows]
            if essence.kind is not None and essence.perceptual:
                limit_distance = MATCH_THRESHOLD.get(essence.kind, 0.0) if threshold is None else threshold
                exact = {m.work.id for m in out}
                near_codes = [(n, d) for n, d in self._near(essence.kind, essence.perceptual, limit_distance, layout)
                              if d <= limit_distance]
                if (older := self._older_codes(essence)) is not None:
                    # Only works within the limit are asked for their grids: the bands' candidates are many more.
                    by_older = [(n, d) for n, d in self._near(essence.kind, older.perceptual, limit_distance, layout)
                                if d <= limit_distance] if older.perceptual else []
                    near_codes = self._own_grids(near_codes, by_older, operator.itemgetter(0))
                near = sorted(near_codes, key=lambda found: (found[1], -found[0]))  # at one distance, the last recorded first
                for n, d in near[:_MAX_CANDIDATES]:
                    work = self._load(n)
                    if work.id not in exact:
                        out.append(Match(work, d, False))
            if not out and layout > 1:
                # Nothing matched the file as it is: look for the work it was cut from, turned or
                # covered (image regions), or trimmed, excerpted or slowed (audio at an offset).
                out = self._region_matches(essence, layout) if essence.kind == "image" else \
                    self._chroma_matches(essence, layout)
            out = [self._followed(match) for match in out]
        out.sort(key=_rank)
        return out[:limit]

    def _followed(self, match: Match) -> Match:
        """A rendition carried here follows its work: when the work (its essence, tagged here) was
        tagged again after the rendition was recorded, the newest record of the work decides, as it
        does for a copy of the work itself (``current``); the rendition's record is superseded."""
        if match.work.derived_from is None:
            return match
        parent = self._db.execute(f"SELECT {self._columns()} FROM works WHERE id = ? AND source IS NULL",
                                  (match.work.derived_from,)).fetchone()
        key = _retag_key(_work(parent)) if parent is not None else None
        if key is None:
            return match
        row = self._db.execute(
            f"SELECT {self._columns()} FROM works WHERE source IS NULL AND n > (SELECT n FROM works WHERE id = ?) "
            "AND essence_hash = ? AND format = ? AND path = ? ORDER BY n DESC LIMIT 1",
            (match.work.id, *key),
        ).fetchone()
        if row is None:
            return match
        return replace(match, work=_work(row), exact=False,
                       how=f"the file is a rendition of it ({match.work.path or match.work.id}), and the work was tagged again since")

    def _check_grids(self, essence: Essence) -> None:
        """Refuse an image essence made without the v1 codes this ledger's v1 works are compared
        with: its v2 codes lie up to ~26 bits from them, so such works could be missed, and a
        lookup that cannot see every work must not answer "no match"."""
        if essence.kind != "image" or essence.grids == GRIDS_V1 or essence.legacy_codes is not None:
            return
        if (essence.perceptual or essence.probes) and self.needs_legacy_grids():
            raise ValueError("this ledger holds image works recorded with grids v1, and the essence has no v1 codes "
                             "to compare them with: make it with Ledger.essence_of(data, fmt)")

    def _region_matches(self, essence: Essence, layout: int) -> list[Match]:
        older = self._older_codes(essence)
        if older is None:
            best = self._nearest_regions(essence.probes, layout)
        else:
            best = self._own_grids(self._nearest_regions(essence.probes, layout), self._nearest_regions(older.probes, layout),
                                   operator.itemgetter(1))
        best.sort(key=lambda found: found[0])
        return [Match(self._load(work), d, False, f"the file ({probe}) matched the work's {name}", name, probe_form(probe),
                      probe)
                for d, work, probe, name in best[:_MAX_CANDIDATES]]

    def _nearest_regions(self, probes: Sequence[tuple[str, str]], layout: int) -> list[tuple[float, int, str, str]]:
        """(distance, work, probe, region) of the nearest allowed pair of each work within
        ``REGION_THRESHOLD`` of one of these probes."""
        probes = [(probe, code) for probe, code in probes if _REGION_CODE.match(code)]
        if not probes:
            return []
        names = tuple(probe for probe, _ in probes)
        codes = _code_array([code for _, code in probes]).view(np.uint64)
        best: list[tuple[float, int, str, str]] = []
        for work, (regions, recorded) in self._region_candidates([code for _, code in probes], layout).items():
            # Only the allowed (region, probe) pairs of the work (a few of every pair once a copy's
            # turned parts are probes too), region by region: the nearest first found. The copy's
            # turned parts come second: they explain only a copy that its own parts and its turned
            # whole do not (a mirrored copy is the work mirrored, not its centre mirrored).
            for region_at, probe_at in _allowed(tuple(regions), names):
                if not len(region_at):
                    continue
                bits = np.bitwise_count(recorded.view(np.uint64)[region_at] ^ codes[probe_at]).sum(axis=1)
                at = int(np.argmin(bits))
                if int(bits[at]) <= REGION_THRESHOLD * 256:
                    best.append((int(bits[at]) / 256, work, names[probe_at[at]], regions[region_at[at]]))
                    break
        return best

    def _region_candidates(self, codes: list[str], layout: int | None = None) -> dict[int, tuple[list[str], Array]]:
        """Per work, (names, codes as (n, 32) bytes) of the regions to compare with ``codes``: in a
        version-4 ledger all of each work sharing an index key with one of them, in older ones the
        regions that share a key (24-bit windows) or two 16-bit bands."""
        if not codes:
            return {}
        with self._reading() as seen:
            layout = layout or seen
            if layout == 4:
                keys = np.unique(_region_keys(_code_array(codes))).tolist()
                refs = self._in("SELECT ref FROM region_index WHERE key IN ({})", keys)
                tail = self._db.execute("SELECT work FROM region_sets WHERE work > ?", (self._upto(),)).fetchall()
                return self._region_sets(sorted({ref >> _REF_BITS for (ref,) in refs} | {work for (work,) in tail}))
            regions = self._in("SELECT region FROM region_keys WHERE key IN ({})", _v3_probe_keys(codes)) \
                if layout == 3 else [(n,) for n in self._version_2_candidates(codes)]
            grouped: dict[int, list[tuple[str, str]]] = {}
            for work, name, code in self._in("SELECT work, name, code FROM regions WHERE n IN ({}) ORDER BY n",
                                             sorted(n for (n,) in set(regions))):
                if isinstance(code, str) and _REGION_CODE.match(code):
                    grouped.setdefault(work, []).append((name, code))
            return {work: ([name for name, _ in pairs], _code_array([code for _, code in pairs]))
                    for work, pairs in grouped.items()}

    def _region_sets(self, works: Sequence[int]) -> dict[int, tuple[list[str], Array]]:
        return {
            work: self._region_set(work, names, codes)
            for work, names, codes in self._in("SELECT work, names, codes FROM region_sets WHERE work IN ({})", works)
        }

    def _region_set(self, work: int, names: str, codes: bytes) -> tuple[list[str], Array]:
        """A ``region_sets`` row's names and codes as (n, 32) bytes. A row whose codes do not
        match its names is damage: raised, not searched in part (its work could be missed)."""
        listed = names.split(_NAME_SEPARATOR)
        if len(codes) != 32 * len(listed):
            found = self._db.execute("SELECT id FROM works WHERE n = ?", (work,)).fetchone()
            raise LedgerError(f"the ledger {self.path} is damaged: work {found[0] if found else f'row {work}'} has "
                              f"{len(codes)} bytes of region codes for {len(listed)} region names (32 bytes each)")
        return listed, np.frombuffer(codes, np.uint8).reshape(-1, 32)

    def _in(self, sql: str, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows of ``sql`` with its ``IN ({})`` list filled with ``values``, in chunks under
        SQLite's limit on parameters."""
        step = max(1, self._db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - 1)
        rows: list[tuple[Any, ...]] = []
        for first in range(0, len(values), step):
            chunk = values[first : first + step]
            rows += self._db.execute(sql.format(",".join("?" * len(chunk))), chunk).fetchall()
        return rows

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

    def _chroma_matches(self, essence: Essence, layout: int) -> list[Match]:
        if not essence.chroma:
            return []
        keys = sorted(set(_chroma_keys(essence.chroma)))
        votes: dict[int, int] = {}
        for work, count in self._in("SELECT work, COUNT(*) FROM chroma_keys WHERE key IN ({}) GROUP BY work", keys):
            votes[work] = votes.get(work, 0) + count
        if layout == 4:  # the tail's works, not yet in chroma_keys
            for work, features in self._db.execute("SELECT work, features FROM chroma WHERE work > ?", (self._upto(),)):
                votes[work] = len(set(keys) & set(_chroma_keys(_unpack(features))))
        ranked = sorted((w for w, c in votes.items() if c >= CHROMA_MIN_VOTES), key=lambda w: -votes[w])
        out = []
        for work in ranked[:_CHROMA_CANDIDATES]:
            blob = self._db.execute("SELECT features FROM chroma WHERE work = ?", (work,)).fetchone()
            if blob is None:
                continue
            aligned = align(_unpack(blob[0]), essence.chroma)
            if aligned is not None and aligned.error <= CHROMA_THRESHOLD:
                out.append(Match(self._load(work), aligned.error, False, aligned.describe(), EXCERPT))
        return out

    def _near(self, kind: str, perceptual: str, threshold: float, layout: int | None = None) -> list[tuple[int, float]]:
        """(row, distance) of every indexed code sharing a band with ``perceptual`` within the radius
        the threshold needs (for images at most IMAGE_BAND_RADIUS): a superset of the codes within
        the threshold (images: within 23 bits), a small part of the table."""
        bands = _bands(perceptual)
        if not bands:
            return []
        target, width = int(perceptual, 16), 4 * len(perceptual)
        if (layout or self._layout()) == 4:
            values, widths, cap = _whole_band_values(kind, perceptual)
            keys = sorted({
                _band_key(kind, index, value ^ mask)
                for index, (value, bits) in enumerate(zip(values, widths, strict=True))
                for mask in _masks(min(cap, _radius(threshold, widths)), bits)
            })
            size = len(perceptual) // 2  # a code of another length is never comparable
            rows = self._in(f"SELECT work, code FROM whole_bands WHERE length(code) = {size} AND key IN ({{}})", keys)
            rows += [(n, bytes.fromhex(code)) for n, code in self._db.execute(  # the tail, not yet in whole_bands
                "SELECT n, perceptual FROM works WHERE n > ? AND kind = ? AND length(perceptual) = ?",
                (self._upto(), kind, len(perceptual)),
            ) if _bands(code)]
            if not rows:
                return []
            # Hundreds of chance candidates at 100,000 works: taken apart by C code, not row by row.
            works = np.fromiter(map(operator.itemgetter(0), rows), np.int64, len(rows))
            codes = np.frombuffer(b"".join(map(operator.itemgetter(1), rows)), np.uint8).reshape(len(rows), size)
            bits = np.bitwise_count(codes ^ np.frombuffer(bytes.fromhex(perceptual), np.uint8)).sum(axis=1, dtype=np.int64)
            return list({n: d / width for n, d in zip(works.tolist(), bits.tolist(), strict=True)}.items())  # each work once
        masks = _masks(_radius(threshold, [BAND_BITS] * len(bands)))
        per_statement = max(1, 900 // (len(masks) + 2))  # bands per statement, under SQLite's parameter limit
        found: dict[int, float] = {}
        for first in range(0, len(bands), per_statement):
            selects, params = [], []
            for index in range(first, min(first + per_statement, len(bands))):
                probes = sorted({bands[index] ^ mask for mask in masks})
                selects.append(f"SELECT work FROM bands WHERE kind = ? AND band = ? AND value IN ({','.join('?' * len(probes))})")
                params += [kind, index, *probes]
            for n, code in self._db.execute(f"SELECT n, perceptual FROM works WHERE n IN ({' UNION '.join(selects)})", params):
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

    @_locked
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
                elif work.derived_from is not None:  # a registry's rendition is its claim, never a local record
                    work = replace(work, source=f"{label}: {work.source}")
                added += self._insert(work)
            self._index_if_due()
        return added


# Recording a work writes its own rows only: ``works``, its ``region_sets`` row, its ``chroma``
# row, all appended at the end of their tables, so a work's transaction writes a few pages. Its
# index rows (16 band keys, 8 keys a region, its Chromaprint keys: about 150 rows at random places
# in three indexes, a page each) are written for the works recorded since the last indexing,
# ``INDEX_EVERY`` at a time, sorted (one transaction; neighbouring keys share pages): the works
# after ``indexed.upto`` are the index's tail, and every lookup compares the tail's works one by one
# besides searching the index, so a work is found as soon as it is committed. A SIGKILL at any
# moment leaves each work committed or not (SQLite's transaction), and a committed work either
# indexed or in the tail; the next writer indexes the tail when it opens the ledger, and a writer
# indexes its tail when it is closed.
INDEX_EVERY = 32


def _index(db: sqlite3.Connection, where: Path) -> None:
    """Write the index rows of the tail (the works after ``indexed.upto``), inside the caller's
    transaction, a chunk of works at a time (memory: about 2 KB a work of the chunk)."""
    upto = db.execute("SELECT upto FROM indexed").fetchone()[0]
    while works := db.execute(
        "SELECT n, kind, perceptual FROM works WHERE n > ? ORDER BY n LIMIT ?", (upto, _CHUNK // 16)
    ).fetchall():
        last = works[-1][0]
        _insert_rows(db, "whole_bands (key, work, code)", sorted(_whole_band_rows(works)))
        sets = db.execute("SELECT work, codes FROM region_sets WHERE work > ? AND work <= ?", (upto, last)).fetchall()
        if sets:
            for work, blob in sets:
                if not isinstance(blob, bytes) or len(blob) % 32:
                    raise LedgerError(f"the ledger {where} is damaged: work row {work} has {len(blob)} bytes of region codes "
                                      "(32 bytes a region)")
            codes = np.frombuffer(b"".join(blob for _, blob in sets), np.uint8).reshape(-1, 32)
            refs = np.concatenate([(work << _REF_BITS) + np.arange(len(blob) // 32, dtype=np.int64) for work, blob in sets])
            keys = np.stack([_region_keys(codes).ravel(), np.repeat(refs, _REGION_WINDOWS)], axis=1)
            keys = keys[np.lexsort((keys[:, 1], keys[:, 0]))]
            for first in range(0, len(keys), _CHUNK):  # as Python ints, a part at a time: ~80 bytes a key
                _insert_rows(db, "region_index (key, ref)", keys[first : first + _CHUNK])
        chroma = db.execute("SELECT work, features FROM chroma WHERE work > ? AND work <= ?", (upto, last))
        _insert_rows(db, "chroma_keys (key, work)",
                     sorted((key, work) for work, features in chroma for key in _chroma_keys(_unpack(features))))
        upto = last
    db.execute("UPDATE indexed SET upto = ?", (upto,))


# Index rows are inserted this many to a statement: SQLite then binds and steps a statement's rows
# at once, where a statement a row cost twice the instructions (51,200 region keys: 386M -> 179M).
# 64 rows of at most 3 values stay far below any SQLite's limit on a statement's values (999).
_ROWS_PER_INSERT = 64


def _insert_rows(db: sqlite3.Connection, into: str, rows: Sequence[Sequence[Any]] | Array) -> None:
    """``INSERT OR IGNORE INTO {into} VALUES (?, ...)`` of each of ``rows`` (all as wide as the
    columns named; an array of integers, or a sequence of rows), in their order."""
    if not len(rows):
        return
    width = len(rows[0])
    one = f"({', '.join('?' * width)})"
    whole = len(rows) - len(rows) % _ROWS_PER_INSERT
    if whole:
        # An array's rows are cut by numpy, so that only a list per statement is made, not one a row.
        many = (rows[:whole].reshape(-1, width * _ROWS_PER_INSERT).tolist() if isinstance(rows, np.ndarray) else
                [[value for row in rows[i : i + _ROWS_PER_INSERT] for value in row] for i in range(0, whole, _ROWS_PER_INSERT)])
        db.executemany(f"INSERT OR IGNORE INTO {into} VALUES {', '.join([one] * _ROWS_PER_INSERT)}", many)
    if whole < len(rows):
        rest = rows[whole:]
        db.executemany(f"INSERT OR IGNORE INTO {into} VALUES {one}", rest.tolist() if isinstance(rest, np.ndarray) else rest)


def _whole_band_rows(works: Iterable[tuple[int, str | None, str | None]]) -> list[tuple[int, int, bytes]]:
    """The rows of ``whole_bands`` of these works' (row, kind, perceptual code): none for a code
    that is not hex. The image codes' bits are put in frequency order for all of them at once, not
    by three numpy calls a work."""
    rows: list[tuple[int, int, bytes]] = []
    images: list[tuple[int, str]] = []
    for n, kind, perceptual in works:
        if not perceptual or kind not in KINDS or not _bands(perceptual):
            continue
        if _image_banded(kind, perceptual):
            images.append((n, perceptual))
        else:
            code = bytes.fromhex(perceptual)
            rows += [(_band_key(kind, i, value), n, code) for i, value in enumerate(_bands(perceptual))]
    if images:
        codes = _code_array([perceptual for _, perceptual in images])
        ordered = _in_frequency_order(codes).tobytes()
        raw = codes.tobytes()
        for at, (n, _) in zip(range(0, len(raw), 32), images, strict=True):
            code, values = raw[at : at + 32], _image_band_values(int.from_bytes(ordered[at : at + 32], "big"))
            rows += [(_band_key("image", band, value), n, code) for band, value in enumerate(values)]
    return rows


def _image_banded(kind: str, perceptual: str) -> bool:
    """Whether a code is banded by IMAGE_BAND_WIDTHS in frequency order (else by 16-bit bands)."""
    return kind == "image" and len(perceptual) * 4 == sum(IMAGE_BAND_WIDTHS)


def _image_band_values(ordered: int) -> list[int]:
    """The IMAGE_BAND_WIDTHS bands of a 256-bit image code whose bits are in frequency order."""
    shift, values = sum(IMAGE_BAND_WIDTHS), []
    for bits_in_band in IMAGE_BAND_WIDTHS:
        shift -= bits_in_band
        values.append(ordered >> shift & ((1 << bits_in_band) - 1))
    return values


def _whole_band_values(kind: str, perceptual: str) -> tuple[list[int], Sequence[int], int]:
    """A whole code's band values in ``whole_bands``, their widths, and the largest radius probed:
    a 256-bit image code by IMAGE_BAND_WIDTHS in frequency order, any other code by 16-bit bands
    (``perceptual`` is hex of whole 16-bit bands, see ``_bands``)."""
    if not _image_banded(kind, perceptual):
        bands = _bands(perceptual)
        return bands, [BAND_BITS] * len(bands), BAND_BITS
    ordered = int.from_bytes(_in_frequency_order(_code_array([perceptual])).tobytes(), "big")
    return _image_band_values(ordered), IMAGE_BAND_WIDTHS, IMAGE_BAND_RADIUS


def _radius(threshold: float, widths: Sequence[int]) -> int:
    """The radius each band is probed within so that every code within ``threshold`` shares a band
    with the probe: of m bands, at most ceil((t + 1) / m) - 1 bits differ in one of them."""
    max_bits = int(threshold * sum(widths) + 1e-9)
    return min(max(widths), -(-(max_bits + 1) // len(widths)) - 1)


def _band_key(kind: str, band: int, value: int) -> int:
    return KINDS.index(kind) << 40 | band << 24 | value  # bands of up to 24 bits (IMAGE_BAND_WIDTHS)


_NAME_SEPARATOR = ","  # never in a region name (_REGION_NAME)
_CHUNK = 1 << 16  # rows handed to SQLite at a time when many works are indexed


def _assertion_json(assertion: Assertion) -> str:
    """``json.dumps(assertion.to_json(), ensure_ascii=False)``, the words' part made once per run
    (``Assertion.shared``): a run's works differ only in their date and id, which come last."""
    words = assertion.shared("ledger.json", lambda w: json.dumps(w.to_json(), ensure_ascii=False))
    tail = "".join(f", {key}: {_json_text(value)}" for key, value in (('"date"', assertion.date), ('"work_id"', assertion.work_id))
                   if value is not None)
    return f"{words[:-1]}{tail}}}"


def _region_set(recorded: Iterable[tuple[str, str]]) -> tuple[str, bytes] | None:
    """A work's ``region_sets`` row: its regions' names and codes. Codes never written by rightsmeta
    (not 256 bits) cannot be searched, and are not kept."""
    regions = list(recorded)
    codes = "".join(code for _, code in regions) if all(type(code) is str and len(code) == 64 for _, code in regions) else ""
    # Codes of an essence just made (every tag) are all 64 hex digits: one test of them all, not one each.
    packed = _lower_hex(codes) if len(regions) <= MAX_REGIONS and len(codes) == 64 * len(regions) else None
    if packed is None:
        regions = [(name, code) for name, code in regions if isinstance(code, str) and _REGION_CODE.match(code)][:MAX_REGIONS]
        packed = bytes.fromhex("".join(code for _, code in regions))
    if not regions:
        return None
    return _NAME_SEPARATOR.join(name for name, _ in regions), packed


def _lower_hex(text: str) -> bytes | None:
    """The bytes of ``text`` if it is lowercase hex digits only (as ``_HEX`` matches, or empty),
    else None: parsed and written back, a sixth of the regex's time on a work's 1 KiB of codes."""
    try:
        packed = bytes.fromhex(text)  # takes capitals and whitespace too: the text written back differs
    except ValueError:
        return None
    return packed if packed.hex() == text else None


@functools.lru_cache(maxsize=256)
def _allowed(regions: tuple[str, ...], probes: tuple[str, ...]) -> tuple[tuple[Array, Array], ...]:
    """The (region, probe) pairs that may be compared (``region_pair_allowed``) as the indices of
    each, region by region: of the copy's own parts and turned whole, then of its turned parts
    (``fingerprint.turned_part``). A work's region names and a copy's probe names repeat from
    lookup to lookup."""
    allowed = np.array([[region_pair_allowed(probe, region) for probe in probes] for region in regions], dtype=bool)
    allowed = allowed.reshape(len(regions), len(probes))
    turned = np.array([turned_part(probe) for probe in probes], dtype=bool)
    tiers = []
    for pairs in (allowed & ~turned, allowed & turned):
        region_at, probe_at = np.nonzero(pairs)
        region_at.flags.writeable = probe_at.flags.writeable = False  # shared by every thread looking up these names
        tiers.append((region_at, probe_at))
    return tuple(tiers)


def _migrate(db: sqlite3.Connection, version: int) -> None:
    """From schema 1-4 to 5, inside the caller's transaction (killed half-way, the ledger is still
    the one it was): ``_to_version_4`` for 1-3, then every work so far marked as cut with grids v1."""
    if version < 4:
        _to_version_4(db)
    if not any(row[1] == "grids" for row in db.execute("PRAGMA table_info(works)")):
        # The column's default (1) is every existing row's value: SQLite adds it without
        # rewriting a row. The partial index on the v1 image works is built after (``_create``).
        db.execute("ALTER TABLE works ADD COLUMN grids INTEGER NOT NULL DEFAULT 1")


# The v1 image works, so ``needs_legacy_grids`` is one seek, however large the ledger.
_V1_GRIDS_INDEX = "CREATE INDEX IF NOT EXISTS works_v1_grids ON works (n) WHERE grids = 1 AND kind = 'image'"


def _to_version_4(db: sqlite3.Connection) -> None:
    """From schema 1, 2 or 3 to 4: a row per region (2 and 3) gathered into one row per work, the
    old indexes dropped; every work is then in the tail, which ``_create`` indexes (time and peak
    RSS: bench/region_lookup.py --migrate)."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'regions'").fetchone():
        rows = db.execute("SELECT work, name, code FROM regions ORDER BY work, n")
        grouped = ((work, _region_set((name, code) for _, name, code in group))
                   for work, group in itertools.groupby(rows, key=lambda row: row[0]))
        # streamed from one table into the other: memory stays that of one work's rows
        db.executemany("INSERT INTO region_sets (work, names, codes) VALUES (?, ?, ?)",
                       ((work, *found) for work, found in grouped if found))
    # Children before their parent: SQLite drops a table by freeing its pages, not row by row.
    for table in ("region_keys", "region_bands", "regions", "bands"):
        db.execute(f"DROP TABLE IF EXISTS {table}")
    db.execute("DELETE FROM chroma_keys")  # rebuilt with the rest of the index (a truncation: no child table)
    db.execute("UPDATE indexed SET upto = 0")


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
    work_id, path, fmt, kind, essence_hash, perceptual, assertion, carriers, tagged_at, source, grids = row
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
        grids=grids,
    )
