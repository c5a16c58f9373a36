"""PDF: XMP in the document metadata stream, and a few Info-dictionary keys for older readers.

Writing is an incremental update: the original bytes stay an exact prefix and only the changed
objects (the metadata stream, the Info dictionary, and the catalog when it gains /Metadata) are
appended with a new cross-reference section. Existing digital signatures therefore stay valid.

Reading first tries carriers/pdfobjects.py, a small byte-level reader of the few objects needed:
a scan meets many PDFs, and pypdf costs more to import than most of them take to read. Whenever
that reader is not sure to find what pypdf finds (repairs, encryption, unusual filters), pypdf
reads the file, and its import is paid then. Both give the same reports (tests/test_pdf_fast.py).

pypdf parses the document for writing and serialises the few objects written, but the increment
itself is written here: pypdf's incremental writer always appends a cross-reference *stream*
(PDF 1.5), which PDF 1.4 files and PDF/A-1 forbid, and numbers every changed object generation 0.
This writer appends the same kind of cross-reference section the file already ends with, and
keeps each object's generation.

Hostile input: pypdf 7 bounds its own work (declared stream lengths, decompressed output of
every filter, xref stream entries, object-stream sizes, root-object recovery; see
``pypdf.Configuration``); the metadata stream is decoded with tighter limits (``xmp.MAX_PACKET``),
and every pypdf exception becomes a ``MalformedFile`` with the reason. pdfobjects.py bounds its
own work the same way and leaves anything unusual to pypdf.
"""

from __future__ import annotations

import functools
import io
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import xmp
from ..errors import LeaveToLibrary, MalformedFile, MalformedMetadata, RightsmetaError, UnsupportedFormat
from ..log import fell_back
from ..model import Assertion
from ..report import CarrierReport
from ..vocab import apart, decode_all, project, tdmrep
from . import pdfobjects, splice
from .heads import sniff_pdf as sniff  # noqa: F401  (the family's sniff)
from .splice import Spliced

if TYPE_CHECKING:
    # pypdf is imported where it is used: reading usually does without it (pdfobjects.py).
    from pypdf import PdfReader
    from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, PdfObject

    from . import Options, Parsed

FORMATS = ("pdf",)

# Info-dictionary keys (schemas/rightsmeta-namespace.md). PDF names cannot hold a colon-prefixed
# namespace, so the exact record's XMP names are prefixed with "Rightsmeta".
INFO_RECORD_PREFIX = "/Rightsmeta"
INFO_TDM_RESERVATION = "/TDMReservation"
INFO_TDM_POLICY = "/TDMPolicy"
INFO_KEYS = (*(INFO_RECORD_PREFIX + key for key in project.ALL_KEYS), INFO_TDM_RESERVATION, INFO_TDM_POLICY)

_NOT_A_STREAM = "the catalog's /Metadata is not a stream"
_TOO_LARGE = f"cannot decode the metadata stream: it inflates to more than {xmp.MAX_PACKET} bytes"

_QUIETED = False


def _quiet_pypdf() -> None:
    # pypdf logs every repair it makes as a warning; with no logging configured Python would print
    # them on stderr. A NullHandler keeps them out of the CLI's output and still lets an
    # application that configures logging see them.
    global _QUIETED
    if not _QUIETED:
        import logging  # with pypdf only: the fast path has nothing to log

        logging.getLogger("pypdf").addHandler(logging.NullHandler())
        _QUIETED = True


@dataclass
class _Document:
    reader: PdfReader
    packet: bytes | None = None
    metadata_ref: IndirectObject | None = None
    metadata_error: str | None = None
    info: DictionaryObject | None = None
    info_ref: IndirectObject | None = None
    info_values: dict[str, str] = field(default_factory=dict)
    info_errors: list[str] = field(default_factory=list)  # damage seen in the Info dictionary read


@dataclass
class _Found:
    """What reading reports on, by either reader."""

    packet: bytes | None = None
    metadata_object: int | None = None  # the number of the object the catalog's /Metadata names
    metadata_error: str | None = None
    info_values: dict[str, str] = field(default_factory=dict)
    info_errors: list[str] = field(default_factory=list)  # damage seen in the Info dictionary read


def _text(value: Any) -> str:
    from pypdf.generic import PdfObject

    value = value.get_object() if isinstance(value, PdfObject) else value
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def _metadata(doc: _Document) -> None:
    import pypdf
    from pypdf.errors import LimitReachedError
    from pypdf.generic import IndirectObject, NullObject, StreamObject

    catalog = doc.reader.root_object
    ref = catalog.raw_get("/Metadata") if "/Metadata" in catalog else None
    if ref is None:
        return
    if isinstance(ref, IndirectObject):
        doc.metadata_ref = ref
    stream = ref.get_object()
    if stream is None or isinstance(stream, NullObject):
        return  # a dangling reference: as if there were none (writing fills that object number)
    if not isinstance(stream, StreamObject):
        doc.metadata_error = _NOT_A_STREAM
        return
    limit = xmp.MAX_PACKET + 1
    try:
        # Tighter than pypdf's defaults (75 MB): an XMP packet above MAX_PACKET is refused anyway.
        with pypdf.apply_configuration(
            zlib_maximum_output_length=limit, lzw_maximum_output_length=limit,
            run_length_maximum_output_length=limit, brotli_maximum_output_length=limit,
            array_based_stream_maximum_output_length=limit,
        ):
            packet = stream.get_data()
        doc.packet = packet if packet.strip() else None  # an empty stream says nothing
    except LimitReachedError:
        doc.metadata_error = _TOO_LARGE
    except Exception as exc:  # pypdf raises many kinds for broken filters
        doc.metadata_error = f"cannot decode the metadata stream: {exc}"


