"""The platform commands: ``serve``, ``sanitize`` and ``carry`` (registered on the main group in cli.py).

Thin as the rest of the CLI: parse, call one library function, render.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from .errors import RightsmetaError, UsageError


class Seconds(click.FloatRange):
    """A time limit: a FloatRange that also refuses nan, which its comparisons let through (a
    limit of nan, or of a negative number, used to end verify and scan in a traceback)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        seconds: float = super().convert(value, param, ctx)
        if seconds != seconds:
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return seconds


# Any time above nothing, up to about 11 days: setitimer refuses what overflows time_t (inf, 1e300).
LIMIT = Seconds(min=0, min_open=True, max=1_000_000)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback unless you mean it).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port to listen on.")
@click.option("--ledger", type=click.Path(dir_okay=False), help="Ledger of works (default: the user's ledger).")
@click.option("--no-ledger", is_flag=True, help="No ledger: nothing recorded, nothing matched.")
@click.option("--identity", type=click.Path(file_okay=False),
              help="Signing identity folder (chain.pem, signer.key, as `keys init` makes); while it holds none, "
                   "nothing is signed and POST /v1/identity (the page's button) may make one there.")
@click.option("--token-file", type=click.Path(dir_okay=False),
              help="Bearer token for write endpoints (created 0600 when missing); without it writes are refused.")
@click.option("--protect-reads", is_flag=True, help="Read, verify and the soft-binding queries need the token too.")
@click.option("--max-upload-mb", type=click.IntRange(1, 10_000), default=100, show_default=True, help="Largest upload accepted.")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True, help="Uploads decoded at once (worker processes).")
@click.option("--backlog", type=click.IntRange(0, 10_000), default=16, show_default=True,
              help="Uploads allowed to wait for a worker; beyond them the answer is 503 with Retry-After.")
@click.option("--timeout", type=LIMIT, default=30.0, show_default=True, help="Seconds allowed to process one upload.")
@click.option("--upload-timeout", type=LIMIT, default=120.0, show_default=True, help="Seconds allowed to receive one upload.")
@click.option("--send-timeout", type=LIMIT, default=60.0, show_default=True,
              help="Seconds an answer may wait for a client that reads none of it; then the connection is closed.")
@click.option("--batch-files", type=click.IntRange(1, 1_000_000), default=10_000, show_default=True,
              help="Most files one batch (one run of the creators' page) keeps for download.")
@click.option("--batch-mb", type=click.IntRange(1, 10_000_000), default=8192, show_default=True,
              help="Disk all batches together may use for tagged files kept for download.")
def serve(host: str, port: int, ledger: str | None, no_ledger: bool, identity: str | None, token_file: str | None,
          protect_reads: bool, max_upload_mb: int, workers: int, backlog: int, timeout: float, upload_timeout: float,
          send_timeout: float, batch_files: int, batch_mb: int) -> None:
    """Run the upload-gate service: read, verify, tag, sanitize, carry, soft-binding lookups.

    \b
    Examples:
      rightsmeta serve --token-file ~/.config/rightsmeta/server.token --identity ~/.config/rightsmeta/identity
      curl -s --data-binary @photo.jpg http://127.0.0.1:8000/v1/verify
    """
    try:
        from .server import ServerConfig, listen, load_token
        from .server import serve as run
    except ImportError as exc:
        raise click.ClickException(f"the server needs the [serve] extra: pip install 'rightsmeta[serve]' ({exc})") from None

    token = None
    if token_file:
        try:
            token, created = load_token(token_file)
        except UsageError as exc:
            raise click.UsageError(str(exc)) from None
        if created:
            click.echo(f"a new bearer token was written to {token_file} (mode 0600)", err=True)
    if protect_reads and token is None:
        raise click.UsageError("--protect-reads needs --token-file")
    config = ServerConfig(
        ledger=_usable_ledger(ledger, no_ledger), identity=_usable_identity(identity), token=token,
        protect_reads=protect_reads, max_upload=max_upload_mb * 1024 * 1024, workers=workers, backlog=backlog,
        job_seconds=timeout, upload_seconds=upload_timeout, send_seconds=send_timeout,
        batch_files=batch_files, batch_bytes=batch_mb * 1024 * 1024,
    )
    try:
        sock = listen(host, port)
    except OSError as exc:  # taken by another server, or an address not this machine's
        raise click.UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    with sock:  # closed however the server ends (closing it twice is harmless)
        bound = sock.getsockname()[1]
        click.echo(f"rightsmeta serve: http://{f'[{host}]' if ':' in host else host}:{bound}/ (docs at /docs)", err=True)
        run(config, sock=sock)


def _usable_ledger(ledger: str | None, no_ledger: bool) -> str | None:
    """The ledger to use. One that exists and is no ledger is refused before anything starts: a
    server would answer every upload 422, as if the file were at fault, and carry would write
    the derivative, then fail."""
    from .cli_verify import check_ledger, ledger_path

    path = ledger_path(ledger, no_ledger, must_exist=False)
    if path and os.path.exists(path):
        try:
            check_ledger(path)
        except UsageError as exc:
            raise click.UsageError(str(exc)) from None
    return path


