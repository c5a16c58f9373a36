"""The Ray engine: the same scan as a Ray Data pipeline, so it runs unchanged on a cluster.

``ray.data.from_items(shards)`` -> ``map_batches(ShardDecider)`` (an actor pool, one shard per
call) -> the report rows stream back to the driver, while each actor writes its shards' filtered
copies. Shards are the unit of work rather than rows from ``read_webdataset``: that reader
re-packs members into columns (their tar headers are lost, so a kept sample could not be
written back byte-identical) and a truncated shard fails the whole job, where the scan must
report it and go on. Rows therefore equal the local engine's exactly.

For pipelines that already read rows with ``read_parquet`` / ``read_webdataset``,
:class:`SampleDecider` is the picklable callable class to give ``map_batches``.

Ray is optional: ``pip install 'rightsmeta[ray]'``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import tempfile
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..errors import NOT_JSON, UsageError
from ..model import Purpose, parse_purpose
from .local import _rows
from .report import COLUMNS, _arrow_schema
from .sample import decide_parts
from .shards import APART, Row, ScanOptions, _as_json, sample_ids, side_columns
from .sources import Shard

CONNECT_SECONDS = 5
INSTALL = "the Ray engine needs Ray Data: pip install 'rightsmeta[ray]'"


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError(INSTALL) from None
    return ray


#: Report rows an actor gives back at a time: a shard's rows are never held at once, by the actor
#: or by the driver (a shard of 100k samples is 100k rows).
BLOCK_ROWS = 4096


class ShardDecider:
    """Scans the shards of a batch (columns kind, path, name); yields their report rows, at most
    ``block_rows`` at a time."""

    def __init__(self, options: ScanOptions, block_rows: int = BLOCK_ROWS) -> None:
        self.options = options
        self.block_rows = block_rows

    def __call__(self, batch: dict[str, Any]) -> Iterator[Any]:
        import pyarrow as pa

        rows: list[Row] = []
        for kind, path, name in zip(batch["kind"], batch["path"], batch["name"], strict=True):
            for row in _rows(Shard(str(kind), str(path), str(name)), self.options):  # type: ignore[arg-type]
                rows.append({c: row.get(c) for c in COLUMNS})
                if len(rows) >= self.block_rows:
                    yield pa.Table.from_pylist(rows, schema=_arrow_schema())
                    rows = []
        if rows:
            yield pa.Table.from_pylist(rows, schema=_arrow_schema())


class SplitSampleError(ValueError):
    """A sample's rows came in two batches and the row of the earlier one was kept (see SampleDecider)."""


