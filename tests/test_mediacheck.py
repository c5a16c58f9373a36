"""The quick MP4/M4A/MOV comparison (mediacheck): same media without decoding, and never a
changed sample or chunk offset taken for the same."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

import rightsmeta
from rightsmeta import contentcheck, mediacheck
from rightsmeta.errors import ContentChanged
from rightsmeta.model import Assertion

DENY_AI = Assertion.build(deny=["ai"])


def _make(tmp_path: Path, ffmpeg: str, kind: str) -> tuple[bytes, str]:
    out = tmp_path / {"m4a": "a.m4a", "faststart": "b.m4a", "mov": "c.mov", "faststart-mov": "d.mov"}[kind]
    args = [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=1"]
    if kind.endswith("mov"):  # audio and video chunks interleaved: several chunks per track
        args += ["-f", "lavfi", "-i", "testsrc=size=32x24:rate=5:duration=1", "-c:v", "mjpeg"]
    args += ["-c:a", "aac", "-b:a", "32k"]
    if kind.startswith("faststart"):  # moov before mdat: a growing moov shifts every chunk offset
        args += ["-movflags", "+faststart"]
    subprocess.run([*args, str(out)], check=True)
    return out.read_bytes(), "mov" if kind.endswith("mov") else "m4a"


def _mdat(data: bytes) -> int:
    pos = 0
    while data[pos + 4 : pos + 8] != b"mdat":
        pos += struct.unpack(">I", data[pos : pos + 4])[0]
    return pos


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@pytest.mark.parametrize("kind", ["m4a", "faststart", "mov", "faststart-mov"])
def test_tagged_media_are_the_same_and_a_changed_byte_is_not(tmp_path: Path, ffmpeg: str, kind: str) -> None:
    original, fmt = _make(tmp_path, ffmpeg, kind)
    tagged = rightsmeta.tag_bytes(original, DENY_AI)
    assert len(tagged) > len(original) + 200  # metadata was added ...
    assert mediacheck.same_media(original, tagged)  # ... beside what the decoder reads
    if kind == "faststart":
        assert _mdat(tagged) > _mdat(original)  # the offsets really moved
    assert contentcheck.compare(original, tagged, fmt) == []

    # One byte of the media changed, after the tag: not the same; the decode then sees it too.
    changed = _flip(tagged, _mdat(tagged) + 8 + (len(tagged) - _mdat(tagged)) // 3)
    assert not mediacheck.same_media(original, changed)
    if fmt == "mov":
        return  # the decode fallback hashes a MOV's audio only, and this byte may be video
    with pytest.raises(ContentChanged, match=f"decoded samples of this {fmt.upper()}"):
        contentcheck.compare(original, changed, fmt)


def test_a_moved_chunk_offset_is_not_the_same(tmp_path: Path, ffmpeg: str) -> None:
    original, _ = _make(tmp_path, ffmpeg, "faststart-mov")
    tagged = rightsmeta.tag_bytes(original, DENY_AI)
    table = tagged.index(b"stco") + 4 + 4  # after version/flags: the entry count, then the offsets
    assert struct.unpack(">I", tagged[table : table + 4])[0] >= 3
    second = table + 4 + 4  # the second chunk's offset, one byte further into the mdat (still inside)
    (offset,) = struct.unpack(">I", tagged[second : second + 4])
    moved = tagged[:second] + struct.pack(">I", offset + 1) + tagged[second + 4 :]
    assert not mediacheck.same_media(original, moved)


def test_a_changed_sample_table_is_not_the_same(tmp_path: Path, ffmpeg: str) -> None:
    original, _ = _make(tmp_path, ffmpeg, "m4a")
    tagged = rightsmeta.tag_bytes(original, DENY_AI)
    at = tagged.index(b"stts") + 4 + 4 + 4 + 4 + 3  # the first run's sample delta, low byte
    assert not mediacheck.same_media(original, _flip(tagged, at))


def test_what_is_not_proven_falls_back(tmp_path: Path, ffmpeg: str) -> None:
    original, _ = _make(tmp_path, ffmpeg, "m4a")
    assert not mediacheck.same_media(original, original[:-100])  # a cut-off mdat: a malformed walk
    assert not mediacheck.same_media(original, b"\0\0\0\x08free")  # no moov
    fragmented = tmp_path / "frag.m4a"
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(tmp_path / "a.m4a"), "-c", "copy", "-movflags",
                    "frag_keyframe+empty_moov", str(fragmented)], check=True)
    data = fragmented.read_bytes()
    assert not mediacheck.same_media(data, data)  # fragments are not walked: decoded instead


def _audio(tmp_path: Path, ffmpeg: str, fmt: str) -> bytes:
    out = tmp_path / f"tone.{fmt}"
    codec = {"mp3": ["-c:a", "libmp3lame", "-b:a", "64k"], "flac": ["-c:a", "flac"], "wav": ["-c:a", "pcm_s16le"]}[fmt]
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", *codec,
                    str(out)], check=True)
    return out.read_bytes()


@pytest.mark.parametrize("fmt", ["mp3", "flac", "wav"])
def test_tagged_audio_is_the_same_and_a_changed_frame_byte_is_not(tmp_path: Path, ffmpeg: str, fmt: str) -> None:
    original = _audio(tmp_path, ffmpeg, fmt)
    tagged = rightsmeta.tag_bytes(original, DENY_AI)
    assert len(tagged) != len(original) or tagged != original  # a tag was written ...
    assert mediacheck.same_audio(original, tagged, fmt)  # ... beside the audio
    assert contentcheck.compare(original, tagged, fmt) == []

    # Bytes in the middle of the audio (MP3/FLAC frames, WAV samples), changed after the tag; 32 of
    # them, since one flipped bit of an MP3 frame may decode to the same samples.
    at = len(tagged) - len(tagged) // 3
    changed = tagged[:at] + bytes(b ^ 0xFF for b in tagged[at : at + 32]) + tagged[at + 32 :]
    assert not mediacheck.same_audio(original, changed, fmt)
    with pytest.raises(ContentChanged, match=f"decoded samples of this {fmt.upper()}"):
        contentcheck.compare(original, changed, fmt)


def test_changed_stream_headers_are_not_the_same(tmp_path: Path, ffmpeg: str) -> None:
    flac = _audio(tmp_path, ffmpeg, "flac")
    tagged = rightsmeta.tag_bytes(flac, DENY_AI)
    assert not mediacheck.same_audio(flac, _flip(tagged, 4 + 4 + 10), "flac")  # STREAMINFO's sample rate
    wav = _audio(tmp_path, ffmpeg, "wav")
    tagged = rightsmeta.tag_bytes(wav, DENY_AI)
    rate = tagged.index(b"fmt ") + 8 + 4  # after format tag and channels
    assert not mediacheck.same_audio(wav, _flip(tagged, rate), "wav")
    mp3 = _audio(tmp_path, ffmpeg, "mp3")
    assert not mediacheck.same_audio(mp3, b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f" + mp3, "mp3")  # a tag past the end
    # An ID3v2.3 header with the v2.4 footer bit: the 10 bytes after its tag are not skipped as a
    # footer (a decoder reads them), so they must match too.
    tag = b"ID3\x03\x00\x10\x00\x00\x00\x04" + b"TIT2"
    assert not mediacheck.same_audio(tag + bytes(10) + mp3, tag + b"\xff\xfb" + bytes(8) + mp3, "mp3")
    assert mediacheck.same_audio(tag + bytes(10) + mp3, tag + bytes(10) + mp3, "mp3")


def _strip(data: bytes) -> int:
    """Where the first strip of a little-endian TIFF's first page starts."""
    from rightsmeta.carriers import tiff

    entries, _ = tiff.read_ifd(data, tiff.first_ifd_offset(data, "<"), "<")
    (offsets,) = [e for e in entries if e.tag == 273]
    return int(struct.unpack("<I", tiff.value_bytes(data, offsets)[:4])[0])


