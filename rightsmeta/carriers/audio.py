"""Audio and video: ID3v2 (MP3, WAV, AIFF), Vorbis comments (FLAC, Ogg Vorbis, Opus), MP4 atoms.

mutagen writes the tags, always on an in-memory copy (``io.BytesIO``): it never touches the
user's path, and the caller makes the result durable. A small structural walk first checks the
lengths the container declares against the file (truncation shows there, not as a guess deep
inside a tag parser), bounds what compressed frames would inflate to, and finds the XMP that
mutagen cannot reach (the MP4 ``uuid`` box, WAV ``_PMX``, MOV ``XMP_``).

Reading needs no mutagen: carriers/audiotags.py decodes the few ID3v2.3/2.4 frames, Vorbis
comments (FLAC, Ogg Vorbis, Opus) and MP4 ilst items read here exactly as mutagen does, and hands
anything unusual back to mutagen (imported then, on a read-only map of the file). A scan of
files as encoders and taggers write them thus never imports it; QuickTime's own moov/meta (no
version and flags, as Apple devices and ExifTool write it) is such an unusual case.

Every carrier holds the same flat record (``schemas/rightsmeta-namespace.md``): the exact
per-purpose states, holder, date and the TDMRep values, beside each format's own copyright and
licence fields. ID3 also carries the whole XMP packet the image carrier writes (``PRIV`` owned by
"XMP"), and MP4 the standard XMP ``uuid`` box, so XMP readers such as ExifTool see PLUS DataMining.
"""

from __future__ import annotations

import contextlib
import functools
import io
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from .. import xmp
from ..errors import LeaveToLibrary, MalformedFile, MalformedMetadata, RightsmetaError, UnsupportedFormat
from ..log import fell_back
from ..model import Assertion, Holder
from ..report import CarrierReport
from ..vocab import apart, project, tdmrep
from . import audiotags, bmff, riff
from .audiotags import MAX_ID3_INFLATE, MAX_ID3_INFLATE_TOTAL
from .heads import id3_size as _id3_size
from .heads import mpeg_frame as _mpeg_frame
from .heads import refine_audio as refine  # noqa: F401  (the family's refine)
from .heads import sniff_audio as sniff  # noqa: F401  (the family's sniff)
from .heads import syncsafe as _syncsafe
from .tiff import Buffer

if TYPE_CHECKING:
    from . import Options

FORMATS = ("mp3", "wav", "aiff", "flac", "ogg", "opus", "m4a", "mp4", "mov")
_VORBIS_FORMATS = ("flac", "ogg", "opus")
_MP4_FORMATS = ("m4a", "mp4", "mov")
# Boxes that are what their type says: a packet is never looked for in them (the others are boxes
# rarely met, whose type may be a damaged one's).
_TOP_BOXES = frozenset({b"ftyp", b"moov", b"meta", b"pnot", b"PICT", b"sidx", b"styp", b"moof", b"mfra"})
_MOOV_BOXES = frozenset({b"mvhd", b"trak", b"udta", b"meta", b"iods", b"mvex", b"ipmc", b"meco", b"ctab", b"clip", b"prfl", b"pdin"})

#: The standard XMP box of ISO-BMFF files (XMP Specification Part 3, 1.2.7).
XMP_UUID = bytes.fromhex("BE7ACFCB97A942E89C71999491E3AFAC")

#: Upper bound on chunks/boxes walked in one container level; real files stay far below it.
MAX_ITEMS = 100_000
#: How far from the end the MP3 and FLAC tail checks look for the last frames.
TAIL = 256 * 1024
#: FLAC frames are looked for this far from the end and CRC-checked (pure-Python CRC); longer
#: frames are exotic, and a file declaring them gets no truncation verdict.
MAX_FLAC_CRC = 1024 * 1024
#: 0xFF bytes examined as possible frame starts; a real last frame holds a few thousand at most.
MAX_FLAC_SYNCS = 65536

# --- the names rightsmeta writes (schemas/rightsmeta-namespace.md) ------------------------------

#: Logical field names: ``rightsmeta:<XMP property>`` for the exact record, holder and date;
#: the TDMRep names for the projection. ID3 TXXX descriptions are exactly these.
RECORD_FIELDS = tuple(f"{project.PREFIX}:{k}" for k in (*project.ALL_KEYS, "HolderName", "HolderContact", "Date"))
TDM_FIELDS = ("tdm-reservation", "tdm-policy")
FIELDS = (*RECORD_FIELDS, *TDM_FIELDS)
MP4_MEAN = "org.rightsmeta"
#: MP4 has no standard licence-URL atom: the web statement gets a freeform atom of its own.
MP4_WEB_STATEMENT = f"----:{MP4_MEAN}:{project.PREFIX}:WebStatement"


def vorbis_name(name: str) -> str:
    """``rightsmeta:AITraining`` -> ``RIGHTSMETA_AITRAINING``; ``tdm-policy`` -> ``TDM_POLICY``."""
    return name.replace(":", "_").replace("-", "_").upper()


def mp4_name(name: str) -> str:
    """``rightsmeta:AITraining`` -> ``----:org.rightsmeta:rightsmeta:AITraining``.

    The name repeats the prefix because ffmpeg drops the mean and folds case: a bare ``Date``
    would collide with the ``date`` that ``©day`` becomes there.
    """
    return f"----:{MP4_MEAN}:{name}"


# Field names are matched case-insensitively on read: Vorbis keys are case-insensitive by
# definition, and tools differ in how they spell the others.
_BY_ID3 = {n.casefold(): n for n in FIELDS}
BY_VORBIS = {vorbis_name(n).casefold(): n for n in FIELDS}
BY_MP4 = {mp4_name(n).casefold(): n for n in FIELDS}
ID3_DESCRIPTIONS = frozenset(_BY_ID3)


def fields(assertion: Assertion) -> dict[str, str]:
    """The flat record for ``assertion``: logical field name -> text."""
    return project.flat(assertion, reservation_key="tdm-reservation", policy_key="tdm-policy")


# --- sniffing ------------------------------------------------------------------------------------

# --- structure: what the container declares must fit in the file --------------------------------


@dataclass
class _Layout:
    """What the structural walk found."""

    kind: str  # the format as found (FLAC behind a large ID3 tag is sniffed as "mp3")
    #: Tag chunks of WAV/AIFF: (payload start, payload end).
    id3_chunk: tuple[int, int] | None = None
    #: XMP packets mutagen cannot reach: (start, end, location).
    xmp: list[tuple[int, int, str]] = field(default_factory=list)
    #: The container's own copyright text: WAV LIST/INFO (its ICOP inside) or AIFF '(c) ' chunk,
    #: as (payload start, payload end).
    copyright: tuple[int, int] | None = None
    #: FLAC: the offset of 'fLaC' and its metadata blocks as (type, payload start, payload end).
    flac: tuple[int, list[tuple[int, int, int]]] | None = None
    #: Ogg: how many logical streams begin in the file (chained or multiplexed files have several).
    ogg_streams: int = 0
    #: MP4: the moov box, as (start, end).
    moov: tuple[int, int] | None = None


def _check_id3(buf: Buffer, pos: int, what: str) -> int:
    """End of the ID3v2 tag at ``pos``; MalformedFile if it is cut off or inflates too far."""
    n = len(buf)
    if pos + 10 > n:
        raise MalformedFile(f"truncated {what}: the ID3v2 header at offset {pos} is cut off at {n}")
    major, flags = buf[pos + 3], buf[pos + 5]
    if major not in (2, 3, 4):
        raise MalformedFile(f"{what}: unknown ID3v2 version 2.{major} at offset {pos}")
    end = _id3_size(buf, pos)
    if end is None:
        raise MalformedFile(f"{what}: the ID3v2 tag size at offset {pos} is not a synchsafe integer")
    if end > n:
        raise MalformedFile(
            f"truncated {what}: the ID3v2 tag at offset {pos} claims {end - pos} bytes but the file ends at {n}"
        )
    if major > 2:
        _check_id3_frames(bytes(buf[pos + 10 : pos + 10 + _syncsafe(bytes(buf[pos + 6 : pos + 10]))]), major, flags, what)
    return end


def _unsync(data: bytes) -> bytes:
    return data.replace(b"\xff\x00", b"\xff")


def _check_id3_frames(body: bytes, major: int, flags: int, what: str) -> None:
    """mutagen inflates compressed frames without a limit; refuse the ones that would explode.

    The frames are walked by ``audiotags.frames``, the one ID3 frame walker, which ends at an
    all-NUL frame ID as mutagen does (this check used to stop at a first NUL byte, and so could
    leave frames after a damaged ID unchecked that mutagen goes on to inflate)."""
    if major == 3 and flags & 0x80:
        body = _unsync(body)
    pos = 0
    if flags & 0x40 and len(body) >= 4:  # extended header
        pos = 4 + int.from_bytes(body[:4], "big") if major == 3 else _syncsafe(body[:4])
    budget = MAX_ID3_INFLATE_TOTAL
    body = body[pos:]
    for pos, frame_id, size, frame_flags in audiotags.frames(body, synchsafe=major == 4):
        fmt = frame_flags & 0xFF  # the format byte: compression, unsynchronisation, length
        data = body[pos + 10 : pos + 10 + size]
        compressed = fmt & 0x80 if major == 3 else fmt & 0x08
        if compressed:
            if major == 4 and fmt & 0x02:
                data = _unsync(data)
            # The first 4 bytes are the declared size (which a bomb would lie about) in v2.3 and with
            # v2.4's data-length flag; mutagen skips them in v2.4 without the flag too: check both.
            inflated = 0
            for candidate in (data[4:],) if major == 3 or fmt & 0x01 else (data, data[4:]):
                try:
                    out = zlib.decompressobj().decompress(candidate, min(MAX_ID3_INFLATE, budget) + 1)
                except zlib.error:
                    out = b""  # mutagen reports or skips a corrupt frame itself
                if len(out) > min(MAX_ID3_INFLATE, budget):
                    name = frame_id.decode("latin-1")
                    raise MalformedFile(f"{what}: compressed ID3v2 frame {name} inflates to too many bytes; refusing it")
                inflated = max(inflated, len(out))
            budget -= inflated