class SampleDecider:
    """A ``map_batches`` callable class for rows read by Ray Data itself.

        ds = ray.data.read_parquet("s3://bucket/laion/")
        split = find_split_ids(ds)                 # optional: see "split samples" below
        ds = ds.map_batches(SampleDecider, fn_constructor_kwargs={"purpose": "genai-training", "split_ids": split},
                            batch_format="pyarrow", concurrency=8)
        ds.filter(lambda row: row["rightsmeta_keep"]).write_parquet("s3://bucket/kept/")

    ``column`` names the bytes (``image``, a struct's ``image.bytes``, or for ``read_webdataset``
    rows a comma list of extensions such as ``jpg,png,webp``: the first present is read);
    ``meta_column`` the sample's JSON (text or, from ``read_webdataset``, bytes or a dict). Four
    columns are added: ``rightsmeta_keep``, ``rightsmeta_permission``, ``rightsmeta_reasons``,
    ``rightsmeta_sources``.

    Split samples: rows sharing a webdataset ``(__url__, __key__)`` are one sample whose members
    were apart in its shard (a.jpg, b.jpg, a.json: a's image has a row without the JSON that may
    reserve it). Every such row is dropped, the first one included, when the decider can know:
    the ids in ``split_ids`` (exact, over the whole dataset: :func:`find_split_ids`), rows of one
    batch, and rows of batches this actor decided earlier, for the last ``remember_shards``
    ``__url__`` values it met (about 80 bytes a row of those shards; rows without a ``__url__``
    within their batch only). When a later batch brings a
    row of a sample whose row this actor already returned as kept, that keep cannot be taken back:
    the call raises :class:`SplitSampleError` and the pipeline stops (fail closed), as Ray 2.60's
    own ``read_webdataset`` stops at such a shard. Rows of one sample decided by two actors are
    seen only through ``split_ids``. A batch Ray runs twice on one actor (rebuilding a lost block)
    reads as such a sample too, and stops the pipeline: with the exact ``split_ids``,
    ``remember_shards=0`` turns the memory off.
    """

    def __init__(self, purpose: Purpose | str, column: str = "image", meta_column: str = "json",
                 accept_constraints: bool = False, split_ids: Iterable[tuple[Any, Any]] = (),
                 remember_shards: int = 16) -> None:
        self.purpose = purpose if isinstance(purpose, Purpose) else parse_purpose(purpose)
        self.columns = [c.strip() for c in column.split(",") if c.strip()]
        self.meta_column = meta_column
        self.accept_constraints = accept_constraints
        self.split = {(url, key) for url, key in split_ids}
        self.remember_shards = remember_shards
        # __url__ -> {hash of __key__: whether its row was kept}, the least recently met shard first.
        # Hashes are this process's: they are never compared with another actor's.
        self._seen: OrderedDict[Any, dict[int, bool]] = OrderedDict()

    def _values(self, table: Any, column: str) -> list[Any] | None:
        name, _, child = column.partition(".")
        if name not in table.column_names:
            return None
        col = table.column(name)
        import pyarrow as pa

        if pa.types.is_struct(col.type):
            col = pa.chunked_array([chunk.field(child or "bytes") for chunk in col.chunks], type=col.type.field(child or "bytes").type)
        values: list[Any] = col.to_pylist()
        return values

    def _metas(self, table: Any) -> list[Any]:
        """Each row's JSON: text, bytes or, from a struct column (Hugging Face `datasets` keeps a
        WebDataset's .json decoded), a dict; not the struct's ``bytes`` field, as for the media."""
        if self.meta_column not in table.column_names:
            return self._values(table, self.meta_column) or [None] * table.num_rows
        return [_as_json(v) if isinstance(v, dict) else v for v in table.column(self.meta_column).to_pylist()]

    def _shard(self, url: Any) -> dict[int, bool]:
        """What this actor remembers of the shard ``url`` (made, and the oldest forgotten, as needed)."""
        seen = self._seen.get(url)
        if seen is None:
            seen = self._seen[url] = {}
            while len(self._seen) > self.remember_shards:
                self._seen.popitem(last=False)
        self._seen.move_to_end(url)
        return seen

    def __call__(self, table: Any) -> Any:
        import pyarrow as pa

        found = [v for v in (self._values(table, c) for c in self.columns) if v is not None]
        metas = self._metas(table)
        sides = side_columns(table, {c.partition(".")[0] for c in self.columns} | {self.meta_column})
        ids = sample_ids(table)
        apart = _apart(table)
        earlier: list[bool | None] = [None] * table.num_rows  # the keep of an earlier batch's row of the sample
        for i, (url, key) in enumerate(ids or ()):
            # a row without a shard (no or a null __url__) names a sample within its batch only
            earlier[i] = self._shard(url).get(hash(key)) if self.remember_shards > 0 and url is not None else None
            if earlier[i] is not None or (url, key) in self.split:
                apart.add(i)
        keep, perms, reasons, sources = [], [], [], []
        for i in range(table.num_rows):
            # read_webdataset fills a sample's missing extensions with NaN, not None: bytes or nothing.
            data = next((bytes(v[i]) for v in found if isinstance(v[i], (bytes, bytearray, memoryview))), None)
            errors = [] if data is not None else [f"no bytes in {', '.join(self.columns)}"]
            if i in apart:
                errors.append(APART)
            meta = metas[i]
            if isinstance(meta, float) and meta != meta:  # NaN: the sample has no JSON
                meta = None
            if isinstance(meta, (bytes, str)):
                try:
                    meta = json.loads(meta)
                except NOT_JSON:
                    errors.append("the sample's JSON is not valid")
                    meta = None
            if meta is not None and not isinstance(meta, dict):
                errors.append("the sample's JSON is not an object")
                meta = None
            decision = decide_parts([("sample", data)] if data is not None else [], meta, self.purpose,
                                    accept_constraints=self.accept_constraints, errors=errors,
                                    columns=sides[i] if sides is not None else None)
            keep.append(decision.keep)
            perms.append(decision.state.value)
            reasons.append(list(decision.reasons))
            sources.append(list(decision.sources))
        if ids is not None:
            kept_before = next((ids[i] for i in range(table.num_rows) if earlier[i]), None)
            if kept_before is not None:
                raise SplitSampleError(
                    f"sample {kept_before[1]!r} of {kept_before[0]!r} has rows in two batches, and the row of the "
                    "earlier one was returned as kept: its shard's members were apart, and the other row may hold "
                    "the JSON that reserves it. Drop every row of such samples with "
                    "SampleDecider(split_ids=rightsmeta.datasets.ray_engine.find_split_ids(ds)).")
            for i, (url, key) in enumerate(ids if self.remember_shards > 0 else ()):
                if url is None:
                    continue
                seen = self._shard(url)
                seen[hash(key)] = seen.get(hash(key), False) or keep[i]
        return (table.append_column("rightsmeta_keep", pa.array(keep, pa.bool_()))
                .append_column("rightsmeta_permission", pa.array(perms, pa.string()))
                .append_column("rightsmeta_reasons", pa.array(reasons, pa.list_(pa.string())))
                .append_column("rightsmeta_sources", pa.array(sources, pa.list_(pa.string()))))


