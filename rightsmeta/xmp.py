"""XMP packets: a hardened reader, and the property set rightsmeta writes.

Carrier-independent: the same packet sits in a JPEG APP1 segment, an ID3 PRIV frame or a
PDF metadata stream. Packets come from untrusted files, so parsing forbids DTDs (no entity
expansion, no external fetches) and bounds size and element count, as pypdf does.
"""

from __future__ import annotations

import io
import mmap
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .errors import MalformedMetadata
from .model import Assertion, Holder, State, summary
from .report import CarrierReport
from .vocab import Signal, apart, decode_all, iptc, project, tdmrep

if TYPE_CHECKING:
    from .carriers import Parsed

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
DC = "http://purl.org/dc/elements/1.1/"
XMP_RIGHTS = "http://ns.adobe.com/xap/1.0/rights/"

# prefix -> namespace, for everything rightsmeta writes.
NAMESPACES = {
    "plus": iptc.NS,
    "tdm": tdmrep.NS,
    project.PREFIX: project.NS,
    "dc": DC,
    "xmpRights": XMP_RIGHTS,
}

# The namespaces whose properties say what a work may be used for (not dc: Dublin Core 1.0's URI is
# one character from 1.1's, and a statement is never in it).
_VOCABULARIES = frozenset({iptc.NS, project.NS, XMP_RIGHTS, *tdmrep.NAMESPACES})

MAX_PACKET = 8 * 1024 * 1024
MAX_ELEMENTS = 200_000
_SMALL = 256 * 1024  # below this, element count is bounded by size and the fast parser is safe

Value = str | list[str]


def begins_packet(buf: bytes | bytearray | mmap.mmap, start: int, stop: int) -> bool:
    """Whether an XMP packet begins between ``start`` and ``stop`` (96 bytes or so of a block):
    how a container's walker tells that a block its name or type does not mark as XMP holds one,
    its name or type damaged, so that no reader would take it for XMP."""
    return buf.find(b"<?xpacket begin", start, stop) >= 0 or buf.find(b"<x:xmpmeta", start, stop) >= 0


@dataclass(frozen=True)
class LangAlt:
    """A language-alternative text; rightsmeta writes the x-default entry. ``keeps_languages``:
    the entries the property has in other languages stay (someone else's words, as in
    plus:OtherConstraints, where rightsmeta's sentence is only ever x-default)."""

    text: str
    keeps_languages: bool = False


@dataclass(frozen=True)
class Bag:
    items: tuple[str, ...]


WriteValue = str | LangAlt | Bag | None  # None deletes the property


_RESOURCE, _LI, _ALT = f"{{{RDF}}}resource", f"{{{RDF}}}li", f"{{{RDF}}}Alt"
_CONTAINERS = (_ALT, f"{{{RDF}}}Bag", f"{{{RDF}}}Seq")


def _text(elem: ET.Element) -> Value | None:
    resource = elem.get(_RESOURCE)
    if resource is not None:
        return resource
    if not len(elem):  # most values: a simple text (no container can be found below it)
        return elem.text or ""
    for container in _CONTAINERS:
        node = elem.find(container)
        if node is not None:
            items = node.findall(_LI)
            if container is _ALT:
                # The x-default entry, else the first: what a reader shows by default.
                chosen = next((li for li in items if li.get(XML_LANG) == "x-default"), items[0] if items else None)
                return (chosen.text or "") if chosen is not None else None
            return [li.text or "" for li in items]
    return None  # a struct: none of the properties rightsmeta reads is one


def _split(tag: str) -> tuple[str, str]:
    ns, _, local = tag[1:].partition("}")
    return ns, local


# Entities can only be declared in a DTD. In a packet whose bytes are ASCII-transparent (UTF-8
# or Latin-1, as XMP requires UTF-8), a DTD shows as these bytes: without them the standard
# library's C parser has nothing to expand or fetch, and parses several times faster than
# defusedxml's Python-level parser, which still handles everything else.
_DECLARED_ENCODING = re.compile(rb"\A(?:\xef\xbb\xbf)?<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)")
_TRANSPARENT = frozenset({b"utf-8", b"utf8", b"us-ascii", b"ascii", b"iso-8859-1", b"latin-1", b"latin1"})


def _no_dtd_possible(packet: bytes) -> bool:
    if b"<!DOCTYPE" in packet or b"\x00" in packet[:4] or packet[:2] in (b"\xfe\xff", b"\xff\xfe"):
        return False
    declared = _DECLARED_ENCODING.match(packet)
    return declared is None or declared.group(1).lower() in _TRANSPARENT


def _parse(packet: bytes) -> ET.Element:
    if len(packet) > MAX_PACKET:
        raise MalformedMetadata(f"XMP packet is {len(packet)} bytes, more than the {MAX_PACKET} allowed")
    try:
        if len(packet) <= _SMALL and _no_dtd_possible(packet):
            root: ET.Element = ET.fromstring(packet)
            return root
        return _parse_hardened(packet)
    except ET.ParseError as exc:
        raise MalformedMetadata(f"XMP packet is not well-formed XML: {exc}") from None
    except MalformedMetadata:
        raise  # a ValueError too, but one that already says what is wrong
    except (ValueError, LookupError) as exc:  # expat refuses some declared encodings this way
        raise MalformedMetadata(f"XMP packet cannot be decoded: {exc}") from None


