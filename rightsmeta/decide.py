"""The decision rules (signals.md section 1), all in one place.

Signals found in a file's carriers go in; one set of permissions comes out, with every
disagreement named. Two results are kept apart:

- ``permissions``: what the file states, resolved across carriers. Tag-then-read returns
  exactly what was tagged.
- ``effective``: what a user of the file must honour, after the data-mining umbrella
  (AI training and inference are forms of text and data mining in EU law).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .errors import UsageError
from .model import AI_PURPOSES, PURPOSES, UNSPECIFIED, Assertion, Permission, Purpose, State, full
from .vocab import Signal, iptc, tdmrep

RANK = {State.UNSPECIFIED: 0, State.ALLOWED: 1, State.CONSTRAINED: 2, State.NOT_ALLOWED: 3}

# Projections rightsmeta writes beside its exact record, and how it writes them.
_ENCODERS: dict[str, Callable[[Assertion], Any]] = {
    iptc.NAME: iptc.encode,
    tdmrep.NAME: tdmrep.encode,
}


@dataclass(frozen=True)
class Decision:
    permissions: Mapping[Purpose, Permission]
    effective: Mapping[Purpose, Permission]
    conflicts: tuple[str, ...] = ()

    def may_use(self, purpose: Purpose, *, accept_constraints: bool = False) -> bool:
        """May the file be used for ``purpose``? Constrained counts as no unless accepted."""
        state = self.effective[purpose].state
        if state is State.CONSTRAINED:
            return accept_constraints
        return state is not State.NOT_ALLOWED


def strongest(perms: Iterable[Permission]) -> Permission:
    """notAllowed > constrained > allowed > unspecified; constraint texts are joined."""
    best = UNSPECIFIED
    infos: list[str] = []
    for perm in perms:
        if RANK[perm.state] > RANK[best.state]:
            best = perm
        if perm.state is State.CONSTRAINED and perm.constraint_info and perm.constraint_info not in infos:
            infos.append(perm.constraint_info)
    if best.state is State.CONSTRAINED and infos:  # whichever came first, keep every text
        return Permission(State.CONSTRAINED, "; ".join(infos))
    return best


def _believed(signal: Signal) -> Mapping[Purpose, Permission]:
    """A tampered manifest's 'allowed' is not believed; its restrictions still count (fail closed)."""
    if signal.trusted:
        return signal.permissions
    return {p: (UNSPECIFIED if perm.state is State.ALLOWED else perm) for p, perm in signal.permissions.items()}


def merge(signals: Sequence[Signal]) -> dict[Purpose, Permission]:
    if len(signals) == 1:  # the common case: nothing to weigh
        return dict(_believed(signals[0]))
    return {p: strongest(_believed(s)[p] for s in signals) for p in PURPOSES}


def umbrella(perms: Mapping[Purpose, Permission]) -> dict[Purpose, Permission]:
    """Data-mining reserved also reserves the AI purposes nobody explicitly allowed."""
    out = full(perms)
    mining = out[Purpose.DATA_MINING]
    if mining.state in (State.NOT_ALLOWED, State.CONSTRAINED):
        for purpose in AI_PURPOSES:
            if out[purpose].state is State.UNSPECIFIED:
                out[purpose] = mining
    return out


def _describe(perms: Mapping[Purpose, Permission], covers: Iterable[Purpose]) -> str:
    said = [f"{p.value} {perms[p].state.value}" for p in covers if perms[p].state is not State.UNSPECIFIED]
    return ", ".join(said) or "nothing"


# Records whose texts are longer than this are encoded afresh, so that the memo below stays small
# whatever the files hold.
_MEMO_TEXT = 1024

# An exact record as the memo's key: each purpose's state and terms in canonical order, as plain
# strings (which hash in C, unlike Permission and State).
_Record = tuple[tuple[str, str | None], ...]


def _key(exact: Mapping[Purpose, Permission]) -> tuple[_Record, int]:
    """The record's key and the length of its texts: made once per decision, for every projection."""
    record = tuple([(exact[p].state._value_, exact[p].constraint_info) for p in PURPOSES])
    return record, sum(len(info) for _, info in record if info)


