"""PDF objects read straight from the bytes: the trailer, the catalog, the Info dictionary and the
metadata stream, so that reading a PDF's rights signals needs no pypdf.

A scan reads millions of files; pypdf costs ~0.1 s to import and ~0.4 ms to parse even a tiny PDF,
for a handful of objects. This reader follows the cross-reference chain (classic tables and
cross-reference streams, incremental updates, hybrid files, object streams) to the objects asked
for and parses only those (and the object streams holding them).

It must give exactly what pypdf gives (tests/test_pdf_fast.py compares the two), so it is
narrow on purpose: wherever pypdf would repair, guess or warn — a wrong offset, a free or missing
object, an unusual filter, encryption, a comment between tokens, a /Prev loop — it raises
``LeaveToLibrary`` and the caller reads the file with pypdf. Its tokenizer follows pypdf's rules (where a
number or a name ends, what makes a reference), and so does its merging of incremental updates
(per generation, the first offset met reading newest first); where pypdf departs from the
standard there (a free entry in a newer section does not hide an older object), it is left to pypdf.

Hostile input: every offset is checked against the buffer; inflation, tokens, nesting depth,
cross-reference sections and entries are bounded; the buffer (bytes or a read-only mmap) is only
sliced in small pieces, never copied whole.
"""

from __future__ import annotations

import codecs
import mmap
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import LeaveToLibrary
from . import splice

if TYPE_CHECKING:
    from . import Parsed
    from .splice import Spliced

Buffer = bytes | mmap.mmap

MAX_SECTIONS = 100  # cross-reference sections (incremental updates) followed
MAX_TOKENS = 100_000  # tokens parsed in one file, object streams included
MAX_DEPTH = 32  # nesting of arrays and dictionaries
MAX_ENTRIES = 2_000_000  # cross-reference stream entries, pypdf's own limit
MAX_CHECKED = 100_000  # object headers checked when a table does not start at object 0
MAX_STRUCTURE = 16 * 1024 * 1024  # inflated cross-reference or object stream (pypdf allows 75 MB)
MAX_DECLARED = 75_000_000  # pypdf refuses a larger /Length
MAX_COLUMNS = 250_000  # pypdf's limit for predictor columns
MAX_STRING = 1024 * 1024  # one string object

# The whitespace this reader accepts between tokens. pypdf also skips NUL in most places, and
# vertical tab in some: any such byte stops this reader (LeaveToLibrary), which is always safe.
_SPACE = re.compile(rb"[\t\n\f\r ]*")
# pypdf's own set, used where its exact reach decides the outcome (is "stream" next?).
_PYPDF_SPACE = re.compile(rb"[\x00\t\n\f\r ]*")
# One token after optional whitespace: 1 a name, 2-3 a reference, 4 a number (ending where
# pypdf's does, at the first byte outside [+,-.0-9]), 5 a delimiter or keyword.
_TOKEN = re.compile(
    rb"[\t\n\f\r ]*(?:"
    rb"(/[^\x00-\x20\x7f-\xff()<>\[\]{}/%#]*(?:#[0-9A-Fa-f]{2}[^\x00-\x20\x7f-\xff()<>\[\]{}/%#]*)*)"
    rb"|([0-9]{1,10})[\t\n\f\r ]+([0-9]{1,10})[\t\n\f\r ]+R(?![a-zA-Z])"
    rb"|([+,\-.0-9]{1,20})"
    rb"|(<<|>>|\[|\]|\(|<|true|false|null))"
)
_KEYWORDS = {b"true": True, b"false": False, b"null": None}
_CLOSE_ARRAY = re.compile(rb"[\t\n\f\r ]*\]")
_NAME_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
_NAME_END = frozenset(b" \t\n\r\f\x0b()<>[]{}/%")  # where pypdf ends a name
_INT = re.compile(rb"[+-]?[0-9]+")
_REAL = re.compile(rb"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+)")
# pypdf takes "N G R" for a reference when this pattern matches its next 20 bytes.
_PYPDF_REF = re.compile(rb"[+-]?(\d+)\s+(\d+)\s+R[^a-zA-Z]")
_STRING_SPECIAL = re.compile(rb"[()\\]")
_SPACES = re.compile(rb" *")
_HEX_DIGITS = re.compile(rb"[0-9A-Fa-f]*")
# "N G obj", after any white space (pdf.py's checks of the newest table find objects by it too).
OBJECT_HEADER = re.compile(rb"[\t\n\f\r ]*([0-9]{1,10})[\t\n\f\r ]+([0-9]{1,10})[\t\n\f\r ]+obj")
# Bytes past a value's end that parsing it may look at (pypdf's 20-byte look-ahead for numbers).
_LOOK_AHEAD = 32
_TAIL = re.compile(rb"[\r\n]startxref[\t ]*[\r\n]+[\t ]*([0-9]{1,20})[\t ]*[\r\n]+%%EOF[\t\n\f\r ]*\Z")
# A classic table's subsection header ("first count"), with the white space before and after it.
_SUBSECTION = re.compile(rb"[\t\n\f\r ]*([0-9]{1,10})[\t\n\f\r ]+([0-9]{1,10})[\t\n\f\r ]*")
# The same header on a line of its own ("3 1"), as writers lay it out, and with one stray byte
# where its line end belongs (what laid_out_table reads).
_SUBSECTION_LINE = re.compile(rb"[\t\n\f\r ]*([0-9]{1,10}) ([0-9]{1,10})[\t ]*(?:\r\n|\r|\n)")
_SUBSECTION_RUN = re.compile(rb"[\t\n\f\r ]*([0-9]{1,10}) ([0-9]{1,10})[^\t\n\f\r 0-9]")
# Classic entries exactly as the standard writes them, 20 bytes each; one in use, its generation captured.
_ENTRY = rb"[0-9]{10} [0-9]{5} [fn](?: \r| \n|\r\n)"
_ENTRIES = re.compile(rb"(?:%s)*" % _ENTRY)
_ANY_ENTRY = re.compile(_ENTRY)
IN_USE_ENTRY = re.compile(rb"[0-9]{10} ([0-9]{5}) n(?: \r| \n|\r\n)")
# Where a revision ends: "startxref", then the offset of its cross-reference section.
STARTXREF_AT = re.compile(rb"startxref[\t\n\f\r ]+([0-9]{1,20})")
MAX_SUBSECTIONS = 100_000  # of the newest table walked by laid_out_table and newest_offsets
_PAIR = re.compile(rb"[\t\n\f\r ]*([0-9]{1,10})[\t\n\f\r ]+([0-9]{1,10})")

