"""How well does a stripped copy get recognised after what re-posters do? And what does a lookup cost?

    python bench/durability.py                 # 40 photos, 6 songs, 300 unrelated, lookups at 1k / 10k
    python bench/durability.py --full          # 100 photos, 10 songs, 1,000 unrelated, lookups up to 100k
    python bench/durability.py --real          # real photos and music (below), 300 procedural unrelated

With --real the works are real: the photographs bundled in scikit-image's wheel and Bach chorales
from music21's corpus performed with sampled instruments (FluidSynth, TimGM6mb); see
tests/material.py REAL_PHOTOS and CHORALES. The first --photos / --songs of them are recorded; the
rest are held out, and their handled copies (every handling) join the procedural unrelated files.
A recognised copy whose first match is another work counts as a false match too.

Material (tests/material.py): camera-like photos (sky, fractal terrain, objects, vignetting, sensor
noise, JPEG) and music-like audio (chords, bass, melody, drums; 30 s WAV). Every work is recorded
in a fresh ledger as ``rightsmeta tag`` records it; each handling (tests/material.py
IMAGE_HANDLINGS, AUDIO_HANDLINGS: Pillow and ffmpeg) makes a copy without metadata, and the copy
counts as recognised when the ledger's first match is its own work; the same handlings after a flip
or turn (TURNED_HANDLINGS) follow. Unrelated files (other seeds, each handled in one of the ways
above) must match nothing.

Uneven crops that keep no corner of the work (four sides cut, or cut then resized) are found by
rightsmeta/cropsearch.py after the ledger's own lookup finds nothing; the "lookup ms" column is
the CPU time of that whole lookup per copy (median / worst), the essence computed beforehand.

Lookup cost: the ledger is filled to 1,000 / 10,000 / 100,000 works with the real works plus
fillers of the same shape (as many region codes, as many Chromaprint features) whose bits are
random, so unrelated to every copy. Real codes cluster more than random ones, so this is the cost
of the index itself, not of crowded buckets; the time of ``Ledger.matches`` for
copies that need the region index (a 10 % crop) and the Chromaprint index (a 10 s excerpt) is
the median over the queries, the essence being computed beforehand.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests")]

import material  # noqa: E402
from PIL import Image  # noqa: E402

from rightsmeta import Assertion, cropsearch  # noqa: E402
from rightsmeta.fingerprint import Essence, essence  # noqa: E402
from rightsmeta.ledger import Ledger, Match, Work  # noqa: E402

ASSERTION = Assertion.build(deny=["ai"])


def _lookup(ledger: Ledger, copy: Essence, cpu: list[float]) -> list[Match]:
    """The crop search's matches of ``copy``, its CPU milliseconds appended to ``cpu``."""
    start = time.process_time()
    found = cropsearch.matches(ledger, copy)
    cpu.append(1000 * (time.process_time() - start))
    return found


def _size(seed: int) -> tuple[int, int]:
    return [(480, 360), (360, 480), (512, 340), (400, 400)][seed % 4]


def _ffmpeg(src: Path, args: list[str], ext: str, tmp: Path) -> bytes:
    out = tmp / f"copy.{ext}"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), *args, str(out)], check=True)
    return out.read_bytes()


def _photos(real: bool, count: int) -> Iterator[tuple[str, Image.Image, bytes, str]]:
    """(label, picture, the file as tagged, its format): procedural photos, or all the real ones."""
    if not real:
        for seed in range(count):
            img = material.photo(seed, _size(seed))
            yield f"photo-{seed}", img, material.jpeg(img, 90), "jpeg"
        return
    for name in material.REAL_PHOTOS:
        yield name, material.real_photo(name), material.real_photo_file(name), "jpeg" if name.endswith(".jpg") else "png"


def _songs(real: bool, count: int) -> Iterator[tuple[str, bytes]]:
    """(file name, 30 s WAV): procedural songs, or all the real ones."""
    if not real:
        for seed in range(count):
            yield f"song-{seed}.wav", material.wav(material.music(seed, 30.0))
        return
    for index, name in enumerate(material.CHORALES):
        yield f"{name.replace('/', '-')}.wav", material.real_song(index)


