"""A PDF's essence without pypdf (rightsmeta/pdfessence.py): the same hash as pypdf's walk, or a fallback.

Every PDF that shows no text these tests can make (drawn pages, images, nested and shared forms,
inherited resources, content arrays; tagged by rightsmeta and ExifTool; rewritten by qpdf) must be
read by the fast walk with exactly the hash and text of ``pdfessence.pypdf_content``; PDFs that show
text, and broken ones, are left to pypdf or give the same.
"""

from __future__ import annotations

import glob
import io
import random
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    NameObject,
    NumberObject,
    StreamObject,
)
from samples import exiftool_write
from test_documents import DENY_AI, pdf_bytes
from test_pdf_fast import _mutants, qpdf_rewrite

import rightsmeta
from rightsmeta import pdfessence
from rightsmeta.errors import LeaveToLibrary, Undecodable
from rightsmeta.pdfessence import pdf_essence


def fast(data: bytes) -> tuple[str | None, str] | None:
    try:
        return pdf_essence(data)
    except LeaveToLibrary:
        return None


def slow(data: bytes) -> tuple[str | None, str] | str:
    try:
        return pdfessence.pypdf_content(data)
    except Undecodable as exc:
        return str(exc)


def assert_same(data: bytes, *, taken: bool | None = True) -> None:
    got = fast(data)
    if taken is True:
        assert got is not None, "the fast walk left a PDF it should read to pypdf"
    if taken is False:
        assert got is None, "the fast walk read a PDF that shows text"
    if got is not None:
        assert got == slow(data)


# --- samples -----------------------------------------------------------------------------------


def _stream(writer: PdfWriter, data: bytes, *, deflate: bool = True, **entries: object) -> object:
    stream = DecodedStreamObject()
    stream.set_data(data)
    for key, value in entries.items():
        stream[NameObject("/" + key)] = value  # type: ignore[assignment]
    out: StreamObject = stream.flate_encode() if deflate else stream
    return writer._add_object(out)


def drawing(seed: int = 1, *, pages: int = 3, form: bytes = b"0 0 1 rg 0 0 5 5 re f") -> bytes:
    """A PDF of vector drawings and images, no text: forms nested and shared, the same image on
    two pages, one page's content an array of streams, /Resources inherited from the page tree."""
    rng = random.Random(seed)
    writer = PdfWriter()
    pixels = bytes(rng.randrange(256) for _ in range(16 * 16 * 3))
    image = _stream(writer, pixels, Type=NameObject("/XObject"), Subtype=NameObject("/Image"),
                    Width=NumberObject(16), Height=NumberObject(16), ColorSpace=NameObject("/DeviceRGB"),
                    BitsPerComponent=NumberObject(8))
    inner = _stream(writer, form, Type=NameObject("/XObject"), Subtype=NameObject("/Form"),
                    BBox=ArrayObject([NumberObject(0)] * 2 + [NumberObject(10)] * 2))
    outer_resources = DictionaryObject({NameObject("/XObject"): DictionaryObject({NameObject("/In"): inner})})
    outer = _stream(writer, b"q /In Do Q 1 0 0 RG 0 0 m 9 9 l S", deflate=False, Type=NameObject("/XObject"),
                    Subtype=NameObject("/Form"), BBox=ArrayObject([NumberObject(0)] * 2 + [NumberObject(10)] * 2),
                    Resources=outer_resources)
    shared = DictionaryObject({NameObject("/XObject"): DictionaryObject({
        NameObject("/Im1"): image, NameObject("/Fm1"): outer, NameObject("/Fm2"): outer})})
    for number in range(pages):
        page = writer.add_blank_page(300, 200)
        draw = b"%d %d m %d %d l S q 50 0 0 50 10 10 cm /Im1 Do Q /Fm1 Do" % tuple(rng.randrange(200) for _ in range(4))
        if number == 1:
            page[NameObject("/Contents")] = ArrayObject([_stream(writer, draw[:9], deflate=False), _stream(writer, draw[9:])])
        elif number == 2:
            page[NameObject("/Resources")] = DictionaryObject({NameObject("/XObject"): DictionaryObject(
                {NameObject("/Im1"): image})})
            page[NameObject("/Contents")] = _stream(writer, b"q 20 0 0 20 0 0 cm /Im1 Do Q")
        else:
            page[NameObject("/Contents")] = _stream(writer, draw)
        if number != 2:
            del page[NameObject("/Resources")]  # inherited from the page tree
    writer.root_object["/Pages"].get_object()[NameObject("/Resources")] = shared  # type: ignore[index]
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def blank(pages: int = 2) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(200, 200)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# --- the fast walk reads what pypdf reads --------------------------------------------------------


