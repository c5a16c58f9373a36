"""One web resource's signals and decision, from what the caller (or the fetcher) already holds.

Everything here is pure: no network, no global state, safe to call from many threads. What was
not given is listed in ``WebReport.unread``; what could not be read is in ``errors`` (and then
the resource is never ``allowed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any
from urllib.parse import SplitResult, urlsplit

from ..decide import NOTHING, Decision
from ..errors import MalformedMetadata
from ..model import AI_PURPOSES, Purpose, State
from ..report import Decided, FileReport, states
from ..vocab import Signal
from ..webdecide import WebStatus, decide_web, embedded_signal, status
from . import headers as _headers
from . import html as _html
from . import robots as _robots
from . import tdmrep_json

DEFAULT_AGENT = "rightsmeta"


def _failed(status: int) -> bool:
    """A status that says nothing about the file: a server error, or 429, a server turning crawlers
    away for now (which Google's crawlers treat as a server error too). Other 4xx mean "no file"."""
    return status >= 500 or status == 429


@dataclass(frozen=True)
class Site:
    """An origin's policies, as fetched: robots.txt and /.well-known/tdmrep.json.

    ``*_status`` is the HTTP status (RFC 9309: 4xx means no rules; 5xx, and 429, disallow all);
    ``*_error`` says why a file could not be fetched at all (unreachable: disallow all).
    """

    robots: bytes | str | None = None
    robots_status: int = 200
    robots_error: str | None = None
    tdmrep: bytes | str | None = None
    tdmrep_status: int = 200
    tdmrep_error: str | None = None
    notes: tuple[str, ...] = ()

    @cached_property
    def parsed_robots(self) -> _robots.Robots | None:
        if self.robots is None or self.robots_error or not 200 <= self.robots_status < 300:
            return None
        return _robots.parse(self.robots)

    @property
    def robots_unreachable(self) -> str | None:
        """Why the whole site counts as disallowed (RFC 9309 2.3.1.4), or None."""
        return self.robots_error or (f"HTTP {self.robots_status}" if _failed(self.robots_status) else None)

    @property
    def tdmrep_soft_404(self) -> bool:
        """Many sites answer any unknown path with their HTML 'not found' page and status 200;
        such a page is no tdmrep.json (anything else that is not one is an error: fail closed)."""
        data = self.tdmrep
        if data is None or self.tdmrep_error or not 200 <= self.tdmrep_status < 300:
            return False
        # Decoded by its byte order mark: a page saved with one (IIS, Windows editors) was read as a
        # malformed tdmrep.json, and every URL of the site was an error.
        head = _html.text_start(data[:512] if isinstance(data, bytes) else data[:512].encode("utf-8", "replace"))
        return head.startswith(("<!doctype html", "<html", "<head", "<!--"))

    @cached_property
    def parsed_tdmrep(self) -> list[tdmrep_json.Rule] | MalformedMetadata | None:
        if self.tdmrep is None or self.tdmrep_error or not 200 <= self.tdmrep_status < 300:
            return None
        try:
            return tdmrep_json.parse(self.tdmrep)
        except MalformedMetadata as exc:
            return exc


@dataclass
class WebReport(Decided):
    url: str
    final_url: str | None = None
    http_status: int | None = None
    signals: list[Signal] = field(default_factory=list)
    decision: Decision = NOTHING
    embedded: FileReport | None = None
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)

    def status(self, purposes: tuple[Purpose, ...] = AI_PURPOSES) -> WebStatus:
        """One answer for ``purposes`` together (default: the AI ones, as ``rightsmeta check``)."""
        return status(self.decision.effective, purposes, errors=bool(self.errors))

    def to_json(self, purposes: tuple[Purpose, ...] = AI_PURPOSES) -> dict[str, Any]:
        return {
            "url": self.url,
            "final_url": self.final_url,
            "http_status": self.http_status,
            "status": self.status(purposes),
            "purposes": [p.value for p in purposes],
            "permissions": states(self.decision.permissions),
            "constraints": {p.value: perm.constraint_info for p, perm in self.decision.permissions.items() if perm.constraint_info},
            "effective": states(self.decision.effective),
            "sources": [_source(s) for s in self.signals],
            "conflicts": list(self.decision.conflicts),
            "errors": list(self.errors),
            "notes": list(self.notes),
            "unread": list(self.unread),
        }


def _source(signal: Signal) -> dict[str, Any]:
    return {
        "source": signal.carrier,
        "vocabulary": signal.vocabulary,
        "trusted": signal.trusted,
        "raw": {k: v for k, v in signal.raw.items()},
        "permissions": {p.value: perm.to_json() for p, perm in signal.permissions.items()
                        if perm.state is not State.UNSPECIFIED},
    }


