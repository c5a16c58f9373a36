"""Signing a file made from another: a sanitized copy or a rendition, the source as parent ingredient.

``carriers/manifest.sign`` signs a file over itself (intent EDIT: the file is its own parent).
Here the parent is a different byte stream - the upload before its metadata was cleaned, or the
original a rendition was made from - so c2pa validates the parent's own manifest as an
ingredient and the chain shows the platform's step (``c2pa.edited.metadata``, ``c2pa.resized``,
``c2pa.transcoded``) after the creator's.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

from .carriers.manifest import MIME, SOFT_BINDING_ALG, SOFT_BINDING_LABEL, c2pa_context, rightsmeta_version
from .errors import MalformedFile, UnsupportedFormat, WriteError
from .model import Assertion
from .vocab import cawg

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
    import c2pa

    if fmt not in MIME or (parent_fmt is not None and parent_fmt not in MIME):
        raise UnsupportedFormat(f"c2pa cannot sign {fmt.upper()} files or take {str(parent_fmt).upper()} as an ingredient")
    assertions: list[dict[str, Any]] = []
    if parent is not None:
        assertions.append({
            "label": "c2pa.actions.v2",
            "data": {"actions": [{"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}},
                                 *({"action": a, "softwareAgent": {"name": "rightsmeta", "version": rightsmeta_version()}} for a in actions)]},
        })
    entries = cawg.encode(assertion) if assertion is not None else None
    if entries is not None:
        assertions.append({"label": cawg.LABEL, "data": entries})
    if fingerprint:
        assertions.append({"label": SOFT_BINDING_LABEL,
                           "data": {"alg": SOFT_BINDING_ALG, "blocks": [{"scope": {}, "value": fingerprint}]}})
    manifest = {"claim_generator_info": [{"name": "rightsmeta", "version": rightsmeta_version()}], "title": title,
                "assertions": assertions}
    alg = getattr(c2pa.C2paSigningAlg, identity.algorithm.upper(), None)
    if alg is None:
        raise UnsupportedFormat(f"signing algorithm {identity.algorithm} is not supported by c2pa")
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, identity.chain_pem, identity.key_pem, None))
        with signer, c2pa.Builder(manifest, context=c2pa_context(None)) as builder:
            if parent is None or parent_fmt is None:
                builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
            else:
                builder.add_ingredient(json.dumps({"title": f"original.{parent_fmt}", "relationship": "parentOf", "label": "parent"}),
                                       MIME[parent_fmt], io.BytesIO(parent))
            out = io.BytesIO()
            store = builder.sign(signer, MIME[fmt], io.BytesIO(data), out)
    except c2pa.C2paError as exc:
        text = str(exc)  # c2pa's messages hold reasons, never key material
        if "certificate" in text.lower():
            raise WriteError(f"c2pa refused the signing certificate ({text}); run 'rightsmeta keys doctor' on it") from None
        raise MalformedFile(f"c2pa could not sign this {fmt.upper()} file: {text}") from None
    return out.getvalue(), bytes(store)

