"""The web part of a sample's decision: the URL and response headers its JSON recorded.

A dataset built by a crawler (img2dataset and friends) often keeps, beside each sample, the URL
it came from and some of the response headers. Those headers may carry a reservation the file
itself does not (``tdm-reservation``, ``X-Robots-Tag: noai``, ``Content-Usage: train-ai=n``).
Nothing here touches the network: only what was recorded is read.

The step is pluggable (:data:`HeaderStep`). :data:`DEFAULT_STEP` is :func:`web_headers`, the
header rules of ``rightsmeta check`` (``rightsmeta.web``); :func:`recorded_headers` is a minimal,
stricter reader over the vocabulary decoders alone (agent-scoped ``X-Robots-Tag`` directives count
for everyone, malformed values drop the sample).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..errors import NOT_JSON, MalformedMetadata
from ..vocab import Signal, aipref, tdmrep

#: (url, headers as (name, value) pairs) -> (signals found, errors). Must be pure: no network.
HeaderStep = Callable[[str | None, Sequence[tuple[str, str]]], tuple[list[Signal], list[str]]]

# Keys under which crawlers record response headers in a sample's JSON.
HEADER_KEYS = ("headers", "response_headers", "http_headers")
MAX_HEADERS = 1000  # a recorded header list is untrusted input like any other
MAX_VALUE = 8192


def headers_of(meta: Mapping[str, Any]) -> tuple[str | None, list[tuple[str, str]], list[str]]:
    """The URL and the recorded headers of a sample's metadata, and what could not be read."""
    url = meta.get("url")
    errors: list[str] = []
    if url is not None and not isinstance(url, str):
        errors.append(f"sample metadata: url is a {type(url).__name__}, not text")
        url = None
    pairs: list[tuple[str, str]] = []
    # Every key is read: the first alone lost the response's headers of a crawler that records the
    # request's as "headers" beside them.
    for key in HEADER_KEYS:
        if meta.get(key) is not None:
            _add_pairs(meta[key], pairs, errors)
    return url, pairs, errors


def _add_pairs(raw: Any, pairs: list[tuple[str, str]], errors: list[str]) -> None:
    items: Iterable[Any]
    if isinstance(raw, (str, bytes)):  # a Parquet column or a crawler that stored the headers as JSON text
        try:
            raw = json.loads(raw)
        except NOT_JSON:
            errors.append("sample metadata: recorded headers are text that is not JSON")
            return
    if isinstance(raw, Mapping):
        items = raw.items()
    elif isinstance(raw, list):
        items = raw
    else:
        errors.append(f"sample metadata: recorded headers are a {type(raw).__name__}, not an object or list of pairs")
        return
    for n, item in enumerate(items):
        if n >= MAX_HEADERS:
            errors.append(f"sample metadata: more than {MAX_HEADERS} recorded headers; the rest were not read")
            return
        if isinstance(item, Mapping) and "name" in item and "value" in item:
            item = (item["name"], item["value"])  # HAR's form, {"name": ..., "value": ...}, as browsers and proxies record
        if not (isinstance(item, (list, tuple)) and len(item) == 2):
            errors.append(f"sample metadata: recorded header #{n} is not a (name, value) pair")
            continue
        name, value = item
        values = value if isinstance(value, list) else [value]  # {"X-Robots-Tag": ["noai", "noindex"]}
        for v in values:
            if not isinstance(name, str) or not isinstance(v, str):
                errors.append(f"sample metadata: recorded header #{n} is not text")
                continue
            pairs.append((name, v))


def recorded_headers(url: str | None, headers: Sequence[tuple[str, str]]) -> tuple[list[Signal], list[str]]:
    """Minimal header reading: TDMRep, IETF aipref ``Content-Usage``, ``X-Robots-Tag`` noai.

    Several headers of one name are each decoded; the decision rules merge them with the file's
    own signals (notAllowed > constrained > allowed > unspecified).
    """
    signals: list[Signal] = []
    errors: list[str] = []
    lower = [(name.strip().lower(), value) for name, value in headers]
    policy = next((v for n, v in lower if n == "tdm-policy"), None)
    for name, value in lower:
        if len(value) > MAX_VALUE:
            errors.append(f"recorded header {name} is too long ({len(value)} characters); not read")
            continue
        try:
            found: Signal | None = None
            if name == "tdm-reservation":
                found = tdmrep.decode(value, policy, carrier="http")
            elif name == "content-usage":
                found = aipref.decode_content_usage(value, carrier="http")
            elif name == "x-robots-tag":
                # "somebot: noai" scopes the directive to one agent; without the caller's agent we
                # cannot tell it does not apply, so it counts (fail closed). Each piece is read: the
                # value's last colon alone lost "noai" in "noai, unavailable_after: 2030-01-01".
                found = aipref.decode_robots(", ".join(p.rpartition(":")[2] for p in value.split(",")), carrier="http")
        except MalformedMetadata as exc:
            errors.append(f"recorded header {name}: {exc}")
            continue
        if found is not None:
            signals.append(found)
    return signals, errors


def web_headers(url: str | None, headers: Sequence[tuple[str, str]]) -> tuple[list[Signal], list[str]]:
    """The scrapers' header reading (``rightsmeta.web.headers.parse``, issue 13), for the agent
    ``rightsmeta``: X-Robots-Tag directives scoped to other agents do not apply; values the web
    layer ignores as malformed (TDMRep: "treated as unset") are ignored here too, while headers
    that could not be decoded at all are errors, which drop the sample."""
    from ..web.core import DEFAULT_AGENT
    from ..web.headers import parse

    parsed = parse(list(headers), DEFAULT_AGENT)
    return parsed.signals, parsed.errors


#: The step ``decide_sample`` uses unless told otherwise: the same header rules as ``rightsmeta check``.
DEFAULT_STEP: HeaderStep = web_headers
