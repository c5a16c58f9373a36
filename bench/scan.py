"""rightsmeta scan: samples per second (local engine at 1 and 2 processes, Ray) and peak memory.

    python bench/scan.py                      # builds a corpus in a temporary folder, prints the table
    python bench/scan.py --shards 40 --per-shard 250 --repeat 3 --rss-shards 10,100

The corpus is WebDataset tar shards of img2dataset's layout (key.jpg + key.json + key.txt):
256x256 JPEG, PNG and WebP photos-like images, about 10 % tagged `--deny ai` with rightsmeta
and 1 % reserved only by a recorded `tdm-reservation` response header.

Throughput runs in this process through the library (`rightsmeta.datasets.scan`), filtered shards
written to --out, as the command does: the local engine at 1 and 2 processes in alternating passes
(--repeat pairs, before Ray starts), then the local engine and Ray at 2 workers alternating, so
the two sides of each ratio see the same machine load; ratios are given pass by pass. Ray's local
instance start-up (ray.init) is timed apart. Each pass is measured in steady state, from its first
shard's rows (every worker or actor is up) to its last row: wall seconds, and the CPU seconds of
this process and every descendant (the local engine's workers; Ray's raylet, GCS, agents,
workers and actors), read from /proc. What a pass spends beyond its samples at the steady rate
is its start-up (actors import Ray Data and the readers; workers fork from a preloaded server).
On a shared machine the wall clock depends on what else runs; CPU seconds per sample much less:
that is the figure to compare. Peak RSS is measured on the command
(`rightsmeta scan ... --report r.jsonl --out DIR`) with GNU time (Debian package `time`), for a corpus of
10 and of 100 shards of the same size: flat memory means the two peaks are close.
"""

from __future__ import annotations

import argparse
import io
import json
import os
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
                meta: dict[str, object] = {"url": f"https://example.com/{n}.{ext}", "key": f"{n:09d}"}
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


def _is_ray(command: bytes) -> bool:
    """A process of the Ray instance: its workers and actors (``ray::...``) and daemons (raylet,
    GCS, agents, monitors: programs under ray/). Only the program and its first argument are looked
    at: a forkserver's command line lists sys.path, which holds ray/thirdparty_files."""
    args = command.split(b"\0")[:2]
    return command.startswith(b"ray::") or any(b"site-packages/ray/" in a for a in args)


def snapshot(ray: bool) -> dict[int, float]:
    """CPU seconds (user + system) of this process and each live descendant, by process id: the
    local engine's forkserver and workers, or (``ray``) the Ray instance this process started too
    (ray.init starts its daemons as children; workers and actors are the raylet's). Ray's processes
    are left out of the local engine's figure (the idle instance is not its cost)."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    times: dict[int, float] = {}
    skip: set[int] = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                command = fh.read()
        except OSError:
            continue
        pid = int(name)
        parent[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
        if not ray and _is_ray(command):
            skip.add(pid)
    me = os.getpid()
    found = {}
    for pid, used in times.items():
        p = pid
        while p in parent and p != me:
            p = parent[p]
        if p == me and pid not in skip:
            found[pid] = used
    return found


def spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two snapshots by the processes alive at the second (those of an earlier
    pass that exit meanwhile must not count against this one; this pass's are read before they exit)."""
    return sum(now - before.get(pid, 0.0) for pid, now in after.items())


def run(paths: list[str], engine: str, jobs: int, out: str, expected: int, per_shard: int) -> dict[str, float]:
    """One pass: rows; wall seconds in all and in steady state (from the first shard's rows, when
    every worker or actor is up, to the last row); CPU seconds in all and in steady state."""
    ray = engine == "ray"
    s0, t0 = snapshot(ray), time.perf_counter()
    s1, t1 = s0, t0
    rows = 0
    for _ in scan(paths, PURPOSE, out_dir=out, engine=engine, jobs=jobs):  # type: ignore[arg-type]
        rows += 1
        if rows == per_shard:
            s1, t1 = snapshot(ray), time.perf_counter()
        if rows == expected:
            s2, t2 = snapshot(ray), time.perf_counter()  # before the pool or the actors are torn down
    end = time.perf_counter()
    cpu_all, cpu_steady = spent(s0, s2), spent(s1, s2)
    steady_rows = rows - per_shard
    return {"rows": rows, "wall": end - t0, "steady_wall": t2 - t1, "cpu": cpu_all, "steady_cpu": cpu_steady,
            "per_cpu": steady_rows / cpu_steady, "rate": steady_rows / (t2 - t1),
            # what the pass cost beyond its samples at the steady rate: worker or actor start, first shard's wait
            "fixed_cpu": cpu_all - rows * cpu_steady / steady_rows}


