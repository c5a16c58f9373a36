"""Does a region lookup cost the same at 1,000 and 100,000 works? What do recording and migrating cost?

    python bench/region_lookup.py --sizes 1000,10000,100000 --dir /tmp/rl
    python bench/region_lookup.py --recall 40
    python bench/region_lookup.py --migrate OLD.sqlite3 --dir /tmp/rl

Ledgers are built at DIR/ledger-N.sqlite3 if missing: the 20 camera-like photos of
bench/durability.py, then works of real fingerprint codes up to N, each of another generated photo
(tests/material.py ``photo``, seeds from 1,000,000 on, 160 x 120 to 170 x 113 px in four shapes,
JPEG q90, ``fingerprint.essence`` as ``rightsmeta tag`` computes it). Real codes share far more
bits than random ones (sky above, ground below), so they crowd an index as real ledgers do. The
codes are computed once into DIR/codes.jsonl (~11 ms a work on one core, resumed if stopped; give
several processes a share with --make-codes) and recorded through ``Ledger.record_many`` in
batches of 10,000 works (the same insert code as ``tag``); the time and peak RSS of building each
ledger are printed.

Then the 20 photos' 10 % crops are looked up (``Ledger.matches``, the essence computed
beforehand) in --passes passes, the sizes taking turns within each pass: the median CPU time per
lookup of each pass, the median and worst pass per size, their ratios to the smallest ledger,
and the chance region candidates (works sharing a key with a probe but not the crop's own work).
The machine is shared: read ``uptime`` (printed) with the times.

``--recall N`` measures what the keys must find, on N photos x every handling of
bench/durability.py: of the (probe, region) pairs of a copy and its own work within
REGION_THRESHOLD, the share that shares a key with the probe, by distance (schema 3's 24-bit
windows beside it), and the copies that need the regions with such a pair.

Beside it, the copies whose whole code is 24-31 bits from their work's (within MATCH_THRESHOLD, beyond
the 23 bits the whole-code bands guarantee, ledger.IMAGE_BAND_WIDTHS), and how many the bands find.

``--record N`` records N works of real codes one at a time into a fresh ledger, one transaction
each, as ``rightsmeta tag`` does, and prints the CPU and wall time per work (closing included).

``--migrate`` takes a ledger of schema version 2 or 3: its copy is migrated (time and peak RSS
printed), then the crops are timed in alternating passes against the old copy opened read-only
(searched through its own index) and the migrated one, which must find the same works.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests"), str(HERE)]

import durability  # noqa: E402
import material  # noqa: E402

from rightsmeta.fingerprint import Essence, essence  # noqa: E402
from rightsmeta.ledger import Ledger, Work  # noqa: E402

FIRST_SEED = 1_000_000
SHAPES = ((160, 120), (120, 160), (170, 113), (140, 140))
BATCH = 10_000


def _photos() -> list[tuple[Work, Essence]]:
    """The 20 photos' works and the essences of their 10 % crops."""
    out = []
    for seed in range(20):
        img = material.photo(seed, durability._size(seed))
        work = Work.create(f"p{seed}.jpg", "jpeg", essence(material.jpeg(img, 90), "jpeg"), durability.ASSERTION, id=f"photo-{seed}")
        out.append((work, essence(material.handle(img, "crop 10 %/side"), "jpeg")))
    return out


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def code_line(index: int) -> str:
    """One work's codes as a JSON line: another generated photo, fingerprinted as tag does."""
    seed = FIRST_SEED + index
    found = essence(material.jpeg(material.photo(seed, SHAPES[seed % len(SHAPES)]), 90), "jpeg", probes=False)
    return json.dumps({"seed": seed, "hash": found.hash, "perceptual": found.perceptual, "regions": dict(found.regions)})


def make_codes(path: Path, first: int, count: int) -> None:
    """Append the lines of works ``first`` to ``first + count`` to ``path`` (a share for one process)."""
    with path.open("a") as out:
        for index in range(first, first + count):
            out.write(code_line(index) + "\n")


def codes(folder: Path, count: int) -> Iterator[Work]:
    """``count`` works of real codes, from DIR/codes.jsonl, computed first where missing."""
    path = folder / "codes.jsonl"
    have = sum(1 for _ in path.open()) if path.exists() else 0
    if have < count:
        started = time.process_time()
        make_codes(path, have, count - have)
        print(f"computed the codes of {count - have:,} works in {time.process_time() - started:.0f} s of CPU", flush=True)
    with path.open() as lines:
        for line in itertools.islice(lines, count):
            row = json.loads(line)
            yield Work(f"w{row['seed']}", f"/photos/{row['seed']}.jpg", "jpeg", row["hash"], "image", row["perceptual"],
                       durability.ASSERTION, ["xmp"], regions=tuple(row["regions"].items()))


