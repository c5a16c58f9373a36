"""The ledger and the essence fingerprints: stripped copies found, unrelated files not, JSONL, hostile input.

Every file is real and made here: Pillow images, WAV clips (soundfile) re-encoded with ffmpeg,
hand-written PDFs rewritten by qpdf. ``RIGHTSMETA_MEASURE=1`` runs the wider measurements the
thresholds in rightsmeta/fingerprint.py come from; ``RIGHTSMETA_BENCH=100000`` the lookup timing
in rightsmeta/ledger.py.
"""

from __future__ import annotations

import io
import itertools
import json
import multiprocessing
import os
import random
import re
import sqlite3
import statistics
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import iscc_core
import material
import numpy as np
import pytest
import soundfile
from jsonschema import Draft202012Validator
from PIL import Image, ImageDraw, ImageFilter
from referencing import Registry, Resource

import rightsmeta
from rightsmeta import Assertion
from rightsmeta.fingerprint import (
    GRIDS,
    GRIDS_V1,
    MATCH_THRESHOLD,
    Essence,
    distance,
    essence,
    region_pair_allowed,
)
from rightsmeta.ledger import (
    _FREQUENCY_ORDER,
    IMAGE_BAND_WIDTHS,
    MAX_LINE,
    SCHEMA_VERSION,
    Ledger,
    LedgerError,
    Match,
    Work,
    _v3_probe_keys,
    default_path,
)

ROOT = Path(__file__).resolve().parent.parent
REPORT: dict[str, float] = {}  # distance per transformation, printed at the end with -s


# --- generated works ---------------------------------------------------------------------------


def picture(seed: int, size: tuple[int, int] = (128, 96)) -> Image.Image:
    """Photo-ish content, distinct per seed: a gradient, random shapes, noise, sometimes blur."""
    rng = random.Random(seed)
    w, h = size
    start = np.array([rng.randrange(256) for _ in range(3)], float)
    end = np.array([rng.randrange(256) for _ in range(3)], float)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w]
    ramp = np.cos(angle) * xx / w + np.sin(angle) * yy / h
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) or 1)
    img = Image.fromarray((start + (end - start) * ramp[..., None]).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(3, 12)):
        shape = rng.choice(["ellipse", "rect", "poly", "line"])
        colour = tuple(rng.randrange(256) for _ in range(3))
        x0, y0 = rng.uniform(-0.2, 1) * w, rng.uniform(-0.2, 1) * h
        x1, y1 = x0 + rng.uniform(0.05, 0.7) * w, y0 + rng.uniform(0.05, 0.7) * h
        if shape == "ellipse":
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        elif shape == "rect":
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        elif shape == "poly":
            draw.polygon([(rng.uniform(0, w), rng.uniform(0, h)) for _ in range(rng.randint(3, 6))], fill=colour)
        else:
            draw.line([x0, y0, x1, y1], fill=colour, width=rng.randint(1, max(2, w // 20)))
    noisy = np.asarray(img, float) + np.random.default_rng(seed).normal(0, rng.uniform(0, 12), (h, w, 3))
    img = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
    return img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2))) if rng.random() < 0.3 else img