def find_split_ids(ds: Any) -> set[tuple[Any, Any]]:
    """The ``(__url__, __key__)`` ids more than one row of the Ray dataset ``ds`` has: samples
    whose members were apart in their shard (see :class:`SampleDecider`), for its ``split_ids``.
    A first pass over the id columns alone (Parquet reads only those), grouped by Ray Data over
    the cluster: only the split ids come back to the driver. Empty without a ``__key__`` column."""
    names = ds.schema().names
    if "__key__" not in names:
        return set()
    cols = [c for c in ("__url__", "__key__") if c in names]
    counts = ds.select_columns(cols).groupby(cols).count()
    split = counts.filter(lambda row: row["count()"] > 1)
    return {(row.get("__url__"), row["__key__"]) for row in split.iter_rows()}


def _apart(table: Any) -> set[int]:
    """Rows whose sample id another row of the batch has (see ``sample_ids``)."""
    first: dict[tuple[Any, Any], int] = {}
    apart: set[int] = set()
    for i, sample in enumerate(sample_ids(table) or ()):
        if sample in first:
            apart.update((first[sample], i))
        first.setdefault(sample, i)
    return apart


#: A gRPC client's opening (RFC 9113 3.4): the connection preface and an empty SETTINGS frame.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")
#: The call each probe makes: the first a Ray driver makes of a GCS, and a Ray Client server's.
GCS_CALL = "/ray.rpc.NodeInfoGcsService/GetClusterId"
CLIENT_CALL = "/ray.rpc.RayletDriver/ClusterInfo"
CLIENT_PORT = 10001  # Ray Client's port when a ray:// address names none (`ray start --ray-client-server-port`)
_MAX_FRAME = 16384  # RFC 9113's SETTINGS_MAX_FRAME_SIZE until we say otherwise (we never do)
_UNIMPLEMENTED = 12  # gRPC status: the server has no such method


