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



def test_a_silent_video_is_hashed_in_one_ffmpeg_run(tmp_path: Path, ffmpeg: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A failed audio run came first (~65 ms of ffmpeg), then the hash. The hash is the one recorded
    # before: the video packets' SHA-256 (ffmpeg's hash muxer), under the v1 prefix.
    import hashlib

    path = silent_video(tmp_path / "silent.mp4", ffmpeg)
    packets = subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(path), "-map", "0:v", "-c", "copy",
                              "-f", "hash", "-hash", "sha256", "-"], check=True, capture_output=True).stdout
    expected = fingerprint.HASH_V2 + hashlib.sha256(b"rightsmeta-video-packets-v1\0" + packets.strip()[len(b"SHA256="):]).hexdigest()
    runs: list[list[str]] = []
    real = subprocess.run

    def run(cmd: list[str], *args: object, **kwargs: object) -> object:
        runs.append(cmd)
        return real(cmd, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(subprocess, "run", run)
    found = fingerprint.essence(path.read_bytes(), "mp4")
    assert found.hash == expected and found.reason == fingerprint.SILENT_VIDEO
    assert len(runs) == 1, runs


def test_audio_ffmpeg_finds_without_a_sound_handler_is_still_heard(tmp_path: Path, ffmpeg: str) -> None:
    # The boxes name no sound track (its handler renamed), yet ffmpeg takes the mp4a track as
    # audio: it is decoded as audio, as before, not hashed as a silent video.
    path = tmp_path / "sound.mp4"
    subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
                    "-f", "lavfi", "-i", "sine=frequency=440", "-t", "2", "-pix_fmt", "yuv420p", "-shortest", str(path)],
                   check=True)
    data = path.read_bytes()
    assert data.count(b"hdlr\0\0\0\0\0\0\0\0soun") == 1
    renamed = data.replace(b"hdlr\0\0\0\0\0\0\0\0soun", b"hdlr\0\0\0\0\0\0\0\0hint")
    assert fingerprint._sound_tracks(renamed) == 0
    heard, as_made = fingerprint.essence(renamed, "mp4"), fingerprint.essence(data, "mp4")
    assert heard.reason != fingerprint.SILENT_VIDEO and heard.hash == as_made.hash