_ESCAPES = {ord("n"): 0x0A, ord("r"): 0x0D, ord("t"): 0x09, ord("b"): 0x08, ord("f"): 0x0C}
# pypdf drops the backslash before these and keeps it before any other unknown character.
_ESCAPES.update({c: c for c in b"()/\\ %<>[]#_&$"})


class TooLarge(LeaveToLibrary):
    """A stream inflates to more than the caller's limit (for structure streams: read with pypdf)."""


@dataclass(frozen=True)
class Ref:
    num: int
    gen: int


@dataclass
class Stream:
    """A stream object: its dictionary and where its raw (still encoded) bytes lie."""

    dictionary: dict[str, Any]
    start: int
    end: int


# --- text strings ------------------------------------------------------------------------------

# PDFDocEncoding where it differs from Latin-1 (ISO 32000-1 annex D), as pypdf's table has it.
_PDFDOC = {
    0x18: "\u02d8", 0x19: "\u02c7", 0x1A: "\u02c6", 0x1B: "\u02d9", 0x1C: "\u02dd", 0x1D: "\u02db",
    0x1E: "\u02da", 0x1F: "\u02dc", 0x80: "\u2022", 0x81: "\u2020", 0x82: "\u2021", 0x83: "\u2026",
    0x84: "\u2014", 0x85: "\u2013", 0x86: "\u0192", 0x87: "\u2044", 0x88: "\u2039", 0x89: "\u203a",
    0x8A: "\u2212", 0x8B: "\u2030", 0x8C: "\u201e", 0x8D: "\u201c", 0x8E: "\u201d", 0x8F: "\u2018",
    0x90: "\u2019", 0x91: "\u201a", 0x92: "\u2122", 0x93: "\ufb01", 0x94: "\ufb02", 0x95: "\u0141",
    0x96: "\u0152", 0x97: "\u0160", 0x98: "\u0178", 0x99: "\u017d", 0x9A: "\u0131", 0x9B: "\u0142",
    0x9C: "\u0153", 0x9D: "\u0161", 0x9E: "\u017e", 0xA0: "\u20ac",
}
# Bytes PDFDocEncoding leaves undefined: pypdf then keeps the string as bytes.
_PDFDOC_UNDEFINED = frozenset(b"\x00\x16\x7f\x9f\xad")


def text_string(raw: bytes) -> str:
    """A PDF string as text, exactly as pypdf's ``create_string_object`` and then ``str()``
    decode it, or as Latin-1 where pypdf keeps undecodable bytes (rightsmeta reads those so)."""
    try:
        if raw.startswith(codecs.BOM_UTF8):
            try:
                return raw[len(codecs.BOM_UTF8):].decode("utf-8")
            except UnicodeDecodeError:
                pass  # pypdf then reads the whole string, BOM included, as PDFDocEncoding
        elif raw.startswith((codecs.BOM_UTF16_BE, codecs.BOM_UTF16_LE)):
            return raw.decode("utf-16")
        # pypdf's guesses for UTF-16 without a byte order mark.
        elif raw.startswith(b"\x00"):
            return raw.decode("utf-16be")
        elif raw[1:2] == b"\x00":
            return raw.decode("utf-16le")
        if _PDFDOC_UNDEFINED.intersection(raw):
            return raw.decode("latin-1")
        return raw.decode("latin-1").translate(_PDFDOC)
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# --- objects -----------------------------------------------------------------------------------