def _load(data: Any, options: Options | None) -> _Document:
    """The parsed document; raises MalformedFile for what pypdf cannot read or decrypt."""
    from pypdf import PasswordType, PdfReader
    from pypdf.generic import DictionaryObject, IndirectObject

    _quiet_pypdf()
    password = options.password if options is not None else None
    try:
        reader = PdfReader(data if not isinstance(data, bytes) else io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            # An empty user password (owner password only) opens the file in any viewer.
            if password is None and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
                # Also what tag says: with the password it could read the file, never write into it.
                raise MalformedFile("the PDF is encrypted: reading it needs its password (--password); "
                                    "rightsmeta does not write into encrypted PDFs")
            if password is not None and reader.decrypt(password) == PasswordType.NOT_DECRYPTED:
                raise MalformedFile("wrong password for this encrypted PDF")
        doc = _Document(reader)
        _metadata(doc)
        info_ref = reader.trailer.raw_get("/Info") if "/Info" in reader.trailer else None
        if info_ref is not None:
            info = info_ref.get_object()
            if isinstance(info, DictionaryObject):
                doc.info = info
                doc.info_ref = info_ref if isinstance(info_ref, IndirectObject) else None
                doc.info_values = {key[1:]: _text(info[key]) for key in INFO_KEYS if key in info}
                doc.info_errors = near_info_keys(info)
        _check_repairs(data, doc, reader.trailer.raw_get("/Root"))
        return doc
    except RightsmetaError:
        raise
    except Exception as exc:  # pypdf's errors are not one family: KeyError, ValueError, PdfReadError...
        raise MalformedFile(f"not a readable PDF ({type(exc).__name__}: {exc})") from None


def _check_repairs(data: Any, doc: _Document, root: Any) -> None:
    """Raise ``MalformedFile`` when pypdf read the catalog, the metadata stream or the Info
    dictionary from an older revision than the newest cross-reference table names, or had to
    search a file of several revisions for its catalog.

    pypdf, not finding an object where its table puts it (a damaged header: it may even take
    the header's number for an offset in the table), searches the file from its start for the
    object's header and takes the first: an older revision's copy, read as the document's (an
    update's reservation lost). A repair within one revision (offsets a few bytes off, as line
    ends converted leave them) is pypdf's to make; only the newest section (a classic table or a
    cross-reference stream) is looked at."""
    from pypdf.generic import DictionaryObject, IndirectObject

    if not hasattr(data, "find"):
        return  # a stream pypdf reads from: the callers pass bytes or a map
    named = root.get_object() if isinstance(root, IndirectObject) else root
    if (not isinstance(named, DictionaryObject) or named.get("/Type") != "/Catalog") and (
            data.find(b"startxref") != data.rfind(b"startxref")):
        # pypdf then takes the lowest-numbered catalog it finds: with several revisions, perhaps
        # an older one's, whose metadata would be read as the document's.
        raise MalformedFile(
            "the trailer's /Root is no catalog, and of this PDF's revisions pypdf would take the first "
            "catalog it finds, perhaps an older revision's: the document's catalog was not read"
        )
    refs = [r for r in (root, doc.metadata_ref, doc.info_ref) if isinstance(r, IndirectObject)]
    listed = pdfobjects.newest_offsets(data, {r.idnum for r in refs})
    newest_end = data.rfind(b"startxref")  # a startxref between the two places: they are revisions apart
    for ref in refs:
        at, was = doc.reader.xref.get(ref.generation, {}).get(ref.idnum), listed.get(ref.idnum)
        if at is not None and was is not None and at < was and data.find(b"startxref", at, min(was, newest_end)) >= 0:
            raise MalformedFile(
                f"object {ref.idnum} of this PDF is not at byte {was}, where its newest cross-reference puts it; an "
                f"older revision's object {ref.idnum} (byte {at}) would be read instead: the newest revision is "
                "damaged, and its object was not read"
            )
    # What pypdf did not repair but read from the wrong place (or not at all), judged from the
    # newest section. The Info dictionary only where an update lists it in use: one an update
    # freed is still read, as pypdf and ExifTool show it.
    table = newest_table(data)
    named = doc.reader.trailer.raw_get("/Info") if "/Info" in doc.reader.trailer else None  # read or not
    info = (named.idnum, named.generation) if isinstance(named, IndirectObject) else None
    check_newest_entries(data, table, [(r.idnum, r.generation) for r in (root, doc.metadata_ref) if isinstance(r, IndirectObject)],
                         info)
    if isinstance(root, IndirectObject):
        check_catalog_read(data, table, (root.idnum, root.generation), "/Metadata" in doc.reader.root_object)
    check_info_read(data, table, info, doc.info is not None)
    check_info_bytes(data, table, info, doc.info_values)
    # Last, the catch-all the rules above say more precisely where they apply.
    _check_newest_definitions(data, doc, refs)


def _check_newest_definitions(data: Any, doc: _Document, refs: list[Any]) -> None:
    """Raise ``MalformedFile`` when pypdf read one of ``refs`` from a place an older revision
    holds, while a later revision of the file defines the object anew (its "N G obj" header after
    that place, a startxref between them). Review 1 found it with an update whose cross-reference
    is a stream: with the last startxref a few bytes off, or bytes before "%PDF", pypdf rebuilt the
    table and took the catalog from the original's object stream, reading the untagged original."""
    reader = doc.reader
    for ref in refs:
        if ref.generation == 0 and ref.idnum in reader.xref_objStm:
            # pypdf takes a compressed copy first (PdfReader.get_object): where its object stream is
            stream = reader.xref_objStm[ref.idnum][0]
            at = next((table[stream] for table in reader.xref.values() if stream in table), None)
        else:
            at = reader.xref.get(ref.generation, {}).get(ref.idnum)
        if at is None:
            continue
        header = re.compile(rb"(?<![0-9])%d[\t\n\f\r ]+[0-9]+[\t\n\f\r ]+obj" % ref.idnum)
        last = functools.reduce(lambda _, found: found, header.finditer(data, at + 1), None)  # the file's last
        if last is not None and data.find(b"startxref", at, last.start()) >= 0:
            raise MalformedFile(
                f"object {ref.idnum} of this PDF was read from byte {at}, but a later revision defines it anew at byte "
                f"{last.start()}: the newest revision's cross-reference could not be followed, and its object was not read"
            )


def newest_table(data: Any, pdf: pdfobjects.Reader | None = None) -> pdfobjects.Table | None:
    """The newest cross-reference section the checks below judge, a classic table or a stream
    (``pdf``: the chain's reader, which has read that stream), found once per read: None where
    there is none to judge (a stream pypdf reads from, a table not laid out in 20-byte entries, a
    hybrid file's table, which lists free what its stream puts in an object stream)."""
    if not hasattr(data, "find"):
        return None
    table = pdfobjects.newest_section(data, pdf)
    if table is not None and table.stream is not None and table.update and table.left:
        # Writers write exactly the rows /Index lists, /W bytes each: a damaged count, first number
        # or width lists the update's objects under other numbers (or none), and the older revision's are read.
        raise MalformedFile(
            f"this PDF's newest cross-reference stream holds {table.left:+d} bytes of entries beyond the rows its "
            "/Index and /W list: the stream is damaged, and the newest revision was not read"
        )
    if table is not None and table.damaged is not None and table.update:
        # pypdf misreads such a table, and an update's catalog entry in it is lost: the older
        # revision's catalog read. (A single revision's objects pypdf finds by their headers.)
        raise MalformedFile(
            f"a subsection header of this PDF's newest cross-reference table runs into its first entry (byte "
            f"{table.damaged}): the table is damaged, and the newest revision was not read"
        )
    if table is not None and table.update and (
            b"/Root" not in table.trailer if table.stream is None else "/Root" not in table.dictionary):
        # An update's trailer repeats the catalog (ISO 32000-1 7.5.6); one with none is damaged
        # ("/Prev 708/R /Info 9 0 R": its /Root run into the /Prev), and pypdf, merging the
        # trailers, would read an older revision's catalog and Info with no error.
        raise MalformedFile(
            "the newest trailer of this PDF names no catalog (/Root): it is damaged, and the newest revision was not read"
        )
    return None if table is None or table.hybrid else table


def check_newest_entries(data: Any, table: pdfobjects.Table | None, refs: list[tuple[int, int]],
                         info: tuple[int, int] | None = None) -> None:
    """Raise ``MalformedFile`` when the newest cross-reference section lists one of ``refs`` (the
    catalog, the metadata stream) but its entry there does not say "in use, this generation":
    its offset garbled, its generation changed ("00000 n" made "40000 n"), or made free. Both
    readers then read the object from an older revision (pypdf keeps, per generation, the first
    offset it can read, newest first; a free entry does not hide an older one), as the document's:
    the catalog before an update added /Metadata, a reservation lost, use allowed. An update that
    lists the catalog redefines it (an update that frees the catalog the trailer names is no
    PDF); only a table laid out in exact 20-byte entries, or a stream, is judged, and not a hybrid
    file's table (it lists free what its stream puts in an object stream).

    ``info``: the Info dictionary, judged where an update lists it in use (one an update freed is
    still read, as pypdf and ExifTool show it): its object not where the entry puts it, and its
    reservation would go unread."""
    if table is None:
        return
    judged = [*refs, info] if info is not None and table.update else refs
    for num, gen in judged:
        found = table.find(data, num)
        if found is None:
            continue  # the newest revision left the object as it was
        kind, offset, third, shown = found
        if (num, gen) == info and kind != 1:
            continue
        if kind == 2 and gen == 0:
            continue  # in one of the update's object streams: read from there
        if kind != 1 or third != gen:
            raise MalformedFile(
                f"the newest cross-reference entry for object {num} of this PDF is damaged "
                f"({shown} where object {num} {gen} in use belongs): an older "
                f"revision's object {num} would be read instead, and the newest one was not read"
            )
        head = pdfobjects.OBJECT_HEADER.match(data, offset)
        if head is not None and (int(head[1]), int(head[2])) == (num, gen):
            continue
        # Not where the entry puts it (a digit changed, the object's own header damaged): pypdf
        # searches the file and takes the first "num gen obj". Within the newest revision that is
        # its repair to make (offsets a few bytes off); one in an older revision (before the
        # startxref that ends it), or none at all, and the newest object goes unread.
        first = re.compile(rb"(?<![0-9])%d[\t\n\f\r ]+%d[\t\n\f\r ]+obj" % (num, gen)).search(data)
        if first is None or first.start() < max(0, data.rfind(b"startxref", 0, table.at)):
            raise MalformedFile(
                f"object {num} of this PDF is not at byte {offset}, where its newest cross-reference puts "
                f"it, nor anywhere else in the newest revision: " + (
                    "it is nowhere in the file" if first is None
                    else f"an older revision's (byte {first.start()}) would be read instead") + "; the newest one was not read"
            )


def check_catalog_read(data: Any, table: pdfobjects.Table | None, root: tuple[int, int] | None, has_metadata: bool) -> None:
    """Raise ``MalformedFile`` when the catalog read has no /Metadata key but the newest revision's
    catalog, at the offset its table gives, names one in its bytes: the reader could not parse
    that catalog (a damaged byte near the key, "/Pages 2 0 R\\x7f/Metadata 5 0 R") and took
    another (pypdf searches the file for "3 0 obj" and takes the first, an older revision's), or
    a part of it; the newest revision's XMP went unread."""
    if has_metadata or root is None or table is None:
        return
    found = table.find(data, root[0])
    if found is None or found[0] != 1:
        return  # not listed by the newest section (the catalog is older), or check_newest_entries' to judge
    offset = found[1]
    head = pdfobjects.OBJECT_HEADER.match(data, offset)
    if head is None or (int(head[1]), int(head[2])) != root:
        return  # check_newest_entries judges that
    body = bytes(data[head.end():head.end() + _CATALOG_BYTES])
    end = body.find(b"endobj")
    if end >= 0 and _METADATA_KEY.search(body, 0, end):
        raise MalformedFile(
            f"the newest revision's catalog (object {root[0]}, byte {offset}) names /Metadata, but the "
            "catalog read has none: that catalog is damaged, and the metadata it names was not read"
        )


def check_info_read(data: Any, table: pdfobjects.Table | None, info: tuple[int, int] | None, read: bool) -> None:
    """Raise ``MalformedFile`` when the Info dictionary the trailer names was not ``read`` as a
    dictionary, while the newest update lists that object in use: its bytes are damaged ("5 0 obj0<<"
    reads as the number 0), and a reservation it holds would read as no statement."""
    if read or info is None or table is None or not table.update:
        return
    found = table.find(data, info[0])
    if found is not None and found[0] == 1 and found[2] == info[1]:
        raise MalformedFile(
            f"the Info dictionary the newest revision of this PDF lists (object {info[0]}, byte {found[1]}) does not read "
            "as a dictionary: it is damaged, and what it holds was not read"
        )


# The names rightsmeta reads from the Info dictionary, by length: a damaged one is looked for among
# the keys of the one length only.
_INFO_KEYS_BY_LENGTH: dict[int, tuple[str, ...]] = {
    length: tuple(k for k in INFO_KEYS if len(k) == length) for length in {len(k) for k in INFO_KEYS}}
_INFO_KEY_SET = frozenset(INFO_KEYS)
# Words that begin a key rightsmeta reads (the record's keys all begin "Rightsmeta"), counted in an
# Info dictionary's bytes; and such a word spelt as a key: after its "/", or after one byte that
# took the slash's place (a text string that mentions it, "(TDMReservation explained)", is no key).
_INFO_STEMS = (INFO_TDM_RESERVATION[1:].encode(), INFO_TDM_POLICY[1:].encode(), INFO_RECORD_PREFIX[1:].encode())
_INFO_WORD = rb"(TDMReservation|TDMPolicy|Rightsmeta[0-9A-Za-z]*)"
# Compiled where first used (re's cache): only damaged or unusual files need them, and an import
# that compiled them would be paid by every scan.
_INFO_KEY_NAMED = rb"/" + _INFO_WORD
# A key is followed by its value (a byte of damage between them at most): a text that names the key
# ('"TDMReservation",', "#TDMPolicy #AI") is no key.
_INFO_KEY_SPELT = (rb"(?:/|(?<=[\t\n\f\r ])[^\t\n\f\r ()<>\[\]{}/%])" + _INFO_WORD
                   + rb"(?=[^\t\n\f\r ]?[\t\n\f\r ]*[(<\[/0-9+\-.tfn])")
_INFO_KEY_STARTS = (b"/TDM", INFO_RECORD_PREFIX.encode())  # looked for literally in a whole file
_INFO_BYTES = 64 * 1024  # of the Info dictionary looked at for a reservation key
_INFO_REF = re.compile(rb"/Info(?![^\t\n\f\r ()<>\[\]{}/%])[\t\n\f\r ]*([0-9]{1,10})[\t\n\f\r ]+([0-9]{1,10})[\t\n\f\r ]+R(?![A-Za-z])")


def near_info_keys(info: Any) -> list[str]:
    """An error for each key of the Info dictionary ``info`` one or two characters from a key
    rightsmeta reads ("/TDMRes0rvation"): that key damaged, its value (a reservation) not read.
    The distance is xmp's, for namespaces damaged the same way."""
    errors = []
    for key in info:
        name = str(key)
        if name in _INFO_KEY_SET:
            continue
        near = next((known for known in _INFO_KEYS_BY_LENGTH.get(len(name), ()) if apart(name, known) <= 2), None)
        if near is not None:
            errors.append(f"Info dictionary key {name!r} is {near!r} with a character or two changed: damaged, "
                          "so its value was not read")
    return errors


def check_info_bytes(data: Any, table: pdfobjects.Table | None, info: tuple[int, int] | None, read: dict[str, str]) -> None:
    """Raise ``MalformedFile`` when the Info dictionary, at the offset the newest cross-reference
    section gives, spells a reservation key ("TDMReservation", "Rightsmeta...") that was not read
    from it: its bytes are damaged (a string's parenthesis lost, so the key is read as part of a
    string; a byte before or after the key, "/TDMReservation0(1)"), and the reservation it holds
    would read as no statement."""
    if info is None or table is None or not hasattr(data, "find"):
        return
    found = table.find(data, info[0])
    if found is None or found[0] != 1 or found[2] != info[1]:
        return  # check_newest_entries and check_info_read judge those
    head = pdfobjects.OBJECT_HEADER.match(data, found[1])
    if head is None or (int(head[1]), int(head[2])) != info:
        return
    start = head.end()
    end = data.find(b"endobj", start, start + _INFO_BYTES)
    end = end if end >= 0 else start + _INFO_BYTES
    if sum(data[start:end].count(stem) for stem in _INFO_STEMS) == len(read):  # a slice: a big file is an mmap
        return  # each spelling a key read (the usual case, judged at C speed)
    for spelt in re.compile(_INFO_KEY_SPELT).finditer(data, start, end):
        key = _info_key(spelt[1])
        if key is not None and key not in read:
            raise MalformedFile(
                f"the Info dictionary of this PDF (object {info[0]}, byte {found[1]}) spells {key!r}, but no "
                "such key was read from it: its bytes are damaged (a string's parenthesis, the key), and the "
                "reservation it holds was not read"
            )


def _info_key(word: bytes) -> str | None:
    """The key rightsmeta reads (its "/" left out) that ``word`` spells, or begins with (a byte
    after it: "TDMReservation0"); None for a word that only begins like one ("RightsmetaCopyright")."""
    name = word.decode()
    if "/" + name in _INFO_KEY_SET:
        return name
    return max((k[1:] for k in INFO_KEYS if name.startswith(k[1:])), key=len, default=None)


def check_info_lost(data: Any, named: str) -> None:
    """Raise ``MalformedFile`` when the trailer's /Info (``named``, as shown) is no dictionary while
    the file spells a reservation key: the reference is damaged ("/Info 0 0 R", "/Info 4 0 R"
    naming a page's contents), and an Info dictionary's reservation would read as no statement.
    Called only where the Info did not read as a dictionary: the file search is paid then only."""
    if not hasattr(data, "find"):
        return
    for start in _INFO_KEY_STARTS:
        at, tried = data.find(start), 0
        while at >= 0 and tried < _MAX_CANDIDATES:
            word = re.compile(_INFO_KEY_NAMED).match(data, at)
            key = _info_key(word[1]) if word is not None else None
            if key is not None:
                raise MalformedFile(
                    f"the trailer's /Info ({named}) is not a dictionary, while this PDF spells an Info key "
                    f"{key!r}: the reference is damaged, and that Info dictionary was not read"
                )
            at, tried = data.find(start, at + 1), tried + 1


def check_newest_update(data: Any, table: pdfobjects.Table | None) -> None:
    """Raise ``MalformedFile`` when the newest incremental update defines a new XMP metadata stream
    (/Type /Metadata /Subtype /XML, an object number no earlier revision holds) that no /Metadata
    key of the file names: the key that named it is damaged ("/Mepadata 5 0 R", "/Metadata06 0 R"),
    and the update's statement would go unread. Every metadata stream hangs from a /Metadata key
    (the catalog's, a page's, an image's: ISO 32000-1 14.3.2), and no writer adds one that nothing
    names. Judged only for an update (a /Prev) whose objects are all plain (a classic, non-hybrid
    table, or a cross-reference stream that puts none in an object stream): the key naming a new
    object is then in the bytes (objects in older object streams could not name an object not yet
    made). A single-revision file's unreferenced stream may be a harmless leftover: not judged.

    Also an error: an entry of the update's section whose offset holds another object (its
    subsection header, or a stream's /Index, damaged)."""
    if table is None or not table.update:
        return
    # An update's object streams may hold what names its new metadata stream: that rule is then not judged.
    packed = table.packed
    kind_name = "table" if table.stream is None else "stream"
    for looked, (num, kind, offset, gen) in enumerate(table.rows(data)):
        if looked >= _MAX_UPDATE_OBJECTS:
            return  # an update this large is a rewrite: not judged (bounded time)
        if kind != 1:
            continue
        head = pdfobjects.OBJECT_HEADER.match(data, offset)
        if head is None:
            continue  # pypdf's search for it is check_newest_entries' and _check_repairs' to judge
        if (int(head[1]), int(head[2])) != (num, gen):
            # A damaged subsection header ("3 1" made "4 1" or "0 1"): the update's objects are
            # listed under other numbers, the catalog it redefines under none, and the older
            # revision's catalog would be read. No writer lists one object's offset for another.
            raise MalformedFile(
                f"the newest cross-reference {kind_name} of this PDF lists object {num} {gen} at byte {offset}, which "
                f"holds object {int(head[1])} {int(head[2])}: the {kind_name} is damaged, and the newest revision was not read"
            )
        # The object's dictionary: up to its "stream" keyword (an object with none, or whose
        # "endobj" comes first, is no stream: the next object's keyword is not its own).
        start = head.end()
        _check_info_named(data, table, num, gen, start)
        stream = data.find(b"stream", start, start + _HEAD_BYTES)
        ended = data.find(b"endobj", start, stream)
        if packed or stream < 0 or ended >= 0 or not (_METADATA_TYPE.search(data, start, stream)
                                             and _XML_SUBTYPE.search(data, start, stream)):
            continue
        if _older_header(data, num, gen, offset):
            continue  # the object is older: what names it may be in an object stream
        # What names a new object is in the newest revision too: looked for from its start on.
        if not _named_as_metadata(data, num, gen, max(0, data.rfind(b"startxref", 0, table.at))):
            raise MalformedFile(
                f"the newest revision of this PDF adds an XMP metadata stream (object {num}) that no /Metadata "
                "names: the key that named it is damaged, and the metadata stream was not read"
            )


def _check_info_named(data: Any, table: pdfobjects.Table, num: int, gen: int, start: int) -> None:
    """Raise ``MalformedFile`` when object ``num`` of the newest update (its bytes from ``start``)
    spells a reservation key ("/TDMReservation") but the update's trailer /Info does not name it:
    the reference is damaged ("/Info 4 0 R", "/Info 5 0 0", a /Prev run into it), and the Info
    dictionary the update wrote would go unread. Only an Info dictionary holds these keys."""
    end = data.find(b"endobj", start, start + _HEAD_BYTES)
    end = end if end >= 0 else start + _HEAD_BYTES
    if data.find(b"/TDMReservation", start, end) < 0 and data.find(INFO_RECORD_PREFIX.encode(), start, end) < 0:
        return  # the usual update's object: two literal searches
    trailer = table.trailer if table.stream is None else data[table.at:data.find(b"stream", table.at, table.at + _HEAD_BYTES)]
    named = _INFO_REF.search(trailer)
    if named is not None and (int(named[1]), int(named[2])) == (num, gen):
        return
    if any(_info_key(word[1]) is not None for word in re.compile(_INFO_KEY_NAMED).finditer(data, start, end)):
        raise MalformedFile(
            f"the newest revision of this PDF adds an Info dictionary with a reservation key (object {num} {gen}) "
            "that its trailer's /Info does not name" + (f" (it names {int(named[1])} {int(named[2])})" if named else "")
            + ": the reference is damaged, and that Info dictionary was not read"
        )


def _older_header(data: Any, num: int, gen: int, before: int) -> bool:
    """Whether "num gen obj" heads an object before byte ``before`` (a literal search, as writers
    space it: a regular expression over the whole file cost a read ~0.1 ms)."""
    spelt, at = b"%d %d obj" % (num, gen), 0
    while (at := data.find(spelt, at, before)) >= 0:
        if at == 0 or data[at - 1] not in b"0123456789":
            return True
        at += 1
    return False


def _named_as_metadata(data: Any, num: int, gen: int, at: int) -> bool:
    """Whether some /Metadata key from byte ``at`` on names object ``num gen`` (each occurrence of
    the key found literally, then its value matched)."""
    for _ in range(_MAX_METADATA_KEYS):
        at = data.find(b"/Metadata", at)
        if at < 0:
            return False
        ref = _METADATA_REF.match(data, at)
        if ref is not None and (int(ref[1]), int(ref[2])) == (num, gen):
            return True
        at += 9
    return True  # more keys than looked at: not judged (bounded time)

def _has_info(pdf: pdfobjects.Reader) -> bool:
    # pypdf merges every revision's trailer, so an Info dictionary ExifTool's -all= removed would
    # still be read (and tagging would write it back): the file would read "partial" where every
    # viewer shows no Info. Any other Info pypdf reads is read, a reservation in it counting.
    return "/Info" in pdf.trailer and not _info_stripped(pdf)


def _info_stripped(pdf: pdfobjects.Reader) -> bool:
    # Removed by an update that both freed it and left it out of its trailer (ExifTool's -all=).
    # Only left out of the trailer (pypdf's incremental writer frees nothing), or freed while the
    # newest trailer still names it, pypdf and ExifTool still show it (poppler and qpdf do not).
    ref = pdf.trailer.get("/Info")
    return (isinstance(ref, pdfobjects.Ref) and pdf.newest is not None and "/Info" not in pdf.newest
            and pdf.deleted(ref.num))


def _chain(buf: Any, parsed: Parsed | None) -> pdfobjects.Reader | None:
    """pdfobjects' reading of the cross-reference chain, for the pypdf paths; None where only
    pypdf reads it (it repairs the file, merging every trailer it finds: its reading holds)."""
    try:
        return pdfobjects.reader(buf, parsed)
    except Exception:  # the fast path logged why
        return None


def check_chain(pdf: pdfobjects.Reader) -> None:
    """Raise ``MalformedFile`` when the chain of cross-reference sections the last ``startxref``
    leads to leaves the newest revision out, so that pypdf and the fast reader alike would read
    an older one as the document (a reservation added by the update lost, use allowed).

    That is so when, after the chain's last section in the file, another revision's parts
    follow (objects, a section, a trailer, a startxref: the newest startxref or a /Prev points
    wrong), and when the newest trailer names no catalog: every trailer is merged into one, so an
    older trailer's /Root would name the catalog (an update must repeat it, ISO 32000-1 7.5.6).
    """
    end, tail = pdf.after_chain()
    part = _REVISION_PART.search(pdf.buf, end, tail)
    if part is not None:
        raise MalformedFile(
            f"the cross-reference chain this PDF's last startxref leads to ends at byte {end}, but bytes {end} to "
            f"{tail} hold another revision (its first part at byte {part.start()}), the newest, which was not read: "
            "the startxref or a /Prev points wrong"
        )
    if pdf.newest is not None and "/Root" not in pdf.newest and "/Root" in pdf.trailer:
        raise MalformedFile(
            "the newest trailer of this PDF names no catalog (/Root): only an older revision's trailer does, "
            "so the newest revision's catalog was not read"
        )


_WHOLE_STARTXREF = re.compile(rb"startxref[\t\n\f\r ]+[0-9]+[\t\n\f\r ]+%%EOF")


def _check_tail(buf: Any) -> None:
    """Raise ``MalformedFile`` when another revision's parts follow the last whole
    "startxref N %%EOF" of a file the fast reader could not follow: the newest revision's own
    startxref is damaged, and pypdf would recover the older revision the last whole one leads to
    (a reservation added by the update lost, use allowed). Junk after the end, or a file with no
    whole startxref at all (pypdf rebuilds it from every object), is left to pypdf."""
    at, tried = len(buf), 0
    while (at := buf.rfind(b"startxref", 0, at)) >= 0 and tried < _MAX_CANDIDATES:
        tried += 1
        whole = _WHOLE_STARTXREF.match(buf, at)
        if whole is None:
            continue
        part = _REVISION_PART.search(buf, whole.end())
        if part is not None:
            raise MalformedFile(
                f"the last whole startxref of this PDF ends at byte {whole.end()}, but another revision follows "
                f"(its first part at byte {part.start()}) whose own startxref is damaged: the newest revision was not read"
            )
        return


def _read_pypdf(buf: Any, options: Options | None) -> _Found:
    """The reference reading, and the fallback for whatever pdfobjects is not sure of."""
    chain = _chain(buf, options.parsed if options is not None else None)
    if chain is not None:
        check_chain(chain)
    else:
        _check_tail(buf)
    doc = _load(buf, options)
    check_newest_update(buf, newest_table(buf))  # after _load: where _check_repairs finds a read object damaged, it says so first
    info = chain is None or _has_info(chain)
    named = doc.reader.trailer.raw_get("/Info") if "/Info" in doc.reader.trailer else None
    if info and doc.info is None and named is not None:
        check_info_lost(buf, f"object {named.idnum} {named.generation}" if hasattr(named, "idnum") else "a direct value")
    return _Found(doc.packet, doc.metadata_ref.idnum if doc.metadata_ref else None, doc.metadata_error,
                  doc.info_values if info else {}, doc.info_errors if info else [])


def _fast_text(value: Any) -> str:
    # What _text makes of the value pypdf would have parsed.
    if isinstance(value, bytes):
        return pdfobjects.text_string(value)
    if type(value) is int:
        return str(value)
    if isinstance(value, str):
        return value  # a name, "/" included, as str(NameObject) gives it
    raise LeaveToLibrary  # pypdf's str() of reals, booleans, arrays... is its own


def _fast_found(pdf: pdfobjects.Reader, table: pdfobjects.Table | None = None) -> _Found:
    """What _read_pypdf finds, as far as pdfobjects can tell; raises LeaveToLibrary elsewhere."""
    if "/Encrypt" in pdf.trailer:
        raise LeaveToLibrary  # pypdf decrypts, with a password or without
    root = pdf.trailer.get("/Root")
    catalog = pdf.get(root) if isinstance(root, pdfobjects.Ref) else None
    if not isinstance(catalog, dict) or catalog.get("/Type") != "/Catalog":
        raise LeaveToLibrary  # pypdf searches the file for a catalog
    found = _Found()
    assert isinstance(root, pdfobjects.Ref)  # a catalog was read
    check_catalog_read(pdf.buf, table, (root.num, root.gen), "/Metadata" in catalog)
    if "/Metadata" in catalog:
        ref = catalog["/Metadata"]
        if isinstance(ref, pdfobjects.Ref):
            found.metadata_object = ref.num
            check_newest_entries(pdf.buf, table, [(ref.num, ref.gen)])
        stream = pdf.resolve(ref)
        if isinstance(stream, pdfobjects.Stream):
            try:
                packet = pdf.decode(stream, xmp.MAX_PACKET + 1)
                found.packet = packet if packet.strip() else None
            except pdfobjects.TooLarge:
                found.metadata_error = _TOO_LARGE
        elif stream is not None:
            found.metadata_error = _NOT_A_STREAM
    if _has_info(pdf):
        info = pdf.resolve(pdf.trailer["/Info"])
        if isinstance(info, pdfobjects.Stream):
            raise LeaveToLibrary  # a stream is a dictionary to pypdf
        if isinstance(info, dict):
            found.info_values = {key[1:]: _fast_text(pdf.resolve(info[key])) for key in INFO_KEYS if key in info}
            found.info_errors = near_info_keys(info)
        named = pdf.trailer["/Info"]
        if isinstance(named, pdfobjects.Ref):
            check_info_read(pdf.buf, table, (named.num, named.gen), isinstance(info, dict))
            check_info_bytes(pdf.buf, table, (named.num, named.gen), found.info_values)
            if not isinstance(info, dict):
                check_info_lost(pdf.buf, f"object {named.num} {named.gen}")
    return found


def _read_fast(buf: Any, parsed: Parsed | None = None) -> _Found | None:
    """What _read_pypdf would find, read without pypdf; None when only pypdf can tell."""
    try:
        pdf = pdfobjects.reader(buf, parsed)
    except Exception as exc:
        # LeaveToLibrary, and anything unforeseen: pypdf decides, never a crash; a bug is logged.
        fell_back("the fast PDF reader", "pypdf", exc, expected=(LeaveToLibrary,))
        return None
    check_chain(pdf)  # a MalformedFile: what neither reader would read
    table = newest_table(pdf.buf, pdf)
    root = pdf.trailer.get("/Root")
    if isinstance(root, pdfobjects.Ref):
        check_newest_entries(pdf.buf, table, [(root.num, root.gen)])
    try:
        found = _fast_found(pdf, table)
    except MalformedFile:
        raise
    except Exception as exc:
        fell_back("the fast PDF reader", "pypdf", exc, expected=(LeaveToLibrary,))
        return None
    # After the reading: where a read object is found damaged, its own check says so first.
    check_newest_update(pdf.buf, table)
    return found


def _info_signals(values: dict[str, str], report: CarrierReport) -> None:
    prefix = INFO_RECORD_PREFIX[1:]
    record = {k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)}
    signals, errors = decode_all(
        [
            (project.decode, (record,)),
            (tdmrep.decode, (values.get(INFO_TDM_RESERVATION[1:]), values.get(INFO_TDM_POLICY[1:]))),
        ],
        carrier="info",
    )
    report.signals += signals
    report.errors += errors


