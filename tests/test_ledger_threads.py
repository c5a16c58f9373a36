"""One open Ledger shared by a server's threads: lookups from 8 threads answer as sequential ones do."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image
from test_verify import DENY, photo

import rightsmeta
from rightsmeta.ledger import Ledger
from rightsmeta.verify import verify


def answer(path: Path, ledger: Ledger) -> tuple[str, str, list[str], str | None]:
    verdict = verify(path, ledger=ledger)
    return path.name, verdict.status, verdict.reasons, verdict.match.work.id if verdict.match else None


def test_threads_share_one_ledger(tmp_path: Path) -> None:
    copies = []
    with Ledger.open(tmp_path / "ledger.sqlite3") as ledger:
        for seed in range(4):
            work = photo(tmp_path, f"work{seed}.png", seed)
            assert rightsmeta.tag(work, DENY, ledger=ledger).status == "tagged"
            with Image.open(work) as img:  # saved again by Pillow: the metadata is gone
                img.save(tmp_path / f"same{seed}.png")
                img.crop((0, 0, img.width * 3 // 4, img.height)).save(tmp_path / f"cut{seed}.png")
            copies += [work, tmp_path / f"same{seed}.png", tmp_path / f"cut{seed}.png"]
        copies.append(photo(tmp_path, "other.png", 99))
        copies *= 3
        expected = [answer(path, ledger) for path in copies]
        assert {status for _, status, _, _ in expected} == {"intact", "stripped", "untagged"}

        # Writes between the lookups too: a tagging thread records works while the others read.
        def tag_more() -> None:
            for seed in range(100, 104):
                assert rightsmeta.tag(photo(tmp_path, f"new{seed}.png", seed), DENY, ledger=ledger).status == "tagged"

        # Threads switched every 10 us, not every 5 ms: without the lock their statements interleave
        # inside one another's transactions here (review: at the default interval it passed without it).
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-5)
        try:
            with ThreadPoolExecutor(8) as pool:
                writer = pool.submit(tag_more)
                got = list(pool.map(lambda path: answer(path, ledger), copies))
                writer.result()
        finally:
            sys.setswitchinterval(interval)
        assert got == expected
        assert len(ledger) == 8