class _Parser:
    """Objects from one buffer: the file itself, or an object stream's inflated bytes."""

    def __init__(self, buf: Buffer, reader: Reader, *, streams: bool):
        self.buf, self.end, self.reader, self.streams = buf, len(buf), reader, streams

    def skip(self, pos: int) -> int:
        found = _SPACE.match(self.buf, pos)
        return found.end() if found else pos

    def value(self, pos: int, depth: int = 0) -> tuple[Any, int]:
        """The object after any whitespace at ``pos``, and the offset after it."""
        reader = self.reader
        reader.budget -= 1
        if reader.budget < 0:
            raise LeaveToLibrary
        token = _TOKEN.match(self.buf, pos)
        if token is None:
            raise LeaveToLibrary  # a comment, "endobj" where a value belongs, or garbage
        kind = token.lastindex
        if kind == 1:
            return self.name(token), token.end()
        if kind == 3:
            # pypdf sees "N G R" only when it fits its 20-byte look-ahead with a byte after it.
            if token.end() - token.start(2) >= 20 or token.end() >= self.end:
                raise LeaveToLibrary
            return Ref(int(token[2]), int(token[3])), token.end()
        if kind == 4:
            return self.number(token), token.end()
        if kind == 5:
            word = token[5]
            if word == b"<<":
                return self.dictionary(token.end(), depth)
            if word == b"[":
                return self.array(token.end(), depth)
            if word == b"(":
                return self.literal_string(token.start(5))
            if word == b"<":
                return self.hex_string(token.start(5))
            if word in _KEYWORDS:
                return _KEYWORDS[word], token.end()
        raise LeaveToLibrary  # ">>" or "]" where a value belongs

    def name(self, token: re.Match[bytes]) -> str:
        if token.end() < self.end and self.buf[token.end()] not in _NAME_END:
            raise LeaveToLibrary  # a byte pypdf would take into the name and this reader does not
        raw = token[1][1:]
        if len(raw) > 4000:
            raise LeaveToLibrary  # pypdf cuts long names
        if b"#" in raw:
            raw = _NAME_ESCAPE.sub(lambda m: bytes((int(m[1], 16),)), raw)
        try:
            return "/" + raw.decode("utf-8")
        except UnicodeDecodeError:
            raise LeaveToLibrary from None  # pypdf tries further encodings

    def number(self, token: re.Match[bytes]) -> int | float:
        start = token.start(4)
        # A number token as long as pypdf's look-ahead, or a reference by pypdf's looser
        # pattern (a sign, a vertical tab), is read differently by pypdf.
        if token.end() - start >= 20 or _PYPDF_REF.match(self.buf, start, min(start + 20, self.end)):
            raise LeaveToLibrary
        text = token[4]
        if _INT.fullmatch(text):
            return int(text)
        if _REAL.fullmatch(text):
            return float(text)
        raise LeaveToLibrary

    def literal_string(self, pos: int) -> tuple[bytes, int]:
        # pypdf's reading, quirks included: an unknown escape keeps its backslash, an octal
        # escape above 255 is a backslash followed by the digits, a backslash before a line end
        # also swallows one more CR or LF.
        buf, out, depth, i = self.buf, bytearray(), 1, pos + 1
        limit = min(self.end, pos + MAX_STRING)
        while True:
            self.reader.budget -= 1
            found = _STRING_SPECIAL.search(buf, i, limit)
            if found is None or self.reader.budget < 0:
                raise LeaveToLibrary
            j = found.start()
            out += buf[i:j]
            c = buf[j]
            if c == 0x28:
                depth += 1
                out.append(c)
                i = j + 1
                continue
            if c == 0x29:
                depth -= 1
                if depth == 0:
                    return bytes(out), j + 1
                out.append(c)
                i = j + 1
                continue
            if j + 1 >= limit:
                raise LeaveToLibrary
            e = buf[j + 1]
            if e in _ESCAPES:
                out.append(_ESCAPES[e])
                i = j + 2
            elif 0x30 <= e <= 0x37:
                k = j + 2
                while k < j + 4 and k < limit and 0x30 <= buf[k] <= 0x37:
                    k += 1
                if k >= limit:
                    raise LeaveToLibrary
                code = int(buf[j + 1:k], 8)
                if code > 255:
                    out.append(0x5C)
                    i = j + 1
                else:
                    out.append(code)
                    i = k
            elif e in b"\r\n":
                i = j + 2
                if i < limit and buf[i] in b"\r\n":
                    i += 1
            else:
                out += bytes((0x5C, e))
                i = j + 2

    def hex_string(self, pos: int) -> tuple[bytes, int]:
        close = self.buf.find(b">", pos + 1, pos + 1 + 2 * MAX_STRING)
        if close < 0:
            raise LeaveToLibrary
        digits = bytes(self.buf[pos + 1:close]).translate(None, b"\x00\t\n\f\r ")
        if not _HEX_DIGITS.fullmatch(digits):
            raise LeaveToLibrary
        if len(digits) % 2:
            digits += b"0"
        return bytes.fromhex(digits.decode("ascii")), close + 1

    def array(self, pos: int, depth: int) -> tuple[list[Any], int]:
        if depth >= MAX_DEPTH:
            raise LeaveToLibrary
        items: list[Any] = []
        while True:
            close = _CLOSE_ARRAY.match(self.buf, pos)
            if close is not None:
                return items, close.end()
            item, pos = self.value(pos, depth + 1)
            items.append(item)

    def dictionary(self, pos: int, depth: int) -> tuple[Any, int]:
        if depth >= MAX_DEPTH:
            raise LeaveToLibrary
        entries: dict[str, Any] = {}
        while True:
            token = _TOKEN.match(self.buf, pos)
            if token is None:
                raise LeaveToLibrary
            if token.lastindex == 5 and token[5] == b">>":
                pos = token.end()
                break
            if token.lastindex != 1:
                raise LeaveToLibrary
            key = self.name(token)
            if key in entries:
                raise LeaveToLibrary  # pypdf keeps the first and warns
            entries[key], pos = self.value(token.end(), depth + 1)
        # pypdf takes any dictionary followed by the keyword "stream" for a stream.
        after = _PYPDF_SPACE.match(self.buf, pos)
        if after is not None and self.buf[after.end():after.end() + 6] == b"stream":
            if depth > 0 or not self.streams:
                raise LeaveToLibrary
            return self.stream(entries, after.end() + 6)
        return entries, pos

    def stream(self, entries: dict[str, Any], pos: int) -> tuple[Stream, int]:
        # As pypdf reads it: spaces, then CR LF, LF or a lone CR; /Length bytes; "endstream".
        spaces = _SPACES.match(self.buf, pos)
        pos = spaces.end() if spaces else pos
        eol = self.buf[pos:pos + 2]
        if eol[:1] == b"\n":
            pos += 1
        elif eol[:1] == b"\r":
            pos += 2 if eol == b"\r\n" else 1
        else:
            raise LeaveToLibrary
        length = entries.get("/Length")
        if isinstance(length, Ref):
            length = self.reader.get(length)
        if type(length) is not int or not 0 <= length <= MAX_DECLARED or pos + length > self.end:
            raise LeaveToLibrary  # pypdf would search for "endstream" or refuse the length
        after = _PYPDF_SPACE.match(self.buf, pos + length)
        assert after is not None
        if self.buf[after.end():after.end() + 9] != b"endstream":
            raise LeaveToLibrary
        return Stream(entries, pos, pos + length), after.end() + 9


# --- cross-reference sections ------------------------------------------------------------------


@dataclass
class _Section:
    """One cross-reference table or stream: subsections of (first object, count, where)."""

    subsections: list[tuple[int, int, int]]
    data: bytes | None = None  # a stream's inflated entries; None for a classic table
    widths: tuple[int, int, int] = (0, 0, 0)
    companion: bool = False  # a hybrid file's /XRefStm: the same revision as the table before it

    def entries(self, buf: Buffer, num: int) -> Iterator[tuple[int, int, int]]:
        """Every entry for ``num``, in the order pypdf reads them, as (type, field 2, field 3):
        type 0 free, 1 at an offset (offset, generation), 2 in an object stream (stream, index)."""
        for first, count, where in self.subsections:
            if not first <= num < first + count:
                continue
            if self.data is None:
                line = _line(buf, where, num - first)
                yield (1 if line[17] == 0x6E else 0), int(line[:10]), int(line[11:16])
            else:
                yield self._row(where + num - first)

    def rows(self, buf: Buffer) -> Iterator[tuple[int, int, int, int]]:
        """Every entry as (object number, type, field 2, field 3)."""
        for first, count, where in self.subsections:
            for i in range(count):
                if self.data is None:
                    line = _line(buf, where, i)
                    yield first + i, (1 if line[17] == 0x6E else 0), int(line[:10]), int(line[11:16])
                else:
                    yield (first + i, *self._row(where + i))

    def _row(self, index: int) -> tuple[int, int, int]:
        assert self.data is not None
        w0, w1, w2 = self.widths
        at = index * (w0 + w1 + w2)
        kind = int.from_bytes(self.data[at:at + w0], "big") if w0 else 1  # a missing type is 1
        second = int.from_bytes(self.data[at + w0:at + w0 + w1], "big")
        third = int.from_bytes(self.data[at + w0 + w1:at + w0 + w1 + w2], "big")
        return kind, second, third


