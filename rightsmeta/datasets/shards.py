"""Scanning one shard: stream its samples, decide each, write the kept ones to a filtered copy.

A shard is never loaded whole. Tar shards are read as a stream (``tarfile`` mode ``r|*``, which
also undoes gzip), one sample (the consecutive members sharing a key) at a time; Parquet files
batch by batch; folders file by file. The filtered copy keeps the input's format: a kept
sample's tar members are written together, in their order, with their bytes and headers'
fields (name, mode, owner, times) unchanged; Parquet rows keep the file's schema. Every copy is
written beside its target and renamed into place when complete, so a crash never leaves half a
shard under the final name; a tar not read cleanly to its end (cut, damaged, or a sample's members
not together) gets no copy at all.

A tar shard's and a Parquet file's rows are given once its copy is published (or known not to be):
until then they wait in a temporary file, so memory stays flat in the shard's size. A copy that
cannot be written (no space, a folder where it goes) keeps none of the shard's samples: the report
says "drop" for each, as --out holds none of them.

Bad input never stops a scan: a truncated tar, a corrupt member, a Parquet file without the
column become rows with the reason. A Parquet file's rows read before the damage keep their
decisions (and are in its copy); a tar shard not read cleanly to its end keeps none of its samples
(the report says what each was read as, and drops it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tarfile
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from ..errors import NOT_JSON, TimeLimit, on_alarm
from ..fsio import atomic_write, replacing
from ..model import Purpose, State
from .headers import DEFAULT_STEP
from .sample import SampleDecision, decide_parts
from .sources import Shard, img2dataset_files, kind_of

# Members that are a sample's metadata or caption, not content to read for signals. Any other
# member is content: if rightsmeta cannot read it, the sample is dropped (fail closed).
META_EXTENSIONS = frozenset({"json"})
SIDE_EXTENSIONS = frozenset({"txt", "cls", "cls2", "caption", "text"})
MAX_MEMBER = 256 * 1024 * 1024  # one sample's file; larger ones are reported, not loaded
MAX_META = 1024 * 1024  # a sample's JSON
BATCH_ROWS = 256  # Parquet rows decided and written at a time
# Ends the shard row of a shard left out of --out. A copy an earlier run wrote there is removed: a
# pipeline would take it for this run's, and it may hold what this run drops.
NOT_WRITTEN = "; its filtered copy was not written (one from an earlier run is removed)"
# What every shard row of a shard left out of --out says (the CLI counts those shards by it).
NOT_WRITTEN_MARK = "its filtered copy was not written"

Row = dict[str, Any]


@dataclass(frozen=True)
class ScanOptions:
    """Everything a worker needs to scan a shard; plain data, so it pickles to processes and Ray."""

    purpose: Purpose
    accept_constraints: bool = False
    column: str = "image"  # Parquet: a binary column, or a struct with a ``bytes`` field (``image.bytes``)
    out_dir: str | None = None
    max_member: int = MAX_MEMBER
    batch_rows: int = BATCH_ROWS
    use_headers: bool = True
    sample_seconds: float = 0.0  # per-sample time bound (0: none); enforced in a process's main thread
    split_ids: frozenset[tuple[Any, Any]] = frozenset()  # sample ids with rows in two Parquet files (split_across_files)


@dataclass
class _Sample:
    key: str
    members: list[tuple[Any, str, bytes]] = field(default_factory=list)  # (tar header or path, extension, bytes)
    meta: Any = None
    errors: list[str] = field(default_factory=list)
    metas: int = 0  # JSON members met
    columns: dict[str, Any] | None = None  # a Parquet row's url and headers columns


def split_name(name: str) -> tuple[str, str]:
    """WebDataset's convention: the key is the path up to the first dot of the base name."""
    directory, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{directory}/{stem}" if directory else stem), ext.lower()


def _add(sample: _Sample, label: str, ext: str, data: bytes) -> None:
    if ext not in META_EXTENSIONS:
        return
    sample.metas += 1
    if sample.metas > 1:
        # The first alone was read: a second that reserved the sample left it kept. webdataset
        # refuses such a shard ("duplicate file name").
        sample.errors.append(f"{label}: a second JSON member in this sample; which one holds its metadata is unknown")
    elif len(data) > MAX_META:
        sample.errors.append(f"{label}: metadata larger than {MAX_META} bytes; not read")
    else:
        try:
            sample.meta = json.loads(data)
        except NOT_JSON as exc:
            sample.errors.append(f"{label}: not valid JSON ({exc})")



