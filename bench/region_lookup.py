"""Does a region lookup cost the same at 1,000 and 100,000 works? And what does migrating cost?

    python bench/region_lookup.py --sizes 1000,10000,100000 --dir /tmp/rl
    python bench/region_lookup.py --migrate OLD.sqlite3 --dir /tmp/rl

Ledgers are built at DIR/ledger-N.sqlite3 if missing: 20 camera-like photos and fillers shaped
like them (as many region codes) with random bits, as bench/durability.py; the time and peak RSS
of building each are printed. Then the 20 photos' 10 % crops are looked up (``Ledger.matches``,
the essence computed beforehand) in three passes, and the median per pass printed with the
region candidates read per lookup and the ratio to the smallest ledger.

``--recall N`` measures what the keys must find, on N photos x every handling of
bench/durability.py: of the (probe, region) pairs of a copy and its own work within
REGION_THRESHOLD, the share that shares a key with the probe, by distance (schema 2's rule, two
equal 16-bit bands, beside it), and the nearest pair of each copy that needs the regions.

``--migrate`` takes a ledger of schema version 2 (as rightsmeta before version 3 built it, e.g.
this script's ancestor at git 0240e80: ``python bench/region_lookup.py v2.sqlite3 100000``): its
copy is migrated (time and peak RSS printed), then the crops are timed in alternating passes
against the old copy opened read-only (searched through its 16-bit bands) and the migrated one,
which must find the same works. The machine is shared: read ``uptime`` (printed) with the times.
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests"), str(HERE)]

import durability  # noqa: E402
import material  # noqa: E402

from rightsmeta.fingerprint import MATCH_THRESHOLD, Essence, distance, essence, region_pair_allowed  # noqa: E402
from rightsmeta.ledger import REGION_THRESHOLD, Ledger, Work, _bands, _probe_keys, _region_keys  # noqa: E402


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


def build(path: Path, size: int, works: list[Work]) -> None:
    started = time.perf_counter()
    with Ledger.open(path) as ledger:
        ledger.record_many(works)
        rng, count, batch = random.Random(7), len(works), []
        while count < size:
            batch.append(durability._filler(works[count % len(works)], count, rng))
            count += 1
            if len(batch) >= 5000:
                ledger.record_many(batch)
                batch = []
        ledger.record_many(batch)
        ledger._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    print(f"built {size:,} works in {time.perf_counter() - started:.0f} s, {path.stat().st_size / 1e6:.0f} MB "
          f"(peak RSS of this process so far {_peak_mib():.0f} MiB)", flush=True)


def timed(ledger: Ledger, queries: list[Essence], expected: list[str]) -> tuple[float, float, float]:
    """Median ms of a lookup in CPU time and in wall-clock time (which other processes on a
    shared machine inflate), and region candidates per lookup; every crop must find its work."""
    cpu, wall, candidates = [], [], []
    for query, want in zip(queries, expected, strict=True):
        t0, c0 = time.perf_counter(), time.process_time()
        found = ledger.matches(query)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
        assert found and found[0].work.id == want, (want, found[:1])
        candidates.append(len(ledger._region_candidates([code for _, code in query.probes])))
    return 1000 * statistics.median(cpu), 1000 * statistics.median(wall), statistics.mean(candidates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/rightsmeta-region-lookup"))
    parser.add_argument("--migrate", type=Path, help="a schema-2 ledger to migrate a copy of and compare with")
    parser.add_argument("--recall", type=int, metavar="N", help="measure the keys' recall on N photos' copies")
    args = parser.parse_args()
    if args.recall:
        recall(args.recall)
        return
    args.dir.mkdir(parents=True, exist_ok=True)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    photos = _photos()
    works, queries = [w for w, _ in photos], [q for _, q in photos]
    expected = [w.id for w in works]
    if args.migrate:
        compare(args.migrate, args.dir, queries, expected)
        return
    first: float | None = None
    for size in [int(x) for x in args.sizes.split(",")]:
        path = args.dir / f"ledger-{size}.sqlite3"
        if not path.exists():
            build(path, size, works)
        with Ledger.open(path) as ledger:
            for rnd in range(3):
                cpu, wall, candidates = timed(ledger, queries, expected)
                first = first or cpu
                print(f"{len(ledger):>9,} works  pass {rnd}: a 10 % crop {cpu:5.2f} ms CPU ({cpu / first:.2f}x the first), "
                      f"{wall:5.2f} ms wall clock; {candidates:.1f} region candidates", flush=True)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


def recall(photos: int) -> None:
    def keyed(a: str, b: str) -> bool:
        return bool(set(_probe_keys([a])) & set(_region_keys(b)))

    def banded(a: str, b: str) -> bool:
        return sum(x == y for x, y in zip(_bands(a), _bands(b), strict=True)) >= 2

    pairs: dict[int, list[int]] = {}  # distance bucket -> [pairs, keyed, banded]
    nearest, found = [], [0, 0]  # found: copies with a keyed pair, with a banded pair
    for seed in range(photos):
        img = material.photo(seed, durability._size(seed))
        work = essence(material.jpeg(img, 90), "jpeg")
        for handling in material.IMAGE_HANDLINGS:
            copy = essence(material.handle(img, handling), "jpeg")
            if distance(work.perceptual, copy.perceptual) <= MATCH_THRESHOLD["image"]:
                continue  # found by its whole code; the regions are not searched
            near, keyed_any, banded_any = 256, False, False
            for probe, a in copy.probes:
                for name, b in work.regions:
                    d = (int(a, 16) ^ int(b, 16)).bit_count()
                    if region_pair_allowed(probe, name) and d <= REGION_THRESHOLD * 256:
                        near = min(near, d)
                        counts = pairs.setdefault(d // 4 * 4, [0, 0, 0])
                        counts[0] += 1
                        k, b2 = keyed(a, b), banded(a, b)
                        counts[1], counts[2] = counts[1] + k, counts[2] + b2
                        keyed_any, banded_any = keyed_any or k, banded_any or b2
            nearest.append(near)
            found[0], found[1] = found[0] + keyed_any, found[1] + banded_any
    print(f"{'bits':>7} {'pairs':>6} {'24-bit windows':>12} {'16-bit bands':>13}")
    for bucket, (n, k, b) in sorted(pairs.items()):
        print(f"{bucket:>3}-{bucket + 3:<3} {n:>6} {100 * k / n:11.1f} % {100 * b / n:12.1f} %")
    print(f"{len(nearest)} copies needed the regions; their nearest pair: at most {max(nearest)} bits "
          f"(256 = none within the threshold: {nearest.count(256)}); copies with a pair sharing a key: "
          f"{found[0]} (24-bit windows), {found[1]} (16-bit bands)")


def compare(old: Path, where: Path, queries: list[Essence], expected: list[str]) -> None:
    v2, v3 = where / "v2.sqlite3", where / "v3.sqlite3"
    for target in (v2, v3):
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{old}{suffix}").exists():
                shutil.copyfile(f"{old}{suffix}", f"{target}{suffix}")
    before = _peak_mib()
    started = time.perf_counter()
    Ledger.open(v3).close()
    print(f"migrated {old} ({v2.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s; "
          f"peak RSS {before:.0f} -> {_peak_mib():.0f} MiB; now {v3.stat().st_size / 1e6:.0f} MB", flush=True)
    with Ledger.open(v2, readonly=True) as old_ledger, Ledger.open(v3, readonly=True) as new_ledger:
        for rnd in range(3):
            for label, ledger in (("schema 2 (16-bit bands)", old_ledger), ("schema 3 (24-bit windows)", new_ledger)):
                cpu, wall, candidates = timed(ledger, queries, expected)
                print(f"{len(ledger):>9,} works  {label}  pass {rnd}: a 10 % crop {cpu:5.2f} ms CPU, "
                      f"{wall:5.2f} ms wall clock; {candidates:.1f} region candidates", flush=True)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
