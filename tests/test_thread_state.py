"""Library calls leave process-wide state alone (a server calls them from its threads), and
follow the process state that is the user's (the umask)."""

from __future__ import annotations

import io
import stat
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from rightsmeta import contentcheck


def _png(level: int) -> bytes:
    pixels = np.random.default_rng(7).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG", compress_level=level)
    return out.getvalue()


def test_comparing_pixels_from_threads_leaves_the_warning_filters_alone() -> None:
    # The same pixels compressed two ways: the bytes differ, so compare() decodes both images.
    before, after = _png(1), _png(9)
    assert before != after and contentcheck.compare(before, after, "png") == []
    filters = list(warnings.filters)
    # warnings.catch_warnings() swaps the module's one filter list: two threads inside it at once
    # restore each other's lists, and an "error" filter could outlive them in the whole process.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: contentcheck.compare(before, after, "png"), range(400)))
    finally:
        sys.setswitchinterval(interval)
    assert results == [[]] * 400
    assert warnings.filters == filters


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_a_new_file_gets_the_mode_the_users_umask_gives(tmp_path: Path, umask: int) -> None:
    # scan --out writes new shards: a team sharing a folder (umask 002) can write them, a private
    # user's (077) are not readable by others, as every file their other tools make. In a child
    # process: the umask is the process's, and this one runs other tests' threads.
    target = tmp_path / f"new-{umask:o}.bin"
    code = ("import os, sys; os.umask(int(sys.argv[2], 8)); from rightsmeta.fsio import atomic_write; "
            "atomic_write(sys.argv[1], b'data')")
    subprocess.run([sys.executable, "-c", code, str(target), f"{umask:o}"], check=True)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    # An existing file keeps its own mode, whatever the umask.
    target.chmod(0o640)
    subprocess.run([sys.executable, "-c", code, str(target), "077"], check=True)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_library_calls_from_threads_answer_as_they_do_alone(tmp_path: Path) -> None:
    """What a server does: the library called from many threads at once, on every kind, while
    another thread records works in one shared ledger. Each answer is the one the call gives alone
    (the switch every 10 us interleaves them inside one another)."""
    from samples import image_bytes
    from test_datasets import wav_bytes
    from test_documents import pdf_bytes

    import rightsmeta
    from rightsmeta import fingerprint, sanitize, verify
    from rightsmeta.ledger import Ledger

    deny, allow = rightsmeta.Assertion.build(deny=["ai"]), rightsmeta.Assertion.build(allow=["all"])
    originals = {f"{fmt}{seed}": (image_bytes(fmt, seed=seed, exif=True), fmt)
                 for fmt in ("jpeg", "png", "webp", "tiff") for seed in (1, 2)}
    originals["wav"], originals["pdf"] = (wav_bytes(3), "wav"), (pdf_bytes(), "pdf")
    ledger = Ledger.open(str(tmp_path / "works.sqlite3"))
    for name, (data, fmt) in originals.items():
        if name.endswith("1"):  # half of them are works the ledger knows: their copies are looked up
            rightsmeta.tag(_written(tmp_path, name, fmt, data), deny, ledger=ledger)

    tagged = {name: rightsmeta.tag_bytes(data, deny) for name, (data, _) in originals.items()}

    def calls(name: str) -> list[Any]:
        data, fmt = originals[name]
        retagged = rightsmeta.read(rightsmeta.tag_bytes(tagged[name], allow))  # a new work id each time: its decision
        return [
            rightsmeta.read(tagged[name]).to_json(),
            (retagged.to_json()["permissions"], retagged.format, retagged.errors),
            verify.verify(data, ledger=ledger).to_json(),
            verify.verify(tagged[name]).to_json(),
            sanitize.sanitize_bytes(tagged[name]).data if fmt in sanitize.FORMATS else None,
            fingerprint.essence(data, fmt),
        ]

    alone = {name: calls(name) for name in originals}

    def more_works() -> None:
        for seed in range(10, 16):
            rightsmeta.tag(_written(tmp_path, f"more{seed}", "png", image_bytes("png", seed=seed)), deny, ledger=ledger)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        with ThreadPoolExecutor(8) as pool:
            writer = pool.submit(more_works)
            together = list(pool.map(calls, [*originals] * 3))
            writer.result()
    finally:
        sys.setswitchinterval(interval)
    for name, got in zip([*originals] * 3, together, strict=True):
        for i, (a, b) in enumerate(zip(alone[name], got, strict=True)):
            assert a == b, (name, i)


def _written(folder: Path, name: str, fmt: str, data: bytes) -> Path:
    path = folder / f"{name}.{fmt}"
    path.write_bytes(data)
    return path