@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """SIGALRM-bounded block; only where signals can be delivered (a process's main thread)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _decide(sample: _Sample, options: ScanOptions) -> SampleDecision:
    try:
        with _time_limit(options.sample_seconds):
            return _decide_now(sample, options)
    except TimeLimit:
        reason = f"gave up after {options.sample_seconds:g} s reading this sample"
        return SampleDecision(options.purpose, False, State.UNSPECIFIED, None,
                              ("not fully read, so not kept (fail closed)",), (), (reason,))


def _decide_now(sample: _Sample, options: ScanOptions) -> SampleDecision:
    parts = [(label if isinstance(label, str) else label.name, data)
             for label, ext, data in sample.members
             if ext not in META_EXTENSIONS and ext not in SIDE_EXTENSIONS]
    meta = sample.meta
    errors = list(sample.errors)
    if meta is not None and not isinstance(meta, dict):
        errors.append(f"sample metadata is a JSON {type(meta).__name__}, not an object")
        meta = None
    return decide_parts(parts, meta, options.purpose, accept_constraints=options.accept_constraints,
                        header_step=DEFAULT_STEP if options.use_headers else None, errors=errors,
                        columns=sample.columns)


def _row(shard: Shard, key: str | None, decision: SampleDecision) -> Row:
    return {"shard": shard.path, "key": key, **decision.to_json()}


def shard_row(shard: Shard, reason: str, purpose: Purpose) -> Row:
    """The row of a shard that could not be read (or not to its end)."""
    return {"shard": shard.path, "key": None, "format": None, "purpose": purpose.value, "permission": "unspecified",
            "decision": "drop", "reasons": [reason], "sources": [], "errors": [reason]}


def _out_path(shard: Shard, options: ScanOptions) -> str | None:
    if options.out_dir is None:
        return None
    path = os.path.join(options.out_dir, shard.name)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return path


# --- tar -------------------------------------------------------------------------------------

_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, ValueError)


def _tar_samples(tar: tarfile.TarFile, options: ScanOptions, broken: list[str], returned: list[str]) -> Iterator[_Sample]:
    """The shard's samples; the members whose key came back after other samples go to ``returned``."""
    current: _Sample | None = None
    # A sample is its consecutive members (as webdataset reads it): a key seen again later means
    # a sample whose members were apart, so its earlier decision may have missed the JSON that
    # reserves it. The closed keys are one per sample: at most one per 512-byte tar header.
    closed: set[str] = set()
    try:
        for info in tar:
            if info.isdir():
                continue
            key, ext = split_name(info.name)
            if current is None or key != current.key:
                if current is not None:
                    closed.add(current.key)
                    yield current
                current = _Sample(key)
                if key in closed:
                    returned.append(info.name)
                    current.errors.append(f"{info.name}: its key came back after other samples (a malformed shard): "
                                          "this sample's members are apart, so it is not kept")
            if not info.isfile():
                current.errors.append(f"{info.name}: a link or special member, not a file; not followed")
                continue
            if info.size > options.max_member:
                current.errors.append(f"{info.name}: {info.size} bytes, more than the {options.max_member} a member may have; not read")
                continue
            fh = tar.extractfile(info)
            data = fh.read() if fh is not None else b""
            if len(data) != info.size:
                raise tarfile.ReadError(f"{info.name}: {len(data)} of its {info.size} bytes present")
            current.members.append((info, ext, data))
            _add(current, info.name, ext, data)
            # tarfile keeps every header it has seen (millions in a large shard) in an attribute its
            # stubs do not declare; webdataset clears it the same way.
            tar.members = []  # type: ignore[attr-defined]
        if tar.fileobj is not None and tar.fileobj.tell() == tar.offset:
            # tarfile stops quietly at the end of the file as at the zero block that ends an
            # archive (which it has read, and gone past, when there was one). A shard cut at a
            # member boundary would otherwise lose its last members unsaid: a sample's JSON that
            # reserves it, whose image was read, would leave it kept.
            raise tarfile.ReadError("no end-of-archive marker: the shard was cut off")
        if tar.fileobj is not None and _data_follows(tar.fileobj):
            # It stops quietly at a damaged header too (a bad checksum): after the end there is
            # only zero padding, so anything else is members left unread, a reserving JSON among them.
            raise tarfile.ReadError("data after where tarfile stopped (a damaged member header, or tar files "
                                    "joined together): the members after it were not read")
    except _TAR_ERRORS as exc:
        broken.append(f"unreadable tar: {exc or type(exc).__name__}; the samples before the damage were scanned")
        if current is not None:
            current.errors.append("the shard broke off in or after this sample; members of it may be missing")
    if current is not None:
        yield current


