"""The PDF writer without pypdf (pdf._write_fast) writes the update pypdf's path writes: the
same catalog, Info dictionary, metadata packet, pages and file identifiers, as pypdf and qpdf
read them; and it steps aside (pypdf writes) wherever it could not write a value back exactly."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter
from pypdf.generic import FloatObject, NameObject, NumberObject, TextStringObject
from samples import exiftool_write
from test_documents import PDFA_PACKET, pdf_bytes

import rightsmeta
from rightsmeta.carriers import pdf
from rightsmeta.model import Assertion

ASSERTION = Assertion.build(deny=["ai"], holder="Zoë Ångström", copyright="(c) 2026 Zoë",
                            policy="https://zoe.example/tdm.json").for_work()


def _view(data: bytes) -> str:
    """What a reader sees of the update: catalog, Info, metadata packet, page count, /ID."""
    reader = PdfReader(io.BytesIO(data), strict=False)
    root = reader.trailer["/Root"]
    catalog = {k: ("stream" if k == "/Metadata" else str(v)) for k, v in root.items()}
    info = {k: str(v) for k, v in reader.trailer["/Info"].items()}
    seen = repr((catalog, info, root["/Metadata"].get_data(), len(reader.pages), reader.trailer.get("/ID")))
    return re.sub(r"IndirectObject\((\d+), (\d+), \d+\)", r"\1 \2 R", seen)  # without pypdf's object ids


def _xref_stream_pdf() -> bytes:
    """A PDF whose newest section is a cross-reference stream, with an Info dictionary."""
    writer = PdfWriter(PdfReader(io.BytesIO(pdf_bytes())), incremental=True)
    writer.add_metadata({"/Title": "streamed"})
    out = io.BytesIO()
    writer.write(out)
    assert b"/XRef" in out.getvalue()
    return out.getvalue()


def _with_catalog_entry(key: str, value: object) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes())))
    writer.root_object[NameObject(key)] = value  # type: ignore[assignment]
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


SAMPLES = {
    "plain": pdf_bytes,
    "with XMP": lambda: pdf_bytes(packet=PDFA_PACKET),  # PDF/A: the extension schema is added
    "deflated XMP": lambda: pdf_bytes(packet=PDFA_PACKET, deflate=True),
    "xref stream": _xref_stream_pdf,
    "odd name and text": lambda: _with_catalog_entry("/Lang#20x", TextStringObject("dé (x)")),
}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_the_fast_writer_writes_what_the_pypdf_path_writes(name: str, tmp_path: Path, qpdf: str) -> None:
    original = SAMPLES[name]()
    written = pdf._write_fast(original, ASSERTION)
    assert written is not None
    fast = bytes(written)
    assert fast.startswith(original)
    assert _view(fast) == _view(bytes(pdf._write_pypdf(original, ASSERTION, None)))
    path = tmp_path / "fast.pdf"
    path.write_bytes(fast)
    subprocess.run([qpdf, "--check", str(path)], check=True, capture_output=True)  # a reader nobody here wrote
    again = pdf._write_fast(fast, Assertion.build(allow=["ai"]).for_work())  # the second update in place
    assert again is not None and "allowed" in _view(bytes(again))


def test_values_it_cannot_write_exactly_go_to_pypdf() -> None:
    odd = _with_catalog_entry("/UserUnit", FloatObject("0.123456789012"))
    assert pdf._write_fast(odd, ASSERTION) is None
    new, carriers = pdf.write(odd, "pdf", ASSERTION)  # pypdf writes it
    assert carriers == ["xmp", "info"] and "/UserUnit" in _view(bytes(new))


def test_tagging_a_plain_pdf_loads_no_pypdf(tmp_path: Path) -> None:
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf_bytes())
    code = ("import sys, rightsmeta; from rightsmeta.model import Assertion; "
            f"r = rightsmeta.tag({str(path)!r}, Assertion.build(deny=['ai'])); "
            "print(r.status, sorted(m for m in ('pypdf', 'numpy', 'iscc_core', 'rightsmeta.fingerprint') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["tagged", "[]"]



def _pypdf_incremental(path: Path) -> None:
    # pypdf's incremental writer leaves /Info out of its update's trailer, and frees nothing.
    writer = PdfWriter(path, incremental=True)
    writer.pages[0][NameObject("/Rotate")] = NumberObject(90)
    with open(path, "r+b") as fh:
        writer.write(fh)


@pytest.mark.parametrize("update", ["exiftool -all=", "pypdf incremental"])
def test_an_info_dictionary_an_update_deleted_is_not_written_back(tmp_path: Path, exiftool: str, qpdf: str, update: str) -> None:
    # ExifTool's -all= frees the old Info dictionary and leaves it out of its trailer: tagging the
    # stripped file must not bring back the author it removed. One only left out of a trailer (not
    # freed: pypdf and ExifTool still show it) keeps its entries.
    path = tmp_path / "updated.pdf"
    path.write_bytes(pdf_bytes())
    exiftool_write(exiftool, path, "-PDF:Author=Ada Lovelace")
    path.write_bytes(rightsmeta.tag_bytes(path.read_bytes(), ASSERTION))
    if update == "exiftool -all=":
        subprocess.run([exiftool, "-q", "-overwrite_original", "-all=", str(path)], check=True, capture_output=True)
    else:
        _pypdf_incremental(path)
    updated = path.read_bytes()
    fast = pdf._write_fast(updated, ASSERTION)
    assert fast is not None
    for written in (bytes(fast), bytes(pdf._write_pypdf(updated, ASSERTION, None))):
        info = PdfReader(io.BytesIO(written)).trailer["/Info"]
        assert info.get("/Author") == (None if update == "exiftool -all=" else "Ada Lovelace")
        assert info["/TDMReservation"] == "1"
        path.write_bytes(written)
        subprocess.run([qpdf, "--check", str(path)], check=True, capture_output=True)
