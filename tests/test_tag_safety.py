"""The tag path never aborts a batch and never changes anything but metadata.

Every test here was run against the code with its fix removed and seen to fail (issue 10
items 2 and 6, issue 11 items 11-16).
"""

from __future__ import annotations

import fcntl
import io
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image, ImageCms
from samples import image_bytes, pixels

import rightsmeta
from rightsmeta import Assertion, api, fsio, keys, reading, stopping, tagging
from rightsmeta.cli import main

DENY_AI = Assertion.build(deny=["ai"])
MARK = b"rightsmeta-test-victim"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def identity() -> keys.Identity:
    return keys.make_identity("Test Creator")


def _jpeg(seed: int, *, victim: bool = False) -> bytes:
    img = Image.open(io.BytesIO(image_bytes("jpeg", size=(40, 32), seed=seed)))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90, comment=MARK if victim else b"ordinary")
    return out.getvalue()


def _batch(folder: Path) -> dict[str, bytes]:
    folder.mkdir(exist_ok=True)
    files = {"a.jpg": _jpeg(1), "b.jpg": _jpeg(2, victim=True), "c.jpg": _jpeg(3)}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def _victim(data: Any) -> bool:
    return MARK in bytes(data)


def _raise_for_victim(real: Callable[..., Any], exc: Exception) -> Callable[..., Any]:
    def wrapped(data: Any, *args: Any, **kwargs: Any) -> Any:
        if _victim(data):
            raise exc
        return real(data, *args, **kwargs)

    return wrapped


class _Family:
    """A real family whose ``write`` is replaced; everything else is the family's own."""

    def __init__(self, family: Any, write: Callable[..., tuple[bytes, list[str]]]) -> None:
        self._family, self.write = family, write

    def __getattr__(self, name: str) -> Any:
        return getattr(self._family, name)


