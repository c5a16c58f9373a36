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
_YES = {"y": State.ALLOWED, "yes": State.ALLOWED, "?1": State.ALLOWED}
_NO = {"n": State.NOT_ALLOWED, "no": State.NOT_ALLOWED, "?0": State.NOT_ALLOWED}


def _dictionary(value: str, what: str) -> list[tuple[str, str]]:
    """A lenient reading of an RFC 9651 dictionary of tokens: ``key=token, key=token``.

    Parameters (``;...``) are dropped; a bare key means true, as in RFC 9651.
    """
    if len(value) > 8192:
        raise MalformedMetadata(f"{what} value is too long ({len(value)} characters)")
    members = []
    for part in value.split(","):
        part = part.split(";", 1)[0].strip()
        if not part:
            continue
        key, sep, token = part.partition("=")
        members.append((key.strip().lower(), token.strip().lower() if sep else "?1"))
    return members


def _apply(members: list[tuple[str, str]], table: dict[str, tuple[Purpose, ...]], what: str) -> dict[Purpose, Permission]:
    perms: dict[Purpose, Permission] = {}
    # Umbrella keys first, so that a specific key given anywhere in the value wins.
    ordered = sorted(members, key=lambda kv: len(table.get(kv[0], ())), reverse=True)
    for key, token in ordered:
        if key not in table:
            continue  # unknown keys are ignored, as RFC 9651 consumers must
        state = _YES.get(token) or _NO.get(token)
        if state is None:
            raise MalformedMetadata(f"{what}: {key}={token!r} is neither y nor n")
        for purpose in table[key]:
            perms[purpose] = Permission(state)
    return perms


def decode_content_usage(value: str, *, carrier: str = "http") -> Signal:
    """A ``Content-Usage`` header or robots.txt ``Content-Usage:`` rule value."""
    members = _dictionary(value, "Content-Usage")
    perms = _apply(members, {**_LEGACY, **_CURRENT}, "Content-Usage")
    return Signal(NAME, carrier, perms, raw={"Content-Usage": value.strip()})


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
    """Cloudflare's ``Content-Signal: search=yes, ai-input=no, ai-train=no``."""
    perms = _apply(_dictionary(value, "Content-Signal"), _CONTENT_SIGNAL, "Content-Signal")
    return Signal("content-signal", carrier, perms, raw={"Content-Signal": value.strip()})


def decode_robots(value: str, *, carrier: str = "http") -> Signal | None:
    """``X-Robots-Tag`` / ``<meta name="robots">`` directives; ``noai``/``noimageai`` deny AI uses."""
    directives = {d.strip().lower() for d in value.replace(";", ",").split(",")}
    if not directives & {"noai", "noimageai"}:
        return None
    perms = {p: Permission(State.NOT_ALLOWED) for p in AI_PURPOSES}
    return Signal("robots", carrier, perms, raw={"robots": value.strip()})
