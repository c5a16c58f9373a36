"""A PDF's essence (``fingerprint._pdf``: the hash of its pages' content and XObjects, and their
text) read with ``carriers/pdfobjects.py`` instead of pypdf, for PDFs where that gives the same.

pypdf costs ~0.3 s to import and ~1 ms to parse even a one-page PDF, to hash a few streams. This
walk takes the same objects from our own reader, in pypdf's order, and feeds the same bytes to
the same digest (``fingerprint._feed``), so the hash is the one pypdf's walk makes
(tests/test_pdf_essence.py compares both on generated and corpus PDFs).

Text needs pypdf's extraction (fonts, encodings, CMaps), so this walk only answers for PDFs that
show no text: no text-showing operator (``Tj``, ``TJ``, ``'``, ``"``) in any page's content or
any form XObject the page can draw, where pypdf's extraction finds nothing but whitespace (which
``_pdf`` strips). Scans, drawings and blank pages; any other PDF, and anything this reader leaves
to pypdf (an unusual page tree, filter, encryption, a repair), raises ``LeaveToLibrary`` and
``_pdf`` reads it with pypdf as before. One difference: content that pypdf's text extraction
fails to parse, without any text operator, now gets its hash where it got none.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .carriers.pdfobjects import MAX_STRUCTURE, Reader, Ref, Stream
from .errors import LeaveToLibrary
from .fingerprint import MAX_PDF_DECODED, MAX_PDF_PAGES, MAX_XOBJECT_DEPTH, _feed

_MAX_TREE_DEPTH = 32
# Bytes that begin or are a text-showing operator; also met in strings and inline images, where
# they only send the PDF to pypdf.
_TEXT_MARKS = (b"Tj", b"TJ", b"'", b'"')


def pdf_essence(data: bytes) -> tuple[str | None, str]:
    """``fingerprint._pdf(data)`` for a PDF that shows no text: (hash or None, ""). Raises
    ``LeaveToLibrary`` when the answer needs pypdf; ``fingerprint._Refused`` as ``_pdf`` does."""
    reader = Reader(data)
    if "/Encrypt" in reader.trailer:
        raise LeaveToLibrary
    pages = _pages(reader)
    digest = hashlib.sha256(b"rightsmeta-pdf-v1\0%d\0" % len(pages))
    walk = _Walk(reader, digest)
    drew = False
    for resources, contents in pages:
        digest.update(b"\0page\0")
        if contents is not None:
            drew |= walk.feed(contents)
        drew |= walk.xobjects(resources, 0, set())
    return (digest.hexdigest() if drew else None), ""


def _pages(reader: Reader) -> list[tuple[Any, bytes | None]]:
    """Each page's /Resources (raw, inherited as pypdf inherits it) and decoded /Contents, in
    pypdf's order; a page tree pypdf would read otherwise than the plain way is left to it."""
    root = reader.trailer.get("/Root")
    catalog = reader.get(root) if isinstance(root, Ref) else None
    top = catalog.get("/Pages") if isinstance(catalog, dict) else None
    if not isinstance(top, Ref):
        raise LeaveToLibrary
    out: list[tuple[Any, bytes | None]] = []
    seen: set[Ref] = set()

    def visit(ref: Ref, inherited: tuple[Any, ...], depth: int) -> None:
        node = reader.get(ref)
        if ref in seen or depth > _MAX_TREE_DEPTH or not isinstance(node, dict) or not node:
            raise LeaveToLibrary  # a page twice, a loop, an empty or odd node: pypdf's own rules
        seen.add(ref)
        if "/Resources" in node:
            inherited = (node["/Resources"],)
        kind = node.get("/Type")
        if kind == "/Pages":
            kids = node.get("/Kids")
            if not isinstance(kids, list) or not all(isinstance(kid, Ref) for kid in kids):
                raise LeaveToLibrary
            for kid in kids:
                visit(kid, inherited, depth + 1)
        elif kind == "/Page":
            if len(out) >= MAX_PDF_PAGES:
                raise LeaveToLibrary  # pypdf's walk refuses it with the usual reason
            out.append((inherited[0] if inherited else None, _contents(reader, node)))
        else:
            raise LeaveToLibrary  # no /Type, or another one: pypdf guesses

    visit(top, (), 0)
    return out


def _contents(reader: Reader, page: dict[str, Any]) -> bytes | None:
    """The page's content as pypdf's ``page.get_contents().get_data()`` gives it."""
    if "/Contents" not in page:
        return None
    found = reader.resolve(page["/Contents"])
    if found is None:
        return None
    if isinstance(found, Stream):
        return _decode(reader, found)
    if not isinstance(found, list):
        raise LeaveToLibrary
    # pypdf joins an array's streams, each followed by a line end unless it ends with one.
    data = bytearray()
    for item in found:
        stream = reader.resolve(item)
        if not isinstance(stream, Stream):
            raise LeaveToLibrary
        data += _decode(reader, stream)
        if data[-1:] != b"\n":
            data += b"\n"
        if len(data) > MAX_PDF_DECODED:
            raise LeaveToLibrary
    return bytes(data)


def _decode(reader: Reader, stream: Stream) -> bytes:
    return reader.decode(stream, MAX_STRUCTURE)  # larger streams: pypdf (and its limits) decide


class _Walk:
    """``fingerprint._xobjects`` over this reader's objects, refusing text on the way."""

    def __init__(self, reader: Reader, digest: Any) -> None:
        self.reader, self.digest = reader, digest
        self.budget = [MAX_PDF_DECODED]

    def feed(self, chunk: bytes) -> bool:
        if any(mark in chunk for mark in _TEXT_MARKS):
            raise LeaveToLibrary  # text may be shown: pypdf extracts it
        return _feed(self.digest, chunk, self.budget)

    def xobjects(self, resources: Any, depth: int, seen: set[int]) -> bool:
        resources = self._dict_or_none(resources)
        if resources is None:
            return False
        if depth > MAX_XOBJECT_DEPTH:
            raise LeaveToLibrary  # forms deeper than the hash goes may still show text
        xobjects = self._dict_or_none(resources.get("/XObject"))
        if xobjects is None:
            return False
        drew = False
        for name in sorted(xobjects):
            ref = xobjects[name]
            key = ref.num if isinstance(ref, Ref) else None
            if key is not None and key in seen:
                self.digest.update(b"ref\0")
                continue
            if key is not None:
                seen.add(key)
            stream = self.reader.resolve(ref)
            if not isinstance(stream, Stream):
                continue
            self.digest.update(name.encode("utf-8", "replace") + b"\0")
            subtype = stream.dictionary.get("/Subtype")
            if isinstance(subtype, Ref):
                raise LeaveToLibrary  # pypdf's walk compares the reference itself
            if subtype == "/Image":
                drew |= _feed(self.digest, _decode(self.reader, stream), self.budget)
            elif subtype == "/Form":
                drew |= self.feed(_decode(self.reader, stream))
                drew |= self.xobjects(stream.dictionary.get("/Resources"), depth + 1, seen)
            else:
                raise LeaveToLibrary  # pypdf extracts the text of any XObject but an image
        return drew

    def _dict_or_none(self, value: Any) -> dict[str, Any] | None:
        """A dictionary, or None where pypdf's walk finds nothing to hash (null, an array, a
        number); a stream where a dictionary belongs is left to pypdf, which reads its entries."""
        found = self.reader.resolve(value)
        if isinstance(found, Stream):
            raise LeaveToLibrary
        return found if isinstance(found, dict) else None
