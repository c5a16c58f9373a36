"""Fail closed under damage, races and hostile values (issue 11: items 1, 2, 4, 8, 9, 10, 17;
issue 10 item 5). Every file here is real: made by pypdf, ffmpeg, Pillow, c2pa, or by rightsmeta
itself and then damaged the way the adversarial run damaged them."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image
from samples import image_bytes
from test_documents import pdf_bytes

import rightsmeta
from rightsmeta import Assertion, api, keys
from rightsmeta.carriers import audio, audiotags, pdf, pdfobjects
from rightsmeta.cli import main
from rightsmeta.fsio import open_buffer
from rightsmeta.model import Purpose
from rightsmeta.verify import classify, verify_many

REPO = Path(__file__).resolve().parent.parent
DENY_AI = Assertion.build(deny=["ai"])
AI = Purpose.AI_TRAINING


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


def _cli(*args: str, cwd: Path, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[bytes]:
    """The real command in its own process: a hang is a timeout, a crash an exit status."""
    return subprocess.run([sys.executable, "-m", "rightsmeta", *args], cwd=cwd, env=_env(**env),
                          capture_output=True, timeout=timeout, check=False)


# --- 11.1: a damaged newest PDF revision is an error, not the older revision ------------------------


def _exiftool_warning(exiftool: str, path: Path) -> str:
    done = subprocess.run([exiftool, "-j", "-warning", str(path)], capture_output=True, text=True, check=False)
    return str(json.loads(done.stdout)[0].get("Warning", ""))


def test_pdf_with_a_damaged_newest_revision_does_not_read_as_the_older_one(exiftool: str, qpdf: str, tmp_path: Path) -> None:
    original = pdf_bytes()
    tagged = rightsmeta.tag_bytes(original, DENY_AI)
    assert tagged.startswith(original)  # an incremental update
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(AI)
    last = tagged.rindex(b"startxref")
    mutants = {"startxreF": tagged[:last] + b"startxreF" + tagged[last + 9:]}
    # A cut anywhere inside the update, past its first object header (before that, the update's
    # bytes carry nothing and the file is the original).
    first = tagged.index(b" obj", len(original)) + 4
    mutants.update({f"cut at {cut}": tagged[:cut] for cut in range(first, len(tagged) - 7, 41)})
    for name, data in mutants.items():
        report = api.read(data)
        assert not report.may_use(AI), name
        assert any("newest revision of this PDF is damaged" in e for e in report.errors), (name, report.errors)
    # Tools nobody here wrote see the damage too.
    damaged = tmp_path / "startxreF.pdf"
    damaged.write_bytes(mutants["startxreF"])
    assert _exiftool_warning(exiftool, damaged) == "Invalid xref table"
    checked = subprocess.run([qpdf, "--check", str(damaged)], capture_output=True, text=True, check=False)
    assert "file is damaged" in checked.stderr + checked.stdout


def test_pdf_with_a_wrong_offset_on_its_newest_startxref_still_reads_the_newest_revision() -> None:
    # pypdf rebuilds the cross-references then, newest objects included: that is no step back.
    tagged = rightsmeta.tag_bytes(pdf_bytes(), DENY_AI)
    last = tagged.rindex(b"startxref")
    report = api.read(tagged[:last] + b"startxref\n99999999\n%%EOF\n")
    assert report.errors == [] and report.permissions[AI].state.value == "notAllowed"


# --- session 12: a newest revision pypdf's repairs or a wrong pointer would leave out --------------------


def _two_revisions() -> tuple[bytes, bytes]:
    """A PDF tagged "allowed" by holder Old, and that one tagged "AI not allowed" by New: two
    incremental updates, the second rewriting the first one's XMP (object 9) and Info."""
    older = rightsmeta.tag_bytes(pdf_bytes(), Assertion.build(allow=["all"], holder="Old"))
    newer = rightsmeta.tag_bytes(older, Assertion.build(deny=["ai"], holder="New"))
    assert newer.startswith(older) and not api.read(newer).may_use(AI) and api.read(older).may_use(AI)
    return older, newer


def _older_signals(report: Any) -> list[str]:
    return [c.name for c in report.carriers if "Old" in json.dumps(c.values)]


def test_pdf_whose_last_startxref_names_the_older_revision_is_not_read_as_it(tmp_path: Path) -> None:
    # Both readers followed the chain the last startxref leads to: the older revision's, whose
    # "allowed" was the answer; the newest revision after it was never read.
    older, newer = _two_revisions()
    last, older_section = newer.rindex(b"startxref"), older[older.rindex(b"startxref"):].split()[1]
    data = newer[:last] + b"startxref\n" + older_section + b"\n%%EOF\n"
    report = api.read(data)
    assert not report.may_use(AI) and _older_signals(report) == []
    assert any("which was not read: the startxref or a /Prev points wrong" in e for e in report.errors), report.errors
    # Tagging it would chain a third revision to the older one, the newest lost for good: refused.
    path = tmp_path / "pointing-back.pdf"
    path.write_bytes(data)
    done = _cli("tag", str(path), "--deny", "ai", "--no-ledger", "--no-sign", cwd=tmp_path)
    assert done.returncode != 0 and b"points wrong" in done.stderr + done.stdout
    assert path.read_bytes() == data


def test_pdf_whose_newest_metadata_object_is_damaged_is_not_read_from_the_older_revision() -> None:
    # One digit of the newest object's header changed: pypdf, not finding object 9 where the
    # newest table puts it, searched the file from its start and read the older revision's XMP.
    _, newer = _two_revisions()
    at = newer.rindex(b"9 0 obj")
    report = api.read(newer[:at] + b"8" + newer[at + 1:])
    assert not report.may_use(AI) and _older_signals(report) == [], report.carriers
    assert any("older revision's object 9" in e and "its object was not read" in e for e in report.errors), report.errors


@pytest.mark.parametrize(("old", "new"), [(b" /Root 3 0 R", b""), (b"/Root 3 0 R", b"/Root 99 0 R")])
def test_pdf_whose_newest_trailer_names_no_catalog_is_an_error(old: bytes, new: bytes) -> None:
    # Every trailer is merged into one, so an older trailer's /Root stood in for a missing one;
    # and a /Root naming nothing made pypdf take the lowest-numbered catalog of any revision.
    _, newer = _two_revisions()
    trailer = newer.rindex(b"trailer")
    assert newer.count(old, trailer) == 1
    report = api.read(newer[:trailer] + newer[trailer:].replace(old, new))
    assert not report.may_use(AI) and report.carriers == []
    assert any("catalog was not read" in e for e in report.errors), report.errors


def test_pdf_revisions_read_as_before_where_nothing_is_damaged() -> None:
    # The checks above look only at what pypdf repaired or what follows the chain: two intact
    # revisions read as they did, with no error.
    older, newer = _two_revisions()
    for data in (older, newer):
        report = api.read(data)
        assert report.errors == [] and [c.name for c in report.carriers] == ["xmp", "info"]


# --- session 12: one damaged byte in an ExifTool update's table entry or /Metadata key ---------------


def _exiftool_tagged(exiftool: str, tmp_path: Path, data: bytes, name: str = "tagged.pdf") -> bytes:
    """``data`` with ExifTool's XMP-only incremental update (%BeginExifToolUpdate): PLUS data
    mining prohibited, as the mutation campaign's originals were tagged."""
    path = tmp_path / name
    path.write_bytes(data)
    subprocess.run([exiftool, "-q", "-overwrite_original", "-XMP-plus:DataMining#=DMI-PROHIBITED-AIMLTRAINING",
                    str(path)], check=True, capture_output=True)
    return path.read_bytes()


def _catalog_entry(tagged: bytes) -> int:
    """Where the newest table's entry for the catalog starts (ExifTool lists each object in a
    subsection of its own: "3 1", then the entry)."""
    trailer = tagged.rindex(b"trailer")
    root = tagged[trailer:].split(b"/Root", 1)[1].split()[0]
    return tagged.index(b"\n" + root + b" 1", tagged.rindex(b"xref", 0, trailer)) + len(root) + 4


@pytest.mark.parametrize(("at", "damage"), [
    (11, b"4"),  # generation "00000" made "40000"
    (14, b"2"),  # "00020"
    (17, b"f"),  # in use made free
    (6, b"p"),  # an offset digit garbled: the entry no longer reads
    (3, b"\x10"),
    (7, b"\xfc\xff\xff"),  # three bytes, the offset's end and the space after it
])
def test_pdf_whose_newest_catalog_entry_is_damaged_is_not_read_as_the_older_catalog(
        exiftool: str, tmp_path: Path, at: int, damage: bytes) -> None:
    # A mutation campaign's find: the catalog's entry in ExifTool's update damaged, both readers
    # took the original's catalog (no /Metadata): "no rights signals found", no error.
    tagged = _exiftool_tagged(exiftool, tmp_path, pdf_bytes())
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(AI)
    entry = _catalog_entry(tagged)
    assert tagged[entry + 10:entry + 18] == b" 00000 n"
    damaged = tagged[:entry + at] + damage + tagged[entry + at + len(damage):]
    report = api.read(damaged)
    assert not report.may_use(AI) and report.carriers == [], report.carriers
    assert any("newest cross-reference entry for object" in e and "was not read" in e for e in report.errors), report.errors


@pytest.mark.parametrize("damage", [b"4", b"f"])
def test_pdf_whose_newest_metadata_entry_is_damaged_is_not_read_from_the_older_revision(damage: bytes) -> None:
    # The same damage on the metadata stream's entry: both revisions define object 9, and the
    # older one's XMP ("allowed", holder Old) was read as the document's.
    _, newer = _two_revisions()
    entry = newer.index(b"\n9 1\n", newer.rindex(b"\nxref")) + 5
    at = 11 if damage == b"4" else 17
    report = api.read(newer[:entry + at] + damage + newer[entry + at + 1:])
    assert _older_signals(report) == [], report.carriers
    assert any("entry for object 9" in e and "was not read" in e for e in report.errors), report.errors


@pytest.mark.parametrize(("old", "new"), [
    (b"/Metadata ", b"/Mepadata "),  # the key misspelt: the reference now under a name nobody reads
    (b"/Metadata ", b"/Metadata0"),  # "/Metadata06 0 R": a name, then "0 R"
    (b"\n/Metadata", b"\x7f\xff\xffetadata"),  # bytes before it overwritten
])
def test_pdf_whose_update_names_its_metadata_stream_under_a_damaged_key_is_an_error(
        exiftool: str, tmp_path: Path, old: bytes, new: bytes) -> None:
    # The catalog ExifTool's update wrote no longer names the metadata stream the update added:
    # read, the document had no XMP at all (no error, use allowed).
    tagged = _exiftool_tagged(exiftool, tmp_path, pdf_bytes())
    update = tagged.index(b"%BeginExifToolUpdate")
    assert tagged.count(old, update) == 1
    damaged = tagged[:update] + tagged[update:].replace(old, new)
    report = api.read(damaged)
    assert not report.may_use(AI) and report.carriers == [], report.carriers
    assert any("adds an XMP metadata stream" in e and "was not read" in e for e in report.errors), report.errors


def _shift_catalog_offset(tagged: bytes) -> bytes:
    entry = _catalog_entry(tagged)  # its last offset digit changed: 5 bytes off, no header there
    return tagged[:entry + 9] + str((int(tagged[entry + 9:entry + 10]) + 5) % 10).encode() + tagged[entry + 10:]


def _in_update(old: bytes, new: bytes) -> Any:
    def damage(tagged: bytes) -> bytes:
        update = tagged.index(b"%BeginExifToolUpdate")
        assert tagged.count(old, update) == 1, old
        return tagged[:update] + tagged[update:].replace(old, new)
    return damage


@pytest.mark.parametrize(("damage", "says"), [
    (_shift_catalog_offset, "would be read instead; the newest one was not read"),
    # the metadata stream's own header: the catalog names an object that is nowhere
    (lambda t: _in_update(b"\n%d 0 obj" % int(t.split(b"/Metadata ")[-1].split()[0]), b"\np 0 obj")(t),
     "it is nowhere in the file"),
    (_in_update(b" R\n/Metadata", b" Rf/Metadata"), "names /Metadata, but the catalog read has none"),
    (_in_update(b"/Pages 2 0 R", b"/Pages p 0 R"), "names /Metadata, but the catalog read has none"),
    # the catalog's subsection header: "3 1" made "4 1", the catalog listed under the page's number
    (lambda t: t[:_catalog_entry(t) - 4] + b"4" + t[_catalog_entry(t) - 3:], "holds object 3 0: the table is damaged"),
    # its line end overwritten: "3 1\x7f0000000474 00000 n"
    (lambda t: t[:_catalog_entry(t) - 1] + b"\x7f" + t[_catalog_entry(t):], "runs into its first entry"),
], ids=["catalog offset digit", "metadata stream header", "byte before /Metadata", "/Pages value", "subsection header",
        "subsection line end"])