def _line(buf: Buffer, where: int, i: int) -> bytes:
    """The ``i``-th 20-byte entry of a classic subsection whose entries start at ``where``."""
    return buf[where + 20 * i:where + 20 * i + 20]


# --- the newest section, read without the chain ---------------------------------------------------
# pdf.py's checks of the newest revision (carriers/pdf.py, check_newest_*) judge what pypdf made of
# a damaged file, where Reader has stepped aside: they read the newest table as it is laid out,
# leniently, and never follow the chain.


def newest_section_at(buf: Buffer) -> tuple[int, int]:
    """Where the last "startxref" starts, and the offset it gives (the file's size where it gives none)."""
    start = buf.rfind(b"startxref")
    found = STARTXREF_AT.match(buf, start) if start >= 0 else None
    return start, int(found[1]) if found is not None else len(buf)


def newest_offsets(buf: Buffer, wanted: set[int]) -> dict[int, int]:
    """The offsets the cross-reference section the last ``startxref`` names gives the ``wanted``
    objects (in use; a classic table read leniently): {} where there is no such section."""
    pos = newest_section_at(buf)[1]
    if buf[pos:pos + 4] != b"xref":
        stream = newest_section(buf)
        if stream is None:
            return {}
        return {num: second for num, kind, second, _ in stream.rows(buf) if kind == 1 and num in wanted}
    offsets: dict[int, int] = {}
    pos += 4
    while True:  # each subsection takes bytes: bounded by the file
        head = _SUBSECTION.match(buf, pos)
        if head is None:
            return offsets
        first, count = int(head[1]), int(head[2])
        for num in wanted:
            entry = _line(buf, head.end(), num - first)
            if first <= num < first + count and entry[:10].isdigit() and entry[17:18] == b"n":
                offsets[num] = int(entry[:10])
        if count == 0:
            return offsets
        pos = head.end() + 20 * count


@dataclass
class Table:
    """The newest cross-reference section (the last ``startxref`` names): a classic table as laid
    out in the bytes, or a cross-reference stream's entries."""

    at: int  # where "xref" or the stream's object starts
    subsections: list[tuple[int, int, int]]  # (first object, count, where its 20-byte entries start / its first row)
    trailer: bytes  # from "trailer" to the last "startxref"; b"" for a stream (its ``dictionary``)
    damaged: int | None = None  # where a subsection header runs into its first entry, one stray byte between
    stream: _Section | None = None  # a cross-reference stream's entries
    dictionary: dict[str, Any] = field(default_factory=dict)  # a cross-reference stream's dictionary
    left: int = 0  # bytes of a stream's entries beyond the rows its /Index lists (below 0: too few)

    @property
    def update(self) -> bool:
        """Whether the section is an incremental update's (it names an older one, /Prev)."""
        return b"/Prev" in self.trailer or "/Prev" in self.dictionary

    @property
    def hybrid(self) -> bool:
        """A hybrid file's table, which lists free what its /XRefStm puts in an object stream."""
        return b"/XRefStm" in self.trailer or "/XRefStm" in self.dictionary

    @property
    def packed(self) -> bool:
        """Whether a stream puts an object in an object stream (an entry of type 2)."""
        if self.stream is None or not self.stream.data or not self.stream.widths[0]:
            return False  # no type field: every entry is of type 1
        width = sum(self.stream.widths)
        return b"\x02" in self.stream.data[self.stream.widths[0] - 1::width]

    def entry(self, buf: Buffer, num: int) -> bytes | None:
        """The 20 bytes of a classic table's first entry for object ``num``; None if none lists it."""
        for first, count, where in self.subsections:
            if first <= num < first + count:
                return bytes(_line(buf, where, num - first))
        return None

    def find(self, buf: Buffer, num: int) -> tuple[int, int, int, str] | None:
        """The first entry for object ``num``, as (type, field 2, field 3, as shown in a message),
        type -1 for a classic entry not laid out as the standard writes it; None if none lists it."""
        if self.stream is not None:
            found = next(self.stream.entries(buf, num), None)
            return None if found is None else (*found, f"type {found[0]}, {found[1]}, {found[2]}")
        line = self.entry(buf, num)
        return None if line is None else _classic(line)

    def rows(self, buf: Buffer) -> Iterator[tuple[int, int, int, int]]:
        """Every entry, as (object number, type, field 2, field 3), type -1 as in ``find``."""
        if self.stream is not None:
            rows = len(self.stream.data or b"") // max(1, sum(self.stream.widths))
            for num, kind, second, third in self.stream.rows(buf):
                if rows <= 0:
                    return  # the stream holds fewer rows than its /Index lists
                rows -= 1
                yield num, kind, second, third
            return
        for first, count, where in self.subsections:
            for i in range(count):
                yield (first + i, *_classic(bytes(_line(buf, where, i)))[:3])


def _classic(line: bytes) -> tuple[int, int, int, str]:
    shown = repr(line[:18].decode("latin-1"))
    if IN_USE_ENTRY.fullmatch(line):
        return 1, int(line[:10]), int(line[11:16]), shown
    if _ANY_ENTRY.fullmatch(line):
        return 0, int(line[:10]), int(line[11:16]), shown
    return -1, 0, 0, shown


