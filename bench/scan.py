"""rightsmeta scan: samples per second (local engine at 1 and 2 processes, Ray) and peak memory.

    python bench/scan.py                      # builds a corpus in a temporary folder, prints the table
    python bench/scan.py --shards 20 --per-shard 100 --rss-shards 10,100

The corpus is WebDataset tar shards of img2dataset's layout (key.jpg + key.json + key.txt):
256x256 JPEG, PNG and WebP photos-like images, about 10 % tagged `--deny ai` with rightsmeta
and 1 % reserved only by a recorded `tdm-reservation` response header.

Throughput runs in this process through the library (`rightsmeta.datasets.scan`), filtered shards
written to --out, as the command does. Ray's local instance start-up is timed apart; its
steady-state rate counts from its first row (the first shard done) to its last; the CPU time
of every process of the instance is counted, read from /proc (wall clock on a shared machine
depends on what else runs; CPU seconds per sample much less). Peak RSS is measured on the command
(`rightsmeta scan ... --report r.jsonl --out DIR`) with GNU time (Debian package `time`), for a corpus of
10 and of 100 shards of the same size: flat memory means the two peaks are close.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import rightsmeta  # noqa: E402
from rightsmeta.datasets import scan  # noqa: E402

PURPOSE = "genai-training"


def images() -> list[tuple[str, bytes]]:
    """A handful of distinct images per format, untagged and tagged, reused across samples."""
    out = []
    for seed in range(4):
        img = Image.new("RGB", (256, 256))
        img.putdata([((x * 3 + seed * 40) % 256, (y * 5 + x) % 256, (x * y + seed) % 256) for y in range(256) for x in range(256)])
        for fmt, ext in (("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp")):
            buf = io.BytesIO()
            img.save(buf, format=fmt, quality=85)
            out.append((ext, buf.getvalue()))
    return out


def build(root: Path, shards: int, per_shard: int) -> list[str]:
    plain = images()
    denied = [(ext, rightsmeta.tag_bytes(data, rightsmeta.Assertion.build(deny=["ai"]))) for ext, data in plain]
    paths = []
    n = 0
    for s in range(shards):
        path = root / f"shard-{s:06d}.tar"
        with tarfile.open(path, "w") as tar:
            for _ in range(per_shard):
                ext, data = (denied if n % 10 == 3 else plain)[n % len(plain)]
                meta = {"url": f"https://example.com/{n}.{ext}", "key": f"{n:09d}"}
                if n % 100 == 57:
                    meta["headers"] = {"tdm-reservation": "1"}
                for name, blob in ((f"{n:09d}.{ext}", data), (f"{n:09d}.json", json.dumps(meta).encode()),
                                   (f"{n:09d}.txt", b"a photo")):
                    info = tarfile.TarInfo(name)
                    info.size = len(blob)
                    tar.addfile(info, io.BytesIO(blob))
                n += 1
        paths.append(str(path))
    return paths


def cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of every live descendant of ``root`` (Linux /proc)."""
    parent: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(name)] = int(fields[1])
        times[int(name)] = (int(fields[11]) + int(fields[12])) / tick
    total = 0.0
    for pid in times:
        p = pid
        while p in parent and p != root:
            p = parent[p]
        if p == root and pid != root:
            total += times[pid]
    return total


