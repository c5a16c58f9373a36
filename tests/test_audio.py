"""Audio and video tags, end to end, on real files made by ffmpeg: ID3, Vorbis comments, MP4 atoms."""

from __future__ import annotations

import base64
import json
import mmap
import os
import shutil
import struct
import subprocess
import time
import zlib
from collections import Counter
from pathlib import Path

import mutagen
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from mutagen.flac import FLAC, Picture
from mutagen.id3 import APIC, ID3, TCOP, TIT2, TXXX, WCOP
from mutagen.mp4 import MP4, MP4Cover
from samples import exiftool_json, image_bytes, write_image

import rightsmeta
from rightsmeta import Assertion, Permission, Purpose, State
from rightsmeta.carriers import audio, containers, detect
from rightsmeta.cli import main
from rightsmeta.errors import MalformedFile
from rightsmeta.verify import verify

FORMATS = ("mp3", "wav", "aiff", "flac", "ogg", "opus", "m4a", "mp4", "mov")
ID3_FORMATS = ("mp3", "wav", "aiff")
VORBIS_FORMATS = ("flac", "ogg", "opus")
MP4_FORMATS = ("m4a", "mp4", "mov")
CARRIERS = {
    **{f: ["id3", "xmp"] for f in ID3_FORMATS},
    **{f: ["vorbis"] for f in VORBIS_FORMATS},
    **{f: ["mp4", "xmp"] for f in MP4_FORMATS},
}
COVER = image_bytes("png", size=(8, 8))
FULL = Assertion.build(
    deny=["ai"], constrain={"data-mining": "https://ada.example/tdm-licence"}, allow=["search"],
    holder="Ada Lovelace", contact="https://ada.example", copyright="(c) 2026 Ada Lovelace",
    web_statement="https://ada.example/licence", policy="https://ada.example/policy",
)
DENY_AI = Assertion.build(deny=["ai"])

_SINE = ["-f", "lavfi", "-i", "sine=frequency=440:duration=0.3"]
_VIDEO = ["-f", "lavfi", "-i", "color=c=blue:s=16x16:d=0.3:r=10", "-c:v", "libx264", "-pix_fmt", "yuv420p"]
_ENCODE = {
    "mp3": ["-c:a", "libmp3lame"],
    "wav": ["-c:a", "pcm_s16le"],
    "aiff": [],
    "flac": [],
    "ogg": ["-c:a", "libvorbis"],
    "opus": ["-c:a", "libopus"],
    "m4a": ["-c:a", "aac"],
    "mp4": [*_VIDEO, "-c:a", "aac", "-movflags", "+faststart"],  # moov first: mutagen must fix offsets
    "mov": [*_VIDEO, "-c:a", "aac"],  # moov last, after mdat
}


def _run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def _add_cover(path: Path, fmt: str) -> None:
    """Cover art (and, for AIFF, an ID3 chunk of someone else's) where the format allows it."""
    if fmt in ("mp3", "aiff"):
        tags = ID3(path) if fmt == "mp3" else ID3()
        tags.add(APIC(encoding=3, mime="image/png", type=3, desc="cover", data=COVER))
        if fmt == "aiff":
            tags.add(TIT2(encoding=3, text=["Chunk Title"]))
            aiff = mutagen.File(path)
            aiff.add_tags()
            aiff.tags.update(tags)
            aiff.save()
        else:
            tags.save(path)
    elif fmt == "flac":
        flac = FLAC(path)
        picture = Picture()
        picture.type, picture.mime, picture.data = 3, "image/png", COVER
        flac.add_picture(picture)
        flac.save()
    elif fmt == "ogg":
        ogg = mutagen.File(path)
        picture = Picture()
        picture.type, picture.mime, picture.data = 3, "image/png", COVER
        ogg["METADATA_BLOCK_PICTURE"] = [base64.b64encode(picture.write()).decode("ascii")]
        ogg.save()
    elif fmt == "m4a":
        m4a = MP4(path)
        m4a.tags["covr"] = [MP4Cover(COVER, imageformat=MP4Cover.FORMAT_PNG)]
        m4a.save()


def cover(path: Path, fmt: str) -> bytes | None:
    if fmt in ("mp3", "aiff"):
        tags = mutagen.File(path).tags
        return bytes(tags.getall("APIC")[0].data)
    if fmt == "flac":
        return bytes(FLAC(path).pictures[0].data)
    if fmt == "ogg":
        return Picture(base64.b64decode(mutagen.File(path)["METADATA_BLOCK_PICTURE"][0])).data  # type: ignore[no-any-return]
    if fmt == "m4a":
        return bytes(MP4(path).tags["covr"][0])
    return None


