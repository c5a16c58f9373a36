"""Carry a work's statement to a rendition of it (resized, transcoded) that a platform made.

Renderers (Pillow, ffmpeg, image CDNs) drop metadata. ``carry`` reads the original's statement
and writes it into every carrier of the derivative's own format; with a signing identity the
derivative also gets a manifest with ``c2pa.resized`` / ``c2pa.cropped`` / ``c2pa.orientation`` / ``c2pa.transcoded``
after ``c2pa.opened`` of the original, the original as parent ingredient. The ledger records the
derivative as a work of its own whose ``source`` names the original's work, so a stripped copy of
either is matched.

A manifest signs what it says: the derivative's content is compared with the original's the way
the ledger compares a copy with a work (exact hash, perceptual code, regions and crop search,
audio at an offset), and a derivative that is not a rendition of the original is refused, unless
the caller says it is a new work (``new_work``: then ``c2pa.edited``, and recorded as a work of
its own).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import api
from .errors import MalformedFile, UnsupportedFormat, UsageError, WriteError
from .fsio import atomic_write
from .model import PURPOSES, State

if TYPE_CHECKING:
    from .fingerprint import Essence
    from .keys import Identity
    from .ledger import Match
    from .model import Assertion


@dataclass
class Carried:
    data: bytes
    format: str
    carriers: list[str] = field(default_factory=list)
    assertion_json: dict[str, Any] = field(default_factory=dict)
    parent_work_id: str | None = None
    manifest: bytes | None = None
    actions: list[str] = field(default_factory=list)
    # The derivative's essence as compared with the original's (None for a new work): tagging
    # leaves it as it is (what lets a stripped copy match exactly), so recording needs no other.
    essence: Essence | None = None


def _size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """The picture's width and height (a video's first picture track's), None when it has none."""
    from .fingerprint import KIND_OF
    from .imagedecode import open_image

    if fmt in ("mp4", "mov"):
        from .carriers import bmff

        try:
            return next((t.size for t in bmff.tracks(data) if t.handler == b"vide" and t.size), None)
        except MalformedFile:
            return None
    if KIND_OF.get(fmt) != "image":
        return None
    try:
        with open_image(data, fmt) as img:
            return img.size
    except Exception:  # not an image Pillow opens: no size to compare
        return None


def actions_for(original: bytes, original_fmt: str, derivative: bytes, fmt: str, match: Match | None = None) -> list[str]:
    """The C2PA actions that say how the rendition differs from the original; ``match``: which part
    of the original matched which form of the rendition (None: the whole as it is)."""
    from .fingerprint import WHOLE, same_part

    out = []
    if fmt != original_fmt:
        out.append("c2pa.transcoded")
    turned = match is not None and match.form is not None
    if turned:
        out.append("c2pa.orientation")
    before, after = _size(original, original_fmt), _size(derivative, fmt)
    if before is not None and after is not None:
        # A part of the work matched (a region, a crop), turned or not, or the aspect changed:
        # areas were cut away, which a resize or a turn alone never does. Turned a quarter, the
        # sides swap.
        scaled = _scaled(before, after) or (turned and _scaled(before, (after[1], after[0])))
        # A part matched at the same share of both pictures (half to half) is no cut: with the
        # aspect kept, the copy frames the whole picture.
        part = match is not None and match.region != WHOLE and not (match.probe and same_part(match.probe, match.region))
        if not scaled or part:
            out.append("c2pa.cropped")
        elif before not in (after, (after[1], after[0])):
            out.append("c2pa.resized")
    return out or ["c2pa.transcoded"]  # same format, same size: re-encoded, which is what transcoded means


def _scaled(before: tuple[int, int], after: tuple[int, int]) -> bool:
    """Whether one scale factor gives both sides of ``after`` from ``before``, each side rounded
    to within a pixel (resizers round or floor)."""
    low = max((after[0] - 1) / before[0], (after[1] - 1) / before[1])
    high = min((after[0] + 1) / before[0], (after[1] + 1) / before[1])
    return low <= high


def rendition_of(original: bytes, original_fmt: str, derivative: bytes, fmt: str,
                 statement: Assertion) -> tuple[Match | None, Essence]:
    """How the derivative's content matches the original's (None: it does not), compared as the
    ledger compares a copy with a work (a ledger of the one work, in memory), and the derivative's
    essence. Raises MalformedFile when either content cannot be compared (fail closed)."""
    from .cropsearch import matches
    from .fingerprint import essence
    from .ledger import Ledger, Work

    work = essence(original, original_fmt, probes=False)
    if work.kind is None or (work.hash is None and work.perceptual is None):
        raise MalformedFile(f"the original's content cannot be compared with the derivative's ({work.reason})")
    # In memory: a ledger in a temporary folder cost its creation and commits on disk (3 ms at
    # best, 45 ms typical on a busy disk).
    with Ledger.in_memory() as ledger:
        ledger.record(Work.create("original", original_fmt, work, statement))
        copy = ledger.essence_of(derivative, fmt)
        if not copy.decoded or copy.kind is None:
            raise MalformedFile(f"the derivative's content cannot be compared with the original's ({copy.reason})")
        found = matches(ledger, copy, limit=1)
    return (found[0] if found else None), copy


