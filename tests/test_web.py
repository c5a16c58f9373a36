"""Web signals without network: headers, robots.txt, tdmrep.json, HTML meta, the one decision.

Expected values are restated from the specs (signals.md; RFC 9309; TDMRep; aipref), not derived
from the code.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from samples import image_bytes

from rightsmeta import Assertion, Purpose, State, tag_bytes
from rightsmeta.web import Site, check, evaluate, from_headers
from rightsmeta.web import robots as robots_mod
from rightsmeta.web.core import forbidden
from rightsmeta.web.headers import robots_directives

AI = {"ai-training", "genai-training", "ai-inference"}
NA, AL, UN, CO = "notAllowed", "allowed", "unspecified", "constrained"


def states(report: object) -> dict[str, str]:
    return {p.value: perm.state.value for p, perm in report.decision.permissions.items()}  # type: ignore[attr-defined]


def denied(report: object) -> set[str]:
    return {p for p, s in states(report).items() if s == NA}


EMPTY = Site(robots=b"")


# Response headers ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("headers", "expected"), [
    ({"X-Robots-Tag": "noai"}, AI),
    ({"X-Robots-Tag": "noimageai"}, AI),
    ({"x-robots-tag": "NoAI, noindex"}, AI | {"search"}),
    ({"X-Robots-Tag": "none"}, {"search"}),
    ({"X-Robots-Tag": "nofollow"}, set()),
    ({"X-Robots-Tag": "otherbot: noai"}, set()),           # scoped to another agent
    ({"X-Robots-Tag": "mybot: noai"}, AI),                  # scoped to us
    ({"X-Robots-Tag": "MyBot: noindex, noimageai"}, AI | {"search"}),
    ({"X-Robots-Tag": "unavailable_after: 2030-01-01, noai"}, AI),
    ({"X-Robots-Tag": ":, :, ,;: -::"}, set()),             # malformed: ignored, not fatal
    ({"X-Robots-Tag": "noindex noai"}, AI | {"search"}),     # without the comma
    ({"X-Robots-Tag": "mybot: noarchive noimageai"}, AI),
    ({"X-Robots-Tag": "otherbot: noindex noai"}, set()),
    ([("X-Robots-Tag", "noindex"), ("X-Robots-Tag", "noimageai")], AI | {"search"}),  # several headers
    ({"tdm-reservation": "1"}, {"data-mining"}),
    ({"tdm-reservation": "0"}, set()),
    ({"tdm-reservation": "yes"}, set()),                    # TDMRep: any other value is unset
    ({"tdm-reservation": "1, 1"}, {"data-mining"}),          # two field lines joined, as HTTP allows
    ({"tdm-reservation": "1,"}, {"data-mining"}),            # an empty member is no value
    ({"Content-Usage": "train-ai=n, search=y"}, {"genai-training"}),
    ({"Content-Usage": "train-genai=n"}, {"genai-training"}),  # an older draft's key
    ({"Content-Usage": "bots=n, search=y"}, {"data-mining", "ai-training", "genai-training", "ai-inference"}),
    ({"Content-Usage": "train-ai=maybe"}, set()),           # malformed: noted and ignored
])
def test_header_signals(headers: object, expected: set[str]) -> None:
    report = evaluate("https://example.com/a.jpg", headers=headers, site=EMPTY, user_agent="MyBot/2.0")  # type: ignore[arg-type]
    assert denied(report) == expected
    assert report.errors == []


def test_header_states_allowed_and_constrained_with_sources() -> None:
    report = evaluate("https://example.com/a.jpg", site=EMPTY, headers=[
        ("tdm-reservation", "1"), ("tdm-policy", "https://example.com/policy.json"),
        ("Content-Usage", "search=y"),
    ])
    assert states(report)["data-mining"] == CO
    assert report.permissions[Purpose.DATA_MINING].constraint_info == "https://example.com/policy.json"
    assert states(report)["search"] == AL
    # data-mining constrained covers the AI purposes nobody allowed (EU law: AI training is TDM)
    assert report.decision.effective[Purpose.AI_TRAINING].state is State.CONSTRAINED
    assert report.status((Purpose.SEARCH,)) == "allowed"
    assert report.status((Purpose.GENAI_TRAINING,)) == "constrained"
    sources = {s["source"]: s for s in report.to_json()["sources"]}
    assert set(sources) == {"http tdm-reservation", "http Content-Usage"}


def test_a_content_usage_that_states_nothing_is_a_note_not_a_source() -> None:
    report = from_headers({"Content-Usage": "train-ai=maybe"})
    assert report.signals == [] and report.notes == ["header Content-Usage: train-ai=maybe is neither y nor n; that key states nothing"]


def test_joined_tdm_reservations_that_differ_are_an_error() -> None:
    report = from_headers({"tdm-reservation": "1, 0"})
    assert report.errors == ["tdm-reservation sent 2 times with different values: 1, 0"]
    assert report.status((Purpose.DATA_MINING,)) == "error"


def test_malformed_pieces_are_noted() -> None:
    report = from_headers({"X-Robots-Tag": ":, :, ,;: -::, noai"})
    assert denied(report) == AI
    assert any("malformed" in n for n in report.notes)


def test_non_utf8_header_is_an_error_and_never_allowed() -> None:
    report = evaluate("https://e.com/a.jpg", site=EMPTY,
                      headers=[(b"X-Robots-Tag", b"no\xe9ai"), (b"Content-Usage", b"train-ai=y")])
    assert report.errors and "not UTF-8" in report.errors[0]
    assert report.status((Purpose.GENAI_TRAINING,)) == "error"
    assert not report.may_use(Purpose.GENAI_TRAINING)
    # an unrelated header's bad bytes are not ours to judge
    assert evaluate("https://e.com/a", site=EMPTY, headers=[(b"X-Other", b"\xff")]).errors == []


def test_too_many_headers_is_an_error() -> None:
    headers = [(f"X-F-{i}", "v") for i in range(5000)]
    report = evaluate("https://e.com/a.jpg", headers=headers, site=EMPTY)
    assert report.errors and "more than" in report.errors[0]
    assert report.status() == "error"


def test_x_robots_scoping_restated() -> None:
    found, _ = robots_directives(["googlebot: noindex, otherbot: noai, nofollow"], "otherbot")
    assert found == {"noai", "nofollow"}
    found, _ = robots_directives(["googlebot: noindex, otherbot: noai, nofollow"], "Mozilla/5.0 (compatible; OtherBot/2.1)")
    assert found == {"noai", "nofollow"}


def test_conflicting_headers_are_reported_and_resolved_by_precedence() -> None:
    report = from_headers([("Content-Usage", "train-ai=y"), ("X-Robots-Tag", "noai")], "https://e.com/x")
    assert states(report)["genai-training"] == NA
    assert any(c.startswith("genai-training:") for c in report.conflicts)


def test_a_site_given_in_part_lists_the_rest_as_unread() -> None:
    report = evaluate("https://e.com/a.jpg", headers={}, body=image_bytes("png"), site=Site(robots=b""))
    assert report.unread == ["tdmrep.json: not given"]
    full = evaluate("https://e.com/a.jpg", headers={}, body=image_bytes("png"), site=Site(robots=b"", tdmrep=b"[]"))
    assert full.unread == []


def test_from_headers_is_pure_and_lists_what_was_not_read() -> None:
    report = from_headers({"X-Robots-Tag": "noai"}, "https://e.com/x.jpg")
    assert report.status() == "notAllowed"
    assert any("robots.txt" in u for u in report.unread) and any("body" in u for u in report.unread)


# robots.txt -----------------------------------------------------------------------------------------

ROBOTS = b"""# a comment
User-agent: *
Disallow: /private/
Allow: /private/ok
Disallow: /*.gif$
Content-Usage: train-ai=n
Content-Usage: /open/ train-ai=y, search=y

User-agent: GPTBot
User-agent: CCBot
Disallow: /img/

User-agent: mybot
Disallow: /mine/
Content-Signal: search=yes, ai-train=no

User-agent: pctbot
Disallow: /caf\xc3\xa9/
Disallow: /a%20b
Disallow: /x%2Fy
"""


def site_states(path: str, agent: str = "rightsmeta", robots: bytes = ROBOTS) -> tuple[dict[str, str], list[str]]:
    report = evaluate("https://e.com" + path, headers={}, site=Site(robots=robots), user_agent=agent)
    return states(report), [s.carrier for s in report.signals]


def test_robots_disallow_for_our_group_reserves_everything_with_line() -> None:
    got, sources = site_states("/private/a.jpg")
    assert set(got.values()) == {NA}
    assert "robots.txt line 3 (user-agent *)" in sources


def test_robots_allow_longest_match_and_end_anchor() -> None:
    assert site_states("/private/ok.jpg")[0]["search"] == UN
    assert site_states("/x/anim.gif")[0]["search"] == NA
    assert site_states("/x/anim.gif?x=1")[0]["search"] == UN


def test_robots_named_ai_bots() -> None:
    got, sources = site_states("/img/a.jpg")
    # GPTBot and CCBot shut out of /img/: their uses are reserved; search is untouched
    assert got == {"data-mining": NA, "ai-training": NA, "genai-training": NA, "ai-inference": UN, "search": UN}
    assert "robots.txt line 11 (user-agent gptbot, ccbot)" in sources


def test_robots_content_usage_path_scope() -> None:
    assert site_states("/a.jpg")[0]["genai-training"] == NA   # Content-Usage: train-ai=n
    got = site_states("/open/a.jpg")[0]
    assert got["genai-training"] == AL and got["search"] == AL


def test_robots_content_usage_rules_of_one_path_combine() -> None:
    # aipref's attachment: rules with identical paths apply separately, disallow first. The last
    # alone decided: train-ai=y, and genai-training was allowed.
    robots = b"User-agent: *\nContent-Usage: / train-ai=n\nContent-Usage: / train-ai=y, search=y\n"
    got, sources = site_states("/a.jpg", robots=robots)
    assert got["genai-training"] == NA and got["search"] == AL
    assert {"robots.txt line 2", "robots.txt line 3"} <= set(sources)


def test_robots_content_usage_that_states_nothing_is_no_source() -> None:
    got, sources = site_states("/a.jpg", robots=b"User-agent: *\nContent-Usage: / train-ai=maybe\n")
    assert set(got.values()) == {UN} and sources == []


def test_robots_own_group_and_content_signal() -> None:
    got, _ = site_states("/mine/a.jpg", agent="MyBot/1.0")
    assert set(got.values()) == {NA}
    got, _ = site_states("/private/a.jpg", agent="MyBot/1.0")  # its own group: '*' rules do not apply
    assert got == {"data-mining": UN, "ai-training": NA, "genai-training": NA, "ai-inference": UN, "search": AL}


def test_robots_status_rules() -> None:
    url = "https://e.com/a.jpg"
    assert evaluate(url, headers={}, site=Site(robots=b"", robots_status=404)).status() == "unspecified"
    down = evaluate(url, headers={}, site=Site(robots=None, robots_status=503))
    assert set(states(down).values()) == {NA}
    gone = evaluate(url, headers={}, site=Site(robots_error="connection refused"))
    assert set(states(gone).values()) == {NA}


def test_robots_cap() -> None:
    big = b"User-agent: *\nDisallow: /secret\n" + b"# filler\n" * 200_000 + b"Disallow: /late\n"
    assert len(big) > robots_mod.MAX_BYTES
    assert site_states("/secret/a.jpg", robots=big)[0]["search"] == NA
    assert site_states("/late/a.jpg", robots=big)[0]["search"] == UN  # beyond the 512 KiB read


PROTEGO_CASES = [
    ("/private/a", "*"), ("/private/ok", "*"), ("/private/ok/deeper", "*"), ("/a.gif", "*"), ("/a.gifx", "*"),
    ("/img/x", "GPTBot"), ("/img/x", "ccbot"), ("/private/a", "gptbot"), ("/mine/a", "mybot"),
    ("/private/a", "mybot"), ("/", "*"), ("/robots.txt", "*"),
    ("/caf%C3%A9/x", "pctbot"), ("/café/x", "pctbot"), ("/a%20b", "pctbot"), ("/a%20bc", "pctbot"),
    ("/x%2Fy", "pctbot"), ("/x/y", "pctbot"),
    # A crawler's full User-Agent string, named as Googlebot and bingbot name themselves: its own group applies.
    ("/mine/a", "Mozilla/5.0 (compatible; MyBot/1.0; +https://mybot.example)"),
    ("/private/a", "Mozilla/5.0 (compatible; MyBot/1.0; +https://mybot.example)"),
]


@pytest.mark.parametrize(("path", "agent"), PROTEGO_CASES)
def test_robots_matching_agrees_with_protego(path: str, agent: str) -> None:
    protego = pytest.importorskip("protego")
    theirs = protego.Protego.parse(ROBOTS.decode()).can_fetch("https://e.com" + path, agent)
    parsed = robots_mod.parse(ROBOTS)
    rule = robots_mod.decide_path(parsed.select(agent), robots_mod.normalise(path))
    ours = path == "/robots.txt" or rule is None or rule.allow
    assert ours == theirs


# Files whose groups crawlers read more widely than the RFC's grammar: typos of the keys that
# Google's parser and protego accept, and site-wide lines between a group's user-agent lines.
GROUPING = {
    "typo-user agent": b"User agent: GPTBot\nDisallow: /\n",
    "typo-useragent": b"Useragent: mybot\nDisallow: /\n",
    "typo-disalow": b"User-agent: GPTBot\nDisalow: /\n",
    "typo-dissallow": b"User-agent: mybot\nDissallow: /img/\n",
    "host-between-agents": b"User-agent: mybot\nHost: e.com\nUser-agent: GPTBot\nDisallow: /\n",
    "sitemap-between-agents": b"User-agent: mybot\nSitemap: https://e.com/s.xml\nUser-agent: GPTBot\nDisallow: /\n",
}
# Where protego starts a new group and Google's parser does not: the reading that shuts out more.
GOOGLE_GROUPING = [b"User-agent: mybot\nNoindex: /x\nUser-agent: GPTBot\nDisallow: /\n",
                   b"User-agent: mybot\nCrawl-delay: 5\nUser-agent: GPTBot\nDisallow: /\n"]


@pytest.mark.parametrize("name", list(GROUPING))
@pytest.mark.parametrize("agent", ["MyBot/1.0", "GPTBot", "rightsmeta"])
def test_robots_groups_agree_with_protego(name: str, agent: str) -> None:
    protego = pytest.importorskip("protego")
    parsed = robots_mod.parse(GROUPING[name])
    for path in ("/", "/img/a.jpg"):
        theirs = protego.Protego.parse(GROUPING[name].decode()).can_fetch("https://e.com" + path, agent)
        rule = robots_mod.decide_path(parsed.select(agent), path)
        assert (rule is None or rule.allow) == theirs, (path, [(g.agents, g.rules) for g in parsed.groups])


@pytest.mark.parametrize("robots", GOOGLE_GROUPING)
def test_robots_lines_between_user_agents_do_not_split_the_group(robots: bytes) -> None:
    assert set(site_states("/a.jpg", agent="MyBot/1.0", robots=robots)[0].values()) == {NA}


@pytest.mark.parametrize(("robots", "purpose"), [
    # Read as one group, GPTBot took "friendly"'s train-ai=y and was allowed; its own rule-less
    # group (protego's reading) leaves it the "*" group's train-ai=n.
    (b"User-agent: *\nContent-Usage: train-ai=n\n\nUser-agent: GPTBot\nCrawl-delay: 1\n\n"
     b"User-agent: friendly\nContent-Usage: train-ai=y\n", "genai-training"),
    # Read as one group, GPTBot's second group took "friendly"'s Allow: / against its own Disallow: /.
    (b"User-agent: GPTBot\nDisallow: /\n\nUser-agent: GPTBot\nCrawl-delay: 1\n\nUser-agent: friendly\nAllow: /\n",
     "ai-training"),
])
def test_lines_between_user_agents_are_read_both_ways_and_the_stricter_wins(robots: bytes, purpose: str) -> None:
    # Found in review: the one grouping that shuts out more in some files shuts out less in others.
    assert site_states("/a.jpg", agent="GPTBot", robots=robots)[0][purpose] == NA
    protego = pytest.importorskip("protego")
    if purpose == "ai-training":
        assert not protego.Protego.parse(robots.decode()).can_fetch("https://e.com/a.jpg", "GPTBot")
        assert forbidden(Site(robots=robots), "https://e.com/a.jpg", "GPTBot") is not None


def test_a_typo_in_gptbot_group_still_reserves_its_uses() -> None:
    got, sources = site_states("/a.jpg", robots=GROUPING["typo-user agent"])
    assert got["genai-training"] == NA and "robots.txt line 2 (user-agent gptbot)" in sources


# tdmrep.json ----------------------------------------------------------------------------------------

TDM = b"""[
 {"location": "/books/*", "tdm-reservation": 1, "tdm-policy": "https://e.com/policy.json"},
 {"location": "/books/free/*", "tdm-reservation": 0},
 {"location": "/books/free/closed.pdf", "tdm-reservation": 1}
]"""


@pytest.mark.parametrize(("path", "expected"), [
    ("/books/a.pdf", CO), ("/books/free/a.pdf", AL), ("/books/free/closed.pdf", NA), ("/other.pdf", UN),
])
def test_tdmrep_json_most_specific_wins(path: str, expected: str) -> None:
    report = evaluate("https://e.com" + path, headers={}, site=Site(robots=b"", tdmrep=TDM))
    assert states(report)["data-mining"] == expected
    assert report.errors == []


@pytest.mark.parametrize("bad", [b"{not json", b'{"location": "/"}', b'[{"tdm-reservation": 1}]', b"[" * 100_000])
def test_malformed_tdmrep_json_is_an_error(bad: bytes) -> None:
    report = evaluate("https://e.com/a.pdf", headers={"Content-Usage": "train-ai=y"}, site=Site(robots=b"", tdmrep=bad))
    assert report.errors and "tdmrep.json" in report.errors[0]
    assert report.status() == "error" and not report.may_use(Purpose.GENAI_TRAINING)


def test_tdmrep_json_rules_as_specific_that_disagree_are_an_error() -> None:
    # Two rules for /books/*, 0 then 1: the first was taken alone, and data mining was allowed.
    tdm = b"""[{"location": "/books/*", "tdm-reservation": 0}, {"location": "/books/*", "tdm-reservation": 1},
              {"location": "/books/free/a.pdf", "tdm-reservation": 0}]"""
    report = evaluate("https://e.com/books/a.pdf", headers={}, site=Site(robots=b"", tdmrep=tdm))
    assert report.status((Purpose.DATA_MINING,)) == "error"
    assert report.errors == ["tdmrep.json rules 0 (/books/*) and 1 (/books/*) match as specifically and disagree"]
    # a more specific rule still decides alone
    free = evaluate("https://e.com/books/free/a.pdf", headers={}, site=Site(robots=b"", tdmrep=tdm))
    assert free.status((Purpose.DATA_MINING,)) == "allowed" and free.errors == []


def test_tdmrep_json_soft_404_is_absent_and_paths_compare_encoded() -> None:
    soft = evaluate("https://e.com/a.pdf", headers={}, site=Site(robots=b"", tdmrep=b"<!DOCTYPE html><title>Not found</title>"))
    assert soft.errors == [] and any("soft 404" in n for n in soft.notes)
    tdm = b'[{"location": "/b\xc3\xbccher/*", "tdm-reservation": 1}]'
    report = evaluate("https://e.com/b%C3%BCcher/a.pdf", headers={}, site=Site(robots=b"", tdmrep=tdm))
    assert states(report)["data-mining"] == NA


def test_tdmrep_json_location_as_a_whole_url_is_its_path() -> None:
    # Read as a path, "https://e.com/books/*" matched nothing: the reservation was dropped (unspecified).
    tdm = b'[{"location": "https://e.com/books/*", "tdm-reservation": 1}, {"location": "HTTP://E.COM", "tdm-reservation": 0}]'
    assert states(evaluate("https://e.com/books/a.pdf", headers={}, site=Site(robots=b"", tdmrep=tdm)))["data-mining"] == NA
    assert states(evaluate("https://e.com/a.pdf", headers={}, site=Site(robots=b"", tdmrep=tdm)))["data-mining"] == AL


def test_tdmrep_json_location_on_another_site_is_ignored_with_a_note() -> None:
    # TDMRep: a location is a pattern of paths on the server whose tdmrep.json it is. A rule naming
    # another site's URL that allows is not taken for this site (found in QA); one that reserves
    # is, with a note: www.example.com's rule read for example.com must not lift its reservation.
    tdm = (b'[{"location": "https://other.example/*", "tdm-reservation": 1},'
           b' {"location": "https://E.com:443/open/*", "tdm-reservation": 0}]')
    report = evaluate("https://e.com/a.pdf", headers={}, site=Site(robots=b"", tdmrep=tdm))
    assert states(report)["data-mining"] == NA and report.errors == []
    assert any("rule 0" in n and "other.example" in n and "applied" in n for n in report.notes), report.notes
    alias = b'[{"location": "https://www.e.com/img/*", "tdm-reservation": 1}]'
    report = evaluate("https://e.com/img/a.jpg", headers={}, site=Site(robots=b"", tdmrep=alias))
    assert states(report)["data-mining"] == NA
    own = evaluate("https://e.com/open/a.pdf", headers={}, site=Site(robots=b"", tdmrep=tdm))
    assert states(own)["data-mining"] == AL and not any("rule 1" in n for n in own.notes)
    elsewhere = evaluate("https://other.example/a.pdf", headers={}, site=Site(robots=b"", tdmrep=tdm))
    assert states(elsewhere)["data-mining"] == NA  # the same file served by the site it names: applied
    port = evaluate("https://e.com:8443/open/a.pdf", headers={}, site=Site(robots=b"", tdmrep=tdm))
    assert states(port)["data-mining"] == NA and any("rule 1" in n and "ignored" in n for n in port.notes)  # rule 0 reserves


def test_tdmrep_json_bad_value_in_matching_rule_is_an_error() -> None:
    report = evaluate("https://e.com/a.pdf", headers={}, site=Site(robots=b"", tdmrep=b'[{"location": "/", "tdm-reservation": 2}]'))
    assert report.status() == "error"


# HTML -------------------------------------------------------------------------------------------

PAGE = b"""<!doctype html><html><head><title>x</title>
<meta name="robots" content="noai, noimageai">
<meta name="tdm-reservation" content="1"><meta name="tdm-policy" content="https://e.com/p">
</head><body><meta name="robots" content="noindex"><img src="a.jpg"></body></html>"""


def test_page_meta_applies_to_a_file_found_on_it() -> None:
    report = evaluate("https://e.com/a.jpg", headers={}, site=EMPTY, page=PAGE)
    got = states(report)
    assert got["data-mining"] == CO and {got[p] for p in AI} == {NA}
    assert got["search"] == UN  # the meta after <body> is not a head element: not read


def test_html_body_is_read_as_a_page() -> None:
    report = evaluate("https://e.com/page.html", headers={}, site=EMPTY, body=PAGE)
    assert {states(report)[p] for p in AI} == {NA}
    assert report.embedded is None
    commented = b"<!-- generated -->\n" + PAGE.split(b">", 1)[1]  # no doctype: known by its Content-Type
    report = evaluate("https://e.com/p", headers={"Content-Type": "text/html; charset=utf-8"}, site=EMPTY, body=commented)
    assert {states(report)[p] for p in AI} == {NA}


# Embedded carriers and the whole decision ---------------------------------------------------------

def test_embedded_carriers_from_the_body() -> None:
    tagged = tag_bytes(image_bytes("jpeg"), Assertion.build(deny=["ai"]))
    report = evaluate("https://e.com/a.jpg", headers={}, site=EMPTY, body=tagged)
    assert denied(report) == AI
    assert report.embedded is not None and report.embedded.format == "jpeg"
    plain = evaluate("https://e.com/a.jpg", headers={}, site=EMPTY, body=image_bytes("jpeg"))
    assert plain.status() == "unspecified" and plain.unread == ["tdmrep.json: not given"]


def test_body_allowed_but_header_says_no_is_a_conflict() -> None:
    allowed = tag_bytes(image_bytes("png"), Assertion.build(allow=["all"]))
    report = evaluate("https://e.com/a.png", headers={"X-Robots-Tag": "noai"}, site=EMPTY, body=allowed)
    assert states(report)["ai-training"] == NA and states(report)["search"] == AL
    assert any("ai-training" in c and "body" in c for c in report.conflicts)
    only = evaluate("https://e.com/a.png", headers={}, site=EMPTY, body=allowed)
    assert only.status() == "allowed"


def test_broken_body_fails_closed() -> None:
    broken = image_bytes("png")[:40]
    report = evaluate("https://e.com/a.png", headers={"Content-Usage": "train-ai=y"}, site=EMPTY, body=broken)
    assert report.errors and report.errors[0].startswith("body:")
    assert report.status() == "error"


def test_check_with_everything_given_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network used")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    report = check("https://e.com/a.jpg", headers={"X-Robots-Tag": "noai"}, site=EMPTY, user_agent="x")
    assert report.status() == "notAllowed"


def test_robots_paths_compare_percent_encoded() -> None:
    assert robots_mod.normalise("/caf\u00e9/a b") == "/caf%C3%A9/a%20b"
    assert robots_mod.normalise("/%7Euser/x%2fy") == "/~user/x%2Fy"


def test_robots_hostile_patterns_stay_fast() -> None:
    import time

    robots = ("User-agent: *\nDisallow: /" + "*a" * 40 + "*b$\n").encode()
    start = time.monotonic()
    got = site_states("/" + "a" * 2000, robots=robots)[0]
    assert time.monotonic() - start < 1.0
    assert got["search"] == UN
    assert site_states("/" + "a" * 100 + "b", robots=robots)[0]["search"] == NA


@pytest.mark.parametrize(("pattern", "path", "expected"), [
    ("/fish", "/fish.html", True), ("/fish", "/Fish", False), ("/fish*", "/fishheads/x", True),
    ("/*.php", "/index.php", True), ("/*.php", "/x/y.php?a=1", True), ("/*.php$", "/x.php?a", False),
    ("/*.php$", "/x.php", True), ("/fish*.php", "/fishheads/catfish.php?p", True), ("/fish*.php", "/Fish.PHP", False),
    ("/a*b*c", "/aXbYc/z", True), ("/a*b*c$", "/aXbYcZ", False), ("/$", "/", True), ("/$", "/x", False),
])
def test_robots_patterns_as_rfc_9309_and_google_document_them(pattern: str, path: str, expected: bool) -> None:
    assert robots_mod.matches(pattern, path) is expected


def test_robots_equal_length_allow_wins_as_rfc_9309_says() -> None:
    robots = b"User-agent: *\nDisallow: /tie\nAllow: /tie\nDisallow: /t*e\n"
    assert site_states("/tie.jpg", robots=robots)[0]["search"] == UN
    protego = pytest.importorskip("protego")
    assert protego.Protego.parse(robots.decode()).can_fetch("https://e.com/tie.jpg", "x")


def test_the_pure_decision_imports_no_http_client() -> None:
    import subprocess
    import sys

    code = ("import sys; from rightsmeta import web; web.from_headers({'X-Robots-Tag': 'noai'}); "
            "print(sorted(m for m in ('aiohttp', 'httpx', 'rightsmeta.web.fetch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# Untrusted input never escapes as an exception ----------------------------------------------------

_TEXT = st.text(alphabet=st.sampled_from(list("abnoi:,; -=*/$#\n\t\"[]{}01yY") + ["\u00e9", "\x00"]), max_size=120)


