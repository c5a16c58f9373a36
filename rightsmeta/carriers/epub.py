"""EPUB 2 and 3: TDMRep and the rightsmeta record as <meta> elements of the package document (OPF).

EPUB 3 (W3C TDMRep): ``<meta property="tdm:reservation">1</meta>`` with the package's
``prefix="tdm: http://www.w3.org/ns/tdmrep#"``; the exact record likewise under a declared
``rightsmeta:`` prefix. EPUB 2 has no prefixes: ``<meta name="tdm:reservation" content="1"/>``.
``dc:rights`` carries the copyright notice in both.

The OPF is edited in place, not re-serialised: expat reports where each element starts and ends,
so only rightsmeta's own elements (and the package's ``prefix`` attribute) change and every other
byte of the publisher's OPF is kept. The archive is rewritten with ``mimetype`` first and stored,
every other member with identical contents; the caller replaces the file atomically.

Hostile input: the zip's entry count, every member's declared size, its compression ratio and the
total are bounded before anything is decompressed (zipfile never inflates past a member's
declared size); container.xml and the OPF are parsed without DTD entities or external fetches.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import re
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from xml.parsers import expat

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from ..errors import MalformedFile, MalformedMetadata, RightsmetaError, UnsupportedFormat
from ..model import Assertion
from ..report import CarrierReport
from ..vocab import decode_all, project, tdmrep
from .heads import EPUB_MIMETYPE as MIMETYPE
from .heads import sniff_epub as sniff  # noqa: F401  (the family's sniff)

if TYPE_CHECKING:
    from . import Options

FORMATS = ("epub",)

OPF = "http://www.idpf.org/2007/opf"
DC = "http://purl.org/dc/elements/1.1/"
CONTAINER = "urn:oasis:names:tc:opendocument:xmlns:container"

MAX_ENTRIES = 10_000
MAX_XML = 4 * 1024 * 1024  # container.xml and the OPF
MAX_TOTAL = 2 * 1024 * 1024 * 1024  # all members, decompressed
MAX_RATIO = 200  # a member above 1 MiB that inflates more than this is a zip bomb
_RATIO_FLOOR = 1024 * 1024

# The prefixes rightsmeta declares (EPUB 3) and writes (both versions).
PREFIXES = {"tdm": tdmrep.NS_HASH, project.PREFIX: project.NS}
# Extra exact-record keys the OPF carries beside the states (XMP has them in its own namespaces).
_EXTRA_KEYS = project.DETAIL_KEYS
_RECORD_KEYS = (*project.ALL_KEYS, *_EXTRA_KEYS)


# --- the archive ---------------------------------------------------------------------------


class _Mapped:
    """A read-only memory map as the seekable file zipfile wants, without copying it."""

    def __init__(self, buf: Any) -> None:
        self._buf = buf

    def __getattr__(self, name: str) -> Any:
        return getattr(self._buf, name)

    def seekable(self) -> bool:
        return True


def _open_zip(buf: Any) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(buf) if isinstance(buf, bytes) else _Mapped(buf))
        infos = archive.infolist()
    except Exception as exc:  # BadZipFile, struct errors, OSError from seeking past the end...
        raise MalformedFile(f"the EPUB's zip archive is broken ({exc})") from None
    try:
        _check_entries(infos)
    except MalformedFile:
        archive.close()
        raise
    return archive


def _check_entries(infos: list[zipfile.ZipInfo]) -> None:
    if len(infos) > MAX_ENTRIES:
        raise MalformedFile(f"the EPUB has {len(infos)} zip entries, more than the {MAX_ENTRIES} allowed")
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise MalformedFile("the EPUB's zip archive names the same entry twice")
    if not infos or infos[0].filename != "mimetype":
        raise MalformedFile("the EPUB's zip archive does not start with its mimetype entry")
    total = 0
    for info in infos:
        total += info.file_size
        if info.file_size > _RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise MalformedFile(f"zip entry {info.filename!r} inflates {info.file_size} bytes from "
                                f"{info.compress_size}: refused as a zip bomb")
        if info.flag_bits & 0x1:
            raise MalformedFile(f"zip entry {info.filename!r} is password-encrypted, which EPUB does not allow")
    if total > MAX_TOTAL:
        raise MalformedFile(f"the EPUB's entries hold {total} bytes decompressed, more than the {MAX_TOTAL} allowed")


def _member(archive: zipfile.ZipFile, name: str) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise MalformedFile(f"the EPUB has no {name}") from None
    if info.file_size > MAX_XML:
        raise MalformedFile(f"{name} is {info.file_size} bytes, more than the {MAX_XML} allowed")
    try:
        with archive.open(info) as fh:
            return fh.read(MAX_XML + 1)
    except Exception as exc:  # bad CRC, bad deflate data, unsupported method
        raise MalformedFile(f"cannot decompress {name} ({exc})") from None


@contextlib.contextmanager
def _refusals(what: str, error: type[RightsmetaError], malformed: tuple[type[Exception], ...], words: str) -> Iterator[None]:
    """A parse of ``what``'s XML refused as ``error``: ``malformed`` (said to be ``words``), or
    an encoding expat asked Python for (unknown, or multi-byte). rightsmeta's own refusals (of a
    member too large, of an entity) pass as they are."""
    try:
        yield
    except malformed as exc:
        raise error(f"{what} is {words} ({exc})") from None
    except RightsmetaError:
        raise
    except (LookupError, ValueError) as exc:
        raise error(f"{what} cannot be decoded ({exc})") from None


def _opf_path(archive: zipfile.ZipFile) -> str:
    with _refusals("META-INF/container.xml", MalformedFile, (DefusedXmlException, SafeET.ParseError), "not safe, well-formed XML"):
        root = SafeET.fromstring(_member(archive, "META-INF/container.xml"), forbid_dtd=True)
    for rootfile in root.iter(f"{{{CONTAINER}}}rootfile"):
        if rootfile.get("media-type") == "application/oebps-package+xml" and rootfile.get("full-path"):
            return str(rootfile.get("full-path"))
    raise MalformedFile("META-INF/container.xml names no package document (rootfile)")


# --- the package document ------------------------------------------------------------------


@dataclass
class _Element:
    start: int  # offset of "<"
    end: int = -1  # offset after the closing ">"
    attrs: dict[str, str] = field(default_factory=dict)
    text: str = ""


@dataclass
class _Opf:
    data: bytes
    version: str = ""
    encoding: str | None = None
    package: _Element | None = None
    package_qname: str = "package"
    metadata: _Element | None = None
    children: int = 0  # elements in <metadata>
    meta_prefix: str = ""  # "opf:" when the OPF elements are prefixed
    dc_bound: bool = False  # "dc" already names Dublin Core inside <metadata>
    metadata_end: int = -1  # offset of "</metadata>"
    indent: str = "\n    "
    metas: list[_Element] = field(default_factory=list)
    rights: list[_Element] = field(default_factory=list)
    languages: list[_Element] = field(default_factory=list)  # dc:language, the book's first

    @property
    def prefixes(self) -> dict[str, str]:
        declared = self.package.attrs.get("prefix", "") if self.package else ""
        return dict(re.findall(r"(\S+):\s+(\S+)", declared))


def _split(name: str) -> tuple[str, str, str]:
    """expat's "uri local prefix" (namespace_prefixes) as (uri, local, prefix)."""
    parts = name.split(" ")
    if len(parts) == 1:
        return "", parts[0], ""
    return parts[0], parts[1], parts[2] if len(parts) > 2 else ""