def _data_follows(stream: Any) -> bool:
    """Whether anything but zero bytes is left in the stream (read in pieces: memory stays flat)."""
    while piece := stream.read(64 * 1024):
        if piece.count(0) != len(piece):
            return True
    return False


class _Unpublished(Exception):
    """Raised inside the filtered copy's ``replacing`` block so that it is discarded, not renamed."""


def _unpublished(out: str | None) -> _Unpublished:
    """What to raise when the shard's filtered copy must not be published: an earlier run's copy
    at ``out`` is removed first (NOT_WRITTEN)."""
    if out is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(out)
    return _Unpublished()


# Replaces "keep" in the rows of a tar shard not read cleanly to its end (reasons first).
SHARD_BROKEN = ("its shard was not read cleanly to its end (the shard's row says why), so none of its samples "
                "is kept (fail closed)")
# Replaces "keep" in the rows of a shard whose filtered copy could not be written to --out.
COPY_FAILED = ("its shard's filtered copy could not be written to --out (the shard's row says why), so none of "
               "its samples is kept: the report says what --out holds")


class _CopyFailed(Exception):
    """Writing the filtered copy failed (not reading the shard): raised through the copy's
    ``replacing`` block, which discards the temporary file."""


def _not_written(out: str, exc: BaseException) -> str:
    """The shard row's reason for a copy that could not be written; a copy an earlier run left at
    ``out`` is removed, or said not to be this run's where it cannot be."""
    why = str(exc) if isinstance(exc, _CopyFailed) else f"could not write its filtered copy: {getattr(exc, 'strerror', None) or exc}"
    try:
        os.unlink(out)
    except FileNotFoundError:
        pass
    except OSError as gone:
        return f"{why}; {NOT_WRITTEN_MARK}, and what is at {out} is not this run's (not removed: {gone.strerror or gone})"
    return why + NOT_WRITTEN


def _spooled(shard: Shard, options: ScanOptions, fill: Callable[[IO[bytes]], tuple[list[str], str | None]]) -> Iterator[Row]:
    """The rows ``fill(spool)`` decides into a temporary file (a JSON row a line, a few hundred
    bytes a sample, so memory stays flat in the shard's size), given once it returns the shard
    rows to add and, when none of the shard's samples may be kept, why (put before the reasons
    of each row that said "keep"). An OSError out of ``fill`` with --out is its copy not written."""
    with tempfile.TemporaryFile() as spool:
        out = None if options.out_dir is None else os.path.join(options.out_dir, shard.name)
        try:
            tail, dropped = fill(spool)
        except (_CopyFailed, OSError) as exc:
            if out is None:
                raise
            tail, dropped = [_not_written(out, exc)], COPY_FAILED
        spool.seek(0)
        for line in spool:
            row: Row = json.loads(line)
            if dropped and row["decision"] == "keep":
                row["decision"] = "drop"
                row["reasons"] = [dropped, *row["reasons"]]
            yield row
    for reason in tail:
        yield shard_row(shard, reason, options.purpose)


