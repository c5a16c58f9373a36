"""Our own ID3 and FLAC tag readers (carriers/audiotags.py) against mutagen, on real files.

Every file starts as real audio made by ffmpeg; tags are written by rightsmeta, by mutagen, or,
for what mutagen cannot write (unsynchronisation, compression, extended headers, iTunes sizes),
built byte by byte per the ID3v2.3/2.4 specifications in front of those real MPEG frames.
Each variant is read both ways and must give the same frames and the same report, and the fast
reader must have read it itself: an ``Unusual`` fails the equivalence tests.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mutagen.flac import FLAC, Picture
from mutagen.id3 import ID3, PRIV, TCOP, TIT2, TXXX, WCOP, Frames
from mutagen.wave import WAVE

import rightsmeta
from rightsmeta import Assertion
from rightsmeta.carriers import audio, audiotags, heads
from rightsmeta.errors import MalformedFile

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
    return audiotags.read_id3(tag_bytes, audio._ID3_DESCRIPTIONS, "MP3")


def report_json(data: bytes) -> dict[str, Any]:
    report = rightsmeta.read(data)
    return {"carriers": [c.to_json() for c in report.carriers], "rights": report.rights, "errors": report.errors,
            "permissions": {p.value: str(v) for p, v in report.permissions.items()}}


def _unusual(*args: Any) -> Any:
    raise audiotags.Unusual("forced by the test")


def by_mutagen(monkeypatch: pytest.MonkeyPatch, data: bytes) -> dict[str, Any]:
    """The report as before: our readers step aside, so every tag goes to mutagen."""
    with monkeypatch.context() as patch:
        patch.setattr(audiotags, "read_id3", _unusual)
        patch.setattr(audiotags, "flac_comments", _unusual)
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
def test_id3_reader_agrees_with_mutagen_on_damaged_tags(seed: str, edits: list[tuple[int, int]]) -> None:
    """Bytes of a tag changed anywhere after its header: our reader gives mutagen's frames, or
    steps aside (Unusual), or refuses a bomb; it never raises anything else."""
    damaged = bytearray(ID3_VARIANTS[seed]())
    for at, value in edits:
        damaged[10 + at % (len(damaged) - 10)] = value
    try:
        fast = read_id3(bytes(damaged))
    except (audiotags.Unusual, MalformedFile):
        return
    try:
        slow = audio._mutagen_id3(ID3(io.BytesIO(bytes(damaged))))
    except Exception:  # mutagen gave up where we did not: nothing to compare
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
    with pytest.raises(audiotags.Unusual):
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
        with pytest.raises(audiotags.Unusual):
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


def test_reading_mp3_wav_flac_does_not_import_mutagen(plain: dict[str, bytes], tmp_path: Path) -> None:
    paths = []
    for fmt in ("mp3", "wav", "flac"):
        for name, data in (("plain", plain[fmt]), ("tagged", rightsmeta.tag_bytes(plain[fmt], FULL))):
            path = tmp_path / f"{name}.{fmt}"
            path.write_bytes(data)
            paths.append(str(path))
    script = ("import sys, rightsmeta\n"
              "reports = [rightsmeta.read(p) for p in sys.argv[1:]]\n"
              "assert all(not r.errors for r in reports), [r.errors for r in reports]\n"
              "assert sum(bool(r.carriers) for r in reports) == 3, [r.carriers for r in reports]\n"
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