def _reachable(address: str) -> None:
    """Ray keeps retrying an address where nothing listens, or where something that is not Ray
    answers (a web server, a proxy, another gRPC service), for half a minute to minutes, printing
    warnings: said at once instead, within ``CONNECT_SECONDS`` to connect plus as many for the answer.

    A GCS (``host:port``) and a Ray Client server (``ray://host[:port]``) both speak gRPC: the
    probe opens HTTP/2 (their SETTINGS frame answers the preface) and makes the call a Ray client
    makes first (GetClusterId; Ray Client's ClusterInfo). A server that answers it in any way but
    "no such method" is taken for Ray (one asking for a token answers UNAUTHENTICATED: Ray then
    sends its token; the probe sends none). It dials the address as Ray will (Ray replaces a
    loopback host of a GCS address by this machine's address). ``auto`` and, as the probe speaks no
    TLS, any address under ``RAY_USE_TLS`` are left to Ray."""
    client = address.startswith("ray://")
    if client:
        # Ray Client dials the host and port as written (ray.util.client: "ray://host[:port]").
        rest = address[len("ray://"):].split("/", 1)[0].split("?", 1)[0]
        host, colon, port = rest.rpartition(":")
        if not colon or "]" in port:  # no port (an IPv6 host's own colons are in brackets)
            host, port = rest, str(CLIENT_PORT)
        dialed = f"{host}:{port}"
    else:
        host, _, port = address.rpartition(":")
        if address == "auto" or "://" in address or not port.isdigit():
            return
        dialed = _as_ray_dials(address)
    if not port.isdigit() or not host or os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        return
    where = address if dialed in (address, address.removeprefix("ray://")) else f"{address} (Ray dials {dialed})"
    host, _, port = dialed.rpartition(":")
    default = f"Ray Client's port ({CLIENT_PORT} by default)" if client else "the port of `ray start --head` (6379 by default)"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS) as sock:
            said = _not_ray(sock, dialed, CLIENT_CALL if client else GCS_CALL, time.monotonic() + CONNECT_SECONDS)
    except OSError as exc:
        raise UsageError(f"cannot reach the Ray cluster at {where} ({exc.strerror or exc}): "
                         f"is Ray running there, on that port? give {default}") from None
    if said is not None:
        raise UsageError(f"cannot reach the Ray cluster at {where}: something listens there but is not Ray "
                         f"({said}); give {default}")


