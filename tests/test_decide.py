"""Unit tests of the decision rules (signals.md section 1).

Signals are built the way the carriers build them: the vocabulary modules' decode
functions applied to raw values (for projections, the raw values encode produced).
"""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rightsmeta.decide import Decision, decide
from rightsmeta.model import AI_PURPOSES, PURPOSES, Assertion, Permission, Purpose, State
from rightsmeta.vocab import Signal, aipref, cawg, exif, iptc, project, tdmrep

DM = Purpose.DATA_MINING
AIT = Purpose.AI_TRAINING
GEN = Purpose.GENAI_TRAINING
INF = Purpose.AI_INFERENCE
SEARCH = Purpose.SEARCH
NON_SEARCH = (DM, AIT, GEN, INF)

NA = State.NOT_ALLOWED
AL = State.ALLOWED
CO = State.CONSTRAINED
UN = State.UNSPECIFIED

POLICY = "https://example.org/tdm-policy.json"
SETTINGS = settings(max_examples=150, deadline=None)


def states_of(perms) -> dict[Purpose, State]:
    return {p: perm.state for p, perm in perms.items()}


def every(state: State, purposes=PURPOSES) -> dict[Purpose, State]:
    out = {p: UN for p in PURPOSES}
    out.update({p: state for p in purposes})
    return out


def assertion(states, infos=None, **kw) -> Assertion:
    infos = infos or {}
    return Assertion(
        permissions={p: Permission(s, infos.get(p) if s is CO else None) for p, s in states.items()}, **kw
    )


# --- carriers: write with encode, read back with decode, as the XMP/ID3/C2PA carriers do ---------


def record(a: Assertion, carrier: str = "xmp") -> Signal | None:
    raw = project.encode(a)
    return project.decode(raw, carrier=carrier) if raw is not None else None


def iptc_projection(a: Assertion) -> Signal | None:
    raw = iptc.encode(a)
    if raw is None:
        return None
    code = raw["DataMining"]
    return iptc.decode(iptc.uri(code) if code else None, raw["OtherConstraints"])


def tdm_projection(a: Assertion) -> Signal | None:
    raw = tdmrep.encode(a)
    if raw is None:
        return None
    return tdmrep.decode(str(raw["reservation"]), raw["policy"])  # XMP stores text


def cawg_record(a: Assertion, *, trusted: bool = True) -> Signal | None:
    data = cawg.encode(a)
    return cawg.decode(data, label=cawg.LABEL, trusted=trusted) if data is not None else None


def tagged(a: Assertion, *, with_cawg: bool = False, with_id3: bool = False) -> list[Signal]:
    """Every signal a file tagged with ``a`` holds."""
    found = [record(a), iptc_projection(a), tdm_projection(a)]
    if with_cawg:
        found.append(cawg_record(a))
    if with_id3:
        found.append(record(a, carrier="id3"))
    return [s for s in found if s is not None]


# =============================================================================================
# Precedence across carriers (no exact record)
# =============================================================================================

# data-mining in each state, said by IPTC PLUS (which can say all four) ...
IPTC_DM = {
    UN: lambda: iptc.decode(iptc.uri(iptc.UNSPECIFIED)),
    AL: lambda: iptc.decode(iptc.uri(iptc.ALLOWED)),
    CO: lambda: iptc.decode(iptc.uri(iptc.SEE_CONSTRAINT), "Licence: https://lic.example/"),
    NA: lambda: iptc.decode(iptc.uri(iptc.PROHIBITED)),
}
# ... and by a second carrier: TDMRep, or Exif 3.1's explicit 'unspecified' indicator.
OTHER_DM = {
    UN: lambda: exif.decode([1, 3, 2]),
    AL: lambda: tdmrep.decode("0"),
    CO: lambda: tdmrep.decode("1", POLICY),
    NA: lambda: tdmrep.decode("1"),
}
RANK = {UN: 0, AL: 1, CO: 2, NA: 3}


