"""The creators' page (issue 16) in a real browser: Debian's Chromium driven by Playwright (no
browser download), against the real server; the downloaded files are judged by ExifTool and
rightsmeta, their essence compared with the originals."""

from __future__ import annotations

import os
import re
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rightsmeta import keys

playwright = pytest.importorskip("playwright.sync_api")

import rightsmeta  # noqa: E402
from rightsmeta.fingerprint import essence  # noqa: E402
from tests.samples import exiftool_json, image_bytes  # noqa: E402
from tests.test_documents import pdf_bytes  # noqa: E402
from tests.test_serve import Server, _start  # noqa: E402

# Where to keep screenshots for the README (docs/ui.png was made so); unset, they stay in the test's folder.
SHOTS = Path(os.environ.get("RIGHTSMETA_SCREENSHOTS", "/nonexistent"))

# Every control has an accessible name; every visible text has WCAG AA contrast with its background.
A11Y = """() => {
  const problems = [];
  for (const el of document.querySelectorAll("input, select, button, [role=tab]")) {
    if (el.offsetParent === null) continue;
    const named = (el.labels && el.labels.length) || el.getAttribute("aria-label") || (el.tagName === "BUTTON" && el.textContent.trim());
    if (!named) problems.push("unlabelled " + el.tagName + "#" + el.id);
  }
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => { const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const background = (el) => { for (let e = el; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] > 0.9)) return c.slice(0, 3); } return [255, 255, 255]; };
  for (const el of document.querySelectorAll("body *")) {
    if (el.offsetParent === null || ![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const a = lum(rgb(getComputedStyle(el).color).slice(0, 3)), b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) problems.push(`contrast ${ratio.toFixed(2)} on ${el.tagName}: ${el.textContent.trim().slice(0, 40)}`);
  }
  if (!document.querySelector("[role=tablist]") || !document.querySelector("[role=tabpanel]")) problems.push("no tab roles");
  return problems;
}"""


# Controls smaller than 24 x 24 CSS px (WCAG 2.2 target size); a radio button's target is its label, which wraps it.
SMALL_TARGETS = """() => [...document.querySelectorAll("button, a, summary, select, input:not([type=file])")]
  .filter((el) => el.offsetParent !== null)
  .map((el) => [el, (el.type === "radio" ? el.closest("label") : el).getBoundingClientRect()])
  .filter(([, box]) => box.width < 24 || box.height < 24)
  .map(([el, box]) => `${el.tagName} ${el.id || el.textContent.trim().slice(0, 30)}: ${Math.round(box.width)} x ${Math.round(box.height)}`)"""

# Developers' words a creator would not know (the plain wording keeps "(C2PA)" and "(XMP)" in capitals).
JARGON = re.compile(r"\b(c2pa|xmp|exif|id3|signals?|manifest|carriers?|plus:\w+|notAllowed)\b")

# The run has ended (the summary says so only then; while it runs it counts progress).
DONE = r"/^\d+ tagged, \d+ failed\./.test(document.getElementById('summary').textContent)"
# Every added file has been read (its type is shown).
READ = "![...document.querySelectorAll('#list tbody td')].some(td => td.textContent === '...')"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("ui")
    keys.save_identity(keys.make_identity("UI Test"), folder / "identity")
    yield from _start(folder, "--ledger", str(folder / "ledger.sqlite3"), "--identity", str(folder / "identity"),
                      "--token-file", str(folder / "token"))


@pytest.fixture(scope="module")
def browser(chromium: list[str]) -> Iterator[Any]:
    """One Chromium for the module (starting it took 1 to 2 s per test); each test gets its own context."""
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium[0], args=chromium[2:])
        yield launched
        launched.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    # The tests wait on JavaScript expressions, which the page's CSP forbids; one test below runs without this.
    context = browser.new_context(accept_downloads=True, viewport={"width": 1000, "height": 900}, bypass_csp=True)
    yield context.new_page()
    context.close()


def _download_all(page: Any, path: Path) -> None:
    """The page's "Download all (zip)", saved at ``path``."""
    with page.expect_download() as download:
        page.get_by_role("link", name="Download all (zip)").click()
    download.value.save_as(path)


def _files(folder: Path, ffmpeg: str) -> dict[str, Path]:
    out = {"photo.jpg": image_bytes("jpeg", size=(200, 150)), "drawing.png": image_bytes("png", size=(120, 90), seed=5),
           "book.pdf": pdf_bytes(("A page of my novel, written by me.", "The second page of it."))}
    paths = {}
    for name, data in out.items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    paths["song.mp3"] = folder / "song.mp3"
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-ac", "1",
                    str(paths["song.mp3"])], check=True)
    return paths


