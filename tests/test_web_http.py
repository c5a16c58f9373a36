"""``rightsmeta.web`` over real HTTP: a server on 127.0.0.1 serves sites, pages, real files
(tagged by rightsmeta or not) and misbehaving endpoints; the same URLs go through datadiligence.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from samples import image_bytes
from webserver import (
    Resource,
    Site,
    big_text,
    closed_port,
    gzip_if_accepted,
    header_bytes,
    huge,
    many_headers,
    trickle,
)

from rightsmeta import Assertion, Purpose, tag_bytes
from rightsmeta.web import Site as web_site
from rightsmeta.web import check
from rightsmeta.web import from_headers as web_from_headers
from rightsmeta.web.fetch import Fetcher, Limits, check_many

pytest.importorskip("aiohttp")

NA, AL, UN, CO = "notAllowed", "allowed", "unspecified", "constrained"
AI = ("ai-training", "genai-training", "ai-inference")
FAST = Limits(timeout=1.0, concurrency=8)

ROBOTS = b"""User-agent: *
Disallow: /private/
Allow: /private/ok.jpg
Content-Usage: /cu/ train-ai=n
Content-Usage: /cu/open/ train-ai=y, search=y

User-agent: GPTBot
Disallow: /gpt/
"""
TDM = b"""[{"location": "/tdm/*", "tdm-reservation": 1, "tdm-policy": "https://example.com/policy.json"},
 {"location": "/tdm/free/*", "tdm-reservation": 0}]"""
PAGE = b"""<!doctype html><html><head><meta name="robots" content="noai, noimageai">
<meta name="tdm-reservation" content="1"></head><body><img src="/img/plain.jpg"></body></html>"""


def _files() -> dict[str, bytes]:
    plain = image_bytes("jpeg")
    return {
        "plain": plain,
        "deny_ai": tag_bytes(plain, Assertion.build(deny=["ai"])),
        "allow_all": tag_bytes(plain, Assertion.build(allow=["all"])),
    }


@pytest.fixture(scope="module")
def sites() -> Iterator[dict[str, Site]]:
    f = _files()
    main_routes = {
        "/robots.txt": Resource(ROBOTS, content_type="text/plain"),
        "/.well-known/tdmrep.json": Resource(TDM, content_type="application/json"),
        "/img/plain.jpg": Resource(f["plain"]),
        "/img/deny-ai.jpg": Resource(f["deny_ai"]),
        "/img/allow-all.jpg": Resource(f["allow_all"]),
        "/h/noai.jpg": Resource(f["plain"], headers=[("X-Robots-Tag", "noai")]),
        "/h/noimageai.jpg": Resource(f["plain"], headers=[("X-Robots-Tag", "noimageai")]),
        "/h/scoped-us.jpg": Resource(f["plain"], headers=[("X-Robots-Tag", "testbot: noai")]),
        "/h/scoped-other.jpg": Resource(f["plain"], headers=[("X-Robots-Tag", "otherbot: noai")]),
        "/h/several.jpg": Resource(f["plain"], headers=[("X-Robots-Tag", "noindex"), ("X-Robots-Tag", "noimageai")]),
        "/h/spaced.jpg": Resource(f["plain"], headers=[("X-Robots-Tag", "noindex noimageai")]),
        "/h/malformed.jpg": Resource(f["plain"], headers=[("X-Robots-Tag", ":, :, ,;: -::")]),
        "/h/tdm.jpg": Resource(f["plain"], headers=[("tdm-reservation", "1")]),
        "/h/tdm-joined.jpg": Resource(f["plain"], headers=[("tdm-reservation", "1, 1")]),
        "/h/tdm-policy.jpg": Resource(f["plain"], headers=[("tdm-reservation", "1"), ("tdm-policy", "https://e.com/p")]),
        "/h/usage.jpg": Resource(f["plain"], headers=[("Content-Usage", "train-ai=n, search=y")]),
        "/h/usage-legacy.jpg": Resource(f["plain"], headers=[("Content-Usage", "train-genai=n")]),
        # aipref: a value neither y nor n makes that key unknown, not the whole field
        "/h/usage-half.jpg": Resource(f["plain"], headers=[("Content-Usage", "search=perhaps, train-ai=n")]),
        "/h/allowed-but-tagged.jpg": Resource(f["deny_ai"], headers=[("Content-Usage", "train-ai=y")]),
        "/page.html": Resource(PAGE, content_type="text/html"),
        "/big-page.html": Resource(PAGE + b" " * 300_000, content_type="text/html", headers=[("X-Robots-Tag", "noai")]),
        "/page-gzip.html": Resource(raw=gzip_if_accepted(PAGE)),
        "/page-two-tdm.html": Resource(b'<html><head><meta name="tdm-reservation" content="0">'
                                       b'<meta name="tdm-reservation" content="1"></head></html>', content_type="text/html"),
        "/page-gzip-anyway.html": Resource(raw=gzip_if_accepted(PAGE, always=True)),
        "/bad/bomb.jpg": Resource(raw=gzip_if_accepted(b"\0" * (8 * 1024 * 1024), "image/jpeg", always=True)),
        "/bad/brotli.jpg": Resource(raw=gzip_if_accepted(b"x", "image/jpeg", always=True, coding="br")),
        "/private/a.jpg": Resource(f["plain"]),
        "/private/ok.jpg": Resource(f["plain"]),
        "/gpt/a.jpg": Resource(f["plain"]),
        "/cu/a.jpg": Resource(f["plain"]),
        "/cu/open/a.jpg": Resource(f["plain"]),
        "/tdm/a.jpg": Resource(f["plain"]),
        "/tdm/free/a.jpg": Resource(f["plain"]),
        "/redirect.jpg": Resource(status=302, headers=[("Location", "/h/noai.jpg")]),
        "/to-private.jpg": Resource(status=307, headers=[("Location", "/private/a.jpg")]),
        "/to-ftp.jpg": Resource(status=301, headers=[("Location", "ftp://example.com/a.jpg")]),
        "/loop.jpg": Resource(status=302, headers=[("Location", "/loop.jpg")]),
        "/missing.jpg": Resource(b"no", 404, content_type="text/plain"),
        "/bad/trickle.jpg": Resource(raw=trickle(4.0)),
        "/bad/huge.jpg": Resource(raw=huge()),
        "/bad/latin1.jpg": Resource(raw=header_bytes(b"X-Robots-Tag: no\xe9ai")),
        "/bad/headers.jpg": Resource(raw=many_headers(5000)),
    }
    down = {"/robots.txt": Resource(b"busy", 503, content_type="text/plain"), "/a.jpg": Resource(f["plain"])}
    norules = {"/.well-known/tdmrep.json": Resource(b"{not json", content_type="application/json"),
               "/a.jpg": Resource(f["plain"])}
    bigrobots = {"/robots.txt": Resource(raw=big_text(b"User-agent: *\nDisallow: /secret/\n", 50 * 1024 * 1024)),
                 "/secret/a.jpg": Resource(f["plain"]), "/a.jpg": Resource(f["plain"])}
    started = {name: Site(routes).start() for name, routes in
               {"main": main_routes, "down": down, "norules": norules, "bigrobots": bigrobots}.items()}
    # a cross-origin redirect: its target's site policies apply
    started["main"].server.routes["/cross.jpg"] = Resource(status=301, headers=[("Location", started["down"].url("/a.jpg"))])
    yield started
    for site in started.values():
        site.close()


def run(url: str, **kwargs: Any) -> Any:
    return check(url, user_agent="testbot", limits=FAST, **kwargs)


def states(report: Any) -> dict[str, str]:
    return {p.value: perm.state.value for p, perm in report.decision.permissions.items()}


# Expected states per path on the main site (restated from the specs and the robots/tdmrep above).
EXPECTED: dict[str, dict[str, str]] = {
    "/img/plain.jpg": {},
    "/h/noai.jpg": dict.fromkeys(AI, NA),
    "/h/noimageai.jpg": dict.fromkeys(AI, NA),
    "/h/scoped-us.jpg": dict.fromkeys(AI, NA),
    "/h/scoped-other.jpg": {},
    "/h/several.jpg": {**dict.fromkeys(AI, NA), "search": NA},
    "/h/malformed.jpg": {},
    "/h/spaced.jpg": {**dict.fromkeys(AI, NA), "search": NA},
    "/h/tdm.jpg": {"data-mining": NA},
    "/h/tdm-policy.jpg": {"data-mining": CO},
    "/h/tdm-joined.jpg": {"data-mining": NA},
    "/h/usage.jpg": {"genai-training": NA, "search": AL},
    "/h/usage-legacy.jpg": {"genai-training": NA},
    "/h/usage-half.jpg": {"genai-training": NA},
    "/private/a.jpg": dict.fromkeys(("data-mining", *AI, "search"), NA),
    "/private/ok.jpg": {},
    "/gpt/a.jpg": {"ai-training": NA, "genai-training": NA},
    "/cu/a.jpg": {"genai-training": NA},
    "/cu/open/a.jpg": {"genai-training": AL, "search": AL},
    "/tdm/a.jpg": {"data-mining": CO},
    "/tdm/free/a.jpg": {"data-mining": AL},
    "/redirect.jpg": dict.fromkeys(AI, NA),
}


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_each_signal_over_http(sites: dict[str, Site], path: str) -> None:
    report = run(sites["main"].url(path))
    want = {p: EXPECTED[path].get(p, UN) for p in ("data-mining", *AI, "search")}
    assert states(report) == want, report.to_json()
    assert report.errors == []


def test_redirect_uses_the_final_url(sites: dict[str, Site]) -> None:
    report = run(sites["main"].url("/redirect.jpg"))
    assert report.final_url == sites["main"].url("/h/noai.jpg")
    cross = run(sites["main"].url("/cross.jpg"))
    assert cross.final_url == sites["down"].url("/a.jpg")
    assert set(states(cross).values()) == {NA}  # the target's robots.txt answers 503


def test_a_redirect_to_another_host_keeps_the_first_sites_reservations() -> None:
    # A publisher's /img/a.jpg redirects to its CDN: its tdmrep.json rule for /img/* and its
    # robots.txt shutting GPTBot out were dropped with its site, and the image was unspecified.
    cdn = Site({"/x.jpg": Resource(image_bytes("jpeg"))}).start()
    publisher = Site({"/robots.txt": Resource(b"User-agent: GPTBot\nDisallow: /\n", content_type="text/plain"),
                      "/.well-known/tdmrep.json": Resource(b'[{"location": "/img/*", "tdm-reservation": 1}]',
                                                           content_type="application/json"),
                      "/img/a.jpg": Resource(status=302, headers=[("Location", cdn.url("/x.jpg"))])}).start()
    try:
        report = run(publisher.url("/img/a.jpg"))
    finally:
        publisher.close()
        cdn.close()
    assert report.final_url == cdn.url("/x.jpg")
    want = {"data-mining": NA, "ai-training": NA, "genai-training": NA, "ai-inference": UN, "search": UN}
    assert states(report) == want, report.to_json()
    assert {s.carrier for s in report.signals} == {f"robots.txt line 2 (user-agent gptbot) of {publisher.url('/img/a.jpg')}",
                                                    f"tdmrep.json rule 0 of {publisher.url('/img/a.jpg')}"}


def _raw_301(lines: bytes) -> Any:
    def raw(h: Any, head: bool) -> None:
        h.wfile.write(b"HTTP/1.1 301 Moved Permanently\r\nContent-Length: 0\r\n" + lines + b"\r\n\r\n")
    return raw


@pytest.mark.parametrize("fetch_body", [False, True])
def test_signals_on_a_redirect_response_count(fetch_body: bool) -> None:
    # A 301 carrying X-Robots-Tag: noai (or tdm-reservation / Content-Usage) to an untagged image:
    # the hop's headers were read nowhere and the image came out unspecified. The strictest along
    # the chain wins, as for the hops' robots.txt and tdmrep.json; a hop's unreadable header is an error.
    site = Site({"/r.jpg": Resource(status=301, headers=[("Location", "/s.jpg"), ("X-Robots-Tag", "noai")]),
                 "/s.jpg": Resource(status=302, headers=[("Location", "/x.jpg"), ("tdm-reservation", "1"),
                                                         ("Content-Usage", "search=n")]),
                 "/x.jpg": Resource(image_bytes("jpeg")),
                 "/bad.jpg": Resource(raw=_raw_301(b"Location: /x.jpg\r\nX-Robots-Tag: no\xe9ai"))}).start()
    try:
        report = run(site.url("/r.jpg"), fetch_body=fetch_body)
        bad = run(site.url("/bad.jpg"), fetch_body=fetch_body)
    finally:
        site.close()
    assert report.final_url == site.url("/x.jpg") and report.http_status == 200
    assert states(report) == {"data-mining": NA, **dict.fromkeys(AI, NA), "search": NA}, report.to_json()
    assert {s.carrier for s in report.signals} >= {f"http X-Robots-Tag of {site.url('/r.jpg')}",
                                                   f"http tdm-reservation of {site.url('/s.jpg')}",
                                                   f"http Content-Usage of {site.url('/s.jpg')}"}
    assert bad.status() == "error" and bad.errors[0].startswith(f"{site.url('/bad.jpg')}: header x-robots-tag: value is not UTF-8")


@pytest.mark.parametrize("fetch_body", [False, True])
@pytest.mark.parametrize("code", [300, 302, 304])
def test_a_redirect_with_nowhere_to_go_is_an_error_not_the_file(code: int, fetch_body: bool) -> None:
    # A 302 with no Location (or a 300, or a 304 to a request that was not conditional) never
    # reached the resource: its body, a link page, was read as the file, and a body tagged
    # --allow all made the URL "allowed" (without --fetch-body: "unspecified", no error).
    allowed = tag_bytes(image_bytes("jpeg"), Assertion.build(allow=["all"]))
    site = Site({"/a.jpg": Resource(allowed, status=code)}).start()
    try:
        report = run(site.url("/a.jpg"), fetch_body=fetch_body)
    finally:
        site.close()
    assert report.status() == "error" and report.http_status == code and report.embedded is None
    assert report.errors == [f"HTTP {code} with no Location to follow: the resource was not reached"], report.to_json()


def test_a_url_that_refuses_head_but_serves_get_is_checked_by_get() -> None:
    # A presigned S3/GCS URL signs the method: HEAD answers 403, GET the file. Without --fetch-body
    # every such URL was "HTTP 403 for the resource", an error, its noai unread.
    body = image_bytes("jpeg")

    def presigned(h: Any, head: bool) -> None:
        if head:
            h.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: 0\r\n\r\n")
        else:
            h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nX-Robots-Tag: noai\r\n"
                          b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def refused(h: Any, head: bool) -> None:  # GET refused too: still the error it was
        h.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n")

    site = Site({"/a.jpg": Resource(raw=presigned), "/b.jpg": Resource(raw=refused)}).start()
    try:
        report, closed = run(site.url("/a.jpg")), run(site.url("/b.jpg"))
    finally:
        site.close()
    assert report.http_status == 200 and report.errors == [] and report.status() == "notAllowed", report.to_json()
    assert closed.http_status == 403 and closed.errors == ["HTTP 403 for the resource"]


def test_a_resource_robots_txt_closes_to_us_is_not_fetched(sites: dict[str, Site]) -> None:
    main, down = sites["main"], sites["down"]
    before = main.hits.get("/private/a.jpg", 0), down.hits.get("/a.jpg", 0)
    closed = run(main.url("/private/a.jpg"), fetch_body=True)
    assert closed.status() == "notAllowed"
    assert closed.unread[0] == "the resource was not fetched: robots.txt line 2 disallows it for testbot"
    assert run(down.url("/a.jpg")).status() == "notAllowed"
    assert (main.hits.get("/private/a.jpg", 0), down.hits.get("/a.jpg", 0)) == before
    # nor is a redirect into it followed
    hops = main.hits.get("/to-private.jpg", 0)
    redirected = run(main.url("/to-private.jpg"), fetch_body=True)
    assert redirected.status() == "notAllowed" and redirected.final_url == main.url("/private/a.jpg")
    assert main.hits.get("/to-private.jpg", 0) == hops + 1 and main.hits.get("/private/a.jpg", 0) == before[0]
    # GPTBot's group does not bind us: /gpt/ is fetched (and reserved for GPTBot's purposes)
    assert run(main.url("/gpt/a.jpg")).http_status == 200


def test_robots_5xx_disallows_all_4xx_means_no_rules(sites: dict[str, Site]) -> None:
    down = run(sites["down"].url("/a.jpg"))
    assert set(states(down).values()) == {NA} and down.status() == "notAllowed"
    assert any("RFC 9309" in n for n in down.notes)


def test_unreachable_site_is_an_error_never_allowed() -> None:
    report = run(f"http://127.0.0.1:{closed_port()}/a.jpg")
    assert report.status() == "error"
    assert report.unread[0].startswith("the resource was not fetched: robots.txt unreachable (ClientConnectorError")
    assert set(states(report).values()) == {NA}


def test_malformed_tdmrep_json_over_http(sites: dict[str, Site]) -> None:
    report = run(sites["norules"].url("/a.jpg"))
    assert report.status() == "error" and "tdmrep.json" in report.errors[0]


def test_fetch_body_reads_embedded_carriers(sites: dict[str, Site]) -> None:
    main = sites["main"]
    assert states(run(main.url("/img/deny-ai.jpg"), fetch_body=True)) == {
        "data-mining": UN, "ai-training": NA, "genai-training": NA, "ai-inference": NA, "search": UN}
    assert run(main.url("/img/allow-all.jpg"), fetch_body=True).status() == "allowed"
    # without the body the embedded statement is unknown, and the report says so
    head = run(main.url("/img/deny-ai.jpg"))
    assert head.status() == "unspecified" and any("body" in u for u in head.unread)
    mixed = run(main.url("/h/allowed-but-tagged.jpg"), fetch_body=True)
    assert states(mixed)["genai-training"] == NA and mixed.conflicts
    page = run(main.url("/page.html"), fetch_body=True)
    assert {states(page)[p] for p in AI} == {NA} and states(page)["data-mining"] == NA


def test_an_html_page_is_read_for_its_metas_without_fetch_body(sites: dict[str, Site]) -> None:
    # A page's meta elements are one of check's own sources: a page checked without --fetch-body
    # used to be "unspecified" with its noai and tdm-reservation metas unread.
    page = run(sites["main"].url("/page.html"))
    assert {states(page)[p] for p in AI} == {NA} and states(page)["data-mining"] == NA, page.to_json()
    assert not page.unread, page.unread
    conflicting = run(sites["main"].url("/page-two-tdm.html"))
    assert conflicting.status((Purpose.DATA_MINING,)) == "error"
    # A page over the body cap is an error, and what its HEAD said still counts (it was dropped).
    big = check(sites["main"].url("/big-page.html"), user_agent="testbot", limits=Limits(timeout=1.0, body_cap=100_000))
    assert big.status() == "error" and states(big)["ai-training"] == NA, big.to_json()
    # Only HTML is fetched so: a file's body stays unread without --fetch-body, as the report says.
    assert any("body" in u for u in run(sites["main"].url("/img/deny-ai.jpg")).unread)


def test_a_page_with_conflicting_tdm_reservation_metas_is_never_allowed(sites: dict[str, Site]) -> None:
    # "0" then "1": the first used to be read alone, and data mining was allowed.
    page = run(sites["main"].url("/page-two-tdm.html"), fetch_body=True)
    assert page.status((Purpose.DATA_MINING,)) == "error", page.to_json()
    assert "2 tdm-reservation meta elements with different values: 0, 1" in page.errors[0]


def test_a_robots_txt_answered_429_closes_the_site() -> None:
    # A server turning crawlers away (429) says nothing of its rules: it used to count as "no
    # robots.txt" (4xx), and every resource of the site was open; tdmrep.json likewise unread.
    site = Site({"/robots.txt": Resource(b"slow down", 429, content_type="text/plain"),
                 "/.well-known/tdmrep.json": Resource(b"slow down", 429, content_type="text/plain"),
                 "/a.jpg": Resource(image_bytes("jpeg"))}).start()
    try:
        report = run(site.url("/a.jpg"))
    finally:
        site.close()
    assert set(states(report).values()) == {NA}, report.to_json()
    assert "robots.txt unreachable (HTTP 429)" in " ".join(report.notes)
    assert report.errors == ["/.well-known/tdmrep.json not read: HTTP 429"]


@pytest.mark.parametrize("start", [b"\xef\xbb\xbf", b"\xef\xbb\xbf\r\n  ", b"\xff\xfe"])
def test_a_soft_404_page_with_a_byte_order_mark_is_no_tdmrep_json(start: bytes) -> None:
    # A single-page app (or an IIS site) answers every path with its page and 200; saved with a byte
    # order mark, that page was read as a malformed tdmrep.json: every URL of the site was an error.
    page = b"<!DOCTYPE html><html><head><title>Not found</title></head><body></body></html>"
    page = page.decode().encode("utf-16-le") if start == b"\xff\xfe" else page
    site = Site({"/robots.txt": Resource(b"User-agent: *\n", content_type="text/plain"),
                 "/.well-known/tdmrep.json": Resource(start + page, content_type="text/html"),
                 "/a.jpg": Resource(image_bytes("jpeg"))}).start()
    try:
        report = run(site.url("/a.jpg"))
    finally:
        site.close()
    assert report.errors == [] and report.status() == UN, report.to_json()
    assert any("soft 404" in note for note in report.notes)


def test_tdmrep_json_rules_that_disagree_over_http() -> None:
    tdm = b'[{"location": "/img/*", "tdm-reservation": 0}, {"location": "/img/*", "tdm-reservation": 1}]'
    site = Site({"/.well-known/tdmrep.json": Resource(tdm, content_type="application/json"),
                 "/img/a.jpg": Resource(image_bytes("jpeg"))}).start()
    try:
        report = run(site.url("/img/a.jpg"))
    finally:
        site.close()
    assert report.status((Purpose.DATA_MINING,)) == "error", report.to_json()


def test_robots_content_usage_rules_of_one_path_combine_over_http() -> None:
    robots = b"User-agent: *\nContent-Usage: / train-ai=n\nContent-Usage: / train-ai=y\n"
    site = Site({"/robots.txt": Resource(robots, content_type="text/plain"), "/a.jpg": Resource(image_bytes("jpeg"))}).start()
    try:
        report = run(site.url("/a.jpg"))
    finally:
        site.close()
    assert states(report)["genai-training"] == NA and report.conflicts, report.to_json()


def test_a_robots_content_usage_path_followed_by_a_tab_is_read_over_http() -> None:
    # aipref's attachment allows a tab between the path and the preferences (WS = SP / HTAB), as
    # editors that align columns write it; the rule was read as a path with no preference: dropped.
    robots = b"User-agent: *\nContent-Usage: /cu/\ttrain-ai=n\n"
    site = Site({"/robots.txt": Resource(robots, content_type="text/plain"), "/cu/a.jpg": Resource(image_bytes("jpeg"))}).start()
    try:
        report = run(site.url("/cu/a.jpg"))
    finally:
        site.close()
    assert states(report)["genai-training"] == NA, report.to_json()
    assert report.status((Purpose.GENAI_TRAINING,)) == NA


@pytest.mark.parametrize("path", ["/x/../private/a.jpg", "/./private/a.jpg", "/private/%2e/a.jpg", "/pub/%2E%2E/private/a.jpg"])
def test_a_url_with_dot_segments_is_decided_on_the_path_the_server_is_asked_for(path: str) -> None:
    # An HTTP client removes "." and ".." segments before sending (RFC 3986 5.2.4; aiohttp, urllib3,
    # browsers): robots.txt's Disallow: /private/ was matched against "/x/../private/a.jpg", which it
    # does not match, so /private/a.jpg was fetched and came out unspecified.
    robots = b"User-agent: *\nDisallow: /private/\n"
    site = Site({"/robots.txt": Resource(robots, content_type="text/plain"),
                 "/private/a.jpg": Resource(image_bytes("jpeg"))}).start()
    try:
        report = run(site.url(path))
        pure = check(site.url(path), headers={}, site=web_site(robots=robots), user_agent="testbot")
    finally:
        site.close()
    assert report.status() == NA and states(report)["search"] == NA, report.to_json()
    assert site.hits.get("/private/a.jpg") is None
    assert pure.status() == NA, pure.to_json()


def test_a_robots_txt_whose_gzip_does_not_inflate_closes_the_site() -> None:
    # It was read as an empty robots.txt ("larger than 524288 bytes", said the note): all open.
    import gzip

    packed = gzip.compress(b"User-agent: *\nDisallow: /\n")
    corrupt = packed[:10] + b"\xff" * 8 + packed[18:]

    def robots(h: Any, head: bool) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(corrupt), b"" if head else corrupt))

    site = Site({"/robots.txt": Resource(raw=robots), "/a.jpg": Resource(image_bytes("jpeg"))}).start()
    try:
        report = run(site.url("/a.jpg"))
    finally:
        site.close()
    assert set(states(report).values()) == {NA}, report.to_json()
    assert any("does not inflate" in note for note in report.notes), report.notes


def test_bodies_are_asked_for_as_sent(sites: dict[str, Site]) -> None:
    page = run(sites["main"].url("/page-gzip.html"), fetch_body=True)
    assert {states(page)[p] for p in AI} == {NA}, page.to_json()
    # a server that compresses anyway: inflated within the cap
    page = run(sites["main"].url("/page-gzip-anyway.html"), fetch_body=True)
    assert {states(page)[p] for p in AI} == {NA}, page.to_json()
    small = Limits(timeout=1.0, body_cap=1024 * 1024)
    bomb = check(sites["main"].url("/bad/bomb.jpg"), user_agent="testbot", limits=small, fetch_body=True)
    assert bomb.status() == "error" and "inflates to over the 1048576-byte cap" in bomb.errors[0]
    brotli = run(sites["main"].url("/bad/brotli.jpg"), fetch_body=True)
    assert brotli.status() == "error" and "Content-Encoding 'br'" in brotli.errors[0]


def test_page_given_by_the_caller(sites: dict[str, Site]) -> None:
    report = run(sites["main"].url("/img/plain.jpg"), page=PAGE)
    assert {states(report)[p] for p in AI} == {NA}


@pytest.mark.parametrize(("path", "fetch_body", "words"), [
    ("/loop.jpg", False, "redirects"),
    ("/loop.jpg", True, "too many redirects (more than 10)"),
    ("/to-ftp.jpg", False, "not http(s)"),
    ("/missing.jpg", False, "HTTP 404"),
    ("/bad/trickle.jpg", True, "within 1 s"),
    ("/bad/trickle.jpg", False, "within 1 s"),
    ("/bad/huge.jpg", True, "cap"),
    ("/bad/latin1.jpg", False, "not UTF-8"),
    ("/bad/headers.jpg", False, "eader"),
])
def test_bad_input_is_a_clear_error_within_the_timeout(sites: dict[str, Site], path: str, fetch_body: bool, words: str) -> None:
    start = time.monotonic()
    report = run(sites["main"].url(path), fetch_body=fetch_body)
    assert time.monotonic() - start < 3.0
    assert report.status() == "error", report.to_json()
    assert any(words in e for e in report.errors), report.errors
    assert not report.may_use(Purpose.GENAI_TRAINING)


def test_huge_content_length_is_fine_when_only_headers_are_needed(sites: dict[str, Site]) -> None:
    report = run(sites["main"].url("/bad/huge.jpg"))
    assert report.errors == [] and report.status() == "unspecified"


def test_50mb_robots_is_read_up_to_the_cap(sites: dict[str, Site]) -> None:
    start = time.monotonic()
    report = run(sites["bigrobots"].url("/secret/a.jpg"))
    assert time.monotonic() - start < 3.0
    assert set(states(report).values()) == {NA}
    assert any("only the start was read" in n for n in report.notes)


def test_batch_goes_on_and_site_files_are_fetched_once(sites: dict[str, Site]) -> None:
    main = sites["main"]
    main.hits.clear()
    urls = [main.url(p) for p in sorted(EXPECTED)] + [main.url("/bad/latin1.jpg"), main.url("/loop.jpg"), "ftp://x/y"]
    reports = list(check_many(urls, user_agent="testbot", limits=Limits(timeout=1.0, concurrency=4)))
    assert sorted(r.url for r in reports) == sorted(urls)
    by_url = {r.url: r for r in reports}
    assert by_url[main.url("/h/noai.jpg")].status() == "notAllowed"
    assert by_url["ftp://x/y"].status() == "error"
    assert main.hits["/robots.txt"] == 1 and main.hits["/.well-known/tdmrep.json"] == 1


def test_a_bug_on_one_url_does_not_end_the_batch(sites: dict[str, Site], monkeypatch: pytest.MonkeyPatch) -> None:
    from rightsmeta.web import fetch

    real = fetch.evaluate

    def flaky(url: str, **kwargs: Any) -> Any:
        if url.endswith("/h/noai.jpg"):
            raise RuntimeError("boom")
        return real(url, **kwargs)

    monkeypatch.setattr(fetch, "evaluate", flaky)
    main = sites["main"]
    reports = {r.url: r for r in check_many([main.url("/h/noai.jpg"), main.url("/h/tdm.jpg")], limits=FAST)}
    assert reports[main.url("/h/noai.jpg")].status() == "error"
    assert "RuntimeError: boom" in reports[main.url("/h/noai.jpg")].errors[0]
    assert reports[main.url("/h/tdm.jpg")].status() == "notAllowed"


def test_per_host_delay_and_user_agent(sites: dict[str, Site]) -> None:
    main = sites["main"]

    async def go() -> None:
        async with Fetcher(user_agent="testbot", limits=Limits(timeout=1.0, per_host_delay=0.15)) as fetcher:
            await asyncio.gather(*(fetcher.check(main.url(f"/img/plain.jpg?delay{i}")) for i in range(3)))

    start = time.monotonic()
    asyncio.run(go())
    seen = [(t, path, agent) for t, path, agent in main.server.log if t >= start]
    assert len(seen) == 5, seen  # robots.txt, tdmrep.json, three HEADs
    times = sorted(t for t, _, _ in seen)
    # seen at the server, so each gap carries its scheduling jitter; the span cannot shrink much
    assert times[-1] - times[0] >= 4 * 0.15 - 0.03, times
    assert all(b - a >= 0.1 for a, b in zip(times, times[1:], strict=False)), times
    assert all(agent.startswith("testbot/") and "rightsmeta" in agent for _, _, agent in seen)


def test_site_policies_are_cached_for_their_ttl(sites: dict[str, Site]) -> None:
    main = sites["main"]

    async def go() -> list[int]:
        counts = []
        async with Fetcher(user_agent="testbot", limits=Limits(timeout=1.0, site_ttl=0.3)) as fetcher:
            for pause in (0.0, 0.0, 0.4):
                await asyncio.sleep(pause)
                before = main.hits.get("/robots.txt", 0)
                await fetcher.check(main.url("/img/plain.jpg"))
                counts.append(main.hits.get("/robots.txt", 0) - before)
        return counts

    assert asyncio.run(go()) == [1, 0, 1]


# The command line -----------------------------------------------------------------------------------

def _cli(*args: str, stdin: str | None = None) -> Any:
    from click.testing import CliRunner

    from rightsmeta.cli import main

    return CliRunner().invoke(main, ["check", "--timeout", "1", *args], input=stdin, catch_exceptions=False)


def test_cli_json_matches_schema_and_exit_codes(sites: dict[str, Site], tmp_path: Any) -> None:
    import json
    from pathlib import Path

    from jsonschema import Draft202012Validator

    schema = json.loads((Path(__file__).resolve().parent.parent / "schemas" / "check-report.schema.json").read_text())
    main = sites["main"]
    urls = [main.url("/h/noai.jpg"), main.url("/img/allow-all.jpg"), main.url("/bad/latin1.jpg"), main.url("/h/tdm-policy.jpg")]
    result = _cli(*urls, "--json", "--fetch-body", "--user-agent", "testbot")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    Draft202012Validator(schema).validate(rows)
    by_url = {r["url"]: r for r in rows}
    assert [by_url[u]["status"] for u in urls] == ["notAllowed", "allowed", "error", "constrained"]
    assert "summary: 1 notAllowed, 1 constrained, 1 allowed, 1 error (4 URLs)" in result.stderr

    assert _cli(*urls, "--jsonl", "--fail-on", "error,notAllowed").exit_code == 1
    assert _cli(urls[1], "--fetch-body", "--fail-on", "error,notAllowed").exit_code == 0
    listing = tmp_path / "urls.txt"
    listing.write_text("# a comment\n" + "\n".join(urls) + "\n")
    lines = _cli("--urls", str(listing), "--jsonl").stdout.splitlines()
    for line in lines:
        Draft202012Validator(schema).validate([json.loads(line)])
    assert len(lines) == 4
    piped = _cli("--urls", "-", "--jsonl", stdin="\n".join(urls[:2]) + "\n")
    assert sorted(json.loads(line)["url"] for line in piped.stdout.splitlines()) == sorted(urls[:2])
    assert "(2 URLs)" in piped.stderr
    # --purpose narrows the status: the noai header says nothing about search
    search = json.loads(_cli(urls[0], "--json", "--purpose", "search").stdout)[0]
    assert search["status"] == "unspecified" and search["purposes"] == ["search"]


def test_cli_a_url_list_line_that_is_not_utf8_is_one_error(sites: dict[str, Site], tmp_path: Any) -> None:
    # A crawler's frontier holding one Latin-1 line used to end the run in a traceback
    # (UnicodeDecodeError) after some URLs were checked; it is now that line's own row.
    import json

    good = sites["main"].url("/h/noai.jpg")
    listing = tmp_path / "urls.txt"
    listing.write_bytes(good.encode() + b"\n" + sites["main"].url("/caf").encode() + b"\xe9.jpg\n")
    result = _cli("--urls", str(listing), "--jsonl")
    rows = {r["url"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert result.exit_code == 0 and len(rows) == 2, result.output
    assert rows[good]["status"] == "notAllowed"
    assert rows[sites["main"].url("/caf") + "\udce9.jpg"]["status"] == "error"


def test_cli_a_jsonl_url_list_is_checked_by_each_line_url(sites: dict[str, Site], tmp_path: Any) -> None:
    # img2dataset's and crawlers' JSONL: each line was reported "not an http(s) URL", all of them.
    import json

    noai, allowed = sites["main"].url("/h/noai.jpg"), sites["main"].url("/img/allow-all.jpg")
    # The headers the crawler recorded say nothing against AI; the site's own (noai) decide.
    recorded = {"url": noai, "key": "000000", "headers": {"Content-Type": "image/jpeg"}, "caption": "a {b}"}
    broken = ['{"uri": "' + allowed + '"}', '{"url": 7}', '{"url": "' + allowed]
    listing = tmp_path / "urls.jsonl"
    listing.write_text("\n".join([json.dumps(recorded), allowed, *broken]) + "\n")
    result = _cli("--urls", str(listing), "--jsonl", "--fetch-body")
    rows = {r["url"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert result.exit_code == 0 and len(rows) == 5, result.output
    assert rows[noai]["status"] == "notAllowed" and rows[allowed]["status"] == "allowed"
    # A line without a "url" string is that line's own error, named by the line: never allowed.
    for line in broken:
        assert rows[line]["status"] == "error" and "not an http(s) URL" in rows[line]["errors"][0]


def test_cli_a_url_list_saved_with_a_byte_order_mark_is_read_from_its_first_url(sites: dict[str, Site], tmp_path: Any) -> None:
    # Notepad, PowerShell 5 and Excel's "CSV UTF-8" start a UTF-8 file with a byte order mark: the
    # first URL was "\ufeffhttp://...", an error row ("not an http(s) URL", the mark invisible in it).
    import json

    noai, plain = sites["main"].url("/h/noai.jpg"), sites["main"].url("/img/plain.jpg")
    listing = tmp_path / "urls.txt"
    listing.write_bytes(b"\xef\xbb\xbf" + f"{noai}\r\n{plain}\r\n".encode())
    for args, stdin in ((("--urls", str(listing)), None), (("--urls", "-"), listing.read_bytes().decode("utf-8"))):
        result = _cli(*args, "--jsonl", "--user-agent", "testbot", stdin=stdin)
        rows = {r["url"]: r["status"] for r in map(json.loads, result.stdout.splitlines())}
        assert rows == {noai: "notAllowed", plain: "unspecified"}, result.output


def test_cli_csv_and_human_output(sites: dict[str, Site]) -> None:
    import csv
    import io

    url = sites["main"].url("/gpt/a.jpg")
    rows = list(csv.DictReader(io.StringIO(_cli(url, "--csv").stdout)))
    assert rows[0]["status"] == "notAllowed" and rows[0]["genai-training"] == "notAllowed"
    assert "robots.txt line 8 (user-agent gptbot)" in rows[0]["sources"]
    # What was not read (the body, without --fetch-body) and the notes were in --json only: a CSV
    # user could not see that the file's own carriers were never looked at (found in QA).
    import json

    (line,) = map(json.loads, _cli(url, "--jsonl").stdout.splitlines())
    assert line["unread"] and rows[0]["unread"] == "; ".join(line["unread"])
    assert rows[0]["notes"] == "; ".join(line["notes"])
    text = _cli(url, "--purpose", "genai-training").stdout
    assert text.startswith("notAllowed") and "robots.txt line 8 (user-agent gptbot): ai-training notAllowed" in text


def test_cli_usage_errors() -> None:
    assert _cli("--fail-on", "nope", "http://127.0.0.1:1/").exit_code == 2
    assert _cli("--purpose", "nope", "http://127.0.0.1:1/").exit_code == 2
    assert _cli().exit_code == 2


@pytest.mark.parametrize("agent", ["", "  ", "/1.0"])
def test_cli_a_user_agent_with_no_name_is_a_usage_error(sites: dict[str, Site], agent: str) -> None:
    # It was checked as nobody: the "*" group of robots.txt, no scoped X-Robots-Tag, and sent to the
    # site as "User-Agent: /0.1.0 (rightsmeta ...)".
    result = _cli("--user-agent", agent, sites["main"].url("/img/plain.jpg"))
    assert result.exit_code == 2 and "--user-agent" in result.output, result.output
    assert sites["main"].server.log == [] or all(ua.strip() and not ua.startswith("/") for _, _, ua in sites["main"].server.log)


# The same URLs through datadiligence 0.1.7 ------------------------------------------------------------

# path -> (rightsmeta may use for genai-training, datadiligence is_allowed): the README table restates it.
VERSUS: dict[str, tuple[str, str]] = {
    "/img/plain.jpg": ("yes", "yes"),
    "/h/noai.jpg": ("no", "no"),
    "/h/scoped-us.jpg": ("no", "no"),
    "/h/scoped-other.jpg": ("yes", "yes"),
    "/h/several.jpg": ("no", "no"),
    "/h/malformed.jpg": ("yes", "yes"),
    "/h/tdm.jpg": ("no", "no"),
    "/h/tdm-policy.jpg": ("no", "no"),
    "/redirect.jpg": ("no", "no"),
    "/h/usage.jpg": ("no", "yes"),
    "/h/usage-legacy.jpg": ("no", "yes"),
    "/private/a.jpg": ("no", "yes"),
    "/gpt/a.jpg": ("no", "yes"),
    "/cu/a.jpg": ("no", "yes"),
    "/cu/open/a.jpg": ("yes", "yes"),
    "/tdm/a.jpg": ("no", "yes"),
    "/tdm/free/a.jpg": ("yes", "yes"),
    "/page.html": ("no", "yes"),
    "/img/deny-ai.jpg": ("no", "yes"),
    "/img/allow-all.jpg": ("yes", "yes"),
    "/h/allowed-but-tagged.jpg": ("no", "yes"),
    "/bad/latin1.jpg": ("no", "yes"),
    "/missing.jpg": ("no", "raises"),
    "/loop.jpg": ("no", "raises"),
    "down:/a.jpg": ("no", "yes"),
    "norules:/a.jpg": ("no", "yes"),
}


def test_same_urls_through_datadiligence(sites: dict[str, Site], caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("datadiligence")
    from datadiligence import PostprocessEvaluator

    theirs_eval = PostprocessEvaluator(user_agent="testbot")
    got: dict[str, tuple[str, str]] = {}
    for key in VERSUS:
        site, _, path = key.rpartition(":")
        url = sites[site or "main"].url(path)
        ours = "yes" if run(url, fetch_body=True).may_use(Purpose.GENAI_TRAINING) else "no"
        try:
            theirs = "yes" if theirs_eval.is_allowed(url=url) else "no"
        except Exception:
            theirs = "raises"
        got[key] = (ours, theirs)
    assert got == VERSUS


def test_check_from_many_threads(sites: dict[str, Site]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    main = sites["main"]
    paths = ["/h/noai.jpg", "/img/plain.jpg", "/tdm/a.jpg", "/private/a.jpg"] * 3
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda p: run(main.url(p)).status(), paths))
    assert got == ["notAllowed", "unspecified", "constrained", "notAllowed"] * 3


def test_leaving_check_many_early_ends_its_thread_and_checks(sites: dict[str, Site]) -> None:
    # A scraper that stops at the first report it needs: the thread running the checks stayed
    # blocked on the full queue for good, with its event loop and open connections (one more per loop).
    import threading

    def ours() -> int:
        return sum(t.name == "rightsmeta-web-check" for t in threading.enumerate())

    before = ours()
    for _ in range(3):
        for report in check_many([sites["main"].url(f"/img/plain.jpg?{i}") for i in range(100)],
                                 user_agent="testbot", limits=Limits(timeout=1.0, concurrency=2)):
            assert report.status() == "unspecified"
            break
    assert ours() == before
    # and a loop run to its end is unchanged
    assert len(list(check_many([sites["main"].url("/img/plain.jpg")], limits=FAST))) == 1
    assert ours() == before


def test_check_works_where_an_event_loop_is_running(sites: dict[str, Site]) -> None:
    # A notebook (Jupyter) runs its cells in a running event loop: check() raised "asyncio.run()
    # cannot be called from a running event loop" (and warned of a coroutine never awaited).
    async def cell() -> str:
        return str(run(sites["main"].url("/h/noai.jpg")).status())

    assert asyncio.run(cell()) == "notAllowed"


@pytest.mark.parametrize("fetch_body", [False, True])
def test_a_file_served_as_text_html_is_read_as_the_file_it_is(fetch_body: bool) -> None:
    # A script that sends a picture without setting its type ("image.php?id=5": PHP's default is
    # text/html) was read as an HTML page: no meta element in it, its own carriers never read, and
    # a picture tagged --deny ai came out unspecified.
    denied = tag_bytes(image_bytes("jpeg"), Assertion.build(deny=["ai"]))
    site = Site({"/robots.txt": Resource(b"User-agent: *\n", content_type="text/plain"),
                 "/image.php": Resource(denied, content_type="text/html; charset=UTF-8")}).start()
    try:
        report = run(site.url("/image.php?id=5"), fetch_body=fetch_body)
    finally:
        site.close()
    assert report.status() == NA, report.to_json()
    assert report.embedded is not None and report.embedded.format == "jpeg"


def test_headers_of_a_standard_library_response_are_read(sites: dict[str, Site]) -> None:
    # urllib's response.headers (an http.client.HTTPMessage, neither a Mapping nor a list of
    # pairs) raised "ValueError: too many values to unpack"; each repeated header counts.
    import urllib.request

    with urllib.request.urlopen(sites["main"].url("/h/several.jpg"), timeout=5) as response:
        report = web_from_headers(response.headers, response.url, user_agent="testbot")
    assert states(report) == {**dict.fromkeys(AI, NA), "search": NA, "data-mining": UN}, report.to_json()


def test_headers_of_an_httpx_response_keep_each_field_line() -> None:
    # httpx's Headers is a Mapping whose items() joins repeated fields: "otherbot: noindex" and
    # "noai" came as "otherbot: noindex, noai", whose noai is otherbot's (a scope runs to the end of
    # its line), so the site's noai for everyone was lost: unspecified.
    httpx = pytest.importorskip("httpx")
    site = Site({"/a.jpg": Resource(image_bytes("jpeg"), headers=[("X-Robots-Tag", "otherbot: noindex"),
                                                                   ("X-Robots-Tag", "noai")])}).start()
    try:
        response = httpx.get(site.url("/a.jpg"))
    finally:
        site.close()
    report = web_from_headers(response.headers, str(response.url), user_agent="testbot")
    assert states(report) == {**dict.fromkeys(AI, NA), "search": UN, "data-mining": UN}, report.to_json()


def test_cli_text_output_escapes_what_a_url_or_server_says(sites: dict[str, Site]) -> None:
    # A URL list is untrusted too: a terminal title escape or a newline in a URL must not reach the
    # screen raw (a forged "allowed" line, or a window title rewritten).
    forged = sites["main"].url("/h/noai.jpg") + "\x1b]0;pwned\x07\nallowed      https://forged.example/"
    result = _cli(forged)
    assert "\x1b]0;" not in result.stdout and "\x07" not in result.stdout
    assert not any(line.startswith("allowed") for line in result.stdout.splitlines())


def test_cli_csv_neutralises_formulas(sites: dict[str, Site]) -> None:
    # A URL list is untrusted: a "URL" that a spreadsheet would run as a formula stays text.
    import csv
    import io

    formula = "=HYPERLINK(\"https://evil.example\")"
    result = _cli(formula, sites["main"].url("/h/noai.jpg"), "--csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["url"] for r in rows][0] == "'" + formula
    assert rows[1]["url"] == sites["main"].url("/h/noai.jpg") and rows[1]["status"] == "notAllowed"
