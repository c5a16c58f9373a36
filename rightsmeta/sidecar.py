"""XMP sidecars: the metadata photographers keep beside a camera raw (``IMG_0001.xmp`` beside
``IMG_0001.CR2``, as Lightroom, Bridge, Capture One and ExifTool's ``-o %d%f.xmp`` write it;
``IMG_0001.CR2.xmp``, as darktable and digiKam do).

Reading: a file read from a path has the sidecars beside it read too, each reported as its own
carrier (``xmp-sidecar``) whose location names the sidecar and says it does not travel with
the file (a copy of the raw alone, or an upload, has none of it).

Writing: a proprietary camera raw (CR2, NEF, ARW, ...) is never rewritten: the raw converters
that read it keep their edits in a sidecar, and a vendor's raw holds maker notes at offsets no
tool but the vendor's promises to keep. Its statement goes into its sidecar instead: the
existing one is updated (every other property kept), else ``NAME.xmp`` is made, atomically.
DNG is not one of them: Adobe's own tools write XMP inside it, and so does rightsmeta.

Sidecars are small XML files beside the user's own: read within ``xmp.MAX_PACKET`` bytes by the
hardened XMP parser; not a regular file (a FIFO, a device) is an error, never opened to block.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator

from . import xmp
from .decide import decide
from .errors import MalformedMetadata, WriteError
from .fsio import atomic_write, kind_of, locked
from .listing import Alone
from .model import PURPOSES, Assertion
from .report import CarrierReport

#: The camera raw formats written through a sidecar, by extension (lower case, with the dot).
RAW_EXTENSIONS = frozenset(
    ".3fr .ari .arw .bay .cr2 .cr3 .crw .dcr .dcs .erf .fff .iiq .k25 .kdc .mef .mos .mrw .nef .nrw .orf "
    ".ori .pef .raf .rw2 .rwl .sr2 .srf .srw .x3f".split()
)
CARRIER = "xmp-sidecar"


def is_raw(path: str) -> bool:
    """Whether ``path`` names a proprietary camera raw, which is tagged through its sidecar."""
    return os.path.splitext(path)[1].lower() in RAW_EXTENSIONS


def find(path: str) -> list[str]:
    """The sidecars beside ``path`` (each file once, on a case-insensitive file system too):
    ``stem.xmp`` (Lightroom, ExifTool), then ``name.xmp`` (darktable), each in both cases
    (cameras and Windows tools write upper case).

    Every file read from a path asks this, so it is kept to four ``access`` calls, which say
    "absent" without the exception a failed ``stat`` costs (measured in docs/creators.md)."""
    if isinstance(path, Alone):
        return []  # listed by a walk in a folder holding no .xmp file (nor a link)
    if os.path.islink(path):
        path = os.path.realpath(path)  # where `tag` writes a linked raw's sidecar: beside the raw itself
    stem, ext = os.path.splitext(path)
    if ext.lower() == ".xmp":
        return []  # a sidecar has no sidecar
    found, seen = [], set()
    raw = is_raw(path)
    for candidate in (stem + ".xmp", stem + ".XMP", path + ".xmp", path + ".XMP"):
        if not os.access(candidate, os.F_OK):  # absent (most files), or not reachable
            continue
        if not raw and len(candidate) == len(stem) + 4 and _raw_beside(stem):
            continue  # IMG_0001.xmp beside IMG_0001.CR2 and IMG_0001.JPG is the raw's (RAW+JPEG shooting)
        try:
            info = os.stat(candidate)
        except OSError:
            continue
        if (info.st_dev, info.st_ino) not in seen:
            seen.add((info.st_dev, info.st_ino))
            found.append(candidate)
    return found


def _raw_beside(stem: str) -> bool:
    """Whether a camera raw named ``stem`` plus a raw extension is in the folder (asked only when
    ``stem.xmp`` exists: the folder is listed then, not probed for thirty extensions)."""
    folder, name = os.path.split(stem)
    try:
        with os.scandir(folder or ".") as entries:
            return any(os.path.splitext(entry.name)[0] == name and is_raw(entry.name) for entry in entries)
    except OSError:
        return False


class Owners:
    """Which ``.xmp`` files of the folder a walk is in are the sidecars of another file there
    (``IMG_0001.xmp`` of ``IMG_0001.CR2``, ``photo.jpg.xmp`` of ``photo.jpg``). One walk's own;
    a folder is listed (twice, holding only its sidecars' stems) when its first ``.xmp`` is met."""

    def __init__(self) -> None:
        self.folder: str | None = None
        self.stems: set[str] = set()

    def owned(self, path: str) -> bool:
        if path[-4:].lower() != ".xmp":  # most files: asked of every file a walk yields
            return False
        folder, name = os.path.split(path)
        stem, ext = os.path.splitext(name)
        if ext.lower() != ".xmp":
            return False
        if os.path.splitext(stem)[1] and os.access(path[:-4], os.F_OK):
            return True  # darktable's photo.jpg.xmp, beside photo.jpg
        if folder != self.folder:
            self.folder, self.stems = folder, _owned_stems(folder)
        return stem in self.stems


def _owned_stems(folder: str) -> set[str]:
    """The stems of the folder's ``.xmp`` files that another file of the folder has."""
    def names() -> Iterator[tuple[str, str]]:  # streamed: a folder's names are never all held
        try:
            with os.scandir(folder or ".") as entries:
                for entry in entries:
                    yield os.path.splitext(entry.name)
        except OSError:
            return

    sidecars = {stem for stem, ext in names() if ext.lower() == ".xmp"}
    return {stem for stem, ext in names() if stem in sidecars and ext.lower() != ".xmp"}


def _location(sidecar: str) -> str:
    return f"sidecar {os.path.basename(sidecar)} (beside the file; it does not travel with it)"


def _read_bounded(fd: int) -> bytes:
    info = os.fstat(fd)
    kind = kind_of(info.st_mode)
    if kind is not None:
        raise MalformedMetadata(f"{kind}, not a regular file")
    if info.st_size > xmp.MAX_PACKET:
        raise MalformedMetadata(f"{info.st_size} bytes, more than the {xmp.MAX_PACKET} an XMP packet may have")
    chunks, total = [], 0
    while total <= xmp.MAX_PACKET:  # bounded even if the file grows while it is read
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > xmp.MAX_PACKET:
        raise MalformedMetadata(f"more than the {xmp.MAX_PACKET} bytes an XMP packet may have")
    return b"".join(chunks)


def read(path: str) -> list[CarrierReport]:
    """A carrier report per sidecar beside ``path``; one that cannot be read says why."""
    reports = []
    for sidecar in find(path):
        try:
            # O_NONBLOCK: a FIFO named like a sidecar must not wait for a writer (refused above).
            fd = os.open(sidecar, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
            try:
                packet = _read_bounded(fd)
            finally:
                os.close(fd)
        except (OSError, MalformedMetadata) as exc:
            text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            reports.append(CarrierReport(CARRIER, _location(sidecar), errors=[f"sidecar not read: {text}"]))
            continue
        reports.append(xmp.carrier_report(packet, _location(sidecar), name=CARRIER))
    return reports


def _updated(packet: bytes | None, assertion: Assertion, sidecar: str) -> bytes:
    """The sidecar's new packet: ``packet`` (None: a new sidecar) with the statement, every other
    property kept; read back before it is kept, as an in-file write is."""
    try:
        root = xmp.parse(packet) if packet is not None else xmp.parse(xmp.merge_packet(None, {}))
        xmp.apply(root, xmp.updates(assertion, xmp.raw(root)))
        # The prefixes the sidecar declared stay (darktable's own, say); a valid XML name only.
        declared = re.findall(rb"""xmlns:([A-Za-z_][\w.-]{0,63})\s*=\s*["']([^"'<>]{1,1024})["']""", packet or b"")
        new = xmp.serialise(root, known={ns.decode("utf-8", "replace"): p.decode() for p, ns in declared})
        check = xmp.read(new, carrier=CARRIER)
    except MalformedMetadata as exc:
        raise WriteError(f"the sidecar {os.path.basename(sidecar)} is not XMP rightsmeta can edit safely ({exc}); "
                         "nothing written") from None
    decided = decide(check.signals).permissions
    wrong = [p.value for p in PURPOSES if decided[p] != assertion.permissions[p]]
    if check.errors or wrong:
        problems = check.errors + [f"{p} reads back differently" for p in wrong]
        raise WriteError(f"the sidecar {os.path.basename(sidecar)} did not read back as written; unchanged ({'; '.join(problems)})")
    return new


def write(path: str, assertion: Assertion, *, dry_run: bool = False, dirs_to_sync: set[str] | None = None,
          notes: list[str] | None = None) -> list[str]:
    """Put ``assertion`` into the sidecars of ``path`` (the existing ones, else a new ``stem.xmp``),
    each replaced atomically; the sidecars written (or that would be). Raises WriteError.
    ``notes`` is given what the user should know of a sidecar written (its hard links split)."""
    written = []
    for found in find(path) or [f"{os.path.splitext(path)[0]}.xmp"]:
        sidecar = os.path.realpath(found)  # a linked sidecar stays a link; the file it names is updated
        try:
            if not os.path.lexists(sidecar):
                new = _updated(None, assertion, sidecar)
                if not dry_run:
                    atomic_write(sidecar, new, dirs_to_sync=dirs_to_sync)
            else:
                # Locked for the read-modify-replace, as a tagged file is: a concurrent tag is not lost.
                with locked(sidecar) as fd:
                    before = os.fstat(fd)
                    new = _updated(_read_bounded(fd), assertion, sidecar)
                    if not dry_run:
                        atomic_write(sidecar, new, expect=before, dirs_to_sync=dirs_to_sync)
                        if before.st_nlink > 1 and notes is not None:
                            # As for a tagged file (tagging.result_of): the other names keep the old sidecar.
                            notes.append(
                                f"the sidecar {os.path.basename(found)} had {before.st_nlink} hard links; this name now "
                                f"holds the tagged sidecar, the other {before.st_nlink - 1} still hold the untagged "
                                "version (an atomic replace writes a new file)")
        except MalformedMetadata as exc:  # not a regular file, or too large
            raise WriteError(f"the sidecar {os.path.basename(sidecar)} was not changed: {exc}") from None
        except OSError as exc:
            raise WriteError(f"cannot write the sidecar {os.path.basename(sidecar)}: {exc.strerror or exc}") from None
        written.append(found)
    return written


def regular(path: str) -> bool:
    """Whether ``path`` is a regular file (following links), for a raw that is tagged by its sidecar."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False