def _parse_hardened(packet: bytes) -> ET.Element:
    import defusedxml.ElementTree as SafeET
    from defusedxml import DefusedXmlException

    try:
        if len(packet) <= _SMALL:
            root: ET.Element = SafeET.fromstring(packet, forbid_dtd=True)
            return root
        count = 0
        last: ET.Element | None = None
        for _event, elem in SafeET.iterparse(io.BytesIO(packet), events=("end",), forbid_dtd=True):
            count += 1
            if count > MAX_ELEMENTS:
                raise MalformedMetadata(f"XMP packet has more than {MAX_ELEMENTS} elements")
            last = elem
        if last is None:
            raise MalformedMetadata("XMP packet is empty")
        return last
    except DefusedXmlException as exc:
        raise MalformedMetadata(f"XMP packet refused: {type(exc).__name__} (DTDs and entities are not allowed)") from None


def properties(packet: bytes) -> dict[tuple[str, str], Value]:
    """Every top-level property of every rdf:Description, keyed by (namespace, name)."""
    return _properties(_parse(packet))


_DESCRIPTION, _IN_RDF, _RDF_ROOT = f"{{{RDF}}}Description", f"{{{RDF}}}", f"{{{RDF}}}RDF"


def _properties(root: ET.Element) -> dict[tuple[str, str], Value]:
    if len(root) and root.tag != _RDF_ROOT and root.find(_RDF_ROOT) is None:
        # Elements, but no rdf:RDF: a packet whose RDF namespace URI is damaged (one flipped byte
        # of it) parses well and holds no property at all; never read as "no statement".
        names = sorted({_split(e.tag)[0] for e in root})
        raise MalformedMetadata(f"XMP packet has no rdf:RDF element in the RDF namespace (its elements are in {names}): "
                                "the namespace is damaged, or this is not XMP")
    rdf = root if root.tag == _RDF_ROOT else root.find(_RDF_ROOT)
    if rdf is not None and len(rdf) and rdf.find(_DESCRIPTION) is None:
        raise MalformedMetadata("XMP packet's rdf:RDF holds elements but no rdf:Description: a damaged name, "
                                "so its properties were not read")
    props: dict[tuple[str, str], Value] = {}
    for desc in root.iter(_DESCRIPTION):
        for attr, value in desc.attrib.items():
            if attr.startswith("{") and not attr.startswith(_IN_RDF):
                props[_split(attr)] = value
        for child in desc:
            if not child.tag.startswith("{"):
                continue
            found = _text(child)
            if found is not None:
                props.setdefault(_split(child.tag), found)
    for ns in {ns for ns, _ in props}.difference(_VOCABULARIES):
        near = min((known for known in _VOCABULARIES if apart(ns, known) <= 2), key=lambda known: apart(ns, known),
                   default=None)
        if near is not None:
            # A rights vocabulary's URI with a byte or two changed is that vocabulary damaged, not
            # another schema: its statement would be read as absent.
            raise MalformedMetadata(f"XMP namespace {ns!r} is {near!r} with a character or two changed: damaged, "
                                    "so its properties were not read")
    return props


@dataclass
class XmpReading:
    """What rightsmeta understood of one XMP packet."""

    signals: list[Signal] = field(default_factory=list)
    rights: dict[str, Any] = field(default_factory=dict)  # copyright, web_statement, holder...
    raw: dict[str, Value] = field(default_factory=dict)  # "prefix:Name" -> value, for reports
    errors: list[str] = field(default_factory=list)


def _one(value: Value | None) -> str | None:
    if isinstance(value, list):
        return value[0] if value else None
    return value


_PREFIXES = {ns: prefix for prefix, ns in NAMESPACES.items()} | {tdmrep.NS_HASH: "tdm"}


def read(packet: bytes, *, carrier: str = "xmp") -> XmpReading:
    """Signals and rights fields of a packet. Raises MalformedMetadata if the packet is unsafe."""
    props = properties(packet)
    out = XmpReading(raw=_raw(props))
    record = {name: _one(value) for (ns, name), value in props.items() if ns == project.NS}

    tdm_ns = next((ns for ns in tdmrep.NAMESPACES if (ns, "reservation") in props or (ns, "policy") in props), None)
    calls: list[tuple[Any, tuple[Any, ...]]] = [
        (project.decode, (record,)),
        (iptc.decode, (_one(props.get((iptc.NS, "DataMining"))), _one(props.get((iptc.NS, "OtherConstraints"))))),
    ]
    if tdm_ns is not None:
        calls.append((tdmrep.decode, (_one(props.get((tdm_ns, "reservation"))), _one(props.get((tdm_ns, "policy"))))))
    out.signals, out.errors = decode_all(calls, carrier=carrier)

    rights = out.rights
    for key, ns, name in (
        ("copyright", DC, "rights"),
        ("web_statement", XMP_RIGHTS, "WebStatement"),
        ("usage_terms", XMP_RIGHTS, "UsageTerms"),
        ("policy", tdmrep.NS, "policy"),
        ("date", project.NS, "Date"),
        ("work_id", project.NS, "WorkID"),
    ):
        text = _one(props.get((ns, name)))
        if text:
            rights[key] = text
    holder = _one(props.get((project.NS, "HolderName"))) or _one(props.get((XMP_RIGHTS, "Owner")))
    if holder:
        rights["holder"] = Holder(holder, _one(props.get((project.NS, "HolderContact"))) or None).to_json()
    return out


