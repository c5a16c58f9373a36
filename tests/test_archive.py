"""A creator's archive as other tools wrote it: files whose structure or metadata came from
cameras, editors, encoders and packagers, tagged and then checked with those peers."""

from __future__ import annotations

import io
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path

import material
import pytest
from mutagen.apev2 import APEv2
from mutagen.id3 import ID3, TCOP, TIT2, TXXX
from PIL import PngImagePlugin
from samples import exiftool_json, exiftool_write, pixels
from test_documents import epub_bytes

import rightsmeta
from rightsmeta import Assertion, Permission, Purpose, State
from rightsmeta.verify import verify

DENY_AI = Assertion.build(deny=["ai"], copyright="(c) 2026 Ada")


def _run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def _tfra_offsets(data: bytes) -> list[int]:
    """The moof offsets every 'tfra' entry of the file's final 'mfra' box holds."""
    mfra = data.rindex(b"mfra") - 4
    offsets, pos = [], mfra + 8
    while pos < mfra + int.from_bytes(data[mfra : mfra + 4], "big"):
        size, btype = struct.unpack_from(">I4s", data, pos)
        if btype == b"tfra":
            version, sizes, count = data[pos + 8], data[pos + 19], int.from_bytes(data[pos + 20 : pos + 24], "big")
            width = 8 if version == 1 else 4
            entry = 2 * width + (sizes >> 4 & 3) + (sizes >> 2 & 3) + (sizes & 3) + 3
            offsets += [int.from_bytes(data[at + width : at + 2 * width], "big")
                        for at in range(pos + 24, pos + 24 + count * entry, entry)]
        pos += size
    return offsets


@pytest.mark.parametrize("flags", ["frag_keyframe+empty_moov+default_base_moof", "frag_keyframe+empty_moov"])
def test_fragmented_mp4_keeps_its_random_access_index(ffmpeg: str, tmp_path: Path, flags: str) -> None:
    # Phones and streaming tools write fragmented MP4 with an 'mfra' index of absolute moof
    # offsets. Tagging grows 'moov' (mutagen's ilst), so every moof after it moves: an index
    # left pointing at the old places made ffmpeg's seek through it return no frame at all.
    # Without default-base-is-moof each fragment's 'tfhd' holds an absolute offset too, and
    # mutagen corrects only the first fragment's: such files failed the content check.
    path = tmp_path / "phone.mp4"
    _run(ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25:duration=4",
         "-f", "lavfi", "-i", "sine=duration=4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
         "-c:a", "aac", "-movflags", flags, str(path))
    streams = _run(ffmpeg, "-v", "error", "-i", str(path), "-map", "0", "-f", "streamhash", "-hash", "md5", "-")
    assert len(_tfra_offsets(path.read_bytes())) >= 4

    def seek(file: Path) -> str:
        return _run(ffmpeg, "-v", "error", "-use_mfra_for", "pts", "-ss", "2.5", "-i", str(file),
                    "-map", "0:v", "-frames:v", "5", "-f", "md5", "-")

    before = seek(path)
    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    data = path.read_bytes()
    assert all(data[at + 4 : at + 8] == b"moof" for at in _tfra_offsets(data))
    assert seek(path) == before
    assert _run(ffmpeg, "-v", "error", "-i", str(path), "-map", "0", "-f", "streamhash", "-hash", "md5", "-") == streams
    assert rightsmeta.read(path).errors == []


def _ffprobe_tag(ffmpeg: str, path: Path, name: str) -> str:
    ffprobe = str(Path(ffmpeg).with_name("ffprobe"))
    return _run(ffprobe, "-v", "error", "-show_entries", f"format_tags={name}", "-of", "default=nw=1:nk=1", str(path)).strip()