def newest_section(buf: Buffer, pdf: Reader | None = None) -> Table | None:
    """``laid_out_table``, or where the last ``startxref`` names a cross-reference stream, its
    entries (taken from ``pdf``, the reader of the chain, when it read them): None where there is
    neither, or the stream is not one this module reads."""
    table = laid_out_table(buf)
    if table is not None:
        return table
    at = newest_section_at(buf)[1]
    if pdf is not None and pdf._section_offsets and pdf._section_offsets[0] == at and pdf._sections[0].data is not None:
        section, dictionary = pdf._sections[0], pdf.newest or {}
    else:
        if not buf[at:at + 1].isdigit():
            return None
        try:
            stream, section, _, _, _ = Reader(buf, chain=False).xref_stream_at(at)
        except LeaveToLibrary:
            return None
        dictionary = stream.dictionary
    assert section.data is not None
    rows = sum(count for _, count, _ in section.subsections)
    return Table(at, section.subsections, b"", None, section, dictionary, len(section.data) - rows * sum(section.widths))


def laid_out_table(buf: Buffer) -> Table | None:
    """The newest classic table, where every subsection is followed, 20 bytes an entry later, by
    the next subsection's header or by "trailer": then each entry's place is sure, however
    damaged its bytes. None for a cross-reference stream, or a table laid out otherwise (entries
    of 19 or 21 bytes, which pypdf realigns: nothing here can say which entry is which)."""
    start, pos = newest_section_at(buf)
    table = pos
    if buf[pos:pos + 4] != b"xref":
        return None
    subsections: list[tuple[int, int, int]] = []
    damaged = None
    pos += 4
    while len(subsections) < MAX_SUBSECTIONS:
        head = _SUBSECTION_LINE.match(buf, pos)
        if head is None:
            # Its line end overwritten ("3 1\x7f0000000474 00000 n"): the entries still laid out
            # after the stray byte (the walk to "trailer" checks it) say which it is.
            head = _SUBSECTION_RUN.match(buf, pos)
            if head is not None and _ANY_ENTRY.fullmatch(bytes(buf[head.end():head.end() + 20])):
                damaged = head.end() - 1
            else:
                head = None
        if head is None:
            following = _SPACE.match(buf, pos)
            if following is None or buf[following.end():following.end() + 7] != b"trailer" or not subsections:
                return None
            return Table(table, subsections, bytes(buf[following.end():start]), damaged)
        first, count = int(head[1]), int(head[2])
        subsections.append((first, count, head.end()))
        pos = head.end() + 20 * count
    return None


@dataclass
class _Located:
    """Where pypdf's merged cross-reference data puts one object number."""

    offsets: dict[int, int] = field(default_factory=dict)  # generation -> offset
    in_stream: int | None = None  # the object stream holding it (generation 0)
    freed: set[int] = field(default_factory=set)  # generations a free entry came first for


