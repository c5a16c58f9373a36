"""Image grids v2 (issue 12): each cell the exact mean of the picture it covers, from a summed-area
table, so recording a work costs a fraction of v1's bicubic resizes; and ledgers holding works
recorded with grids v1 (schema 4 and before) keep finding their copies, by the copies' v1 codes.
"""

from __future__ import annotations

import io
import json
import random
import sqlite3
from pathlib import Path

import material
import numpy as np
import pytest
from PIL import Image
from test_ledger import killed_mid_migration

from rightsmeta import Assertion, cropsearch
from rightsmeta.fingerprint import (
    _PROBE_BOXES,
    AREA_SIDE,
    GRIDS,
    GRIDS_V1,
    GRIDS_V2,
    MATCH_THRESHOLD,
    _AreaGrids,
    _corner_boxes,
    _image_hashes,
    _region_boxes,
    distance,
    essence,
    region_pair_allowed,
)
from rightsmeta.ledger import REGION_THRESHOLD, SCHEMA_VERSION, Ledger, LedgerError, Work
from rightsmeta.verify import verify

ROOT = Path(__file__).resolve().parent.parent
ASSERTION = Assertion.build(deny=["ai"])


def _coverage(lines: np.ndarray, n: int) -> np.ndarray:
    """(cells, n): how much of each pixel each cell between consecutive ``lines`` covers."""
    return np.array([[max(0.0, min(b, i + 1) - max(a, i)) for i in range(n)] for a, b in zip(lines[:-1], lines[1:], strict=True)])


def reference(pixels: np.ndarray, box: tuple[float, float, float, float], extent: tuple[float, float] | None = None) -> np.ndarray:
    """The 32x32 cell means of a box of the picture spanning ``extent`` of ``pixels`` (all by
    default), pixel by pixel: each pixel weighted by the share of it each cell covers (no
    summed-area table)."""
    w, h = extent or pixels.shape[::-1]
    x0, y0, x1, y1 = box
    xs = np.linspace(x0 * w, x1 * w, 33)
    ys = np.linspace(y0 * h, y1 * h, 33)
    cx, cy = _coverage(xs, pixels.shape[1]), _coverage(ys, pixels.shape[0])
    sums = np.array([[float((np.outer(ry, rx) * pixels).sum()) for rx in cx] for ry in cy])
    return sums / np.outer(np.diff(ys), np.diff(xs))


def test_area_grids_are_the_mean_of_each_cell() -> None:
    rng = np.random.default_rng(12)
    pixels = rng.integers(0, 256, (90, 120), dtype=np.uint8)
    view = Image.fromarray(pixels, "L")
    grids = _AreaGrids(view)
    assert max(view.size) < 2 * AREA_SIDE and grids.size == view.size  # not reduced further
    # Aligned boxes: each cell a block of whole pixels, its plain mean.
    aligned = grids.of([(0.0, 0.0, 96 / 120, 64 / 90), (24 / 120, 26 / 90, 56 / 120, 58 / 90)])
    blocks = pixels[:64, :96].reshape(32, 2, 32, 3).mean(axis=(1, 3))
    assert np.allclose(aligned[0], blocks, rtol=0, atol=1e-9)
    assert np.allclose(aligned[1], pixels[26:58, 24:56], rtol=0, atol=1e-9)
    # Fractional boxes: a cell 1.25 px wide starting at a quarter pixel is the block mean of the
    # picture upsampled 4 times (each pixel repeated 4 x 4).
    upsampled = np.repeat(np.repeat(pixels.astype(np.float64), 4, axis=0), 4, axis=1)
    box = (1.25 / 120, 2.75 / 90, 41.25 / 120, 82.75 / 90)  # 40 x 80 px: cells of 1.25 x 2.5 px
    expected = upsampled[11:331, 5:165].reshape(32, 10, 32, 5).mean(axis=(1, 3))
    assert np.allclose(grids.of([box])[0], expected, rtol=0, atol=1e-9)
    # Random boxes, and every box a work or a copy is cut into, against the pixel-by-pixel reference.
    boxes = [box for _, box in _region_boxes(120 / 90) + _PROBE_BOXES + _corner_boxes((1200, 900), work=True)]
    for _ in range(8):
        x0, x1 = sorted(rng.uniform(0, 1, 2))
        y0, y1 = sorted(rng.uniform(0, 1, 2))
        boxes.append((float(x0), float(y0), float(x1), float(y1)))
    for got, box in zip(grids.of(boxes), boxes, strict=True):
        assert np.allclose(got, reference(pixels.astype(np.float64), box), rtol=0, atol=1e-7), box


