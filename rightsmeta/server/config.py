"""Settings of one server instance, and its bearer token."""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass

from ..errors import UsageError


@dataclass(frozen=True)
class ServerConfig:
    ledger: str | None = None
    # Folder of the signing identity (chain.pem, signer.key, root.pem: what `keys init` makes). When it
    # holds none yet, POST /v1/identity (the page's button) may make one there.
    identity: str | None = None
    token: str | None = None  # write endpoints refuse every request without one configured
    protect_reads: bool = False  # read, verify and the soft-binding queries need the token too
    max_upload: int = 100 * 1024 * 1024
    workers: int = 2
    backlog: int = 16  # uploads waiting for a worker beyond those decoding; more get 503
    upload_seconds: float = 120.0  # a body not received by then is refused (slow clients hold a slot)
    head_seconds: float = 10.0  # a request line and headers not received by then: the connection is closed
    send_seconds: float = 60.0  # an answer the client reads none of (its buffers full) for this long: closed
    job_seconds: float = 30.0
    memory: int = 2 * 1024**3  # address space of each worker process
    # Batches (the creators' page): tagged files kept on disk for download, bounded in all directions.
    batch_bytes: int = 8 * 1024**3  # disk for all batches together; beyond, 507
    batch_files: int = 10_000
    batches: int = 32
    batch_seconds: float = 3600.0  # a batch unused this long is removed


def load_token(path: str) -> tuple[str, bool]:
    """The token in ``path``, made (0600) when missing, in a folder made (0700) when missing; (token,
    created).

    A token file others can read is refused: anyone on the machine could then write.
    """
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = os.stat(path).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise UsageError(f"token file {path} is readable by others (mode {stat.S_IMODE(mode):o}); chmod 600 it") from None
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
        if len(token) < 16:
            raise UsageError(f"token file {path} holds fewer than 16 characters; use a longer token") from None
        return token, False
    except OSError as exc:
        raise UsageError(f"cannot create token file {path}: {exc.strerror or exc}") from None
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    return token, True
