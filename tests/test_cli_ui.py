"""``rightsmeta ui`` where no browser can be opened: an SSH session, a headless server."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def test_without_a_browser_ui_prints_the_address_with_its_token(tmp_path: Path) -> None:
    # The page needs the token in its address; "opening ... in your browser" alone left no way in.
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")}
    env.update(PATH=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"),
               PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]))
    log_path = tmp_path / "ui.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "rightsmeta", "ui", "--ledger", str(tmp_path / "l.sqlite3")],
                                   stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"open (http://127\.0\.0\.1:\d+/)#token=(\S+)", log_path.read_text())):
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        base, token = found.groups()
        while True:  # the address is said before the server may be listening
            try:
                made = httpx.post(base + "v1/batches", headers={"Authorization": f"Bearer {token}"}, timeout=10)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
        assert made.status_code in (200, 201), made.text  # the printed token opens the page's writes
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
