"""SVG: recognised so that a signed C2PA manifest can carry the signal; no other carrier is written.

XMP in an SVG's <metadata> element has no tool support worth writing for, so the family reads
nothing itself and refuses to write: with a signing identity, the manifest alone carries the
statement (api.py signs it), and without one the result says why nothing was written.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..errors import UnsupportedFormat
from ..model import Assertion
from ..report import CarrierReport

if TYPE_CHECKING:
    from . import Options

FORMATS = ("svg",)
# An XML declaration, comments or a doctype may come first; the root element must be <svg. One
# "<!--.*-->" stands for any run of comments (the same strings) without the exponential backtracking
# of "(<!--.*?-->\s*)*" over the many ways to split a run.
_SVG = re.compile(rb"^\s*(<\?xml[^>]*>\s*)?(<!--.*-->\s*)?(<!DOCTYPE[^>]*>\s*)?<svg[\s>]", re.DOTALL)


def sniff(head: bytes) -> str | None:
    text = head[3:] if head.startswith(b"\xef\xbb\xbf") else head
    return "svg" if _SVG.match(text) or (text.lstrip().startswith(b"<?xml") and b"<svg" in text) else None


def read(buf: Any, fmt: str, options: Options | None = None) -> list[CarrierReport]:
    return []


def write(data: bytes, fmt: str, assertion: Assertion, options: Options | None = None) -> tuple[bytes, list[str]]:
    raise UnsupportedFormat("rightsmeta writes no metadata into SVG files; a signed C2PA manifest can carry the signal")
