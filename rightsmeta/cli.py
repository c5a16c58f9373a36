"""The ``rightsmeta`` command: parse, call one library function, render.

Exit codes: 0 all good, 1 a file failed (or could not be read), 2 usage errors.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import click

from . import __version__, api, cli_common, cli_tag, cli_verify
from .cli_gate import LIMIT, Seconds
from .errors import NOT_JSON, RightsmetaError, UsageError
from .escape import json_text, printable
from .model import GROUPS, PURPOSES, State
from .report import CarrierReport, FileReport

# What tag's and verify's work (cli_tag.py, cli_verify.py: they start without click) shares with
# the other commands.
_indented = cli_tag.indented

PURPOSE_NAMES = [p.value for p in PURPOSES] + list(GROUPS)
_STATE_COLOURS = {
    State.NOT_ALLOWED: "red",
    State.CONSTRAINED: "yellow",
    State.ALLOWED: "green",
    State.UNSPECIFIED: None,
}


def _source(path: str) -> str | BinaryIO:
    """``-`` is standard input: an upload piped in."""
    return sys.stdin.buffer if path == "-" else path


def _files(paths: Iterable[str], recursive: bool) -> list[str]:
    try:
        return cli_verify.listed_files(paths, recursive)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rightsmeta")
@click.option("--debug", is_flag=True,
              help="Show on standard error what the library logs: each fallback to mutagen or pypdf, and why.")
def main(debug: bool) -> None:
    """Say inside your files whether they may be used to train AI, and check it is still there."""
    if debug:
        from .log import show

        show()


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--deny", multiple=True, metavar="P", help=f"Purpose or group not allowed ({', '.join(PURPOSE_NAMES)}).")
@click.option("--allow", multiple=True, metavar="P", help="Purpose or group allowed.")
@click.option("--constrain", multiple=True, metavar="P=TERMS", help="Purpose allowed only under TERMS (a URL or text).")
@click.option("--holder", help="Rights holder's name.")
@click.option("--contact", help="Rights holder's contact (URL or e-mail).")
@click.option("--copyright", "copyright_", metavar="TEXT", help="Copyright notice.")
@click.option("--web-statement", metavar="URL", help="Web page stating the rights or licence.")
@click.option("--policy", metavar="URL", help="TDM policy URL (TDMRep tdm:policy).")
@click.option("-r", "--recursive", is_flag=True, help="Tag the files below folders too.")
@click.option("--dry-run", is_flag=True, help="Check every file and say what would be written; change nothing.")
@click.option("--password", help="Password of encrypted documents.")
@click.option("--sign/--no-sign", default=True, show_default=True,
              help="Add a signed C2PA manifest when a signing identity is configured.")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False), help="Signing certificate chain (PEM, end entity first).")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="Private key of --cert (PEM).")
@click.option("--ledger", type=click.Path(dir_okay=False), help="Record tagged works in this ledger (default: the user's ledger).")
@click.option("--no-ledger", is_flag=True, help="Do not record tagged works in any ledger.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array of results.")
@click.option("--follow-links/--no-follow-links", default=True, show_default=True,
              help="Tag the file a symbolic link points to (the link stays a link), or skip links.")
@click.option("--jobs", type=click.IntRange(min=0), default=1, show_default=True,
              help="Worker processes tagging files (0: one per core); the results keep their order.")
def tag(
    paths: tuple[str, ...],
    deny: tuple[str, ...],
    allow: tuple[str, ...],
    constrain: tuple[str, ...],
    holder: str | None,
    contact: str | None,
    copyright_: str | None,
    web_statement: str | None,
    policy: str | None,
    recursive: bool,
    dry_run: bool,
    password: str | None,
    sign: bool,
    cert: str | None,
    key: str | None,
    ledger: str | None,
    no_ledger: bool,
    as_json: bool,
    follow_links: bool,
    jobs: int,
) -> None:
    """Write one rights statement into every carrier of each file.

    \b
    Examples:
      rightsmeta tag photo.jpg --deny ai
      rightsmeta tag -r portfolio/ --deny all --allow search --holder "Ada L." --copyright "(c) 2026 Ada L."
    """
    pairs = []
    for value in constrain:
        pair = cli_tag.constraint(value)
        if pair is None:
            raise click.BadParameter(f"{value!r} should be PURPOSE=TERMS (a URL or text)", param_hint="--constrain")
        pairs.append(pair)
    try:
        code = cli_tag.run(
            paths, deny=deny, allow=allow, constrain=tuple(pairs), holder=holder, contact=contact, copyright_=copyright_,
            web_statement=web_statement, policy=policy, recursive=recursive, dry_run=dry_run, password=password,
            sign=sign, cert=cert, key=key, ledger=ledger, no_ledger=no_ledger, as_json=as_json,
            follow_links=follow_links, jobs=jobs,
        )
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    if code:
        sys.exit(code)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, allow_dash=True))
@click.option("-r", "--recursive", is_flag=True, help="Read the files below folders too.")
@click.option("--password", help="Password of encrypted documents.")
@click.option("--trust-anchors", type=click.Path(exists=True, dir_okay=False),
              help="PEM root certificates: a C2PA signer chaining to one is reported Trusted.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array of reports (schemas/read-report.schema.json).")
def read(paths: tuple[str, ...], recursive: bool, password: str | None, trust_anchors: str | None, as_json: bool) -> None:
    """Show every rights signal found in each file and the permissions they resolve to.

    Exits 1 when a file could not be read, or held a malformed signal.
    """
    files = _files(paths, recursive)
    try:
        anchors = cli_verify.read_trust_anchors(trust_anchors) if trust_anchors else None
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    reports = [api.read(_source(f), name=f, password=password, trust_anchors=anchors)
               for f in cli_common.progress(files, "reading", not as_json)]
    if as_json:
        click.echo(json.dumps([r.to_json() for r in reports], indent=2))
    else:
        for report in reports:
            _render_read(report)
    if any(r.errors for r in reports):
        sys.exit(1)


def _render_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return printable(text if len(text) <= 100 else text[:97] + "...")


def _shown_values(carrier: CarrierReport) -> Iterable[tuple[str, Any]]:
    """A carrier's raw values; a manifest's statement is in its training-mining entries (the
    only carrier a GIF, HEIC, AVIF or SVG has), its validation is shown on a line of its own."""
    if carrier.name != "c2pa":
        yield from carrier.values.items()
        return
    yield from ((k, v) for k, v in carrier.values.items() if k not in ("validation_state", "failures") and v is not None)
    for signal in carrier.signals:
        for key, entry in signal.raw.get("entries", {}).items():
            terms = entry.get("constraint_info")
            yield key, entry["use"] + (f", terms: {terms}" if terms else "")


def _render_read(report: FileReport) -> None:
    fmt = (report.format or "unknown").upper()
    click.echo(click.style(printable(report.path), bold=True) + f"  ({printable(fmt)})")
    for purpose, perm in report.permissions.items():
        state = click.style(perm.state.value, fg=_STATE_COLOURS[perm.state])
        effective = report.decision.effective[purpose]
        note = f"  (effective: {effective.state.value}, via data-mining)" if effective != perm else ""
        terms = f"  terms: {printable(perm.constraint_info)}" if perm.constraint_info else ""
        click.echo(f"  {purpose.value:<15} {state}{terms}{note}")
    # On signals, not carriers: a photo's EXIF or IIM copyright notice is listed as a carrier but states no rights.
    if not report.errors and not any(c.signals for c in report.carriers):
        click.echo("  no rights signals found")
    for carrier in report.carriers:
        click.echo(f"  carrier {printable(carrier.name)} ({printable(carrier.location)}):")
        if carrier.name == "c2pa":
            validation = str(carrier.values.get("validation_state"))
            colour = "red" if validation == "Invalid" else "green"
            failed = printable(", ".join(carrier.values.get("failures") or []))
            click.echo(f"    validation: {click.style(printable(validation), fg=colour)}" + (f" ({failed})" if failed else ""))
        for key, value in _shown_values(carrier):
            click.echo(f"    {printable(key)} = {_render_value(value)}")
    for key, value in report.rights.items():
        click.echo(f"  {printable(key)}: {_render_value(value)}")
    for conflict in report.conflicts:
        click.echo(click.style("  conflict: ", fg="yellow") + printable(conflict))
    for error in report.errors:
        click.echo(click.style("  error: ", fg="red") + printable(error))


@main.command()
@click.option("--keep", type=click.Path(file_okay=False), help="Put the sample files here (a new or empty folder) and keep them.")
def demo(keep: str | None) -> None:
    """Tag built-in sample files in a temporary folder and show what happened, step by step."""
    from .demo import run

    try:
        run(keep, click.echo, _render_read, cli_tag.render)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None



@main.group(name="keys")
def keys_group() -> None:
    """Signing identities for C2PA manifests: make one, or find out why c2pa refuses a certificate."""


@keys_group.command(name="init")
@click.option("--holder", default="rightsmeta user", show_default=True, help="Name (and Organization) in the certificates.")
@click.option("--dir", "folder", type=click.Path(file_okay=False), help="Where to store it (default: $RIGHTSMETA_IDENTITY or ~/.config/rightsmeta/identity).")
@click.option("--force", is_flag=True, help="Replace an existing identity.")
def keys_init(holder: str, folder: str | None, force: bool) -> None:
    """Create a local signing identity c2pa accepts: root CA -> intermediate CA -> end entity (P-256).

    The private key is written with mode 0600 and never printed.
    """
    from . import keys

    target = Path(folder) if folder else keys.default_dir()
    try:
        paths = keys.save_identity(keys.make_identity(holder), target, force=force)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    report = keys.doctor(paths["chain"].read_bytes())
    click.echo(f"Signing identity for {report.subject} in {target}:")
    click.echo(f"  certificate chain  {paths['chain']}  (end entity + intermediate CA)")
    click.echo(f"  trust anchor       {paths['root']}  (give it to readers: rightsmeta read --trust-anchors)")
    click.echo(f"  private key        {paths['key']}  (mode 0600; keep it secret)")
    click.echo("rightsmeta tag now signs a C2PA manifest into every file it can; --no-sign turns that off.")


@keys_group.command(name="doctor")
@click.argument("cert", type=click.Path(exists=True, dir_okay=False))
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="The certificate's private key (PEM).")
def keys_doctor(cert: str, key: str | None) -> None:
    """Check a certificate chain against everything c2pa requires, and explain each failure.

    Exits 1 when c2pa would refuse it.
    """
    from . import keys

    chain = Path(cert).read_bytes()
    private = Path(key).read_bytes() if key else None
    report = keys.check(chain, private)
    for item in report.checks:
        mark = click.style("ok  ", fg="green") if item.ok else click.style("FAIL", fg="red")
        click.echo(f"{mark} {item.name}: {item.detail}")
    if not report.ok:
        click.echo(f"{len(report.failures)} problem(s): c2pa will refuse this certificate.", err=True)
        sys.exit(1)
    click.echo("c2pa will accept this certificate.")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, allow_dash=True))
@click.option("-r", "--recursive", is_flag=True, help="Verify the files below folders too.")
@click.option("--ledger", type=click.Path(dir_okay=False), help="Ledger of tagged works to match stripped files against.")
@click.option("--no-ledger", is_flag=True, help="Do not match against any ledger (no decoding: fastest).")
@click.option("--json", "fmt", flag_value="json", help="Print a JSON array (schemas/verify-report.schema.json).")
@click.option("--jsonl", "fmt", flag_value="jsonl", help="Print one JSON object per line, as files finish.")
@click.option("--csv", "fmt", flag_value="csv", help="Print CSV, one row per file.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, writable=True), help="Also write a self-contained HTML report.")
@click.option("--fail-on", default="", metavar="STATUS[,STATUS]", help="Exit 1 if any file has one of these statuses.")
@click.option("--jobs", type=int, default=1, show_default=True, help="Worker processes (0: one per core).")
@click.option("--timeout", type=LIMIT, default=30.0, show_default=True, help="Seconds allowed per file before it is reported unreadable.")
@click.option("--password", help="Password of encrypted documents.")
@click.option("--trust-anchors", type=click.Path(exists=True, dir_okay=False), help="PEM roots for C2PA signers (Trusted).")
def verify(
    paths: tuple[str, ...], recursive: bool, ledger: str | None, no_ledger: bool, fmt: str | None,
    html_file: str | None, fail_on: str, jobs: int, timeout: float, password: str | None, trust_anchors: str | None,
) -> None:
    """Report which files carry intact rights signals, and which were stripped, tampered or changed.

    One status per file: intact, partial, conflicting, tampered, stripped, untagged or unreadable,
    with the reasons. Files with no signal left are matched against the ledger of tagged works.
    """
    try:
        code = cli_verify.run(paths, recursive=recursive, ledger=ledger, no_ledger=no_ledger, fmt=fmt, html_file=html_file,
                              fail_on=fail_on, jobs=jobs, timeout=timeout, password=password, trust_anchors=trust_anchors)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    except RightsmetaError as exc:  # the HTML report could not be written
        raise click.ClickException(str(exc)) from None
    if code:
        sys.exit(code)


@main.group(name="ledger")
def ledger_group() -> None:
    """The local registry of tagged works: publish it, or load registries others published."""


def _open_ledger(path: str) -> Any:
    """The ledger at ``path``, open; one that is no ledger (another file, a damaged one) is a usage error."""
    try:
        return cli_verify.open_ledger(path)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None


@ledger_group.command(name="export")
@click.option("--ledger", type=click.Path(exists=True, dir_okay=False), help="Ledger file (default: $RIGHTSMETA_LEDGER or ~/.local/share/rightsmeta/ledger.sqlite3).")
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False, writable=True), help="Write here instead of standard output.")
@click.option("--full-paths", is_flag=True,
              help="Keep each work's full local path (its folders name you and your disk); by default only the file name.")
def ledger_export(ledger: str | None, out: str | None, full_paths: bool) -> None:
    """Write every work in the ledger as JSON Lines (schemas/ledger-line.schema.json), to publish:
    each work's file name, not the folders it lies in (--full-paths keeps them, for a backup)."""
    path = cli_verify.ledger_path(ledger, False, must_exist=True)
    if path is None:
        raise click.UsageError("no ledger yet: tag some files first, or give --ledger")
    with _open_ledger(path) as db:
        if out:
            with open(out, "w", encoding="utf-8") as fh:
                db.export_jsonl(fh, paths=full_paths)
        else:
            db.export_jsonl(sys.stdout, paths=full_paths)