def _tag_end(data: bytes, start: int) -> int:
    """Offset after the ">" closing the tag that starts at ``start`` (quotes respected)."""
    quote = 0
    for i in range(start, len(data)):
        c = data[i]
        if quote:
            if c == quote:
                quote = 0
        elif c in (0x22, 0x27):
            quote = c
        elif c == 0x3E:
            return i + 1
    raise MalformedFile("the package document ends inside a tag")


def _element_end(data: bytes, start: int, at_end: int) -> int:
    """Offset after an element, from its start and expat's position at its end event.

    expat reports an end tag's "<", but the offset *after* an empty element's "/>".
    """
    start_tag_end = _tag_end(data, start)
    if data[start_tag_end - 2:start_tag_end] == b"/>":
        return start_tag_end
    return _tag_end(data, at_end)


def _parse_opf(data: bytes) -> _Opf:
    if len(data) > MAX_XML:
        raise MalformedFile(f"the package document is more than {MAX_XML} bytes")
    opf = _Opf(data)
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.namespace_prefixes = True
    # What defusedxml forbids: entity declarations and anything external.
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    scope: dict[str, list[str]] = {}
    stack: list[str] = []
    current: list[_Element | None] = [None]
    texts: list[str] = []  # joined once at the element's end: += would be quadratic

    def refuse(*_args: Any) -> int:
        raise MalformedMetadata("the package document declares or uses entities, which are not allowed")

    def xml_decl(_version: str | None, encoding: str | None, _standalone: int) -> None:
        opf.encoding = encoding

    def ns_start(prefix: str | None, uri: str) -> None:
        scope.setdefault(prefix or "", []).append(uri)

    def ns_end(prefix: str | None) -> None:
        scope[prefix or ""].pop()

    def start(name: str, attrs: dict[str, str]) -> None:
        ns, local, prefix = _split(name)
        at = parser.CurrentByteIndex
        depth = len(stack)
        stack.append(name)
        plain = {_split(k)[1]: v for k, v in attrs.items()}
        if depth == 0:
            if (ns, local) != (OPF, "package"):
                raise MalformedFile("the package document's root is not an OPF <package>")
            opf.package = _Element(at, _tag_end(data, at), plain)
            opf.package_qname = f"{prefix}:{local}" if prefix else local
            opf.version = plain.get("version", "")
        elif depth == 1 and (ns, local) == (OPF, "metadata"):
            opf.metadata = _Element(at, _tag_end(data, at), plain)
            opf.meta_prefix = f"{prefix}:" if prefix else ""
            opf.dc_bound = bool(scope.get("dc")) and scope["dc"][-1] == DC
        elif depth == 2 and _split(stack[1])[:2] == (OPF, "metadata"):
            if not opf.children:  # the first child's indentation is the one new lines get
                line = data.rfind(b"\n", max(0, at - 256), at)
                if line >= 0 and not data[line + 1:at].strip():
                    opf.indent = data[line:at].decode("utf-8", "replace")
            opf.children += 1
            if (ns, local) in ((OPF, "meta"), (DC, "rights"), (DC, "language")):
                element = _Element(at, attrs=plain)
                {"meta": opf.metas, "rights": opf.rights, "language": opf.languages}[local].append(element)
                current[0] = element
                texts.clear()

    def end(name: str) -> None:
        at = parser.CurrentByteIndex
        stack.pop()
        element = current[0]
        if element is not None and len(stack) == 2:
            element.end = _element_end(data, element.start, at)
            element.text = "".join(texts)
            current[0] = None
        if len(stack) == 1 and _split(name)[:2] == (OPF, "metadata") and opf.metadata:
            if _element_end(data, opf.metadata.start, at) != opf.metadata.end:  # not <metadata/>
                opf.metadata_end = at

    def text(chars: str) -> None:
        if current[0] is not None:
            texts.append(chars)

    parser.XmlDeclHandler = xml_decl
    parser.StartDoctypeDeclHandler = None
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartNamespaceDeclHandler = ns_start
    parser.EndNamespaceDeclHandler = ns_end
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    with _refusals("the package document", MalformedMetadata, (expat.ExpatError,), "not well-formed XML"):
        parser.Parse(data, True)
    if opf.package is None or opf.metadata_end < 0:
        raise MalformedMetadata("the package document has no <metadata> with children")
    return opf