def test_tag_download_zip_and_check(server: Server, page: Any, tmp_path: Path, ffmpeg: str, exiftool: str) -> None:
    originals = _files(tmp_path, ffmpeg)
    broken = tmp_path / "broken.jpg"  # a truncated JPEG: reported on its own line, the others still tagged
    whole = image_bytes("jpeg", size=(200, 150), seed=4)
    broken.write_bytes(whole[: len(whole) // 2])
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{server.url}/#token={server.token}")
    assert page.evaluate(A11Y) == []
    page.get_by_label("Choose files").set_input_files([str(p) for p in originals.values()] + [str(broken)])
    page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 5 && "
                           "![...document.querySelectorAll('#list tbody td')].some(td => td.textContent === '...')")
    assert "JPEG" in page.inner_text("#list") and "Nothing stated" in page.inner_text("#list")
    page.get_by_label("No AI training").check()
    assert page.get_by_label("Training AI models").input_value() == "notAllowed"
    assert "will also be signed" in page.inner_text("#signing")
    page.get_by_role("button", name="Tag files").click()
    page.wait_for_function(DONE)
    assert page.inner_text("#summary") == "4 tagged, 1 failed."
    broken_row = page.inner_text("#list tbody tr:last-child")
    assert "broken.jpg" in broken_row and "Failed: the file is cut short (an incomplete JPEG)" in broken_row
    # Its current statement is not "nothing" for sure: it said "Nothing stated. Could not be read fully".
    assert "\tNot known. Could not be read fully: the file is cut short (an incomplete JPEG)" in broken_row
    assert "Nothing stated" not in broken_row
    page.screenshot(path=str(tmp_path / "tagged.png"), full_page=True)
    if SHOTS.is_dir():
        page.set_viewport_size({"width": 900, "height": 700})
        page.screenshot(path=str(SHOTS / "ui.png"), full_page=True)
    assert page.evaluate(A11Y) == []

    with page.expect_download() as download:
        page.get_by_role("link", name="Download all (zip)").click()
    zipped = tmp_path / "tagged.zip"
    download.value.save_as(zipped)
    with zipfile.ZipFile(zipped) as archive:
        assert archive.testzip() is None
        tagged = {name: archive.read(name) for name in archive.namelist()}
    assert set(tagged) == set(originals)  # the broken file is not in it, all the others are
    for name, data in tagged.items():
        report = rightsmeta.read(data)
        assert report.permissions[rightsmeta.Purpose.AI_TRAINING].state is rightsmeta.State.NOT_ALLOWED, name
        assert report.permissions[rightsmeta.Purpose.AI_INFERENCE].state is rightsmeta.State.UNSPECIFIED, name
        fmt = report.format or ""
        assert essence(data, fmt).hash == essence(originals[name].read_bytes(), fmt).hash, name
    (tmp_path / "out.jpg").write_bytes(tagged["photo.jpg"])
    for name, data in tagged.items():  # ExifTool, the peer, reads the statement in each kind: JPEG, PNG, PDF, MP3
        (tmp_path / f"out-{name}").write_bytes(data)
        assert exiftool_json(exiftool, tmp_path / f"out-{name}")["XMP-plus:DataMining"] == "Prohibited for AI/ML training", name

    # Check: a copy of a tagged file with every tag removed, which the ledger knows.
    subprocess.run([exiftool, "-q", "-all=", "-o", str(tmp_path / "stripped.jpg"), str(tmp_path / "out.jpg")], check=True)
    page.get_by_role("tab", name="Check files").click()
    assert page.evaluate(A11Y) == []
    page.get_by_label("Select files to check").set_input_files(str(tmp_path / "stripped.jpg"))
    page.wait_for_selector(".verdict-status")
    assert page.get_attribute(".verdict-status", "data-status") == "stripped"
    assert not JARGON.search(page.inner_text("#verdict")), page.inner_text("#verdict")
    assert "it is a copy of a work in your records" in page.inner_text(".verdict-why")
    assert "Not allowed: training AI models" in page.inner_text("#verdict")
    assert page.inner_text(".verdict-carriers") == "Found in: no place inside the file."
    page.get_by_label("Select files to check").set_input_files(str(tmp_path / "out.jpg"))
    page.wait_for_function("document.querySelector('.verdict-status')?.dataset.status === 'intact'")
    assert "the file's embedded metadata (XMP)" in page.inner_text(".verdict-carriers")
    assert "the file's signed credentials (C2PA)" in page.inner_text(".verdict-carriers")
    # Said in plain words ("signals in c2pa, xmp" meant nothing to a creator); the server's words one click away.
    shown = page.inner_text("#verdict")
    assert not JARGON.search(shown), shown
    assert ("The statement was found in: the file's signed credentials (C2PA), the file's embedded metadata (XMP)."
            in page.inner_text(".verdict-why"))
    assert page.is_hidden(".verdict-technical")
    page.locator("#verdict summary").click()
    assert page.inner_text(".verdict-technical") == "signals in c2pa, xmp"
    page.screenshot(path=str(tmp_path / "check.png"), full_page=True)
    # Nothing loaded from elsewhere, and the token never travelled in an address.
    # No blob: addresses either: tagged files are never held in the page, the server streams each download.
    assert requested and all(u.startswith(server.url) for u in requested), requested
    assert not any(str(server.token) in u for u in requested)


def test_a_failing_file_does_not_stop_the_rest_and_phone_width_works(server: Server, page: Any, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.png", tmp_path / "my-notes-from-the-holiday-in-the-mountains-2026.txt"
    good.write_bytes(image_bytes("png"))
    bad.write_bytes(b"just some text, not media")
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(f"{server.url}/#token={server.token}")
    page.get_by_label("Choose files").set_input_files([str(bad), str(good)])
    page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 2")
    page.get_by_label("No AI at all: training and inference").check()
    page.get_by_role("button", name="Tag files").click()
    page.wait_for_function(DONE)
    assert page.inner_text("#summary") == "1 tagged, 1 failed."
    # This server signs, and each file's line says so.
    assert "Failed:" in page.inner_text("#list") and "Tagged and signed: download" in page.inner_text("#list")
    with page.expect_download() as download:  # one file, by its own link (streamed by the server)
        page.get_by_role("link", name="Download tagged good.png").click()
    one = tmp_path / "one.png"
    download.value.save_as(one)
    assert rightsmeta.read(one.read_bytes()).permissions[rightsmeta.Purpose.AI_INFERENCE].state is rightsmeta.State.NOT_ALLOWED
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")  # no sideways scrolling
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    # Each file a block of labelled lines (four columns at 360 px broke words mid-way).
    assert page.evaluate("getComputedStyle(document.querySelector('#list td')).display") == "block"
    assert page.evaluate("document.querySelector('#list tbody td:nth-child(4)').dataset.label") == "Result"
    assert page.evaluate(A11Y) == []
    # Every target a thumb must hit is at least 24 px a side (WCAG 2.2, 2.5.8): a file's download link was 19 px high.
    assert page.evaluate(SMALL_TARGETS) == []
    # Keyboard: the tabs move with the arrow keys.
    page.get_by_role("tab", name="Tag files").focus()
    page.keyboard.press("ArrowRight")
    assert page.get_attribute("#tab-check", "aria-selected") == "true" and page.is_visible("#check-file")
    # A file dropped on the Check view is checked (a real drop event carrying the tagged PNG).
    page.evaluate("""(bytes) => {
        const data = new DataTransfer();
        data.items.add(new File([new Uint8Array(bytes)], "one.png", {type: "image/png"}));
        document.getElementById("check-drop").dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
    }""", list(one.read_bytes()))
    page.wait_for_function("document.querySelector('.verdict-status')?.dataset.status === 'intact'")
    assert "the file's signed credentials (C2PA)" in page.inner_text(".verdict-carriers")
    assert page.evaluate(A11Y) == []


def test_without_the_token_tagging_fails_with_a_reason(server: Server, page: Any, tmp_path: Path) -> None:
    photo = tmp_path / "p.png"
    photo.write_bytes(image_bytes("png", seed=9))
    page.goto(server.url + "/")
    assert page.is_visible("#token")
    page.get_by_label("Choose files").set_input_files(str(photo))
    page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 1")
    page.get_by_role("button", name="Tag files").click()
    page.wait_for_function(DONE)
    assert "0 tagged, 1 failed." == page.inner_text("#summary")
    # Which token and where it goes ("send 'Authorization: Bearer <token>'" was for programs).
    assert ("Failed: this server asks for its access token: paste it in \u201cAccess token of this server\u201d below"
            in page.inner_text("#list")) and not JARGON.search(page.inner_text("#list"))
    assert "Bearer" not in page.inner_text("#list")
    page.get_by_label("Access token of this server").fill("not-the-token")
    page.get_by_role("button", name="Tag files").click()
    page.locator("#list", has_text="the access token given is not this server's").wait_for()
    page.get_by_label("Access token of this server").fill(str(server.token))
    page.get_by_role("button", name="Tag files").click()
    page.locator("#summary", has_text="1 tagged, 0 failed.").wait_for()


def test_the_accessibility_check_sees_problems(page: Any) -> None:
    """The check above is not vacuous: an unlabelled field and grey-on-white text are caught."""
    page.set_content('<main><input id="x"><p style="color:#bbb">faint text</p><button>Fine</button></main>')
    problems = page.evaluate(A11Y)
    assert any("unlabelled INPUT#x" in p for p in problems) and any("faint text" in p for p in problems)


def test_one_button_makes_a_signing_identity(tmp_path_factory: pytest.TempPathFactory, page: Any, tmp_path: Path) -> None:
    import stat

    import httpx

    folder = tmp_path_factory.mktemp("no-identity")
    for server in _start(folder, "--ledger", str(folder / "ledger.sqlite3"), "--identity", str(folder / "identity"),
                         "--token-file", str(folder / "token")):
        page.goto(f"{server.url}/#token={server.token}")
        page.wait_for_function("document.getElementById('signing').textContent.includes('not be signed')")
        assert page.evaluate(A11Y) == []
        # A GIF takes the statement only in a signed credential: its failure says how to get one (it said
        # "a signed C2PA manifest can carry the signal" and no more), and once made, it is tagged and signed.
        gif = tmp_path / "loop.gif"
        gif.write_bytes(image_bytes("gif", size=(40, 30), seed=12))
        page.get_by_label("Choose files").set_input_files(str(gif))
        page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 1 && " + READ)
        page.get_by_role("button", name="Tag files").click()
        page.wait_for_function(DONE)
        assert page.inner_text("#list tbody td:nth-child(4)").startswith(
            "Failed: GIF files can hold the statement only in signed credentials (C2PA). "
            "Press \u201cCreate a signing identity\u201d above, then Tag files again."), page.inner_text("#list")
        page.get_by_label("Your name").fill("Ada Lovelace")
        page.get_by_role("button", name="Create a signing identity").click()
        page.wait_for_function("document.getElementById('signing').textContent.includes('will also be signed')")
        assert page.is_hidden("#make-identity-box")
        key = folder / "identity" / "signer.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        photo = tmp_path / "p.png"
        photo.write_bytes(image_bytes("png", seed=11))
        page.get_by_label("Choose files").set_input_files(str(photo))
        page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 2 && " + READ)
        page.get_by_role("button", name="Tag files").click()  # the first run's summary stays until this run's batch is made
        page.wait_for_function("document.getElementById('summary').textContent === '2 tagged, 0 failed.'")
        with page.expect_download() as download:
            page.get_by_role("link", name="Download tagged loop.gif").click()
        signed = rightsmeta.read(Path(download.value.path()).read_bytes())
        assert signed.permissions[rightsmeta.Purpose.AI_TRAINING].state is rightsmeta.State.NOT_ALLOWED
        assert "c2pa" in [c.name for c in signed.carriers]
        with httpx.Client(base_url=server.url) as http:
            again = http.post("/v1/identity", headers=server.auth, json={"holder": "Mallory"})
            assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
            tagged = http.post("/v1/tag", headers=server.auth, files={"file": ("p.png", photo.read_bytes())},
                               data={"assertion": '{"permissions": {"ai-training": "notAllowed"}}'})
        manifest = next(c for c in rightsmeta.read(tagged.content).carriers if c.name == "c2pa")
        assert manifest.values["validation_state"] == "Valid" and "Ada Lovelace" in str(manifest.values["signer"])


def test_licence_is_asked_for_drop_keyboard_and_nothing_blocked(server: Server, browser: Any, tmp_path: Path) -> None:
    """Under the page's own Content-Security-Policy (no bypass): waits are locators, not JavaScript strings."""
    page = browser.new_context(accept_downloads=True).new_page()
    done = page.locator("#summary", has_text=re.compile(r"^\d+ tagged, \d+ failed\.$"))
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    answer = page.goto(f"{server.url}/#token={server.token}")
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'sha256-" in policy and "unsafe-inline" not in policy
    # A file dropped on the drop area (a real drop event carrying a real PNG) is listed like a chosen one.
    png = image_bytes("png", size=(64, 48), seed=21)
    page.evaluate("""(bytes) => {
        const data = new DataTransfer();
        data.items.add(new File([new Uint8Array(bytes)], "dropped.png", {type: "image/png"}));
        document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
    }""", list(png))
    page.locator("#list tbody td:nth-child(2)", has_text="PNG").wait_for()
    assert "dropped.png" in page.inner_text("#list")
    # "Allowed under my licence" without the licence's address: asked for, nothing tagged.
    page.get_by_label("Allowed under my licence", exact=True).check()
    assert page.is_visible("#licence")
    page.get_by_role("button", name="Tag files").click()
    assert "web address of your licence" in page.inner_text("#licence-error")
    assert page.evaluate("document.activeElement.id") == "licence" and page.inner_text("#summary") == ""
    assert page.evaluate(A11Y) == []
    page.get_by_label("Web address of your licence").fill("https://example.com/ai-licence")
    page.keyboard.press("Tab")
    page.get_by_role("button", name="Tag files").focus()
    page.keyboard.press("Enter")  # the keyboard alone starts the run
    done.wait_for()
    assert page.inner_text("#summary") == "1 tagged, 0 failed." and page.inner_text("#licence-error") == ""
    # Focus is back on the button pressed (disabled during the run, it had dropped to the page's body,
    # where a screen reader starts again from the top).
    assert page.evaluate("document.activeElement.id") == "go"
    page.keyboard.press("Tab")  # from "Tag files" to the zip's link, and Enter downloads it (under the page's CSP)
    assert page.evaluate("document.activeElement.id") == "zip"
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    download.value.save_as(tmp_path / "all.zip")
    with zipfile.ZipFile(tmp_path / "all.zip") as archive:
        assert archive.namelist() == ["dropped.png"]
    with page.expect_download() as download:
        page.get_by_role("link", name="Download tagged dropped.png").click()
    out = tmp_path / "out.png"
    download.value.save_as(out)
    training = rightsmeta.read(out.read_bytes()).permissions[rightsmeta.Purpose.AI_TRAINING]
    assert training.state is rightsmeta.State.CONSTRAINED and "https://example.com/ai-licence" in str(training)
    # A per-use choice of "Allowed under my licence" asks for the licence too.
    page.get_by_label("No AI training").check()
    assert page.is_hidden("#licence")
    page.get_by_label("Search engine indexing").select_option("constrained")
    assert page.is_visible("#licence") and page.is_checked("input[value=custom]")
    # Home and End move between the tabs as well as the arrows.
    page.get_by_role("tab", name="Tag files").focus()
    page.keyboard.press("End")
    assert page.get_attribute("#tab-check", "aria-selected") == "true"
    page.keyboard.press("Home")
    assert page.get_attribute("#tab-tag", "aria-selected") == "true"
    assert not [c for c in console if c.startswith("error")], console


def test_a_chosen_folder_keeps_its_layout_in_the_zip(server: Server, page: Any, tmp_path: Path) -> None:
    folder = tmp_path / "holiday"
    (folder / "day two").mkdir(parents=True)
    (folder / "beach.png").write_bytes(image_bytes("png", seed=31))
    (folder / "day two" / "hill.jpg").write_bytes(image_bytes("jpeg", seed=32))
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden files are left out
    (tmp_path / ".cover.png").write_bytes(image_bytes("png", seed=33))  # but not one the creator chose by itself
    page.goto(f"{server.url}/#token={server.token}")
    page.get_by_label("Choose a folder").set_input_files(str(folder))
    page.get_by_label("Choose files").set_input_files(str(tmp_path / ".cover.png"))
    page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 3 && "
                           "![...document.querySelectorAll('#list tbody td')].some(td => td.textContent === '...')")
    page.get_by_role("button", name="Tag files").click()
    page.wait_for_function(DONE)
    assert page.inner_text("#summary") == "3 tagged, 0 failed."
    _download_all(page, tmp_path / "all.zip")
    with zipfile.ZipFile(tmp_path / "all.zip") as archive:
        assert sorted(archive.namelist()) == [".cover.png", "holiday/beach.png", "holiday/day two/hill.jpg"]
        hill = archive.read("holiday/day two/hill.jpg")
    assert rightsmeta.read(hill).permissions[rightsmeta.Purpose.AI_TRAINING].state is rightsmeta.State.NOT_ALLOWED

    # The batch gone (it expires after an hour unused; here deleted): a click says so on the page, where
    # the browser only listed a "canceled" download.
    import httpx

    batch = server.url + page.get_attribute("#zip", "href").removesuffix("/zip")
    assert httpx.delete(batch, headers=server.auth).status_code == 204
    downloads: list[Any] = []
    page.on("download", lambda d: downloads.append(d))
    page.get_by_role("link", name="Download tagged holiday/beach.png").click()
    page.wait_for_function("document.getElementById('summary').textContent.startsWith('The tagged copies are no longer')")
    assert page.inner_text("#list tbody tr:first-child td:nth-child(4)") == (
        "Failed: the tagged copy is no longer on the server: no such batch (batches expire after 60 minutes without use)")
    assert page.locator("#list a").count() == 0 and page.is_hidden("#zip") and downloads == []
    # A page left deletes its batch: nobody can reach it any more (it was kept an hour, one of 32).
    page.get_by_role("button", name="Tag files").click()
    page.wait_for_function(DONE)
    batch = server.url + page.get_attribute("#zip", "href").removesuffix("/zip")
    assert httpx.get(batch).status_code == 200
    page.reload()
    deadline = time.monotonic() + 10
    while httpx.get(batch).status_code != 404:
        assert time.monotonic() < deadline, "the left page's batch is still kept"
        time.sleep(0.1)


def test_a_dropped_folder_is_walked_and_keeps_its_layout(server: Server, page: Any, tmp_path: Path) -> None:
    """The page's folder walk over the File System entries a drop gives (Chromium's own File objects;
    the entry tree is built in the page, as a test cannot drag a folder from a desktop)."""
    page.goto(f"{server.url}/#token={server.token}")
    png = list(image_bytes("png", seed=41))
    page.evaluate("""async (bytes) => {
        const file = (name) => ({isFile: true, fullPath: "", file: (ok) => ok(new File([new Uint8Array(bytes)], name))});
        const folder = (path, children) => ({isFile: false, fullPath: path, createReader: () => {
            let given = false;  // readEntries answers in pieces and then with nothing
            return {readEntries: (ok) => { ok(given ? [] : children); given = true; }};
        }});
        const leaf = (path) => Object.assign(file(path.split("/").pop()), {fullPath: path});
        const root = folder("/album", [leaf("/album/cover.png"), folder("/album/inner", [leaf("/album/inner/back.png")]),
                                        folder("/album/.cache", [leaf("/album/.cache/thumb.png")])]);
        const out = [];
        await dropped(root, out);
        await addFiles(out);
    }""", png)
    page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 2 && "
                           "![...document.querySelectorAll('#list tbody td')].some(td => td.textContent === '...')")
    assert "album/inner/back.png" in page.inner_text("#list") and ".cache" not in page.inner_text("#list")
    page.get_by_role("button", name="Tag files").click()
    page.wait_for_function(DONE)
    _download_all(page, tmp_path / "all.zip")
    with zipfile.ZipFile(tmp_path / "all.zip") as archive:
        assert sorted(archive.namelist()) == ["album/cover.png", "album/inner/back.png"]