@pytest.fixture(scope="session")
def originals(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One real file per format, 0.3 s of sine with title/artist/album and cover art where possible."""
    folder = tmp_path_factory.mktemp("originals")
    made = {}
    for fmt in FORMATS:
        path = folder / f"original.{fmt}"
        metadata = ["-metadata", "title=Sine", "-metadata", "artist=Test Artist", "-metadata", "album=Test Album"]
        _run(ffmpeg, "-v", "error", *_SINE, *_ENCODE[fmt], *metadata, str(path))
        _add_cover(path, fmt)
        made[fmt] = path
    return made


@pytest.fixture(scope="session")
def tagged(originals: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each original tagged once with FULL through the path API (atomic write)."""
    folder = tmp_path_factory.mktemp("tagged")
    made = {}
    for fmt, original in originals.items():
        path = folder / original.name
        shutil.copyfile(original, path)
        result = rightsmeta.tag(path, FULL)
        assert result.status == "tagged", result.reason
        assert result.carriers == CARRIERS[fmt]
        made[fmt] = path
    return made


def copy(original: Path, folder: Path, name: str | None = None) -> Path:
    path = folder / (name or original.name)
    shutil.copyfile(original, path)
    return path


def decoded_md5(ffmpeg: str, path: Path) -> str:
    return _run(ffmpeg, "-v", "error", "-i", str(path), "-map", "0:a", "-f", "md5", "-").strip()


def probe_tags(path: Path) -> dict[str, str]:
    """Every tag ffprobe shows, of the file and its streams (ffmpeg keeps Ogg comments on the stream)."""
    out = json.loads(_run("ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)))
    tags = dict(out["format"].get("tags", {}))
    for stream in out["streams"]:
        tags.update({f"stream {stream['index']}: {k}": v for k, v in stream.get("tags", {}).items()})
    return tags


def expected_permissions(assertion: Assertion) -> dict[Purpose, Permission]:
    return dict(assertion.permissions)


# --- recognising the formats ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_format_recognised_and_untagged_file_reads_clean(originals: dict[str, Path], fmt: str) -> None:
    report = rightsmeta.read(originals[fmt])
    assert report.format == fmt
    assert report.errors == []
    assert report.carriers == []  # title/artist/cover are not rights signals
    found = detect(originals[fmt].read_bytes()[:64])
    assert found is not None and found[0].name == "audio"  # the audio family (loaded lazily)


def test_image_and_video_brands_do_not_overlap() -> None:
    def ftyp(major: bytes, *compat: bytes) -> bytes:
        body = major + b"\x00\x00\x00\x00" + b"".join(compat)
        return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00" * 32

    for head, fmt in (
        (ftyp(b"heic", b"mif1", b"heic"), "heic"),
        (ftyp(b"mif1", b"avif"), "avif"),
        (ftyp(b"avif", b"mif1", b"miaf"), "avif"),
    ):
        assert containers.sniff(head) == fmt and audio.sniff(head) is None
    for head, fmt in (
        (ftyp(b"isom", b"isom", b"avc1"), "mp4"),
        (ftyp(b"M4A ", b"M4A ", b"isom"), "m4a"),
        (ftyp(b"qt  ", b"qt  "), "mov"),
        (ftyp(b"XYZW", b"mp42"), "mp4"),
    ):
        assert containers.sniff(head) is None and audio.sniff(head) == fmt
    assert audio.sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") is None
    assert audio.sniff(b"\xff\xd8\xff\xe0") is None  # JPEG is no MPEG frame sync


# --- the essence and everything else is kept ---------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_decoded_audio_identical(ffmpeg: str, originals: dict[str, Path], tagged: dict[str, Path], fmt: str) -> None:
    assert tagged[fmt].read_bytes() != originals[fmt].read_bytes()
    assert decoded_md5(ffmpeg, tagged[fmt]) == decoded_md5(ffmpeg, originals[fmt])


@pytest.mark.parametrize("fmt", FORMATS)
def test_existing_tags_and_cover_kept(originals: dict[str, Path], tagged: dict[str, Path], fmt: str) -> None:
    before, after = probe_tags(originals[fmt]), probe_tags(tagged[fmt])
    assert before.items() <= after.items(), {k: (v, after.get(k)) for k, v in before.items() if after.get(k) != v}
    title = before.get("title") or before.get("stream 0: title")  # Ogg comments live on the stream
    assert title == ("Chunk Title" if fmt == "aiff" else "Sine")  # ffmpeg shows the AIFF ID3 chunk's
    assert cover(tagged[fmt], fmt) == cover(originals[fmt], fmt)
    if fmt == "aiff":
        assert str(mutagen.File(tagged[fmt]).tags["TIT2"]) == "Chunk Title"


@pytest.mark.parametrize("fmt", FORMATS)
def test_tag_then_read(tagged: dict[str, Path], fmt: str) -> None:
    report = rightsmeta.read(tagged[fmt])
    assert report.errors == [] and report.conflicts == ()
    assert report.permissions == expected_permissions(FULL)
    assert [c.name for c in report.carriers] == CARRIERS[fmt]
    rights = report.rights
    assert rights["copyright"] == "(c) 2026 Ada Lovelace"
    assert rights["web_statement"] == "https://ada.example/licence"
    assert rights["policy"] == "https://ada.example/policy"
    assert rights["holder"] == {"name": "Ada Lovelace", "contact": "https://ada.example"}
    assert rights["date"] and rights["work_id"]
    for carrier in report.carriers:  # every carrier on its own says the whole thing
        record = next(s for s in carrier.signals if s.vocabulary == "rightsmeta")
        assert dict(record.permissions) == expected_permissions(FULL)


@pytest.mark.parametrize("fmt", ("mp3", "flac", "mp4"))
def test_reading_a_map_leaves_its_position(tagged: dict[str, Path], fmt: str) -> None:
    # mmap.find searches from the current position: the C2PA carrier searches the same map next.
    with open(tagged[fmt], "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        buf.seek(0)
        assert [c.name for c in audio.read(buf, fmt)] == CARRIERS[fmt]
        assert buf.tell() == 0


def test_read_command_shows_the_carriers(tagged: dict[str, Path]) -> None:
    result = CliRunner().invoke(main, ["read", str(tagged["mp3"]), str(tagged["flac"]), str(tagged["m4a"])])
    assert result.exit_code == 0, result.output
    for line in (
        "carrier id3 (ID3v2.4 tag)", "TXXX:rightsmeta:AITraining = notAllowed", "carrier xmp (ID3v2.4 PRIV:XMP)",
        "carrier vorbis (FLAC VORBIS_COMMENT block)", "RIGHTSMETA_AITRAINING = notAllowed",
        "carrier mp4 (moov/udta/meta/ilst)", "----:org.rightsmeta:rightsmeta:AITraining = notAllowed",
        "carrier xmp (M4A uuid box BE7ACFCB-97A9-42E8-9C71-999491E3AFAC)",
    ):
        assert line in result.output


# --- tagging again --------------------------------------------------------------------------------


def _ours(path: Path, fmt: str) -> Counter[str]:
    """How often each tag occurs in the file (each value of a frame, comment or atom counted)."""
    found: Counter[str] = Counter()
    if fmt in ID3_FORMATS:
        tags = mutagen.File(path).tags
        for frame in tags.getall("TXXX"):
            found[f"TXXX:{frame.desc}"] += len(frame.text)
        for fid in ("TCOP", "WCOP"):
            found[fid] += sum(len(getattr(f, "text", [f])) for f in tags.getall(fid))
        found["PRIV:XMP"] = sum(1 for f in tags.getall("PRIV") if f.owner == "XMP")
    elif fmt in VORBIS_FORMATS:
        found.update(key.upper() for key, _ in mutagen.File(path).tags)
    else:
        for key, values in MP4(path).tags.items():
            found[key] += len(values)
        data = path.read_bytes()
        found["uuid:XMP"] = data.count(b"uuid" + audio.XMP_UUID)
    return found


@pytest.mark.parametrize("fmt", FORMATS)
def test_tagging_twice_replaces_without_duplicates(tmp_path: Path, tagged: dict[str, Path], fmt: str) -> None:
    path = copy(tagged[fmt], tmp_path)
    once = _ours(path, fmt)
    size = path.stat().st_size
    assert rightsmeta.tag(path, FULL).status == "tagged"
    assert _ours(path, fmt) == once
    assert set(once.values()) == {1}, once  # every frame, comment, atom and box exactly once
    assert len(once) >= 15  # the whole record is there (14 fields with FULL) beside the rights fields
    assert path.stat().st_size == size  # padding and in-place replacement: the file does not grow

    # A narrower statement removes what no longer applies (the constraint text, the TDM policy).
    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    report = rightsmeta.read(path)
    assert report.errors == [] and report.conflicts == ()
    assert report.permissions == expected_permissions(DENY_AI)
    after = _ours(path, fmt)
    assert not any("constraint" in k.lower() or "policy" in k.lower() for k in after), after
    assert report.rights["copyright"] == "(c) 2026 Ada Lovelace"  # not given again: the earlier notice stays


def test_id3v23_stays_v23(ffmpeg: str, tmp_path: Path) -> None:
    path = tmp_path / "v23.mp3"
    _run(ffmpeg, "-v", "error", *_SINE, "-c:a", "libmp3lame", "-id3v2_version", "3", "-metadata", "title=Old", str(path))
    assert ID3(path).version[:2] == (2, 3)
    assert rightsmeta.tag(path, FULL).status == "tagged"
    tags = ID3(path)
    assert tags.version[:2] == (2, 3) and str(tags["TIT2"]) == "Old"
    report = rightsmeta.read(path)
    assert report.errors == [] and report.permissions == expected_permissions(FULL)
    assert report.carriers[0].location == "ID3v2.3 tag"


def test_bare_mp3_gets_an_id3_tag(ffmpeg: str, tmp_path: Path) -> None:
    path = tmp_path / "bare.mp3"
    _run(ffmpeg, "-v", "error", *_SINE, "-c:a", "libmp3lame", "-id3v2_version", "0", "-write_xing", "0", str(path))
    assert path.read_bytes()[:2] in (b"\xff\xfb", b"\xff\xf3")  # starts with an MPEG frame
    decoded = decoded_md5(ffmpeg, path)
    assert rightsmeta.read(path).format == "mp3"
    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    assert path.read_bytes()[:4] == b"ID3\x04" and decoded_md5(ffmpeg, path) == decoded
    assert rightsmeta.read(path).permissions == expected_permissions(DENY_AI)


def test_flac_behind_an_id3_tag(ffmpeg: str, originals: dict[str, Path], tmp_path: Path) -> None:
    path = copy(originals["flac"], tmp_path)
    tags = ID3()
    tags.add(TIT2(encoding=3, text=["ID3 title before fLaC"]))
    tags.save(path, padding=lambda info: 4096)  # a tag longer than the 64 bytes the sniffer sees
    assert path.read_bytes()[:3] == b"ID3"
    result = rightsmeta.tag(path, DENY_AI)
    assert result.status == "tagged" and result.carriers == ["vorbis"]
    assert decoded_md5(ffmpeg, path) == decoded_md5(ffmpeg, originals["flac"])
    assert path.read_bytes()[:3] == b"ID3"  # the foreign tag is kept
    report = rightsmeta.read(path)
    assert report.errors == [] and report.permissions == expected_permissions(DENY_AI)


# --- every combination, in every format --------------------------------------------------------------

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=20).map(str.strip).filter(bool)


@st.composite
def assertions(draw: st.DrawFn) -> Assertion:
    perms = {}
    for purpose in Purpose:
        state = draw(st.sampled_from(list(State)))
        info = draw(texts) if state is State.CONSTRAINED and draw(st.booleans()) else None
        perms[purpose] = Permission(state, info)
    if all(p.state is State.UNSPECIFIED for p in perms.values()):
        perms[Purpose.SEARCH] = Permission(State.ALLOWED)
    holder = draw(st.none() | texts)
    return Assertion(
        permissions=perms,
        holder=rightsmeta.Holder(holder) if holder else None,
        copyright=draw(st.none() | texts),
        web_statement=draw(st.sampled_from([None, "https://ada.example/licence"])),
        policy=draw(st.sampled_from([None, "https://ada.example/policy"])),
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_every_combination(originals: dict[str, Path], fmt: str) -> None:
    base = originals[fmt].read_bytes()

    @settings(max_examples=12, deadline=None, database=None)
    @given(assertion=assertions())
    def round_trip(assertion: Assertion) -> None:
        report = rightsmeta.read(rightsmeta.tag_bytes(base, assertion))
        assert report.errors == [] and report.conflicts == ()
        assert report.permissions == expected_permissions(assertion)
        if assertion.copyright:
            assert report.rights["copyright"] == assertion.copyright
        if assertion.holder:
            assert report.rights["holder"]["name"] == assertion.holder.name

    round_trip()


# --- other tools' tags ----------------------------------------------------------------------------------


def test_id3_written_by_other_tools(originals: dict[str, Path], tmp_path: Path) -> None:
    path = copy(originals["mp3"], tmp_path)
    tags = ID3(path)
    tags.add(TCOP(encoding=3, text=["2025 Someone Else"]))
    tags.add(WCOP(url="https://someone.example/rights"))
    tags.add(TXXX(encoding=3, desc="MusicBrainz Album Id", text=["abc"]))
    tags.save(path)
    report = rightsmeta.read(path)
    assert report.errors == [] and report.has_signals is False
    assert report.rights == {"copyright": "2025 Someone Else", "web_statement": "https://someone.example/rights"}

    tags.add(TXXX(encoding=3, desc="rightsmeta:AITraining", text=["banana"]))
    tags.add(TXXX(encoding=3, desc="tdm-reservation", text=["2"]))
    tags.save(path)
    report = rightsmeta.read(path)
    assert any("rightsmeta:AITraining must be one of" in e for e in report.errors), report.errors
    assert any("tdm-reservation must be 0 or 1" in e for e in report.errors), report.errors
    assert report.may_use(Purpose.SEARCH) is False  # fails closed

    assert rightsmeta.tag(path, DENY_AI).status == "tagged"  # ours are replaced, the rest kept
    tags = ID3(path)
    assert str(tags["TXXX:MusicBrainz Album Id"]) == "abc"
    assert str(tags["TCOP"]) == "2025 Someone Else"
    assert rightsmeta.read(path).errors == []


def test_vorbis_and_mp4_written_by_other_tools(originals: dict[str, Path], tmp_path: Path) -> None:
    flac_path = copy(originals["flac"], tmp_path)
    flac = FLAC(flac_path)
    flac["COPYRIGHT"], flac["LICENSE"] = ["2025 Someone"], ["All rights reserved"]
    flac.save()
    report = rightsmeta.read(flac_path)
    assert report.errors == [] and report.has_signals is False
    assert report.rights == {"copyright": "2025 Someone", "usage_terms": "All rights reserved"}

    ogg_path = copy(originals["ogg"], tmp_path)
    ogg = mutagen.File(ogg_path)
    ogg["rightsmeta_aitraining"] = ["notallowed"]  # keys are case-insensitive; states are not
    ogg.save()
    assert any("must be one of" in e for e in rightsmeta.read(ogg_path).errors)

    m4a_path = copy(originals["m4a"], tmp_path)
    m4a = MP4(m4a_path)
    m4a["cprt"] = ["2025 Someone"]
    m4a.save()
    report = rightsmeta.read(m4a_path)
    assert report.errors == [] and report.rights == {"copyright": "2025 Someone"}


# --- interoperability ---------------------------------------------------------------------------------


def test_exiftool_sees_plus_data_mining(exiftool: str, tagged: dict[str, Path]) -> None:
    for fmt in ("mp3", "wav", "aiff", "m4a", "mp4", "mov"):
        seen = exiftool_json(exiftool, tagged[fmt], "-XMP-plus:DataMining", "-n")
        # --deny ai with search allowed and mining constrained: the broadest true PLUS code.
        assert seen.get("XMP-plus:DataMining") == "DMI-PROHIBITED-AIMLTRAINING", (fmt, seen)


@pytest.mark.parametrize("fmt", ("flac", "ogg", "opus", "m4a", "mp4", "mov"))
def test_ffprobe_shows_the_tags(tagged: dict[str, Path], fmt: str) -> None:
    tags = {k.removeprefix("stream 0: "): v for k, v in probe_tags(tagged[fmt]).items()}
    if fmt in VORBIS_FORMATS:
        expected = {"RIGHTSMETA_AITRAINING": "notAllowed", "TDM_RESERVATION": "1", "COPYRIGHT": "(c) 2026 Ada Lovelace",
                    "LICENSE": "https://ada.example/licence"}
    else:
        expected = {"rightsmeta:AITraining": "notAllowed", "tdm-reservation": "1", "copyright": "(c) 2026 Ada Lovelace"}
    assert expected.items() <= tags.items(), tags
    if fmt in ("flac", "m4a", "mp4", "mov"):  # ffmpeg keeps these on the format, Ogg comments on the stream
        shown = _run("ffprobe", "-v", "error", "-show_format", str(tagged[fmt]))
        assert "TAG:copyright=(c) 2026 Ada Lovelace" in shown or "TAG:COPYRIGHT=(c) 2026 Ada Lovelace" in shown


# --- broken files --------------------------------------------------------------------------------------


def _corrupt(fmt: str, data: bytes) -> bytes:
    """A declared length far beyond the file, in the place each format declares one."""
    out = bytearray(data)
    if fmt == "mp3":
        out[6:10] = b"\x7f\x7f\x7f\x7f"  # ID3v2 tag size
    elif fmt in ("wav", "aiff"):
        pos = data.index(b"data" if fmt == "wav" else b"SSND")
        out[pos + 4 : pos + 8] = b"\x00\xff\xff\x7f"
    elif fmt == "flac":
        out[5:8] = b"\xff\xff\xff"  # STREAMINFO length
    elif fmt in ("ogg", "opus"):
        pos = data.index(b"OggS", 4)
        out[pos : pos + 4] = b"OggX"
    else:
        pos = data.index(b"moov")
        out[pos - 4 : pos] = b"\x7f\xff\xff\xff"
    return bytes(out)


@pytest.mark.parametrize("damage", ("half", "last-bytes", "corrupt"))
@pytest.mark.parametrize("fmt", FORMATS)
def test_broken_file_clear_error_original_untouched(originals: dict[str, Path], tmp_path: Path, fmt: str, damage: str) -> None:
    whole = originals[fmt].read_bytes()
    data = {"half": whole[: len(whole) // 2], "last-bytes": whole[:-7], "corrupt": _corrupt(fmt, whole)}[damage]
    path = tmp_path / f"broken.{fmt}"
    path.write_bytes(data)
    report = rightsmeta.read(path)
    assert len(report.errors) == 1, report.errors
    assert report.errors[0].startswith(("truncated", "malformed", "Ogg: no page")), report.errors
    if damage != "corrupt":
        assert "truncated" in report.errors[0]
    assert report.may_use(Purpose.SEARCH) is False
    result = rightsmeta.tag(path, FULL)
    assert result.status == "failed" and result.reason == report.errors[0]
    assert path.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    with pytest.raises(MalformedFile):
        rightsmeta.tag_bytes(data, FULL)


def test_cli_reports_a_broken_file_without_traceback(originals: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "cut.flac"
    path.write_bytes(originals["flac"].read_bytes()[:-100])
    result = CliRunner().invoke(main, ["tag", str(path), "--deny", "ai"])
    assert result.exit_code == 1
    assert "truncated FLAC" in result.output and "Traceback" not in result.output


def test_id3_decompression_bomb_refused_quickly(originals: dict[str, Path]) -> None:
    payload = zlib.compress(b"\x00" * (64 * 1024 * 1024), 9)  # ~64 KB that inflates to 64 MB
    syncsafe = bytes((len(payload) >> s) & 0x7F for s in (21, 14, 7, 0))
    frame_data = syncsafe + payload  # data length indicator, then the compressed frame
    size = bytes((len(frame_data) >> s) & 0x7F for s in (21, 14, 7, 0))
    frame = b"TXXX" + size + b"\x00\x09" + frame_data  # flags: compressed + data length indicator
    tag_size = bytes((len(frame) >> s) & 0x7F for s in (21, 14, 7, 0))
    data = b"ID3\x04\x00\x00" + tag_size + frame + originals["mp3"].read_bytes()
    start = time.perf_counter()
    report = rightsmeta.read(data)
    assert time.perf_counter() - start < 2
    assert report.errors and "inflates to too many bytes" in report.errors[0]


def test_id3_bomb_without_data_length_flag_is_refused_before_any_reader() -> None:
    # v2.4 frame flagged compressed but not with a data-length indicator: mutagen still skips four
    # bytes before inflating, so the structural check must try the frame both ways.
    from rightsmeta.carriers import audio

    payload = b"JUNK" + zlib.compress(b"\x00" * (64 * 1024 * 1024), 9)
    size = bytes((len(payload) >> s) & 0x7F for s in (21, 14, 7, 0))
    body = b"TXXX" + size + b"\x00\x08" + payload  # flags: compressed only
    start = time.perf_counter()
    with pytest.raises(MalformedFile, match="inflates to too many bytes"):
        audio._check_id3_frames(body, 4, 0, "MP3")
    assert time.perf_counter() - start < 2


@pytest.mark.parametrize("tail", (b"\xff", b"\xff\xf8", b"\xff\xfb\x90\x00"))
def test_hostile_flac_and_mp3_tails_are_answered_quickly(tail: bytes) -> None:
    # Megabytes of would-be frame syncs: the tail checks look at a bounded window and count.
    streaminfo = b"\x10\x00\x10\x00" + bytes(3) + b"\xff\xff\xff" + b"\x0a\xc4\x40\xf0" + bytes(20)
    for head in (b"fLaC\x80\x00\x00\x22" + streaminfo, b"ID3\x04\x00\x00\x00\x00\x00\x00"):
        start = time.perf_counter()
        report = rightsmeta.read(head + tail * (4_000_000 // len(tail)))
        assert time.perf_counter() - start < 2
        assert all(e.startswith(("malformed", "MP3", "truncated")) for e in report.errors), report.errors


def test_deeply_nested_mp4_is_malformed_not_a_crash(originals: dict[str, Path]) -> None:
    inner = b""
    for _ in range(3000):
        inner = struct.pack(">I", 8 + len(inner)) + b"moov" + inner
    ftyp = originals["m4a"].read_bytes()[:28]
    report = rightsmeta.read(ftyp + inner)
    assert report.errors and report.errors[0].startswith("malformed M4A"), report.errors


def test_failure_before_rename_leaves_original(originals: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = copy(originals["m4a"], tmp_path)
    before = path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError(5, "simulated crash between write and rename")

    monkeypatch.setattr(os, "replace", crash)
    result = rightsmeta.tag(path, FULL)
    assert result.status == "failed" and "simulated crash" in (result.reason or "")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


# --- the MP4 XMP box writer -------------------------------------------------------------------------


def _top_boxes(data: bytes) -> list[bytes]:
    boxes, pos = [], 0
    while pos < len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        boxes.append(data[pos + 4 : pos + 8])
        pos += size
    assert pos == len(data)
    return boxes


def test_mp4_xmp_box_placement(ffmpeg: str, originals: dict[str, Path]) -> None:
    base = originals["mov"].read_bytes()
    once = audio.write_bmff_xmp(base, FULL.dated(), "MOV")
    assert _top_boxes(once)[-1] == b"uuid" and once[: len(base)] == base  # appended; nothing moved
    again = audio.write_bmff_xmp(once, DENY_AI.dated(), "MOV")
    assert len(_top_boxes(again)) == len(_top_boxes(once))  # the last box replaced, not added

    # A final mfra (found by readers from the end of the file) stays last.
    mfra = struct.pack(">I", 16) + b"mfra" + struct.pack(">I", 16) + b"mfro"
    with_mfra = audio.write_bmff_xmp(base + mfra, FULL.dated(), "MOV")
    assert _top_boxes(with_mfra)[-2:] == [b"uuid", b"mfra"]
    assert audio.write_bmff_xmp(with_mfra, DENY_AI.dated(), "MOV").endswith(mfra)

    # An XMP box that is not last (here between mdat and moov, padded as Adobe writes it) is
    # rewritten in place when the packet fits, else emptied into 'free' space of the same size
    # and the packet appended: either way no byte before moov moves.
    moov = base.index(b"moov") - 4
    padded = b'<?xpacket begin=""?><x:xmpmeta xmlns:x="adobe:ns:meta/"/>' + b" " * 4000 + b'<?xpacket end="w"?>'
    small = padded.replace(b" " * 4000, b"")
    for packet in (padded, small):
        box = struct.pack(">I", 24 + len(packet)) + b"uuid" + audio.XMP_UUID + packet
        early = base[:moov] + box + base[moov:]
        out = audio.write_bmff_xmp(early, FULL.dated(), "MOV")
        assert out[:moov] == base[:moov]
        if packet is padded:
            assert len(out) == len(early) and _top_boxes(out) == _top_boxes(early)
            in_place = out
        else:
            assert _top_boxes(out) == [*_top_boxes(base)[:-1], b"free", b"moov", b"uuid"]
            assert out[moov : moov + len(box)] == box[:4] + b"free" + bytes(len(box) - 8)
            moved = out
    # Two XMP boxes (one tool appended, another did too): one is kept, the other emptied.
    doubled = once + once[len(base) :]
    assert doubled.count(b"uuid" + audio.XMP_UUID) == 2
    single = audio.write_bmff_xmp(doubled, DENY_AI.dated(), "MOV")
    assert single.count(b"uuid" + audio.XMP_UUID) == 1 and single[: len(base)] == base

    for data in (in_place, moved):
        path = Path(originals["mov"].parent / "placement.mov")
        path.write_bytes(data)
        assert decoded_md5(ffmpeg, path) == decoded_md5(ffmpeg, originals["mov"])
        assert rightsmeta.read(path).permissions == expected_permissions(FULL)
        path.unlink()


# --- XMP written by other tools ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ("mov", "mp4"))
def test_xmp_written_by_exiftool_is_updated(ffmpeg: str, exiftool: str, originals: dict[str, Path], tmp_path: Path, fmt: str) -> None:
    # ExifTool puts XMP in moov/udta/XMP_ in MOV and in the uuid box in MP4.
    path = copy(originals[fmt], tmp_path)
    subprocess.run([exiftool, "-q", "-overwrite_original", "-XMP-plus:DataMining=Allowed", "-XMP-dc:Creator=Someone",
                    str(path)], check=True, capture_output=True)
    report = rightsmeta.read(path)
    assert report.errors == [] and report.permissions[Purpose.AI_TRAINING].state is State.ALLOWED
    assert report.carriers[0].location == (f"{fmt.upper()} moov/udta/XMP_ atom" if fmt == "mov" else
                                           f"{fmt.upper()} uuid box BE7ACFCB-97A9-42E8-9C71-999491E3AFAC")
    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    report = rightsmeta.read(path)
    assert report.errors == [] and report.conflicts == ()
    assert report.permissions == expected_permissions(DENY_AI)
    assert len([c for c in report.carriers if c.name == "xmp"]) == 1  # the one XMP packet, updated
    seen = exiftool_json(exiftool, path, "-XMP:all", "-n")
    assert seen["XMP-dc:Creator"] == "Someone"
    assert seen["XMP-plus:DataMining"] == "DMI-PROHIBITED-AIMLTRAINING"
    assert decoded_md5(ffmpeg, path) == decoded_md5(ffmpeg, originals[fmt])


def test_wav_pmx_chunk_gets_the_same_packet(ffmpeg: str, originals: dict[str, Path], tmp_path: Path) -> None:
    packet = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
              b'<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
              b'xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/" plus:DataMining="http://ns.useplus.org/ldf/vocab/DMI-ALLOWED">'
              b'<dc:creator><rdf:Seq><rdf:li>Someone</rdf:li></rdf:Seq></dc:creator>'
              b'</rdf:Description></rdf:RDF></x:xmpmeta>')
    data = originals["wav"].read_bytes()
    chunk = b"_PMX" + struct.pack("<I", len(packet)) + packet + b"\x00" * (len(packet) & 1)
    data = data[:4] + struct.pack("<I", len(data) - 8 + len(chunk)) + data[8:] + chunk
    path = tmp_path / "pmx.wav"
    path.write_bytes(data)
    assert [c.location for c in rightsmeta.read(path).carriers] == ["RIFF _PMX chunk"]
    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    report = rightsmeta.read(path)
    assert report.errors == [] and report.conflicts == ()
    assert [c.location for c in report.carriers] == [
        "ID3v2.4 in the RIFF 'id3 ' chunk", "ID3v2.4 PRIV:XMP", "RIFF _PMX chunk"]
    assert report.permissions == expected_permissions(DENY_AI)
    assert b"<rdf:li>Someone</rdf:li>" in path.read_bytes()
    assert decoded_md5(ffmpeg, path) == decoded_md5(ffmpeg, originals["wav"])


@pytest.mark.parametrize("kind", ("fragmented", "video-only"))
def test_fragmented_and_video_only_mp4(ffmpeg: str, tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.mp4"
    if kind == "fragmented":
        _run(ffmpeg, "-v", "error", *_SINE, "-c:a", "aac", "-movflags", "frag_keyframe+empty_moov", str(path))
    else:
        _run(ffmpeg, "-v", "error", *_VIDEO, str(path))
    before = path.read_bytes()
    stream = "0:a" if kind == "fragmented" else "0:v"
    decoded = _run(ffmpeg, "-v", "error", "-i", str(path), "-map", stream, "-f", "md5", "-")
    assert rightsmeta.tag(path, FULL).status == "tagged"
    assert path.read_bytes() != before
    assert _run(ffmpeg, "-v", "error", "-i", str(path), "-map", stream, "-f", "md5", "-") == decoded
    report = rightsmeta.read(path)
    assert report.errors == [] and report.permissions == expected_permissions(FULL)


# --- one run over a mixed folder ---------------------------------------------------------------------


def test_mixed_folder_in_one_run(originals: dict[str, Path], tmp_path: Path) -> None:
    write_image(tmp_path, "jpeg", "photo")
    for fmt in ("mp3", "wav", "flac", "opus", "mp4"):
        copy(originals[fmt], tmp_path, f"track.{fmt}")
    (tmp_path / "notes.txt").write_text("not media")
    runner = CliRunner()
    result = runner.invoke(main, ["tag", "-r", str(tmp_path), "--deny", "ai", "--copyright", "(c) Ada"])
    assert result.exit_code == 0, result.output
    assert "6 tagged, 1 skipped, 0 failed" in result.stderr
    result = runner.invoke(main, ["read", "-r", str(tmp_path), "--json"])
    reports = {Path(r["path"]).name: r for r in json.loads(result.stdout)}
    assert reports["photo.jpg"]["format"] == "jpeg" and reports["track.opus"]["format"] == "opus"
    for name, report in reports.items():
        if name != "notes.txt":
            assert report["errors"] == [] and report["permissions"]["ai-training"] == "notAllowed", name
            assert report["rights"]["copyright"] == "(c) Ada"


@pytest.mark.parametrize("fmt", ["wav", "aiff"])
def test_container_copyright_is_read_beside_the_tags(tmp_path: Path, ffmpeg: str, exiftool: str, fmt: str) -> None:
    # ffmpeg (like Windows and ExifTool) keeps a WAV's copyright in LIST/INFO ICOP and an AIFF's
    # in its '(c) ' chunk, not in ID3.
    path = tmp_path / f"c.{fmt}"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", "-metadata",
                    "copyright=(c) 2026 Ada", str(path)], check=True)
    group = "RIFF" if fmt == "wav" else "AIFF"
    assert exiftool_json(exiftool, path, "-Copyright")[f"{group}:Copyright"] == "(c) 2026 Ada"
    report = rightsmeta.read(path)
    assert report.errors == [] and report.rights["copyright"] == "(c) 2026 Ada"
    assert [c.name for c in report.carriers] == [f"{fmt}-copyright"]
    assert verify(path).status == "untagged"  # a copyright line is no AI signal
    assert rightsmeta.tag(path, Assertion.build(deny=["ai"])).status == "tagged"
    tagged = rightsmeta.read(path)
    assert tagged.rights["copyright"] == "(c) 2026 Ada" and f"{fmt}-copyright" in [c.name for c in tagged.carriers]
    assert verify(path).status == "intact"
    # UTF-8, as ffmpeg writes it; a cut-off sub-chunk says nothing rather than garbage.
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=duration=1", "-metadata",
                    "copyright=(c) Zoë", str(path)], check=True)
    assert rightsmeta.read(path).rights["copyright"] == "(c) Zoë"
    if fmt == "wav":
        data = bytearray(path.read_bytes())
        icop = data.index(b"ICOP")
        data[icop + 4 : icop + 8] = (1 << 30).to_bytes(4, "little")
        report = rightsmeta.read(bytes(data))
        assert report.errors == [] and "copyright" not in report.rights
