"""sanitize and carry on real files: ExifTool writes the camera metadata, Pillow and ffmpeg make the
renditions, ExifTool and the c2pa Reader judge the result."""

from __future__ import annotations

import io
import json
import struct
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import c2pa
import pytest
from click.testing import CliRunner
from PIL import Image

import rightsmeta
from rightsmeta import Assertion, keys
from rightsmeta.carry import actions_for, carry_bytes, rendition_of
from rightsmeta.cli import main
from rightsmeta.errors import UnsupportedFormat, UsageError
from rightsmeta.fingerprint import WHOLE
from rightsmeta.ledger import Ledger
from rightsmeta.sanitize import sanitize_bytes
from rightsmeta.verify import verify
from tests import material
from tests.samples import exiftool_json, image_bytes, pixels

DENY_AI = Assertion.build(deny=["ai"], holder="Jane Doe", copyright="(c) 2026 Jane Doe")
# What a camera and a photo editor leave in a file, and a privacy policy takes out.
PRIVATE = {"GPSLatitude", "GPSLongitude", "SerialNumber", "LensSerialNumber", "OwnerName", "ThumbnailImage",
           "Comment", "HistoryAction", "Artist", "By-line", "City", "MakerNoteUnknownText"}


@pytest.fixture(scope="module")
def identity() -> keys.Identity:
    return keys.make_identity("Test Platform")


def camera_jpeg(exiftool: str, folder: Path, fmt: str = "jpeg") -> Path:
    """A photo as a camera and an editor leave it: GPS, serials, owner, thumbnail, comment, history."""
    ext = {"jpeg": "jpg"}.get(fmt, fmt)
    path = folder / f"camera.{ext}"
    path.write_bytes(image_bytes(fmt, size=(320, 240), exif=True))
    if fmt == "jpeg":  # a maker note: the camera maker's private block, which often holds serials and owner names
        with Image.open(path) as img:
            img.load()
            exif = img.getexif()
            exif.get_ifd(0x8769)[0x927C] = b"Acme private camera data: owner Jane Doe"
            img.save(path, quality=90, exif=exif.tobytes())
    thumb = folder / "thumb.jpg"
    thumb.write_bytes(image_bytes("jpeg", size=(160, 120)))
    args = ["-Model=Acme R5", "-SerialNumber=123456789", "-LensSerialNumber=987654",
            "-OwnerName=Jane Doe", "-GPSLatitude=48.8584", "-GPSLatitudeRef=N", "-GPSLongitude=2.2945",
            "-GPSLongitudeRef=E", "-XMP-xmpMM:HistoryAction=saved", "-Artist=Jane Doe", "-XMP-photoshop:City=Paris"]
    if fmt == "jpeg":
        args += [f"-ThumbnailImage<={thumb}", "-Comment=shot from my balcony", "-IPTC:By-line=Jane Doe"]
    subprocess.run([exiftool, "-q", "-overwrite_original", *args, str(path)], check=True, capture_output=True)
    return path


def tags_of(exiftool: str, data: bytes, folder: Path, name: str = "out.jpg") -> dict[str, Any]:
    path = folder / name
    path.write_bytes(data)
    return {key.split(":")[-1]: value for key, value in exiftool_json(exiftool, path, "-a").items()}


