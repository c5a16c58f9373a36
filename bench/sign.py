"""Signing throughput: files/s and MB/s of `rightsmeta.tag_bytes` with a C2PA manifest (no thumbnail).

    python bench/sign.py               # 40 files per format and size
    python bench/sign.py --files 5     # a quick run

Each file goes through the whole tag path: XMP spliced in by the container walkers, the manifest signed by c2pa,
the ISCC soft binding computed from the pixels, and everything read back and checked. The
XMP-only time is printed beside it, so the cost of signing itself shows.
"""

from __future__ import annotations

import argparse
import io
import time

from PIL import Image

import rightsmeta
from rightsmeta import Assertion, keys


def photo(fmt: str, size: tuple[int, int], seed: int) -> bytes:
    # Noise-like content, so JPEG sizes are realistic rather than tiny flat images.
    img = Image.effect_noise(size, 40 + seed % 20).convert("RGB")
    out = io.BytesIO()
    img.save(out, fmt.upper(), **({"quality": 88} if fmt == "jpeg" else {}))
    return out.getvalue()


def run(files: int) -> None:
    identity = keys.make_identity("bench")
    assertion = Assertion.build(deny=["ai"]).dated()
    rightsmeta.tag_bytes(photo("jpeg", (64, 64), 0), assertion, identity=identity)  # load c2pa once, untimed
    print(f"{'format':<6} {'size':>11} {'MB/file':>8} {'xmp files/s':>12} {'signed files/s':>15} {'signed MB/s':>12}")
    for fmt in ("jpeg", "png", "webp"):
        for size in ((640, 480), (1920, 1080)):
            corpus = [photo(fmt, size, i) for i in range(files)]
            mb = sum(len(d) for d in corpus) / 1e6
            timings = {}
            for label, ident in (("xmp", None), ("signed", identity)):
                start = time.perf_counter()
                for data in corpus:
                    rightsmeta.tag_bytes(data, assertion, identity=ident)
                timings[label] = time.perf_counter() - start
            print(
                f"{fmt:<6} {size[0]:>5}x{size[1]:<5} {mb / files:>8.2f} {files / timings['xmp']:>12.1f} "
                f"{files / timings['signed']:>15.1f} {mb / timings['signed']:>12.2f}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=40, help="files per format and size")
    run(parser.parse_args().files)
