"""The service's OpenAPI 3 document and a self-contained docs page rendered from it (no CDN)."""

from __future__ import annotations

import html
from typing import Any

from .. import __version__

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_UPLOAD = {
    "required": True,
    "description": "The file: the raw body (any Content-Type; the type is sniffed from the bytes) or multipart field 'file'.",
    "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}},
                                           "required": ["file"]}},
    },
}
_BATCH = {"name": "batch", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}
_MATCHES = {"application/json": {"schema": {"$ref": "#/components/schemas/SoftBindingQueryResult"}}}
_MAX_RESULTS = {"name": "maxResults", "in": "query", "description": "At most this many matches (and never more than 100)",
                "schema": {"type": "integer", "minimum": 1, "default": 10}}

_HINT = [{"name": "hintAlg", "in": "query", "description": "A soft binding the client holds, to aid the search (with hintValue): "
          "its matches rank first; any other algorithm is refused (400)", "schema": {"type": "string", "enum": ["io.iscc.v0"]}},
         {"name": "hintValue", "in": "query", "description": "The hint's value (with hintAlg): an ISCC code, as text or base64",
          "schema": {"type": "string", "maxLength": 512}}]


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Bad request", 401: "Missing or wrong bearer token", 403: "Writes are disabled (no token configured)",
            404: "Not found", 408: "Upload too slow", 413: "Upload too large", 415: "Unsupported asset type",
            414: "Request line over 16 KiB (send a long soft binding with POST)",
            422: "The file cannot be processed", 431: "Request line and headers over 16 KiB",
            503: "Busy: retry after the Retry-After header",
            507: "No more disk allowed for kept batches"}
    return {str(c): {"description": text[c], "content": _PROBLEM} for c in codes}


def _file_out(summary: str) -> dict[str, Any]:
    binary = {"schema": {"type": "string", "format": "binary"}}
    # The file comes back in its own type (sniffed from its bytes), whatever that is.
    return {"description": summary, "content": {t: binary for t in ("image/*", "audio/*", "video/*", "application/*")}}


