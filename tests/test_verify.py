"""The verifier: every status built from real files, hostile inputs, reports and exit codes."""

from __future__ import annotations

import csv
import io
import json
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image
from samples import exiftool_write, image_bytes, write_image
from test_cli import validate

import rightsmeta
from rightsmeta import Assertion, keys
from rightsmeta.cli import main
from rightsmeta.ledger import Ledger
from rightsmeta.verify import verify, verify_many

DENY = Assertion.build(deny=["ai"], holder="Ada")


@pytest.fixture(scope="module")
def identity() -> keys.Identity:
    return keys.make_identity("Verifier Test")


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    with Ledger.open(tmp_path / "ledger.sqlite3") as db:
        yield db


def photo(directory: Path, name: str, seed: int, size: tuple[int, int] = (160, 120)) -> Path:
    """A photo-like image (shapes and noise), distinct per seed, so perceptual matching is meaningful."""
    import random

    from PIL import ImageDraw

    rng = random.Random(seed)
    img = Image.effect_noise(size, 30).convert("RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(8):
        x0, x1 = sorted(rng.sample(range(size[0]), 2))
        y0, y1 = sorted(rng.sample(range(size[1]), 2))
        draw.rectangle((x0, y0, x1, y1), fill=tuple(rng.randrange(256) for _ in range(3)))
    path = directory / name
    img.save(path, quality=92) if name.endswith(".jpg") else img.save(path)
    return path


def status(path: Path, db: Ledger | None = None) -> str:
    return verify(path, ledger=db).status


def test_intact_untagged_and_reasons(tmp_path: Path, ledger: Ledger) -> None:
    tagged = photo(tmp_path, "tagged.jpg", 1)
    assert rightsmeta.tag(tagged, DENY, ledger=ledger).status == "tagged"
    plain = photo(tmp_path, "plain.jpg", 2)
    verdict = verify(tagged, ledger=ledger)
    assert verdict.status == "intact" and "xmp" in verdict.reasons[0]
    assert status(plain, ledger) == "untagged"


def test_every_family_tagged_by_rightsmeta_is_intact(tmp_path: Path, ffmpeg: str) -> None:
    # Key/value carriers (ID3, Vorbis, MP4, PDF Info, EPUB OPF) hold the exact record and TDMRep's
    # projection but no IPTC field: that is not a stripped projection.
    from test_documents import epub_bytes, pdf_bytes

    (tmp_path / "doc.pdf").write_bytes(pdf_bytes())
    (tmp_path / "book.epub").write_bytes(epub_bytes())
    for fmt in ("mp3", "flac", "wav", "m4a", "ogg", "opus", "mov"):
        video = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=5:duration=1", "-c:v", "libx264",
                 "-pix_fmt", "yuv420p", "-shortest"] if fmt == "mov" else []
        codec = {"m4a": ["-c:a", "aac"], "mov": ["-c:a", "aac"], "ogg": ["-c:a", "libvorbis"]}.get(fmt, [])
        subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", *video, *codec,
                        str(tmp_path / f"clip.{fmt}")], check=True)
    paths = sorted(tmp_path.iterdir())
    for path in paths:
        assert rightsmeta.tag(path, DENY).status == "tagged", path
    rows = {Path(r["path"]).suffix: r for r in verify_many([str(p) for p in paths])}
    assert {ext: (r["status"], r["reasons"]) for ext, r in rows.items() if r["status"] != "intact"} == {}
    assert len(rows) == 9


def test_partial_when_a_projection_is_stripped(tmp_path: Path, exiftool: str) -> None:
    path = write_image(tmp_path, "jpeg")
    rightsmeta.tag(path, DENY)
    exiftool_write(exiftool, path, "-XMP-plus:DataMining=")
    verdict = verify(path)
    assert verdict.status == "partial"
    assert any("plus:DataMining" in r for r in verdict.reasons)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_a_statement_no_datamining_code_says_is_intact(tmp_path: Path, exiftool: str, fmt: str) -> None:
    # Only ai-training denied: no PLUS code means exactly that, so the IPTC projection is the
    # sentence in plus:OtherConstraints alone. That is what was written, not a stripped field.
    path = write_image(tmp_path, fmt)
    only_training = Assertion.build(deny=["ai-training"], holder="Ada")
    assert rightsmeta.tag(path, only_training).status == "tagged"
    assert verify(path).status == "intact", verify(path).reasons
    exiftool_write(exiftool, path, "-XMP-plus:OtherConstraints=")
    verdict = verify(path)
    assert verdict.status == "partial"
    assert any("plus:OtherConstraints" in r for r in verdict.reasons)


