"""`scan --engine ray --ray-address` where no Ray listens: a usage error at once, not Ray's minutes of
retries. Real peers on loopback (a web server, a closed port, a silent listener); no cluster needed."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from samples import image_bytes

from rightsmeta.datasets import ray_engine
from rightsmeta.errors import UsageError

pytest.importorskip("ray")

#: 127.0.0.1 is not used: Ray dials this machine's network address for it, as the probe does.
HOST = "127.0.0.2"
#: Ray's import and start-up, plus the probe's at most 2 x CONNECT_SECONDS.
BOUND_SECONDS = 15


def _scan(tmp_path: Path, address: str) -> tuple[subprocess.CompletedProcess[str], float]:
    shard = tmp_path / "a.tar"
    with tarfile.open(shard, "w") as tar:
        data = image_bytes("png")
        info = tarfile.TarInfo("000000.png")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    start = time.monotonic()
    # A timeout above the bound: without the probe Ray retries for minutes, which fails here, not hangs.
    done = subprocess.run([sys.executable, "-m", "rightsmeta", "scan", str(shard), "--purpose", "genai-training",
                           "--engine", "ray", "--ray-address", address], capture_output=True, text=True, env=env,
                          timeout=BOUND_SECONDS * 4)
    return done, time.monotonic() - start


@pytest.fixture
def web_server() -> Iterator[int]:
    server = ThreadingHTTPServer((HOST, 0), SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """Accepts connections (the kernel's backlog does) and never answers: a proxy that hangs."""
    with socket.create_server((HOST, 0)) as sock:
        yield sock


def _closed_port() -> int:
    with socket.create_server((HOST, 0)) as sock:
        return int(sock.getsockname()[1])


def test_a_web_server_is_not_a_ray_cluster(tmp_path: Path, web_server: int) -> None:
    done, seconds = _scan(tmp_path, f"{HOST}:{web_server}")
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"cannot reach the Ray cluster at {HOST}:{web_server}" in done.stderr
    assert "not Ray" in done.stderr and "web server or proxy" in done.stderr
    assert "Traceback" not in done.stderr and "gcs" not in done.stderr.lower()
    assert seconds < BOUND_SECONDS


def test_a_closed_port_is_said_at_once(tmp_path: Path) -> None:
    port = _closed_port()
    done, seconds = _scan(tmp_path, f"{HOST}:{port}")
    assert done.returncode == 2 and f"cannot reach the Ray cluster at {HOST}:{port}" in done.stderr, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert seconds < BOUND_SECONDS


@pytest.mark.parametrize("address", ["nonsense", "10.0.0.1:port"])
def test_an_address_ray_refuses_is_a_usage_error(tmp_path: Path, address: str) -> None:
    # Ray's ValueError ("Invalid address format") was a traceback.
    done, _ = _scan(tmp_path, address)
    assert done.returncode == 2 and f"cannot use the Ray cluster at {address}" in done.stderr, done.stderr[-3000:]
    assert "Traceback" not in done.stderr


def test_a_listener_that_never_answers_is_given_bounded_time(listener: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ray_engine, "CONNECT_SECONDS", 0.5)
    start = time.monotonic()
    with pytest.raises(UsageError, match="not Ray .it does not answer as gRPC within 0.5 s"):
        ray_engine._reachable(f"{HOST}:{listener.getsockname()[1]}")
    assert time.monotonic() - start < 2


def test_a_peer_that_drips_bytes_gets_no_more_time(listener: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    """A byte every 0.3 s: a SETTINGS header's 9 bytes would take 2.7 s; the deadline is 1 s in all."""
    monkeypatch.setattr(ray_engine, "CONNECT_SECONDS", 1.0)

    def drip() -> None:
        peer, _ = listener.accept()
        with peer, contextlib.suppress(OSError):
            for byte in bytes.fromhex("000000040000000000"):
                peer.sendall(bytes([byte]))
                time.sleep(0.3)

    threading.Thread(target=drip, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(UsageError, match="does not answer as gRPC within 1 s"):
        ray_engine._reachable(f"{HOST}:{listener.getsockname()[1]}")
    assert time.monotonic() - start < 2.5


def test_a_ray_client_address_is_checked_too(tmp_path: Path, web_server: int) -> None:
    # ray://host:port (Ray Client) was left to Ray: with ray[client] installed, 34-38 s of Ray's
    # retries and warnings for a closed port or a web server, then "ray client connection timeout".
    port = _closed_port()
    done, seconds = _scan(tmp_path, f"ray://{HOST}:{port}")
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"cannot reach the Ray cluster at ray://{HOST}:{port} (Connection refused)" in done.stderr, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and seconds < BOUND_SECONDS
    with pytest.raises(UsageError, match=r"at ray://127\.0\.0\.2:\d+: something listens there but is not Ray .it answers in text"):
        ray_engine._reachable(f"ray://{HOST}:{web_server}")


@pytest.fixture
def grpc_server() -> Iterator[int]:
    """A real gRPC server (grpcio, as Ray Client's own) serving no Ray service."""
    grpc = pytest.importorskip("grpc", reason="the gRPC peer needs grpcio (ray[client] brings it)")
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    port = server.add_insecure_port(f"{HOST}:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(None)


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_a_grpc_server_that_is_not_ray_is_refused(grpc_server: int, scheme: str) -> None:
    # It answered the HTTP/2 preface, so it passed the probe, and Ray spent 25 s (GCS address) or
    # 37 s (ray://) retrying "Method not found! rpc_code: 12" before failing.
    start = time.monotonic()
    with pytest.raises(UsageError, match="not Ray .a gRPC server without Ray's service"):
        ray_engine._reachable(f"{scheme}{HOST}:{grpc_server}")
    assert time.monotonic() - start < 2 * ray_engine.CONNECT_SECONDS
