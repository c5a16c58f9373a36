"""Carry a work's statement to a rendition of it (resized, transcoded) that a platform made.

Renderers (Pillow, ffmpeg, image CDNs) drop metadata. ``carry`` reads the original's statement
and writes it into every carrier of the derivative's own format; with a signing identity the
derivative also gets a manifest with ``c2pa.resized`` / ``c2pa.transcoded`` after ``c2pa.opened``
of the original, the original as parent ingredient. The ledger records the derivative as a work
of its own whose ``source`` names the original's work, so a stripped copy of either is matched.
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
    from .keys import Identity


@dataclass
class Carried:
    data: bytes
    format: str
    carriers: list[str] = field(default_factory=list)
    assertion_json: dict[str, Any] = field(default_factory=dict)
    parent_work_id: str | None = None
    manifest: bytes | None = None
    actions: list[str] = field(default_factory=list)


def _size(data: bytes, fmt: str) -> tuple[int, int] | None:
    from .fingerprint import KIND_OF
    from .imagedecode import open_image

    if KIND_OF.get(fmt) != "image":
        return None
    try:
        with open_image(data, fmt) as img:
            return img.size
    except Exception:  # not an image Pillow opens: no size to compare
        return None


def actions_for(original: bytes, original_fmt: str, derivative: bytes, fmt: str) -> list[str]:
    """The C2PA actions that say how the rendition differs from the original."""
    out = []
    if fmt != original_fmt:
        out.append("c2pa.transcoded")
    before, after = _size(original, original_fmt), _size(derivative, fmt)
    if before is not None and after is not None and before != after:
        out.append("c2pa.resized")
    return out or ["c2pa.transcoded"]  # same format, same size: re-encoded, which is what transcoded means


def carry_bytes(original: bytes, derivative: bytes, *, identity: Identity | None = None) -> Carried:
    """The derivative with the original's statement; raises typed errors, never returns a file that says less."""
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

    assertion = replace(statement, work_id=None, date=None).for_work()
    new = api.tag_bytes(derivative, assertion)
    result = Carried(new, fmt, parent_work_id=parent_work, actions=actions_for(original, source.format, derivative, fmt))
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
               identity: Identity | None = None, ledger_path: str | None = None) -> dict[str, Any]:
    """Carry into the derivative file in place (atomically) and record it in the ledger."""
    try:
        with open(original, "rb") as fh:
            source = fh.read()
        with open(derivative, "rb") as fh:
            target = fh.read()
    except OSError as exc:
        raise WriteError(f"cannot read the files: {exc.strerror or exc}") from None
    result = carry_bytes(source, target, identity=identity)
    atomic_write(derivative, result.data)
    notes: list[str] = []
    if ledger_path:
        from .escape import stored_path
        from .fingerprint import essence
        from .ledger import DERIVED, Ledger, Work
        from .model import Assertion

        assertion = Assertion.from_json(result.assertion_json)
        with Ledger.open(ledger_path) as db:
            db.record(Work.create(stored_path(derivative), result.format, essence(result.data, result.format, probes=False), assertion,
                                  result.carriers, id=assertion.work_id,
                                  source=f"{DERIVED}{result.parent_work_id}" if result.parent_work_id else None))
        if result.manifest is not None and assertion.work_id:
            from .server import registry

            registry.record_file(ledger_path, assertion.work_id, result.data, result.format, manifest=result.manifest)
    return {"path": os.fspath(derivative), "format": result.format, "carriers": result.carriers, "actions": result.actions,
            "parent_work_id": result.parent_work_id, "notes": notes}