#: MPEG audio frame lengths by the header bits that decide them (version, layer, bitrate, sample
#: rate, padding: 2048 keys at most), 0 for no frame. The tail walk meets thousands of headers
#: per file but only a few distinct ones, so each is worked out once (heads.mpeg_frame).
_FRAME_LENGTHS: dict[int, int] = {}


def _frame_length(buf: Buffer, pos: int) -> int:
    """Length of the MPEG audio frame whose header is at ``pos``; 0 if there is none."""
    if pos + 4 > len(buf) or buf[pos] != 0xFF or buf[pos + 1] & 0xE0 != 0xE0:
        return 0
    key = (buf[pos + 1] & 0x1E) << 8 | (buf[pos + 2] & 0xFE)
    length = _FRAME_LENGTHS.get(key)
    if length is None:
        frame = _mpeg_frame(bytes((0xFF, 0xE0 | key >> 8, key & 0xFF, 0)))
        length = _FRAME_LENGTHS[key] = frame[0] if frame is not None else 0
    return length


def _mpeg_chain(buf: Buffer, pos: int, frames: int) -> bool:
    """Do ``frames`` frame headers follow each other from ``pos`` (or the file end before)?"""
    for _ in range(frames):
        if pos >= len(buf):
            return True
        length = _frame_length(buf, pos)
        if not length:
            return False
        pos += length
    return True


def _check_mp3(buf: Buffer, start: int) -> None:
    """Find the first MPEG frame after the tags, then walk the last frames to the file's end.

    Only the tail is walked, so a long file costs no more than a short one; a frame that runs
    past the end is a truncated file. Anything else after the audio (ID3v1, APE, junk) is left
    alone, as players do.
    """
    n = len(buf)
    first = next((p for p in _candidates(buf, start, min(n, start + 64 * 1024)) if _mpeg_chain(buf, p, 3)), None)
    if first is None:
        raise MalformedFile(f"MP3: no MPEG audio frame found at or after offset {start}")
    pos = first
    if n - first > TAIL:
        # Resynchronise near the end: three chained headers make a false sync implausible.
        pos = next((p for p in _candidates(buf, n - TAIL, n - TAIL + 16 * 1024) if _mpeg_chain(buf, p, 3)), n)
    # This loop meets every frame of the tail, thousands in a long file: it runs over a copy
    # (indexing bytes is cheaper than indexing a map) with _frame_length inlined.
    tail, at, lengths = bytes(buf[pos:n]), 0, _FRAME_LENGTHS
    while at + 4 <= len(tail):  # every frame is longer than 20 bytes
        if tail[at] != 0xFF or tail[at + 1] & 0xE0 != 0xE0:
            return
        length = lengths.get((tail[at + 1] & 0x1E) << 8 | (tail[at + 2] & 0xFE))
        if length is None:
            length = _frame_length(tail, at)
        if not length:
            return
        if at + length > len(tail):
            raise MalformedFile(
                f"truncated MP3: the MPEG frame at offset {pos + at} needs {length} bytes but the file ends at {n}"
            )
        at += length


def _candidates(buf: Buffer, start: int, stop: int) -> Iterator[int]:
    pos = buf.find(b"\xff", start, stop)
    while pos >= 0:
        yield pos
        pos = buf.find(b"\xff", pos + 1, stop)


#: The chunk names the ID3 tag of a WAV or AIFF file is read under (mutagen's and ExifTool's).
_ID3_CHUNKS = (b"id3 ", b"ID3 ")


def _misnamed_chunk(buf: Buffer, chunk: riff.Chunk, what: str) -> str | None:
    """What a chunk holds that is read only under another name: an ID3v2 tag outside ``id3 `` /
    ``ID3 ``, or (WAV) an XMP packet outside ``_PMX``. One byte of the name damaged, and mutagen
    and ExifTool skip the chunk without a word, the statement in it with it."""
    if chunk.fourcc in _ID3_CHUNKS or chunk.fourcc in (b"data", b"SSND"):
        return None  # the audio itself is not looked into
    start = chunk.data_start
    if bytes(buf[start : start + 3]) == b"ID3" and buf[start + 3 : start + 4] in (b"\x02", b"\x03", b"\x04"):
        return "an ID3v2 tag"
    if what == "WAV" and chunk.fourcc != b"_PMX" and xmp.begins_packet(buf, start, min(chunk.end, start + 96)):
        return "an XMP packet"
    return None


def _chunks(buf: Buffer, what: str, iff: bool) -> dict[bytes, tuple[int, int, int]]:
    """RIFF / IFF chunks (walked by carriers/riff.py): id -> (header offset, payload start,
    payload end), the first of each id; a LIST also as ``LIST/<its type>`` (LIST/INFO).

    MalformedFile if a chunk holds a tag under a name it is not read under (``_misnamed_chunk``)."""
    forms = (b"AIFF", b"AIFC") if iff else (b"WAVE",)
    found: dict[bytes, tuple[int, int, int]] = {}
    for chunk in riff.walk(buf, forms, iff=iff, name=what, short_tail=True).chunks:
        held = _misnamed_chunk(buf, chunk, what)
        if held is not None:
            name = chunk.fourcc.decode("latin-1").encode("unicode_escape").decode("ascii")
            raise MalformedFile(f"{what}: chunk '{name}' at offset {chunk.start} holds {held} under a name it is "
                                "not read under (a damaged chunk name?): it was not read")
        found.setdefault(chunk.fourcc, (chunk.start, chunk.data_start, chunk.end))
        if chunk.fourcc == b"LIST" and chunk.size >= 4:
            found.setdefault(b"LIST/" + bytes(buf[chunk.start + 8 : chunk.start + 12]), (chunk.start, chunk.start + 12, chunk.end))
    return found


def _movie(what: str) -> bmff.Walker:
    """How the MP4 reader and writer walk boxes (carriers/bmff.py): printable types at every
    level, and below the top fewer than 8 bytes left over are slack whatever they hold
    (QuickTime ends some atom lists with a zero word)."""
    return _MOVIES.get(what) or bmff.Walker(what, MAX_ITEMS, printable=True, tail="ignore")


# Made once (immutable): building the tuple per call was most of what the walker class cost a read.
_MOVIES = {what: bmff.Walker(what, MAX_ITEMS, printable=True, tail="ignore") for what in ("M4A", "MP4", "MOV")}


# FLAC frame headers end with a CRC-8 (poly 0x07), frames with a CRC-16 (poly 0x8005), both MSB-first.
def _crc_table(poly: int, width: int) -> tuple[int, ...]:
    top, mask = 1 << (width - 1), (1 << width) - 1
    table = []
    for byte in range(256):
        crc = byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & mask if crc & top else (crc << 1) & mask
        table.append(crc)
    return tuple(table)


_CRC8 = _crc_table(0x07, 8)


def _crc8(data: bytes) -> int:
    crc = 0
    for b in data:
        crc = _CRC8[crc ^ b]
    return crc


@functools.cache
def _crc16_function() -> Callable[[bytes], int]:
    # crcmod-plus computes it in C: the CRC covers a whole frame (up to 16 KiB and more), which a
    # loop in Python took 1-2 ms over, most of a FLAC's verify. Imported at the first FLAC.
    from crcmod import mkCrcFun

    return mkCrcFun(0x18005, initCrc=0, rev=False, xorOut=0)


def _crc16(data: bytes) -> int:
    return _crc16_function()(data)


@functools.cache
def _ogg_crc_function() -> Callable[[bytes], int]:
    from crcmod import mkCrcFun

    return mkCrcFun(0x104C11DB7, initCrc=0, rev=False, xorOut=0)  # Ogg's CRC-32 (RFC 3533, 6)


def _check_ogg_crc(buf: Buffer, pos: int, end: int) -> None:
    """The page at ``pos`` matches its CRC (computed with the CRC field as zeros)."""
    page = bytes(buf[pos:end])
    if _ogg_crc_function()(page[:22] + bytes(4) + page[26:]) != int.from_bytes(page[22:26], "little"):
        raise MalformedFile(f"Ogg: the page at offset {pos} does not match its CRC (damaged); its headers were not read")


def _flac_frame_header(buf: Buffer, pos: int) -> tuple[int, int, bool] | None:
    """(coded number, block size, variable-blocksize?) of a FLAC frame header with a valid CRC-8."""
    h = bytes(buf[pos : pos + 16])
    if len(h) < 6 or h[0] != 0xFF or h[1] not in (0xF8, 0xF9):
        return None
    block_code, rate_code = h[2] >> 4, h[2] & 0x0F
    if block_code == 0 or rate_code == 15 or h[3] >> 4 > 10 or h[3] & 1:
        return None
    # The frame or sample number, coded like UTF-8: a lead byte of k one-bits, then k-1 bytes 10xxxxxx.
    lead = h[4]
    length = 1 if lead < 0x80 else next((k for k in range(2, 8) if lead >> (7 - k) == (1 << (k + 1)) - 2), 0)
    if length == 0 or 4 + length > len(h):
        return None
    number = lead if length == 1 else lead & ((1 << (7 - length)) - 1)
    for b in h[5 : 4 + length]:
        if b & 0xC0 != 0x80:
            return None
        number = (number << 6) | (b & 0x3F)
    pos_ = 4 + length
    if block_code == 1:
        block = 192
    elif block_code <= 5:
        block = 576 << (block_code - 2)
    elif block_code == 6:
        block, pos_ = h[pos_] + 1 if pos_ < len(h) else 0, pos_ + 1
    elif block_code == 7:
        block, pos_ = int.from_bytes(h[pos_ : pos_ + 2], "big") + 1, pos_ + 2
    else:
        block = 256 << (block_code - 8)
    pos_ += {12: 1, 13: 2, 14: 2}.get(rate_code, 0)
    if pos_ >= len(h) or _crc8(h[:pos_]) != h[pos_]:
        return None
    return number, block, bool(h[1] & 1)