def _scan_tar(shard: Shard, options: ScanOptions) -> Iterator[Row]:
    """The shard's rows, given once the shard has been read to its end: only then is it known
    whether a sample decided "keep" can stay kept. A key coming back later, or members lost to
    damage further on, may belong to any earlier sample (its reserving JSON), and the filtered
    copy of such a shard is not published; so in a shard not read cleanly every sample is
    dropped, in the report as in --out, with or without --out."""

    def fill(spool: IO[bytes]) -> tuple[list[str], str | None]:
        broken = _tar_rows(shard, options, spool)
        return broken, SHARD_BROKEN if broken else None

    yield from _spooled(shard, options, fill)


def _tar_rows(shard: Shard, options: ScanOptions, spool: IO[bytes]) -> list[str]:
    """Decides the shard's samples into ``spool`` (a JSON row a line), writes the filtered copy
    when the shard reads cleanly to its end; returns why it did not (empty when it did)."""
    broken: list[str] = []
    returned: list[str] = []
    out = _out_path(shard, options)
    compressed = shard.path.lower().endswith((".gz", ".tgz"))
    with contextlib.suppress(_Unpublished), contextlib.ExitStack() as stack:
        try:
            tar = stack.enter_context(tarfile.open(shard.path, mode="r|*"))
        except _TAR_ERRORS as exc:  # no filtered copy of a shard that is not a tar at all
            _unpublished(out)  # nor one an earlier run left there
            return [f"cannot open tar: {exc or type(exc).__name__}" + (NOT_WRITTEN if out is not None else "")]
        writer: tarfile.TarFile | None = None
        if out is not None:
            fh = stack.enter_context(replacing(out))
            writer = stack.enter_context(tarfile.open(fileobj=fh, mode="w|gz" if compressed else "w|",
                                                      format=tarfile.PAX_FORMAT))
        for sample in _tar_samples(tar, options, broken, returned):
            decision = _decide(sample, options)
            # ASCII JSON: a name that is not UTF-8 (a lone surrogate) comes back as it went in
            spool.write(json.dumps(_row(shard, sample.key, decision)).encode() + b"\n")
            if writer is not None and decision.keep:
                for info, _ext, data in sample.members:
                    writer.addfile(info, _reader(data))
                writer.members = []  # type: ignore[attr-defined]  # as above: the writer keeps them too
        if returned:
            broken.insert(0, f"malformed shard: {len(returned)} member(s) came back to their sample after other "
                             f"samples (the first: {returned[0]}), where webdataset reads them as samples of their own")
        if broken:
            # A sample already written may be one whose members came back, or would have in the part
            # not read: only a shard read cleanly to its end is published.
            if out is not None:
                broken[0] += NOT_WRITTEN
            raise _unpublished(out)
    return broken


def _reader(data: bytes) -> IO[bytes]:
    import io

    return io.BytesIO(data)


# --- folders ---------------------------------------------------------------------------------

def _folder_samples(shard: Shard, options: ScanOptions) -> Iterator[_Sample]:
    listed = os.listdir(shard.path)
    beside = img2dataset_files(listed)  # neither shards nor samples (sources.py)
    names = sorted(n for n in listed if not n.startswith(".") and n not in beside)
    current: _Sample | None = None
    for name in names:
        path = os.path.join(shard.path, name)
        if kind_of(name) is not None or (not os.path.isfile(path) and not os.path.islink(path)):
            continue  # shard files and sub-folders are shards of their own (sources.py)
        key, ext = split_name(name)
        if current is None or key != current.key:
            if current is not None:
                yield current
            current = _Sample(key)
        if os.path.islink(path):
            current.errors.append(f"{name}: a symbolic link; not followed")
            continue
        try:
            size = os.path.getsize(path)
            if size > options.max_member:
                current.errors.append(f"{name}: {size} bytes, more than the {options.max_member} a file may have; not read")
                continue
            with open(path, "rb") as fh:
                data = fh.read(options.max_member + 1)
        except OSError as exc:
            current.errors.append(f"{name}: cannot read ({exc.strerror or exc})")
            continue
        current.members.append((name, ext, data))
        _add(current, name, ext, data)
    if current is not None:
        yield current