def build(path: Path, size: int, works: list[Work], folder: Path) -> None:
    batch: list[Work] = []
    started, cpu = time.perf_counter(), time.process_time()
    with Ledger.open(path) as ledger:
        ledger.record_many(works)
        for work in codes(folder, size - len(works)):
            batch.append(work)
            if len(batch) == BATCH:
                ledger.record_many(batch)
                batch = []
        ledger.record_many(batch)
        ledger._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    print(f"built {size:,} works in {time.perf_counter() - started:.0f} s ({time.process_time() - cpu:.0f} s of CPU, "
          f"codes read from codes.jsonl), {path.stat().st_size / 1e6:.0f} MB (peak RSS of this process so far "
          f"{_peak_mib():.0f} MiB)", flush=True)


def timed(ledger: Ledger, queries: list[Essence], expected: list[str]) -> tuple[float, float, float]:
    """Median ms of a lookup in CPU time and in wall-clock time (which other processes on a
    shared machine inflate), and chance region candidates per lookup; every crop must find its work."""
    cpu, wall, chance = [], [], []
    for query, want in zip(queries, expected, strict=True):
        t0, c0 = time.perf_counter(), time.process_time()
        found = ledger.matches(query)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
        assert found and found[0].work.id == want, (want, found[:1])
        own = ledger._db.execute("SELECT n FROM works WHERE id = ?", (want,)).fetchone()[0]
        chance.append(len(set(ledger._region_candidates([code for _, code in query.probes])) - {own}))
    return 1000 * statistics.median(cpu), 1000 * statistics.median(wall), statistics.mean(chance)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/rightsmeta-region-lookup"))
    parser.add_argument("--migrate", type=Path, help="a schema-2 or -3 ledger to migrate a copy of and compare with")
    parser.add_argument("--recall", type=int, metavar="N", help="measure the keys' recall on N photos' copies")
    parser.add_argument("--record", type=int, metavar="N", help="time recording N works one by one")
    parser.add_argument("--make-codes", nargs=3, metavar=("FILE", "FIRST", "COUNT"),
                        help="compute the code lines of works FIRST to FIRST + COUNT into FILE (a share; "
                             "concatenate the shares in order into DIR/codes.jsonl)")
    args = parser.parse_args()
    if args.recall:
        recall(args.recall)
        return
    if args.make_codes:
        make_codes(Path(args.make_codes[0]), int(args.make_codes[1]), int(args.make_codes[2]))
        return
    args.dir.mkdir(parents=True, exist_ok=True)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    if args.record:
        record(args.dir, args.record)
        return
    photos = _photos()
    works, queries = [w for w, _ in photos], [q for _, q in photos]
    expected = [w.id for w in works]
    if args.migrate:
        compare(args.migrate, args.dir, queries, expected)
        return
    sizes = [int(x) for x in args.sizes.split(",")]
    for size in sizes:
        path = args.dir / f"ledger-{size}.sqlite3"
        if not path.exists():
            build(path, size, works, args.dir)
    ledgers = {size: Ledger.open(args.dir / f"ledger-{size}.sqlite3", readonly=True) for size in sizes}
    passes: dict[int, list[float]] = {size: [] for size in sizes}
    for rnd in range(args.passes):
        for size, ledger in ledgers.items():
            cpu, wall, chance = timed(ledger, queries, expected)
            passes[size].append(cpu)
            print(f"{len(ledger):>9,} works  pass {rnd}: a 10 % crop {cpu:5.2f} ms CPU, {wall:5.2f} ms wall clock; "
                  f"{chance:.1f} chance candidate works", flush=True)
    first = sizes[0]
    print(f"{'works':>9} {'median pass':>12} {'worst pass':>11} {'ratio (median)':>15} {'ratio (worst)':>14} {'ratio per pass':>16}")
    for size in sizes:
        ratios = [a / b for a, b in zip(passes[size], passes[first], strict=True)]
        print(f"{size:>9,} {statistics.median(passes[size]):9.2f} ms {max(passes[size]):8.2f} ms "
              f"{statistics.median(passes[size]) / statistics.median(passes[first]):14.2f}x "
              f"{max(passes[size]) / max(passes[first]):13.2f}x  {' '.join(f'{r:.2f}' for r in ratios)}")
    for ledger in ledgers.values():
        ledger.close()
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


def record(folder: Path, count: int) -> None:
    works = list(codes(folder, count))
    path = folder / "record.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    started, cpu = time.perf_counter(), time.process_time()
    ledger = Ledger.open(path)
    for work in works:
        ledger.record(work)
    ledger.close()
    print(f"recorded {count:,} works one by one: {1000 * (time.process_time() - cpu) / count:.3f} ms of CPU, "
          f"{1000 * (time.perf_counter() - started) / count:.3f} ms wall clock per work")