def test_a_large_view_is_reduced_by_a_whole_factor_first() -> None:
    """A view of 400 px is reduced 3 times: 134 pixels, the last the mean of one column, so the
    picture spans 133.3 of them, and a box's fractions are taken of that."""
    grey = material.photo(3, (400, 300)).convert("L")
    grids = _AreaGrids(grey)
    small = np.asarray(grey.reduce(3), dtype=np.float64)
    assert grids.size == (134, 100) and grids.extent == (400 / 3, 100)
    for box in ((0.1, 0.2, 0.7, 0.9), (0.5, 0.0, 1.0, 1.0)):
        assert np.allclose(grids.of([box])[0], reference(small, box, (400 / 3, 100)), rtol=0, atol=1e-7)


def test_a_mirrored_copy_has_the_mirrored_grid() -> None:
    """Where a reduction rounds the size up (769 px reduced 3 times is 257 pixels, the last a
    third of one), the grids span the picture, not its rounded-up pixels: a lossless mirror of it
    then gives nearly the work's own code, mirrored. Not exactly: the copy's reductions start
    their blocks at the other edge. Measured, bits apart in all: 10 (the extent taken as the
    pixels': 46)."""
    total = 0
    for size in ((769, 577), (799, 599)):
        for seed in (6, 7, 8):
            img = material.photo(seed, size)
            work, copy = io.BytesIO(), io.BytesIO()
            img.save(work, "PNG", compress_level=1)  # lossless all the same, and fast
            img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(copy, "PNG", compress_level=1)
            code = essence(work.getvalue(), "png", probes=False).perceptual
            total += round(256 * distance(dict(essence(copy.getvalue(), "png").probes)["mirrored"], code))
    assert total <= 16, total


def test_the_search_windows_hash_as_grids_v2_do() -> None:
    """cropsearch's area-coverage matrices (the copy's windows as matrix products) give the codes
    the work's grids v2 gave: the same cell means, up to float rounding."""
    for seed in range(4):
        img = material.photo(seed, (480, 360)).convert("L").resize((160, 120), Image.Resampling.BOX)
        pixels = np.asarray(img, dtype=np.float64)
        box = (0.137, 0.211, 0.861, 0.899)
        xs, ys = np.array([[box[0], box[2]]]), np.array([[box[1], box[3]]])
        ours = cropsearch._full_codes(cropsearch._coefficients(pixels, xs, ys, 16, GRIDS_V2))[0, 0]
        grids = np.frombuffer(bytes.fromhex(_image_hashes(_AreaGrids(img).of([box]))[0]), np.uint8)
        assert int(np.bitwise_count(ours ^ grids).sum()) <= 2  # ties at a block's median only
        low = cropsearch._low_codes(cropsearch._coefficients(pixels, xs, ys, 8, GRIDS_V2))[0, 0]
        assert int(low).to_bytes(8, "big") == ours[:8].tobytes()


def test_v2_codes_of_handled_copies_stay_within_the_thresholds(tmp_path: Path) -> None:
    bits = {"JPEG q70": [], "downscale 50 %": [], "crop 10 %/side": [], "crop 5/15/20/10 % l/t/r/b": []}
    with Ledger.open(tmp_path / "l.sqlite3") as ledger:
        for seed in range(5):
            img = material.photo(seed, [(480, 360), (360, 480), (400, 400)][seed % 3])
            work = essence(material.jpeg(img, 92), "jpeg", probes=False)
            assert work.grids == GRIDS == GRIDS_V2
            ledger.record(Work.create(f"{seed}.jpg", "jpeg", work, ASSERTION, id=f"w{seed}"))
            q70 = essence(material.jpeg(img, 70), "jpeg")
            half = essence(material.jpeg(img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS), 85), "jpeg")
            bits["JPEG q70"].append(round(256 * distance(q70.perceptual, work.perceptual)))
            bits["downscale 50 %"].append(round(256 * distance(half.perceptual, work.perceptual)))
            for handling in ("crop 10 %/side", "crop 5/15/20/10 % l/t/r/b"):
                found = cropsearch.matches(ledger, essence(material.handle(img, handling), "jpeg"))
                assert found and found[0].work.id == f"w{seed}", (seed, handling)
                bits[handling].append(round(256 * found[0].distance))
    print(bits)
    assert max(bits["JPEG q70"] + bits["downscale 50 %"]) <= 0.5 * MATCH_THRESHOLD["image"] * 256
    assert max(bits["crop 10 %/side"] + bits["crop 5/15/20/10 % l/t/r/b"]) <= REGION_THRESHOLD * 256


# --- ledgers holding works recorded with grids v1 -------------------------------------------------


