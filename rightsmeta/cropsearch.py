"""Find the work a copy was cut from when the crop kept no corner of it (issue 17).

The ledger's region codes and corner squares (``fingerprint._region_boxes``, ``_corner_boxes``) find centred
crops and crops that keep a corner. A crop cutting three or four sides unevenly, or any crop
then resized, keeps neither: but when every side lost at most ``MAX_CUT`` (20 %), the copy still
holds the work's centre ``1 - 2 x MAX_CUT`` (60 %) of each side, whose code every work records
("centre 60 %"). Where that region lies in the copy follows from the cuts: with ``l`` and ``r``
cut off the left and right (fractions of the work's width) it spans ``(0.2 - l) / (1 - l - r)``
to ``(0.8 - l) / (1 - l - r)`` of the copy's width, whatever the copy was resized to afterwards;
likewise vertically. So the search enumerates the cuts, hashes the region each hypothesis puts
in the copy, and compares.

The 256-bit code is too sensitive for a plain grid: a window 0.5 % (of its size) off moves it by
10-20 bits, 1 % by 19-32 (measured on tests/material.py photos; unrelated pictures lie 78 or more
apart), which would need some 10^5 hypotheses per axis pair. Its first 64 bits (the lowest 8x8
DCT frequencies) move far less: 1 % off, 2-8 bits; 2 %, 3-12; unrelated codes differ in 26-38 of
those 64. Hence two stages:

1. coarse: every cut pair per axis on a ``COARSE_STEP`` grid (81 windows per axis, 6,561 in
   all), each window's 64 low bits computed at once as matrix products (a window's 32x32
   grid, by cell area means for works recorded with grids v2 (``_coverage``) or by bicubic
   resampling for v1 works (``_resampling``), and the DCT are linear and separate by axis:
   coefficients = ``(D Ry) I (D Rx)^T``); a work is a candidate when one of the four 16-bit bands of its
   "centre 60 %" code equals that band of some window (an in-memory index of sorted band values
   per ledger, ``CentreIndex``) and those low 64 bits lie within ``COARSE_BITS``;
2. fine: for each candidate, a local search around its best windows over all 256 bits, in
   shrinking steps; the copy matches when the best window lies within the ledger's
   ``REGION_THRESHOLD`` of the work's code, the same bound every other region match meets.

Separation (`python bench/crop_separation.py`, tests/material.py photos, fixed seeds): 30
photos cut unevenly on four sides (every other one then resized to 60 %) came within 0-12 bits
(mean 3.2) of their work after the fine search; the same search forced against every one of 30
unrelated works for 40 unrelated copies (1,200 pairs) never came nearer than 68 bits (1st
percentile 80, mean 97.6). Grids v2 (works recorded since ledger schema 5); v1 measured 0-14
(mean 3) and 70 (80, 98). So the threshold of 24 bits keeps a wide margin on both sides, and a
second test with local features (ORB + RANSAC) would have nothing to separate; it could not run
anyway, since the ledger keeps codes, not the work's pixels or features.

The search only runs when the ledger found nothing by its own codes; its cost is bounded (6,561
coarse windows, at most ``_MAX_CANDIDATES`` works refined, each from at most ``_REFINED`` starts)
and measured with recognition by bench/durability.py. A copy flipped or turned and then cut is
searched turned back (``CropSearch.turned``: the same coarse products, only new low codes, four
sorts for the seven forms): mirrored back with the copy as it is, then, only when neither found a
work, in the six other forms (``FORMS``), which every unrelated copy pays. A quarter turn then a
4:5 crop is, turned back, a 5:4 crop of the work within ``MAX_CUT``, found so too.

When none of that found a work, ``WideSearch`` (below) tries crops cutting one axis by more than
``MAX_CUT`` (up to ``WIDE_CUT``, the other axis up to ``_WIDE_OTHER``): a platform's square, 9:16
story or 3:1 banner. Such a copy holds only part of the centre region, so it is compared on the
bits of the work's code that the missing part cannot change. Not searched: both axes cut beyond
``MAX_CUT``, a copy holding less than ``_WIDE_KNOWN`` of the centre region's side (a 3:1 banner of
a square work), and a wide crop of a flipped or turned copy (a quarter turn then a 16:9 crop of a
square or landscape work).
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np

from .fingerprint import _DIHEDRAL, GRIDS, GRIDS_V1

if TYPE_CHECKING:
    from .ledger import Ledger, Match

MAX_CUT = 0.2
SEARCH_REGION = "centre 60 %"  # fingerprint._region_boxes' name for the centred crop keeping 1 - 2 x MAX_CUT
COARSE_STEP = 0.025  # cut-fraction step of the coarse grid: 9 values per side
COARSE_BITS = 8  # of the 64 low bits. Measured: true copies 0-4 (40), an unrelated copy 12-22 (20); a
# random code sharing a band lies within 8 bits with odds 1e-6 (12 bits: 3e-4, 20 candidates at 100k works)
WORK_SIDE = 160  # the copy is searched on a grey copy this large (longest side)
_SIZE = 32  # the Image-Code hashes 32x32 grey pixels
_FINE_STEPS = (0.005, 0.002, 0.001)  # window-edge steps of the fine search, fractions of the window
_STARTS = 24  # coarse windows per candidate compared over all bits
_REFINED = 2  # of those, refined (the second only when the first did not come within _SURE)
_SURE = 12 / 256

Array = np.ndarray[Any, Any]


def _cubic(x: Array) -> Array:
    """Pillow's bicubic kernel (a = -0.5)."""
    x = np.abs(x)
    a = -0.5
    return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                    np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))


