"""The C2PA marker search of a tag's new file skips the bytes it copied from a searched original.

A PDF has no walk to say where a store sits, so a head and a tail window (1.25 MiB) are searched
for the marker, in the original and again in the file spliced from it. The bytes the new file
copied from searched windows of the original are not searched twice; the answer stays the one a
full search of the new file gives, wherever a marker lies (in copied bytes, new bytes, or across
the edge between them).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from rightsmeta.carriers import Parsed, manifest, splice

MARKER = b"c2pa"
SIZE = 1_600_000  # beyond the head and tail windows: the middle is not searched


class Counted(bytes):
    """Bytes that count how many of them ``find`` is asked to search."""

    searched = 0

    def find(self, sub: Any, start: Any = None, end: Any = None) -> int:  # type: ignore[override]
        self.searched += (len(self) if end is None else end) - (start or 0)
        return super().find(sub, start, end)


def _original(marks: list[int]) -> bytes:
    data = bytearray(random.Random(7).randbytes(SIZE).replace(MARKER, b"xxxx"))
    for at in marks:
        data[at:at + len(MARKER)] = MARKER
    return bytes(data)


def _answers(original: bytes, changes: list[tuple[int, int, bytes]]) -> tuple[bool, bool, int]:
    """The new file's answer as a tag finds it (after the original's search), as a full search
    finds it, and the bytes the tag's search read."""
    parsed = Parsed()
    before = Counted(original)
    assert manifest._may_hold_manifest(before, "pdf", None, parsed) == manifest._may_hold_manifest(original, "pdf")
    spliced = splice.replace(before, changes)
    new = Counted(bytes(spliced))
    splice.remember(parsed, new, spliced)
    found = manifest._may_hold_manifest(new, "pdf", None, parsed)
    return found, manifest._may_hold_manifest(bytes(new), "pdf"), new.searched


APPEND = [(SIZE, SIZE, b"\n% an incremental update\n" * 100)]
# The tail cut short: bytes of the unsearched middle move into the new file's tail window.
CUT = [(SIZE - 300_000, SIZE - 100_000, b"replaced"), (SIZE, SIZE, b"\n%%EOF\n")]
HEAD_EDIT = [(1000, 1100, b"new info"), (SIZE, SIZE, b"trailer")]


@pytest.mark.parametrize("changes", [APPEND, CUT, HEAD_EDIT], ids=["append", "cut", "head edit"])
@pytest.mark.parametrize("marks", [[], [10], [SIZE - 10], [SIZE - 400_000], [SIZE - 2], [998], [1098], [600_000]],
                         ids=["none", "head", "tail", "middle moved into the tail", "across the end",
                              "across a cut's start", "across a cut's end", "middle"])
def test_the_answer_is_a_full_searchs(marks: list[int], changes: list[tuple[int, int, bytes]]) -> None:
    found, full, _ = _answers(_original(marks), changes)
    assert found == full


@pytest.mark.parametrize("where", ["start", "end"])
def test_a_marker_across_a_copied_and_a_new_piece_is_found(where: str) -> None:
    """A marker made of a clean original's last bytes and the first new ones (or the reverse)."""
    original = _original([])
    if where == "end":
        original = original[:-2] + MARKER[:2]
        changes = [(SIZE, SIZE, MARKER[2:] + b" appended")]
    else:
        original = original[:SIZE - 5000] + MARKER[2:] + original[SIZE - 4998:]
        changes = [(SIZE - 6000, SIZE - 5000, b"new " + MARKER[:2])]
    found, full, _ = _answers(original, changes)
    assert found and full


def test_copied_bytes_are_not_searched_again() -> None:
    found, _, searched = _answers(_original([]), APPEND)
    assert not found
    assert searched < 10_000  # the appended update and the edges, not 1.25 MiB again
