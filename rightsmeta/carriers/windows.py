"""Reading only the parts of a large file that the readers look at: TIFF, WAV, AIFF, M4A, MP4, MOV.

A scan that reads every byte of an 800 KiB TIFF to find a 1 KiB XMP tag spends most of its
time copying pixels it never looks at. For these formats the readers look only at structure
and metadata, which the container walkers locate: a TIFF's header, its directory chain, and the
values of IFD0 and the Exif IFD; a WAV's or AIFF's chunk headers and every chunk but the sound
(``data``, ``SSND``); an M4A's, MP4's or MOV's top-level boxes but the media data (``mdat``). :func:`sparse` reads just those, with ``pread``, into a buffer of the
file's full length whose other bytes are zero, and the usual readers then run on it unchanged:
lengths, offsets and every bound they check are the file's own.

Fail closed: the windows are found by the very walkers the readers use (run over the open
file), and whenever anything is unusual the answer is None and the whole file is read as
before, so every error is found and worded by the readers themselves: a walk that raises or
reads too much, a file that shrinks meanwhile, a C2PA manifest (its validation hashes every
byte), a format the head does not settle, or windows that would not save much.
"""

from __future__ import annotations

import mmap
import os
import struct
from typing import Any

from ..errors import RightsmetaError
from . import bmff, detect, riff, tiff
from .heads import id3_size

#: Below this size one read of the whole file costs about what the windows would.
MIN_SIZE = 192 * 1024
#: Read with the first window: enough for any format's sniffing.
HEAD = 4096
#: Slices a walk may take before the whole file is read instead (a TIFF of 1,000s of pages).
MAX_READS = 2048
#: TIFF's C2PA tag: a manifest validates hashes of the whole file.
_C2PA_TAG = 0xCD41
#: Chunks holding the sound; every other chunk is read.
_SOUND = frozenset({b"data", b"SSND"})


class _GiveUp(Exception):
    """Leave the windows: read the whole file."""


class _File:
    """``len()`` and slices of an open file, read with pread into ``buf`` as they are asked for."""

    def __init__(self, fd: int, buf: mmap.mmap, head: int) -> None:
        self.fd, self.buf, self.reads, self.done = fd, buf, 0, head

    def __len__(self) -> int:
        return len(self.buf)

    def __getitem__(self, key: slice) -> bytes:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise _GiveUp
        start, stop, _ = key.indices(len(self.buf))
        if stop > self.done:
            self.fill(start, stop)
        return self.buf[start:stop]

    def fill(self, start: int, stop: int) -> None:
        self.reads += 1
        if self.reads > MAX_READS:
            raise _GiveUp
        if start < stop and os.preadv(self.fd, [memoryview(self.buf)[start:stop]], start) != stop - start:
            raise _GiveUp  # the file shrank since it was measured


def sparse(fd: int, size: int) -> mmap.mmap | None:
    """The file open at ``fd`` (``size`` bytes) with only its structure and metadata read, the
    rest zero; None when the whole file should be read."""
    if size < MIN_SIZE:
        return None
    try:
        buf = mmap.mmap(-1, size)  # anonymous: zero pages until written, and no file to shrink under it
    except OSError:  # beyond the address-space limit: the whole read says so as the readers always have
        return None
    file = _File(fd, buf, 0)
    try:
        file.fill(0, HEAD)
        file.done = HEAD
        head = buf[:12]
        movie = False
        if head[:4] in (b"II*\x00", b"MM\x00*"):
            ranges = _tiff(file)
        elif head[:4] == b"RIFF" and head[8:12] == b"WAVE" or head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            ranges = _riff(file, head[:4] == b"FORM")
        elif _is_movie(buf[:64]):
            ranges, movie = _bmff(file, buf), True
        else:
            return None
        if sum(stop - start for start, stop in ranges) > size // 2:
            return None
        for start, stop in ranges:
            if stop > file.done:  # not already read with the head
                file.fill(start, stop)
        if movie:
            _no_manifest(buf)
    except (_GiveUp, RightsmetaError, struct.error, IndexError, OverflowError, ValueError):
        return None
    return buf


# The walkers take anything sized and sliceable (typed as their buffers): a _File walks the open file.
def _tiff(file: Any) -> list[tuple[int, int]]:
    order = tiff.byte_order(file)
    ifd0 = tiff.first_ifd_offset(file, order)
    entries, after = tiff.read_ifd(file, ifd0, order)
    if any(e.tag == _C2PA_TAG for e in entries):
        raise _GiveUp
    tiff.ifd_chain(file, ifd0, after, order, MAX_READS)
    pointer = next((e for e in entries if e.tag == tiff.EXIF_IFD_POINTER), None)
    if pointer is not None:
        entries = entries + tiff.read_ifd(file, tiff.sub_ifd_offset(pointer, order), order)[0]
    return [(e.value_pos, e.value_pos + e.size) for e in entries
            if e.size is not None and e.size > 4 and e.value_pos + e.size <= len(file)]


def _riff(file: Any, iff: bool) -> list[tuple[int, int]]:
    forms = (b"AIFF", b"AIFC") if iff else (b"WAVE",)
    walked = riff.walk(file, forms, iff=iff, short_tail=True)  # as the audio reader walks it
    if not iff:
        riff.walk(file, forms, lenient_size=True)  # as the C2PA locator does: it must not stumble either
    if any(c.fourcc == b"C2PA" for c in walked.chunks):
        raise _GiveUp
    ranges = [(c.data_start, walked.padded_end(c)) for c in walked.chunks if c.fourcc not in _SOUND]
    for chunk in walked.chunks:
        # The audio reader bounds an ID3 tag in its chunk by the tag's own size, checked against
        # the file: one claiming more than its chunk is read into what follows, so that is read too.
        end = id3_size(file, chunk.data_start) if chunk.fourcc in (b"id3 ", b"ID3 ") else None
        if end is not None:
            ranges.append((chunk.data_start, min(end, len(file))))
    return ranges


__all__ = ["sparse"]


def _is_movie(head: bytes) -> bool:
    """M4A, MP4 or MOV as detection names it (not HEIF or AVIF, whose items may lie in 'mdat')."""
    found = detect(head)
    return found is not None and found[1] in ("m4a", "mp4", "mov")


def _bmff(file: _File, buf: mmap.mmap) -> list[tuple[int, int]]:
    """Every top-level box but the media data: the audio reader walks 'moov' and the 'uuid' boxes."""
    boxes = []
    # The walker is a generator reading each header as it goes on: the next header is read in
    # before it resumes. Its policies are the audio reader's (carriers/bmff.py, Walker.top).
    walker = bmff.boxes(buf, 0, len(buf), what="MP4", open_ended=True, printable=True, tail="zeros")
    for box in walker:
        boxes.append(box)
        if len(boxes) > MAX_READS:
            raise _GiveUp
        file.fill(box.end, min(box.end + 16, len(buf)))
    return [(box.payload, box.end) for box in boxes if box.type != b"mdat"]


def _no_manifest(buf: mmap.mmap) -> None:
    """Give up on a C2PA store, and on a file the C2PA locator's walk would stumble on (it then
    searches windows of the file for the store)."""
    if bmff.c2pa_ranges(buf, MAX_READS):  # the top-level boxes, fewer than MAX_READS: walked above
        raise _GiveUp