# What only a revision holds: an object, a cross-reference table, a trailer, a startxref (in any
# case: one flipped bit makes "startxreF").
_REVISION_PART = re.compile(rb"[0-9]+[\t\n\f\r ]+[0-9]+[\t\n\f\r ]+obj|xref|trailer", re.IGNORECASE)
_MAX_CANDIDATES = 1000  # "startxref" occurrences tried from the end: bounded whatever the file holds
_METADATA_TYPE = re.compile(rb"/Type[\t\n\f\r ]*/Metadata(?![^\t\n\f\r ()<>\[\]{}/%])")
_XML_SUBTYPE = re.compile(rb"/Subtype[\t\n\f\r ]*/XML(?![^\t\n\f\r ()<>\[\]{}/%])")
_HEAD_BYTES = 4096  # of an object's dictionary looked at for /Type and /Subtype
# The key, ended (a digit right after it is still the name: "/Metadata06 0 R" names nothing), then a reference.
_METADATA_REF = re.compile(rb"/Metadata(?![^\t\n\f\r ()<>\[\]{}/%])[\t\n\f\r ]*([0-9]{1,10})[\t\n\f\r ]+([0-9]{1,10})[\t\n\f\r ]+R(?![A-Za-z])")
_MAX_METADATA_KEYS = 100_000  # /Metadata keys looked at for the one naming a new metadata stream
_CATALOG_BYTES = 64 * 1024  # of the newest catalog looked at for a /Metadata key
_METADATA_KEY = re.compile(rb"/Metadata(?![^\t\n\f\r ()<>\[\]{}/%])")
_MAX_UPDATE_OBJECTS = 100_000  # objects of the newest update looked at


