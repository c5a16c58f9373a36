"""Fetching what a check needs and was not given: the response, robots.txt, tdmrep.json.

One ``Fetcher`` holds one aiohttp session, the per-origin policy cache (with a TTL, so a long crawl
sees a site's changed robots.txt) and the limits; it belongs to one event loop, and nothing
is shared between fetchers, so threads each running their own are independent.

Every request has a total deadline (a server trickling one byte a second defeats a per-read
timeout), and every URL one more over all its requests (robots.txt, each redirect hop, the
body: eleven slow hops must not take eleven timeouts). Bodies are read up to a cap and no
further, and the bodies held at once share one byte budget, so concurrency x cap is never
resident (the budget counts each body once; joining its pieces briefly doubles it). Redirects
are followed up to a limit and the final URL's policies apply. RFC 9309: robots.txt 4xx means
no rules; 5xx or no answer means the whole site is disallowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp

from .. import __version__
from . import robots as _robots
from . import tdmrep_json
from .core import DEFAULT_AGENT, Site, WebReport, evaluate, forbidden, split_url
from .headers import Headers


@dataclass(frozen=True)
class Limits:
    timeout: float = 10.0  # seconds per request, start to last byte
    body_cap: int = 64 * 1024 * 1024  # bytes of a resource's body read (fetch_body, or an HTML page's)
    concurrency: int = 16  # requests in flight
    per_host_delay: float = 0.0  # seconds between two requests to one host
    site_ttl: float = 3600.0  # seconds a fetched robots.txt / tdmrep.json is reused
    max_redirects: int = 10
    max_sites: int = 10_000  # origins kept in the cache
    deadline: float = 30.0  # seconds per URL: its robots.txt, every redirect hop and the body together
    # Bytes of bodies held at once by all checks (fetch_body), from the first byte read until the
    # body is decided on; a body waits for room (never counted against its own timeout). Raised to
    # body_cap when smaller, so one body always fits.
    body_budget: int = 256 * 1024 * 1024


class _TooLarge(Exception):
    pass


class _Undecodable(Exception):
    pass


class _Budget:
    """A byte budget shared by the checks of one fetcher, granted first come, first served
    (a large body is not starved by a stream of small ones)."""

    def __init__(self, total: int) -> None:
        self.free = total
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def take(self, size: int) -> None:
        if not self._waiting and size <= self.free:
            self.free -= size
            return
        entry = (size, asyncio.get_running_loop().create_future())
        self._waiting.append(entry)
        try:
            await entry[1]
        except BaseException:  # cancelled (the URL's deadline): its grant, or its place, is given back
            if entry[1].done() and not entry[1].cancelled():
                self.give(size)
            else:
                # Room given between the cancel and this line skipped the place (``give``), which may
                # already be gone from the queue.
                if entry in self._waiting:
                    self._waiting.remove(entry)
                self.give(0)
            raise

    def give(self, size: int) -> None:
        self.free += size
        while self._waiting and self._waiting[0][0] <= self.free:
            wanted, future = self._waiting.popleft()
            if future.done():  # cancelled, its waiter not yet awake: it takes no room
                continue
            self.free -= wanted
            future.set_result(None)


class _Held:
    """The bytes one check holds of the budget: grown before a body is read, all given back at the end."""

    def __init__(self, budget: _Budget) -> None:
        self.budget, self.size = budget, 0

    async def reserve(self, size: int) -> None:
        if size > self.size:  # a redirect hop's body is dropped before the next is read: the largest counts
            await self.budget.take(size - self.size)
            self.size = size

    def release(self) -> None:
        self.budget.give(self.size)
        self.size = 0


def http_agent(agent: str) -> str:
    """The User-Agent header: the caller's token, and what is asking (so a site can tell)."""
    if "/" in agent:
        return agent
    return f"{agent}/{__version__} (rightsmeta rights-signal check; +https://pypi.org/project/rightsmeta/)"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


_NETWORK = (aiohttp.ClientError, TimeoutError, OSError, ValueError)


