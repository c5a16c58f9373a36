"""CAWG / C2PA training-and-data-mining assertion entries (the dict form; signing lives elsewhere).

Written as CAWG 1.1 (``cawg.training-mining`` with ``cawg.*`` keys). Read: that, the legacy
C2PA 1.x ``c2pa.training-mining`` with ``c2pa.*`` keys, and the mixed forms found in the wild.
c2pa-python validates neither labels nor values, so this module does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import MalformedMetadata
from ..model import Assertion, Permission, Purpose, State
from . import Signal

NAME = "cawg"
LABEL = "cawg.training-mining"
LEGACY_LABEL = "c2pa.training-mining"
LABELS = (LABEL, LEGACY_LABEL)

KEYS: dict[Purpose, str] = {
    Purpose.DATA_MINING: "data_mining",
    Purpose.AI_INFERENCE: "ai_inference",
    Purpose.GENAI_TRAINING: "ai_generative_training",
    Purpose.AI_TRAINING: "ai_training",
}
_BY_KEY = {key: purpose for purpose, key in KEYS.items()}
COVERS = tuple(KEYS)
_USES = {s.value: s for s in (State.ALLOWED, State.NOT_ALLOWED, State.CONSTRAINED)}


def decode(assertion: Mapping[str, Any], *, label: str = LABEL, carrier: str = "c2pa", trusted: bool = True) -> Signal:
    """Signal from an assertion's data. Unknown ``use`` values and malformed entries raise."""
    if label not in LABELS:
        raise MalformedMetadata(f"not a training-mining assertion label: {label!r}")
    entries = assertion.get("entries") if isinstance(assertion, Mapping) else None
    if not isinstance(entries, Mapping):
        raise MalformedMetadata(f"{label}: 'entries' must be an object")
    perms: dict[Purpose, Permission] = {}
    raw: dict[str, dict[str, str]] = {}
    for key, entry in entries.items():
        prefix, _, name = str(key).partition(".")
        purpose = _BY_KEY.get(name) if prefix in ("cawg", "c2pa") else None
        if purpose is None:
            continue  # an entry from a later version of the spec: not ours to judge
        if not isinstance(entry, Mapping):
            raise MalformedMetadata(f"{label}: entry {key!r} must be an object")
        use = entry.get("use")
        if not isinstance(use, str) or use not in _USES:  # a list or map from CBOR is no key of _USES
            raise MalformedMetadata(
                f"{label}: entry {key!r} has use {use!r}; expected allowed, notAllowed or constrained"
            )
        info = entry.get("constraint_info")
        if info is not None and not isinstance(info, str):
            raise MalformedMetadata(f"{label}: entry {key!r} constraint_info must be a string")
        state = _USES[use]
        if purpose in perms and perms[purpose].state is not state:
            # cawg.x and c2pa.x both given, and at odds: whichever came last must not decide (fail closed)
            raise MalformedMetadata(f"{label}: the entries for {name} say both {perms[purpose].state.value} and {use}")
        perms[purpose] = Permission(state, info if state is State.CONSTRAINED else None)
        entry_raw = {"use": str(use)}
        if info is not None:
            entry_raw["constraint_info"] = info
        raw[f"cawg.{name}"] = entry_raw
    return Signal(NAME, carrier, perms, raw={"entries": raw}, exact=True, trusted=trusted, covers=COVERS)


def encode(assertion: Assertion) -> dict[str, Any] | None:
    """The assertion data in CAWG 1.1 form; None when none of its four purposes is stated."""
    entries: dict[str, dict[str, str]] = {}
    for purpose, key in KEYS.items():
        perm = assertion.permissions[purpose]
        if perm.state is State.UNSPECIFIED:
            continue
        entry = {"use": perm.state.value}
        if perm.constraint_info is not None:
            entry["constraint_info"] = perm.constraint_info
        entries[f"cawg.{key}"] = entry
    return {"entries": entries} if entries else None
