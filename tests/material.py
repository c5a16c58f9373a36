"""Real-looking material for the durability tests and bench: camera-like photos and music-like audio.

Not gradients and tones (those fingerprint differently from real media): photos are scenes with
a sky, fractal terrain, textured objects, lens vignetting, sensor noise and JPEG compression;
music is a chord progression with bass, a melody and a drum pattern, rendered to PCM. Both are
numpy only (seeded, fast on a shared CPU); ffmpeg encodes the audio copies.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont


def _fractal(rng: np.random.Generator, h: int, w: int, octaves: int = 6, persistence: float = 0.55) -> np.ndarray:
    """Value noise summed over octaves: clouds, hills, foliage, depending on the palette."""
    out = np.zeros((h, w))
    amp, total = 1.0, 0.0
    for octave in range(octaves):
        cells = 2 ** (octave + 1)
        grid = rng.random((cells + 1, cells + 1))
        small = Image.fromarray((grid * 255).astype(np.uint8), "L")
        out += amp * np.asarray(small.resize((w, h), Image.Resampling.BICUBIC), float) / 255
        total += amp
        amp *= persistence
    return out / total


def photo(seed: int, size: tuple[int, int] = (480, 360)) -> Image.Image:
    """A camera-like landscape: sky with clouds, a ridge line, textured ground, objects, noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    horizon = rng.uniform(0.3, 0.65) + 0.12 * (_fractal(rng, 1, w, 5)[0] - 0.5)
    sky_top, sky_low = rng.uniform([20, 60, 140], [90, 140, 230]), rng.uniform([150, 170, 190], [230, 230, 250])
    t = np.clip(yy / max(horizon.max(), 0.05), 0, 1)[..., None]
    sky = sky_top * (1 - t) + sky_low * t
    clouds = np.clip((_fractal(rng, h, w) - rng.uniform(0.45, 0.6)) * 3, 0, 1)[..., None]
    sky = sky * (1 - clouds) + 245 * clouds
    base = rng.uniform([30, 50, 10], [140, 130, 80])
    tex = _fractal(rng, h, w, 7, 0.7)[..., None]
    ground = base * (0.5 + tex) + rng.uniform(-25, 25, 3) * (yy[..., None] - 0.5)
    img = np.where((yy < horizon[None, :])[..., None], sky, ground)
    pic = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(pic)
    for _ in range(int(rng.integers(4, 10))):  # houses, trees, rocks, people
        cx, cy = rng.uniform(0, w), rng.uniform(horizon.mean() * h, h)
        size_ = rng.uniform(0.04, 0.25) * h * (0.5 + cy / h)
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        shape = int(rng.integers(0, 3))
        if shape == 0:
            draw.rectangle([cx - size_, cy - size_, cx + size_, cy], fill=colour)
            draw.polygon([(cx - size_ * 1.2, cy - size_), (cx, cy - size_ * 1.8), (cx + size_ * 1.2, cy - size_)],
                         fill=tuple(int(c) for c in rng.integers(60, 200, 3)))
        elif shape == 1:
            draw.rectangle([cx - size_ * 0.1, cy - size_, cx + size_ * 0.1, cy], fill=(70, 45, 20))
            draw.ellipse([cx - size_ * 0.6, cy - size_ * 2, cx + size_ * 0.6, cy - size_ * 0.7], fill=colour)
        else:
            draw.ellipse([cx - size_, cy - size_ * 0.6, cx + size_, cy + size_ * 0.2], fill=colour)
    arr = np.asarray(pic, float)
    arr *= 0.75 + 0.5 * _fractal(rng, h, w, 3)[..., None]  # uneven light
    arr *= (1 - 0.35 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2))[..., None]  # vignetting
    arr += rng.normal(0, 4, arr.shape)  # sensor noise
    pic = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB").filter(ImageFilter.GaussianBlur(0.6))
    return Image.open(io.BytesIO(jpeg(pic, 88)))


