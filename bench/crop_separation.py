"""How far apart the crop search puts true pairs and unrelated ones (rightsmeta/cropsearch.py).

    python bench/crop_separation.py
    python bench/crop_separation.py --turned
    python bench/crop_separation.py --wide

30 photos (tests/material.py) cut on four sides by seeded random fractions up to 20 %, every
other one then resized to 60 %: the fine search's distance to their own work's "centre 60 %"
code. Then 40 unrelated photos, cut the same way, searched against every one of the 30 works
(forced, not only the index's candidates): the nearest any of those 1,200 pairs comes. The
match threshold (ledger.REGION_THRESHOLD) is 24 bits of 256.

With --turned each photo is flipped or turned (the seven forms in turn) before it is cut, and
searched turned back from its form; an unrelated copy is searched in every form
(``cropsearch.FORMS``), as its lookup is, and each pair counts by its nearest form (9,600
forced searches: 764 s of CPU on the shared machine, load 3-4).

With --wide the cuts are those ``cropsearch.WideSearch`` covers (one axis cut by more than 20 % a
side, up to 40 %, keeping 60 % of the centre region; the other up to 10 % a side; every other copy
then resized to 60 %), the works of six shapes (4:3, 3:4, 3:2, square, 16:9, 3:2 again), and the
score is the share of the compared bits that differ (threshold ``cropsearch.WIDE_THRESHOLD``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests")]

import material  # noqa: E402
from PIL import Image  # noqa: E402

from rightsmeta import cropsearch  # noqa: E402
from rightsmeta.fingerprint import essence  # noqa: E402


def _size(seed: int) -> tuple[int, int]:
    return [(480, 360), (360, 480), (512, 340), (400, 400)][seed % 4]


# The copy's form (fingerprint._DIHEDRAL's names) -> how the picture was turned to make it.
TURNS = {"mirrored": Image.Transpose.FLIP_LEFT_RIGHT, "flipped vertically": Image.Transpose.FLIP_TOP_BOTTOM,
         "rotated 180": Image.Transpose.ROTATE_180, "rotated 90 clockwise": Image.Transpose.ROTATE_270,
         "rotated 90 anticlockwise": Image.Transpose.ROTATE_90, "transposed": Image.Transpose.TRANSPOSE,
         "transversed": Image.Transpose.TRANSVERSE}


def _search(img: Image.Image, seed: int, resize: bool, form: str | None = None) -> cropsearch.CropSearch:
    left, top, right, bottom = (float(v) for v in np.random.default_rng(seed).uniform(0, 0.2, 4))
    copy = material._crop(img.transpose(TURNS[form]) if form else img, left, top, right, bottom)
    if resize:
        copy = material._resized(copy, 0.6)
    view = essence(material.jpeg(copy, 75), "jpeg").view
    assert view is not None
    return cropsearch.CropSearch(cropsearch.working_image(view))


SHAPES_WIDE = [(480, 360), (360, 480), (512, 340), (400, 400), (640, 360), (480, 320)]


def _wide_cuts(rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Seeded cuts (left, top, right, bottom) that the wide search covers."""
    while True:
        a, b = (float(v) for v in rng.uniform(0, cropsearch.WIDE_CUT, 2))
        c, d = (float(v) for v in rng.uniform(0, 0.1, 2))
        cuts = (a, c, b, d) if rng.random() < 0.5 else (c, a, d, b)
        if cropsearch.wide_covered(*cuts):
            return cuts


def _wide(seeds: int, unrelated: int) -> None:
    started = time.process_time()
    works = []
    for seed in range(seeds):
        img = material.photo(seed, SHAPES_WIDE[seed % len(SHAPES_WIDE)])
        works.append((img, bytes.fromhex(dict(essence(material.jpeg(img, 90), "jpeg").regions)[cropsearch.SEARCH_REGION])))

    def search(img: Image.Image, seed: int, resize: bool) -> tuple[cropsearch.WideSearch, tuple[float, ...]]:
        cuts = _wide_cuts(np.random.default_rng(seed))
        copy = material._crop(img, *cuts)
        copy = material._resized(copy, 0.6) if resize else copy
        view = essence(material.jpeg(copy, 75), "jpeg").view
        assert view is not None
        return cropsearch.WideSearch(cropsearch.working_image(view)), cuts

    true = []
    for n, (img, code) in enumerate(works):
        wide, cuts = search(img, n + 500, n % 2 == 1)
        share = wide.match(code)[0]
        true.append(share)
        print(f"  true {n} {img.size} cuts {'/'.join(f'{100 * c:.0f}' for c in cuts)}: {share:.3f}", flush=True)
    false = []
    for n in range(unrelated):
        wide, _ = search(material.photo(70_000 + n, SHAPES_WIDE[n % len(SHAPES_WIDE)]), n, n % 2 == 1)
        false += [wide.match(code)[0] for _, code in works]
    print(f"true pairs ({len(true)}): at most {max(true):.3f}, mean {np.mean(true):.3f}, "
          f"above the threshold {sum(t > cropsearch.WIDE_THRESHOLD for t in true)}; unrelated pairs ({len(false)}): "
          f"at least {min(false):.3f}, 1st percentile {np.percentile(false, 1):.3f}, mean {np.mean(false):.3f}; "
          f"threshold {cropsearch.WIDE_THRESHOLD}; {time.process_time() - started:.0f} s CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turned", action="store_true", help="copies flipped or turned before the cut")
    parser.add_argument("--wide", action="store_true", help="crops of more than 20 %% a side on one axis")
    parser.add_argument("--works", type=int, default=30)
    parser.add_argument("--unrelated", type=int, default=40)
    args = parser.parse_args()
    if args.wide:
        _wide(args.works, args.unrelated)
        return
    turned = args.turned
    started = time.process_time()
    forms = list(TURNS) if turned else [None]
    works = []
    for seed in range(30):
        img = material.photo(seed, _size(seed))
        works.append((img, bytes.fromhex(dict(essence(material.jpeg(img, 90), "jpeg").regions)[cropsearch.SEARCH_REGION])))
    true = []
    for n, (img, code) in enumerate(works):
        form = forms[n % len(forms)]
        true.append(256 * _search(img, n + 500, n % 2 == 1, form).turned(form).match(code)[0])
    false = []
    for n in range(40):
        search = _search(material.photo(70_000 + n, _size(n)), n, False, forms[n % len(forms)])
        views = [search.turned(form) for tier in cropsearch.FORMS for form in tier] if turned else [search]
        false += [256 * min(view.match(code)[0] for view in views) for _, code in works]
    print(f"true pairs ({len(true)}): at most {max(true):.0f} bits, mean {np.mean(true):.1f}; "
          f"unrelated pairs ({len(false)}): at least {min(false):.0f}, 1st percentile {np.percentile(false, 1):.0f}, "
          f"mean {np.mean(false):.1f}; threshold 24; {time.process_time() - started:.0f} s CPU")


if __name__ == "__main__":
    main()
