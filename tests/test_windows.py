"""verify reads large TIFFs, WAVs, AIFFs, M4As and MOVs only where their structure and metadata are
(carriers/windows.py). Whatever a file holds, damaged or not, the verdict must be the one a read
of every byte gives: the windows change the cost, never the answer.
"""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from rightsmeta import Assertion, api, keys
from rightsmeta.carriers import windows
from rightsmeta.verify import verify

DENY_AI = Assertion.build(deny=["ai"])
MUTANTS = 120


def _tiff(folder: Path, exiftool: str) -> Path:
    """An uncompressed 360 KB TIFF with Exif values and XMP written by ExifTool."""
    path = folder / "photo.tif"
    image = Image.effect_noise((400, 300), 40).convert("RGB")
    image.save(path, "TIFF", dpi=(300, 300), description="a photo")
    subprocess.run([exiftool, "-q", "-overwrite_original", "-XMP-plus:DataMining#=DMI-PROHIBITED-AIMLTRAINING",
                    "-Artist=Someone", "-ExifIFD:DateTimeOriginal=2024:01:02 03:04:05", str(path)], check=True)
    return path


# What ffmpeg makes each kind from: 350 KB of stereo sound (WAV, AIFF), 20 s of AAC (M4A, 'moov'
# after 'mdat'), 6 s of video with sound and 'moov' first (MOV).
_MAKE = {
    "wav": ["-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-ac", "2"],
    "aiff": ["-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-ac", "2"],
    "m4a": ["-f", "lavfi", "-i", "sine=frequency=440:duration=20", "-c:a", "aac", "-b:a", "128k"],
    "mov": ["-f", "lavfi", "-i", "testsrc=duration=6:size=320x240:rate=25", "-f", "lavfi", "-i",
            "sine=frequency=440:duration=6", "-c:v", "mpeg4", "-q:v", "2", "-c:a", "aac", "-movflags", "+faststart"],
}


def _audio(folder: Path, ffmpeg: str, ext: str) -> Path:
    """A sound or movie file made by ffmpeg, tagged by rightsmeta (ID3 chunk, copyright, XMP)."""
    path = folder / f"tone.{ext}"
    subprocess.run([ffmpeg, "-v", "error", *_MAKE[ext], "-metadata", "title=Tone", str(path)], check=True)
    result = api.tag(str(path), DENY_AI)
    assert result.status == "tagged", result
    return path


def _windows(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every stretch the windowed read takes from the file (none when it reads it whole)."""
    taken: list[tuple[int, int]] = []
    fill = windows._File.fill

    def record(self: windows._File, start: int, stop: int) -> None:
        taken.append((start, stop))
        fill(self, start, stop)

    with monkeypatch.context() as patch:
        patch.setattr(windows._File, "fill", record)
        fd = os.open(path, os.O_RDONLY)
        try:
            used = windows.sparse(fd, os.fstat(fd).st_size) is not None
        finally:
            os.close(fd)
    return taken if used else []


def _same(path: Path) -> None:
    data = path.read_bytes()
    windowed = verify(str(path)).to_json()
    whole = verify(data).to_json()
    whole["path"] = windowed["path"]
    assert windowed == whole, path


@pytest.mark.parametrize("kind", ["tiff", "wav", "aiff", "m4a", "mov"])
def test_windowed_verdicts_equal_whole_reads_on_damaged_files(
    kind: str, exiftool: str, ffmpeg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = _tiff(tmp_path, exiftool) if kind == "tiff" else _audio(tmp_path, ffmpeg, kind)
    data = original.read_bytes()
    # The first read takes only the sniffing bytes here, so that every byte a reader uses must come
    # from a window (in use, HEAD also takes the structure at the start of a file in one read).
    monkeypatch.setattr(windows, "HEAD", 64)
    taken = _windows(original, monkeypatch)
    assert taken, "the original must be read in windows, or this tests nothing"
    assert sum(b - a for a, b in taken) < len(data) // 4
    assert verify(str(original)).status == "intact"
    _same(original)
    rng = random.Random(f"rightsmeta-windows-{kind}")
    # Damage mostly where the windows are (structure and metadata, and so every length and offset
    # a damaged file could misstate), sometimes anywhere (the sound or pixels).
    hot = sorted({i for a, b in taken for i in range(max(0, a - 8), min(len(data), b + 8))})
    mutant = tmp_path / f"mutant.{original.suffix[1:]}"
    for i in range(MUTANTS):
        at = rng.choice(hot) if i % 3 else rng.randrange(len(data))
        how = i % 4
        if how == 0:
            changed = data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1:]
        elif how == 1:
            changed = data[:at]
        elif how == 2:
            changed = data[:at] + (0x7FFFFFF0 + rng.randrange(16)).to_bytes(4, rng.choice(["big", "little"])) + data[at + 4:]
        else:
            piece = data[at:at + rng.randrange(1, 64)]
            changed = data[:at] + piece + data[at:]
        mutant.write_bytes(changed)
        _same(mutant)


@pytest.mark.parametrize("kind", ["tiff", "wav", "m4a"])
def test_a_signed_file_is_read_whole(kind: str, exiftool: str, ffmpeg: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A C2PA manifest hashes every byte: zeros in place of the pixels or sound would make it "tampered"."""
    path = _tiff(tmp_path, exiftool) if kind == "tiff" else _audio(tmp_path, ffmpeg, kind)
    result = api.tag(str(path), DENY_AI, identity=keys.make_identity("Windows Test"))
    assert result.status == "tagged" and "c2pa" in result.carriers, result
    assert _windows(path, monkeypatch) == []
    assert verify(str(path)).status == "intact"
