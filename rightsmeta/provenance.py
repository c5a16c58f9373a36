"""Signing a file made from another: a sanitized copy or a rendition, the source as parent ingredient.

``carriers/manifest.sign`` signs a file over itself (intent EDIT: the file is its own parent).
Here the parent is a different byte stream - the upload before its metadata was cleaned, or the
original a rendition was made from - so c2pa validates the parent's own manifest as an
ingredient and the chain shows the platform's step (``c2pa.edited.metadata``, ``c2pa.resized``,
``c2pa.transcoded``) after the creator's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .carriers.manifest import MIME, rightsmeta_version, sign_manifest, statement_assertions
from .errors import UnsupportedFormat
from .model import Assertion

if TYPE_CHECKING:
    from .keys import Identity


def sign_derived(
    data: bytes,
    fmt: str,
    parent: bytes | None,
    parent_fmt: str | None,
    assertion: Assertion | None,
    identity: Identity,
    actions: list[str],
    *,
    fingerprint: str | None = None,
    title: str = "rendition",
) -> tuple[bytes, bytes]:
    """(signed file, manifest store bytes): ``data`` signed with ``actions`` after ``c2pa.opened`` of ``parent``.

    With no ``parent`` the file is its own parent (intent EDIT), as ``carriers/manifest.sign`` does;
    this path exists because the service keeps the manifest store bytes for /manifests/{id}.
    """
    if fmt not in MIME or (parent_fmt is not None and parent_fmt not in MIME):
        raise UnsupportedFormat(f"c2pa cannot sign {fmt.upper()} files or take {str(parent_fmt).upper()} as an ingredient")
    assertions: list[dict[str, Any]] = []
    if parent is not None:
        assertions.append({
            "label": "c2pa.actions.v2",
            "data": {"actions": [{"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}},
                                 *({"action": a, "softwareAgent": {"name": "rightsmeta", "version": rightsmeta_version()}} for a in actions)]},
        })
    assertions += statement_assertions(assertion, fingerprint)
    manifest = {"claim_generator_info": [{"name": "rightsmeta", "version": rightsmeta_version()}], "title": title,
                "assertions": assertions}
    return sign_manifest(manifest, fmt, data, identity, parent=parent, parent_fmt=parent_fmt)