def test_pdf_whose_exiftool_update_is_damaged_near_its_catalog_is_an_error(
        exiftool: str, tmp_path: Path, damage: Any, says: str) -> None:
    # The same campaign's other survivors, one byte each: what was read was the older catalog,
    # or the newest one without its /Metadata, or a metadata reference to nothing: no XMP, no error.
    tagged = _exiftool_tagged(exiftool, tmp_path, pdf_bytes())
    damaged = damage(tagged)
    assert damaged != tagged and len(damaged) == len(tagged)
    report = api.read(damaged)
    assert not report.may_use(AI) and report.carriers == [], report.carriers
    assert any(says in e for e in report.errors), report.errors


def _image_with_metadata() -> bytes:
    """A pypdf PDF whose page shows an image XObject with a metadata stream of its own."""
    from pypdf import PdfWriter
    from pypdf.generic import DictionaryObject, NameObject, NumberObject, StreamObject

    writer = PdfWriter()
    page = writer.add_blank_page(200, 200)
    packet = StreamObject()
    packet.set_data(b"<?xpacket begin='' id='W5M0MpCehiHzreSzNTczkc9d'?><x:xmpmeta xmlns:x='adobe:ns:meta/'/>"
                    b"<?xpacket end='w'?>")
    packet.update({NameObject("/Type"): NameObject("/Metadata"), NameObject("/Subtype"): NameObject("/XML")})
    image = StreamObject()
    image.set_data(b"\x00\x00\x00")
    image.update({NameObject("/Type"): NameObject("/XObject"), NameObject("/Subtype"): NameObject("/Image"),
                  NameObject("/Width"): NumberObject(1), NameObject("/Height"): NumberObject(1),
                  NameObject("/ColorSpace"): NameObject("/DeviceRGB"), NameObject("/BitsPerComponent"): NumberObject(8),
                  NameObject("/Metadata"): writer._add_object(packet)})
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/XObject"): DictionaryObject({NameObject("/Im0"): writer._add_object(image)})})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdfs_updated_by_exiftool_and_rightsmeta_read_with_no_false_alarm(
        exiftool: str, qpdf: str, chromium: list[str], tmp_path: Path) -> None:
    # The two checks above judge the newest table's entries and the update's metadata streams;
    # real files of every layout read as before: linearized (the last startxref names the
    # first-page table, which lists the catalog and the image's own metadata stream), with
    # object streams, printed by Chromium, updated twice by ExifTool or by rightsmeta.
    from test_pdf_fast import qpdf_rewrite

    page = tmp_path / "page.html"
    page.write_text("<html><body><h1>Printed</h1><p>by Chromium</p></body></html>")
    subprocess.run([*chromium, f"--print-to-pdf={tmp_path / 'printed.pdf'}", str(page)], check=True,
                   capture_output=True, timeout=120)
    bases = {"pypdf": pdf_bytes(), "image": _image_with_metadata(), "chromium": (tmp_path / "printed.pdf").read_bytes()}
    for name, data in list(bases.items()):
        bases[f"{name}, linearized"] = qpdf_rewrite(qpdf, tmp_path, data, "--linearize", "--object-streams=disable")
        bases[f"{name}, object streams"] = qpdf_rewrite(qpdf, tmp_path, data, "--linearize", "--object-streams=generate")
    for name, data in bases.items():
        assert api.read(data).errors == [], name
        once = _exiftool_tagged(exiftool, tmp_path, data)
        twice = _exiftool_tagged(exiftool, tmp_path, rightsmeta.tag_bytes(once, Assertion.build(allow=["all"])))
        ours = rightsmeta.tag_bytes(rightsmeta.tag_bytes(data, DENY_AI), Assertion.build(allow=["all"]))
        for what, tagged in (("ExifTool", once), ("ExifTool over rightsmeta", twice), ("rightsmeta twice", ours)):
            report = api.read(tagged)
            assert report.errors == [], (name, what, report.errors)
            assert report.may_use(AI) == (what == "rightsmeta twice"), (name, what)


# --- 11.2: an ID3 frame size past the end of the tag --------------------------------------------------


def _frames(tag: bytes) -> list[tuple[bytes, int, int]]:
    """(id, offset in tag, size) of each frame of an ID3v2.4 tag (synchsafe sizes, as mutagen writes)."""
    assert tag[:3] == b"ID3" and tag[3] == 4
    pos, found = 10, []
    end = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(tag[6:10]))
    while pos + 10 <= end and tag[pos:pos + 4].strip(b"\x00"):
        size = sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(tag[pos + 4:pos + 8]))
        found.append((tag[pos:pos + 4], pos, size))
        pos += 10 + size
    return found


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
def test_id3_frame_running_past_the_tag_keeps_the_frames_before_it_and_is_an_error(
    ffmpeg: str, exiftool: str, tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / f"tone.{fmt}"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.3",
                    *(["-c:a", "libmp3lame"] if fmt == "mp3" else ["-write_id3v2", "1"]),
                    "-metadata", "title=Tone", str(path)], check=True)
    tagged = rightsmeta.tag_bytes(path.read_bytes(), DENY_AI)
    start = tagged.index(b"ID3")
    frames = _frames(tagged[start:])
    ours = [i for i, (fid, _, _) in enumerate(frames) if fid == b"TXXX"]
    assert len(ours) >= 5 and frames[-1][0] == b"PRIV"
    for index, (fid, pos, _) in enumerate(frames):
        damaged = bytearray(tagged)
        at = start + pos + 4
        damaged[at:at + 4] = bytes([0x7F, 0x7F, 0x7F, 0x7F])  # 268435455 bytes, synchsafe
        report = api.read(bytes(damaged))
        assert not report.may_use(AI), (fid, index)
        assert any("past the end of the tag" in e for e in report.errors), (fid, index, report.errors)
        record = next(c for c in report.carriers if c.name == "id3")
        kept = [k for k in record.values if k.startswith("TXXX:")]
        assert len(kept) == len([i for i in ours if i < index]), (fid, index, kept)  # the frames before it
        if index == 0:
            path.write_bytes(bytes(damaged))
            assert _exiftool_warning(exiftool, path) == "Invalid ID3 frame size"
    # Only the size was damaged: the untouched file reads clean.
    assert api.read(tagged).errors == []


# --- 11.4: an invalid manifest is an error of the report ---------------------------------------------


def test_a_manifest_that_fails_validation_never_allows_use() -> None:
    identity = keys.make_identity("Test Creator")
    allow_training = Assertion.build(allow=["ai-training"], deny=["genai-training"])
    signed = rightsmeta.tag_bytes(image_bytes("gif"), allow_training, identity=identity)
    clean = api.read(signed)
    assert clean.errors == [] and clean.may_use(AI)  # the statement itself allows AI training
    label = signed.index(b"training-mining")
    invalid = only_validation = 0
    for offset in range(label - 60, label + 240, 3):
        damaged = bytearray(signed)
        damaged[offset:offset + 4] = b"\xff\xff\xff\xff"
        report = api.read(bytes(damaged))
        c2pa = [c for c in report.carriers if c.name == "c2pa"]
        if not c2pa or c2pa[0].values.get("validation_state") != "Invalid":
            continue
        invalid += 1
        assert not report.may_use(AI), offset
        assert any("the manifest failed validation" in e for e in report.errors), (offset, report.errors)
        assert classify(report).status == "tampered", offset
        only_validation += all("failed validation" in e for e in report.errors)
    assert invalid > 10
    assert only_validation > 0  # the case found: nothing but the validation said anything was wrong


# --- 11.8: a file shortened while it is read -----------------------------------------------------------