class Reader:
    """The objects of one PDF; any method may raise ``LeaveToLibrary``."""

    def __init__(self, buf: Buffer, base: Reader | None = None, spliced: Spliced | None = None, *, chain: bool = True):
        """``chain``: follow the cross-reference chain (without it, only ``xref_stream_at`` is of use).
        ``base``: a reader of an earlier version of this file, which ``buf`` extends (an
        incremental update appended): when the chain reaches base's newest section, base's
        sections are taken as they are instead of parsed again (the same bytes, so the same
        result, tokens counted as if parsed). Ignored unless ``buf`` starts with base's bytes
        (``spliced``: how ``buf`` was made, when a tag wrote it; see ``_extends``)."""
        self.buf, self.size = buf, len(buf)
        self.trailer: dict[str, Any] = {}  # every section's trailer merged, newest first, as pypdf merges them
        # The newest section's own trailer: what a viewer shows (an update that drops /Info drops it).
        self.newest: dict[str, Any] | None = None
        self.budget = MAX_TOKENS  # spent by the parsers
        self._sections: list[_Section] = []
        self._section_offsets: list[int] = []  # where each section starts, newest first
        self._xref_streams: set[tuple[int, int]] = set()  # pypdf caches them under their number
        self._entries = 0
        self._table_not_at_zero = False
        self._ready = False
        self._cache: dict[Ref, Any] = {}
        self._object_streams: dict[int, dict[int, Any]] = {}
        self._resolving: list[Ref] = []
        self._listed: list[tuple[int, set[int], set[int]]] | None = None  # sections(), made once
        self._parser = _Parser(buf, self, streams=True)
        self._chain: set[int] = set()  # the offsets /Prev led to (a hybrid file's streams are not among them)
        # Objects parsed at an offset from their bytes alone, with the tokens it cost: the same bytes
        # in a later version of the file are the same object (see _object_at).
        self._at: dict[int, tuple[Ref, Any, int]] = {}
        self._lookups = 0  # calls of get(): a parse that made one depended on more than its bytes
        self._tail = self.size  # where "startxref" ends the file; set by _startxref
        self._chain_end = 0  # where the chain's last section in the file ends (its trailer, its stream)
        self._base = base if base is not None and _extends(buf, base.buf, spliced) else None
        if not chain:
            return  # ``chain=False``: one object read where it lies (xref_stream_at), nothing looked up
        self._read_chain(self._base)
        self._chain_tokens = MAX_TOKENS - self.budget  # what reading the chain cost: charged again by an adopter
        self._ready = True

    # The chain of sections, newest first, merged as pypdf merges it.

    def _startxref(self) -> int:
        tail = _TAIL.search(self.buf, max(0, self.size - 1024))
        if tail is None:
            raise LeaveToLibrary  # no plain "startxref N %%EOF" at the very end: pypdf recovers
        self._tail = tail.start()
        offset = int(tail[1])
        # pypdf rebuilds the cross-reference data unless the offset is preceded by whitespace
        # and lands on "xref" or an "N G obj" header (its _get_xref_issues).
        if not 0 < offset < self.size or self.buf[offset - 1] not in b"\r\n \t":
            raise LeaveToLibrary  # the last startxref points outside the file or not after white space: pypdf rebuilds
        if self.buf[offset:offset + 4] != b"xref":
            i = offset + 4
            while i < self.size and self.buf[i] in b"0123456789 \t":
                i += 1
            if bytes(self.buf[i:i + 3]).lower() != b"obj":
                raise LeaveToLibrary  # the last startxref points at neither "xref" nor an object header: pypdf rebuilds
        return offset

    def _read_chain(self, base: Reader | None) -> None:
        offset: int | None = self._startxref()
        seen = self._chain
        while offset is not None:
            if base is not None and offset == base._section_offsets[0]:
                self._adopt(base)
                break
            if offset in seen or len(seen) >= MAX_SECTIONS:
                raise LeaveToLibrary  # pypdf stops quietly at a loop
            seen.add(offset)
            self._section_offsets.append(offset)
            if offset >= self.size:
                raise LeaveToLibrary  # a /Prev past the end of the file
            if self.buf[offset] in b"\r\n":
                offset += 1
            kind = self.buf[offset:offset + 1]
            if kind == b"x":
                offset, not_at_zero = self._read_table(offset)
                self._table_not_at_zero |= not_at_zero
            elif kind.isdigit():
                stream = self._read_xref_stream(offset)
                if self.newest is None:
                    self.newest = stream.dictionary
                for key in ("/Root", "/Encrypt", "/Info", "/ID", "/Size"):
                    if key in stream.dictionary and key not in self.trailer:
                        self.trailer[key] = stream.dictionary[key]
                if "/XRefStm" in stream.dictionary:
                    raise LeaveToLibrary  # a hybrid file's /XRefStm in a cross-reference stream's own dictionary
                offset = self._prev(stream.dictionary)
            else:
                raise LeaveToLibrary  # pypdf looks for the section nearby
        if self._table_not_at_zero:
            self._check_every_header()

    def _adopt(self, base: Reader) -> None:
        """Take ``base``'s chain, from its newest section on, as reading it here would have:
        the same loop, section, entry and token limits, the same merging."""
        if self._chain & base._chain or len(self._chain) + len(base._chain) > MAX_SECTIONS:
            raise LeaveToLibrary  # the tagged version's chain loops back into the original's, or is too long
        self._chain |= base._chain
        self._section_offsets += base._section_offsets
        self._sections += base._sections
        self._xref_streams |= base._xref_streams
        self._entries += base._entries
        self.budget -= base._chain_tokens
        if self._entries > MAX_ENTRIES or self.budget < 0:
            raise LeaveToLibrary  # more cross-reference entries or tokens than this reader reads
        for key, value in base.trailer.items():
            self.trailer.setdefault(key, value)
        if self.newest is None:
            self.newest = base.newest
        self._table_not_at_zero |= base._table_not_at_zero
        self._chain_end = max(self._chain_end, base._chain_end)

    def after_chain(self) -> tuple[int, int]:
        """Where the last section of the chain in the file ends, and where the final "startxref"
        starts: between them a file holds nothing but its last section's "endobj". (A linearized
        file's startxref names its first-page section at the start; the chain still ends last.)"""
        return self._chain_end, self._tail

    @staticmethod
    def _prev(entries: dict[str, Any]) -> int | None:
        if "/Prev" not in entries:
            return None
        prev = entries["/Prev"]
        if type(prev) is not int or prev <= 0:
            raise LeaveToLibrary  # pypdf treats /Prev 0 as none, and resolves references
        return prev

    def _read_table(self, pos: int) -> tuple[int | None, bool]:
        if self.buf[pos:pos + 4] != b"xref":
            raise LeaveToLibrary  # a section that does not start with "xref"
        pos += 4
        subsections: list[tuple[int, int, int]] = []
        while True:
            head = _SUBSECTION.match(self.buf, pos)
            if head is None:
                raise LeaveToLibrary  # a cross-reference subsection header is unreadable: pypdf searches on
            first, count = int(head[1]), int(head[2])
            end = head.end() + 20 * count
            if end > self.size or not _ENTRIES.fullmatch(self.buf, head.end(), end):
                raise LeaveToLibrary  # pypdf realigns odd entries and looks objects up by itself
            self._entries += count
            if self._entries > MAX_ENTRIES:
                raise LeaveToLibrary  # more cross-reference entries than this reader reads
            subsections.append((first, count, head.end()))
            pos = self._parser.skip(end)
            if self.buf[pos:pos + 7] == b"trailer":
                break
        trailer, end = self._parser.value(pos + 7)
        if not isinstance(trailer, dict):
            raise LeaveToLibrary  # the trailer is no dictionary
        self._chain_end = max(self._chain_end, end)
        self._sections.append(_Section(subsections))
        if self.newest is None:
            self.newest = trailer
        for key, value in trailer.items():
            self.trailer.setdefault(key, value)
        if "/XRefStm" in trailer:
            # A hybrid file: the stream's entries come right after the table's, its dictionary
            # adds nothing to the trailer.
            at = trailer["/XRefStm"]
            if type(at) is not int or not 0 <= at < self.size:
                raise LeaveToLibrary  # a hybrid file's /XRefStm is no offset within the file
            self._read_xref_stream(at)
            self._sections[-1].companion = True
            self._section_offsets.append(at)  # a section of its own in sections(), after its table's
        # pypdf's object number correction starts when a table's first subsection is not 0.
        return self._prev(trailer), subsections[0][0] != 0

    def xref_stream_at(self, pos: int) -> tuple[Stream, _Section, int, int, tuple[int, int]]:
        """The cross-reference stream whose object starts at ``pos``: the stream, its entries, how
        many its /Index lists, where its object ends, and its number and generation. Raises
        ``LeaveToLibrary`` where there is none this reader can read."""
        head = OBJECT_HEADER.match(self.buf, pos)
        if head is None:
            raise LeaveToLibrary  # a cross-reference stream without an object header
        stream, end = self._parser.value(head.end())
        if not isinstance(stream, Stream) or stream.dictionary.get("/Type") != "/XRef":
            raise LeaveToLibrary  # a cross-reference stream that is not one (/Type /XRef)
        size, widths = stream.dictionary.get("/Size"), stream.dictionary.get("/W")
        index = stream.dictionary.get("/Index", [0, size])
        if (
            type(size) is not int
            or not isinstance(widths, list) or len(widths) != 3
            or not all(type(w) is int and 0 <= w <= 8 for w in widths) or sum(widths) == 0
            or not isinstance(index, list) or len(index) % 2
            or not all(type(i) is int and i >= 0 for i in index)
        ):
            raise LeaveToLibrary  # a cross-reference stream's /Size, /W or /Index is unusable
        data = self.decode(stream, MAX_STRUCTURE)
        subsections, row = [], 0
        for first, count in zip(index[::2], index[1::2], strict=True):
            subsections.append((first, count, row))
            row += count
        section = _Section(subsections, data, (widths[0], widths[1], widths[2]))
        return stream, section, row, end, (int(head[1]), int(head[2]))

    def _read_xref_stream(self, pos: int) -> Stream:
        stream, section, row, end, number = self.xref_stream_at(pos)
        self._chain_end = max(self._chain_end, end)
        self._xref_streams.add(number)
        data, widths = section.data, section.widths
        assert data is not None
        # pypdf clamps counts the data cannot hold.
        width = sum(widths)
        if row * width > len(data):
            raise LeaveToLibrary  # a cross-reference stream holds fewer entries than its /Index lists
        # An entry of a type other than 0, 1 or 2 makes pypdf skip its other fields, and so
        # misread every entry after it.
        for k in range(widths[0]):
            allowed = b"\x00\x01\x02" if k == widths[0] - 1 else b"\x00"
            if data[k:row * width:width].translate(None, allowed):
                raise LeaveToLibrary  # a cross-reference stream entry of a type other than 0, 1 or 2
        self._entries += row
        if self._entries > MAX_ENTRIES:
            raise LeaveToLibrary  # more cross-reference entries than this reader reads
        self._sections.append(section)
        return stream

    def _check_every_header(self) -> None:
        # With a table not starting at object 0 pypdf re-reads every object header; an entry
        # whose offset holds no header makes it rebuild the whole cross-reference data, and one
        # holding another object's header makes it renumber. Both are left to pypdf.
        checked = 0
        for section in self._sections:
            for num, kind, offset, gen in section.rows(self.buf):
                if kind != 1 or gen == 65535:
                    continue
                checked += 1
                if checked > MAX_CHECKED:
                    raise LeaveToLibrary  # too many object headers to check
                head = OBJECT_HEADER.match(self.buf, offset)
                if head is None or int(head[1]) != num:
                    raise LeaveToLibrary  # an entry points at no object header, or another object's: pypdf rebuilds or renumbers

    def _locate(self, num: int) -> _Located:
        # pypdf reads sections newest first and keeps, per generation, the first offset it
        # meets; a classic free entry marks the object free only until an offset is found, and
        # an object-stream entry counts only if no offset for generation 0 came before it.
        found = _Located()
        for section in self._sections:
            for kind, second, third in section.entries(self.buf, num):
                if section.data is None:
                    if third not in found.offsets:
                        if kind == 1:
                            found.offsets[third] = second
                        else:
                            found.freed.add(third)
                elif kind == 1:
                    if third not in found.offsets and found.in_stream is None:
                        found.offsets[third] = second
                elif kind == 2:
                    if 0 not in found.offsets and found.in_stream is None:
                        found.in_stream = second
        return found

    def deleted(self, num: int) -> bool:
        """Whether the newest cross-reference entry for object ``num`` frees it: an update deleted it.
        A hybrid file's table lists free what its /XRefStm puts in an object stream (ISO 32000
        7.5.8.4): that is no deletion."""
        for i, section in enumerate(self._sections):
            for kind, _, _ in section.entries(self.buf, num):
                if kind == 0 and section.data is None and i + 1 < len(self._sections) and self._sections[i + 1].companion:
                    return not any(placed for placed, _, _ in self._sections[i + 1].entries(self.buf, num))
                return kind == 0
        return False

    def sections(self) -> list[tuple[int, set[int], set[int]]]:
        """Each cross-reference section, newest first: where it starts, the object numbers it
        lists (free ones too) and the object streams it points into. What an update changed.
        Listed once per reader: the caller must not change the sets."""
        if self._listed is not None:
            return self._listed
        out = []
        for offset, section in zip(self._section_offsets, self._sections, strict=True):
            numbers, streams = set(), set()
            for num, kind, second, _ in section.rows(self.buf):
                numbers.add(num)
                if kind == 2:
                    streams.add(second)
            out.append((offset, numbers, streams))
        self._listed = out
        return out

    # Objects.

    def get(self, ref: Ref) -> Any:
        """The object ``ref`` points to (None for null), as pypdf would resolve it."""
        self._lookups += 1
        if ref in self._cache:
            return self._cache[ref]
        if not self._ready or (ref.num, ref.gen) in self._xref_streams or ref.gen == 65535:
            raise LeaveToLibrary
        if ref in self._resolving or len(self._resolving) >= 4:
            raise LeaveToLibrary
        self._resolving.append(ref)
        try:
            where = self._locate(ref.num)
            if ref.gen == 0 and where.in_stream is not None:
                obj = self._from_object_stream(where.in_stream, ref.num)
            elif ref.gen in where.offsets and ref.gen not in where.freed:
                obj = self._object_at(where.offsets[ref.gen], ref)
            else:
                raise LeaveToLibrary  # pypdf searches the whole file for "N G obj"
        finally:
            self._resolving.pop()
        self._cache[ref] = obj
        return obj

    def resolve(self, value: Any) -> Any:
        return self.get(value) if isinstance(value, Ref) else value

    def _object_at(self, offset: int, ref: Ref) -> Any:
        kept = self._base._at.get(offset) if self._base is not None else None
        if kept is not None and kept[0] == ref:
            # The tagged file's unchanged objects, parsed from the same bytes of the original:
            # taken as parsed there, tokens charged as if parsed again (callers never change them).
            self.budget -= kept[2]
            if self.budget < 0:
                raise LeaveToLibrary
            self._at[offset] = kept
            return kept[1]
        head = OBJECT_HEADER.match(self.buf, offset) if 0 <= offset < self.size else None
        if head is None or (int(head[1]), int(head[2])) != (ref.num, ref.gen):
            raise LeaveToLibrary  # pypdf searches the file for the object instead
        budget, lookups = self.budget, self._lookups
        obj, end = self._parser.value(head.end())
        # Kept only when its bytes alone made it: no indirect /Length looked up (a later version
        # may change that object), and every byte the parse looked at (at most 20 past its end) lies
        # before this version's "startxref", which a longer version of the file does not move.
        if self._lookups == lookups and end + _LOOK_AHEAD <= self._tail:
            self._at[offset] = (ref, obj, budget - self.budget)
        return obj

    def _from_object_stream(self, number: int, num: int) -> Any:
        if number not in self._object_streams:
            self._object_streams[number] = self._read_object_stream(number)
        objects = self._object_streams[number]
        if num not in objects:
            raise LeaveToLibrary
        return objects[num]

    def _read_object_stream(self, number: int) -> dict[int, Any]:
        stream = self.get(Ref(number, 0))
        if not isinstance(stream, Stream) or stream.dictionary.get("/Type") != "/ObjStm":
            raise LeaveToLibrary
        count, first = stream.dictionary.get("/N"), stream.dictionary.get("/First")
        if type(count) is not int or type(first) is not int:
            raise LeaveToLibrary
        data = self.decode(stream, MAX_STRUCTURE)
        if not 0 <= first <= len(data) or not 0 <= count <= len(data) // 3:
            raise LeaveToLibrary  # pypdf clamps or ignores such a stream
        index: list[tuple[int, int]] = []
        pos = 0
        for _ in range(count):
            pair = _PAIR.match(data, pos, first)
            if pair is None:
                raise LeaveToLibrary
            index.append((int(pair[1]), first + int(pair[2])))
            pos = pair.end()
        starts = [start for _, start in index]
        if starts != sorted(set(starts)) or len({num for num, _ in index}) != count:
            raise LeaveToLibrary  # pypdf refuses decreasing offsets; a number listed twice is ambiguous
        # pypdf parses every object of the stream when one is asked for, and fails on any it
        # cannot read: parsing them all here keeps that outcome the same.
        parser = _Parser(data, self, streams=False)
        objects: dict[int, Any] = {}
        for i, (num, start) in enumerate(index):
            stop = index[i + 1][1] if i + 1 < len(index) else len(data)
            value, end = parser.value(start)
            if end > stop or parser.skip(end) != stop:
                raise LeaveToLibrary
            objects[num] = value
        return objects

    # Stream data.

    def decode(self, stream: Stream, limit: int) -> bytes:
        """The stream's data, unfiltered or inflated; raises ``TooLarge`` past ``limit`` bytes,
        where pypdf with the same limit raises its LimitReachedError."""
        raw = bytes(self.buf[stream.start:stream.end])
        if "/Filter" not in stream.dictionary:
            return raw
        if stream.dictionary["/Filter"] not in ("/FlateDecode", ["/FlateDecode"]):
            raise LeaveToLibrary
        params = stream.dictionary.get("/DecodeParms")
        if params is not None and not isinstance(params, dict):
            raise LeaveToLibrary
        if not raw:
            return raw  # pypdf does not decode empty data
        inflater = zlib.decompressobj()
        try:
            data = inflater.decompress(raw, limit)
        except zlib.error:
            raise LeaveToLibrary from None  # pypdf tries to recover what it can
        if inflater.unconsumed_tail:
            raise TooLarge
        predictor = (params or {}).get("/Predictor", 1)
        if predictor == 1 and type(predictor) is int:
            return data
        if type(predictor) is not int or not 10 <= predictor <= 15:
            raise LeaveToLibrary
        assert params is not None
        columns = params.get("/Columns", 1)
        colors, bits = params.get("/Colors", 1), params.get("/BitsPerComponent", 8)
        if (
            type(columns) is not int or not 1 <= columns <= MAX_COLUMNS
            or type(colors) is not int or colors != 1 or type(bits) is not int or bits != 8
        ):
            raise LeaveToLibrary  # one byte per pixel only
        return _unpredict(data, columns)