def raw(root: ET.Element) -> dict[str, Value]:
    """``read(packet).raw`` of a parsed packet, without serialising and parsing it again."""
    return _raw(_properties(root))


def _raw(props: dict[tuple[str, str], Value]) -> dict[str, Value]:
    return {f"{_PREFIXES[ns]}:{name}": value for (ns, name), value in props.items() if ns in _PREFIXES}


def carrier_report(
    packet: bytes, location: str | None, *, name: str = "xmp", carrier: str | None = None, parsed: Parsed | None = None
) -> CarrierReport:
    """A carrier report for one packet; an unsafe or broken packet becomes its error.

    ``carrier`` names the signals' source when it must differ from ``name`` (a second packet).
    ``parsed``: the tag's memo of one file (its read-back), where ``fresh_packet`` notes the
    packet it made: that packet is read as its template was (``_fresh_report``).
    """
    if parsed is not None and name == "xmp" and carrier is None:
        known = _fresh_report(packet, location, parsed)
        if known is not None:
            return known
    report = CarrierReport(name, location)
    try:
        reading = read(packet, carrier=carrier or name)
    except MalformedMetadata as exc:
        report.errors.append(f"malformed XMP: {exc}")
    else:
        report.values, report.signals = reading.raw, reading.signals
        report.rights, report.errors = reading.rights, reading.errors
    return report


def updates(assertion: Assertion, existing: Mapping[str, Value]) -> dict[str, WriteValue]:
    """The properties to set ("prefix:Name" -> value) and to delete (-> None).

    ``existing`` is the packet's current raw view (``XmpReading.raw``): our own earlier
    values are replaced, other people's free text is kept.
    """
    return keeping_others(planned(assertion), existing)


def keeping_others(changes: Mapping[str, WriteValue], existing: Mapping[str, Value]) -> dict[str, WriteValue]:
    """``planned``'s changes for a packet whose raw view is ``existing``: our own earlier
    free text goes, other people's stays. (Deleting a property or not setting one adds no
    element, so the order of what is set, and so the packet's bytes, stay those of ``planned``.)"""
    out = dict(changes)
    current = _one(existing.get("plus:OtherConstraints"))
    sentence = out.get("plus:OtherConstraints")
    if isinstance(sentence, LangAlt):
        out["plus:OtherConstraints"] = LangAlt(iptc.with_others(sentence.text, current), keeps_languages=True)
    elif iptc.is_own_sentence(current):
        others = iptc.others_text(current)
        out["plus:OtherConstraints"] = LangAlt(others) if others else None
    current_terms = _one(existing.get("xmpRights:UsageTerms"))
    if current_terms is not None and not iptc.is_own_sentence(current_terms):
        del out["xmpRights:UsageTerms"]
    return out


def planned(assertion: Assertion) -> dict[str, WriteValue]:
    """What the assertion sets and deletes in a packet holding nothing yet (``updates`` with
    no existing values): computed once per file, its keys also say what a merge replaces."""
    # The words are planned once per run (Assertion.shared); only the work id and date are the file's.
    return _for_file(assertion.shared("xmp.planned", _planned_words), assertion.work_id, assertion.date)


def _for_file(words: Mapping[str, WriteValue], work_id: str | None, date: str | None) -> dict[str, WriteValue]:
    out = dict(words)
    if work_id and out[_VERSION] is not None:  # the record has an id only when it exists
        out[_WORK_ID] = work_id
    if date:
        out[_DATE] = date  # last, as details() orders it: no earlier key holds it
    return out


def fresh_packet(assertion: Assertion, parsed: Parsed | None = None) -> bytes:
    """``serialise`` of a new packet holding ``planned(assertion)`` (what a file without XMP gets),
    byte for byte, from the run's template (``Assertion.shared``) with the file's work id and date
    put in: building and serialising the tree was most of writing such a file's packet.

    ``parsed``: the tag's memo of the file, where the packet is noted for its read-back."""
    if not (assertion.work_id and assertion.date):  # never from tag (for_work sets both)
        return _serialised_fresh(planned(assertion))
    packet = _filled(assertion.shared("xmp.fresh", _fresh_template), assertion.work_id, assertion.date)
    if parsed is not None:
        parsed.keep(_FRESH, packet, (packet, assertion))
    return packet


def _filled(template: list[bytes], work_id: str, date: str) -> bytes:
    filled = {_ID_MARK: _escape(work_id).encode("utf-8"), _DATE_MARK: _escape(date).encode("utf-8")}
    return b"".join([filled.get(part, part) for part in template])


# --- the read-back of a fresh packet ------------------------------------------------------------
# A tag reads its new file back before keeping it. Reading a fresh packet (parsing it, decoding
# its vocabularies) was a third of tagging a JPEG, PNG or WebP, and each file's packet is its
# run's template with only the work id and date put in. Where those two are plain text (these
# characters: no markup, no reference, no space or line end, so every XML parser gives them back
# as they are, as the text of the same two elements), the packet parses to the template's tree
# with that text, and reads as the template read once with a sample id and date, those put in
# where they stand. The container around it is still walked and read as any file's, so a packet
# the writer put elsewhere, twice or cut is read in full (it is then no fresh packet).
_PLAIN = re.compile(r"[0-9A-Za-z:+.\-]{1,64}")
_FRESH = "xmp.fresh"
# Two samples, read once per run each: the readings must differ only where the id and date are
# put in, which shows that reading does not tell them apart (no decoder today looks into either:
# they are copied as text). A check that both samples pass (a form, a length) would not show here:
# tests/test_readback_fresh.py compares odd plain ids and dates with a full read for that.
_SAMPLES = (("00000000-0000-4000-8000-000000000000", "2000-01-01T00:00:00+00:00"),
            ("ffffffff-ffff-4fff-bfff-ffffffffffff", "2099-12-31T23:59:59+00:00"))