@pytest.mark.parametrize("fmt", ["wav", "aiff"])
def test_container_copyright_says_the_new_notice(ffmpeg: str, exiftool: str, tmp_path: Path, fmt: str) -> None:
    # ffmpeg, Windows and ExifTool keep a WAV's copyright in LIST/INFO 'ICOP' (here beside a
    # broadcast 'bext' chunk) and an AIFF's in its '(c) ' chunk. Tagged with a new notice, the
    # file used to say the old one there and the new one in ID3: ffprobe showed the old one.
    path = tmp_path / f"take.{fmt}"
    _run(ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", "-metadata", "copyright=(c) 1999 Old Label",
         "-metadata", "title=Take 1", *(["-write_bext", "1"] if fmt == "wav" else []), str(path))
    untouched = tmp_path / f"untouched.{fmt}"
    untouched.write_bytes(path.read_bytes())
    decoded = _run(ffmpeg, "-v", "error", "-i", str(path), "-f", "md5", "-")

    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    assert _ffprobe_tag(ffmpeg, path, "copyright") == "(c) 2026 Ada"
    group = "RIFF" if fmt == "wav" else "AIFF"
    found = exiftool_json(exiftool, path, f"-{group}:Copyright", "-Title", "-Warning")
    assert found[f"{group}:Copyright"] == "(c) 2026 Ada" and "Warning" not in str(found)
    if fmt == "wav":
        assert found["RIFF:Title"] == "Take 1"
    assert _run(ffmpeg, "-v", "error", "-i", str(path), "-f", "md5", "-") == decoded
    report = rightsmeta.read(path)
    assert report.errors == [] and report.rights["copyright"] == "(c) 2026 Ada"
    assert {c.rights.get("copyright") for c in report.carriers} <= {"(c) 2026 Ada", None}

    # Without a notice of its own, the statement leaves the file's notice as it was.
    assert rightsmeta.tag(untouched, Assertion.build(deny=["ai"])).status == "tagged"
    assert _ffprobe_tag(ffmpeg, untouched, "copyright") == "(c) 1999 Old Label"


def _imagemagick_xmp_png(path: Path, packet: bytes) -> None:
    """A PNG holding XMP the way ImageMagick 6 copies a profile into one: hex text in a zTXt
    chunk "Raw profile type xmp" (ExifTool reads it as XMP)."""
    out = io.BytesIO()
    material.photo(7, (96, 64)).save(out, format="PNG")
    data, hexed = out.getvalue(), packet.hex()
    text = b"\nxmp\n%8d\n" % len(packet) + b"\n".join(hexed[i : i + 72].encode() for i in range(0, len(hexed), 72)) + b"\n"
    body = b"Raw profile type xmp\x00\x00" + zlib.compress(text)
    chunk = len(body).to_bytes(4, "big") + b"zTXt" + body + zlib.crc32(b"zTXt" + body).to_bytes(4, "big")
    at = data.index(b"IDAT") - 4
    path.write_bytes(data[:at] + chunk + data[at:])


IMAGEMAGICK_PACKET = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
    b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about=""'
    b' xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">'
    b'<plus:DataMining rdf:resource="http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED"/>'
    b"<dc:creator><rdf:Seq><rdf:li>Ada</rdf:li></rdf:Seq></dc:creator>"
    b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


