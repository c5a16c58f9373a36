"""Where rightsmeta keeps per-user state, in one place that imports nothing heavy.

The command line asks for these paths before it knows whether it will need the ledger or the
keys, so working them out must not load the decoders or the cryptography they belong to.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UsageError

ENV_CERT = "RIGHTSMETA_CERT"
ENV_KEY = "RIGHTSMETA_KEY"
# A signing identity's files: certificate chain, private key, and the root it chains to (or None).
SigningFiles = tuple[str | Path, str | Path, Path | None]


def ledger() -> Path:
    """``$RIGHTSMETA_LEDGER``, else ``$XDG_DATA_HOME/rightsmeta/ledger.sqlite3`` (``~/.local/share``)."""
    explicit = os.environ.get("RIGHTSMETA_LEDGER")
    if explicit:
        return Path(explicit)
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data_home) / "rightsmeta" / "ledger.sqlite3"


def identity() -> Path:
    """``$RIGHTSMETA_IDENTITY``, else ``$XDG_CONFIG_HOME/rightsmeta/identity`` (``~/.config``)."""
    if os.environ.get("RIGHTSMETA_IDENTITY"):
        return Path(os.environ["RIGHTSMETA_IDENTITY"])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "rightsmeta" / "identity"


def signing_files(cert: str | None = None, key: str | None = None) -> SigningFiles | None:
    """Where the signing identity is: --cert/--key, else $RIGHTSMETA_CERT/$RIGHTSMETA_KEY, else the
    local identity (``keys init``); None if there is none. Finding it needs no cryptography, so a
    run without an identity never loads it (keys.Identity.configured loads what is found)."""
    cert = cert or os.environ.get(ENV_CERT)
    key = key or os.environ.get(ENV_KEY)
    if cert or key:
        if not (cert and key):
            raise UsageError("a signing certificate needs its private key too (--cert and --key)")
        for name, given in ((ENV_CERT, cert), (ENV_KEY, key)):  # --cert/--key were checked by the parser
            if not os.path.isfile(given):
                raise UsageError(f"no such file: {given} (from --cert/--key or ${name})")
        return cert, key, None
    return identity_files(identity())


def identity_files(folder: str | os.PathLike[str]) -> SigningFiles | None:
    """The files of the identity kept in ``folder`` (as ``keys init`` and the server's identity
    button make it), None while it holds none."""
    folder = Path(folder)
    if (folder / "chain.pem").is_file() and (folder / "signer.key").is_file():
        root = folder / "root.pem"
        return folder / "chain.pem", folder / "signer.key", root if root.is_file() else None
    return None
