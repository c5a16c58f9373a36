"""CPU time of one essence (what tag records in the ledger), another tree's fingerprint.py against this one.

    git archive <commit> | tar -x -C /tmp/base                   # the tree to compare with
    python bench/essence.py /tmp/base [corpus]                     # a 12 MP JPEG, and 20 files of each kind of a corpus

Both modules are loaded into one process and called alternately on the same bytes (3 rounds), so
the machine's load weighs on both alike; CPU seconds (the process's and its children's: fpcalc,
ffmpeg), not wall clock. This tree's
essence is called as ``tag`` calls it (``probes=False``); the other tree's with what its
signature takes. Also prints how far apart the two trees' region codes are (bits of 256).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import io
import os
import resource
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests")]

import material  # noqa: E402

import rightsmeta.fingerprint as new  # noqa: E402

KINDS = {".jpg": "jpeg", ".png": "png", ".webp": "webp", ".tif": "tiff", ".pdf": "pdf", ".mp3": "mp3", ".flac": "flac",
         ".wav": "wav", ".m4a": "m4a"}


def load(tree: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("rightsmeta.base_fingerprint", tree / "rightsmeta" / "fingerprint.py")
    if spec is None or spec.loader is None:
        sys.exit(f"no rightsmeta/fingerprint.py in {tree}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _spent() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def cpu(function: Any, *args: Any, **kwargs: Any) -> float:
    start = _spent()
    function(*args, **kwargs)
    return _spent() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", type=Path, help="a tree (e.g. git archive of a commit) whose fingerprint.py is compared")
    parser.add_argument("corpus", type=Path, nargs="?", help="a bench/corpus.py folder: 20 files of each image kind")
    args = parser.parse_args()
    old = load(args.base)
    takes_probes = "probes" in inspect.signature(old.essence).parameters
    samples: list[tuple[str, bytes, str]] = []
    camera = io.BytesIO()
    material.photo(1, (1000, 750)).resize((4000, 3000)).save(camera, "JPEG", quality=90)
    samples.append(("12 MP JPEG", camera.getvalue(), "jpeg"))
    if args.corpus:
        for suffix, fmt in KINDS.items():
            for path in sorted(args.corpus.glob(f"*{suffix}"))[:20]:
                samples.append((f"corpus {fmt}", path.read_bytes(), fmt))
    spent: dict[str, list[float]] = {}
    bits: list[int] = []
    for _ in range(3):
        for label, data, fmt in samples:
            was = cpu(old.essence, data, fmt, **({"probes": False} if takes_probes else {}))
            now = cpu(new.essence, data, fmt, probes=False)
            totals = spent.setdefault(label, [0.0, 0.0, 0.0])
            totals[0] += was
            totals[1] += now
            totals[2] += 1
    differ = 0
    for _, data, fmt in samples:
        was, now = old.essence(data, fmt), new.essence(data, fmt, probes=False)
        differ += (was.hash, was.perceptual, was.chroma) != (now.hash, now.perceptual, now.chroma)
        theirs = dict(was.regions)
        for name, code in now.regions:
            if name in theirs:
                bits.append(round(256 * new.distance(code, theirs[name])))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for label, (was, now, count) in spent.items():
        print(f"{label:<14} base {was / count * 1000:7.1f} ms  this tree {now / count * 1000:6.1f} ms  ({was / now:.1f}x less CPU)")
    print(f"exact hash, perceptual code or Chromaprint features differ in {differ} of {len(samples)} files "
          "(expected only where one tree hashes an image kind from its coded data and the other its pixels)")
    if bits:
        print(f"region codes, base against this tree: mean {sum(bits) / len(bits):.1f}, at most {max(bits)} bits of 256 "
              f"({len(bits)} codes)")


if __name__ == "__main__":
    main()
