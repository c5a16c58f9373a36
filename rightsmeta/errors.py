"""Every exception rightsmeta raises.

One root, :class:`RightsmetaError`; each subclass also inherits the built-in a
caller would naturally catch (``ValueError`` for bad input), so code that does
not know rightsmeta still handles them sensibly.
"""

from __future__ import annotations


class RightsmetaError(Exception):
    """Root of every error raised by rightsmeta."""


class UsageError(RightsmetaError, ValueError):
    """The caller asked for something that does not exist (unknown purpose, bad URL...)."""


class UnsupportedFormat(RightsmetaError, ValueError):
    """The file's format is not one rightsmeta knows, or cannot be written in this carrier."""


class MalformedFile(RightsmetaError, ValueError):
    """The file claims a format but its structure is broken (truncated, bad lengths...)."""


class MalformedMetadata(RightsmetaError, ValueError):
    """A metadata block is unsafe or invalid (XML entity declarations, bad values...)."""


class WriteError(RightsmetaError, OSError):
    """Writing the file failed; the original is untouched."""


class UnknownFormat(UnsupportedFormat):
    """The file is not one of the formats rightsmeta knows at all (a folder's stray .txt)."""


class FileBusy(WriteError):
    """Another program holds the file locked for longer than rightsmeta waits; the file is untouched."""


class ContentChanged(WriteError):
    """Writing the metadata would have changed the content (pixels, samples, pages); the original is kept."""