def test_a_file_truncated_while_read_does_not_kill_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.effect_noise((600, 600), 60).convert("RGB").save(path)
    assert path.stat().st_size > 256 * 1024  # read through a mapping before (above 64 KiB)
    # In a child process: with a mapping, this is SIGBUS, which no Python code can catch.
    code = (
        "import os, sys\n"
        "from rightsmeta.fsio import open_buffer\n"
        "with open_buffer(sys.argv[1]) as buf:\n"
        "    os.truncate(sys.argv[1], 100)\n"
        "    print(len(buf), sum(buf[-65536:]) >= 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], env=_env(), capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert done.stdout.split()[1] == "True"


def test_open_buffer_keeps_a_file_objects_position(tmp_path: Path) -> None:
    path = tmp_path / "f.png"
    path.write_bytes(image_bytes("png", size=(300, 300)))
    with open(path, "rb") as fh:
        fh.seek(123)
        with open_buffer(fh) as buf:
            assert bytes(buf) == path.read_bytes()
        assert fh.tell() == 123


def _grandchildren() -> list[int]:
    """The pool's workers: children of the forkserver, which is our child."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    return [g for c in children.get(os.getpid(), []) for g in children.get(c, [])]


def _in_thread(fn: Any, seconds: float) -> Any:
    """``fn()`` with a deadline: a hang fails the test instead of the run."""
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.setdefault("value", fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    return out["value"]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the workers through /proc")
def test_a_killed_worker_is_noticed_and_every_file_answered(tmp_path: Path) -> None:
    from rightsmeta.ledger import Ledger

    ledger = tmp_path / "ledger.sqlite3"
    Ledger.open(str(ledger)).close()  # empty: every untagged file is decoded and looked up, slowly enough
    paths = []
    # One file per chunk here, a window of four: whenever the kill lands, chunks are still to be
    # submitted to (or running in) the broken pool.
    for i in range(8):
        path = tmp_path / f"noise{i:02d}.png"
        Image.effect_noise((300, 300), 40 + i).convert("RGB").save(path)
        paths.append(str(path))
    killed: list[int] = []

    def scan() -> list[dict[str, Any]]:
        rows = []
        for row in verify_many(paths, ledger_path=str(ledger), jobs=2):
            rows.append(row)
            if len(rows) == 1:  # chunks are in flight now: kill a worker under them
                workers = _grandchildren()
                assert workers
                os.kill(workers[0], signal.SIGKILL)
                killed.append(workers[0])
        return rows

    rows = _in_thread(scan, 90)
    assert killed
    assert [r["path"] for r in rows] == paths
    assert {r["status"] for r in rows} == {"untagged"}  # the lost files were read again, fine this time


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the workers through /proc")
def test_a_scan_stopped_early_stops_its_workers(tmp_path: Path) -> None:
    from rightsmeta.ledger import Ledger

    ledger = tmp_path / "ledger.sqlite3"
    Ledger.open(str(ledger)).close()
    paths = []
    for i in range(16):
        path = tmp_path / f"noise{i:02d}.png"
        Image.effect_noise((300, 300), 40 + i).convert("RGB").save(path)
        paths.append(str(path))
    rows = verify_many(paths, ledger_path=str(ledger), jobs=2, seconds=300)
    next(rows)
    workers = _grandchildren()
    assert workers
    started = time.monotonic()
    rows.close()  # the consumer goes away with chunks in flight
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
              for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()
                and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]]


def test_workers_that_cannot_start_end_the_scan_with_every_file_reported(tmp_path: Path) -> None:
    # A worker dies before answering (here: it cannot open the ledger): multiprocessing.Pool
    # would start new workers forever and the scan would never end.
    junk = tmp_path / "not-a-ledger.sqlite3"
    junk.write_bytes(os.urandom(4096))
    paths = [str(tmp_path / f"f{i}.png") for i in range(2)]
    for p in paths:
        Path(p).write_bytes(image_bytes("png"))
    rows = _in_thread(lambda: list(verify_many(paths, ledger_path=str(junk), jobs=2)), 60)
    assert [r["path"] for r in rows] == paths
    assert all(r["status"] == "unreadable" and "stopped before it answered" in r["reasons"][0] for r in rows)


# --- 11.9: FIFOs and devices in a tree ----------------------------------------------------------------


def test_a_fifo_in_the_tree_is_reported_not_waited_for(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "photo.png").write_bytes(image_bytes("png"))
    os.mkfifo(tree / "pipe.png")
    read = _cli("read", "-r", "tree", cwd=tmp_path, timeout=30)
    assert read.returncode == 1  # the FIFO is an error of its own report
    assert b"a FIFO, not a regular file; not read" in read.stdout
    checked = _cli("verify", "-r", "tree", "--no-ledger", "--jsonl", cwd=tmp_path, timeout=30)
    rows = {r["path"]: r for r in map(json.loads, checked.stdout.splitlines())}
    assert rows["tree/pipe.png"]["status"] == "unreadable" and rows["tree/photo.png"]["status"] == "untagged"
    tagged = _cli("tag", "-r", "tree", "--deny", "ai", "--no-ledger", "--no-sign", "--json", cwd=tmp_path, timeout=30)
    results = {r["path"]: r for r in json.loads(tagged.stdout)}
    assert results["tree/photo.png"]["status"] == "tagged"
    assert results["tree/pipe.png"]["status"] == "skipped" and "FIFO" in results["tree/pipe.png"]["reason"]


def test_a_fifo_swapped_in_after_the_walk_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "late.png")
    report = _in_thread(lambda: api.read(tmp_path / "late.png"), 30)  # O_NONBLOCK, then refused
    assert report.errors == ["a FIFO, not a regular file; not read"]


# --- 11.10 and 11.17: names and values that are not text ------------------------------------------


@pytest.fixture
def hostile(tmp_path: Path, ffmpeg: str) -> Path:
    """Reserved files whose names and values try to forge output: a newline in dc:rights, an OSC
    escape in ID3 TCOP, names with a newline, a byte that is not UTF-8, a formula."""
    folder = tmp_path / "hostile"
    folder.mkdir()
    marker = b"Z" * 30
    reserved = Assertion.build(deny=["ai"], copyright="(c) Ada " + marker.decode())
    # rightsmeta refuses control characters in what it writes; another tool's edit puts them there.
    jpeg = rightsmeta.tag_bytes(image_bytes("jpeg"), reserved).replace(marker, b"\n  ai-training     allowed".ljust(30))
    tone = tmp_path / "tone.mp3"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.3", "-c:a", "libmp3lame",
                    str(tone)], check=True)
    song = rightsmeta.tag_bytes(tone.read_bytes(), Assertion.build(deny=["ai"], copyright="(c) Ada " + marker.decode()))
    frames = _frames(song)
    tcop = next(pos for fid, pos, _ in frames if fid == b"TCOP")
    song = song[:tcop] + song[tcop:].replace(marker, b"\x1b]0;owned\x07\x1b[2J".ljust(30), 1)
    for name in (b"plain.jpg", b"bad\xff.jpg", b"line\nintact       forged.jpg", b"=HYPERLINK(1).jpg"):
        (folder / os.fsdecode(name)).write_bytes(jpeg)
    (folder / "song.mp3").write_bytes(song)
    return folder


def test_read_escapes_values_and_names(hostile: Path) -> None:
    done = _cli("read", *sorted(os.listdir(hostile)), cwd=hostile, PYTHONIOENCODING="utf-8:strict")
    assert done.stderr == b"" or b"Traceback" not in done.stderr
    out = done.stdout
    assert b"\x1b" not in out and b"\x07" not in out
    lines = out.decode("utf-8").splitlines()  # strict UTF-8: no raw byte of a name leaks
    assert not any(line.strip().startswith("ai-training     allowed") for line in lines)
    assert sum(line.startswith(("plain", "bad", "line", "=HYPER", "song")) for line in lines) == 5
    assert any("dc:rights = (c) Ada \\n  ai-training     allowed" in line for line in lines)
    assert any("TCOP = (c) Ada \\x1b]0;owned\\x07\\x1b[2J" in line for line in lines)
    assert any(line.startswith("bad\\xff.jpg") for line in lines)
    assert any(line.startswith("line\\nintact       forged.jpg") for line in lines)


@pytest.mark.parametrize("fmt", ["text", "jsonl", "csv", "json"])
def test_verify_writes_every_row_under_strict_utf8(hostile: Path, tmp_path: Path, fmt: str) -> None:
    page = tmp_path / "report.html"
    args = ["verify", *sorted(os.listdir(hostile)), "--no-ledger", "--html", str(page)]
    done = _cli(*args, *([] if fmt == "text" else [f"--{fmt}"]), cwd=hostile, PYTHONIOENCODING="utf-8:strict")
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"summary: 5 intact (5 files)" in done.stderr
    names = {os.fsencode(n) for n in os.listdir(hostile)}
    if fmt == "text":
        lines = done.stdout.decode("utf-8").splitlines()
        assert len(lines) == 5 and sum(line.startswith("intact") for line in lines) == 5
        assert "intact       line\\nintact       forged.jpg: signals in xmp" in lines
    elif fmt in ("jsonl", "json"):
        text = done.stdout.decode("utf-8")
        rows = json.loads(text) if fmt == "json" else [json.loads(line) for line in text.splitlines()]
        assert {os.fsencode(r["path"]) for r in rows} == names  # surrogateescape round trip
    else:
        rows = list(csv.DictReader(io.StringIO(done.stdout.decode("utf-8", "surrogateescape"), newline="")))
        assert {os.fsencode(r["path"].removeprefix("'")) for r in rows} == names
        assert {r["path"] for r in rows if "HYPERLINK" in r["path"]} == {"'=HYPERLINK(1).jpg"}
        assert b"bad\xff.jpg" in done.stdout  # the name's own bytes
    html = page.read_text("utf-8")
    assert "bad\\xff.jpg" in html and "line\\nintact       forged.jpg" in html and "\x1b" not in html


def test_tag_escapes_names_too(hostile: Path) -> None:
    done = _cli("tag", *sorted(os.listdir(hostile)), "--deny", "ai", "--dry-run", "--no-sign", cwd=hostile,
                PYTHONIOENCODING="utf-8:strict")
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    lines = done.stdout.decode("utf-8").splitlines()
    assert sum(line.startswith("would tag") for line in lines) == 5
    assert any(line.startswith("would tag  line\\nintact       forged.jpg  (jpeg") for line in lines)
    assert any(line.startswith("would tag  bad\\xff.jpg") for line in lines)


def test_csv_cells_that_start_a_formula_are_neutralised() -> None:
    from rightsmeta.output import Writer

    out = io.StringIO()
    writer = Writer(out, "csv")
    empty = {p.value: "unspecified" for p in Purpose}
    for path in ("=1+1", "+cmd", "-2", "@SUM(A1)", "\tx", "-", "ok.jpg"):
        writer.write({"path": path, "format": None, "status": "untagged", "permissions": empty,
                      "reasons": ["=HYPERLINK(\"http://x\")"], "match": {"path": "@evil", "distance": 0.5}})
    writer.close()
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["path"] for r in rows] == ["'=1+1", "'+cmd", "'-2", "'@SUM(A1)", "'\tx", "-", "ok.jpg"]
    assert {r["reasons"] for r in rows} == {"'=HYPERLINK(\"http://x\")"}
    assert {r["match_path"] for r in rows} == {"'@evil"} and {r["match_distance"] for r in rows} == {"0.5"}


# --- issue 10 item 5: fallbacks are logged, our own bugs are not "malformed files" ------------------


def test_fallbacks_to_pypdf_and_mutagen_are_logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, ffmpeg: str, tmp_path: Path
) -> None:
    tone = tmp_path / "tone.mp3"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.3", "-c:a", "libmp3lame",
                    str(tone)], check=True)
    ffmpeg_tone = tone.read_bytes()
    tagged = rightsmeta.tag_bytes(pdf_bytes(), DENY_AI)
    caplog.set_level(logging.DEBUG, logger="rightsmeta")
    api.read(tagged + b"\x00" * 300)  # junk after %%EOF: pypdf's to read
    assert any(r.levelno == logging.DEBUG and "left the file to pypdf" in r.getMessage() for r in caplog.records)
    caplog.clear()

    def broken(buf: Any) -> Any:
        raise KeyError("a bug in the fast reader")

    monkeypatch.setattr(pdfobjects, "Reader", broken)
    report = api.read(tagged)
    assert report.errors == [] and not report.may_use(AI)  # pypdf read it: only slower...
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "a bug of rightsmeta" in warnings[0].getMessage() and warnings[0].exc_info  # ...and seen
    caplog.clear()

    def id3_bug(*args: Any) -> Any:
        raise IndexError("a bug in the fast ID3 reader")

    monkeypatch.setattr(audiotags, "read_id3", id3_bug)
    song = rightsmeta.tag_bytes(ffmpeg_tone, DENY_AI)
    report = api.read(song)
    assert report.errors == [] and not report.may_use(AI)  # mutagen read it
    assert any(r.levelno == logging.WARNING and "the fast ID3 reader failed (IndexError" in r.getMessage()
               for r in caplog.records)


def test_debug_flag_shows_the_log(tmp_path: Path) -> None:
    path = tmp_path / "junk-tail.pdf"
    path.write_bytes(rightsmeta.tag_bytes(pdf_bytes(), DENY_AI) + b"\x00" * 300)
    quiet = _cli("read", path.name, cwd=tmp_path)
    loud = _cli("--debug", "read", path.name, cwd=tmp_path)
    assert b"left the file to pypdf" not in quiet.stderr
    assert b"rightsmeta: DEBUG: the fast PDF reader left the file to pypdf" in loud.stderr
    assert CliRunner().invoke(main, ["--help"]).output.count("--debug") == 1
    # Why, on that one line: where the fast reader stepped aside, and the reason its code gives.
    line = next(line for line in loud.stderr.decode().splitlines() if "left the file to pypdf" in line)
    at = _raised_at(pdfobjects, "no plain")
    assert line.endswith(f'at pdfobjects.py:{at} (_startxref): no plain "startxref N %%EOF" at the very end: pypdf recovers')


def _raised_at(module: Any, comment: str) -> int:
    """The line of ``module`` that raises LeaveToLibrary with ``comment``."""
    lines = Path(module.__file__).read_text("utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if "raise LeaveToLibrary" in line and comment in line)


def test_debug_log_says_why_the_fast_pdf_reader_stepped_aside(caplog: pytest.LogCaptureFixture) -> None:
    tagged = rightsmeta.tag_bytes(pdf_bytes(), DENY_AI)
    last = tagged.rindex(b"startxref")
    cases = {
        tagged[:last] + b"startxref\n0\n%%EOF\n": "the last startxref points outside the file",
        tagged.replace(b"/Type /Catalog", b"/Type /Katalog"): "pypdf searches the file for a catalog",
    }
    for data, why in cases.items():
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="rightsmeta"):
            api.read(data)
        said = [r.getMessage() for r in caplog.records if "left the file to pypdf" in r.getMessage()]
        assert len(said) == 1 and why in said[0] and ".py:" in said[0], said
    caplog.clear()
    api.read(tagged[:last] + b"startxref\n0\n%%EOF\n")  # DEBUG not shown: nothing said, no source read
    assert not [r for r in caplog.records if r.levelno == logging.DEBUG]


def test_our_own_writer_bugs_are_not_reported_as_malformed_files(ffmpeg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tone = tmp_path / "tone.mp3"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.3", "-c:a", "libmp3lame",
                    str(tone)], check=True)

    def bug(*args: Any) -> None:
        raise ValueError("a bug in our ID3 writer")

    monkeypatch.setattr(audio, "_write_id3", bug)
    with pytest.raises(ValueError, match="a bug in our ID3 writer") as raised:
        audio.write(tone.read_bytes(), "mp3", DENY_AI)
    assert type(raised.value) is ValueError  # not MalformedFile("malformed MP3: mutagen could not write it")

    def pdf_bug(ids: list[int]) -> list[list[int]]:
        raise IndexError("a bug in our PDF update writer")

    monkeypatch.setattr(pdf, "_subsections", pdf_bug)
    with pytest.raises(IndexError, match="a bug in our PDF update writer"):
        pdf.write(pdf_bytes(), "pdf", DENY_AI)


def test_a_bug_while_classifying_does_not_end_a_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rightsmeta import verify as verifier

    paths = []
    for i in range(2):
        path = tmp_path / f"f{i}.png"
        path.write_bytes(image_bytes("png"))
        paths.append(str(path))

    def bug(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in classify")

    monkeypatch.setattr(verifier, "classify", bug)
    started = time.monotonic()
    rows = list(verify_many(paths, jobs=1))
    assert [r["status"] for r in rows] == ["unreadable", "unreadable"] and time.monotonic() - started < 30
    assert "RuntimeError: a bug in classify" in rows[0]["reasons"][0]


def test_an_m4a_whose_boxes_were_shifted_is_an_error(ffmpeg: str, tmp_path: Path) -> None:
    # Found by tests/test_mutations.py: a stretch of moov duplicated into the ilst shifts every
    # box after it; the top-level walk then met zeros, took them for a box "to the end of the
    # file", and the uuid XMP box and the ilst were gone without an error.
    tone = tmp_path / "tone.m4a"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.2", "-c:a", "aac",
                    "-metadata", "title=Tone", str(tone)], check=True)
    tagged = rightsmeta.tag_bytes(tone.read_bytes(), DENY_AI)
    ilst = tagged.index(b"ilst") - 4
    start, length = ilst - 294, 327
    damaged = tagged[:start + length] + tagged[start:start + length] + tagged[start + length:]
    report = api.read(damaged)
    assert not report.may_use(AI)
    assert any("no box type at offset" in e for e in report.errors), report.errors


def test_verify_with_a_ledger_that_cannot_be_opened_is_a_usage_error(tmp_path: Path) -> None:
    junk = tmp_path / "not-a-ledger.sqlite3"
    junk.write_bytes(os.urandom(4096))
    (tmp_path / "f.png").write_bytes(image_bytes("png"))
    for jobs in ("1", "2"):
        done = _cli("verify", "f.png", "--ledger", junk.name, "--jobs", jobs, cwd=tmp_path)
        assert done.returncode == 2 and b"cannot use the ledger" in done.stderr and b"Traceback" not in done.stderr


def test_damaged_files_are_not_tagged_over(ffmpeg: str, tmp_path: Path) -> None:
    # Tagging over the damage would lose what it hides: the frames after a bad ID3 frame size
    # (mutagen drops them when it saves), a PDF's newest revision (the update would chain to the
    # older one). Refused, the file byte-identical.
    tone = tmp_path / "tone.mp3"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.3", "-c:a", "libmp3lame",
                    "-metadata", "title=Tone", "-metadata", "artist=Someone", str(tone)], check=True)
    data = bytearray(tone.read_bytes())
    first = _frames(bytes(data))[0]
    data[first[1] + 4:first[1] + 8] = bytes([0x7F, 0x7F, 0x7F, 0x7F])
    tagged_pdf = rightsmeta.tag_bytes(pdf_bytes(), DENY_AI)
    last = tagged_pdf.rindex(b"startxref")
    cases = {"damaged.mp3": bytes(data), "damaged.pdf": tagged_pdf[:last] + b"startxreF" + tagged_pdf[last + 9:]}
    for name, damaged in cases.items():
        path = tmp_path / name
        path.write_bytes(damaged)
        result = rightsmeta.tag(path, Assertion.build(deny=["all"]))
        assert result.status == "failed" and "before tagging" in (result.reason or ""), (name, result.reason)
        assert path.read_bytes() == damaged


def test_junk_in_id3_padding_is_not_damage(ffmpeg: str, tmp_path: Path) -> None:
    # Some taggers leave stale bytes in the padding; mutagen skips them, and so does the check.
    tone = tmp_path / "tone.mp3"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.3", "-c:a", "libmp3lame",
                    str(tone)], check=True)
    tagged = bytearray(rightsmeta.tag_bytes(tone.read_bytes(), DENY_AI))
    frames = _frames(bytes(tagged))
    padding = frames[-1][1] + 10 + frames[-1][2]
    assert tagged[padding:padding + 16] == bytes(16)
    tagged[padding:padding + 10] = b"\x01junk\xff\xff\xff\xff\x00"
    report = api.read(bytes(tagged))
    assert report.errors == [] and report.permissions[AI].state.value == "notAllowed"


@pytest.mark.parametrize("damage", ["name and size", "name zeroed", "header zeroed"])
def test_a_damaged_frame_header_hiding_our_frames_is_an_error(ffmpeg: str, exiftool: str, tmp_path: Path,
                                                               damage: str) -> None:
    # A frame header whose name is no frame name (a flipped bit) and whose size runs past the tag,
    # or one zeroed (read as the start of the padding): mutagen stops there and reads nothing after
    # it, silently; ExifTool warns "Invalid ID3 frame size". The TXXX frames after it were read as
    # padding junk, and the file as having no statement at all (found by a mutation campaign).
    tone = tmp_path / "tone.mp3"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.3", "-c:a", "libmp3lame",
                    "-metadata", "title=Tone", str(tone)], check=True)
    tagged = rightsmeta.tag_bytes(tone.read_bytes(), DENY_AI)
    frames = _frames(tagged)
    first_ours = next(i for i, (fid, _, _) in enumerate(frames) if fid == b"TXXX")
    for index in range(first_ours + 1):
        pos = frames[index][1]
        damaged = bytearray(tagged)
        if damage == "name and size":
            damaged[pos + 1:pos + 8] = b"\xfe\xff\xff\x7f\x00\x00\x06"  # as the campaign's mutant: "T\xfe\xff\xff", size past the tag
        elif damage == "name zeroed":
            damaged[pos:pos + 4] = bytes(4)
        else:
            damaged[pos:pos + 10] = bytes(10)
        report = api.read(bytes(damaged))
        assert not report.may_use(AI), (damage, index, report.errors)
        assert any("frame list" in e and "TXXX" in e for e in report.errors), (damage, index, report.errors)
        if index == 0 and damage == "name and size":
            tone.write_bytes(bytes(damaged))
            assert _exiftool_warning(exiftool, tone) == "Invalid ID3 frame size"
    assert api.read(tagged).errors == []


def test_an_id3_frame_grown_over_the_frames_after_it_is_an_error(ffmpeg: str, tmp_path: Path) -> None:
    # The first frame's size (ffmpeg's TSSE) grown by a damaged byte: it swallows the start of the
    # frames after it, the walk lands in their data and goes on over it as unknown frames (so does
    # mutagen), and the TXXX frames it passed over are not read. Six of these growths read as no
    # statement at all (the one-byte sweep of a rightsmeta-tagged MP3 found one).
    tone = tmp_path / "tone.mp3"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.3", "-c:a", "libmp3lame",
                    str(tone)], check=True)
    tagged = rightsmeta.tag_bytes(tone.read_bytes(), DENY_AI)
    first = _frames(tagged)[0]
    assert first[0] == b"TSSE" and first[2] < 100
    astray = 0
    for grow in range(1, 128 - first[2]):
        damaged = bytearray(tagged)
        damaged[first[1] + 7] += grow
        report = api.read(bytes(damaged))
        assert not report.may_use(AI), (grow, report.errors)
        astray += any("goes astray" in e for e in report.errors)
    assert astray
    assert api.read(tagged).errors == []


PLUS_PACKET = (b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n<x:xmpmeta xmlns:x="adobe:ns:meta/">'
               b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
               b'xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/"><plus:DataMining>'
               b'http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING</plus:DataMining></rdf:Description>'
               b'</rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>')


def _mutagen_tagged_mp3(ffmpeg: str, tmp_path: Path, version: int, *frames: Any) -> bytes:
    """A real MP3 tagged by mutagen alone (as the bench corpus tags them): ``frames`` in an ID3v2 tag."""
    from mutagen.id3 import ID3

    tone = tmp_path / "tone.mp3"
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.3",
                    "-c:a", "libmp3lame", str(tone)], check=True)
    tags = ID3()
    for frame in frames:
        tags.add(frame)
    tags.save(tone, v2_version=version)
    return tone.read_bytes()


@pytest.mark.parametrize("version", [3, 4])
def test_an_id3_frame_holding_xmp_under_a_damaged_name_owner_or_flags_is_an_error(
        ffmpeg: str, tmp_path: Path, version: int) -> None:
    # A PRIV frame's name or its owner "XMP" damaged by one byte, or a flag set that changes how
    # its content is read: mutagen and ExifTool see some other frame or owner and drop the packet
    # without a word, and a file whose only statement it was read as having none (the one-byte
    # sweep of a mutagen-tagged MP3: 43 of 29,928 mutants read as usable).
    from mutagen.id3 import PRIV, TCOP

    tagged = _mutagen_tagged_mp3(ffmpeg, tmp_path, version, TCOP(encoding=3, text=["(c) someone"]),
                                 PRIV(owner="XMP", data=PLUS_PACKET))
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(AI)
    priv = tagged.index(b"PRIV")
    assert tagged[priv + 10:priv + 14] == b"XMP\x00"
    damages = {f"byte {i} of name and owner": (priv + (i if i < 4 else 6 + i), b"0") for i in range(8)}
    flags = {3: {"compressed": 0x80, "encrypted": 0x40, "grouped": 0x20},
             4: {"grouped": 0x40, "compressed": 0x08, "encrypted": 0x04, "with a data length": 0x01}}[version]
    damages |= {name: (priv + 9, bytes([flag])) for name, flag in flags.items()}
    for name, (at, value) in damages.items():
        damaged = tagged[:at] + value + tagged[at + 1:]
        report = api.read(damaged)
        assert not report.may_use(AI), (name, report.errors)
        assert any("holds an XMP packet but is not a PRIV frame" in e for e in report.errors), (name, report.errors)


def test_id3_frames_near_an_xmp_packet_read_as_before(ffmpeg: str, tmp_path: Path) -> None:
    # The check above looks only at PRIV frames and unknown names: Windows Media's PRIV frames, a
    # GEOB holding an .xmp file, and the PRIV:XMP frame itself read with no error.
    from mutagen.id3 import GEOB, PRIV

    tagged = _mutagen_tagged_mp3(
        ffmpeg, tmp_path, 3,
        PRIV(owner="WM/MediaClassPrimaryID", data=bytes(range(16))), PRIV(owner="PeakValue", data=b"\x10\x27\x00\x00"),
        GEOB(encoding=0, mime="application/rdf+xml", filename="a.xmp", desc="", data=PLUS_PACKET),
        PRIV(owner="XMP", data=PLUS_PACKET))
    report = api.read(tagged)
    assert report.errors == [] and report.permissions[AI].state.value == "notAllowed"


@pytest.mark.parametrize("carrier", ["mutagen's WAV id3 chunk", "rightsmeta's AIFF ID3 chunk", "a WAV _PMX chunk"])
def test_a_tag_chunk_under_a_damaged_name_is_an_error(ffmpeg: str, tmp_path: Path, carrier: str) -> None:
    # One byte of the name of the chunk holding the tag damaged: mutagen and ExifTool skip the
    # chunk, and a file whose statement it held read as having none (the one-byte sweep of a
    # mutagen-tagged WAV: 20 of 27,630 mutants read as usable).
    from mutagen.id3 import PRIV
    from mutagen.wave import WAVE

    fmt = "aiff" if "AIFF" in carrier else "wav"
    path = tmp_path / f"tone.{fmt}"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.3", str(path)], check=True)
    if carrier.startswith("mutagen"):
        wav = WAVE(path)
        wav.add_tags()
        wav.tags.add(PRIV(owner="XMP", data=PLUS_PACKET))
        wav.save()
        name = b"id3 "
    elif carrier.startswith("rightsmeta"):
        path.write_bytes(rightsmeta.tag_bytes(path.read_bytes(), DENY_AI))
        name = b"ID3 "
    else:  # as test_audio.py adds one: the packet in a chunk of its own after the audio
        data = path.read_bytes()
        chunk = b"_PMX" + len(PLUS_PACKET).to_bytes(4, "little") + PLUS_PACKET + b"\x00" * (len(PLUS_PACKET) & 1)
        path.write_bytes(data[:4] + (len(data) - 8 + len(chunk)).to_bytes(4, "little") + data[8:] + chunk)
        name = b"_PMX"
    tagged = path.read_bytes()
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(AI)
    at = tagged.rindex(name)
    for i in range(4):
        damaged = tagged[:at + i] + b"0" + tagged[at + i + 1:]
        report = api.read(damaged)
        assert not report.may_use(AI), (i, report.errors)
        assert any("under a name it is not read under" in e for e in report.errors), (i, report.errors)


@pytest.mark.parametrize("fmt", ["ogg", "opus"])
def test_an_ogg_header_page_that_fails_its_crc_is_an_error(ffmpeg: str, tmp_path: Path, fmt: str) -> None:
    # One byte of a comment's key damaged ("RIGHTSMETA_AITRAINING" -> "RIGHTSMETA_AITRAI0ING"): the
    # comment is read under another name, the record without its AI training state, and the file as
    # usable for AI training (110 of 23,380 one-byte mutants of a rightsmeta-tagged Ogg Vorbis). The
    # page's CRC says it is damaged; a damaged audio page is the essence's business, as before.
    path = tmp_path / f"tone.{fmt}"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.5",
                    "-c:a", "libvorbis" if fmt == "ogg" else "libopus", str(path)], check=True)
    tagged = rightsmeta.tag_bytes(path.read_bytes(), DENY_AI)
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(AI)
    key = tagged.index(b"RIGHTSMETA_AITRAINING=")
    for at in range(key, key + 22):
        damaged = tagged[:at] + b"0" + tagged[at + 1:]
        report = api.read(damaged)
        assert not report.may_use(AI), (at - key, report.errors)
        assert any("does not match its CRC" in e for e in report.errors), (at - key, report.errors)
    last = tagged.rindex(b"OggS")
    at = last + 27 + tagged[last + 26] + 1  # in the last page's audio
    assert api.read(tagged[:at] + bytes([tagged[at] ^ 0x10]) + tagged[at + 1:]).errors == []


def test_a_flac_comment_key_or_block_type_damaged_is_an_error(ffmpeg: str, tmp_path: Path) -> None:
    # FLAC's metadata has no checksum. One byte of "RIGHTSMETA_AITRAINING=" damaged and the record
    # lacked its AI training state, read as unspecified; one byte of the VORBIS_COMMENT block's
    # type and no reader looked at the comments (115 of 61,769 one-byte mutants of a
    # rightsmeta-tagged FLAC read as usable).
    path = tmp_path / "tone.flac"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.3", str(path)], check=True)
    tagged = rightsmeta.tag_bytes(path.read_bytes(), DENY_AI)
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(AI)
    key = tagged.index(b"RIGHTSMETA_AITRAINING=")
    for at in range(key, key + 22):
        report = api.read(tagged[:at] + b"0" + tagged[at + 1:])
        assert not report.may_use(AI), (at - key, report.errors)
        assert any("lacks rightsmeta:AITraining" in e for e in report.errors), (at - key, report.errors)
    block = 8 + 34  # the block after STREAMINFO: ffmpeg writes the comments there
    assert tagged[block] & 0x7F == 4
    for value in (0x01, 0x30, 0x7F):
        report = api.read(tagged[:block] + bytes([value | tagged[block] & 0x80]) + tagged[block + 1:])
        assert not report.may_use(AI), (value, report.errors)
        assert any("holds Vorbis comments under type" in e for e in report.errors), (value, report.errors)


@pytest.mark.parametrize("fmt", ["m4a", "mov"])
def test_an_mp4_xmp_box_under_a_damaged_type_or_uuid_is_an_error(ffmpeg: str, exiftool: str, tmp_path: Path,
                                                                   fmt: str) -> None:
    # ExifTool puts the packet in a top-level uuid box (M4A) or moov/udta/XMP_ (MOV). One byte of
    # the box's type or UUID damaged and no reader takes it for XMP: the file's only statement
    # was skipped (96 of 18,729 one-byte mutants of an ExifTool-tagged M4A read as usable).
    path = tmp_path / f"tone.{fmt}"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.3", "-c:a", "aac",
                    str(path)], check=True)
    subprocess.run([exiftool, "-q", "-overwrite_original", "-XMP-plus:DataMining#=DMI-PROHIBITED-AIMLTRAINING",
                    str(path)], check=True, capture_output=True)
    tagged = path.read_bytes()
    report = api.read(tagged)
    assert report.errors == [] and not report.may_use(AI)
    name, length = (b"uuid", 4 + 16) if fmt == "m4a" else (b"XMP_", 4)
    at = tagged.index(name + bytes.fromhex("BE7ACFCB") if fmt == "m4a" else name)
    for i in range(length):
        damaged = tagged[:at + i] + bytes([tagged[at + i] ^ 0x01]) + tagged[at + i + 1:]
        report = api.read(damaged)
        assert not report.may_use(AI), (i, report.errors)
        assert any("holds an XMP packet under a damaged type or UUID" in e for e in report.errors), (i, report.errors)


def test_an_mp4_box_running_past_its_container_is_an_error(ffmpeg: str, tmp_path: Path) -> None:
    # One byte of a sample table box's size damaged: mutagen walks the rest of the movie askew,
    # misses udta and reads no tags, and a file reserved by a freeform item (as mutagen writes it)
    # read as having no statement (most of 419 of 21,798 one-byte mutants of such an M4A).
    from mutagen.mp4 import MP4, MP4FreeForm

    path = tmp_path / "tone.m4a"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.3", "-c:a", "aac",
                    str(path)], check=True)
    tags = MP4(path)
    tags["----:org.rightsmeta:tdm-reservation"] = [MP4FreeForm(b"1")]
    tags.save()
    tagged = path.read_bytes()
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(AI)
    for name in (b"stts", b"stsc", b"stsz", b"stco", b"hdlr"):
        at = tagged.index(name) - 4
        for k, value in ((0, 0x7F), (2, 0x30)):
            report = api.read(tagged[:at + k] + bytes([value]) + tagged[at + k + 1:])
            assert not report.may_use(AI), (name, k, report.errors)
            assert any("container ends at" in e for e in report.errors), (name, k, report.errors)


def _mutagen_tagged(ffmpeg: str, tmp_path: Path, fmt: str, items: dict[str, bytes]) -> bytes:
    """A real FLAC or M4A tagged by mutagen alone with ``items`` (Vorbis comments; MP4 freeform items)."""
    import mutagen
    from mutagen.mp4 import MP4FreeForm

    path = tmp_path / f"tone.{fmt}"
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.3",
                    *(["-c:a", "aac"] if fmt == "m4a" else []), str(path)], check=True)
    tags = mutagen.File(path)
    for key, value in items.items():
        tags[key] = [MP4FreeForm(value)] if fmt == "m4a" else value.decode()
    tags.save()
    return path.read_bytes()


def test_a_flac_comment_whose_name_is_one_character_off_ours_is_an_error(ffmpeg: str, tmp_path: Path) -> None:
    # Another tool's record of one comment (the bench corpus's: TDM_RESERVATION=1) in a FLAC, whose
    # metadata has no checksum: one byte of its name damaged, or its '=', and the file read as
    # having no statement (80 of 61,787 one-byte mutants).
    tagged = _mutagen_tagged(ffmpeg, tmp_path, "flac", {"COPYRIGHT": b"(c) someone", "TDM_RESERVATION": b"1"})
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(AI)
    key = tagged.index(b"TDM_RESERVATION=1")
    for at in range(key, key + 16):
        report = api.read(tagged[:at] + b"0" + tagged[at + 1:])
        assert not report.may_use(AI), (at - key, report.errors)
        assert any("one character from TDM_RESERVATION" in e for e in report.errors), (at - key, report.errors)
    # Names of ours with more to them, or other tools' names, are no damage.
    clean = _mutagen_tagged(ffmpeg, tmp_path, "flac", {"TDM_RESERVATION": b"1", "RIGHTSMETA_NOTE": b"x",
                                                       "TDM_RESERVATIONS": b"x", "REPLAYGAIN_TRACK_GAIN": b"-3 dB",
                                                       "tdm-reservation": b"1", "rightsmeta:AITraining": b"notAllowed",
                                                       "tdm policy": b"x"})  # a space: foobar2000 spells keys so
    assert api.read(clean).errors == []


def test_an_mp4_item_of_ours_under_a_damaged_atom_name_is_an_error(ffmpeg: str, tmp_path: Path) -> None:
    # A freeform item (mutagen's, as another tool writes one) holding the only statement: one byte of
    # an atom name on the way to it (udta, meta, ilst, '----', data) or of its mean or name damaged, and mutagen skipped it without a word (114 of 21,798 one-byte mutants left
    # after the container check).
    tagged = _mutagen_tagged(ffmpeg, tmp_path, "m4a", {"----:org.rightsmeta:tdm-reservation": b"1"})
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(AI)
    item = tagged.index(b"----")
    names = [tagged.index(n, tagged.index(b"moov")) for n in (b"udta", b"meta", b"ilst")]
    names += [item, tagged.index(b"data", item)]  # (mutagen reads the mean and name atoms whatever their type)
    places = [n + i for n in names for i in range(4)] + [tagged.index(b"org.rightsmeta") + 3,
                                                         tagged.index(b"tdm-reservation") + 3]
    for at in places:
        report = api.read(tagged[:at] + bytes([tagged[at] ^ 0x01]) + tagged[at + 1:])
        assert not report.may_use(AI), (at, report.errors)
        assert any("one character from" in e or "no item of it was read" in e for e in report.errors), (at, report.errors)
    clean = _mutagen_tagged(ffmpeg, tmp_path, "m4a", {"----:org.rightsmeta:tdm-reservation": b"1",
                                                      "----:org.rightsmeta:rightsmeta:Note": b"x",
                                                      "----:com.apple.iTunes:iTunNORM": b" 00000000"})
    assert api.read(clean).errors == []


def test_a_seekable_stream_is_read_whole_whatever_its_position(tmp_path: Path) -> None:
    # An upload already hashed by its caller sits at its end: read from there, a tagged file
    # read as empty, or (part-way) as garbage. Read whole, as a regular file is; position kept.
    import rightsmeta
    from rightsmeta.verify import verify

    tagged = rightsmeta.tag_bytes(image_bytes("png", size=(64, 48)), rightsmeta.Assertion.build(deny=["ai"]))
    for at in (0, 7, len(tagged)):
        upload = io.BytesIO(tagged)
        upload.seek(at)
        report = rightsmeta.read(upload)
        assert report.errors == [] and report.permissions[rightsmeta.Purpose.AI_TRAINING].state is rightsmeta.State.NOT_ALLOWED
        assert upload.tell() == at
        assert verify(upload).status == "intact" and upload.tell() == at


def test_a_stream_that_cannot_seek_is_read_from_where_it_is(tmp_path: Path) -> None:
    # An HTTP body or a pipe: its position is its start (here, after a prefix the caller consumed).
    import rightsmeta

    photo = image_bytes("png", size=(64, 48))
    read_fd, write_fd = os.pipe()
    with os.fdopen(write_fd, "wb") as writer:
        writer.write(b"HEADER" + photo)
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        assert pipe.read(6) == b"HEADER"
        report = rightsmeta.read(pipe)
    assert report.errors == [] and report.format == "png"


@pytest.mark.parametrize("damage", ["bytes inserted", "bytes cut", "directory emptied"])
def test_a_tiff_whose_first_directory_is_not_where_the_header_says_is_an_error(tmp_path: Path, damage: str) -> None:
    # TIFF offsets are absolute: 131 bytes duplicated before the directory (a mutation campaign's
    # find) left the header pointing at bytes that read as a directory of no entries, so no XMP
    # entry: "no rights signals found", usable, with the statement still in the file.
    tagged = rightsmeta.tag_bytes(image_bytes("tiff"), DENY_AI)
    ifd0 = int.from_bytes(tagged[4:8], "little" if tagged[:2] == b"II" else "big")
    at = ifd0 - 200
    assert at > 8
    if damage == "bytes inserted":
        damaged = tagged[:at] + tagged[at - 131:at] + tagged[at:]
    elif damage == "bytes cut":
        damaged = tagged[:at] + tagged[at + 2:]
    else:
        damaged = tagged[:ifd0] + bytes(6) + tagged[ifd0 + 6:]  # no entries, no next directory
    report = api.read(damaged)
    assert not report.may_use(AI) and report.errors, report.errors
    if damage == "directory emptied":  # the others land on bytes read as too many entries: an error already
        assert any("first directory" in e and "no image size" in e for e in report.errors), report.errors
    path = tmp_path / "damaged.tif"
    path.write_bytes(damaged)
    result = CliRunner().invoke(main, ["tag", "--deny", "ai", "--no-ledger", "--no-sign", str(path)])
    assert result.exit_code != 0 and path.read_bytes() == damaged
    assert api.read(tagged).errors == []


# A damaged header of the element holding a C2PA store: c2pa no longer finds the store (nor did
# the read), so a file whose only statement is its manifest (AVIF, GIF) read as untagged, usable.
_STORE_HEADERS = {
    "jpeg": (b"\xff\xeb", b"\xff\xea"),  # APP11 -> APP10
    "png": (b"caBX", b"caBx"),
    "webp": (b"C2PA", b"C2PB"),
    "avif": (b"uuid", b"uqid"),  # the first uuid box is the store's
    "gif": (b"C2PA_GIF", b"C2PB_GIF"),  # the application extension's name
}


@pytest.fixture(scope="module")
def signer() -> keys.Identity:
    return keys.make_identity("Damage Test")


@pytest.mark.parametrize("fmt", sorted(_STORE_HEADERS))
def test_a_manifest_store_whose_header_is_damaged_is_an_error(fmt: str, signer: keys.Identity) -> None:
    signed = rightsmeta.tag_bytes(image_bytes(fmt), DENY_AI, identity=signer)
    assert [c.name for c in api.read(signed).carriers if c.name == "c2pa"] == ["c2pa"]
    was, now = _STORE_HEADERS[fmt]
    at = signed.index(was)
    damaged = signed[:at] + now + signed[at + len(was):]
    report = api.read(damaged)
    # A PNG chunk's CRC covers its type: the damage is found there first.
    said = "CRC mismatch" if fmt == "png" else "C2PA manifest store at bytes"
    assert any(said in e for e in report.errors), report.errors
    assert not report.may_use(AI) and classify(report).status not in ("intact", "untagged")
    assert api.read(signed).errors == [] and api.read(image_bytes(fmt)).errors == []


def _signed(fmt: str, ffmpeg: str, folder: Path, identity: keys.Identity) -> bytes:
    if fmt in ("wav", "m4a"):
        path = folder / f"tone.{fmt}"
        subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.3",
                        *(["-c:a", "aac"] if fmt == "m4a" else []), str(path)], check=True)
        return rightsmeta.tag_bytes(path.read_bytes(), DENY_AI, identity=identity)
    return rightsmeta.tag_bytes(image_bytes(fmt), DENY_AI, identity=identity)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "wav", "m4a"])
def test_a_store_whose_cbor_claims_more_than_it_holds_is_not_given_to_c2pa(
    fmt: str, ffmpeg: str, tmp_path: Path, signer: keys.Identity
) -> None:
    # One byte of a signed WAV (a mutation campaign's find): a text string's length inside an
    # assertion's CBOR read as 1.8 GB; c2pa-python 0.38 took 9 s and 1.8 GB of memory to say so.
    signed = _signed(fmt, ffmpeg, tmp_path, signer)
    box = signed.index(b"jumdc2pa")
    while (box := signed.index(b"cbor", box + 1)) and signed[box - 4:box] == b"jumd":
        pass  # a description box's type ("cbor" UUID), not the CBOR content box after it
    text = next(i for i in range(box + 4, box + 64) if 0x60 <= signed[i] <= 0x77)  # a short text string's head
    damaged = signed[:text] + b"\x7b" + signed[text + 1:]  # now: an 8-byte length follows
    started = time.monotonic()
    report = api.read(damaged)
    assert time.monotonic() - started < 5
    if fmt == "png":  # a chunk's CRC covers the store: the damage is found there first
        assert any("CRC mismatch in b'caBX'" in e for e in report.errors), report.errors
    else:
        store = next(c for c in report.carriers if c.name == "c2pa")
        assert any("the store is damaged" in e and "CBOR" in e for e in store.errors), report.errors
    assert not report.may_use(AI) and classify(report).status not in ("intact", "untagged")
    assert api.read(signed).errors == []


def test_a_store_over_several_app11_segments_is_joined_before_it_is_checked(signer: keys.Identity) -> None:
    # A large store (a thumbnail, ingredients) spans APP11 segments; each continuation repeats the
    # box's LBox and TBox. Split ours in two as c2pa would write it: c2pa still finds the manifest,
    # and the check sees one whole store, not two damaged halves.
    signed = rightsmeta.tag_bytes(image_bytes("jpeg"), DENY_AI, identity=signer)
    at = signed.index(b"\xff\xeb")
    length = int.from_bytes(signed[at + 2:at + 4], "big")
    body = signed[at + 4:at + 2 + length]
    assert body[:2] == b"JP"
    header, payload = body[:8], body[8:]  # CI, En, Z; then the box (LBox, TBox, ...)
    cut = len(payload) // 2
    second = header[:4] + (2).to_bytes(4, "big") + payload[:8] + payload[cut:]
    first = header + payload[:cut]
    split = b"".join(b"\xff\xeb" + (len(part) + 2).to_bytes(2, "big") + part for part in (first, second))
    rewritten = signed[:at] + split + signed[at + 2 + length:]
    report = api.read(rewritten)
    store = next(c for c in report.carriers if c.name == "c2pa")
    assert not any("damaged" in e for e in store.errors), store.errors
    assert store.values.get("validation_state") is not None  # c2pa read the manifest


@pytest.mark.parametrize("damage", ["number", "keyword", "end marker"])
def test_a_pdf_whose_newest_startxref_is_damaged_is_not_read_as_the_older_revision(damage: str) -> None:
    # A mutation campaign's find: the tag's incremental update ended "startxref\n334\x7f\xff\xff\xf8EOF";
    # the fast reader left the file to pypdf, whose recovery read the original revision (before
    # the tag): no statement, usable. Junk after a whole "%%EOF" stays pypdf's to read.
    tagged = rightsmeta.tag_bytes(pdf_bytes(), DENY_AI)
    last = tagged.rindex(b"startxref")
    assert tagged.count(b"startxref") == 2
    if damage == "number":
        damaged = tagged[:last + 13] + b"\x7f\xff\xff\xf8" + tagged[last + 17:]
    elif damage == "keyword":
        damaged = tagged[:last] + b"startxreF" + tagged[last + 9:]
    else:
        damaged = tagged[:-6] + b"%%\xc5OF\n"
    report = api.read(damaged)
    assert not report.may_use(AI) and report.errors, report.errors
    assert api.read(tagged + b"\x00" * 300).errors == []


def test_a_signed_jpeg_inside_a_pdf_or_an_mp3_cover_is_not_the_files_damaged_store(
    ffmpeg: str, tmp_path: Path, signer: keys.Identity
) -> None:
    # Review: the "store not where c2pa reads one" check searched a PDF (a window: the whole file)
    # and an MP3's ID3 tag whole, so a PDF embedding a signed JPEG byte for byte (pdfTeX, img2pdf)
    # or an MP3 whose cover art is one became unreadable, and tag refused them.
    jpeg = rightsmeta.tag_bytes(image_bytes("jpeg"), DENY_AI, identity=signer)
    pdf = pdf_bytes()
    at = pdf.rindex(b"xref")
    embedded = pdf[:at] + b"99 0 obj\n<< /Length %d >>\nstream\n" % len(jpeg) + jpeg + b"\nendstream\nendobj\n" + pdf[at:]
    tone = tmp_path / "tone.mp3"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.3", "-c:a", "libmp3lame",
                    str(tone)], check=True)
    from mutagen.id3 import APIC, ID3

    tags = ID3()
    tags.add(APIC(encoding=3, mime="image/jpeg", type=3, desc="cover", data=jpeg))
    tags.save(str(tone))
    for data in (embedded, tone.read_bytes()):
        report = api.read(data)
        assert not any("not where c2pa reads one" in e for e in report.errors), report.errors


@pytest.mark.parametrize("damage", ["startxref a few bytes off", "bytes before %PDF"])
def test_a_pdf_with_object_streams_whose_newest_chain_is_lost_is_not_read_as_the_original(
    qpdf: str, tmp_path: Path, damage: str
) -> None:
    # Review 1: a tagged PDF with object streams (its update's cross-reference a stream), with its
    # last startxref 3 bytes off or 37 bytes before "%PDF": pypdf rebuilt the table and took the
    # catalog from the original's object stream, so the file read as the untagged original.
    plain, packed = tmp_path / "a.pdf", tmp_path / "packed.pdf"
    Image.new("RGB", (100, 100), "red").save(plain)
    subprocess.run([qpdf, "--object-streams=generate", str(plain), str(packed)], check=True)
    tagged = rightsmeta.tag_bytes(packed.read_bytes(), DENY_AI)
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(AI)
    if damage == "bytes before %PDF":
        damaged = b"X" * 37 + tagged
    else:
        at = tagged.rindex(b"startxref") + len(b"startxref\n")
        end = tagged.index(b"\n", at)
        damaged = tagged[:at] + str(int(tagged[at:end]) + 3).encode() + tagged[end:]
    report = api.read(damaged)
    assert not report.may_use(AI) and any("later revision defines it anew" in e for e in report.errors), report.errors


def _reserved_by_exiftool(exiftool: str, folder: Path, fmt: str, *more: str) -> bytes:
    """A picture ExifTool tagged with PLUS DataMining alone (and ``more`` of its arguments)."""
    photo = folder / f"photo.{fmt}"
    photo.write_bytes(image_bytes(fmt))
    subprocess.run([exiftool, "-q", "-overwrite_original", "-XMP-plus:DataMining=Prohibited for AI/ML training",
                    *more, str(photo)], check=True)
    return photo.read_bytes()


@pytest.mark.parametrize("damage", [(b"22-rdf-syntax-ns#", b"22-rdf-syntax-ms#"), (b"ns.useplus.org", b"ns.usepLus.org"),
                                    (b"/ldf/xmp/1.0/", b"/ldf/xmp/1.1/")])
def test_xmp_whose_namespace_uri_is_damaged_is_an_error(exiftool: str, tmp_path: Path, damage: tuple[bytes, bytes]) -> None:
    # One byte of the RDF namespace URI leaves well-formed XMP with no property in it, and one of
    # PLUS's leaves its DataMining in an unknown schema: a file ExifTool tagged (PLUS alone) read
    # as no statement, usable (engineer P's sweep: about 210 such one-byte mutants a file).
    tagged = _reserved_by_exiftool(exiftool, tmp_path, "jpeg")
    assert not api.read(tagged).may_use(AI) and api.read(tagged).errors == []
    old, new = damage
    damaged = tagged.replace(old, new, 1)
    assert damaged != tagged
    report = api.read(damaged)
    assert not report.may_use(AI) and any("malformed XMP" in e and "damaged" in e for e in report.errors), report.errors


def test_xmp_in_dublin_core_1_0_or_other_schemas_is_no_damage(exiftool: str, tmp_path: Path) -> None:
    # The near-namespace check is kept to the rights vocabularies: DC 1.0's URI is one character
    # from 1.1's, and ExifTool's own schemas (xmp, xmpMM, photoshop) are other schemas altogether.
    tagged = _reserved_by_exiftool(exiftool, tmp_path, "jpeg", "-XMP-xmp:Rating=3", "-XMP-photoshop:City=Paris",
                                   "-XMP-xmpMM:DocumentID=abc", "-XMP-dc:Title=Old").replace(b"http://purl.org/dc/elements/1.1/", b"http://purl.org/dc/elements/1.0/")
    assert b"http://purl.org/dc/elements/1.0/" in tagged
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(AI)


@pytest.mark.parametrize("at", ["marker", "name"])
def test_a_jpeg_xmp_segment_whose_marker_or_name_is_damaged_is_an_error(exiftool: str, tmp_path: Path, at: str) -> None:
    # bench/sweep.py over an ExifTool-tagged JPEG: a byte of the APP1 marker or of its
    # "http://ns.adobe.com/xap/1.0/" name left the packet in a segment no reader takes for XMP, and
    # the file read as no statement, usable.
    tagged = _reserved_by_exiftool(exiftool, tmp_path, "jpeg")
    name = tagged.index(b"http://ns.adobe.com/xap/1.0/\x00<?xpacket")
    spot = name - 3 if at == "marker" else name + 10  # the 0xE1 of its marker, or a byte of its name
    damaged = tagged[:spot] + b"0" + tagged[spot + 1:]
    report = api.read(damaged)
    assert not report.may_use(AI) and any("holds an XMP packet or EXIF under a damaged" in e for e in report.errors), report.errors
    assert api.read(tagged).errors == []


@pytest.mark.parametrize("spot", ["type", "keyword"])
def test_a_png_xmp_chunk_whose_type_or_keyword_is_damaged_is_an_error(exiftool: str, tmp_path: Path, spot: str) -> None:
    # bench/sweep.py over an ExifTool-tagged PNG: a byte of the iTXt type or of its
    # "XML:com.adobe.xmp" keyword made it a chunk nothing reads, whose CRC nothing checked: the
    # file read as no statement, usable. Every chunk's CRC but the image data's is checked now.
    tagged = _reserved_by_exiftool(exiftool, tmp_path, "png")
    at = tagged.index(b"iTXtXML:com.adobe.xmp") + (1 if spot == "type" else 10)
    damaged = tagged[:at] + b"0" + tagged[at + 1:]
    report = api.read(damaged)
    assert not report.may_use(AI) and any("CRC mismatch" in e for e in report.errors), report.errors
    assert api.read(tagged).errors == []


# --- session 13: an update whose cross-reference is a stream (PDF 1.5) -----------------------------


def _packed(qpdf: str, tmp_path: Path) -> bytes:
    """A PDF whose objects are in object streams and whose cross-reference is a stream (qpdf)."""
    plain, packed = tmp_path / "plain.pdf", tmp_path / "packed.pdf"
    Image.new("RGB", (60, 40), "red").save(plain)
    subprocess.run([qpdf, "--object-streams=generate", str(plain), str(packed)], check=True)
    return packed.read_bytes()


def _reserved_by_pypdf_update(original: bytes) -> bytes:
    """``original`` with pypdf's incremental update (a cross-reference stream) adding a TDM
    reservation to the Info dictionary, and nothing else."""
    from pypdf import PdfWriter

    writer = PdfWriter(io.BytesIO(original), incremental=True)
    writer.add_metadata({"/TDMReservation": "1"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _once(data: bytes, old: bytes, new: bytes, after: int) -> bytes:
    at = data.index(old, after)
    return data[:at] + new + data[at + len(old):]


@pytest.mark.parametrize(("old", "new"), [(b"/Index [3 1 ", b"/Index [3 0 "), (b"/Index [3 1 ", b"/Index [4 1 ")])
def test_pdf_whose_update_cross_reference_stream_is_damaged_does_not_read_as_the_original(
        qpdf: str, tmp_path: Path, old: bytes, new: bytes) -> None:
    # rightsmeta's update of a PDF 1.5 file is a cross-reference stream; a damaged count or first
    # number in its /Index listed the catalog under another number (or none), and pypdf read the
    # original's catalog (in its object stream): the file read as the untagged original, usable.
    original = _packed(qpdf, tmp_path)
    tagged = rightsmeta.tag_bytes(original, DENY_AI)
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(AI)
    damaged = _once(tagged, old, new, len(original))
    report = api.read(damaged)
    assert not report.may_use(AI) and any("cross-reference" in e and "damaged" in e for e in report.errors), report.errors


@pytest.mark.parametrize("damage", ["Info header", "Index first", "Index count", "W generation width"])
def test_pdf_whose_pypdf_update_is_damaged_does_not_read_as_the_original(qpdf: str, tmp_path: Path, damage: str) -> None:
    # pypdf's incremental update (a cross-reference stream) reserving use in the Info dictionary:
    # one damaged byte of the Info object's header or of the stream's /Index or /W, and the
    # original's Info (in its object stream) or none was read, with no error: usable.
    original = _packed(qpdf, tmp_path)
    tagged = _reserved_by_pypdf_update(original)
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(AI)
    start = len(original)
    info = tagged.index(b"/Info ", tagged.index(b"/Type /XRef", start)) + len(b"/Info ")
    number = tagged[info:tagged.index(b" ", info)]
    damaged = {
        "Info header": lambda: _once(tagged, number + b" 0 obj", number + b" 0 \x7fbj", start),
        "Index first": lambda: _once(tagged, b"/Index [ " + number + b" 1 ]", b"/Index [ 4 1 ]", start),
        "Index count": lambda: _once(tagged, b"/Index [ " + number + b" 1 ]", b"/Index [ " + number + b" 0 ]", start),
        "W generation width": lambda: _once(tagged, b"/W [ 1 4 1 ]", b"/W [ 1 4 0 ]", start),
    }[damage]()
    assert damaged != tagged
    report = api.read(damaged)
    assert not report.may_use(AI) and report.errors, (report.errors, report.carriers)


def _with_info_update(original: bytes, info: bytes, info_ref: bytes | None = None) -> bytes:
    """``original`` with a classic incremental update holding the new Info dictionary ``info``; the
    update's trailer names it, or ``info_ref`` (damage)."""
    from pypdf import PdfReader

    trailer = PdfReader(io.BytesIO(original)).trailer
    root, size = trailer.raw_get("/Root"), int(trailer["/Size"])
    refs = pdf._trailer_refs(b"%d %d R" % (root.idnum, root.generation), info_ref or b"%d 0 R" % size, None)
    return original + pdf._increment(original, {size: (0, info)}, size + 1, refs)


def test_pdf_whose_classic_update_of_the_info_dictionary_lost_its_header_is_an_error(tmp_path: Path) -> None:
    # The same damage in an update with a classic table: the Info object's header, and the
    # reservation it alone holds went unread.
    original = pdf_bytes()
    tagged = _with_info_update(original, b"<< /TDMReservation (1) >>")
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(AI)
    at = tagged.rindex(b"/TDMReservation")
    at = tagged.rindex(b" 0 obj", 0, at)
    at = tagged.rindex(b"\n", 0, at) + 1
    report = api.read(tagged[:at] + b"f" + tagged[at + 1:])
    assert not report.may_use(AI) and any("newest one was not read" in e for e in report.errors), report.errors


def test_pdf_updates_with_cross_reference_streams_read_with_no_false_alarm(qpdf: str, tmp_path: Path) -> None:
    # The rules above read intact files as before: updates by pypdf and rightsmeta, one on the other.
    original = _packed(qpdf, tmp_path)
    for data in (original, _reserved_by_pypdf_update(original), rightsmeta.tag_bytes(original, DENY_AI),
                 rightsmeta.tag_bytes(_reserved_by_pypdf_update(original), DENY_AI),
                 _reserved_by_pypdf_update(rightsmeta.tag_bytes(original, DENY_AI))):
        assert api.read(data).errors == []


@pytest.mark.parametrize("damage", [b"0", b"4"])
def test_pdf_whose_updated_info_dictionary_is_no_dictionary_is_an_error(qpdf: str, tmp_path: Path, damage: bytes) -> None:
    # "5 0 obj\n<<" made "5 0 obj0<<" or "5 0 obj\n0<": the Info object the update lists reads
    # as a number, and its reservation as no statement, with no error.
    original = _packed(qpdf, tmp_path)
    tagged = _reserved_by_pypdf_update(original)
    info = tagged.index(b"/Info ", tagged.index(b"/Type /XRef", len(original))) + len(b"/Info ")
    header = tagged.index(tagged[info:tagged.index(b" ", info)] + b" 0 obj\n<<", len(original))
    for at in (tagged.index(b"\n", header), tagged.index(b"<<", header)):
        report = api.read(tagged[:at] + damage + tagged[at + 1:])
        assert not report.may_use(AI) and any("Info dictionary" in e and "not read" in e for e in report.errors), report.errors


# --- session 13 (D2): the reservation in a pypdf update's Info dictionary, damaged ---------------


def _plain(tmp_path: Path) -> bytes:
    """A PDF with a classic cross-reference table and an Info dictionary (Pillow)."""
    path = tmp_path / "plain.pdf"
    Image.new("RGB", (60, 40), "blue").save(path, title="plain")
    return path.read_bytes()


def _reserved_by_exiftool_info(exiftool: str, tmp_path: Path, original: bytes) -> bytes:
    """``original`` with ExifTool's incremental update adding /TDMReservation (1) to the Info
    dictionary (a custom Info key: ExifTool writes it once a config file defines it)."""
    config, path = tmp_path / "tdm.config", tmp_path / "exiftool.pdf"
    config.write_text("%Image::ExifTool::UserDefined = ('Image::ExifTool::PDF::Info' => {TDMReservation => {}});\n1;\n")
    path.write_bytes(original)
    subprocess.run([exiftool, "-config", str(config), "-q", "-overwrite_original", "-PDF:TDMReservation=1", str(path)],
                   check=True)
    return path.read_bytes()


@pytest.mark.parametrize("base", ["packed", "plain", "exiftool"])
@pytest.mark.parametrize(("old", "new"), [
    (b"/TDMReservation (1)", b"/TDMRes0rvation (1)"),  # the key, one character changed
    (b"/TDMReservation (1)", b"/TDMReservatio\x7f (1)"),
    (b"/TDMReservation (1)", b"/TDMReservation0(1)"),  # the key runs into its value
    (b"/TDMReservation (1)", b"0TDMReservation (1)"),  # no longer a name
    (b"/TDMReservation (1)", b"/TDMReservation f1)"),  # the value's parenthesis
    (b"/TDMReservation (1)", b"/TDMReservation (1f"),  # the string runs on to the end
    (b")\n/TDMReservation", b"f\n/TDMReservation"),  # the string before it swallows the key
])
def test_pdf_whose_info_reservation_is_damaged_is_an_error(
        exiftool: str, qpdf: str, tmp_path: Path, base: str, old: bytes, new: bytes) -> None:
    # pypdf's (or ExifTool's) update wrote "/TDMReservation (1)" in the Info dictionary; one
    # damaged byte of the key, of its string or of the string before it, and the key read as
    # another, or as part of a string, or not at all: no statement, usable, with no error (134
    # such mutants of 2,054).
    original = _packed(qpdf, tmp_path) if base == "packed" else _plain(tmp_path)
    tagged = (_reserved_by_exiftool_info(exiftool, tmp_path, original) if base == "exiftool"
              else _reserved_by_pypdf_update(original))
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(AI)
    report = api.read(_once(tagged, old, new, len(original)))
    assert not report.may_use(AI) and any("Info" in e and "not read" in e for e in report.errors), report.errors


@pytest.mark.parametrize("base", ["packed", "plain"])
@pytest.mark.parametrize("damage", [b"0 0 R", b"4 0 R", b"5 00R", b"5 0 0", b"5f0 R"])
def test_pdf_whose_update_trailer_info_reference_is_damaged_is_an_error(
        qpdf: str, tmp_path: Path, base: str, damage: bytes) -> None:
    # The update's cross-reference stream names its new Info dictionary "/Info N 0 R"; damaged,
    # it named another object or none, and pypdf merged the older trailer's Info: no reservation.
    original = _packed(qpdf, tmp_path) if base == "packed" else _plain(tmp_path)
    tagged = _reserved_by_pypdf_update(original)
    at = tagged.index(b"/Info ", tagged.index(b"/Type /XRef", len(original))) + len(b"/Info ")
    ref = tagged[at:tagged.index(b"R", at) + 1]
    number = ref.split()[0]
    damage = damage.replace(b"5", number) if len(number) == 1 else damage
    if damage.split()[0] == number and damage == ref:
        pytest.skip("the damage is the reference itself")
    report = api.read(tagged[:at] + damage + tagged[at + len(ref):])
    assert not report.may_use(AI) and any("Info" in e and "not read" in e for e in report.errors), report.errors


def test_pdf_whose_update_trailer_lost_its_root_is_an_error() -> None:
    # Found by accident (D): a classic update's trailer mangled into "/Prev 708/R /Info 9 0 R"
    # (its /Root gone) read as usable with no error: pypdf merged the older trailers' catalog and
    # Info, the update's reservation unread.
    original = pdf_bytes()
    tagged = _with_info_update(original, b"<< /Title (x) /TDMReservation (1) >>")
    size = int(tagged[tagged.rindex(b"/Size ") + 6:].split()[0]) - 1
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(AI)
    at = tagged.rindex(b"/Prev ")
    prev = tagged[at:tagged.index(b" ", at + 6)]
    mangled = tagged[:at] + prev + b"/R /Info %d 0 R" % size + tagged[tagged.index(b" >>", at):]
    report = api.read(mangled)
    assert not report.may_use(AI) and any("names no catalog" in e for e in report.errors), report.errors


@pytest.mark.parametrize("damage", [b"0 0 R", b"99 0 R"])
def test_pdf_whose_later_update_names_no_info_dictionary_is_an_error(damage: bytes) -> None:
    # rightsmeta's tag reserved use in Info (and XMP); a later update (another tool's) whose
    # trailer's /Info is damaged names no dictionary: the Info's reservation was not read, silently.
    tagged = rightsmeta.tag_bytes(pdf_bytes(), DENY_AI)
    report = api.read(_with_info_update(tagged, b"<< /Producer (another tool) >>", damage))
    assert any("/Info" in e and "not a dictionary" in e for e in report.errors), report.errors


def test_pdf_info_dictionaries_of_other_writers_read_with_no_false_alarm(exiftool: str, qpdf: str, tmp_path: Path) -> None:
    # Ordinary Info keys (and one near a reservation key's length but far from its spelling) from
    # Pillow, pypdf, qpdf and ExifTool, with and without rightsmeta's tag, read as before.
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(100, 100)
    writer.add_metadata({"/Title": "TDMReservation (1) explained", "/Producer": "pypdf", "/TDMStuff": "x",
                         "/TDMPolicies": "y", "/Rights": "z"})
    out = io.BytesIO()
    writer.write(out)
    plain = _plain(tmp_path)
    (tmp_path / "exif.pdf").write_bytes(plain)
    subprocess.run([exiftool, "-q", "-overwrite_original", "-PDF:Title=Rights reserved", "-PDF:Author=someone",
                    "-PDF:Keywords=TDMReservation", str(tmp_path / "exif.pdf")], check=True)
    files = [out.getvalue(), plain, _packed(qpdf, tmp_path), (tmp_path / "exif.pdf").read_bytes(),
             _reserved_by_exiftool_info(exiftool, tmp_path, plain)]
    for data in [*files, *(rightsmeta.tag_bytes(f, DENY_AI) for f in files), *(_reserved_by_pypdf_update(f) for f in files)]:
        assert api.read(data).errors == []


# --- session 13: one damaged byte of a WebP's or GIF's XMP block name ---------------------------------


@pytest.mark.parametrize("spot", [0, 1, 2, 3])
def test_a_webp_xmp_chunk_whose_type_is_damaged_is_an_error(spot: int) -> None:
    # bench/sweep.py over WebPs (VP8, VP8L, VP8X) tagged by rightsmeta or ExifTool: a byte of the
    # "XMP " chunk type made it a chunk nothing reads, and the file read as no statement, usable.
    tagged = rightsmeta.tag_bytes(image_bytes("webp"), DENY_AI)
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(AI)
    at = tagged.index(b"XMP ") + spot
    damaged = tagged[:at] + b"0" + tagged[at + 1:]
    report = api.read(damaged)
    assert not report.may_use(AI) and any("holds an XMP packet or EXIF under a damaged type" in e for e in report.errors), report.errors


@pytest.mark.parametrize("spot", [-2, -1, 0, 6])  # the label 0xFF, the block size 11, "XMP DataXMP"
def test_a_gif_xmp_extension_whose_label_or_name_is_damaged_is_an_error(exiftool: str, tmp_path: Path, spot: int) -> None:
    # bench/sweep.py over an ExifTool-tagged GIF: a byte of the application extension's label,
    # block size or "XMP DataXMP" name left its packet skipped as data sub-blocks (the XMP magic
    # trailer ends them), and the file read as no statement, usable.
    tagged = _reserved_by_exiftool(exiftool, tmp_path, "gif")
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(AI)
    at = tagged.index(b"XMP DataXMP") + spot
    damaged = tagged[:at] + b"0" + tagged[at + 1:]
    report = api.read(damaged)
    assert not report.may_use(AI) and any("holds an XMP packet under a damaged label" in e for e in report.errors), report.errors


@pytest.mark.parametrize("spot", [0, 1])  # the two bytes of tag number 700 (0x02BC)
def test_a_tiff_xmp_entry_whose_tag_number_is_damaged_is_an_error(spot: int) -> None:
    # bench/sweep.py over TIFFs tagged by rightsmeta or ExifTool: a byte of the XMP entry's tag
    # number made it an entry of another tag, and the file read as no statement, usable.
    tagged = rightsmeta.tag_bytes(image_bytes("tiff"), DENY_AI)
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(AI)
    ifd0 = int.from_bytes(tagged[4:8], "little")
    entries = [tagged[ifd0 + 2 + 12 * i: ifd0 + 14 + 12 * i] for i in range(int.from_bytes(tagged[ifd0:ifd0 + 2], "little"))]
    at = ifd0 + 2 + 12 * next(i for i, e in enumerate(entries) if e[:2] == (700).to_bytes(2, "little")) + spot
    damaged = tagged[:at] + b"0" + tagged[at + 1:]
    report = api.read(damaged)
    assert not report.may_use(AI) and any("holds an XMP packet under a damaged tag number" in e for e in report.errors), report.errors


@pytest.mark.parametrize(("fmt", "name", "spot"), [
    ("mp4", b"uuid\xbe\x7a\xcf\xcb", 0),  # the uuid box's type
    ("mp4", b"uuid\xbe\x7a\xcf\xcb", 7),  # a byte of its UUID
    ("mov", b"udta", 1),  # the atom holding XMP_
    ("mov", b"XMP_<?xpacket", 3),  # the XMP_ atom's own name
])
def test_a_video_xmp_box_whose_type_or_uuid_is_damaged_is_an_error(exiftool: str, ffmpeg: str, tmp_path: Path,
                                                                   fmt: str, name: bytes, spot: int) -> None:
    # bench/sweep.py over an MP4 and a MOV ExifTool tagged: a byte of the XMP uuid box's type or
    # UUID, or of a MOV's udta or XMP_ atom name, made a box nothing reads, and the file read as no
    # statement, usable.
    video = tmp_path / f"clip.{fmt}"
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(video)], check=True)
    subprocess.run([exiftool, "-q", "-overwrite_original", "-XMP-plus:DataMining=Prohibited for AI/ML training", str(video)],
                   check=True)
    tagged = video.read_bytes()
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(AI)
    at = tagged.index(name) + spot
    damaged = tagged[:at] + b"0" + tagged[at + 1:]
    report = api.read(damaged)
    assert not report.may_use(AI) and any("holds an XMP packet under a damaged type" in e for e in report.errors), report.errors


