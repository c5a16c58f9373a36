"""Real sample files, made on the spot with Pillow and ExifTool: no format is ever mocked."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageCms

WRITABLE = ("jpeg", "png", "webp", "tiff")
EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp", "tiff": "tif", "gif": "gif", "avif": "avif"}


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def image_bytes(fmt: str, *, size: tuple[int, int] = (48, 32), seed: int = 1, exif: bool = False, icc: bool = False) -> bytes:
    """A small image with varied pixels (so a pixel change would show), optionally with EXIF and ICC."""
    img = Image.new("RGB", size)
    img.putdata([((x * 7 + seed) % 256, (y * 13 + seed) % 256, (x * y + seed) % 256) for y in range(size[1]) for x in range(size[0])])
    kwargs: dict[str, Any] = {}
    if exif:
        ex = Image.Exif()
        ex[0x010F] = "rightsmeta test camera"  # Make
        ex[0x0131] = "pillow"  # Software
        kwargs["exif"] = ex.tobytes()
    if icc:
        kwargs["icc_profile"] = _srgb_icc()
    if fmt == "jpeg":
        kwargs["quality"] = 90
    if fmt == "webp":
        kwargs["lossless"] = True
    if fmt == "gif":
        img = img.convert("P")
    out = io.BytesIO()
    img.save(out, format=fmt.upper(), **kwargs)
    return out.getvalue()


def write_image(directory: Path, fmt: str, name: str = "sample", **kwargs: Any) -> Path:
    path = directory / f"{name}.{EXTENSIONS[fmt]}"
    path.write_bytes(image_bytes(fmt, **kwargs))
    return path


def pixels(data: bytes | Path) -> bytes:
    raw = data.read_bytes() if isinstance(data, Path) else data
    with Image.open(io.BytesIO(raw)) as img:
        img.load()
        return img.convert("RGBA").tobytes()


def exiftool_json(exiftool: str, path: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run([exiftool, "-j", "-G1", *args, str(path)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)[0]  # type: ignore[no-any-return]


# ExifTool 13.59 reads the TDMRep namespace but cannot write it without a definition, which is
# what a user of ExifTool would add; -config must come first on the command line.
TDM_CONFIG = """
%Image::ExifTool::UserDefined = (
    'Image::ExifTool::XMP::Main' => {
        tdm => { SubDirectory => { TagTable => 'Image::ExifTool::UserDefined::tdm' } },
    },
);
%Image::ExifTool::UserDefined::tdm = (
    GROUPS => { 0 => 'XMP', 1 => 'XMP-tdm', 2 => 'Document' },
    NAMESPACE => { 'tdm' => 'http://www.w3.org/ns/tdmrep/' },
    WRITABLE => 'string',
    reservation => { },
    policy => { },
);
1;
"""


def exiftool_write(exiftool: str, path: Path, *assignments: str) -> None:
    config = path.parent / ".exiftool_tdm_config"
    if not config.exists():
        config.write_text(TDM_CONFIG)
    subprocess.run(
        [exiftool, "-config", str(config), "-overwrite_original", "-q", *assignments, str(path)],
        check=True, capture_output=True,
    )


def seeded_mutants(data: bytes, count: int, inflated: bytes, seed: int = 12) -> Iterator[tuple[int, bytes]]:
    """``count`` damaged copies of ``data``, in turn a flipped bit, a cut, and ``inflated`` written
    over bytes (a length made huge), at seeded places: the same mutants on every run."""
    rng = np.random.default_rng(seed)
    for n in range(count):
        mutant = bytearray(data)
        at = int(rng.integers(0, len(data)))
        if n % 3 == 0:
            mutant[at] ^= 1 << int(rng.integers(0, 8))
        elif n % 3 == 1:
            del mutant[at:]
        else:
            mutant[at : at + len(inflated)] = inflated
        yield n, bytes(mutant)
