"""Fuzzing the EPUB package document (OPF) and container.xml as text, where tests/test_mutations.py
damages the zip around them (so most of its mutants fail the CRC before any XML is read).

For every damaged package document of a tagged EPUB: reading raises nothing, reports no bug of
ours and fails closed (reserved or an error, unless the statement's own bytes were hit); tagging
again raises nothing but rightsmeta's own errors, and what it writes reads back reserved.
"""

from __future__ import annotations

import os
import random
import re
import time

import pytest
from fuzzing import damage
from test_documents import CONTAINER, epub_bytes, opf_of

from rightsmeta import Assertion, api
from rightsmeta.errors import RightsmetaError
from rightsmeta.model import Purpose

DENY_AI = Assertion.build(deny=["ai"])
TAGGED_OPF = opf_of(api.tag_bytes(epub_bytes(), DENY_AI)).encode()
MUTANTS = int(os.environ.get("RIGHTSMETA_FUZZ_EXAMPLES", "200")) * 2
BOUND = 5.0
AI = (Purpose.AI_TRAINING, Purpose.GENAI_TRAINING, Purpose.AI_INFERENCE)
PROTECTED = [(m.start(), m.end()) for m in re.finditer(rb"<package[^>]*>|<metadata[^>]*>", TAGGED_OPF)] + [
    (m.start() - 40, m.end() + 40) for m in re.finditer(rb"notAllowed|reservation\">1", TAGGED_OPF)]
INSERTS = (b">", b"<", b"'", b'"', b"<!--", b"-->", b"<![CDATA[", b"]]>", b"&amp;", b"&x;", b"\xff", b"\x00", b"/>",
           b"<x/>", b"</metadata>", b"<?pi?>", b'<!DOCTYPE p [<!ENTITY x "y">]>')


def _epub(opf: bytes) -> bytes:
    return epub_bytes(members={"OEBPS/content.opf": opf})


def _check(epub: bytes) -> None:
    start = time.perf_counter()
    report = api.read(epub)
    assert not any("rightsmeta failed" in e for e in report.errors), report.errors
    assert report.errors or not any(report.may_use(p) for p in AI)
    try:
        tagged = api.tag_bytes(epub, DENY_AI)
    except RightsmetaError:
        pass
    else:
        again = api.read(tagged)
        assert not any(again.may_use(p) for p in AI), again.errors
    assert time.perf_counter() - start < BOUND


def test_damaged_package_documents_fail_closed() -> None:
    rng = random.Random(20261130)
    for _ in range(MUTANTS):
        _check(_epub(damage(TAGGED_OPF, PROTECTED, rng, INSERTS)))


@pytest.mark.parametrize("encoding", ["WTF-8", "shift_jis", "utf-16-be", "x-mac-japanese"])
@pytest.mark.parametrize("member", ["OEBPS/content.opf", "META-INF/container.xml"])
def test_package_documents_in_encodings_expat_cannot_use(member: str, encoding: str) -> None:
    """Found: a declared encoding expat does not know (LookupError) or cannot use (multi-byte,
    ValueError) was "rightsmeta failed on this file" on read, and an exception out of tag."""
    text = TAGGED_OPF.decode() if member.endswith(".opf") else CONTAINER
    epub = epub_bytes(members={member: re.sub(r'encoding="[^"]*"', f'encoding="{encoding}"', text).encode()})
    report = api.read(epub)
    assert report.errors and "rightsmeta failed" not in report.errors[0], report.errors
    with pytest.raises(RightsmetaError):
        api.tag_bytes(epub, DENY_AI)


@pytest.mark.parametrize(("member", "what"), [("OEBPS/content.opf", "the package document"),
                                            ("META-INF/container.xml", "META-INF/container.xml")])
def test_each_refusal_of_the_xml_readers_is_named(member: str, what: str) -> None:
    """The two readers' refusals (shared by both): an encoding expat cannot use, malformed XML, an
    entity (rightsmeta's own refusal in the OPF, defusedxml's in container.xml)."""
    text = TAGGED_OPF.decode() if member.endswith(".opf") else CONTAINER
    for change, words in ((lambda t: re.sub(r'encoding="[^"]*"', 'encoding="shift_jis"', t), "cannot be decoded (multi-byte"),
                          (lambda t: t.replace("</", "<", 1), "well-formed XML (mismatched tag"),
                          (lambda t: t.replace("?>", '?><!DOCTYPE x [<!ENTITY a "b">]>', 1), "entit" if what != member else "DTDForbidden")):
        report = api.read(epub_bytes(members={member: change(text).encode()}))
        assert f"{what} " in report.errors[0] and words in report.errors[0], report.errors


def test_the_undamaged_package_is_reserved() -> None:
    report = api.read(_epub(TAGGED_OPF))
    assert report.errors == [] and not report.may_use(Purpose.GENAI_TRAINING)
