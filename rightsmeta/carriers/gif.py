"""GIF blocks: the one walker that reads them and locates the XMP application extensions.

Every block and data sub-block is walked to the trailer (which is what catches truncation), with
the blocks and the sub-blocks of the whole file bounded by the caller. rightsmeta writes no XMP
into GIF files (a signed C2PA manifest carries the signal there), so nothing is spliced here.
"""

from __future__ import annotations

from ..errors import MalformedFile
from ..xmp import begins_packet
from .tiff import Buffer

XMP_APP = b"XMP DataXMP"
# XMP in GIF is stored raw and followed by this "magic trailer" (0x01, 0xFF down to 0x00) and
# the block terminator, so a decoder that reads the packet as sub-blocks lands on the terminator.
_XMP_TRAILER = bytes([1, *range(255, -1, -1), 0])


def xmp_packets(buf: Buffer, max_blocks: int, max_subblocks: int) -> list[tuple[int, bytes]]:
    """(offset, packet) of every XMP application extension, walking every block to the trailer.

    ``max_blocks`` bounds the blocks, ``max_subblocks`` the data sub-blocks of the whole file.
    """
    n = len(buf)
    if buf[:6] not in (b"GIF87a", b"GIF89a"):
        raise MalformedFile("not a GIF: no GIF87a/GIF89a header at offset 0")
    if n < 13:
        raise MalformedFile(
            f"truncated GIF: logical screen descriptor needs 13 bytes but the file ends at {n}"
        )
    flags = buf[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # global color table
    packets: list[tuple[int, bytes]] = []
    # [remaining, bound], shared by all sub-block chains of the file, decremented in place
    budget = [max_subblocks, max_subblocks]
    for _ in range(max_blocks):
        if pos >= n:
            raise MalformedFile(f"truncated GIF: file ends at {n} without a trailer")
        introducer = buf[pos]
        if introducer == 0x3B:  # trailer
            return packets
        if introducer == 0x21:
            if pos + 2 > n:
                raise MalformedFile(f"truncated GIF: extension at offset {pos} has no label")
            label = buf[pos + 1]
            body = pos + 2
            if label == 0xFF and buf[body : body + 1 + len(XMP_APP)] == b"\x0b" + XMP_APP:
                packet, end = _xmp(buf, body + 1 + len(XMP_APP), pos)
                packets.append((pos, packet))
                pos = end
            else:
                # An XMP extension whose label, size or "XMP DataXMP" name was damaged: its packet
                # would be skipped as sub-blocks (its magic trailer ends them) and read as no statement.
                # Only within the extension: the one before an XMP extension (an animation's loop count) ends
                # a few bytes before its packet.
                end = _skip_subblocks(buf, body, budget)
                if begins_packet(buf, body, min(end, body + 96)):
                    raise MalformedFile(f"GIF extension at offset {pos} holds an XMP packet under a damaged label or "
                                        f"name (not application extension {XMP_APP.decode()}): the packet was not read")
                pos = end
        elif introducer == 0x2C:
            if pos + 10 > n:
                raise MalformedFile(f"truncated GIF: image descriptor at offset {pos} runs past the end {n}")
            flags = buf[pos + 9]
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # local color table
            pos += 1  # LZW minimum code size
            pos = _skip_subblocks(buf, pos, budget)
        else:
            raise MalformedFile(f"GIF: unexpected block introducer 0x{introducer:02X} at offset {pos}")
    raise MalformedFile(f"GIF: more than {max_blocks} blocks")


def _skip_subblocks(buf: Buffer, pos: int, budget: list[int]) -> int:
    """Position after the terminator of the sub-block chain starting at ``pos``."""
    n = len(buf)
    while budget[0] > 0:
        budget[0] -= 1
        if pos >= n:
            raise MalformedFile(f"truncated GIF: data sub-blocks run past the end of the file at {n}")
        size = buf[pos]
        pos += 1 + size
        if size == 0:
            return pos
    raise MalformedFile(f"GIF: more than {budget[1]} data sub-blocks")


def _xmp(buf: Buffer, start: int, ext_pos: int) -> tuple[bytes, int]:
    """The raw XMP packet of an "XMP DataXMP" extension and the position after it."""
    trailer = buf.find(_XMP_TRAILER, start)
    if trailer < 0:
        raise MalformedFile(
            f"truncated GIF: XMP application extension at offset {ext_pos} has no magic trailer"
        )
    return bytes(buf[start:trailer]), trailer + len(_XMP_TRAILER)
