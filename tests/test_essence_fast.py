"""The fast essence of images (issue 12): what changed, and that nothing recorded before is lost.

- A JPEG's exact hash is taken from its coded data (``v2:``): frame, tables and scans, no
  metadata, so no full-size decode is needed; a metadata edit keeps it, a change of the picture
  does not.
- Region codes come from one reduced working image with box edges kept between pixels; the flips
  and turns of the whole picture are flips and turns of its grid.
- Ledgers recorded before hold JPEG pixel hashes and region codes made the old way (each box cut
  from a 512-pixel copy, rounded to pixels, resized bicubically): ``old_definition`` below restates
  that definition, and a ledger holding its values still finds stripped and handled copies.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import material
import numpy as np
import pytest
from PIL import Image
from samples import seeded_mutants

import rightsmeta
from rightsmeta.fingerprint import HASH_V2, Essence, _image_hash, distance, essence
from rightsmeta.ledger import Ledger, Work
from rightsmeta.verify import verify

ASSERTION = rightsmeta.Assertion.build(deny=["ai"])


def old_definition(data: bytes) -> Essence:
    """The essence rightsmeta recorded before the fast path (its definition, restated): pixel hash
    of the RGBA image; regions cut from a 512-pixel BOX-reduced grey copy at whole pixels and
    resized bicubically; corner squares cut from the full-size grey image."""
    img = Image.open(io.BytesIO(data))
    rgba = img.convert("RGBA")
    digest = hashlib.sha256(b"rightsmeta-image-v1\0%d\0%d\0" % rgba.size + rgba.tobytes()).hexdigest()
    luma = rgba.convert("L")
    scale = 512 / max(luma.size)
    small = luma if scale >= 1 else luma.resize((round(luma.width * scale), round(luma.height * scale)), Image.Resampling.BOX)

    def code(part: Image.Image) -> str:
        return _image_hash(np.asarray(part.resize((32, 32), Image.Resampling.BICUBIC), dtype=np.float64))

    def box(left: float, top: float, right: float, bottom: float) -> str:
        w, h = small.size
        return code(small.crop((round(left * w), round(top * h), round(right * w), round(bottom * h))))

    regions = [("whole", box(0, 0, 1, 1))]
    regions += [(f"centre {round(c * 100)} %", box((1 - c) / 2, (1 - c) / 2, (1 + c) / 2, (1 + c) / 2)) for c in (0.9, 0.8, 0.7, 0.6)]
    shape = small.width / small.height
    for name, ratio in {"square": 1.0, "4:5": 0.8, "16:9": 16 / 9}.items():
        if abs(shape / ratio - 1) >= 0.04:
            rw, rh = (ratio / shape, 1.0) if shape > ratio else (1.0, shape / ratio)
            regions.append((f"centre {name}", box((1 - rw) / 2, (1 - rh) / 2, (1 + rw) / 2, (1 + rh) / 2)))
    regions += [("top half", box(0, 0, 1, 0.5)), ("bottom half", box(0, 0.5, 1, 1)),
                ("left half", box(0, 0, 0.5, 1)), ("right half", box(0.5, 0, 1, 1))]
    side = [round(64 * 2 ** (k / 2)) for k in range(18) if round(64 * 2 ** (k / 2)) <= 0.8 * min(luma.size)][-1]
    w, h = luma.size
    for corner, (left, top) in {"top left": (0, 0), "top right": (w - side, 0), "bottom left": (0, h - side),
                                "bottom right": (w - side, h - side)}.items():
        square = luma.crop((left, top, left + side, top + side)).resize((32, 32), Image.Resampling.BICUBIC)
        if float(np.asarray(square, dtype=np.float64).std()) >= 2.0:
            regions.append((f"{corner} {side} px", code(luma.crop((left, top, left + side, top + side)))))
    return Essence("image", digest, regions[0][1], regions=tuple(regions))


def tagged_jpeg(seed: int, tmp_path: Path, **save: object) -> Path:
    path = tmp_path / f"photo-{seed}.jpg"
    buf = io.BytesIO()
    material.photo(seed, (480, 360)).save(buf, "JPEG", quality=88, **save)
    path.write_bytes(buf.getvalue())
    assert rightsmeta.tag(str(path), ASSERTION).status == "tagged"
    return path


def test_jpeg_hash_is_of_the_coded_picture(tmp_path: Path, exiftool: str) -> None:
    for seed, save in ((1, {}), (2, {"progressive": True}), (3, {"optimize": True, "subsampling": 0})):
        path = tagged_jpeg(seed, tmp_path, **save)
        data = path.read_bytes()
        found = essence(data, "jpeg")
        assert found.hash is not None and found.hash.startswith(HASH_V2) and len(found.hash) == 67, found
        stripped = tmp_path / f"stripped-{seed}.jpg"
        subprocess.run([exiftool, "-q", "-all=", "-o", str(stripped), str(path)], check=True)
        assert len(stripped.read_bytes()) < len(data)  # the XMP (at least) went
        assert essence(stripped.read_bytes(), "jpeg").hash == found.hash
        # An MPO's further images (after the first EOI) are not the first picture.
        assert essence(data + stripped.read_bytes(), "jpeg").hash == found.hash
        # A quantisation table is part of the picture: one value changed, another hash.
        dqt = data.index(b"\xff\xdb")
        changed = data[: dqt + 6] + bytes([data[dqt + 6] ^ 1]) + data[dqt + 7 :]
        assert essence(changed, "jpeg").hash not in (None, found.hash)
        # The older form, asked for, is the pixel hash of the old definition.
        assert essence(data, "jpeg", legacy=True).legacy_hash == old_definition(data).hash
        assert essence(data, "jpeg").legacy_hash is None


def test_jpeg_hash_skips_metadata_between_scans(tmp_path: Path) -> None:
    buf = io.BytesIO()
    material.photo(4, (320, 240)).save(buf, "JPEG", quality=80, progressive=True)
    data = buf.getvalue()
    second_scan = data.index(b"\xff\xda", data.index(b"\xff\xda") + 2)
    comment = b"\xff\xfe" + (2 + 12).to_bytes(2, "big") + b"between scan"
    with_comment = data[:second_scan] + comment + data[second_scan:]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(with_comment))), np.asarray(Image.open(io.BytesIO(data))))
    assert essence(with_comment, "jpeg").hash == essence(data, "jpeg").hash
    # A byte of entropy-coded data changed is another picture.
    middle = second_scan - 200
    flipped = data[:middle] + bytes([data[middle] ^ 0x10 if data[middle] not in (0xEF, 0xFF) else 0x11]) + data[middle + 1 :]
    assert essence(flipped, "jpeg").hash != essence(data, "jpeg").hash


def test_other_images_keep_the_pixel_hash() -> None:
    """GIF has no coded-data hash (PNG, WebP and TIFF do: tests/test_coded_hash.py)."""
    img = material.photo(5, (200, 150))
    buf = io.BytesIO()
    img.save(buf, "GIF")
    assert essence(buf.getvalue(), "gif").hash == old_definition(buf.getvalue()).hash


def test_recording_needs_no_probes() -> None:
    data = material.jpeg(material.photo(6, (320, 240)), 85)
    full, recorded = essence(data, "jpeg"), essence(data, "jpeg", probes=False)
    assert recorded.regions == full.regions and recorded.perceptual == full.perceptual and recorded.hash == full.hash
    assert recorded.probes == () and len(full.probes) > 16


def test_turns_of_the_grid_are_the_turns_of_the_picture() -> None:
    """Each probe named for a flip or turn is the code of the picture undone that way (PIL's meaning):
    the same bits for flips, within a few for quarter turns (a 192x256 picture is resized to 32x32
    with other filter widths per axis than a 256x192 one)."""
    undo = {
        "mirrored": Image.Transpose.FLIP_LEFT_RIGHT, "flipped vertically": Image.Transpose.FLIP_TOP_BOTTOM,
        "rotated 180": Image.Transpose.ROTATE_180, "rotated 90 clockwise": Image.Transpose.ROTATE_90,
        "rotated 90 anticlockwise": Image.Transpose.ROTATE_270, "transposed": Image.Transpose.TRANSPOSE,
        "transversed": Image.Transpose.TRANSVERSE,
    }
    img = material.photo(7, (256, 192)).convert("L")  # at the working size: no reduction involved
    buf = io.BytesIO()
    img.save(buf, "PNG")
    probes = dict(essence(buf.getvalue(), "png").probes)
    for name, method in undo.items():
        turned = io.BytesIO()
        img.transpose(method).save(turned, "PNG")
        bits = round(256 * distance(probes[name], essence(turned.getvalue(), "png").perceptual))
        assert bits <= (4 if "90" in name or name.startswith("trans") else 0), (name, bits)


HANDLINGS = ("crop 10 %/side", "crop 20 %/side", "crop 20 % left, 10 % top", "crop to square", "banner 25 % top",
             "sticker over a quarter", "mirror", "rotate 90", "thumbnail 256 px", "greyscale")


def test_a_ledger_recorded_the_old_way_still_finds_copies(tmp_path: Path, exiftool: str) -> None:
    """Works recorded with the old definition's values, looked up with today's code."""
    works = []
    for seed in range(8):
        path = tagged_jpeg(10 + seed, tmp_path)
        works.append((Work.create(str(path), "jpeg", old_definition(path.read_bytes()), ASSERTION, id=f"old-{seed}"), path))
    with Ledger.open(tmp_path / "old.sqlite3") as ledger:
        assert not ledger.needs_legacy_hash("jpeg")
        ledger.record_many(work for work, _ in works)
        assert ledger.needs_legacy_hash("jpeg") and not ledger.needs_legacy_hash("png")
        missed = []
        for work, path in works:
            stripped = tmp_path / f"{work.id}-stripped.jpg"
            subprocess.run([exiftool, "-q", "-all=", "-o", str(stripped), str(path)], check=True)
            seen = essence(stripped.read_bytes(), "jpeg", legacy=ledger.needs_legacy_hash("jpeg"))
            match = ledger.find(seen)
            assert match is not None and match.work.id == work.id and match.exact, (work.id, match)
            picture = Image.open(path).convert("RGB")
            for handling in HANDLINGS:
                match = ledger.find(essence(material.handle(picture, handling), "jpeg"))
                if match is None or match.work.id != work.id:
                    missed.append((work.id, handling))
        assert missed == []
        # Through verify too: a stripped copy is named stripped, matched exactly.
        verdict = verify(str(tmp_path / "old-0-stripped.jpg"), ledger=ledger)
        assert verdict.status == "stripped" and verdict.match is not None and verdict.match.exact, verdict


def test_ledger_lines_carry_the_versioned_hash(tmp_path: Path) -> None:
    data = material.jpeg(material.photo(8, (240, 180)), 85)
    work = Work.create("a.jpg", "jpeg", essence(data, "jpeg", probes=False), ASSERTION, id="v2-work")
    line = json.dumps(work.to_json())
    with Ledger.open(tmp_path / "l.sqlite3") as ledger:
        assert ledger.import_jsonl([line]) == 1
        assert not ledger.needs_legacy_hash("jpeg")
        assert ledger.find(essence(data, "jpeg")).work.id == "v2-work"  # type: ignore[union-attr]
        for bad in ("v3:" + "0" * 64, "v2:" + "0" * 63, "V2:" + "0" * 64):
            with pytest.raises(ValueError, match="essence_hash"):
                ledger.import_jsonl([json.dumps(work.to_json() | {"id": "x", "essence_hash": bad})])


def test_an_image_essence_imports_no_other_kinds_libraries() -> None:
    data = material.jpeg(material.photo(9, (240, 180)), 85)
    code = (
        "import sys\n"
        "from rightsmeta.fingerprint import essence\n"
        f"assert essence({data!r}, 'jpeg').perceptual\n"
        "print(sorted(m for m in ('iscc_core', 'soundfile', 'pypdf', 'defusedxml') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_mp3_hash_ignores_the_tags_around_the_frames(tmp_path: Path, ffmpeg: str) -> None:
    """An MP3 without a Xing/LAME frame: libsndfile estimates its length from the file size, so the
    sample hash (the older form) changed with every tag added or stripped; the frames' hash does not."""
    source = tmp_path / "song.wav"
    source.write_bytes(material.wav(material.music(3, seconds=6.0)))
    plain = tmp_path / "song.mp3"
    subprocess.run([ffmpeg, "-v", "error", "-i", str(source), "-c:a", "libmp3lame", "-b:a", "128k", "-write_xing", "0",
                    "-id3v2_version", "0", str(plain)], check=True)
    untagged = plain.read_bytes()
    assert rightsmeta.tag(str(plain), ASSERTION).status == "tagged"
    tagged = plain.read_bytes()
    assert tagged.startswith(b"ID3") and not untagged.startswith(b"ID3")
    with_v1 = tagged + b"TAG" + b"title".ljust(125, b"\0")
    first, second, third = (essence(d, "mp3", legacy=True) for d in (untagged, tagged, with_v1))
    assert first.hash is not None and first.hash.startswith(HASH_V2)
    assert first.hash == second.hash == third.hash
    assert first.legacy_hash != second.legacy_hash  # the problem the frames' hash solves
    # Frames are the essence: one changed byte in the middle is another hash.
    middle = len(untagged) // 2
    changed = untagged[:middle] + bytes([untagged[middle] ^ 0x01]) + untagged[middle + 1 :]
    assert essence(changed, "mp3").hash not in (None, first.hash)


def test_a_batch_records_every_file_as_its_own_work(tmp_path: Path) -> None:
    """``tag -r --ledger`` gave every file of a batch one work id, so the ledger kept only the first."""
    for seed in range(3):
        (tmp_path / f"p{seed}.jpg").write_bytes(material.jpeg(material.photo(40 + seed, (160, 120)), 85))
    with Ledger.open(tmp_path / "batch.sqlite3") as ledger:
        results = rightsmeta.api.tag_all(sorted(tmp_path.glob("*.jpg")), ASSERTION, ledger=ledger)
        assert [r.status for r in results] == ["tagged"] * 3
        assert len({r.assertion.work_id for r in results}) == 3
        assert len(ledger) == 3


def test_the_coded_data_walk_is_bounded_on_damaged_jpegs() -> None:
    """Seeded mutants (flipped bytes, cuts, inflated lengths): the walk raises only MalformedFile, and
    ``essence`` never raises; a mutant keeps the original's hash only if its coded bytes are intact."""
    from rightsmeta.carriers.jpeg import coded_ranges
    from rightsmeta.errors import MalformedFile

    buf = io.BytesIO()
    material.photo(12, (160, 120)).save(buf, "JPEG", quality=80, progressive=True)
    data = buf.getvalue()
    original = essence(data, "jpeg", probes=False).hash
    for n, mutant in seeded_mutants(data, 150, b"\xff\xff"):
        try:
            coded_ranges(mutant)
        except MalformedFile:
            pass
        found = essence(mutant, "jpeg", probes=False)
        if found.hash == original:
            assert all(mutant[s:e] == data[s:e] for s, e in coded_ranges(data)), n
