"""Carrier families: one module per family of file formats, each with the same small surface.

A family module offers (see ``Family``):

- ``FORMATS``: the format names it handles;
- ``sniff(head) -> format | None``: recognise a file from its first 64 bytes (magic numbers only);
- ``read(buf, fmt, options) -> list[CarrierReport]``: every carrier found; raises ``MalformedFile``
  when the container is broken (bad values inside a carrier go into ``CarrierReport.errors``);
- ``write(data, fmt, assertion, options) -> (bytes, carriers written)``: the new file, in memory;
  raises ``UnsupportedFormat`` / ``MalformedFile`` / ``MalformedMetadata``. The caller makes it
  durable (atomic replace) and reads it back before keeping it.

Adding a family is one module and one line in ``FAMILIES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol, cast

from ..model import Assertion
from ..report import CarrierReport
from . import heads, image, svg


@dataclass(frozen=True)
class Options:
    """Per-call settings a family may need; never global state."""

    password: str | None = None  # for encrypted documents
    trust_anchors: bytes | None = None  # PEM roots a C2PA signer may chain to ("Trusted")


class Family(Protocol):
    FORMATS: tuple[str, ...]

    def sniff(self, head: bytes) -> str | None: ...

    def read(self, buf: Any, fmt: str, options: Options) -> list[CarrierReport]: ...

    def write(self, data: bytes, fmt: str, assertion: Assertion, options: Options) -> tuple[bytes, list[str]]: ...


class _Lazy:
    """A family whose module, and the library it wraps (mutagen, pypdf, zipfile), is imported only when a
    file of its formats is read or written; recognising files needs only carriers/heads.py."""

    def __init__(self, name: str, sniff: Callable[[bytes], str | None], refine: Callable[[Any, str], str] | None = None):
        self._name, self.sniff = name, sniff
        if refine is not None:
            self.refine = refine

    def _module(self) -> ModuleType:
        return importlib.import_module(f"{__name__}.{self._name}")

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._module(), attr)


FAMILIES: tuple[Family, ...] = (
    cast(Family, image),
    cast(Family, _Lazy("audio", heads.sniff_audio, heads.refine_audio)),
    cast(Family, _Lazy("pdf", heads.sniff_pdf)),
    cast(Family, _Lazy("epub", heads.sniff_epub)),
    cast(Family, svg),
)


def detect(head: bytes, buf: Any = None) -> tuple[Family, str] | None:
    """The family and format name of a file from its first bytes, or None.

    A family may look further into ``buf`` (the whole file) with an optional ``refine(buf, fmt)``
    when the head alone can mislead (a FLAC behind a large ID3 tag).
    """
    for family in FAMILIES:
        fmt = family.sniff(head)
        if fmt is not None:
            refine = getattr(family, "refine", None)
            return family, (refine(buf, fmt) if refine is not None and buf is not None else fmt)
    return None
