"""The geometry grids v2 keep for the last few picture sizes is shared by every thread's codes:
none of it may be written to by a caller."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rightsmeta import fingerprint


def test_the_cached_geometry_is_read_only_and_the_grids_unchanged() -> None:
    rng = np.random.default_rng(7)
    view = Image.fromarray(rng.integers(0, 256, (96, 128), dtype=np.uint8), "L")
    boxes = fingerprint._layout((1280, 960), True).boxes
    grids = fingerprint._AreaGrids(view)
    before = grids.of(boxes)
    geometry = fingerprint._area_geometry(grids.size, grids.extent, tuple(boxes))
    for array in geometry:
        with pytest.raises(ValueError, match="read-only"):
            array.reshape(-1)[0] = 0
    assert np.array_equal(grids.of(boxes), before)
    assert fingerprint._area_geometry(grids.size, grids.extent, tuple(boxes)) is geometry  # the one shared
