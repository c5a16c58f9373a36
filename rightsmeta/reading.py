"""One file read: its format found from its bytes, every carrier's values, and the decision.

``api.read`` is the public face; tagging reads its own output back through ``read_source`` too.
Reading never raises for what is inside a file: every problem becomes an error string in the
report, so a batch goes on.
"""

from __future__ import annotations

import mmap
import os
from typing import BinaryIO

from . import sidecar
from .carriers import Family, Options, detect, heads, manifest
from .decide import decide
from .errors import MalformedFile, RightsmetaError, UnknownFormat
from .fsio import Buffer, open_buffer
from .report import FileReport

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | mmap.mmap | BinaryIO
PathLike = str | os.PathLike[str]


def name_of(source: Source) -> str | None:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else None


def identify(buf: Buffer) -> tuple[Family, str]:
    if len(buf) == 0:
        raise MalformedFile("empty file (0 bytes)")
    found = detect(bytes(buf[:64]), buf)
    if found is None:
        raise heads.not_read(bytes(buf[:64]), buf)
    return found


def read_source(source: Source, name: str | None, options: Options, beside: str | None = None) -> FileReport:
    report = FileReport(name or name_of(source))
    try:
        if isinstance(source, (bytes, mmap.mmap)):  # in memory already (verify reads its files itself)
            _read_carriers(report, source, options)
        else:
            with open_buffer(source) as buf:
                _read_carriers(report, buf, options)
    except UnknownFormat as exc:
        if beside is not None and sidecar.is_raw(beside):  # a raw whose own bytes no family reads (CR3, RW2)
            report.errors.append(f"a camera raw whose own metadata rightsmeta does not read ({exc}); "
                                 "only its sidecar is read")
        else:
            report.errors.append(str(exc))
    except RightsmetaError as exc:
        report.errors.append(str(exc))
    except OSError as exc:
        report.errors.append(f"cannot read file: {exc.strerror or exc}")
    except MemoryError:  # the per-file memory bound: the caller reports it
        raise
    except Exception as exc:  # a bug of ours must not stop a scan of millions: said, not hidden
        report.errors.append(f"rightsmeta failed on this file ({type(exc).__name__}: {exc}); please report it")
    if beside is not None and beside != "-":
        report.carriers += sidecar.read(beside)
    for carrier in report.carriers:
        report.errors.extend(f"{carrier.name}: {e}" for e in carrier.errors)
        if carrier.values.get("validation_state") == "Invalid":  # signed, then changed: use fails closed
            codes = ", ".join(carrier.values.get("failures") or []) or "no reason given"
            report.errors.append(f"{carrier.name}: the manifest failed validation ({codes})")
        for key, value in carrier.rights.items():
            report.rights.setdefault(key, value)
    report.decision = decide(report.signals)
    return report


def _read_carriers(report: FileReport, buf: Buffer, options: Options) -> None:
    family, fmt = identify(buf)
    report.format = fmt
    report.carriers = family.read(buf, fmt, options)
    signed = manifest.read(buf, fmt, options)
    if signed is not None:
        report.carriers.append(signed)
