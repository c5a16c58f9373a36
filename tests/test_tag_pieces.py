"""A spliced image is written from its pieces and checked as written: no whole-file copy in memory.

The JPEG, PNG, WebP and TIFF writers keep the new file as ranges of the original and the new
bytes between them (carriers/splice.Spliced). A tag writes those pieces to the temporary file,
reads the file back and compares it where it lies (mapped), and proves the ranges copied
unchanged by where they came from. The files are Pillow's; the results are compared with the
joined bytes, which is what the tag wrote before.
"""

from __future__ import annotations

import errno
import fcntl
import io
import mmap
import os
import struct
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from samples import image_bytes, pixels

import rightsmeta
from rightsmeta import Assertion, contentcheck, fsio, mediacheck, tagging
from rightsmeta.carriers import Options, Parsed, image, jpeg, splice
from rightsmeta.errors import ContentChanged

DENY_AI = Assertion.build(deny=["ai"])


# How each format stores noise quickly and large: JPEG 4 bytes a pixel at quality 100 without
# chroma subsampling (a PDF holds one such JPEG as its page), PNG and WebP 3 bytes uncompressed.
_LARGE: dict[str, dict[str, Any]] = {"JPEG": {"quality": 100, "subsampling": 0}, "PDF": {"quality": 100, "subsampling": 0},
                                     "PNG": {"compress_level": 0}, "WEBP": {"lossless": True, "method": 0}, "TIFF": {}}


