"""The ledger's grey working image of PNG, WebP and TIFF files: Pillow's decode against imagedecode's.

    python bench/corpus.py bench/realistic --mix realistic --files 1320
    python bench/imagedecode.py bench/realistic --per-kind 100 --repeat 7

For each file, both paths run one after the other ``--repeat`` times in this one process (so a
busy machine slows both alike); the best time of each is kept and summed per kind. Pillow's path
is its open, the size check, its full decode and ``_grey``; imagedecode's is the decode part of
``fingerprint._image`` (``_decode_image``: a plain TIFF or still WebP without Pillow's open, else
Pillow's open and the size check, then libpng/libwebp/libtiff). Both must give the same grey
pixels (checked on every file). Prints the machine's load before and after.
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


def pillow(data: bytes, fmt: str) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        imagedecode.check_decode_size(img)
        img.load()
        return imagedecode.to_grey(img)


def fast(data: bytes, fmt: str) -> Image.Image:
    """What ``fingerprint._image`` does with a file that has a coded hash: a plain TIFF or still WebP
    without Pillow's open (``imagedecode.plain_grey``), else Pillow's open and ``imagedecode.grey``,
    else Pillow's decode."""
    return fingerprint._decode_image(data, fmt, "a coded hash", False)[0]


def taken(data: bytes, fmt: str) -> bool:
    if imagedecode.plain_grey(data, fmt) is not None:
        return True
    with Image.open(io.BytesIO(data)) as img:
        return imagedecode.grey(img, data) is not None


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
        fast_ones = 0
        for path in files:
            data, fmt = path.read_bytes(), KINDS[suffix].lower()
            fast_ones += taken(data, fmt)
            if pillow(data, fmt).tobytes() != fast(data, fmt).tobytes():
                raise SystemExit(f"{path}: other grey pixels")
            times = {"pillow": float("inf"), "imagedecode": float("inf")}
            for _ in range(args.repeat):
                for name, decode in (("pillow", pillow), ("imagedecode", fast)):
                    start = time.perf_counter()
                    decode(data, fmt)
                    times[name] = min(times[name], time.perf_counter() - start)
            for name in best:
                best[name] += times[name]
        if files:
            old, new = (best[k] / len(files) * 1e3 for k in ("pillow", "imagedecode"))
            print(f"{suffix[1:]:5} {len(files):4} files ({fast_ones} through imagedecode): Pillow {old:.2f} ms, "
                  f"imagedecode {new:.2f} ms a file (x{old / new:.2f})")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
