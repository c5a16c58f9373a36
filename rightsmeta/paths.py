"""Where rightsmeta keeps per-user state, in one place that imports nothing heavy.

The command line asks for these paths before it knows whether it will need the ledger or the
keys, so working them out must not load the decoders or the cryptography they belong to.
"""

from __future__ import annotations

import os
from pathlib import Path


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
