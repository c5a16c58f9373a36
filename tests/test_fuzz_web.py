"""Fuzzing what a web check reads from servers nobody vouches for: response headers, robots.txt,
/.well-known/tdmrep.json and HTML meta elements (``rightsmeta.web``; no network here).

Each parser must raise nothing (a check's problems are in its report), end within a bound, and
fail closed: garbage beside a reservation, or damage outside the reservation's own bytes, never
turns the answer into "allowed". The examples pinned with ``@example`` are what this found.
"""

from __future__ import annotations

import json
import os
import random
import re
import time

import pytest
from fuzzing import damage, json_values
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rightsmeta import web
from rightsmeta.errors import MalformedMetadata
from rightsmeta.web import headers as web_headers
from rightsmeta.web import html, robots, tdmrep_json

EXAMPLES = int(os.environ.get("RIGHTSMETA_FUZZ_EXAMPLES", "200"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None)
BOUND = 2.0  # seconds for one check of inputs of a few KB: far above the real cost, far below a hang
URL = "https://example.org/images/cat.jpg"
SITE_OPEN = web.Site(robots=b"", tdmrep_status=404)

NAMES = ("x-robots-tag", "tdm-reservation", "tdm-policy", "content-usage", "content-type", "link", "X-Robots-Tag",
         "Content-Usage", "")
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=60) | st.sampled_from(
    ("noai", "rightsmeta: noai", "otherbot: all", ":, :, ,;: -::", "1", "0", "train-ai=y", "train-ai=n, search",
     "text/html; charset=utf-8", "unavailable_after: 2026-01-01"))
VALUE = TEXT | st.binary(max_size=60)
HEADER_LIST = st.lists(st.tuples(st.sampled_from(NAMES) | st.text(max_size=12) | st.binary(max_size=12), VALUE),
                       max_size=12)


def _timed(check: object, *args: object, **kwargs: object) -> web.WebReport:
    start = time.perf_counter()
    report = check(*args, **kwargs)  # type: ignore[operator]
    assert time.perf_counter() - start < BOUND
    assert isinstance(report, web.WebReport)
    return report


@SETTINGS
@given(HEADER_LIST)
@example([(b"\xff\xfe", b"\xff"), ("tdm-reservation", b"\xc3\x28")])
def test_any_headers_are_read_without_raising(headers: list[tuple[str | bytes, str | bytes]]) -> None:
    report = _timed(web.evaluate, URL, headers=headers, site=SITE_OPEN)
    report.to_json()
    report.status()


@SETTINGS
@given(HEADER_LIST)
def test_garbage_beside_a_reservation_never_allows(extra: list[tuple[str | bytes, str | bytes]]) -> None:
    """X-Robots-Tag noai reserves every AI use; whatever else a response says cannot lift that."""
    report = _timed(web.evaluate, URL, headers=[("X-Robots-Tag", "noai"), *extra], site=SITE_OPEN)
    assert report.status() in ("notAllowed", "error"), report.to_json()


URL_TEXT = st.text(st.characters(categories=("Cs", "Ll", "Lu", "Nd", "Po", "Ps", "Pe", "Sm", "Cc", "Zs", "Lo")), max_size=20)


@SETTINGS
@given(st.sampled_from(("https://example.org/", "https://[", "http://", "https://example.org:99999/", "")), URL_TEXT,
       URL_TEXT)
@example("https://example.org/", "\ud800", "")  # found: UnicodeEncodeError (a lone surrogate, as JSON's "\ud800" gives)
@example("https://[", "::1/", "")  # found: ValueError "Invalid IPv6 URL" out of evaluate and check
def test_any_url_is_checked_without_raising(start: str, path: str, rule: str) -> None:
    """URLs come from datasets' JSON and crawl lists: whatever one is, the check answers with a report."""
    site = web.Site(robots=f"User-agent: *\nDisallow: /{rule}\nContent-Usage: /{rule} train-ai=y", tdmrep_status=404)
    report = _timed(web.evaluate, start + path, headers=[("X-Robots-Tag", "noai")], site=site)
    assert report.status() in ("notAllowed", "error"), report.to_json()
    report.to_json()


