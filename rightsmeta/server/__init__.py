"""``rightsmeta serve``: the upload-gate service (read, verify, tag, sanitize, carry, soft bindings)."""

from .app import create_app, serve
from .config import ServerConfig, load_token

__all__ = ["ServerConfig", "create_app", "load_token", "serve"]