def _coverage(n: int, windows: Array) -> Array:
    """(len(windows), 32, n): the share of each of ``n`` pixels in each of the window's 32 cells,
    divided by the cell's width (fractions start, end of a line of ``n`` pixels): the cells' mean
    levels, as fingerprint's grids v2 compute them (``_AreaGrids``)."""
    lines = (windows[:, :1] + (windows[:, 1:] - windows[:, :1]) * np.arange(_SIZE + 1) / _SIZE) * n  # (windows, 33)
    start, end = lines[:, :-1, None], lines[:, 1:, None]
    # Only the pixels a cell touches are evaluated (as in _resampling), then scattered.
    taps = int(np.ceil(float((end - start).max()))) + 2
    index = np.floor(start).astype(np.int64) + np.arange(taps)
    weights = np.clip(np.minimum(end, index + 1) - np.maximum(start, index), 0.0, None) / np.maximum(end - start, 1e-9)
    outside = (index < 0) | (index >= n)
    weights[outside] = 0.0
    out = np.zeros((len(windows), _SIZE, n + 1))
    np.put_along_axis(out, np.where(outside, n, index), weights, axis=2)  # column n takes the taps outside
    return out[:, :, :n]


def _resampling(n: int, windows: Array) -> Array:
    """Grids v1 (kept for ledgers holding works recorded with them): (len(windows), 32, n): the weights by which Pillow's antialiased bicubic resize turns each
    window (fractions start, end of a line of ``n`` pixels) into 32 pixels, the window's own edges
    clipping the kernel as the crop before the resize does.

    Only the taps within the kernel's support are evaluated (a few per output pixel), then
    scattered into the dense rows the products below take."""
    start, end = windows[:, :1, None] * n, windows[:, 1:, None] * n
    scale = np.maximum((end - start) / _SIZE, 1e-6)
    stretch = np.maximum(scale, 1.0)
    centre = start + (np.arange(_SIZE)[None, :, None] + 0.5) * scale
    taps = int(np.ceil(4.0 * float(stretch.max()))) + 2
    index = np.floor(centre - 2.0 * stretch).astype(np.int64) + np.arange(taps)[None, None, :]
    x = index + 0.5
    weights = _cubic((x - centre) / stretch)
    outside = (x < start) | (x > end) | (index < 0) | (index >= n)
    weights[outside] = 0.0
    total = weights.sum(axis=2, keepdims=True)
    weights /= np.where(total == 0, 1.0, total)
    out = np.zeros((len(windows), _SIZE, n + 1))
    np.put_along_axis(out, np.where(outside, n, index), weights, axis=2)  # column n takes the taps outside
    return out[:, :, :n]


_DCT = np.cos(np.pi / 32 * (np.arange(32)[None, :] + 0.5) * np.arange(32)[:, None])


def _axis(n: int, windows: Array, freqs: int, grids: int) -> Array:
    """(len(windows) * freqs, n): for each window the lowest ``freqs`` DCT rows applied to its
    grid's weights (of ``grids``, v1 or v2)."""
    weights = _resampling(n, windows) if grids == GRIDS_V1 else _coverage(n, windows)
    out: Array = np.einsum("fk,wkn->wfn", _DCT[:freqs], weights)
    return out.reshape(-1, n)


def _coefficients(pixels: Array, xs: Array, ys: Array, freqs: int, grids: int = GRIDS) -> Array:
    """(len(ys), len(xs), freqs, freqs) low DCT coefficients of every window pair."""
    h, w = pixels.shape
    ax, ay = _axis(w, xs, freqs, grids), _axis(h, ys, freqs, grids)
    # einsum, not @: these mid-sized products are where OpenBLAS starts threads, which on a busy
    # machine (or under verify --jobs) made them 50 times slower (measured); einsum stays on one core.
    if len(ys) * w <= len(xs) * h:  # the cheaper order: one axis' windows are often one window
        out: Array = np.einsum("aw,bw->ab", np.einsum("ah,hw->aw", ay, pixels), ax)
    else:
        out = np.einsum("ah,hb->ab", ay, np.einsum("hw,bw->hb", pixels, ax))  # (len(ys) * freqs, len(xs) * freqs)
    return out.reshape(len(ys), freqs, len(xs), freqs).transpose(0, 2, 1, 3)


def _low_codes(coefficients: Array) -> Array:
    """The first 64 bits of the Image-Code (the 8x8 block above its median) as uint64."""
    return _packed(_above_median(_low_block(coefficients)))


def _low_block(coefficients: Array) -> Array:
    """(..., 64): the 8x8 lowest coefficients, row by row, contiguous."""
    return np.ascontiguousarray(coefficients[..., :8, :8]).reshape(*coefficients.shape[:-2], 64)


def _above_median(block: Array) -> Array:
    """(..., 8, 8): which of the 64 values of each block (``_low_block``) lie above its median."""
    # The median as np.median takes it (the mean of the 32nd and 33rd values), by numpy's
    # vectorised sort: a fifth of np.median's partition on 6,561 windows.
    middle = np.sort(block, axis=-1)[..., 31:33]
    median = np.add(middle[..., :1], middle[..., 1:])
    median /= 2
    above: Array = (block > median).reshape(block.shape[:-1] + (8, 8))
    return above


def _packed(bits: Array) -> Array:
    return np.packbits(bits.reshape(*bits.shape[:-2], 64), axis=-1).view(">u8")[..., 0].astype(np.uint64)


