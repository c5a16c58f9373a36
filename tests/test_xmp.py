"""The XMP packet writer (image XMP elements, ID3 PRIV frames, PDF metadata streams)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_images import assertions

from rightsmeta import Assertion, Purpose, State, xmp
from rightsmeta.decide import decide
from rightsmeta.errors import MalformedMetadata

FOREIGN = b"""<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:my="http://example.com/my/"
  xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/" xmp:CreatorTool="Some Editor"
  plus:DataMining="http://ns.useplus.org/ldf/vocab/DMI-ALLOWED">
 <my:Note>keep me &amp; my entity-free text</my:Note>
</rdf:Description>
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
 <dc:title><rdf:Alt><rdf:li xml:lang="x-default">A title</rdf:li></rdf:Alt></dc:title>
</rdf:Description></rdf:RDF></x:xmpmeta>
<?xpacket end="w"?>"""


@settings(max_examples=60, deadline=None)
@given(assertion=assertions(), holder=st.text(min_size=1, max_size=20).filter(str.isprintable))
def test_packet_round_trip(assertion: Assertion, holder: str) -> None:
    full = Assertion(permissions=assertion.permissions, holder=None, copyright=f"(c) {holder} <&>").dated()
    packet = xmp.write_packet(None, full)
    reading = xmp.read(packet)
    assert reading.errors == []
    decision = decide(reading.signals)
    assert decision.permissions == dict(full.permissions) and decision.conflicts == ()
    assert reading.rights["copyright"] == full.copyright


def test_foreign_properties_kept_and_ours_replaced() -> None:
    deny = Assertion.build(deny=["ai"], copyright="(c) Ada").dated()
    packet = xmp.write_packet(FOREIGN, deny)
    props = xmp.properties(packet)
    assert props[("http://ns.adobe.com/xap/1.0/", "CreatorTool")] == "Some Editor"
    assert props[("http://example.com/my/", "Note")] == "keep me & my entity-free text"
    assert props[("http://purl.org/dc/elements/1.1/", "title")] == "A title"
    # The attribute-form DMI-ALLOWED is gone, replaced by our code: exactly one DataMining.
    assert packet.count(b"<plus:DataMining>") == 1 and b"DMI-ALLOWED" not in packet
    report = decide(xmp.read(packet).signals)
    assert report.permissions[Purpose.AI_INFERENCE].state is State.NOT_ALLOWED and report.conflicts == ()
    # Tagging again with less removes what no longer applies.
    again = xmp.write_packet(packet, Assertion.build(allow=["all"]).dated())
    assert b"tdm:reservation>0<" in again and b"OtherConstraints" not in again


def test_unsafe_existing_packet_is_refused() -> None:
    with pytest.raises(MalformedMetadata, match="DTD"):
        xmp.write_packet(b'<!DOCTYPE x [<!ENTITY a "b">]><x:xmpmeta xmlns:x="adobe:ns:meta/"/>',
                         Assertion.build(deny=["ai"]))
    with pytest.raises(MalformedMetadata, match="well-formed"):
        xmp.write_packet(b"<x:xmpmeta", Assertion.build(deny=["ai"]))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "cp037", "utf-32"])
def test_dtd_hidden_by_another_encoding_is_still_refused(encoding: str) -> None:
    # The fast parser is used only where a DTD would show as ASCII bytes; in any other encoding
    # the hardened parser sees the packet, and its entity declarations are refused as before.
    text = (f'<?xml version="1.0" encoding="{encoding.upper()}"?><!DOCTYPE x [<!ENTITY a "secret">]>'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/">&a;</x:xmpmeta>')
    packet = text.encode(encoding)
    assert b"<!DOCTYPE" not in packet
    with pytest.raises(MalformedMetadata):
        xmp.properties(packet)


def test_packets_parse_alike_on_both_paths() -> None:
    packet = xmp.write_packet(None, Assertion.build(deny=["ai"], holder="Zoë Ørsted", copyright="© 2026"))
    declared = b'<?xml version="1.0" encoding="ISO-8859-1"?>' + packet.decode("utf-8").encode("latin-1", "replace")
    assert xmp._no_dtd_possible(packet) and xmp._no_dtd_possible(declared)
    assert not xmp._no_dtd_possible(packet.decode("utf-8").encode("utf-16"))
    assert xmp.properties(packet)[(xmp.DC, "rights")] == "© 2026"
    hardened = {k: v for k, v in xmp.properties(packet.decode("utf-8").encode("utf-16")).items()}
    assert hardened == xmp.properties(packet)


def test_combine_packets_same_value_in_other_forms_and_layouts() -> None:
    attr = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            b'<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" dc:source="same"/></rdf:RDF></x:xmpmeta>')
    elem = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
            b'  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">\n    <dc:source>same</dc:source>\n'
            b'    <dc:subject>\n      <rdf:Bag><rdf:li>a</rdf:li></rdf:Bag>\n    </dc:subject>\n  </rdf:Description>\n</rdf:RDF></x:xmpmeta>')
    compact = elem.replace(b"\n", b"").replace(b"  ", b"")
    root = xmp.combine([elem, attr, compact])  # one value in three spellings: no disagreement
    props = xmp.properties(xmp.serialise(root))
    assert props[(xmp.DC, "source")] == "same" and props[(xmp.DC, "subject")] == ["a"]
    with pytest.raises(MalformedMetadata, match="disagree on dc:subject"):
        xmp.combine([elem, compact.replace(b"<rdf:li>a</rdf:li>", b"<rdf:li>b</rdf:li>")])


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from('&<>"\r\n\'a é'), max_size=12))
def test_texts_and_attributes_come_back_as_written(text: str) -> None:
    """What the serialiser escapes (and leaves alone: most values need nothing) reads back exactly."""
    root = xmp.parse(xmp.write_packet(None, Assertion.build(deny=["ai"])))
    description = root.find(f"{{{xmp.RDF}}}RDF/{{{xmp.RDF}}}Description")
    assert description is not None
    attribute = text.replace("\n", "")  # XML reads a raw newline in an attribute as a space
    description.set("{http://example.com/my/}Attr", attribute)
    xmp.ET.SubElement(description, "{http://example.com/my/}Text").text = text
    props = xmp.properties(xmp.serialise(root))
    assert props[("http://example.com/my/", "Attr")] == attribute
    assert props[("http://example.com/my/", "Text")] == text


def test_serialised_packet_layout_is_exact() -> None:
    """The packet's exact text (namespaces on the root, two spaces per level, empty-free leaves,
    escapes, no line break after the root): tagged bytes depend on it, byte for byte."""
    from rightsmeta.model import Assertion

    root = xmp._empty_packet()
    a = Assertion.build(deny=["ai"], holder="Ada & <Co>", copyright='(c) "Ada"').for_work()
    a.__dict__.update(date="2026-01-01T00:00:00+00:00", work_id="id-1")
    xmp.apply(root, xmp.planned(a))
    sentence = ("Data mining and AI permissions: Not allowed: AI/ML training, generative AI training, AI inference "
                "(use as model input). Not specified: text and data mining, search engine indexing.")
    alt = ["        <rdf:Alt>", '          <rdf:li xml:lang="x-default">{}</rdf:li>', "        </rdf:Alt>"]
    lines = [
        '<x:xmpmeta xmlns:x="adobe:ns:meta/" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns:rightsmeta="http://ns.rightsmeta.org/xmp/1.0/" xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/" '
        'xmlns:tdm="http://www.w3.org/ns/tdmrep/" xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/">',
        "  <rdf:RDF>",
        '    <rdf:Description rdf:about="">',
        "      <rightsmeta:Version>1</rightsmeta:Version>",
        "      <rightsmeta:DataMining>unspecified</rightsmeta:DataMining>",
        "      <rightsmeta:AITraining>notAllowed</rightsmeta:AITraining>",
        "      <rightsmeta:GenAITraining>notAllowed</rightsmeta:GenAITraining>",
        "      <rightsmeta:AIInference>notAllowed</rightsmeta:AIInference>",
        "      <rightsmeta:Search>unspecified</rightsmeta:Search>",
        "      <rightsmeta:WorkID>id-1</rightsmeta:WorkID>",
        "      <plus:DataMining>http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING</plus:DataMining>",
        "      <plus:OtherConstraints>", *alt, "      </plus:OtherConstraints>",
        "      <tdm:reservation>1</tdm:reservation>",
        "      <xmpRights:UsageTerms>", *alt, "      </xmpRights:UsageTerms>",
        "      <xmpRights:Marked>True</xmpRights:Marked>",
        "      <dc:rights>", *alt, "      </dc:rights>",
        "      <xmpRights:Owner>",
        "        <rdf:Bag>",
        "          <rdf:li>Ada &amp; &lt;Co&gt;</rdf:li>",
        "        </rdf:Bag>",
        "      </xmpRights:Owner>",
        "      <rightsmeta:HolderName>Ada &amp; &lt;Co&gt;</rightsmeta:HolderName>",
        "      <rightsmeta:Date>2026-01-01T00:00:00+00:00</rightsmeta:Date>",
        "    </rdf:Description>",
        "  </rdf:RDF>",
        "</x:xmpmeta>",
    ]
    texts = iter([sentence, sentence, '(c) "Ada"'])
    body = "\n".join(line.format(next(texts)) if "{}" in line else line for line in lines)
    assert xmp.serialise(root, wrapper=False).decode() == body
    head = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    assert xmp.serialise(root).decode() == head + body + '\n<?xpacket end="w"?>'
