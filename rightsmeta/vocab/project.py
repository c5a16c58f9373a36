"""The project's own exact record: every purpose's state, word for word.

The same flat key/value form travels in every carrier that can hold it: XMP properties in
the rightsmeta namespace, ID3 ``TXXX`` frames, Vorbis comments, MP4 freeform atoms
(``schemas/rightsmeta-namespace.md`` documents the names). Keys are XMP property names.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import MalformedMetadata
from ..model import PURPOSES, Assertion, Permission, Purpose, State
from . import Signal, tdmrep

NAME = "rightsmeta"
NS = "http://ns.rightsmeta.org/xmp/1.0/"
PREFIX = "rightsmeta"
VERSION = "1"

KEYS: dict[Purpose, str] = {
    Purpose.DATA_MINING: "DataMining",
    Purpose.AI_TRAINING: "AITraining",
    Purpose.GENAI_TRAINING: "GenAITraining",
    Purpose.AI_INFERENCE: "AIInference",
    Purpose.SEARCH: "Search",
}
CONSTRAINT_SUFFIX = "Constraint"
ALL_KEYS = ("Version", *KEYS.values(), *(k + CONSTRAINT_SUFFIX for k in KEYS.values()), "WorkID")


def encode(assertion: Assertion) -> dict[str, str] | None:
    """Every purpose's state (unspecified included, so the record is complete); None if empty."""
    if assertion.is_empty:
        return None
    out = {"Version": VERSION}
    for purpose, key in KEYS.items():
        perm = assertion.permissions[purpose]
        out[key] = perm.state.value
        if perm.constraint_info is not None:
            out[key + CONSTRAINT_SUFFIX] = perm.constraint_info
    if assertion.work_id:
        out["WorkID"] = assertion.work_id
    return out


DETAIL_KEYS = ("HolderName", "HolderContact", "Date")


def details(assertion: Assertion) -> dict[str, str]:
    """Who made the statement and when, under the same flat names as the record."""
    out = {}
    if assertion.holder:
        out["HolderName"] = assertion.holder.name
        if assertion.holder.contact:
            out["HolderContact"] = assertion.holder.contact
    if assertion.date:
        out["Date"] = assertion.date
    return out


def flat(assertion: Assertion, *, reservation_key: str, policy_key: str) -> dict[str, str]:
    """What a key/value carrier (ID3 TXXX, Vorbis, MP4 atoms, EPUB meta) holds: the record and its
    details as ``rightsmeta:Name``, and the TDMRep projection under the carrier's own key names."""
    record = {**(encode(assertion) or {}), **details(assertion)}
    out = {f"{PREFIX}:{k}": v for k, v in record.items()}
    tdm = tdmrep.encode(assertion)
    if tdm:
        out[reservation_key] = str(tdm["reservation"])
        if tdm["policy"]:
            out[policy_key] = str(tdm["policy"])
    return out


_STATES = {s.value: s for s in State}
# One value per state for the records without terms (Permission is immutable): no object a purpose.
_PLAIN = {s: Permission(s) for s in State}


def decode(values: Mapping[str, str], *, carrier: str = "xmp") -> Signal | None:
    """Signal from the record's keys (others ignored); None when no record is present."""
    # The record's keys looked up (a carrier holds many others), in the record's order.
    present = {k: values[k] for k in ALL_KEYS if k in values}
    if not present:
        return None
    perms: dict[Purpose, Permission] = {}
    for purpose, key in KEYS.items():
        text = present.get(key)
        if text is None:
            continue
        state = _STATES.get(text.strip())
        if state is None:
            expected = ", ".join(s.value for s in State)
            raise MalformedMetadata(
                f"{PREFIX}:{key} must be one of {expected}, got {text!r}"
            )
        info = present.get(key + CONSTRAINT_SUFFIX) if state is State.CONSTRAINED else None
        perms[purpose] = _PLAIN[state] if info is None else Permission(state, info)
    if "Version" in present and len(perms) < len(KEYS):
        # Version marks a whole record: every purpose's state is written with it. One missing is
        # a damaged or lost property (a key one byte off, in a carrier with no checksum), and
        # reading it as unspecified would allow what the record may deny.
        missing = ", ".join(f"{PREFIX}:{k}" for p, k in KEYS.items() if p not in perms)
        raise MalformedMetadata(f"the {PREFIX} record (with {PREFIX}:Version) lacks {missing}; a record holds "
                                "every purpose's state")
    return Signal(NAME, carrier, perms, raw=present, exact=True, covers=PURPOSES)