def _scan_folder(shard: Shard, options: ScanOptions) -> Iterator[Row]:
    """The folder's rows; its copy is the kept samples' files, each sample's written before its
    row says "keep" (one that cannot be written is dropped, and the scan goes on). The files in
    the copy's folder that this run did not write (an earlier run's, of samples dropped now) are
    removed at the end; its sub-folders are other shards' copies and are left alone."""
    out = None if options.out_dir is None else os.path.join(options.out_dir, shard.name)
    written: set[str] = set()
    try:
        for sample in _folder_samples(shard, options):
            decision = _decide(sample, options)
            row = _row(shard, sample.key, decision)
            if out is not None and decision.keep:
                failed = _write_sample(out, sample, written)
                if failed is not None:
                    row.update(decision="drop", reasons=[f"not kept: {failed}", *row["reasons"]],
                               errors=[*row["errors"], failed])
            yield row
    except OSError as exc:
        yield shard_row(shard, f"cannot read folder: {exc.strerror or exc}", options.purpose)
    if out is not None and (stale := _remove_stale(out, written)) is not None:
        yield shard_row(shard, stale, options.purpose)


def _write_sample(out: str, sample: _Sample, written: set[str]) -> str | None:
    """Writes a kept sample's files into the folder copy; why it could not, or None. A sample
    not written whole has none of its files left there."""
    names = [name for name, _ext, _data in sample.members]
    try:
        os.makedirs(out, exist_ok=True)
        for name, _ext, data in sample.members:
            atomic_write(os.path.join(out, name), data)
    except OSError as exc:
        for name in names:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(out, name))
        return f"its files could not be written to --out ({exc})"
    written.update(names)
    return None


def _remove_stale(out: str, written: set[str]) -> str | None:
    """Removes the files of the folder copy ``out`` this run did not write; why some remain, or None."""
    try:
        entries = list(os.scandir(out))
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot clear what an earlier run left in its copy {out}: {exc.strerror or exc}"
    left = []
    for entry in entries:
        if entry.name in written or entry.is_dir(follow_symlinks=False) or entry.name.startswith("."):
            continue
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            pass
        except OSError:
            left.append(entry.name)
    if left:
        return f"files an earlier run left in its copy {out} could not be removed ({', '.join(sorted(left)[:5])})"
    return None


# --- Parquet ---------------------------------------------------------------------------------

def _pyarrow() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        from ..errors import UsageError

        raise UsageError("reading Parquet needs pyarrow: pip install 'rightsmeta[datasets]'") from None
    return pq


def bytes_column(schema: Any, column: str) -> tuple[str, str | None] | str:
    """(top-level column, struct field or None) holding the bytes, or why there is none."""
    import pyarrow as pa

    name, _, child = column.partition(".")
    if name not in schema.names:
        return f"no column {name!r} (columns: {', '.join(schema.names)})"
    typ = schema.field(name).type
    if pa.types.is_struct(typ):
        child = child or "bytes"
        fields = [typ.field(i).name for i in range(typ.num_fields)]
        if child not in fields:
            return f"column {name!r} is a struct without a {child!r} field (fields: {', '.join(fields)})"
        typ = typ.field(child).type
    elif child:
        return f"column {name!r} is {typ}, not a struct with a {child!r} field"
    if not is_bytes_type(typ):
        return f"column {column!r} is {typ}, not binary"
    return name, child or None


def is_bytes_type(typ: Any) -> bool:
    """Whether a column of ``typ`` holds bytes: binary, large_binary, binary_view (pyarrow 14 and
    later; refused, so never read, before), fixed_size_binary, or any of them dictionary-encoded.
    Each gives Python bytes a row."""
    import pyarrow as pa

    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    return bool(pa.types.is_binary(typ) or pa.types.is_large_binary(typ) or pa.types.is_binary_view(typ)
                or pa.types.is_fixed_size_binary(typ))


def kept_rows(batch: Any, keep: list[bool]) -> Any | None:
    """The kept rows of ``batch`` as one record batch of its schema (None when none is kept).

    Not ``batch.filter``: pyarrow has no filter (nor take) for view types (binary_view,
    string_view), so a file with a view column anywhere could not be copied. Slices of the runs
    of kept rows, joined into a new batch: the Parquet writer cannot write a slice of a struct
    holding a view ("Slicing not implemented for BinaryView"), the joined copy starts at 0."""
    import pyarrow as pa

    runs: list[Any] = []
    start = None
    for i, kept in enumerate([*keep, False]):
        if kept and start is None:
            start = i
        elif not kept and start is not None:
            runs.append(batch.slice(start, i - start))
            start = None
    if not runs:
        return None
    concat = getattr(pa, "concat_batches", None)  # pyarrow 19 and later
    return concat(runs) if concat is not None else pa.Table.from_batches(runs).combine_chunks()


