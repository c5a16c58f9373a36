"""Fuzzing what ``rightsmeta.web.fetch`` reads off the wire: damaged HTTP responses from a real
socket server (status lines, header lines, lengths, chunking, bodies).

The response reserves the resource twice (``X-Robots-Tag: noai`` and ``TDM-Reservation: 1``), so
one damage outside those two lines cannot remove the reservation: every check must end within
its deadline with a report (never an exception), and that report is "notAllowed" or "error".
tests/test_web_http.py and test_web_limits.py hold the named misbehaviours (trickles, loops,
huge bodies); this test is their random complement.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

from fuzzing import damage
from samples import image_bytes

from rightsmeta.web.fetch import Fetcher, Limits

COUNT = int(os.environ.get("RIGHTSMETA_FUZZ_EXAMPLES", "200"))
LIMITS = Limits(timeout=2.0, deadline=4.0, concurrency=8)
BODY = image_bytes("png")
RESERVING = (b"X-Robots-Tag: noai\r\n", b"TDM-Reservation: 1\r\n")
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n" + RESERVING[0] + b"Server: fuzz\r\n" + RESERVING[1]
            + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY) + BODY)
CHUNKED = (b"HTTP/1.1 200 OK\r\n" + RESERVING[0] + RESERVING[1] + b"Transfer-Encoding: chunked\r\n\r\n"
           + b"%x\r\n" % len(BODY) + BODY + b"\r\n0\r\n\r\n")
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def _mutant(response: bytes, rng: random.Random) -> bytes:
    """One damage outside the reserving lines (and the line breaks that delimit them)."""
    spans = [(response.index(line) - 2, response.index(line) + len(line)) for line in RESERVING]
    return damage(response, spans, rng, (b"\r\n", b"\n", b"\x00", b":", b" ", b"\xff", b"9999999999"))


async def _run(mutants: list[bytes]) -> list[tuple[bytes, str, list[str], float]]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1]
            index = int(path[2:].split(b".")[0]) if path.startswith(b"/m") else -1
            writer.write(mutants[index] if index >= 0 else NOT_FOUND)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    results = []
    async with server, Fetcher(limits=LIMITS) as fetcher:
        async def one(n: int) -> tuple[bytes, str, list[str], float]:
            start = time.monotonic()
            report = await fetcher.check(f"http://127.0.0.1:{port}/m{n}.png", fetch_body=True)
            return mutants[n], report.status(), report.errors, time.monotonic() - start

        results = await asyncio.gather(*(one(n) for n in range(len(mutants))))
    return list(results)


def test_damaged_responses_end_in_a_report_that_fails_closed() -> None:
    rng = random.Random(20261130)
    mutants = [RESPONSE, CHUNKED] + [_mutant(rng.choice((RESPONSE, CHUNKED)), rng) for _ in range(COUNT)]
    results = asyncio.run(_run(mutants))
    assert [status for _, status, _, _ in results[:2]] == ["notAllowed", "notAllowed"]
    failures = [(m[:200], status, errors) for m, status, errors, _ in results if status not in ("notAllowed", "error")]
    assert not failures, failures
    bugs = [(m[:200], errors) for m, _, errors, _ in results if any("rightsmeta failed" in e for e in errors)]
    assert not bugs, bugs
    assert max(seconds for *_, seconds in results) < LIMITS.deadline + 1
    assert {status for _, status, _, _ in results} == {"notAllowed", "error"}  # the damage reached both