def active(data: bytes, mime: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    with c2pa.Reader(mime, io.BytesIO(data)) as reader:
        state = reader.get_validation_state()
        results = reader.get_validation_results()
        store = json.loads(reader.json())
    return state, store["manifests"][store["active_manifest"]], results


def test_camera_jpeg_loses_private_fields_keeps_rights_and_stays_intact(tmp_path: Path, exiftool: str, identity: keys.Identity) -> None:
    path = camera_jpeg(exiftool, tmp_path)
    assert PRIVATE <= set(tags_of(exiftool, path.read_bytes(), tmp_path, "before.jpg"))
    signed = rightsmeta.tag_bytes(path.read_bytes(), DENY_AI, identity=identity)

    result = sanitize_bytes(signed, identity=identity)

    found = tags_of(exiftool, result.data, tmp_path)
    assert not PRIVATE & set(found), PRIVATE & set(found)
    assert found["DataMining"] == "Prohibited for AI/ML training"
    assert str(found["Reservation"]) == "1"
    assert found["Rights"] == "(c) 2026 Jane Doe"
    assert pixels(result.data) == pixels(signed)
    assert verify(result.data).status == "intact"
    state, manifest, results = active(result.data, "image/jpeg")
    assert state == "Valid"
    actions = [a["action"] for a in next(x for x in manifest["assertions"] if x["label"].startswith("c2pa.actions"))["data"]["actions"]]
    assert actions == ["c2pa.opened", "c2pa.edited.metadata"]
    parents = [i for i in manifest["ingredients"] if i["relationship"] == "parentOf"]
    assert len(parents) == 1 and parents[0]["active_manifest"]  # the creator's manifest, as ingredient
    deltas = results.get("ingredientDeltas") or []
    assert any(d["validationDeltas"]["success"][0]["code"] == "ingredient.manifest.validated" for d in deltas)
    assert all(not d["validationDeltas"]["failure"] for d in deltas)


def test_keep_credit_keeps_the_artist(tmp_path: Path, exiftool: str) -> None:
    data = rightsmeta.tag_bytes(camera_jpeg(exiftool, tmp_path).read_bytes(), DENY_AI)
    rights_only = tags_of(exiftool, sanitize_bytes(data).data, tmp_path, "a.jpg")
    credit = tags_of(exiftool, sanitize_bytes(data, keep="rights,credit").data, tmp_path, "b.jpg")
    assert "Artist" not in rights_only and "By-line" not in rights_only
    assert credit["Artist"] == "Jane Doe" and credit["By-line"] == "Jane Doe"
    assert "GPSLatitude" not in credit and "SerialNumber" not in credit
    with pytest.raises(UsageError):
        sanitize_bytes(data, keep="everything")


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_png_and_webp(tmp_path: Path, exiftool: str, fmt: str) -> None:
    data = rightsmeta.tag_bytes(camera_jpeg(exiftool, tmp_path, fmt).read_bytes(), DENY_AI)
    result = sanitize_bytes(data)
    found = tags_of(exiftool, result.data, tmp_path, f"out.{fmt}")
    assert not {"GPSLatitude", "SerialNumber", "OwnerName", "HistoryAction", "City"} & set(found)
    assert found["DataMining"] == "Prohibited for AI/ML training"
    assert pixels(result.data) == pixels(data)
    assert verify(result.data).status == "intact"


# What exiv2 leaves and sanitize took out itself: PNG text chunks (Artist, Comment), a WebP's whole
# XMP chunk when none of it is kept, Photoshop's APP13 block beside its IPTC (a thumbnail, often of
# the uncropped original; a URL) and other tools' APPn segments (Ducky's comment). Per format: what
# ExifTool writes, what must go, the rights field kept, the credit field kept with --keep rights,credit.
EXIV2_LEFT = {
    "png": (["-XMP-photoshop:City=Paris", "-XMP-dc:Creator=Jane Doe", "-PNG:Artist=Jane Doe",
             "-PNG:Comment=shot from my balcony", "-PNG:Copyright=(c) Jane Doe"],
            {"City", "Creator", "Artist", "Comment"}, "Copyright", "Artist"),
    "webp": (["-XMP-photoshop:City=Paris", "-XMP-dc:Creator=Jane Doe"], {"City", "Creator"}, None, None),
    "jpeg": (["-PhotoshopThumbnail<={thumb}", "-Photoshop:URL=https://jane.example/private", "-IPTC:City=Paris",
              "-IPTC:CopyrightNotice=(c) Jane Doe", "-IPTC:By-line=Jane Doe", "-Ducky:Comment=shot from my balcony"],
             {"PhotoshopThumbnail", "URL", "City", "By-line", "Comment"}, "CopyrightNotice", "By-line"),
}


@pytest.mark.parametrize("fmt", sorted(EXIV2_LEFT))
def test_what_exiv2_leaves_goes_too(tmp_path: Path, exiftool: str, fmt: str) -> None:
    args, private, rights, credit = EXIV2_LEFT[fmt]
    thumb = tmp_path / "thumb.jpg"
    thumb.write_bytes(image_bytes("jpeg", size=(32, 24)))
    path = tmp_path / f"photo.{fmt}"
    path.write_bytes(image_bytes(fmt, size=(64, 48)))
    subprocess.run([exiftool, "-q", "-overwrite_original", *(a.format(thumb=thumb) for a in args), str(path)],
                   check=True, capture_output=True)
    data = path.read_bytes()
    assert private <= set(tags_of(exiftool, data, tmp_path, f"before.{fmt}"))
    cleaned = sanitize_bytes(data).data
    found = tags_of(exiftool, cleaned, tmp_path, f"out.{fmt}")
    assert not private & set(found), private & set(found)
    assert pixels(cleaned) == pixels(data)
    if rights and credit:
        assert found[rights] == "(c) Jane Doe"
        with_credit = tags_of(exiftool, sanitize_bytes(data, keep="rights,credit").data, tmp_path, f"credit.{fmt}")
        assert with_credit[credit] == "Jane Doe" and "City" not in with_credit


def test_mp3_loses_comments_keeps_copyright(tmp_path: Path, ffmpeg: str) -> None:
    from mutagen.id3 import APIC, COMM, ID3, TXXX

    src = tmp_path / "a.mp3"
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-ac", "1", str(src)], check=True)
    tagged = tmp_path / "t.mp3"
    tagged.write_bytes(rightsmeta.tag_bytes(src.read_bytes(), DENY_AI))
    tags = ID3(tagged)
    tags.add(COMM(encoding=3, lang="eng", desc="", text=["recorded in my kitchen"]))
    tags.add(TXXX(encoding=3, desc="Recording location", text=["52.5 N 13.4 E"]))
    tags.add(APIC(encoding=3, mime="image/jpeg", type=3, desc="cover", data=image_bytes("jpeg")))
    tags.save(tagged)

    result = sanitize_bytes(tagged.read_bytes())

    out = tmp_path / "s.mp3"
    out.write_bytes(result.data)
    left = ID3(out)
    assert not left.getall("COMM") and not left.getall("APIC")
    assert not [f for f in left.getall("TXXX") if f.desc == "Recording location"]
    assert str(left.getall("TCOP")[0].text[0]) == "(c) 2026 Jane Doe"
    assert verify(result.data).status == "intact"

    def md5(p: Path) -> str:
        return subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(p), "-map", "0:a", "-f", "md5", "-"], check=True,
                              capture_output=True, text=True).stdout
    assert md5(out) == md5(tagged)


