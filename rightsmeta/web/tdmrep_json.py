"""``/.well-known/tdmrep.json`` (W3C TDMRep): an array of ``{location, tdm-reservation, tdm-policy}``.

``location`` is a path pattern (``*`` any characters, ``$`` the end, as in robots.txt); when
several rules match, the most specific (longest) pattern wins, as TDMRep says. A file that is
not such an array is an error of the check, never "no reservation" (fail closed).

TDMRep's location is a pattern of paths of the server the file is on. A location written as a
whole URL of that site is read as its path; one naming another site does not apply here
(``foreign``: the check says so in a note).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from ..errors import NOT_JSON, MalformedMetadata
from ..vocab import Signal, tdmrep
from .robots import literal_start, matches, normalise

MAX_BYTES = 1024 * 1024
# A location written as a whole URL ("https://example.com/books/*"): the file speaks for its own
# origin, so its path is the pattern. Read as a path it matched nothing, and the reservation it
# states was dropped without a word.
_ORIGIN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")
MAX_RULES = 10_000


@dataclass(frozen=True)
class Rule:
    location: str
    reservation: Any
    policy: str | None
    index: int
    site: str | None = None  # the site a location written as a whole URL names (``site_of``); None: a path


_DEFAULT_PORTS = {"http": 80, "https": 443}


def site_of(url: str) -> str:
    """``host`` or ``host:port`` (a port other than the scheme's default) of a URL, lower case.
    http and https of one host are one site: a file at https naming its http address speaks
    for itself. A URL whose host or port cannot be read names no site this one is (``?``)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "?" + url
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return "?" + url
    return host if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()) else f"{host}:{port}"


class Rules(list[Rule]):
    """A file's rules, indexed by the literal start of their location (up to a ``*`` or ``$``),
    which a matching path must begin with: every rule was matched for each URL (35 ms a URL
    against a file of 9,999 rules, in the event loop of the crawl)."""

    @cached_property
    def _by_start(self) -> tuple[dict[str, list[Rule]], list[int]]:
        starts: dict[str, list[Rule]] = {}
        for rule in self:
            starts.setdefault(literal_start(rule.location), []).append(rule)
        return starts, sorted({len(start) for start in starts})

    def candidates(self, path: str) -> list[Rule]:
        """The rules that may match ``path``, in file order."""
        starts, lengths = self._by_start
        return sorted((rule for length in lengths if length <= len(path) for rule in starts.get(path[:length], ())),
                      key=lambda rule: rule.index)


def parse(data: bytes | str) -> Rules:
    if len(data) > MAX_BYTES:
        raise MalformedMetadata(f"tdmrep.json is {len(data)} bytes, more than the {MAX_BYTES} read")
    try:
        doc = json.loads(data)
    except NOT_JSON as exc:
        raise MalformedMetadata(f"tdmrep.json is not JSON ({exc})") from None
    if not isinstance(doc, list):
        raise MalformedMetadata(f"tdmrep.json must be a JSON array of rules, got {type(doc).__name__}")
    if len(doc) > MAX_RULES:
        raise MalformedMetadata(f"tdmrep.json has {len(doc)} rules, more than {MAX_RULES}")
    rules = Rules()
    for index, item in enumerate(doc):
        if not isinstance(item, dict) or not isinstance(item.get("location"), str):
            raise MalformedMetadata(f"tdmrep.json rule {index} has no string 'location'")
        policy = item.get("tdm-policy")
        if policy is not None and not isinstance(policy, str):
            raise MalformedMetadata(f"tdmrep.json rule {index}: tdm-policy must be a string")
        whole = _ORIGIN.match(item["location"])
        location = item["location"][whole.end():] if whole else item["location"]
        location = normalise(location if location.startswith("/") else "/" + location)
        rules.append(Rule(location,
                          item.get("tdm-reservation"), policy, index, site_of(whole[0]) if whole else None))
    return rules


def _reserves(rule: Rule) -> bool:
    return str(rule.reservation).strip() == "1"


def applies(rule: Rule, site: str | None) -> bool:
    """Whether a rule is taken for ``site``: a rule naming another site is not (TDMRep: a location
    is a path of the site the file is on), unless it reserves: a misspelt alias (www. against
    the bare domain, a site moved) must not lift a reservation (fail closed)."""
    return site is None or rule.site is None or rule.site == site or _reserves(rule)


def foreign(rules: list[Rule], path: str, site: str) -> list[Rule]:
    """The rules whose location would match ``path`` but names another site than ``site``
    (``site_of`` the URL checked); those that reserve are applied all the same (``applies``)."""
    return [rule for rule in (rules.candidates(path) if isinstance(rules, Rules) else rules)
            if rule.site is not None and rule.site != site and matches(rule.location, path)]


def signal(rules: list[Rule], path: str, site: str | None = None) -> Signal | None:
    """The most specific rule matching ``path`` and taken for ``site`` (``applies``), decoded;
    None when no rule matches."""
    matching = [rule for rule in (rules.candidates(path) if isinstance(rules, Rules) else rules)
                if matches(rule.location, path) and applies(rule, site)]
    if not matching:
        return None
    longest = max(len(rule.location) for rule in matching)
    tied = [rule for rule in matching if len(rule.location) == longest]
    best = tied[0]
    if (rival := tdmrep.disagreeing(tied, key=lambda rule: (rule.reservation, rule.policy))) is not None:
        raise MalformedMetadata(f"tdmrep.json rules {best.index} ({best.location}) and {rival.index} ({rival.location}) "
                                "match as specifically and disagree")
    try:
        found = tdmrep.decode(best.reservation, best.policy, carrier=f"tdmrep.json rule {best.index}")
    except MalformedMetadata as exc:
        raise MalformedMetadata(f"tdmrep.json rule {best.index} ({best.location}): {exc}") from None
    if found is None:
        raise MalformedMetadata(f"tdmrep.json rule {best.index} ({best.location}) has no tdm-reservation")
    return Signal(found.vocabulary, found.carrier, found.permissions,
                  raw={**found.raw, "location": best.location}, covers=found.covers)
