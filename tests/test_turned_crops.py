"""Stripped copies flipped or turned AND cropped or covered are named with their work (session 9).

A copy looked up brings its parts (slight centred crops, halves, corner squares) also in each of
its flips and turns undone: grids turned, not new cuts. ``region_pair_allowed`` compares a turned
part with the part of the work it shows (a mirrored copy's top left corner with the work's top
right one), and the crop search also searches the copy mirrored back. What a work records is
unchanged (tests/test_codes_fast.py holds every recorded field to main's).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import material
import numpy as np
import pytest
from PIL import Image

from rightsmeta import Assertion, cropsearch
from rightsmeta.fingerprint import distance, essence, region_pair_allowed
from rightsmeta.ledger import Ledger, Work

ASSERTION = Assertion.build(deny=["ai"])
SIZES = [(320, 240), (240, 320), (340, 226), (280, 280)]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Ledger, list[tuple[Work, Image.Image]]]]:
    path = tmp_path_factory.mktemp("turned") / "ledger.sqlite3"
    works = []
    with Ledger.open(path) as ledger:
        for seed in range(4):
            img = material.photo(seed, SIZES[seed % 4])
            work = Work.create(f"p{seed}.jpg", "jpeg", essence(material.jpeg(img, 90), "jpeg", probes=False), ASSERTION,
                               id=f"photo-{seed}")
            works.append((work, img))
        ledger.record_many(w for w, _ in works)
        yield ledger, works


def _how(ledger: Ledger, img: Image.Image, handling: str) -> tuple[str, str | None]:
    found = cropsearch.matches(ledger, essence(material.handle(img, handling), "jpeg"))
    assert found, handling
    return found[0].work.id, found[0].how


def test_turned_and_cut_copies_are_named_with_their_work(photos: tuple[Ledger, list[tuple[Work, Image.Image]]]) -> None:
    ledger, works = photos
    for handling in material.TURNED_HANDLINGS:
        for work, img in works:
            named, how = _how(ledger, img, handling)
            assert named == work.id, (handling, work.id, how)


@pytest.mark.parametrize(("handling", "expected"), [
    ("mirror + crop 10 %/side", r"the file \(mirrored\) matched the work's centre 80 %"),
    ("rotate 90 + crop 15 %/side", r"the file \(rotated 90 anticlockwise\) matched the work's centre 70 %"),
    ("mirror + crop to 4:5", r"the file \(mirrored\) matched the work's centre 4:5"),
    # What the banner leaves of the mirrored picture: its top left corner is the work's top right.
    ("mirror + banner 20 % bottom",
     r"the file \(mirrored, (top half\) matched the work's top half|top (left|right) (\d+) px\) matched the work's "
     r"top (left|right) \3 px)"),
    ("rotate 180 + crop 20 % left, 10 % top",
     r"the file \(rotated 180, bottom right (\d+) px\) matched the work's top left \1 px"),
    ("mirror + crop 5/15/20/10 % l/t/r/b", r"the mirrored file's part 0-80 % across, .* matched the work's centre 60 % .*"),
])
def test_the_match_says_how_the_copy_was_turned(photos: tuple[Ledger, list[tuple[Work, Image.Image]]], handling: str,
                                                expected: str) -> None:
    ledger, works = photos
    work, img = works[0]  # 320 x 240
    named, how = _how(ledger, img, handling)
    assert named == work.id
    assert re.fullmatch(expected, how or ""), how
    if "banner" in handling and "half" not in (how or ""):  # mirrored: the other side
        left_right = re.findall(r"top (left|right)", how or "")
        assert left_right[0] != left_right[1], how


def test_a_turned_copy_s_parts_are_the_work_s_parts() -> None:
    """Each turned part of a flipped or turned copy is the code of the part of the picture it
    shows: the same bits for flips, within a few for quarter turns (other filter widths per axis)."""
    img = material.photo(7, (256, 192)).convert("L")  # at the working size: no reduction involved
    original = dict(essence(_png(img), "png").probes)
    turns = {"mirrored": Image.Transpose.FLIP_LEFT_RIGHT, "rotated 180": Image.Transpose.ROTATE_180,
             "rotated 90 anticlockwise": Image.Transpose.ROTATE_90}
    # The copy's part -> the part of the original it shows (restated, not derived from the code).
    shows = {
        "mirrored": {"centre 96 %": "centre 96 %", "left half": "right half", "top half": "top half",
                     "top left 128 px": "top right 128 px", "bottom right 128 px": "bottom left 128 px"},
        "rotated 180": {"centre 90 %": "centre 90 %", "top half": "bottom half", "left half": "right half",
                        "top left 128 px": "bottom right 128 px"},
        # PIL's ROTATE_90 turns anticlockwise: the copy's top is the original's right side.
        "rotated 90 anticlockwise": {"centre 94 %": "centre 94 %", "top half": "right half", "left half": "top half",
                                     "top left 128 px": "top right 128 px", "bottom left 128 px": "top left 128 px"},
    }
    for form, method in turns.items():
        copy = dict(essence(_png(img.transpose(method)), "png").probes)
        for part, shown in shows[form].items():
            bits = round(256 * distance(copy[f"{form}, {part}"], original[shown]))
            assert bits <= (6 if "90" in form else 0), (form, part, shown, bits)


def test_which_turned_parts_are_compared() -> None:
    assert region_pair_allowed("mirrored", "centre 80 %")  # a mirrored copy cut evenly
    assert region_pair_allowed("rotated 90 clockwise", "centre square")
    assert region_pair_allowed("mirrored, centre 92 %", "centre 70 %")
    assert region_pair_allowed("mirrored, top left 256 px", "top right 256 px")
    assert not region_pair_allowed("mirrored, top left 256 px", "top left 256 px")
    assert not region_pair_allowed("mirrored, top left 256 px", "top right 362 px")
    assert region_pair_allowed("flipped vertically, top half", "bottom half")
    assert region_pair_allowed("rotated 90 clockwise, top half", "left half")  # turned clockwise: the left came up
    assert region_pair_allowed("transposed, top right 181 px", "bottom left 181 px")
    assert not region_pair_allowed("rotated 180, top half", "top half")
    assert not region_pair_allowed("mirrored, left half", "whole")
    assert not region_pair_allowed("mirrored, centre 96 %", "top half")


def test_the_mirrored_search_is_the_search_of_the_mirrored_copy() -> None:
    """The crop search's coarse codes of the copy mirrored back, taken from the copy's own
    coefficients, are those of a search over the mirrored pixels."""
    for seed, size in enumerate([(480, 360), (300, 420)]):
        view = cropsearch.working_image(essence(material.jpeg(material.photo(seed, size), 90), "jpeg").view)
        derived, direct = cropsearch.CropSearch(view).mirrored(), cropsearch.CropSearch(view[:, ::-1].copy())
        assert np.allclose(derived.coefficients, direct.coefficients, rtol=0, atol=1e-6)
        assert np.array_equal(derived.low, direct.low)


def test_unrelated_turned_and_cut_files_match_nothing(photos: tuple[Ledger, list[tuple[Work, Image.Image]]]) -> None:
    ledger, _ = photos
    handlings = list(material.TURNED_HANDLINGS)
    for n in range(16):
        seed = 300_000 + n
        copy = material.handle(material.photo(seed, SIZES[n % 4]), handlings[n % len(handlings)])
        assert cropsearch.matches(ledger, essence(copy, "jpeg")) == [], (seed, handlings[n % len(handlings)])


def _png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()