def test_refusals_leave_the_file_alone(tmp_path: Path, identity: keys.Identity) -> None:
    signed = rightsmeta.tag_bytes(image_bytes("jpeg"), DENY_AI, identity=identity)
    with pytest.raises(UnsupportedFormat, match="signing identity"):
        sanitize_bytes(signed)
    with pytest.raises(UnsupportedFormat, match="refused rather than half-cleaned"):
        sanitize_bytes(image_bytes("tiff"))

    good, bad = tmp_path / "good.jpg", tmp_path / "bad.tif"
    good.write_bytes(rightsmeta.tag_bytes(image_bytes("jpeg", exif=True), DENY_AI))
    bad.write_bytes(image_bytes("tiff"))
    before = bad.read_bytes()
    run = CliRunner().invoke(main, ["sanitize", str(good), str(bad), "--json"])
    assert run.exit_code == 1
    rows = {Path(r["path"]).name: r for r in json.loads(run.output)}
    assert rows["good.jpg"]["status"] == "sanitized" and "Exif Exif.Image.Make" in rows["good.jpg"]["removed"]
    assert rows["bad.tif"]["status"] == "failed" and bad.read_bytes() == before


def test_carry_to_a_pillow_resized_webp(tmp_path: Path, identity: keys.Identity) -> None:
    original = rightsmeta.tag_bytes(material.jpeg(material.photo(4, (320, 240)), 90), DENY_AI, identity=identity)
    rendition = io.BytesIO()
    with Image.open(io.BytesIO(original)) as img:
        img.resize((160, 120)).save(rendition, "WEBP")  # Pillow drops all metadata, as renderers do

    result = carry_bytes(original, rendition.getvalue(), identity=identity)

    assert verify(result.data).status == "intact"
    assert set(result.carriers) == {"xmp", "c2pa"}
    state, manifest, results = active(result.data, "image/webp")
    assert state == "Valid"
    actions = [a["action"] for a in next(x for x in manifest["assertions"] if x["label"].startswith("c2pa.actions"))["data"]["actions"]]
    assert actions == ["c2pa.opened", "c2pa.transcoded", "c2pa.resized"]
    assert [i["relationship"] for i in manifest["ingredients"]] == ["parentOf"]
    assert rightsmeta.read(result.data).permissions == rightsmeta.read(original).permissions


