"""``rightsmeta demo``: the main job on built-in sample files, narrated step by step."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pyexiv2

from . import api
from .carriers.image import register_namespaces
from .errors import UsageError
from .escape import printable
from .ledger import Ledger
from .model import Assertion
from .report import FileReport, TagResult
from .verify import verify_many

Echo = Callable[[str], None]


def _samples(target: Path) -> list[Path]:
    folder = resources.files("rightsmeta") / "samples"
    copied = []
    for item in sorted(folder.iterdir(), key=lambda t: t.name):
        if item.name.endswith(".txt"):
            continue
        dest = target / item.name
        dest.write_bytes(item.read_bytes())
        copied.append(dest)
    return copied


def _edit_xmp(path: Path, changes: dict[str, str] | None) -> None:
    """What another tool (or a platform's upload pipeline) does to a file behind our back."""
    register_namespaces()
    with pyexiv2.Image(str(path)) as img:
        if changes is None:
            img.clear_xmp()
        else:
            img.modify_xmp(changes)


def run(
    keep: str | None,
    echo: Echo,
    render_read: Callable[[FileReport], None],
    render_tag: Callable[[list[TagResult], bool], object],
) -> None:
    """Raises UsageError, before anything is written, when ``keep`` is a folder with files in it:
    the samples' names (photo.jpg...) are common ones, and they would be written over."""
    if keep and os.path.isdir(keep) and os.listdir(keep):
        raise UsageError(f"--keep {printable(keep)} is not empty; give a new or empty folder for the samples")
    workdir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="rightsmeta-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        files = _samples(workdir)
        echo(f"Sample files copied to {workdir}: {', '.join(p.name for p in files)}\n")

        echo("== 1. Before tagging, the samples carry no rights signals:")
        for path in files:
            report = api.read(path)
            echo(f"  {path.name:<14} {'signals found' if report.has_signals else 'no signals'}")

        assertion = Assertion.build(
            deny=["ai"], holder="Sample Creator", copyright="(c) 2026 Sample Creator",
            web_statement="https://example.com/licence",
        )
        ledger_path = workdir / ".demo-ledger.sqlite3"  # never the user's own ledger
        echo(f"\n== 2. rightsmeta tag -r {workdir} --deny ai --holder 'Sample Creator' --copyright '(c) 2026 Sample Creator'")
        with Ledger.open(ledger_path) as ledger:
            render_tag([api.tag(path, assertion, ledger=ledger) for path in files], False)

        photo = workdir / "photo.jpg"
        echo(f"\n== 3. rightsmeta read {photo.name}: every carrier, and one decision")
        render_read(api.read(photo))

        drawing = workdir / "drawing.png"
        echo(f"\n== 4. Another tool changes one field of {drawing.name} (plus:DataMining -> DMI-ALLOWED):")
        _edit_xmp(drawing, {"Xmp.plus.DataMining": "http://ns.useplus.org/ldf/vocab/DMI-ALLOWED"})
        render_read(api.read(drawing))
        echo("  The disagreement is reported, and 'not allowed' still wins where the record says so.")

        echo(f"\n== 5. A platform strips the XMP metadata of {photo.name}:")
        _edit_xmp(photo, None)
        render_read(api.read(photo))
        echo("  Nothing is left in the file itself...")

        echo(f"\n== 6. rightsmeta verify -r {workdir}: one status per file, stripped files matched to the ledger")
        for row in verify_many([str(p) for p in files], ledger_path=str(ledger_path)):
            echo(f"  {str(row['status']):<12} {Path(str(row['path'])).name:<14} {'; '.join(row['reasons'])}")
    finally:
        if keep:
            echo(f"\nThe files are kept in {workdir}.")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            echo("\nDone; the temporary folder was removed (use --keep DIR to keep the files).")