@functools.lru_cache(maxsize=64)
def _projection(vocabulary: str, record: _Record, policy: str | None) -> Mapping[str, Any] | None:
    """What rightsmeta writes in ``vocabulary`` for the exact record (``None``: never this), computed
    once per record: a read-back decides on the record it just wrote. The value is read-only and
    depends on nothing but the key, so threads may share it."""
    perms = {p: Permission(State(state), info) for p, (state, info) in zip(PURPOSES, record, strict=True)}
    try:
        encoded = _ENCODERS[vocabulary](Assertion(permissions=perms, policy=policy))
    except UsageError:  # e.g. a tdm-policy that is no URL: rightsmeta never writes that
        return None
    return None if encoded is None else MappingProxyType(encoded)


def _matches_exact(
    signal: Signal, exact: Mapping[Purpose, Permission], key: tuple[_Record, int] | None = None
) -> bool:
    """Is this projection exactly what rightsmeta writes for the exact record (``key``: its _key)?"""
    if signal.vocabulary in _ENCODERS:
        policy = signal.raw.get("policy") if signal.vocabulary == tdmrep.NAME else None
        record, texts = key or _key(exact)
        small = (policy is None or type(policy) is str) and texts + len(policy or "") <= _MEMO_TEXT
        make = _projection if small else _projection.__wrapped__
        expected = make(signal.vocabulary, record, policy)
        return expected is not None and expected == dict(signal.raw)
    # A vocabulary rightsmeta does not write agrees when it says nothing the record contradicts.
    return all(
        signal.permissions[p].state in (State.UNSPECIFIED, exact[p].state) for p in signal.covers
    )


def _states_something(signal: Signal) -> bool:
    return any(perm.state is not State.UNSPECIFIED for perm in signal.permissions.values())


def _disagreements(signals: Sequence[Signal]) -> list[str]:
    out: list[str] = []
    if len(signals) < 2:
        return out
    for purpose in PURPOSES:
        stated = {
            s.source: s.permissions[purpose].state
            for s in signals
            if purpose in s.covers and s.permissions[purpose].state is not State.UNSPECIFIED
        }
        if len(set(stated.values())) > 1:
            said = ", ".join(f"{src} says {state.value}" for src, state in stated.items())
            out.append(f"{purpose.value}: {said}")
    return out


#: The decision for a file without signals (most files of a scan): nothing stated.
NOTHING = Decision(MappingProxyType(full({})), MappingProxyType(full({})))


def decide(signals: Sequence[Signal]) -> Decision:
    if not signals:
        return NOTHING
    exact = [s for s in signals if s.exact]
    projections = [s for s in signals if not s.exact]
    conflicts: list[str] = []

    if not exact:
        conflicts += _disagreements(projections)
        stated = merge(projections)
        return Decision(stated, umbrella(stated), tuple(conflicts))

    # Several exact records (XMP, ID3, C2PA...) must say the same on every purpose they cover.
    for purpose in PURPOSES if len(exact) > 1 else ():
        states = {s.source: s.permissions[purpose] for s in exact if purpose in s.covers}
        found = list(states.values())
        # "Not all equal", without hashing (Permission hashes in Python); decoders share equal values.
        if any(perm is not found[0] and perm != found[0] for perm in found):
            said = ", ".join(f"{src} says {perm.state.value}" for src, perm in states.items())
            conflicts.append(f"{purpose.value}: {said}")
    record = merge(exact)

    # A damaged projection that states nothing (e.g. plus:DataMining deleted, its sentence left)
    # cannot disagree with anything: the verifier reports it as a missing carrier instead.
    key = _key(record) if projections else None
    diverging = [s for s in projections if not _matches_exact(s, record, key) and _states_something(s)]
    for s in diverging:
        conflicts.append(
            f"{s.source} ({_describe(s.permissions, s.covers)}) differs from the rightsmeta record "
            f"({_describe(record, s.covers)}); resolved by precedence"
        )
    # A conflicting file is resolved by precedence over every carrier it holds: a matching
    # projection's restriction (e.g. TDMRep's reservation) still counts once the file disagrees.
    stated = merge(signals) if diverging else record
    return Decision(stated, umbrella(stated), tuple(conflicts))