def _png_of_size(size: int) -> bytes:
    """A real PNG of exactly ``size`` bytes: noise pixels stored uncompressed, topped up by a text chunk."""
    import io
    import random

    from PIL import Image, PngImagePlugin

    picture = Image.frombytes("RGB", (590, 590), random.Random(5).randbytes(590 * 590 * 3))

    def encoded(pad: int) -> bytes:
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", "x" * pad)
        out = io.BytesIO()
        picture.save(out, "PNG", pnginfo=info, compress_level=0)
        return out.getvalue()

    data = encoded(size - len(encoded(0)))
    assert len(data) == size
    return data


def test_empty_huge_near_the_limit_same_names_unicode(tmp_path_factory: pytest.TempPathFactory, page: Any, tmp_path: Path,
                                                      exiftool: str) -> None:
    """A creator's odd handful against a server taking files up to 1 MiB: each refusal names the file
    and says why in words, a file just under the limit is tagged, two files named alike both reach the zip."""
    folder = tmp_path_factory.mktemp("limit")
    files = {"empty.jpg": b"", "too big.png": _png_of_size(2**20 + 1), "near the limit.png": _png_of_size(2**20 - 64),
             "Été à Noël 🎨.jpg": image_bytes("jpeg", size=(160, 120), seed=51, exif=True)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    for sub, seed in (("a", 52), ("b", 53)):  # the same name from two folders, chosen one after the other
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "same.png").write_bytes(image_bytes("png", seed=seed))
    for server in _start(folder, "--ledger", str(folder / "ledger.sqlite3"), "--token-file", str(folder / "token"),
                         "--max-upload-mb", "1"):
        page.goto(f"{server.url}/#token={server.token}")
        page.wait_for_function("!document.getElementById('signing').textContent.includes('Checking')")
        page.get_by_label("Choose files").set_input_files([str(tmp_path / name) for name in files])
        page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 4 && " + READ)
        for sub in ("a", "b"):
            page.get_by_label("Choose files").set_input_files(str(tmp_path / sub / "same.png"))
        page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 6 && " + READ)
        rows = page.locator("#list tbody tr")
        # Said before anything is sent, with the file's size and the server's limit (it said "the file 'file'
        # is empty" and "the body is 2097516 bytes", and called the PNG "not a supported file").
        assert rows.nth(0).inner_text().split("\t")[1:3] == ["-", "Not read: this file is empty (0 bytes): there is nothing in it"]
        assert rows.nth(1).inner_text().split("\t")[1:3] == [
            "-", "Not read: this file is too large (1.0 MB); this server takes files up to 1.0 MB (rightsmeta serve --max-upload-mb)"]
        assert rows.nth(2).inner_text().split("\t")[1:3] == ["PNG", "Nothing stated"]
        page.get_by_role("button", name="Tag files").click()
        page.wait_for_function(DONE)
        assert page.inner_text("#summary") == "4 tagged, 2 failed."
        assert "Failed: this file is empty (0 bytes)" in rows.nth(0).inner_text()
        assert "Failed: this file is too large (1.0 MB)" in rows.nth(1).inner_text()
        # One same.png is told apart (whichever was tagged second): the name it has in the zip and is saved under.
        assert sorted(rows.nth(n).inner_text().split("\t")[3] for n in (4, 5)) == [
            "Tagged: download", "Tagged: download (saved as same-2.png)"]
        with page.expect_download() as one:
            page.get_by_role("link", name="Download tagged same-2.png").click()
        assert one.value.suggested_filename == "same-2.png"
        _download_all(page, tmp_path / "all.zip")
        # Other clients of the same server: the refusals name the client's file, and a multipart file
        # part is held to the limit alone (the body may be larger by its form).
        import httpx

        statement = {"assertion": '{"permissions": {"ai-training": "notAllowed"}}'}
        with httpx.Client(base_url=server.url, headers=server.auth, timeout=60) as http:
            for name, detail in (("empty.jpg", "the file 'empty.jpg' is empty (0 bytes)"),
                                 ("too big.png", f"the file 'too big.png' is {2**20 + 1} bytes; at most {2**20} are accepted")):
                refused = http.post("/v1/tag", files={"file": (name, files[name])}, data=statement)
                assert refused.json()["detail"] == detail
            assert http.post("/v1/read", content=b"").json()["detail"] == "the upload is empty (0 bytes)"
            assert http.post("/v1/tag", files={"file": ("n.png", files["near the limit.png"])}, data=statement).status_code == 200
    with zipfile.ZipFile(tmp_path / "all.zip") as archive:
        assert sorted(archive.namelist()) == sorted(["near the limit.png", "Été à Noël 🎨.jpg", "same.png", "same-2.png"])
        archive.extractall(tmp_path / "out")
    assert (tmp_path / "out" / "same-2.png").read_bytes() != (tmp_path / "out" / "same.png").read_bytes()
    for name in archive.namelist():  # ExifTool, the peer, reads the statement back; the camera's fields stay
        found = exiftool_json(exiftool, tmp_path / "out" / name)
        assert found["XMP-plus:DataMining"] == "Prohibited for AI/ML training", name
    assert exiftool_json(exiftool, tmp_path / "out" / "Été à Noël 🎨.jpg")["IFD0:Make"] == "rightsmeta test camera"