def test_carry_to_an_ffmpeg_transcoded_m4a_links_the_ledger(tmp_path: Path, ffmpeg: str, identity: keys.Identity) -> None:
    mp3, m4a = tmp_path / "song.mp3", tmp_path / "song.m4a"
    (tmp_path / "song.wav").write_bytes(material.wav(material.music(2, 3.0)))
    subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(tmp_path / "song.wav"), "-ac", "1", str(mp3)], check=True)
    mp3.write_bytes(rightsmeta.tag_bytes(mp3.read_bytes(), DENY_AI, identity=identity))
    subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(mp3), "-map_metadata", "-1", "-c:a", "aac", str(m4a)], check=True)
    assert verify(m4a.read_bytes()).status == "untagged"
    ledger = tmp_path / "ledger.sqlite3"

    run = CliRunner().invoke(main, ["carry", str(mp3), str(m4a), "--cert", str(_save(identity, tmp_path)[0]),
                                    "--key", str(_save(identity, tmp_path)[1]), "--ledger", str(ledger)])

    assert run.exit_code == 0, run.output
    data = m4a.read_bytes()
    assert verify(data).status == "intact"
    state, manifest, _ = active(data, "audio/mp4")
    assert state == "Valid" and [i["relationship"] for i in manifest["ingredients"]] == ["parentOf"]
    parent = rightsmeta.read(mp3.read_bytes())
    parent_id = next(s.raw["WorkID"] for s in parent.signals if s.exact)
    with Ledger.open(ledger) as db:
        works = list(db)
    assert len(works) == 1 and works[0].source == f"derived from {parent_id}"


def test_carry_to_a_scaled_video_signs_it_resized(tmp_path: Path, ffmpeg: str, identity: keys.Identity) -> None:
    # The video's picture was scaled (its sound, what its content is compared by, kept): the
    # manifest said only "transcoded", as if nothing but the encoding had changed.
    (tmp_path / "song.wav").write_bytes(material.wav(material.music(5, 3.0)))
    video, scaled, cut = tmp_path / "clip.mp4", tmp_path / "small.mp4", tmp_path / "square.mp4"
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10:duration=3",
                    "-i", str(tmp_path / "song.wav"), "-shortest", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    str(video)], check=True)
    original = rightsmeta.tag_bytes(video.read_bytes(), DENY_AI, identity=identity)
    video.write_bytes(original)
    for out, vf in ((scaled, "scale=160:120"), (cut, "crop=240:240:0:0")):
        subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(video), "-map_metadata", "-1", "-vf", vf, "-c:a", "copy",
                        str(out)], check=True)
    assert _signed_actions(carry_bytes(original, scaled.read_bytes(), identity=identity).data, "video/mp4") == [
        "c2pa.opened", "c2pa.resized"]
    assert _signed_actions(carry_bytes(original, cut.read_bytes(), identity=identity).data, "video/mp4") == [
        "c2pa.opened", "c2pa.cropped"]


def _quarter_turned(mp4: bytes) -> bytes:
    """The MP4 with its picture track's matrix turned 90 degrees (what a phone writes for a portrait
    video stored landscape; ffprobe then says rotation=-90 and ffmpeg decodes it upright)."""
    from rightsmeta.carriers import bmff

    data = bytearray(mp4)
    (moov,) = [box for box in bmff.walk(data, 0, len(data), limit=100, printable=True, tail="zeros") if box.type == b"moov"]
    for trak in bmff.walk(data, moov.payload, moov.end, limit=100, open_ended=False):
        if trak.type != b"trak":
            continue
        tkhd = next(b for b in bmff.walk(data, trak.payload, trak.end, limit=100, open_ended=False) if b.type == b"tkhd")
        if int.from_bytes(data[tkhd.end - 8 : tkhd.end - 4], "big"):  # the picture track: it has a width
            height = int.from_bytes(data[tkhd.end - 4 : tkhd.end], "big")
            data[tkhd.end - 44 : tkhd.end - 8] = struct.pack(">9i", 0, 1 << 16, 0, -(1 << 16), 0, 0, height, 0, 1 << 30)
    return bytes(data)