def _fresh_report(packet: bytes, location: str | None, parsed: Parsed) -> CarrierReport | None:
    """The report of ``packet`` when it is a fresh packet ``parsed`` noted (padding added or not),
    from its template's reading; None otherwise."""
    for written, assertion in parsed.kept(_FRESH):
        if not _same_packet(packet, written):
            continue
        work_id, date = assertion.work_id, assertion.date
        if not (work_id and date and _PLAIN.fullmatch(work_id) and _PLAIN.fullmatch(date)):
            return None
        reading = assertion.shared("xmp.fresh-reading", _template_reading)
        if reading is None:
            return None
        found = _put(reading, work_id, date)
        return CarrierReport("xmp", location, found.raw, found.signals, found.rights, found.errors)
    return None


def _same_packet(found: bytes, written: bytes) -> bool:
    """Whether ``found`` is ``written``, or ``written`` padded (``pad``: spaces and line ends
    before the closing ``<?xpacket end``, after the root element, where XML ignores them)."""
    if found == written:
        return True
    cut = written.rfind(b"<?xpacket end")
    if cut < 0 or len(found) <= len(written) or len(found) > _SMALL:
        return False
    tail = written[cut:]
    return (found.startswith(written[:cut]) and found.endswith(tail)
            and not found[cut:len(found) - len(tail)].strip(b" \n"))


def _template_reading(words: Assertion) -> XmpReading | None:
    """The reading of ``words``' fresh packet with the first sample's id and date; None when a
    reading depends on them other than as the text put in (the packet is then read in full)."""
    template = words.shared("xmp.fresh", _fresh_template)
    readings = []
    for work_id, date in _SAMPLES:
        packet = _filled(template, work_id, date)
        if len(packet) > _SMALL:
            return None
        try:
            readings.append(read(packet))
        except MalformedMetadata:
            return None  # as a full read says
    first, second = readings
    return first if _put(first, *_SAMPLES[1]) == second else None


def _put(reading: XmpReading, work_id: str, date: str) -> XmpReading:
    """``reading`` with ``work_id`` and ``date`` where a fresh packet's reading holds them; new
    dicts and lists, so that one file's report changed changes no other's."""
    raw = {key: list(value) if isinstance(value, list) else value for key, value in reading.raw.items()}
    rights = {key: dict(value) if isinstance(value, dict) else value for key, value in reading.rights.items()}
    for key, where, value in ((_WORK_ID, "work_id", work_id), (_DATE, "date", date)):
        if key in raw:
            raw[key] = value
        if where in rights:
            rights[where] = value
    signals = [replace(s, raw={**s.raw, "WorkID": work_id}) if s.vocabulary == project.NAME and "WorkID" in s.raw
               else s for s in reading.signals]
    return XmpReading(signals, rights, raw, list(reading.errors))


# Where the work id and date go in a template: marks holding a control character, which no text
# of an assertion's words may hold (model.Assertion refuses them), so a mark in the template is
# only ever where it was put. The id and date filled in are never searched for marks.
_ID_MARK, _DATE_MARK = b"\x01work-id\x01", b"\x01date\x01"


def _fresh_template(words: Assertion) -> list[bytes]:
    """The packet of ``words`` cut at the marks, each mark its own part."""
    changes = _for_file(words.shared("xmp.planned", _planned_words), _ID_MARK.decode(), _DATE_MARK.decode())
    parts: list[bytes] = []
    for i, piece in enumerate(_serialised_fresh(changes).split(_ID_MARK)):
        parts += [_ID_MARK] if i else []
        for j, bit in enumerate(piece.split(_DATE_MARK)):
            parts += [_DATE_MARK, bit] if j else [bit]
    return parts


def _serialised_fresh(changes: Mapping[str, WriteValue]) -> bytes:
    root = _empty_packet()
    apply(root, changes)
    return serialise(root)


_VERSION, _WORK_ID, _DATE = (f"{project.PREFIX}:{key}" for key in ("Version", "WorkID", "Date"))