def _item_reference(tagged: bytes, item_type: bytes = b"mime\x00application/rdf+xml") -> int:
    """Where the data reference index of the 'iloc' entry of the item of ``item_type`` (by default
    the XMP item) is (a version 0 table with 4-byte offsets and lengths and no base offset, as
    ExifTool leaves Pillow's AVIF)."""
    at = tagged.index(b"iloc") + 4
    assert tagged[at] == 0 and tagged[at + 4:at + 6] == b"\x44\x00", "not the iloc layout this test reads"
    # infe version 2: the item ID, then its protection index (0), then its type
    item = tagged[tagged.index(b"\x00\x00" + item_type) - 2:][:2]
    pos = at + 8
    for _ in range(int.from_bytes(tagged[at + 6:at + 8], "big")):
        if tagged[pos:pos + 2] == item:
            return pos + 2
        pos += 6 + 8 * int.from_bytes(tagged[pos + 4:pos + 6], "big")
    raise AssertionError(f"no iloc entry for the {item_type!r} item")


@pytest.mark.parametrize(("spot", "says"), [
    ("meta", "no 'meta' box"), ("iinf", "holds no 'iinf'"), ("infe", "no 'infe' entry"),
    ("mime", "damaged item type"), ("rdf+xml", "damaged item type or content type"),
    ("reference", "stored in a way rightsmeta does not read"),
])
def test_an_avif_xmp_item_whose_box_type_item_type_or_place_is_damaged_is_an_error(exiftool: str, tmp_path: Path,
                                                                                  spot: str, says: str) -> None:
    # bench/sweep.py over an AVIF and a HEIC ExifTool tagged (about 200 of 6,300 and 8,800 mutants):
    # a byte of the 'meta', 'iinf' or 'infe' box type, of the XMP item's type "mime" or content
    # type, or of its data reference left the packet unread without a word: no statement, usable.
    tagged = _reserved_by_exiftool(exiftool, tmp_path, "avif")
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(AI)
    if spot == "reference":
        at = _item_reference(tagged) + 1
    else:
        at = tagged.index(b"mime\x00application/rdf+xml" if spot == "mime" else spot.encode()) + 1
    damaged = tagged[:at] + b"0" + tagged[at + 1:]
    report = api.read(damaged)
    assert not report.may_use(AI) and any(says in e for e in report.errors), report.errors