def _as_schema_4(path: Path) -> None:
    """The ledger as rightsmeta with schema 4 left it: no ``grids`` column (every code v1), version 4."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP INDEX works_v1_grids")
    db.execute("ALTER TABLE works DROP COLUMN grids")
    db.execute("UPDATE schema_version SET version = 4")
    db.close()


def _photos(first: int, count: int) -> list[Image.Image]:
    return [material.photo(seed, [(480, 360), (360, 480)][seed % 2]) for seed in range(first, first + count)]


def _record(ledger: Ledger, images: list[Image.Image], prefix: str, grids: int) -> list[Work]:
    works = [Work.create(f"{prefix}{i}.jpg", "jpeg", essence(material.jpeg(img, 90), "jpeg", probes=False, grids=grids),
                         ASSERTION, id=f"{prefix}{i}") for i, img in enumerate(images)]
    ledger.record_many(works)
    return works


COPIES = ("JPEG q70", "crop 15 %/side", "crop 5/15/20/10 % l/t/r/b")


def _own_distance(name: str, data: bytes, work: Work) -> float | None:
    """What the ledger must say of a copy found by its whole code or by a region: its distance by
    the copy's codes of the work's own grids (None for the crop search's copies)."""
    copy = essence(data, "jpeg", grids=work.grids)
    if name.endswith("JPEG q70"):
        return distance(copy.perceptual, work.perceptual)
    if name.endswith("crop 15 %/side"):
        return min(distance(code, recorded) for probe, code in copy.probes for region, recorded in work.regions
                   if region_pair_allowed(probe, region))
    return None


def _copy(img: Image.Image, handling: str) -> bytes:
    return material.jpeg(img, 70) if handling == "JPEG q70" else material.handle(img, handling)


def _found(ledger_path: Path, files: dict[str, Path]) -> dict[str, tuple[str | None, float]]:
    """verify's answer for each copy: the work it matched, and at what distance."""
    out = {}
    with Ledger.open(ledger_path, readonly=True) as ledger:
        for name, path in files.items():
            verdict = verify(str(path), ledger=ledger)
            assert verdict.status == "stripped", (name, verdict.reasons)
            assert verdict.match is not None
            out[name] = (verdict.match.work.id, verdict.match.distance)
    return out


def _copies(tmp_path: Path, images: dict[str, Image.Image]) -> dict[str, Path]:
    files = {}
    for work_id, img in images.items():
        for handling in COPIES:
            path = tmp_path / f"{work_id} {handling.replace('/', '-')}.jpg"
            path.write_bytes(_copy(img, handling))
            files[f"{work_id}: {handling}"] = path
    return files


def test_a_schema_4_ledger_of_v1_works_migrates_and_finds_their_copies(tmp_path: Path) -> None:
    images = _photos(20, 3)
    path = tmp_path / "v4.sqlite3"
    with Ledger.open(path) as ledger:
        works = _record(ledger, images, "old", GRIDS_V1)
    _as_schema_4(path)
    files = _copies(tmp_path, {w.id: img for w, img in zip(works, images, strict=True)})
    with Ledger.open(path, readonly=True) as old:  # read as it is: every image work is v1
        assert old.needs_legacy_grids() and old.get("old0") == works[0]
    before = _found(path, files)
    with Ledger.open(path) as ledger:
        assert ledger._db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)] == [(5,)]
        assert ledger._db.execute("SELECT DISTINCT grids FROM works").fetchall() == [(GRIDS_V1,)]
        assert ledger.needs_legacy_grids() and ledger.get("old0") == works[0]
    after = _found(path, files)
    assert after == before
    for name, (work_id, d) in after.items():
        assert work_id == name.split(":")[0], (name, work_id)
        work = next(w for w in works if w.id == work_id)
        assert _own_distance(name, files[name].read_bytes(), work) in (d, None), name  # by the copy's v1 codes
        if name.endswith("JPEG q70"):  # which are not its v2 ones
            assert d != distance(essence(files[name].read_bytes(), "jpeg").perceptual, work.perceptual)


def test_a_mixed_ledger_finds_copies_of_v1_and_v2_works(tmp_path: Path) -> None:
    images = _photos(30, 4)
    path = tmp_path / "mixed.sqlite3"
    with Ledger.open(path) as ledger:
        old = _record(ledger, images[:2], "old", GRIDS_V1)
    _as_schema_4(path)
    with Ledger.open(path) as ledger:  # migrated, then works recorded now
        new = _record(ledger, images[2:], "new", GRIDS)
        assert ledger.needs_legacy_grids()
        assert dict(ledger._db.execute("SELECT id, grids FROM works").fetchall()) == {
            "old0": 1, "old1": 1, "new0": 2, "new1": 2}
    files = _copies(tmp_path, {w.id: img for w, img in zip(old + new, images, strict=True)})
    found = _found(path, files)
    for name, (work_id, d) in found.items():
        assert work_id == name.split(":")[0], (name, work_id)
        work = next(w for w in old + new if w.id == work_id)
        assert _own_distance(name, files[name].read_bytes(), work) in (d, None), name  # each by the codes of its own grids
    # A ledger of v2 works only never asks for (nor computes) v1 codes.
    with Ledger.open(tmp_path / "new.sqlite3") as fresh:
        _record(fresh, images[2:], "new", GRIDS)
        assert not fresh.needs_legacy_grids()