def check_newest_revision(buf: Any) -> None:
    """Raise ``MalformedFile`` when the newest revision of the PDF is damaged.

    An incremental update (rightsmeta's own, or any editor's) appends objects, a cross-reference
    section and a ``startxref`` line. If that line or the section is damaged, or the file was cut
    inside the update, pypdf quietly reads the previous revision instead: the file would read as
    it was before it was tagged, with no error (a reservation lost, use allowed). ExifTool calls
    such a file "Invalid xref table" and qpdf "damaged"; here it is an error, so the decision
    fails closed. pypdf steps back when the last ``startxref`` it can find (spelt exactly, with
    an offset) is an older revision's: the newest revision is damaged when, after that line, the
    file holds another revision's parts. (A wrong offset on the newest line is different: pypdf
    then rebuilds the cross-references from every object, the newest included.)
    """
    end = len(buf)
    for _ in range(_MAX_CANDIDATES):
        at = buf.rfind(b"startxref", 0, end)
        if at < 0:
            return  # no intact revision end at all: pypdf rebuilds from every object, newest last
        found = pdfobjects.STARTXREF_AT.match(buf, at)
        if found is not None:
            after = _REVISION_PART.search(buf, found.end())
            if after is None:
                return
            raise MalformedFile(
                f"the newest revision of this PDF is damaged (found at byte {after.start()}, after the last "
                f"intact startxref at byte {at}): its update is cut off or its cross-reference is broken; "
                "not falling back to the older revision"
            )
        end = at
    raise MalformedFile(f"the PDF has more than {_MAX_CANDIDATES} broken startxref lines")


