"""PNG chunks: the one walker that reads, locates and splices them.

Used by reading (carriers/containers.py), by the XMP writer (carriers/image.py) and by the C2PA
locator (carriers/manifest.py). Lengths are checked before use and the walk is bounded; a chunk's
CRC is checked when its data is used. Splicing copies every chunk it does not replace byte for
byte, CRC included.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from typing import NamedTuple

from ..errors import MalformedFile
from . import jumbf
from .splice import Spliced
from .splice import splice as _splice
from .tiff import Buffer

SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_KEYWORD = b"XML:com.adobe.xmp\x00"
#: ImageMagick 6 keeps a profile it copies into a PNG as hex text under these keywords.
RAW_XMP_KEYWORDS = (b"Raw profile type xmp\x00",)
RAW_EXIF_KEYWORDS = (b"Raw profile type exif\x00", b"Raw profile type APP1\x00")
_TEXT_TYPES = (b"iTXt", b"tEXt", b"zTXt")
#: Upper bound on chunks walked in one file; real files stay far below it.
MAX_CHUNKS = 100_000
# A chunk's length and type in one call: libpng writes 8 KiB IDAT chunks, a thousand in a 9 MB
# image, and a tag walks it twice (the original, the new file).
_HEADER = struct.Struct(">I4s").unpack_from


class Chunk(NamedTuple):
    """One chunk. (A NamedTuple: made at C speed, where a frozen dataclass's ``__init__`` was
    several microseconds, and a tag walks a file several times.)"""

    type: bytes
    start: int  # the length field
    length: int

    @property
    def data_start(self) -> int:
        return self.start + 8

    @property
    def end(self) -> int:  # after the CRC
        return self.start + 12 + self.length


def walk(buf: Buffer) -> list[Chunk]:
    """Every chunk from the signature to IEND (included); MalformedFile when truncated or broken."""
    n = len(buf)
    if buf[:8] != SIGNATURE:
        raise MalformedFile("not a PNG: bad signature at offset 0")
    chunks: list[Chunk] = []
    pos = 8
    for _ in range(MAX_CHUNKS):
        if pos + 12 > n:
            raise MalformedFile(f"truncated PNG: file ends at {n} without an IEND chunk")
        length, ctype = _HEADER(buf, pos)
        if length > 0x7FFFFFFF:
            raise MalformedFile(f"PNG: chunk at offset {pos} has invalid length {length}")
        end = pos + 12 + length  # Chunk.end, without the property's call
        if end > n:
            raise MalformedFile(
                f"truncated PNG: {ctype!r} chunk at offset {pos} claims {length} bytes but the file ends at {n}"
            )
        chunks.append(Chunk(ctype, pos, length))
        if ctype == b"IEND":
            return chunks
        pos = end
    raise MalformedFile(f"PNG: more than {MAX_CHUNKS} chunks")


def data(buf: Buffer, chunk: Chunk) -> bytes:
    """The data of a chunk about to be used, CRC-checked."""
    body = bytes(buf[chunk.start + 4 : chunk.data_start + chunk.length])  # type + data: what the CRC covers
    (crc,) = struct.unpack(">I", buf[chunk.data_start + chunk.length : chunk.end])
    if zlib.crc32(body) != crc:
        raise MalformedFile(f"PNG: CRC mismatch in {chunk.type!r} chunk at offset {chunk.start}")
    return body[4:]


def is_xmp(buf: Buffer, chunk: Chunk) -> bool:
    """iTXt, as XMP part 3 asks, or tEXt/zTXt, as PNG libraries' plain text calls write it
    (Pillow's ``PngInfo.add_text``); ExifTool reads all three."""
    return chunk.type in _TEXT_TYPES and bytes(buf[chunk.data_start : chunk.data_start + len(XMP_KEYWORD)]) == XMP_KEYWORD


def is_raw_profile(buf: Buffer, chunk: Chunk, keywords: tuple[bytes, ...]) -> bool:
    """A text chunk of ImageMagick's "Raw profile type NAME" (hex in tEXt or zTXt) for one of ``keywords``."""
    if chunk.type not in (b"tEXt", b"zTXt"):
        return False
    head = bytes(buf[chunk.data_start : chunk.data_start + min(chunk.length, 80)])
    return head[: head.find(b"\x00") + 1] in keywords


def xmp_chunks(buf: Buffer, chunks: list[Chunk]) -> list[Chunk]:
    """The chunks holding XMP: iTXt ``XML:com.adobe.xmp`` and ImageMagick's raw XMP profile."""
    return [c for c in chunks if is_xmp(buf, c) or is_raw_profile(buf, c, RAW_XMP_KEYWORDS)]


_IMAGE_CHUNKS = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND"})  # the image's own: never a store's place


def c2pa_ranges(chunks: list[Chunk], buf: Buffer) -> list[tuple[int, int]]:
    """caBX chunks, where a C2PA store lives, and any other chunk but the image's own holding one (jumbf.py)."""
    return [(c.start, c.end) for c in chunks
            if c.type == b"caBX" or (c.type not in _IMAGE_CHUNKS and jumbf.holds_store(buf, c.start, c.end))]


def make(ctype: bytes, body: bytes) -> bytes:
    if len(body) > 0x7FFFFFFF:
        raise ValueError("PNG chunk too large")
    return len(body).to_bytes(4, "big") + ctype + body + zlib.crc32(ctype + body).to_bytes(4, "big")


def xmp_chunk(packet: bytes) -> bytes:
    """An uncompressed iTXt chunk holding the packet, as XMP part 3 asks (no language, no translation)."""
    return make(b"iTXt", XMP_KEYWORD + b"\x00\x00" + b"\x00" + b"\x00" + packet)


def xmp_insert_position(chunks: list[Chunk]) -> int:
    """Before the first IDAT, where readers that stop at the image data still see it."""
    for chunk in chunks:
        if chunk.type in (b"IDAT", b"IEND"):
            return chunk.start
    raise MalformedFile("PNG: no IDAT or IEND chunk")


def splice(buf: Buffer, remove: Iterable[Chunk], at: int, insert: bytes) -> Spliced:
    """The file with ``remove`` cut out and ``insert`` placed at chunk boundary ``at``; the rest unchanged."""
    return _splice(buf, ((c.start, c.end) for c in remove), at, insert)
