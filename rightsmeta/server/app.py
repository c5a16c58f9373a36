"""The upload-gate service: an ASGI app (Starlette) over the library.

Uploads are streamed into a private temporary folder under a size cap (413) and a time cap
(408); the file type is sniffed from the bytes by the library, never taken from Content-Type or
a file name, and every path is one this module made. Decoding runs in a pool of worker
processes (rightsmeta/server/jobs.py): at most ``workers`` at once, ``backlog`` more waiting,
503 with Retry-After beyond. Every error is an RFC 9457 problem document.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hmac
import json
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

import anyio
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .. import __version__
from ..errors import NOT_JSON
from . import jobs, openapi
from .config import ServerConfig

if TYPE_CHECKING:
    import uvicorn

    from .batches import Batches

PROBLEM = "application/problem+json"
_CHUNK = 64 * 1024
# A multipart body is the file plus its boundaries and small fields (the statement, at most 256 KiB
# each): the upload limit is the file's, so a file just under it is not refused for the few hundred
# bytes around it (the page's form adds 351 to a file: measured). Each file part is checked alone.
_FORM_ROOM = 1024 * 1024
_EXTENSIONS = {"jpeg": "jpg", "tiff": "tif"}


class Problem(Exception):
    """An RFC 9457 problem: raised anywhere in a request, rendered by ``_problem``."""

    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers or {}


def _problem_response(status: int, title: str, detail: str, headers: dict[str, str] | None = None,
                      instance: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return _problem_response(exc.status, exc.title, exc.detail, exc.headers, request.url.path)


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    titles = {404: "Not found", 405: "Method not allowed"}
    return _problem_response(exc.status_code, titles.get(exc.status_code, "HTTP error"), str(exc.detail),
                             dict(exc.headers or {}), request.url.path)


async def _on_error(request: Request, exc: Exception) -> Response:
    return _problem_response(500, "Internal error", f"the server failed ({type(exc).__name__}); please report it",
                             instance=request.url.path)


@dataclass
class _State:
    config: ServerConfig
    folder: str = ""
    held: int = -1  # the descriptor holding the folder's lock (server/folder.py)
    executor: ProcessPoolExecutor | None = None
    batches: Batches | None = None  # made at start, in this server's private folder
    pending: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    alone: asyncio.Semaphore = field(init=False)  # jobs run again in a process of their own, ``workers`` at once

    def __post_init__(self) -> None:
        self.alone = asyncio.Semaphore(self.config.workers)

    def start(self) -> None:
        from . import folder
        from .batches import Batches

        self.folder, self.held = folder.make()

        cfg = self.config
        os.mkdir(os.path.join(self.folder, "batches"), 0o700)
        self.batches = Batches(os.path.join(self.folder, "batches"), max_bytes=cfg.batch_bytes, max_files=cfg.batch_files,
                               max_batches=cfg.batches, seconds=cfg.batch_seconds)
        self.executor = self._pool()

    def _pool(self, workers: int | None = None) -> ProcessPoolExecutor:
        from ..pool import executor  # forkserver: workers never inherit the server's threads or sockets

        cfg = self.config
        return executor(workers or cfg.workers, jobs.init, (cfg.ledger, cfg.identity, cfg.job_seconds, cfg.memory, True))

    @property
    def signing(self) -> bool:
        return self.config.identity is not None and jobs.has_identity(self.config.identity)

    async def make_identity(self, holder: str) -> None:
        """Create the identity, then start fresh workers that load it; running jobs finish on the old ones."""
        folder = self.config.identity
        if folder is None:
            raise Problem(403, "Forbidden", "this server was started without --identity, so it has nowhere to keep one")
        async with self.lock:
            if self.signing:
                raise Problem(409, "Identity exists", "this server already has a signing identity")
            from pathlib import Path

            from ..keys import make_identity, save_identity

            await anyio.to_thread.run_sync(lambda: save_identity(make_identity(holder), Path(folder)))
            old, self.executor = self.executor, self._pool()
            if old is not None:
                old.shutdown(wait=False)

    def stop(self) -> None:
        from . import folder

        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        folder.remove(self.folder, self.held)

    async def run(self, job: str, args: dict[str, Any]) -> dict[str, Any]:
        cfg = self.config
        if self.pending >= cfg.workers + cfg.backlog:
            raise Problem(503, "Busy", f"{self.pending} uploads are being processed or waiting; try again shortly",
                          {"Retry-After": "1"})
        self.pending += 1
        try:
            executor = self.executor
            assert executor is not None
            try:
                return _reported(job, await self._on(executor, job, args))
            except BrokenProcessPool:
                async with self.lock:
                    if self.executor is executor:
                        executor.shutdown(wait=False, cancel_futures=True)
                        self.executor = self._pool()
            # A dead worker fails every job of its pool, and an idle one the next job sent: each runs
            # again alone, so only the upload that kills a process of its own is refused.
            async with self.alone:
                alone = self._pool(1)
                try:
                    return _reported(job, await self._on(alone, job, args))
                except BrokenProcessPool:
                    raise Problem(422, "Cannot process this file",
                                  "the worker decoding this upload died (out of memory or a crash in a decoder)") from None
                finally:
                    alone.shutdown(wait=False, cancel_futures=True)
        finally:
            self.pending -= 1
            jobs.forget(args)

    async def _on(self, executor: ProcessPoolExecutor, job: str, args: dict[str, Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        try:
            # The worker's own alarm fires first; this outer bound covers a worker stuck outside Python.
            return await asyncio.wait_for(loop.run_in_executor(executor, jobs.run, job, args), self.config.job_seconds + 30)
        except TimeoutError:
            raise Problem(503, "Timed out", "the upload was not processed in time", {"Retry-After": "5"}) from None


def _reported(job: str, result: dict[str, Any]) -> dict[str, Any]:
    """``result`` without the traceback a worker sent of a failure of ours, which is logged here."""
    trace = result.pop("trace", None)
    if trace is not None:
        # uvicorn's error log: the one the operator reads (the "rightsmeta" logger has no handler here).
        logging.getLogger("uvicorn.error").error("job %r failed; please report it:\n%s", job, trace.rstrip())
    return result


@overload
def _query(request: Request, name: str) -> str | None: ...
@overload
def _query(request: Request, name: str, default: str) -> str: ...
def _query(request: Request, name: str, default: str | None = None) -> str | None:
    """The query parameter ``name``, refused when sent more than once: frameworks disagree on which
    of two is "the" value (Flask takes the first, Starlette the last), as for multipart fields."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise Problem(400, "Ambiguous query", f"the parameter {name!r} is sent more than once; send it once")
    return values[0] if values else default