def _key(opf: _Opf, meta: _Element) -> str | None:
    """The meta's name in rightsmeta's terms ("tdm:reservation", "rightsmeta:AITraining"), or None."""
    if "refines" in meta.attrs:
        return None  # says something about another element, not the publication
    if "property" in meta.attrs:
        prefix, _, local = meta.attrs["property"].strip().partition(":")
        ns = opf.prefixes.get(prefix) or PREFIXES.get(prefix)  # undeclared "tdm:" is still read
        if ns in tdmrep.NAMESPACES:
            return f"tdm:{local}"
        return f"{project.PREFIX}:{local}" if ns == project.NS else None
    name = meta.attrs.get("name", "").strip()
    if name in ("tdm-reservation", "tdm-policy"):  # the HTML spelling, as some producers write it
        return name.replace("-", ":", 1)
    prefix, _, local = name.partition(":")
    return name if prefix in PREFIXES and local else None


def _notices(opf: _Opf) -> tuple[list[_Element], list[_Element]]:
    """The package's ``dc:rights``: those in its own language (no ``xml:lang``, or the package's,
    else the book's first ``dc:language``: an EPUB 2 package has no ``xml:lang``), which are the
    copyright notice, and those in other languages (translations of it)."""
    own = (opf.package.attrs.get("lang", "") if opf.package else "").strip().lower()
    if not own and opf.languages:
        own = opf.languages[0].text.strip().lower()
    notice: list[_Element] = []
    translations: list[_Element] = []
    for rights in opf.rights:
        lang = rights.attrs.get("lang", "").strip().lower()
        (notice if not lang or lang == own else translations).append(rights)
    return notice, translations


