"""What ``read`` and ``tag`` return: plain data, with the JSON form the CLI prints.

The JSON shapes are documented in ``schemas/read-report.schema.json`` and
``schemas/tag-result.schema.json``; a test validates real output against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .decide import NOTHING, Decision
from .model import PURPOSES, Assertion, Permission, Purpose, State
from .vocab import Signal


@dataclass
class CarrierReport:
    """One place in the file that holds signals (an XMP packet, an EXIF tag, an ID3 tag...)."""

    name: str
    location: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    signals: list[Signal] = field(default_factory=list)
    rights: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "location": self.location,
            "values": self.values,
            "signals": [s.to_json() for s in self.signals],
            "errors": list(self.errors),
        }


# Enum .value is a descriptor call; a report per file of a large scan looks these up many times.
_NAMES = tuple((p, p.value) for p in PURPOSES)


def states(perms: dict[Purpose, Permission] | Any) -> dict[str, str]:
    """``{purpose: state}`` as JSON names."""
    return {name: perms[p].state._value_ for p, name in _NAMES}


def _constraints(perms: Any) -> dict[str, str]:
    return {name: perms[p].constraint_info for p, name in _NAMES if perms[p].constraint_info}


class Decided:
    """What the report of a file and of a web resource share: one decision, which fails closed
    when anything could not be read (``errors``)."""

    decision: Decision
    errors: list[str]

    @property
    def permissions(self) -> dict[Purpose, Permission]:
        return dict(self.decision.permissions)

    @property
    def conflicts(self) -> tuple[str, ...]:
        return self.decision.conflicts

    def may_use(self, purpose: Purpose, *, accept_constraints: bool = False) -> bool:
        """Fails closed: what could not be read fully is not to be used."""
        if self.errors:
            return False
        return self.decision.may_use(purpose, accept_constraints=accept_constraints)


@dataclass
class FileReport(Decided):
    path: str | None
    format: str | None = None
    carriers: list[CarrierReport] = field(default_factory=list)
    decision: Decision = NOTHING
    rights: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def signals(self) -> list[Signal]:
        return [s for c in self.carriers for s in c.signals]

    @property
    def has_signals(self) -> bool:
        return any(
            p.state is not State.UNSPECIFIED for s in self.signals for p in s.permissions.values()
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "permissions": states(self.decision.permissions),
            "constraints": _constraints(self.decision.permissions),
            "effective": states(self.decision.effective),
            "conflicts": list(self.decision.conflicts),
            "rights": self.rights,
            "carriers": [c.to_json() for c in self.carriers],
            "errors": list(self.errors),
        }


TagStatus = Literal["tagged", "would-tag", "failed", "skipped"]


@dataclass
class TagResult:
    path: str | None
    status: TagStatus
    format: str | None = None
    carriers: list[str] = field(default_factory=list)  # what was (or would be) written
    reason: str | None = None
    assertion: Assertion | None = None
    notes: list[str] = field(default_factory=list)  # what was written, but less than asked

    @property
    def ok(self) -> bool:
        return self.status in ("tagged", "would-tag", "skipped")

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "format": self.format,
            "carriers": list(self.carriers),
            "reason": self.reason,
            "notes": list(self.notes),
            "assertion": self.assertion.to_json() if self.assertion else None,
        }
