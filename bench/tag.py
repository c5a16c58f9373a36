"""rightsmeta tag against ExifTool writing the same fields into copies of the same files.

    python bench/corpus.py bench/realistic --mix realistic --files 1320
    python bench/tag.py bench/realistic                 # prints seconds, files/s, ratios, peak RSS

Each run gets a fresh copy of the files (the copying is not timed), so every tool writes into
untagged originals of the same bytes. Three runs per round, each in every place in turn over the
rounds (a round's first run was seen up to 20 % slower), best of --repeat:

  rightsmeta tag -r --deny ai --no-sign --no-ledger      (the fast path: no essence decoded)
  exiftool -overwrite_original -XMP-plus:DataMining#=DMI-PROHIBITED-AIMLTRAINING
           -XMP-plus:OtherConstraints=... -XMP-tdm:Reservation=1   (what tag --deny ai puts there)
  rightsmeta tag -r --deny ai --no-sign --ledger FRESH   (every file recorded: its essence hashed)

on the kinds both can write (JPEG, PNG, WebP, TIFF, PDF; --per-kind of each), start-up
included, as a user would run them. Audio (MP3, FLAC, WAV, M4A), which ExifTool 13 does not
write or writes only as MP4, is tagged by rightsmeta alone and reported in files/s. Peak RSS
(wait4, the process's own) is printed with each.

It benchmarks whatever writer the installed rightsmeta has: re-run it after writer changes.

    python bench/tag.py bench/realistic --memory 2000,20000   # peak RSS of tag -r at each size
    git archive BASE | tar -x -C /tmp/base && python bench/tag.py bench/realistic --baseline /tmp/base --no-ledger-run
                                                              # also the rightsmeta of that tree, in each round
                                                              # (without --no-ledger-run: its ledger run too)

tags folders of N and M hard links to a few small images made here (each tag replaces the link
with a new file, so the sources stay untagged and the disk sees N small writes, not N photos):
the peak RSS must not grow with the number of files (goal: within 10 %).

    python bench/tag.py bench/realistic --by-kind    # the three runs on each kind alone: where the ledger costs

times the same three commands on each kind's files alone (start-up included in each: about a fifth
of a 100-file run), and prints each kind's ratios to ExifTool, wall and CPU.

    python bench/tag.py bench/realistic --jobs-ratio 2000    # tag --jobs 2 vs --jobs 1, with a ledger

tags a folder of N hard links to the corpus's files (every kind tag writes, cycled) with
`tag -r --deny ai --no-sign --ledger FRESH --jobs 1` and `--jobs 2`, alternating, best of
--repeat, and prints the wall-clock ratio and the CPU per file of all processes (the workers'
too), with the machine's load: on a shared machine the ratio alone means little.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from corpus import TDM_CONFIG, exiftool
from verify import cpu_and_load, idle, linked, load, run

Run = tuple[float, float, str, int]  # verify.run: wall and CPU seconds, output, peak RSS (KiB)
COMPARED = (".jpg", ".png", ".webp", ".tif", ".pdf")
AUDIO = (".mp3", ".flac", ".wav", ".m4a")
# The sentence rightsmeta writes for --deny ai into plus:OtherConstraints (and xmpRights:UsageTerms).
SENTENCE = ("Data mining and AI permissions: Not allowed: AI/ML training, generative AI training, AI inference "
            "(use as model input). Not specified: text and data mining, search engine indexing.")


def pick(folder: Path, suffixes: tuple[str, ...], per_kind: int) -> list[Path]:
    """Up to ``per_kind`` untagged-by-us files of each suffix, in name order."""
    chosen: list[Path] = []
    for suffix in suffixes:
        chosen += sorted(folder.rglob(f"*{suffix}"))[:per_kind]
    return chosen


def fresh(files: list[Path], into: Path) -> Path:
    if into.exists():
        shutil.rmtree(into)
    into.mkdir(parents=True)
    for i, source in enumerate(files):
        shutil.copyfile(source, into / f"{i:06d}{source.suffix}")
    os.sync()  # so one run's dirty pages are not written back during the next one's timing
    return into


def ours(folder: Path, ledger: Path | None, jobs: int = 1) -> list[str]:
    where = ["--ledger", str(ledger)] if ledger else ["--no-ledger"]
    return [sys.executable, "-m", "rightsmeta", "tag", "-r", "--deny", "ai", "--no-sign", *where, "--jobs", str(jobs),
            "--json", str(folder)]


def theirs(folder: Path, config: Path) -> list[str]:
    return [exiftool(), "-config", str(config), "-q", "-q", "-r", "-overwrite_original",
            "-XMP-plus:DataMining#=http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING",
            f"-XMP-plus:OtherConstraints={SENTENCE}", "-XMP-tdm:Reservation=1", str(folder)]


def tagged(out: str, expected: int) -> None:
    """Fail loudly when a run did not tag every file: a fast run that wrote nothing proves nothing."""
    results = json.loads(out)
    done = sum(1 for r in results if r["status"] == "tagged")
    if done != expected:
        failed = [f"{r['path']}: {r.get('reason')}" for r in results if r["status"] != "tagged"][:5]
        sys.exit(f"rightsmeta tagged {done} of {expected} files: {failed}")


def rotated(names: list[str], turn: int) -> list[str]:
    """``names`` with the ``turn``-th first: over len(names) rounds, each runs in every place once."""
    turn %= max(len(names), 1)
    return names[turn:] + names[:turn]


def paired(old: list[Run], new: list[Run]) -> str:
    """The medians of the rounds' ratios, baseline over this tree: each pair ran in one round, on the
    same files, so a slow spell moves both; the median is the least moved by one that does not."""
    walls = sorted(o[0] / n[0] for o, n in zip(old, new, strict=True))
    cpus = sorted(o[1] / n[1] for o, n in zip(old, new, strict=True))
    return f"median of the rounds' x{walls[len(walls) // 2]:.2f} wall, x{cpus[len(cpus) // 2]:.2f} CPU"


def line(name: str, best: tuple[float, float, str, int], count: int) -> str:
    return f"{name:<26}: {best[0]:7.2f} s  {count / best[0]:7.0f} files/s  peak RSS {best[3] / 1024:6.1f} MiB"


def small_images(into: Path) -> list[Path]:
    """A few small JPEG, PNG and WebP files (about 1-3 kB), different pixels each."""
    from PIL import Image

    into.mkdir()
    made = []
    for i, fmt in enumerate(("JPEG", "PNG", "WEBP") * 4):
        path = into / f"{i:02d}.{fmt.lower().replace('jpeg', 'jpg')}"
        Image.effect_noise((64, 48), 20 + 5 * i).convert("RGB").save(path, fmt)
        made.append(path)
    return made


# Runs the command, counting its tagged results line by line, and prints its peak RSS (KiB) and
# that count. A small process of its own: a child's ru_maxrss also counts the memory of the process
# it was spawned from (Linux keeps the high-water mark across exec), so spawned from this bench,
# after it read a large output, the child would be charged for the bench's memory.
_MEASURE = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, text=True)
tagged = sum('"status": "tagged"' in line for line in child.stdout)
_, status, usage = os.wait4(child.pid, 0)
print(usage.ru_maxrss, tagged, os.waitstatus_to_exitcode(status))
"""