def _value(meta: _Element) -> str:
    return meta.text if "property" in meta.attrs else meta.attrs.get("content", "")


def _read_opf(opf: _Opf, location: str) -> CarrierReport:
    report = CarrierReport("opf", location)
    found: dict[str, list[str]] = {}
    for meta in opf.metas:
        key = _key(opf, meta)
        if key is not None:
            found.setdefault(key, []).append(_value(meta))
    for key, seen in found.items():
        if len(set(seen)) > 1:
            report.errors.append(f"{key} appears {len(seen)} times with different values: {seen}")
        report.values[key] = seen[0]
    values = report.values
    record = {k.split(":", 1)[1]: v for k, v in values.items() if k.startswith(f"{project.PREFIX}:")}
    signals, errors = decode_all(
        [(project.decode, (record,)), (tdmrep.decode, (values.get("tdm:reservation"), values.get("tdm:policy")))],
        carrier="opf",
    )
    report.signals += signals
    report.errors += errors
    notice, translations = _notices(opf)
    rights = [r.text for r in notice + translations if r.text.strip()]  # the notice before its translations
    if rights:
        values["dc:rights"] = rights[0]
        report.rights["copyright"] = rights[0]
    if values.get("tdm:policy"):
        report.rights["policy"] = values["tdm:policy"]
    if record.get("Date"):
        report.rights["date"] = record["Date"]
    if record.get("WorkID"):
        report.rights["work_id"] = record["WorkID"]
    if record.get("HolderName"):
        report.rights["holder"] = {"name": record["HolderName"], "contact": record.get("HolderContact") or None}
    return report


def read(buf: Any, fmt: str, options: Options | None = None) -> list[CarrierReport]:
    archive = _open_zip(buf)
    with archive:
        path = _opf_path(archive)
        data = _member(archive, path)
    try:
        opf = _parse_opf(data)
    except MalformedMetadata as exc:
        return [CarrierReport("opf", path, errors=[f"malformed package document: {exc}"])]
    return [_read_opf(opf, path)]


# --- writing --------------------------------------------------------------------------------


def _escape(text: str, attribute: bool = False) -> str:
    # References keep what XML would otherwise normalise: CR to LF, and in attributes TAB/LF to spaces.
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    if attribute:
        text = text.replace('"', "&quot;").replace("\t", "&#9;").replace("\n", "&#10;")
    return text


