"""Documents: PDF (XMP + Info, incremental, signature-safe) and EPUB 2/3 (TDMRep in the OPF).

Every sample is a real file made here: PDFs with text pages written by pypdf, signed by pyHanko,
encrypted by pypdf, edited by ExifTool; EPUBs zipped by hand, valid for EPUBCheck. Independent
readers (poppler, qpdf, ExifTool, pyHanko, EPUBCheck) judge the output.
"""

from __future__ import annotations

import datetime
import io
import re
import subprocess
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader, PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, EncodedStreamObject, NameObject
from samples import exiftool_json, exiftool_write
from test_images import assertions

import rightsmeta
from rightsmeta import Assertion, Permission, Purpose, State, xmp
from rightsmeta.carriers import epub, pdf
from rightsmeta.errors import MalformedFile

DENY_AI = Assertion.build(deny=["ai"], holder="Ada Lovelace", copyright="(c) 2026 Ada Lovelace",
                          policy="https://ada.example/tdm-policy.json")
PAGES = ("Hello from page one", "And a second page of text")


# --- samples ---------------------------------------------------------------------------------


def pdf_bytes(pages: tuple[str, ...] = PAGES, *, packet: bytes | None = None, deflate: bool = False) -> bytes:
    """A PDF 1.3 with a Helvetica text line per page (classic xref table), optionally with XMP."""
    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"),
    }))
    for text in pages:
        page = writer.add_blank_page(300, 200)
        content = DecodedStreamObject()
        content.set_data(f"BT /F1 14 Tf 20 100 Td ({text}) Tj ET".encode())
        page[NameObject("/Contents")] = writer._add_object(content)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
    if packet is not None:
        stream: DecodedStreamObject | EncodedStreamObject = DecodedStreamObject()
        stream.set_data(packet)
        if deflate:
            stream = stream.flate_encode(level=9)
        stream[NameObject("/Type")] = NameObject("/Metadata")
        stream[NameObject("/Subtype")] = NameObject("/XML")
        writer.root_object[NameObject("/Metadata")] = writer._add_object(stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


PDFA_PACKET = b"""<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/" pdfaid:part="2" pdfaid:conformance="B"/>
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:xmp="http://ns.adobe.com/xap/1.0/">
 <dc:title><rdf:Alt><rdf:li xml:lang="x-default">An archived report</rdf:li></rdf:Alt></dc:title>
 <xmp:CreatorTool>Report Maker 3</xmp:CreatorTool>
</rdf:Description></rdf:RDF></x:xmpmeta>
<?xpacket end="w"?>"""


def text_of(poppler: dict[str, str], path: Path) -> str:
    return subprocess.run([poppler["pdftotext"], str(path), "-"], check=True, capture_output=True, text=True).stdout


def pdfinfo(poppler: dict[str, str], path: Path, *args: str) -> str:
    return subprocess.run([poppler["pdfinfo"], *args, str(path)], check=True, capture_output=True, text=True).stdout


def page_count(poppler: dict[str, str], path: Path) -> int:
    found = re.search(r"^Pages:\s+(\d+)$", pdfinfo(poppler, path), re.MULTILINE)
    assert found, "pdfinfo printed no page count"
    return int(found.group(1))


def increment(before: bytes, after: bytes) -> bytes:
    assert after.startswith(before), "the original is not a byte prefix of the tagged file"
    return after[len(before):]


CONTAINER = """<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles>
    <rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>
  </rootfiles>
</container>
"""
OPF3 = """<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid" xml:lang="en"{prefix}>
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="uid">urn:uuid:12345678-1234-4234-8234-123456789abc</dc:identifier>
    <dc:title>A Small Book</dc:title>
    <dc:language>en</dc:language>
    <meta property="dcterms:modified">2026-01-01T00:00:00Z</meta>{extra}
  </metadata>
  <manifest>
    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
    <item id="c1" href="chapter1.xhtml" media-type="application/xhtml+xml"/>
  </manifest>
  <spine>
    <itemref idref="c1"/>
  </spine>
</package>
"""
NAV = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" xml:lang="en" lang="en">
<head><title>Contents</title></head>
<body><nav epub:type="toc" id="toc"><h1>Contents</h1><ol><li><a href="chapter1.xhtml">Chapter 1</a></li></ol></nav></body>
</html>
"""
CHAPTER3 = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
<head><title>Chapter 1</title></head>
<body><h1>Chapter 1</h1><p>It was a bright cold day in April.</p></body>
</html>
"""
OPF2 = """<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="2.0" unique-identifier="uid">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:opf="http://www.idpf.org/2007/opf">
    <dc:identifier id="uid" opf:scheme="UUID">urn:uuid:12345678-1234-4234-8234-123456789abd</dc:identifier>
    <dc:title>An Old Book</dc:title>
    <dc:language>en</dc:language>
    <dc:creator opf:role="aut">Ada Lovelace</dc:creator>{extra}
  </metadata>
  <manifest>
    <item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>
    <item id="c1" href="chapter1.xhtml" media-type="application/xhtml+xml"/>
  </manifest>
  <spine toc="ncx">
    <itemref idref="c1"/>
  </spine>
</package>
"""
NCX = """<?xml version="1.0" encoding="UTF-8"?>
<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1">
  <head>
    <meta name="dtb:uid" content="urn:uuid:12345678-1234-4234-8234-123456789abd"/>
    <meta name="dtb:depth" content="1"/>
    <meta name="dtb:totalPageCount" content="0"/>
    <meta name="dtb:maxPageNumber" content="0"/>
  </head>
  <docTitle><text>An Old Book</text></docTitle>
  <navMap>
    <navPoint id="n1" playOrder="1"><navLabel><text>Chapter 1</text></navLabel><content src="chapter1.xhtml"/></navPoint>
  </navMap>
</ncx>
"""
CHAPTER2 = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" "http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd">
<html xmlns="http://www.w3.org/1999/xhtml">
<head><title>Chapter 1</title></head>
<body><h1>Chapter 1</h1><p>It was a bright cold day in April.</p></body>
</html>
"""


def epub_bytes(version: int = 3, *, prefix: str = "", extra: str = "", opf: str | None = None,
               members: dict[str, bytes] | None = None) -> bytes:
    """A minimal EPUB that EPUBCheck 4.2 accepts (checked when these samples were written)."""
    files: dict[str, str | bytes] = {"META-INF/container.xml": CONTAINER}
    if version == 3:
        files["OEBPS/content.opf"] = opf or OPF3.format(prefix=prefix, extra=extra)
        files.update({"OEBPS/nav.xhtml": NAV, "OEBPS/chapter1.xhtml": CHAPTER3})
    else:
        files["OEBPS/content.opf"] = opf or OPF2.format(extra=extra)
        files.update({"OEBPS/toc.ncx": NCX, "OEBPS/chapter1.xhtml": CHAPTER2})
    files.update(members or {})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), b"application/epub+zip")
        for name, content in files.items():
            archive.writestr(name, content, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def opf_of(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.read("OEBPS/content.opf").decode("utf-8")


def states(report: rightsmeta.FileReport) -> dict[Purpose, State]:
    return {p: perm.state for p, perm in report.permissions.items()}


# --- PDF -------------------------------------------------------------------------------------


def test_pdf_tag_keeps_text_pages_and_prefix(tmp_path: Path, poppler: dict[str, str], qpdf: str) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf_bytes())
    before, text_before = path.read_bytes(), text_of(poppler, path)
    assert "Hello from page one" in text_before
    pages_before = page_count(poppler, path)
    assert pages_before == 2

    result = rightsmeta.tag(path, DENY_AI)
    assert result.status == "tagged", result.reason
    assert result.carriers == ["xmp", "info"]
    after = path.read_bytes()
    added = increment(before, after)
    # A classic file gets a classic cross-reference table (PDF 1.4 and PDF/A-1 have no xref streams).
    assert b"\nxref\n" in added and b"/XRef" not in added and b"/Prev" in added
    assert text_of(poppler, path) == text_before
    assert page_count(poppler, path) == pages_before
    check = subprocess.run([qpdf, "--check", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    meta = pdfinfo(poppler, path, "-meta")
    assert "<tdm:reservation>1</tdm:reservation>" in meta
    assert "<plus:DataMining>http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING</plus:DataMining>" in meta
    custom = pdfinfo(poppler, path, "-custom")
    assert re.search(r"RightsmetaAITraining:\s*notAllowed", custom) and re.search(r"TDMReservation:\s*1", custom)

    report = rightsmeta.read(path)
    assert report.format == "pdf" and report.errors == [] and report.conflicts == ()
    assert report.permissions == dict(DENY_AI.permissions)
    assert [c.name for c in report.carriers] == ["xmp", "info"]
    assert report.rights["copyright"] == "(c) 2026 Ada Lovelace"
    assert report.rights["policy"] == "https://ada.example/tdm-policy.json"


def test_exiftool_sees_what_we_wrote_in_a_pdf(tmp_path: Path, exiftool: str) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf_bytes())
    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    printed = exiftool_json(exiftool, path)
    assert printed["XMP-plus:DataMining"] == "Prohibited for AI/ML training"
    assert str(printed["XMP-tdm:Reservation"]) == "1"
    assert printed["XMP-tdm:Policy"] == "https://ada.example/tdm-policy.json"
    assert printed["XMP-dc:Rights"] == "(c) 2026 Ada Lovelace"
    assert printed["PDF:RightsmetaAITraining"] == "notAllowed"
    assert str(printed["PDF:TDMReservation"]) == "1"
    assert printed["PDF:PageCount"] == 2


def test_tagging_a_pdf_twice_replaces_our_values(tmp_path: Path, exiftool: str) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf_bytes())
    first = Assertion.build(deny=["all"], constrain=[("genai-training", "https://ada.example/licence")],
                            policy="https://ada.example/p")
    assert rightsmeta.tag(path, first).status == "tagged"
    assert rightsmeta.tag(path, Assertion.build(deny=["ai"])).status == "tagged"
    report = rightsmeta.read(path)
    assert report.errors == [] and report.conflicts == ()
    assert states(report)[Purpose.GENAI_TRAINING] is State.NOT_ALLOWED
    assert states(report)[Purpose.SEARCH] is State.UNSPECIFIED
    xmp_values, info_values = (c.values for c in report.carriers)
    assert "rightsmeta:GenAITrainingConstraint" not in xmp_values and "tdm:policy" not in xmp_values
    assert "RightsmetaGenAITrainingConstraint" not in info_values and "TDMPolicy" not in info_values
    printed = exiftool_json(exiftool, path, "-a", "-XMP:all")
    assert sum(1 for k in printed if k.endswith(":DataMining")) == 2  # ours and PLUS, once each
    assert sum(1 for k in printed if k.lower().endswith(":reservation")) == 1


def test_pdf_ending_in_an_xref_stream_gets_one(tmp_path: Path, qpdf: str) -> None:
    # pypdf's own incremental writer ends a file with a cross-reference stream.
    writer = PdfWriter(PdfReader(io.BytesIO(pdf_bytes())), incremental=True)
    writer.add_metadata({"/Title": "updated once"})
    out = io.BytesIO()
    writer.write(out)
    before = out.getvalue()
    after = rightsmeta.tag_bytes(before, DENY_AI)
    assert b"/Type /XRef" in increment(before, after)
    path = tmp_path / "x.pdf"
    path.write_bytes(after)
    check = subprocess.run([qpdf, "--check", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    report = rightsmeta.read(after)
    assert report.errors == [] and report.permissions == dict(DENY_AI.permissions)
    assert (PdfReader(io.BytesIO(after)).metadata or {}).get("/Title") == "updated once"


def _signer() -> tuple[object, object]:
    from asn1crypto import keys, x509
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from pyhanko.sign import signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    key = ec.generate_private_key(ec.SECP256R1())
    name = cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "rightsmeta test signer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        cx509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(cx509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(cx509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    der = x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    private = keys.PrivateKeyInfo.load(key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    signer = signers.SimpleSigner(signing_cert=der, signing_key=private,
                                  cert_registry=SimpleCertificateStore.from_certs([der]))
    return signer, der


def test_signed_pdf_still_verifies_after_tagging(tmp_path: Path, poppler: dict[str, str]) -> None:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign import signers
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    signer, cert = _signer()
    signed = signers.sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(pdf_bytes())), signers.PdfSignatureMetadata(field_name="Sig1"),
        signer=signer,
    ).getvalue()
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)
    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    tagged = path.read_bytes()
    increment(signed, tagged)

    status = validate_pdf_signature(
        PdfFileReader(io.BytesIO(tagged)).embedded_signatures[0], ValidationContext(trust_roots=[cert])
    )
    assert status.intact and status.valid and status.trusted
    assert status.docmdp_ok  # our update is one the signature's modification policy allows
    sig = subprocess.run([poppler["pdfsig"], str(path)], capture_output=True, text=True)
    assert "Signature is Valid" in sig.stdout, sig.stdout + sig.stderr
    assert "Not total document signed" in sig.stdout  # the update after the signature is there
    assert rightsmeta.read(path).permissions == dict(DENY_AI.permissions)


def test_pdfa_gains_extension_schema_once(tmp_path: Path) -> None:
    data = pdf_bytes(packet=PDFA_PACKET)
    tagged = rightsmeta.tag_bytes(rightsmeta.tag_bytes(data, Assertion.build(deny=["all"])), DENY_AI)
    packet = PdfReader(io.BytesIO(tagged)).root_object["/Metadata"].get_object().get_data()
    text = packet.decode("utf-8")
    for ns in ("http://ns.useplus.org/ldf/xmp/1.0/", "http://www.w3.org/ns/tdmrep/", "http://ns.rightsmeta.org/xmp/1.0/"):
        assert text.count(f"<pdfaSchema:namespaceURI>{ns}</pdfaSchema:namespaceURI>") == 1, ns
    for name in ("DataMining", "OtherConstraints", "reservation", "policy", "AITraining", "WorkID", "Date"):
        assert f"<pdfaProperty:name>{name}</pdfaProperty:name>" in text
    assert text.count("<pdfaExtension:schemas>") == 1
    props = xmp.properties(packet)
    assert props[(xmp.PDFA_ID, "part")] == "2" and props[(xmp.PDFA_ID, "conformance")] == "B"
    assert props[("http://purl.org/dc/elements/1.1/", "title")] == "An archived report"
    assert props[("http://ns.adobe.com/xap/1.0/", "CreatorTool")] == "Report Maker 3"
    assert rightsmeta.read(tagged).permissions == dict(DENY_AI.permissions)
    # A file that declares no PDF/A conformance gets no extension schema.
    plain = rightsmeta.tag_bytes(pdf_bytes(), DENY_AI)
    assert b"pdfaExtension" not in plain


def test_pdfa_extension_completes_a_partial_schema() -> None:
    partial = PDFA_PACKET.replace(b"<xmp:CreatorTool>", b"""<pdfaExtension:schemas
      xmlns:pdfaExtension="http://www.aiim.org/pdfa/ns/extension/" xmlns:pdfaSchema="http://www.aiim.org/pdfa/ns/schema#"
      xmlns:pdfaProperty="http://www.aiim.org/pdfa/ns/property#"><rdf:Bag><rdf:li rdf:parseType="Resource">
     <pdfaSchema:schema>PLUS</pdfaSchema:schema><pdfaSchema:namespaceURI>http://ns.useplus.org/ldf/xmp/1.0/</pdfaSchema:namespaceURI>
     <pdfaSchema:prefix>plus</pdfaSchema:prefix><pdfaSchema:property><rdf:Seq><rdf:li rdf:parseType="Resource">
     <pdfaProperty:name>DataMining</pdfaProperty:name><pdfaProperty:valueType>URI</pdfaProperty:valueType>
     <pdfaProperty:category>external</pdfaProperty:category><pdfaProperty:description>d</pdfaProperty:description>
     </rdf:li></rdf:Seq></pdfaSchema:property></rdf:li></rdf:Bag></pdfaExtension:schemas><xmp:CreatorTool>""")
    text = xmp.with_pdfa_extension(partial).decode("utf-8")
    assert text.count("http://ns.useplus.org/ldf/xmp/1.0/</pdfaSchema:namespaceURI>") == 1
    assert text.count("<pdfaProperty:name>DataMining</pdfaProperty:name>") == 2  # PLUS's and ours
    assert text.count("<pdfaProperty:name>OtherConstraints</pdfaProperty:name>") == 1
    assert text.count("<pdfaExtension:schemas>") == 1


def test_encrypted_pdf_needs_its_password(tmp_path: Path) -> None:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(rightsmeta.tag_bytes(pdf_bytes(), DENY_AI))))
    writer.encrypt(user_password="open sesame", owner_password="owner", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    path = tmp_path / "locked.pdf"
    path.write_bytes(out.getvalue())
    before = path.read_bytes()

    report = rightsmeta.read(path)
    assert report.errors == ["the PDF is encrypted: reading it needs its password (--password); "
                             "rightsmeta does not write into encrypted PDFs"]
    assert not report.may_use(Purpose.SEARCH)
    result = rightsmeta.tag(path, DENY_AI)
    # Not "give its password" alone: with it, tagging fails too (below).
    assert result.status == "failed" and result.reason is not None and "does not write into encrypted PDFs" in result.reason
    assert path.read_bytes() == before

    report = rightsmeta.read(path, password="open sesame")
    assert report.errors == [] and report.permissions == dict(DENY_AI.permissions)
    assert rightsmeta.read(path, password="wrong").errors == ["wrong password for this encrypted PDF"]
    # pypdf cannot encrypt an incremental update: refuse rather than write a broken file.
    result = rightsmeta.tag(path, DENY_AI, password="open sesame")
    assert result.status == "failed" and "encrypted" in (result.reason or "")
    assert path.read_bytes() == before

    # An owner password alone restricts editing, not opening: readable without a password.
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(rightsmeta.tag_bytes(pdf_bytes(), DENY_AI))))
    writer.encrypt(user_password="", owner_password="owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    report = rightsmeta.read(out.getvalue())
    assert report.errors == [] and report.permissions == dict(DENY_AI.permissions)
    with pytest.raises(rightsmeta.errors.UnsupportedFormat, match="encrypted"):
        rightsmeta.tag_bytes(out.getvalue(), DENY_AI)


def test_pdf_tagged_by_exiftool_is_read(tmp_path: Path, exiftool: str) -> None:
    path = tmp_path / "by-exiftool.pdf"
    path.write_bytes(pdf_bytes())
    exiftool_write(exiftool, path, "-XMP-plus:DataMining#=DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING")
    report = rightsmeta.read(path)
    assert report.errors == [] and report.conflicts == ()
    assert states(report) == {p: State.ALLOWED if p is Purpose.SEARCH else State.NOT_ALLOWED for p in Purpose}

    exiftool_write(exiftool, path, "-XMP-tdm:Reservation=1", "-XMP-tdm:Policy=https://example.com/tdm.json")
    report = rightsmeta.read(path)
    assert report.errors == []
    assert report.permissions[Purpose.DATA_MINING] == Permission(State.NOT_ALLOWED)  # PLUS's no beats TDMRep's terms
    assert any("tdmrep" in c for c in report.conflicts)


def test_pdf_projection_edited_by_exiftool_is_a_conflict(tmp_path: Path, exiftool: str) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf_bytes())
    rightsmeta.tag(path, DENY_AI)
    exiftool_write(exiftool, path, "-XMP-plus:DataMining#=DMI-ALLOWED")
    report = rightsmeta.read(path)
    assert report.errors == []
    assert any("iptc-plus" in c and "differs" in c for c in report.conflicts), report.conflicts
    assert states(report)[Purpose.AI_TRAINING] is State.NOT_ALLOWED


def test_hostile_and_broken_pdfs_fail_cleanly(tmp_path: Path) -> None:
    good = pdf_bytes()
    truncated = good[: len(good) // 3]
    report = rightsmeta.read(truncated)
    assert report.format == "pdf" and report.errors and not report.may_use(Purpose.SEARCH)
    with pytest.raises(MalformedFile):
        rightsmeta.tag_bytes(truncated, DENY_AI)

    # A startxref that points nowhere: pypdf reads it by rebuilding the xref, but an update
    # appended to it would chain to nothing.
    wrong_offset = re.sub(rb"startxref\n\d+", b"startxref\n9", good)
    with pytest.raises(MalformedFile, match="startxref"):
        rightsmeta.tag_bytes(wrong_offset, DENY_AI)

    # A cross-reference chain that loops back on itself ends (pypdf tracks the sections it read).
    last = re.search(rb"startxref\n(\d+)", good)
    assert last
    looped = good.replace(b"/Size 9", b"/Size 9 /Prev " + last.group(1))
    assert rightsmeta.read(looped).permissions == rightsmeta.read(good).permissions

    with pytest.raises(MalformedFile, match="limit"):
        rightsmeta.tag_bytes(good.replace(b"/Size 9", b"/Size 999999999"), DENY_AI)

    # A metadata stream that inflates to 64 MiB: decoding stops at the XMP size cap.
    path = tmp_path / "bomb.pdf"
    path.write_bytes(pdf_bytes(packet=b" " * (64 * 1024 * 1024), deflate=True))
    assert path.stat().st_size < 200_000
    report = rightsmeta.read(path)
    assert report.carriers[0].name == "xmp"
    assert len(report.errors) == 1 and "cannot decode the metadata stream" in report.errors[0], report.errors
    result = rightsmeta.tag(path, DENY_AI)
    assert result.status == "failed" and "metadata stream" in (result.reason or "")

    entity = pdf_bytes(packet=b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x:xmpmeta xmlns:x="adobe:ns:meta/">&a;</x:xmpmeta>')
    assert any("DTD" in e or "entit" in e.lower() for e in rightsmeta.read(entity).errors)
    with pytest.raises(rightsmeta.errors.MalformedMetadata):
        rightsmeta.tag_bytes(entity, DENY_AI)


def test_pdf_sniffed_after_leading_junk() -> None:
    assert pdf.sniff(b"\x00" * 20 + b"%PDF-1.7\n") == "pdf"
    assert pdf.sniff(b"%PD") is None
    assert epub.sniff(b"%PDF-1.7") is None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(assertion=assertions(), copyright=st.none() | st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), include_characters="\t\n\r<&\"'>"), max_size=20))
def test_pdf_round_trip(assertion: Assertion, copyright: str | None) -> None:
    full = Assertion(permissions=assertion.permissions, copyright=copyright or None)
    tagged = rightsmeta.tag_bytes(_PDF, full)
    report = rightsmeta.read(tagged)
    assert report.errors == [] and report.conflicts == ()
    assert report.permissions == dict(full.permissions)
    assert report.rights.get("copyright") == (copyright or None)


_PDF = pdf_bytes()


# --- EPUB ------------------------------------------------------------------------------------


def test_tagged_epubs_pass_epubcheck_and_read_back(tmp_path: Path, epubcheck: list[str]) -> None:
    assertion = Assertion.build(deny=["ai"], constrain=[("search", "https://ada.example/terms")],
                                holder="Ada Lovelace", copyright="(c) 2026 Ada & Co", policy="https://ada.example/p")
    paths = []
    for version in (3, 2):
        path = tmp_path / f"book{version}.epub"
        original = epub_bytes(version)
        path.write_bytes(original)
        result = rightsmeta.tag(path, assertion)
        assert result.status == "tagged" and result.carriers == ["opf"], result.reason
        report = rightsmeta.read(path)
        assert report.format == "epub" and report.errors == [] and report.conflicts == ()
        assert report.permissions == dict(assertion.permissions)
        assert report.carriers[0].values["tdm:reservation"] == "1"
        assert report.rights["copyright"] == "(c) 2026 Ada & Co"
        with zipfile.ZipFile(path) as new, zipfile.ZipFile(io.BytesIO(original)) as old:
            first = new.infolist()[0]
            assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED and not first.extra
            assert [i.filename for i in new.infolist()] == [i.filename for i in old.infolist()]
            for name in old.namelist():
                if name != "OEBPS/content.opf":
                    assert new.read(name) == old.read(name)
        paths.append(path)

    opf3, opf2 = (opf_of(p.read_bytes()) for p in paths)
    assert 'prefix="tdm: http://www.w3.org/ns/tdmrep# rightsmeta: http://ns.rightsmeta.org/xmp/1.0/"' in opf3
    assert '<meta property="tdm:reservation">1</meta>' in opf3
    assert '<meta property="rightsmeta:Search">constrained</meta>' in opf3
    assert '<meta name="tdm:reservation" content="1"/>' in opf2
    assert '<meta name="tdm:policy" content="https://ada.example/p"/>' in opf2
    assert "<dc:rights>(c) 2026 Ada &amp; Co</dc:rights>" in opf2

    # EPUBCheck is a JVM that takes seconds to start: both books at once, one run each.
    runs = [subprocess.Popen([*epubcheck, str(p)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for p in paths]
    for path, run in zip(paths, runs, strict=True):
        output = run.communicate(timeout=120)[0]
        assert run.returncode == 0 and "No errors or warnings detected" in output, f"{path.name}:\n{output}"


def test_tagging_an_epub_twice_keeps_others_metadata(tmp_path: Path) -> None:
    # A publisher's own prefixes and metadata stay; our own elements are replaced, not repeated.
    data = epub_bytes(3, prefix=' prefix="rendition: http://www.idpf.org/vocab/rendition/#"',
                      extra='\n    <meta property="rendition:layout">reflowable</meta>')
    first = rightsmeta.tag_bytes(data, Assertion.build(deny=["all"], policy="https://ada.example/p", holder="Ada"))
    second = rightsmeta.tag_bytes(first, Assertion.build(allow=["search"]))
    text = opf_of(second)
    assert 'prefix="rendition: http://www.idpf.org/vocab/rendition/# tdm: http://www.w3.org/ns/tdmrep# ' \
           'rightsmeta: http://ns.rightsmeta.org/xmp/1.0/"' in text
    assert '<meta property="rendition:layout">reflowable</meta>' in text
    assert text.count('property="rightsmeta:Search"') == 1
    assert "tdm:reservation" not in text and "tdm:policy" not in text  # nothing reserved any more
    assert '<meta property="rightsmeta:HolderName">Ada</meta>' in text  # kept, as in XMP
    assert "\n\n" not in text.split("<metadata")[1].split("</metadata>")[0]  # no holes left behind
    report = rightsmeta.read(second)
    assert report.errors == [] and report.permissions == dict(Assertion.build(allow=["search"]).permissions)


@pytest.mark.parametrize(
    ("version", "extra", "expected"),
    [
        (3, '\n    <meta property="tdm:reservation">1</meta>\n    <meta property="tdm:policy">https://p.example/</meta>',
         Permission(State.CONSTRAINED, "https://p.example/")),
        (2, '\n    <meta name="tdm:reservation" content="1"/>', Permission(State.NOT_ALLOWED)),
        (2, '\n    <meta name="tdm-reservation" content="0"/>', Permission(State.ALLOWED)),
    ],
)
def test_tdmrep_written_by_others_is_read(version: int, extra: str, expected: Permission) -> None:
    prefix = ' prefix="tdm: http://www.w3.org/ns/tdmrep#"' if version == 3 else ""
    report = rightsmeta.read(epub_bytes(version, prefix=prefix, extra=extra))
    assert report.errors == [] and report.permissions[Purpose.DATA_MINING] == expected


def test_broken_and_hostile_epubs_fail_cleanly(tmp_path: Path) -> None:
    good = epub_bytes(3)
    path = tmp_path / "broken.epub"
    path.write_bytes(good[: len(good) - 30])  # the central directory is cut off
    report = rightsmeta.read(path)
    assert report.format == "epub" and report.errors and "zip archive is broken" in report.errors[0]
    result = rightsmeta.tag(path, DENY_AI)
    assert result.status == "failed" and "zip archive is broken" in (result.reason or "")
    assert path.read_bytes() == good[: len(good) - 30]

    bomb = epub_bytes(3, members={"OEBPS/huge.bin": b"\0" * (16 * 1024 * 1024)})
    with pytest.raises(MalformedFile, match="zip bomb"):
        rightsmeta.tag_bytes(bomb, DENY_AI)

    entity = OPF3.format(prefix="", extra="").replace('<?xml version="1.0" encoding="UTF-8"?>',
                                                       '<?xml version="1.0"?><!DOCTYPE p [<!ENTITY e "x">]>')
    report = rightsmeta.read(epub_bytes(3, opf=entity))
    assert any("entities" in e for e in report.errors)
    with pytest.raises(rightsmeta.errors.MalformedMetadata):
        rightsmeta.tag_bytes(epub_bytes(3, opf=entity), DENY_AI)

    no_opf = io.BytesIO()
    with zipfile.ZipFile(no_opf, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), b"application/epub+zip")
    assert rightsmeta.read(no_opf.getvalue()).errors == ["the EPUB has no META-INF/container.xml"]

    # An OpenDocument file is a zip with a mimetype first too, but not an EPUB.
    odt = io.BytesIO()
    with zipfile.ZipFile(odt, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), b"application/vnd.oasis.opendocument.text")
    assert epub.sniff(odt.getvalue()[:64]) is None


@settings(max_examples=20, deadline=None)
@given(assertion=assertions(), version=st.sampled_from([2, 3]), copyright=st.none() | st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), include_characters="\t\n\r<&\"'>"), max_size=20))
def test_epub_round_trip(assertion: Assertion, version: int, copyright: str | None) -> None:
    full = Assertion(permissions=assertion.permissions, copyright=copyright if copyright and copyright.strip() else None)
    tagged = rightsmeta.tag_bytes(_EPUBS[version], full)
    report = rightsmeta.read(tagged)
    assert report.errors == [] and report.conflicts == ()
    assert report.permissions == dict(full.permissions)
    assert report.rights.get("copyright") == full.copyright
    again = rightsmeta.tag_bytes(tagged, full)
    assert len(opf_of(again)) == len(opf_of(tagged))  # same record again, nothing piles up


_EPUBS = {2: epub_bytes(2), 3: epub_bytes(3)}


def test_cli_tags_and_reads_documents_beside_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner
    from samples import write_image

    from rightsmeta.cli import main

    # No signing identity, whatever this machine has configured: this is about the document carriers.
    monkeypatch.setenv("RIGHTSMETA_IDENTITY", str(tmp_path / "no-identity"))
    monkeypatch.delenv("RIGHTSMETA_CERT", raising=False)
    monkeypatch.delenv("RIGHTSMETA_KEY", raising=False)

    files = tmp_path / "files"
    files.mkdir()
    (files / "paper.pdf").write_bytes(pdf_bytes())
    (files / "book.epub").write_bytes(epub_bytes(3))
    write_image(files, "png")
    result = CliRunner().invoke(main, ["tag", "-r", str(files), "--deny", "ai", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    import json

    tagged = {Path(r["path"]).name: r for r in json.loads(result.stdout)}
    assert tagged["paper.pdf"]["carriers"] == ["xmp", "info"] and tagged["book.epub"]["carriers"] == ["opf"]
    result = CliRunner().invoke(main, ["read", "-r", str(files), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    reports = {Path(r["path"]).name: r for r in json.loads(result.stdout)}
    assert {n: r["format"] for n, r in reports.items()} == {"paper.pdf": "pdf", "book.epub": "epub", "sample.png": "png"}
    assert all(r["permissions"]["ai-training"] == "notAllowed" for r in reports.values())