def test_check_names_the_file_and_never_says_nothing_stated_of_a_file_it_could_not_read(server: Server, page: Any,
                                                                                       tmp_path: Path) -> None:
    """It said "Could not be read / What it says: Nothing stated / Found in: no place inside the file"
    for a truncated JPEG, without the file's name, and "the upload is empty" for an empty one."""
    whole = image_bytes("jpeg", size=(200, 150), seed=81)
    (tmp_path / "cut short.jpg").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "nothing.png").write_bytes(b"")
    page.goto(f"{server.url}/#token={server.token}")
    page.get_by_role("tab", name="Check files").click()
    for name, why in (("cut short.jpg", "The file is cut short (an incomplete JPEG)"), ("nothing.png", "this file is empty (0 bytes)")):
        page.get_by_label("Select files to check").set_input_files(str(tmp_path / name))
        page.wait_for_function(f"document.querySelector('.verdict-file')?.textContent === 'File: {name}'")
        assert page.get_attribute(".verdict-status", "data-status") == "unreadable"
        assert page.inner_text(".verdict-says") == "What it says: not known, the file could not be read."
        assert page.inner_text(".verdict-carriers") == "Found in: not known."
        assert why in page.inner_text("#verdict .verdict-why")
    assert page.evaluate(A11Y) == []


