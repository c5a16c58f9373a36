"""The perceptual codes of an image, made cheaper (issue 12): bit for bit what they were; and the
command line's start without OpenBLAS threads.

Ledgers hold works recorded with the codes as rightsmeta 0.x (grids v2, ledger schema 5) cut them,
so a faster way of cutting them must give the same bits. ``MainAreaGrids``, ``main_codes`` and
``main_image_hashes`` below restate that definition as it stood before (the grid geometry computed
for every image, four gathers, the cell sums over strided views, every grid's spread, a partition
for each block's median); every field of ``essence`` is compared with what that definition gives,
on real photos, generated ones and the sizes and shapes where the geometry has edge cases.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import material
import numpy as np
import pytest
from PIL import Image, ImageDraw

from rightsmeta import fingerprint
from rightsmeta.fingerprint import (
    _CORNER_NAME,
    _DIHEDRAL,
    _IMAGE_MIN_STD,
    _PROBE_BOXES,
    _STEPS,
    AREA_SIDE,
    GRIDS_V1,
    Box,
    Essence,
    _AreaGrids,
    _corner_boxes,
    _Grids,
    _image_hashes,
    _region_boxes,
    _spread,
    essence,
)

ROOT = Path(__file__).resolve().parent.parent

# --- the definition as it was (reference; do not speed it up) ------------------------------------


class MainAreaGrids:
    """Grids v2 as first written: everything computed for each image."""

    def __init__(self, view: Image.Image, extent: tuple[float, float] | None = None) -> None:
        factor = max(1, max(view.size) // AREA_SIDE)
        small = np.asarray(view.reduce(factor) if factor > 1 else view)
        h, w = small.shape
        self.size = (w, h)
        width, height = extent or view.size
        self.extent = (min(w, width / factor), min(h, height / factor))
        self.table = np.zeros((h + 1, w + 1))
        np.cumsum(np.cumsum(small, axis=0, dtype=np.int64), axis=1, out=self.table[1:, 1:], dtype=np.float64)

    def of(self, boxes: list[Box]) -> np.ndarray:
        w, h = self.size
        width, height = self.extent
        b = np.array(boxes, dtype=np.float64)
        xs = (b[:, :1] + (b[:, 2:3] - b[:, :1]) * _STEPS) * width
        ys = (b[:, 1:2] + (b[:, 3:4] - b[:, 1:2]) * _STEPS) * height
        ix = np.minimum(xs.astype(np.intp), w - 1)
        iy = np.minimum(ys.astype(np.intp), h - 1)
        fx = (xs - ix)[:, None, :]
        fy = (ys - iy)[:, :, None]
        at = (iy * (w + 1))[:, :, None] + ix[:, None, :]
        flat = self.table.ravel()
        s00, s01, s10, s11 = (np.take(flat[offset:], at) for offset in (0, 1, w + 1, w + 2))
        s01 -= s00
        s01 *= fx
        s01 += s00
        s11 -= s10
        s11 *= fx
        s11 += s10
        s11 -= s01
        s11 *= fy
        s11 += s01
        sums: np.ndarray = s11[:, 1:, 1:] - s11[:, :-1, 1:]
        sums -= s11[:, 1:, :-1]
        sums += s11[:, :-1, :-1]
        sums /= (ys[:, 1:] - ys[:, :-1])[:, :, None] * (xs[:, 1:] - xs[:, :-1])[:, None, :]
        return sums


def main_kept(boxes: list[tuple[str, Box]], spread: np.ndarray) -> list[int]:
    return [i for i, ((name, _), std) in enumerate(zip(boxes, spread.tolist(), strict=True))
            if std >= _IMAGE_MIN_STD or not _CORNER_NAME.match(name)]


def main_image_hashes(pixels: np.ndarray) -> list[str]:
    low = fingerprint._DCT[:16]
    coefficients = np.round(low @ pixels @ low.T, 6)
    blocks = coefficients.reshape(-1, 2, 8, 2, 8).transpose(0, 1, 3, 2, 4).reshape(-1, 4, 64)
    middle = np.partition(blocks, (31, 32), axis=2)
    bits = blocks > (middle[:, :, 31:32] + middle[:, :, 32:33]) / 2
    return [row.tobytes().hex() for row in np.packbits(bits.reshape(len(pixels), 256), axis=1)]


def main_codes(found: Essence, view: Image.Image, extent: tuple[float, float], full: tuple[int, int], probes: bool,
               grids: int) -> Essence:
    regions = [("whole", (0.0, 0.0, 1.0, 1.0))] + _region_boxes(full[0] / full[1]) + _corner_boxes(full, work=True)
    looked_up = _PROBE_BOXES + _corner_boxes(full, work=False) if probes else []
    cutter = _Grids(view) if grids == GRIDS_V1 else MainAreaGrids(view, extent)
    cut = cutter.of([box for _, box in regions + looked_up])
    spread = cut.std(axis=(1, 2))
    if float(spread[0]) < _IMAGE_MIN_STD:
        return dataclasses.replace(found, reason="image too uniform for a perceptual fingerprint")
    kept = main_kept(regions, spread[: len(regions)])
    names = [regions[i][0] for i in kept]
    stacked = cut[kept]
    if probes:
        whole = cut[0]
        also = main_kept(looked_up, spread[len(regions) :])
        names += ["as it is", *_DIHEDRAL, *(looked_up[i][0] for i in also)]
        turned = np.stack([whole] + [turn(whole) for turn in _DIHEDRAL.values()])
        stacked = np.concatenate([stacked, turned, cut[[len(regions) + i for i in also]]])
    codes = list(zip(names, main_image_hashes(stacked), strict=True))
    return dataclasses.replace(found, perceptual=codes[0][1], regions=tuple(codes[: len(kept)]),
                               probes=tuple(codes[len(kept) :]))


# --- comparison -----------------------------------------------------------------------------------


def _differences(ours: Essence, theirs: Essence, where: str = "") -> list[str]:
    """Every field that differs, view and legacy_codes included (which ``==`` skips)."""
    out = []
    for f in dataclasses.fields(Essence):
        a, b = getattr(ours, f.name), getattr(theirs, f.name)
        if f.name == "view":
            same = (a is None) == (b is None) and (a is None or (a.dtype == b.dtype and np.array_equal(a, b)))
        elif f.name == "probes":  # main's, in its order; then the parts of flipped or turned copies (test_durability.py)
            same = len(a) >= len(b) and a[: len(b)] == b
        elif f.name == "legacy_codes":
            same = (a is None) == (b is None)
            out += _differences(a, b, where + "legacy_codes.") if a is not None and b is not None else []
        else:
            same = a == b
        if not same:
            out.append(where + f.name)
    return out


MODES = [dict(probes=False), dict(probes=True), dict(probes=False, grids=GRIDS_V1), dict(probes=True, grids=GRIDS_V1),
         dict(probes=False, legacy_grids=True), dict(probes=True, legacy_grids=True)]


def _compare(data: bytes, fmt: str, monkeypatch: pytest.MonkeyPatch, modes: list[dict[str, Any]] = MODES) -> list[str]:
    """The fields of ``essence`` that differ from main's definition's, for each mode."""
    found = [essence(data, fmt, **mode) for mode in modes]
    with monkeypatch.context() as patched:
        patched.setattr(fingerprint, "_codes", main_codes)
        reference = [essence(data, fmt, **mode) for mode in modes]
    out = []
    for mode, ours, theirs in zip(modes, found, reference, strict=True):
        assert ours.perceptual is not None or ours.reason, (mode, ours)
        out += [f"{mode}: {field}" for field in _differences(ours, theirs)]
    return out


def _png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG", compress_level=1)
    return out.getvalue()


def _encoded(img: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "jpeg":
        return material.jpeg(img.convert("RGB") if img.mode not in ("L", "RGB") else img, 90)
    if fmt == "webp":
        img.save(out, "WEBP", quality=80)
    elif fmt == "tiff":
        img.save(out, "TIFF")
    else:
        return _png(img)
    return out.getvalue()


def _noise(size: tuple[int, int], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8), "L")


def _framed(size: tuple[int, int], seed: int, border: float, level: int = 128) -> Image.Image:
    """A photo on a flat background filling ``border`` of each side: flat corner squares (not
    kept) when the border is wide, textured ones (kept) when it is narrow."""
    w, h = size
    canvas = Image.new("RGB", size, (level, level, level))
    inner = material.photo(seed, (max(1, round(w * (1 - 2 * border))), max(1, round(h * (1 - 2 * border)))))
    canvas.paste(inner, (round(w * border), round(h * border)))
    return canvas


def _cases() -> Iterator[tuple[str, bytes, str]]:
    # Generated photos in each format, at sizes whose reductions round up (a fraction of the last pixel
    # covered), primes, and aspect ratios on either side of each aspect crop's 4 % tolerance.
    sizes = [(480, 360), (769, 577), (511, 383), (257, 131), (131, 257), (509, 509), (640, 512), (500, 400),
             (521, 400), (480, 270), (470, 270), (300, 170), (1031, 97), (97, 1031), (401, 225), (1025, 768)]
    formats = ["jpeg", "png", "webp", "tiff"]
    for i, size in enumerate(sizes):
        fmt = formats[i % 4]
        yield f"photo {size} {fmt}", _encoded(material.photo(100 + i, size), fmt), fmt
    # Thin and tiny pictures: one row or column, a few pixels, 4095 x 3.
    for i, size in enumerate([(1, 300), (300, 1), (4095, 3), (3, 4095), (1, 1), (2, 3), (7, 5), (129, 1), (255, 2)]):
        yield f"noise {size}", _png(_noise(size, i)), "png"
    # Greyscale noise at sizes around the working image's and the table's reductions.
    for i, size in enumerate([(128, 96), (255, 255), (256, 255), (257, 100), (383, 7), (767, 767), (768, 1)]):
        yield f"noise {size}", _png(_noise(size, 50 + i)), "png"
    # Flat corner squares (not kept), textured ones (kept), and a whole picture too flat to code.
    for i, (size, border) in enumerate([((480, 360), 0.3), ((480, 360), 0.02), ((361, 479), 0.25), ((800, 200), 0.2)]):
        yield f"framed {size} {border}", _encoded(_framed(size, 200 + i, border), "png"), "png"
    grey = Image.new("L", (320, 240), 90)
    ImageDraw.Draw(grey).point([(5, 5), (300, 200)], fill=95)
    yield "near uniform", _png(grey), "png"
    yield "uniform", _png(Image.new("RGB", (300, 200), (10, 200, 30))), "png"
    # A flat band down the left side: the left corner squares flat (not kept), the right ones kept.
    for i, size in enumerate([(800, 200), (1000, 260), (700, 181)]):
        banded = material.photo(210 + i, size)
        banded.paste((128, 128, 128), (0, 0, round(size[0] * 0.45), size[1]))
        yield f"banded {size}", _png(banded), "png"
    if importlib.util.find_spec("skimage") is not None:  # the real photos (the test extra)
        for name in material.REAL_PHOTOS:
            fmt = "jpeg" if name.endswith(".jpg") else "png"
            yield f"real {name}", material.real_photo_file(name), fmt
            yield f"real {name}, cropped", _encoded(material.real_photo(name).crop((3, 5, 390, 301)), "webp"), "webp"


def test_every_field_of_essence_is_main_s(monkeypatch: pytest.MonkeyPatch) -> None:
    differing = {}
    count = 0
    for name, data, fmt in _cases():
        count += 1
        if found := _compare(data, fmt, monkeypatch):
            differing[name] = found
    assert count >= 60
    assert not differing, differing


def test_the_grids_are_main_s_for_any_box_and_extent() -> None:
    """``_AreaGrids.of`` against main's for random boxes (edges anywhere between pixels, boxes one
    cell wide) and extents a fraction of a pixel short of the view, several calls per geometry."""
    rng = np.random.default_rng(7)
    for i, size in enumerate([(134, 100), (255, 1), (1, 255), (97, 211), (400, 300), (64, 64)]):
        view = _noise(size, i)
        for extent in (None, (size[0] - rng.uniform(0, 1), size[1] - rng.uniform(0, 1))):
            boxes: list[Box] = [(0.0, 0.0, 1.0, 1.0)]
            for _ in range(12):
                x0, x1 = sorted(rng.uniform(0, 1, 2))
                y0, y1 = sorted(rng.uniform(0, 1, 2))
                boxes.append((float(x0), float(y0), float(x1), float(y1)))
            boxes.append((0.5, 0.5, 0.5 + 1e-3, 0.5 + 1e-3))
            for _ in range(2):  # the second time from the kept geometry
                ours = _AreaGrids(view, extent).of(boxes)
                theirs = MainAreaGrids(view, extent).of(boxes)
                assert ours.shape == theirs.shape and ours.flags.c_contiguous
                assert ours.tobytes() == theirs.tobytes(), (size, extent)


def test_the_hashes_are_main_s_with_ties() -> None:
    """``_image_hashes`` against main's: grids of noise, of a few levels (coefficients tied with
    their block's median, exact zeros), symmetric ones, and flat ones."""
    rng = np.random.default_rng(11)
    stacks = [rng.uniform(0, 255, (20, 32, 32)), rng.integers(0, 3, (20, 32, 32)).astype(np.float64),
              np.full((3, 32, 32), 77.0), np.zeros((1, 32, 32))]
    half = rng.integers(0, 256, (10, 32, 16)).astype(np.float64)
    stacks.append(np.concatenate([half, half[:, :, ::-1]], axis=2))  # mirror-symmetric: odd coefficients 0
    for stack in stacks:
        assert _image_hashes(stack) == main_image_hashes(stack)