def ray_cpu() -> dict[int, float]:
    """CPU seconds of each live process of this machine's Ray instance (raylet, GCS, agents,
    workers and actors), by process id."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                command = fh.read()
            if not (command.startswith(b"ray::") or b"site-packages/ray/" in command):
                continue
            with open(f"/proc/{name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(name)] = (int(fields[11]) + int(fields[12])) / tick
    return found


def ray_cpu_since(before: dict[int, float]) -> float:
    """CPU spent since ``before`` by the processes alive now (the actors of an earlier pass exit
    during the next one: their CPU must not count against it)."""
    return sum(now - before.get(pid, 0.0) for pid, now in ray_cpu().items())


def run_local(paths: list[str], jobs: int, out: str, expected: int) -> tuple[int, float, float]:
    """Rows, wall seconds, CPU seconds of this process and its workers (read while they still live)."""
    start, cpu0 = time.perf_counter(), cpu()
    rows, workers = 0, 0.0
    for _ in scan(paths, PURPOSE, out_dir=out, jobs=jobs):
        rows += 1
        if rows == expected and jobs > 1:
            workers = tree_cpu(os.getpid())  # the pool is torn down once the last row is taken
    return rows, time.perf_counter() - start, cpu() - cpu0 + workers


def _ray_pass(paths: list[str], jobs: int, out: str, expected: int) -> tuple[int, float, float, float, float]:
    """Rows, seconds (actor start included), first-row and last-row times, CPU seconds of every
    process of the Ray instance and the driver, read at the last row."""
    before, cpu0 = ray_cpu(), cpu()
    begin = time.perf_counter()
    first = last = begin
    rows = 0
    used = 0.0
    for _ in scan(paths, PURPOSE, out_dir=out, engine="ray", jobs=jobs):
        rows += 1
        if rows == 1:
            first = time.perf_counter()
        if rows == expected:
            last = time.perf_counter()
            used = ray_cpu_since(before) + cpu() - cpu0
    return rows, time.perf_counter() - begin, first, last, used


def run_ray(paths: list[str], jobs: int, out: str, expected: int) -> dict[str, float]:
    """Ray's start-up, a warm-up pass over two shards (Ray Data starts its stats and autoscaling
    actors once per instance), then the measured pass over every shard (a new actor pool)."""
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=jobs, include_dashboard=False, log_to_driver=False, logging_level="error")
    startup = time.perf_counter() - start
    try:
        _ray_pass(paths[:2], jobs, out + "-warm", expected * 2 // len(paths))
        rows, whole, first, last, used = _ray_pass(paths, jobs, out, expected)
    finally:
        ray.shutdown()
    return {"rows": rows, "startup": startup, "whole": whole, "cpu": used,
            "steady": (rows - expected // len(paths)) / max(last - first, 1e-9)}


def peak_rss(paths: list[str], out: str, report: str) -> int:
    """Peak RSS of the command, from GNU time's %M: a child forked from this (large) process would
    report this process's RSS at fork time as its own peak, so a small process starts it."""
    command = ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "rightsmeta", "scan", *paths,
               "--purpose", PURPOSE, "--out", out, "--report", report]
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    if done.returncode not in (0, 1):
        raise SystemExit(f"scan failed: {done.stderr[-2000:]}")
    return int(done.stderr.strip().splitlines()[-1]) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, default=20)
    parser.add_argument("--per-shard", type=int, default=100)
    parser.add_argument("--rss-shards", default="10,100", help="corpus sizes (in shards) whose peak RSS is compared")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rightsmeta-bench-scan-") as tmp:
        root = Path(tmp)
        counts = [int(c) for c in args.rss_shards.split(",")]
        paths = build(root, max(args.shards, *counts), args.per_shard)
        corpus = paths[: args.shards]
        samples = args.shards * args.per_shard
        print(f"corpus: {args.shards} shards x {args.per_shard} samples = {samples} samples "
              f"({sum(os.path.getsize(p) for p in corpus) / 1e6:.1f} MB); load average {os.getloadavg()[0]:.1f}")

        one = run_local(corpus, 1, str(root / "out1"), samples)
        two = run_local(corpus, 2, str(root / "out2"), samples)
        per_core = one[0] / one[2]
        print(f"local  1 process  : {one[0] / one[1]:7.0f} samples/s wall ({one[1]:.2f} s), "
              f"{per_core:.0f} samples per CPU-second = {per_core * 3600 / 1e6:.2f} M samples per core-hour")
        print(f"local  2 processes: {two[0] / two[1]:7.0f} samples/s wall ({two[1]:.2f} s): wall speed-up x{one[1] / two[1]:.2f}; "
              f"CPU {two[2]:.2f} s vs {one[2]:.2f} s, so the parallel work costs x{two[2] / one[2]:.2f} the serial work "
              f"(speed-up bound on 2 free cores x{2 * one[2] / two[2]:.2f})")
        if not args.no_ray:
            r = run_ray(corpus, 2, str(root / "outr"), samples)
            local_rate = two[0] / two[1]
            print(f"ray    2 CPUs     : {r['rows'] / r['whole']:7.0f} samples/s wall ({r['whole']:.2f} s incl. actor start), "
                  f"steady state {r['steady']:.0f} samples/s = x{r['steady'] / local_rate:.2f} of local at 2 processes; "
                  f"ray.init {r['startup']:.1f} s apart")
            print(f"ray    CPU        : {r['cpu']:.2f} s for the pass (actors, raylet, GCS, agents, driver) = "
                  f"x{r['cpu'] / two[2]:.2f} local's at 2 processes = {r['rows'] / r['cpu']:.0f} samples per CPU-second")
        rss = {}
        for count in counts:
            rss[count] = peak_rss(paths[:count], str(root / f"rss-out-{count}"), str(root / f"rss-{count}.jsonl"))
        line = ", ".join(f"{c} shards {rss[c] / 2**20:.0f} MiB" for c in counts)
        print(f"peak RSS (scan --out --report, 1 process): {line}; ratio x{rss[counts[-1]] / rss[counts[0]]:.2f}")


if __name__ == "__main__":
    main()
