"""The ``tag`` command's work: one function the click command and the plain entry point
(cli_plain.py) both call, so that a plain ``tag`` run starts without click."""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any

from . import api
from .cli_common import echo, progress, terminate_cleanly
from .cli_verify import ledger_path, listed_files, open_ledger, stale_temps
from .errors import UsageError
from .escape import printable
from .model import Assertion
from .report import TagResult


def constraint(value: str) -> tuple[str, str] | None:
    """``--constrain PURPOSE=TERMS`` as (purpose, terms); None without the '='."""
    name, sep, terms = value.partition("=")
    return (name.strip(), terms) if sep else None


def run(
    paths: tuple[str, ...], *, deny: tuple[str, ...] = (), allow: tuple[str, ...] = (),
    constrain: tuple[tuple[str, str], ...] = (), holder: str | None = None, contact: str | None = None,
    copyright_: str | None = None, web_statement: str | None = None, policy: str | None = None,
    recursive: bool = False, dry_run: bool = False, password: str | None = None, sign: bool = True,
    cert: str | None = None, key: str | None = None, ledger: str | None = None, no_ledger: bool = False,
    as_json: bool = False, follow_links: bool = True, jobs: int = 1,
) -> int:
    """Tag ``paths`` as the ``tag`` command does; the exit code.

    Raises UsageError, before anything is written or said, for what click reports as a usage
    error (and nowhere later: the plain entry point then hands the command line to click).
    """
    assertion = Assertion.build(
        deny=deny, allow=allow, constrain=constrain, holder=holder, contact=contact,
        copyright=copyright_, web_statement=web_statement, policy=policy,
    )
    if assertion.is_empty:
        raise UsageError("say what to do: give at least one --deny, --allow or --constrain")
    identity = None
    if sign:
        from .paths import signing_files

        if signing_files(cert, key):  # cryptography (keys.py, ~0.1 s) is loaded only to load an identity
            from .keys import Identity

            identity = Identity.configured(cert, key)
    special: list[tuple[str, str]] = []  # FIFOs and devices: opening one to tag it would block
    files: Iterable[str]
    listed: list[str] | None = None
    if recursive and (as_json or not sys.stderr.isatty()):
        # No progress bar needs the count: paths stream from the walk (which raises nothing with
        # -r), so memory does not grow with the number of files.
        files = _cleaning(api.walk(paths, recursive=True, skipped=special), remove=not dry_run)
    else:
        files = listed = listed_files(paths, recursive, special)
    used = None if dry_run else ledger_path(ledger, no_ledger, must_exist=False)
    db = open_ledger(used) if used else None  # the last UsageError
    if listed is not None:
        stale_temps(listed, remove=not dry_run)
    if sign and identity is None and not as_json:
        echo("note: no signing identity, so no C2PA manifest is added (rightsmeta keys init makes one)\n", err=True)
    import gc
    from contextlib import closing, nullcontext

    from .alloc import keep_freed_memory

    keep_freed_memory()  # each file's buffers reused, not faulted in anew (alloc.py)
    # What start-up made (modules, classes, the ledger's decoders) lives to the end of the run:
    # frozen, the collector no longer traverses it each time it looks at older objects (about 2 %
    # of tagging's instructions). Unfrozen when the run ends, so a process that runs the command
    # and goes on (click's CliRunner, a host embedding the CLI) gets its collector back.
    gc.freeze()
    # Tagging leaves little cyclic garbage (about 25 objects a file: parsers', XML trees'), but
    # allocates many containers that die young by reference counting: at Python's 700 the
    # collector ran 71 times (and its middle generation 6 times) over the bench's 500 files with a
    # ledger, at 5,000 10 times (callgrind, 100 files: 2,716M -> 2,704M instructions; freezing
    # again after the lazy imports saved less). Garbage waits for at most 5,000 allocations more.
    # Restored, as the freeze is, when the run ends (two runs overlapping in one host's threads
    # would restore each other's: the command is not re-entrant, as the freeze is not).
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], _YOUNG_OBJECTS) if thresholds[0] else 0, *thresholds[1:])  # 0: a host's "never"
    try:
        with terminate_cleanly(), db if db is not None else nullcontext():
            # One folder fsync per folder at the end; each result printed when its file is done and
            # then dropped, so a run over a million files holds only the counts.
            with closing(api.tag_iter(progress(files, "tagging", not as_json), assertion, dry_run=dry_run,
                                      password=password, identity=identity, ledger=db, follow_links=follow_links,
                                      jobs=jobs)) as done:
                counts = render(itertools.chain(done, _skipped(special, assertion)), dry_run, as_json)
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
    return 1 if counts.get("failed") else 0


_YOUNG_OBJECTS = 5000  # the collector's first threshold during a run (see run)


def _cleaning(paths: Iterable[str], *, remove: bool) -> Iterator[str]:
    """``paths``, removing (or reporting) stale temporary files in each folder before its first file."""
    seen: set[str] = set()
    for path in paths:
        folder = os.path.dirname(os.path.abspath(path))
        if folder not in seen:
            seen.add(folder)
            stale_temps([folder], remove=remove)
        yield path


