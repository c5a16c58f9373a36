"""uvicorn's HTTP/1.1 protocol (h11) with the guards the service needs and uvicorn lacks.

- A request head (request line and headers) must arrive within ``head_seconds`` of the
  connection opening or of the previous response: uvicorn times out only an idle keep-alive
  connection, and any byte restarts that, so a client sending a header byte every few seconds
  (slowloris) held a connection, and a slot of ``limit_concurrency``, forever.
- A response the client stops reading must make progress within ``send_seconds``: uvicorn waits
  for the client's socket to drain with no bound, so a client that sent a request and never read
  the answer (a large tagged file) held its connection, the file sent and the folder it is in,
  forever, and a stop of the server waited for it.
- Beyond ``limit_concurrency`` (connections, or requests in progress) the answer is the
  service's RFC 9457 problem document with Retry-After, not uvicorn's plain-text 503; so is the
  answer to a request that is not valid HTTP (uvicorn's plain-text 400).
- A request head over ``HEAD_LIMIT`` bytes is a 414 (its request line) or 431 (its headers),
  whether it arrived in pieces (h11 refuses a buffer that large: it was "not valid HTTP", 400)
  or in one read (h11 parsed it, and a 100 KB query reached the app): the C2PA Soft Binding
  API answers a query too long for a URL with 414, its client then sends it with POST.

The request body is not this module's business: the app caps its time (408) and size (413).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

#: Bytes of a request line, or of its headers, the server reads (h11's default for a whole head).
HEAD_LIMIT = 16 * 1024


class GuardedH11(H11Protocol):
    head_seconds = 10.0  # ServerConfig.head_seconds, through protocol()
    send_seconds = 60.0  # ServerConfig.send_seconds, through protocol()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit, self.limit_concurrency = self.limit_concurrency, None  # uvicorn's check is replaced by _limited
        self.served = self.app
        self.app = self._limited
        self.head_timer: asyncio.TimerHandle | None = None
        self.head_for: object = None  # the cycle (request) that was current when the timer was set
        self.send_timer: asyncio.TimerHandle | None = None

    async def _limited(self, scope: Any, receive: Any, send: Any) -> None:
        from .app import _problem_response

        # The same test uvicorn makes before it starts the request (this request's task is counted here).
        if self.limit is not None and (len(self.connections) >= self.limit or len(self.tasks) > self.limit):
            busy = _problem_response(503, "Busy", "the server has as many connections as it takes; retry later",
                                     {"Retry-After": "5", "Connection": "close"}, scope.get("path"))
            await busy(scope, receive, send)
            return
        # A head that came in one read was parsed whole by h11: the same bounds as one that came in pieces.
        target = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") + 1
        too_long = _too_long(target, sum(len(k) + len(v) + 4 for k, v in scope.get("headers", ())))
        if too_long is not None:
            await _problem_response(*too_long, {"Connection": "close"}, None)(scope, receive, send)
            return
        await self.served(scope, receive, send)

    def send_400_response(self, msg: str) -> None:
        # A request h11 cannot parse (a negative Content-Length, a bad request line) is answered
        # before any app runs: as the service's problem document too, not uvicorn's plain text.
        status, title, detail = 400, "Bad request", "the request is not valid HTTP/1.1"
        held, _ = self.conn.trailing_data  # what h11 refused is still its buffer
        if len(held) > HEAD_LIMIT:  # h11 refuses a head it has not seen the end of past this size
            line = held.find(b"\n")
            line = len(held) if line < 0 else line
            too_long = _too_long(line, len(held) - line)
            if too_long is not None:
                status, title, detail = too_long
        body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail}).encode()
        headers = [(b"content-type", b"application/problem+json"), (b"connection", b"close")]
        reason = {400: b"Bad Request", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}[status]
        for event in (h11.Response(status_code=status, headers=headers, reason=reason), h11.Data(data=body),
                      h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        self._sent()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        # The transport's buffer is full: the client must read enough of it within send_seconds.
        super().pause_writing()
        self._sent()
        self.send_timer = self.loop.call_later(self.send_seconds, self._send_too_slow)

    def resume_writing(self) -> None:
        self._sent()
        super().resume_writing()

    def _sent(self) -> None:
        _cancel(self.send_timer)
        self.send_timer = None

    def _send_too_slow(self) -> None:
        self.send_timer = None
        # abort, not close: close waits for the buffer to drain, which is what never happens. The
        # connection lost ends the response (uvicorn drops what the app still sends), and the
        # app's cleanup runs.
        self.transport.abort()

    def handle_events(self) -> None:
        super().handle_events()
        if self.head_timer is not None and self.cycle is not self.head_for:  # a new request's head was parsed
            self._head_arrived()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._await_head()

    def _await_head(self) -> None:
        self._head_arrived()
        self.head_for = self.cycle
        self.head_timer = self.loop.call_later(self.head_seconds, self._head_too_slow)

    def _head_arrived(self) -> None:
        _cancel(self.head_timer)
        self.head_timer = None

    def _head_too_slow(self) -> None:
        self.head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def _too_long(line: int, headers: int) -> tuple[int, str, str] | None:
    """The problem (status, title, detail) of a head over HEAD_LIMIT bytes (h11 bounds the whole
    head): 414 when its request line alone is, else 431; None within the bound."""
    if line > HEAD_LIMIT:
        return (414, "URI too long", f"the request line is over {HEAD_LIMIT} bytes; send a long soft binding "
                "with POST /matches/byBinding")
    if line + headers > HEAD_LIMIT:
        return 431, "Request headers too large", f"the request line and headers are over {HEAD_LIMIT} bytes"
    return None


def _cancel(timer: asyncio.TimerHandle | None) -> None:
    if timer is not None:
        timer.cancel()


def protocol(head_seconds: float, send_seconds: float) -> type[GuardedH11]:
    """The protocol class for one server (uvicorn takes a class; the settings ride on it)."""
    return type("GuardedH11", (GuardedH11,), {"head_seconds": head_seconds, "send_seconds": send_seconds})
