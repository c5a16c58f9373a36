"""Batches: many tagged files kept on the server's disk, downloaded one by one or as one streamed zip.

The creators' page tags a folder of hundreds of files; holding them in the browser (or the server)
until a zip is built would need the whole set in memory. Instead each tagged file is written into a
private folder of its batch, and the zip is written member by member into the response as it is
sent (stored, no compression: media files are compressed already), so neither side holds more than
a chunk. Batches are bounded in number, files, bytes on disk and idle age; expired ones are removed
on the next batch request and all of them when the server stops.

Identifiers are random (``secrets``), made here; a request's identifier is only ever a key into a
dict, never part of a path, and file names given by the client are labels inside the zip only
(relative, no ``..``, no drive letters). A batch identifier is a capability: knowing it lets one
download the batch (a browser's download link cannot send a bearer token), so it is only handed to
a client that sent the write token, it is 144 random bits, and it expires.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse

from .app import Problem, _authorise, _need, _state, _upload, statement_of

_CHUNK = 256 * 1024
_DISK_MARGIN = 512 * 1024 * 1024
_ID = re.compile(r"[A-Za-z0-9_-]{24}")


def _key(name: str) -> str:
    """What makes two zip members one file once extracted: macOS and Windows ignore case, and
    macOS the Unicode form (an "é" typed on Linux and one named on a Mac)."""
    return unicodedata.normalize("NFC", name).casefold()


@dataclass
class Member:
    name: str  # the label inside the zip: relative, sanitised, unique in its batch
    path: str  # a path this module made
    size: int


@dataclass
class Batch:
    id: str
    folder: str
    touched: float
    members: list[Member] = field(default_factory=list)
    failed: int = 0
    reserved: int = 0  # bytes promised to uploads still being tagged
    busy: int = 0  # uploads being tagged and downloads being sent: an expiry waits for them
    names: set[str] = field(default_factory=set)  # the members' _key
    deleted: bool = False
    size: int = 0  # bytes of its members, kept as a sum so a check is not a walk over every file


class Batches:
    """The live batches of one server; safe to call from the event loop and from download threads."""

    def __init__(self, root: str, *, max_bytes: int, max_files: int, max_batches: int, seconds: float) -> None:
        self.root, self.max_bytes, self.max_files = root, max_bytes, max_files
        self.max_batches, self.seconds = max_batches, seconds
        self._lock = threading.Lock()
        self._live: dict[str, Batch] = {}

    def _sweep(self, now: float) -> None:
        for key, batch in list(self._live.items()):
            if batch.busy == 0 and now - batch.touched > self.seconds:
                del self._live[key]
                shutil.rmtree(batch.folder, ignore_errors=True)

    def used(self) -> int:
        return sum(b.size + b.reserved for b in self._live.values())

    def create(self) -> Batch:
        with self._lock:
            now = time.monotonic()
            self._sweep(now)
            if len(self._live) >= self.max_batches:
                raise Problem(503, "Too many batches", f"{len(self._live)} batches are kept already; "
                              "download or delete one, or wait until they expire", {"Retry-After": "60"})
            folder = tempfile.mkdtemp(prefix="batch-", dir=self.root)
            batch = Batch(secrets.token_urlsafe(18), folder, now)
            self._live[batch.id] = batch
            return batch

    def get(self, batch_id: str) -> Batch:
        with self._lock:
            self._sweep(time.monotonic())
            batch = self._live.get(batch_id) if _ID.fullmatch(batch_id) else None
            if batch is None:
                raise Problem(404, "Not found", "no such batch (batches expire after "
                              f"{self.seconds / 60:g} minutes without use)")
            batch.touched = time.monotonic()
            return batch

    def reserve(self, batch: Batch, size: int) -> None:
        """Room for one more file of about ``size`` bytes (a tagged file is its upload plus a little)."""
        # Past the space of all batches together, no new batch would take it: a 507 (full, start
        # another) sent the creators' page round that loop for ever. This one file is refused.
        if size > self.max_bytes:
            raise Problem(413, "Too large for batches", f"this file can never fit: with room for tagging it needs "
                          f"{-(-size // 2**20)} MiB, and this server keeps {self.max_bytes // 2**20} MiB for all "
                          "tagged files together (rightsmeta serve --batch-mb)")
        with self._lock:
            if len(batch.members) + batch.busy >= self.max_files:
                raise Problem(413, "Batch full", f"a batch holds at most {self.max_files} files; start another")
            if self.used() + size > self.max_bytes:
                raise Problem(507, "Out of space for batches", f"tagged files kept for download would exceed "
                              f"{self.max_bytes // 2**20} MiB; download and delete a batch first")
            # The machine's disk is shared with everything else on it: never fill it.
            free = shutil.disk_usage(self.root).free - sum(b.reserved for b in self._live.values())
            if free - size < _DISK_MARGIN:
                raise Problem(507, "Disk nearly full", f"{max(free, 0) // 2**20} MiB free where tagged files are kept; "
                              f"this server keeps {_DISK_MARGIN // 2**20} MiB free")
            batch.reserved += size
            batch.busy += 1

    def settle(self, batch: Batch, size: int, member: Member | None) -> int:
        """Release the reservation; the new member's index in the batch (-1 for a failure)."""
        with self._lock:
            batch.reserved -= size
            batch.busy -= 1
            batch.touched = time.monotonic()
            self._drop_if_done(batch)
            if member is None:
                batch.failed += 1
                return -1
            batch.members.append(member)
            batch.size += member.size
            return len(batch.members) - 1

    def label(self, batch: Batch, client_name: str) -> str:
        """A unique, harmless name inside the zip for the client's file name (a label, never a path here)."""
        parts = [p for p in re.split(r"[\\/]+", client_name) if p not in ("", ".", "..")]
        parts = [re.sub(r"[\x00-\x1f\x7f:]", "_", p)[:120] for p in parts][-8:]
        name = "/".join(parts) or "file"
        with self._lock:
            stem, dot, ext = name.rpartition(".")
            candidate, n = name, 1
            while _key(candidate) in batch.names:
                n += 1
                candidate = f"{stem}-{n}.{ext}" if dot and stem else f"{name}-{n}"
            batch.names.add(_key(candidate))
            return candidate

    def hold(self, batch: Batch) -> list[Member]:
        with self._lock:
            batch.busy += 1
            return list(batch.members)

    def release(self, batch: Batch) -> None:
        with self._lock:
            batch.busy -= 1
            batch.touched = time.monotonic()
            self._drop_if_done(batch)

    def delete(self, batch: Batch) -> None:
        """Gone for new requests at once; its folder goes when the last upload or download using it ends."""
        with self._lock:
            self._live.pop(batch.id, None)
            batch.deleted = True
            self._drop_if_done(batch)

    def _drop_if_done(self, batch: Batch) -> None:
        if batch.deleted and batch.busy == 0:
            shutil.rmtree(batch.folder, ignore_errors=True)


