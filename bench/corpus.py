"""Generate a mixed benchmark corpus: images, audio and PDFs, half of them tagged by other tools.

    python bench/corpus.py bench/corpus --files 2000

Images (JPEG, PNG, WebP, TIFF) are drawn with Pillow; audio (MP3, FLAC, WAV) is made once per
format with ffmpeg and copied, since only the metadata matters here; PDFs are written with pypdf.
Half the files are then tagged the way other tools do it: images and PDFs by ExifTool (PLUS
DataMining and TDMRep in one batch call), audio by mutagen (an ID3 PRIV XMP packet and TCOP,
or Vorbis COPYRIGHT and TDM_RESERVATION). Nothing here uses rightsmeta's own writers.
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


def audio_templates(folder: Path) -> dict[str, bytes]:
    made = {}
    for ext, args in {"mp3": ["-c:a", "libmp3lame", "-b:a", "128k"], "flac": [], "wav": []}.items():
        target = folder / f"template.{ext}"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
                        *args, str(target)], check=True)
        made[ext] = target.read_bytes()
    return made


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
    args = parser.parse_args()
    rng = random.Random(args.seed)
    out: Path = args.folder
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        templates = audio_templates(Path(tmp)) if shutil.which("ffmpeg") else {}
    kinds = ["jpeg", "png", "webp", "tiff", "pdf", *templates]
    to_exiftool, to_mutagen = [], []
    for i in range(args.files):
        kind = kinds[i % len(kinds)]
        ext = {"jpeg": "jpg", "tiff": "tif"}.get(kind, kind)
        path = out / f"{i:05d}.{ext}"
        if kind in templates:
            path.write_bytes(templates[kind])
        elif kind == "pdf":
            path.write_bytes(pdf(rng))
        else:
            path.write_bytes(image(rng, kind))
        if (i // len(kinds)) % 2 == 0:  # every other file of each kind
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
