"""``rightsmeta tag`` keeps freed buffers for the next file (alloc.py): a folder of large files
costs about one file's page faults, not two per file (glibc's default maps and unmaps every
buffer over 128 KiB)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from rightsmeta import alloc

# Runs the command and prints its minor page faults (wait4: this child alone).
_FAULTS = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(usage.ru_minflt, os.waitstatus_to_exitcode(status))
"""


def _faults(folder: Path) -> int:
    command = [sys.executable, "-m", "rightsmeta", "tag", "-r", "--deny", "ai", "--no-sign", "--no-ledger",
               "--json", str(folder)]
    faults, code = subprocess.run([sys.executable, "-c", _FAULTS, *command], check=True, capture_output=True,
                                  text=True).stdout.split()
    assert code == "0"
    return int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_tagging_many_large_files_faults_in_about_one_file(tmp_path: Path) -> None:
    assert alloc.keep_freed_memory()  # glibc here: the setting is taken
    empty, full = tmp_path / "empty", tmp_path / "full"
    empty.mkdir()
    full.mkdir()
    for i in range(12):  # 1.4 MB each, uncompressed: the bytes read and written are the file's size
        Image.effect_noise((800, 600), 30 + i).convert("RGB").save(full / f"{i:02d}.tif")
    pages = (full / "00.tif").stat().st_size // 4096
    _faults(empty)  # warm the page cache for the imports
    extra = _faults(full) - _faults(empty)
    # Two buffers per file faulted in anew would be 12 * 2 * pages (~8,600); kept, about 2 files' worth.
    assert extra < 6 * pages, (extra, pages)
