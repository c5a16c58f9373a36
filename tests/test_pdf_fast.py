"""PDF reading without pypdf (carriers/pdfobjects.py): the same reports as pypdf, or a fallback.

Every PDF these tests can make — written by pypdf, tagged by rightsmeta (once, twice) and by
ExifTool, rewritten by qpdf (object streams, compressed streams, QDF, linearized), put together
by hand (hybrid files, PNG predictors, odd strings) — is read both ways: the fast reader must
take it and report exactly what the pypdf path reports. Broken and hostile files must either be
left to pypdf (the fast reader returns None) or read the same, never crash or hang.
"""

from __future__ import annotations

import io
import mmap
import random
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject, create_string_object, read_string_from_stream
from samples import exiftool_write
from test_documents import DENY_AI, PDFA_PACKET, pdf_bytes

import rightsmeta
from rightsmeta import Assertion, xmp
from rightsmeta.carriers import pdf, pdfobjects
from rightsmeta.errors import LeaveToLibrary, MalformedFile
from rightsmeta.report import CarrierReport

# --- the two paths ---------------------------------------------------------------------------


def by_pypdf(data: bytes) -> list[CarrierReport] | str:
    try:
        return pdf._reports(pdf._read_pypdf(data, None))
    except MalformedFile as exc:
        return str(exc)


def by_fast(data: bytes | mmap.mmap) -> list[CarrierReport] | None:
    # pdf._read_fast also turns unforeseen exceptions into a fallback; here they fail the test.
    try:
        found = pdf._fast_found(pdfobjects.Reader(data))
    except LeaveToLibrary:
        return None
    return pdf._reports(found)


def by_read(data: bytes) -> list[CarrierReport] | str:
    try:
        return pdf.read(data, "pdf")
    except MalformedFile as exc:
        return str(exc)


def assert_same(data: bytes, *, fast: bool | None = True) -> None:
    """The fast reader agrees with pypdf; ``fast`` says whether it must (True) or must not
    (False) read this file itself."""
    got, expected = by_fast(data), by_pypdf(data)
    if fast is True:
        assert got is not None, "the fast reader left a file it should read to pypdf"
    if fast is False:
        assert got is None, "the fast reader read a file it should leave to pypdf"
    if got is not None:
        assert got == expected


# --- samples ---------------------------------------------------------------------------------


def qpdf_rewrite(qpdf: str, tmp_path: Path, data: bytes, *args: str) -> bytes:
    src, dst = tmp_path / "in.pdf", tmp_path / "out.pdf"
    src.write_bytes(data)
    run = subprocess.run([qpdf, *args, str(src), str(dst)], capture_output=True, text=True)
    assert run.returncode in (0, 3), run.stderr  # 3: warnings only
    return dst.read_bytes()


