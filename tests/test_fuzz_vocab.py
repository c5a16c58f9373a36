"""Fuzzing the vocabulary decoders and the assertion reader with any JSON-like value.

A C2PA manifest's assertion data is CBOR from anyone, the server and ``ledger import`` read
assertions from anyone: each decoder must answer with its documented error (MalformedMetadata,
UsageError) and nothing else, whatever the shape of the value. The examples pinned with
``@example`` are what this fuzzing found.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from fuzzing import json_values
from hypothesis import example, given, settings
from hypothesis import strategies as st

import rightsmeta
from rightsmeta import keys
from rightsmeta.errors import MalformedMetadata, UsageError
from rightsmeta.model import Assertion, Purpose, State
from rightsmeta.vocab import aipref, cawg, iptc, project, tdmrep

EXAMPLES = int(os.environ.get("RIGHTSMETA_FUZZ_EXAMPLES", "200"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None)

# Keys and words the decoders look for, so that the fuzzing reaches past the first check.
WORDS = ("permissions", "holder", "name", "contact", "state", "constraint_info", "copyright", "date", "policy",
         "work_id", "web_statement", "use", "entries", "cawg.ai_training", "c2pa.data_mining",
         "cawg.ai_generative_training", "c2pa.ai_generative_training", "ai-training", "genai-training", "notAllowed", "allowed", "constrained")
JSON = json_values(WORDS, WORDS, max_leaves=16)


@SETTINGS
@given(JSON)
@example({"holder": "Jane"})  # found: TypeError (a holder given as text, not an object)
@example({"holder": {"name": 1}})
@example({"permissions": {"ai-training": {"state": "constrained", "constraint_info": 5}}})
@example({"copyright": {"text": "x"}})  # found: accepted, then written into files as an object
def test_assertion_from_json_raises_only_usage_errors(value: Any) -> None:
    try:
        assertion = Assertion.from_json(value)
    except UsageError:
        return
    # What is accepted is what to_json writes: text where the schema says text.
    for key in ("copyright", "web_statement", "policy", "date", "work_id"):
        assert isinstance(getattr(assertion, key), str | None), key
    assert assertion.holder is None or isinstance(assertion.holder.name, str)
    assert Assertion.from_json(assertion.to_json()) == assertion


@SETTINGS
@given(JSON)
@example({"entries": {"cawg.ai_training": {"use": ["notAllowed"]}}})  # found: TypeError (unhashable use)
@example({"entries": {"cawg.ai_training": {"use": {"a": 1}}}})
def test_cawg_decode_raises_only_malformed_metadata(value: Any) -> None:
    for label in cawg.LABELS:
        try:
            cawg.decode(value, label=label)
        except MalformedMetadata:
            pass


@SETTINGS
@given(JSON, JSON)
def test_cawg_reservation_is_never_read_as_allowed(extra: Any, extra_entry: Any) -> None:
    """Other entries beside a notAllowed one (a later spec's, or garbage) never turn it into allowed."""
    entries = {"cawg.ai_generative_training": {"use": "notAllowed"}}
    if isinstance(extra, dict):
        entries = {**extra, **entries}
    entries["cawg.later_key"] = extra_entry
    try:
        signal = cawg.decode({"entries": entries})
    except MalformedMetadata:
        return  # the whole assertion is reported as an error: fail closed
    assert signal.permissions[Purpose.GENAI_TRAINING].state is State.NOT_ALLOWED


def test_cawg_entries_at_odds_are_malformed() -> None:
    """Found: ``c2pa.x`` and ``cawg.x`` both given, the later one decided: an "allowed" after a
    "notAllowed" lifted the reservation."""
    for first, second in (("notAllowed", "allowed"), ("allowed", "notAllowed")):
        entries = {"c2pa.ai_generative_training": {"use": first}, "cawg.ai_generative_training": {"use": second}}
        with pytest.raises(MalformedMetadata, match="say both"):
            cawg.decode({"entries": entries})
    same = {"c2pa.ai_training": {"use": "notAllowed"}, "cawg.ai_training": {"use": "notAllowed"}}
    assert cawg.decode({"entries": same}).permissions[Purpose.AI_TRAINING].state is State.NOT_ALLOWED


@pytest.fixture(scope="module")
def identity() -> keys.Identity:
    return keys.make_identity("Fuzz Test")


@pytest.mark.parametrize("entries", [
    {"cawg.ai_generative_training": {"use": ["notAllowed"]}},
    {"c2pa.ai_generative_training": {"use": "notAllowed"}, "cawg.ai_generative_training": {"use": "allowed"}},
], ids=["use-is-a-list", "entries-at-odds"])
def test_signed_manifests_with_such_entries_fail_closed(identity: keys.Identity, entries: dict[str, Any]) -> None:
    """The same assertions in real signed C2PA manifests (c2pa-python signs whatever data it is given)."""
    from test_c2pa import _sign_raw

    report = rightsmeta.read(_sign_raw([{"label": cawg.LABEL, "data": {"entries": entries}}], identity))
    assert not any("rightsmeta failed" in e for e in report.errors), report.errors
    assert any(cawg.LABEL in e for e in report.errors), report.errors
    assert not report.may_use(Purpose.GENAI_TRAINING)


@SETTINGS
@given(JSON, JSON)
def test_tdmrep_decode_raises_only_malformed_metadata(reservation: Any, policy: Any) -> None:
    try:
        signal = tdmrep.decode(reservation, policy if isinstance(policy, str) else None)
    except MalformedMetadata:
        return
    if signal is not None:
        assert str(reservation).strip() in ("0", "1")


@SETTINGS
@given(st.text(max_size=200), st.text(max_size=40))
@example("train-ai=n;q=\"x, search", "")
def test_aipref_values_raise_only_malformed_metadata(value: str, suffix: str) -> None:
    for decode in (aipref.decode_content_usage, aipref.decode_content_signal):
        try:
            decode(value + suffix)
        except MalformedMetadata:
            pass
    aipref.decode_robots(value)


@SETTINGS
@given(st.text(max_size=80), st.one_of(st.none(), st.text(max_size=80)))
def test_iptc_decode_raises_only_malformed_metadata(data_mining: str, other: str | None) -> None:
    try:
        iptc.decode(data_mining, other)
    except MalformedMetadata:
        pass


@SETTINGS
@given(st.dictionaries(st.sampled_from(project.ALL_KEYS) | st.text(max_size=8), st.text(max_size=20), max_size=8))
def test_project_record_raises_only_malformed_metadata(values: dict[str, str]) -> None:
    try:
        project.decode(values)
    except MalformedMetadata:
        pass
