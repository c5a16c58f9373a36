"""The service's connection guards, on a real uvicorn on 127.0.0.1: a request head sent slowly
(slowloris) is cut off, and a server full of connections answers 503 as an RFC 9457 problem."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("uvicorn")

HEAD = 0.6  # seconds allowed for a request head in these tests


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    import uvicorn

    from rightsmeta.server import ServerConfig
    from rightsmeta.server.app import uvicorn_config

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = int(s.getsockname()[1])
    folder: Path = tmp_path_factory.mktemp("guard")
    config = ServerConfig(ledger=str(folder / "ledger.sqlite3"), workers=1, backlog=0, head_seconds=HEAD)
    server = uvicorn.Server(uvicorn_config(config, "127.0.0.1", free))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.05)
    yield free
    server.should_exit = True
    thread.join(30)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(5)
    return sock


def _answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            break
        data += more
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
    while len(rest) < length:
        rest += sock.recv(65536)
    return head + b"\r\n\r\n" + rest


def _closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> float:
    """Send ``trickle`` a byte every 0.1 s; the time the server took to close the connection."""
    start = time.monotonic()
    for byte in trickle:
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - start
        sock.settimeout(0.1)
        try:
            if sock.recv(1) == b"":
                return time.monotonic() - start
        except TimeoutError:
            pass
        except ConnectionResetError:  # closed with unread bytes of ours pending: a reset, not a FIN
            return time.monotonic() - start
        if time.monotonic() - start > seconds:
            break
    sock.settimeout(max(0.1, seconds - (time.monotonic() - start)))
    try:
        assert sock.recv(1) == b""
    except TimeoutError:
        pytest.fail(f"the connection was still open after {seconds} s")
    except ConnectionResetError:
        pass
    return time.monotonic() - start


def test_a_request_head_sent_slowly_is_cut_off(port: int) -> None:
    with _connect(port) as sock:
        slow = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200
        took = _closed_within(sock, 3 * HEAD + 1, slow)
    assert HEAD - 0.1 < took < 3 * HEAD + 1


def test_a_silent_connection_is_closed(port: int) -> None:
    with _connect(port) as sock:
        assert _closed_within(sock, 3 * HEAD + 1) > HEAD - 0.1


def test_keep_alive_requests_work_and_the_next_head_is_timed_too(port: int) -> None:
    with _connect(port) as sock:
        for _ in range(2):
            time.sleep(HEAD / 3)  # each head has its own allowance
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _answer(sock).startswith(b"HTTP/1.1 200")
        _closed_within(sock, 3 * HEAD + 1, b"GET /healthz HTTP/1.1\r\n" + b"X: " + b"b" * 200)


def test_a_full_server_answers_with_a_problem_document(port: int) -> None:
    # workers + backlog + 64 connections at most: 65 here; the 65th is refused.
    held = [_connect(port) for _ in range(64)]
    try:
        for sock in held:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # an unfinished head holds its connection
        time.sleep(0.1)
        with _connect(port) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = _answer(sock)
    finally:
        for sock in held:
            sock.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().lower().split("\r\n")
    assert lines[0].startswith("http/1.1 503")
    assert "content-type: application/problem+json" in lines and "retry-after: 5" in lines
    problem = json.loads(body)
    assert problem["status"] == 503 and problem["title"] == "Busy" and problem["instance"] == "/healthz"
    # once connections are free again, the same server answers
    time.sleep(0.1)
    with _connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 200")
