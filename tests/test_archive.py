"""A creator's archive as other tools wrote it: files whose structure or metadata came from
cameras, editors, encoders and packagers, tagged and then checked with those peers."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

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