def _state(request: Request) -> _State:
    state: _State = request.app.state.rightsmeta
    return state


def _authorise(request: Request, *, write: bool) -> None:
    cfg = _state(request).config
    if not write and not cfg.protect_reads:
        return
    if cfg.token is None:
        raise Problem(403, "Forbidden", "this server has no token configured (--token-file), so it accepts no writes")
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise Problem(401, "Unauthorized", "send 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"})
    # Constant time: a byte-by-byte compare would tell an attacker how much of a guess was right.
    if not hmac.compare_digest(given.strip().encode(), cfg.token.encode()):
        raise Problem(401, "Unauthorized", "the bearer token is not valid", {"WWW-Authenticate": 'Bearer error="invalid_token"'})


@dataclass
class _Upload:
    folder: str
    files: dict[str, str] = field(default_factory=dict)  # form field -> path we made
    names: dict[str, str] = field(default_factory=dict)  # form field -> client's file name, a label only
    fields: dict[str, str] = field(default_factory=dict)


async def _received(request: Request) -> AsyncIterator[bytes]:
    """The body's chunks. A client that goes away mid-body (a phone losing its signal) ends the
    request as a problem nobody reads, not as a traceback of fifty lines in the log."""
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        raise Problem(400, "Upload interrupted", "the client closed the connection before the body ended") from None


async def _small_body(request: Request, limit: int, detail: str) -> bytes:
    """A small body read whole, refused past ``limit`` bytes whatever Content-Length says (or does not)."""
    raw = b""
    async for chunk in _received(request):
        raw += chunk
        if len(raw) > limit:
            raise Problem(413, "Body too large", detail)
    return raw


async def _body_to(request: Request, path: str, cfg: ServerConfig) -> int:
    limit = cfg.max_upload + (_FORM_ROOM if request.headers.get("content-type", "").lower().startswith("multipart/") else 0)
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise Problem(413, "Upload too large", f"the body is {int(declared)} bytes; at most {cfg.max_upload} are accepted")
        except ValueError:
            raise Problem(400, "Bad request", "Content-Length is not a number") from None
    size = 0
    try:
        with anyio.fail_after(cfg.upload_seconds), open(path, "wb") as fh:
            async for chunk in _received(request):
                size += len(chunk)
                if size > limit:
                    raise Problem(413, "Upload too large", f"the body is more than {cfg.max_upload} bytes")
                fh.write(chunk)
    except TimeoutError:
        raise Problem(408, "Upload too slow", f"the body was not received within {cfg.upload_seconds:g} s") from None
    return size