def _full_codes(coefficients: Array) -> Array:
    """All 256 bits (four 8x8 blocks, each above its own median, as ``fingerprint._image_hash``)
    as 32 bytes per window."""
    blocks = [coefficients[..., y : y + 8, x : x + 8] for x, y in ((0, 0), (8, 0), (0, 8), (8, 8))]
    flat = [b.reshape(*b.shape[:-2], 64) for b in blocks]
    bits = np.concatenate([f > np.median(f, axis=-1, keepdims=True) for f in flat], axis=-1)
    return np.packbits(bits, axis=-1)


def _cut_windows(step: float) -> Array:
    """(start, end) in the copy of the work's centre region, for every pair of cuts on one axis."""
    cuts = np.round(np.arange(0, MAX_CUT + step / 2, step), 6)
    out = [((MAX_CUT - a) / (1 - a - b), (1 - MAX_CUT - a) / (1 - a - b)) for a in cuts for b in cuts]
    return np.array(out)


# Each coarse window's mirror image (the cuts on either side swapped), by its index.
_MIRRORED_WINDOWS = np.array([int(np.argmin(np.abs(_cut_windows(COARSE_STEP) - (1 - w[::-1])).sum(axis=1)))
                              for w in _cut_windows(COARSE_STEP)])
_MIRRORED_SIGNS = (-1.0) ** np.arange(8)  # a grid mirrored: its odd frequencies along that axis change sign
_MIRRORED_WINDOWS.flags.writeable = False  # read by every search, in any thread
_MIRRORED_SIGNS.flags.writeable = False


def _steps(form: str) -> tuple[bool, bool, bool]:
    """(transposed, then flipped vertically, then mirrored): the steps that undo ``form``
    (``fingerprint._DIHEDRAL``, which turns a grid back), found on a 2x2 grid of distinct values."""
    grid = np.arange(4).reshape(2, 2)
    target = _DIHEDRAL[form](grid)
    for transposed in (False, True):
        for vertical in (False, True):
            for mirrored in (False, True):
                turned = grid.T if transposed else grid
                turned = turned[::-1] if vertical else turned
                if np.array_equal(turned[:, ::-1] if mirrored else turned, target):
                    return transposed, vertical, mirrored
    raise AssertionError(form)


# The forms a copy is searched in, cheapest tier first: as it is and mirrored back (the commonest
# edit), then, only when those found nothing, flipped vertically and turned back. Each form costs
# new low codes and an index probe (no new products), which every unrelated file pays.
FORMS: tuple[tuple[str | None, ...], ...] = ((None, "mirrored"), tuple(form for form in _DIHEDRAL if form != "mirrored"))


def describe(box: tuple[float, float, float, float], form: str | None = None) -> str:
    """Which part of the copy (turned back from ``form``) matched, for ``Match.how``."""
    left, top, right, bottom = (round(100 * v) for v in box)
    return (f"the file{f' ({form})' if form else ''}'s part {left}-{right} % across, {top}-{bottom} % down matched "
            f"the work's {SEARCH_REGION} (an uneven crop of up to {round(100 * MAX_CUT)} % a side)")


class CropSearch:
    """The search over one copy: its grey working image, and the coarse windows' low codes, cut
    as works recorded with grids ``grids`` were."""

    def __init__(self, grey: Array, grids: int = GRIDS, low: Array | None = None) -> None:
        self.pixels = np.asarray(grey, dtype=np.float64)
        self.grids = grids
        self.windows = _cut_windows(COARSE_STEP)
        self.coefficients: Array | None = None  # (windows y, windows x, 8, 8), of a copy searched as it is
        self._block = np.zeros(0)  # the coefficients as _low_block has them, for turned
        self._above: dict[tuple[bool, bool], Array] = {}  # by the axes whose odd frequencies were negated
        if low is None:
            self.coefficients = _coefficients(self.pixels, self.windows, self.windows, 8, grids)
            self._block = _low_block(self.coefficients)
            self._above[False, False] = _above_median(self._block)
            low = _packed(self._above[False, False])
        self.low = low  # (windows y, windows x)

    def turned(self, form: str | None) -> CropSearch:
        """The search over the copy turned back from ``form`` (a copy flipped or turned, then cut).
        The windows on each axis are the same, so its coarse windows are this one's: transposed
        (the axes swapped), flipped (the windows' mirror images, and a grid flipped is the same DCT
        with its odd frequencies along that axis negated). No new products, only new low codes; and
        a transposed block has the same median, so the eight forms take four sorts."""
        if form is None:
            return self
        assert self.coefficients is not None, "turned back from the copy as it is"
        transposed, vertical, mirrored = _steps(form)
        negated = (mirrored, vertical) if transposed else (vertical, mirrored)  # (rows, columns) before the swap
        if negated not in self._above:
            signs = np.outer(_MIRRORED_SIGNS if negated[0] else np.ones(8), _MIRRORED_SIGNS if negated[1] else np.ones(8))
            self._above[negated] = _above_median(self._block * signs.ravel())
        bits = self._above[negated]
        bits = bits.transpose(1, 0, 3, 2) if transposed else bits
        bits = bits[_MIRRORED_WINDOWS] if vertical else bits
        bits = bits[:, _MIRRORED_WINDOWS] if mirrored else bits
        return CropSearch(np.ascontiguousarray(_DIHEDRAL[form](self.pixels)), self.grids, _packed(bits))

    def match(self, code: bytes) -> tuple[float, tuple[float, float, float, float]]:
        """The distance of the window nearest ``code`` (a work's 32-byte centre code) and its box.

        The coarse windows nearest by their low bits are compared over all 256 bits (low bits
        alone often leave a direction of little texture undecided), and the best few refined.
        """
        target = np.frombuffer(code, np.uint8)
        low = np.uint64(int.from_bytes(code[:8], "big"))
        order = np.argsort(np.bitwise_count(self.low ^ low), axis=None, kind="stable")[:_STARTS]
        ys, xs = np.unravel_index(order, self.low.shape)
        h, w = self.pixels.shape
        rows = np.einsum("kfh,hw->kfw", _axis(h, self.windows[ys], 16, self.grids).reshape(len(ys), 16, h), self.pixels)
        columns = _axis(w, self.windows[xs], 16, self.grids).reshape(len(xs), 16, w)
        near = np.bitwise_count(_full_codes(np.einsum("kfw,kgw->kfg", rows, columns)) ^ target).sum(axis=-1)
        best = (2.0, (0.0, 0.0, 1.0, 1.0))
        for i in np.argsort(near, kind="stable")[:_REFINED]:
            found = self._refine(target, ys[i], xs[i])
            best = min(best, found, key=lambda f: f[0])
            if best[0] <= _SURE:
                break  # near enough: the other start cannot change the answer
        return best

    def _refine(self, target: Array, iy: int, ix: int) -> tuple[float, tuple[float, float, float, float]]:
        """From a coarse window, the horizontal and the vertical edges moved in turn (the code's
        errors along the two axes add up nearly independently), in shrinking steps."""
        x, y = self.windows[ix], self.windows[iy]
        bits = 256
        for step in _FINE_STEPS:
            for _ in range(2):
                xs = _around(x, step)
                found = self._distances(xs, y[None, :], target)[0]
                x = xs[int(np.argmin(found))]
                ys = _around(y, step)
                found = self._distances(x[None, :], ys, target)[:, 0]
                y, bits = ys[int(np.argmin(found))], int(found.min())
        return bits / 256, (float(x[0]), float(y[0]), float(x[1]), float(y[1]))

    def _distances(self, xs: Array, ys: Array, target: Array) -> Array:
        codes = _full_codes(_coefficients(self.pixels, xs, ys, 16, self.grids))
        out: Array = np.bitwise_count(codes ^ target).sum(axis=-1)
        return out


