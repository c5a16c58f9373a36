"""api.walk over folders listed compactly (listing.py): os.walk's order and choices, memory that
does not grow by an object per name."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from rightsmeta import api, listing


def reference(top: str) -> Iterator[str]:
    """The walk as api.walk did it with os.walk, sorting each folder's names."""
    for root, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for file in sorted(files):
            if not file.startswith("."):
                yield os.path.join(root, file)


def touch(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Names that sort differently as code points than as bytes or by case, hidden ones, links to
    files and folders, nested and empty folders, and a name that is not UTF-8."""
    top = tmp_path / "top"
    top.mkdir()
    names = ["b.jpg", "B.jpg", "a.png", "é.jpg", "z.tif", "\U0001f600.wav", "\uffff.pdf", "10.mp3", "9.mp3",
             ".hidden.jpg", "a b.flac", "ä.jpg"]
    for name in names:
        touch(top / name)
    os.close(os.open(os.fsencode(top) + b"/\xff\xfe.jpg", os.O_WRONLY | os.O_CREAT, 0o644))
    for sub in ("sub", "Sub", ".git", "empty", "sub/deeper", "sub/deeper/deepest", "\u00e9t\u00e9"):
        (top / sub).mkdir()
    for i in range(7):
        touch(top / "sub" / f"{i}.jpg")
        touch(top / "sub" / "deeper" / f"x{i}.png")
        touch(top / "\u00e9t\u00e9" / f"{i % 3}{i}.webp")
    touch(top / "sub" / "deeper" / "deepest" / "last.jpg")
    touch(top / ".git" / "config.jpg")
    (top / "link-to-sub").symlink_to(top / "sub")  # a folder's link: neither walked into nor yielded
    (top / "link.jpg").symlink_to(top / "a.png")  # a file's link: yielded
    (top / "dangling.jpg").symlink_to(top / "nowhere")
    return top


@pytest.mark.parametrize("run", [1, 2, 3, 5, listing._RUN])
def test_the_walk_is_os_walks_whatever_the_runs(tree: Path, run: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Runs of 1 to 5 names: folders of several runs merged, a last run full or not.
    monkeypatch.setattr(listing, "_RUN", run)
    expected = list(reference(str(tree)))
    assert len(expected) == 36
    assert list(api.walk([str(tree)], recursive=True)) == expected
    assert list(api.walk([str(tree) + "/"], recursive=True)) == list(reference(str(tree) + "/"))


def test_folders_that_cannot_be_listed_are_passed_over(tmp_path: Path) -> None:
    touch(tmp_path / "a.jpg")
    assert list(listing.below(str(tmp_path / "gone"))) == list(reference(str(tmp_path / "gone"))) == []
    assert list(listing.below(str(tmp_path / "a.jpg"))) == []


def test_a_large_folder_is_held_in_about_a_byte_per_character(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # As objects, each name was ~60 bytes and two list slots for the whole walk (os.walk's list and
    # the sorted copy): ~75 bytes a name. Packed in runs, ~13 here (12 characters and a NUL).
    monkeypatch.setattr(listing, "_RUN", 256)
    count = 5000
    for i in range(count):
        touch(tmp_path / f"f{(i * 7919) % count:07d}.jpg")  # created out of order
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        walking = api.walk([str(tmp_path)], recursive=True)
        first = next(walking)
        held = tracemalloc.get_traced_memory()[0] - before
        rest = list(walking)
    finally:
        tracemalloc.stop()
    assert [first, *rest] == [str(tmp_path / f"f{i:07d}.jpg") for i in range(count)]
    assert held < 20 * count, f"{held / count:.0f} bytes a name held while walking"


def test_stale_temporary_files_are_looked_for_without_listing_every_name(tmp_path: Path) -> None:
    # tag and verify look in each folder once: listdir's list was 1.4 MiB at once for 20,000 files.
    count = 5000
    for i in range(count):
        touch(tmp_path / f"f{i:07d}.jpg")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        assert api.stale_temp_files([tmp_path]) == []
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < 10 * count, f"{peak / count:.0f} bytes a name at the peak"


def test_a_folder_without_recursive_is_refused_in_each_callers_words(tmp_path: Path) -> None:
    # A library caller has no -r option: it is told the parameter; the command lines say -r.
    from click.testing import CliRunner

    from rightsmeta.cli import main
    from rightsmeta.errors import UsageError

    with pytest.raises(UsageError, match=r"is a folder; pass recursive=True") as refused:
        list(api.walk([tmp_path]))
    assert "use -r" not in str(refused.value)
    for command in ("read", "tag", "verify"):
        args = [command, str(tmp_path), *(["--deny", "ai", "--no-ledger"] if command == "tag" else ["--no-ledger"] if command == "verify" else [])]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and "is a folder; use -r to include the files below it" in result.output, command