def reader(buf: Buffer, parsed: Parsed | None = None) -> Reader:
    """``Reader(buf)``, kept in ``parsed`` (one file's tag) and taken from there when asked
    again; the tagged version is read on top of the original's chain (``Reader``'s ``base``)."""
    if parsed is None:
        return Reader(buf)
    found: Reader | None = parsed.find("pdf", buf)
    if found is None:
        earlier: list[Reader] = parsed.kept("pdf")
        found = Reader(buf, base=earlier[-1] if earlier else None, spliced=splice.made(buf, parsed))
        parsed.keep("pdf", buf, found)
    return found


def _extends(buf: Buffer, earlier: Buffer, spliced: Spliced | None = None) -> bool:
    """Whether ``buf`` is ``earlier`` with bytes appended: known without comparing them when
    ``spliced`` made ``buf`` from ``earlier``, copying it whole first."""
    if len(buf) <= len(earlier):
        return False
    if spliced is not None and spliced.source is earlier and spliced.copied(0, len(earlier)) == 0:
        return True
    if isinstance(buf, bytes):
        return buf.startswith(earlier)
    return buf[:len(earlier)] == earlier


def _unpredict(data: bytes, columns: int) -> bytes:
    """PNG predictors, one byte per pixel, as pypdf applies them."""
    row = columns + 1
    if len(data) % row:
        raise LeaveToLibrary  # pypdf pads the last row
    low, high = int.from_bytes(b"\x7f" * columns, "big"), int.from_bytes(b"\x80" * columns, "big")
    out = bytearray()
    prev, prev_int = bytes(columns), 0
    for start in range(0, len(data), row):
        kind = data[start]
        if kind == 2:  # up, the usual one: all bytes at once, without carries between them
            a = int.from_bytes(data[start + 1:start + row], "big")
            prev_int = ((a & low) + (prev_int & low)) ^ ((a ^ prev_int) & high)
            prev = prev_int.to_bytes(columns, "big")
            out += prev
            continue
        cur = bytearray(data[start + 1:start + row])
        if kind == 1:  # sub
            for i in range(1, columns):
                cur[i] = (cur[i] + cur[i - 1]) & 0xFF
        elif kind == 3:  # average
            for i in range(columns):
                cur[i] = (cur[i] + ((cur[i - 1] if i else 0) + prev[i]) // 2) & 0xFF
        elif kind == 4:  # Paeth
            for i in range(columns):
                left, up, up_left = (cur[i - 1], prev[i], prev[i - 1]) if i else (0, prev[i], 0)
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                cur[i] = (cur[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else up_left)) & 0xFF
        elif kind != 0:
            raise LeaveToLibrary
        out += cur
        prev = bytes(cur)
        prev_int = int.from_bytes(prev, "big")
    return bytes(out)