def _not_ray(sock: socket.socket, authority: str, call: str, deadline: float) -> str | None:
    """Why the peer is not a Ray gRPC server, or None when it answers ``call`` as one (or its answer
    cannot be told apart from one: the scan goes on to Ray, as it would without the probe)."""
    sock.sendall(H2_PREFACE)
    reply = _read(sock, 9, deadline)
    if reply is None or len(reply) < 9 or reply[3] != 0x04 or reply[5:] != bytes(4):  # the server's SETTINGS, on stream 0
        text = (reply or b"").decode("ascii", "replace")
        return (f"it does not answer as gRPC within {CONNECT_SECONDS:g} s" if reply is None
                else "it closed the connection" if not reply
                else f"it answers in text, {text!r}...: a web server or proxy?" if text.isprintable()
                else "its answer is not gRPC")
    headers = b"".join(_literal(k, v) for k, v in ((":method", "POST"), (":scheme", "http"), (":path", call),
                                                   (":authority", authority), ("content-type", "application/grpc"),
                                                   ("te", "trailers")))
    # SETTINGS ack of theirs, then the call on stream 1: headers, and an empty message ending the stream.
    sock.sendall(_frame(0x4, 0x1, 0, b"") + _frame(0x1, 0x4, 1, headers) + _frame(0x0, 0x1, 1, bytes(5)))
    length, block, ending = int.from_bytes(reply[:3], "big"), b"", False
    while True:
        if length > _MAX_FRAME:
            return "its answer is not gRPC (a frame over 16 KiB)"
        payload = _read(sock, length, deadline) if length else b""
        if payload is None or len(payload) < length:
            return None  # no answer to the call in time (HTTP/2 was spoken): Ray, busy, is given the benefit
        kind, flags, stream = reply[3], reply[4], int.from_bytes(reply[5:9], "big") & 0x7FFFFFFF
        if kind == 0x7:  # GOAWAY: it refused the call and the connection
            return "it ended the connection at the call Ray makes"
        if stream == 1:
            if kind == 0x0 and length:  # a message in answer: it has the method
                return None
            if kind == 0x3:
                return "it reset the call Ray makes"
            if kind == 0x1:  # HEADERS: the answer's head, or its trailers
                if flags & 0x8:  # padded
                    payload = payload[1:len(payload) - payload[0]] if payload else b""
                if flags & 0x20:  # priority
                    payload = payload[5:]
                block, ending = payload, bool(flags & 0x1)
            elif kind == 0x9:  # CONTINUATION of the block
                block += payload
            if kind in (0x1, 0x9) and flags & 0x4:  # the block is whole
                said = _why_refused(block, ending)
                if said is not None or ending:  # refused, or an answer that ended without a message
                    return said
        elif kind == 0x6 and not flags & 0x1:  # PING: answered, as HTTP/2 asks
            sock.sendall(_frame(0x6, 0x1, 0, payload))
        reply = _read(sock, 9, deadline)
        if reply is None or len(reply) < 9:
            return None
        length = int.from_bytes(reply[:3], "big")


def _why_refused(block: bytes, ending: bool) -> str | None:
    """Why a header block of the answer says "not Ray", or None. Read without a full HPACK
    decoder: an HTTP status other than 200 from the static table, and (``ending``: the call ended
    without a message) the ``grpc-status`` gRPC's C core (Ray's, grpcio's) writes as a plain
    literal; a block written otherwise is not judged."""
    if block[:1] and 0x89 <= block[0] <= 0x8E:  # :status from the static table, other than 200
        return "it answers HTTP/2 but not gRPC (HTTP status " + {0x89: "204", 0x8A: "206", 0x8B: "304", 0x8C: "400",
                                                               0x8D: "404", 0x8E: "500"}[block[0]] + ")"
    at = block.find(b"\x0bgrpc-status") if ending else -1
    if at >= 0 and at + 13 < len(block):
        size = block[at + 12]
        value = block[at + 13:at + 13 + size]
        if size < 0x80 and value.isdigit() and int(value) == _UNIMPLEMENTED:
            return "a gRPC server without Ray's service: the call Ray makes first is unknown there"
    return None


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def _literal(name: str, value: str) -> bytes:
    """An HPACK literal header field without indexing, new name, no Huffman (RFC 7541 6.2.2)."""
    out = b"\x00"
    for text in (name.encode(), value.encode()):
        out += _hpack_int(len(text)) + text
    return out


