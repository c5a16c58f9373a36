"""How far a handled copy's region codes lie from its work's, for each size of grids v2's working
image (fingerprint.AREA_SIDE) and for the v1 grids; what chose AREA_SIDE = 128.

    python bench/area_side.py                       # 0 (v1), 64, 96, 128, 192; 20 photos
    python bench/area_side.py --sides 128 --photos 4

Photos from tests/material.py (four shapes, JPEG q90) are recorded as works; every image handling
of material.IMAGE_HANDLINGS that keeps a centred or shaped crop (or no crop) is applied and looked
up: the least distance over the allowed (probe, region) pairs is the copy's. The nearest unrelated
work is measured on each photo's 256 px thumbnail. docs/durability.md has the numbers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests")]

import material  # noqa: E402

from rightsmeta import fingerprint  # noqa: E402
from rightsmeta.fingerprint import GRIDS_V1, GRIDS_V2, Essence, essence, region_pair_allowed  # noqa: E402

SIZES = [(480, 360), (360, 480), (400, 400), (512, 288)]


def _codes(named: tuple[tuple[str, str], ...]) -> np.ndarray:
    return np.array([list(bytes.fromhex(code)) for _, code in named], dtype=np.uint8)


def nearest(work: Essence, copy: Essence) -> int:
    """Bits between the copy's nearest probe and the work's region it may be compared with."""
    bits = np.bitwise_count(_codes(work.regions)[:, None, :] ^ _codes(copy.probes)[None, :, :]).sum(axis=2)
    allowed = np.array([[region_pair_allowed(p, r) for p, _ in copy.probes] for r, _ in work.regions])
    return int(np.where(allowed, bits, 10**6).min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sides", default="0,64,96,128,192", help="AREA_SIDE values; 0 means the v1 grids")
    parser.add_argument("--photos", type=int, default=20)
    args = parser.parse_args()
    handlings = [h for h in material.IMAGE_HANDLINGS if not h.startswith("crop") or "%/side" in h or "to " in h]
    photos = [material.photo(seed, SIZES[seed % len(SIZES)]) for seed in range(args.photos)]
    for side in (int(s) for s in args.sides.split(",")):
        grids = GRIDS_V2 if side else GRIDS_V1
        if side:
            fingerprint.AREA_SIDE = side  # this bench's own process only
        works = [essence(material.jpeg(photo, 90), "jpeg", probes=False, grids=grids) for photo in photos]
        true, unrelated = [], []
        for i, photo in enumerate(photos):
            true += [nearest(works[i], essence(material.handle(photo, h), "jpeg", grids=grids)) for h in handlings]
            thumb = essence(material.handle(photo, "thumbnail 256 px"), "jpeg", grids=grids)
            unrelated.append(min(nearest(w, thumb) for j, w in enumerate(works) if j != i))
        t = np.array(true)
        name = f"v2, AREA_SIDE {side}" if side else "v1"
        print(f"{name:<18}: true pairs mean {t.mean():.1f} bits, 95th percentile {np.percentile(t, 95):.0f}, "
              f"max {t.max()} ({len(photos)} photos x {len(handlings)} handlings); nearest unrelated {min(unrelated)}")


if __name__ == "__main__":
    main()