def test_partial_when_the_manifest_is_stripped(tmp_path: Path, exiftool: str, ledger: Ledger, identity: keys.Identity) -> None:
    path = photo(tmp_path, "signed.jpg", 3)
    assert rightsmeta.tag(path, DENY, identity=identity, ledger=ledger).carriers == ["xmp", "c2pa"]
    assert status(path, ledger) == "intact"
    subprocess.run([exiftool, "-JUMBF:all=", "-overwrite_original", "-q", str(path)], check=True)
    verdict = verify(path, ledger=ledger)
    assert verdict.status == "partial", verdict.reasons
    assert any("c2pa" in r and "ledger" in r for r in verdict.reasons)


@pytest.mark.parametrize("command", ["read", "verify"])
def test_trust_anchors_that_hold_no_certificate_are_a_usage_error(tmp_path: Path, identity: keys.Identity, command: str) -> None:
    # The signer's key given by mistake: c2pa then called every signed file's manifest unreadable
    # ("COSE error parsing certificate"), and verify exited 0.
    path = photo(tmp_path, "signed.jpg", 4)
    assert rightsmeta.tag(path, DENY, identity=identity).carriers == ["xmp", "c2pa"]
    key = tmp_path / "signer.key"
    key.write_bytes(identity.key_pem)
    out = CliRunner().invoke(main, [command, str(path), "--trust-anchors", str(key)])
    assert out.exit_code == 2 and "holds no PEM certificate" in out.output, out.output
    root = tmp_path / "root.pem"
    assert identity.root_pem is not None
    root.write_bytes(identity.root_pem)
    assert CliRunner().invoke(main, [command, str(path), "--trust-anchors", str(root)]).exit_code == 0


def test_conflicting(tmp_path: Path, exiftool: str) -> None:
    path = write_image(tmp_path, "png")
    rightsmeta.tag(path, DENY)
    exiftool_write(exiftool, path, "-XMP-plus:DataMining#=DMI-ALLOWED")
    verdict = verify(path)
    assert verdict.status == "conflicting" and "differs" in verdict.reasons[0]


def test_tampered(tmp_path: Path, identity: keys.Identity) -> None:
    data = bytearray(rightsmeta.tag_bytes(image_bytes("jpeg", size=(64, 64)), DENY, identity=identity))
    data[-20] ^= 0x01
    path = tmp_path / "tampered.jpg"
    path.write_bytes(bytes(data))
    verdict = verify(path)
    assert verdict.status == "tampered" and "assertion.dataHash.mismatch" in verdict.reasons[0]


# --- stripped: survives real handling ------------------------------------------------------


