"""Content fingerprints that survive metadata removal: ISCC (ISO 24138) codes of the decoded essence.

Used as the C2PA soft binding of a signed manifest, so a stripped or re-encoded copy can later be
matched to the original work. Images only for now (ISCC Image-Code over 32x32 grey pixels, the
normalisation iscc-sdk applies); other essences return None.
"""

from __future__ import annotations

import io

import iscc_core
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_FORMATS = frozenset({"jpeg", "png", "webp", "tiff", "gif", "avif"})


def image_code(data: bytes) -> str | None:
    """``ISCC:...`` Image-Code of the pixels, or None if Pillow cannot decode them."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("L", (256, 256))  # JPEG: decode at reduced size, far faster on large photos
            grey = ImageOps.exif_transpose(img).convert("L").resize((32, 32), Image.Resampling.BICUBIC)
            pixels = list(grey.tobytes())
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    code: str = iscc_core.gen_image_code_v0(pixels, bits=64)["iscc"]
    return code


def fingerprint(data: bytes, fmt: str) -> str | None:
    return image_code(data) if fmt in IMAGE_FORMATS else None
