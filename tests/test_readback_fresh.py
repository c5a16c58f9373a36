"""The read-back of a fresh packet (xmp._fresh_report): a file tagged without XMP before has its
packet read as its run's template was read, the work id and date put in. The tag's read-back must
see exactly what a full read of the new file sees, whatever the words; these tests compare the two
on every writable kind, on words with markup, quotes, line ends and non-ASCII text, and check that
anything but the packet the writer made is read in full."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from samples import image_bytes
from test_documents import pdf_bytes

from rightsmeta import reading, xmp
from rightsmeta.carriers import Options, Parsed, detect
from rightsmeta.model import Assertion
from rightsmeta.report import FileReport

KINDS = ("jpeg", "png", "webp", "tiff", "pdf")


def _original(kind: str, seed: int = 1) -> bytes:
    return pdf_bytes() if kind == "pdf" else image_bytes(kind, seed=seed, exif=seed % 2 == 0)


def _written(data: bytes, assertion: Assertion) -> tuple[bytes, Parsed]:
    """The tagged bytes, as ``tagging.tag_data``'s writer makes them, and that file's memo."""
    parsed = Parsed()
    found = detect(data[:64], data)
    assert found is not None
    family, fmt = found
    new, _ = family.write(data, fmt, assertion, Options(parsed=parsed))
    return bytes(new), parsed


def _both(new: bytes, parsed: Parsed) -> tuple[FileReport, FileReport]:
    """The tag's read-back of ``new`` (with the file's memo) and a full read of it."""
    return reading.read_source(new, None, Options(located={}, parsed=parsed)), reading.read_source(new, None, Options(located={}))


def _same(fast: FileReport, full: FileReport) -> None:
    assert fast.to_json() == full.to_json()
    assert fast.carriers == full.carriers  # the signals' raw values and exactness too
    assert fast.decision == full.decision


_TEXTS = ("plain", "a & b < c > d", 'say "no"', "line\nbreak\ttab\rreturn", "Ünïcödé 絵 🎨", "  spaced  ",
          "x" * 300, "&amp; &#13; ]]> <!-- -->", "00000000-0000-4000-8000-000000000000", "2000-01-01T00:00:00+00:00")
_PURPOSES = ("data-mining", "ai-training", "genai-training", "ai-inference", "search")


def _words(rng: random.Random) -> Assertion:
    purposes = list(_PURPOSES)
    rng.shuffle(purposes)
    deny, allow, constrain = purposes[:rng.randint(0, 2)], purposes[2:rng.randint(2, 4)], purposes[4:]
    if not deny and not allow and not constrain:
        deny = ["ai"]
    text = lambda: rng.choice(_TEXTS)  # noqa: E731
    holder = text() if rng.random() < 0.5 else None
    return Assertion.build(
        deny=deny, allow=allow, constrain=[(p, text()) for p in constrain],
        holder=holder, contact=(rng.choice(("mailto:a@b.example", "https://x.example/?a=1&b=<2>"))
                                if holder and rng.random() < 0.5 else None),
        copyright=text() if rng.random() < 0.5 else None,
        web_statement="https://example.org/terms?a=1&b=2" if rng.random() < 0.3 else None,
        policy="https://example.org/policy.json" if rng.random() < 0.3 else None,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_the_read_back_of_a_fresh_packet_is_a_full_read(kind: str) -> None:
    rng = random.Random(kind)
    for i in range(12):
        words = _words(rng)
        for _ in range(2):  # the second file of a run reads from the template the first one read
            new, parsed = _written(_original(kind, seed=i), words.for_work())
            _same(*_both(new, parsed))


@pytest.mark.parametrize("kind", KINDS)
def test_the_fresh_packet_is_not_parsed_again(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not an empty comparison: the tag's read-back takes the template's reading (the first file of
    the words reads the template; the next ones parse nothing)."""
    words = Assertion.build(deny=("ai",), holder="A & B <C>", copyright="© 2026")
    first, parsed = _written(_original(kind), words.for_work())
    reading.read_source(first, None, Options(located={}, parsed=parsed))
    new, parsed = _written(_original(kind, seed=2), words.for_work())
    full = reading.read_source(new, None, Options(located={}))
    other = reading.read_source(first, None, Options(located={})).rights["work_id"]

    def refused(packet: bytes, **_: Any) -> Any:
        raise AssertionError("the fresh packet was parsed again")

    monkeypatch.setattr(xmp, "read", refused)
    fast = reading.read_source(new, None, Options(located={}, parsed=parsed))
    _same(fast, full)
    assert not fast.errors and fast.rights["work_id"] != other


