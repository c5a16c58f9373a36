"""A real HTTP server on 127.0.0.1 for the web tests and bench: sites with robots.txt, tdmrep.json,
pages, real image files (tagged with rightsmeta, or not) and misbehaving endpoints.

Each site is one server on its own free port (one origin each). Servers are threads that stop
with ``close()``; misbehaving handlers are bounded in time so a test never hangs on them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Raw = Callable[[BaseHTTPRequestHandler, bool], None]


@dataclass
class Resource:
    body: bytes = b""
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "image/jpeg"
    raw: Raw | None = None  # writes the whole response itself (bad servers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    routes: dict[str, Resource]
    hits: dict[str, int]
    log: list[tuple[float, str, str]]  # (monotonic time, path, User-Agent) of every request


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self, head: bool) -> None:
        path = self.path.split("?", 1)[0]
        self.server.hits[path] = self.server.hits.get(path, 0) + 1
        self.server.log.append((time.monotonic(), self.path, self.headers.get("User-Agent", "")))
        res = self.server.routes.get(path)
        if res is None:
            res = Resource(b"not found", 404, content_type="text/plain")
        if res.raw is not None:
            try:
                res.raw(self, head)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
            return
        self.send_response(res.status)
        self.send_header("Content-Type", res.content_type)
        self.send_header("Content-Length", str(len(res.body)))
        for name, value in res.headers:
            self.send_header(name, value)
        self.end_headers()
        if not head:
            try:
                self.wfile.write(res.body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    def do_GET(self) -> None:
        self._serve(False)

    def do_HEAD(self) -> None:
        self._serve(True)


class Site:
    """One origin: ``Site(routes).start()``; ``url(path)``; ``close()``."""

    def __init__(self, routes: dict[str, Resource]) -> None:
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.routes = routes
        self.server.hits = {}
        self.server.log = []
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> Site:
        self.thread.start()
        return self

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.origin + path

    @property
    def hits(self) -> dict[str, int]:
        return self.server.hits

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Misbehaving responses --------------------------------------------------------------------------

def trickle(seconds: float = 4.0) -> Raw:
    """Headers, then one byte every 0.2 s for at most ``seconds``: defeats any per-read timeout."""
    def raw(h: BaseHTTPRequestHandler, head: bool) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n")
        h.wfile.flush()
        end = time.monotonic() + seconds
        while time.monotonic() < end:  # even the header block trickles
            h.wfile.write(b"X")
            h.wfile.flush()
            time.sleep(0.2)
    return raw


def huge(head: bool = False) -> Raw:
    """Claims 10 GB, sends 1 MiB at most."""
    def raw(h: BaseHTTPRequestHandler, is_head: bool) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 10737418240\r\n\r\n")
        if not is_head:
            for _ in range(16):
                h.wfile.write(b"\0" * 65536)
    return raw


def header_bytes(line: bytes) -> Raw:
    """A response with one raw header line (e.g. not UTF-8)."""
    def raw(h: BaseHTTPRequestHandler, head: bool) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 0\r\n" + line + b"\r\n\r\n")
    return raw


def many_headers(count: int = 5000) -> Raw:
    def raw(h: BaseHTTPRequestHandler, head: bool) -> None:
        lines = b"".join(b"X-Filler-%d: v\r\n" % i for i in range(count))
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 0\r\n" + lines + b"\r\n")
    return raw


def big_text(start: bytes, size: int) -> Raw:
    """``start``, then comment lines up to ``size`` bytes, streamed until the client hangs up."""
    def raw(h: BaseHTTPRequestHandler, head: bool) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % size)
        if head:
            return
        h.wfile.write(start)
        filler = (b"# " + b"x" * 61 + b"\n") * 1024
        sent = len(start)
        while sent + len(filler) <= size:
            h.wfile.write(filler)
            sent += len(filler)
        h.wfile.write(b"#" * (size - sent))
    return raw


def gzip_if_accepted(body: bytes, content_type: str = "text/html", *, always: bool = False, coding: str = "gzip") -> Raw:
    """Gzip the body when the client accepts gzip (as most servers do for HTML), or ``always``."""
    def raw(h: BaseHTTPRequestHandler, head: bool) -> None:
        import gzip

        extra = b""
        data = body
        if always or "gzip" in h.headers.get("Accept-Encoding", ""):
            data, extra = gzip.compress(body), b"Content-Encoding: %s\r\n" % coding.encode()
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
                      % (content_type.encode(), len(data), extra))
        if not head:
            h.wfile.write(data)
    return raw


def late(seconds: float, status: str = "302 Found", headers: tuple[tuple[str, str], ...] = (), body: bytes = b"") -> Raw:
    """A well-formed response, sent after ``seconds`` (each hop of a slow redirect chain)."""
    def raw(h: BaseHTTPRequestHandler, head: bool) -> None:
        time.sleep(seconds)
        lines = b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers)
        h.wfile.write(b"HTTP/1.1 %s\r\nContent-Length: %d\r\n%s\r\n" % (status.encode(), len(body), lines))
        if not head:
            h.wfile.write(body)
    return raw


def slow_body(body: bytes, seconds: float, *, length: bool = True, together: threading.Barrier | None = None) -> Raw:
    """``body`` sent in ten pieces over ``seconds``, with a Content-Length or (``length=False``)
    until the connection closes. With ``together``, the last piece waits until all the barrier's
    parties are there: a client reading them all at once then holds them all at once."""
    def raw(h: BaseHTTPRequestHandler, head: bool) -> None:
        size = b"Content-Length: %d\r\n" % len(body) if length else b"Connection: close\r\n"
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n" + size + b"\r\n")
        if head:
            return
        step = -(-len(body) // 10)
        for i in range(0, len(body), step):
            if together is not None and i + step >= len(body):
                with contextlib.suppress(threading.BrokenBarrierError):
                    together.wait(5.0)
            h.wfile.write(body[i:i + step])
            h.wfile.flush()
            time.sleep(seconds / 10)
    return raw