@settings(max_examples=150, deadline=None)
@given(robots=_TEXT, tdm=_TEXT, robots_header=_TEXT, usage=_TEXT, tdm_header=_TEXT, page=_TEXT, path=_TEXT)
def test_any_input_gives_a_report_never_an_exception(
    robots: str, tdm: str, robots_header: str, usage: str, tdm_header: str, page: str, path: str,
) -> None:
    report = evaluate(
        "https://e.com/" + path.replace("\n", ""),
        headers=[("X-Robots-Tag", robots_header), ("Content-Usage", usage), ("tdm-reservation", tdm_header)],
        site=Site(robots=robots.encode(), tdmrep=tdm.encode()), page="<head>" + page, user_agent="mybot",
    )
    report.to_json()
    if report.errors:
        assert report.status() == "error" and not report.may_use(Purpose.AI_TRAINING)


def test_reports_match_the_json_schema() -> None:
    import json
    from pathlib import Path

    from jsonschema import Draft202012Validator

    schema = json.loads((Path(__file__).resolve().parent.parent / "schemas" / "check-report.schema.json").read_text())
    tagged = tag_bytes(image_bytes("jpeg"), Assertion.build(deny=["ai"], constrain={"search": "https://e.com/terms"}))
    reports = [
        evaluate("https://e.com/img/a.jpg", headers=[(b"X-Robots-Tag", b"noai"), (b"Content-Usage", b"train-ai=y, search=y"),
                                                 ("tdm-reservation", "1"), ("tdm-policy", "https://e.com/p")],
                 site=Site(robots=ROBOTS, tdmrep=TDM), page=PAGE, body=tagged, user_agent="mybot"),
        evaluate("https://e.com/private/x", headers=[(b"X-Robots-Tag", b"\xff")], site=Site(robots_error="refused")),
        evaluate("https://e.com/books/a.pdf", headers={}, site=Site(robots=b"", tdmrep=b"{bad")),
        from_headers({"Content-Usage": "bots=n"}),
    ]
    rows = [r.to_json() for r in reports]
    Draft202012Validator(schema).validate(rows)
    assert {s["vocabulary"] for s in rows[0]["sources"]} >= {"robots", "aipref", "tdmrep", "robots-ai-bot", "embedded"}
    assert [r["status"] for r in rows] == ["notAllowed", "error", "error", "notAllowed"]