class Fetcher:
    """Async fetcher with caches and limits. Use ``async with Fetcher(...) as f: await f.check(url)``."""

    def __init__(self, *, user_agent: str = DEFAULT_AGENT, limits: Limits = Limits()) -> None:
        self.user_agent = user_agent
        self.limits = limits
        self._client: aiohttp.ClientSession | None = None
        self._sites: dict[str, tuple[float, asyncio.Task[Site]]] = {}
        self._slots = asyncio.Semaphore(max(1, limits.concurrency))
        self._budget = _Budget(max(limits.body_budget, limits.body_cap))
        self._hosts: dict[str, tuple[asyncio.Lock, list[float]]] = {}

    async def __aenter__(self) -> Fetcher:
        self._client = aiohttp.ClientSession(
            # identity: a capped body must be the bytes as sent, and read() knows no gzip container
            headers={"User-Agent": http_agent(self.user_agent), "Accept-Encoding": "identity"},
            # no timer of aiohttp's own: each request's is ours (asyncio.timeout), paused while a body waits for room
            timeout=aiohttp.ClientTimeout(),
            connector=aiohttp.TCPConnector(limit=max(1, self.limits.concurrency)),
            trust_env=False,  # a check's answer must not depend on proxy variables of the shell
            auto_decompress=False,  # bodies are capped as sent: a small gzip must not inflate past the cap
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        for _, task in self._sites.values():
            task.cancel()
        if self._client is not None:
            await self._client.close()
            self._client = None

    @property
    def client(self) -> aiohttp.ClientSession:
        if self._client is None:
            raise RuntimeError("use the Fetcher in 'async with'")
        return self._client

    async def _polite(self, url: str) -> None:
        delay = self.limits.per_host_delay
        if delay <= 0:
            return
        host = urlsplit(url).netloc.lower()
        lock, last = self._hosts.setdefault(host, (asyncio.Lock(), [0.0]))
        async with lock:
            wait = last[0] + delay - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            last[0] = time.monotonic()

    async def _get(self, url: str, cap: int, *, truncate: bool, follow: bool = True,
                   held: _Held | None = None) -> tuple[aiohttp.ClientResponse, bytes, bool]:
        """GET within the deadline and the cap: (response, body, truncated). With ``held``, room for
        the body is reserved in the fetcher's byte budget before it is read."""
        await self._polite(url)
        async with self._slots, asyncio.timeout(self.limits.timeout) as timer:
            async with self.client.get(url, allow_redirects=follow, max_redirects=self.limits.max_redirects) as response:
                if 300 <= response.status < 400:
                    # A redirect's body (a "Moved" page) is never the resource: not read, and no room
                    # taken for it, which its check would keep while it waits for a slot for the next
                    # hop, as the checks holding every slot wait for room (each URL ran out its deadline).
                    return response, b"", False
                declared = response.content_length
                if not truncate and declared is not None and declared > cap:
                    raise _TooLarge(f"Content-Length {declared} bytes is over the {cap}-byte cap")
                if held is not None:
                    # A compressed body may inflate to the cap; one of unknown length may fill it.
                    identity = response.headers.get("Content-Encoding", "identity").strip().lower() in ("", "identity")
                    await _untimed(timer, held.reserve(declared if declared is not None and identity else cap))
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(65536):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > cap:
                        if not truncate:
                            raise _TooLarge(f"body is over the {cap}-byte cap")
                        data, _ = _decoded(response, b"".join(chunks)[:cap], cap, True)
                        return response, data, True
                return response, *_decoded(response, b"".join(chunks), cap, truncate)

    async def _head(self, url: str) -> aiohttp.ClientResponse:
        """HEAD, one hop (redirects are followed by ``check``, asking each hop's robots.txt first)."""
        await self._polite(url)
        async with self._slots, asyncio.timeout(self.limits.timeout):
            async with self.client.head(url, allow_redirects=False) as response:
                pass
            # HEAD not supported (405, 501), or refused where GET is not (400, 403: an S3, GCS or CDN
            # signed URL signs the method, so a presigned GET URL answers HEAD 403 and every such
            # URL was an error without --fetch-body): the headers of a GET, body unread.
            if response.status in (400, 403, 405, 501):
                async with self.client.get(url, allow_redirects=False) as response:
                    pass
            return response

    async def site(self, url: str) -> Site:
        """The origin's policies, fetched once per TTL; concurrent checks of one origin share one fetch."""
        origin = _origin(url)
        now = time.monotonic()
        cached = self._sites.get(origin)
        if cached is not None and cached[0] > now:
            if cached[1].done():  # the common case in a crawl: no waiting, no wrapper task
                return cached[1].result()
            return await asyncio.shield(cached[1])
        if len(self._sites) >= self.limits.max_sites:
            self._sites = {k: v for k, v in self._sites.items() if v[0] > now}
            while len(self._sites) >= self.limits.max_sites:
                self._sites.pop(next(iter(self._sites)))
        # A task of its own: a check that gives up waiting (its deadline) does not cancel the fetch
        # the other checks of the origin wait for.
        task = asyncio.ensure_future(self._fetch_site(origin))
        self._sites[origin] = (now + self.limits.site_ttl, task)
        task.add_done_callback(lambda done: self._forget(origin, done))
        return await asyncio.shield(task)

    def _forget(self, origin: str, task: asyncio.Task[Site]) -> None:
        """A site fetch that failed (a bug) or was cancelled is not cached: the next check fetches again."""
        if (task.cancelled() or task.exception() is not None) and self._sites.get(origin, (0, None))[1] is task:
            del self._sites[origin]

    async def _fetch_site(self, origin: str) -> Site:
        robots: bytes | None = None
        robots_status, robots_error = 200, None
        tdm: bytes | None = None
        tdm_status, tdm_error = 200, None
        notes: list[str] = []
        try:
            response, robots, truncated = await self._get(origin + "/robots.txt", _robots.MAX_BYTES, truncate=True)
            robots_status = response.status
            if truncated:
                notes.append(f"robots.txt is larger than {_robots.MAX_BYTES} bytes; only the start was read (RFC 9309 allows this)")
        except _Undecodable as exc:  # unreadable is treated as unreachable: the site is closed (fail closed)
            robots, robots_error = None, str(exc)
        except _NETWORK as exc:
            robots, robots_error = None, _why(exc, self.limits.timeout)
        try:
            response, tdm, _ = await self._get(origin + "/.well-known/tdmrep.json", tdmrep_json.MAX_BYTES, truncate=False)
            tdm_status = response.status
        except (_TooLarge, _Undecodable) as exc:
            tdm, tdm_error = None, str(exc)
        except _NETWORK as exc:
            tdm, tdm_error = None, _why(exc, self.limits.timeout)
        return Site(robots, robots_status, robots_error, tdm, tdm_status, tdm_error, tuple(notes))

    async def check(
        self,
        url: str,
        *,
        headers: Headers | None = None,
        body: bytes | None = None,
        page: bytes | str | None = None,
        site: Site | None = None,
        fetch_body: bool = False,
    ) -> WebReport:
        """Fetch what is missing, then decide. Never raises for the resource: errors are in the report."""
        parts = split_url(url)
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            report = WebReport(url, errors=[f"not an http(s) URL: {url!r}"])
            return report
        held, deadline = _Held(self._budget), asyncio.timeout(self.limits.deadline)
        try:
            async with deadline:
                return await self._follow(url, headers, body, page, site, fetch_body, held)
        except TimeoutError:
            if not deadline.expired():  # each request's own timeout is reported inside
                raise
            report = WebReport(url, errors=[f"resource not fetched: no decision within the {self.limits.deadline:g}-second "
                                            "deadline for this URL (robots.txt, redirects and body together)"])
            report.unread.append("nothing was read in time")
            return report
        finally:
            held.release()

    async def _follow(self, url: str, headers: Headers | None, body: bytes | None, page: bytes | str | None,
                      given: Site | None, fetch_body: bool, held: _Held) -> WebReport:
        if headers is not None and (body is not None or not fetch_body):
            return evaluate(url, headers=headers, body=body, page=page, user_agent=self.user_agent,
                            site=given if given is not None else await self.site(url))
        final, status = url, None
        errors: list[str] = []
        site = given
        # the URLs redirected from, each with its site and the headers of its redirect response
        passed: list[tuple[str, Site, Headers]] = []
        try:
            # Redirects are followed here, one hop at a time, so that each hop's robots.txt is asked
            # before the hop is fetched (RFC 9309), and the final URL's site policies apply.
            for _ in range(self.limits.max_redirects + 1):
                same = _origin(final) == _origin(url)
                site = given if given is not None and same else await self.site(final)
                reason = forbidden(site, final, self.user_agent)
                if reason is not None:
                    report = evaluate(url, page=page, site=site, user_agent=self.user_agent, final_url=final,
                                      redirected_from=passed)
                    report.unread = [f"the resource was not fetched: {reason}"]
                    return report
                data: bytes | None = None
                if fetch_body and body is None:
                    response, data, _ = await self._get(final, self.limits.body_cap, truncate=False, follow=False, held=held)
                else:
                    response = await self._head(final)
                    if body is None and response.status < 300 and _html_type(response):
                        # An HTML page's meta elements are a source of the decision, not the
                        # file's own carriers: read without --fetch-body too (it used to be
                        # "unspecified" with its noai metas unread), with the same caps. The
                        # HEAD's headers count should the GET fail (over the cap: an error).
                        status = response.status
                        headers = response.raw_headers if headers is None else headers
                        response, data, _ = await self._get(final, self.limits.body_cap, truncate=False, follow=False,
                                                            held=held)
                status = response.status
                location = response.headers.get("Location")
                if status in (301, 302, 303, 307, 308) and location:
                    target = urljoin(final, location)
                    if urlsplit(target).scheme not in ("http", "https"):
                        errors.append(f"redirected to a URL that is not http(s): {target[:200]}")
                        break
                    passed.append((final, site, response.raw_headers))
                    final = target
                    continue
                if headers is None:  # headers the caller gave are kept
                    headers = response.raw_headers
                if status >= 300 and status < 400:
                    # A 3xx not followed (no Location; 300, 304, 305): the resource was never reached,
                    # and the body is a link page, not the file: it was read as the file, "allowed".
                    errors.append(f"HTTP {status} with no Location to follow: the resource was not reached")
                elif data is not None:
                    body = data
                if status >= 400:
                    errors.append(f"HTTP {status} for the resource")
                break
            else:
                errors.append(f"resource not fetched: too many redirects (more than {self.limits.max_redirects}), "
                              f"the last to {final[:200]}")
        except (_TooLarge, _Undecodable) as exc:
            errors.append(f"body not read: {exc}")
        except _NETWORK as exc:
            errors.append(f"resource not fetched: {_why(exc, self.limits.timeout)}")
        if headers is None:
            report = WebReport(url, final_url=final, http_status=status, errors=errors)
            report.unread.append("nothing was read: the resource could not be fetched")
            return report
        if site is None:
            site = await self.site(final)
        report = evaluate(url, headers=headers, body=body, page=page, site=site, user_agent=self.user_agent,
                          final_url=final, http_status=status, redirected_from=passed)
        report.errors[:0] = errors
        return report


def _html_type(response: aiohttp.ClientResponse) -> bool:
    return response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower() in ("text/html", "application/xhtml+xml")


async def _untimed(timer: asyncio.Timeout, waiting: Awaitable[None]) -> None:
    """Await ``waiting`` with ``timer`` stopped: waiting for room in the budget is not the server's slowness."""
    when = timer.when()
    loop = asyncio.get_running_loop()
    left = None if when is None else when - loop.time()
    timer.reschedule(None)
    try:
        await waiting
    finally:
        timer.reschedule(None if left is None else loop.time() + left)


def _decoded(response: aiohttp.ClientResponse, data: bytes, cap: int, truncate: bool) -> tuple[bytes, bool]:
    """The body as the resource's bytes: a server may compress although asked not to. Inflated
    within the cap (a small gzip can expand a thousandfold); an unknown coding is not guessed at."""
    coding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if coding in ("", "identity"):
        return data, False
    if coding not in ("gzip", "x-gzip", "deflate"):
        raise _Undecodable(f"body in Content-Encoding {coding!r}, which rightsmeta does not decode")
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
    try:
        # A stream cut at the cap inflates as far as it goes without an error: an error is a
        # corrupt body, whose rules are unknown (a robots.txt read as empty opened the whole site).
        out = inflater.decompress(data, cap + 1)
    except zlib.error as exc:
        raise _Undecodable(f"body in Content-Encoding {coding} does not inflate ({exc})") from None
    if len(out) > cap:
        if not truncate:
            raise _TooLarge(f"body inflates to over the {cap}-byte cap")
        return out[:cap], True
    return out, False


def _why(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):  # aiohttp's timeouts are TimeoutErrors too
        return f"no complete answer within {timeout:g} s"
    if isinstance(exc, aiohttp.TooManyRedirects):
        return f"too many redirects ({len(exc.history)} followed, the last to {exc.request_info.real_url})"
    if isinstance(exc, aiohttp.ClientResponseError):  # the response itself could not be parsed
        return f"malformed HTTP response ({exc.message})"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


async def _guarded(fetcher: Fetcher, url: str, fetch_body: bool) -> WebReport:
    """One URL's check; a bug of ours on one URL is that URL's error, not the end of the batch."""
    try:
        return await fetcher.check(url, fetch_body=fetch_body)
    except Exception as exc:
        return WebReport(url, errors=[f"rightsmeta failed on this URL ({type(exc).__name__}: {exc}); please report it"])


async def acheck_many(urls: Iterable[str], fetcher: Fetcher, *, fetch_body: bool = False) -> AsyncIterator[WebReport]:
    """Reports as they finish, with a bounded number of checks in flight (memory stays flat)."""
    window = max(1, fetcher.limits.concurrency) * 2
    pending: set[asyncio.Task[WebReport]] = set()
    for url in urls:
        pending.add(asyncio.ensure_future(_guarded(fetcher, url, fetch_body)))
        if len(pending) >= window:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                yield task.result()
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            yield task.result()


def check_many(urls: Iterable[str], *, user_agent: str = DEFAULT_AGENT, limits: Limits = Limits(),
               fetch_body: bool = False) -> Iterator[WebReport]:
    """Synchronous iterator over reports, in the order they finish; the event loop runs in a thread.
    Leaving the loop early (``break``) stops the checks in flight and closes their connections."""
    out: queue.Queue[WebReport | BaseException | None] = queue.Queue(maxsize=max(1, limits.concurrency) * 4)
    stop = threading.Event()
    running: list[tuple[asyncio.AbstractEventLoop, asyncio.Task[None]]] = []

    async def run() -> None:
        task = asyncio.current_task()
        assert task is not None
        running.append((asyncio.get_running_loop(), task))
        if stop.is_set():
            return
        async with Fetcher(user_agent=user_agent, limits=limits) as fetcher:
            async for report in acheck_many(urls, fetcher, fetch_body=fetch_body):
                try:
                    out.put_nowait(report)
                except queue.Full:  # the consumer is slower: wait for it without blocking the loop
                    await asyncio.to_thread(out.put, report)

    def thread() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:  # surfaced in the caller's thread, not lost
            out.put(exc)
        else:
            out.put(None)

    worker = threading.Thread(target=thread, name="rightsmeta-web-check", daemon=True)
    worker.start()
    try:
        while True:
            item = out.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        # A caller that stops early left the thread blocked on a full queue for good, its event loop,
        # connections and remaining checks with it (one more thread per abandoned loop).
        stop.set()
        if running:
            loop, task = running[0]
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(task.cancel)
        while worker.is_alive():
            with contextlib.suppress(queue.Empty):
                out.get(timeout=0.05)  # room for a report being put, so the thread can end
        worker.join()