def _around(window: Array, step: float, reach: int = 3, clip: bool = True) -> Array:
    """Windows whose edges lie within ``reach`` steps (fractions of the window) of this one's,
    inside the copy (``clip``; a wide crop's window may overhang it)."""
    moves = np.arange(-reach, reach + 1) * step * (window[1] - window[0])
    out = np.stack(np.meshgrid(window[0] + moves, window[1] + moves, indexing="ij"), axis=-1).reshape(-1, 2)
    if not clip:
        return out
    clipped: Array = np.clip(out, 0.0, 1.0)
    return clipped


# --- the ledger side ------------------------------------------------------------------------------


class CentreIndex:
    """The ledger's "centre 60 %" codes in memory: their low 64 bits, and per 16-bit band of those
    the values sorted, so a window's band finds the works sharing it by binary search (the cost
    grows with the log of the ledger's size, plus the rows that share a value).

    Filled from the ledger's rows once, then only with rows recorded since (``refresh``): the
    ledger only grows. Each refresh swaps in new arrays, so readers in other threads see either.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._after = 0
        # (work ids, codes, the grids of each, low 64 bits, per band: sorted values and their rows), replaced whole
        self._snapshot: tuple[list[str], list[bytes], Array, Array, list[tuple[Array, Array]]] = (
            [], [], np.zeros(0, np.int64), np.zeros(0, np.uint64), [])

    def __len__(self) -> int:
        return len(self._snapshot[0])

    def refresh(self, ledger: Ledger) -> None:
        with self._lock:
            rows = ledger.region_codes(SEARCH_REGION, after=self._after)
            if not rows:
                return
            self._after = rows[-1][0]
            ids, codes, grids, low, _ = self._snapshot
            ids = ids + [work for _, work, _, _ in rows]
            codes = codes + [bytes.fromhex(code) for _, _, code, _ in rows]
            grids = np.concatenate([grids, np.array([version for _, _, _, version in rows], np.int64)])
            low = np.concatenate([low, np.array([int(c[:16], 16) for _, _, c, _ in rows], np.uint64)])
            bands = []
            for shift in _SHIFTS:
                values = (low >> np.uint64(shift)) & np.uint64(0xFFFF)
                order = np.argsort(values, kind="stable")
                bands.append((values[order], order))
            self._snapshot = (ids, codes, grids, low, bands)

    def grids(self) -> list[int]:
        """The grids the indexed works were recorded with, each once, the current one first."""
        return sorted({int(v) for v in np.unique(self._snapshot[2])}, key=lambda v: v != GRIDS)

    def candidates(self, low: Array, grids: int = GRIDS, bits: int = COARSE_BITS) -> list[tuple[str, bytes]]:
        """(work id, code) of the works recorded with ``grids`` whose code shares a 16-bit band
        with some window's low bits and lies within ``bits`` of it there, nearest first."""
        ids, codes, versions, works_low, bands = self._snapshot
        flat = low.ravel()
        pairs_window, pairs_work = [], []
        for shift, (values, order) in zip(_SHIFTS, bands, strict=True):
            keys = (flat >> np.uint64(shift)) & np.uint64(0xFFFF)
            first = np.searchsorted(values, keys, "left")
            count = np.searchsorted(values, keys, "right") - first
            window = np.repeat(np.arange(len(flat)), count)
            offset = np.arange(len(window)) - np.repeat(np.cumsum(count) - count, count)
            pairs_window.append(window)
            pairs_work.append(order[np.repeat(first, count) + offset])
        window, work = np.concatenate(pairs_window), np.concatenate(pairs_work)
        apart = np.bitwise_count(flat[window] ^ works_low[work])
        keep = (apart <= bits) & (versions[work] == grids)
        best: dict[int, int] = {}
        for w, b in zip(work[keep].tolist(), apart[keep].tolist(), strict=True):
            best[w] = min(b, best.get(w, b))
        ranked = sorted(best, key=best.__getitem__)[:_MAX_CANDIDATES]
        return [(ids[w], codes[w]) for w in ranked]