def test_carry_reads_a_turned_videos_picture_as_shown(tmp_path: Path, ffmpeg: str, identity: keys.Identity) -> None:
    # A portrait phone video, transcoded upright: the same picture, not a crop (its stored 320x240
    # against the rendition's 240x320 was signed c2pa.cropped; found in review).
    (tmp_path / "song.wav").write_bytes(material.wav(material.music(5, 3.0)))
    video, upright = tmp_path / "phone.mp4", tmp_path / "upright.mp4"
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10:duration=3",
                    "-i", str(tmp_path / "song.wav"), "-shortest", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    str(video)], check=True)
    original = rightsmeta.tag_bytes(_quarter_turned(video.read_bytes()), DENY_AI, identity=identity)
    video.write_bytes(original)
    subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(video), "-map_metadata", "-1", "-c:a", "copy", str(upright)], check=True)
    assert _signed_actions(carry_bytes(original, upright.read_bytes(), identity=identity).data, "video/mp4") == [
        "c2pa.opened", "c2pa.transcoded"]
    # A picture track under a pixel wide has no size to compare (it divided by zero: a 500).
    from rightsmeta.carriers import bmff

    thin = bytearray(upright.read_bytes())
    at = thin.index(b"tkhd") - 4 + int.from_bytes(thin[thin.index(b"tkhd") - 4 : thin.index(b"tkhd")], "big") - 8
    thin[at : at + 4] = (0x8000).to_bytes(4, "big")
    assert bmff.tracks(thin)[0].size is None
    assert _signed_actions(carry_bytes(original, bytes(thin), identity=identity).data, "video/mp4") == [
        "c2pa.opened", "c2pa.transcoded"]


def _signed_actions(data: bytes, mime: str) -> list[str]:
    state, manifest, _ = active(data, mime)
    assert state == "Valid"
    return [a["action"] for a in next(x for x in manifest["assertions"] if x["label"].startswith("c2pa.actions"))["data"]["actions"]]


@pytest.mark.parametrize(("cut", "turn", "expected"), [
    ((0, 0, 240, 240), None, ["c2pa.opened", "c2pa.cropped"]),  # the aspect changed
    ((32, 24, 288, 216), None, ["c2pa.opened", "c2pa.cropped"]),  # the same aspect: the content shows the crop
    ((0, 0, 320, 240), None, ["c2pa.opened", "c2pa.transcoded"]),
    ((0, 0, 320, 240), Image.Transpose.FLIP_LEFT_RIGHT, ["c2pa.opened", "c2pa.orientation"]),  # not a crop
    ((0, 0, 240, 320), Image.Transpose.ROTATE_90, ["c2pa.opened", "c2pa.orientation"]),  # the sides swapped, not cut
    ((0, 0, 240, 240), Image.Transpose.FLIP_LEFT_RIGHT, ["c2pa.opened", "c2pa.orientation", "c2pa.cropped"]),
    # Cut to the same aspect: the sizes alone would say resized; the part of the work matched shows the crop.
    ((32, 24, 288, 216), Image.Transpose.FLIP_LEFT_RIGHT, ["c2pa.opened", "c2pa.orientation", "c2pa.cropped"]),
    ((24, 32, 216, 288), Image.Transpose.ROTATE_90, ["c2pa.opened", "c2pa.orientation", "c2pa.cropped"]),
    ((0, 0, 320, 240), Image.Transpose.ROTATE_90, ["c2pa.opened", "c2pa.orientation", "c2pa.cropped"]),  # cut and padded
])
def test_carry_signs_a_crop_as_cropped(identity: keys.Identity, cut: tuple[int, int, int, int], turn: Image.Transpose | None,
                                       expected: list[str]) -> None:
    original = rightsmeta.tag_bytes(material.jpeg(material.photo(8, (320, 240)), 90), DENY_AI, identity=identity)
    rendition = io.BytesIO()
    with Image.open(io.BytesIO(original)) as img:
        (img if turn is None else img.transpose(turn)).crop(cut).save(rendition, "JPEG", quality=85)
    result = carry_bytes(original, rendition.getvalue(), identity=identity)
    assert _signed_actions(result.data, "image/jpeg") == expected


