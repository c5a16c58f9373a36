"""IETF AI Preferences (aipref) ``Content-Usage`` values, and the HTTP/robots signals beside them.

vocab-07 has two categories: ``train-ai`` (training models that generate content: our
genai-training) and ``search``. Older drafts' keys are read, never written. Cloudflare's
``Content-Signal`` and the ``noai`` robots directives are read here too, since a crawler
meets them in the same headers.
"""

from __future__ import annotations

from ..errors import MalformedMetadata
from ..model import AI_PURPOSES, PURPOSES, Assertion, Permission, Purpose, State
from . import Signal

NAME = "aipref"

_CURRENT: dict[str, tuple[Purpose, ...]] = {
    "train-ai": (Purpose.GENAI_TRAINING,),
    "search": (Purpose.SEARCH,),
}
# Keys of earlier drafts (draft-keller-aipref-vocab, draft-ietf-aipref-vocab-00..04).
# "bots" (automated processing) is the umbrella over the rest; specific keys override it.
_LEGACY: dict[str, tuple[Purpose, ...]] = {
    "bots": PURPOSES,
    "tdm": (Purpose.DATA_MINING,),
    "train-genai": (Purpose.GENAI_TRAINING,),
    "ai-use": (Purpose.AI_INFERENCE,),
}
_CONTENT_SIGNAL: dict[str, tuple[Purpose, ...]] = {
    "search": (Purpose.SEARCH,),
    "ai-input": (Purpose.AI_INFERENCE,),
    "ai-train": (Purpose.AI_TRAINING, Purpose.GENAI_TRAINING),
}
_YES = {"y": State.ALLOWED, "yes": State.ALLOWED}
# RFC 9651's boolean false (?0), which a bare key's true makes writers reach for, is read as n: a
# "no" read as nothing would fail open. Its true (?1, and a bare key) stays unknown: granting is
# left to the tokens.
_NO = {"n": State.NOT_ALLOWED, "no": State.NOT_ALLOWED, "?0": State.NOT_ALLOWED}


def _dictionary(value: str, what: str) -> dict[str, str]:
    """A lenient reading of an RFC 9651 dictionary of tokens: ``key=token, key=token``.

    Parameters (``;...``) are dropped; a bare key is the boolean true (``?1``), as in RFC 9651;
    a key given twice has its last value, as RFC 9651 says (aipref's "Multiple Preferences").
    """
    if len(value) > 8192:
        raise MalformedMetadata(f"{what} value is too long ({len(value)} characters)")
    members: dict[str, str] = {}
    for part in value.split(","):
        part = part.split(";", 1)[0].strip()
        if not part:
            continue
        key, sep, token = part.partition("=")
        members[key.strip().lower()] = token.strip().lower() if sep else "?1"
    return members


def _apply(members: dict[str, str], table: dict[str, tuple[Purpose, ...]]) -> tuple[dict[Purpose, Permission], list[str]]:
    """The permissions the members state, and the known keys whose value states nothing: aipref's
    processing makes a value other than the tokens y and n "unknown" for that key only, "not an
    error", so ``search=perhaps`` does not void the ``train-ai=n`` beside it."""
    perms: dict[Purpose, Permission] = {}
    unknown: list[str] = []
    # Umbrella keys first, so that a specific key given anywhere in the value wins.
    for key in sorted(members, key=lambda k: len(table.get(k, ())), reverse=True):
        if key not in table:
            continue  # unknown keys are ignored, as RFC 9651 consumers must
        state = _YES.get(members[key]) or _NO.get(members[key])
        if state is None:
            unknown.append(f"{key}={members[key]}")
            continue
        for purpose in table[key]:
            perms[purpose] = Permission(state)
    return perms, unknown


def _signal(vocabulary: str, header: str, value: str, table: dict[str, tuple[Purpose, ...]], carrier: str) -> Signal:
    perms, unknown = _apply(_dictionary(value, header), table)
    raw: dict[str, object] = {header: value.strip()}
    if unknown:
        raw["unknown"] = unknown  # neither y nor n: said by the caller, stating nothing
    return Signal(vocabulary, carrier, perms, raw=raw)


def decode_content_usage(value: str, *, carrier: str = "http") -> Signal:
    """A ``Content-Usage`` header or robots.txt ``Content-Usage:`` rule value. Keys whose value is
    neither y nor n state nothing and are listed in ``raw["unknown"]``."""
    return _signal(NAME, "Content-Usage", value, {**_LEGACY, **_CURRENT}, carrier)


def encode_content_usage(assertion: Assertion) -> str | None:
    """``train-ai=n, search=y`` from the assertion; constrained counts as n. None if nothing to say."""
    parts = []
    for key, (purpose,) in _CURRENT.items():
        state = assertion.state(purpose)
        if state is State.UNSPECIFIED:
            continue
        parts.append(f"{key}={'y' if state is State.ALLOWED else 'n'}")
    return ", ".join(parts) or None


def decode_content_signal(value: str, *, carrier: str = "http") -> Signal:
    """Cloudflare's ``Content-Signal: search=yes, ai-input=no, ai-train=no`` (read as Content-Usage is)."""
    return _signal("content-signal", "Content-Signal", value, _CONTENT_SIGNAL, carrier)


def decode_robots(value: str, *, carrier: str = "http") -> Signal | None:
    """``X-Robots-Tag`` / ``<meta name="robots">`` directives; ``noai``/``noimageai`` deny AI uses."""
    directives = set(value.replace(";", " ").replace(",", " ").lower().split())  # "noindex noai" too
    if not directives & {"noai", "noimageai"}:
        return None
    perms = {p: Permission(State.NOT_ALLOWED) for p in AI_PURPOSES}
    return Signal("robots", carrier, perms, raw={"robots": value.strip()})
