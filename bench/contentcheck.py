"""The content check every tag makes, in place against decoded (issue 12).

    python bench/corpus.py /tmp/corpus --mix realistic --files 600
    python bench/contentcheck.py /tmp/corpus      # ms per file of contentcheck.compare, after tag_bytes

For up to 20 files of each kind, ``contentcheck.compare(original, tagged)`` is timed as tag runs
it (the bytes a decoder reads compared in place) and with that comparison turned off, so the
content is decoded before and after (libsndfile, ffmpeg for M4A, Pillow for TIFF). Both must
find the content unchanged; the script stops if either does not.
"""

from __future__ import annotations

import glob
import sys
import time

import rightsmeta
from rightsmeta import contentcheck

KINDS = (("m4a", "m4a"), ("mp3", "mp3"), ("flac", "flac"), ("wav", "wav"), ("tif", "tiff"))


def main() -> None:
    deny = rightsmeta.Assertion.build(deny=["ai"])
    real = contentcheck._same_in_place
    for ext, fmt in KINDS:
        pairs = []
        for name in sorted(glob.glob(f"{sys.argv[1]}/*.{ext}"))[:20]:
            with open(name, "rb") as fh:
                data = fh.read()
            pairs.append((data, rightsmeta.tag_bytes(data, deny)))
        if not pairs:
            continue
        times = {}
        for how, same in (("in place", real), ("decoded", lambda a, b, c: False)):
            contentcheck._same_in_place = same  # type: ignore[assignment]
            start = time.perf_counter()
            for before, after in pairs:
                if contentcheck.compare(before, after, fmt):  # notes: something was not compared
                    sys.exit(f"{fmt}: the content was not compared ({how})")
            times[how] = (time.perf_counter() - start) / len(pairs) * 1000
        contentcheck._same_in_place = real
        print(f"{fmt:5} {len(pairs)} files: compare {times['in place']:.2f} ms in place, "
              f"{times['decoded']:.1f} ms decoded")


if __name__ == "__main__":
    main()