_SHIFTS = (48, 32, 16, 0)  # the four 16-bit bands of the low 64 bits
_MAX_CANDIDATES = 20  # works refined per copy, best coarse distance first
_INDEXES: weakref.WeakKeyDictionary[Any, CentreIndex] = weakref.WeakKeyDictionary()
_INDEXES_LOCK = threading.Lock()


def _index(ledger: Ledger) -> CentreIndex:
    """The index of this open ledger (kept as long as the ledger object lives)."""
    with _INDEXES_LOCK:
        index = _INDEXES.get(ledger)
        if index is None:
            index = _INDEXES[ledger] = CentreIndex()
    index.refresh(ledger)
    return index


def working_image(grey: Array) -> Array:
    """The copy's grey pixels reduced to ``WORK_SIDE`` on the longest side (box filter)."""
    from PIL import Image

    img = Image.fromarray(np.asarray(grey, dtype=np.uint8), "L")
    scale = WORK_SIDE / max(img.size)
    if scale < 1:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BOX)
    return np.asarray(img, dtype=np.float64)


def search(ledger: Ledger, grey: Array) -> list[Match]:
    """Works whose centre region some uneven crop of theirs (up to ``MAX_CUT`` a side, resized
    or not) puts in this grey picture, nearest first."""
    from .ledger import REGION_THRESHOLD, Match

    index = _index(ledger)
    if not len(index):
        return []
    out = []
    pixels = working_image(grey)
    copies = [CropSearch(pixels, grids) for grids in index.grids()]  # v1 only for a ledger holding works recorded with them
    for forms in FORMS:
        for copy in copies:
            for form in forms:
                view = copy.turned(form)
                for work_id, code in index.candidates(view.low, copy.grids):
                    distance, box = view.match(code)
                    work = ledger.get(work_id) if distance <= REGION_THRESHOLD else None
                    if work is not None:
                        out.append(Match(work, distance, False, describe(box, form), SEARCH_REGION, form))
        if out:
            break  # a copy explained by a cheaper form is not searched in costlier ones
    if not out and GRIDS in index.grids():
        # Nothing within MAX_CUT a side: a crop cutting one axis more (a square, story or banner).
        wide = WideSearch(pixels)
        for work_id, code in index.candidates(wide.lows(), GRIDS, WIDE_COARSE_BITS):
            share, box = wide.match(code)
            work = ledger.get(work_id) if share <= WIDE_THRESHOLD else None
            if work is not None:
                out.append(Match(work, share, False, describe_wide(box), SEARCH_REGION))
    # A work found both ways (a picture symmetric enough) is named once, by the nearer.
    nearest: dict[str, Match] = {}
    for match in sorted(out, key=lambda m: (m.imported, m.distance)):
        nearest.setdefault(match.work.id, match)
    return list(nearest.values())


def matches(ledger: Ledger, essence: Any, *, limit: int = 10) -> list[Match]:
    """``ledger.matches(essence)``, and when that finds nothing for an image, the crop search."""
    found = ledger.matches(essence, limit=limit)
    if found or essence.kind != "image" or essence.view is None:
        return found
    return search(ledger, essence.view)[:limit]


# --- crops of more than MAX_CUT a side ------------------------------------------------------------
#
# A platform's crop to another aspect cuts one axis far more than MAX_CUT: a 16:9 photo cut to an
# off-centre square, a 3:2 photo cut to a 9:16 story (31 % off each side), a 3:1 banner from a 3:2
# photo (25 % off the top and the bottom). The copy then holds only part of every region the work
# records; of its "centre 60 %" it still holds 60-95 % along the cut axis and all of it along the
# other. So the hypotheses let the region's window overhang the copy, and the cells outside the
# copy are unknown. The code's bits that the unknown part cannot flip are found by filling it in
# several ways that differ a lot (the copy's edge pixels repeated, its border mirrored, its mean
# grey, and the edge fill brighter and darker by ``_FILL_SHIFT``): a bit all the fills agree on is
# the copy's, a bit they disagree on is not compared. The score is the share of the compared bits
# that differ from the work's code. Measured (bench/crop_separation.py --wide): see WIDE_THRESHOLD.
#
# Every fill is linear in the copy's pixels, so each is a matrix per axis (``_filled``): the edge
# fill folds the taps outside the copy onto its first or last pixel, the mirrored one onto their
# mirror images, and the mean and the shifts add the outside's share of each cell, the same for
# every picture (``_outside``). Searched only when nothing else matched; the copy as it is (not
# flipped or turned back) and only against works recorded with grids v2.