@pytest.mark.parametrize("b", list(State), ids=lambda s: f"other-{s.value}")
@pytest.mark.parametrize("a", list(State), ids=lambda s: f"iptc-{s.value}")
def test_precedence_between_two_carriers(a, b):
    signals = [IPTC_DM[a](), OTHER_DM[b]()]
    for order in (signals, signals[::-1]):
        d = decide(order)
        want = max(a, b, key=RANK.get)
        assert d.permissions[DM].state is want
        dm_conflicts = [c for c in d.conflicts if c.startswith("data-mining:")]
        if a is not UN and b is not UN and a is not b:
            assert len(dm_conflicts) == 1
            assert a.value in dm_conflicts[0] and b.value in dm_conflicts[0]
        else:
            assert dm_conflicts == []


def test_precedence_three_carriers_reports_all():
    d = decide(
        [
            iptc.decode(iptc.uri(iptc.ALLOWED)),
            tdmrep.decode(1, POLICY, carrier="http"),
            aipref.decode_content_usage("tdm=n"),
        ]
    )
    assert d.permissions[DM].state is NA
    (conflict,) = [c for c in d.conflicts if c.startswith("data-mining:")]
    assert "xmp:iptc-plus says allowed" in conflict
    assert "http:tdmrep says constrained" in conflict
    assert "http:aipref says notAllowed" in conflict
    assert d.may_use(DM) is False


def test_constraint_texts_of_agreeing_carriers_are_joined():
    d = decide([iptc.decode(iptc.uri(iptc.SEE_CONSTRAINT), "terms A"), tdmrep.decode(1, POLICY)])
    assert d.permissions[DM] == Permission(CO, f"terms A; {POLICY}")
    assert not any(c.startswith("data-mining:") for c in d.conflicts)


@pytest.mark.parametrize("first", ["without-text", "with-text"])
def test_constraint_text_kept_whichever_carrier_comes_first(first):
    bare = iptc.decode(iptc.uri(iptc.SEE_CONSTRAINT))  # constrained, no text given
    with_text = tdmrep.decode(1, POLICY)
    signals = [bare, with_text] if first == "without-text" else [with_text, bare]
    assert decide(signals).permissions[DM] == Permission(CO, POLICY)


def test_agreeing_carriers_have_no_conflict():
    d = decide(
        [
            iptc.decode(iptc.uri(iptc.PROHIBITED)),
            tdmrep.decode(1),
            aipref.decode_content_usage("train-ai=n, search=n"),
            aipref.decode_robots("noai"),
            exif.decode([1, 0, 0]),
        ]
    )
    assert d.conflicts == ()
    assert states_of(d.permissions) == every(NA)


def test_no_signals_is_all_unspecified():
    d = decide([])
    assert states_of(d.permissions) == every(UN)
    assert states_of(d.effective) == every(UN)
    assert d.conflicts == ()
    assert all(d.may_use(p) for p in PURPOSES)


# =============================================================================================
# Decision.may_use: constrained counts as notAllowed unless the constraint is accepted
# =============================================================================================


@pytest.mark.parametrize(
    "state,plain,accepting",
    [(AL, True, True), (UN, True, True), (NA, False, False), (CO, False, True)],
    ids=lambda v: v.value if isinstance(v, State) else str(v),
)
@pytest.mark.parametrize("purpose", list(PURPOSES), ids=str)
def test_may_use(purpose, state, plain, accepting):
    a = assertion({purpose: state}, {purpose: "https://lic.example/"})
    d = decide(tagged(a))
    assert d.effective[purpose].state is state
    assert d.may_use(purpose) is plain
    assert d.may_use(purpose, accept_constraints=True) is accepting


def test_may_use_reads_effective_not_permissions():
    d = Decision(
        permissions={p: Permission(UN) for p in PURPOSES},
        effective={**{p: Permission(UN) for p in PURPOSES}, AIT: Permission(NA)},
    )
    assert d.may_use(AIT) is False


# =============================================================================================
# The data-mining umbrella
# =============================================================================================