def test_imagemagick_raw_xmp_profile_in_png_is_read_and_merged(exiftool: str, tmp_path: Path) -> None:
    # ExifTool reads this PNG's XMP as "data mining prohibited"; rightsmeta used to find no
    # signal at all (fail open), and tagging left the old packet beside the new one.
    path = tmp_path / "export.png"
    _imagemagick_xmp_png(path, IMAGEMAGICK_PACKET)
    assert exiftool_json(exiftool, path, "-XMP-plus:DataMining")["XMP-plus:DataMining"] == "Prohibited"
    report = rightsmeta.read(path)
    assert report.errors == []
    assert report.permissions[Purpose.DATA_MINING].state is State.NOT_ALLOWED
    assert [c.location for c in report.carriers] == ["PNG zTXt Raw profile type xmp"]
    before = pixels(path)

    assert rightsmeta.tag(path, Assertion.build(deny=["ai"], allow=["search"])).status == "tagged"
    report = rightsmeta.read(path)
    assert report.errors == [] and report.conflicts == ()
    assert [c.location for c in report.carriers] == ["PNG iTXt XML:com.adobe.xmp"]
    assert report.permissions[Purpose.AI_TRAINING].state is State.NOT_ALLOWED
    assert report.permissions[Purpose.SEARCH].state is State.ALLOWED
    found = exiftool_json(exiftool, path, "-a", "-XMP-plus:DataMining", "-XMP-dc:Creator", "-PNG:all")
    assert found["XMP-plus:DataMining"] == "Prohibited for AI/ML training" and found["XMP-dc:Creator"] == "Ada"
    assert not any("Raw" in key or "Warning" in key for key in found)
    assert pixels(path) == before


@pytest.mark.parametrize("compressed", [False, True], ids=["tEXt", "zTXt"])
def test_xmp_in_png_plain_text_chunk_is_read_and_merged(exiftool: str, tmp_path: Path, compressed: bool) -> None:
    # Pillow's PngInfo.add_text (the usual way from Python) keeps XMP in tEXt, or zTXt when
    # compressed; ExifTool reads it. rightsmeta read no signal there (fail open).
    info = PngImagePlugin.PngInfo()
    # Without the xpacket wrapper, whose BOM would make Pillow choose iTXt.
    xmpmeta = IMAGEMAGICK_PACKET[IMAGEMAGICK_PACKET.index(b"<x:xmpmeta") : IMAGEMAGICK_PACKET.index(b"<?xpacket end")]
    info.add_text("XML:com.adobe.xmp", xmpmeta.decode("ascii"), zip=compressed)
    path = tmp_path / "pipeline.png"
    material.photo(8, (96, 64)).save(path, pnginfo=info)
    chunk = "zTXt" if compressed else "tEXt"
    assert chunk.encode() in path.read_bytes()
    assert exiftool_json(exiftool, path, "-XMP-plus:DataMining")["XMP-plus:DataMining"] == "Prohibited"
    report = rightsmeta.read(path)
    assert report.errors == [] and [c.location for c in report.carriers] == [f"PNG {chunk} XML:com.adobe.xmp"]
    assert report.permissions[Purpose.DATA_MINING].state is State.NOT_ALLOWED
    before = pixels(path)

    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    report = rightsmeta.read(path)
    assert report.errors == [] and report.conflicts == ()
    assert [c.location for c in report.carriers] == ["PNG iTXt XML:com.adobe.xmp"]
    assert chunk.encode() not in path.read_bytes()
    found = exiftool_json(exiftool, path, "-XMP-plus:DataMining", "-XMP-dc:Creator")
    assert found["XMP-plus:DataMining"] == "Prohibited for AI/ML training" and found["XMP-dc:Creator"] == "Ada"
    assert pixels(path) == before


