"""Tagging damaged files: tests/test_mutations.py reads its mutants; here each one is tagged again.

For every mutant of a reserved file (the same damage, every format family and the formats
test_fuzz_formats.py adds), ``tag`` raises nothing but rightsmeta's own errors, within a bound,
and a file it does write reads back reserved: a tag never leaves a damaged file saying "use it".
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from test_fuzz_formats import _FFMPEG
from test_fuzz_formats import _original as _more_original
from test_mutations import BOUND, DENY_AI, FAMILIES, _deadline, _mutants, _original

import rightsmeta
from rightsmeta import api
from rightsmeta.errors import RightsmetaError
from rightsmeta.model import Purpose

PER_FORMAT = 40
AI = (Purpose.AI_TRAINING, Purpose.GENAI_TRAINING, Purpose.AI_INFERENCE)
FORMATS = (*(fmt for family in FAMILIES.values() for fmt in family), *_FFMPEG)


@pytest.mark.parametrize("fmt", FORMATS)
def test_tagging_a_damaged_file_refuses_or_reserves(fmt: str, ffmpeg: str, tmp_path: Path) -> None:
    original = _more_original(fmt, ffmpeg, tmp_path) if fmt in _FFMPEG else _original(fmt, ffmpeg, tmp_path)
    tagged = rightsmeta.tag_bytes(original, DENY_AI)
    outcomes = {"refused": 0, "tagged": 0}
    for what, mutant, _ in _mutants(tagged, random.Random(f"rightsmeta-fuzz-tag-{fmt}"), PER_FORMAT):
        with _deadline(BOUND):
            try:
                again = api.tag_bytes(mutant, DENY_AI)
            except RightsmetaError:
                outcomes["refused"] += 1
                continue
            report = api.read(again)
        assert not any(report.may_use(p) for p in AI), (what, report.errors)
        outcomes["tagged"] += 1
    assert min(outcomes.values()) > 0, outcomes  # the damage reached both outcomes