def test_a_server_stopped_mid_run_is_said_and_no_dead_link_is_offered(tmp_path_factory: pytest.TempPathFactory, page: Any,
                                                                     tmp_path: Path) -> None:
    """The server is stopped (SIGTERM, as Ctrl-C in its terminal) while two uploads are on their way:
    every file says what happened in words, no link to the copies the server removed is left, and
    files added during the run do not re-enable "Tag files" (a second run would delete the first's batch)."""
    import signal

    folder = tmp_path_factory.mktemp("stopped")
    paths = []
    for n in range(6):
        paths.append(tmp_path / f"photo {n}.png")
        paths[-1].write_bytes(image_bytes("png", seed=60 + n))
    late = tmp_path / "late.png"
    late.write_bytes(image_bytes("png", seed=70))
    held: list[Any] = []
    asked: list[str] = []
    passed = 0

    def hold(route: Any) -> None:  # the first two uploads go through; the next ones wait here, on their way
        nonlocal passed
        if passed < 2:
            passed += 1
            route.continue_()
        else:
            held.append(route)

    page.route(re.compile(r".*/v1/batches/[^/]+/files$"), hold)
    for server in _start(folder, "--ledger", str(folder / "ledger.sqlite3"), "--token-file", str(folder / "token")):
        page.goto(f"{server.url}/#token={server.token}")
        page.get_by_label("Choose files").set_input_files([str(p) for p in paths])
        page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 6 && " + READ)
        page.get_by_role("button", name="Tag files").click()
        page.wait_for_function("document.querySelectorAll('#list a[href*=\"/files/\"]').length === 2")
        while len(held) < 2:
            page.wait_for_timeout(50)
        # The live region says the run began, once; the count, outside it, is not read at each step.
        assert page.inner_text("#summary") == "Tagging 6 files..." and page.get_attribute("#progress", "aria-live") is None
        assert page.inner_text("#progress") == "Tagging: 2 of 6 done (2 tagged, 0 failed)."
        page.get_by_label("Choose files").set_input_files(str(late))
        page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 7 && " + READ)
        assert page.is_disabled("#go")  # addFiles enabled it while the run went on
        # Leaving the page now is asked about first (it left without a word).
        page.on("dialog", lambda dialog: (asked.append(dialog.type), dialog.dismiss()))
        page.evaluate("location.reload()")
        for _ in range(100):
            if asked:
                break
            page.wait_for_timeout(50)
        assert asked == ["beforeunload"] and page.locator("#list tbody tr").count() == 7
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(30)
        for route in held:
            route.continue_()
        page.wait_for_function(DONE)
    summary = page.inner_text("#summary")
    assert summary == ("0 tagged, 7 failed. The rightsmeta server stopped during the run. Start it again (rightsmeta ui) "
                       "and use the page it opens. Your own files are unchanged.")
    results = [page.locator("#list tbody tr").nth(n).locator("td").nth(3).inner_text() for n in range(7)]
    assert all(r.startswith("Failed: ") and "Failed to fetch" not in r for r in results), results
    assert results.count("Failed: it was tagged, but its copy went with the server when it stopped") == 2, results
    assert results.count("Failed: the rightsmeta server cannot be reached (was it stopped?)") == 2, results  # on their way
    assert results.count("Failed: not sent: the rightsmeta server cannot be reached (was it stopped?)") == 3, results
    assert page.locator("#list a").count() == 0 and page.is_hidden("#zip") and page.is_enabled("#go")
    assert page.evaluate(A11Y) == []
    page.get_by_role("button", name="Tag files").click()  # again, with the server still stopped: the same advice
    page.wait_for_function("document.getElementById('summary').textContent.startsWith('0 tagged, 7 failed. Start it again')")
    page.get_by_role("tab", name="Check files").click()  # it said "(Failed to fetch)"
    page.get_by_label("Select files to check").set_input_files(str(paths[0]))
    page.wait_for_function("document.querySelector('.verdict-file')?.textContent === 'File: photo 0.png'")
    assert page.inner_text("#verdict ul") == ("the rightsmeta server cannot be reached (was it stopped?). "
                                              "Start it again (rightsmeta ui) and use the page it opens. Your own files are unchanged.")


def test_two_tabs_at_once_keep_their_own_files(server: Server, page: Any, tmp_path: Path) -> None:
    """Two tabs of one browser tag at the same time: each zip holds its own files only, and a second
    run in one tab (which deletes that tab's previous batch) leaves the other tab's downloads alone."""
    other = page.context.new_page()
    names = {0: ["left 1.png", "left 2.png", "left 3.png"], 1: ["right 1.png", "right 2.png", "right 3.png"]}
    for n, tab in enumerate((page, other)):
        for k, name in enumerate(names[n]):
            (tmp_path / name).write_bytes(image_bytes("png", seed=90 + 10 * n + k))
        tab.goto(f"{server.url}/#token={server.token}")
        tab.get_by_label("Choose files").set_input_files([str(tmp_path / name) for name in names[n]])
    for tab in (page, other):
        tab.wait_for_function("document.querySelectorAll('#list tbody tr').length === 3 && " + READ)
    page.get_by_label("No AI at all: training and inference").check()
    page.get_by_role("button", name="Tag files").click()
    other.get_by_role("button", name="Tag files").click()
    zips = {}
    for n, tab in enumerate((page, other)):
        tab.wait_for_function(DONE)
        assert tab.inner_text("#summary") == "3 tagged, 0 failed."
        zips[n] = tab.get_attribute("#zip", "href")
    held: list[Any] = []
    uploads = re.compile(r".*/v1/batches/[^/]+/files$")
    page.route(uploads, lambda route: held.append(route) if len(held) < 2 else route.continue_())  # the first two wait
    page.get_by_role("button", name="Tag files").click()  # the left tab again: its first batch is deleted
    while len(held) < 2:
        page.wait_for_timeout(50)
    # While that run goes on, no row still offers a link into the deleted batch (the third did: a 404).
    assert page.locator(f'#list a[href^="{zips[0].removesuffix("zip")}"]').count() == 0
    assert page.inner_text("#list tbody tr:last-child td:nth-child(4)") == "waiting"
    for route in held:
        route.continue_()
    page.unroute(uploads)
    # The zip link shows again, to the new batch, when that run has ended.
    page.wait_for_function("!document.getElementById('zip').hidden && "
                           f"document.getElementById('zip').getAttribute('href') !== '{zips[0]}'")
    assert page.inner_text("#summary") == "3 tagged, 0 failed."
    for n, tab in enumerate((page, other)):
        _download_all(tab, tmp_path / f"tab{n}.zip")
        with zipfile.ZipFile(tmp_path / f"tab{n}.zip") as archive:
            assert sorted(archive.namelist()) == names[n]
            inference = rightsmeta.read(archive.read(names[n][0])).permissions[rightsmeta.Purpose.AI_INFERENCE].state
            assert inference is (rightsmeta.State.NOT_ALLOWED if n == 0 else rightsmeta.State.UNSPECIFIED)