_KEY_COLUMNS = ("__key__", "key", "id")


def _batch_meta(batch: Any) -> list[dict[str, Any] | str | None]:
    """Each row's metadata (its ``json`` column), or why it cannot be read."""
    if "json" not in batch.schema.names:
        return [None] * batch.num_rows
    # By the values, not the column's type: the JSON text may come dictionary-encoded or as a
    # string view, whose reservations a check of the type names (string, binary) left unread.
    column = batch.column("json")
    return [_json_meta(value, column.type) for value in column.to_pylist()]


APART = "its __key__ is another row's too: made from a shard whose members were apart (a malformed shard)"


def sample_ids(batch: Any) -> list[tuple[Any, Any]] | None:
    """Each row's (``__url__``, ``__key__``), the webdataset sample it was made from, or None
    without a ``__key__`` column. A shard whose members were apart (a.jpg, b.jpg, a.json) read as
    webdataset and Hugging Face's loader read it gives two rows one id: a's image, without the
    JSON that may reserve it, and that JSON."""
    if "__key__" not in batch.schema.names:
        return None
    urls = batch.column("__url__").to_pylist() if "__url__" in batch.schema.names else [None] * batch.num_rows
    return list(zip(urls, batch.column("__key__").to_pylist(), strict=True))


def _shared_ids(pf: Any) -> set[int]:
    """The hashes of the sample ids (``sample_ids``) more than one row of the file has, read first
    from the id columns alone: every such row is dropped, the first one too (flagging only the
    later ones left the image of a split sample "keep" in the report). 8 bytes a row while read,
    not a Python set of every id; a hash two ids share drops both (fail closed)."""
    import numpy as np

    names = [c for c in ("__url__", "__key__") if c in pf.schema_arrow.names]
    if "__key__" not in names:
        return set()
    hashes = [np.fromiter(map(hash, ids), np.int64, batch.num_rows)
              for batch in pf.iter_batches(columns=names, batch_size=65536) if (ids := sample_ids(batch))]
    if not hashes:
        return set()
    values, counts = np.unique(np.concatenate(hashes), return_counts=True)
    return set(values[counts > 1].tolist())


def split_across_files(paths: list[str]) -> frozenset[tuple[Any, Any]]:
    """The ``(__url__, __key__)`` ids with rows in more than one of the Parquet files ``paths``:
    Hugging Face cuts a converted dataset into files by size, so one tar shard's rows may run on
    into the next file, and a sample split in that tar (its image here, the JSON that reserves
    it there) is seen by neither file's own check (``_shared_ids``).

    Only a shard (``__url__``) with rows in two files can hold such a sample: the first pass reads
    each file's ``__url__`` column and keeps the distinct values (one per tar shard); the second
    reads the ids of those shards alone. Memory: the distinct urls, and 8 bytes a row of the shards
    that cross a file boundary (in Hugging Face's ordered files, one shard a boundary). Files
    without ``__url__``, and rows whose ``__url__`` is null, are left out (a ``__key__`` alone
    names a sample only within its tar), as are files that cannot be read (their scan says why)."""
    if len(paths) < 2:
        return frozenset()
    import pyarrow as pa

    pq = _pyarrow()
    files: dict[Any, set[str]] = {}
    for path in paths:
        try:
            pf = pq.ParquetFile(path)
            if not {"__url__", "__key__"} <= set(pf.schema_arrow.names):
                continue
            for batch in pf.iter_batches(columns=["__url__"], batch_size=65536):
                for url in set(batch.column(0).to_pylist()) - {None}:
                    files.setdefault(url, set()).add(path)
        except (OSError, pa.ArrowException):
            continue
    crossing = {url for url, where in files.items() if len(where) > 1}
    import numpy as np

    # The crossing shards' ids as 8-byte hashes (this process's: never sent elsewhere), then the
    # ids themselves only for hashes met twice, counted exactly (a shared hash alone is no split).
    crossing_files = sorted({p for url in crossing for p in files[url]})
    hashes = [np.fromiter((hash(i) for i in ids if i[0] in crossing), np.int64)
              for ids in _ids_of(crossing_files) if crossing]
    if not hashes:
        return frozenset()
    values, counts = np.unique(np.concatenate(hashes), return_counts=True)
    twice = set(values[counts > 1].tolist())
    rows: dict[tuple[Any, Any], int] = {}
    for ids in _ids_of(crossing_files) if twice else ():
        for sample in ids:
            if sample[0] in crossing and hash(sample) in twice:
                rows[sample] = rows.get(sample, 0) + 1
    return frozenset(sample for sample, n in rows.items() if n > 1)