def _holds_comments(buf: Buffer, start: int, end: int) -> bool:
    """Is ``buf[start:end]`` a Vorbis comment block, of one comment or more, filling it exactly?
    One byte of a VORBIS_COMMENT block's type damaged, and every reader skips the comments, the
    statement among them. The lengths are looked at before anything is copied: other blocks
    (padding, pictures, seek tables) fail them at once."""
    if end - start < 12:
        return False
    count_at = start + 4 + int.from_bytes(buf[start : start + 4], "little")
    if count_at + 8 > end or not 0 < int.from_bytes(buf[count_at : count_at + 4], "little") <= (end - count_at) // 4:
        return False
    try:
        return bool(audiotags.vorbis_comments(bytes(buf[start:end])))
    except (LeaveToLibrary, MalformedFile):
        return False


def _check_flac(buf: Buffer, start: int) -> list[tuple[int, int, int]]:
    """Metadata blocks fit; the last frame is whole and ends the samples STREAMINFO declares.

    Returns the metadata blocks as (type, payload start, payload end).
    """
    n = len(buf)
    if bytes(buf[start : start + 4]) != b"fLaC":
        raise MalformedFile(f"not a FLAC: no 'fLaC' marker at offset {start}")
    pos = start + 4
    streaminfo: bytes | None = None
    blocks = []
    for _ in range(MAX_ITEMS):
        if pos + 4 > n:
            raise MalformedFile(f"truncated FLAC: a metadata block header at offset {pos} is cut off at {n}")
        last, btype, size = buf[pos] & 0x80, buf[pos] & 0x7F, int.from_bytes(buf[pos + 1 : pos + 4], "big")
        if pos + 4 + size > n:
            raise MalformedFile(
                f"truncated FLAC: the metadata block at offset {pos} claims {size} bytes but the file ends at {n}"
            )
        if btype == 0 and streaminfo is None:
            streaminfo = bytes(buf[pos + 4 : pos + 4 + size])
        blocks.append((btype, pos + 4, pos + 4 + size))
        pos += 4 + size
        if last:
            break
    else:
        raise MalformedFile(f"FLAC: more than {MAX_ITEMS} metadata blocks")
    for btype, s, e in blocks:
        if btype != 4 and _holds_comments(buf, s, e):
            raise MalformedFile(f"FLAC: the metadata block at offset {s - 4} holds Vorbis comments under type {btype}, "
                                "not VORBIS_COMMENT (4): a damaged block type? They were not read")
    if streaminfo is None or len(streaminfo) < 34:
        raise MalformedFile("FLAC: no valid STREAMINFO block")
    max_block = int.from_bytes(streaminfo[2:4], "big")
    max_frame = int.from_bytes(streaminfo[7:10], "big")
    total = int.from_bytes(streaminfo[13:18], "big") & 0xFFFFFFFFF
    audio_start, end = pos, n
    if end - audio_start >= 128 and bytes(buf[end - 128 : end - 125]) == b"TAG":
        end -= 128  # an ID3v1 tag some tools append
    if end == audio_start:
        if total:
            raise MalformedFile(f"truncated FLAC: STREAMINFO declares {total} samples but there are no audio frames")
        return blocks
    capped = max_frame > MAX_FLAC_CRC
    low = max(audio_start, end - min(max_frame or TAIL, MAX_FLAC_CRC) - 16)
    # The last frame starts at a sync code with a valid header CRC-8, and its CRC-16 covers the
    # rest of the file. A few false syncs inside the frame may precede it; a cut-off frame has none.
    found = None
    p, tried, looked = end - 1, 0, 0
    while found is None and tried < 8 and looked < MAX_FLAC_SYNCS:
        p = buf.rfind(b"\xff", low, p)
        if p < 0:
            break
        looked += 1
        header = _flac_frame_header(buf, p)
        if header is None:
            continue
        tried += 1
        if _crc16(bytes(buf[p : end - 2])) == int.from_bytes(buf[end - 2 : end], "big"):
            found = p, header
    if found is None:
        if capped or looked >= MAX_FLAC_SYNCS:
            return blocks  # frames larger than we check, or a hostile tail: no verdict rather than a wrong one
        raise MalformedFile(f"truncated FLAC: the last audio frame is incomplete or corrupt (the file ends at {n})")
    p, (number, block, variable) = found
    last_sample = (number if variable else number * max_block) + block
    if total and last_sample < total:
        raise MalformedFile(
            f"truncated FLAC: STREAMINFO declares {total} samples but the audio ends after {last_sample}"
        )
    return blocks


def _check_ogg(buf: Buffer) -> int:
    """Every page fits, and the last one ends the stream (its end-of-stream flag is set). The
    pages that lead the file with no granule position of audio (0, or -1 where no packet ends:
    the identification and comment headers, the statement among them, and Vorbis' setup header)
    match their CRC: mutagen reads the comments without looking, and one byte of a key damaged
    read as a comment of another name, the statement without it.

    Returns how many pages begin a logical stream.
    """
    n = len(buf)
    pos, flags, streams = 0, 0, 0
    headers = True
    while pos < n:  # each page takes at least 27 bytes: bounded by the file size
        if pos + 27 > n:
            raise MalformedFile(f"truncated Ogg: the page header at offset {pos} is cut off at {n}")
        if bytes(buf[pos : pos + 4]) != b"OggS" or buf[pos + 4] != 0:
            raise MalformedFile(f"Ogg: no page at offset {pos} (found {bytes(buf[pos : pos + 5])!r})")
        segments = buf[pos + 26]
        if pos + 27 + segments > n:
            raise MalformedFile(f"truncated Ogg: the segment table at offset {pos} is cut off at {n}")
        end = pos + 27 + segments + sum(buf[pos + 27 : pos + 27 + segments])
        if end > n:
            raise MalformedFile(
                f"truncated Ogg: the page at offset {pos} claims {end - pos} bytes but the file ends at {n}"
            )
        headers = headers and int.from_bytes(buf[pos + 6 : pos + 14], "little", signed=True) in (0, -1)
        if headers:
            _check_ogg_crc(buf, pos, end)
        flags, pos = buf[pos + 5], end
        streams += flags >> 1 & 1
    if not flags & 0x04:
        raise MalformedFile("truncated Ogg: the last page does not end the stream (no end-of-stream flag)")
    return streams


def _layout(buf: Buffer, fmt: str) -> _Layout:
    """Check the container's structure; MalformedFile says what is wrong and where."""
    if fmt in ("mp3", "flac"):
        pos = 0
        for _ in range(16):  # some files carry several ID3v2 tags in a row
            if bytes(buf[pos : pos + 3]) != b"ID3":
                break
            pos = _check_id3(buf, pos, fmt.upper())
        if bytes(buf[pos : pos + 4]) == b"fLaC":
            return _Layout("flac", flac=(pos, _check_flac(buf, pos)))
        if fmt == "flac":
            raise MalformedFile(f"not a FLAC: no 'fLaC' marker after the ID3v2 tag at offset {pos}")
        _check_mp3(buf, pos)
        return _Layout("mp3")
    if fmt == "wav":
        chunks = _chunks(buf, "WAV", iff=False)
        return _riff_layout(buf, "wav", chunks, (b"fmt ", b"data"), _ID3_CHUNKS)
    if fmt == "aiff":
        chunks = _chunks(buf, "AIFF", iff=True)
        return _riff_layout(buf, "aiff", chunks, (b"COMM",), _ID3_CHUNKS[::-1])
    if fmt in ("ogg", "opus"):
        return _Layout(fmt, ogg_streams=_check_ogg(buf))
    if fmt in _MP4_FORMATS:
        what = fmt.upper()
        movie = _movie(what)
        top = movie.top(buf)
        layout = _Layout(fmt)
        moov = next((b for b in top if b.type == b"moov"), None)
        if moov is None:
            raise MalformedFile(f"{what}: no 'moov' box (the file is incomplete)")
        others = []
        for box in top:
            if box.type == b"uuid" and bytes(buf[box.payload : box.payload + 16]) == XMP_UUID:
                layout.xmp.append((box.payload + 16, box.end, f"{what} uuid box BE7ACFCB-97A9-42E8-9C71-999491E3AFAC"))
            else:
                others.append(box)
        _check_movie_tree(buf, movie, moov)
        layout.moov = moov.start, moov.end
        # moov/udta/XMP_, walked level by level so that a packet under a damaged name is seen too.
        in_moov = movie.inside(buf, moov)
        udta = next((b for b in in_moov if b.type == b"udta"), None)
        in_udta = movie.inside(buf, udta) if udta is not None else []
        found = next((b for b in in_udta if b.type == b"XMP_"), None)
        if found is not None:
            layout.xmp.append((found.payload, found.end, f"{what} moov/udta/XMP_ atom"))
        misnamed = (bmff.misnamed_xmp(buf, others, _TOP_BOXES) or bmff.misnamed_xmp(buf, in_moov, _MOOV_BOXES, whole=True)
                    or bmff.misnamed_xmp(buf, in_udta, frozenset({b"XMP_"})))
        if misnamed is not None:
            raise MalformedFile(f"{what}: the {misnamed.type!r} box at offset {misnamed.start} holds an XMP packet under "
                                "a damaged type or UUID (not a uuid box BE7ACFCB-..., nor moov/udta/XMP_): the packet was not read")
        return layout
    raise UnsupportedFormat(f"the audio carrier does not handle format {fmt!r}")


