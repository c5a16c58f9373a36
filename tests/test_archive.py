"""A creator's archive as other tools wrote it: files whose structure or metadata came from
cameras, editors, encoders and packagers, tagged and then checked with those peers."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest
from samples import exiftool_json

import rightsmeta
from rightsmeta import Assertion

DENY_AI = Assertion.build(deny=["ai"], copyright="(c) 2026 Ada")


def _run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def _tfra_offsets(data: bytes) -> list[int]:
    """The moof offsets every 'tfra' entry of the file's final 'mfra' box holds."""
    mfra = data.rindex(b"mfra") - 4
    offsets, pos = [], mfra + 8
    while pos < mfra + int.from_bytes(data[mfra : mfra + 4], "big"):
        size, btype = struct.unpack_from(">I4s", data, pos)
        if btype == b"tfra":
            version, sizes, count = data[pos + 8], data[pos + 19], int.from_bytes(data[pos + 20 : pos + 24], "big")
            width = 8 if version == 1 else 4
            entry = 2 * width + (sizes >> 4 & 3) + (sizes >> 2 & 3) + (sizes & 3) + 3
            offsets += [int.from_bytes(data[at + width : at + 2 * width], "big")
                        for at in range(pos + 24, pos + 24 + count * entry, entry)]
        pos += size
    return offsets


def test_fragmented_mp4_keeps_its_random_access_index(ffmpeg: str, tmp_path: Path) -> None:
    # Phones and streaming tools write fragmented MP4 with an 'mfra' index of absolute moof
    # offsets. Tagging grows 'moov' (mutagen's ilst), so every moof after it moves: an index
    # left pointing at the old places made ffmpeg's seek through it return no frame at all.
    path = tmp_path / "phone.mp4"
    _run(ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25:duration=4",
         "-f", "lavfi", "-i", "sine=duration=4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
         "-c:a", "aac", "-movflags", "frag_keyframe+empty_moov+default_base_moof", str(path))
    assert len(_tfra_offsets(path.read_bytes())) >= 4

    def seek(file: Path) -> str:
        return _run(ffmpeg, "-v", "error", "-use_mfra_for", "pts", "-ss", "2.5", "-i", str(file),
                    "-map", "0:v", "-frames:v", "5", "-f", "md5", "-")

    before = seek(path)
    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    data = path.read_bytes()
    assert all(data[at + 4 : at + 8] == b"moof" for at in _tfra_offsets(data))
    assert seek(path) == before
    assert rightsmeta.read(path).errors == []


def _ffprobe_tag(ffmpeg: str, path: Path, name: str) -> str:
    ffprobe = str(Path(ffmpeg).with_name("ffprobe"))
    return _run(ffprobe, "-v", "error", "-show_entries", f"format_tags={name}", "-of", "default=nw=1:nk=1", str(path)).strip()


@pytest.mark.parametrize("fmt", ["wav", "aiff"])
def test_container_copyright_says_the_new_notice(ffmpeg: str, exiftool: str, tmp_path: Path, fmt: str) -> None:
    # ffmpeg, Windows and ExifTool keep a WAV's copyright in LIST/INFO 'ICOP' (here beside a
    # broadcast 'bext' chunk) and an AIFF's in its '(c) ' chunk. Tagged with a new notice, the
    # file used to say the old one there and the new one in ID3: ffprobe showed the old one.
    path = tmp_path / f"take.{fmt}"
    _run(ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", "-metadata", "copyright=(c) 1999 Old Label",
         "-metadata", "title=Take 1", *(["-write_bext", "1"] if fmt == "wav" else []), str(path))
    untouched = tmp_path / f"untouched.{fmt}"
    untouched.write_bytes(path.read_bytes())
    decoded = _run(ffmpeg, "-v", "error", "-i", str(path), "-f", "md5", "-")

    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    assert _ffprobe_tag(ffmpeg, path, "copyright") == "(c) 2026 Ada"
    group = "RIFF" if fmt == "wav" else "AIFF"
    found = exiftool_json(exiftool, path, f"-{group}:Copyright", "-Title", "-Warning")
    assert found[f"{group}:Copyright"] == "(c) 2026 Ada" and "Warning" not in str(found)
    if fmt == "wav":
        assert found["RIFF:Title"] == "Take 1"
    assert _run(ffmpeg, "-v", "error", "-i", str(path), "-f", "md5", "-") == decoded
    report = rightsmeta.read(path)
    assert report.errors == [] and report.rights["copyright"] == "(c) 2026 Ada"
    assert {c.rights.get("copyright") for c in report.carriers} <= {"(c) 2026 Ada", None}

    # Without a notice of its own, the statement leaves the file's notice as it was.
    assert rightsmeta.tag(untouched, Assertion.build(deny=["ai"])).status == "tagged"
    assert _ffprobe_tag(ffmpeg, untouched, "copyright") == "(c) 1999 Old Label"
