"""The creators' page's heavy case through the HTTP API: many large files into one batch, one zip out.

    python bench/ui.py                        # 200 files of 10 MB, 2 workers, 2 uploads at a time
    python bench/ui.py --files 40 --mb 3      # a quick run
    python bench/ui.py --page-add 500         # the page in Chromium: seconds to list and read 500 small files

Starts `rightsmeta serve` as a subprocess on a free 127.0.0.1 port (fresh ledger and token), makes
eight distinct real PNGs of about --mb MB (incompressible pixels, so the size is what they hold)
and uploads --files of them, round-robin, to one batch as the page does (POST /v1/batches, then
POST .../files two at a time), with one truncated JPEG among them (it must fail on its own, the
rest go on). Then streams GET .../zip to a temporary file and checks its members. Prints the
peak resident memory (VmHWM from /proc) of the server process and of each worker, and the
largest sum over the process tree sampled every 50 ms: flat in --files means nothing holds the set.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import httpx
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from servers import children, in_threads, peak_kib, rss_kib, serving  # noqa: E402

ASSERTION = json.dumps({"permissions": {"ai-training": "notAllowed", "genai-training": "notAllowed"}})


def png(megabytes: float, seed: int) -> bytes:
    side = int((megabytes * 2**20 / 3) ** 0.5)
    raw = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(raw, "PNG", compress_level=1)
    return raw.getvalue()


def page_add(count: int, workers: int) -> None:
    """Seconds from choosing ``count`` small PNGs on the page (Debian's Chromium, by Playwright) until
    every one is listed, and until every one has been read (its type and statement shown)."""
    import shutil

    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("chromium not found (apt-get install chromium)")
    folder = Path(tempfile.mkdtemp(prefix="rightsmeta-bench-page-"))
    try:
        paths = []
        for n in range(count):
            paths.append(folder / f"small{n:04d}.png")
            raw = io.BytesIO()
            Image.frombytes("RGB", (24, 16), os.urandom(24 * 16 * 3)).save(raw, "PNG")
            paths[-1].write_bytes(raw.getvalue())
        size = sum(path.stat().st_size for path in paths) // count
        with serving("--ledger", str(folder / "ledger.sqlite3"), "--token-file", str(folder / "token"),
                     "--workers", str(workers)) as (url, _), sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_context(bypass_csp=True).new_page()
            page.goto(f"{url}/#token={(folder / 'token').read_text().strip()}")
            start = time.perf_counter()
            page.get_by_label("Choose files").set_input_files([str(path) for path in paths])
            page.wait_for_function(f"document.querySelectorAll('#list tbody tr').length === {count}", timeout=600_000)
            listed_s = time.perf_counter() - start
            page.wait_for_function("[...document.querySelectorAll('#list tbody td:nth-child(2)')].every(td => td.textContent === 'PNG')",
                                   timeout=600_000, polling=100)
            read_s = time.perf_counter() - start
            browser.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"page          {count} files of about {size} bytes, {workers} workers")
    print(f"listed        {listed_s:.1f} s (every row shown)")
    print(f"read          {read_s:.1f} s (every row's type and statement shown)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--mb", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--at-once", type=int, default=2, help="uploads in flight (the page sends two)")
    parser.add_argument("--page-add", type=int, metavar="N", help="time the page listing and reading N small files instead")
    args = parser.parse_args()
    if args.page_add:
        page_add(args.page_add, args.workers)
        return

    folder = Path(tempfile.mkdtemp(prefix="rightsmeta-bench-ui-"))
    corpus = [png(args.mb, n) for n in range(8)]
    jpeg = io.BytesIO()
    Image.new("RGB", (400, 300), (200, 100, 50)).save(jpeg, "JPEG")
    broken = jpeg.getvalue()[: len(jpeg.getvalue()) // 2]
    tree_peak = 0
    stop = threading.Event()
    try:
        with serving("--ledger", str(folder / "ledger.sqlite3"), "--token-file", str(folder / "token"),
                     "--workers", str(args.workers)) as (url, server):

            def sample() -> None:
                nonlocal tree_peak
                while not stop.wait(0.05):
                    tree_peak = max(tree_peak, rss_kib(server.pid))

            auth = {"Authorization": "Bearer " + (folder / "token").read_text().strip()}
            threading.Thread(target=sample, daemon=True).start()
            with httpx.Client(base_url=url, timeout=300) as http:
                batch = http.post("/v1/batches", headers=auth).json()
            uploads = [(f"photo{n:03d}.png", corpus[n % len(corpus)]) for n in range(args.files)]
            uploads.insert(len(uploads) // 2, ("broken.jpg", broken))
            answers: dict[str, int] = {}

            def upload(http: httpx.Client, item: tuple[str, bytes]) -> None:
                name, data = item
                answers[name] = http.post(batch["files"], headers=auth, files={"file": (name, data)},
                                          data={"assertion": ASSERTION}).status_code

            start = time.perf_counter()
            in_threads(url, uploads, args.at_once, upload)
            tagged_s = time.perf_counter() - start
            zipped = folder / "all.zip"
            start = time.perf_counter()
            with httpx.Client(base_url=url, timeout=300) as http, http.stream("GET", batch["zip"]) as answer, \
                    open(zipped, "wb") as out:
                for chunk in answer.iter_raw():
                    out.write(chunk)
            zip_s = time.perf_counter() - start
            server_peak = peak_kib(server.pid)
            worker_peaks = [peak_kib(p) for p in children(server.pid)]
            with zipfile.ZipFile(zipped) as archive:
                members = archive.namelist()
                zip_bytes = zipped.stat().st_size
    finally:
        stop.set()
        for path in sorted(folder.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        folder.rmdir()
    ok = sum(1 for s in answers.values() if s == 201)
    sent = sum(len(d) for _, d in uploads)
    print(f"files         {len(uploads)} uploaded ({sent / 2**20:.0f} MiB), {ok} tagged, "
          f"{len(uploads) - ok} failed (broken.jpg: {answers.get('broken.jpg')})")
    print(f"tagging       {tagged_s:.1f} s ({args.at_once} at once, {args.workers} workers)")
    print(f"zip           {zip_bytes / 2**20:.0f} MiB, {len(members)} members, streamed in {zip_s:.1f} s")
    print(f"peak RSS      server process {server_peak / 1024:.1f} MiB (VmHWM)")
    print(f"peak RSS      child processes {', '.join(f'{p / 1024:.1f}' for p in worker_peaks)} MiB "
          "(VmHWM each: forkserver, resource tracker, workers)")
    print(f"peak RSS      whole tree {tree_peak / 1024:.1f} MiB (largest sum sampled every 50 ms)")


if __name__ == "__main__":
    main()
