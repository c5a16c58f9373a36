"""The entry point's plain path for tag (cli_plain.main): a tag run without click, with the same
output, exit codes, files and ledger rows as click's; everything else left to click; Ctrl-C."""

from __future__ import annotations

import inspect
import io
import json
import os
import shutil
import site
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import click
import pytest
from samples import image_bytes
from test_cli_verify import CLICK, ENTRY, _argv, _run, interrupted
from test_tagpool import _UUID, _after, _bare, _photo, _plain, _works

from rightsmeta import api, cli_plain, cli_tag, cli_verify
from rightsmeta.cli import main as click_main
from rightsmeta.cli_plain import COMMANDS, plain
from rightsmeta.ledger import Ledger
from rightsmeta.model import new_work_id
from rightsmeta.report import TagResult

ROOT = Path(__file__).resolve().parent.parent


def _pics(folder: Path) -> None:
    """Four kinds tagged, one broken (fails), one skipped, a link, a subfolder."""
    (folder / "sub").mkdir(parents=True)
    for i, fmt in enumerate(("jpeg", "png", "webp", "tiff")):
        ext = {"jpeg": "jpg", "tiff": "tif"}.get(fmt, fmt)
        (folder / ("sub" if i % 2 else ".") / f"p{i}.{ext}").write_bytes(image_bytes(fmt, size=(40, 30), seed=i))
    (folder / "broken.jpg").write_bytes(image_bytes("jpeg", size=(40, 30), seed=9)[:200])
    (folder / "notes.txt").write_text("not media\n")
    os.symlink("p0.jpg", folder / "link.jpg")


def _env(home: Path) -> dict[str, str]:
    """Each run its own default ledger and no signing identity."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIGHTSMETA_")}
    return {**env, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"), "XDG_CONFIG_HOME": str(home / "config"),
            "PYTHONPATH": str(ROOT)}


def _work_ids(folder: Path) -> dict[str, Any]:
    """Each tagged file's result as far as _plain needs it (its work id), read from the file."""
    found = {}
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            ids = {s.raw.get("WorkID") for s in api.read(path).signals if s.exact} - {None}
            if ids:
                found[str(path.relative_to(folder))] = {"assertion": {"work_id": ids.pop()}}
    return found


def _outcome(root: Path, args: list[str], report: bool) -> dict[str, Any]:
    """Run ``args`` ({pics}, {root} filled in) in ``root``; what it said and left, with the run's
    folder, work ids and dates (which differ between two runs by design) taken out."""
    pics = root / "pics"
    _pics(pics)
    filled = [a.format(pics=pics, root=root) for a in args]
    done = _run(ENTRY if report else CLICK, *filled, report=report, env=_env(root), cwd=root)
    out: Any = done.stdout.replace(str(root), "ROOT")
    if out.startswith("["):
        out = [_bare(r, "ROOT") for r in json.loads(out)]
    err = done.stderr.replace(str(root), "ROOT")
    ids = _work_ids(pics)
    files: dict[str, Any] = {}
    for path in sorted(pics.rglob("*")):
        name = str(path.relative_to(pics))
        if path.is_symlink():
            files[name] = os.readlink(path)
        elif path.is_file():
            files[name] = _plain(path.read_bytes(), ids[name]) if name in ids else path.read_bytes()
    ledgers = {}
    for ledger in (root / "works.db", root / "data" / "rightsmeta" / "ledger.sqlite3"):
        if ledger.exists():
            ledgers[str(ledger.relative_to(root))] = _works(ledger, pics)
    return {"code": done.returncode, "out": out, "err": err, "files": files, "ledgers": ledgers}


def _same(tmp_path: Path, args: list[str], path: str) -> dict[str, Any]:
    """The entry point's outcome equals click's, and it took ``path`` (PLAIN or CLICK)."""
    entry = _outcome(tmp_path / "entry", args, report=True)
    clicked = _outcome(tmp_path / "click", args, report=False)
    assert entry.pop("err") == clicked["err"] + path + "\n"
    assert entry == {k: v for k, v in clicked.items() if k != "err"}
    return clicked