def _planned_words(assertion: Assertion) -> dict[str, WriteValue]:
    out: dict[str, WriteValue] = {}
    # The exact record: replace the whole set, so a purpose no longer constrained loses its text.
    record = project.encode(assertion) or {}
    for key in project.ALL_KEYS:
        out[f"{project.PREFIX}:{key}"] = record.get(key)

    plus = iptc.encode(assertion) or {"DataMining": None, "OtherConstraints": None}
    out["plus:DataMining"] = iptc.uri(plus["DataMining"]) if plus["DataMining"] else None
    sentence = plus["OtherConstraints"]
    if sentence is not None:
        out["plus:OtherConstraints"] = LangAlt(sentence)

    tdm = tdmrep.encode(assertion)
    out["tdm:reservation"] = str(tdm["reservation"]) if tdm else None
    out["tdm:policy"] = str(tdm["policy"]) if tdm and tdm["policy"] else None

    out["xmpRights:UsageTerms"] = LangAlt(f"{iptc.SENTENCE_PREFIX} {summary(assertion.permissions)}")

    reserved = any(p.state in (State.NOT_ALLOWED, State.CONSTRAINED) for p in assertion.permissions.values())
    if reserved or assertion.copyright:
        out["xmpRights:Marked"] = "True"
    if assertion.copyright:
        # Translations of the notice are the holder's own words: they stay (as ExifTool keeps them).
        out["dc:rights"] = LangAlt(assertion.copyright, keeps_languages=True)
    if assertion.web_statement:
        out["xmpRights:WebStatement"] = assertion.web_statement
    if assertion.holder:
        out["xmpRights:Owner"] = Bag((assertion.holder.name,))
        out[f"{project.PREFIX}:HolderContact"] = None  # replaced below when given
    for key, value in project.details(assertion).items():
        out[f"{project.PREFIX}:{key}"] = value
    return out



# --- writing a packet (image XMP elements, ID3 PRIV frames, PDF metadata streams) --------------

X_META = "adobe:ns:meta/"
_KNOWN_PREFIXES = {
    RDF: "rdf",
    X_META: "x",
    "http://www.w3.org/XML/1998/namespace": "xml",
    "http://ns.adobe.com/xap/1.0/": "xmp",
    "http://ns.adobe.com/pdf/1.3/": "pdf",
    "http://www.aiim.org/pdfa/ns/id/": "pdfaid",
    "http://www.aiim.org/pdfa/ns/extension/": "pdfaExtension",
    "http://www.aiim.org/pdfa/ns/schema#": "pdfaSchema",
    "http://www.aiim.org/pdfa/ns/property#": "pdfaProperty",
    "http://ns.adobe.com/photoshop/1.0/": "photoshop",
    "http://iptc.org/std/Iptc4xmpExt/2008-02-29/": "Iptc4xmpExt",
    "http://ns.adobe.com/xmp/note/": "xmpNote",
    **{ns: prefix for prefix, ns in NAMESPACES.items()},
}
_PACKET_HEAD = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
_PACKET_TAIL = '\n<?xpacket end="w"?>'


def _escape(text: str, attribute: bool = False) -> str:
    # A raw CR would come back as LF (XML end-of-line handling); a reference survives.
    if "&" in text or "<" in text or ">" in text or "\r" in text:  # rare: most values are left as they are
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    return text.replace('"', "&quot;") if attribute and '"' in text else text


# Reading a packet walks no deeper than its properties, but rewriting one walks every element: a
# hostile packet's nesting would otherwise end the tag of its file in a RecursionError.
_TOO_DEEP = "XMP packet nests elements too deeply to be rewritten"


def serialise(root: ET.Element, *, wrapper: bool = True, known: Mapping[str, str] | None = None) -> bytes:
    """The packet as UTF-8 bytes, with stable, readable prefixes and no global ElementTree state.

    ``wrapper=False`` leaves out the ``<?xpacket?>`` processing instructions (ExtendedXMP has none).
    ``known``: namespace -> prefix the packet used, for namespaces rightsmeta has no prefix of
    (``ns1`` otherwise; ExifTool shows a namespace it does not know by its prefix).
    """
    prefixes: dict[str, str] = {}
    names: dict[str, str] = {}  # tag -> prefixed name: a packet repeats a few tags many times

    def prefix(tag: str) -> str:
        name = names.get(tag)
        if name is not None:
            return name
        ns, local = _split(tag) if tag.startswith("{") else ("", tag)
        if not ns:
            names[tag] = local
            return local
        if ns not in prefixes:
            wanted = _KNOWN_PREFIXES.get(ns) or (known or {}).get(ns) or f"ns{len(prefixes) + 1}"
            while wanted in prefixes.values():
                wanted += "_"
            prefixes[ns] = wanted
        names[tag] = name = f"{prefixes[ns]}:{local}"
        return name

    # Each element's lines appended to one list and joined once (a string per element joined
    # into its parent's copied every byte once per level).
    out: list[str] = []

    def walk(elem: ET.Element, pad: str) -> None:
        name = names.get(elem.tag) or prefix(elem.tag)
        # Most elements have no attributes: no generator made and joined for them.
        attrs = "".join(f' {prefix(k)}="{_escape(v, True)}"' for k, v in elem.attrib.items()) if elem.attrib else ""
        if len(elem) == 0:
            text = _escape(elem.text or "")
            out.append(f"{pad}<{name}{attrs}>{text}</{name}>\n" if text else f"{pad}<{name}{attrs}/>\n")
            return
        out.append(f"{pad}<{name}{attrs}>\n")
        inner = pad + "  "
        for child in elem:
            walk(child, inner)
        out.append(f"{pad}</{name}>\n")

    try:
        walk(root, "")
    except RecursionError:
        raise MalformedMetadata(_TOO_DEEP) from None
    declared = " ".join(
        f'xmlns:{p}="{_escape(ns, True)}"' for ns, p in prefixes.items() if p != "xml"
    )
    # Every namespace is declared once, on the root element (which always has children).
    out[0] = f"{out[0][:-2]} {declared}>\n"
    out[-1] = out[-1][:-1]  # no line break after the root's end tag
    body = "".join(out)
    return (_PACKET_HEAD + body + _PACKET_TAIL if wrapper else body).encode("utf-8")