@pytest.mark.parametrize("ai_state", [UN, AL, NA, CO], ids=lambda s: f"ai-{s.value}")
@pytest.mark.parametrize("dm_state", [NA, CO], ids=lambda s: f"dm-{s.value}")
@pytest.mark.parametrize("purpose", AI_PURPOSES, ids=str)
def test_umbrella_covers_unstated_ai_purposes(purpose, dm_state, ai_state):
    infos = {DM: "https://dm-terms.example/", purpose: "https://ai-terms.example/"}
    a = assertion({DM: dm_state, purpose: ai_state}, infos)
    d = decide(tagged(a))
    assert d.conflicts == ()
    # permissions stay as stated
    assert dict(d.permissions) == dict(a.permissions)
    dm_perm = a.permissions[DM]
    if ai_state is UN:
        assert d.effective[purpose] == dm_perm
    else:
        assert d.effective[purpose] == a.permissions[purpose]
    for other in AI_PURPOSES:
        if other is not purpose:
            assert d.effective[other] == dm_perm
    assert d.effective[SEARCH].state is UN
    assert d.effective[DM] == dm_perm


@pytest.mark.parametrize("dm_state", [UN, AL], ids=lambda s: f"dm-{s.value}")
def test_umbrella_only_for_reserved_data_mining(dm_state):
    a = assertion({DM: dm_state})
    d = decide(tagged(a))
    assert all(d.effective[p].state is UN for p in AI_PURPOSES)


def test_umbrella_across_carriers_explicit_allow_somewhere_wins():
    # TDMRep reserves mining; an aipref header explicitly allows generative training.
    d = decide([tdmrep.decode("1", carrier="http"), aipref.decode_content_usage("train-ai=y")])
    assert d.conflicts == ()
    assert d.permissions[GEN].state is AL and d.permissions[AIT].state is UN
    assert d.effective[GEN].state is AL
    assert d.effective[AIT].state is NA and d.effective[INF].state is NA
    assert d.may_use(GEN) and not d.may_use(AIT) and not d.may_use(INF)


def test_umbrella_from_exif_usage_all():
    d = decide([exif.decode([2, 3, 0, 1, 1])])
    assert d.effective[DM].state is NA
    assert d.effective[AIT].state is AL
    assert d.effective[GEN].state is NA and d.effective[INF].state is NA


# =============================================================================================
# Untrusted (tampered C2PA) signals: 'allowed' ignored, 'notAllowed' counts
# =============================================================================================


def _cawg(entries: dict[str, str], *, trusted: bool) -> Signal:
    data = {"entries": {f"cawg.{k}": {"use": v} for k, v in entries.items()}}
    return cawg.decode(data, trusted=trusted)


def test_untrusted_allowed_is_ignored_not_allowed_counts():
    entries = {"data_mining": "notAllowed", "ai_training": "allowed", "ai_generative_training": "allowed"}
    d = decide([_cawg(entries, trusted=False)])
    assert d.permissions[DM].state is NA
    assert d.permissions[AIT].state is UN and d.permissions[GEN].state is UN
    # ... so the umbrella reaches them: fail closed.
    assert d.effective[AIT].state is NA and d.effective[GEN].state is NA
    trusted = decide([_cawg(entries, trusted=True)])
    assert trusted.effective[AIT].state is AL and trusted.effective[GEN].state is AL


def test_untrusted_all_allowed_says_nothing():
    entries = {k: "allowed" for k in ("data_mining", "ai_training", "ai_generative_training", "ai_inference")}
    d = decide([_cawg(entries, trusted=False)])
    assert states_of(d.permissions) == every(UN)


def test_untrusted_constrained_still_counts():
    data = {"entries": {"cawg.ai_inference": {"use": "constrained", "constraint_info": "pay"}}}
    d = decide([cawg.decode(data, trusted=False)])
    assert d.permissions[INF] == Permission(CO, "pay")
    assert d.may_use(INF) is False


def test_untrusted_allowed_loses_to_nothing_next_to_a_projection():
    # Tampered manifest allows AI training; TDMRep reserves mining in the same file.
    d = decide([_cawg({"ai_training": "allowed"}, trusted=False), tdmrep.decode("1")])
    assert d.permissions[AIT].state is UN
    assert d.effective[AIT].state is NA


def test_untrusted_not_allowed_beats_trusted_projection_allowed():
    d = decide([_cawg({"ai_training": "notAllowed"}, trusted=False), iptc.decode(iptc.uri(iptc.ALLOWED))])
    assert d.permissions[AIT].state is NA
    assert d.conflicts  # the projection disagrees with the manifest


# =============================================================================================
# The exact record and its projections
# =============================================================================================