def test_an_animated_gif_with_xmp_after_its_loop_extension_reads_without_an_error(exiftool: str, tmp_path: Path) -> None:
    # The damaged-name check looks inside each extension only: the NETSCAPE2.0 loop extension of
    # an animation ends 19 bytes before the XMP extension ExifTool puts after it, and was refused.
    frames = [Image.new("P", (32, 32), i) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], loop=0)
    animation = tmp_path / "animation.gif"
    animation.write_bytes(out.getvalue())
    subprocess.run([exiftool, "-q", "-overwrite_original", "-XMP-dc:Title=Hello", "-XMP-xmp:Rating=3", str(animation)], check=True)
    tagged = animation.read_bytes()
    assert tagged.index(b"NETSCAPE2.0") < tagged.index(b"XMP DataXMP") < tagged.index(b"NETSCAPE2.0") + 60
    report = api.read(tagged)
    assert report.errors == [] and [c.name for c in report.carriers] == ["xmp"]


def _reserved_by_learning_opt_out(exiftool: str, folder: Path, fmt: str) -> bytes:
    """A picture with camera-like EXIF reserved by Exif 3.1 LearningOptOutIn alone (ExifTool)."""
    photo = folder / f"photo.{fmt}"
    photo.write_bytes(image_bytes(fmt, exif=True))
    subprocess.run([exiftool, "-q", "-overwrite_original", "-ExifIFD:LearningOptOutIn=Generative AI/ML Training; Opt-out",
                    str(photo)], check=True)
    return photo.read_bytes()