def _hpack_int(value: int, prefix: int = 7) -> bytes:
    """RFC 7541 5.1: an integer with an N-bit prefix (the bits above it zero: no Huffman)."""
    top = (1 << prefix) - 1
    if value < top:
        return bytes([value])
    out, value = bytearray([top]), value - top
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def _as_ray_dials(address: str) -> str:
    """``address`` as Ray will connect to it, or as given where Ray cannot say."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address(address) or address
    except Exception:  # a private helper of Ray's: its absence or failure leaves the address as given
        return address


def _read(sock: socket.socket, size: int, deadline: float) -> bytes | None:
    """Up to ``size`` bytes, fewer where the peer closes; None where they are not all there by
    ``deadline`` (a peer sending a byte at a time gets no more time than a silent one)."""
    data = b""
    while len(data) < size:
        sock.settimeout(max(0.0, deadline - time.monotonic()) or 0.001)
        try:
            chunk = sock.recv(size - len(data))
        except TimeoutError:
            return None
        if not chunk:
            break
        data += chunk
    return data


@contextlib.contextmanager
def _quiet_console() -> Iterator[None]:
    """Ray Data's driver prints an INFO line per pipeline start, plan and end on stderr, amid the
    scan's own output: while a scan that started Ray runs, its console handler shows warnings and
    errors only (the session's ray-data.log still gets everything)."""
    handlers = [h for h in logging.getLogger("ray.data").handlers if h.name == "console"]
    levels = [h.level for h in handlers]
    for handler in handlers:
        handler.setLevel(max(handler.level, logging.WARNING))
    try:
        yield
    finally:
        for handler, level in zip(handlers, levels, strict=True):
            handler.setLevel(level)


def scan_ray(shards: Sequence[Shard], options: ScanOptions, *, jobs: int = 2, address: str | None = None) -> Iterator[Row]:
    """Report rows from a Ray Data pipeline: on ``address`` (a running cluster), else a local Ray
    with ``jobs`` CPUs, started here and shut down at the end. An already initialised Ray is used
    as it is."""
    ray = _ray()
    started = False
    if not ray.is_initialized():
        if address:
            _reachable(address)
        if not address or address == "local":  # Ray's "local" starts one as the default does
            _private_token()
        if address:
            try:
                ray.init(address=address, log_to_driver=False, logging_level="warning")
            except (ValueError, ConnectionError, RuntimeError) as exc:  # what Ray says of an address it cannot use
                # (RuntimeError: a cluster of another Ray version, or asking for a token it lacks)
                raise UsageError(f"cannot use the Ray cluster at {address}: {exc}") from None
        else:
            ray.init(num_cpus=max(1, jobs), include_dashboard=False, log_to_driver=False, logging_level="warning")
        started = True
    try:
        with _quiet_console() if started else contextlib.nullcontext():
            yield from _pipeline(ray, shards, options, jobs)
    finally:
        if started:
            ray.shutdown()


def _private_token() -> None:
    """Before a local Ray starts: the token file it would write, made here readable by this user only.

    A local Ray (2.5x) starts with token authentication and, when it finds no token, writes a new
    one to ~/.ray/auth_token with ``open(path, "w")``: 0644 under the usual umask, so any local user
    could read it and reach the cluster; and two starts at once each write their own, one reading the
    other's file half-written. So a token as Ray makes it (32 random bytes in hex) is written here to
    a 0600 temporary file and linked into place, which fails if a token is there: every start finds a
    whole one, 0600. None is made where Ray would make none (RAY_AUTH_MODE other than token, a token
    given in RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH). A token file that exists is the user's and is
    left alone.
    """
    if os.environ.get("RAY_AUTH_MODE", "token").lower() != "token" or {"RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"} & os.environ.keys():
        return
    folder = os.path.join(os.path.expanduser("~"), ".ray")  # Ray's Path.home() / ".ray"
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, 0o700)
        fd, temp = tempfile.mkstemp(prefix=".auth_token.", dir=folder)
        try:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_hex(32))
            with contextlib.suppress(FileExistsError):
                os.link(temp, os.path.join(folder, "auth_token"))
        finally:
            os.unlink(temp)
    except OSError:  # no home to write to, or no hard links there: Ray does as it does
        pass


def _pipeline(ray: Any, shards: Sequence[Shard], options: ScanOptions, jobs: int) -> Iterator[Row]:
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # rows in shard order, as the local engine
    context.enable_progress_bars = False
    if not shards:
        return
    ds = ray.data.from_items([s.to_json() for s in shards], override_num_blocks=len(shards))
    actors = ray.data.ActorPoolStrategy(size=max(1, min(jobs, len(shards))))
    ds = ds.map_batches(ShardDecider, fn_constructor_args=(options,), batch_size=1, batch_format="numpy",
                        compute=actors, num_cpus=1)
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        yield from batch.to_pylist()
