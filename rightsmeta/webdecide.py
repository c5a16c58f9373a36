"""The decision rules for a web resource: its headers, its site's policies, its page, its own bytes.

Beside ``decide.py`` and built on it: every web signal is a projection (none is rightsmeta's
exact record), so they are weighed by precedence (notAllowed > constrained > allowed >
unspecified) with every disagreement reported. The file's own carriers enter as one signal,
``body``, carrying the decision ``read`` made over them (exact record and all), so a file's
internal reasoning is not redone here. Then the data-mining umbrella applies, as for files.

A resource's status for a set of purposes fails closed: any error in reading it is ``error``
(never ``allowed``), a restriction on any asked purpose wins, and ``allowed`` needs all of them
explicitly allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from .decide import Decision, decide
from .model import Permission, Purpose, State
from .vocab import Signal

WebStatus = Literal["notAllowed", "constrained", "allowed", "unspecified", "error"]
STATUSES: tuple[WebStatus, ...] = ("notAllowed", "constrained", "allowed", "unspecified", "error")


def embedded_signal(decision: Decision, *, trusted: bool = True) -> Signal | None:
    """The file's own resolved statement as one web signal; None when the file states nothing."""
    if all(p.state is State.UNSPECIFIED for p in decision.permissions.values()):
        return None
    return Signal("embedded", "body", dict(decision.permissions), trusted=trusted)


def decide_web(signals: Sequence[Signal], *, extra_conflicts: Iterable[str] = ()) -> Decision:
    """One decision over every web signal; ``extra_conflicts`` carries the body's own disagreements."""
    found = decide([_projection(s) if s.exact else s for s in signals])
    extra = tuple(extra_conflicts)
    if not extra:
        return found
    return Decision(found.permissions, found.effective, extra + found.conflicts)


def _projection(signal: Signal) -> Signal:
    # Web signals never hold an exact record; one that claims to is weighed like the rest.
    return Signal(signal.vocabulary, signal.carrier, signal.permissions, dict(signal.raw), False, signal.trusted, signal.covers)


def status(effective: Mapping[Purpose, Permission], purposes: Iterable[Purpose], *, errors: bool) -> WebStatus:
    """The answer for ``purposes`` together; fails closed."""
    if errors:
        return "error"
    states = [effective[p].state for p in purposes]
    if State.NOT_ALLOWED in states:
        return "notAllowed"
    if State.CONSTRAINED in states:
        return "constrained"
    if states and all(s is State.ALLOWED for s in states):
        return "allowed"
    return "unspecified"
