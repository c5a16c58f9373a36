"""Bounded readers for the tags ``audio.read`` looks at: ID3v2.3/2.4 frames and FLAC Vorbis comments.

Importing mutagen and letting it parse a whole tag costs more than everything else a read does,
and a scan reads millions of files. These readers decode only what rightsmeta looks at (the TXXX,
TCOP, WCOP and PRIV frames; Vorbis comments), and decode it exactly as mutagen 1.48 does, quirks
included, so a report does not depend on which of the two read the file. Input they are not sure
of (ID3v2.2, encrypted frames, text mutagen would repair, FLAC blocks mutagen would walk
differently) raises ``Unusual``, and the caller hands the file to mutagen as before.

Every length is checked against the bytes in hand, and compressed frames inflate within the
bounds below whichever reader goes on to decode them.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field

from ..errors import MalformedFile
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


class Unusual(Exception):
    """Input these readers leave to mutagen."""


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
        raise Unusual("encrypted frame")
    if not compressed:
        return data
    limit = min(MAX_ID3_INFLATE, budget)
    out = _inflate(frame_id, data, limit)
    if out is None and major == 4:
        # Early mutagen wrote no length before the stream; mutagen tries it that way too.
        out = _inflate(frame_id, length + data, limit)
    if out is None:
        raise Unusual("corrupt compressed frame")
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
                raise Unusual("UTF-16 text mutagen would repair") from None
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


def read_id3(data: bytes, descriptions: frozenset[str], what: str) -> ID3Frames:
    """The frames rightsmeta reads from the ID3v2 tag at the start of ``data``, as mutagen's ``ID3``
    reads them: the TXXX frames whose description casefolds to one of ``descriptions``, TCOP, WCOP
    and PRIV. ``what`` names the file in errors."""
    if data[:3] != b"ID3" or len(data) < 10 or data[3] not in (3, 4) or any(b & 0x80 for b in data[6:10]):
        raise Unusual("no ID3v2.3 or v2.4 header")
    major, flags = data[3], data[5]
    if flags & (0x0F if major == 4 else 0x1F):
        raise Unusual("undefined header flags")  # mutagen refuses the tag
    end = 10 + _syncsafe(data[6:10])
    start = 10
    if flags & 0x40 and data[10:14] not in KNOWN_FRAMES:  # some taggers set the flag but write no header
        ext = data[10:14]
        if len(ext) < 4 or (major == 4 and any(b & 0x80 for b in ext)):
            raise Unusual("bad extended header")
        start = 10 + _syncsafe(ext) if major == 4 else 14 + _u32(ext)  # v2.4 counts the size field
        if start < 14:
            raise Unusual("bad extended header")
    if end > len(data) or start > end:
        raise Unusual("the tag is larger than the data")
    body = data[start:end]
    if major == 3 and flags & 0x80:
        body = _unsynchronise(body)
    v24 = major == 4
    synchsafe = v24 and _synchsafe_sizes(body)
    unsynchronised = v24 and bool(flags & 0x80)

    found = ID3Frames(major)
    unusual = ""
    budget, values_left = MAX_ID3_INFLATE_TOTAL, MAX_ID3_VALUES
    pos = 0
    # Every frame is visited, not only ours, so that a compressed frame which would blow up in
    # mutagen (after a fallback) is refused here first. Each step takes at least 10 bytes.
    while len(body) - pos >= 10:
        frame_id = body[pos : pos + 4]
        if not frame_id.strip(b"\x00"):
            break  # padding
        size = _u32(body, pos + 4)
        if synchsafe:
            size = _bits7(size)
        frame_flags = int.from_bytes(body[pos + 8 : pos + 10], "big")
        raw = body[pos + 10 : pos + 10 + size]  # cut off at the tag's end, as mutagen cuts it
        pos += 10 + size
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
        except Unusual as exc:
            if frame_id in _OURS:
                unusual = unusual or str(exc)
        except MalformedFile as exc:
            raise MalformedFile(f"{what}: {exc}") from None
    if unusual:
        raise Unusual(unusual)
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
        raise Unusual("cut-off length")
    return int.from_bytes(data[pos : pos + 4], "little")


# A Vorbis comment key: printable ASCII from 0x20 to 0x7D, but no '='.
_VORBIS_KEY = re.compile(r"[\x20-\x3c\x3e-\x7d]+")


def vorbis_comments(data: bytes) -> list[tuple[str, str]]:
    """The (key, value) pairs of a Vorbis comment block without framing bit, as mutagen reads them.

    Unusual if the comments do not end exactly where the block does: mutagen trusts the comments
    over the block size, and would read on into the next block.
    """
    pos = 4 + _u32le(data, 0)  # the vendor string
    count = _u32le(data, pos)
    pos += 4
    if count > MAX_VORBIS_COMMENTS:
        raise MalformedFile(f"FLAC: the VORBIS_COMMENT block claims {count} comments; refusing more than {MAX_VORBIS_COMMENTS}")
    comments = []
    for i in range(count):
        length = _u32le(data, pos)
        pos += 4 + length
        if pos > len(data):
            raise Unusual("a comment runs past the block")
        text = data[pos - length : pos].decode("utf-8", "replace")
        key, sep, value = text.partition("=")
        if not sep:
            key, value = f"unknown{i}", text
        if not key.isascii():
            key = key.encode("ascii", "replace").decode("ascii")
        if _VORBIS_KEY.fullmatch(key):
            comments.append((key, value))
    if pos != len(data):
        raise Unusual("the comments do not fill the block")
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
        raise Unusual("FLAC metadata mutagen reads differently")
    streaminfo = next(bytes(buf[s:e]) for kind, s, e in blocks if kind == 0)
    if len(streaminfo) < 34 or not int.from_bytes(streaminfo[10:13], "big") >> 4:
        raise Unusual("no valid STREAMINFO")
    comments = None
    for kind, s, e in blocks:
        if kind == 6 and not _picture_fits(bytes(buf[s:e])):
            raise Unusual("a PICTURE block mutagen reads past")
        if kind == 4:
            found = vorbis_comments(bytes(buf[s:e]))
            comments = found if comments is None else comments  # mutagen uses the first
    return comments