@pytest.mark.parametrize(("cut", "turn", "form", "part", "expected"), [
    ((0, 0, 320, 240), Image.Transpose.FLIP_LEFT_RIGHT, "mirrored", False, ["c2pa.orientation"]),
    ((32, 24, 288, 216), Image.Transpose.FLIP_LEFT_RIGHT, "mirrored", True, ["c2pa.orientation", "c2pa.cropped"]),
    ((32, 24, 288, 216), None, None, True, ["c2pa.cropped"]),
])
def test_carry_decides_by_what_matched_not_by_its_prose(cut: tuple[int, int, int, int], turn: Image.Transpose | None,
                                                         form: str | None, part: bool, expected: list[str]) -> None:
    original = material.jpeg(material.photo(8, (320, 240)), 90)
    rendition = io.BytesIO()
    with Image.open(io.BytesIO(original)) as img:
        (img if turn is None else img.transpose(turn)).crop(cut).save(rendition, "JPEG", quality=85)
    match, _ = rendition_of(original, "jpeg", rendition.getvalue(), "jpeg", DENY_AI)
    assert match is not None and match.how
    assert match.form == form and (match.region != WHOLE) == part
    # ``how`` is for people (verify prints it): rewording it, or a path naming a turn in it, signs the same actions.
    for how in (match.how, None, "the file (mirrored) matched the work's whole"):
        assert actions_for(original, "jpeg", rendition.getvalue(), "jpeg", replace(match, how=how)) == expected


def test_a_thumbnail_is_resized_not_cropped(identity: keys.Identity) -> None:
    # Pillow's thumbnail rounds each side on its own: 333x250 at 100 wide is 100x75.
    original = rightsmeta.tag_bytes(material.jpeg(material.photo(9, (333, 250)), 90), DENY_AI, identity=identity)
    with Image.open(io.BytesIO(original)) as img:
        img.thumbnail((100, 100))
        small = io.BytesIO()
        img.save(small, "JPEG", quality=85)
    assert img.size == (100, 75)
    assert carry_bytes(original, small.getvalue(), identity=identity).actions == ["c2pa.resized"]


def test_carry_refuses_what_is_not_a_rendition_unless_a_new_work(tmp_path: Path, identity: keys.Identity) -> None:
    original, other = tmp_path / "work.jpg", tmp_path / "other.jpg"
    original.write_bytes(rightsmeta.tag_bytes(material.jpeg(material.photo(10, (320, 240)), 90), DENY_AI))
    other.write_bytes(material.jpeg(material.photo(11, (320, 240)), 85))
    before, ledger = other.read_bytes(), tmp_path / "ledger.sqlite3"
    cert, key = _save(identity, tmp_path)
    args = ["carry", str(original), str(other), "--cert", str(cert), "--key", str(key), "--ledger", str(ledger)]
    run = CliRunner().invoke(main, args)
    assert run.exit_code != 0 and "does not match the original" in run.output and "--new-work" in run.output
    assert other.read_bytes() == before and verify(before).status == "untagged"
    with Ledger.open(ledger) as db:
        assert len(db) == 0
    run = CliRunner().invoke(main, [*args, "--new-work"])
    assert run.exit_code == 0, run.output
    assert _signed_actions(other.read_bytes(), "image/jpeg") == ["c2pa.opened", "c2pa.edited"]
    with Ledger.open(ledger) as db:
        [work] = list(db)
    assert work.source is None  # a work of its own: it does not follow the original's re-tagging


def test_carry_refuses_an_original_without_a_statement() -> None:
    with pytest.raises(UsageError, match="no rights statement"):
        carry_bytes(image_bytes("jpeg"), image_bytes("png"))


