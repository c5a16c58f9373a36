"""Rights signals in HTTP response headers: TDMRep, X-Robots-Tag, aipref Content-Usage.

Headers come from servers nobody vouches for: a malformed value is ignored with a note (a
crawler meets ``X-Robots-Tag: :, :, ,;: -::`` in the wild), never fatal to the check, and
a value that is not UTF-8 is an error of that header only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.message import Message

from ..errors import MalformedMetadata
from ..model import AI_PURPOSES, Permission, Purpose, State
from ..vocab import Signal, aipref, tdmrep
from .robots import product_token

# Message: urllib's and http.client's response.headers (every field line, repeated ones too, by items()).
Headers = Mapping[str, str | bytes] | Message | Iterable[tuple[str | bytes, str | bytes]]

#: More headers than this is an attack or a bug; the rest are not read (and the report says so).
MAX_HEADERS = 1000
MAX_VALUE = 16 * 1024

# Directives that take a value after a colon: "unavailable_after: 2026-01-01" is not a user agent.
_VALUED = {"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"}
_AI = {"noai", "noimageai"}
_NO_SEARCH = {"noindex", "none"}


@dataclass
class Parsed:
    signals: list[Signal] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    content_type: str = ""


def normalise(headers: Headers) -> tuple[list[tuple[str, str]], list[str]]:
    """Lower-case names and text values; errors name each header that could not be decoded."""
    # httpx's Headers join repeated fields in items() ("otherbot: noindex" and "noai" became one
    # line, whose noai is otherbot's); multi_items() gives each field line as sent.
    multi = getattr(headers, "multi_items", None)
    items = multi() if callable(multi) else headers.items() if isinstance(headers, Mapping | Message) else headers
    out: list[tuple[str, str]] = []
    errors: list[str] = []
    for count, (name, value) in enumerate(items):
        if count >= MAX_HEADERS:
            errors.append(f"more than {MAX_HEADERS} response headers; the rest were not read")
            break
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        name = name.strip().lower()
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                if name in _WATCHED:
                    errors.append(f"header {name}: value is not UTF-8 ({value[:40]!r}); not read")
                continue
        if len(value) > MAX_VALUE:
            if name in _WATCHED:
                errors.append(f"header {name}: value of {len(value)} characters is too long; not read")
            continue
        out.append((name, value))
    return out, errors


_WATCHED = {"x-robots-tag", "tdm-reservation", "tdm-policy", "content-usage"}


def robots_directives(values: Iterable[str], agent: str) -> tuple[set[str], list[str]]:
    """Directives of X-Robots-Tag values that apply to ``agent``: unscoped ones, and ``agent: ...`` ones.

    A user-agent prefix scopes the directives after it, up to the end of that header line
    (Google's reading); directives scoped to other agents are left out. Malformed pieces are noted.
    """
    token = product_token(agent)
    found: set[str] = set()
    notes: list[str] = []
    for value in values:
        scope: str | None = None
        for piece in value.split(","):
            piece = piece.strip()
            if not piece:
                continue
            head, sep, rest = piece.partition(":")
            head = head.strip().lower()
            if sep and head not in _VALUED:
                if not head or not all(c.isalnum() or c in "-_." for c in head):
                    notes.append(f"X-Robots-Tag: ignored malformed piece {piece[:60]!r}")
                    continue
                scope, piece = head, rest.strip()
                if not piece:
                    continue
            # Words apart without a comma ("noindex noai", as some sites write them) are each a
            # directive: read as one malformed piece, the noai among them was ignored.
            words = piece.split(":", 1)[0].lower().split()
            if not words or not all(c.isalnum() or c in "-_" for word in words for c in word):
                notes.append(f"X-Robots-Tag: ignored malformed piece {piece[:60]!r}")
                continue
            if scope is None or scope == token:
                found.update(words)
    return found, notes


def robots_signal(directives: set[str], *, carrier: str, raw: str) -> Signal | None:
    """noai/noimageai reserve the AI purposes; none/noindex reserve search."""
    perms: dict[Purpose, Permission] = {}
    if directives & _AI:
        perms.update({p: Permission(State.NOT_ALLOWED) for p in AI_PURPOSES})
    if directives & _NO_SEARCH:
        perms[Purpose.SEARCH] = Permission(State.NOT_ALLOWED)
    if not perms:
        return None
    return Signal("robots", carrier, perms, raw={"directives": sorted(directives & (_AI | _NO_SEARCH)), "value": raw},
                  covers=(*AI_PURPOSES, Purpose.SEARCH))


def parse(headers: Headers, agent: str) -> Parsed:
    """Every rights signal of one response's headers, for the caller ``agent``."""
    items, errors = normalise(headers)
    out = Parsed(errors=errors)
    by_name: dict[str, list[str]] = {}
    for name, value in items:
        if name in _WATCHED:
            by_name.setdefault(name, []).append(value)
        elif name == "content-type":
            out.content_type = value.split(";", 1)[0].strip().lower()

    robots = by_name.get("x-robots-tag", [])
    if robots:
        directives, notes = robots_directives(robots, agent)
        out.notes += notes
        signal = robots_signal(directives, carrier="http X-Robots-Tag", raw=", ".join(robots))
        if signal:
            out.signals.append(signal)

    # Repeated field lines may arrive joined by a client or proxy, as HTTP allows ("1, 1"): one
    # reservation each, empty members skipped (RFC 9110 5.6.1); read whole, "1, 1" was unset.
    reservations = [r.strip() for v in by_name.get("tdm-reservation", []) for r in v.split(",") if r.strip()]
    policies = [v.strip() for v in by_name.get("tdm-policy", []) if v.strip()]
    if tdmrep.disagreeing(reservations) is not None:
        out.errors.append(f"tdm-reservation sent {len(reservations)} times with different values: {', '.join(reservations)}")
    elif reservations:
        try:
            signal = tdmrep.decode(reservations[0], policies[0] if policies else None, carrier="http tdm-reservation")
        except MalformedMetadata as exc:
            out.notes.append(f"header {exc}; ignored (TDMRep: treated as unset)")
        else:
            if signal:
                out.signals.append(signal)

    for value in by_name.get("content-usage", []):
        try:
            signal = aipref.decode_content_usage(value, carrier="http Content-Usage")
        except MalformedMetadata as exc:
            out.notes.append(f"header {exc}; ignored")
            continue
        out.notes += [f"header Content-Usage: {member} is neither y nor n; that key states nothing"
                      for member in signal.raw.get("unknown", ())]
        if any(p.state is not State.UNSPECIFIED for p in signal.permissions.values()):
            out.signals.append(signal)  # one that states nothing is no source of the decision
    return out