def _entries(assertion: Assertion) -> dict[str, str]:
    """Every meta rightsmeta writes, "prefix:Name" -> value."""
    return project.flat(assertion, reservation_key="tdm:reservation", policy_key="tdm:policy")


def _package_prefix(opf: _Opf) -> tuple[int, int, str]:
    """The splice (start, end, text) that declares rightsmeta's prefixes on <package>."""
    assert opf.package is not None
    declared = opf.prefixes
    for prefix, ns in PREFIXES.items():
        bound = declared.get(prefix)
        if bound is not None and bound != ns and not (prefix == "tdm" and bound in tdmrep.NAMESPACES):
            raise UnsupportedFormat(f"the package document binds the prefix {prefix!r} to {bound}; not changing it")
    missing = " ".join(f"{p}: {ns}" for p, ns in PREFIXES.items() if p not in declared)
    current = opf.package.attrs.get("prefix")
    if not missing:
        return opf.package.end, opf.package.end, ""
    value = f"{current.strip()} {missing}" if current and current.strip() else missing
    tag = opf.data[opf.package.start:opf.package.end]
    pos = 1 + len(opf.package_qname.encode())
    for match in re.finditer(rb"""\s+([^\s=/>]+)\s*=\s*("[^"]*"|'[^']*')""", tag[pos:]):
        if match.group(1) == b"prefix":
            start = opf.package.start + pos + match.start()
            return start, opf.package.start + pos + match.end(), f' prefix="{_escape(value, True)}"'
    at = opf.package.start + pos
    return at, at, f' prefix="{_escape(value, True)}"'


def _removal(data: bytes, element: _Element) -> tuple[int, int, str]:
    start = element.start
    # Take the element's own line's indentation with it, so no blank line is left behind.
    line = data.rfind(b"\n", max(0, start - 256), start)
    if line >= 0 and not data[line:start].strip():
        start = line
    return start, element.end, ""


DCTERMS = "http://purl.org/dc/terms/"


def _modified(opf: _Opf, assertion: Assertion, lines: list[str]) -> list[tuple[int, int, str]]:
    """EPUB 3 requires ``<meta property="dcterms:modified">`` to say when the publication last
    changed (reading systems and stores compare it): the splice that makes the package's say the
    tagging's time (the assertion's date, in the CCYY-MM-DDThh:mm:ssZ form EPUB requires), in
    place, keeping the element's attributes; a package without one gets one in ``lines``."""
    try:
        when = _dt.datetime.fromisoformat(assertion.date) if assertion.date else _dt.datetime.now(_dt.UTC)
    except ValueError:  # a date a library caller wrote in another form: the time of the change
        when = _dt.datetime.now(_dt.UTC)
    stamp = (when if when.tzinfo else when.replace(tzinfo=_dt.UTC)).astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    found = [m for m in opf.metas if "refines" not in m.attrs and m.attrs.get("property", "").strip() == "dcterms:modified"
             and opf.prefixes.get("dcterms", DCTERMS) == DCTERMS]
    if not found:
        lines.append(f'<{opf.meta_prefix}meta property="dcterms:modified">{stamp}</{opf.meta_prefix}meta>')
        return []
    splices = []
    for meta in found:  # EPUB allows one; should a package hold more, none keeps saying the old time
        text_start = _tag_end(opf.data, meta.start)
        if opf.data[text_start - 2:text_start] == b"/>":  # <meta property="dcterms:modified"/>: no text to replace
            splices.append((meta.start, meta.end, f'<{opf.meta_prefix}meta property="dcterms:modified">{stamp}</{opf.meta_prefix}meta>'))
        else:
            splices.append((text_start, opf.data.rindex(b"<", text_start, meta.end), stamp))
    return splices