def test_unparsable_url_is_an_error_of_the_check() -> None:
    report = web.check("https://[::1/a.jpg", headers={}, site=web.Site(robots=b""))
    assert report.status() == "error" and "URL cannot be parsed" in report.errors[0]
    report = web.check("https://[::1/a.jpg", limits=None)  # would fetch: refused before any network
    assert report.status() == "error" and "not an http(s) URL" in report.errors[0]


ROBOTS_LINES = st.lists(
    st.sampled_from(("User-agent: *", "User-agent: rightsmeta", "User-agent: GPTBot", "Disallow: /", "Allow: /",
                     "Disallow: /images/", "Allow: /*.jpg$", "Disallow: /*cat*", "Content-Usage: train-ai=n",
                     "Content-Usage: /images train-ai=y", "Content-Signal: ai-train=no", "Sitemap: x", "#", "",
                     "Disallow: /%E4%", "Allow: /%2F*$"))
    | st.text(max_size=40),
    max_size=20,
)


@SETTINGS
@given(ROBOTS_LINES, st.text(max_size=40), st.sampled_from(("\n", "\r\n", "\r")))
def test_any_robots_txt_is_read_without_raising(lines: list[str], path: str, newline: str) -> None:
    site = web.Site(robots=newline.join(lines).encode("utf-8", "surrogatepass"), tdmrep_status=404)
    _timed(web.evaluate, f"https://example.org/{path}", headers={}, site=site).to_json()
    assert isinstance(web.core.forbidden(site, f"https://example.org/{path}", "rightsmeta"), str | None)


@SETTINGS
@given(ROBOTS_LINES)
def test_robots_lines_in_other_groups_never_allow(lines: list[str]) -> None:
    """Lines of whatever kind placed after a group closing the site to every crawler: the caller's
    group still disallows the URL (a later group's rules may add to it, never lift it... unless it
    names the caller or '*' again, which a hostile file may do: those lines are left out)."""
    kept = [line for line in lines if not re.match(r"\s*(user-agent|allow|content)", line, re.I)]
    text = "\n".join(["User-agent: *", "Disallow: /", *kept])
    report = _timed(web.evaluate, URL, headers={}, site=web.Site(robots=text, tdmrep_status=404))
    assert report.status() in ("notAllowed", "error"), (text, report.to_json())


def _reference_match(pattern: str, path: str) -> bool:
    """RFC 9309 matching restated as a regular expression (fine for the short strings used here)."""
    anchored = pattern.endswith("$")
    body = pattern[:-1] if anchored else pattern
    regex = ".*".join(re.escape(piece) for piece in body.split("*")) + ("" if anchored else ".*")
    return re.fullmatch(regex, path, re.DOTALL) is not None


@settings(max_examples=EXAMPLES * 5, deadline=None)
@given(st.text(alphabet="/ab*$", max_size=8), st.text(alphabet="/ab$", max_size=9))
@example("/*a*b$", "/aab")
@example("/a*", "/a")
@example("/*ab", "/aab")
def test_robots_path_matching_agrees_with_rfc_9309(pattern: str, path: str) -> None:
    assert robots.matches(pattern, path) is _reference_match(pattern, path)


def test_hostile_robots_patterns_cost_linear_time() -> None:
    """Found: a rule ``/*aaa...ab`` against a long path of a's made the old matcher retry the whole
    pattern at every position: 10 KB of such rules took 3 s per URL, 512 KB minutes."""
    rule = "Disallow: /*" + "a" * 1000 + "b\n"
    text = "User-agent: *\n" + rule * 5 + "User-agent: GPTBot\n" + rule * 5  # 10 KB: the old matcher took 2 s
    site = web.Site(robots=text, tdmrep_status=404)
    start = time.perf_counter()
    report = web.evaluate("https://example.org/" + "a" * 2000, headers={}, site=site)
    assert time.perf_counter() - start < 0.5
    assert report.status() == "unspecified"  # no rule matches a path without a "b"
    assert web.evaluate("https://example.org/" + "a" * 2000 + "b", headers={}, site=site).status() == "notAllowed"


