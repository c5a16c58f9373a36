"""Every one-byte change of a reserved file, counted by how it reads.

    python bench/sweep.py FILE... [--from MARKER] [--to MARKER] [--limit BYTES] [--purpose P] [--show]

Each byte from the first MARKER (default: the whole file) is replaced in turn by five values
(b"0", 0x7f, b"f", b"4", b"p"; XMP padding skipped) and the file read again. Prints, per file, how
many mutants read as usable for AI training without an error: a reader that fails closed leaves
none (session 12: ExifTool-tagged PDFs from %BeginExifToolUpdate, 212 of ~4,700 each before the
fixes, 0 after; session 13: WebP, TIFF, GIF, AVIF, HEIC, MP4 and MOV files tagged by rightsmeta or
ExifTool, 20 to 199 each before, 0 after; signed AVIF, HEIC, GIF and PNG, EPUB, signed SVG: 0). A file
that reads as usable, or with errors, as it is, is refused.
"""

from __future__ import annotations

import argparse

from rightsmeta import api
from rightsmeta.model import Purpose

VALUES = (b"0", b"\x7f", b"f", b"4", b"p")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--from", dest="marker", default="", help="sweep from this marker's first place (default: byte 0)")
    parser.add_argument("--to", dest="until", default="", help="sweep up to this marker's last place (default: the end)")
    parser.add_argument("--limit", type=int, default=0, help="sweep at most this many bytes (a large file's metadata region)")
    parser.add_argument("--purpose", default=Purpose.AI_TRAINING.value, choices=[p.value for p in Purpose],
                        help="the purpose a survivor is usable for (a file reserved by EXIF LearningOptOutIn alone: genai-training)")
    parser.add_argument("--show", action="store_true", help="print each survivor: its offset, the byte and what it was")
    args = parser.parse_args()
    purpose = Purpose(args.purpose)
    for name in args.files:
        original = open(name, "rb").read()
        first = api.read(original)
        if first.errors or first.may_use(purpose):
            print(f"{name}: refused: it does not read as reserved without errors as it is")
            continue
        start = original.find(args.marker.encode()) if args.marker else 0
        if start < 0:
            print(f"{name}: refused: no {args.marker!r} in it")
            continue
        stop = original.rfind(args.until.encode()) if args.until else len(original)
        if stop < start:
            print(f"{name}: refused: no {args.until!r} after byte {start}")
            continue
        mutants = survivors = 0
        if args.limit:
            stop = min(stop, start + args.limit)
        for pos in range(start, stop):
            if original[pos:pos + 1] == b" " and original[pos - 1:pos] == b" ":
                continue  # XMP padding
            for value in VALUES:
                if original[pos:pos + 1] == value:
                    continue
                mutants += 1
                report = api.read(original[:pos] + value + original[pos + 1:])
                if not report.errors and report.may_use(purpose):
                    survivors += 1
                    if args.show:
                        print(f"  byte {pos}: {original[pos:pos + 1]!r} -> {value!r} in {original[max(0, pos - 24):pos + 24]!r}")
        print(f"{name}: {mutants} mutants from byte {start} to {stop}; {survivors} read as usable without an error")


if __name__ == "__main__":
    main()
