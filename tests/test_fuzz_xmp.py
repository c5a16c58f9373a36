"""Fuzzing the XMP parser (``rightsmeta.xmp``) on its own, as both reading and tagging use it.

tests/test_mutations.py damages whole files; here the packet itself is damaged (bit flips, cuts,
stretches doubled, bytes inserted) and attacked (entities, DTDs, other encodings, deep nesting,
huge attributes and texts). For each, reading and rewriting (``write_packet``, what ``tag`` does
with a file's existing packet) raise nothing but MalformedMetadata, end within a bound, stay
within a memory bound, and fail closed: damage outside the statement's own bytes leaves the
packet reserved, or reported as malformed.
"""

from __future__ import annotations

import io
import os
import random
import re
import time
import tracemalloc
from collections.abc import Callable

import pytest
from fuzzing import damage

from rightsmeta import xmp
from rightsmeta.errors import MalformedMetadata
from rightsmeta.model import Assertion, Purpose, State

DENY_AI = Assertion.build(deny=["ai"])
PACKET = xmp.write_packet(None, DENY_AI)
MUTANTS = int(os.environ.get("RIGHTSMETA_FUZZ_EXAMPLES", "200")) * 2
BOUND = 2.0  # seconds for one packet of a few KB: far above the real cost, far below a hang
PER_MB = 6.0  # more seconds per MB of a large attack, parsed under tracemalloc (which triples the cost; 0.4 s/MB unloaded)
SPAN = 40
# The statement's own bytes: the namespace declarations naming its vocabularies, the rdf:RDF and
# rdf:Description tags holding it, and the stretch around every value saying "not allowed".
INSERTS = (b"<", b"&", b"\xff", b"\x00", b"&amp;", b'"', b"]]>")
PROTECTED = [(m.start(), m.end()) for m in re.finditer(rb"<x:xmpmeta[^>]*>|<rdf:RDF>|<rdf:Description[^>]*>", PACKET)] + [
    (max(0, m.start() - SPAN), m.end() + SPAN) for m in re.finditer(rb"notAllowed|DMI-PROHIBITED|reservation>1", PACKET)]


def _reserved(packet: bytes) -> bool:
    reading = xmp.read(packet)
    return any(s.permissions[Purpose.GENAI_TRAINING].state is State.NOT_ALLOWED for s in reading.signals)


def _bounded(call: Callable[[], object], size: int, peak: int) -> None:
    """``call`` over ``size`` bytes raises nothing but MalformedMetadata, in bounded time and ``peak`` bytes."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        call()
    except MalformedMetadata:
        pass
    finally:
        _, used = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.perf_counter() - start < BOUND + PER_MB * size / 1e6
    assert used < peak, f"{used} bytes at peak"


def test_damaged_packets_read_fail_closed_and_rewrite_cleanly() -> None:
    assert _reserved(PACKET)
    rng = random.Random(20261130)
    outcomes = {"reserved": 0, "malformed": 0}
    for mutant in (damage(PACKET, PROTECTED, rng, INSERTS) for _ in range(MUTANTS)):
        start = time.perf_counter()
        try:
            reserved = _reserved(mutant)
        except MalformedMetadata:
            outcomes["malformed"] += 1
        else:
            assert reserved, mutant
            outcomes["reserved"] += 1
        try:
            rewritten = xmp.write_packet(mutant, DENY_AI)
        except MalformedMetadata:
            pass
        else:
            assert _reserved(rewritten)  # a tag over a damaged packet still says what it was told
        assert time.perf_counter() - start < BOUND
    assert min(outcomes.values()) > MUTANTS // 10, outcomes  # the damage reached both outcomes


_DESCRIPTION_END = PACKET.index(b"</rdf:Description>")


def _inside(xml: bytes) -> bytes:
    """``xml`` as one more property of the packet's description."""
    return PACKET[:_DESCRIPTION_END] + xml + PACKET[_DESCRIPTION_END:]


