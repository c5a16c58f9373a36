"""Generate a mixed benchmark corpus: images, audio and PDFs, half of them tagged by other tools.

    python bench/corpus.py bench/corpus --files 2000
    python bench/corpus.py bench/realistic --mix realistic --files 1300

Images (JPEG, PNG, WebP, TIFF) are drawn with Pillow; audio (MP3, FLAC, WAV, and M4A in the
realistic mix) and video (MOV, realistic mix) are made once per format with ffmpeg and copied,
since only the metadata matters here; PDFs are written with pypdf.

Three mixes:
  even       (default) the kinds in turn, one file each; half of each kind tagged by other tools:
             images and PDFs by ExifTool (PLUS DataMining and TDMRep in one batch call), audio by
             mutagen (an ID3 PRIV XMP packet and TCOP, or Vorbis COPYRIGHT and TDM_RESERVATION).
  realistic  JPEG-heavy, like a user's folder: 500 JPEG to 100 each of PNG, WebP, TIFF, MP3, FLAC,
             WAV, M4A and PDF, and 20 MOV (scaled to --files); a third of every kind tagged, by
             ExifTool wherever it writes (M4A and MOV too), by mutagen as above where it does not
             (ExifTool 13 writes no MP3, FLAC or WAV).
  camera     12-megapixel JPEG photos (4000x3000, about 3 MB each: noise-textured shapes saved at
             quality 90, with camera EXIF: make, model, exposure, date), a third tagged by ExifTool:
             what a creator's photo folder holds, where decoding the picture (for the ledger) costs
             far more than ExifTool's whole write.
Nothing here uses rightsmeta's own writers.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
EXIFTOOL_CANDIDATES = [
    os.environ.get("RIGHTSMETA_EXIFTOOL", ""),
    str(REPO / ".ci" / "tools" / "node_modules" / "exiftool-vendored.pl" / "bin" / "exiftool"),
]
TDM_CONFIG = """
%Image::ExifTool::UserDefined = ('Image::ExifTool::XMP::Main' => {
    tdm => { SubDirectory => { TagTable => 'Image::ExifTool::UserDefined::tdm' } } });
%Image::ExifTool::UserDefined::tdm = (GROUPS => { 0 => 'XMP', 1 => 'XMP-tdm', 2 => 'Document' },
    NAMESPACE => { 'tdm' => 'http://www.w3.org/ns/tdmrep/' }, WRITABLE => 'string', reservation => { }, policy => { });
1;
"""
XMP_PACKET = b"""<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/" xmlns:tdm="http://www.w3.org/ns/tdmrep/">
<plus:DataMining>http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING</plus:DataMining>
<tdm:reservation>1</tdm:reservation></rdf:Description></rdf:RDF></x:xmpmeta>
<?xpacket end="w"?>"""


def exiftool() -> str:
    for candidate in EXIFTOOL_CANDIDATES:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("exiftool")
    if not found:
        sys.exit("ExifTool 13 not found: run .ci/setup or set RIGHTSMETA_EXIFTOOL")
    return found


def image(rng: random.Random, fmt: str) -> bytes:
    w, h = rng.choice([(320, 240), (640, 480), (800, 600)])
    img = Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        box = sorted(rng.sample(range(w), 2)), sorted(rng.sample(range(h), 2))
        draw.ellipse((box[0][0], box[1][0], box[0][1], box[1][1]), fill=tuple(rng.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    img.save(out, fmt.upper(), **({"quality": 85} if fmt == "jpeg" else {}))
    return out.getvalue()


def photo(rng: random.Random) -> bytes:
    """A 12-megapixel camera-like JPEG: a tinted gradient, sensor-like noise, shapes, camera EXIF."""
    w, h = 4000, 3000
    ramp = Image.linear_gradient("L").resize((w, h)).rotate(rng.choice([0, 90, 180, 270]), expand=False)
    channels = []
    for _ in range(3):  # each channel its own slope and floor: a tint
        slope, floor = rng.uniform(0.2, 0.7), rng.randrange(60)
        channels.append(ramp.point([int(floor + v * slope) for v in range(256)]))
    img = Image.merge("RGB", channels)
    # Sensor-like noise drawn from the corpus's seed (Pillow's effect_noise takes none).
    grain = np.random.default_rng(rng.randrange(2**32)).normal(128, 24, (h, w)).clip(0, 255).astype(np.uint8)
    noise = Image.fromarray(grain, "L").convert("RGB")
    img = Image.blend(img, noise, 0.25)
    draw = ImageDraw.Draw(img)
    for _ in range(20):
        x, y, r = rng.randrange(w), rng.randrange(h), rng.randrange(80, 700)
        draw.ellipse((x, y, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "Canon EOS R6"  # Make, Model
    exif[0x0132] = f"2026:06:01 10:{rng.randrange(60):02d}:{rng.randrange(60):02d}"  # DateTime
    details = exif.get_ifd(0x8769)  # Exif IFD
    details[0x829A], details[0x829D], details[0x8827] = 1 / 250, 4.0, 400  # exposure, f-number, ISO
    details[0x9003] = exif[0x0132]  # DateTimeOriginal
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


# Weights of the realistic mix, per 1,320 files (the 1,300-file mix plus MOV).
REALISTIC = {"jpeg": 500, "png": 100, "webp": 100, "tiff": 100, "mp3": 100, "flac": 100, "wav": 100,
             "m4a": 100, "pdf": 100, "mov": 20}
MUTAGEN_ONLY = frozenset({"mp3", "flac", "wav"})  # not in `exiftool -listwf`
MEDIA = {  # ffmpeg arguments per made-once format
    "mp3": ["-c:a", "libmp3lame", "-b:a", "128k"],
    "flac": [],
    "wav": [],
    "m4a": ["-c:a", "aac", "-b:a", "96k"],
}


def audio_templates(folder: Path, kinds: tuple[str, ...] = ("mp3", "flac", "wav")) -> dict[str, bytes]:
    made = {}
    for ext in kinds:
        target = folder / f"template.{ext}"
        if ext == "mov":  # two seconds of a test pattern with sound: a small but real movie
            source = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=2", "-f", "lavfi",
                      "-i", "sine=frequency=440:duration=2", "-c:v", "mpeg4", "-c:a", "aac", "-shortest"]
        else:
            source = ["-f", "lavfi", "-i", "sine=frequency=440:duration=2", *MEDIA[ext]]
        subprocess.run(["ffmpeg", "-v", "error", "-y", *source, str(target)], check=True)
        made[ext] = target.read_bytes()
    return made


def realistic_kinds(files: int, rng: random.Random) -> list[str]:
    """``files`` kinds in REALISTIC's proportions (largest remainders), shuffled as a folder is."""
    total = sum(REALISTIC.values())
    exact = {k: files * w / total for k, w in REALISTIC.items()}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: counts[k] - exact[k])[: files - sum(counts.values())]:
        counts[k] += 1
    kinds = [k for k, n in counts.items() for _ in range(n)]
    rng.shuffle(kinds)
    return kinds