def read(buf: Any, fmt: str, options: Options | None = None) -> list[CarrierReport]:
    found = _read_fast(buf, options.parsed if options is not None else None)
    if found is None:
        # Only pypdf's recovery can step back to an older revision; the fast reader reads the
        # chain from the startxref at the very end, or is unsure.
        check_newest_revision(buf)
        found = _read_pypdf(buf, options)
    return _reports(found, options.parsed if options is not None else None)


def _reports(found: _Found, parsed: Parsed | None = None) -> list[CarrierReport]:
    reports: list[CarrierReport] = []
    if found.packet is not None or found.metadata_error is not None:
        where = "metadata stream" if found.metadata_object is None else f"metadata stream (object {found.metadata_object})"
        if found.metadata_error is not None:
            reports.append(CarrierReport("xmp", where, errors=[found.metadata_error]))
        else:
            reports.append(xmp.carrier_report(found.packet or b"", where, parsed=parsed))
    if found.info_values or found.info_errors:
        report = CarrierReport("info", "Info dictionary", values=dict(found.info_values), errors=list(found.info_errors))
        _info_signals(found.info_values, report)
        reports.append(report)
    return reports


# --- writing: one incremental update --------------------------------------------------------

_STARTXREF = re.compile(rb"startxref\s+(\d+)")
_MAX_OBJECT_NUMBER = 8_388_607  # ISO 32000-1 annex C: readers need not handle more


