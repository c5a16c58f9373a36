"""Exif 3.1 ``LearningOptOutIn`` (tag 0x9287 in the Exif IFD): read only.

The value is a count N followed by N (usage, indicator) pairs of 16-bit integers, as
ExifTool (>= 13.56) writes it. Usage 0 means every use; a specific usage overrides it,
unless its indicator is 'unspecified', which says nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import MalformedMetadata
from ..model import Permission, Purpose, State
from . import Signal

NAME = "exif-3.1"
TAG = 0x9287

_ALL = (Purpose.DATA_MINING, Purpose.AI_TRAINING, Purpose.GENAI_TRAINING, Purpose.AI_INFERENCE)
USAGES: dict[int, tuple[Purpose, ...]] = {
    0: _ALL,
    1: (Purpose.AI_TRAINING,),
    2: (Purpose.GENAI_TRAINING,),
    3: (Purpose.DATA_MINING,),
    4: (Purpose.AI_INFERENCE,),
}
INDICATORS = {0: State.NOT_ALLOWED, 1: State.ALLOWED, 2: State.UNSPECIFIED}


def decode(values: Sequence[int], *, carrier: str = "exif") -> Signal:
    if not values:
        raise MalformedMetadata("LearningOptOutIn is empty")
    count = values[0]
    pairs = values[1:]
    if len(pairs) != 2 * count:
        raise MalformedMetadata(
            f"LearningOptOutIn says {count} pair(s) but holds {len(pairs)} value(s) after the count"
        )
    found = sorted(zip(pairs[0::2], pairs[1::2], strict=True), key=lambda pair: pair[0] != 0)  # usage 0 first
    perms: dict[Purpose, Permission] = {}
    for usage, indicator in found:
        if usage not in USAGES:
            raise MalformedMetadata(f"LearningOptOutIn has unknown usage {usage}")
        if indicator not in INDICATORS:
            raise MalformedMetadata(f"LearningOptOutIn has unknown indicator {indicator}")
        if INDICATORS[indicator] is State.UNSPECIFIED:
            continue  # says nothing, so it cannot override what usage 0 said
        for purpose in USAGES[usage]:
            perms[purpose] = Permission(INDICATORS[indicator])
    return Signal(NAME, carrier, perms, raw={"LearningOptOutIn": list(values)}, covers=_ALL)