def _empty_packet() -> ET.Element:
    root = ET.Element(f"{{{X_META}}}xmpmeta")
    rdf = ET.SubElement(root, f"{{{RDF}}}RDF")
    ET.SubElement(rdf, f"{{{RDF}}}Description", {f"{{{RDF}}}about": ""})
    return root


def _property_tag(key: str) -> str:
    prefix_, _, name = key.partition(":")
    return f"{{{NAMESPACES[prefix_]}}}{name}"


def apply(root: ET.Element, changes: Mapping[str, WriteValue]) -> None:
    """Set or delete properties ("prefix:Name" -> value) in a parsed packet, in place."""
    if root.tag != f"{{{X_META}}}xmpmeta" and root.tag != f"{{{RDF}}}RDF":
        raise MalformedMetadata("XMP packet has no x:xmpmeta or rdf:RDF root")
    rdf = root if root.tag == f"{{{RDF}}}RDF" else root.find(f"{{{RDF}}}RDF")
    if rdf is None:
        rdf = ET.SubElement(root, f"{{{RDF}}}RDF")
    descriptions = rdf.findall(f"{{{RDF}}}Description")
    if not descriptions:
        descriptions = [ET.SubElement(rdf, f"{{{RDF}}}Description", {f"{{{RDF}}}about": ""})]
    target = descriptions[0]
    for key, value in changes.items():
        tag = _property_tag(key)
        languages: list[ET.Element] = []
        shown: str | None = None  # what the replaced Alt showed by default (its x-default, else its first entry)
        for desc in descriptions:  # a property may stand as an attribute or an element, anywhere
            desc.attrib.pop(tag, None)
            for old in desc.findall(tag):
                items = list(old.iter(_LI))
                default = next((li for li in items if li.get(XML_LANG, "x-default") == "x-default"), items[0] if items else None)
                shown = default.text if default is not None and shown is None else shown
                languages += [li for li in items if li.get(XML_LANG, "x-default") != "x-default"]
                desc.remove(old)
        if value is None:
            continue
        elem = ET.SubElement(target, tag)
        if isinstance(value, LangAlt):
            alt = ET.SubElement(elem, f"{{{RDF}}}Alt")
            ET.SubElement(alt, f"{{{RDF}}}li", {XML_LANG: "x-default"}).text = value.text
            if value.keeps_languages:
                # An entry that only repeated the old default text (a copy, not a translation) says
                # the new one, so no language keeps showing what the x-default no longer says.
                for li in languages:
                    if shown is not None and li.text == shown:
                        li.text = value.text
                alt.extend(languages)
        elif isinstance(value, Bag):
            bag = ET.SubElement(elem, f"{{{RDF}}}Bag")
            for item in value.items:
                ET.SubElement(bag, f"{{{RDF}}}li").text = item
        else:
            elem.text = value


def merge_packet(existing: bytes | None, changes: Mapping[str, WriteValue]) -> bytes:
    """A packet with ``changes`` applied to ``existing`` (parsed by the hardened reader)."""
    root = _parse(existing) if existing else _empty_packet()
    apply(root, changes)
    return serialise(root)


def parse(packet: bytes) -> ET.Element:
    """The packet's root element, parsed by the hardened reader (MalformedMetadata if refused)."""
    return _parse(packet)


def _descriptions(root: ET.Element) -> list[ET.Element]:
    """The top-level rdf:Description elements (not those nested in a struct value)."""
    rdf = root if root.tag == f"{{{RDF}}}RDF" else root.find(f"{{{RDF}}}RDF")
    return rdf.findall(f"{{{RDF}}}Description") if rdf is not None else []


def _rdf(root: ET.Element) -> ET.Element:
    if root.tag == f"{{{RDF}}}RDF":
        return root
    rdf = root.find(f"{{{RDF}}}RDF")
    if root.tag != f"{{{X_META}}}xmpmeta" or rdf is None:
        raise MalformedMetadata("XMP packet has no x:xmpmeta or rdf:RDF root")
    return rdf


def _property_key(tag: str) -> str:
    ns, name = _split(tag)
    return f"{_KNOWN_PREFIXES.get(ns, ns)}:{name}"


def _canonical(tag: str, value: ET.Element | str) -> str:
    """A value's comparable form: the same whether written as an attribute or an element, and
    whatever the indentation around it."""
    if isinstance(value, str):
        return repr((tag, (), value.strip(), ()))

    def walk(elem: ET.Element) -> tuple[object, ...]:
        return (elem.tag, tuple(sorted(elem.attrib.items())), (elem.text or "").strip(), tuple(walk(c) for c in elem))

    try:
        return repr(walk(value))
    except RecursionError:
        raise MalformedMetadata(_TOO_DEEP) from None


def _properties_of(desc: ET.Element) -> list[tuple[str, ET.Element | str]]:
    found: list[tuple[str, ET.Element | str]] = [
        (attr, value) for attr, value in desc.attrib.items() if attr.startswith("{") and not attr.startswith(f"{{{RDF}}}")
    ]
    return found + [(child.tag, child) for child in desc if child.tag.startswith("{")]