WIDE_CUT = 0.4  # the most a wide hypothesis cuts off a side of the cut axis
_WIDE_KNOWN = 0.6  # the least share of the centre region's width the copy must hold on that axis
_WIDE_OTHER = 0.1  # the most cut off a side of the other axis (a platform's crop cuts one axis)
_FILL_SHIFT = 64.0  # grey levels the brighter and darker fills differ from the edge fill
WIDE_COARSE_BITS = 12  # of the 64 low bits (edge fill) for a work to be a candidate
WIDE_MIN_COMPARED = 96  # bits the fills must agree on for a window to be scored
WIDE_THRESHOLD = 0.12  # share of the compared bits. True pairs 0-0.14 (mean 0.04), unrelated 0.22 or more
# (1st percentile 0.26) of 600 forced pairs (bench/crop_separation.py --wide); at 0.2 unrelated bench
# copies matched (2 in a partial run of bench/durability.py --photos 30), so the margin is kept wide
# Starts are refined only when the best of them lies within this share: true pairs' best start
# came at 0.02-0.21 (24 copies, refined to 0-0.13), unrelated ones' at 0.26 or more (192 pairs,
# 1st percentile 0.28), and refining costs 0.2-0.3 s a work.
_WIDE_GATE = 0.24
_FILL_MODES = ("edge", "mirror", "inside")


def _wide_windows(step: float) -> tuple[Array, Array]:
    """(the cut axis' windows, the other axis' windows): the centre region's (start, end) in the
    copy, for every pair of cuts; on the cut axis only pairs beyond ``MAX_CUT`` on a side that leave
    the copy ``_WIDE_KNOWN`` of the region."""
    cuts = np.round(np.arange(0, WIDE_CUT + step / 2, step), 6)
    wide = []
    for a in cuts:
        for b in cuts:
            known = (min(1 - MAX_CUT, 1 - b) - max(MAX_CUT, a)) / (1 - 2 * MAX_CUT)
            if max(a, b) > MAX_CUT + 1e-9 and known >= _WIDE_KNOWN - 1e-9:
                wide.append(((MAX_CUT - a) / (1 - a - b), (1 - MAX_CUT - a) / (1 - a - b)))
    other = [c for c in cuts if c <= _WIDE_OTHER + 1e-9]
    narrow = [((MAX_CUT - a) / (1 - a - b), (1 - MAX_CUT - a) / (1 - a - b)) for a in other for b in other]
    return np.array(wide), np.array(narrow)


def wide_covered(left: float, top: float, right: float, bottom: float) -> bool:
    """Whether a crop cutting these fractions off the work's sides is one ``WideSearch`` hypothesises
    (to within the coarse step), and no narrower search does."""
    def known(a: float, b: float) -> float:
        return (min(1 - MAX_CUT, 1 - b) - max(MAX_CUT, a)) / (1 - 2 * MAX_CUT)

    def wide(a: float, b: float) -> bool:
        return max(a, b) > MAX_CUT and max(a, b) <= WIDE_CUT and known(a, b) >= _WIDE_KNOWN

    def narrow(a: float, b: float) -> bool:
        return max(a, b) <= _WIDE_OTHER

    return (wide(left, right) and narrow(top, bottom)) or (wide(top, bottom) and narrow(left, right))


def _taps(n: int, windows: Array, mode: str) -> tuple[Array, Array]:
    """(pixel, weight), each (len(windows), 32, taps): ``_coverage``'s cell means for windows that
    may overhang a line of ``n`` pixels, the part outside filled by ``mode``: "edge" (the first or
    last pixel repeated), "mirror" (the line mirrored at its ends) or "inside" (nothing: the
    outside's share is 0). A pixel may appear more than once in a cell (taps folded onto it)."""
    lines = (windows[:, :1] + (windows[:, 1:] - windows[:, :1]) * np.arange(_SIZE + 1) / _SIZE) * n
    start, end = lines[:, :-1, None], lines[:, 1:, None]
    taps = int(np.ceil(float((end - start).max()))) + 2
    index = np.floor(start).astype(np.int64) + np.arange(taps)
    weights = np.clip(np.minimum(end, index + 1) - np.maximum(start, index), 0.0, None) / np.maximum(end - start, 1e-9)
    if mode == "mirror":
        index = np.where(index < 0, -index - 1, np.where(index >= n, 2 * n - 1 - index, index))
    elif mode == "inside":
        weights[(index < 0) | (index >= n)] = 0.0
    # "edge": the outside's taps onto the end pixels (an overhang longer than the line, never
    # hypothesised, stays bounded too).
    return np.clip(index, 0, n - 1), weights


def _dct_filled(n: int, windows: Array, mode: str, freqs: int) -> Array:
    """(len(windows), freqs, n): the lowest ``freqs`` DCT rows of each window's cell means
    (``_taps``), as one bincount over (window, frequency, pixel): the weights are sparse, and
    folded taps add up."""
    index, weights = _taps(n, windows, mode)
    values = _DCT[:freqs][None, :, :, None] * weights[:, None, :, :]  # (windows, freqs, 32, taps)
    rows = np.arange(len(windows) * freqs).reshape(len(windows), freqs, 1, 1)
    out: Array = np.bincount((rows * n + index[:, None]).ravel(), values.ravel(), minlength=len(windows) * freqs * n)
    return out.reshape(len(windows), freqs, n)


def _sides_dct(n: int, windows: Array, freqs: int) -> tuple[Array, Array]:
    """(len(windows), freqs) twice: the DCT of each cell's share left of (before) the line and
    right of (after) it: what the edge fill adds to the first and the last pixel."""
    lines = (windows[:, :1] + (windows[:, 1:] - windows[:, :1]) * np.arange(_SIZE + 1) / _SIZE) * n
    width = np.maximum(lines[:, 1:] - lines[:, :-1], 1e-9)
    before = np.clip(np.minimum(lines[:, 1:], 0.0) - lines[:, :-1], 0.0, None) / width
    after = np.clip(lines[:, 1:] - np.maximum(lines[:, :-1], float(n)), 0.0, None) / width
    return before @ _DCT[:freqs].T, after @ _DCT[:freqs].T


