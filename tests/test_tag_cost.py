"""What a tag run does besides computing essences, made cheaper (issue 12): each shortcut gives
exactly what the long way gives."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from samples import image_bytes

STATEMENTS = (
    dict(deny=["ai"]),
    dict(deny=["all"], allow=["search"], holder='Ada & <Lovelace> "A"', contact="https://ada.example/?a=1&b=2",
         copyright="(c) 2026 \u00c4d\u00e4 \U0001f600\r\nLovelace", web_statement="https://ada.example/licence",
         policy="https://ada.example/tdm.json"),
    dict(constrain=[("genai-training", "https://ada.example/terms?a&b<c>")], allow=["data-mining"]),
    dict(allow=["all"]),
    dict(deny=["data-mining"], holder="Ada"),
)


def _tree_packet(assertion: object) -> ET.Element:
    """A new packet's tree as the writers built it before ``fresh_packet``."""
    from rightsmeta import xmp

    root = xmp._empty_packet()
    xmp.apply(root, xmp.updates(assertion, {}))  # type: ignore[arg-type]
    return root


@pytest.mark.parametrize("words", STATEMENTS)
def test_a_fresh_packet_is_the_serialised_tree_byte_for_byte(words: dict[str, object]) -> None:
    from rightsmeta import xmp
    from rightsmeta.model import Assertion

    statement = Assertion.build(**words)  # type: ignore[arg-type]
    for copy in [statement.for_work() for _ in range(3)] + [statement, statement.dated()]:
        expected = xmp.serialise(_tree_packet(copy))
        assert xmp.fresh_packet(copy) == expected
        assert xmp.write_packet(None, copy) == expected == xmp.write_packet(b"", copy)


def test_an_id_or_date_holding_a_mark_is_written_as_given() -> None:
    """The marks are replaced where the template put them, never inside the file's own values."""
    import dataclasses

    from rightsmeta import xmp
    from rightsmeta.model import Assertion

    statement = Assertion.build(deny=["ai"])
    statement.for_work()  # the run's memo exists before the odd copy is made
    odd = dataclasses.replace(statement, work_id="id\x01date\x01&", date="2026-01-01T00:00:00+00:00\x01work-id\x01")
    assert xmp.fresh_packet(odd) == xmp.serialise(_tree_packet(odd))


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "tiff"])
@pytest.mark.parametrize("extra", [{}, {"exif": True, "icc": True}])
def test_an_image_without_xmp_is_written_as_from_the_tree(fmt: str, extra: dict[str, bool]) -> None:
    from rightsmeta.carriers import image
    from rightsmeta.model import Assertion

    data = image_bytes(fmt, seed=len(fmt), **extra)
    for words in STATEMENTS:
        copy = Assertion.build(**words).for_work()  # type: ignore[arg-type]
        new, carriers = image.write(data, fmt, copy)
        assert new == image._WRITERS[fmt](data, _tree_packet(copy), None) and carriers == ["xmp"]