#: The boxes of moov whose children mutagen walks on its way to the tags (the tracks' sample
#: tables and headers, udta, meta); ilst's items are its own business (audiotags).
_MOVIE_CONTAINERS = frozenset((b"moov", b"trak", b"mdia", b"minf", b"stbl", b"udta", b"meta"))


def _check_movie_tree(buf: Buffer, movie: bmff.Walker, moov: bmff.Box) -> None:
    """Every box in moov's container tree fits in its container (MalformedFile where one does not).

    mutagen reads a box that runs past its container and carries on behind it: one byte of a
    sample table's size damaged, and it walks the rest of the movie askew, misses udta and reads
    the file as having no tags, a statement in an ilst item among them, without a word. The fast
    reader steps aside to mutagen there, by design; this check makes the damage an error first.
    """
    todo, walked = [(moov, 0)], 0
    while todo:  # at most MAX_ITEMS boxes, 32 levels deep: bounded
        box, depth = todo.pop()
        if box.type == b"meta" and not bmff.quicktime_meta(buf, box):
            box = box._replace(payload=box.payload + 4)  # ISO's FullBox: version and flags first
        for child in movie.inside(buf, box):
            walked += 1
            if child.type in _MOVIE_CONTAINERS and depth < 32 and walked < MAX_ITEMS:
                todo.append((child, depth + 1))


def _riff_layout(
    buf: Buffer, kind: str, chunks: dict[bytes, tuple[int, int, int]], required: tuple[bytes, ...], tag_ids: tuple[bytes, ...]
) -> _Layout:
    for cid in required:
        if cid not in chunks:
            raise MalformedFile(f"{kind.upper()}: no {cid.decode()!r} chunk")
    layout = _Layout(kind)
    tag = next((chunks[c] for c in tag_ids if c in chunks), None)
    if tag is not None:
        layout.id3_chunk = tag[1], tag[2]
        _check_id3(buf, tag[1], f"{kind.upper()} ID3 chunk")
    if kind == "wav" and b"_PMX" in chunks:
        layout.xmp.append((chunks[b"_PMX"][1], chunks[b"_PMX"][2], "RIFF _PMX chunk"))
    text = chunks.get(b"LIST/INFO" if kind == "wav" else b"(c) ")
    if text is not None:
        layout.copyright = text[1], text[2]
    return layout


def _text_value(data: bytes) -> str:
    # Neither chunk names an encoding: ffmpeg and most current tools write UTF-8, older ones a
    # Windows code page, which Latin-1 reads without failing.
    data = data.split(b"\x00", 1)[0].strip()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _info_items(buf: Buffer, start: int, end: int) -> Iterator[tuple[int, int]]:
    """(offset, size) of each sub-chunk of a LIST/INFO payload ``[start, end)``, up to the first
    one cut off: the rest of the list says nothing we can trust."""
    pos = start
    while pos + 8 <= end:  # each sub-chunk takes at least 8 bytes: bounded by the chunk
        size = int.from_bytes(buf[pos + 4 : pos + 8], "little")
        if pos + 8 + size > end:
            return
        yield pos, size
        pos += 8 + size + (size & 1)


def _read_container_copyright(buf: Buffer, kind: str, start: int, end: int) -> CarrierReport | None:
    """The copyright WAV keeps in LIST/INFO 'ICOP' (as ffmpeg, Windows and ExifTool write it) and
    AIFF in its '(c) ' chunk: a rights field, not a signal, shown beside the tags."""
    if kind == "aiff":
        text, location, key = _text_value(bytes(buf[start:end])), "AIFF '(c) ' chunk", "(c) "
    else:
        location, key = "RIFF LIST/INFO chunk", "ICOP"
        icop = next(((pos, size) for pos, size in _info_items(buf, start, end) if bytes(buf[pos : pos + 4]) == b"ICOP"), None)
        text = _text_value(bytes(buf[icop[0] + 8 : icop[0] + 8 + icop[1]])) if icop else ""
    if not text:
        return None
    return CarrierReport(f"{kind}-copyright", location, values={key: text}, rights={"copyright": text})


@contextlib.contextmanager
def _mutagen_errors(kind: str, doing: str) -> Iterator[None]:
    """Whatever mutagen raises on a bad file becomes one MalformedFile with its message."""
    import mutagen  # only where mutagen is about to be used: reading MP3, WAV and FLAC does without

    try:
        yield
    except RightsmetaError:
        raise
    except (mutagen.MutagenError, struct.error, ValueError, IndexError, KeyError, EOFError, OverflowError,
            RecursionError, OSError, zlib.error) as exc:
        # Where the recursion limit strikes (C or Python frame) changes its wording, not its meaning.
        said = "nested too deep" if isinstance(exc, RecursionError) else (exc or type(exc).__name__)
        raise MalformedFile(f"malformed {kind.upper()}: mutagen could not {doing} it ({said})") from None


# --- reading -------------------------------------------------------------------------------------


class _Found:
    """Our fields found in one carrier, with their raw values for the report."""

    def __init__(self, name: str, location: str) -> None:
        self.report = CarrierReport(name, location)
        self.fields: dict[str, str] = {}

    def put(self, native: str, values: list[str], logical: str | None = None) -> str | None:
        """Record a value; several different values for one field are an error."""
        if not values:
            return None
        self.report.values[native] = values[0] if len(values) == 1 else values
        if len(set(values)) > 1:
            self.report.errors.append(f"{native} holds {len(values)} different values: {values!r}")
        if logical is not None:
            self.fields.setdefault(logical, values[0])
        return values[0]

    def finish(self) -> CarrierReport | None:
        report, found = self.report, self.fields
        if not report.values and not report.errors:
            return None
        carrier = report.name
        record = {k.split(":", 1)[1]: v for k, v in found.items() if k in RECORD_FIELDS}
        try:
            signal = project.decode(record, carrier=carrier)
            if signal is not None:
                report.signals.append(signal)
        except MalformedMetadata as exc:
            report.errors.append(str(exc))
        if "tdm-reservation" in found:
            try:
                signal = tdmrep.decode(found["tdm-reservation"], found.get("tdm-policy"), carrier=carrier)
                if signal is not None:
                    report.signals.append(signal)
            except MalformedMetadata as exc:
                report.errors.append(str(exc))
        name = found.get(f"{project.PREFIX}:HolderName")
        if name:
            report.rights["holder"] = Holder(name, found.get(f"{project.PREFIX}:HolderContact") or None).to_json()
        for key, logical in (
            ("date", f"{project.PREFIX}:Date"), ("work_id", f"{project.PREFIX}:WorkID"), ("policy", "tdm-policy")
        ):
            if found.get(logical):
                report.rights[key] = found[logical]
        return report


def _read_id3(tags: audiotags.ID3Frames, where: str) -> list[CarrierReport]:
    version = f"ID3v2.{tags.version}"
    found = _Found("id3", f"{version} {where}".strip())
    for desc, values in tags.txxx.items():
        logical = _BY_ID3.get(desc.casefold())
        if logical is not None:
            found.put(f"TXXX:{desc}", values, logical)
    copyright_ = found.put("TCOP", tags.tcop)
    web = found.put("WCOP", tags.wcop)
    report = found.finish()
    out = []
    if report is not None:
        if copyright_:
            report.rights["copyright"] = copyright_
        if web:
            report.rights["web_statement"] = web
        out.append(report)
    for packet in tags.xmp:
        out.append(xmp.carrier_report(packet, f"{version} PRIV:XMP"))
    return out


def _with_damage(reports: list[CarrierReport], buf: Buffer, start: int, end: int, what: str, where: str) -> list[CarrierReport]:
    """The ID3 carriers read, with the damage of the tag's frame list as an error (read fails closed)."""
    damage = audiotags.id3_damage(bytes(buf[start:end]), what)
    if damage is None:
        return reports
    record = next((r for r in reports if r.name == "id3"), None)
    if record is None:  # nothing of ours before the damage: the error still needs a carrier to name it
        record = CarrierReport("id3", f"ID3v2 {where}")
        reports.insert(0, record)
    record.errors.append(damage)
    return reports


def _mutagen_id3(tags: Any) -> audiotags.ID3Frames:
    """What ``_read_id3`` reads, from a tag mutagen has read."""
    return audiotags.ID3Frames(
        version=tags.version[1],
        txxx={f.desc: [str(t) for t in f.text] for f in tags.getall("TXXX") if f.desc.casefold() in ID3_DESCRIPTIONS},
        tcop=[str(t) for frame in tags.getall("TCOP") for t in frame.text],
        wcop=[frame.url for frame in tags.getall("WCOP")],
        xmp=[bytes(frame.data) for frame in tags.getall("PRIV") if frame.owner == "XMP"],
    )


