"""The audio side of the one-walker-per-syntax layout: carriers/riff.py walks WAV and AIFF (IFF),
carriers/bmff.py every ISO-BMFF level of MP4/M4A/MOV, audiotags.frames every ID3v2 frame list.

Files are real: made by ffmpeg, tagged by mutagen or ExifTool; byte edits only where the point is
a damaged file.
"""

from __future__ import annotations

import subprocess
import zlib
from pathlib import Path

import pytest

from rightsmeta.carriers import audio, audiotags, bmff, riff
from rightsmeta.errors import LeaveToLibrary, MalformedFile

_SINE = ["-f", "lavfi", "-i", "sine=frequency=440:duration=0.2"]


def _make(ffmpeg: str, path: Path, *extra: str) -> bytes:
    subprocess.run([ffmpeg, "-v", "error", *_SINE, *extra, str(path)], check=True, capture_output=True)
    return path.read_bytes()


def test_riff_walks_aiff_as_big_endian_iff(ffmpeg: str, tmp_path: Path) -> None:
    data = _make(ffmpeg, tmp_path / "a.aiff")
    walked = riff.walk(data, (b"AIFF", b"AIFC"), iff=True)
    assert walked.form == data[8:12]
    ids = [c.fourcc for c in walked.chunks]
    assert b"COMM" in ids and b"SSND" in ids
    comm = riff.find(walked, b"COMM")[0]
    assert comm.size == int.from_bytes(data[comm.start + 4 : comm.start + 8], "big")
    assert walked.end == len(data) == walked.padded_end(walked.chunks[-1])
    # The same bytes are no RIFF: the magic and the byte order are the only difference.
    with pytest.raises(MalformedFile, match="not a AIFF"):
        riff.walk(data, b"AIFF")


def test_riff_short_tail_is_slack_only_when_asked(ffmpeg: str, tmp_path: Path) -> None:
    data = bytearray(_make(ffmpeg, tmp_path / "a.wav"))
    data += b"\x01\x02\x03\x04"  # fewer than 8 bytes inside the RIFF size: no chunk header
    data[4:8] = (len(data) - 8).to_bytes(4, "little")
    with pytest.raises(MalformedFile, match="chunk header at offset .* runs past the RIFF end"):
        riff.walk(data, b"WAVE")
    walked = riff.walk(data, b"WAVE", name="WAV", short_tail=True)
    assert [c.fourcc for c in walked.chunks][-1] == b"data"
    # The audio reader keeps accepting it, as it did with its own walker.
    assert b"data" in audio._chunks(bytes(data), "WAV", iff=False)


def test_bmff_walk_policies_on_an_m4a(ffmpeg: str, tmp_path: Path) -> None:
    data = _make(ffmpeg, tmp_path / "a.m4a", "-c:a", "aac")
    top = bmff.walk(data, 0, len(data), limit=100, printable=True)
    assert [b.type for b in top][:1] == [b"ftyp"] and b"moov" in [b.type for b in top]
    assert top[-1].end == len(data)
    with pytest.raises(MalformedFile, match="more than 1 boxes"):
        bmff.walk(data, 0, len(data), limit=1)
    # Three zero bytes at the end: padding for "zeros" and "ignore", a cut-off header for "error".
    padded = data + bytes(3)
    assert bmff.walk(padded, 0, len(padded), limit=100, tail="zeros") == top
    assert bmff.walk(padded, 0, len(padded), limit=100, tail="ignore") == top
    with pytest.raises(MalformedFile, match="box header at offset .* is cut off"):
        bmff.walk(padded, 0, len(padded), limit=100)
    with pytest.raises(MalformedFile, match="box header at offset .* is cut off"):
        bmff.walk(data + b"\x00\x01\x00", 0, len(data) + 3, limit=100, tail="zeros")
    # A walk shifted into the inside of a box meets a type that is no four-character code.
    moov = next(b for b in top if b.type == b"moov")
    inner = bmff.walk(data, moov.payload, moov.end, limit=100)
    shifted = bytearray(data)
    shifted[inner[0].start + 4 : inner[0].start + 8] = b"\x00\x01\x02\x03"
    with pytest.raises(MalformedFile, match="no box type at offset"):
        bmff.walk(shifted, moov.payload, moov.end, limit=100, printable=True)
    assert len(bmff.walk(shifted, moov.payload, moov.end, limit=100)) == len(inner)  # the image side's policy


def test_bmff_size_zero_only_where_open_ended(ffmpeg: str, tmp_path: Path) -> None:
    data = bytearray(_make(ffmpeg, tmp_path / "a.m4a", "-c:a", "aac"))
    top = bmff.walk(data, 0, len(data), limit=100)
    last = top[-1]
    data[last.start : last.start + 4] = bytes(4)
    walked = bmff.walk(data, 0, len(data), limit=100)
    assert walked[-1].open_ended and walked[-1].end == len(data)
    with pytest.raises(MalformedFile, match="has an invalid size 0"):
        bmff.walk(data, 0, len(data), limit=100, open_ended=False)