def test_a_wrong_file_is_removed_from_the_list_by_keyboard(server: Server, page: Any, tmp_path: Path) -> None:
    """A creator who added a wrong file takes it off the list (it had to reload the page and lose everything):
    a button per file, named with the file, reached by Tab; the count and what cannot be tagged follow."""
    names = ["a.png", "wrong.jpg", "empty.jpg", "c.png"]
    (tmp_path / "a.png").write_bytes(image_bytes("png", seed=101))
    (tmp_path / "wrong.jpg").write_bytes(image_bytes("jpeg", seed=102))
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "c.png").write_bytes(image_bytes("png", seed=103))
    page.goto(f"{server.url}/#token={server.token}")
    page.get_by_label("Choose files").set_input_files([str(tmp_path / n) for n in names])
    page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 4 && " + READ)
    kilobytes = lambda *chosen: int(sum((tmp_path / n).stat().st_size for n in chosen) / 1024 + 0.5)  # noqa: E731
    # In KB: small files weighed "0.0 MB".
    assert page.inner_text("#count") == f"4 files ({kilobytes(*names)} KB). 1 cannot be tagged (empty or too large)."
    assert page.evaluate(A11Y) == []
    page.get_by_label("Choose a folder").focus()
    page.keyboard.press("Tab")  # the first file's remove button comes next
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Remove a.png"
    page.get_by_role("button", name="Remove wrong.jpg").focus()
    page.keyboard.press("Enter")
    # Focus stays in the list, on the next file's button, so a keyboard user goes on where they were.
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Remove empty.jpg"
    page.keyboard.press("Space")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Remove c.png"
    assert page.locator("#list button.remove").evaluate_all("all => all.map(b => b.getAttribute('aria-label'))") == [
        "Remove a.png", "Remove c.png"]
    assert page.inner_text("#count") == f"2 files ({kilobytes('a.png', 'c.png')} KB)."
    assert page.inner_text("#summary") == "Removed empty.jpg. 2 files are left."
    page.get_by_role("button", name="Tag files").click()
    page.wait_for_function(DONE)
    assert page.inner_text("#summary") == "2 tagged, 0 failed."
    _download_all(page, tmp_path / "all.zip")
    with zipfile.ZipFile(tmp_path / "all.zip") as archive:
        assert sorted(archive.namelist()) == ["a.png", "c.png"]
    # A tagged file taken off the list: the zip made before would still hold it, so it is not offered.
    page.get_by_role("button", name="Remove a.png").click()
    assert page.is_hidden("#zip") and page.locator("#list a").count() == 1
    assert page.inner_text("#summary") == "Removed a.png. 1 file is left. Press Tag files again for a zip of the files listed."
    page.get_by_role("button", name="Remove c.png").click()
    assert page.is_hidden("#list") and page.is_disabled("#go") and page.inner_text("#count") == ""
    assert page.evaluate("document.activeElement.id") == "files"
    assert page.evaluate(A11Y) == []


