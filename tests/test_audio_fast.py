"""Our own tag readers (carriers/audiotags.py: ID3, FLAC, Ogg Vorbis/Opus, MP4) against mutagen, on real files.

Every file starts as real audio (or video) made by ffmpeg; tags are written by ffmpeg, rightsmeta,
mutagen, ExifTool, or, for what none of them writes (unsynchronisation, compression, extended
headers, iTunes sizes; odd Vorbis comments; odd or broken MP4 items), built byte by byte per the
specifications into those real files. Each variant is read both ways and must give the same
tags and the same report, and the fast reader must have read it itself: an ``LeaveToLibrary`` fails the
equivalence tests.
"""

from __future__ import annotations

import base64
import io
import random
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from mutagen.flac import FLAC, Picture
from mutagen.id3 import ID3, PRIV, TCOP, TIT2, TXXX, WCOP, Frames
from mutagen.mp4 import MP4, AtomDataType, MP4Cover, MP4FreeForm
from mutagen.ogg import OggPage
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

import rightsmeta
from rightsmeta import Assertion
from rightsmeta.carriers import audio, audiotags, heads
from rightsmeta.errors import LeaveToLibrary, MalformedFile

FULL = Assertion.build(
    deny=["ai"], constrain={"data-mining": "https://ada.example/tdm-licence"}, allow=["search"],
    holder="Ada Lovelace", contact="https://ada.example", copyright="(c) 2026 Ada Lovelace",
    web_statement="https://ada.example/licence", policy="https://ada.example/policy",
)
XMP = (b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
       b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
       b'xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/" plus:DataMining="http://ns.useplus.org/ldf/vocab/DMI-ALLOWED"/>'
       b'</rdf:RDF></x:xmpmeta><?xpacket end="w"?>')
