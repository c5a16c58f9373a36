"""One dataset sample's decision: may it be kept for a purpose?

A sample is what a dataset row or a WebDataset key holds: one or more content files (an image,
an audio clip, a PDF...) and, optionally, metadata (the ``.json`` beside it: the URL it came from
and the response headers a crawler recorded). Every content file is read with
:func:`rightsmeta.read`; their signals and those of the recorded headers go through the one
decision of ``decide.py``. Keeping fails closed: a sample is kept only when every part was read
without error and the effective state for the purpose is ``allowed`` or ``unspecified``
(``constrained`` only when the caller accepts the terms).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..api import read
from ..decide import decide
from ..model import Purpose, State, parse_purpose
from ..vocab import Signal
from .headers import DEFAULT_STEP, HeaderStep, headers_of


@dataclass(frozen=True)
class SampleDecision:
    """Keep or drop one sample, and why."""

    purpose: Purpose
    keep: bool
    state: State  # the effective state for ``purpose`` (after the data-mining umbrella)
    format: str | None = None  # the content's format(s), "+"-joined when several
    reasons: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # "carrier:vocabulary" of every signal that stated this purpose
    errors: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "purpose": self.purpose.value,
            "permission": self.state.value,
            "decision": "keep" if self.keep else "drop",
            "reasons": list(self.reasons),
            "sources": list(self.sources),
            "errors": list(self.errors),
        }


def decide_parts(
    parts: Sequence[tuple[str, bytes]],
    meta: Mapping[str, Any] | None,
    purpose: Purpose | str,
    *,
    accept_constraints: bool = False,
    header_step: HeaderStep | None = DEFAULT_STEP,
    errors: Sequence[str] = (),
    columns: Mapping[str, Any] | None = None,
) -> SampleDecision:
    """The decision over several content files (name, bytes) of one sample and its metadata.

    ``errors`` are problems the caller met while collecting the sample (a truncated member...):
    any of them drops it. ``columns``: a Parquet row's url and recorded-headers columns, read
    beside the JSON's own (merged into it, a JSON "headers": {} hid the column's reservation).
    """
    purpose = purpose if isinstance(purpose, Purpose) else parse_purpose(purpose)
    problems = list(errors)
    signals: list[Signal] = []
    formats: list[str] = []
    if not parts and not problems:
        problems.append("no content to read in this sample (only metadata)")
    for name, data in parts:
        report = read(data, name=name)
        if report.format and report.format not in formats:
            formats.append(report.format)
        signals.extend(report.signals)
        problems.extend(f"{name}: {e}" for e in report.errors)
    if meta is not None and not isinstance(meta, Mapping):
        problems.append(f"sample metadata is a {type(meta).__name__}, not a JSON object")
        meta = None
    if header_step is not None and (meta is not None or columns is not None):
        url: str | None = None
        pairs: list[tuple[str, str]] = []
        for recorded in (meta, columns):  # the JSON's URL first: it names the sample
            if recorded is not None:
                where, more, bad = headers_of(recorded)
                url, pairs = url or where, pairs + more
                problems.extend(bad)
        if pairs:
            found, bad = header_step(url, pairs)
            signals.extend(found)
            problems.extend(bad)

    decision = decide(signals)
    perm = decision.effective[purpose]
    stating = tuple(sorted({s.source for s in signals if s.permissions[purpose].state is not State.UNSPECIFIED}))
    if not stating and decision.permissions[purpose].state is not perm.state:
        # The umbrella: a data-mining reservation reached this purpose.
        stating = tuple(sorted({s.source for s in signals
                                if s.permissions[Purpose.DATA_MINING].state is not State.UNSPECIFIED}))
    reasons: list[str] = []
    if problems:
        reasons.append("not fully read, so not kept (fail closed)")
    said = f" by {', '.join(stating)}" if stating else ""
    if perm.state is State.NOT_ALLOWED:
        reasons.append(f"{purpose.value} notAllowed{said}")
    elif perm.state is State.CONSTRAINED:
        terms = f" (terms: {perm.constraint_info})" if perm.constraint_info else ""
        verdict = "terms accepted" if accept_constraints else "terms not accepted, counts as notAllowed"
        reasons.append(f"{purpose.value} constrained{said}{terms}; {verdict}")
    elif perm.state is State.ALLOWED:
        reasons.append(f"{purpose.value} allowed{said}")
    elif not problems:
        reasons.append(f"no signal about {purpose.value}")
    reasons.extend(f"conflict: {c}" for c in decision.conflicts)
    keep = not problems and decision.may_use(purpose, accept_constraints=accept_constraints)
    return SampleDecision(
        purpose=purpose, keep=keep, state=perm.state, format="+".join(formats) or None,
        reasons=tuple(reasons), sources=stating, errors=tuple(problems),
    )


def decide_sample(
    data: bytes,
    meta: Mapping[str, Any] | None,
    purpose: Purpose | str,
    *,
    name: str | None = None,
    accept_constraints: bool = False,
    header_step: HeaderStep | None = DEFAULT_STEP,
) -> SampleDecision:
    """May this sample (one file's bytes, plus its metadata) be kept for ``purpose``?

        >>> from rightsmeta.datasets import decide_sample
        >>> decide_sample(jpeg_bytes, {"url": u, "headers": {"tdm-reservation": "1"}},
        ...               "genai-training").keep                        # doctest: +SKIP
        False

    ``meta`` is the sample's JSON (``None`` when there is none); when it records the URL and the
    response headers (``headers``, ``response_headers`` or ``http_headers``: an object or a list of
    pairs), ``header_step`` reads them; no network is used. Pure and thread-safe.
    """
    return decide_parts([(name or "sample", bytes(data))], meta, purpose,
                        accept_constraints=accept_constraints, header_step=header_step)

