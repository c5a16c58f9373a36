"""The canonical model: one statement of intent, independent of any vocabulary.

Every vocabulary module translates to and from these types; nothing else in
rightsmeta knows what a purpose or a state is.
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, TypeVar

from .errors import UsageError


class Purpose(str, Enum):
    DATA_MINING = "data-mining"
    AI_TRAINING = "ai-training"
    GENAI_TRAINING = "genai-training"
    AI_INFERENCE = "ai-inference"
    SEARCH = "search"

    def __str__(self) -> str:
        return self.value


class State(str, Enum):
    ALLOWED = "allowed"
    NOT_ALLOWED = "notAllowed"
    CONSTRAINED = "constrained"
    UNSPECIFIED = "unspecified"

    def __str__(self) -> str:
        return self.value


PURPOSES: tuple[Purpose, ...] = tuple(Purpose)
AI_PURPOSES = (Purpose.AI_TRAINING, Purpose.GENAI_TRAINING, Purpose.AI_INFERENCE)
GROUPS: dict[str, tuple[Purpose, ...]] = {"ai": AI_PURPOSES, "all": PURPOSES}

LABELS: dict[Purpose, str] = {
    Purpose.DATA_MINING: "text and data mining",
    Purpose.AI_TRAINING: "AI/ML training",
    Purpose.GENAI_TRAINING: "generative AI training",
    Purpose.AI_INFERENCE: "AI inference (use as model input)",
    Purpose.SEARCH: "search engine indexing",
}


def parse_purpose(text: str) -> Purpose:
    try:
        return Purpose(text)
    except ValueError:
        expected = ", ".join(p.value for p in PURPOSES)
        raise UsageError(f"unknown purpose {text!r}; expected one of {expected}") from None


def parse_state(text: str) -> State:
    try:
        return State(text)
    except ValueError:
        expected = ", ".join(s.value for s in State)
        raise UsageError(f"unknown state {text!r}; expected one of {expected}") from None


def expand(name: str) -> tuple[Purpose, ...]:
    """A purpose or a group name (``ai``, ``all``) to the purposes it stands for."""
    if name in GROUPS:
        return GROUPS[name]
    try:
        return (Purpose(name),)
    except ValueError:
        expected = ", ".join([p.value for p in PURPOSES] + list(GROUPS))
        raise UsageError(f"unknown purpose {name!r}; expected one of {expected}") from None


@dataclass(frozen=True)
class Permission:
    state: State = State.UNSPECIFIED
    constraint_info: str | None = None

    def __post_init__(self) -> None:
        if self.constraint_info is not None and self.state is not State.CONSTRAINED:
            raise UsageError("constraint_info is only meaningful for the 'constrained' state")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state.value}
        if self.constraint_info is not None:
            out["constraint_info"] = self.constraint_info
        return out


UNSPECIFIED = Permission()

Permissions = Mapping[Purpose, Permission]


def full(perms: Mapping[Purpose, Permission]) -> dict[Purpose, Permission]:
    """``perms`` with every missing purpose filled in as unspecified, in canonical order."""
    return {p: perms.get(p, UNSPECIFIED) for p in PURPOSES}


@dataclass(frozen=True)
class Holder:
    name: str
    contact: str | None = None  # a URL or an e-mail address

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **({"contact": self.contact} if self.contact else {})}


@functools.cache  # on first use: compiling a class beyond Latin-1 is ~0.4 ms, and --deny alone has no text
def _control() -> re.Pattern[str]:
    return re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


_URL = re.compile(r"^(https?://[^\s]+|mailto:[^\s]+)$", re.IGNORECASE)


def check_url(value: str, what: str) -> str:
    if not _URL.match(value):
        raise UsageError(f"{what} must be an http(s) URL, got {value!r}")
    return value


def new_work_id(raw: bytes | None = None) -> str:
    """A random (version 4) UUID, as ``str(uuid.uuid4())`` makes it from 16 bytes of os.urandom
    (``raw``, given by a test): importing uuid loads platform, about 4 ms of every tag run's start."""
    b = bytearray(raw if raw is not None else os.urandom(16))
    b[6] = b[6] & 0x0F | 0x40  # version 4
    b[8] = b[8] & 0x3F | 0x80  # the RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# Where an Assertion keeps its ``shared`` memo: an instance attribute beside the fields (not one
