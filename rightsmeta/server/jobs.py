"""The work a request needs, run in worker processes of the server.

Decoding untrusted uploads is bounded per job: an address-space limit set once per worker and
a SIGALRM timer armed around each job. Both live in the worker process, whose jobs run in its
main thread, so the server process itself installs no signal handler and sets no limit: library
calls leave it as they found it. A job gets paths the server made (never a request value) and
returns plain JSON-able dicts: {"json": ...}, {"file": path, "format": fmt, ...} or {"problem": ...}.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import uuid
from typing import Any

from ..errors import TimeLimit, on_alarm

_STATE: dict[str, Any] = {}
_ANSWER = ".answer.json"  # beside a job's output: what it answered, for a run of it again




def init(ledger_path: str | None, identity_dir: str | None, seconds: float, memory: int, quiet: bool = False) -> None:
    """Once per worker process: limits, the alarm handler, the ledger and the signing identity.

    ``quiet``: standard error goes nowhere. Decoders (libmpg123, Pillow's warnings) write there what
    they make of a hostile upload, lines of the server's log that no request owns, as many as the
    file asks for; what failed is said in the answer instead.
    """
    import resource

    if memory:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory if hard == resource.RLIM_INFINITY else min(memory, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    # Workers are this server's own processes and run jobs in their main thread: the alarm reaches them.
    signal.signal(signal.SIGALRM, on_alarm)
    identity = None
    if identity_dir and has_identity(identity_dir):  # keys (cryptography, ~40 ms) only for an identity to load
        from ..keys import load_identity

        identity = load_identity(identity_dir)
    _STATE.update(ledger_path=ledger_path, identity=identity, seconds=seconds, ledger=None)
    if quiet:  # after the identity: a worker that cannot start still says why
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)


def has_identity(folder: str) -> bool:
    from ..paths import identity_files

    return identity_files(folder) is not None


def _ledger() -> Any:
    if _STATE.get("ledger") is None and _STATE.get("ledger_path"):
        from ..ledger import Ledger

        _STATE["ledger"] = Ledger.open(_STATE["ledger_path"])
    return _STATE.get("ledger")


def problem(status: int, title: str, detail: str) -> dict[str, Any]:
    return {"problem": {"status": status, "title": title, "detail": detail}}


def run(job: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run one job under the per-job time limit; every failure becomes a problem, never an exception."""
    seconds = float(_STATE.get("seconds") or 0)
    if seconds:
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        result: dict[str, Any] = _JOBS[job](**args)
        return result
    except TimeLimit:
        return problem(422, "Upload took too long to process", f"gave up after {seconds:g} s; the file is not accepted")
    except MemoryError:
        return problem(422, "Upload needs too much memory", "decoding it needed more memory than the per-upload limit")
    except Exception as exc:  # one upload must never take the worker down; said, not hidden
        from ..errors import RightsmetaError, UsageError

        if isinstance(exc, UsageError):
            return problem(400, "Bad request", str(exc))
        if isinstance(exc, RightsmetaError):
            return problem(422, "Cannot process this file", str(exc))
        import traceback

        # The traceback goes back to the server, which logs it (the worker's standard error goes
        # nowhere); the client gets the problem alone.
        return {**problem(500, "Internal error", f"rightsmeta failed on this upload ({type(exc).__name__}); please report it"),
                "trace": traceback.format_exc(limit=20)}
    finally:
        if seconds:
            signal.setitimer(signal.ITIMER_REAL, 0)


def _read(path: str, name: str) -> dict[str, Any]:
    from .. import api

    report = api.read(path, name=name, sidecars=False)  # an upload: nothing beside its spooled file is its
    return {"json": report.to_json()}


def _verify(path: str, name: str) -> dict[str, Any]:
    from .. import verify

    # The ledger may be shared with its owner's own `rightsmeta tag`: no client learns where their files are.
    verdict = verify.verify(path, ledger=_ledger(), sidecars=False).without_paths()
    verdict.path = name
    return {"json": verdict.to_json()}


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _exact_work_id(data: bytes) -> str | None:
    from .. import api

    report = api.read(data)
    for found in report.signals:
        if found.exact and found.raw.get("WorkID"):
            return str(found.raw["WorkID"])
    return None


def _registration(data: bytes, fmt: str, assertion_json: dict[str, Any], carriers: list[str], name: str,
                  parent: str | None = None, manifest: bytes | None = None) -> dict[str, Any] | None:
    """What ``_register`` records of the new file, its work id chosen once (None without a ledger)."""
    if _ledger() is None:
        return None
    from ..model import Assertion

    work_id = _exact_work_id(data) or Assertion.from_json(assertion_json).work_id or str(uuid.uuid4())
    return {"fmt": fmt, "assertion_json": assertion_json, "carriers": carriers, "name": name, "parent": parent,
            "work_id": work_id, "manifest": base64.b64encode(manifest).decode() if manifest is not None else None}


def _register(data: bytes, fmt: str, assertion_json: dict[str, Any], carriers: list[str], name: str,
              parent: str | None, work_id: str, manifest: str | None) -> None:
    """Record the new file in the ledger and its soft binding in the registry; both are no-ops for a work recorded before."""
    from ..fingerprint import essence
    from ..ledger import DERIVED, Work
    from ..model import Assertion
    from . import registry

    ledger = _ledger()
    ledger.record(Work.create(f"upload:{name}", fmt, essence(data, fmt, probes=False), Assertion.from_json(assertion_json),
                              carriers, id=work_id, source=f"{DERIVED}{parent}" if parent else None))
    registry.record_file(ledger.path, work_id, data, fmt, manifest=base64.b64decode(manifest) if manifest is not None else None)


def _answered(out: str) -> dict[str, Any] | None:
    """The answer of this job's earlier run, its work recorded (again: a no-op when it was), or None
    when no earlier run got as far as writing it."""
    try:
        saved = json.loads(_read_bytes(out + _ANSWER))
    except FileNotFoundError:
        return None
    if saved["registration"] is not None:
        _register(_read_bytes(out), **saved["registration"])
    answer: dict[str, Any] = saved["answer"]
    return answer


def forget(args: dict[str, Any]) -> None:
    """Remove what a job saved for a run of it again, once the server has its answer: beside a
    batch's files it would take disk the batch never accounted for."""
    if "out" in args:
        for path in (args["out"] + _ANSWER, args["out"] + _ANSWER + ".part"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _deliver(out: str, data: bytes, answer: dict[str, Any], registration: dict[str, Any] | None) -> dict[str, Any]:
    """Write the file, then the answer, then record the work. A job run again after its pool broke
    (the server's _State.run) makes a new file with a new work id: it answers with what its first
    run wrote instead when that run got that far, so the ledger holds one work per upload. ``out``,
    named by the server for this request, is the id the two runs share."""
    if registration is not None and "work_id" in answer:
        answer["work_id"] = registration["work_id"]
    _write(out, data)
    _write(out + _ANSWER + ".part", json.dumps({"answer": answer, "registration": registration}).encode())
    os.replace(out + _ANSWER + ".part", out + _ANSWER)  # whole or absent: a run killed while writing it left none
    if registration is not None:
        _register(data, **registration)
    return answer


def _tag(path: str, name: str, out: str, assertion: dict[str, Any]) -> dict[str, Any]:
    from .. import api
    from ..model import Assertion

    if (answer := _answered(out)) is not None:
        return answer
    from ..errors import UnsupportedFormat
    from ..sidecar import is_raw

    if is_raw(name):
        # As `rightsmeta tag` does: a vendor's raw holds maker notes at offsets only the vendor's
        # tools promise to keep, so it is never rewritten; its statement belongs in its sidecar.
        raise UnsupportedFormat(f"{name}: a camera raw is not rewritten; tag it with `rightsmeta tag`, which writes "
                                "its XMP sidecar (keep the two together)")
    statement = Assertion.from_json(assertion)
    data = _read_bytes(path)
    identity = _STATE.get("identity")
    new, store = _tag_and_sign(data, statement, identity)
    report = api.read(new)
    fmt = report.format or "bin"
    carriers = [c.name for c in report.carriers]
    registration = _registration(new, fmt, _assertion_of(report, statement), carriers, name, manifest=store)
    return _deliver(out, new, {"file": out, "format": fmt, "work_id": None, "carriers": carriers}, registration)


def _tag_and_sign(data: bytes, statement: Any, identity: Any) -> tuple[bytes, bytes | None]:
    """The tagged file and, when the service signed it, the manifest store bytes it keeps for /manifests."""
    from .. import api
    from ..carriers import manifest
    from ..errors import UnsupportedFormat, WriteError
    from ..fingerprint import fingerprint
    from ..provenance import sign_derived

    if identity is None:
        return api.tag_bytes(data, statement), None
    try:
        unsigned = api.tag_bytes(data, statement)
    except UnsupportedFormat:
        # Already signed, or a format only the manifest can carry: the library's own signing path handles both.
        return api.tag_bytes(data, statement, identity=identity), None
    fmt = api.read(unsigned).format or ""
    if not manifest.signable(fmt) or manifest.why_not(unsigned, fmt):
        return unsigned, None
    with_id = _assertion_of(api.read(unsigned), statement)
    signed, store = sign_derived(unsigned, fmt, None, None, type(statement).from_json(with_id), identity, [],
                                 fingerprint=fingerprint(unsigned, fmt), title="rights statement")
    check = api.read(signed)
    if check.errors or check.permissions != api.read(unsigned).permissions or any(
            c.values.get("validation_state") == "Invalid" for c in check.carriers):
        raise WriteError("the signed file did not read back as written; nothing returned")
    return signed, store


def _assertion_of(report: Any, fallback: Any) -> dict[str, Any]:
    """``fallback``'s JSON with the work id the file's exact record holds, when it holds one."""
    out: dict[str, Any] = fallback.to_json()
    work_id = next((found.raw["WorkID"] for found in report.signals if found.exact and found.raw.get("WorkID")), None)
    if work_id:
        out["work_id"] = str(work_id)
    return out


def _write(out: str, data: bytes) -> None:
    # Truncated, not exclusive: a job run again after its pool broke (the server's _State.run) may
    # find what its killed first run wrote. ``out`` is in the request's own folder of the server's
    # private one (0700), named by the server.
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _sanitize(path: str, name: str, out: str, keep: str) -> dict[str, Any]:
    from ..sanitize import sanitize_bytes

    if (answer := _answered(out)) is not None:
        return answer
    result = sanitize_bytes(_read_bytes(path), keep=keep, identity=_STATE.get("identity"))
    registration = None if result.manifest is None else _registration(
        result.data, result.format, result.assertion_json, result.carriers, name, manifest=result.manifest)
    return _deliver(out, result.data, {"file": out, "format": result.format, "removed": result.removed,
                                       "carriers": result.carriers}, registration)


def _carry(original: str, derivative: str, name: str, out: str, new_work: bool = False) -> dict[str, Any]:
    from ..carry import carry_bytes

    if (answer := _answered(out)) is not None:
        return answer
    result = carry_bytes(_read_bytes(original), _read_bytes(derivative), identity=_STATE.get("identity"), new_work=new_work)
    registration = _registration(result.data, result.format, result.assertion_json, result.carriers, name,
                                 parent=None if new_work else result.parent_work_id, manifest=result.manifest)
    return _deliver(out, result.data, {"file": out, "format": result.format, "work_id": None,
                                       "parent_work_id": result.parent_work_id, "carriers": result.carriers}, registration)


def _by_content(path: str, limit: int, hint: str | None = None) -> dict[str, Any]:
    from .. import api, cropsearch
    from ..fingerprint import fingerprint
    from . import registry

    data = _read_bytes(path)
    report = api.read(data)
    if report.format is None:
        return problem(415, "Unsupported asset type", "; ".join(report.errors) or "not a format rightsmeta knows")
    ledger = _ledger()
    if ledger is None:
        return {"json": {"matches": []}}
    found = ledger.essence_of(data, report.format)
    if found.kind is None:  # nothing to compare: "no matches" would claim a search that never ran
        return problem(415, "Unsupported asset type", found.reason or f"content of {report.format} files is not matched")
    matches: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add(hit: dict[str, Any]) -> None:
        if hit["manifestId"] not in seen and len(matches) < limit:
            seen.add(hit["manifestId"])
            matches.append(hit)

    code = fingerprint(data, report.format)
    for hit in registry.by_binding(ledger.path, registry.ALG, code, limit) if code else ():
        add(hit)
    if found.decoded:
        for match in cropsearch.matches(ledger, found, limit=limit):  # uneven crops of images too
            add({"manifestId": registry.manifest_id_for_work(ledger.path, match.work.id),
                 "similarityScore": 100 if match.exact else max(0, min(100, round(100 * (1 - match.distance))))})
    if hint:
        # The client's hint (hintAlg/hintValue, a soft binding it holds) last, each scored no higher
        # than the content's own code is near the hint: a hint is a claim, and an unrelated picture
        # sent with another work's code must not push the content's matches out or score 100.
        near = registry.similarity(code, hint) if code else 0
        for hit in registry.by_binding(ledger.path, registry.ALG, hint, limit):
            add({**hit, "similarityScore": min(hit["similarityScore"], near)})
    if not found.decoded and not matches:
        # A soft binding may still match (audio past the ledger's duration bound: its code reads
        # the first 120 s); only a search that found nothing and could not be completed is refused.
        return problem(422, "Cannot fingerprint this file", found.reason or "its content could not be decoded")
    return {"json": {"matches": matches}}


_JOBS: dict[str, Any] = {
    "read": _read, "verify": _verify, "tag": _tag, "sanitize": _sanitize, "carry": _carry, "by_content": _by_content,
}
