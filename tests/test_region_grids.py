"""The region grids are cut in one batch (``fingerprint._Grids.of``, issue 12): bit for bit what resizing each
box on its own with ``Image.resize`` gives, so every code a ledger recorded before is made again."""

from __future__ import annotations

import material
import numpy as np
from PIL import Image

from rightsmeta.fingerprint import _PROBE_BOXES, _corner_boxes, _Grids, _region_boxes


def one_by_one(image: Image.Image, boxes: list[tuple[float, float, float, float]]) -> np.ndarray:
    w, h = image.size
    return np.stack([np.asarray(image.resize((32, 32), Image.Resampling.BICUBIC, box=(x0 * w, y0 * h, x1 * w, y1 * h)),
                                dtype=np.float64) for x0, y0, x1, y1 in boxes])


def test_the_batch_gives_the_grids_of_single_resizes() -> None:
    rng = np.random.default_rng(5)
    sizes = [(256, 192), (192, 256), (320, 240), (400, 300), (266, 200), (257, 131), (40, 30), (20, 15), (32, 32), (33, 600)]
    for n, size in enumerate(sizes):
        grey = material.photo(n, size).convert("L")
        grids = _Grids(grey)
        full = grids.image.size
        named = [("whole", (0.0, 0.0, 1.0, 1.0))] + _region_boxes(full[0] / full[1]) + _PROBE_BOXES
        named += _corner_boxes(full, work=True) + _corner_boxes(full, work=False)
        boxes = [box for _, box in named]
        # Random boxes, some sharing columns (where Pillow's pass order matters), and repeated boxes.
        for _ in range(12):
            x0, x1 = sorted(rng.uniform(0, 1, 2))
            boxes += [(float(x0), float(a), float(x1), float(b)) for a, b in (sorted(rng.uniform(0, 1, 2)) for _ in range(3))]
        boxes += boxes[:5]
        assert np.array_equal(grids.of(boxes), one_by_one(grids.image, boxes)), size
