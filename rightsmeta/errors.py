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


class FolderNotWalked(UsageError):
    """A folder was named to ``api.walk`` without ``recursive``; ``path`` is the folder. Its own
    class so a command line can say it in its own words (its -r option)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path} is a folder; pass recursive=True to include the files below it")
        self.path = path


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


class LeaveToLibrary(Exception):
    """Input a fast reader of ours (audiotags, pdfobjects) does not read exactly as the library
    it stands in for (mutagen, pypdf) would: the caller reads the file with that library instead.
    Internal: caught where the fallback is made, never raised to a caller of rightsmeta."""


class Undecodable(Exception):
    """A decoder's bound was hit, or the content cannot be decoded: the text is the reason.
    Internal: ``fingerprint.essence`` turns it into an essence that says why it has no hash."""


# What json.loads raises for text from anyone: not JSON (ValueError), or nested deeper than the
# parser recurses (RecursionError). Caught as one wherever such text is read.
NOT_JSON = (ValueError, RecursionError)


class TimeLimit(BaseException):
    """A per-file time limit struck (raised from a SIGALRM handler in a worker's main thread).

    Not an ``Exception`` on purpose: decoders and third-party libraries catch ``Exception``, and
    swallowing the limit there would turn giving up into an answer ("untagged", "allowed").
    """


def on_alarm(signum: int, frame: object) -> None:
    """SIGALRM handler for the per-file time limit; callers install it only where they own the process."""
    raise TimeLimit