def _ids_of(paths: list[str]) -> Iterator[list[tuple[Any, Any]]]:
    """The sample ids of the files, batch by batch; a file that cannot be read is skipped."""
    import pyarrow as pa

    pq = _pyarrow()
    for path in paths:
        try:
            for batch in pq.ParquetFile(path).iter_batches(columns=["__url__", "__key__"], batch_size=65536):
                yield sample_ids(batch) or []
        except (OSError, pa.ArrowException):
            continue


def side_columns(batch: Any, exclude: set[str]) -> list[dict[str, Any]] | None:
    """Each row's url and recorded headers columns (other than the ``exclude``d bytes), or None
    when it has none. Read beside a json column too: one of captions left the headers unread."""
    wanted = [c for c in ("url", "headers", "response_headers", "http_headers") if c in batch.schema.names and c not in exclude]
    if not wanted:
        return None
    columns = {c: batch.column(c).to_pylist() for c in wanted}
    return [{c: columns[c][i] for c in wanted} for i in range(batch.num_rows)]


def _json_meta(value: Any, typ: Any) -> dict[str, Any] | str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        # The JSON already decoded (Hugging Face `datasets` stores a WebDataset's .json so): as
        # read from the text, was its headers' reservation ignored and the sample kept.
        decoded: dict[str, Any] = _as_json(value)
        return decoded
    if not isinstance(value, (str, bytes)):
        return f"the json column is {typ}, neither JSON text nor a struct; not read"
    bad = "the row's json column is not a JSON object"
    try:
        parsed = json.loads(value)
    except NOT_JSON:
        return bad
    return parsed if isinstance(parsed, dict) else bad


def _as_json(value: Any) -> Any:
    """A struct column's row as the JSON object it was made from. Arrow gives every row every field
    of the column (a header one row lacks is null in it): a null field is one the object lacked."""
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    return value


def _null_bytes(column: Any, child: str | None, i: int, where: str) -> str:
    """Why a row has no bytes. Hugging Face's Image struct may hold a ``path`` instead (an image
    kept outside the file, by ``datasets`` for local files): said, as it is not read."""
    if child and column.type.get_field_index("path") >= 0:
        path = column.field("path")[i].as_py()
        if path is not None:
            return f"{where} is null: the image is stored by path ({path}), outside the file, and not read"
    return f"{where} is null"


def _open_parquet(shard: Shard, options: ScanOptions) -> tuple[Any, str, str | None, set[int]] | str:
    """(the file, its bytes column, the struct field or None, ``_shared_ids``), or why it cannot be read."""
    import pyarrow as pa

    pq = _pyarrow()
    try:
        pf = pq.ParquetFile(shard.path)
        found = bytes_column(pf.schema_arrow, options.column)
    except (OSError, pa.ArrowException) as exc:
        return f"cannot open Parquet: {exc}"
    if isinstance(found, str):
        return found
    try:
        shared = _shared_ids(pf)
    except (OSError, pa.ArrowException) as exc:
        return f"unreadable Parquet: {exc}"
    return pf, *found, shared


