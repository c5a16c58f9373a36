"""The fetcher's limits over real HTTP on 127.0.0.1: one deadline per URL across robots.txt,
redirects and body; one byte budget for all bodies held at once."""

from __future__ import annotations

import asyncio
import io
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image
from webserver import Resource, Site, late, slow_body

from rightsmeta import Purpose
from rightsmeta.web import Site as WebSite
from rightsmeta.web import check
from rightsmeta.web.fetch import Fetcher, Limits, _Budget, check_many

pytest.importorskip("aiohttp")

HOP = 0.3  # seconds each hop of the slow chain takes: well within the 1 s timeout of a request
CHAIN = 4
N = 12  # bodies fetched at once
TOGETHER: dict[str, threading.Barrier] = {}  # the last pieces of each kind's bodies are sent together


def _noise_jpeg(size: int) -> bytes:
    import numpy as np

    side = int((size / 1.5) ** 0.5)
    pixels = np.random.default_rng(7).integers(0, 256, (side, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=95)
    return out.getvalue()


BODY = _noise_jpeg(4 * 1024 * 1024)


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    routes = {f"/chain/{i}": Resource(raw=late(HOP, headers=(("Location", f"/chain/{i + 1}"),))) for i in range(CHAIN)}
    routes[f"/chain/{CHAIN}"] = Resource(b"", content_type="image/jpeg")
    for kind, length in (("big", True), ("unsized", False)):
        TOGETHER[kind] = threading.Barrier(N)
        for i in range(N):
            routes[f"/{kind}/{i}.jpg"] = Resource(raw=slow_body(BODY, 0.3, length=length, together=TOGETHER[kind]))
    routes["/plain.jpg"] = Resource(raw=slow_body(BODY, 0.3))
    started = Site(routes).start()
    yield started
    started.close()


@pytest.fixture
def slow_robots() -> Iterator[Site]:
    started = Site({"/robots.txt": Resource(raw=late(0.5, "200 OK", (("Content-Type", "text/plain"),), b"User-agent: *\n")),
                    "/a.jpg": Resource(b"")}).start()
    yield started
    started.close()


def test_one_deadline_for_a_url_across_its_redirects(site: Site) -> None:
    # Each hop answers within the request timeout; together they take longer than the URL may.
    start = time.monotonic()
    report = check(site.url("/chain/0"), limits=Limits(timeout=1.0, deadline=0.7))
    took = time.monotonic() - start
    assert report.status() == "error", report.to_json()
    assert not report.may_use(Purpose.GENAI_TRAINING)
    assert report.errors == ["resource not fetched: no decision within the 0.7-second deadline for this URL "
                             "(robots.txt, redirects and body together)"]
    assert took < CHAIN * HOP - 0.2, took
    # the same chain, given the time, is followed to its end
    whole = check(site.url("/chain/0"), limits=Limits(timeout=1.0, deadline=10))
    assert whole.errors == [] and whole.final_url == site.url(f"/chain/{CHAIN}")


def test_a_check_that_gives_up_does_not_cancel_the_site_fetch_others_share(slow_robots: Site) -> None:
    async def go() -> tuple[list[str], list[str]]:
        async with Fetcher(limits=Limits(timeout=2.0, deadline=0.3)) as fetcher:
            first = await fetcher.check(slow_robots.url("/a.jpg"))
            await asyncio.sleep(0.5)  # the robots.txt fetch goes on and is kept
            second = await fetcher.check(slow_robots.url("/a.jpg"))
        return first.errors, second.errors

    first, second = asyncio.run(go())
    assert "deadline" in first[0] and second == []
    assert slow_robots.hits["/robots.txt"] == 1


def _peak(urls: list[str], budget: int) -> int:
    limits = Limits(timeout=10.0, deadline=30, concurrency=len(urls), body_cap=len(BODY) + 1024, body_budget=budget)
    tracemalloc.start()
    try:
        reports = list(check_many(urls, limits=limits, fetch_body=True))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r.errors for r in reports] == [[]] * len(urls)
    assert all(r.embedded is not None and r.embedded.format == "jpeg" for r in reports)
    return peak


