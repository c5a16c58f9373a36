"""The ledger's grey working image of PNG, WebP and TIFF files: Pillow's decode against imagedecode's.

    python bench/corpus.py bench/realistic --mix realistic --files 1320
    python bench/imagedecode.py bench/realistic --per-kind 100 --repeat 7

For each file, both paths run one after the other ``--repeat`` times in this one process (so a
busy machine slows both alike); the best time of each is kept and summed per kind. Both paths
start from ``Image.open`` and the size check, as ``fingerprint._image`` does, and must give the
same grey pixels (checked on every file). Prints the machine's load before and after.
"""

from __future__ import annotations

import argparse
import io
import os
import time
from pathlib import Path

from PIL import Image

from rightsmeta import fingerprint, imagedecode

KINDS = {".png": "PNG", ".webp": "WEBP", ".tif": "TIFF"}


def pillow(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        fingerprint._check_decode_size(img)
        img.load()
        return fingerprint._grey(img)


def fast(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        fingerprint._check_decode_size(img)
        found = imagedecode.grey(img, data)
        if found is None:  # a kind imagedecode leaves to Pillow
            img.load()
            found = fingerprint._grey(img)
        return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--per-kind", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()[0]:.2f}")
    for suffix in KINDS:
        files = sorted(args.folder.rglob(f"*{suffix}"))[: args.per_kind]
        best = {"pillow": 0.0, "imagedecode": 0.0}
        taken = 0
        for path in files:
            data = path.read_bytes()
            with Image.open(io.BytesIO(data)) as img:
                taken += imagedecode.grey(img, data) is not None
            if pillow(data).tobytes() != fast(data).tobytes():
                raise SystemExit(f"{path}: other grey pixels")
            times = {"pillow": float("inf"), "imagedecode": float("inf")}
            for _ in range(args.repeat):
                for name, decode in (("pillow", pillow), ("imagedecode", fast)):
                    start = time.perf_counter()
                    decode(data)
                    times[name] = min(times[name], time.perf_counter() - start)
            for name in best:
                best[name] += times[name]
        if files:
            old, new = (best[k] / len(files) * 1e3 for k in ("pillow", "imagedecode"))
            print(f"{suffix[1:]:5} {len(files):4} files ({taken} through imagecodecs): Pillow {old:.2f} ms, "
                  f"imagedecode {new:.2f} ms a file (x{old / new:.2f})")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