def test_quicktime_meta_without_version_and_flags(ffmpeg: str, exiftool: str, tmp_path: Path) -> None:
    """ExifTool writes QuickTime Keys into moov/meta as Apple does: a hdlr straight after the header."""
    path = tmp_path / "a.mov"
    _make(ffmpeg, path, "-c:a", "aac")
    subprocess.run([exiftool, "-q", "-overwrite_original", "-Keys:Title=Sine", str(path)], check=True, capture_output=True)
    data = path.read_bytes()
    moov = next(b for b in bmff.walk(data, 0, len(data), limit=100) if b.type == b"moov")
    metas = [b for b in bmff.walk(data, moov.payload, moov.end, limit=100) if b.type == b"meta"]
    assert metas and bmff.quicktime_meta(data, metas[0])
    inside = bmff.walk(data, metas[0].payload, metas[0].end, limit=100)
    assert [b.type for b in inside][:1] == [b"hdlr"] and b"keys" in [b.type for b in inside]
    # ffmpeg's M4A moov/udta/meta is ISO's FullBox: version and flags first.
    m4a = _make(ffmpeg, tmp_path / "b.m4a", "-c:a", "aac", "-metadata", "title=Sine")
    moov = next(b for b in bmff.walk(m4a, 0, len(m4a), limit=100) if b.type == b"moov")
    udta = next(b for b in bmff.walk(m4a, moov.payload, moov.end, limit=100) if b.type == b"udta")
    meta = next(b for b in bmff.walk(m4a, udta.payload, udta.end, limit=100) if b.type == b"meta")
    assert not bmff.quicktime_meta(m4a, meta) and bmff.full_box(m4a, meta) == (0, 0)


def _id3_tag(frames: bytes) -> bytes:
    size = len(frames)
    synchsafe = bytes((size >> 21 & 0x7F, size >> 14 & 0x7F, size >> 7 & 0x7F, size & 0x7F))
    return b"ID3\x04\x00\x00" + synchsafe + frames


def _frame(frame_id: bytes, body: bytes, flags: int = 0) -> bytes:
    size = len(body)
    return frame_id + bytes((size >> 21 & 0x7F, size >> 14 & 0x7F, size >> 7 & 0x7F, size & 0x7F)) + flags.to_bytes(2, "big") + body


def test_id3_frames_walks_as_mutagen_does() -> None:
    from mutagen.id3 import ID3, TCOP, TXXX

    tags = ID3()
    tags.add(TXXX(encoding=3, desc="a", text=["1"]))
    tags.add(TCOP(encoding=3, text=["(c) Ada"]))
    import io

    bio = io.BytesIO()
    tags.save(bio, v2_version=4, padding=lambda info: 64)
    data = bio.getvalue()
    _, _, body, synchsafe = audiotags._id3_body(data)
    walked = list(audiotags.frames(body, synchsafe))
    assert sorted(frame_id for _, frame_id, _, _ in walked) == [b"TCOP", b"TXXX"]
    assert all(pos + 10 + size <= len(body) for pos, _, size, _ in walked)  # padding is not a frame


def test_a_compression_bomb_behind_a_junk_frame_id_is_refused() -> None:
    """mutagen walks past a frame ID that only starts with NUL and inflates what follows; the
    structural check walks the same frames (it used to stop at the first NUL byte)."""
    bomb = zlib.compress(bytes(audiotags.MAX_ID3_INFLATE + 1), 9)
    # v2.4: compressed (0x08) with a data length indicator (0x01), which precedes the stream.
    frames = _frame(b"\x00ABC", b"junk") + _frame(b"TXXX", (1 << 30).to_bytes(4, "big") + bomb, flags=0x0009)
    tag = _id3_tag(frames + bytes(32))
    with pytest.raises(MalformedFile, match="inflates to too many bytes"):
        audio._check_id3(tag, 0, "MP3")


def test_mp4_reader_ignores_a_short_tail_as_mutagen_does(ffmpeg: str, tmp_path: Path) -> None:
    """mutagen ignores fewer than 8 bytes at the end of the file (padding some writers leave); the
    fast reader walks the top level with the same policy, so it reads such a file itself."""
    import io

    from mutagen.mp4 import MP4

    data = _make(ffmpeg, tmp_path / "a.m4a", "-c:a", "aac", "-metadata", "copyright=(c) Ada") + bytes(5)
    fast = audiotags.mp4_items(data)
    slow = MP4(io.BytesIO(data)).tags
    assert fast is not None and fast.cprt == ["(c) Ada"]
    assert fast == audio._mutagen_mp4(slow)
    # One level down the same bytes are a cut-off atom header, which mutagen would read past.
    with pytest.raises(LeaveToLibrary, match="box header at offset"):
        audiotags._atoms(data, 0, len(data), 1, [1000])


def test_audio_reader_takes_zero_padding_after_the_last_box_but_not_junk(ffmpeg: str, tmp_path: Path) -> None:
    """The structural check's top-level policy ("zeros"): padding is no damage, other bytes too
    few for a box header are a cut-off box, and the read says so (fail closed)."""
    import rightsmeta

    data = _make(ffmpeg, tmp_path / "a.m4a", "-c:a", "aac", "-metadata", "copyright=(c) Ada")
    clean = rightsmeta.read(data)
    assert clean.errors == []
    padded = rightsmeta.read(data + bytes(3))
    assert padded.errors == [] and padded.to_json() == clean.to_json()
    junk = rightsmeta.read(data + b"\x01\x02\x03")
    assert any("box header at offset" in e and "cut off" in e for e in junk.errors), junk.errors