CODECS = {0: "latin-1", 1: "utf-16", 2: "utf-16-be", 3: "utf-8"}
_SINE = ["-f", "lavfi", "-i", "sine=frequency=440:duration=0.3"]


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@pytest.fixture(scope="module")
def plain(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Untagged real files: an MP3 that is MPEG frames only (a built tag goes in front), WAV, AIFF, FLAC."""
    folder = tmp_path_factory.mktemp("plain")
    args = {"mp3": ["-c:a", "libmp3lame", "-id3v2_version", "0", "-write_xing", "0"], "wav": [], "aiff": [],
            "flac": ["-metadata", "title=Sine"]}
    made = {}
    for fmt, extra in args.items():
        path = folder / f"plain.{fmt}"
        _run(ffmpeg, "-v", "error", *_SINE, *extra, str(path))
        made[fmt] = path.read_bytes()
    assert made["mp3"][:2] in (b"\xff\xfb", b"\xff\xf3")
    return made


# --- building ID3v2 tags byte by byte ------------------------------------------------------------


def synchsafe(n: int) -> bytes:
    return bytes((n >> s) & 0x7F for s in (21, 14, 7, 0))


def frame(fid: bytes, payload: bytes, *, version: int = 4, flags: int = 0, plain_size: bool = False) -> bytes:
    """One frame: v2.4 sizes are synchsafe (``plain_size``: as iTunes once wrote them), v2.3 plain."""
    size = synchsafe(len(payload)) if version == 4 and not plain_size else len(payload).to_bytes(4, "big")
    return fid + size + flags.to_bytes(2, "big") + payload


def tag(*frames: bytes, version: int = 4, flags: int = 0, ext: bytes = b"", padding: int = 0) -> bytes:
    body = ext + b"".join(frames) + bytes(padding)
    return b"ID3" + bytes((version, 0, flags)) + synchsafe(len(body)) + body


def text(encoding: int, *values: str, terminate: bool = False) -> bytes:
    """Encoded strings separated (``terminate``: also ended) by NUL; UTF-16 (1) gets a BOM per string."""
    nul = b"\x00\x00" if encoding in (1, 2) else b"\x00"
    data = nul.join(v.encode(CODECS[encoding]) for v in values)
    return data + nul if terminate else data


def txxx(encoding: int, desc: str, *values: str, terminate: bool = False) -> bytes:
    return bytes((encoding,)) + text(encoding, desc, terminate=True) + text(encoding, *values, terminate=terminate)


def unsynchronise(data: bytes) -> bytes:
    """ID3v2 unsynchronisation: 0x00 after every 0xFF that precedes 0x00, a byte >= 0xE0, or the end."""
    out = bytearray()
    for i, b in enumerate(data):
        out.append(b)
        if b == 0xFF and (i + 1 == len(data) or data[i + 1] == 0 or data[i + 1] >= 0xE0):
            out.append(0)
    return bytes(out)


def id3_part(data: bytes) -> bytes:
    end = heads.id3_size(data, 0)
    assert end is not None
    return data[:end]


def mutagen_tag(frames: list[Any], version: int, **save: Any) -> bytes:
    tags = ID3()
    for f in frames:
        tags.add(f)
    out = io.BytesIO()
    tags.save(out, v2_version=version, **save)
    return out.getvalue()


def wav_with_chunk(wav: bytes, payload: bytes) -> bytes:
    chunk = b"id3 " + struct.pack("<I", len(payload)) + payload + b"\x00" * (len(payload) & 1)
    return wav[:4] + struct.pack("<I", len(wav) - 8 + len(chunk)) + wav[8:] + chunk


# --- comparing the two readers -------------------------------------------------------------------


def read_id3(tag_bytes: bytes) -> audiotags.ID3Frames:
    return audiotags.read_id3(tag_bytes, audio.ID3_DESCRIPTIONS, "MP3")


def report_json(data: bytes) -> dict[str, Any]:
    report = rightsmeta.read(data)
    return {"carriers": [c.to_json() for c in report.carriers], "rights": report.rights, "errors": report.errors,
            "permissions": {p.value: str(v) for p, v in report.permissions.items()}}


def _unusual(*args: Any) -> Any:
    raise LeaveToLibrary("forced by the test")


def by_mutagen(monkeypatch: pytest.MonkeyPatch, data: bytes) -> dict[str, Any]:
    """The report as before: our readers step aside, so every tag goes to mutagen."""
    with monkeypatch.context() as patch:
        for reader in ("read_id3", "flac_comments", "ogg_comments", "mp4_items"):
            patch.setattr(audiotags, reader, _unusual)
        return report_json(data)


def same_id3(monkeypatch: pytest.MonkeyPatch, data: bytes, tag_bytes: bytes) -> audiotags.ID3Frames:
    """The tag read by our reader (which must not give up) equals mutagen's, and so do the reports."""
    fast = read_id3(tag_bytes)
    assert fast == audio._mutagen_id3(ID3(io.BytesIO(tag_bytes)))
    assert report_json(data) == by_mutagen(monkeypatch, data)
    return fast


def same_flac(monkeypatch: pytest.MonkeyPatch, data: bytes) -> list[tuple[str, str]] | None:
    layout = audio._layout(data, "flac")
    assert layout.flac is not None
    fast = audiotags.flac_comments(data, *layout.flac)
    tags = FLAC(io.BytesIO(data)).tags
    assert fast == (None if tags is None else list(tags))
    assert report_json(data) == by_mutagen(monkeypatch, data)
    return fast


# --- ID3: every variant the tests can build ------------------------------------------------------

OURS = "rightsmeta:AITraining"


def _hand_built() -> dict[str, Callable[[], bytes]]:
    """Tags mutagen cannot write, built per the specification; each holds our frames."""
    packet_with_syncs = XMP.replace(b"?><x:", b"?>\xff\xe0\xff\x00\xff<x:")  # 0xFF bytes to unsynchronise
    latin = txxx(0, OURS, "notAllowed") + b""
    v23_frames = (frame(b"TXXX", txxx(0, "tdm-reservation", "1"), version=3)
                  + frame(b"TXXX", txxx(0, "rightsmeta:HolderName", "caf\xe9 \xff\xe9", "\xff\xff\xe0x"), version=3)
                  + frame(b"PRIV", b"XMP\x00" + packet_with_syncs, version=3))
    return {
        "v2.4 values with trailing NULs": lambda: tag(
            frame(b"TXXX", txxx(3, OURS, "notAllowed", terminate=True)),
            frame(b"TXXX", txxx(3, "tdm-policy", "https://p.example") + b"\x00\x00"),  # an empty second value
            frame(b"TCOP", b"\x03" + text(3, "(c) One", "(c) Two", terminate=True))),
        "v2.3 values with trailing NULs": lambda: tag(
            frame(b"TXXX", txxx(1, OURS, "notAllowed") + b"\x00\x00\x00\x00", version=3),
            frame(b"TCOP", b"\x00" + text(0, "(c) One") + b"\x00\x00\x00", version=3), version=3),
        "utf-16 with a BOM per value, either order": lambda: tag(
            frame(b"TXXX", b"\x01" + text(1, OURS) + b"\x00\x00" + b"\xfe\xff" + "notAllowed".encode("utf-16-be")
                  + b"\x00\x00" + "allowed".encode("utf-16")),
            frame(b"TCOP", b"\x02" + text(2, "(c) Zoë", "(c) 二"))),
        "utf-16 without a BOM": lambda: tag(
            frame(b"TXXX", b"\x01" + "tdm-reservation".encode("utf-16-le") + b"\x00\x00" + "1".encode("utf-16-le"),
                  version=3), version=3),
        "same description twice, merged": lambda: tag(
            frame(b"TXXX", txxx(3, OURS, "notAllowed", "notAllowed")),
            frame(b"TXXX", txxx(3, OURS, "allowed", "notAllowed", "allowed")),
            frame(b"TXXX", txxx(3, OURS.upper(), "allowed")),  # another description: not merged
            frame(b"TCOP", b"\x03" + text(3, "(c) A")), frame(b"TCOP", b"\x00" + text(0, "(c) B", "(c) A")),
            frame(b"WCOP", b"https://first.example\x00"), frame(b"WCOP", b"https://last.example\x00junk"),
            frame(b"PRIV", b"XMP\x00" + XMP), frame(b"PRIV", b"other\x00" + XMP), frame(b"PRIV", b"XMP\x00" + XMP)),
        "v2.3 whole tag unsynchronised": lambda: tag(
            unsynchronise(v23_frames), version=3, flags=0x80),
        "v2.4 frames unsynchronised, with data length": lambda: tag(
            frame(b"TXXX", synchsafe(len(txxx(0, OURS, "notAllowed\xff"))) + unsynchronise(txxx(0, OURS, "notAllowed\xff")),
                  flags=0x03),
            frame(b"PRIV", unsynchronise(b"XMP\x00" + packet_with_syncs), flags=0x02)),
        "v2.4 header unsynchronisation flag": lambda: tag(
            frame(b"TXXX", unsynchronise(txxx(0, OURS, "\xffnotAllowed\xff"))),
            frame(b"PRIV", unsynchronise(b"XMP\x00" + packet_with_syncs)), flags=0x80),
        "v2.3 compressed": lambda: tag(
            frame(b"TXXX", struct.pack(">I", len(latin)) + zlib.compress(latin), version=3, flags=0x80),
            frame(b"PRIV", struct.pack(">I", len(XMP) + 4) + zlib.compress(b"XMP\x00" + XMP), version=3, flags=0x80),
            version=3),
        "v2.4 compressed, with and without data length": lambda: tag(
            frame(b"TXXX", synchsafe(len(latin)) + zlib.compress(latin), flags=0x09),
            frame(b"PRIV", zlib.compress(b"XMP\x00" + XMP), flags=0x08),  # no length: mutagen retries
            frame(b"TCOP", synchsafe(9) + unsynchronise(zlib.compress(b"\x00(c) \xff\xff\xff\xff")), flags=0x0B)),
        "compressed frames not ours are only bounded": lambda: tag(  # 'txxx' is no frame ID mutagen knows
            frame(b"txxx", synchsafe(len(XMP) + 4) + zlib.compress(b"XMP\x00" + XMP), flags=0x09),
            frame(b"TIT2", synchsafe(6) + zlib.compress(b"\x00title"), flags=0x09), frame(b"TXXX", latin)),
        "v2.3 extended header": lambda: tag(
            frame(b"TXXX", latin, version=3), version=3, flags=0x40, ext=b"\x00\x00\x00\x06" + bytes(6)),
        "v2.4 extended header": lambda: tag(
            frame(b"TXXX", latin), flags=0x40, ext=synchsafe(6) + b"\x01\x00"),
        "extended header flag without one": lambda: tag(frame(b"TXXX", latin), flags=0x40),
        "v2.4 with iTunes' plain frame sizes": lambda: tag(
            frame(b"TIT2", b"\x00" + b"T" * 300, plain_size=True), frame(b"TXXX", latin, plain_size=True),
            frame(b"PRIV", b"XMP\x00" + XMP, plain_size=True)),
        "group byte kept as mutagen keeps it": lambda: tag(  # it is read as the encoding, and so on
            frame(b"TXXX", b"\x03" + latin, flags=0x40), frame(b"TCOP", b"\x00\x03(c)", flags=0x40),
            frame(b"TXXX", txxx(0, "tdm-reservation", "1"))),
        "frames after empty and unknown ones, then padding": lambda: tag(
            frame(b"TIT2", b""), frame(b"XYZW", b"\x00abc"), frame(b"TXXX", b""), frame(b"TXXX", b"\x03"),
            frame(b"TXXX", b"\x03tdm-policy\x00"), frame(b"TXXX", b"\x07tdm-policy\x00x"),
            frame(b"TXXX", b"\x03tdm-policy\x00\xff\xfe"), frame(b"WCOP", b"\x00"), frame(b"PRIV", b"XMP"),
            frame(b"TXXX", latin), padding=500),
        "v2.3 slashes are not separators": lambda: tag(
            frame(b"TXXX", txxx(0, "tdm-policy", "https://a.example/x/y")),
            frame(b"TCOP", b"\x00(c) A/B"), version=3),
    }


def _by_mutagen() -> dict[str, Callable[[], bytes]]:
    made: dict[str, Callable[[], bytes]] = {}
    for version in (3, 4):
        for encoding in (0, 1, 2, 3):
            name = "Zoë" if encoding == 0 else "Zoë 二"  # Latin-1 has no Han
            frames = [TXXX(encoding=encoding, desc=OURS, text=["notAllowed"]),
                      TXXX(encoding=encoding, desc="rightsmeta:HolderName", text=[name, "Ada"]),
                      TXXX(encoding=encoding, desc="Other Tool", text=["x"]),
                      TCOP(encoding=encoding, text=[f"(c) {name}", "(c) Ada"]), WCOP(url="https://ada.example/l"),
                      PRIV(owner="XMP", data=XMP), PRIV(owner="com.example", data=b"\xff\x00"),
                      TIT2(encoding=encoding, text=["Title"])]
            made[f"mutagen v2.{version} encoding {encoding}"] = lambda f=frames, v=version: mutagen_tag(f, v)
        # v2.3 has no lists: mutagen joins values with "/" unless told to keep the NULs.
        made[f"mutagen v2.{version} NUL-separated"] = lambda v=version: mutagen_tag(
            [TXXX(encoding=3, desc="tdm-reservation", text=["1", "0"]), TCOP(encoding=1, text=["a", "b"])], v, v23_sep=None)
    return made


ID3_VARIANTS = {**_hand_built(), **_by_mutagen()}


@pytest.mark.parametrize("name", ID3_VARIANTS)
def test_id3_reader_matches_mutagen(plain: dict[str, bytes], monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    tag_bytes = ID3_VARIANTS[name]()
    found = same_id3(monkeypatch, tag_bytes + plain["mp3"], tag_bytes)
    assert found.txxx or found.tcop or found.xmp, "the variant holds none of our frames"
    # The same tag in a WAV's 'id3 ' chunk.
    same_id3(monkeypatch, wav_with_chunk(plain["wav"], tag_bytes), tag_bytes)


def test_id3_quirks_read_as_mutagen_reads_them(plain: dict[str, bytes]) -> None:
    """A few outcomes spelled out, so that both readers agreeing on something else would show."""
    def read(name: str) -> audiotags.ID3Frames:
        return read_id3(ID3_VARIANTS[name]())

    assert read("v2.4 values with trailing NULs").txxx["tdm-policy"] == ["https://p.example", ""]
    assert read("v2.4 values with trailing NULs").tcop == ["(c) One", "(c) Two"]
    assert read("v2.3 values with trailing NULs").txxx[OURS] == ["notAllowed"]
    assert read("utf-16 with a BOM per value, either order").txxx[OURS] == ["notAllowed", "allowed"]
    merged = read("same description twice, merged")
    assert merged.txxx[OURS] == ["notAllowed", "notAllowed", "allowed"]
    assert merged.tcop == ["(c) A", "(c) B"] and merged.wcop == ["https://last.example"] and merged.xmp == [XMP]
    assert read("v2.3 whole tag unsynchronised").txxx["rightsmeta:HolderName"] == ["café ÿé", "ÿÿàx"]
    assert read("v2.4 with iTunes' plain frame sizes").txxx[OURS] == ["notAllowed"]
    assert read("v2.3 slashes are not separators").txxx["tdm-policy"] == ["https://a.example/x/y"]
    assert read("v2.3 slashes are not separators").tcop == ["(c) A/B"]
    assert read("frames after empty and unknown ones, then padding").txxx == {OURS: ["notAllowed"]}
    assert read("compressed frames not ours are only bounded").xmp == []
    grouped = read("group byte kept as mutagen keeps it")
    assert grouped.txxx == {"tdm-reservation": ["1"]} and grouped.tcop == ["\x03(c)"]
    v23 = read_id3(mutagen_tag([TXXX(encoding=3, desc="tdm-policy", text=["a", "b"])], 3))
    assert v23.version == 3 and v23.txxx["tdm-policy"] == ["a/b"]  # mutagen's own "/" is not split on reading


def test_files_tagged_by_rightsmeta_read_the_same(ffmpeg: str, plain: dict[str, bytes], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    v23 = tmp_path / "v23.mp3"
    _run(ffmpeg, "-v", "error", *_SINE, "-c:a", "libmp3lame", "-id3v2_version", "3", "-metadata", "title=Old", str(v23))
    for fmt, data, version in (("mp3", plain["mp3"], 4), ("mp3", v23.read_bytes(), 3), ("wav", plain["wav"], 4),
                               ("aiff", plain["aiff"], 4)):
        tagged = rightsmeta.tag_bytes(data, FULL)
        start, end = audio._layout(tagged, fmt).id3_chunk or (0, len(tagged))
        assert same_id3(monkeypatch, tagged, id3_part(tagged[start:end])).version == version
        assert rightsmeta.read(tagged).permissions == dict(FULL.permissions)

    wav = io.BytesIO(plain["wav"])  # mutagen's own WAV tags
    audio_ = WAVE(wav)
    audio_.add_tags()
    audio_.tags.add(TXXX(encoding=1, desc=OURS, text=["notAllowed"]))
    audio_.tags.add(TCOP(encoding=1, text=["(c) Someone"]))
    wav.seek(0)
    audio_.save(wav, v2_version=3)
    tagged = wav.getvalue()
    start, end = audio._layout(tagged, "wav").id3_chunk or (0, 0)
    assert same_id3(monkeypatch, tagged, tagged[start:end]).tcop == ["(c) Someone"]


@settings(max_examples=300, deadline=None, database=None)
@given(seed=st.sampled_from(sorted(ID3_VARIANTS)), edits=st.lists(
    st.tuples(st.integers(0, 10_000), st.sampled_from([0x00, 0x01, 0x02, 0x03, 0x08, 0x09, 0x7F, 0x80, 0xE0, 0xFF])),
    min_size=1, max_size=4))
@example(seed="mutagen v2.4 NUL-separated", edits=[(27, 1)])  # a TXXX size grown over the padding
def test_id3_reader_agrees_with_mutagen_on_damaged_tags(seed: str, edits: list[tuple[int, int]]) -> None:
    """Bytes of a tag changed anywhere after its header: our reader gives mutagen's frames, or
    steps aside (LeaveToLibrary), or refuses a bomb; it never raises anything else."""
    damaged = bytearray(ID3_VARIANTS[seed]())
    for at, value in edits:
        damaged[10 + at % (len(damaged) - 10)] = value
    try:
        fast = read_id3(bytes(damaged))
    except (LeaveToLibrary, MalformedFile):
        return
    try:
        slow = audio._mutagen_id3(ID3(io.BytesIO(bytes(damaged))))
    except Exception:  # mutagen gave up where we did not: nothing to compare
        return
    if audiotags.id3_damage(bytes(damaged), "MP3") is not None and (
        sum(map(len, slow.txxx.values())) + len(slow.tcop) > audiotags.MAX_ID3_VALUES
    ):
        # A frame grown past the tag's end reads the padding as values, more than read_id3 takes:
        # it stops there on purpose, keeping the frames before it, and the read reports the damage
        # and fails closed (test_fail_closed.py, 11.2). mutagen keeps the whole cut frame.
        return
    assert fast == slow


# --- ID3: what goes to mutagen, and hostile tags ---------------------------------------------------


V22_FRAME = b"TXX" + len(txxx(0, "tdm-reservation", "1")).to_bytes(3, "big") + txxx(0, "tdm-reservation", "1")


@pytest.mark.parametrize("name, tag_bytes", [
    ("ID3v2.2", b"ID3\x02\x00\x00" + synchsafe(len(V22_FRAME)) + V22_FRAME),
    ("encrypted frame", tag(frame(b"TXXX", b"\x01" + txxx(0, OURS, "allowed"), flags=0x04))),
    ("UTF-16 that mutagen repairs", tag(frame(b"TXXX", b"\x01" + text(1, OURS) + b"\x00\x00" + "allowed".encode("utf-16")[:-1]))),
    ("v2.2 frame name in a v2.3 tag", tag(frame(b"TXX\x00", txxx(0, OURS, "allowed"), version=3), version=3)),
    ("corrupt compressed frame", tag(frame(b"TXXX", synchsafe(9) + b"not zlib", flags=0x09))),
    ("undefined header flag", tag(frame(b"TXXX", txxx(0, OURS, "allowed")), flags=0x01)),
    ("tag larger than its chunk", tag(frame(b"TXXX", txxx(0, OURS, "allowed")))[:-3]),
])
def test_unusual_tags_go_to_mutagen(plain: dict[str, bytes], monkeypatch: pytest.MonkeyPatch, name: str,
                                    tag_bytes: bytes) -> None:
    with pytest.raises(LeaveToLibrary):
        read_id3(tag_bytes)
    data = wav_with_chunk(plain["wav"], tag_bytes)  # a WAV chunk reaches mutagen even when the tag is cut
    assert report_json(data) == by_mutagen(monkeypatch, data)


def test_frame_sizes_beyond_the_tag_are_cut_as_mutagen_cuts_them(plain: dict[str, bytes],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    whole = frame(b"TXXX", txxx(0, OURS, "notAllowed"))
    for size in (len(whole) + 1, 1000, 0x7F7F7F7F):
        tag_bytes = tag(whole[:4] + synchsafe(size & 0x0FFFFFFF) + whole[8:], frame(b"TCOP", b"\x00(c)"))
        same_id3(monkeypatch, tag_bytes + plain["mp3"], tag_bytes)


def test_zero_size_frames_and_truncated_tags(plain: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    many = tag(*[frame(b"TXXX", b"")] * 50_000, frame(b"TXXX", txxx(0, OURS, "notAllowed")))
    start = time.perf_counter()
    assert read_id3(many).txxx == {OURS: ["notAllowed"]}
    assert time.perf_counter() - start < 2
    whole = tag(frame(b"TXXX", txxx(0, OURS, "notAllowed")), padding=100)
    for cut in (5, 10, 30, len(whole) - 1):
        data = whole[:cut] + plain["mp3"]  # the tag claims more than is there: it swallows audio
        assert report_json(data) == by_mutagen(monkeypatch, data)


def test_a_million_values_is_an_error_not_an_hour(plain: dict[str, bytes]) -> None:
    # mutagen slices off the rest of the frame after each value: quadratic time.
    tag_bytes = tag(frame(b"TXXX", txxx(0, OURS, "notAllowed") + bytes(1_000_000)))
    start = time.perf_counter()
    with pytest.raises(MalformedFile, match="more than 1000 values"):
        read_id3(tag_bytes)
    assert rightsmeta.read(tag_bytes + plain["mp3"]).errors[0].startswith("MP3: ID3v2 tag holds more than 1000 values")
    assert time.perf_counter() - start < 2
    v23 = tag(frame(b"TXXX", txxx(0, OURS, "notAllowed") + bytes(1_000_000), version=3), version=3)
    assert read_id3(v23).txxx == {OURS: ["notAllowed"]}  # v2.3 has no lists: NULs after a value are padding


def _bomb_tags() -> dict[str, bytes]:
    bomb = zlib.compress(b"\x00" * (64 * 1024 * 1024), 9)  # ~64 KB that inflates to 64 MB
    return {
        "v2.3": tag(frame(b"TXXX", struct.pack(">I", 64 << 20) + bomb, version=3, flags=0x80), version=3),
        # No data length indicator: mutagen still skips four bytes, where the old check did not look.
        "v2.4 without length": tag(frame(b"TXXX", b"junk" + bomb, flags=0x08)),
        # The bomb in a frame we do not read, behind one that sends the tag to mutagen.
        "behind an encrypted frame": tag(frame(b"TXXX", txxx(0, OURS, "x"), flags=0x04),
                                         frame(b"TIT2", b"junk" + bomb, flags=0x08)),
    }


@pytest.mark.parametrize("name", _bomb_tags())
def test_zlib_bombs_are_refused_quickly(plain: dict[str, bytes], name: str) -> None:
    tag_bytes = _bomb_tags()[name]
    start = time.perf_counter()
    with pytest.raises(MalformedFile, match="inflates to too many bytes"):
        read_id3(tag_bytes)
    report = rightsmeta.read(tag_bytes + plain["mp3"])
    assert time.perf_counter() - start < 3
    assert report.errors and "inflates to too many bytes" in report.errors[0], report.errors


# --- FLAC -----------------------------------------------------------------------------------------


def _blocks(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    pos, found = 4, []
    while True:
        head, size = data[pos], int.from_bytes(data[pos + 1 : pos + 4], "big")
        found.append((head & 0x7F, data[pos + 4 : pos + 4 + size]))
        pos += 4 + size
        if head & 0x80:
            return found, data[pos:]


def _flac(blocks: list[tuple[int, bytes]], frames: bytes) -> bytes:
    out = b"fLaC"
    for i, (kind, payload) in enumerate(blocks):
        out += bytes(((0x80 if i == len(blocks) - 1 else 0) | kind,)) + len(payload).to_bytes(3, "big") + payload
    return out + frames


def vorbis_block(*comments: bytes, vendor: bytes = b"hand-built") -> bytes:
    return (struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(comments))
            + b"".join(struct.pack("<I", len(c)) + c for c in comments))


def _flac_variants(original: bytes) -> dict[str, bytes]:
    by_mutagen = io.BytesIO(original)
    flac = FLAC(by_mutagen)
    flac["Rightsmeta_AITraining"] = ["notAllowed"]
    flac["tdm_Reservation"] = ["1", "0"]
    flac["COPYRIGHT"] = ["(c) Zoë 二"]
    flac["license"] = ["All rights reserved"]
    picture = Picture()
    picture.type, picture.mime, picture.data = 3, "image/png", b"\x89PNG" + b"\xff" * 300
    flac.add_picture(picture)
    by_mutagen.seek(0)
    flac.save(by_mutagen)
    blocks, frames = _blocks(by_mutagen.getvalue())
    at = next(i for i, (kind, _) in enumerate(blocks) if kind == 4)
    odd = vorbis_block(b"NOEQUALS", b"=empty key", b"K\xc3\xa9Y=non-ASCII key", b"RIGHTSMETA_AITRAINING=\xff\xfeallowed",
                       b"K~Y=tilde", b"K}Y=brace", b"TDM_POLICY=a=b", b"")
    return {
        "tagged by rightsmeta": rightsmeta.tag_bytes(original, FULL),
        "tagged by mutagen": by_mutagen.getvalue(),
        "odd keys and bytes": _flac([*blocks[:at], (4, odd), *blocks[at + 1 :]], frames),
        "two comment blocks (the first counts)": _flac([*blocks[: at + 1], (2, b"APPLdata"), (4, odd), *blocks[at + 1 :]],
                                                       frames),
        "no comment block": _flac([b for b in blocks if b[0] != 4], frames),
        "behind an ID3 tag": tag(frame(b"TIT2", b"\x00title")) + by_mutagen.getvalue(),
    }


def test_flac_reader_matches_mutagen(plain: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, data in _flac_variants(plain["flac"]).items():
        comments = same_flac(monkeypatch, data)
        assert (comments is None) == (name == "no comment block"), name
    odd = _flac_variants(plain["flac"])["odd keys and bytes"]
    assert same_flac(monkeypatch, odd) == [
        ("unknown0", "NOEQUALS"), ("K?Y", "non-ASCII key"), ("RIGHTSMETA_AITRAINING", "\ufffd\ufffdallowed"),
        ("K}Y", "brace"), ("TDM_POLICY", "a=b"), ("unknown7", "")]  # '~' is past '}', no key character


def test_unusual_flac_goes_to_mutagen(plain: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    blocks, frames = _blocks(rightsmeta.tag_bytes(plain["flac"], FULL))
    comment = next(payload for kind, payload in blocks if kind == 4)
    others = [b for b in blocks if b[0] != 4]
    cases = {
        # mutagen trusts the comments' own lengths over the block's, and reads on.
        "comment block longer than its comments": [*others[:1], (4, comment + b"\x00" * 8), *others[1:]],
        "comments longer than their block": [*others[:1], (4, comment[:-5]), *others[1:]],
        "picture longer than its block": [*others[:1], (6, b"\x00\x00\x00\x03\x00\x00\x00\x09image/png"), (4, comment),
                                          *others[1:]],
        "two seek tables": [*others[:1], (3, b""), (3, b""), (4, comment), *others[1:]],
        "cue sheet": [*others[:1], (5, bytes(396)), (4, comment), *others[1:]],
    }
    for name, flac_blocks in cases.items():
        data = _flac(flac_blocks, frames)
        layout = audio._layout(data, "flac")
        assert layout.flac is not None
        with pytest.raises(LeaveToLibrary):
            audiotags.flac_comments(data, *layout.flac)
        assert report_json(data) == by_mutagen(monkeypatch, data), name
    two_tags = tag(frame(b"TIT2", b"\x00a")) + tag(frame(b"TIT2", b"\x00b")) + plain["flac"]
    assert report_json(two_tags) == by_mutagen(monkeypatch, two_tags)  # mutagen looks behind one tag only


def test_millions_of_empty_comments_are_an_error_not_a_minute(plain: dict[str, bytes]) -> None:
    blocks, frames = _blocks(plain["flac"])
    count = (16 * 1024 * 1024 - 100) // 4  # the largest block: mutagen took 30 s and 1.5 GB
    hostile = struct.pack("<I", 1) + b"v" + struct.pack("<I", count) + bytes(4 * count)
    data = _flac([blocks[0], (4, hostile), *[b for b in blocks[1:] if b[0] != 4]], frames)
    start = time.perf_counter()
    errors = rightsmeta.read(data).errors
    assert time.perf_counter() - start < 2
    assert errors == [f"FLAC: the VORBIS_COMMENT block claims {count} comments; refusing more than 10000"]


# --- no mutagen on the fast path; the MP3 walk ------------------------------------------------------


def test_reading_does_not_import_mutagen(plain: dict[str, bytes], media: dict[str, bytes], tmp_path: Path) -> None:
    """Plain and tagged files of every format are read without mutagen, QuickTime's meta aside."""
    sources = {**plain, **{name: media[name] for name in ("ogg", "opus", "m4a", "mp4", "mov", "mp4 fragmented")}}
    paths = []
    for name, data in sources.items():
        fmt = name.split()[0]
        for label, version in (("plain", data), ("tagged", rightsmeta.tag_bytes(data, FULL))):
            path = tmp_path / f"{label} {name.replace(' ', '-')}.{fmt}"
            path.write_bytes(version)
            paths.append(str(path))
    script = ("import sys, rightsmeta\n"
              "reports = [rightsmeta.read(p) for p in sys.argv[1:]]\n"
              "assert all(not r.errors for r in reports), [r.errors for r in reports]\n"
              "assert all(r.permissions == reports[1].permissions and r.has_signals for r in reports[1::2])\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mutagen'))\n")
    out = subprocess.run([sys.executable, "-c", script, *paths], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


def test_known_frames_are_mutagens() -> None:
    assert audiotags.KNOWN_FRAMES == {name.encode("ascii") for name in Frames}


def test_memoised_frame_lengths_match_every_header() -> None:
    for b1 in range(256):
        for b2 in range(256):
            header = bytes((0xFF, b1, b2, 0))
            frame_ = heads.mpeg_frame(header)
            assert audio._frame_length(header, 0) == (frame_[0] if frame_ else 0), header.hex()


def test_long_mp3_cut_in_its_tail_is_truncated(ffmpeg: str, tmp_path: Path) -> None:
    path = tmp_path / "long.mp3"
    _run(ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=25", "-c:a", "libmp3lame",
         "-b:a", "128k", str(path))
    data = path.read_bytes()
    assert len(data) > audio.TAIL + 64 * 1024  # only the tail is walked
    assert rightsmeta.read(data).errors == []
    for cut in (1, 100, 300):
        errors = rightsmeta.read(data[:-cut]).errors
        assert len(errors) == 1 and errors[0].startswith("truncated MP3: the MPEG frame at offset"), (cut, errors)


# --- Ogg Vorbis and Opus, MP4: real files from ffmpeg -------------------------------------------------

_VIDEO_IN = ["-f", "lavfi", "-i", "color=c=blue:s=16x16:d=0.3:r=10"]
_H264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p"]
#: ffmpeg's own tags: copyright becomes cprt in MP4, everything a Vorbis comment in Ogg.
_FFMPEG_TAGS = ["-metadata", "title=Tïtle", "-metadata", "copyright=(c) Zoë 二", "-metadata", "license=https://l.example",
                "-metadata", "RIGHTSMETA_AITRAINING=notAllowed", "-metadata", "tdm-reservation=1"]
_MEDIA = {  # name (its first word the format) -> ffmpeg arguments
    "ogg": [*_SINE, "-c:a", "libvorbis"],
    "ogg 6 channels": [*_SINE, "-ac", "6", "-c:a", "libvorbis"],
    "opus": [*_SINE, "-c:a", "libopus"],
    "opus with chapters": [*_SINE, "-i", "{chapters}", "-map_metadata", "1", "-map", "0", "-c:a", "libopus"],
    "m4a": [*_SINE, "-c:a", "aac"],
    "m4a AAC Main": [*_SINE, "-c:a", "aac", "-profile:a", "aac_main"],
    "m4a 5.1": [*_SINE, "-ac", "6", "-c:a", "aac"],
    "m4a ALAC": [*_SINE, "-c:a", "alac"],
    "m4a with chapters": [*_SINE, "-i", "{chapters}", "-map_metadata", "1", "-map", "0", "-c:a", "aac"],
    "m4a with mdta keys": [*_SINE, "-c:a", "aac", "-movflags", "use_metadata_tags"],
    "mp4": [*_VIDEO_IN, *_SINE, *_H264, "-c:a", "aac", "-movflags", "+faststart"],
    "mp4 AC-3": [*_SINE, "-c:a", "ac3"],
    "mp4 fragmented": [*_SINE, "-c:a", "aac", "-movflags", "frag_keyframe+empty_moov"],
    "mp4 video only": [*_VIDEO_IN, *_H264],
    "mov": [*_VIDEO_IN, *_SINE, *_H264, "-c:a", "aac"],
    "mov PCM": [*_VIDEO_IN, *_SINE, *_H264, "-c:a", "pcm_s16le"],
    "mov MP3": [*_VIDEO_IN, *_SINE, *_H264, "-c:a", "libmp3lame"],
}


@pytest.fixture(scope="module")
def media(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Real Ogg and MP4-family files made by ffmpeg, with its own tags (and chapters in two)."""
    folder = tmp_path_factory.mktemp("media")
    chapters = folder / "chapters.txt"
    chapters.write_text(";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=150\ntitle=Chäpter 1\n"
                        "[CHAPTER]\nTIMEBASE=1/1000\nSTART=150\nEND=300\ntitle=Two\n", encoding="utf-8")
    made = {}
    for name, args in _MEDIA.items():
        path = folder / f"{name.replace(' ', '-')}.{name.split()[0]}"
        _run(ffmpeg, "-v", "error", *[a.format(chapters=chapters) for a in args], *_FFMPEG_TAGS, str(path))
        made[name] = path.read_bytes()
    assert b"chpl" in made["m4a with chapters"] and b"esds" in made["m4a"] and b"dac3" in made["mp4 AC-3"]
    assert b"moof" in made["mp4 fragmented"] and b"soun" not in made["mp4 video only"]
    return made


# --- Ogg ---------------------------------------------------------------------------------------------


def mutagen_ogg(data: bytes, kind: str) -> list[tuple[str, str]]:
    tags = (OggVorbis if kind == "ogg" else OggOpus)(io.BytesIO(data)).tags
    return list(tags)


def same_ogg(monkeypatch: pytest.MonkeyPatch, data: bytes, kind: str) -> list[tuple[str, str]]:
    """Our Ogg reader (which must not give up) gives mutagen's comments, and the same report."""
    layout = audio._layout(data, kind)
    assert layout.ogg_streams == 1
    fast = audiotags.ogg_comments(data, kind)
    assert fast == mutagen_ogg(data, kind)
    assert report_json(data) == by_mutagen(monkeypatch, data)
    return fast


def comment_packet(kind: str, *comments: bytes, vendor: bytes = b"hand-built", tail: bytes | None = None) -> bytes:
    """A comment header: magic, the comments, then (``tail``) Vorbis's framing bit or nothing for Opus."""
    if tail is None:
        tail = b"\x01" if kind == "ogg" else b""
    magic = b"\x03vorbis" if kind == "ogg" else b"OpusTags"
    return magic + vorbis_block(*comments, vendor=vendor) + tail


def with_comment_packet(data: bytes, packet: bytes) -> bytes:
    """``data`` with its comment header replaced by ``packet``, paged as mutagen pages it when saving."""
    fileobj = io.BytesIO(data)
    OggPage(fileobj)  # the identification header
    old = [OggPage(fileobj)]
    while not (old[-1].complete or len(old[-1].packets) > 1):
        old.append(OggPage(fileobj))
    packets = OggPage.to_packets(old)
    packets[0] = packet
    OggPage.replace(fileobj, old, OggPage._from_packets_try_preserve(packets, old))
    return fileobj.getvalue()


def _ogg_page(serial: int, sequence: int, packets: list[bytes], *, complete: bool = True, continued: bool = False,
              first: bool = False, last: bool = False) -> bytes:
    page = OggPage()
    page.serial, page.sequence, page.packets, page.complete = serial, sequence, packets, complete
    page.continued, page.first, page.last, page.position = continued, first, last, 0 if complete else -1
    return bytes(page.write())


def _first_page(data: bytes) -> bytes:
    return data[: 27 + data[26] + sum(data[27 : 27 + data[26]])]


def _first_packet(data: bytes) -> bytes:
    return _first_page(data)[27 + data[26] :]


def _tagged_by_mutagen(data: bytes, kind: str, picture_size: int = 0) -> bytes:
    fileobj = io.BytesIO(data)
    ogg = (OggVorbis if kind == "ogg" else OggOpus)(fileobj)
    ogg["Rightsmeta_AITraining"] = ["notAllowed"]
    ogg["tdm_Reservation"] = ["1", "0"]
    ogg["COPYRIGHT"] = ["(c) Zoë 二"]
    ogg["license"] = ["All rights reserved"]
    if picture_size:
        picture = Picture()
        picture.type, picture.mime = 3, "image/png"
        picture.data = random.Random(picture_size).randbytes(picture_size)
        ogg["METADATA_BLOCK_PICTURE"] = [base64.b64encode(picture.write()).decode("ascii")]
    fileobj.seek(0)
    ogg.save(fileobj)
    return fileobj.getvalue()


ODD_COMMENTS = (b"NOEQUALS", b"=empty key", b"K\xc3\xa9Y=non-ASCII key", b"RIGHTSMETA_AITRAINING=\xff\xfeallowed",
                b"K~Y=tilde", b"K}Y=brace", b"TDM_POLICY=a=b", b"", b"COPYRIGHT=(c) Zo\xc3\xab")


def _ogg_variants(media: dict[str, bytes], kind: str) -> dict[str, bytes]:
    base = media[kind]
    # A vendor string that makes the whole packet a multiple of 255 bytes: its lacing ends in 0.
    short = comment_packet(kind, b"TDM_RESERVATION=1")
    aligned = comment_packet(kind, b"TDM_RESERVATION=1", vendor=b"v" * (10 + -len(short) % 255))
    assert len(aligned) % 255 == 0
    tail = (b"\x01" + bytes(300)) if kind == "ogg" else (b"\x01kept by mutagen" + bytes(40))
    other = "ogg 6 channels" if kind == "ogg" else "opus with chapters"
    variants = {
        "ffmpeg": base,
        f"ffmpeg: {other}": media[other],
        "rightsmeta": rightsmeta.tag_bytes(base, FULL),
        "mutagen": _tagged_by_mutagen(base, kind),
        "mutagen, cover art over many pages": _tagged_by_mutagen(base, kind, picture_size=150_000),
        "rightsmeta over cover art": rightsmeta.tag_bytes(_tagged_by_mutagen(base, kind, picture_size=20_000), FULL),
        "odd keys and bytes": with_comment_packet(base, comment_packet(kind, *ODD_COMMENTS)),
        "a packet of a multiple of 255 bytes": with_comment_packet(base, aligned),
        "padding and data after the comments": with_comment_packet(
            base, comment_packet(kind, b"RIGHTSMETA_AITRAINING=allowed", tail=tail)),
        "no comments": with_comment_packet(base, comment_packet(kind)),
    }
    if kind == "opus":  # the comment header alone on the second page: easily repaged by hand
        second = base[len(_first_page(base)) :]
        rest = second[len(_first_page(second)) :]
        serial = int.from_bytes(base[14:18], "little")
        variants["a packet ending in a segment of 0 bytes on a page of its own"] = (
            _first_page(base) + _ogg_page(serial, 1, [aligned], complete=False)
            + _ogg_page(serial, 2, [b""], continued=True) + rest)
    return variants


@pytest.mark.parametrize("kind", ("ogg", "opus"))
def test_ogg_reader_matches_mutagen(media: dict[str, bytes], monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    variants = _ogg_variants(media, kind)
    for name, data in variants.items():
        comments = same_ogg(monkeypatch, data, kind)
        assert comments or name == "no comments", name
    spanning = variants["mutagen, cover art over many pages"]
    assert spanning.count(b"OggS", 0, 250_000) > 30  # the header fills dozens of pages
    assert same_ogg(monkeypatch, variants["odd keys and bytes"], kind) == [
        ("unknown0", "NOEQUALS"), ("K?Y", "non-ASCII key"), ("RIGHTSMETA_AITRAINING", "\ufffd\ufffdallowed"),
        ("K}Y", "brace"), ("TDM_POLICY", "a=b"), ("unknown7", ""), ("COPYRIGHT", "(c) Zoë")]
    assert rightsmeta.read(variants["rightsmeta over cover art"]).permissions == dict(FULL.permissions)


def _unusual_ogg(media: dict[str, bytes], kind: str) -> dict[str, bytes]:
    """Files our reader leaves to mutagen; mutagen reads some and refuses others."""
    base, other = media[kind], media["ogg 6 channels" if kind == "ogg" else "opus with chapters"]
    serial = int.from_bytes(base[14:18], "little")
    spanning = bytearray(_tagged_by_mutagen(base, kind, picture_size=40_000))
    third = spanning.index(b"OggS", spanning.index(b"OggS", 4) + 4)
    page = OggPage(io.BytesIO(bytes(spanning[third:])))
    page.sequence = 7  # a gap in the page numbers (the page's CRC made anew, as a tool renumbering it would)
    spanning[third : third + page.size] = page.write()
    no_bit = comment_packet(kind, b"TDM_RESERVATION=1", tail=b"\x00")
    cut = comment_packet(kind, b"TDM_RESERVATION=1")
    cut = cut[:-5] if kind == "opus" else cut[:-6] + b"\x01"
    tail = 1 if kind == "ogg" else 0
    huge = comment_packet(kind, b"X=1")[: -7 - tail] + b"\xff\xff\xff\xff"  # the length of "X=1" replaced
    two_packets = _ogg_page(serial, 0, [_first_packet(base), comment_packet(kind, b"TDM_RESERVATION=0")], first=True)
    variants = {
        "chained streams": base + other,
        "a comment longer than the packet": with_comment_packet(base, cut),
        "a comment claiming 4 GiB": with_comment_packet(base, huge),
        "a gap in the page numbers": bytes(spanning),
        "the comment header on the first page": two_packets + base[len(_first_page(base)) :],
    }
    if kind == "ogg":
        variants["no framing bit"] = with_comment_packet(base, no_bit)
        variants["no framing byte"] = with_comment_packet(base, no_bit[:-1])
    return variants


@pytest.mark.parametrize("kind", ("ogg", "opus"))
def test_unusual_ogg_goes_to_mutagen(media: dict[str, bytes], monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    for name, data in _unusual_ogg(media, kind).items():
        if audio._layout(data, kind).ogg_streams == 1:
            with pytest.raises(LeaveToLibrary):
                audiotags.ogg_comments(data, kind)
        assert report_json(data) == by_mutagen(monkeypatch, data), name
    # Several streams are left to mutagen before our reader looks (it would refuse them too).
    chained = _unusual_ogg(media, kind)["chained streams"]
    assert audio._layout(chained, kind).ogg_streams == 2
    assert audiotags.ogg_comments(chained, kind) == mutagen_ogg(chained, kind)  # mutagen reads the first


def test_multiplexed_ogg_goes_to_mutagen(ffmpeg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "two.ogg"
    _run(ffmpeg, "-v", "error", *_SINE, "-f", "lavfi", "-i", "sine=frequency=880:duration=0.3", "-map", "0", "-map", "1",
         "-c:a", "libvorbis", "-metadata:s:0", "RIGHTSMETA_AITRAINING=allowed", "-metadata:s:1",
         "RIGHTSMETA_AITRAINING=notAllowed", str(path))
    data = path.read_bytes()
    assert audio._layout(data, "ogg").ogg_streams == 2
    with pytest.raises(LeaveToLibrary):  # the second page begins the other stream
        audiotags.ogg_comments(data, "ogg")
    assert report_json(data) == by_mutagen(monkeypatch, data)


def test_huge_ogg_comment_headers(media: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    base = media["ogg"]
    serial = int.from_bytes(base[14:18], "little")
    # A comment header that never ends: pages of 255 full segments up to the end of the stream.
    chunk = b"\x03vorbis" + bytes(255 * 255 - 7)
    pages = [_ogg_page(serial, 1, [chunk], complete=False)]
    pages += [_ogg_page(serial, i, [bytes(255 * 255)], complete=False, continued=True, last=i == 40)
              for i in range(2, 41)]
    endless = _first_page(base) + b"".join(pages)
    monkeypatch.setattr(audiotags, "MAX_OGG_PACKET", 1024 * 1024)
    start = time.perf_counter()
    with pytest.raises(LeaveToLibrary, match="larger than we put together"):
        audiotags.ogg_comments(endless, "ogg")
    assert report_json(endless) == by_mutagen(monkeypatch, endless)  # mutagen finds no end and refuses it
    assert report_json(endless)["errors"]
    # A real header over the limit is read by mutagen as before.
    big = rightsmeta.tag_bytes(_tagged_by_mutagen(base, "ogg", picture_size=800_000), FULL)
    with pytest.raises(LeaveToLibrary):
        audiotags.ogg_comments(big, "ogg")
    assert report_json(big) == by_mutagen(monkeypatch, big)
    assert rightsmeta.read(big).permissions == dict(FULL.permissions)
    # Many empty comments: an error (millions took mutagen a minute).
    count = 100_000
    many = with_comment_packet(base, b"\x03vorbis" + struct.pack("<I", 1) + b"v" + struct.pack("<I", count)
                               + bytes(4 * count) + b"\x01")
    assert rightsmeta.read(many).errors == [
        f"Ogg Vorbis: the comment header claims {count} comments; refusing more than 10000"]
    assert time.perf_counter() - start < 10


@settings(max_examples=300, deadline=None, database=None)
@given(seed=st.sampled_from(["mutagen", "odd keys and bytes", "padding and data after the comments",
                             "mutagen, cover art over many pages"]),
       kind=st.sampled_from(["ogg", "opus"]), edits=st.lists(
    st.tuples(st.integers(0, 100_000), st.sampled_from([0x00, 0x01, 0x02, 0x03, 0x04, 0x7F, 0x80, 0xFE, 0xFF])),
    min_size=1, max_size=4))
def test_ogg_reader_agrees_with_mutagen_on_damaged_files(ogg_seeds: dict[tuple[str, str], bytes], seed: str, kind: str,
                                                         edits: list[tuple[int, int]]) -> None:
    """Bytes changed in the header pages: our reader gives mutagen's comments, or steps aside, or
    refuses; where it answers, mutagen must read the file too."""
    data = bytearray(ogg_seeds[seed, kind])
    header_end = data.index(b"OggS", data.index(b"OggS", 4) + 4)  # the first two pages
    for at, value in edits:
        data[at % header_end] = value
    damaged = bytes(data)
    try:
        layout = audio._layout(damaged, kind)
        if layout.ogg_streams != 1:
            return
        fast = audiotags.ogg_comments(damaged, kind)
    except (LeaveToLibrary, MalformedFile):
        return
    assert fast == mutagen_ogg(damaged, kind)


@pytest.fixture(scope="module")
def ogg_seeds(media: dict[str, bytes]) -> dict[tuple[str, str], bytes]:
    return {(name, kind): data for kind in ("ogg", "opus") for name, data in _ogg_variants(media, kind).items()}


# --- MP4 ---------------------------------------------------------------------------------------------


def mutagen_mp4(data: bytes) -> audiotags.MP4Items | None:
    tags = MP4(io.BytesIO(data)).tags
    return None if tags is None else audio._mutagen_mp4(tags)


def same_mp4(monkeypatch: pytest.MonkeyPatch, data: bytes) -> audiotags.MP4Items | None:
    """Our MP4 reader (which must not give up) gives mutagen's items, and the same report."""
    fast, slow = audiotags.mp4_items(data), mutagen_mp4(data)
    assert fast == slow
    assert fast is None or slow is None or list(fast.freeform) == list(slow.freeform)  # the order counts too
    assert report_json(data) == by_mutagen(monkeypatch, data)
    return fast


def atom(name: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + name + payload


def data_atom(value: bytes, kind: int = 1) -> bytes:
    return atom(b"data", struct.pack(">I", kind) + bytes(4) + value)  # version 0, type; locale


def freeform(mean: bytes, name: bytes, *values: bytes, kind: int = 1) -> bytes:
    return atom(b"----", atom(b"mean", bytes(4) + mean) + atom(b"name", bytes(4) + name)
                + b"".join(data_atom(v, kind) for v in values))


def box_path(data: bytes, *names: bytes) -> list[Any]:
    """The boxes moov, udta, ... down to the last of ``names`` (the first of each name)."""
    movie = audio._movie("MP4")
    found = [next(b for b in movie.top(data) if b.type == names[0])]
    for name in names[1:]:
        parent = found[-1]
        boxes = movie.inside(data, parent._replace(payload=parent.payload + (4 if parent.type == b"meta" else 0)))
        found.append(next(b for b in boxes if b.type == name))
    return found


def with_payload(data: bytes, path: list[Any], payload: bytes) -> bytes:
    """``data`` with the last box of ``path`` given ``payload`` and the sizes of the boxes around it
    adjusted. The media does not move for the readers: chunk offsets are left as they are."""
    last = path[-1]
    delta = len(payload) - (last.end - last.payload)
    out = bytearray(data[: last.payload] + payload + data[last.end :])
    for box in path:
        out[box.start : box.start + 4] = (box.end - box.start + delta).to_bytes(4, "big")
    return bytes(out)


def with_items(data: bytes, *items: bytes, keep: bool = True) -> bytes:
    """``data`` (which has moov/udta/meta/ilst) with ``items`` added to its ilst, or instead of its items."""
    path = box_path(data, b"moov", b"udta", b"meta", b"ilst")
    ilst = path[-1]
    return with_payload(data, path, (data[ilst.payload : ilst.end] if keep else b"") + b"".join(items))


def _mutagen_tagged(data: bytes) -> bytes:
    fileobj = io.BytesIO(data)
    movie = MP4(fileobj)
    if movie.tags is None:
        movie.add_tags()
    tags = movie.tags
    tags["----:org.rightsmeta:rightsmeta:AITraining"] = [MP4FreeForm(b"notAllowed")]
    tags["----:ORG.RIGHTSMETA:RIGHTSMETA:AITRAINING"] = [MP4FreeForm(b"notAllowed", AtomDataType.IMPLICIT)]
    tags["----:org.rightsmeta:tdm-reservation"] = [MP4FreeForm(b"1"), MP4FreeForm(b"0")]  # several values
    tags["----:org.rightsmeta:rightsmeta:HolderName"] = [MP4FreeForm("Zoë 二".encode())]
    tags["----:org.rightsmeta:tdm-policy"] = [MP4FreeForm(b"\xff\xfe not UTF-8", AtomDataType.IMPLICIT)]
    tags["----:com.apple.iTunes:rightsmeta:AITraining"] = [MP4FreeForm(b"allowed")]  # another mean: not ours
    tags["----:com.apple.iTunes:MusicBrainz Track Id"] = [MP4FreeForm(b"abc")]
    tags["cprt"] = ["(c) Zoë", "(c) Ada"]
    tags["covr"] = [MP4Cover(b"\x89PNG" + bytes(3000), MP4Cover.FORMAT_PNG), MP4Cover(b"\xff\xd8\xff" + bytes(100))]
    tags["trkn"], tags["disk"], tags["tmpo"], tags["cpil"] = [(1, 10)], [(1, 2)], [120], True
    tags["\xa9nam"] = ["Tïtle"]
    fileobj.seek(0)
    movie.save(fileobj)
    return fileobj.getvalue()


def _mp4_variants(media: dict[str, bytes]) -> dict[str, bytes]:
    variants = {}
    for name, data in media.items():
        if name.split()[0] in ("m4a", "mp4", "mov"):
            variants[f"ffmpeg: {name}"] = data
            variants[f"rightsmeta: {name}"] = rightsmeta.tag_bytes(data, FULL)
    m4a = _mutagen_tagged(media["m4a"])
    variants["mutagen"] = m4a
    variants["mutagen, then rightsmeta"] = rightsmeta.tag_bytes(m4a, FULL)
    variants["mutagen: mov"] = _mutagen_tagged(media["mov"])
    ours = b"org.rightsmeta"
    variants["hand-built: the same key in several items, merged"] = with_items(
        m4a, freeform(ours, b"rightsmeta:AITraining", b"allowed", b"notAllowed"),
        freeform(ours, b"rightsmeta:AITraining", b"allowed"), freeform(ours, b"tdm-policy", b"https://p.example"))
    variants["hand-built: odd means and names"] = with_items(
        media["m4a"], freeform(b"", b"tdm-reservation", b"1"), freeform(ours, b""), freeform(b"caf\xe9", b"n\xe4me", b"x"),
        freeform(ours, b"rightsmeta:AITraining"),  # no data atom
        atom(b"----", atom(b"mean", b"\x01\x02\x03\x04" + ours) + atom(b"name", b"\xff" * 4 + b"tdm-reservation")
             + data_atom(b"1", kind=21)))
    variants["hand-built: cprt items, some dropped"] = with_items(
        media["m4a"], atom(b"cprt", data_atom(b"(c) A") + data_atom(b"(c) B", kind=0)), atom(b"cprt", data_atom(b"(c) C")),
        atom(b"cprt", data_atom(b"\xff")), atom(b"cprt", data_atom(b"(c) D", kind=21)),
        atom(b"cprt", data_atom(b"(c) E") + atom(b"junk", b"")), atom(b"cprt", b""))
    variants["hand-built: items mutagen drops"] = with_items(
        m4a, atom(b"trkn", data_atom(bytes(8), kind=0) + atom(b"abcd", bytes(8))), atom(b"covr", atom(b"abcd", bytes(8))),
        atom(b"covr", atom(b"name", b"x") + data_atom(b"\x89PNG", kind=14)), atom(b"tmpo", data_atom(b"\x00\x01", kind=21)[:-2]),
        atom(b"xyz1", data_atom(b"text", kind=0)), atom(b"\xa9nam", data_atom(b"\xff")))
    meta = box_path(m4a, b"moov", b"udta", b"meta")
    children = m4a[meta[-1].payload : meta[-1].end]
    second = atom(b"ilst", freeform(ours, b"rightsmeta:AITraining", b"allowed"))
    variants["hand-built: a second ilst, ignored"] = with_payload(m4a, meta, children + second)
    udta = box_path(m4a, b"moov", b"udta")
    variants["hand-built: a second meta and udta, ignored"] = with_payload(
        m4a, udta[:1], m4a[udta[0].payload : udta[0].end] + atom(b"udta", atom(b"meta", bytes(4) + second)))
    return variants


@pytest.fixture(scope="module")
def mp4_variants(media: dict[str, bytes]) -> dict[str, bytes]:
    return _mp4_variants(media)


def test_mp4_reader_matches_mutagen(mp4_variants: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, data in mp4_variants.items():
        try:
            items = same_mp4(monkeypatch, data)
        except LeaveToLibrary as exc:
            raise AssertionError(f"{name}: {exc}") from None
        assert items is not None or name in ("ffmpeg: mov", "ffmpeg: mov PCM", "ffmpeg: mov MP3"), name
    merged = audiotags.mp4_items(mp4_variants["hand-built: the same key in several items, merged"])
    assert merged is not None and merged.freeform["----:org.rightsmeta:rightsmeta:AITraining"] == [
        b"notAllowed", b"allowed", b"notAllowed", b"allowed"]
    odd = audiotags.mp4_items(mp4_variants["hand-built: odd means and names"])
    assert odd is not None and list(odd.freeform) == [
        "----::tdm-reservation", "----:org.rightsmeta:", "----:café:näme", "----:org.rightsmeta:rightsmeta:AITraining",
        "----:org.rightsmeta:tdm-reservation"]
    cprt = audiotags.mp4_items(mp4_variants["hand-built: cprt items, some dropped"])
    assert cprt is not None and cprt.cprt == ["(c) Zoë 二", "(c) A", "(c) B", "(c) C"]
    report = rightsmeta.read(mp4_variants["mutagen"])
    assert sorted(report.carriers[0].errors) == [
        "----:org.rightsmeta:tdm-policy is not UTF-8 text",
        "----:org.rightsmeta:tdm-reservation holds 2 different values: ['1', '0']",
        "cprt holds 2 different values: ['(c) Zoë', '(c) Ada']"]


def _unusual_mp4(media: dict[str, bytes]) -> dict[str, bytes]:
    """Files our reader leaves to mutagen; it reads some and refuses others."""
    m4a = media["m4a"]
    meta = box_path(m4a, b"moov", b"udta", b"meta")
    children = m4a[meta[-1].payload + 4 : meta[-1].end]
    ilst = box_path(m4a, b"moov", b"udta", b"meta", b"ilst")[-1]
    item = freeform(b"org.rightsmeta", b"rightsmeta:AITraining", b"notAllowed")
    mvhd = box_path(m4a, b"moov", b"mvhd")[-1]
    chpl = atom(b"chpl", bytes(8) + b"\x01" + bytes(8) + b"\x02\xff\xfe")
    return {
        "QuickTime meta, no version and flags": with_payload(m4a, meta, children),
        "meta with flags": with_payload(m4a, meta, b"\x00\x00\x00\x01" + children),
        "an item of 64-bit size": with_items(m4a, struct.pack(">I4sQ", 1, b"----", 16 + len(item) - 8) + item[8:]),
        "an item running past the ilst": with_items(m4a, struct.pack(">I", len(item) + 8) + item[4:]),
        "a zero word ending udta": with_payload(m4a, box_path(m4a, b"moov", b"udta"),
                                                m4a[meta[-1].start : meta[-1].end] + bytes(4)),
        "a freeform item of three bytes": with_items(m4a, atom(b"----", b"\x00\x00\x00")),
        "a freeform data atom running past the item": with_items(m4a, item[:-3]),
        "a freeform item with another atom than data": with_items(m4a, atom(b"----", item[8:] + atom(b"free", b""))),
        "name before mean": with_items(m4a, atom(b"----", atom(b"name", bytes(4) + b"tdm-reservation")
                                                 + atom(b"mean", bytes(4) + b"org.rightsmeta") + data_atom(b"1"))),
        "a short track number": with_items(m4a, atom(b"trkn", data_atom(b"\x00\x01", kind=0))),
        "a cut-off covr": with_items(m4a, atom(b"covr", data_atom(b"x")[:10])),
        "a chapter title not UTF-8": with_payload(m4a, box_path(m4a, b"moov", b"udta"),
                                                  m4a[meta[-1].start : meta[-1].end] + chpl),
        "a movie header of time scale 0": m4a[: mvhd.payload + 12] + bytes(4) + m4a[mvhd.payload + 16 :],
        "ilst first in meta": with_payload(m4a, meta, bytes(4) + m4a[ilst.start : ilst.end]),
    }


def test_unusual_mp4_goes_to_mutagen(media: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, data in _unusual_mp4(media).items():
        if name == "ilst first in meta":  # ours after all: mutagen does not need the hdlr first
            same_mp4(monkeypatch, data)
            continue
        if name == "QuickTime meta, no version and flags":  # ours, read as written (mutagen misreads it)
            assert audiotags.mp4_items(data) == audiotags.mp4_items(media["m4a"])
            continue
        if name != "a movie header of time scale 0":  # only refused with chapters or no audio track
            with pytest.raises(LeaveToLibrary):
                audiotags.mp4_items(data)
        assert report_json(data) == by_mutagen(monkeypatch, data), name
    with_chapters = media["m4a with chapters"]
    mvhd = box_path(with_chapters, b"moov", b"mvhd")[-1]
    no_scale = with_chapters[: mvhd.payload + 12] + bytes(4) + with_chapters[mvhd.payload + 16 :]
    with pytest.raises(LeaveToLibrary):
        audiotags.mp4_items(no_scale)
    assert report_json(no_scale) == by_mutagen(monkeypatch, no_scale)
    assert report_json(no_scale)["errors"]


def test_mp4_written_by_exiftool(media: dict[str, bytes], exiftool: str, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """ExifTool's ilst items read the same. Its QuickTime keys (as Apple's devices write them) go
    in a moov/meta without version and flags, which mutagen misreads (a mapped file fails with
    "seek out of range"): our reader reads it as written, and such a file tags and verifies."""
    path = tmp_path / "items.m4a"
    path.write_bytes(media["m4a"])
    _run(exiftool, "-q", "-overwrite_original", "-ItemList:Copyright=(c) ExifTool", "-ItemList:Title=Ex", str(path))
    items = same_mp4(monkeypatch, path.read_bytes())
    assert items is not None and items.cprt == ["(c) ExifTool"]
    path = tmp_path / "keys.mov"
    path.write_bytes(media["mov"])
    _run(exiftool, "-q", "-overwrite_original", "-ItemList:Copyright=(c) ItemList", "-Keys:Copyright=(c) Keys", str(path))
    data = path.read_bytes()
    items = audiotags.mp4_items(data)
    assert items is not None and items.cprt == ["(c) ItemList"]
    big = tmp_path / "keys-big.mov"  # over fsio.READ_WHOLE: read through a map, where mutagen failed
    big.write_bytes(data + atom(b"free", bytes(100_000)))
    assert rightsmeta.read(big).errors == []
    assert rightsmeta.tag(big, FULL).status == "tagged"
    assert rightsmeta.read(big).permissions == rightsmeta.read(rightsmeta.tag_bytes(media["mov"], FULL)).permissions


def test_hostile_mp4_is_refused_quickly(media: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    m4a = media["m4a"]
    start = time.perf_counter()
    # mutagen would loop forever on this cover.
    looping = with_items(m4a, atom(b"covr", struct.pack(">I4sI", 0, b"name", 0)))
    assert rightsmeta.read(looping).errors == [
        "MP4: the covr item holds a 'name' atom of size 0 (mutagen would loop forever on it)"]
    # Also where mutagen would refuse the chapters, which it reads after the items.
    chapters = bytearray(with_items(media["m4a with chapters"], atom(b"covr", struct.pack(">I4sI", 0, b"name", 0))))
    chpl = box_path(bytes(chapters), b"moov", b"udta", b"chpl")[-1]
    chapters[chpl.end - 1] = 0xFF  # the last title's last byte
    assert rightsmeta.read(bytes(chapters)).errors == rightsmeta.read(looping).errors
    # Deep nesting: our walk stops early; mutagen's recursion fails as it did.
    ftyp = m4a[: box_path(m4a, b"ftyp")[-1].end]
    nested = b""
    for _ in range(3000):
        nested = atom(b"moov", nested)
    with pytest.raises(LeaveToLibrary, match="nested too deep"):
        audiotags.mp4_items(ftyp + nested)
    assert report_json(ftyp + nested) == by_mutagen(monkeypatch, ftyp + nested)
    # Sizes beyond their parents, and claims of 2**63 bytes.
    ilst = box_path(m4a, b"moov", b"udta", b"meta", b"ilst")
    for size in (1 << 31, 1 << 63):
        data = with_items(m4a, struct.pack(">I4sQ", 1, b"----", size) + bytes(16))
        with pytest.raises(LeaveToLibrary):
            audiotags.mp4_items(data)
        assert report_json(data) == by_mutagen(monkeypatch, data)
        grown = bytearray(m4a)
        grown[ilst[-1].start : ilst[-1].start + 4] = b"\xff\xff\xff\xf0"
        assert report_json(bytes(grown)) == by_mutagen(monkeypatch, bytes(grown))
    # Very many empty atoms in a container: a bounded walk, then mutagen as before.
    many = with_payload(m4a, box_path(m4a, b"moov", b"udta"), atom(b"free", b"") * (audiotags.MAX_MP4_ATOMS + 1))
    with pytest.raises(LeaveToLibrary, match="too many atoms"):
        audiotags.mp4_items(many)
    assert time.perf_counter() - start < 10
    for cut in (1, 100, len(m4a) - box_path(m4a, b"moov")[-1].start - 10):
        assert report_json(m4a[:-cut]) == by_mutagen(monkeypatch, m4a[:-cut])  # truncated: refused by the walk


@pytest.fixture(scope="module")
def mp4_seeds(mp4_variants: dict[str, bytes], media: dict[str, bytes]) -> dict[str, bytes]:
    names = ("mutagen", "ffmpeg: m4a with chapters", "ffmpeg: m4a ALAC", "ffmpeg: mp4 AC-3", "ffmpeg: m4a 5.1",
             "ffmpeg: mp4 video only", "hand-built: items mutagen drops", "ffmpeg: mp4 fragmented")
    return {name: mp4_variants[name] for name in names}


@settings(max_examples=500, deadline=None, database=None)
@given(seed=st.sampled_from(["mutagen", "ffmpeg: m4a with chapters", "ffmpeg: m4a ALAC", "ffmpeg: mp4 AC-3",
                             "ffmpeg: m4a 5.1", "ffmpeg: mp4 video only", "hand-built: items mutagen drops",
                             "ffmpeg: mp4 fragmented"]),
       edits=st.lists(st.tuples(st.integers(0, 100_000), st.sampled_from(
           [0x00, 0x01, 0x02, 0x03, 0x05, 0x08, 0x0F, 0x10, 0x1F, 0x40, 0x7F, 0x80, 0xFF])), min_size=1, max_size=3))
def test_mp4_reader_agrees_with_mutagen_on_damaged_files(mp4_seeds: dict[str, bytes], seed: str,
                                                         edits: list[tuple[int, int]]) -> None:
    """Bytes of the moov box changed (or of the fragments, in a fragmented file): our reader gives
    mutagen's items, or steps aside, or refuses; where it answers, mutagen must read the file too."""
    data = bytearray(mp4_seeds[seed])
    boxes = [b for b in audio._movie("MP4").top(data) if b.type in (b"moov", b"moof")]
    sizes = [b.end - b.start for b in boxes]
    for at, value in edits:
        at %= sum(sizes)
        box = 0
        while at >= sizes[box]:
            at, box = at - sizes[box], box + 1
        data[boxes[box].start + at] = value
    damaged = bytes(data)
    try:
        audio._layout(damaged, "m4a")
        fast = audiotags.mp4_items(damaged)
    except (LeaveToLibrary, MalformedFile):
        return
    slow = mutagen_mp4(damaged)
    assert fast == slow and (fast is None or slow is None or list(fast.freeform) == list(slow.freeform))