def _save(identity: keys.Identity, folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "chain.pem", folder / "signer.key"
    if not cert.exists():
        cert.write_bytes(identity.chain_pem)
        key.write_bytes(identity.key_pem)
        key.chmod(0o600)
    return cert, key


@pytest.mark.parametrize("fmt", ["flac", "ogg", "opus", "m4a"])
def test_vorbis_and_mp4_audio(tmp_path: Path, ffmpeg: str, exiftool: str, identity: keys.Identity, fmt: str) -> None:
    from mutagen import File as AudioFile

    codec = {"flac": "flac", "ogg": "libvorbis", "opus": "libopus", "m4a": "aac"}[fmt]
    path = tmp_path / f"a.{fmt}"
    place = ["-metadata", "location=+48.8584+002.2945/"] if fmt == "m4a" else []  # a udta/loci atom, beside the tags
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", codec, *place,
                    str(path)], check=True)
    audio = AudioFile(path)
    comment = "\xa9cmt" if fmt == "m4a" else "COMMENT"
    audio[comment] = ["recorded in my kitchen"]
    audio.save()
    if fmt == "m4a":
        subprocess.run([exiftool, "-q", "-overwrite_original", "-XMP-xmpMM:HistoryAction=saved", str(path)], check=True)
    path.write_bytes(rightsmeta.tag_bytes(path.read_bytes(), DENY_AI, identity=identity))
    signed = rightsmeta.read(path).carriers[-1].name == "c2pa"
    assert signed == (fmt in ("flac", "m4a"))  # c2pa signs FLAC and M4A, not Ogg

    result = sanitize_bytes(path.read_bytes(), identity=identity)

    out = tmp_path / f"s.{fmt}"
    out.write_bytes(result.data)
    assert comment not in (AudioFile(out).tags or {})
    report = rightsmeta.read(result.data)
    assert report.rights["copyright"] == "(c) 2026 Jane Doe"
    assert verify(result.data).status == "intact"
    if fmt == "m4a":
        assert "XMP-xmpMM:HistoryAction" not in exiftool_json(exiftool, out, "-a")
        assert "XMP-xmpMM:HistoryAction" in exiftool_json(exiftool, path, "-a")

        def place_of(p: Path) -> str:
            return subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format_tags=location", "-of", "csv=p=0", str(p)],
                                  check=True, capture_output=True, text=True).stdout.strip()
        assert place_of(path) == "+48.8584+002.2945/" and place_of(out) == ""  # the place used to stay

    def md5(p: Path) -> str:
        return subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(p), "-map", "0:a", "-f", "md5", "-"], check=True,
                              capture_output=True, text=True).stdout
    assert md5(out) == md5(path)
    if signed:
        state, manifest, _ = active(result.data, {"flac": "audio/flac", "m4a": "audio/mp4"}[fmt])
        assert state == "Valid" and [i["relationship"] for i in manifest["ingredients"]] == ["parentOf"]


def test_carry_refuses_a_ledger_that_is_no_ledger_before_writing(tmp_path: Path) -> None:
    # It wrote the derivative, then failed on the ledger (exit 1).
    original, derivative, other = tmp_path / "a.jpg", tmp_path / "a-small.png", tmp_path / "photo.sqlite3"
    original.write_bytes(rightsmeta.tag_bytes(image_bytes("jpeg"), DENY_AI))
    derivative.write_bytes(image_bytes("png", size=(32, 24)))
    other.write_bytes(image_bytes("png"))
    before = derivative.read_bytes()
    out = CliRunner().invoke(main, ["carry", str(original), str(derivative), "--ledger", str(other)])
    assert out.exit_code == 2 and "cannot use the ledger" in out.output, out.output
    assert derivative.read_bytes() == before


def _with_gps(exiftool: str, path: Path, size: tuple[int, int], latitude: float) -> bytes:
    path.write_bytes(image_bytes("jpeg", size=size))
    subprocess.run([exiftool, "-q", "-overwrite_original", f"-GPSLatitude={latitude}", "-GPSLatitudeRef=N",
                    "-GPSLongitude=2.2945", "-GPSLongitudeRef=E", str(path)], check=True)
    return path.read_bytes()