class _Sink(io.RawIOBase):
    """What zipfile writes into: collected until the response takes it. Not seekable, so zipfile
    writes data descriptors after each member instead of seeking back to patch its header."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.pending = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self.pending += len(chunk)
        return len(chunk)

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        self.pending = 0
        return out


def zip_stream(members: list[Member], done: Callable[[], None]) -> Iterator[bytes]:
    """The zip of ``members``, produced chunk by chunk (at most about 2 x _CHUNK held at once)."""
    sink = _Sink()
    try:
        with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for member in members:
                info = zipfile.ZipInfo(member.name, time.localtime()[:6])
                info.file_size = member.size  # lets zipfile pick zip64 headers up front for large members
                info.external_attr = 0o644 << 16
                with open(member.path, "rb") as src, archive.open(info, "w") as dest:
                    while chunk := src.read(_CHUNK):
                        dest.write(chunk)
                        if sink.pending >= _CHUNK:
                            yield sink.take()
                yield sink.take()
        yield sink.take()
    finally:
        done()


def _store(request: Request) -> Batches:
    state = _state(request)
    if state.batches is None:
        raise Problem(503, "Not ready", "the server is starting")
    return state.batches


def _urls(batch: Batch) -> dict[str, str]:
    return {"files": f"/v1/batches/{batch.id}/files", "zip": f"/v1/batches/{batch.id}/zip"}


async def create(request: Request) -> Response:
    _authorise(request, write=True)
    store = _store(request)
    batch = store.create()
    return JSONResponse({"id": batch.id, **_urls(batch), "expires_after_seconds": store.seconds}, status_code=201)


async def add(request: Request) -> Response:
    """Tag one uploaded file into the batch; a failure is this file's answer, the batch goes on."""
    _authorise(request, write=True)
    store = _store(request)
    batch = store.get(request.path_params["batch"])
    # The upload's declared size (plus room for the statement and a signature) is held before it is received.
    try:
        declared = int(request.headers.get("content-length") or _state(request).config.max_upload)
    except ValueError:
        raise Problem(400, "Bad request", "Content-Length is not a number") from None
    need = declared + 256 * 1024
    store.reserve(batch, need)
    member: Member | None = None
    out = os.path.join(batch.folder, secrets.token_hex(12))
    try:
        async with _upload(request) as upload:
            path = _need(upload, "file")
            assertion = statement_of(upload, request)
            client_name = upload.names.get("file", "upload")
            result = await _state(request).run("tag", {"path": path, "name": client_name, "assertion": assertion, "out": out})
            if "problem" in result:
                p = result["problem"]
                raise Problem(int(p["status"]), str(p["title"]), str(p["detail"]))
            member = Member(store.label(batch, client_name), out, os.path.getsize(out))
    finally:
        if member is None and os.path.exists(out):
            os.unlink(out)
        index = store.settle(batch, need, member)
    return JSONResponse({"index": index, "name": member.name, "size": member.size, "format": result.get("format"),
                         "work_id": result.get("work_id"), "carriers": result.get("carriers"),
                         "download": f"/v1/batches/{batch.id}/files/{index}"}, status_code=201)


