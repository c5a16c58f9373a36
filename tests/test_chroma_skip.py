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


def test_m4a_is_still_given_to_fpcalc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, out = tmp_path / "in.wav", tmp_path / "out.m4a"
    soundfile.write(src, music(5, 2.0, 44100), 44100, subtype="PCM_16")
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), "-c:a", "aac", str(out)], check=True)
    fpcalc = CountedFpcalc(monkeypatch)
    assert fingerprint.essence(out.read_bytes(), "m4a", probes=False).chroma is None
    assert fpcalc.runs == 1  # fpcalc may pick another track than ffmpeg's first: not skipped
