"""Unit tests of the vocabulary modules against docs/signals.md sections 2-5 and 8.

Every row of the reference is its own parametrised case, so a failure names the row.
Expected values are restated here from the reference, not derived from the modules' tables.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rightsmeta.errors import MalformedMetadata
from rightsmeta.model import PURPOSES, Assertion, Permission, Purpose, State
from rightsmeta.vocab import aipref, cawg, exif, iptc, project, tdmrep

DM = Purpose.DATA_MINING
AIT = Purpose.AI_TRAINING
GEN = Purpose.GENAI_TRAINING
INF = Purpose.AI_INFERENCE
SEARCH = Purpose.SEARCH
NON_SEARCH = (DM, AIT, GEN, INF)
AI = (AIT, GEN, INF)

NA = State.NOT_ALLOWED
AL = State.ALLOWED
CO = State.CONSTRAINED
UN = State.UNSPECIFIED

SETTINGS = settings(max_examples=150, deadline=None)


def states_of(signal) -> dict[Purpose, State]:
    return {p: perm.state for p, perm in signal.permissions.items()}


def expect(**given_states: State) -> dict[Purpose, State]:
    """Every purpose unspecified except those named (keyword = purpose with '_' for '-')."""
    out = {p: UN for p in PURPOSES}
    for key, state in given_states.items():
        out[Purpose(key.replace("_", "-"))] = state
    return out


def every(state: State, purposes=PURPOSES) -> dict[Purpose, State]:
    out = {p: UN for p in PURPOSES}
    out.update({p: state for p in purposes})
    return out


def assertion(
    states: dict[Purpose, State], infos: dict[Purpose, str | None] | None = None, **kw
) -> Assertion:
    infos = infos or {}
    return Assertion(
        permissions={p: Permission(s, infos.get(p) if s is CO else None) for p, s in states.items()},
        **kw,
    )


state_st = st.sampled_from(list(State))
states_st = st.fixed_dictionaries({p: state_st for p in PURPOSES})
info_st = st.one_of(st.none(), st.text(st.characters(exclude_categories=("Cs", "Cc", "Cn")), min_size=0, max_size=40))
infos_st = st.fixed_dictionaries({p: info_st for p in PURPOSES})


@st.composite
def assertions_st(draw, with_policy: bool = False) -> Assertion:
    states = draw(states_st)
    infos = draw(infos_st)
    policy = draw(st.sampled_from([None, "https://example.org/tdm-policy.json"])) if with_policy else None
    return assertion(states, infos, policy=policy)


# ---------------------------------------------------------------------------------------------
# IPTC PLUS (section 2)
# ---------------------------------------------------------------------------------------------

# Read mapping, restated from signals.md section 2.
IPTC_READ = {
    "DMI-UNSPECIFIED": every(UN),
    "DMI-ALLOWED": every(AL),
    "DMI-PROHIBITED-AIMLTRAINING": expect(ai_training=NA, genai_training=NA),
    "DMI-PROHIBITED-GENAIMLTRAINING": expect(genai_training=NA),
    "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING": {**every(NA, NON_SEARCH), SEARCH: AL},
    "DMI-PROHIBITED": every(NA),
    "DMI-PROHIBITED-SEECONSTRAINT": every(CO),
    "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR": every(CO),
    "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR": every(CO),
}
# ExifTool's print labels (lib/Image/ExifTool/PLUS.pm).
EXIFTOOL_LABELS = {
    "DMI-UNSPECIFIED": "Unspecified - no prohibition defined",
    "DMI-ALLOWED": "Allowed",
    "DMI-PROHIBITED-AIMLTRAINING": "Prohibited for AI/ML training",
    "DMI-PROHIBITED-GENAIMLTRAINING": "Prohibited for Generative AI/ML training",
    "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING": "Prohibited except for search engine indexing",
    "DMI-PROHIBITED": "Prohibited",
    "DMI-PROHIBITED-SEECONSTRAINT": "Prohibited, see plus:OtherConstraints",
    "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR": "Prohibited, see iptcExt:EmbdEncRightsExpr",
    "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR": "Prohibited, see iptcExt:LinkedEncRightsExpr",
}

SPELLINGS = {
    "http-uri": lambda code: f"http://ns.useplus.org/ldf/vocab/{code}",
    "https-uri": lambda code: f"https://ns.useplus.org/ldf/vocab/{code}",
    "bare-code": lambda code: code,
    "exiftool-label": lambda code: EXIFTOOL_LABELS[code],
    "label-upper": lambda code: EXIFTOOL_LABELS[code].upper(),
    "label-lower": lambda code: EXIFTOOL_LABELS[code].lower(),
    "code-lower": lambda code: code.lower(),
    "padded-uri": lambda code: f"  http://ns.useplus.org/ldf/vocab/{code}\n",
}


def test_iptc_constants():
    assert iptc.NS == "http://ns.useplus.org/ldf/xmp/1.0/"
    assert iptc.VOCAB_PREFIX == "http://ns.useplus.org/ldf/vocab/"
    assert iptc.CODES == frozenset(IPTC_READ)
    assert iptc.LABELS == {label: code for code, label in EXIFTOOL_LABELS.items()}
    for code in IPTC_READ:
        assert iptc.uri(code) == "http://ns.useplus.org/ldf/vocab/" + code


@pytest.mark.parametrize("spelling", list(SPELLINGS))
@pytest.mark.parametrize("code", list(IPTC_READ))
def test_iptc_decode_every_code_in_every_spelling(code, spelling):
    signal = iptc.decode(SPELLINGS[spelling](code))
    assert signal is not None
    assert signal.vocabulary == iptc.NAME and not signal.exact
    assert states_of(signal) == IPTC_READ[code]
    assert signal.raw["DataMining"] == code
    assert iptc.normalise_code(SPELLINGS[spelling](code)) == code


@pytest.mark.parametrize(
    "value",
    [
        "DMI-MAYBE",
        "http://ns.useplus.org/ldf/vocab/DMI-NOPE",
        "ftp://ns.useplus.org/ldf/vocab/DMI-ALLOWED",
        "Prohibited for everything",
        "",
        "   ",
    ],
)
def test_iptc_decode_unknown_value_raises_naming_it(value):
    with pytest.raises(MalformedMetadata) as info:
        iptc.decode(value)
    assert repr(value) in str(info.value)


def test_iptc_decode_nothing_is_none():
    assert iptc.decode(None) is None
    assert iptc.decode(None, None) is None


@pytest.mark.parametrize("text", ["Licence terms at https://example.org/licence", "Ask us: ai@example.org"])
def test_iptc_seeconstraint_uses_other_constraints_text(text):
    signal = iptc.decode(iptc.uri(iptc.SEE_CONSTRAINT), text)
    assert {p: (perm.state, perm.constraint_info) for p, perm in signal.permissions.items()} == {
        p: (CO, text) for p in PURPOSES
    }
    assert signal.raw == {"DataMining": iptc.SEE_CONSTRAINT, "OtherConstraints": text}


def test_iptc_seeconstraint_without_text_is_constrained_without_info():
    signal = iptc.decode(iptc.uri(iptc.SEE_CONSTRAINT))
    assert all(perm == Permission(CO) for perm in signal.permissions.values())


@pytest.mark.parametrize("code", [iptc.SEE_EMBEDDED, iptc.SEE_LINKED])
def test_iptc_see_rights_expression_points_to_the_expression(code):
    expr = "https://example.org/rights.odrl.json"
    signal = iptc.decode(iptc.uri(code), rights_expression=expr)
    assert all(perm == Permission(CO, expr) for perm in signal.permissions.values())
    without = iptc.decode(iptc.uri(code))
    assert all(perm.state is CO and perm.constraint_info for perm in without.permissions.values())


@pytest.mark.parametrize("code", sorted(set(IPTC_READ) - {"DMI-PROHIBITED-SEECONSTRAINT"}))
def test_iptc_foreign_free_text_is_not_part_of_the_signal(code):
    text = "Contact the photographer for licensing."
    assert not text.startswith(iptc.SENTENCE_PREFIX)
    signal = iptc.decode(iptc.uri(code), text)
    assert signal.raw["OtherConstraints"] is None
    assert states_of(signal) == IPTC_READ[code]
    assert all(text not in (perm.constraint_info or "") for perm in signal.permissions.values())


def test_iptc_foreign_free_text_alone_is_no_signal():
    assert iptc.decode(None, "All rights reserved. Call us.") is None


def test_iptc_own_sentence_alone_is_a_signal_saying_nothing_by_code():
    sentence = f"{iptc.SENTENCE_PREFIX} Not allowed: AI/ML training."
    signal = iptc.decode(None, sentence)
    assert signal is not None
    assert states_of(signal) == every(UN)
    assert signal.raw == {"DataMining": None, "OtherConstraints": sentence}
    assert iptc.is_own_sentence(sentence)
    assert not iptc.is_own_sentence("someone else's text")
    assert not iptc.is_own_sentence(None)
    assert not iptc.is_own_sentence("")


# Write mapping examples of section 2: (states, code, sentence expected, text the sentence must hold).
IPTC_WRITE = {
    "all-five-notAllowed": (every(NA), "DMI-PROHIBITED", False, None),
    "four-non-search-notAllowed-search-allowed": (
        {**every(NA, NON_SEARCH), SEARCH: AL},
        "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING",
        False,
        None,
    ),
    "four-non-search-notAllowed-search-unspecified": (
        every(NA, NON_SEARCH),
        "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING",
        True,
        "search",
    ),
    "four-non-search-notAllowed-search-constrained": (
        {**every(NA, NON_SEARCH), SEARCH: CO},
        "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING",
        True,
        "search",
    ),
    "ai-and-genai-notAllowed": (
        expect(ai_training=NA, genai_training=NA),
        "DMI-PROHIBITED-AIMLTRAINING",
        False,
        None,
    ),
    "genai-only-notAllowed": (expect(genai_training=NA), "DMI-PROHIBITED-GENAIMLTRAINING", False, None),
    "genai-notAllowed-ai-training-allowed": (
        expect(genai_training=NA, ai_training=AL),
        "DMI-PROHIBITED-GENAIMLTRAINING",
        True,
        "AI/ML training",
    ),
    "all-allowed": (every(AL), "DMI-ALLOWED", False, None),
    "constrained-no-code": (
        expect(ai_training=CO),
        "DMI-PROHIBITED-SEECONSTRAINT",
        True,
        "https://terms.example/",
    ),
    "constrained-and-allowed-no-code": (
        {**every(AL), DM: CO},
        "DMI-PROHIBITED-SEECONSTRAINT",
        True,
        "https://terms.example/",
    ),
    "deny-ai": (every(NA, AI), "DMI-PROHIBITED-AIMLTRAINING", True, "inference"),
    "ai-training-only-no-code": (expect(ai_training=NA), None, True, "AI/ML training"),
    "data-mining-only-no-code": (expect(data_mining=NA), None, True, "text and data mining"),
    "all-but-search-allowed-no-code": ({**every(AL), SEARCH: UN}, None, True, "search"),
}


@pytest.mark.parametrize("row", list(IPTC_WRITE))
def test_iptc_encode_write_mapping(row):
    states, code, has_sentence, needle = IPTC_WRITE[row]
    a = assertion(states, {p: "https://terms.example/" for p in PURPOSES})
    out = iptc.encode(a)
    assert out is not None
    assert out["DataMining"] == code
    assert iptc.choose_code(a.permissions) == code
    if has_sentence:
        sentence = out["OtherConstraints"]
        assert sentence and sentence.startswith(iptc.SENTENCE_PREFIX)
        assert iptc.is_own_sentence(sentence)
        assert needle in sentence
    else:
        assert out["OtherConstraints"] is None


def test_iptc_encode_deny_ai_sentence_names_inference():
    out = iptc.encode(Assertion.build(deny=["ai"]))
    assert out["DataMining"] == iptc.AIML
    assert "inference" in out["OtherConstraints"]


def test_iptc_encode_all_unspecified_is_none():
    assert iptc.encode(Assertion()) is None
    assert iptc.choose_code(Assertion().permissions) is None


@SETTINGS
@given(states_st, infos_st)
def test_iptc_code_never_claims_something_false(states, infos):
    a = assertion(states, infos)
    out = iptc.encode(a)
    if a.is_empty:
        assert out is None
        return
    assert out is not None
    code = out["DataMining"]
    stated = {p: perm for p, perm in a.permissions.items() if perm.state is not UN}
    if code is not None:
        claimed = iptc.meaning(code)
        for purpose, perm in claimed.items():
            if perm.state is NA:
                assert states[purpose] is NA, (code, purpose)
        if code == iptc.ALLOWED:
            assert all(s is AL for s in states.values())
        if code == iptc.SEE_CONSTRAINT:
            assert CO in states.values()
        if code == iptc.EXCEPT_SEARCH:
            assert states[SEARCH] is not NA
        # SEECONSTRAINT points at plus:OtherConstraints, so the sentence is always written with it.
        meaning_differs = claimed != stated or code == iptc.SEE_CONSTRAINT
    else:
        meaning_differs = True
    if meaning_differs:
        assert out["OtherConstraints"] is not None
        assert out["OtherConstraints"].startswith(iptc.SENTENCE_PREFIX)
    else:
        assert out["OtherConstraints"] is None
    # What the XMP carrier writes reads back as exactly the same raw, normalised form.
    back = iptc.decode(iptc.uri(code) if code else None, out["OtherConstraints"])
    assert back is not None
    assert dict(back.raw) == out


# ---------------------------------------------------------------------------------------------
# TDMRep (section 3)
# ---------------------------------------------------------------------------------------------


def test_tdmrep_namespaces():
    assert tdmrep.NS == "http://www.w3.org/ns/tdmrep/"
    assert tdmrep.NS_HASH == "http://www.w3.org/ns/tdmrep#"
    assert set(tdmrep.NAMESPACES) == {tdmrep.NS, tdmrep.NS_HASH}


POLICY = "https://example.org/tdm-policy.json"

TDM_DECODE = {
    "int-1": (1, None, Permission(NA), 1),
    "int-0": (0, None, Permission(AL), 0),
    "str-1": ("1", None, Permission(NA), 1),
    "str-0-padded": (" 0 ", None, Permission(AL), 0),
    "int-1-policy": (1, POLICY, Permission(CO, POLICY), 1),
    "str-1-policy": ("1", POLICY, Permission(CO, POLICY), 1),
    "str-1-padded-policy": ("1", f"  {POLICY} ", Permission(CO, POLICY), 1),
    "int-0-policy": (0, POLICY, Permission(AL), 0),
    "str-0-policy": ("0", POLICY, Permission(AL), 0),
    "str-1-blank-policy": ("1", "   ", Permission(NA), 1),
}


@pytest.mark.parametrize("row", list(TDM_DECODE))
def test_tdmrep_decode(row):
    reservation, policy, perm, value = TDM_DECODE[row]
    signal = tdmrep.decode(reservation, policy)
    assert signal is not None and not signal.exact
    assert signal.covers == (DM,)
    assert signal.permissions[DM] == perm
    assert all(signal.permissions[p].state is UN for p in PURPOSES if p is not DM)
    assert signal.raw["reservation"] == value


@pytest.mark.parametrize("value", [2, -1, "yes", "", " ", "01", "true", 1.5, True])
def test_tdmrep_decode_invalid_raises(value):
    with pytest.raises(MalformedMetadata) as info:
        tdmrep.decode(value)
    assert repr(value) in str(info.value)


def test_tdmrep_decode_none_is_none():
    assert tdmrep.decode(None) is None
    assert tdmrep.decode(None, POLICY) is None


TDM_ENCODE = {
    **{
        f"{p.value}-{s.value}-reserves": ({p: s}, None, {"reservation": 1, "policy": None})
        for p in NON_SEARCH
        for s in (NA, CO)
    },
    "deny-ai": (every(NA, AI), None, {"reservation": 1, "policy": None}),
    "deny-ai-with-policy": (every(NA, AI), POLICY, {"reservation": 1, "policy": POLICY}),
    "data-mining-allowed": ({DM: AL}, None, {"reservation": 0, "policy": None}),
    "data-mining-allowed-with-policy": ({DM: AL}, POLICY, {"reservation": 0, "policy": POLICY}),
    "all-allowed": (every(AL), None, {"reservation": 0, "policy": None}),
    "data-mining-allowed-but-genai-denied": ({DM: AL, GEN: NA}, None, {"reservation": 1, "policy": None}),
    "data-mining-allowed-but-inference-constrained": (
        {DM: AL, INF: CO},
        None,
        {"reservation": 1, "policy": None},
    ),
    "search-denied-only": ({SEARCH: NA}, None, None),
    "search-constrained-only": ({SEARCH: CO}, None, None),
    "ai-allowed-data-mining-unspecified": (every(AL, AI), None, None),
    "nothing": ({}, None, None),
}


@pytest.mark.parametrize("row", list(TDM_ENCODE))
def test_tdmrep_encode(row):
    states, policy, expected = TDM_ENCODE[row]
    assert tdmrep.encode(assertion(states, policy=policy)) == expected


@SETTINGS
@given(assertions_st(with_policy=True))
def test_tdmrep_encode_rule_and_round_trip(a):
    out = tdmrep.encode(a)
    reserving = any(a.state(p) in (NA, CO) for p in NON_SEARCH)
    if reserving:
        assert out == {"reservation": 1, "policy": a.policy}
    elif a.state(DM) is AL:
        assert out == {"reservation": 0, "policy": a.policy}
    else:
        assert out is None
        return
    back = tdmrep.decode(str(out["reservation"]), out["policy"])
    assert dict(back.raw) == out


# ---------------------------------------------------------------------------------------------
# The project's exact record
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(assertions_st())
def test_project_round_trip(a):
    raw = project.encode(a)
    if a.is_empty:
        assert raw is None
        return
    assert raw["Version"] == project.VERSION
    assert {project.KEYS[p] for p in PURPOSES} <= set(raw)
    signal = project.decode(raw)
    assert signal.exact and signal.covers == PURPOSES
    assert dict(signal.permissions) == dict(a.permissions)
    assert dict(signal.raw) == raw
    # The same record in another carrier (ID3 TXXX, Vorbis, MP4) decodes the same.
    assert project.decode(raw, carrier="id3").permissions == signal.permissions


@pytest.mark.parametrize("key", ["DataMining", "AITraining", "GenAITraining", "AIInference", "Search"])
@pytest.mark.parametrize("bad", ["banana", "NotAllowed", "", "denied"])
def test_project_bad_state_names_the_property(key, bad):
    with pytest.raises(MalformedMetadata) as info:
        project.decode({"Version": "1", key: bad})
    assert f"rightsmeta:{key}" in str(info.value)
    assert repr(bad) in str(info.value)


def test_project_decode_edges():
    assert project.decode({}) is None
    assert project.decode({"Unrelated": "x", "HolderName": "Ann"}) is None
    signal = project.decode({"AITraining": " notAllowed ", "Foreign": "x"})
    assert states_of(signal) == expect(ai_training=NA)
    assert "Foreign" not in signal.raw
    # A constraint text next to a state that is not constrained is not part of the permission.
    signal = project.decode({"Search": "allowed", "SearchConstraint": "stale"})
    assert signal.permissions[SEARCH] == Permission(AL)


@pytest.mark.parametrize("key", ["DataMining", "AITraining", "GenAITraining", "AIInference", "Search"])
def test_project_record_with_version_but_without_a_state_is_malformed(key):
    # A whole record (Version written) without one state: the key was damaged or lost, and
    # reading the purpose as unspecified would allow what the record may deny.
    whole = project.encode(Assertion.build(deny=["ai"]))
    assert project.decode(whole) is not None
    with pytest.raises(MalformedMetadata, match=f"lacks rightsmeta:{key}"):
        project.decode({k: v for k, v in whole.items() if k != key})
    # Without Version, a partial record (another tool's few keys) reads as before.
    partial = {k: v for k, v in whole.items() if k not in (key, "Version")}
    assert project.decode(partial) is not None


# ---------------------------------------------------------------------------------------------
# CAWG / C2PA training-and-data-mining (section 4)
# ---------------------------------------------------------------------------------------------

CAWG_FORMS = {
    "cawg-1.1": (
        cawg.LABEL,
        {
            "entries": {
                "cawg.data_mining": {"use": "notAllowed"},
                "cawg.ai_inference": {"use": "allowed"},
                "cawg.ai_generative_training": {
                    "use": "constrained",
                    "constraint_info": "https://lic.example/",
                },
                "cawg.ai_training": {"use": "notAllowed"},
            }
        },
    ),
    "legacy-c2pa": (
        "c2pa.training-mining",
        {
            "entries": {
                "c2pa.data_mining": {"use": "notAllowed"},
                "c2pa.ai_inference": {"use": "allowed"},
                "c2pa.ai_generative_training": {
                    "use": "constrained",
                    "constraint_info": "https://lic.example/",
                },
                "c2pa.ai_training": {"use": "notAllowed"},
            }
        },
    ),
    "mixed-cawg-label-c2pa-keys": (
        "cawg.training-mining",
        {
            "entries": {
                "c2pa.data_mining": {"use": "notAllowed"},
                "c2pa.ai_inference": {"use": "allowed"},
                "cawg.ai_generative_training": {
                    "use": "constrained",
                    "constraint_info": "https://lic.example/",
                },
                "c2pa.ai_training": {"use": "notAllowed"},
            }
        },
    ),
    "with-unknown-future-keys": (
        cawg.LABEL,
        {
            "version": 2,
            "entries": {
                "cawg.data_mining": {"use": "notAllowed"},
                "cawg.ai_inference": {"use": "allowed", "future_field": [1, 2]},
                "cawg.ai_generative_training": {
                    "use": "constrained",
                    "constraint_info": "https://lic.example/",
                },
                "cawg.ai_training": {"use": "notAllowed"},
                "cawg.ai_finetuning": {"use": "something-new"},
                "cawg.other": "not even an object",
                "vendor.data_mining": {"use": "banana"},
            },
        },
    ),
}
CAWG_EXPECTED = {
    DM: Permission(NA),
    INF: Permission(AL),
    GEN: Permission(CO, "https://lic.example/"),
    AIT: Permission(NA),
    SEARCH: Permission(UN),
}


@pytest.mark.parametrize("form", list(CAWG_FORMS))
def test_cawg_decode_forms(form):
    label, data = CAWG_FORMS[form]
    signal = cawg.decode(data, label=label)
    assert signal.exact and signal.trusted
    assert set(signal.covers) == set(NON_SEARCH)
    assert dict(signal.permissions) == CAWG_EXPECTED
    assert set(signal.raw["entries"]) == {
        "cawg.data_mining",
        "cawg.ai_inference",
        "cawg.ai_generative_training",
        "cawg.ai_training",
    }


def test_cawg_decode_untrusted_flag():
    label, data = CAWG_FORMS["cawg-1.1"]
    assert cawg.decode(data, label=label, trusted=False).trusted is False


@pytest.mark.parametrize(
    "entry",
    [{"use": "banana"}, {"use": "NotAllowed"}, {"use": "unspecified"}, {}, {"use": None}, {"use": 1}],
    ids=["banana", "wrong-case", "unspecified", "missing", "null", "number"],
)
def test_cawg_bad_use_raises(entry):
    with pytest.raises(MalformedMetadata) as info:
        cawg.decode({"entries": {"cawg.ai_training": entry}})
    assert "cawg.ai_training" in str(info.value)
    if "use" in entry:
        assert repr(entry["use"]) in str(info.value)


@pytest.mark.parametrize(
    "data",
    [{"entries": []}, {"entries": "x"}, {"entries": None}, {}, [], "entries", None],
    ids=["list", "string", "null", "missing", "top-list", "top-string", "top-null"],
)
def test_cawg_entries_not_an_object_raises(data):
    with pytest.raises(MalformedMetadata):
        cawg.decode(data)


@pytest.mark.parametrize("entry", ["notAllowed", ["notAllowed"], None, 0])
def test_cawg_known_entry_not_an_object_raises(entry):
    with pytest.raises(MalformedMetadata):
        cawg.decode({"entries": {"cawg.data_mining": entry}})


def test_cawg_bad_constraint_info_and_label():
    with pytest.raises(MalformedMetadata):
        cawg.decode({"entries": {"cawg.data_mining": {"use": "constrained", "constraint_info": 3}}})
    with pytest.raises(MalformedMetadata):
        cawg.decode({"entries": {}}, label="c2pa.actions")


def test_cawg_constraint_info_kept_only_for_constrained():
    signal = cawg.decode(
        {
            "entries": {
                "cawg.ai_training": {"use": "constrained", "constraint_info": "pay first"},
                "cawg.data_mining": {"use": "allowed", "constraint_info": "ignored"},
            }
        }
    )
    assert signal.permissions[AIT] == Permission(CO, "pay first")
    assert signal.permissions[DM] == Permission(AL)


@SETTINGS
@given(assertions_st())
def test_cawg_encode_round_trip(a):
    out = cawg.encode(a)
    if all(a.state(p) is UN for p in NON_SEARCH):
        assert out is None
        return
    assert set(out) == {"entries"}
    assert all(key.startswith("cawg.") for key in out["entries"])
    assert not any("search" in key for key in out["entries"])
    back = cawg.decode(out, label=cawg.LABEL)
    assert {p: back.permissions[p] for p in NON_SEARCH} == {p: a.permissions[p] for p in NON_SEARCH}
    assert back.permissions[SEARCH] == Permission(UN)


def test_cawg_encode_examples():
    assert cawg.encode(Assertion.build(deny=["ai"])) == {
        "entries": {
            "cawg.ai_inference": {"use": "notAllowed"},
            "cawg.ai_generative_training": {"use": "notAllowed"},
            "cawg.ai_training": {"use": "notAllowed"},
        }
    }
    assert cawg.encode(Assertion.build(constrain={"data-mining": "https://lic.example/"})) == {
        "entries": {"cawg.data_mining": {"use": "constrained", "constraint_info": "https://lic.example/"}}
    }
    assert cawg.encode(Assertion.build(deny=["search"], allow=[])) is None
    assert cawg.encode(Assertion()) is None


# ---------------------------------------------------------------------------------------------
# IETF aipref, Content-Signal, robots (section 5)
# ---------------------------------------------------------------------------------------------

AIPREF_ENCODE = {
    "genai-denied-search-allowed": ({GEN: NA, SEARCH: AL}, "train-ai=n, search=y"),
    "genai-constrained-is-n": ({GEN: CO}, "train-ai=n"),
    "genai-allowed": ({GEN: AL}, "train-ai=y"),
    "search-denied": ({SEARCH: NA}, "search=n"),
    "search-constrained-is-n": ({SEARCH: CO}, "search=n"),
    "deny-ai": (every(NA, AI), "train-ai=n"),
    "all-denied": (every(NA), "train-ai=n, search=n"),
    "all-allowed": (every(AL), "train-ai=y, search=y"),
    "non-generative-only-nothing-to-say": ({AIT: NA, DM: NA, INF: NA}, None),
    "nothing": ({}, None),
}


@pytest.mark.parametrize("row", list(AIPREF_ENCODE))
def test_aipref_encode(row):
    states, expected = AIPREF_ENCODE[row]
    assert aipref.encode_content_usage(assertion(states, {p: "terms" for p in PURPOSES})) == expected


@SETTINGS
@given(assertions_st())
def test_aipref_encode_reads_back(a):
    value = aipref.encode_content_usage(a)
    if value is None:
        assert a.state(GEN) is UN and a.state(SEARCH) is UN
        return
    back = aipref.decode_content_usage(value)
    for p in (GEN, SEARCH):
        want = {UN: UN, AL: AL, NA: NA, CO: NA}[a.state(p)]
        assert back.permissions[p].state is want
    assert all(back.permissions[p].state is UN for p in (DM, AIT, INF))


AIPREF_DECODE = {
    "current": ("train-ai=n, search=y", expect(genai_training=NA, search=AL)),
    "current-yes": ("train-ai=y", expect(genai_training=AL)),
    "no-spaces": ("train-ai=n,search=n", expect(genai_training=NA, search=NA)),
    "upper-case": ("Train-AI=N", expect(genai_training=NA)),
    "legacy-train-genai": ("train-genai=n", expect(genai_training=NA)),
    "legacy-ai-use": ("ai-use=n", expect(ai_inference=NA)),
    "legacy-tdm": ("tdm=n", expect(data_mining=NA)),
    "legacy-bots-umbrella": ("bots=n", every(NA)),
    "bots-then-specific": ("bots=n, search=y", {**every(NA), SEARCH: AL}),
    "specific-then-bots": ("search=y, bots=n", {**every(NA), SEARCH: AL}),
    "specific-train-ai-then-bots": ("train-ai=y, bots=n", {**every(NA), GEN: AL}),
    "bots-allowed-tdm-denied": ("bots=y, tdm=n", {**every(AL), DM: NA}),
    "tdm-denied-then-bots-allowed": ("tdm=n, ai-use=n, bots=y", {**every(AL), DM: NA, INF: NA}),
    "parameters-ignored": ("train-ai=n;exp=1;v=2, search=y;q", expect(genai_training=NA, search=AL)),
    "unknown-keys-ignored": ("future-use=maybe, train-ai=n, x=1", expect(genai_training=NA)),
    "empty": ("", every(UN)),
    "empty-members": (" , train-ai=n ,, ", expect(genai_training=NA)),
    # aipref processing: a value other than the tokens y and n is unknown for that key only
    "bad-value-beside-a-good-one": ("search=perhaps, train-ai=n", expect(genai_training=NA)),
    "string-is-not-a-token": ('train-ai="n", search=n', expect(search=NA)),
    # RFC 9651: a key given twice has its last value; a bare key is the boolean true, not y
    "last-value-wins": ("train-ai=n, train-ai=y", expect(genai_training=AL)),
    "last-value-unknown": ("train-ai=n, train-ai=maybe", every(UN)),
    "bare-key-is-not-y": ("train-ai", every(UN)),
    "the-draft-example-all-unknown": ('train-ai=y, train-ai, search=n, search="n"', every(UN)),
    "parameters-of-the-first-dropped": ("train-ai;allow=n, train-ai=y", expect(genai_training=AL)),
    # RFC 9651 booleans: false is a "no" (read as nothing, it failed open); true grants nothing
    "boolean-false-is-n": ("train-ai=?0, search=y", expect(genai_training=NA, search=AL)),
    "boolean-true-is-unknown": ("train-ai=?1", every(UN)),
}


@pytest.mark.parametrize("row", list(AIPREF_DECODE))
def test_aipref_decode_content_usage(row):
    value, expected = AIPREF_DECODE[row]
    signal = aipref.decode_content_usage(value)
    assert signal.vocabulary == aipref.NAME and not signal.exact
    assert states_of(signal) == expected


@pytest.mark.parametrize(("value", "unknown"), [
    ("train-ai=maybe", ["train-ai=maybe"]), ("search=1, train-ai=n", ["search=1"]), ('tdm="n"', ['tdm="n"']),
])
def test_aipref_values_neither_y_nor_n_are_listed_not_raised(value, unknown):
    signal = aipref.decode_content_usage(value)
    assert signal.raw["unknown"] == unknown


def test_aipref_too_long_raises():
    with pytest.raises(MalformedMetadata):
        aipref.decode_content_usage("search=y, " * 1000)


CONTENT_SIGNAL = {
    "cloudflare-example": (
        "search=yes, ai-input=no, ai-train=no",
        expect(search=AL, ai_inference=NA, ai_training=NA, genai_training=NA),
    ),
    "train-yes": ("ai-train=yes", expect(ai_training=AL, genai_training=AL)),
    "search-no": ("search=no", expect(search=NA)),
    "unknown-ignored": ("ai-input=yes, something=else", expect(ai_inference=AL)),
}


@pytest.mark.parametrize("row", list(CONTENT_SIGNAL))
def test_content_signal_decode(row):
    value, expected = CONTENT_SIGNAL[row]
    assert states_of(aipref.decode_content_signal(value)) == expected


def test_content_signal_bad_value_states_nothing_for_its_key_only():
    signal = aipref.decode_content_signal("ai-train=perhaps, search=no")
    assert states_of(signal) == expect(search=NA) and signal.raw["unknown"] == ["ai-train=perhaps"]


@pytest.mark.parametrize(
    "value", ["noai", "noimageai", "noai, noimageai", "noindex, NoAI", "noarchive;noimageai"]
)
def test_robots_noai(value):
    signal = aipref.decode_robots(value)
    assert signal is not None
    assert states_of(signal) == every(NA, AI)


@pytest.mark.parametrize("value", ["", "noindex", "noindex, nofollow", "all", "notai"])
def test_robots_without_noai_is_none(value):
    assert aipref.decode_robots(value) is None


# ---------------------------------------------------------------------------------------------
# Exif 3.1 LearningOptOutIn (section 8)
# ---------------------------------------------------------------------------------------------

EXIF_USAGES = {
    0: NON_SEARCH,  # all
    1: (AIT,),  # non-generative training
    2: (GEN,),  # generative training
    3: (DM,),  # data mining
    4: (INF,),  # input to a foundation model
}
EXIF_INDICATORS = {0: NA, 1: AL, 2: UN}


@pytest.mark.parametrize("indicator", list(EXIF_INDICATORS))
@pytest.mark.parametrize("usage", list(EXIF_USAGES))
def test_exif_usage_indicator(usage, indicator):
    signal = exif.decode([1, usage, indicator])
    assert states_of(signal) == every(EXIF_INDICATORS[indicator], EXIF_USAGES[usage])
    assert SEARCH not in signal.covers


@pytest.mark.parametrize("specific", [1, 2, 3, 4])
@pytest.mark.parametrize("order", ["all-first", "all-last"])
@pytest.mark.parametrize("all_ind,spec_ind", [(0, 1), (1, 0)])
def test_exif_specific_usage_overrides_all(specific, order, all_ind, spec_ind):
    pairs = [(0, all_ind), (specific, spec_ind)]
    if order == "all-last":
        pairs.reverse()
    values = [2] + [v for pair in pairs for v in pair]
    signal = exif.decode(values)
    expected = every(EXIF_INDICATORS[all_ind], NON_SEARCH)
    expected[EXIF_USAGES[specific][0]] = EXIF_INDICATORS[spec_ind]
    assert states_of(signal) == expected


def test_exif_several_specific_usages():
    signal = exif.decode([3, 1, 0, 2, 0, 4, 1])
    assert states_of(signal) == expect(ai_training=NA, genai_training=NA, ai_inference=AL)


@pytest.mark.parametrize(
    "values",
    [
        [],
        [1],
        [1, 0],
        [2, 0, 0],
        [0, 1, 0],
        [1, 0, 0, 1, 1],
        [1, 5, 0],
        [1, 0, 3],
        [2, 1, 0, 9, 1],
        [2, 1, 0, 2, 7],
    ],
    ids=[
        "empty",
        "count-only",
        "half-pair",
        "count-too-big",
        "count-too-small",
        "extra-pair",
        "unknown-usage",
        "unknown-indicator",
        "unknown-usage-second",
        "unknown-indicator-second",
    ],
)
def test_exif_malformed_raises(values):
    with pytest.raises(MalformedMetadata):
        exif.decode(values)


def test_exif_unspecified_usage_does_not_override_usage_zero() -> None:
    from rightsmeta.vocab import exif as exif_vocab

    signal = exif_vocab.decode([2, 0, 0, 2, 2])  # all opted out; generative: unspecified
    assert signal.permissions[Purpose.GENAI_TRAINING].state is State.NOT_ALLOWED
    assert signal.permissions[Purpose.AI_TRAINING].state is State.NOT_ALLOWED