def combine(packets: list[bytes], *, replaced: frozenset[str] = frozenset()) -> ET.Element:
    """One packet tree holding the properties of several (a file's packets, or a packet and its
    ExtendedXMP), so that writing one packet back loses nothing.

    A property found in more than one packet with different values is refused (MalformedMetadata):
    choosing would drop someone's data. ``replaced`` ("prefix:Name") are properties about to be
    rewritten, whose old values do not matter; the first packet's are kept for the record.
    """
    if not packets:
        return _empty_packet()
    root = _parse(packets[0])
    rdf = _rdf(root)
    if len(packets) == 1:  # nothing to compare with (most files)
        return root
    seen: dict[str, str] = {}
    for desc in _descriptions(root):
        for tag, value in _properties_of(desc):
            seen.setdefault(tag, _canonical(tag, value))
    for packet in packets[1:]:
        other = _parse(packet)
        _rdf(other)
        for desc in _descriptions(other):
            moved = ET.SubElement(rdf, f"{{{RDF}}}Description", {f"{{{RDF}}}about": desc.get(f"{{{RDF}}}about", "")})
            for tag, value in _properties_of(desc):
                form = _canonical(tag, value)
                if tag in seen:
                    if seen[tag] != form and _property_key(tag) not in replaced:
                        raise MalformedMetadata(
                            f"the file's XMP packets disagree on {_property_key(tag)}; not choosing one to keep"
                        )
                    continue
                seen[tag] = form
                if isinstance(value, str):
                    moved.set(tag, value)
                else:
                    moved.append(value)
            if len(moved) == 0 and len(moved.attrib) == 1:
                rdf.remove(moved)
    return root


XMP_NOTE = "http://ns.adobe.com/xmp/note/"
_HAS_EXTENDED = f"{{{XMP_NOTE}}}HasExtendedXMP"
# What stays in a JPEG's standard packet when the rest must move to ExtendedXMP: every property
# rightsmeta reads (readers that ignore ExtendedXMP still see the rights), and the note naming it.
_STANDARD_NAMESPACES = frozenset({iptc.NS, project.NS, XMP_RIGHTS, XMP_NOTE, RDF, *tdmrep.NAMESPACES})
_STANDARD_TAGS = frozenset({f"{{{DC}}}rights"})


def _stays_standard(tag: str) -> bool:
    return tag in _STANDARD_TAGS or _split(tag)[0] in _STANDARD_NAMESPACES


def extended_guid(root: ET.Element) -> str | None:
    """The GUID of the ExtendedXMP the packet names (xmpNote:HasExtendedXMP), if any."""
    for desc in _descriptions(root):
        value = desc.get(_HAS_EXTENDED)
        if value is None:
            child = desc.find(_HAS_EXTENDED)
            value = child.text if child is not None else None
        if value:
            return value.strip()
    return None


def drop_extended_note(root: ET.Element) -> None:
    for desc in _descriptions(root):
        desc.attrib.pop(_HAS_EXTENDED, None)
        for old in desc.findall(_HAS_EXTENDED):
            desc.remove(old)


def split_extended(root: ET.Element, limit: int) -> tuple[bytes, bytes | None]:
    """(standard packet, ExtendedXMP or None) for a JPEG, whose APP1 holds ``limit`` bytes (XMP part 3).

    Everything fits in one packet when it can. Otherwise the rights properties rightsmeta reads
    stay in the standard packet, with xmpNote:HasExtendedXMP naming the rest, which moves to the
    ExtendedXMP (GUID = MD5 of it, upper-case hex).
    """
    drop_extended_note(root)
    whole = serialise(root)
    if len(whole) <= limit:
        return whole, None
    standard, extended = _empty_packet(), _empty_packet()
    std_desc = standard[0][0]
    ext_desc = extended[0][0]
    for desc in _descriptions(root):
        for attr, value in desc.attrib.items():
            if attr.startswith(f"{{{RDF}}}"):
                continue
            (std_desc if _stays_standard(attr) else ext_desc).set(attr, value)
        for child in desc:
            (std_desc if _stays_standard(child.tag) else ext_desc).append(child)
    import hashlib  # only ExtendedXMP needs it: a read-only scan never loads it

    extended_bytes = serialise(extended, wrapper=False)
    std_desc.set(_HAS_EXTENDED, hashlib.md5(extended_bytes, usedforsecurity=False).hexdigest().upper())
    standard_bytes = serialise(standard)
    if len(standard_bytes) > limit:
        raise MalformedMetadata(
            f"the rights properties alone need {len(standard_bytes)} bytes of XMP, more than one JPEG segment holds"
        )
    return standard_bytes, extended_bytes