def test_several_files_are_checked_each_with_its_own_verdict(server: Server, page: Any, tmp_path: Path) -> None:
    """Several files chosen or dropped on "Check files": each is checked and named (only the first was, silently)."""
    import httpx

    plain = pdf_bytes(("A letter only I wrote, on the first of December.",))
    whole = image_bytes("jpeg", size=(120, 90), seed=112)
    tagged = httpx.post(server.url + "/v1/tag", headers=server.auth, files={"file": ("t.png", image_bytes("png", seed=113))},
                        data={"assertion": '{"permissions": {"ai-training": "notAllowed"}}'}, timeout=60).content
    files = {"letter.pdf": plain, "cut short.jpg": whole[: len(whole) // 2], "tagged.png": tagged}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    expected = {"letter.pdf": "untagged", "cut short.jpg": "unreadable", "tagged.png": "intact"}
    page.goto(f"{server.url}/#token={server.token}")
    page.get_by_role("tab", name="Check files").click()
    page.get_by_label("Select files to check").set_input_files([str(tmp_path / n) for n in files])
    page.wait_for_function("document.querySelectorAll('#verdict .verdict-status').length === 3")
    verdicts = page.locator("#verdict .verdict")
    found = {verdicts.nth(n).locator(".verdict-file").inner_text(): verdicts.nth(n).locator(".verdict-status").get_attribute("data-status")
             for n in range(3)}
    assert found == {f"File: {name}": status for name, status in expected.items()}
    assert page.inner_text("#check-summary") == "3 files checked: 1 intact, 2 not."
    assert "Not allowed: training AI models" in verdicts.nth(2).inner_text()
    assert page.evaluate(A11Y) == []
    # Two dropped at once: both checked, the previous verdicts replaced.
    page.evaluate("""([a, b]) => {
        const data = new DataTransfer();
        data.items.add(new File([new Uint8Array(a)], "one.png", {type: "image/png"}));
        data.items.add(new File([new Uint8Array(b)], "two.pdf", {type: "application/pdf"}));
        document.getElementById("check-drop").dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
    }""", [list(tagged), list(plain)])
    page.wait_for_function("document.getElementById('check-summary').textContent.startsWith('2 files checked')")
    assert page.locator("#verdict .verdict-file").all_inner_texts() == ["File: one.png", "File: two.pdf"]
    assert [s.get_attribute("data-status") for s in page.locator("#verdict .verdict-status").all()] == ["intact", "untagged"]


def test_a_full_batch_offers_a_way_forward(tmp_path_factory: pytest.TempPathFactory, page: Any, browser: Any, tmp_path: Path) -> None:
    """The server's batch limits met by a creator: the page said the limit and nothing more. Now the
    tagged files are downloaded and the rest tagged in a new batch, and a server keeping all the batches
    it can is tried again, with a button each."""
    import httpx

    folder = tmp_path_factory.mktemp("full")
    names = [f"photo {n}.png" for n in range(5)]
    for n, name in enumerate(names):
        (tmp_path / name).write_bytes(image_bytes("png", size=(48, 32), seed=120 + n))
    zipped: list[str] = []

    def download_zip(tab: Any, number: int) -> None:
        _download_all(tab, tmp_path / f"part{number}.zip")
        with zipfile.ZipFile(tmp_path / f"part{number}.zip") as archive:
            zipped.extend(archive.namelist())

    for server in _start(folder, "--ledger", str(folder / "ledger.sqlite3"), "--token-file", str(folder / "token"),
                         "--batch-files", "2", "--max-upload-mb", "1"):
        # A file the server refuses alone (413 too, as a full batch is) is that file's failure: the run goes on.
        (tmp_path / "too big.png").write_bytes(_png_of_size(2**20 + 1))
        page.goto(f"{server.url}/#token={server.token}")
        page.evaluate("maxUpload = Infinity")  # as when /healthz did not say the limit: the server refuses it
        page.get_by_label("Choose files").set_input_files([str(tmp_path / n) for n in ("too big.png", *names[:2])])
        page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 3 && " + READ)
        page.get_by_role("button", name="Tag files").click()
        page.wait_for_function(DONE)
        assert page.inner_text("#summary") == "2 tagged, 1 failed." and page.is_hidden("#next")
        page.reload()
        page.get_by_label("Choose files").set_input_files([str(tmp_path / n) for n in names])
        page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 5 && " + READ)
        page.get_by_role("button", name="Tag files").click()
        page.wait_for_function(DONE)
        assert page.inner_text("#summary") == "2 tagged, 3 failed."
        assert "a batch holds at most 2 files" in page.inner_text("#next-why")
        assert page.get_attribute("#next-why", "aria-live") == "polite"  # a screen reader hears why, and what next
        assert page.evaluate(A11Y) == []
        go_on = page.get_by_role("button", name="Tag the 3 files left")
        go_on.click()  # before the tagged files were saved: they would be lost, so it asks for that first
        assert "Download the 2 tagged files first" in page.inner_text("#next-why")
        assert page.evaluate("document.activeElement.id") == "zip"
        download_zip(page, 1)
        go_on.click()
        page.wait_for_function(DONE)
        assert page.locator("#list tbody tr").count() == 3 and page.inner_text("#summary") == "2 tagged, 1 failed."
        download_zip(page, 2)
        page.get_by_role("button", name="Tag the 1 file left").click()
        page.wait_for_function(DONE)
        assert page.inner_text("#summary") == "1 tagged, 0 failed." and page.is_hidden("#next")
        download_zip(page, 3)
        assert sorted(zipped) == sorted(names)

        # Every batch the server keeps is taken (32, by other pages). The server says when to ask again
        # (Retry-After: 60): the page waits it out and tries once by itself, counting down; then a button.
        with httpx.Client(base_url=server.url, headers=server.auth) as http:
            others = [http.post("/v1/batches").json()["id"] for _ in range(31)]
            other = browser.new_context(bypass_csp=True).new_page()
            other.clock.install()  # the page's minute passes when the test says so
            other.goto(f"{server.url}/#token={server.token}")
            other.get_by_label("Choose files").set_input_files(str(tmp_path / names[0]))
            other.wait_for_function("document.querySelectorAll('#list tbody tr').length === 1 && " + READ)
            other.get_by_role("button", name="Tag files").click()
            other.locator("#summary", has_text="0 tagged, 1 failed.").wait_for()
            assert "This page tries again by itself in 60 seconds, or press Try again." in other.inner_text("#next-why")
            assert other.inner_text("#next-wait") == "Trying again in 60 s." and other.is_visible("#next-go")
            assert other.get_attribute("#next-wait", "aria-live") is None  # not read out every second
            assert other.evaluate(A11Y) == []
            other.clock.run_for(20_000)
            assert other.inner_text("#next-wait") == "Trying again in 40 s."
            other.get_by_label("Your name").focus()  # a keyboard user goes on filling the form meanwhile
            other.keyboard.type("Ada")
            other.clock.run_for(40_000)  # tried by itself, still refused: now only by hand
            other.locator("#next-why", has_text="Try again in a minute.").wait_for()
            other.keyboard.type(" Lovelace")  # the try by itself did not take the focus away
            assert other.evaluate("document.activeElement.id") == "holder"
            assert other.get_by_label("Your name").input_value() == "Ada Lovelace"
            assert other.inner_text("#next-wait") == "" and other.inner_text("#summary") == "0 tagged, 1 failed."
            assert http.delete(f"/v1/batches/{others[0]}").status_code == 204
            other.get_by_role("button", name="Try again").click()
            other.wait_for_function(DONE)
            assert other.inner_text("#summary") == "1 tagged, 0 failed." and other.is_hidden("#next")
            other.context.close()


DROP_ON_HEADING = """(bytes) => {
    const data = new DataTransfer();
    data.items.add(new File([new Uint8Array(bytes)], "beside.png", {type: "image/png"}));
    const heading = document.querySelector("h1");
    const over = new DragEvent("dragover", {dataTransfer: data, bubbles: true, cancelable: true});
    heading.dispatchEvent(over);
    heading.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
    return over.defaultPrevented;
}"""


def test_a_file_dropped_beside_the_drop_area_is_taken_not_opened(server: Server, page: Any) -> None:
    """A file dropped a little outside the dashed box was opened by the browser in place of the page
    (its dragover was not taken), and every file listed was lost. Anywhere on the page, it is taken by the view shown."""
    page.goto(f"{server.url}/#token={server.token}")
    png = list(image_bytes("png", size=(40, 30), seed=131))
    assert page.evaluate(DROP_ON_HEADING, png) is True  # taken: the browser does not open the file
    page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 1 && " + READ)
    assert "beside.png" in page.inner_text("#list")
    page.get_by_role("tab", name="Check files").click()
    assert page.evaluate(DROP_ON_HEADING, png) is True
    page.wait_for_function("document.querySelector('.verdict-file')?.textContent === 'File: beside.png'")
    assert page.locator("#list tbody tr").count() == 1  # the Check view's drop is checked, not added to the list


def test_leaving_with_tagged_copies_not_downloaded_is_asked_first(server: Server, page: Any, tmp_path: Path) -> None:
    """Leaving the page deletes its batch, so tagged copies not downloaded were lost without a word
    (and so was a list of files not tagged yet). Now the browser asks first; once they are saved, it does not."""
    (tmp_path / "mine.png").write_bytes(image_bytes("png", seed=141))
    asked: list[str] = []
    page.on("dialog", lambda dialog: (asked.append(dialog.type), dialog.dismiss()))

    def leave() -> bool:
        """Whether the page asked before it was left (a dismissed question keeps it)."""
        del asked[:]
        page.evaluate("location.reload()")
        for _ in range(40):
            if asked:
                return True
            page.wait_for_timeout(50)
        return False

    page.goto(f"{server.url}/#token={server.token}")
    page.get_by_label("Choose files").set_input_files(str(tmp_path / "mine.png"))
    page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 1 && " + READ)
    assert leave() and asked == ["beforeunload"]  # listed, not tagged yet
    page.get_by_role("button", name="Tag files").click()
    page.wait_for_function(DONE)
    assert leave()  # tagged, not downloaded: leaving would delete the only tagged copy
    with page.expect_download():
        page.get_by_role("link", name="Download all (zip)").click()
    page.wait_for_timeout(200)
    assert not leave()  # saved: the page goes without a question
    page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 0")


def test_a_file_added_after_a_run_says_it_is_not_in_the_zip(server: Server, page: Any, tmp_path: Path) -> None:
    """A file added once the others were tagged said "waiting" (nothing was) beside a "Download all" that
    does not hold it. It says it is not tagged yet and how to tag it; the next run's zip holds both."""
    for n in (1, 2):
        (tmp_path / f"later {n}.png").write_bytes(image_bytes("png", size=(40, 30), seed=150 + n))
    page.goto(f"{server.url}/#token={server.token}")
    page.get_by_label("Choose files").set_input_files(str(tmp_path / "later 1.png"))
    page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 1 && " + READ)
    page.get_by_role("button", name="Tag files").click()
    page.wait_for_function(DONE)
    page.get_by_label("Choose files").set_input_files(str(tmp_path / "later 2.png"))
    page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 2 && " + READ)
    assert page.inner_text("#list tbody tr:last-child td:nth-child(4)") == "Not tagged yet"
    assert page.inner_text("#summary") == ("1 file added since the run: press Tag files to tag it. "
                                           "The zip holds only the files tagged before until then.")
    assert page.evaluate(A11Y) == []
    first = page.get_attribute("#list tbody tr:first-child a", "href")
    # Nothing that makes the copies changed: only the new file is tagged, into the same batch and zip
    # (the whole list was tagged again each time, slow on a large one).
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.method + " " + request.url.split("/v1/")[-1]))
    page.get_by_role("button", name="Tag files").click()
    page.wait_for_function(DONE)
    assert page.inner_text("#summary") == "1 tagged, 0 failed. With the 1 tagged before, the zip holds 2 files."
    assert len([r for r in sent if r.startswith("POST") and r.endswith("/files")]) == 1
    assert not any(r.startswith("DELETE") or r == "POST batches" for r in sent), sent
    assert page.get_attribute("#list tbody tr:first-child a", "href") == first
    _download_all(page, tmp_path / "all.zip")
    with zipfile.ZipFile(tmp_path / "all.zip") as archive:
        assert sorted(archive.namelist()) == ["later 1.png", "later 2.png"]
    # A choice changed: every file is tagged again, in a new batch, and the page says so.
    (tmp_path / "later 3.png").write_bytes(image_bytes("png", size=(40, 30), seed=153))
    page.get_by_label("Choose files").set_input_files(str(tmp_path / "later 3.png"))
    page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 3 && " + READ)
    page.get_by_label("No AI at all: training and inference").check()
    assert "Press Tag files again to tag them with these." in page.inner_text("#summary")
    page.get_by_role("button", name="Tag files").click()
    page.wait_for_function(DONE)
    assert page.inner_text("#summary") == "3 tagged, 0 failed."
    assert page.get_attribute("#list tbody tr:first-child a", "href") != first


