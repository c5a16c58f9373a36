"""A PDF's essence: the hash of its pages' content and XObjects, and their text (``pdf_content``).

pypdf reads it (``pypdf_content``) unless this module's own walk can: pypdf costs ~0.3 s to
import and ~1 ms to parse even a one-page PDF, to hash a few streams. ``pdf_essence`` takes the
same objects from ``carriers/pdfobjects.py``'s reader, in pypdf's order, and feeds the same bytes
to the same digest (``_feed``), so the hash is the one pypdf's walk makes
(tests/test_pdf_essence.py compares both on generated and corpus PDFs).

Text needs pypdf's extraction (fonts, encodings, CMaps), so the walk only answers for PDFs that
show no text: no text-showing operator (``Tj``, ``TJ``, ``'``, ``"``) in any page's content or
any form XObject the page can draw, where pypdf's extraction finds nothing but whitespace (which
``pypdf_content`` strips). Scans, drawings and blank pages; any other PDF, and anything this reader
leaves to pypdf (an unusual page tree, filter, encryption, a repair), raises ``LeaveToLibrary`` and
is read with pypdf. One difference: content that pypdf's text extraction fails to parse, without
any text operator, gets its hash where it got none.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
from typing import Any

from .carriers.pdfobjects import MAX_STRUCTURE, Reader, Ref, Stream
from .errors import LeaveToLibrary, Undecodable

MAX_PDF_PAGES = 10_000
MAX_PDF_DECODED = 512 * 1024**2  # content and XObject bytes hashed, all pages together
MAX_XOBJECT_DEPTH = 8
MAX_TEXT_PAGES = 500  # pages whose text feeds the PDF's perceptual code
MAX_TEXT_CHARS = 4_000_000
_MAX_TREE_DEPTH = 32
_SPACES = re.compile(r"\s+")
# Bytes that begin or are a text-showing operator; also met in strings and inline images, where
# they only send the PDF to pypdf.
_TEXT_MARKS = (b"Tj", b"TJ", b"'", b'"')


def pdf_essence(data: bytes) -> tuple[str | None, str]:
    """``pdf_content(data)`` for a PDF that shows no text: (hash or None, ""). Raises
    ``LeaveToLibrary`` when the answer needs pypdf; ``Undecodable`` as ``pypdf_content`` does."""
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
    """``_xobjects`` over this reader's objects, refusing text on the way."""

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


def pdf_content(data: bytes, password: str | None = None) -> tuple[str | None, str]:
    """The PDF's content hash (None when no page draws anything) and the text of its first pages."""
    try:
        return pdf_essence(data)  # a PDF that shows no text, without pypdf (same hash: pdfessence.py)
    except LeaveToLibrary:
        return pypdf_content(data, password)


def pypdf_content(data: bytes, password: str | None = None) -> tuple[str | None, str]:
    import pypdf  # imported here: only PDFs need it, and it is the heaviest import

    _quiet_pypdf()
    reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted and not reader.decrypt(password or ""):
        raise Undecodable("the PDF is encrypted with a password" + (" that the password given does not open" if password else ""))
    count = len(reader.pages)
    if count > MAX_PDF_PAGES:
        raise Undecodable(f"the PDF has {count} pages, more than the {MAX_PDF_PAGES} allowed")
    digest = hashlib.sha256(b"rightsmeta-pdf-v1\0%d\0" % count)
    budget = [MAX_PDF_DECODED]
    drew = False
    texts: list[str] = []
    chars = 0
    for number, page in enumerate(reader.pages):
        digest.update(b"\0page\0")
        contents = page.get_contents()
        if contents is not None:
            drew |= _feed(digest, contents.get_data(), budget)
        drew |= _xobjects(digest, page.get("/Resources"), budget, 0, set())
        if number < MAX_TEXT_PAGES and chars < MAX_TEXT_CHARS:
            page_text = _SPACES.sub(" ", page.extract_text() or "").strip()
            texts.append(page_text)
            chars += len(page_text)
    text = "\n".join(t for t in texts if t)[:MAX_TEXT_CHARS]
    return (digest.hexdigest() if drew else None), text


def _feed(digest: Any, chunk: bytes, budget: list[int]) -> bool:
    budget[0] -= len(chunk)
    if budget[0] < 0:
        raise Undecodable(f"the PDF's pages decode to more than {MAX_PDF_DECODED} bytes")
    digest.update(b"%d\0" % len(chunk))
    digest.update(chunk)
    return bool(chunk.strip())


def _xobjects(digest: Any, resources: Any, budget: list[int], depth: int, seen: set[int]) -> bool:
    """Hash the XObjects a content stream can draw, by name, forms recursively (bounded)."""
    resources = resources.get_object() if resources is not None else None
    if not hasattr(resources, "get") or depth > MAX_XOBJECT_DEPTH:
        return False
    found: Any = resources.get("/XObject")
    xobjects: Any = found.get_object() if found is not None else None
    if not hasattr(xobjects, "items"):
        return False
    drew = False
    for name in sorted(xobjects):
        ref = xobjects.raw_get(name) if hasattr(xobjects, "raw_get") else xobjects[name]
        key = getattr(ref, "idnum", None)
        if key is not None and key in seen:
            digest.update(b"ref\0")  # a form drawing itself; and each image is hashed once
            continue
        if key is not None:
            seen.add(key)
        stream = ref.get_object()
        if not hasattr(stream, "get_data"):
            continue
        digest.update(str(name).encode("utf-8", "replace") + b"\0")
        drew |= _feed(digest, stream.get_data(), budget)
        if stream.get("/Subtype") == "/Form":
            drew |= _xobjects(digest, stream.get("/Resources"), budget, depth + 1, seen)
    return drew


@functools.cache
def _quiet_pypdf() -> None:
    # pypdf logs every repair as a warning; a NullHandler keeps them off stderr (as carriers.pdf does).
    import logging

    logging.getLogger("pypdf").addHandler(logging.NullHandler())