@pytest.mark.parametrize(("fmt", "name", "spot"), [("webp", b"EXIF", 1), ("avif", b"infe\x02\x00\x00\x00\x00\x02\x00\x00Exif", 13),
                                                   ("avif", b"reference", 0)])
def test_an_exif_block_whose_chunk_or_item_type_is_damaged_is_an_error(exiftool: str, tmp_path: Path, fmt: str,
                                                                       name: bytes, spot: int) -> None:
    # As for XMP: a byte of a WebP's EXIF chunk type or of a HEIF/AVIF Exif item's type left the
    # EXIF unread, and a file reserved by LearningOptOutIn alone read as no statement.
    tagged = _reserved_by_learning_opt_out(exiftool, tmp_path, fmt)
    genai = Purpose.GENAI_TRAINING
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(genai)
    # the chunk type's, or the item type's (infe version 2, item 2) second byte, or the Exif item's data reference
    at = _item_reference(tagged, b"Exif") + 1 if name == b"reference" else tagged.index(name) + spot
    damaged = tagged[:at] + b"0" + tagged[at + 1:]
    report = api.read(damaged)
    says = "its EXIF was not read" if name == b"reference" else "XMP packet or EXIF under a damaged"
    assert not report.may_use(genai) and any(says in e for e in report.errors), report.errors