def _coarse_fills(pixels: Array, xs: Array, ys: Array) -> list[Array]:
    """The 8x8 low coefficients of every pair of ``xs`` and ``ys`` under the edge fill, the mean
    fill and the edge fill brighter and darker (``_Filled.fills`` but the mirrored one): one
    product of the copy's own part; the edge fill adds rank-one terms of the copy's first and last
    rows and columns (its weights are the inside's plus the outside's shares on its end pixels)."""
    h, w = pixels.shape
    freqs = 8
    ay, ax = _dct_filled(h, ys, "inside", freqs).reshape(-1, h), _dct_filled(w, xs, "inside", freqs).reshape(-1, w)
    (ly, ry), (lx, rx) = _sides_dct(h, ys, freqs), _sides_dct(w, xs, freqs)
    ly, ry, lx, rx = ly.ravel(), ry.ravel(), lx.ravel(), rx.ravel()
    # rows: the y windows applied to the copy's first and last columns, (ny f, 2); columns: the x
    # windows applied to its first and last rows, (2, nx f).
    if len(ys) * w <= len(xs) * h:  # the cheaper order, as in _coefficients
        applied = np.einsum("ah,hw->aw", ay, pixels)  # (ny f, w)
        inside = np.einsum("aw,bw->ab", applied, ax)
        rows = applied[:, [0, -1]]
        columns = np.einsum("hw,bw->hb", pixels[[0, -1]], ax)
    else:
        applied = np.einsum("hw,bw->hb", pixels, ax)  # (h, nx f)
        inside = np.einsum("ah,hb->ab", ay, applied)
        rows = np.einsum("ah,hw->aw", ay, pixels[:, [0, -1]])
        columns = applied[[0, -1]]
    # Terms of the edge fill: the copy's part times the outside shares, and the corners.
    edge = (inside + np.outer(rows[:, 0], lx) + np.outer(rows[:, -1], rx) + np.outer(ly, columns[0])
            + np.outer(ry, columns[1]) + pixels[0, 0] * np.outer(ly, lx) + pixels[0, -1] * np.outer(ly, rx)
            + pixels[-1, 0] * np.outer(ry, lx) + pixels[-1, -1] * np.outer(ry, rx))
    dy, dx = _inside_dct(h, ys, freqs), _inside_dct(w, xs, freqs)
    whole = _DCT[:freqs].sum(axis=1)
    outside = np.outer(np.tile(whole, len(ys)), np.tile(whole, len(xs))) - np.outer(dy.ravel(), dx.ravel())
    fills = [edge, inside + float(pixels.mean()) * outside, edge + _FILL_SHIFT * outside, edge - _FILL_SHIFT * outside]
    return [f.reshape(len(ys), freqs, len(xs), freqs).transpose(0, 2, 1, 3) for f in fills]


def _inside_dct(n: int, windows: Array, freqs: int) -> Array:
    """(len(windows), freqs): the DCT of each cell's share inside the line."""
    shares: Array = _taps(n, windows, "inside")[1].sum(axis=-1) @ _DCT[:freqs].T
    return shares


class _Filled:
    """The coefficients of windows of one copy under every fill: of every pair of ``xs`` and ``ys``
    (a grid, ``(ys, xs, freqs, freqs)``), or with ``paired`` of the k-th x with the k-th y
    (``(k, freqs, freqs)``)."""

    def __init__(self, pixels: Array, xs: Array, ys: Array, freqs: int, paired: bool = False) -> None:
        h, w = pixels.shape
        self.by_mode: dict[str, Array] = {}
        for mode in _FILL_MODES:
            ax, ay = _dct_filled(w, xs, mode, freqs), _dct_filled(h, ys, mode, freqs)
            if paired:
                self.by_mode[mode] = np.einsum("kfw,kgw->kfg", np.einsum("kfh,hw->kfw", ay, pixels), ax)
            elif len(ys) * w <= len(xs) * h:  # the cheaper order, as in _coefficients
                out = np.einsum("aw,bw->ab", np.einsum("ah,hw->aw", ay.reshape(-1, h), pixels), ax.reshape(-1, w))
                self.by_mode[mode] = out.reshape(len(ys), freqs, len(xs), freqs).transpose(0, 2, 1, 3)
            else:
                out = np.einsum("ah,hb->ab", ay.reshape(-1, h), np.einsum("hw,bw->hb", pixels, ax.reshape(-1, w)))
                self.by_mode[mode] = out.reshape(len(ys), freqs, len(xs), freqs).transpose(0, 2, 1, 3)
        # The outside's share of each cell, as coefficients: DCT(1) DCT(1)^T - DCT(in_y) DCT(in_x)^T.
        dy, dx = _inside_dct(h, ys, freqs), _inside_dct(w, xs, freqs)  # (windows, freqs)
        whole = _DCT[:freqs].sum(axis=1)
        if paired:
            self.outside = whole[None, :, None] * whole[None, None, :] - dy[:, :, None] * dx[:, None, :]
        else:
            self.outside = (whole[None, None, :, None] * whole[None, None, None, :]
                            - dy[:, None, :, None] * dx[None, :, None, :])
        self.mean = float(pixels.mean())

    def fills(self) -> list[Array]:
        edge = self.by_mode["edge"]
        return [edge, self.by_mode["mirror"], self.by_mode["inside"] + self.mean * self.outside,
                edge + _FILL_SHIFT * self.outside, edge - _FILL_SHIFT * self.outside]


