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
import sys
import zlib
from pathlib import Path

import iscc_core
import pytest

from rightsmeta import fingerprint, imagedecode
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


# --- 11.5 / 11.6: giving up is "unreadable", never "untagged" ------------------------------------


def _png16(path: Path, width: int, height: int, *, noise: bool = False) -> Path:
    """A 16-bit grey PNG written row by row: small on disk, ``width x height x 2`` bytes decoded."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    comp = zlib.compressobj(6)
    parts = []
    for y in range(height):
        value = (y * 37) % 65536 if noise else 0x1234
        parts.append(comp.compress(b"\0" + struct.pack(">H", value) * width))
    parts.append(comp.flush())
    header = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))
    return path


@pytest.fixture()
def empty_ledger(tmp_path: Path) -> str:
    from rightsmeta.ledger import Ledger

    path = tmp_path / "ledger.sqlite3"
    Ledger.open(path).close()
    return str(path)


def test_essence_lets_the_time_limit_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The alarm fires inside a decoder: whatever the decoder catches, the limit must reach verify.
    from rightsmeta.errors import TimeLimit

    def slow(*args: object) -> fingerprint.Essence:
        raise TimeLimit

    monkeypatch.setattr(fingerprint, "_image", slow)
    with pytest.raises(TimeLimit):
        essence(b"\x89PNG....", "png")


def test_timeout_while_fingerprinting_is_unreadable(tmp_path: Path, empty_ledger: str) -> None:
    from rightsmeta.verify import verify_many

    # Reading its metadata takes milliseconds; decoding 48 million pixels takes seconds.
    big = _png16(tmp_path / "big.png", 8000, 6000)
    [row] = verify_many([str(big)], ledger_path=empty_ledger, jobs=1, seconds=0.3)
    assert row["status"] == "unreadable", row
    assert row["reasons"] == ["gave up after 0.3 s"]


def test_image_over_the_decode_budget_is_unreadable_with_one_job(
    tmp_path: Path, empty_ledger: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rightsmeta.verify import verify_many

    monkeypatch.setattr(imagedecode, "MAX_DECODE_BYTES", 64 * 1024**2)
    big = _png16(tmp_path / "big.png", 4000, 3000)  # 12 M pixels x (2 + 4 + 1 + 1) bytes = 91 MiB
    [row] = verify_many([str(big)], ledger_path=empty_ledger, jobs=1, seconds=0)
    assert row["status"] == "unreadable", row
    assert "needs about 91 MiB, more than the 64 MiB memory bound" in row["reasons"][0]
    small = _png16(tmp_path / "small.png", 400, 300, noise=True)
    [row] = verify_many([str(small)], ledger_path=empty_ledger, jobs=1, seconds=0)
    assert row["status"] == "untagged", row


def test_image_over_the_worker_memory_bound_is_unreadable(tmp_path: Path, empty_ledger: str) -> None:
    # Worker processes run under an address-space limit; the budget follows it, and a decode
    # beyond it is refused before it starts instead of ending in a MemoryError (once swallowed).
    from rightsmeta.verify import verify_many

    big = _png16(tmp_path / "big.png", 7000, 7000)  # 49 M pixels x 8 bytes = 374 MiB decoded
    small = _png16(tmp_path / "small.png", 400, 300, noise=True)
    rows = list(verify_many([str(big), str(small)], ledger_path=empty_ledger, jobs=2, seconds=0, memory=640 * 1024**2))
    assert [r["status"] for r in rows] == ["unreadable", "untagged"], rows
    assert "memory bound" in rows[0]["reasons"][0]


def test_undecodable_content_is_not_untagged(tmp_path: Path, empty_ledger: str) -> None:
    # A PNG whose header reads but whose pixels do not: never compared, so never "no match".
    from rightsmeta.verify import verify_many

    good = bytearray(_png16(tmp_path / "ok.png", 64, 64, noise=True).read_bytes())
    at = good.index(b"IDAT")
    length = struct.unpack(">I", good[at - 4 : at])[0]
    good[at + 8 : at + 24] = b"\xff" * 16  # the zlib stream broken, the chunk's CRC made right again
    good[at + 4 + length : at + 8 + length] = struct.pack(">I", zlib.crc32(bytes(good[at : at + 4 + length])))
    bad = tmp_path / "bad.png"
    bad.write_bytes(bytes(good))
    [row] = verify_many([str(bad)], ledger_path=empty_ledger, jobs=1, seconds=0)
    assert row["status"] == "unreadable", row
    assert row["reasons"][0].startswith("content not matched against the ledger: "), row


def test_16_bit_decode_stays_under_the_memory_bound(tmp_path: Path) -> None:
    """The issue's file: 9400 x 9400 16-bit grey (172 KB). Decoded once took 2.3 GB RSS; now it
    is fingerprinted under a 1.5 GiB address-space limit, with the same hash as before."""
    big = _png16(tmp_path / "big.png", 9400, 9400)
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1536 * 1024**2, resource.RLIM_INFINITY))\n"
        "from rightsmeta.fingerprint import essence\n"
        "found = essence(open(sys.argv[1], 'rb').read(), 'png', legacy=True)\n"
        "print(found.legacy_hash, found.reason, found.hash)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-c", code, str(big)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    # The pixel hash (v1) is the older form, asked for; the recorded one is of the coded data.
    assert done.stdout.split()[0] == "c7d3a8d830c6332961a58959f6126a91b6c98e474ccc8a836d114fe97d765cc4"
    assert done.stdout.split()[-1].startswith("v2:")


def test_the_soft_binding_of_damaged_content_is_none_never_an_exception() -> None:
    # fingerprint() promises a code or None: a PDF whose objects are cut short raised pypdf's
    # PdfStreamError into its caller (the service's byContent answered 500).
    from tests.samples import seeded_mutants
    from tests.test_documents import pdf_bytes

    good = pdf_bytes(tuple(f"Line {n} of a page long enough to be fingerprinted, about rights and AI." for n in range(6)))
    assert fingerprint.fingerprint(good, "pdf") is not None
    assert fingerprint.fingerprint(b"%PDF-1.4\n" + bytes(range(200)), "pdf") is None
    codes = [fingerprint.fingerprint(damaged, "pdf") for _, damaged in seeded_mutants(good, 60, b"9" * 12)]
    assert all(code is None or code.startswith("ISCC:") for code in codes)
