"""The damage the tests/test_fuzz_*.py files do to text formats: one change at a time, outside
the bytes that hold the statement (so that whatever the damage, the statement is still there to
be read, and a reader that loses it has failed, not the data)."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import strategies as st

INSERTS = (b"<", b">", b'"', b"\x00", b"\xff", b"\r\n")


def damage(data: bytes, protected: list[tuple[int, int]], rng: random.Random,
           inserts: tuple[bytes, ...] = INSERTS) -> bytes:
    """``data`` with one bit flipped, a stretch doubled, inserted or deleted, or the end cut off,
    nowhere in ``protected`` ((start, end) spans); a cut is made only after all of them."""
    free = set(range(len(data))).difference(*(range(start, stop) for start, stop in protected))
    if not free:
        raise ValueError("nothing to damage: every byte is protected")
    while True:
        at = rng.randrange(len(data))
        end = min(len(data), at + rng.randrange(1, 64))
        if any(start < end and at < stop for start, stop in protected):
            continue
        kind = rng.randrange(5)
        if kind == 0:
            return data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1:]
        if kind == 1:
            if any(start >= at for start, _ in protected):
                continue
            return data[:at]
        if kind == 2:
            return data[:end] + data[at:end] + data[end:]
        if kind == 3:
            return data[:at] + rng.choice(inserts) + data[at:]
        return data[:at] + data[end:]


def json_values(words: tuple[str, ...], keys: tuple[str, ...], max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value, its texts and object keys often ``words`` and ``keys`` (the names a parser
    looks for), so that the fuzzing gets past the first check."""
    scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
               | st.sampled_from(words))
    names = st.sampled_from(keys) | st.text(max_size=6)

    def nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4)

    return st.recursive(scalars, nested, max_leaves=max_leaves)