def _filler(work: Work, n: int, rng: random.Random) -> Work:
    """A work shaped like ``work`` (as many region codes and Chromaprint features) with random bits."""
    return Work(
        id=f"filler-{n}", path=f"filler-{n}", format=work.format, essence_hash=None, kind=work.kind,
        perceptual=f"{rng.getrandbits(len(work.perceptual) * 4):0{len(work.perceptual)}x}" if work.perceptual else None,
        assertion=ASSERTION, regions=tuple((name, f"{rng.getrandbits(256):064x}") for name, _ in work.regions),
        chroma=tuple(rng.getrandbits(32) for _ in work.chroma) if work.chroma else None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the full sizes (slow on a shared CPU)")
    parser.add_argument("--photos", type=int)
    parser.add_argument("--songs", type=int)
    parser.add_argument("--unrelated", type=int)
    parser.add_argument("--real", action="store_true", help="real photos and music (needs the test extra, fluidsynth)")
    parser.add_argument("--sizes", help="ledger sizes for the lookup cost, e.g. 1000,10000,100000")
    args = parser.parse_args()
    if args.real and (reason := material.real_material_missing()):
        parser.error(reason)
    photos = args.photos or (8 if args.real else 100 if args.full else 40)
    songs = args.songs or (7 if args.real else 10 if args.full else 6)
    unrelated = args.unrelated or (1000 if args.full else 300)
    sizes = [int(x) for x in (args.sizes or ("1000,10000,100000" if args.full else "1000,10000")).split(",")]
    have_audio = shutil.which("ffmpeg") is not None and shutil.which("fpcalc") is not None

    with tempfile.TemporaryDirectory(prefix="rightsmeta-durability-") as name:
        tmp = Path(name)
        ledger = Ledger.open(tmp / "ledger.sqlite3")
        works: list[tuple[Work, Image.Image]] = []
        started = time.perf_counter()
        held_photos: list[tuple[str, Image.Image]] = []
        for n, (label, img, data, fmt) in enumerate(_photos(args.real, photos)):
            if n >= photos:
                held_photos.append((label, img))
                continue
            work = Work.create(label, fmt, essence(data, fmt, probes=False), ASSERTION, id=label)
            works.append((work, img))
        clips: list[tuple[Work, Path]] = []
        held_songs: list[Path] = []
        if have_audio:
            for n, (label, wav) in enumerate(_songs(args.real, songs)):
                src = tmp / label
                src.write_bytes(wav)
                if n >= songs:
                    held_songs.append(src)
                    continue
                work = Work.create(src.name, "wav", essence(src.read_bytes(), "wav"), ASSERTION, id=src.stem)
                clips.append((work, src))
        ledger.record_many([w for w, _ in works] + [w for w, _ in clips])
        print(f"recorded {len(works)} photos and {len(clips)} songs in {time.perf_counter() - started:.1f} s; "
              f"region codes per photo: {statistics.mean(len(w.regions) for w, _ in works):.1f} "
              f"(of which corner squares: {statistics.mean(sum(n.endswith(' px') for n, _ in w.regions) for w, _ in works):.1f})\n")

        # lookup: CPU time of cropsearch.matches (the ledger's lookup, then the crop search when
        # that finds nothing), the copy's essence computed beforehand; median and worst per handling.
        print(f"{'handling':42} {'recognised':>11} {'lookup ms':>12}  example of the match report")
        total = hits = 0
        wrong: list[str] = []  # a copy whose first match is another work: a false match
        crop_queries: list[Essence] = []
        uneven_queries: list[Essence] = []
        for handling in [*material.IMAGE_HANDLINGS, *material.TURNED_HANDLINGS]:
            ok = 0
            example = ""
            cpu = []
            for work, img in works:
                copy = essence(material.handle(img, handling), "jpeg")
                found = _lookup(ledger, copy, cpu)
                if handling == "crop 10 %/side" and len(crop_queries) < 20:
                    crop_queries.append(copy)
                if handling == "crop 5/15/20/10 % l/t/r/b" and len(uneven_queries) < 20:
                    uneven_queries.append(copy)
                if found and found[0].work.id != work.id:
                    wrong.append(f"{work.id} ({handling}) -> {found[0].work.id} {found[0].how}")
                if found and found[0].work.id == work.id:
                    ok += 1
                    example = example or (found[0].how or ("same essence" if found[0].exact else f"distance {found[0].distance:.3f}"))
            total, hits = total + len(works), hits + ok
            print(f"{handling:42} {ok:>4}/{len(works):<4} {100 * ok / len(works):4.0f} % "
                  f"{statistics.median(cpu):5.0f} /{max(cpu):5.0f}  {example}")
        excerpt_queries: list[Essence] = []
        for handling, (ff, ext) in material.AUDIO_HANDLINGS.items():
            ok = 0
            example = ""
            for work, src in clips:
                copy = essence(_ffmpeg(src, ff, ext, tmp), ext)
                if handling.startswith("10 s excerpt") and len(excerpt_queries) < 20:
                    excerpt_queries.append(copy)
                found = ledger.matches(copy)
                if found and found[0].work.id != work.id:
                    wrong.append(f"{work.id} ({handling}) -> {found[0].work.id} {found[0].how}")
                if found and found[0].work.id == work.id:
                    ok += 1
                    example = example or (found[0].how or ("same essence" if found[0].exact else f"distance {found[0].distance:.3f}"))
            total, hits = total + len(clips), hits + ok
            if clips:
                print(f"{handling:42} {ok:>4}/{len(clips):<4} {100 * ok / len(clips):4.0f} %  {example}")
        print(f"{'all handlings':42} {hits:>4}/{total:<4} {100 * hits / max(1, total):4.1f} %")
        for line in wrong:
            print(f"  false match: copy of {line}")
        # Crops of more than 20 % a side on one axis (cropsearch.WideSearch), outside the total above:
        # whether a handling cuts that much depends on the work's shape, so each is counted by shape.
        for handling in material.WIDE_HANDLINGS:
            by_shape: dict[str, list[int]] = {}
            cpu = []
            for work, img in works:
                copy = essence(material.handle(img, handling), "jpeg")
                found = _lookup(ledger, copy, cpu)
                if found and found[0].work.id != work.id:
                    wrong.append(f"{work.id} ({handling}) -> {found[0].work.id} {found[0].how}")
                    print(f"  false match: copy of {wrong[-1]}")
                shape = by_shape.setdefault(f"{img.width}x{img.height}", [0, 0])
                shape[0] += bool(found and found[0].work.id == work.id)
                shape[1] += 1
            ok = sum(v[0] for v in by_shape.values())
            shapes = ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in by_shape.items())
            print(f"{'(wide) ' + handling:42} {ok:>4}/{len(works):<4} {100 * ok / len(works):4.0f} % "
                  f"{statistics.median(cpu):5.0f} /{max(cpu):5.0f}  {shapes}")
        for handling in material.UNCOVERED_HANDLINGS:  # known limits, outside the total above
            ok = 0
            for work, img in works:
                found = cropsearch.matches(ledger, essence(material.handle(img, handling), "jpeg"))
                ok += bool(found and found[0].work.id == work.id)
            print(f"{'(not covered) ' + handling:42} {ok:>4}/{len(works):<4} {100 * ok / len(works):4.0f} %")
        print()

        handlings = [*material.IMAGE_HANDLINGS, *material.TURNED_HANDLINGS, *material.WIDE_HANDLINGS]
        false = 0
        unrelated_cpu: list[float] = []
        started = time.perf_counter()
        for label, img in held_photos:  # real photos not in the ledger, every handling
            for handling in handlings:
                found = cropsearch.matches(ledger, essence(material.handle(img, handling), "jpeg"))
                if found:
                    false += 1
                    print(f"  false match: held-out {label} ({handling}) -> {found[0].work.id} {found[0].how}")
        for src in held_songs:
            for handling, (ff, ext) in material.AUDIO_HANDLINGS.items():
                found = ledger.matches(essence(_ffmpeg(src, ff, ext, tmp), ext))
                if found:
                    false += 1
                    print(f"  false match: held-out {src.name} ({handling}) -> {found[0].work.id} {found[0].how}")
        held = len(held_photos) * len(handlings) + len(held_songs) * len(material.AUDIO_HANDLINGS)
        audio_unrelated = min(unrelated // 20, 30) if have_audio else 0
        for n in range(unrelated - audio_unrelated):
            seed = 100_000 + n
            data = material.handle(material.photo(seed, _size(seed)), handlings[n % len(handlings)])
            query = essence(data, "jpeg")
            t0 = time.process_time()
            found = cropsearch.matches(ledger, query)
            unrelated_cpu.append(1000 * (time.process_time() - t0))
            if found:
                false += 1
                print(f"  false match: unrelated photo {seed} ({handlings[n % len(handlings)]}) -> {found[0].work.id} {found[0].how}")
        audio_handlings = list(material.AUDIO_HANDLINGS.items())
        for n in range(audio_unrelated):
            src = tmp / "unrelated.wav"
            src.write_bytes(material.wav(material.music(200_000 + n, 30.0)))
            ff, ext = audio_handlings[n % len(audio_handlings)][1]
            found = ledger.matches(essence(_ffmpeg(src, ff, ext, tmp), ext))
            if found:
                false += 1
                print(f"  false match: unrelated song {200_000 + n} -> {found[0].work.id} {found[0].how}")
        false += len(wrong)
        print(f"false matches: {false}/{unrelated + held + total} = {100 * false / max(1, unrelated + held + total):.2f} % "
              f"({len(wrong)} of {total} copies matched another work; of {unrelated} procedural unrelated files: "
              f"{unrelated - audio_unrelated} photos, {audio_unrelated} songs; of {held} handled copies of held-out "
              f"real files: {len(held_photos)} photos, {len(held_songs)} songs) "
              f"({time.perf_counter() - started:.0f} s)")
        if unrelated_cpu:
            print(f"lookup of an unrelated photo (CPU, the essence computed beforehand): median "
                  f"{statistics.median(unrelated_cpu):.0f} ms, worst {max(unrelated_cpu):.0f} ms\n")

        print(f"{'works':>8} {'10 % crop lookup':>17} {'uneven crop lookup':>19} {'10 s excerpt lookup':>20} {'ledger MB':>10}"
              "  (ratio to the first size)")
        rng = random.Random(7)
        base = [w for w, _ in works] + [w for w, _ in clips]
        count = len(base)
        first: dict[str, float] = {}
        for size in sizes:
            batch = []
            while count < size:
                batch.append(_filler(base[count % len(base)], count, rng))
                count += 1
                if len(batch) >= 5000:
                    ledger.record_many(batch)
                    batch = []
            ledger.record_many(batch)

            def timed(queries: list[Essence], label: str) -> str:
                if not queries:
                    return "-"
                times = []
                for query in queries:
                    t0 = time.perf_counter()
                    cropsearch.matches(ledger, query)
                    times.append(time.perf_counter() - t0)
                ms = 1000 * statistics.median(times)
                first.setdefault(label, ms)
                return f"{ms:.1f} ms ({ms / first[label]:.1f}x)"

            ledger._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            mb = os.path.getsize(tmp / "ledger.sqlite3") / 1e6
            t0 = time.perf_counter()
            cropsearch._index(ledger)  # the crop search's in-memory index takes in the new works once
            loaded = time.perf_counter() - t0
            print(f"{len(ledger):>8} {timed(crop_queries, 'crop'):>17} {timed(uneven_queries, 'uneven'):>19} "
                  f"{timed(excerpt_queries, 'excerpt'):>20} {mb:>10.0f}   (crop index updated in {loaded:.2f} s)")
        ledger.close()
    _ = io


if __name__ == "__main__":
    main()