def recall(photos: int) -> None:
    from rightsmeta.fingerprint import MATCH_THRESHOLD, distance, region_pair_allowed
    from rightsmeta.ledger import (
        REGION_THRESHOLD,
        _code_array,
        _region_keys,
        _v3_probe_keys,
        _whole_band_values,
    )

    def keyed(a: str, b: str) -> bool:
        both = _region_keys(_code_array([a, b]))
        return bool(set(both[0].tolist()) & set(both[1].tolist()))

    def windowed(a: str, b: str) -> bool:
        return bool(set(_v3_probe_keys([a])) & set(_v3_probe_keys([b])))

    def banded(a: str, b: str) -> bool:  # the whole codes share a band within IMAGE_BAND_RADIUS (one bit)
        (first, _, radius), (second, _, _) = _whole_band_values("image", a), _whole_band_values("image", b)
        return any((x ^ y).bit_count() <= radius for x, y in zip(first, second, strict=True))

    pairs: dict[int, list[int]] = {}  # distance bucket -> [pairs, keyed, windowed]
    whole = [0, 0]  # copies whose whole code is 24-31 bits from their work's: all, found by the bands
    nearest, found = [], [0, 0]  # found: copies with a keyed pair, with a windowed pair
    for seed in range(photos):
        img = material.photo(seed, durability._size(seed))
        work = essence(material.jpeg(img, 90), "jpeg")
        for handling in material.IMAGE_HANDLINGS:
            copy = essence(material.handle(img, handling), "jpeg")
            if distance(work.perceptual, copy.perceptual) <= MATCH_THRESHOLD["image"]:
                if distance(work.perceptual, copy.perceptual) > 23 / 256:  # beyond the bands' guarantee
                    whole[0] += 1
                    whole[1] += banded(work.perceptual, copy.perceptual)
                continue  # found by its whole code; the regions are not searched
            near, keyed_any, windowed_any = 256, False, False
            for probe, a in copy.probes:
                for name, b in work.regions:
                    d = (int(a, 16) ^ int(b, 16)).bit_count()
                    if region_pair_allowed(probe, name) and d <= REGION_THRESHOLD * 256:
                        near = min(near, d)
                        counts = pairs.setdefault(d // 4 * 4, [0, 0, 0])
                        counts[0] += 1
                        k, w = keyed(a, b), windowed(a, b)
                        counts[1], counts[2] = counts[1] + k, counts[2] + w
                        keyed_any, windowed_any = keyed_any or k, windowed_any or w
            nearest.append(near)
            found[0], found[1] = found[0] + keyed_any, found[1] + windowed_any
    print(f"{'bits':>7} {'pairs':>6} {'32-bit keys':>12} {'24-bit windows (schema 3)':>26}")
    for bucket, (n, k, w) in sorted(pairs.items()):
        print(f"{bucket:>3}-{bucket + 3:<3} {n:>6} {100 * k / n:11.1f} % {100 * w / n:25.1f} %")
    within = sum(near < 256 for near in nearest)
    print(f"{len(nearest)} copies needed the regions, {within} of them have a pair within the threshold "
          f"(the others are left to rightsmeta/cropsearch.py); copies with a pair sharing a key: "
          f"{found[0]} (32-bit keys), {found[1]} (24-bit windows, schema 3)")
    print(f"copies whose whole code is 24-31 bits from their work's (beyond the whole-code bands' guarantee): "
          f"{whole[0]}, found by the bands: {whole[1]}")


def compare(old: Path, where: Path, queries: list[Essence], expected: list[str]) -> None:
    before, after = where / "old.sqlite3", where / "migrated.sqlite3"
    for target in (before, after):
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{old}{suffix}").exists():
                shutil.copyfile(f"{old}{suffix}", f"{target}{suffix}")
    rss = _peak_mib()
    started, cpu = time.perf_counter(), time.process_time()
    Ledger.open(after).close()
    print(f"migrated {old} ({before.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s "
          f"({time.process_time() - cpu:.0f} s of CPU); peak RSS {rss:.0f} -> {_peak_mib():.0f} MiB; "
          f"now {after.stat().st_size / 1e6:.0f} MB", flush=True)
    with Ledger.open(before, readonly=True) as old_ledger, Ledger.open(after, readonly=True) as new_ledger:
        version = old_ledger._db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        for rnd in range(3):
            for label, ledger in ((f"schema {version}", old_ledger), ("schema 4", new_ledger)):
                cpu_ms, wall, chance = timed(ledger, queries, expected)
                print(f"{len(ledger):>9,} works  {label}  pass {rnd}: a 10 % crop {cpu_ms:5.2f} ms CPU, "
                      f"{wall:5.2f} ms wall clock; {chance:.1f} chance candidate works", flush=True)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
