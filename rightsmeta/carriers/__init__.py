"""Carrier families: one module per family of file formats, each with the same small surface.

A family module offers (registered as a typed ``Family`` in ``FAMILIES``):

- ``FORMATS``: the format names it handles;
- ``sniff(head) -> format | None``: recognise a file from its first 64 bytes (magic numbers only);
- ``read(buf, fmt, options) -> list[CarrierReport]``: every carrier found; raises ``MalformedFile``
  when the container is broken (bad values inside a carrier go into ``CarrierReport.errors``);
- ``write(data, fmt, assertion, options) -> (new file, carriers written)``: the new file, in memory,
  as bytes or as the pieces it is spliced from (``splice.Spliced``, joined by ``bytes()``);
  raises ``UnsupportedFormat`` / ``MalformedFile`` / ``MalformedMetadata``. The caller makes it
  durable (atomic replace) and reads it back before keeping it.

Adding a family is one module and one line in ``FAMILIES``. The container syntaxes the families
share each have one walker module that reads within bounds, locates (XMP, EXIF, the C2PA store)
and splices: jpeg.py (segments), png.py (chunks), riff.py (RIFF chunks, and AIFF's big-endian
IFF), tiff.py (IFDs) and bmff.py (ISO-BMFF boxes, for images and MP4/M4A/MOV alike), with
splice.py rebuilding a file from their ranges; ID3v2 frames are walked by ``audiotags.frames``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..model import Assertion
from ..report import CarrierReport
from . import heads, image, svg
from .splice import Spliced


class Parsed:
    """What was parsed of one file's versions (the original, the tagged bytes) while it is
    tagged, so that its writer, its read-back and its content check parse each version once.
    ``api`` makes one per file; never shared between files or threads. An entry is found by
    the buffer itself (identity), which it holds, so that the identity stays valid."""

    def __init__(self) -> None:
        self._kept: list[tuple[str, Any, Any]] = []
        #: What the writer has to tell the user of this file (an old notice it had to leave): the
        #: family's ``write`` returns only the new file and its carriers.
        self.notes: list[str] = []

    def find(self, kind: str, buf: Any) -> Any:
        """What was kept for ``buf`` under ``kind`` (a module's name), or None."""
        return next((value for k, b, value in self._kept if k == kind and b is buf), None)

    def keep(self, kind: str, buf: Any, value: Any) -> None:
        self._kept.append((kind, buf, value))

    def kept(self, kind: str) -> list[Any]:
        """Everything kept under ``kind``, oldest first."""
        return [value for k, _, value in self._kept if k == kind]


@dataclass(frozen=True)
class Options:
    """Per-call settings a family may need; never global state."""

    password: str | None = None  # for encrypted documents
    trust_anchors: bytes | None = None  # PEM roots a C2PA signer may chain to ("Trusted")
    # A dict given by a caller that reads ONE buffer with these options (api.read): the family's
    # walk records there, by format, where a C2PA store may sit (JPEG APP11, PNG caBX, WebP C2PA
    # chunk), so the manifest locator need not walk the file again. None (options shared across
    # files, as tagging does) records nothing. An entry exists only after a walk that succeeded.
    located: dict[str, list[tuple[int, int]]] | None = field(default=None, compare=False, repr=False)
    # One file's tag (tagging.tag_data): what its writer and read-back parsed, for the next step.
    parsed: Parsed | None = field(default=None, compare=False, repr=False)

    def but(self, *, located: dict[str, list[tuple[int, int]]] | None, parsed: Parsed | None) -> Options:
        """A copy with ``located`` and ``parsed`` set (both said, so none is dropped by omission): ``dataclasses.replace``'s result, without its
        field walk and frozen ``__init__`` (twice per file tagged, 1 % of a tag's instructions)."""
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__, located=located, parsed=parsed)
        return copy


Reader = Callable[[Any, str, Options], list[CarrierReport]]
Writer = Callable[[bytes, str, Assertion, Options], tuple[bytes | Spliced, list[str]]]


@dataclass(frozen=True)
class Family:
    """One family of formats, as registered in ``FAMILIES``; mypy checks every function given."""

    name: str
    FORMATS: tuple[str, ...]
    sniff: Callable[[bytes], str | None]
    read: Reader
    write: Writer
    #: Looks further into the whole file when the head alone can mislead (a FLAC behind a large ID3 tag).
    refine: Callable[[Any, str], str] | None = None


# The audio, PDF and EPUB families, and the library each wraps (mutagen, pypdf, zipfile), are
# imported only when a file of their formats is read or written; recognising files needs only
# carriers/heads.py. Each wrapper is a typed call, so the families' signatures are checked too.


def _audio_read(buf: Any, fmt: str, options: Options) -> list[CarrierReport]:
    from . import audio

    return audio.read(buf, fmt, options)


def _audio_write(data: bytes, fmt: str, assertion: Assertion, options: Options) -> tuple[bytes, list[str]]:
    from . import audio

    return audio.write(data, fmt, assertion, options)


def _pdf_read(buf: Any, fmt: str, options: Options) -> list[CarrierReport]:
    from . import pdf

    return pdf.read(buf, fmt, options)


def _pdf_write(data: bytes, fmt: str, assertion: Assertion, options: Options) -> tuple[bytes | Spliced, list[str]]:
    from . import pdf

    return pdf.write(data, fmt, assertion, options)


def _epub_read(buf: Any, fmt: str, options: Options) -> list[CarrierReport]:
    from . import epub

    return epub.read(buf, fmt, options)


def _epub_write(data: bytes, fmt: str, assertion: Assertion, options: Options) -> tuple[bytes, list[str]]:
    from . import epub

    return epub.write(data, fmt, assertion, options)


FAMILIES: tuple[Family, ...] = (
    Family("image", image.FORMATS, image.sniff, image.read, image.write),
    Family("audio", heads.AUDIO_FORMATS, heads.sniff_audio, _audio_read, _audio_write, heads.refine_audio),
    Family("pdf", ("pdf",), heads.sniff_pdf, _pdf_read, _pdf_write),
    Family("epub", ("epub",), heads.sniff_epub, _epub_read, _epub_write),
    Family("svg", svg.FORMATS, svg.sniff, svg.read, svg.write),
)


def detect(head: bytes, buf: Any = None) -> tuple[Family, str] | None:
    """The family and format name of a file from its first bytes, or None.

    A family may look further into ``buf`` (the whole file) with its ``refine(buf, fmt)``
    when the head alone can mislead (a FLAC behind a large ID3 tag).
    """
    for family in FAMILIES:
        fmt = family.sniff(head)
        if fmt is not None:
            refine = family.refine
            return family, (refine(buf, fmt) if refine is not None and buf is not None else fmt)
    return None
