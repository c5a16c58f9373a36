"""Vocabularies: one module each, translating raw carrier values to and from the canonical model.

A vocabulary module never touches files. It offers ``decode(raw) -> Signal`` (raising
``MalformedMetadata`` for values it cannot accept) and, where rightsmeta writes it,
``encode(assertion) -> raw | None``. The raw form ``decode`` reads back is the same
normalised form ``encode`` produces, so the decision rules can tell whether a projection
is exactly what rightsmeta would have written for the exact record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import MalformedMetadata
from ..model import Permission, Purpose, full


@dataclass(frozen=True)
class Signal:
    """What one vocabulary, found in one carrier, says."""

    vocabulary: str  # "rightsmeta", "iptc-plus", "tdmrep", "cawg", "aipref", "exif-3.1"
    carrier: str  # where it was found: "xmp", "exif", "id3", "c2pa", ...
    permissions: Mapping[Purpose, Permission]
    raw: Mapping[str, Any] = field(default_factory=dict)
    exact: bool = False  # the project's own precise record (not a lossy projection)
    trusted: bool = True  # False for a tampered C2PA manifest: its 'allowed' is not believed
    covers: tuple[Purpose, ...] = tuple(Purpose)  # purposes the vocabulary can express

    def __post_init__(self) -> None:
        object.__setattr__(self, "permissions", full(self.permissions))

    @property
    def source(self) -> str:
        return f"{self.carrier}:{self.vocabulary}"

    def to_json(self) -> dict[str, Any]:
        return {
            "vocabulary": self.vocabulary,
            "exact": self.exact,
            "raw": dict(self.raw),
            "permissions": {p.value: perm.to_json() for p, perm in self.permissions.items()},
        }


def decode_all(
    calls: Iterable[tuple[Callable[..., Signal | None], tuple[Any, ...]]], *, carrier: str
) -> tuple[list[Signal], list[str]]:
    """Run several vocabularies' decoders over one carrier's values.

    One malformed vocabulary does not hide the others: its error is collected and the rest
    are still read.
    """
    signals: list[Signal] = []
    errors: list[str] = []
    for decode, args in calls:
        try:
            signal = decode(*args, carrier=carrier)
        except MalformedMetadata as exc:
            errors.append(str(exc))
            continue
        if signal is not None:
            signals.append(signal)
    return signals, errors


def apart(a: str, b: str) -> int:
    """How many characters two names of one length differ by (a large number for two lengths): a
    name one or two characters from a vocabulary's own is read as that name damaged, not as
    another (xmp.py's namespaces, PDF Info keys, Vorbis comment and MP4 item names)."""
    return sum(x != y for x, y in zip(a, b, strict=True)) if len(a) == len(b) else 1 << 30