@pytest.mark.parametrize("kind", KINDS)
def test_an_id_or_date_that_is_not_plain_text_is_read_in_full(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Such text would not come back as it went in (an invalid XML character is an error)."""
    words = Assertion.build(deny=("ai",))
    _both(*_written(_original(kind), words.for_work()))  # the template read: what follows parses the file's packet
    for work_id, date in (("a&b", "2026-01-01"), ("id", "2026 01 01"), ("id", "<x/>"), ("é", "2026"), ("", "2026"),
                          ("a\x01b", "2026"), ("id", "2026\ufffe"), ("i d", "2026\r")):
        assertion = replace(words.for_work(), work_id=work_id or None, date=date)
        new, parsed = _written(_original(kind), assertion)
        calls: list[bytes] = []
        monkeypatch.setattr(xmp, "read", _counting(calls, xmp.read))
        fast, full = _both(new, parsed)
        monkeypatch.undo()
        _same(fast, full)
        assert len(calls) == 2, (work_id, date)  # the read-back and the full read


@pytest.mark.parametrize("kind", KINDS)
def test_odd_plain_ids_and_dates_read_as_a_full_read(kind: str) -> None:
    """Plain text the shortcut takes but no tag would write (a lone sign, 64 characters, a date
    that is no date, the two samples swapped): the reading must still be a full read's. A decoder
    that one day checks an id's or a date's form would pass both samples and fail here."""
    words = Assertion.build(deny=("ai",), copyright="2000-01-01T00:00:00+00:00")
    for work_id, date in (("-", "+"), ("a" * 64, "Z"), ("x", "x" * 64), ("2026", "00000000-0000-4000-8000-000000000000"),
                          ("ffffffff-ffff-4fff-bfff-ffffffffffff", "2000-01-01T00:00:00+00:00"), ("0", "9999-99-99")):
        for _ in range(2):  # the second through the template the first one read
            new, parsed = _written(_original(kind), replace(words.for_work(), work_id=work_id, date=date))
            _same(*_both(new, parsed))


def _counting(calls: list[bytes], read: Any) -> Any:
    def counted(packet: bytes, **kw: Any) -> Any:
        calls.append(packet)
        return read(packet, **kw)

    return counted


def test_only_the_written_packet_or_it_padded_is_taken() -> None:
    words = Assertion.build(deny=("ai",))
    packet = xmp.fresh_packet(words.for_work())
    padded = xmp.pad(packet, len(packet) + 500)
    assert xmp._same_packet(packet, packet) and xmp._same_packet(padded, packet)
    cut = packet.rfind(b"<?xpacket end")
    assert not xmp._same_packet(padded[:cut] + b"x" + padded[cut + 1:], packet)  # not whitespace
    assert not xmp._same_packet(packet[:-1], packet)
    assert not xmp._same_packet(packet.replace(b"<rdf:RDF>", b"<rdf:RDF> "), packet)  # inside the root
    assert not xmp._same_packet(padded + b"<x/>", packet)


def test_a_reading_that_depends_on_the_id_or_date_reads_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Were a decoder to look into the date, the template's reading would not be taken."""
    read = xmp.read

    def checking(packet: bytes, **kw: Any) -> xmp.XmpReading:
        reading = read(packet, **kw)
        if b"2099-" in packet:
            reading.errors.append("a date in the future")
        return reading

    monkeypatch.setattr(xmp, "read", checking)
    assertion = replace(Assertion.build(deny=("ai",)).for_work(), date="2099-01-01T00:00:00+00:00")
    new, parsed = _written(_original("png"), assertion)
    fast, full = _both(new, parsed)
    _same(fast, full)
    assert any("future" in e for e in fast.errors)


def test_each_report_is_its_own() -> None:
    """Reports made from one template share no dict or list a caller may change."""
    words = Assertion.build(deny=("ai",), holder="H")
    a, pa = _written(_original("png"), words.for_work())
    b, pb = _written(_original("png"), words.for_work())
    ra = reading.read_source(a, None, Options(located={}, parsed=pa)).carriers[0]
    rb = reading.read_source(b, None, Options(located={}, parsed=pb)).carriers[0]
    ra.errors.append("x")
    ra.values["x"] = "y"
    ra.rights["x"] = "y"
    ra.rights["holder"]["name"] = "changed"
    assert "x" not in rb.errors and "x" not in rb.values and "x" not in rb.rights
    assert rb.rights["holder"] == {"name": "H"}


def test_options_but_is_dataclasses_replace() -> None:
    """``Options.but`` (what a tag copies its options with, twice a file) gives what ``replace`` gives,
    every field (those not compared too), for options with every field set or left."""
    from dataclasses import fields

    parsed, located = Parsed(), {"jpeg": [(1, 2)]}
    for options in (Options(), Options(password="pw", trust_anchors=b"PEM", located={}, parsed=Parsed())):
        for new_located, new_parsed in ((None, None), (located, parsed), ({}, None)):
            made, wanted = options.but(located=new_located, parsed=new_parsed), replace(
                options, located=new_located, parsed=new_parsed)
            assert type(made) is Options and made == wanted and hash(made) == hash(wanted)
            for f in fields(Options):
                assert getattr(made, f.name) is getattr(wanted, f.name), f.name
            with pytest.raises(AttributeError):
                made.password = "changed"  # type: ignore[misc]
