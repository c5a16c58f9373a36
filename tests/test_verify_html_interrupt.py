"""``verify --html`` interrupted while it writes the page: SIGTERM leaves no temporary file
(the rows wait in an anonymous file; the page goes through fsio.replacing)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from samples import image_bytes

ROOT = Path(__file__).resolve().parent.parent

_SLOW_PAGE = """
import shutil, sys, time
from rightsmeta.cli import main

ready = sys.argv[1]

def stalled(rows, page):  # the page's temporary file is open and half written: wait to be stopped
    open(ready, "w").close()
    time.sleep(60)

shutil.copyfileobj = stalled  # output imports shutil when the page is written
sys.argv = ["rightsmeta", "verify", sys.argv[2], "--no-ledger", "--html", sys.argv[3]]
main()
"""


def test_sigterm_while_the_html_page_is_written_leaves_no_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "photo.png").write_bytes(image_bytes("png"))
    out = tmp_path / "out"
    out.mkdir()
    ready = tmp_path / "ready"
    run = subprocess.Popen([sys.executable, "-c", _SLOW_PAGE, str(ready), str(tmp_path / "photo.png"), str(out / "report.html")],
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert run.poll() is None, run.communicate()[1]
            if time.monotonic() > deadline:
                pytest.fail("verify never reached the page's write")
            time.sleep(0.05)
        assert [p.name for p in out.iterdir() if p.name.endswith(".rightsmeta-tmp")]  # the page was being written
        run.send_signal(signal.SIGTERM)
        run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 128 + signal.SIGTERM
    assert list(out.iterdir()) == []
