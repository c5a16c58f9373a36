"""What recording a tag run's images costs in third-party code alone: the floor under `tag` with a ledger.

    python bench/corpus.py bench/realistic --mix realistic --files 1320
    python bench/floor.py bench/realistic --per-kind 100 --repeat 7

On the images bench/tag.py tags (the first --per-kind JPEG, PNG, WebP and TIFF files), times in
this one process (best of --repeat, process time) what the ledger's essence hands to libraries
and cannot skip with the same codes and hashes: libpng and libwebp decoding every pixel, libjpeg's
reduced (draft) decode, SHA-256 of an uncompressed TIFF's data (the machine's limit), and
Pillow's grey chain (RGB unpack, RGB -> L, the whole-factor reduce) of the PNG, WebP and TIFF
images. Whatever rightsmeta's own code costs comes on top. Prints the machine's load.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import imagecodecs
from PIL import Image

from rightsmeta import fingerprint, imagedecode
from rightsmeta.alloc import keep_freed_memory


def _draft(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as img:
        img.draft("L", fingerprint._working_size(img.size))
        img.load()


def _grey_chain(samples: Any) -> Image.Image:
    """fingerprint._image's grey working image from decoded RGB(A) samples, as main makes it."""
    h, w = samples.shape[:2]
    img = (imagedecode._rgbx((w, h), samples) if samples.shape[2] == 3
           else Image.frombuffer("RGBA", (w, h), samples, "raw", "RGBA", 0, 1))
    grey = img.convert("L")
    factor = max(1, max(grey.size) // fingerprint.REGION_SIDE)
    return grey.reduce(factor) if factor > 1 else grey


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a corpus (bench/corpus.py)")
    parser.add_argument("--per-kind", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    keep_freed_memory()  # as the tag command runs
    data = {kind: [p.read_bytes() for p in sorted(args.folder.glob(f"*.{kind}"))[: args.per_kind]]
            for kind in ("jpg", "png", "webp", "tif")}
    decoded = ([imagecodecs.png_decode(d) for d in data["png"]] + [imagecodecs.webp_decode(d, hasalpha=True) for d in data["webp"]]
               + [imagecodecs.tiff_decode(d) for d in data["tif"]])
    work: dict[str, Callable[[], object]] = {
        f"libpng decode ({len(data['png'])} PNG)": lambda: [imagecodecs.png_decode(d) for d in data["png"]],
        f"libwebp decode ({len(data['webp'])} WebP)": lambda: [imagecodecs.webp_decode(d, hasalpha=True) for d in data["webp"]],
        f"libjpeg draft decode ({len(data['jpg'])} JPEG)": lambda: [_draft(d) for d in data["jpg"]],
        f"SHA-256 of the data ({len(data['tif'])} TIFF)": lambda: [hashlib.sha256(d).digest() for d in data["tif"]],
        f"Pillow's grey chain ({len(decoded)} PNG/WebP/TIFF)": lambda: [_grey_chain(a) for a in decoded],
    }
    print(f"load average {os.getloadavg()[0]:.2f} before")
    best = dict.fromkeys(work, float("inf"))
    for _ in range(args.repeat):
        for name, run in work.items():
            start = time.process_time()
            run()
            best[name] = min(best[name], time.process_time() - start)
    for name, seconds in best.items():
        print(f"{name:40} {seconds * 1000:7.1f} ms")
    print(f"{'total':40} {sum(best.values()) * 1000:7.1f} ms   (load average {os.getloadavg()[0]:.2f} after)")


if __name__ == "__main__":
    main()