@pytest.mark.parametrize("text", ['opt-out, "TDMReservation", W3C', "Tags: #TDMPolicy #AI"])
def test_pdf_info_text_that_mentions_a_reservation_key_is_no_damage(text: str, exiftool: str, qpdf: str,
                                                                      tmp_path: Path) -> None:
    # Found in review: a paper about TDMRep whose Keywords or Subject name the key in a text string
    # read as an Info dictionary whose key was damaged. A damaged key is followed by its value.
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes())))
    writer.add_metadata({"/Keywords": text})
    writer.write(tmp_path / "pypdf.pdf")
    subprocess.run([qpdf, "--qdf", str(tmp_path / "pypdf.pdf"), str(tmp_path / "qdf.pdf")], check=True)
    (tmp_path / "plain.pdf").write_bytes(pdf_bytes())
    subprocess.run([exiftool, "-q", "-overwrite_original", f"-PDF:Subject={text}", str(tmp_path / "plain.pdf")],
                   check=True)
    for name in ("qdf.pdf", "plain.pdf"):
        assert api.read((tmp_path / name).read_bytes()).errors == [], name


@pytest.mark.parametrize("fmt", ["avif"])
@pytest.mark.parametrize("damage", ["meta size 8", "hdlr size +8", "hdlr size -8"])
def test_a_heif_meta_box_cut_short_by_a_damaged_size_is_an_error(exiftool: str, tmp_path: Path, fmt: str,
                                                                 damage: str) -> None:
    # Found in review: one byte of the 'meta' box's size (8: no children) or of 'hdlr''s (the next
    # box then read with size 0, running to the end of 'meta') hid 'iinf' and with it every item,
    # the XMP among them: no carrier, no error, usable. pillow_heif refuses such files.
    import struct

    tagged = _reserved_by_exiftool(exiftool, tmp_path, fmt)
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(AI)
    box = b"meta" if damage.startswith("meta") else b"hdlr"
    at = tagged.index(box) - 4
    size = 8 if damage == "meta size 8" else struct.unpack(">I", tagged[at:at + 4])[0] + (8 if "+" in damage else -8)
    report = api.read(tagged[:at] + struct.pack(">I", size) + tagged[at + 4:])
    assert not report.may_use(AI) and report.errors, report.errors


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
@pytest.mark.parametrize("byte", [0, 1])
def test_a_learning_opt_out_whose_tag_number_is_damaged_is_an_error(exiftool: str, tmp_path: Path, fmt: str,
                                                                     byte: int) -> None:
    # B's sweep: a file reserved by Exif 3.1 LearningOptOutIn alone kept ~20 one-byte survivors,
    # among them either byte of the entry's tag number (0x9287): an unknown tag, its value unread.
    tagged = _reserved_by_learning_opt_out(exiftool, tmp_path, fmt)
    genai = Purpose.GENAI_TRAINING
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(genai)
    import struct

    order = "<" if b"II*\x00" in tagged else ">"
    entry = next(tagged.index(head) for head in (struct.pack(order + "HH", 0x9287, t) for t in (1, 3, 7)) if head in tagged)
    at = entry + (byte if order == "<" else 1 - byte)  # the tag's low byte (0) or high byte (1)
    damaged = tagged[:at] + bytes([tagged[at] ^ 0x10]) + tagged[at + 1:]
    report = api.read(damaged)
    assert not report.may_use(genai) and any("LearningOptOutIn" in e and "tag number" in e for e in report.errors), report.errors
    # Camera EXIF with no such entry, and its UserComment and SubSecTime tags (0x9286, 0x9290) near the number: no damage
    plain = tmp_path / f"plain.{fmt}"
    plain.write_bytes(image_bytes(fmt, exif=True))
    subprocess.run([exiftool, "-q", "-overwrite_original", "-ExifIFD:UserComment=hello", "-ExifIFD:SubSecTime=123",
                    str(plain)], check=True)
    assert api.read(plain.read_bytes()).errors == []