def _id3_frames(buf: Buffer, start: int, end: int, kind: str, what: str) -> audiotags.ID3Frames:
    """The ID3v2 tag at ``start`` (in a region ending at ``end``), by our reader or else by mutagen."""
    tag_end = _id3_size(buf, start)
    try:
        return audiotags.read_id3(bytes(buf[start : min(end, tag_end or end)]), ID3_DESCRIPTIONS, what)
    except RightsmetaError:
        raise
    except Exception as exc:  # LeaveToLibrary, or a bug of ours: mutagen reads it as it always did
        fell_back("the fast ID3 reader", "mutagen", exc, expected=(LeaveToLibrary,))
    from mutagen.id3 import ID3

    with _mutagen_errors(kind, "read"):
        if kind == "mp3":
            with _opened(buf) as fileobj:
                return _mutagen_id3(ID3(fileobj))
        return _mutagen_id3(ID3(io.BytesIO(bytes(buf[start:end]))))


# Separators are not compared: other tools spell our names with '-', ':' or ' ' where a Vorbis comment
# has '_' (tdm-reservation), which is another spelling, not damage.
_SEPARATORS = str.maketrans("-: ", "___")


def _by_length(known: dict[str, str]) -> dict[int, list[tuple[str, str]]]:
    """Field names (casefolded, separators alike) by length, each with its logical name."""
    table: dict[int, list[tuple[str, str]]] = {}
    for name, logical in known.items():
        spelled = name.translate(_SEPARATORS)
        table.setdefault(len(spelled), []).append((spelled, logical))
    return table


def _one_off(key: str, known: dict[int, list[tuple[str, str]]]) -> str | None:
    """The logical field (of ``known``, from ``_by_length``) whose name ``key`` misses by one
    character, if any: a damaged name. Its field is then not read, and where it held the statement
    (a carrier with no checksum, another tool's record of one or two fields) the file read as
    having none."""
    folded = key.casefold().translate(_SEPARATORS)
    for name, logical in known.get(len(folded), ()):
        if name != folded and apart(name, folded) == 1:
            return logical
    return None


_NEAR_VORBIS = _by_length(BY_VORBIS)
_NEAR_MP4 = _by_length(BY_MP4)


def _read_vorbis(comments: list[tuple[str, str]] | None, location: str) -> CarrierReport | None:
    found = _Found("vorbis", location)
    by_key: dict[str, list[str]] = {}
    spelled: dict[str, str] = {}
    for i, (key, value) in enumerate(comments or ()):
        # A name one character off ours, or one of ours run into its value ('=' damaged: the
        # comment has no name, and is read as "unknown<n>").
        near = _one_off(key, _NEAR_VORBIS) if key.casefold() not in BY_VORBIS else None
        if near is None and key == f"unknown{i}":
            near = next((BY_VORBIS[n] for n in BY_VORBIS if value.casefold().startswith(n)), None)
        if near is not None:
            found.report.errors.append(f"the comment {key}={value!r} is not read: its name is one character from "
                                       f"{vorbis_name(near)} (a damaged name?)")
        folded = key.casefold()
        by_key.setdefault(folded, []).append(value)
        spelled.setdefault(folded, key)
    for folded, values in by_key.items():
        logical = BY_VORBIS.get(folded)
        if logical is not None:
            found.put(spelled[folded], values, logical)
    copyright_ = found.put(spelled.get("copyright", "COPYRIGHT"), by_key.get("copyright", []))
    licence = found.put(spelled.get("license", "LICENSE"), by_key.get("license", []))
    report = found.finish()
    if report is not None:
        if copyright_:
            report.rights["copyright"] = copyright_
        if licence:
            # LICENSE is a URI by convention but free text in the wild ("All rights reserved").
            key = "web_statement" if licence.strip().lower().startswith(("http://", "https://")) else "usage_terms"
            report.rights[key] = licence
    return report


def _read_mp4(items: audiotags.MP4Items | None, location: str) -> CarrierReport | None:
    found = _Found("mp4", location)
    items = items or audiotags.MP4Items()
    for key, values in items.freeform.items():
        near = _one_off(key, _NEAR_MP4) if key.casefold() not in BY_MP4 else None
        if near is not None:
            found.report.errors.append(f"the item {key} is not read: its name is one character from "
                                       f"{mp4_name(near)} (a damaged name?)")
        logical = BY_MP4.get(key.casefold())
        if logical is None and key.casefold() != MP4_WEB_STATEMENT.casefold():
            continue
        texts = []
        for value in values:
            try:
                texts.append(value.decode("utf-8"))
            except UnicodeDecodeError:
                found.report.errors.append(f"{key} is not UTF-8 text")
        web = found.put(key, texts, logical)
        if logical is None and web:
            found.report.rights["web_statement"] = web
    copyright_ = found.put("cprt", items.cprt)
    report = found.finish()
    if report is not None and copyright_:
        report.rights["copyright"] = copyright_
    return report


# --- QuickTime metadata keys (moov/meta or moov/udta/meta with an 'mdta' handler) ----------------
# iPhones keep a video's copyright as the item of the key "com.apple.quicktime.copyright":
# 'keys' lists the names, 'ilst' holds each value in an item whose type is the key's index (from
# 1). ffmpeg writes the same under udta (-movflags use_metadata_tags). mutagen reads neither.
APPLE_COPYRIGHT = b"com.apple.quicktime.copyright"


class _Keyed(NamedTuple):
    """One copyright value of a keyed 'ilst': its 'data' box, and the boxes enclosing it (outermost
    first: moov, [udta,] meta, ilst, item), whose sizes change with it."""

    data: bmff.Box
    enclosing: tuple[bmff.Box, ...]
    where: str


def _keyed_copyrights(buf: Buffer, what: str) -> tuple[list[_Keyed], list[str]]:
    """The keyed copyright values of the file, and what in their boxes could not be read."""
    walker = _movie(what)
    moov = next((b for b in walker.top(buf) if b.type == b"moov"), None)
    if moov is None:
        return [], []
    udta = walker.child(buf, moov, b"udta")
    found: list[_Keyed] = []
    errors: list[str] = []
    for parents, where in (((moov,), "moov/meta"), ((moov, udta), "moov/udta/meta")):
        meta = walker.child(buf, parents[-1], b"meta")
        if meta is None:
            continue
        start = meta.payload if bmff.quicktime_meta(buf, meta) else meta.payload + 4  # ISO's FullBox
        inside = {b.type: b for b in reversed(walker.inside(buf, meta._replace(payload=start)))}  # the first of each
        hdlr, keys, ilst = inside.get(b"hdlr"), inside.get(b"keys"), inside.get(b"ilst")
        if hdlr is None or keys is None or ilst is None or bytes(buf[hdlr.payload + 8 : hdlr.payload + 12]) != b"mdta":
            continue
        wanted, pos, index = set(), keys.payload + 8, 1
        count = int.from_bytes(buf[keys.payload + 4 : keys.payload + 8], "big")
        while index <= count and pos + 8 <= keys.end:  # each key takes 8 bytes at least: bounded by the box
            size = int.from_bytes(buf[pos : pos + 4], "big")
            if size < 8 or pos + size > keys.end:
                errors.append(f"{where}/keys: key {index} has an invalid size {size}")
                break
            if bytes(buf[pos + 4 : pos + size]) == b"mdta" + APPLE_COPYRIGHT:
                wanted.add(index)
            pos, index = pos + size, index + 1
        # Item types are key indexes, not printable codes.
        for item in bmff.walk(buf, ilst.payload, ilst.end, limit=MAX_ITEMS, what=what, open_ended=False, tail="ignore"):
            if int.from_bytes(item.type, "big") in wanted:
                for data in bmff.walk(buf, item.payload, item.end, limit=MAX_ITEMS, what=what, open_ended=False, tail="ignore"):
                    if data.type == b"data" and data.payload + 8 <= data.end:
                        enclosing = tuple(b for b in (*parents, meta, ilst, item) if b is not None)
                        found.append(_Keyed(data, enclosing, f"{where}/keys+ilst"))
    return found, errors


def _read_keyed_copyright(buf: Buffer, what: str) -> CarrierReport | None:
    """The iPhone's keyed copyright notice: a rights field, not a signal, shown beside the tags."""
    try:
        found, errors = _keyed_copyrights(buf, what)
    except MalformedFile as exc:  # a broken box inside 'meta': this carrier is not read, and says so
        return CarrierReport("mp4-keys", "moov meta keys+ilst", errors=[f"not read: {exc}"])
    texts = []
    for keyed in found:
        kind = int.from_bytes(buf[keyed.data.payload + 1 : keyed.data.payload + 4], "big")
        value = bytes(buf[keyed.data.payload + 8 : keyed.data.end])
        try:  # well-known types 1 (UTF-8) and 2 (UTF-16 BE); others are no text
            texts.append(value.decode("utf-8") if kind == 1 else value.decode("utf-16-be") if kind == 2 else None)
        except UnicodeDecodeError:
            errors.append(f"{keyed.where}: {APPLE_COPYRIGHT.decode()} is not {'UTF-8' if kind == 1 else 'UTF-16'} text")
    texts = [t for t in texts if t]
    if not texts and not errors:
        return None
    location = found[0].where if found else "moov meta keys+ilst"
    report = CarrierReport("mp4-keys", location, values={APPLE_COPYRIGHT.decode(): texts[0]} if texts else {}, errors=errors)
    if texts:
        report.rights["copyright"] = texts[0]
    if len(set(texts)) > 1:
        report.errors.append(f"{APPLE_COPYRIGHT.decode()} appears {len(texts)} times with different values: {texts}")
    return report


