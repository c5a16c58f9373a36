"""``rightsmeta serve``: the upload-gate service (read, verify, tag, sanitize, carry, soft bindings).

The web parts (starlette, uvicorn: the [serve] extra) load only when the app is asked for, so the
registry and the config are usable without them (``carry`` records into the registry).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import ServerConfig, load_token

if TYPE_CHECKING:
    from .app import create_app, listen, serve


def __getattr__(name: str) -> Any:
    if name in ("create_app", "listen", "serve"):
        from . import app

        return getattr(app, name)
    raise AttributeError(name)


__all__ = ["ServerConfig", "create_app", "listen", "load_token", "serve"]
