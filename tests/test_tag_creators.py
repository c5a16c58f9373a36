"""Creators tagging folders (session 13): a photo's older notices in EXIF and IIM, raws in the
ledger, hard-linked sidecars; every file made with Pillow and ExifTool, read back with ExifTool."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import material
from samples import exiftool_json, exiftool_write
from test_creators import _camera_raw

import rightsmeta
from rightsmeta import Assertion, api
from rightsmeta.ledger import Ledger
from rightsmeta.verify import verify

DENY_AI = Assertion.build(deny=["ai"], copyright="(c) 2026 Ada")


def test_a_hard_linked_sidecar_is_split_with_a_note(exiftool: str, tmp_path: Path) -> None:
    # A sidecar with a second name (a backup folder made with cp -l): the atomic rename gives this
    # name the new sidecar and leaves the other with the old statement. Said for a tagged file;
    # a sidecar was split silently.
    raw = tmp_path / "DSC_0001.NEF"
    _camera_raw(exiftool, raw)
    sidecar = tmp_path / "DSC_0001.xmp"
    subprocess.run([exiftool, "-q", "-XMP-xmp:Rating=4", "-o", str(sidecar), str(raw)], check=True)
    (tmp_path / "backup").mkdir()
    os.link(sidecar, tmp_path / "backup" / "DSC_0001.xmp")
    result = rightsmeta.tag(raw, DENY_AI)
    assert result.status == "tagged"
    assert any("DSC_0001.xmp had 2 hard links" in note and "the other 1 still" in note for note in result.notes), result.notes
    assert exiftool_json(exiftool, sidecar, "-XMP-plus:DataMining")["XMP-plus:DataMining"] == "Prohibited for AI/ML training"
    assert "XMP-plus:DataMining" not in exiftool_json(exiftool, tmp_path / "backup" / "DSC_0001.xmp", "-XMP-plus:DataMining")

    # A JPEG whose darktable sidecar is hard-linked: the same note, for the sidecar.
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(material.jpeg(material.photo(12, (64, 48))))
    subprocess.run([exiftool, "-q", "-XMP-xmp:Rating=5", "-o", f"{photo}.xmp", str(photo)], check=True)
    os.link(f"{photo}.xmp", tmp_path / "backup" / "photo.jpg.xmp")
    result = rightsmeta.tag(photo, DENY_AI)
    assert result.status == "tagged" and any("photo.jpg.xmp had 2 hard links" in n for n in result.notes), result.notes


def test_a_raw_tagged_through_its_sidecar_is_recorded_in_the_ledger(exiftool: str, tmp_path: Path) -> None:
    # The ledger is to know every work a creator tagged: a raw (tagged through its sidecar) was not
    # recorded, so a copy of the raw without its sidecar was "untagged".
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    raw = shoot / "DSC_0002.NEF"
    original = _camera_raw(exiftool, raw)
    ledger = Ledger.open(tmp_path / "ledger.db")
    results = api.tag_all([raw], DENY_AI, ledger=ledger)
    assert [r.status for r in results] == ["tagged"] and raw.read_bytes() == original
    works = list(ledger)
    assert len(works) == 1 and works[0].carriers == ["xmp-sidecar"] and works[0].path == str(raw)
    assert works[0].essence_hash is not None  # the raw's own bytes are what identifies it
    # With its sidecar: the recorded work is its, and nothing it recorded is missing.
    verdict = verify(raw, ledger=ledger)
    assert verdict.status == "intact", verdict.reasons
    # The raw copied alone (no sidecar beside it): recognised as the work tagged.
    copy = tmp_path / "copy" / "DSC_0002.NEF"
    copy.parent.mkdir()
    copy.write_bytes(original)
    verdict = verify(copy, ledger=ledger)
    assert verdict.status == "stripped" and verdict.match is not None and verdict.match.work.id == works[0].id, verdict.reasons
    # tag (one file) and --jobs 2 record it too
    other = shoot / "DSC_0003.NEF"
    _camera_raw(exiftool, other)
    assert rightsmeta.tag(other, DENY_AI, ledger=ledger).status == "tagged"
    third = shoot / "DSC_0004.NEF"
    _camera_raw(exiftool, third, "-Artist=Ada")
    assert [r.status for r in api.tag_all([third], DENY_AI, ledger=ledger, jobs=2)] == ["tagged"]
    assert sorted(w.path for w in ledger) == sorted(str(p) for p in (raw, other, third))
    ledger.close()


def _camera_jpeg(exiftool: str, path: Path, *tags: str) -> None:
    """A camera-like JPEG: EXIF with GPS and a thumbnail (ExifTool writes them as cameras do),
    an IPTC IIM block with the Photoshop digest, then ``tags``."""
    path.write_bytes(material.jpeg(material.photo(5, (120, 80))))
    thumb = path.with_name("thumb.jpg")
    thumb.write_bytes(material.jpeg(material.photo(5, (40, 27))))
    exiftool_write(exiftool, path, "-Make=Canon", "-Model=Canon EOS R5", "-DateTimeOriginal=2025:06:01 10:00:00",
                   "-GPSLatitude=48.8584", "-GPSLatitudeRef=N", "-GPSLongitude=2.2945", "-GPSLongitudeRef=E",
                   f"-ThumbnailImage<={thumb}", "-IPTC:By-line=Ada Lovelace", "-IPTC:City=Paris", *tags)
    exiftool_write(exiftool, path, "-IPTCDigest=new")  # as Photoshop leaves it: the IIM and XMP in sync
    thumb.unlink()


_NOTICE_TAGS = ("IFD0:Copyright", "IPTC:CopyrightNotice", "XMP-dc:Rights", "MWG:Copyright")
_CHANGED = ("XMP-", "File:", "System:", "ExifTool:", "IPTC:CopyrightNotice", "IFD0:Copyright", "File:CurrentIPTCDigest",
            "Photoshop:IPTCDigest", "MWG:")


def _others(exiftool: str, path: Path) -> dict[str, object]:
    found = exiftool_json(exiftool, path, "-a", "-b", "-all", "-MWG:all")
    return {k: v for k, v in found.items() if k != "SourceFile" and not k.startswith(_CHANGED)}


def test_a_new_notice_replaces_the_old_one_in_exif_and_iim_too(exiftool: str, tmp_path: Path) -> None:
    # A camera JPEG whose EXIF and IIM carry an old notice: --copyright rewrote XMP dc:rights only,
    # and ExifTool's MWG Copyright (EXIF first, as the MWG guidelines reconcile) still said the old
    # one. Longer (moved to the end of the EXIF block) and shorter (in place) than the old notice.
    for new in ("(c) 2026 Ada Lovelace, all rights reserved; licensing: https://ada.example/licence", "(c) 2026 Ada"):
        photo = tmp_path / "IMG_0001.jpg"
        _camera_jpeg(exiftool, photo, "-EXIF:Copyright=(c) 2020 Old Agency Ltd", "-IPTC:CopyrightNotice=(c) 2020 Old Agency Ltd",
                     "-XMP-dc:Rights=(c) 2020 Old Agency Ltd")
        before = _others(exiftool, photo)
        checked = exiftool_json(exiftool, photo, "-validate", "-warning", "-a")
        assert exiftool_json(exiftool, photo, "-Composite:Copyright", "-MWG:Copyright")["MWG:Copyright"] == "(c) 2020 Old Agency Ltd"
        result = rightsmeta.tag(photo, Assertion.build(deny=["ai"], copyright=new))
        assert result.status == "tagged" and result.carriers == ["xmp", "exif-copyright", "iptc-iim"], result
        found = exiftool_json(exiftool, photo, "-a", "-MWG:Copyright", *(f"-{t}" for t in _NOTICE_TAGS[:3]),
                              "-IPTCDigest", "-CurrentIPTCDigest", "-validate", "-warning")
        assert [found[t] for t in _NOTICE_TAGS] == [new] * 4, found
        assert found["Photoshop:IPTCDigest"] == found["File:CurrentIPTCDigest"]  # still in sync: XMP is believed
        assert (found["ExifTool:Validate"], found.get("ExifTool:Warning")) == (checked["ExifTool:Validate"], checked.get("ExifTool:Warning"))
        assert _others(exiftool, photo) == before  # GPS, thumbnail, camera tags, other IIM: every one as it was
        report = rightsmeta.read(photo)
        assert report.errors == [] and {c.name: c.rights["copyright"] for c in report.carriers if c.rights} == {
            "xmp": new, "exif-copyright": new, "iptc-iim": new}
        assert verify(photo).status == "intact"


def test_an_old_notice_that_cannot_be_replaced_is_said_and_an_iim_out_of_sync_stays_so(exiftool: str, tmp_path: Path) -> None:
    # IIM without a character set is read as Latin-1: a notice in Greek cannot go there, so the old
    # one stays and the note says so (EXIF, UTF-8, takes it). A digest that did not match before
    # (another tool changed the IIM alone) is not made to match: the IIM stays the newer one.
    photo = tmp_path / "IMG_0002.jpg"
    _camera_jpeg(exiftool, photo, "-EXIF:Copyright=(c) 2020 Old", "-IPTC:CopyrightNotice=(c) 2020 Old")
    result = rightsmeta.tag(photo, Assertion.build(deny=["ai"], copyright="© 2026 Αδα"))
    assert result.status == "tagged" and result.carriers == ["xmp", "exif-copyright"], result
    assert any("IPTC IIM copyright notice is left" in n and "Latin-1" in n for n in result.notes), result.notes
    found = exiftool_json(exiftool, photo, "-IFD0:Copyright", "-IPTC:CopyrightNotice")
    assert found["IFD0:Copyright"] == "© 2026 Αδα" and found["IPTC:CopyrightNotice"] == "(c) 2020 Old"

    other = tmp_path / "IMG_0003.jpg"
    _camera_jpeg(exiftool, other, "-IPTC:CopyrightNotice=(c) 2020 Old")
    subprocess.run([exiftool, "-q", "-overwrite_original", "-IPTC:City=Lyon", "-IPTCDigest=", str(other)], check=True)
    subprocess.run([exiftool, "-q", "-overwrite_original", "-Photoshop:IPTCDigest=00112233445566778899aabbccddeeff",
                    str(other)], check=True)
    result = rightsmeta.tag(other, Assertion.build(deny=["ai"], copyright="(c) 2026 Ada"))
    assert result.status == "tagged" and result.carriers == ["xmp", "iptc-iim"], result
    found = exiftool_json(exiftool, other, "-IPTC:CopyrightNotice", "-IPTCDigest", "-CurrentIPTCDigest", "-IPTC:City")
    assert found["IPTC:CopyrightNotice"] == "(c) 2026 Ada" and found["IPTC:City"] == "Lyon"
    assert found["Photoshop:IPTCDigest"] == "00112233445566778899aabbccddeeff" != found["File:CurrentIPTCDigest"]


def test_a_tiffs_notice_is_replaced_and_a_pngs_is_said_to_be_left(exiftool: str, tmp_path: Path) -> None:
    tif = tmp_path / "scan.tif"
    material.photo(6, (64, 48)).save(tif, format="TIFF")
    exiftool_write(exiftool, tif, "-IFD0:Copyright=(c) 2020 Old", "-Artist=Ada")
    result = rightsmeta.tag(tif, DENY_AI)
    assert result.status == "tagged" and result.carriers == ["xmp", "exif-copyright"], result
    found = exiftool_json(exiftool, tif, "-IFD0:Copyright", "-IFD0:Artist", "-warning")
    assert found["IFD0:Copyright"] == "(c) 2026 Ada" and found["IFD0:Artist"] == "Ada" and "ExifTool:Warning" not in found

    # A PNG's eXIf chunk (ExifTool writes it): replaced, its CRC new; the other EXIF tags kept.
    png = tmp_path / "art.png"
    material.photo(7, (64, 48)).save(png, format="PNG")
    exiftool_write(exiftool, png, "-EXIF:Copyright=(c) 2020 Old", "-EXIF:Artist=Ada", "-EXIF:Software=Krita")
    result = rightsmeta.tag(png, DENY_AI)
    assert result.status == "tagged" and result.carriers == ["xmp", "exif-copyright"], result
    found = exiftool_json(exiftool, png, "-IFD0:all", "-MWG:Copyright", "-warning")
    assert found["IFD0:Copyright"] == found["MWG:Copyright"] == "(c) 2026 Ada" and "ExifTool:Warning" not in found
    assert (found["IFD0:Artist"], found["IFD0:Software"]) == ("Ada", "Krita")

    # A WebP's EXIF chunk: the same, the RIFF size following.
    webp = tmp_path / "art.webp"
    material.photo(8, (64, 48)).save(webp, format="WEBP", lossless=True)
    exiftool_write(exiftool, webp, "-EXIF:Copyright=(c) 2020 Old", "-EXIF:Artist=Ada")
    result = rightsmeta.tag(webp, DENY_AI)
    assert result.status == "tagged" and result.carriers == ["xmp", "exif-copyright"], result
    found = exiftool_json(exiftool, webp, "-IFD0:all", "-MWG:Copyright", "-warning", "-validate")
    assert found["IFD0:Copyright"] == found["MWG:Copyright"] == "(c) 2026 Ada" and found["IFD0:Artist"] == "Ada"
    assert "ExifTool:Warning" not in found, found



def test_a_file_named_twice_through_a_link_is_tagged_once(tmp_path: Path) -> None:
    # A folder holding a link to one of its own photos (a "best of" link beside the shoot): tag -r
    # tagged the photo twice, and the ledger held two works for it, the first with a work id no
    # longer in the file. Hard links are two files after a tag (the atomic replace splits them):
    # each is tagged.
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    photo = shoot / "IMG_0001.jpg"
    photo.write_bytes(material.jpeg(material.photo(13, (64, 48))))
    (tmp_path / "best.jpg").symlink_to(photo)
    os.link(photo, tmp_path / "copy.jpg")
    for jobs in (1, 2):
        ledger = Ledger.open(tmp_path / f"ledger{jobs}.db")
        paths = list(api.walk([tmp_path], recursive=True))
        results = api.tag_all(paths, DENY_AI, ledger=ledger, jobs=jobs)
        by_name = {Path(r.path or "").name: r for r in results}
        assert by_name["best.jpg"].status == "tagged" and by_name["copy.jpg"].status == "tagged"
        assert by_name["IMG_0001.jpg"].status == "skipped", by_name["IMG_0001.jpg"]
        assert "best.jpg" in (by_name["IMG_0001.jpg"].reason or "")
        assert sorted(Path(w.path).name for w in ledger) == ["IMG_0001.jpg", "copy.jpg"]
        assert verify(photo, ledger=ledger).status == "intact"
        ledger.close()


def test_the_last_files_named_twice_are_given_with_jobs(tmp_path: Path) -> None:
    # With worker processes, a file named twice is answered without one: when the last paths are
    # such files, their results still come, after the others', in order.
    photo = tmp_path / "a.jpg"
    photo.write_bytes(material.jpeg(material.photo(14, (48, 32))))
    (tmp_path / "b.jpg").symlink_to(photo)
    results = api.tag_all([photo, tmp_path / "b.jpg", photo, tmp_path / "b.jpg"], DENY_AI, jobs=2)
    assert [(Path(r.path or "").name, r.status) for r in results] == [
        ("a.jpg", "tagged"), ("b.jpg", "skipped"), ("a.jpg", "skipped"), ("b.jpg", "skipped")]
    assert [api.tag_all([photo, photo], DENY_AI)[1].reason] == [f"the same file as {photo}, tagged already in this run"]
    # More of them than the workers are given at once: the last ones are taken when no worker is busy.
    many = api.tag_all([photo, *[tmp_path / "b.jpg"] * 60], DENY_AI, jobs=2)
    assert [r.status for r in many] == ["tagged"] + ["skipped"] * 60


def test_a_name_through_a_linked_folder_and_dotdot_is_its_own_file(tmp_path: Path) -> None:
    # x -> other/sub: x/../p.jpg is other/p.jpg (the kernel follows x before ".."), not ./p.jpg;
    # the names were compared with ".." collapsed first, and other/p.jpg was skipped untagged.
    (tmp_path / "other" / "sub").mkdir(parents=True)
    (tmp_path / "x").symlink_to(tmp_path / "other" / "sub")
    for jobs in (1, 2):
        here, there = tmp_path / "p.jpg", tmp_path / "other" / "p.jpg"
        here.write_bytes(material.jpeg(material.photo(15, (48, 32))))
        there.write_bytes(material.jpeg(material.photo(16, (48, 32))))
        results = api.tag_all([here, os.path.join(tmp_path, "x", "..", "p.jpg")], DENY_AI, jobs=jobs)
        assert [r.status for r in results] == ["tagged", "tagged"], results
        assert verify(there).status == "intact" and verify(here).status == "intact"
        # Still one file: a name given twice, through "." and the folder's link.
        here.write_bytes(material.jpeg(material.photo(15, (48, 32))))
        results = api.tag_all([here, tmp_path / "." / "p.jpg", tmp_path / "x" / ".." / ".." / "p.jpg"], DENY_AI, jobs=jobs)
        assert [r.status for r in results] == ["tagged", "skipped", "skipped"], results


def test_a_file_named_again_says_what_became_of_it_the_first_time(tmp_path: Path) -> None:
    # The second name of a file that failed said "tagged already in this run".
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(material.jpeg(material.photo(17, (48, 32)))[:200])
    (tmp_path / "link.jpg").symlink_to(broken)
    for jobs in (1, 2):
        results = api.tag_all([broken, tmp_path / "link.jpg"], DENY_AI, jobs=jobs)
        assert [r.status for r in results] == ["failed", "skipped"], results
        assert results[1].reason == f"the same file as {broken}, named already in this run ({broken}: failed)"


def _exif_segment(data: bytes) -> bytes:
    from rightsmeta.carriers import jpeg

    layout = jpeg.walk(data)
    return next(data[s.marker_pos : s.end] for s in layout.segments if jpeg.is_exif(data, s))


def test_an_iim_in_utf8_takes_any_notice_and_a_blank_camera_notice_is_left(exiftool: str, tmp_path: Path) -> None:
    # 1:90 says UTF-8 (ExifTool -IPTC:CodedCharacterSet=UTF8): the Greek notice goes there too.
    photo = tmp_path / "IMG_0004.jpg"
    _camera_jpeg(exiftool, photo, "-IPTC:CodedCharacterSet=UTF8", "-IPTC:CopyrightNotice=(c) 2020 Old")
    result = rightsmeta.tag(photo, Assertion.build(deny=["ai"], copyright="© 2026 Αδα"))
    assert result.carriers == ["xmp", "iptc-iim"] and result.notes == [], result
    found = exiftool_json(exiftool, photo, "-IPTC:CopyrightNotice", "-IPTCDigest", "-CurrentIPTCDigest")
    assert found["IPTC:CopyrightNotice"] == "© 2026 Αδα" and found["Photoshop:IPTCDigest"] == found["File:CurrentIPTCDigest"]
    # A camera that writes a blank Copyright (spaces) states no notice: left as it was, byte for byte.
    blank = tmp_path / "IMG_0005.jpg"
    _camera_jpeg(exiftool, blank, "-EXIF:Copyright=    ")
    exif = _exif_segment(blank.read_bytes())
    assert b"    \x00" in exif  # the blank value is there
    result = rightsmeta.tag(blank, DENY_AI)
    assert result.carriers == ["xmp"] and result.notes == [], result
    assert _exif_segment(blank.read_bytes()) == exif
    assert "exif-copyright" not in [c.name for c in rightsmeta.read(blank).carriers]


def _damaged_notices(exiftool: str, tmp_path: Path) -> dict[str, Path]:
    """Camera JPEGs with an old notice in EXIF and IIM, one of them damaged as files are found:
    the EXIF Copyright of type SHORT, or pointing past its block (ExifTool warns and goes on),
    or an IIM dataset (2:80 By-line) claiming more bytes than the block holds."""
    import struct

    from rightsmeta.carriers import jpeg, tiff

    made = {}
    for kind in ("type", "offset", "iim"):
        photo = tmp_path / f"bad_{kind}.jpg"
        _camera_jpeg(exiftool, photo, "-EXIF:Copyright=(c) 2020 Old Owner", "-IPTC:CopyrightNotice=(c) 2020 Old IPTC")
        data = bytearray(photo.read_bytes())
        if kind == "iim":
            at = data.index(b"\x1c\x02\x50")
            data[at + 3 : at + 5] = b"\x70\x00"
        else:
            segment = next(s for s in jpeg.walk(bytes(data)).segments if jpeg.is_exif(bytes(data), s))
            base = segment.payload_start + len(jpeg.EXIF_SIGNATURE)
            directory = tiff.first_directory(bytes(data[base:]))
            index = next(i for i, e in enumerate(directory.entries) if e.tag == tiff.COPYRIGHT_TAG)
            field = base + directory.offset + 2 + 12 * index
            if kind == "type":
                data[field + 2 : field + 4] = struct.pack(directory.order + "H", 3)
            else:
                data[field + 8 : field + 12] = struct.pack(directory.order + "I", 0x00FFFF00)
        photo.write_bytes(bytes(data))
        made[kind] = photo
    return made


def test_a_damaged_old_notice_neither_blocks_a_tag_nor_makes_the_file_unreadable(exiftool: str, tmp_path: Path) -> None:
    # A notice is no rights signal: a damaged EXIF Copyright or IIM block made read fail ("error:",
    # exit 1), verify say "unreadable", and every tag fail its read-back, even without --copyright.
    from click.testing import CliRunner

    from rightsmeta.cli import main

    for kind, photo in _damaged_notices(exiftool, tmp_path).items():
        original = photo.read_bytes()
        report = rightsmeta.read(photo)
        assert report.errors == [], (kind, report.errors)
        readable = "iptc-iim" if kind != "iim" else "exif-copyright"
        assert [c.name for c in report.carriers] == [readable], (kind, report.carriers)
        assert CliRunner().invoke(main, ["read", str(photo)]).exit_code == 0
        assert verify(photo).status == "untagged"
        result = rightsmeta.tag(photo, Assertion.build(deny=["ai"]))
        assert result.status == "tagged" and result.carriers == ["xmp"], (kind, result)
        assert verify(photo).status == "intact"
        # With --copyright: the readable notice is replaced, the damaged one left as it was, with a note.
        photo.write_bytes(original)
        result = rightsmeta.tag(photo, DENY_AI)
        assert result.status == "tagged" and result.carriers == ["xmp", readable], (kind, result)
        damaged = "EXIF Copyright" if kind != "iim" else "IPTC IIM copyright notice"
        assert any(damaged in n and "left as it was" in n for n in result.notes), (kind, result.notes)
        found = exiftool_json(exiftool, photo, "-IPTC:CopyrightNotice", "-XMP-dc:Rights")
        assert found["XMP-dc:Rights"] == DENY_AI.copyright
        if kind == "iim":
            assert _exif_segment(photo.read_bytes()) != _exif_segment(original)
            assert exiftool_json(exiftool, photo, "-IFD0:Copyright")["IFD0:Copyright"] == DENY_AI.copyright
        else:
            assert found["IPTC:CopyrightNotice"] == DENY_AI.copyright
            assert _exif_segment(photo.read_bytes()) == _exif_segment(original)  # the damaged entry untouched
        assert verify(photo).status == "intact"


def _pointed(exiftool: str, path: Path, where: str) -> None:
    """A camera JPEG whose EXIF Copyright (an old notice) is made to point at bytes something else
    holds, as TIFF allows for a shared value and damaged files do for the rest: ImageDescription's
    value (``where="description"``) or the middle of IFD1's thumbnail (``"thumbnail"``)."""
    import struct

    from rightsmeta.carriers import jpeg, tiff

    _camera_jpeg(exiftool, path, "-EXIF:Copyright=(c) 2020 Old Owner", "-IFD0:ImageDescription=A view of the tower at noon")
    data = bytearray(path.read_bytes())
    segment = next(s for s in jpeg.walk(bytes(data)).segments if jpeg.is_exif(bytes(data), s))
    base = segment.payload_start + len(jpeg.EXIF_SIGNATURE)
    block = bytes(data[base : segment.end])
    directory = tiff.first_directory(block)
    entries = {e.tag: (i, e) for i, e in enumerate(directory.entries)}
    if where == "description":
        at, count = entries[0x010E][1].value_pos, entries[0x010E][1].count
    else:
        ifd1, _ = tiff.read_ifd(block, directory.next_offset, directory.order)
        thumb = next(struct.unpack(directory.order + "I", e.field)[0] for e in ifd1 if e.tag == 513)
        at = next(p for p in range(thumb + 40, len(block)) if 0 not in block[p : p + 12] and block[p] > 0x20)
        count = 12
    field = base + directory.offset + 2 + 12 * entries[tiff.COPYRIGHT_TAG][0]
    data[field + 4 : field + 12] = struct.pack(directory.order + "II", count, at)
    path.write_bytes(bytes(data))