def _last_xref(data: bytes) -> tuple[int, bool]:
    """Offset of the last cross-reference section and whether it is a classic table."""
    tail_start = max(0, len(data) - 4096)
    matches = list(_STARTXREF.finditer(data, tail_start))
    if not matches:
        raise MalformedFile("the PDF has no startxref near its end; repair it (e.g. qpdf) before tagging")
    offset = int(matches[-1].group(1))
    section = data[offset:offset + 64].lstrip()
    if section.startswith(b"xref"):
        return offset, True
    if re.match(rb"\d+\s+\d+\s+obj", section):
        return offset, False
    # pypdf read it by reconstructing the cross-references; appending to a broken chain would
    # leave a file other readers may not open.
    raise MalformedFile("the PDF's startxref offset is wrong; repair it (e.g. qpdf) before tagging")


def _serialise(obj: PdfObject) -> bytes:
    out = io.BytesIO()
    obj.write_to_stream(out)
    return out.getvalue()


def _file_ids(reader: PdfReader) -> ArrayObject | None:
    """The trailer's /ID, as bytes; reads the file, so pypdf's errors are the file's."""
    from pypdf.generic import ArrayObject, ByteStringObject, TextStringObject

    ids = reader.trailer["/ID"] if "/ID" in reader.trailer else None
    if not isinstance(ids, ArrayObject):
        return None
    # File identifiers are bytes; pypdf may have decoded them as text.
    return ArrayObject(ByteStringObject(i.original_bytes) if isinstance(i, TextStringObject) else i for i in ids)


