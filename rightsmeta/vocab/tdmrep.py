"""W3C TDMRep: ``tdm-reservation`` (0 or 1) and ``tdm-policy`` (a URL).

TDMRep speaks of text and data mining only; under EU law AI training is a form of TDM,
which the decision rules apply (the data-mining umbrella), not this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from ..errors import MalformedMetadata
from ..model import Assertion, Permission, Purpose, State
from . import Signal

NAME = "tdmrep"
NS = "http://www.w3.org/ns/tdmrep/"  # PDF and XMP
NS_HASH = "http://www.w3.org/ns/tdmrep#"  # EPUB 3 and JSON-LD
NAMESPACES = (NS, NS_HASH)

_T = TypeVar("_T")

_RESERVING = (Purpose.DATA_MINING, Purpose.AI_TRAINING, Purpose.GENAI_TRAINING, Purpose.AI_INFERENCE)


def decode(reservation: str | int | None, policy: str | None = None, *, carrier: str = "xmp") -> Signal | None:
    """Signal from the raw values; None when no reservation is stated.

    A reservation with a policy is 'constrained': mining is reserved, and the policy says
    how a licence may be had. Any value but 0 or 1 is an error (the report says so).
    """
    if reservation is None:
        return None
    text = str(reservation).strip()
    if text not in ("0", "1"):
        raise MalformedMetadata(f"tdm-reservation must be 0 or 1, got {reservation!r}")
    value = int(text)
    policy = policy.strip() if policy and policy.strip() else None
    if value == 0:
        perm = Permission(State.ALLOWED)
    elif policy:
        perm = Permission(State.CONSTRAINED, policy)
    else:
        perm = Permission(State.NOT_ALLOWED)
    return Signal(
        NAME, carrier, {Purpose.DATA_MINING: perm}, raw={"reservation": value, "policy": policy},
        covers=(Purpose.DATA_MINING,),
    )


def encode(assertion: Assertion) -> dict[str, int | str | None] | None:
    """``{"reservation": 0|1, "policy": url|None}``, or None when nothing is reserved or allowed."""
    states = [assertion.state(p) for p in _RESERVING]
    if any(s in (State.NOT_ALLOWED, State.CONSTRAINED) for s in states):
        return {"reservation": 1, "policy": assertion.policy}
    if assertion.state(Purpose.DATA_MINING) is State.ALLOWED:
        return {"reservation": 0, "policy": assertion.policy}
    return None


def disagreeing(statements: Sequence[_T], key: Callable[[_T], object] = lambda s: s) -> _T | None:
    """The first of ``statements`` that says otherwise than the first (compared by ``key``), None
    when they all agree. A resource stating its reservation more than once, differently (header
    lines, meta elements, tdmrep.json rules as specific), is an error of the caller's, never the
    first read alone: that made "0, 1" allowed, and which the publisher meant is not ours to guess."""
    return next((other for other in statements[1:] if key(other) != key(statements[0])), None)