@contextlib.asynccontextmanager
async def _upload(request: Request) -> AsyncIterator[_Upload]:
    state = _state(request)
    folder = tempfile.mkdtemp(dir=state.folder)
    try:
        upload = _Upload(folder)
        raw = os.path.join(folder, "body")
        await _body_to(request, raw, state.config)
        ctype = request.headers.get("content-type", "")
        if ctype.lower().startswith("multipart/"):
            await _multipart(request, raw, upload)
        else:
            upload.files["file"] = raw
        yield upload
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def _multipart(request: Request, raw: str, upload: _Upload) -> None:
    async def chunks() -> AsyncGenerator[bytes, None]:
        with open(raw, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                yield chunk

    try:
        form = await MultiPartParser(request.headers, chunks(), max_files=4, max_fields=8, max_part_size=256 * 1024).parse()
    except (MultiPartException, ValueError, KeyError) as exc:
        raise Problem(400, "Bad multipart body", f"the multipart body cannot be parsed: {exc}") from None
    try:
        for n, (key, value) in enumerate(form.multi_items()):
            if key in upload.files or key in upload.fields:
                # Frameworks disagree on which of two parts named alike is "the" file (Flask takes the
                # first, Starlette the last): a platform could store one while this server judged the other.
                raise Problem(400, "Ambiguous multipart body", f"the field {key!r} is sent more than once; send it once")
            if isinstance(value, UploadFile):
                path = os.path.join(upload.folder, f"part{n}")
                with open(path, "wb") as out:
                    while chunk := await value.read(_CHUNK):
                        out.write(chunk)
                upload.files[key] = path
                upload.names[key] = (value.filename or key)[:200]
                if (size := os.path.getsize(path)) > _state(request).config.max_upload:
                    raise Problem(413, "Upload too large", f"the file {upload.names[key]!r} is {size} bytes; "
                                  f"at most {_state(request).config.max_upload} are accepted")
            else:
                upload.fields[key] = value
    finally:
        await form.close()
    os.unlink(raw)


def _need(upload: _Upload, name: str) -> str:
    path = upload.files.get(name)
    if path is None:
        raise Problem(400, "Missing file", f"send the file as the raw body or as the multipart field {name!r}")
    if os.path.getsize(path) == 0:
        # The client's own name for it when it gave one (a multipart upload); "the file 'file'" named the form field.
        label = upload.names.get(name)
        raise Problem(400, "Empty upload", f"the file {label!r} is empty (0 bytes)" if label else "the upload is empty (0 bytes)")
    return path


def _result(result: dict[str, Any]) -> Response:
    if "problem" in result:
        p = result["problem"]
        raise Problem(int(p["status"]), str(p["title"]), str(p["detail"]))
    if "json" in result:
        body = result["json"]
        # A file that could not be read is refused as a problem, the full report or verdict beside it (RFC 9457 extension).
        if body.get("status") == "unreadable" or (body.get("format") is None and body.get("errors")):
            member = "verdict" if "status" in body else "report"
            detail = "; ".join(body.get("reasons") or body.get("errors") or ["unreadable"])
            return JSONResponse({"type": "about:blank", "title": "Unreadable file", "status": 422, "detail": detail, member: body},
                                status_code=422, media_type=PROBLEM)
        return JSONResponse(body)
    raise AssertionError("a file result is sent by _file_response")


async def _json_job(request: Request, job: str, **extra: Any) -> Response:
    async with _upload(request) as upload:
        path = _need(upload, "file")
        name = upload.names.get("file", "upload")
        return _result(await _state(request).run(job, {"path": path, "name": name, **extra}))


async def _file_job(request: Request, job: str, args: dict[str, Any], upload: _Upload, stem: str) -> Response:
    state = _state(request)
    # The output lives in its own folder, removed once the response is sent.
    keep = tempfile.mkdtemp(dir=state.folder)
    out = os.path.join(keep, "out")
    try:
        result = await state.run(job, {**args, "out": out})
        if "problem" in result:
            _result(result)
    except BaseException:
        shutil.rmtree(keep, ignore_errors=True)
        raise
    fmt = str(result.get("format") or "bin")
    from ..carriers.manifest import MEDIA_TYPES

    headers = {"Content-Disposition": f'attachment; filename="{stem}.{_EXTENSIONS.get(fmt, fmt)}"'}
    if result.get("work_id"):
        headers["X-Rightsmeta-Work-Id"] = str(result["work_id"])
    if result.get("carriers"):
        headers["X-Rightsmeta-Carriers"] = ",".join(result["carriers"])
    if result.get("removed") is not None:
        headers["X-Rightsmeta-Removed"] = str(len(result["removed"]))
    media_type = MEDIA_TYPES.get(fmt, "application/octet-stream")
    return FileResponse(out, media_type=media_type, headers=headers,
                        background=BackgroundTask(shutil.rmtree, keep, True))


# --- endpoints -----------------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    cfg = _state(request).config
    return JSONResponse({"status": "ok", "version": __version__, "workers": cfg.workers,
                         "signing": _state(request).signing, "can_make_identity": cfg.identity is not None,
                         "ledger": cfg.ledger is not None, "max_upload": cfg.max_upload})


async def home(request: Request) -> Response:
    from .ui import HEADERS, page

    return HTMLResponse(page(), headers=HEADERS)


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi.spec())


