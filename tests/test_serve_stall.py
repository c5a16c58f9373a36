"""A client that sends a request and never reads the answer, against the real server (uvicorn on
loopback): the connection, the file being sent and its folder are let go after ``send_seconds``
without progress, where uvicorn waited for the client's socket to drain forever."""

from __future__ import annotations

import io
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.test_serve import ASSERTION, Server, _start

pytest.importorskip("uvicorn")
pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads the server's open files in /proc")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from _start(tmp_path, "--no-ledger", "--token-file", str(tmp_path / "token"), "--workers", "1", "--send-timeout", "2")


def _held(pid: int) -> list[str]:
    """The request files (the tagged file sent, in the folder of one request) the server holds open."""
    held = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.endswith("/out"):
            held.append(target)
    return held


def test_an_answer_nobody_reads_is_let_go(server: Server) -> None:
    # Incompressible: the tagged file (~6 MB) is more than loopback's socket buffers hold.
    noise = np.random.default_rng(5).integers(0, 256, (1400, 1400, 3), dtype=np.uint8)
    png = io.BytesIO()
    Image.fromarray(noise).save(png, "PNG", compress_level=0)
    pid = server.process.pid
    boundary = "b0undary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="assertion"\r\n\r\n{ASSERTION}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="noise.png"\r\n\r\n').encode() \
        + png.getvalue() + f"\r\n--{boundary}--\r\n".encode()
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: the window stays small
        client.connect(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
        client.sendall(f"POST /v1/tag HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.token}\r\n"
                       f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n"
                       .encode() + body)
        # The tag job runs, then the answer starts and stalls: the server holds the tagged file.
        deadline = time.monotonic() + 60
        while not _held(pid):
            assert time.monotonic() < deadline, (server.folder / "server.log").read_text()
            time.sleep(0.2)
        sending = time.monotonic()
        while _held(pid):
            assert time.monotonic() - sending < 20, "the server still holds the file of an answer nobody reads"
            time.sleep(0.2)
        let_go = time.monotonic() - sending
        client.settimeout(10)
        head = client.recv(4096)
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        header, _, got_first = head.partition(b"\r\n\r\n")
        length = int(next(line.split(b":", 1)[1] for line in header.split(b"\r\n") if line.lower().startswith(b"content-length:")))
        got = len(got_first)
        try:
            while chunk := client.recv(1 << 20):
                got += len(chunk)
        except ConnectionResetError:
            pass
    assert got < length  # the answer was cut, not sent whole
    assert 1.5 < let_go < 15, let_go  # --send-timeout 2 after the stall began (a poll may see it late)
    with server.client() as http:
        assert http.get("/healthz").status_code == 200  # the server goes on
