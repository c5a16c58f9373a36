"""The quick PDF comparison (mediacheck.same_pdf): an update appended by tagging is proven to
leave the pages alone without decoding them, and an update touching anything the pages (or the
rest of the catalog) lead to is never taken for one that does not."""

from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject
from test_documents import pdf_bytes

import rightsmeta
from rightsmeta import contentcheck, fingerprint, mediacheck
from rightsmeta.carriers import pdfobjects as po
from rightsmeta.errors import ContentChanged
from rightsmeta.model import Assertion

DENY_AI = Assertion.build(deny=["ai"])


def _update(data: bytes, change: object) -> bytes:
    """``data`` with a pypdf incremental update made by ``change(writer)`` appended."""
    writer = PdfWriter(PdfReader(io.BytesIO(data)), incremental=True)
    change(writer)  # type: ignore[operator]
    out = io.BytesIO()
    writer.write(out)
    assert out.getvalue().startswith(data)
    return out.getvalue()


def test_a_tagged_pdf_is_proven_the_same_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    original = pdf_bytes()
    tagged = rightsmeta.tag_bytes(original, DENY_AI)
    assert mediacheck.same_pdf(original, tagged)
    again = rightsmeta.tag_bytes(tagged, Assertion.build(allow=["ai"]))  # the metadata stream redefined
    assert mediacheck.same_pdf(tagged, again)

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded although proven in place")

    monkeypatch.setattr(fingerprint, "essence", no_decoding)
    assert contentcheck.compare(original, tagged, "pdf") == []


def test_an_update_changing_a_page_is_decoded_and_refused() -> None:
    original = pdf_bytes()

    def rewrite_page(writer: PdfWriter) -> None:
        writer.pages[0]["/Contents"].get_object().set_data(b"BT /F1 14 Tf 20 100 Td (Something else) Tj ET")

    changed = _update(original, rewrite_page)
    assert not mediacheck.same_pdf(original, changed)
    with pytest.raises(ContentChanged, match="pages"):
        contentcheck.compare(original, changed, "pdf")


def test_an_info_dictionary_the_pages_use_is_not_proven() -> None:
    """A hostile file whose trailer /Info is the font dictionary of its pages: tagging rewrites
    that object, so the in-place proof must not hold (the pages are decoded instead)."""
    original = pdf_bytes()
    prev = int(re.findall(rb"startxref\s+(\d+)", original)[-1])
    size = PdfReader(io.BytesIO(original)).trailer["/Size"]
    font = 4  # pdf_bytes adds the font dictionary as object 4
    assert po.Reader(original).get(po.Ref(font, 0))["/BaseFont"] == "/Helvetica"
    # An update of nothing but a trailer naming the font as the Info dictionary.
    base = original + b"xref\n0 1\n0000000000 65535 f\r\ntrailer\n<< /Size %d /Root 3 0 R /Info %d 0 R /Prev %d >>\n" \
        b"startxref\n%d\n%%%%EOF\n" % (size, font, prev, len(original))
    assert po.Reader(base).trailer["/Info"] == po.Ref(font, 0)
    tagged = rightsmeta.tag_bytes(base, DENY_AI)  # object 4 redefined as the new Info dictionary
    assert font in po.Reader(tagged).sections()[0][1]
    assert not mediacheck.same_pdf(base, tagged)


def test_a_catalog_changed_beyond_its_metadata_is_not_proven() -> None:
    original = pdf_bytes()

    def page_mode(writer: PdfWriter) -> None:
        writer.root_object[NameObject("/PageMode")] = NameObject("/FullScreen")

    assert not mediacheck.same_pdf(original, _update(original, page_mode))
    assert not mediacheck.same_pdf(original, original[:-10] + b"%%EOF\n" + original[-10:])  # not a prefix