def test_deny_ai_reads_back_lossless():
    a = Assertion.build(deny=["ai"])
    signals = tagged(a)
    assert {s.vocabulary for s in signals} == {project.NAME, iptc.NAME, tdmrep.NAME}
    tdm = next(s for s in signals if s.vocabulary == tdmrep.NAME)
    assert tdm.permissions[DM].state is NA  # TDMRep says reserved ...
    d = decide(signals)
    assert d.conflicts == ()
    assert dict(d.permissions) == dict(a.permissions)
    assert d.permissions[DM].state is UN  # ... yet the exact record wins
    assert all(d.effective[p].state is NA for p in AI_PURPOSES)


state_st = st.sampled_from(list(State))
states_st = st.fixed_dictionaries({p: state_st for p in PURPOSES})
infos_st = st.fixed_dictionaries(
    {p: st.one_of(st.none(), st.text(st.characters(exclude_categories=("Cs", "Cc", "Cn")), max_size=30)) for p in PURPOSES}
)


@SETTINGS
@given(
    states_st,
    infos_st,
    st.sampled_from([None, POLICY]),
    st.booleans(),
    st.booleans(),
    st.randoms(use_true_random=False),
)
def test_exact_record_wins_over_faithful_projections(states, infos, policy, with_cawg, with_id3, rnd):
    a = assertion(states, infos, policy=policy)
    signals = tagged(a, with_cawg=with_cawg, with_id3=with_id3)
    rnd.shuffle(signals)
    d = decide(signals)
    assert d.conflicts == ()
    assert dict(d.permissions) == dict(a.permissions)


def test_exact_record_wins_for_every_combination_of_states():
    """The exhaustive form of the property above: all 4**5 combinations, no texts."""
    for combo in itertools.product(list(State), repeat=len(PURPOSES)):
        a = assertion(dict(zip(PURPOSES, combo, strict=True)))
        d = decide(tagged(a))
        assert d.conflicts == (), combo
        assert dict(d.permissions) == dict(a.permissions), combo


DENY_AI = Assertion.build(deny=["ai"])
_DENY_AI_IPTC = iptc.encode(DENY_AI)


def _edited(**changes):
    """The --deny ai file with one projection replaced by what another tool wrote."""
    signals = [record(DENY_AI)]
    signals.append(changes.get("iptc", iptc_projection(DENY_AI)))
    signals.append(changes.get("tdm", tdm_projection(DENY_AI)))
    return [s for s in signals if s is not None]


EDITED = {
    # someone set plus:DataMining to DMI-ALLOWED with ExifTool, leaving our sentence
    "iptc-set-to-allowed": (
        dict(iptc=iptc.decode(iptc.uri(iptc.ALLOWED), _DENY_AI_IPTC["OtherConstraints"])),
        {DM: NA, AIT: NA, GEN: NA, INF: NA, SEARCH: AL},
        "xmp:iptc-plus",
    ),
    # ... written as ExifTool's label, our sentence removed
    "iptc-label-allowed-no-sentence": (
        dict(iptc=iptc.decode("Allowed")),
        {DM: NA, AIT: NA, GEN: NA, INF: NA, SEARCH: AL},
        "xmp:iptc-plus",
    ),
    "iptc-set-to-prohibited": (
        dict(iptc=iptc.decode(iptc.uri(iptc.PROHIBITED), _DENY_AI_IPTC["OtherConstraints"])),
        every(NA),
        "xmp:iptc-plus",
    ),
    "iptc-sentence-removed": (
        dict(iptc=iptc.decode(iptc.uri(iptc.AIML))),
        {DM: NA, AIT: NA, GEN: NA, INF: NA, SEARCH: UN},
        "xmp:iptc-plus",
    ),
    "tdm-set-to-0": (
        dict(tdm=tdmrep.decode("0")),
        {DM: AL, AIT: NA, GEN: NA, INF: NA, SEARCH: UN},
        "xmp:tdmrep",
    ),
    "tdm-policy-added": (
        dict(tdm=tdmrep.decode("1", POLICY)),
        {DM: CO, AIT: NA, GEN: NA, INF: NA, SEARCH: UN},
        None,  # a policy is not part of the record: still what rightsmeta writes with --policy
    ),
    "tdm-policy-not-a-url": (
        dict(tdm=tdmrep.decode("1", "see our terms page")),
        {DM: CO, AIT: NA, GEN: NA, INF: NA, SEARCH: UN},
        "xmp:tdmrep",
    ),
}