def mpf_jpeg(primary: bytes, preview: bytes) -> bytes:
    """A camera's JPEG with a preview (CIPA DC-007): an APP2 "MPF" index after the primary's Exif
    lists both images; the preview follows the primary's EOI, its offset counted from the index's
    byte-order field."""
    import struct

    at = 2
    while primary[at + 1] in (0xE0, 0xE1):  # after JFIF and Exif
        at += 2 + int.from_bytes(primary[at + 2 : at + 4], "big")
    entries = 12 * 3
    index = struct.pack(">4sIH", b"MM\x00\x2a", 8, 3) + struct.pack(">HHI4s", 0xB000, 7, 4, b"0100")  # MPF version
    index += struct.pack(">HHII", 0xB001, 4, 1, 2) + struct.pack(">HHII", 0xB002, 7, 32, 8 + 2 + entries + 4)  # images
    segment_size = 4 + 4 + len(index) + 4 + 32
    primary_size = len(primary) + segment_size
    index += struct.pack(">I", 0) + struct.pack(">IIIHH", 0x20030000, primary_size, 0, 0, 0)  # baseline primary
    index += struct.pack(">IIIHH", 0x00010001, len(preview), primary_size - (at + 8), 0, 0)  # large thumbnail
    segment = b"\xff\xe2" + struct.pack(">H", segment_size - 2) + b"MPF\x00" + index
    return primary[:at] + segment + primary[at:] + preview


def test_camera_previews_after_the_image_go_with_their_gps(tmp_path: Path, exiftool: str) -> None:
    # exiv2 cleans the primary image's Exif and copies the MPF preview behind it as it is: the
    # preview's own Exif kept the place the photo was taken.
    data = mpf_jpeg(_with_gps(exiftool, tmp_path / "a.jpg", (320, 240), 48.8584),
                    _with_gps(exiftool, tmp_path / "b.jpg", (160, 120), 51.5))
    before = tmp_path / "mpf.jpg"
    before.write_bytes(data)
    listed = exiftool_json(exiftool, before, "-a", "-ee", "-G3:1")  # Doc2: the preview's own tags
    assert listed["MPImage2:MPImageType"] == "Large Thumbnail (VGA equivalent)"
    assert listed["Doc2:GPS:GPSLatitude"] == "51 deg 30' 0.00\""
    result = sanitize_bytes(data)
    after = tmp_path / "out.jpg"
    after.write_bytes(result.data)
    assert exiftool_json(exiftool, after, "-a", "-ee", "-G3:1", "-gps:all", "-mpf:all") == {"SourceFile": str(after)}
    assert pixels(result.data) == pixels(data)
    assert any("after the image" in r for r in result.removed)


def _mandelbrot(size: tuple[int, int]) -> Image.Image:
    # Symmetric top to bottom: each half of a resized copy matches the same half of the work as
    # closely as the whole does.
    return Image.effect_mandelbrot(size, (-2.0, -1.125, 1.0, 1.125), 100).convert("RGB")


@pytest.mark.parametrize(("picture", "cut", "expected"), [
    ("mandelbrot", None, ["c2pa.resized"]),
    ("photo", None, ["c2pa.resized"]),
    ("photo", (120, 90, 1080, 810), ["c2pa.cropped"]),  # cut to the same aspect, then resized
    ("photo", (100, 0, 1100, 900), ["c2pa.cropped"]),  # the sides cut
])
def test_a_symmetric_pictures_resize_is_not_a_crop(identity: keys.Identity, picture: str,
                                                   cut: tuple[int, int, int, int] | None, expected: list[str]) -> None:
    # A Mandelbrot render 1200x900 resized to 800x600 was signed c2pa.cropped: its bottom half
    # matched the work's bottom half more closely than its whole matched the whole (found in QA).
    img = _mandelbrot((1200, 900)) if picture == "mandelbrot" else material.photo(12, (1200, 900))
    original = io.BytesIO()
    img.save(original, "PNG")
    part = img if cut is None else img.crop(cut)
    rendition = io.BytesIO()
    part.resize((800, round(800 * part.height / part.width))).save(rendition, "PNG")
    tagged = rightsmeta.tag_bytes(original.getvalue(), DENY_AI, identity=identity)
    assert carry_bytes(tagged, rendition.getvalue(), identity=identity).actions == expected