PLAIN_LINES = [
    # bench/tag.py's: JSON for machines, no ledger
    ["tag", "-r", "--deny", "ai", "--no-sign", "--no-ledger", "--json", "{pics}"],
    # a creator's: people's output, the signing note, every field, a ledger named
    ["tag", "-r", "{pics}", "--deny", "all", "--allow", "search", "--holder", "Ada L.", "--contact",
     "https://ada.example", "--copyright", "(c) 2026 Ada L.", "--web-statement", "https://ada.example/l",
     "--policy=https://ada.example/tdm", "--ledger", "{root}/works.db"],
    # files named, terms, workers
    ["tag", "{pics}/p0.jpg", "{pics}/sub/p1.png", "--constrain", "genai-training=https://ada.example/ai",
     "--deny=search", "--no-sign", "--no-ledger", "--json", "--jobs", "2"],
    # the default ledger
    ["tag", "--recursive", "--deny", "ai", "--no-sign", "{pics}"],
    ["tag", "-r", "--deny", "ai", "--dry-run", "--no-sign", "{pics}"],
    # a link skipped and a broken file: exit 1
    ["tag", "--deny", "ai", "--no-follow-links", "--no-sign", "--no-ledger", "{pics}/link.jpg", "{pics}/broken.jpg"],
    ["tag", "-r", "--deny", "ai", "--jobs=0", "--password", "x", "--follow-links", "--no-ledger", "--json", "{pics}"],
]


@pytest.mark.parametrize("args", PLAIN_LINES)
def test_a_plain_tag_says_writes_and_records_what_clicks_tag_does(tmp_path: Path, args: list[str]) -> None:
    # People's output into a pipe has no colours to strip: click is not loaded for it.
    clicked = _same(tmp_path, args, "PLAIN")
    # Something was written and recorded, and compared.
    tagged = [name for name, data in clicked["files"].items() if isinstance(data, bytes) and b"WorkID" in data]
    assert tagged or "--dry-run" in args or "--no-follow-links" in args
    recorded = "--no-ledger" not in args and "--dry-run" not in args
    assert [sorted(works) for works in clicked["ledgers"].values()] == ([sorted(tagged)] if recorded else [])
    assert clicked["out"]


def test_a_name_that_is_not_ascii_is_printed_by_click_as_before(tmp_path: Path) -> None:
    # click's stream wrappers re-encode what is not ASCII for the terminal's encoding: left to click.
    for run in ("entry", "click"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "caf\u00e9 \u2014 p.png").write_bytes(image_bytes("png", size=(40, 30), seed=3))
    outs = []
    for run, command, report in (("entry", ENTRY, True), ("click", CLICK, False)):
        done = _run(command, "tag", "-r", "--deny", "ai", "--no-sign", "--no-ledger", str(tmp_path / run),
                    report=report, env={**_env(tmp_path / run), "PYTHONIOENCODING": "ascii:backslashreplace"})
        assert done.returncode == 0, done.stderr
        outs.append((done.stdout.replace(str(tmp_path / run), "ROOT"), done.stderr.replace(str(tmp_path / run), "ROOT")))
    (out, err), (click_out, click_err) = outs
    assert out == click_out and "caf" in out
    assert err == click_err + "PLAIN, click for colours\n"


@pytest.mark.parametrize("loaded", [True, False], ids=["click loaded", "click not loaded"])
def test_people_see_the_status_coloured_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch, loaded: bool) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, coloured in ((Terminal(), True), (io.StringIO(), False)):
        if not loaded:  # as in a plain run: _line loads click only for a terminal
            monkeypatch.delitem(sys.modules, "click")
        monkeypatch.setattr(sys, "stdout", stream)
        cli_tag._line(TagResult("a.png", "tagged", format="png", carriers=["xmp"], notes=["n"]), dry_run=False)
        cli_tag._line(TagResult("b.png", "failed", reason="bad"), dry_run=False)
        assert ("click" in sys.modules) == (loaded or coloured)
        monkeypatch.undo()
        green, red = (click.style("tagged", fg="green"), click.style("failed", fg="red")) if coloured else ("tagged", "failed")
        assert stream.getvalue() == f"{green}  a.png  (png: xmp)\n    note: n\n{red}  b.png: bad\n"


