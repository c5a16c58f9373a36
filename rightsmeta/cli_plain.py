"""The ``rightsmeta`` entry point: plain ``tag`` and ``verify`` command lines start without click
(people's output loads it later, for colours and the progress bar).

Every run pays for loading click and the command-line module (cli.py, with all the other
commands' modules) before its first file: more than all the work of tagging a photo. So
``main`` reads the command lines it can be sure of itself, from one table per command
(``COMMANDS``): each word it accepts, the parameter of the click command that word sets, and
how its value is read. It then calls the very function the click command calls
(``cli_tag.run``, ``cli_verify.run``). Everything else goes to click (cli.py) untouched, which
parses and reports as always: an option not in a table, a repeated one, a value it is not
sure of, a path that does not exist, ``--help``, shell completion, and any usage error the
command raises (each command's ``run`` raises them before it writes or says anything).
tests/test_cli_tag_fast.py holds every table entry against click's option of the same name, and
compares many command lines' output, exit codes, files and ledger rows with click's
(tests/test_cli_verify.py: verify's).

What the commands' work shares (plain ``echo``, the progress bar, SIGTERM handling) is in
cli_common.py, below both this entry point and click's commands.
"""

from __future__ import annotations

import atexit
import errno
import gc
import os
import stat
import sys
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from .errors import UsageError

T = TypeVar("T")


class Word(NamedTuple):
    """An option word of a table: the click parameter it sets, and its value: a flag's own
    value, or (``reads``) a function of the next word, None for a value click must judge."""

    param: str
    value: Any = None
    reads: Callable[[str], Any] | None = None
    many: bool = False  # may be given again, each value kept (click's multiple=True)


def count(word: str) -> int | None:
    """A number of workers, as plain ASCII digits (click's int takes more, and judges it)."""
    return int(word) if word.isascii() and word.isdigit() else None


def text(word: str) -> str:
    """Any text (click's STRING keeps a str as it is)."""
    return word


def _path(word: str, *, exists: bool, dir_okay: bool = True) -> str | None:
    """``word`` if click's ``Path`` (readable, file_okay, not resolved) takes it as it stands."""
    try:
        st = os.stat(word)
    except (OSError, ValueError):  # ValueError: a NUL in the name
        return None if exists else word
    if not dir_okay and stat.S_ISDIR(st.st_mode) or not os.access(word, os.R_OK):
        return None
    return word


def existing(word: str) -> str | None:
    """click.Path(exists=True)."""
    return _path(word, exists=True)


def file_name(word: str) -> str | None:
    """click.Path(dir_okay=False)."""
    return _path(word, exists=False, dir_okay=False)


def existing_file(word: str) -> str | None:
    """click.Path(exists=True, dir_okay=False)."""
    return _path(word, exists=True, dir_okay=False)


def _constraint(word: str) -> tuple[str, str] | None:
    from .cli_tag import constraint

    return constraint(word)


class Command(NamedTuple):
    words: dict[str, Word]
    paths: str  # the parameter the paths go to
    dash: bool  # "-" (standard input) is a path
    required: tuple[str, ...]  # parameters the plain path needs given (else click)
    run: str  # module.function doing the command's work