def _with_keyed_copyright(data: bytearray, what: str, notice: str) -> None:
    """Make every keyed copyright value (see ``_keyed_copyrights``) say ``notice``, in place, as
    UTF-8; a file without one gets none. Its growth moves what follows it, whose offsets follow."""
    text = notice.encode("utf-8")
    for _ in range(len(_keyed_copyrights(data, what)[0])):  # one edit per value at most
        # Found again after each edit: the boxes after an edited one have moved.
        todo = [k for k in _keyed_copyrights(data, what)[0] if bytes(data[k.data.payload + 8 : k.data.end]) != text
                or data[k.data.payload + 1 : k.data.payload + 4] != b"\x00\x00\x01"]
        if not todo:
            return
        keyed = todo[0]
        if any(b.payload - b.start != 8 for b in (*keyed.enclosing, keyed.data)):
            return  # a 64-bit size on the way: left as it is
        box = keyed.data
        locale = bytes(data[box.payload + 4 : box.payload + 8])
        new = (16 + len(text)).to_bytes(4, "big") + b"data" + b"\x00\x00\x00\x01" + locale + text
        delta = len(new) - (box.end - box.start)
        data[box.start : box.end] = new
        for outer in keyed.enclosing:
            data[outer.start : outer.start + 4] = (outer.end - outer.start + delta).to_bytes(4, "big")
        _shift_chunk_offsets(data, box.end, delta, what)
        _shift_tfra(data, box.end, delta, what)


def _mutagen_mp4(tags: Any) -> audiotags.MP4Items:
    """What ``_read_mp4`` reads, from the tags mutagen's ``MP4`` has read."""
    return audiotags.MP4Items(
        freeform={key: [bytes(v) for v in values] for key, values in tags.items() if key.startswith("----:")},
        cprt=[str(v) for v in tags.get("cprt", [])],
    )


def _mp4_items(buf: Buffer, kind: str) -> audiotags.MP4Items | None:
    """The ilst items of an MP4, M4A or MOV file, by our reader or else by mutagen."""
    try:
        return audiotags.mp4_items(buf)
    except RightsmetaError:
        raise
    except Exception as exc:  # LeaveToLibrary, or a bug of ours: mutagen reads it as it always did
        fell_back("the fast MP4 reader", "mutagen", exc, expected=(LeaveToLibrary,))
    from mutagen.mp4 import MP4

    with _mutagen_errors(kind, "read"), _opened(buf) as fileobj:
        tags = MP4(fileobj).tags
    return None if tags is None else _mutagen_mp4(tags)


@contextlib.contextmanager
def _opened(buf: Buffer) -> Iterator[Any]:
    """``buf`` as the seekable file object mutagen wants; a read-only map serves without a copy.

    The map's position is restored afterwards: ``mmap.find`` searches from it by default, and
    other carriers search the same map.
    """
    if isinstance(buf, (bytes, bytearray)):
        yield io.BytesIO(buf)
        return
    position = buf.tell()
    buf.seek(0)
    try:
        yield buf
    finally:
        buf.seek(position)


def _packet(buf: Buffer, start: int, end: int, location: str) -> CarrierReport:
    if end - start > xmp.MAX_PACKET:
        return CarrierReport("xmp", location, errors=[f"malformed XMP: the packet is {end - start} bytes, more than allowed"])
    return xmp.carrier_report(bytes(buf[start:end]), location)


def _vorbis_comments(buf: Buffer, layout: _Layout) -> list[tuple[str, str]] | None:
    """The Vorbis comments of a FLAC, Ogg Vorbis or Opus file, by our reader or else by mutagen."""
    try:
        if layout.flac is not None:
            return audiotags.flac_comments(buf, *layout.flac)
        if layout.kind in ("ogg", "opus") and layout.ogg_streams == 1:
            # Several streams (chained or multiplexed) are left to mutagen, which picks one.
            return audiotags.ogg_comments(buf, layout.kind)
    except RightsmetaError:
        raise
    except Exception as exc:  # LeaveToLibrary, or a bug of ours: mutagen reads it as it always did
        fell_back("the fast Vorbis comment reader", "mutagen", exc, expected=(LeaveToLibrary,))
    if layout.kind == "flac":
        from mutagen.flac import FLAC as reader
    elif layout.kind == "ogg":
        from mutagen.oggvorbis import OggVorbis as reader
    else:
        from mutagen.oggopus import OggOpus as reader
    with _mutagen_errors(layout.kind, "read"), _opened(buf) as fileobj:
        tags = reader(fileobj).tags
    return None if tags is None else list(tags)


def _leading_id3(buf: Buffer, end: int, kind: str, what: str, where: str) -> list[CarrierReport]:
    """The carriers of the ID3v2 tag at the start of an MP3, or in front of a FLAC stream (some
    rippers and taggers put one there; ExifTool reads it), which ends by ``end``."""
    return _with_damage(_read_id3(_id3_frames(buf, 0, end, kind, what), where), buf, 0, _id3_size(buf, 0) or end, what, where)


def _with_unread_items(buf: Buffer, layout: _Layout, report: CarrierReport | None) -> CarrierReport | None:
    """The MP4 carrier read, with an error if moov holds our items' mean ("org.rightsmeta") but no
    item of ours was read: one byte of a name on their way damaged (udta, meta, ilst, '----', the
    mean or name atom, 'data'), and mutagen skips the items without a word."""
    if layout.moov is None or (report is not None and any(k.casefold() in BY_MP4 for k in report.values)):
        return report
    at = buf.find(MP4_MEAN.encode(), *layout.moov)
    if at < 0:
        return report
    report = report or CarrierReport("mp4", "moov/udta/meta/ilst")
    report.errors.append(f"moov holds {MP4_MEAN!r} (at offset {at}) but no item of it was read: a damaged atom "
                         "name on the way to them (udta, meta, ilst, '----', mean, name, data)?")
    return report


_VORBIS_LOCATIONS = {"flac": "FLAC VORBIS_COMMENT block", "ogg": "Ogg Vorbis comment header", "opus": "OpusTags header"}


def read(buf: Buffer, fmt: str, options: Options | None = None) -> list[CarrierReport]:
    layout = _layout(buf, fmt)
    kind = layout.kind
    found: list[CarrierReport] = []
    report: CarrierReport | None = None
    if kind == "mp3":
        if bytes(buf[:3]) == b"ID3":
            found += _leading_id3(buf, len(buf), kind, "MP3", "tag")
    elif kind in ("wav", "aiff"):
        if layout.id3_chunk is not None:
            start, end = layout.id3_chunk
            chunk = "RIFF 'id3 ' chunk" if kind == "wav" else "AIFF 'ID3 ' chunk"
            what = f"{kind.upper()} ID3 chunk"
            found += _with_damage(_read_id3(_id3_frames(buf, start, end, kind, what), f"in the {chunk}"), buf, start, end, what, f"in the {chunk}")
        if layout.copyright is not None:
            report = _read_container_copyright(buf, kind, *layout.copyright)
    elif kind in _VORBIS_FORMATS:
        if layout.flac is not None and layout.flac[0] > 0:
            found += _leading_id3(buf, layout.flac[0], kind, "FLAC ID3 tag", "before the FLAC stream")
        report = _read_vorbis(_vorbis_comments(buf, layout), _VORBIS_LOCATIONS[kind])
    else:
        report = _read_mp4(_mp4_items(buf, kind), "moov/udta/meta/ilst")
        report = _with_unread_items(buf, layout, report)
    if report is not None:
        found.append(report)
    if kind in _MP4_FORMATS:
        keyed = _read_keyed_copyright(buf, kind.upper())
        found += [keyed] if keyed is not None else []
    found += [_packet(buf, start, end, location) for start, end, location in layout.xmp]
    return found


# --- writing -------------------------------------------------------------------------------------


def _new_packet(existing: bytes | None, assertion: Assertion, location: str) -> bytes:
    try:
        return xmp.write_packet(existing, assertion)
    except MalformedMetadata as exc:
        raise MalformedMetadata(f"the file's XMP ({location}) is malformed ({exc}); not writing over it") from None


def _write_id3(tags: Any, assertion: Assertion, values: dict[str, str]) -> None:
    from mutagen.id3 import PRIV, TCOP, TXXX, WCOP

    for frame in list(tags.getall("TXXX")):
        if frame.desc.casefold() in _BY_ID3:
            del tags[frame.HashKey]
    for name, value in values.items():
        tags.add(TXXX(encoding=3, desc=name, text=[value]))
    if assertion.copyright:
        tags.setall("TCOP", [TCOP(encoding=3, text=[assertion.copyright])])
    if assertion.web_statement:
        tags.setall("WCOP", [WCOP(url=assertion.web_statement)])
    privs = tags.getall("PRIV")
    existing = next((bytes(f.data) for f in privs if f.owner == "XMP"), None)
    packet = _new_packet(existing, assertion, "ID3 PRIV:XMP")
    tags.setall("PRIV", [f for f in privs if f.owner != "XMP"] + [PRIV(owner="XMP", data=packet)])


def _with_leading_id3(data: bytes, assertion: Assertion, values: dict[str, str]) -> bytes:
    """A FLAC whose ID3v2 tag in front says the statement too, when it says anything read as
    rights: left as it was, its old reservation or notice would contradict the Vorbis comments.
    One that says nothing of the kind (c2pa keeps its manifest in one) is left alone."""
    from mutagen.id3 import ID3

    bio = io.BytesIO(data)
    with _mutagen_errors("flac", "read"):
        tags = ID3(bio, load_v1=False)
    if not _read_id3(_mutagen_id3(tags), ""):
        return data
    _write_id3(tags, assertion, values)
    with _mutagen_errors("flac", "write"):
        return _saved_id3(tags, bio)