# of them, so equality, repr and the JSON form ignore it).
_SHARED = "_shared"
_T = TypeVar("_T")


@dataclass(frozen=True)
class Assertion:
    """What a rights holder says about their work: the unit rightsmeta writes."""

    permissions: Mapping[Purpose, Permission] = field(default_factory=dict)
    holder: Holder | None = None
    copyright: str | None = None
    web_statement: str | None = None
    policy: str | None = None
    date: str | None = None  # ISO 8601, set when tagging
    work_id: str | None = None  # one per tagged file, so a ledger finds the work without decoding it

    def __post_init__(self) -> None:
        for key in self.permissions:
            if not isinstance(key, Purpose):
                raise UsageError(f"permission keys must be Purpose values, got {key!r}")
        object.__setattr__(self, "permissions", full(self.permissions))
        for what, text in self._texts():
            if _control().search(text):
                raise UsageError(f"{what} contains a control character, which metadata cannot carry")
        if self.web_statement is not None:
            check_url(self.web_statement, "the web statement")
        if self.policy is not None:
            check_url(self.policy, "the TDM policy")

    def _texts(self) -> Iterator[tuple[str, str]]:
        for purpose, perm in self.permissions.items():
            if perm.constraint_info:
                yield f"the terms for {purpose.value}", perm.constraint_info
        if self.holder:
            yield "the holder name", self.holder.name
            if self.holder.contact:
                yield "the holder contact", self.holder.contact
        for what in ("copyright", "web_statement", "policy"):
            value = getattr(self, what)
            if value:
                yield f"the {what.replace('_', ' ')}", value

    def state(self, purpose: Purpose) -> State:
        return self.permissions[purpose].state

    @property
    def is_empty(self) -> bool:
        """True when the assertion says nothing at all about any purpose."""
        return all(p.state is State.UNSPECIFIED for p in self.permissions.values())

    def dated(self, when: _dt.datetime | None = None) -> Assertion:
        when = when or _dt.datetime.now(_dt.UTC)
        return replace(self, date=when.replace(microsecond=0).isoformat())

    def for_work(self) -> Assertion:
        """A copy dated now, with a fresh work id: what one file is tagged with."""
        when = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
        # Once per file tagged: a copy of the checked fields, not replace(), whose __post_init__
        # checked them all again (two thirds of this call); a date and an id made here need none.
        copy = object.__new__(type(self))
        self.__dict__.setdefault(_SHARED, {})  # made before the first copy, so every copy holds the same one
        copy.__dict__.update(self.__dict__, date=when, work_id=new_work_id())
        return copy

    def shared(self, key: str, make: Callable[[Assertion], _T]) -> _T:
        """``make`` of this assertion without its date and work id, computed once for it and all
        its ``for_work`` copies (a run's files share the words, not the date or id).

        ``make`` sees neither field, so what it returns cannot depend on them. The memo lives in
        the instances (no global state); two threads may both compute a missing entry, and the
        value must not be mutated by its users.
        """
        memo: dict[str, Any] = self.__dict__.setdefault(_SHARED, {})
        if key not in memo:
            words = object.__new__(type(self))
            words.__dict__.update(self.__dict__, date=None, work_id=None)
            memo[key] = make(words)
        value: _T = memo[key]
        return value

    @classmethod
    def build(
        cls,
        *,
        deny: Iterable[str] = (),
        allow: Iterable[str] = (),
        constrain: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        holder: str | None = None,
        contact: str | None = None,
        copyright: str | None = None,
        web_statement: str | None = None,
        policy: str | None = None,
    ) -> Assertion:
        """Assertion from purpose or group names, as the CLI's flags give them.

        The narrower name wins (``--deny all --allow search`` allows search); a purpose given
        two different states at the same breadth is an error, not a silent override.
        """
        chosen: dict[Purpose, Permission] = {}
        breadth: dict[Purpose, int] = {}

        def put(name: str, perm: Permission) -> None:
            purposes = expand(name)
            for p in purposes:
                if p in chosen and breadth[p] < len(purposes):
                    continue
                if p in chosen and breadth[p] == len(purposes) and chosen[p] != perm:
                    raise UsageError(f"purpose {p.value!r} is given two different states")
                chosen[p] = perm
                breadth[p] = len(purposes)

        for name in deny:
            put(name, Permission(State.NOT_ALLOWED))
        for name in allow:
            put(name, Permission(State.ALLOWED))
        items = constrain.items() if isinstance(constrain, Mapping) else constrain
        for name, text in items:
            if not text.strip():
                raise UsageError(f"--constrain {name}= needs the terms (a URL or text) after '='")
            put(name, Permission(State.CONSTRAINED, text.strip()))
        if contact and not holder:
            raise UsageError("a holder contact needs a holder name")
        return cls(
            permissions=chosen,
            holder=Holder(holder, contact) if holder else None,
            copyright=copyright,
            web_statement=web_statement,
            policy=policy,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "permissions": {p.value: perm.to_json() for p, perm in self.permissions.items()}
        }
        if self.holder:
            out["holder"] = self.holder.to_json()
        for key in ("copyright", "web_statement", "policy", "date", "work_id"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Assertion:
        """The inverse of :meth:`to_json`; every problem is reported by name."""
        if not isinstance(data, Mapping):
            raise UsageError("an assertion must be a JSON object")
        known = {"permissions", "holder", "copyright", "web_statement", "policy", "date", "work_id"}
        extra = set(data) - known
        if extra:
            raise UsageError(f"unknown assertion field(s): {', '.join(sorted(extra))}")
        perms: dict[Purpose, Permission] = {}
        raw_perms = data.get("permissions", {})
        if not isinstance(raw_perms, Mapping):
            raise UsageError("'permissions' must be an object keyed by purpose")
        for name, value in raw_perms.items():
            purpose = parse_purpose(name)
            if isinstance(value, str):
                value = {"state": value}
            if not isinstance(value, Mapping) or "state" not in value:
                raise UsageError(f"permission for {name!r} must be a state or {{'state': ...}}")
            info = value.get("constraint_info")
            if info is not None and not isinstance(info, str):
                raise UsageError(f"constraint_info for {name!r} must be text")
            perms[purpose] = Permission(parse_state(value["state"]), info)
        holder = data.get("holder")
        # The values are written into files and the ledger as they are: a number or an object here
        # would fail there, far from the input that was wrong (the server and ledger import read
        # assertions from anyone).
        if holder and not (isinstance(holder, Mapping) and isinstance(holder.get("name"), str)
                           and isinstance(holder.get("contact"), str | None)):
            raise UsageError("'holder' must be an object {'name': text, 'contact': text}")
        wrong = [k for k in sorted(known - {"permissions", "holder"}) if not isinstance(data.get(k), str | None)]
        if wrong:
            raise UsageError(f"assertion field(s) {', '.join(wrong)} must be text")
        return cls(
            permissions=perms,
            holder=Holder(holder["name"], holder.get("contact")) if holder else None,
            copyright=data.get("copyright"),
            web_statement=data.get("web_statement"),
            policy=data.get("policy"),
            date=data.get("date"),
            work_id=data.get("work_id"),
        )


def summary(perms: Mapping[Purpose, Permission]) -> str:
    """One plain sentence per state, e.g. for plus:OtherConstraints and terminals."""
    by_state: dict[State, list[str]] = {}
    for purpose, perm in full(perms).items():
        label = LABELS[purpose]
        if perm.state is State.CONSTRAINED and perm.constraint_info:
            label += f" (under these terms: {perm.constraint_info})"
        by_state.setdefault(perm.state, []).append(label)
    parts = []
    for state, head in (
        (State.NOT_ALLOWED, "Not allowed"),
        (State.CONSTRAINED, "Allowed only under terms"),
        (State.ALLOWED, "Allowed"),
        (State.UNSPECIFIED, "Not specified"),
    ):
        if state in by_state:
            parts.append(f"{head}: {', '.join(by_state[state])}.")
    return " ".join(parts)
