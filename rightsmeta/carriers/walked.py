"""Container walks remembered for the versions of one file while it is tagged.

A tag walks each version of a JPEG, PNG or WebP several times: the C2PA locator, the block
extraction, the writer and the content check each need its segments or chunks (of a TIFF, its
first directory). With the tag's
``carriers.Parsed`` the first walk of a buffer is kept and the others reuse it (a walk's result is
immutable, and ``Parsed`` holds the buffer, so its identity stays valid); without one (a plain
read) every call walks, as before. A walk that raises keeps nothing, so the next caller raises too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from . import jpeg, png, riff, tiff

if TYPE_CHECKING:
    from . import Parsed

_T = TypeVar("_T")


def _once(parsed: Parsed | None, kind: str, buf: Any, walk: Callable[[Any], _T]) -> _T:
    if parsed is None:
        return walk(buf)
    found: _T | None = parsed.find(kind, buf)
    if found is None:
        found = walk(buf)
        parsed.keep(kind, buf, found)
    return found


def jpeg_layout(buf: Any, parsed: Parsed | None) -> jpeg.Layout:
    return _once(parsed, "jpeg.walk", buf, jpeg.walk)


def png_chunks(buf: Any, parsed: Parsed | None) -> list[png.Chunk]:
    return _once(parsed, "png.walk", buf, png.walk)


def _webp(buf: Any) -> riff.Riff:
    return riff.walk(buf, b"WEBP")


def webp_chunks(buf: Any, parsed: Parsed | None) -> riff.Riff:
    return _once(parsed, "riff.walk WEBP", buf, _webp)


def tiff_directory(buf: Any, parsed: Parsed | None) -> tiff.Directory:
    return _once(parsed, "tiff.first_directory", buf, tiff.first_directory)