CLICK_LINES = [
    ["tag", "--deny", "ai", "--no-sign", "--no-ledger", "{pics}"],                # a folder without -r
    ["tag", "-r", "--no-sign", "--no-ledger", "{pics}"],                          # nothing to do
    ["tag", "-r", "--deny", "nonsense", "--no-ledger", "{pics}"],                 # an unknown purpose
    ["tag", "-r", "--deny", "ai-training", "--allow", "ai-training", "{pics}"],   # two states for one purpose
    ["tag", "-r", "--contact", "https://ada.example", "--deny", "ai", "{pics}"],  # a contact without a holder
    ["tag", "-r", "--constrain", "genai-training", "--no-ledger", "{pics}"],      # no '='
    ["tag", "-r", "--deny", "ai", "--jobs", "-1", "{pics}"],
    ["tag", "-r", "--deny", "ai", "--jobs", "x", "{pics}"],
    ["tag", "-r", "--deny", "ai", "{pics}/missing.jpg"],
    ["tag", "-r", "--deny", "ai", "--ledger", "{pics}", "{pics}"],                # a folder as the ledger
    ["tag", "-r", "--deny", "ai", "--cert", "{root}/missing.pem", "{pics}"],
    ["tag", "-r", "--deny", "ai", "--json=yes", "{pics}"],
    ["tag", "-rh"],
    ["tag", "--help"],
    # command lines click runs: a repeated option (the last wins), a value like an option, '--', --debug
    ["tag", "-r", "--deny", "ai", "--sign", "--no-sign", "--no-ledger", "--json", "{pics}"],
    ["tag", "-r", "--holder", "-", "--deny", "ai", "--no-sign", "--no-ledger", "--json", "{pics}"],
    ["tag", "-r", "--deny", "ai", "--no-sign", "--no-ledger", "--", "{pics}"],
    ["--debug", "tag", "-r", "--deny", "ai", "--no-sign", "--no-ledger", "{pics}"],
]


@pytest.mark.parametrize("args", CLICK_LINES)
def test_everything_else_goes_through_click_as_before(tmp_path: Path, args: list[str]) -> None:
    _same(tmp_path, args, "CLICK")


def test_the_plain_path_parses_only_what_it_is_sure_of(tmp_path: Path) -> None:
    _pics(tmp_path)
    pics = str(tmp_path)
    assert plain(["tag", pics, "-r", "--deny", "ai", "--deny=search", "--constrain", "genai-training=a=b",
                  "--jobs=3", "--ledger", f"{pics}/new.db", "--no-follow-links"]) == ("tag", {
        "paths": (pics,), "recursive": True, "deny": ("ai", "search"), "constrain": (("genai-training", "a=b"),),
        "jobs": 3, "ledger": f"{pics}/new.db", "follow_links": False})
    for argv in (["tag"], ["tag", "--deny", "ai"], ["tag", "--deny", "ai", "-", pics], ["tag", "--deny", pics],
                 ["tag", "--deny", "ai", "--ledger", pics, pics], ["tag", "--deny", "ai", "--no-sign=1", pics],
                 ["tag", "--deny", "ai", "--jobs", "+1", pics], ["tag", "--deny", "ai", "--jobs", "٣", pics],
                 ["tag", "--deny", "ai", "--key", pics, pics], ["tag", "--deny", "ai", "--dry-run", "--dry-run", pics],
                 ["tag", "--deny", "ai", f"{pics}/gone.jpg"], ["tag", "--deny", "ai", f"{pics}/nul\0.jpg"]):
        assert plain(argv) is None, argv


def _click_type(param: click.Parameter) -> object:
    """What a table's reader stands for, from click's parameter."""
    kind = param.type
    if isinstance(kind, click.Path):
        return "path", kind.exists, kind.dir_okay, kind.file_okay, kind.readable, kind.writable, kind.allow_dash
    if isinstance(kind, click.IntRange):
        return "int", kind.min, kind.max
    return kind.name


