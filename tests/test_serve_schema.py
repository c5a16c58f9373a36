"""schemathesis against the running server's /openapi.json: generated requests to every operation,
no 5xx, and every response matching the status codes, content types and schemas documented there.

Bounded: a few examples per operation, so the whole file runs in well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from rightsmeta import keys  # noqa: E402
from tests.test_serve import Server, _start  # noqa: E402


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("schema")
    keys.save_identity(keys.make_identity("Schema Test"), folder / "identity")
    yield from _start(folder, "--ledger", str(folder / "ledger.sqlite3"), "--identity", str(folder / "identity"),
                      "--token-file", str(folder / "token"), "--max-upload-mb", "2")


def test_every_operation_answers_as_documented(running: Server) -> None:
    # Driven by hand rather than schemathesis' pytest plugin, which fails on this pytest version.
    schema = schemathesis.openapi.from_url(f"{running.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=6, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(
                headers=running.auth,
                checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
            )

        check()