def _full_bits(coefficients: Array) -> Array:
    """``_full_codes``' 256 bits unpacked (each block above its median, the median taken as
    ``_above_median`` takes it: the same values, a fifth of np.median's cost)."""
    blocks = [coefficients[..., y : y + 8, x : x + 8] for x, y in ((0, 0), (8, 0), (0, 8), (8, 8))]
    flat = np.stack([np.ascontiguousarray(b).reshape(*b.shape[:-2], 64) for b in blocks], axis=-2)
    middle = np.sort(flat, axis=-1)[..., 31:33]
    median = (middle[..., :1] + middle[..., 1:]) / 2
    bits: Array = (flat > median).reshape(*flat.shape[:-2], 256)
    return bits


def _scores(filled: _Filled, target: Array) -> Array:
    """The share of the bits all fills agree on that differ from ``target``, per window (1.0 where
    fewer than ``WIDE_MIN_COMPARED`` agree)."""
    bits = _full_bits(np.stack(filled.fills()))
    agreed = (bits == bits[:1]).all(axis=0)
    compared = agreed.sum(axis=-1)
    differ = ((bits[0] != np.unpackbits(target)) & agreed).sum(axis=-1)
    share: Array = np.where(compared >= WIDE_MIN_COMPARED, differ / np.maximum(compared, 1), 1.0)
    return share


class WideSearch:
    """The search over one copy for crops of more than ``MAX_CUT`` on one axis (see above)."""

    def __init__(self, grey: Array) -> None:
        self.pixels = np.asarray(grey, dtype=np.float64)
        wide, narrow = _wide_windows(COARSE_STEP)
        # Two sets of window pairs: cut across (x wide), cut down (y wide).
        self.pairs = [(wide, narrow), (narrow, wide)]  # (xs, ys)
        # Each window's 64 low bits under every fill: a work is a candidate when one of them shares
        # a band with its code (the edge fill alone left 3 of 10 true 9:16 stories without one).
        self.low = [np.stack([_low_codes(c) for c in _coarse_fills(self.pixels, xs, ys)]) for xs, ys in self.pairs]

    def lows(self) -> Array:
        """Every window's low bits under every fill, for ``CentreIndex.candidates``."""
        return np.concatenate([low.ravel() for low in self.low])

    def match(self, code: bytes) -> tuple[float, tuple[float, float, float, float]]:
        """The best share (``_scores``) near ``code`` (a work's centre code) and the window's box
        in the copy (it may reach outside 0-1)."""
        target = np.frombuffer(code, np.uint8)
        low = np.uint64(int.from_bytes(code[:8], "big"))
        starts = []
        for (xs, ys), lows in zip(self.pairs, self.low, strict=True):
            near = np.bitwise_count(lows ^ low).min(axis=0)  # by the nearest fill
            for flat in np.argsort(near, axis=None, kind="stable")[:_STARTS]:
                iy, ix = np.unravel_index(flat, near.shape)
                starts.append((int(near[iy, ix]), xs[ix], ys[iy]))
        starts.sort(key=lambda s: s[0])
        xs = np.array([s[1] for s in starts])
        ys = np.array([s[2] for s in starts])
        # Each start alone (the diagonal of the products over all its pairs), over all bits.
        share = _scores(_Filled(self.pixels, xs, ys, 16, paired=True), target)
        nearest = int(np.argmin(share))
        if share[nearest] > _WIDE_GATE:  # an unrelated work: refining would not bring it near
            return float(share[nearest]), (float(xs[nearest][0]), float(ys[nearest][0]), float(xs[nearest][1]), float(ys[nearest][1]))
        best = (1.0, (0.0, 0.0, 1.0, 1.0))
        for i in np.argsort(share, kind="stable")[:_REFINED]:
            found = self._refine(target, xs[i], ys[i])
            best = min(best, found, key=lambda f: f[0])
        return best

    def _refine(self, target: Array, x: Array, y: Array) -> tuple[float, tuple[float, float, float, float]]:
        share = 1.0
        for step in _FINE_STEPS:
            for _ in range(2):
                xs = _around(x, step, clip=False)
                found = _scores(_Filled(self.pixels, xs, y[None, :], 16), target)[0]
                x = xs[int(np.argmin(found))]
                ys = _around(y, step, clip=False)
                found = _scores(_Filled(self.pixels, x[None, :], ys, 16), target)[:, 0]
                y, share = ys[int(np.argmin(found))], float(found.min())
        return share, (float(x[0]), float(y[0]), float(x[1]), float(y[1]))


def describe_wide(box: tuple[float, float, float, float]) -> str:
    """Which part of the work the copy is, from where the work's centre region lies in it."""
    left, top, right, bottom = box
    def span(start: float, end: float) -> tuple[int, int]:
        size = (1 - 2 * MAX_CUT) / (end - start)
        return round(100 * (MAX_CUT - start * size)), round(100 * (MAX_CUT + (1 - start) * size))
    (x0, x1), (y0, y1) = span(left, right), span(top, bottom)
    return (f"the file matched the work's part {max(0, x0)}-{min(100, x1)} % across, {max(0, y0)}-{min(100, y1)} % down "
            f"(a crop of more than {round(100 * MAX_CUT)} % a side; compared by the part of the work's {SEARCH_REGION} it holds)")
