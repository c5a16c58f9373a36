"""How far apart the crop search puts true pairs and unrelated ones (rightsmeta/cropsearch.py).

    python bench/crop_separation.py
    python bench/crop_separation.py --turned

30 photos (tests/material.py) cut on four sides by seeded random fractions up to 20 %, every
other one then resized to 60 %: the fine search's distance to their own work's "centre 60 %"
code. Then 40 unrelated photos, cut the same way, searched against every one of the 30 works
(forced, not only the index's candidates): the nearest any of those 1,200 pairs comes. The
match threshold (ledger.REGION_THRESHOLD) is 24 bits of 256.

With --turned each photo is flipped or turned (the seven forms in turn) before it is cut, and
searched turned back from its form; an unrelated copy is searched in every form
(``cropsearch.FORMS``), as its lookup is, and each pair counts by its nearest form (9,600
forced searches: 764 s of CPU on the shared machine, load 3-4).
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turned", action="store_true", help="copies flipped or turned before the cut")
    turned = parser.parse_args().turned
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