def _noise(height: int, width: int, fmt: str = "JPEG") -> bytes:
    noise = np.random.default_rng(7).integers(0, 256, (height, width, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x010F] = "rightsmeta test camera"
    out = io.BytesIO()
    Image.fromarray(noise).save(out, fmt, **_LARGE[fmt], **({"exif": exif.tobytes()} if fmt != "PDF" else {}))
    return out.getvalue()


@pytest.mark.parametrize("fmt, size", [("JPEG", (2000, 2600)), ("PDF", (2000, 2600)), ("PNG", (1500, 2000)),
                                       ("WEBP", (1500, 2000)), ("TIFF", (1500, 2000))])
def test_a_big_file_is_tagged_without_a_second_copy_in_memory(fmt: str, size: tuple[int, int], tmp_path: Path) -> None:
    """20 MB (JPEG, PDF) or 9 MB: the writers spliced a copy (a WebP three) before."""
    path = tmp_path / f"big.{fmt.lower()}"
    original = _noise(*size, fmt=fmt)
    path.write_bytes(original)
    tracemalloc.start()
    try:
        result = rightsmeta.tag(path, DENY_AI)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status == "tagged", result.reason
    # The original, read once, and little more; joining the new file took twice its size.
    assert peak < 1.25 * len(original), f"peak {peak / len(original):.2f} x the file"
    tagged = path.read_bytes()
    assert len(tagged) > len(original) and original[-1_000_000:] in tagged
    report = rightsmeta.read(path)
    assert report.errors == [] and report.permissions[rightsmeta.Purpose.AI_TRAINING].state is rightsmeta.State.NOT_ALLOWED


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "tiff"])
def test_the_file_written_from_pieces_is_the_joined_file(fmt: str, tmp_path: Path) -> None:
    data = image_bytes(fmt, size=(300, 200), seed=5, exif=fmt != "webp")
    new, _ = image.write(data, fmt, DENY_AI.for_work(), Options(parsed=Parsed()))
    assert isinstance(new, splice.Spliced)
    # The image data is a view of the original, not a copy of it.
    largest = max(new.pieces, key=len)
    assert isinstance(largest, memoryview) and largest.obj is data and len(largest) > len(data) // 2
    fixed = DENY_AI.for_work()  # one date and work id for both ways of tagging
    joined = tagging.tag_data(data, fixed, Options(), None)[0]
    path = tmp_path / f"image.{fmt}"
    path.write_bytes(data)
    step = tagging.tag_one(str(path), fixed, False, Options(), None, False, True)
    assert isinstance(step, tagging.Writing)
    step.finish(None)
    assert path.read_bytes() == joined
    assert pixels(path.read_bytes()) == pixels(data)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_splice_that_cuts_what_the_decoder_reads_is_still_refused() -> None:
    """Where a range came from proves it only where it came from the same place: a writer that cut
    a quantisation table is caught by the comparison of the pieces around it."""
    data = image_bytes("jpeg", size=(64, 48), seed=3, exif=True)
    layout = jpeg.walk(data)
    packet = jpeg.xmp_segments(b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    dqt = next(s for s in layout.segments if s.marker == 0xDB)
    for spliced, same in ((jpeg.splice(data, [], jpeg.xmp_insert_position(data, layout), packet), True),
                          (jpeg.splice(data, [dqt], dqt.start, packet), False)):
        new, parsed = bytes(spliced), Parsed()
        splice.remember(parsed, new, spliced)
        assert contentcheck.same_decoder_input(data, new, "jpeg", parsed) is same
    with pytest.raises(ContentChanged):
        contentcheck.compare(data, new, "jpeg", parsed)
    # A range copied unchanged, but from another place than the piece it is compared with: compared.
    spliced = jpeg.splice(data, [], jpeg.xmp_insert_position(data, layout), packet)
    new = bytes(spliced)
    luma, chroma = (s for s in jpeg.walk(new).segments if s.marker == 0xDB)
    assert luma.end - luma.marker_pos == chroma.end - chroma.marker_pos
    was = [(data, dqt.marker_pos, dqt.end)]
    assert mediacheck.same_pieces(was, [(new, luma.marker_pos, luma.end)], spliced, new)
    assert not mediacheck.same_pieces(was, [(new, chroma.marker_pos, chroma.end)], spliced, new)


def _unlocked(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.parametrize("stop", [ContentChanged("refused"), KeyboardInterrupt()])
def test_a_check_of_the_written_file_that_fails_or_is_stopped_leaves_the_original(
    stop: BaseException, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check now follows the write into the temporary file: a refusal, or a stop (Ctrl-C)
    while it runs, removes that file, releases the lock and leaves the original as it was."""
    path = tmp_path / "photo.jpg"
    original = _noise(500, 600)  # large enough to be checked mapped (tagging._MAPPED_FROM)
    assert len(original) > tagging._MAPPED_FROM
    path.write_bytes(original)
    seen: list[list[str]] = []

    def compare(before: bytes, after: object, fmt: str, parsed: object = None) -> list[str]:
        seen.append(sorted(p.name for p in tmp_path.iterdir()))  # the temporary file is there
        raise stop

    monkeypatch.setattr(contentcheck, "compare", compare)
    if isinstance(stop, KeyboardInterrupt):
        with pytest.raises(KeyboardInterrupt):
            rightsmeta.tag(path, DENY_AI)
    else:
        result = rightsmeta.tag(path, DENY_AI)
        assert result.status == "failed" and result.reason == "refused"
    assert len(seen) == 1 and len(seen[0]) == 2
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert _unlocked(path)


def test_a_temporary_file_that_cannot_be_mapped_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mapping fails beyond an address-space limit (ENOMEM): the check then reads the file instead."""
    path = tmp_path / "photo.jpg"
    original = _noise(500, 600)
    assert len(original) > tagging._MAPPED_FROM
    path.write_bytes(original)
    maps: list[int] = []

    def no_map(*args: object, **kwargs: object) -> mmap.mmap:
        maps.append(1)
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(fsio.mmap, "mmap", no_map)
    result = rightsmeta.tag(path, DENY_AI)
    assert result.status == "tagged", result.reason
    assert maps == [1] and pixels(path.read_bytes()) == pixels(original)


def test_a_png_of_many_chunks_is_walked_at_about_the_cost_of_unpacking_their_headers() -> None:
    """libpng writes 8 KiB IDAT chunks: a 9 MB image has a thousand, and a tag walks it twice.
    The walk's time as a ratio to a bare loop unpacking the same headers (the least of 60
    alternating runs, so that the shared machine's load cancels): 4 to 6.3 when each header was two
    slices and two conversions, 2.0 to 3.25 with one ``unpack_from`` (3.25 in a full suite run at
    load 4 under nice)."""
    import time

    from rightsmeta.carriers import png

    image = image_bytes("png", size=(300, 200), seed=2)
    chunks = png.walk(image)
    idat = b"".join(png.data(image, c) for c in chunks if c.type == b"IDAT")
    idat = idat * (1 + 300_000 // len(idat))  # only walked, never decoded
    many = (image[: chunks[1].start] + b"".join(png.make(b"IDAT", idat[i : i + 256]) for i in range(0, len(idat), 256))
            + png.make(b"IEND", b""))
    header = struct.Struct(">I4s").unpack_from

    def bare() -> list[tuple[bytes, int, int]]:
        pos, found = 8, []
        while pos < len(many):
            length, kind = header(many, pos)
            found.append((kind, pos, length))
            pos += 12 + length
        return found

    assert [tuple(c) for c in png.walk(many)] == bare() and len(bare()) > 1000
    least = {"walk": 9.0, "bare": 9.0}
    for _ in range(60):
        for name, run in (("walk", lambda: png.walk(many)), ("bare", bare)):
            start = time.perf_counter()
            run()
            least[name] = min(least[name], time.perf_counter() - start)
    assert least["walk"] / least["bare"] < 3.6, least
