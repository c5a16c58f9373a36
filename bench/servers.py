"""What the server benchmarks share: `rightsmeta serve` started on a free loopback port and
stopped with its process group, memory of its process tree from /proc, and clients in threads."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import httpx

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")


@contextmanager
def serving(*args: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """(base URL, process) of `rightsmeta serve ARGS` on a free 127.0.0.1 port, once /healthz answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "rightsmeta", "serve", "--port", str(port), *args],
                              env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                raise SystemExit(f"the server ended at start (exit {server.returncode})")
            threading.Event().wait(0.1)
        yield url, server
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # its own session: the server, forkserver and workers
        server.wait(30)


def children(pid: int) -> list[int]:
    """Every descendant of a process, from /proc."""
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                out += [int(child), *children(int(child))]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def _status(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants (KiB)."""
    return sum(_status(p, "VmRSS") for p in [pid, *children(pid)])


def peak_kib(pid: int) -> int:
    """The highest resident memory one process has had (VmHWM, KiB)."""
    return _status(pid, "VmHWM")


def in_threads(url: str, items: Iterable[T], threads: int, work: Callable[[httpx.Client, T], None],
               timeout: float = 300) -> None:
    """``work(client, item)`` on every item, from ``threads`` threads (one HTTP client each) taking
    the next item as they finish one."""
    todo, lock = iter(items), threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=timeout) as http:
            while True:
                with lock:
                    item = next(todo, None)
                if item is None:
                    return
                work(http, item)

    running = [threading.Thread(target=client) for _ in range(threads)]
    for t in running:
        t.start()
    for t in running:
        t.join()
