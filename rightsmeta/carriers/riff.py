"""RIFF chunks (WebP, WAV) and their big-endian IFF form (AIFF): the one walker that reads,
locates and splices them.

Used by reading (carriers/containers.py, carriers/audio.py), by the WebP XMP writer
(carriers/image.py) and by the C2PA locator (carriers/manifest.py). Sizes are checked against the
RIFF size and the file before use; the walk is bounded. Chunks are padded to even sizes; a final
chunk without its pad byte is tolerated, as some writers drop it.

IFF (``FORM`` ... ``AIFF``/``AIFC``) is the same syntax with big-endian sizes, so ``iff=True``
walks it with the same code; only the magic and the byte order differ.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

from ..errors import MalformedFile
from ..xmp import begins_packet
from . import jumbf, splice
from .splice import Spliced
from .tiff import Buffer, begins_exif

#: Upper bound on chunks walked in one file; real files stay far below it.
MAX_CHUNKS = 100_000

#: A chunk header, (fourcc, size): little-endian in RIFF, big-endian in IFF (keyed by ``iff``).
_HEADERS = {False: struct.Struct("<4sI").unpack, True: struct.Struct(">4sI").unpack}

#: VP8X flag bits (WebP container specification).
VP8X_ICC, VP8X_ALPHA, VP8X_EXIF, VP8X_XMP, VP8X_ANIMATION = 0x20, 0x10, 0x08, 0x04, 0x02
#: Chunks that come before XMP in an extended WebP file (XMP follows EXIF, unknown chunks follow XMP).
_BEFORE_XMP = frozenset({b"VP8X", b"ICCP", b"ANIM", b"ANMF", b"ALPH", b"VP8 ", b"VP8L", b"EXIF"})


@dataclass(frozen=True, slots=True)
class Chunk:
    fourcc: bytes
    start: int
    size: int

    @property
    def data_start(self) -> int:
        return self.start + 8

    @property
    def end(self) -> int:  # after the data, before any pad byte
        return self.start + 8 + self.size


@dataclass(frozen=True)
class Riff:
    form: bytes  # b"WEBP", b"WAVE", b"AIFF", b"AIFC"
    chunks: tuple[Chunk, ...]
    end: int  # 8 + the RIFF size: where the RIFF data ends (trailing bytes may follow)

    def padded_end(self, chunk: Chunk) -> int:
        return min(chunk.end + (chunk.size & 1), self.end)


def walk(
    buf: Buffer,
    form: bytes | tuple[bytes, ...],
    *,
    lenient_size: bool = False,
    iff: bool = False,
    name: str | None = None,
    short_tail: bool = False,
) -> Riff:
    """Every chunk of a RIFF file of type ``form`` (or of any of the types in a tuple).

    ``lenient_size`` clamps a RIFF size that runs past the file (some WAV writers leave it
    wrong); otherwise that is a truncation. ``iff`` walks the big-endian ``FORM`` of AIFF.
    ``short_tail`` ends the walk at fewer than 8 bytes left before the RIFF end (the audio
    reader has always let WAV/AIFF writers leave such slack) instead of calling it a cut-off
    chunk header. ``name`` is the file type error messages give (default: the form).
    """
    n = len(buf)
    forms = (form,) if isinstance(form, bytes) else form
    magic = b"FORM" if iff else b"RIFF"
    order: Literal["big", "little"] = "big" if iff else "little"
    name = name or forms[0].decode("ascii", "replace").strip()
    if n < 12 or buf[:4] != magic or bytes(buf[8:12]) not in forms:
        raise MalformedFile(f"not a {name}: no {magic.decode()}/{forms[0].decode('ascii', 'replace')} header at offset 0")
    riff_end = 8 + int.from_bytes(buf[4:8], order)
    if riff_end > n:
        if not lenient_size:
            raise MalformedFile(
                f"truncated {name}: {magic.decode()} header claims {riff_end} bytes but the file ends at {n}"
            )
        riff_end = n
    chunks: list[Chunk] = []
    pos = 12
    header = _HEADERS[iff]  # one slice and one C call per chunk: a scan walks every WAV and WebP
    for _ in range(MAX_CHUNKS):
        if pos >= riff_end or (short_tail and pos + 8 > riff_end):
            return Riff(bytes(buf[8:12]), tuple(chunks), riff_end)
        if pos + 8 > riff_end:
            raise MalformedFile(f"truncated {name}: chunk header at offset {pos} runs past the RIFF end {riff_end}")
        fourcc, size = header(buf[pos : pos + 8])
        end = pos + 8 + size
        if end > riff_end:
            raise MalformedFile(
                f"truncated {name}: {fourcc!r} chunk at offset {pos} claims {size} bytes "
                f"but the RIFF data ends at {riff_end}"
            )
        chunks.append(Chunk(fourcc, pos, size))
        pos = end + (size & 1)
    raise MalformedFile(f"{name}: more than {MAX_CHUNKS} chunks")


def data(buf: Buffer, chunk: Chunk) -> bytes:
    return bytes(buf[chunk.data_start : chunk.end])


def find(riff: Riff, fourcc: bytes) -> list[Chunk]:
    return [c for c in riff.chunks if c.fourcc == fourcc]


# Chunks of the essence (WebP's image data, WAV's samples): never a store's place.
_MEDIA = frozenset({b"VP8 ", b"VP8L", b"ALPH", b"ANMF", b"data"})


def c2pa_ranges(riff: Riff, buf: Buffer) -> list[tuple[int, int]]:
    """C2PA chunks, where a C2PA store lives, and any other chunk but the essence holding one (jumbf.py)."""
    return [(c.start, c.end) for c in riff.chunks
            if c.fourcc == b"C2PA" or (c.fourcc not in _MEDIA and jumbf.holds_store(buf, c.start, c.end))]


# Chunks a WebP names for what they are: whatever else begins with an XMP packet was an XMP chunk.
_WEBP_KNOWN = frozenset({b"VP8X", b"ICCP", b"ANIM", b"EXIF", b"XMP ", b"C2PA"}) | _MEDIA


def misnamed_metadata(riff: Riff, buf: Buffer) -> Chunk | None:
    """A WebP chunk of no known type that begins with an XMP packet or an EXIF block: an ``XMP ``
    or ``EXIF`` chunk whose type was damaged, which no reader takes for what it is (the file would
    read as holding no statement)."""
    for c in riff.chunks:
        if c.fourcc not in _WEBP_KNOWN and (begins_packet(buf, c.data_start, min(c.end, c.data_start + 96))
                                            or begins_exif(bytes(buf[c.data_start : min(c.end, c.data_start + 10)]))):
            return c
    return None


def make(fourcc: bytes, body: bytes) -> bytes:
    return fourcc + len(body).to_bytes(4, "little") + body + (b"\x00" if len(body) & 1 else b"")


def _canvas(buf: Buffer, riff: Riff) -> tuple[int, int, int]:
    """(width, height, VP8X flags) of a simple-format WebP, read from its VP8 or VP8L header."""
    for chunk in riff.chunks:
        body = bytes(buf[chunk.data_start : min(chunk.end, chunk.data_start + 10)])
        if chunk.fourcc == b"VP8 ":
            if len(body) < 10 or body[3:6] != b"\x9d\x01\x2a":
                raise MalformedFile(f"WebP: VP8 chunk at offset {chunk.start} has no key frame header")
            width = int.from_bytes(body[6:8], "little") & 0x3FFF
            height = int.from_bytes(body[8:10], "little") & 0x3FFF
            return width, height, 0
        if chunk.fourcc == b"VP8L":
            if len(body) < 5 or body[0] != 0x2F:
                raise MalformedFile(f"WebP: VP8L chunk at offset {chunk.start} has no signature")
            bits = int.from_bytes(body[1:5], "little")
            alpha = VP8X_ALPHA if (bits >> 28) & 1 else 0
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, alpha
    raise MalformedFile("WebP: no VP8X, VP8 or VP8L chunk")


def vp8x(width: int, height: int, flags: int) -> bytes:
    return make(b"VP8X", bytes((flags, 0, 0, 0)) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little"))


def replace_webp_xmp(buf: Buffer, riff: Riff, packet: bytes) -> Spliced:
    """The WebP with every ``XMP `` chunk replaced by one holding ``packet``.

    The new chunk takes the place of the first old one, else goes after the image and EXIF
    chunks; the VP8X XMP flag is set (a VP8X chunk is created for a simple-format file); the
    RIFF size is updated. Every other chunk keeps its bytes.
    """
    if not riff.chunks:
        raise MalformedFile("WebP: no chunks after the RIFF header")
    old = find(riff, b"XMP ")
    new = make(b"XMP ", packet)
    if old:
        at = old[0].start
    else:
        before = [c for c in riff.chunks if c.fourcc in _BEFORE_XMP]
        last = before[-1] if before else riff.chunks[-1]
        at = riff.padded_end(last)
        if last.size & 1 and at == last.end:  # its pad byte was dropped: restore alignment first
            new = b"\x00" + new
    cuts = [(c.start, riff.padded_end(c)) for c in old]
    changes = splice.edits(cuts, at, new)
    grown = len(new) - sum(end - start for start, end in cuts)
    head = find(riff, b"VP8X")
    if head:
        flags_at = head[0].data_start
        if head[0].size < 10:
            raise MalformedFile(f"WebP: VP8X chunk at offset {head[0].start} is too short")
        if at <= flags_at or any(start < flags_at for start, _ in cuts):
            raise MalformedFile("WebP: an XMP chunk comes before the VP8X chunk, which must be first")
        changes.append((flags_at, flags_at + 1, bytes((buf[flags_at] | VP8X_XMP,))))
    else:
        width, height, flags = _canvas(buf, riff)
        # A simple-format file should hold nothing else, but if it does, VP8X must announce it.
        flags |= (VP8X_ICC if find(riff, b"ICCP") else 0) | (VP8X_EXIF if find(riff, b"EXIF") else 0)
        header = vp8x(width, height, flags | VP8X_XMP)
        changes.insert(0, (12, 12, header))  # first of what goes at offset 12: the sort below keeps it there
        grown += len(header)
    changes.append((4, 8, (riff.end - 8 + grown).to_bytes(4, "little")))
    return splice.replace(buf, sorted(changes, key=lambda change: change[0]))


def replace_chunk(buf: Buffer, riff: Riff, chunk: Chunk, body: bytes) -> Spliced:
    """The file with ``chunk`` (and its pad byte) holding ``body`` instead, where it was, and the
    RIFF size updated; every other chunk keeps its bytes (a WebP's EXIF, whose notice a tag
    replaces: the VP8X flags already announce it)."""
    start, end = chunk.start, riff.padded_end(chunk)
    new = make(chunk.fourcc, body)
    if end == chunk.end and chunk.size & 1:
        new = new[:-1]  # its pad byte was missing (a chunk ending the file): none is added
    grown = len(new) - (end - start)
    return splice.replace(buf, [(4, 8, (riff.end - 8 + grown).to_bytes(4, "little")), (start, end, new)])