def carry_bytes(original: bytes, derivative: bytes, *, identity: Identity | None = None, new_work: bool = False) -> Carried:
    """The derivative with the original's statement; raises typed errors, never returns a file that says less.

    A derivative whose content is not a rendition of the original's is refused (UsageError)
    unless ``new_work``: a new work made from the original, signed as ``c2pa.edited``.
    """
    from .sanitize import _statement

    source = api.read(original)
    if source.format is None or source.errors:
        raise MalformedFile("the original cannot be read fully: " + ("; ".join(source.errors) or "unknown format"))
    if any(c.values.get("validation_state") == "Invalid" for c in source.carriers):
        raise MalformedFile("the original's C2PA manifest is invalid (tampered); its statement is not carried")
    if source.conflicts:
        raise MalformedFile("the original's carriers disagree (" + "; ".join(source.conflicts) + "); resolve that first")
    if not source.signals:
        raise UsageError("the original carries no rights statement to carry")
    statement = _statement(source)
    parent_work = statement.work_id
    target = api.read(derivative)
    if target.format is None:
        raise UnsupportedFormat("; ".join(target.errors) or "the derivative is not a format rightsmeta knows")
    fmt = target.format
    # The derivative is a new file: its own work id, dated now; the ledger links it to the original's.
    from dataclasses import replace

    compared = None
    if new_work:
        actions = ["c2pa.edited"]
    else:
        match, compared = rendition_of(original, source.format, derivative, fmt, statement)
        if match is None:
            raise UsageError("the derivative's content does not match the original's, so it is not a rendition of it; "
                             "if it is a new work made from the original, say so (carry --new-work, /v1/carry?newWork=true); "
                             "nothing written")
        actions = actions_for(original, source.format, derivative, fmt, match)
    assertion = replace(statement, work_id=None, date=None).for_work()
    new = api.tag_bytes(derivative, assertion)
    result = Carried(new, fmt, parent_work_id=parent_work, actions=actions, essence=compared)
    from .carriers import manifest

    if identity is not None and manifest.signable(fmt) and manifest.signable(source.format):
        from .fingerprint import fingerprint
        from .provenance import sign_derived

        result.data, result.manifest = sign_derived(new, fmt, original, source.format, assertion, identity, result.actions,
                                                    fingerprint=fingerprint(new, fmt), title="rendition")
    after = api.read(result.data)
    covered = {p for s in after.signals for p in s.covers}
    wrong = [p.value for p in covered if after.permissions[p] != source.permissions[p]]
    if after.errors or wrong or any(c.values.get("validation_state") == "Invalid" for c in after.carriers):
        raise WriteError("the derivative did not read back with the original's statement ("
                         + "; ".join(after.errors + [f"{p} differs" for p in wrong]) + ")")
    lost = [p.value for p in PURPOSES if p not in covered and source.permissions[p].state is not State.UNSPECIFIED]
    if lost:
        raise WriteError(f"no carrier of a {fmt.upper()} can express {', '.join(lost)}; nothing written")
    result.carriers = [c.name for c in after.carriers if c.signals]
    out = assertion.to_json()
    work = next((str(s.raw["WorkID"]) for s in after.signals if s.exact and s.raw.get("WorkID")), None)
    if work:
        out["work_id"] = work
    result.assertion_json = out
    return result


def carry_path(original: str | os.PathLike[str], derivative: str | os.PathLike[str], *,
               identity: Identity | None = None, ledger_path: str | None = None, new_work: bool = False) -> dict[str, Any]:
    """Carry into the derivative file in place (atomically) and record it in the ledger (a new
    work as a work of its own, a rendition as derived from the original's work)."""
    try:
        with open(original, "rb") as fh:
            source = fh.read()
        with open(derivative, "rb") as fh:
            target = fh.read()
    except OSError as exc:
        raise WriteError(f"cannot read the files: {exc.strerror or exc}") from None
    result = carry_bytes(source, target, identity=identity, new_work=new_work)
    atomic_write(derivative, result.data)
    notes: list[str] = []
    if ledger_path:
        from .escape import stored_path
        from .fingerprint import essence
        from .ledger import DERIVED, Ledger, Work
        from .model import Assertion

        assertion = Assertion.from_json(result.assertion_json)
        with Ledger.open(ledger_path) as db:
            found = result.essence if result.essence is not None else essence(result.data, result.format, probes=False)
            db.record(Work.create(stored_path(derivative), result.format, found, assertion,
                                  result.carriers, id=assertion.work_id,
                                  source=f"{DERIVED}{result.parent_work_id}" if result.parent_work_id and not new_work else None))
        if result.manifest is not None and assertion.work_id:
            from .server import registry

            registry.record_file(ledger_path, assertion.work_id, result.data, result.format, manifest=result.manifest)
    return {"path": os.fspath(derivative), "format": result.format, "carriers": result.carriers, "actions": result.actions,
            "parent_work_id": result.parent_work_id, "notes": notes}