def jpeg(img: Image.Image, quality: int = 85) -> bytes:
    out = io.BytesIO()
    img.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def _crop(img: Image.Image, left: float, top: float, right: float, bottom: float) -> Image.Image:
    w, h = img.size
    return img.crop((round(w * left), round(h * top), round(w * (1 - right)), round(h * (1 - bottom))))


def _aspect(img: Image.Image, ratio: float) -> Image.Image:
    w, h = img.size
    if w / h > ratio:
        nw = round(h * ratio)
        return img.crop(((w - nw) // 2, 0, (w - nw) // 2 + nw, h))
    nh = round(w / ratio)
    return img.crop((0, (h - nh) // 2, w, (h - nh) // 2 + nh))


def _aspect_at_start(img: Image.Image, ratio: float) -> Image.Image:
    """An off-centre aspect crop: the part kept starts at the left (or, if too tall, at the top)."""
    w, h = img.size
    if w / h > ratio:
        return img.crop((0, 0, round(h * ratio), h))
    return img.crop((0, 0, w, round(w / ratio)))


def _aspect_at(img: Image.Image, ratio: float, where: float) -> Image.Image:
    """A crop to ``ratio`` (width / height) placed ``where`` (0: left or top, 0.5: centred, 1: right
    or bottom) along the axis it cuts: what a platform's crop to a square, a story or a banner does."""
    w, h = img.size
    if w / h > ratio:
        nw = round(h * ratio)
        left = round((w - nw) * where)
        return img.crop((left, 0, left + nw, h))
    nh = round(w / ratio)
    top = round((h - nh) * where)
    return img.crop((0, top, w, top + nh))


def _banner(img: Image.Image, share: float, where: str = "bottom") -> Image.Image:
    out = img.convert("RGB")
    w, h = out.size
    draw = ImageDraw.Draw(out)
    box = [0, round(h * (1 - share)), w, h] if where == "bottom" else [0, 0, w, round(h * share)]
    draw.rectangle(box, fill=(0, 0, 0))
    font = ImageFont.load_default()
    draw.text((box[0] + 10, box[1] + 6), "REPOSTED - follow @somebody for more", fill=(255, 255, 255), font=font)
    return out


def _logo(img: Image.Image) -> Image.Image:
    # A sticker covering a quarter of the picture: half the width by half the height, in a corner.
    out = img.convert("RGB")
    w, h = out.size
    draw = ImageDraw.Draw(out)
    draw.rectangle([w // 2, h // 2, w, h], fill=(230, 40, 90))
    draw.ellipse([w // 2 + 10, h // 2 + 10, w - 10, h - 10], fill=(250, 220, 0))
    return out


def _resized(img: Image.Image, factor: float) -> Image.Image:
    return img.resize((round(img.width * factor), round(img.height * factor)), Image.Resampling.LANCZOS)


def _thumb(img: Image.Image, side: int) -> Image.Image:
    out = img.copy()
    out.thumbnail((side, side), Image.Resampling.LANCZOS)
    return out


def _bright(img: Image.Image, factor: float) -> Image.Image:
    return Image.fromarray(np.clip(np.asarray(img.convert("RGB"), float) * factor, 0, 255).astype(np.uint8))


def _tint(img: Image.Image) -> Image.Image:
    arr = np.asarray(img.convert("RGB"), float) * np.array([1.12, 1.0, 0.82]) + np.array([8, 0, -5])
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


# name -> handling; each returns the encoded bytes and their format.
IMAGE_HANDLINGS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "crop 5 %/side": lambda im: _crop(im, 0.05, 0.05, 0.05, 0.05),
    "crop 10 %/side": lambda im: _crop(im, 0.10, 0.10, 0.10, 0.10),
    "crop 15 %/side": lambda im: _crop(im, 0.15, 0.15, 0.15, 0.15),
    "crop 20 %/side": lambda im: _crop(im, 0.20, 0.20, 0.20, 0.20),
    "crop 20 % left, 10 % top": lambda im: _crop(im, 0.20, 0.10, 0.0, 0.0),
    "crop 15 % right, 20 % bottom": lambda im: _crop(im, 0.0, 0.0, 0.15, 0.20),
    "crop 10 % left, 20 % bottom": lambda im: _crop(im, 0.10, 0.0, 0.0, 0.20),
    "crop to 4:5 at the left/top": lambda im: _aspect_at_start(im, 0.8),
    # No corner of the work kept, or kept at another scale (rightsmeta/cropsearch.py):
    "crop 5/15/20/10 % l/t/r/b": lambda im: _crop(im, 0.05, 0.15, 0.20, 0.10),
    "crop 18/4/9/16 % l/t/r/b": lambda im: _crop(im, 0.18, 0.04, 0.09, 0.16),
    "crop 12/0/17/8 % l/t/r/b": lambda im: _crop(im, 0.12, 0.0, 0.17, 0.08),
    "crop 8/12/15/6 %, then 60 %": lambda im: _resized(_crop(im, 0.08, 0.12, 0.15, 0.06), 0.6),
    "crop 20/10/0/0 %, then 50 %": lambda im: _resized(_crop(im, 0.20, 0.10, 0.0, 0.0), 0.5),
    "crop to square": lambda im: _aspect(im, 1.0),
    "crop to 4:5": lambda im: _aspect(im, 0.8),
    "crop to 16:9": lambda im: _aspect(im, 16 / 9),
    "banner 20 % bottom": lambda im: _banner(im, 0.20),
    "banner 25 % top": lambda im: _banner(im, 0.25, "top"),
    "sticker over a quarter": _logo,
    "mirror": lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "flip vertical": lambda im: im.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
    "rotate 90": lambda im: im.transpose(Image.Transpose.ROTATE_90),
    "rotate 180": lambda im: im.transpose(Image.Transpose.ROTATE_180),
    "rotate 270": lambda im: im.transpose(Image.Transpose.ROTATE_270),
    "thumbnail 256 px": lambda im: _thumb(im, 256),
    "brightness +20 %": lambda im: _bright(im, 1.2),
    "brightness -20 %": lambda im: _bright(im, 0.8),
    "greyscale": lambda im: im.convert("L"),
    "warm tint": _tint,
}


def _turned(turn: str, then: str) -> Callable[[Image.Image], Image.Image]:
    return lambda im: IMAGE_HANDLINGS[then](IMAGE_HANDLINGS[turn](im))


# Handlings beyond the goal's crops of up to 20 % a side (rightsmeta/cropsearch.py ``MAX_CUT``):
# the bench prints them apart, so the limit stays measured. A quarter turn then a 16:9 crop is,
# turned back, a 9:16 strip: of a portrait work it keeps the centre 60 % (found), of a square or
# landscape one it cuts more than 20 % off the left and the right, and keeps no region recorded.
UNCOVERED_HANDLINGS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "rotate 270 + crop to 16:9": _turned("rotate 270", "crop to 16:9"),
}


# Crops of more than 20 % off a side of one axis (rightsmeta/cropsearch.py ``WideSearch``): a
# platform's square, story (9:16) or banner (3:1) crop. Each cuts a side by more than MAX_CUT only
# on some shapes (a 9:16 story of a 3:4 portrait cuts 12.5 % a side); ``cropsearch.wide_covered``
# says which the wide search covers, and the bench counts a copy by the cuts it made.
WIDE_HANDLINGS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "crop 30/5/10/5 % l/t/r/b": lambda im: _crop(im, 0.30, 0.05, 0.10, 0.05),
    "crop to 9:16 (story)": lambda im: _aspect_at(im, 9 / 16, 0.5),
    "crop to 9:16 at 35 %": lambda im: _aspect_at(im, 9 / 16, 0.35),
    "crop to 9:16, then 50 %": lambda im: _resized(_aspect_at(im, 9 / 16, 0.5), 0.5),
    "crop to 3:1 (banner)": lambda im: _aspect_at(im, 3.0, 0.5),
    "crop to 3:1 at 60 %": lambda im: _aspect_at(im, 3.0, 0.6),
    "crop to square at 25 %": lambda im: _aspect_at(im, 1.0, 0.25),
}


# Flipped or turned, then cut or covered (what a re-poster's editor does in either order; the
# same copy for centred cuts), kept apart so the tables show them as one family.
TURNED_HANDLINGS: dict[str, Callable[[Image.Image], Image.Image]] = {
    f"{turn} + {then}": _turned(turn, then) for turn, then in [
        ("mirror", "crop 10 %/side"), ("rotate 90", "crop 15 %/side"), ("flip vertical", "crop 5 %/side"),
        ("rotate 180", "crop 20 %/side"), ("rotate 270", "crop 10 %/side"),
        ("mirror", "crop to square"), ("mirror", "crop to 4:5"), ("mirror", "crop to 16:9"),
        ("rotate 90", "crop to square"),
        ("mirror", "banner 20 % bottom"), ("rotate 90", "banner 25 % top"), ("mirror", "sticker over a quarter"),
        ("rotate 180", "crop 20 % left, 10 % top"), ("mirror", "crop 15 % right, 20 % bottom"),
        ("rotate 270", "crop 10 % left, 20 % bottom"),
        ("mirror", "crop 5/15/20/10 % l/t/r/b"),
        # Found by the crop search of the copy turned back (rightsmeta/cropsearch.py ``FORMS``); a
        # quarter turn then a 4:5 crop is, turned back, a 5:4 crop of the work (up to 20 % a side).
        ("flip vertical", "crop 18/4/9/16 % l/t/r/b"), ("rotate 90", "crop 5/15/20/10 % l/t/r/b"),
        ("rotate 180", "crop 12/0/17/8 % l/t/r/b"), ("rotate 270", "crop 8/12/15/6 %, then 60 %"),
        ("rotate 90", "crop to 4:5"), ("rotate 270", "crop to 4:5"),
    ]
}


def handle(img: Image.Image, name: str) -> bytes:
    """The copy a re-poster would publish: the handling, then a JPEG at quality 75."""
    return jpeg({**IMAGE_HANDLINGS, **UNCOVERED_HANDLINGS, **WIDE_HANDLINGS, **TURNED_HANDLINGS}[name](img), 75)


# --- music ----------------------------------------------------------------------------------------

RATE = 44100


def music(seed: int, seconds: float = 30.0, rate: int = RATE) -> np.ndarray:
    """Stereo float PCM: a chord progression (pads), bass, a melody and drums at a seeded tempo."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    bpm = rng.uniform(80, 140)
    beat = 60 / bpm
    key = rng.integers(0, 12)
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    progression = [rng.choice([0, 3, 4, 5, 1]) for _ in range(4)]
    out = np.zeros(n)

    def freq(semitone: float) -> float:
        return 220.0 * 2 ** ((semitone + key) / 12)

    bar = 4 * beat
    for index, start in enumerate(np.arange(0, seconds, bar)):
        degree = progression[index % 4]
        a, b = int(start * rate), min(n, int((start + bar) * rate))
        tt = t[a:b] - start
        chord = [scale[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]
        env = np.minimum(1, tt * 8) * np.exp(-tt * 0.6)
        for semitone in chord:  # pads: detuned saw-ish partials
            f = freq(semitone)
            out[a:b] += 0.08 * env * sum(np.sin(2 * np.pi * f * k * tt + k) / k for k in range(1, 5))
        fb = freq(chord[0] - 24)
        for q in range(4):  # bass on every beat
            qa = a + int(q * beat * rate)
            qb = min(b, qa + int(beat * rate))
            tq = t[qa:qb] - t[qa] if qa < qb else t[qa:qa]
            out[qa:qb] += 0.25 * np.exp(-tq * 4) * np.sin(2 * np.pi * fb * tq)
    step = beat / 2
    for start in np.arange(0, seconds, step):  # melody in eighth notes, sometimes resting
        if rng.random() < 0.25:
            continue
        a, b = int(start * rate), min(n, int((start + step) * rate))
        tt = t[a:b] - start
        f = freq(scale[rng.integers(0, 7)] + 12)
        out[a:b] += 0.12 * np.exp(-tt * 5) * (np.sin(2 * np.pi * f * tt) + 0.3 * np.sin(4 * np.pi * f * tt))
    noise = rng.normal(0, 1, n)
    for k, start in enumerate(np.arange(0, seconds, beat / 2)):  # drums: kick, snare, hats
        a = int(start * rate)
        length = min(n - a, int(0.2 * rate))
        tt = np.arange(length) / rate
        if k % 4 == 0:
            out[a : a + length] += 0.5 * np.exp(-tt * 25) * np.sin(2 * np.pi * (50 + 80 * np.exp(-tt * 40)) * tt)
        if k % 4 == 2:
            out[a : a + length] += 0.25 * np.exp(-tt * 30) * noise[a : a + length]
        out[a : a + length] += 0.06 * np.exp(-tt * 90) * noise[::-1][a : a + length]
    out /= max(1e-9, float(np.abs(out).max())) * 1.05
    right = np.roll(out, 23) * 0.92
    return np.stack([out, right], axis=1)


def wav(pcm: np.ndarray, rate: int = RATE) -> bytes:
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, pcm, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


# name -> ffmpeg output arguments (applied to the original WAV); the copy's format.
AUDIO_HANDLINGS: dict[str, tuple[list[str], str]] = {
    "MP3 128k": (["-c:a", "libmp3lame", "-b:a", "128k"], "mp3"),
    "AAC 96k": (["-c:a", "aac", "-b:a", "96k"], "m4a"),
    "mono 22 kHz": (["-ac", "1", "-ar", "22050"], "wav"),
    "Opus 48 kHz": (["-c:a", "libopus", "-b:a", "64k"], "ogg"),
    "first 2 s cut": (["-ss", "2"], "wav"),
    "last 5 s cut": (["-t", "25"], "wav"),
    "10 s excerpt from 0 s": (["-t", "10"], "wav"),
    "10 s excerpt from 7.3 s": (["-ss", "7.3", "-t", "10"], "wav"),
    "10 s excerpt from 19 s": (["-ss", "19", "-t", "10"], "wav"),
    "tempo x1.03": (["-af", "atempo=1.03"], "wav"),
    "tempo x0.97": (["-af", "atempo=0.97"], "wav"),
    "tempo x1.02 MP3": (["-af", "atempo=1.02", "-c:a", "libmp3lame", "-b:a", "128k"], "mp3"),
}


# --- real material (issue 17: the rates on real photos and real music) -----------------------------
# Photos: the photographs bundled inside scikit-image's wheel (skimage/data; read from the installed
# package, never fetched), with the licences their docstrings state. Left out: the moon (no licence
# stated), the Middlebury motorcycle pair (research benchmark terms; left and right are one scene),
# and the drawings, scans, microscopy and synthetic images.
REAL_PHOTOS: dict[str, str] = {
    "astronaut.png": "NASA, public domain",
    "camera.png": "CC0, Lav Varshney",
    "chelsea.png": "CC0, Stefan van der Walt",
    "coffee.png": "CC0, Rachel Michetti",
    "rocket.jpg": "SpaceX, public domain",
    "coins.png": "Brooklyn Museum, no known copyright restrictions",
    "clock_motion.png": "public domain, Stefan van der Walt",
    "hubble_deep_field.jpg": "NASA, public domain",
    "retina.jpg": "CC0, Mikael Haggstrom (Wikimedia Commons)",
    "brick.png": "CC0, CC0Textures",
    "grass.png": "CC0, CC0Textures",
    "gravel.png": "CC0, CC0Textures",
}

# Music: Bach chorales from music21's bundled corpus (real four-part scores, public domain),
# written to MIDI with each part on a General MIDI instrument and rendered by FluidSynth with the
# TimGM6mb soundfont (Debian fluidsynth, timgm6mb-soundfont): sampled instruments, not oscillators.
SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
CHORALES: tuple[str, ...] = (
    "bach/bwv269", "bach/bwv4.8", "bach/bwv244.62", "bach/bwv227.11", "bach/bwv248.42-4",
    "bach/bwv103.6", "bach/bwv40.8", "bach/bwv10.7", "bach/bwv65.7", "bach/bwv1.6",
)
# (soprano, alto, tenor, bass) General MIDI programs, one ensemble per song in turn: organ,
# strings, woodwinds, brass, piano.
ENSEMBLES: tuple[tuple[int, int, int, int], ...] = (
    (19, 19, 19, 19), (40, 41, 42, 42), (73, 68, 71, 70), (56, 60, 57, 58), (0, 0, 0, 0),
)


def real_material_missing() -> str | None:
    """Why the real photos or songs cannot be made here, or None when they can."""
    import importlib.util
    import os
    import shutil

    if importlib.util.find_spec("skimage") is None:
        return "scikit-image is not installed (its wheel carries the real photos): pip install -e '.[test]'"
    if importlib.util.find_spec("music21") is None:
        return "music21 is not installed (its corpus carries the real scores): pip install -e '.[test]'"
    if shutil.which("fluidsynth") is None or not os.path.exists(SOUNDFONT):
        return "fluidsynth or the TimGM6mb soundfont is missing: apt-get install fluidsynth timgm6mb-soundfont"
    if shutil.which("ffmpeg") is None or shutil.which("fpcalc") is None:
        return "ffmpeg or fpcalc is missing"
    return None


def real_photo_file(name: str) -> bytes:
    """One of REAL_PHOTOS: the file's bytes, from the installed scikit-image."""
    from importlib.resources import files

    return (files("skimage.data") / name).read_bytes()


def real_photo(name: str) -> Image.Image:
    """One of REAL_PHOTOS decoded (RGB or greyscale, as the file holds it)."""
    img = Image.open(io.BytesIO(real_photo_file(name)))
    img.load()
    return img


def real_song(index: int, seconds: float = 30.0, rate: int = RATE) -> bytes:
    """CHORALES[index] performed by ENSEMBLES[index % 5], as a 16-bit stereo WAV of its first ``seconds``."""
    import subprocess
    import tempfile
    from pathlib import Path

    from music21 import converter, corpus, instrument

    # Parsed from the corpus file itself: music21's default pickle cache would write into a shared /tmp/music21.
    score = converter.parse(corpus.getWork(CHORALES[index]), forceSource=True, storePickle=False)
    for part, program in zip(score.parts, ENSEMBLES[index % len(ENSEMBLES)], strict=False):
        for old in part.recurse().getElementsByClass(instrument.Instrument):
            old.activeSite.remove(old)
        voice = instrument.Instrument()
        voice.midiProgram = program
        part.insert(0, voice)
    with tempfile.TemporaryDirectory(prefix="rightsmeta-song-") as name:
        mid, out = Path(name) / "song.mid", Path(name) / "song.wav"
        score.write("midi", fp=str(mid))
        subprocess.run(["fluidsynth", "-ni", "-q", "-r", str(rate), "-g", "0.6", "-F", str(out), SOUNDFONT, str(mid)],
                       check=True, capture_output=True, timeout=120)
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(out), "-t", str(seconds),
                        "-c:a", "pcm_s16le", str(out.with_suffix(".cut.wav"))], check=True, timeout=120)
        return out.with_suffix(".cut.wav").read_bytes()