def _scan_parquet(shard: Shard, options: ScanOptions) -> Iterator[Row]:
    """The file's rows, given once its filtered copy is published: rows read before damage keep
    their decisions (and are in the copy); a copy that cannot be written keeps none (``_spooled``)."""
    opened = _open_parquet(shard, options)
    if isinstance(opened, str):
        out = _out_path(shard, options)
        _unpublished(out)  # a copy an earlier run left there is not this run's
        yield shard_row(shard, opened + (NOT_WRITTEN if out is not None else ""), options.purpose)
        return
    found = opened

    def fill(spool: IO[bytes]) -> tuple[list[str], str | None]:
        return _parquet_rows(shard, options, found, spool), None

    yield from _spooled(shard, options, fill)


def _parquet_rows(shard: Shard, options: ScanOptions, opened: tuple[Any, str, str | None, set[int]],
                  spool: IO[bytes]) -> list[str]:
    """Decides the file's rows into ``spool`` (a JSON row a line) and writes the filtered copy;
    returns the shard rows' reasons (damage after some rows, rows of split samples)."""
    import pyarrow as pa

    pq = _pyarrow()
    out = _out_path(shard, options)
    pf, name, child, shared = opened
    key_column = next((c for c in _KEY_COLUMNS if c in pf.schema_arrow.names), None)
    returned: list[str] = []
    tail: list[str] = []
    with contextlib.ExitStack() as stack:
        writer = None
        if out is not None:
            fh = stack.enter_context(replacing(out))
            writer = stack.enter_context(pq.ParquetWriter(fh, pf.schema_arrow))
        index = 0
        try:
            for batch in pf.iter_batches(batch_size=options.batch_rows):
                column = batch.column(name)
                values = (column.field(child) if child else column).to_pylist()
                keys = batch.column(key_column).to_pylist() if key_column else [None] * batch.num_rows
                metas = _batch_meta(batch)
                sides = side_columns(batch, {name})
                ids = sample_ids(batch)
                keep: list[bool] = []
                rows: list[Row] = []
                for i, data in enumerate(values):
                    key = str(keys[i]) if keys[i] is not None else str(index + i)
                    meta = metas[i]
                    errors = []
                    if isinstance(meta, str):
                        errors.append(meta)
                        meta = None
                    if data is None:
                        errors.append(_null_bytes(column, child, i, f"row {index + i}: {name}.{child}" if child else f"row {index + i}: {name}"))
                    if ids is not None and (hash(ids[i]) in shared or ids[i] in options.split_ids):
                        errors.append(APART)
                        returned.append(key)
                    sample = _Sample(key, [(f"{key}", "", data)] if data is not None else [], meta, errors,
                                     columns=sides[i] if sides is not None else None)
                    decision = _decide(sample, options)
                    rows.append(_row(shard, key, decision))
                    keep.append(decision.keep)
                if writer is not None:
                    try:
                        if (kept := kept_rows(batch, keep)) is not None:
                            writer.write(kept)
                    except (OSError, pa.ArrowException) as exc:  # the copy's fault, not the file's
                        raise _CopyFailed(f"could not write its filtered copy: {exc}") from exc
                # after the batch is in the copy: a row said "keep" is one the copy has
                spool.writelines(json.dumps(row).encode() + b"\n" for row in rows)
                index += batch.num_rows
        except (OSError, pa.ArrowException) as exc:
            tail.append(f"unreadable Parquet after row {index}: {exc}")
        if returned:
            # Said (exit 1), but the copy is published: the ids were read before any row was decided,
            # so every row of a split sample was dropped (and left out of the copy), the first one
            # too, and every row kept is a whole sample, in the copy as the report says.
            tail.append(f"malformed: {len(returned)} row(s) of a __key__ another row (of this file or another "
                        f"of the dataset) has (the first: {returned[0]}), made from a shard whose members were "
                        "apart; those rows are dropped")
    return tail


def iter_shard(shard: Shard, options: ScanOptions) -> Iterator[Row]:
    """Report rows of one shard as its samples are decided (memory flat in the shard's size);
    writes its filtered copy when ``options.out_dir``, complete once the rows are exhausted."""
    if shard.kind == "tar":
        return _scan_tar(shard, options)
    if shard.kind == "parquet":
        return _scan_parquet(shard, options)
    return _scan_folder(shard, options)


def scan_shard(shard: Shard, options: ScanOptions) -> list[Row]:
    """Every report row of one shard (see :func:`iter_shard`)."""
    return list(iter_shard(shard, options))
