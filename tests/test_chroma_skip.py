"""Audio too short for Chromaprint features to be recorded is not given to fpcalc (fingerprint.CHROMA_MIN_SECONDS).

What fpcalc itself gives for such audio is checked here, at the sample rates and in the formats
the skip applies to: too few features, so ``chroma_features`` says None, which the essence now
says without starting fpcalc. Longer audio still gets fpcalc's features.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
from material import music

from rightsmeta import fingerprint

pytestmark = pytest.mark.skipif(not shutil.which("fpcalc") or not shutil.which("ffmpeg"), reason="needs fpcalc and ffmpeg")


def encoded(pcm: np.ndarray, rate: int, fmt: str, tmp_path: Path) -> bytes:
    buf = io.BytesIO()
    if fmt in ("wav", "flac"):
        soundfile.write(buf, pcm, rate, format=fmt.upper(), subtype="PCM_16")
        return buf.getvalue()
    src, out = tmp_path / "in.wav", tmp_path / "out.mp3"
    soundfile.write(src, pcm, rate, subtype="PCM_16")
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), "-b:a", "128k", str(out)], check=True)
    return out.read_bytes()


class CountedFpcalc:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.runs = 0
        real = fingerprint._fpcalc

        def counted(data: bytes, fmt: str, seconds: int) -> list[int] | None:
            self.runs += 1
            return real(data, fmt, seconds)

        monkeypatch.setattr(fingerprint, "_fpcalc", counted)


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3"])
def test_short_audio_gets_what_fpcalc_would_give(fmt: str, rate: int, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Just under the bound: fpcalc gives features, fewer than are recorded.
    data = encoded(music(3, fingerprint.CHROMA_MIN_SECONDS - 0.05, rate), rate, fmt, tmp_path)
    features = fingerprint._fpcalc(data, fmt, fingerprint.CHROMA_SECONDS)
    assert features and len(features) < fingerprint.CHROMA_MIN_FEATURES
    assert fingerprint.chroma_features(data, fmt) is None
    fpcalc = CountedFpcalc(monkeypatch)
    found = fingerprint.essence(data, fmt, probes=False)
    assert found.hash is not None and found.chroma is None
    assert fpcalc.runs == 0


@pytest.mark.parametrize("fmt", ["wav", "mp3"])
def test_longer_audio_still_gets_its_features(fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = encoded(music(4, 9.0, 44100), 44100, fmt, tmp_path)
    expected = fingerprint.chroma_features(data, fmt)
    assert expected is not None and len(expected) >= fingerprint.CHROMA_MIN_FEATURES
    fpcalc = CountedFpcalc(monkeypatch)
    assert fingerprint.essence(data, fmt, probes=False).chroma == expected
    assert fpcalc.runs == 1


def m4a(tmp_path: Path, *seconds: float) -> bytes:
    """An M4A with one AAC track per duration given."""
    inputs: list[str] = []
    for index, length in enumerate(seconds):
        src = tmp_path / f"in{index}.wav"
        soundfile.write(src, music(5 + index, length, 44100), 44100, subtype="PCM_16")
        inputs += ["-i", str(src)]
    maps = [arg for index in range(len(seconds)) for arg in ("-map", str(index))]
    out = tmp_path / "out.m4a"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *inputs, *maps, "-c:a", "aac", str(out)], check=True)
    return out.read_bytes()


def test_an_m4a_with_one_audio_track_is_skipped_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = m4a(tmp_path, fingerprint.CHROMA_MIN_SECONDS - 0.05)
    features = fingerprint._fpcalc(data, "m4a", fingerprint.CHROMA_SECONDS)
    assert features and len(features) < fingerprint.CHROMA_MIN_FEATURES
    fpcalc = CountedFpcalc(monkeypatch)
    found = fingerprint.essence(data, "m4a", probes=False)
    assert found.hash is not None and found.chroma is None
    assert fpcalc.runs == 0


def test_an_m4a_with_two_audio_tracks_is_still_given_to_fpcalc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = m4a(tmp_path, 2.0, 12.0)
    fpcalc = CountedFpcalc(monkeypatch)
    fingerprint.essence(data, "m4a", probes=False)
    assert fpcalc.runs == 1  # fpcalc may read the long track, ffmpeg here decodes the first