# Each reader of the tables: the click parameter type it stands for (it takes less, never more:
# what it refuses, click judges), and a value it takes.
_READS: dict[Any, tuple[set[object], str]] = {
    cli_plain.count: ({("int", 0, None), "integer"}, "2"),
    cli_plain.text: ({"text"}, "ai"),
    cli_plain._constraint: ({"text"}, "genai-training=https://ada.example/ai"),  # split as click's tag splits it
    cli_plain.existing_file: ({("path", True, False, True, True, False, False)}, "{file}"),
    cli_plain.file_name: ({("path", False, False, True, True, False, False)}, "{folder}/new.db"),
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_word_of_a_table_sets_what_click_sets(tmp_path: Path, name: str) -> None:
    command = COMMANDS[name]
    clicked = click_main.commands[name]
    params = {p.name: p for p in clicked.params}
    (tmp_path / "file").write_text("x")
    needed = ["--jsonl"] if name == "verify" else []  # verify's plain path is for machines
    for word, entry in command.words.items():
        param = next(p for p in clicked.params if isinstance(p, click.Option) and word in p.opts + p.secondary_opts)
        assert param.name == entry.param, word
        assert param.multiple == entry.many, word
        given = [word]
        if entry.reads is not None:
            types, value = _READS[entry.reads]
            assert not param.is_flag and _click_type(param) in types, word
            given.append(value.format(file=tmp_path / "file", folder=tmp_path))
        argv = [*given, *(needed if param.name != "fmt" else []), str(tmp_path)]
        found = plain([name, *argv])
        assert found is not None, argv
        ctx = clicked.make_context(name, list(argv))
        value = ctx.params[entry.param]
        if entry.reads is cli_plain._constraint:
            value = tuple(cli_tag.constraint(v) for v in value)
        assert found[1][entry.param] == value, word
    paths = params[command.paths]
    assert isinstance(paths, click.Argument) and paths.nargs == -1 and paths.required
    assert _click_type(paths) == ("path", True, True, True, True, False, command.dash)
    # What a plain command line leaves out takes click's default: the work's defaults are click's.
    work = {"tag": cli_tag.run, "verify": cli_verify.run}[name]
    defaults = clicked.make_context(name, [*needed, str(tmp_path)]).params
    for key, default in inspect.signature(work).parameters.items():
        if default.default is not inspect.Parameter.empty and not (key == "fmt" and needed):
            assert defaults[key] in (default.default, None if default.default == () else default.default), key


def _photos(folder: Path, count: int) -> dict[Path, bytes]:
    """Camera-size JPEGs (links to one: each tag replaces its link with a new file)."""
    folder.mkdir()
    (folder.parent / "photo.jpg").write_bytes(_photo())
    for i in range(count):
        os.link(folder.parent / "photo.jpg", folder / f"{i:03d}.jpg")
    return {path: _photo() for path in sorted(folder.iterdir())}


@pytest.mark.parametrize("ledger", [False, True])
def test_ctrl_c_leaves_each_file_its_original_or_tagged_whole_as_clicks_tag_does(tmp_path: Path, ledger: bool) -> None:
    ends = {}
    for name, command in (("plain", ENTRY), ("click", CLICK)):
        folder = tmp_path / name / "photos"
        folder.parent.mkdir()
        originals = _photos(folder, 60 if ledger else 300)
        db = folder.parent / "works.db"
        args = ["tag", "-r", "--deny", "ai", "--no-sign", "--json", "--ledger" if ledger else "--no-ledger",
                *([str(db)] if ledger else []), str(folder)]
        code, out, err = interrupted(_argv(command, *args, report=name == "plain"), '"status": "tagged"',
                                     env=_env(tmp_path / name))
        ends[name] = code, err
        if not ledger:
            Ledger.open(db).close()  # none recorded
        tagged, recorded = _after(folder, db, originals)
        printed = out.count('"status": "tagged"')
        assert 0 < printed <= len(tagged) < len(originals)  # stopped mid-batch; each file printed is tagged
        # With a ledger a stopped run records the files it renamed: Ctrl-C may fall between a rename and that.
        assert len(tagged) - len(recorded) <= 1 if ledger else not recorded
        assert sorted(folder.glob(".*.rightsmeta-tmp")) == []
        assert not _UUID.search(err.encode())
        shutil.rmtree(folder)
    assert ends["plain"] == (1, "\nAborted!\nPLAIN\n")
    assert ends["click"] == (1, "\nAborted!\n")


def test_a_work_id_is_what_uuid4_makes_of_the_same_bytes() -> None:
    for _ in range(2000):
        raw = os.urandom(16)
        assert new_work_id(raw) == str(uuid.UUID(bytes=raw, version=4))
    assert new_work_id() != new_work_id()


# Modules a plain tag run must not load: click and the click commands (cli_plain.py), uuid and
# pathlib with what they load (model.new_work_id, cli_verify), and without an identity to sign
# with, cryptography (paths.signing_files).
_UNUSED = ("click", "rightsmeta.cli", "uuid", "platform", "pathlib", "urllib.parse", "cryptography", "rightsmeta.keys")
_LOADED = f"""
import atexit, runpy, sys
atexit.register(lambda: print(sorted(m for m in {_UNUSED!r} if m in sys.modules), file=sys.stderr))
sys.argv = ["rightsmeta", *sys.argv[1:]]
runpy.run_module("rightsmeta", run_name="__main__")
"""


@pytest.mark.parametrize("sign", ["--no-sign", "--sign"])
def test_a_plain_tag_starts_without_loading_what_it_does_not_use(tmp_path: Path, sign: str) -> None:
    _pics(tmp_path / "pics")
    # -S: no site, so nothing an installation's .pth files load (an editable install's finder
    # loads pathlib) is counted; the installed packages stay importable.
    env = {**_env(tmp_path), "PYTHONPATH": os.pathsep.join([str(ROOT), *site.getsitepackages()])}
    done = subprocess.run([sys.executable, "-S", "-c", _LOADED, "tag", "-r", "--deny", "ai", sign, "--no-ledger",
                           "--json", str(tmp_path / "pics")], capture_output=True, text=True, env=env, timeout=60)
    # broken.jpg failed; link.jpg names p0.jpg, tagged once (tests/test_tag_creators.py)
    assert done.returncode == 1 and done.stdout.count('"tagged"') == 4 and done.stdout.count("the same file as") == 1, done.stderr
    # Signing asked for, but no identity (none in the run's HOME): cryptography is not loaded
    # (paths.signing_files finds none); pathlib is, to look for one.
    assert done.stderr == ("[]\n" if sign == "--no-sign" else "['pathlib', 'urllib.parse']\n")


def test_a_closed_pipe_ends_a_plain_tag_quietly_with_each_file_whole(tmp_path: Path) -> None:
    for name, command in (("plain", ENTRY), ("click", CLICK)):
        folder = tmp_path / name / "photos"
        folder.parent.mkdir()
        originals = _photos(folder, 40)
        # The reader goes away at once: the results cannot be written (EPIPE), as with `| head -0`.
        with subprocess.Popen([*command, "tag", "-r", "--deny", "ai", "--no-sign", "--no-ledger", "--json", str(folder)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(tmp_path / name)) as run:
            assert run.stdout is not None and run.stderr is not None
            run.stdout.close()
            err = run.stderr.read().decode()
            assert run.wait() == 1
        assert err == "", (name, err)
        db = folder.parent / "works.db"
        Ledger.open(db).close()  # none recorded
        tagged, _ = _after(folder, db, originals)
        assert len(tagged) < len(originals)  # it stopped at the first result it could not write
        assert sorted(folder.glob(".*.rightsmeta-tmp")) == []


@pytest.mark.parametrize("command", [ENTRY, CLICK], ids=["plain", "click"])
def test_a_ledger_or_signing_file_that_cannot_be_used_is_a_usage_error_and_nothing_is_written(
    tmp_path: Path, command: list[str]
) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(image_bytes("jpeg", size=(64, 48), seed=3))
    before = photo.read_bytes()
    (tmp_path / "works.db").write_text("not a database")
    bad_ledger = _run(command, "tag", "--deny", "ai", "--no-sign", "--ledger", str(tmp_path / "works.db"), str(photo))
    env = {**os.environ, "RIGHTSMETA_CERT": str(tmp_path / "none.pem"), "RIGHTSMETA_KEY": str(tmp_path / "none.key")}
    no_identity = _run(command, "tag", "--deny", "ai", "--no-ledger", str(photo), env=env)
    assert bad_ledger.returncode == no_identity.returncode == 2
    assert "Error: cannot use the ledger: " in bad_ledger.stderr and "file is not a database" in bad_ledger.stderr
    assert f"Error: no such file: {tmp_path / 'none.pem'}" in no_identity.stderr
    assert "Traceback" not in bad_ledger.stderr + no_identity.stderr
    assert bad_ledger.stdout == no_identity.stdout == ""
    assert photo.read_bytes() == before and (tmp_path / "works.db").read_text() == "not a database"


def test_a_folder_without_files_says_so(tmp_path: Path) -> None:
    # It said "summary: 0 failed".
    (tmp_path / "empty").mkdir()
    for command in (ENTRY, CLICK):
        run = _run(command, "tag", "-r", "--deny", "ai", "--no-sign", "--no-ledger", str(tmp_path / "empty"))
        assert run.returncode == 0 and run.stdout == "" and run.stderr == "summary: no files to tag\n", run
