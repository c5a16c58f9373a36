"""Fuzzing the JSON the upload-gate service reads from clients: the statement of ``/v1/tag``, the
query of ``/matches/byBinding``, the body of ``/v1/identity`` (``rightsmeta serve`` run for real).

Whatever a client sends, the answer is a problem the client caused (4xx) or a success, never
"Internal error ... please report it" (500). Multipart parsing, sizes and slow clients are
tests/test_serve_guard.py's; the examples pinned here are what this found.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from samples import image_bytes
from test_serve import Server, _start

EXAMPLES = int(os.environ.get("RIGHTSMETA_FUZZ_EXAMPLES", "200")) // 10
DEEP = "[" * 100_000 + "]" * 100_000  # deeper than the json module goes: RecursionError, not ValueError
PNG = image_bytes("png")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("fuzz-serve")
    yield from _start(folder, "--ledger", str(folder / "ledger.sqlite3"), "--token-file", str(folder / "token"),
                      "--workers", "1")


def _client_error(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"


STATEMENTS: list[Any] = [
    DEEP,  # found: RecursionError, a 500
    {"permissions": {"ai-training": "notAllowed"}, "holder": "Jane Doe"},  # found: TypeError in the worker, a 500
    {"permissions": {"ai-training": "notAllowed"}, "holder": {"name": 7}},
    {"permissions": {"ai-training": {"state": "constrained", "constraint_info": ["x"]}}},
    {"permissions": {"ai-training": "notAllowed"}, "copyright": {"year": 2026}},
    {"permissions": {"ai-training": "notAllowed"}, "date": 20261130},
    {"permissions": []}, {"permissions": {"no-such-purpose": "allowed"}}, [], "text", 1e400,
]


@pytest.mark.parametrize("statement", STATEMENTS, ids=range(len(STATEMENTS)))
def test_bad_statements_are_the_clients_error(server: Server, statement: Any) -> None:
    text = statement if isinstance(statement, str) else json.dumps(statement)
    with server.client() as http:
        response = http.post("/v1/tag", headers=server.auth, files={"file": ("a.png", PNG)}, data={"assertion": text})
    _client_error(response)


def test_random_statements_never_fail_the_server(server: Server) -> None:
    """Seeded: statements built from the fields the schema names, with values of every JSON type."""
    import random

    rng = random.Random(20261130)
    values: list[Any] = [None, True, 0, -1, 1.5, "", "notAllowed", "allowed", "constrained", "x" * 300, [], {},
                         ["notAllowed"], {"state": "notAllowed"}, {"name": "Jane"}, {"name": None}]
    fields = ["permissions", "holder", "copyright", "web_statement", "policy", "date", "work_id"]
    purposes = ["ai-training", "genai-training", "data-mining", "search", "ai-inference"]
    with server.client() as http:
        for _ in range(EXAMPLES):
            statement = {f: rng.choice(values) for f in rng.sample(fields, rng.randrange(1, 4))}
            if rng.random() < 0.7:
                statement["permissions"] = {p: rng.choice(values) for p in rng.sample(purposes, rng.randrange(1, 3))}
            response = http.post("/v1/tag", headers=server.auth, files={"file": ("a.png", PNG)},
                                 data={"assertion": json.dumps(statement)})
            assert response.status_code < 500, (statement, response.text)


def test_bad_binding_queries_and_identity_bodies_are_the_clients_error(server: Server) -> None:
    with server.client() as http:
        for body in (DEEP, "[" * 30_000, '{"alg": [], "value": {}}', "\xff", "1e999999"):
            _client_error(http.post("/matches/byBinding", headers=server.auth, content=body.encode("utf-8", "replace")))
        _client_error(http.post("/v1/identity", headers=server.auth, content=("[" * 2000).encode()))


def test_a_good_statement_still_tags(server: Server, tmp_path: Path) -> None:
    statement = {"permissions": {"ai-training": "notAllowed"}, "holder": {"name": "Jane Doe"}, "date": "2026-11-30"}
    with server.client() as http:
        response = http.post("/v1/tag", headers=server.auth, files={"file": ("a.png", PNG)},
                             data={"assertion": json.dumps(statement)})
    assert response.status_code == 200, response.text
    import rightsmeta

    assert rightsmeta.read(response.content).decision.may_use(rightsmeta.Purpose.AI_TRAINING) is False
