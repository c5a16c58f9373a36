"""The tagged version of a PDF takes the objects it shares with the original as the original's
reader parsed them (pdfobjects.Reader._object_at): whatever it gets must equal what a fresh
reader of the tagged bytes gets, objects, errors and token budget alike, including when the
update redefines an object the original's parse depended on."""

from __future__ import annotations

import random
from pathlib import Path

from test_documents import DENY_AI
from test_pdf_fast import CATALOG, PAGES, build, info
from test_pdf_once import _fresh, _reading, _versions

import rightsmeta
from rightsmeta import Assertion
from rightsmeta.carriers import pdf, pdfobjects
from rightsmeta.errors import LeaveToLibrary
from rightsmeta.mediacheck import _reachable


def _read_all(reader: pdfobjects.Reader) -> None:
    """Everything a tag reads of the original (the writer's lookups and the content check's walk)."""
    for read in (pdf._fast_found, lambda r: _reachable(r, list(r.trailer.values()))):
        try:
            read(reader)
        except LeaveToLibrary:
            pass


def _objects(reader: pdfobjects.Reader | None, numbers: set[int]) -> object:
    """Every object as the reader gets it, in one order, and the budget left after."""
    if reader is None:
        return "left to pypdf"
    got: list[object] = []
    for num in sorted(numbers):
        try:
            got.append(reader.get(pdfobjects.Ref(num, 0)))
        except LeaveToLibrary:
            got.append("left to pypdf")
    return got, reader.budget


def test_objects_taken_from_the_original_equal_a_fresh_read(tmp_path: Path, qpdf: str) -> None:
    rng = random.Random("rightsmeta-reuse")
    shared = 0
    for name, original in _versions(tmp_path, qpdf).items():
        tagged = rightsmeta.tag_bytes(original, DENY_AI)
        versions = [tagged, rightsmeta.tag_bytes(tagged, Assertion.build(allow=["search"]))]
        for _ in range(20):  # damaged updates: the original's bytes kept, the appended ones mutated
            tail = bytearray(tagged[len(original):])
            at = rng.randrange(len(tail))
            tail[at:at + rng.randint(0, 3)] = bytes(rng.choice(b"0123456789 \n/<>[]Rxf") for _ in range(rng.randint(0, 3)))
            versions.append(original + bytes(tail))
        numbers = set(range(64))
        for version in versions:
            base = pdfobjects.Reader(original)
            _read_all(base)
            on_top, fresh = _fresh(version, base), _fresh(version)
            assert _reading(on_top) == _reading(fresh), name
            assert _objects(on_top, numbers) == _objects(fresh, numbers), name
            if on_top is not None:
                shared += sum(kept is base._at.get(at) for at, kept in on_top._at.items())
    assert shared > 100  # the comparison above did cover objects taken from the original


def _update(data: bytes, objects: dict[int, bytes], size: int, moved: dict[int, int] | None = None) -> bytes:
    """``data`` with an incremental update redefining ``objects``, written by hand; ``moved``:
    numbers whose entry points at an offset as it is."""
    out = bytearray(data)
    offsets = dict(moved or {})
    for num, body in objects.items():
        offsets[num] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (num, body)
    at = len(out)
    out += b"xref\n0 1\n0000000000 65535 f \n"  # a first subsection at 0: pypdf then trusts the offsets
    for num in sorted(offsets):
        out += b"%d 1\n%010d 00000 n \n" % (num, offsets[num])
    prev = int(data[data.rindex(b"startxref") + 9:].split()[0])
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 2 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (size, prev, at)
    return bytes(out)


def test_a_stream_whose_length_the_update_redefines_is_parsed_again() -> None:
    # Object 4's bytes are the same in both versions, but its /Length is object 5, which the
    # update changes: taken from the original, the stream would keep its old extent.
    data = b"0123456789"
    objects = {1: CATALOG, 2: info(), 3: PAGES, 4: b"<< /Length 5 0 R >>\nstream\n%s\nendstream" % data, 5: b"10"}
    original = build(objects)
    base = pdfobjects.Reader(original)
    assert base.get(pdfobjects.Ref(4, 0)).end - base.get(pdfobjects.Ref(4, 0)).start == 10
    for length in (b"4", b"12", b"(ten)"):
        version = _update(original, {5: length}, 6)
        assert _objects(_fresh(version, base), {4, 5}) == _objects(_fresh(version), {4, 5})
        assert _objects(_fresh(version), {4})[0] == ["left to pypdf"]  # the new length does not fit
    # The same update leaving the length alone: the stream is the same, and read right.
    version = _update(original, {5: b"10"}, 6)
    assert _objects(_fresh(version, base), {4}) == _objects(_fresh(version), {4})


def test_an_entry_pointing_at_another_objects_bytes_is_refused_as_before() -> None:
    # The update says object 6 is where the original's object 3 lies: that offset holds "3 0 obj",
    # which a fresh reader refuses (pypdf searches the file); the parse kept for 3 must not serve 6.
    original = build({1: CATALOG.replace(b" /Metadata 4 0 R", b""), 2: info(), 3: PAGES})
    base = pdfobjects.Reader(original)
    _read_all(base)
    at = original.index(b"3 0 obj")
    assert at in base._at
    version = _update(original, {}, 7, moved={6: at})
    assert _objects(_fresh(version, base), {3, 6}) == _objects(_fresh(version), {3, 6})
    assert _objects(_fresh(version), {6})[0] == ["left to pypdf"]