@pytest.mark.parametrize("row", list(EDITED))
def test_edited_projection_is_a_conflict_resolved_by_precedence(row):
    changes, expected, culprit = EDITED[row]
    d = decide(_edited(**changes))
    if culprit is None:
        assert d.conflicts == ()
        return
    assert d.conflicts, "an edited projection must be reported"
    assert any(c.startswith(culprit) and "resolved by precedence" in c for c in d.conflicts)
    assert states_of(d.permissions) == expected
    # ai-training stays notAllowed whatever the edit
    assert d.may_use(AIT) is False


def test_edited_iptc_allowed_next_to_deny_ai_row_of_the_brief():
    d = decide(_edited(iptc=iptc.decode(iptc.uri(iptc.ALLOWED), _DENY_AI_IPTC["OtherConstraints"])))
    assert d.conflicts
    assert d.permissions[AIT].state is NA
    assert d.permissions[SEARCH].state is AL
    # TDMRep's reservation is still in the file: precedence keeps mining reserved (fail closed).
    assert d.permissions[DM].state is NA
    assert d.may_use(SEARCH) and not d.may_use(DM)


def test_tdm_policy_matches_when_written_by_rightsmeta():
    a = Assertion.build(deny=["ai"], policy=POLICY)
    d = decide(tagged(a))
    assert d.conflicts == ()
    assert dict(d.permissions) == dict(a.permissions)


def test_projection_vocabularies_rightsmeta_does_not_write():
    a = Assertion.build(deny=["ai"], allow=["search"])
    agree = decide([*tagged(a), aipref.decode_content_usage("train-ai=n"), exif.decode([1, 1, 0])])
    assert agree.conflicts == ()
    assert dict(agree.permissions) == dict(a.permissions)
    disagree = decide([*tagged(a), exif.decode([1, 1, 1])])  # Exif opts in to AI training
    assert any(c.startswith("exif:exif-3.1") for c in disagree.conflicts)
    assert disagree.permissions[AIT].state is NA


def test_several_exact_records_that_disagree():
    xmp_rec = record(Assertion.build(deny=["ai"]))
    id3_rec = record(Assertion.build(allow=["all"]), carrier="id3")
    d = decide([xmp_rec, id3_rec])
    named = {c.split(":", 1)[0] for c in d.conflicts}
    assert named == {p.value for p in PURPOSES}
    assert all("xmp:rightsmeta" in c and "id3:rightsmeta" in c for c in d.conflicts)
    assert all(d.permissions[p].state is NA for p in AI_PURPOSES)
    assert d.permissions[SEARCH].state is AL and d.permissions[DM].state is AL


def test_exact_xmp_record_and_c2pa_disagree():
    xmp_rec = record(Assertion.build(allow=["all"]))
    c2pa_rec = cawg_record(
        Assertion.build(deny=["genai-training"], allow=["ai-training", "ai-inference", "data-mining"])
    )
    d = decide([xmp_rec, c2pa_rec])
    assert [c.split(":", 1)[0] for c in d.conflicts] == ["genai-training"]
    assert "c2pa:cawg says notAllowed" in d.conflicts[0]
    assert d.permissions[GEN].state is NA
    assert d.permissions[SEARCH].state is AL  # CAWG has no search key: no conflict there


def test_exact_records_agreeing_in_several_carriers():
    a = Assertion.build(deny=["ai"], constrain={"data-mining": "https://lic.example/"}, allow=["search"])
    d = decide(tagged(a, with_cawg=True, with_id3=True))
    assert d.conflicts == ()
    assert dict(d.permissions) == dict(a.permissions)


def test_decide_is_order_independent_on_conflicts():
    signals = _edited(iptc=iptc.decode(iptc.uri(iptc.ALLOWED)))
    first = decide(signals)
    for _ in range(5):
        random.Random(_).shuffle(signals)
        again = decide(signals)
        assert dict(again.permissions) == dict(first.permissions)
        assert set(again.conflicts) == set(first.conflicts)