def _jpeg(img: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    img.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def _load(path: Path) -> Image.Image:
    with Image.open(path) as img:
        img.load()
        return img.copy()


def _half(img: Image.Image) -> Image.Image:
    return img.resize((img.width // 2, img.height // 2))


TRANSFORMS = {
    "pillow-resave": lambda p: _jpeg(_load(p), 95),
    "jpeg-q70": lambda p: _jpeg(_load(p), 70),
    "downscale-50": lambda p: _jpeg(_half(_load(p)), 90),
}


@pytest.mark.parametrize("transform", ["exiftool-strip", *TRANSFORMS, "png-to-jpeg"])
def test_stripped_copies_match_the_right_work(tmp_path: Path, exiftool: str, ledger: Ledger, transform: str) -> None:
    works = [photo(tmp_path, f"work{i}.{'png' if transform == 'png-to-jpeg' else 'jpg'}", 10 + i) for i in range(6)]
    for work in works:
        assert rightsmeta.tag(work, DENY, ledger=ledger).status == "tagged"
    original = works[3]
    copy = tmp_path / "copy.jpg"
    if transform == "exiftool-strip":
        shutil.copy(original, copy)
        subprocess.run([exiftool, "-all=", "-overwrite_original", "-q", str(copy)], check=True)
    elif transform == "png-to-jpeg":
        copy.write_bytes(_jpeg(_load(original), 85))
    else:
        copy.write_bytes(TRANSFORMS[transform](original))
    verdict = verify(copy, ledger=ledger)
    assert verdict.status == "stripped", verdict.reasons
    assert verdict.match is not None and verdict.match.work.path == str(original)
    row = verdict.to_json()
    assert row["match"]["assertion"]["permissions"]["ai-training"]["state"] == "notAllowed"
    assert row["permissions"]["ai-training"] == "notAllowed"
    assert row["match"]["exact"] == (transform == "exiftool-strip")


# --- hostile and broken input --------------------------------------------------------------


def _hostile(tmp_path: Path) -> dict[str, Path]:
    files = {}
    jpeg = image_bytes("jpeg")
    files["truncated.jpg"] = jpeg[: len(jpeg) // 2]
    files["empty.png"] = b""
    # MP4 boxes nested 10,000 deep.
    depth = 10_000
    nested = b""
    for _ in range(depth):
        nested = struct.pack(">I4s", 8 + len(nested), b"moov") + nested
    files["nested.mp4"] = struct.pack(">I4s4sI", 16, b"ftyp", b"isom", 0) + nested[:200_000]
    # A RIFF chunk claiming 4 GB, and many tiny chunks.
    files["chunkbomb.wav"] = b"RIFF" + struct.pack("<I", 0xFFFFFFF0) + b"WAVE" + b"LIST" + struct.pack("<I", 0xFFFFFF00) + b"\0" * 64
    files["manychunks.wav"] = b"RIFF" + struct.pack("<I", 4 + 8 * 100_000) + b"WAVE" + b"junk\0\0\0\0" * 100_000
    # An XMP entity bomb in a JPEG.
    from test_images import BOMB, _jpeg_with_xmp

    files["bomb.jpg"] = _jpeg_with_xmp(BOMB)
    # A PNG whose header claims a huge chunk.
    png = image_bytes("png")
    files["hugeheader.png"] = png[:8] + struct.pack(">I", 0x7FFFFFFF) + png[12:]
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(data)
    return paths


def test_hostile_inputs_are_unreadable_quickly_and_the_scan_goes_on(tmp_path: Path) -> None:
    hostile = _hostile(tmp_path)
    good = write_image(tmp_path, "webp", "good")
    rightsmeta.tag(good, DENY)
    paths = [*map(str, hostile.values()), str(good)]
    start = time.perf_counter()
    rows = list(verify_many(paths, jobs=1, seconds=10))
    assert time.perf_counter() - start < 10
    by_name = {Path(r["path"]).name: r for r in rows}
    for name in hostile:
        assert by_name[name]["status"] == "unreadable", (name, by_name[name])
        assert by_name[name]["reasons"] and by_name[name]["reasons"][0] != "unreadable"
    assert by_name["good.webp"]["status"] == "intact"


def test_a_bug_on_one_file_does_not_stop_the_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rightsmeta.carriers import containers

    extract = containers.extract

    def broken(buf: Any, fmt: str, *rest: Any) -> Any:
        if fmt == "png":
            raise IndexError("index out of range")
        return extract(buf, fmt, *rest)

    good = write_image(tmp_path, "webp", "good")
    rightsmeta.tag(good, DENY)
    bad = write_image(tmp_path, "png", "bad")
    monkeypatch.setattr(containers, "extract", broken)
    rows = list(verify_many([str(bad), str(good)], jobs=1))
    assert [r["status"] for r in rows] == ["unreadable", "intact"]
    assert "IndexError: index out of range" in rows[0]["reasons"][0] and "report" in rows[0]["reasons"][0]


def test_per_file_time_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import rightsmeta.verify as v

    slow = write_image(tmp_path, "png", "slow")

    def stall(*args: object, **kwargs: object) -> None:
        time.sleep(5)

    monkeypatch.setattr(v, "verify", stall)
    start = time.perf_counter()
    rows = list(verify_many([str(slow)], jobs=1, seconds=0.5))
    assert time.perf_counter() - start < 3
    assert rows[0]["status"] == "unreadable" and "gave up after 0.5 s" in rows[0]["reasons"][0]


def test_verify_many_runs_outside_the_main_thread(tmp_path: Path) -> None:
    # A server verifies uploads in worker threads, where no SIGALRM handler can be installed.
    import threading

    good = write_image(tmp_path, "png", "good")
    rightsmeta.tag(good, DENY)
    rows: list[dict[str, object]] = []
    failures: list[BaseException] = []

    def scan() -> None:
        try:
            rows.extend(verify_many([str(good)], jobs=1, seconds=5))
        except BaseException as exc:  # surfaced below: an exception in a thread is otherwise lost
            failures.append(exc)

    worker = threading.Thread(target=scan)
    worker.start()
    worker.join(30)
    assert failures == [] and [r["status"] for r in rows] == ["intact"]


def test_a_scan_of_images_loads_no_heavy_library(tmp_path: Path) -> None:
    # Start-up is paid once per scan, so what a scan imports counts: writers (pyexiv2), other
    # families' libraries, c2pa (no manifest here), the ledger's decoders (no ledger) stay unloaded.
    for i, fmt in enumerate(("jpeg", "png", "webp", "tiff")):
        path = write_image(tmp_path, fmt, f"f{i}")
        if i % 2:
            rightsmeta.tag(path, DENY)
    heavy = ["pyexiv2", "defusedxml", "zipfile", "mutagen", "pypdf", "c2pa", "numpy", "PIL", "sqlite3", "tempfile"]
    code = (
        "import sys, json\n"
        "from rightsmeta.verify import verify_many\n"
        f"rows = list(verify_many(sorted({[str(p) for p in tmp_path.iterdir()]!r})))\n"
        f"print(json.dumps([[r['status'] for r in rows], [m for m in {heavy!r} if m in sys.modules]]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    statuses, loaded = json.loads(done.stdout)
    assert sorted(statuses) == ["intact", "intact", "untagged", "untagged"]
    assert loaded == []


def test_a_jsonl_scan_from_the_command_line_loads_no_writer_or_report_machinery(tmp_path: Path) -> None:
    # The CLI's start-up is most of a small scan's time: the tag path's threads (concurrent.futures,
    # and logging behind it) and the CSV/HTML writers' modules load only when used.
    for i, fmt in enumerate(("jpeg", "tiff")):
        path = write_image(tmp_path, fmt, f"f{i}")
        if i:
            rightsmeta.tag(path, DENY)
    unused = ["concurrent.futures", "logging", "csv", "html", "shutil", "tempfile", "hashlib", "pyexiv2", "sqlite3"]
    code = (
        "import sys, json, runpy\n"
        f"sys.argv = ['rightsmeta', 'verify', '-r', '--no-ledger', '--jsonl', '--jobs', '1', {str(tmp_path)!r}]\n"
        "try:\n    runpy.run_module('rightsmeta', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps([m for m in {unused!r} if m in sys.modules]), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    statuses = sorted(json.loads(line)["status"] for line in done.stdout.splitlines())
    assert statuses == ["intact", "untagged"]
    assert json.loads(done.stderr.strip().splitlines()[-1]) == []


# --- the command line ----------------------------------------------------------------------


def test_cli_reports_and_fail_on(tmp_path: Path, exiftool: str) -> None:
    folder = tmp_path / "upload"
    folder.mkdir()
    intact = write_image(folder, "jpeg", "intact")
    rightsmeta.tag(intact, DENY)
    conflict = write_image(folder, "png", "conflict")
    rightsmeta.tag(conflict, DENY)
    exiftool_write(exiftool, conflict, "-XMP-plus:DataMining#=DMI-ALLOWED")
    write_image(folder, "webp", "plain")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    runner = CliRunner()
    args = ["verify", "-r", str(folder), "--no-ledger"]

    out = runner.invoke(main, [*args, "--json"], catch_exceptions=False)
    rows = json.loads(out.stdout)
    validate("verify-report.schema.json", rows)
    assert {Path(r["path"]).name: r["status"] for r in rows} == {
        "intact.jpg": "intact", "conflict.png": "conflicting", "plain.webp": "untagged", "broken.jpg": "unreadable",
    }
    assert out.exit_code == 0
    assert "1 intact, 1 conflicting, 1 untagged, 1 unreadable (4 files)" in out.stderr

    jsonl = runner.invoke(main, [*args, "--jsonl"])
    assert [json.loads(line)["status"] for line in jsonl.stdout.splitlines()] == [r["status"] for r in rows]
    table = list(csv.DictReader(io.StringIO(runner.invoke(main, [*args, "--csv"]).stdout)))
    assert table[0].keys() >= {"path", "status", "ai-training", "reasons"} and len(table) == 4

    html = tmp_path / "report.html"
    gated = runner.invoke(main, [*args, "--fail-on", "conflicting,tampered", "--html", str(html)])
    assert gated.exit_code == 1
    page = html.read_text()
    assert "conflict.png" in page and "<script>" in page and "http" not in page.split("<body>")[0]
    bad = runner.invoke(main, [*args, "--fail-on", "broken"])
    assert bad.exit_code == 2 and "unknown status broken" in bad.output
    nowhere = runner.invoke(main, [*args, "--html", str(tmp_path / "missing" / "report.html")])
    assert nowhere.exit_code == 2 and "cannot write the HTML report" in nowhere.output
    assert "Traceback" not in nowhere.output and not (tmp_path / "missing").exists()


def test_an_upload_piped_on_standard_input(tmp_path: Path) -> None:
    # A real pipe (fstat says size 0): the bytes are read, not taken for an empty file.
    tagged = write_image(tmp_path, "jpeg", "tagged")
    rightsmeta.tag(tagged, DENY)
    command = [sys.executable, "-m", "rightsmeta"]
    done = subprocess.run([*command, "verify", "-", "--no-ledger", "--jsonl", "--jobs", "2"],
                          input=tagged.read_bytes(), capture_output=True, check=True)
    row = json.loads(done.stdout)
    assert (row["path"], row["format"], row["status"]) == ("-", "jpeg", "intact")
    read = subprocess.run([*command, "read", "-", "--json"], input=tagged.read_bytes(), capture_output=True, check=True)
    report = json.loads(read.stdout)[0]
    assert report["path"] == "-" and report["permissions"]["ai-training"] == "notAllowed"
    empty = subprocess.run([*command, "verify", "-", "--no-ledger", "--jsonl"], input=b"", capture_output=True)
    assert json.loads(empty.stdout)["reasons"] == ["empty file (0 bytes)"]


def test_html_report_is_built_on_disk_as_rows_arrive(tmp_path: Path) -> None:
    # Rows wait in an anonymous temporary file, not in memory; the page is the same as one built
    # from a list, and appears whole (no partial page, no temporary file left beside it).
    from rightsmeta import output

    folder = tmp_path / "files"
    folder.mkdir()
    for i in range(5):
        path = write_image(folder, ("jpeg", "png")[i % 2], f"f{i}")
        if i % 2:
            rightsmeta.tag(path, DENY)
    rows = list(verify_many(sorted(str(p) for p in folder.iterdir())))
    out = tmp_path / "out"
    out.mkdir()
    report = output.HtmlReport(out / "report.html")
    for row in rows:
        report.write(row)
    assert list(out.iterdir()) == []
    report.close()
    assert [p.name for p in out.iterdir()] == ["report.html"]
    assert (out / "report.html").read_text(encoding="utf-8") == output.html_page(rows)


def test_parallel_jobs_give_the_same_answers(tmp_path: Path) -> None:
    for i in range(12):
        path = write_image(tmp_path, ("jpeg", "png", "webp")[i % 3], f"f{i}")
        if i % 2:
            rightsmeta.tag(path, DENY)
    paths = sorted(str(p) for p in tmp_path.iterdir())
    one = [r["status"] for r in verify_many(paths, jobs=1)]
    two = [r["status"] for r in verify_many(paths, jobs=2)]
    assert one == two and one.count("intact") == 6


def test_ledger_export_import_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    creator = tmp_path / "creator.sqlite3"
    platform = tmp_path / "platform.sqlite3"
    work = photo(tmp_path, "work.png", 42)
    tagged = runner.invoke(main, ["tag", str(work), "--deny", "all", "--ledger", str(creator), "--no-sign"])
    assert tagged.exit_code == 0, tagged.output
    registry = tmp_path / "registry.jsonl"
    assert runner.invoke(main, ["ledger", "export", "--ledger", str(creator), "-o", str(registry)]).exit_code == 0
    first = runner.invoke(main, ["ledger", "import", str(registry), "--ledger", str(platform)])
    again = runner.invoke(main, ["ledger", "import", str(registry), "--ledger", str(platform)])
    assert "1 work(s) added" in first.output and "0 work(s) added; the ledger holds 1" in again.output
    copy = tmp_path / "upload.jpg"
    copy.write_bytes(_jpeg(_load(work), 80))
    out = runner.invoke(main, ["verify", str(copy), "--ledger", str(platform), "--json", "--fail-on", "stripped"])
    assert out.exit_code == 1
    assert json.loads(out.stdout)[0]["status"] == "stripped"


def test_ledger_export_of_a_mistyped_ledger_is_a_usage_error(tmp_path: Path) -> None:
    # It used to create an empty ledger there and publish an empty registry, with exit 0.
    missing = tmp_path / "creatr.sqlite3"
    out = CliRunner().invoke(main, ["ledger", "export", "--ledger", str(missing), "-o", str(tmp_path / "registry.jsonl")])
    assert out.exit_code == 2 and "does not exist" in out.output
    assert not missing.exists() and not (tmp_path / "registry.jsonl").exists()


@pytest.mark.parametrize("command", ["export", "import"])
def test_ledger_commands_on_a_file_that_is_no_ledger(tmp_path: Path, command: str) -> None:
    # Both ended in a traceback (LedgerError); tag and verify say it in one line (exit 2).
    other = tmp_path / "photo.sqlite3"
    other.write_bytes(image_bytes("png"))
    registry = tmp_path / "registry.jsonl"
    registry.write_text("")
    args = ["-o", str(tmp_path / "out.jsonl")] if command == "export" else [str(registry)]
    out = CliRunner().invoke(main, ["ledger", command, "--ledger", str(other), *args])
    assert out.exit_code == 2 and "cannot use the ledger" in out.output and out.exception is not None
    assert isinstance(out.exception, SystemExit)


def test_html_report_renders_in_headless_chromium(tmp_path: Path, exiftool: str, chromium: list[str]) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    rightsmeta.tag(write_image(folder, "jpeg", "intact"), DENY)
    conflict = write_image(folder, "png", "conflict")
    rightsmeta.tag(conflict, DENY)
    exiftool_write(exiftool, conflict, "-XMP-plus:DataMining#=DMI-ALLOWED")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    page = tmp_path / "report.html"
    CliRunner().invoke(main, ["verify", "-r", str(folder), "--no-ledger", "--html", str(page)], catch_exceptions=False)
    shot = tmp_path / "report.png"
    subprocess.run([*chromium, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,600",
                    f"--screenshot={shot}", page.as_uri()], check=True, capture_output=True, timeout=60)
    with Image.open(shot) as img:
        colours = {c for _, c in img.convert("RGB").getcolors(1 << 20) or []}
    # The status badges are drawn in their colours: intact green, conflicting purple, unreadable slate.
    for hex_colour in ("1b7f3b", "8a4baf", "37474f"):
        assert tuple(int(hex_colour[i : i + 2], 16) for i in (0, 2, 4)) in colours, hex_colour
    dom = subprocess.run([*chromium, f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom", page.as_uri()],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    assert dom.count("<tr data-status=") == 3 and "conflict.png" in dom


@pytest.mark.parametrize("transform", ["mp3-96k", "wav-to-flac", "qpdf-rewrite"])
def test_stripped_audio_and_pdf_through_verify(tmp_path: Path, ledger: Ledger, ffmpeg: str, qpdf: str, transform: str) -> None:
    from test_ledger import clip, paragraphs, pdf

    if transform == "qpdf-rewrite":
        works = [tmp_path / f"doc{i}.pdf" for i in range(3)]
        for i, path in enumerate(works):
            path.write_bytes(pdf(paragraphs(100 + i)))
    else:
        works = [tmp_path / f"song{i}.{'mp3' if transform == 'mp3-96k' else 'wav'}" for i in range(3)]
        for i, path in enumerate(works):
            wav = tmp_path / f"src{i}.wav"
            wav.write_bytes(clip(200 + i))
            if transform == "mp3-96k":
                subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(wav), "-b:a", "192k", str(path)], check=True)
            else:
                shutil.copy(wav, path)
    for path in works:
        assert rightsmeta.tag(path, DENY, ledger=ledger).status == "tagged"
    original = works[1]
    copy = tmp_path / {"mp3-96k": "copy.mp3", "wav-to-flac": "copy.flac", "qpdf-rewrite": "copy.pdf"}[transform]
    if transform == "qpdf-rewrite":
        # A rewrite that keeps the content but not our metadata: the XMP stream and Info keys dropped.
        import pypdf

        reader = pypdf.PdfReader(original)
        writer = pypdf.PdfWriter()
        for page in reader.pages:
            writer.add_page(page)
        stripped = tmp_path / "stripped.pdf"
        with open(stripped, "wb") as fh:
            writer.write(fh)
        subprocess.run([qpdf, "--object-streams=generate", str(stripped), str(copy)], check=True)
    else:
        args = ["-map_metadata", "-1", "-b:a", "96k"] if transform == "mp3-96k" else ["-map_metadata", "-1"]
        subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(original), *args, str(copy)], check=True)
    verdict = verify(copy, ledger=ledger)
    assert verdict.status == "stripped", verdict.reasons
    assert verdict.match is not None and verdict.match.work.path == str(original.resolve())
    assert verdict.match.exact == (transform != "mp3-96k")


def test_a_stripped_copy_is_honoured_as_its_work_would_be(tmp_path: Path, ledger: Ledger) -> None:
    # "effective" is what a user must honour. A work that reserves data mining reserves the AI
    # purposes too; its stripped copy used to report them all "unspecified" there (fail open).
    work = photo(tmp_path, "work.png", 3)
    assert rightsmeta.tag(work, Assertion.build(deny=["data-mining"]), ledger=ledger).status == "tagged"
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(_jpeg(_load(work), 90))
    row = verify(copy, ledger=ledger).to_json()
    assert row["status"] == "stripped"
    assert row["permissions"]["ai-training"] == "unspecified"
    assert {p: row["effective"][p] for p in ("data-mining", "ai-training", "genai-training", "ai-inference")} == dict.fromkeys(
        ("data-mining", "ai-training", "genai-training", "ai-inference"), "notAllowed")
    assert row["effective"]["search"] == "unspecified"


@pytest.mark.parametrize("transform", ["exiftool-strip", "jpeg-q70"])
def test_a_work_tagged_again_is_honoured_as_last_tagged(tmp_path: Path, exiftool: str, ledger: Ledger, transform: str) -> None:
    # The creator denied AI, then allowed everything: the copy used to be "stripped" with data
    # mining allowed and the AI purposes notAllowed, a mix the creator never stated.
    work = photo(tmp_path, "p.jpg", 5)
    for statement in (Assertion.build(deny=["ai"]), Assertion.build(allow=["all"])):
        assert rightsmeta.tag(work, statement, ledger=ledger).status == "tagged"
    copy = tmp_path / "copy.jpg"
    if transform == "exiftool-strip":
        shutil.copy(work, copy)
        subprocess.run([exiftool, "-all=", "-overwrite_original", "-q", str(copy)], check=True)
    else:
        copy.write_bytes(_jpeg(_load(work), 70))
    row = verify(copy, ledger=ledger).to_json()
    assert row["status"] == "stripped" and row["match"]["exact"] == (transform == "exiftool-strip")
    assert set(row["permissions"].values()) == set(row["effective"].values()) == {"allowed"}, row
    assert "also" not in row["match"]  # the record it replaced is no longer a work of its own
    # Another publisher's claim on the same essence is not the creator re-tagging: the most
    # restrictive statement still wins.
    [mine] = [w for w in ledger if w.assertion.permissions == Assertion.build(allow=["all"]).permissions]
    claim = mine.to_json() | {"id": "registry-1", "assertion": Assertion.build(deny=["ai-training"]).to_json()}
    assert ledger.import_jsonl([json.dumps(claim)], source="https://registry.example/works.jsonl") == 1
    row = verify(copy, ledger=ledger).to_json()
    assert row["permissions"]["ai-training"] == "notAllowed" and row["permissions"]["search"] == "allowed", row


def test_one_recording_tagged_as_two_files_is_not_a_work_tagged_again(tmp_path: Path, ledger: Ledger) -> None:
    """Review: a WAV master and its FLAC share their samples' hash (as two videos with one soundtrack
    do). The FLAC tagged "allowed" after the WAV's "notAllowed" is another file, not the WAV tagged
    again: a stripped copy of the WAV matched both and took the newer FLAC's "allowed" alone."""
    import material

    pcm = material.music(7, seconds=4.0)
    master = tmp_path / "master.wav"
    master.write_bytes(material.wav(pcm))
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(master), str(tmp_path / "master.flac")], check=True)
    copy = tmp_path / "copy.wav"
    shutil.copy(master, copy)  # untagged: the master as it was before tagging
    assert rightsmeta.tag(master, Assertion.build(deny=["ai"]), ledger=ledger).status == "tagged"
    assert rightsmeta.tag(tmp_path / "master.flac", Assertion.build(allow=["all"]), ledger=ledger).status == "tagged"
    works = list(ledger)
    assert len(works) == 2 and works[0].essence_hash == works[1].essence_hash  # the premise
    row = verify(copy, ledger=ledger).to_json()
    assert row["status"] == "stripped" and row["permissions"]["ai-training"] == "notAllowed", row
    assert len(row["match"].get("also", [])) == 1, row


def test_the_services_uploads_never_supersede_each_other(tmp_path: Path, exiftool: str, ledger: Ledger) -> None:
    """Review: the service records an upload as ``upload:NAME``, a name any client with a token
    sends: a later upload of someone's work under the same name, "allowed", must not lift the
    earlier "notAllowed" as if the creator had tagged the file again."""
    from dataclasses import replace

    work = photo(tmp_path, "p.jpg", 5)
    copy = tmp_path / "copy.jpg"
    shutil.copy(work, copy)
    subprocess.run([exiftool, "-all=", "-overwrite_original", "-q", str(copy)], check=True)
    with Ledger.open(tmp_path / "elsewhere.sqlite3") as elsewhere:  # only the uploads' records in ``ledger``
        assert rightsmeta.tag(work, Assertion.build(deny=["ai"]), ledger=elsewhere).status == "tagged"
        [mine] = list(elsewhere)
    for n, statement in enumerate((Assertion.build(deny=["ai"]), Assertion.build(allow=["all"]))):
        assert ledger.record(replace(mine, id=f"upload-{n}", path="upload:p.jpg", assertion=statement,
                                     tagged_at=f"2999-01-0{n + 1}T00:00:00+00:00"))
    row = verify(copy, ledger=ledger).to_json()
    assert row["permissions"]["ai-training"] == "notAllowed", row


def test_two_scans_in_one_process_keep_their_own_ledgers(tmp_path: Path, exiftool: str) -> None:
    """Review: ``verify_many(jobs=1)`` kept its ledger and password in the module's worker globals,
    so a second scan started in the same process (a server's other thread) swapped the first
    one's ledger under it. Two interleaved generators show it without threads."""
    work = photo(tmp_path, "p.jpg", 5)
    copy = tmp_path / "copy.jpg"
    shutil.copy(work, copy)
    subprocess.run([exiftool, "-all=", "-overwrite_original", "-q", str(copy)], check=True)
    with Ledger.open(tmp_path / "mine.sqlite3") as mine:
        assert rightsmeta.tag(work, Assertion.build(deny=["ai"]), ledger=mine).status == "tagged"
    Ledger.open(tmp_path / "empty.sqlite3").close()
    first = verify_many([str(copy)] * 3, ledger_path=str(tmp_path / "mine.sqlite3"))
    second = verify_many([str(copy)] * 3, ledger_path=str(tmp_path / "empty.sqlite3"))
    statuses = [(next(first)["status"], next(second)["status"]) for _ in range(3)]
    assert statuses == [("stripped", "untagged")] * 3


def test_ledger_export_publishes_file_names_unless_asked_for_full_paths(tmp_path: Path) -> None:
    # A registry is published; it used to carry every work's absolute path (/home/alice/private/...).
    runner = CliRunner()
    creator = tmp_path / "creator.sqlite3"
    work = photo(tmp_path, "work.png", 43)
    assert runner.invoke(main, ["tag", str(work), "--deny", "all", "--ledger", str(creator), "--no-sign"]).exit_code == 0
    published = runner.invoke(main, ["ledger", "export", "--ledger", str(creator)])
    kept = runner.invoke(main, ["ledger", "export", "--ledger", str(creator), "--full-paths"])
    assert published.exit_code == kept.exit_code == 0, published.output + kept.output
    assert json.loads(published.stdout)["path"] == "work.png" and str(tmp_path) not in published.stdout
    assert json.loads(kept.stdout)["path"] == str(work)
    assert "--full-paths" in runner.invoke(main, ["ledger", "export", "--help"]).output


def test_a_pdf_stripped_by_exiftool_is_stripped_and_its_revert_intact(
    tmp_path: Path, ledger: Ledger, exiftool: str, poppler: dict[str, str]
) -> None:
    # ExifTool's -all= appends an update whose trailer drops /Info and whose catalog drops
    # /Metadata; the older revision's Info stays in the file, freed. pypdf merges every trailer
    # and so still found that Info: the copy read "partial". A viewer shows the newest revision.
    from test_documents import pdf_bytes, pdfinfo
    from test_ledger import paragraphs

    work = tmp_path / "work.pdf"
    work.write_bytes(pdf_bytes(tuple(paragraphs(7, 3))))
    assert rightsmeta.tag(work, DENY, ledger=ledger).status == "tagged"
    copy = tmp_path / "copy.pdf"
    shutil.copy(work, copy)
    subprocess.run([exiftool, "-q", "-overwrite_original", "-all=", str(copy)], check=True, capture_output=True)
    assert "Custom Metadata: no" in pdfinfo(poppler, copy)  # the peer sees no Info left
    assert rightsmeta.read(copy).carriers == []
    verdict = verify(copy, ledger=ledger)
    assert verdict.status == "stripped", verdict.reasons
    assert verdict.match is not None and verdict.match.work.path == str(work.resolve())
    # ExifTool's revert removes its update: the tagged file again, byte for byte.
    subprocess.run([exiftool, "-q", "-overwrite_original", "-PDF-update:all=", str(copy)], check=True, capture_output=True)
    assert copy.read_bytes() == work.read_bytes()
    assert verify(copy, ledger=ledger).status == "intact"


def test_an_encrypted_copy_is_matched_with_its_password(tmp_path: Path) -> None:
    # verify --password opened the file for reading but not for the ledger: a stripped copy someone
    # encrypted was "unreadable: ... the PDF is encrypted with a password" although the password
    # was given (found running the docs' examples).
    from pypdf import PdfReader, PdfWriter
    from test_documents import DENY_AI, pdf_bytes

    original = pdf_bytes()
    work = tmp_path / "paper.pdf"
    work.write_bytes(original)
    with Ledger.open(tmp_path / "works.sqlite3") as ledger:
        assert rightsmeta.tag(work, DENY_AI, ledger=ledger).status == "tagged"
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(original)))  # the untagged content, encrypted
        writer.encrypt(user_password="open sesame", owner_password="owner", algorithm="AES-256")
        locked = io.BytesIO()
        writer.write(locked)
        from rightsmeta.verify import verify

        found = verify(locked.getvalue(), ledger=ledger, password="open sesame")
        assert found.status == "stripped", found.to_json()
        wrong = verify(locked.getvalue(), ledger=ledger, password="wrong")
        assert wrong.status == "unreadable"
    (tmp_path / "locked.pdf").write_bytes(locked.getvalue())
    cli = CliRunner().invoke(main, ["verify", "--ledger", str(tmp_path / "works.sqlite3"), "--password", "open sesame",
                                    "--json", str(tmp_path / "locked.pdf")])
    assert json.loads(cli.stdout)[0]["status"] == "stripped", cli.output