def test_flac_with_an_id3_tag_in_front(ffmpeg: str, exiftool: str, tmp_path: Path) -> None:
    # Some rippers and taggers put an ID3v2 tag in front of a FLAC stream; ExifTool reads it.
    # Its reservation went unread (fail open), and tagging left its old words beside the new ones.
    flac = tmp_path / "plain.flac"
    _run(ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", str(flac))
    tags = ID3()
    tags.add(TXXX(encoding=3, desc="tdm-reservation", text=["1"]))
    tags.add(TCOP(encoding=3, text=["(c) 1999 Old Label"]))
    tags.add(TIT2(encoding=3, text=["Track 1"]))
    front = io.BytesIO()
    tags.save(front)
    path = tmp_path / "ripped.flac"
    path.write_bytes(front.getvalue() + flac.read_bytes())
    assert exiftool_json(exiftool, path, "-ID3:all")["ID3v2_4:Tdm-reservation"] == 1
    report = rightsmeta.read(path)
    assert report.errors == [] and report.permissions[Purpose.DATA_MINING].state is State.NOT_ALLOWED
    assert [c.location for c in report.carriers] == ["ID3v2.4 before the FLAC stream"]
    decoded = _run(ffmpeg, "-v", "error", "-i", str(path), "-f", "md5", "-")

    allow = Assertion.build(allow=["all"], copyright="(c) 2026 Ada")
    result = rightsmeta.tag(path, allow)
    assert result.status == "tagged" and result.carriers == ["id3", "xmp", "vorbis"]
    report = rightsmeta.read(path)
    assert report.errors == [] and report.conflicts == ()
    assert {p: v.state for p, v in report.permissions.items()} == {p: State.ALLOWED for p in Purpose}
    found = exiftool_json(exiftool, path, "-ID3:all", "-Vorbis:all")
    assert found["ID3v2_4:Tdm-reservation"] == 0 and found["ID3v2_4:Copyright"] == "(c) 2026 Ada"
    assert found["ID3v2_4:Title"] == "Track 1" and found["Vorbis:Copyright"] == "(c) 2026 Ada"
    assert _run(ffmpeg, "-v", "error", "-i", str(path), "-f", "md5", "-") == decoded

    # An ID3 tag in front that says nothing about rights stays as it was.
    quiet = tmp_path / "quiet.flac"
    titled = ID3()
    titled.add(TIT2(encoding=3, text=["Track 2"]))
    front = io.BytesIO()
    titled.save(front)
    quiet.write_bytes(front.getvalue() + flac.read_bytes())
    assert rightsmeta.tag(quiet, allow).carriers == ["vorbis"]
    assert quiet.read_bytes().startswith(front.getvalue())


@pytest.mark.parametrize("with_v2", [True, False], ids=["v2-and-v1", "v1-only"])
def test_mp3_id3v1_tail_is_kept_as_it_was(ffmpeg: str, exiftool: str, tmp_path: Path, with_v2: bool) -> None:
    # An old rip: an ID3v1 tail whose fields the ID3v2 tag does not all hold, or no ID3v2 tag
    # at all. mutagen rebuilt the tail from the v2 frames when saving: the v1 comment was erased
    # and v1's artist, album, year and genre were copied into the v2 tag; with no v2 tag, every
    # v1 field was blanked.
    path = tmp_path / "rip.mp3"
    _run(ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "libmp3lame",
         "-id3v2_version", "0", "-write_id3v1", "0", str(path))
    v2 = ID3()
    v2.add(TIT2(encoding=3, text=["Track Title"]))
    head = io.BytesIO()
    if with_v2:
        v2.save(head, v1=0)

    def field(text: str, size: int) -> bytes:
        return text.encode("latin-1").ljust(size, b"\x00")

    v1 = (b"TAG" + field("Track Title", 30) + field("The Band", 30) + field("The Album", 30) + field("1998", 4)
          + field("great take", 28) + b"\x00\x07\x11")
    path.write_bytes(head.getvalue() + path.read_bytes() + v1)
    before = exiftool_json(exiftool, path, "-ID3v1:all")

    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    assert path.read_bytes().endswith(v1)
    assert exiftool_json(exiftool, path, "-ID3v1:all") == before
    assert "ID3v1:Comment" in before
    found = exiftool_json(exiftool, path, "-ID3v2_4:all")
    assert found.get("ID3v2_4:Title") == ("Track Title" if with_v2 else None)
    assert "ID3v2_4:Artist" not in found and "ID3v2_4:Album" not in found


def test_what_is_not_read_is_named(ffmpeg: str, exiftool: str, tmp_path: Path) -> None:
    # Both used to be "not a format rightsmeta knows (unrecognised first bytes)": an RF64 WAV
    # (recorders write one for takes over 4 GiB) was skipped like a stray text file, and a
    # photographer's XMP sidecar left them guessing.
    rf64 = tmp_path / "take.wav"
    _run(ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", "-rf64", "always", str(rf64))
    assert rf64.read_bytes()[:4] == b"RF64"
    sidecar = tmp_path / "IMG_0001.xmp"
    _run(exiftool, "-q", "-o", str(sidecar), "-XMP-dc:Creator=Ada", "-XMP-plus:DataMining=Prohibited")
    originals = {p: p.read_bytes() for p in (rf64, sidecar)}

    result = rightsmeta.tag(rf64, DENY_AI)
    assert result.status == "failed" and "RF64" in (result.reason or "")
    result = rightsmeta.tag(sidecar, DENY_AI)
    assert result.status == "skipped" and "XMP sidecar" in (result.reason or "")
    assert {p: p.read_bytes() for p in originals} == originals
    found = verify(rf64)
    assert found.status == "unreadable" and "RF64" in " ".join(found.reasons)
    assert "XMP sidecar" in " ".join(verify(sidecar).reasons)


def test_epub_zipped_by_hand_with_info_zip(epubcheck: list[str], tmp_path: Path) -> None:
    # `zip -r book.epub mimetype META-INF OEBPS`, the usual hand-made EPUB: mimetype first and
    # stored, but Info-ZIP adds an extra field (EPUBCheck PKG-005), so its text lies past the 64
    # bytes sniffed and the book was skipped as "not a format rightsmeta knows".
    unpacked = tmp_path / "book"
    with zipfile.ZipFile(io.BytesIO(epub_bytes(3))) as archive:
        archive.extractall(unpacked)
    path = tmp_path / "book.epub"
    subprocess.run(["zip", "-q", "-r", str(path), "mimetype", "META-INF", "OEBPS"], cwd=unpacked, check=True)
    assert path.read_bytes()[30:38] == b"mimetype" and int.from_bytes(path.read_bytes()[28:30], "little") > 0

    assert rightsmeta.read(path).format == "epub"
    result = rightsmeta.tag(path, DENY_AI)
    assert result.status == "tagged", result.reason
    report = rightsmeta.read(path)
    assert report.errors == [] and report.permissions[Purpose.AI_TRAINING].state is State.NOT_ALLOWED
    checked = subprocess.run([*epubcheck, str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert [e.filename for e in zipfile.ZipFile(path).infolist()][0] == "mimetype"


@pytest.mark.parametrize(("name", "args", "said"), [
    ("clip.mkv", ["-c:v", "libx264", "-preset", "ultrafast"], "Matroska"),
    ("clip.webm", ["-c:v", "libvpx"], "WebM"),
    ("clip.avi", ["-c:v", "mjpeg"], "AVI"),
    ("clip.ogv", ["-c:v", "libtheora"], "Ogg of a codec"),
])
def test_video_rightsmeta_does_not_read_is_named(ffmpeg: str, tmp_path: Path, name: str, args: list[str], said: str) -> None:
    # Videos from a phone or an editor were skipped as "not a format rightsmeta knows", like a
    # stray text file: tag now fails them with the format named, and verify says the same.
    path = tmp_path / name
    _run(ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=0.5", *args, str(path))
    before = path.read_bytes()
    result = rightsmeta.tag(path, DENY_AI)
    reason = result.reason or ""
    assert result.status == "failed" and reason.startswith(said) and reason.endswith("is not supported")
    assert path.read_bytes() == before and verify(path).reasons == [reason]


def test_photographers_other_constraints_survive_tagging(exiftool: str, tmp_path: Path) -> None:
    # IPTC "Other Constraints" (plus:OtherConstraints) holds a photographer's own terms. A
    # statement whose PLUS code needs rightsmeta's sentence there (--deny ai: the code says
    # nothing of inference) wrote over them: the terms were lost. Ours now comes first, on its
    # own line, theirs after it, and tagging again replaces only ours.
    path = tmp_path / "agency.jpg"
    path.write_bytes(material.jpeg(material.photo(9, (96, 64))))
    exiftool_write(exiftool, path, "-XMP-plus:OtherConstraints=Editorial use only; embargo until 2027-01-01")

    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    said = exiftool_json(exiftool, path, "-XMP-plus:OtherConstraints")["XMP-plus:OtherConstraints"]
    ours, _, theirs = said.partition("\n")
    assert ours.startswith("Data mining and AI permissions: Not allowed: AI/ML training")
    assert theirs == "Editorial use only; embargo until 2027-01-01"
    report = rightsmeta.read(path)
    assert report.errors == [] and report.conflicts == ()
    assert report.permissions[Purpose.AI_INFERENCE].state is State.NOT_ALLOWED

    terms = "https://ada.example/tdm-licence"
    constrained = Assertion.build(constrain={"data-mining": terms}, deny=["genai-training"])
    assert rightsmeta.tag(path, constrained).status == "tagged"
    said = exiftool_json(exiftool, path, "-XMP-plus:OtherConstraints")["XMP-plus:OtherConstraints"]
    assert said.count("Data mining and AI permissions:") == 1 and said.endswith("\nEditorial use only; embargo until 2027-01-01")
    report = rightsmeta.read(path)
    assert report.errors == [] and report.conflicts == ()
    assert report.permissions[Purpose.DATA_MINING] == Permission(State.CONSTRAINED, terms)

    # A statement the code says alone needs no sentence: their terms are left alone.
    assert rightsmeta.tag(path, Assertion.build(deny=["all"])).status == "tagged"
    said = exiftool_json(exiftool, path, "-XMP-plus:OtherConstraints")["XMP-plus:OtherConstraints"]
    assert said == "Editorial use only; embargo until 2027-01-01"


def test_flac_with_a_damaged_id3_tag_in_front_is_refused(ffmpeg: str, tmp_path: Path) -> None:
    # mutagen would keep the frames before the damage and drop the rest: refused with the
    # reason, as for an MP3, before anything is written.
    flac = tmp_path / "plain.flac"
    _run(ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=duration=0.5", str(flac))
    tags = ID3()
    tags.add(TXXX(encoding=3, desc="tdm-reservation", text=["1"]))
    tags.add(TIT2(encoding=3, text=["Track 1"]))
    front = io.BytesIO()
    tags.save(front, padding=lambda info: 0)
    damaged = bytearray(front.getvalue())
    title = damaged.index(b"TIT2")
    damaged[title + 4 : title + 8] = bytes((0, 0, 0x7F, 0x7F))  # a frame running past the tag's end
    path = tmp_path / "ripped.flac"
    path.write_bytes(bytes(damaged) + flac.read_bytes())
    assert rightsmeta.read(path).errors != []

    result = rightsmeta.tag(path, DENY_AI)
    assert result.status == "failed" and "repair the tag before tagging" in (result.reason or "")
    assert path.read_bytes() == bytes(damaged) + flac.read_bytes()


def test_epub_whose_mimetype_is_not_first_is_named(tmp_path: Path) -> None:
    # `zip -r book.epub .` puts mimetype wherever it falls: EPUBCheck refuses it (PKG-006) and
    # some readers too. It was skipped as "not a format rightsmeta knows"; now it fails with how
    # to repack it.
    unpacked = tmp_path / "book"
    with zipfile.ZipFile(io.BytesIO(epub_bytes(3))) as archive:
        archive.extractall(unpacked)
    path = tmp_path / "book.epub"
    subprocess.run(["zip", "-q", "-r", "-X", str(path), "META-INF", "OEBPS", "mimetype"], cwd=unpacked, check=True)
    result = rightsmeta.tag(path, DENY_AI)
    assert result.status == "failed" and "'mimetype' entry is not first and stored" in (result.reason or "")
    assert verify(path).reasons == [result.reason]


@pytest.mark.parametrize("flags", [[], ["-movflags", "+faststart"]], ids=["moov-last", "moov-first"])
def test_quicktime_user_data_copyright_says_the_new_notice(ffmpeg: str, exiftool: str, tmp_path: Path, flags: list[str]) -> None:
    # QuickTime, Final Cut and ffmpeg keep a MOV's copyright in moov/udta/(c)cpy. Tagged with a
    # new notice, the file said the old one there and the new one in the ilst: ffprobe showed
    # the old one. With the movie data after 'moov', every chunk offset moves with the atom.
    path = tmp_path / "clip.mov"
    _run(ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=1", "-f", "lavfi",
         "-i", "sine=duration=1", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
         "-metadata", "copyright=(c) 1999 Old Studio", *flags, "-f", "mov", str(path))
    streams = _run(ffmpeg, "-v", "error", "-i", str(path), "-map", "0", "-f", "streamhash", "-hash", "md5", "-")

    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    assert _ffprobe_tag(ffmpeg, path, "copyright") == "(c) 2026 Ada"
    found = exiftool_json(exiftool, path, "-a", "-UserData:Copyright", "-ItemList:Copyright", "-Warning")
    assert found["UserData:Copyright"] == "(c) 2026 Ada" == found["ItemList:Copyright"] and "Warning" not in str(found)
    assert _run(ffmpeg, "-v", "error", "-i", str(path), "-map", "0", "-f", "streamhash", "-hash", "md5", "-") == streams
    assert rightsmeta.read(path).errors == []


def test_other_languages_of_other_constraints_survive_tagging(exiftool: str, tmp_path: Path) -> None:
    # rightsmeta writes the x-default entry; an agency's terms in other languages are theirs,
    # and used to vanish with the Alt rightsmeta replaced.
    path = tmp_path / "agency.jpg"
    path.write_bytes(material.jpeg(material.photo(10, (96, 64))))
    exiftool_write(exiftool, path, "-XMP-plus:OtherConstraints=Editorial use only",
                   "-XMP-plus:OtherConstraints-de=Nur redaktionelle Nutzung")
    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    found = exiftool_json(exiftool, path, "-XMP-plus:OtherConstraints*")
    assert found["XMP-plus:OtherConstraints-de"] == "Nur redaktionelle Nutzung"
    assert found["XMP-plus:OtherConstraints"].endswith("\nEditorial use only")
    assert rightsmeta.read(path).errors == []


def test_mp3_ape_copyright_says_the_new_notice(ffmpeg: str, exiftool: str, tmp_path: Path) -> None:
    # foobar2000 and Mp3tag keep an APEv2 tag beside ID3 (here before an ID3v1 tail), with its
    # own Copyright item: tagged with a new notice, ExifTool showed the old one there.
    path = tmp_path / "foobar.mp3"
    _run(ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "libmp3lame",
         "-id3v2_version", "3", "-write_id3v1", "1", "-metadata", "title=Track", str(path))
    ape = APEv2()
    ape["Copyright"] = "(c) 1999 Old Label"
    ape["REPLAYGAIN_TRACK_GAIN"] = "-6.20 dB"
    data = path.read_bytes()
    body = io.BytesIO(data[:-128])
    ape.save(body)
    path.write_bytes(body.getvalue() + data[-128:])
    decoded = _run(ffmpeg, "-v", "error", "-i", str(path), "-f", "md5", "-")
    assert exiftool_json(exiftool, path, "-APE:Copyright")["APE:Copyright"] == "(c) 1999 Old Label"

    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    found = exiftool_json(exiftool, path, "-APE:all", "-ID3v1:Title", "-Warning")
    assert found["APE:Copyright"] == "(c) 2026 Ada" and found["APE:ReplaygainTrackGain"] == "-6.20 dB"
    assert found["ID3v1:Title"] == "Track" and "Warning" not in str(found)
    assert path.read_bytes().endswith(data[-128:])
    assert _run(ffmpeg, "-v", "error", "-i", str(path), "-f", "md5", "-") == decoded
