"""`rightsmeta serve` says where it listens only once it does: a free port it was given 0 for,
and a clear refusal (exit 2) for a port another server holds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("uvicorn")

from test_serve import stop_server, wait_healthy  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _serve(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "rightsmeta", "serve", "--no-ledger", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        stop_server(process)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def test_port_0_prints_the_port_listened_on_and_a_taken_port_is_refused() -> None:
    # --port 0 (the option allows it) printed "http://127.0.0.1:0/": where the server was, nobody
    # could tell. A port in use printed the same "rightsmeta serve: http://...:PORT/" first (the
    # other server's address), then uvicorn's "[Errno 98]" and exit 3.
    first = _serve("--port", "0")
    try:
        assert first.stderr is not None
        line = first.stderr.readline()
        found = re.fullmatch(r"rightsmeta serve: http://127\.0\.0\.1:(\d+)/ \(docs at /docs\)\n", line)
        assert found and found[1] != "0", line
        port = found[1]
        assert wait_healthy(f"http://127.0.0.1:{port}", first), "server did not start"
        second = _serve("--port", port)
        try:
            _, err = second.communicate(timeout=60)
        finally:
            _stop(second)
        assert second.returncode == 2, err
        assert f"cannot listen on 127.0.0.1:{port}" in err and "rightsmeta serve: http" not in err, err
    finally:
        _stop(first)