def test_the_spread_is_numpy_s_std() -> None:
    """``_spread`` against ``np.std`` of the same grids, bit for bit: noise at many scales, flat
    grids, and grids whose spread lies within a few units in the last place of the threshold."""
    rng = np.random.default_rng(9)
    stacks = [rng.uniform(0, 255, (5, 32, 32)) * scale for scale in (1e-3, 0.05, 1, 7)]
    stacks += [np.full((3, 32, 32), 200.0), rng.integers(0, 3, (6, 32, 32)).astype(np.float64)]
    checker = np.indices((32, 32)).sum(axis=0) % 2 * 2 * _IMAGE_MIN_STD + 10  # spread exactly the threshold
    stacks.append(np.stack([checker + k * 1e-13 * rng.uniform(-1, 1, (32, 32)) for k in range(8)]))
    stacks += [rng.uniform(0, 255, (5, 32, 32)) / rng.uniform(1, 97) for _ in range(40)]
    for stack in stacks:
        expected = stack.std(axis=(1, 2))
        assert _spread(stack.copy()).tobytes() == expected.tobytes()


# --- the command line's BLAS threads ----------------------------------------------------------------

_THREADS = """
import atexit, os, runpy, sys
atexit.register(lambda: print(len(os.listdir("/proc/self/task")), "numpy" in sys.modules, file=sys.stderr))
sys.argv = ["rightsmeta", *sys.argv[1:]]
runpy.run_module("rightsmeta", run_name="__main__")
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task") or (os.cpu_count() or 1) < 2,
                    reason="counts the process's threads in /proc, with OpenBLAS's default of one a core")
@pytest.mark.parametrize(("chosen", "threads"), [({}, 1), ({"OMP_NUM_THREADS": "2"}, 2), ({"OPENBLAS_NUM_THREADS": "2"}, 2)])
def test_a_run_starts_no_blas_threads_unless_asked(tmp_path: Path, chosen: dict[str, str], threads: int) -> None:
    """A tag with a ledger (numpy loaded for the codes) runs on its one thread: OpenBLAS's threads,
    one a further core, spin when they start (~65 ms of CPU a run). A count the user chose stands."""
    (tmp_path / "a.jpg").write_bytes(material.jpeg(material.photo(1, (320, 240))))
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")}
    env |= {"PYTHONPATH": str(ROOT), **chosen}
    done = subprocess.run([sys.executable, "-c", _THREADS, "tag", "--deny", "ai", "--no-sign", "--ledger",
                           str(tmp_path / "l.sqlite3"), str(tmp_path / "a.jpg")], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1] == f"{threads} True"
