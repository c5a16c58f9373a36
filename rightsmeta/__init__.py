"""rightsmeta: say inside a file whether it may be used to train AI, and check it is still there.

    >>> import rightsmeta
    >>> assertion = rightsmeta.Assertion.build(deny=["ai"], holder="Ada Lovelace")
    >>> rightsmeta.tag("photo.jpg", assertion).status        # doctest: +SKIP
    'tagged'
    >>> rightsmeta.read("photo.jpg").permissions             # doctest: +SKIP
"""

from __future__ import annotations

from .api import read, tag, tag_bytes, walk
from .decide import Decision
from .errors import (
    MalformedFile,
    MalformedMetadata,
    RightsmetaError,
    UnknownFormat,
    UnsupportedFormat,
    UsageError,
    WriteError,
)
from .model import PURPOSES, Assertion, Holder, Permission, Purpose, State
from .report import CarrierReport, FileReport, TagResult

__version__ = "0.1.0"

__all__ = [
    "PURPOSES",
    "Assertion",
    "CarrierReport",
    "Decision",
    "FileReport",
    "Holder",
    "MalformedFile",
    "MalformedMetadata",
    "Permission",
    "Purpose",
    "RightsmetaError",
    "State",
    "TagResult",
    "UnknownFormat",
    "UnsupportedFormat",
    "UsageError",
    "WriteError",
    "read",
    "tag",
    "tag_bytes",
    "walk",
]