def _saved_id3(tags: Any, bio: io.BytesIO) -> bytes:
    """The file in ``bio`` with ``tags`` saved as its ID3v2 tag, and its ID3v1 tail (128 bytes
    from "TAG"), if any, byte for byte: mutagen rebuilds that from the v2 frames, which erased a
    v1 comment and overwrote v1 fields the v2 tag holds otherwise. (Load the tags with
    ``load_v1=False``, or the v1 fields are copied into the v2 tag.)"""
    data = bio.getvalue()
    tail = data[-128:] if len(data) >= 128 and data[-128:-125] == b"TAG" else b""
    bio.seek(0)
    tags.save(bio, v2_version=_id3_version(tags), v1=0 if tail else 1)
    return bio.getvalue() + tail


def _id3_version(tags: Any) -> int:
    # v2.3 stays v2.3 (what many players and Windows read best); anything else is saved as v2.4.
    return 3 if tags.version[:2] == (2, 3) else 4


def _write_vorbis(tags: Any, assertion: Assertion, values: dict[str, str]) -> None:
    for key in {k for k, _ in tags}:
        if key.casefold() in BY_VORBIS:
            del tags[key]
    for name, value in values.items():
        tags[vorbis_name(name)] = [value]
    if assertion.copyright:
        tags["COPYRIGHT"] = [assertion.copyright]
    if assertion.web_statement:
        tags["LICENSE"] = [assertion.web_statement]


def _write_mp4_tags(tags: Any, assertion: Assertion, values: dict[str, str]) -> None:
    from mutagen.mp4 import AtomDataType, MP4FreeForm

    for key in list(tags.keys()):
        if key.casefold() in BY_MP4:
            del tags[key]
    for name, value in values.items():
        tags[mp4_name(name)] = [MP4FreeForm(value.encode("utf-8"), AtomDataType.UTF8)]
    if assertion.copyright:
        tags["cprt"] = [assertion.copyright]
    if assertion.web_statement:
        tags[MP4_WEB_STATEMENT] = [MP4FreeForm(assertion.web_statement.encode("utf-8"), AtomDataType.UTF8)]


def _pad_packet(packet: bytes, size: int) -> bytes | None:
    """``packet`` grown to exactly ``size`` bytes with XMP padding (whitespace), or None if too big."""
    cut = packet.rfind(b"<?xpacket end")
    if cut < 0 or len(packet) > size:
        return None
    return packet[:cut] + b" " * (size - len(packet)) + packet[cut:]


def _free(out: bytearray, box: bmff.Box) -> None:
    """Turn a box into empty ``free`` space of the same size: nothing after it moves."""
    out[box.start + 4 : box.start + 8] = b"free"
    out[box.payload : box.end] = bytes(box.end - box.payload)


def _existing_packet(data: bytes | bytearray, start: int, end: int, location: str) -> bytes:
    if end - start > xmp.MAX_PACKET:
        raise MalformedMetadata(f"the file's XMP ({location}) is larger than {xmp.MAX_PACKET} bytes")
    return bytes(data[start:end])


def write_bmff_xmp(data: bytes | bytearray, assertion: Assertion, what: str = "MP4") -> bytes:
    """``data`` with the assertion's XMP packet in it, moving no media byte.

    Sample tables hold absolute offsets into ``mdat`` (``tfra`` into ``moof``), so no byte before
    the media may move. A QuickTime ``moov/udta/XMP_`` atom (ExifTool's and Adobe's place in
    MOV) is rewritten in place when the packet fits its padding. Otherwise the packet goes to the
    top-level XMP ``uuid`` box: in place of one that only ``mfra`` follows; over one with room
    enough; else appended at the end (before a final ``mfra``, which readers find from the end
    of the file), any old XMP box becoming ``free`` space of the same size. A ``bytearray`` is
    the caller's own copy, edited in place (every read of it comes before the first edit).
    """
    movie = _movie(what)
    top = movie.top(data)
    out = data if isinstance(data, bytearray) else bytearray(data)
    ours = [b for b in top if b.type == b"uuid" and data[b.payload : b.payload + 16] == XMP_UUID]
    existing = _existing_packet(data, ours[0].payload + 16, ours[0].end, f"{what} uuid box") if ours else None
    moov = next((b for b in top if b.type == b"moov"), None)
    atom = movie.path(data, moov, b"udta", b"XMP_")
    if atom is not None:
        location = f"{what} moov/udta/XMP_ atom"
        old = _existing_packet(data, atom.payload, atom.end, location)
        padded = _pad_packet(_new_packet(old, assertion, location), atom.end - atom.payload)
        if padded is not None:
            out[atom.payload : atom.end] = padded
            if not ours:
                return bytes(out)
        else:
            _free(out, atom)  # its properties move to the uuid box below, unless one exists
            existing = existing if ours else old
    packet = _new_packet(existing, assertion, f"{what} uuid box")

    tail = len(top) - 1 if top and top[-1].type == b"mfra" else len(top)
    last = top[tail - 1] if tail else None
    for box in ours[1:]:
        _free(out, box)
    if ours and last is ours[0] and not last.open_ended:
        return bytes(out[: last.start]) + _uuid_box(packet) + bytes(out[last.end :])
    if ours:
        padded = _pad_packet(packet, ours[0].end - ours[0].payload - 16)
        if padded is not None:
            out[ours[0].payload + 16 : ours[0].end] = padded
            return bytes(out)
        _free(out, ours[0])
    if last is not None and last.open_ended:
        # A last box of size 0 runs to the end of the file: give it its real size first.
        size = last.end - last.start
        if size >= 1 << 32:
            raise UnsupportedFormat(f"{what}: cannot add the XMP box after a final box of unstated size over 4 GiB")
        out[last.start : last.start + 4] = size.to_bytes(4, "big")
    at = top[tail].start if tail < len(top) else len(out)
    return bytes(out[:at]) + _uuid_box(packet) + bytes(out[at:])


def _move_offset(out: bytearray, at: int, width: int, moved_from: int, delta: int, what: str) -> None:
    """Move on by ``delta`` the absolute file offset of ``width`` bytes at ``at``, if it points at
    or after ``moved_from``."""
    offset = int.from_bytes(out[at : at + width], "big")
    if offset >= moved_from:
        if offset + delta >= 1 << (8 * width):
            raise UnsupportedFormat(f"{what}: a file offset would no longer fit its {width} bytes")
        out[at : at + width] = (offset + delta).to_bytes(width, "big")


def _shift_tfra(out: bytearray, moved_from: int, delta: int, what: str) -> None:
    """Move on by ``delta`` bytes, in place, every 'tfra' entry of the final 'mfra' box that
    points at or after ``moved_from``.

    mutagen grows 'moov' for the ilst and corrects the offsets inside 'moov' and 'moof', but not
    this index of absolute moof offsets that players seek by (ffmpeg's seek through a stale one
    returned no frame). A 'tfra' whose entries do not fit its box is left as it was.
    """
    movie = _movie(what)
    top = movie.top(out)
    if not delta or not top or top[-1].type != b"mfra":
        return
    for box in movie.inside(out, top[-1]):
        if box.type != b"tfra" or box.payload + 16 > box.end:
            continue
        version, sizes = out[box.payload], out[box.payload + 11]
        count = int.from_bytes(out[box.payload + 12 : box.payload + 16], "big")
        width = 8 if version == 1 else 4
        # time and moof_offset, then traf, trun and sample numbers of 1 to 4 bytes each
        entry = 2 * width + (sizes >> 4 & 3) + (sizes >> 2 & 3) + (sizes & 3) + 3
        if box.payload + 16 + count * entry > box.end:
            continue
        for at in range(box.payload + 16 + width, box.payload + 16 + count * entry, entry):
            _move_offset(out, at, width, moved_from, delta, what)


def _base_data_offsets(data: Buffer, what: str) -> list[int]:
    """Where the movie fragments' 'tfhd' boxes hold an absolute base-data-offset, in file order."""
    found = []
    movie = _movie(what)
    for moof in (b for b in movie.top(data) if b.type == b"moof"):
        for traf in (b for b in movie.inside(data, moof) if b.type == b"traf"):
            header = movie.child(data, traf, b"tfhd")
            if header is not None and header.payload + 16 <= header.end and data[header.payload + 3] & 1:
                found.append(header.payload + 8)
    return found


def _restore_base_data_offsets(before: bytes, out: bytearray, moved_from: int, delta: int, what: str) -> None:
    """Give ``out`` (``before`` with every byte from ``moved_from`` on moved by ``delta``), in
    place, ``before``'s fragment base-data-offsets, moved likewise: mutagen corrects only the
    first fragment's, and the content check then refused every fragmented file written without
    default-base-is-moof (ffmpeg's frag_keyframe)."""
    for old, new in zip(_base_data_offsets(before, what), _base_data_offsets(out, what), strict=True) if delta else ():
        out[new : new + 8] = before[old : old + 8]
        _move_offset(out, new, 8, moved_from, delta, what)


def _shift_chunk_offsets(out: bytearray, moved_from: int, delta: int, what: str) -> None:
    """Move on by ``delta``, in place, the chunk offsets of the sample tables (stco, co64) and
    the base data offsets of the movie fragments (tfhd) that point at or after ``moved_from``:
    what mutagen corrects after growing 'moov', for an edit of our own inside it."""
    for at in _base_data_offsets(out, what):
        _move_offset(out, at, 8, moved_from, delta, what)
    movie = _movie(what)
    moov = next(b for b in movie.top(out) if b.type == b"moov")
    for trak in (b for b in movie.inside(out, moov) if b.type == b"trak"):
        stbl = movie.path(out, trak, b"mdia", b"minf", b"stbl")
        for table in movie.inside(out, stbl) if stbl is not None else ():
            width = {b"stco": 4, b"co64": 8}.get(table.type, 0)
            count = int.from_bytes(out[table.payload + 4 : table.payload + 8], "big")
            if width and table.payload + 8 + count * width <= table.end:
                for at in range(table.payload + 8, table.payload + 8 + count * width, width):
                    _move_offset(out, at, width, moved_from, delta, what)


