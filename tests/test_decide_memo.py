"""decide() memoises what rightsmeta writes for an exact record (decide._projection): the
memo must give exactly the unmemoised answer, keyed by everything it depends on (every
state, every constraint text, the policy, the vocabulary), hold read-only values only, stay
small whatever the files say, and be safe to share between threads. project.decode's shared
Permission values likewise give exactly what fresh ones gave."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import pytest
from test_decide import AL, CO, NA, POLICY, UN, assertion, iptc_projection, record, tagged

from rightsmeta import decide as decide_mod
from rightsmeta.decide import _ENCODERS, _matches_exact, decide
from rightsmeta.errors import MalformedMetadata, UsageError
from rightsmeta.model import PURPOSES, Assertion, Permission, Purpose, State, full
from rightsmeta.vocab import Signal, project, tdmrep


def _reference(signal: Signal, exact: Mapping[Purpose, Permission]) -> bool:
    """_matches_exact as it was before the memo, for the written vocabularies."""
    policy = signal.raw.get("policy") if signal.vocabulary == tdmrep.NAME else None
    try:
        expected = _ENCODERS[signal.vocabulary](Assertion(permissions=exact, policy=policy))
    except UsageError:
        return False
    return bool(expected == dict(signal.raw))


def _raw(vocabulary: str, raw: dict[str, object]) -> Signal:
    return Signal(vocabulary, "xmp", {}, raw=raw)


TEXTS = [None, "terms A", "terms B", "x" * 2000, "bad\x01text"]
POLICIES = [None, POLICY, "https://other.example/policy", "not a url", "p" * 1100]


def test_the_memo_answers_as_the_encoders_do() -> None:
    rng = random.Random("rightsmeta-memo")
    exacts = []
    for _ in range(300):
        states = {p: rng.choice([UN, AL, CO, NA]) for p in PURPOSES}
        text = rng.choice(TEXTS)
        exacts.append({p: Permission(s, text if s is CO else None) for p, s in states.items()})
    raws = set()
    for exact in exacts:  # what the encoders write for these records, under every policy
        for policy in POLICIES:
            for vocabulary, encoder in _ENCODERS.items():
                try:
                    raw = encoder(Assertion(permissions=exact, policy=policy))
                except UsageError:
                    continue
                if raw is not None:
                    raws.add((vocabulary, tuple(raw.items())))
    signals = [_raw(v, dict(items)) for v, items in sorted(raws, key=repr)]
    signals += [_raw(tdmrep.NAME, {"reservation": 1, "policy": p}) for p in POLICIES]
    checked = matched = 0
    for exact in exacts:
        for signal in rng.sample(signals, 40):
            want = _reference(signal, exact)
            assert _matches_exact(signal, exact) is want, (signal, exact)
            checked += 1
            matched += want
    assert checked == 12000 and 200 < matched < checked  # both answers were met, often


def test_the_memo_is_keyed_by_the_constraint_texts() -> None:
    states = {Purpose.DATA_MINING: CO, Purpose.AI_TRAINING: NA}
    a, b = assertion(states, {Purpose.DATA_MINING: "terms A"}), assertion(states, {Purpose.DATA_MINING: "terms B"})
    assert decide([record(a), iptc_projection(a)]).conflicts == ()
    assert decide([record(b), iptc_projection(b)]).conflicts == ()
    mixed = decide([record(b), iptc_projection(a)]).conflicts
    assert len(mixed) == 1 and "differs from the rightsmeta record" in mixed[0]


def test_the_memo_is_keyed_by_the_policy() -> None:
    exact = record(assertion({Purpose.DATA_MINING: NA}))
    for policy in (POLICY, "https://other.example/policy", POLICY):
        tdm = tdmrep.decode("1", policy)
        assert tdm is not None and decide([exact, tdm]).conflicts == (), policy
    not_ours = tdmrep.decode("1", "not a url")  # no URL: rightsmeta never writes it, so it differs
    assert len(decide([exact, not_ours]).conflicts) == 1


def test_the_memo_holds_small_read_only_values() -> None:
    info = decide_mod._projection.cache_info()
    assert info.maxsize == 64
    value = decide_mod._projection("tdmrep", decide_mod._key(full({Purpose.DATA_MINING: Permission(NA)}))[0], None)
    assert value == {"reservation": 1, "policy": None}
    with pytest.raises(TypeError):
        value["policy"] = "https://changed.example/"  # type: ignore[index]
    # A record with long terms is answered without entering the memo.
    long = assertion({p: CO for p in PURPOSES}, {p: "y" * 600 for p in PURPOSES})
    before = decide_mod._projection.cache_info()
    assert decide(tagged(long)).conflicts == ()
    after = decide_mod._projection.cache_info()
    assert (after.hits, after.misses) == (before.hits, before.misses)


def test_threads_deciding_different_records_get_their_own_answers() -> None:
    combos = list(itertools.product([UN, AL, CO, NA], repeat=2))
    files = []
    for (dm, ai), text in itertools.product(combos, ["one", "two"]):
        a = assertion({Purpose.DATA_MINING: dm, Purpose.AI_TRAINING: ai}, {p: text for p in PURPOSES},
                      policy=POLICY if dm is NA else None)
        files.append(tagged(a))
    alone = [decide(signals) for signals in files]
    decide_mod._projection.cache_clear()
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(decide, files * 20))
    assert together == alone * 20


@pytest.mark.parametrize("state", list(State))
def test_project_decode_states(state: State) -> None:
    got = project.decode({"DataMining": f" {state.value} ", "DataMiningConstraint": "t"})
    assert got is not None
    want = Permission(state, "t" if state is CO else None)
    assert got.permissions[Purpose.DATA_MINING] == want
    with pytest.raises(MalformedMetadata, match="rightsmeta:DataMining must be one of allowed, notAllowed"):
        project.decode({"DataMining": state.value.upper() + "x"})