async def info(request: Request) -> Response:
    store = _store(request)
    batch = store.get(request.path_params["batch"])
    members = store.hold(batch)
    store.release(batch)
    return JSONResponse({"id": batch.id, **_urls(batch), "failed": batch.failed,
                         "files": [{"index": n, "name": m.name, "size": m.size} for n, m in enumerate(members)]})


def _disposition(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    ascii_name = re.sub(r'[^A-Za-z0-9._-]', "_", base) or "file"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(base)}"


async def one(request: Request) -> Response:
    store = _store(request)
    batch = store.get(request.path_params["batch"])
    members = store.hold(batch)
    index = request.path_params["index"]
    if not 0 <= index < len(members):
        store.release(batch)
        raise Problem(404, "Not found", f"this batch has {len(members)} tagged files (0 to {len(members) - 1})")
    member = members[index]
    return FileResponse(member.path, media_type="application/octet-stream", headers={"Content-Disposition": _disposition(member.name)},
                        background=BackgroundTask(store.release, batch))


async def download(request: Request) -> Response:
    store = _store(request)
    batch = store.get(request.path_params["batch"])
    members = store.hold(batch)
    once = threading.Lock()

    def done() -> None:
        if once.acquire(blocking=False):  # the stream's end and the response's end both report; count one
            store.release(batch)

    # A sync iterator: Starlette runs it in a worker thread, so file reads never block the event loop.
    return StreamingResponse(zip_stream(members, done), media_type="application/zip",
                             headers={"Content-Disposition": 'attachment; filename="tagged.zip"'},
                             background=BackgroundTask(done))


async def delete(request: Request) -> Response:
    _authorise(request, write=True)
    store = _store(request)
    store.delete(store.get(request.path_params["batch"]))
    return Response(status_code=204)


def routes() -> list[Any]:
    from starlette.routing import Route

    return [
        Route("/v1/batches", create, methods=["POST"]),
        Route("/v1/batches/{batch:str}", info, methods=["GET"]),
        Route("/v1/batches/{batch:str}", delete, methods=["DELETE"]),
        Route("/v1/batches/{batch:str}/files", add, methods=["POST"]),
        Route("/v1/batches/{batch:str}/files/{index:int}", one, methods=["GET"]),
        Route("/v1/batches/{batch:str}/zip", download, methods=["GET"]),
    ]

