"""Stripped copies recognised on REAL photos and REAL music (issue 17), not only procedural material.

Photos: photographs bundled in scikit-image's wheel (tests/material.py REAL_PHOTOS; colour and
greyscale, PNG and JPEG, as the files are). Music: Bach chorales from music21's corpus performed
with sampled General MIDI instruments (FluidSynth, TimGM6mb; material.CHORALES). A few works are
recorded; every image handling and every audio handling of tests/material.py is applied to each;
at least 95 % of the copies must be recognised as their own work, none as another work, and the
handled copies of held-out real files (same sources, not in the ledger) must match nothing.
The full table is ``bench/durability.py --real`` (docs/durability.md).
"""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import material
import pytest
import soundfile
from PIL import Image

from rightsmeta import Assertion, cropsearch
from rightsmeta.fingerprint import essence
from rightsmeta.ledger import Ledger, Work

pytestmark = pytest.mark.skipif(material.real_material_missing() is not None,
                                reason=material.real_material_missing() or "")

ASSERTION = Assertion.build(deny=["ai"])
RECORDED_PHOTOS = ("astronaut.png", "camera.png", "coffee.png", "rocket.jpg")  # RGB and grey, PNG and JPEG
HELD_OUT_PHOTOS = ("chelsea.png", "coins.png")
RECORDED_SONGS = (1, 2)  # material.CHORALES indexes: strings, woodwinds
HELD_OUT_SONGS = (6,)  # another chorale on the same strings as song 1
# The held-out song's copies: a lossy whole and the shortest overlaps (where chance agreement is likeliest).
HELD_OUT_AUDIO = ("Opus 48 kHz", "10 s excerpt from 0 s", "10 s excerpt from 19 s", "tempo x1.03", "tempo x0.97")


def _ffmpeg(src: Path, handling: str, tmp: Path) -> bytes:
    args, ext = material.AUDIO_HANDLINGS[handling]
    out = tmp / f"copy.{ext}"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), *args, str(out)],
                   check=True, timeout=60)
    return out.read_bytes()


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Ledger, Path, list[tuple[Work, Image.Image]], list[tuple[Work, Path]]]]:
    tmp = tmp_path_factory.mktemp("real")
    with Ledger.open(tmp / "ledger.sqlite3") as ledger:
        photos = []
        for name in RECORDED_PHOTOS:
            fmt = "jpeg" if name.endswith(".jpg") else "png"
            work = Work.create(name, fmt, essence(material.real_photo_file(name), fmt, probes=False), ASSERTION, id=name)
            photos.append((work, material.real_photo(name)))
        songs = []
        for index in RECORDED_SONGS:
            src = tmp / f"song-{index}.wav"
            src.write_bytes(material.real_song(index))
            songs.append((Work.create(src.name, "wav", essence(src.read_bytes(), "wav"), ASSERTION, id=src.stem), src))
        ledger.record_many([w for w, _ in photos] + [w for w, _ in songs])
        yield ledger, tmp, photos, songs


def test_real_photos_recognised_after_every_handling(real: tuple[Ledger, Path, list[tuple[Work, Image.Image]], list[tuple[Work, Path]]]) -> None:
    ledger, _, photos, _ = real
    missed, wrong = [], []
    for handling in material.IMAGE_HANDLINGS:
        for work, img in photos:
            found = cropsearch.matches(ledger, essence(material.handle(img, handling), "jpeg"))
            if not found or found[0].work.id != work.id:
                missed.append((handling, work.id))
            wrong += [(handling, work.id, m.work.id) for m in found if m.work.id != work.id]
    total = len(material.IMAGE_HANDLINGS) * len(photos)
    assert len(missed) <= 0.05 * total, f"{total - len(missed)}/{total} recognised; missed {missed}"
    assert wrong == []


def test_real_songs_recognised_after_every_handling(real: tuple[Ledger, Path, list[tuple[Work, Image.Image]], list[tuple[Work, Path]]]) -> None:
    ledger, tmp, _, songs = real
    missed, wrong = [], []
    for handling, (_, ext) in material.AUDIO_HANDLINGS.items():
        for work, src in songs:
            found = ledger.matches(essence(_ffmpeg(src, handling, tmp), ext))
            if not found or found[0].work.id != work.id:
                missed.append((handling, work.id))
            wrong += [(handling, work.id, m.work.id) for m in found if m.work.id != work.id]
    total = len(material.AUDIO_HANDLINGS) * len(songs)
    assert len(missed) <= 0.05 * total, f"{total - len(missed)}/{total} recognised; missed {missed}"
    assert wrong == []


def test_held_out_real_files_match_nothing(real: tuple[Ledger, Path, list[tuple[Work, Image.Image]], list[tuple[Work, Path]]]) -> None:
    ledger, tmp, _, _ = real
    false = []
    for name in HELD_OUT_PHOTOS:
        img = material.real_photo(name)
        for handling in material.IMAGE_HANDLINGS:
            found = cropsearch.matches(ledger, essence(material.handle(img, handling), "jpeg"))
            false += [(name, handling, m.work.id, m.how) for m in found]
    for index in HELD_OUT_SONGS:
        src = tmp / f"held-{index}.wav"
        src.write_bytes(material.real_song(index))
        for handling in HELD_OUT_AUDIO:
            copy = essence(_ffmpeg(src, handling, tmp), material.AUDIO_HANDLINGS[handling][1])
            false += [(src.name, handling, m.work.id, m.how) for m in ledger.matches(copy)]
    assert false == []


def test_real_material_is_what_it_says(real: tuple[Ledger, Path, list[tuple[Work, Image.Image]], list[tuple[Work, Path]]]) -> None:
    _, _, _, songs = real
    # The photos are the bundled files themselves, decoded by Pillow as any user's file would be.
    coffee = Image.open(io.BytesIO(material.real_photo_file("coffee.png")))
    assert (coffee.format, coffee.size, coffee.mode) == ("PNG", (600, 400), "RGB")
    assert material.real_photo("camera.png").mode == "L"
    # The songs are 30 s of 44.1 kHz stereo that ffprobe reads, with sound throughout (a chorale, not a click).
    src = songs[0][1]
    probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(src)],
                                      check=True, capture_output=True, text=True, timeout=60).stdout)["streams"][0]
    assert (probe["sample_rate"], probe["channels"]) == ("44100", 2)
    assert abs(float(probe["duration"]) - 30.0) < 0.05
    pcm, rate = soundfile.read(src)
    loud = [abs(pcm[i : i + rate]).max() for i in range(0, len(pcm) - rate, rate)]
    assert min(loud) > 0.05, loud