def test_file_and_web_reports_share_one_fail_closed_decision() -> None:
    from rightsmeta.decide import Decision
    from rightsmeta.model import Permission
    from rightsmeta.report import Decided, FileReport
    from rightsmeta.web import WebReport

    every = dict.fromkeys(Purpose, Permission(State.ALLOWED))
    allowed = Decision(permissions=every, effective=every)
    for cls in (FileReport, WebReport):
        assert issubclass(cls, Decided) and cls.may_use is Decided.may_use
        report = cls("x", decision=allowed)
        assert report.may_use(Purpose.GENAI_TRAINING) and report.permissions[Purpose.SEARCH].state is State.ALLOWED
        report.errors.append("could not read something")
        assert not report.may_use(Purpose.GENAI_TRAINING)


def test_robots_after_a_byte_order_mark_still_apply() -> None:
    # Saved by a Windows editor: the BOM hid the first User-agent line, its Disallow belonged to
    # no group, and a site closed to every crawler was read as saying nothing (fail open).
    got, sources = site_states("/a.jpg", robots=b"\xef\xbb\xbfUser-agent: *\nDisallow: /\n")
    assert set(got.values()) == {NA}
    assert "robots.txt line 2 (user-agent *)" in sources


@pytest.mark.parametrize("bom, codec", [(b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"), (b"\xef\xbb\xbf", "utf-8")])
def test_a_page_is_decoded_by_its_byte_order_mark(bom: bytes, codec: str) -> None:
    # A UTF-16 page was read as UTF-8 (a NUL between letters): none of its meta elements was seen,
    # and its noai and tdm-reservation read as unspecified (fail open). A UTF-8 BOM hid the doctype
    # of a body served without a Content-Type, which was then not read as a page at all.
    page = bom + PAGE.decode().encode(codec)
    for report in (evaluate("https://e.com/a.jpg", headers={}, site=EMPTY, page=page),
                   evaluate("https://e.com/p", headers={}, site=EMPTY, body=page)):
        got = states(report)
        assert got["data-mining"] == CO and {got[p] for p in AI} == {NA}, report.to_json()