def _with_user_data_copyright(data: bytearray, what: str, notice: str) -> None:
    """Make the QuickTime moov/udta/(c)cpy atom (QuickTime, Final Cut and ffmpeg keep a MOV's
    copyright there; ffprobe and ExifTool show it) say ``notice``, in place; a file without one
    gets none. The atom's growth moves what follows it, whose offsets follow."""
    movie = _movie(what)
    moov = next(b for b in movie.top(data) if b.type == b"moov")
    udta = movie.child(data, moov, b"udta")
    atom = movie.child(data, udta, b"\xa9cpy")
    if udta is None or atom is None or any(b.payload - b.start != 8 for b in (moov, udta, atom)):
        return  # none, or a 64-bit size somewhere on the way: left as it is
    language = bytes(data[atom.payload + 2 : atom.payload + 4])
    # A packed ISO 639 code says the text is UTF-8; an old Macintosh code, its own script: 'und'.
    language = language if int.from_bytes(language, "big") >= 0x400 else b"\x55\xc4"
    text = notice.encode("utf-8")
    new = (12 + len(text)).to_bytes(4, "big") + b"\xa9cpy" + len(text).to_bytes(2, "big") + language + text
    delta = len(new) - (atom.end - atom.start)
    data[atom.start : atom.end] = new
    for box in (moov, udta):
        data[box.start : box.start + 4] = (box.end - box.start + delta).to_bytes(4, "big")
    _shift_chunk_offsets(data, atom.end, delta, what)
    _shift_tfra(data, atom.end, delta, what)


def _uuid_box(packet: bytes) -> bytes:
    return (8 + 16 + len(packet)).to_bytes(4, "big") + b"uuid" + XMP_UUID + packet


def _replace_chunk(data: bytes, start: int, end: int, payload: bytes, order: Literal["little", "big"] = "little") -> bytes:
    """A WAV (an AIFF: ``order`` "big") with the chunk whose payload is data[start:end] given a
    new payload (no offsets in RIFF or IFF)."""
    pad = (end - start) & 1
    new = len(payload).to_bytes(4, order) + payload + (b"\x00" if len(payload) & 1 else b"")
    riff_size = int.from_bytes(data[4:8], order) + len(new) - (end + pad - start + 4)
    # One join: the audio after the chunk is copied once (a copy per step took 5 ms of a 1.4 MB WAV).
    return b"".join((data[:4], riff_size.to_bytes(4, order), memoryview(data)[8 : start - 4], new, memoryview(data)[end + pad :]))


#: An APEv2 header or footer: preamble, version, tag size (items and footer), item count, flags.
_APE_FOOTER = struct.Struct("<8sIIII8x")
_APE_HAS_HEADER = 0x80000000


def _with_ape_copyright(data: bytes, notice: str) -> bytes:
    """An MP3 whose APEv2 tag (foobar2000 and Mp3tag keep one beside ID3, at the end or before
    an ID3v1 tail) says ``notice`` in its UTF-8 Copyright item, when it has one: ExifTool and
    players that read APE showed the old notice. Every other byte, the items' order included,
    stays; an APEv1 or damaged tag is left as it is."""
    end = len(data) - (128 if data[-128:-125] == b"TAG" else 0)
    if end < 32 or data[end - 32 : end - 24] != b"APETAGEX":
        return data
    _, version, size, count, flags = _APE_FOOTER.unpack_from(data, end - 32)
    start, footer = end - size, end - 32
    header = start - 32 if flags & _APE_HAS_HEADER else None
    if version != 2000 or size < 32 or (header if header is not None else start) < 0:
        return data
    pos = start
    for _ in range(min(count, size // 9)):  # an item takes at least 9 bytes: bounded by the tag
        length, item_flags = struct.unpack_from("<II", data, pos) if pos + 8 <= footer else (0, 0)
        key_end = data.find(b"\x00", pos + 8, footer)
        if pos + 8 > footer or key_end < 0 or key_end + 1 + length > footer:
            return data
        if data[pos + 8 : key_end].lower() == b"copyright" and not item_flags & 0b110:
            text = notice.encode("utf-8")
            delta = len(text) - length
            out = bytearray(data)
            out[key_end + 1 : key_end + 1 + length] = text
            out[pos : pos + 4] = len(text).to_bytes(4, "little")
            for at in (footer + delta, header):
                if at is not None:
                    out[at + 12 : at + 16] = (size + delta).to_bytes(4, "little")
            return bytes(out)
        pos = key_end + 1 + length
    return data


def _with_container_copyright(data: bytes, kind: str, notice: str) -> bytes:
    """``data`` whose WAV LIST/INFO 'ICOP' or AIFF '(c) ' chunk says ``notice``: ffmpeg, Windows
    and ExifTool show that one, so an old notice left there would contradict the new one in
    ID3. A file without such a notice gets none."""
    found = _layout(data, kind).copyright
    if found is None:
        return data
    start, end = found
    text = notice.encode("utf-8")
    if kind == "aiff":
        return _replace_chunk(data, start, end, text, "big")
    icops = [(pos, min(pos + 8 + size + (size & 1), end)) for pos, size in _info_items(data, start, end)
             if data[pos : pos + 4] == b"ICOP"]
    if not icops:
        return data
    payload = bytearray(data[start - 4 : end])  # 'INFO' and its sub-chunks, all else kept as it is
    for pos, stop in reversed(icops):
        payload[pos - start + 4 : stop - start + 4] = riff.make(b"ICOP", text + b"\x00")
    return _replace_chunk(data, start - 4, end, bytes(payload))


def write(data: bytes, fmt: str, assertion: Assertion, options: Options | None = None) -> tuple[bytes, list[str]]:
    """New file bytes with the assertion in every carrier the format has, and those carriers."""
    from mutagen.aiff import AIFF
    from mutagen.flac import FLAC
    from mutagen.id3 import ID3
    from mutagen.mp4 import MP4
    from mutagen.oggopus import OggOpus
    from mutagen.oggvorbis import OggVorbis
    from mutagen.wave import WAVE

    layout = _layout(data, fmt)
    kind = layout.kind
    # mutagen would drop every frame after the damaged one and save the rest: the user's other
    # tags would be lost with no word. Refused instead, the file unchanged.
    tag = (0, _id3_size(data, 0) or 0) if kind in ("mp3", "flac") and data[:3] == b"ID3" else layout.id3_chunk
    damage = audiotags.id3_damage(data[tag[0]:tag[1]], kind.upper()) if tag is not None else None
    if damage is not None:
        raise MalformedFile(f"{damage}; repair the tag before tagging")
    values = fields(assertion)
    bio = io.BytesIO(data)
    carriers: list[str]
    tags: Any
    file: Any = None  # the mutagen object that saves the tags, when they are not saved alone
    # Only mutagen's parsing and saving are mapped to "malformed file": our own writers run
    # outside, so a bug of ours surfaces as the bug it is, not as a fault of the user's file.
    with _mutagen_errors(kind, "read"):
        if kind == "mp3":
            tags = ID3(bio, load_v1=False) if data[:3] == b"ID3" else ID3()
        else:
            file = {"wav": WAVE, "aiff": AIFF, "flac": FLAC, "ogg": OggVorbis, "opus": OggOpus}.get(kind, MP4)(bio)
            if file.tags is None:
                file.add_tags()
            tags = file.tags
    if kind in ("mp3", "wav", "aiff"):
        _write_id3(tags, assertion, values)
        carriers = ["id3", "xmp"]
    elif kind in _VORBIS_FORMATS:
        _write_vorbis(tags, assertion, values)
        carriers = ["vorbis"]
    else:
        _write_mp4_tags(tags, assertion, values)
        carriers = ["mp4", "xmp"]
    bio.seek(0)
    with _mutagen_errors(kind, "write"):
        if kind == "mp3":
            out = _saved_id3(tags, bio)
            out = _with_ape_copyright(out, assertion.copyright) if assertion.copyright else out
        else:
            if kind in ("wav", "aiff"):
                file.save(bio, v2_version=_id3_version(tags))
            else:
                file.save(bio)
            out = bio.getvalue()
    if kind == "flac" and out[:3] == b"ID3":
        plain, out = out, _with_leading_id3(out, assertion, values)
        carriers = carriers if out is plain else ["id3", "xmp", *carriers]
    if kind in ("wav", "aiff") and assertion.copyright:
        out = _with_container_copyright(out, kind, assertion.copyright)
    if kind == "wav" and layout.xmp:
        # Another tool's XMP in _PMX gets the same statement; mutagen moved the chunks, so find it again.
        pmx = _layout(out, "wav").xmp[0]
        packet = _new_packet(bytes(out[pmx[0] : pmx[1]]), assertion, pmx[2])
        out = _replace_chunk(out, pmx[0], pmx[1], packet)
    if kind in _MP4_FORMATS:
        # mutagen changes nothing before the end of 'moov' but 'moov' itself.
        moov = next(b for b in _movie(kind.upper()).top(data) if b.type == b"moov")
        edited = bytearray(out)  # edited in place: one copy, however many of the edits below apply
        _restore_base_data_offsets(data, edited, moov.end, len(out) - len(data), kind.upper())
        _shift_tfra(edited, moov.end, len(out) - len(data), kind.upper())
        if assertion.copyright:
            _with_user_data_copyright(edited, kind.upper(), assertion.copyright)
            _with_keyed_copyright(edited, kind.upper(), assertion.copyright)
        out = write_bmff_xmp(edited, assertion, kind.upper())
    return out, carriers