def _new_opf(opf: _Opf, assertion: Assertion) -> bytes:
    if opf.encoding and opf.encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise UnsupportedFormat(f"the package document is encoded as {opf.encoding}; rightsmeta writes UTF-8 ones only")
    epub3 = opf.version.strip().startswith("3")
    meta = f"{opf.meta_prefix}meta"
    entries = _entries(assertion)
    lines = []
    for key, value in entries.items():
        if epub3:
            lines.append(f'<{meta} property="{key}">{_escape(value)}</{meta}>')
        else:
            lines.append(f'<{meta} name="{key}" content="{_escape(value, True)}"/>')
    if assertion.copyright:
        xmlns = "" if opf.dc_bound else f' xmlns:dc="{DC}"'
        lines.append(f"<dc:rights{xmlns}>{_escape(assertion.copyright)}</dc:rights>")

    # The record's states and the TDMRep pair are replaced whole; holder and date only when given
    # again (as in XMP).
    replaced = {*entries, *(f"{project.PREFIX}:{k}" for k in project.ALL_KEYS), "tdm:reservation", "tdm:policy"}
    splices = [_removal(opf.data, m) for m in opf.metas if _key(opf, m) in replaced]
    if assertion.copyright:
        # The notice is replaced; its translations stay (the holder's own words), except one that
        # only repeated the old notice, which says the new one (as in XMP's dc:rights).
        notice, translations = _notices(opf)
        splices += [_removal(opf.data, r) for r in notice]
        old = next((r.text for r in notice if r.text.strip()), None)
        for rights in translations:
            start = _tag_end(opf.data, rights.start)
            if old is not None and rights.text == old and opf.data[start - 2:start] != b"/>":
                splices.append((start, opf.data.rindex(b"<", start, rights.end), _escape(assertion.copyright)))
    if epub3:
        splices.append(_package_prefix(opf))
        splices += _modified(opf, assertion, lines)
    # Insert after the last child, so whatever whitespace preceded </metadata> still does.
    insert_at = opf.metadata_end
    while insert_at > 0 and opf.data[insert_at - 1:insert_at] in (b" ", b"\t", b"\n", b"\r"):
        insert_at -= 1
    splices.append((insert_at, insert_at, "".join(opf.indent + line for line in lines)))

    # One pass in document order: splices never overlap, and thousands of them stay linear.
    pieces, done = [], 0
    for start, end, text in sorted(splices, key=lambda s: (s[0], s[1])):
        pieces += [opf.data[done:start], text.encode("utf-8")]
        done = end
    pieces.append(opf.data[done:])
    return b"".join(pieces)


def write(data: bytes, fmt: str, assertion: Assertion, options: Options | None = None) -> tuple[bytes, list[str]]:
    """The EPUB with the assertion in its package document, and the carriers written."""
    archive = _open_zip(data)
    with archive:
        if "META-INF/signatures.xml" in archive.namelist():
            raise UnsupportedFormat("the EPUB is signed (META-INF/signatures.xml); changing its package "
                                    "document would break the signature")
        path = _opf_path(archive)
        new_opf = _new_opf(_parse_opf(_member(archive, path)), assertion)
        out = io.BytesIO()
        try:
            with zipfile.ZipFile(out, "w") as target:
                target.comment = archive.comment
                for info in archive.infolist():
                    copy = zipfile.ZipInfo(info.filename, info.date_time)
                    copy.external_attr, copy.comment, copy.create_system = info.external_attr, info.comment, info.create_system
                    # OCF: mimetype first, stored, no extra field; EPUB allows only stored and deflated.
                    copy.compress_type = zipfile.ZIP_STORED if info.filename == "mimetype" or info.compress_type == zipfile.ZIP_STORED else zipfile.ZIP_DEFLATED
                    if info.filename == "mimetype":
                        target.writestr(copy, MIMETYPE)
                    elif info.filename == path:
                        target.writestr(copy, new_opf)
                    else:
                        with archive.open(info) as src, target.open(copy, "w") as dst:
                            shutil.copyfileobj(src, dst, 1024 * 1024)
        except RightsmetaError:
            raise
        except Exception as exc:  # bad CRC, bad deflate data in a member
            raise MalformedFile(f"cannot copy the EPUB's zip entries ({exc}); the file is unchanged") from None
    return out.getvalue(), ["opf"]
