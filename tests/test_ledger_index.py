"""The ledger's index rows, computed the cheaper way, are the rows main computed (issue 12): a
ledger already holds works indexed by main, and its lookups must keep finding them."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from rightsmeta import ledger
from rightsmeta.fingerprint import KINDS


def _ordered_ref(perceptual: str) -> int:
    """Main's definition: a 256-bit image code's bits in frequency order, one code at a time."""
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(perceptual), np.uint8))[ledger._FREQUENCY_ORDER]
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _whole_bands_ref(n: int, kind: Any, perceptual: str) -> list[tuple[int, int, bytes]]:
    """Main's ``_whole_bands``: a work's rows of ``whole_bands``, restated."""
    if kind not in KINDS or not ledger._bands(perceptual):
        return []
    if kind == "image" and len(perceptual) == 64:
        ordered, shift, values = _ordered_ref(perceptual), 256, []
        for width in ledger.IMAGE_BAND_WIDTHS:
            shift -= width
            values.append(ordered >> shift & ((1 << width) - 1))
    else:
        values = [int(perceptual[i : i + 4], 16) for i in range(0, len(perceptual), 4)]
    return [(KINDS.index(kind) << 40 | band << 24 | value, n, bytes.fromhex(perceptual)) for band, value in enumerate(values)]


def _region_keys_ref(codes: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Main's ``_region_keys``: packed along the axis."""
    bits = np.unpackbits(codes.reshape(-1, 32), axis=1)[:, ledger._FREQUENCY_ORDER]
    return np.ascontiguousarray(np.packbits(bits, axis=1)).view(">u4").astype(np.int64) | ledger._WINDOW_TAGS


def _code(rng: random.Random, digits: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(digits))


def _perceptual(rng: random.Random) -> Any:
    """Codes as tag records them, and what an imported or older ledger may hold."""
    return rng.choice([
        _code(rng, 64), _code(rng, 64), _code(rng, 32), _code(rng, 60), _code(rng, 63), _code(rng, 68), _code(rng, 128),
        _code(rng, 64).upper(), _code(rng, 63) + "g", "", None, "0" * 64, "f" * 64,
    ])


def test_whole_band_rows_of_many_works_are_mains_rows_work_by_work() -> None:
    rng = random.Random(12)
    for size in (0, 1, 2, 31, 32, 33, 200):
        works = [(rng.randrange(1, 1 << 40), rng.choice([*KINDS, "image", "image", None, "video"]), _perceptual(rng))
                 for _ in range(size)]
        expected = [row for n, kind, perceptual in works if perceptual for row in _whole_bands_ref(n, kind, perceptual)]
        assert sorted(ledger._whole_band_rows(works)) == sorted(expected)
        assert len(expected) >= size // 3  # most of them indexed: the comparison is not of empty lists


def test_band_values_of_a_lookup_are_mains() -> None:
    rng = random.Random(13)
    for _ in range(300):
        kind = rng.choice(KINDS)
        perceptual = _code(rng, rng.choice([64, 64, 32, 60]))
        values, _, _ = ledger._whole_band_values(kind, perceptual)
        assert [(key & 0xFFFFFF) for key, _, _ in _whole_bands_ref(0, kind, perceptual)] == values


def test_region_keys_are_mains() -> None:
    rng = np.random.default_rng(14)
    for count in (1, 2, 16, 1000):
        codes = rng.integers(0, 256, (count, 32), dtype=np.uint8)
        codes[0] = 0
        codes[-1] = 255
        assert np.array_equal(ledger._region_keys(codes), _region_keys_ref(codes))