_FLAG = Word  # a word that sets its parameter to ``value``
COMMANDS: dict[str, Command] = {
    "verify": Command(
        {
            "-r": _FLAG("recursive", True), "--recursive": _FLAG("recursive", True),
            "--no-ledger": _FLAG("no_ledger", True),
            "--json": _FLAG("fmt", "json"), "--jsonl": _FLAG("fmt", "jsonl"), "--csv": _FLAG("fmt", "csv"),
            "--jobs": Word("jobs", reads=count),
        },
        # For people, click renders the rows (colours, progress bar) anyway: only machine scans here.
        paths="paths", dash=True, required=("fmt",), run="cli_verify.run",
    ),
    "tag": Command(
        {
            "-r": _FLAG("recursive", True), "--recursive": _FLAG("recursive", True),
            "--deny": Word("deny", reads=text, many=True), "--allow": Word("allow", reads=text, many=True),
            "--constrain": Word("constrain", reads=_constraint, many=True),
            "--holder": Word("holder", reads=text), "--contact": Word("contact", reads=text),
            "--copyright": Word("copyright_", reads=text), "--web-statement": Word("web_statement", reads=text),
            "--policy": Word("policy", reads=text), "--password": Word("password", reads=text),
            "--dry-run": _FLAG("dry_run", True),
            "--sign": _FLAG("sign", True), "--no-sign": _FLAG("sign", False),
            "--cert": Word("cert", reads=existing_file), "--key": Word("key", reads=existing_file),
            "--ledger": Word("ledger", reads=file_name), "--no-ledger": _FLAG("no_ledger", True),
            "--json": _FLAG("as_json", True),
            "--follow-links": _FLAG("follow_links", True), "--no-follow-links": _FLAG("follow_links", False),
            "--jobs": Word("jobs", reads=count),
        },
        paths="paths", dash=False, required=(), run="cli_tag.run",
    ),
}


def plain(argv: list[str]) -> tuple[str, dict[str, Any]] | None:
    """The command and its parameters when ``argv`` is a command line the plain path is sure of
    (see the module's docstring); None for anything else, which click then parses."""
    command = COMMANDS.get(argv[0]) if argv else None
    if command is None or any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ):
        return None  # not a plain command, or click's shell completion asked for
    found: dict[str, Any] = {}
    paths: list[str] = []
    words = iter(argv[1:])
    for word in words:
        if word == "-" and command.dash or not word.startswith("-"):
            if word != "-" and existing(word) is None:
                return None  # click says it does not exist (or cannot be read)
            paths.append(word)
            continue
        name, equals, attached = word.partition("=") if word.startswith("--") else (word, "", "")
        option = command.words.get(name)
        if option is None or (option.param in found and not option.many):
            return None  # an option click has to parse, or a repeated one
        if option.reads is None:
            if equals:
                return None  # a flag given a value
            value = option.value
        else:
            given = attached if equals else next(words, None)
            if given is None or given.startswith("-"):
                return None  # missing, or a value click might read as an option
            value = option.reads(given)
            if value is None:
                return None
        if option.many:
            found.setdefault(option.param, []).append(value)
        else:
            found[option.param] = value
    if not paths or any(p not in found for p in command.required):
        return None
    found = {k: tuple(v) if isinstance(v, list) else v for k, v in found.items()}
    found[command.paths] = tuple(paths)
    return argv[0], found


def _work(command: str) -> Callable[..., int]:
    import importlib

    module, function = COMMANDS[command].run.split(".")
    run: Callable[..., int] = getattr(importlib.import_module(f"{__package__}.{module}"), function)
    return run


def main() -> None:
    """``rightsmeta``: a plain command line here, everything else through click."""
    # numpy's OpenBLAS starts a thread for each further core when it loads, which spins before it
    # sleeps: ~65 ms of CPU a run here (2 cores), and no matrix a command multiplies is big enough
    # to share out (verify --jobs shares files instead). Unless the user chose a thread count.
    if not {"OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"} & os.environ.keys():
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
    found = plain(sys.argv[1:])
    if found is not None:
        command, options = found
        try:
            code = _work(command)(**options)
        except UsageError:
            pass  # raised before anything was written or said: click parses it again and reports it
        except (EOFError, KeyboardInterrupt):
            sys.stderr.write("\nAborted!\n")  # as click ends on Ctrl-C
            sys.exit(1)
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            # The reader went away (``| head``): end quietly, as click does, without the
            # interpreter's complaint when it flushes the closed pipe on exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(1)
        else:
            # The process ends here: at exit (atexit runs before the interpreter's last
            # collection) what is still alive is frozen, so that collection does not traverse
            # every loaded module's objects once more (numpy, Pillow, the ledger: 30-60 ms a run,
            # measured with strace; 8 ms frozen). At exit, not now: a host that catches the
            # SystemExit keeps its collector.
            atexit.register(gc.freeze)
            sys.exit(code)
    from .cli import main as click_main

    click_main()
