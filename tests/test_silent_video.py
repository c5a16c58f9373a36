"""A video without an audio track is read, recorded by the hash of its video packets and verified:
it has nothing to fingerprint by ear, which is not the same as not being readable."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import rightsmeta
from rightsmeta import Assertion, fingerprint
from rightsmeta.ledger import Ledger
from rightsmeta.verify import verify

DENY = Assertion.build(deny=["ai"], holder="Ada")


def silent_video(path: Path, ffmpeg: str, source: str = "testsrc") -> Path:
    subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"{source}=size=160x120:rate=10",
                    "-t", "1", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


@pytest.mark.parametrize("suffix", ["mp4", "mov"])
def test_a_stripped_silent_video_is_recognised(tmp_path: Path, ffmpeg: str, exiftool: str, suffix: str) -> None:
    work = silent_video(tmp_path / f"work.{suffix}", ffmpeg)
    with Ledger.open(tmp_path / "ledger.sqlite3") as ledger:
        result = rightsmeta.tag(work, DENY, ledger=ledger)
        assert result.status == "tagged"
        assert not [n for n in result.notes if "without a fingerprint" in n]
        copy = tmp_path / f"copy.{suffix}"
        shutil.copy(work, copy)
        subprocess.run([exiftool, "-q", "-all=", "-overwrite_original", str(copy)], check=True)
        verdict = verify(copy, ledger=ledger)
        assert verdict.status == "stripped", verdict.reasons
        assert verdict.match is not None and verdict.match.work.id == result.assertion.work_id  # type: ignore[union-attr]

        other = verify(silent_video(tmp_path / f"other.{suffix}", ffmpeg, "testsrc2"), ledger=ledger)
        assert other.status == "untagged", other.reasons
        assert "only an exact copy" in other.reasons[-1] and "no audio track" in other.reasons[-1]


def test_a_video_with_sound_is_still_heard(tmp_path: Path, ffmpeg: str) -> None:
    path = tmp_path / "sound.mp4"
    subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
                    "-f", "lavfi", "-i", "sine=frequency=440", "-t", "2", "-pix_fmt", "yuv420p", "-shortest", str(path)],
                   check=True)
    found = fingerprint.essence(path.read_bytes(), "mp4")
    assert found.hash is not None and not found.hash.startswith(fingerprint.HASH_V2)  # the samples' hash
    assert found.perceptual is not None and found.reason != fingerprint.SILENT_VIDEO

