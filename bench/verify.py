"""rightsmeta verify against ExifTool reading the same tags, one core each, side by side.

    python bench/corpus.py bench/corpus --files 2000
    python bench/verify.py bench/corpus            # prints seconds, files/s and the ratio

Both run as one batch process over the whole folder, as a user would run them, start-up
included: `rightsmeta verify -r --no-ledger --jsonl --jobs 1` and `exiftool -r -j` asking for
the rights tags rightsmeta reads (XMP plus/tdm/rightsmeta, Exif LearningOptOutIn, ID3/Vorbis
copyright). Each is run `--repeat` times, the two alternating; the best time of each counts (the least
disturbed run; the first run of a cold file cache is much slower for both).

rightsmeta runs as installed: its modules' bytecode is compiled first, as `pip install` does
(an editable install under PYTHONDONTWRITEBYTECODE=1 would otherwise recompile every module at
every start).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from corpus import exiftool

EXIFTOOL_TAGS = ["-XMP-plus:DataMining", "-XMP-plus:OtherConstraints", "-XMP-tdm:all", "-XMP-rightsmeta:all",
                 "-XMP-dc:Rights", "-ExifIFD:LearningOptOutIn", "-Copyright", "-ID3:all"]


def timed(command: list[str]) -> tuple[float, float, str]:
    """Wall-clock and CPU seconds (user + system) of one run, and its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        sys.exit(f"{command[0]} failed: {done.stderr[:500]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    files = [p for p in args.folder.rglob("*") if p.is_file() and not p.name.startswith(".")]
    spec = importlib.util.find_spec("rightsmeta")
    if spec is None or spec.origin is None:
        sys.exit("rightsmeta is not installed in this Python: run .ci/setup, then use .venv/bin/python")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(spec.origin).parent)], check=True)
    ours = [sys.executable, "-m", "rightsmeta", "verify", "-r", "--no-ledger", "--jsonl", "--jobs", "1", str(args.folder)]
    theirs = [exiftool(), "-r", "-j", "-q", "-q", *EXIFTOOL_TAGS, str(args.folder)]
    # Alternate the two, so a slow spell of a shared machine hits both alike.
    runs = [(timed(ours), timed(theirs)) for _ in range(args.repeat)]
    t_ours, _, out_ours = min(r[0] for r in runs)
    t_theirs, _, out_theirs = min(r[1] for r in runs)
    cpu_ratio = min(r[1][1] for r in runs) / min(r[0][1] for r in runs)
    rows = [json.loads(line) for line in out_ours.splitlines()]
    tagged = sum(1 for r in rows if r["status"] != "untagged")
    seen_by_exiftool = sum(1 for r in json.loads(out_theirs or "[]") if len(r) > 1)
    print(f"corpus: {len(files)} files in {args.folder}")
    if args.repeat > 1:
        print("runs (s)          : " + "  ".join(f"{a[0]:.2f}/{b[0]:.2f}" for a, b in runs) + "  (rightsmeta/exiftool, wall clock)")
    print(f"rightsmeta verify : {t_ours:7.2f} s  {len(files) / t_ours:8.0f} files/s  ({tagged} with signals)")
    print(f"exiftool          : {t_theirs:7.2f} s  {len(files) / t_theirs:8.0f} files/s  ({seen_by_exiftool} with any of the requested tags)")
    ratio = t_theirs / t_ours
    verdict = f"{ratio:.1f}x faster than" if ratio >= 1 else f"{1 / ratio:.1f}x slower than"
    print(f"ratio             : {ratio:.2f} (rightsmeta is {verdict} ExifTool, one core each)")
    print(f"CPU time ratio    : {cpu_ratio:.2f} (best user+system seconds of each)")


if __name__ == "__main__":
    main()