def autogroup() -> str:
    """Whether the scheduler shares the CPU by session (``sched_autogroup_enabled``): then, while
    other sessions are busy, the workers of one scan (all in this session) share one session's
    part of the cores, however many they are, and the wall speed-up says more about the machine
    than the scan (CPU seconds per sample do not depend on it)."""
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as fh:
            on = fh.read().strip() == "1"
    except OSError:
        return "unknown"
    return ("on: while other sessions are busy, this session's processes share one session's part of the cores"
            if on else "off")


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
    parser.add_argument("--repeat", type=int, default=3, help="alternating passes of each engine at 2 workers")
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
              f"({sum(os.path.getsize(p) for p in corpus) / 1e6:.1f} MB)")
        print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")

        def show(label: str, r: dict[str, float]) -> None:
            print(f"{label}: steady {r['per_cpu']:5.0f} samples per CPU-second ({r['steady_cpu']:.2f} s), "
                  f"{r['rate']:5.0f} samples/s wall; whole pass {r['cpu']:.2f} CPU-s, {r['wall']:.2f} s wall, "
                  f"of which start-up {r['fixed_cpu']:.2f} CPU-s", flush=True)

        def measure(engine: str, jobs: int, label: str, out: str) -> dict[str, float]:
            # The last pass's filtered shards (and the corpus, before the first) are written back
            # now, not during this pass's fsyncs: each pass starts from the same page-cache state.
            os.sync()
            r = run(corpus, engine, jobs, out, samples, args.per_shard)
            show(label, r)
            return r

        def spread(values: list[float]) -> str:
            ordered = sorted(values)
            return f"x{ordered[len(ordered) // 2]:.2f} (x{ordered[0]:.2f}-x{ordered[-1]:.2f})"

        # 1 and 2 processes in alternating pairs, before any Ray instance runs: a pass measured
        # alone, first, on a quieter machine than the later ones, is no baseline for them.
        ones: list[dict[str, float]] = []
        twos: list[dict[str, float]] = []
        for n in range(args.repeat):
            ones.append(measure("local", 1, "local 1 process  ", str(root / f"out1-{n}")))
            twos.append(measure("local", 2, "local 2 processes", str(root / f"out2-{n}")))
        print(f"local 1 -> 2 processes, pass by pass: wall speed-up {spread([b['rate'] / a['rate'] for a, b in zip(ones, twos, strict=True)])}, "
              f"CPU per sample {spread([a['per_cpu'] / b['per_cpu'] for a, b in zip(ones, twos, strict=True)])} "
              "(median (range); the wall speed-up needs 2 free cores)", flush=True)
        print(f"kernel autogroup: {autogroup()}", flush=True)
        if not args.no_ray:
            import logging

            import ray

            start = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)

            import ray.data  # noqa: F401  # configures its logger, whose console handler is quieted here

            for handler in logging.getLogger("ray.data").handlers:  # its per-pass INFO lines amid the table
                handler.setLevel(logging.WARNING)
            print(f"ray.init (a local instance, 2 CPUs): {time.perf_counter() - start:.1f} s wall, timed apart", flush=True)
            run(paths[:2], "ray", 2, str(root / "warm"), 2 * args.per_shard, args.per_shard)  # Ray Data's own actors start once
            local: list[dict[str, float]] = []
            rays: list[dict[str, float]] = []
            for n in range(args.repeat):
                local.append(measure("local", 2, "local 2 processes", str(root / f"out-local-{n}")))
                rays.append(measure("ray", 2, "ray   2 actors   ", str(root / f"out-ray-{n}")))
            ray.shutdown()
            print("ray vs local at 2 workers, steady CPU per sample, pass by pass: "
                  + spread([lr["per_cpu"] / rr["per_cpu"] for lr, rr in zip(local, rays, strict=True)]) + " (>1: Ray costs more)")
            print(f"ray start-up apart: actor pool {min(r['fixed_cpu'] for r in rays):.2f}-{max(r['fixed_cpu'] for r in rays):.2f} CPU-s per pass "
                  f"(local pool {min(r['fixed_cpu'] for r in local):.2f}-{max(r['fixed_cpu'] for r in local):.2f})")
        rss = {}
        for count in counts:
            rss[count] = peak_rss(paths[:count], str(root / f"rss-out-{count}"), str(root / f"rss-{count}.jsonl"))
        line = ", ".join(f"{c} shards {rss[c] / 2**20:.0f} MiB" for c in counts)
        print(f"peak RSS (scan --out --report, 1 process): {line}; ratio x{rss[counts[-1]] / rss[counts[0]]:.2f}")
        print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