def pypdf_update(data: bytes) -> bytes:
    """pypdf's own incremental update, which ends in a cross-reference stream."""
    writer = PdfWriter(PdfReader(io.BytesIO(data)), incremental=True)
    writer.add_metadata({"/Title": "updated once"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _png_encode(raw: bytes, columns: int, kinds: tuple[int, ...]) -> bytes:
    out, prev = bytearray(), bytes(columns)
    for n, start in enumerate(range(0, len(raw), columns)):
        row, kind = raw[start:start + columns], kinds[n % len(kinds)]
        enc = bytearray()
        for i, x in enumerate(row):
            left, up, up_left = (row[i - 1], prev[i], prev[i - 1]) if i else (0, prev[i], 0)
            if kind == 1:
                x -= left
            elif kind == 2:
                x -= up
            elif kind == 3:
                x -= (left + up) // 2
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                x -= left if pa <= pb and pa <= pc else up if pb <= pc else up_left
            enc.append(x & 0xFF)
        out += bytes((kind,)) + enc
        prev = row
    return bytes(out)


def build(
    objects: dict[int, bytes], trailer: bytes = b"/Root 1 0 R /Info 2 0 R", *, xref: str = "table",
    packed: tuple[int, ...] = (), kinds: tuple[int, ...] | None = None, free_type: int = 0,
) -> bytes:
    """A PDF put together by hand: ``objects`` maps numbers to bodies; ``packed`` ones go into
    an object stream; ``xref`` is "table", "stream" or "hybrid" (a table whose /XRefStm lists
    the packed objects); ``kinds`` are the PNG predictor rows of a cross-reference stream, whose
    free entries are of type ``free_type``."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for num in sorted(set(objects) - set(packed)):
        offsets[num] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (num, objects[num])
    top = max(objects) + 1
    stored: dict[int, int] = {}
    if packed:
        holder, top = top, top + 1
        head, body = [], b""
        for num in packed:
            head.append(b"%d %d" % (num, len(body)))
            body += objects[num] + b"\n"
            stored[num] = holder
        first = b" ".join(head) + b"\n"
        data = zlib.compress(first + body)
        offsets[holder] = len(out)
        out += b"%d 0 obj\n<< /Type /ObjStm /N %d /First %d /Filter /FlateDecode /Length %d >>\nstream\n" % (
            holder, len(packed), len(first), len(data)) + data + b"\nendstream\nendobj\n"

    def xref_stream(number: int, nums: range, extra: bytes) -> bytes:
        rows = b""
        for num in nums:
            if num in stored:
                rows += b"\x02" + stored[num].to_bytes(4, "big") + packed.index(num).to_bytes(2, "big")
            elif num in offsets:
                rows += b"\x01" + offsets[num].to_bytes(4, "big") + b"\x00\x00"
            else:
                rows += bytes((free_type,)) + b"\x00" * 6
        parms = b""
        if kinds is not None:
            rows, parms = _png_encode(rows, 7, kinds), b" /DecodeParms << /Predictor 12 /Columns 7 >>"
        data = zlib.compress(rows)
        return b"%d 0 obj\n<< /Type /XRef /Size %d /Index [%d %d] /W [1 4 2] /Filter /FlateDecode%s /Length %d%s >>\n" \
               b"stream\n" % (number, nums.stop, nums.start, len(nums), parms, len(data), extra) + data + \
               b"\nendstream\nendobj\n"

    if xref == "stream":
        number = top
        offsets[number] = at = len(out)
        out += xref_stream(number, range(top + 1), b" " + trailer)
    else:
        if xref == "hybrid":
            stm_at = len(out)
            out += xref_stream(top, range(top), b"")
            trailer += b" /XRefStm %d" % stm_at
            top += 1
        at = len(out)
        out += b"xref\n0 %d\n" % top
        for num in range(top):
            out += b"%010d 00000 n \n" % offsets[num] if num in offsets else b"0000000000 00000 f \n"
        out += b"trailer\n<< /Size %d %s >>\n" % (top, trailer)
    out += b"startxref\n%d\n%%%%EOF\n" % at
    return bytes(out)


CATALOG = b"<< /Type /Catalog /Pages 3 0 R /Metadata 4 0 R >>"
PAGES = b"<< /Type /Pages /Kids [] /Count 0 >>"


def metadata(packet: bytes = PDFA_PACKET) -> bytes:
    return b"<< /Type /Metadata /Subtype /XML /Length %d >>\nstream\n%s\nendstream" % (len(packet), packet)


def info(*entries: bytes) -> bytes:
    return b"<< /Producer (hand) " + b" ".join(entries) + b" >>"


def simple(
    info_entries: tuple[bytes, ...] = (b"/TDMReservation (1)",), *, xref: str = "table",
    packed: tuple[int, ...] = (), kinds: tuple[int, ...] | None = None, free_type: int = 0,
) -> bytes:
    """Catalog 1, Info 2 (with ``info_entries``), pages 3, an XMP packet in 4."""
    objects = {1: CATALOG, 2: info(*info_entries), 3: PAGES, 4: metadata()}
    return build(objects, xref=xref, packed=packed, kinds=kinds, free_type=free_type)


# --- the fast reader reads what the tests can make ---------------------------------------------


def _variants(tmp_path: Path, qpdf: str) -> dict[str, bytes]:
    plain = pdf_bytes()
    tagged = rightsmeta.tag_bytes(plain, DENY_AI)
    bases = {
        "plain": plain,
        "xmp": pdf_bytes(packet=PDFA_PACKET),
        "xmp deflated": pdf_bytes(packet=PDFA_PACKET, deflate=True),
        "tagged": tagged,
        "tagged twice": rightsmeta.tag_bytes(tagged, Assertion.build(deny=["all"], policy="https://p.example/")),
        "pypdf update": pypdf_update(plain),
        "pypdf update tagged": rightsmeta.tag_bytes(pypdf_update(plain), DENY_AI),
    }
    variants = dict(bases)
    for name, data in bases.items():
        for args in (("--object-streams=generate",), ("--compress-streams=y",), ("--qdf",), ("--linearize",),
                     ("--object-streams=generate", "--linearize")):
            rewritten = qpdf_rewrite(qpdf, tmp_path, data, *args)
            variants[f"{name} {' '.join(args)}"] = rewritten
            variants[f"{name} {' '.join(args)} tagged"] = rightsmeta.tag_bytes(rewritten, DENY_AI)
    variants["tagged, qpdf objects, tagged twice"] = rightsmeta.tag_bytes(
        variants["tagged --object-streams=generate tagged"], Assertion.build(allow=["search"]))
    return variants


def test_fast_reader_reads_every_sample_as_pypdf_does(tmp_path: Path, qpdf: str) -> None:
    variants = _variants(tmp_path, qpdf)
    assert len(variants) > 70
    for name, data in variants.items():
        got = by_fast(data)
        assert got is not None, f"{name}: left to pypdf"
        assert got == by_pypdf(data), name
    # The samples cover what the fast reader is for: reading the signals.
    assert any(c.name == "info" for c in by_fast(variants["tagged --object-streams=generate"]) or [])
    linearized, original = by_fast(variants["tagged twice --linearize"]), by_fast(variants["tagged twice"])
    assert linearized and original and [c.values for c in linearized] == [c.values for c in original]


def test_read_goes_through_the_fast_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pypdf(*args: object) -> object:
        raise AssertionError("pypdf was used")

    monkeypatch.setattr(pdf, "_read_pypdf", no_pypdf)
    report = rightsmeta.read(rightsmeta.tag_bytes(pdf_bytes(), DENY_AI))
    assert report.errors == [] and report.permissions == dict(DENY_AI.permissions)
    monkeypatch.undo()
    assert pdf._read_fast(b"%PDF-1.7\nnot really\n%%EOF") is None
    assert rightsmeta.read(b"%PDF-1.7\nnot really\n%%EOF").errors  # pypdf's verdict


def test_exiftool_tagged_pdfs_are_read_fast(tmp_path: Path, exiftool: str, qpdf: str) -> None:
    path = tmp_path / "by-exiftool.pdf"
    path.write_bytes(pdf_bytes())
    exiftool_write(exiftool, path, "-XMP-plus:DataMining#=DMI-PROHIBITED-AIMLTRAINING", "-XMP-tdm:Reservation=1",
                   "-PDF:Author=Ada Lovelace", "-PDF:Title=Ünïcode title")
    exiftool_write(exiftool, path, "-XMP-dc:Rights=(c) 2026 Ada")  # an update of the update
    for data in (path.read_bytes(), rightsmeta.tag_bytes(path.read_bytes(), DENY_AI),
                 qpdf_rewrite(qpdf, tmp_path, path.read_bytes(), "--object-streams=generate")):
        assert_same(data)
    # Through a path: a read-only memory map.
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        assert by_fast(mapped) == by_pypdf(path.read_bytes())
    assert rightsmeta.read(path).permissions[rightsmeta.Purpose.AI_TRAINING].state is rightsmeta.State.NOT_ALLOWED


def test_what_an_update_drops_is_gone_for_both_readers(tmp_path: Path, exiftool: str) -> None:
    # ExifTool's -all= frees the Info dictionary and leaves it out of its update's trailer; both
    # readers decide by the newest trailer (pypdf alone merges the older one's /Info in).
    path = tmp_path / "stripped.pdf"
    path.write_bytes(rightsmeta.tag_bytes(pdf_bytes(), DENY_AI))
    subprocess.run([exiftool, "-q", "-overwrite_original", "-all=", str(path)], check=True, capture_output=True)
    data = path.read_bytes()
    assert_same(data)
    assert by_pypdf(data) == []
    # Tagged again: the new update's trailer names an Info dictionary again.
    retagged = rightsmeta.tag_bytes(data, DENY_AI)
    assert by_read(retagged) == by_pypdf(retagged) != []
    # pypdf's incremental writer leaves /Info out of its trailer too, freeing nothing: pypdf and
    # ExifTool still show it (poppler and qpdf do not), so a reservation there still counts (the
    # review: reading it as gone made a TDMReservation in Info read as nothing, and tag wrote it
    # back while read said there was none).
    from test_pdf_write_fast import _pypdf_incremental

    path.write_bytes(retagged)
    _pypdf_incremental(path)
    data = path.read_bytes()
    assert_same(data)
    assert [report.name for report in by_pypdf(data)] == ["xmp", "info"]


def _hybrid_with_info_in_an_object_stream() -> bytes:
    """A hybrid-reference PDF (a classic table and an /XRefStm) whose Info dictionary lives in an
    object stream: the table lists it free, the stream says where it is (ISO 32000 7.5.8.4)."""
    parts = [b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n"]
    offsets: dict[int, int] = {}

    def obj(num: int, body: bytes) -> None:
        offsets[num] = sum(map(len, parts))
        parts.append(b"%d 0 obj\n%s\nendobj\n" % (num, body))

    obj(1, b"<< /Type /Catalog /Pages 2 0 R >>")
    obj(2, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
    obj(3, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>")
    head, info = b"4 0 ", b"<< /Title (Hybrid) /Author (Ada) /TDMReservation (1) >>"
    obj(5, b"<< /Type /ObjStm /N 1 /First %d /Length %d >>\nstream\n%s%s\nendstream" % (len(head), len(head + info), head, info))
    rows = bytes([2]) + (5).to_bytes(2, "big") + bytes([0])
    obj(6, b"<< /Type /XRef /Size 7 /Index [4 1] /W [1 2 1] /Length %d >>\nstream\n%s\nendstream" % (len(rows), rows))
    table = sum(map(len, parts))
    parts.append(b"xref\n0 7\n0000000000 65535 f \n")
    parts += [b"0000000000 00000 f \n" if num == 4 else b"%010d 00000 n \n" % offsets[num] for num in range(1, 7)]
    parts.append(b"trailer\n<< /Size 7 /Root 1 0 R /Info 4 0 R /XRefStm %d >>\nstartxref\n%d\n%%%%EOF\n" % (offsets[6], table))
    return b"".join(parts)


def test_a_hybrid_files_info_in_an_object_stream_is_read_and_kept(qpdf: str, tmp_path: Path) -> None:
    # The table's free entry is provisional in a hybrid file: tagging took it for a deletion and
    # wrote a fresh Info, dropping the author's Title and Author (data loss, found in review).
    data = _hybrid_with_info_in_an_object_stream()
    (tmp_path / "hybrid.pdf").write_bytes(data)
    subprocess.run([qpdf, "--check", str(tmp_path / "hybrid.pdf")], check=True, capture_output=True)
    assert rightsmeta.read(data).carriers[0].name == "info"
    tagged = PdfReader(io.BytesIO(rightsmeta.tag_bytes(data, DENY_AI))).metadata
    assert tagged is not None and (tagged["/Title"], tagged["/Author"]) == ("Hybrid", "Ada")


def test_reading_a_compressed_pdf_does_not_import_pypdf(tmp_path: Path, qpdf: str) -> None:
    path = tmp_path / "objects.pdf"
    path.write_bytes(qpdf_rewrite(qpdf, tmp_path, rightsmeta.tag_bytes(pdf_bytes(), DENY_AI),
                                  "--object-streams=generate"))
    assert b"/ObjStm" in path.read_bytes()
    code = (
        "import sys, rightsmeta\n"
        f"report = rightsmeta.read({str(path)!r})\n"
        "assert report.errors == [] and [c.name for c in report.carriers] == ['xmp', 'info'], report\n"
        "print('pypdf' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"


@pytest.mark.parametrize(("xref", "packed"), [
    ("table", ()), ("stream", ()), ("stream", (2,)), ("stream", (1, 2)), ("hybrid", ()), ("hybrid", (1, 2)),
])
def test_hand_made_structures(xref: str, packed: tuple[int, ...]) -> None:
    data = simple(xref=xref, packed=packed)
    assert_same(data)
    assert [c.name for c in by_fast(data) or []] == ["xmp", "info"]


@pytest.mark.parametrize("kinds", [(0,), (1,), (2,), (3,), (4,), (0, 1, 2, 3, 4)])
def test_png_predictors_of_cross_reference_streams(kinds: tuple[int, ...]) -> None:
    assert_same(simple(xref="stream", packed=(1, 2), kinds=kinds))


def test_indirect_lengths_and_deflated_metadata() -> None:
    packed = zlib.compress(PDFA_PACKET)
    stream = b"<< /Type /Metadata /Subtype /XML /Filter /FlateDecode /Length 5 0 R >>\nstream\r\n%s\r\nendstream" % packed
    objects = {1: CATALOG, 2: info(), 3: PAGES, 4: stream, 5: b"%d" % len(packed)}
    assert_same(build(objects))
    assert_same(build(objects, xref="stream", packed=(5,)))  # the length in an object stream
    stream = stream.replace(b"/Filter /FlateDecode", b"/Filter [/FlateDecode] /DecodeParms null")
    assert_same(build({**objects, 4: stream}))


# Info values written every way PDF allows; pypdf's decoding is the reference.
STRINGS = [
    b"(plain ascii)",
    b"(nested (balanced) parens)",
    b"(escapes \\n \\r \\t \\b \\f \\( \\) \\\\ and octal \\101\\1010 \\0 \\7 \\53x)",
    b"(a line \\\ncontinued and \\\r\ncontinued)",
    b"(unknown escape \\q and a too large octal \\777)",
    b"(raw\r\nline ends\rkept)",
    b"<FEFF00DC006E00EF0063006F00640065>",  # UTF-16BE with a byte order mark
    b"<FFFE4100>",  # UTF-16LE with a byte order mark
    b"<EFBBBF C3 9C 6E 69>",  # UTF-8 with a byte order mark
    b"<EFBBBF FF>",  # a UTF-8 mark on bytes that are not UTF-8
    b"<80 81 8d 92 a0 18 1f 41>",  # PDFDocEncoding's own characters
    b"<41 AD 42>",  # a byte PDFDocEncoding leaves undefined
    b"<0041>",  # UTF-16 without a mark, as pypdf guesses it
    b"<4100 42>",
    b"<FEFF00>",  # odd UTF-16
    b"<414>",  # an odd number of hex digits
    b"<>",
    b"()",
    b"/AName#20with#2Fescapes",
    b"42",
]


@pytest.mark.parametrize("value", STRINGS)
def test_info_strings_decode_as_pypdf_decodes_them(value: bytes) -> None:
    data = simple((b"/TDMPolicy " + value, b"/RightsmetaCopyright " + value))
    assert_same(data)


def test_escaped_keys_and_direct_info() -> None:
    assert_same(simple((b"/TDM#52eservation (1)",)))
    data = build({1: CATALOG, 3: PAGES, 4: metadata()}, b"/Root 1 0 R /Info << /TDMReservation (0) >>")
    assert_same(data)
    assert [c.values for c in by_fast(data) or []][1] == {"TDMReservation": "0"}


def test_what_is_left_to_pypdf() -> None:
    # Values whose text pypdf makes in its own way, filters other than Flate, encryption.
    assert_same(simple((b"/TDMReservation 1.0",)), fast=False)
    assert_same(simple((b"/TDMReservation true",)), fast=False)
    hexed = PDFA_PACKET.hex().encode() + b">"
    data = build({1: CATALOG, 2: info(), 3: PAGES,
                  4: b"<< /Filter /ASCIIHexDecode /Length %d >>\nstream\n%s\nendstream" % (len(hexed), hexed)})
    assert_same(data, fast=False)
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(rightsmeta.tag_bytes(pdf_bytes(), DENY_AI))))
    writer.encrypt(user_password="", owner_password="owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    assert_same(out.getvalue(), fast=False)
    # An entry type pypdf does not know makes it misread the entries after it.
    assert_same(simple(xref="stream", free_type=3), fast=False)
    assert_same(simple(xref="stream", free_type=0))
    # A comment between tokens, a duplicated key.
    assert_same(simple((b"/TDMReservation % a comment\n(1)",)), fast=False)
    assert_same(simple((b"/TDMReservation (1) /TDMReservation (0)",)), fast=False)


def test_metadata_edge_cases() -> None:
    def with_catalog(catalog: bytes, **objects: bytes) -> bytes:
        return build({1: catalog, 2: info(), 3: PAGES, **{int(k[1:]): v for k, v in objects.items()}})

    assert_same(with_catalog(CATALOG, o4=b"<< /NotA /Stream >>"))  # reported as not a stream
    assert_same(with_catalog(CATALOG, o4=b"null"))  # as if there were none
    assert_same(with_catalog(CATALOG, o4=metadata(b"   \n  ")))  # an empty packet says nothing
    assert_same(with_catalog(CATALOG.replace(b"4 0 R", b"null")))
    assert_same(with_catalog(CATALOG.replace(b"4 0 R", b"<< /A 1 >>")))
    assert_same(with_catalog(CATALOG, o4=metadata(b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><broken")))
    # The catalog's /Metadata names an object no section lists: pypdf searches the file.
    assert_same(with_catalog(CATALOG.replace(b"4 0 R", b"9 0 R"), o4=metadata()), fast=False)


def test_inflating_bomb_gives_the_same_error_fast() -> None:
    data = pdf_bytes(packet=b" " * (64 * 1024 * 1024), deflate=True)
    started = time.perf_counter()
    got = by_fast(data)
    assert time.perf_counter() - started < 5
    assert got is not None and got == by_pypdf(data)
    assert got[0].errors == [f"cannot decode the metadata stream: it inflates to more than {xmp.MAX_PACKET} bytes"]
    # Exactly at the cap and one byte over it, as pypdf decides.
    for size in (xmp.MAX_PACKET, xmp.MAX_PACKET + 1, xmp.MAX_PACKET + 2):
        assert_same(pdf_bytes(packet=b" " * size, deflate=True))


# --- broken and hostile files --------------------------------------------------------------------


def _edit(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) >= 1, old
    return data.replace(old, new)


def test_broken_files_are_left_to_pypdf() -> None:
    good = rightsmeta.tag_bytes(pdf_bytes(), DENY_AI)
    last = good.rindex(b"startxref")
    hand = simple()
    catalog_entry = b"%010d 00000 n \n" % hand.index(b"1 0 obj")
    cases: dict[str, bytes] = {
        "truncated": good[: len(good) // 3],
        "startxref past the end": good[:last] + b"startxref\n99999999\n%%EOF\n",
        "startxref at 0": good[:last] + b"startxref\n0\n%%EOF\n",
        "no %%EOF": good[:-6],
        "junk after %%EOF": good + b"\x00" * 3000,
        "a /Prev loop": _edit(good, b"/Prev ", b"/Prev " + good[last + 10:].split()[0] + b" /Old "),
        "/Prev past the end": _edit(good, b"/Prev ", b"/Prev 99999999 /Old "),
        "the catalog past the end": _edit(hand, catalog_entry, b"9999999999 00000 n \n"),
        "the catalog off by one": _edit(hand, catalog_entry, b"%010d 00000 n \n" % (hand.index(b"1 0 obj") + 1)),
    }
    for name, data in cases.items():
        assert by_fast(data) is None, name
        if name == "truncated":  # cut inside rightsmeta's update: pypdf would read the older revision
            assert "the newest revision of this PDF is damaged" in str(by_read(data))
        else:
            assert by_read(data) == by_pypdf(data), name
    for cut in range(0, len(good), 97):
        assert_same(good[:cut], fast=None)


@pytest.mark.parametrize(("tail", "fast"), [
    (b"startxref\n%d\n%%%%EOF\n", True),
    (b"startxref\r\n%d\r\n%%%%EOF\r\n", True),
    (b"startxref\r%d\r%%%%EOF", True),
    (b"startxref \n %d \n%%%%EOF \n\n  \n", True),
    (b"startxref\n%d\n%%%%EOF\n%%%%EOF\n", False),  # pypdf skips the repeated marker
    (b"startxref %d\n%%%%EOF\n", False),  # one line: pypdf warns and reads it
    (b"startxref\n+%d\n%%%%EOF\n", False),
    (b"startxref\n%d\n%%%%EO", False),  # pypdf takes a cut marker too
])
def test_the_end_of_the_file(tail: bytes, fast: bool) -> None:
    data = simple()
    at = data.rindex(b"startxref")
    assert_same(data[:at] + tail % int(data[at:].split()[1]), fast=fast)


def test_a_prev_loop_is_left_to_pypdf() -> None:
    good = pdf_bytes()
    last = good[good.rindex(b"startxref"):].split()[1]
    looped = _edit(good, b"/Size 9", b"/Size 9 /Prev " + last)
    assert_same(looped, fast=False)


def test_free_and_mismatched_entries_are_left_to_pypdf() -> None:
    data = simple()
    # A newer section frees the Info object: pypdf still reads the older one; left to it.
    at = len(data)
    update = b"xref\n0 1\n0000000000 65535 f \n2 1\n0000000000 00000 f \ntrailer\n<< /Size 5 /Root 1 0 R " \
             b"/Info 2 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (int(data.split(b"startxref\n")[1].split()[0]), at)
    assert_same(data + update, fast=False)
    # An offset that lands on another object's header.
    entries = data[data.index(b"xref\n0 "):].split(b"\n")
    swapped = data.replace(entries[4], entries[5], 1)  # object 2's entry now points at object 3
    assert_same(swapped, fast=False)


def test_deep_huge_and_long_inputs_are_bounded() -> None:
    # Each is left to pypdf after bounded work (read() then is the pypdf path: no comparison
    # needed, and pypdf takes seconds over some of these).
    cases = {
        "deep arrays": simple((b"/Deep " + b"[" * 50_000 + b"]" * 50_000,)),
        "many entries": simple((b" ".join(b"/K%d %d" % (i, i) for i in range(150_000)),)),
        "a long string": simple((b"/TDMPolicy (" + b"x" * 3_000_000 + b")",)),
        "a long hex string": simple((b"/TDMPolicy <" + b"4" * 3_000_000 + b">",)),
        "a long name": simple((b"/TDMPolicy /" + b"x" * 5000,)),
        "huge /Length": _edit(simple(), b"/Length %d" % len(PDFA_PACKET), b"/Length 99999999999"),
        "huge object stream /N": _edit(simple(xref="stream", packed=(1, 2)), b"/N 2", b"/N 2000000"),
        "xref stream counts beyond its data": _edit(simple(xref="stream"), b"/Index [0 6]", b"/Index [0 600000]"),
    }
    for name, data in cases.items():
        started = time.perf_counter()
        got = by_fast(data)
        assert time.perf_counter() - started < 5, name
        assert got is None, name


def _mutants(data: bytes, rng: random.Random, count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        buf = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(buf))
            action = rng.random()
            if action < 0.5:
                buf[at] = rng.choice(b"0123456789 \n\r/<>[]()obj%RnfxQ\x00\xff")
            elif action < 0.75:
                del buf[at:at + rng.randint(1, 4)]
            else:
                buf[at:at] = bytes(rng.choice(b"0 \n)>]") for _ in range(rng.randint(1, 3)))
        out.append(bytes(buf))
    return out


@pytest.mark.parametrize("kind", ["tagged", "objects", "hybrid", "predictors", "qdf"])
def test_mutated_files_read_the_same_or_fall_back(kind: str, tmp_path: Path, qpdf: str) -> None:
    makers: dict[str, Callable[[], bytes]] = {
        "tagged": lambda: rightsmeta.tag_bytes(rightsmeta.tag_bytes(pdf_bytes(), DENY_AI), Assertion.build(deny=["all"])),
        "objects": lambda: qpdf_rewrite(qpdf, tmp_path, rightsmeta.tag_bytes(pdf_bytes(), DENY_AI),
                                        "--object-streams=generate"),
        "hybrid": lambda: simple(xref="hybrid", packed=(1, 2), info_entries=(b"/TDMReservation <FEFF0031>",)),
        "predictors": lambda: simple(xref="stream", packed=(1, 2), kinds=(0, 1, 2, 3, 4)),
        "qdf": lambda: qpdf_rewrite(qpdf, tmp_path, rightsmeta.tag_bytes(pdf_bytes(), DENY_AI), "--qdf"),
    }
    rng = random.Random(f"rightsmeta-{kind}")
    taken = 0
    for mutant in _mutants(makers[kind](), rng, 300):
        got = by_fast(mutant)
        if got is not None:
            taken += 1
            assert got == by_pypdf(mutant), mutant
    assert taken > 0  # some mutations (inside a page's text, say) leave the file readable


# --- tokens, one by one, against pypdf's own readers -----------------------------------------------


def test_text_strings_match_pypdf_for_every_short_string() -> None:
    for raw in [bytes((a,)) for a in range(256)] + [bytes((a, b)) for a in range(256) for b in (0, 0x41, 0xAD, 0xFE, 0xFF)]:
        assert pdfobjects.text_string(raw) == pdf._text(create_string_object(raw)), raw


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=12), st.binary(max_size=12).map(lambda b: b"\xfe\xff" + b),
                 st.binary(max_size=12).map(lambda b: b"\xef\xbb\xbf" + b), st.binary(max_size=12).map(lambda b: b"\xff\xfe" + b)))
def test_text_strings_match_pypdf(raw: bytes) -> None:
    assert pdfobjects.text_string(raw) == pdf._text(create_string_object(raw))


T = TypeVar("T")


def _or_none(read: Callable[[], T]) -> T | None:
    """What our reader makes of it, or None where it is unsure (and pypdf decides)."""
    try:
        return read()
    except LeaveToLibrary:
        return None


def _parser(data: bytes) -> pdfobjects._Parser:
    reader = pdfobjects.Reader.__new__(pdfobjects.Reader)  # no file: only the token budget
    reader.budget = 1000
    return pdfobjects._Parser(data, reader, streams=False)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([b"(", b")", b"\\", b"n", b"r", b"q", b"0", b"7", b"8", b"\r", b"\n", b"a", b" ", b"%"]),
                max_size=16).map(b"".join))
def test_literal_strings_match_pypdf(body: bytes) -> None:
    data = b"(" + body + b") /After"
    mine = _or_none(lambda: _parser(data).literal_string(0))
    stream = io.BytesIO(data)
    try:
        theirs = read_string_from_stream(stream)
    except Exception:
        assert mine is None
        return
    if mine is not None:
        assert mine == (theirs.original_bytes, stream.tell())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"A", b"#", b"2", b"0", b"F", b"g", b"\xc3", b"\xa9", b"-", b".", b"_"]),
                max_size=10).map(b"".join))
def test_names_match_pypdf(body: bytes) -> None:
    data = b"/" + body + b" "
    mine = _or_none(lambda: _parser(data).value(0))
    stream = io.BytesIO(data)
    theirs = NameObject.read_from_stream(stream, SimpleNamespace(strict=False))
    if mine is not None:
        assert mine == (str(theirs), stream.tell())
