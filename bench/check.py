"""rightsmeta check against datadiligence 0.1.7 on the same URLs, served on loopback.

    python bench/check.py                       # 50 origins x 200 files; prints URLs/s, CPU and the ratios
    python bench/check.py --origins 10 --files 50 --peer-sample 200 --repeat 1

A server process (separate from the clients, so they do not share its interpreter) listens on
``--origins`` ports of 127.0.0.1, one origin each, every origin with its robots.txt and
tdmrep.json and ``--files`` small JPEGs (a quarter with ``X-Robots-Tag: noai``, a quarter with
``tdm-reservation: 1``).

rightsmeta: ``rightsmeta.web.fetch.check_many`` over every URL, as ``rightsmeta check`` runs it
(HEAD per URL, robots.txt and tdmrep.json once per origin, ``--concurrency`` in flight).

datadiligence: ``is_allowed(urls=...)`` in 0.1.7 sends the URLs to the Spawning API (the
network, with an API key) and never looks at the URLs themselves; without a key it returns
True for every URL without a request. The check of the URLs themselves is
``is_allowed(url=...)`` (its PostprocessEvaluator: X-Robots-Tag, tdm-reservation, C2PA; one
GET per rule), which it runs one URL at a time; it is timed here on ``--peer-sample`` URLs
spread over all origins, sequentially as offered and in a thread pool as wide as rightsmeta's
concurrency, and its rate compared with rightsmeta's. The two alternate ``--repeat`` times and
the best of each counts (the least disturbed run); CPU seconds of the client process (all its
threads; the server is another process) are printed too, since they move less with the
machine's load than the wall clock does.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROBOTS = b"User-agent: *\nDisallow: /private/\n\nUser-agent: GPTBot\nDisallow: /f/3\n"
TDM = b'[{"location": "/f/1*", "tdm-reservation": 1}]'


def _jpeg() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 30, 200)).save(out, "JPEG", quality=80)
    return out.getvalue()


def _response(path: str, body: bytes) -> bytes:
    """The whole response (head, then body) for one path; HEAD sends the head only."""
    extra = b""
    status = b"200 OK"
    if path == "/robots.txt":
        data, kind = ROBOTS, b"text/plain"
    elif path == "/.well-known/tdmrep.json":
        data, kind = TDM, b"application/json"
    elif path.startswith("/f/"):
        data, kind = body, b"image/jpeg"
        number = int(path[3:].split(".")[0])
        if number % 4 == 1:
            extra = b"X-Robots-Tag: noai\r\n"
        elif number % 4 == 2:
            extra = b"tdm-reservation: 1\r\n"
    else:
        data, kind, status = b"not found", b"text/plain", b"404 Not Found"
    head = b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (status, kind, len(data), extra)
    return head + data


def serve(origins: int) -> None:
    """Server process: ``origins`` listening ports (keep-alive HTTP/1.1 on asyncio, so that the
    server is not what limits either client); prints the ports, runs until stdin closes."""
    import asyncio

    body = _jpeg()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
                whole = _response(path, body)
                if method == "HEAD":
                    whole = whole[: whole.index(b"\r\n\r\n") + 4]
                writer.write(whole)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        servers = [await asyncio.start_server(handle, "127.0.0.1", 0) for _ in range(origins)]
        print(json.dumps([s.sockets[0].getsockname()[1] for s in servers]), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # parent closes stdin: stop

    asyncio.run(main())


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # this process, all its threads
    return usage.ru_utime + usage.ru_stime


def ours(urls: list[str], concurrency: int) -> tuple[float, float, dict[str, int]]:
    """(wall seconds, CPU seconds, statuses) of rightsmeta's check over ``urls``."""
    from rightsmeta.web.fetch import Limits, check_many

    counts: dict[str, int] = {}
    cpu, start = _cpu(), time.perf_counter()
    for report in check_many(urls, user_agent="benchbot", limits=Limits(concurrency=concurrency)):
        status = report.status()
        counts[status] = counts.get(status, 0) + 1
    return time.perf_counter() - start, _cpu() - cpu, counts


def theirs(urls: list[str], threads: int) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, allowed count) of datadiligence's per-URL check."""
    from datadiligence import PostprocessEvaluator

    logging.disable(logging.CRITICAL)  # its C2PA rule logs an error for every file without a manifest
    evaluator = PostprocessEvaluator(user_agent="benchbot")
    cpu, start = _cpu(), time.perf_counter()
    if threads <= 1:
        allowed = sum(bool(evaluator.is_allowed(url=u)) for u in urls)
    else:
        with ThreadPoolExecutor(threads) as pool:
            allowed = sum(bool(a) for a in pool.map(lambda u: evaluator.is_allowed(url=u), urls))
    return time.perf_counter() - start, _cpu() - cpu, allowed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--origins", type=int, default=50)
    parser.add_argument("--files", type=int, default=200, help="files per origin")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--peer-sample", type=int, default=500, help="URLs timed through datadiligence")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each, alternating; the best counts")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    server = subprocess.Popen([sys.executable, __file__, "--serve", str(args.origins)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        ports = json.loads(server.stdout.readline())
        urls = [f"http://127.0.0.1:{port}/f/{n}.jpg" for n in range(args.files) for port in ports]
        step = max(1, len(urls) // args.peer_sample)
        sample = urls[::step][: args.peer_sample]
        best: dict[str, tuple[float, float]] = {}  # name -> (best URLs/s, best CPU ms per URL)
        for _ in range(args.repeat):
            wall, cpu, counts = ours(urls, args.concurrency)
            print(f"rightsmeta check: {len(urls)} URLs on {len(ports)} origins in {wall:.2f} s = "
                  f"{len(urls) / wall:.0f} URLs/s, {cpu / len(urls) * 1000:.2f} ms CPU per URL  {counts}")
            runs = [("rightsmeta", len(urls), wall, cpu)]
            for threads in (1, args.concurrency):
                wall, cpu, allowed = theirs(sample, threads)
                name = "datadiligence sequential" if threads == 1 else f"datadiligence {threads} threads"
                print(f"{name}: {len(sample)} URLs in {wall:.2f} s = {len(sample) / wall:.0f} URLs/s, "
                      f"{cpu / len(sample) * 1000:.2f} ms CPU per URL ({allowed} allowed)")
                runs.append((name, len(sample), wall, cpu))
            for name, n, wall, cpu in runs:
                old = best.get(name, (0.0, float("inf")))
                best[name] = (max(old[0], n / wall), min(old[1], cpu / n * 1000))
        ours_rate, ours_cpu = best["rightsmeta"]
        print(f"best of {args.repeat}: rightsmeta {ours_rate:.0f} URLs/s, {ours_cpu:.2f} ms CPU per URL")
        for name, (rate, cpu_ms) in best.items():
            if name != "rightsmeta":
                print(f"  vs {name}: {rate:.0f} URLs/s, {cpu_ms:.2f} ms CPU per URL -> rightsmeta "
                      f"{ours_rate / rate:.1f}x the URLs/s, {cpu_ms / ours_cpu:.1f}x less CPU per URL")
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