async def docs(request: Request) -> Response:
    return HTMLResponse(openapi.docs_page())


async def identity(request: Request) -> Response:
    _authorise(request, write=True)
    raw = await _small_body(request, 4096, 'send {"holder": "Your Name"} (at most 4 KiB) or nothing')
    try:
        body = json.loads(raw) if raw else {}
    except NOT_JSON:
        body = None
    holder = body.get("holder") if isinstance(body, dict) else None
    if holder is not None and (not isinstance(holder, str) or not 0 < len(holder.strip()) <= 200):
        raise Problem(400, "Bad holder", "holder is a name of 1 to 200 characters")
    if not isinstance(body, dict):
        raise Problem(400, "Bad request", 'send {"holder": "Your Name"} or nothing')
    state = _state(request)
    await state.make_identity((holder or "rightsmeta user").strip())
    return JSONResponse({"signing": state.signing}, status_code=201)


async def read(request: Request) -> Response:
    _authorise(request, write=False)
    return await _json_job(request, "read")


async def verify(request: Request) -> Response:
    _authorise(request, write=False)
    return await _json_job(request, "verify")


async def tag(request: Request) -> Response:
    _authorise(request, write=True)
    async with _upload(request) as upload:
        path = _need(upload, "file")
        assertion = statement_of(upload, request)
        return await _file_job(request, "tag", {"path": path, "name": upload.names.get("file", "upload"),
                                                "assertion": assertion}, upload, "tagged")


def statement_of(upload: _Upload, request: Request) -> dict[str, Any]:
    """The statement to write: the multipart field (or query parameter) 'assertion', a JSON object."""
    text = upload.fields.get("assertion") or _query(request, "assertion")
    if not text:
        raise Problem(400, "Missing assertion", "send the statement as the multipart field 'assertion' (JSON, schemas/assertion.schema.json)")
    try:
        assertion = json.loads(text)
    except NOT_JSON as exc:
        raise Problem(400, "Bad assertion", f"'assertion' is not JSON: {exc}") from None
    if not isinstance(assertion, dict):
        raise Problem(400, "Bad assertion", "'assertion' must be a JSON object")
    return assertion


async def sanitize(request: Request) -> Response:
    _authorise(request, write=True)
    keep = _query(request, "keep", "rights")
    if keep not in ("rights", "rights,credit"):
        raise Problem(400, "Bad keep", "keep is 'rights' or 'rights,credit'")
    async with _upload(request) as upload:
        path = _need(upload, "file")
        return await _file_job(request, "sanitize", {"path": path, "name": upload.names.get("file", "upload"), "keep": keep},
                               upload, "sanitized")


async def carry(request: Request) -> Response:
    _authorise(request, write=True)
    new_work = _query(request, "newWork", "false")
    if new_work not in ("true", "false"):
        raise Problem(400, "Bad newWork", "newWork is 'true' or 'false'")
    async with _upload(request) as upload:
        original, derivative = _need(upload, "original"), _need(upload, "derivative")
        return await _file_job(request, "carry", {"original": original, "derivative": derivative, "new_work": new_work == "true",
                                                  "name": upload.names.get("derivative", "derivative")}, upload, "derivative")


