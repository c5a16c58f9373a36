"""A bounded load run of `rightsmeta serve` on loopback: verify requests of mixed real files.

    python bench/serve.py                               # 2,000 requests, 16 at a time, 2 workers
    python bench/serve.py --requests 500 --concurrency 8 --workers 1

Starts the server as a subprocess on a free 127.0.0.1 port with a fresh ledger, makes a small
mix of real files (Pillow JPEG/PNG/WebP; tagged, tagged and signed, stripped copies of tagged
works, untagged), then POSTs them to /v1/verify round-robin from `--concurrency` clients.
Prints errors (any answer but 200), p50/p99 latency, requests/s, and the resident memory of
the server and its worker processes at the start and at the end (RSS flat = no leak per request).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(REPO / "bench"))

from servers import in_threads, rss_kib, serving  # noqa: E402

import rightsmeta  # noqa: E402
from rightsmeta import Assertion, keys  # noqa: E402


def files(identity: keys.Identity) -> list[bytes]:
    """Twelve real files: tagged, signed, stripped (no metadata left; the ledger knows them) and untagged."""
    out: list[bytes] = []
    deny = Assertion.build(deny=["ai"], copyright="(c) 2026 Bench")
    for n, fmt in enumerate(["JPEG", "PNG", "WEBP"]):
        img = Image.effect_noise((640, 480), 40 + n * 10).convert("RGB")
        raw = io.BytesIO()
        img.save(raw, fmt, quality=85) if fmt != "PNG" else img.save(raw, fmt)
        data = raw.getvalue()
        out += [rightsmeta.tag_bytes(data, deny), rightsmeta.tag_bytes(data, deny, identity=identity), data]
        stripped = io.BytesIO()
        Image.open(io.BytesIO(data)).save(stripped, fmt, quality=85) if fmt != "PNG" else Image.open(io.BytesIO(data)).save(stripped, fmt)
        out.append(stripped.getvalue())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="rightsmeta-bench-serve-"))
    identity = keys.make_identity("Bench")
    corpus = files(identity)
    with serving("--ledger", str(folder / "ledger.sqlite3"), "--workers", str(args.workers),
                 "--backlog", str(args.concurrency)) as (url, server):
        # Record the works the stripped copies belong to, so verify does decode and match them.
        from rightsmeta.fingerprint import essence
        from rightsmeta.ledger import Ledger, Work

        with Ledger.open(folder / "ledger.sqlite3") as db:
            for n in range(2, len(corpus), 4):
                fmt = rightsmeta.read(corpus[n]).format or ""
                db.record(Work.create(f"bench/{n}", fmt, essence(corpus[n], fmt), Assertion.build(deny=["ai"]).for_work()))
        with httpx.Client(base_url=url) as warm:  # one pass, so worker start-up is not timed
            for data in corpus:
                warm.post("/v1/verify", content=data)
        rss_start = rss_kib(server.pid)
        latencies: list[float] = []
        errors: list[int] = []
        lock = threading.Lock()

        def verify(http: httpx.Client, n: int) -> None:
            start = time.perf_counter()
            response = http.post("/v1/verify", content=corpus[n % len(corpus)])
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                if response.status_code != 200:
                    errors.append(response.status_code)

        start = time.perf_counter()
        in_threads(url, range(args.requests), args.concurrency, verify, timeout=60)
        wall = time.perf_counter() - start
        rss_end = rss_kib(server.pid)
    cuts = statistics.quantiles(latencies, n=100)
    print(f"requests      {len(latencies)} ({args.concurrency} concurrent, {args.workers} workers, {len(corpus)} distinct files)")
    print(f"errors        {len(errors)}" + (f" (statuses {sorted(set(errors))})" if errors else ""))
    print(f"latency p50   {cuts[49] * 1000:.1f} ms")
    print(f"latency p99   {cuts[98] * 1000:.1f} ms")
    print(f"throughput    {len(latencies) / wall:.0f} requests/s")
    print(f"RSS start     {rss_start / 1024:.1f} MiB (server + workers)")
    print(f"RSS end       {rss_end / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