def memory(sizes: list[int], repeat: int, jobs: int = 1) -> None:
    """Peak RSS of tag -r --no-ledger --json --jobs ``jobs`` at each size (the least of ``repeat``
    runs; with workers, the RSS of the process that holds the results, not of the workers)."""
    with tempfile.TemporaryDirectory() as tmp:
        sources = small_images(Path(tmp) / "sources")
        peaks = {}
        for count in sizes:
            best = None
            for _ in range(repeat):
                folder = linked(sources, count, Path(tmp))
                start = time.perf_counter()
                measured = subprocess.run([sys.executable, "-c", _MEASURE, *ours(folder, None, jobs)], check=True,
                                          capture_output=True, text=True).stdout.split()
                rss, done, code = (int(x) for x in measured)
                if done != count or code != 0:
                    sys.exit(f"rightsmeta tagged {done} of {count} files (exit {code})")
                best = (rss, time.perf_counter() - start) if best is None or rss < best[0] else best
                shutil.rmtree(folder)
            assert best is not None
            peaks[count] = best[0]
            print(f"peak RSS, tag -r --no-ledger --json --jobs {jobs}, {count:6d} files: {best[0] / 1024:7.1f} MiB  "
                  f"({best[1]:.1f} s)")
        first, last = peaks[sizes[0]], peaks[sizes[-1]]
        print(f"growth {sizes[0]} -> {sizes[-1]} files: {100 * (last - first) / first:+.1f} % (goal: within 10 %)  [{load()}]")


