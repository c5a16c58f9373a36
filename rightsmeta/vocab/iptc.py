"""IPTC Photo Metadata (PLUS) ``plus:DataMining`` and ``plus:OtherConstraints``.

The PLUS vocabulary is coarse: nine codes for five purposes. ``encode`` picks the broadest
code whose whole meaning is true and adds a generated sentence whenever the code alone does
not say everything; the exact states travel in the project's own record beside it.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import MalformedMetadata
from ..model import PURPOSES, Assertion, Permission, Purpose, State, summary
from . import Signal

NAME = "iptc-plus"
NS = "http://ns.useplus.org/ldf/xmp/1.0/"
VOCAB_PREFIX = "http://ns.useplus.org/ldf/vocab/"

UNSPECIFIED = "DMI-UNSPECIFIED"
ALLOWED = "DMI-ALLOWED"
AIML = "DMI-PROHIBITED-AIMLTRAINING"
GENAI = "DMI-PROHIBITED-GENAIMLTRAINING"
EXCEPT_SEARCH = "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING"
PROHIBITED = "DMI-PROHIBITED"
SEE_CONSTRAINT = "DMI-PROHIBITED-SEECONSTRAINT"
SEE_EMBEDDED = "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR"
SEE_LINKED = "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR"

# ExifTool's print labels (lib/Image/ExifTool/PLUS.pm), met in files "fixed" by hand.
LABELS = {
    "Unspecified - no prohibition defined": UNSPECIFIED,
    "Allowed": ALLOWED,
    "Prohibited for AI/ML training": AIML,
    "Prohibited for Generative AI/ML training": GENAI,
    "Prohibited except for search engine indexing": EXCEPT_SEARCH,
    "Prohibited": PROHIBITED,
    "Prohibited, see plus:OtherConstraints": SEE_CONSTRAINT,
    "Prohibited, see iptcExt:EmbdEncRightsExpr": SEE_EMBEDDED,
    "Prohibited, see iptcExt:LinkedEncRightsExpr": SEE_LINKED,
}
CODES = frozenset(LABELS.values())
_LABELS_FOLDED = {label.casefold(): code for label, code in LABELS.items()}

# Marks the sentence rightsmeta generates, so a later tag replaces only its own text.
SENTENCE_PREFIX = "Data mining and AI permissions:"

_NA = Permission(State.NOT_ALLOWED)
_AL = Permission(State.ALLOWED)
_NON_SEARCH = (Purpose.DATA_MINING, Purpose.AI_TRAINING, Purpose.GENAI_TRAINING, Purpose.AI_INFERENCE)

_MEANING: dict[str, dict[Purpose, Permission]] = {
    UNSPECIFIED: {},
    ALLOWED: {p: _AL for p in PURPOSES},
    AIML: {Purpose.AI_TRAINING: _NA, Purpose.GENAI_TRAINING: _NA},
    GENAI: {Purpose.GENAI_TRAINING: _NA},
    EXCEPT_SEARCH: {**{p: _NA for p in _NON_SEARCH}, Purpose.SEARCH: _AL},
    PROHIBITED: {p: _NA for p in PURPOSES},
}


def normalise_code(value: str) -> str:
    """A DataMining value as found in the wild (URI, https URI, bare code, ExifTool label) to its code."""
    text = value.strip()
    for prefix in (VOCAB_PREFIX, "https://ns.useplus.org/ldf/vocab/"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    if text.upper() in CODES:
        return text.upper()
    if text.casefold() in _LABELS_FOLDED:
        return _LABELS_FOLDED[text.casefold()]
    raise MalformedMetadata(
        f"unknown plus:DataMining value {value!r}; expected a PLUS code such as {PROHIBITED}"
    )


def is_own_sentence(text: str | None) -> bool:
    return bool(text) and text.startswith(SENTENCE_PREFIX)  # type: ignore[union-attr]


# plus:OtherConstraints may hold a photographer's own terms too: rightsmeta's sentence then comes
# first, on its own line, and their text after it, so a later tag replaces only the sentence.
def own_sentence(text: str | None) -> str | None:
    """rightsmeta's sentence in a plus:OtherConstraints text, or None."""
    return text.partition("\n")[0] if text is not None and is_own_sentence(text) else None


