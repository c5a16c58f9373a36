"""Why does a region lookup cost more as the ledger grows? Time it with the SQLite cache settings.

    python bench/region_lookup.py /tmp/l1k.sqlite3 1000 "" "PRAGMA cache_size=-1048576" "PRAGMA mmap_size=2147483648"
    python bench/region_lookup.py /tmp/l100k.sqlite3 100000 "" "PRAGMA cache_size=-1048576"

Builds the ledger at PATH if missing (20 camera-like photos and fillers shaped like them with
random codes, as bench/durability.py), then for each PRAGMA (empty: the defaults) times the
20 photos' 10 % crops three times over (later passes find every page cached if the cache holds
them) and prints the median, and the rows per 16-bit band value of the region index.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests"), str(HERE)]

import durability  # noqa: E402
import material  # noqa: E402

from rightsmeta.fingerprint import essence  # noqa: E402
from rightsmeta.ledger import Ledger, Work  # noqa: E402


def main() -> None:
    path, size, pragmas = sys.argv[1], int(sys.argv[2]), sys.argv[3:] or [""]
    build = not os.path.exists(path)
    works = []
    for seed in range(20):
        img = material.photo(seed, durability._size(seed))
        data = material.jpeg(img, 90)
        works.append((Work.create(f"p{seed}.jpg", "jpeg", essence(data, "jpeg"), durability.ASSERTION, id=f"photo-{seed}"), img))
    if build:
        with Ledger.open(path) as ledger:
            ledger.record_many([w for w, _ in works])
            rng, count, batch = random.Random(7), len(works), []
            while count < size:
                batch.append(durability._filler(works[count % len(works)][0], count, rng))
                count += 1
                if len(batch) >= 5000:
                    ledger.record_many(batch)
                    batch = []
            ledger.record_many(batch)
            ledger._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    queries = [essence(material.handle(img, "crop 10 %/side"), "jpeg") for _, img in works]
    for pragma in pragmas:
        with Ledger.open(path) as ledger:
            if pragma:
                ledger._db.execute(pragma)
            rows = ledger._db.execute("SELECT COUNT(*) FROM region_bands WHERE band = 3").fetchone()[0] / 65536
            for rnd in range(3):
                times = []
                for query in queries:
                    t0 = time.perf_counter()
                    ledger.matches(query)
                    times.append(time.perf_counter() - t0)
                print(f"{len(ledger):>7} works  {pragma or 'defaults':32} pass {rnd}: {1000 * statistics.median(times):5.1f} ms"
                      f"  ({rows:.2f} rows per band value, {os.path.getsize(path) // 10**6} MB)")


if __name__ == "__main__":
    main()