def _usable_identity(folder: str | None) -> str | None:
    """The signing identity's folder. One holding an identity that cannot be loaded is refused before
    anything starts: no worker could start, and every upload was answered 422, as if the file were at fault."""
    from .keys import load_identity

    try:
        load_identity(folder)
    except (UsageError, OSError, ValueError) as exc:
        raise click.UsageError(f"cannot use the signing identity in {folder}: {exc}") from None
    return folder


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port (default: a free one).")
@click.option("--no-browser", is_flag=True, help="Print the address instead of opening a browser.")
@click.option("--ledger", type=click.Path(dir_okay=False), help="Ledger of works (default: the user's ledger).")
def ui(port: int, no_browser: bool, ledger: str | None) -> None:
    """Open the creators' page in a browser: drop files, choose what AI may do, download them tagged.

    The server listens on 127.0.0.1 only; its access token is random, kept in memory and given to
    the browser in the address's fragment, which is never sent over the network.
    """
    import secrets
    import socket
    import threading

    from .keys import default_dir

    try:
        from .server import ServerConfig
        from .server import serve as run
    except ImportError as exc:
        raise click.ClickException(f"the page needs the [serve] extra: pip install 'rightsmeta[serve]' ({exc})") from None
    if not port:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    identity = str(default_dir())  # used when it holds an identity; else the page's button makes one there
    token = secrets.token_urlsafe(32)
    url = f"http://127.0.0.1:{port}/#token={token}"
    if no_browser:
        click.echo(f"open {url}")
    else:
        click.echo(f"opening http://127.0.0.1:{port}/ in your browser (Ctrl+C to stop)", err=True)
        threading.Timer(1.5, _open_in_browser, (url,)).start()
    # The creator's own terminal: no line per upload.
    run(ServerConfig(ledger=_usable_ledger(ledger, False), identity=_usable_identity(identity), token=token), host="127.0.0.1", port=port,
        access_log=False)


def _open_in_browser(url: str) -> None:
    """Where no browser can be started (an SSH session, a headless server), the address with its
    token is the only way into the page, so it is said."""
    import webbrowser

    if not webbrowser.open(url):
        click.echo(f"no browser found: open {url}", err=True)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--keep", type=click.Choice(["rights", "rights,credit"]), default="rights", show_default=True,
              help="What survives besides the image: rights statements only, or also the credit (creator, credit line).")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False), help="Signing certificate chain, to re-sign a C2PA manifest.")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="Private key of --cert (PEM).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array of results.")
def sanitize(paths: tuple[str, ...], keep: str, cert: str | None, key: str | None, as_json: bool) -> None:
    """Remove privacy metadata (GPS, serial numbers, maker notes, history, thumbnails...) and keep the rights.

    Each file is replaced atomically. A signed C2PA manifest is re-signed with your identity, the
    original manifest as its parent ingredient; without an identity such files are refused.
    """
    from .keys import Identity
    from .sanitize import sanitize_path

    try:
        identity = Identity.configured(cert, key)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    results = [sanitize_path(p, keep=keep, identity=identity) for p in paths]
    if as_json:
        click.echo(json.dumps(results, indent=2))
    else:
        for r in results:
            if r["status"] == "sanitized":
                click.echo(f"{click.style('sanitized', fg='green')}  {r['path']}  ({len(r['removed'])} removed; kept: {', '.join(r['carriers']) or 'nothing'})")
            else:
                click.echo(f"{click.style(r['status'], fg='red')}  {r['path']}: {r['reason']}")
    if any(r["status"] != "sanitized" for r in results):
        sys.exit(1)


@click.command()
@click.argument("original", type=click.Path(exists=True, dir_okay=False))
@click.argument("derivative", type=click.Path(exists=True, dir_okay=False))
@click.option("--cert", type=click.Path(exists=True, dir_okay=False), help="Signing certificate chain (PEM).")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="Private key of --cert (PEM).")
@click.option("--ledger", type=click.Path(dir_okay=False), help="Ledger to link the derivative to the work in.")
@click.option("--no-ledger", is_flag=True, help="Do not record the derivative.")
@click.option("--new-work", is_flag=True, help="DERIVATIVE is a new work made from ORIGINAL, not a rendition of it.")
def carry(original: str, derivative: str, cert: str | None, key: str | None, ledger: str | None, no_ledger: bool,
          new_work: bool) -> None:
    """Give DERIVATIVE (a resized, cropped or transcoded rendition) the statement ORIGINAL carries.

    Written into every carrier of the derivative's format and, with a signing identity, a manifest
    with the c2pa.resized, c2pa.cropped, c2pa.orientation or c2pa.transcoded actions the content shows, and ORIGINAL as parent ingredient.
    A DERIVATIVE whose content does not match ORIGINAL's is refused unless --new-work (c2pa.edited).
    """
    from .carry import carry_path
    from .keys import Identity

    used = _usable_ledger(ledger, no_ledger)
    try:
        identity = Identity.configured(cert, key)
        result = carry_path(original, derivative, identity=identity, ledger_path=used, new_work=new_work)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    except RightsmetaError as exc:
        raise click.ClickException(f"{derivative}: {exc}") from None
    click.echo(f"{click.style('carried', fg='green')}  {os.fspath(derivative)}  ({result['format']}: {', '.join(result['carriers'])})")