def _patch_write(monkeypatch: pytest.MonkeyPatch, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    real_detect = reading.detect

    def detect(head: bytes, buf: Any = None) -> Any:
        found = real_detect(head, buf)
        if found is None:
            return None
        family, fmt = found
        return _Family(family, make(family.write)), fmt

    monkeypatch.setattr(reading, "detect", detect)


def _inject(stage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import rightsmeta.carriers.manifest as manifest
    import rightsmeta.contentcheck as contentcheck
    import rightsmeta.fingerprint as fingerprint
    from rightsmeta.ledger import Ledger

    if stage == "family write":
        _patch_write(monkeypatch, lambda real: _raise_for_victim(real, OverflowError("int too big to convert")))
    elif stage == "fingerprint":
        monkeypatch.setattr(fingerprint, "fingerprint", _raise_for_victim(fingerprint.fingerprint, OverflowError("int too big")))
    elif stage == "content check":
        bug = SyntaxError("decoder bug")
        monkeypatch.setattr(contentcheck, "_decoder_input", _raise_for_victim(contentcheck._decoder_input, bug))
    elif stage == "ledger essence":
        monkeypatch.setattr(fingerprint, "essence", _raise_for_victim(fingerprint.essence, MemoryError()))
    elif stage == "sign":
        monkeypatch.setattr(manifest, "sign", _raise_for_victim(manifest.sign, RuntimeError("PdfReadError-like failure")))
    elif stage == "ledger":
        real = Ledger.record_many

        def record_many(self: Ledger, works: list[Any]) -> int:  # tag records several works at once
            if any(work.path.endswith("b.jpg") for work in works):
                raise KeyError("ledger bug")
            return real(self, works)

        monkeypatch.setattr(Ledger, "record_many", record_many)


@pytest.mark.parametrize("stage", ["family write", "fingerprint", "content check", "sign", "ledger essence", "ledger"])
def test_an_unexpected_error_at_any_stage_fails_only_that_file(
    stage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, identity: keys.Identity
) -> None:
    keys.save_identity(identity, Path(os.environ["RIGHTSMETA_IDENTITY"]))
    files = _batch(tmp_path / "batch")
    _inject(stage, monkeypatch)
    ledger = tmp_path / "ledger.sqlite3"
    result = CliRunner().invoke(main, ["--debug", "tag", "-r", str(tmp_path / "batch"), "--deny", "ai", "--ledger", str(ledger)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    out = result.stdout + result.stderr
    for name in ("a.jpg", "c.jpg"):  # the files around the victim are tagged
        report = rightsmeta.read(tmp_path / "batch" / name)
        assert report.permissions[rightsmeta.Purpose.AI_TRAINING].state is rightsmeta.State.NOT_ALLOWED
        assert any(c.name == "c2pa" for c in report.carriers)
    victim = tmp_path / "batch" / "b.jpg"
    if stage == "ledger":  # already written when the ledger failed: tagged, with the reason in a note
        assert result.exit_code == 0
        assert "tagged, but not recorded in the ledger: internal error (KeyError" in out
        assert "summary: 3 tagged, 0 failed" in out
        assert rightsmeta.read(victim).permissions[rightsmeta.Purpose.AI_TRAINING].state is rightsmeta.State.NOT_ALLOWED
    else:
        assert result.exit_code == 1
        assert victim.read_bytes() == files["b.jpg"]
        assert "summary: 2 tagged, 1 failed" in out
        assert "internal error (" in out and "please report it" in out
        assert "Traceback (most recent call last)" in out  # --debug shows it
    assert not list((tmp_path / "batch").glob(".*rightsmeta-tmp"))


def test_internal_error_traceback_only_with_debug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _batch(tmp_path / "batch")
    _inject("family write", monkeypatch)
    result = CliRunner().invoke(main, ["tag", "-r", str(tmp_path / "batch"), "--deny", "ai", "--no-ledger"])
    assert result.exit_code == 1
    assert "failed  " in result.stdout and "internal error (OverflowError: int too big to convert)" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_library_tag_returns_a_result_for_an_internal_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _batch(tmp_path / "batch")
    _inject("family write", monkeypatch)
    results = [rightsmeta.tag(tmp_path / "batch" / name, DENY_AI) for name in files]
    assert [r.status for r in results] == ["tagged", "failed", "tagged"]
    assert results[1].reason and results[1].reason.startswith("internal error (OverflowError")


# --- promises no test held (issue 10.6) -----------------------------------------------------------


def test_fsync_file_before_rename_and_folder_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(_jpeg(4))
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        events.append(("replace", os.fspath(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    ours = [e for e in events if e[0] == "replace" or e[1].endswith(".rightsmeta-tmp") or e[1] == str(tmp_path)]
    assert len(ours) == 3, events
    (kind1, tmp), (kind2, renamed), (kind3, folder) = ours
    assert (kind1, kind2, kind3) == ("fsync", "replace", "fsync")
    assert tmp == renamed and Path(tmp).parent == tmp_path and Path(tmp).name.startswith(".photo.jpg.")
    assert folder == str(tmp_path)


def test_read_back_refuses_a_writer_that_writes_something_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "photo.jpg"
    original = _jpeg(5)
    path.write_bytes(original)
    allow = Assertion.build(allow=["ai"]).for_work()

    def lying(real: Callable[..., Any]) -> Callable[..., Any]:
        return lambda data, fmt, assertion, options: real(data, fmt, allow, options)

    _patch_write(monkeypatch, lying)
    result = rightsmeta.tag(path, DENY_AI)
    assert result.status == "failed"
    assert result.reason and "did not read back as written" in result.reason and "ai-training reads back differently" in result.reason
    assert path.read_bytes() == original


def _flip_scan_byte(jpeg: bytes) -> bytes:
    sos = jpeg.rindex(b"\xff\xda")
    header = struct.unpack(">H", jpeg[sos + 2 : sos + 4])[0]
    at = sos + 2 + header + (len(jpeg) - sos - 2 - header) // 2
    flipped = jpeg[at] ^ 0x10
    if flipped == 0xFF or jpeg[at - 1] == 0xFF:  # keep clear of markers and stuffing
        at += 3
        flipped = jpeg[at] ^ 0x10
    return jpeg[:at] + bytes([flipped]) + jpeg[at + 1 :]


def test_scan_data_changed_by_a_writer_is_refused_without_exiftool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIGHTSMETA_EXIFTOOL", str(tmp_path / "no-exiftool"))
    monkeypatch.setenv("PATH", "/nonexistent")  # no ExifTool, no ffmpeg: the check needs neither
    path = tmp_path / "photo.jpg"
    original = _jpeg(6)
    path.write_bytes(original)

    def corrupting(real: Callable[..., Any]) -> Callable[..., Any]:
        def write(data: bytes, fmt: str, assertion: Assertion, options: Any) -> tuple[bytes, list[str]]:
            new, carriers = real(data, fmt, assertion, options)
            return _flip_scan_byte(bytes(new)), carriers

        return write

    _patch_write(monkeypatch, corrupting)
    assert pixels(_flip_scan_byte(original)) != pixels(original)  # the flip is visible in the pixels
    result = rightsmeta.tag(path, DENY_AI)
    assert result.status == "failed"
    assert result.reason == "tagging would change the decoded pixels of this JPEG; the original is kept"
    assert path.read_bytes() == original


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "simple-webp"])
def test_the_quick_comparison_skips_only_metadata(fmt: str, identity: keys.Identity) -> None:
    from rightsmeta.contentcheck import _decoder_input, same_decoder_input

    if fmt == "simple-webp":  # lossy, no VP8X header: the writer has to add one
        out = io.BytesIO()
        Image.open(io.BytesIO(image_bytes("png", size=(40, 24), seed=22))).save(out, "WEBP", quality=80)
        original, fmt = out.getvalue(), "webp"
        assert original[12:16] == b"VP8 "
    else:
        original = image_bytes(fmt, size=(40, 24), seed=22, exif=True, icc=True)
    assert _decoder_input(original, fmt) is not None
    for tagged in (rightsmeta.tag_bytes(original, DENY_AI), rightsmeta.tag_bytes(original, DENY_AI, identity=identity)):
        assert len(tagged) > len(original) + 500  # XMP (and a manifest) were added ...
        assert same_decoder_input(original, tagged, fmt)  # ... beside what the decoder reads
        assert pixels(tagged) == pixels(original)
    # A byte the decoder reads, changed: the quick comparison sees it (and the pixels are decoded).
    marker, skip = {"jpeg": (b"\xff\xdb", 10), "png": (b"IDAT", 8), "webp": (b"VP8", 20)}[fmt]
    body = original.index(marker) + skip
    changed = original[:body] + bytes([original[body] ^ 0x04]) + original[body + 1 :]
    assert not same_decoder_input(original, changed, fmt)


def _wav(samples: bytes, *, data_size: int | None = None) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    size = len(samples) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", size) + samples
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_a_changed_sample_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    path = tmp_path / "tone.wav"
    original = _wav((np.sin(np.arange(8000) / 7) * 9000).astype("<i2").tobytes())
    path.write_bytes(original)

    def corrupting(real: Callable[..., Any]) -> Callable[..., Any]:
        def write(data: bytes, fmt: str, assertion: Assertion, options: Any) -> tuple[bytes, list[str]]:
            new, carriers = real(data, fmt, assertion, options)
            at = new.index(b"data") + 8 + 1000
            return new[:at] + bytes([new[at] ^ 1]) + new[at + 1 :], carriers

        return write

    _patch_write(monkeypatch, corrupting)
    result = rightsmeta.tag(path, DENY_AI)
    assert result.status == "failed" and result.reason
    assert "decoded samples of this WAV" in result.reason
    assert path.read_bytes() == original


# --- signing and odd containers (issue 11.11-11.13) -----------------------------------------------


def _two_page_pdf(stray: bytes) -> bytes:
    """Two pages of text; ``stray`` goes into page 2's /MediaBox, which poppler and qpdf shrug off."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R 5 0 R] /Count 2 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R /Resources << /Font << /F1 7 0 R >> >> >>",
        None,
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200" + stray + b"] /Contents 6 0 R /Resources << /Font << /F1 7 0 R >> >> >>",
        None,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for index, text in ((3, b"Page one says hello"), (5, b"Page two says goodbye")):
        stream = b"BT /F1 12 Tf 20 100 Td (" + text + b") Tj ET"
        objects[index] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + (body or b"") + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _poppler_pages(path: Path) -> list[str]:
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True).stdout
    return [page.strip() for page in text.split("\f")[:-1]]


def test_signing_that_would_lose_a_pdf_page_is_refused(
    tmp_path: Path, identity: keys.Identity, poppler: dict[str, str], qpdf: str
) -> None:
    original = _two_page_pdf(b" ]")
    signed, plain = tmp_path / "signed.pdf", tmp_path / "plain.pdf"
    signed.write_bytes(original)
    plain.write_bytes(original)
    assert _poppler_pages(signed) == ["Page one says hello", "Page two says goodbye"]
    assert subprocess.run([qpdf, "--show-npages", str(signed)], capture_output=True, text=True).stdout.strip() == "2"

    result = rightsmeta.tag(signed, DENY_AI, identity=identity)
    assert result.status == "failed"
    assert result.reason == "tagging would change the pages of this PDF (2 pages before, 1 after); the original is kept"
    assert signed.read_bytes() == original

    assert rightsmeta.tag(plain, DENY_AI).status == "tagged"  # the incremental update keeps both pages
    assert _poppler_pages(plain) == ["Page one says hello", "Page two says goodbye"]


def _tiff_with_two_widths(width: int, height: int, second_width: int) -> tuple[bytes, bytes]:
    import numpy as np

    rgb = np.random.default_rng(7).integers(0, 256, (height, width, 3), dtype=np.uint8).tobytes()
    entries = [
        (256, width), (256, second_width), (257, height), (258, None), (259, 1), (262, 2),
        (273, None), (277, 3), (278, height), (279, len(rgb)),
    ]
    ifd = 8
    bits = ifd + 2 + 12 * len(entries) + 4
    strip = bits + 6
    out = bytearray(b"II*\x00" + struct.pack("<IH", ifd, len(entries)))
    for tag, value in entries:
        if tag == 258:
            out += struct.pack("<HHII", tag, 3, 3, bits)
        elif tag in (273, 279):
            out += struct.pack("<HHII", tag, 4, 1, strip if tag == 273 else value)
        else:
            out += struct.pack("<HHIHH", tag, 3, 1, value, 0)
    out += struct.pack("<I", 0) + struct.pack("<HHH", 8, 8, 8) + rgb
    return bytes(out), rgb


def test_signed_tiff_whose_geometry_would_change_is_refused(tmp_path: Path, identity: keys.Identity) -> None:
    data, _ = _tiff_with_two_widths(24, 16, 16)
    path = tmp_path / "dup.tif"
    path.write_bytes(data)
    with Image.open(path) as img:
        assert img.size == (24, 16)
    result = rightsmeta.tag(path, DENY_AI, identity=identity)
    assert result.status == "failed"
    assert result.reason == (
        "tagging would change the decoded pixels of this TIFF (24x16 pixels before, 16x16 after); the original is kept"
    )
    assert path.read_bytes() == data


def test_wav_with_open_ended_data_chunk_is_refused(tmp_path: Path, ffmpeg: str) -> None:
    path = tmp_path / "unfinished.wav"
    original = _wav(bytes(12000), data_size=0)  # silence: it parses as empty chunks, so our walker accepts it
    path.write_bytes(original)

    def ffmpeg_samples() -> str:
        probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=duration_ts", "-of", "csv=p=0", str(path)],
                               check=True, capture_output=True, text=True)
        return probe.stdout.strip()

    assert ffmpeg_samples() == "6000"
    result = rightsmeta.tag(path, DENY_AI)
    assert result.status == "failed" and result.reason
    assert result.reason.startswith("this WAV's data chunk declares 0 bytes but 12000 bytes follow it")
    assert path.read_bytes() == original and ffmpeg_samples() == "6000"


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def test_png_with_corrupt_iccp_keeps_it_or_is_refused(tmp_path: Path) -> None:
    plain = image_bytes("png", size=(16, 16), seed=9)
    body = b"ICC\x00\x00" + b"\x78\x9c" + b"not a zlib stream" * 4
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    original = plain[:33] + chunk + plain[33:]
    path = tmp_path / "icc.png"
    path.write_bytes(original)
    result = rightsmeta.tag(path, DENY_AI)
    if result.status == "tagged":  # a writer that splices only the XMP keeps the chunk as it was
        assert [c for c in _png_chunks(path.read_bytes()) if c[0] == b"iCCP"] == [(b"iCCP", body)]
    else:
        assert result.reason and re.fullmatch(
            r"tagging would change this PNG's ICC colour profile \(none -> \d+ bytes\); the original is kept", result.reason
        )
        assert path.read_bytes() == original


def _jpeg_icc_segment(data: bytes) -> tuple[int, int]:
    start = data.index(b"ICC_PROFILE\0") - 4
    assert data[start : start + 2] == b"\xff\xe2"
    return start, start + 2 + struct.unpack(">H", data[start + 2 : start + 4])[0]


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_a_writer_that_changes_the_icc_profile_is_refused(fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    path = tmp_path / f"icc.{fmt}"
    original = image_bytes(fmt, size=(16, 16), seed=10, icc=True)
    path.write_bytes(original)

    def reprofiling(real: Callable[..., Any]) -> Callable[..., Any]:
        def write(data: bytes, fmt: str, assertion: Assertion, options: Any) -> tuple[bytes, list[str]]:
            new, carriers = real(data, fmt, assertion, options)
            new = bytes(new)
            img = Image.open(io.BytesIO(new))
            out = io.BytesIO()
            if fmt == "png":  # lossless: the same pixels under another profile
                img.save(out, "PNG", icc_profile=lab, pnginfo=_xmp_info(img))
                return out.getvalue(), carriers
            img.save(out, "JPEG", icc_profile=lab)  # only its APP2 segment is used, the scan data stays
            donor = out.getvalue()
            a, b = _jpeg_icc_segment(new)
            c, d = _jpeg_icc_segment(donor)
            return new[:a] + donor[c:d] + new[b:], carriers

        return write

    _patch_write(monkeypatch, reprofiling)
    result = rightsmeta.tag(path, DENY_AI)
    assert result.status == "failed"
    assert result.reason == (
        f"tagging would change this {fmt.upper()}'s ICC colour profile ({len(srgb)} bytes -> {len(lab)} bytes); "
        "the original is kept"
    )
    assert path.read_bytes() == original


def _xmp_info(img: Image.Image) -> Any:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    xmp = img.info.get("XML:com.adobe.xmp")
    if xmp:
        info.add_itxt("XML:com.adobe.xmp", xmp)
    return info


# --- links and owners (issue 11.14) ---------------------------------------------------------------


def test_symlink_tags_its_target_and_stays_a_link(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "photo.jpg"
    target.write_bytes(_jpeg(11))
    link = tmp_path / "link.jpg"
    link.symlink_to(os.path.join("real", "photo.jpg"))
    result = rightsmeta.tag(link, DENY_AI)
    assert result.status == "tagged"
    assert result.notes[0] == f"a symbolic link: tagged the file it points to, {target}"
    assert link.is_symlink() and os.readlink(link) == os.path.join("real", "photo.jpg")
    assert rightsmeta.read(target).permissions[rightsmeta.Purpose.AI_TRAINING].state is rightsmeta.State.NOT_ALLOWED
    assert not list((tmp_path / "real").glob(".*")) and not list(tmp_path.glob(".*"))


def test_no_follow_links_skips_the_link(tmp_path: Path) -> None:
    target = tmp_path / "photo.jpg"
    original = _jpeg(12)
    target.write_bytes(original)
    (tmp_path / "link.jpg").symlink_to(target)
    result = CliRunner().invoke(main, ["tag", str(tmp_path / "link.jpg"), "--deny", "ai", "--no-follow-links", "--no-ledger"])
    assert result.exit_code == 0
    assert "skipped" in result.stdout and "a symbolic link, and links are not followed" in result.stdout
    assert target.read_bytes() == original and (tmp_path / "link.jpg").is_symlink()


def test_hard_link_is_split_and_said(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    original = _jpeg(13)
    path.write_bytes(original)
    os.link(path, tmp_path / "other-name.jpg")
    result = rightsmeta.tag(path, DENY_AI)
    assert result.status == "tagged"
    assert "the file had 2 hard links; this name now holds the tagged file, the other 1 still hold the untagged version" in result.notes[0]
    assert (tmp_path / "other-name.jpg").read_bytes() == original
    assert os.stat(path).st_nlink == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_owner_group_and_mode_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(_jpeg(14))
    os.chown(path, 4321, 8765)
    os.chmod(path, 0o640)
    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    info = os.stat(path)
    assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (4321, 8765, 0o640)


# --- concurrent tags (issue 11.15) ----------------------------------------------------------------


def test_a_tag_waits_for_the_lock_and_then_tags_the_new_file(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(_jpeg(15))
    newer = _jpeg(16)  # what "the other run" writes: other pixels, so a lost write would show
    results: list[rightsmeta.TagResult] = []
    with fsio.locked(path):
        worker = threading.Thread(target=lambda: results.append(rightsmeta.tag(path, DENY_AI)))
        worker.start()
        time.sleep(0.5)
        assert not results  # still waiting for the lock
        fsio.atomic_write(path, newer)
    worker.join(30)
    assert [r.status for r in results] == ["tagged"]
    assert pixels(path) == pixels(newer)  # it read the file the other run wrote, not the one it first opened


def test_a_file_changed_by_another_program_mid_tag_is_not_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(_jpeg(17))
    theirs = _jpeg(18)

    def meddling(real: Callable[..., Any]) -> Callable[..., Any]:
        def write(data: bytes, fmt: str, assertion: Assertion, options: Any) -> tuple[bytes, list[str]]:
            with open(path, "r+b") as fh:  # a program that takes no lock writes in place meanwhile
                fh.write(theirs)
            return real(data, fmt, assertion, options)

        return write

    _patch_write(monkeypatch, meddling)
    result = rightsmeta.tag(path, DENY_AI)
    assert result.status == "failed"
    assert result.reason == f"{path} was changed by another program while it was being tagged; not replaced, tag it again"
    assert path.read_bytes() == theirs


def test_concurrent_tag_processes_take_turns(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(_jpeg(19))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [
        subprocess.Popen([sys.executable, "-m", "rightsmeta", "tag", str(path), "--deny", "ai", "--holder", holder,
                          "--no-ledger", "--no-sign", "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for holder in ("First", "Second")
    ]
    import json

    outcomes = [json.loads(run.communicate(timeout=60)[0])[0] for run in runs]
    assert [o["status"] for o in outcomes] == ["tagged", "tagged"]
    rights = rightsmeta.read(path).rights
    # The file is one run's complete result (the lock's ordering is proven by the thread test above).
    written = {(o["assertion"]["holder"]["name"], o["assertion"]["work_id"]) for o in outcomes}
    assert (rights["holder"]["name"], rights["work_id"]) in written
    assert not list(tmp_path.glob(".*"))


# --- temporary files (issue 11.16) ----------------------------------------------------------------

_SLOW_WRITE = """
import os, sys, time
ready, target = sys.argv[1], sys.argv[2]
real = os.fsync
def fsync(fd):
    if os.readlink(f"/proc/self/fd/{fd}").endswith(".rightsmeta-tmp"):
        open(ready, "w").close()
        time.sleep(60)
    real(fd)
os.fsync = fsync
from rightsmeta.cli import main
sys.argv = ["rightsmeta", "tag", target, "--deny", "ai", "--no-ledger", "--no-sign"]
main()
"""


def _interrupted(tmp_path: Path, sig: int) -> tuple[Path, bytes, int]:
    path = tmp_path / "photo.jpg"
    original = _jpeg(20)
    path.write_bytes(original)
    ready = tmp_path / "ready"
    run = subprocess.Popen([sys.executable, "-c", _SLOW_WRITE, str(ready), str(path)],
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert run.poll() is None, run.communicate()[1]
            if time.monotonic() > deadline:
                run.kill()
                pytest.fail(f"the tag never reached its write: {run.communicate()[1]!r}")
            time.sleep(0.05)
        run.send_signal(sig)
        run.communicate(timeout=30)
        code = run.returncode
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    ready.unlink()
    return path, original, code


def _temps(folder: Path) -> list[Path]:
    return sorted(folder.glob(".photo.jpg.*.rightsmeta-tmp"))


def test_sigterm_during_a_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    path, original, code = _interrupted(tmp_path, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM
    assert _temps(tmp_path) == []
    assert path.read_bytes() == original


def test_stale_temporary_file_is_reported_by_verify_and_removed_by_tag(tmp_path: Path) -> None:
    path, original, code = _interrupted(tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL and path.read_bytes() == original
    [stale] = _temps(tmp_path)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    live = tmp_path / ".photo.jpg.abcd1234.rightsmeta-tmp"  # another run, still writing
    live.write_bytes(b"x")
    os.utime(live, (old, old))
    young = tmp_path / ".photo.jpg.young123.rightsmeta-tmp"  # just created, not yet locked
    young.write_bytes(b"x")
    foreign = tmp_path / ".photo.jpg.mine.tmp"  # not ours
    foreign.write_bytes(b"x")
    os.utime(foreign, (old, old))

    with open(live, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        seen = CliRunner().invoke(main, ["verify", str(path), "--no-ledger"])
        assert f"note: found {stale}, a temporary file an interrupted rightsmeta write left behind" in seen.stderr
        assert str(live) not in seen.stderr and str(young) not in seen.stderr and str(foreign) not in seen.stderr
        assert stale.exists()

        tagged = CliRunner().invoke(main, ["tag", str(path), "--deny", "ai", "--no-ledger"])
        assert tagged.exit_code == 0
        assert f"note: removed {stale}, a temporary file an interrupted rightsmeta write left behind" in tagged.stderr
    assert sorted(tmp_path.glob(".photo*")) == sorted([live, young, foreign])


def test_stale_temps_finds_nothing_in_a_clean_folder(tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_bytes(_jpeg(21))
    assert api.stale_temp_files([tmp_path / "photo.jpg", tmp_path], remove=True) == []


def test_a_named_pipe_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "upload.jpg"
    os.mkfifo(fifo)
    results: list[rightsmeta.TagResult] = []
    worker = threading.Thread(target=lambda: results.append(rightsmeta.tag(fifo, DENY_AI)), daemon=True)
    worker.start()
    worker.join(20)  # opening a pipe for reading used to wait for a writer, for ever
    assert [(r.status, r.reason) for r in results] == [
        ("failed", "a FIFO, not a regular file; not tagged")
    ]


def test_mixed_real_folder_with_a_failing_writer(tmp_path: Path, ffmpeg: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 10's closing check: music, photos, a PDF and a file that raises inside a writer."""
    folder = tmp_path / "mixed"
    files = _batch(folder)
    for name, codec in (("song.mp3", "libmp3lame"), ("take.wav", "pcm_s16le"), ("loop.flac", "flac")):
        subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=330:duration=0.5", "-c:a", codec,
                        str(folder / name)], check=True)
    (folder / "book.pdf").write_bytes(_two_page_pdf(b""))
    (folder / "notes.txt").write_text("not media")
    _inject("family write", monkeypatch)
    result = CliRunner().invoke(main, ["tag", "-r", str(folder), "--deny", "ai", "--no-ledger"])
    assert result.exit_code == 1
    assert "summary: 6 tagged, 1 skipped, 1 failed" in result.stderr
    assert re.search(r"failed\s+\S+b\.jpg: internal error \(OverflowError", result.stdout)
    assert (folder / "b.jpg").read_bytes() == files["b.jpg"]
    for name in ("a.jpg", "c.jpg", "song.mp3", "take.wav", "loop.flac", "book.pdf"):
        assert rightsmeta.read(folder / name).permissions[rightsmeta.Purpose.GENAI_TRAINING].state is rightsmeta.State.NOT_ALLOWED


# A signal landing right after a temporary file's create call returns (issue 12's flaky Ctrl-C test): in
# the processes of the run below, the first create of a temporary file sends the signal to its own
# process at once, so that its handler runs before the file is known to anything that would remove it.
_SIGNAL_AFTER_CREATE = """
import os
_open = os.open
def open_(path, flags, mode=0o777, *, dir_fd=None):
    fd = _open(path, flags, mode, dir_fd=dir_fd)
    if os.fspath(path).endswith(".rightsmeta-tmp") and flags & os.O_CREAT:
        try:  # once a run: the first process to create one
            os.close(_open(os.environ["RIGHTSMETA_TEST_ONCE"], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return fd
        os.kill(os.getpid(), int(os.environ["RIGHTSMETA_TEST_SIGNAL"]))
    return fd
os.open = open_
"""


def _signalled_at_create(tmp_path: Path, sig: int, *args: str) -> subprocess.CompletedProcess[str]:
    """``rightsmeta *args``, its first temporary file's create followed at once by ``sig``."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_SIGNAL_AFTER_CREATE)  # loaded by every process of the run
    env = {**os.environ, "PYTHONPATH": f"{hook}{os.pathsep}{ROOT}", "RIGHTSMETA_TEST_ONCE": str(tmp_path / "once"),
           "RIGHTSMETA_TEST_SIGNAL": str(int(sig))}
    run = subprocess.run([sys.executable, "-m", "rightsmeta", *args], capture_output=True, text=True, env=env,
                         timeout=120)
    assert (tmp_path / "once").exists(), run.stderr[-2000:]  # the signal was sent
    return run


@pytest.mark.parametrize(("sig", "jobs", "code"), [
    (signal.SIGTERM, 1, 128 + signal.SIGTERM),
    (signal.SIGINT, 1, 1),  # Ctrl-C: click's "Aborted!"
    (signal.SIGTERM, 2, 0),  # a worker stopped by SIGTERM: its files are tagged again by a fresh one
], ids=["SIGTERM", "Ctrl-C", "worker-SIGTERM"])
def test_a_stop_right_after_a_temporary_file_is_created_removes_it(tmp_path: Path, sig: int, jobs: int,
                                                                    code: int) -> None:
    folder = tmp_path / "photos"
    files = _batch(folder)
    run = _signalled_at_create(tmp_path, sig, "tag", "-r", str(folder), "--deny", "ai", "--no-sign", "--ledger",
                               str(tmp_path / "ledger.db"), "--jobs", str(jobs))
    assert run.returncode == code, run.stderr[-2000:]
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)  # no temporary file left
    changed = {name for name, data in files.items() if (folder / name).read_bytes() != data}
    if jobs == 1:
        assert changed < set(files)  # stopped before the batch's end
    else:
        assert changed == set(files), run.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stop_right_after_the_html_report_is_created_removes_it(tmp_path: Path, sig: int) -> None:
    folder = tmp_path / "photos"
    _batch(folder)
    report = tmp_path / "out" / "report.html"
    report.parent.mkdir()
    run = _signalled_at_create(tmp_path, sig, "verify", "-r", str(folder), "--no-ledger", "--html", str(report))
    assert run.returncode == (128 + signal.SIGTERM if sig == signal.SIGTERM else 1), run.stderr[-2000:]
    assert list(report.parent.iterdir()) == []


def test_a_stop_waits_for_the_outermost_deferred_block_and_the_first_is_raised() -> None:
    with pytest.raises(SystemExit) as raised:
        with stopping.deferred():
            with stopping.deferred():
                stopping.stop(SystemExit(143))
                stopping.stop(KeyboardInterrupt())
            reached = True  # the inner block's end did not raise
    assert reached and raised.value.code == 143
    with pytest.raises(KeyboardInterrupt):  # outside a block: at once
        stopping.stop(KeyboardInterrupt())
    with stopping.deferred():  # nothing left pending from before
        pass


def test_a_stop_held_back_while_tag_writes_leaves_no_temporary_file_nor_lock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``api.tag`` holds no batch: a stop held back while its temporary file was made (as the CLI's
    handler does, through stopping.stop) removes the file and releases the lock as it goes."""
    path = tmp_path / "sample.png"
    path.write_bytes(image_bytes("png"))
    original = path.read_bytes()
    real = tagging.start_write

    def stopped(*args: Any, **kwargs: Any) -> Any:
        replacement = real(*args, **kwargs)
        stopping.stop(SystemExit(143))  # the signal lands just after the create
        return replacement

    monkeypatch.setattr(tagging, "start_write", stopped)
    with pytest.raises(SystemExit):
        api.tag(path, Assertion.build(deny=["ai"]))
    assert [p.name for p in tmp_path.iterdir()] == ["sample.png"] and path.read_bytes() == original
    monkeypatch.undo()
    assert api.tag(path, Assertion.build(deny=["ai"])).status == "tagged"  # the lock was released


def test_a_batch_that_cannot_hold_a_written_file_removes_it(tmp_path: Path) -> None:
    path = tmp_path / "sample.png"
    path.write_bytes(image_bytes("png"))
    original = path.read_bytes()

    def cannot(step: Any) -> None:
        raise RuntimeError("can't start new thread")

    done = tagging.tag_one(str(path), Assertion.build(deny=["ai"]).for_work(), False, api.Options(), None, False, True,
                        cannot)
    assert isinstance(done, rightsmeta.report.TagResult) and done.status == "failed"
    assert [p.name for p in tmp_path.iterdir()] == ["sample.png"] and path.read_bytes() == original
    assert api.tag(path, Assertion.build(deny=["ai"])).status == "tagged"  # the lock was released


def test_a_stop_raised_at_once_drops_one_held_back_before() -> None:
    """A stop held back by a block that was just ending when another came (raised at once) is
    not raised again later, out of the next block."""
    with pytest.raises(SystemExit):
        with stopping.deferred():
            stopping.stop(SystemExit(143))
    stopping._state.pending = RuntimeError("stale stop")  # as if the block's end had not read it yet
    with pytest.raises(SystemExit):
        stopping.stop(SystemExit(143))
    with stopping.deferred():  # nothing stale raised here
        pass


def test_the_tag_command_gives_the_collector_back_when_it_ends(tmp_path: Path) -> None:
    import gc

    path = tmp_path / "sample.png"
    path.write_bytes(image_bytes("png"))
    result = CliRunner().invoke(main, ["tag", "--deny", "ai", "--no-sign", "--no-ledger", str(path)])
    assert result.exit_code == 0, result.output
    assert gc.get_freeze_count() == 0
