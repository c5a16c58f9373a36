"""A PDF is parsed once per tag: the writer's reader of the original is the one the content check
uses, and the tagged version's reader (read back, then checked) takes the original's
cross-reference chain from it instead of parsing it again. Reading on top of an earlier version
must give exactly what a fresh reader gives, errors included (so the fast reader still equals
pypdf, tests/test_pdf_fast.py)."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest
from test_documents import DENY_AI, PDFA_PACKET, pdf_bytes
from test_pdf_fast import pypdf_update, qpdf_rewrite, simple
from test_pdf_write_fast import _xref_stream_pdf

import rightsmeta
from rightsmeta import Assertion, tagging
from rightsmeta.carriers import Options, pdf, pdfobjects
from rightsmeta.errors import LeaveToLibrary


def _sections_parsed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Offsets of every cross-reference section parsed from now on (tables and streams)."""
    parsed: list[int] = []
    for name in ("_read_table", "_read_xref_stream"):
        method = getattr(pdfobjects.Reader, name)

        def spy(self: pdfobjects.Reader, pos: int, method=method):  # type: ignore[no-untyped-def]
            parsed.append(pos)
            return method(self, pos)

        monkeypatch.setattr(pdfobjects.Reader, name, spy)
    return parsed


@pytest.mark.parametrize("updates", [0, 2])
def test_a_tag_parses_each_cross_reference_section_once(updates: int, monkeypatch: pytest.MonkeyPatch) -> None:
    original = pdf_bytes(packet=PDFA_PACKET)
    for n in range(updates):  # earlier revisions: their sections are in the chain too
        original = rightsmeta.tag_bytes(original, Assertion.build(deny=["ai"] if n else ["all"]))
    sections = len(pdfobjects.Reader(original).sections())
    assert sections == updates + 1
    parsed = _sections_parsed(monkeypatch)
    new, fmt, carriers, notes = tagging.tag_data(original, DENY_AI.for_work(), Options(), None)
    assert (fmt, carriers, notes) == ("pdf", ["xmp", "info"], [])  # written fast, read back, proven in place
    # The original's sections by the writer, the update's by the read-back; the check reuses both.
    assert sorted(parsed) == sorted({*parsed}) and len(parsed) == sections + 1
    assert max(parsed) >= len(original)


def _versions(tmp_path: Path, qpdf: str) -> dict[str, bytes]:
    plain = pdf_bytes()
    return {
        "plain": plain,
        "xmp": pdf_bytes(packet=PDFA_PACKET, deflate=True),
        "pypdf update": pypdf_update(plain),
        "xref stream": _xref_stream_pdf(),
        "hybrid": simple(xref="hybrid", packed=(1, 2), info_entries=(b"/TDMReservation <FEFF0031>",)),
        "object streams": qpdf_rewrite(qpdf, tmp_path, plain, "--object-streams=generate"),
        "linearized": qpdf_rewrite(qpdf, tmp_path, plain, "--linearize"),
    }


def _reading(reader: pdfobjects.Reader | None) -> object:
    """All a caller can learn from a reader: its trailer, its sections, what it finds."""
    if reader is None:
        return "left to pypdf"
    try:
        found = pdf._fast_found(reader)
    except LeaveToLibrary:
        found = None
    return reader.trailer, reader.sections(), found and pdf._reports(found), reader.budget


def _fresh(data: bytes, base: pdfobjects.Reader | None = None) -> pdfobjects.Reader | None:
    try:
        return pdfobjects.Reader(data, base=base)
    except LeaveToLibrary:
        return None


def test_reading_on_top_of_the_original_equals_a_fresh_read(tmp_path: Path, qpdf: str) -> None:
    rng = random.Random("rightsmeta-on-top")
    adopted = 0
    for name, original in _versions(tmp_path, qpdf).items():
        base = pdfobjects.Reader(original)
        tagged = rightsmeta.tag_bytes(original, DENY_AI)
        assert tagged.startswith(original), name
        versions = [tagged, rightsmeta.tag_bytes(tagged, Assertion.build(allow=["search"]))]
        for _ in range(40):  # damaged updates: the original's bytes kept, the appended ones mutated
            tail = bytearray(tagged[len(original):])
            for _ in range(rng.randint(1, 3)):
                at = rng.randrange(len(tail))
                tail[at:at + rng.randint(0, 3)] = bytes(rng.choice(b"0123456789 \n/<>[]Rxf") for _ in range(rng.randint(0, 3)))
            versions.append(original + bytes(tail))
        for version in versions:
            on_top, fresh = _fresh(version, base), _fresh(version)
            assert _reading(on_top) == _reading(fresh), name
            adopted += on_top is not None and on_top._sections[-1] is base._sections[-1]
    assert adopted >= 7 * 2  # every intact tagged version took the original's chain


def test_a_version_that_does_not_extend_the_original_is_read_whole() -> None:
    original = pdf_bytes()
    other = pdf_bytes(packet=PDFA_PACKET)
    base = pdfobjects.Reader(original)
    reader = pdfobjects.Reader(other, base=base)
    assert reader.sections() == pdfobjects.Reader(other).sections()
    assert all(mine is not theirs for mine in reader._sections for theirs in base._sections)


def test_a_hybrid_reference_pdf_is_tagged_and_proven_in_place(tmp_path: Path, qpdf: str) -> None:
    # A table whose trailer names a cross-reference stream (/XRefStm): listing its sections once
    # failed ("zip() argument 2 is longer"), and every tag of such a file was an internal error.
    original = simple(xref="hybrid", packed=(1, 2), info_entries=(b"/TDMReservation <FEFF0031>",))
    reader = pdfobjects.Reader(original)
    assert len(reader.sections()) == 2
    new, _, carriers, notes = tagging.tag_data(original, DENY_AI.for_work(), Options(), None)
    assert carriers == ["xmp", "info"] and notes == []
    assert rightsmeta.read(new).permissions == dict(DENY_AI.permissions)
    path = tmp_path / "hybrid.pdf"
    path.write_bytes(new)
    subprocess.run([qpdf, "--check", str(path)], check=True, capture_output=True)