@ledger_group.command(name="import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--ledger", type=click.Path(dir_okay=False), help="Ledger file to load into (created if missing).")
def ledger_import(files: tuple[str, ...], ledger: str | None) -> None:
    """Load JSON Lines registries (as written by `rightsmeta ledger export`) into the ledger."""
    path = cli_verify.ledger_path(ledger, False, must_exist=False)
    assert path is not None
    with _open_ledger(path) as db:
        for name in files:
            try:
                # Bytes: the library names a line that is not UTF-8; the file name is the source.
                with open(name, "rb") as fh:
                    added = db.import_jsonl(fh, source=str(Path(name).absolute()))
            except RightsmetaError as exc:
                raise click.ClickException(f"{name}: {exc}") from None
            click.echo(f"{name}: {added} work(s) added; the ledger holds {len(db)}")


FAIL_ON_SCAN = ("drop", "notAllowed", "constrained", "conflict", "error")


@main.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--purpose", required=True, type=click.Choice([p.value for p in PURPOSES]), help="What the samples are kept for.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Write filtered shards here (same names and formats).")
@click.option("--report", "report_file", type=click.Path(dir_okay=False), help="Write one row per sample to FILE.jsonl or FILE.parquet.")
@click.option("--jsonl", "as_jsonl", is_flag=True, help="Print one JSON row per sample (schemas/scan-report.schema.json).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="Worker processes here, or Ray Data.")
@click.option("--ray-address", metavar="ADDR", help="A running Ray cluster (ray start --head); default: a local Ray.")
@click.option("--jobs", type=int, default=1, show_default=True, help="Worker processes or Ray actors (0: one per core).")
@click.option("--column", default="image", show_default=True, help="Parquet column with the bytes (or a struct's field: image.bytes).")
@click.option("--accept-constraints", is_flag=True, help="Keep samples whose purpose is constrained (you accept the terms).")
@click.option("--timeout", type=LIMIT, default=30.0, show_default=True, help="Seconds allowed per sample before it is dropped as unreadable.")
@click.option("--fail-on", default="", metavar="WHAT[,WHAT]", help=f"Also exit 1 if any sample is one of: {', '.join(FAIL_ON_SCAN)}.")
def scan(
    sources: tuple[str, ...], purpose: str, out_dir: str | None, report_file: str | None, as_jsonl: bool, engine: str,
    ray_address: str | None, jobs: int, column: str, accept_constraints: bool, timeout: float, fail_on: str,
) -> None:
    """Decide every sample of dataset shards for a purpose; write the kept ones to --out.

    SOURCE: WebDataset tar shards (paths, globs, brace ranges such as shard-{000000..000099}.tar,
    .tar.gz), Parquet files, or folders of either or of plain files. Exits 1 when a shard or
    sample could not be read (reported with the reason; the scan goes on).
    """
    from .datasets import scan as scan_rows
    from .datasets.report import ReportWriter
    from .pool import default_jobs

    failing = {s.strip() for s in fail_on.split(",") if s.strip()}
    if failing - set(FAIL_ON_SCAN):
        raise click.UsageError(f"unknown --fail-on {', '.join(sorted(failing - set(FAIL_ON_SCAN)))}; expected {', '.join(FAIL_ON_SCAN)}")
    if jobs < 0:
        raise click.UsageError("--jobs must be 0 (one per core) or more")
    try:
        rows = scan_rows(list(sources), purpose, out_dir=out_dir, engine=engine,  # type: ignore[arg-type]
                         jobs=jobs or default_jobs(), ray_address=ray_address, column=column,
                         accept_constraints=accept_constraints, sample_seconds=timeout)
        report = ReportWriter(report_file) if report_file else None
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    if report_file and not os.path.isdir(os.path.dirname(os.path.abspath(report_file))):
        # said before the scan, not after an hour of it
        raise click.UsageError(f"cannot write the report {report_file}: its folder does not exist")
    from .datasets.shards import NOT_WRITTEN_MARK

    counts = {"keep": 0, "drop": 0}
    unwritten = 0  # shards with no filtered copy in --out (their samples all dropped)
    found: set[str] = set()
    # SIGTERM ends the scan as Ctrl-C does: the report's and the copies' temporary files and the
    # workers' spooled rows are removed, not left behind. The rows are closed at once (their
    # clean-up runs in order), not by the garbage collector at exit, after the temporary folder's.
    with cli_common.terminate_cleanly(), contextlib.ExitStack() as stack:
        stack.callback(getattr(rows, "close", lambda: None))
        if report is not None:
            stack.enter_context(report)
        try:
            for row in rows:
                counts[row["decision"]] += 1
                unwritten += row["key"] is None and any(NOT_WRITTEN_MARK in e for e in row["errors"])
                if row["errors"]:
                    found.add("error")
                    where = f"{row['shard']}" + (f" {row['key']}" if row["key"] is not None else "")
                    click.echo(f"{click.style('unreadable', fg='red')}  {printable(where)}: {printable('; '.join(row['errors']))}",
                               err=True)
                if row["decision"] == "drop":
                    found.add("drop")
                if row["permission"] in ("notAllowed", "constrained"):
                    found.add(row["permission"])
                if any(r.startswith("conflict:") for r in row["reasons"]):
                    found.add("conflict")
                if report is not None:
                    report.write(row)
                if as_jsonl:
                    click.echo(json_text(row))
        except UsageError as exc:  # e.g. Ray not installed: said before any row
            raise click.UsageError(str(exc)) from None
    click.echo(f"summary: {counts['keep']} kept, {counts['drop']} dropped for {purpose}"
               + (", some input unreadable" if "error" in found else "")
               + (f"; {unwritten} shard(s) not written to --out (none of their samples kept)" if unwritten else ""), err=True)
    if "error" in found or failing & found:
        sys.exit(1)
@main.command(name="check")
@click.argument("urls", nargs=-1)
# utf-8-sig: a list saved by Notepad or Excel starts with a byte order mark, which made its first URL an error.
@click.option("--urls", "urls_file", type=click.File("r", encoding="utf-8-sig", errors="surrogateescape"), metavar="FILE",
              help="Read URLs from FILE, one a line ('-': standard input). A line starting with '{' is a JSON object "
                   "(img2dataset's or a crawler's JSONL) whose \"url\" is checked; its recorded \"headers\" are not "
                   "used: the site is asked anew.")
@click.option("--user-agent", default="rightsmeta", show_default=True, callback=lambda _c, _p, v: _agent_name(v),
              help="Your crawler's name: robots.txt groups and scoped X-Robots-Tag for it apply.")
@click.option("--purpose", "purposes", multiple=True, metavar="P", help=f"Purpose or group the status is about ({', '.join(PURPOSE_NAMES)}); default ai.")
@click.option("--fetch-body", is_flag=True, help="GET each resource (up to --max-body) and read its embedded carriers; else HEAD, and a GET only of HTML pages (their meta elements).")
@click.option("--json", "fmt", flag_value="json", help="Print a JSON array (schemas/check-report.schema.json).")
@click.option("--jsonl", "fmt", flag_value="jsonl", help="Print one JSON object per line, as URLs finish.")
@click.option("--csv", "fmt", flag_value="csv", help="Print CSV, one row per URL.")
@click.option("--concurrency", type=click.IntRange(1, 1000), default=16, show_default=True, help="Requests in flight.")
@click.option("--timeout", type=Seconds(0.1, 600), default=10.0, show_default=True, help="Seconds per request, first byte to last.")
@click.option("--delay", type=Seconds(0, 600), default=0.0, show_default=True, help="Seconds between two requests to one host.")
@click.option("--max-body", type=click.IntRange(1), default=64 * 1024 * 1024, show_default=True, help="Bytes of a body read (with --fetch-body, or of an HTML page).")
@click.option("--deadline", type=Seconds(0.1, 3600), default=30.0, show_default=True, help="Seconds per URL: robots.txt, redirects and body together.")
@click.option("--body-budget", type=click.IntRange(1), default=256 * 1024 * 1024, show_default=True, help="Bytes of bodies held at once by all URLs (at least --max-body).")
@click.option("--fail-on", default="", metavar="STATUS[,STATUS]", help="Exit 1 if any URL has one of these statuses (notAllowed, constrained, allowed, unspecified, error).")
def check_cmd(
    urls: tuple[str, ...], urls_file: Any, user_agent: str, purposes: tuple[str, ...], fetch_body: bool, fmt: str | None,
    concurrency: int, timeout: float, delay: float, max_body: int, deadline: float, body_budget: int, fail_on: str,
) -> None:
    """Before keeping a web resource: may it be used? One status per URL from its response
    headers, its site's robots.txt and tdmrep.json, its page and (with --fetch-body) its bytes.
    Exits 1 when a URL has a --fail-on status.

    \b
    Examples:
      rightsmeta check https://example.com/a.jpg --purpose genai-training
      rightsmeta check --urls urls.txt --user-agent MyBot --jsonl --fail-on error
    """
    from .model import expand
    from .webdecide import STATUSES

    failing = {s.strip() for s in fail_on.split(",") if s.strip()}
    unknown = failing - set(STATUSES)
    if unknown:
        raise click.UsageError(f"unknown status {', '.join(sorted(unknown))}; expected one of {', '.join(STATUSES)}")
    try:
        chosen = tuple(dict.fromkeys(p for name in (purposes or ("ai",)) for p in expand(name)))
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None

    lines = (line.strip() for line in (urls_file or ()))
    stream = itertools.chain(urls, (_listed_url(line) for line in lines if line and not line.startswith("#")))
    first = next(stream, None)
    if first is None:
        raise click.UsageError("give URLs, or --urls FILE")
    # A list of millions is streamed; it is only counted for a progress bar on a terminal.
    listed: Iterable[str] = itertools.chain([first], stream)
    total = None
    if fmt is None and sys.stderr.isatty():
        listed = list(listed)
        total = len(listed)
    try:
        from .web.fetch import Limits, check_many
        from .web.output import CheckWriter
    except ImportError as exc:  # aiohttp is the optional 'web' extra
        raise click.ClickException(f"checking URLs needs aiohttp ({exc}): pip install 'rightsmeta[web]'") from None
    limits = Limits(timeout=timeout, body_cap=max_body, concurrency=concurrency, per_host_delay=delay, deadline=deadline,
                    body_budget=body_budget)
    writer = CheckWriter(sys.stdout, fmt) if fmt else None
    counts: dict[str, int] = {}
    reports = check_many(listed, user_agent=user_agent, limits=limits, fetch_body=fetch_body)
    for report in cli_common.progress(reports, "checking", total is not None, total=total):
        row = report.to_json(chosen)
        counts[row["status"]] = counts.get(row["status"], 0) + 1
        if writer:
            writer.write(row)
        else:
            _render_check(row)
    if writer:
        writer.close()
    click.echo(cli_verify.summary(counts, STATUSES, "URL"), err=True)
    if any(counts.get(s) for s in failing):
        sys.exit(1)


def _agent_name(agent: str) -> str:
    """``--user-agent`` as given, when it names a crawler: an empty one (or "/1.0") was checked as
    nobody (robots.txt's "*" group) and sent to sites as "/0.1.0 (rightsmeta ...)"."""
    from .web.robots import product_token

    if not product_token(agent):
        raise click.BadParameter("give your crawler's name (e.g. MyBot, or its whole User-Agent string)",
                                 param_hint="'--user-agent'")
    return agent


def _listed_url(line: str) -> str:
    """A line's URL: a JSON object's "url", else the line itself. A scraper's list of what it fetched
    is JSONL more often than bare URLs; an object line without a "url" string stays as it is, so
    its report names it and says it is not a URL (status error)."""
    if line.startswith("{"):
        with contextlib.suppress(*NOT_JSON):
            url = json.loads(line).get("url")
            if isinstance(url, str):
                return url
    return line


def _render_check(row: dict[str, Any]) -> None:
    colour = {"notAllowed": "red", "error": "red", "constrained": "yellow", "allowed": "green"}.get(row["status"])
    click.echo(f"{click.style(row['status'].ljust(11), fg=colour)}  {printable(row['url'])}")
    if row["final_url"] and row["final_url"] != row["url"]:
        click.echo(f"    redirected to {printable(row['final_url'])}")
    for source in row["sources"]:
        said = ", ".join(f"{p} {v['state']}" for p, v in source["permissions"].items())
        click.echo(f"    {printable(source['source'])}: {printable(said)}")
    for conflict in row["conflicts"]:
        click.echo(click.style("    conflict: ", fg="yellow") + printable(conflict))
    for error in row["errors"]:
        click.echo(click.style("    error: ", fg="red") + printable(error))
    for unread in row["unread"]:
        click.echo(f"    not read: {printable(unread)}")


def _register_gate() -> None:
    from . import cli_gate  # the platform commands live in their own module

    for command in (cli_gate.serve, cli_gate.ui, cli_gate.sanitize, cli_gate.carry):
        main.add_command(command)


_register_gate()
