"""Rights signals in an HTML page's ``<meta>`` elements: TDMRep and robots noai/noimageai.

Only the document's start is parsed (``MAX_BYTES``; meta elements belong in the head), with the
standard library's tolerant parser, which expands no entities beyond HTML's fixed set. A head
that goes on past it is an error when a meta element follows (it may hold the reservation).
"""

from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser

from ..errors import MalformedMetadata
from ..vocab import Signal, tdmrep
from .headers import robots_directives, robots_signal
from .robots import product_token

MAX_BYTES = 1024 * 1024
_META = re.compile("<meta", re.IGNORECASE)
# HTML's encoding sniffing starts with the byte order mark, which decides over any charset said
# elsewhere: a UTF-16 page read as UTF-8 has a NUL between letters, so no meta element in it is seen.
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


class _Metas(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.metas: list[tuple[str, str]] = []
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("title", "textarea"):
            # Text up to its end tag, as in HTML's own parsing (the standard library's parser does so for
            # script and style only): "<title>The <body> element</title>" does not end the head.
            self.set_cdata_mode(tag)
        if tag == "body":
            self.done = True
        if tag != "meta" or self.done:
            return
        values = {k.lower(): (v or "") for k, v in attrs}
        if "name" in values and "content" in values and len(self.metas) < 1000:
            self.metas.append((values["name"].strip().lower(), values["content"]))

    # An element's text (title, textarea, script, style) ends at its end tag even with attributes
    # ("</title foo>"), which HTML ignores; Python 3.11's parser waits for a bare "</title>" and so
    # swallowed the rest of the head.
    def set_cdata_mode(self, elem: str, **options: bool) -> None:
        super().set_cdata_mode(elem, **options)
        self.interesting = re.compile(rf"</{re.escape(elem)}(?=[\t\n\f\r />])", re.IGNORECASE)

    def parse_endtag(self, i: int) -> int:
        if self.cdata_elem is None:
            return super().parse_endtag(i)
        end = self.rawdata.find(">", i)
        if end < 0:
            return -1
        self.clear_cdata_mode()
        return end + 1


def metas(page: bytes | str) -> tuple[list[tuple[str, str]], bool, bool]:
    """The meta elements' (name, content); whether a meta element was left unread (the page ends
    inside a tag, as when an unclosed quote swallows every element after it, with one behind; or one
    follows the part read); and whether the head went on past the part read (``MAX_BYTES``)."""
    codec, start = _encoding(page) if isinstance(page, bytes) else ("", 0)
    text = page[start:MAX_BYTES].decode(codec, errors="replace") if isinstance(page, bytes) else page[:MAX_BYTES]
    parser = _Metas()
    # Fed in pieces so that the parse stops soon after <body> in a large page.
    for start in range(0, len(text), 16384):
        parser.feed(text[start:start + 16384])
        if parser.done:
            return parser.metas, False, False
    longer = len(page) > MAX_BYTES
    # The rest is only searched, not parsed: a meta element there may hold the reservation.
    after = longer and _meta_after(page, codec)
    return parser.metas, after or "<meta" in parser.rawdata.lower(), longer


def _encoding(page: bytes) -> tuple[str, int]:
    """The page's encoding by its byte order mark (UTF-8 without one), and where its text starts."""
    return next(((codec, len(bom)) for bom, codec in _BOMS if page.startswith(bom)), ("utf-8", 0))


def _meta_after(page: bytes | str, codec: str) -> bool:
    """Whether "<meta" (in ``page``'s encoding) is in the part of ``page`` after what was parsed."""
    if isinstance(page, str):
        return _META.search(page, MAX_BYTES - len("<meta") + 1) is not None
    meta = "<meta".encode(codec)
    return re.compile(re.escape(meta), re.IGNORECASE).search(page, MAX_BYTES - len(meta) + 1) is not None


def text_start(data: bytes, size: int = 1024) -> str:
    """The text ``data`` starts with, decoded by its byte order mark, lower case, leading space gone."""
    codec, at = _encoding(data)
    return data[at:at + size].decode(codec, errors="replace").lstrip().lower()


def looks_like_html(data: bytes) -> bool:
    return text_start(data).startswith(("<!doctype html", "<html", "<head", "<meta"))


def signals(page: bytes | str, agent: str, *, where: str = "html") -> tuple[list[Signal], list[str], list[str]]:
    """Signals of the page's meta elements for the caller ``agent``, errors (meta elements that
    could not be read: fail closed), and notes on what was ignored."""
    found: list[Signal] = []
    notes: list[str] = []
    token = product_token(agent)
    robots: list[str] = []
    reservations: list[str] = []
    policy: str | None = None
    elements, unread, longer = metas(page)
    errors: list[str] = []
    if longer:
        head = f"{where}: the head goes on past the first {MAX_BYTES // 1024 ** 2} MiB read (no <body> by then)"
        if unread:
            errors.append(f"{head}: a meta element after it was not read")
        else:
            notes.append(f"{head}; no meta element follows it")
    elif unread:
        errors.append(f"{where}: a meta element was not read (the page ends inside a tag, an unclosed quote?)")
    for name, content in elements:
        if name in ("robots", token):
            robots.append(content if name == "robots" else f"{token}: {content}")
        elif name == "tdm-reservation":
            reservations.append(content.strip())
        elif name == "tdm-policy" and policy is None:
            policy = content
    if robots:
        directives, ignored = robots_directives(robots, agent)
        notes += [f"{where} meta robots: {n}" for n in ignored]
        signal = robots_signal(directives, carrier=f"{where} meta robots", raw=", ".join(robots))
        if signal:
            found.append(signal)
    if tdmrep.disagreeing(reservations) is not None:
        errors.append(f"{where}: {len(reservations)} tdm-reservation meta elements with different values: "
                      f"{', '.join(reservations)}")
    elif reservations:
        try:
            signal = tdmrep.decode(reservations[0], policy, carrier=f"{where} meta tdm-reservation")
        except MalformedMetadata as exc:
            notes.append(f"{where} meta {exc}; ignored (TDMRep: treated as unset)")
        else:
            if signal:
                found.append(signal)
    return found, errors, notes
