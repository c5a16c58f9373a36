"""The entry point's plain path for verify (cli_plain.main): a machine scan without click, with
the same bytes out, the same exit codes, and everything else left to click."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from samples import write_image

import rightsmeta
from rightsmeta import Assertion
from rightsmeta.cli_plain import plain

DENY = Assertion.build(deny=["ai"], holder="Ada")
# The same command line through the entry point (python -m rightsmeta) and through click alone.
ENTRY = [sys.executable, "-m", "rightsmeta"]
CLICK = [sys.executable, "-c", "import sys; sys.argv[0] = 'rightsmeta'; from rightsmeta.cli import main; main()"]


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "upload"
    (folder / "sub").mkdir(parents=True)
    for i, fmt in enumerate(("jpeg", "png", "tiff", "webp")):
        path = write_image(folder / ("sub" if i % 2 else "."), fmt, f"f{i}")
        if i % 2 == 0:
            rightsmeta.tag(path, DENY)
    (folder / "notes.txt").write_text("not media")
    return folder


def _argv(command: list[str], *args: str, report: bool = False) -> list[str]:
    if not report:
        return [*command, *args]
    # Which of click's command or the plain path ran, and whether the plain path loaded click (for
    # people's colours): said after the command's own output, also on sys.exit.
    code = ("import atexit, sys\natexit.register(lambda: print('CLICK' if 'rightsmeta.cli' in sys.modules else "
            "'PLAIN, click for colours' if 'click' in sys.modules else 'PLAIN', file=sys.stderr))\n"
            "import runpy; sys.argv = ['rightsmeta', *sys.argv[1:]]\nrunpy.run_module('rightsmeta', run_name='__main__')\n")
    return [sys.executable, "-c", code, *args]


def _run(command: list[str], *args: str, report: bool = False, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_argv(command, *args, report=report), capture_output=True, text=True, check=False, **kwargs)


def interrupted(argv: list[str], started: str, **kwargs: Any) -> tuple[int, str, str]:
    """Ctrl-C in a terminal (SIGINT to the process group) once a line of standard output
    containing ``started`` is out; the exit code, standard output and standard error."""
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True, **kwargs) as run:
        assert run.stdout is not None
        head = ""
        while started not in head:
            line = run.stdout.readline()
            assert line, "ended before it started: " + (run.stderr.read() if run.stderr else "")
            head += line
        os.killpg(run.pid, signal.SIGINT)
        out, err = run.communicate(timeout=60)
    return run.returncode, head + out, err


@pytest.mark.parametrize("fmt", ["--jsonl", "--json", "--csv"])
def test_a_plain_scan_writes_what_click_writes_without_loading_click(tmp_path: Path, fmt: str) -> None:
    folder = _folder(tmp_path)
    args = ["verify", "-r", "--no-ledger", fmt, "--jobs", "1", str(folder), str(folder / "f0.jpg")]
    plain = _run(ENTRY, *args, report=True)
    clicked = _run(CLICK, *args)
    assert plain.returncode == clicked.returncode == 0
    assert plain.stdout == clicked.stdout
    assert plain.stderr == clicked.stderr + "PLAIN\n"
    assert "summary: 3 intact, 2 untagged, 1 unreadable (6 files)" in clicked.stderr
    assert len(plain.stdout) > 200


@pytest.mark.parametrize("args", [
    ["verify", "--no-ledger", "--jsonl", "{folder}"],                   # a folder without -r: click's usage error
    ["verify", "-r", "--jsonl", "--jobs", "-1", "{folder}"],           # a number click refuses
    ["verify", "-r", "--jsonl", "{folder}/missing.jpg"],               # a path that does not exist
    ["verify", "-r", "--no-ledger", "{folder}"],                       # people's output (colours, progress)
    ["verify", "-r", "--jsonl", "--fail-on", "untagged", "{folder}"],  # an option the plain path leaves to click
    ["verify", "-r", "--jsonl", "--jsonl", "{folder}"],                # repeated
])
def test_everything_else_goes_through_click_as_before(tmp_path: Path, args: list[str]) -> None:
    folder = _folder(tmp_path)
    args = [a.format(folder=folder) for a in args]
    plain = _run(ENTRY, *args, report=True)
    clicked = _run(CLICK, *args)
    assert plain.returncode == clicked.returncode
    assert plain.stdout == clicked.stdout
    assert plain.stderr == clicked.stderr + "CLICK\n"


def test_the_plain_path_parses_only_what_it_is_sure_of(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    parsed = plain(["verify", str(folder), "--jobs=2", "-r", "--csv", "-"])
    assert parsed == ("verify", {"paths": (str(folder), "-"), "jobs": 2, "recursive": True, "fmt": "csv"})
    for argv in (["read", str(folder)], ["verify", "--jsonl"], ["verify", "--jsonl", "--", str(folder)],
                 ["verify", "--jsonl", "--jobs"], ["verify", "--jsonl", "--jobs", "x", str(folder)],
                 ["verify", "--jsonl", "-rh", str(folder)], ["verify", "--json", "--csv", str(folder)],
                 ["verify", "--jsonl", "--timeout", "5", str(folder)], ["verify", "--jsonl", ""]):
        assert plain(argv) is None, argv
    if os.geteuid() != 0:  # root reads anything
        locked = folder / "f0.jpg"
        locked.chmod(0)
        assert plain(["verify", "--jsonl", str(locked)]) is None


def test_a_closed_pipe_ends_quietly_with_exit_code_1(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    for command in (ENTRY, CLICK):
        # The reader goes away at once: the rows cannot be written (EPIPE), as with `| head -0`.
        with subprocess.Popen([*command, "verify", "-r", "--no-ledger", "--jsonl", str(folder)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
            assert child.stdout is not None and child.stderr is not None
            child.stdout.close()
            err = child.stderr.read().decode()
            assert child.wait() == 1
        assert "Traceback" not in err and "Exception ignored" not in err, err
    rows = _run(ENTRY, "verify", "-r", "--no-ledger", "--jsonl", str(folder / "sub"))
    assert rows.returncode == 0 and {json.loads(line)["status"] for line in rows.stdout.splitlines()} == {"untagged"}


def test_a_plain_scan_of_a_relative_folder_notes_stale_temporary_files_below(tmp_path: Path) -> None:
    # The scan keeps each folder once (as the absolute form of a file's folder), to look in for
    # temporary files an interrupted write left, once the scan is done.
    folder = _folder(tmp_path)
    old = 1_000_000_000
    stale = []
    for where in (folder, folder / "sub"):
        path = where / f".{where.name}.jpg.abcd1234.rightsmeta-tmp"
        path.write_bytes(b"half a file")
        os.utime(path, (old, old))
        stale.append(path)
    done = subprocess.run([*ENTRY, "verify", "-r", "--no-ledger", "--jsonl", "upload", "upload/sub/../sub"],
                          capture_output=True, text=True, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if line.startswith("note: found ")]
    assert notes == [f"note: found {p}, a temporary file an interrupted rightsmeta write left behind; "
                     "rightsmeta tag in that folder removes it" for p in stale]


def test_ctrl_c_ends_a_plain_scan_as_it_ends_clicks(tmp_path: Path) -> None:
    # Enough files (links to four small images) that the scan is still going when the signal comes.
    sources = [p for p in _folder(tmp_path).rglob("*") if p.suffix in (".jpg", ".png", ".tiff", ".webp")]
    many = tmp_path / "many"
    many.mkdir()
    for i in range(3000):
        os.link(sources[i % len(sources)], many / f"{i:05d}{sources[i % len(sources)].suffix}")
    args = ["verify", "-r", "--no-ledger", "--jsonl", str(many)]
    ends = {}
    for name, command in (("plain", ENTRY), ("click", CLICK)):
        code, out, err = interrupted(_argv(command, *args, report=name == "plain"), '"status"')
        assert 0 < out.count('"status"') < 3000  # stopped mid-scan, not at its end
        ends[name] = code, err
    assert ends["plain"] == (1, "\nAborted!\nPLAIN\n")
    assert ends["click"] == (1, "\nAborted!\n")


def test_one_file_or_url_is_counted_in_the_singular(tmp_path: Path) -> None:
    # It said "summary: 1 untagged (1 files)", and check "(1 URLs)".
    path = write_image(tmp_path, "jpeg")
    for command in (ENTRY, CLICK):
        run = _run(command, "verify", "--no-ledger", str(path))
        assert run.returncode == 0 and run.stderr == "summary: 1 untagged (1 file)\n", run
    checked = _run(ENTRY, "check", "http://127.0.0.1:9/nothing-listens", "--timeout", "5")
    assert checked.stderr.endswith("summary: 1 error (1 URL)\n"), checked


@pytest.mark.parametrize("fmt", [[], ["--jsonl"]])
def test_a_folder_without_files_says_so(tmp_path: Path, fmt: list[str]) -> None:
    # It said "summary:  (0 files)".
    (tmp_path / "empty").mkdir()
    for command in (ENTRY, CLICK):
        run = _run(command, "verify", "-r", "--no-ledger", *fmt, str(tmp_path / "empty"))
        assert run.returncode == 0 and run.stdout == "" and run.stderr == "summary: no files to verify\n", run
