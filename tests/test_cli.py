"""The command line: exit codes, messages, JSON contracts, help and documentation."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from samples import image_bytes, write_image

from rightsmeta.cli import main

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = {p.name: json.loads(p.read_text()) for p in (ROOT / "schemas").glob("*.schema.json")}
REGISTRY = Registry().with_resources(
    (s["$id"], Resource.from_contents(s)) for s in SCHEMAS.values()
)


def validate(schema_name: str, data: Any) -> None:
    Draft202012Validator(SCHEMAS[schema_name], registry=REGISTRY).validate(data)


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_tag_then_read_json(tmp_path: Path) -> None:
    photo = write_image(tmp_path, "jpeg")
    result = run("tag", str(photo), "--deny", "ai", "--holder", "Ada", "--copyright", "(c) Ada", "--json")
    assert result.exit_code == 0, result.output
    tagged = json.loads(result.stdout)
    validate("tag-result.schema.json", tagged)
    assert tagged[0]["status"] == "tagged" and tagged[0]["carriers"] == ["xmp"]

    result = run("read", str(photo), "--json")
    assert result.exit_code == 0
    reports = json.loads(result.stdout)
    validate("read-report.schema.json", reports)
    assert reports[0]["permissions"] == {
        "data-mining": "unspecified",
        "ai-training": "notAllowed",
        "genai-training": "notAllowed",
        "ai-inference": "notAllowed",
        "search": "unspecified",
    }
    assert {"name": "xmp"}.items() <= reports[0]["carriers"][0].items()
    assert reports[0]["errors"] == []


def test_assertion_json_matches_schema() -> None:
    from rightsmeta import Assertion

    a = Assertion.build(deny=["all"], constrain={}, holder="Ada", contact="mailto:ada@example.com",
                        copyright="(c)", web_statement="https://example.com/l", policy="https://example.com/p").dated()
    validate("assertion.schema.json", a.to_json())
    assert Assertion.from_json(a.to_json()) == a


def test_recursive_mixed_folder_summary_and_exit_code(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write_image(tmp_path, "png", "a")
    write_image(tmp_path / "sub", "webp", "b")
    write_image(tmp_path, "gif", "c")
    (tmp_path / "notes.txt").write_text("not an image")
    result = run("tag", "-r", str(tmp_path), "--deny", "all", "--allow", "search")
    assert result.exit_code == 1  # the GIF cannot carry XMP: a failure, with the reason
    assert "2 tagged, 1 skipped, 1 failed" in result.stderr
    assert re.search(r"failed\s+\S+c\.gif: XMP cannot be written into GIF", result.stdout)
    json_result = run("read", "-r", str(tmp_path), "--json")
    reports = {Path(r["path"]).name: r for r in json.loads(json_result.stdout)}
    assert reports["b.webp"]["permissions"]["search"] == "allowed"
    assert reports["b.webp"]["permissions"]["genai-training"] == "notAllowed"
    assert json_result.exit_code == 1  # notes.txt is not readable as media


def test_dry_run(tmp_path: Path) -> None:
    photo = write_image(tmp_path, "jpeg")
    before = photo.read_bytes()
    result = run("tag", str(photo), "--deny", "ai", "--dry-run")
    assert result.exit_code == 0 and "would tag" in result.stdout
    assert photo.read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--deny", "ai-train"], "unknown purpose 'ai-train'; expected one of data-mining, ai-training"),
        (["--deny", "ai-training", "--allow", "ai-training"], "purpose 'ai-training' is given two different states"),
        (["--constrain", "search"], "should be PURPOSE=TERMS"),
        (["--constrain", "search="], "needs the terms"),
        ([], "give at least one --deny, --allow or --constrain"),
        (["--deny", "ai", "--policy", "not a url"], "the TDM policy must be an http(s) URL"),
    ],
)
def test_usage_errors_exit_2_without_traceback(tmp_path: Path, args: list[str], message: str) -> None:
    photo = write_image(tmp_path, "jpeg")
    before = photo.read_bytes()
    result = run("tag", str(photo), *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert photo.read_bytes() == before


def test_folder_without_recursive_is_a_usage_error(tmp_path: Path) -> None:
    result = run("read", str(tmp_path))
    assert result.exit_code == 2 and "use -r" in result.output


def test_read_human_output_shows_conflicts_and_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(image_bytes("png")[:30])
    result = run("read", str(bad))
    assert result.exit_code == 1
    assert "error:" in result.stdout and "truncated" in result.stdout.lower()


def test_read_says_no_rights_signals_for_a_photo_with_only_a_copyright_notice(exiftool: str, tmp_path: Path) -> None:
    # A camera photo whose EXIF and IIM hold a notice, and nothing else: the notices are listed as
    # carriers, and "no rights signals found" was no longer said (a notice is no signal).
    from samples import exiftool_write

    photo = write_image(tmp_path, "jpeg")
    exiftool_write(exiftool, photo, "-Make=Canon", "-EXIF:Copyright=(c) 2020 Old", "-IPTC:CopyrightNotice=(c) 2020 Old")
    result = run("read", str(photo))
    assert result.exit_code == 0, result.output
    assert "no rights signals found" in result.stdout and "carrier exif-copyright" in result.stdout, result.stdout
    assert run("tag", str(photo), "--deny", "ai").exit_code == 0
    result = run("read", str(photo))
    assert "no rights signals found" not in result.stdout and "notAllowed" in result.stdout, result.stdout


def test_demo_runs_and_narrates(tmp_path: Path) -> None:
    result = run("demo", "--keep", str(tmp_path / "demo"))
    assert result.exit_code == 0, result.output
    for step in ("== 1.", "== 2.", "== 3.", "== 4.", "== 5.", "== 6."):
        assert step in result.stdout
    assert "conflict:" in result.stdout
    assert re.search(r"stripped\s+photo\.jpg\s+no signal left, but it matches \S+photo\.jpg \(same essence\)", result.stdout)
    assert re.search(r"conflicting\s+drawing\.png", result.stdout)
    assert "4 tagged, 1 failed" in result.stdout + result.stderr
    assert (tmp_path / "demo" / "photo.jpg").exists()
    # Its ledger's SQLite files closed with it: step 6's read-only connection left -wal and -shm.
    assert [p.name for p in (tmp_path / "demo").glob(".demo-ledger*")] == [".demo-ledger.sqlite3"]


def test_demo_keep_never_overwrites_a_folder_in_use(tmp_path: Path) -> None:
    # `demo --keep ~/Pictures` used to write its samples over the user's photo.jpg, drawing.png...
    folder = tmp_path / "Pictures"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(b"the user's own photo")
    result = run("demo", "--keep", str(folder))
    assert result.exit_code == 2 and "empty" in result.output, result.output
    assert [p.name for p in folder.iterdir()] == ["photo.jpg"]
    assert (folder / "photo.jpg").read_bytes() == b"the user's own photo"


@pytest.mark.parametrize("limit", ["-5", "0", "nan", "inf", "1e300"])
@pytest.mark.parametrize("command", [["verify", "{png}"], ["scan", "{tar}", "--purpose", "ai-training"], ["serve"],
                                     ["serve", "--upload-timeout"], ["check", "http://127.0.0.1:9/"]])
def test_time_limits_are_numbers_of_seconds(tmp_path: Path, command: list[str], limit: str) -> None:
    # verify and scan ended in a traceback (setitimer) on a negative, nan or infinite limit (one
    # past time_t), and took 0 as no limit at all; serve started with them; check took nan.
    png, tar = tmp_path / "a.png", tmp_path / "a.tar"
    png.write_bytes(image_bytes("png"))
    tar.write_bytes(b"")
    args = [a.format(png=png, tar=tar) for a in command]
    args += [limit] if args[-1].endswith("timeout") else ["--timeout", limit]
    result = run(*args)
    assert result.exit_code == 2 and "--" in result.output and "Traceback" not in result.output, result.output


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, cmd in group.commands.items():
        found.append((f"{prefix}{name}", cmd))
        if isinstance(cmd, click.Group):
            found += _commands(cmd, f"{prefix}{name} ")
    return found


@pytest.mark.parametrize(("name", "command"), _commands(main))
def test_every_command_has_help_and_is_documented(name: str, command: click.Command) -> None:
    assert command.help and len(command.help) > 20
    result = run(*name.split(), "--help")
    assert result.exit_code == 0
    readme = (ROOT / "README.md").read_text()
    assert f"rightsmeta {name}" in readme, f"README.md does not document 'rightsmeta {name}'"