def split_url(url: str) -> SplitResult | None:
    """``urlsplit``, or None for a URL it refuses (``https://[::1/`` raises ValueError)."""
    try:
        return urlsplit(url)
    except ValueError:
        return None


def _path(url: str) -> str:
    parts = urlsplit(url)
    return without_dot_segments(parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def without_dot_segments(path: str) -> str:
    """The path an HTTP client sends for ``path``: its "." and ".." segments removed (RFC 3986
    5.2.4), "%2e" read as "." as aiohttp and browsers do. robots.txt and tdmrep.json speak of that
    path: matched against "/x/../private/a.jpg", ``Disallow: /private/`` closed nothing."""
    if "." not in path and "%2" not in path:
        return path
    segments = path.split("/")[1:] if path.startswith("/") else path.split("/")
    out: list[str] = []
    for index, segment in enumerate(segments):
        dots = segment.lower().replace("%2e", ".")
        if dots in (".", ".."):
            if dots == ".." and out:
                out.pop()
            if index == len(segments) - 1:
                out.append("")  # "/a/.." is "/", a folder
            continue
        out.append(segment)
    return "/" + "/".join(out)


def forbidden(site: Site, url: str, agent: str) -> str | None:
    """Why robots.txt forbids ``agent`` to fetch ``url`` (RFC 9309), or None: a polite check
    does not fetch a resource its site closed to it."""
    if site.robots_unreachable:
        return f"robots.txt unreachable ({site.robots_unreachable}): the whole site counts as disallowed"
    robots = site.parsed_robots
    path = _robots.normalise(_path(url))
    if robots is None or path == "/robots.txt":
        return None
    for reading in robots.readings():
        rule = _robots.decide_path(reading.select(agent), path)
        if rule is not None and not rule.allow:
            return f"robots.txt line {rule.line} disallows it for {_robots.product_token(agent)}"
    return None


def site_signals(site: Site, url: str, agent: str) -> tuple[list[Signal], list[str], list[str]]:
    """Signals of an origin's robots.txt and tdmrep.json for ``url``: signals, errors, notes."""
    found: list[Signal] = []
    errors: list[str] = []
    notes = list(site.notes)
    path = _path(url)
    if site.robots_unreachable:
        reason = site.robots_unreachable
        found.append(_robots.disallow_all(reason))
        notes.append(f"robots.txt unreachable ({reason}): the whole site counts as disallowed (RFC 9309)")
    elif site.robots_status >= 400:
        notes.append(f"robots.txt: HTTP {site.robots_status}, so no rules (RFC 9309)")
    elif site.parsed_robots is not None:
        notes += site.parsed_robots.notes
        more, errs = _robots.signals(site.parsed_robots, path, agent)
        found += more
        errors += errs
    if site.tdmrep_error or _failed(site.tdmrep_status):
        errors.append(f"/.well-known/tdmrep.json not read: {site.tdmrep_error or f'HTTP {site.tdmrep_status}'}")
    elif site.tdmrep_soft_404:
        notes.append("/.well-known/tdmrep.json answered with an HTML page (a 'soft 404'): taken as absent")
    elif isinstance(site.parsed_tdmrep, MalformedMetadata):
        errors.append(str(site.parsed_tdmrep))
    elif site.parsed_tdmrep:
        here, normalised = tdmrep_json.site_of(url), _robots.normalise(path)
        notes += [f"tdmrep.json rule {rule.index}: its location names another site ({rule.site}), "
                  + ("applied all the same: a reservation is never dropped for its site's spelling"
                     if tdmrep_json.applies(rule, here) else
                     "so it is ignored here (TDMRep: a location is a path of the site the file is on)")
                  for rule in tdmrep_json.foreign(site.parsed_tdmrep, normalised, here)]
        try:
            signal = tdmrep_json.signal(site.parsed_tdmrep, normalised, here)
        except MalformedMetadata as exc:
            errors.append(str(exc))
        else:
            if signal:
                found.append(signal)
    return found, errors, notes


def evaluate(
    url: str,
    *,
    headers: _headers.Headers | None = None,
    body: bytes | None = None,
    page: bytes | str | None = None,
    site: Site | None = None,
    user_agent: str = DEFAULT_AGENT,
    final_url: str | None = None,
    http_status: int | None = None,
    redirected_from: Sequence[tuple[str, Site] | tuple[str, Site, _headers.Headers]] = (),
) -> WebReport:
    """The decision for ``url`` from what is given; nothing is fetched.

    ``headers``: the resource's response headers; ``body``: its bytes (embedded carriers are read,
    and an HTML body's meta elements); ``page``: the HTML page the resource was found on, whose
    meta elements apply to it; ``site``: its origin's robots.txt and tdmrep.json;
    ``redirected_from``: each URL that redirected towards ``final_url``, with its own site (and,
    when known, the headers of its redirect response).
    """
    report = WebReport(url, final_url=final_url or url, http_status=http_status)
    where = report.final_url or url
    content_type = ""
    if headers is not None:
        parsed = _headers.parse(headers, user_agent)
        content_type = parsed.content_type
        report.signals += parsed.signals
        report.errors += parsed.errors
        report.notes += parsed.notes
    else:
        report.unread.append("response headers: not given")
    if site is not None and split_url(where) is None:
        report.errors.append(f"URL cannot be parsed ({where[:200]!r}): its site's policies were not read")
        site = None
    if site is not None:
        found, errors, notes = site_signals(site, where, user_agent)
        report.signals += found
        report.errors += errors
        report.notes += notes
        for name, data, status, error in (("robots.txt", site.robots, site.robots_status, site.robots_error),
                                          ("tdmrep.json", site.tdmrep, site.tdmrep_status, site.tdmrep_error)):
            if data is None and error is None and status < 400:
                report.unread.append(f"{name}: not given")
    else:
        report.unread.append("robots.txt and tdmrep.json: not given")
    for item in redirected_from:
        hop, hop_site = item[0], item[1]
        # A URL keeps its site's reservations when it redirects: a publisher's tdmrep.json for
        # /img/* (or its robots.txt shutting GPTBot out) was lost when /img/a.jpg went to a CDN.
        found, errors, notes = site_signals(hop_site, hop, user_agent)
        if len(item) > 2:
            # And the signals its redirect response carried: an X-Robots-Tag: noai (tdm-reservation,
            # Content-Usage) on a 301 to the image was read nowhere, so the image came out unspecified.
            # The strictest along the chain wins, as for the hops' sites (fail closed).
            parsed = _headers.parse(item[2], user_agent)
            found, errors, notes = parsed.signals + found, parsed.errors + errors, parsed.notes + notes
        report.signals += [replace(s, carrier=f"{s.carrier} of {hop}") for s in found]
        report.errors += [f"{hop}: {e}" for e in errors]
        report.notes += [f"{hop}: {n}" for n in notes]
    if page is not None:
        found, errors, notes = _html.signals(page, user_agent, where="page")
        report.signals += found
        report.errors += errors
        report.notes += notes
    conflicts: tuple[str, ...] = ()
    if body is not None:
        if (content_type in ("text/html", "application/xhtml+xml") and not _media(body)) or _html.looks_like_html(body):
            found, errors, notes = _html.signals(body, user_agent, where="html")
            report.signals += found
            report.errors += errors
            report.notes += notes
        else:
            from ..api import read  # a header-only check never loads the carrier readers

            embedded = read(body, name=where)
            report.embedded = embedded
            report.errors += [f"body: {e}" for e in embedded.errors if not _benign(e)]
            if embedded.format is None and not embedded.errors:
                report.notes.append("body: not a format rightsmeta reads")
            signal = embedded_signal(embedded.decision)
            if signal:
                report.signals.append(signal)
            conflicts = tuple(f"body: {c}" for c in embedded.decision.conflicts)
    else:
        report.unread.append("body: not fetched, so the file's embedded carriers were not read")
    report.decision = decide_web(report.signals, extra_conflicts=conflicts)
    return report


def _media(body: bytes) -> bool:
    """Whether the bytes are a file rightsmeta reads (not text an HTML page could be): a script
    sending a picture without setting its type ("image.php": PHP's default is text/html) was read
    as a page, with no meta element and the picture's own carriers unread."""
    from ..carriers import detect

    found = detect(body[:64])
    return found is not None and found[0].name != "svg"  # an XHTML page may hold an inline <svg>


def _benign(error: str) -> bool:
    # A body in a format rightsmeta does not know (a stray text file) holds no carriers to read:
    # that is not a failure to read a rights signal.
    return error.startswith("not a format rightsmeta knows")


def from_headers(headers: _headers.Headers, url: str | None = None, *, user_agent: str = DEFAULT_AGENT) -> WebReport:
    """A recorded response's headers (and its URL, if known) to a web decision. No network, pure.

    For dataset builders holding a sample's URL and headers: the same rules as ``check``,
    over the headers alone (site policies and body are listed as not read).
    """
    return evaluate(url or "", headers=headers, user_agent=user_agent)