_DTD = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
ATTACKS = {
    "entity expansion": _DTD + b"<x>&b;&b;&b;</x>",
    "external entity": b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
    "external DTD": b'<!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd"><x/>',
    "DTD in UTF-16": ('<?xml version="1.0" encoding="UTF-16"?>' + _DTD.decode()[21:] + "<x>&b;</x>").encode("utf-16"),
    "DTD in UTF-32": (_DTD.decode()[21:] + "<x>&b;</x>").encode("utf-32"),
    "unknown encoding": b'<?xml version="1.0" encoding="x-no-such"?><x/>',
    "EBCDIC": '<?xml version="1.0" encoding="cp500"?><x/>'.encode("cp500"),
    "deep nesting 5000": _inside(b'<x:a xmlns:x="http://e/">' + b"<x:a>" * 5000 + b"</x:a>" * 5001),
    "deep nesting 30000": _inside(b'<x:a xmlns:x="http://e/">' + b"<x:a>" * 30_000 + b"</x:a>" * 30_001),
    "huge attribute": _inside(b'<x:a xmlns:x="http://e/" x:b="' + b"A" * 1_000_000 + b'"/>'),
    "huge text": _inside(b'<x:a xmlns:x="http://e/">' + b"A" * 1_000_000 + b"</x:a>"),
    "many attributes": _inside(b'<x:a xmlns:x="http://e/" ' + b" ".join(b'x:a%d="1"' % i for i in range(30_000)) + b"/>"),
    "many elements": _inside(b'<x:a xmlns:x="http://e/">' + b"<x:b/>" * (xmp.MAX_ELEMENTS + 1) + b"</x:a>"),
    "over the size cap": _inside(b"<!--" + b" " * xmp.MAX_PACKET + b"-->"),
    "NUL bytes": PACKET.replace(b"notAllowed", b"not\x00Allowed", 1),
    "BOM then UTF-16 declaration": b"\xef\xbb\xbf" + PACKET.replace(b"<x:xmpmeta", b'<?xml version="1.0" encoding="UTF-16"?><x:xmpmeta', 1),
}


@pytest.mark.parametrize("name", ATTACKS)
def test_attacks_are_refused_or_read_within_bounds(name: str) -> None:
    packet = ATTACKS[name]
    peak = 32 * len(packet) + 16 * 1024 * 1024  # ElementTree holds a parsed packet in a few times its size
    _bounded(lambda: xmp.read(packet), len(packet), peak)
    _bounded(lambda: xmp.write_packet(packet, DENY_AI), len(packet), peak)


@pytest.mark.parametrize("name", ["entity expansion", "external entity", "external DTD", "DTD in UTF-16",
                                  "DTD in UTF-32", "over the size cap"])
def test_unsafe_packets_are_refused(name: str) -> None:
    with pytest.raises(MalformedMetadata):
        xmp.read(ATTACKS[name])


def test_too_many_elements_is_said_once() -> None:
    """Found: the element cap's error was wrapped as if the packet could not be decoded
    ("XMP packet cannot be decoded: XMP packet has more than ...")."""
    with pytest.raises(MalformedMetadata, match=f"^XMP packet has more than {xmp.MAX_ELEMENTS} elements$"):
        xmp.read(ATTACKS["many elements"])


def test_deep_nesting_is_a_malformed_packet_when_rewritten() -> None:
    """Found: rewriting a packet nested a few thousand elements deep (what ``tag`` does with a
    file's packet) ended in RecursionError: "internal error ... please report it". The packet
    is read as it was (its statement found), and refused with a clear error when rewritten."""
    packet = ATTACKS["deep nesting 5000"]
    assert _reserved(packet)
    with pytest.raises(MalformedMetadata, match="nests elements too deeply"):
        xmp.write_packet(packet, DENY_AI)
    with pytest.raises(MalformedMetadata, match="nests elements too deeply"):
        xmp.combine([packet, PACKET])


def test_tag_of_a_jpeg_with_a_deeply_nested_packet_fails_with_the_reason() -> None:
    from PIL import Image

    from rightsmeta import api

    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "JPEG", xmp=ATTACKS["deep nesting 5000"])
    assert api.read(buf.getvalue()).decision.may_use(Purpose.GENAI_TRAINING) is False
    with pytest.raises(MalformedMetadata, match="nests elements too deeply"):
        api.tag_bytes(buf.getvalue(), DENY_AI)
