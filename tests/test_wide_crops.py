"""Crops of more than 20 % off a side of one axis (rightsmeta/cropsearch.py ``WideSearch``).

A platform's crop to another aspect: a 16:9 photo cut to a square (centred: 21.9 % off the left and
the right; off-centre: up to 32.8 % off one side), a 3:2 photo cut to a 9:16 story (31.3 % off each
side), a 3:1 banner from a 3:2 photo (25 % off the top and the bottom). Before WideSearch the
off-centre and story copies kept no region the ledger records and matched nothing; now they are
named with their work and the part of it they are. Unrelated pictures cut the same ways match
nothing. Real pictures: tests/material.py camera-like photos, cut with Pillow, saved as JPEG.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import material
import pytest

from rightsmeta import Assertion, cropsearch
from rightsmeta.fingerprint import essence
from rightsmeta.ledger import Ledger, Work

ASSERTION = Assertion.build(deny=["ai"])
# (size, handling, the part of the work it keeps: left, right, top, bottom in %)
CASES = [
    ((640, 360), "crop to square at 25 %", (11, 67, 0, 100)),
    ((480, 320), "crop to 9:16 (story)", (31, 69, 0, 100)),
    ((480, 320), "crop to 9:16 at 35 %", (22, 59, 0, 100)),
    ((480, 360), "crop to 9:16, then 50 %", (29, 71, 0, 100)),
    ((480, 320), "crop to 3:1 (banner)", (0, 100, 25, 75)),
    ((480, 360), "crop to 3:1 at 60 %", (0, 100, 33, 78)),
    ((480, 320), "crop 30/5/10/5 % l/t/r/b", (30, 90, 5, 95)),
]
SIZES = sorted({size for size, _, _ in CASES})
SEEDS = range(2)  # photos per size


def _seed(size: tuple[int, int], n: int) -> int:
    """Another scene for each size (one seed at two sizes draws the same scene, stretched)."""
    return 10 * SIZES.index(size) + n


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Ledger, dict[tuple[int, int], list[Work]]]]:
    path = tmp_path_factory.mktemp("wide") / "ledger.sqlite3"
    works: dict[tuple[int, int], list[Work]] = {}
    with Ledger.open(path) as opened:
        for size in SIZES:
            for seed in SEEDS:
                img = material.photo(_seed(size, seed), size)
                works.setdefault(size, []).append(Work.create(
                    f"{size}-{seed}.jpg", "jpeg", essence(material.jpeg(img, 90), "jpeg"), ASSERTION, id=f"{size[0]}x{size[1]}-{seed}"))
        opened.record_many(w for ws in works.values() for w in ws)
        yield opened, works


def _part(how: str) -> tuple[int, int, int, int]:
    found = re.search(r"the work's part (\d+)-(\d+) % across, (\d+)-(\d+) % down", how)
    assert found, how
    left, right, top, bottom = (int(v) for v in found.groups())
    return left, right, top, bottom


def test_wide_crops_recognised(ledger: tuple[Ledger, dict[tuple[int, int], list[Work]]]) -> None:
    """Every copy found names its own work and the part of the work it is; at least 12 of the 14
    are found (none before WideSearch). The misses are 9:16 stories: the copy holds 62-70 % of the
    centre region's width, and the bits the rest decides make true copies come 0.05-0.14 apart,
    near the threshold (0.12) that keeps unrelated pictures out (see cropsearch.WIDE_THRESHOLD)."""
    opened, works = ledger
    missed = []
    for size, handling, part in CASES:
        for seed, work in zip(SEEDS, works[size], strict=True):
            copy = material.handle(material.photo(_seed(size, seed), size), handling)
            found = cropsearch.matches(opened, opened.essence_of(copy, "jpeg"))
            assert all(m.work.id == work.id for m in found), (handling, work.id, found)  # never another work
            if not found:
                missed.append((handling, work.id))
                continue
            assert found[0].how and "(a crop of more than 20 % a side" in found[0].how, found[0].how
            # The part of the work the copy is, to within 5 % of the work's side.
            assert all(abs(a - b) <= 5 for a, b in zip(_part(found[0].how), part, strict=True)), (found[0].how, part)
            assert found[0].region == cropsearch.SEARCH_REGION
    assert len(missed) <= 2, missed
    assert all("9:16" in handling for handling, _ in missed), missed


def test_centred_square_of_16_9_found_by_its_region(ledger: tuple[Ledger, dict[tuple[int, int], list[Work]]]) -> None:
    """21.9 % off the left and the right: the work's own "centre square" region, before any search."""
    opened, works = ledger
    copy = material.jpeg(material._aspect_at(material.photo(_seed((640, 360), 0), (640, 360)), 1.0, 0.5), 75)
    found = cropsearch.matches(opened, opened.essence_of(copy, "jpeg"))
    assert found and found[0].work.id == works[(640, 360)][0].id
    assert found[0].how == "the file (as it is) matched the work's centre square"


def test_wide_covered_says_which_cuts() -> None:
    assert cropsearch.wide_covered(0.3125, 0, 0.3125, 0)  # a 3:2 photo's 9:16 story
    assert cropsearch.wide_covered(0, 0.25, 0, 0.25)  # its 3:1 banner
    assert not cropsearch.wide_covered(0.2, 0.1, 0.1, 0.2)  # within MAX_CUT: the narrower search's
    assert not cropsearch.wide_covered(0, 1 / 3, 0, 1 / 3)  # a square's 3:1 banner: 56 % of the centre region
    assert not cropsearch.wide_covered(0.3, 0.3, 0.05, 0.05)  # both axes cut beyond MAX_CUT


def test_unrelated_wide_crops_match_nothing(ledger: tuple[Ledger, dict[tuple[int, int], list[Work]]]) -> None:
    """Other pictures (other seeds) cut every wide way, and as they are: no match, though each
    of these copies goes through the wide search (nothing else matches them)."""
    opened, _ = ledger
    for n in range(6):
        size = SIZES[n % len(SIZES)]
        img = material.photo(90_000 + n, size)
        for handling in material.WIDE_HANDLINGS:
            copy = material.handle(img, handling)
            found = cropsearch.matches(opened, opened.essence_of(copy, "jpeg"))
            assert not found, (n, handling, [(m.work.id, m.how) for m in found])


def test_wide_search_bounded_for_unrelated_copies(ledger: tuple[Ledger, dict[tuple[int, int], list[Work]]]) -> None:
    """An unrelated copy forced against every work: each comparison comes out above the threshold
    (the index usually spares it this), so the threshold, not the index, keeps it unmatched."""
    _, works = ledger
    codes = [bytes.fromhex(dict(w.regions)[cropsearch.SEARCH_REGION]) for ws in works.values() for w in ws]
    copy = material.handle(material.photo(91_000, (480, 320)), "crop to 9:16 (story)")
    view = essence(copy, "jpeg").view
    assert view is not None
    wide = cropsearch.WideSearch(cropsearch.working_image(view))
    shares = [wide.match(code)[0] for code in codes]
    assert min(shares) > cropsearch.WIDE_THRESHOLD, shares


def test_image_saved_as_png_too(ledger: tuple[Ledger, dict[tuple[int, int], list[Work]]]) -> None:
    """The search works on the decoded picture, whatever the copy's format."""
    opened, works = ledger
    img = material._aspect_at(material.photo(_seed((480, 320), 1), (480, 320)), 9 / 16, 0.5)
    out = io.BytesIO()
    img.convert("RGB").save(out, "PNG")
    found = cropsearch.matches(opened, opened.essence_of(out.getvalue(), "png"))
    assert found and found[0].work.id == works[(480, 320)][1].id, found