def test_a_new_notice_never_writes_over_bytes_the_old_one_shares(exiftool: str, tmp_path: Path) -> None:
    # The old Copyright's bytes were overwritten (a shorter notice) or zeroed (a longer one) in
    # place: an ImageDescription sharing them was changed or emptied, a thumbnail they lay in was
    # changed, and the tag said "tagged".
    for where in ("description", "thumbnail"):
        for new in ("(c) 2026 A", "(c) 2026 Ada Lovelace, all rights reserved; licensing: https://ada.example/licence"):
            photo = tmp_path / f"{where}.jpg"
            _pointed(exiftool, photo, where)
            before = exiftool_json(exiftool, photo, "-a", "-s", "-b", "-all")
            assert "IFD1:ThumbnailImage" in before and "IFD0:Copyright" in before
            result = rightsmeta.tag(photo, Assertion.build(deny=["ai"], copyright=new))
            assert result.status == "tagged" and result.carriers == ["xmp", "exif-copyright"], result
            after = exiftool_json(exiftool, photo, "-a", "-s", "-b", "-all")
            assert after["IFD0:Copyright"] == new
            kept = {k: v for k, v in before.items() if not k.startswith(("XMP-", "File:", "System:", "IFD0:Copyright"))}
            assert {k: after.get(k) for k in kept} == kept, (where, new)
            assert verify(photo).status == "intact"