def pdf(rng: random.Random) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(rng.randint(1, 4)):
        writer.add_blank_page(612, 792)
    writer.add_metadata({"/Title": f"document {rng.randrange(10**6)}"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def tag_audio(path: Path) -> None:
    import mutagen
    from mutagen.id3 import ID3, PRIV, TCOP

    if path.suffix == ".flac":
        audio = mutagen.File(path)
        audio["COPYRIGHT"] = "(c) someone"
        audio["TDM_RESERVATION"] = "1"  # the TDMRep key rightsmeta documents for Vorbis comments
        audio.save()
        return
    if path.suffix == ".wav":
        from mutagen.wave import WAVE

        wav = WAVE(path)
        if wav.tags is None:
            wav.add_tags()
        wav.tags.add(PRIV(owner="XMP", data=XMP_PACKET))
        wav.tags.add(TCOP(encoding=3, text=["(c) someone"]))
        wav.save()
        return
    tags = ID3()
    tags.add(PRIV(owner="XMP", data=XMP_PACKET))
    tags.add(TCOP(encoding=3, text=["(c) someone"]))
    tags.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mix", choices=["even", "realistic", "camera"], default="even",
                        help="even: the kinds in turn, half tagged; realistic: JPEG-heavy, a third tagged by ExifTool; "
                             "camera: 12-megapixel JPEG photos, a third tagged by ExifTool")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    out: Path = args.folder
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    realistic = args.mix in ("realistic", "camera")  # a third of each kind tagged
    camera = args.mix == "camera"
    if realistic and not camera and not shutil.which("ffmpeg"):
        sys.exit("--mix realistic needs ffmpeg (audio and video are made with it)")
    templates: dict[str, bytes] = {}
    if not camera and shutil.which("ffmpeg"):
        with tempfile.TemporaryDirectory() as tmp:
            media = tuple(k for k in REALISTIC if k in MEDIA or k == "mov") if realistic else ("mp3", "flac", "wav")
            templates = audio_templates(Path(tmp), media)
    if camera:
        order = ["photo"] * args.files
    elif realistic:
        order = realistic_kinds(args.files, rng)
    else:
        kinds = ["jpeg", "png", "webp", "tiff", "pdf", *templates]
        order = [kinds[i % len(kinds)] for i in range(args.files)]
    to_exiftool: list[Path] = []
    to_mutagen: list[Path] = []
    seen: dict[str, int] = {}
    for i, kind in enumerate(order):
        ext = {"jpeg": "jpg", "tiff": "tif", "photo": "jpg"}.get(kind, kind)
        path = out / f"{i:05d}.{ext}"
        if kind == "photo":
            path.write_bytes(photo(rng))
        elif kind in templates:
            path.write_bytes(templates[kind])
        elif kind == "pdf":
            path.write_bytes(pdf(rng))
        else:
            path.write_bytes(image(rng, kind))
        nth = seen[kind] = seen.get(kind, -1) + 1
        if realistic:
            if nth % 3 == 0:  # a third of every kind
                (to_mutagen if kind in MUTAGEN_ONLY else to_exiftool).append(path)
        elif nth % 2 == 0:  # every other file of each kind
            (to_mutagen if kind in templates else to_exiftool).append(path)
    for path in to_mutagen:
        tag_audio(path)
    config = out / ".tdm.config"
    config.write_text(TDM_CONFIG)
    if to_exiftool:
        subprocess.run([exiftool(), "-config", str(config), "-q", "-overwrite_original",
                        "-XMP-plus:DataMining#=DMI-PROHIBITED-AIMLTRAINING", "-XMP-tdm:Reservation=1",
                        *map(str, to_exiftool)], check=True)
    config.unlink()
    print(f"{args.files} files in {out} ({len(to_exiftool)} tagged by ExifTool, {len(to_mutagen)} by mutagen)")


if __name__ == "__main__":
    main()
