"""Library calls leave process-wide state alone (a server calls them from its threads)."""

from __future__ import annotations

import io
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from rightsmeta import contentcheck


def _png(level: int) -> bytes:
    pixels = np.random.default_rng(7).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG", compress_level=level)
    return out.getvalue()


def test_comparing_pixels_from_threads_leaves_the_warning_filters_alone() -> None:
    # The same pixels compressed two ways: the bytes differ, so compare() decodes both images.
    before, after = _png(1), _png(9)
    assert before != after and contentcheck.compare(before, after, "png") == []
    filters = list(warnings.filters)
    # warnings.catch_warnings() swaps the module's one filter list: two threads inside it at once
    # restore each other's lists, and an "error" filter could outlive them in the whole process.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: contentcheck.compare(before, after, "png"), range(400)))
    finally:
        sys.setswitchinterval(interval)
    assert results == [[]] * 400
    assert warnings.filters == filters