def others_text(text: str | None) -> str | None:
    """A plus:OtherConstraints text without rightsmeta's sentence: someone else's words, or None."""
    rest = text.partition("\n")[2].strip() if text is not None and is_own_sentence(text) else text
    return rest or None


def with_others(sentence: str, existing: str | None) -> str:
    """The plus:OtherConstraints text saying ``sentence`` and keeping the others' words ``existing`` held."""
    others = others_text(existing)
    return f"{sentence}\n{others}" if others else sentence


def meaning(code: str, constraint: str | None = None) -> dict[Purpose, Permission]:
    """The canonical states one code stands for; SEE* codes point to terms elsewhere."""
    if code in _MEANING:
        return dict(_MEANING[code])
    # Every SEE* code: prohibited except as the pointed-to terms allow.
    return {p: Permission(State.CONSTRAINED, constraint or None) for p in PURPOSES}


def decode(
    data_mining: str | None,
    other_constraints: str | None = None,
    *,
    carrier: str = "xmp",
    rights_expression: str | None = None,
) -> Signal | None:
    """Signal from the raw property values; None when neither property is present.

    ``rights_expression`` is the embedded or linked rights expression the SEE*RIGHTSEXPR
    codes point to, when the carrier found one.
    """
    if data_mining is None and other_constraints is None:
        return None
    code = normalise_code(data_mining) if data_mining is not None else None
    # Someone else's free text is not part of the signal; ours and the one a code points to are.
    relevant_text = own_sentence(other_constraints) or (other_constraints if code == SEE_CONSTRAINT else None)
    if code is None and relevant_text is None:
        return None
    if code is None:
        perms: dict[Purpose, Permission] = {}
    elif code == SEE_CONSTRAINT:
        perms = meaning(code, relevant_text)
    elif code in (SEE_EMBEDDED, SEE_LINKED):
        perms = meaning(code, rights_expression or f"see the rights expression ({code})")
    else:
        perms = meaning(code)
    return Signal(NAME, carrier, perms, raw={"DataMining": code, "OtherConstraints": relevant_text})


def choose_code(perms: Mapping[Purpose, Permission]) -> str | None:
    """The broadest code whose whole meaning is true of the states (signals.md section 2)."""
    states = {p: perms[p].state for p in PURPOSES}
    na = {p for p, s in states.items() if s is State.NOT_ALLOWED}
    if na == set(PURPOSES):
        return PROHIBITED
    if set(_NON_SEARCH) <= na:
        return EXCEPT_SEARCH
    if {Purpose.AI_TRAINING, Purpose.GENAI_TRAINING} <= na:
        return AIML
    if Purpose.GENAI_TRAINING in na:
        return GENAI
    if all(s is State.ALLOWED for s in states.values()):
        return ALLOWED
    if State.CONSTRAINED in states.values():
        return SEE_CONSTRAINT
    return None


def encode(assertion: Assertion) -> dict[str, str | None] | None:
    """Raw values to write: ``{"DataMining": code|None, "OtherConstraints": text|None}``, or None."""
    if assertion.is_empty:
        return None
    perms = assertion.permissions
    code = choose_code(perms)
    sentence = f"{SENTENCE_PREFIX} {summary(perms)}"
    says_everything = code is not None and code != SEE_CONSTRAINT and meaning(code) == {
        p: perm for p, perm in perms.items() if perm.state is not State.UNSPECIFIED
    }
    return {"DataMining": code, "OtherConstraints": None if says_everything else sentence}


def uri(code: str) -> str:
    return VOCAB_PREFIX + code