@pytest.mark.parametrize("kind", ["big", "unsized"])
def test_bodies_held_at_once_stay_within_the_budget(site: Site, kind: str) -> None:
    # Twelve 3 MB bodies, twelve requests in flight, whose last pieces the server sends
    # together (so without a budget all sixteen are held at once). A body of unknown length reserves the
    # whole cap. What remains beyond the budget is aiohttp's read buffer of each waiting connection.
    urls = [site.url(f"/{kind}/{i}.jpg") for i in range(N)]
    small = _peak(urls, len(BODY) + 1024)
    large = _peak(urls, N * (len(BODY) + 1024))
    print(f"peak with room for 1 body {small / 2**20:.1f} MiB, for all {large / 2**20:.1f} MiB")
    assert large > N * len(BODY)  # the server's barrier: all bodies arrive together
    assert small < 0.5 * large, (small, large)


def test_waiting_for_room_is_not_a_request_timeout_but_counts_to_the_deadline(site: Site) -> None:
    async def go(deadline: float) -> list[str]:
        async with Fetcher(limits=Limits(timeout=0.5, deadline=deadline, body_cap=len(BODY) + 1024)) as fetcher:
            room = fetcher._budget.free
            await fetcher._budget.take(room)  # as if other bodies held all of it for a second
            asyncio.get_running_loop().call_later(1.0, fetcher._budget.give, room)
            report = await fetcher.check(site.url("/plain.jpg"), fetch_body=True)
            return report.errors

    assert asyncio.run(go(deadline=10)) == []
    errors = asyncio.run(go(deadline=0.8))
    assert len(errors) == 1 and "0.8-second deadline" in errors[0]


def test_budget_is_first_come_first_served_and_gives_back_a_cancelled_place() -> None:
    async def go() -> list[str]:
        budget = _Budget(10)
        await budget.take(8)
        order: list[str] = []

        async def want(name: str, size: int) -> None:
            await budget.take(size)
            order.append(name)

        large = asyncio.ensure_future(want("large", 5))
        small = asyncio.ensure_future(want("small", 2))
        await asyncio.sleep(0.01)
        assert order == []  # the small one fits, but waits its turn behind the large one
        large.cancel()
        await asyncio.sleep(0.01)
        assert order == ["small"] and budget.free == 0
        budget.give(10)
        assert budget.free == 10
        await small
        return order

    assert asyncio.run(go()) == ["small"]


def test_cli_deadline_and_budget_options(site: Site) -> None:
    import json

    from click.testing import CliRunner

    from rightsmeta.cli import main

    result = CliRunner().invoke(main, ["check", site.url("/chain/0"), "--timeout", "1", "--deadline", "0.5", "--json",
                                       "--body-budget", "1"], catch_exceptions=False)
    [row] = json.loads(result.stdout)
    assert row["status"] == "error" and "0.5-second deadline" in row["errors"][0]


def test_a_cancelled_place_given_room_before_its_waiter_wakes_loses_no_budget() -> None:
    # A check's deadline cancels its wait for room; the room may be given before that check runs
    # again. The cancelled place was granted (room taken, set_result on a cancelled future raised
    # in the giver) and then not found in the queue (ValueError, reported as "resource not
    # fetched"); the room it took was never given back, so later bodies waited forever.
    async def go() -> int:
        budget = _Budget(10)
        await budget.take(10)
        waiter = asyncio.ensure_future(budget.take(5))
        await asyncio.sleep(0.01)
        waiter.cancel()
        budget.give(10)  # before the cancelled waiter runs
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await asyncio.wait_for(budget.take(10), 1.0)  # all of it is there again
        return budget.free

    assert asyncio.run(go()) == 0


def _redirect_without_length(target: str) -> Any:
    def raw(h: Any, head: bool) -> None:  # as many application servers send a 302: no Content-Length
        h.wfile.write(b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n"
                      % target.encode())
        if not head:
            h.wfile.write(b"<html><body>Moved</body></html>")
    return raw