@pytest.mark.parametrize("retag", [False, True])
def test_tagged_tiff_is_the_same_and_a_changed_strip_byte_is_not(retag: bool) -> None:
    from samples import image_bytes

    original = image_bytes("tiff", size=(40, 24), seed=5, exif=True)
    if retag:  # an XMP value already there, rewritten in place or moved
        original = rightsmeta.tag_bytes(original, Assertion.build(allow=["ai"]))
    tagged = rightsmeta.tag_bytes(original, DENY_AI)
    assert len(tagged) > len(original) or tagged[:8] != original[:8] or tagged != original
    assert mediacheck.same_tiff(original, tagged)
    assert contentcheck.compare(original, tagged, "tiff") == []

    changed = _flip(tagged, _strip(tagged) + 7)
    assert not mediacheck.same_tiff(original, changed)
    with pytest.raises(ContentChanged, match="decoded pixels of this TIFF"):
        contentcheck.compare(original, changed, "tiff")


def test_a_changed_tiff_directory_entry_is_not_the_same() -> None:
    from samples import image_bytes

    from rightsmeta.carriers import tiff

    original = image_bytes("tiff", size=(40, 24), seed=5)
    tagged = rightsmeta.tag_bytes(original, DENY_AI)
    ifd0 = tiff.first_ifd_offset(tagged, "<")
    entries, _ = tiff.read_ifd(tagged, ifd0, "<")
    width = next(i for i, e in enumerate(entries) if e.tag == 256)
    assert not mediacheck.same_tiff(original, _flip(tagged, ifd0 + 2 + 12 * width + 8))  # ImageWidth's value
    assert not mediacheck.same_tiff(original, tagged[: len(original) - 1])  # shorter than the original


def test_a_tag_compared_in_place_loads_no_decoder(tmp_path: Path) -> None:
    """The in-place comparison is also what keeps a tag from importing the decoders (fingerprint,
    numpy, soundfile): a third of a small batch's time."""
    from samples import image_bytes

    path = tmp_path / "a.jpg"
    path.write_bytes(image_bytes("jpeg", seed=3))
    code = ("import sys, rightsmeta; r = rightsmeta.tag(sys.argv[1], rightsmeta.Assertion.build(deny=['ai'])); "
            "print(r.status, sorted(m for m in ('rightsmeta.fingerprint', 'numpy', 'soundfile') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True, text=True).stdout
    assert out.split(maxsplit=1) == ["tagged", "[]\n"]