def test_the_same_file_chosen_twice_is_listed_once(server: Server, page: Any, tmp_path: Path) -> None:
    """A file chosen again (twice from the same folder, or a folder and then a file of it) was listed
    twice and tagged twice, the second saved as "a-2.png" in the zip (once the field lets a file be chosen
    again at all). A different file of the same name still is kept."""
    (tmp_path / "a.png").write_bytes(image_bytes("png", seed=161))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.png").write_bytes(image_bytes("png", seed=162))
    page.goto(f"{server.url}/#token={server.token}")
    for chosen in ("a.png", "a.png", "other/a.png"):
        page.get_by_label("Choose files").set_input_files(str(tmp_path / chosen))
        page.wait_for_timeout(100)
    page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 2 && " + READ)
    page.wait_for_timeout(300)
    assert page.locator("#list tbody tr").count() == 2
    assert page.inner_text("#summary") == "a.png is in the list already: it was not added again."
    # Taken off, then chosen again: it comes back (choosing the file the field held already did nothing).
    page.get_by_role("button", name="Remove a.png").first.click()
    page.get_by_label("Choose files").set_input_files(str(tmp_path / "a.png"))
    page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 2 && " + READ)
    page.get_by_role("button", name="Tag files").click()
    page.wait_for_function(DONE)
    assert page.inner_text("#summary") == "2 tagged, 0 failed."


def test_a_choice_changed_after_tagging_is_not_left_out_of_the_zip(server: Server, page: Any, tmp_path: Path) -> None:
    """Changed from "No AI training" to "No AI at all" after tagging, the page still offered "Download all",
    whose files say only the first: a creator saved the statement they had just changed their mind about."""
    (tmp_path / "mind.png").write_bytes(image_bytes("png", size=(40, 30), seed=171))
    page.goto(f"{server.url}/#token={server.token}")
    page.get_by_label("Choose files").set_input_files(str(tmp_path / "mind.png"))
    page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 1 && " + READ)
    page.get_by_role("button", name="Tag files").click()
    page.wait_for_function(DONE)
    assert page.is_visible("#zip")
    page.get_by_label("No AI at all: training and inference").check()
    assert page.is_hidden("#zip")
    assert page.inner_text("#summary") == ("The choices changed after tagging: the tagged copies say what was chosen before. "
                                           "Press Tag files again to tag them with these.")
    page.get_by_role("button", name="Tag files").click()
    page.wait_for_function(DONE)
    _download_all(page, tmp_path / "all.zip")
    with zipfile.ZipFile(tmp_path / "all.zip") as archive:
        state = rightsmeta.read(archive.read("mind.png")).permissions[rightsmeta.Purpose.AI_INFERENCE].state
    assert state is rightsmeta.State.NOT_ALLOWED


def test_a_file_larger_than_all_the_batch_space_is_said_once(tmp_path_factory: pytest.TempPathFactory, page: Any,
                                                               tmp_path: Path) -> None:
    """A file bigger than the space of all batches (serve --batch-mb) was "Out of space for batches", a full
    batch: "Tag the 1 file left" made a new batch, which refused it again, for ever. Now it is that file's
    failure, saying it can never fit, and the other files are tagged."""
    folder = tmp_path_factory.mktemp("tiny-batches")
    (tmp_path / "huge.png").write_bytes(_png_of_size(1_046_000))  # under 1 MiB, but with its tagging's room more
    (tmp_path / "small.png").write_bytes(image_bytes("png", size=(40, 30), seed=181))
    for server in _start(folder, "--ledger", str(folder / "ledger.sqlite3"), "--token-file", str(folder / "token"),
                         "--batch-mb", "1"):
        page.goto(f"{server.url}/#token={server.token}")
        page.get_by_label("Choose files").set_input_files([str(tmp_path / "huge.png"), str(tmp_path / "small.png")])
        page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 2 && " + READ)
        page.get_by_role("button", name="Tag files").click()
        page.wait_for_function(DONE)
        assert page.inner_text("#summary") == "1 tagged, 1 failed." and page.is_hidden("#next")
        assert "can never fit" in page.inner_text("#list tbody tr:first-child td:nth-child(4)")
        assert "--batch-mb" in page.inner_text("#list tbody tr:first-child td:nth-child(4)")


def test_a_large_list_is_shown_at_once_and_read_several_at_a_time(server: Server, page: Any, tmp_path: Path) -> None:
    """Files added were read one after the other, each row shown only once the file before it was read:
    500 small files took 26 s to list (bench/ui.py --page-add 500). Every row is listed at once, and the
    files are read four at a time."""
    paths = []
    for n in range(30):
        paths.append(tmp_path / f"many {n:02d}.png")
        paths[-1].write_bytes(image_bytes("png", size=(16, 12), seed=200 + n))
    held: list[Any] | None = []  # the reads sent, kept from the server until the rows are counted
    page.route("**/v1/read", lambda route: held.append(route) if held is not None else route.continue_())
    page.goto(f"{server.url}/#token={server.token}")
    page.get_by_label("Choose files").set_input_files([str(p) for p in paths])
    page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 30")
    page.wait_for_timeout(200)
    assert len(held) == 4 and page.inner_text("#count").startswith("30 files (")
    assert page.is_enabled("#go")  # the list can be tagged while it is still being read
    for route in held:
        route.continue_()
    held = None
    page.wait_for_function("[...document.querySelectorAll('#list tbody td:nth-child(2)')].every(td => td.textContent === 'PNG')")


def test_a_damaged_file_is_said_in_plain_words(server: Server, page: Any, tmp_path: Path) -> None:
    """A damaged file's line and verdict said the reader's words ("truncated PNG: b'IDAT' chunk at offset 33
    claims 365 bytes...", "not a readable PDF (PdfStreamError: Stream has ended unexpectedly)"). They say what
    it means for the creator; the reader's words are under Technical details."""
    files = {"cut.png": image_bytes("png", seed=191)[:60], "broken.pdf": b"%PDF-1.4\n garbage", "notes.txt": b"just my notes"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    page.goto(f"{server.url}/#token={server.token}")
    page.get_by_label("Choose files").set_input_files([str(tmp_path / name) for name in files])
    page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 3 && " + READ)
    page.get_by_role("button", name="Tag files").click()
    page.wait_for_function(DONE)
    rows = page.locator("#list tbody tr")
    assert "Failed: the file is cut short (an incomplete PNG)" in rows.nth(0).inner_text()
    assert "Failed: the file is damaged: it could not be read as PDF" in rows.nth(1).inner_text()
    assert "Failed: rightsmeta does not know this kind of file" in rows.nth(2).inner_text()
    shown = page.inner_text("#list")
    assert "b'IDAT'" not in shown and "PdfStreamError" not in shown and "offset" not in shown, shown
    rows.nth(1).locator("td:nth-child(4) summary").click()
    assert "not a readable PDF (PdfStreamError" in rows.nth(1).inner_text()
    assert page.evaluate(A11Y) == []
    page.get_by_role("tab", name="Check files").click()
    page.get_by_label("Select files to check").set_input_files([str(tmp_path / name) for name in files])
    page.wait_for_function("document.querySelectorAll('#verdict .verdict-status').length === 3")
    shown = page.inner_text("#verdict")
    assert "b'IDAT'" not in shown and "PdfStreamError" not in shown and not JARGON.search(shown), shown
    assert "The file is damaged: it could not be read as PDF." in shown