def render(results: Iterable[TagResult], dry_run: bool, as_json: bool = False) -> dict[str, int]:
    """Print each result as it comes (a JSON array, or lines and a summary); the counts by status."""
    counts: dict[str, int] = {}
    first = True
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
        if as_json:  # as json.dumps of the whole list with indent=2 prints it, one element at a time
            echo(("[\n  " if first else ",\n  ") + _result_json(r))  # ASCII: _json_string
        else:
            _line(r, dry_run)
        first = False
    if as_json:
        echo("[]\n" if first else "\n]\n")
    else:
        order = ("would-tag", "tagged", "skipped", "failed")
        said = ", ".join(f"{counts.get(k, 0)} {k}" for k in order if k in counts or k == "failed") if counts else "no files to tag"
        echo(f"summary: {said}\n", err=True)
    return counts


def _result_json(r: TagResult) -> str:
    """``indented(r.to_json(), "\\n  ")``, the assertion's words rendered once per run: the same
    for every file but its date and work id (``Assertion.shared``), which ``to_json`` puts last."""
    if r.assertion is None:
        return indented(r.to_json(), "\n  ")
    # to_json's other fields, in its order (the test holds them to it), and the assertion left out
    text = indented({"path": r.path, "status": r.status, "format": r.format, "carriers": r.carriers, "reason": r.reason,
                     "notes": r.notes, "assertion": None}, "\n  ")
    words = r.assertion.shared("cli_tag.json", lambda w: indented(w.to_json(), _ASSERTION_PAD))
    tail = "".join(f",{_ASSERTION_PAD}  {_json_string(key)}: {_json_string(value)}"
                   for key, value in (("date", r.assertion.date), ("work_id", r.assertion.work_id)) if value is not None)
    return f"{text[: -len(_NULL_ASSERTION)]}{words[: -len(_ASSERTION_PAD) - 1]}{tail}{_ASSERTION_PAD}}}\n  }}"


_ASSERTION_PAD = "\n    "  # the assertion's closing brace: one level into the result, one into the list
_NULL_ASSERTION = "null\n  }"  # how the result's text ends with the assertion left out


_JSON_CONSTANTS = {None: "null", True: "true", False: "false"}


def indented(value: Any, pad: str) -> str:
    """``json.dumps(value, indent=2)`` with every line after the first indented by ``pad``'s
    spaces: the same text, with the scalars left to json's C encoder (indent=2 puts all of it
    through the pure-Python one, about 0.05 ms a result)."""
    if type(value) is str:  # most values and every key: json.dumps's own C function, without its two calls
        return _json_string(value)
    if value is None or value is True or value is False:
        return _JSON_CONSTANTS[value]
    inner = pad + "  "
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        if not value:
            return "{}"
        items = (f"{_json_string(k)}: {indented(v, inner)}" for k, v in value.items())
        return "{" + inner + ("," + inner).join(items) + pad + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        return "[" + inner + ("," + inner).join(indented(v, inner) for v in value) + pad + "]"
    if isinstance(value, dict):  # keys json turns into strings: its own encoder, re-indented
        return json.dumps(value, indent=2).replace("\n", pad)
    return json.dumps(value)


def _skipped(special: list[tuple[str, str]], assertion: Assertion) -> Iterator[TagResult]:
    """What the walk passed over; a generator, so the list is read once the walk is done."""
    for path, reason in special:
        yield TagResult(path, "skipped", reason=reason, assertion=assertion)


def _line(r: TagResult, dry_run: bool) -> None:
    """A result for people: its status word coloured on a terminal, as click.echo(click.style(...))
    prints it."""
    if r.status in ("tagged", "would-tag"):
        word, colour = ("would tag" if dry_run else "tagged"), "green"
        rest = f"  {printable(r.path)}  ({r.format}: {', '.join(r.carriers)})"
        notes = [f"    note: {printable(note)}" for note in r.notes]
    else:
        word, colour = r.status, ("red" if r.status == "failed" else "yellow")
        rest, notes = f"  {printable(r.path)}: {printable(r.reason)}", []
    lines = [word + rest, *notes]
    if _uncoloured(lines):
        for line in lines:
            echo(line + "\n")
        return
    import click

    click.echo(click.style(word, fg=colour) + rest)
    for note in notes:
        click.echo(note)


def _uncoloured(lines: list[str]) -> bool:
    """Whether click.echo would print ``lines`` as they are, without loading click (about 15 ms a
    run): no click context that may force colour (click not loaded at all), standard output not a
    terminal nor a Jupyter kernel's (where click strips the colour codes), plain ASCII (nothing for
    click's stream wrappers to re-encode)."""
    stream = sys.stdout
    if "click" in sys.modules or stream is None or type(stream).__module__.startswith("ipykernel."):
        return False
    try:
        if stream.isatty():
            return False
    except Exception:  # click's isatty: a stream that cannot say is not a terminal
        pass
    return all(line.isascii() for line in lines)