def spec() -> dict[str, Any]:
    upload_errors = _errors(400, 401, 408, 413, 422, 503)
    write: list[dict[str, list[str]]] = [{"bearer": []}]
    read: list[dict[str, list[str]]] = [{}, {"bearer": []}]  # open, unless the server runs with --protect-reads
    return {
        "openapi": "3.0.3",
        "info": {"title": "rightsmeta upload gate", "version": __version__,
                 "description": "Read, verify, tag, sanitize and carry AI-training rights statements in uploaded files; "
                                "resolve stripped copies through the C2PA Soft Binding Resolution API."},
        "paths": {
            "/healthz": {"get": {"summary": "Liveness", "operationId": "healthz",
                                 "responses": {"200": {"description": "Alive", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}}}},
            "/v1/identity": {"post": {"summary": "Make the server's signing identity (keys init) where --identity points, when it has none",
                                      "operationId": "makeIdentity", "security": write,
                                      "requestBody": {"required": False, "content": {"application/json": {"schema": {
                                          "type": "object", "properties": {"holder": {"type": "string", "maxLength": 200}}}}}},
                                      "responses": {"201": {"description": "Made", "content": {"application/json": {"schema": {"type": "object"}}}},
                                                    **_errors(400, 401, 403, 413), "409": {"description": "An identity exists", "content": _PROBLEM}}}},
            "/v1/read": {"post": {"summary": "Every carrier and the resolved permissions (schemas/read-report.schema.json)",
                                  "operationId": "read", "security": read, "requestBody": _UPLOAD,
                                  "responses": {"200": {"description": "The read report", "content": {"application/json": {"schema": {"type": "object"}}}},
                                                **upload_errors}}},
            "/v1/verify": {"post": {"summary": "One status (intact, partial, ..., stripped) with reasons (schemas/verify-report.schema.json)",
                                    "operationId": "verify", "security": read, "requestBody": _UPLOAD,
                                    "responses": {"200": {"description": "The verdict", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Verdict"}}}},
                                                  **upload_errors}}},
            "/v1/tag": {"post": {"summary": "The file tagged with the statement (signed when the server has an identity), recorded in the ledger",
                                 "operationId": "tag", "security": write,
                                 "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                                     "type": "object", "required": ["file", "assertion"],
                                     "properties": {"file": {"type": "string", "format": "binary"},
                                                    "assertion": {"type": "string", "description": "JSON, schemas/assertion.schema.json"}}}}}},
                                 "responses": {"200": _file_out("The tagged file"), **_errors(400, 401, 403, 408, 413, 422, 503)}}},
            "/v1/sanitize": {"post": {"summary": "Privacy metadata removed, rights statements kept, a C2PA manifest re-signed",
                                      "operationId": "sanitize", "security": write, "requestBody": _UPLOAD,
                                      "parameters": [{"name": "keep", "in": "query", "schema": {"type": "string", "enum": ["rights", "rights,credit"], "default": "rights"}}],
                                      "responses": {"200": _file_out("The sanitized file"), **_errors(400, 401, 403, 408, 413, 422, 503)}}},
            "/v1/carry": {"post": {"summary": "The derivative carrying the original's statement, signed with the original as parent ingredient",
                                   "operationId": "carry", "security": write,
                                   "parameters": [{"name": "newWork", "in": "query", "description": "The derivative is a new work made "
                                                   "from the original, not a rendition of it (else a derivative whose content does "
                                                   "not match the original's is refused)",
                                                   "schema": {"type": "string", "enum": ["true", "false"], "default": "false"}}],
                                   "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                                       "type": "object", "required": ["original", "derivative"],
                                       "properties": {"original": {"type": "string", "format": "binary"},
                                                      "derivative": {"type": "string", "format": "binary"}}}}}},
                                   "responses": {"200": _file_out("The derivative, tagged"), **_errors(400, 401, 403, 408, 413, 422, 503)}}},
            "/v1/batches": {"post": {"summary": "Start a batch: files tagged into it are kept on the server for download one by one "
                                                "or as one streamed zip (the creators' page). Its id is the capability to download it",
                                     "operationId": "createBatch", "security": write,
                                     "responses": {"201": {"description": "The batch", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Batch"}}}},
                                                   **_errors(401, 403, 503)}}},
            "/v1/batches/{batch}": {
                "get": {"summary": "The batch's tagged files", "operationId": "getBatch", "parameters": [_BATCH],
                        "responses": {"200": {"description": "The files", "content": {"application/json": {"schema": {"type": "object"}}}},
                                      **_errors(404)}},
                "delete": {"summary": "Remove the batch and its files now (else they expire after an hour unused)",
                           "operationId": "deleteBatch", "security": write, "parameters": [_BATCH],
                           "responses": {"204": {"description": "Removed"}, **_errors(401, 403, 404)}},
            },
            "/v1/batches/{batch}/files": {"post": {"summary": "Tag one file into the batch; a failure is this file's answer, the batch goes on",
                                                   "operationId": "addToBatch", "security": write, "parameters": [_BATCH],
                                                   "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                                                       "type": "object", "required": ["file", "assertion"],
                                                       "properties": {"file": {"type": "string", "format": "binary"},
                                                                      "assertion": {"type": "string", "description": "JSON, schemas/assertion.schema.json"}}}}}},
                                                   "responses": {"201": {"description": "Tagged and kept", "content": {"application/json": {"schema": {"type": "object"}}}},
                                                                 **_errors(400, 401, 403, 404, 408, 413, 422, 503, 507)}}},
            "/v1/batches/{batch}/files/{index}": {"get": {"summary": "One tagged file of the batch", "operationId": "getBatchFile",
                                                          "parameters": [_BATCH, {"name": "index", "in": "path", "required": True,
                                                                                  "schema": {"type": "integer", "minimum": 0}}],
                                                          "responses": {"200": {"description": "The tagged file", "content": {
                                                              "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                                                                        **_errors(404)}}},
            "/v1/batches/{batch}/zip": {"get": {"summary": "Every tagged file of the batch as one zip, written while it is sent",
                                                "operationId": "getBatchZip", "parameters": [_BATCH],
                                                "responses": {"200": {"description": "The zip (stored members)", "content": {
                                                    "application/zip": {"schema": {"type": "string", "format": "binary"}}}}, **_errors(404)}}},
            "/matches/byBinding": {
                "get": {"summary": "Manifests matching a soft binding (C2PA Soft Binding Resolution API)", "operationId": "queryByBinding", "security": read,
                        "parameters": [{"name": "alg", "in": "query", "required": True, "schema": {"type": "string", "enum": ["io.iscc.v0"]}},
                                       {"name": "value", "in": "query", "required": True, "schema": {"type": "string", "maxLength": 512}},
                                       _MAX_RESULTS],
                        "responses": {"200": {"description": "Matches", "content": _MATCHES}, **_errors(400, 401, 414)}},
                "post": {"summary": "Manifests matching a soft binding given as JSON", "operationId": "queryByLargeBinding", "security": read,
                         "parameters": [_MAX_RESULTS],
                         "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SoftBindingQuery"}}}},
                         "responses": {"200": {"description": "Matches", "content": _MATCHES}, **_errors(400, 401, 413)}},
            },
            "/matches/byContent": {"post": {"summary": "Manifests of works matching the uploaded asset", "operationId": "uploadFile", "security": read,
                                            "parameters": [{"name": "alg", "in": "query", "schema": {"type": "string", "enum": ["io.iscc.v0"]}},
                                                           _MAX_RESULTS, *_HINT],
                                            "requestBody": _UPLOAD,
                                            "responses": {"200": {"description": "Matches", "content": _MATCHES}, **_errors(400, 401, 408, 413, 415, 422, 503)}}},
            "/manifests/{manifestId}": {"get": {"summary": "The manifest store (application/c2pa) or, without one, the recorded statement",
                                                "operationId": "getManifestById", "security": read,
                                                "parameters": [{"name": "manifestId", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 200}},
                                                               {"name": "returnActiveManifest", "in": "query",
                                                                "description": "Only the active manifest (a store of that one manifest; "
                                                                               "without stored bytes, the statement with the active manifest only)",
                                                                "schema": {"type": "boolean", "default": False}}],
                                                "responses": {"200": {"description": "The manifest store or statement",
                                                                      "content": {"application/c2pa": {"schema": {"type": "string", "format": "binary"}},
                                                                                  "application/json": {"schema": {"type": "object"}}}},
                                                              **_errors(400, 401, 404)}}},
            "/services/supportedAlgorithms": {"get": {"summary": "Soft binding algorithms resolved here", "operationId": "getSupportedBindings",
                                                      "responses": {"200": {"description": "Algorithms", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Problem": {"type": "object", "required": ["type", "title", "status", "detail"],
                            "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                                           "detail": {"type": "string"}, "instance": {"type": "string"}}},
                "Health": {"type": "object", "required": ["status", "version"],
                           "properties": {"status": {"type": "string"}, "version": {"type": "string"}, "workers": {"type": "integer"},
                                          "signing": {"type": "boolean"}, "can_make_identity": {"type": "boolean"},
                                          "ledger": {"type": "boolean"},
                                          "max_upload": {"type": "integer", "description": "largest file accepted, in bytes"}}},
                "Verdict": {"type": "object", "required": ["status", "reasons", "permissions", "effective", "carriers"],
                            "properties": {"path": {"type": "string", "nullable": True}, "format": {"type": "string", "nullable": True},
                                           "status": {"type": "string", "enum": ["intact", "partial", "conflicting", "tampered", "stripped", "untagged", "unreadable"]},
                                           "reasons": {"type": "array", "items": {"type": "string"}},
                                           "permissions": {"type": "object"}, "effective": {"type": "object"},
                                           "carriers": {"type": "array", "items": {"type": "string"}},
                                           "match": {"type": "object", "nullable": True}}},
                "Batch": {"type": "object", "required": ["id", "files", "zip"],
                          "properties": {"id": {"type": "string"}, "files": {"type": "string"}, "zip": {"type": "string"},
                                         "expires_after_seconds": {"type": "number"}}},
                "SoftBindingQuery": {"type": "object", "required": ["alg", "value"],
                                     "properties": {"alg": {"type": "string"}, "value": {"type": "string"}}},
                "SoftBindingQueryResult": {"type": "object", "properties": {"matches": {"type": "array", "items": {
                    "type": "object", "required": ["manifestId"],
                    "properties": {"manifestId": {"type": "string"}, "endpoint": {"type": "string"},
                                   "similarityScore": {"type": "integer", "minimum": 0, "maximum": 100}}}}}},
            },
        },
    }


def docs_page() -> str:
    """The endpoints, as one page with no script, font or style from elsewhere."""
    document = spec()
    rows = []
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            security = op.get("security") or [{}]
            token = "open" if security == [{}] else "open (bearer token with --protect-reads)" if {} in security else "bearer token"
            rows.append(f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                        f"<td>{html.escape(op.get('summary', ''))}</td><td>{token}</td></tr>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>rightsmeta upload gate</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#111}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ccc;padding:.4rem;text-align:left;vertical-align:top}}
code{{background:#f3f3f3;padding:0 .2rem}}</style></head>
<body><h1>rightsmeta upload gate {html.escape(str(document['info']['version']))}</h1>
<p>{html.escape(document['info']['description'])} The machine-readable description is at
<a href="/openapi.json">/openapi.json</a> (OpenAPI 3). Errors are RFC 9457 problem documents
(<code>application/problem+json</code>).</p>
<table><thead><tr><th scope="col">Method</th><th scope="col">Path</th><th scope="col">What it does</th><th scope="col">Access</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table></body></html>"""
