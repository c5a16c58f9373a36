"""robots.txt (RFC 9309) as a rights signal: who may fetch a path, and the preferences stated beside.

rightsmeta parses robots.txt itself rather than through protego because a report must name the
group and line that decided; protego answers only yes or no. tests/test_web.py pins this
parser's allow/disallow answers to protego's on the same files.

Read here:
- ``Allow``/``Disallow`` of the group the caller's user agent selects (its own token, else ``*``):
  a path the caller may not fetch may not be used for anything (all five purposes notAllowed).
- the groups of named AI crawlers (GPTBot, CCBot, Google-Extended, ClaudeBot...), only where
  the file names them explicitly: shutting a training crawler out is a reservation of the uses
  that crawler exists for (project decision; the table is ``AI_BOTS``).
- ``Content-Usage`` (IETF aipref attachment; an optional path pattern, then the preferences) and
  Cloudflare's ``Content-Signal``, from the caller's group (else the ``*`` group); the longest
  matching path wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import quote, unquote

from ..errors import MalformedMetadata
from ..model import PURPOSES, Permission, Purpose, State
from ..vocab import Signal, aipref

#: Crawlers that exist to gather AI training or inference data, and the purposes their exclusion reserves.
AI_BOTS: Mapping[str, tuple[Purpose, ...]] = {
    "gptbot": (Purpose.AI_TRAINING, Purpose.GENAI_TRAINING),
    "ccbot": (Purpose.DATA_MINING, Purpose.AI_TRAINING, Purpose.GENAI_TRAINING),
    "google-extended": (Purpose.GENAI_TRAINING, Purpose.AI_INFERENCE),
    "claudebot": (Purpose.AI_TRAINING, Purpose.GENAI_TRAINING),
    "applebot-extended": (Purpose.AI_TRAINING, Purpose.GENAI_TRAINING),
    "meta-externalagent": (Purpose.AI_TRAINING, Purpose.GENAI_TRAINING),
    "bytespider": (Purpose.AI_TRAINING, Purpose.GENAI_TRAINING),
}

#: RFC 9309 asks parsers to read at least 500 KiB; whatever lies beyond is ignored.
MAX_BYTES = 512 * 1024
_MAX_LINES = 100_000
_MAX_PATTERN = 4096  # longer than any URL a crawler fetches


@dataclass(frozen=True)
class Rule:
    allow: bool
    pattern: str
    line: int


@dataclass(frozen=True)
class Pref:
    """A ``Content-Usage`` or ``Content-Signal`` line: an optional path pattern and its value."""

    pattern: str
    value: str
    line: int


@dataclass
class Group:
    agents: list[str]
    line: int
    rules: list[Rule] = field(default_factory=list)
    usage: list[Pref] = field(default_factory=list)
    content_signal: list[Pref] = field(default_factory=list)

    @property
    def name(self) -> str:
        return ", ".join(self.agents)

    @cached_property
    def _by_start(self) -> tuple[dict[str, list[tuple[int, Rule]]], list[int]]:
        # Built once the file is parsed (a group's rules are only read after that).
        starts: dict[str, list[tuple[int, Rule]]] = {}
        for position, rule in enumerate(self.rules):
            starts.setdefault(literal_start(rule.pattern), []).append((position, rule))
        return starts, sorted({len(start) for start in starts})

    def candidates(self, path: str) -> list[Rule]:
        """The rules that may match ``path``, in file order: those whose literal start (up to the
        first ``*`` or ``$``) begins it, as every match must. All of a file's rules were matched for
        each URL: 113 ms a URL against a 512 KiB robots.txt, in the event loop of the crawl."""
        starts, lengths = self._by_start
        found = [hit for length in lengths if length <= len(path) for hit in starts.get(path[:length], ())]
        return [rule for _, rule in sorted(found, key=lambda hit: hit[0])]


@dataclass
class Robots:
    groups: list[Group]
    notes: list[str] = field(default_factory=list)
    # The file read again with every line but a rule or Sitemap ending a list of user agents (as
    # protego and RFC 9309's grammar read Crawl-delay or an unknown line), when that groups it
    # otherwise: neither reading shuts out more in every file, so both are weighed (``readings``).
    strict: Robots | None = None

    def __post_init__(self) -> None:
        # token -> its groups, built once: a crawl asks the same file about thousands of paths
        self._by_token: dict[str, list[Group]] = {}
        for group in self.groups:
            for token in dict.fromkeys(group.agents):
                self._by_token.setdefault(token, []).append(group)

    def select(self, agent: str) -> list[Group]:
        """The groups RFC 9309 applies to ``agent``: every group naming it, else every ``*`` group."""
        return self.named(agent) or self._by_token.get("*", [])

    def named(self, agent: str) -> list[Group]:
        return self._by_token.get(product_token(agent), [])

    def readings(self) -> list[Robots]:
        """This reading and, where the file groups otherwise read strictly, that one too."""
        return [self] if self.strict is None else [self, self.strict]


# A crawler that names itself as browsers do ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://...)")
# is the product after "compatible;": robots.txt groups, scoped X-Robots-Tag and meta names use that
# name (protego finds it too); read as "mozilla", a group shutting MyBot out did not apply to it.
_COMPATIBLE = re.compile(r"\(compatible;\s*([^\s/;)]+)", re.IGNORECASE)


def product_token(agent: str) -> str:
    """``MyBot/1.2 (+https://...)`` -> ``mybot``: robots.txt matches the product token, case-insensitively."""
    compatible = _COMPATIBLE.search(agent)
    token = compatible[1] if compatible else agent.strip().split("/", 1)[0].split(" ", 1)[0]
    return token.lower()


# The keys as crawlers read them, with the typos Google's parser and protego accept: a site that
# wrote "User agent: GPTBot" / "Disalow: /" has shut GPTBot out for those crawlers, so for us too.
_USER_AGENT = {"user-agent", "useragent", "user agent"}
_DISALLOW = {"disallow", "dissallow", "dissalow", "disalow", "diasllow", "disallaw"}
# The rules of a group, which end its list of user agents. Any other line (Sitemap, Host, Crawl-delay,
# unknown ones) does not, as in Google's parser: "User-agent: a / Host: x / User-agent: b /
# Disallow: /" shuts a out too. Protego and the RFC's grammar end the list at Crawl-delay and
# unknown lines, which in other files shuts out more (a rule-less "User-agent: GPTBot / Crawl-delay:
# 1" is then a group of its own, not the next group's): both readings are weighed (Robots.strict).
_RULES = {"allow", "content-usage", "content-signal", *_DISALLOW}


def parse(data: bytes | str) -> Robots:
    """Groups of a robots.txt, each rule with its line; lines it cannot parse are skipped (RFC 9309)."""
    notes: list[str] = []
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            notes.append(f"robots.txt is {len(data)} bytes; only the first {MAX_BYTES} were read (RFC 9309 allows this)")
            data = data[:MAX_BYTES]
        text = data.decode("utf-8", errors="replace")
    else:
        text = data[:MAX_BYTES]
    # A byte order mark (robots.txt saved by Windows editors) would hide the first User-agent line,
    # and with it the rules of that group: Google's parser skips it too.
    text = text.removeprefix("\ufeff")
    lines = text.splitlines()[:_MAX_LINES]
    groups, strict = _read(lines, strict=False), _read(lines, strict=True)
    return Robots(groups, notes, None if strict == groups else Robots(strict))


def _read(lines: list[str], *, strict: bool) -> list[Group]:
    """The groups of these lines; ``strict``: any line but a rule or Sitemap ends a list of user agents."""
    groups: list[Group] = []
    current: Group | None = None
    in_agents = False  # consecutive user-agent lines open one group
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key in _USER_AGENT:
            if current is None or not in_agents:
                current = Group([], number)
                groups.append(current)
            current.agents.append("*" if value.startswith("*") else product_token(value))
            in_agents = True
            continue
        if current is None or key not in _RULES:
            # Rules before any user-agent line belong to no group; site-wide and unknown lines to none.
            in_agents = in_agents and not (strict and key != "sitemap")
            continue
        in_agents = False
        if key == "allow" or key in _DISALLOW:
            if (key != "allow" and not value) or len(value) > _MAX_PATTERN:
                continue  # "Disallow:" with nothing after it disallows nothing; a huge pattern is junk
            current.rules.append(Rule(key == "allow", normalise(value), number))
        elif key == "content-usage":
            current.usage.append(_pref(value, number))
        elif key == "content-signal":
            current.content_signal.append(_pref(value, number))
    return groups


_SAFE = "/*$?=&;:@!'()+,-._~"


def normalise(path: str) -> str:
    """RFC 9309 2.2.2: compare paths percent-encoded alike (``/ä`` and ``/%C3%A4`` are one path)."""
    if "%" not in path and path.isascii() and " " not in path:
        return path
    # An encoded slash is data, not a path separator: it stays encoded (as protego keeps it).
    # surrogatepass: a lone surrogate (a URL from a JSON "\ud800" escape) is encoded alike on both sides.
    return "%2F".join(quote(unquote(part), safe=_SAFE, errors="surrogatepass") for part in re.split("%2[fF]", path))


def _pref(value: str, line: int) -> Pref:
    if value.startswith("/"):
        # A tab parts them too (aipref's attachment: WS is a space or a tab); split at spaces only,
        # "/img/<tab>train-ai=n" was one path with no preference after it.
        pattern, *rest = value.split(None, 1)
        return Pref(normalise(pattern), rest[0].strip() if rest else "", line)
    return Pref("/", value, line)


def _glob(pattern: str, path: str) -> bool:
    """``*`` wildcard matching of the whole ``path``. Each literal piece between stars is found at
    its leftmost place after the previous one (``str.find``), which is the best choice for every
    later piece: linear work, where backtracking (a regular expression of ``.*`` pieces, or a
    greedy matcher that retries) costs pattern x path per rule on a hostile ``/*aaa...ab`` rule,
    and robots.txt comes from anyone."""
    if "*" not in pattern:
        return path == pattern
    first, *middle, last = pattern.split("*")
    if not path.startswith(first):
        return False
    at = len(first)
    for piece in middle:
        found = path.find(piece, at)
        if found < 0:
            return False
        at = found + len(piece)
    return len(path) - at >= len(last) and path.endswith(last)


def matches(pattern: str, path: str) -> bool:
    """RFC 9309 path matching: a prefix match, ``*`` any characters, ``$`` the end."""
    if pattern.endswith("$"):
        return _glob(pattern[:-1], path)
    if "*" not in pattern:
        return path.startswith(pattern)
    return _glob(pattern + "*", path)  # a prefix: anything may follow


def literal_start(pattern: str) -> str:
    """The part of a pattern before its first wildcard (``*``) or end anchor (``$``)."""
    return re.split(r"[*$]", pattern, maxsplit=1)[0]


def _specificity(pattern: str) -> int:
    return len(pattern)


def decide_path(groups: Iterable[Group], path: str) -> Rule | None:
    """The rule that decides ``path``: the longest match; on a tie Allow wins (RFC 9309 2.2.2)."""
    best: Rule | None = None
    for group in groups:
        for rule in group.candidates(path):
            if not matches(rule.pattern, path):
                continue
            if best is None or _specificity(rule.pattern) > _specificity(best.pattern) or (
                _specificity(rule.pattern) == _specificity(best.pattern) and rule.allow and not best.allow
            ):
                best = rule
    return best


def _best_prefs(prefs: Iterable[Pref], path: str) -> list[Pref]:
    """The preferences of the longest matching path: all of them, for aipref's attachment says rules
    with identical paths "apply separately" (combined, disallow first); the last alone made
    "train-ai=n" then "train-ai=y" allowed."""
    best: list[Pref] = []
    for pref in prefs:
        if not matches(pref.pattern, path):
            continue
        if not best or len(pref.pattern) > len(best[0].pattern):
            best = [pref]
        elif len(pref.pattern) == len(best[0].pattern):
            best.append(pref)
    return best


def signals(robots: Robots, path: str, agent: str, *, bots: Mapping[str, tuple[Purpose, ...]] = AI_BOTS) -> tuple[list[Signal], list[str]]:
    """What this robots.txt says about ``path`` for the caller ``agent``: signals, and errors (of
    both readings where the file's groups can be read two ways: the one that shuts out more wins)."""
    out: list[Signal] = []
    errors: list[str] = []
    for reading in robots.readings():
        found, errs = _signals(reading, path, agent, bots)
        out += [s for s in found if s not in out]
        errors += [e for e in errs if e not in errors]
    return out, errors


def _signals(robots: Robots, path: str, agent: str, bots: Mapping[str, tuple[Purpose, ...]]) -> tuple[list[Signal], list[str]]:
    out: list[Signal] = []
    errors: list[str] = []
    path = normalise(path)
    if path == "/robots.txt":
        return out, errors  # RFC 9309: always allowed
    mine = robots.select(agent)
    rule = decide_path(mine, path)
    if rule is not None and not rule.allow:
        group = next(g for g in mine if rule in g.rules)
        out.append(Signal(
            "robots", f"robots.txt line {rule.line} (user-agent {group.name})",
            {p: Permission(State.NOT_ALLOWED) for p in PURPOSES},
            raw={"rule": f"Disallow: {rule.pattern}", "line": rule.line, "group": group.name, "agent": product_token(agent)},
        ))
    token = product_token(agent)
    for bot, purposes in bots.items():
        if bot == token:
            continue  # the caller's own group was weighed above
        named = robots._by_token.get(bot)
        if not named:
            continue
        rule = decide_path(named, path)
        if rule is None or rule.allow:
            continue
        group = next(g for g in named if rule in g.rules)
        out.append(Signal(
            "robots-ai-bot", f"robots.txt line {rule.line} (user-agent {group.name})",
            {p: Permission(State.NOT_ALLOWED) for p in purposes},
            raw={"rule": f"Disallow: {rule.pattern}", "line": rule.line, "group": group.name, "bot": bot},
            covers=purposes,
        ))
    for attr, decode in (("usage", aipref.decode_content_usage), ("content_signal", aipref.decode_content_signal)):
        # Preferences are said to everyone: a caller with its own group (for its crawl rules) still
        # hears the "*" group's, unless its own group states some.
        groups = mine if any(getattr(g, attr) for g in mine) else robots.select("*")
        for pref in _best_prefs((p for g in groups for p in getattr(g, attr)), path):
            try:
                signal = decode(pref.value, carrier=f"robots.txt line {pref.line}")
            except MalformedMetadata as exc:
                errors.append(f"robots.txt line {pref.line}: {exc}")
                continue
            if all(p.state is State.UNSPECIFIED for p in signal.permissions.values()):
                continue  # "train-ai=maybe" states nothing: no source printed with nothing after it
            out.append(Signal(signal.vocabulary, signal.carrier, signal.permissions,
                              raw={**signal.raw, "path": pref.pattern, "line": pref.line}))
    return out, errors


def disallow_all(reason: str) -> Signal:
    """RFC 9309 2.3.1.4: an unreachable robots.txt (5xx, network) means the whole site is disallowed."""
    return Signal("robots", "robots.txt", {p: Permission(State.NOT_ALLOWED) for p in PURPOSES},
                  raw={"unreachable": reason})