def test_redirect_bodies_take_no_room_so_a_crawl_of_redirects_does_not_stall() -> None:
    # With --fetch-body a redirect's body was read and took room in the budget (the whole cap, its
    # length unknown) that its check kept while it waited for a request slot for the next hop;
    # meanwhile every slot was held by checks waiting for room: each URL waited out its deadline
    # and was an error (12 of 12, 10 s for 12 URLs with room for one body and 4 slots).
    routes = {"/robots.txt": Resource(b"User-agent: *\n", content_type="text/plain")}
    body = _noise_jpeg(150_000)
    for i in range(12):
        routes[f"/r/{i}"] = Resource(raw=_redirect_without_length(f"/img/{i}.jpg"))
        routes[f"/img/{i}.jpg"] = Resource(raw=slow_body(body, 0.05, length=False))
    started = Site(routes).start()
    try:
        limits = Limits(concurrency=4, body_cap=300_000, body_budget=300_000, deadline=4, timeout=3)
        start = time.monotonic()
        reports = list(check_many([started.url(f"/r/{i}") for i in range(12)], limits=limits, fetch_body=True))
        took = time.monotonic() - start
    finally:
        started.close()
    assert [r.errors for r in reports] == [[]] * 12
    assert all(r.embedded is not None and r.embedded.format == "jpeg" for r in reports)
    assert took < 4, took


def test_a_large_robots_txt_is_not_matched_rule_by_rule_for_each_url() -> None:
    # A 512 KiB robots.txt (14,000 rules, as large sites have) was matched whole for every URL, in
    # the crawl's event loop: 113 ms a URL (100 URLs of one site: 11 s and more; 0.1 ms a URL now).
    rules = "".join(f"Disallow: /section{i}/*/page*.html$\n" for i in range(14_000))
    robots = f"User-agent: *\n{rules}User-agent: GPTBot\n{rules}".encode()[:512 * 1024]
    body = _noise_jpeg(20_000)
    site = Site({"/robots.txt": Resource(robots, content_type="text/plain"), "/img/a.jpg": Resource(body),
                 "/section7/x/page1.html": Resource(b"<html></html>", content_type="text/html")}).start()
    try:
        start = time.monotonic()
        reports = list(check_many([site.url(f"/img/a.jpg?{i}") for i in range(100)], limits=Limits(concurrency=8)))
        took = time.monotonic() - start
        print(f"100 URLs under a 512 KiB robots.txt: {took:.2f} s")
        closed = check(site.url("/section7/x/page1.html"))
    finally:
        site.close()
    assert [r.status() for r in reports] == ["unspecified"] * 100
    assert closed.status() == "notAllowed" and site.hits.get("/section7/x/page1.html") is None
    assert took < 5, took


def test_a_large_tdmrep_json_is_not_matched_rule_by_rule_for_each_url() -> None:
    # 9,999 rules (within the 10,000 read) were each matched for every URL: 35 ms a URL.
    import json

    rules = [{"location": f"/books/{i}/*.pdf", "tdm-reservation": 1} for i in range(9_999)]
    site = Site({"/robots.txt": Resource(b"User-agent: *\n", content_type="text/plain"),
                 "/.well-known/tdmrep.json": Resource(json.dumps(rules).encode(), content_type="application/json"),
                 "/img/a.jpg": Resource(_noise_jpeg(20_000)), "/books/77/x/a.pdf": Resource(b"%PDF-1.7\n")}).start()
    try:
        fetched = check(site.url("/img/a.jpg"))
        reserved = check(site.url("/books/77/x/a.pdf"))
    finally:
        site.close()
    # A crawl's fetcher keeps one Site per origin, parsed once; so does this loop.
    policies = WebSite(robots=b"User-agent: *\n", tdmrep=json.dumps(rules).encode())
    evaluate_start = time.monotonic()
    for i in range(200):
        report = check(site.url(f"/img/a.jpg?{i}"), headers={}, site=policies)
    took = time.monotonic() - evaluate_start
    print(f"200 URLs against a tdmrep.json of 9,999 rules: {took:.2f} s")
    assert fetched.status() == "unspecified" and report.status() == "unspecified"
    assert reserved.decision.effective[Purpose.DATA_MINING].state.value == "notAllowed"
    assert took < 2, took