def pad(packet: bytes, size: int) -> bytes:
    """``packet`` grown to ``size`` bytes with whitespace inside its xpacket wrapper (XMP part 1, 7.3.3)."""
    extra = size - len(packet)
    cut = packet.rfind(b"<?xpacket end")
    if cut < 0:
        return packet + b" " * extra
    padding = (b" " * 99 + b"\n") * (extra // 100) + b" " * (extra % 100)
    return packet[:cut] + padding + packet[cut:]


def write_packet(existing: bytes | None, assertion: Assertion, *, pdfa: bool = False,
                 parsed: Parsed | None = None) -> bytes:
    """The packet rightsmeta writes for ``assertion``, keeping everything else ``existing`` holds.

    With ``pdfa`` (a PDF's packet), one that declares PDF/A-1 to -3 also gets the extension
    schemas (``with_pdfa_extension``), added before it is serialised: parsed once. ``parsed``:
    as for ``fresh_packet``."""
    if not existing:
        return fresh_packet(assertion, parsed)  # no PDF/A part declared: nothing else to add
    root = _parse(existing)
    props = _properties(root)
    apply(root, updates(assertion, _raw(props)))
    if pdfa and _pdfa_part(props) in (1, 2, 3):  # apply sets no pdfaid property: the part is the packet's
        _add_pdfa_extension(root)
    return serialise(root)


# --- PDF/A: extension schemas for the namespaces rightsmeta introduces ----------------------

PDFA_ID = "http://www.aiim.org/pdfa/ns/id/"
PDFA_EXTENSION = "http://www.aiim.org/pdfa/ns/extension/"
PDFA_SCHEMA = "http://www.aiim.org/pdfa/ns/schema#"
PDFA_PROPERTY = "http://www.aiim.org/pdfa/ns/property#"

# PDF/A-1 to -3 accept only the XMP 2004 predefined schemas (dc and xmpRights among them) unless the
# packet describes the others in an extension schema; value types are XMP 2004 names.
_EXTENSION_SCHEMAS: dict[str, tuple[str, tuple[tuple[str, str, str], ...]]] = {
    iptc.NS: ("PLUS License Data Format", (
        ("DataMining", "URI", "Data mining prohibition or permission (PLUS code URI)"),
        ("OtherConstraints", "Lang Alt", "Other constraints on the use of the work"),
    )),
    tdmrep.NS: ("W3C TDM Reservation Protocol", (
        ("reservation", "Integer", "1 if text and data mining rights are reserved, 0 if not"),
        ("policy", "URI", "URL of the TDM policy"),
    )),
    project.NS: ("rightsmeta exact record of AI and data mining permissions", (
        *((key, "Text", "rightsmeta record entry") for key in project.ALL_KEYS),
        ("HolderName", "Text", "Rights holder's name"),
        ("HolderContact", "Text", "Rights holder's contact"),
        ("Date", "Text", "Date the statement was made (ISO 8601)"),
    )),
}


def _pdfa_part(props: dict[tuple[str, str], Value]) -> int | None:
    """The PDF/A part a packet's properties declare (``pdfaid:part``), or None."""
    part = _one(props.get((PDFA_ID, "part")))
    return int(part.strip()) if part and part.strip().isdigit() else None


def _resource(parent: ET.Element, tag: str) -> ET.Element:
    return ET.SubElement(parent, tag, {f"{{{RDF}}}parseType": "Resource"})


def _extension_property(seq: ET.Element, name: str, value_type: str, description: str) -> None:
    li = _resource(seq, f"{{{RDF}}}li")
    for key, text in (("name", name), ("valueType", value_type), ("category", "external"), ("description", description)):
        ET.SubElement(li, f"{{{PDFA_PROPERTY}}}{key}").text = text


def with_pdfa_extension(packet: bytes) -> bytes:
    """The packet with PDF/A extension schemas for every non-predefined namespace rightsmeta writes.

    Schemas already described are completed with the properties they lack, never duplicated;
    schemas given as nested rdf:Description (not parseType="Resource") are recognised too.
    """
    root = _parse(packet)
    _add_pdfa_extension(root)
    return serialise(root)


def _add_pdfa_extension(root: ET.Element) -> None:
    descriptions = list(root.iter(f"{{{RDF}}}Description"))
    if not descriptions:
        raise MalformedMetadata("XMP packet has no rdf:Description")
    schemas = next((s for d in descriptions for s in d.findall(f"{{{PDFA_EXTENSION}}}schemas")), None)
    if schemas is None:
        schemas = ET.SubElement(descriptions[0], f"{{{PDFA_EXTENSION}}}schemas")
    found = schemas.find(f"{{{RDF}}}Bag")
    bag = found if found is not None else ET.SubElement(schemas, f"{{{RDF}}}Bag")
    described: dict[str, ET.Element] = {}
    for li in bag.findall(f"{{{RDF}}}li"):
        uri = li.find(f".//{{{PDFA_SCHEMA}}}namespaceURI")
        if uri is not None and uri.text:
            described[uri.text.strip()] = li
    for ns, (title, props) in _EXTENSION_SCHEMAS.items():
        entry = described.get(ns)
        if entry is None:
            entry = _resource(bag, f"{{{RDF}}}li")
            ET.SubElement(entry, f"{{{PDFA_SCHEMA}}}schema").text = title
            ET.SubElement(entry, f"{{{PDFA_SCHEMA}}}namespaceURI").text = ns
            ET.SubElement(entry, f"{{{PDFA_SCHEMA}}}prefix").text = _KNOWN_PREFIXES[ns]
        prop = entry.find(f".//{{{PDFA_SCHEMA}}}property")
        if prop is None:
            prop = ET.SubElement(entry, f"{{{PDFA_SCHEMA}}}property")
        seq = prop.find(f"{{{RDF}}}Seq")
        if seq is None:
            seq = ET.SubElement(prop, f"{{{RDF}}}Seq")
        have = {(n.text or "").strip() for n in seq.iter(f"{{{PDFA_PROPERTY}}}name")}
        for name, value_type, description in props:
            if name not in have:
                _extension_property(seq, name, value_type, description)
