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
every start). Peak RSS (of the process tree of the best run) is printed beside each time.

Two more measurements, on folders of hard links to the corpus's files (same bytes, many names;
the corpus is cycled until the size is reached, so the page cache holds them all):

    python bench/verify.py bench/corpus --memory 2000,20000   # peak RSS of verify -r at each size
    python bench/verify.py bench/corpus --jobs-ratio 20000    # --jobs 2 vs --jobs 1 throughput

And one to compare two versions of rightsmeta (this one and an older source tree), alternating:

    git archive BASE | tar -x -C /tmp/base && python bench/verify.py bench/corpus --baseline /tmp/base
    python bench/verify.py bench/corpus --per-kind            # CPU per file of each kind, windows vs whole reads

The uptime load averages are printed with the numbers: the ratios mean little on a busy machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from corpus import exiftool

EXIFTOOL_TAGS = ["-XMP-plus:DataMining", "-XMP-plus:OtherConstraints", "-XMP-tdm:all", "-XMP-rightsmeta:all",
                 "-XMP-dc:Rights", "-ExifIFD:LearningOptOutIn", "-Copyright", "-ID3:all"]


def _subreaper() -> bool:
    """Adopt orphaned descendants (Linux prctl PR_SET_CHILD_SUBREAPER), so that the fork server
    of a --jobs run, and with it the workers it reaped, can be waited for and their CPU counted."""
    try:
        import ctypes

        return bool(ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


ADOPTS = _subreaper()


def run(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str, int]:
    """Wall-clock and CPU seconds (user + system) of one run, its output, and its peak RSS in KiB.

    wait4 gives the rusage of this child alone (with the children it waited for), where
    RUSAGE_CHILDREN's ru_maxrss is the largest of every child so far. The workers of --jobs are
    the fork server's children, and it outlives the command by an instant: as this process adopts
    it (``ADOPTS``), it is waited for too, and its CPU (with its workers') added.
    """
    # ``python -m`` puts the current folder first on sys.path, before PYTHONPATH: run from a checkout,
    # a --baseline tree's rightsmeta would be shadowed by the checkout's, and two runs of one tree compared.
    env = {**(os.environ if env is None else env), "PYTHONSAFEPATH": "1"}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - start
        adopted = 0.0
        while ADOPTS:
            try:
                _, _, more = os.wait4(-1, 0)
            except ChildProcessError:
                break
            adopted += more.ru_utime + more.ru_stime
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode not in (0, 1):
            sys.exit(f"{command[0]} failed: {err.read()[:500].decode(errors='replace')}")
        return elapsed, usage.ru_utime + usage.ru_stime + adopted, out.read().decode(), usage.ru_maxrss


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def idle() -> tuple[int, int]:
    """Idle and total CPU ticks of the whole machine so far (Linux), to say whether a core was free."""
    try:
        with open("/proc/stat") as fh:
            ticks = [int(v) for v in fh.readline().split()[1:]]
    except OSError:
        return 0, 0
    return ticks[3] + ticks[4], sum(ticks)


def linked(corpus: list[Path], count: int, into: Path) -> Path:
    """A folder of ``count`` hard links to the corpus's files, cycled (a copy where links fail)."""
    folder = into / f"n{count}"
    folder.mkdir()
    for i in range(count):
        source = corpus[i % len(corpus)]
        target = folder / f"{i:06d}{source.suffix}"
        try:
            os.link(source, target)
        except OSError:  # another file system
            shutil.copyfile(source, target)
    return folder


def verify_command(folder: Path, jobs: int) -> list[str]:
    return [sys.executable, "-m", "rightsmeta", "verify", "-r", "--no-ledger", "--jsonl", "--jobs", str(jobs), str(folder)]


# Runs the command and prints its peak RSS (KiB) and exit code. A small process of its own, as in
# tag.py: a child's ru_maxrss also counts the memory of the process it was spawned from (Linux
# keeps the high-water mark across exec), so spawned from this bench, which made the folder of
# links, a verify was charged the bench's own peak (21.0 and 22.6 MiB at 2,000 and 20,000 files,
# where the verify process itself peaked at 17.3 MiB both times, /proc's VmHWM).
_MEASURE = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def peak_rss(command: list[str]) -> int:
    """The peak RSS of ``command`` (KiB), its output dropped."""
    rss, code = (int(x) for x in subprocess.run([sys.executable, "-c", _MEASURE, *command], check=True,
                                                capture_output=True, text=True).stdout.split())
    if code not in (0, 1):
        sys.exit(f"{command[0]} failed (exit {code})")
    return rss


def memory(corpus: list[Path], sizes: list[int], repeat: int) -> None:
    """Peak RSS of verify -r at each size (the least of ``repeat`` runs: RSS barely moves)."""
    with tempfile.TemporaryDirectory() as tmp:
        peaks = {}
        for count in sizes:
            folder = linked(corpus, count, Path(tmp))
            peaks[count] = min(peak_rss(verify_command(folder, 1)) for _ in range(repeat))
            print(f"peak RSS, verify -r --jobs 1, {count:6d} files: {peaks[count] / 1024:7.1f} MiB")
            shutil.rmtree(folder)
        first, last = peaks[sizes[0]], peaks[sizes[-1]]
        print(f"growth {sizes[0]} -> {sizes[-1]} files: {100 * (last - first) / first:+.1f} % (goal: within 10 %)  [{load()}]")


def jobs_ratio(corpus: list[Path], count: int, repeat: int) -> None:
    """Throughput of --jobs 2 against --jobs 1 on ``count`` files, alternating, best of ``repeat``."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = linked(corpus, count, Path(tmp))
        before = load()
        start = idle()
        runs = [(run(verify_command(folder, 1)), run(verify_command(folder, 2))) for _ in range(repeat)]
        end = idle()
        free = 100 * (end[0] - start[0]) / max(1, end[1] - start[1])
        one = min(r[0][0] for r in runs)
        two = min(r[1][0] for r in runs)
        print("runs (s)          : " + "  ".join(f"{a[0]:.2f}/{b[0]:.2f}" for a, b in runs) + "  (--jobs 1/--jobs 2)")
        print(f"--jobs 1          : {one:7.2f} s  {count / one:8.0f} files/s  peak RSS {min(r[0][3] for r in runs) / 1024:.1f} MiB")
        print(f"--jobs 2          : {two:7.2f} s  {count / two:8.0f} files/s  peak RSS {min(r[1][3] for r in runs) / 1024:.1f} MiB (all processes)")
        print(f"jobs ratio        : {one / two:.2f}x the one-core throughput with 2 workers (goal: >= 1.6x)")
        cpu_and_load(runs, count, before, free)


def cpu_and_load(runs: list[tuple[tuple[float, float, str, int], tuple[float, float, str, int]]], count: int,
                 before: str, free: float) -> None:
    """The CPU per file of --jobs 1 and --jobs 2 runs (pairs of ``run``'s results) and the machine's load."""
    # CPU seconds per file, of every process (the workers' too, as this process adopts the fork
    # server): on a shared machine the honest measure of what a second worker costs.
    cpu_one, cpu_two = min(r[0][1] for r in runs), min(r[1][1] for r in runs)
    if ADOPTS:
        print(f"CPU per file      : --jobs 1 {1e3 * cpu_one / count:.3f} ms; --jobs 2 {1e3 * cpu_two / count:.3f} ms "
              f"(all processes: x{cpu_two / cpu_one:.2f}), so on 2 idle cores at best {2 * cpu_one / cpu_two:.2f}x")
    else:
        print(f"CPU               : --jobs 1 {cpu_one:.2f} s; --jobs 2 main process {cpu_two:.2f} s (workers not counted)")
    print(f"machine           : {os.cpu_count()} CPUs; {before} before, {load()} after; "
          f"{free:.0f} % of all CPU time idle during the runs (near 0: no core was free for a second worker)")


def baseline(folder: Path, tree: Path, repeat: int) -> None:
    """This rightsmeta against the one in source tree ``tree`` (e.g. ``git archive`` of an older
    commit), alternating run by run on the same files: on a shared machine, the comparison of two
    versions that a slow spell cannot bias."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "rightsmeta")], check=True)
    old_env = {**os.environ, "PYTHONPATH": str(tree)}
    command = verify_command(folder, 1)
    before = load()
    runs = [(run(command), run(command, old_env)) for _ in range(repeat)]
    if runs[0][0][2] != runs[0][1][2]:
        print("note: the two versions' reports differ")
    new_wall, old_wall = min(r[0][0] for r in runs), min(r[1][0] for r in runs)
    new_cpu, old_cpu = min(r[0][1] for r in runs), min(r[1][1] for r in runs)
    # Each pair ran back to back: the median of the pairs' ratios is the least moved by a slow spell.
    pairs = sorted(b[1] / a[1] for a, b in runs)
    print("runs (s)          : " + "  ".join(f"{a[0]:.2f}/{b[0]:.2f}" for a, b in runs) + "  (this/baseline, wall clock)")
    print("CPU (s)           : " + "  ".join(f"{a[1]:.2f}/{b[1]:.2f}" for a, b in runs) + "  (this/baseline)")
    print(f"this tree         : {new_wall:7.2f} s wall, {new_cpu:.2f} s CPU (best of {repeat})")
    print(f"baseline {str(tree)[:8]:8} : {old_wall:7.2f} s wall, {old_cpu:.2f} s CPU")
    print(f"speed-up          : x{old_wall / new_wall:.2f} wall clock, x{old_cpu / new_cpu:.2f} CPU time (bests); "
          f"median of the pairs' CPU ratios x{pairs[len(pairs) // 2]:.2f} (range x{pairs[0]:.2f}-x{pairs[-1]:.2f})")
    print(f"machine           : {os.cpu_count()} CPUs; {before} before, {load()} after")


def per_kind(files: list[Path], repeat: int) -> None:
    """CPU time of verify per file of each kind, in this process, the files read in windows
    (carriers/windows.py) and read whole, alternating; the best of ``repeat`` rounds."""
    from rightsmeta.carriers import windows
    from rightsmeta.verify import verify

    kinds: dict[str, list[str]] = {}
    for file in files:
        kinds.setdefault(file.suffix.lower(), []).append(str(file))
    size = windows.MIN_SIZE
    print(f"{'kind':6} {'files':>6} {'windows':>10} {'whole':>10}   (CPU us per file, best of {repeat}; {load()})")
    for kind, paths in sorted(kinds.items()):
        best = {"windows": float("inf"), "whole": float("inf")}
        for _ in range(repeat):
            for mode in best:
                windows.MIN_SIZE = size if mode == "windows" else 1 << 62
                start = time.process_time()
                for name in paths:
                    verify(name)
                best[mode] = min(best[mode], (time.process_time() - start) / len(paths) * 1e6)
        windows.MIN_SIZE = size
        print(f"{kind:6} {len(paths):6d} {best['windows']:10.0f} {best['whole']:10.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory", metavar="N,M", help="peak RSS of verify -r on N and on M files (hard links to the corpus)")
    parser.add_argument("--jobs-ratio", type=int, metavar="N", help="--jobs 2 vs --jobs 1 throughput on N files (hard links to the corpus)")
    parser.add_argument("--baseline", type=Path, metavar="TREE", help="compare with the rightsmeta of this source tree, alternating")
    parser.add_argument("--per-kind", action="store_true", help="CPU per file of each kind, read in windows and whole")
    args = parser.parse_args()
    files = sorted(p for p in args.folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    spec = importlib.util.find_spec("rightsmeta")
    if spec is None or spec.origin is None:
        sys.exit("rightsmeta is not installed in this Python: run .ci/setup, then use .venv/bin/python")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(spec.origin).parent)], check=True)
    if args.baseline:
        baseline(args.folder, args.baseline, args.repeat)
        return
    if args.per_kind:
        per_kind(files, args.repeat)
        return
    if args.memory or args.jobs_ratio:
        if args.memory:
            memory(files, [int(n) for n in args.memory.split(",")], args.repeat)
        if args.jobs_ratio:
            jobs_ratio(files, args.jobs_ratio, args.repeat)
        return
    ours = verify_command(args.folder, 1)
    theirs = [exiftool(), "-r", "-j", "-q", "-q", *EXIFTOOL_TAGS, str(args.folder)]
    # Alternate the two, so a slow spell of a shared machine hits both alike.
    before = load()
    runs = [(run(ours), run(theirs)) for _ in range(args.repeat)]
    t_ours, _, out_ours, _ = min(r[0] for r in runs)
    t_theirs, _, out_theirs, _ = min(r[1] for r in runs)
    cpu_ratio = min(r[1][1] for r in runs) / min(r[0][1] for r in runs)
    rss_ours = min(r[0][3] for r in runs) / 1024
    rss_theirs = min(r[1][3] for r in runs) / 1024
    rows = [json.loads(line) for line in out_ours.splitlines()]
    tagged = sum(1 for r in rows if r["status"] != "untagged")
    seen_by_exiftool = sum(1 for r in json.loads(out_theirs or "[]") if len(r) > 1)
    print(f"corpus: {len(files)} files in {args.folder}")
    if args.repeat > 1:
        print("runs (s)          : " + "  ".join(f"{a[0]:.2f}/{b[0]:.2f}" for a, b in runs) + "  (rightsmeta/exiftool, wall clock)")
    print(f"rightsmeta verify : {t_ours:7.2f} s  {len(files) / t_ours:8.0f} files/s  ({tagged} with signals)  peak RSS {rss_ours:.1f} MiB")
    print(f"exiftool          : {t_theirs:7.2f} s  {len(files) / t_theirs:8.0f} files/s  ({seen_by_exiftool} with any of the requested tags)  peak RSS {rss_theirs:.1f} MiB")
    ratio = t_theirs / t_ours
    verdict = f"{ratio:.1f}x faster than" if ratio >= 1 else f"{1 / ratio:.1f}x slower than"
    print(f"ratio             : {ratio:.2f} (rightsmeta is {verdict} ExifTool, one core each)")
    print(f"CPU time ratio    : {cpu_ratio:.2f} (best user+system seconds of each)")
    print(f"machine           : {os.cpu_count()} CPUs; {before} before, {load()} after")


if __name__ == "__main__":
    main()