def _max_results(request: Request) -> int:
    """The C2PA API sets no upper bound on maxResults: a larger one is answered with at most 100."""
    text = _query(request, "maxResults", "10")
    try:
        value = int(text)
    except ValueError:
        raise Problem(400, "Bad maxResults", "maxResults is a whole number, at least 1") from None
    if value < 1:
        raise Problem(400, "Bad maxResults", "maxResults is a whole number, at least 1")
    return min(value, 100)


def _registry_path(request: Request) -> str | None:
    return _state(request).config.ledger


async def _binding_answer(request: Request, alg: str, value: str) -> Response:
    from . import registry

    if alg != registry.ALG:
        raise Problem(400, "Unsupported algorithm", f"this service resolves {registry.ALG} soft bindings only")
    if len(value) > 512 or registry.parse_value(value) is None:
        raise Problem(400, "Invalid query value", "value is an ISCC code (ISCC:..., or base64 of it)")
    limit = _max_results(request)
    ledger = _registry_path(request)
    if ledger is None or not os.path.exists(ledger):
        return JSONResponse({"matches": []})
    matches = await anyio.to_thread.run_sync(registry.by_binding, ledger, alg, value, limit)
    return JSONResponse({"matches": matches})


async def by_binding(request: Request) -> Response:
    _authorise(request, write=False)
    if request.method == "POST":
        raw = await _small_body(request, 65536, "a soft binding query is at most 64 KiB")
        try:
            body = json.loads(raw)
        except NOT_JSON:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("alg"), str) or not isinstance(body.get("value"), str):
            raise Problem(400, "Invalid query", 'send {"alg": "io.iscc.v0", "value": "..."} (at most 64 KiB)')
        return await _binding_answer(request, body["alg"], body["value"])
    alg, value = _query(request, "alg"), _query(request, "value")
    if not alg or not value:
        raise Problem(400, "Invalid query", "alg and value are required")
    return await _binding_answer(request, alg, value)


async def by_content(request: Request) -> Response:
    _authorise(request, write=False)
    alg = _query(request, "alg")
    if alg not in (None, "io.iscc.v0"):
        raise Problem(400, "Unsupported algorithm", "this service matches content with io.iscc.v0 and its own ledger fingerprints")
    limit = _max_results(request)
    hint = _hint(request)
    async with _upload(request) as upload:
        path = _need(upload, "file")
        return _result(await _state(request).run("by_content", {"path": path, "limit": limit, "hint": hint}))


def _hint(request: Request) -> str | None:
    """The C2PA API's hintAlg and hintValue: a soft binding the client already holds (a watermark
    it decoded), to aid the search; its matches rank first. One the service cannot resolve is
    refused, never ignored: the client would take the answer for a search that used it."""
    from . import registry

    alg, value = _query(request, "hintAlg"), _query(request, "hintValue")
    if alg is None and value is None:
        return None
    if alg is None or value is None:
        raise Problem(400, "Invalid query", "hintAlg and hintValue are sent together")
    if alg != registry.ALG:
        raise Problem(400, "Unsupported algorithm", f"this service resolves {registry.ALG} soft bindings only (hintAlg)")
    if len(value) > 512 or registry.parse_value(value) is None:
        raise Problem(400, "Invalid query value", "hintValue is an ISCC code (ISCC:..., or base64 of it)")
    return value


async def manifest(request: Request) -> Response:
    _authorise(request, write=False)
    from . import registry

    manifest_id = request.path_params["manifestId"]
    # The C2PA API's returnActiveManifest: only the active manifest, not the whole store (false).
    # Read, never ignored: a client asking for the active manifest alone must not get more unsaid.
    active = _query(request, "returnActiveManifest", "false")
    if active not in ("true", "false"):
        raise Problem(400, "Invalid query value", "returnActiveManifest is 'true' or 'false'")
    ledger = _registry_path(request)
    if len(manifest_id) > 200 or ledger is None or not os.path.exists(ledger):
        raise Problem(404, "Not found", "no manifest with this identifier")
    data, store, work_id = await anyio.to_thread.run_sync(registry.manifest, ledger, manifest_id)
    if data is not None:
        if active == "true":
            data = registry.active_only(data)
            if data is None:
                raise Problem(500, "Internal error", "the stored manifest store could not be read; please report it")
        return Response(data, media_type="application/c2pa")
    if work_id is None and manifest_id.startswith("urn:uuid:"):
        work_id = manifest_id.removeprefix("urn:uuid:")
    work = await anyio.to_thread.run_sync(_work, ledger, work_id) if work_id else None
    if work is None and store is None:
        raise Problem(404, "Not found", "no manifest with this identifier")
    # No stored manifest bytes (the work was tagged without the service signing it): the statement instead.
    parsed = json.loads(store) if store else None
    if active == "true" and isinstance(parsed, dict):
        label = parsed.get("active_manifest")
        parsed = {"active_manifest": label, "manifests": {label: parsed.get("manifests", {}).get(label)}}
    return JSONResponse({"manifestId": manifest_id, "work": work, "manifestStore": parsed})


