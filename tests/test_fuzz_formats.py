"""The seeded mutation test of tests/test_mutations.py, over the formats it leaves out: GIF and
AVIF (Pillow), AIFF, Opus, MP4 and MOV (ffmpeg). Same damage, same properties: no bug of ours
reported, a bound on each read, and never "use it" unless the reservation's own bytes were hit.
GIF and AVIF carry the statement in a signed C2PA manifest only (rightsmeta writes no XMP there).
"""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

import pytest
from samples import image_bytes
from test_mutations import BOUND, DENY_AI, _deadline, _mutants

import rightsmeta
from rightsmeta import api, keys
from rightsmeta.model import Purpose
from rightsmeta.verify import classify

PER_FORMAT = 150
SIGNED = ("gif", "avif")
_FFMPEG = {"aiff": ["-c:a", "pcm_s16be"], "opus": ["-c:a", "libopus"], "mp4": ["-c:a", "aac"], "mov": ["-c:a", "aac"]}
FORMATS = ("gif", "avif", *_FFMPEG)


def _original(fmt: str, ffmpeg: str, folder: Path) -> bytes:
    if fmt in ("gif", "avif"):
        return image_bytes(fmt)
    path = folder / f"tone.{fmt}"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.2", *_FFMPEG[fmt],
                    "-metadata", "title=Tone", str(path)], check=True)
    return path.read_bytes()


@pytest.fixture(scope="module")
def identity() -> keys.Identity:
    return keys.make_identity("Fuzz Test")


@pytest.mark.parametrize("fmt", FORMATS)
def test_mutants_never_read_as_usable_without_an_error(fmt: str, ffmpeg: str, tmp_path: Path,
                                                       identity: keys.Identity) -> None:
    rng = random.Random(f"rightsmeta-fuzz-formats-{fmt}")
    tagged = rightsmeta.tag_bytes(_original(fmt, ffmpeg, tmp_path), DENY_AI, identity=identity if fmt in SIGNED else None)
    clean = api.read(tagged)
    assert clean.format == fmt and clean.errors == [] and not clean.may_use(Purpose.AI_TRAINING)
    failures: list[str] = []
    started = time.monotonic()
    for what, mutant, destroyed in _mutants(tagged, rng, PER_FORMAT):
        with _deadline(BOUND):
            report = api.read(mutant)
            status = classify(report).status
        if status in ("intact", "partial", "untagged") and report.errors:
            failures.append(f"{what}: verify says {status} of a report with errors")
        failures += [f"{what}: {e}" for e in report.errors if "rightsmeta failed on this file" in e]
        usable = any(report.may_use(p) for p in (Purpose.AI_TRAINING, Purpose.GENAI_TRAINING, Purpose.AI_INFERENCE))
        if usable and not destroyed:
            failures.append(f"{what}: reads as usable, no error ({[c.name for c in report.carriers]})")
    assert not failures, "\n".join(failures)
    assert time.monotonic() - started < 30
