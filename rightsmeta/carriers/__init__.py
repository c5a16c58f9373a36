"""Carrier families: one module per family of file formats, each with the same small surface.

A family module offers ``FORMATS``, ``sniff(head) -> format | None`` (magic bytes only),
``read(buf, fmt) -> list[CarrierReport]`` and ``write(data, fmt, assertion, existing)``.
Adding a family is one module and one line in ``FAMILIES``.
"""

from __future__ import annotations

from types import ModuleType

from . import image

FAMILIES: tuple[ModuleType, ...] = (image,)


def detect(head: bytes) -> tuple[ModuleType, str] | None:
    """The family and format name of a file from its first bytes, or None."""
    for family in FAMILIES:
        fmt = family.sniff(head)
        if fmt is not None:
            return family, fmt
    return None