@pytest.mark.parametrize("damage", ["Exif name", "APP1 marker", "Exif IFD pointer tag"])
def test_a_jpeg_learning_opt_out_behind_a_damaged_name_or_pointer_is_an_error(exiftool: str, tmp_path: Path,
                                                                               damage: str) -> None:
    # The rest of B's EXIF-only survivors in a JPEG: a byte of APP1's "Exif\0\0" name or of its
    # marker (the segment no longer taken for EXIF), or of IFD0's Exif IFD pointer tag (0x8769:
    # the Exif IFD, LearningOptOutIn in it, unreachable). 49 of 1,993 mutants of the EXIF read as
    # usable with no error before the tag-number check; 39 after it; these are the 39.
    tagged = _reserved_by_learning_opt_out(exiftool, tmp_path, "jpeg")
    genai = Purpose.GENAI_TRAINING
    assert api.read(tagged).errors == [] and not api.read(tagged).may_use(genai)
    if damage == "Exif name":
        at = tagged.index(b"Exif\x00\x00") + 1
    elif damage == "APP1 marker":
        at = tagged.index(b"Exif\x00\x00") - 3
    else:
        at = tagged.index(b"\x87\x69\x00\x04" if b"MM\x00*" in tagged else b"\x69\x87\x04\x00")
    report = api.read(tagged[:at] + bytes([tagged[at] ^ 0x04]) + tagged[at + 1:])
    assert not report.may_use(genai) and report.errors, report.errors