def jobs_ratio(corpus: list[Path], count: int, repeat: int) -> None:
    """``tag --jobs 2`` against ``--jobs 1`` on ``count`` files with a fresh ledger each, alternating."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        before = load()
        start = idle()
        runs: list[tuple[Run, Run]] = []
        for i in range(repeat):
            pair = []
            for jobs in (1, 2):
                folder = work / f"n{count}"
                if folder.exists():
                    shutil.rmtree(folder)
                linked(corpus, count, work)
                os.sync()  # so one run's dirty pages are not written back during the next one's timing
                result = run(ours(folder, work / f"ledger-{i}-{jobs}.sqlite3", jobs))
                tagged(result[2], count)
                pair.append(result)
            runs.append((pair[0], pair[1]))
        end = idle()
    free = 100 * (end[0] - start[0]) / max(1, end[1] - start[1])
    one, two = min(r[0] for r in runs), min(r[1] for r in runs)
    print(f"files             : {count} hard links to {len(corpus)} files ({', '.join(sorted({p.suffix[1:] for p in corpus}))})")
    print("runs (s)          : " + "  ".join(f"{a[0]:.2f}/{b[0]:.2f}" for a, b in runs) + "  (--jobs 1/--jobs 2, wall clock)")
    print("CPU (s)           : " + "  ".join(f"{a[1]:.2f}/{b[1]:.2f}" for a, b in runs)
          + "  (user + system of all processes)")
    print(line("tag --ledger --jobs 1", one, count))
    print(line("tag --ledger --jobs 2", two, count) + " (the parent's own)")
    print(f"jobs ratio        : {one[0] / two[0]:.2f}x the one-core throughput with 2 workers (best runs)")
    # The pairs ran back to back: the median of their ratios is the least moved by a slow spell.
    pairs = sorted(a[0] / b[0] for a, b in runs)
    print(f"pairs             : median x{pairs[len(pairs) // 2]:.2f} (range x{pairs[0]:.2f}-x{pairs[-1]:.2f})")
    cpu_and_load(runs, count, before, free)


def by_kind(compared: list[Path], repeat: int) -> None:
    """Each kind alone: --no-ledger, ExifTool and the ledger run alternating, best of ``repeat``."""
    print(f"{'kind':<6}{'files':>6}{'--no-ledger':>13}{'exiftool':>10}{'ledger':>9}   ratio --no-ledger  ratio ledger (wall / CPU)")
    before = load()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = work / "tdm.config"
        config.write_text(TDM_CONFIG)
        for suffix in COMPARED:
            files = [f for f in compared if f.suffix == suffix]
            if not files:
                continue
            runs: list[tuple[Run, Run, Run]] = []
            for i in range(repeat):
                lean = run(ours(fresh(files, work / "files"), None))
                tagged(lean[2], len(files))
                exif = run(theirs(fresh(files, work / "files"), config))
                full = run(ours(fresh(files, work / "files"), work / f"{suffix[1:]}{i}.sqlite3"))
                tagged(full[2], len(files))
                runs.append((lean, exif, full))
            (lean_s, lean_c), (exif_s, exif_c), (full_s, full_c) = (
                (min(r[k][0] for r in runs), min(r[k][1] for r in runs)) for k in range(3))
            print(f"{suffix[1:]:<6}{len(files):>6}{lean_s:>12.2f}s{exif_s:>9.2f}s{full_s:>8.2f}s   "
                  f"{exif_s / lean_s:5.2f}x / {exif_c / lean_c:4.2f}x   {exif_s / full_s:5.2f}x / {exif_c / full_c:4.2f}x")
    print(f"machine           : {os.cpu_count()} CPUs; {before} before, {load()} after")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a corpus (bench/corpus.py); its files are copied, never changed")
    parser.add_argument("--per-kind", type=int, default=100, help="files of each kind (default 100)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-ledger-run", action="store_true",
                        help="leave out the run with a ledger (minutes on a loaded machine); --no-ledger and ExifTool only")
    parser.add_argument("--baseline", type=Path, metavar="TREE",
                        help="also run tag --no-ledger (and the ledger run) with the rightsmeta of this source tree, "
                             "in each round")
    parser.add_argument("--memory", metavar="N,M", help="peak RSS of tag -r on N and on M files (hard links to small images)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes of the --memory runs (default 1)")
    parser.add_argument("--by-kind", action="store_true", help="the three runs on each kind's files alone, ratios per kind")
    parser.add_argument("--jobs-ratio", type=int, metavar="N",
                        help="tag --jobs 2 vs --jobs 1 with a ledger, on N files (hard links to the corpus's)")
    args = parser.parse_args()
    if args.memory:
        memory([int(n) for n in args.memory.split(",")], args.repeat, args.jobs)
        return
    spec = importlib.util.find_spec("rightsmeta")
    if spec is None or spec.origin is None:
        sys.exit("rightsmeta is not installed in this Python: run .ci/setup, then use .venv/bin/python")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(spec.origin).parent)], check=True)
    old_env = None
    if args.baseline:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(args.baseline / "rightsmeta")], check=True)
        old_env = {**os.environ, "PYTHONPATH": str(args.baseline)}
    compared = pick(args.folder, COMPARED, args.per_kind)
    audio = pick(args.folder, AUDIO, args.per_kind)
    if args.jobs_ratio:
        # The kinds interleaved, so that any N files are a mix (pick lists them kind by kind).
        kinds = [[f for f in compared + audio if f.suffix == s] for s in COMPARED + AUDIO]
        jobs_ratio([f for group in itertools.zip_longest(*kinds) for f in group if f], args.jobs_ratio, args.repeat)
        return
    if not compared:
        sys.exit(f"no {', '.join(COMPARED)} files in {args.folder}: make a corpus with bench/corpus.py")
    if args.by_kind:
        by_kind(compared, args.repeat)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = work / "tdm.config"
        config.write_text(TDM_CONFIG)
        before = load()
        runs: list[tuple[Run, Run, Run | None]] = []
        old_runs: list[Run] = []
        old_full: list[Run] = []  # the baseline's ledger runs

        def once(name: str, i: int) -> Run:
            if name == "exiftool":
                return run(theirs(fresh(compared, work / "files"), config))
            ledger = work / f"{name.replace(' ', '-')}-{i}.sqlite3" if name.endswith("ledger") else None
            done = run(ours(fresh(compared, work / "files"), ledger), old_env if name.startswith("baseline") else None)
            tagged(done[2], len(compared))
            return done

        lean_runs = ["this tree", "exiftool"] + (["baseline"] if old_env is not None else [])
        ledger_runs = [] if args.no_ledger_run else ["this tree ledger"] + (["baseline ledger"] if old_env is not None else [])
        for i in range(args.repeat):
            # A round's first run was seen up to 20 % slower (the page cache, the last copy's writeback?), so
            # each run takes every place in turn, on the same files: no tree's best is always a first run.
            timed = {name: once(name, i) for group in (lean_runs, ledger_runs) for name in rotated(group, i)}
            runs.append((timed["this tree"], timed["exiftool"], timed.get("this tree ledger")))
            if old_env is not None:
                old_runs.append(timed["baseline"])
                if "baseline ledger" in timed:
                    old_full.append(timed["baseline ledger"])
        audio_runs = []
        if audio:
            for _ in range(args.repeat):
                audio_runs.append(run(ours(fresh(audio, work / "audio"), None)))
                tagged(audio_runs[-1][2], len(audio))
        after = load()
    kinds = ", ".join(f"{sum(1 for f in compared if f.suffix == s)} {s[1:]}" for s in COMPARED)
    print(f"files             : {len(compared)} ({kinds}) from {args.folder}")
    print("runs (s)          : " + "  ".join(f"{a[0]:.2f}/{b[0]:.2f}/{c[0] if c else 0:.2f}" for a, b, c in runs)
          + "  (--no-ledger / exiftool / ledger)")
    print("CPU (s)           : " + "  ".join(f"{a[1]:.2f}/{b[1]:.2f}/{c[1] if c else 0:.2f}" for a, b, c in runs)
          + "  (user + system; less moved by other load than the wall clock)")
    lean, exif = min(r[0] for r in runs), min(r[1] for r in runs)
    print(line("rightsmeta --no-ledger", lean, len(compared)))
    print(line("exiftool", exif, len(compared)))
    print(f"ratio --no-ledger : {exif[0] / lean[0]:.2f}x ExifTool's speed (goal: >= 2x)")
    if old_runs:
        old = min(old_runs)
        print("baseline runs (s) : " + "  ".join(f"{o[0]:.2f} wall {o[1]:.2f} CPU" for o in old_runs))
        print(line(f"baseline {str(args.baseline)[-15:]}", old, len(compared)))
        print(f"ratio baseline    : {exif[0] / old[0]:.2f}x ExifTool's speed; this tree x{old[0] / lean[0]:.2f} wall, "
              f"x{min(o[1] for o in old_runs) / min(r[0][1] for r in runs):.2f} CPU (bests); "
              + paired(old_runs, [r[0] for r in runs]))
    if not args.no_ledger_run:
        full = min(c for _, _, c in runs if c is not None)
        print(line("rightsmeta with ledger", full, len(compared)))
        print(f"ratio with ledger : {exif[0] / full[0]:.2f}x ExifTool's speed (goal: >= 1x)")
        if old_full:
            old = min(old_full)
            print("baseline ledger   : " + "  ".join(f"{o[0]:.2f}/{c[0]:.2f} wall {o[1]:.2f}/{c[1]:.2f} CPU"
                                                     for o, (_, _, c) in zip(old_full, runs, strict=True) if c)
                  + "  (baseline/this tree, pair by pair)")
            print(line("baseline with ledger", old, len(compared)))
            print(f"ratio baseline    : {exif[0] / old[0]:.2f}x ExifTool's speed with a ledger; this tree x{old[0] / full[0]:.2f} "
                  f"wall, x{min(o[1] for o in old_full) / min(c[1] for _, _, c in runs if c):.2f} CPU (bests); "
                  + paired(old_full, [c for _, _, c in runs if c]))
    if audio_runs:
        best = min(audio_runs)
        kinds = ", ".join(f"{sum(1 for f in audio if f.suffix == s)} {s[1:]}" for s in AUDIO)
        print(line(f"audio --no-ledger ({len(audio)})", best, len(audio)) + f"  ({kinds}; rightsmeta alone)")
    print(f"machine           : {os.cpu_count()} CPUs; {before} before, {after} after")


if __name__ == "__main__":
    main()