TDMREP = [
    {"location": "/images/*", "tdm-reservation": 1, "tdm-policy": "https://example.org/policy.json"},
    {"location": "/images/cat.jpg", "tdm-reservation": 1},
    {"location": "/*.jpg$", "tdm-reservation": 1},
    {"location": "/other/", "tdm-reservation": 1},
]


def test_damaged_tdmrep_json_never_allows() -> None:
    """Every rule reserves: damage outside the reservations' values (a 1 flipped to 0 is a new
    statement, not damage) leaves the URL reserved, constrained, or an error."""
    data = json.dumps(TDMREP, indent=1).encode()
    protected = [(m.start(1), m.end(1)) for m in re.finditer(rb'"tdm-reservation": (1)', data)]
    rng = random.Random(20261130)
    statuses = set()
    for mutant in (damage(data, protected, rng) for _ in range(EXAMPLES * 2)):
        report = _timed(web.evaluate, URL, headers={}, site=web.Site(robots=b"", tdmrep=mutant))
        statuses.add(report.status())
        assert report.status() != "allowed", (mutant, report.to_json())
    assert {"error", "constrained"} <= statuses  # the damage reached both outcomes


JSON_VALUES = json_values(("/", "/images/*", "/*.jpg$", "0", "1"), ("location", "tdm-reservation", "tdm-policy"),
                          max_leaves=20)


@SETTINGS
@given(JSON_VALUES)
@example([{"location": "/", "tdm-reservation": [1]}])
@example([{"location": "/", "tdm-reservation": 1.0}])
def test_any_tdmrep_json_is_read_without_raising(doc: object) -> None:
    text = json.dumps(doc)
    try:
        rules = tdmrep_json.parse(text)
        tdmrep_json.signal(rules, "/images/cat.jpg")
    except MalformedMetadata:
        pass
    _timed(web.evaluate, URL, headers={}, site=web.Site(robots=b"", tdmrep=text)).to_json()


def test_deep_or_huge_tdmrep_json_is_an_error() -> None:
    for data in (b"[" * 100_000 + b"]" * 100_000, b"[" + b"1" * 5000 + b"]", b" " * (tdmrep_json.MAX_BYTES + 1)):
        report = _timed(web.evaluate, URL, headers={}, site=web.Site(robots=b"", tdmrep=data))
        assert report.status() == "error"


PAGE = b"""<!DOCTYPE html>
<html><head><title>A cat</title>
<meta charset="utf-8">
<meta name="robots" content="noai, noimageai">
<meta name="tdm-reservation" content="1">
<meta name="description" content="a cat &amp; a dog">
</head><body><p>text</p><img src="cat.jpg"></body></html>
"""


def test_damaged_html_page_never_allows() -> None:
    protected = [(m.start(), m.end()) for m in re.finditer(rb'<meta name="(robots|tdm-reservation)"[^>]*>', PAGE)]
    rng = random.Random(7)
    for mutant in (damage(PAGE, protected, rng) for _ in range(EXAMPLES * 2)):
        report = _timed(web.evaluate, URL, headers={"Content-Type": "text/html"}, body=mutant, site=SITE_OPEN)
        assert report.status() in ("notAllowed", "error"), (mutant, report.to_json())


def test_meta_swallowed_by_an_unclosed_quote_is_an_error() -> None:
    """Found: one quote inserted before the reservation (``<meta charset='"utf-8">``) leaves every
    element after it inside an unterminated tag; the page said nothing, "unspecified"."""
    page = PAGE.replace(b'charset="utf-8"', b"charset='\"utf-8\"")
    report = web.evaluate(URL, headers={"Content-Type": "text/html"}, body=page, site=SITE_OPEN)
    assert report.status() == "error"
    assert "a meta element was not read" in report.errors[0]
    report = web.evaluate(URL, headers={}, page=page, site=SITE_OPEN)
    assert report.status() == "error"
    assert web.evaluate(URL, headers={}, page=PAGE + b"<p title='x", site=SITE_OPEN).status() == "notAllowed"


