"""The SVG sniff: the same answers as the pattern it replaced, in linear time on hostile heads."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable

from rightsmeta.carriers import svg

# The pattern before: a run of comments as "(<!--.*?-->\s*)*", exponential on "<!----><!---->...".
BACKTRACKING = re.compile(rb"^\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*(<!DOCTYPE[^>]*>\s*)?<svg[\s>]", re.DOTALL)
PIECES = (b"<!--", b"-->", b"<!---->", b"-", b" ", b"x", b">", b"<svg>", b"<svg/", b"<!DOCTYPE svg>", b'<?xml version="1.0"?>')


def _old(head: bytes) -> str | None:
    text = head[3:] if head.startswith(b"\xef\xbb\xbf") else head
    return "svg" if BACKTRACKING.match(text) or (text.lstrip().startswith(b"<?xml") and b"<svg" in text) else None


def test_same_answers_as_the_backtracking_pattern() -> None:
    heads = [b"".join(p) for n in range(1, 5) for p in itertools.product(PIECES, repeat=n)]
    assert any(svg.sniff(h) for h in heads) and not all(svg.sniff(h) for h in heads)
    for head in heads:
        assert svg.sniff(head) == _old(head), head


def _cost(sniff: Callable[[bytes], str | None], head: bytes) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(50):
            sniff(head)
        best = min(best, time.perf_counter() - start)
    return best


def test_hostile_heads_cost_linear_time() -> None:
    # Ratios of loop timings, not a wall-clock bound: a 64-byte head (what sniff is given) against
    # one refused at its first byte, then a long head against one 16 times shorter.
    for count in (9, 14):  # the old pattern took about 2**count steps
        hostile = b"<!---->" * count + b"x"
        assert svg.sniff(hostile) is None
        assert _cost(svg.sniff, hostile) < 20 * _cost(svg.sniff, b"x" * len(hostile)), count
    long, short = b"<!---->" * 8_000 + b"x", b"<!---->" * 500 + b"x"
    assert _cost(svg.sniff, long) < 3 * 16 * _cost(svg.sniff, short)
    assert svg.sniff(b"<!---->" * 8_000 + b"<svg>") == "svg"