def encode(img: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def clip(seed: int, seconds: float = 4.0, rate: int = 44100) -> bytes:
    """A music-like stereo WAV: random notes with harmonics and decays, some noise bursts."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    out = np.zeros(n)
    pos = 0.0
    while pos < seconds:
        length = rng.uniform(0.1, 0.6)
        f0 = 110 * 2 ** (rng.integers(0, 36) / 12)
        a, b = int(pos * rate), min(n, int((pos + length) * rate))
        tt = t[a:b] - pos
        env = np.exp(-tt * rng.uniform(1, 8))
        tone = sum((0.6**k) * np.sin(2 * np.pi * f0 * (k + 1) * tt + rng.uniform(0, 6)) for k in range(4))
        out[a:b] += env * tone * rng.uniform(0.2, 0.6)
        if rng.random() < 0.3:
            out[a:b] += env * rng.normal(0, 0.1, b - a)
        pos += length * rng.uniform(0.5, 1.0)
    out /= max(1e-9, float(np.abs(out).max())) * 1.1
    buf = io.BytesIO()
    soundfile.write(buf, np.stack([out, np.roll(out, 37) * 0.9], axis=1), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


_SYLLABLES = "ka lo mi ren tas vu pel dor si na gru fen ol ix bar que to zan mer lin".split()


def paragraphs(seed: int, count: int = 12) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(60))
        for _ in range(count)
    ]


def pdf(texts: list[str], pages: int = 2) -> bytes:
    """A PDF with Helvetica text on ``pages`` pages, written by hand (Flate-compressed contents)."""
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    }
    per_page = -(-len(texts) // pages)
    kids = []
    for page in range(pages):
        ops = ["BT /F1 10 Tf 12 TL 50 800 Td"]
        for text in texts[page * per_page : (page + 1) * per_page]:
            words = text.split()
            ops += [f"({' '.join(words[i : i + 12])}) '" for i in range(0, len(words), 12)] + ["() '"]
        content = zlib.compress("\n".join(ops + ["ET"]).encode("latin-1"))
        page_id, content_id = 4 + 2 * page, 5 + 2 * page
        objects[content_id] = b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(content), content)
        objects[page_id] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents %d 0 R >>" % content_id
        )
        kids.append(b"%d 0 R" % page_id)
    objects[2] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), pages)
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, objects[number])
    xref, size = len(out), max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    out += b"".join(b"%010d 00000 n \n" % offsets[n] for n in range(1, size))
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)


def epub(texts: list[str], *, opf_extra: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        z.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
            '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
            "</rootfiles></container>",
        )
        items = "".join(f'<item id="c{i}" href="c{i}.xhtml" media-type="application/xhtml+xml"/>' for i in range(len(texts)))
        spine = "".join(f'<itemref idref="c{i}"/>' for i in range(len(texts)))
        z.writestr(
            "OEBPS/content.opf",
            '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">'
            f'<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>T</dc:title>{opf_extra}</metadata>'
            f"<manifest>{items}</manifest><spine>{spine}</spine></package>",
        )
        for i, text in enumerate(texts):
            z.writestr(
                f"OEBPS/c{i}.xhtml",
                '<?xml version="1.0"?><!DOCTYPE html><html xmlns="http://www.w3.org/1999/xhtml"><head>'
                f"<title>c{i}</title><style>p {{ margin: 0 }}</style></head><body><p>{text}&nbsp;&amp;</p></body></html>",
            )
    return buf.getvalue()


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


def ffmpeg_convert(ffmpeg: str, tmp: Path, data: bytes, ext: str, *args: str) -> bytes:
    src, out = tmp / "in.wav", tmp / f"out.{ext}"
    src.write_bytes(data)
    run(ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(src), *args, str(out))
    return out.read_bytes()


# --- the ledger the matching tests share --------------------------------------------------------

ASSERTIONS = [
    Assertion.build(deny=["ai"], holder="Ada Lovelace"),
    Assertion.build(deny=["all"], allow=["search"], holder="Grace Hopper"),
    Assertion.build(constrain={"genai-training": "https://example.org/terms"}, holder="Alan Turing"),
]
N_IMAGES, N_CLIPS, N_PDFS = 50, 20, 20


@dataclass
class Corpus:
    ledger: Ledger
    images: list[Work]  # the first ones are tagged files on disk (see test_image_transformations)
    originals: dict[str, bytes]  # work id -> the bytes tagged
    clips: list[Work]
    pdfs: list[Work]
    folder: Path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    folder = tmp_path_factory.mktemp("ledger")
    with Ledger.open(folder / "ledger.sqlite3") as ledger:
        originals: dict[str, bytes] = {}

        def add(path: Path, fmt: str, data: bytes, index: int) -> Work:
            assertion = ASSERTIONS[index % len(ASSERTIONS)].dated()
            path.write_bytes(data)
            if fmt in ("jpeg", "png"):
                result = rightsmeta.tag(path, assertion)
                assert result.status == "tagged", result.reason
                data = path.read_bytes()
            work = Work.create(path, fmt, essence(data, fmt), assertion, ["xmp"] if fmt in ("jpeg", "png") else [])
            assert work.essence_hash and work.perceptual, essence(data, fmt).reason
            ledger.record(work)
            originals[work.id] = data
            return work

        images = [
            add(folder / f"img{i}.{'jpg' if i % 2 else 'png'}", "jpeg" if i % 2 else "png",
                encode(picture(i, (320, 240)), "JPEG" if i % 2 else "PNG", **({"quality": 92} if i % 2 else {})), i)
            for i in range(N_IMAGES)
        ]
        clips = [add(folder / f"clip{i}.wav", "wav", clip(i), i) for i in range(N_CLIPS)]
        pdfs = [add(folder / f"doc{i}.pdf", "pdf", pdf(paragraphs(i)), i) for i in range(N_PDFS)]
        yield Corpus(ledger, images, originals, clips, pdfs, folder)


def check_match(corpus: Corpus, work: Work, data: bytes, fmt: str, label: str, *, exact: bool | None = None) -> Match:
    seen = essence(data, fmt)
    match = corpus.ledger.find(seen)
    assert match is not None, f"{label}: no match ({seen})"
    assert match.work.id == work.id, f"{label}: matched {match.work.path} instead of {work.path}"
    assert match.work.assertion == work.assertion
    assert 0.0 <= match.distance <= MATCH_THRESHOLD[work.kind or ""]
    if exact is not None:
        assert match.exact is exact, f"{label}: exact={match.exact}, distance {match.distance}"
    assert match.exact == (match.distance == 0.0 and seen.hash == work.essence_hash)
    REPORT[label] = max(REPORT.get(label, 0.0), match.distance)
    return match


# --- stripped copies are found -------------------------------------------------------------------


def test_image_transformations(corpus: Corpus, exiftool: str, tmp_path: Path) -> None:
    for work in corpus.images[:8]:
        tagged = corpus.originals[work.id]
        fmt = work.format
        with Image.open(io.BytesIO(tagged)) as img:
            img.load()
            pixels = img.convert("RGB")
        # exiftool -all= removes every metadata block; the pixels, hence the essence hash, stay.
        stripped = tmp_path / f"stripped.{fmt}"
        stripped.write_bytes(tagged)
        run(exiftool, "-q", "-overwrite_original", "-all=", str(stripped))
        assert b"rightsmeta" not in stripped.read_bytes()
        check_match(corpus, work, stripped.read_bytes(), fmt, f"{fmt}: exiftool -all=", exact=True)
        # Pillow re-save drops XMP; lossless for PNG (same hash), a new JPEG encode for JPEG.
        resaved = encode(pixels, "PNG" if fmt == "png" else "JPEG")
        check_match(corpus, work, resaved, fmt, f"{fmt}: Pillow re-save", exact=fmt == "png")
        check_match(corpus, work, encode(pixels, "JPEG", quality=70), "jpeg", f"{fmt}: JPEG quality 70")
        half = pixels.resize((pixels.width // 2, pixels.height // 2), Image.Resampling.LANCZOS)
        check_match(corpus, work, encode(half, "JPEG", quality=85) if fmt == "jpeg" else encode(half, "PNG"), fmt,
                    f"{fmt}: downscale 50 %")
        if fmt == "png":
            check_match(corpus, work, encode(pixels, "JPEG"), "jpeg", "png -> jpeg")


def test_audio_transformations(corpus: Corpus, ffmpeg: str, tmp_path: Path) -> None:
    for work in corpus.clips[:5]:
        wav = corpus.originals[work.id]
        mp3 = ffmpeg_convert(ffmpeg, tmp_path, wav, "mp3", "-b:a", "96k")
        check_match(corpus, work, mp3, "mp3", "wav -> mp3 96 kbps")
        # An MP3 re-encoded at 96 kbps from a 192 kbps MP3 (the platform case: lossy to lossy).
        mp3_192 = ffmpeg_convert(ffmpeg, tmp_path, wav, "mp3", "-b:a", "192k")
        (tmp_path / "192.mp3").write_bytes(mp3_192)
        run(ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(tmp_path / "192.mp3"), "-b:a", "96k", str(tmp_path / "96.mp3"))
        check_match(corpus, work, (tmp_path / "96.mp3").read_bytes(), "mp3", "mp3 192 -> 96 kbps")
        flac = ffmpeg_convert(ffmpeg, tmp_path, wav, "flac")
        check_match(corpus, work, flac, "flac", "wav -> flac", exact=True)
        m4a = ffmpeg_convert(ffmpeg, tmp_path, wav, "m4a", "-c:a", "aac", "-b:a", "128k")
        check_match(corpus, work, m4a, "m4a", "wav -> m4a (AAC 128 kbps, decoded by ffmpeg)")


def test_pdf_transformations(corpus: Corpus, qpdf: str, tmp_path: Path) -> None:
    import pypdf

    for work in corpus.pdfs[:5]:
        original = tmp_path / "original.pdf"
        original.write_bytes(corpus.originals[work.id])
        rewritten = tmp_path / "qpdf.pdf"
        run(qpdf, "--object-streams=generate", str(original), str(rewritten))
        assert rewritten.read_bytes() != original.read_bytes()
        check_match(corpus, work, rewritten.read_bytes(), "pdf", "pdf: qpdf --object-streams=generate", exact=True)
        # A full rewrite with new metadata (pypdf): the content streams decode the same.
        writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(original))
        writer.add_metadata({"/Title": "Renamed", "/Producer": "someone else"})
        out = io.BytesIO()
        writer.write(out)
        check_match(corpus, work, out.getvalue(), "pdf", "pdf: pypdf rewrite, new Info", exact=True)
    # An edited edition (1 of 12 paragraphs rewritten) still matches by its text.
    edited = paragraphs(3)
    edited[5] = paragraphs(999)[0]
    check_match(corpus, corpus.pdfs[3], pdf(edited), "pdf", "pdf: one paragraph of 12 rewritten", exact=False)


def test_epub_text_survives_metadata_changes() -> None:
    texts = paragraphs(7, 4)
    first, second = essence(epub(texts), "epub"), essence(epub(texts, opf_extra="<dc:rights>changed</dc:rights>"), "epub")
    assert first.kind == "text" and first.hash and first.perceptual, first.reason
    assert (first.hash, first.perceptual) == (second.hash, second.perceptual)
    other = essence(epub(paragraphs(8, 4)), "epub")
    assert distance(first.perceptual, other.perceptual) > 0.25
    # The PDF and the EPUB of the same text are near in text, not equal in hash.
    as_pdf = essence(pdf(texts), "pdf")
    assert as_pdf.hash != first.hash and distance(as_pdf.perceptual, first.perceptual) <= MATCH_THRESHOLD["text"]


def test_exact_match_is_preferred_and_newest_first(tmp_path: Path) -> None:
    data = encode(picture(5), "PNG")
    seen = essence(data, "png")
    with Ledger.open(tmp_path / "l.sqlite3") as ledger:
        old = replace(Work.create("a.png", "png", seen, ASSERTIONS[0]), tagged_at="2020-01-01T00:00:00+00:00")
        new = replace(Work.create("b.png", "png", seen, ASSERTIONS[1]), tagged_at="2025-01-01T00:00:00+00:00")
        near = Work.create("c.jpg", "jpeg", essence(encode(picture(5).convert("RGB"), "JPEG", quality=70), "jpeg"), ASSERTIONS[2])
        assert ledger.record(old) and ledger.record(new) and ledger.record(near)
        assert not ledger.record(old)  # same id: nothing changes
        found = ledger.matches(seen)
        assert [m.work.path for m in found] == ["b.png", "a.png", "c.jpg"]
        assert found[0].exact and found[0].distance == 0.0 and not found[2].exact
        assert ledger.find(seen) == found[0]
        assert ledger.get(new.id) == new and ledger.get("nope") is None
        # Another kind never matches, and an essence without fields finds nothing.
        assert ledger.find(Essence("audio", None, (seen.perceptual or "")[:32])) is None
        assert ledger.find(Essence(None, None, None, "x")) is None


def _flip_frequencies(code: int, positions: Iterable[int]) -> int:
    """``code`` (256 bits) with the bits at these places of the DCT frequency order flipped."""
    return code ^ sum(1 << (255 - int(_FREQUENCY_ORDER[p])) for p in positions)


def test_index_finds_every_code_within_the_threshold(tmp_path: Path) -> None:
    """Multi-index hashing must not miss a code within its guarantee, however its bits are spread:
    text and audio codes within their thresholds, image codes within 23 bits (12 bands of 21-22
    bits probed within one bit, IMAGE_BAND_WIDTHS), and beyond that up to the threshold when the
    differences leave a band within one bit, as real copies' do (they differ in high frequencies)."""
    rng = random.Random(3)
    with Ledger.open(tmp_path / "l.sqlite3") as ledger:
        works = [
            Work(f"w{i}", f"{i}.png", "png", None, "image", f"{rng.getrandbits(256):064x}", ASSERTIONS[0])
            for i in range(5000)
        ]
        ledger.record_many(works)
        assert len(ledger) == 5000
        target = int(works[1234].perceptual or "", 16)
        starts = list(itertools.accumulate(IMAGE_BAND_WIDTHS, initial=0))[:-1]
        # 23 bits, 2 in each band of the frequency order but one: found (the guarantee).
        spread = _flip_frequencies(target, [first + bit for first in starts for bit in (3, 11)][:23])
        match = ledger.find(Essence("image", None, f"{spread:064x}"))
        assert match is not None and match.work.id == "w1234" and match.distance == 23 / 256
        # 24 bits, 2 in every band: within the threshold but no band within one bit, so not found.
        # This pins the trade: a real copy's differences cluster (bench/region_lookup.py --recall).
        assert ledger.find(Essence("image", None, f"{_flip_frequencies(spread, [starts[-1] + 11]):064x}")) is None
        # 31 bits (the image threshold) in the highest frequencies, as a real copy's: found.
        clustered = _flip_frequencies(target, range(256 - 31, 256))
        match = ledger.find(Essence("image", None, f"{clustered:064x}"))
        assert match is not None and match.work.id == "w1234" and match.distance == 31 / 256
        beyond = _flip_frequencies(clustered, [0])  # 32 bits: over the threshold
        assert all(m.work.id != "w1234" for m in ledger.matches(Essence("image", None, f"{beyond:064x}")))
        # A text code keeps 16-bit bands and its guarantee: 31 bits, 2 in each band but one.
        text = Work("t", "t.txt", "txt", None, "text", f"{rng.getrandbits(256):064x}", ASSERTIONS[0])
        ledger.record(text)
        spread_text = int(text.perceptual or "", 16) ^ sum(1 << (16 * band + bit) for band in range(16) for bit in (3, 11)) ^ 1 << 3
        found = ledger.find(Essence("text", None, f"{spread_text:064x}"))
        assert found is not None and found.work.id == "t" and found.distance == 31 / 256
        # 23 bits in a 128-bit audio code, 3 in each of seven bands and 2 in the last.
        audio = Work("a", "a.wav", "wav", None, "audio", f"{rng.getrandbits(128):032x}", ASSERTIONS[0])
        ledger.record(audio)
        code = int(audio.perceptual or "", 16) ^ sum(1 << (16 * (i % 8) + i // 8) for i in range(23))
        found = ledger.find(Essence("audio", None, f"{code:032x}"))
        assert found is not None and found.work.id == "a" and found.distance == 23 / 128


def test_image_bands_hold_few_chance_candidates(tmp_path: Path) -> None:
    """Real image codes share their low frequencies: 16-bit bands read ~730 chance rows per lookup
    at 100,000 real works. Here 400 works share one 16-bit band of the query each (the rest random,
    far beyond the threshold): the 21-22-bit bands of the frequency order read almost none of them."""
    rng = random.Random(5)
    query = rng.getrandbits(256)
    works = []
    for i in range(400):
        band = 0xFFFF << 16 * (i % 16)
        works.append(Work(f"w{i}", f"{i}.png", "png", None, "image",
                          f"{query & band | rng.getrandbits(256) & ~band:064x}", ASSERTIONS[0]))
    with Ledger.open(tmp_path / "l.sqlite3") as ledger:  # closing indexes the tail: candidates from whole_bands
        ledger.record_many(works)
    with Ledger.open(tmp_path / "l.sqlite3", readonly=True) as ledger:
        assert ledger._tail_length() == 0
        candidates = ledger._near("image", f"{query:064x}", MATCH_THRESHOLD["image"])
        assert len(candidates) <= 10, len(candidates)
        assert ledger.find(Essence("image", None, f"{query:064x}")) is None


# --- unrelated files are not reported as matches ------------------------------------------------


def test_false_matches_images(corpus: Corpus) -> None:
    matched = []
    for seed in range(100_000, 101_000):
        seen = essence(encode(picture(seed), "PNG"), "png")
        found = corpus.ledger.find(seen)
        if found is not None:
            matched.append((seed, found.distance))
    REPORT["false matches: 1000 unrelated images"] = len(matched) / 1000
    assert len(matched) <= 10, matched


def test_false_matches_audio_and_pdfs(corpus: Corpus) -> None:
    clips = [corpus.ledger.find(essence(clip(5000 + seed), "wav")) for seed in range(50)]
    documents = [corpus.ledger.find(essence(pdf(paragraphs(5000 + seed)), "pdf")) for seed in range(20)]
    REPORT["false matches: 50 unrelated clips"] = sum(m is not None for m in clips) / 50
    REPORT["false matches: 20 unrelated PDFs"] = sum(m is not None for m in documents) / 20
    assert not any(clips) and not any(documents)


# --- JSON Lines ---------------------------------------------------------------------------------


def _validator() -> Draft202012Validator:
    schemas = {p.name: json.loads(p.read_text()) for p in (ROOT / "schemas").glob("*.schema.json")}
    registry: Registry[Any] = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas.values())
    return Draft202012Validator(schemas["ledger-line.schema.json"], registry=registry)


def test_export_import_round_trip(corpus: Corpus, tmp_path: Path) -> None:
    exported = io.StringIO()
    assert corpus.ledger.export_jsonl(exported) == len(corpus.ledger) == N_IMAGES + N_CLIPS + N_PDFS
    lines = exported.getvalue().splitlines()
    validator = _validator()
    for line in lines:
        validator.validate(json.loads(line))
    with Ledger.open(tmp_path / "platform.sqlite3") as platform:
        assert platform.import_jsonl(io.StringIO(exported.getvalue()), source="https://ada.example/works.jsonl") == len(lines)
        assert platform.import_jsonl(io.StringIO(exported.getvalue())) == 0  # idempotent
        assert len(platform) == len(lines)
        again = io.StringIO()
        platform.export_jsonl(again)
        reimported = [json.loads(line) for line in again.getvalue().splitlines()]
        assert all(r.pop("source") == "https://ada.example/works.jsonl" for r in reimported)
        assert reimported == [json.loads(line) for line in lines]
        # The platform now recognises a stripped copy of the creator's work.
        work = corpus.images[1]
        half = Image.open(io.BytesIO(corpus.originals[work.id])).convert("RGB").resize((160, 120))
        match = platform.find(essence(encode(half, "JPEG", quality=70), "jpeg"))
        assert match is not None and match.work.id == work.id and match.work.source == "https://ada.example/works.jsonl"
    names = io.StringIO()
    corpus.ledger.export_jsonl(names, paths=False)
    assert all("/" not in json.loads(line)["path"] for line in names.getvalue().splitlines())


def test_import_reports_the_bad_line_and_keeps_nothing(corpus: Corpus, tmp_path: Path) -> None:
    exported = io.StringIO()
    corpus.ledger.export_jsonl(exported)
    good = exported.getvalue().splitlines()[:3]
    bad_hash = json.loads(good[1]) | {"essence_hash": "xyz"}
    cases = {
        3: [good[0], good[1], "{not json", good[2]],
        2: [good[0], json.dumps(bad_hash), good[2]],
        4: [good[0], "", good[1], json.dumps(json.loads(good[2]) | {"assertion": {"permissions": {"ai": "no"}}})],
        1: ["[1, 2]"],
    }
    with Ledger.open(tmp_path / "l.sqlite3") as ledger:
        for number, lines in cases.items():
            with pytest.raises(LedgerError, match=rf"^line {number}: "):
                ledger.import_jsonl(io.StringIO("\n".join(lines) + "\n"))
            assert len(ledger) == 0
        for field, value, words in [
            ("perceptual", "abc", "perceptual"), ("kind", "video", "kind"), ("tagged_at", "yesterday", "tagged_at"),
            ("carriers", "xmp", "carriers"), ("id", "", "id"),
        ]:
            with pytest.raises(LedgerError, match=words):
                ledger.import_jsonl([json.dumps(json.loads(good[0]) | {field: value})])
        with pytest.raises(LedgerError, match="^line 2: longer than"):
            ledger.import_jsonl(io.StringIO(good[0] + "\n" + "x" * (MAX_LINE + 10) + "\n"))
        with pytest.raises(LedgerError, match="unknown field"):
            ledger.import_jsonl([json.dumps(json.loads(good[0]) | {"extra": 1})])
        with pytest.raises(LedgerError, match="missing field"):
            ledger.import_jsonl([json.dumps({k: v for k, v in json.loads(good[0]).items() if k != "carriers"})])
        assert len(ledger) == 0


def test_opening(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIGHTSMETA_LEDGER", str(tmp_path / "env.sqlite3"))
    assert default_path() == tmp_path / "env.sqlite3"
    monkeypatch.delenv("RIGHTSMETA_LEDGER")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_path() == tmp_path / "xdg" / "rightsmeta" / "ledger.sqlite3"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_path() == tmp_path / "home" / ".local" / "share" / "rightsmeta" / "ledger.sqlite3"
    with Ledger.open() as ledger:  # the default, folders created
        assert ledger.path.is_file() and len(ledger) == 0
        ledger.record(Work.create("x.png", "png", essence(encode(picture(1), "PNG"), "png"), ASSERTIONS[0]))
    with Ledger.open(readonly=True) as ledger:
        assert len(ledger) == 1
    with pytest.raises(LedgerError, match="cannot open"):
        Ledger.open(tmp_path / "missing.sqlite3", readonly=True)
    (tmp_path / "junk.sqlite3").write_bytes(b"not a database at all" * 100)
    with pytest.raises(LedgerError, match="not a usable rightsmeta ledger"):
        Ledger.open(tmp_path / "junk.sqlite3")
    with Ledger.open(tmp_path / "future.sqlite3") as ledger:
        ledger._db.execute("INSERT INTO schema_version (version) VALUES (99)")
    with pytest.raises(LedgerError, match="schema version 99"):
        Ledger.open(tmp_path / "future.sqlite3")


# --- essence: hostile and odd input -------------------------------------------------------------


def _bomb_png(side: int = 60_000) -> bytes:
    """A 1-bit PNG declaring side x side pixels whose IDAT (all zeros) inflates to ~450 MB."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer = zlib.compressobj(9)
    row = b"\0" * (1 + side // 8)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_hostile_input_returns_reasons_quickly() -> None:
    image = encode(picture(1), "PNG")
    samples = {
        "png": image, "jpeg": encode(picture(1), "JPEG"), "wav": clip(1, 1.5), "pdf": pdf(paragraphs(1)),
        "epub": epub(paragraphs(1, 2)), "mp3": b"ID3\x04\0\0\0\0\0\0" + b"\xff\xfb" * 50,
    }
    for fmt, data in samples.items():
        for label, bad in [("empty", b""), ("truncated", data[: len(data) // 3]), ("garbage", random.Random(fmt).randbytes(4000))]:
            started = time.monotonic()
            seen = essence(bad, fmt)
            assert time.monotonic() - started < 2.0, (fmt, label)
            assert isinstance(seen, Essence)
            if label != "truncated" or fmt in ("png", "pdf", "epub"):
                # A truncated WAV or JPEG still decodes partly (libsndfile and libjpeg pad); the rest cannot.
                assert seen.hash is None and seen.perceptual is None and seen.reason, (fmt, label, seen)
    bomb = _bomb_png()
    started = time.monotonic()
    seen = essence(bomb, "png")
    assert time.monotonic() - started < 1.0
    assert seen.kind == "image" and seen.hash is None and "pixels" in (seen.reason or ""), seen
    assert essence(b"whatever", "txt") == Essence(None, None, None, "no essence fingerprint for format 'txt'")


def test_epub_bombs_and_broken_packages() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("META-INF/container.xml", zipfile.ZipFile(io.BytesIO(epub(["x"]))).read("META-INF/container.xml"))
        z.writestr("OEBPS/content.opf", zipfile.ZipFile(io.BytesIO(epub(["x"]))).read("OEBPS/content.opf"))
        z.writestr("OEBPS/c0.xhtml", b"<p>" + b" " * (40 * 1024 * 1024) + b"</p>")  # 40 MB of spaces
    seen = essence(buf.getvalue(), "epub")
    assert seen.hash is None and "inflates" in (seen.reason or "")
    with zipfile.ZipFile(io.BytesIO(epub(["x"]))) as z:
        members = {name: z.read(name) for name in z.namelist()}
    members["OEBPS/content.opf"] = b'<!DOCTYPE p [<!ENTITY a "aaaaaaaaaa">]>' + members["OEBPS/content.opf"][21:]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, body in members.items():
            z.writestr(name, body)
    seen = essence(out.getvalue(), "epub")
    assert seen.hash is None and "content.opf" in (seen.reason or ""), seen


def test_degenerate_content_has_no_perceptual_code(ffmpeg: str, tmp_path: Path) -> None:
    flat = essence(encode(Image.new("RGB", (64, 48), (40, 90, 200)), "PNG"), "png")
    assert flat.hash and flat.perceptual is None and "uniform" in (flat.reason or "")
    silent = io.BytesIO()
    soundfile.write(silent, np.zeros((44100 * 2, 2)), 44100, format="WAV")
    quiet = essence(silent.getvalue(), "wav")
    assert quiet.hash and quiet.perceptual is None and "silent" in (quiet.reason or "")
    short = essence(clip(1, 0.3), "wav")
    assert short.hash and short.perceptual is None and "short" in (short.reason or "")
    textless = essence(pdf([" "], pages=1), "pdf")
    assert textless.hash and textless.perceptual is None and "too little text" in (textless.reason or "")
    # A video file without an audio track says so, and is hashed by its video packets (test_silent_video.py).
    run(ffmpeg, "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=5", "-t", "1",
        "-pix_fmt", "yuv420p", str(tmp_path / "v.mp4"))
    video = essence((tmp_path / "v.mp4").read_bytes(), "mp4")
    assert video.hash and video.perceptual is None and "no audio track" in (video.reason or ""), video


def test_image_essence_is_independent_of_mode_and_metadata() -> None:
    img = picture(11)
    png = essence(encode(img, "PNG"), "png")
    with_text = io.BytesIO()
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "metadata only")
    img.save(with_text, "PNG", pnginfo=info)
    assert essence(with_text.getvalue(), "png") == png
    # Other encodings of the same pixels: the same codes; the exact hash is of the coded data (v2),
    # the pixel hash (asked for, as older ledgers hold it) the same.
    tiff = essence(encode(img, "TIFF"), "tiff", legacy=True)
    assert replace(tiff, hash=png.hash, legacy_hash=None) == png
    webp = essence(encode(img, "WEBP", lossless=True), "webp", legacy=True)
    assert webp.perceptual == png.perceptual and webp.regions == png.regions
    assert tiff.legacy_hash == webp.legacy_hash == essence(encode(img, "PNG"), "png", legacy=True).legacy_hash
    # 16-bit grey decodes and hashes.
    deep = Image.fromarray(np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20)
    assert deep.mode == "I;16"
    assert essence(encode(deep, "PNG"), "png").hash


def test_image_code_is_iscc() -> None:
    """The numpy DCT gives the same bits as iscc_core's 256-bit Image-Code."""
    from rightsmeta.fingerprint import _image_hash

    for seed in range(50):
        grey = picture(seed).convert("L").resize((32, 32), Image.Resampling.BICUBIC)
        expected = iscc_core.soft_hash_image_v0(list(grey.tobytes()), bits=256).hex()
        assert _image_hash(np.asarray(grey, dtype=np.float64)) == expected


def test_distance() -> None:
    assert distance("ffff", "ffff") == 0.0
    assert distance("ffff", "0000") == 1.0
    assert distance("ff00", "fe00") == 1 / 16
    assert distance(None, "ff") == distance("ff", "fff") == distance("zz", "zz") == 1.0


# --- measurements (opt-in) ----------------------------------------------------------------------


@pytest.mark.skipif(not os.environ.get("RIGHTSMETA_MEASURE"), reason="set RIGHTSMETA_MEASURE=1 to measure")
def test_measure_thresholds(ffmpeg: str, tmp_path: Path) -> None:
    def stats(values: list[float]) -> str:
        return f"max {max(values):.3f} mean {statistics.mean(values):.3f} p99 {np.percentile(values, 99):.3f}"

    robust: dict[str, list[float]] = {}
    for seed in range(10_000, 10_200):
        img = picture(seed, (320, 240))
        jpeg, png = encode(img, "JPEG", quality=92), encode(img, "PNG")
        base_j, base_p = essence(jpeg, "jpeg").perceptual, essence(png, "png").perceptual
        decoded = Image.open(io.BytesIO(jpeg)).convert("RGB")
        for label, code, data in [
            ("jpeg q70", base_j, encode(decoded, "JPEG", quality=70)),
            ("downscale 50%", base_j, encode(decoded.resize((160, 120)), "JPEG", quality=85)),
            ("png -> jpeg", base_p, encode(img, "JPEG")),
            ("jpeg re-save", base_j, encode(decoded, "JPEG")),
        ]:
            robust.setdefault(label, []).append(distance(code, essence(data, "jpeg").perceptual))
    ledger = [essence(encode(picture(s, (320, 240)), "PNG"), "png").perceptual for s in range(50)]
    nearest = [
        min(distance(essence(encode(picture(s), "PNG"), "png").perceptual, code) for code in ledger)
        for s in range(100_000, 101_000)
    ]
    print("\nimage:", {k: stats(v) for k, v in robust.items()}, "unrelated nearest:", f"min {min(nearest):.3f}",
          f"p1 {np.percentile(nearest, 1):.3f}")
    originals = [clip(s) for s in range(40)]
    codes = [essence(w, "wav").perceptual for w in originals]
    for label, ext, args in [("mp3 96k", "mp3", ["-b:a", "96k"]), ("aac 128k", "m4a", ["-b:a", "128k"]),
                             ("opus 64k", "opus", ["-b:a", "64k"])]:
        values = [distance(c, essence(ffmpeg_convert(ffmpeg, tmp_path, w, ext, *args), ext).perceptual)
                  for w, c in zip(originals, codes, strict=True)]
        print("audio", label, stats(values))
    nearest = [min(distance(essence(clip(s), "wav").perceptual, c) for c in codes) for s in range(1000, 1300)]
    print("audio unrelated nearest:", f"min {min(nearest):.3f} p1 {np.percentile(nearest, 1):.3f}")
    texts = [essence(pdf(paragraphs(s)), "pdf").perceptual for s in range(20)]
    nearest = [min(distance(essence(pdf(paragraphs(s)), "pdf").perceptual, c) for c in texts) for s in range(500, 600)]
    edits = []
    for s in range(20):
        edited = paragraphs(s)
        edited[5] = paragraphs(999 + s)[0]
        edits.append(distance(texts[s], essence(pdf(edited), "pdf").perceptual))
    print("text unrelated nearest:", f"min {min(nearest):.3f}", "one paragraph of 12 rewritten:", stats(edits))


def _png_essence(seed: int) -> Essence:
    return essence(encode(picture(seed), "PNG"), "png")


@pytest.mark.skipif(not os.environ.get("RIGHTSMETA_BENCH"), reason="set RIGHTSMETA_BENCH=100000 to time lookups")
def test_bench_lookup(tmp_path: Path) -> None:
    count = int(os.environ["RIGHTSMETA_BENCH"])
    started = time.monotonic()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        codes = pool.map(_png_essence, range(count), chunksize=500)
    print(f"\n{count} image essences in {time.monotonic() - started:.0f} s")
    with Ledger.open(tmp_path / "big.sqlite3") as ledger:
        started = time.monotonic()
        ledger.record_many(Work.create(f"{i}.png", "png", e, ASSERTIONS[0]) for i, e in enumerate(codes))
        print(f"recorded in {time.monotonic() - started:.1f} s, {os.path.getsize(tmp_path / 'big.sqlite3') / 1e6:.0f} MB")
        queries = [
            essence(encode(picture(seed).convert("RGB"), "JPEG", quality=70), "jpeg") for seed in range(0, count, count // 200)
        ]
        unrelated = [essence(encode(picture(seed), "PNG"), "png") for seed in range(10**7, 10**7 + 200)]
        exact = codes[: 200]
        for label, batch in [("transformed copies", queries), ("unrelated", unrelated), ("exact", exact)]:
            candidates = [len(ledger._near("image", q.perceptual or "", MATCH_THRESHOLD["image"])) for q in batch]
            started = time.monotonic()
            found = [ledger.find(q) for q in batch]
            each = (time.monotonic() - started) / len(batch) * 1000
            print(f"{label}: {each:.2f} ms per lookup, {statistics.mean(candidates):.0f} candidates, "
                  f"{sum(f is not None for f in found)}/{len(batch)} matched")


def test_report_distances() -> None:
    """Prints what the matching tests measured (pytest -s)."""
    for label, value in sorted(REPORT.items()):
        print(f"{label}: {value:.3f}")


# --- trust in imported registries (issue 11.7) ------------------------------------------------------


def test_an_imported_line_never_outranks_the_creators_own_record(tmp_path: Path) -> None:
    """A registry claims the creator's essence with "allow all" and a later date: the stripped copy
    still names the creator's own work first, lists the claim, and may not be used."""
    from rightsmeta.verify import verify

    original = encode(picture(41), "PNG")
    stripped = tmp_path / "copy.png"
    stripped.write_bytes(original)  # same pixels, no metadata
    deny = Assertion.build(deny=["all"]).for_work()
    local = replace(Work.create("mine.png", "png", essence(original, "png"), deny, ["xmp"], id=deny.work_id),
                    tagged_at="2026-01-01T00:00:00+00:00")
    claim = local.to_json() | {
        "id": "registry-1", "path": "theirs.png", "tagged_at": "2026-06-01T00:00:00+00:00",
        "assertion": Assertion.build(allow=["all"]).to_json() | {"date": "2026-06-01T00:00:00+00:00"},
    }
    with Ledger.open(tmp_path / "l.sqlite3") as ledger:
        ledger.record(local)
        assert ledger.import_jsonl([json.dumps(claim)]) == 1
        [imported] = [w for w in ledger if w.id == "registry-1"]
        assert imported.source == "imported registry"  # an unnamed registry is still not local
        found = ledger.matches(essence(original, "png"))
        assert [m.work.id for m in found] == [local.id, "registry-1"]
        verdict = verify(stripped, ledger=ledger)
    assert verdict.status == "stripped"
    assert verdict.match is not None and verdict.match.work.id == local.id
    row = verdict.to_json()
    assert set(row["permissions"].values()) == {"notAllowed"}
    assert [m["work_id"] for m in row["match"]["also"]] == ["registry-1"]
    assert row["match"]["also"][0]["source"] == "imported registry"
    assert any("imported from imported registry" in r for r in row["reasons"])


def test_imported_claims_combine_by_precedence(tmp_path: Path) -> None:
    # Two registries claim one essence, neither local: the most restrictive state wins per purpose.
    from rightsmeta.ledger import combined

    seen = essence(encode(picture(42), "PNG"), "png")
    a = Work.create("a.png", "png", seen, Assertion.build(deny=["genai-training"], allow=["search"]), id="a")
    b = Work.create("b.png", "png", seen, Assertion.build(allow=["all"], constrain={"ai-inference": "https://x.example/t"}), id="b")
    with Ledger.open(tmp_path / "l.sqlite3") as ledger:
        lines = [json.dumps(w.to_json()) for w in (a, b)]
        assert ledger.import_jsonl(lines, source="https://registry.example/works.jsonl") == 2
        found = ledger.matches(seen)
    assert {m.work.source for m in found} == {"https://registry.example/works.jsonl"}
    states = {p.value: perm.state.value for p, perm in combined(found).items()}
    assert states == {"data-mining": "allowed", "ai-training": "allowed", "genai-training": "notAllowed",
                      "ai-inference": "constrained", "search": "allowed"}


def test_import_refuses_hostile_lines_without_a_traceback(corpus: Corpus, tmp_path: Path) -> None:
    exported = io.StringIO()
    corpus.ledger.export_jsonl(exported)
    good = json.loads(exported.getvalue().splitlines()[0])
    with Ledger.open(tmp_path / "l.sqlite3") as ledger:
        nested = '{"id": "x", "assertion": ' + "[" * 100_000 + "]" * 100_000 + "}"
        with pytest.raises(LedgerError, match=r"^line 1: JSON nested deeper than 32 levels"):
            ledger.import_jsonl([nested])
        with pytest.raises(LedgerError, match=r"^line 2: not UTF-8 \(byte 0xff"):
            ledger.import_jsonl(io.BytesIO(json.dumps(good).encode() + b"\n{\"id\": \"\xff\"}\n"))
        for change, words in [
            ({"assertion": good["assertion"] | {"date": "last tuesday"}}, "'assertion.date' must be an ISO 8601"),
            ({"assertion": good["assertion"] | {"date": "2999-01-01T00:00:00+00:00"}}, "lies in the future"),
            ({"assertion": good["assertion"] | {"date": {"nested": [1]}}}, "'date' must be a string"),
            ({"assertion": good["assertion"] | {"work_id": "someone-else"}}, "differs from the line's 'id'"),
            ({"assertion": good["assertion"] | {"copyright": ["x"]}}, "'copyright' must be a string"),
            ({"assertion": good["assertion"] | {"holder": "Ada"}}, "'assertion.holder' must be an object"),
            ({"id": "has space"}, "'id' must be visible ASCII"),
            ({"id": "=HYPERLINK(1)"}, "'id' must be visible ASCII"),
        ]:
            with pytest.raises(LedgerError, match=words):
                ledger.import_jsonl([json.dumps(good | change)])
        assert len(ledger) == 0


def test_cli_import_records_the_file_as_source_and_reports_bad_bytes(corpus: Corpus, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from rightsmeta.cli import main

    exported = io.StringIO()
    corpus.ledger.export_jsonl(exported)
    registry = tmp_path / "registry.jsonl"
    registry.write_text(exported.getvalue().splitlines()[0] + "\n", encoding="utf-8")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"id": "caf\xe9"}\n')
    db = tmp_path / "platform.sqlite3"
    done = CliRunner().invoke(main, ["ledger", "import", "--ledger", str(db), str(registry)])
    assert done.exit_code == 0, done.output
    with Ledger.open(db) as ledger:
        assert [w.source for w in ledger] == [str(registry.absolute())]
    done = CliRunner().invoke(main, ["ledger", "import", "--ledger", str(db), str(bad)])
    assert done.exit_code == 1 and isinstance(done.exception, SystemExit), done.output  # no traceback
    assert "bad.jsonl: line 1: not UTF-8 (byte 0xe9 at offset 11)" in done.output


# --- the region index (issue 17): 32-bit keys, the migration from schemas 2 and 3 -----------------

# rightsmeta's schema 2 (git 0240e80, rightsmeta/ledger.py ``_SCHEMA``), verbatim: region codes
# indexed by 16-bit bands.
_V2_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS works (
    n INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    format TEXT NOT NULL,
    kind TEXT,
    essence_hash TEXT,
    perceptual TEXT,
    assertion TEXT NOT NULL,
    carriers TEXT NOT NULL,
    tagged_at TEXT NOT NULL,
    source TEXT
);
CREATE INDEX IF NOT EXISTS works_essence ON works (essence_hash) WHERE essence_hash IS NOT NULL;
CREATE TABLE IF NOT EXISTS bands (
    kind TEXT NOT NULL,
    band INTEGER NOT NULL,
    value INTEGER NOT NULL,
    work INTEGER NOT NULL REFERENCES works (n) ON DELETE CASCADE,
    PRIMARY KEY (kind, band, value, work)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS regions (
    n INTEGER PRIMARY KEY,
    work INTEGER NOT NULL REFERENCES works (n) ON DELETE CASCADE,
    name TEXT NOT NULL,
    code TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS regions_work ON regions (work);
CREATE TABLE IF NOT EXISTS region_bands (
    band INTEGER NOT NULL,
    value INTEGER NOT NULL,
    region INTEGER NOT NULL REFERENCES regions (n) ON DELETE CASCADE,
    PRIMARY KEY (band, value, region)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chroma (
    work INTEGER PRIMARY KEY REFERENCES works (n) ON DELETE CASCADE,
    features BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS chroma_keys (
    key INTEGER NOT NULL,
    work INTEGER NOT NULL REFERENCES works (n) ON DELETE CASCADE,
    PRIMARY KEY (key, work)
) WITHOUT ROWID;
INSERT INTO schema_version (version) VALUES (2);
"""
_REGION_NAMES = ("whole", "centre 90 %", "centre 80 %", "centre 70 %", "centre 60 %", "centre square", "centre 4:5",
                 "centre 16:9", "top half", "bottom half", "left half", "right half", "top left 256 px",
                 "top right 256 px", "bottom left 256 px", "bottom right 256 px")


# Schema 3 (git 8ca8499) differed only in the regions' index: 20 windows of 24 bits, not 16-bit bands.
_V3_SCHEMA = _V2_SCHEMA[: _V2_SCHEMA.index("CREATE TABLE IF NOT EXISTS region_bands")] + """CREATE TABLE IF NOT EXISTS region_keys (
    key INTEGER NOT NULL,
    region INTEGER NOT NULL REFERENCES regions (n) ON DELETE CASCADE,
    PRIMARY KEY (key, region)
) WITHOUT ROWID;
""" + _V2_SCHEMA[_V2_SCHEMA.index("CREATE TABLE IF NOT EXISTS chroma ("):].replace("VALUES (2)", "VALUES (3)")


def _v2_ledger(path: Path, works: list[Work], version: int = 2) -> None:
    """A schema-2 ledger holding ``works``, written as rightsmeta 0240e80's ``Ledger._insert`` did
    (``version`` 3: as 8ca8499's did, the regions keyed by 24-bit windows)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.executescript(_V2_SCHEMA if version == 2 else _V3_SCHEMA)
    db.execute("BEGIN")
    for work in works:
        n = db.execute(
            "INSERT INTO works (id, path, format, kind, essence_hash, perceptual, assertion, carriers, tagged_at, source) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (work.id, work.path, work.format, work.kind, work.essence_hash, work.perceptual,
             json.dumps(work.assertion.to_json()), json.dumps(work.carriers), work.tagged_at, work.source),
        ).lastrowid
        code = work.perceptual or ""
        db.executemany("INSERT OR IGNORE INTO bands VALUES (?, ?, ?, ?)",
                       [(work.kind, i, int(code[4 * i : 4 * i + 4], 16), n) for i in range(len(code) // 4)])
        for name, region_code in work.regions:
            region = db.execute("INSERT INTO regions (work, name, code) VALUES (?, ?, ?)", (n, name, region_code)).lastrowid
            if version == 3:
                db.executemany("INSERT OR IGNORE INTO region_keys VALUES (?, ?)",
                               [(key, region) for key in _v3_probe_keys([region_code])])
            else:
                db.executemany("INSERT OR IGNORE INTO region_bands VALUES (?, ?, ?)",
                               [(i, int(region_code[4 * i : 4 * i + 4], 16), region) for i in range(16)])
    db.execute("COMMIT")
    db.close()


def _random_works(rng: random.Random, count: int, first: int = 0) -> list[Work]:
    """Image works shaped like real ones (16 named region codes) with random bits."""
    return [
        Work(f"random-{i}", f"{i}.jpg", "jpeg", None, "image", f"{rng.getrandbits(256):064x}", ASSERTIONS[0],
             regions=tuple((name, f"{rng.getrandbits(256):064x}") for name in _REGION_NAMES))
        for i in range(first, first + count)
    ]


def _flip(code: str, positions: list[int]) -> str:
    return f"{int(code, 16) ^ sum(1 << p for p in positions):064x}"


def _spread(rng: random.Random, bits: int) -> list[int]:
    """``bits`` flips (as bit numbers of the code's integer, 0 the lowest), each in another of the
    index's 8 keys (32 bits each, taken in order of frequency): the hardest case for the index."""
    return [255 - int(_FREQUENCY_ORDER[32 * key + rng.randrange(32)]) for key in rng.sample(range(8), bits)]


def _brute_force(works: list[Work], probes: tuple[tuple[str, str], ...], bits: int) -> dict[str, int]:
    """Each work's nearest allowed (probe, region) distance within ``bits``, by comparing every pair."""
    rows = [(work.id, name) for work in works for name, _ in work.regions]
    codes = np.frombuffer(bytes.fromhex("".join(code for work in works for _, code in work.regions)), np.uint8).reshape(-1, 32)
    out: dict[str, int] = {}
    for probe, probe_code in probes:
        distances = np.bitwise_count(codes ^ np.frombuffer(bytes.fromhex(probe_code), np.uint8)).sum(axis=1)
        for i in np.flatnonzero(distances <= bits):
            (work_id, name), d = rows[i], int(distances[i])
            if region_pair_allowed(probe, name):
                out[work_id] = min(d, out.get(work_id, d))
    return out


def test_region_index_finds_every_code_within_its_radius(tmp_path: Path) -> None:
    """Compared with a brute-force scan: every region code within 7 bits of a probe is found (8
    keys, each flip spoiling one), however its flips are spread; beyond that, many are."""
    rng = random.Random(17)
    works = _random_works(rng, 3000)
    with Ledger.open(tmp_path / "l.sqlite3") as ledger:
        ledger.record_many(works)
        assert ledger._db.execute("SELECT COUNT(*) FROM region_index").fetchone()[0] == 3000 * 16 * 8
        for case in range(32):
            target = works[rng.randrange(len(works))]
            name, code = target.regions[rng.randrange(16)]
            bits = case % 8
            probes = ((name, _flip(code, _spread(rng, bits))),)
            expected = _brute_force(works, probes, 24)
            assert expected[target.id] == bits
            found = {m.work.id: round(m.distance * 256) for m in ledger.matches(Essence("image", None, None, probes=probes))}
            assert found == expected, (bits, found, expected)
        # 8 flips, spoiling all 8 keys: nothing is found, as pigeonhole says.
        name, code = works[5].regions[0]
        probes = ((name, _flip(code, _spread(rng, 8))),)
        assert ledger.matches(Essence("image", None, None, probes=probes)) == []
        # Flips at uniformly random places up to the threshold: over half are found (55 of 100 with
        # this seed), and never a code the brute force would not match. Uniform flips are the worst
        # case for keys taken low frequencies first: real copies' differing bits lie mostly in the
        # high frequencies, and every bench copy that needs the regions has a pair sharing a key
        # (bench/region_lookup.py --recall).
        seen = hits = 0
        for _ in range(100):
            target = works[rng.randrange(len(works))]
            name, code = target.regions[rng.randrange(16)]
            probes = ((name, _flip(code, rng.sample(range(256), rng.randint(10, 24)))),)
            expected = _brute_force(works, probes, 24)
            found = {m.work.id: round(m.distance * 256) for m in ledger.matches(Essence("image", None, None, probes=probes))}
            assert found.items() <= expected.items()
            seen, hits = seen + 1, hits + (target.id in found)
        print(f"random flips, 10 to 24 bits: {hits} of {seen} found")
        assert hits >= 45, hits


@pytest.mark.parametrize("change", [32, -32, -1])
def test_a_damaged_region_row_is_an_error_naming_the_ledger_and_work(tmp_path: Path, change: int) -> None:
    """Found: a ``region_sets`` row with more codes than names was searched in part, without a word."""
    works = _random_works(random.Random(3), 20)
    path = tmp_path / "l.sqlite3"
    with Ledger.open(path) as ledger:
        ledger.record_many(works)
    with sqlite3.connect(path) as db:  # indexed: damaged afterwards, as a disk or another program may
        db.execute("UPDATE region_sets SET codes = ? WHERE work = (SELECT n FROM works WHERE id = 'random-7')",
                   ((bytes.fromhex("".join(code for _, code in works[7].regions)) + b"\xff" * 32)[:32 * 16 + change],))
    name, code = works[7].regions[2]
    with Ledger.open(path, readonly=True) as ledger:
        assert ledger.get("random-6") is not None
        for lookup in (lambda: ledger.matches(Essence("image", None, None, probes=((name, code),))),
                       lambda: ledger.get("random-7"), lambda: ledger.region_codes(name)):
            with pytest.raises(LedgerError, match=rf"the ledger {re.escape(str(path))} is damaged: work random-7 has"):
                lookup()


def test_region_codes_of_the_wrong_type_are_an_error_naming_the_ledger(tmp_path: Path) -> None:
    """Found: codes stored as TEXT that is not UTF-8 raised sqlite3's OperationalError out of
    ``matches`` (an internal error to verify.verify's callers), not a LedgerError."""
    works = _random_works(random.Random(3), 20)
    path = tmp_path / "l.sqlite3"
    with Ledger.open(path) as ledger:
        ledger.record_many(works)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE region_sets SET codes = CAST(codes AS TEXT) || 'x'")
    name, code = works[7].regions[2]
    with Ledger.open(path, readonly=True) as ledger:
        with pytest.raises(LedgerError, match=rf"cannot read the ledger {re.escape(str(path))}: "):
            ledger.matches(Essence("image", None, None, probes=((name, code),)))


def test_a_damaged_row_in_the_unindexed_tail_is_an_error_naming_the_ledger(tmp_path: Path) -> None:
    """Found: indexing a tail row whose codes are not 32 bytes a region raised numpy's reshape
    ValueError from Ledger.open (tag failed with an internal error)."""
    path = tmp_path / "l.sqlite3"
    with Ledger.open(path) as ledger:
        ledger.record_many(_random_works(random.Random(3), 5))
    with sqlite3.connect(path) as db:  # as a writer killed before indexing leaves it, then damaged
        for table in ("whole_bands", "region_index", "chroma_keys"):
            db.execute(f"DELETE FROM {table}")
        db.execute("UPDATE indexed SET upto = 0")
        db.execute("UPDATE region_sets SET codes = substr(codes, 2) WHERE work = (SELECT MAX(work) FROM region_sets)")
    with pytest.raises(LedgerError, match=rf"the ledger {re.escape(str(path))} is damaged: work row \d+ has 511 bytes"):
        Ledger.open(path)


def _lookup_steps(ledger: Ledger, probes: list[str]) -> int:
    """SQLite virtual-machine steps (in hundreds) of one region lookup: the work it does, without a clock."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    ledger._db.set_progress_handler(count, 100)
    try:
        ledger._region_candidates(probes)
    finally:
        ledger._db.set_progress_handler(None, 0)
    return steps[0]


def test_region_lookup_work_does_not_grow_with_the_ledger(tmp_path: Path) -> None:
    """The cause of issue 17's slow lookups, and its fix, counted in SQLite steps: schema 2's
    16-bit bands read more rows per seek as works are added; schema 4's 32-bit keys do not, and
    take fewer steps than schema 3's 24-bit windows (8 keys a probe, not 20)."""
    rng = random.Random(4)
    probes = [f"{rng.getrandbits(256):064x}" for _ in range(21)]  # a copy's probes, unrelated to every work
    steps: dict[tuple[str, int], int] = {}
    for size in (300, 3000):
        for version in (2, 3):
            path = tmp_path / f"{size}-{version}.sqlite3"
            _v2_ledger(path, _random_works(random.Random(size), size), version)
            with Ledger.open(path, readonly=True) as old:
                steps[f"schema {version}", size] = _lookup_steps(old, probes)
        with Ledger.open(path) as new:
            steps["schema 4", size] = _lookup_steps(new, probes)
    print(steps)
    assert steps["schema 2", 3000] > 2.5 * steps["schema 2", 300]
    assert steps["schema 4", 3000] < 1.2 * steps["schema 4", 300]
    assert steps["schema 4", 3000] < 0.6 * steps["schema 3", 3000]


def _photo_works_and_crops(grids: int = GRIDS) -> tuple[list[Work], list[Essence]]:
    """Works whose codes were cut with ``grids`` (v1 for the ledgers of schema 4 and before), and
    copies with the codes of both grids (the ledger compares each work with its own)."""
    works, crops = [], []
    for seed in range(3):
        img = material.photo(seed, (400, 300))
        works.append(Work.create(f"p{seed}.jpg", "jpeg", essence(material.jpeg(img, 90), "jpeg", grids=grids), ASSERTIONS[0],
                                 id=f"photo-{seed}"))
        for handling in ("crop 15 %/side", "crop 15 % right, 20 % bottom", "mirror", "banner 25 % top"):
            crops.append(essence(material.handle(img, handling), "jpeg", legacy_grids=True))
    return works, crops


def _answers(ledger: Ledger, queries: list[Essence]) -> list[list[tuple[str, float, str | None]]]:
    return [[(m.work.id, m.distance, m.how) for m in ledger.matches(q)] for q in queries]


@pytest.mark.parametrize("version", [2, 3])
def test_older_ledger_is_migrated_and_finds_the_same_matches(tmp_path: Path, version: int) -> None:
    works, crops = _photo_works_and_crops(GRIDS_V1)
    works += _random_works(random.Random(2), 300)
    path = tmp_path / f"v{version}.sqlite3"
    _v2_ledger(path, works, version)
    with Ledger.open(path, readonly=True) as old:  # read-only: searched through its own index, unchanged
        before = _answers(old, crops)
        exported = io.StringIO()
        old.export_jsonl(exported)
        assert old._db.execute("SELECT version FROM schema_version").fetchall() == [(version,)]
    assert [answer[0][0] for answer in before] == [w.id for w in works[:3] for _ in range(4)]
    with Ledger.open(path) as ledger:
        db = ledger._db
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)] == [(5,)]
        assert db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name IN ('regions', 'region_bands', 'region_keys')"
                          ).fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM region_sets").fetchone()[0] == len(works)
        assert db.execute("SELECT COUNT(*) FROM region_index").fetchone()[0] == 8 * sum(len(w.regions) for w in works)
        assert db.execute("SELECT COUNT(*) FROM whole_bands").fetchone()[0] == 12 * len(works)  # IMAGE_BAND_WIDTHS
        assert db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'bands'").fetchone()[0] == 0
        assert _answers(ledger, crops) == before
        again = io.StringIO()
        ledger.export_jsonl(again)
        assert db.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    # The registry exported before and after carries the same region codes; importing rebuilds the index.
    assert again.getvalue() == exported.getvalue() and '"regions":{"whole":' in again.getvalue()
    with Ledger.open(tmp_path / "imported.sqlite3") as imported:
        assert imported.import_jsonl(io.StringIO(again.getvalue()), source="them") == len(works)
        assert imported._db.execute("SELECT COUNT(*) FROM region_index").fetchone()[0] == 8 * sum(len(w.regions) for w in works)
        assert _answers(imported, crops) == before


_KILL_MID_MIGRATION = """
import os, sys, time
import rightsmeta.ledger as ledger
original = ledger._migrate
def stalled(db, version):
    db.execute("PRAGMA cache_size = 8")  # a tiny cache: the new index spills into the WAL, uncommitted
    original(db, version)
    open(sys.argv[2], "w").close()  # every key written, the old tables dropped, nothing committed
    time.sleep(60)
ledger._migrate = stalled
ledger.Ledger.open(sys.argv[1])
"""


def killed_mid_migration(path: Path, marker: Path, holds: Callable[[], bool] = lambda: True) -> None:
    """A real child process migrating the ledger at ``path``, SIGKILLed once the migration has written
    everything and committed nothing (``holds`` is asserted at that moment)."""
    child = subprocess.Popen([sys.executable, "-c", _KILL_MID_MIGRATION, str(path), str(marker)],
                             env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None and time.monotonic() < deadline, "the migration never got half-way"
            time.sleep(0.05)
        assert holds()
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("version", [2, 3])
def test_a_migration_killed_half_way_leaves_the_old_ledger_usable(tmp_path: Path, version: int) -> None:
    works, crops = _photo_works_and_crops(GRIDS_V1)
    works += _random_works(random.Random(9), 300)
    path, marker = tmp_path / f"v{version}.sqlite3", tmp_path / "stalled"
    _v2_ledger(path, works, version)
    with Ledger.open(path, readonly=True) as old:
        before = _answers(old, crops)
    wal = path.with_name(path.name + "-wal")
    wal_before = wal.stat().st_size if wal.exists() else 0
    # the uncommitted index is in the WAL
    killed_mid_migration(path, marker, lambda: wal.stat().st_size > wal_before + 100_000)
    with Ledger.open(path, readonly=True) as old:  # still the old ledger, answering as before
        assert old._db.execute("SELECT version FROM schema_version").fetchall() == [(version,)]
        assert _answers(old, crops) == before
    with Ledger.open(path) as ledger:  # and the next writer migrates it
        assert ledger._db.execute("SELECT version FROM schema_version").fetchall() == [(5,)]
        assert _answers(ledger, crops) == before


def test_a_ledger_held_by_another_writer_is_busy_not_damaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While another process migrates (or writes), opening for writing says so, not "not usable"."""
    path = tmp_path / "l.sqlite3"
    Ledger.open(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr("rightsmeta.ledger.BUSY_SECONDS", 0.2)
    try:
        with pytest.raises(LedgerError, match="is busy: another rightsmeta has been writing"):
            Ledger.open(path)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    Ledger.open(path).close()


# --- recording: a work's own rows per transaction, its index rows with the tail's (issue 12) ----------

_RECORD_THEN_HANG = """
import sys, time
from rightsmeta.ledger import Ledger, Work
import json
ledger = Ledger.open(sys.argv[1])
for line in open(sys.argv[2]):
    ledger.record(Work.from_json(json.loads(line)))  # one transaction a work, as tag records them
    print(json.loads(line)["id"], flush=True)
time.sleep(60)  # killed here: never closed, so the last works are still the tail
"""


def test_a_writer_killed_leaves_every_committed_work_findable(tmp_path: Path) -> None:
    """Works are committed one by one and indexed INDEX_EVERY at a time: killed with a tail not
    yet indexed, the ledger still holds every committed work, lookups find the tail's (compared
    one by one), and the next writer indexes it."""
    from rightsmeta.ledger import INDEX_EVERY

    works, crops = _photo_works_and_crops()
    works = _random_works(random.Random(5), INDEX_EVERY) + works  # the photos land in the tail
    registry, path = tmp_path / "works.jsonl", tmp_path / "l.sqlite3"
    registry.write_text("".join(json.dumps(work.to_json()) + "\n" for work in works))
    with subprocess.Popen([sys.executable, "-c", _RECORD_THEN_HANG, str(path), str(registry)], stdout=subprocess.PIPE,
                          text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
                          ) as child:
        try:
            assert child.stdout is not None
            committed = [child.stdout.readline().strip() for _ in works]
        finally:
            child.kill()
    assert committed == [work.id for work in works]
    with Ledger.open(path, readonly=True) as killed:
        assert len(killed) == len(works) and killed._tail_length() == len(works) - INDEX_EVERY
        assert killed.get(works[-1].id) == works[-1]
        answers = _answers(killed, crops)
        # the whole code of a tail work, slightly changed, and a random work's region from the index
        thumb = killed.matches(Essence("image", None, _flip(works[-1].perceptual or "", [1, 100, 200])))
        indexed = killed.matches(Essence("image", None, None, probes=(works[3].regions[2],)))
    assert [answer[0][0] for answer in answers] == [w.id for w in works[-3:] for _ in range(4)]
    assert [m.work.id for m in thumb] == [works[-1].id] and [m.work.id for m in indexed] == [works[3].id]
    with Ledger.open(path) as ledger:  # the next writer indexes the tail
        assert ledger._tail_length() == 0
        assert _answers(ledger, crops) == answers
        count = ledger._db.execute("SELECT COUNT(*) FROM region_index").fetchone()[0]
        assert count == 8 * sum(len(w.regions) for w in works)


def test_recording_writes_few_index_rows_per_transaction(tmp_path: Path) -> None:
    """Per work the transaction writes the work's own rows; the index is written for INDEX_EVERY
    works at once, and closing the ledger indexes what is left."""
    from rightsmeta.ledger import INDEX_EVERY

    works = _random_works(random.Random(6), INDEX_EVERY + 5)
    with Ledger.open(tmp_path / "l.sqlite3") as ledger:
        for number, work in enumerate(works, start=1):
            ledger.record(work)
            indexed = ledger._db.execute("SELECT COUNT(*) FROM region_index").fetchone()[0]
            assert indexed == (8 * 16 * number if number == INDEX_EVERY else 0 if number < INDEX_EVERY else 8 * 16 * INDEX_EVERY)
        assert ledger._tail_length() == 5
    with Ledger.open(tmp_path / "l.sqlite3", readonly=True) as reopened:
        assert reopened._tail_length() == 0
        assert reopened._db.execute("SELECT COUNT(*) FROM region_index").fetchone()[0] == 8 * 16 * len(works)


def test_a_reader_closed_last_leaves_no_wal_beside_the_ledger(tmp_path: Path) -> None:
    """A read-only connection makes the -wal and -shm files and cannot remove them (SQLite removes
    them when the last connection to close may checkpoint): every verify left them beside the
    ledger. They go with the last reader, and stay while another connection still uses them."""
    path = tmp_path / "l.sqlite3"
    with Ledger.open(path) as ledger:
        ledger.record(Work("w1", "1.png", "png", None, "image", f"{1:064x}", ASSERTIONS[0]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.sqlite3"]
    with Ledger.open(path, readonly=True) as first:
        with Ledger.open(path, readonly=True) as second:
            assert len(second) == 1
        assert (tmp_path / "l.sqlite3-wal").exists()  # the first still reads through them
        assert first.get("w1") is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.sqlite3"]


def test_verify_in_worker_processes_leaves_no_wal_beside_the_ledger(tmp_path: Path) -> None:
    # Each worker opens the ledger read-only and ends with the pool, leaving -wal and -shm that no
    # close of ours removed (the in-process verify's close does).
    from samples import image_bytes

    from rightsmeta.verify import verify_many

    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in range(4):
        (photos / f"{seed}.png").write_bytes(image_bytes("png", seed=seed))
    path = tmp_path / "l.sqlite3"
    with Ledger.open(path) as ledger:
        for photo in sorted(photos.iterdir()):
            assert rightsmeta.tag(photo, rightsmeta.Assertion.build(deny=["ai"]), ledger=ledger).status == "tagged"
    rows = list(verify_many([str(p) for p in sorted(photos.iterdir())], ledger_path=str(path), jobs=2))
    assert [r["status"] for r in rows] == ["intact"] * 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.sqlite3", "photos"]
