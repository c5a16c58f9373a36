"""Bounded readers for the tags ``audio.read`` looks at: ID3v2.3/2.4 frames, Vorbis comments (FLAC,
Ogg Vorbis, Opus) and MP4 ilst items.

Importing mutagen and letting it parse a whole tag costs more than everything else a read does,
and a scan reads millions of files. These readers decode only what rightsmeta looks at (the TXXX,
TCOP, WCOP and PRIV frames; Vorbis comments; freeform and cprt items), and decode it exactly as
mutagen 1.48 does, quirks included, so a report does not depend on which of the two read the
file. Input they are not sure of (ID3v2.2, encrypted frames, text mutagen would repair, FLAC
blocks, Ogg pages or MP4 atoms mutagen would walk differently, or refuse) raises ``LeaveToLibrary``, and
the caller hands the file to mutagen as before. One departure, on purpose: QuickTime's
``moov/meta`` (Apple's keys) is read as written, where mutagen misreads it and fails the file.

Every length is checked against the bytes in hand, and compressed frames inflate within the
bounds below whichever reader goes on to decode them.

The container walks are shared: MP4 levels are walked by carriers/bmff.py (with mutagen's
policies, chosen by its arguments), and ``frames`` here is the one ID3v2 frame walker, used also
by the structural check of carriers/audio.py. ``_count_frames`` walks frames a second way on
purpose: it is mutagen's guess whether v2.4 sizes are synchsafe, copied with its own stop rules.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..errors import LeaveToLibrary, MalformedFile
from ..xmp import begins_packet
from . import bmff
from .heads import syncsafe as _syncsafe
from .tiff import Buffer

#: What compressed ID3 frames may inflate to, each and together: a zlib bomb cannot eat memory.
MAX_ID3_INFLATE = 16 * 1024 * 1024
MAX_ID3_INFLATE_TOTAL = 64 * 1024 * 1024
#: Values read from one tag's TXXX (ours) and TCOP frames: real tags hold a handful, and a frame
#: of a million NULs (a million empty values) would take mutagen hours.
MAX_ID3_VALUES = 1000
#: Comments in one FLAC VORBIS_COMMENT block: real files hold dozens; 16 MB of empty ones are
#: four million, which took mutagen a minute and gigabytes of memory.
MAX_VORBIS_COMMENTS = 10_000


class _Junk(Exception):
    """A frame mutagen drops without a word (its ID3JunkFrameError)."""


# --- ID3v2 ----------------------------------------------------------------------------------------


@dataclass
class ID3Frames:
    """The frames of one ID3v2 tag that rightsmeta reads, as mutagen presents them."""

    version: int  # the minor version: 3 or 4 (2 only when mutagen read a v2.2 tag)
    #: TXXX values by description (only the descriptions asked for), in the order they first
    #: occur. Frames with the same description are merged, values not yet present appended
    #: (mutagen's ``_merge_frame``).
    txxx: dict[str, list[str]] = field(default_factory=dict)
    tcop: list[str] = field(default_factory=list)  # all TCOP frames merged the same way
    wcop: list[str] = field(default_factory=list)  # mutagen keeps only the last WCOP
    xmp: list[bytes] = field(default_factory=list)  # PRIV frames owned by "XMP", repeats dropped


#: Frame IDs mutagen knows (``mutagen.id3.Frames``): its guess whether a v2.4 tag's frame sizes
#: are synchsafe counts how many of them each reading finds, so the same guess needs the same set.
KNOWN_FRAMES = frozenset(
    b"AENC APIC ASPI CHAP COMM COMR CTOC ENCR EQU2 ETCO GEOB GRID GRP1 IPLS LINK MCDI MLLT MVIN "
    b"MVNM OWNE PCNT PCST POPM POSS PRIV RBUF RVA2 RVAD RVRB SEEK SIGN SYLT SYTC TALB TBPM TCAT "
    b"TCMP TCOM TCON TCOP TDAT TDEN TDES TDLY TDOR TDRC TDRL TDTG TENC TEXT TFLT TGID TIME TIPL "
    b"TIT1 TIT2 TIT3 TKEY TKWD TLAN TLEN TMCL TMED TMOO TOAL TOFN TOLY TOPE TORY TOWN TPE1 TPE2 "
    b"TPE3 TPE4 TPOS TPRO TPUB TRCK TRDA TRSN TRSO TSIZ TSO2 TSOA TSOC TSOP TSOT TSRC TSSE TSST "
    b"TXXX TYER UFID USER USLT WCOM WCOP WFED WOAF WOAR WOAS WORS WPAY WPUB WXXX".split()
)
_OURS = frozenset((b"TXXX", b"TCOP", b"WCOP", b"PRIV"))
_CODECS = ("latin-1", "utf-16", "utf-16-be", "utf-8")
_EMPTY_HEADER = bytes(10)
_FRAME_ID = re.compile(rb"[A-Z0-9]{4}")
# Unsynchronised data never has 0xFF before a byte >= 0xE0 or at its very end.
_NOT_UNSYNCHRONISED = re.compile(rb"\xff(?:[\xe0-\xff]|\Z)")


def _u32(data: bytes, pos: int = 0) -> int:
    return int.from_bytes(data[pos : pos + 4], "big")


def _bits7(value: int) -> int:
    """The low seven bits of each of the four bytes of ``value`` (mutagen's BitPaddedInt)."""
    return (value & 0x7F) | (value >> 1) & 0x3F80 | (value >> 2) & 0x1FC000 | (value >> 3) & 0xFE00000


def _unsynchronise(data: bytes) -> bytes:
    """0xFF 0x00 -> 0xFF; data that cannot be unsynchronised is used as it is, as mutagen does."""
    if b"\xff" not in data or _NOT_UNSYNCHRONISED.search(data):
        return data
    return data.replace(b"\xff\x00", b"\xff")


def frames(body: bytes, synchsafe: bool) -> Iterator[tuple[int, bytes, int, int]]:
    """(offset, frame ID, declared size, frame flags) of each v2.3/v2.4 frame header in ``body``
    (the tag's frames, unsynchronisation of a v2.3 tag already undone), as mutagen's
    ``ID3Tags._read_frames`` walks them: to the first all-NUL frame ID (padding) or until fewer
    than 10 bytes are left. A size may run past the end of ``body``: the caller decides what
    that means (mutagen cuts the frame at the tag's end, and the walk ends behind it).

    The one ID3 frame walker: the structural check of carriers/audio.py, ``id3_damage`` and
    ``read_id3`` all use it. Each step takes at least 10 bytes, so the walk is bounded by the tag.
    """
    pos = 0
    while len(body) - pos >= 10:
        frame_id = body[pos : pos + 4]
        if not frame_id.strip(b"\x00"):
            return
        size = _u32(body, pos + 4)
        yield pos, frame_id, _bits7(size) if synchsafe else size, int.from_bytes(body[pos + 8 : pos + 10], "big")
        pos += 10 + (_bits7(size) if synchsafe else size)


def _count_frames(body: bytes, synchsafe: bool) -> tuple[int, int]:
    """Known frame IDs met walking ``body`` with one reading of the sizes, and how far past its
    end the walk ran (mutagen's ``determine_bpi``, one half)."""
    pos = count = 0
    n = len(body)
    while pos < n - 10:
        header = body[pos : pos + 10]
        if header == _EMPTY_HEADER:
            return count, -((n - pos) % 10)
        size = _u32(header, 4)
        pos += 10 + (_bits7(size) if synchsafe else size)
        count += header[:4] in KNOWN_FRAMES
    return count, pos - n


def _synchsafe_sizes(body: bytes) -> bool:
    """Does a v2.4 tag give its frame sizes as synchsafe integers? iTunes once wrote plain ones,
    and mutagen guesses from which reading finds more known frames; the same guess, the same frames."""
    as_synchsafe, synchsafe_past = _count_frames(body, True)
    as_int, int_past = _count_frames(body, False)
    return not (as_int > as_synchsafe or (as_int == as_synchsafe and synchsafe_past >= 1 and int_past <= 1))


def _inflate(frame_id: bytes, data: bytes, limit: int) -> bytes | None:
    """``zlib.decompress(data)`` within ``limit`` bytes; None if it is no whole zlib stream."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        return None
    if len(out) > limit:
        name = frame_id.decode("latin-1")
        raise MalformedFile(f"compressed ID3v2 frame {name} inflates to too many bytes; refusing it")
    return out if inflater.eof else None


def _content(frame_id: bytes, data: bytes, flags: int, major: int, unsynchronised: bool, budget: int) -> bytes:
    """The frame's content as mutagen's ``Frame._fromData`` prepares it: the data length indicator
    dropped, unsynchronisation undone, inflated. The group byte stays, as it does in mutagen."""
    if major == 4:
        compressed, encrypted = flags & 0x08, flags & 0x04
        length = data[:4]
        if flags & 0x09:  # compressed or data length indicator: four bytes of length first
            data = data[4:]
        if flags & 0x02 or unsynchronised:
            data = _unsynchronise(data)
    else:
        compressed, encrypted = flags & 0x80, flags & 0x40
        length = b""
        if compressed:
            if len(data) < 4:
                raise _Junk
            data = data[4:]
    if encrypted:
        raise LeaveToLibrary("encrypted frame")
    if not compressed:
        return data
    limit = min(MAX_ID3_INFLATE, budget)
    out = _inflate(frame_id, data, limit)
    if out is None and major == 4:
        # Early mutagen wrote no length before the stream; mutagen tries it that way too.
        out = _inflate(frame_id, length + data, limit)
    if out is None:
        raise LeaveToLibrary("corrupt compressed frame")
    return out


class _Text:
    """The strings of a text frame, read one after another as mutagen's ``EncodedTextSpec`` reads
    them, in time linear in the frame (mutagen slices off the rest after every string)."""

    def __init__(self, content: bytes, v24: bool) -> None:
        if not content or content[0] > 3:
            raise _Junk  # no encoding byte, or an unknown one
        self.data, self.pos, self.v24 = content, 1, v24
        self.codec, self.wide = _CODECS[content[0]], content[0] in (1, 2)
        self.last = len(content.rstrip(b"\x00"))  # only NULs after this

    def __bool__(self) -> bool:
        return self.pos < len(self.data)

    def read(self) -> str:
        """The next NUL-terminated string (UTF-16 takes its byte order from a BOM per string)."""
        data, start = self.data, self.pos
        if self.wide:  # a NUL code unit, two NUL bytes at an even distance from the start
            end = data.find(b"\x00\x00", start)
            while end >= 0 and (end - start) & 1:
                end = data.find(b"\x00\x00", end + 1)
            self.pos = len(data) if end < 0 else end + 2
        else:
            end = data.find(b"\x00", start)
            self.pos = len(data) if end < 0 else end + 1
        if not self.v24 and self.pos >= self.last:
            self.pos = len(data)  # v2.3 has no lists: NUL padding after a string is no empty second value
        try:
            return data[start : len(data) if end < 0 else end].decode(self.codec)
        except UnicodeDecodeError:
            if self.wide:
                raise LeaveToLibrary("UTF-16 text mutagen would repair") from None
            raise _Junk from None

    def values(self, limit: int) -> list[str]:
        """The remaining strings, a frame's values: at least one, at most ``limit``."""
        if not self:
            raise _Junk  # a text frame without text
        values: list[str] = []
        while self:
            if len(values) == limit:
                raise MalformedFile(f"ID3v2 tag holds more than {MAX_ID3_VALUES} values in its TXXX and TCOP frames")
            values.append(self.read())
        return values


def _merge(values: list[str], more: list[str]) -> None:
    """A later frame with the same key adds the values not yet present (mutagen's ``_merge_frame``)."""
    for value in more:
        if value not in values:
            values.append(value)


def _id3_body(data: bytes) -> tuple[int, int, bytes, bool]:
    """Major version, header flags, the frames' bytes (v2.3 unsynchronisation undone) and whether
    frame sizes are synchsafe, of the ID3v2.3/2.4 tag at the start of ``data``, as mutagen sees them."""
    if data[:3] != b"ID3" or len(data) < 10 or data[3] not in (3, 4) or any(b & 0x80 for b in data[6:10]):
        raise LeaveToLibrary("no ID3v2.3 or v2.4 header")
    major, flags = data[3], data[5]
    if flags & (0x0F if major == 4 else 0x1F):
        raise LeaveToLibrary("undefined header flags")  # mutagen refuses the tag
    end = 10 + _syncsafe(data[6:10])
    start = 10
    if flags & 0x40 and data[10:14] not in KNOWN_FRAMES:  # some taggers set the flag but write no header
        ext = data[10:14]
        if len(ext) < 4 or (major == 4 and any(b & 0x80 for b in ext)):
            raise LeaveToLibrary("bad extended header")
        start = 10 + _syncsafe(ext) if major == 4 else 14 + _u32(ext)  # v2.4 counts the size field
        if start < 14:
            raise LeaveToLibrary("bad extended header")
    if end > len(data) or start > end:
        raise LeaveToLibrary("the tag is larger than the data")
    body = data[start:end]
    if major == 3 and flags & 0x80:
        body = _unsynchronise(body)
    return major, flags, body, major == 4 and _synchsafe_sizes(body)


def id3_damage(data: bytes, what: str) -> str | None:
    """What is damaged in the frame list of the ID3v2 tag at the start of ``data``: a frame whose
    size runs past the end of the tag. Such a frame hides every frame after it, so mutagen (and
    ``read_id3``, which reads as mutagen does) silently drop them, a rights statement included;
    ExifTool warns "Invalid ID3 frame size". The frames before it are read as usual; this names
    the damage so that the read reports it and fails closed. None when the sizes fit, when what
    runs past the end has no frame ID (junk in the padding, which mutagen skips too), or when the
    tag is one these readers leave to mutagen (v2.2, undefined flags). Also a frame holding an XMP
    packet that is not read as XMP (``_misnamed_xmp``): the packet is silently dropped too.
    """
    try:
        major, _, body, synchsafe = _id3_body(data)
    except LeaveToLibrary:
        return None
    end = 0  # where the frame list ends: padding, or junk after the last frame
    walked: set[int] = set()
    junk = -1  # the first frame with no frame ID...
    swallowed = 0  # ... and where the data of the frame before it starts
    for pos, frame_id, size, flags in frames(body, synchsafe):
        if _misnamed_xmp(body, pos, size, frame_id, flags, major):
            name = frame_id.decode("latin-1").encode("unicode_escape").decode("ascii")
            return (f"{what}: ID3v2 frame '{name}' at byte {pos} of the tag holds an XMP packet but is not a PRIV "
                    "frame owned by \"XMP\" (its name, owner or flags damaged): the packet was not read")
        valid = _FRAME_ID.fullmatch(frame_id) is not None
        if not valid and junk < 0:
            junk, swallowed = pos, (max(walked) + 10 if walked else 0)
        if pos + 10 + size > len(body):
            if not valid:
                end = pos  # junk after the last frame (some taggers leave it in the padding)...
                break
            name = frame_id.decode("ascii")
            return (
                f"{what}: ID3v2 frame {name} claims {size} bytes, past the end of the tag "
                f"({len(body) - pos - 10} left); the frames after it are lost"
            )
        walked.add(pos)
        end = pos + 10 + size
    if junk >= 0:
        # ... or in the list, where the walk has gone astray: a frame size damaged made the frame
        # before it swallow frames after it, and the walk lands in their data (mutagen skips what
        # it lands on as an unknown frame, silently). A header of ours that the walk passed over,
        # from that frame's data on, says which.
        hidden = _frame_after(body, swallowed, synchsafe, walked)
        if hidden is not None:
            return (f"{what}: the ID3v2 frame list goes astray at byte {junk} of the tag (a frame with no valid "
                    f"name: a damaged frame header or size before it), and the {hidden[0]} frame at byte "
                    f"{hidden[1]} is not read")
    # ... or a damaged frame header (a flipped bit in its name, a zeroed header) that ends the walk
    # early: mutagen reads nothing after it, silently. A header of ours after the end says which.
    hidden = _frame_after(body, end, synchsafe)
    if hidden is not None:
        return (f"{what}: the ID3v2 frame list ends at byte {end} of the tag (a damaged frame header or "
                f"padding), but a {hidden[0]} frame follows at byte {hidden[1]}; the frames after the damage "
                "are not read")
    return None


#: Frame format flags that change how a frame's content is read: v2.3 compression, encryption,
#: grouping; v2.4 grouping, compression, encryption, data length indicator.
_CONTENT_FLAGS = {3: 0xE0, 4: 0x4D}


def _misnamed_xmp(body: bytes, pos: int, size: int, frame_id: bytes, flags: int, major: int) -> bool:
    """Does this frame begin with an XMP packet that is not read as one? Only a PRIV frame owned by
    "XMP", whose content is read as written, is read as XMP (by mutagen, ExifTool and ``read_id3``):
    one byte of its name, owner or flags damaged, and the packet, a statement perhaps, is silently
    dropped. Only PRIV and unknown frame names are looked at (no known name is one byte from PRIV),
    so a known frame that happens to hold XMP (a GEOB file) is left alone; as for JPEG segments,
    the packet must start near the beginning, where a damaged owner leaves it."""
    if frame_id != b"PRIV" and frame_id in KNOWN_FRAMES:
        return False
    start = pos + 10
    stop = min(start + size, start + 96)
    if not begins_packet(body, start, stop):
        return False
    return not (frame_id == b"PRIV" and body.startswith(b"XMP\x00", start) and not flags & _CONTENT_FLAGS[major])


def _frame_after(body: bytes, start: int, synchsafe: bool, walked: set[int] | None = None) -> tuple[str, int] | None:
    """The first header, at or after ``start`` in ``body``, of a frame rightsmeta reads
    (``_OURS``) with a size that fits the tag, not at a place in ``walked`` (the frames the walk
    read): (its name, where); None when there is none."""
    found = []
    for name in _OURS:
        at = body.find(name, start)
        while at >= 0:
            size = _u32(body, at + 4) if at + 8 <= len(body) else -1
            if size >= 0 and at + 10 + (_bits7(size) if synchsafe else size) <= len(body) and (
                    walked is None or at not in walked):
                found.append((at, name.decode("ascii")))
                break
            at = body.find(name, at + 1)
    return min(found)[::-1] if found else None


def read_id3(data: bytes, descriptions: frozenset[str], what: str) -> ID3Frames:
    """The frames rightsmeta reads from the ID3v2 tag at the start of ``data``, as mutagen's ``ID3``
    reads them: the TXXX frames whose description casefolds to one of ``descriptions``, TCOP, WCOP
    and PRIV. ``what`` names the file in errors."""
    major, flags, body, synchsafe = _id3_body(data)
    v24 = major == 4
    unsynchronised = v24 and bool(flags & 0x80)

    found = ID3Frames(major)
    unusual = ""
    budget, values_left = MAX_ID3_INFLATE_TOTAL, MAX_ID3_VALUES
    # Every frame is visited, not only ours, so that a compressed frame which would blow up in
    # mutagen (after a fallback) is refused here first.
    for pos, frame_id, size, frame_flags in frames(body, synchsafe):
        raw = body[pos + 10 : pos + 10 + size]  # cut off at the tag's end, as mutagen cuts it
        overrun = pos + 10 + size > len(body)  # id3_damage reports it; the frames before it stand
        if size == 0:
            continue
        if frame_id[3] == 0:
            unusual = unusual or "a v2.2 frame name"  # mutagen maps these to v2.3 frames
        compressed = frame_flags & (0x08 if v24 else 0x80)
        if frame_id not in _OURS and not compressed:
            continue
        try:
            content = _content(frame_id, raw, frame_flags, major, unsynchronised, budget)
            if compressed:
                budget -= len(content)
            if frame_id in _OURS:
                values_left -= _add(found, frame_id, content, v24, descriptions, values_left)
        except _Junk:
            continue
        except LeaveToLibrary as exc:
            if frame_id in _OURS:
                unusual = unusual or str(exc)
        except MalformedFile as exc:
            if overrun:  # the rest of the tag read as one frame's values: damage, not a bomb
                break
            raise MalformedFile(f"{what}: {exc}") from None
    if unusual:
        raise LeaveToLibrary(unusual)
    return found


def _add(found: ID3Frames, frame_id: bytes, content: bytes, v24: bool, descriptions: frozenset[str], limit: int) -> int:
    """Decode one of our frames into ``found``, at most ``limit`` values; how many it had.

    _Junk if mutagen would drop the frame.
    """
    if frame_id in (b"TXXX", b"TCOP"):
        text = _Text(content, v24)
        desc = ""
        if frame_id == b"TXXX":
            if not text:
                raise _Junk
            desc = text.read()
            if desc.casefold() not in descriptions:
                return 0
        values = text.values(limit)
        merged = found.txxx.get(desc) if frame_id == b"TXXX" else found.tcop or None
        if merged is not None:
            _merge(merged, values)
        elif frame_id == b"TXXX":
            found.txxx[desc] = values  # a frame's own repeats stay; only merged ones are dropped
        else:
            found.tcop = values
        return len(values)
    if not content:
        raise _Junk
    head, _, blob = content.partition(b"\x00")  # WCOP: the URL; PRIV: the owner, then the data
    if frame_id == b"WCOP":
        found.wcop = [head.decode("latin-1")]
    elif head == b"XMP" and blob not in found.xmp:
        found.xmp.append(blob)
    return 0


# --- FLAC -----------------------------------------------------------------------------------------


def _u32le(data: bytes, pos: int) -> int:
    if pos + 4 > len(data):
        raise LeaveToLibrary("cut-off length")
    return int.from_bytes(data[pos : pos + 4], "little")


# A Vorbis comment key: printable ASCII from 0x20 to 0x7D, but no '='.
_VORBIS_KEY = re.compile(r"[\x20-\x3c\x3e-\x7d]+")


def _comments(data: bytes, what: str) -> tuple[list[tuple[str, str]], int]:
    """The (key, value) pairs of the Vorbis comment block at the start of ``data`` as mutagen's
    ``VComment`` reads them, and the offset where the block ends.

    LeaveToLibrary if a length runs past ``data``: mutagen reads on as far as there is data, which is
    nothing to imitate. ``what`` names the block in errors.
    """
    pos = 4 + _u32le(data, 0)  # the vendor string
    count = _u32le(data, pos)
    pos += 4
    if count > MAX_VORBIS_COMMENTS:
        raise MalformedFile(f"{what} claims {count} comments; refusing more than {MAX_VORBIS_COMMENTS}")
    comments = []
    for i in range(count):
        length = _u32le(data, pos)
        pos += 4 + length
        if pos > len(data):
            raise LeaveToLibrary("a comment runs past the block")
        text = data[pos - length : pos].decode("utf-8", "replace")
        key, sep, value = text.partition("=")
        if not sep:
            key, value = f"unknown{i}", text
        if not key.isascii():
            key = key.encode("ascii", "replace").decode("ascii")
        if _VORBIS_KEY.fullmatch(key):
            comments.append((key, value))
    return comments, pos


def vorbis_comments(data: bytes) -> list[tuple[str, str]]:
    """The (key, value) pairs of a FLAC Vorbis comment block (no framing bit), as mutagen reads them.

    LeaveToLibrary if the comments do not end exactly where the block does: mutagen trusts the comments
    over the block size, and would read on into the next block.
    """
    comments, end = _comments(data, "FLAC: the VORBIS_COMMENT block")
    if end != len(data):
        raise LeaveToLibrary("the comments do not fill the block")
    return comments


def _picture_fits(data: bytes) -> bool:
    """Does a PICTURE block's own structure end where the block does? mutagen trusts the structure."""
    if len(data) < 8:
        return False
    pos = 8 + _u32(data, 4)  # type, MIME type
    if pos + 4 > len(data):
        return False
    pos += 4 + _u32(data, pos)  # description
    if pos + 20 > len(data):
        return False
    pos += 20 + _u32(data, pos + 16)  # width, height, depth, colours, picture data
    return pos == len(data)


def flac_comments(buf: Buffer, start: int, blocks: list[tuple[int, int, int]]) -> list[tuple[str, str]] | None:
    """The first VORBIS_COMMENT block's pairs as mutagen's ``FLAC`` reads them; None if there is none.

    ``start`` is the offset of 'fLaC', ``blocks`` the metadata blocks found there as (type, payload
    start, payload end), their lengths already checked against the file.
    """
    # mutagen looks for 'fLaC' right behind one ID3 tag (without a footer), and refuses a FLAC
    # with a second STREAMINFO (if short), SEEKTABLE or CUESHEET, or a zero sample rate.
    behind = 10 + _bits7(_u32(bytes(buf[6:10]))) if bytes(buf[:3]) == b"ID3" else 0
    types = [kind for kind, _, _ in blocks]
    if start != behind or types.count(0) != 1 or types.count(3) > 1 or 5 in types:
        raise LeaveToLibrary("FLAC metadata mutagen reads differently")
    streaminfo = next(bytes(buf[s:e]) for kind, s, e in blocks if kind == 0)
    if len(streaminfo) < 34 or not int.from_bytes(streaminfo[10:13], "big") >> 4:
        raise LeaveToLibrary("no valid STREAMINFO")
    comments = None
    for kind, s, e in blocks:
        if kind == 6 and not _picture_fits(bytes(buf[s:e])):
            raise LeaveToLibrary("a PICTURE block mutagen reads past")
        if kind == 4:
            found = vorbis_comments(bytes(buf[s:e]))
            comments = found if comments is None else comments  # mutagen uses the first
    return comments


# --- Ogg Vorbis and Opus --------------------------------------------------------------------------

#: The comment header is put together from at most this many bytes of pages. A larger one (cover
#: art of many megabytes, or a packet that never ends) is left to mutagen, which reads it as before.
MAX_OGG_PACKET = 16 * 1024 * 1024
#: The identification and comment headers' first bytes, by format.
_OGG_HEADERS = {"ogg": (b"\x01vorbis", b"\x03vorbis"), "opus": (b"OpusHead", b"OpusTags")}
_OGG_WHAT = {"ogg": "Ogg Vorbis: the comment header", "opus": "Opus: the OpusTags header"}


def _ogg_page(buf: Buffer, pos: int) -> tuple[int, bytes, int, bytes, int]:
    """(flags, serial, sequence number, lacing values, data offset) of the page at ``pos``."""
    head = bytes(buf[pos : pos + 27])
    if len(head) < 27 or head[:5] != b"OggS\x00":
        raise LeaveToLibrary("no Ogg page")
    start = pos + 27 + head[26]
    lacing = bytes(buf[pos + 27 : start])
    if len(lacing) != head[26] or start + sum(lacing) > len(buf):
        raise LeaveToLibrary("a cut-off Ogg page")
    return head[5], head[14:18], int.from_bytes(head[18:22], "little"), lacing, start


def ogg_comments(buf: Buffer, kind: str) -> list[tuple[str, str]]:
    """The comments of an Ogg Vorbis (``kind`` "ogg") or Opus ("opus") file, as mutagen's
    ``OggVorbis`` / ``OggOpus`` reads them.

    Only the layout encoders write is read: the identification header alone on the first page,
    which begins the logical stream, then the comment header as the first packet of the next
    pages, all of that one stream, numbered in sequence. mutagen skips pages of other streams,
    searches on, or splits packets by the continuation flag rather than by the lacing values in
    other layouts: they are left to mutagen, and so is anything that would make mutagen refuse the file
    (no framing bit after Vorbis comments, a zero sample rate, an unknown Opus version).
    """
    ident_magic, comment_magic = _OGG_HEADERS[kind]
    flags, serial, _, lacing, start = _ogg_page(buf, 0)
    # One whole packet: lacing values of 255 continue it, the first smaller one ends it.
    if not flags & 0x02 or len(lacing) - len(lacing.lstrip(b"\xff")) != len(lacing) - 1:
        raise LeaveToLibrary("the first page holds no single whole packet, or begins no stream")
    ident = bytes(buf[start : start + sum(lacing)])
    if not ident.startswith(ident_magic) or int.from_bytes(buf[6:14], "little", signed=True) == -1:
        # mutagen refuses a stream none of whose pages has a granule position (-1 is none); the
        # first page's (0 in real files) is one.
        raise LeaveToLibrary("an unexpected identification header")
    if kind == "ogg" and (len(ident) < 28 or not _u32le(ident, 12)):
        raise LeaveToLibrary("a Vorbis identification header mutagen refuses")  # too short, or 0 Hz
    if kind == "opus" and (len(ident) < 19 or ident[8] >> 4):
        raise LeaveToLibrary("an Opus identification header mutagen refuses")  # too short, or version
    pos = start + sum(lacing)
    parts: list[bytes] = []
    size, sequence = 0, -1
    while True:  # every page but the last adds 255 bytes or more: bounded by MAX_OGG_PACKET
        if pos >= len(buf):
            raise LeaveToLibrary("the comment header is cut off")
        flags, page_serial, page_sequence, lacing, start = _ogg_page(buf, pos)
        if (page_serial != serial or flags & 0x02 or bool(flags & 0x01) != bool(parts) or not lacing
                or (parts and page_sequence != sequence + 1)):
            raise LeaveToLibrary("the comment header's pages are not one plain sequence of one stream")
        sequence = page_sequence
        whole = len(lacing) - len(lacing.lstrip(b"\xff"))  # segments of 255 before the packet ends
        length = 255 * whole + (lacing[whole] if whole < len(lacing) else 0)
        size += length
        if size > MAX_OGG_PACKET:
            raise LeaveToLibrary("a comment header larger than we put together")
        parts.append(bytes(buf[start : start + length]))
        if whole < len(lacing):
            break
        pos = start + length
    packet = b"".join(parts)
    if not packet.startswith(comment_magic):
        raise LeaveToLibrary("no comment header after the identification header")
    body = packet[len(comment_magic) :]
    comments, end = _comments(body, _OGG_WHAT[kind])
    # Vorbis ends the comments with a framing bit, which mutagen requires; Opus has none, and
    # both may be followed by padding (or, in Opus, other data), which mutagen ignores.
    if kind == "ogg" and not (end < len(body) and body[end] & 0x01):
        raise LeaveToLibrary("no framing bit")
    return comments


# --- MP4 ------------------------------------------------------------------------------------------
#
# mutagen's ``MP4`` reads far more than the ilst items rightsmeta looks at, and refuses the whole
# file when any of it is broken: every container atom of the file (_atoms), the first audio
# track's header and sample description (_check_stream_info), the Nero chapters (_check_chapters),
# and every ilst item (some of its item parsers fail on short data instead of dropping the item).
# The checks below let our reader answer only where mutagen would succeed; anything else is
# LeaveToLibrary, and mutagen fails (or reads) the file as before.

#: The atoms mutagen's ``Atoms`` descends into wherever they are (``mutagen.mp4._atom._CONTAINERS``).
MP4_CONTAINERS = frozenset((b"moov", b"udta", b"trak", b"mdia", b"meta", b"ilst", b"stbl", b"minf", b"moof", b"traf"))
#: Atoms walked in one file, and how deep: real files hold dozens (six more per fragment of a
#: fragmented file), five levels deep. More is left to mutagen, which walks without limits as
#: before; the bound keeps what our walk adds to that under a second.
MAX_MP4_ATOMS = 200_000
MAX_MP4_DEPTH = 32


@dataclass
class MP4Items:
    """The ilst items rightsmeta reads, as mutagen's ``MP4Tags`` holds them."""

    #: Freeform values by key ``----:mean:name`` (mean and name decoded as Latin-1), keys in the
    #: order they first occur, items with the same key merged (mutagen's ``__add``).
    freeform: dict[str, list[bytes]] = field(default_factory=dict)
    cprt: list[str] = field(default_factory=list)  # the text of all cprt items


@dataclass(slots=True)
class _Atom:
    name: bytes
    start: int
    payload: int
    end: int
    children: list[_Atom] | None = None  # for containers


def _atoms(buf: Buffer, start: int, end: int, depth: int, budget: list[int]) -> list[_Atom]:
    """The atoms in buf[start:end] and, below them, every container's children, as mutagen's
    ``Atom`` reads them (``depth`` 0: the top level); each level walked by carriers/bmff.py.

    LeaveToLibrary unless the children fill each container exactly with sizes mutagen accepts. mutagen
    reads a child that runs past its parent and carries on behind it, or fails on a size of 0
    below the top level, under 8, or (64-bit) under 16; it ignores fewer than 8 bytes at the end
    of the file. These policies copy mutagen on purpose, so that this reader answers only where
    mutagen would, and the same.
    """
    found = []
    try:
        for box in bmff.boxes(buf, start, end, what="MP4", open_ended=not depth, tail="error" if depth else "ignore"):
            budget[0] -= 1
            if budget[0] < 0:
                raise LeaveToLibrary("too many atoms")
            atom = _Atom(box.type, box.start, box.payload, box.end)
            if atom.name in MP4_CONTAINERS:
                if depth == MAX_MP4_DEPTH:
                    raise LeaveToLibrary("atoms nested too deep")
                first = box.payload
                if atom.name == b"meta" and bmff.quicktime_meta(buf, box):
                    # QuickTime's meta (moov/meta with Apple's keys, as iPhones and ExifTool write
                    # it) has no version and flags: its hdlr starts at once. mutagen skips four
                    # bytes anyway and then fails on the file ("seek out of range") or silently
                    # loses what follows; it is read here as written, the one place this reader
                    # departs from mutagen.
                    pass
                elif atom.name == b"meta":
                    # ISO's meta is a full box: version and flags (zero) before the children.
                    version, flags = bmff.full_box(buf, box, "MP4")
                    if version or flags:
                        raise LeaveToLibrary("a meta atom with flags")
                    first += 4
                atom.children = _atoms(buf, first, atom.end, depth + 1, budget)
            found.append(atom)
    except MalformedFile as exc:  # a size mutagen refuses or misreads (see above)
        raise LeaveToLibrary(str(exc)) from None
    return found


def _first(atoms: list[_Atom] | None, name: bytes) -> _Atom | None:
    """The first child of that name: mutagen looks no further."""
    return next((a for a in atoms or () if a.name == name), None)


def _payload(buf: Buffer, atom: _Atom) -> bytes:
    return bytes(buf[atom.payload : atom.end])


def mp4_items(buf: Buffer) -> MP4Items | None:
    """The freeform and cprt items of moov/udta/meta/ilst as mutagen's ``MP4`` reads them (the
    first atom of each name at each level); None if there is no ilst."""
    top = _atoms(buf, 0, len(buf), 0, [MAX_MP4_ATOMS])
    moov = _first(top, b"moov")
    if moov is None:
        raise LeaveToLibrary("no moov atom")
    _check_stream_info(buf, moov)
    udta = _first(moov.children, b"udta")
    meta = _first(udta.children, b"meta") if udta is not None else None
    ilst = _first(meta.children, b"ilst") if meta is not None else None
    items = _items(buf, ilst) if ilst is not None else None
    chpl = _first(udta.children, b"chpl") if udta is not None else None
    mvhd = _first(moov.children, b"mvhd")
    if chpl is not None and mvhd is not None:  # mutagen reads the chapters last
        _check_chapters(_payload(buf, mvhd), _payload(buf, chpl))
    return items


def _items(buf: Buffer, ilst: _Atom) -> MP4Items:
    items = MP4Items()
    for atom in ilst.children or ():
        if atom.payload - atom.start != 8:
            raise LeaveToLibrary("an ilst item with a 64-bit size")  # mutagen reads its data 8 bytes short
        data = _payload(buf, atom)
        if atom.name == b"----":
            key, values = _freeform(data)
            items.freeform.setdefault(key, []).extend(values)
        elif atom.name == b"cprt":
            items.cprt += _text(data)
        elif atom.name in (b"trkn", b"disk"):
            # mutagen unpacks six bytes of each data atom of these without looking, and fails on fewer.
            if any(len(value) < 6 for _, value in _data_atoms(data)[0]):
                raise LeaveToLibrary("a short track or disc number")
        elif atom.name == b"covr":
            _check_cover(data)
        # mutagen's other item parsers drop an item they cannot read, which is all we need of them.
    return items


def _freeform(data: bytes) -> tuple[str, list[bytes]]:
    """A '----' item as mutagen's ``__parse_freeform`` reads it: key and values.

    mutagen takes the first two atoms for mean and name whatever their type, skips their
    version and flags, and fails on some broken data atoms while dropping the item for others;
    only the plain layout is read here.
    """
    mean_end = _u32(data, 0)
    name_end = mean_end + _u32(data, mean_end)
    if (data[4:8] != b"mean" or data[mean_end + 4 : mean_end + 8] != b"name" or mean_end < 12
            or name_end < mean_end + 12 or name_end > len(data)):
        raise LeaveToLibrary("a freeform item without mean and name")
    key = (b"----:" + data[12:mean_end] + b":" + data[mean_end + 12 : name_end]).decode("latin-1")
    values = []
    pos = name_end
    while pos < len(data):
        length = _u32(data, pos)
        if data[pos + 4 : pos + 8] != b"data" or length < 16 or pos + length > len(data):
            raise LeaveToLibrary("a broken data atom in a freeform item")
        values.append(data[pos + 16 : pos + length])  # after type (version, flags) and locale
        pos += length
    return key, values


def _data_atoms(data: bytes) -> tuple[list[tuple[int, bytes]], bool]:
    """(type, value) of an item's data atoms as mutagen's ``__parse_data`` yields them, and whether
    it got to the end: it stops at a broken one (and mutagen then drops the item)."""
    found: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        length = _u32(data, pos)
        if len(data) - pos < 12 or data[pos + 4 : pos + 8] != b"data" or length < 16 or pos + length > len(data):
            return found, False
        found.append((_u32(data, pos + 8) & 0xFFFFFF, data[pos + 16 : pos + length]))
        pos += length
    return found, True


def _text(data: bytes) -> list[str]:
    """A text item's values as mutagen's ``__parse_text`` reads them: none if it drops the item
    (a broken data atom, a type other than implicit or UTF-8, invalid UTF-8)."""
    found, whole = _data_atoms(data)
    if not whole or any(kind not in (0, 1) for kind, _ in found):
        return []
    try:
        return [value.decode("utf-8") for _, value in found]
    except UnicodeDecodeError:
        return []


def _check_cover(data: bytes) -> None:
    """mutagen's ``__parse_cover`` fails on fewer than 12 bytes of an atom header, and loops
    forever on a 'name' atom of size 0."""
    pos = 0
    while pos < len(data):
        if len(data) - pos < 12:
            raise LeaveToLibrary("a cut-off atom in covr")
        length, kind = _u32(data, pos), data[pos + 4 : pos + 8]
        if kind == b"name" and length == 0:
            raise MalformedFile("MP4: the covr item holds a 'name' atom of size 0 (mutagen would loop forever on it)")
        if kind not in (b"data", b"name") or length < 1:
            return  # mutagen drops the item
        pos += length


def _movie_header_ok(mvhd: bytes, other_versions: bool) -> bool:
    """Would mutagen read this movie header? From versions 0 and 1 it takes the time scale and
    divides by it; other versions ``MP4Info`` skips (``other_versions``) and the chapter reader refuses."""
    if len(mvhd) < 4:
        return False
    if mvhd[0] not in (0, 1):
        return other_versions
    return len(mvhd) >= (20 if mvhd[0] == 0 else 32) and _u32(mvhd, 12 if mvhd[0] == 0 else 20) != 0


def _audio_track(moov: _Atom, buf: Buffer) -> _Atom | None:
    """The mdia atom of the first audio track, as mutagen's ``MP4Info`` finds it: every track up
    to it must have a handler (mdia/hdlr)."""
    for trak in moov.children or ():
        if trak.name != b"trak":
            continue
        mdia = _first(trak.children, b"mdia")
        hdlr = _first(mdia.children, b"hdlr") if mdia is not None else None
        if mdia is None or hdlr is None:
            raise LeaveToLibrary("a track without a handler")
        if _payload(buf, hdlr)[8:12] == b"soun":
            return mdia
    return None


def _check_stream_info(buf: Buffer, moov: _Atom) -> None:
    """LeaveToLibrary where mutagen's ``MP4Info`` would fail: it reads the first audio track's media
    header and sample description, or without an audio track the movie header."""
    mdia = _audio_track(moov, buf)
    if mdia is None:
        mvhd = _first(moov.children, b"mvhd")
        if mvhd is not None and not _movie_header_ok(_payload(buf, mvhd), other_versions=True):
            raise LeaveToLibrary("a movie header mutagen refuses")
        return
    mdhd = _first(mdia.children, b"mdhd")
    data = _payload(buf, mdhd) if mdhd is not None else b""
    if len(data) < 4 or data[0] not in (0, 1) or len(data) < (20 if data[0] == 0 else 32):
        raise LeaveToLibrary("a media header mutagen refuses")
    minf = _first(mdia.children, b"minf")
    stbl = _first(minf.children, b"stbl") if minf is not None else None
    stsd = _first(stbl.children, b"stsd") if stbl is not None else None
    if stsd is None:
        return  # mutagen reads no sample description then
    data = _payload(buf, stsd)
    if len(data) < 8 or data[0] != 0:
        raise LeaveToLibrary("a sample description mutagen refuses")
    if _u32(data, 4):  # the number of entries: mutagen reads the first
        _check_sample_entry(data[8:])


def _check_sample_entry(data: bytes) -> None:
    """The first sample entry, as mutagen's ``AudioSampleEntry`` reads it (in whatever track type):
    28 bytes of audio fields, then an atom, which for AAC, ALAC and AC-3 it decodes."""
    size, codec = _u32(data, 0), data[4:8]
    extra = data[8 + 28 : size]
    extra_size, extra_name = _u32(extra, 0), extra[4:8]
    if (len(data) < 8 or size in (0, 1) or codec in MP4_CONTAINERS or size < 8 + 28 + 8 or size > len(data)
            or extra_size in (0, 1) or extra_name in MP4_CONTAINERS or extra_size < 8):
        # Sizes 0 and 1 (to the end, 64-bit) and containers mutagen reads well enough; not worth imitating.
        raise LeaveToLibrary("a sample entry mutagen refuses or reads differently")
    config = extra[8:extra_size]
    read = extra_size <= len(extra)  # mutagen reads the atom only for the codecs below
    if codec == b"mp4a" and extra_name == b"esds":
        if not read or len(config) < 4 or config[0] != 0:
            raise LeaveToLibrary("an esds atom mutagen refuses")
        _check_esds(_Bits(config[4:]))
    elif codec == b"alac" and extra_name == b"alac":
        # version 0; then 4 bytes, the compatible version (others end the reading), 19 bytes more
        if not read or len(config) < 9 or config[0] != 0 or (config[8] == 0 and len(config) < 28):
            raise LeaveToLibrary("an ALAC cookie mutagen refuses")
    elif codec == b"ac-3" and extra_name == b"dac3" and (not read or len(config) < 3):
        raise LeaveToLibrary("a dac3 atom mutagen refuses")


class _Bits:
    """Where mutagen's ``BitReader`` fails, over ``data``: reading bits fails unless the bytes
    holding them are there; skipping fails only when it ends inside a missing byte (it seeks)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0  # pos in bits

    def _end(self, count: int) -> int:
        end = self.pos + count
        if count and (end + 7) // 8 > len(self.data):
            raise LeaveToLibrary("mutagen runs out of data decoding the esds atom")
        self.pos = end
        return end

    def bits(self, count: int) -> int:
        end = self._end(count)
        value = int.from_bytes(self.data[(end - count) // 8 : (end + 7) // 8], "big")
        return value >> (-end % 8) & ((1 << count) - 1)

    def skip(self, count: int) -> None:
        if (self.pos + count) % 8:
            self._end(count)
        else:
            self.pos += count


def _check_esds(r: _Bits) -> None:
    """mutagen's ES_Descriptor, DecoderConfigDescriptor and DecoderSpecificInfo parsers (mutagen.mp4._as_entry),
    reduced to where they fail."""

    def length() -> int:  # a descriptor length: up to four bytes of seven bits
        value = 0
        for _ in range(4):
            byte = r.bits(8)
            value = value << 7 | byte & 0x7F
            if not byte & 0x80:
                return value
        raise LeaveToLibrary("an invalid descriptor length")

    if r.bits(8) != 3:
        raise LeaveToLibrary("no ES descriptor")
    length()
    r.bits(16)  # ES_ID
    depends, url, ocr = r.bits(1), r.bits(1), r.bits(1)
    r.bits(5)  # priority
    if depends:
        r.bits(16)
    if url:
        r.bits(8 * r.bits(8))
    if ocr:
        r.bits(16)
    if r.bits(8) != 4:
        raise LeaveToLibrary("no decoder config descriptor")
    config_length = length()
    object_type, stream_type = r.bits(8), r.bits(6)
    r.bits(1 + 1 + 24 + 32 + 32)
    if (object_type, stream_type) != (0x40, 5) or config_length == 13 or r.bits(8) != 5:
        return
    _check_audio_config(r, length())


def _check_audio_config(r: _Bits, length: int) -> None:
    """mutagen's ``DecoderSpecificInfo._parse`` and ``GASpecificConfig``: which bits it reads."""
    start = r.pos

    def object_type() -> int:
        kind = r.bits(5)
        return 32 + r.bits(6) if kind == 31 else kind

    def frequency() -> None:
        if r.bits(4) == 15:
            r.bits(24)

    kind = object_type()
    frequency()
    channels = r.bits(4)
    extension = 0
    if kind in (5, 29):
        extension = 5
        frequency()
        kind = object_type()
        if kind == 22:
            r.bits(4)
    if kind not in (1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22, 23):
        return  # mutagen reads no further
    r.skip(1)  # GASpecificConfig
    if r.bits(1):
        r.skip(14)
    extension_flag = r.bits(1)
    if not channels:
        raise LeaveToLibrary("an AAC program config element")  # mutagen decodes it; rare
    if kind in (6, 20):
        r.skip(3)
    if extension_flag:
        if kind == 22:
            r.skip(5 + 11)
        if kind in (17, 19, 20, 23):
            r.skip(3)
        if r.bits(1):
            return  # extensionFlag3: mutagen stops there
    if kind in (17, 19, 20, 21, 22, 23) and r.bits(2) in (2, 3):
        return
    if extension != 5 and length * 8 - (r.pos - start) >= 16 and r.bits(11) == 0x2B7:
        extension = object_type()
        if extension == 5 and r.bits(1) == 1:
            frequency()
            if length * 8 - (r.pos - start) >= 12 and r.bits(11) == 0x548:
                r.bits(1)
        if extension == 22:
            if r.bits(1) == 1:
                frequency()
            r.bits(4)


def _check_chapters(mvhd: bytes, chpl: bytes) -> None:
    """mutagen reads Nero chapters (moov/udta/chpl) with the movie header's time scale, and
    refuses the file if either is short, the time scale 0 or a title not UTF-8."""
    if not _movie_header_ok(mvhd, other_versions=False):
        raise LeaveToLibrary("a movie header mutagen refuses")
    if len(chpl) < 9:
        raise LeaveToLibrary("a chapter list mutagen refuses")
    pos = 9
    for _ in range(chpl[8]):
        if len(chpl) < pos + 9:
            raise LeaveToLibrary("a chapter list mutagen refuses")
        title_end = pos + 9 + chpl[pos + 8]  # a start time of 8 bytes, a title of a counted length
        try:
            chpl[pos + 9 : title_end].decode("utf-8")
        except UnicodeDecodeError:
            raise LeaveToLibrary("a chapter title mutagen refuses") from None
        pos = title_end