def _trailer_refs(root: bytes, info: bytes | None, ids: bytes | None) -> bytes:
    """The trailer's /Root, /Info and /ID entries, from their serialised values."""
    return b" /Root " + root + (b" /Info " + info if info is not None else b"") + (b" /ID " + ids if ids is not None else b"")


def _subsections(ids: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for idnum in sorted(ids):
        if runs and runs[-1][-1] + 1 == idnum:
            runs[-1].append(idnum)
        else:
            runs.append([idnum])
    return runs


def _increment(data: bytes, objects: dict[int, tuple[int, bytes]], size: int, refs: bytes) -> bytes:
    """The update appended after ``data`` (``objects``: number -> generation and serialised
    object; ``refs``: ``_trailer_refs``); it reads nothing of the file beyond its end, so an
    exception here is a bug of ours, never a malformed file."""
    prev, classic = _last_xref(data)
    out = io.BytesIO()
    base = len(data)
    if not data.endswith((b"\n", b"\r")):
        out.write(b"\n")
    offsets: dict[int, tuple[int, int]] = {}
    for idnum, (generation, obj) in sorted(objects.items()):
        offsets[idnum] = (base + out.tell(), generation)
        out.write(f"{idnum} {generation} obj\n".encode() + obj + b"\nendobj\n")
    if classic:
        xref_at = base + out.tell()
        out.write(b"xref\n")
        for run in _subsections(list(offsets)):
            out.write(f"{run[0]} {len(run)}\n".encode())
            for idnum in run:
                offset, generation = offsets[idnum]
                out.write(f"{offset:010d} {generation:05d} n\r\n".encode())  # exactly 20 bytes
        out.write(b"trailer\n<< /Size %d /Prev %d%s >>\n" % (size, prev, refs))
    else:
        xref_id = size
        size += 1
        xref_at = base + out.tell()
        offsets[xref_id] = (xref_at, 0)
        width = 4 if xref_at < 2**32 else 8
        rows = b"".join(
            b"\x01" + offset.to_bytes(width, "big") + generation.to_bytes(2, "big")
            for _, (offset, generation) in sorted(offsets.items())
        )
        index = b" ".join(b"%d %d" % (run[0], len(run)) for run in _subsections(list(offsets)))
        out.write(b"%d 0 obj\n<< /Type /XRef /Size %d /Prev %d%s /W [1 %d 2] /Index [%s] /Length %d >>\nstream\n"
                  % (xref_id, size, prev, refs, width, index, len(rows)) + rows + b"\nendstream\nendobj\n")
    out.write(f"startxref\n{xref_at}\n%%EOF\n".encode())
    return out.getvalue()


def _info_dictionary(existing: DictionaryObject | None, assertion: Assertion) -> DictionaryObject:
    from pypdf.generic import DictionaryObject, NameObject, create_string_object

    info = DictionaryObject(existing or {})
    for key in INFO_KEYS:
        info.pop(key, None)
    for key, value in _info_entries(assertion).items():
        info[NameObject(key)] = create_string_object(value)
    return info


def write(data: bytes, fmt: str, assertion: Assertion, options: Options | None = None) -> tuple[Spliced, list[str]]:
    """The PDF with the assertion appended as an incremental update, and the carriers written."""
    # pypdf would read the older revision and the update would be chained to it, leaving the
    # damaged newest revision (another tool's edit, perhaps) out of the document for good.
    try:
        check_newest_revision(data)
        chain = _chain(data, options.parsed if options is not None else None)
        if chain is not None:
            check_chain(chain)
    except MalformedFile as exc:
        raise MalformedFile(f"{exc}; repair it (e.g. qpdf) before tagging") from None
    new = _write_fast(data, assertion, options.parsed if options is not None else None)
    return (new if new is not None else _write_pypdf(data, assertion, options)), ["xmp", "info"]


def _packet(existing: bytes | None, assertion: Assertion, parsed: Parsed | None = None) -> bytes:
    try:
        return xmp.write_packet(existing, assertion, pdfa=True, parsed=parsed)
    except MalformedMetadata as exc:
        raise MalformedMetadata(f"the PDF's XMP is malformed ({exc}); not writing over it") from None


def _metadata_stream(packet: bytes) -> bytes:
    # XMP streams stay unfiltered: PDF/A requires it, and tools that scan bytes for packets find it.
    return b"<< /Type /Metadata /Subtype /XML /Length %d >>\nstream\n%s\nendstream" % (len(packet), packet)


def _appended(data: bytes, update: bytes) -> Spliced:
    # The original and the update after it, as pieces: a large PDF is not copied to be written.
    return splice.replace(data, [(len(data), len(data), update)])


def _write_fast(data: bytes, assertion: Assertion, parsed: Parsed | None = None) -> Spliced | None:
    """``_write_pypdf``'s update, made from what the fast reader reads (no pypdf: ~0.1 s to
    import, ~2 ms a file); None wherever that reader is unsure or a value is not one this
    writes back exactly (a real number, a name that is not UTF-8), and pypdf writes it."""
    try:
        reader = pdfobjects.reader(data, parsed)  # kept: the read-back and the content check read on top of it
        found = _fast_found(reader)  # unsure wherever reading would be (encryption, odd catalogs)
        if found.metadata_error is not None:
            return None  # pypdf's own reading words the refusal
        root = reader.trailer["/Root"]
        catalog = reader.get(root)
        declared = reader.trailer.get("/Size")
        if type(declared) is not int:
            return None
        used = set().union(*(numbers for _, numbers, _ in reader.sections()))
        size = max(declared, max(used, default=0) + 1)
        if size > _MAX_OBJECT_NUMBER:
            return None
        raw_info = None if _info_stripped(reader) else reader.trailer.get("/Info")
        info = reader.resolve(raw_info)
        ids = reader.trailer.get("/ID")
        objects: dict[int, tuple[int, bytes]] = {}
        stream = _metadata_stream(_packet(found.packet, assertion, parsed))
        metadata = catalog.get("/Metadata")
        if isinstance(metadata, pdfobjects.Ref):
            objects[metadata.num] = (metadata.gen, stream)
        else:
            objects[size] = (0, stream)
            objects[root.num] = (root.gen, _pdf_value({**catalog, "/Metadata": pdfobjects.Ref(size, 0)}))
            size += 1
        old = info if isinstance(info, dict) else {}
        entries = {k: v for k, v in old.items() if k not in INFO_KEYS} | {
            k: _text_bytes(v) for k, v in _info_entries(assertion).items()}
        info_ref = raw_info if isinstance(raw_info, pdfobjects.Ref) and isinstance(info, dict) else None
        if info_ref is None:
            info_ref, size = pdfobjects.Ref(size, 0), size + 1
        objects[info_ref.num] = (info_ref.gen, _pdf_value(entries))
        refs = _trailer_refs(_pdf_value(root), _pdf_value(info_ref),
                             _pdf_value(ids) if isinstance(ids, list) else None)
    except LeaveToLibrary:
        return None
    return _appended(data, _increment(data, objects, size, refs))


# Bytes a name may hold as they are (ISO 32000-1 7.3.5): printable ASCII but delimiters and "#".
_NAME_REGULAR = frozenset(range(0x21, 0x7F)) - frozenset(b"()<>[]{}/%#")
_NAME_REGULAR_BYTES = bytes(sorted(_NAME_REGULAR))


def _pdf_value(value: Any) -> bytes:
    """A value the fast reader parsed, written back; LeaveToLibrary for kinds it does not write exactly."""
    if value is None:
        return b"null"
    if value is True or value is False:
        return b"true" if value else b"false"
    if type(value) is int:
        return b"%d" % value
    if isinstance(value, pdfobjects.Ref):
        return b"%d %d R" % (value.num, value.gen)
    if isinstance(value, str):  # a name, "/" first, #-escapes decoded
        raw = value[1:].encode()
        if not raw.translate(None, _NAME_REGULAR_BYTES):  # the usual name, nothing to escape
            return b"/" + raw
        return b"/" + b"".join(bytes((c,)) if c in _NAME_REGULAR else b"#%02X" % c for c in raw)
    if isinstance(value, bytes):  # a string: hex keeps every byte as it is
        return b"<" + value.hex().encode() + b">"
    if isinstance(value, list):
        return b"[" + b" ".join(_pdf_value(v) for v in value) + b"]"
    if isinstance(value, dict):
        return b"<<" + b"".join(b" " + _pdf_value(k) + b" " + _pdf_value(v) for k, v in value.items()) + b" >>"
    raise LeaveToLibrary  # a real number, a stream: pypdf writes those


def _text_bytes(text: str) -> bytes:
    """A text string's bytes: ASCII as it is (PDFDocEncoding agrees), else UTF-16BE with its BOM."""
    return text.encode("ascii") if text.isascii() else b"\xfe\xff" + text.encode("utf-16-be")


def _info_entries(assertion: Assertion) -> dict[str, str]:
    """The Info dictionary entries rightsmeta writes (INFO_KEYS) for ``assertion``."""
    entries = {INFO_RECORD_PREFIX + key: value for key, value in (project.encode(assertion) or {}).items()}
    tdm = tdmrep.encode(assertion)
    if tdm:
        entries[INFO_TDM_RESERVATION] = str(tdm["reservation"])
        if tdm["policy"]:
            entries[INFO_TDM_POLICY] = str(tdm["policy"])
    return entries


def _write_pypdf(data: bytes, assertion: Assertion, options: Options | None) -> Spliced:
    """The update written with pypdf's reading of the file (its recovery, decryption check)."""
    from pypdf.generic import DictionaryObject, IndirectObject, NameObject

    doc = _load(data, options)
    reader = doc.reader
    if reader.is_encrypted:
        raise UnsupportedFormat(
            "rightsmeta does not write into encrypted PDFs: the update would have to be encrypted "
            "with the document's key, which pypdf cannot do for incremental updates; the file is unchanged"
        )
    if doc.metadata_error is not None:
        raise MalformedMetadata(f"{doc.metadata_error}; not writing over it")
    stream = _metadata_stream(_packet(doc.packet, assertion))

    try:
        root_ref = reader.trailer.raw_get("/Root")
        used = [i for xref in reader.xref.values() for i in xref] + list(reader.xref_objStm)
        size: int = max(int(str(reader.trailer["/Size"])), max(used, default=0) + 1)
        ids = _file_ids(reader)
    except Exception as exc:
        raise MalformedFile(f"the PDF's trailer is broken ({exc}); repair it before tagging") from None
    if not isinstance(root_ref, IndirectObject):
        raise MalformedFile("the PDF's trailer has no /Root reference; repair it before tagging")
    if size > _MAX_OBJECT_NUMBER:
        raise MalformedFile(f"the PDF's trailer claims {size} objects, beyond PDF's limit; repair it before tagging")

    objects: dict[int, tuple[int, bytes]] = {}

    def new_id() -> int:
        nonlocal size
        size += 1
        return size - 1

    if doc.metadata_ref is not None:
        objects[doc.metadata_ref.idnum] = (doc.metadata_ref.generation, stream)
    else:
        stream_id = new_id()
        objects[stream_id] = (0, stream)
        catalog = DictionaryObject(reader.root_object)
        catalog[NameObject("/Metadata")] = IndirectObject(stream_id, 0, reader)
        objects[root_ref.idnum] = (root_ref.generation, _serialise(catalog))

    chain = _chain(data, options.parsed if options is not None else None)
    deleted = chain is not None and _info_stripped(chain)
    info = _info_dictionary(None if deleted else doc.info, assertion)
    info_ref = doc.info_ref if doc.info_ref is not None and not deleted else IndirectObject(new_id(), 0, reader)
    objects[info_ref.idnum] = (info_ref.generation, _serialise(info))
    refs = _trailer_refs(_serialise(root_ref), _serialise(info_ref), _serialise(ids) if ids is not None else None)
    return _appended(data, _increment(data, objects, size, refs))
