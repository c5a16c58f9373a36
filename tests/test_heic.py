"""HEIC photos in the ledger, in a process where nothing registered pillow_heif's Pillow opener
(test_containers.py and test_c2pa.py do, for the whole test process: a test here would pass
through their registration)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pillow_heif")

_SCRIPT = r"""
import shutil, subprocess, sys
import numpy as np
import pillow_heif
from PIL import Image
import rightsmeta
from rightsmeta import Assertion, keys
from rightsmeta.ledger import Ledger
from rightsmeta.verify import verify

folder, exiftool = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(7)
blocks = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
photo = Image.fromarray(np.kron(blocks, np.ones((8, 8, 1), np.uint8)))
pillow_heif.from_pillow(photo).save(f"{folder}/photo.heic", quality=90)  # libheif, no Pillow opener

with Ledger.open(f"{folder}/ledger.db") as ledger:
    result = rightsmeta.tag(f"{folder}/photo.heic", Assertion.build(deny=["ai"]), identity=keys.make_identity("T"),
                            ledger=ledger)
    assert result.status == "tagged", result
    assert not [n for n in result.notes if "decode" in n], result.notes  # the ledger recorded it
    # The signed manifest's soft binding: the ISCC Image-Code of the HEIC's pixels, as of the same
    # picture saved as a PNG (it had none: the code's decoder took no HEIC).
    import io, iscc_core
    from rightsmeta.fingerprint import image_code
    [binding] = [c.values["soft_binding"] for c in rightsmeta.read(f"{folder}/photo.heic").carriers if c.name == "c2pa"]
    png = io.BytesIO()
    photo.save(png, "PNG")
    assert iscc_core.iscc_distance(binding["blocks"][0]["value"], image_code(png.getvalue())) <= 4, binding
    shutil.copy(f"{folder}/photo.heic", f"{folder}/copy.heic")
    subprocess.run([exiftool, "-q", "-overwrite_original", "-all=", f"{folder}/copy.heic"], check=True)
    verdict = verify(f"{folder}/copy.heic", ledger=ledger)
assert verdict.status == "stripped", verdict.reasons
assert verdict.match is not None and verdict.match.exact, verdict.match
stated = verdict.to_json()["permissions"]
assert stated["ai-training"] == "notAllowed", stated

from rightsmeta.server import jobs  # serve's upload gate: every HEIC upload was a 422

jobs.init(f"{folder}/ledger.db", None, 0, 0)
upload = jobs.run("by_content", {"path": f"{folder}/copy.heic", "limit": 5})
assert len(upload["json"]["matches"]) == 1, upload
assert "HEIF" not in Image.OPEN, "the library registered an opener for the whole process"
print("ok")
"""


def test_stripped_heic_is_found_without_a_registered_opener(tmp_path: Path, exiftool: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path), exiftool], capture_output=True, text=True,
                         env=env, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def test_a_rendition_of_a_heic_is_said_to_be_resized() -> None:
    # carry compares the sizes of original and rendition; a HEIC's size was never read.
    import io

    import pillow_heif
    from PIL import Image

    from rightsmeta.carry import actions_for

    photo = Image.radial_gradient("L").convert("RGB")  # 256x256
    heic = io.BytesIO()
    pillow_heif.from_pillow(photo).save(heic, quality=80)
    sizes = {}
    for side in (256, 128):
        jpeg = io.BytesIO()
        photo.resize((side, side)).save(jpeg, "JPEG")
        sizes[side] = actions_for(heic.getvalue(), "heic", jpeg.getvalue(), "jpeg")
    assert sizes == {256: ["c2pa.transcoded"], 128: ["c2pa.transcoded", "c2pa.resized"]}