def _work(ledger: str, work_id: str) -> dict[str, Any] | None:
    from ..ledger import Ledger

    with Ledger.open(ledger, readonly=True) as db:
        work = db.get(work_id)
    if work is None:
        return None
    out = work.to_json()
    out.pop("path", None)  # the tagging machine's file layout is not the registry's business
    return out


async def supported(request: Request) -> Response:
    return JSONResponse({"watermarks": [], "fingerprints": [{"alg": "io.iscc.v0"}]})


def create_app(config: ServerConfig) -> Starlette:
    """The ASGI application; the worker pool starts and stops with it (lifespan)."""
    state = _State(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.start()
        try:
            yield
        finally:
            state.stop()

    routes = [
        Route("/", home, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/v1/identity", identity, methods=["POST"]),
        Route("/v1/read", read, methods=["POST"]),
        Route("/v1/verify", verify, methods=["POST"]),
        Route("/v1/tag", tag, methods=["POST"]),
        Route("/v1/sanitize", sanitize, methods=["POST"]),
        Route("/v1/carry", carry, methods=["POST"]),
        Route("/matches/byBinding", by_binding, methods=["GET", "POST"]),
        Route("/matches/byContent", by_content, methods=["POST"]),
        Route("/manifests/{manifestId:str}", manifest, methods=["GET"]),
        Route("/services/supportedAlgorithms", supported, methods=["GET"]),
    ]
    from . import batches

    routes += batches.routes()
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={Problem: _on_problem, HTTPException: _on_http, Exception: _on_error})
    app.state.rightsmeta = state
    return app


class _HideBatchIds(logging.Filter):
    """A batch's id is the capability to download its files: an access line names the route, not the id."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 5:  # uvicorn's (client, method, path, version, status)
            args = list(record.args)
            args[2] = _BATCH_ID.sub(r"\1{batch}", str(args[2]))
            record.args = tuple(args)
        return True


_BATCH_ID = re.compile(r"^(/v1/batches/)[^/?]+")


def _log_config(access: bool) -> dict[str, Any]:
    """uvicorn's logging at warnings, plus (``access``) one line per request, as platforms expect."""
    from uvicorn.config import LOGGING_CONFIG

    settings: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    settings["filters"] = {"batch_ids": {"()": _HideBatchIds}}
    settings["handlers"]["access"]["filters"] = ["batch_ids"]
    for name in ("uvicorn", "uvicorn.error"):
        settings["loggers"][name]["level"] = "WARNING"
    settings["loggers"]["uvicorn.access"]["level"] = "INFO" if access else "WARNING"
    return settings


def uvicorn_config(config: ServerConfig, host: str = "127.0.0.1", port: int = 8000, *, access_log: bool = True) -> uvicorn.Config:
    """The uvicorn settings of the service: its guarded protocol (rightsmeta/server/protocol.py)."""
    import uvicorn

    from .protocol import HEAD_LIMIT, protocol

    return uvicorn.Config(create_app(config), host=host, port=port, log_config=_log_config(access_log), log_level=None,
                          timeout_keep_alive=5, limit_concurrency=config.workers + config.backlog + 64,
                          h11_max_incomplete_event_size=HEAD_LIMIT,
                          http=protocol(config.head_seconds, config.send_seconds))


def listen(host: str = "127.0.0.1", port: int = 8000) -> socket.socket:
    """A socket bound to ``host``:``port`` (0: a free port), before anything is said about it: the
    server printed its address and then found the port taken (uvicorn binds late), and printed port 0
    as it was given. Raises OSError (the port taken, the address not this machine's)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a restart need not wait for TIME_WAIT
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def serve(config: ServerConfig, host: str = "127.0.0.1", port: int = 8000, *, access_log: bool = True,
          sock: socket.socket | None = None) -> None:
    """Run the service on ``sock`` (from ``listen``), else on ``host``:``port``."""
    import uvicorn

    if sock is not None:
        host, port = sock.getsockname()[:2]
    server = uvicorn.Server(uvicorn_config(config, host, port, access_log=access_log))
    server.run(sockets=None if sock is None else [sock])