def test_drawings_and_blank_pages_hash_as_pypdf_does(tmp_path: Path, qpdf: str, exiftool: str) -> None:
    bases = {"drawing": drawing(1), "drawing 2": drawing(2, pages=5), "blank": blank(), "blank one": blank(1)}
    path = tmp_path / "e.pdf"
    path.write_bytes(bases["drawing"])
    exiftool_write(exiftool, path, "-XMP-plus:DataMining#=DMI-PROHIBITED-AIMLTRAINING", "-XMP-tdm:Reservation=1")
    bases["exiftool"] = path.read_bytes()
    samples = dict(bases)
    for name, data in bases.items():
        samples[f"{name} tagged"] = rightsmeta.tag_bytes(data, DENY_AI)
        for args in (("--object-streams=generate",), ("--compress-streams=y",), ("--qdf",), ("--linearize",)):
            rewritten = qpdf_rewrite(qpdf, tmp_path, data, *args)
            samples[f"{name} {args[0]}"] = rewritten
            samples[f"{name} {args[0]} tagged"] = rightsmeta.tag_bytes(rewritten, DENY_AI)
    for name, data in samples.items():
        assert fast(data) is not None, name
        assert fast(data) == slow(data), name
    # The walk hashes what is drawn: another image, another hash; a tag keeps it.
    assert fast(bases["drawing"]) != fast(bases["drawing 2"])
    assert fast(bases["drawing"])[0] is not None  # type: ignore[index]
    assert fast(samples["drawing tagged"]) == fast(bases["drawing"])
    assert fast(bases["blank"]) == (None, "")


def test_pdfs_that_show_text_are_left_to_pypdf(tmp_path: Path, qpdf: str) -> None:
    texts = [pdf_bytes(), pdf_bytes(("one", "two")), rightsmeta.tag_bytes(pdf_bytes(), DENY_AI),
             qpdf_rewrite(qpdf, tmp_path, pdf_bytes(), "--object-streams=generate")]
    for data in texts:
        assert_same(data, taken=False)
        assert pdfessence.pdf_content(data) == pdfessence.pypdf_content(data)
        assert pdfessence.pdf_content(data)[1]  # the text pypdf extracts


def test_text_inside_a_form_is_left_to_pypdf() -> None:
    shown = drawing(1, form=b"BT /F1 9 Tf (a) Tj ET 0 0 5 5 re f")
    assert b"(a) Tj" not in shown  # deflated: the mark is found only in the decoded form
    assert fast(shown) is None
    assert fast(drawing(1)) is not None


@pytest.mark.skipif(not glob.glob("/tmp/base/corpus/*.pdf"), reason="bench corpus not made (bench/corpus.py)")
def test_bench_corpus_pdfs_hash_as_pypdf_does() -> None:
    for path in sorted(glob.glob("/tmp/base/corpus/*.pdf"))[:40]:
        data = Path(path).read_bytes()
        assert_same(data)
        assert_same(rightsmeta.tag_bytes(data, DENY_AI))


def test_odd_structures_are_left_to_pypdf() -> None:
    data = drawing(3)
    pages_at = data.index(b"/Type /Pages")
    odd = {
        "no type on the page tree": data[:pages_at] + b"/Tipe /Pages" + data[pages_at + 12:],
        "an encrypted trailer": data.replace(b"trailer\n<<", b"trailer\n<< /Encrypt 1 0 R"),
        "an unknown subtype": data.replace(b"/Subtype /Form", b"/Subtype /Fxrm", 1),
    }
    for name, mutant in odd.items():
        assert mutant != data, name
        assert fast(mutant) is None, name


@pytest.mark.parametrize("seed", [1, 2])
def test_mutated_pdfs_hash_the_same_or_fall_back(seed: int) -> None:
    rng = random.Random(f"pdfessence-{seed}")
    data = rightsmeta.tag_bytes(drawing(seed), DENY_AI)
    taken = 0
    for mutant in _mutants(data, rng, 200):
        got = fast(mutant)
        if got is not None:
            taken += 1
            assert got == slow(mutant)
    assert taken > 0


def test_a_deflate_bomb_in_a_page_is_left_to_pypdf() -> None:
    writer = PdfWriter()
    page = writer.add_blank_page(10, 10)
    bomb = DecodedStreamObject()
    bomb.set_data(zlib.compress(b"0 0 m " * 4_000_000))
    bomb[NameObject("/Filter")] = NameObject("/FlateDecode")
    page[NameObject("/Contents")] = writer._add_object(bomb)
    out = io.BytesIO()
    writer.write(out)
    assert fast(out.getvalue()) is None  # 24 MB decoded: more than the walk inflates itself
    assert PdfReader(io.BytesIO(out.getvalue())).pages


def test_essence_of_a_pdf_without_text_does_not_import_pypdf(tmp_path: Path) -> None:
    path = tmp_path / "d.pdf"
    path.write_bytes(rightsmeta.tag_bytes(drawing(4), DENY_AI))
    code = (f"import sys; from rightsmeta.fingerprint import essence; "
            f"e = essence(open({str(path)!r}, 'rb').read(), 'pdf'); "
            "assert e.hash and 'pypdf' not in sys.modules, (e, 'pypdf' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