def test_a_ledger_of_v1_works_refuses_an_essence_without_v1_codes(tmp_path: Path) -> None:
    images = _photos(60, 2)
    copy = material.jpeg(images[0], 70)
    with Ledger.open(tmp_path / "v1.sqlite3") as ledger:
        _record(ledger, images, "old", GRIDS_V1)
        plain = essence(copy, "jpeg")  # v2 codes only: the v1 works would be compared with the wrong codes
        for lookup in (ledger.matches, ledger.find, lambda e: cropsearch.matches(ledger, e)):
            with pytest.raises(ValueError, match="essence_of"):
                lookup(plain)
        found = cropsearch.matches(ledger, ledger.essence_of(copy, "jpeg"))
        assert found and found[0].work.id == "old0"
        assert ledger.matches(essence(copy, "jpeg", grids=GRIDS_V1))[0].work.id == "old0"  # v1 codes themselves
        assert ledger.matches(essence(b"not a jpeg", "jpeg")) == []  # nothing decoded: nothing to compare
    with Ledger.open(tmp_path / "v2.sqlite3") as fresh:  # no v1 works: any essence will do
        _record(fresh, images, "new", GRIDS)
        assert fresh.matches(essence(copy, "jpeg"))[0].work.id == "new0"


def test_exported_lines_say_which_grids(tmp_path: Path) -> None:
    images = _photos(40, 2)
    with Ledger.open(tmp_path / "a.sqlite3") as ledger:
        old = _record(ledger, images[:1], "old", GRIDS_V1)
        new = _record(ledger, images[1:], "new", GRIDS)
        out = io.StringIO()
        ledger.export_jsonl(out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert "grids" not in lines[0] and lines[1]["grids"] == 2  # absent: v1, as every line written before
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    schemas = {p.name: json.loads(p.read_text()) for p in (ROOT / "schemas").glob("*.schema.json")}
    registry: Registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas.values())
    validator = Draft202012Validator(schemas["ledger-line.schema.json"], registry=registry)
    for line in lines:
        validator.validate(line)
    with Ledger.open(tmp_path / "b.sqlite3") as other:
        assert other.import_jsonl(io.StringIO(out.getvalue()), source="them") == 2
        assert [other.get(w.id).grids for w in old + new] == [1, 2]  # type: ignore[union-attr]
        assert other.needs_legacy_grids()
        for bad in (3, "2", None):
            line = json.dumps({**lines[1], "id": "bad", "grids": bad})
            with pytest.raises(LedgerError, match="grids"):
                other.import_jsonl(io.StringIO(line))
        with pytest.raises(LedgerError, match="grids"):
            other.import_jsonl(io.StringIO(json.dumps({**lines[1], "id": "bad", "kind": "text", "regions": None} | {"grids": 2})))


def test_the_migration_to_schema_5_survives_sigkill(tmp_path: Path) -> None:
    images = _photos(50, 2)
    path, marker = tmp_path / "v4.sqlite3", tmp_path / "stalled"
    with Ledger.open(path) as ledger:
        works = _record(ledger, images, "old", GRIDS_V1)
        rng = random.Random(5)
        ledger.record_many(Work(f"random-{i}", f"{i}.jpg", "jpeg", None, "image", f"{rng.getrandbits(256):064x}", ASSERTION,
                                grids=GRIDS_V1) for i in range(300))
    _as_schema_4(path)
    files = _copies(tmp_path, {w.id: img for w, img in zip(works, images, strict=True)})
    before = _found(path, files)
    killed_mid_migration(path, marker)
    with Ledger.open(path, readonly=True) as old:  # still the schema-4 ledger, answering as before
        assert old._db.execute("SELECT version FROM schema_version").fetchall() == [(4,)]
        assert not old._has_grids()
    assert _found(path, files) == before
    with Ledger.open(path) as ledger:  # the next writer migrates it
        assert ledger._db.execute("SELECT version FROM schema_version").fetchall() == [(5,)]
        assert ledger._db.execute("SELECT COUNT(*) FROM works WHERE grids = 1").fetchone() == (302,)
    assert _found(path, files) == before


def test_grids_of_no_version_are_refused() -> None:
    with pytest.raises(ValueError, match="no image grids of version 3"):
        essence(material.jpeg(material.photo(1, (64, 48))), "jpeg", grids=3)