@pytest.mark.parametrize("head", [b"<title>Using the <body> element</title>", b"<textarea><body></textarea>",
                                  b"<script>document.write('<body>')</script>"])
def test_body_tag_as_text_does_not_end_the_head(head: bytes) -> None:
    """Found: a title naming the body element ("<title>The <body> element</title>") was taken for
    the body's start, so the reservation after it was never read ("unspecified")."""
    page = PAGE.replace(b"<title>A cat</title>", head)
    report = web.evaluate(URL, headers={"Content-Type": "text/html"}, body=page, site=SITE_OPEN)
    assert report.status() == "notAllowed", report.to_json()


@pytest.mark.parametrize("head", [b"<title>A cat</title foo>", b"<title>A cat</TITLE\n>", b"<title>A cat</title/>",
                                  b"<textarea>x</textarea class='y'>", b"<script>x=1</script type=a>",
                                  b"<title>A cat</titles></title >"])
def test_end_tag_with_attributes_ends_the_text(head: bytes) -> None:
    """Found: on Python 3.11 "</title foo>" did not end the title (HTML ignores an end tag's
    attributes), so the head's meta elements were never reached and the page was an error."""
    page = PAGE.replace(b"<title>A cat</title>", head)
    report = web.evaluate(URL, headers={"Content-Type": "text/html"}, body=page, site=SITE_OPEN)
    assert report.status() == "notAllowed", report.to_json()
    assert not report.errors


def test_a_head_longer_than_what_is_parsed_says_so_and_fails_closed_on_a_meta_after_it() -> None:
    """Found: meta elements after the first MiB of a page with no <body> yet were dropped without
    a word, so a reservation there gave "unspecified"."""
    script = b"<script>" + b"x" * html.MAX_BYTES + b"</script>"
    late = b'<meta name="tdm-reservation" content="1">'
    for page in (b"<!DOCTYPE html><html><head>" + script + late + b"</head><body></body></html>",
                 b"<html><head>" + script[:-3] + late):  # cut inside the tag
        for report in (web.evaluate(URL, headers={"Content-Type": "text/html"}, body=page, site=SITE_OPEN),
                       web.evaluate(URL, headers={}, page=page.decode(), site=SITE_OPEN)):
            assert report.status() == "error", report.to_json()
            assert "head goes on past the first 1 MiB" in report.errors[0]
    # Without a meta element after it, the page is read as before, and the report says what was skipped.
    page = PAGE.replace(b"</head>", script + b"</head>")
    report = web.evaluate(URL, headers={"Content-Type": "text/html"}, body=page, site=SITE_OPEN)
    assert report.status() == "notAllowed" and not report.errors
    assert any("head goes on past the first 1 MiB" in n for n in report.notes), report.notes
    large = PAGE + b"<p>" + b"y" * html.MAX_BYTES + b'<meta itemprop="name" content="x">'
    report = web.evaluate(URL, headers={"Content-Type": "text/html"}, body=large, site=SITE_OPEN)
    assert report.status() == "notAllowed" and not report.errors and not report.notes, report.to_json()


@SETTINGS
@given(st.text(max_size=300) | st.binary(max_size=300))
@example("<meta name=robots content=noai" + "<" * 2000)
@example("<!--" + "<meta" * 500)
def test_any_html_is_read_without_raising(page: str | bytes) -> None:
    start = time.perf_counter()
    html.signals(page, "rightsmeta")
    assert time.perf_counter() - start < BOUND


def test_many_or_huge_headers_are_bounded() -> None:
    many = [("x-foo", "1")] * (web_headers.MAX_HEADERS + 5) + [("X-Robots-Tag", "noai")]
    report = _timed(web.evaluate, URL, headers=many, site=SITE_OPEN)
    assert report.status() == "error"  # the reservation may sit past what was read: not "allowed"
    huge = [("tdm-reservation", "1" + " " * web_headers.MAX_VALUE)]
    assert _timed(web.evaluate, URL, headers=huge, site=SITE_OPEN).status() == "error"
